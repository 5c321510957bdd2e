#!/usr/bin/env bash
# Installs moq-relay (the Media over QUIC relay, from crates.io) once per version into a cache
# outside the clone, and prints the path of its binary. tests/e2e/relay.test.mjs and the bench
# start it on loopback with a generated certificate (docs/protocol.md, "Relays").
#
#   "$(bash scripts/moq-relay.sh)" --listen 127.0.0.1:4443 --listen-tls-generate localhost \
#       --web-http-listen 127.0.0.1:4443 --auth-public 'anon/**'
#
# Safe to run again: with the binary installed for this version it only prints its path.
# Progress goes to stderr; a fresh build takes about 15 minutes on 2 cores.
set -euo pipefail

version=0.17.10
cache="${RFB_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rfbsink-tools}/moq-relay-$version"
bin="$cache/bin/moq-relay"
log() { printf 'moq-relay: %s\n' "$*" >&2; }

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

log "building moq-relay $version from crates.io into $cache"
# Not --locked: the crate's own Cargo.lock names a webpki-roots release that crates.io's index
# here does not hold; cargo resolves the same semver ranges to what the registry has.
cargo install moq-relay --version "=$version" --root "$cache" -j "${JOBS:-2}" \
  --target-dir "$cache/target" >&2
rm -rf "$cache/target"
test -x "$bin"
echo "$bin"
