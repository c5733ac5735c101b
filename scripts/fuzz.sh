#!/usr/bin/env bash
# Build the libFuzzer targets with clang (+ASan/UBSan) and fuzz each for
# FUZZ_SECONDS (default 60), starting from the committed seed corpus.
# New findings land in build-fuzz/findings/.  Usage: scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang >/dev/null || { apt-get install -y -qq clang >/dev/null; }
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang meson setup build-fuzz -Dfuzzing=true -Dtests=false \
    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C build-fuzz fuzz/fuzz_envelope
mkdir -p build-fuzz/findings build-fuzz/work
cp -n fuzz/corpus/* build-fuzz/work/ 2>/dev/null || true
build-fuzz/fuzz/fuzz_envelope -max_total_time="${FUZZ_SECONDS:-60}" \
  -max_len=65536 -artifact_prefix=build-fuzz/findings/ build-fuzz/work
