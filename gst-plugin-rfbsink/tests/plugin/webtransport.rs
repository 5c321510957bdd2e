// WebTransport loopback tests: real encoded buffers through a Harness into rfbsink, and real
// WebTransport clients (wtransport) that learn the certificate hash from /rfb.json like the viewer.

use std::io::{Read, Write};
use std::time::Duration;

use crate::common::*;
use gst::prelude::*;
use serde_json::Value;
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream, SendStream, VarInt};

use gstrfbsink::protocol::{length_prefix, FrameHeader, MessageReader};

/// GET /rfb.json over plain TCP.
fn discovery(port: u16) -> Value {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        with_token("/rfb.json")
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let body = resp.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(body).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct WtClient {
    conn: Connection,
    control_tx: SendStream,
    control_rx: RecvStream,
    _endpoint: Endpoint<wtransport::endpoint::endpoint_side::Client>,
}

/// Connects like the viewer: /rfb.json gives the UDP port and the certificate's SHA-256.
async fn connect(http_port: u16) -> WtClient {
    let info = discovery(http_port)["webtransport"].clone();
    let port = info["port"].as_u64().expect("WebTransport offered") as u16;
    let hex = info["certificate_hashes"][0]["value"].as_str().unwrap();
    let bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let config = ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([Sha256Digest::new(bytes.try_into().unwrap())])
        .build();
    let endpoint = Endpoint::client(config).unwrap();
    let conn = endpoint
        .connect(format!("https://127.0.0.1:{port}{}", with_token("/wt")))
        .await
        .expect("WebTransport session");
    let (control_tx, control_rx) = conn
        .accept_bi()
        .await
        .expect("the server opens the control stream");
    WtClient {
        conn,
        control_tx,
        control_rx,
        _endpoint: endpoint,
    }
}

/// Reads length-prefixed messages from a stream until `n` arrived or it ended/reset.
async fn read_messages(stream: &mut RecvStream, n: usize) -> (Vec<Vec<u8>>, bool) {
    read_messages_within(stream, n, TIMEOUT)
        .await
        .expect("stream stalled")
}

/// As read_messages; None when no data came for `idle` before any message.
async fn read_messages_within(
    stream: &mut RecvStream,
    n: usize,
    idle: Duration,
) -> Option<(Vec<Vec<u8>>, bool)> {
    let mut reader = MessageReader::new(64 << 20);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while out.len() < n {
        match tokio::time::timeout(idle, stream.read(&mut buf)).await {
            Err(_) if out.is_empty() => return None,
            Err(_) => return Some((out, true)),
            Ok(Ok(Some(k))) => out.extend(reader.push(&buf[..k]).unwrap()),
            Ok(Ok(None)) => return Some((out, true)),
            Ok(Err(_)) => return Some((out, false)),
        }
    }
    Some((out, true))
}

fn json(msg: &[u8]) -> Value {
    serde_json::from_slice(msg)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(msg)))
}

fn frame(msg: &[u8]) -> (FrameHeader, Vec<u8>) {
    let (h, p) = FrameHeader::decode_binary(msg).unwrap();
    (h, p.to_vec())
}

#[test]
fn frames_over_webtransport_match_the_buffers() {
    let (caps, buffers) = h264(20, 10);
    let mut h = harness("client-queue-frames=64");
    h.set_src_caps(caps);
    let port = port(&h);
    let rt = runtime();
    let mut c = rt.block_on(connect(port));
    let (hello, _) = rt.block_on(read_messages(&mut c.control_rx, 1));
    assert_eq!(json(&hello[0])["kind"], "hello");
    wait_clients(&h, 1);
    for b in &buffers {
        h.push(b.clone()).unwrap();
    }
    // Two groups of pictures: two unidirectional streams, each self-contained (its config, then
    // its frames from a keyframe on). Streams may be surfaced in either order.
    let mut got = Vec::new();
    for _ in 0..2 {
        let mut stream = rt.block_on(c.conn.accept_uni()).unwrap();
        let (msgs, _) = rt.block_on(read_messages(&mut stream, 11));
        let mut msgs = msgs.into_iter();
        let config = json(&msgs.next().unwrap());
        assert_eq!(config["kind"], "config");
        assert_eq!(config["format"], "annexb");
        let frames: Vec<_> = msgs.map(|m| frame(&m)).collect();
        assert!(frames[0].0.key, "a group starts with a keyframe");
        got.extend(frames);
    }
    got.sort_by_key(|(h, _)| h.frame_id);
    assert_eq!(got.len(), 20);
    for (i, (hd, payload)) in got.iter().enumerate() {
        assert_eq!(hd.frame_id, i as u64);
        assert_eq!(
            payload.as_slice(),
            buffers[i].map_readable().unwrap().as_slice()
        );
    }
    let s = &client_stats(&h)[0];
    assert_eq!(s.get::<&str>("transport").unwrap(), "webtransport");
    // Acks go as datagrams.
    let ack = br#"{"channel":"rfb.stats","kind":"ack","frame_id":19,"decode_queue_size":0}"#;
    c.conn.send_datagram(ack).unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while client_stats(&h)[0].get::<u64>("acks").unwrap() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the datagram ack arrived"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn slow_client_abandons_stale_groups_without_disturbing_a_fast_one() {
    // Noise compresses badly: big frames fill a client's flow-control window quickly.
    let (caps, buffers) = encode_pattern(
        60,
        640,
        480,
        "snow",
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 pass=quant quantizer=5 ! video/x-h264,stream-format=byte-stream,profile=baseline",
    );
    let mut h = harness("client-queue-frames=4 keyframe-request-interval=0");
    h.set_src_caps(caps);
    let port = port(&h);
    let rt = runtime();
    let slow = rt.block_on(connect(port));
    let mut fast = rt.block_on(connect(port));
    wait_clients(&h, 2);

    // The fast client reads every group as it comes, in a task of its own.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let fast_conn = fast.conn.clone();
    rt.spawn(async move {
        loop {
            let Ok(mut stream) = fast_conn.accept_uni().await else {
                return;
            };
            let mut reader = MessageReader::new(64 << 20);
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(Some(k)) = stream.read(&mut buf).await {
                for m in reader.push(&buf[..k]).unwrap() {
                    if m.starts_with(b"RF") {
                        let _ = tx.send(FrameHeader::decode_binary(&m).unwrap().0);
                    }
                }
            }
        }
    });
    let mut total = 0;
    for round in 0..300u64 {
        let b = &buffers[(round % 60) as usize];
        total += b.size();
        let mut b = b.copy();
        b.make_mut()
            .set_pts(gst::ClockTime::from_mseconds(round * 33));
        h.push(b).unwrap();
        let got = rt
            .block_on(async { tokio::time::timeout(TIMEOUT, rx.recv()).await })
            .expect("the fast client keeps up")
            .unwrap();
        assert_eq!(
            got.frame_id, round,
            "the fast client got every frame, in order"
        );
    }
    assert!(
        total > 30_000_000,
        "{total} bytes: more than any flow-control window"
    );
    let all = client_stats(&h);
    let slow_stats = all
        .iter()
        .find(|s| s.get::<u64>("frames-dropped").unwrap() > 0)
        .expect("the slow client dropped");
    assert!(slow_stats.get::<u64>("queued-frames").unwrap() <= 4);
    assert!(
        h.try_pull_upstream_event().is_some(),
        "a keyframe was asked for"
    );

    // The slow client now reads what is left: every group it can read starts at a keyframe and
    // has no gap inside; stale groups were reset.
    let mut groups = Vec::new();
    rt.block_on(async {
        while let Ok(Ok(mut stream)) =
            tokio::time::timeout(Duration::from_millis(500), slow.conn.accept_uni()).await
        {
            // The current group stays open: stop reading it when nothing more comes.
            let Some((msgs, _)) =
                read_messages_within(&mut stream, usize::MAX, Duration::from_millis(500)).await
            else {
                continue;
            };
            let frames: Vec<_> = msgs
                .iter()
                .filter(|m| m.starts_with(b"RF"))
                .map(|m| frame(m).0)
                .collect();
            groups.push(frames);
        }
    });
    let complete: Vec<_> = groups.iter().filter(|g| !g.is_empty()).collect();
    assert!(!complete.is_empty());
    for g in &complete {
        assert!(
            g[0].key,
            "a group starts at a keyframe: {:?}",
            g.iter().map(|f| f.frame_id).collect::<Vec<_>>()
        );
        for w in g.windows(2) {
            assert_eq!(w[1].frame_id, w[0].frame_id + 1, "no gap inside a group");
        }
    }
    drop(fast.control_tx.write_all(b""));
}

async fn closed_with(conn: &Connection) -> (u64, String) {
    match tokio::time::timeout(TIMEOUT, conn.closed())
        .await
        .expect("the server closes the session")
    {
        wtransport::error::ConnectionError::ApplicationClosed(c) => (
            c.code().into_inner(),
            String::from_utf8_lossy(c.reason()).into_owned(),
        ),
        other => panic!("closed otherwise: {other}"),
    }
}

#[test]
fn malformed_control_messages_close_the_session_with_a_reason_bad_datagrams_are_dropped() {
    let h = harness("");
    let port = port(&h);
    let rt = runtime();
    rt.block_on(async {
        let mut good = connect(port).await;
        let (hello, _) = read_messages(&mut good.control_rx, 1).await;
        assert_eq!(json(&hello[0])["kind"], "hello");

        let mut bad = connect(port).await;
        let garbage = b"not json";
        bad.control_tx
            .write_all(&length_prefix(garbage.len()))
            .await
            .unwrap();
        bad.control_tx.write_all(garbage).await.unwrap();
        let (code, reason) = closed_with(&bad.conn).await;
        assert_eq!(code, 1007);
        assert!(reason.contains("not JSON"), "{reason}");

        let mut big = connect(port).await;
        big.control_tx
            .write_all(&length_prefix(1 << 20))
            .await
            .unwrap();
        let (code, reason) = closed_with(&big.conn).await;
        assert_eq!(code, 1009);
        assert!(reason.contains("over the limit"), "{reason}");

        // A malformed datagram (latest-wins traffic) is dropped and counted; the session stays.
        let dgram = connect(port).await;
        dgram.conn.send_datagram(b"\xff\xfe").unwrap();
        let deadline = std::time::Instant::now() + TIMEOUT;
        while !client_stats(&h)
            .iter()
            .any(|c| c.get::<u64>("messages-rejected").unwrap() == 1)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the datagram was not counted"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(300), dgram.conn.closed())
                .await
                .is_err(),
            "a bad datagram does not close the session"
        );
        dgram.conn.close(VarInt::from_u32(0), b"done");

        // A valid message on the control stream is accepted; the good session is still open.
        let msg = br#"{"channel":"rfb.control","kind":"keyframe-request","reason":"test"}"#;
        good.control_tx
            .write_all(&length_prefix(msg.len()))
            .await
            .unwrap();
        good.control_tx.write_all(msg).await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(300), good.conn.closed())
                .await
                .is_err()
        );
        good.conn.close(VarInt::from_u32(0), b"done");
    });
    wait_clients(&h, 0);
}

#[test]
fn busy_udp_port_leaves_websocket_serving() {
    init();
    // The HTTP port's number is taken on UDP: WebTransport is off (a warning), WebSocket serves.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        println!("skipped: TCP port {port} happens to be busy too");
        return;
    }
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true ! jpegenc ! rfbsink port={port} token={TEST_TOKEN}"
    ))
    .unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(5),
            &[gst::MessageType::Warning],
        )
        .expect("a warning says WebTransport is off");
    let gst::MessageView::Warning(w) = msg.view() else {
        unreachable!()
    };
    assert!(
        w.error().to_string().contains("WebTransport is off")
            && w.error().matches(gst::ResourceError::Busy),
        "{}",
        w.error()
    );
    assert_eq!(discovery(port)["webtransport"], Value::Null);
    pipeline.set_state(gst::State::Null).unwrap();
    drop(udp);
}

#[test]
fn explicit_webtransport_port_that_is_busy_is_an_error() {
    init();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let busy = udp.local_addr().unwrap().port();
    let error = start_failure(&format!(
        "videotestsrc ! jpegenc ! rfbsink port=0 webtransport-port={busy}"
    ));
    assert!(error.matches(gst::ResourceError::Busy), "{error}");
    assert!(
        error.to_string().starts_with(&format!(
            "WebTransport: cannot bind 127.0.0.1:{busy} (UDP): "
        )),
        "{error}"
    );
}

#[test]
fn a_certificate_that_cannot_load_is_a_settings_error_not_a_busy_port() {
    init();
    // Before, every failed WebTransport start read as "busy"; a missing file is the user's to fix.
    let error = start_failure(
        "videotestsrc ! jpegenc ! rfbsink port=0 certificate-file=/nonexistent/cert.pem \
         private-key-file=/nonexistent/key.pem",
    );
    assert!(error.matches(gst::ResourceError::Settings), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("Certificate: cannot load /nonexistent/cert.pem / /nonexistent/key.pem"),
        "{error}"
    );
}
