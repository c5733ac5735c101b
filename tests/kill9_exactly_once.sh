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
T=kill9_exactly_once
KDF_ITERATIONS=1000	# cheap test users (tests/lib.sh)
B=${WSE_BUILD_ROOT:?}
. "$(dirname "$0")/lib.sh"
LOAD=$B/bench/relay_load
N=${N:-1000}
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
[ -x "$LOAD" ] || fail "$LOAD is not built"
command -v sqlite3 >/dev/null || fail "the sqlite3 command-line tool is needed"

PA=$(free_port); PB=$(free_port)
t_pki a.test b.test
t_dns a.test="$PA" b.test="$PB"
# lease = 5: an item leased by a server that is then killed comes back
# after 5 s instead of the default 300 s (the crash-recovery path under
# test); lifetime long enough that nothing bounces.
settings='lease = 5
lifetime = 3600
threads = 8
[limits]
max_message_bytes = 1048576'
t_conf a.test "$PA" "$settings"
t_conf b.test "$PB" "$settings"

crash() {  # domain pid
	kill -9 "$2" 2>/dev/null || fail "$1 server was not running"
	wait "$2" 2>/dev/null
	forget "$2"	# never signal a recycled PID at cleanup
	echo "# $(elapsed) s: kill -9 $1 (pid $2) after $(acked) acknowledged" >&2
}
t_start a.test; APID=$LAST_PID
t_start b.test; BPID=$LAST_PID
ok "two servers and a DNS server started"

from=""; to=""
for i in 1 2 3 4; do
	t_users a.test "sender$i@a.test"
	t_users b.test "rcpt$i@b.test"
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
t_start a.test; APID=$LAST_PID
# 2. b.test dies; a.test defers and builds a backlog; b.test comes back,
#    and a.test is killed while it is draining the backlog (a Deliver in
#    flight or stored but not yet marked done; items leased).
wait_acked $((N * 7 / 20)) 60
crash b.test "$BPID"
sleep 3
base=$(stored)
t_start b.test; BPID=$LAST_PID
wait_stored "$base" 20 30
crash a.test "$APID"
sleep 0.3
t_start a.test; APID=$LAST_PID
# 3. Again a backlog, and this time b.test is killed while a.test drains
#    it (a Deliver stored whose answer never arrives).
wait_acked $((N * 3 / 5)) 60
crash b.test "$BPID"
sleep 3
base=$(stored)
t_start b.test; BPID=$LAST_PID
wait_stored "$base" 20 30
crash b.test "$BPID"
sleep 1
t_start b.test; BPID=$LAST_PID
ok "kill -9 and restart while the load ran: a.test twice (once mid-drain), b.test three times (once mid-drain)"

wait "$LOADPID"
rc=$?
forget "$LOADPID"
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

finish
