#!/usr/bin/env bash
# admin_pki.sh - wsemail-admin builds a CA directory that OpenSSL's own
# "openssl verify" accepts, and whose revocations it honours.
# Environment: WSE_BUILD_ROOT (the meson build directory).
set -u
T=admin_pki
B=${WSE_BUILD_ROOT:?WSE_BUILD_ROOT is not set}
. "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || fail "no openssl"
pki="$W/pki"

mode_is() {
	local m
	m=$(stat -c %a "$1" 2>/dev/null)
	if [ "$m" = "$2" ]; then pass; else nok "mode of $1 is '$m', wanted $2"; fi
}

verify() {  # DOMAIN: openssl verify of DOMAIN's service certificate
	openssl verify -crl_check_all -CAfile "$pki/root/cert.pem" \
	    -untrusted "$pki/$1/ca.pem" -CRLfile "$pki/root/crl.pem" \
	    -CRLfile "$pki/$1/crl.pem" "$pki/$1/service.pem"
}

wa() { "$ADMIN" --pki "$pki" "$@"; }

# --- build the hierarchy ---
run "ca init" 0 wa ca init --cn "Admin Test Root" --days 30
has "ca init" "CN=Admin Test Root"
mode_is "$pki/root/key.pem" 600
root_sum=$(sha256sum "$pki/root/key.pem")

for d in a.test b.test; do
	run "domain issue $d" 0 wa domain issue "$d" --days 20
	has "domain issue $d" "CN=$d"
	mode_is "$pki/$d/ca-key.pem" 600
	run "service issue $d" 0 wa service issue "$d" --host "mail.$d" --days 10
	has "service issue $d" "DNS:$d, DNS:mail.$d"
	mode_is "$pki/$d/service-key.pem" 600
	run "openssl verify $d" 0 verify "$d"
	has "openssl verify $d" "OK"
done

# a host outside the domain is refused before anything is written
run "service issue outside the domain" 1 wa service issue a.test --host b.test
has "service issue outside the domain" "outside the name constraints"

# only DOMAIN's own domain CA issues DOMAIN's service certificate: b.test's
# CA filed under c.test issues nothing, and nothing is written
mkdir "$pki/c.test"
cp "$pki/b.test/ca.pem" "$pki/b.test/ca-key.pem" "$pki/c.test/"
run "service issue with another domain's CA" 1 wa service issue c.test
has "service issue with another domain's CA" "is the CA certificate of b.test, not of c.test"
left=$(ls "$pki/c.test" | tr '\n' ' ')
if [ "$left" = "ca-key.pem ca.pem " ]; then pass; else nok "c.test holds: $left"; fi
rm -r "$pki/c.test"

# --- nothing is overwritten ---
run "second ca init refuses" 1 wa ca init
has "second ca init refuses" "refusing to overwrite"
if [ "$(sha256sum "$pki/root/key.pem")" = "$root_sum" ]; then pass; else nok "root key changed"; fi
run "second domain issue refuses" 1 wa domain issue a.test
run "second service issue refuses" 1 wa service issue a.test --host mail.a.test

# --- revocation, seen by OpenSSL ---
run "revoke a.test's service" 0 wa revoke a.test --cert "$pki/a.test/service.pem"
run "revoked a.test fails openssl verify" 2 verify a.test
has "revoked a.test fails openssl verify" "certificate revoked"
run "b.test still verifies" 0 verify b.test
run "cert of another CA refused" 1 wa revoke a.test --cert "$pki/b.test/service.pem"
has "cert of another CA refused" "not by the CA a.test"

# revoke b.test's domain CA at the root, by serial
serial=$(openssl x509 -in "$pki/b.test/ca.pem" -noout -serial | sed 's/^serial=//')
run "revoke b.test's CA at the root" 0 wa revoke root "$serial"
run "b.test fails openssl verify" 2 verify b.test
has "b.test fails openssl verify" "certificate revoked"

# CRL reissue keeps the revocations
run "crl a.test" 0 wa crl a.test --days 2
run "a.test stays revoked" 2 verify a.test
has "a.test stays revoked" "certificate revoked"

# --- usage errors and show ---
run "usage error" 2 wa revoke
run "unknown command" 2 wa frobnicate
run "bad --days" 2 wa crl a.test --days -1
run "cert show" 0 wa cert show "$pki/a.test/chain.pem"
has "cert show" "certificate 2 of 2"
run "cert show of a non-certificate" 1 wa cert show "$pki/a.test/revoked"
has "cert show of a non-certificate" "wsemail-admin: "

# no temporary files left behind
left=$(find "$pki" -name '*.tmp-*' | wc -l)
if [ "$left" -eq 0 ]; then pass; else nok "$left temporary files left"; fi

finish
