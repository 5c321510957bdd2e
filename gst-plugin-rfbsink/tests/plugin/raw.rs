// SPDX-License-Identifier: MPL-2.0

//! The lossless raw path on loopback: raw buffers pushed into the element, tiles read back by a
//! WebSocket client and decoded, every byte compared with what was pushed.

use crate::common::*;
use gst::prelude::*;
use gstrfbsink::tiles::{self, Decoded, PixelFormat};

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

fn raw_caps(format: &str, w: u32, h: u32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", format)
        .field("width", w as i32)
        .field("height", h as i32)
        .field("framerate", gst::Fraction::new(30, 1))
        .build()
}

fn buffer(data: Vec<u8>, n: u64) -> gst::Buffer {
    let mut b = gst::Buffer::from_mut_slice(data);
    {
        let b = b.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(33 * n));
    }
    b
}

/// Reads frames until the picture has been decoded from a keyframe and the deltas after it.
async fn picture(client: &mut Client, into: &mut Option<Decoded>) -> (bool, usize) {
    let (header, payload) = client.frame().await;
    tiles::decode(&payload, into).unwrap();
    (header.key, payload.len())
}

#[test]
fn raw_rgba_arrives_pixel_exact_and_only_changed_tiles_follow() {
    let rt = runtime();
    let mut h = harness("");
    let (w, h_) = (320u32, 200u32);
    h.set_src_caps(raw_caps("RGBA", w, h_));
    let port = port(&h);
    let mut client = rt.block_on(Client::connect(port, "/ws?envelope=binary"));
    wait_clients(&h, 1);

    let first = noise((w * h_ * 4) as usize, 1);
    h.push(buffer(first.clone(), 0)).unwrap();
    let mut out = None;
    rt.block_on(async {
        let hello = client.text().await;
        assert_eq!(hello["kind"], "hello");
        let config = client.text().await;
        assert_eq!(config["type"], "raw");
        assert_eq!(config["codec"], "raw");
        assert_eq!(config["format"], "tiles");
        assert_eq!(config["codec_string"], "rgba8");
        assert_eq!(
            (config["width"].as_u64(), config["height"].as_u64()),
            (Some(320), Some(200))
        );
        let (key, _) = picture(&mut client, &mut out).await;
        assert!(key);
    });
    assert_eq!(out.as_ref().unwrap().pixels, first);

    // The same picture again: nothing on the wire. Then one 64x64 region changes.
    h.push(buffer(first.clone(), 1)).unwrap();
    let mut second = first.clone();
    for y in 64..128usize {
        for x in 128..192usize {
            second[(y * w as usize + x) * 4 + 1] ^= 0x5a;
        }
    }
    h.push(buffer(second.clone(), 2)).unwrap();
    rt.block_on(async {
        let (key, bytes) = picture(&mut client, &mut out).await;
        assert!(!key);
        // One tile of noise (incompressible, sent raw) and the headers: no more.
        assert_eq!(bytes, tiles::HEADER_LEN + tiles::RECORD_LEN + 64 * 64 * 4);
    });
    assert_eq!(out.as_ref().unwrap().pixels, second);
    let s = stats(&h);
    assert_eq!(
        s.get::<u64>("frames").unwrap(),
        2,
        "the unchanged frame was not sent"
    );
    assert_eq!(s.get::<u64>("tiles-sent").unwrap(), 20 + 1);
}

#[test]
fn raw_formats_odd_sizes_strides_and_a_size_change() {
    let rt = runtime();
    let mut h = harness("");
    let port = port(&h);
    let mut client = rt.block_on(Client::connect(port, "/ws?envelope=binary"));
    wait_clients(&h, 1);
    // BGRx with an odd width: GStreamer rows are padded to 4 bytes (RGB: 3 * 99 = 297 -> 300).
    for (i, (format, w, hh, wire)) in [
        ("BGRx", 99u32, 37u32, PixelFormat::Rgba8),
        ("RGB", 99, 37, PixelFormat::Rgb8),
        ("GRAY8", 131, 67, PixelFormat::Gray8),
        ("GRAY16_LE", 65, 129, PixelFormat::Gray16Le),
    ]
    .into_iter()
    .enumerate()
    {
        let caps = raw_caps(format, w, hh);
        let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
        h.set_src_caps(caps);
        let data = noise(info.size(), i as u64 + 10);
        h.push(buffer(data.clone(), i as u64)).unwrap();
        let mut out = None;
        rt.block_on(async {
            loop {
                let config = client.text().await;
                if config["kind"] == "config" {
                    assert_eq!(config["codec_string"], wire.name());
                    assert_eq!(config["width"], w);
                    break;
                }
            }
            assert!(picture(&mut client, &mut out).await.0, "a keyframe first");
        });
        let out = out.unwrap();
        assert_eq!(out.format, wire);
        let stride = info.stride()[0] as usize;
        let bpp = info.format_info().pixel_stride()[0] as usize;
        for y in 0..hh as usize {
            for x in 0..w as usize {
                let s = &data[y * stride + x * bpp..][..bpp];
                let d = &out.pixels[(y * w as usize + x) * wire.bytes_per_pixel()..]
                    [..wire.bytes_per_pixel()];
                let expect = match format {
                    "BGRx" => vec![s[2], s[1], s[0], 255],
                    _ => s.to_vec(),
                };
                assert_eq!(d, &expect[..], "{format} at ({x}, {y})");
            }
        }
    }
}

#[test]
fn raw_late_joiner_and_a_client_that_asks_get_the_whole_still_picture() {
    let rt = runtime();
    let mut h = harness("keyframe-request-interval=0");
    let (w, hh) = (200u32, 150u32);
    h.set_src_caps(raw_caps("GRAY8", w, hh));
    let port = port(&h);
    // Nobody watches the first pictures: nothing is encoded.
    let a = noise((w * hh) as usize, 3);
    let mut b = a.clone();
    b[0] ^= 1;
    h.push(buffer(a, 0)).unwrap();
    h.push(buffer(b.clone(), 1)).unwrap();
    assert_eq!(stats(&h).get::<u64>("frames").unwrap(), 0);
    // A newcomer gets the last picture whole although upstream sends nothing new.
    let mut client = rt.block_on(Client::connect(port, "/ws?envelope=binary"));
    let mut out = None;
    rt.block_on(async {
        assert!(picture(&mut client, &mut out).await.0);
    });
    assert_eq!(out.as_ref().unwrap().pixels, b);
    // A client that lost its picture asks for a keyframe and gets the still picture again.
    client.send_text(r#"{"channel":"rfb.control","kind":"keyframe-request","reason":"test"}"#);
    let mut again = None;
    rt.block_on(async {
        assert!(picture(&mut client, &mut again).await.0);
    });
    assert_eq!(again.unwrap().pixels, b);
}

#[test]
fn raw_json_envelope_carries_tiles_too() {
    let rt = runtime();
    let mut h = harness("");
    h.set_src_caps(raw_caps("RGBA", 64, 64));
    let port = port(&h);
    let mut client = rt.block_on(Client::connect(port, "/ws?envelope=json"));
    wait_clients(&h, 1);
    let data = noise(64 * 64 * 4, 5);
    h.push(buffer(data.clone(), 0)).unwrap();
    rt.block_on(async {
        let header = loop {
            let v = client.text().await;
            if v["channel"] == "rfb.main" {
                break v;
            }
        };
        assert_eq!(header["codec"], "raw");
        assert_eq!(header["format"], "tiles");
        assert_eq!(header["chunk_type"], "key");
        let Msg::Binary(payload) = client.next().await else {
            panic!("payload expected")
        };
        assert_eq!(header["byte_length"], payload.len());
        let mut out = None;
        tiles::decode(&payload, &mut out).unwrap();
        assert_eq!(out.unwrap().pixels, data);
    });
}

#[test]
fn gray_window_property_reaches_clients_now_and_later() {
    let rt = runtime();
    let mut h = harness("gray-window=100,4000");
    let element = h.element().unwrap();
    assert_eq!(element.property::<String>("gray-window"), "100,4000");
    h.set_src_caps(raw_caps("GRAY16_LE", 64, 64));
    h.push(buffer(vec![0; 64 * 64 * 2], 0)).unwrap();
    let port = port(&h);
    let mut client = rt.block_on(Client::connect(port, "/ws?envelope=binary"));
    let window = |v: &serde_json::Value| (v["low"].as_u64(), v["high"].as_u64());
    rt.block_on(async {
        loop {
            let v = client.text().await;
            if v["kind"] == "window" {
                assert_eq!(window(&v), (Some(100), Some(4000)));
                break;
            }
        }
    });
    element.set_property("gray-window", "auto");
    rt.block_on(async {
        loop {
            if let Msg::Text(v) = client.next().await {
                if v["kind"] == "window" {
                    assert_eq!(window(&v), (None, None));
                    break;
                }
            }
        }
    });
    // A bad value is refused with a warning; the window stays.
    element.set_property("gray-window", "4000,100");
    assert_eq!(element.property::<String>("gray-window"), "auto");
}

#[test]
fn refine_pad_sends_the_raw_picture_once_the_encoded_stream_idles() {
    let rt = runtime();
    let mut h = harness("refine-delay=100");
    let element = h.element().unwrap();
    let mut refine = gst_check::Harness::with_element(&element, Some("refine"), None);
    let template = element.pad_template("refine").unwrap();
    assert!(
        element.request_pad(&template, None, None).is_none(),
        "one refine pad"
    );
    let (caps, frames) = crate::common::h264(4, 30);
    h.set_src_caps(caps);
    refine.set_src_caps(raw_caps("RGBA", 320, 240));
    let port = port(&h);
    let mut client = rt.block_on(Client::connect(port, "/ws?envelope=binary"));
    wait_clients(&h, 1);

    let exact = noise(320 * 240 * 4, 7);
    refine.push(buffer(exact.clone(), 0)).unwrap();
    for f in &frames[..3] {
        h.push(f.clone()).unwrap();
    }
    rt.block_on(async {
        for id in 0..3 {
            let (header, _) = client.frame().await;
            assert_eq!((header.frame_id, header.refine), (id, false));
        }
        // Idle for refine-delay: the still follows, whole and exact.
        let (header, payload) = client.frame().await;
        assert!(header.refine && !header.key, "{header:?}");
        let mut out = None;
        tiles::decode(&payload, &mut out).unwrap();
        assert_eq!(out.unwrap().pixels, exact);
    });
    assert_eq!(stats(&h).get::<u64>("refines").unwrap(), 1);

    // A late joiner, in the idle time: the cached pictures, then the still.
    let mut late = rt.block_on(Client::connect(port, "/ws?envelope=json"));
    let seen = rt.block_on(async {
        let mut seen = Vec::new();
        while seen.len() < 4 {
            if let Msg::Text(m) = late.next().await {
                if m["channel"] == "rfb.main" {
                    seen.push(format!("{} {} {}", m["type"], m["codec"], m["chunk_type"]));
                }
            }
        }
        seen
    });
    assert_eq!(
        seen,
        [
            r#""video" "h264" "key""#,
            r#""video" "h264" "delta""#,
            r#""video" "h264" "delta""#,
            r#""refine" "raw" "key""#
        ]
    );

    // A new frame replaces the still; the same raw picture refines it again once it idles.
    h.push(frames[3].clone()).unwrap();
    rt.block_on(async {
        let (header, _) = client.frame().await;
        assert_eq!((header.frame_id, header.refine), (4, false));
        let (header, _) = client.frame().await;
        assert!(header.refine);
    });
    assert_eq!(stats(&h).get::<u64>("refines").unwrap(), 2);
}
