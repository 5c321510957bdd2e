// SPDX-License-Identifier: MPL-2.0

//! Light relay viewers for the relay bench (tests/bench/relay.mjs): N subscribers of one broadcast
//! on a Media over QUIC relay, each its own QUIC session reading every frame of one track without
//! decoding (as N browsers would load the relay, not the publisher). Prints one JSON line a second:
//! `{"event":"tick","subscribers":N,"frames":F,"bytes":B}` (totals over all subscribers).
//!
//!   cargo run --release --example moq-subscribers -- URL BROADCAST [N] [TRACK]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn subscriber(
    url: url::Url,
    broadcast: String,
    track: String,
    frames: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
) {
    loop {
        let origin = moq_tokio::origin::spawn();
        let consumer = origin.consume();
        let Ok(client) = moq_tokio::connect::Config::default().init(Default::default()) else {
            return;
        };
        let _connection = client.with_subscriber(origin).connect(url.clone());
        let read = async {
            let b = match consumer.routed_broadcast(broadcast.as_str()).await {
                Ok(b) => b,
                Err(e) => return Err(format!("broadcast {broadcast}: {e}")),
            };
            let mut sub = b
                .track(&track)
                .map_err(|e| format!("track {track}: {e}"))?
                .subscribe(moq_net::track::Subscription::default())
                .await
                .map_err(|e| format!("subscribe {track}: {e}"))?;
            while let Some(mut group) = sub.recv_group().await.map_err(|e| e.to_string())? {
                while let Ok(Some(frame)) = group.read_frame().await {
                    frames.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(frame.payload.len() as u64, Ordering::Relaxed);
                }
            }
            Ok::<(), String>(())
        };
        if let Err(e) = read.await {
            eprintln!("moq-subscribers: {e}; again in 0.5 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: moq-subscribers URL BROADCAST [N] [TRACK]");
        std::process::exit(2);
    }
    let url: url::Url = args[1].parse().expect("a relay URL");
    let broadcast = args[2].clone();
    let n: usize = args.get(3).map_or(1, |s| s.parse().expect("a number"));
    let track = args.get(4).cloned().unwrap_or_else(|| "video0".into());
    let frames = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    for _ in 0..n {
        tokio::spawn(subscriber(
            url.clone(),
            broadcast.clone(),
            track.clone(),
            frames.clone(),
            bytes.clone(),
        ));
    }
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!(
            "{{\"event\":\"tick\",\"subscribers\":{n},\"frames\":{},\"bytes\":{}}}",
            frames.load(Ordering::Relaxed),
            bytes.load(Ordering::Relaxed)
        );
    }
}
