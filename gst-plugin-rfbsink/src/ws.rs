// SPDX-License-Identifier: MPL-2.0

//! The WebSocket wire adapter (docs/protocol.md, "WebSocket"): the upgrade at `/` or `/ws`,
//! refused over HTTP unless access allows it, then the session layer with the client's envelope.

use std::sync::Arc;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use warp::hyper::body::Bytes;
use warp::ws::{Message, WebSocket, Ws};
use warp::{Filter, Reply};

use crate::audio::{self, AudioPacket};
use crate::hub::{Frame, Peer};
use crate::ladder;
use crate::protocol::{self, close, Envelope, StreamConfig, MAX_CLIENT_MESSAGE};
use crate::reply::{refused, request_info, RequestInfo};
use crate::session::{self, Context, Inbound, Keepalive, WireError, WireRecv, WireSend};

/// The upgrade route.
pub(crate) fn route(
    ctx: Context,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    warp::path("ws")
        .and(warp::path::end())
        .or(warp::path::end())
        .unify()
        .and(warp::ws())
        .and(request_info())
        .map(move |ws: Ws, req: RequestInfo| upgrade(&ctx, ws, req))
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
        audio: audio::wants_audio(req.query.get(audio::AUDIO_PARAM).map(String::as_str)),
        downlink_bps: ladder::downlink_bps(
            req.query.get(ladder::DOWNLINK_PARAM).map(String::as_str),
        ),
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
        Err(refused) => {
            let _ = tx
                .send(Message::close_with(refused.code, refused.reason))
                .await;
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
        audio_config_id: None,
    };
    session::run(ctx, client, sender, WsRecv { rx }).await;
}

/// The WebSocket's sending half: configs as text before the frames that need them, frames in
/// the client's envelope.
struct WsSend {
    tx: SplitSink<WebSocket, Message>,
    envelope: Envelope,
    config_id: Option<u32>,
    audio_config_id: Option<u32>,
}

impl WsSend {
    /// A frame or an audio packet in the client's envelope, after its `config` (text) when the
    /// client does not have it yet: the JSON header and the payload as two messages, or the
    /// binary message every binary client shares.
    async fn enveloped(
        &mut self,
        config: Option<String>,
        json_header: &str,
        payload: &Bytes,
        binary: impl FnOnce() -> Bytes,
    ) -> Result<(), WireError> {
        if let Some(config) = config {
            self.tx
                .feed(Message::text(config))
                .await
                .map_err(transport_error)?;
        }
        let result = match self.envelope {
            Envelope::Json => {
                self.tx
                    .feed(Message::text(json_header))
                    .await
                    .map_err(transport_error)?;
                self.tx.send(Message::binary(payload.clone())).await
            }
            Envelope::Binary => self.tx.send(Message::binary(binary())).await,
        };
        result.map_err(transport_error)
    }
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
        let config = (self.config_id != Some(frame.config.id)).then(|| {
            self.config_id = Some(frame.config.id);
            protocol::config(&frame.config)
        });
        self.enveloped(config, frame.json_header(), &frame.payload, || {
            frame.binary_message()
        })
        .await
    }

    async fn audio(&mut self, packet: &Arc<AudioPacket>) -> Result<(), WireError> {
        let config = (self.audio_config_id != Some(packet.config.id)).then(|| {
            self.audio_config_id = Some(packet.config.id);
            audio::audio_config(&packet.config)
        });
        self.enveloped(config, packet.json_header(), &packet.payload, || {
            packet.binary_message()
        })
        .await
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
