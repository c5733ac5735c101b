#!/usr/bin/env bash
# route_dns.sh - routing against a real DNS server: starts dnsmasq on
# 127.0.0.1 at a free high port, authoritative for the *.test zones below
# and for nothing else, then runs tests/test_route with WSE_TEST_DNS set so
# that its DNS cases run (none may be skipped), and with WSE_TEST_DNSMASQ
# set so that its cache cases run their own dnsmasq instances.
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
T=route_dns
B=${WSE_BUILD_ROOT:?WSE_BUILD_ROOT is not set}
. "$(dirname "$0")/lib.sh"
prog="$B/tests/test_route"
[ -x "$prog" ] || fail "$prog is missing"
[ -x /usr/sbin/dnsmasq ] ||
	fail "/usr/sbin/dnsmasq is missing (Debian package dnsmasq-base)"

# dnsmasq logs the queries to $W/dns.log
t_dns --log-queries --no-poll \
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
	--srv-host=_wsemail._tcp.noaddr.test,ghost.a.test,7004,10,10

out="$W/test_route.out"
# the cache cases start dnsmasq instances of their own (with TTLs)
WSE_TEST_DNS="127.0.0.1:$DNS" WSE_TEST_DNSMASQ=/usr/sbin/dnsmasq \
    CMOCKA_MESSAGE_OUTPUT=stdout timeout -k 5 180 "$prog" >"$out" 2>&1
rc=$?
cat "$out"
[ "$rc" -eq 0 ] || nok "test_route exited with $rc"
if grep -q 'SKIPPED\|FAILED' "$out"; then
	nok "test_route skipped or failed cases with WSE_TEST_DNS set"
fi
passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\.$/\1/p' "$out")
total=$(sed -n 's/^\[==========\] \([0-9]*\) test(s) run\.$/\1/p' "$out")
if [ -z "$passed" ] || [ "$passed" != "$total" ]; then
	nok "passed '${passed}' of '${total}' cases"
fi
# the cases really asked this server
if ! grep -q 'query\[SRV\] _wsemail._tcp.a.test' "$W/dns.log" ||
    ! grep -q 'query\[AAAA\] mail1.a.test' "$W/dns.log"; then
	nok "dnsmasq saw no SRV/AAAA queries"
fi
kill -0 "$DNS_PID" 2>/dev/null || nok "dnsmasq died during the tests"
if [ "$failures" -ne 0 ]; then
	echo "--- dnsmasq log (last lines)" >&2
	tail -n 40 "$W/dns.log" >&2
fi
checks=${passed:-0}
finish
