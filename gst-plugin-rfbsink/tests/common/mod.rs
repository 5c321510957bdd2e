// Helpers shared by the loopback tests: real encoded buffers, the element in a Harness, stats.
#![allow(dead_code)]

use std::sync::Once;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gst::prelude::*;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use gstrfbsink::protocol::FrameHeader;

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
    start_failure(line).to_string()
}

/// The error a pipeline that cannot start posts, with its domain (`gst::ResourceError::Busy`...).
pub fn start_failure(line: &str) -> glib::Error {
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
    err.error()
}

#[derive(Debug)]
pub enum Msg {
    Text(Value),
    Binary(Vec<u8>),
    Closed(Option<(u16, String)>),
}

/// A WebSocket client whose received messages land in a channel.
pub struct Client {
    rx: mpsc::UnboundedReceiver<Msg>,
    pub tx: mpsc::UnboundedSender<Message>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Opened by `resume` for a client that connected stalled.
    gate: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Client {
    /// Dropping the client drops its connection, like a closed browser tab.
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Client {
    pub async fn connect(port: u16, path: &str) -> Client {
        let mut c = Client::connect_stalled(port, path).await;
        c.resume();
        c
    }

    /// A client that reads nothing from its socket until `resume`: what the server sends
    /// piles up in the socket's buffers and then in the server's queue, as for a stalled tab.
    pub async fn connect_stalled(port: u16, path: &str) -> Client {
        let url = format!("ws://127.0.0.1:{port}{}", with_token(path));
        let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let (mut sink, mut stream) = ws.split();
        let (msg_tx, rx) = mpsc::unbounded_channel();
        let (tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let writer = tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let (gate, opened) = tokio::sync::oneshot::channel::<()>();
        let reader = tokio::spawn(async move {
            if opened.await.is_err() {
                return;
            }
            while let Some(m) = stream.next().await {
                let m = match m {
                    Ok(Message::Text(t)) => Msg::Text(serde_json::from_str(&t).unwrap()),
                    Ok(Message::Binary(b)) => Msg::Binary(b.to_vec()),
                    Ok(Message::Close(c)) => {
                        Msg::Closed(c.map(|c| (u16::from(c.code), c.reason.to_string())))
                    }
                    Ok(_) => continue,
                    Err(_) => Msg::Closed(None),
                };
                let closed = matches!(m, Msg::Closed(_));
                let _ = msg_tx.send(m);
                if closed {
                    break;
                }
            }
        });
        Client {
            rx,
            tx,
            tasks: vec![writer, reader],
            gate: Some(gate),
        }
    }

    /// Starts reading (see `connect_stalled`).
    pub fn resume(&mut self) {
        if let Some(gate) = self.gate.take() {
            let _ = gate.send(());
        }
    }

    pub async fn next(&mut self) -> Msg {
        tokio::time::timeout(TIMEOUT, self.rx.recv())
            .await
            .expect("timed out waiting for a message")
            .expect("connection task ended")
    }

    /// The next text message, skipping the per-second `rfb.stats` figures (sent at any time).
    pub async fn text(&mut self) -> Value {
        loop {
            match self.next().await {
                Msg::Text(v) if v["channel"] == "rfb.stats" => continue,
                Msg::Text(v) => return v,
                other => panic!("expected text, got {other:?}"),
            }
        }
    }

    /// Skips control messages up to the next binary-envelope frame.
    pub async fn frame(&mut self) -> (FrameHeader, Vec<u8>) {
        loop {
            match self.next().await {
                Msg::Binary(b) => {
                    let (h, p) = FrameHeader::decode_binary(&b).unwrap();
                    return (h, p.to_vec());
                }
                Msg::Text(_) => continue,
                Msg::Closed(c) => panic!("closed: {c:?}"),
            }
        }
    }

    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            if let Msg::Closed(c) = self.next().await {
                return c.expect("a close frame with a code");
            }
        }
    }

    pub fn send_text(&self, text: &str) {
        self.tx.send(Message::text(text)).unwrap();
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// An acknowledgement of `frame_id`, as the viewer sends it once the frame is decoded.
pub fn ack(frame_id: u64) -> String {
    format!(r#"{{"channel":"rfb.stats","kind":"ack","frame_id":{frame_id}}}"#)
}

/// What a `slow_viewer` got: each frame's header, in order.
pub type Seen = std::sync::Arc<std::sync::Mutex<Vec<FrameHeader>>>;

/// A viewer on a link of `rate` bytes per second (0: unlimited): it reads its socket no faster,
/// and acknowledges every frame it reads, as the browser does once it decoded it. Each frame's
/// header goes to `seen` when given.
pub async fn slow_viewer(
    port: u16,
    rate: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    seen: Option<Seen>,
) {
    slow_viewer_with(port, TEST_TOKEN, rate, stop, seen).await
}

/// `slow_viewer` on the link of `token` (the control or the view link).
pub async fn slow_viewer_with(
    port: u16,
    token: &str,
    rate: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    seen: Option<Seen>,
) {
    use std::sync::atomic::Ordering;
    use std::time::Instant;
    let url = format!(
        "ws://127.0.0.1:{port}{}",
        with_this_token("/ws?envelope=binary", token)
    );
    let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut tx, mut rx) = ws.split();
    let mut budget_start = Instant::now();
    let mut bytes = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(1), rx.next()).await
        else {
            continue;
        };
        let Message::Binary(data) = msg else { continue };
        let Ok((header, _)) = FrameHeader::decode_binary(&data) else {
            continue;
        };
        if let Some(seen) = &seen {
            seen.lock().unwrap().push(header);
        }
        if tx.send(Message::text(ack(header.frame_id))).await.is_err() {
            return;
        }
        let rate = rate.load(Ordering::SeqCst);
        if rate == 0 {
            (budget_start, bytes) = (Instant::now(), 0);
            continue;
        }
        bytes += data.len() as u64;
        let due = Duration::from_secs_f64(bytes as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(budget_start.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Polls `f` until it is true or `within` passed.
pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}
