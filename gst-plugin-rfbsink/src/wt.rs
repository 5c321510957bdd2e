// SPDX-License-Identifier: MPL-2.0

//! The WebTransport wire adapter (HTTP/3 over QUIC, wtransport on the plugin's runtime): the
//! same session layer as the WebSocket, on QUIC streams and datagrams (docs/protocol.md).
//!
//! - one bidirectional control stream, opened by the server: hello, eos, errors and application
//!   messages out; keyframe requests, input and application messages in (length-prefixed JSON);
//! - video on unidirectional streams, one per group of pictures starting at a keyframe (config
//!   and binary-envelope frames, length-prefixed). A client that fell behind has its stale group
//!   reset and starts on a fresh stream at the next keyframe: no head-of-line blocking;
//! - datagrams from the client for latest-wins traffic (pointer moves, acks, decoder queue
//!   depth).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use wtransport::config::QuicTransportConfig;
use wtransport::endpoint::endpoint_side::Server;
use wtransport::endpoint::IncomingSession;
use wtransport::error::SendDatagramError;
use wtransport::{Connection, Endpoint, Identity, RecvStream, SendStream, ServerConfig, VarInt};

use crate::access::{query_param, Request, TOKEN_PARAM};
use crate::audio::{self, AudioPacket};
use crate::discovery::WT_PATH;
use crate::hub::{Frame, Peer};
use crate::ladder;
use crate::protocol::{
    self, close, length_prefix, Envelope, MessageReader, StreamConfig, MAX_CLIENT_MESSAGE,
};
use crate::runtime::RUNTIME;
use crate::session::{self, Context, Inbound, Keepalive, WireError, WireRecv, WireSend};
use crate::tls::Certificates;
use crate::CAT;

const CONTROL_PRIORITY: i32 = 10;
const AUDIO_PRIORITY: i32 = 5;
/// The QUIC handshake and the CONNECT request must be done within this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// QUIC connections still in their handshake, at most.
const MAX_INCOMING: usize = 256;
/// Streams a client may open: HTTP/3 needs three unidirectional ones (control, QPACK) and the
/// CONNECT request one bidirectional; the protocol needs no more.
const MAX_CLIENT_UNI_STREAMS: u32 = 8;
const MAX_CLIENT_BIDI_STREAMS: u32 = 4;
/// Buffered datagrams from one client (acks and pointer moves are small).
const DATAGRAM_RECEIVE_BUFFER: usize = 64 * 1024;
/// Datagrams to one client waiting for the congestion window (`audio=datagram`): ~0.4 s of
/// opusenc's default 64 kbit/s (~0.2 s at 128 kbit/s); older ones are dropped, as sound that
/// late would be cut by the viewer's jitter buffer anyway.
const DATAGRAM_SEND_BUFFER: usize = 4 * 1024;

pub(crate) struct WtServer {
    pub port: u16,
    endpoints: Vec<Arc<Endpoint<Server>>>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The addresses to bind: a loopback address means both loopbacks, since Chromium resolves
/// `localhost` to ::1 first and does not fall back to 127.0.0.1 for WebTransport.
fn bind_addresses(address: IpAddr) -> Vec<IpAddr> {
    if address.is_loopback() {
        vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]
    } else {
        vec![address]
    }
}

/// Why WebTransport did not start, or did not take a renewed certificate.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot bind {addr} (UDP): {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the bound address: {0}")]
    Address(#[source] std::io::Error),
    #[error("cannot take the renewed certificate: {0}")]
    Reload(#[source] std::io::Error),
}

impl Error {
    /// The UDP port is taken.
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse)
    }
}

fn server_config(addr: SocketAddr, identity: Identity, idle: Duration) -> ServerConfig {
    let mut transport = QuicTransportConfig::default();
    transport
        .max_concurrent_uni_streams(wtransport::quinn::VarInt::from_u32(MAX_CLIENT_UNI_STREAMS))
        .max_concurrent_bidi_streams(wtransport::quinn::VarInt::from_u32(MAX_CLIENT_BIDI_STREAMS))
        .stream_receive_window(wtransport::quinn::VarInt::from_u32(
            4 * MAX_CLIENT_MESSAGE as u32,
        ))
        .datagram_receive_buffer_size(Some(DATAGRAM_RECEIVE_BUFFER))
        .datagram_send_buffer_size(DATAGRAM_SEND_BUFFER);
    let builder = ServerConfig::builder();
    let builder = match addr {
        SocketAddr::V4(_) => builder.with_bind_address(addr),
        SocketAddr::V6(v6) => {
            builder.with_bind_address_v6(v6, wtransport::config::Ipv6DualStackConfig::Deny)
        }
    };
    let mut config = builder
        .with_custom_transport(identity, transport)
        .keep_alive_interval(Some(Duration::from_secs(3)))
        .max_idle_timeout(Some(idle.max(Duration::from_secs(5))))
        .expect("a valid idle timeout")
        .build();
    config.quic_config_mut().max_incoming(MAX_INCOMING);
    config
}

impl WtServer {
    /// Binds (UDP) and accepts sessions until `ctx.shutdown`.
    pub fn start(
        address: IpAddr,
        port: u16,
        certificates: &Certificates,
        ctx: Context,
    ) -> Result<WtServer, Error> {
        let _guard = RUNTIME.enter();
        let mut endpoints = Vec::new();
        let mut port = port;
        for (i, ip) in bind_addresses(address).into_iter().enumerate() {
            let addr = SocketAddr::new(ip, port);
            let config = server_config(addr, certificates.identity(), ctx.limits.idle_timeout);
            match Endpoint::server(config) {
                Ok(endpoint) => {
                    if port == 0 {
                        port = endpoint.local_addr().map_err(Error::Address)?.port();
                    }
                    endpoints.push(Arc::new(endpoint));
                }
                // The second loopback (::1) is optional: a machine may have no IPv6.
                Err(e) if i > 0 => gst::warning!(
                    CAT,
                    obj = &ctx.obj,
                    "WebTransport: cannot bind {addr} (UDP): {e}"
                ),
                Err(source) => return Err(Error::Bind { addr, source }),
            }
        }
        let tasks = endpoints
            .iter()
            .map(|endpoint| RUNTIME.spawn(accept_loop(endpoint.clone(), ctx.clone())))
            .collect();
        gst::info!(CAT, obj = &ctx.obj, "WebTransport on UDP port {port}");
        Ok(WtServer {
            port,
            endpoints,
            tasks: std::sync::Mutex::new(tasks),
        })
    }

    /// Takes a renewed certificate for new sessions; open sessions carry on.
    pub fn reload(&self, certificates: &Certificates, idle: Duration) -> Result<(), Error> {
        for endpoint in &self.endpoints {
            let addr = endpoint.local_addr().map_err(Error::Address)?;
            endpoint
                .reload_config(server_config(addr, certificates.identity(), idle), false)
                .map_err(Error::Reload)?;
        }
        Ok(())
    }

    /// Call after signalling `ctx.shutdown`. The accept loops end before the endpoints close:
    /// accepting on a closed endpoint panics in wtransport.
    pub fn stop(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap());
        crate::runtime::block_on(async {
            for task in &tasks {
                task.abort();
            }
            for task in tasks {
                let _ = task.await;
            }
            for endpoint in &self.endpoints {
                endpoint.close(varint(close::GOING_AWAY), b"server stopping");
            }
            for endpoint in &self.endpoints {
                let _ =
                    tokio::time::timeout(Duration::from_millis(500), endpoint.wait_idle()).await;
            }
        });
    }
}

async fn accept_loop(endpoint: Arc<Endpoint<Server>>, ctx: Context) {
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let incoming = tokio::select! {
            biased;
            _ = session::stopping(&mut shutdown) => return,
            incoming = endpoint.accept() => incoming,
        };
        RUNTIME.spawn(connection(incoming, ctx.clone()));
    }
}

fn varint(code: u16) -> VarInt {
    VarInt::from_u32(code.into())
}

/// One WebTransport session: handshake, access checks on the CONNECT request, then the session
/// layer.
async fn connection(incoming: IncomingSession, ctx: Context) {
    let request = match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            gst::info!(CAT, obj = &ctx.obj, "WebTransport handshake failed: {e}");
            return;
        }
        Err(_) => {
            gst::info!(CAT, obj = &ctx.obj, "WebTransport handshake timed out");
            return;
        }
    };
    let (path, query) = request
        .path()
        .split_once('?')
        .unwrap_or((request.path(), ""));
    if path != WT_PATH {
        gst::info!(
            CAT,
            obj = &ctx.obj,
            "WebTransport session for unknown path {path:?} refused"
        );
        request.not_found().await;
        return;
    }
    let token = query_param(query, TOKEN_PARAM);
    let audio_param = query_param(query, audio::AUDIO_PARAM);
    let audio = audio::wants_audio(audio_param.as_deref());
    let audio_datagrams = audio::wants_datagrams(audio_param.as_deref());
    let downlink_bps = ladder::downlink_bps(query_param(query, ladder::DOWNLINK_PARAM).as_deref());
    let headers = request.headers();
    let access = Request {
        host: Some(request.authority()),
        origin: request.origin(),
        query_token: token.as_deref(),
        authorization: headers.get("authorization").map(String::as_str),
        cookie: headers.get("cookie").map(String::as_str),
    };
    let role = match session::authorize(&ctx, "webtransport", &access) {
        Ok(role) => role,
        Err(_) => {
            request.forbidden().await;
            return;
        }
    };
    let remote = request.remote_address();
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, request.accept()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            gst::info!(
                CAT,
                obj = &ctx.obj,
                "WebTransport session from {remote} failed: {e}"
            );
            return;
        }
        Err(_) => return,
    };
    let peer = Peer {
        remote: Some(remote),
        role,
        audio,
        downlink_bps,
    };
    let client = match session::join(&ctx, Envelope::Binary, "webtransport", peer) {
        Ok(c) => c,
        Err(refused) => {
            let reason = protocol::close_reason(refused.to_string());
            conn.close(varint(close::TRY_AGAIN_LATER), reason.as_bytes());
            return;
        }
    };
    let control = async {
        let opening = conn.open_bi().await.map_err(|e| e.to_string())?;
        opening.await.map_err(|e| e.to_string())
    };
    let (control_tx, control_rx) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, control).await {
        Ok(Ok(streams)) => streams,
        _ => {
            ctx.hub.remove_client(client.id);
            conn.close(varint(close::GOING_AWAY), b"no control stream");
            return;
        }
    };
    control_tx.set_priority(CONTROL_PRIORITY);
    let sender = WtSend {
        conn: conn.clone(),
        control: control_tx,
        video: None,
        last_sent: None,
        audio: None,
        audio_config_id: None,
        audio_datagrams,
    };
    let receiver = WtRecv {
        conn,
        control: Some(control_rx),
        reader: MessageReader::new(MAX_CLIENT_MESSAGE),
        pending: VecDeque::new(),
        buf: vec![0u8; 16 * 1024],
    };
    session::run(ctx, client, sender, receiver).await;
}

fn transport_error(e: impl std::fmt::Display) -> WireError {
    WireError::Transport(e.to_string())
}

async fn write_message(stream: &mut SendStream, msg: &[u8]) -> Result<(), WireError> {
    stream
        .write_all(&length_prefix(msg.len()))
        .await
        .map_err(transport_error)?;
    stream.write_all(msg).await.map_err(transport_error)
}

/// A new unidirectional stream to the client.
async fn open_uni(conn: &Connection) -> Result<SendStream, WireError> {
    conn.open_uni()
        .await
        .map_err(transport_error)?
        .await
        .map_err(transport_error)
}

/// The current group of pictures' stream.
struct VideoStream {
    stream: SendStream,
    config_id: Option<u32>,
}

struct WtSend {
    conn: Connection,
    control: SendStream,
    video: Option<VideoStream>,
    /// The last frame's rendition and place in it (`Frame::place`).
    last_sent: Option<(u32, u64)>,
    /// Sound's own stream, opened with the first packet: `audio-config`, then the packets (or,
    /// with `audio_datagrams`, the configs alone).
    audio: Option<SendStream>,
    audio_config_id: Option<u32>,
    /// `audio=datagram`: packets as datagrams, lost rather than late.
    audio_datagrams: bool,
}

impl WireSend for WtSend {
    async fn text(&mut self, text: &str) -> Result<(), WireError> {
        write_message(&mut self.control, text.as_bytes()).await
    }

    /// Configs travel on the video stream, just before the first frame that needs them.
    async fn config(&mut self, _config: &Arc<StreamConfig>) -> Result<(), WireError> {
        Ok(())
    }

    async fn frame(&mut self, frame: &Arc<Frame>) -> Result<(), WireError> {
        if frame.is_key() || self.video.is_none() {
            if let Some(mut old) = self.video.take() {
                let gap = self.last_sent.is_some() && !frame.follows(self.last_sent);
                if gap {
                    // The client fell behind: what is still unsent of the old group is stale.
                    let _ = old.stream.reset(VarInt::from_u32(0));
                } else {
                    RUNTIME.spawn(async move {
                        let _ = old.stream.finish().await;
                    });
                }
            }
            if !frame.is_key() {
                // The hub never hands a client a delta it cannot decode; nothing to start a
                // group on.
                return Ok(());
            }
            let stream = open_uni(&self.conn).await?;
            self.video = Some(VideoStream {
                stream,
                config_id: None,
            });
        }
        let v = self.video.as_mut().expect("opened above");
        if v.config_id != Some(frame.config.id) {
            write_message(&mut v.stream, protocol::config(&frame.config).as_bytes()).await?;
            v.config_id = Some(frame.config.id);
        }
        write_message(&mut v.stream, &frame.binary_message()).await?;
        self.last_sent = frame.place();
        Ok(())
    }

    async fn audio(&mut self, packet: &Arc<AudioPacket>) -> Result<(), WireError> {
        if self.audio.is_none() {
            let stream = open_uni(&self.conn).await?;
            // Behind the control stream, ahead of the pictures: sound is small and late sound
            // is heard.
            stream.set_priority(AUDIO_PRIORITY);
            self.audio = Some(stream);
        }
        let stream = self.audio.as_mut().expect("opened above");
        if self.audio_config_id != Some(packet.config.id) {
            write_message(stream, audio::audio_config(&packet.config).as_bytes()).await?;
            self.audio_config_id = Some(packet.config.id);
        }
        let message = packet.binary_message();
        if self.audio_datagrams {
            // Ahead of every stream in each QUIC packet; one that a congested link cannot take
            // waits in a small buffer, then is dropped (DATAGRAM_SEND_BUFFER). Too large for a
            // datagram (a long Opus packet) or a client without datagrams: on the stream.
            match self.conn.send_datagram(&message) {
                Ok(()) => return Ok(()),
                Err(SendDatagramError::NotConnected) => {
                    return Err(transport_error(SendDatagramError::NotConnected));
                }
                Err(SendDatagramError::TooLarge | SendDatagramError::UnsupportedByPeer) => {}
            }
        }
        write_message(stream, &message).await
    }

    async fn keepalive(&mut self) -> Result<Keepalive, WireError> {
        Ok(Keepalive::Transport)
    }

    async fn close(&mut self, code: u16, reason: &str) {
        self.conn.close(varint(code), reason.as_bytes());
    }
}

/// The client's control stream (length-prefixed messages) and its datagrams, as one inbound
/// sequence.
struct WtRecv {
    conn: Connection,
    /// None once the client finished its side of the control stream (datagrams still count).
    control: Option<RecvStream>,
    reader: MessageReader,
    pending: VecDeque<Vec<u8>>,
    buf: Vec<u8>,
}

enum Read {
    Control(Option<usize>),
    Datagram(Option<Bytes>),
}

impl WireRecv for WtRecv {
    async fn next(&mut self) -> Inbound {
        loop {
            if let Some(msg) = self.pending.pop_front() {
                return Inbound::Message(Bytes::from(msg));
            }
            let read = {
                let control = async {
                    match self.control.as_mut() {
                        Some(rx) => rx.read(&mut self.buf).await.ok().flatten(),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    n = control => Read::Control(n),
                    d = self.conn.receive_datagram() => Read::Datagram(d.ok().map(|d| d.payload())),
                }
            };
            match read {
                Read::Control(Some(n)) => match self.reader.push(&self.buf[..n]) {
                    Ok(msgs) => self.pending.extend(msgs),
                    Err(_) => return Inbound::TooBig,
                },
                Read::Control(None) => self.control = None,
                Read::Datagram(Some(d)) => return Inbound::Datagram(d),
                Read::Datagram(None) => return Inbound::Gone,
            }
        }
    }
}
