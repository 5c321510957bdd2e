// SPDX-License-Identifier: MPL-2.0

//! Building and running a pipeline the way gst-launch-1.0 does, plus what rfb adds: the viewer
//! URL when rfbsink listens, and Ctrl-C as EOS.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use gst::prelude::*;

/// The pipeline could not be built (unknown element, bad link, bad property) or a needed element
/// is missing: the user's input is at fault.
pub const EXIT_USAGE: u8 = 2;
/// The pipeline failed while running.
pub const EXIT_ERROR: u8 = 1;
/// Stopped without EOS after Ctrl-C (a second one, or EOS did not come in time).
pub const EXIT_INTERRUPTED: u8 = 130;

/// How long EOS may take after Ctrl-C before the pipeline is stopped hard.
const EOS_TIMEOUT: Duration = Duration::from_secs(5);
const INTERRUPT: &str = "rfb-interrupt";

/// `gst::init()` and rfbsink, registered from this binary (no GST_PLUGIN_PATH needed).
pub fn init() -> Result<(), String> {
    gst::init().map_err(|e| format!("cannot initialise GStreamer: {e}"))?;
    gstrfbsink::plugin_register_static()
        .map_err(|e| format!("cannot register the rfbsink element: {e}"))
}

pub fn has_element(name: &str) -> bool {
    gst::ElementFactory::find(name).is_some()
}

/// Parses a pipeline description: one argument is a whole description, several are taken as
/// gst-launch-1.0 takes its arguments.
pub fn build(args: &[String]) -> Result<gst::Pipeline, String> {
    let mut context = gst::ParseContext::new();
    let flags = gst::ParseFlags::FATAL_ERRORS;
    let parsed = match args {
        [one] => gst::parse::launch_full(one, Some(&mut context), flags),
        _ => {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            gst::parse::launchv_full(&argv, Some(&mut context), flags)
        }
    };
    let element = parsed.map_err(|e| {
        let missing = context.missing_elements();
        if missing.is_empty() || e.kind::<gst::ParseError>() != Some(gst::ParseError::NoSuchElement)
        {
            e.message().to_owned()
        } else {
            // GStreamer says "no element \"foo\""; keep its words, name every one.
            let names: Vec<String> = missing.iter().map(|m| format!("\"{m}\"")).collect();
            format!("no element {}", names.join(", "))
        }
    })?;
    match element.downcast::<gst::Pipeline>() {
        Ok(pipeline) => Ok(pipeline),
        // A single element (e.g. a bin or playbin) is run inside a pipeline of its own.
        Err(element) => {
            let pipeline = gst::Pipeline::new();
            pipeline
                .add(&element)
                .map_err(|e| format!("cannot add {}: {e}", element.name()))?;
            Ok(pipeline)
        }
    }
}

/// Runs `pipeline` until EOS, an error, or Ctrl-C. `hint` is printed after the viewer URL.
pub fn run(pipeline: &gst::Pipeline, hint: Option<&str>) -> ExitCode {
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let sinks = rfbsinks(pipeline);

    // The handler runs on its own thread: it only posts a message, the bus loop below acts.
    let interrupt_bus = bus.clone();
    if let Err(e) = ctrlc::set_handler(move || {
        let msg = gst::message::Application::new(gst::Structure::new_empty(INTERRUPT));
        let _ = interrupt_bus.post(msg);
    }) {
        eprintln!("rfb: warning: cannot handle Ctrl-C: {e}");
    }

    let code = match pipeline.set_state(gst::State::Playing) {
        Ok(_) => bus_loop(pipeline, &bus, sinks.len() > 1, hint),
        Err(_) => {
            // The element that failed has posted why.
            let shown = bus
                .timed_pop_filtered(gst::ClockTime::from_seconds(2), &[gst::MessageType::Error])
                .map(|msg| print_message(&msg))
                .unwrap_or(false);
            if !shown {
                eprintln!("rfb: the pipeline cannot start");
            }
            ExitCode::from(EXIT_ERROR)
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    code
}

fn bus_loop(
    pipeline: &gst::Pipeline,
    bus: &gst::Bus,
    name_sinks: bool,
    hint: Option<&str>,
) -> ExitCode {
    use gst::MessageView;

    let mut deadline: Option<Instant> = None;
    loop {
        let timeout = deadline.map(|d| {
            gst::ClockTime::from_nseconds(
                d.saturating_duration_since(Instant::now()).as_nanos() as u64
            )
        });
        let Some(msg) = bus.timed_pop(timeout) else {
            eprintln!("rfb: no EOS after {}s: stopping", EOS_TIMEOUT.as_secs());
            return ExitCode::from(EXIT_INTERRUPTED);
        };
        match msg.view() {
            MessageView::Eos(_) => {
                if deadline.is_some() {
                    eprintln!("rfb: stopped");
                }
                return ExitCode::SUCCESS;
            }
            MessageView::Error(_) => {
                print_message(&msg);
                return ExitCode::from(EXIT_ERROR);
            }
            MessageView::Warning(_) => {
                print_message(&msg);
            }
            MessageView::Element(e) => {
                let Some(s) = e.structure() else { continue };
                if s.name() != "rfbsink-listening" {
                    continue;
                }
                let url = s.get::<String>("url").unwrap_or_default();
                match msg.src() {
                    Some(src) if name_sinks => {
                        println!("rfb: viewer at {url} ({})", src.name())
                    }
                    _ => println!("rfb: viewer at {url}"),
                }
                if let Some(hint) = hint {
                    println!("rfb: {hint}");
                }
            }
            MessageView::Application(a) if a.structure().is_some_and(|s| s.name() == INTERRUPT) => {
                if deadline.is_some() {
                    eprintln!("rfb: interrupted again: stopping");
                    return ExitCode::from(EXIT_INTERRUPTED);
                }
                eprintln!("rfb: interrupted: sending EOS (Ctrl-C again stops at once)");
                deadline = Some(Instant::now() + EOS_TIMEOUT);
                pipeline.send_event(gst::event::Eos::new());
            }
            MessageView::ClockLost(_) => {
                // As gst-launch does: a new clock is picked on the way back to PLAYING.
                let _ = pipeline.set_state(gst::State::Paused);
                let _ = pipeline.set_state(gst::State::Playing);
            }
            MessageView::Latency(_) => {
                let _ = pipeline.recalculate_latency();
            }
            MessageView::RequestState(r) => {
                let _ = pipeline.set_state(r.requested_state());
            }
            _ => {}
        }
    }
}

/// Prints an error or warning message with its source element and debug text; false for any
/// other message.
fn print_message(msg: &gst::Message) -> bool {
    let (what, text, debug) = match msg.view() {
        gst::MessageView::Error(e) => ("error", e.error().to_string(), e.debug()),
        gst::MessageView::Warning(w) => ("warning", w.error().to_string(), w.debug()),
        _ => return false,
    };
    let src = msg
        .src()
        .map(|s| s.path_string().to_string())
        .unwrap_or_else(|| "the pipeline".to_owned());
    eprintln!("rfb: {what} from {src}: {text}");
    if let Some(debug) = debug {
        eprintln!("rfb: debug: {debug}");
    }
    true
}

fn rfbsinks(pipeline: &gst::Pipeline) -> Vec<gst::Element> {
    pipeline
        .iterate_recurse()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.factory().is_some_and(|f| f.name() == "rfbsink"))
        .collect()
}
