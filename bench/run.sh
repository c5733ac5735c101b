#!/usr/bin/env bash
# Run the benchmarks against an optimised build.  Usage: bench/run.sh [BUILD]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
ninja -C "$build" bench/bench_wss >/dev/null
echo "== WS-Security sign/verify cost ($(nproc) cores, $(date -u +%F)) =="
"$build/bench/bench_wss" "${BENCH_N:-2000}"
