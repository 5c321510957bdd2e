// SPDX-License-Identifier: MPL-2.0

//! One run of the element's servers, as one value: `Server::start()` builds everything a run needs
//! (the input thread and its inbox, the hub, the HTTP(S) server with the WebSocket and WebRTC
//! endpoints, WebTransport, the certificates and their renewal, the periodic tasks) and dropping
//! the `Server` tears it all down. A start that fails half way drops what it built so far, so a
//! failed start and stop() release the same things (a busy port leaks no thread).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gst::prelude::*;
use tokio::sync::watch;

use crate::access::{Access, AccessSettings, Tokens, TOKEN_PARAM};
use crate::discovery::Discovery;
use crate::http::HttpServer;
use crate::hub::{Callbacks, Hub, HubSettings, Overload};
use crate::inbox::Inbox;
use crate::protocol::{self, close, ClientMessage};
use crate::relay::RelaySettings;
use crate::runtime::RUNTIME;
use crate::session::{Context, Limits};
use crate::tls::{self, CertificateError, Certificates};
use crate::webrtc::{IceSettings, WebRtc};
use crate::wt::{self, WtServer};
use crate::CAT;

/// What a run is made of: the element's settings, checked and resolved.
#[derive(Clone, Debug)]
pub(crate) struct ServerSettings {
    /// Where to listen, as set: an IP address or a host name (resolved by start()).
    pub address: String,
    pub port: u16,
    /// The two links' tokens; None: no token needed (`auth=none`).
    pub tokens: Option<Tokens>,
    pub allowed_origins: Vec<String>,
    pub view_only: bool,
    /// HTTPS on the HTTP port.
    pub https: bool,
    /// PEM files (certificate, private key); a self-signed certificate when None.
    pub certificate_files: Option<(PathBuf, PathBuf)>,
    pub webtransport: bool,
    /// WebTransport's UDP port; None: the HTTP port's number, and a busy one only turns
    /// WebTransport off (`Server::webtransport_off`) when the certificate is self-signed.
    pub webtransport_port: Option<u16>,
    pub hub: HubSettings,
    pub gray_window: Option<(u16, u16)>,
    pub limits: Limits,
    pub stun_server: Option<String>,
    pub turn_server: Option<String>,
    /// The UDP ports WebRTC peers' media may use (`webrtc-ports`), first and last.
    pub webrtc_ports: Option<(u16, u16)>,
    /// The relay the element publishes to (`relay-url`): `/rfb.json` names it and the viewer
    /// page may connect to it (`?relay`).
    pub relay: Option<RelaySettings>,
}

/// What a run hands the element.
pub(crate) struct Handlers {
    /// A client's input event or application message: on the run's input thread, one at a time,
    /// in the order the clients sent them; never on the runtime's workers or the streaming thread.
    pub message: Box<dyn Fn(u64, ClientMessage) + Send>,
    /// The hub wants a keyframe of a rendition, 0 the sink pad's (called from the runtime's
    /// blocking pool).
    pub request_keyframe: Box<dyn Fn(u32) + Send + Sync>,
    /// A client fell behind (called from the runtime's blocking pool).
    pub overloaded: Box<dyn Fn(&Overload) + Send + Sync>,
    /// Rate control's new target for the encoder, bits per second (from the blocking pool).
    pub target_bitrate: Box<dyn Fn(u64) + Send + Sync>,
}

/// Why a run did not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("Invalid address '{0}': not an IP address or resolvable host name")]
    Address(String),
    #[error("Cannot start the input thread: {0}")]
    InputThread(#[source] std::io::Error),
    #[error("Cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("Certificate: {0}")]
    Certificate(#[from] CertificateError),
    #[error("WebTransport: {0}")]
    WebTransport(#[from] wt::Error),
}

impl StartError {
    /// The port (TCP or UDP) is taken by another program or element.
    pub fn is_busy(&self) -> bool {
        match self {
            StartError::Listen { source, .. } => source.kind() == std::io::ErrorKind::AddrInUse,
            StartError::WebTransport(e) => e.is_busy(),
            _ => false,
        }
    }

    /// The settings are wrong (rather than the machine's state).
    pub fn is_settings(&self) -> bool {
        matches!(self, StartError::Address(_) | StartError::Certificate(_))
    }
}

/// A running server. Dropping it stops the sessions, the servers (their ports are free when
/// the drop returns), the periodic tasks and the input thread.
pub(crate) struct Server {
    pub hub: Arc<Hub>,
    /// The bound HTTP address.
    pub local: SocketAddr,
    /// The control link (with its token) and the view-only link; the same without tokens.
    pub url: String,
    pub view_url: String,
    pub https: bool,
    /// WebTransport's UDP port, when it runs.
    pub webtransport_port: Option<u16>,
    /// Why WebTransport is off although it was asked for: its default port was busy (the
    /// viewers use WebSocket).
    pub webtransport_off: Option<wt::Error>,
    /// Ends every server and session.
    shutdown: watch::Sender<bool>,
    /// Input events on their way to the input thread; closing it ends the thread.
    inbox: Arc<Inbox>,
    /// Periodic tasks: each viewer's figures, certificate renewal, the element's own.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    webtransport: Option<Arc<WtServer>>,
    /// Taken by Drop, which waits until its port is free.
    http: Option<HttpServer>,
}

impl Server {
    pub fn start(
        settings: &ServerSettings,
        handlers: Handlers,
        obj: gst::Object,
    ) -> Result<Server, StartError> {
        let addr = (settings.address.as_str(), settings.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| StartError::Address(settings.address.clone()))?;

        // The input thread first, so that the hub's callback has somewhere to put messages; the
        // inbox between them is bounded. From here on, a `?` drops `server`, which ends it.
        let inbox = Arc::new(Inbox::default());
        let thread_inbox = inbox.clone();
        let message = handlers.message;
        std::thread::Builder::new()
            .name("rfbsink-input".into())
            .spawn(move || {
                while let Some((client_id, msg)) = thread_inbox.pop() {
                    message(client_id, msg);
                }
            })
            .map_err(StartError::InputThread)?;
        let hub_inbox = inbox.clone();
        let request_keyframe = Arc::new(handlers.request_keyframe);
        let overloaded = Arc::new(handlers.overloaded);
        let target_bitrate = Arc::new(handlers.target_bitrate);
        let hub = Hub::new(
            settings.hub.clone(),
            Callbacks {
                // Never on render()'s thread.
                request_keyframe: Box::new(move |rendition| {
                    let request_keyframe = request_keyframe.clone();
                    RUNTIME.spawn_blocking(move || request_keyframe(rendition));
                }),
                overloaded: Box::new(move |overload| {
                    let (overloaded, overload) = (overloaded.clone(), overload.clone());
                    RUNTIME.spawn_blocking(move || overloaded(&overload));
                }),
                // In order: a later target never overtakes an earlier one.
                target_bitrate: Box::new(move |bps| {
                    let target_bitrate = target_bitrate.clone();
                    RUNTIME.spawn_blocking(move || target_bitrate(bps));
                }),
                on_message: Box::new(move |client, msg| {
                    if !hub_inbox.push(client.id, msg) {
                        client.close(
                            close::POLICY,
                            "input flood: more events than the pipeline takes",
                        );
                    }
                }),
            },
        );
        if settings.gray_window.is_some() {
            hub.set_window(protocol::window(settings.gray_window));
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut server = Server {
            hub: hub.clone(),
            local: addr,
            url: String::new(),
            view_url: String::new(),
            https: settings.https || settings.certificate_files.is_some(),
            webtransport_port: None,
            webtransport_off: None,
            shutdown,
            inbox,
            tasks: Vec::new(),
            webtransport: None,
            http: None,
        };

        let bound = HttpServer::bind(addr).map_err(|source| StartError::Listen { addr, source })?;
        let local = bound.local_addr;
        server.local = local;
        let certificates = if server.https || settings.webtransport {
            let source = match &settings.certificate_files {
                Some((cert, key)) => tls::Source::Files {
                    cert: cert.clone(),
                    key: key.clone(),
                },
                None => tls::Source::SelfSigned {
                    names: vec![local.ip().to_string(), settings.address.clone()],
                },
            };
            Some(Certificates::new(source)?)
        } else {
            None
        };
        let ctx = Context {
            hub: hub.clone(),
            access: Arc::new(Access::new(AccessSettings {
                tokens: settings.tokens.clone(),
                allowed_origins: settings.allowed_origins.clone(),
                address: settings.address.clone(),
                bound: local.ip(),
                http_port: local.port(),
                view_only: settings.view_only,
                relay_origin: settings.relay.as_ref().map(RelaySettings::origin),
            })),
            limits: settings.limits,
            shutdown: shutdown_rx,
            obj: obj.clone(),
        };
        let discovery = Arc::new(Discovery::default());
        if let Some(relay) = &settings.relay {
            discovery.set_relay(relay.public_url(), relay.broadcast.clone());
        }
        if let (Some(certs), true) = (&certificates, settings.webtransport) {
            let port = settings.webtransport_port.unwrap_or(local.port());
            match WtServer::start(local.ip(), port, certs, ctx.clone()) {
                Ok(wt) => {
                    discovery.set_webtransport(wt.port, certs.clone());
                    server.webtransport_port = Some(wt.port);
                    server.webtransport = Some(Arc::new(wt));
                }
                // The default port (the HTTP port's number) may be taken on UDP by another
                // program: the viewers use WebSocket. A port or certificate the user chose
                // must work.
                Err(e)
                    if settings.webtransport_port.is_none()
                        && settings.certificate_files.is_none() =>
                {
                    server.webtransport_off = Some(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        let tls_config = server
            .https
            .then(|| certificates.as_ref().expect("made above").rustls_config());
        let webrtc = WebRtc::new(IceSettings {
            stun_server: settings.stun_server.clone(),
            turn_server: settings.turn_server.clone(),
            ports: settings.webrtc_ports,
            local_address: Some(local.ip()),
        });
        server.http = Some(bound.serve(tls_config, ctx, discovery, webrtc));
        (server.url, server.view_url) = urls(server.https, local, settings.tokens.as_ref());

        // Each viewer gets its own figures every second, for its overlay; rate control ticks.
        let weak_hub = Arc::downgrade(&hub);
        server.every(Duration::from_secs(1), move || match weak_hub.upgrade() {
            Some(hub) => {
                hub.send_client_stats();
                hub.rate_tick();
                true
            }
            None => false,
        });
        // Rate control and the renditions' ladder between ticks (renditions may be requested
        // while running; with neither, a check is a few comparisons).
        let weak_hub = Arc::downgrade(&hub);
        server.every(crate::rate::CHECK_PERIOD, move || {
            weak_hub.upgrade().map(|hub| hub.rate_check()).is_some()
        });
        if let Some(certs) = certificates.filter(|c| c.is_self_signed()) {
            let task = renewal(certs, server.webtransport.clone(), settings.limits, obj);
            server.tasks.push(task);
        }
        Ok(server)
    }

    /// Runs `tick` every `period` (the first after one period) while the server runs, or until
    /// it returns false.
    pub fn every(&mut self, period: Duration, tick: impl Fn() -> bool + Send + 'static) {
        self.tasks.push(RUNTIME.spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                ticks.tick().await;
                if !tick() {
                    break;
                }
            }
        }));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The run first: the servers wait for what the shutdown signal ends.
        let _ = self.shutdown.send(true);
        // Not awaited: the drop may run inside one of them (a sync bus handler reacting to
        // rfbsink-stats); an aborted task ends at its next await.
        for task in self.tasks.drain(..) {
            task.abort();
        }
        self.inbox.close();
        if let Some(wt) = &self.webtransport {
            wt.stop();
        }
        if let Some(http) = self.http.take() {
            http.stop();
        }
    }
}

/// The control and view-only links (with their tokens).
fn urls(https: bool, local: SocketAddr, tokens: Option<&Tokens>) -> (String, String) {
    let scheme = if https { "https" } else { "http" };
    let host = if local.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else if local.is_ipv6() {
        format!("[{}]", local.ip())
    } else {
        local.ip().to_string()
    };
    let base = format!("{scheme}://{host}:{}/", local.port());
    match tokens {
        Some(t) => (
            format!("{base}?{TOKEN_PARAM}={}", t.control),
            format!("{base}?{TOKEN_PARAM}={}", t.view),
        ),
        None => (base.clone(), base),
    }
}

/// Renews a self-signed certificate before it expires (HTTPS picks it up at once,
/// WebTransport once reloaded); open sessions carry on.
fn renewal(
    certificates: Arc<Certificates>,
    webtransport: Option<Arc<WtServer>>,
    limits: Limits,
    obj: gst::Object,
) -> tokio::task::JoinHandle<()> {
    let weak = obj.downgrade();
    RUNTIME.spawn(async move {
        while let Some(wait) = certificates.renew_in() {
            tokio::time::sleep(wait).await;
            let result = certificates
                .renew()
                .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
                .and_then(|()| match &webtransport {
                    Some(wt) => Ok(wt.reload(&certificates, limits.idle_timeout)?),
                    None => Ok(()),
                });
            let Some(obj) = weak.upgrade() else { break };
            match result {
                Ok(()) => gst::info!(CAT, obj = obj, "renewed the self-signed certificate"),
                Err(e) => gst::error!(CAT, obj = obj, "certificate renewal: {e}"),
            }
        }
    })
}
