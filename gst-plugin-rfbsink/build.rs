use std::fmt::Write as _;
use std::path::Path;

fn main() {
    gst_plugin_version_helper::info();
    embed_web_assets();
}

/// Embeds every file directly in ../web (not its subfolders: tests stay out) so that the plugin's
/// .so alone serves the viewer.
fn embed_web_assets() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    println!("cargo:rerun-if-changed={}", web.display());
    let mut entries: Vec<_> = std::fs::read_dir(&web)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", web.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    let mut out = String::from("pub static ASSETS: &[(&str, &str, &[u8])] = &[\n");
    for path in entries {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let mime = match path.extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=utf-8",
            Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            Some("png") => "image/png",
            Some("ico") => "image/x-icon",
            _ => continue,
        };
        let abs = path.canonicalize().unwrap();
        writeln!(out, "    ({name:?}, {mime:?}, include_bytes!({abs:?})),").unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("assets.rs");
    std::fs::write(dest, out).unwrap();
}
