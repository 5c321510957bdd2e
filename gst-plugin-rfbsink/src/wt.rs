// The WebTransport server (HTTP/3 over QUIC, wtransport on the plugin's runtime): the same hub,
// protocol and input path as the WebSocket, on QUIC streams and datagrams.
//
// - one bidirectional control stream, opened by the server: hello, eos, errors and application
//   messages out; keyframe requests, input and application messages in (length-prefixed JSON);
// - video on unidirectional streams, one per group of pictures starting at a keyframe (config and
//   binary-envelope frames, length-prefixed). A client that fell behind has its stale group reset
//   and starts on a fresh stream at the next keyframe: no head-of-line blocking;
// - datagrams from the client for latest-wins traffic (pointer moves, acks, decoder queue depth).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use wtransport::endpoint::endpoint_side::Server;
use wtransport::endpoint::IncomingSession;
use wtransport::tls::self_signed::time;
use wtransport::{Connection, Endpoint, Identity, SendStream, ServerConfig, VarInt};

use crate::hub::{Client, Frame, Hub, Item};
use crate::protocol::{self, close, length_prefix, Envelope, MessageReader, MAX_CLIENT_MESSAGE};
use crate::rfbsink::CAT;
use crate::runtime::RUNTIME;

/// The path of WebTransport sessions.
pub const PATH: &str = "/wt";
/// Chromium accepts serverCertificateHashes only for certificates valid at most 14 days.
const SELF_SIGNED_VALIDITY: time::Duration = time::Duration::days(14);
/// A self-signed certificate is replaced this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(2 * 24 * 3600);
const CONTROL_PRIORITY: i32 = 10;

pub struct WtSettings {
    pub address: IpAddr,
    pub port: u16,
    pub certificate_file: Option<PathBuf>,
    pub private_key_file: Option<PathBuf>,
}

/// What the viewer needs to connect, served by the HTTP server at /rfb.json.
#[derive(Debug)]
pub struct WtInfo {
    pub port: u16,
    /// SHA-256 of the self-signed certificate (hex); None with a certificate from files, which
    /// the browser validates the usual way.
    certificate_hash: Mutex<Option<String>>,
}

impl WtInfo {
    pub fn to_json(&self) -> serde_json::Value {
        let hashes: Vec<_> = self
            .certificate_hash
            .lock()
            .unwrap()
            .iter()
            .map(|h| json!({"algorithm": "sha-256", "value": h}))
            .collect();
        json!({"port": self.port, "path": PATH, "certificate_hashes": hashes})
    }
}

pub struct WtServer {
    pub info: Arc<WtInfo>,
    endpoints: Vec<Arc<Endpoint<Server>>>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
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

fn self_signed() -> Result<Identity, String> {
    let now = time::OffsetDateTime::now_utc();
    // A little slack for clocks, inside the 14 days.
    let not_before = now - time::Duration::minutes(10);
    Identity::self_signed_builder()
        .subject_alt_names(["localhost", "127.0.0.1", "::1"])
        .not_before(not_before)
        .not_after(not_before + SELF_SIGNED_VALIDITY)
        .build()
        .map_err(|e| format!("cannot generate a self-signed certificate: {e}"))
}

/// SHA-256 of the certificate's DER, lowercase hex (what serverCertificateHashes takes).
fn hash_hex(identity: &Identity) -> String {
    let digest = identity.certificate_chain().as_slice()[0].hash();
    let bytes: &[u8; 32] = digest.as_ref();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn server_config(addr: SocketAddr, identity: &Identity) -> ServerConfig {
    let builder = ServerConfig::builder();
    let builder = match addr {
        SocketAddr::V4(_) => builder.with_bind_address(addr),
        SocketAddr::V6(v6) => {
            builder.with_bind_address_v6(v6, wtransport::config::Ipv6DualStackConfig::Deny)
        }
    };
    builder
        .with_identity(identity.clone_identity())
        .keep_alive_interval(Some(Duration::from_secs(3)))
        .max_idle_timeout(Some(Duration::from_secs(15)))
        .expect("15 s is a valid idle timeout")
        .build()
}

impl WtServer {
    pub fn start(settings: WtSettings, hub: Arc<Hub>) -> Result<WtServer, String> {
        let _guard = RUNTIME.enter();
        let (identity, self_signed_cert) =
            match (&settings.certificate_file, &settings.private_key_file) {
                (Some(cert), Some(key)) => {
                    let identity = RUNTIME
                        .block_on(Identity::load_pemfiles(cert, key))
                        .map_err(|e| {
                            format!("cannot load {} / {}: {e}", cert.display(), key.display())
                        })?;
                    (identity, false)
                }
                (None, None) => (self_signed()?, true),
                _ => {
                    return Err(
                        "certificate-file and private-key-file go together: set both or neither"
                            .into(),
                    )
                }
            };

        let mut endpoints = Vec::new();
        let mut port = settings.port;
        for (i, ip) in bind_addresses(settings.address).into_iter().enumerate() {
            let addr = SocketAddr::new(ip, port);
            match Endpoint::server(server_config(addr, &identity)) {
                Ok(endpoint) => {
                    if port == 0 {
                        port = endpoint.local_addr().map_err(|e| e.to_string())?.port();
                    }
                    endpoints.push(Arc::new(endpoint));
                }
                // The second loopback (::1) is optional: a machine may have no IPv6.
                Err(e) if i > 0 => {
                    gst::warning!(CAT, "WebTransport: cannot bind {addr} (UDP): {e}")
                }
                Err(e) => return Err(format!("cannot bind {addr} (UDP): {e}")),
            }
        }

        let info = Arc::new(WtInfo {
            port,
            certificate_hash: Mutex::new(self_signed_cert.then(|| hash_hex(&identity))),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks: Vec<_> = endpoints
            .iter()
            .map(|endpoint| {
                RUNTIME.spawn(accept_loop(
                    endpoint.clone(),
                    hub.clone(),
                    shutdown_rx.clone(),
                ))
            })
            .collect();
        if self_signed_cert {
            tasks.push(RUNTIME.spawn(renew_loop(endpoints.clone(), info.clone(), port)));
        }
        gst::info!(CAT, "WebTransport on UDP port {port}");
        Ok(WtServer {
            info,
            endpoints,
            shutdown,
            tasks,
        })
    }

    pub fn stop(self) {
        let _ = self.shutdown.send(true);
        for endpoint in &self.endpoints {
            endpoint.close(
                VarInt::from_u32(close::GOING_AWAY.into()),
                b"server stopping",
            );
        }
        for task in &self.tasks {
            task.abort();
        }
        RUNTIME.block_on(async {
            for endpoint in &self.endpoints {
                let _ =
                    tokio::time::timeout(Duration::from_millis(500), endpoint.wait_idle()).await;
            }
        });
    }
}

/// Replaces the self-signed certificate before it expires; sessions already open carry on.
async fn renew_loop(endpoints: Vec<Arc<Endpoint<Server>>>, info: Arc<WtInfo>, port: u16) {
    loop {
        tokio::time::sleep(Duration::try_from(SELF_SIGNED_VALIDITY).unwrap() - RENEW_BEFORE).await;
        let identity = match self_signed() {
            Ok(i) => i,
            Err(e) => {
                gst::error!(CAT, "WebTransport: {e}");
                continue;
            }
        };
        for endpoint in &endpoints {
            let Ok(addr) = endpoint.local_addr() else {
                continue;
            };
            if let Err(e) = endpoint.reload_config(
                server_config(SocketAddr::new(addr.ip(), port), &identity),
                false,
            ) {
                gst::error!(CAT, "WebTransport: cannot renew the certificate: {e}");
            }
        }
        *info.certificate_hash.lock().unwrap() = Some(hash_hex(&identity));
        gst::info!(CAT, "WebTransport: renewed the self-signed certificate");
    }
}

async fn accept_loop(
    endpoint: Arc<Endpoint<Server>>,
    hub: Arc<Hub>,
    shutdown: watch::Receiver<bool>,
) {
    loop {
        let incoming = endpoint.accept().await;
        RUNTIME.spawn(session(incoming, hub.clone(), shutdown.clone()));
    }
}

fn varint(code: u16) -> VarInt {
    VarInt::from_u32(code.into())
}

async fn session(incoming: IncomingSession, hub: Arc<Hub>, mut shutdown: watch::Receiver<bool>) {
    let request = match incoming.await {
        Ok(r) => r,
        Err(e) => {
            gst::info!(CAT, "WebTransport handshake failed: {e}");
            return;
        }
    };
    if request.path().split('?').next() != Some(PATH) {
        gst::info!(
            CAT,
            "WebTransport session for unknown path {:?} refused",
            request.path()
        );
        request.not_found().await;
        return;
    }
    let remote = request.remote_address();
    let conn = match request.accept().await {
        Ok(c) => c,
        Err(e) => {
            gst::info!(CAT, "WebTransport session from {remote} failed: {e}");
            return;
        }
    };
    let client = match hub.add_client(Envelope::Binary, "webtransport", Some(remote)) {
        Ok(c) => c,
        Err(reason) => {
            conn.close(varint(close::TRY_AGAIN_LATER), reason.as_bytes());
            return;
        }
    };
    gst::debug!(
        CAT,
        "client {} connected over WebTransport from {remote}",
        client.id
    );

    let result = async {
        let (mut control_tx, control_rx) = conn.open_bi().await?.await?;
        control_tx.set_priority(CONTROL_PRIORITY);
        tokio::select! {
            r = send_loop(&client, &conn, &mut control_tx) => r,
            _ = read_control(&client, &hub, control_rx) => Ok(()),
            _ = read_datagrams(&client, &hub, &conn) => Ok(()),
            _ = shutdown.wait_for(|stop| *stop) => {
                conn.close(varint(close::GOING_AWAY), b"server stopping");
                Ok(())
            }
        }
    }
    .await;
    if let Err(e) = result {
        gst::debug!(CAT, "client {}: WebTransport session ended: {e}", client.id);
    }
    hub.remove_client(client.id);
}

type SessionResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn write_message(stream: &mut SendStream, msg: &[u8]) -> SessionResult {
    stream.write_all(&length_prefix(msg.len())).await?;
    stream.write_all(msg).await?;
    Ok(())
}

/// The current group of pictures' stream.
struct VideoStream {
    stream: SendStream,
    config_id: Option<u32>,
}

async fn send_loop(client: &Client, conn: &Connection, control: &mut SendStream) -> SessionResult {
    let mut video: Option<VideoStream> = None;
    let mut last_sent: Option<u64> = None;
    loop {
        match client.next().await {
            Item::Text(text) => write_message(control, text.as_bytes()).await?,
            // Configs travel on the video stream, just before the first frame that needs them.
            Item::Config(_) => {}
            Item::Frame(frame) => {
                send_frame(client, conn, &mut video, &mut last_sent, &frame, false).await?
            }
            Item::Burst(frames) => {
                for frame in &frames {
                    send_frame(client, conn, &mut video, &mut last_sent, frame, true).await?;
                }
            }
            Item::Close(code, reason) => {
                conn.close(varint(code), reason.as_bytes());
                return Ok(());
            }
        }
    }
}

async fn send_frame(
    client: &Client,
    conn: &Connection,
    video: &mut Option<VideoStream>,
    last_sent: &mut Option<u64>,
    frame: &Frame,
    replayed: bool,
) -> SessionResult {
    if frame.is_key() || video.is_none() {
        if let Some(mut old) = video.take() {
            let gap = last_sent.is_some_and(|id| frame.header.frame_id != id + 1);
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
            // The hub never hands a client a delta it cannot decode; nothing to start a group on.
            return Ok(());
        }
        *video = Some(VideoStream {
            stream: conn.open_uni().await?.await?,
            config_id: None,
        });
    }
    let v = video.as_mut().expect("opened above");
    if v.config_id != Some(frame.config.id) {
        write_message(&mut v.stream, protocol::config(&frame.config).as_bytes()).await?;
        v.config_id = Some(frame.config.id);
    }
    write_message(&mut v.stream, &frame.binary_message()).await?;
    client.sent(frame, replayed);
    *last_sent = Some(frame.header.frame_id);
    Ok(())
}

/// Reads the client's control stream. A protocol violation closes the session with its reason.
async fn read_control(client: &Arc<Client>, hub: &Arc<Hub>, mut rx: wtransport::RecvStream) {
    let mut reader = MessageReader::new(MAX_CLIENT_MESSAGE);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match rx.read(&mut buf).await {
            Ok(Some(n)) => n,
            Ok(None) | Err(_) => return std::future::pending().await,
        };
        let messages = reader.push(&buf[..n]).and_then(|msgs| {
            msgs.iter()
                .map(|m| protocol::parse_client_bytes(m))
                .collect::<Result<Vec<_>, _>>()
        });
        match messages {
            Ok(msgs) => {
                for m in msgs {
                    hub.on_client_message(client, m);
                }
            }
            Err(e) => {
                gst::warning!(
                    CAT,
                    "closing WebTransport client {}: {}",
                    client.id,
                    e.reason
                );
                client.close(e.code, e.reason);
                return std::future::pending().await;
            }
        }
    }
}

/// Reads datagrams as they come (the latest-wins traffic). Ends when the session does.
async fn read_datagrams(client: &Arc<Client>, hub: &Arc<Hub>, conn: &Connection) {
    loop {
        let datagram = match conn.receive_datagram().await {
            Ok(d) => d,
            Err(_) => return,
        };
        match protocol::parse_client_bytes(&datagram) {
            Ok(m) => hub.on_client_message(client, m),
            Err(e) => {
                gst::warning!(
                    CAT,
                    "closing WebTransport client {}: bad datagram: {}",
                    client.id,
                    e.reason
                );
                client.close(e.code, format!("bad datagram: {}", e.reason));
                return std::future::pending().await;
            }
        }
    }
}
