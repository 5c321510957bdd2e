// SPDX-License-Identifier: MPL-2.0

//! Renditions (docs/protocol.md, "Renditions") with real encoders: two encodings of one source,
//! a viewer on a slow link moved to the small one at its keyframe while a viewer on a free link
//! keeps the large one, and back up when its link frees.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use gst::prelude::*;

/// Noise at 320x240 (x264enc spends its 1500 kbit/s) and at 160x120 on `rendition_1` (150
/// kbit/s), playing: the pipeline, the sink and its port.
fn two_renditions(props: &str) -> (gst::Pipeline, gst::Element, u16) {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true pattern=snow ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! tee name=t \
         t. ! queue ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=1500 key-int-max=30 \
            ! sink.sink \
         t. ! queue ! videoscale ! video/x-raw,width=160,height=120 \
            ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=150 key-int-max=30 \
            ! sink.rendition_1 \
         rfbsink name=sink port=0 token={TEST_TOKEN} {props}"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline.by_name("sink").unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let port = sink.property::<u32>("bound-port") as u16;
    (pipeline, sink, port)
}

fn rendition(h: &gstrfbsink::protocol::FrameHeader) -> u32 {
    h.config_id >> 24
}

/// Frames seen in the last `window`, counted as they arrive: (total before, then after).
fn count_over(seen: &Seen, window: Duration) -> Vec<gstrfbsink::protocol::FrameHeader> {
    let before = seen.lock().unwrap().len();
    std::thread::sleep(window);
    seen.lock().unwrap()[before..].to_vec()
}

#[test]
fn a_slow_viewer_moves_to_the_small_rendition_and_back_while_a_fast_one_keeps_the_large() {
    init();
    let (pipeline, sink, port) = two_renditions("");
    let stop = Arc::new(AtomicBool::new(false));
    let (fast, slow): (Seen, Seen) = (Arc::default(), Arc::default());
    // A 320 kbit/s link: under the large rendition's 1500, over the small one's 150.
    let slow_rate = Arc::new(AtomicU64::new(40_000));
    let rt = runtime();
    let viewers = [
        rt.spawn(slow_viewer(
            port,
            Arc::new(AtomicU64::new(0)),
            stop.clone(),
            Some(fast.clone()),
        )),
        rt.spawn(slow_viewer(
            port,
            slow_rate.clone(),
            stop.clone(),
            Some(slow.clone()),
        )),
    ];

    let on = |seen: &Seen, r: u32| {
        seen.lock()
            .unwrap()
            .last()
            .is_some_and(|h| rendition(h) == r)
    };
    let started = Instant::now();
    assert!(
        wait_until(Duration::from_secs(20), || on(&slow, 1)),
        "the slow viewer is still on the large rendition"
    );
    let moved_after = started.elapsed();
    // It got there at a keyframe of the small rendition.
    {
        let slow = slow.lock().unwrap();
        let first = slow.iter().position(|h| rendition(h) == 1).unwrap();
        assert!(slow[first].key, "the switch starts at a keyframe");
    }
    // On it, the slow viewer sees the stream's frame rate again (a try upward may cost a few).
    let got = count_over(&slow, Duration::from_secs(3));
    let small = got.iter().filter(|h| rendition(h) == 1).count();
    assert!(
        small >= 60,
        "the slow viewer got {small} small frames in 3 s"
    );
    // The fast viewer was never moved, and never starved.
    let got = count_over(&fast, Duration::from_secs(3));
    assert!(
        got.len() >= 75,
        "the fast viewer got {} frames in 3 s",
        got.len()
    );
    assert!(fast.lock().unwrap().iter().all(|h| rendition(h) == 0));

    // The stats say who is where.
    let stats = sink.property::<gst::Structure>("stats");
    let renditions = stats.get::<gst::Array>("renditions").unwrap();
    let widths: Vec<(u32, i32, u32)> = renditions
        .iter()
        .map(|v| {
            let s = v.get::<gst::Structure>().unwrap();
            (
                s.get::<u32>("id").unwrap(),
                s.get::<u32>("width").unwrap() as i32,
                s.get::<u32>("viewers").unwrap(),
            )
        })
        .collect();
    assert_eq!(widths, [(0, 320, 1), (1, 160, 1)], "{stats}");
    let clients = stats.get::<gst::Array>("client-stats").unwrap();
    let mut placed: Vec<u32> = clients
        .iter()
        .map(|c| {
            c.get::<gst::Structure>()
                .unwrap()
                .get::<u32>("rendition")
                .unwrap()
        })
        .collect();
    placed.sort();
    assert_eq!(placed, [0, 1], "one viewer on each: {stats}");

    // The link frees: the slow viewer tries upward and stays there.
    slow_rate.store(0, Ordering::SeqCst);
    let freed = Instant::now();
    assert!(
        // A link that queued is tried again after 10 s, a failed try doubles that (ladder.rs).
        wait_until(Duration::from_secs(75), || {
            on(&slow, 0) && {
                std::thread::sleep(Duration::from_secs(2));
                on(&slow, 0)
            }
        }),
        "the freed viewer stays on the small rendition"
    );
    println!(
        "moved down {:.1} s after joining; back up {:.1} s after the link freed",
        moved_after.as_secs_f64(),
        freed.elapsed().as_secs_f64()
    );
    stop.store(true, Ordering::SeqCst);
    for v in viewers {
        let _ = rt.block_on(v);
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn a_viewer_whose_page_measured_a_slow_link_starts_on_the_rendition_it_fits() {
    init();
    let (pipeline, _sink, port) = two_renditions("");
    // A while playing: both renditions' rates are known.
    std::thread::sleep(Duration::from_secs(2));
    let rt = runtime();
    let first = |path: &'static str| {
        rt.block_on(async move {
            let mut c = Client::connect(port, path).await;
            let (h, _) = tokio::time::timeout(Duration::from_secs(10), c.frame())
                .await
                .expect("a frame");
            h
        })
    };
    // 400 kbit/s: under the large rendition's 1500, over the small one's 150.
    let slow = first("/ws?envelope=binary&downlink=400");
    assert_eq!(rendition(&slow), 1, "{slow:?}");
    assert!(slow.key, "its group of pictures, from its keyframe");
    let fast = first("/ws?envelope=binary&downlink=20000");
    assert_eq!(rendition(&fast), 0, "{fast:?}");
    for path in ["/ws?envelope=binary", "/ws?envelope=binary&downlink=slow"] {
        let h = first(path);
        assert_eq!(rendition(&h), 0, "{path}: {h:?}");
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn bad_rendition_pads_are_refused_with_a_reason() {
    init();
    let sink = gst::ElementFactory::make("rfbsink").build().unwrap();
    assert!(
        sink.request_pad_simple("rendition_0").is_none(),
        "0 is the sink pad"
    );
    assert!(
        sink.request_pad_simple("rendition_9").is_none(),
        "at most 8"
    );
    let one = sink.request_pad_simple("rendition_1").unwrap();
    let next = sink.request_pad_simple("rendition_%u").unwrap();
    assert_eq!(next.name(), "rendition_2");
    sink.release_request_pad(&one);
    assert!(sink.static_pad("rendition_1").is_none());

    // Raw video is the sink pad's (lossless) only: a rendition pad does not link to it.
    let raw = gst::Caps::builder("video/x-raw").build();
    let template = sink.pad_template("rendition_%u").unwrap().caps().clone();
    assert!(!template.can_intersect(&raw), "{template}");
    assert!(template.can_intersect(&gst::Caps::builder("video/x-vp8").build()));
}
