// SPDX-License-Identifier: MPL-2.0

//! Per-client counters and latency windows: what a client was sent, what it acknowledged, and the
//! figures derived from them (render() to decoded and to painted, fps, bitrate).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Frame arrival times kept per client to match acknowledgements against.
const IN_FLIGHT_MAX: usize = 512;
/// Latency figures are over the last this long (a live figure, not since the start).
pub(crate) const LATENCY_WINDOW: Duration = Duration::from_secs(5);
/// At most this many latency samples per client (a 5 s window at 240 fps).
const LATENCY_SAMPLES_MAX: usize = 1200;
/// fps and bitrate are over the last second.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// A frame at least this much larger than the quickest one, sent and acknowledged, measures the
/// link (`capacity_bps`): a smaller difference is lost in the decoder's jitter.
const CAPACITY_MIN_BYTES: usize = 2 * 1024;
/// The link's capacity is the best a frame got over this long.
const CAPACITY_WINDOW: Duration = Duration::from_secs(5);
/// Still images (every frame stands alone, docs/protocol.md "Backpressure"): the window of
/// frames in flight starts here, and stays between 1 and `STILL_WINDOW_MAX`.
const STILL_WINDOW_START: f64 = 4.0;
const STILL_WINDOW_MAX: f64 = 64.0;
/// A still acknowledged this much later after it was sent than the quickest of the last
/// `CAPACITY_WINDOW` (or half that time, when more) queued on its way: the window shrinks.
const STILL_QUEUED_MIN: Duration = Duration::from_millis(25);
/// The window shrinks to this share of what was in flight, once a quickest time at most.
const STILL_WINDOW_CUT: f64 = 0.7;
/// A still waits for acknowledgements at most this long after the oldest in flight was sent (or
/// twice the last one's sent -> acknowledged, when more, up to `STILL_HOLD_CAP`): one that is
/// never acknowledged (it failed to decode) does not stop the stream, and one that takes its
/// link longer than this is not joined by more.
const STILL_HOLD_MAX: Duration = Duration::from_secs(1);
const STILL_HOLD_CAP: Duration = Duration::from_secs(4);
/// Until the window first shrinks, it also holds at most this many bytes a still it counts
/// (256 KB at the start): four large stills (a 1080p PNG is megabytes) would be seconds of a
/// slow link, all of them old by the time the last arrives.
const STILL_WINDOW_START_BYTES: f64 = 64.0 * 1024.0;

/// Drops the samples older than `CAPACITY_WINDOW`.
fn expire<T>(q: &mut VecDeque<(Instant, T)>, now: Instant) {
    while q
        .front()
        .is_some_and(|(at, _)| now.duration_since(*at) > CAPACITY_WINDOW)
    {
        q.pop_front();
    }
}

/// A snapshot of one client's figures.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClientStats {
    pub id: u64,
    pub transport: &'static str,
    pub envelope: &'static str,
    pub role: &'static str,
    pub remote: String,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub frames_dropped: u64,
    pub keyframe_requests: u64,
    pub queued_frames: u64,
    pub queued_bytes: u64,
    pub acks: u64,
    pub decode_queue_size: u32,
    pub input_ignored: u64,
    pub messages_rejected: u64,
    pub latency_p50_us: u64,
    pub latency_p95_us: u64,
    pub latency_p99_us: u64,
    pub latency_max_us: u64,
    pub paint_p50_us: u64,
    pub paint_p95_us: u64,
    pub fps: f64,
    pub bitrate_bps: u64,
    /// Bits per second of the frames it acknowledged in the last second: what its link
    /// delivered (rate control's estimate when the link is the bottleneck).
    pub delivered_bps: u64,
    /// How many still images may be in flight (`ClientCounters::still_held`).
    pub still_window: f64,
    /// What its link was measured to carry at least (`ClientCounters::capacity_bps`), 0 when
    /// not measured.
    pub capacity_bps: u64,
    /// The encoder's target under rate control (bits per second), 0 when it is off.
    pub target_bps: u64,
    /// Frames the client decoded in the last second (its acks): what it sustains.
    pub decoded_fps: f64,
    /// Times it fell behind by more than `max-latency` and skipped to a keyframe.
    pub overloads: u64,
    /// The rendition it gets (0: the sink pad's stream), and how often it moved.
    pub rendition: u32,
    pub rendition_switches: u64,
    /// Opus packets sent, and those dropped unsent (its link fell behind the sound).
    pub audio_sent: u64,
    pub audio_dropped: u64,
    /// What the network path reports, for transports that report it (WebRTC's RTCP).
    pub network: Option<NetworkStats>,
}

/// A WebRTC peer's path, from its RTCP receiver reports (webrtcbin's `remote-inbound-rtp`):
/// the figures its missing acks cannot give.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct NetworkStats {
    pub rtt_us: u64,
    pub jitter_us: u64,
    pub packets_lost: i64,
}

/// What was sent to one client and what it acknowledged.
#[derive(Default)]
pub(crate) struct ClientCounters {
    frames_sent: u64,
    bytes_sent: u64,
    audio_sent: u64,
    acks: u64,
    /// When the first acknowledgement came.
    first_ack: Option<Instant>,
    decode_queue_size: u32,
    /// Sent and not yet acknowledged: frame id and render() time (None for frames replayed from
    /// the GOP cache to a late joiner: their age is not a latency).
    in_flight: VecDeque<(u64, Option<Instant>, usize, Instant)>,
    /// Large frames' sizes over the time from sent to acknowledged, bits per second (see
    /// `capacity_bps`).
    capacity_samples: VecDeque<(Instant, u64)>,
    /// Sent to acknowledged of every frame of the last `CAPACITY_WINDOW`, and its size: the
    /// quickest is the round trip, the decoder's share and its own bytes, which a large frame's
    /// time and size are measured beyond.
    delays: VecDeque<(Instant, (Duration, usize))>,
    /// The sizes of the frames acknowledged in the last second: what reached the client.
    recent_acked_bytes: VecDeque<(Instant, usize)>,
    /// render() -> decoded, and render() -> painted (when the viewer says how long it painted).
    latencies_us: VecDeque<(Instant, u64)>,
    paint_latencies_us: VecDeque<(Instant, u64)>,
    /// Frames sent in the last second, for fps and bitrate.
    recent_sends: VecDeque<(Instant, usize)>,
    /// Acks of the last second: the rate the client decodes at.
    recent_acks: VecDeque<Instant>,
    /// The last ack and whether the client's decoder still had frames queued then.
    last_ack: Option<(Instant, bool)>,
    /// How long the client takes per frame while its decoder is busy (the time between two acks
    /// when frames were queued in between), smoothed; None until it was ever busy.
    busy_frame_time: Option<Duration>,
    /// How many live frames may be in flight when every frame stands alone (`still_held`): it
    /// grows while frames arrive as quickly as they ever did and shrinks when they queue.
    still_window: StillWindow,
    still_cut_at: Option<Instant>,
}

/// How many live stills may be in flight (`ClientCounters::still_held`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct StillWindow(f64);

impl Default for StillWindow {
    fn default() -> StillWindow {
        StillWindow(STILL_WINDOW_START)
    }
}

impl ClientCounters {
    /// A frame went out; `arrived` is its render() time, None when it was replayed.
    pub fn sent(&mut self, frame_id: u64, len: usize, arrived: Option<Instant>) {
        let now = Instant::now();
        self.frames_sent += 1;
        self.bytes_sent += len as u64;
        self.expire_sends(now);
        self.recent_sends.push_back((now, len));
        if self.in_flight.len() == IN_FLIGHT_MAX {
            self.in_flight.pop_front();
        }
        self.in_flight.push_back((frame_id, arrived, len, now));
    }

    pub fn sent_audio(&mut self, len: usize) {
        self.audio_sent += 1;
        self.bytes_sent += len as u64;
    }

    /// An acknowledgement: the frame was decoded, and painted `paint_us` later when the viewer
    /// says so (the ack then comes after painting).
    pub fn acked(&mut self, frame_id: u64, decode_queue_size: Option<u32>, paint_us: Option<u64>) {
        let now = Instant::now();
        self.acks += 1;
        self.first_ack.get_or_insert(now);
        while self
            .recent_acks
            .front()
            .is_some_and(|at| now.duration_since(*at) > RATE_WINDOW)
        {
            self.recent_acks.pop_front();
        }
        if self.recent_acks.len() < LATENCY_SAMPLES_MAX {
            self.recent_acks.push_back(now);
        }
        if let Some((at, true)) = self.last_ack {
            let sample = now.duration_since(at);
            self.busy_frame_time = Some(match self.busy_frame_time {
                Some(t) => (t * 3 + sample) / 4,
                None => sample,
            });
        }
        self.last_ack = Some((now, decode_queue_size.unwrap_or(0) > 0));
        if let Some(q) = decode_queue_size {
            self.decode_queue_size = q;
        }
        // Acks arrive in order; entries before the acked one were not decoded (or not acked).
        while let Some(&(id, arrived, len, sent_at)) = self.in_flight.front() {
            if id > frame_id {
                break;
            }
            self.in_flight.pop_front();
            if id == frame_id {
                while self
                    .recent_acked_bytes
                    .front()
                    .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
                {
                    self.recent_acked_bytes.pop_front();
                }
                if self.recent_acked_bytes.len() < LATENCY_SAMPLES_MAX {
                    self.recent_acked_bytes.push_back((now, len));
                }
                let took = now.duration_since(sent_at);
                self.measure_link(now, len, took);
                let Some(arrived) = arrived else { break };
                self.fit_still_window(now, took);
                let total = now.duration_since(arrived).as_micros() as u64;
                match paint_us {
                    Some(paint) => {
                        push_sample(&mut self.paint_latencies_us, now, total);
                        push_sample(&mut self.latencies_us, now, total.saturating_sub(paint));
                    }
                    None => push_sample(&mut self.latencies_us, now, total),
                }
                break;
            }
        }
    }

    /// Whether the client acknowledges frames at all.
    pub fn acks(&self) -> u64 {
        self.acks
    }

    /// How long since its first acknowledgement; None before it.
    pub fn acking_for(&self, now: Instant) -> Option<Duration> {
        self.first_ack.map(|at| now.saturating_duration_since(at))
    }

    /// Live frames sent and not yet acknowledged. Frames replayed to a late joiner are not
    /// counted: a group of pictures of a hundred frames, sent at once to be decoded at once, is
    /// not a client that fell behind.
    pub fn unacknowledged(&self) -> usize {
        self.in_flight
            .iter()
            .filter(|(_, a, _, _)| a.is_some())
            .count()
    }

    /// How long ago the oldest frame sent and not yet acknowledged was rendered (frames replayed
    /// to a late joiner aside).
    pub fn oldest_in_flight(&self, now: Instant) -> Option<Duration> {
        self.in_flight
            .iter()
            .find_map(|(_, arrived, _, _)| *arrived)
            .map(|at| now.duration_since(at))
    }

    /// How long the client needs for the live frames it was sent and has not acknowledged, at
    /// the pace it decodes when busy. None while it never was busy.
    pub fn backlog(&self) -> Option<Duration> {
        // Frames replayed to a late joiner are not late: they were sent to be decoded at once.
        let live = self
            .in_flight
            .iter()
            .filter(|(_, a, _, _)| a.is_some())
            .count();
        self.busy_frame_time
            .map(|t| t * live.min(u32::MAX as usize) as u32)
    }

    /// The frame rate the client sustains: its pace when busy, else what it decoded in the last
    /// second.
    pub fn sustainable_fps(&mut self, now: Instant) -> f64 {
        match self.busy_frame_time {
            Some(t) if !t.is_zero() => 1.0 / t.as_secs_f64(),
            _ => self.rates(now).1,
        }
    }

    /// Whether the client is working through what it was sent: its last ack said its decoder
    /// had more queued, or came less than `within` ago. A client whose decoder was empty at its
    /// last ack and that has not acknowledged since chose not to show what came after (a refine
    /// still over another picture, a frame skipped while waiting for a keyframe).
    pub fn working(&self, now: Instant, within: Duration) -> bool {
        self.last_ack
            .is_some_and(|(at, busy)| busy || now.duration_since(at) < within)
    }

    /// The client lost its decoder state (it asked for a keyframe): what it was sent before will
    /// never be acknowledged.
    pub fn forget_in_flight(&mut self) {
        self.in_flight.clear();
        if let Some((_, busy)) = &mut self.last_ack {
            *busy = false;
        }
    }

    /// A live frame was acknowledged `took` after it was sent: the window of stills in flight
    /// grows (by one an ack until the first queue, then by one a window's worth of acks) while
    /// frames take no longer than the quickest did,
    /// and shrinks to `STILL_WINDOW_CUT` of what is in flight when they queue (once a quickest
    /// time: the frames sent before the cut still arrive late). As TCP Vegas reads a queue by its
    /// delay, not by loss.
    fn fit_still_window(&mut self, now: Instant, took: Duration) {
        let Some(quickest) = self.quickest() else {
            return;
        };
        if took <= quickest + STILL_QUEUED_MIN.max(quickest / 2) {
            // Until the first queue, by one an ack (it doubles each round trip: a link of a long
            // round trip needs many in flight); then by one a window's worth.
            let step = if self.still_cut_at.is_none() {
                1.0
            } else {
                1.0 / self.still_window.0
            };
            self.still_window.0 = (self.still_window.0 + step).min(STILL_WINDOW_MAX);
            return;
        }
        if self
            .still_cut_at
            .is_some_and(|at| now.duration_since(at) < quickest)
        {
            return;
        }
        // A window larger than what was in flight never held anything: cut from what was.
        let used = (self.unacknowledged() + 1) as f64;
        self.still_window.0 = (self.still_window.0.min(used) * STILL_WINDOW_CUT).max(1.0);
        self.still_cut_at = Some(now);
    }

    /// Whether the next frame, a still image (every frame stands alone: skipping one costs
    /// nothing but itself), waits for an ack: the window's worth of live frames is in flight.
    /// Some(when it goes regardless): `STILL_HOLD_MAX` (or twice the last ack's time, up to
    /// `STILL_HOLD_CAP`) after the oldest in flight was sent. A newer still replaces it
    /// meanwhile (`Client::enqueue`): the link carries what it can, with no queue, rather than
    /// everything, late.
    ///
    /// Until the window first shrinks, a still (of `len` bytes) that would take what is in
    /// flight past `STILL_WINDOW_START_BYTES` a still it counts waits as well (one goes at least).
    pub fn still_held(&self, now: Instant, len: usize) -> Option<Instant> {
        if self.acks == 0 {
            return None;
        }
        let (live, bytes) = self
            .in_flight
            .iter()
            .filter(|(_, arrived, _, _)| arrived.is_some())
            .fold((0usize, 0usize), |(n, b), (_, _, l, _)| (n + 1, b + l));
        let full = (live as f64) >= self.still_window.0.floor()
            || (self.still_cut_at.is_none()
                && live > 0
                && (bytes + len) as f64 > self.still_window.0 * STILL_WINDOW_START_BYTES);
        if !full {
            return None;
        }
        // A still as large as the link carries in a second or more: the next ack comes as long
        // after as the last one did.
        let last = self.delays.back().map(|(_, (took, _))| *took);
        let hold = STILL_HOLD_MAX.max(
            last.unwrap_or_default()
                .saturating_mul(2)
                .min(STILL_HOLD_CAP),
        );
        let oldest = self
            .in_flight
            .iter()
            .find(|(_, arrived, _, _)| arrived.is_some())
            .map(|(_, _, _, sent_at)| *sent_at)?;
        let until = oldest + hold;
        (now < until).then_some(until)
    }

    /// The quickest sent -> acknowledged of the last `CAPACITY_WINDOW`: the round trip, the
    /// decoder's share and a frame's own bytes, with no queue.
    fn quickest(&self) -> Option<Duration> {
        self.delays.iter().map(|(_, (took, _))| *took).min()
    }

    /// A frame of `len` bytes was acknowledged `took` after it was sent.
    fn measure_link(&mut self, now: Instant, len: usize, took: Duration) {
        expire(&mut self.delays, now);
        expire(&mut self.capacity_samples, now);
        if self.delays.len() < LATENCY_SAMPLES_MAX {
            self.delays.push_back((now, (took, len)));
        }
        let (base_took, base_len) = self
            .delays
            .iter()
            .map(|(_, d)| *d)
            .min()
            .unwrap_or_default();
        let extra = len.saturating_sub(base_len);
        if extra >= CAPACITY_MIN_BYTES && self.capacity_samples.len() < LATENCY_SAMPLES_MAX {
            // Its extra bytes took the extra time, on the link.
            let transfer = took.saturating_sub(base_took).max(Duration::from_millis(1));
            let bps = (extra as f64 * 8.0 / transfer.as_secs_f64()) as u64;
            self.capacity_samples.push_back((now, bps));
        }
    }

    /// The quickest render() -> decoded of the frames acknowledged in each of the last three
    /// `window`s (oldest first; None for a window without an ack), and of the last
    /// `LATENCY_WINDOW`: a queue that stands on the link raises every frame's time, a keyframe's
    /// burst only those right behind it, less and less (rate control's `rising`).
    pub fn latency_floors(
        &self,
        now: Instant,
        window: Duration,
    ) -> ([Option<Duration>; 3], Option<Duration>) {
        let mut floors: [Option<u64>; 3] = [None; 3];
        let mut floor: Option<u64> = None;
        // Newest first: the samples are in the order they came.
        for (at, us) in self.latencies_us.iter().rev() {
            let age = now.saturating_duration_since(*at);
            if age > LATENCY_WINDOW {
                break;
            }
            floor = Some(floor.map_or(*us, |f| f.min(*us)));
            let i = (age.as_micros() / window.as_micros().max(1)) as usize;
            if i < 3 {
                let f = &mut floors[2 - i];
                *f = Some(f.map_or(*us, |f| f.min(*us)));
            }
        }
        (
            floors.map(|f| f.map(Duration::from_micros)),
            floor.map(Duration::from_micros),
        )
    }

    /// The render() -> decoded of the last `N` frames acknowledged (oldest first), when all `N`
    /// were acknowledged within `span` of `now`; None otherwise (rate control's `climbing`: a
    /// queue that grows fast shows frame after frame, before a window's quickest does).
    pub fn newest_latencies<const N: usize>(
        &self,
        now: Instant,
        span: Duration,
    ) -> Option<[Duration; N]> {
        if self.latencies_us.len() < N {
            return None;
        }
        let newest = self.latencies_us.range(self.latencies_us.len() - N..);
        let mut out = [Duration::ZERO; N];
        for (o, (at, us)) in out.iter_mut().zip(newest) {
            if now.saturating_duration_since(*at) > span {
                return None;
            }
            *o = Duration::from_micros(*us);
        }
        Some(out)
    }

    /// The link changed (it queues): what large frames measured before is no longer what it
    /// carries.
    pub fn forget_capacity(&mut self) {
        self.capacity_samples.clear();
    }

    /// What the client's link carries at least, in bits per second: the best of the large frames
    /// of the last `CAPACITY_WINDOW`, each its size over the time from sent to acknowledged (a
    /// frame larger than what the stream sends a frame interval arrives at the link's rate, not
    /// the stream's: a burst measures the link, as a download does): its bytes beyond the
    /// quickest frame's over its time beyond that frame's (the round trip and the decoder's share
    /// cancel out). A frame that queued behind others errs low. None without such a frame.
    pub fn capacity_bps(&mut self, now: Instant) -> Option<u64> {
        expire(&mut self.capacity_samples, now);
        self.capacity_samples.iter().map(|(_, bps)| *bps).max()
    }

    /// Bits per second that reached the client and were decoded: the sizes of the frames it
    /// acknowledged in the last second (a link's delivery rate when it is the bottleneck).
    pub fn delivered_bps(&mut self, now: Instant) -> u64 {
        while self
            .recent_acked_bytes
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            self.recent_acked_bytes.pop_front();
        }
        self.recent_acked_bytes
            .iter()
            .map(|(_, n)| *n as u64 * 8)
            .sum()
    }

    /// Frames sent and acknowledged in the last second.
    pub fn rates(&mut self, now: Instant) -> (f64, f64) {
        self.expire_sends(now);
        let acked = self
            .recent_acks
            .iter()
            .filter(|at| now.duration_since(**at) <= RATE_WINDOW)
            .count();
        (self.recent_sends.len() as f64, acked as f64)
    }

    fn expire_sends(&mut self, now: Instant) {
        while self
            .recent_sends
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            self.recent_sends.pop_front();
        }
    }

    /// Fills the figures these counters own into `stats`.
    pub fn fill(&mut self, stats: &mut ClientStats) {
        let now = Instant::now();
        let latencies = window_sorted(&mut self.latencies_us, now);
        let paints = window_sorted(&mut self.paint_latencies_us, now);
        self.expire_sends(now);
        stats.frames_sent = self.frames_sent;
        stats.bytes_sent = self.bytes_sent;
        stats.audio_sent = self.audio_sent;
        stats.acks = self.acks;
        stats.decode_queue_size = self.decode_queue_size;
        stats.latency_p50_us = percentile(&latencies, 50);
        stats.latency_p95_us = percentile(&latencies, 95);
        stats.latency_p99_us = percentile(&latencies, 99);
        stats.latency_max_us = latencies.last().copied().unwrap_or(0);
        stats.paint_p50_us = percentile(&paints, 50);
        stats.paint_p95_us = percentile(&paints, 95);
        stats.fps = self.recent_sends.len() as f64;
        stats.decoded_fps = self.rates(now).1;
        stats.bitrate_bps = self.recent_sends.iter().map(|(_, n)| *n as u64 * 8).sum();
        stats.delivered_bps = self.delivered_bps(now);
        stats.still_window = self.still_window.0;
        stats.capacity_bps = self.capacity_bps(now).unwrap_or(0);
    }
}

/// Appends a sample to a time window, dropping the oldest beyond `max`.
fn push_sample(window: &mut VecDeque<(Instant, u64)>, at: Instant, value: u64) {
    if window.len() == LATENCY_SAMPLES_MAX {
        window.pop_front();
    }
    window.push_back((at, value));
}

/// The samples of the last LATENCY_WINDOW, sorted.
fn window_sorted(window: &mut VecDeque<(Instant, u64)>, now: Instant) -> Vec<u64> {
    while window
        .front()
        .is_some_and(|(at, _)| now.duration_since(*at) > LATENCY_WINDOW)
    {
        window.pop_front();
    }
    let mut sorted: Vec<u64> = window.iter().map(|(_, v)| *v).collect();
    sorted.sort_unstable();
    sorted
}

/// Nearest-rank percentile of sorted samples; 0 when there are none.
pub(crate) fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_frames_measure_the_link_beyond_the_round_trip() {
        let mut c = ClientCounters::default();
        let now = Instant::now();
        assert_eq!(c.capacity_bps(now), None);
        // Small frames: 20 ms each, the round trip, the decoder's share and their own bytes.
        for _ in 0..5 {
            c.measure_link(now, 2000, Duration::from_millis(20));
        }
        assert_eq!(c.capacity_bps(now), None, "small frames measure nothing");
        // A 62 kB keyframe 120 ms after it was sent: 60 kB more in 100 ms more, 4.8 Mbit/s.
        c.measure_link(now, 62_000, Duration::from_millis(120));
        assert_eq!(c.capacity_bps(now), Some(4_800_000));
        // The best of the window; gone after it.
        c.measure_link(now, 62_000, Duration::from_millis(320));
        assert_eq!(c.capacity_bps(now), Some(4_800_000));
        assert_eq!(c.capacity_bps(now + CAPACITY_WINDOW * 2), None);
    }

    #[test]
    fn newest_latencies_are_the_last_frames_acknowledged_within_the_span() {
        let mut c = ClientCounters::default();
        let now = Instant::now();
        let span = Duration::from_millis(400);
        for (ago, ms) in [(500, 9), (300, 10), (200, 20), (100, 30)] {
            c.latencies_us
                .push_back((now - Duration::from_millis(ago), ms * 1000));
        }
        let ms = Duration::from_millis;
        assert_eq!(
            c.newest_latencies::<3>(now, span),
            Some([ms(10), ms(20), ms(30)])
        );
        // The fourth newest was acknowledged 500 ms ago: too old to read as one run.
        assert_eq!(c.newest_latencies::<4>(now, span), None);
        assert_eq!(c.newest_latencies::<5>(now, span), None);
    }

    #[test]
    fn latency_floors_are_the_quickest_frame_of_each_window() {
        let mut c = ClientCounters::default();
        let now = Instant::now();
        let window = Duration::from_millis(200);
        assert_eq!(c.latency_floors(now, window), ([None; 3], None));
        // Acknowledged 900, 700, 500, 450, 300, 250 and 50 ms ago.
        for (ago, us) in [
            (900, 5_000),
            (700, 30_000),
            (500, 20_000),
            (450, 25_000),
            (300, 40_000),
            (250, 35_000),
            (50, 60_000),
        ] {
            c.latencies_us
                .push_back((now - Duration::from_millis(ago), us));
        }
        let ms = |ms| Some(Duration::from_millis(ms));
        assert_eq!(
            c.latency_floors(now, window),
            ([ms(20), ms(35), ms(60)], ms(5))
        );
        // Two windows later, the newest window has no ack.
        let later = now + Duration::from_millis(400);
        assert_eq!(
            c.latency_floors(later, window),
            ([ms(60), None, None], ms(5))
        );
    }

    #[test]
    fn the_window_of_stills_grows_while_they_come_quickly_and_shrinks_when_they_queue() {
        let mut c = ClientCounters::default();
        let now = Instant::now();
        for _ in 0..3 {
            c.measure_link(now, 1000, Duration::from_millis(10));
        }
        // Quick: one more an ack until the first queue.
        for _ in 0..3 {
            c.fit_still_window(now, Duration::from_millis(20));
        }
        assert_eq!(c.still_window.0, STILL_WINDOW_START + 3.0);
        // Queued (200 ms against 10): cut from what was in flight (nothing else), not from 7.
        c.fit_still_window(now, Duration::from_millis(200));
        assert_eq!(c.still_window.0, 1.0);
        // Once per quickest time: the frames sent before the cut still arrive late.
        c.still_window.0 = 3.0;
        c.fit_still_window(now, Duration::from_millis(200));
        assert_eq!(c.still_window.0, 3.0);
        c.still_window.0 = 1.0;
        // Then by one a window's worth of acks.
        c.fit_still_window(now, Duration::from_millis(10));
        assert_eq!(c.still_window.0, 2.0);
        c.fit_still_window(now, Duration::from_millis(10));
        assert_eq!(c.still_window.0, 2.5);

        // Held while the window's worth is in flight, for at most STILL_HOLD_MAX.
        c.still_window.0 = 1.0;
        assert_eq!(
            c.still_held(now, 1000),
            None,
            "a client that never acknowledged"
        );
        c.sent(0, 1000, Some(now));
        c.acked(0, Some(0), None);
        c.still_window.0 = 1.0;
        assert_eq!(
            c.still_held(Instant::now(), 1000),
            None,
            "nothing in flight"
        );
        c.sent(1, 1000, Some(now));
        let until = c.still_held(Instant::now(), 1000).expect("held");
        assert!(until > Instant::now() && until <= Instant::now() + STILL_HOLD_MAX);
        assert_eq!(c.still_held(until, 1000), None, "not for ever");
        c.still_window.0 = 2.0;
        assert_eq!(
            c.still_held(Instant::now(), 1000),
            None,
            "room for one more"
        );
    }

    #[test]
    fn large_stills_start_with_fewer_in_flight_and_wait_as_long_as_the_last_took() {
        let mut c = ClientCounters::default();
        let start = Instant::now();
        // 100 KB stills, the first acknowledged at once: 5 x 64 KB may be in flight, 3 stills.
        c.sent(0, 100_000, Some(start));
        c.acked(0, Some(0), None);
        assert_eq!(c.still_window.0, STILL_WINDOW_START + 1.0);
        c.sent(1, 100_000, Some(start));
        c.sent(2, 100_000, Some(start));
        assert_eq!(c.still_held(Instant::now(), 100_000), None, "300 KB of 320");
        c.sent(3, 100_000, Some(start));
        assert!(c.still_held(Instant::now(), 100_000).is_some(), "400 KB");
        assert_eq!(
            c.still_held(Instant::now(), 10_000),
            None,
            "a small one fits"
        );
        // Once the window has shrunk it counts stills alone.
        c.still_cut_at = Some(Instant::now());
        assert_eq!(c.still_held(Instant::now(), 100_000), None);

        // The last took 1.5 s (its link carries one that slowly): the next waits for its ack up
        // to twice that after the oldest was sent, not STILL_HOLD_MAX.
        let mut c = ClientCounters::default();
        c.still_window.0 = 1.0;
        c.sent(0, 100_000, Some(start));
        c.acked(0, Some(0), None);
        c.measure_link(Instant::now(), 100_000, Duration::from_millis(1500));
        c.sent(1, 100_000, Some(start));
        let until = c.still_held(Instant::now(), 100_000).expect("held");
        assert!(until > Instant::now() + STILL_HOLD_MAX + Duration::from_millis(1500));
        assert!(until <= Instant::now() + Duration::from_secs(3));
    }

    #[test]
    fn acks_give_latency() {
        let mut c = ClientCounters::default();
        let t = Instant::now();
        for id in 0..3 {
            c.sent(id, 10, Some(t));
        }
        std::thread::sleep(Duration::from_millis(2));
        c.acked(0, Some(0), None);
        c.acked(2, Some(1), Some(0));
        let mut s = ClientStats::default();
        c.fill(&mut s);
        assert_eq!(s.acks, 2);
        assert_eq!(s.decode_queue_size, 1);
        assert!(s.latency_max_us > 0);
        assert!(
            s.paint_p50_us > 0,
            "the ack with paint_us gives a painted latency"
        );
        assert_eq!(s.fps, 3.0);
        assert_eq!(s.bitrate_bps, 3 * 10 * 8);
        assert_eq!(c.unacknowledged(), 0);
        assert_eq!(percentile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50), 5);
        assert_eq!(c.backlog(), None, "never busy");
        assert_eq!(percentile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99), 10);
    }

    #[test]
    fn a_busy_decoder_gives_its_pace_and_backlog() {
        let mut c = ClientCounters::default();
        let t = Instant::now();
        for id in 0..6 {
            c.sent(id, 10, Some(t));
        }
        // Acks 20 ms apart with frames still queued: 20 ms a frame.
        c.acked(0, Some(3), None);
        std::thread::sleep(Duration::from_millis(20));
        c.acked(1, Some(2), None);
        let backlog = c.backlog().unwrap();
        assert!(
            backlog >= Duration::from_millis(4 * 19) && backlog < Duration::from_millis(4 * 40),
            "{backlog:?} for 4 frames"
        );
        assert!(c.sustainable_fps(Instant::now()) > 20.0);
        // Replayed frames (a late joiner's burst) are not a backlog.
        c.sent(6, 10, None);
        assert_eq!(c.backlog(), Some(backlog));
        assert!(
            c.working(
                Instant::now() + Duration::from_secs(9),
                Duration::from_millis(100)
            ),
            "busy at its last ack"
        );
    }

    #[test]
    fn a_frame_the_client_skipped_is_not_latency_for_ever() {
        let mut c = ClientCounters::default();
        let max = Duration::from_millis(200);
        c.sent(0, 10, Some(Instant::now()));
        c.sent(1, 10, Some(Instant::now()));
        c.acked(0, Some(0), None);
        // Acknowledged just now: working through frame 1.
        assert!(c.working(Instant::now(), max));
        // Its decoder was empty and nothing came back for longer than max-latency: frame 1 was
        // not shown (a refine still over another picture). Stale, not late.
        assert!(!c.working(Instant::now() + Duration::from_millis(600), max));
        c.forget_in_flight();
        assert_eq!(c.unacknowledged(), 0);
    }
}
