#!/usr/bin/env bash
# Installs what building and testing rfbsink needs, and only what is missing:
# Debian packages (GStreamer, Chromium, meson) and the npm devDependencies.
# Safe to run again: a second run with everything present does nothing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

apt_packages=(
  libgstreamer1.0-dev
  libgstreamer-plugins-base1.0-dev
  libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-tools
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly
  gstreamer1.0-libav
  gstreamer1.0-nice
  iproute2
  openssl
  g++
  chromium
  firefox-esr
  # A sound device for Firefox's AudioContext in the tests: a private null sink (tests/e2e/audio.mjs).
  pulseaudio
  nginx-light
  webkit2gtk-driver
  xvfb
  openssh-server
  openssh-client
  python3-gi
  python3-gst-1.0
  python3-venv
  python3-pip
  python3-numpy
  gir1.2-gstreamer-1.0
  gir1.2-gst-plugins-base-1.0
  gir1.2-gst-plugins-bad-1.0
  meson
  ninja-build
  pkg-config
)

log() { printf 'install-deps: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  else
    sudo "$@"
  fi
}

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
for pkg in "${apt_packages[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
else
  log "Debian packages: all present"
fi

# npm: the devDependencies (playwright-core, typescript). Reinstall when package.json or the
# lock file changed since the last install; the stamp lives inside node_modules so that
# deleting node_modules also forces a reinstall.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 # the tests use Debian's /usr/bin/chromium
stamp=node_modules/.rfbsink-deps-stamp
want="$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ ! -d node_modules ] || [ "$want" != "$have" ]; then
  if [ -f package-lock.json ]; then
    log "npm ci"
    npm ci --no-audit --no-fund
  else
    log "npm install (no package-lock.json)"
    npm install --no-audit --no-fund
    want="$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)"
  fi
  printf '%s\n' "$want" >"$stamp"
else
  log "npm packages: up to date"
fi

# The Python package's environment (target/pyenv: JupyterLab, anywidget, jupyter-server-proxy,
# pytest, websockets, aiortc from PyPI; PyGObject from Debian).
bash "$repo/scripts/python-env.sh"

# GStreamer's own WHEP client (gst-plugins-rs' whepclientsrc, from crates.io) for
# tests/e2e/whepclient.test.mjs: built once per version into ~/.cache/rfbsink-tools (minutes the
# first time, nothing after).
bash "$repo/scripts/whepclientsrc.sh" >/dev/null

# The Media over QUIC relay (moq-relay, from crates.io) for tests/e2e/relay.test.mjs and the
# bench's relay scenarios: built once per version into ~/.cache/rfbsink-tools (about 7 minutes on
# 2 cores the first time, nothing after).
bash "$repo/scripts/moq-relay.sh" >/dev/null
