use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

fn main() {
    gst_plugin_version_helper::info();
    embed_web_assets();
}

/// A compressed copy is served only when it saves at least this share of the file.
const GZIP_WORTH: f64 = 0.9;

/// Embeds every file directly in ../web (not its subfolders: tests stay out) so that the plugin's
/// .so alone serves the viewer; each with a gzip copy (a viewer behind a slow link loads a
/// third of the bytes) and an ETag, its content's hash (a reload revalidates, nothing more).
fn embed_web_assets() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    println!("cargo:rerun-if-changed={}", web.display());
    let out_dir = Path::new(&std::env::var("OUT_DIR").unwrap()).to_owned();
    let gz_dir = out_dir.join("assets-gz");
    std::fs::create_dir_all(&gz_dir).unwrap();
    let mut entries: Vec<_> = std::fs::read_dir(&web)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", web.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    let mut out = String::from("pub static ASSETS: &[Asset] = &[\n");
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
        let body = std::fs::read(&abs).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&body).unwrap();
        let gz = gz.finish().unwrap();
        let gzip = if (gz.len() as f64) <= GZIP_WORTH * body.len() as f64 {
            let gz_path = gz_dir.join(format!("{name}.gz"));
            std::fs::write(&gz_path, &gz).unwrap();
            format!("Some(include_bytes!({gz_path:?}))")
        } else {
            "None".to_owned()
        };
        // One tag per representation (RFC 9110, 8.8.3): the gzip copy is another.
        let hash = fnv1a(&body);
        let etag = format!("\"{hash:016x}\"");
        let gzip_etag = format!("\"{hash:016x}-gzip\"");
        writeln!(
            out,
            "    Asset {{ name: {name:?}, mime: {mime:?}, body: include_bytes!({abs:?}), \
             gzip: {gzip}, etag: {etag:?}, gzip_etag: {gzip_etag:?} }},"
        )
        .unwrap();
    }
    out.push_str("];\n");
    std::fs::write(out_dir.join("assets.rs"), out).unwrap();
}

/// FNV-1a, 64 bits: an ETag names a file's content, it guards nothing.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
