// The HTTP server: the embedded viewer and the WebSocket transport (warp on the plugin's runtime).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use warp::http::{header, Response, StatusCode};
use warp::hyper::body::Bytes;
use warp::ws::{Message, WebSocket, Ws};
use warp::{Filter, Reply};

use crate::hub::{Client, Frame, Hub, Item};
use crate::protocol::{self, close, Envelope, MAX_CLIENT_MESSAGE};
use crate::runtime::RUNTIME;
use crate::wt::WtInfo;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// What /rfb.json tells the viewer: how else it can connect (WebTransport, once it runs).
#[derive(Default)]
pub struct Discovery {
    pub webtransport: Mutex<Option<Arc<WtInfo>>>,
}

impl Discovery {
    fn to_json(&self) -> String {
        let wt = self
            .webtransport
            .lock()
            .unwrap()
            .as_ref()
            .map(|w| w.to_json());
        serde_json::json!({"protocol": protocol::PROTOCOL_VERSION, "webtransport": wt}).to_string()
    }
}

/// How long stop() lets clients receive their close message before dropping them.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

pub struct WsServer {
    pub local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WsServer {
    /// Binds at once (so that a busy port is an error now, not later) and serves on the runtime.
    pub fn start(
        addr: SocketAddr,
        hub: Arc<Hub>,
        discovery: Arc<Discovery>,
    ) -> std::io::Result<WsServer> {
        let _guard = RUNTIME.enter();
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        // Accepted sockets inherit TCP_NODELAY from the listener on Linux: no Nagle delay on
        // small frames.
        socket.set_nodelay(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        let local_addr = listener.local_addr()?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let routes = routes(hub, discovery, shutdown_rx.clone());
        let mut rx = shutdown_rx;
        let task = RUNTIME.spawn(
            warp::serve(routes)
                .incoming(listener)
                .graceful(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
                .run(),
        );
        Ok(WsServer {
            local_addr,
            shutdown,
            task,
        })
    }

    /// Closes every client and the listener; the port is free when this returns.
    pub fn stop(self) {
        let _ = self.shutdown.send(true);
        let mut task = self.task;
        RUNTIME.block_on(async {
            // Keep-alive HTTP connections can hold a graceful shutdown; the listener is what must
            // go, and aborting the server task drops it.
            if tokio::time::timeout(CLOSE_GRACE * 4, &mut task)
                .await
                .is_err()
            {
                task.abort();
                let _ = task.await;
            }
        });
    }
}

fn routes(
    hub: Arc<Hub>,
    discovery: Arc<Discovery>,
    shutdown: watch::Receiver<bool>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible>
       + Clone
       + Send
       + Sync
       + 'static {
    let ws = warp::path("ws")
        .and(warp::path::end())
        .or(warp::path::end())
        .unify()
        .and(warp::ws())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::addr::remote())
        .map(
            move |ws: Ws, query: HashMap<String, String>, remote: Option<SocketAddr>| {
                let hub = hub.clone();
                let shutdown = shutdown.clone();
                ws.max_message_size(MAX_CLIENT_MESSAGE)
                    .max_frame_size(MAX_CLIENT_MESSAGE)
                    .on_upgrade(move |socket| session(socket, query, remote, hub, shutdown))
                    .into_response()
            },
        );
    let discovery = warp::get()
        .and(warp::path("rfb.json"))
        .and(warp::path::end())
        .map(move || {
            Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CACHE_CONTROL, "no-cache")
                .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
                .body(Bytes::from(discovery.to_json()))
                .unwrap()
                .into_response()
        });
    let assets = warp::get()
        .and(warp::path::tail())
        .map(|tail: warp::path::Tail| asset(tail.as_str()).into_response());
    ws.or(discovery)
        .unify()
        .or(assets)
        .unify()
        .recover(|_| async { Ok::<_, std::convert::Infallible>(not_found().into_response()) })
        .unify()
}

fn asset(path: &str) -> Response<warp::hyper::body::Bytes> {
    let name = if path.is_empty() { "index.html" } else { path };
    match assets::ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, body)) => Response::builder()
            .header(header::CONTENT_TYPE, *mime)
            .header(header::CACHE_CONTROL, "no-cache")
            // Other origins (Tauri, Electron, Jupyter pages) import the viewer module.
            .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
            .body(Bytes::from_static(body))
            .unwrap(),
        None => not_found(),
    }
}

fn not_found() -> Response<Bytes> {
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Bytes::from_static(b"not found\n"))
        .unwrap()
}

/// One WebSocket client, from upgrade to close.
async fn session(
    socket: WebSocket,
    query: HashMap<String, String>,
    remote: Option<SocketAddr>,
    hub: Arc<Hub>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut tx, mut rx) = socket.split();
    let envelope = match Envelope::parse(query.get("envelope").map(String::as_str)) {
        Ok(e) => e,
        Err(reason) => {
            let _ = tx.send(Message::close_with(close::POLICY, reason)).await;
            return;
        }
    };
    let client = match hub.add_client(envelope, "websocket", remote) {
        Ok(c) => c,
        Err(reason) => {
            let _ = tx
                .send(Message::close_with(close::TRY_AGAIN_LATER, reason))
                .await;
            return;
        }
    };
    gst::debug!(
        crate::rfbsink::CAT,
        "client {} connected from {remote:?} ({})",
        client.id,
        envelope.name()
    );

    let sender = send_loop(&client, &mut tx);
    let receiver = receive_loop(&client, &hub, &mut rx);
    let stopping = async {
        let _ = shutdown.wait_for(|stop| *stop).await;
        client.close(close::GOING_AWAY, "server stopping");
        tokio::time::sleep(CLOSE_GRACE).await;
    };
    tokio::select! {
        result = sender => if let Err(e) = result {
            gst::debug!(crate::rfbsink::CAT, "client {}: send failed: {e}", client.id);
        },
        _ = receiver => {},
        _ = stopping => {},
    }
    hub.remove_client(client.id);
    gst::debug!(crate::rfbsink::CAT, "client {} gone", client.id);
}

type WsSink = futures_util::stream::SplitSink<WebSocket, Message>;
type WsStream = futures_util::stream::SplitStream<WebSocket>;

async fn send_loop(client: &Client, tx: &mut WsSink) -> Result<(), warp::Error> {
    let mut config_id = None;
    loop {
        match client.next().await {
            Item::Text(text) => tx.send(Message::text(text)).await?,
            Item::Config(config) => {
                tx.send(Message::text(protocol::config(&config))).await?;
                config_id = Some(config.id);
            }
            Item::Frame(frame) => send_frame(client, tx, &frame, &mut config_id, false).await?,
            Item::Burst(frames) => {
                for frame in &frames {
                    send_frame(client, tx, frame, &mut config_id, true).await?;
                }
            }
            Item::Close(code, reason) => {
                tx.send(Message::close_with(code, reason)).await?;
                return Ok(());
            }
        }
    }
}

async fn send_frame(
    client: &Client,
    tx: &mut WsSink,
    frame: &Frame,
    config_id: &mut Option<u32>,
    replayed: bool,
) -> Result<(), warp::Error> {
    if *config_id != Some(frame.config.id) {
        tx.feed(Message::text(protocol::config(&frame.config)))
            .await?;
        *config_id = Some(frame.config.id);
    }
    match client.envelope {
        Envelope::Json => {
            tx.feed(Message::text(frame.json_header())).await?;
            tx.send(Message::binary(frame.payload.clone())).await?;
        }
        Envelope::Binary => tx.send(Message::binary(frame.binary_message())).await?,
    }
    client.sent(frame, replayed);
    Ok(())
}

/// Reads the client's messages until it goes away. A protocol violation queues a close with its
/// reason and then waits for the sender to deliver it.
async fn receive_loop(client: &Arc<Client>, hub: &Arc<Hub>, rx: &mut WsStream) {
    while let Some(msg) = rx.next().await {
        let violation = match msg {
            Err(e) => {
                let text = e.to_string();
                if text.contains("too long") || text.contains("Space limit") {
                    Some((
                        close::TOO_BIG,
                        format!("message too big (limit {MAX_CLIENT_MESSAGE} bytes)"),
                    ))
                } else {
                    gst::debug!(
                        crate::rfbsink::CAT,
                        "client {}: receive failed: {text}",
                        client.id
                    );
                    return;
                }
            }
            Ok(msg) if msg.is_close() => return,
            Ok(msg) if msg.is_text() => {
                match protocol::parse_client_message(msg.to_str().unwrap_or("")) {
                    Ok(m) => {
                        hub.on_client_message(client, m);
                        None
                    }
                    Err(e) => Some((e.code, e.reason)),
                }
            }
            Ok(msg) if msg.is_binary() => Some((
                close::UNSUPPORTED,
                "binary messages from clients are not accepted; send JSON text".into(),
            )),
            Ok(_) => None, // ping/pong
        };
        if let Some((code, reason)) = violation {
            gst::warning!(
                crate::rfbsink::CAT,
                "closing client {}: {reason}",
                client.id
            );
            client.close(code, reason);
            std::future::pending::<()>().await;
        }
    }
}
