#!/usr/bin/env bash
# Relay throughput: N messages of SIZE bytes from users of a.test to
# mailboxes at b.test, C concurrent clients, through two wsemaild servers
# on loopback (PKI, dnsmasq with SRV records, servers and users from
# tests/lib.sh) -- and the same workload through two Postfix
# instances (A relays to B over SMTP on loopback, B delivers to Maildirs).
#
# Usage: bench/relay.sh [BUILD_DIR]        (default: build-bench)
#   environment: N=10000 C=32 SIZE=4096 THREADS=32 (wsemaild workers)
#                (N: enough that the start, while queues and caches
#                fill, and the relay's tail after the last Submit do not
#                dominate a round; Postfix's rate is the same at N=3000)
#                DELIVERY_THREADS= (wsemaild delivery_threads; empty:
#                the server's default)
#                REPEAT=1 (rounds, alternating the two systems; the
#                report gives each round and the medians)
#                SENDERS=4 RCPTS=4 VERIFY=1 (client checks each answer)
#                PREPARE=1 (relay_load -P): with PREPARE=1 the clients' own
#                signing happens before the clock starts and every answer
#                is verified after it stops, so the figure measures the
#                servers; PREPARE=0 does it inline, on the clock, on the
#                same cores as the servers
#                POSTFIX=1 (0: skip it) MAX_SECONDS=900 (whole run)
#                PERF_OUT=DIR: perf record (DWARF call graphs) both servers in our
#                first round; leaves perf-{a,b}.data and .txt in DIR
#                (PERF_FREQ=199 samples a second)
# Build first:   meson setup build-bench -Dbuildtype=release &&
#                ninja -C build-bench
#
# Measures, for each system: messages/s from the first submission to the
# moment all N are stored at b.test (b.test's sqlite store, `SELECT
# count(*) FROM messages`, polled every 20 ms; Postfix: files in B's
# Maildir), and for ours the client's p50/p99 Submit latency (POST out ->
# acknowledgement), the relay rate after the last acknowledgement, and
# each server's peak RSS (VmHWM).  Durability is as shipped: sqlite WAL
# with synchronous=FULL; Postfix fsyncs its queue files and Maildir
# deliveries.  Every process started here is stopped by PID (Postfix by
# `postfix -c DIR stop`), and the temporary directory is removed, also on
# failure or when MAX_SECONDS is reached.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-${WSE_BUILD_ROOT:-$ROOT/build-bench}}
B=$(cd "$B" 2>/dev/null && pwd) || { echo "relay.sh: no build directory ${1:-}" >&2; exit 2; }
N=${N:-10000}
C=${C:-32}
SIZE=${SIZE:-4096}
THREADS=${THREADS:-32}
DELIVERY_THREADS=${DELIVERY_THREADS:-}
REPEAT=${REPEAT:-1}
SENDERS=${SENDERS:-4}
RCPTS=${RCPTS:-4}
VERIFY=${VERIFY:-1}
PREPARE=${PREPARE:-1}
POSTFIX=${POSTFIX:-1}
MAX_SECONDS=${MAX_SECONDS:-900}
WAIT_STORE=${WAIT_STORE:-300}	# seconds allowed for N to arrive, each run

ADMIN=$B/src/wsemail-admin
SERVER=$B/src/wsemaild
LOAD=$B/bench/relay_load
for x in "$ADMIN" "$SERVER" "$LOAD"; do
	[ -x "$x" ] || { echo "relay.sh: $x missing: ninja -C $B" >&2; exit 2; }
done
for x in sqlite3 python3 /usr/sbin/dnsmasq; do
	command -v "$x" >/dev/null || { echo "relay.sh: $x is needed" >&2; exit 2; }
done
bt=$(python3 -c 'import json,sys
print(next((o["value"] for o in json.load(open(sys.argv[1])) if o["name"] == "buildtype"), "?"))' \
	"$B/meson-info/intro-buildoptions.json" 2>/dev/null)
[ "$bt" = release ] || echo "relay.sh: note: $B is a '${bt:-?}' build, not release; figures will be low" >&2

T=relay.sh
. "$ROOT/tests/lib.sh"	# W, PIDS, fail, forget, t_* fixtures, now, calc, median
chmod 755 "$W"		# Postfix's unprivileged daemons walk below it
PF_DIRS=()
cleanup() {
	trap - EXIT INT TERM
	[ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
	WATCHDOG=""
	for d in "${PF_DIRS[@]}"; do
		postfix -c "$d" stop >/dev/null 2>&1
	done
	# A Postfix master that did not stop: by the PID it recorded.
	for d in "${PF_DIRS[@]}"; do
		[ -f "$d/queue/pid/master.pid" ] || continue
		mp=$(tr -d ' ' <"$d/queue/pid/master.pid")
		[ -n "$mp" ] && kill -0 "$mp" 2>/dev/null && kill "$mp" 2>/dev/null
	done
	t_cleanup	# every PID (SIGKILL after 5 s), then $W
}
trap cleanup EXIT
trap 'echo "relay.sh: interrupted" >&2; exit 3' INT TERM
t_watchdog "$MAX_SECONDS"	# the whole run is bounded

# Wait until a count reaches want (bench/waitcount.py: one process
# polling every 20 ms, so that measuring costs the machine next to
# nothing); WAIT_AT gets the time it did (WAIT_N the last count).  The
# poller runs in the background and this shell waits for it, so that the
# time limit's signal is acted on at once.  While waiting, WATCH_PID's
# end (or, when WATCH_FILE is set, that file's appearance) is noted:
# WATCH_AT, WATCH_N.
wait_count() {  # want seconds sqlite DB | dir DIR
	local want=$1 secs=$2 out=$W/waitcount.out pp st watch=${WATCH_PID:-0}
	shift 2
	WAIT_AT=""; WAIT_N=""
	[ -n "${WATCH_FILE:-}" ] && watch=file:$WATCH_FILE
	python3 "$ROOT/bench/waitcount.py" "$want" "$secs" "$watch" "$@" >"$out" &
	pp=$!
	PIDS+=("$pp")
	wait "$pp"
	forget "$pp"
	read -r st WAIT_AT WAIT_N WATCH_AT WATCH_N <"$out"
	[ "${WATCH_AT:-}" = - ] && WATCH_AT=""
	[ "${WATCH_N:-}" = - ] && WATCH_N=""
	[ "$st" = ok ] || { WAIT_AT=""; return 1; }
	return 0
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null; }
# "busy total" jiffies of the whole machine (all cores).
sys_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }

echo "== relay benchmark: N=$N messages of $SIZE bytes, C=$C clients, $REPEAT round(s), $(nproc) cores, $(date -u +%FT%TZ) =="
echo "   (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"

# ======================================================================
# WSEmail: PKI and DNS once; fresh servers, stores and users each round
# ======================================================================
PA=$(free_port); PB=$(free_port)
t_pki a.test b.test
# Records with a TTL, as a real zone has (dnsmasq's default for its own
# records is 0, which lib/route.c never caches): the servers resolve a
# domain once a minute and route the other messages from their cache, as
# they would in production.
t_dns a.test="$PA" b.test="$PB" --local-ttl=60
# the servers' settings; their files are in $W (stores removed each round)
settings="retry_first = 5
retry_max = 60
lifetime =
threads = $THREADS
${DELIVERY_THREADS:+delivery_threads = $DELIVERY_THREADS}
[limits]
max_message_bytes = 1048576"

# One round of ours; appends to the WS_* arrays.
WS_RATE=(); WS_P50=(); WS_P99=(); WS_ACK=(); WS_DRAIN=(); WS_RSS_A=(); WS_RSS_B=()
WS_NOTES=()
run_wsemail() {  # round
	local R=$W/r$1 APID BPID from="" to="" i load first done_at secs
	local ta0 tb0 ta1 tb1 hz dups qleft commits batches alog0 PERFPIDS=() s0 s1 busy prepared
	mkdir -p "$R"
	t_conf a.test "$PA" "$settings"
	t_conf b.test "$PB" "$settings"
	# a.test.log grows over the rounds: this round's lines come after.
	alog0=$( (wc -l <"$W/a.test.log") 2>/dev/null || echo 0)
	t_start a.test; APID=$LAST_PID
	t_start b.test; BPID=$LAST_PID
	for i in $(seq "$SENDERS"); do from="$from${from:+,}user$i@a.test"; done
	for i in $(seq "$RCPTS"); do to="$to${to:+,}box$i@b.test"; done
	t_users a.test ${from//,/ }
	t_users b.test ${to//,/ }
	stored() { sqlite3 "$W/b.test.db" 'SELECT count(*) FROM messages'; }
	[ "$(stored)" = 0 ] || fail "b.test's store is not empty"

	echo "relay.sh: round $1: WSEmail..." >&2
	# PREPARE=1: the load generator creates $R/load.gate when its timed
	# part is over (noted as its end) and checks the answers only once
	# something is appended to it, after all messages are stored.
	WATCH_FILE=""
	[ "$PREPARE" = 1 ] && WATCH_FILE=$R/load.gate
	"$LOAD" ${WATCH_FILE:+-g "$WATCH_FILE"} -S "$R/load.start" -u "https://mail.a.test:$PA/wsemail" -a 127.0.0.1 -r "$W/pki/root/cert.pem" \
		-f "$from" -t "$to" -n "$N" -c "$C" -s "$SIZE" -V "$VERIFY" -P "$PREPARE" -d "$WAIT_STORE" \
		>"$R/load.out" 2>"$R/load.log" &
	WATCH_PID=$!; WATCH_AT=""; WATCH_N=""
	PIDS+=("$WATCH_PID")
	if [ -n "${PERF_OUT:-}" ] && [ "$1" = 1 ]; then
		mkdir -p "$PERF_OUT"
		for x in a:"$APID" b:"$BPID"; do
			perf record -q --call-graph dwarf,16384 -F "${PERF_FREQ:-199}" \
				-o "$PERF_OUT/perf-${x%%:*}.data" -p "${x#*:}" >/dev/null 2>&1 &
			PERFPIDS+=($!)
			PIDS+=($!)
		done
	fi
	# The machine and the servers are measured from the load generator's
	# first submission on (not during its preparation).
	for _ in $(seq 3000); do
		[ -e "$R/load.start" ] || ! kill -0 "$WATCH_PID" 2>/dev/null && break
		sleep 0.01
	done
	ta0=$(cpu_ticks "$APID"); tb0=$(cpu_ticks "$BPID"); s0=$(sys_ticks)
	wait_count "$N" "$WAIT_STORE" sqlite "$W/b.test.db" ||
		fail "b.test stored only ${WAIT_N:-0} of $N in $WAIT_STORE s"
	done_at=$WAIT_AT
	[ -n "$WATCH_FILE" ] && echo go >>"$WATCH_FILE"
	ta1=$(cpu_ticks "$APID"); tb1=$(cpu_ticks "$BPID"); s1=$(sys_ticks)
	busy=$(calc "100 * (${s1% *} - ${s0% *}) / (${s1#* } - ${s0#* })" 0)
	for p in "${PERFPIDS[@]}"; do kill -INT "$p" 2>/dev/null; wait "$p" 2>/dev/null; forget "$p"; done
	if [ "${#PERFPIDS[@]}" -gt 0 ]; then
		for x in a b; do
			{
				echo "== self time by library"
				perf report -i "$PERF_OUT/perf-$x.data" --no-children --sort dso \
					-g none --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15
				echo "== self time by function"
				perf report -i "$PERF_OUT/perf-$x.data" --no-children --sort symbol \
					-g none --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
				echo "== time including callees, our functions and the big library calls"
				perf report -i "$PERF_OUT/perf-$x.data" --children --sort symbol \
					-g none --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' |
					grep -E '\] (wse|wsed|sq|op|deliver|build|read|attempt|handle|worker|lookup|xmlSec(DSigCtx|Transform)|sqlite3_step|curl_easy_perform|event_base_loop|SSL_(read|write|do)|EVP_(Digest|PKEY)|ECDSA)' |
					head -60
			} >"$PERF_OUT/perf-$x.txt"
		done
	fi
	wait "$WATCH_PID" || fail "load generator: $(tail -3 "$R/load.log")"
	forget "$WATCH_PID"
	load=$(cat "$R/load.out")
	get() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$load"; }
	first=$(get first_submit)
	secs=$(calc "$done_at - $first" 3)
	WS_RATE+=("$(calc "$N / $secs")")
	WS_ACK+=("$(get rate)")
	WS_P50+=("$(get p50_ms)")
	WS_P99+=("$(get p99_ms)")
	# Relay alone: from the load generator's end (noticed within 20 ms)
	# to the last message stored.
	if [ -n "$WATCH_AT" ] && [ "${WATCH_N:-$N}" -lt "$N" ]; then
		WS_DRAIN+=("$(calc "($N - $WATCH_N) / ($done_at - $WATCH_AT)")")
	fi
	WS_RSS_A+=("$(peak_rss_kib "$APID")")
	WS_RSS_B+=("$(peak_rss_kib "$BPID")")
	hz=$(getconf CLK_TCK)
	dups=$(sqlite3 "$W/b.test.db" 'SELECT count(*) FROM (SELECT origin_id FROM messages GROUP BY origin_id HAVING count(*) > 1)')
	qleft=$(sqlite3 "$W/a.test.db" 'SELECT count(*) FROM queue')
	t_stop "$APID"; t_stop "$BPID"
	commits=$(grep -o '[0-9]* submissions in [0-9]* transactions' "$W/a.test.log" | tail -1)
	batches=$(tail -n +"$((alog0 + 1))" "$W/a.test.log" | awk '/ items to .* in one DeliverBatch/ { for (i = 1; i < NF; i++)
		if ($i == "sent") { n++; k += $(i + 1) } }
		END { if (n) printf "%d DeliverBatch calls of %.1f items on average", n, k / n;
		      else printf "no DeliverBatch calls" }')
	[ "$dups" = 0 ] || fail "round $1: duplicate deliveries at b.test"
	prepared=""
	[ -n "$(get prepare_s)" ] &&
		prepared=" (+ $(get prepare_s) s preparing before the clock, $(get verify_s) s verifying $(get verified) answers after it; $(get inline) signed on the clock)"
	WS_NOTES+=("round $1: $secs s, ${WS_RATE[-1]} msgs/s; $(get failed) failed submits; server CPU a.test $(calc "($ta1 - $ta0) / $hz") s, b.test $(calc "($tb1 - $tb0) / $hz") s, load generator $(get cpu_s) s$prepared; machine ${busy}% busy; a.test: ${commits:-?}, $batches; queue left $qleft")
	unset WATCH_PID WATCH_FILE
	rm -f "$W"/*.db "$W"/*.db-*
}

# ======================================================================
# Postfix
# ======================================================================
PF_RATE=(); PF_NOTES=()
pf_status="not run"
pf_ready() {
	if ! command -v postfix >/dev/null || ! command -v smtp-source >/dev/null; then
		echo "relay.sh: installing postfix (apt-get)" >&2
		echo "postfix postfix/main_mailer_type select No configuration" |
			debconf-set-selections 2>/dev/null
		if ! DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q postfix \
			>"$W/apt.log" 2>&1; then
			pf_status="skipped: apt-get install postfix failed ($(tail -1 "$W/apt.log"))"
			return 1
		fi
	fi
	command -v smtp-source >/dev/null || { pf_status="skipped: smtp-source not found"; return 1; }
	[ "$(id -u)" = 0 ] || { pf_status="skipped: Postfix instances need root here"; return 1; }
	id postfix >/dev/null 2>&1 && getent group postdrop >/dev/null ||
		{ pf_status="skipped: no postfix user or postdrop group"; return 1; }
	return 0
}
pf_main() {  # dir hostname extra...
	local d=$1 h=$2
	shift 2
	cat >"$d/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
myhostname = $h
mydomain = ${h#mx.}
myorigin = \$mydomain
mydestination =
relay_domains =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtp_dns_support_level = disabled
default_transport = error:no other destinations in this benchmark
maillog_file = $d/maillog
maillog_file_prefixes = $d
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C
EOF
	printf '%s\n' "$@" >>"$d/main.cf"
}
pf_master() {  # dir smtpd-port   (no chroot: nothing is copied into the queue)
	cat >"$1/master.cf" <<EOF
127.0.0.1:$2 inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}
run_postfix() {  # round
	local R=$W/r$1 SA SB pfa pfb vu vg d p up t0 t1 SPID secs s0 s1
	pfa=$R/pfa; pfb=$R/pfb
	SA=$(free_port); SB=$(free_port)
	vu=$(id -u nobody); vg=$(getent group nogroup | cut -d: -f3)
	for d in "$pfa" "$pfb"; do
		mkdir -p "$d/queue" "$d/data"
		chown postfix "$d/data"
	done
	chmod 755 "$R"
	mkdir -p "$pfb/mail"; chown "$vu:$vg" "$pfb/mail"
	pf_main "$pfa" mx.a.test \
		"transport_maps = inline:{ b.test=smtp:[127.0.0.1]:$SB }"
	pf_main "$pfb" mx.b.test \
		"virtual_mailbox_domains = b.test" \
		"virtual_mailbox_base = $pfb/mail" \
		"virtual_mailbox_maps = static:bob/" \
		"virtual_uid_maps = static:$vu" \
		"virtual_gid_maps = static:$vg" \
		"virtual_minimum_uid = 1"
	pf_master "$pfa" "$SA"
	pf_master "$pfb" "$SB"
	for d in "$pfa" "$pfb"; do
		postfix -c "$d" check >"$d/check.log" 2>&1
		PF_DIRS+=("$d")
		if ! postfix -c "$d" start >"$d/start.log" 2>&1; then
			pf_status="skipped: postfix -c $d start failed: $(tail -2 "$d/maillog" "$d/start.log" 2>/dev/null | tr '\n' ' ')"
			return 1
		fi
	done
	for p in "$SA" "$SB"; do
		up=0
		for _ in $(seq 50); do
			python3 -c "import socket,sys;s=socket.create_connection(('127.0.0.1',$p),1);sys.exit(0 if s.recv(100).startswith(b'220') else 1)" \
				2>/dev/null && { up=1; break; }
			sleep 0.1
		done
		[ "$up" = 1 ] || { pf_status="skipped: Postfix did not answer on port $p"; return 1; }
	done
	echo "relay.sh: round $1: Postfix..." >&2
	t0=$(now); s0=$(sys_ticks)
	smtp-source -d -s "$C" -m "$N" -l "$SIZE" -f alice@a.test -t bob@b.test "127.0.0.1:$SA" \
		>"$R/smtp-source.log" 2>&1 &
	SPID=$!
	PIDS+=("$SPID")
	if ! wait_count "$N" "$WAIT_STORE" dir "$pfb/mail/bob/new"; then
		pf_status="FAILED: only ${WAIT_N:-0} of $N delivered in $WAIT_STORE s"
		tail -5 "$pfa/maillog" "$pfb/maillog" >&2
		return 1
	fi
	t1=$WAIT_AT; s1=$(sys_ticks)
	wait "$SPID"
	forget "$SPID"
	secs=$(calc "$t1 - $t0" 3)
	PF_RATE+=("$(calc "$N / $secs")")
	PF_NOTES+=("round $1: $secs s, ${PF_RATE[-1]} msgs/s; machine $(calc "100 * (${s1% *} - ${s0% *}) / (${s1#* } - ${s0#* })" 0)% busy")
	postfix -c "$pfa" stop >/dev/null 2>&1
	postfix -c "$pfb" stop >/dev/null 2>&1
	pf_status="ok (Postfix $(postconf -d -h mail_version 2>/dev/null))"
	return 0
}

use_pf=0
if [ "$POSTFIX" = 1 ]; then
	pf_ready && use_pf=1
else
	pf_status="skipped: POSTFIX=0"
fi
for r in $(seq "$REPEAT"); do
	run_wsemail "$r"
	if [ "$use_pf" = 1 ] && ! run_postfix "$r"; then
		use_pf=0
	fi
done

# ======================================================================
# Report
# ======================================================================
m_ws=$(median "${WS_RATE[@]}")
m_pf=$(median "${PF_RATE[@]}")
echo
printf '%-38s %12s %12s\n' "median of $REPEAT round(s)" "WSEmail" "Postfix"
printf '%-38s %12s %12s\n' "messages/s (first submit -> stored)" "$m_ws" "${m_pf}"
if [ "${#PF_RATE[@]}" -gt 0 ]; then
	printf '%-38s %12s\n' "ratio wsemail/postfix" "$(calc "$m_ws / $m_pf" 3)"
fi
echo "  rounds, msgs/s: WSEmail ${WS_RATE[*]}; Postfix ${PF_RATE[*]:--}"
echo
echo "WSEmail details (medians):"
echo "  Submit latency at the client (POST -> acknowledgement): p50 $(median "${WS_P50[@]}") ms, p99 $(median "${WS_P99[@]}") ms"
echo "  acknowledgements: $(median "${WS_ACK[@]}") msgs/s; relay alone after the last one: $(median "${WS_DRAIN[@]}") msgs/s"
echo "  peak RSS (VmHWM): a.test $(calc "$(median "${WS_RSS_A[@]}") / 1024") MiB, b.test $(calc "$(median "${WS_RSS_B[@]}") / 1024") MiB"
printf '  %s\n' "${WS_NOTES[@]}"
echo "  config: $bt build, threads=$THREADS, delivery_threads=${DELIVERY_THREADS:-default} per server, sqlite WAL, submissions committed with synchronous=FULL, client verifies answers: $VERIFY, client signs/verifies off the clock (PREPARE): $PREPARE"
echo "Postfix: $pf_status"
[ "${#PF_NOTES[@]}" -gt 0 ] && printf '  %s\n' "${PF_NOTES[@]}"
[ "${#PF_RATE[@]}" -gt 0 ] && echo "  two instances (own config_directory, queue, data), smtp-source -d -s $C -m $N -l $SIZE (kept-alive sessions, like ours) -> A -> smtp -> B -> virtual(8) Maildir"
echo "   (load average after: $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "reproduce: N=$N C=$C SIZE=$SIZE THREADS=$THREADS${DELIVERY_THREADS:+ DELIVERY_THREADS=$DELIVERY_THREADS} REPEAT=$REPEAT SENDERS=$SENDERS RCPTS=$RCPTS VERIFY=$VERIFY PREPARE=$PREPARE bash bench/relay.sh $B"
exit 0
