#!/usr/bin/env bash
# Build the libFuzzer targets with clang (+ASan/UBSan) and fuzz each for
# FUZZ_SECONDS (default 60), starting from its committed seed corpus.
# FUZZ_TARGETS picks targets (default "envelope message batch").  New findings
# land in build-fuzz/findings/TARGET/.  Usage: scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang >/dev/null || { apt-get install -y -qq clang >/dev/null; }
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang meson setup build-fuzz -Dfuzzing=true -Dtests=false \
    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
# Each target from its own seed corpus into its own working corpus.
for t in ${FUZZ_TARGETS:-envelope message batch}; do
  case $t in
  envelope) seeds=fuzz/corpus ;;
  message) seeds=fuzz/corpus-message ;;
  batch) seeds=fuzz/corpus-batch ;;
  *) echo "fuzz.sh: unknown target $t" >&2; exit 2 ;;
  esac
  ninja -C build-fuzz "fuzz/fuzz_$t"
  mkdir -p "build-fuzz/findings/$t" "build-fuzz/work-$t"
  cp -n "$seeds"/* "build-fuzz/work-$t/" 2>/dev/null || true
  "build-fuzz/fuzz/fuzz_$t" -max_total_time="${FUZZ_SECONDS:-60}" \
    -max_len=65536 -artifact_prefix="build-fuzz/findings/$t/" \
    "build-fuzz/work-$t"
done
