#!/usr/bin/env bash
# Run the benchmarks against an optimised build.  Usage: bench/run.sh [BUILD]
#   environment: BENCH_N=2000 (bench_wss rounds); ATTACHMENT=0 skips
#   bench/attachment.sh (a few minutes; installs nginx-light if missing;
#   its own knobs SIZE_MIB, REPEAT, RCPTS, ... pass through)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
ninja -C "$build" bench/bench_wss bench/bench_form >/dev/null
echo "== WS-Security sign/verify cost ($(nproc) cores, $(date -u +%F)) =="
"$build/bench/bench_wss" "${BENCH_N:-2000}"
echo
echo "== Routed forms: the final party verifies a form with 20 approvals =="
"$build/bench/bench_form" 200 20
if [ "${ATTACHMENT:-1}" = 1 ]; then
	ninja -C "$build" src/wsemaild src/wsemail src/wsemail-admin plugins/ondemand.so >/dev/null
	echo
	bash bench/attachment.sh "$build"
fi
