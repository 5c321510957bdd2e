// SPDX-License-Identifier: MPL-2.0

//! A viewer that decodes slower than frames arrive: its latency stays bounded (it skips to
//! keyframes), the others get every frame, the bus says so, and when every viewer is behind a QoS
//! event goes upstream. Real WebSocket clients on loopback that acknowledge as the viewer does.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::common::*;
use gst::prelude::*;
use tokio::sync::oneshot;

/// Connects a client that "decodes" one frame every `decode` (acknowledging each in order, as
/// the viewer does after painting); returns when `stop` fires, with the worst time a frame waited
/// in its decoder queue and the number of frames it decoded.
async fn viewer(port: u16, decode: Duration, mut stop: oneshot::Receiver<()>) -> (Duration, usize) {
    let mut client = Client::connect(port, "/ws?envelope=binary").await;
    let mut queue: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut worst = Duration::ZERO;
    let mut decoded = 0;
    let mut tick = tokio::time::interval(decode);
    loop {
        tokio::select! {
            _ = &mut stop => return (worst, decoded),
            msg = client.next() => {
                if let Msg::Binary(b) = msg {
                    let (h, _) = gstrfbsink::protocol::FrameHeader::decode_binary(&b).unwrap();
                    queue.push_back((h.frame_id, Instant::now()));
                }
            }
            _ = tick.tick() => {
                if let Some((id, at)) = queue.pop_front() {
                    worst = worst.max(at.elapsed());
                    decoded += 1;
                    client.send_text(&format!(
                        r#"{{"channel":"rfb.stats","kind":"ack","frame_id":{id},"decode_queue_size":{}}}"#,
                        queue.len()
                    ));
                }
            }
        }
    }
}

/// Pushes `frames` at 30 fps, restamped so that their running time is real.
fn push_live(h: &mut gst_check::Harness, frames: &[gst::Buffer], rounds: usize) {
    let start = Instant::now();
    for n in 0..frames.len() * rounds {
        let mut b = frames[n % frames.len()].copy();
        let pts = gst::ClockTime::from_mseconds(33 * n as u64);
        b.make_mut().set_pts(pts);
        h.push(b).unwrap();
        let due = Duration::from_millis(33 * (n as u64 + 1));
        std::thread::sleep(due.saturating_sub(start.elapsed()));
    }
}

fn overloaded_messages(h: &gst_check::Harness) -> Vec<gst::Structure> {
    let mut out = Vec::new();
    while let Some(msg) = h.element().unwrap().bus().and_then(|b| b.pop()) {
        if let gst::MessageView::Element(e) = msg.view() {
            if let Some(s) = e
                .structure()
                .filter(|s| s.name() == "rfbsink-client-overloaded")
            {
                out.push(s.to_owned());
            }
        }
    }
    out
}

#[test]
fn a_slow_viewer_skips_to_keyframes_with_bounded_latency_and_the_others_get_every_frame() {
    let rt = runtime();
    let mut h = harness("max-latency=300");
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    // A keyframe every half second: what the slow viewer restarts from.
    let (caps, frames) = h264(15, 15);
    h.set_src_caps(caps);
    let port = port(&h);
    let (stop_slow, slow_rx) = oneshot::channel();
    let (stop_fast, fast_rx) = oneshot::channel();
    // 10 fps of decoding against 30 fps sent: unbounded, it would fall 2 s behind in 3 s.
    let slow = rt.spawn(viewer(port, Duration::from_millis(100), slow_rx));
    wait_clients(&h, 1);
    let fast = rt.spawn(viewer(port, Duration::from_millis(2), fast_rx));
    wait_clients(&h, 2);

    push_live(&mut h, &frames, 6);
    std::thread::sleep(Duration::from_millis(300));
    // The figures while both are connected.
    let clients = client_stats(&h);
    let _ = stop_slow.send(());
    let _ = stop_fast.send(());
    let (slow_worst, slow_decoded) = rt.block_on(slow).unwrap();
    let (fast_worst, fast_decoded) = rt.block_on(fast).unwrap();

    let by_id = |id: u64| {
        clients
            .iter()
            .find(|c| c.get::<u64>("id").unwrap() == id)
            .unwrap()
            .clone()
    };
    let (slow_stats, fast_stats) = (by_id(1), by_id(2));
    eprintln!(
        "slow: decoded {slow_decoded}, worst wait {slow_worst:?}, {slow_stats}\nfast: decoded {fast_decoded}, worst wait {fast_worst:?}"
    );
    // Bounded: a frame waits at most about max-latency (plus the frames already queued when it
    // was noticed), not the seconds an unbounded queue would reach.
    assert!(slow_worst < Duration::from_millis(700), "{slow_worst:?}");
    assert!(slow_stats.get::<u64>("overloads").unwrap() >= 1);
    assert!(slow_stats.get::<u64>("frames-dropped").unwrap() > 0);
    assert!(
        slow_decoded >= 10,
        "it still shows pictures: {slow_decoded}"
    );
    // The fast one is untouched.
    assert_eq!(fast_decoded, 90);
    assert_eq!(fast_stats.get::<u64>("overloads").unwrap(), 0);
    assert_eq!(fast_stats.get::<u64>("frames-dropped").unwrap(), 0);

    let messages = overloaded_messages(&h);
    assert!(!messages.is_empty(), "an rfbsink-client-overloaded message");
    for m in &messages {
        assert_eq!(m.get::<u64>("client-id").unwrap(), 1, "{m}");
        assert!(!m.get::<bool>("all-clients").unwrap(), "{m}");
        let sustainable = m.get::<f64>("sustainable-fps").unwrap();
        assert!((7.0..=12.0).contains(&sustainable), "{m}");
    }
    // One viewer of two behind: nothing goes upstream (it would lower the other's rate).
    while let Some(e) = h.try_pull_upstream_event() {
        assert_ne!(e.type_(), gst::EventType::Qos, "{e:?}");
    }
}

#[test]
fn when_every_viewer_is_behind_a_qos_event_asks_upstream_for_less() {
    let rt = runtime();
    let mut h = harness("max-latency=300");
    let (caps, frames) = h264(15, 15);
    h.set_src_caps(caps);
    let port = port(&h);
    let (stop, rx) = oneshot::channel();
    let slow = rt.spawn(viewer(port, Duration::from_millis(100), rx));
    wait_clients(&h, 1);
    push_live(&mut h, &frames, 3);
    std::thread::sleep(Duration::from_millis(200));
    let _ = stop.send(());
    rt.block_on(slow).unwrap();
    let mut qos = None;
    while let Some(e) = h.try_pull_upstream_event() {
        if let gst::EventView::Qos(q) = e.view() {
            qos = Some(q.get());
        }
    }
    let (kind, proportion, diff, _) = qos.expect("a QoS event upstream");
    assert_eq!(kind, gst::QOSType::Overflow);
    // 30 fps made, 10 decoded.
    assert!((2.0..=4.5).contains(&proportion), "{proportion}");
    assert!(diff > 300_000_000, "{diff}");
}

#[test]
fn a_frame_the_viewer_chose_not_to_show_does_not_stall_it_after_an_idle_stream() {
    let rt = runtime();
    let mut h = harness("max-latency=200");
    let (caps, frames) = h264(6, 30);
    h.set_src_caps(caps);
    let port = port(&h);
    let mut client = rt.block_on(Client::connect(port, "/ws?envelope=binary"));
    wait_clients(&h, 1);
    let ack = |client: &Client, id: u64| {
        client.send_text(&format!(
            r#"{{"channel":"rfb.stats","kind":"ack","frame_id":{id},"decode_queue_size":0}}"#
        ))
    };
    for f in &frames[..4] {
        h.push(f.clone()).unwrap();
    }
    rt.block_on(async {
        for id in 0..4 {
            let (header, _) = client.frame().await;
            assert_eq!(header.frame_id, id);
            // The last one is not shown (as the viewer skips a refine still it cannot paint).
            if id < 3 {
                ack(&client, id);
            }
        }
    });
    // The stream idles far longer than max-latency, then goes on.
    std::thread::sleep(Duration::from_millis(600));
    h.push(frames[4].clone()).unwrap();
    rt.block_on(async {
        // A bound of its own: frame() skips the stats messages that keep coming meanwhile.
        let (header, _) = tokio::time::timeout(Duration::from_secs(5), client.frame())
            .await
            .expect("the viewer is not stalled by a frame it skipped");
        assert_eq!(header.frame_id, 4);
    });
    let c = &client_stats(&h)[0];
    assert_eq!(c.get::<u64>("overloads").unwrap(), 0, "{c}");
}

/// A viewer on a link of `rate` bytes a second (0: unlimited) that acknowledges each frame as it
/// reads it, as `slow_viewer` does; it returns each frame's id and when it was read.
async fn timed_viewer(
    port: u16,
    rate: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<(u64, Instant)> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let url = format!("ws://127.0.0.1:{port}{}", with_token("/ws?envelope=binary"));
    let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut tx, mut rx) = ws.split();
    let mut read = Vec::new();
    let start = Instant::now();
    let mut bytes = 0u64;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let Ok(Some(Ok(Message::Binary(data)))) =
            tokio::time::timeout(Duration::from_millis(200), rx.next()).await
        else {
            continue;
        };
        let (header, _) = gstrfbsink::protocol::FrameHeader::decode_binary(&data).unwrap();
        read.push((header.frame_id, Instant::now()));
        tx.send(Message::text(ack(header.frame_id))).await.unwrap();
        if rate > 0 {
            bytes += data.len() as u64;
            let due = Duration::from_secs_f64(bytes as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    read
}

/// Stills of `width`x`height` snow (`jpegenc quality=60`) pushed at 30 fps for 6 s to a viewer
/// whose link carries `per_second` of them a second and one on a free link. Returns the slow
/// viewer's render -> read times of the pictures of the last 4 s (sorted), the free viewer's
/// count, the slow viewer's stats, the still's mean size and the bus's "overloaded" messages.
fn stills_on_two_links(
    width: u32,
    height: u32,
    per_second: f64,
) -> (Vec<Duration>, usize, gst::Structure, u64, usize) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let rt = runtime();
    let mut h = harness("");
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    let (caps, frames) = encode_pattern(30, width, height, "snow", "jpegenc quality=60");
    let size = frames.iter().map(|b| b.size() as u64).sum::<u64>() / frames.len() as u64;
    h.set_src_caps(caps);
    let port = port(&h);
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let slow = rt.spawn(timed_viewer(
        port,
        (size as f64 * per_second) as u64,
        stop.clone(),
    ));
    wait_clients(&h, 1);
    let free = rt.spawn(timed_viewer(port, 0, stop.clone()));
    wait_clients(&h, 2);

    let start = Instant::now();
    let mut pushed = Vec::new();
    for n in 0..180u64 {
        let mut b = frames[n as usize % frames.len()].copy();
        b.make_mut().set_pts(gst::ClockTime::from_mseconds(33 * n));
        pushed.push(Instant::now());
        h.push(b).unwrap();
        std::thread::sleep(Duration::from_millis(33 * (n + 1)).saturating_sub(start.elapsed()));
    }
    std::thread::sleep(Duration::from_millis(500));
    let clients = client_stats(&h);
    stop.store(true, Ordering::SeqCst);
    let slow = rt.block_on(slow).unwrap();
    let free = rt.block_on(free).unwrap();

    // After the first two seconds (the window finds the link).
    let mut late: Vec<Duration> = slow
        .iter()
        .filter(|(id, _)| *id >= 60)
        .map(|(id, at)| at.duration_since(pushed[*id as usize]))
        .collect();
    late.sort();
    let slow_stats = clients[0].clone();
    eprintln!(
        "stills of {size} bytes, slow link: {} read of the last 120, render -> read p50 {:?} max {:?}; free: {} of 180; {slow_stats}",
        late.len(),
        late.get(late.len() / 2),
        late.last(),
        free.len(),
    );
    eprintln!(
        "read: {:?}",
        slow.iter()
            .map(|(id, at)| (id, at.duration_since(start).as_millis()))
            .collect::<Vec<_>>()
    );
    let overloads = overloaded_messages(&h).len();
    (late, free.len(), slow_stats, size, overloads)
}

/// Still images on a link slower than the stream: a window of them in flight, paced by the
/// viewer's acks, a newer one replacing the one that waits (docs/protocol.md, "Backpressure"):
/// the slow viewer gets fewer pictures soon after they were made, rather than every picture
/// late, and a viewer on a free link still gets every one.
#[test]
fn stills_on_a_slow_link_come_paced_by_acks_at_a_low_latency() {
    // A link that carries 10 of the 30 pictures a second: one takes 100 ms.
    let (late, free, slow_stats, _, _) = stills_on_two_links(320, 240, 10.0);
    // It gets about what its link carries (40 in 4 s), each soon after it was made: about
    // one picture's time on the link (100 ms), not max-latency's 400 ms.
    assert!(late.len() >= 25, "{} pictures", late.len());
    let p50 = late[late.len() / 2];
    assert!(p50 < Duration::from_millis(250), "p50 {p50:?}");
    assert!(
        slow_stats.get::<f64>("still-window").unwrap() < 3.0,
        "{slow_stats}"
    );
    assert!(
        slow_stats.get::<u64>("frames-dropped").unwrap() > 60,
        "{slow_stats}"
    );
    // The other viewer is not held back.
    assert_eq!(free, 180);
}

/// A still that takes longer than `max-latency` (400 ms) on its link on its own: the viewer
/// cannot have it sooner, and it has not fallen behind (nothing of the stream waits for it but
/// the newest picture): it gets one picture after the other, each as soon as its link carries
/// it, and neither the bus nor its stats say it skipped.
#[test]
fn a_still_longer_than_max_latency_on_its_link_is_no_skip() {
    // A link that carries 1.6 of the 30 pictures a second: one takes 625 ms.
    let (late, free, slow_stats, size, overloads) = stills_on_two_links(640, 480, 1.6);
    assert!(size > 30_000, "a large still: {size} bytes");
    // 4 s of the link: 6 pictures, each read a picture's time (625 ms) after it was made, and
    // at most one more waiting for the one before.
    assert!(late.len() >= 5, "{} pictures", late.len());
    let p50 = late[late.len() / 2];
    assert!(p50 < Duration::from_millis(900), "{late:?}");
    let worst = *late.last().unwrap();
    assert!(worst < Duration::from_millis(1500), "{late:?}");
    assert_eq!(
        slow_stats.get::<u64>("overloads").unwrap(),
        0,
        "{slow_stats}"
    );
    assert_eq!(overloads, 0, "no viewer fell behind");
    assert_eq!(free, 180);
}
