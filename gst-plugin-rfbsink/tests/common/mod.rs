// Helpers shared by the loopback tests: real encoded buffers, the element in a Harness, stats.
#![allow(dead_code)]

use std::sync::Once;
use std::time::Duration;

use gst::prelude::*;

static INIT: Once = Once::new();

pub fn init() {
    INIT.call_once(|| {
        gst::init().unwrap();
        gstrfbsink::plugin_register_static().unwrap();
    });
}

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The tokens the harness sets, so that clients can present them (the element requires one).
pub const TEST_TOKEN: &str = "test-control-token";
pub const TEST_VIEW_TOKEN: &str = "test-view-token";

/// `path` (with or without a query) with the control token added to its query.
pub fn with_token(path: &str) -> String {
    with_this_token(path, TEST_TOKEN)
}

pub fn with_this_token(path: &str, token: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}rfb_token={token}")
}

/// Encodes `n` frames of videotestsrc with `enc` (a gst-launch fragment) into buffers and caps.
pub fn encode(n: u32, width: u32, height: u32, enc: &str) -> (gst::Caps, Vec<gst::Buffer>) {
    encode_pattern(n, width, height, "ball", enc)
}

pub fn encode_pattern(
    n: u32,
    width: u32,
    height: u32,
    pattern: &str,
    enc: &str,
) -> (gst::Caps, Vec<gst::Buffer>) {
    init();
    let line = format!(
        "videotestsrc num-buffers={n} pattern={pattern} ! video/x-raw,width={width},height={height},framerate=30/1 \
         ! {enc} ! appsink name=sink sync=false"
    );
    let pipeline = gst::parse::launch(&line)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut buffers = Vec::new();
    let mut caps = None;
    while let Ok(sample) = sink.pull_sample() {
        caps.get_or_insert_with(|| sample.caps().unwrap().to_owned());
        buffers.push(sample.buffer_owned().unwrap());
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(buffers.len(), n as usize, "{line}");
    (caps.unwrap(), buffers)
}

pub fn h264(n: u32, key_int: u32) -> (gst::Caps, Vec<gst::Buffer>) {
    encode(
        n,
        320,
        240,
        &format!("x264enc tune=zerolatency speed-preset=ultrafast key-int-max={key_int} ! video/x-h264,stream-format=byte-stream,profile=baseline"),
    )
}

/// rfbsink on a free port, with `props` ("name=value ...") set before it starts.
pub fn harness(props: &str) -> gst_check::Harness {
    init();
    let element = gst::ElementFactory::make("rfbsink")
        .property("port", 0u32)
        .property("sync", false)
        .property("token", TEST_TOKEN)
        .property("view-token", TEST_VIEW_TOKEN)
        .build()
        .unwrap();
    for prop in props.split_whitespace() {
        let (name, value) = prop.split_once('=').unwrap();
        element.set_property_from_str(name, value);
    }
    let mut h = gst_check::Harness::with_element(&element, Some("sink"), None);
    h.play();
    h
}

pub fn port(h: &gst_check::Harness) -> u16 {
    let port: u32 = h.element().unwrap().property("bound-port");
    assert_ne!(port, 0);
    port as u16
}

pub fn stats(h: &gst_check::Harness) -> gst::Structure {
    h.element().unwrap().property::<gst::Structure>("stats")
}

pub fn client_stats(h: &gst_check::Harness) -> Vec<gst::Structure> {
    stats(h)
        .get::<gst::Array>("client-stats")
        .unwrap()
        .iter()
        .map(|v| v.get::<gst::Structure>().unwrap())
        .collect()
}

/// Waits until the element counts `n` clients.
pub fn wait_clients(h: &gst_check::Harness, n: u32) {
    let deadline = std::time::Instant::now() + TIMEOUT;
    while stats(h).get::<u32>("clients").unwrap() != n {
        assert!(
            std::time::Instant::now() < deadline,
            "never saw {n} clients"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts `line`, which must fail to start; returns the error message the element posted.
pub fn start_error(line: &str) -> String {
    init();
    let pipeline = gst::parse::launch(line).unwrap();
    let bus = pipeline.bus().unwrap();
    assert!(
        pipeline.set_state(gst::State::Playing).is_err(),
        "{line} started"
    );
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])
        .expect("an error message on the bus");
    pipeline.set_state(gst::State::Null).unwrap();
    let gst::MessageView::Error(err) = msg.view() else {
        unreachable!()
    };
    err.error().to_string()
}
