// SPDX-License-Identifier: MPL-2.0

//! WebRTC peers (docs/protocol.md, "WebRTC"): a third wire adapter for the session layer.
//!
//! Each peer is a small pipeline of the element's own, `appsrc ! <payloader> ! webrtcbin`, fed by
//! the peer's place in the hub like any WebSocket client: the encoded frames are the stream's own
//! buffers (shared, never copied, never encoded again); a peer adds only its packetization (its
//! payload type and sequence numbers, so that the hub can skip it to a keyframe frame by frame),
//! SRTP and DTLS. The browser's offer is answered once ICE gathering is done (no trickle needed;
//! trickled candidates are taken too). Text messages (input, acks, `app.*`) travel on the data
//! channel the viewer opens, `rfb`, through the same session layer. A PLI or FIR from the peer asks
//! the hub for a keyframe (rate-limited and shared with the other clients, as for WebSocket).
//!
//! Rooms, each importing only those below it: `whep.rs` (the HTTP endpoints: `/whep` and
//! `/webrtc_offer`) above `peers.rs` (the element's peers: answer, trickle, delete, limits) above
//! `peer.rs` (one peer's pipeline and wire adapter) above `sdp.rs` (the offer and answer texts:
//! format choice and candidates, pure).

mod peer;
mod peers;
mod sdp;
pub(crate) mod whep;

pub(crate) use peer::IceSettings;
pub(crate) use peers::WebRtc;
