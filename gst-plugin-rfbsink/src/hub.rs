// SPDX-License-Identifier: MPL-2.0

//! The fan-out hub: one encoded stream to every client, transport-neutral.
//!
//! render() hands each frame to `Hub::push`, which appends a reference to the frame to every
//! client's bounded queue and returns at once: it never waits on a client. Each client's sender task
//! drains its own queue at the speed of its socket. A client that falls behind loses its queued
//! frames (latest wins) and receives nothing until the next keyframe, which the hub asks upstream
//! for, rate-limited across clients. Control and application messages are bounded too: a client
//! that lets more than `MAX_QUEUED_TEXT_BYTES` of them pile up is closed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::audio::{AudioConfig, AudioPacket};
use crate::input::Input;
use crate::ladder::{self, Ladder, Move, Rung, Seat};
use crate::protocol::{self, close, ClientMessage, Envelope, FrameHeader, Role, StreamConfig};
use crate::rate::{Policy, RateController, Sample};
use crate::relay::Publisher;
use crate::stats::{ClientCounters, ClientStats, NetworkStats};

/// A client's unsent audio packets, at most (20 ms each from opusenc: 400 ms of sound). Older
/// ones are dropped: sound that late is of no use, and the viewer's jitter buffer covers the gap.
pub(crate) const MAX_QUEUED_AUDIO: usize = 20;

/// At most this many frames are kept for late joiners; a longer group of pictures is not cached and
/// a late joiner gets a fresh keyframe instead, which is faster than decoding a long burst.
pub(crate) const GOP_CACHE_MAX_FRAMES: usize = 120;
/// A viewer whose page measured its link (`Peer::downlink_bps`) so that the pictures since the
/// last keyframe would take it longer than this does not get them, but the next keyframe.
const SLOW_BURST: Duration = Duration::from_millis(500);
/// A client with more than this many bytes of control and application messages waiting (it does
/// not read them) is closed: text is never dropped, so it must be bounded by closing.
pub(crate) const MAX_QUEUED_TEXT_BYTES: usize = 4 * 1024 * 1024;
/// A client whose socket has not taken a write for this long (or that was not heard from for this
/// long after a ping was due, see `HubSettings::ping_interval`) is stalled: it makes room when the
/// server is full.
pub(crate) const STALLED_AFTER: Duration = Duration::from_secs(3);
/// A client's keyframe requests upstream back off from this...
const KEYFRAME_BACKOFF_MIN: Duration = Duration::from_millis(500);
/// ...doubling up to this while it keeps falling behind: one stalled browser must not force
/// keyframes on every other viewer.
const KEYFRAME_BACKOFF_MAX: Duration = Duration::from_secs(8);
/// A client that kept up this long gets its keyframe requests back at the shortest interval.
const KEYFRAME_BACKOFF_RESET: Duration = Duration::from_secs(5);

/// One encoded frame, shared by every client that sends it.
#[derive(Debug)]
pub(crate) struct Frame {
    pub header: FrameHeader,
    pub config: Arc<StreamConfig>,
    pub payload: Bytes,
    /// When render() received the buffer.
    pub arrived: Instant,
    /// Its rendition and its place in that rendition's stream (0, 1, 2...), set when the hub
    /// takes it: frame ids are shared by every rendition, so a sender tells a gap by this.
    place: OnceLock<(u32, u64)>,
    binary: OnceLock<Bytes>,
    json_header: OnceLock<String>,
}

impl Frame {
    pub fn new(header: FrameHeader, config: Arc<StreamConfig>, payload: Bytes) -> Arc<Frame> {
        Arc::new(Frame {
            header,
            config,
            payload,
            arrived: Instant::now(),
            place: OnceLock::new(),
            binary: OnceLock::new(),
            json_header: OnceLock::new(),
        })
    }

    pub fn is_key(&self) -> bool {
        self.header.key
    }

    pub fn len(&self) -> usize {
        self.payload.len()
    }

    /// A still image (JPEG, PNG, WebP): it stands alone, so a newer one replaces it where it
    /// waits (docs/protocol.md, "Backpressure").
    fn is_still(&self) -> bool {
        self.config.codec.codec.is_image() && !self.header.refine
    }

    /// Whether `self` comes right after `previous` in the same rendition's stream (a sender
    /// that finds a gap knows the client skipped).
    pub fn follows(&self, previous: Option<(u32, u64)>) -> bool {
        match (self.place.get(), previous) {
            (Some((r, i)), Some((pr, pi))) => *r == pr && *i == pi + 1,
            _ => false,
        }
    }

    /// Its rendition and place there, once the hub took it.
    pub fn place(&self) -> Option<(u32, u64)> {
        self.place.get().copied()
    }

    /// The `envelope=binary` message, built on first use by whichever sender needs it first and
    /// then shared by every binary client (one copy per frame, none per client).
    pub fn binary_message(&self) -> Bytes {
        self.binary
            .get_or_init(|| self.header.encode_binary(&self.payload))
            .clone()
    }

    /// The `envelope=json` text header, built once.
    pub fn json_header(&self) -> &str {
        self.json_header
            .get_or_init(|| self.header.encode_json(&self.config, self.payload.len()))
    }
}

/// What a client's sender task sends next.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    /// A JSON control message (hello, eos, error, application messages).
    Text(String),
    /// The client's own figures: latest wins, at most one is queued.
    Stats(String),
    /// The stream's configuration; the sender remembers which one the client has.
    Config(Arc<StreamConfig>),
    Frame(Arc<Frame>),
    /// An Opus packet (docs/protocol.md, "Audio"): sent before any queued frame.
    Audio(Arc<AudioPacket>),
    /// The cached group of pictures for a late joiner: counts as one queued frame.
    Burst(Vec<Arc<Frame>>),
    /// Close the connection with this code and reason; nothing is sent after it.
    Close(u16, String),
}

impl Item {
    fn frame_bytes(&self) -> usize {
        match self {
            Item::Frame(f) => f.len(),
            Item::Burst(v) => v.iter().map(|f| f.len()).sum(),
            _ => 0,
        }
    }

    fn text_bytes(&self) -> usize {
        match self {
            Item::Text(t) | Item::Stats(t) => t.len(),
            _ => 0,
        }
    }

    fn is_frames(&self) -> bool {
        matches!(self, Item::Frame(_) | Item::Burst(_))
    }

    fn has_key(&self) -> bool {
        match self {
            Item::Frame(f) => f.is_key(),
            Item::Burst(v) => v.first().is_some_and(|f| f.is_key()),
            _ => false,
        }
    }
}

/// Who a new client is: where it connects from and what its link lets it do.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer {
    pub remote: Option<SocketAddr>,
    pub role: Role,
    /// It asked for sound (`audio=1` on the connection's URL): only then does it get audio.
    pub audio: bool,
    /// What its page's own files measured of its link (`downlink` on the connection's URL, bits
    /// per second): with renditions, where it starts (`ladder::start`); under rate control, a
    /// target above it comes down at once (`RateController::check`).
    pub downlink_bps: Option<u64>,
}

/// Why the hub did not take a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    TooManyClients(usize),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Refused::TooManyClients(max) => write!(f, "too many clients (max-clients={max})"),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct HubSettings {
    /// 0: no limit.
    pub max_clients: u32,
    pub gop_cache: bool,
    pub queue_bytes: usize,
    pub queue_frames: usize,
    /// The shortest time between two keyframe requests sent upstream.
    pub keyframe_interval: Duration,
    /// How often sessions ping their clients: a live client answers within it.
    pub ping_interval: Duration,
    /// A client whose oldest unacknowledged frame is older than this is behind: it skips to the
    /// next keyframe (latency is bounded by trading its frames). None: only its queue bounds it.
    pub max_latency: Option<Duration>,
    /// Rate control for the encoder upstream (rate.rs): policy, min and max bits per second.
    /// None: off.
    pub rate: Option<(Policy, u64, u64)>,
    /// The rendition whose encoder rate control drives: its viewers are sampled.
    pub rate_rendition: u32,
}

/// A client fell behind by more than `max_latency`: what it sustains, for the bus message and
/// the QoS event upstream.
#[derive(Clone, Debug)]
pub(crate) struct Overload {
    pub client_id: u64,
    /// The stream's frames in the last second.
    pub stream_fps: f64,
    /// Frames decoded by it in the last second, and the rate it sustains (its pace when busy).
    pub decoded_fps: f64,
    pub sustainable_fps: f64,
    /// Render() to now of its oldest unacknowledged frame.
    pub latency: Duration,
    /// Every client is behind: lowering the rate upstream costs none of them anything.
    pub all: bool,
}

#[derive(Default)]
struct ClientQueue {
    items: VecDeque<Item>,
    /// Audio goes out before queued frames (it is small and its timing matters most); bounded
    /// by `MAX_QUEUED_AUDIO`, oldest dropped first.
    audio: VecDeque<Arc<AudioPacket>>,
    audio_dropped: u64,
    frames: usize,
    bytes: usize,
    text_bytes: usize,
    /// Deltas are dropped until a keyframe arrives.
    need_key: bool,
    closed: bool,
    frames_dropped: u64,
    keyframe_requests: u64,
    /// Waiting for its acks to catch up before it gets frames again (and a keyframe).
    stalled_by_acks: bool,
    /// Times it fell behind by more than `max_latency`.
    overloads: u64,
    keyframe_backoff: Duration,
    next_keyframe_request: Option<Instant>,
    /// A keyframe request is due when the backoff ends (`Hub::keyframe_after_backoff`).
    retry_scheduled: bool,
    last_behind: Option<Instant>,
    /// The rendition it gets (0: the sink pad's stream), and the one it moves to at that one's
    /// next keyframe (ladder.rs).
    rendition: u32,
    moving_to: Option<u32>,
    /// It chose its rendition (`rfb.control` `rendition`): the ladder leaves it there.
    pinned: bool,
    /// Times it moved to another rendition.
    switches: u64,
}

impl ClientQueue {
    /// Whether this client may ask upstream for a keyframe now (its own backoff).
    fn may_request_keyframe(&mut self, now: Instant) -> bool {
        if self.next_keyframe_request.is_some_and(|t| now < t) {
            return false;
        }
        let backoff = self.keyframe_backoff.max(KEYFRAME_BACKOFF_MIN);
        self.next_keyframe_request = Some(now + backoff);
        self.keyframe_backoff = (backoff * 2).min(KEYFRAME_BACKOFF_MAX);
        self.keyframe_requests += 1;
        true
    }

    fn push(&mut self, item: Item) {
        if item.is_frames() {
            self.frames += 1;
            self.bytes += item.frame_bytes();
        }
        self.text_bytes += item.text_bytes();
        self.items.push_back(item);
    }

    fn count_dropped(item: &Item) -> u64 {
        match item {
            Item::Frame(_) => 1,
            Item::Burst(v) => v.len() as u64,
            _ => 0,
        }
    }

    /// Drops every queued frame (control messages stay, in order).
    fn drop_frames(&mut self) {
        let mut dropped = 0;
        self.items.retain(|i| {
            dropped += Self::count_dropped(i);
            !i.is_frames()
        });
        self.frames_dropped += dropped;
        self.frames = 0;
        self.bytes = 0;
    }

    /// Drops the queued frames before the last queued keyframe. Returns false if none is queued.
    fn drop_to_last_key(&mut self) -> bool {
        let Some(last_key) = self.items.iter().rposition(Item::has_key) else {
            return false;
        };
        let mut index = 0;
        let mut dropped = 0;
        self.items.retain(|i| {
            let keep = index >= last_key || !i.is_frames();
            if !keep {
                dropped += Self::count_dropped(i);
            }
            index += 1;
            keep
        });
        self.frames_dropped += dropped;
        self.frames = self.items.iter().filter(|i| i.is_frames()).count();
        self.bytes = self.items.iter().map(Item::frame_bytes).sum();
        true
    }

    fn pop(&mut self) -> Option<Item> {
        // Sound overtakes queued pictures, not messages (hello comes first, configs in order).
        let front_is_frames = self.items.front().is_none_or(Item::is_frames);
        if !self.closed && front_is_frames {
            if let Some(packet) = self.audio.pop_front() {
                return Some(Item::Audio(packet));
            }
        }
        let item = self.items.pop_front()?;
        if item.is_frames() {
            self.frames -= 1;
            self.bytes -= item.frame_bytes();
        }
        self.text_bytes -= item.text_bytes();
        Some(item)
    }

    /// A message queued behind a still that waits for its window (`Client::next`): it goes
    /// first, unless a `config` comes before it (the frames after it are that config's).
    fn pop_text_behind(&mut self) -> Option<Item> {
        let at = self
            .items
            .iter()
            .skip(1)
            .take_while(|i| !matches!(i, Item::Config(_) | Item::Close(..)))
            .position(|i| matches!(i, Item::Text(_) | Item::Stats(_)))?;
        let item = self.items.remove(at + 1)?;
        self.text_bytes -= item.text_bytes();
        Some(item)
    }

    /// Drops every queued frame and waits for a keyframe.
    fn restart_at_key(&mut self) {
        self.drop_frames();
        self.need_key = true;
    }

    /// Queues a text item; false when the client's unread text is over its bound.
    fn push_text(&mut self, item: Item) -> bool {
        if self.text_bytes + item.text_bytes() > MAX_QUEUED_TEXT_BYTES {
            return false;
        }
        self.push(item);
        true
    }

    /// Closes: what is still queued is dropped and the close goes out next.
    fn close(&mut self, code: u16, reason: String) {
        self.closed = true;
        self.items.clear();
        self.audio.clear();
        self.frames = 0;
        self.bytes = 0;
        self.text_bytes = 0;
        self.items
            .push_back(Item::Close(code, protocol::close_reason(reason)));
    }
}

/// One connected client, as the hub sees it; its transport owns the socket.
pub(crate) struct Client {
    pub id: u64,
    pub envelope: Envelope,
    pub transport: &'static str,
    pub remote: Option<SocketAddr>,
    /// What its link lets it do: a view link's input and application messages are ignored.
    pub role: Role,
    /// It gets audio packets (`Peer::audio`).
    pub audio: bool,
    /// What its page measured of its link (`Peer::downlink_bps`).
    downlink_bps: Option<u64>,
    queue: Mutex<ClientQueue>,
    counters: Mutex<ClientCounters>,
    notify: Notify,
    /// Becomes true when the client is closed: a send blocked on a full socket gives up.
    closed: tokio::sync::watch::Sender<bool>,
    /// When the client was last heard from (any message, pong or ack), and since when its sender
    /// has been waiting on a write that has not completed (0: not waiting); both in ms since
    /// `epoch`.
    epoch: Instant,
    last_heard_ms: AtomicU64,
    write_since_ms: AtomicU64,
    /// Input and application messages ignored (view link, view-only) or not understood.
    input_ignored: AtomicU64,
    /// Messages that broke no rule of the protocol but were not valid (an unknown button, a
    /// malformed datagram): counted and dropped.
    messages_rejected: AtomicU64,
    /// The path's figures, where the transport reports them (WebRTC).
    network: Mutex<Option<NetworkStats>>,
    /// A WebRTC peer's receiver reports, which stand in for the acks it does not send; None
    /// for the other transports.
    rtcp: Mutex<Option<crate::rtcp::Feedback>>,
    /// The buttons held as the client's last in-order pointer message said (GStreamer's masks):
    /// a pointer move in a datagram that says otherwise was sent before that message and
    /// overtook it (docs/protocol.md, "WebTransport").
    ordered_buttons: AtomicU32,
}

impl Client {
    fn new(id: u64, envelope: Envelope, transport: &'static str, peer: Peer) -> Client {
        Client {
            id,
            envelope,
            transport,
            remote: peer.remote,
            role: peer.role,
            audio: peer.audio,
            downlink_bps: peer.downlink_bps,
            queue: Mutex::default(),
            counters: Mutex::default(),
            notify: Notify::new(),
            closed: tokio::sync::watch::Sender::new(false),
            epoch: Instant::now(),
            last_heard_ms: AtomicU64::new(0),
            write_since_ms: AtomicU64::new(0),
            input_ignored: AtomicU64::new(0),
            messages_rejected: AtomicU64::new(0),
            network: Mutex::default(),
            rtcp: Mutex::default(),
            ordered_buttons: AtomicU32::new(0),
        }
    }

    /// A message that came in order (a stream, the WebSocket): its pointer buttons are the ones
    /// held from now on.
    pub fn note_in_order(&self, msg: &ClientMessage) {
        if let ClientMessage::Input(input) = msg {
            if let Some(buttons) = input.pointer_buttons() {
                self.ordered_buttons
                    .store(buttons.bits(), Ordering::Relaxed);
            }
        }
    }

    /// A datagram's pointer move whose buttons are not the ones held: it was sent before the
    /// press or release that came in order, and overtook it. Dropped (the next move follows).
    pub fn is_stale_datagram(&self, msg: &ClientMessage) -> bool {
        match msg {
            ClientMessage::Input(
                input @ Input::Navigation(gst_video::NavigationEvent::MouseMove { .. }),
            ) => input
                .pointer_buttons()
                .is_some_and(|b| b.bits() != self.ordered_buttons.load(Ordering::Relaxed)),
            _ => false,
        }
    }

    fn ms_since_epoch(&self, at: Instant) -> u64 {
        // +1: 0 means "not set" for write_since_ms.
        at.saturating_duration_since(self.epoch).as_millis() as u64 + 1
    }

    /// Something arrived from the client.
    pub fn heard(&self) {
        self.last_heard_ms
            .store(self.ms_since_epoch(Instant::now()), Ordering::Relaxed);
    }

    fn last_heard(&self) -> u64 {
        self.last_heard_ms.load(Ordering::Relaxed)
    }

    /// How long since the client was last heard from.
    pub fn silent_for(&self) -> Duration {
        let now = self.ms_since_epoch(Instant::now());
        Duration::from_millis(now.saturating_sub(self.last_heard()))
    }

    /// The sender starts (`true`) or finished (`false`) a write to the socket.
    pub fn writing(&self, busy: bool) {
        let v = if busy {
            self.ms_since_epoch(Instant::now())
        } else {
            0
        };
        self.write_since_ms.store(v, Ordering::Relaxed);
    }

    /// Not keeping up: a write has been waiting on its socket for over `STALLED_AFTER`, or
    /// nothing (not even a pong to the server's pings) came from it for a ping interval and
    /// `STALLED_AFTER` more.
    fn is_stalled(&self, now: Instant, ping_interval: Duration) -> bool {
        let now_ms = self.ms_since_epoch(now);
        let stalled = STALLED_AFTER.as_millis() as u64;
        let write = self.write_since_ms.load(Ordering::Relaxed);
        let heard = self.last_heard();
        (write != 0 && now_ms.saturating_sub(write) > stalled)
            || now_ms.saturating_sub(heard) > stalled + ping_interval.as_millis() as u64
    }

    pub fn count_ignored(&self) {
        self.input_ignored.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_rejected(&self) {
        self.messages_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// The next item to send, waiting until there is one. A still image waits while the
    /// client's window of them is in flight (`ClientCounters::still_held`), until an ack or the
    /// window's time limit; messages behind it go meanwhile.
    pub async fn next(&self) -> Item {
        loop {
            let held = {
                let mut q = self.queue.lock().unwrap();
                let still_next = match q.items.front() {
                    Some(Item::Frame(f)) if !q.closed && q.audio.is_empty() && f.is_still() => {
                        Some(f.len())
                    }
                    _ => None,
                };
                let held = still_next.and_then(|len| {
                    self.counters
                        .lock()
                        .unwrap()
                        .still_held(Instant::now(), len)
                });
                let next = match held {
                    None => q.pop(),
                    // Messages behind it are not held with it.
                    Some(_) => q.pop_text_behind(),
                };
                if let Some(item) = next {
                    return item;
                }
                held
            };
            match held {
                Some(until) => {
                    let _ = tokio::time::timeout_at(until.into(), self.notify.notified()).await;
                }
                None => self.notify.notified().await,
            }
        }
    }

    /// Queues a control message (never dropped by backpressure). A client that does not read
    /// its messages is closed once they exceed `MAX_QUEUED_TEXT_BYTES`.
    /// Returns whether it was queued.
    pub fn send_text(&self, text: String) -> bool {
        let mut q = self.queue.lock().unwrap();
        if q.closed {
            return false;
        }
        let queued = q.push_text(Item::Text(text));
        if !queued {
            self.close_locked(
                &mut q,
                close::TRY_AGAIN_LATER,
                format!("too slow: over {MAX_QUEUED_TEXT_BYTES} bytes of messages unread"),
            );
        }
        drop(q);
        self.notify.notify_one();
        queued
    }

    /// Closes with the queue's lock held: the queue's flag and `closed` change together.
    fn close_locked(&self, q: &mut ClientQueue, code: u16, reason: String) {
        q.close(code, reason);
        self.closed.send_replace(true);
    }

    /// Resolves once the client is closed (its close may still be on its way out).
    pub async fn closing(&self) {
        let mut closed = self.closed.subscribe();
        let _ = closed.wait_for(|c| *c).await;
    }

    /// Queues the client's own figures, replacing those still queued (latest wins).
    fn send_stats(&self, text: String) {
        let mut q = self.queue.lock().unwrap();
        if q.closed {
            return;
        }
        if let Some(slot) = q.items.iter_mut().find(|i| matches!(i, Item::Stats(_))) {
            let old = std::mem::replace(slot, Item::Stats(text));
            let new_len = slot.text_bytes();
            q.text_bytes = q.text_bytes - old.text_bytes() + new_len;
            return;
        }
        if !q.push_text(Item::Stats(text)) {
            return;
        }
        drop(q);
        self.notify.notify_one();
    }

    /// Closes the client: what is still queued is dropped and the close goes out next. The
    /// reason is cut to what a close frame carries (docs/protocol.md).
    pub fn close(&self, code: u16, reason: impl Into<String>) {
        let mut q = self.queue.lock().unwrap();
        if q.closed {
            return;
        }
        self.close_locked(&mut q, code, reason.into());
        drop(q);
        self.notify.notify_one();
    }

    /// Applies the latest-wins policy to a new frame. Returns true when the client now waits for a
    /// keyframe that should be asked for upstream.
    /// A frame of `rendition`: the keyframe of the one it moves to switches it (the
    /// announcement comes from `announce`); a frame of another rendition is not its (None).
    fn enqueue(
        &self,
        frame: &Arc<Frame>,
        rendition: u32,
        settings: &HubSettings,
        announce: impl FnOnce() -> String,
    ) -> Option<(bool, Option<Overload>)> {
        let mut q = self.queue.lock().unwrap();
        if q.closed {
            return None;
        }
        if q.moving_to == Some(rendition) && frame.is_key() {
            self.switch(q, frame, rendition, announce());
            return None;
        }
        if q.rendition != rendition {
            return None;
        }
        let now = Instant::now();
        // A client waiting for a keyframe that was asked for (it joined, caught up, lost its
        // decoder or its queue) takes the first one that comes: a requested keyframe ends any
        // skip. Dropping it would leave the client waiting for the stream's next periodic one,
        // seconds away (x264enc's default is 250 frames).
        let asked_key = frame.is_key() && q.need_key && !q.stalled_by_acks;
        // Its acks say it is far behind (frames sit in its socket or its decoder): feeding it more
        // only adds latency. It gets a keyframe once it has caught up (see caught_up()). Not
        // for a still to a client that acknowledges: no other frame waits for one, and its
        // window of stills in flight paces them (`ClientCounters::still_held`); one that takes
        // its link longer than max-latency on its own arrives as soon as that link carries it.
        let paced = frame.is_still() && self.counters.lock().unwrap().acks() > 0;
        if let Some(latency) = self
            .acks_behind(settings, now)
            .filter(|_| !asked_key && !paced)
        {
            let mut overload = None;
            if !q.need_key {
                q.drop_frames();
                q.need_key = true;
                q.stalled_by_acks = true;
                q.last_behind = Some(now);
                if let Some(latency) = latency {
                    q.overloads += 1;
                    let mut c = self.counters.lock().unwrap();
                    overload = Some(Overload {
                        client_id: self.id,
                        stream_fps: 0.0,
                        decoded_fps: c.rates(now).1,
                        sustainable_fps: c.sustainable_fps(now),
                        latency,
                        all: false,
                    });
                }
            }
            q.frames_dropped += 1;
            return Some((false, overload));
        }
        if q.need_key {
            if !frame.is_key() {
                q.frames_dropped += 1;
                return Some((false, None));
            }
            q.need_key = false;
            q.stalled_by_acks = false;
            // A fresh start: what it was sent before the keyframe is no latency of the stream it
            // now decodes (the keyframe's own acks tell whether it keeps up). Otherwise the next
            // delta finds those frames old and throws the keyframe away again, for ever.
            self.counters.lock().unwrap().forget_in_flight();
        }
        if frame.is_still() && q.frames > 0 {
            // Latest wins: a still waiting to go (its window is in flight, or the socket is
            // busy) is replaced by this one, which stands alone as well.
            q.drop_frames();
        }
        let over = |q: &ClientQueue| {
            q.frames + 1 > settings.queue_frames || q.bytes + frame.len() > settings.queue_bytes
        };
        let mut wants_key = false;
        if over(&q) {
            q.last_behind = Some(now);
            // Behind: what is queued is stale. A queued keyframe (or this one) is a clean
            // restart; otherwise skip to the next keyframe.
            if frame.is_key() || !q.drop_to_last_key() || over(&q) {
                q.drop_frames();
                if !frame.is_key() {
                    q.need_key = true;
                    q.frames_dropped += 1;
                    wants_key = q.may_request_keyframe(now);
                }
            }
        } else if q
            .last_behind
            .is_some_and(|t| now.duration_since(t) > KEYFRAME_BACKOFF_RESET)
        {
            q.keyframe_backoff = KEYFRAME_BACKOFF_MIN;
            q.last_behind = None;
        }
        if !q.need_key {
            q.push(Item::Frame(frame.clone()));
        }
        drop(q);
        self.notify.notify_one();
        Some((wants_key, None))
    }

    /// Queues an audio packet when the client asked for sound; the oldest unsent one goes when
    /// `MAX_QUEUED_AUDIO` are waiting (a slow link loses sound, never the whole session).
    fn enqueue_audio(&self, packet: &Arc<AudioPacket>) {
        if !self.audio {
            return;
        }
        let mut q = self.queue.lock().unwrap();
        if q.closed {
            return;
        }
        if q.audio.len() >= MAX_QUEUED_AUDIO {
            q.audio.pop_front();
            q.audio_dropped += 1;
        }
        q.audio.push_back(packet.clone());
        drop(q);
        self.notify.notify_one();
    }

    /// Called by the sender after an audio packet went out.
    pub fn sent_audio(&self, packet: &AudioPacket) {
        self.counters.lock().unwrap().sent_audio(packet.len());
    }

    /// Queues a refine still when the client has the picture it refines and room for it.
    fn enqueue_refine(&self, frame: &Arc<Frame>, settings: &HubSettings) {
        let mut q = self.queue.lock().unwrap();
        if q.closed || q.need_key {
            return;
        }
        if self.acks_behind(settings, Instant::now()).is_some()
            || q.frames + 1 > settings.queue_frames
            || q.bytes + frame.len() > settings.queue_bytes
        {
            q.frames_dropped += 1;
            return;
        }
        q.push(Item::Frame(frame.clone()));
        drop(q);
        self.notify.notify_one();
    }

    /// Whether the client is behind downstream of its queue (frames sit in its socket or its
    /// decoder): more frames sent and not acknowledged than its queue holds, twice over, or its
    /// oldest unacknowledged frame older than `max_latency`, or more of them than it decodes in
    /// that time (`Some(latency)` then). Only for clients that acknowledge at all.
    fn acks_behind(&self, settings: &HubSettings, now: Instant) -> Option<Option<Duration>> {
        let c = self.counters.lock().unwrap();
        if c.acks() == 0 {
            return None;
        }
        // Only while it is working through what it was sent (see `ClientCounters::working`): a
        // frame it chose not to show is never acknowledged, and after an idle stream would look
        // seconds late for ever.
        if let Some(max) = settings.max_latency.filter(|max| c.working(now, *max)) {
            // Its oldest frame is late, or what it holds will take too long to decode: stop
            // feeding it before the frames already sent make it late.
            let late = c.oldest_in_flight(now).unwrap_or_default();
            let backlog = c.backlog().unwrap_or_default();
            if late > max || backlog > max {
                return Some(Some(late.max(backlog)));
            }
        }
        (c.unacknowledged() > 2 * settings.queue_frames.max(4)).then_some(None)
    }

    /// After an ack: a client that was stalled by its acks and has caught up now waits for a
    /// keyframe. Returns None while it has not caught up, else whether it may ask for one now
    /// (otherwise once its backoff ends).
    fn caught_up(&self, settings: &HubSettings) -> Option<bool> {
        let mut q = self.queue.lock().unwrap();
        if !q.stalled_by_acks {
            return None;
        }
        {
            let c = self.counters.lock().unwrap();
            // Caught up: its decoder holds little, or what it holds is recent; either well inside
            // what acks_behind() calls behind, so that the keyframe asked for now is not dropped
            // as behind again when it comes.
            let live = c.unacknowledged();
            let recent = settings.max_latency.is_some_and(|max| {
                c.oldest_in_flight(Instant::now())
                    .is_none_or(|age| age < max / 2)
                    && c.backlog().is_none_or(|b| b < max / 2)
            });
            if live > settings.queue_frames.min(2)
                && !(recent && live <= settings.queue_frames.max(4))
            {
                return None;
            }
        }
        q.stalled_by_acks = false;
        Some(q.may_request_keyframe(Instant::now()))
    }

    /// The client lost its decoder state: drop what is queued and wait for a keyframe. Returns
    /// whether it may ask upstream for one now (its backoff: a client cannot force a stream of
    /// keyframes on the others).
    fn restart_at_key(&self) -> bool {
        let mut q = self.queue.lock().unwrap();
        q.restart_at_key();
        // What it was sent before will not be acknowledged: no latency is owed for it.
        self.counters.lock().unwrap().forget_in_flight();
        q.may_request_keyframe(Instant::now())
    }

    /// The rendition it gets, and the one it moves to.
    fn place(&self) -> (u32, Option<u32>) {
        let q = self.queue.lock().unwrap();
        (q.rendition, q.moving_to)
    }

    /// The rendition whose keyframe it needs next: the one it moves to, else its own.
    fn key_rendition(&self) -> u32 {
        let q = self.queue.lock().unwrap();
        q.moving_to.unwrap_or(q.rendition)
    }

    /// Moves it to `rendition` at that rendition's next keyframe (None: it is there already).
    fn move_to(&self, rendition: u32, pinned: Option<bool>) -> Option<u32> {
        let mut q = self.queue.lock().unwrap();
        if let Some(pinned) = pinned {
            q.pinned = pinned;
        }
        if q.closed || (q.rendition == rendition && q.moving_to.is_none()) {
            return None;
        }
        q.moving_to = (q.rendition != rendition).then_some(rendition);
        q.moving_to
    }

    /// The keyframe of the rendition it moves to: what it was queued of the old one is dropped
    /// and the new one starts here, without a gap (the old one's frames came until now). The
    /// announcement goes out before it.
    fn switch(
        &self,
        mut q: std::sync::MutexGuard<'_, ClientQueue>,
        frame: &Arc<Frame>,
        rendition: u32,
        announce: String,
    ) {
        q.drop_frames();
        q.need_key = false;
        q.stalled_by_acks = false;
        q.rendition = rendition;
        q.moving_to = None;
        q.switches += 1;
        // What it was sent of the old rendition is no latency of the one it now decodes.
        self.counters.lock().unwrap().forget_in_flight();
        if let Some(rtcp) = self.rtcp.lock().unwrap().as_mut() {
            rtcp.reset();
        }
        let _ = q.push_text(Item::Text(announce));
        q.push(Item::Frame(frame.clone()));
        drop(q);
        self.notify.notify_one();
    }

    /// Waits for a keyframe that is (or is to be) asked for: not a client that waits for its
    /// acks to catch up first.
    fn waits_for_key(&self) -> bool {
        let q = self.queue.lock().unwrap();
        q.need_key && !q.closed && !q.stalled_by_acks
    }

    /// How long until this client, waiting for a keyframe, may ask for one again.
    fn keyframe_backoff_left(&self) -> Option<Duration> {
        let q = self.queue.lock().unwrap();
        if !q.need_key || q.stalled_by_acks {
            return None;
        }
        let now = Instant::now();
        let at = q.next_keyframe_request.unwrap_or(now);
        Some(at.saturating_duration_since(now) + Duration::from_millis(1))
    }

    /// Called by the sender after a frame went out; `replayed` for the cached group of pictures
    /// sent to a late joiner.
    pub fn sent(&self, frame: &Frame, replayed: bool) {
        self.counters.lock().unwrap().sent(
            frame.header.frame_id,
            frame.len(),
            (!replayed).then_some(frame.arrived),
        );
    }

    /// An acknowledgement from the client (see `ClientCounters::acked`); a still waiting for it
    /// may go now.
    pub fn acked(&self, frame_id: u64, decode_queue_size: Option<u32>, paint_us: Option<u64>) {
        self.counters
            .lock()
            .unwrap()
            .acked(frame_id, decode_queue_size, paint_us);
        self.notify.notify_one();
    }

    /// The stream was flushed: drop what is queued and wait for a keyframe (the hub asks for it
    /// once for every client).
    fn flush(&self) {
        self.queue.lock().unwrap().restart_at_key();
    }

    /// This client's last second for rate control.
    pub fn rate_sample(&self) -> Sample {
        let now = Instant::now();
        let dropped = self.queue.lock().unwrap().frames_dropped;
        if let Some(rtcp) = self.rtcp.lock().unwrap().as_ref() {
            // With TWCC feedback, a queue shows as what arrives falling behind what is sent,
            // within a tenth of a second; the round trips say it a second or two late.
            let twcc = rtcp.has_twcc(now);
            let (floors, floor) = if twcc {
                Default::default()
            } else {
                rtcp.round_trips()
            };
            return Sample {
                floors,
                floor,
                client_id: self.id,
                acking_for: rtcp.reporting_for(now),
                delivered_bps: rtcp.delivered_bps(now),
                queued: if twcc { Duration::ZERO } else { rtcp.queued() },
                overused: rtcp.congested(now),
                reports: !twcc,
                lossy: rtcp.lossy(now),
                dropped,
                downlink_bps: self.downlink_bps,
                ..Sample::default()
            };
        }
        let mut c = self.counters.lock().unwrap();
        let queued = c.oldest_in_flight(now).unwrap_or_default();
        let (floors, floor) = c.latency_floors(now, crate::rate::FLOOR_WINDOW);
        let recent = c.newest_latencies(now, crate::rate::CLIMB_SPAN);
        if queued > crate::rate::QUEUE_LIMIT {
            // Its link carries less than it did: what was measured before is not its rate now.
            c.forget_capacity();
        }
        Sample {
            client_id: self.id,
            acking_for: c.acking_for(now),
            delivered_bps: c.delivered_bps(now),
            queued,
            floors,
            floor,
            recent,
            dropped,
            capacity_bps: c.capacity_bps(now),
            downlink_bps: self.downlink_bps,
            overused: false,
            reports: false,
            lossy: false,
        }
    }

    /// A WebRTC peer's TWCC feedback, as rtpsession summed it up.
    pub fn set_twcc(&self, twcc: crate::rtcp::Twcc) {
        self.with_rtcp(|rtcp| rtcp.twcc(Instant::now(), twcc));
    }

    /// Its receiver reports' figures, made at the first report or TWCC summary.
    fn with_rtcp(&self, f: impl FnOnce(&mut crate::rtcp::Feedback)) {
        f(self
            .rtcp
            .lock()
            .unwrap()
            .get_or_insert_with(Default::default));
    }

    /// The transport's figures for the path (WebRTC: RTCP round trip, jitter, loss), and a
    /// WebRTC peer's last receiver report of its video, read at `now`.
    pub fn set_network(&self, network: NetworkStats, report: Option<crate::rtcp::Report>) {
        *self.network.lock().unwrap() = Some(network);
        if let Some(report) = report {
            self.with_rtcp(|rtcp| rtcp.report(Instant::now(), report));
        }
    }

    pub fn stats(&self) -> ClientStats {
        let mut stats = ClientStats {
            id: self.id,
            transport: self.transport,
            envelope: self.envelope.name(),
            role: self.role.name(),
            remote: self.remote.map(|a| a.to_string()).unwrap_or_default(),
            input_ignored: self.input_ignored.load(Ordering::Relaxed),
            messages_rejected: self.messages_rejected.load(Ordering::Relaxed),
            network: *self.network.lock().unwrap(),
            ..ClientStats::default()
        };
        {
            let q = self.queue.lock().unwrap();
            stats.frames_dropped = q.frames_dropped;
            stats.keyframe_requests = q.keyframe_requests;
            stats.overloads = q.overloads;
            stats.queued_frames = q.frames as u64;
            stats.queued_bytes = (q.bytes + q.text_bytes) as u64;
            stats.rendition = q.rendition;
            stats.rendition_switches = q.switches;
            stats.audio_dropped = q.audio_dropped;
        }
        self.counters.lock().unwrap().fill(&mut stats);
        if let Some(rtcp) = self.rtcp.lock().unwrap().as_ref() {
            stats.delivered_bps = rtcp.delivered_bps(Instant::now());
        }
        stats
    }
}

/// Hub-wide figures.
#[derive(Clone, Debug, Default)]
pub(crate) struct HubStats {
    pub frames: u64,
    pub bytes: u64,
    pub keyframe_requests: u64,
    pub config: Option<Arc<StreamConfig>>,
    /// The encoder's target under rate control (bits per second), 0 when it is off.
    pub target_bps: u64,
    pub clients: Vec<ClientStats>,
    /// Every rendition, the sink pad's (0) first.
    pub renditions: Vec<RenditionStats>,
}

/// One rendition's figures.
#[derive(Clone, Debug, Default)]
pub(crate) struct RenditionStats {
    pub id: u32,
    pub config: Option<Arc<StreamConfig>>,
    /// What its stream sent lately, in bits per second.
    pub bitrate_bps: u64,
    pub frames: u64,
    pub viewers: u32,
}

/// A rendition's stream lately is measured over this long.
const RATE_SPAN: Duration = Duration::from_secs(3);

/// One encoding of the picture: the sink pad's (rendition 0) or a `rendition_%u` pad's.
#[derive(Default)]
struct Track {
    config: Option<Arc<StreamConfig>>,
    gop: Vec<Arc<Frame>>,
    gop_bytes: usize,
    frames: u64,
    bytes: u64,
    last_keyframe_request: Option<Instant>,
    keyframe_request_scheduled: bool,
    keyframe_requests: u64,
    /// When and how large its frames of the last `RATE_SPAN` were (its rate and fps).
    recent: VecDeque<(Instant, usize)>,
}

impl Track {
    fn note(&mut self, now: Instant, len: usize) {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_SPAN)
        {
            self.recent.pop_front();
        }
        if self.recent.len() < 4000 {
            self.recent.push_back((now, len));
        }
    }

    /// Frames in the last second.
    fn fps(&self, now: Instant) -> f64 {
        self.recent
            .iter()
            .filter(|(at, _)| now.duration_since(*at) <= Duration::from_secs(1))
            .count() as f64
    }

    /// Bits per second over the last `RATE_SPAN`.
    fn bitrate(&self, now: Instant) -> u64 {
        self.bitrate_over(now, RATE_SPAN)
    }

    /// Bits per second over the last `span` (at most `RATE_SPAN`).
    fn bitrate_over(&self, now: Instant, span: Duration) -> u64 {
        let bytes: usize = self
            .recent
            .iter()
            .filter(|(at, _)| now.duration_since(*at) <= span)
            .map(|(_, n)| n)
            .sum();
        (bytes as f64 * 8.0 / span.as_secs_f64()) as u64
    }

    fn forget_pictures(&mut self) {
        self.gop.clear();
        self.gop_bytes = 0;
    }
}

#[derive(Default)]
struct HubState {
    clients: HashMap<u64, Arc<Client>>,
    next_id: u64,
    /// Rendition 0 (the sink pad's stream) is always there.
    tracks: BTreeMap<u32, Track>,
    /// The pipeline's gray16 window (`rfb.control` `window`), sent to every newcomer.
    window: Option<String>,
    eos: bool,
    /// The lossless still that refines the current picture (see `push_refine`), for newcomers.
    refine: Option<Arc<Frame>>,
    /// The sound's format, once the audio pad sent a packet (WebRTC answers offer it).
    audio: Option<Arc<AudioConfig>>,
}

impl HubState {
    fn main(&self) -> &Track {
        &self.tracks[&0]
    }

    /// The renditions whose streams have started, with what they sent lately.
    fn rungs(&self, now: Instant) -> Vec<Rung> {
        self.tracks
            .iter()
            .filter(|(_, t)| t.config.is_some() && !t.recent.is_empty())
            .map(|(id, t)| Rung {
                id: *id,
                bps: t.bitrate(now),
            })
            .collect()
    }

    /// The `renditions` announcement for a client on `current`.
    fn announcement(&self, current: u32) -> String {
        let now = Instant::now();
        let list: Vec<protocol::Rendition> = self
            .tracks
            .iter()
            .map(|(id, t)| protocol::Rendition {
                id: *id,
                config: t.config.clone(),
                bitrate_bps: t.bitrate(now),
            })
            .collect();
        protocol::renditions(&list, current)
    }
}

pub(crate) type MessageHandler = Box<dyn Fn(&Client, ClientMessage) + Send + Sync>;

/// How the hub reaches the element. Both are called without the hub's lock held and must not
/// block.
pub(crate) struct Callbacks {
    /// Asks upstream of a rendition (0: the sink pad) for a keyframe.
    pub request_keyframe: Box<dyn Fn(u32) + Send + Sync>,
    /// Input events and application messages from a client.
    pub on_message: MessageHandler,
    /// A client fell behind by more than `max_latency` and skips to a keyframe.
    pub overloaded: Box<dyn Fn(&Overload) + Send + Sync>,
    /// Rate control set a new target bitrate (bits per second) for the encoder, or ticked (about
    /// once a second, with the target as it is: an encoder driven by quality is steered then).
    pub target_bitrate: Box<dyn Fn(u64) + Send + Sync>,
}

pub(crate) struct Hub {
    settings: HubSettings,
    state: Mutex<HubState>,
    callbacks: Callbacks,
    /// Rate control for the encoder upstream, when on.
    rate: Option<Mutex<RateController>>,
    /// Which rendition each viewer gets, when there are several.
    ladder: Mutex<Ladder>,
    /// The relay every frame is also published to (`relay-url`), set once at start.
    relay: OnceLock<Arc<Publisher>>,
}

impl Hub {
    pub fn new(settings: HubSettings, callbacks: Callbacks) -> Arc<Hub> {
        let rate = settings
            .rate
            .map(|(policy, min, max)| Mutex::new(RateController::new(policy, min, max)));
        let mut state = HubState::default();
        state.tracks.insert(0, Track::default());
        Arc::new(Hub {
            settings,
            state: Mutex::new(state),
            callbacks,
            rate,
            ladder: Mutex::default(),
            relay: OnceLock::new(),
        })
    }

    /// Publishes every frame to a relay as well, from now on.
    pub fn set_relay(&self, relay: Arc<Publisher>) {
        let _ = self.relay.set(relay);
    }

    pub fn relay(&self) -> Option<&Arc<Publisher>> {
        self.relay.get()
    }

    /// A rendition pad: its frames go to the viewers the ladder puts on it.
    pub fn add_rendition(&self, id: u32) {
        self.state.lock().unwrap().tracks.entry(id).or_default();
    }

    /// A rendition pad went away: its viewers move to rendition 0 at its next keyframe.
    pub fn remove_rendition(self: &Arc<Self>, id: u32) {
        if id == 0 {
            return;
        }
        if let Some(relay) = self.relay.get() {
            relay.remove_rendition(id);
        }
        let movers: Vec<Arc<Client>> = {
            let mut st = self.state.lock().unwrap();
            st.tracks.remove(&id);
            st.clients
                .values()
                .filter(|c| {
                    let (at, to) = c.place();
                    at == id || to == Some(id)
                })
                .cloned()
                .collect()
        };
        for client in movers {
            client.queue.lock().unwrap().pinned = false;
            if client.move_to(0, None).is_some() {
                self.request_keyframe(0);
            }
        }
    }

    /// One tick (about a second): rate control samples every client and tells the element when
    /// the target changed; the ladder moves viewers up or down.
    pub fn rate_tick(self: &Arc<Self>) {
        if let Some(rate) = &self.rate {
            let made = self.stream_bitrate();
            rate.lock().unwrap().set_stream_rate(made);
        }
        self.rate_step(RateController::tick);
        if let Some(bps) = self.target_bitrate() {
            (self.callbacks.target_bitrate)(bps);
        }
        self.ladder_step(Ladder::tick);
    }

    /// Between ticks: a queue that built up is cut at once (`RateController::check`), or its
    /// viewer moves down (`Ladder::check`).
    pub fn rate_check(self: &Arc<Self>) {
        self.ladder_step(Ladder::check);
        self.rate_step(RateController::check);
    }

    fn rate_step(&self, step: fn(&mut RateController, &[Sample]) -> Option<u64>) {
        let Some(rate) = &self.rate else { return };
        // The viewers of the rendition whose encoder it drives (the lowest, where there are
        // several: the others move down the ladder instead); under `control`, those on the
        // control link only.
        let control_only = self.settings.rate.is_some_and(|r| r.0 == Policy::Control);
        let sampled: Vec<Arc<Client>> = self
            .clients()
            .into_iter()
            .filter(|c| c.place() == (self.settings.rate_rendition, None))
            .filter(|c| !control_only || c.role == Role::Control)
            .collect();
        let samples: Vec<Sample> = sampled.iter().map(|c| c.rate_sample()).collect();
        let (before, target) = {
            let mut rate = rate.lock().unwrap();
            (rate.target(), step(&mut rate, &samples))
        };
        if let Some(bps) = target {
            if bps < before {
                let now = Instant::now();
                for c in &sampled {
                    if let Some(rtcp) = c.rtcp.lock().unwrap().as_mut() {
                        rtcp.forget_losses(now);
                    }
                }
            }
            (self.callbacks.target_bitrate)(bps);
        }
    }

    fn ladder_step(self: &Arc<Self>, step: fn(&mut Ladder, &[Rung], &[Seat]) -> Vec<Move>) {
        let (rungs, clients) = {
            let st = self.state.lock().unwrap();
            if st.tracks.len() < 2 {
                return;
            }
            let now = Instant::now();
            let rungs = st.rungs(now);
            (rungs, st.clients.values().cloned().collect::<Vec<_>>())
        };
        let seats: Vec<Seat> = clients
            .iter()
            .map(|c| {
                let sample = c.rate_sample();
                let q = c.queue.lock().unwrap();
                Seat {
                    sample,
                    rendition: q.rendition,
                    moving_to: q.moving_to,
                    pinned: q.pinned,
                }
            })
            .collect();
        let moves = step(&mut self.ladder.lock().unwrap(), &rungs, &seats);
        for m in moves {
            let Some(client) = clients.iter().find(|c| c.id == m.client_id) else {
                continue;
            };
            if client.place() == (m.rendition, None) {
                // A keyframe of its own rendition: it measures the client's link.
                self.request_keyframe(m.rendition);
            } else {
                self.move_client(client, m.rendition, None);
            }
        }
    }

    /// Moves a client to `rendition` at its next keyframe, which is asked for; `pinned`: the
    /// viewer chose (Some(true)) or gave the choice back to the ladder (Some(false)).
    fn move_client(self: &Arc<Self>, client: &Client, rendition: u32, pinned: Option<bool>) {
        {
            let st = self.state.lock().unwrap();
            let Some(to) = st.tracks.get(&rendition) else {
                return;
            };
            // A WebRTC peer's track was negotiated for one codec: it moves within it only.
            let codec = |t: &Track| t.config.as_ref().map(|c| c.codec.codec);
            let from = st.tracks.get(&client.place().0).and_then(codec);
            if client.transport == "webrtc" && from.is_some() && codec(to) != from {
                gst::debug!(
                    crate::CAT,
                    "client {}: rendition {rendition} has another codec than its WebRTC track",
                    client.id
                );
                return;
            }
        }
        gst::debug!(
            crate::CAT,
            "client {}: to rendition {rendition} at its next keyframe",
            client.id
        );
        if let Some(to) = client.move_to(rendition, pinned) {
            self.request_keyframe(to);
        }
    }

    /// What the rendition rate control drives made in the last second (bits per second): the
    /// measure that steers an encoder driven by quality.
    pub fn stream_bitrate(&self) -> u64 {
        let st = self.state.lock().unwrap();
        st.tracks.get(&self.settings.rate_rendition).map_or(0, |t| {
            t.bitrate_over(Instant::now(), Duration::from_secs(1))
        })
    }

    /// The encoder's target bitrate under rate control (bits per second), None when it is off.
    pub fn target_bitrate(&self) -> Option<u64> {
        self.rate.as_ref().map(|r| r.lock().unwrap().target())
    }

    /// A validated message from a client, whatever its transport.
    pub fn on_client_message(self: &Arc<Self>, client: &Client, msg: ClientMessage) {
        match msg {
            ClientMessage::KeyframeRequest { .. } => self.client_needs_keyframe(client),
            ClientMessage::Ack {
                frame_id,
                decode_queue_size,
                paint_us,
            } => {
                client.acked(frame_id, decode_queue_size, paint_us);
                if let Some(may_ask) = client.caught_up(&self.settings) {
                    self.keyframe_for(client, may_ask);
                }
            }
            ClientMessage::Rendition { id } => match id {
                Some(id) => self.move_client(client, id, Some(true)),
                None => {
                    client.queue.lock().unwrap().pinned = false;
                }
            },
            ClientMessage::Ignored { .. } | ClientMessage::Rejected { .. } => {}
            ClientMessage::Input(input) => {
                // A viewer on a rendition of another size points in its pixels.
                let scale = {
                    let st = self.state.lock().unwrap();
                    let rendition = client.place().0;
                    let size = |id: u32| {
                        st.tracks
                            .get(&id)
                            .and_then(|t| t.config.as_ref())
                            .map(|c| (c.codec.width as f64, c.codec.height as f64))
                    };
                    match (rendition, size(0), size(rendition)) {
                        (0, ..) => None,
                        (_, Some((w0, h0)), Some((w, h))) if w > 0.0 && h > 0.0 => {
                            Some((w0 / w, h0 / h))
                        }
                        _ => None,
                    }
                };
                let input = match scale {
                    Some((sx, sy)) => input.scaled(sx, sy),
                    None => input,
                };
                (self.callbacks.on_message)(client, ClientMessage::Input(input))
            }
            msg @ ClientMessage::App { .. } => (self.callbacks.on_message)(client, msg),
        }
    }

    /// Hands a frame of `rendition` (0: the sink pad's) to its clients, and moves those that
    /// wait for its keyframe onto it. Never blocks on a client.
    pub fn push(self: &Arc<Self>, rendition: u32, frame: Arc<Frame>) {
        let mut wants_key = false;
        let mut waiting = Vec::new();
        let mut overloads = Vec::new();
        let all_behind;
        let stream_fps;
        {
            let mut guard = self.state.lock().unwrap();
            let st = &mut *guard;
            let Some(track) = st.tracks.get_mut(&rendition) else {
                return;
            };
            let _ = frame.place.set((rendition, track.frames));
            track.frames += 1;
            track.bytes += frame.len() as u64;
            let now = Instant::now();
            track.note(now, frame.len());
            if track.config.as_ref().map(|c| c.id) != Some(frame.config.id) {
                track.config = Some(frame.config.clone());
                track.forget_pictures();
            }
            if self.settings.gop_cache {
                if frame.is_key() {
                    track.forget_pictures();
                }
                // A cache that does not start at a keyframe, or grew too long, is no use.
                if frame.is_key() || !track.gop.is_empty() {
                    track.gop.push(frame.clone());
                    track.gop_bytes += frame.len();
                    if track.gop.len() > GOP_CACHE_MAX_FRAMES
                        || track.gop_bytes > self.settings.queue_bytes
                    {
                        track.forget_pictures();
                    }
                }
            }
            if rendition == 0 {
                st.eos = false;
                st.refine = None;
            }
            let st = &*st;
            for client in st.clients.values() {
                // One lock of its queue: its rendition, a switch, or the frame.
                let Some((client_wants_key, overload)) =
                    client.enqueue(&frame, rendition, &self.settings, || {
                        st.announcement(rendition)
                    })
                else {
                    continue;
                };
                overloads.extend(overload);
                if client_wants_key {
                    wants_key = true;
                } else if client.waits_for_key() {
                    // It fell behind inside its backoff, or the keyframe asked for went to
                    // another client's restart: it asks again once its backoff ends. Raw video
                    // has no periodic keyframes, and an encoder's may be seconds apart.
                    waiting.push(client.clone());
                }
            }
            // Only for the bus message of a viewer that fell behind (rare): not every frame.
            stream_fps = if overloads.is_empty() {
                0.0
            } else {
                st.tracks.get(&rendition).map_or(0.0, |t| t.fps(now))
            };
            // Upstream of the sink pad is every viewer's only when all are on it.
            all_behind = rendition == 0
                && !overloads.is_empty()
                && st.clients.values().all(|c| {
                    let q = c.queue.lock().unwrap();
                    q.stalled_by_acks && q.rendition == 0
                });
        }
        if let Some(relay) = self.relay.get() {
            // Outside the hub's lock; it only appends: the relay's link never holds the
            // stream up.
            relay.push(rendition, &frame);
        }
        for mut overload in overloads {
            overload.all = all_behind;
            overload.stream_fps = stream_fps;
            (self.callbacks.overloaded)(&overload);
        }
        for client in waiting {
            self.keyframe_after_backoff(&client);
        }
        if wants_key {
            self.request_keyframe(rendition);
        }
    }

    /// An Opus packet from the `audio` pad, to every client that asked for sound. Never waits
    /// on a client, like `push`.
    pub fn push_audio(&self, packet: Arc<AudioPacket>) {
        {
            let mut st = self.state.lock().unwrap();
            if st.audio.as_ref().map(|c| c.id) != Some(packet.config.id) {
                st.audio = Some(packet.config.clone());
            }
            for client in st.clients.values() {
                client.enqueue_audio(&packet);
            }
        }
        if let Some(relay) = self.relay.get() {
            relay.push_audio(&packet);
        }
    }

    /// The sound's format, when the element has sound.
    pub fn audio_config(&self) -> Option<Arc<AudioConfig>> {
        self.state.lock().unwrap().audio.clone()
    }

    /// The stream's current configuration (the sink pad's).
    pub fn config(&self) -> Option<Arc<StreamConfig>> {
        self.state.lock().unwrap().main().config.clone()
    }

    /// Hands every client a lossless still of the current picture (`FrameHeader::refine`). It is
    /// no part of the stream's references: a client waiting for a keyframe, or one whose queue is
    /// full, goes without (it is not worth a keyframe); newcomers get it after the cached group of
    /// pictures until the next frame. A still of an older stream configuration is dropped, and
    /// so is one for a viewer on another rendition.
    pub fn push_refine(&self, frame: Arc<Frame>) {
        let mut st = self.state.lock().unwrap();
        if st.main().config.as_ref().map(|c| c.id) != Some(frame.config.id) {
            return;
        }
        for client in st.clients.values().filter(|c| c.place() == (0, None)) {
            client.enqueue_refine(&frame, &self.settings);
        }
        st.refine = Some(frame);
    }

    /// Registers a client: it gets hello, the current config and picture (or the next keyframe)
    /// of rendition 0, and the renditions when there are several. When `max-clients` are
    /// connected, a client that is not keeping up with its socket (see `Client::is_stalled`)
    /// makes room; otherwise the newcomer is refused.
    pub fn add_client(
        self: &Arc<Self>,
        envelope: Envelope,
        transport: &'static str,
        peer: Peer,
    ) -> Result<Arc<Client>, Refused> {
        let wants_key;
        let client;
        {
            let mut st = self.state.lock().unwrap();
            let max = self.settings.max_clients as usize;
            if max > 0 && st.clients.len() >= max {
                let now = Instant::now();
                let stalled = st
                    .clients
                    .values()
                    .filter(|c| c.is_stalled(now, self.settings.ping_interval))
                    .min_by_key(|c| c.last_heard())
                    .cloned();
                let Some(stalled) = stalled else {
                    return Err(Refused::TooManyClients(max));
                };
                stalled.close(close::TRY_AGAIN_LATER, "evicted: not reading (server full)");
                st.clients.remove(&stalled.id);
            }
            st.next_id += 1;
            client = Arc::new(Client::new(st.next_id, envelope, transport, peer));
            // With renditions, a viewer whose page measured its link starts where it fits:
            // behind a slow link the large rendition's group of pictures would take seconds.
            let start = peer
                .downlink_bps
                .filter(|_| st.tracks.len() > 1)
                .and_then(|downlink| ladder::start(&st.rungs(Instant::now()), downlink))
                .unwrap_or(0);
            let mut q = client.queue.lock().unwrap();
            q.rendition = start;
            q.push(Item::Text(protocol::hello(
                client.id,
                envelope,
                client.role,
            )));
            if st.tracks.len() > 1 {
                q.push(Item::Text(st.announcement(start)));
            }
            let track = &st.tracks[&start];
            if let Some(config) = &track.config {
                q.push(Item::Config(config.clone()));
            }
            if let Some(window) = &st.window {
                q.push(Item::Text(window.clone()));
            }
            // Its page measured a link that would take longer than `SLOW_BURST` over the
            // pictures since the last keyframe: it waits for a keyframe asked for now (after
            // rate control brought the target down to its link, below) rather than seconds of
            // catching up behind a flooded link.
            let gop_bytes: usize = track.gop.iter().map(|f| f.len()).sum();
            // (After the end of the stream nothing newer comes: it gets them all the same.)
            let slow_burst = track.gop.len() > 1
                && !st.eos
                && peer.downlink_bps.is_some_and(|bps| {
                    gop_bytes as f64 * 8.0 / bps as f64 > SLOW_BURST.as_secs_f64()
                });
            if !track.gop.is_empty() && !slow_burst {
                q.push(Item::Burst(track.gop.clone()));
                if let Some(refine) = st.refine.as_ref().filter(|_| start == 0) {
                    q.push(Item::Frame(refine.clone()));
                }
                wants_key = false;
            } else {
                q.need_key = true;
                wants_key =
                    track.config.is_some() && !st.eos && q.may_request_keyframe(Instant::now());
            }
            if st.eos {
                q.push(Item::Text(protocol::eos()));
            }
            drop(q);
            st.clients.insert(client.id, client.clone());
        }
        client.notify.notify_one();
        if client.downlink_bps.is_some() {
            // A target above its link comes down now (`RateController::check`), before the
            // keyframe it may ask for is made.
            self.rate_step(RateController::check);
        }
        if wants_key {
            self.request_keyframe(client.key_rendition());
        }
        Ok(client)
    }

    /// Whether nobody is connected; if so the cached pictures are forgotten and `config`
    /// becomes the stream's, so that whoever connects next gets it and asks for a fresh keyframe.
    /// The raw path skips its encoding then, which makes the cache stale.
    pub fn forget_if_unwatched(&self, config: impl FnOnce() -> Option<Arc<StreamConfig>>) -> bool {
        let mut st = self.state.lock().unwrap();
        if !st.clients.is_empty() {
            return false;
        }
        st.eos = false;
        st.refine = None;
        let main = st.tracks.entry(0).or_default();
        main.forget_pictures();
        if let Some(config) = config() {
            main.config = Some(config);
        }
        true
    }

    pub fn remove_client(&self, id: u64) {
        self.state.lock().unwrap().clients.remove(&id);
    }

    /// A flushing seek on `rendition` (None: the sink pad, which every rendition follows):
    /// what is cached or queued belongs to the old position. Its clients restart at the next
    /// keyframe, which is asked for.
    pub fn flush(self: &Arc<Self>, rendition: Option<u32>) {
        let renditions: Vec<u32> = {
            let mut st = self.state.lock().unwrap();
            if rendition.is_none() {
                st.refine = None;
            }
            for (id, track) in st.tracks.iter_mut() {
                if rendition.is_none_or(|r| r == *id) {
                    track.forget_pictures();
                }
            }
            let mut asked = Vec::new();
            for client in st.clients.values() {
                let at = client.key_rendition();
                if rendition.is_none_or(|r| r == at) {
                    client.flush();
                    if !asked.contains(&at) {
                        asked.push(at);
                    }
                }
            }
            asked
        };
        for id in renditions {
            self.request_keyframe(id);
        }
    }

    /// A client asked for a keyframe (its decoder was reset).
    pub fn client_needs_keyframe(self: &Arc<Self>, client: &Client) {
        let may_ask = client.restart_at_key();
        self.keyframe_for(client, may_ask);
    }

    /// A client now waits for a keyframe: asked for now when its backoff allows (`may_ask`),
    /// else once it ends, if the client still waits. A stream with no periodic keyframes (raw
    /// video, a still picture) or a long keyframe interval would leave it waiting.
    fn keyframe_for(self: &Arc<Self>, client: &Client, may_ask: bool) {
        if may_ask {
            self.request_keyframe(client.key_rendition());
        } else {
            self.keyframe_after_backoff(client);
        }
    }

    fn keyframe_after_backoff(self: &Arc<Self>, client: &Client) {
        let Some(wait) = client.keyframe_backoff_left() else {
            return;
        };
        {
            let mut q = client.queue.lock().unwrap();
            if q.retry_scheduled {
                return;
            }
            q.retry_scheduled = true;
        }
        let (hub, id) = (Arc::downgrade(self), client.id);
        crate::runtime::RUNTIME.spawn(async move {
            tokio::time::sleep(wait).await;
            let Some(hub) = hub.upgrade() else { return };
            let client = hub.state.lock().unwrap().clients.get(&id).cloned();
            if let Some(client) = client {
                let ask = {
                    let mut q = client.queue.lock().unwrap();
                    q.retry_scheduled = false;
                    q.need_key
                        && !q.closed
                        && !q.stalled_by_acks
                        && q.may_request_keyframe(Instant::now())
                };
                if ask {
                    hub.request_keyframe(client.key_rendition());
                }
            }
        });
    }

    /// Sends every client its own figures (the viewer's overlay shows them).
    pub fn send_client_stats(&self) {
        let target_bps = self.target_bitrate().unwrap_or(0);
        for client in self.clients() {
            let mut stats = client.stats();
            stats.target_bps = target_bps;
            client.send_stats(protocol::client_stats(&stats));
        }
    }

    /// Asks upstream of `rendition` for a keyframe, at most once per `keyframe_interval` across
    /// clients; a request inside the interval is deferred to its end (and dropped then if no
    /// client still waits).
    pub fn request_keyframe(self: &Arc<Self>, rendition: u32) {
        let now = Instant::now();
        let interval = self.settings.keyframe_interval;
        let delay = {
            let mut st = self.state.lock().unwrap();
            let Some(track) = st.tracks.get_mut(&rendition) else {
                return;
            };
            match track.last_keyframe_request {
                Some(last) if now.duration_since(last) < interval => {
                    if track.keyframe_request_scheduled {
                        return;
                    }
                    track.keyframe_request_scheduled = true;
                    Some(interval - now.duration_since(last))
                }
                _ => {
                    track.last_keyframe_request = Some(now);
                    track.keyframe_requests += 1;
                    None
                }
            }
        };
        match delay {
            None => (self.callbacks.request_keyframe)(rendition),
            Some(delay) => {
                let hub = Arc::downgrade(self);
                crate::runtime::RUNTIME.spawn(async move {
                    tokio::time::sleep(delay).await;
                    if let Some(hub) = hub.upgrade() {
                        if let Some(t) = hub.state.lock().unwrap().tracks.get_mut(&rendition) {
                            t.keyframe_request_scheduled = false;
                        }
                        if hub.any_client_waits_for_key(rendition) {
                            hub.request_keyframe(rendition);
                        }
                    }
                });
            }
        }
    }

    /// The clients now, to work on without the hub's lock.
    fn clients(&self) -> Vec<Arc<Client>> {
        self.state
            .lock()
            .unwrap()
            .clients
            .values()
            .cloned()
            .collect()
    }

    /// Whether a client waits for a keyframe of `rendition`: to restart on it, or to move there.
    fn any_client_waits_for_key(&self, rendition: u32) -> bool {
        let st = self.state.lock().unwrap();
        st.clients.values().any(|c| match c.place() {
            (_, Some(to)) => to == rendition,
            (at, None) => at == rendition && c.waits_for_key(),
        })
    }

    /// The pipeline set the gray16 window: every client now and every newcomer gets it.
    pub fn set_window(&self, text: String) {
        let mut st = self.state.lock().unwrap();
        for client in st.clients.values() {
            client.send_text(text.clone());
        }
        st.window = Some(text);
    }

    /// The stream ended: tell every client (they stay connected).
    pub fn eos(&self) {
        let mut st = self.state.lock().unwrap();
        st.eos = true;
        for client in st.clients.values() {
            client.send_text(protocol::eos());
        }
    }

    /// Sends a control or application message to one client (`Some(id)`) or to all.
    /// Returns how many clients it was queued for.
    pub fn send_text(&self, client: Option<u64>, text: &str) -> usize {
        let st = self.state.lock().unwrap();
        let mut n = 0;
        for c in st
            .clients
            .values()
            .filter(|c| client.is_none_or(|id| c.id == id))
        {
            n += usize::from(c.send_text(text.to_owned()));
        }
        n
    }

    #[cfg(test)]
    fn client_count(&self) -> usize {
        self.state.lock().unwrap().clients.len()
    }

    pub fn stats(&self) -> HubStats {
        let target_bps = self.target_bitrate().unwrap_or(0);
        let now = Instant::now();
        let (mut stats, clients) = {
            let st = self.state.lock().unwrap();
            let main = st.main();
            (
                HubStats {
                    frames: main.frames,
                    bytes: main.bytes,
                    keyframe_requests: st.tracks.values().map(|t| t.keyframe_requests).sum(),
                    config: main.config.clone(),
                    target_bps,
                    clients: Vec::new(),
                    renditions: st
                        .tracks
                        .iter()
                        .map(|(id, t)| RenditionStats {
                            id: *id,
                            config: t.config.clone(),
                            bitrate_bps: t.bitrate(now),
                            frames: t.frames,
                            viewers: 0,
                        })
                        .collect(),
                },
                st.clients.values().cloned().collect::<Vec<_>>(),
            )
        };
        stats.clients = clients
            .iter()
            .map(|c| ClientStats {
                target_bps,
                ..c.stats()
            })
            .collect();
        stats.clients.sort_by_key(|c| c.id);
        for r in &mut stats.renditions {
            r.viewers = stats.clients.iter().filter(|c| c.rendition == r.id).count() as u32;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Codec, CodecConfig, Format};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn peer() -> Peer {
        Peer {
            remote: None,
            role: Role::Control,
            audio: false,
            downlink_bps: None,
        }
    }

    #[test]
    fn a_datagram_move_that_overtook_a_press_or_release_is_stale() {
        let c = Client::new(1, Envelope::Binary, "webtransport", peer());
        let msg = |json: &str| protocol::parse_client_bytes(json.as_bytes()).unwrap();
        let hover =
            msg(r#"{"channel":"rfb.events","kind":"pointer-move","x":1,"y":1,"buttons":0}"#);
        let drag = msg(r#"{"channel":"rfb.events","kind":"pointer-move","x":2,"y":2,"buttons":1}"#);
        assert!(!c.is_stale_datagram(&hover));
        // Pressed (in order): a hover sent before the press is stale, the drag's moves are not.
        c.note_in_order(&msg(
            r#"{"channel":"rfb.events","kind":"pointer-down","x":1,"y":1,"button":0,"buttons":1}"#,
        ));
        assert!(c.is_stale_datagram(&hover));
        assert!(!c.is_stale_datagram(&drag));
        // Released: a drag move sent before the release is stale.
        c.note_in_order(&msg(
            r#"{"channel":"rfb.events","kind":"pointer-up","x":2,"y":2,"button":0,"buttons":0}"#,
        ));
        assert!(c.is_stale_datagram(&drag));
        assert!(!c.is_stale_datagram(&hover));
        // Other messages are never stale.
        let key = msg(r#"{"channel":"rfb.events","kind":"key-down","key":"a"}"#);
        assert!(!c.is_stale_datagram(&key));
    }

    fn config(id: u32) -> Arc<StreamConfig> {
        Arc::new(StreamConfig {
            id,
            codec: CodecConfig {
                codec: Codec::H264,
                format: Format::AnnexB,
                codec_string: "avc1.42C01E".into(),
                width: 320,
                height: 240,
                description: None,
            },
        })
    }

    fn frame(cfg: &Arc<StreamConfig>, id: u64, key: bool, len: usize) -> Arc<Frame> {
        Frame::new(
            FrameHeader {
                config_id: cfg.id,
                frame_id: id,
                timestamp_us: id as i64 * 1000,
                key,
                refine: false,
            },
            cfg.clone(),
            Bytes::from(vec![0u8; len]),
        )
    }

    #[test]
    fn messages_behind_a_held_still_go_first_but_never_past_a_config() {
        let cfg = config(1);
        let mut q = ClientQueue::default();
        q.push(Item::Frame(frame(&cfg, 0, true, 100)));
        q.push(Item::Text("a".into()));
        q.push(Item::Stats("s".into()));
        q.push(Item::Config(config(2)));
        q.push(Item::Text("b".into()));
        assert!(matches!(q.pop_text_behind(), Some(Item::Text(t)) if t == "a"));
        assert!(matches!(q.pop_text_behind(), Some(Item::Stats(t)) if t == "s"));
        assert!(
            q.pop_text_behind().is_none(),
            "b comes after the next config"
        );
        assert_eq!(q.text_bytes, 1);
        assert!(matches!(q.pop(), Some(Item::Frame(_))));
    }

    fn hub(queue_frames: usize, gop_cache: bool) -> (Arc<Hub>, Arc<AtomicUsize>) {
        hub_with_latency(queue_frames, gop_cache, None)
    }

    fn hub_with_latency(
        queue_frames: usize,
        gop_cache: bool,
        max_latency: Option<Duration>,
    ) -> (Arc<Hub>, Arc<AtomicUsize>) {
        let requests = Arc::new(AtomicUsize::new(0));
        let r = requests.clone();
        let hub = Hub::new(
            HubSettings {
                max_clients: 4,
                gop_cache,
                queue_bytes: 1 << 20,
                queue_frames,
                keyframe_interval: Duration::ZERO,
                ping_interval: Duration::from_secs(5),
                max_latency,
                rate: None,
                rate_rendition: 0,
            },
            Callbacks {
                request_keyframe: Box::new(move |_| {
                    r.fetch_add(1, Ordering::SeqCst);
                }),
                on_message: Box::new(|_, _| {}),
                overloaded: Box::new(|_| {}),
                target_bitrate: Box::new(|_| {}),
            },
        );
        (hub, requests)
    }

    /// The frame ids a client would send, in order, and the keyframe flags.
    fn drain(client: &Client) -> Vec<(u64, bool)> {
        let mut out = Vec::new();
        while let Some(item) = client.queue.lock().unwrap().pop() {
            match item {
                Item::Frame(f) => out.push((f.header.frame_id, f.is_key())),
                Item::Burst(v) => out.extend(v.iter().map(|f| (f.header.frame_id, f.is_key()))),
                _ => {}
            }
        }
        out
    }

    /// A sequence of frames is decodable if it starts with a keyframe and has no gap inside a GOP.
    fn assert_decodable(frames: &[(u64, bool)]) {
        let mut prev: Option<u64> = None;
        for &(id, key) in frames {
            if !key {
                assert_eq!(
                    prev.map(|p| p + 1),
                    Some(id),
                    "delta {id} without its reference in {frames:?}"
                );
            }
            prev = Some(id);
        }
    }

    #[test]
    fn a_viewer_moves_to_another_rendition_at_its_keyframe_without_a_gap() {
        let (hub, requests) = hub(16, false);
        hub.add_rendition(1);
        let moving = hub.add_client(Envelope::Binary, "test", peer()).unwrap();
        let staying = hub.add_client(Envelope::Binary, "test", peer()).unwrap();
        let (main, small) = (config(1), config(1 << 24 | 1));
        hub.push(0, frame(&main, 1, true, 100));
        hub.push(1, frame(&small, 2, true, 10));
        drain(&moving);
        drain(&staying);
        let asked = requests.load(Ordering::SeqCst);
        hub.move_client(&moving, 1, None);
        assert_eq!(
            requests.load(Ordering::SeqCst),
            asked + 1,
            "its new rendition's keyframe is asked for"
        );
        // Until that keyframe comes, the old rendition's frames keep coming.
        hub.push(0, frame(&main, 3, false, 100));
        hub.push(1, frame(&small, 4, false, 10));
        hub.push(0, frame(&main, 5, false, 100));
        assert_eq!(drain(&moving), vec![(3, false), (5, false)]);
        hub.push(0, frame(&main, 51, false, 100));
        // At the keyframe, what is still queued of the old rendition is older than it: dropped.
        hub.push(1, frame(&small, 6, true, 10));
        hub.push(0, frame(&main, 7, false, 100));
        hub.push(1, frame(&small, 8, false, 10));
        let items: Vec<Item> = std::iter::from_fn(|| moving.queue.lock().unwrap().pop()).collect();
        let sent: Vec<String> = items
            .iter()
            .map(|i| match i {
                Item::Frame(f) => format!("{}:{}", f.header.config_id >> 24, f.header.frame_id),
                Item::Text(t) if t.contains("\"renditions\"") => "announce".into(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(sent, ["announce", "1:6", "1:8"]);
        let Some(Item::Text(announce)) = items.iter().find(|i| matches!(i, Item::Text(_))) else {
            unreachable!()
        };
        let v: serde_json::Value = serde_json::from_str(announce).unwrap();
        assert_eq!(v["current"], 1);
        assert_eq!(v["renditions"].as_array().unwrap().len(), 2);
        assert_eq!(
            drain(&staying),
            vec![(3, false), (5, false), (51, false), (7, false)]
        );
        let stats = hub.stats();
        assert_eq!(
            stats
                .renditions
                .iter()
                .map(|r| r.viewers)
                .collect::<Vec<_>>(),
            [1, 1]
        );
        assert_eq!(stats.clients[0].rendition_switches, 1);

        // The rendition goes away: its viewer goes back at rendition 0's next keyframe.
        hub.remove_rendition(1);
        hub.push(0, frame(&main, 9, false, 100));
        hub.push(0, frame(&main, 10, true, 100));
        assert_eq!(
            drain(&moving),
            vec![(10, true)],
            "nothing of rendition 0 before its keyframe"
        );
    }

    #[test]
    fn a_viewer_on_a_smaller_rendition_points_in_the_sources_pixels() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let hub = Hub::new(
            HubSettings {
                max_clients: 4,
                gop_cache: true,
                queue_bytes: 1 << 20,
                queue_frames: 16,
                keyframe_interval: Duration::ZERO,
                ping_interval: Duration::from_secs(5),
                max_latency: None,
                rate: None,
                rate_rendition: 0,
            },
            Callbacks {
                request_keyframe: Box::new(|_| {}),
                on_message: Box::new(move |_, msg| g.lock().unwrap().push(msg)),
                overloaded: Box::new(|_| {}),
                target_bitrate: Box::new(|_| {}),
            },
        );
        hub.add_rendition(1);
        let mut small = (*config(1 << 24 | 1)).clone();
        small.codec.width = 160;
        small.codec.height = 120;
        hub.push(0, frame(&config(1), 1, true, 100));
        hub.push(1, frame(&Arc::new(small.clone()), 2, true, 10));
        let client = hub.add_client(Envelope::Binary, "test", peer()).unwrap();
        let click = || {
            protocol::parse_client_message(
                r#"{"channel":"rfb.events","kind":"pointer-move","x":80,"y":60}"#,
            )
            .unwrap()
        };
        hub.on_client_message(&client, click());
        // It chooses the small one (`rfb.control` `rendition`), which starts at its keyframe.
        hub.on_client_message(
            &client,
            protocol::parse_client_message(
                r#"{"channel":"rfb.control","kind":"rendition","id":1}"#,
            )
            .unwrap(),
        );
        hub.push(1, frame(&Arc::new(small), 3, true, 10));
        hub.on_client_message(&client, click());
        let got = got.lock().unwrap();
        let points: Vec<(f64, f64)> = got
            .iter()
            .map(|m| match m {
                ClientMessage::Input(crate::input::Input::Navigation(
                    gst_video::NavigationEvent::MouseMove { x, y, .. },
                )) => (*x, *y),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(points, [(80.0, 60.0), (160.0, 120.0)]);
        assert!(
            client.queue.lock().unwrap().pinned,
            "the ladder leaves it there"
        );
    }

    #[test]
    fn frames_are_shared_not_copied() {
        let (hub, _) = hub(16, false);
        let a = hub.add_client(Envelope::Binary, "test", peer()).unwrap();
        let b = hub.add_client(Envelope::Json, "test", peer()).unwrap();
        let cfg = config(1);
        let f = frame(&cfg, 0, true, 1000);
        let ptr = f.payload.as_ptr();
        hub.push(0, f);
        for c in [&a, &b] {
            let items: Vec<Item> = std::iter::from_fn(|| c.queue.lock().unwrap().pop()).collect();
            let Some(Item::Frame(f)) = items.last() else {
                panic!("{items:?}")
            };
            assert_eq!(f.payload.as_ptr(), ptr);
        }
    }

    #[test]
    fn slow_client_skips_to_next_keyframe() {
        let (hub, requests) = hub(4, false);
        let slow = hub.add_client(Envelope::Binary, "test", peer()).unwrap();
        let fast = hub.add_client(Envelope::Binary, "test", peer()).unwrap();
        let cfg = config(1);
        let mut fast_got = Vec::new();
        for id in 0..30u64 {
            hub.push(0, frame(&cfg, id, id % 10 == 0, 100));
            fast_got.extend(drain(&fast));
        }
        assert_eq!(fast_got.len(), 30, "the fast client got every frame");
        let slow_got = drain(&slow);
        assert!(slow_got.len() <= 4, "queue bound held: {slow_got:?}");
        assert_decodable(&slow_got);
        assert!(slow.stats().frames_dropped >= 26);
        assert!(
            requests.load(Ordering::SeqCst) >= 1,
            "a keyframe was requested"
        );
        // It then follows the stream again from the next keyframe on (4 frames fit its queue).
        for id in 30..34u64 {
            hub.push(0, frame(&cfg, id, id == 30, 100));
        }
        let after = drain(&slow);
        assert_eq!(
            after,
            vec![(30, true), (31, false), (32, false), (33, false)]
        );
        assert_decodable(&after);
    }

    #[test]
    fn overflow_restarts_at_a_queued_keyframe() {
        let (hub, _) = hub(4, false);
        let c = hub.add_client(Envelope::Binary, "test", peer()).unwrap();
        let cfg = config(1);
        // need_key is set at join; the first keyframe clears it.
        for (id, key) in [(0, true), (1, false), (2, true), (3, false), (4, false)] {
            hub.push(0, frame(&cfg, id, key, 10));
        }
        let got = drain(&c);
        assert_eq!(got, vec![(2, true), (3, false), (4, false)]);
    }

    #[test]
    fn a_stalled_client_does_not_force_a_stream_of_keyframes() {
        let (hub, requests) = hub(4, false);
        let _stalled = hub.add_client(Envelope::Binary, "test", peer()).unwrap();
        let cfg = config(1);
        // 20 s of 30 fps with a keyframe every second; the client never drains its queue, so it
        // overflows after every keyframe.
        for id in 0..600u64 {
            hub.push(0, frame(&cfg, id, id % 30 == 0, 100));
        }
        // Without a per-client backoff that is one request per overflow (~20); with it, a few.
        let n = requests.load(Ordering::SeqCst);
        assert!((1..=4).contains(&n), "{n} keyframe requests");
    }

    #[test]
    fn a_client_whose_acks_lag_is_paused_until_it_catches_up() {
        let (hub, requests) = hub(4, false);
        let c = hub.add_client(Envelope::Binary, "test", peer()).unwrap();
        let cfg = config(1);
        let mut sent = 0;
        // The client takes frames off its queue (its socket is fine) but acks only the first:
        // its decoder is behind.
        for id in 0..40u64 {
            hub.push(0, frame(&cfg, id, id % 10 == 0, 10));
            for item in std::iter::from_fn(|| c.queue.lock().unwrap().pop()) {
                if let Item::Frame(f) = item {
                    c.sent(&f, false);
                    sent += 1;
                    if f.header.frame_id == 0 {
                        c.acked(0, Some(0), None);
                    }
                }
            }
        }
        // Frame 0 (acked), then 1..=9: more than 2 x 4 unacknowledged.
        assert_eq!(
            sent, 10,
            "fed until 2x client-queue-frames were unacknowledged"
        );
        assert!(c.stats().frames_dropped >= 30);
        let before = requests.load(Ordering::SeqCst);
        // It catches up: acks for everything sent; then it asks for a keyframe and resumes.
        hub.on_client_message(
            &c,
            ClientMessage::Ack {
                frame_id: 9,
                decode_queue_size: Some(0),
                paint_us: None,
            },
        );
        assert_eq!(requests.load(Ordering::SeqCst), before + 1);
        hub.push(0, frame(&cfg, 40, true, 10));
        assert_eq!(drain(&c), vec![(40, true)]);
    }

    #[test]
    fn sound_goes_to_those_who_asked_ahead_of_queued_frames_and_bounded() {
        let (hub, _) = hub(16, false);
        let cfg = config(1);
        let deaf = hub.add_client(Envelope::Binary, "test", peer()).unwrap();
        let listener = hub
            .add_client(
                Envelope::Binary,
                "test",
                Peer {
                    audio: true,
                    downlink_bps: None,
                    ..peer()
                },
            )
            .unwrap();
        hub.push(0, frame(&cfg, 0, true, 10));
        let audio = Arc::new(crate::audio::AudioConfig { id: 1, channels: 2 });
        for seq in 0..(MAX_QUEUED_AUDIO as u64 + 5) {
            let packet = crate::audio::AudioPacket::new(
                audio.clone(),
                seq,
                seq as i64 * 20_000,
                Bytes::from_static(&[0xf8]),
            );
            hub.push_audio(packet);
        }
        let items: Vec<Item> =
            std::iter::from_fn(|| listener.queue.lock().unwrap().pop()).collect();
        let sound: Vec<u64> = items
            .iter()
            .filter_map(|i| match i {
                Item::Audio(p) => Some(p.seq),
                _ => None,
            })
            .collect();
        // The oldest went: a slow link loses sound, never the session.
        assert_eq!(sound, (5..MAX_QUEUED_AUDIO as u64 + 5).collect::<Vec<_>>());
        // After hello, ahead of the frame queued before it.
        assert!(matches!(&items[0], Item::Text(t) if t.contains("hello")));
        assert!(matches!(items[1], Item::Audio(_)), "sound first: {items:?}");
        assert!(items.iter().any(|i| matches!(i, Item::Frame(_))));
        assert_eq!(listener.stats().audio_dropped, 5);
        let deaf_items: Vec<Item> =
            std::iter::from_fn(|| deaf.queue.lock().unwrap().pop()).collect();
        assert!(!deaf_items.iter().any(|i| matches!(i, Item::Audio(_))));
    }

    #[test]
    fn late_joiner_gets_the_cached_gop() {
        let (hub, requests) = hub(16, true);
        let cfg = config(1);
        for id in 0..5u64 {
            hub.push(0, frame(&cfg, id, id == 0, 10));
        }
        let late = hub.add_client(Envelope::Json, "test", peer()).unwrap();
        let items: Vec<Item> = std::iter::from_fn(|| late.queue.lock().unwrap().pop()).collect();
        assert!(matches!(&items[0], Item::Text(t) if t.contains("hello")));
        assert!(matches!(&items[1], Item::Config(c) if c.id == 1));
        let Item::Burst(b) = &items[2] else {
            panic!("{items:?}")
        };
        assert_eq!(
            b.iter().map(|f| f.header.frame_id).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(requests.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn late_joiner_without_cache_waits_for_requested_keyframe() {
        let (hub, requests) = hub(16, false);
        let cfg = config(1);
        for id in 0..3u64 {
            hub.push(0, frame(&cfg, id, id == 0, 10));
        }
        let late = hub.add_client(Envelope::Json, "test", peer()).unwrap();
        assert_eq!(requests.load(Ordering::SeqCst), 1);
        hub.push(0, frame(&cfg, 3, false, 10));
        hub.push(0, frame(&cfg, 4, true, 10));
        assert_eq!(drain(&late), vec![(4, true)]);
    }

    /// Takes what the client's sender would send, marking each frame sent (`replayed` for the
    /// burst), and returns the ids.
    fn send_all(client: &Client) -> Vec<u64> {
        let mut ids = Vec::new();
        while let Some(item) = client.queue.lock().unwrap().pop() {
            match item {
                Item::Frame(f) => {
                    client.sent(&f, false);
                    ids.push(f.header.frame_id);
                }
                Item::Burst(v) => {
                    for f in v {
                        client.sent(&f, true);
                        ids.push(f.header.frame_id);
                    }
                }
                _ => {}
            }
        }
        ids
    }

    fn ack(hub: &Arc<Hub>, client: &Client, frame_id: u64, decode_queue_size: u32) {
        hub.on_client_message(
            client,
            ClientMessage::Ack {
                frame_id,
                decode_queue_size: Some(decode_queue_size),
                paint_us: None,
            },
        );
    }

    #[test]
    fn a_late_joiner_decoding_a_long_cached_gop_keeps_getting_live_frames() {
        // 100 frames since the last keyframe (an app's x264enc, 250 frames a GOP): the joiner is
        // sent them at once, and acks them as it decodes, while live frames keep coming. The
        // burst is not "more unacknowledged frames than the queue holds": no skip, no keyframe.
        let (hub, requests) = hub(16, true);
        let cfg = config(1);
        for id in 0..100u64 {
            hub.push(0, frame(&cfg, id, id == 0, 10));
        }
        let late = hub.add_client(Envelope::Binary, "test", peer()).unwrap();
        assert_eq!(send_all(&late).len(), 100, "the cached group of pictures");
        let mut live = Vec::new();
        for id in 100..130u64 {
            hub.push(0, frame(&cfg, id, false, 10));
            live.extend(send_all(&late));
            // It works through the burst, 4 frames per live frame, its decoder busy.
            ack(&hub, &late, (id - 100) * 4, 1);
        }
        assert_eq!(live, (100..130).collect::<Vec<_>>(), "every live frame");
        assert_eq!(requests.load(Ordering::SeqCst), 0, "no keyframe asked for");
        assert_eq!(late.stats().frames_dropped, 0);
    }

    #[test]
    fn a_requested_keyframe_ends_the_skip_even_while_acks_lag() {
        let max = Duration::from_millis(400);
        let (hub, requests) = hub_with_latency(4, false, Some(max));
        let c = hub.add_client(Envelope::Binary, "test", peer()).unwrap();
        let cfg = config(1);
        hub.push(0, frame(&cfg, 0, true, 10));
        send_all(&c);
        ack(&hub, &c, 0, 0);
        // Its decoder stops acknowledging: after 2 x 4 frames in flight it is paused.
        for id in 1..=12u64 {
            hub.push(0, frame(&cfg, id, false, 10));
            send_all(&c);
        }
        assert!(c.queue.lock().unwrap().stalled_by_acks);
        // It catches up to two frames in flight, its decoder still busy: the keyframe it needs
        // is asked for.
        let before = requests.load(Ordering::SeqCst);
        ack(&hub, &c, 7, 1);
        assert_eq!(requests.load(Ordering::SeqCst), before + 1);
        // The keyframe comes late (a slow encoder, a sparse source): by then the two frames
        // still in flight are older than max-latency. It is taken all the same, and what follows.
        std::thread::sleep(max + Duration::from_millis(50));
        hub.push(0, frame(&cfg, 13, false, 10));
        hub.push(0, frame(&cfg, 14, true, 10));
        hub.push(0, frame(&cfg, 15, false, 10));
        assert_eq!(send_all(&c), vec![14, 15]);
    }

    #[test]
    fn a_client_waiting_inside_its_backoff_asks_again_when_it_ends() {
        // x264enc's default GOP is 250 frames: a client that needs a keyframe and may not ask
        // right now must not wait for the next periodic one.
        let (hub, requests) = hub(16, false);
        let c = hub.add_client(Envelope::Binary, "test", peer()).unwrap();
        let cfg = config(1);
        hub.push(0, frame(&cfg, 0, true, 10));
        send_all(&c);
        hub.client_needs_keyframe(&c);
        let first = requests.load(Ordering::SeqCst);
        // Its decoder fails again at once: inside its backoff, nothing asked for now...
        hub.push(0, frame(&cfg, 1, true, 10));
        send_all(&c);
        hub.client_needs_keyframe(&c);
        assert_eq!(requests.load(Ordering::SeqCst), first);
        // ...but once the backoff ends, while deltas keep coming.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut id = 2;
        while requests.load(Ordering::SeqCst) == first && Instant::now() < deadline {
            hub.push(0, frame(&cfg, id, false, 10));
            id += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(requests.load(Ordering::SeqCst), first + 1);
        hub.push(0, frame(&cfg, id, true, 10));
        assert_eq!(send_all(&c), vec![id]);
    }

    fn refine(cfg: &Arc<StreamConfig>, id: u64) -> Arc<Frame> {
        let f = frame(cfg, id, false, 10);
        Frame::new(
            FrameHeader {
                refine: true,
                ..f.header
            },
            cfg.clone(),
            f.payload.clone(),
        )
    }

    #[test]
    fn refine_reaches_clients_with_the_picture_and_newcomers_until_the_next_frame() {
        let (hub, _) = hub(16, true);
        let cfg = config(1);
        let watching = hub.add_client(Envelope::Binary, "test", peer()).unwrap();
        let waiting = hub.add_client(Envelope::Binary, "test", peer()).unwrap();
        hub.push(0, frame(&cfg, 0, true, 10));
        hub.push(0, frame(&cfg, 1, false, 10));
        drain(&watching);
        waiting.restart_at_key();
        hub.push_refine(refine(&cfg, 2));
        // Not a keyframe: whoever waits for one still waits, and deltas follow it undisturbed.
        assert_eq!(drain(&watching), vec![(2, false)]);
        assert_eq!(drain(&waiting), vec![]);
        let late = hub.add_client(Envelope::Binary, "test", peer()).unwrap();
        assert_eq!(drain(&late), vec![(0, true), (1, false), (2, false)]);
        hub.push(0, frame(&cfg, 3, false, 10));
        let later = hub.add_client(Envelope::Binary, "test", peer()).unwrap();
        assert_eq!(drain(&later), vec![(0, true), (1, false), (3, false)]);
        // A still of an older configuration is not sent.
        hub.push_refine(refine(&config(0), 4));
        assert_eq!(drain(&watching), vec![(3, false)]);
    }

    #[test]
    fn max_clients_and_close() {
        let (hub, _) = hub(16, false);
        let clients: Vec<_> = (0..4)
            .map(|_| hub.add_client(Envelope::Json, "t", peer()).unwrap())
            .collect();
        let refused = hub.add_client(Envelope::Json, "t", peer()).err().unwrap();
        assert_eq!(refused, Refused::TooManyClients(4));
        assert!(refused.to_string().contains("max-clients=4"), "{refused}");
        clients[0].close(1001, "bye");
        hub.push(0, frame(&config(1), 0, true, 10));
        let items: Vec<Item> =
            std::iter::from_fn(|| clients[0].queue.lock().unwrap().pop()).collect();
        assert!(matches!(items.as_slice(), [Item::Close(1001, r)] if r == "bye"));
        hub.remove_client(clients[0].id);
        assert_eq!(hub.client_count(), 3);
    }

    #[test]
    fn unread_messages_are_bounded_and_stats_coalesce() {
        let (hub, _) = hub(16, false);
        let c = hub.add_client(Envelope::Json, "t", peer()).unwrap();
        for _ in 0..100 {
            hub.send_client_stats();
        }
        let stats = c
            .queue
            .lock()
            .unwrap()
            .items
            .iter()
            .filter(|i| matches!(i, Item::Stats(_)))
            .count();
        assert_eq!(stats, 1, "one stats message queued, however many were sent");
        let big = "x".repeat(64 * 1024);
        for _ in 0..(MAX_QUEUED_TEXT_BYTES / big.len() + 2) {
            c.send_text(big.clone());
        }
        let items: Vec<Item> = std::iter::from_fn(|| c.queue.lock().unwrap().pop()).collect();
        assert!(
            matches!(items.as_slice(), [Item::Close(1013, r)] if r.contains("too slow")),
            "closed once over the bound: {:?}",
            items
                .iter()
                .map(|i| format!("{i:?}").chars().take(40).collect::<String>())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let (hub, _) = hub(16, false);
        let c = hub.add_client(Envelope::Json, "t", peer()).unwrap();
        c.close(1007, "é".repeat(500));
        let Some(Item::Close(_, reason)) = c.queue.lock().unwrap().pop() else {
            panic!("no close")
        };
        assert!(
            reason.len() <= protocol::MAX_CLOSE_REASON,
            "{}",
            reason.len()
        );
        assert!(reason.starts_with('é'));
    }

    #[test]
    fn flush_restarts_every_client_at_a_keyframe() {
        let (hub, requests) = hub(16, true);
        let cfg = config(1);
        let c = hub.add_client(Envelope::Binary, "t", peer()).unwrap();
        for id in 0..3u64 {
            hub.push(0, frame(&cfg, id, id == 0, 10));
        }
        hub.flush(None);
        assert!(
            requests.load(Ordering::SeqCst) >= 1,
            "a keyframe was asked for"
        );
        hub.push(0, frame(&cfg, 3, false, 10));
        hub.push(0, frame(&cfg, 4, true, 10));
        let got = drain(&c);
        assert_eq!(got.last(), Some(&(4, true)));
        assert!(!got.contains(&(3, false)), "{got:?}");
        let late = hub.add_client(Envelope::Binary, "t", peer()).unwrap();
        assert_eq!(
            drain(&late),
            vec![(4, true)],
            "the cache restarted at the new keyframe"
        );
    }

    /// Raw video has no periodic keyframes: a client that falls behind while its keyframe
    /// requests back off asks again when the backoff ends.
    #[test]
    fn raw_client_behind_inside_its_backoff_asks_again_after_it() {
        let (hub, requests) = hub(2, false);
        let raw = Arc::new(StreamConfig {
            id: 1,
            codec: CodecConfig {
                codec: Codec::Raw,
                format: Format::Tiles,
                codec_string: "gray8".into(),
                width: 64,
                height: 64,
                description: None,
            },
        });
        let client = hub
            .add_client(Envelope::Binary, "websocket", peer())
            .unwrap();
        hub.push(0, frame(&raw, 0, true, 10));
        let before = requests.load(Ordering::SeqCst);
        // Never drained: the queue overflows, the client waits for a keyframe; its first request
        // goes out at once, the next ones back off.
        for id in 1..6 {
            hub.push(0, frame(&raw, id, false, 10));
        }
        let after_overflow = requests.load(Ordering::SeqCst);
        assert!(after_overflow > before, "the overflow asked for a keyframe");
        drain(&client);
        hub.push(0, frame(&raw, 6, false, 10));
        assert!(client.waits_for_key());
        std::thread::sleep(KEYFRAME_BACKOFF_MIN * 3);
        assert!(
            requests.load(Ordering::SeqCst) > after_overflow,
            "asked again once the backoff ended"
        );
    }
}
