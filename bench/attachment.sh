#!/usr/bin/env bash
# On-demand attachments: (1) fetch throughput of one big attachment from
# the sender's server, against nginx serving the same file over HTTPS to
# curl; (2) the bytes that cross between the servers when one big file
# goes to many recipients, on demand against inline (and SMTP, computed).
#
# Two wsemaild servers with the ondemand plugin on loopback, a PKI and
# dnsmasq with SRV records, all from tests/lib.sh (as tests/ondemand.sh).
#
# Usage: bench/attachment.sh [BUILD_DIR]   (default: build-bench2, else build)
#   environment: SIZE_MIB=1024 (the fetched file)  REPEAT=3 (fetches each)
#                RCPTS=100 (at most 100: a message's limit)
#                RCPT_SIZE_MIB=100 (the file sent to RCPTS recipients)
#                FETCHERS=RCPTS/10 (of them fetch it, measured)
#                INLINE_KIB="1024 4096" (inline sizes measured; two
#                points give the per-byte slope and the fixed part)
#                INLINE_STEP=64 (KiB; 0: skip the search for the largest
#                inline attachment that can be sent and read)
#                NGINX=1 (0: skip the baseline)  MAX_SECONDS=1800
#                PERF_OUT=DIR: one more fetch, not counted, under perf
#                record (call graphs) of a.test's server and the client;
#                leaves perf-{server,client}.{data,txt} in DIR
# Build first:   meson setup build-bench2 --buildtype=release -Db_sanitize=none &&
#                ninja -C build-bench2
#
# Throughput is MB/s (10^6 bytes), each run's and the median, measured
# two ways: as the client prints it (first request byte -> last byte
# received, SHA-256 computed on the way) and as wall time around the
# whole command (it also fetches and verifies the message, gets or reuses
# a token, fsyncs the file and renames it).  The baseline: nginx (Debian's
# nginx-light, installed with apt-get if missing) with the same file, the
# same certificate chain (a.test's service certificate from the test
# PKI), TLS 1.2 and 1.3 (nginx >= 1.23.4's default; ours too), sendfile
# on, one process (master_process off), and curl writing to the same file
# system; rounds alternate ours and nginx's; then the download's SHA-256
# timed separately (our client checks it while it receives), both with
# sha256sum and with `openssl dgst -sha256` (coreutils has its own
# SHA-256 code, slower than the OpenSSL one our client uses), and a
# `sync FILE` (our client fsyncs before renaming).  The files are in the
# page cache on both sides (written just before).  Every process started
# here is stopped by PID; the temporary directory (big files) is removed,
# also on failure or when MAX_SECONDS is reached.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${1:-}" ]; then
	B=$1
elif [ -d "$ROOT/build-bench2" ]; then
	B=$ROOT/build-bench2
else
	B=$ROOT/build
fi
B=$(cd "$B" 2>/dev/null && pwd) || { echo "attachment.sh: no build directory ${1:-}" >&2; exit 2; }
SIZE_MIB=${SIZE_MIB:-1024}
REPEAT=${REPEAT:-3}
RCPTS=${RCPTS:-100}
RCPT_SIZE_MIB=${RCPT_SIZE_MIB:-100}
FETCHERS=${FETCHERS:-$(( (RCPTS + 9) / 10 ))}
INLINE_KIB=${INLINE_KIB:-1024 4096}
INLINE_STEP=${INLINE_STEP:-64}
NGINX=${NGINX:-1}
MAX_SECONDS=${MAX_SECONDS:-1800}
[ "$RCPTS" -ge 1 ] && [ "$RCPTS" -le 100 ] ||
	{ echo "attachment.sh: RCPTS must be 1..100 (a message's recipient limit)" >&2; exit 2; }
[ "$FETCHERS" -le "$RCPTS" ] || FETCHERS=$RCPTS
for x in python3 /usr/sbin/dnsmasq openssl curl sha256sum; do
	command -v "$x" >/dev/null || { echo "attachment.sh: $x is needed" >&2; exit 2; }
done
bt=$(python3 -c 'import json,sys
print(next((o["value"] for o in json.load(open(sys.argv[1])) if o["name"] == "buildtype"), "?"))' \
	"$B/meson-info/intro-buildoptions.json" 2>/dev/null)
[ "$bt" = release ] || echo "attachment.sh: note: $B is a '${bt:-?}' build, not release; figures will be low" >&2

T=attachment.sh
. "$ROOT/tests/lib.sh"		# W, PIDS, fail, forget, t_* fixtures, C, now,
				# calc, median; cleanup on exit
PLUGIN=$B/plugins/ondemand.so
[ -f "$PLUGIN" ] || fail "$PLUGIN is missing: ninja -C $B"

# Cleanup is tests/lib.sh's: the watchdog, every PID (SIGKILL after 5 s), $W.
trap 'echo "attachment.sh: interrupted" >&2; exit 3' INT TERM
t_watchdog "$MAX_SECONDS"

mb() { calc "$1 / 1e6" "${2:-1}"; }		# bytes -> MB
# the byte count of the newest "deliver ID ...; N bytes" line of b.test
deliver_bytes() {  # submission-id
	grep "deliver $1 from a.test" "$W/b.test.log" | tail -1 | sed -n 's/.*; \([0-9]*\) bytes$/\1/p'
}
wait_deliver() {  # submission-id seconds
	local end=$(( $(date +%s) + $2 ))
	while [ "$(date +%s)" -lt "$end" ]; do
		[ -n "$(deliver_bytes "$1")" ] && return 0
		sleep 0.1
	done
	return 1
}
bigfile() {  # path MiB: incompressible bytes, fast
	openssl enc -aes-128-ctr -nosalt -pass pass:"$1" -in /dev/zero 2>/dev/null |
		head -c $(($2 * 1048576)) >"$1"
	[ "$(stat -c %s "$1")" = $(($2 * 1048576)) ] || fail "cannot write $1"
}

echo "== on-demand attachments: fetch $SIZE_MIB MiB x $REPEAT, $RCPT_SIZE_MIB MiB to $RCPTS recipients; $(nproc) cores, $(date -u +%FT%TZ) =="
echo "   (load average before: $(cut -d' ' -f1-3 /proc/loadavg); work directory on $(df -P "$W" | awk 'NR == 2 {print $1}'))"

# ======================================================================
# Two servers with the ondemand plugin; users; clients
# ======================================================================
PA=$(free_port); PB=$(free_port)
t_pki a.test b.test
t_dns a.test="$PA" b.test="$PB"
od() { echo "plugin = $PLUGIN dir=$W/od-$1 ca_cert=$W/pki/$1/ca.pem ca_key=$W/pki/$1/ca-key.pem"; }
t_conf a.test "$PA" "$(od a.test)"
t_conf b.test "$PB" "$(od b.test)"
t_start a.test; APID=$LAST_PID
t_start b.test; BPID=$LAST_PID
t_users a.test alice@a.test
t_users b.test bob@b.test
# The many recipients: a cheap password cost (an admin config of its own),
# and their clients accept it.
{ cat "$W/b.test.conf"; printf '[limits]\npbkdf2_iterations = 1000\npbkdf2_min_iterations = 1000\n'; } >"$W/bulk.conf"
RLIST=()
for i in $(seq -w 1 "$RCPTS"); do
	[ ${#i} -lt 3 ] && i=$(printf '%03d' "$((10#$i))")
	RLIST+=("r$i@b.test")
done
for u in "${RLIST[@]}"; do
	timeout 60 "$ADMIN" --config "$W/bulk.conf" user add "$u" >/dev/null || fail "user add $u"
done
for u in alice@a.test bob@b.test "${RLIST[@]}"; do t_client "$u"; done
for u in "${RLIST[@]}"; do printf '[limits]\npbkdf2_min_iterations = 1000\n' >>"$W/$u.cconf"; done
echo "attachment.sh: servers up, users alice@a.test, bob@b.test and $RCPTS recipients at b.test" >&2

# ======================================================================
# 1. Fetch throughput: SIZE_MIB from a.test to bob, REPEAT times
# ======================================================================
SIZE=$((SIZE_MIB * 1048576))
bigfile "$W/big.bin" "$SIZE_MIB"
t0=$(now)
want=$(sha256sum "$W/big.bin" | cut -d' ' -f1)
SHA_SRC_S=$(calc "$(now) - $t0" 2)
t0=$(now)
printf 'big one\n' | C alice@a.test send --to bob@b.test --subject "big file" \
	--on-demand "$W/big.bin" - >"$W/send-big.out" 2>&1 || fail "send: $(cat "$W/send-big.out")"
UPLOAD_S=$(calc "$(now) - $t0" 2)
sid=$(grep -o 'urn:uuid:[0-9a-f-]*' "$W/send-big.out" | head -1)
wait_deliver "$sid" 60 || fail "the big message did not reach b.test"
BIG_DELIVER=$(deliver_bytes "$sid")
wait_for bob@b.test "big file" 30 || fail "bob does not list the big message"
bid=$(first_id bob@b.test "big file")
mkdir -p "$W/out"
RSS_A0=$(peak_rss_kib "$APID")	# the upload's peak, before any fetch

# Rounds alternate ours and nginx's, so that a change in the machine's
# load touches both alike.
OURS_CLI=(); OURS_WALL=(); OURS_NOTES=()
ours_fetch() {  # round
	local r=$1 t0 t1 line got
	rm -f "$W/out/big.bin" "$W/out/big.bin.part"
	t0=$(now)
	C bob@b.test attachment fetch "$bid" big.bin --out "$W/out" >"$W/fetch$r.out" 2>&1 ||
		fail "fetch $r: $(cat "$W/fetch$r.out")"
	t1=$(now)
	line=$(grep '^received ' "$W/fetch$r.out")
	got=$(sed -n 's/^received \([0-9]*\) bytes.*/\1/p' <<<"$line")
	[ "$got" = "$SIZE" ] || fail "fetch $r received ${got:-?} bytes: $(cat "$W/fetch$r.out")"
	OURS_CLI+=("$(sed -n 's/.*(\([0-9.]*\) MB\/s).*/\1/p' <<<"$line")")
	OURS_WALL+=("$(calc "$SIZE / 1e6 / ($t1 - $t0)")")
	OURS_NOTES+=("fetch $r: client ${OURS_CLI[-1]} MB/s ($(sed -n 's/.* in \([0-9.]*\) s .*/\1/p' <<<"$line") s), wall $(calc "$t1 - $t0" 2) s = ${OURS_WALL[-1]} MB/s")
	# (the client checked the signed SHA-256; once more here, untimed)
	[ "$r" != 1 ] || cmp -s "$W/out/big.bin" "$W/big.bin" || fail "the fetched file differs"
	rm -f "$W/out/big.bin"
}

# ---- nginx + curl, same file, same PKI ----
NG_CURL=(); NG_WALL=(); NG_SHA=(); NG_DGST=(); NG_SYNC=(); NG_NOTES=()
ng_status="not run"
NPID=""
ng_ready() {
	NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
	if [ ! -x "$NGINX_BIN" ]; then
		echo "attachment.sh: installing nginx-light (apt-get)" >&2
		local prc=""
		# Debian starts a newly installed service unless told not to.
		if [ ! -e /usr/sbin/policy-rc.d ] && [ "$(id -u)" = 0 ]; then
			printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
			chmod 755 /usr/sbin/policy-rc.d
			prc=1
		fi
		DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q nginx-light \
			>"$W/apt.log" 2>&1 ||
			{ timeout 300 apt-get update -q >>"$W/apt.log" 2>&1 &&
			  DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q nginx-light \
				>>"$W/apt.log" 2>&1; }
		[ -n "$prc" ] && rm -f /usr/sbin/policy-rc.d
		NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
		[ -x "$NGINX_BIN" ] || { ng_status="skipped: apt-get install nginx-light failed ($(tail -1 "$W/apt.log"))"; return 1; }
	fi
	return 0
}
ng_start() {
	local N=$W/nginx
	NP=$(free_port)
	mkdir -p "$N/www" "$N/tmp"
	ln "$W/big.bin" "$N/www/big.bin" 2>/dev/null || cp "$W/big.bin" "$N/www/big.bin"
	cat >"$N/nginx.conf" <<EOF
# one process in the foreground, as the user running the benchmark
daemon off;
master_process off;
worker_processes 1;
pid $N/nginx.pid;
error_log $N/error.log;
events { worker_connections 64; }
http {
	access_log $N/access.log;
	client_body_temp_path $N/tmp/body;
	proxy_temp_path $N/tmp/proxy;
	fastcgi_temp_path $N/tmp/fastcgi;
	uwsgi_temp_path $N/tmp/uwsgi;
	scgi_temp_path $N/tmp/scgi;
	default_type application/octet-stream;
	sendfile on;
	server {
		listen 127.0.0.1:$NP ssl;
		server_name mail.a.test;
		ssl_protocols TLSv1.2 TLSv1.3;	# nginx >= 1.23.4's default; ours too
		ssl_certificate $W/pki/a.test/chain.pem;
		ssl_certificate_key $W/pki/a.test/service-key.pem;
		root $N/www;
	}
}
EOF
	"$NGINX_BIN" -t -p "$N" -e "$N/error.log" -c "$N/nginx.conf" >"$N/check.log" 2>&1 ||
		{ ng_status="skipped: nginx -t: $(tail -2 "$N/check.log" | tr '\n' ' ')"; return 1; }
	"$NGINX_BIN" -p "$N" -e "$N/error.log" -c "$N/nginx.conf" >"$N/out.log" 2>&1 &
	NPID=$!; PIDS+=("$NPID")
	for _ in $(seq 100); do
		curl -s -o /dev/null --max-time 2 --cacert "$W/pki/root/cert.pem" \
			--resolve "mail.a.test:$NP:127.0.0.1" "https://mail.a.test:$NP/" && return 0
		kill -0 "$NPID" 2>/dev/null || { ng_status="skipped: nginx died: $(tail -2 "$N/error.log")"; return 1; }
		sleep 0.1
	done
	ng_status="skipped: nginx does not answer on port $NP"
	return 1
}
ng_fetch() {  # round
	local r=$1 t0 t1 t2 t3 t4 sp sha dg
	rm -f "$W/out/curl.bin"
	t0=$(now)
	timeout 600 curl -sS -v --cacert "$W/pki/root/cert.pem" \
		--resolve "mail.a.test:$NP:127.0.0.1" -o "$W/out/curl.bin" \
		-w '%{speed_download} %{size_download}\n' \
		"https://mail.a.test:$NP/big.bin" >"$W/curl$r.out" 2>"$W/curl$r.err" ||
		{ ng_status="FAILED: curl: $(tail -1 "$W/curl$r.err")"; return 1; }
	t1=$(now)
	sha=$(sha256sum "$W/out/curl.bin" | cut -d' ' -f1)
	t2=$(now)
	dg=$(openssl dgst -sha256 -r "$W/out/curl.bin" | cut -d' ' -f1)
	t3=$(now)
	sync "$W/out/curl.bin"
	t4=$(now)
	rm -f "$W/out/curl.bin"
	[ "$sha" = "$want" ] && [ "$dg" = "$want" ] ||
		{ ng_status="FAILED: curl's download differs"; return 1; }
	read -r sp _ <"$W/curl$r.out"
	NG_CURL+=("$(calc "$sp / 1e6")")
	NG_WALL+=("$(calc "$SIZE / 1e6 / ($t1 - $t0)")")
	NG_SHA+=("$(calc "$SIZE / 1e6 / ($t2 - $t0)")")
	NG_DGST+=("$(calc "$SIZE / 1e6 / ($t1 - $t0 + $t3 - $t2)")")
	NG_SYNC+=("$(calc "$SIZE / 1e6 / ($t1 - $t0 + $t4 - $t2)")")
	NG_NOTES+=("fetch $r: curl ${NG_CURL[-1]} MB/s, wall $(calc "$t1 - $t0" 2) s; sha256sum $(calc "$t2 - $t1" 2) s; openssl dgst -sha256 $(calc "$t3 - $t2" 2) s; sync $(calc "$t4 - $t3" 2) s")
	return 0
}

ng_on=0
if [ "$NGINX" = 1 ]; then
	ng_ready && ng_start && ng_on=1
else
	ng_status="skipped: NGINX=0"
fi
for r in $(seq "$REPEAT"); do
	ours_fetch "$r"
	if [ "$ng_on" = 1 ] && ! ng_fetch "$r"; then
		ng_on=0
	fi
done
if [ -n "$NPID" ]; then
	NG_RSS=$(peak_rss_kib "$NPID")
	kill "$NPID" 2>/dev/null; wait "$NPID" 2>/dev/null; forget "$NPID"
	if [ "$ng_on" = 1 ]; then
		NG_TLS=$(grep -o 'SSL connection using .*' "$W/curl1.err" | head -1)
		ng_status="ok (nginx $("$NGINX_BIN" -v 2>&1 | sed 's/.*nginx\///'), $(curl --version | head -1 | cut -d' ' -f1-2))"
	fi
fi
RSS_A1=$(peak_rss_kib "$APID"); RSS_B1=$(peak_rss_kib "$BPID")
CUR_A1=$(awk '/^VmRSS/ {print $2}' "/proc/$APID/status")

if [ -n "${PERF_OUT:-}" ]; then
	mkdir -p "$PERF_OUT"
	echo "attachment.sh: one more fetch under perf record -> $PERF_OUT" >&2
	perf record -q -g -F 999 -o "$PERF_OUT/perf-server.data" -p "$APID" >/dev/null 2>&1 &
	PP=$!; PIDS+=("$PP")
	sleep 0.5
	timeout 600 perf record -q -g -F 999 -o "$PERF_OUT/perf-client.data" -- \
		"$CLIENT" --config "$W/bob@b.test.cconf" attachment fetch "$bid" big.bin \
		--out "$W/out" >"$W/fetch-perf.out" 2>&1
	kill -INT "$PP" 2>/dev/null; wait "$PP" 2>/dev/null; forget "$PP"
	rm -f "$W/out/big.bin" "$W/out/big.bin.part"
	for x in server client; do
		{
			echo "== $(grep '^received' "$W/fetch-perf.out")"
			echo "== self time by library"
			perf report -i "$PERF_OUT/perf-$x.data" --no-children --sort dso \
				-g none --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15
			echo "== self time by function"
			perf report -i "$PERF_OUT/perf-$x.data" --no-children --sort dso,symbol \
				-g none --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
			echo "== time including callees (named functions)"
			perf report -i "$PERF_OUT/perf-$x.data" --children --sort symbol \
				-g none --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' |
				grep -v '\] 0x0000' | head -60
		} >"$PERF_OUT/perf-$x.txt"
	done
fi

rm -f "$W/big.bin" "$W/nginx/www/big.bin"

# ======================================================================
# 2. Bytes between the servers: RCPT_SIZE_MIB to RCPTS recipients
# ======================================================================
RSIZE=$((RCPT_SIZE_MIB * 1048576))
rcpt_args=(--to "${RLIST[0]}")
for u in "${RLIST[@]:1}"; do rcpt_args+=(--cc "$u"); done
bigfile "$W/r.bin" "$RCPT_SIZE_MIB"
rwant=$(sha256sum "$W/r.bin" | cut -d' ' -f1)
t0=$(now)
printf 'for all of you\n' | C alice@a.test send "${rcpt_args[@]}" --subject "many" \
	--on-demand "$W/r.bin" - >"$W/send-many.out" 2>&1 || fail "send many: $(cat "$W/send-many.out")"
RUPLOAD_S=$(calc "$(now) - $t0" 2)
rsid=$(grep -o 'urn:uuid:[0-9a-f-]*' "$W/send-many.out" | head -1)
wait_deliver "$rsid" 60 || fail "the message to $RCPTS recipients did not reach b.test"
D_OD=$(deliver_bytes "$rsid")
grep "deliver $rsid from a.test" "$W/b.test.log" | grep -q ": $RCPTS accepted" ||
	fail "not $RCPTS accepted: $(grep "deliver $rsid" "$W/b.test.log")"

# FETCHERS of them fetch it, one after the other.
FETCH_S=0
for u in "${RLIST[@]:0:$FETCHERS}"; do
	wait_for "$u" "many" 30 || fail "$u does not list the message"
	mkdir -p "$W/out/$u"
	id=$(first_id "$u" "many")
	t0=$(now)
	C "$u" attachment fetch "$id" r.bin --out "$W/out/$u" >"$W/fetch-$u.out" 2>&1 ||
		fail "$u fetch: $(cat "$W/fetch-$u.out")"
	FETCH_S=$(calc "$FETCH_S + $(now) - $t0" 2)
	[ "$(sha256sum "$W/out/$u/r.bin" | cut -d' ' -f1)" = "$rwant" ] || fail "$u: file differs"
	rm -rf "${W:?}/out/$u"
done
# What a.test's log says they pulled (the plugin logs every fetch).
FETCHED=$(grep "fetched by r[0-9]*@b.test: " "$W/a.test.log" |
	sed -n 's/.*fetched by r[0-9]*@b.test: \([0-9]*\) bytes.*/\1/p' | awk '{s += $1} END {print s + 0}')
NFETCH=$(grep -c "fetched by r[0-9]*@b.test: $RSIZE bytes at 0" "$W/a.test.log")
RSS_A2=$(peak_rss_kib "$APID"); RSS_B2=$(peak_rss_kib "$BPID")

# Inline: the same recipients, INLINE_KIB sizes, default limits.
bigfile "$W/src.bin" 10
IN_KIB=(); IN_D=()
for k in $INLINE_KIB; do
	head -c $((k * 1024)) "$W/src.bin" >"$W/in$k.bin"
	printf 'inline\n' | C alice@a.test send "${rcpt_args[@]}" --subject "inline $k" \
		--attach "$W/in$k.bin" - >"$W/send-in$k.out" 2>&1 ||
		fail "send inline $k KiB: $(cat "$W/send-in$k.out")"
	isid=$(grep -o 'urn:uuid:[0-9a-f-]*' "$W/send-in$k.out" | head -1)
	wait_deliver "$isid" 60 || fail "the inline $k KiB message did not reach b.test"
	IN_KIB+=("$k"); IN_D+=("$(deliver_bytes "$isid")")
done
# ... and one recipient reads the largest: it arrives whole and verified.
k=${IN_KIB[-1]}
u=${RLIST[0]}
wait_for "$u" "inline $k" 30 || fail "$u does not list the inline message"
mkdir -p "$W/out/inline"
C "$u" read "$(first_id "$u" "inline $k")" --save-attachments "$W/out/inline" >"$W/read-inline.out" 2>&1 ||
	fail "read inline: $(tail -3 "$W/read-inline.out")"
cmp -s "$W/out/inline/in$k.bin" "$W/in$k.bin" || fail "the inline attachment read back differs"
INLINE_READ="read back by $u and verified"
# The largest inline attachment that is sent, delivered and read back,
# to INLINE_STEP KiB (bisection from the last measured size up to the
# envelope limit).  A probe that b.test refuses stays in a.test's queue
# until it bounces; nothing here waits for that.
probe_why=""
inline_try() {  # KiB -> 0: it went through; else probe_why says where not
	local k=$1 s u=${RLIST[0]}
	head -c $(($1 * 1024)) "$W/src.bin" >"$W/probe.bin"
	if ! printf 'probe\n' | C alice@a.test send "${rcpt_args[@]}" --subject "probe $k" \
		--attach "$W/probe.bin" - >"$W/probe.out" 2>&1; then
		probe_why="refused: $(grep -m1 'wsemail:' "$W/probe.out" | cut -c1-100)"
		return 1
	fi
	s=$(grep -o 'urn:uuid:[0-9a-f-]*' "$W/probe.out" | head -1)
	if ! wait_deliver "$s" 15; then
		probe_why="b.test did not take the Deliver: $(grep -v ' deliver ' "$W/a.test.log" | tail -1 | cut -c1-140)"
		return 1
	fi
	PROBE_D=$(deliver_bytes "$s")
	wait_for "$u" "probe $k" 30 || { probe_why="not listed"; return 1; }
	rm -rf "$W/out/probe"; mkdir -p "$W/out/probe"
	if ! C "$u" read "$(first_id "$u" "probe $k")" --save-attachments "$W/out/probe" \
		>"$W/probe-read.out" 2>&1 || ! cmp -s "$W/out/probe/probe.bin" "$W/probe.bin"; then
		probe_why="the recipient cannot read it: $(grep -m1 'wsemail:' "$W/probe-read.out" | cut -c1-120)"
		return 1
	fi
	return 0
}
INLINE_MAX_KIB=${IN_KIB[-1]}; INLINE_MAX_D=${IN_D[-1]}; INLINE_FAIL="(not searched further: INLINE_STEP=0)"
if [ "$INLINE_STEP" -gt 0 ]; then
	lo=${IN_KIB[-1]}; hi=10240; hi_why="the client refuses it (the envelope would pass 10 MiB)"
	while [ $((hi - lo)) -gt "$INLINE_STEP" ]; do
		mid=$(( (lo + hi) / 2 / $INLINE_STEP * $INLINE_STEP ))
		[ "$mid" -le "$lo" ] && mid=$((lo + $INLINE_STEP))
		if inline_try "$mid"; then
			lo=$mid; INLINE_MAX_D=$PROBE_D
		else
			hi=$mid; hi_why=$probe_why
		fi
	done
	INLINE_MAX_KIB=$lo
	INLINE_FAIL="at $hi KiB: $hi_why"
fi
rm -rf "$W/out/probe" "$W/probe.bin"
# Inline at RCPT_SIZE_MIB: what the client says.
if printf 'inline\n' | C alice@a.test send --to "${RLIST[0]}" --subject "inline big" \
	--attach "$W/r.bin" - >"$W/send-inbig.out" 2>&1; then
	INLINE_BIG="ACCEPTED (unexpected)"
else
	INLINE_BIG="refused: $(grep -m1 wsemail: "$W/send-inbig.out" | sed "s|$W/||g" | cut -c1-110)"
fi
rm -f "$W/r.bin" "$W/src.bin" "$W"/in*.bin

# Per-byte slope and fixed part of an inline Deliver, from the first and
# last measured sizes; extrapolated to RCPT_SIZE_MIB (computed).
k0=${IN_KIB[0]}; k1=${IN_KIB[-1]}; d0=${IN_D[0]}; d1=${IN_D[-1]}
SLOPE=$(calc "($d1 - $d0) / (($k1 - $k0) * 1024)" 4)
FIXED=$(calc "$d0 - $SLOPE * $k0 * 1024" 0)
D_IN=$(calc "$FIXED + $SLOPE * $RSIZE" 0)
# FetchMessage returns the stored Deliver envelope in base64.
read_bytes() { calc "4 * int(($1 + 2) / 3)" 0; }
R_OD=$(read_bytes "$D_OD"); R_IN=$(read_bytes "$D_IN")
SMTP=$(calc "int(($RSIZE + 2) / 3) * 4 * 78 / 76" 0)

# ======================================================================
# Report
# ======================================================================
m_cli=$(median "${OURS_CLI[@]}"); m_wall=$(median "${OURS_WALL[@]}")
echo
echo "1. fetch $SIZE_MIB MiB from the sender's server ($REPEAT runs, MB/s = 10^6 bytes/s, median)"
printf '   %-58s %8s\n' "WSEmail, as the client prints it (SHA-256 on the way)" "$m_cli"
printf '   %-58s %8s\n' "WSEmail, wall time of 'wsemail attachment fetch'" "$m_wall"
if [ "${#NG_CURL[@]}" -gt 0 ]; then
	m_nc=$(median "${NG_CURL[@]}"); m_nw=$(median "${NG_WALL[@]}")
	m_ns=$(median "${NG_SHA[@]}"); m_nd=$(median "${NG_DGST[@]}"); m_ny=$(median "${NG_SYNC[@]}")
	printf '   %-58s %8s\n' "nginx -> curl, as curl prints it" "$m_nc"
	printf '   %-58s %8s\n' "nginx -> curl, wall time" "$m_nw"
	printf '   %-58s %8s\n' "nginx -> curl, wall time + sha256sum" "$m_ns"
	printf '   %-58s %8s\n' "nginx -> curl, wall time + openssl dgst -sha256" "$m_nd"
	printf '   %-58s %8s\n' "nginx -> curl, wall time + openssl dgst -sha256 + sync FILE" "$m_ny"
	RATIO_CLI=$(calc "$m_cli / $m_nc" 2)
	RATIO_FAIR=$(calc "$m_wall / $m_ns" 2)
	RATIO_STRICT=$(calc "$m_wall / $m_ny" 2)
	echo "   ratio ours/nginx (target >= 0.70): client-printed / curl-printed $RATIO_CLI;"
	echo "     wall / (curl + sha256sum) $RATIO_FAIR; wall / (curl + openssl dgst) $(calc "$m_wall / $m_nd" 2); wall / (curl + openssl dgst + sync) $RATIO_STRICT"
fi
printf '   %s\n' "${OURS_NOTES[@]}"
[ "${#NG_NOTES[@]}" -gt 0 ] && printf '   nginx %s\n' "${NG_NOTES[@]}"
echo "   upload (send --on-demand: hashing + UploadAttachment): $UPLOAD_S s = $(calc "$SIZE / 1e6 / $UPLOAD_S") MB/s; sha256sum of the source: $SHA_SRC_S s; the Deliver carried $BIG_DELIVER bytes"
echo "   a.test RSS: peak (VmHWM) after the upload $(calc "$RSS_A0 / 1024") MiB, after the fetches $(calc "$RSS_A1 / 1024") MiB, now (VmRSS) $(calc "$CUR_A1 / 1024") MiB"
echo "   peak RSS (VmHWM) after the fetches: a.test $(calc "$RSS_A1 / 1024") MiB, b.test $(calc "$RSS_B1 / 1024") MiB${NG_RSS:+; nginx $(calc "$NG_RSS / 1024") MiB}"
echo "   nginx: $ng_status${NG_TLS:+; curl: $NG_TLS}"
echo
echo "2. $RCPT_SIZE_MIB MiB ($RSIZE bytes) to $RCPTS recipients at b.test"
echo "   on demand: the Deliver a.test -> b.test: $D_OD bytes (measured); upload $RUPLOAD_S s"
echo "   $FETCHERS recipients fetched it: a.test logged $NFETCH full fetches, $FETCHED bytes ($(mb "$FETCHED") MB) in $FETCH_S s"
for i in "${!IN_KIB[@]}"; do
	echo "   inline ${IN_KIB[$i]} KiB: the Deliver a.test -> b.test: ${IN_D[$i]} bytes (measured), $(calc "${IN_D[$i]} / (${IN_KIB[$i]} * 1024)" 3) x the attachment"
done
echo "   inline ${IN_KIB[-1]} KiB: $INLINE_READ (default limits: max_message_bytes 10 MiB)"
echo "   largest inline attachment sent, delivered and read back: $INLINE_MAX_KIB KiB (Deliver $INLINE_MAX_D bytes); $INLINE_FAIL"
echo "   inline overhead: $SLOPE bytes per attachment byte + $FIXED bytes; at $RCPT_SIZE_MIB MiB: $D_IN bytes (COMPUTED)"
echo "   inline $RCPT_SIZE_MIB MiB in fact: $INLINE_BIG"
echo "   SMTP (COMPUTED): base64 MIME, 76-character lines: $SMTP bytes once per recipient domain; the same again per reader from the recipient's server"
echo
echo "   bytes moved (MB = 10^6 bytes); on demand: Deliver measured, fetches $RCPT_SIZE_MIB MiB each (payload, TLS/HTTP framing not counted);"
echo "   inline: COMPUTED from the measured slope; reading a message moves its Deliver envelope in base64 (FetchMessage), COMPUTED"
printf '   %-11s | %-35s | %-48s\n' "" "on demand" "inline (computed; in fact refused above $INLINE_MAX_KIB KiB$([ "$INLINE_STEP" -gt 0 ] || echo ' or less'))"
printf '   %-11s | %10s %12s %11s | %10s %12s %11s %11s\n' "fetch (n)" "a<->b" "a->clients" "b->clients" "a<->b" "a->clients" "b->clients" "SMTP a<->b"
for f in 0 10 100; do
	n=$(( (RCPTS * f + 50) / 100 ))
	printf '   %4s %-6s | %10s %12s %11s | %10s %12s %11s %11s\n' "$f%" "($n)" \
		"$(mb "$D_OD" 3)" "$(mb "$(calc "$n * $RSIZE" 0)")" "$(mb "$(calc "$n * $R_OD" 0)" 2)" \
		"$(mb "$D_IN")" "0" "$(mb "$(calc "$n * $R_IN" 0)")" "$(mb "$SMTP")"
done
echo "   peak RSS (VmHWM) at the end: a.test $(calc "$RSS_A2 / 1024") MiB, b.test $(calc "$RSS_B2 / 1024") MiB"
echo
echo "== summary =="
echo "   fetch $SIZE_MIB MiB: ours $m_cli MB/s (client), $m_wall MB/s (wall); nginx+curl ${m_nc:--} MB/s (curl), ${m_ns:--} MB/s (wall + sha256sum), ${m_ny:--} (wall + openssl dgst + sync)"
echo "   ratio ours/nginx: ${RATIO_CLI:--} (client/curl), ${RATIO_FAIR:--} (wall/curl+sha256sum), ${RATIO_STRICT:--} (wall/curl+openssl dgst+sync); target >= 0.70"
echo "   $RCPT_SIZE_MIB MiB to $RCPTS: Deliver on demand $D_OD bytes; inline $D_IN bytes (computed; measured ${IN_D[-1]} at ${IN_KIB[-1]} KiB); SMTP $SMTP (computed)"
echo "   config: $bt build, threads=4 per server, sqlite store, ondemand plugin defaults"
echo "   (load average after: $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "reproduce: SIZE_MIB=$SIZE_MIB REPEAT=$REPEAT RCPTS=$RCPTS RCPT_SIZE_MIB=$RCPT_SIZE_MIB FETCHERS=$FETCHERS INLINE_KIB=\"$INLINE_KIB\" INLINE_STEP=$INLINE_STEP$([ "$NGINX" = 1 ] || echo " NGINX=$NGINX") bash bench/attachment.sh $B"
exit 0
