#!/usr/bin/env bash
# Builds gst-plugins-rs' WebRTC plugin (gst-plugin-webrtc from crates.io, the `whep` feature only:
# whepclientsrc) once per version, into a cache outside the clone, and prints the folder that holds
# libgstrswebrtc.so (for GST_PLUGIN_PATH). The e2e test tests/e2e/whepclient.test.mjs pulls the
# stream with it: GStreamer's own WHEP client, the one a media engineer uses.
#
#   GST_PLUGIN_PATH=$(bash scripts/whepclientsrc.sh) gst-inspect-1.0 whepclientsrc
#
# Safe to run again: with the library built for this version it only prints the folder.
# Progress goes to stderr; a fresh build takes about 10 minutes on 2 cores.
set -euo pipefail

version=0.15.4
cache="${RFB_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rfbsink-tools}/gst-plugin-webrtc-$version"
lib="$cache/target/release/libgstrswebrtc.so"
log() { printf 'whepclientsrc: %s\n' "$*" >&2; }

if [ -f "$lib" ]; then
  dirname "$lib"
  exit 0
fi

mkdir -p "$cache"
# The crate's own sources from crates.io: a throw-away package that depends on it makes cargo
# download and unpack it, then it is built on its own with only the WHEP client's features.
fetcher="$cache/fetch"
mkdir -p "$fetcher/src"
cat >"$fetcher/Cargo.toml" <<EOF
[package]
name = "rfbsink-fetch-webrtc"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
gst-plugin-webrtc = { version = "=$version", default-features = false }

[workspace]
EOF
: >"$fetcher/src/lib.rs"
log "fetching gst-plugin-webrtc $version from crates.io"
manifest=$(cd "$fetcher" && cargo metadata --format-version 1 --quiet 2>/dev/null \
  | python3 -c 'import json,sys
m = json.load(sys.stdin)
print(next(p["manifest_path"] for p in m["packages"] if p["name"] == "gst-plugin-webrtc"))')
src="$cache/src"
rm -rf "$src"
cp -r "$(dirname "$manifest")" "$src"
# Built as a package of its own, not a member of any workspace above it.
grep -q '^\[workspace\]' "$src/Cargo.toml" || printf '\n[workspace]\n' >>"$src/Cargo.toml"

log "building whepclientsrc (gst-plugin-webrtc $version, features whep + rustls-ring) into $cache"
(cd "$src" && cargo build --release --lib -j "${JOBS:-2}" --no-default-features \
  --features whep,rustls-ring --target-dir "$cache/target")
# Only the plugin is kept: the build's intermediate files are gigabytes.
find "$cache/target/release" -mindepth 1 -maxdepth 1 ! -name 'libgstrswebrtc.so' -exec rm -rf {} +
rm -rf "$cache/fetch"
test -f "$lib"
dirname "$lib"
