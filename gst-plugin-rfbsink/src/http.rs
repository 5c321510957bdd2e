// SPDX-License-Identifier: MPL-2.0

//! The HTTP server: the embedded viewer, its assets and `/rfb.json`, with the WebSocket upgrade
//! (ws.rs) and the WebRTC endpoints (webrtc/whep.rs) mounted on it (warp's filters on hyper, on
//! the plugin's runtime). The accept loop is ours, so that every connection
//! has a header-read timeout, a TLS handshake timeout and a place under the connection caps,
//! and so that HTTPS is served on the same port when a certificate is set.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use warp::http::{header, HeaderValue, Response, StatusCode};
use warp::hyper::body::Bytes;
use warp::{Filter, Reply};

use crate::discovery::Discovery;
use crate::reply::{
    cors, not_found, plain, refused, request_info, secure_headers, Remote, RequestInfo,
};
use crate::runtime::RUNTIME;
use crate::session::{self, Context, CLOSE_GRACE};
use crate::webrtc::{whep, WebRtc};
use crate::ws;
use crate::CAT;

mod assets {
    /// One file of the viewer (web/), embedded by build.rs.
    pub(super) struct Asset {
        pub name: &'static str,
        pub mime: &'static str,
        pub body: &'static [u8],
        /// Its gzip copy, where that saves a tenth or more.
        pub gzip: Option<&'static [u8]>,
        /// Its content's hash, quoted; the gzip copy's has `-gzip` added.
        pub etag: &'static str,
        pub gzip_etag: &'static str,
    }

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

pub(crate) struct HttpServer {
    task: tokio::task::JoinHandle<()>,
}

/// A listening socket, bound so that a busy port is an error at start, not later.
pub(crate) struct Bound {
    pub local_addr: SocketAddr,
    listener: TcpListener,
}

impl HttpServer {
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
        limit_unsent(&socket)?;
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

/// Unsent bytes a client's socket may hold (TCP_NOTSENT_LOWAT). Without a limit, Linux lets
/// an unread loopback socket take ~4 MB (1.6 s of a 20 Mbit/s stream) before the client's
/// latest-wins queue sees any backpressure; with it, ~0.6 MB. Lower limits cost the element CPU
/// on the lossless path (2 Gbit/s of raw 1080p: 9 ms a frame with none, 10-11 with 512 KiB,
/// 11-13 with 128 KiB).
const UNSENT_LIMIT: libc::c_int = 512 * 1024;

/// Sets `UNSENT_LIMIT` on a socket (accepted sockets inherit it from the listener).
fn limit_unsent(socket: &impl std::os::fd::AsRawFd) -> std::io::Result<()> {
    // SAFETY: a valid descriptor, and a c_int option passed with its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&UNSENT_LIMIT as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
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
    ) -> HttpServer {
        let routes = routes(ctx.clone(), discovery, webrtc);
        let task = RUNTIME.spawn(accept_loop(
            self.listener,
            tls.map(TlsAcceptor::from),
            ctx,
            routes,
        ));
        HttpServer { task }
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

fn routes(ctx: Context, discovery: Arc<Discovery>, rtc: Arc<WebRtc>) -> impl Routes {
    let ws = ws::route(ctx.clone());
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
                .body(Bytes::from(
                    json_discovery.to_json(json_ctx.hub.audio_config().as_deref()),
                ))
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
    let webrtc = whep::routes(ctx.clone(), rtc);
    let asset_ctx = ctx;
    let assets = warp::get().and(warp::path::tail()).and(request_info()).map(
        move |tail: warp::path::Tail, req: RequestInfo| {
            if let Err(denied) = asset_ctx.access.check_host_and_origin(&req.access()) {
                return refused(denied, false);
            }
            let mut res = asset(tail.as_str(), &req);
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
/// The viewer page: needs the token (401 with a page that says where to find it); a token in
/// the query is remembered in a cookie so that reloads keep working.
fn page(ctx: &Context, discovery: &Discovery, req: &RequestInfo) -> warp::reply::Response {
    let access = req.access();
    if let Err(denied) = session::authorize(ctx, "page", &access) {
        return refused(denied, true);
    }
    let mut res = asset("index.html", req);
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
/// One of the viewer's files: its gzip copy to a client that accepts it, and nothing but "not
/// modified" to one that has it already (`If-None-Match` naming its ETag). `no-cache`: a browser
/// revalidates each load, so a new build's viewer is never mixed with the old one's files.
fn asset(path: &str, req: &RequestInfo) -> Response<Bytes> {
    let name = if path.is_empty() { "index.html" } else { path };
    let Some(a) = assets::ASSETS.iter().find(|a| a.name == name) else {
        return not_found();
    };
    let gzip = a
        .gzip
        .filter(|_| accepts_gzip(req.accept_encoding.as_deref()));
    let (body, etag) = match gzip {
        Some(gz) => (gz, a.gzip_etag),
        None => (a.body, a.etag),
    };
    let res = Response::builder()
        .header(header::CONTENT_TYPE, a.mime)
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::VARY, "Accept-Encoding");
    if let Some(tags) = req.if_none_match.as_deref() {
        if let Some(held) = [a.etag, a.gzip_etag]
            .into_iter()
            .find(|t| etag_listed(tags, t))
        {
            return res
                .status(StatusCode::NOT_MODIFIED)
                .header(header::ETAG, held)
                .body(Bytes::new())
                .unwrap();
        }
    }
    let res = res.header(header::ETAG, etag);
    match gzip {
        Some(_) => res.header(header::CONTENT_ENCODING, "gzip"),
        None => res,
    }
    .body(Bytes::from_static(body))
    .unwrap()
}

/// Whether an `Accept-Encoding` takes gzip (RFC 9110, 12.5.3): `gzip` (or `x-gzip`) with a
/// quality above zero, else `*` with one; `gzip;q=0` refuses it whatever `*` says.
fn accepts_gzip(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let mut star = None;
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(0.0));
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return q > 0.0;
        }
        if coding == "*" {
            star = Some(q > 0.0);
        }
    }
    star.unwrap_or(false)
}

/// Whether an `If-None-Match` list names `etag` (a weak comparison, RFC 9110, 13.1.2: `W/` is
/// ignored), or is `*`.
fn etag_listed(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}
