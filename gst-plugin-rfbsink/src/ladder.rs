// SPDX-License-Identifier: MPL-2.0

//! Renditions (docs/protocol.md, "Renditions"): which encoding of the picture each viewer gets.
//! Pure: the hub feeds it the renditions' rates and each viewer's sample (the same acks rate
//! control reads, rate.rs), and switches the viewers it names at the next keyframe of their new
//! rendition.
//!
//! The rule, per viewer that acknowledges frames (a WebRTC peer's receiver reports stand in for
//! acks, rtcp.rs):
//! - Down, at once (`check`, about every 100 ms): a congested viewer (`Sample::congested`: its
//!   oldest unacknowledged frame older than `rate::QUEUE_LIMIT`, or its link losing packets), or
//!   one for which the hub dropped frames since the last tick, goes to the best rendition whose
//!   rate is at most `FIT` times what its link delivered, or the lowest when none fits.
//! - Up (`tick`, about every second), one rendition at a time, after a wait of calm ticks:
//!   `UP_WAIT_MIN` for a viewer that never queued or whose last try held, `DOWN_WAIT` after its
//!   link queued and it moved down, twice the last wait (at least `2 * DOWN_WAIT`, at most
//!   `UP_WAIT_MAX`) after a try that queued within `TRY_TICKS`. A try costs a link that is too
//!   slow a queue of a second or more (a keyframe of the larger rendition and its frames until
//!   the queue shows): those waits keep it rare. It does not try when its link was measured too
//!   slow for the next rendition (that rendition's rate over `FIT` times what the link carries:
//!   its large frames, keyframes mostly, arrive at the link's rate, `ClientCounters::capacity_bps`).
//!   Unmeasured, it first asks for a keyframe of its own rendition, which measures it (a `Move`
//!   to where it is), and tries when that measured nothing either. A measure errs high behind a
//!   token bucket (a keyframe within its burst passes at the wire's rate): it only ever stops a
//!   try, it never hastens one.
//!
//! The renditions' rates are what their streams sent in the last 3 s (hub.rs), not what the
//! encoders were told: a still picture costs less than its bitrate.

use std::collections::HashMap;

use crate::rate::Sample;

/// A rendition fits a link when its rate is at most this much of what the link delivered.
const FIT: f64 = 0.85;
/// Calm ticks before the first try upward, and after a try that held.
const UP_WAIT_MIN: u32 = 3;
/// Calm ticks before a try upward after its link queued and it moved down: a link that just
/// proved too slow is not tried again at once (a failed try costs it a second or more).
const DOWN_WAIT: u32 = 10;
/// The longest wait between two tries upward.
const UP_WAIT_MAX: u32 = 60;
/// A try upward that has not queued for this many ticks held.
const TRY_TICKS: u32 = 3;

/// One rendition as the ladder sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rung {
    pub id: u32,
    /// What its stream sent lately, in bits per second.
    pub bps: u64,
}

/// One viewer: its rate sample, and where it is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seat {
    pub sample: Sample,
    /// The rendition it gets now.
    pub rendition: u32,
    /// The rendition it moves to at that rendition's next keyframe.
    pub moving_to: Option<u32>,
    /// The viewer chose its rendition (`rfb.control` `rendition`): the ladder leaves it there.
    pub pinned: bool,
}

/// A viewer to move: to `rendition`, at its next keyframe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Move {
    pub client_id: u64,
    pub rendition: u32,
}

#[derive(Debug)]
struct Climber {
    /// Ticks without congestion in a row.
    calm: u32,
    /// Calm ticks it waits before trying upward.
    up_wait: u32,
    /// Ticks since it moved up (while the try is on).
    trying: Option<u32>,
    /// Its drop total at the last tick.
    dropped: u64,
    /// A keyframe of its rendition was asked for to measure its link, at this try.
    measured: bool,
}

impl Climber {
    fn new(dropped: u64) -> Climber {
        Climber {
            calm: 0,
            up_wait: UP_WAIT_MIN,
            trying: None,
            dropped,
            measured: false,
        }
    }

    /// It moves up: a try, watched for `TRY_TICKS`.
    fn try_up(&mut self) {
        self.calm = 0;
        self.measured = false;
        self.trying = Some(0);
    }

    /// It queued: after a try upward, twice as long a wait for the next (at least twice
    /// `DOWN_WAIT`); else at least `DOWN_WAIT`.
    fn congested(&mut self) {
        self.calm = 0;
        self.up_wait = if self.trying.take().is_some() {
            (self.up_wait * 2).clamp(2 * DOWN_WAIT, UP_WAIT_MAX)
        } else {
            self.up_wait.max(DOWN_WAIT)
        };
    }
}

/// What the ladder remembers of each viewer.
#[derive(Debug, Default)]
pub(crate) struct Ladder {
    climbers: HashMap<u64, Climber>,
}

/// `rungs` from the lowest rate to the highest, and the position of `id` in it.
fn ordered(rungs: &[Rung]) -> Vec<Rung> {
    let mut rungs = rungs.to_vec();
    rungs.sort_by_key(|r| (r.bps, r.id));
    rungs
}

/// The connection URL's parameter by which a viewer says what its page's own files measured of
/// its link, in kbit/s (docs/protocol.md, "Renditions").
pub(crate) const DOWNLINK_PARAM: &str = "downlink";

/// A `downlink` parameter's value in bits per second: a whole number of kbit/s from 1 to 100
/// million; anything else is no hint.
pub(crate) fn downlink_bps(value: Option<&str>) -> Option<u64> {
    let kbps: u64 = value?.parse().ok()?;
    (1..=100_000_000).contains(&kbps).then_some(kbps * 1000)
}

/// Where a viewer whose page measured its link at `downlink_bps` starts: the best rendition that
/// fits it, the lowest when none does (the ladder tries it up from there). None without
/// renditions whose rates are known.
pub(crate) fn start(rungs: &[Rung], downlink_bps: u64) -> Option<u32> {
    let rungs = ordered(rungs);
    below(&rungs, rungs.len(), downlink_bps)
}

/// The best rendition below `from` for a link that delivered `delivered_bps`; the lowest when
/// none fits.
fn below(rungs: &[Rung], from: usize, delivered_bps: u64) -> Option<u32> {
    let fit = (delivered_bps as f64 * FIT) as u64;
    rungs[..from]
        .iter()
        .rev()
        .find(|r| r.bps <= fit)
        .or_else(|| rungs[..from].first())
        .map(|r| r.id)
}

impl Ladder {
    /// Between ticks: viewers whose queue passed `QUEUE_LIMIT` move down.
    pub fn check(&mut self, rungs: &[Rung], seats: &[Seat]) -> Vec<Move> {
        self.down(rungs, seats, false)
    }

    /// One tick with every viewer: down for those congested (or skipping), one up for those
    /// calm long enough.
    pub fn tick(&mut self, rungs: &[Rung], seats: &[Seat]) -> Vec<Move> {
        let mut moves = self.down(rungs, seats, true);
        let rungs = ordered(rungs);
        let mut seen = HashMap::with_capacity(seats.len());
        for seat in seats.iter().filter(|s| s.sample.acking_for.is_some()) {
            let id = seat.sample.client_id;
            let mut climber = self
                .climbers
                .remove(&id)
                .unwrap_or_else(|| Climber::new(seat.sample.dropped));
            let skipped = seat.sample.dropped > climber.dropped;
            climber.dropped = seat.sample.dropped;
            if !skipped && !seat.sample.congested() {
                climber.calm += 1;
                if let Some(t) = &mut climber.trying {
                    *t += 1;
                    if *t >= TRY_TICKS {
                        climber.trying = None;
                        climber.up_wait = UP_WAIT_MIN;
                    }
                }
                let at = rungs.iter().position(|r| r.id == seat.rendition);
                let up = at.and_then(|i| rungs.get(i + 1));
                let due =
                    !seat.pinned && seat.moving_to.is_none() && climber.calm >= climber.up_wait;
                let to = match (up.filter(|_| due), seat.sample.capacity_bps) {
                    (Some(up), Some(c)) if (c as f64 * FIT) as u64 >= up.bps => {
                        climber.try_up();
                        Some(up.id)
                    }
                    // Measured too slow: it stays, and looks again at the next due tick.
                    (Some(_), Some(_)) => {
                        climber.measured = false;
                        None
                    }
                    // Not measured: a keyframe of its own rendition measures its link (a move
                    // to where it is asks for one); only when that measured nothing either
                    // (its frames are all small) does it try blindly.
                    (Some(_), None) if !climber.measured => {
                        climber.measured = true;
                        Some(seat.rendition)
                    }
                    (Some(up), None) => {
                        climber.try_up();
                        Some(up.id)
                    }
                    (None, _) => None,
                };
                moves.extend(to.map(|rendition| Move {
                    client_id: id,
                    rendition,
                }));
            }
            seen.insert(id, climber);
        }
        // Viewers that left are forgotten.
        self.climbers = seen;
        moves
    }

    fn down(&mut self, rungs: &[Rung], seats: &[Seat], tick: bool) -> Vec<Move> {
        let rungs = ordered(rungs);
        let mut moves = Vec::new();
        for seat in seats.iter().filter(|s| s.sample.acking_for.is_some()) {
            let s = &seat.sample;
            let climber = self
                .climbers
                .entry(s.client_id)
                .or_insert_with(|| Climber::new(s.dropped));
            let skipped = tick && s.dropped > climber.dropped;
            if !s.congested() && !skipped {
                continue;
            }
            climber.congested();
            if seat.pinned {
                continue;
            }
            // Below where it is, or where it is going.
            let from = seat.moving_to.unwrap_or(seat.rendition);
            let Some(at) = rungs.iter().position(|r| r.id == from) else {
                continue;
            };
            if let Some(rendition) = below(&rungs, at, s.delivered_bps) {
                moves.push(Move {
                    client_id: s.client_id,
                    rendition,
                });
            }
        }
        moves
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    const LADDER: [Rung; 3] = [
        Rung {
            id: 0,
            bps: 4_000_000,
        },
        Rung {
            id: 1,
            bps: 600_000,
        },
        Rung {
            id: 2,
            bps: 1_500_000,
        },
    ];

    #[test]
    fn a_viewer_starts_on_the_rendition_its_pages_download_fits() {
        let rungs = LADDER;
        assert_eq!(start(&rungs, 700_000), Some(1));
        assert_eq!(start(&rungs, 2_000_000), Some(2));
        assert_eq!(start(&rungs, 50_000_000), Some(0));
        assert_eq!(start(&rungs, 300_000), Some(1), "the lowest when none fits");
        assert_eq!(start(&[], 700_000), None);
        assert_eq!(downlink_bps(Some("700")), Some(700_000));
        for bad in ["0", "-5", "7e2", "", "100000001", "18446744073709551616"] {
            assert_eq!(downlink_bps(Some(bad)), None, "{bad}");
        }
        assert_eq!(downlink_bps(None), None);
    }

    fn seat(id: u64, rendition: u32, delivered_kbps: u64, queued_ms: u64) -> Seat {
        Seat {
            sample: Sample {
                client_id: id,
                acking_for: Some(Duration::from_secs(5)),
                delivered_bps: delivered_kbps * 1000,
                queued: Duration::from_millis(queued_ms),
                dropped: 0,
                capacity_bps: None,
                ..Default::default()
            },
            rendition,
            moving_to: None,
            pinned: false,
        }
    }

    fn to(client_id: u64, rendition: u32) -> Move {
        Move {
            client_id,
            rendition,
        }
    }

    #[test]
    fn a_queueing_viewer_goes_to_the_best_rendition_its_link_carries() {
        let mut l = Ladder::default();
        assert_eq!(l.check(&LADDER, &[seat(1, 0, 3000, 20)]), vec![]);
        // 2 Mbit/s delivered: 1.5 Mbit/s fits (0.85 x 2 = 1.7).
        assert_eq!(l.check(&LADDER, &[seat(1, 0, 2000, 300)]), vec![to(1, 2)]);
        // 700 kbit/s: only 600 kbit/s fits.
        assert_eq!(l.check(&LADDER, &[seat(2, 0, 700, 300)]), vec![to(2, 1)]);
        // Nothing fits: the lowest.
        assert_eq!(l.check(&LADDER, &[seat(3, 2, 100, 300)]), vec![to(3, 1)]);
        // At the bottom: nowhere to go (rate control's part, rate.rs).
        assert_eq!(l.check(&LADDER, &[seat(4, 1, 100, 300)]), vec![]);
    }

    #[test]
    fn viewers_that_do_not_ack_or_chose_their_rendition_stay() {
        let mut l = Ladder::default();
        let mut webrtc = seat(1, 0, 0, 900);
        webrtc.sample.acking_for = None;
        let mut pinned = seat(2, 0, 500, 900);
        pinned.pinned = true;
        assert_eq!(l.check(&LADDER, &[webrtc, pinned]), vec![]);
        pinned.rendition = 1;
        pinned.sample.queued = Duration::from_millis(10);
        for _ in 0..10 {
            assert_eq!(l.tick(&LADDER, &[webrtc, pinned]), vec![]);
        }
    }

    #[test]
    fn skipping_moves_down_at_the_tick() {
        let mut l = Ladder::default();
        assert_eq!(l.tick(&LADDER, &[seat(1, 0, 3000, 20)]), vec![]);
        let mut skipped = seat(1, 0, 700, 20);
        skipped.sample.dropped = 5;
        assert_eq!(l.tick(&LADDER, &[skipped]), vec![to(1, 1)]);
    }

    #[test]
    fn calm_viewers_try_one_up_and_wait_longer_after_each_failed_try() {
        let mut l = Ladder::default();
        let mut ticks_to_try = Vec::new();
        for _ in 0..4 {
            let mut n = 0;
            loop {
                n += 1;
                let mut s = seat(1, 1, 700, 10);
                // A stale measure: the try fails.
                s.sample.capacity_bps = Some(5_000_000);
                let moves = l.tick(&LADDER, &[s]);
                if !moves.is_empty() {
                    assert_eq!(moves, vec![to(1, 2)], "one rendition up");
                    break;
                }
                assert!(n < 100);
            }
            ticks_to_try.push(n);
            // The try queues: back down, and a longer wait.
            assert_eq!(l.check(&LADDER, &[seat(1, 2, 700, 400)]), vec![to(1, 1)]);
        }
        assert_eq!(ticks_to_try, vec![3, 20, 40, 60], "at most UP_WAIT_MAX");
    }

    #[test]
    fn a_link_measured_too_slow_for_the_next_rendition_is_not_tried() {
        let mut l = Ladder::default();
        let mut s = seat(1, 1, 550, 10);
        // 1.2 Mbit/s measured: 0.85 x 1.2 = 1.02 < 1.5 Mbit/s.
        s.sample.capacity_bps = Some(1_200_000);
        for _ in 0..30 {
            assert_eq!(l.tick(&LADDER, &[s]), vec![]);
        }
        // The link frees: its next keyframe measures 20 Mbit/s, and it goes up at once.
        s.sample.capacity_bps = Some(20_000_000);
        assert_eq!(l.tick(&LADDER, &[s]), vec![to(1, 2)]);
    }

    #[test]
    fn an_unmeasured_link_is_measured_first_and_tried_blindly_only_if_that_fails() {
        let mut l = Ladder::default();
        let s = seat(1, 1, 550, 10);
        let moves: Vec<Vec<Move>> = (0..5).map(|_| l.tick(&LADDER, &[s])).collect();
        assert_eq!(
            moves,
            [vec![], vec![], vec![to(1, 1)], vec![to(1, 2)], vec![]],
            "a keyframe of its own rendition first, then the try"
        );
        // Measured after the keyframe: it decides by the measure.
        let mut l = Ladder::default();
        let mut measured = s;
        for _ in 0..3 {
            l.tick(&LADDER, &[s]);
        }
        measured.sample.capacity_bps = Some(800_000);
        for _ in 0..10 {
            assert_eq!(l.tick(&LADDER, &[measured]), vec![]);
        }
    }

    #[test]
    fn a_try_that_holds_keeps_climbing_at_the_shortest_wait() {
        let mut l = Ladder::default();
        let mut at = 1;
        let mut path = Vec::new();
        for _ in 0..20 {
            let mut s = seat(1, at, 5000, 10);
            s.sample.capacity_bps = Some(20_000_000);
            for m in l.tick(&LADDER, &[s]) {
                at = m.rendition;
                path.push(at);
            }
        }
        assert_eq!(path, vec![2, 0], "600k -> 1.5M -> 4M");
        let mut top = seat(1, 0, 5000, 10);
        top.sample.capacity_bps = Some(20_000_000);
        assert_eq!(l.tick(&LADDER, &[top]), vec![], "at the top");
    }

    #[test]
    fn a_viewer_on_its_way_moves_from_where_it_is_going() {
        let mut l = Ladder::default();
        let mut s = seat(1, 0, 700, 400);
        s.moving_to = Some(2);
        assert_eq!(l.check(&LADDER, &[s]), vec![to(1, 1)]);
        // Not up while a move is pending.
        let mut calm = seat(1, 1, 5000, 10);
        calm.moving_to = Some(1);
        for _ in 0..10 {
            assert_eq!(l.tick(&LADDER, &[calm]), vec![]);
        }
    }
}
