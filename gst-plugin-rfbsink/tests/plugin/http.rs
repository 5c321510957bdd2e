// SPDX-License-Identifier: MPL-2.0

// The viewer's files over plain HTTP, as a browser fetches them: gzip where the client takes it,
// "not modified" where it has them already.

use std::io::{Read, Write};

use flate2::read::GzDecoder;

use crate::common::*;

/// A response: its status, its headers (names lowercased) and its body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// GET `path` with `headers` (lines "Name: value"), over plain TCP.
fn get(port: u16, path: &str, headers: &[&str]) -> Reply {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn web_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../web/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn the_viewers_files_come_gzipped_to_a_browser_and_not_again_once_it_has_them() {
    let h = harness("");
    let port = port(&h);
    let file = web_file("decode-worker.js");

    // A browser takes gzip: a third of the bytes or less, the same file once unpacked; `*` takes
    // it too.
    let star = get(port, "/decode-worker.js", &["Accept-Encoding: *"]);
    assert_eq!(star.header("content-encoding"), Some("gzip"));
    let gz = get(
        port,
        "/decode-worker.js",
        &["Accept-Encoding: gzip, deflate, br"],
    );
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert!(
        gz.header("vary")
            .is_some_and(|v| v.contains("Accept-Encoding")),
        "{:?}",
        gz.headers
    );
    assert!(
        gz.body.len() * 3 < file.len(),
        "{} bytes gzipped of {}",
        gz.body.len(),
        file.len()
    );
    let mut unpacked = Vec::new();
    GzDecoder::new(&gz.body[..])
        .read_to_end(&mut unpacked)
        .unwrap();
    assert_eq!(unpacked, file);

    // A client that does not take it (or refuses it by quality 0) gets the file itself.
    for accept in [
        None,
        Some("Accept-Encoding: gzip;q=0, identity"),
        Some("Accept-Encoding: *, gzip;q=0"),
        Some("Accept-Encoding: br"),
    ] {
        let plain = get(port, "/decode-worker.js", accept.as_slice());
        assert_eq!(plain.status, 200, "{accept:?}");
        assert_eq!(plain.header("content-encoding"), None, "{accept:?}");
        assert_eq!(plain.body, file, "{accept:?}");
        assert_ne!(
            plain.header("etag"),
            gz.header("etag"),
            "one tag per representation"
        );
    }

    // A reload revalidates: what it holds is named by its tag, and nothing is sent again.
    let etag = gz.header("etag").unwrap();
    let again = get(
        port,
        "/decode-worker.js",
        &["Accept-Encoding: gzip", &format!("If-None-Match: {etag}")],
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag));
    assert_eq!(
        again.header("cache-control"),
        Some("no-cache"),
        "revalidated on every load: a new build never mixes with the old one's files"
    );
    // Another file's tag, or an old build's, gets the file.
    let stale = get(
        port,
        "/decode-worker.js",
        &[
            "Accept-Encoding: gzip",
            "If-None-Match: \"0000000000000000\"",
        ],
    );
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, gz.body);
    let other = get(
        port,
        "/protocol.js",
        &["Accept-Encoding: gzip", &format!("If-None-Match: {etag}")],
    );
    assert_eq!(other.status, 200);

    // An unknown file is still 404, gzip or not.
    assert_eq!(
        get(port, "/nothing.js", &["Accept-Encoding: gzip"]).status,
        404
    );
}
