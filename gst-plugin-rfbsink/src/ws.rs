// SPDX-License-Identifier: MPL-2.0

//! The HTTP server: the embedded viewer, `/rfb.json` and the WebSocket wire adapter (warp's
//! filters on hyper, on the plugin's runtime). The accept loop is ours, so that every connection
//! has a header-read timeout, a TLS handshake timeout and a place under the connection caps,
//! and so that HTTPS is served on the same port when a certificate is set.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use warp::http::{header, HeaderValue, Response, StatusCode};
use warp::hyper::body::Bytes;
use warp::ws::{Message, WebSocket, Ws};
use warp::{Filter, Reply};

use crate::access::{Denied, Request, TOKEN_PARAM};
use crate::discovery::Discovery;
use crate::hub::{Frame, Peer};
use crate::protocol::{self, close, Envelope, StreamConfig, MAX_CLIENT_MESSAGE};
use crate::runtime::RUNTIME;
use crate::session::{
    self, Context, Inbound, Keepalive, WireError, WireRecv, WireSend, CLOSE_GRACE,
};
use crate::webrtc::{self, WebRtc};
use crate::CAT;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// A request's headers must arrive within this long (slow-loris).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS handshake must complete within this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open HTTP connections (before a WebSocket upgrade), all addresses together...
const MAX_CONNECTIONS: usize = 1024;
/// ...and from one address. More are closed at once.
const MAX_CONNECTIONS_PER_ADDRESS: usize = 256;

pub(crate) struct WsServer {
    pub local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

/// The remote address, put in each request's extensions for the filters.
#[derive(Clone, Copy, Debug)]
struct Remote(SocketAddr);

/// A listening socket, bound so that a busy port is an error at start, not later.
pub(crate) struct Bound {
    pub local_addr: SocketAddr,
    listener: TcpListener,
}

impl WsServer {
    pub fn bind(addr: SocketAddr) -> std::io::Result<Bound> {
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
        Ok(Bound {
            local_addr,
            listener,
        })
    }

    /// Waits until the listener is closed and the HTTP connections are gone (call after
    /// signalling `ctx.shutdown`); the port is free when this returns.
    pub fn stop(self) {
        let mut task = self.task;
        crate::runtime::block_on(async {
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

impl Bound {
    /// Serves HTTP (HTTPS with `tls`) on the runtime until `ctx.shutdown`.
    pub fn serve(
        self,
        tls: Option<Arc<rustls::ServerConfig>>,
        ctx: Context,
        discovery: Arc<Discovery>,
        webrtc: Arc<WebRtc>,
    ) -> WsServer {
        let routes = routes(ctx.clone(), discovery, webrtc);
        let task = RUNTIME.spawn(accept_loop(
            self.listener,
            tls.map(TlsAcceptor::from),
            ctx,
            routes,
        ));
        WsServer {
            local_addr: self.local_addr,
            task,
        }
    }
}

/// Open connections per address, for the caps.
#[derive(Default)]
struct Connections {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// A connection's place under the caps, given back when it closes (or is upgraded).
struct Slot {
    connections: Arc<Mutex<Connections>>,
    ip: IpAddr,
}

impl Slot {
    fn take(connections: &Arc<Mutex<Connections>>, ip: IpAddr) -> Option<Slot> {
        let mut c = connections.lock().unwrap();
        let here = c.per_address.get(&ip).copied().unwrap_or(0);
        if c.total >= MAX_CONNECTIONS || here >= MAX_CONNECTIONS_PER_ADDRESS {
            return None;
        }
        c.total += 1;
        *c.per_address.entry(ip).or_default() += 1;
        Some(Slot {
            connections: connections.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.connections.lock().unwrap();
        c.total -= 1;
        if let Some(n) = c.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_address.remove(&self.ip);
            }
        }
    }
}

/// What `routes()` gives: every request answered, nothing rejected.
trait Routes:
    Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<F> Routes for F where
    F: Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static
{
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    ctx: Context,
    routes: impl Routes,
) {
    let connections = Arc::new(Mutex::new(Connections::default()));
    let mut tasks = JoinSet::new();
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: wait a
                    // little rather than spin.
                    gst::debug!(CAT, obj = &ctx.obj, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = session::stopping(&mut shutdown) => break,
        };
        while tasks.try_join_next().is_some() {}
        let Some(slot) = Slot::take(&connections, remote.ip()) else {
            gst::debug!(
                CAT,
                obj = &ctx.obj,
                "too many connections: closing one from {remote}"
            );
            continue;
        };
        let routes = routes.clone();
        let tls = tls.clone();
        tasks.spawn(async move {
            let _slot = slot;
            match tls {
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    if let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await
                    {
                        serve_connection(stream, remote, routes).await
                    }
                }
                None => serve_connection(stream, remote, routes).await,
            }
        });
    }
    drop(listener);
    // Keep-alive connections would hold the port's clients: a short grace, then they go.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

/// HTTP/1.1 on one connection, with upgrades (WebSocket) and a header-read timeout.
async fn serve_connection<IO>(io: IO, remote: SocketAddr, routes: impl Routes)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use tower_service::Service;
    let svc = warp::service(routes);
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(Remote(remote));
        let mut svc = svc.clone();
        async move { svc.call(req).await }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades()
        .await;
}

/// What a request says about itself, owned (filters extract owned values).
#[derive(Debug)]
struct RequestInfo {
    host: Option<String>,
    origin: Option<String>,
    authorization: Option<String>,
    cookie: Option<String>,
    query: HashMap<String, String>,
    remote: Option<SocketAddr>,
}

impl RequestInfo {
    fn access(&self) -> Request<'_> {
        Request {
            host: self.host.as_deref(),
            origin: self.origin.as_deref(),
            query_token: self.query.get(TOKEN_PARAM).map(String::as_str),
            authorization: self.authorization.as_deref(),
            cookie: self.cookie.as_deref(),
        }
    }
}

fn request_info() -> impl Filter<Extract = (RequestInfo,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("host")
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("cookie"))
        .and(
            warp::query::<HashMap<String, String>>()
                .or(warp::any().map(HashMap::new))
                .unify(),
        )
        .and(warp::ext::optional::<Remote>())
        .map(
            |host, origin, authorization, cookie, query, remote: Option<Remote>| RequestInfo {
                host,
                origin,
                authorization,
                cookie,
                query,
                remote: remote.map(|r| r.0),
            },
        )
}

fn routes(ctx: Context, discovery: Arc<Discovery>, rtc: Arc<WebRtc>) -> impl Routes {
    let ws_ctx = ctx.clone();
    let ws = warp::path("ws")
        .and(warp::path::end())
        .or(warp::path::end())
        .unify()
        .and(warp::ws())
        .and(request_info())
        .map(move |ws: Ws, req: RequestInfo| upgrade(&ws_ctx, ws, req));
    let json_ctx = ctx.clone();
    let json_discovery = discovery.clone();
    let rfb_json = warp::get()
        .and(warp::path("rfb.json"))
        .and(warp::path::end())
        .and(request_info())
        .map(move |req: RequestInfo| {
            if let Err(denied) = session::authorize(&json_ctx, "rfb.json", &req.access()) {
                return refused(denied, false);
            }
            let mut res = Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CACHE_CONTROL, "no-store")
                .body(Bytes::from(json_discovery.to_json()))
                .unwrap();
            cors(&json_ctx, &req, &mut res);
            secure_headers(&mut res);
            res.into_response()
        });
    let page_ctx = ctx.clone();
    let page = warp::get()
        .and(
            warp::path::end()
                .or(warp::path("index.html").and(warp::path::end()))
                .unify(),
        )
        .and(request_info())
        .map(move |req: RequestInfo| page(&page_ctx, &discovery, &req));
    let webrtc = webrtc_routes(ctx.clone(), rtc);
    let asset_ctx = ctx;
    let assets = warp::get().and(warp::path::tail()).and(request_info()).map(
        move |tail: warp::path::Tail, req: RequestInfo| {
            if let Err(denied) = asset_ctx.access.check_host_and_origin(&req.access()) {
                return refused(denied, false);
            }
            let mut res = asset(tail.as_str());
            cors(&asset_ctx, &req, &mut res);
            secure_headers(&mut res);
            res.into_response()
        },
    );
    ws.or(rfb_json)
        .unify()
        .or(webrtc)
        .unify()
        .or(page)
        .unify()
        .or(assets)
        .unify()
        .recover(|rejection: warp::Rejection| async move {
            let res = if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
                plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request body is too large\n",
                )
            } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
                plain(
                    StatusCode::LENGTH_REQUIRED,
                    "a Content-Length is required\n",
                )
            } else {
                not_found()
            };
            Ok::<_, std::convert::Infallible>(res.into_response())
        })
        .unify()
}

/// WebRTC signalling (docs/protocol.md, "WebRTC"): WHEP at `/whep` (`POST` an SDP offer, `PATCH`
/// trickled candidates, `DELETE` the session) and the JSON offer endpoint `/webrtc_offer`.
fn webrtc_routes(
    ctx: Context,
    rtc: Arc<WebRtc>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let body =
        || warp::body::content_length_limit(webrtc::MAX_OFFER_BYTES).and(warp::body::bytes());
    let (post_ctx, post_rtc) = (ctx.clone(), rtc.clone());
    let whep_post = warp::post()
        .and(warp::path("whep"))
        .and(warp::path::end())
        .and(request_info())
        .and(warp::header::optional::<String>("content-type"))
        .and(body())
        .and_then(
            move |req: RequestInfo, content_type: Option<String>, body: Bytes| {
                let (ctx, rtc) = (post_ctx.clone(), post_rtc.clone());
                async move {
                    Ok::<_, std::convert::Infallible>(
                        whep_offer(&ctx, &rtc, req, content_type, body).await,
                    )
                }
            },
        );
    let (json_ctx, json_rtc) = (ctx.clone(), rtc.clone());
    let json_offer = warp::post()
        .and(warp::path("webrtc_offer"))
        .and(warp::path::end())
        .and(request_info())
        .and(body())
        .and_then(move |req: RequestInfo, body: Bytes| {
            let (ctx, rtc) = (json_ctx.clone(), json_rtc.clone());
            async move { Ok::<_, std::convert::Infallible>(json_offer(&ctx, &rtc, req, body).await) }
        });
    let (patch_ctx, patch_rtc) = (ctx.clone(), rtc.clone());
    let whep_patch = warp::patch()
        .and(warp::path!("whep" / String))
        .and(request_info())
        .and(body())
        .map(move |id: String, req: RequestInfo, body: Bytes| {
            if let Err(denied) = session::authorize(&patch_ctx, "whep", &req.access()) {
                return refused(denied, false);
            }
            let fragment = String::from_utf8_lossy(&body);
            let mut res = if patch_rtc.add_candidates(&id, &fragment) {
                plain(StatusCode::NO_CONTENT, "")
            } else {
                plain(StatusCode::NOT_FOUND, "no such WebRTC session\n")
            };
            cors(&patch_ctx, &req, &mut res);
            res.into_response()
        });
    let ctx_for_preflight = ctx.clone();
    let (delete_ctx, delete_rtc) = (ctx, rtc);
    let whep_delete = warp::delete()
        .and(warp::path!("whep" / String))
        .and(request_info())
        .map(move |id: String, req: RequestInfo| {
            if let Err(denied) = session::authorize(&delete_ctx, "whep", &req.access()) {
                return refused(denied, false);
            }
            let mut res = if delete_rtc.delete(&id) {
                plain(StatusCode::OK, "")
            } else {
                plain(StatusCode::NOT_FOUND, "no such WebRTC session\n")
            };
            cors(&delete_ctx, &req, &mut res);
            res.into_response()
        });
    // CORS preflight: a WHEP player on another origin (listed in allowed-origins) sends its
    // offer with Authorization and Content-Type: application/sdp, which browsers preflight.
    let preflight_ctx = ctx_for_preflight;
    let preflight = warp::options()
        .and(
            warp::path!("whep")
                .map(|| ())
                .or(warp::path!("whep" / String).map(|_| ()))
                .unify()
                .or(warp::path!("webrtc_offer").map(|| ()))
                .unify(),
        )
        .and(request_info())
        .map(move |(), req: RequestInfo| preflight(&preflight_ctx, &req));
    whep_post
        .or(json_offer)
        .unify()
        .or(preflight)
        .unify()
        .or(whep_patch)
        .unify()
        .or(whep_delete)
        .unify()
}

/// The answer to a CORS preflight of the WebRTC endpoints: allowed for the server's own origin
/// and `allowed-origins` (the Host must be one the server answers to), refused otherwise.
fn preflight(ctx: &Context, req: &RequestInfo) -> warp::reply::Response {
    let origin = req.origin.as_deref().unwrap_or_default();
    let allowed = ctx.access.check_host_and_origin(&req.access()).is_ok()
        && ctx.access.is_allowed_origin(origin);
    if !allowed {
        return plain(StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    let mut res = plain(StatusCode::NO_CONTENT, "");
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, PATCH, DELETE, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    headers.insert("accept-post", HeaderValue::from_static("application/sdp"));
    res.into_response()
}

/// `POST /whep`: an SDP offer in, `201 Created` with the answer and the session's Location out.
async fn whep_offer(
    ctx: &Context,
    rtc: &Arc<WebRtc>,
    req: RequestInfo,
    content_type: Option<String>,
    body: Bytes,
) -> warp::reply::Response {
    let role = match session::authorize(ctx, "whep", &req.access()) {
        Ok(role) => role,
        Err(denied) => return refused(denied, false),
    };
    let is_sdp = content_type
        .as_deref()
        .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("application/sdp"));
    let mut res = if !is_sdp {
        plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "POST an SDP offer with Content-Type: application/sdp\n",
        )
    } else {
        match std::str::from_utf8(&body) {
            Err(_) => plain(StatusCode::BAD_REQUEST, "the offer is not UTF-8 text\n"),
            Ok(offer) => {
                let peer = Peer {
                    remote: req.remote,
                    role,
                };
                match rtc.answer(ctx, offer, peer).await {
                    Ok(answer) => {
                        let mut res = Response::builder()
                            .status(StatusCode::CREATED)
                            .header(header::CONTENT_TYPE, "application/sdp")
                            .header(header::CACHE_CONTROL, "no-store")
                            // Relative to /whep: right under a reverse proxy's prefix too.
                            .header(header::LOCATION, format!("whep/{}", answer.id))
                            .body(Bytes::from(answer.sdp))
                            .unwrap();
                        res.headers_mut().insert(
                            header::ACCESS_CONTROL_EXPOSE_HEADERS,
                            HeaderValue::from_static("Location"),
                        );
                        res
                    }
                    Err(e) => {
                        offer_error(&e, format!("{}\n", e.message), "text/plain; charset=utf-8")
                    }
                }
            }
        }
    };
    cors(ctx, &req, &mut res);
    secure_headers(&mut res);
    res.into_response()
}

/// The JSON offer endpoint's request body: `{"sdp": ..., "type": "offer"}` (other fields, such
/// as a detector's name, are accepted and not used: there is one stream).
#[derive(serde::Deserialize)]
struct JsonOffer {
    sdp: String,
    #[serde(rename = "type")]
    kind: String,
}

/// `POST /webrtc_offer`: `{"sdp", "type": "offer"}` in, `{"status": "success", "sdp", "type":
/// "answer"}` out; errors are `{"status": "error", "message"}` with an HTTP error status.
async fn json_offer(
    ctx: &Context,
    rtc: &Arc<WebRtc>,
    req: RequestInfo,
    body: Bytes,
) -> warp::reply::Response {
    let role = match session::authorize(ctx, "webrtc_offer", &req.access()) {
        Ok(role) => role,
        Err(denied) => return refused(denied, false),
    };
    let error = |status: u16, message: &str| {
        let body = serde_json::json!({"status": "error", "message": message}).to_string();
        offer_error(
            &webrtc::OfferError {
                status,
                message: message.into(),
            },
            body,
            "application/json",
        )
    };
    let mut res = match serde_json::from_slice::<JsonOffer>(&body) {
        Err(e) => error(
            400,
            &format!("expected {{\"sdp\": ..., \"type\": \"offer\"}}: {e}"),
        ),
        Ok(offer) if offer.kind != "offer" => error(
            400,
            &format!("expected \"type\": \"offer\", got {:?}", offer.kind),
        ),
        Ok(offer) => {
            let peer = Peer {
                remote: req.remote,
                role,
            };
            match rtc.answer(ctx, &offer.sdp, peer).await {
                Ok(answer) => Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::CACHE_CONTROL, "no-store")
                    .body(Bytes::from(
                        serde_json::json!({"status": "success", "sdp": answer.sdp, "type": "answer"})
                            .to_string(),
                    ))
                    .unwrap(),
                Err(e) => error(e.status, &e.message),
            }
        }
    };
    cors(ctx, &req, &mut res);
    secure_headers(&mut res);
    res.into_response()
}

fn offer_error(
    e: &webrtc::OfferError,
    body: String,
    content_type: &'static str,
) -> Response<Bytes> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store");
    if e.status == 503 {
        builder = builder.header(header::RETRY_AFTER, "1");
    }
    builder.body(Bytes::from(body)).unwrap()
}

fn plain(status: StatusCode, text: &'static str) -> Response<Bytes> {
    let mut res = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Bytes::from_static(text.as_bytes()))
        .unwrap();
    secure_headers(&mut res);
    res
}

/// The WebSocket upgrade: refused over HTTP (401/403, nothing streamed) unless access allows it.
fn upgrade(ctx: &Context, ws: Ws, req: RequestInfo) -> warp::reply::Response {
    let role = match session::authorize(ctx, "websocket", &req.access()) {
        Ok(role) => role,
        Err(denied) => return refused(denied, false),
    };
    let ctx = ctx.clone();
    let envelope = req.query.get("envelope").cloned();
    let peer = Peer {
        remote: req.remote,
        role,
    };
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| connected(ctx, socket, envelope, peer))
        .into_response()
}

async fn connected(ctx: Context, socket: WebSocket, envelope: Option<String>, peer: Peer) {
    let (mut tx, rx) = socket.split();
    let envelope = match Envelope::parse(envelope.as_deref()) {
        Ok(e) => e,
        Err(reason) => {
            let _ = tx.send(Message::close_with(close::POLICY, reason)).await;
            return;
        }
    };
    let client = match session::join(&ctx, envelope, "websocket", peer) {
        Ok(c) => c,
        Err(refused) => {
            let reason = protocol::close_reason(refused.to_string());
            let _ = tx
                .send(Message::close_with(close::TRY_AGAIN_LATER, reason))
                .await;
            return;
        }
    };
    let sender = WsSend {
        tx,
        envelope,
        config_id: None,
    };
    session::run(ctx, client, sender, WsRecv { rx }).await;
}

/// The WebSocket's sending half: configs as text before the frames that need them, frames in
/// the client's envelope.
struct WsSend {
    tx: SplitSink<WebSocket, Message>,
    envelope: Envelope,
    config_id: Option<u32>,
}

fn transport_error(e: warp::Error) -> WireError {
    WireError::Transport(e.to_string())
}

impl WireSend for WsSend {
    async fn text(&mut self, text: &str) -> Result<(), WireError> {
        self.tx
            .send(Message::text(text))
            .await
            .map_err(transport_error)
    }

    async fn config(&mut self, config: &Arc<StreamConfig>) -> Result<(), WireError> {
        self.config_id = Some(config.id);
        self.text(&protocol::config(config)).await
    }

    async fn frame(&mut self, frame: &Arc<Frame>) -> Result<(), WireError> {
        if self.config_id != Some(frame.config.id) {
            self.tx
                .feed(Message::text(protocol::config(&frame.config)))
                .await
                .map_err(transport_error)?;
            self.config_id = Some(frame.config.id);
        }
        let result = match self.envelope {
            Envelope::Json => {
                self.tx
                    .feed(Message::text(frame.json_header()))
                    .await
                    .map_err(transport_error)?;
                self.tx.send(Message::binary(frame.payload.clone())).await
            }
            Envelope::Binary => self.tx.send(Message::binary(frame.binary_message())).await,
        };
        result.map_err(transport_error)
    }

    async fn keepalive(&mut self) -> Result<Keepalive, WireError> {
        self.tx
            .send(Message::ping(Bytes::new()))
            .await
            .map_err(transport_error)?;
        Ok(Keepalive::Ping)
    }

    async fn close(&mut self, code: u16, reason: &str) {
        let _ = self
            .tx
            .send(Message::close_with(code, reason.to_owned()))
            .await;
    }
}

struct WsRecv {
    rx: SplitStream<WebSocket>,
}

impl WireRecv for WsRecv {
    async fn next(&mut self) -> Inbound {
        match self.rx.next().await {
            None => Inbound::Gone,
            Some(Err(e)) => {
                let too_big = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<tungstenite::Error>())
                    .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)));
                if too_big {
                    Inbound::TooBig
                } else {
                    Inbound::Gone
                }
            }
            Some(Ok(msg)) if msg.is_close() => Inbound::Gone,
            Some(Ok(msg)) if msg.is_text() => Inbound::Message(msg.into_bytes()),
            Some(Ok(msg)) if msg.is_binary() => Inbound::Binary,
            Some(Ok(_)) => Inbound::Heard,
        }
    }
}

/// The viewer page: needs the token (401 with a page that says where to find it); a token in
/// the query is remembered in a cookie so that reloads keep working.
fn page(ctx: &Context, discovery: &Discovery, req: &RequestInfo) -> warp::reply::Response {
    let access = req.access();
    if let Err(denied) = session::authorize(ctx, "page", &access) {
        return refused(denied, true);
    }
    let mut res = asset("index.html");
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(cookie) = ctx.access.cookie_for(&access) {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            headers.insert(header::SET_COOKIE, v);
        }
    }
    let csp = format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:; worker-src 'self' blob:; connect-src {}; \
         frame-ancestors {}; base-uri 'none'; object-src 'none'; form-action 'none'",
        ctx.access
            .connect_sources(req.host.as_deref(), discovery.webtransport_port()),
        ctx.access.frame_ancestors()
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    secure_headers(&mut res);
    res.into_response()
}

/// CORS for an origin listed in `allowed-origins` (an app page importing the viewer module,
/// reading /rfb.json); never a wildcard.
fn cors(ctx: &Context, req: &RequestInfo, res: &mut Response<Bytes>) {
    let headers = res.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = req.origin.as_deref() else {
        return;
    };
    if ctx.access.is_allowed_origin(origin) {
        if let Ok(v) = HeaderValue::from_str(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
    }
}

fn secure_headers(res: &mut Response<Bytes>) {
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The page's URL carries the token: it must not leak to another site.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

fn refused(denied: Denied, html: bool) -> warp::reply::Response {
    let status = StatusCode::from_u16(denied.status()).unwrap_or(StatusCode::FORBIDDEN);
    let body = if html {
        format!(
            "<!doctype html><meta charset=\"utf-8\"><title>rfbsink: {status}</title>\
             <body style=\"font-family:sans-serif;margin:2em\"><h1>rfbsink: access refused</h1>\
             <p>{}.</p><p>rfbsink prints the viewer's URL, with its <code>{TOKEN_PARAM}</code>, \
             when it starts (and posts it as the <code>rfbsink-listening</code> bus message and \
             its <code>url</code> property).</p></body>\n",
            denied.reason()
        )
    } else {
        format!("{}\n", denied.reason())
    };
    let mut res = Response::builder()
        .status(status)
        .header(
            header::CONTENT_TYPE,
            if html {
                "text/html; charset=utf-8"
            } else {
                "text/plain; charset=utf-8"
            },
        )
        .header(header::CACHE_CONTROL, "no-store")
        .body(Bytes::from(body))
        .unwrap();
    secure_headers(&mut res);
    res.into_response()
}

fn asset(path: &str) -> Response<Bytes> {
    let name = if path.is_empty() { "index.html" } else { path };
    match assets::ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, body)) => Response::builder()
            .header(header::CONTENT_TYPE, *mime)
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Bytes::from_static(body))
            .unwrap(),
        None => not_found(),
    }
}

fn not_found() -> Response<Bytes> {
    let mut res = Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Bytes::from_static(b"not found\n"))
        .unwrap();
    secure_headers(&mut res);
    res
}
