// End-to-end tests of the element on loopback: real encoded buffers from x264enc/jpegenc pushed
// through a gst_check::Harness into rfbsink, and real WebSocket clients (tokio-tungstenite).

use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gstrfbsink::protocol::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

#[test]
fn several_clients_get_identical_frames() {
    let (caps, buffers) = h264(40, 10);
    // The 40 frames are pushed far faster than real time: a queue that holds them all.
    let mut h = harness("client-queue-frames=64");
    h.set_src_caps(caps);
    let rt = runtime();
    let port = port(&h);
    let mut clients: Vec<Client> = rt.block_on(async {
        futures_util::future::join_all((0..3).map(|_| Client::connect(port, "/ws?envelope=binary")))
            .await
    });
    for c in clients.iter_mut() {
        let hello = rt.block_on(c.text());
        assert_eq!(hello["kind"], "hello");
        assert_eq!(hello["envelope"], "binary");
    }
    wait_clients(&h, 3);
    for b in &buffers {
        h.push(b.clone()).unwrap();
    }
    for c in clients.iter_mut() {
        let config = rt.block_on(c.text());
        assert_eq!(config["kind"], "config");
        assert_eq!(config["codec"], "h264");
        assert_eq!(config["format"], "annexb");
        assert!(
            config["codec_string"]
                .as_str()
                .unwrap()
                .starts_with("avc1.42"),
            "{config}"
        );
        assert_eq!(
            (config["width"].as_u64(), config["height"].as_u64()),
            (Some(320), Some(240))
        );
        for (i, b) in buffers.iter().enumerate() {
            let (header, payload) = rt.block_on(c.frame());
            assert_eq!(header.frame_id, i as u64);
            assert_eq!(
                header.key,
                !b.flags().contains(gst::BufferFlags::DELTA_UNIT)
            );
            assert_eq!(
                payload,
                b.map_readable().unwrap().as_slice(),
                "frame {i} differs"
            );
            let pts = b.pts().unwrap().useconds() as i64;
            assert_eq!(header.timestamp_us, pts, "timestamp is the running time");
        }
    }
}

#[test]
fn json_envelope_is_seed_004_pair() {
    let (caps, buffers) = h264(3, 10);
    let mut h = harness("");
    h.set_src_caps(caps);
    let rt = runtime();
    let mut c = rt.block_on(Client::connect(port(&h), "/ws"));
    assert_eq!(rt.block_on(c.text())["envelope"], "json");
    wait_clients(&h, 1);
    for b in &buffers {
        h.push(b.clone()).unwrap();
    }
    assert_eq!(rt.block_on(c.text())["kind"], "config");
    for (i, b) in buffers.iter().enumerate() {
        let header = rt.block_on(c.text());
        let Msg::Binary(payload) = rt.block_on(c.next()) else {
            panic!("payload expected")
        };
        assert_eq!(header["type"], "video");
        assert_eq!(header["channel"], "rfb.main");
        assert_eq!(header["codec"], "h264");
        assert_eq!(header["format"], "annexb");
        assert_eq!(header["frame_id"], i as u64);
        assert_eq!(header["chunk_type"], if i == 0 { "key" } else { "delta" });
        assert_eq!(header["byte_length"], payload.len() as u64);
        assert_eq!(header["timestamp_us"], b.pts().unwrap().useconds());
        assert_eq!(payload, b.map_readable().unwrap().as_slice());
    }
}

#[test]
fn websocket_upgrade_on_root_works() {
    let mut h = harness("");
    let (caps, buffers) = h264(1, 10);
    h.set_src_caps(caps);
    let rt = runtime();
    let mut c = rt.block_on(Client::connect(port(&h), "/?envelope=binary"));
    assert_eq!(rt.block_on(c.text())["kind"], "hello");
    wait_clients(&h, 1);
    h.push(buffers[0].clone()).unwrap();
    assert!(rt.block_on(c.frame()).0.key);
}

#[test]
fn client_that_never_reads_does_not_slow_the_others() {
    let (caps, buffers) = encode_pattern(20, 640, 480, "snow", "jpegenc quality=100");
    let mut h = harness("client-queue-frames=8 client-queue-bytes=4000000");
    h.set_src_caps(caps);
    let rt = runtime();
    let port = port(&h);
    // A raw WebSocket handshake, then nothing is ever read: its socket buffers fill up.
    let stalled = rt.block_on(async {
        let (ws, _) = tokio_tungstenite::connect_async(format!(
            "ws://127.0.0.1:{port}{}",
            with_token("/ws?envelope=binary")
        ))
        .await
        .unwrap();
        ws
    });
    let mut fast = rt.block_on(Client::connect(port, "/ws?envelope=binary"));
    wait_clients(&h, 2);
    let rounds = 500;
    let mut total_bytes = 0usize;
    for i in 0..rounds {
        let b = &buffers[i % buffers.len()];
        total_bytes += b.size();
        let mut b = b.copy();
        b.make_mut()
            .set_pts(gst::ClockTime::from_mseconds(i as u64 * 33));
        // push() returning at all is the point: render() never waits on a client.
        h.push(b).unwrap();
        let (header, _) = rt.block_on(fast.frame());
        assert_eq!(
            header.frame_id, i as u64,
            "the reading client got every frame"
        );
    }
    assert!(
        total_bytes > 20_000_000,
        "enough data to fill any socket buffer: {total_bytes}"
    );
    let all = client_stats(&h);
    let slow = all
        .iter()
        .find(|s| s.get::<u64>("frames-sent").unwrap() < rounds as u64)
        .expect("the stalled client");
    let queued_bytes = slow.get::<u64>("queued-bytes").unwrap();
    let queued_frames = slow.get::<u64>("queued-frames").unwrap();
    assert!(
        queued_bytes <= 4_000_000,
        "queue bytes bounded: {queued_bytes}"
    );
    assert!(queued_frames <= 8, "queue frames bounded: {queued_frames}");
    assert!(slow.get::<u64>("frames-dropped").unwrap() > 100, "{slow}");
    drop(stalled);
}

#[test]
fn slow_h264_client_resumes_at_a_requested_keyframe() {
    // Snow at 20 Mbit/s: ~90 KB a frame, so 30 unread frames (2.7 MB) cannot all sit in the
    // socket, which holds ~0.6 MB ("Backpressure" in docs/protocol.md). 30 frames of the ball
    // (20 KB in all) could: nothing overflowed unless the writer happened to fall behind the
    // pushes, and the test was a race.
    let (caps, buffers) = encode_pattern(
        60,
        320,
        240,
        "snow",
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=1000 bitrate=20000 \
         ! video/x-h264,stream-format=byte-stream,profile=baseline",
    );
    let mut h = harness("client-queue-frames=4 keyframe-request-interval=0");
    h.set_src_caps(caps);
    let rt = runtime();
    let mut c = rt.block_on(Client::connect_stalled(port(&h), "/ws?envelope=binary"));
    wait_clients(&h, 1);
    // The client reads nothing while 30 frames go by: its queue (4 frames) overflows.
    h.push(buffers[0].clone()).unwrap();
    while h.try_pull_upstream_event().is_some() {}
    for b in &buffers[1..30] {
        h.push(b.clone()).unwrap();
    }
    let wanted = (0..100).find_map(|_| {
        let ev = h.try_pull_upstream_event();
        if ev.is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
        ev
    });
    let ev = wanted.expect("a keyframe request went upstream");
    let fku = gst_video::UpstreamForceKeyUnitEvent::parse(&ev).expect("a force-key-unit event");
    assert!(fku.all_headers);
    // Now it reads: what it got is decodable: frames in order, and after a gap only a keyframe.
    c.resume();
    let mut got = Vec::new();
    let next = |c: &mut Client| {
        rt.block_on(async { tokio::time::timeout(Duration::from_millis(300), c.frame()).await })
    };
    while let Ok((hd, _)) = next(&mut c) {
        got.push((hd.frame_id, hd.key));
    }
    assert!(got.len() < 30, "frames were dropped: {got:?}");
    assert!(
        got.first().is_none_or(|f| f.1),
        "starts at a keyframe: {got:?}"
    );
    for w in got.windows(2) {
        assert!(w[1].0 == w[0].0 + 1 || w[1].1, "delta after a gap: {got:?}");
    }
    // An encoder honouring the request sends a keyframe; the client resumes there.
    let mut key = buffers[30].copy();
    key.make_mut().unset_flags(gst::BufferFlags::DELTA_UNIT);
    let (_, idr) = h264(1, 1000);
    let mut idr = idr[0].copy();
    idr.make_mut().set_pts(key.pts());
    h.push(idr).unwrap();
    let (hd, _) = rt.block_on(c.frame());
    assert!(hd.key);
    assert_eq!(hd.frame_id, 30);
}

#[test]
fn late_joiner_gets_the_current_picture() {
    let (caps, buffers) = h264(15, 10);
    let mut h = harness("");
    h.set_src_caps(caps);
    for b in &buffers {
        h.push(b.clone()).unwrap();
    }
    let rt = runtime();
    let mut c = rt.block_on(Client::connect(port(&h), "/ws?envelope=binary"));
    assert_eq!(rt.block_on(c.text())["kind"], "hello");
    assert_eq!(rt.block_on(c.text())["kind"], "config");
    // The cached group of pictures: keyframe 10 and the deltas since.
    for id in 10..15u64 {
        let (hd, payload) = rt.block_on(c.frame());
        assert_eq!((hd.frame_id, hd.key), (id, id == 10));
        assert_eq!(
            payload,
            buffers[id as usize].map_readable().unwrap().as_slice()
        );
    }
    assert!(h
        .try_pull_upstream_event()
        .is_none_or(|e| e.type_() != gst::EventType::CustomUpstream));
}

#[test]
fn late_joiner_without_gop_cache_gets_the_next_keyframe() {
    let (caps, buffers) = h264(15, 10);
    let mut h = harness("gop-cache=false keyframe-request-interval=0");
    h.set_src_caps(caps);
    for b in &buffers[..5] {
        h.push(b.clone()).unwrap();
    }
    while h.try_pull_upstream_event().is_some() {}
    let rt = runtime();
    let mut c = rt.block_on(Client::connect(port(&h), "/ws?envelope=binary"));
    wait_clients(&h, 1);
    let ev = (0..100)
        .find_map(|_| {
            let e = h.try_pull_upstream_event();
            if e.is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            e
        })
        .expect("a keyframe was requested for the late joiner");
    assert!(gst_video::UpstreamForceKeyUnitEvent::parse(&ev).is_ok());
    for b in &buffers[5..] {
        h.push(b.clone()).unwrap();
    }
    let (hd, _) = rt.block_on(c.frame());
    assert_eq!((hd.frame_id, hd.key), (10, true));
}

#[test]
fn caps_change_sends_new_config_then_keyframe() {
    let (caps_a, a) = h264(3, 10);
    let (caps_b, b) = encode(
        3,
        640,
        360,
        "x264enc tune=zerolatency ! video/x-h264,stream-format=byte-stream,profile=high",
    );
    let mut h = harness("");
    h.set_src_caps(caps_a);
    let rt = runtime();
    let mut c = rt.block_on(Client::connect(port(&h), "/ws?envelope=binary"));
    wait_clients(&h, 1);
    for buf in &a {
        h.push(buf.clone()).unwrap();
    }
    h.set_src_caps(caps_b);
    for buf in &b {
        let pts = buf.pts().map(|p| p + gst::ClockTime::SECOND);
        let mut buf = buf.copy();
        buf.make_mut().set_pts(pts);
        h.push(buf).unwrap();
    }
    let mut configs = Vec::new();
    let mut frames = Vec::new();
    while frames.len() < 6 {
        match rt.block_on(c.next()) {
            Msg::Text(v) if v["kind"] == "config" => configs.push(v),
            Msg::Binary(m) => frames.push(FrameHeader::decode_binary(&m).unwrap().0),
            _ => {}
        }
    }
    assert_eq!(configs.len(), 2, "{configs:?}");
    assert_eq!(configs[1]["width"], 640);
    assert_eq!(configs[1]["height"], 360);
    assert!(
        configs[1]["codec_string"]
            .as_str()
            .unwrap()
            .starts_with("avc1.64"),
        "{configs:?}"
    );
    assert_ne!(configs[0]["config_id"], configs[1]["config_id"]);
    assert_eq!(
        frames[3].config_id as u64,
        configs[1]["config_id"].as_u64().unwrap()
    );
    assert!(
        frames[3].key,
        "the first frame of the new config is a keyframe"
    );
}

#[test]
fn avc_stream_format_carries_description() {
    let (caps, buffers) = encode(
        2,
        320,
        240,
        "x264enc tune=zerolatency ! video/x-h264,stream-format=avc,profile=main",
    );
    let codec_data = caps
        .structure(0)
        .unwrap()
        .get::<gst::Buffer>("codec_data")
        .unwrap();
    let mut h = harness("");
    h.set_src_caps(caps);
    let rt = runtime();
    let mut c = rt.block_on(Client::connect(port(&h), "/ws?envelope=binary"));
    wait_clients(&h, 1);
    h.push(buffers[0].clone()).unwrap();
    rt.block_on(c.text());
    let config = rt.block_on(c.text());
    assert_eq!(config["format"], "avc");
    assert!(
        config["codec_string"]
            .as_str()
            .unwrap()
            .starts_with("avc1.4D"),
        "{config}"
    );
    let expected = gstrfbsink::protocol::base64(codec_data.map_readable().unwrap().as_slice());
    assert_eq!(config["description"], expected.as_str());
}

#[test]
fn misbehaving_clients_are_closed_with_a_reason_and_others_carry_on() {
    let (caps, buffers) = h264(4, 10);
    let mut h = harness("");
    h.set_src_caps(caps);
    let rt = runtime();
    let port = port(&h);
    let mut good = rt.block_on(Client::connect(port, "/ws?envelope=binary"));
    let cases: [(&str, Option<Message>, u16, &str); 4] = [
        (
            "/ws",
            Some(Message::text("this is not json")),
            1007,
            "not JSON",
        ),
        (
            "/ws",
            Some(Message::text(r#"{"kind":"ack"}"#)),
            1007,
            "channel",
        ),
        (
            "/ws",
            Some(Message::binary(vec![1u8, 2, 3])),
            1003,
            "binary",
        ),
        (
            "/ws",
            Some(Message::text("x".repeat(100_000))),
            1009,
            "too big",
        ),
    ];
    for (path, msg, code, reason) in cases {
        let mut bad = rt.block_on(Client::connect(port, path));
        bad.tx.send(msg.unwrap()).unwrap();
        let (got_code, got_reason) = rt.block_on(bad.closed());
        assert_eq!(got_code, code, "{reason}: {got_reason}");
        assert!(
            got_reason.contains(reason),
            "{got_reason:?} should mention {reason:?}"
        );
    }
    let mut bad = rt.block_on(Client::connect(port, "/ws?envelope=xml"));
    let (code, reason) = rt.block_on(bad.closed());
    assert_eq!(code, u16::from(CloseCode::Policy));
    assert!(reason.contains("xml"));
    // A client that disappears mid-stream.
    let gone = rt.block_on(Client::connect(port, "/ws"));
    drop(gone);

    wait_clients(&h, 1);
    for b in &buffers {
        h.push(b.clone()).unwrap();
    }
    for i in 0..4 {
        assert_eq!(rt.block_on(good.frame()).0.frame_id, i);
    }
    // A valid keyframe request and ack are accepted (the connection stays open).
    good.send_text(r#"{"channel":"rfb.stats","kind":"ack","frame_id":3,"decode_queue_size":0}"#);
    good.send_text(r#"{"channel":"rfb.control","kind":"keyframe-request","reason":"test"}"#);
    good.send_text(r#"{"channel":"rfb.future","kind":"whatever"}"#);
    let deadline = std::time::Instant::now() + TIMEOUT;
    while client_stats(&h)[0].get::<u64>("acks").unwrap() == 0 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(client_stats(&h)[0].get::<u64>("latency-p50-us").unwrap() > 0);
    assert_eq!(stats(&h).get::<u32>("clients").unwrap(), 1);
}

#[test]
fn max_clients_refuses_with_try_again_later() {
    let h = harness("max-clients=1");
    let rt = runtime();
    let port = port(&h);
    let mut first = rt.block_on(Client::connect(port, "/ws"));
    assert_eq!(rt.block_on(first.text())["kind"], "hello");
    let mut second = rt.block_on(Client::connect(port, "/ws"));
    let (code, reason) = rt.block_on(second.closed());
    assert_eq!(code, 1013);
    assert!(reason.contains("max-clients=1"), "{reason}");
}

#[test]
fn eos_is_announced_and_stop_frees_the_port() {
    let (caps, buffers) = h264(2, 10);
    let mut h = harness("");
    h.set_src_caps(caps);
    let rt = runtime();
    let port = port(&h);
    let mut c = rt.block_on(Client::connect(port, "/ws?envelope=binary"));
    wait_clients(&h, 1);
    for b in &buffers {
        h.push(b.clone()).unwrap();
    }
    h.push_event(gst::event::Eos::new());
    loop {
        if let Msg::Text(v) = rt.block_on(c.next()) {
            if v["kind"] == "eos" {
                break;
            }
        }
    }
    let element = h.element().unwrap();
    element.set_state(gst::State::Null).unwrap();
    let (code, reason) = rt.block_on(c.closed());
    assert_eq!((code, reason.as_str()), (1001, "server stopping"));
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free after stop");

    // Restarting on the same port works.
    element.set_property("port", port as u32);
    element.set_state(gst::State::Playing).unwrap();
    assert_eq!(element.property::<u32>("bound-port"), port as u32);
    let mut again = rt.block_on(Client::connect(port, "/ws"));
    assert_eq!(rt.block_on(again.text())["kind"], "hello");
    element.set_state(gst::State::Null).unwrap();
}

#[test]
fn busy_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let error = start_failure(&format!("videotestsrc ! jpegenc ! rfbsink port={port}"));
    assert!(error.matches(gst::ResourceError::Busy), "{error}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("Cannot listen on 127.0.0.1:{port}: ")),
        "{error}"
    );
}

#[test]
fn an_unresolvable_address_is_a_settings_error() {
    let error =
        start_failure("videotestsrc ! jpegenc ! rfbsink address=no.such.host.invalid port=0");
    assert!(error.matches(gst::ResourceError::Settings), "{error}");
    assert!(
        error
            .to_string()
            .contains("Invalid address 'no.such.host.invalid'"),
        "{error}"
    );
}

#[test]
fn a_bad_webrtc_port_range_is_a_settings_error_that_shows_the_form() {
    for range in ["40100-40000", "40000", "0-10", "a-b", "40000-70000"] {
        let error = start_failure(&format!(
            "videotestsrc ! jpegenc ! rfbsink port=0 webrtc-ports={range}"
        ));
        assert!(error.matches(gst::ResourceError::Settings), "{error}");
        assert!(
            error.to_string().contains(&format!(
                "webrtc-ports is \"{range}\": give the first and last UDP port, e.g. 40000-40099"
            )),
            "{error}"
        );
    }
}

#[test]
fn unsupported_caps_fail_negotiation() {
    init();
    let pipeline =
        gst::parse::launch("videotestsrc num-buffers=1 ! video/x-raw,format=I420 ! rfbsink port=0");
    // Linking a raw format rfbsink does not take (YUV: the lossless path is RGB and gray) fails
    // at once: its template does not list it.
    assert!(pipeline.is_err(), "I420 must not link to rfbsink");
    let mut h = harness("");
    h.set_src_caps(
        gst::Caps::builder("video/x-h264")
            .field("stream-format", "avc")
            .field("alignment", "au")
            .build(),
    );
    // avc without codec_data cannot be streamed: the element says so.
    let b = gst::Buffer::from_slice(vec![0u8; 16]);
    assert!(h.push(b).is_err());
}

#[test]
fn element_is_documented() {
    init();
    let factory = gst::ElementFactory::find("rfbsink").unwrap();
    assert_eq!(factory.metadata("klass"), Some("Sink/Network"));
    assert!(factory
        .metadata("description")
        .unwrap()
        .contains("gst-launch-1.0"));
    let element = factory.create().build().unwrap();
    for name in [
        "address",
        "port",
        "bound-port",
        "max-clients",
        "gop-cache",
        "client-queue-bytes",
        "client-queue-frames",
        "keyframe-request-interval",
        "stats",
        "url",
        "view-url",
        "auth",
        "token",
        "view-token",
        "allowed-origins",
        "https",
        "client-timeout",
        "gray-window",
        "refine-delay",
        "h264-high-444",
    ] {
        let pspec = element
            .find_property(name)
            .unwrap_or_else(|| panic!("property {name}"));
        assert!(
            !pspec.blurb().unwrap_or_default().is_empty(),
            "{name} has a blurb"
        );
    }
    assert_eq!(element.property::<String>("address"), "127.0.0.1");
    assert_eq!(element.property::<u32>("port"), 8080);
    // Safe by default: a token is required, no other origin is allowed, no TLS needed locally.
    assert_eq!(
        element.property_value("auth").serialize().unwrap().as_str(),
        "token"
    );
    assert_eq!(element.property::<Option<String>>("allowed-origins"), None);
    assert!(!element.property::<bool>("h264-high-444"));
    // No processing deadline: it would delay every frame behind a queue (tee, leaky queue).
    assert_eq!(
        element.property::<u64>("processing-deadline"),
        0,
        "processing-deadline"
    );
    let refine = element
        .pad_template("refine")
        .expect("a refine request pad");
    assert_eq!(refine.presence(), gst::PadPresence::Request);
}

#[test]
fn every_writable_property_round_trips() {
    init();
    let element = gst::ElementFactory::make("rfbsink").build().unwrap();
    for pspec in element.list_properties() {
        if !pspec.flags().contains(glib::ParamFlags::WRITABLE)
            || pspec.owner_type() != element.type_()
        {
            continue;
        }
        let value = pspec.default_value().clone();
        element.set_property_from_value(pspec.name(), &value);
        let back = element.property_value(pspec.name());
        assert_eq!(
            back.serialize().ok(),
            value.serialize().ok(),
            "property {}",
            pspec.name()
        );
    }
}

#[test]
fn png_frames_flagged_as_deltas_are_still_keyframes() {
    // pngenc (like webpenc) marks its buffers DELTA_UNIT; every still image decodes on its own.
    let (caps, buffers) = encode(3, 160, 120, "pngenc");
    assert!(
        buffers
            .iter()
            .any(|b| b.flags().contains(gst::BufferFlags::DELTA_UNIT)),
        "pngenc's flags changed"
    );
    let mut h = harness("");
    h.set_src_caps(caps);
    let rt = runtime();
    let mut c = rt.block_on(Client::connect(port(&h), "/ws?envelope=binary"));
    wait_clients(&h, 1);
    // One at a time: a still that waits to go is replaced by a newer one (latest wins).
    for (i, b) in buffers.iter().enumerate() {
        h.push(b.clone()).unwrap();
        let (hd, payload) = rt.block_on(c.frame());
        assert_eq!((hd.frame_id, hd.key), (i as u64, true));
        assert_eq!(&payload[1..4], b"PNG");
    }
}

#[test]
fn unstreamable_buffers_are_skipped_not_fatal() {
    let (caps, buffers) = encode(3, 320, 240, "jpegenc");
    let mut h = harness("");
    h.set_src_caps(caps);
    let rt = runtime();
    let mut c = rt.block_on(Client::connect(port(&h), "/ws?envelope=binary"));
    wait_clients(&h, 1);
    h.push(buffers[0].clone()).unwrap();
    let (first, _) = rt.block_on(c.frame());
    // An empty buffer and garbage where a JPEG should be: skipped, the pipeline goes on.
    assert_eq!(h.push(gst::Buffer::new()), Ok(gst::FlowSuccess::Ok));
    assert_eq!(
        h.push(gst::Buffer::from_slice(b"garbage, not a JPEG at all")),
        Ok(gst::FlowSuccess::Ok)
    );
    h.push(buffers[1].clone()).unwrap();
    let (next, payload) = rt.block_on(c.frame());
    assert_eq!(
        next.frame_id,
        first.frame_id + 1,
        "skipped buffers take no frame id"
    );
    assert_eq!(payload, buffers[1].map_readable().unwrap().as_slice());
    assert_eq!(stats(&h).get::<u64>("frames-skipped").unwrap(), 2);
}

#[test]
fn caps_over_16384_pixels_are_refused() {
    let (_, buffers) = encode(1, 320, 240, "jpegenc");
    let mut h = harness("");
    h.set_src_caps(
        gst::Caps::builder("image/jpeg")
            .field("width", 20000i32)
            .field("height", 240i32)
            .build(),
    );
    assert_eq!(
        h.push(buffers[0].clone()),
        Err(gst::FlowError::NotNegotiated)
    );
}

#[test]
fn a_flushing_seek_restarts_clients_at_a_keyframe() {
    let (caps, buffers) = h264(20, 10);
    let mut h = harness("");
    h.set_src_caps(caps);
    let rt = runtime();
    let mut c = rt.block_on(Client::connect(port(&h), "/ws?envelope=binary"));
    wait_clients(&h, 1);
    for b in &buffers[..5] {
        h.push(b.clone()).unwrap();
    }
    for want in 0..5 {
        assert_eq!(rt.block_on(c.frame()).0.frame_id, want);
    }
    while h.try_pull_upstream_event().is_some() {}
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
        gst::ClockTime,
    >::new()));
    // A keyframe is asked for upstream.
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(e) = h.try_pull_upstream_event() {
            if gst_video::UpstreamForceKeyUnitEvent::parse(&e).is_ok() {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no keyframe request after the flush"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Deltas of the old position are not sent; the client restarts at the next keyframe.
    for b in &buffers[5..11] {
        h.push(b.clone()).unwrap();
    }
    let (header, _) = rt.block_on(c.frame());
    assert!(header.key, "the first frame after the flush is a keyframe");
    assert_eq!(header.frame_id, 10);
}

/// Runs `line` (rfbsink named `sink`, videoconvert named `conv`) to its end; returns the format
/// videoconvert negotiated and the H.264 profile rfbsink got.
fn negotiated(line: &str) -> (String, String) {
    init();
    let pipeline = gst::parse::launch(line)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(20),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("the pipeline ends");
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
    let field = |element: &str, name: &str| {
        let caps = pipeline
            .by_name(element)
            .unwrap()
            .static_pad(if element == "conv" { "src" } else { "sink" })
            .unwrap()
            .current_caps()
            .unwrap();
        caps.structure(0).unwrap().get::<String>(name).unwrap()
    };
    let result = (field("conv", "format"), field("sink", "profile"));
    pipeline.set_state(gst::State::Null).unwrap();
    result
}

#[test]
fn an_encoder_linked_to_rfbsink_negotiates_what_browsers_decode() {
    let line = |props: &str| {
        format!(
            "videotestsrc num-buffers=2 ! video/x-raw,width=64,height=64 ! videoconvert name=conv \
             ! x264enc ! rfbsink name=sink port=0 sync=false {props}"
        )
    };
    // Left free (an RGB source), x264enc would pick High 4:4:4 10-bit; rfbsink's caps steer it.
    assert_eq!(negotiated(&line("")), ("I420".into(), "high".into()));
    let (_, profile) = negotiated(&line("h264-high-444=true"));
    assert_eq!(profile, "high-4:4:4");
}

#[test]
fn a_refused_h264_profile_is_explained_with_the_fix() {
    init();
    let pipeline = gst::parse::launch(
        "appsrc name=src caps=video/x-h264,stream-format=byte-stream,alignment=au,profile=high-4:4:4 \
         ! rfbsink port=0",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let _ = src.push_buffer(gst::Buffer::from_slice(vec![0u8, 0, 0, 1, 0x65]));
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Warning],
        )
        .expect("a warning that says why");
    pipeline.set_state(gst::State::Null).unwrap();
    let gst::MessageView::Warning(w) = msg.view() else {
        unreachable!()
    };
    let text = w.error().to_string();
    assert!(
        text.contains("high-4:4:4")
            && text.contains("format=I420")
            && text.contains("h264-high-444=true"),
        "{text}"
    );
}
