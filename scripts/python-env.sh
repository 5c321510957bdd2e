#!/usr/bin/env bash
# The Python environment the Python package's tests, the Jupyter test and the benchmark use:
# target/pyenv, a virtual environment that sees the system's PyGObject and numpy
# (--system-site-packages: GStreamer's Python bindings come from Debian, not PyPI), with
# rfbsink's Python package and its extras from PyPI: jupyter (JupyterLab, anywidget,
# jupyter-server-proxy), test (pytest, websockets) and, for `make bench`, aiortc.
# Safe to run again: with nothing changed it only reinstalls the package itself (no network).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env="$repo/target/pyenv"
log() { printf 'python-env: %s\n' "$*" >&2; }

# What the environment is built from: a change reinstalls the dependencies.
want="$(cat "$repo/python/pyproject.toml" "$repo/scripts/python-env.sh" | sha256sum | cut -d' ' -f1)"
stamp="$env/.rfbsink-stamp"
if [ ! -x "$env/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  log "creating $env"
  rm -rf "$env"
  /usr/bin/python3 -m venv --system-site-packages "$env"
  "$env/bin/python" -m pip install --quiet --disable-pip-version-check \
    "$repo/python[jupyter,test]" "jupyterlab>=4,<5" "aiortc>=1.9"
  printf '%s\n' "$want" >"$stamp"
fi
# The package as pip installs it from this checkout (not an editable link): what users get.
"$env/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "$repo/python"
rm -rf "$repo/python/build" "$repo/python"/*.egg-info
