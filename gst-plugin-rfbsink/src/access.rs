// SPDX-License-Identifier: MPL-2.0

//! Who may connect, on any transport: the token (control or view link), the page's Origin and
//! the Host it asked for. docs/security.md is the threat model behind these checks.
//!
//! - A token is required unless `auth=none`: in the query (`?rfb_token=`), as
//!   `Authorization: Bearer`, or in the cookie the page load sets. Compared in constant time.
//! - A browser's request (it sends Origin) must come from the server's own origin or one listed
//!   in `allowed-origins`; anything else is refused even with the right token.
//! - The Host must be a name this server answers to, so a DNS-rebound name cannot reach it.

use std::net::IpAddr;

use subtle::ConstantTimeEq;

use crate::protocol::Role;

/// The query parameter that carries the token (not `token`, which Jupyter's proxy uses).
pub(crate) const TOKEN_PARAM: &str = "rfb_token";
/// Random bytes in a generated token (hex: twice as many characters).
const TOKEN_BYTES: usize = 24;

/// The two links' tokens.
#[derive(Clone, Debug)]
pub(crate) struct Tokens {
    pub control: String,
    pub view: String,
}

/// A token of `TOKEN_BYTES` random bytes, in hex.
pub(crate) fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether a token set by the application can travel in a URL and a cookie as it is.
pub(crate) fn valid_token(token: &str) -> bool {
    (8..=256).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// What a request says about itself, whatever its transport.
#[derive(Debug, Default)]
pub(crate) struct Request<'a> {
    /// The Host header (WebSocket) or :authority (WebTransport).
    pub host: Option<&'a str>,
    pub origin: Option<&'a str>,
    /// `rfb_token` from the query string, decoded.
    pub query_token: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub cookie: Option<&'a str>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    Host,
    Origin,
    NoToken,
    BadToken,
}

impl Denied {
    /// The HTTP status: 401 asks for a credential, 403 refuses this one.
    pub fn status(self) -> u16 {
        match self {
            Denied::NoToken => 401,
            Denied::Host | Denied::Origin | Denied::BadToken => 403,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Denied::Host => "this server does not answer to that Host name",
            Denied::Origin => {
                "pages from this origin may not connect (see allowed-origins in docs/security.md)"
            }
            Denied::NoToken => "a token is required: open the URL rfbsink printed at start",
            Denied::BadToken => "wrong token",
        }
    }
}

/// The access rules of one running element.
#[derive(Debug)]
pub(crate) struct Access {
    tokens: Option<Tokens>,
    /// Normalised `scheme://host[:port]`.
    allowed_origins: Vec<String>,
    /// Lowercase host names and IP addresses (no brackets) the server answers to.
    hosts: Vec<String>,
    /// Bound to every address: any IP literal is one of ours.
    any_ip: bool,
    http_port: u16,
    view_only: bool,
    cookie_name: String,
    relay_origin: Option<String>,
}

pub(crate) struct AccessSettings {
    /// None: `auth=none`.
    pub tokens: Option<Tokens>,
    pub allowed_origins: Vec<String>,
    /// The `address` property as given (an IP address or a host name).
    pub address: String,
    pub bound: IpAddr,
    pub http_port: u16,
    pub view_only: bool,
    /// The relay the element publishes to, `scheme://host:port`.
    pub relay_origin: Option<String>,
}

impl Access {
    pub fn new(s: AccessSettings) -> Access {
        let allowed_origins: Vec<String> = s
            .allowed_origins
            .iter()
            .map(|o| normalise_origin(o))
            .filter(|o| !o.is_empty())
            .collect();
        let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        hosts.push(s.bound.to_string());
        hosts.push(s.address.trim_matches(['[', ']']).to_ascii_lowercase());
        hosts.extend(
            allowed_origins
                .iter()
                .filter_map(|o| o.split_once("://"))
                .map(|(_, rest)| split_host(rest).0),
        );
        hosts.sort();
        hosts.dedup();
        Access {
            tokens: s.tokens,
            allowed_origins,
            hosts,
            any_ip: s.bound.is_unspecified(),
            http_port: s.http_port,
            view_only: s.view_only,
            cookie_name: format!("{TOKEN_PARAM}_{}", s.http_port),
            relay_origin: s.relay_origin,
        }
    }

    /// Host, Origin and token, in that order: the role the request's link gives.
    pub fn admit(&self, req: &Request) -> Result<Role, Denied> {
        self.check_host(req.host)?;
        self.check_origin(req.origin, req.host)?;
        self.role(req)
    }

    /// Host and Origin only (the viewer's static files, which hold no secret).
    pub fn check_host_and_origin(&self, req: &Request) -> Result<(), Denied> {
        self.check_host(req.host)?;
        self.check_origin(req.origin, req.host)
    }

    fn is_our_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h == host) || (self.any_ip && host.parse::<IpAddr>().is_ok())
    }

    fn check_host(&self, host: Option<&str>) -> Result<(), Denied> {
        // HTTP/1.1 clients always send Host; a client without one is no browser (it still needs
        // the token).
        match host {
            None => Ok(()),
            Some(h) if self.is_our_host(&split_host(h).0) => Ok(()),
            Some(_) => Err(Denied::Host),
        }
    }

    /// The request's Origin (sent by browsers) must be ours or an allowed one; a request
    /// without Origin is not from a page. Ours: one of our host names on our port, or the very
    /// host and port the request was sent to (its `Host`, already checked to be one of our
    /// names): a page this server served through a forwarded port (`ssh -L 9000:127.0.0.1:8080`)
    /// or a reverse proxy that keeps the Host. A page of another site or another local port
    /// still differs from the Host it sends to.
    fn check_origin(&self, origin: Option<&str>, request_host: Option<&str>) -> Result<(), Denied> {
        let Some(origin) = origin else {
            return Ok(());
        };
        if self.is_allowed_origin(origin) {
            return Ok(());
        }
        let normalised = normalise_origin(origin);
        let Some((scheme, rest)) = normalised.split_once("://") else {
            return Err(Denied::Origin);
        };
        let (host, port) = split_host(rest);
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return Err(Denied::Origin),
        };
        let port = port.unwrap_or(default_port);
        if !self.is_our_host(&host) {
            return Err(Denied::Origin);
        }
        if port == self.http_port {
            return Ok(());
        }
        match request_host.map(split_host) {
            Some((sent_to, sent_port))
                if sent_to == host && sent_port.unwrap_or(default_port) == port =>
            {
                Ok(())
            }
            _ => Err(Denied::Origin),
        }
    }

    /// An origin listed in `allowed-origins` (which then gets CORS and may frame the viewer).
    pub fn is_allowed_origin(&self, origin: &str) -> bool {
        let o = normalise_origin(origin);
        self.allowed_origins.contains(&o)
    }

    /// The token the request presents: the query's first, then a bearer token, then the cookie.
    fn presented<'a>(&self, req: &Request<'a>) -> Option<&'a str> {
        req.query_token
            .or_else(|| {
                req.authorization
                    .and_then(|a| a.strip_prefix("Bearer "))
                    .map(str::trim)
            })
            .or_else(|| req.cookie.and_then(|c| cookie_value(c, &self.cookie_name)))
    }

    fn role(&self, req: &Request) -> Result<Role, Denied> {
        let role = match &self.tokens {
            None => Role::Control,
            Some(tokens) => {
                let token = self.presented(req).ok_or(Denied::NoToken)?;
                // Both comparisons always run: the time taken says nothing about either token.
                let control: bool = token.as_bytes().ct_eq(tokens.control.as_bytes()).into();
                let view: bool = token.as_bytes().ct_eq(tokens.view.as_bytes()).into();
                if control {
                    Role::Control
                } else if view {
                    Role::View
                } else {
                    return Err(Denied::BadToken);
                }
            }
        };
        Ok(if self.view_only { Role::View } else { role })
    }

    /// The token to remember in a cookie after a page load that presented one in its query.
    pub fn cookie_for(&self, req: &Request) -> Option<String> {
        let token = req.query_token?;
        self.tokens.as_ref()?;
        Some(format!(
            "{}={token}; Path=/; HttpOnly; SameSite=Strict",
            self.cookie_name
        ))
    }

    /// `frame-ancestors` of the viewer page: itself and the allowed origins.
    pub fn frame_ancestors(&self) -> String {
        let mut v = vec!["'self'".to_string()];
        v.extend(self.allowed_origins.iter().cloned());
        v.join(" ")
    }

    /// What the viewer page may connect to: its own server (WebSocket on this port, WebTransport
    /// on `wt_port`), the allowed origins, and the relay the element publishes to (its
    /// WebTransport, WebSocket and, for `http://`, the fingerprint's fetch).
    pub fn connect_sources(&self, host: Option<&str>, wt_port: Option<u16>) -> String {
        let mut v = vec!["'self'".to_string()];
        if let Some(host) = host.filter(|h| self.check_host(Some(h)).is_ok()) {
            v.push(format!("ws://{host}"));
            v.push(format!("wss://{host}"));
            if let Some(port) = wt_port {
                let (name, _) = split_host(host);
                let name = if name.contains(':') {
                    format!("[{name}]")
                } else {
                    name
                };
                v.push(format!("https://{name}:{port}"));
            }
        }
        for o in &self.allowed_origins {
            v.push(o.clone());
            if let Some(rest) = o.strip_prefix("http://") {
                v.push(format!("ws://{rest}"));
            } else if let Some(rest) = o.strip_prefix("https://") {
                v.push(format!("wss://{rest}"));
            }
        }
        if let Some(relay) = &self.relay_origin {
            if let Some(rest) = relay.strip_prefix("http://") {
                v.push(relay.clone());
                v.push(format!("ws://{rest}"));
                v.push(format!("https://{rest}"));
            } else if let Some(rest) = relay.strip_prefix("https://") {
                v.push(relay.clone());
                v.push(format!("wss://{rest}"));
            }
        }
        v.join(" ")
    }
}

/// `scheme://host[:port]`, lowercase, without a trailing slash.
fn normalise_origin(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// `host[:port]` (IPv6 in brackets) into the lowercase host without brackets and the port.
fn split_host(authority: &str) -> (String, Option<u16>) {
    let authority = authority.trim();
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return (host.to_ascii_lowercase(), port);
    }
    match authority.rsplit_once(':') {
        // More than one ':' without brackets: a bare IPv6 address, no port.
        Some((host, _)) if host.contains(':') => (authority.to_ascii_lowercase(), None),
        Some((host, port)) => (host.to_ascii_lowercase(), port.parse().ok()),
        None => (authority.to_ascii_lowercase(), None),
    }
}

/// The value of cookie `name` in a Cookie header.
fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The value of `name` in a query string (`a=1&b=2`), percent-decoded.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn access(auth: bool, allowed: &[&str]) -> Access {
        Access::new(AccessSettings {
            tokens: auth.then(|| Tokens {
                control: "c0ntrol-token".into(),
                view: "view-token-123".into(),
            }),
            allowed_origins: allowed.iter().map(|s| s.to_string()).collect(),
            address: "127.0.0.1".into(),
            bound: Ipv4Addr::LOCALHOST.into(),
            http_port: 8080,
            view_only: false,
            relay_origin: None,
        })
    }

    #[test]
    fn the_page_may_reach_the_relay_it_publishes_to_and_no_other() {
        let mut a = access(true, &[]);
        let none = a.connect_sources(Some("127.0.0.1:8080"), Some(8080));
        assert!(!none.contains("4443"), "{none}");
        a.relay_origin = Some("http://127.0.0.1:4443".into());
        let csp = a.connect_sources(Some("127.0.0.1:8080"), Some(8080));
        for want in [
            "http://127.0.0.1:4443",
            "https://127.0.0.1:4443",
            "ws://127.0.0.1:4443",
        ] {
            assert!(csp.split(' ').any(|s| s == want), "{want} in {csp}");
        }
        a.relay_origin = Some("https://relay.example".into());
        let csp = a.connect_sources(Some("127.0.0.1:8080"), Some(8080));
        assert!(csp.split(' ').any(|s| s == "wss://relay.example"), "{csp}");
        assert!(!csp.contains("http://relay.example"), "{csp}");
    }

    fn req<'a>(host: &'a str, origin: Option<&'a str>, token: Option<&'a str>) -> Request<'a> {
        Request {
            host: Some(host),
            origin,
            query_token: token,
            ..Request::default()
        }
    }

    #[test]
    fn tokens_give_roles() {
        let a = access(true, &[]);
        let h = "127.0.0.1:8080";
        assert_eq!(
            a.admit(&req(h, None, Some("c0ntrol-token"))),
            Ok(Role::Control)
        );
        assert_eq!(
            a.admit(&req(h, None, Some("view-token-123"))),
            Ok(Role::View)
        );
        assert_eq!(a.admit(&req(h, None, None)), Err(Denied::NoToken));
        assert_eq!(
            a.admit(&req(h, None, Some("c0ntrol"))),
            Err(Denied::BadToken)
        );
        let bearer = Request {
            host: Some(h),
            authorization: Some("Bearer view-token-123"),
            ..Request::default()
        };
        assert_eq!(a.admit(&bearer), Ok(Role::View));
        let cookie = Request {
            host: Some(h),
            cookie: Some("other=1; rfb_token_8080=c0ntrol-token"),
            ..Request::default()
        };
        assert_eq!(a.admit(&cookie), Ok(Role::Control));
        // Another port's cookie is another server's.
        let other = Request {
            host: Some(h),
            cookie: Some("rfb_token_9090=c0ntrol-token"),
            ..Request::default()
        };
        assert_eq!(a.admit(&other), Err(Denied::NoToken));
        assert_eq!(
            access(false, &[]).admit(&req(h, None, None)),
            Ok(Role::Control)
        );
    }

    #[test]
    fn origins_and_hosts() {
        let a = access(true, &["tauri://localhost", "http://jupyter.example:8888/"]);
        let t = Some("c0ntrol-token");
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "http://[::1]:8080",
            "https://127.0.0.1:8080",
            "tauri://localhost",
            "http://jupyter.example:8888",
        ] {
            assert_eq!(
                a.admit(&req("127.0.0.1:8080", Some(ok), t)),
                Ok(Role::Control),
                "{ok}"
            );
        }
        for bad in [
            "http://evil.example:8080",
            "http://127.0.0.1:8081",
            "http://127.0.0.1",
            "null",
            "file://",
            "ftp://127.0.0.1:8080",
        ] {
            assert_eq!(
                a.admit(&req("127.0.0.1:8080", Some(bad), t)),
                Err(Denied::Origin),
                "{bad}"
            );
        }
        // Through a forwarded port (ssh -L 9000:127.0.0.1:8080) or a proxy that keeps the Host:
        // the page's origin is the host and port its requests are sent to.
        assert_eq!(
            a.admit(&req("127.0.0.1:9000", Some("http://127.0.0.1:9000"), t)),
            Ok(Role::Control)
        );
        assert_eq!(
            a.admit(&req("localhost:9000", Some("http://localhost:9000"), t)),
            Ok(Role::Control)
        );
        // Another local port's page sending to the forwarded port is still another origin.
        assert_eq!(
            a.admit(&req("127.0.0.1:9000", Some("http://127.0.0.1:9999"), t)),
            Err(Denied::Origin)
        );
        assert_eq!(
            a.admit(&req("127.0.0.1:9000", Some("http://localhost:9000"), t)),
            Err(Denied::Origin)
        );
        // DNS rebinding: a foreign name that resolves to 127.0.0.1.
        assert_eq!(
            a.admit(&req(
                "evil.example:8080",
                Some("http://evil.example:8080"),
                t
            )),
            Err(Denied::Host)
        );
        assert!(a.is_allowed_origin("TAURI://localhost/"));
        assert_eq!(
            a.frame_ancestors(),
            "'self' tauri://localhost http://jupyter.example:8888"
        );
    }

    #[test]
    fn unspecified_address_answers_to_any_ip() {
        let a = Access::new(AccessSettings {
            tokens: None,
            allowed_origins: vec![],
            address: "0.0.0.0".into(),
            bound: Ipv4Addr::UNSPECIFIED.into(),
            http_port: 8080,
            view_only: true,
            relay_origin: None,
        });
        assert_eq!(
            a.admit(&req(
                "192.168.1.20:8080",
                Some("http://192.168.1.20:8080"),
                None
            )),
            Ok(Role::View),
            "view-only makes every link a view link"
        );
        assert_eq!(
            a.admit(&req("evil.example:8080", None, None)),
            Err(Denied::Host)
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(split_host("[::1]:8080"), ("::1".into(), Some(8080)));
        assert_eq!(split_host("LocalHost"), ("localhost".into(), None));
        assert_eq!(split_host("::1"), ("::1".into(), None));
        assert_eq!(
            query_param("a=1&rfb_token=x%2By&b", "rfb_token").as_deref(),
            Some("x+y")
        );
        assert!(valid_token(&generate_token().unwrap()));
        assert!(!valid_token("has space in it"));
        assert!(!valid_token("short"));
        assert_ne!(generate_token().unwrap(), generate_token().unwrap());
    }
}
