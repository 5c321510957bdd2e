// SPDX-License-Identifier: MPL-2.0

//! The element's WebRTC peers: an offer answered (within the limits), trickled candidates and
//! `DELETE` routed to their peer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;
use tokio::sync::Semaphore;

use super::peer::{negotiate, run_peer, IceSettings};
use super::sdp::{choose_audio, choose_format, OfferError};
use crate::hub::{Client, Peer};
use crate::protocol::{self, Envelope};
use crate::runtime::RUNTIME;
use crate::session::{self, Context};
use crate::CAT;

/// Offers being answered at once; more get 503 at once (each one is a pipeline and ICE
/// gathering while it lasts).
const MAX_NEGOTIATIONS: usize = 8;
/// An answer must be ready within this long.
const NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Candidates taken from one `PATCH`.
const MAX_TRICKLED_CANDIDATES: usize = 32;

/// A peer's handle for `PATCH` and `DELETE`.
struct Session {
    client: Arc<Client>,
    webrtcbin: gst::Element,
}

/// The WebRTC side of one element: its sessions and its limits.
pub(crate) struct WebRtc {
    ice: IceSettings,
    sessions: Mutex<HashMap<String, Session>>,
    negotiations: Arc<Semaphore>,
}

/// What an answered offer gives the HTTP side.
pub(crate) struct Answer {
    /// The session's id, for `/whep/<id>`.
    pub id: String,
    pub sdp: String,
}

impl WebRtc {
    pub fn new(ice: IceSettings) -> Arc<WebRtc> {
        Arc::new(WebRtc {
            ice,
            sessions: Mutex::default(),
            negotiations: Arc::new(Semaphore::new(MAX_NEGOTIATIONS)),
        })
    }

    /// Answers an SDP offer: checks it, takes a place in the hub, builds the peer's pipeline and
    /// returns the answer with its candidates; the peer then runs on its own.
    pub async fn answer(
        self: &Arc<Self>,
        ctx: &Context,
        offer: &str,
        peer: Peer,
    ) -> Result<Answer, OfferError> {
        let _permit = self.negotiations.clone().try_acquire_owned().map_err(|_| {
            OfferError::new(503, "too many WebRTC offers at once: try again in a moment")
        })?;
        let offer = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes())
            .map_err(|_| OfferError::new(400, "the offer is not an SDP text"))?;
        let config = ctx.hub.config().ok_or_else(|| {
            OfferError::new(
                503,
                "no stream yet: the pipeline has not sent a picture; try again in a moment",
            )
        })?;
        let (rtp_caps, mline) = choose_format(&offer, &config.codec)?;
        // Sound beside the picture when the element has it and the offer receives Opus: the
        // same packets every viewer gets (docs/protocol.md, "Audio").
        let audio = ctx
            .hub
            .audio_config()
            .and_then(|c| choose_audio(&offer).map(|caps| (caps, c)));
        let peer = Peer {
            audio: audio.is_some(),
            ..peer
        };
        let client = session::join(ctx, Envelope::Binary, "webrtc", peer)
            .map_err(|refused| OfferError::new(503, refused.to_string()))?;
        let id = match crate::access::generate_token() {
            Ok(id) => id,
            Err(e) => {
                ctx.hub.remove_client(client.id);
                return Err(OfferError::new(
                    500,
                    format!("no randomness for a session id: {e}"),
                ));
            }
        };
        let built = tokio::time::timeout(
            NEGOTIATION_TIMEOUT,
            negotiate(
                ctx,
                &self.ice,
                offer,
                (rtp_caps, mline),
                audio,
                &config,
                client.clone(),
            ),
        )
        .await
        .unwrap_or_else(|_| Err(OfferError::new(504, "the answer took too long")));
        let (link, sdp) = match built {
            Ok(built) => built,
            Err(e) => {
                ctx.hub.remove_client(client.id);
                gst::info!(
                    CAT,
                    obj = &ctx.obj,
                    "webrtc: offer not answered: {}",
                    e.message
                );
                return Err(e);
            }
        };
        self.sessions.lock().unwrap().insert(
            id.clone(),
            Session {
                client: client.clone(),
                webrtcbin: link.webrtcbin.clone(),
            },
        );
        let this = self.clone();
        let ctx = ctx.clone();
        let session_id = id.clone();
        RUNTIME.spawn(async move {
            run_peer(&ctx, client, link).await;
            this.sessions.lock().unwrap().remove(&session_id);
        });
        Ok(Answer { id, sdp })
    }

    /// Candidates trickled by the peer (`PATCH`, an SDP fragment). False: no such session.
    pub fn add_candidates(&self, id: &str, fragment: &str) -> bool {
        let sessions = self.sessions.lock().unwrap();
        let Some(session) = sessions.get(id) else {
            return false;
        };
        // A few candidates per m-line is what browsers trickle; more is not a client's.
        let candidates = fragment
            .lines()
            .filter_map(|line| line.trim_end().strip_prefix("a="))
            .filter(|c| c.starts_with("candidate:") && c.len() < 512)
            .take(MAX_TRICKLED_CANDIDATES);
        for candidate in candidates {
            // One transport for everything (max-bundle): m-line 0.
            session
                .webrtcbin
                .emit_by_name::<()>("add-ice-candidate", &[&0u32, &candidate]);
        }
        true
    }

    /// Ends a session (`DELETE`). False: no such session.
    pub fn delete(&self, id: &str) -> bool {
        match self.sessions.lock().unwrap().remove(id) {
            Some(session) => {
                session
                    .client
                    .close(protocol::close::NORMAL, "the WebRTC session was deleted");
                true
            }
            None => false,
        }
    }
}
