#!/usr/bin/env bash
# Builds one plugin of gst-plugins-rs from its crate on crates.io, once per version, into a cache
# outside the clone, and prints the folder that holds the library (for GST_PLUGIN_PATH).
#
#   bash scripts/gst-rs-plugin.sh CRATE VERSION LIBRARY [CARGO BUILD ARGS...]
#   bash scripts/gst-rs-plugin.sh gst-plugin-rtp 0.15.4 libgstrsrtp.so
#
# Safe to run again: with the library built for this version it only prints the folder. Progress
# goes to stderr. Used by scripts/whepclientsrc.sh and scripts/rtpgccbwe.sh.
set -euo pipefail

crate=$1 version=$2 library=$3
shift 3
cache="${RFB_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rfbsink-tools}/$crate-$version"
lib="$cache/target/release/$library"
log() { printf '%s: %s\n' "$crate" "$*" >&2; }

if [ -f "$lib" ]; then
  dirname "$lib"
  exit 0
fi

mkdir -p "$cache"
# The crate's own sources from crates.io: a throw-away package that depends on it makes cargo
# download and unpack it, then it is built on its own with the features asked for.
fetcher="$cache/fetch"
mkdir -p "$fetcher/src"
cat >"$fetcher/Cargo.toml" <<TOML
[package]
name = "rfbsink-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
$crate = { version = "=$version", default-features = false }

[workspace]
TOML
: >"$fetcher/src/lib.rs"
log "fetching $crate $version from crates.io"
# The registry can fail for a moment (seen once: an empty answer): tried three times, and its
# error shown when the last try fails.
for try in 1 2 3; do
  if metadata=$(cd "$fetcher" && cargo metadata --format-version 1 --quiet 2>"$cache/fetch.log"); then
    break
  fi
  if [ "$try" = 3 ]; then
    log "cargo metadata failed:"
    cat "$cache/fetch.log" >&2
    exit 1
  fi
  log "cargo metadata failed, trying again in 10 s"
  sleep 10
done
manifest=$(printf '%s' "$metadata" | CRATE=$crate python3 -c 'import json, os, sys
m = json.load(sys.stdin)
print(next(p["manifest_path"] for p in m["packages"] if p["name"] == os.environ["CRATE"]))')
rm -f "$cache/fetch.log"
src="$cache/src"
rm -rf "$src"
cp -r "$(dirname "$manifest")" "$src"
# Built as a package of its own, not a member of any workspace above it.
grep -q '^\[workspace\]' "$src/Cargo.toml" || printf '\n[workspace]\n' >>"$src/Cargo.toml"

log "building $library ($crate $version $*) into $cache"
(cd "$src" && cargo build --release --lib -j "${JOBS:-2}" "$@" --target-dir "$cache/target")
# Only the plugin is kept: the build's intermediate files are gigabytes.
find "$cache/target/release" -mindepth 1 -maxdepth 1 ! -name "$library" -exec rm -rf {} +
rm -rf "$cache/fetch"
test -f "$lib"
dirname "$lib"
