// SPDX-License-Identifier: MPL-2.0

//! `rfb`: run GStreamer pipelines that end in rfbsink and watch them in a browser.

mod pipeline;
mod run;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use pipeline::{Codec, Encoder, ServeOptions, Size, Source};
use run::{EXIT_ERROR, EXIT_USAGE};

#[derive(Parser)]
#[command(
    name = "rfb",
    version,
    about = "Serve a GStreamer pipeline's video to browsers (rfbsink: WebCodecs viewer, input back \
             as navigation events)",
    after_help = "Examples:\n  \
      rfb demo                                   # open http://127.0.0.1:8080 and move the pointer\n  \
      rfb serve --source screen --size 1920x1080 # share the X display\n  \
      rfb serve --source file:movie.mkv --codec vp9\n  \
      rfb launch 'videotestsrc is-live=true ! x264enc tune=zerolatency ! rfbsink port=8080'\n\n\
      Exit status: 0 at end of stream, 1 on a pipeline error, 2 for a bad command line or\n\
      pipeline, 130 when stopped by Ctrl-C without reaching the end of stream."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a gst-launch-1.0 pipeline (rfbsink included, no GST_PLUGIN_PATH needed)
    #[command(
        long_about = "Run a gst-launch-1.0 pipeline. rfbsink is built in. The viewer URL \
        of each rfbsink is printed when it listens. Ctrl-C sends end-of-stream and exits when it \
        arrives (a second Ctrl-C, or 5 s without it, stops at once)."
    )]
    Launch {
        /// The pipeline: one quoted argument, or several as gst-launch-1.0 takes them
        #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true,
              value_name = "PIPELINE")]
        pipeline: Vec<String>,
    },
    /// Serve a source with a low-latency encoder setup (prints the pipeline it runs)
    #[command(after_help = "Sources:\n  \
        test        videotestsrc, live\n  \
        screen      the X display ($DISPLAY), ximagesrc\n  \
        file:PATH   a media file, decoded and played at real time\n  \
        stdin       a media stream on standard input, decoded; e.g.\n              \
        ffmpeg -re -i in.mp4 -c:v copy -an -f matroska - | rfb serve --source stdin\n              \
        ffmpeg -f v4l2 -i /dev/video0 -c:v rawvideo -f nut - | rfb serve --source stdin\n              \
        (matroska, nut and mpegts all work; -re keeps a file at real time)\n\n\
        Frames are dropped before the encoder (a one-frame leaky queue), so a slow encoder\n\
        lowers the frame rate, never adds latency.")]
    Serve(ServeArgs),
    /// Interactive demo: the browser's pointer draws on the picture
    Demo(DemoArgs),
    /// The latency/throughput benchmark (real pipelines, headless Chromium, a WebRTC baseline)
    #[command(
        long_about = "Run the benchmark of the rfbsink source tree (tests/bench/bench.mjs, with         node): H.264, JPEG and every other available codec at several sizes and rates, 1/8/32         viewers, WebSocket and WebTransport, against webrtcbin in a private network namespace         (needs root). Prints a table and writes JSON and a plot to tests/bench/out/. Arguments         go to the benchmark: --quick (about 2 minutes), --only REGEX, --list, --help."
    )]
    Bench {
        /// Arguments for the benchmark
        #[arg(num_args = 0.., trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<String>,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// test, screen, file:PATH or stdin
    #[arg(long, default_value = "test", value_parser = parse_source)]
    source: Source,
    #[arg(long, value_enum, default_value = "h264")]
    codec: Codec,
    /// H.264 encoder; auto: nvh264enc (NVIDIA GPU) when present, else x264enc
    #[arg(long, value_enum, default_value = "auto")]
    encoder: Encoder,
    /// Picture size WIDTHxHEIGHT [default: 1280x720 for test, the source's own otherwise]
    #[arg(long, value_parser = parse_size, value_name = "WxH")]
    size: Option<Size>,
    /// Frames per second (at most)
    #[arg(long, default_value_t = pipeline::DEFAULT_FPS)]
    fps: u32,
    /// TCP port of the viewer (0: any free port)
    #[arg(long, default_value_t = pipeline::DEFAULT_PORT)]
    port: u16,
    /// Address to listen on [default: 127.0.0.1; 0.0.0.0 for every interface]
    #[arg(long)]
    address: Option<String>,
    /// Bitrate in kbit/s (video codecs)
    #[arg(long, default_value_t = pipeline::DEFAULT_BITRATE_KBPS, value_name = "KBPS")]
    bitrate: u32,
    /// Quality 0-100 (jpeg, webp) [default: 85 for jpeg, 80 for webp]
    #[arg(long)]
    quality: Option<u32>,
    /// videotestsrc pattern for --source test (ball, smpte, snow, ...)
    #[arg(long, default_value = "ball")]
    pattern: String,
    /// Ignore input from the browsers
    #[arg(long)]
    view_only: bool,
    /// Whom the encoder's bitrate follows: auto (control, for the codecs rfbsink drives; png
    /// keeps its settings), off (its own --bitrate), slowest (the slowest viewer's link, at
    /// most --bitrate) or control (the slowest on the control link: view-link viewers cannot
    /// lower it)
    #[arg(long, value_enum, default_value = "auto")]
    rate_control: RateControl,
    /// Extra renditions for viewers on slower links, WxH@KBPS[,WxH@KBPS...] (e.g.
    /// 640x360@600): each viewer gets the best one its link carries
    #[arg(long, value_delimiter = ',', value_parser = parse_rung, value_name = "WxH@KBPS")]
    ladder: Vec<pipeline::Rung>,
    /// Also publish the stream once to this Media over QUIC relay (moq-relay): https://HOST:PORT/PATH,
    /// or http:// for a relay with a generated certificate; for audiences past one machine
    #[arg(long, value_name = "URL")]
    relay: Option<String>,
    /// The broadcast's name on the relay
    #[arg(
        long,
        default_value = "rfbsink",
        value_name = "NAME",
        requires = "relay"
    )]
    relay_broadcast: String,
    /// Sound, as Opus to every viewer: none, test (a tick a second), pulse (the default
    /// PulseAudio/PipeWire source), pulse:DEVICE (e.g. a sink's .monitor: what the desktop
    /// plays) or file (the sound of --source file:PATH or stdin)
    #[arg(long, default_value = "none", value_parser = parse_audio, value_name = "SOURCE")]
    audio: pipeline::Audio,
    /// Print the pipeline and exit
    #[arg(long)]
    dry_run: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RateControl {
    Auto,
    Off,
    Slowest,
    Control,
}

#[derive(Args)]
struct DemoArgs {
    /// TCP port of the viewer (0: any free port)
    #[arg(long, default_value_t = pipeline::DEFAULT_PORT)]
    port: u16,
    /// Address to listen on [default: 127.0.0.1]
    #[arg(long)]
    address: Option<String>,
    /// Print the pipeline and exit
    #[arg(long)]
    dry_run: bool,
}

fn parse_source(s: &str) -> Result<Source, String> {
    s.parse().map_err(|e: pipeline::Error| e.to_string())
}

fn parse_audio(s: &str) -> Result<pipeline::Audio, String> {
    s.parse().map_err(|e: pipeline::Error| e.to_string())
}

fn parse_rung(s: &str) -> Result<pipeline::Rung, String> {
    s.parse().map_err(|e: pipeline::Error| e.to_string())
}

fn parse_size(s: &str) -> Result<Size, String> {
    s.parse().map_err(|e: pipeline::Error| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = run::init() {
        eprintln!("rfb: {e}");
        return ExitCode::from(EXIT_ERROR);
    }
    match cli.command {
        Command::Launch { pipeline } => launch(&pipeline, None),
        Command::Serve(args) => serve(args),
        Command::Demo(args) => demo(args),
        Command::Bench { args } => bench(&args),
    }
}

/// The benchmark lives in the source tree (it drives Chromium with node): run it from there.
fn bench(args: &[String]) -> ExitCode {
    let script = std::env::var_os("RFB_BENCH_SCRIPT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/bench/bench.mjs")
        });
    if !script.exists() {
        eprintln!(
            "rfb: the benchmark is not at {}: rfb bench runs it from the rfbsink source tree \
             (or set RFB_BENCH_SCRIPT)",
            script.display()
        );
        return ExitCode::from(EXIT_USAGE);
    }
    match std::process::Command::new("node")
        .arg(&script)
        .args(args)
        .status()
    {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("rfb: cannot run node ({e}): the benchmark needs Node.js (make deps)");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn launch(args: &[String], hint: Option<&str>) -> ExitCode {
    match run::build(args) {
        Ok(pipeline) => run::run(&pipeline, hint),
        Err(e) => {
            eprintln!("rfb: cannot build the pipeline: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let encoder = match (args.codec, args.encoder) {
        (Codec::H264, Encoder::Auto) => pipeline::resolve_auto(run::has_element),
        (_, e) => e,
    };
    let opts = ServeOptions {
        source: args.source,
        codec: args.codec,
        encoder,
        size: args.size,
        fps: args.fps,
        port: args.port,
        address: args.address,
        bitrate_kbps: args.bitrate,
        quality: args.quality,
        pattern: args.pattern,
        view_only: args.view_only,
        rate_control: match args.rate_control {
            RateControl::Auto => None,
            RateControl::Off => Some("off"),
            RateControl::Slowest => Some("slowest"),
            RateControl::Control => Some("control"),
        },
        interactive: pipeline::Interactive::Off,
        ladder: args.ladder,
        relay: args.relay.map(|url| (url, args.relay_broadcast)),
        audio: args.audio,
    };
    run_built(&opts, args.dry_run, None)
}

fn demo(args: DemoArgs) -> ExitCode {
    let encoder = [Encoder::Nvh264, Encoder::X264, Encoder::Openh264]
        .into_iter()
        .find(|e| run::has_element(e.element()));
    let opts = pipeline::demo_options(
        args.port,
        args.address,
        encoder,
        run::has_element("textoverlay"),
    );
    run_built(
        &opts,
        args.dry_run,
        Some(
            "open it in a browser and move the pointer over the picture: a box follows it, \
             clicks leave marks (Ctrl-C stops)",
        ),
    )
}

/// Builds the pipeline line of `opts`; prints it (`dry_run`) or checks and runs it.
fn run_built(opts: &pipeline::ServeOptions, dry_run: bool, hint: Option<&str>) -> ExitCode {
    let line = match pipeline::pipeline_line(opts) {
        Ok(line) => line,
        Err(e) => {
            eprintln!("rfb: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if dry_run {
        println!("{line}");
        return ExitCode::SUCCESS;
    }
    if let Err(e) = preflight(&opts.source, &line) {
        eprintln!("rfb: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    print_line(&line);
    launch(&[line], hint)
}

fn print_line(line: &str) {
    println!("rfb: running: gst-launch-1.0 {line}");
    println!(
        "rfb: (rfbsink is built into rfb; for gst-launch-1.0 set GST_PLUGIN_PATH to the plugin)"
    );
}

/// Checks what would otherwise fail later with a vaguer message: missing elements (named with
/// the package to install), no X display, no such file.
fn preflight(source: &Source, line: &str) -> Result<(), String> {
    let missing: Vec<String> = pipeline::elements_of(line)
        .into_iter()
        .filter(|e| !run::has_element(e))
        .map(|e| format!("no element \"{e}\": install {}", pipeline::package_of(e)))
        .collect();
    if !missing.is_empty() {
        return Err(missing.join("\nrfb: "));
    }
    match source {
        Source::Screen if std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) => {
            Err("--source screen captures an X display, but $DISPLAY is not set".to_owned())
        }
        Source::File(path) if !path.is_file() => Err(format!("no such file: {}", path.display())),
        _ => Ok(()),
    }
}
