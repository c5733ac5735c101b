#!/usr/bin/env bash
# client_cli.sh - the wsemail client against a real wsemaild on loopback:
# a PKI minted here, users made with wsemail-admin, then send, list, read
# (verified end to end, attachment saved and checked), delete; a wrong
# password, another user's message, a forged original, a terminal-escape
# subject, unsafe attachment names and a certificate for the wrong host.
# Environment: WSE_BUILD_ROOT (the meson build directory).
set -u
T=client_cli
# Cheap test users (tests/lib.sh KDF_ITERATIONS), but carol keeps the
# default cost, so that one user logs in at it end to end.
KDF_ITERATIONS=1000
B=${WSE_BUILD_ROOT:?WSE_BUILD_ROOT is not set}
. "$(dirname "$0")/lib.sh"
for t in python3 sqlite3 sha256sum timeout; do
	command -v "$t" >/dev/null || fail "no $t"
done
unset WSEMAIL_PASSWORD		# each user gives their own

# cc USER: the client configuration of USER@a.test
cc() { echo "$W/$1@a.test.cconf"; }
# as_user USER COMMAND...: the client, as USER (password USER-secret-pw)
as_user() {
	local user=$1
	shift
	WSEMAIL_PASSWORD="$user-secret-pw" timeout 60 "$CLIENT" \
	    --config "$(cc "$user")" "$@"
}

# --- a PKI for a.test, the server on a free loopback port ---
t_pki a.test
port=$(free_port)
t_conf a.test "$port" "threads = 2"
t_start a.test
server_pid=$LAST_PID

# --- users, and a client configuration for each ---
for u in alice bob carol; do
	if [ $u = carol ]; then
		WSEMAIL_PASSWORD="$u-secret-pw" KDF_ITERATIONS= t_users a.test "$u@a.test"
	else
		WSEMAIL_PASSWORD="$u-secret-pw" t_users a.test "$u@a.test"
	fi
	t_client "$u@a.test"
done
# bob again, without CRLs
grep -v '^crl' "$(cc bob)" >"$W/bobnocrl.conf"

# wait_mail USER CONF N: until USER's mailbox holds N messages (10 s)
wait_mail() {
	local i
	for i in $(seq 1 40); do
		if WSEMAIL_PASSWORD="$1-secret-pw" timeout 60 "$CLIENT" \
		    --config "$2" list >"$OUT" 2>"$ERR" </dev/null &&
		    grep -qE "^$3 messages?," "$OUT"; then
			return 0
		fi
		sleep 0.25
	done
	return 1
}
# listed_id: the id on the first row of the last "list"
listed_id() { awk 'NR == 2 { print $1 }' "$OUT"; }

# --- usage ---
run "no command" 2 "$CLIENT"
run "unknown command" 2 "$CLIENT" frobnicate
run "send without --to" 2 as_user alice send --subject x
run "help" 0 "$CLIENT" help
out_has "help" "read ID [--save-attachments DIR]"

# --- alice sends bob a message with one Cc and an attachment ---
printf 'Hello Bob,\n\nthe figures are attached.\n\tAlice\n' >"$W/body.txt"
head -c 3000 /dev/urandom >"$W/figures.csv"
att_sum=$(sha256sum "$W/figures.csv" | cut -d' ' -f1)
run "send" 0 as_user alice send --to bob@a.test --cc carol@a.test \
    --subject "Quarterly figures" --attach "$W/figures.csv" "$W/body.txt"
out_has "send" "queued urn:uuid:"
check "bob's mailbox gets the message" wait_mail bob "$(cc bob)" 1

# --- bob lists ---
run "list" 0 as_user bob list
out_has "list" "1 message, 1 unread"
out_has "list" "alice@a.test"
out_has "list" "Quarterly figures"
id=$(listed_id)
check "list shows an id ($id)" test -n "$id"
if grep -qE "^ *$id N " "$OUT"; then pass; else nok "list: no unread mark"; fi

# --- bob reads it, verified end to end, and saves the attachment ---
mkdir "$W/save"
run "read" 0 as_user bob read "$id" --save-attachments "$W/save"
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
check "saved attachment is the original" cmp -s "$W/figures.csv" \
    "$W/save/figures.csv"
mode=$(stat -c %a "$W/save/figures.csv" 2>/dev/null)
check "saved attachment is mode 600 ($mode)" test "$mode" = 600
run "list after read" 0 as_user bob list
out_has "list after read" "1 message, 0 unread"
# never over an existing file
run "read again refuses to overwrite" 1 as_user bob read "$id" \
    --save-attachments "$W/save"
err_has "read again refuses to overwrite" "exists already"
check "existing file untouched" cmp -s "$W/save/figures.csv" \
    "$W/figures.csv"
# without CRLs the verdict says revocation was not checked
run "read without CRLs" 0 as_user bob --config "$W/bobnocrl.conf" read "$id"
out_has "read without CRLs" "VALID (revocation not checked)"

# A CRL issued after the message arrived cannot be used by a verification
# as of receipt: the client says revocation was not checked, and does not
# call the message forged.  (openssl ca sets the CRL's lastUpdate to now;
# wsemail-admin backdates it by 5 minutes.)
mkdir "$W/ossl"
: >"$W/ossl/index.txt"
echo 1000 >"$W/ossl/crlnumber"
printf '%s\n' "[ ca ]" "default_ca = dca" "[ dca ]" \
    "database = $W/ossl/index.txt" "crlnumber = $W/ossl/crlnumber" \
    "certificate = $W/pki/a.test/ca.pem" \
    "private_key = $W/pki/a.test/ca-key.pem" \
    "default_md = sha256" "default_crl_days = 30" >"$W/ossl/ca.cnf"
sleep 2
if openssl ca -config "$W/ossl/ca.cnf" -gencrl -crl_lastupdate \
    "$(date -u +%Y%m%d%H%M%SZ)" -out "$W/late-crl.pem" >"$OUT" 2>"$ERR"
then
	pass
else
	nok "openssl ca -gencrl"
fi
sed "s|^crl = $W/pki/a.test/crl.pem|crl = $W/late-crl.pem|" "$(cc bob)" \
    >"$W/boblate.conf"
run "read with a later CRL" 0 as_user bob --config "$W/boblate.conf" \
    read "$id"
out_has "read with a later CRL" ": VALID (revocation not checked: "
out_has "read with a later CRL" "CRL is not yet valid"

# --- other mailboxes are out of reach ---
check "carol got her copy" wait_mail carol "$(cc carol)" 1
carol_id=$(listed_id)
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
    "$CLIENT" --config "$(cc bob)" list
err_has "wrong password" "the server refused: NotAuthorized"
sed 's/^address = .*/address = nobody@a.test/' "$(cc bob)" \
    >"$W/nobody.conf"
run "unknown user" 1 env WSEMAIL_PASSWORD=whatever-it-is \
    "$CLIENT" --config "$W/nobody.conf" list
err_has "unknown user" "the server refused: NotAuthorized"
out_lacks "unknown user" "whatever-it-is"
if grep -qF "whatever-it-is" "$ERR"; then nok "password printed"; else pass; fi

# --- the client refuses a cost below its own minimum ---
{ cat "$(cc bob)"; printf '[limits]\npbkdf2_min_iterations = 700000\n'; } \
    >"$W/bobcost.conf"
run "weak PBKDF2 cost" 1 env WSEMAIL_PASSWORD=bob-secret-pw \
    "$CLIENT" --config "$W/bobcost.conf" list
err_has "weak PBKDF2 cost" "fewer than the minimum of 700000"

# --- password file: must be private ---
printf 'bob-secret-pw\n' >"$W/bob.pw"
chmod 644 "$W/bob.pw"
{ echo "password_file = $W/bob.pw"; cat "$(cc bob)"; } \
    >"$W/bobpw.conf"
run "password file readable by others" 1 "$CLIENT" \
    --config "$W/bobpw.conf" list
err_has "password file readable by others" "chmod 600"
chmod 600 "$W/bob.pw"
run "password file" 0 "$CLIENT" --config "$W/bobpw.conf" list
out_has "password file" "0 messages"

# --- the server's certificate must name the host we asked for ---
sed "s|^server = .*|server = https://other.a.test:$port/wsemail|" \
    "$(cc bob)" >"$W/wronghost.conf"
run "wrong host" 1 env WSEMAIL_PASSWORD=bob-secret-pw \
    "$CLIENT" --config "$W/wronghost.conf" list
err_has "wrong host" "cannot reach https://other.a.test:$port/wsemail"

# --- a subject that tries to drive the terminal, unsafe attachment names ---
esc_subject=$(printf 'Hi \xc2\x9b31mred\xe2\x80\xae txt.exe')
printf 'x' >"$W/.profile"
run "send odd subject" 0 as_user alice send --to bob@a.test \
    --subject "$esc_subject" --attach "$W/.profile" "$W/body.txt"
check "odd message arrives" wait_mail bob "$(cc bob)" 1
odd_id=$(listed_id)
if grep -q $'\xc2\x9b\|\xe2\x80\xae' "$OUT"; then
	nok "list printed a C1 control or a bidi override"
else
	pass
fi
out_has "list replaces controls" "Hi ?31mred? txt.exe"
mkdir "$W/save2"
run "read odd message" 1 as_user bob read "$odd_id" --save-attachments "$W/save2"
out_has "read odd message" ": VALID"
out_has "read odd message" "Subject: Hi ?31mred? txt.exe"
err_has "read odd message" "unsafe file name"
check "no dot file saved" test ! -e "$W/save2/.profile"
run "delete odd message" 0 as_user bob delete "$odd_id"
# A file name that would show reordered ("invoice" + RLO + "fdp.exe"
# reads "invoiceexe.pdf") is refused before anything is sent.
rlo_name=$(printf 'invoice\xe2\x80\xaefdp.exe')
printf 'x' >"$W/$rlo_name"
run "send bidi file name" 1 as_user alice send --to bob@a.test \
    --subject "rlo" --attach "$W/$rlo_name" "$W/body.txt"
err_has "send bidi file name" "bad attachment name"

# --- the text from standard input ---
send_stdin() {
	as_user alice send --to carol@a.test --subject "From stdin" - \
	    <"$W/body.txt"
}
run "send from stdin" 0 send_stdin
check "carol gets it" wait_mail carol "$(cc carol)" 2
run "carol reads it" 0 as_user carol read "$(listed_id)"
out_has "carol reads it" "Subject: From stdin"
out_has "carol reads it" "the figures are attached."

# --- a forged original: one byte changed in the store ---
printf 'Please pay 100 EUR to the usual account.\n' >"$W/pay.txt"
run "send payment" 0 as_user alice send --to bob@a.test --subject "Payment" \
    "$W/pay.txt"
check "payment arrives" wait_mail bob "$(cc bob)" 1
pay_id=$(listed_id)
changed=$(sqlite3 -cmd ".timeout 10000" "$W/a.test.db" \
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

# --- routed forms: command-line errors, messages without a form ---
run "form without a sub-command" 2 as_user bob form
run "form: unknown sub-command" 2 as_user bob form frobnicate
run "form show without an id" 2 as_user bob form show
run "form show: not a message id" 2 as_user bob form show abc
run "form submit: not https" 2 as_user bob form submit http://a.test/x.lua
run "form submit: bad --sha256" 2 as_user bob form submit \
    https://a.test/x.lua --sha256 xyz
run "form delegate: not a mailbox" 2 as_user bob form delegate 1 nobody
run "form export: no file" 2 as_user bob form export 1
run "form show: unknown message" 1 as_user bob form show 999999
err_has "form show: unknown message" "NotFound"
run "form approve: no form in it" 1 as_user bob form approve "$pay_id"
err_has "form approve: no form in it" "carries no form"
run "form list" 0 as_user bob form list
out_has "form list" "0 forms"
run "form verify: not a form" 1 as_user bob form verify --file "$W/body.txt"
out_has "form verify: not a form" "INVALID"

# --- nothing went wrong on the server ---
t_stop "$server_pid"
if grep -qE "Sanitizer|runtime error" "$W/a.test.log"; then
	nok "sanitizer report from wsemaild"
	grep -E -A20 "Sanitizer|runtime error" "$W/a.test.log" >&2
else
	pass
fi

finish
