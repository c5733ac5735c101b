#!/usr/bin/env bash
# admin_pki.sh - wsemail-admin builds a CA directory that OpenSSL's own
# "openssl verify" accepts, and whose revocations it honours.
# Environment: WSE_BUILD_ROOT (the meson build directory).
set -u

build=${WSE_BUILD_ROOT:?WSE_BUILD_ROOT is not set}
admin="$build/src/wsemail-admin"
if [ ! -x "$admin" ]; then
	echo "admin_pki: $admin is missing" >&2
	exit 1
fi
command -v openssl >/dev/null || { echo "admin_pki: no openssl" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/admin_pki.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
pki="$tmp/pki"
out="$tmp/out"
passed=0
failed=0

pass() { passed=$((passed + 1)); }
fail() {
	failed=$((failed + 1))
	echo "FAIL: $*" >&2
	[ -s "$out" ] && sed 's/^/    /' "$out" >&2
}

# run DESCRIPTION WANTED-STATUS COMMAND...: exit status must match
run() {
	local what=$1 want=$2 rc
	shift 2
	"$@" >"$out" 2>&1
	rc=$?
	if [ "$rc" -eq "$want" ]; then pass; else fail "$what (exit $rc, wanted $want)"; fi
}

# output_has DESCRIPTION TEXT: the last command's output contains TEXT
output_has() {
	if grep -qF -- "$2" "$out"; then pass; else fail "$1: no '$2' in the output"; fi
}

mode_is() {
	local m
	m=$(stat -c %a "$1" 2>/dev/null)
	if [ "$m" = "$2" ]; then pass; else fail "mode of $1 is '$m', wanted $2"; fi
}

verify() {  # DOMAIN: openssl verify of DOMAIN's service certificate
	openssl verify -crl_check_all -CAfile "$pki/root/cert.pem" \
	    -untrusted "$pki/$1/ca.pem" -CRLfile "$pki/root/crl.pem" \
	    -CRLfile "$pki/$1/crl.pem" "$pki/$1/service.pem"
}

wa() { "$admin" --pki "$pki" "$@"; }

# --- build the hierarchy ---
run "ca init" 0 wa ca init --cn "Admin Test Root" --days 30
output_has "ca init" "CN=Admin Test Root"
mode_is "$pki/root/key.pem" 600
root_sum=$(sha256sum "$pki/root/key.pem")

for d in a.test b.test; do
	run "domain issue $d" 0 wa domain issue "$d" --days 20
	output_has "domain issue $d" "CN=$d"
	mode_is "$pki/$d/ca-key.pem" 600
	run "service issue $d" 0 wa service issue "$d" --host "mail.$d" --days 10
	output_has "service issue $d" "DNS:$d, DNS:mail.$d"
	mode_is "$pki/$d/service-key.pem" 600
	run "openssl verify $d" 0 verify "$d"
	output_has "openssl verify $d" "OK"
done

# a host outside the domain is refused before anything is written
run "service issue outside the domain" 1 wa service issue a.test --host b.test
output_has "service issue outside the domain" "outside the name constraints"

# --- nothing is overwritten ---
run "second ca init refuses" 1 wa ca init
output_has "second ca init refuses" "refusing to overwrite"
if [ "$(sha256sum "$pki/root/key.pem")" = "$root_sum" ]; then pass; else fail "root key changed"; fi
run "second domain issue refuses" 1 wa domain issue a.test
run "second service issue refuses" 1 wa service issue a.test --host mail.a.test

# --- revocation, seen by OpenSSL ---
run "revoke a.test's service" 0 wa revoke a.test --cert "$pki/a.test/service.pem"
run "revoked a.test fails openssl verify" 2 verify a.test
output_has "revoked a.test fails openssl verify" "certificate revoked"
run "b.test still verifies" 0 verify b.test
run "cert of another CA refused" 1 wa revoke a.test --cert "$pki/b.test/service.pem"
output_has "cert of another CA refused" "not by the CA a.test"

# revoke b.test's domain CA at the root, by serial
serial=$(openssl x509 -in "$pki/b.test/ca.pem" -noout -serial | sed 's/^serial=//')
run "revoke b.test's CA at the root" 0 wa revoke root "$serial"
run "b.test fails openssl verify" 2 verify b.test
output_has "b.test fails openssl verify" "certificate revoked"

# CRL reissue keeps the revocations
run "crl a.test" 0 wa crl a.test --days 2
run "a.test stays revoked" 2 verify a.test
output_has "a.test stays revoked" "certificate revoked"

# --- usage errors and show ---
run "usage error" 2 wa revoke
run "unknown command" 2 wa frobnicate
run "bad --days" 2 wa crl a.test --days -1
run "cert show" 0 wa cert show "$pki/a.test/chain.pem"
output_has "cert show" "certificate 2 of 2"
run "cert show of a non-certificate" 1 wa cert show "$pki/a.test/revoked"
output_has "cert show of a non-certificate" "wsemail-admin: "

# no temporary files left behind
left=$(find "$pki" -name '*.tmp-*' | wc -l)
if [ "$left" -eq 0 ]; then pass; else fail "$left temporary files left"; fi

echo "admin_pki: $passed checks passed"
if [ "$failed" -ne 0 ]; then
	echo "admin_pki: $failed checks failed"
	exit 1
fi
exit 0
