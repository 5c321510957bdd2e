// SPDX-License-Identifier: MPL-2.0

//! Publishing to a Media over QUIC relay (docs/protocol.md, "Relays"): the stream goes out once,
//! to `moq-relay` or any relay that speaks moq-lite, in the `hang` media format that moq's own
//! players read; the relay fans it out to any number of viewers, and relays cluster.
//!
//! The protocol is moq's own crates' (moq-net through moq-tokio's client, hang's catalog and
//! frame container), not a copy: this module only maps rfbsink's renditions onto a hang
//! broadcast. One track per rendition (`video0`, `video1`...), one group per keyframe, the
//! catalog rewritten when a rendition's configuration changes; the sound on `audio0`, a group
//! per 100 ms.
//!
//! Nothing here waits on the relay. `push` appends the shared frame (no copy) to the track in
//! memory and returns; moq-net's session sends it, and a relay link slower than the stream skips
//! to the newest group as a slow viewer does. The client redials with backoff for as long as the
//! element runs, and re-announces the broadcast when it is back.
//!
//! The moq client lives in `publisher` behind the `relay` cargo feature (on by default); a build
//! without it keeps the properties and says so when `relay-url` is set.

#[cfg(feature = "relay")]
mod publisher;
#[cfg(feature = "relay")]
pub(crate) use publisher::Publisher;

/// The hang name of the track that carries rendition `id`.
#[cfg_attr(not(feature = "relay"), allow(dead_code))]
pub(crate) fn track_name(id: u32) -> String {
    format!("video{id}")
}

/// Where and what to publish (the element's `relay-*` properties), checked.
#[derive(Clone, Debug)]
pub(crate) struct RelaySettings {
    /// The relay's URL with the token in its `jwt` query parameter, if any.
    pub url: url::Url,
    /// The broadcast's name under the URL's path.
    pub broadcast: String,
}

/// A `relay-url` that cannot be used, said with the property to fix.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RelayError {
    #[error("relay-url {0:?} is not a URL: {1}")]
    Url(String, url::ParseError),
    #[error(
        "relay-url {0:?}: the scheme must be https:// (a relay with a real certificate) or \
         http:// (a relay with a generated one: its fingerprint is read from /certificate.sha256)"
    )]
    Scheme(String),
    #[error("relay-broadcast {0:?}: a name of 1 to 256 characters, without '?' '#' or spaces")]
    Broadcast(String),
    #[error("relay-token: a JWT of A-Z a-z 0-9 - _ . characters")]
    Token,
    #[error("cannot publish to the relay: {0}")]
    #[cfg(feature = "relay")]
    Client(String),
    #[error(
        "relay-url: this rfbsink was built without the `relay` feature (cargo build --features relay)"
    )]
    #[cfg(not(feature = "relay"))]
    NotBuilt,
}

impl RelaySettings {
    /// `token` goes into the URL's `jwt` parameter (moq-relay's way), replacing one there.
    pub fn new(url: &str, broadcast: &str, token: Option<&str>) -> Result<Self, RelayError> {
        let mut url = url::Url::parse(url).map_err(|e| RelayError::Url(url.into(), e))?;
        if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
            return Err(RelayError::Scheme(url.to_string()));
        }
        if broadcast.is_empty()
            || broadcast.len() > 256
            || broadcast
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
        {
            return Err(RelayError::Broadcast(broadcast.into()));
        }
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            if !token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(RelayError::Token);
            }
            let others = query_without_token(&url);
            url.query_pairs_mut()
                .clear()
                .extend_pairs(others)
                .append_pair("jwt", token);
        }
        Ok(RelaySettings {
            url,
            broadcast: broadcast.trim_matches('/').to_owned(),
        })
    }

    /// `scheme://host[:port]` of the relay (what the viewer page may connect to).
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }

    /// The URL without its credential, for logs, the bus and stats.
    pub fn public_url(&self) -> String {
        let mut url = self.url.clone();
        let others = query_without_token(&url);
        if others.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(others);
        }
        url.to_string()
    }
}

/// The URL's query parameters but its token (`jwt`).
fn query_without_token(url: &url::Url) -> Vec<(String, String)> {
    url.query_pairs()
        .filter(|(k, _)| k != "jwt")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// What the publisher tells the element (posted on the bus).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "relay"), allow(dead_code))]
pub(crate) enum RelayEvent {
    /// A session to the relay is up (again): `sessions` counts them, 1 the first.
    Connected { sessions: u64 },
    /// The session dropped; the client redials.
    Disconnected,
    /// A rendition's codec is not one the media format carries: relay viewers go without it.
    Unsupported { rendition: u32, codec: &'static str },
    /// The relay closed the last `REFUSED_AFTER` sessions at once: most likely it does not let
    /// this element publish there (its access rules; a missing or wrong `relay-token`). Said once
    /// a connection; the client keeps redialing.
    Refused { sessions: u64 },
    /// The client stopped redialing: the relay refused for good (`reason`, moq's words). Dialed
    /// again after `RETRY_AFTER_FAILURE`.
    Failed { reason: String },
}

/// The publisher's figures (stats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RelayStats {
    pub connected: bool,
    /// Sessions that were up, reconnections included.
    pub sessions: u64,
    /// Frames and bytes handed to the broadcast.
    pub frames: u64,
    pub bytes: u64,
    /// What the broadcast's groups hold in memory now (bounded: publisher.rs `CACHE_BYTES`).
    pub cache_bytes: u64,
}

/// A build without the `relay` feature: starting fails with [`RelayError::NotBuilt`], so no value
/// of this type exists.
#[cfg(not(feature = "relay"))]
pub(crate) struct Publisher {
    never: std::convert::Infallible,
}

#[cfg(not(feature = "relay"))]
impl Publisher {
    pub fn start(
        _settings: RelaySettings,
        _events: std::sync::Arc<dyn Fn(RelayEvent) + Send + Sync>,
    ) -> Result<Publisher, RelayError> {
        Err(RelayError::NotBuilt)
    }

    pub fn push(&self, _rendition: u32, _frame: &crate::hub::Frame) {
        match self.never {}
    }

    pub fn push_audio(&self, _packet: &crate::audio::AudioPacket) {
        match self.never {}
    }

    pub fn remove_rendition(&self, _rendition: u32) {
        match self.never {}
    }

    pub fn stats(&self) -> RelayStats {
        match self.never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_goes_in_the_jwt_parameter_and_never_in_the_public_url() {
        let s = RelaySettings::new(
            "http://127.0.0.1:4443/anon?jwt=old&x=1",
            "cam",
            Some("a.b-c_d"),
        )
        .unwrap();
        let q: Vec<_> = s.url.query_pairs().collect();
        assert!(q.contains(&("jwt".into(), "a.b-c_d".into())), "{q:?}");
        assert!(!q.contains(&("jwt".into(), "old".into())), "{q:?}");
        assert_eq!(s.public_url(), "http://127.0.0.1:4443/anon?x=1");
        let s = RelaySettings::new("https://relay.example/anon?jwt=secret", "cam", None).unwrap();
        assert_eq!(s.public_url(), "https://relay.example/anon");
    }

    #[test]
    fn bad_settings_are_refused_with_the_property_to_fix() {
        for (url, name, token, says) in [
            ("relay.example/anon", "cam", None, "relay-url"),
            ("ws://relay.example/anon", "cam", None, "scheme"),
            ("https://relay.example/anon", "", None, "relay-broadcast"),
            ("https://relay.example/anon", "a b", None, "relay-broadcast"),
            (
                "https://relay.example/anon",
                "cam",
                Some("x&y=z"),
                "relay-token",
            ),
        ] {
            let e = RelaySettings::new(url, name, token)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{url} {name}: {e}");
        }
    }
}
