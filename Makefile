# rfbsink: build, run the demo, test.
#   make build   the plugin (target/release/libgstrfbsink.so) and the rest of the workspace
#   make run     serve the demo stream at http://127.0.0.1:8080
#   make test    everything CI runs (.ci/run)
#   make bench   the latency/throughput benchmark (BENCH_ARGS=--quick for ~2 minutes)
#   make bench-lossless   the lossless raw path's benchmark alone
#   make bench-python     the Python package's benchmark alone (with Jupyter's proxy and aiortc)
#   make bench-relay      latency through one and two Media over QUIC relays (moq-relay, @moq/watch)
#   make bench-audio      sound at steady state: underruns, latency, A/V offset; behind a 700 kbit/s link; on a machine busy for 15 s (tests/bench/audio.mjs)
#   make bench-paint      decoded video to the screen, each paint path, Chromium and Firefox (tests/bench/paint.mjs)
#   make fuzz    the fuzz targets, FUZZ_SECONDS each (make fuzz-smoke: 10 s each, part of test)
# Everything is built with --release so that dependencies compile once for build, test and lint.

CARGO ?= cargo
JOBS ?= 2
NPM ?= npm
PLUGIN_DIR := $(CURDIR)/target/release

# The interactive demo: the browser's pointer drives navigationtest (rfb demo --dry-run prints
# the pipeline).
RUN_DEMO ?= $(CURDIR)/target/release/rfb demo --port 8080

.PHONY: all disk-check deps build run test test-rust fmt-check clippy test-web check-web test-e2e test-pipelines test-python test-meson fuzz fuzz-smoke bench bench-lossless bench-python bench-relay bench-audio bench-paint clean

all: build

deps:
	bash scripts/install-deps.sh

build:
	$(CARGO) build --release -j $(JOBS) --workspace

run: deps build
	$(RUN_DEMO)

# Each step in turn, stopping at the first that fails; prints how long each took.
TEST_STEPS := fmt-check test-rust clippy test-web check-web test-e2e test-pipelines test-python test-meson fuzz-smoke
test: disk-check deps build
	@for step in $(TEST_STEPS); do \
	  start=$$(date +%s); \
	  $(MAKE) --no-print-directory $$step || { echo "make test: $$step FAILED"; exit 1; }; \
	  echo "make test: $$step ok in $$(( $$(date +%s) - start )) s"; \
	done

# A clean build and every test's output take about 5 GiB under the clone (target/, fuzz/target/)
# plus ~/.cargo; a linker that runs out of disk dies with a bare "Bus error", so say it first.
DISK_NEEDED_GIB ?= 8
disk-check:
	@free=$$(df -Pk . | awk 'NR == 2 { print int($$4 / 1048576) }'); \
	if [ "$$free" -lt $(DISK_NEEDED_GIB) ]; then \
	  echo "make test: warning: $$free GiB free on this disk; a clean build and the tests need about $(DISK_NEEDED_GIB) GiB (a linker out of disk dies with \"Bus error\")" >&2; \
	else echo "make test: $$free GiB free on this disk"; fi

fmt-check:
	$(CARGO) fmt --all -- --check

# Libraries, binaries and tests (examples are compiled by clippy, not linked here).
test-rust:
	$(CARGO) test --release -j $(JOBS) --workspace --lib --bins --tests

clippy:
	$(CARGO) clippy --release -j $(JOBS) --workspace --all-targets -- -D warnings

test-web:
	$(NPM) run --silent test:web

check-web:
	$(NPM) run --silent check:web

# Needs the plugin from `make build` and Debian's chromium (scripts/install-deps.sh).
test-e2e:
	$(NPM) run --silent test:e2e

# Every line in pipelines/ whose elements exist runs for a few frames (others are skipped by name).
test-pipelines:
	node --test --test-concurrency=1 tests/pipelines/

# The Python package (python/): pytest over real pipelines in target/pyenv (scripts/python-env.sh
# installs it there the way pip does), then the numpy example and a real JupyterLab in headless
# Chromium (tests/python/).
PYENV := $(CURDIR)/target/pyenv
test-python:
	bash scripts/python-env.sh
	cd $(CURDIR)/python && GST_PLUGIN_PATH=$(PLUGIN_DIR) $(PYENV)/bin/pytest -q -p no:cacheprovider tests
	node --test --test-concurrency=1 tests/python/

# meson setup/compile/install into a temporary prefix; gst-inspect-1.0 finds rfbsink there.
test-meson:
	node --test tests/meson/

# Coverage-guided fuzzing (libFuzzer, stable toolchain) of every parser fed by the network or the
# stream: fuzz-smoke runs each target briefly (CI), fuzz runs each FUZZ_SECONDS (default 600).
FUZZ_SECONDS ?= 600
fuzz-smoke:
	bash scripts/fuzz.sh 10

fuzz:
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

# Real pipelines + headless Chromium + a WebRTC baseline in a private network namespace (root).
bench: deps build
	$(CURDIR)/target/release/rfb bench $(BENCH_ARGS)
	node tests/bench/lossless.mjs $(if $(findstring --quick,$(BENCH_ARGS)),--quick,)
	node tests/bench/python.mjs $(if $(findstring --quick,$(BENCH_ARGS)),--quick,)
	node tests/bench/relay.mjs $(if $(findstring --quick,$(BENCH_ARGS)),--seconds 5,)
	node tests/bench/audio.mjs $(if $(findstring --quick,$(BENCH_ARGS)),--quick,)
	node tests/bench/paint.mjs $(if $(findstring --quick,$(BENCH_ARGS)),--quick,)

# The lossless raw path alone: throughput, latency and CPU against pngenc/jpegenc (tests/bench/lossless.mjs).
bench-lossless: deps build
	node tests/bench/lossless.mjs $(LOSSLESS_ARGS)

# The Python package: fps and push() -> painted latency, 512^2..4096^2, uint8/uint16, direct, through
# Jupyter's proxy, and aiortc for comparison (tests/bench/python.mjs).
bench-python: deps build
	node tests/bench/python.mjs $(PYTHON_BENCH_ARGS)

# Sound at steady state: underruns, latency, A/V offset (tests/bench/audio.mjs; 60 s a case); behind
# a slow link; and before, during and after a busy machine (one busy loop more than the cores).
bench-audio: deps build
	node tests/bench/audio.mjs $(AUDIO_BENCH_ARGS)
	node tests/bench/audio.mjs --link 700 $(AUDIO_BENCH_ARGS)
	node tests/bench/audio.mjs --load $(AUDIO_BENCH_ARGS)

# Glass to glass through one and two clustered moq-relays against the direct link (tests/bench/relay.mjs).
bench-relay: deps build
	node tests/bench/relay.mjs $(RELAY_BENCH_ARGS)

# Decoded video to the screen by each paint path (2d, desynchronized 2d, bitmaprenderer, WebGL,
# MediaStreamTrackGenerator -> <video>): fps shown, latency, browser CPU a frame (tests/bench/paint.mjs).
bench-paint: deps build
	node tests/bench/paint.mjs $(PAINT_BENCH_ARGS)

clean:
	$(CARGO) clean
	rm -rf node_modules tests/e2e/out fuzz/target
