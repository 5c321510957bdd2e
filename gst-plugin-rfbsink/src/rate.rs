// SPDX-License-Identifier: MPL-2.0

//! Rate control for the one encoder (docs/protocol.md, "Rate control"): from what each viewer
//! already sends back (its acks: what it received and decoded, and how long after render()), a
//! delivery rate and a queue; from those, once a tick (about a second), a target bitrate for the
//! encoder upstream. Pure: the hub feeds it samples, the element applies its answer.
//!
//! The rule, per viewer that acknowledges frames: a viewer is *congested* when its oldest
//! unacknowledged live frame is older than `QUEUE_LIMIT`, or the hub dropped frames for it since
//! the last tick. A WebRTC peer acknowledges nothing: its receiver reports stand in (rtcp.rs), its
//! queue the round trip above its quickest, and it is also congested while its link loses more than
//! `rtcp::LOSS_LIMIT` of what is sent, or its TWCC feedback says it receives less than is sent.
//! Under the `slowest` policy, the target then falls to the lowest of the congested viewers'
//! delivery rates times `BACKOFF` (below the link's rate, so that its queue drains), never below
//! `min`. In a tick in which the hub dropped frames for a viewer (it skipped to a keyframe, and got
//! little), its delivery rate is the best of its last `SKIP_TICKS` ticks: a second of skipping says
//! little of its link. After `CALM_TICKS` ticks without congestion it probes upward, by 10 % the
//! first tick and faster each calm tick after (20 %, then 25 %), up to `max`: a freed link is back
//! at full quality within seconds. While a WebRTC peer counts, by 10 % a tick at most
//! (`REPORTS_MAX_STEP`), and its ceiling (below) is forgotten only after `REPORTS_PAST_TICKS` ticks
//! past it: its reports show a queue later than acks do. Near the rate at which the last congestion
//! came (its `ceiling`: that viewer's delivery rate then) it goes by `NEAR_STEP` only; once the
//! stream (the target, where the encoder's rate is not known) is 5 % past it without congestion,
//! and delivered to every counted viewer whose rate is known 5 % past it, the ceiling is
//! forgotten and the probe starts again at 10 %: the ceiling may have been low (a link starved by
//! skipping delivers less than it carries), and a probe far above the link fills its queue at the
//! difference. Forgetting it sooner (after a few calm 5 % steps while an encoder that
//! makes 80-90 % of its target kept its stream under it) was tried: the climb after a freed link
//! was quicker, but on a steady link the probe then went up by 20-25 % a second past the link, and
//! queued 200-250 ms. Forgetting it later (delivered past it for two ticks in a row, not one) was
//! tried too: fewer 20 % steps past a 700 kbit/s link, but no clear change in its p99 in four
//! rows, and the climb after a freed link took about a second longer (full quality 6.2-9.1 s).
//!
//! A WebRTC peer whose reports or NACKs say it loses a little (2-10 %, `Sample::lossy`) within
//! `LOSSY_AFTER_PROBE` ticks of a probe, when it did not as the probe went up, is congested
//! once: the probe filled its link, and its round trip shows the queue a report later. One
//! that lost as much before is on a lossy link, and is not read so.
//!
//! Between ticks, `check` (about every 100 ms) cuts at once when a viewer's queue passes
//! `QUEUE_LIMIT`: a probe that went past the link builds its queue within a fraction of a
//! second, and a tick later it would be hundreds of milliseconds deep. That cut goes to `DRAIN`
//! times the delivery rate, so that the queue empties within a few hundred milliseconds rather
//! than seconds (at `BACKOFF` a 120 ms queue drains at 15 % of the link: most of a second of
//! frames behind it); the next calm tick raises it to `BACKOFF` times that rate, or times what
//! the link delivered while the queue drained where that is lower, which is then the ceiling
//! (below) too: on a link that just narrowed, the second before the cut was mostly the wider
//! link's (and so are the best of a skipping viewer's last seconds: one whose queue the cut was
//! for, delivered less than the encoder made, reads as its own second). One cut per tick.
//!
//! A queue is also seen before it is deep, as Google Congestion Control sees it, by the growth
//! of delay rather than its size: when the quickest render() -> decoded of a viewer's frames
//! grows across three `FLOOR_WINDOW`s in a row (by `STEP` each, `RISE` in all: a delay that
//! jumps in one window is a stall that passes) and stands `STANDING` above its quickest of the
//! last seconds (`rising`), the stream passes its link (a probe overshot, or the link narrowed)
//! and `check` eases the target to `BACKOFF` times its delivery rate, once a tick, which drains
//! a queue that small within a few hundred milliseconds. A keyframe's burst does not read so:
//! it delays the frames right behind it, each less than the one before. A queue that stands
//! (`standing`: `STANDING_QUEUE` above that quickest in each of the three windows, the newest no
//! quicker than the oldest) eases it too: a stream at its link's rate drains nothing that a
//! larger frame queued, and the next keyframe stacks on it. The hard cut above stays for the
//! queue that grows past `QUEUE_LIMIT` all the same.
//!
//! Three windows' quickest frames see a queue some 400-600 ms after it starts; one that grows
//! fast (a stream 20 % or more past its link: x264enc catching up with a target it lagged, onto a
//! 700 kbit/s link) is 150-250 ms deep by then. Such a queue shows frame by frame first
//! (`climbing`: the newer three of the last six acknowledged frames all slower than the older
//! three, by `CLIMB` on average, the newest the slowest of the last three), and is eased the same
//! way, a few frames after it starts. Checking twice as often (50 ms) was tried instead: no
//! change (700 kbit/s p99 median 150 and 152 ms in six rows each).
//!
//! A viewer whose page measured its link (`Sample::downlink_bps`) is read once as it comes, before
//! it counts: a target above `PAGE_SHARE` of that comes down at once (`measured_links`), rather
//! than flooding its link until its acks count and cutting then from a starved second.
//!
//! A probe never takes the target past `APP_LIMITED` times what the encoder made in the last
//! second (as GCC bounds its increase by the rate actually sent): an encoder that makes less
//! than its target (simple content, x264 below its bitrate) tells nothing of the link by its
//! calm, and a target far above the link sizes its next keyframe and bursts for that target
//! (VBV), which then queue on the link. The target is never lowered for it: an encoder that
//! makes less than it may is not held by it.
//!
//! While the stream is under `FAR_BELOW` of the ceiling, a probe may go up to what the viewers'
//! links were measured to carry (their large frames, keyframes mostly, arrive at the link's
//! rate: `Sample::capacity_bps`), by its usual steps (it is not near the ceiling): x264enc under
//! a VBV too small for the picture (720p snow at 300 kbit/s or less, 120 ms) makes a tenth of its
//! target, grey, and held at 1.5 times that the target never left it, on a free link too.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

/// A viewer whose oldest unacknowledged frame is older than this is queueing: its link (or its
/// decoder) takes less than the stream sends.
pub(crate) const QUEUE_LIMIT: Duration = Duration::from_millis(120);
/// A viewer counts once it has acknowledged frames this long: in its first second its
/// delivery rate covers part of a second, and a decoder that starts (WebKitGTK's first frames
/// took 130-150 ms) looks like a queue.
pub(crate) const WARMUP: Duration = Duration::from_secs(2);
/// How often `check` looks between ticks.
pub(crate) const CHECK_PERIOD: Duration = Duration::from_millis(100);
/// `rising` compares the quickest frames of three windows this long, oldest first...
pub(crate) const FLOOR_WINDOW: Duration = Duration::from_millis(200);
/// ...that grew by this much in all (a standing queue grows at the difference between the
/// stream's rate and the link's: 15 ms in 600 ms is a stream 2.5 % past its link)...
const RISE: Duration = Duration::from_millis(15);
/// ...by at least this much each window (a delay that jumps in one window is a stall, of the
/// viewer's machine or of this one, that passes: a queue grows with every frame)...
const STEP: Duration = Duration::from_millis(4);
/// ...to this much above the viewer's quickest frame of the last seconds.
const STANDING: Duration = Duration::from_millis(25);
/// A queue that stands this far above the viewer's quickest frame in each of three
/// `FLOOR_WINDOW`s, not draining, is a stream at its link's rate (`standing`).
const STANDING_QUEUE: Duration = Duration::from_millis(20);
/// A queue that grows fast is seen frame by frame (`climbing`), in this many acknowledged
/// frames...
pub(crate) const CLIMB_FRAMES: usize = 6;
/// ...all acknowledged within this long...
pub(crate) const CLIMB_SPAN: Duration = Duration::from_millis(400);
/// ...the newer half this much slower than the older on average (at 30 frames a second, a
/// stream 20 % or more past its link: a probe that overshot, or a narrower link).
const CLIMB: Duration = Duration::from_millis(20);
/// The target after congestion: this much of what the slowest viewer was delivered.
const BACKOFF: f64 = 0.85;
/// A viewer's page measured its link (`Sample::downlink_bps`): the target is at most this much
/// of it. The page's files read 823-912 kbit/s through a 700 kbit/s token bucket (its burst
/// passes at once), and x264enc makes 75-90 % of its target: 0.72 of 870 is 626, which makes
/// 470-560 kbit/s, under the link.
const PAGE_SHARE: f64 = 0.85 * BACKOFF;
/// The target right after `check` found a queue, until the next tick: the queue drains at 40 %
/// of the link.
const DRAIN: f64 = 0.6;
/// While a viewer skips, its delivery rate is the best of this many ticks.
const SKIP_TICKS: usize = 3;
/// Ticks without congestion before probing upward.
const CALM_TICKS: u32 = 2;
/// The first probe raises the target by this much; each calm tick after doubles the step...
const PROBE_FIRST_STEP: f64 = 0.10;
/// ...up to this much a tick: a step is also how far past the link a probe may overshoot
/// before `check` sees the queue (0.25 of the link fills 120 ms in about half a second).
const PROBE_MAX_STEP: f64 = 0.25;
/// The most a probe steps while a viewer that counts is a WebRTC peer: its receiver reports
/// show a queue a second or two after it starts (acks, within a few hundred milliseconds), and
/// each 25 % step meanwhile is that much more to drain.
const REPORTS_MAX_STEP: f64 = 0.10;
/// Calm ticks the stream must be past the ceiling before it is forgotten while a WebRTC peer
/// counts (1 otherwise).
const REPORTS_PAST_TICKS: u32 = 3;
/// The probe's step within `NEAR` of the ceiling.
const NEAR_STEP: f64 = 0.05;
const NEAR: f64 = 0.05;
/// A probe goes no higher than this times what the encoder made in the last second, or, while the
/// stream is `FAR_BELOW` the ceiling, than `BACKOFF` of what the viewers' links were measured to
/// carry (`Sample::capacity_bps`).
const APP_LIMITED: f64 = 1.5;
/// A stream under this share of the ceiling is far below it, whatever the target.
const FAR_BELOW: f64 = 0.5;
/// A change smaller than this (relative) is not worth reconfiguring the encoder for.
const MIN_CHANGE: f64 = 0.03;
/// A viewer whose reports say it loses a little (`Sample::lossy`) within this many ticks of a
/// probe, and did not when it went up: the probe filled its link.
const LOSSY_AFTER_PROBE: u32 = 2;

/// Whom the one encoder follows (the `rate-control` property).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
    /// The encoder keeps its own settings; viewers that fall behind skip to keyframes.
    Off,
    /// The slowest viewer that acknowledges frames: everyone gets what it can take.
    Slowest,
    /// The slowest of the viewers on the control link (the hub samples only those): the person
    /// at the controls gets every frame; a view-link audience skips to keyframes or moves down
    /// the ladder, and cannot lower the stream's quality for the controller.
    Control,
}

/// One viewer's last tick, as the controller reads it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sample {
    pub client_id: u64,
    /// How long since it first acknowledged a frame; None when it never did (WebRTC peers do
    /// not acknowledge: they are not sampled). It counts after `WARMUP`.
    pub acking_for: Option<Duration>,
    /// Bits of the frames it acknowledged in the last second.
    pub delivered_bps: u64,
    /// How long ago its oldest unacknowledged live frame was rendered.
    pub queued: Duration,
    /// The quickest render() -> decoded of the frames it acknowledged in each of the last three
    /// `FLOOR_WINDOW`s, oldest first, and of the last seconds (`ClientCounters::latency_floors`).
    pub floors: [Option<Duration>; 3],
    pub floor: Option<Duration>,
    /// The render() -> decoded of its last `CLIMB_FRAMES` acknowledged frames, oldest first,
    /// when all came within `CLIMB_SPAN` (`ClientCounters::newest_latencies`).
    pub recent: Option<[Duration; CLIMB_FRAMES]>,
    /// Frames the hub dropped for it so far (a total).
    pub dropped: u64,
    /// What its link carries at least (`ClientCounters::capacity_bps`), when measured.
    pub capacity_bps: Option<u64>,
    /// What its page measured of its link before it connected (`Peer::downlink_bps`).
    pub downlink_bps: Option<u64>,
    /// Its link takes less than it is sent, as a WebRTC peer's feedback says (rtcp.rs: it lost
    /// more than `rtcp::LOSS_LIMIT`, or TWCC says less arrived than was sent): congested, as a
    /// queue past `QUEUE_LIMIT` is.
    pub overused: bool,
    /// Its figures come from receiver reports (a WebRTC peer without TWCC feedback), a second
    /// or so behind its link.
    pub reports: bool,
    /// Its reports or NACKs say it loses a little (`rtcp::Feedback::lossy`): right after a
    /// probe, the probe filled its link.
    pub lossy: bool,
}

impl Sample {
    /// Its link takes less than it is sent: a queue past `QUEUE_LIMIT`, or `overused`.
    pub fn congested(&self) -> bool {
        self.queued > QUEUE_LIMIT || self.overused
    }
}

/// The controller's state: the target and what it remembers of each viewer.
#[derive(Debug)]
pub(crate) struct RateController {
    policy: Policy,
    min_bps: u64,
    max_bps: u64,
    target_bps: u64,
    /// Ticks without congestion in a row.
    calm: u32,
    /// The delivery rate at the last congestion: probing slows near it.
    ceiling: Option<u64>,
    /// Calm ticks in a row with the stream 5 % past the ceiling.
    past_ceiling: u32,
    /// `check` cut since the last tick.
    cut_since_tick: bool,
    /// The viewers whose queue that cut was for.
    queued_at_cut: HashSet<u64>,
    /// `check` eased for a growing queue since the last tick.
    eased_since_tick: bool,
    /// Where the target goes once a queue `check` found has drained.
    after_drain: Option<u64>,
    /// Per viewer: its drop total at the last tick and its last delivery rates.
    viewers: HashMap<u64, Viewer>,
    /// Ticks since the last probe raised the target.
    since_probe: u32,
    /// A viewer lost a little (`Sample::lossy`) when the last probe went up: its losses after
    /// it say nothing of the probe.
    lossy_at_probe: bool,
    /// What the encoder made in the last second, when known (`set_stream_rate`).
    stream_bps: Option<u64>,
    /// The viewers whose page's measure (`Sample::downlink_bps`) was read: once each.
    measured: HashSet<u64>,
}

#[derive(Debug, Default)]
struct Viewer {
    dropped: u64,
    delivered: VecDeque<u64>,
}

impl RateController {
    /// Starts at `max_bps` (what the encoder was configured with, or the user's bound).
    pub fn new(policy: Policy, min_bps: u64, max_bps: u64) -> RateController {
        let max_bps = max_bps.max(min_bps);
        RateController {
            policy,
            min_bps,
            max_bps,
            target_bps: max_bps,
            calm: 0,
            ceiling: None,
            past_ceiling: 0,
            cut_since_tick: false,
            queued_at_cut: HashSet::new(),
            eased_since_tick: false,
            after_drain: None,
            viewers: HashMap::new(),
            since_probe: u32::MAX,
            lossy_at_probe: false,
            stream_bps: None,
            measured: HashSet::new(),
        }
    }

    /// What the encoder made in the last second (bits per second): a probe goes no higher than
    /// `APP_LIMITED` times it.
    pub fn set_stream_rate(&mut self, bps: u64) {
        self.stream_bps = Some(bps);
    }

    pub fn target(&self) -> u64 {
        self.target_bps
    }

    /// Between ticks: when a viewer's queue passed `QUEUE_LIMIT`, the target falls at once to
    /// `DRAIN` times what it was delivered (the new target), once per tick; the next calm tick
    /// raises it to `BACKOFF` times that, or to less where the link delivered less while the
    /// queue drained (a later tick's estimate, an ease). Before that, a queue that grows
    /// (`rising`) or stands (`standing`) eases it to `BACKOFF` times what that viewer was
    /// delivered, once per tick.
    pub fn check(&mut self, samples: &[Sample]) -> Option<u64> {
        if self.policy == Policy::Off {
            return None;
        }
        if let Some(next) = self.measured_links(samples) {
            return Some(next);
        }
        if self.cut_since_tick {
            return None;
        }
        let lowest = |queueing: fn(&Sample) -> bool| {
            samples
                .iter()
                .filter(|s| counts(s) && s.delivered_bps > 0 && queueing(s))
                .map(|s| s.delivered_bps)
                .min()
        };
        // A queue past the limit, else one that grows (once per tick each).
        let (delivered, deep) = match lowest(Sample::congested) {
            Some(delivered) => (delivered, true),
            None if self.eased_since_tick => return None,
            None => (lowest(|s| climbing(s) || rising(s) || standing(s))?, false),
        };
        self.calm = 0;
        self.ceiling = Some(delivered);
        self.past_ceiling = 0;
        let bound = |f: f64| {
            ((delivered as f64 * f) as u64)
                .clamp(self.min_bps, self.max_bps)
                .min(self.target_bps)
        };
        let next = if deep {
            self.cut_since_tick = true;
            self.queued_at_cut = samples
                .iter()
                .filter(|s| counts(s) && s.congested())
                .map(|s| s.client_id)
                .collect();
            self.after_drain = Some(bound(BACKOFF));
            bound(DRAIN)
        } else {
            self.eased_since_tick = true;
            // A queue that grows while an earlier one drains: its link delivers less than the
            // rate the drain would return to.
            self.after_drain = self.after_drain.map(|a| a.min(bound(BACKOFF)));
            bound(BACKOFF)
        };
        if next == self.target_bps {
            return None;
        }
        self.target_bps = next;
        Some(next)
    }

    /// A viewer that just came whose page measured its link (`Sample::downlink_bps`, read once
    /// a viewer): a target above `PAGE_SHARE` of that comes down to it before the viewer
    /// counts (`WARMUP`), and that link is the ceiling probes slow down near. Otherwise a
    /// stream far above its link floods it from the first frame, and the cut its queue makes
    /// comes from a second in which little was delivered: a target far below the link, seconds
    /// to climb back. Only down.
    fn measured_links(&mut self, samples: &[Sample]) -> Option<u64> {
        let lowest = samples
            .iter()
            .filter(|s| self.measured.insert(s.client_id))
            .filter_map(|s| s.downlink_bps)
            .min()?;
        let next = ((lowest as f64 * PAGE_SHARE) as u64).clamp(self.min_bps, self.max_bps);
        if next >= self.target_bps {
            return None;
        }
        self.calm = 0;
        // A lower rate at which a viewer queued stays the ceiling.
        let link = (lowest as f64 * PAGE_SHARE / BACKOFF) as u64;
        self.ceiling = Some(self.ceiling.map_or(link, |c| c.min(link)));
        self.past_ceiling = 0;
        self.target_bps = next;
        Some(next)
    }

    /// A congested viewer's estimate: `BACKOFF` times what it was delivered; half the target
    /// when nothing was (the link is far below the stream).
    fn below(&self, delivered: u64) -> u64 {
        if delivered > 0 {
            (delivered as f64 * BACKOFF) as u64
        } else {
            self.target_bps / 2
        }
    }

    /// One tick with every viewer's sample: the new target when it changed.
    pub fn tick(&mut self, samples: &[Sample]) -> Option<u64> {
        let cut_since_tick = std::mem::take(&mut self.cut_since_tick);
        let queued_at_cut = std::mem::take(&mut self.queued_at_cut);
        self.eased_since_tick = false;
        self.since_probe = self.since_probe.saturating_add(1);
        // The lowest congested estimate, and that viewer's delivery rate.
        let mut congested: Option<(u64, u64)> = None;
        // The lowest delivery rate of a viewer whose reports say it loses a little.
        let mut lossy: Option<u64> = None;
        // The lowest delivery rate of a viewer whose queue passed its limit this second (the
        // cut was for it, or it is past it still): its link was sent all it could take,
        // skipping or not.
        let mut busy: Option<u64> = None;
        let mut seen = HashMap::with_capacity(samples.len());
        for s in samples.iter().filter(|s| counts(s)) {
            let mut viewer = self.viewers.remove(&s.client_id).unwrap_or(Viewer {
                dropped: s.dropped,
                delivered: VecDeque::new(),
            });
            if viewer.delivered.len() == SKIP_TICKS {
                viewer.delivered.pop_front();
            }
            viewer.delivered.push_back(s.delivered_bps);
            let skipped = s.dropped > viewer.dropped;
            let queued = s.queued > QUEUE_LIMIT || queued_at_cut.contains(&s.client_id);
            if queued && s.delivered_bps > 0 {
                busy = Some(busy.map_or(s.delivered_bps, |b| b.min(s.delivered_bps)));
            }
            if s.congested() || skipped {
                let delivered = if skipped {
                    viewer.delivered.iter().copied().max().unwrap_or(0)
                } else {
                    s.delivered_bps
                };
                let estimate = self.below(delivered);
                if congested.is_none_or(|(c, _)| estimate < c) {
                    congested = Some((estimate, delivered));
                }
            } else if s.lossy && s.reports && lossy.is_none_or(|l| s.delivered_bps < l) {
                lossy = Some(s.delivered_bps);
            }
            viewer.dropped = s.dropped;
            seen.insert(s.client_id, viewer);
        }
        // Viewers that left are forgotten.
        self.viewers = seen;
        self.measured
            .retain(|id| samples.iter().any(|s| s.client_id == *id));
        if self.policy == Policy::Off {
            return None;
        }
        // A little lost right after a probe (a NACK or a report comes a second or so after
        // the loss): the probe filled the link, and the queue in front of it is full (a report
        // a second shows its round trip late). The target goes below what it delivered, as
        // for congestion. Lost at a steady rate: a lossy link, or a queue its round trip will
        // show (held there, the queue would stay full).
        let congested = match (congested, lossy) {
            (None, Some(delivered))
                if self.since_probe <= LOSSY_AFTER_PROBE && !self.lossy_at_probe =>
            {
                // Once for one probe.
                self.since_probe = u32::MAX;
                Some((self.below(delivered), delivered))
            }
            (congested, _) => congested,
        };
        let lossy = lossy.is_some();
        let next = match congested {
            // `check` cut this second for the same queue; it is still draining. What its link
            // delivered meanwhile bounds where the target goes once it drained, and the ceiling
            // probes slow down near: `check` read the second before the queue passed its limit,
            // which on a link that just narrowed (20 -> 1 Mbit/s) is mostly the wider link's.
            // A viewer that skipped (the hub dropped frames for it) reads as the best of its
            // last seconds, the wider link's too; one whose queue passed its limit this second
            // and that was delivered less than the encoder made was sent all its link could
            // take, and its own second is its link's. (Delivered more, its queue drained and its
            // link had room: its second says less than its link.)
            Some((estimate, delivered)) if cut_since_tick => {
                self.calm = 0;
                let full = |busy: u64| self.stream_bps.is_none_or(|s| busy <= s);
                let (estimate, delivered) = match busy {
                    Some(busy) if busy < delivered && full(busy) => {
                        (self.below(busy).min(estimate), busy)
                    }
                    _ => (estimate, delivered),
                };
                self.after_drain = self.after_drain.map(|a| a.min(estimate));
                if delivered > 0 {
                    self.ceiling = Some(self.ceiling.map_or(delivered, |c| c.min(delivered)));
                }
                return None;
            }
            Some((estimate, delivered)) => {
                self.calm = 0;
                if delivered > 0 {
                    self.ceiling = Some(delivered);
                    self.past_ceiling = 0;
                }
                // Still queueing after a drain: once it drains, no higher than this estimate.
                self.after_drain = self.after_drain.map(|a| a.min(estimate));
                // Only down: a congested viewer's delivery rate above the target says its
                // queue was built before the last cut.
                estimate.min(self.target_bps)
            }
            // The queue `check` found drained: from the drain rate to below the link's.
            None if self.after_drain.is_some() => {
                self.after_drain.take().unwrap_or(self.target_bps)
            }
            None => {
                self.calm += 1;
                if self.calm < CALM_TICKS {
                    return None;
                }
                let target = self.target_bps as f64;
                // What went through the link: the encoder's stream where known (a target the
                // encoder does not use has not been through it).
                let sent = self.stream_bps.map_or(target, |s| s as f64);
                let reports = samples.iter().any(|s| counts(s) && s.reports);
                // What the slowest link carried of it: a stream past the link's rate is not
                // delivered past it (its queue grows, and shows a few hundred ms later). A rate
                // not known (0: a WebRTC peer between reports) says nothing.
                let carried = samples
                    .iter()
                    .filter(|s| counts(s) && s.delivered_bps > 0)
                    .map(|s| s.delivered_bps as f64)
                    .fold(sent, f64::min);
                if self
                    .ceiling
                    .is_some_and(|c| carried > c as f64 * (1.0 + NEAR))
                {
                    self.past_ceiling += 1;
                } else {
                    self.past_ceiling = 0;
                }
                // Receiver reports show a queue a second or two late: past the ceiling for
                // that long before it counts.
                let past = if reports { REPORTS_PAST_TICKS } else { 1 };
                if self.past_ceiling >= past {
                    // Delivered past it with nothing queueing: the link carries more than it
                    // delivered then. The probe starts again from its first step.
                    self.ceiling = None;
                    self.past_ceiling = 0;
                    self.calm = CALM_TICKS;
                }
                let probes = self.calm - CALM_TICKS;
                let max_step = if reports {
                    REPORTS_MAX_STEP
                } else {
                    PROBE_MAX_STEP
                };
                let mut step = (PROBE_FIRST_STEP * 2f64.powi(probes.min(8) as i32)).min(max_step);
                // An encoder that makes a small share of the rate of the last queue is far
                // from that link, whatever its target.
                let far_below = self.ceiling.is_some_and(|c| sent < c as f64 * FAR_BELOW);
                if let Some(ceiling) = self.ceiling.map(|c| c as f64) {
                    if target * (1.0 + step) > ceiling * (1.0 - NEAR) && !far_below {
                        step = NEAR_STEP;
                    }
                }
                let probe = target * (1.0 + step);
                // Far below it, what every viewer's link was measured to carry (its large
                // frames): a target under that is not far above any link, whatever the encoder
                // made. (Nearer, a token bucket's burst reads high, and the probe would pass its
                // link by more than a step.)
                let measured = match lowest_capacity(samples) {
                    Some(c) if far_below => c as f64 * BACKOFF,
                    _ => 0.0,
                };
                let limit = self
                    .stream_bps
                    .map(|s| (s as f64 * APP_LIMITED).max(measured));
                let probe = match limit {
                    // Application-limited: held where it is (never lowered for it).
                    Some(limit) if probe > limit => limit.max(target) as u64,
                    _ => probe as u64,
                };
                if probe > self.target_bps {
                    self.since_probe = 0;
                    self.lossy_at_probe = lossy;
                }
                probe
            }
        }
        .clamp(self.min_bps, self.max_bps);
        let change = (next as f64 - self.target_bps as f64).abs() / self.target_bps.max(1) as f64;
        if next == self.target_bps || (change < MIN_CHANGE && next != self.max_bps) {
            return None;
        }
        self.target_bps = next;
        Some(next)
    }
}

/// Whether the controller reads this viewer: it acknowledges frames, and has for `WARMUP`.
fn counts(s: &Sample) -> bool {
    s.acking_for.is_some_and(|d| d >= WARMUP)
}

/// The lowest of what the counted viewers' links were measured to carry; None when one of them
/// has no measure yet, or none counts.
fn lowest_capacity(samples: &[Sample]) -> Option<u64> {
    samples
        .iter()
        .filter(|s| counts(s))
        .map(|s| s.capacity_bps)
        .collect::<Option<Vec<u64>>>()?
        .into_iter()
        .min()
}

/// Whether the viewer's frames queue more and more: the quickest of each `FLOOR_WINDOW` slower
/// than the one before by `STEP`, by `RISE` in all, and `STANDING` above its quickest of the
/// last seconds.
fn rising(s: &Sample) -> bool {
    let ([Some(a), Some(b), Some(c)], Some(floor)) = (s.floors, s.floor) else {
        return false;
    };
    b >= a + STEP && c >= b + STEP && c >= a + RISE && c >= floor + STANDING
}

/// Whether the viewer's frames queue more with each frame, fast: of its last `CLIMB_FRAMES`
/// acknowledged, the quickest of the newer half `STEP` above the slowest of the older half, the
/// newer half `CLIMB` slower on average, the newest no quicker than the two before it, and
/// `STANDING` above its quickest of the last seconds. `rising` sees the same queue a few hundred
/// milliseconds later (three windows' quickest frames), when it is 150-250 ms deep. A keyframe's
/// burst does not read so: the frames behind it are quicker each than the one before (the newest
/// is not the slowest), and the frames before it were not slowed.
fn climbing(s: &Sample) -> bool {
    let (Some(recent), Some(floor)) = (s.recent, s.floor) else {
        return false;
    };
    let (older, newer) = recent.split_at(CLIMB_FRAMES / 2);
    let slowest_older = older.iter().max().copied().unwrap_or_default();
    let quickest_newer = newer.iter().min().copied().unwrap_or_default();
    let mean = |frames: &[Duration]| frames.iter().sum::<Duration>() / frames.len() as u32;
    let newest = recent[CLIMB_FRAMES - 1];
    quickest_newer >= slowest_older + STEP
        && mean(newer) >= mean(older) + CLIMB
        && newest >= recent[CLIMB_FRAMES - 2].max(recent[CLIMB_FRAMES - 3])
        && newest >= floor + STANDING
}

/// Whether the viewer's frames queue and the queue does not drain: the quickest of each
/// `FLOOR_WINDOW` at least `STANDING_QUEUE` above its quickest of the last seconds, and the
/// newest no quicker than the oldest by `STEP`. A stream at its link's rate: nothing drains what a
/// keyframe or a larger frame queued, and the next keyframe stacks on it (a keyframe's burst on
/// a link with room drains, each window quicker than the one before). Not from receiver reports
/// (`Sample::reports`): their windows are one round trip each, not the quickest of several, and
/// a jittery link's would read as standing.
fn standing(s: &Sample) -> bool {
    let ([Some(a), Some(b), Some(c)], Some(floor)) = (s.floors, s.floor) else {
        return false;
    };
    !s.reports && a.min(b).min(c) >= floor + STANDING_QUEUE && c + STEP >= a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: u64, delivered_kbps: u64, queued_ms: u64) -> Sample {
        Sample {
            client_id: id,
            acking_for: Some(WARMUP),
            delivered_bps: delivered_kbps * 1000,
            queued: Duration::from_millis(queued_ms),
            dropped: 0,
            capacity_bps: None,
            ..Default::default()
        }
    }

    #[test]
    fn a_congested_viewer_brings_the_target_below_what_it_was_delivered() {
        let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
        assert_eq!(
            c.tick(&[sample(1, 1150, 10)]),
            None,
            "a free link changes nothing"
        );
        assert_eq!(c.tick(&[sample(1, 700, 300)]), Some(595_000));
        // Still queued (what was sent before the cut): never up while congested.
        assert_eq!(c.tick(&[sample(1, 700, 200)]), None);
        assert_eq!(c.target(), 595_000);
    }

    #[test]
    fn a_viewer_whose_page_measured_a_slow_link_brings_the_target_down_as_it_comes() {
        let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
        let measured = |id: u64, kbps: u64| Sample {
            client_id: id,
            acking_for: None,
            downlink_bps: Some(kbps * 1000),
            ..Default::default()
        };
        // A fast link's measure changes nothing; a slow one's brings it down before its acks
        // count, once.
        assert_eq!(c.check(&[measured(1, 20_000)]), None);
        assert_eq!(
            c.check(&[measured(1, 20_000), measured(2, 900)]),
            Some(650_249)
        );
        assert_eq!(c.check(&[measured(1, 20_000), measured(2, 900)]), None);
        // Probes slow down near that link (5 % steps from 0.95 of its 765), as near a congested
        // viewer's rate.
        let calm = [sample(1, 500, 10), sample(2, 500, 10)];
        c.tick(&calm);
        assert_eq!(c.tick(&calm), Some((650_249.0 * 1.10) as u64));
        assert_eq!(c.tick(&calm), Some((715_273.0 * 1.05) as u64));
        // Only down: a later, faster measure does not raise it; below min-bitrate it stops there.
        assert_eq!(c.check(&[measured(3, 5_000)]), None);
        assert_eq!(c.check(&[measured(4, 50)]), Some(100_000));
        // Off: nothing.
        let mut off = RateController::new(Policy::Off, 100_000, 2_000_000);
        assert_eq!(off.check(&[measured(1, 900)]), None);
        assert_eq!(off.target(), 2_000_000);
    }

    #[test]
    fn an_encoder_starved_below_its_target_is_probed_up_to_what_the_link_was_measured_to_carry() {
        // A page measured 190 kbit/s: the target comes down to 150 (min), the ceiling 161. The
        // encoder then makes a tenth of its target (x264enc's VBV is too small for the picture).
        let run = |capacity_bps: Option<u64>| {
            let mut c = RateController::new(Policy::Slowest, 150_000, 2_048_000);
            let page = Sample {
                client_id: 1,
                downlink_bps: Some(190_000),
                ..Default::default()
            };
            assert_eq!(c.check(&[page]), Some(150_000));
            c.set_stream_rate(20_000);
            let calm = Sample {
                capacity_bps,
                ..sample(1, 20, 10)
            };
            (0..8)
                .map(|_| c.tick(&[calm]).unwrap_or(c.target()))
                .collect::<Vec<_>>()
        };
        // Its large frames measured a free link: by the usual steps (not 5 %: a stream at an
        // eighth of the ceiling is not near it).
        let free = run(Some(20_000_000));
        assert_eq!(
            free,
            [150_000, 165_000, 198_000, 247_500, 309_375, 386_718, 483_397, 604_246],
            "{free:?}"
        );
        // Its link measured at 400 kbit/s: no higher than 0.85 of that.
        let slow = run(Some(400_000));
        assert_eq!(*slow.last().unwrap(), 340_000, "{slow:?}");
        // Nothing measured: held at 1.5 times what it made, as before.
        assert_eq!(run(None), [150_000; 8]);
    }

    #[test]
    fn a_probe_goes_no_higher_than_half_again_what_the_encoder_made() {
        let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
        c.tick(&[sample(1, 600, 300)]);
        assert_eq!(c.target(), 510_000);
        // The encoder makes 400 kbit/s of its 510: calm, but the probe stops at 600.
        c.set_stream_rate(400_000);
        c.tick(&[sample(1, 400, 20)]);
        assert_eq!(c.tick(&[sample(1, 400, 20)]), Some(561_000), "10 %");
        assert_eq!(c.tick(&[sample(1, 400, 20)]), Some(589_050), "5 % near 600");
        for _ in 0..8 {
            c.tick(&[sample(1, 400, 20)]);
            assert!(
                c.target() <= 600_000,
                "held under 1.5 x 400: {}",
                c.target()
            );
        }
        let held = c.target();
        // Below 1.5 x what it makes: held, never lowered for it.
        c.set_stream_rate(100_000);
        assert_eq!(c.tick(&[sample(1, 100, 20)]), None);
        assert_eq!(c.target(), held);
        // The encoder uses its target again: the probe goes on, by 5 % while what it makes has
        // not passed the rate at which the link queued (600).
        c.set_stream_rate(590_000);
        assert!(c.tick(&[sample(1, 590, 20)]).is_some_and(|t| t > held));
        let t = c.target();
        c.set_stream_rate(620_000);
        assert_eq!(
            c.tick(&[sample(1, 620, 20)]),
            Some((t as f64 * 1.05) as u64)
        );
        // Delivered 5 % past it: forgotten, 10 % steps again.
        c.set_stream_rate(640_000);
        let t = c.target();
        assert_eq!(
            c.tick(&[sample(1, 640, 20)]),
            Some((t as f64 * 1.10) as u64)
        );
    }

    #[test]
    fn the_slowest_viewer_sets_the_target_and_the_others_do_not_raise_it() {
        let mut c = RateController::new(Policy::Slowest, 100_000, 4_000_000);
        let t = c.tick(&[
            sample(1, 4000, 5),
            sample(2, 600, 400),
            sample(3, 1500, 150),
        ]);
        assert_eq!(t, Some(510_000));
    }

    #[test]
    fn a_peer_that_loses_a_little_right_after_a_probe_is_cut_once() {
        let peer = |delivered_kbps, lossy| Sample {
            reports: true,
            lossy,
            ..sample(1, delivered_kbps, 0)
        };
        let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
        c.tick(&[peer(1000, false)]);
        c.tick(&[sample(1, 1000, 500)]);
        assert_eq!(c.target(), 850_000);
        // Calm ticks: the probe goes up by 10 % a tick.
        for _ in 0..3 {
            c.tick(&[peer(850, false)]);
        }
        let probed = c.target();
        assert!(probed > 850_000, "{probed}");
        // Its next report says it lost 2-10 %: the probe filled its link.
        assert_eq!(c.tick(&[peer(900, true)]), Some(765_000));
        // Lossy on a steady rate (no probe since): not cut again, and a link that lost as
        // much before a probe (a lossy link, not a full one) does not stop it.
        assert_eq!(c.tick(&[peer(800, true)]), None);
        for _ in 0..6 {
            c.tick(&[peer(800, true)]);
        }
        assert!(c.target() > 850_000, "{}", c.target());
        // A viewer with acks that says nothing of losses is not read so.
        let mut a = RateController::new(Policy::Slowest, 100_000, 2_000_000);
        a.tick(&[sample(1, 1000, 500)]);
        for _ in 0..3 {
            a.tick(&[sample(1, 850, 0)]);
        }
        let before = a.target();
        a.tick(&[Sample {
            lossy: true,
            ..sample(1, 900, 0)
        }]);
        assert!(a.target() >= before);
    }

    #[test]
    fn with_a_webrtc_peer_counted_the_probe_steps_by_ten_percent_at_most() {
        let step = |reports: bool| {
            let mut c = RateController::new(Policy::Slowest, 100_000, 10_000_000);
            let s = |delivered_kbps, queued_ms| Sample {
                reports,
                ..sample(1, delivered_kbps, queued_ms)
            };
            c.tick(&[s(1000, 500)]);
            let mut targets = vec![c.target()];
            // The link freed: delivered as sent.
            for _ in 0..12 {
                c.tick(&[s(c.target() / 1000, 20)]);
                targets.push(c.target());
            }
            let steps: Vec<f64> = targets
                .windows(2)
                .map(|w| w[1] as f64 / w[0] as f64)
                .collect();
            steps.into_iter().fold(1.0, f64::max)
        };
        assert!((step(false) - 1.25).abs() < 1e-6, "acks: up to 25 %");
        assert!((step(true) - 1.10).abs() < 1e-6, "receiver reports: 10 %");
    }

    #[test]
    fn with_a_webrtc_peer_counted_the_ceiling_holds_three_ticks_past_it() {
        // The stream the encoder makes follows the target; the link queued at 600 kbit/s.
        let climb = |reports: bool| {
            let mut c = RateController::new(Policy::Slowest, 100_000, 10_000_000);
            let s = |delivered_kbps, queued_ms| Sample {
                reports,
                ..sample(1, delivered_kbps, queued_ms)
            };
            c.tick(&[s(600, 500)]);
            let mut steps = Vec::new();
            for _ in 0..12 {
                let before = c.target();
                c.set_stream_rate(before);
                c.tick(&[s(before / 1000, 20)]);
                steps.push(((c.target() as f64 / before as f64 - 1.0) * 100.0).round() as u32);
            }
            steps
        };
        // Acks: 5 % steps near the ceiling, forgotten one tick past it, then 10, 20, 25 %.
        let acks = climb(false);
        assert!(acks.windows(3).any(|w| w == [10, 20, 25]), "{acks:?}");
        // Reports: 5 % steps until three ticks past it, then 10 % at most.
        let reports = climb(true);
        let near = |steps: &[u32]| steps.iter().filter(|&&s| s == 5).count();
        assert_eq!(
            near(&reports),
            near(&acks) + 2,
            "acks {acks:?}, reports {reports:?}"
        );
        assert!(reports.iter().all(|&s| s <= 10), "{reports:?}");
    }

    #[test]
    fn probes_upward_after_calm_ticks_up_to_max() {
        let mut c = RateController::new(Policy::Slowest, 100_000, 1_000_000);
        c.tick(&[sample(1, 500, 500)]);
        assert_eq!(c.target(), 425_000);
        assert_eq!(
            c.tick(&[sample(1, 420, 20)]),
            None,
            "one calm tick is not enough"
        );
        assert_eq!(c.tick(&[sample(1, 420, 20)]), Some(467_500), "10 %");
        // Near the rate the link carried when it congested (500): 5 % steps.
        assert_eq!(c.tick(&[sample(1, 460, 20)]), Some(490_875));
        let mut last = c.target();
        let mut steps = Vec::new();
        while last < 1_000_000 && steps.len() < 10 {
            let t = c
                .tick(&[sample(1, last / 1000, 20)])
                .expect("a probe each calm tick");
            steps.push(t as f64 / last as f64);
            last = t;
        }
        assert_eq!(c.target(), 1_000_000, "back to the encoder's own rate");
        // 5 % steps up to 5 % past 500, then the probe starts again at 10 %, 20 %, 25 %...
        let near = steps
            .iter()
            .take_while(|s| (*s - 1.05).abs() < 0.001)
            .count();
        assert_eq!(near, 2, "{steps:?}");
        assert!((steps[near] - 1.10).abs() < 0.001, "{steps:?}");
        assert!((steps[near + 1] - 1.20).abs() < 0.001, "{steps:?}");
        assert!(steps.len() <= near + 5, "{steps:?}");
    }

    #[test]
    fn a_stream_past_the_ceiling_that_its_link_does_not_deliver_keeps_the_near_step() {
        // The link queued at 700 kbit/s and carries 720: the stream climbs past it, its queue
        // not yet past the limit. Delivered at 720, the climb stays at 5 % steps; delivered as
        // made (the link freed), the probe starts again at 10 %, 20 %, 25 %.
        let climb = |link_kbps: u64| {
            let mut c = RateController::new(Policy::Slowest, 100_000, 10_000_000);
            c.tick(&[sample(1, 700, 500)]);
            let mut steps = Vec::new();
            for _ in 0..10 {
                let before = c.target();
                c.set_stream_rate(before);
                c.tick(&[sample(1, (before / 1000).min(link_kbps), 20)]);
                steps.push(((c.target() as f64 / before as f64 - 1.0) * 100.0).round() as u32);
            }
            steps
        };
        let narrow = climb(720);
        assert!(
            narrow.iter().skip_while(|&&s| s != 5).all(|&s| s == 5),
            "{narrow:?}"
        );
        assert!(narrow.contains(&5), "{narrow:?}");
        let freed = climb(u64::MAX);
        assert!(freed.windows(3).any(|w| w == [10, 20, 25]), "{freed:?}");
    }

    #[test]
    fn a_freed_link_is_back_at_full_quality_within_ten_seconds() {
        // The step: 2 Mbit/s encoder, the link down to 1 Mbit/s and freed again.
        let mut c = RateController::new(Policy::Slowest, 150_000, 2_048_000);
        c.tick(&[sample(1, 1000, 500)]);
        assert_eq!(c.target(), 850_000);
        let mut seconds = 0;
        while c.target() < 2_048_000 {
            seconds += 1;
            c.tick(&[sample(1, c.target() / 1000, 10)]);
            assert!(seconds < 30);
        }
        assert!(seconds <= 10, "{seconds} s from 1 to 2 Mbit/s");
        // From 1 to 20 Mbit/s: a 25 % step a second once past the old link's rate.
        let mut c = RateController::new(Policy::Slowest, 150_000, 20_000_000);
        c.tick(&[sample(1, 1000, 500)]);
        let mut seconds = 0;
        while c.target() < 20_000_000 {
            seconds += 1;
            c.tick(&[sample(1, c.target() / 1000, 10)]);
            assert!(seconds < 30);
        }
        assert!(seconds <= 20, "{seconds} s from 1 to 20 Mbit/s");
    }

    #[test]
    fn a_queue_between_ticks_is_cut_at_once_and_once() {
        let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
        assert_eq!(c.check(&[sample(1, 900, 60)]), None, "under the limit");
        assert_eq!(c.check(&[sample(1, 700, 130)]), Some(420_000), "drain");
        assert_eq!(
            c.check(&[sample(1, 600, 300)]),
            None,
            "the queue drains after the cut: no second cut before the tick"
        );
        assert_eq!(
            c.tick(&[sample(1, 650, 200)]),
            None,
            "nor at the tick of the same second"
        );
        assert_eq!(c.target(), 420_000);
        // Drained: below the link's rate (the lower of the two seconds'), then probing after
        // calm ticks.
        assert_eq!(c.tick(&[sample(1, 420, 20)]), Some(552_500));
        assert_eq!(c.tick(&[sample(1, 550, 20)]), None);
        assert_eq!(c.tick(&[sample(1, 550, 20)]), Some(607_750), "10 %");
        // It queues again at a tick (no check saw it): the tick cuts, from what it was delivered.
        assert_eq!(c.tick(&[sample(1, 600, 200)]), Some(510_000));
        let mut off = RateController::new(Policy::Off, 100_000, 2_000_000);
        assert_eq!(off.check(&[sample(1, 700, 900)]), None);
    }

    fn floors(mut s: Sample, floors_ms: [u64; 3], floor_ms: u64) -> Sample {
        s.floors = floors_ms.map(|ms| Some(Duration::from_millis(ms)));
        s.floor = Some(Duration::from_millis(floor_ms));
        s
    }

    #[test]
    fn a_queue_that_grows_is_eased_before_it_is_deep() {
        let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
        // A free link: every frame about as quick as the quickest.
        assert_eq!(c.check(&[floors(sample(1, 900, 12), [8, 9, 8], 7)]), None);
        // A keyframe's burst: the frames behind it quicker and quicker.
        assert_eq!(
            c.check(&[floors(sample(1, 900, 60), [60, 40, 20], 7)]),
            None
        );
        // A stall of one window (the viewer's machine was busy): passes, not a queue.
        assert_eq!(c.check(&[floors(sample(1, 900, 40), [1, 1, 34], 1)]), None);
        // Grows, but not yet standing above the quickest.
        assert_eq!(
            c.check(&[floors(sample(1, 900, 30), [10, 18, 28], 7)]),
            None
        );
        // Grows and stands: eased to 0.85 of what it was delivered, once this tick.
        assert_eq!(
            c.check(&[floors(sample(1, 700, 50), [12, 22, 41], 7)]),
            Some(595_000)
        );
        assert_eq!(
            c.check(&[floors(sample(1, 650, 70), [22, 41, 60], 7)]),
            None
        );
        // It grows on past the limit all the same (the link narrowed): the hard cut.
        assert_eq!(
            c.check(&[floors(sample(1, 600, 130), [41, 60, 90], 7)]),
            Some(360_000)
        );
        // After the tick, a probe waits for calm ticks again, and goes by 5 % near 700.
        c.tick(&[sample(1, 360, 20)]);
        assert_eq!(c.target(), 510_000);
        assert_eq!(c.tick(&[sample(1, 500, 20)]), None);
        let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
        assert_eq!(
            c.check(&[floors(sample(1, 700, 50), [12, 22, 41], 7)]),
            Some(595_000)
        );
        assert_eq!(
            c.tick(&[sample(1, 590, 20)]),
            None,
            "not calm for two ticks"
        );
        assert_eq!(c.tick(&[sample(1, 590, 20)]), Some(654_500), "10 %");
        assert_eq!(c.tick(&[sample(1, 650, 20)]), Some(687_225), "5 % near 700");
        // A viewer without acks, or the policy off, eases nothing.
        let mut webrtc = floors(sample(2, 700, 50), [12, 22, 41], 7);
        webrtc.acking_for = None;
        assert_eq!(c.check(&[webrtc]), None);
        let mut off = RateController::new(Policy::Off, 100_000, 2_000_000);
        assert_eq!(
            off.check(&[floors(sample(1, 700, 50), [12, 22, 41], 7)]),
            None
        );
    }

    #[test]
    fn a_queue_that_stands_without_draining_is_eased() {
        // Each a fresh controller: easing is once a tick.
        let eased = |floors_ms: [u64; 3]| {
            let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
            c.check(&[floors(sample(1, 700, 60), floors_ms, 12)])
        };
        // A stream at its link's rate (bench, 700 kbit/s): a larger frame queued 35-40 ms and
        // nothing drains it. Eased to 0.85 of what it was delivered, before a keyframe stacks
        // on it.
        assert_eq!(eased([49, 48, 50]), Some(595_000));
        assert_eq!(
            eased([60, 58, 57]),
            Some(595_000),
            "draining too slowly to count"
        );
        // A keyframe's burst on a link with room drains, each window quicker.
        assert_eq!(eased([86, 58, 30]), None);
        assert_eq!(eased([60, 50, 40]), None);
        // A window with a quick frame: the queue is not standing.
        assert_eq!(eased([49, 30, 50]), None);
        // A few milliseconds above the quickest: the decoder's jitter, not a queue.
        assert_eq!(eased([28, 30, 29]), None);
        // Three receiver reports' round trips: one each, a jittery link's read so.
        let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
        let mut reports = floors(sample(1, 700, 60), [49, 48, 50], 12);
        reports.reports = true;
        assert_eq!(c.check(&[reports]), None);
    }

    #[test]
    fn a_queue_that_grows_frame_by_frame_is_eased_before_its_windows_show_it() {
        // Each a fresh controller (easing is once a tick); the windows' quickest frames say
        // nothing yet (a queue that started within the newest window), the viewer's quickest
        // of the last seconds 14 ms.
        let eased = |recent_ms: [u64; CLIMB_FRAMES]| {
            let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
            let mut s = floors(sample(1, 700, 60), [14, 15, 14], 14);
            s.recent = Some(recent_ms.map(Duration::from_millis));
            c.check(&[s])
        };
        // The bench's frames on a 700 kbit/s link as the stream passed it (1.3x): 41, 44, 58,
        // 74, 70, 91 ms, 600 ms before the queue passed `QUEUE_LIMIT` and the frames behind
        // reached 225-256 ms. Eased to 0.85 of what it was delivered.
        assert_eq!(eased([41, 44, 58, 74, 70, 91]), Some(595_000));
        // A frame before it quicker than the one before: read at the next.
        assert_eq!(eased([42, 41, 44, 58, 74, 70]), None);
        // A keyframe's burst, read at each frame: it came last; the frames behind it drain,
        // quicker each; a frame that waited behind it among quick ones.
        assert_eq!(eased([14, 14, 14, 14, 15, 60]), None);
        assert_eq!(eased([14, 14, 14, 60, 50, 40]), None);
        assert_eq!(eased([14, 14, 60, 50, 40, 30]), None);
        assert_eq!(eased([14, 15, 14, 60, 14, 16]), None);
        // Slower, by little: the decoder's jitter, or a stream a few percent past its link
        // (`rising` and `standing` read those over three windows).
        assert_eq!(eased([14, 16, 15, 18, 20, 22]), None);
        assert_eq!(eased([30, 32, 34, 36, 38, 40]), None);
        // Six frames not all acknowledged within `CLIMB_SPAN`: nothing read.
        let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
        assert_eq!(
            c.check(&[floors(sample(1, 700, 60), [14, 15, 14], 14)]),
            None
        );
    }

    #[test]
    fn a_queue_that_outlasts_its_drain_is_not_raised_past_the_later_estimate() {
        let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
        assert_eq!(c.check(&[sample(1, 700, 130)]), Some(420_000));
        assert_eq!(c.tick(&[sample(1, 650, 200)]), None);
        // A second later it still queues, and its link delivered less: the drain holds...
        assert_eq!(c.tick(&[sample(1, 560, 200)]), None);
        // ...and once drained, the target goes to 0.85 of the later rate, not of the first.
        assert_eq!(c.tick(&[sample(1, 420, 20)]), Some(476_000));
    }

    #[test]
    fn a_link_that_narrowed_is_not_raised_past_it_after_the_drain() {
        // 20 -> 1 Mbit/s: the queue passes its limit within a fraction of a second, and the
        // second `check` reads was mostly the wider link's.
        let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
        assert_eq!(c.check(&[sample(1, 1600, 130)]), Some(960_000));
        // The tick in the same second: still draining, at the narrow link's rate.
        assert_eq!(c.tick(&[sample(1, 1000, 300)]), None);
        // Drained: below that link (850), not 0.85 of the wider second (1360).
        assert_eq!(c.tick(&[sample(1, 960, 20)]), Some(850_000));
        // And the probe slows down near that link, not near the wider one: 10 %, then 5 %.
        assert_eq!(c.tick(&[sample(1, 850, 20)]), None);
        assert_eq!(c.tick(&[sample(1, 850, 20)]), Some(935_000));
        assert_eq!(
            c.tick(&[sample(1, 935, 20)]),
            Some(981_750),
            "not 20 % (1122)"
        );

        // A tick that reads the wider link still (the second right after the step), then a
        // queue that grows while it drains: the drain goes no higher than that queue's ease.
        let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
        assert_eq!(c.check(&[sample(1, 1600, 130)]), Some(960_000));
        assert_eq!(c.tick(&[sample(1, 1700, 300)]), None);
        let growing = floors(sample(1, 900, 60), [20, 30, 50], 10);
        assert_eq!(c.check(&[growing]), Some(765_000));
        assert_eq!(c.tick(&[sample(1, 760, 20)]), None, "not back to 1360");
        assert_eq!(c.target(), 765_000);

        // The hub dropped frames for it in that second (a WebSocket viewer skips to a
        // keyframe): the best of its last seconds is the wider link's, but the cut was for its
        // queue, so its own second is the narrow link's, whether its queue drained by the tick
        // or not. Another viewer that skipped without queueing reads as before.
        for queued_ms in [20, 300] {
            let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
            assert_eq!(c.tick(&[sample(1, 1600, 20), sample(2, 1800, 20)]), None);
            assert_eq!(
                c.check(&[sample(1, 1600, 130), sample(2, 1800, 20)]),
                Some(960_000)
            );
            let mut skipped = [sample(1, 1000, queued_ms), sample(2, 600, 20)];
            skipped[0].dropped = 3;
            skipped[1].dropped = 3;
            assert_eq!(c.tick(&skipped), None);
            let mut drained = [sample(1, 960, 20), sample(2, 960, 20)];
            drained[0].dropped = 3;
            drained[1].dropped = 3;
            assert_eq!(
                c.tick(&drained),
                Some(850_000),
                "not 0.85 of 1600 (1360), nor of 600 (510)"
            );
        }
        // Delivered more than the encoder made that second (a second cut, far below its link,
        // drained its queue early in the second): its second is not its link's.
        let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
        assert_eq!(c.tick(&[sample(1, 1600, 20)]), None);
        assert_eq!(c.check(&[sample(1, 1600, 130)]), Some(960_000));
        let mut skipped = sample(1, 700, 20);
        skipped.dropped = 3;
        c.set_stream_rate(500_000);
        assert_eq!(c.tick(&[skipped]), None);
        let mut drained = sample(1, 600, 20);
        drained.dropped = 3;
        assert_eq!(c.tick(&[drained]), Some(1_360_000), "not 0.85 of 700 (595)");
    }

    #[test]
    fn a_second_of_skipping_does_not_read_as_a_slower_link() {
        let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
        assert_eq!(c.tick(&[sample(1, 700, 300)]), Some(595_000));
        // Skipping to a keyframe: little delivered this second, the link is what it was.
        let mut s = sample(1, 100, 300);
        s.dropped = 3;
        assert_eq!(c.tick(&[s]), None);
        s.dropped = 6;
        s.delivered_bps = 50_000;
        assert_eq!(c.tick(&[s]), None, "nor two");
        assert_eq!(c.target(), 595_000);
    }

    #[test]
    fn drops_count_as_congestion_and_silence_halves() {
        let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
        let mut s = sample(1, 0, 0);
        c.tick(&[s]);
        s.dropped = 5;
        assert_eq!(
            c.tick(&[s]),
            Some(1_000_000),
            "dropped frames, nothing delivered: half"
        );
    }

    #[test]
    fn bounded_by_min_and_viewers_without_acks_or_policy_off_change_nothing() {
        let mut c = RateController::new(Policy::Slowest, 300_000, 2_000_000);
        assert_eq!(
            c.tick(&[sample(1, 50, 900)]),
            Some(300_000),
            "a lying viewer only reaches min"
        );
        let mut webrtc = sample(2, 10, 900);
        webrtc.acking_for = None;
        let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
        assert_eq!(c.tick(&[webrtc]), None);
        let mut off = RateController::new(Policy::Off, 100_000, 2_000_000);
        assert_eq!(off.tick(&[sample(1, 500, 900)]), None);
        assert_eq!(off.target(), 2_000_000);
    }

    #[test]
    fn a_viewer_counts_once_it_has_acknowledged_for_the_warmup() {
        // A viewer that just joined: a part-second's delivery and a decoder that starts slowly
        // look like a deep queue on a slow link.
        let mut joining = floors(sample(1, 300, 150), [5, 30, 60], 5);
        joining.acking_for = Some(WARMUP - Duration::from_millis(100));
        let mut c = RateController::new(Policy::Slowest, 100_000, 2_000_000);
        assert_eq!(c.check(&[joining]), None);
        assert_eq!(c.tick(&[joining]), None);
        assert_eq!(c.target(), 2_000_000);
        // The same once it has acknowledged for the warmup: cut at once.
        joining.acking_for = Some(WARMUP);
        assert_eq!(c.check(&[joining]), Some(180_000));
    }
}
