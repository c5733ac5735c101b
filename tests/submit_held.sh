#!/usr/bin/env bash
# Submits answered by the committer (ops.c submit_held) and Submits whose
# worker waits for the commit (past the server's limit of held ones, as
# many as it has workers): a.test runs with one worker, so that with 8
# clients submitting at once most Submits find the one place taken and
# wait.  Both kinds must be acknowledged only once durable, each with its
# own id and signed answer, and every acknowledged message stored at
# b.test exactly once; a Submit sent again still gets wse:Replay.
# Needs: WSE_BUILD_ROOT (bench/relay_load, src/wsemaild,
# src/wsemail-admin, src/wsemail), dnsmasq, sqlite3.  Bounded well under
# a minute; every process it starts is stopped by PID on exit.
set -uo pipefail
T=submit_held
KDF_ITERATIONS=1000	# cheap test users (tests/lib.sh)
B=${WSE_BUILD_ROOT:?}
. "$(dirname "$0")/lib.sh"
LOAD=$B/bench/relay_load
N=300
[ -x "$LOAD" ] || fail "$LOAD is not built"
command -v sqlite3 >/dev/null || fail "the sqlite3 command-line tool is needed"

PA=$(free_port); PB=$(free_port)
t_pki a.test b.test
t_dns a.test="$PA" b.test="$PB"
t_conf a.test "$PA" 'threads = 1'
t_conf b.test "$PB"
t_start a.test; APID=$LAST_PID
t_start b.test; BPID=$LAST_PID
from=""; to=""
for i in 1 2 3 4; do
	t_users a.test "sender$i@a.test"
	t_users b.test "rcpt$i@b.test"
	from="$from${from:+,}sender$i@a.test"
	to="$to${to:+,}rcpt$i@b.test"
done
ok "two servers (a.test with one worker) and a DNS server started"

IDS=$W/acked.ids
: >"$IDS"
timeout 60 "$LOAD" -u "https://mail.a.test:$PA/wsemail" -a 127.0.0.1 \
	-r "$W/pki/root/cert.pem" -f "$from" -t "$to" -n "$N" -c 8 -s 1024 \
	-P 1 -X -d 50 -q -i "$IDS" >"$W/load.out" 2>"$W/load.log" ||
	fail "load generator: $(cat "$W/load.out" "$W/load.log" | tail -3)"
grep -q "acked=$N failed=0 " "$W/load.out" ||
	fail "not all acknowledged at once: $(cat "$W/load.out")"
grep -q " replay=refused" "$W/load.out" ||
	fail "a Submit sent again was not refused: $(cat "$W/load.out" "$W/load.log" | tail -2)"
nuniq=$(sort -u "$IDS" | wc -l | tr -d ' ')
[ "$nuniq" = "$N" ] || fail "$nuniq distinct acknowledged ids, want $N"
ok "$N Submits from 8 clients at once acknowledged (every answer's signature checked), each with its own id; the first sent again: wse:Replay"
held=$(grep -c "wsemaild: submit urn:uuid:" "$W/a.test.log")
[ "$held" = "$N" ] || fail "a.test logged $held submissions, want $N"
ok "a.test queued each of them once (and not the replay)"

end=$(( $(date +%s) + 30 ))
while :; do
	n=$(sqlite3 "$W/b.test.db" "SELECT count(*) FROM messages WHERE origin_domain = 'a.test'" 2>/dev/null)
	[ "${n:-0}" -ge "$N" ] && break
	[ "$(date +%s)" -ge "$end" ] && fail "b.test stored ${n:-0} of $N"
	sleep 0.1
done
sqlite3 "$W/b.test.db" "SELECT origin_id FROM messages WHERE origin_domain = 'a.test'" |
	sort >"$W/delivered.ids"
sort "$IDS" >"$W/acked.sorted"
cmp -s "$W/acked.sorted" "$W/delivered.ids" ||
	fail "stored ids differ from the acknowledged ones: $(diff "$W/acked.sorted" "$W/delivered.ids" | head -4 | tr '\n' ' ')"
ok "every acknowledged message stored at b.test exactly once"

kill -0 "$APID" && kill -0 "$BPID" || fail "a server died"
ok "both servers still running"
finish
