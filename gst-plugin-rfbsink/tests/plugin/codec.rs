// SPDX-License-Identifier: MPL-2.0

//! The codec parsers against real GStreamer encoders: what they read from the stream must agree
//! with what the encoder put in its caps.

use gst::prelude::*;
use gstrfbsink::codec::*;

use crate::common::init;

/// Returns false, with a printed reason, when an element the test needs is not installed.
fn have_elements(test: &str, names: &[&str]) -> bool {
    for name in names {
        if gst::ElementFactory::find(name).is_none() {
            println!("skipping {test}: element {name} is not installed");
            return false;
        }
    }
    true
}

/// What an encoder produced: the caps on its output and the encoded buffers.
struct Encoded {
    caps: gst::Caps,
    buffers: Vec<Vec<u8>>,
}

impl Encoded {
    fn structure(&self) -> &gst::StructureRef {
        self.caps.structure(0).expect("caps without a structure")
    }

    fn size(&self) -> (u32, u32) {
        let s = self.structure();
        let width = s.get::<i32>("width").expect("caps without width");
        let height = s.get::<i32>("height").expect("caps without height");
        (width as u32, height as u32)
    }
}

/// Runs `videotestsrc ! <raw caps> ! <encoder> ! <encoded caps> ! appsink` for a few buffers.
fn encode(raw_caps: &str, encoder: &str, encoded_caps: &str) -> Encoded {
    let line = format!(
        "videotestsrc num-buffers=3 ! {raw_caps} ! {encoder} ! {encoded_caps} ! \
         appsink name=sink sync=false"
    );
    let pipeline = gst::parse::launch(&line)
        .unwrap_or_else(|e| panic!("{line}: {e}"))
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();

    let mut caps = None;
    let mut buffers = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(60)) {
        caps = sample.caps_owned();
        let buffer = sample.buffer().expect("sample without a buffer");
        buffers.push(buffer.map_readable().unwrap().to_vec());
    }
    let error = pipeline
        .bus()
        .unwrap()
        .pop_filtered(&[gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).unwrap();
    if let Some(gst::MessageView::Error(e)) = error.as_ref().map(|msg| msg.view()) {
        panic!("{line}: {} ({:?})", e.error(), e.debug());
    }
    assert!(
        sink.is_eos(),
        "{line}: no EOS after {} buffers",
        buffers.len()
    );
    assert!(!buffers.is_empty(), "{line}: no buffers");
    Encoded {
        caps: caps.expect("no caps"),
        buffers,
    }
}

/// level_idc from a caps level ("3.1" -> 31, "4" -> 40).
fn level_idc(level: &str) -> u8 {
    let (major, minor) = level.split_once('.').unwrap_or((level, "0"));
    major.parse::<u8>().unwrap() * 10 + minor.parse::<u8>().unwrap()
}

fn check_h264_byte_stream(encoder: &str, raw_caps: &str, profile: &str, prefix: &str) {
    let enc = encode(
        raw_caps,
        encoder,
        &format!("video/x-h264,profile={profile},stream-format=byte-stream,alignment=au"),
    );
    let what = format!("{encoder} {raw_caps} {profile}");
    let first = &enc.buffers[0];
    assert!(annexb_has_idr(first), "{what}: first buffer has no IDR");
    let sps = h264_sps_from_annexb(first)
        .unwrap_or_else(|| panic!("{what}: no SPS in the first buffer"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let codec = h264_codec_string(&sps);
    println!("{what}: {codec} {}x{}", sps.width, sps.height);
    assert!(codec.starts_with(prefix), "{what}: {codec}");
    assert_eq!((sps.width, sps.height), enc.size(), "{what}");
    if let Ok(level) = enc.structure().get::<&str>("level") {
        assert_eq!(
            sps.level_idc,
            level_idc(level),
            "{what}: caps level {level}"
        );
    }
    for (i, buffer) in enc.buffers.iter().enumerate().skip(1) {
        if let Some(sps) = h264_sps_from_annexb(buffer) {
            sps.unwrap_or_else(|e| panic!("{what}: buffer {i}: {e}"));
        }
    }
}

#[test]
fn x264_byte_stream_profiles_and_sizes() {
    init();
    if !have_elements("x264_byte_stream_profiles_and_sizes", &["x264enc"]) {
        return;
    }
    for (profile, prefix) in [
        ("baseline", "avc1.42"),
        ("main", "avc1.4D"),
        ("high", "avc1.64"),
    ] {
        // 1918x1078 is coded as 1920x1088 and cropped.
        for (width, height) in [(1280, 720), (1918, 1078), (320, 240), (854, 482)] {
            let raw = format!("video/x-raw,format=I420,width={width},height={height}");
            check_h264_byte_stream("x264enc", &raw, profile, prefix);
        }
    }
}

#[test]
fn x264_high_chroma_formats_and_bit_depths() {
    init();
    if !have_elements("x264_high_chroma_formats_and_bit_depths", &["x264enc"]) {
        return;
    }
    // Crop units depend on the chroma format: 2x2 for 4:2:0, 2x1 for 4:2:2, 1x1 for 4:4:4.
    for (format, width, height, profile, prefix) in [
        ("I420_10LE", 1918, 1078, "high-10", "avc1.6E"),
        ("Y42B", 1918, 1077, "high-4:2:2", "avc1.7A"),
        ("Y444", 353, 289, "high-4:4:4", "avc1.F4"),
    ] {
        let raw = format!("video/x-raw,format={format},width={width},height={height}");
        check_h264_byte_stream("x264enc", &raw, profile, prefix);
    }
}

#[test]
fn x264_interlaced() {
    init();
    if !have_elements("x264_interlaced", &["x264enc", "interlace"]) {
        return;
    }
    // frame_mbs_only_flag = 0: the height is coded in field macroblock pairs.
    for (width, height) in [(1920, 1080), (720, 576)] {
        let raw = format!(
            "video/x-raw,format=I420,width={width},height={height},framerate=30/1 ! \
             interlace field-pattern=2:2"
        );
        check_h264_byte_stream("x264enc", &raw, "main", "avc1.4D");
    }
}

#[test]
fn openh264() {
    init();
    if !have_elements("openh264", &["openh264enc"]) {
        return;
    }
    check_h264_byte_stream(
        "openh264enc",
        "video/x-raw,format=I420,width=1918,height=1078",
        "constrained-baseline",
        "avc1.42",
    );
}

#[test]
fn x264_avc_codec_data() {
    init();
    if !have_elements("x264_avc_codec_data", &["x264enc"]) {
        return;
    }
    for (profile, prefix) in [("baseline", "avc1.42"), ("high", "avc1.64")] {
        let enc = encode(
            "video/x-raw,format=I420,width=1918,height=1078",
            "x264enc",
            &format!("video/x-h264,profile={profile},stream-format=avc,alignment=au"),
        );
        let codec_data = enc
            .structure()
            .get::<gst::Buffer>("codec_data")
            .expect("avc caps without codec_data");
        let avcc = codec_data.map_readable().unwrap();
        let sps = h264_sps_from_avcc(&avcc).unwrap();
        let codec = h264_codec_string(&sps);
        println!("x264enc avc {profile}: {codec}");
        assert!(codec.starts_with(prefix), "{profile}: {codec}");
        assert_eq!((sps.width, sps.height), enc.size());
        let nal_length_size = avcc_nal_length_size(&avcc).unwrap();
        assert_eq!(nal_length_size, 4);
        // The frames are well-formed length-prefixed NAL units; an in-band SPS, if any, agrees.
        for buffer in &enc.buffers {
            if let Some(in_band) = h264_sps_from_avc(buffer, nal_length_size) {
                assert_eq!(in_band.unwrap(), sps);
            }
        }
        // The same encoder settings in byte-stream format give the same SPS.
        let annexb = encode(
            "video/x-raw,format=I420,width=1918,height=1078",
            "x264enc",
            &format!("video/x-h264,profile={profile},stream-format=byte-stream,alignment=au"),
        );
        let annexb_sps = h264_sps_from_annexb(&annexb.buffers[0]).unwrap().unwrap();
        assert_eq!(annexb_sps, sps);
    }
}

#[test]
fn vp9() {
    init();
    if !have_elements("vp9", &["vp9enc"]) {
        return;
    }
    for (format, width, height, prefix) in [
        ("I420", 1280, 720, "vp09.00.31.08"),
        ("I420", 1918, 1078, "vp09.00.40.08"),
        ("I420", 320, 240, "vp09.00.20.08"),
        ("Y444", 352, 288, "vp09.01.20.08"),
        ("I420_10LE", 640, 480, "vp09.02.30.10"),
        ("I420_12LE", 640, 480, "vp09.02.30.12"),
    ] {
        let enc = encode(
            &format!("video/x-raw,format={format},width={width},height={height}"),
            "vp9enc deadline=1",
            "video/x-vp9",
        );
        let (codec, w, h) = vp9_keyframe_info(&enc.buffers[0])
            .unwrap_or_else(|| panic!("{format} {width}x{height}: first frame not a keyframe"));
        println!("vp9enc {format} {width}x{height}: {codec}");
        assert_eq!(codec, prefix, "{format} {width}x{height}");
        assert_eq!((w, h), enc.size());
        assert_eq!((w, h), (width, height));
        if let Ok(profile) = enc.structure().get::<&str>("profile") {
            assert_eq!(
                &codec[5..7],
                format!("0{profile}"),
                "caps profile {profile}"
            );
        }
        for frame in &enc.buffers[1..] {
            assert_eq!(
                vp9_keyframe_info(frame),
                None,
                "a delta frame read as a keyframe"
            );
        }
    }
}

#[test]
fn av1() {
    init();
    if !have_elements("av1", &["av1enc"]) {
        return;
    }
    for (format, width, height, prefix) in [
        ("I420", 1280, 720, "av01.0."),
        ("I420", 1918, 1078, "av01.0."),
        ("Y444", 352, 288, "av01.1."),
    ] {
        let enc = encode(
            &format!("video/x-raw,format={format},width={width},height={height}"),
            "av1enc cpu-used=8 usage-profile=realtime",
            "video/x-av1,stream-format=obu-stream,alignment=tu",
        );
        let (codec, w, h) = av1_sequence_info(&enc.buffers[0])
            .unwrap_or_else(|| panic!("{format} {width}x{height}: no sequence header"))
            .unwrap_or_else(|e| panic!("{format} {width}x{height}: {e}"));
        println!("av1enc {format} {width}x{height}: {codec}");
        assert!(
            codec.starts_with(prefix),
            "{format} {width}x{height}: {codec}"
        );
        assert!(codec.ends_with("M.08"), "{codec}");
        assert_eq!((w, h), enc.size());
        for frame in &enc.buffers[1..] {
            if let Some(info) = av1_sequence_info(frame) {
                assert_eq!(info.unwrap().0, codec);
            }
        }
    }
}

#[test]
fn vp8() {
    init();
    if !have_elements("vp8", &["vp8enc"]) {
        return;
    }
    for (width, height) in [(1280, 720), (1918, 1078), (321, 241)] {
        let enc = encode(
            &format!("video/x-raw,format=I420,width={width},height={height}"),
            "vp8enc deadline=1",
            "video/x-vp8",
        );
        let size = vp8_keyframe_size(&enc.buffers[0]).expect("first frame not a keyframe");
        println!("vp8enc {width}x{height}: {size:?}");
        assert_eq!(size, enc.size());
        assert_eq!(size, (width, height));
        for frame in &enc.buffers[1..] {
            assert_eq!(
                vp8_keyframe_size(frame),
                None,
                "a delta frame read as a keyframe"
            );
        }
    }
}
