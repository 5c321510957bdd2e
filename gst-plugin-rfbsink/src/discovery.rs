// SPDX-License-Identifier: MPL-2.0

//! What `/rfb.json` tells a viewer: how else it can connect (WebTransport, once it runs; the
//! relay the element publishes to).

use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::protocol::PROTOCOL_VERSION;
use crate::tls::Certificates;

/// The path of WebTransport sessions.
pub(crate) const WT_PATH: &str = "/wt";

struct WebTransport {
    port: u16,
    certificates: Arc<Certificates>,
}

#[derive(Default)]
pub(crate) struct Discovery {
    webtransport: Mutex<Option<WebTransport>>,
    /// The relay the element publishes to: its URL without a token, and the broadcast.
    relay: Mutex<Option<(String, String)>>,
}

impl Discovery {
    pub fn set_webtransport(&self, port: u16, certificates: Arc<Certificates>) {
        *self.webtransport.lock().unwrap() = Some(WebTransport { port, certificates });
    }

    pub fn set_relay(&self, url: String, broadcast: String) {
        *self.relay.lock().unwrap() = Some((url, broadcast));
    }

    pub fn webtransport_port(&self) -> Option<u16> {
        self.webtransport.lock().unwrap().as_ref().map(|w| w.port)
    }

    /// `audio`: the element's sound (its audio pad sent a packet), or None.
    pub fn to_json(&self, audio: Option<&crate::audio::AudioConfig>) -> String {
        let wt = self.webtransport.lock().unwrap().as_ref().map(|w| {
            // A self-signed certificate's hash lets the browser accept it (serverCertificateHashes);
            // one from files is validated the usual way.
            let hashes: Vec<_> = w
                .certificates
                .hash()
                .iter()
                .map(|h| json!({"algorithm": "sha-256", "value": h}))
                .collect();
            json!({"port": w.port, "path": WT_PATH, "certificate_hashes": hashes})
        });
        let relay = self
            .relay
            .lock()
            .unwrap()
            .as_ref()
            .map(|(url, broadcast)| json!({"url": url, "broadcast": broadcast}));
        let audio = audio.map(|a| json!({"codec": "opus", "channels": a.channels}));
        json!({"protocol": PROTOCOL_VERSION, "webtransport": wt, "relay": relay, "audio": audio})
            .to_string()
    }
}
