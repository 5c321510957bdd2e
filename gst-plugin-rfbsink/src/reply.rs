// SPDX-License-Identifier: MPL-2.0

//! What every HTTP route shares: what a request says about itself (its host, origin, credentials
//! and remote address) and the replies (plain text, a refusal, CORS, the headers every answer
//! carries).

use std::collections::HashMap;
use std::net::SocketAddr;

use warp::http::{header, HeaderValue, Response, StatusCode};
use warp::hyper::body::Bytes;
use warp::{Filter, Reply};

use crate::access::{Denied, Request, TOKEN_PARAM};
use crate::session::Context;

/// The remote address, put in each request's extensions for the filters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Remote(pub SocketAddr);

/// What a request says about itself, owned (filters extract owned values).
#[derive(Debug)]
pub(crate) struct RequestInfo {
    pub host: Option<String>,
    pub origin: Option<String>,
    pub authorization: Option<String>,
    pub cookie: Option<String>,
    /// `Accept-Encoding` and `If-None-Match`, for the viewer's files.
    pub accept_encoding: Option<String>,
    pub if_none_match: Option<String>,
    pub query: HashMap<String, String>,
    pub remote: Option<SocketAddr>,
}

impl RequestInfo {
    pub fn access(&self) -> Request<'_> {
        Request {
            host: self.host.as_deref(),
            origin: self.origin.as_deref(),
            query_token: self.query.get(TOKEN_PARAM).map(String::as_str),
            authorization: self.authorization.as_deref(),
            cookie: self.cookie.as_deref(),
        }
    }
}

pub(crate) fn request_info(
) -> impl Filter<Extract = (RequestInfo,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("host")
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("cookie"))
        .and(warp::header::optional::<String>("accept-encoding"))
        .and(warp::header::optional::<String>("if-none-match"))
        .and(
            warp::query::<HashMap<String, String>>()
                .or(warp::any().map(HashMap::new))
                .unify(),
        )
        .and(warp::ext::optional::<Remote>())
        .map(
            |host,
             origin,
             authorization,
             cookie,
             accept_encoding,
             if_none_match,
             query,
             remote: Option<Remote>| RequestInfo {
                host,
                origin,
                authorization,
                cookie,
                accept_encoding,
                if_none_match,
                query,
                remote: remote.map(|r| r.0),
            },
        )
}

pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response<Bytes> {
    let mut res = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Bytes::from_static(text.as_bytes()))
        .unwrap();
    secure_headers(&mut res);
    res
}

/// CORS for an origin listed in `allowed-origins` (an app page importing the viewer module,
/// reading /rfb.json); never a wildcard.
pub(crate) fn cors(ctx: &Context, req: &RequestInfo, res: &mut Response<Bytes>) {
    let headers = res.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = req.origin.as_deref() else {
        return;
    };
    if ctx.access.is_allowed_origin(origin) {
        if let Ok(v) = HeaderValue::from_str(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
    }
}

pub(crate) fn secure_headers(res: &mut Response<Bytes>) {
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

pub(crate) fn refused(denied: Denied, html: bool) -> warp::reply::Response {
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

pub(crate) fn not_found() -> Response<Bytes> {
    let mut res = Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Bytes::from_static(b"not found\n"))
        .unwrap();
    secure_headers(&mut res);
    res
}
