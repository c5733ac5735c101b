#!/usr/bin/env bash
# Exactly-once delivery across crashes: two domains on loopback (a PKI
# minted here, dnsmasq with SRV records, two wsemaild servers, as in
# mail_two_domains.sh), a paced load of 1,000 messages from a.test users
# to b.test users (bench/relay_load, which speaks the client protocol and
# records the id of every Submit the server ACKNOWLEDGED), and while it
# runs: kill -9 a.test's server among Submits; kill -9 b.test's, let
# a.test build a backlog, restart b.test and kill -9 a.test while it
# drains that backlog; once more a backlog, and kill -9 b.test while
# a.test drains it (every server restarted after each kill).  A Submit
# that fails because its server is down is retried by the load generator
# with a new message and not counted.  At the end, once a.test's queue is empty, every
# acknowledged id must be stored at b.test exactly once (messages.
# origin_id, origin_domain a.test), and no id more than once.
# Needs: WSE_BUILD_ROOT (bench/relay_load, src/wsemaild,
# src/wsemail-admin), dnsmasq, sqlite3.  Bounded well under 3 minutes;
# every process it starts is stopped by PID on exit.
set -uo pipefail

B=${WSE_BUILD_ROOT:?}
ADMIN=$B/src/wsemail-admin
SERVER=$B/src/wsemaild
LOAD=$B/bench/relay_load
N=${N:-1000}
W=$(mktemp -d "${TMPDIR:-/tmp}/wse-kill9.XXXXXX")
PIDS=()
checks=0
T0=$(date +%s)
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT
fail() {
	echo "kill9_exactly_once: FAIL: $*" >&2
	for f in "$W"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
	exit 1
}
ok() { checks=$((checks + 1)); echo "ok $checks - $*"; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
elapsed() { echo $(( $(date +%s) - T0 )); }
for x in "$ADMIN" "$SERVER" "$LOAD"; do
	[ -x "$x" ] || fail "$x is not built"
done
command -v sqlite3 >/dev/null || fail "the sqlite3 command-line tool is needed"

PA=$(free_port); PB=$(free_port); DNS=$(free_port)
export WSEMAIL_PASSWORD=correct-horse-battery

# ---- PKI ----
A() { timeout 30 "$ADMIN" --pki "$W/pki" "$@" >/dev/null || fail "wsemail-admin $*"; }
A ca init --cn "Test Root"
A domain issue a.test
A domain issue b.test
A service issue a.test --host mail.a.test
A service issue b.test --host mail.b.test

# ---- DNS ----
timeout 170 /usr/sbin/dnsmasq --no-daemon --no-resolv --no-hosts \
	--listen-address=127.0.0.1 --bind-interfaces --port="$DNS" \
	--local=/test/ --pid-file="$W/dnsmasq.pid" \
	--srv-host=_wsemail._tcp.a.test,mail.a.test,"$PA",10,10 \
	--srv-host=_wsemail._tcp.b.test,mail.b.test,"$PB",10,10 \
	--host-record=mail.a.test,127.0.0.1 \
	--host-record=mail.b.test,127.0.0.1 \
	>"$W/dns.log" 2>&1 &
PIDS+=($!)

# lease = 5: an item leased by a server that is then killed comes back
# after 5 s instead of the default 300 s (the crash-recovery path under
# test); lifetime long enough that nothing bounces.
conf() {  # domain port
	cat >"$W/$1.conf" <<EOF
domain = $1
url = https://mail.$1:$2/wsemail
listen = 127.0.0.1:$2
cert_chain = $W/pki/$1/chain.pem
key = $W/pki/$1/service-key.pem
roots = $W/pki/root/cert.pem
crl = $W/pki/root/crl.pem
crl = $W/pki/a.test/crl.pem
crl = $W/pki/b.test/crl.pem
store = sqlite:$W/$1.db
secret_file = $W/$1.secret
dns_server = 127.0.0.1:$DNS
retry_first = 1
retry_max = 2
lease = 5
lifetime = 3600
threads = 8
[limits]
max_message_bytes = 1048576
EOF
}
conf a.test "$PA"
conf b.test "$PB"

# Start a domain's server; sets LAST_PID.
start() {
	"$SERVER" "$W/$1.conf" >"$W/$1.out" 2>>"$W/$1.log" &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
	for _ in $(seq 100); do
		grep -q ready "$W/$1.out" 2>/dev/null && return 0
		kill -0 "$LAST_PID" 2>/dev/null || fail "$1 server died"
		sleep 0.1
	done
	fail "$1 server did not start"
}
crash() {  # domain pid
	local p keep=()
	kill -9 "$2" 2>/dev/null || fail "$1 server was not running"
	wait "$2" 2>/dev/null
	for p in "${PIDS[@]}"; do [ "$p" = "$2" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")	# never signal a recycled PID at cleanup
	echo "# $(elapsed) s: kill -9 $1 (pid $2) after $(acked) acknowledged" >&2
}
start a.test; APID=$LAST_PID
start b.test; BPID=$LAST_PID
ok "two servers and a DNS server started"

from=""; to=""
for i in 1 2 3 4; do
	timeout 30 "$ADMIN" --config "$W/a.test.conf" user add "sender$i@a.test" >/dev/null || fail "user add"
	timeout 30 "$ADMIN" --config "$W/b.test.conf" user add "rcpt$i@b.test" >/dev/null || fail "user add"
	from="$from${from:+,}sender$i@a.test"
	to="$to${to:+,}rcpt$i@b.test"
done
ok "users created"

# ---- the load: paced so that the crashes fall in the middle of it ----
IDS=$W/acked.ids
: >"$IDS"
acked() { wc -l <"$IDS" | tr -d ' '; }
"$LOAD" -u "https://mail.a.test:$PA/wsemail" -a 127.0.0.1 -r "$W/pki/root/cert.pem" \
	-f "$from" -t "$to" -n "$N" -c 8 -s 2048 -R 40 -d 90 -q -i "$IDS" \
	>"$W/load.out" 2>"$W/load.log" &
LOADPID=$!
PIDS+=("$LOADPID")
wait_acked() {  # count seconds
	local end=$(( $(date +%s) + $2 ))
	while [ "$(acked)" -lt "$1" ]; do
		kill -0 "$LOADPID" 2>/dev/null || fail "load generator ended early: $(cat "$W/load.out" "$W/load.log" | tail -3)"
		[ "$(date +%s)" -ge "$end" ] && fail "only $(acked) acknowledged, waiting for $1"
		sleep 0.1
	done
}
stored() { sqlite3 "$W/b.test.db" 'SELECT count(*) FROM messages' 2>/dev/null || echo 0; }
# Wait until b.test has stored `more` messages beyond `base`.
wait_stored() {  # base more seconds
	local end=$(( $(date +%s) + $3 ))
	while [ "$(stored)" -lt $(($1 + $2)) ]; do
		[ "$(date +%s)" -ge "$end" ] && fail "b.test stored only $(stored), waiting for $(($1 + $2))"
		sleep 0.05
	done
}
# 1. a.test dies among Submits.
wait_acked $((N / 5)) 60
crash a.test "$APID"
sleep 0.5
start a.test; APID=$LAST_PID
# 2. b.test dies; a.test defers and builds a backlog; b.test comes back,
#    and a.test is killed while it is draining the backlog (a Deliver in
#    flight or stored but not yet marked done; items leased).
wait_acked $((N * 7 / 20)) 60
crash b.test "$BPID"
sleep 3
base=$(stored)
start b.test; BPID=$LAST_PID
wait_stored "$base" 20 30
crash a.test "$APID"
sleep 0.3
start a.test; APID=$LAST_PID
# 3. Again a backlog, and this time b.test is killed while a.test drains
#    it (a Deliver stored whose answer never arrives).
wait_acked $((N * 3 / 5)) 60
crash b.test "$BPID"
sleep 3
base=$(stored)
start b.test; BPID=$LAST_PID
wait_stored "$base" 20 30
crash b.test "$BPID"
sleep 1
start b.test; BPID=$LAST_PID
ok "kill -9 and restart while the load ran: a.test twice (once mid-drain), b.test three times (once mid-drain)"

wait "$LOADPID"
rc=$?
keep=()
for p in "${PIDS[@]}"; do [ "$p" = "$LOADPID" ] || keep+=("$p"); done
PIDS=("${keep[@]}")
load=$(cat "$W/load.out")
[ "$rc" = 0 ] || fail "load generator: exit $rc: $load $(tail -3 "$W/load.log")"
nack=$(acked)
nuniq=$(sort -u "$IDS" | wc -l | tr -d ' ')
[ "$nack" = "$N" ] && [ "$nuniq" = "$N" ] || fail "$nack acknowledged ids ($nuniq distinct), want $N"
failed=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$load")
ok "$N submissions acknowledged with distinct ids ($failed failed while a server was down, retried as new messages)"

# ---- drain ----
end=$(( $(date +%s) + 60 ))
while :; do
	q=$(sqlite3 "$W/a.test.db" 'SELECT count(*) FROM queue' 2>/dev/null)
	[ "${q:-1}" = 0 ] && break
	[ "$(date +%s)" -ge "$end" ] && fail "a.test's queue still holds ${q:-?} items"
	sleep 0.2
done
ok "a.test's queue is empty ($(elapsed) s in)"

# ---- exactly once ----
sqlite3 "$W/b.test.db" "SELECT origin_id FROM messages WHERE origin_domain = 'a.test'" |
	sort >"$W/delivered.ids"
sort "$IDS" >"$W/acked.sorted"
missing=$(comm -23 "$W/acked.sorted" <(sort -u "$W/delivered.ids") | wc -l | tr -d ' ')
[ "$missing" = 0 ] || fail "$missing acknowledged messages never reached b.test, e.g. $(comm -23 "$W/acked.sorted" <(sort -u "$W/delivered.ids") | head -3 | tr '\n' ' ')"
ok "every acknowledged message was delivered to b.test"
twice=$(uniq -d "$W/delivered.ids" | wc -l | tr -d ' ')
[ "$twice" = 0 ] || fail "$twice messages stored more than once at b.test, e.g. $(uniq -d "$W/delivered.ids" | head -3 | tr '\n' ' ')"
ok "no message stored twice at b.test (all $(wc -l <"$W/delivered.ids" | tr -d ' ') checked)"
acked_twice=$(join "$W/acked.sorted" <(uniq -c "$W/delivered.ids" | awk '{print $2, $1}') |
	awk '$2 != 1' | wc -l | tr -d ' ')
[ "$acked_twice" = 0 ] || fail "$acked_twice acknowledged ids not stored exactly once"
ok "count per origin id is exactly 1 for all $N acknowledged ids"
extra=$(comm -13 "$W/acked.sorted" <(sort -u "$W/delivered.ids") | wc -l | tr -d ' ')
echo "# $extra delivered messages were never acknowledged (Submit committed, then the server died before answering)" >&2
dedup=$(grep -c "duplicate, already stored" "$W/b.test.log")
echo "# b.test answered $dedup repeated Deliver(s) from its de-duplication record" >&2
bounces=$(sqlite3 "$W/a.test.db" "SELECT count(*) FROM messages WHERE from_addr LIKE 'mailer-daemon@%'")
[ "$bounces" = 0 ] || fail "$bounces non-delivery reports at a.test"
ok "no non-delivery report"
rows=$(sqlite3 "$W/b.test.db" "SELECT count(*) FROM messages WHERE origin_domain = 'a.test'")
recs=$(sqlite3 "$W/b.test.db" "SELECT count(*) FROM deliveries WHERE origin_domain = 'a.test'")
[ "$rows" = "$recs" ] || fail "$rows messages but $recs delivery records at b.test"
ok "b.test: one de-duplication record per stored message ($recs)"
kill -0 "$APID" && kill -0 "$BPID" || fail "a server died"
ok "both servers still running after $(elapsed) s"

echo "kill9_exactly_once: $checks checks passed"
