// SPDX-License-Identifier: MPL-2.0

//! One client's life on any transport: admission (access checks, then a place in the hub), the
//! send loop (with write and idle timeouts and keepalives), the read loop (validation, roles,
//! violations) and the close. A transport is a wire adapter: it implements `WireSend` and
//! `WireRecv` and calls `authorize`, `join` and `run`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use crate::access::{Access, Denied, Request};
use crate::audio::AudioPacket;
use crate::hub::{Client, Frame, Hub, Item, Peer, Refused};
use crate::protocol::{self, close, ClientMessage, Envelope, Role, StreamConfig};
use crate::CAT;

/// How long a closing client gets to receive its close message before it is dropped.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// The timeouts of every session of one element (the `client-timeout` property).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// A keepalive goes out this often.
    pub ping_interval: Duration,
    /// A client heard from (a message, a pong) less recently than this is closed.
    pub idle_timeout: Duration,
    /// A write that its socket does not take within this long ends the session.
    pub write_timeout: Duration,
}

impl Limits {
    pub fn from_client_timeout(timeout: Duration) -> Limits {
        Limits {
            ping_interval: (timeout / 3).max(Duration::from_millis(100)),
            idle_timeout: timeout,
            write_timeout: timeout,
        }
    }
}

/// What every session of one element shares.
#[derive(Clone)]
pub(crate) struct Context {
    pub hub: Arc<Hub>,
    pub access: Arc<Access>,
    pub limits: Limits,
    pub shutdown: watch::Receiver<bool>,
    /// The element, for logs that say which element they are about.
    pub obj: gst::Object,
}

/// Why a write did not complete.
#[derive(Debug)]
pub(crate) enum WireError {
    /// The transport failed (the peer went away, a stream was refused).
    Transport(String),
    /// The socket did not take the write within `write_timeout`: the client stopped reading.
    Timeout,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            WireError::Transport(e) => write!(f, "{e}"),
            WireError::Timeout => write!(f, "not reading (write timed out)"),
        }
    }
}

/// What a keepalive does on this transport.
pub(crate) enum Keepalive {
    /// A ping went out; the pong counts as hearing from the client.
    Ping,
    /// The transport keeps the connection alive itself (QUIC) and fails reads when it dies.
    Transport,
}

/// The sending half of a transport.
pub(crate) trait WireSend: Send {
    async fn text(&mut self, text: &str) -> Result<(), WireError>;
    /// The stream's configuration (the transport decides when it goes out: before the next frame
    /// that needs it).
    async fn config(&mut self, config: &Arc<StreamConfig>) -> Result<(), WireError>;
    async fn frame(&mut self, frame: &Arc<Frame>) -> Result<(), WireError>;
    /// An Opus packet, with its `audio-config` first when the client does not have it yet.
    async fn audio(&mut self, packet: &Arc<AudioPacket>) -> Result<(), WireError>;
    async fn keepalive(&mut self) -> Result<Keepalive, WireError>;
    async fn close(&mut self, code: u16, reason: &str);
}

/// What the receiving half of a transport delivers.
pub(crate) enum Inbound {
    /// A reliable message (WebSocket text, a WebTransport control-stream message).
    Message(Bytes),
    /// A datagram: latest-wins traffic, dropped when malformed.
    Datagram(Bytes),
    /// A ping or pong: the client is there.
    Heard,
    /// A binary WebSocket message: not part of the protocol.
    Binary,
    /// A message over `MAX_CLIENT_MESSAGE`.
    TooBig,
    /// The client closed or the connection failed.
    Gone,
}

pub(crate) trait WireRecv: Send {
    async fn next(&mut self) -> Inbound;
}

/// Resolves once the server is stopping.
pub(crate) async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Host, Origin and token: the role the request's link gives, or why it is refused.
pub(crate) fn authorize(ctx: &Context, transport: &str, req: &Request) -> Result<Role, Denied> {
    let result = ctx.access.admit(req);
    if let Err(denied) = result {
        gst::info!(
            CAT,
            obj = &ctx.obj,
            "{transport}: refused (Host {:?}, Origin {:?}): {}",
            req.host,
            req.origin,
            denied.reason()
        );
    }
    result
}

/// Takes a place in the hub.
pub(crate) fn join(
    ctx: &Context,
    envelope: Envelope,
    transport: &'static str,
    peer: Peer,
) -> Result<Arc<Client>, Refused> {
    let result = ctx.hub.add_client(envelope, transport, peer);
    match &result {
        Ok(client) => gst::debug!(
            CAT,
            obj = &ctx.obj,
            "client {} connected over {transport} from {:?} ({}, {})",
            client.id,
            peer.remote,
            envelope.name(),
            peer.role.name()
        ),
        Err(e) => gst::info!(CAT, obj = &ctx.obj, "{transport}: refused: {e}"),
    }
    result
}

/// How the read loop ended.
enum Ended {
    /// The client went away: nothing more to send.
    Gone,
    /// A close was queued (a violation): let it go out.
    Closing,
}

/// Runs a joined client until it or the server goes away; then it leaves the hub.
pub(crate) async fn run(
    ctx: Context,
    client: Arc<Client>,
    mut tx: impl WireSend,
    mut rx: impl WireRecv,
) {
    let mut shutdown = ctx.shutdown.clone();
    let result = {
        let send = send_loop(&ctx, &client, &mut tx);
        tokio::pin!(send);
        let ended = tokio::select! {
            r = &mut send => Some(r),
            ended = receive_loop(&ctx, &client, &mut rx) => match ended {
                Ended::Gone => Some(Ok(())),
                Ended::Closing => None,
            },
            _ = stopping(&mut shutdown) => {
                client.close(close::GOING_AWAY, "server stopping");
                None
            }
        };
        match ended {
            Some(r) => r,
            None => tokio::time::timeout(CLOSE_GRACE, send)
                .await
                .unwrap_or(Err(WireError::Timeout)),
        }
    };
    ctx.hub.remove_client(client.id);
    match result {
        Ok(()) => gst::debug!(CAT, obj = &ctx.obj, "client {} gone", client.id),
        Err(e) => gst::info!(CAT, obj = &ctx.obj, "client {} dropped: {e}", client.id),
    }
}

/// Runs one write under the write timeout, marking the client busy meanwhile (a write that
/// hangs makes it a stalled client that a newcomer may replace, see `Hub::add_client`).
/// A closed client's pending write gets `CLOSE_GRACE` more, then the connection is dropped (its
/// socket is full: the close could not go out anyway).
async fn write<T>(
    client: &Client,
    limit: Duration,
    op: impl std::future::Future<Output = Result<T, WireError>>,
) -> Result<T, WireError> {
    client.writing(true);
    let abandoned = async {
        client.closing().await;
        tokio::time::sleep(CLOSE_GRACE).await;
    };
    let result = tokio::select! {
        r = tokio::time::timeout(limit, op) => r.unwrap_or(Err(WireError::Timeout)),
        _ = abandoned => Err(WireError::Timeout),
    };
    client.writing(false);
    result
}

async fn send_loop(
    ctx: &Context,
    client: &Client,
    tx: &mut impl WireSend,
) -> Result<(), WireError> {
    let limits = ctx.limits;
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + limits.ping_interval,
        limits.ping_interval,
    );
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let item = tokio::select! {
            item = client.next() => item,
            _ = ticks.tick() => {
                if client.silent_for() > limits.idle_timeout {
                    client.close(
                        close::TRY_AGAIN_LATER,
                        format!("idle: nothing heard for {} ms", limits.idle_timeout.as_millis()),
                    );
                    continue;
                }
                if let Keepalive::Transport = write(client, limits.write_timeout, tx.keepalive()).await? {
                    client.heard();
                }
                continue;
            }
        };
        match item {
            Item::Text(text) | Item::Stats(text) => {
                write(client, limits.write_timeout, tx.text(&text)).await?
            }
            Item::Config(config) => write(client, limits.write_timeout, tx.config(&config)).await?,
            Item::Frame(frame) => {
                write(client, limits.write_timeout, tx.frame(&frame)).await?;
                client.sent(&frame, false);
            }
            Item::Audio(packet) => {
                write(client, limits.write_timeout, tx.audio(&packet)).await?;
                client.sent_audio(&packet);
            }
            Item::Burst(frames) => {
                for frame in &frames {
                    write(client, limits.write_timeout, tx.frame(frame)).await?;
                    client.sent(frame, true);
                }
            }
            Item::Close(code, reason) => {
                let _ = tokio::time::timeout(CLOSE_GRACE, tx.close(code, &reason)).await;
                return Ok(());
            }
        }
    }
}

/// Reads until the client goes away or breaks the protocol (then its close is queued).
async fn receive_loop(ctx: &Context, client: &Arc<Client>, rx: &mut impl WireRecv) -> Ended {
    loop {
        let inbound = rx.next().await;
        client.heard();
        let violation = match inbound {
            Inbound::Message(bytes) => match protocol::parse_client_bytes(&bytes) {
                Ok(msg) => {
                    client.note_in_order(&msg);
                    dispatch(ctx, client, msg);
                    None
                }
                Err(e) => Some((e.code, e.reason)),
            },
            // Datagrams are the latest-wins kind: a bad one is dropped, the session stays.
            Inbound::Datagram(bytes) => {
                match protocol::parse_client_bytes(&bytes) {
                    Ok(msg) if client.is_stale_datagram(&msg) => {
                        client.count_ignored();
                        gst::debug!(
                            CAT,
                            obj = &ctx.obj,
                            "client {}: ignored a pointer move that a press or release overtook",
                            client.id
                        );
                    }
                    Ok(msg) => dispatch(ctx, client, msg),
                    Err(e) => {
                        client.count_rejected();
                        gst::debug!(
                            CAT,
                            obj = &ctx.obj,
                            "client {}: dropped a datagram: {}",
                            client.id,
                            e.reason
                        );
                    }
                }
                None
            }
            Inbound::Heard => None,
            Inbound::Binary => Some((
                close::UNSUPPORTED,
                "binary messages from clients are not accepted; send JSON text".into(),
            )),
            Inbound::TooBig => Some((
                close::TOO_BIG,
                format!(
                    "message too big: over the limit of {} bytes",
                    protocol::MAX_CLIENT_MESSAGE
                ),
            )),
            Inbound::Gone => return Ended::Gone,
        };
        if let Some((code, reason)) = violation {
            gst::warning!(
                CAT,
                obj = &ctx.obj,
                "closing client {}: {reason}",
                client.id
            );
            client.close(code, reason);
            return Ended::Closing;
        }
    }
}

/// A valid message: what its client's role allows goes to the hub.
fn dispatch(ctx: &Context, client: &Arc<Client>, msg: ClientMessage) {
    match msg {
        ClientMessage::Rejected { kind, reason } => {
            client.count_rejected();
            gst::debug!(
                CAT,
                obj = &ctx.obj,
                "client {}: ignored {kind}: {reason}",
                client.id
            );
        }
        ClientMessage::Ignored { .. } => {}
        ClientMessage::Input(_) | ClientMessage::App { .. } if client.role == Role::View => {
            client.count_ignored()
        }
        msg => ctx.hub.on_client_message(client, msg),
    }
}
