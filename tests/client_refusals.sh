#!/usr/bin/env bash
# client_refusals.sh - what the wsemail client must refuse, each with a
# message naming the problem and a non-zero exit: bad command lines, bad
# configurations, answers it must not trust (not XML, an HTTP error, no
# signature, signed by another domain's server, about another request,
# stale), stored originals that do not verify (no signature, a forged
# origin, not an envelope) and attachment directories it cannot save
# into.  The dishonest server is
# tests/fakeserver.py, holding a.test's TLS certificate.
# Environment: WSE_BUILD_ROOT (the meson build directory).
set -u
T=client_refusals
KDF_ITERATIONS=1000
B=${WSE_BUILD_ROOT:?WSE_BUILD_ROOT is not set}
. "$(dirname "$0")/lib.sh"
for t in python3 sqlite3 timeout; do
	command -v "$t" >/dev/null || fail "no $t"
done
unset WSEMAIL_PASSWORD WSEMAIL_CONFIG

cc() { echo "$W/$1@a.test.cconf"; }
as_user() {
	local user=$1
	shift
	WSEMAIL_PASSWORD="$user-secret-pw" timeout 60 "$CLIENT" \
	    --config "$(cc "$user")" "$@"
}
# with_conf FILE COMMAND...: the client as alice with configuration FILE
with_conf() {
	local f=$1
	shift
	WSEMAIL_PASSWORD=alice-secret-pw timeout 60 "$CLIENT" --config "$f" "$@"
}

t_pki a.test b.test
port=$(free_port)
t_conf a.test "$port" "threads = 2"
t_start a.test
server_pid=$LAST_PID
bport=$(free_port)
t_conf b.test "$bport" "threads = 2"
t_start b.test
for u in alice bob; do
	WSEMAIL_PASSWORD="$u-secret-pw" t_users a.test "$u@a.test"
	t_client "$u@a.test"
done
WSEMAIL_PASSWORD=alice-secret-pw t_users b.test alice@b.test

# --- command lines ---
run "read without an id" 2 as_user bob read
err_has "read without an id" "which message?"
run "read: not a number" 2 as_user bob read abc
err_has "read: not a number" "'abc' is not a message id"
run "read: id 0" 2 as_user bob read 0
run "read: two ids" 2 as_user bob read 1 2
err_has "read: two ids" "unexpected argument '2'"
run "read: option without a value" 2 as_user bob read 1 --save-attachments
err_has "read: option without a value" "--save-attachments needs a value"
run "read: unknown option" 2 as_user bob read 1 --frobnicate
err_has "read: unknown option" "unknown option '--frobnicate'"
run "--config without a value" 2 "$CLIENT" --config
err_has "--config without a value" "--config needs a value"
run "unknown global option" 2 "$CLIENT" --frobnicate list
err_has "unknown global option" "unknown option '--frobnicate'"
run "delete without an id" 2 as_user bob delete
# send: refused before anything is sent (no password is asked for)
printf 'Hello.\n' >"$W/hello.txt"
printf 'a\0b' >"$W/binary.txt"
s() { env -u WSEMAIL_PASSWORD timeout 60 "$CLIENT" --config "$(cc alice)" \
    send "$@"; }
run "send without --subject" 2 s --to bob@a.test "$W/hello.txt"
err_has "send without --subject" "--subject is needed"
run "send: --to not a mailbox" 1 s --to "bob at a.test" --subject x \
    "$W/hello.txt"
err_has "send: --to not a mailbox" "--to"
run "send: two-line subject" 1 s --to bob@a.test --subject $'a\nb' \
    "$W/hello.txt"
err_has "send: two-line subject" "--subject: one line of UTF-8 text"
run "send: missing text file" 1 s --to bob@a.test --subject x \
    "$W/no-such.txt"
err_has "send: missing text file" "message text"
run "send: binary text" 1 s --to bob@a.test --subject x "$W/binary.txt"
err_has "send: binary text" "the message text is not UTF-8 text"
run "send: missing attachment" 1 s --to bob@a.test --subject x \
    --attach "$W/no-such.csv" "$W/hello.txt"
err_has "send: missing attachment" "attachment $W/no-such.csv"
run "send: dot-file on demand" 1 s --to bob@a.test --subject x \
    --on-demand "$W/.hidden" "$W/hello.txt"
err_has "send: dot-file on demand" "not a usable attachment name"
if grep -q "Password" "$ERR"; then nok "send asked for a password"; else pass; fi

# --- configurations ---
run "no configuration file" 1 with_conf "$W/none.conf" list
err_has "no configuration file" "$W/none.conf"
run "no configuration at all" 1 env -u HOME HOME= WSEMAIL_CONFIG= \
    "$CLIENT" list
grep -v '^server' "$(cc alice)" >"$W/noserver.conf"
run "no server" 1 with_conf "$W/noserver.conf" list
err_has "no server" "\"server\" is required"
grep -v '^address' "$(cc alice)" >"$W/noaddr.conf"
run "no address" 1 with_conf "$W/noaddr.conf" list
err_has "no address" "\"address\" is required"
sed 's|^server = https:|server = http:|' "$(cc alice)" >"$W/http.conf"
run "plain http server" 1 with_conf "$W/http.conf" list
err_has "plain http server" "server must be an https://HOST[:PORT]/PATH URL"
for u in "https://" "https:///wsemail" "https://mail.a.test:99999/x" \
    "https://mail.a.test:12x/x" "https://al ice@mail.a.test/x"; do
	sed "s|^server = .*|server = $u|" "$(cc alice)" >"$W/badurl.conf"
	run "server $u" 1 with_conf "$W/badurl.conf" list
	err_has "server $u" "server must be an https://HOST[:PORT]/PATH URL"
done
{ echo "colour = blue"; cat "$(cc alice)"; } >"$W/unknown.conf"
run "unknown setting" 1 with_conf "$W/unknown.conf" list
err_has "unknown setting" "unknown setting \"colour\""
sed "s|^roots = .*|roots = $W/no-roots.pem|" "$(cc alice)" >"$W/noroots.conf"
run "missing roots" 1 with_conf "$W/noroots.conf" list
err_has "missing roots" "roots"
{ echo "crl = $W/no-crl.pem"; cat "$(cc alice)"; } >"$W/nocrl.conf"
run "missing CRL" 1 with_conf "$W/nocrl.conf" list
err_has "missing CRL" "crl"
{ echo "connect = not-an-address"; grep -v '^connect' "$(cc alice)"; } \
    >"$W/badconnect.conf"
run "bad connect" 1 with_conf "$W/badconnect.conf" list
err_has "bad connect" "connect \"not-an-address\""
{ echo "address = not a mailbox"; grep -v '^address' "$(cc alice)"; } \
    >"$W/badaddr.conf"
run "bad address" 1 with_conf "$W/badaddr.conf" list
err_has "bad address" "address"
{ echo "password_file = $W/no.pw"; cat "$(cc alice)"; } >"$W/nopw.conf"
run "missing password file" 1 "$CLIENT" --config "$W/nopw.conf" list
err_has "missing password file" "$W/no.pw"
{ echo "password_file = $W"; cat "$(cc alice)"; } >"$W/dirpw.conf"
run "password file is a directory" 1 "$CLIENT" --config "$W/dirpw.conf" list
err_has "password file is a directory" "not a regular file"
{ cat "$(cc alice)"; printf 'no_such_limit = 3\n'; } >"$W/badlim.conf"
run "unknown limit" 1 with_conf "$W/badlim.conf" list
err_has "unknown limit" "[limits] no_such_limit"

# --- answers not to be trusted, from a server holding a.test's TLS key ---
fport=$(free_port)
echo garbage >"$W/mode"
python3 "$(dirname "$0")/fakeserver.py" "$fport" "$W/pki/a.test/chain.pem" \
    "$W/pki/a.test/service-key.pem" "$W/mode" "$W/capture" \
    >"$W/fake.out" 2>"$W/fake.log" &
PIDS+=("$!")
for _ in $(seq 100); do
	grep -q ready "$W/fake.out" 2>/dev/null && break
	sleep 0.1
done
grep -q ready "$W/fake.out" || fail "fakeserver did not start"
sed "s|^server = .*|server = https://mail.a.test:$fport/wsemail|" \
    "$(cc alice)" >"$W/fake.conf"
run "answer not XML" 1 with_conf "$W/fake.conf" list
err_has "answer not XML" "the server's answer is not a SOAP envelope"
echo status503 >"$W/mode"
run "HTTP 503" 1 with_conf "$W/fake.conf" list
err_has "HTTP 503" "answered with HTTP status 503"
echo unsigned >"$W/mode"
run "unsigned answer" 1 with_conf "$W/fake.conf" list
err_has "unsigned answer" "the server's answer does not verify"
echo "forward $bport" >"$W/mode"
run "answer of b.test's server" 1 with_conf "$W/fake.conf" list
err_has "answer of b.test's server" "the server's answer does not verify (DomainMismatch)"
echo "forward $port" >"$W/mode"
# a genuine answer of a.test's server (a refusal: the request was for
# another URL), kept for the next run
run "through the relay" 1 with_conf "$W/fake.conf" list
err_has "through the relay" "the server refused: NotAuthorized"
echo replay >"$W/mode"
run "an earlier answer" 1 with_conf "$W/fake.conf" list
err_has "an earlier answer" "the server's answer is not about our request"
# the same answer once stale: refused before anything else is looked at
{ cat "$W/fake.conf"; echo "freshness_window = 1"; } >"$W/fakestale.conf"
sleep 2
run "a stale answer" 1 with_conf "$W/fakestale.conf" list
err_has "a stale answer" "the server's answer does not verify (MessageExpired)"

# --- stored originals that do not verify ---
# tamper SQL-PYTHON-EXPR: rewrite bob's newest stored original with the
# Python expression (of e, the envelope as text); prints the rows changed
tamper() {
	python3 - "$W/a.test.db" "$1" <<'PY'
import re, sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
row = db.execute("SELECT b.id, b.envelope FROM bodies b JOIN messages m "
                 "ON m.body_id = b.id ORDER BY m.id DESC LIMIT 1").fetchone()
e = bytes(row[1]).decode()
n = eval(sys.argv[2])
db.execute("UPDATE bodies SET envelope = ? WHERE id = ?",
           (n.encode(), row[0]))
db.commit()
print(1 if n != e else 0)
PY
}
# newest: the id of bob's newest message
newest() { as_user bob list | awk 'NR == 2 { print $1 }'; }
sent=0
send_one() {
	printf 'Pay the usual account.\n' >"$W/body.txt"
	printf 'a,b\n1,2\n' >"$W/sheet.csv"
	as_user alice send --to bob@a.test --subject "$1" \
	    --attach "$W/sheet.csv" "$W/body.txt" >/dev/null || return 1
	sent=$((sent + 1))
	for _ in $(seq 40); do
		as_user bob list 2>/dev/null | grep -qE "^$sent messages?," &&
		    return 0
		sleep 0.25
	done
	return 1
}

check "unsigned message sent" send_one "Unsigned"
id=$(newest)
ch=$(tamper 're.sub(r"<wsse:Security.*?</wsse:Security>", "", e, flags=re.S)')
check "signature removed ($ch)" test "$ch" = 1
mkdir "$W/save"
run "read unsigned" 1 as_user bob read "$id" --save-attachments "$W/save"
out_has "read unsigned" "Verified: NOT VALID: BadSignature: no wsse:Security header"
out_lacks "read unsigned" "DeliverDirect"
out_lacks "read unsigned" ": VALID"
out_has "read unsigned" "WARNING: this message did not verify"
err_has "read unsigned" "message $id did not verify"
err_has "read unsigned" "not saving the attachments of a message that did not verify"
check "nothing saved from an unsigned message" test -z "$(ls -A "$W/save")"

check "forged-origin message sent" send_one "Origin"
id=$(newest)
ch=$(tamper 're.sub(r"(Origin>)a\.test(<)", r"\1b.test\2", e)')
check "origin changed ($ch)" test "$ch" = 1
run "read forged origin" 1 as_user bob read "$id"
out_has "read forged origin" "Verified: NOT VALID: BadSignature: signature does not verify"
out_lacks "read forged origin" "DeliverDirect"
out_lacks "read forged origin" ": VALID"
err_has "read forged origin" "message $id did not verify"

check "not-an-envelope message sent" send_one "Garbage"
id=$(newest)
ch=$(tamper '"<not-soap/>"')
check "original replaced ($ch)" test "$ch" = 1
run "read a non-envelope" 1 as_user bob read "$id"
out_has "read a non-envelope" "Verified: NOT VALID: InvalidMessage"
out_has "read a non-envelope" "the original is not a readable SOAP envelope"
out_lacks "read a non-envelope" ": VALID"

# --- saving attachments ---
check "good message sent" send_one "Good"
id=$(newest)
run "save into a missing directory" 1 as_user bob read "$id" \
    --save-attachments "$W/missing"
err_has "save into a missing directory" "$W/missing: No such file or directory"
out_lacks "save into a missing directory" "Subject:"
: >"$W/plainfile"
run "save into a file" 1 as_user bob read "$id" \
    --save-attachments "$W/plainfile"
err_has "save into a file" "$W/plainfile: Not a directory"
mkdir "$W/save2"
ln -s "$W/elsewhere" "$W/save2/sheet.csv"
run "save over a symbolic link" 1 as_user bob read "$id" \
    --save-attachments "$W/save2"
err_has "save over a symbolic link" "not saving attachment: $W/save2/sheet.csv"
check "the link's target not written" test ! -e "$W/elsewhere"
run "read good" 0 as_user bob read "$id" --save-attachments "$W/save"
out_has "read good" ": VALID"

t_stop "$server_pid"
if grep -qE "Sanitizer|runtime error" "$W/a.test.log"; then
	nok "sanitizer report from wsemaild"
else
	pass
fi
finish
