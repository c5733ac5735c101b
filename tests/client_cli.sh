#!/usr/bin/env bash
# client_cli.sh - the wsemail client against a real wsemaild on loopback:
# a PKI minted here, users made with wsemail-admin, then send, list, read
# (verified end to end, attachment saved and checked), delete; a wrong
# password, another user's message, a forged original, a terminal-escape
# subject, unsafe attachment names and a certificate for the wrong host.
# Environment: WSE_BUILD_ROOT (the meson build directory).
set -u

build=${WSE_BUILD_ROOT:?WSE_BUILD_ROOT is not set}
admin="$build/src/wsemail-admin"
server="$build/src/wsemaild"
client="$build/src/wsemail"
for p in "$admin" "$server" "$client"; do
	if [ ! -x "$p" ]; then
		echo "client_cli: $p is missing" >&2
		exit 1
	fi
done
for t in python3 sqlite3 sha256sum timeout; do
	command -v "$t" >/dev/null || { echo "client_cli: no $t" >&2; exit 1; }
done
# Sanitizer builds: make every report fatal and visible (no effect
# otherwise).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
unset WSEMAIL_CONFIG WSEMAIL_PASSWORD

tmp=$(mktemp -d "${TMPDIR:-/tmp}/client_cli.XXXXXX") || exit 1
server_pid=""
stop_server() {
	if [ -n "$server_pid" ]; then
		kill -TERM "$server_pid" 2>/dev/null
		for _ in $(seq 1 100); do
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$server_pid" 2>/dev/null
		wait "$server_pid" 2>/dev/null
		server_pid=""
	fi
}
cleanup() {
	stop_server
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

pki="$tmp/pki"
out="$tmp/out"
err="$tmp/err"
passed=0
failed=0

pass() { passed=$((passed + 1)); }
fail() {
	failed=$((failed + 1))
	echo "FAIL: $*" >&2
	[ -s "$out" ] && sed 's/^/    out: /' "$out" >&2
	[ -s "$err" ] && sed 's/^/    err: /' "$err" >&2
}
die() {
	echo "client_cli: $*" >&2
	[ -s "$tmp/server.log" ] && sed 's/^/    server: /' "$tmp/server.log" >&2
	exit 1
}

# run DESCRIPTION WANTED-STATUS COMMAND...: exit status must match
run() {
	local what=$1 want=$2 rc
	shift 2
	if declare -F "$1" >/dev/null; then
		"$@" >"$out" 2>"$err" </dev/null	# times itself
	else
		timeout 60 "$@" >"$out" 2>"$err" </dev/null
	fi
	rc=$?
	if [ "$rc" -eq "$want" ]; then pass; else fail "$what (exit $rc, wanted $want)"; fi
	if grep -qE "Sanitizer|runtime error" "$err"; then
		fail "$what: sanitizer report"
	fi
}
# out_has / err_has DESCRIPTION TEXT: the last command's stdout / stderr
out_has() {
	if grep -qF -- "$2" "$out"; then pass; else fail "$1: no '$2' on stdout"; fi
}
out_lacks() {
	if grep -qF -- "$2" "$out"; then fail "$1: '$2' on stdout"; else pass; fi
}
err_has() {
	if grep -qF -- "$2" "$err"; then pass; else fail "$1: no '$2' on stderr"; fi
}
check() {  # DESCRIPTION COMMAND...: the command must succeed
	local what=$1
	shift
	if "$@"; then pass; else fail "$what"; fi
}

wa() { timeout 60 "$admin" --pki "$pki" "$@"; }
# as_user USER COMMAND...: the client, as USER (password USER-secret-pw)
as_user() {
	local user=$1
	shift
	WSEMAIL_PASSWORD="$user-secret-pw" timeout 60 "$client" \
	    --config "$tmp/$user.conf" "$@"
}

# --- a PKI for a.test ---
wa ca init --cn "Client Test Root" >/dev/null || die "ca init failed"
wa domain issue a.test >/dev/null || die "domain issue failed"
wa service issue a.test --host mail.a.test >/dev/null ||
    die "service issue failed"

# --- the server, on a free loopback port ---
port=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()') || die "no free port"
url="https://mail.a.test:$port/wsemail"
conf="$tmp/wsemaild.conf"
cat >"$conf" <<EOF
domain = a.test
url = $url
listen = 127.0.0.1:$port
cert_chain = $pki/a.test/chain.pem
key = $pki/a.test/service-key.pem
roots = $pki/root/cert.pem
crl = $pki/root/crl.pem
crl = $pki/a.test/crl.pem
store = sqlite:$tmp/a.db
secret_file = $tmp/secret
retry_first = 1
threads = 2
EOF
"$server" "$conf" >"$tmp/server.out" 2>"$tmp/server.log" &
server_pid=$!
for _ in $(seq 1 200); do
	grep -q "ready" "$tmp/server.out" 2>/dev/null && break
	kill -0 "$server_pid" 2>/dev/null || die "wsemaild did not start"
	sleep 0.1
done
grep -q "ready" "$tmp/server.out" || die "wsemaild is not ready after 20 s"

# --- users, and a client configuration for each ---
for u in alice bob carol; do
	WSEMAIL_PASSWORD="$u-secret-pw" timeout 60 "$admin" --config "$conf" \
	    user add "$u@a.test" >"$out" 2>"$err" ||
	    die "user add $u@a.test failed: $(cat "$err")"
	cat >"$tmp/$u.conf" <<EOF
server = $url
connect = 127.0.0.1
address = $u@a.test
roots = $pki/root/cert.pem
crl = $pki/root/crl.pem
crl = $pki/a.test/crl.pem
EOF
done
# bob again, without CRLs
grep -v '^crl' "$tmp/bob.conf" >"$tmp/bobnocrl.conf"

# wait_mail USER CONF N: until USER's mailbox holds N messages (10 s)
wait_mail() {
	local i
	for i in $(seq 1 40); do
		if WSEMAIL_PASSWORD="$1-secret-pw" timeout 60 "$client" \
		    --config "$2" list >"$out" 2>"$err" </dev/null &&
		    grep -qE "^$3 messages?," "$out"; then
			return 0
		fi
		sleep 0.25
	done
	return 1
}
# first_id: the id on the first row of the last "list"
first_id() { awk 'NR == 2 { print $1 }' "$out"; }

# --- usage ---
run "no command" 2 "$client"
run "unknown command" 2 "$client" frobnicate
run "send without --to" 2 as_user alice send --subject x
run "help" 0 "$client" help
out_has "help" "read ID [--save-attachments DIR]"

# --- alice sends bob a message with one Cc and an attachment ---
printf 'Hello Bob,\n\nthe figures are attached.\n\tAlice\n' >"$tmp/body.txt"
head -c 3000 /dev/urandom >"$tmp/figures.csv"
att_sum=$(sha256sum "$tmp/figures.csv" | cut -d' ' -f1)
run "send" 0 as_user alice send --to bob@a.test --cc carol@a.test \
    --subject "Quarterly figures" --attach "$tmp/figures.csv" "$tmp/body.txt"
out_has "send" "queued urn:uuid:"
check "bob's mailbox gets the message" wait_mail bob "$tmp/bob.conf" 1

# --- bob lists ---
run "list" 0 as_user bob list
out_has "list" "1 message, 1 unread"
out_has "list" "alice@a.test"
out_has "list" "Quarterly figures"
id=$(first_id)
check "list shows an id ($id)" test -n "$id"
if grep -qE "^ *$id N " "$out"; then pass; else fail "list: no unread mark"; fi

# --- bob reads it, verified end to end, and saves the attachment ---
mkdir "$tmp/save"
run "read" 0 as_user bob read "$id" --save-attachments "$tmp/save"
out_has "read" "Verified: signed by"
out_has "read" "for a.test at "
out_has "read" ": VALID"
out_lacks "read" "revocation not checked"
out_has "read" "From: alice@a.test"
out_has "read" "To: bob@a.test"
out_has "read" "Cc: carol@a.test"
out_has "read" "Subject: Quarterly figures"
out_has "read" "the figures are attached."
out_has "read" "figures.csv  text/csv  3000 bytes  sha256 $att_sum"
check "saved attachment is the original" cmp -s "$tmp/figures.csv" \
    "$tmp/save/figures.csv"
mode=$(stat -c %a "$tmp/save/figures.csv" 2>/dev/null)
check "saved attachment is mode 600 ($mode)" test "$mode" = 600
run "list after read" 0 as_user bob list
out_has "list after read" "1 message, 0 unread"
# never over an existing file
run "read again refuses to overwrite" 1 as_user bob read "$id" \
    --save-attachments "$tmp/save"
err_has "read again refuses to overwrite" "exists already"
check "existing file untouched" cmp -s "$tmp/save/figures.csv" \
    "$tmp/figures.csv"
# without CRLs the verdict says revocation was not checked
run "read without CRLs" 0 as_user bob --config "$tmp/bobnocrl.conf" read "$id"
out_has "read without CRLs" "VALID (revocation not checked)"

# A CRL issued after the message arrived cannot be used by a verification
# as of receipt: the client says revocation was not checked, and does not
# call the message forged.  (openssl ca sets the CRL's lastUpdate to now;
# wsemail-admin backdates it by 5 minutes.)
mkdir "$tmp/ossl"
: >"$tmp/ossl/index.txt"
echo 1000 >"$tmp/ossl/crlnumber"
printf '%s\n' "[ ca ]" "default_ca = dca" "[ dca ]" \
    "database = $tmp/ossl/index.txt" "crlnumber = $tmp/ossl/crlnumber" \
    "certificate = $pki/a.test/ca.pem" \
    "private_key = $pki/a.test/ca-key.pem" \
    "default_md = sha256" "default_crl_days = 30" >"$tmp/ossl/ca.cnf"
sleep 2
if openssl ca -config "$tmp/ossl/ca.cnf" -gencrl -crl_lastupdate \
    "$(date -u +%Y%m%d%H%M%SZ)" -out "$tmp/late-crl.pem" >"$out" 2>"$err"
then
	pass
else
	fail "openssl ca -gencrl"
fi
sed "s|^crl = $pki/a.test/crl.pem|crl = $tmp/late-crl.pem|" "$tmp/bob.conf" \
    >"$tmp/boblate.conf"
run "read with a later CRL" 0 as_user bob --config "$tmp/boblate.conf" \
    read "$id"
out_has "read with a later CRL" ": VALID (revocation not checked: "
out_has "read with a later CRL" "CRL is not yet valid"

# --- other mailboxes are out of reach ---
check "carol got her copy" wait_mail carol "$tmp/carol.conf" 1
carol_id=$(first_id)
run "bob reads carol's message" 1 as_user bob read "$carol_id"
err_has "bob reads carol's message" "the server refused: NotFound"
run "bob deletes carol's message" 1 as_user bob delete "$carol_id"
err_has "bob deletes carol's message" "the server refused: NotFound"

# --- delete ---
run "delete" 0 as_user bob delete "$id"
out_has "delete" "deleted $id"
run "list after delete" 0 as_user bob list
out_has "list after delete" "0 messages, 0 unread"
run "read a deleted message" 1 as_user bob read "$id"
err_has "read a deleted message" "NotFound"

# --- wrong password, unknown user ---
run "wrong password" 1 env WSEMAIL_PASSWORD=not-the-password \
    "$client" --config "$tmp/bob.conf" list
err_has "wrong password" "the server refused: NotAuthorized"
sed 's/^address = .*/address = nobody@a.test/' "$tmp/bob.conf" \
    >"$tmp/nobody.conf"
run "unknown user" 1 env WSEMAIL_PASSWORD=whatever-it-is \
    "$client" --config "$tmp/nobody.conf" list
err_has "unknown user" "the server refused: NotAuthorized"
out_lacks "unknown user" "whatever-it-is"
if grep -qF "whatever-it-is" "$err"; then fail "password printed"; else pass; fi

# --- the client refuses a cost below its own minimum ---
{ cat "$tmp/bob.conf"; printf '[limits]\npbkdf2_min_iterations = 700000\n'; } \
    >"$tmp/bobcost.conf"
run "weak PBKDF2 cost" 1 env WSEMAIL_PASSWORD=bob-secret-pw \
    "$client" --config "$tmp/bobcost.conf" list
err_has "weak PBKDF2 cost" "fewer than the minimum of 700000"

# --- password file: must be private ---
printf 'bob-secret-pw\n' >"$tmp/bob.pw"
chmod 644 "$tmp/bob.pw"
{ cat "$tmp/bob.conf"; echo "password_file = $tmp/bob.pw"; } \
    >"$tmp/bobpw.conf"
run "password file readable by others" 1 "$client" \
    --config "$tmp/bobpw.conf" list
err_has "password file readable by others" "chmod 600"
chmod 600 "$tmp/bob.pw"
run "password file" 0 "$client" --config "$tmp/bobpw.conf" list
out_has "password file" "0 messages"

# --- the server's certificate must name the host we asked for ---
sed "s|^server = .*|server = https://other.a.test:$port/wsemail|" \
    "$tmp/bob.conf" >"$tmp/wronghost.conf"
run "wrong host" 1 env WSEMAIL_PASSWORD=bob-secret-pw \
    "$client" --config "$tmp/wronghost.conf" list
err_has "wrong host" "cannot reach https://other.a.test:$port/wsemail"

# --- a subject that tries to drive the terminal, unsafe attachment names ---
esc_subject=$(printf 'Hi \xc2\x9b31mred\xe2\x80\xae txt.exe')
printf 'x' >"$tmp/.profile"
run "send odd subject" 0 as_user alice send --to bob@a.test \
    --subject "$esc_subject" --attach "$tmp/.profile" "$tmp/body.txt"
check "odd message arrives" wait_mail bob "$tmp/bob.conf" 1
odd_id=$(first_id)
if grep -q $'\xc2\x9b\|\xe2\x80\xae' "$out"; then
	fail "list printed a C1 control or a bidi override"
else
	pass
fi
out_has "list replaces controls" "Hi ?31mred? txt.exe"
mkdir "$tmp/save2"
run "read odd message" 1 as_user bob read "$odd_id" --save-attachments "$tmp/save2"
out_has "read odd message" ": VALID"
out_has "read odd message" "Subject: Hi ?31mred? txt.exe"
err_has "read odd message" "unsafe file name"
check "no dot file saved" test ! -e "$tmp/save2/.profile"
run "delete odd message" 0 as_user bob delete "$odd_id"

# --- the text from standard input ---
send_stdin() {
	as_user alice send --to carol@a.test --subject "From stdin" - \
	    <"$tmp/body.txt"
}
run "send from stdin" 0 send_stdin
check "carol gets it" wait_mail carol "$tmp/carol.conf" 2
run "carol reads it" 0 as_user carol read "$(first_id)"
out_has "carol reads it" "Subject: From stdin"
out_has "carol reads it" "the figures are attached."

# --- a forged original: one byte changed in the store ---
printf 'Please pay 100 EUR to the usual account.\n' >"$tmp/pay.txt"
run "send payment" 0 as_user alice send --to bob@a.test --subject "Payment" \
    "$tmp/pay.txt"
check "payment arrives" wait_mail bob "$tmp/bob.conf" 1
pay_id=$(first_id)
changed=$(sqlite3 -cmd ".timeout 10000" "$tmp/a.db" \
    "UPDATE bodies SET envelope = CAST(replace(CAST(envelope AS TEXT),
       'pay 100 EUR', 'pay 900 EUR') AS BLOB)
     WHERE id = (SELECT body_id FROM messages WHERE id = $pay_id);
     SELECT changes();")
check "one stored original corrupted ($changed)" test "$changed" = 1
run "read forged" 1 as_user bob read "$pay_id"
out_has "read forged" "Verified: NOT VALID: BadSignature"
out_has "read forged" "WARNING: this message did not verify"
out_has "read forged" "pay 900 EUR"
out_lacks "read forged" ": VALID"
err_has "read forged" "did not verify"

# --- nothing went wrong on the server ---
stop_server
if grep -qE "Sanitizer|runtime error" "$tmp/server.log"; then
	fail "sanitizer report from wsemaild"
	grep -E -A20 "Sanitizer|runtime error" "$tmp/server.log" >&2
else
	pass
fi

echo "client_cli: $passed checks passed"
if [ "$failed" -ne 0 ]; then
	echo "client_cli: $failed checks failed"
	exit 1
fi
exit 0
