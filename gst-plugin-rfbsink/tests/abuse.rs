// SPDX-License-Identifier: MPL-2.0

// Abuse on loopback, each bounded in count and time: stalled clients, half-open HTTP
// connections, message floods, connection churn, quick state cycles, a stop from a runtime
// thread. What a user would see is asserted: the real client keeps getting every frame, resources
// return to their baseline, nothing panics.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;

/// These tests measure the whole process (descriptors, threads, memory, panics): one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Panics anywhere in this process (the runtime's threads included) are counted.
static PANICS: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();

fn count_panics() {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn stalled_clients_are_evicted_and_a_real_viewer_gets_every_frame() {
    let _serial = serial();
    let (caps, buffers) = h264(30, 30);
    // Few slots so that the stalled clients fill them; a short client-timeout so that the test is
    // short (the default is 15 s).
    let h = Arc::new(Mutex::new(harness("max-clients=64 client-timeout=2000")));
    h.lock().unwrap().set_src_caps(caps);
    let port = port(&h.lock().unwrap());
    let rt = runtime();
    // 64 clients complete the handshake and then never read anything.
    let stalled: Vec<_> = rt.block_on(futures_util::future::join_all((0..64).map(|_| async {
        let (ws, _) = tokio_tungstenite::connect_async(format!(
            "ws://127.0.0.1:{port}{}",
            with_token("/ws?envelope=binary")
        ))
        .await
        .unwrap();
        ws
    })));
    wait_clients(&h.lock().unwrap(), 64);

    let feeding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let feeder = {
        let h = h.clone();
        let feeding = feeding.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while feeding.load(Ordering::SeqCst) {
                let mut b = buffers[(i % buffers.len() as u64) as usize].copy();
                b.make_mut().set_pts(gst::ClockTime::from_mseconds(i * 33));
                h.lock().unwrap().push(b).unwrap();
                i += 1;
                std::thread::sleep(Duration::from_millis(33));
            }
        })
    };

    // The real viewer: refused (1013) while every slot is held, admitted once the stalled ones
    // are found out.
    let started = Instant::now();
    let mut viewer = loop {
        let mut c = rt.block_on(Client::connect(port, "/ws?envelope=binary"));
        match rt.block_on(c.next()) {
            Msg::Text(v) if v["kind"] == "hello" => break c,
            Msg::Closed(Some((1013, _))) => {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "the stalled clients still hold every slot"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            other => panic!("{other:?}"),
        }
    };
    let admitted_after = started.elapsed();
    // From its first frame on it gets every frame, in order.
    let (first, _) = rt.block_on(viewer.frame());
    let mut last = first.frame_id;
    for _ in 0..60 {
        let (h, _) = rt.block_on(viewer.frame());
        assert_eq!(h.frame_id, last + 1, "a gap in the real viewer's frames");
        last = h.frame_id;
    }
    feeding.store(false, Ordering::SeqCst);
    feeder.join().unwrap();
    let stats = client_stats(&h.lock().unwrap());
    let me = stats
        .iter()
        .find(|s| s.get::<u64>("frames-sent").unwrap() >= 60)
        .expect("the viewer's stats");
    assert_eq!(me.get::<u64>("frames-dropped").unwrap(), 0, "{me}");
    println!(
        "admitted after {:.1} s; {} stalled clients left",
        admitted_after.as_secs_f64(),
        stats.len() - 1
    );
    drop(stalled);
}

#[test]
fn half_open_http_connections_are_closed_while_a_viewer_streams() {
    let _serial = serial();
    let (caps, buffers) = h264(30, 30);
    let mut h = harness("");
    h.set_src_caps(caps);
    let port = port(&h);
    let rt = runtime();
    let mut viewer = rt.block_on(Client::connect(port, "/ws?envelope=binary"));
    wait_clients(&h, 1);
    // 500 connections that send half a request and then nothing (slow-loris).
    let mut half_open: Vec<TcpStream> = (0..500)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    for s in &mut half_open {
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
        s.set_nonblocking(true).unwrap();
    }
    let started = Instant::now();
    let mut open = half_open.len();
    let mut frames = 0u64;
    let mut i = 0u64;
    while open > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{open} half-open connections still open after 20 s"
        );
        // The viewer keeps streaming meanwhile.
        let mut b = buffers[(i % buffers.len() as u64) as usize].copy();
        b.make_mut().set_pts(gst::ClockTime::from_mseconds(i * 33));
        h.push(b).unwrap();
        i += 1;
        let (header, _) = rt.block_on(viewer.frame());
        assert_eq!(header.frame_id, frames, "the viewer missed a frame");
        frames += 1;
        std::thread::sleep(Duration::from_millis(30));
        open = 0;
        for s in &mut half_open {
            let mut buf = [0u8; 512];
            match s.read(&mut buf) {
                // Closed by the server (EOF, or a 408/400 response then EOF).
                Ok(0) => {}
                Ok(_) => open += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
                Err(_) => {}
            }
        }
    }
    println!(
        "500 half-open connections closed within {:.1} s; the viewer got all {frames} frames",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_message_flood_at_a_stalled_client_stays_bounded() {
    let _serial = serial();
    let h = harness("");
    let port = port(&h);
    let rt = runtime();
    let stalled = rt.block_on(async {
        let (ws, _) =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}{}", with_token("/ws")))
                .await
                .unwrap();
        ws
    });
    wait_clients(&h, 1);
    let element = h.element().unwrap();
    let before = rss_kib();
    let pad = "x".repeat(60 * 1024);
    let message = format!(r#"{{"pad":"{pad}"}}"#);
    // 3000 x 60 KiB = 180 MB sent at a client that reads nothing.
    let mut queued = 0;
    for _ in 0..3000 {
        if element.emit_by_name::<bool>("send-message", &[&"app.flood", &message, &0u64]) {
            queued += 1;
        }
    }
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    wait_clients(&h, 0);
    println!(
        "{queued} of 3000 messages queued before the client was closed; RSS grew {grown_mib} MiB"
    );
    assert!(
        queued < 3000,
        "the stalled client was closed, not fed forever"
    );
    assert!(grown_mib < 64, "memory grew by {grown_mib} MiB");
    drop(stalled);
}

#[test]
fn connection_churn_leaves_no_descriptor_or_thread_behind() {
    let _serial = serial();
    let h = harness("");
    let port = port(&h);
    let rt = runtime();
    // Warm up: the runtime's threads exist once the first client came and went.
    drop(rt.block_on(Client::connect(port, "/ws")));
    wait_clients(&h, 0);
    let (fds_before, threads_before) = (fds(), threads());
    for i in 0..1000 {
        let c = rt.block_on(Client::connect(port, "/ws"));
        drop(c);
        if i % 100 == 0 {
            // Plain HTTP too.
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            write!(
                s,
                "GET /rfb-viewer.js HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).unwrap();
        }
    }
    wait_clients(&h, 0);
    let deadline = Instant::now() + TIMEOUT;
    while fds() > fds_before + 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (fds_after, threads_after) = (fds(), threads());
    println!(
        "descriptors {fds_before} -> {fds_after}, threads {threads_before} -> {threads_after}"
    );
    assert!(
        fds_after <= fds_before + 4,
        "descriptors leaked: {fds_before} -> {fds_after}"
    );
    assert!(
        threads_after <= threads_before + 4,
        "threads leaked: {threads_before} -> {threads_after}"
    );
}

#[test]
fn quick_playing_null_cycles_on_one_port_never_panic() {
    let _serial = serial();
    count_panics();
    init();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let panics_before = PANICS.load(Ordering::SeqCst);
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true ! jpegenc ! rfbsink port={port} token={TEST_TOKEN}"
    ))
    .unwrap();
    // The plugin's runtime and GStreamer's own threads come up on first use.
    for _ in 0..5 {
        pipeline.set_state(gst::State::Playing).unwrap();
        pipeline.set_state(gst::State::Null).unwrap();
    }
    let (fds_before, threads_before) = (fds(), threads());
    let started = Instant::now();
    for _ in 0..200 {
        pipeline.set_state(gst::State::Playing).unwrap();
        pipeline.set_state(gst::State::Null).unwrap();
    }
    // The port is free again.
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port was released");
    // Threads that are ending may take a moment to leave /proc.
    let deadline = Instant::now() + Duration::from_secs(5);
    while threads() > threads_before + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (fds_after, threads_after) = (fds(), threads());
    println!(
        "200 cycles in {:.1} s; descriptors {fds_before} -> {fds_after}, threads {threads_before} -> {threads_after}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        panics_before,
        "a thread panicked"
    );
    assert!(
        fds_after <= fds_before + 16,
        "descriptors leaked: {fds_before} -> {fds_after}"
    );
    assert!(
        threads_after <= threads_before + 2,
        "threads leaked: {threads_before} -> {threads_after}"
    );
}

#[test]
fn stopping_from_a_runtime_thread_does_not_panic() {
    let _serial = serial();
    count_panics();
    init();
    let panics_before = PANICS.load(Ordering::SeqCst);
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true ! jpegenc ! rfbsink port=0 stats-interval=50 token={TEST_TOKEN}"
    ))
    .unwrap();
    let bus = pipeline.bus().unwrap();
    let stopped = Arc::new(AtomicUsize::new(0));
    let weak = pipeline.downgrade();
    let count = stopped.clone();
    // A sync handler runs on the thread that posts: rfbsink-stats comes from the element's runtime.
    bus.set_sync_handler(move |_, msg| {
        if msg.structure().is_some_and(|s| s.name() == "rfbsink-stats")
            && count.fetch_add(1, Ordering::SeqCst) == 0
        {
            if let Some(p) = weak.upgrade() {
                p.set_state(gst::State::Null).unwrap();
            }
        }
        gst::BusSyncReply::Drop
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while stopped.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no rfbsink-stats message");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Also from a thread of another tokio runtime (an application's).
    pipeline.set_state(gst::State::Playing).unwrap();
    let rt = runtime();
    rt.block_on(async {
        pipeline.set_state(gst::State::Null).unwrap();
    });
    bus.unset_sync_handler();
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        panics_before,
        "a thread panicked"
    );
}

#[test]
fn failed_starts_on_a_busy_port_leave_threads_and_descriptors_at_their_baseline() {
    let _serial = serial();
    init();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let line =
        format!("videotestsrc is-live=true ! jpegenc ! rfbsink port={port} token={TEST_TOKEN}");
    let attempt = || {
        let error = start_failure(&line);
        assert!(
            error.matches(gst::ResourceError::Busy)
                && error
                    .to_string()
                    .starts_with(&format!("Cannot listen on 127.0.0.1:{port}: ")),
            "{error}"
        );
    };
    // The plugin's runtime and GStreamer's own threads come up on first use.
    for _ in 0..5 {
        attempt();
    }
    let (fds_before, threads_before) = (fds(), threads());
    let started = Instant::now();
    for _ in 0..200 {
        attempt();
    }
    // Threads that are ending may take a moment to leave /proc.
    let deadline = Instant::now() + Duration::from_secs(5);
    while threads() > threads_before + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (fds_after, threads_after) = (fds(), threads());
    println!(
        "200 failed starts in {:.1} s; descriptors {fds_before} -> {fds_after}, threads {threads_before} -> {threads_after}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        threads_after <= threads_before + 2,
        "threads {threads_before} -> {threads_after}"
    );
    assert!(
        fds_after <= fds_before + 4,
        "descriptors {fds_before} -> {fds_after}"
    );
}
