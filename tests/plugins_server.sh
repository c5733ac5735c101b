#!/usr/bin/env bash
# plugins_server.sh - wsemaild's external plugins (lib/plugin.h) on loopback:
# one domain (a.test) with a PKI minted here, the three example plugins
# (quarantine, autoreply, serverinfo, loaded in that order), the wsemail
# client, and tests/plugin_call for the operation the client does not know.
# Checks: the plugins load (log) and `wsemaild -t` accepts them; ServerInfo
# answers (signed, password profile), refuses a wrong password and a bad
# request, and is in the WSDL; an unknown operation is still Unsupported;
# autoreply sends exactly one reply for two messages from one sender, none
# to reports and none to auto-replies (no loop); quarantine takes a message
# for every recipient (nothing stored, no report, later plugins not
# called); a clean shutdown unloads them; and wsemaild refuses to start
# (exit status 1, a clear message) with a plugin of another ABI version, a
# duplicate operation, a built-in operation's name, a missing file, a
# relative path and a failing init; and what a plugin may queue through
# host->submit (tests/plugins/submitter.c): only messages from its own
# domain, with recipients and known flags.
# Needs: WSE_BUILD_ROOT (meson sets it).  Every process it starts is
# stopped by PID on exit.
set -uo pipefail
T=plugins_server
KDF_ITERATIONS=1000	# cheap test users (tests/lib.sh)
B=${WSE_BUILD_ROOT:?}
. "$(dirname "$0")/lib.sh"
CALL=$B/tests/plugin_call
PLUG=$B/plugins
for p in "$CALL" "$PLUG/autoreply.so" "$PLUG/serverinfo.so" \
    "$PLUG/quarantine.so" "$B/tests/badabi.so" "$B/tests/clash.so" \
    "$B/tests/submitter.so"; do
	[ -e "$p" ] || fail "$p is missing"
done

PA=$(free_port)
URL="https://mail.a.test:$PA/wsemail"
t_pki a.test
conf() {  # plugin lines...: a.test.conf with these plugins
	local l p=""
	for l in "$@"; do p+="plugin = $l"$'\n'; done
	t_conf a.test "$PA" "$p[limits]
max_message_bytes = 1048576"
}
conf "$PLUG/quarantine.so [SPAM]" \
	"$PLUG/autoreply.so bob@a.test=On holiday until Monday; alice@a.test=Out of office" \
	"$PLUG/serverinfo.so"

# ---- wsemaild -t loads, initialises and unloads them ----
timeout 30 "$SERVER" -t "$W/a.test.conf" >"$W/t.out" 2>"$W/t.err" ||
	fail "wsemaild -t refused the plugins: $(cat "$W/t.err")"
grep -q "configuration of a.test is valid" "$W/t.out" || fail "-t: $(cat "$W/t.out")"
for p in quarantine autoreply serverinfo; do
	grep -q "plugin $p loaded" "$W/t.err" || fail "-t: $p not loaded"
	grep -q "plugin $p unloaded" "$W/t.err" || fail "-t: $p not unloaded"
done
ok "wsemaild -t loads, initialises and unloads the three plugins"

t_start a.test; SPID=$LAST_PID
grep -q "plugin quarantine loaded from $PLUG/quarantine.so (message hook, no submit hook; operations: none)" "$W/a.test.log" &&
	grep -q "plugin autoreply loaded from $PLUG/autoreply.so (message hook, no submit hook; operations: none)" "$W/a.test.log" &&
	grep -q "plugin serverinfo loaded from $PLUG/serverinfo.so (no message hook, no submit hook; operations: ServerInfo)" "$W/a.test.log" ||
	fail "load lines missing"
grep -q "plugin autoreply: answering for 2 address(es)" "$W/a.test.log" || fail "autoreply init log"
ok "server started with its plugins (one log line each)"

t_users a.test alice@a.test bob@a.test carol@a.test dave@a.test
for u in alice@a.test bob@a.test carol@a.test dave@a.test; do t_client "$u"; done
P() { timeout 60 "$CALL" --server "$URL" --connect 127.0.0.1 --roots "$W/pki/root/cert.pem" "$@"; }
count() {  # user pattern
	C "$1" list 2>/dev/null | grep -c -- "$2"
}
wait_log() {  # pattern seconds
	for _ in $(seq $(($2 * 10))); do
		grep -q -- "$1" "$W/a.test.log" && return 0
		sleep 0.1
	done
	return 1
}

# ---- RPC-like: ServerInfo ----
P --user alice@a.test --op ServerInfo >"$W/si.out" 2>"$W/si.err" || fail "ServerInfo: $(cat "$W/si.out" "$W/si.err")"
head -1 "$W/si.out" | grep -qx OK || fail "ServerInfo: $(cat "$W/si.out")"
grep -q "<m:Domain>a.test</m:Domain>" "$W/si.out" &&
	grep -q "<m:Software>wsemaild [0-9]" "$W/si.out" &&
	grep -q "<m:PluginAbi>wsemail-plugin-abi-3</m:PluginAbi>" "$W/si.out" ||
	fail "ServerInfo content: $(cat "$W/si.out")"
order=$(grep -o 'Plugin name="[a-z]*"' "$W/si.out" | tr '\n' ' ')
[ "$order" = 'Plugin name="quarantine" Plugin name="autoreply" Plugin name="serverinfo" ' ] ||
	fail "ServerInfo plugin list: $order"
grep -q '<m:Plugin name="serverinfo" message="false"><m:Operation>ServerInfo</m:Operation></m:Plugin>' "$W/si.out" ||
	fail "ServerInfo operations: $(cat "$W/si.out")"
ok "ServerInfo: domain, software, ABI and the plugins in load order (signed answer verified)"

out=$(WSEMAIL_PASSWORD=wrong-password P --user alice@a.test --op ServerInfo 2>&1)
[ "$out" = "FAULT NotAuthorized" ] || fail "wrong password: $out"
out=$(P --user alice@a.test --op ServerInfo --payload '<m:Other xmlns:m="urn:wsemail:2026"/>' 2>&1)
[ "$out" = "FAULT InvalidMessage" ] || fail "bad ServerInfo request: $out"
out=$(P --user alice@a.test --op NoSuchOperation 2>&1)
[ "$out" = "FAULT Unsupported" ] || fail "unknown operation: $out"
ok "ServerInfo refuses a wrong password and a bad request; unknown operations stay Unsupported"

code=$(timeout 30 curl -s -o "$W/wsdl.xml" -w '%{http_code}' --cacert "$W/pki/root/cert.pem" \
	--resolve "mail.a.test:$PA:127.0.0.1" "$URL?wsdl")
[ "$code" = 200 ] && grep -q 'soapAction="urn:wsemail:2026/ServerInfo"' "$W/wsdl.xml" &&
	grep -q 'soapAction="urn:wsemail:2026/Submit"' "$W/wsdl.xml" || fail "WSDL: $code"
ok "the WSDL lists the plugin's operation next to the built-in ones"

# ---- message-dependent, not consuming: autoreply ----
printf 'first\n' | C carol@a.test send --to bob@a.test --subject "hello 1" - >/dev/null || fail "carol send 1"
printf 'second\n' | C carol@a.test send --to bob@a.test --subject "hello 2" - >/dev/null || fail "carol send 2"
wait_for bob@a.test "hello 2" 15 && wait_for bob@a.test "hello 1" 2 || fail "bob did not get both messages"
wait_for carol@a.test "Auto: hello" 15 || fail "no auto-reply to carol"
sleep 2
n=$(count carol@a.test "Auto:")
[ "$n" = 1 ] || fail "$n auto-replies to carol for two messages"
C carol@a.test list | grep -q "bob@a.test" || fail "the auto-reply is not from bob"
ok "autoreply: both messages stored for bob, exactly one reply to carol"

printf 'lunch?\n' | C alice@a.test send --to bob@a.test --subject "lunch" - >/dev/null || fail "alice send"
wait_for alice@a.test "Auto: lunch" 15 || fail "no auto-reply to alice"
sleep 2
n=$(count bob@a.test "Auto:")
[ "$n" = 0 ] || fail "alice's autoreply answered bob's auto-reply ($n)"
n=$(grep -c "plugin autoreply: replied" "$W/a.test.log")
[ "$n" = 2 ] || fail "$n replies logged, want 2"
ok "no loop: alice's autoreply does not answer bob's auto-reply"

printf 'x\n' | C alice@a.test send --to nobody@a.test --subject "to nobody" - >/dev/null || fail "send to nobody"
wait_for alice@a.test "Undeliverable: to nobody" 15 || fail "no bounce to alice"
sleep 2
n=$(grep -c "plugin autoreply: replied" "$W/a.test.log")
[ "$n" = 2 ] || fail "autoreply answered a non-delivery report"
ok "autoreply never answers a non-delivery report"

# ---- message-dependent, consuming: quarantine ----
printf 'buy\n' | C dave@a.test send --to bob@a.test --cc carol@a.test --subject "[SPAM] cheap watches" - >/dev/null ||
	fail "dave send spam"
wait_log "plugin quarantine: refused .* (dave@a.test) for bob@a.test,carol@a.test" 15 || fail "quarantine did not log"
grep -q "plugin quarantine took .* for bob@a.test" "$W/a.test.log" || fail "no 'took' line"
wait_log "deliver .* (dave@a.test): 2 accepted (2 taken by plugins), 0 rejected" 5 || fail "deliver line"
printf 'hi\n' | C dave@a.test send --to bob@a.test --subject "not spam" - >/dev/null || fail "dave send"
wait_for bob@a.test "not spam" 15 || fail "bob did not get dave's normal message"
sleep 1
[ "$(count bob@a.test 'cheap watches')" = 0 ] && [ "$(count carol@a.test 'cheap watches')" = 0 ] ||
	fail "quarantined message stored"
[ "$(count dave@a.test 'Undeliverable')" = 0 ] || fail "dave got a report for a quarantined message"
[ "$(count dave@a.test 'Auto: \[SPAM\]')" = 0 ] || fail "autoreply saw a message quarantine had taken"
[ "$(count dave@a.test 'Auto: not spam')" = 1 ] || fail "no auto-reply for dave's normal message"
ok "quarantine takes the message for every recipient: nothing stored, no report, autoreply not called"

# ---- clean shutdown ----
t_stop "$SPID"
rc=$?
[ "$rc" = 0 ] || fail "server exit status $rc after SIGTERM"
for p in serverinfo autoreply quarantine; do
	grep -q "plugin $p unloaded" "$W/a.test.log" || fail "$p not unloaded"
done
ok "SIGTERM: plugins deinitialised and unloaded, exit status 0"

# ---- what the server takes from a plugin (host->submit) ----
conf "$B/tests/submitter.so"
t_start a.test; SPID=$LAST_PID
sub() {  # from [to [flags]]: PluginSubmit's answer (OK or FAULT code)
	local x="<m:PluginSubmit xmlns:m=\"urn:wsemail:2026\"><m:From>$1</m:From>"
	[ -n "${2:-}" ] && x+="<m:To>$2</m:To>"
	[ -n "${3:-}" ] && x+="<m:Flags>$3</m:Flags>"
	P --user carol@a.test --op PluginSubmit --payload "$x</m:PluginSubmit>" 2>&1 | head -1
}
before=$(sqlite3 "$W/a.test.db" 'SELECT count(*) FROM queue')
[ "$(sub mallory@b.test bob@a.test)" = "FAULT NotAuthorized" ] ||
	fail "a plugin submitted as another domain's address"
grep -q "plugin submitter: mallory@b.test is not an address of a.test" "$W/a.test.log" ||
	fail "no reason logged for the foreign sender"
[ "$(sub carol@a.test)" = "FAULT InvalidMessage" ] || fail "a plugin submitted without recipients"
grep -q "plugin submitter: submit without recipients" "$W/a.test.log" || fail "no reason logged (recipients)"
[ "$(sub carol@a.test bob@a.test 0x80)" = "FAULT InvalidMessage" ] || fail "unknown flags accepted"
grep -q "plugin submitter: unknown submit flags 0x80" "$W/a.test.log" || fail "no reason logged (flags)"
[ "$(sqlite3 "$W/a.test.db" 'SELECT count(*) FROM queue')" = "$before" ] || fail "a refused submission was queued"
out=$(sub carol@a.test bob@a.test)
[ "$out" = OK ] || fail "a plugin's own-domain submission refused: $out; $(grep submitter "$W/a.test.log" | tail -2)"
wait_for bob@a.test "from a plugin" 15 || fail "the plugin's message did not reach bob"
t_stop "$SPID" || fail "server exit status after SIGTERM"
ok "host->submit: a plugin's message from another domain, without recipients or with unknown flags is refused and nothing queued; its own-domain message is delivered"

# ---- refusals at start-up ----
refuse() {  # what pattern plugin-lines...
	local what=$1 pat=$2
	shift 2
	conf "$@"
	timeout 30 "$SERVER" "$W/a.test.conf" >"$W/bad.out" 2>"$W/bad.err"
	local rc=$?
	[ "$rc" = 1 ] || fail "$what: exit status $rc, want 1"
	grep -q ready "$W/bad.out" && fail "$what: server became ready"
	grep -q -- "$pat" "$W/bad.err" || fail "$what: message: $(cat "$W/bad.err")"
}
refuse "wrong ABI" "plugin ABI mismatch: it was built for \"wsemail-plugin-abi-0\", this server needs \"wsemail-plugin-abi-3\"" \
	"$PLUG/serverinfo.so" "$B/tests/badabi.so"
ok "a plugin built for another ABI: exit status 1, a clear message"
refuse "duplicate operation" "plugin serverinfo: operation ServerInfo is already taken by plugin serverinfo" \
	"$PLUG/serverinfo.so" "$PLUG/serverinfo.so"
ok "a duplicate operation name is refused at start-up"
refuse "built-in operation" "plugin clash: operation Submit is already taken by a built-in operation" \
	"$B/tests/clash.so"
ok "a plugin taking a built-in operation's name is refused at start-up"
refuse "missing file" "plugin $W/nope.so: cannot load" "$W/nope.so"
refuse "relative path" "bad plugin line" "plugins/serverinfo.so"
ok "a missing plugin file or a relative path is refused"
refuse "failing init" "plugins/quarantine.so: quarantine failed to start (config): quarantine needs a subject prefix" \
	"$PLUG/quarantine.so"
refuse "failing init" "autoreply: x@b.test is not an address of a.test" \
	"$PLUG/autoreply.so x@b.test=hello"
ok "a plugin whose init fails stops the start with its reason"

finish
