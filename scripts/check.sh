#!/usr/bin/env bash
# The whole test suite: a normal build and an AddressSanitizer +
# UndefinedBehaviorSanitizer build, each with every test; then one summary.
# Usage: scripts/check.sh        (from the source root; used by make check)
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

scripts/deps.sh test || exit 1

setup() {  # dir, extra meson options...
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    meson configure "$dir" "$@" >/dev/null || return 1
  else
    meson setup "$dir" "$@" >/dev/null || return 1
  fi
  ninja -C "$dir" >"$dir.compile.log" 2>&1 || { cat "$dir.compile.log"; return 1; }
}

rc=0
builds=(build build-asan)
setup build -Db_sanitize=none || rc=1
setup build-asan -Db_sanitize=address,undefined -Db_lundef=false || rc=1
if [ $rc -ne 0 ]; then
  echo "check: build failed"
  echo "0 passed, 1 failed"
  exit 1
fi

for b in "${builds[@]}"; do
  echo "== tests in $b =="
  meson test -C "$b" --print-errorlogs --num-processes 2 || rc=1
done

python3 - "${builds[@]}" <<'PY'
import json, re, sys
passed = failed = skipped = 0
for b in sys.argv[1:]:
    try:
        lines = open(f"{b}/meson-logs/testlog.json").read().splitlines()
    except OSError:
        failed += 1
        continue
    for line in lines:
        t = json.loads(line)
        out = (t.get("stdout") or "") + "\n" + (t.get("stderr") or "")
        ok = t["result"] in ("OK", "EXPECTEDFAIL")
        if t["result"] == "SKIP":
            skipped += 1
            continue
        p = sum(int(m) for m in re.findall(r"^\[  PASSED  \] (\d+) test", out, re.M))
        f = sum(int(m) for m in re.findall(r"^\[  FAILED  \] (\d+) test", out, re.M))
        m = re.search(r"^\S+: (\d+) checks passed", out, re.M)
        if p or f:
            passed += p
            failed += f
            if not ok and f == 0:
                failed += 1
        elif m and ok:
            passed += int(m.group(1))
        else:
            passed += ok
            failed += (not ok)
print(f"cases counted over builds: {', '.join(sys.argv[1:])}")
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed else 0)
PY
src=$?
[ $src -ne 0 ] && rc=1
echo "check: wall time $(( $(date +%s) - start )) s" >&2
exit $rc
