#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ with libFuzzer's coverage instrumentation (no sanitizer, so
# the stable toolchain builds them) and runs each for SECONDS (default 10), one after another.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Each run stops at the first crash (a panic or an allocation over 256 MiB) and saves the input
# under fuzz/artifacts/TARGET/; the corpus grows in fuzz/corpus/TARGET/. Prints one line per
# target: executions, seconds, executions per second.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo/fuzz"
seconds="${1:-10}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(client_message length_prefixed codec_headers caps access tiles)

# What cargo-fuzz passes with --sanitizer none.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps the instrumentation off build scripts and proc macros.
host="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release -j "${JOBS:-2}" --bins --target "$host" >&2

status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="$(mktemp)"
  # The corpus grows in corpus/; seeds/ (committed) starts it with real messages and headers.
  if ./target/"$host"/release/"$t" "corpus/$t" "seeds/$t" -max_total_time="$seconds" -rss_limit_mb=2048 \
      -malloc_limit_mb=256 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="artifacts/$t/" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz $t: ok, ${runs:-?} executions in ${seconds} s ($(( ${runs:-0} / seconds )) per second)"
  else
    echo "fuzz $t: FAILED" >&2
    tail -n 40 "$log" >&2
    status=1
  fi
  rm -f "$log"
done
exit "$status"
