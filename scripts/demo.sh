#!/usr/bin/env bash
# The WSEmail demonstration: a root CA, two domains, their servers'
# certificates and CRLs; a signed envelope verified, and tampered,
# misattributed, stale and revoked ones refused.  Every file lives in a
# temporary directory that is removed at the end.
# Usage: scripts/demo.sh [BUILD-DIR]      (normally: make demo)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
admin="$PWD/$build/src/wsemail-admin"
[ -x "$admin" ] || { echo "demo: build first (make demo does)"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/wsemail-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
pki="$work/pki"
A() { "$admin" --pki "$pki" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() {
  local shown="$*"
  shown=${shown/#A /wsemail-admin }
  printf '$ %s\n' "${shown//$work\//}"
  "$@" 2>&1 | sed 's/^/   /'
  return "${PIPESTATUS[0]}"
}

say "1. An offline root CA, and a domain CA for each of a.test and b.test"
run A ca init --cn "WSEmail Demo Root"
run A domain issue a.test
run A domain issue b.test
say "2. Each domain CA issues its server's certificate (TLS + signing)"
run A service issue a.test --host mail.a.test
run A service issue b.test --host mail.b.test
run A cert show "$pki/a.test/service.pem"
say "3. OpenSSL agrees: the chain verifies with CRLs checked for every CA"
run openssl verify -crl_check_all -CAfile "$pki/root/cert.pem" \
  -untrusted "$pki/a.test/ca.pem" -CRLfile "$pki/root/crl.pem" \
  -CRLfile "$pki/a.test/crl.pem" "$pki/a.test/service.pem"

cat > "$work/body.xml" <<'XML'
<m:Deliver xmlns:m="urn:wsemail:2026"><m:From>alice@a.test</m:From><m:To>bob@b.test</m:To><m:Subject>Quarterly figures</m:Subject><m:Text>Pay 100 EUR to account 1234.</m:Text></m:Deliver>
XML
say "4. a.test's server signs a Deliver call for b.test (WS-Security, ECDSA P-256)"
printf '$ wsemail-admin envelope sign --domain a.test --to https://b.test/wsemail body.xml > msg.xml\n'
A envelope sign --domain a.test --to https://b.test/wsemail "$work/body.xml" > "$work/msg.xml"
printf '   %s bytes; signed parts: Body, Timestamp, To, Action, MessageID\n' "$(wc -c < "$work/msg.xml")"
say "5. b.test verifies it: freshness, certificate validity, replay, signature, chain+CRLs, domain"
run A envelope verify --domain a.test --to https://b.test/wsemail "$work/msg.xml"

refuse() {  # label, file, verify args...
  local label=$1 file=$2; shift 2
  say "$label"
  if A envelope verify "$@" "$file" | sed 's/^/   /'; then
    echo "demo: this should have been refused" >&2; exit 1
  fi
}
sed 's/Pay 100 EUR/Pay 9100 EUR/' "$work/msg.xml" > "$work/tampered.xml"
refuse "6. Tampered in transit (100 -> 9100 EUR): refused" "$work/tampered.xml" --domain a.test
A envelope sign --domain b.test --to https://b.test/wsemail "$work/body.xml" > "$work/other.xml"
refuse "7. Signed by b.test's server but claiming to come from a.test: refused" "$work/other.xml" --domain a.test
A envelope sign --domain a.test --time-offset -600 "$work/body.xml" > "$work/stale.xml"
refuse "8. Ten minutes old (freshness window 300 s): refused" "$work/stale.xml" --domain a.test
serial=$(A cert show "$pki/a.test/service.pem" | awk '/^ *serial/ {print $NF}')
say "9. The a.test service certificate is revoked and the CRL reissued"
run A revoke a.test "$serial"
refuse "10. The original message, checked again against the new CRL: refused" "$work/msg.xml" --domain a.test
rm "$pki/a.test/crl.pem"
refuse "11. And with the domain's CRL missing: temporary failure, never acceptance" "$work/msg.xml" --domain a.test
say "Done. Everything above lived in a temporary directory, now removed."
