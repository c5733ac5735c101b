#!/usr/bin/env bash
# admin_plugin.sh - wsemail-admin plugin keygen | sign | verify | list:
# publisher keys, signatures that OpenSSL's own tools accept, and the
# refusals (altered file or signature, untrusted publisher, unsigned,
# malformed, misnamed).
# Environment: WSE_BUILD_ROOT (the meson build directory).
set -u

build=${WSE_BUILD_ROOT:?WSE_BUILD_ROOT is not set}
admin="$build/src/wsemail-admin"
if [ ! -x "$admin" ]; then
	echo "admin_plugin: $admin is missing" >&2
	exit 1
fi
command -v openssl >/dev/null || { echo "admin_plugin: no openssl" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/admin_plugin.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
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

wa() { "$admin" "$@"; }

cd "$tmp" || exit 1
mkdir pub plugins

# --- publishers ---
run "keygen acme" 0 wa plugin keygen --cn "Acme Forms" \
    --out-key pub/acme.key --out-cert pub/acme.pem --days 30
output_has "keygen acme" "created publisher CN=Acme Forms"
output_has "keygen acme" "fingerprint SHA256:"
m=$(stat -c %a pub/acme.key)
if [ "$m" = 600 ]; then pass; else fail "mode of the publisher key is $m"; fi
run "keygen other" 0 wa plugin keygen --cn "Other Forms" \
    --out-key pub/other.key --out-cert pub/other.pem
run "keygen refuses to overwrite" 1 wa plugin keygen --cn "Acme Forms" \
    --out-key pub/acme.key --out-cert pub/new.pem
output_has "keygen refuses to overwrite" "refusing to overwrite pub/acme.key"
[ -e pub/new.pem ] && fail "keygen wrote a certificate next to an existing key" || pass
run "keygen without --cn" 2 wa plugin keygen --out-key k --out-cert c
# what OpenSSL sees: a P-256, code-signing, non-CA certificate
run "openssl x509" 0 openssl x509 -in pub/acme.pem -noout -text
output_has "openssl x509" "Code Signing"
output_has "openssl x509" "CA:FALSE"
output_has "openssl x509" "prime256v1"

# --- signing ---
cat >plugins/expense.lua <<'EOF'
local M = {}
function M.route(form)
  if form.amount > 1000 then return { next = "manager@b.test" } end
  return { next = "clerk@a.test" }
end
return M
EOF
run "sign" 0 wa plugin sign plugins/expense.lua --name expense --version 1.0 \
    --key pub/acme.key --cert pub/acme.pem
output_has "sign" "signed plugins/expense.lua as expense 1.0 by CN=Acme Forms"
if [ "$(head -1 plugins/expense.lua.sig)" = "wsemail-plugin-signature 1" ]; then
	pass
else
	fail "first line of the signature file: $(head -1 plugins/expense.lua.sig)"
fi
run "sign with another's certificate" 1 wa plugin sign plugins/expense.lua \
    --name expense --version 1 --key pub/acme.key --cert pub/other.pem \
    --out "$tmp/x.sig"
output_has "sign with another's certificate" "is not the signing key's"
run "sign with a bad name" 1 wa plugin sign plugins/expense.lua \
    --name "../x" --version 1 --key pub/acme.key --cert pub/acme.pem \
    --out "$tmp/x.sig"
output_has "sign with a bad name" "bad plugin name"
[ -e "$tmp/x.sig" ] && fail "a refused signing wrote a file" || pass

# OpenSSL verifies the signature over the first four lines by itself
head -4 plugins/expense.lua.sig >tbs
sed -n 's/^signature: //p' plugins/expense.lua.sig | openssl base64 -d -A >sig.der
openssl x509 -in pub/acme.pem -pubkey -noout >acme.pub
run "openssl dgst -verify" 0 openssl dgst -sha256 -verify acme.pub \
    -signature sig.der tbs
output_has "openssl dgst -verify" "Verified OK"
digest=$(sha256sum plugins/expense.lua | cut -d' ' -f1)
if grep -qx "sha256: $digest" plugins/expense.lua.sig; then pass; else fail "sha256 line is not the file's digest"; fi

# --- verifying ---
run "verify" 0 wa plugin verify plugins/expense.lua --trust pub/acme.pem
output_has "verify" "signature OK"
output_has "verify" "version     1.0"
output_has "verify" "publisher   CN=Acme Forms"
output_has "verify" "sha256      $digest"
run "verify --name" 0 wa plugin verify plugins/expense.lua --name expense \
    --trust pub/acme.pem
run "verify --name of another plugin" 1 wa plugin verify plugins/expense.lua \
    --name payroll --trust pub/acme.pem
output_has "verify --name of another plugin" 'signed as plugin "expense", not "payroll"'
cat pub/other.pem pub/acme.pem >pub/bundle.pem
run "verify with a bundle" 0 wa plugin verify plugins/expense.lua \
    --trust pub/bundle.pem
run "verify with two --trust" 0 wa plugin verify plugins/expense.lua \
    --trust pub/other.pem --trust pub/acme.pem
cp plugins/expense.lua.sig elsewhere.sig
run "verify --sig" 0 wa plugin verify plugins/expense.lua --sig elsewhere.sig \
    --trust pub/acme.pem
run "verify without --trust" 2 wa plugin verify plugins/expense.lua

# untrusted publisher
run "untrusted publisher" 1 wa plugin verify plugins/expense.lua \
    --trust pub/other.pem
output_has "untrusted publisher" "REFUSED (untrusted)"
output_has "untrusted publisher" "publisher CN=Acme Forms is not a trusted publisher"

# altered file
cp plugins/expense.lua altered.lua
cp plugins/expense.lua.sig altered.lua.sig
sed -i 's/1000/100000/' altered.lua
run "altered file" 1 wa plugin verify altered.lua --trust pub/acme.pem
output_has "altered file" "REFUSED (bad-signature)"
output_has "altered file" "does not match the digest signed for expense 1.0"
# altered version line (the file itself untouched)
sed 's/^version: 1.0$/version: 2.0/' plugins/expense.lua.sig >v2.sig
run "altered version line" 1 wa plugin verify plugins/expense.lua --sig v2.sig \
    --trust pub/acme.pem
output_has "altered version line" "REFUSED (bad-signature)"
output_has "altered version line" "does not verify with publisher CN=Acme Forms's key"
# unsigned, malformed
run "unsigned" 1 wa plugin verify altered.lua --sig nothing.sig \
    --trust pub/acme.pem
output_has "unsigned" "REFUSED (unsigned)"
echo "not a signature" >junk.sig
run "malformed" 1 wa plugin verify plugins/expense.lua --sig junk.sig \
    --trust pub/acme.pem
output_has "malformed" "REFUSED (malformed)"
output_has "malformed" "not a wsemail plugin signature"

# --- listing a directory ---
printf 'return { route = function() return {} end }\n' >plugins/payroll.lua
run "sign payroll as other" 0 wa plugin sign plugins/payroll.lua \
    --name payroll --version 3 --key pub/other.key --cert pub/other.pem
printf 'return {}\n' >plugins/notes.lua
cp plugins/expense.lua plugins/renamed.lua
cp plugins/expense.lua.sig plugins/renamed.lua.sig
run "list" 1 wa plugin list plugins --trust pub/acme.pem
output_has "list" "VERDICT"
output_has "list" "expense.lua              expense          1.0        ok             CN=Acme Forms"
output_has "list" "payroll.lua              payroll          3          untrusted      CN=Other Forms"
output_has "list" "notes.lua                -                -          unsigned"
output_has "list" "renamed.lua              expense          1.0        name-mismatch"
output_has "list" "3 of 4 plugins refused"
rm plugins/notes.lua plugins/renamed.lua plugins/renamed.lua.sig
run "list, all trusted" 0 wa plugin list plugins --trust pub/acme.pem \
    --trust pub/other.pem
output_has "list, all trusted" "payroll          3          ok"
run "list of an empty directory" 0 wa plugin list pub --trust pub/acme.pem
output_has "list of an empty directory" "no plugins"

# no temporary files left behind
left=$(find "$tmp" -name '*.tmp*' | wc -l)
if [ "$left" -eq 0 ]; then pass; else fail "$left temporary files left"; fi

if [ "$failed" -ne 0 ]; then
	echo "admin_plugin: $failed checks failed"
	exit 1
fi
echo "admin_plugin: $passed checks passed"
exit 0
