// Browser input (the `rfb.events` channel) as GStreamer navigation events. Pure: JSON fields in,
// a gst_video::NavigationEvent (or a resize) out.
//
// Coordinates arrive in stream pixels (the viewer maps them through its scaling and letterbox).
// Buttons and keys arrive as the DOM names them and leave as GStreamer elements expect them:
// buttons 1/2/3 = left/middle/right, keys as X11 keysym names ("Return", "Left", "a", "comma").

use gst_video::{NavigationEvent, NavigationModifierType};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Navigation(NavigationEvent),
    /// The size of the browser's view of the stream, in device pixels.
    Resize {
        width: u32,
        height: u32,
    },
}

/// The mouse buttons a pointer event says are held (GStreamer's button masks).
const BUTTONS: NavigationModifierType = NavigationModifierType::BUTTON1_MASK
    .union(NavigationModifierType::BUTTON2_MASK)
    .union(NavigationModifierType::BUTTON3_MASK);

impl Input {
    /// The buttons held in a pointer move, press or release; None for other input.
    pub fn pointer_buttons(&self) -> Option<NavigationModifierType> {
        use NavigationEvent as E;
        match self {
            Input::Navigation(
                E::MouseMove { modifier_state, .. }
                | E::MouseButtonPress { modifier_state, .. }
                | E::MouseButtonRelease { modifier_state, .. },
            ) => Some(*modifier_state & BUTTONS),
            _ => None,
        }
    }

    /// The same input with its coordinates scaled by `sx`, `sy`: a viewer on a rendition of
    /// another size points in that rendition's pixels, upstream expects the source's.
    pub fn scaled(self, sx: f64, sy: f64) -> Input {
        use NavigationEvent as E;
        let e = match self {
            Input::Navigation(e) => e,
            resize @ Input::Resize { .. } => return resize,
        };
        Input::Navigation(match e {
            E::MouseMove {
                x,
                y,
                modifier_state,
            } => E::MouseMove {
                x: x * sx,
                y: y * sy,
                modifier_state,
            },
            E::MouseButtonPress {
                button,
                x,
                y,
                modifier_state,
            } => E::MouseButtonPress {
                button,
                x: x * sx,
                y: y * sy,
                modifier_state,
            },
            E::MouseButtonRelease {
                button,
                x,
                y,
                modifier_state,
            } => E::MouseButtonRelease {
                button,
                x: x * sx,
                y: y * sy,
                modifier_state,
            },
            E::MouseScroll {
                x,
                y,
                delta_x,
                delta_y,
                modifier_state,
            } => E::MouseScroll {
                x: x * sx,
                y: y * sy,
                delta_x,
                delta_y,
                modifier_state,
            },
            E::TouchDown {
                identifier,
                x,
                y,
                pressure,
                modifier_state,
            } => E::TouchDown {
                identifier,
                x: x * sx,
                y: y * sy,
                pressure,
                modifier_state,
            },
            E::TouchMotion {
                identifier,
                x,
                y,
                pressure,
                modifier_state,
            } => E::TouchMotion {
                identifier,
                x: x * sx,
                y: y * sy,
                pressure,
                modifier_state,
            },
            E::TouchUp {
                identifier,
                x,
                y,
                modifier_state,
            } => E::TouchUp {
                identifier,
                x: x * sx,
                y: y * sy,
                modifier_state,
            },
            other => other,
        })
    }
}

/// Turns one `rfb.events` message into input, or says why it is not valid. A kind this server
/// does not know is `Ok(None)`: ignored, for forward compatibility (docs/protocol.md).
pub fn parse_event(kind: &str, fields: &Map<String, Value>) -> Result<Option<Input>, String> {
    parse_known(kind, fields).map(Some).or_else(|e| match e {
        ParseError::UnknownKind => Ok(None),
        ParseError::Invalid(e) => Err(e),
    })
}

enum ParseError {
    UnknownKind,
    Invalid(String),
}

impl From<String> for ParseError {
    fn from(e: String) -> Self {
        ParseError::Invalid(e)
    }
}

fn parse_known(kind: &str, fields: &Map<String, Value>) -> Result<Input, ParseError> {
    let num = |name: &str| -> Result<f64, String> {
        match fields.get(name) {
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("'{name}' is not a finite number")),
            Some(_) => Err(format!("'{name}' is not a number")),
            None => Err(format!("{kind} without '{name}'")),
        }
    };
    let modifier_state = modifiers(fields);
    let nav = |e| Ok::<_, ParseError>(Input::Navigation(e));
    match kind {
        "pointer-move" => nav(NavigationEvent::MouseMove {
            x: num("x")?,
            y: num("y")?,
            modifier_state,
        }),
        "pointer-down" | "pointer-up" => {
            let button = dom_button(num("button")?)?;
            let (x, y) = (num("x")?, num("y")?);
            nav(if kind == "pointer-down" {
                NavigationEvent::MouseButtonPress {
                    button,
                    x,
                    y,
                    modifier_state,
                }
            } else {
                NavigationEvent::MouseButtonRelease {
                    button,
                    x,
                    y,
                    modifier_state,
                }
            })
        }
        "wheel" => nav(NavigationEvent::MouseScroll {
            x: num("x")?,
            y: num("y")?,
            // DOM: pixels, positive = down/right. GStreamer: steps, positive = up/left (one
            // wheel notch is about 100 DOM pixels in Chromium).
            delta_x: -num("dx")? / 100.0,
            delta_y: -num("dy")? / 100.0,
            modifier_state,
        }),
        "key-down" | "key-up" => {
            let key = match fields.get("key") {
                Some(Value::String(k)) if !k.is_empty() && k.len() <= 32 => k,
                _ => return Err(format!("{kind} without a 'key' string").into()),
            };
            let code = fields.get("code").and_then(Value::as_str).unwrap_or("");
            let key = keysym_name(key, code);
            nav(if kind == "key-down" {
                NavigationEvent::KeyPress {
                    key,
                    modifier_state,
                }
            } else {
                NavigationEvent::KeyRelease {
                    key,
                    modifier_state,
                }
            })
        }
        "touch-down" | "touch-move" => {
            let identifier = num("id")? as u32;
            let (x, y) = (num("x")?, num("y")?);
            let pressure = num("pressure").unwrap_or(f64::NAN);
            nav(if kind == "touch-down" {
                NavigationEvent::TouchDown {
                    identifier,
                    x,
                    y,
                    pressure,
                    modifier_state,
                }
            } else {
                NavigationEvent::TouchMotion {
                    identifier,
                    x,
                    y,
                    pressure,
                    modifier_state,
                }
            })
        }
        "touch-up" => nav(NavigationEvent::TouchUp {
            identifier: num("id")? as u32,
            x: num("x")?,
            y: num("y")?,
            modifier_state,
        }),
        "touch-frame" => nav(NavigationEvent::TouchFrame { modifier_state }),
        "touch-cancel" => nav(NavigationEvent::TouchCancel { modifier_state }),
        "resize" => {
            let dim = |name| {
                num(name).and_then(|v| {
                    if (1.0..=65535.0).contains(&v) {
                        Ok(v as u32)
                    } else {
                        Err(format!("'{name}' {v} is out of range"))
                    }
                })
            };
            Ok(Input::Resize {
                width: dim("width")?,
                height: dim("height")?,
            })
        }
        _ => Err(ParseError::UnknownKind),
    }
}

/// DOM MouseEvent.button (0 left, 1 middle, 2 right, 3 back, 4 forward) to X11/GStreamer numbering.
fn dom_button(b: f64) -> Result<i32, String> {
    match b as i64 {
        0 => Ok(1),
        1 => Ok(2),
        2 => Ok(3),
        3 => Ok(8),
        4 => Ok(9),
        other => Err(format!("unknown button {other}")),
    }
}

/// Modifier keys (booleans `shift`, `ctrl`, `alt`, `meta`) and held buttons (DOM `buttons`
/// bitmask: 1 left, 2 right, 4 middle).
fn modifiers(fields: &Map<String, Value>) -> NavigationModifierType {
    let flag = |name| fields.get(name).and_then(Value::as_bool).unwrap_or(false);
    let mut m = NavigationModifierType::empty();
    for (name, mask) in [
        ("shift", NavigationModifierType::SHIFT_MASK),
        ("ctrl", NavigationModifierType::CONTROL_MASK),
        ("alt", NavigationModifierType::MOD1_MASK),
        ("meta", NavigationModifierType::SUPER_MASK),
    ] {
        if flag(name) {
            m |= mask;
        }
    }
    let buttons = fields.get("buttons").and_then(Value::as_u64).unwrap_or(0);
    for (bit, mask) in [
        (1, NavigationModifierType::BUTTON1_MASK),
        (4, NavigationModifierType::BUTTON2_MASK),
        (2, NavigationModifierType::BUTTON3_MASK),
    ] {
        if buttons & bit != 0 {
            m |= mask;
        }
    }
    m
}

/// The X11 keysym name GStreamer elements expect for a DOM KeyboardEvent (`key`, `code`).
pub fn keysym_name(key: &str, code: &str) -> String {
    let side =
        |left: &str, right: &str| if code.ends_with("Right") { right } else { left }.to_owned();
    let named = match key {
        "Enter" => "Return",
        "Backspace" => "BackSpace",
        "Tab" => "Tab",
        "Escape" => "Escape",
        "Delete" => "Delete",
        "Insert" => "Insert",
        "Home" => "Home",
        "End" => "End",
        "PageUp" => "Page_Up",
        "PageDown" => "Page_Down",
        "ArrowLeft" => "Left",
        "ArrowRight" => "Right",
        "ArrowUp" => "Up",
        "ArrowDown" => "Down",
        "CapsLock" => "Caps_Lock",
        "NumLock" => "Num_Lock",
        "ScrollLock" => "Scroll_Lock",
        "Pause" => "Pause",
        "PrintScreen" => "Print",
        "ContextMenu" => "Menu",
        "AltGraph" => "ISO_Level3_Shift",
        "Shift" => return side("Shift_L", "Shift_R"),
        "Control" => return side("Control_L", "Control_R"),
        "Alt" => return side("Alt_L", "Alt_R"),
        "Meta" | "OS" => return side("Super_L", "Super_R"),
        " " => "space",
        "!" => "exclam",
        "\"" => "quotedbl",
        "#" => "numbersign",
        "$" => "dollar",
        "%" => "percent",
        "&" => "ampersand",
        "'" => "apostrophe",
        "(" => "parenleft",
        ")" => "parenright",
        "*" => "asterisk",
        "+" => "plus",
        "," => "comma",
        "-" => "minus",
        "." => "period",
        "/" => "slash",
        ":" => "colon",
        ";" => "semicolon",
        "<" => "less",
        "=" => "equal",
        ">" => "greater",
        "?" => "question",
        "@" => "at",
        "[" => "bracketleft",
        "\\" => "backslash",
        "]" => "bracketright",
        "^" => "asciicircum",
        "_" => "underscore",
        "`" => "grave",
        "{" => "braceleft",
        "|" => "bar",
        "}" => "braceright",
        "~" => "asciitilde",
        // Letters, digits, F1..F24 and other characters keep their name.
        other => other,
    };
    named.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Input, String> {
        let Value::Object(mut obj) = v else {
            unreachable!()
        };
        let kind = obj.remove("kind").unwrap();
        parse_event(kind.as_str().unwrap(), &obj).map(|i| i.expect("a known kind"))
    }

    #[test]
    fn pointer_events() {
        assert_eq!(
            parse(json!({"kind":"pointer-move","x":10.5,"y":20,"buttons":1,"shift":true})),
            Ok(Input::Navigation(NavigationEvent::MouseMove {
                x: 10.5,
                y: 20.0,
                modifier_state: NavigationModifierType::SHIFT_MASK
                    | NavigationModifierType::BUTTON1_MASK,
            }))
        );
        assert_eq!(
            parse(json!({"kind":"pointer-down","x":1,"y":2,"button":2})),
            Ok(Input::Navigation(NavigationEvent::MouseButtonPress {
                button: 3,
                x: 1.0,
                y: 2.0,
                modifier_state: NavigationModifierType::empty(),
            }))
        );
        let Ok(Input::Navigation(NavigationEvent::MouseScroll { delta_y, .. })) =
            parse(json!({"kind":"wheel","x":1,"y":2,"dx":0,"dy":100}))
        else {
            panic!()
        };
        assert_eq!(delta_y, -1.0, "DOM down is GStreamer negative");
    }

    #[test]
    fn keys_get_keysym_names() {
        for (key, code, name) in [
            ("a", "KeyA", "a"),
            ("A", "KeyA", "A"),
            ("Enter", "Enter", "Return"),
            ("ArrowLeft", "ArrowLeft", "Left"),
            ("Shift", "ShiftRight", "Shift_R"),
            ("Control", "ControlLeft", "Control_L"),
            (" ", "Space", "space"),
            (",", "Comma", "comma"),
            ("F5", "F5", "F5"),
            ("Backspace", "Backspace", "BackSpace"),
        ] {
            assert_eq!(keysym_name(key, code), name, "{key}");
        }
        assert_eq!(
            parse(json!({"kind":"key-down","key":"Enter","code":"Enter","ctrl":true})),
            Ok(Input::Navigation(NavigationEvent::KeyPress {
                key: "Return".into(),
                modifier_state: NavigationModifierType::CONTROL_MASK,
            }))
        );
    }

    #[test]
    fn resize_and_errors() {
        assert_eq!(
            parse(json!({"kind":"resize","width":800,"height":600})),
            Ok(Input::Resize {
                width: 800,
                height: 600
            })
        );
        for bad in [
            json!({"kind":"pointer-move","x":"1","y":2}),
            json!({"kind":"pointer-move","y":2}),
            json!({"kind":"pointer-down","x":1,"y":2,"button":7}),
            json!({"kind":"key-down"}),
            json!({"kind":"resize","width":0,"height":600}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
        assert_eq!(
            parse_event("teleport", &Map::new()),
            Ok(None),
            "unknown kinds are ignored"
        );
    }
}
