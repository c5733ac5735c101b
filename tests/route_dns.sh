#!/usr/bin/env bash
# route_dns.sh - routing against a real DNS server: starts dnsmasq on
# 127.0.0.1 at a free high port, authoritative for the *.test zones below
# and for nothing else, then runs tests/test_route with WSE_TEST_DNS set so
# that its DNS cases run (none may be skipped).
# Environment: WSE_BUILD_ROOT (the meson build directory).
#
# Zones served (dnsmasq --local=/test/: NXDOMAIN for unknown *.test names,
# REFUSED for names outside .test since there is no upstream):
#   _wsemail._tcp.a.test      SRV 10 60 7001 mail1.a.test
#                             SRV 10 30 7002 mail2.a.test
#                             SRV 20  0 7003 mail3.a.test
#                             SRV 30  0 7004 ghost.a.test   (no address)
#   mail1.a.test A 127.0.0.1, AAAA ::1; mail2.a.test A 127.0.0.2;
#   mail3.a.test AAAA ::1
#   _wsemail._tcp.none.test   SRV "." (no service)
#   _wsemail._tcp.mixed.test  SRV "." and SRV 10 10 7002 mail2.a.test
#   _wsemail._tcp.nodata.test TXT only (NODATA for SRV)
#   _wsemail._tcp.noaddr.test SRV 10 10 7004 ghost.a.test
set -u

build=${WSE_BUILD_ROOT:?WSE_BUILD_ROOT is not set}
prog="$build/tests/test_route"
dnsmasq=/usr/sbin/dnsmasq
if [ ! -x "$prog" ]; then
	echo "route_dns: $prog is missing" >&2
	exit 1
fi
if [ ! -x "$dnsmasq" ]; then
	echo "route_dns: $dnsmasq is missing (Debian package dnsmasq-base)" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/route_dns.XXXXXX") || exit 1
pidfile="$tmp/dnsmasq.pid"
log="$tmp/dnsmasq.log"
out="$tmp/test_route.out"
wrapper_pid=""

# Stop dnsmasq by its PIDs only: the timeout(1) wrapper we started (it
# passes the signal on) and the daemon's own pid file, if it is dnsmasq.
stop_dnsmasq() {
	local pid
	if [ -s "$pidfile" ]; then
		pid=$(cat "$pidfile" 2>/dev/null)
		if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dnsmasq ]; then
			kill "$pid" 2>/dev/null
		fi
	fi
	if [ -n "$wrapper_pid" ]; then
		kill "$wrapper_pid" 2>/dev/null
		wait "$wrapper_pid" 2>/dev/null
		wrapper_pid=""
	fi
	rm -f "$pidfile"
}
cleanup() {
	stop_dnsmasq
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

user_args=()
if [ "$(id -u)" = 0 ]; then
	# keep root's files readable for the daemon; nothing else is served
	user_args=(--user="$(id -un)" --group="$(id -gn)")
fi

# start_dnsmasq PORT: 0 when it listens, 1 when it failed (port taken?)
start_dnsmasq() {
	local port=$1 i
	rm -f "$pidfile" "$log"
	# timeout bounds the daemon even if this script is killed outright
	timeout -k 5 280 "$dnsmasq" --keep-in-foreground \
	    --conf-file=/dev/null --pid-file="$pidfile" \
	    --log-facility="$log" --log-queries "${user_args[@]}" \
	    --port="$port" --listen-address=127.0.0.1 --bind-interfaces \
	    --no-resolv --no-hosts --no-poll --local=/test/ \
	    --srv-host=_wsemail._tcp.a.test,mail1.a.test,7001,10,60 \
	    --srv-host=_wsemail._tcp.a.test,mail2.a.test,7002,10,30 \
	    --srv-host=_wsemail._tcp.a.test,mail3.a.test,7003,20,0 \
	    --srv-host=_wsemail._tcp.a.test,ghost.a.test,7004,30,0 \
	    --host-record=mail1.a.test,127.0.0.1,::1 \
	    --host-record=mail2.a.test,127.0.0.2 \
	    --host-record=mail3.a.test,::1 \
	    --srv-host=_wsemail._tcp.none.test \
	    --srv-host=_wsemail._tcp.mixed.test \
	    --srv-host=_wsemail._tcp.mixed.test,mail2.a.test,7002,10,10 \
	    --txt-record=_wsemail._tcp.nodata.test,"no service here" \
	    --srv-host=_wsemail._tcp.noaddr.test,ghost.a.test,7004,10,10 \
	    >"$tmp/dnsmasq.stderr" 2>&1 &
	wrapper_pid=$!
	for i in $(seq 1 100); do
		if ! kill -0 "$wrapper_pid" 2>/dev/null; then
			wait "$wrapper_pid" 2>/dev/null
			wrapper_pid=""
			return 1
		fi
		if [ -s "$pidfile" ] &&
		    timeout 5 ss -Hlun "sport = :$port" 2>/dev/null | grep -q .; then
			return 0
		fi
		sleep 0.1
	done
	stop_dnsmasq
	return 1
}

port=""
for attempt in 1 2 3 4 5 6 7 8 9 10; do
	p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
	if start_dnsmasq "$p"; then
		port=$p
		break
	fi
done
if [ -z "$port" ]; then
	echo "route_dns: could not start dnsmasq on 127.0.0.1" >&2
	sed 's/^/    /' "$tmp/dnsmasq.stderr" "$log" 2>/dev/null >&2
	exit 1
fi

failed=0
WSE_TEST_DNS="127.0.0.1:$port" CMOCKA_MESSAGE_OUTPUT=stdout \
    timeout -k 5 180 "$prog" >"$out" 2>&1
rc=$?
cat "$out"
if [ "$rc" -ne 0 ]; then
	echo "FAIL: test_route exited with $rc" >&2
	failed=1
fi
if grep -q 'SKIPPED\|FAILED' "$out"; then
	echo "FAIL: test_route skipped or failed cases with WSE_TEST_DNS set" >&2
	failed=1
fi
passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\.$/\1/p' "$out")
run=$(sed -n 's/^\[==========\] \([0-9]*\) test(s) run\.$/\1/p' "$out")
if [ -z "$passed" ] || [ "$passed" != "$run" ]; then
	echo "FAIL: passed '${passed}' of '${run}' cases" >&2
	failed=1
fi
# the cases really asked this server
if ! grep -q 'query\[SRV\] _wsemail._tcp.a.test' "$log" ||
    ! grep -q 'query\[AAAA\] mail1.a.test' "$log"; then
	echo "FAIL: dnsmasq saw no SRV/AAAA queries" >&2
	failed=1
fi
if ! kill -0 "$wrapper_pid" 2>/dev/null; then
	echo "FAIL: dnsmasq died during the tests" >&2
	failed=1
fi
if [ "$failed" -ne 0 ]; then
	echo "--- dnsmasq log (last lines)" >&2
	tail -n 40 "$log" >&2
	exit 1
fi
echo "route_dns: ${passed} checks passed"
exit 0
