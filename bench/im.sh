#!/usr/bin/env bash
# Instant messages (docs/im.md): one-way latency and throughput across two
# domains on loopback, and the same workload on Prosody (XMPP).
#
# Usage: bench/im.sh [BUILD_DIR]        (default: build-bench)
#   environment: N=10000 (latency: messages, one at a time)
#                NT=20000 (throughput: messages in all, per size)
#                PAIRS=100 (throughput: pairs chatting, turn by turn)
#                SIZES="100 4096" (throughput: text bytes)
#                VERIFY=1 (every answer and every pushed original verified)
#                IM_THREADS=256 (each wsemaild's HTTP workers: a worker
#                waits while its instant message is delivered, and at
#                most half of them may, so 100 pairs need 200+)
#                PROSODY=1 (0: skip it) MAX_SECONDS=1800 (whole run)
#                IM_LOAD_TIMES=FILE (bench/im_load writes each message's
#                send time and latency there; the last run's wins, so
#                with SIZES=" " for the latency run alone)
# Build first:   meson setup build-bench -Dbuildtype=release &&
#                ninja -C build-bench
#
# WSEmail: a PKI, dnsmasq with SRV records, two wsemaild (a.test, b.test)
# with plugins/im.so, users a001..a100@a.test and b001..b100@b.test, and
# bench/im_load (the client protocol in C: every user logs in once and
# holds a session of WaitInstant long-polls at its own server, verifying
# each pushed original end to end).  Latency: a001 -> b001, one message at
# a time, from just before the Submit goes out to the moment b001's
# session has verified the message.  Throughput: each pair a<i>, b<i>
# chats (a<i> sends, b<i> answers once it has the message, and so on: one
# message per pair in flight), all pairs at once; messages received per
# second.
#
# Prosody: one prosody process (two virtual hosts a.test and b.test on
# loopback, c2s over STARTTLS with a self-signed certificate, s2s between
# the two hosts of the same process), accounts as above, and
# bench/im_xmpp.py (slixmpp): the same two measurements, message bodies of
# the same sizes.  Every process started here is stopped by PID; the
# temporary directory is removed.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-${WSE_BUILD_ROOT:-$ROOT/build-bench}}
B=$(cd "$B" 2>/dev/null && pwd) || { echo "im.sh: no build directory ${1:-}" >&2; exit 2; }
N=${N:-10000}
NT=${NT:-20000}
PAIRS=${PAIRS:-100}
SIZES=${SIZES:-100 4096}
VERIFY=${VERIFY:-1}
PROSODY=${PROSODY:-1}
MAX_SECONDS=${MAX_SECONDS:-1800}

LOAD=$B/bench/im_load
IMSO=$B/plugins/im.so
for x in "$LOAD" "$IMSO"; do
	[ -e "$x" ] || { echo "im.sh: $x missing: ninja -C $B" >&2; exit 2; }
done
bt=$(python3 -c 'import json,sys
print(next((o["value"] for o in json.load(open(sys.argv[1])) if o["name"] == "buildtype"), "?"))' \
	"$B/meson-info/intro-buildoptions.json" 2>/dev/null)
[ "$bt" = release ] || echo "im.sh: note: $B is a '${bt:-?}' build, not release; figures will be low" >&2

T=im.sh
. "$ROOT/tests/lib.sh"	# W, PIDS, fail, forget, t_* fixtures, now, calc
trap 'echo "im.sh: interrupted" >&2; exit 3' INT TERM
t_watchdog "$MAX_SECONDS"

echo "== instant-message benchmark: latency N=$N; throughput NT=$NT with $PAIRS pairs, sizes $SIZES; $(nproc) cores, $(date -u +%FT%TZ) =="

# ======================================================================
# WSEmail
# ======================================================================
PA=$(free_port); PB=$(free_port)
t_pki a.test b.test
# Records with a TTL, as a real zone has (dnsmasq's default for its own
# records is 0, which lib/route.c never caches): the servers resolve a
# domain once a minute and route the other messages from their cache, as
# they would in production.
t_dns a.test="$PA" b.test="$PB" --local-ttl=60
settings() {  # domain
	echo "plugin = $IMSO dir=$W/im-$1
threads = ${IM_THREADS:-256}
[limits]
pbkdf2_iterations = 1000
pbkdf2_min_iterations = 1000"
}
t_conf a.test "$PA" "$(settings a.test)"
t_conf b.test "$PB" "$(settings b.test)"
t_start a.test; APID=$LAST_PID
t_start b.test; BPID=$LAST_PID
ua=(); ub=()
for i in $(seq -f %03g 1 "$PAIRS"); do ua+=("a$i@a.test"); ub+=("b$i@b.test"); done
echo "im.sh: creating $((2 * PAIRS)) users..." >&2
t_users a.test "${ua[@]}"
t_users b.test "${ub[@]}"
load() {  # output-file im_load-options...
	local out=$1; shift
	local p
	"$LOAD" -a "https://mail.a.test:$PA/wsemail" -b "https://mail.b.test:$PB/wsemail" \
		-A 127.0.0.1 -B 127.0.0.1 -r "$W/pki/root/cert.pem" -V "$VERIFY" \
		-d "$MAX_SECONDS" "$@" >"$out" 2>"$out.log" &
	p=$!; PIDS+=("$p")
	wait "$p" || echo "im.sh: im_load $*: $(tail -2 "$out.log") $(cat "$out")" >&2
	forget "$p"
	cat "$out"
}
get() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }

echo "im.sh: WSEmail latency ($N messages)..." >&2
WL=$(load "$W/wl.out" -m latency -n "$N" -s 100)
declare -A WT
for s in $SIZES; do
	echo "im.sh: WSEmail throughput ($NT messages of $s bytes, $PAIRS pairs)..." >&2
	WT[$s]=$(load "$W/wt$s.out" -m throughput -P "$PAIRS" -n "$NT" -s "$s")
done
RSS_A=$(peak_rss_kib "$APID"); RSS_B=$(peak_rss_kib "$BPID")
t_stop "$APID"; t_stop "$BPID"

# ======================================================================
# Prosody
# ======================================================================
PL=""; declare -A PT
if [ "$PROSODY" = 1 ] && command -v prosody >/dev/null && command -v prosodyctl >/dev/null &&
	/usr/bin/python3 -c "import slixmpp" 2>/dev/null; then
	P=$W/prosody; mkdir -p "$P/data"
	XP=$(free_port); XS=$(free_port)
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-subj "/CN=a.test" -addext "subjectAltName=DNS:a.test,DNS:b.test" \
		-keyout "$P/key.pem" -out "$P/cert.pem" >/dev/null 2>&1 || fail "certificate"
	cat >"$P/prosody.cfg.lua" <<EOF
pidfile = "$P/prosody.pid"
data_path = "$P/data"
daemonize = false
log = { info = "$P/prosody.log"; error = "$P/prosody.err" }
interfaces = { "127.0.0.1" }
c2s_ports = { $XP }
s2s_ports = { $XS }
c2s_require_encryption = true
s2s_require_encryption = false
s2s_secure_auth = false
authentication = "internal_hashed"
storage = "internal"
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping" }
modules_disabled = { "offline" }
limits = { c2s = { rate = "100mb/s" }; s2sin = { rate = "100mb/s" } }
ssl = { key = "$P/key.pem"; certificate = "$P/cert.pem" }
VirtualHost "a.test"
VirtualHost "b.test"
EOF
	mkdir -p "$P/certs"
	# Unprivileged: as root, run it as the prosody user (setpriv execs,
	# so that $! is prosody itself).
	AS=()
	if [ "$(id -u)" = 0 ]; then
		chmod 755 "$W"
		chown -R prosody: "$P"
		AS=(setpriv --reuid=prosody --regid=prosody --init-groups)
	fi
	echo "im.sh: creating $((2 * PAIRS)) Prosody accounts..." >&2
	for u in "${ua[@]}" "${ub[@]}"; do
		"${AS[@]}" prosodyctl --config "$P/prosody.cfg.lua" register "${u%@*}" "${u#*@}" \
			"$WSEMAIL_PASSWORD" >/dev/null 2>&1 || fail "prosodyctl register $u"
	done
	"${AS[@]}" prosody --config "$P/prosody.cfg.lua" >"$P/stdout" 2>&1 &
	XPID=$!; PIDS+=("$XPID")
	for _ in $(seq 100); do
		ss -Hltn "sport = :$XP" 2>/dev/null | grep -q . && break
		kill -0 "$XPID" 2>/dev/null || fail "prosody did not start: $(cat "$P/stdout" "$P/prosody.err" 2>/dev/null)"
		sleep 0.1
	done
	xload() {  # output-file options...
		local out=$1; shift
		local p
		/usr/bin/python3 "$ROOT/bench/im_xmpp.py" --port "$XP" --ca "$P/cert.pem" \
			--password "$WSEMAIL_PASSWORD" "$@" >"$out" 2>"$out.log" &
		p=$!; PIDS+=("$p")
		wait "$p" || echo "im.sh: im_xmpp.py $*: $(tail -2 "$out.log")" >&2
		forget "$p"
		cat "$out"
	}
	echo "im.sh: Prosody latency ($N messages)..." >&2
	PL=$(xload "$P/pl.out" --mode latency -n "$N" --size 100)
	for s in $SIZES; do
		echo "im.sh: Prosody throughput ($NT messages of $s bytes, $PAIRS pairs)..." >&2
		PT[$s]=$(xload "$P/pt$s.out" --mode throughput --pairs "$PAIRS" -n "$NT" --size "$s")
	done
	RSS_X=$(peak_rss_kib "$XPID")
	t_stop "$XPID"
elif [ "$PROSODY" = 1 ]; then
	echo "im.sh: Prosody skipped (apt-get install prosody python3-slixmpp)" >&2
fi

# ======================================================================
# Report
# ======================================================================
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk "BEGIN { if ($2 > 0) printf \"%.2f\", $1 / $2; else print \"-\" }" || echo "-"; }
row() {  # label ours theirs
	printf '%-44s %12s %12s %8s\n' "$1" "${2:--}" "${3:--}" "$(ratio "${2:-}" "${3:-}")"
}
echo
printf '%-44s %12s %12s %8s\n' "" "WSEmail" "Prosody" "WSE/Pros"
row "latency p50, ms (one at a time, 100 B)" "$(get p50_ms "$WL")" "$(get p50_ms "$PL")"
row "latency p99, ms" "$(get p99_ms "$WL")" "$(get p99_ms "$PL")"
row "latency: messages arrived" "$(get received "$WL")" "$(get received "$PL")"
for s in $SIZES; do
	row "messages/s, $PAIRS pairs chatting, $s B" "$(get rate "${WT[$s]}")" "$(get rate "${PT[$s]:-}")"
	row "  p99 send->arrival under load, ms" "$(get p99_ms "${WT[$s]}")" "$(get p99_ms "${PT[$s]:-}")"
done
row "peak RSS, MiB (a.test + b.test | prosody)" "$(( (RSS_A + RSS_B) / 1024 ))" "$([ -n "${RSS_X:-}" ] && echo $((RSS_X / 1024)))"
echo
echo "WSEmail: every request signed (password profile), every answer and every"
echo "pushed original verified (ECDSA P-256), server to server over mutual TLS"
echo "each message its own signed Deliver (those that wait together travel in"
echo "one signed DeliverBatch).  Prosody: c2s over TLS (STARTTLS), s2s"
echo "inside one process, no end-to-end signatures."
echo "reproduce: N=$N NT=$NT PAIRS=$PAIRS SIZES=\"$SIZES\" bench/im.sh $B"
