// SPDX-License-Identifier: MPL-2.0

//! The `rfb` binary, run as a user runs it. Every wait is bounded: a child that outlives its
//! deadline is killed and the test fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const RFB: &str = env!("CARGO_BIN_EXE_rfb");
/// Generous: the machine is shared and encoders are slow in debug-less CI.
const DEADLINE: Duration = Duration::from_secs(60);

fn rfb(args: &[&str]) -> Command {
    let mut cmd = Command::new(RFB);
    cmd.args(args)
        // rfbsink is registered by the binary itself; make sure nothing else provides it.
        .env_remove("GST_PLUGIN_PATH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs to completion within DEADLINE.
fn output(args: &[&str]) -> Output {
    let mut child = rfb(args).spawn().expect("spawn rfb");
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = thread::spawn(move || read_all(stdout));
    let err = thread::spawn(move || read_all(stderr));
    let status = wait_for(&mut child, DEADLINE)
        .unwrap_or_else(|| panic!("rfb {args:?} did not finish in {DEADLINE:?}"));
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = r.read_to_end(&mut buf);
    buf
}

/// Waits for the child, killing it at the deadline (then None).
fn wait_for(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn has_element(name: &str) -> bool {
    Command::new("gst-inspect-1.0")
        .arg("--exists")
        .arg(name)
        .status()
        .is_ok_and(|s| s.success())
}

/// Skips (with the reason printed) when an element the test needs is missing.
macro_rules! require_elements {
    ($($name:expr),+) => {
        for name in [$($name),+] {
            if !has_element(name) {
                eprintln!("skipped: GStreamer element {name} is not installed");
                return;
            }
        }
    };
}

/// Streams the child's stdout lines into a channel (so that reads can time out).
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The viewer URL `rfb` prints, within DEADLINE.
fn wait_for_url(lines: &mpsc::Receiver<String>, seen: &mut Vec<String>) -> Option<String> {
    let end = Instant::now() + DEADLINE;
    while let Ok(line) = lines.recv_timeout(end.saturating_duration_since(Instant::now())) {
        seen.push(line.clone());
        if let Some(url) = line.strip_prefix("rfb: viewer at ") {
            return Some(url.split_whitespace().next().unwrap_or(url).to_owned());
        }
    }
    None
}

/// "http://127.0.0.1:PORT/?rfb_token=T" -> ("127.0.0.1:PORT", "/?rfb_token=T")
fn host_port(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    (addr.to_owned(), path.to_owned())
}

fn get(url: &str) -> String {
    let (addr, path) = host_port(url);
    let mut stream = TcpStream::connect(&addr).expect("connect to the viewer");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

/// The viewer's URL as rfb prints it: the bound port and the control link's token.
fn is_viewer_url(url: &str) -> bool {
    let Some((port, token)) = url
        .strip_prefix("http://127.0.0.1:")
        .and_then(|r| r.split_once("/?rfb_token="))
    else {
        return false;
    };
    port.parse::<u16>().is_ok_and(|p| p != 0)
        && token.len() == 48
        && token.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn launch_prints_the_url_serves_the_viewer_and_exits_0_at_eos() {
    require_elements!("videotestsrc", "jpegenc");
    // is-live paces the 30 frames (1 s), which leaves time to fetch the page.
    let mut child = rfb(&[
        "launch",
        "videotestsrc is-live=true num-buffers=30 ! jpegenc ! rfbsink port=0",
    ])
    .spawn()
    .unwrap();
    let lines = lines_of(&mut child);
    let mut seen = Vec::new();
    let url = wait_for_url(&lines, &mut seen);
    let response = url.as_deref().map(get);
    let status = wait_for(&mut child, DEADLINE);
    let url = url.unwrap_or_else(|| panic!("no viewer URL in {seen:?}"));
    assert!(is_viewer_url(&url), "{url}");
    let response = response.unwrap();
    let head = response
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    let status = status.expect("rfb launch did not exit at EOS");
    assert!(status.success(), "{status:?}");
}

#[test]
fn launch_without_live_source_exits_0_at_eos() {
    require_elements!("videotestsrc", "jpegenc");
    let out = output(&[
        "launch",
        "videotestsrc num-buffers=30 ! jpegenc ! rfbsink port=0",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let url = stdout
        .lines()
        .find_map(|l| l.strip_prefix("rfb: viewer at "))
        .unwrap_or_else(|| panic!("no URL in {stdout}"));
    assert!(is_viewer_url(url), "{url}");
}

#[test]
fn launch_takes_the_pipeline_as_several_arguments() {
    require_elements!("videotestsrc", "jpegenc");
    let out = output(&[
        "launch",
        "videotestsrc",
        "num-buffers=5",
        "!",
        "jpegenc",
        "!",
        "rfbsink",
        "port=0",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("rfb: viewer at http://127.0.0.1:"));
}

#[test]
fn launch_bad_element_exits_2_naming_it() {
    let out = output(&["launch", "videotestsrc ! nosuchelementfoo ! fakesink"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("rfb: cannot build the pipeline: no element \"nosuchelementfoo\""),
        "{err}"
    );
}

#[test]
fn launch_bad_property_and_bad_link_exit_2() {
    require_elements!("videotestsrc", "fakesink");
    let out = output(&["launch", "videotestsrc nosuchprop=1 ! fakesink"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("nosuchprop"),
        "{}",
        text(&out.stderr)
    );

    let out = output(&["launch", "fakesink ! fakesink"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot build the pipeline"));
}

#[test]
fn launch_runtime_error_exits_1_with_the_element() {
    require_elements!("videotestsrc", "jpegenc");
    // Two sinks on one port: the second cannot listen.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let pipeline = format!("videotestsrc num-buffers=30 ! jpegenc ! rfbsink name=busy port={port}");
    let out = output(&["launch", &pipeline]);
    drop(listener);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("rfb: error from"), "{err}");
    assert!(err.contains("busy"), "{err}");
}

#[test]
fn serve_dry_run_for_each_codec() {
    for (codec, encoder) in [
        ("h264", None),
        ("jpeg", Some("jpegenc")),
        ("png", Some("pngenc")),
        ("webp", Some("webpenc")),
        ("vp8", Some("vp8enc")),
        ("vp9", Some("vp9enc")),
        ("av1", Some("av1enc")),
    ] {
        let out = output(&["serve", "--dry-run", "--codec", codec]);
        assert!(out.status.success(), "{codec}: {}", text(&out.stderr));
        let line = text(&out.stdout);
        let line = line.trim();
        // h264 with --encoder auto: whichever H.264 encoder this machine has.
        let encoder = encoder.unwrap_or_else(|| {
            ["nvh264enc", "x264enc", "openh264enc"]
                .into_iter()
                .find(|e| line.contains(e))
                .unwrap_or("x264enc")
        });
        assert!(line.contains(encoder), "{codec}: {line}");
        let queue = line
            .find("queue max-size-buffers=1 max-size-bytes=0 max-size-time=0 leaky=downstream")
            .unwrap_or_else(|| panic!("{codec}: no leaky queue in {line}"));
        assert!(queue < line.find(encoder).unwrap(), "{codec}: {line}");
        assert!(line.starts_with("videotestsrc is-live=true"), "{line}");
        assert!(line.ends_with("rfbsink port=8080"), "{line}");
    }
}

#[test]
fn serve_dry_run_options() {
    let out = output(&[
        "serve",
        "--dry-run",
        "--encoder",
        "x264",
        "--fps",
        "25",
        "--size",
        "640x360",
        "--bitrate",
        "1500",
        "--port",
        "9000",
        "--address",
        "0.0.0.0",
        "--view-only",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(
        line.contains("width=640,height=360,framerate=25/1"),
        "{line}"
    );
    assert!(line.contains("format=I420"), "{line}");
    assert!(
        line.contains(
            "x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max=50 bitrate=1500"
        ),
        "{line}"
    );
    assert!(line.contains("rfbsink port=9000 address=0.0.0.0 view-only=true"));

    let out = output(&["serve", "--dry-run", "--source", "stdin", "--codec", "vp9"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("fdsrc fd=0 ! decodebin"));
}

#[test]
fn serve_rejects_bad_values() {
    for (args, expect) in [
        (&["--codec", "nope"][..], "nope"),
        (&["--size", "big"], "WIDTHxHEIGHT"),
        (&["--size", "641x480"], "even"),
        (&["--fps", "0"], "--fps"),
        (&["--fps", "1000"], "--fps"),
        (&["--source", "camera"], "test, screen, file:PATH or stdin"),
        (&["--codec", "vp8", "--encoder", "x264"], "--codec h264"),
    ] {
        let mut all = vec!["serve", "--dry-run"];
        all.extend_from_slice(args);
        let out = output(&all);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn serve_missing_file_or_display_exits_2() {
    let out = output(&["serve", "--source", "file:/nonexistent/video.mkv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/video.mkv"));

    let mut cmd = rfb(&["serve", "--source", "screen", "--port", "0"]);
    cmd.env_remove("DISPLAY");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("DISPLAY") || err.contains("ximagesrc"),
        "{err}"
    );
}

#[test]
fn serve_missing_encoder_names_the_package() {
    if has_element("nvh264enc") {
        eprintln!("skipped: nvh264enc is installed, so it cannot be missing");
        return;
    }
    let out = output(&["serve", "--encoder", "nvh264", "--port", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("nvh264enc"), "{err}");
    assert!(err.contains("gstreamer1.0-plugins-bad"), "{err}");
}

#[test]
fn serve_runs_and_sigint_exits_0() {
    require_elements!("videotestsrc", "jpegenc", "videoconvert");
    let mut child = rfb(&[
        "serve", "--source", "test", "--codec", "jpeg", "--size", "320x240", "--port", "0",
    ])
    .spawn()
    .unwrap();
    let lines = lines_of(&mut child);
    let mut seen = Vec::new();
    let url = wait_for_url(&lines, &mut seen);
    if url.is_some() {
        // SAFETY: kill(2) on the pid of a child we own and have not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    }
    let status = wait_for(&mut child, Duration::from_secs(20));
    let url = url.unwrap_or_else(|| panic!("no viewer URL in {seen:?}"));
    assert!(is_viewer_url(&url), "{url}");
    assert!(
        seen.iter()
            .any(|l| l.starts_with("rfb: running: gst-launch-1.0 videotestsrc")),
        "{seen:?}"
    );
    let status = status.expect("rfb serve did not exit after SIGINT");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn demo_dry_run_draws_the_pointer() {
    let out = output(&["demo", "--dry-run", "--port", "0"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(line.contains("navigationtest"), "{line}");
    assert!(line.contains("leaky=downstream"), "{line}");
    assert!(line.trim_end().ends_with("rfbsink port=0"), "{line}");
}

#[test]
fn help_and_version() {
    let out = output(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for cmd in ["launch", "serve", "demo"] {
        assert!(help.contains(cmd), "{help}");
    }
    let out = output(&["serve", "--help"]);
    let help = text(&out.stdout);
    assert!(help.contains("--codec") && help.contains("stdin"), "{help}");
    let out = output(&["--version"]);
    assert!(text(&out.stdout).starts_with("rfb "));
}

#[test]
fn bench_lists_its_scenarios() {
    // `rfb bench` runs the source tree's benchmark; --list prints the scenarios and exits.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rfb"))
        .args(["bench", "--list"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("h264 1280x720@30"), "{stdout}");

    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_rfb"))
        .args(["bench", "--list"])
        .env("RFB_BENCH_SCRIPT", "/nonexistent/bench.mjs")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("source tree"));
}
