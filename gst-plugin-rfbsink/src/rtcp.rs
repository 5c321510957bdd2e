// SPDX-License-Identifier: MPL-2.0

//! A WebRTC peer's link, from its RTCP receiver reports (docs/protocol.md, "Rate control"): a
//! peer sends no acks, but every WebRTC receiver reports what it got, and webrtcbin's statistics
//! hold its last report. Pure: peer.rs reads the statistics every `webrtc::peer` poll, the hub
//! makes the peer's rate sample from this (rate.rs, ladder.rs), as it does from a viewer's acks.
//!
//! Over the last `WINDOW` of reports (and the one before, from which it is measured: a peer
//! that reports less often than that is measured over its last two):
//! - **Delivered**: the packets the peer received (the highest sequence number it reported, less
//!   those it reported lost), times the mean size of the packets sent meanwhile, per second.
//! - **Lost**: the share of the packets it expected that it reported lost. A link slower than the
//!   stream drops what its queue cannot hold (a token bucket, a router's buffer): past
//!   `LOSS_LIMIT` (Google Congestion Control's bound for a decrease) it is congested.
//! - **Queued**: the round trip (our sender report to its receiver report) above its quickest of
//!   the last `RTT_WINDOW`: the sender reports wait in the same queue as the media.
//! - **Asked again**: the packets its NACKs asked for over the last `WINDOW` (each NACK's
//!   FCIs, read from rtpsession's `on-feedback-rtcp`: webrtcbin's `nack-count` counts NACK
//!   messages, and one message asks for up to 17 packets per FCI), a share of the packets sent
//!   meanwhile. Past `LOSS_LIMIT` it is congested, whatever its reports say: GStreamer's
//!   rtpsession (webrtcbin, whepclientsrc) sends no regular receiver report while it keeps
//!   sending NACKs, so on a link slower than the stream its last report stays the one from
//!   before the link filled (seen in 3 of 7 runs of tests/e2e/webrtc-links.test.mjs; the
//!   encoder then kept its rate, and the peer decoded 1-11 frames a second).
//!
//! Where the peer also sends transport-wide congestion control feedback (TWCC: browsers do; the
//! element asks for it when the offer has it), rtpsession sums it up about ten times a second
//! (`twcc`): what was sent and what arrived over its last window, and the share lost. Then the
//! delivery rate is what arrived, and the link is congested as soon as it receives 5 % less
//! than was sent (`OVERUSE`; webrtcsink's own controller reads 10 %) or loses more than
//! `LOSS_LIMIT`: a queue shows within a tenth of a second, not a report's second or two, and
//! the round trips and the reports' losses are not read (they would still say a queue of
//! before a cut, and the rate control would cut again for it).
//!
//! After the peer moves to another rendition (`reset`), what was measured of the old stream is
//! forgotten: its losses and its round trip say nothing of the new stream's (until the next
//! sender report, the round trip read is the old one).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The reports an estimate covers.
const WINDOW: Duration = Duration::from_secs(2);
/// The share of packets lost past which the link is congested.
pub(crate) const LOSS_LIMIT: f64 = 0.10;
/// The share of packets lost past which a link may be full (Google Congestion Control holds
/// its rate between this and `LOSS_LIMIT`).
const HOLD_LOSS: f64 = 0.02;
/// The quickest round trip is the quickest of this long.
const RTT_WINDOW: Duration = Duration::from_secs(30);
/// An estimate of delivery needs reports this far apart at least.
const MIN_SPAN: Duration = Duration::from_millis(400);
/// Reports older than this tell nothing of the link now. Browsers report about every second;
/// GStreamer's webrtcbin (a WHEP client such as whepclientsrc) every 2.5-7.5 s, RTCP's default:
/// its window is then its last two reports.
const STALE: Duration = Duration::from_secs(8);

/// A peer whose TWCC feedback says it received this much less than was sent (a share of what
/// was sent) is congested: its link's queue grows. At 10 % a stream 5-10 % past the link
/// filled its queue unseen until the round trip showed it (`make bench`, 700 kbit/s: p99
/// 143-181 ms; at 5 %, 78-121 ms). On a free link sent and received differ by under 1 %.
const OVERUSE: f64 = 0.05;
/// NACKs come this long after the loss they ask about, at most (the queue it was lost behind
/// and the round trip): after a cut, they count from a reading this long after it.
const NACK_LAG: Duration = Duration::from_millis(500);
/// Too few packets sent over the window to read a share of NACKs from.
const MIN_NACK_PACKETS: u64 = 50;
/// A TWCC reading older than this is none.
const TWCC_FRESH: Duration = Duration::from_secs(1);

/// rtpsession's summary of the peer's last TWCC feedback (its `twcc-stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Twcc {
    pub sent_bps: u64,
    pub received_bps: u64,
    /// The share of the packets lost, 0 to 1.
    pub lost: f64,
}

/// What webrtcbin's statistics say of the peer's video: its last receiver report, and what was
/// sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Report {
    /// The extended highest sequence number it received.
    pub highest_seq: u64,
    /// Packets it lost in all (cumulative; may fall with duplicates, as RTP allows).
    pub lost: i64,
    /// Our last sender report to its receiver report that echoed it.
    pub rtt: Duration,
    /// What was sent to it in all.
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// The packets it asked for again so far, by its NACKs (a total; each packet once, as
    /// peer.rs counts them, or webrtcbin's count of NACK messages where it cannot).
    pub nacks: u64,
    /// When it sent the report, by our clock: the sender report it echoes (its LSR, the middle
    /// 32 bits of that report's NTP time) plus how long it held it (its DLSR), in 1/65536 s
    /// (wrapping); 0 when not known (no sender report reached it yet).
    pub sent_ntp: u32,
}

/// One reading of what was sent to the peer, and of what it asked for again.
#[derive(Clone, Copy, Debug)]
struct Sent {
    at: Instant,
    packets: u64,
    nacked: u64,
}

impl Report {
    /// The same receiver report read again (webrtcbin keeps the last).
    fn same_report(&self, other: &Report) -> bool {
        self.highest_seq == other.highest_seq && self.lost == other.lost && self.rtt == other.rtt
    }
}

/// One peer's reports.
#[derive(Debug, Default)]
pub(crate) struct Feedback {
    /// When the first report came.
    first: Option<Instant>,
    /// Each new report and when it was read, oldest first: those of the last `WINDOW` and the
    /// one before them (the base the window is measured from).
    reports: VecDeque<(Instant, Report)>,
    /// Each new round trip read, and when.
    rtts: VecDeque<(Instant, Duration)>,
    /// After `reset`: the round trip read then, not this stream's until it changes.
    stale_rtt: Option<Duration>,
    /// The last TWCC summary, and when it came.
    twcc: Option<(Instant, Twcc)>,
    /// Each reading's packets sent and packets asked for again, and when: those of
    /// the last `WINDOW` and the one before them.
    sent: VecDeque<Sent>,
    /// The encoder's rate was cut then (`forget_losses`): NACKs count from the first reading
    /// `NACK_LAG` after it, reported losses from the first report read after it.
    losses_since: Option<Instant>,
}

impl Feedback {
    /// A reading of webrtcbin's statistics at `now`; one before any receiver report (nothing
    /// received yet) or the same report read again changes nothing.
    pub fn report(&mut self, now: Instant, report: Report) {
        // What was sent and asked again for: every reading, a new report or not.
        if self
            .sent
            .back()
            .is_none_or(|s| s.packets != report.packets_sent)
        {
            self.sent.push_back(Sent {
                at: now,
                packets: report.packets_sent,
                nacked: report.nacks,
            });
            while self.sent.len() > 2 && now.duration_since(self.sent[1].at) > WINDOW {
                self.sent.pop_front();
            }
        }
        if report.highest_seq == 0 {
            return;
        }
        if let Some((_, last)) = self.reports.back() {
            if last.same_report(&report) {
                return;
            }
            // A new round trip after `reset`: this stream's.
            if self.stale_rtt.is_some_and(|stale| stale != report.rtt) {
                self.stale_rtt = None;
            }
        }
        self.first.get_or_insert(now);
        if self.stale_rtt.is_none() && !report.rtt.is_zero() {
            if self.rtts.back().is_none_or(|(_, rtt)| *rtt != report.rtt) {
                self.rtts.push_back((now, report.rtt));
            }
            while self
                .rtts
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > RTT_WINDOW)
            {
                self.rtts.pop_front();
            }
        }
        self.reports.push_back((now, report));
        // Keep one report older than the window: the base of the window's differences.
        while self.reports.len() > 2 && now.duration_since(self.reports[1].0) > WINDOW {
            self.reports.pop_front();
        }
    }

    /// rtpsession summed up a TWCC feedback of the peer's at `now`.
    pub fn twcc(&mut self, now: Instant, twcc: Twcc) {
        self.first.get_or_insert(now);
        self.twcc = Some((now, twcc));
    }

    /// The last TWCC summary, when recent.
    fn fresh_twcc(&self, now: Instant) -> Option<&Twcc> {
        self.twcc
            .as_ref()
            .filter(|(at, _)| now.duration_since(*at) <= TWCC_FRESH)
            .map(|(_, t)| t)
    }

    /// Its link takes less than it is sent: TWCC says it received `OVERUSE` less than was sent
    /// or lost more than `LOSS_LIMIT`; without TWCC, its receiver reports lost more than that.
    /// (The reports' 2 s window would still hold the losses of before a cut, and the rate
    /// control would cut again for them.)
    pub fn congested(&self, now: Instant) -> bool {
        match self.fresh_twcc(now) {
            Some(t) => {
                t.lost > LOSS_LIMIT
                    || (t.received_bps < t.sent_bps
                        && (t.sent_bps - t.received_bps) as f64 > OVERUSE * t.sent_bps as f64)
            }
            None => self.lost_share(now) > LOSS_LIMIT || self.nack_share(now) > LOSS_LIMIT,
        }
    }

    /// The packets it asked for again over the last `WINDOW`, a share of the packets sent
    /// meanwhile (0 when too few were sent to say).
    pub fn nack_share(&self, now: Instant) -> f64 {
        self.asked_share(now).unwrap_or(0.0)
    }

    /// The share of the window's packets asked for again, when enough were sent over long
    /// enough, lately.
    fn asked_share(&self, now: Instant) -> Option<f64> {
        let last = self.sent.back()?;
        // After a cut: from the first reading `NACK_LAG` after it (the NACKs for what was lost
        // before it come that much later).
        let first = match self.losses_since {
            Some(cut) => self.sent.iter().find(|s| s.at >= cut + NACK_LAG)?,
            None => self.sent.front()?,
        };
        let packets = last.packets.saturating_sub(first.packets);
        let span = last.at.duration_since(first.at);
        if packets < MIN_NACK_PACKETS || now.duration_since(last.at) > STALE || span < MIN_SPAN {
            return None;
        }
        Some((last.nacked.saturating_sub(first.nacked) as f64 / packets as f64).min(1.0))
    }

    /// Without TWCC: it loses (or asks again for) more than `HOLD_LOSS` of what is sent, less
    /// than congested. A link that starts to lose as the rate goes up is full; one that loses
    /// as much at a steady rate may just be lossy (rate.rs tells them apart).
    pub fn lossy(&self, now: Instant) -> bool {
        self.fresh_twcc(now).is_none() && self.lost_share(now).max(self.nack_share(now)) > HOLD_LOSS
    }

    /// Whether its TWCC feedback is recent: it tells a queue that grows within a tenth of a
    /// second, and the round trips (a second or two late) are not read.
    pub fn has_twcc(&self, now: Instant) -> bool {
        self.fresh_twcc(now).is_some()
    }

    /// How long since its first receiver report; None when it never sent one.
    pub fn reporting_for(&self, now: Instant) -> Option<Duration> {
        self.first.map(|first| now.duration_since(first))
    }

    /// The window's first and last report, when they span enough and the last is not stale.
    fn span(&self, now: Instant) -> Option<(Duration, &Report, &Report)> {
        let (first_at, first) = self.reports.front()?;
        let (last_at, last) = self.reports.back()?;
        let span = last_at.duration_since(*first_at);
        (span >= MIN_SPAN && now.duration_since(*last_at) <= STALE).then_some((span, first, last))
    }

    /// Bits per second that reached it: TWCC's last window where it has one, else the reports'
    /// window; 0 when not known. (Not what was sent less what its NACKs asked for: a receiver
    /// asks for what is late as well as for what is lost, and while a queue drains, after a
    /// cut, it asked for a quarter of a stream its link carried whole: the target went to
    /// `min-bitrate`.)
    pub fn delivered_bps(&self, now: Instant) -> u64 {
        if let Some(t) = self.fresh_twcc(now).filter(|t| t.received_bps > 0) {
            return t.received_bps;
        }
        let Some((span, first, last)) = self.span(now) else {
            return 0;
        };
        let expected = last.highest_seq.saturating_sub(first.highest_seq);
        let lost = u64::try_from(last.lost - first.lost).unwrap_or(0);
        let packets = last.packets_sent.saturating_sub(first.packets_sent);
        let bytes = last.bytes_sent.saturating_sub(first.bytes_sent);
        if packets == 0 {
            return 0;
        }
        // A queue that drains hands over more than was sent meanwhile, but not without bound:
        // a report that claims more says nothing.
        let received = expected.saturating_sub(lost).min(2 * packets);
        let mean = bytes as f64 / packets as f64;
        (received as f64 * mean * 8.0 / report_span(span, first, last).as_secs_f64()) as u64
    }

    /// The share of the packets it expected over the window that it lost (0 to 1).
    pub fn lost_share(&self, now: Instant) -> f64 {
        let Some((_, front, last)) = self.span(now) else {
            return 0.0;
        };
        // A report read after the cut was mostly of before it (a receiver reports every 1-5 s):
        // losses count from the first one read after it.
        let first = match self.losses_since {
            Some(cut) => match self.reports.iter().find(|(at, _)| *at > cut) {
                Some((_, r)) => r,
                None => return 0.0,
            },
            None => front,
        };
        let expected = last.highest_seq.saturating_sub(first.highest_seq);
        if expected == 0 {
            return 0.0;
        }
        ((last.lost - first.lost).max(0) as f64 / expected as f64).min(1.0)
    }

    /// The last round trip above the quickest of the last `RTT_WINDOW` (zero when not known).
    pub fn queued(&self) -> Duration {
        if self.stale_rtt.is_some() {
            return Duration::ZERO;
        }
        let Some((_, last)) = self.rtts.back() else {
            return Duration::ZERO;
        };
        let quickest = self.rtts.iter().map(|(_, rtt)| *rtt).min().unwrap_or(*last);
        last.saturating_sub(quickest)
    }

    /// The last three round trips read, oldest first, and the quickest of the last
    /// `RTT_WINDOW`: rate control's `rising` reads a queue that grows from them before it is
    /// deep, as it does from a viewer's acks (rate.rs). None after `reset`, until they change.
    pub fn round_trips(&self) -> ([Option<Duration>; 3], Option<Duration>) {
        if self.stale_rtt.is_some() || self.rtts.len() < 3 {
            return ([None; 3], None);
        }
        let n = self.rtts.len();
        let last = |i: usize| Some(self.rtts[n - 3 + i].1);
        let quickest = self.rtts.iter().map(|(_, rtt)| *rtt).min();
        ([last(0), last(1), last(2)], quickest)
    }

    /// The encoder's rate was cut at `now`: the losses and NACKs of the stream before it said
    /// so, and would say it again for a window's length (the rate control would cut again, and
    /// again, for one queue). NACKs count from the first reading `NACK_LAG` after it,
    /// reported losses from the first report read after it. What was delivered stays: a full
    /// queue's link delivered what it carries.
    pub fn forget_losses(&mut self, now: Instant) {
        self.losses_since = Some(now);
    }

    /// It moved to another stream: the window starts again from the last report, and the last
    /// round trip counts no more until it changes.
    pub fn reset(&mut self) {
        self.losses_since = None;
        self.twcc = None;
        self.sent.clear();
        if let Some(last) = self.reports.pop_back() {
            self.reports.clear();
            self.stale_rtt = Some(last.1.rtt);
            self.reports.push_back(last);
        }
    }
}

/// The time between two reports: when the peer sent them (`Report::sent_ntp`), where known and
/// within half to twice `read`, the time between our readings of them. Those readings come
/// every 500 ms, so a report is read up to that long after it came: over a 2 s window, a
/// quarter off (a link of 700 kbit/s read as 490-875).
fn report_span(read: Duration, first: &Report, last: &Report) -> Duration {
    if first.sent_ntp == 0 || last.sent_ntp == 0 {
        return read;
    }
    let sent =
        Duration::from_secs_f64(f64::from(last.sent_ntp.wrapping_sub(first.sent_ntp)) / 65536.0);
    if sent >= read / 2 && sent <= read * 2 && sent >= MIN_SPAN {
        sent
    } else {
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// No reports yet, and the peer's first sequence number.
    fn start() -> (Feedback, Instant, Report) {
        let state = Report {
            highest_seq: 1,
            ..Default::default()
        };
        (Feedback::default(), Instant::now(), state)
    }

    /// A link that carries `carried` of `sent` packets a second (1000 bytes each), read every
    /// 500 ms for `seconds`, from `start` (its sequence numbers and counts at `at`).
    fn run(
        f: &mut Feedback,
        at: &mut Instant,
        state: &mut Report,
        seconds: u64,
        sent: u64,
        carried: u64,
        rtt: Duration,
    ) {
        for _ in 0..seconds * 2 {
            *at += ms(500);
            state.highest_seq += sent / 2;
            state.lost += ((sent - carried) / 2) as i64;
            state.packets_sent += sent / 2;
            state.bytes_sent += sent / 2 * 1000;
            state.rtt = rtt;
            f.report(*at, *state);
        }
    }

    #[test]
    fn a_free_link_delivers_what_was_sent_and_loses_nothing() {
        let mut f = Feedback::default();
        let mut at = Instant::now();
        let mut state = Report {
            highest_seq: 20_000,
            ..Default::default()
        };
        assert_eq!(f.reporting_for(at), None);
        run(&mut f, &mut at, &mut state, 4, 300, 300, ms(1));
        assert_eq!(f.delivered_bps(at), 2_400_000, "300 packets of 1000 bytes");
        assert_eq!(f.lost_share(at), 0.0);
        assert_eq!(f.queued(), Duration::ZERO);
        assert_eq!(f.reporting_for(at), Some(ms(3500)));
    }

    #[test]
    fn a_slow_link_delivers_what_it_carries_loses_the_rest_and_queues() {
        let (mut f, mut at, mut state) = start();
        run(&mut f, &mut at, &mut state, 4, 300, 300, ms(1));
        // 1.2 Mbit/s of a 2.4 Mbit/s stream, a 300 ms queue.
        run(&mut f, &mut at, &mut state, 3, 300, 150, ms(301));
        assert_eq!(f.delivered_bps(at), 1_200_000);
        assert!((f.lost_share(at) - 0.5).abs() < 1e-9);
        assert_eq!(f.queued(), ms(300));
    }

    #[test]
    fn a_growing_queue_shows_in_the_last_round_trips() {
        let (mut f, mut at, mut state) = start();
        assert_eq!(f.round_trips(), ([None; 3], None));
        for rtt in [2, 1, 2, 10, 20, 40] {
            run(&mut f, &mut at, &mut state, 1, 300, 300, ms(rtt));
        }
        assert_eq!(
            f.round_trips(),
            ([Some(ms(10)), Some(ms(20)), Some(ms(40))], Some(ms(1)))
        );
        f.reset();
        assert_eq!(f.round_trips(), ([None; 3], None));
    }

    #[test]
    fn the_same_report_read_again_is_not_a_new_one() {
        let (mut f, mut at, mut state) = start();
        run(&mut f, &mut at, &mut state, 2, 300, 300, ms(1));
        let before = f.reports.len();
        f.report(at + ms(500), state);
        assert_eq!(f.reports.len(), before);
        // Reports stop: nothing is known of its link after a while.
        assert_eq!(f.delivered_bps(at + ms(1000)), 2_400_000);
        assert_eq!(f.delivered_bps(at + STALE + ms(1)), 0);
    }

    #[test]
    fn the_span_is_when_the_peer_sent_its_reports_not_when_they_were_read() {
        let (mut f, mut at, mut state) = start();
        // A report each second (700 packets of 1000 bytes: 5.6 Mbit/s), read every 500 ms: each
        // read 10-490 ms after it was sent.
        let mut sent_at = 0u64; // ms
        let mut reads = 0;
        for (i, lag) in [10u64, 490, 10, 490, 10, 490, 10, 490]
            .into_iter()
            .enumerate()
        {
            sent_at += 1000;
            state.highest_seq += 700;
            state.packets_sent += 700;
            state.bytes_sent += 700_000;
            state.sent_ntp = (sent_at * 65536 / 1000) as u32;
            let read = Instant::now() + ms(sent_at + lag);
            // Readings between reports read the last one again.
            f.report(read, state);
            at = read;
            reads = i;
        }
        assert_eq!(reads, 7);
        let delivered = f.delivered_bps(at);
        assert!(
            (delivered as f64 / 5_600_000.0 - 1.0).abs() < 0.01,
            "{delivered}"
        );
        // Without the peer's times: our readings' span, here 2.48 s for 2 s of packets.
        state.sent_ntp = 0;
        let mut g = Feedback::default();
        let mut t = Instant::now();
        for lag in [10u64, 490, 10, 490] {
            t += ms(1000);
            state.highest_seq += 700;
            state.packets_sent += 700;
            state.bytes_sent += 700_000;
            g.report(t + ms(lag), state);
        }
        let read = g.delivered_bps(t + ms(490));
        assert!(read < 5_000_000, "{read}");
        // A peer that lies about its times moves the span no further than twice ours.
        let honest = Report {
            sent_ntp: 65536,
            ..Default::default()
        };
        let liar = Report {
            sent_ntp: 65536 + 100,
            ..Default::default()
        };
        assert_eq!(report_span(ms(2000), &honest, &liar), ms(2000));
    }

    #[test]
    fn a_peer_whose_reports_stop_while_it_sends_nacks_is_congested() {
        let (mut f, mut at, mut state) = start();
        run(&mut f, &mut at, &mut state, 4, 300, 300, ms(1));
        assert!(!f.congested(at));
        // Its last report stays the one from before its link filled; it asks again for 15 %
        // of what is sent.
        let frozen = state;
        for _ in 0..4 {
            at += ms(500);
            state.packets_sent += 150;
            state.bytes_sent += 150_000;
            state.nacks += 22;
            f.report(
                at,
                Report {
                    packets_sent: state.packets_sent,
                    bytes_sent: state.bytes_sent,
                    nacks: state.nacks,
                    ..frozen
                },
            );
        }
        // Over the window (and the reading before it): 88 NACKs for 750 packets.
        assert!(
            (f.nack_share(at) - 88.0 / 750.0).abs() < 1e-9,
            "{}",
            f.nack_share(at)
        );
        assert!(f.congested(at));
        // A few NACKs (a packet lost now and then) are no congestion; nor are old ones.
        for _ in 0..5 {
            at += ms(500);
            state.packets_sent += 150;
            state.nacks += 3;
            f.report(at, state);
        }
        assert!(!f.congested(at), "{}", f.nack_share(at));
        assert_eq!(f.nack_share(at + STALE + ms(1)), 0.0);
    }

    /// One reading 500 ms on: `sent` packets (1000 bytes each), `lost` of them reported lost
    /// and `asked` asked for again.
    fn reading(
        f: &mut Feedback,
        at: &mut Instant,
        state: &mut Report,
        sent: u64,
        lost: u64,
        asked: u64,
    ) {
        *at += ms(500);
        state.highest_seq += sent;
        state.lost += lost as i64;
        state.packets_sent += sent;
        state.bytes_sent += sent * 1000;
        state.nacks += asked;
        f.report(*at, *state);
    }

    #[test]
    fn after_a_cut_the_losses_and_nacks_of_before_it_count_no_more() {
        let (mut f, mut at, mut state) = start();
        run(&mut f, &mut at, &mut state, 4, 300, 300, ms(1));
        // Half is lost and asked for again; the encoder is cut.
        for _ in 0..4 {
            reading(&mut f, &mut at, &mut state, 150, 75, 75);
        }
        assert!(f.congested(at));
        let delivered = f.delivered_bps(at);
        f.forget_losses(at);
        // Until new readings say otherwise, nothing is lost: its window still holds the
        // losses of before the cut, which said so once. Its reports say what it delivered.
        assert!(!f.congested(at));
        assert!(f.delivered_bps(at) >= delivered);
        // The first report read after the cut is of before it: its losses count no more.
        reading(&mut f, &mut at, &mut state, 150, 75, 0);
        assert_eq!(f.lost_share(at), 0.0);
        // Under the link now: nothing lost.
        run(&mut f, &mut at, &mut state, 1, 100, 100, ms(1));
        assert!(
            !f.congested(at),
            "{} {}",
            f.lost_share(at),
            f.nack_share(at)
        );
        // Still past it: lost again, congested again.
        for _ in 0..2 {
            reading(&mut f, &mut at, &mut state, 100, 30, 30);
        }
        assert!(f.congested(at));
        assert!(
            (f.lost_share(at) - 60.0 / 300.0).abs() < 1e-9,
            "{}",
            f.lost_share(at)
        );
        // NACKs count from the first reading `NACK_LAG` after the cut.
        assert!(
            (f.nack_share(at) - 60.0 / 300.0).abs() < 1e-9,
            "{}",
            f.nack_share(at)
        );
    }

    #[test]
    fn a_peer_that_reports_every_five_seconds_is_measured_over_its_last_two() {
        let (mut f, mut at, mut state) = start();
        // Read every 500 ms; a new report every 5 s (the same one read in between).
        for i in 1..=30u64 {
            at += ms(500);
            if i % 10 == 0 {
                state.highest_seq += 1500;
                state.lost += 750;
                state.rtt = ms(1 + i);
            }
            state.packets_sent += 150;
            state.bytes_sent += 150_000;
            f.report(at, state);
        }
        // 750 of 1500 packets a 5 s, 1000 bytes each.
        assert_eq!(f.delivered_bps(at), 1_200_000);
        assert!((f.lost_share(at) - 0.5).abs() < 1e-9);
        assert_eq!(
            f.delivered_bps(at + ms(4900)),
            1_200_000,
            "until its next report"
        );
    }

    #[test]
    fn twcc_feedback_tells_what_arrived_and_a_queue_at_once() {
        let (mut f, mut at, mut state) = start();
        run(&mut f, &mut at, &mut state, 3, 300, 300, ms(1));
        let twcc = |sent, received, lost| Twcc {
            sent_bps: sent,
            received_bps: received,
            lost,
        };
        f.twcc(at, twcc(2_400_000, 2_390_000, 0.0));
        assert_eq!(f.delivered_bps(at), 2_390_000);
        assert!(!f.congested(at));
        // The link takes 1.2 of 2.4 Mbit/s: congested before any loss or report.
        f.twcc(at + ms(100), twcc(2_400_000, 1_200_000, 0.0));
        assert!(f.congested(at + ms(100)));
        assert_eq!(f.delivered_bps(at + ms(100)), 1_200_000);
        f.twcc(at + ms(200), twcc(1_000_000, 950_000, 0.2));
        assert!(f.congested(at + ms(200)), "losses");
        // Losses its receiver reports still hold from before do not count while TWCC is on.
        run(&mut f, &mut at, &mut state, 1, 300, 150, ms(1));
        f.twcc(at, twcc(1_000_000, 990_000, 0.0));
        assert!(f.lost_share(at) > LOSS_LIMIT);
        assert!(!f.congested(at));
        assert!(f.has_twcc(at));
        // Feedback that stopped says nothing: the reports' figures again.
        let later = at + TWCC_FRESH + ms(1);
        assert!(!f.has_twcc(later));
        run(&mut f, &mut at, &mut state, 3, 300, 300, ms(1));
        let later = at;
        assert!(!f.congested(later));
        assert_eq!(f.delivered_bps(later), 2_400_000);
        // A move forgets it.
        f.twcc(later, twcc(2_400_000, 1_200_000, 0.0));
        f.reset();
        assert!(!f.congested(later));
    }

    #[test]
    fn no_report_yet_is_no_estimate() {
        let mut f = Feedback::default();
        let at = Instant::now();
        f.report(
            at,
            Report {
                packets_sent: 100,
                bytes_sent: 100_000,
                ..Default::default()
            },
        );
        assert_eq!(f.reporting_for(at), None);
        assert_eq!(f.delivered_bps(at), 0);
    }

    #[test]
    fn after_a_move_the_old_losses_and_round_trip_are_forgotten() {
        let (mut f, mut at, mut state) = start();
        run(&mut f, &mut at, &mut state, 4, 300, 300, ms(1));
        run(&mut f, &mut at, &mut state, 2, 300, 150, ms(301));
        f.reset();
        assert_eq!(f.queued(), Duration::ZERO, "the old round trip");
        assert_eq!(f.lost_share(at), 0.0);
        // The small stream fits: no loss; the old round trip read again still does not count.
        run(&mut f, &mut at, &mut state, 1, 40, 40, ms(301));
        assert_eq!(f.lost_share(at), 0.0);
        assert_eq!(f.queued(), Duration::ZERO);
        assert_eq!(f.delivered_bps(at), 320_000);
        // A new sender report's round trip: the queue drained.
        run(&mut f, &mut at, &mut state, 1, 40, 40, ms(2));
        assert_eq!(f.queued(), ms(1));
    }

    #[test]
    fn a_lying_report_gives_no_more_than_was_sent() {
        let (mut f, mut at, mut state) = start();
        run(&mut f, &mut at, &mut state, 2, 300, 300, ms(1));
        // It claims a million packets and negative losses: what it was delivered is at most
        // twice what was sent over the window, and losses never go below zero.
        state.highest_seq += 1_000_000;
        state.lost -= 500;
        state.packets_sent += 150;
        state.bytes_sent += 150_000;
        at += ms(500);
        f.report(at, state);
        assert!(
            f.delivered_bps(at) <= 2 * 2_400_000,
            "{}",
            f.delivered_bps(at)
        );
        assert_eq!(f.lost_share(at), 0.0);
    }
}
