// The audio pad (docs/protocol.md, "Audio"): Opus packets through a harness on rfbsink's `audio`
// request pad, a real WebSocket client that asks for sound, and the checks a broken packet meets.

use gst::prelude::*;

use crate::common::*;

/// rfbsink with only its audio pad fed (sound alone: nothing on the sink pad).
fn audio_harness() -> gst_check::Harness {
    init();
    let element = gst::ElementFactory::make("rfbsink")
        .property("port", 0u32)
        .property("token", TEST_TOKEN)
        .build()
        .unwrap();
    let mut h = gst_check::Harness::with_element(&element, Some("audio"), None);
    h.set_src_caps_str("audio/x-opus,channel-mapping-family=0,channels=2,rate=48000");
    h.play();
    h
}

fn packet(data: &[u8], pts_ms: u64) -> gst::Buffer {
    let mut b = gst::Buffer::from_slice(data.to_vec());
    b.get_mut()
        .unwrap()
        .set_pts(gst::ClockTime::from_mseconds(pts_ms));
    b
}

/// The next audio packet (`RA`): its sequence number, timestamp and payload.
async fn audio(c: &mut Client) -> (u64, i64, Vec<u8>) {
    loop {
        match c.next().await {
            Msg::Binary(b) => {
                assert_eq!(&b[0..4], b"RA\x01\x00", "an audio packet");
                let seq = u64::from_le_bytes(b[8..16].try_into().unwrap());
                let ts = i64::from_le_bytes(b[16..24].try_into().unwrap());
                return (seq, ts, b[24..].to_vec());
            }
            Msg::Text(_) => continue,
            Msg::Closed(c) => panic!("closed: {c:?}"),
        }
    }
}

#[test]
fn sound_alone_reaches_those_who_ask_and_a_broken_packet_is_skipped() {
    let mut h = audio_harness();
    let rt = runtime();
    let port = port(&h);
    let mut listener = rt.block_on(Client::connect(port, "/ws?envelope=binary&audio=1"));
    let mut deaf = rt.block_on(Client::connect(port, "/ws?envelope=binary"));
    assert_eq!(rt.block_on(listener.text())["kind"], "hello");
    assert_eq!(rt.block_on(deaf.text())["kind"], "hello");
    wait_clients(&h, 2);

    // CELT fullband 20 ms: a TOC byte and a frame; then a code-3 packet that claims no frames
    // (RFC 6716 3.4 R5: broken); then another good one.
    let good = [0xfc, 0x01, 0x02, 0x03];
    h.push(packet(&good, 0)).unwrap();
    assert_eq!(
        h.push(packet(&[0xfb, 0x00], 20)),
        Ok(gst::FlowSuccess::Ok),
        "a broken packet is not the end of the stream"
    );
    h.push(packet(&good, 40)).unwrap();

    let config = rt.block_on(listener.text());
    assert_eq!(config["kind"], "audio-config", "{config}");
    assert_eq!(config["codec"], "opus");
    assert_eq!(config["channels"], 2);
    assert_eq!(config["sample_rate"], 48000);
    let first = rt.block_on(audio(&mut listener));
    let second = rt.block_on(audio(&mut listener));
    assert_eq!((first.0, first.1, first.2.as_slice()), (0, 0, &good[..]));
    assert_eq!(
        (second.0, second.1),
        (1, 40_000),
        "the broken one took no number"
    );

    let s = stats(&h);
    assert_eq!(s.get::<u64>("audio-packets").unwrap(), 2);
    assert_eq!(s.get::<u64>("audio-skipped").unwrap(), 1);

    // The end of the sound is the end of the stream when it is all there is.
    h.push_event(gst::event::Eos::new());
    let eos = rt.block_on(listener.text());
    assert_eq!(eos["kind"], "eos", "{eos}");
    // The client that did not ask for sound got none of it.
    loop {
        match rt.block_on(deaf.next()) {
            Msg::Binary(b) => panic!("a client that did not ask for sound got {:?}", &b[..2]),
            Msg::Text(v) if v["kind"] == "eos" => break,
            Msg::Text(v) => assert_ne!(v["kind"], "audio-config"),
            Msg::Closed(c) => panic!("closed: {c:?}"),
        }
    }
    let clients = client_stats(&h);
    let sent: Vec<u64> = clients
        .iter()
        .map(|c| c.get::<u64>("audio-sent").unwrap())
        .collect();
    assert!(sent.contains(&2) && sent.contains(&0), "{sent:?}");
}

#[test]
fn caps_that_are_not_opus_are_refused_with_the_fix() {
    init();
    let pipeline = gst::parse::launch(
        "rfbsink name=s port=0 token=t audiotestsrc num-buffers=5 ! audio/x-raw,channels=2 ! s.audio",
    );
    // A raw audio source cannot even link to the audio pad: gst-launch says so at once.
    let err = pipeline.expect_err("raw audio does not link to rfbsink");
    assert!(err.to_string().contains("link"), "{err}");
    let element = gst::ElementFactory::make("rfbsink").build().unwrap();
    let pad = element.request_pad_simple("audio").unwrap();
    let six = gst::Caps::builder("audio/x-opus")
        .field("channel-mapping-family", 1i32)
        .field("channels", 6i32)
        .build();
    assert!(!pad.query_accept_caps(&six), "six channels are refused");
    assert!(
        element.request_pad_simple("audio").is_none(),
        "one audio pad an element"
    );
}
