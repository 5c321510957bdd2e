// SPDX-License-Identifier: MPL-2.0

//! Pipeline lines for `rfb serve` and `rfb demo`: pure string building, no GStreamer calls, so
//! that every choice (leaky queue, caps, encoder settings) is unit tested.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub const DEFAULT_SIZE: Size = Size {
    width: 1280,
    height: 720,
};
pub const DEFAULT_FPS: u32 = 30;
pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_BITRATE_KBPS: u32 = 4000;
pub const DEFAULT_JPEG_QUALITY: u32 = 85;
pub const DEFAULT_WEBP_QUALITY: u32 = 80;
pub const MAX_FPS: u32 = 240;
pub const MIN_SIDE: u32 = 16;
pub const MAX_SIDE: u32 = 8192;

/// Drops frames before the encoder, never after it: the encoder only ever sees the newest frame,
/// and a slow encoder costs frame rate, not latency.
pub const LEAKY_QUEUE: &str =
    "queue max-size-buffers=1 max-size-bytes=0 max-size-time=0 leaky=downstream";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Where the pictures come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `videotestsrc is-live=true`.
    Test,
    /// The X display (`ximagesrc`).
    Screen,
    /// A media file, decoded and played at real time.
    File(PathBuf),
    /// A media stream on standard input (matroska, nut, mpeg-ts, ...), decoded.
    Stdin,
}

impl FromStr for Source {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "test" => Ok(Self::Test),
            "screen" => Ok(Self::Screen),
            "stdin" | "-" => Ok(Self::Stdin),
            _ => match s.strip_prefix("file:") {
                Some("") => Err(Error::new("file: needs a path, e.g. file:video.mkv")),
                Some(path) => Ok(Self::File(PathBuf::from(path))),
                None => Err(Error::new(format!(
                    "unknown source {s:?}: use test, screen, file:PATH or stdin"
                ))),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Codec {
    H264,
    Jpeg,
    Png,
    Webp,
    Vp8,
    Vp9,
    Av1,
}

/// Which H.264 encoder; `Auto` is resolved against the registry by the caller
/// (see [`resolve_auto`]) and means x264enc here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoder {
    Auto,
    X264,
    Nvh264,
    Openh264,
}

impl Encoder {
    pub fn element(self) -> &'static str {
        match self {
            Self::Auto | Self::X264 => "x264enc",
            Self::Nvh264 => "nvh264enc",
            Self::Openh264 => "openh264enc",
        }
    }
}

/// `--encoder auto`: a GPU encoder when there is one, else x264enc, else openh264enc.
pub fn resolve_auto(has_element: impl Fn(&str) -> bool) -> Encoder {
    [Encoder::Nvh264, Encoder::X264, Encoder::Openh264]
        .into_iter()
        .find(|e| has_element(e.element()))
        .unwrap_or(Encoder::X264)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl FromStr for Size {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::new(format!("bad size {s:?}: use WIDTHxHEIGHT, e.g. 1280x720"));
        let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
        let size = Size {
            width: w.trim().parse().map_err(|_| bad())?,
            height: h.trim().parse().map_err(|_| bad())?,
        };
        size.check()?;
        Ok(size)
    }
}

impl Size {
    fn check(self) -> Result<(), Error> {
        let Size { width, height } = self;
        if !(MIN_SIDE..=MAX_SIDE).contains(&width) || !(MIN_SIDE..=MAX_SIDE).contains(&height) {
            return Err(Error::new(format!(
                "size {width}x{height} is out of range: each side must be {MIN_SIDE} to {MAX_SIDE}"
            )));
        }
        // 4:2:0 chroma is subsampled by two both ways, and browsers' decoders want whole blocks.
        if width % 2 != 0 || height % 2 != 0 {
            return Err(Error::new(format!(
                "size {width}x{height}: width and height must be even"
            )));
        }
        Ok(())
    }
}

/// One extra rendition (`--ladder`): the picture scaled to `size`, encoded at `kbps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    pub size: Size,
    pub kbps: u32,
}

/// At most this many rungs: rfbsink's rendition pads are rendition_1 to rendition_8.
pub const MAX_RUNGS: usize = 8;

impl FromStr for Rung {
    type Err = Error;

    /// `WIDTHxHEIGHT@KBPS`, e.g. `640x360@600`.
    fn from_str(s: &str) -> Result<Self, Error> {
        let (size, kbps) = s.split_once('@').ok_or_else(|| {
            Error::new(format!(
                "rendition {s:?}: expected WIDTHxHEIGHT@KBPS, e.g. 640x360@600"
            ))
        })?;
        let size: Size = size.parse()?;
        let kbps = kbps
            .parse::<u32>()
            .ok()
            .filter(|k| (1..=1_000_000).contains(k))
            .ok_or_else(|| {
                Error::new(format!(
                    "rendition {s:?}: the bitrate must be 1 to 1000000 (kbit/s)"
                ))
            })?;
        Ok(Rung { size, kbps })
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// Pointer feedback drawn into the picture (`rfb demo`): `navigationtest` draws a box where the
/// browser's pointer is and marks where it clicks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interactive {
    #[default]
    Off,
    Pointer,
    /// Also a caption telling the user what to do (needs textoverlay, gstreamer1.0-x).
    PointerWithCaption,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    pub source: Source,
    pub codec: Codec,
    pub encoder: Encoder,
    /// `None`: 1280x720 for the test source, the source's own size otherwise.
    pub size: Option<Size>,
    pub fps: u32,
    pub port: u16,
    pub address: Option<String>,
    pub bitrate_kbps: u32,
    /// JPEG/WebP quality 0..=100; `None`: the codec's default.
    pub quality: Option<u32>,
    /// videotestsrc pattern (test source only).
    pub pattern: String,
    pub view_only: bool,
    /// rfbsink's `rate-control`: `None` (its default, auto), `Some("off")`, `Some("slowest")`
    /// or `Some("control")`.
    pub rate_control: Option<&'static str>,
    pub interactive: Interactive,
    /// Extra renditions for viewers on slower links (rfbsink's `rendition_N` pads).
    pub ladder: Vec<Rung>,
    /// A Media over QUIC relay to publish to as well: (rfbsink's `relay-url`, `relay-broadcast`).
    pub relay: Option<(String, String)>,
    /// Sound for rfbsink's `audio` pad.
    pub audio: Audio,
}

/// Where the sound comes from (`--audio`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Audio {
    #[default]
    None,
    /// `audiotestsrc wave=ticks`: a tick a second.
    Test,
    /// A PulseAudio (or PipeWire) source: the default one, or a device by name (a sink's
    /// `.monitor` streams what the desktop plays).
    Pulse(Option<String>),
    /// The sound of `--source file:PATH` or `stdin`.
    File,
}

impl FromStr for Audio {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "none" | "off" => Ok(Self::None),
            "test" => Ok(Self::Test),
            "pulse" => Ok(Self::Pulse(None)),
            "file" => Ok(Self::File),
            _ => match s.strip_prefix("pulse:") {
                Some(device) if !device.is_empty() => Ok(Self::Pulse(Some(device.to_owned()))),
                _ => Err(Error::new(format!(
                    "unknown audio {s:?}: use none, test, pulse, pulse:DEVICE or file"
                ))),
            },
        }
    }
}

/// Raw sound to rfbsink's audio pad: Opus at 10 ms a packet (half opusenc's default: less
/// latency for a little more bitrate).
const OPUS_TO_SINK: &str = "audioconvert ! audioresample ! opusenc frame-size=10 ! sink.audio";

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            source: Source::Test,
            codec: Codec::H264,
            encoder: Encoder::Auto,
            size: None,
            fps: DEFAULT_FPS,
            port: DEFAULT_PORT,
            address: None,
            bitrate_kbps: DEFAULT_BITRATE_KBPS,
            quality: None,
            pattern: "ball".to_owned(),
            view_only: false,
            rate_control: None,
            interactive: Interactive::Off,
            ladder: Vec::new(),
            relay: None,
            audio: Audio::None,
        }
    }
}

/// The options `rfb demo` serves.
pub fn demo_options(
    port: u16,
    address: Option<String>,
    encoder: Option<Encoder>,
    caption: bool,
) -> ServeOptions {
    let (codec, encoder) = match encoder {
        Some(e) => (Codec::H264, e),
        // No H.264 encoder at all: JPEG still shows the pointer, at a higher bitrate.
        None => (Codec::Jpeg, Encoder::Auto),
    };
    ServeOptions {
        codec,
        encoder,
        port,
        address,
        size: Some(DEFAULT_SIZE),
        // Colour bars: the pointer's box and the click marks stand out on them.
        pattern: "smpte".to_owned(),
        interactive: if caption {
            Interactive::PointerWithCaption
        } else {
            Interactive::Pointer
        },
        ..ServeOptions::default()
    }
}

pub const DEMO_CAPTION: &str = "Move the pointer over the picture; click to leave marks";

/// The gst-launch line that `rfb serve` runs.
pub fn pipeline_line(opts: &ServeOptions) -> Result<String, Error> {
    if opts.fps == 0 || opts.fps > MAX_FPS {
        return Err(Error::new(format!(
            "--fps {} is out of range: use 1 to {MAX_FPS}",
            opts.fps
        )));
    }
    if let Some(size) = opts.size {
        size.check()?;
    }
    if opts.codec != Codec::H264 && opts.encoder != Encoder::Auto {
        return Err(Error::new(format!(
            "--encoder {} is an H.264 encoder: use it with --codec h264",
            opts.encoder.element()
        )));
    }
    if opts.interactive != Interactive::Off && opts.source != Source::Test {
        return Err(Error::new("pointer feedback needs the test source"));
    }
    // Rate control sets a bitrate, or jpegenc's and webpenc's quality; pngenc is lossless.
    if opts.rate_control.is_some_and(|p| p != "off") && opts.codec == Codec::Png {
        return Err(Error::new(
            "--rate-control sets a bitrate or a quality: use it with --codec h264, vp8, vp9, av1, jpeg or webp, not png (lossless)",
        ));
    }
    // Renditions work with a bitrate; images have none. A relay's media format (hang) carries
    // video codecs only.
    let video = matches!(
        opts.codec,
        Codec::H264 | Codec::Vp8 | Codec::Vp9 | Codec::Av1
    );
    for (asked, what) in [
        (
            !opts.ladder.is_empty(),
            "--ladder adds encodings at lower bitrates",
        ),
        (
            opts.relay.is_some(),
            "--relay publishes what moq's media format carries",
        ),
    ] {
        if asked && !video {
            return Err(Error::new(format!(
                "{what}: use it with --codec h264, vp8, vp9 or av1, not {}",
                format!("{:?}", opts.codec).to_lowercase()
            )));
        }
    }
    if opts.ladder.len() > MAX_RUNGS {
        return Err(Error::new(format!(
            "--ladder has {} renditions: at most {MAX_RUNGS}",
            opts.ladder.len()
        )));
    }
    for rung in &opts.ladder {
        rung.size.check()?;
    }
    if opts.bitrate_kbps == 0 || opts.bitrate_kbps > 1_000_000 {
        return Err(Error::new(format!(
            "--bitrate {} is out of range: use 1 to 1000000 (kbit/s)",
            opts.bitrate_kbps
        )));
    }
    if let Some(q) = opts.quality {
        if q > 100 {
            return Err(Error::new(format!(
                "--quality {q} is out of range: use 0 to 100"
            )));
        }
    }
    if !is_plain_token(&opts.pattern) {
        return Err(Error::new(format!("bad pattern {:?}", opts.pattern)));
    }

    let fps = opts.fps;
    let mut parts: Vec<String> = Vec::new();
    // The source and anything that must see every frame (pacing, pointer drawing) before the
    // leaky queue; conversion and encoding after it.
    let size = match &opts.source {
        Source::Test => {
            let size = opts.size.unwrap_or(DEFAULT_SIZE);
            parts.push(format!(
                "videotestsrc is-live=true pattern={}",
                opts.pattern
            ));
            let format = if opts.interactive == Interactive::Off {
                ""
            } else {
                // navigationtest draws on I420 only.
                "format=I420,"
            };
            parts.push(format!(
                "video/x-raw,{format}width={},height={},framerate={fps}/1",
                size.width, size.height
            ));
            match opts.interactive {
                Interactive::Off => {}
                Interactive::Pointer => parts.push("navigationtest".to_owned()),
                Interactive::PointerWithCaption => {
                    parts.push("navigationtest".to_owned());
                    parts.push(format!(
                        "textoverlay text={} valignment=top halignment=left font-desc={} shaded-background=true",
                        quote(DEMO_CAPTION),
                        quote("Sans 20")
                    ));
                }
            }
            None // already the right size
        }
        Source::Screen => {
            parts.push("ximagesrc use-damage=false show-pointer=true".to_owned());
            parts.push(format!("video/x-raw,framerate={fps}/1"));
            opts.size
        }
        Source::File(path) => {
            let path = path
                .to_str()
                .ok_or_else(|| Error::new(format!("path {path:?} is not UTF-8")))?;
            parts.push(format!("filesrc location={}", quote(path)));
            parts.extend(decoded_at_real_time(fps));
            opts.size
        }
        Source::Stdin => {
            parts.push("fdsrc fd=0".to_owned());
            parts.extend(decoded_at_real_time(fps));
            opts.size
        }
    };
    parts.push(LEAKY_QUEUE.to_owned());
    parts.push("videoconvert".to_owned());
    // I420 whatever the source: left free, x264enc/vp9enc/av1enc pick 4:4:4 (and x264enc 10-bit)
    // from RGB sources, which browsers' decoders refuse. PNG is RGB.
    let format = if opts.codec == Codec::Png {
        "RGB"
    } else {
        "I420"
    };
    match size {
        Some(s) => {
            parts.push("videoscale".to_owned());
            parts.push(format!(
                "video/x-raw,format={format},width={},height={},pixel-aspect-ratio=1/1",
                s.width, s.height
            ));
        }
        None => parts.push(format!("video/x-raw,format={format}")),
    }
    let ladder = !opts.ladder.is_empty();
    if ladder {
        // One converted picture for every encoder; each branch has its own thread, and a slow
        // encoder drops its own frames, not the others'.
        parts.push("tee name=t".to_owned());
        parts.push(format!("t. ! {LEAKY_QUEUE}"));
    }
    parts.extend(encoder_parts(opts));
    let mut sink = format!("rfbsink port={}", opts.port);
    if ladder || opts.audio != Audio::None {
        sink = format!("rfbsink name=sink port={}", opts.port);
    }
    if let Some(address) = &opts.address {
        sink.push_str(&format!(" address={}", quote_if_needed(address)));
    }
    if opts.view_only {
        sink.push_str(" view-only=true");
    }
    if let Some(policy) = opts.rate_control {
        sink.push_str(&format!(" rate-control={policy}"));
    }
    if let Some((url, broadcast)) = &opts.relay {
        sink.push_str(&format!(
            " relay-url={} relay-broadcast={}",
            quote_if_needed(url),
            quote_if_needed(broadcast)
        ));
    }
    parts.push(sink);
    let mut line = parts
        .join(" ! ")
        .replace("tee name=t ! t. !", "tee name=t t. !");
    for (i, rung) in opts.ladder.iter().enumerate() {
        let mut branch = vec![
            format!("t. ! {LEAKY_QUEUE}"),
            "videoscale".to_owned(),
            format!(
                "video/x-raw,width={},height={},pixel-aspect-ratio=1/1",
                rung.size.width, rung.size.height
            ),
        ];
        branch.extend(encoder_parts(&ServeOptions {
            bitrate_kbps: rung.kbps,
            ladder: Vec::new(),
            ..opts.clone()
        }));
        branch.push(format!("sink.rendition_{}", i + 1));
        line.push_str("  ");
        line.push_str(&branch.join(" ! "));
    }
    let audio = match &opts.audio {
        Audio::None => None,
        Audio::Test => Some(
            "audiotestsrc is-live=true wave=ticks freq=880 volume=0.3 ! audio/x-raw,channels=2"
                .to_owned(),
        ),
        Audio::Pulse(None) => Some("pulsesrc".to_owned()),
        Audio::Pulse(Some(device)) => Some(format!("pulsesrc device={}", quote_if_needed(device))),
        Audio::File => match opts.source {
            // decodebin's sound, paced like its pictures.
            Source::File(_) | Source::Stdin => {
                Some("dec. ! queue ! audio/x-raw ! clocksync".to_owned())
            }
            _ => {
                return Err(Error::new(
                    "--audio file plays the sound of --source file:PATH or stdin",
                ))
            }
        },
    };
    if let Some(audio) = audio {
        line.push_str("  ");
        line.push_str(&audio);
        line.push_str(" ! ");
        line.push_str(OPUS_TO_SINK);
    }
    Ok(line)
}

/// decodebin's video, paced to the clock (a file or a pipe would otherwise be decoded as fast as
/// the CPU allows and the leaky queue would skip through it), at most `fps` frames a second.
fn decoded_at_real_time(fps: u32) -> [String; 4] {
    [
        "decodebin name=dec".to_owned(),
        // Links decodebin's video pad only, not its audio pads.
        "video/x-raw".to_owned(),
        "clocksync".to_owned(),
        format!("videorate drop-only=true max-rate={fps}"),
    ]
}

fn encoder_parts(opts: &ServeOptions) -> Vec<String> {
    let gop = 2 * opts.fps;
    let kbps = opts.bitrate_kbps;
    let bps = u64::from(kbps) * 1000;
    match opts.codec {
        Codec::H264 => vec![match opts.encoder {
            Encoder::Auto | Encoder::X264 => format!(
                "x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max={gop} bitrate={kbps}"
            ),
            Encoder::Nvh264 => format!(
                "nvh264enc preset=low-latency-hq zerolatency=true bframes=0 rc-mode=cbr gop-size={gop} bitrate={kbps}"
            ),
            Encoder::Openh264 => {
                let usage = if opts.source == Source::Screen {
                    "screen"
                } else {
                    "camera"
                };
                format!(
                    "openh264enc usage-type={usage} complexity=low rate-control=bitrate gop-size={gop} bitrate={bps}"
                )
            }
        }],
        Codec::Vp8 => vec![format!(
            "vp8enc deadline=1 cpu-used=8 lag-in-frames=0 end-usage=cbr keyframe-max-dist={gop} target-bitrate={bps}"
        )],
        Codec::Vp9 => vec![format!(
            "vp9enc deadline=1 cpu-used=8 row-mt=true lag-in-frames=0 end-usage=cbr keyframe-max-dist={gop} target-bitrate={bps}"
        )],
        // max-quantizer: av1enc's default of 0 makes libaom abort in CBR mode (GStreamer 1.22).
        // av1parse: av1enc leaves stream-format open, rfbsink wants obu-stream.
        Codec::Av1 => vec![
            format!(
                "av1enc usage-profile=realtime cpu-used=8 row-mt=true lag-in-frames=0 end-usage=cbr min-quantizer=0 max-quantizer=63 keyframe-max-dist={gop} target-bitrate={kbps}"
            ),
            "av1parse".to_owned(),
            "video/x-av1,stream-format=obu-stream,alignment=tu".to_owned(),
        ],
        Codec::Jpeg => vec![format!(
            "jpegenc quality={}",
            opts.quality.unwrap_or(DEFAULT_JPEG_QUALITY)
        )],
        Codec::Png => vec!["pngenc compression-level=1".to_owned()],
        Codec::Webp => vec![format!(
            "webpenc quality={} speed=0",
            opts.quality.unwrap_or(DEFAULT_WEBP_QUALITY)
        )],
    }
}

/// The element factory names in a pipeline line (caps filters left out).
pub fn elements_of(line: &str) -> Vec<&str> {
    line.split(" ! ")
        .filter_map(|part| part.split_whitespace().next())
        // Caps filters (video/x-raw) and pad references (t., sink.audio) are no elements.
        .filter(|first| !first.contains('/') && !first.contains('.'))
        .collect()
}

/// The Debian package that provides an element, for "install ..." messages.
pub fn package_of(element: &str) -> &'static str {
    match element {
        "x264enc" => "gstreamer1.0-plugins-ugly",
        "nvh264enc" => "gstreamer1.0-plugins-bad (and an NVIDIA GPU with its driver)",
        "openh264enc" | "av1enc" | "av1parse" | "webpenc" => "gstreamer1.0-plugins-bad",
        "vp8enc" | "vp9enc" | "jpegenc" | "pngenc" | "navigationtest" => {
            "gstreamer1.0-plugins-good"
        }
        "ximagesrc" => "gstreamer1.0-plugins-good (and an X display)",
        "textoverlay" => "gstreamer1.0-x",
        "queue" | "filesrc" | "fdsrc" | "clocksync" => "libgstreamer1.0-0",
        "pulsesrc" => "gstreamer1.0-pulseaudio (and a PulseAudio or PipeWire server)",
        "rfbsink" => "gst-plugin-rfbsink (built into rfb)",
        _ => "gstreamer1.0-plugins-base",
    }
}

fn is_plain_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

fn quote_if_needed(s: &str) -> String {
    if is_plain_token(s) {
        s.to_owned()
    } else {
        quote(s)
    }
}

/// A gst-launch double-quoted string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(opts: ServeOptions) -> String {
        pipeline_line(&opts).unwrap()
    }

    fn with_codec(codec: Codec) -> ServeOptions {
        ServeOptions {
            codec,
            ..ServeOptions::default()
        }
    }

    #[test]
    fn default_is_live_test_source_x264_with_leaky_queue_before_encoder() {
        let l = line(ServeOptions::default());
        assert_eq!(
            l,
            "videotestsrc is-live=true pattern=ball \
             ! video/x-raw,width=1280,height=720,framerate=30/1 \
             ! queue max-size-buffers=1 max-size-bytes=0 max-size-time=0 leaky=downstream \
             ! videoconvert ! video/x-raw,format=I420 \
             ! x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max=60 bitrate=4000 \
             ! rfbsink port=8080"
        );
        let queue = l.find("leaky=downstream").unwrap();
        assert!(queue < l.find("x264enc").unwrap());
    }

    #[test]
    fn every_codec_has_its_encoder_after_the_leaky_queue() {
        for (codec, encoder) in [
            (Codec::H264, "x264enc"),
            (Codec::Jpeg, "jpegenc"),
            (Codec::Png, "pngenc"),
            (Codec::Webp, "webpenc"),
            (Codec::Vp8, "vp8enc"),
            (Codec::Vp9, "vp9enc"),
            (Codec::Av1, "av1enc"),
        ] {
            let l = line(with_codec(codec));
            let enc = l
                .find(encoder)
                .unwrap_or_else(|| panic!("{encoder} in {l}"));
            assert!(l.find(LEAKY_QUEUE).unwrap() < enc, "{l}");
            assert!(l.ends_with("rfbsink port=8080"), "{l}");
            assert_eq!(
                elements_of(&l)
                    .iter()
                    .filter(|e| e.ends_with("enc"))
                    .count(),
                1
            );
        }
    }

    #[test]
    fn encoders_are_set_for_low_latency() {
        let fps = |codec, fps| {
            line(ServeOptions {
                codec,
                fps,
                bitrate_kbps: 1500,
                ..ServeOptions::default()
            })
        };
        assert!(fps(Codec::H264, 25).contains("key-int-max=50 bitrate=1500"));
        let vp8 = fps(Codec::Vp8, 30);
        assert!(
            vp8.contains("vp8enc deadline=1 cpu-used=8 lag-in-frames=0"),
            "{vp8}"
        );
        assert!(
            vp8.contains("keyframe-max-dist=60 target-bitrate=1500000"),
            "{vp8}"
        );
        let vp9 = fps(Codec::Vp9, 30);
        assert!(vp9.contains("vp9enc deadline=1 cpu-used=8 row-mt=true lag-in-frames=0"));
        let av1 = fps(Codec::Av1, 30);
        assert!(
            av1.contains("av1enc usage-profile=realtime cpu-used=8"),
            "{av1}"
        );
        assert!(
            av1.contains("target-bitrate=1500 ! av1parse ! video/x-av1,stream-format=obu-stream")
        );
        assert!(fps(Codec::Png, 30).contains("video/x-raw,format=RGB ! pngenc"));
        assert!(fps(Codec::Jpeg, 30).contains("format=I420 ! jpegenc quality=85"));
    }

    #[test]
    fn h264_encoders() {
        let enc = |encoder| {
            line(ServeOptions {
                encoder,
                ..ServeOptions::default()
            })
        };
        assert!(enc(Encoder::X264).contains("x264enc tune=zerolatency"));
        assert!(enc(Encoder::Nvh264)
            .contains("nvh264enc preset=low-latency-hq zerolatency=true bframes=0"));
        assert!(enc(Encoder::Openh264).contains("openh264enc usage-type=camera"));
        assert!(enc(Encoder::Openh264).contains("bitrate=4000000"));
    }

    #[test]
    fn auto_prefers_the_gpu_then_x264_then_openh264() {
        assert_eq!(resolve_auto(|_| true), Encoder::Nvh264);
        assert_eq!(resolve_auto(|e| e != "nvh264enc"), Encoder::X264);
        assert_eq!(resolve_auto(|e| e == "openh264enc"), Encoder::Openh264);
        assert_eq!(resolve_auto(|_| false), Encoder::X264);
    }

    #[test]
    fn screen_scales_only_when_asked() {
        let native = line(ServeOptions {
            source: Source::Screen,
            ..ServeOptions::default()
        });
        assert!(native.starts_with(
            "ximagesrc use-damage=false show-pointer=true ! video/x-raw,framerate=30/1 ! queue"
        ));
        assert!(!native.contains("videoscale"));
        let scaled = line(ServeOptions {
            source: Source::Screen,
            size: Some("1920x1080".parse().unwrap()),
            ..ServeOptions::default()
        });
        assert!(scaled.contains(
            "videoconvert ! videoscale ! video/x-raw,format=I420,width=1920,height=1080,pixel-aspect-ratio=1/1 ! x264enc"
        ));
    }

    #[test]
    fn file_and_stdin_are_decoded_and_paced() {
        let file = line(ServeOptions {
            source: "file:/tmp/a b\".mkv".parse().unwrap(),
            codec: Codec::Jpeg,
            ..ServeOptions::default()
        });
        assert!(file.starts_with(
            "filesrc location=\"/tmp/a b\\\".mkv\" ! decodebin name=dec ! video/x-raw ! clocksync ! videorate drop-only=true max-rate=30 ! queue"
        ), "{file}");
        let stdin = line(ServeOptions {
            source: Source::Stdin,
            ..ServeOptions::default()
        });
        assert!(stdin.starts_with("fdsrc fd=0 ! decodebin name=dec ! video/x-raw ! clocksync"));
        assert_eq!(
            elements_of(&stdin),
            [
                "fdsrc",
                "decodebin",
                "clocksync",
                "videorate",
                "queue",
                "videoconvert",
                "x264enc",
                "rfbsink"
            ]
        );
    }

    #[test]
    fn sound_goes_to_the_audio_pad_as_opus() {
        let test = line(ServeOptions {
            audio: "test".parse().unwrap(),
            ..ServeOptions::default()
        });
        assert!(test.contains("rfbsink name=sink port=8080"), "{test}");
        assert!(
            test.ends_with(
                "  audiotestsrc is-live=true wave=ticks freq=880 volume=0.3 ! audio/x-raw,channels=2 ! audioconvert ! audioresample ! opusenc frame-size=10 ! sink.audio"
            ),
            "{test}"
        );
        assert!(elements_of(&test).contains(&"opusenc"));
        assert!(!elements_of(&test).iter().any(|e| e.contains('.')));
        let pulse = line(ServeOptions {
            audio: "pulse:alsa_output.pci.monitor".parse().unwrap(),
            ..ServeOptions::default()
        });
        assert!(pulse.contains("  pulsesrc device=alsa_output.pci.monitor ! audioconvert"));
        let file = line(ServeOptions {
            source: "file:/tmp/a.mkv".parse().unwrap(),
            audio: Audio::File,
            ..ServeOptions::default()
        });
        assert!(
            file.contains("  dec. ! queue ! audio/x-raw ! clocksync ! audioconvert"),
            "{file}"
        );
        let err = pipeline_line(&ServeOptions {
            audio: Audio::File,
            ..ServeOptions::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("--source file:PATH or stdin"),
            "{err}"
        );
        assert!("pulse:".parse::<Audio>().is_err());
        assert!("mic".parse::<Audio>().is_err());
    }

    #[test]
    fn sink_options() {
        let l = line(ServeOptions {
            port: 0,
            address: Some("0.0.0.0".to_owned()),
            view_only: true,
            rate_control: Some("slowest"),
            ..ServeOptions::default()
        });
        assert!(l.ends_with("rfbsink port=0 address=0.0.0.0 view-only=true rate-control=slowest"));
    }

    #[test]
    fn relay_publishes_video_codecs_only() {
        let l = line(ServeOptions {
            port: 0,
            relay: Some(("http://127.0.0.1:4443/anon".into(), "lab cam".into())),
            ..ServeOptions::default()
        });
        assert!(
            l.ends_with(
                "rfbsink port=0 relay-url=\"http://127.0.0.1:4443/anon\" relay-broadcast=\"lab cam\""
            ),
            "{l}"
        );
        let e = pipeline_line(&ServeOptions {
            codec: Codec::Jpeg,
            relay: Some(("http://127.0.0.1:4443/anon".into(), "cam".into())),
            ..ServeOptions::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("--relay publishes"), "{e}");
    }

    #[test]
    fn demo_draws_the_pointer_before_the_queue() {
        let l = line(demo_options(8080, None, Some(Encoder::X264), true));
        assert!(l.starts_with(
            "videotestsrc is-live=true pattern=smpte ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 ! navigationtest ! textoverlay text=\"Move"
        ), "{l}");
        assert!(l.find("navigationtest").unwrap() < l.find(LEAKY_QUEUE).unwrap());
        let plain = line(demo_options(9000, None, None, false));
        assert!(!plain.contains("textoverlay"));
        assert!(plain.contains("navigationtest"));
        assert!(plain.contains("jpegenc"));
        assert!(plain.ends_with("rfbsink port=9000"));
    }

    #[test]
    fn a_ladder_tees_the_picture_into_one_encoder_per_rendition() {
        let l = line(ServeOptions {
            port: 0,
            bitrate_kbps: 3000,
            ladder: vec![
                "640x360@600".parse().unwrap(),
                "320x180@200".parse().unwrap(),
            ],
            ..ServeOptions::default()
        });
        assert!(
            l.contains(&format!(
                "video/x-raw,format=I420 ! tee name=t t. ! {LEAKY_QUEUE} ! x264enc"
            )),
            "{l}"
        );
        assert!(
            l.contains("bitrate=3000 ! rfbsink name=sink port=0  t. ! "),
            "{l}"
        );
        assert!(l.contains(&format!(
            "t. ! {LEAKY_QUEUE} ! videoscale ! video/x-raw,width=640,height=360,pixel-aspect-ratio=1/1 ! x264enc"
        )));
        assert!(l.contains("bitrate=600 ! sink.rendition_1"), "{l}");
        assert!(l.ends_with("bitrate=200 ! sink.rendition_2"), "{l}");
        // gst-launch's own parser builds and links it, rendition pads included.
        gst::init().unwrap();
        let _ = gstrfbsink::plugin_register_static();
        let pipeline = gst::parse::launch(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
        use gst::prelude::*;
        let bin = pipeline.downcast::<gst::Bin>().unwrap();
        let sink = bin.by_name("sink").unwrap();
        for pad in ["sink", "rendition_1", "rendition_2"] {
            assert!(sink.static_pad(pad).unwrap().is_linked(), "{pad}");
        }
    }

    #[test]
    fn ladder_errors() {
        let err = |opts: ServeOptions| pipeline_line(&opts).unwrap_err().to_string();
        for bad in ["640x360", "640x360@0", "641x360@600", "640x360@x"] {
            assert!(bad.parse::<Rung>().is_err(), "{bad}");
        }
        assert!(err(ServeOptions {
            codec: Codec::Jpeg,
            ladder: vec!["640x360@600".parse().unwrap()],
            ..ServeOptions::default()
        })
        .contains("--ladder adds encodings at lower bitrates"));
        assert!(err(ServeOptions {
            ladder: vec!["640x360@600".parse().unwrap(); 9],
            ..ServeOptions::default()
        })
        .contains("at most 8"));
    }

    #[test]
    fn sanity_errors() {
        let err = |opts: ServeOptions| pipeline_line(&opts).unwrap_err().to_string();
        assert!(err(ServeOptions {
            codec: Codec::Png,
            rate_control: Some("slowest"),
            ..ServeOptions::default()
        })
        .contains("--rate-control sets a bitrate or a quality: use it with --codec h264"));
        // png under rfbsink's default (auto: off for pngenc) or off.
        for rate_control in [None, Some("off")] {
            let l = pipeline_line(&ServeOptions {
                codec: Codec::Png,
                rate_control,
                ..ServeOptions::default()
            })
            .unwrap();
            assert_eq!(
                l.contains("rate-control=off"),
                rate_control.is_some(),
                "{l}"
            );
        }
        // jpegenc is driven by its quality.
        assert!(pipeline_line(&ServeOptions {
            codec: Codec::Jpeg,
            rate_control: Some("slowest"),
            ..ServeOptions::default()
        })
        .unwrap()
        .contains("jpegenc"));
        assert!(err(ServeOptions {
            fps: 0,
            ..ServeOptions::default()
        })
        .contains("--fps 0"));
        assert!(err(ServeOptions {
            fps: 1000,
            ..ServeOptions::default()
        })
        .contains("1 to 240"));
        assert!(err(ServeOptions {
            codec: Codec::Vp8,
            encoder: Encoder::X264,
            ..ServeOptions::default()
        })
        .contains("--codec h264"));
        assert!(err(ServeOptions {
            size: Some(Size {
                width: 641,
                height: 480
            }),
            ..ServeOptions::default()
        })
        .contains("even"));
        assert!(err(ServeOptions {
            quality: Some(101),
            ..ServeOptions::default()
        })
        .contains("--quality"));
        assert!(err(ServeOptions {
            pattern: "ball ! fakesink".to_owned(),
            ..ServeOptions::default()
        })
        .contains("pattern"));
    }

    #[test]
    fn parse_size_and_source() {
        assert_eq!(
            "640x480".parse::<Size>(),
            Ok(Size {
                width: 640,
                height: 480
            })
        );
        assert!("640".parse::<Size>().is_err());
        assert!("0x480"
            .parse::<Size>()
            .unwrap_err()
            .to_string()
            .contains("range"));
        assert!("axb".parse::<Size>().is_err());
        assert!("9000x480".parse::<Size>().is_err());
        assert_eq!("stdin".parse::<Source>(), Ok(Source::Stdin));
        assert_eq!(
            "file:x.mkv".parse::<Source>(),
            Ok(Source::File("x.mkv".into()))
        );
        assert!("file:".parse::<Source>().is_err());
        assert!("camera"
            .parse::<Source>()
            .unwrap_err()
            .to_string()
            .contains("test, screen"));
    }

    #[test]
    fn packages() {
        assert_eq!(package_of("x264enc"), "gstreamer1.0-plugins-ugly");
        assert!(package_of("nvh264enc").contains("NVIDIA"));
        assert!(package_of("ximagesrc").starts_with("gstreamer1.0-plugins-good"));
        assert_eq!(package_of("videoconvert"), "gstreamer1.0-plugins-base");
    }
}
