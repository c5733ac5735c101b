#!/usr/bin/env bash
# Machine-checked proofs: run every ProVerif model under docs/proof and
# check each verdict against the expected one (docs/proof/README.md).
#   - the variants generated from ondemand.pv are up to date;
#   - ondemand.pv, the protocol as implemented: every security query is
#     true and every phase is reachable;
#   - ondemand-honest.pv: every phase is reachable with no corrupted user
#     and no attacker domain;
#   - each broken variant: the query its missing check protects is false
#     (ProVerif shows an attack), the others stay true.
# Prints one line per check, then "proof: N checks passed" (exit 0), or the
# failures and "proof: F of N checks failed" (exit 1).  Exit 77 (skipped)
# when proverif is not installed.
# Usage: scripts/verify.sh   (from anywhere; used by make verify)
# Environment: PROOF_TIMEOUT  seconds per model (default 600)
#              PROOF_JOBS     models run at once (default: the CPU count)
#              PROOF_LOGDIR   keep ProVerif's output there (default: discard)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/docs/proof

if ! command -v proverif >/dev/null 2>&1; then
  echo "verify: proverif not found; skipped"
  exit 77
fi

limit=${PROOF_TIMEOUT:-600}
jobs=${PROOF_JOBS:-$(nproc 2>/dev/null || echo 1)}
[ "$jobs" -ge 1 ] 2>/dev/null || jobs=1
work=$(mktemp -d "${TMPDIR:-/tmp}/wse-proof.XXXXXX")
trap 'rm -rf "$work"' EXIT
logs=${PROOF_LOGDIR:-$work/logs}
mkdir -p "$logs" || exit 1

version=$(proverif -help 2>&1 | sed -n 's/^Proverif \([0-9][0-9.]*[0-9a-z]\).*/\1/p' | head -1)
echo "verify: ProVerif ${version:-unknown version}, $jobs at once, ${limit} s per model"

passed=0
failed=()
ok() { passed=$((passed + 1)); echo "ok $((passed + ${#failed[@]})) - $*"; }
bad() { failed+=("$*"); echo "FAIL $((passed + ${#failed[@]})) - $*"; }

# ---- the variants are generated from ondemand.pv, and up to date ----
variants="ondemand-broken-norecipient.pv ondemand-broken-anyca.pv
  ondemand-broken-noreplay.pv ondemand-honest.pv"
if sh "$dir/gen-variants.sh" "$work/gen" >"$work/gen.log" 2>&1; then
  for v in $variants; do
    if cmp -s "$work/gen/$v" "$dir/$v"; then
      ok "$v is generated from ondemand.pv and up to date"
    else
      bad "$v differs from what docs/proof/gen-variants.sh generates"
    fi
  done
else
  cat "$work/gen.log"
  bad "docs/proof/gen-variants.sh failed"
fi

# ---- run the models, $jobs at a time ----
models="ondemand.pv ondemand-honest.pv $variants"
run() {  # model
  local m=$1 t0 t1 rc
  t0=$(date +%s)
  (cd "$dir" && timeout "$limit" proverif "$m") >"$logs/$m.log" 2>&1
  rc=$?
  t1=$(date +%s)
  echo "$rc $((t1 - t0))" >"$work/$m.status"
}
n=0
for m in $models; do
  run "$m" &
  n=$((n + 1))
  if [ "$n" -ge "$jobs" ]; then wait -n 2>/dev/null || wait; n=$((n - 1)); fi
done
wait

# verdict MODEL PREFIX: the verdict of the first RESULT line whose query
# text starts with PREFIX: true, false, unproved, or missing.
verdict() {
  awk -v p="$2" '
    /^RESULT / {
      q = substr($0, 8)
      if (substr(q, 1, length(p)) != p) next
      if (q ~ /is true\.\)?$/) v = "true"
      else if (q ~ /is false\.\)?$/) v = "false"
      else if (q ~ /cannot be proved\.\)?$/) v = "unproved"
      else v = "unknown"
      print v; found = 1; exit
    }
    END { if (!found) print "missing" }' "$logs/$1.log"
}

# expect MODEL PREFIX EXPECTED DESCRIPTION
expect() {
  local v
  v=$(verdict "$1" "$2")
  if [ "$v" = "$3" ]; then
    ok "$1: $4 ($v)"
  else
    bad "$1: $4 ($v, expected $3)"
  fi
}

# completed MODEL: ProVerif ran to the end; 0 if so
completed() {
  local rc secs
  read -r rc secs <"$work/$1.status"
  if [ "$rc" -eq 124 ]; then
    bad "$1: no answer within $limit s"
    return 1
  elif [ "$rc" -ne 0 ] || grep -q '^Error' "$logs/$1.log"; then
    bad "$1: proverif failed (exit $rc)"
    grep -m 5 'Error' "$logs/$1.log"
    return 1
  fi
  ok "$1: proverif completed in $secs s"
}

A='inj-event(RCAccept('          # (a) RC accepts => SC sent, injective
B='inj-event(SSRelease('         # (b) SS releases => RC requested, injective
Bn='(but event(SSRelease('       # (b) without injectivity, when (b) fails
D='event(SSRelease('             # (d) SS releases only to a recipient
E='event(SSRefFor('              # (e) a reference's recipients come from SC
# (c) reachability: "not event(E) is false" means E is reachable
sanity() {  # MODEL
  expect "$1" 'not event(SSAccepted(' false "(c) Msg 1 Submit accepted is reachable"
  expect "$1" 'not event(SCDone('     false "(c) Msg 2 SubmitResponse received is reachable"
  expect "$1" 'not event(RSStored('   false "(c) Msg 3 Deliver stored is reachable"
  expect "$1" 'not event(RCRead('     false "(c) Msg 4/5 message read is reachable"
  expect "$1" 'not event(RCGotToken(' false "(c) Msg 6/7 token obtained is reachable"
  expect "$1" 'not event(SSRelease('  false "(c) Msg 8 attachment released is reachable"
  expect "$1" 'not event(RCAccept('   false "(c) Msg 9 attachment accepted is reachable"
}

m=ondemand.pv
if completed $m; then
  expect $m "$A" true "(a) RC accepts bytes from SC => SC sent them (injective)"
  expect $m "$B" true "(b) SS releases REF to mailbox => its client asked (injective)"
  sanity $m
  expect $m "$D" true "(d) SS releases REF only to a recipient of REF"
  expect $m "$E" true "(e) REF's recipients are the ones SC named"
fi

m=ondemand-honest.pv
if completed $m; then
  sanity $m
fi

m=ondemand-broken-norecipient.pv
if completed $m; then
  expect $m "$D" false "(d) attack: a non-recipient's token gets REF"
  expect $m "$A" true "(a) unaffected"
  expect $m "$B" true "(b) unaffected"
  expect $m "$E" true "(e) unaffected"
fi

m=ondemand-broken-anyca.pv
if completed $m; then
  expect $m "$B" false "(b) attack: a token for another domain's mailbox"
  expect $m "$A" true "(a) unaffected"
  expect $m "$D" true "(d) unaffected"
  expect $m "$E" true "(e) unaffected"
fi

m=ondemand-broken-noreplay.pv
if completed $m; then
  expect $m "$B" false "(b) attack: a replayed FetchAttachment is served twice"
  expect $m "$Bn" true "(b) still holds without injectivity"
  expect $m "$A" true "(a) unaffected"
  expect $m "$D" true "(d) unaffected"
  expect $m "$E" true "(e) unaffected"
fi

total=$((passed + ${#failed[@]}))
if [ ${#failed[@]} -eq 0 ]; then
  echo "proof: $passed checks passed"
  exit 0
fi
echo "failed:"
for f in "${failed[@]}"; do echo "  $f"; done
[ -n "${PROOF_LOGDIR:-}" ] || echo "(set PROOF_LOGDIR=DIR to keep ProVerif's output)"
echo "proof: ${#failed[@]} of $total checks failed"
exit 1
