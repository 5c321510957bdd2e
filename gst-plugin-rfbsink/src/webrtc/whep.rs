// SPDX-License-Identifier: MPL-2.0

//! WebRTC signalling over HTTP (docs/protocol.md, "WebRTC"): WHEP at `/whep` (`POST` an SDP
//! offer, `PATCH` trickled candidates, `DELETE` the session) and the JSON offer endpoint
//! `/webrtc_offer`, with their CORS preflight.

use std::sync::Arc;

use warp::http::{header, HeaderValue, Response, StatusCode};
use warp::hyper::body::Bytes;
use warp::{Filter, Reply};

use super::peers::WebRtc;
use super::sdp::OfferError;
use crate::hub::Peer;
use crate::reply::{cors, plain, refused, request_info, secure_headers, RequestInfo};
use crate::session::{self, Context};

/// An offer is an SDP text of a few KiB; more is refused (413).
const MAX_OFFER_BYTES: u64 = 64 * 1024;

/// WebRTC signalling (docs/protocol.md, "WebRTC"): WHEP at `/whep` (`POST` an SDP offer, `PATCH`
/// trickled candidates, `DELETE` the session) and the JSON offer endpoint `/webrtc_offer`.
pub(crate) fn routes(
    ctx: Context,
    rtc: Arc<WebRtc>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let body = || warp::body::content_length_limit(MAX_OFFER_BYTES).and(warp::body::bytes());
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

/// What the viewer's page measured of its link (`downlink=<kbit/s>` on the offer's URL, as on a
/// WebSocket's: docs/protocol.md, "Renditions").
fn downlink_bps(req: &RequestInfo) -> Option<u64> {
    crate::ladder::downlink_bps(
        req.query
            .get(crate::ladder::DOWNLINK_PARAM)
            .map(String::as_str),
    )
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
                    audio: false,
                    downlink_bps: downlink_bps(&req),
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
            &OfferError {
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
                audio: false,
                downlink_bps: downlink_bps(&req),
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

fn offer_error(e: &OfferError, body: String, content_type: &'static str) -> Response<Bytes> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store");
    if e.status == 503 {
        builder = builder.header(header::RETRY_AFTER, "1");
    }
    builder.body(Bytes::from(body)).unwrap()
}
