#!/usr/bin/env bash
# The WSEmail demonstration: two mail domains on this machine.
#
# It mints a root CA, domain CAs and server certificates for a.test and
# b.test, starts a DNS server (dnsmasq, SRV records) and both servers on
# loopback, creates users, sends mail both ways (one message to several
# recipients with an attachment), lists and reads it with the end-to-end
# verification shown, sends a file on demand (it stays on the sender's
# server; the recipient fetches it there with a token from his own
# server, and the sender sees who fetched it), routes an expense claim
# across both domains (the paper's routed forms: a router inserts the
# approvers, one delegates, the final party verifies every signature and
# accepts), shows a bounce for an unknown user and a tampered envelope
# refused, then stops everything it started.  All files live in
# a temporary directory that is removed at the end.
# Usage: scripts/demo.sh [BUILD-DIR]      (normally: make demo)
set -uo pipefail
cd "$(dirname "$0")/.."
build=$PWD/${1:-build}
ADMIN=$build/src/wsemail-admin
SERVER=$build/src/wsemaild
CLIENT=$build/src/wsemail
for p in "$ADMIN" "$SERVER" "$CLIENT"; do
	[ -x "$p" ] || { echo "demo: $p is missing: run make demo"; exit 1; }
done
W=$(mktemp -d "${TMPDIR:-/tmp}/wsemail-demo.XXXXXX")
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT
die() { echo "demo: $*" >&2; for f in "$W"/*.log; do [ -f "$f" ] && tail -5 "$f" >&2; done; exit 1; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }
indent() { sed 's/^/    /'; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
export WSEMAIL_PASSWORD=demo-password-123

PA=$(free_port); PB=$(free_port); DNS=$(free_port)
# the expense claim form type, signed by its publisher, served by a.test
mkdir -p "$W/publish"
"$ADMIN" plugin keygen --cn "Acme Forms" --out-key "$W/acme-key.pem" \
	--out-cert "$W/acme.pem" >/dev/null || die "plugin keygen"
cp examples/forms/expense.lua "$W/publish/"
"$ADMIN" plugin sign "$W/publish/expense.lua" --name expense --version 1.0 \
	--key "$W/acme-key.pem" --cert "$W/acme.pem" >/dev/null || die "plugin sign"

say "1. A root CA, a domain CA for a.test and for b.test, and each server's certificate"
for c in "ca init --cn WSEmail-Demo-Root" "domain issue a.test" "domain issue b.test" \
	"service issue a.test --host mail.a.test" "service issue b.test --host mail.b.test"; do
	show "wsemail-admin $c"
	# shellcheck disable=SC2086
	"$ADMIN" --pki "$W/pki" $c >/dev/null || die "wsemail-admin $c"
done
"$ADMIN" --pki "$W/pki" cert show "$W/pki/b.test/ca.pem" | grep -E "subject|not after" | indent

say "2. DNS (dnsmasq on 127.0.0.1:$DNS) publishes where each domain's server is"
/usr/sbin/dnsmasq --no-daemon --no-resolv --no-hosts --listen-address=127.0.0.1 \
	--bind-interfaces --port="$DNS" --local=/test/ \
	--srv-host=_wsemail._tcp.a.test,mail.a.test,"$PA",10,10 \
	--srv-host=_wsemail._tcp.b.test,mail.b.test,"$PB",10,10 \
	--host-record=mail.a.test,127.0.0.1 --host-record=mail.b.test,127.0.0.1 \
	>"$W/dns.log" 2>&1 &
PIDS+=($!)
echo "    _wsemail._tcp.a.test SRV 10 10 $PA mail.a.test"
echo "    _wsemail._tcp.b.test SRV 10 10 $PB mail.b.test"

say "3. Both servers start (HTTPS with mutual TLS between servers, SQLite stores, the on-demand attachment and forms plugins)"
for d in a.test:"$PA" b.test:"$PB"; do
	dom=${d%%:*}; port=${d##*:}
	cat >"$W/$dom.conf" <<EOF
domain = $dom
url = https://mail.$dom:$port/wsemail
listen = 127.0.0.1:$port
cert_chain = $W/pki/$dom/chain.pem
key = $W/pki/$dom/service-key.pem
roots = $W/pki/root/cert.pem
crl = $W/pki/root/crl.pem
crl = $W/pki/a.test/crl.pem
crl = $W/pki/b.test/crl.pem
store = sqlite:$W/$dom.db
secret_file = $W/$dom.secret
dns_server = 127.0.0.1:$DNS
retry_first = 2
plugin = $build/plugins/ondemand.so dir=$W/ondemand-$dom ca_cert=$W/pki/$dom/ca.pem ca_key=$W/pki/$dom/ca-key.pem
plugin = $build/plugins/forms.so dir=$W/forms-$dom cert=$W/pki/$dom/chain.pem key=$W/pki/$dom/service-key.pem ca=$W/pki/$dom/ca.pem roots=$W/pki/root/cert.pem crl=$W/pki/root/crl.pem crl=$W/pki/a.test/crl.pem crl=$W/pki/b.test/crl.pem publisher=$W/acme.pem fetch_connect=127.0.0.1 retry=2 param.finance=bob@b.test param.threshold=1000
publish_dir = $W/publish
EOF
	"$SERVER" "$W/$dom.conf" >"$W/$dom.out" 2>"$W/$dom.log" &
	PIDS+=($!)
	for _ in $(seq 100); do grep -q ready "$W/$dom.out" 2>/dev/null && break; sleep 0.1; done
	grep -q ready "$W/$dom.out" || die "$dom server did not start"
	echo "    wsemaild for $dom listening on 127.0.0.1:$port"
done

say "4. Users (passwords become PBKDF2-derived keys, sealed at rest)"
for u in forms@a.test forms@b.test; do	# each domain's forms service
	"$ADMIN" --config "$W/${u#*@}.conf" user add "$u" >/dev/null || die "user add $u"
done
for u in alice@a.test carol@a.test bob@b.test dave@b.test; do
	show "wsemail-admin --config ${u#*@}.conf user add $u"
	"$ADMIN" --config "$W/${u#*@}.conf" user add "$u" >/dev/null || die "user add $u"
	cat >"$W/$u.cconf" <<EOF
server = https://mail.${u#*@}:$([ "${u#*@}" = a.test ] && echo "$PA" || echo "$PB")/wsemail
connect = 127.0.0.1
address = $u
roots = $W/pki/root/cert.pem
crl = $W/pki/root/crl.pem
crl = $W/pki/a.test/crl.pem
crl = $W/pki/b.test/crl.pem
connect = mail.a.test 127.0.0.1
connect = mail.b.test 127.0.0.1
state_dir = $W/state
publisher = $W/acme.pem
form_param = finance=bob@b.test
EOF
done
C() { local u=$1; shift; "$CLIENT" --config "$W/$u.cconf" "$@"; }
wait_for() { for _ in $(seq 75); do C "$1" list 2>/dev/null | grep -q -- "$2" && return 0; sleep 0.2; done; return 1; }

say "5. alice@a.test writes to bob and dave at b.test and to carol at a.test, with an attachment"
printf 'Hello all,\nthe figures for Q3 are attached.\nAlice\n' >"$W/body.txt"
printf 'region,revenue\nnorth,120\nsouth,95\n' >"$W/q3.csv"
show "wsemail send --to bob@b.test --to carol@a.test --cc dave@b.test --subject 'Q3 figures' --attach q3.csv body.txt"
C alice@a.test send --to bob@b.test --to carol@a.test --cc dave@b.test \
	--subject "Q3 figures" --attach "$W/q3.csv" "$W/body.txt" | indent || die "send"
wait_for bob@b.test "Q3 figures" || die "bob did not receive it"
wait_for dave@b.test "Q3 figures" || die "dave did not receive it"
wait_for carol@a.test "Q3 figures" || die "carol did not receive it"

say "6. bob@b.test lists his mailbox and reads the message: a.test's signature is checked end to end"
show "wsemail list"
C bob@b.test list | indent
id=$(C bob@b.test list | grep "Q3 figures" | head -1 | awk '{print $1}')
show "wsemail read $id"
C bob@b.test read "$id" | indent

say "7. bob answers; alice reads the reply"
show "echo 'Thanks, Alice!' | wsemail send --to alice@a.test --subject 'Re: Q3 figures' -"
printf 'Thanks, Alice!\n' | C bob@b.test send --to alice@a.test --subject "Re: Q3 figures" - | indent
wait_for alice@a.test "Re: Q3 figures" || die "alice did not receive the reply"
id=$(C alice@a.test list | grep "Re: Q3" | head -1 | awk '{print $1}')
C alice@a.test read "$id" | grep -E "Verified|From|Subject" | indent

say "8. alice sends a 20 MiB file on demand: it stays on a.test; bob fetches it there with a token from b.test"
head -c 20971520 /dev/urandom >"$W/dataset.bin"
show "echo 'The data set is on my server.' | wsemail send --to bob@b.test --subject 'Data set' --on-demand dataset.bin -"
printf 'The data set is on my server.\n' | C alice@a.test send --to bob@b.test \
	--subject "Data set" --on-demand "$W/dataset.bin" - >"$W/od-send.out" || die "send on demand"
indent <"$W/od-send.out"
sid=$(grep -o 'urn:uuid:[0-9a-f-]*' "$W/od-send.out" | head -1)
wait_for bob@b.test "Data set" || die "bob did not receive the data set message"
echo "    the Deliver that crossed to b.test: $(grep 'from a.test (alice@a.test)' "$W/b.test.log" | tail -1 | sed 's/.*; //')"
id=$(C bob@b.test list | grep "Data set" | head -1 | awk '{print $1}')
show "wsemail read $id"
C bob@b.test read "$id" | indent
mkdir -p "$W/bob-files"
show "wsemail attachment fetch $id --out bob-files"
C bob@b.test attachment fetch "$id" --out "$W/bob-files" 2>&1 | indent || die "fetch"
cmp -s "$W/bob-files/dataset.bin" "$W/dataset.bin" && echo "    bob's copy is identical to alice's file"
show "wsemail attachment log $sid      (alice: who fetched it)"
C alice@a.test attachment log "$sid" | indent

say "9. A routed form: carol's expense claim; router a.test inserts her manager and finance; bob delegates; b.test verifies and accepts"
url="https://mail.a.test:$PA/plugins/expense.lua"
show "wsemail form submit $url --field amount=2500.00 ... --route a.test --final b.test"
C carol@a.test form submit "$url" --field amount=2500.00 --field currency=EUR \
	--field "purpose=Conference travel" --field date=2026-11-20 \
	--field manager=alice@a.test --route a.test --final b.test >"$W/form.out" || die "form submit"
indent <"$W/form.out"
fid=$(grep -o 'urn:uuid:[0-9a-f-]*' "$W/form.out" | head -1)
short=${fid#urn:uuid:}; short=${short:0:8}
form_id() { wait_for "$1" "$short" || die "$1 did not get the form"; C "$1" list | grep -- "$short" | head -1 | awk '{print $1}'; }
id=$(form_id alice@a.test)
echo "    a.test (router): $(grep -o 'inserted.*' "$W/a.test.log" | tail -1)"
show "wsemail form list      (alice)"
C alice@a.test form list | indent
show "wsemail form approve $id --note 'fine'      (alice)"
C alice@a.test form approve "$id" --note "fine" | indent || die "alice approve"
id=$(form_id bob@b.test)
show "wsemail form delegate $id dave@b.test      (bob)"
C bob@b.test form delegate "$id" dave@b.test | indent || die "bob delegate"
id=$(form_id dave@b.test)
show "wsemail form approve $id      (dave, for bob)"
C dave@b.test form approve "$id" | indent || die "dave approve"
wait_for carol@a.test "$short.*approved" || die "carol was not told"
echo "    b.test (final party): $(grep -o 'form urn.*accepted.*' "$W/b.test.log" | tail -1)"
id=$(C carol@a.test list | grep -- "$short.*approved" | head -1 | awk '{print $1}')
show "wsemail form verify $id      (carol checks every signature herself)"
C carol@a.test form verify "$id" | indent

say "10. A message to a mailbox that does not exist comes back as a non-delivery report"
show "echo hi | wsemail send --to nobody@b.test --subject 'Are you there?' -"
printf 'hi\n' | C alice@a.test send --to nobody@b.test --subject "Are you there?" - | indent
wait_for alice@a.test "Undeliverable" || die "no bounce"
id=$(C alice@a.test list | grep "Undeliverable" | head -1 | awk '{print $1}')
C alice@a.test read "$id" | grep -E "Verified|From|Subject|could not|Reason|nobody" | indent

say "11. A forged Deliver (b.test's server claiming to speak for a.test) is refused"
cat >"$W/forged.xml" <<'EOF'
<m:Deliver xmlns:m="urn:wsemail:2026"><m:Origin>a.test</m:Origin><m:OriginId>urn:uuid:6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab</m:OriginId><m:Rcpt>bob@b.test</m:Rcpt><m:Message><m:From>alice@a.test</m:From><m:To>bob@b.test</m:To><m:Subject>Change of bank details</m:Subject><m:Text>Please pay to account 6666.</m:Text></m:Message></m:Deliver>
EOF
"$ADMIN" --pki "$W/pki" envelope sign --domain b.test --action urn:wsemail:2026/Deliver \
	--to "https://mail.b.test:$PB/wsemail" "$W/forged.xml" >"$W/forged.env"
curl -s --cacert "$W/pki/root/cert.pem" --cert "$W/pki/b.test/chain.pem" \
	--key "$W/pki/b.test/service-key.pem" --resolve "mail.b.test:$PB:127.0.0.1" \
	-H 'Content-Type: application/soap+xml' --data-binary @"$W/forged.env" \
	"https://mail.b.test:$PB/wsemail" | grep -o 'wse:[A-Za-z]*' | head -1 | sed 's/^/    fault: /'

say "Done: servers and DNS stopped, temporary files removed."
