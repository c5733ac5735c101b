#!/usr/bin/env bash
# Instant messages across two domains on loopback (docs/im.md): a PKI
# minted here, dnsmasq with SRV records, two wsemaild servers with the im
# plugin (and the ondemand plugin, which issues tokens), and the wsemail
# client ("im", "listen", "chat", "im-policy", "presence").
# Checks: offline fallback (stored as mail flagged instant, the sender told
# so); online delivery to two sessions of one user, each showing it once,
# verified end to end; reconnect-and-resume (a session stopped while 5
# messages arrive gets exactly those 5, in order, when it comes back; no
# duplicates); policy refusal (block list, nobody, listed): a fault for the
# sender, nothing pushed or stored; a roaming sender (--direct, a token of
# its home server) accepted by the recipient's server; forged senders
# refused (a token of another mailbox, a server speaking for another
# domain); presence (off by default, on for a listed contact); a chat in
# both directions; 1,000 idle push sessions held by one server while it
# still delivers, with its memory measured.
# Needs: WSE_BUILD_ROOT (meson sets it).  Every process it starts is
# stopped by PID on exit.
set -uo pipefail
T=im
KDF_ITERATIONS=1000	# cheap test users (tests/lib.sh)
B=${WSE_BUILD_ROOT:?}
. "$(dirname "$0")/lib.sh"
IMSO=$B/plugins/im.so
ODSO=$B/plugins/ondemand.so
TOOL=$B/tests/imtool
for f in "$IMSO" "$ODSO" "$TOOL"; do [ -f "$f" ] || fail "$f is missing"; done
IDLE=${IDLE:-1000}
GRACE=3		# seconds a session counts as online after its last poll

PA=$(free_port); PB=$(free_port)
t_pki a.test b.test
t_dns a.test="$PA" b.test="$PB"
plugins() {  # domain
	echo "plugin = $ODSO dir=$W/od-$1 ca_cert=$W/pki/$1/ca.pem ca_key=$W/pki/$1/ca-key.pem"
	echo "plugin = $IMSO dir=$W/im-$1 grace=$GRACE"
}
# a.test: room for the burst below (at most threads/2 workers wait on
# other servers; more are refused with TemporaryFailure).
t_conf a.test "$PA" "$(plugins a.test)
threads = 40"
t_conf b.test "$PB" "$(plugins b.test)
threads = 8"
t_start a.test; APID=$LAST_PID
t_start b.test; BPID=$LAST_PID
t_users a.test alice@a.test mallory@a.test
t_users b.test bob@b.test carol@b.test
# Twenty users who hold the idle sessions: a cheap password cost for them.
{ cat "$W/b.test.conf"; printf '[limits]\npbkdf2_iterations = 1000\npbkdf2_min_iterations = 1000\n'; } >"$W/bulk.conf"
idle=""
for i in $(seq -w 1 20); do
	timeout 60 "$ADMIN" --config "$W/bulk.conf" user add "idle$i@b.test" >/dev/null ||
		fail "user add idle$i"
	idle="$idle${idle:+,}idle$i@b.test"
done
for u in alice@a.test mallory@a.test bob@b.test carol@b.test; do
	t_client "$u" "dns_server = 127.0.0.1:$DNS"
done
ok "two servers with the im plugin, 4 + 20 users"

# A session in the background: its output in $W/NAME.out, errors in
# $W/NAME.err; LAST_PID.
listen_bg() {  # address name [more options]
	local u=$1 n=$2; shift 2
	timeout 600 "$CLIENT" --config "$W/$u.cconf" listen --session "$n" "$@" \
		>"$W/$n.out" 2>"$W/$n.err" &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}
# Until FILE holds PATTERN (fixed string); 1 after SECONDS.
wait_line() {  # file pattern seconds
	for _ in $(seq $(($3 * 10))); do
		grep -qF -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# A session is held at the server once it said so, and a moment passed.
wait_listening() {  # name
	wait_line "$W/$1.err" "listening" 30 || fail "session $1 did not start: $(cat "$W/$1.err")"
	sleep 0.5
}
stop_bg() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; forget "$1"; }
count() { grep -cF -- "$2" "$1" 2>/dev/null || true; }
nmsgs() { C "$1" list | tail -1 | awk '{print $1}'; }

# ---- offline fallback ----
run "im to bob, offline" 0 C alice@a.test im bob@b.test "are you there?"
out_has "offline: the sender is told" "bob@b.test: stored as mail (no session online)"
id=$(first_id bob@b.test "alice@a.test")
C bob@b.test list >"$OUT" 2>"$ERR"
if grep -qE "^ *$id NI " "$OUT"; then pass; else nok "list does not flag the instant message with I"; fi
run "bob reads it" 0 C bob@b.test read "$id"
out_has "read: verified" "VALID"
out_lacks "read: verified" "NOT VALID"
out_has "read: the text" "are you there?"
ok "offline fallback: stored as mail flagged instant (list shows I), verified end to end; alice told \"stored\""

# ---- two sessions of bob ----
listen_bg bob@b.test s1; S1=$LAST_PID
listen_bg bob@b.test s2; S2=$LAST_PID
wait_listening s1; wait_listening s2
before=$(nmsgs bob@b.test)
run "im to bob, two sessions" 0 C alice@a.test im bob@b.test "hello both"
out_has "online: pushed to both" "bob@b.test: pushed to 2 session(s)"
for s in s1 s2; do
	wait_line "$W/$s.out" "alice@a.test: hello both (signed by a.test)" 10 ||
		nok "session $s did not show the message: $(cat "$W/$s.out" "$W/$s.err")"
done
sleep 1
for s in s1 s2; do
	[ "$(count "$W/$s.out" "hello both")" = 1 ] || nok "session $s showed it $(count "$W/$s.out" "hello both") times"
done
[ "$(nmsgs bob@b.test)" = "$before" ] || nok "a pushed message was stored too"
ok "online: pushed to bob's two sessions, each shows it once, verified (signed by a.test); not stored"

# ---- a burst: many senders' workers at a.test wait at once, and their
# messages share DeliverBatch calls (docs/im.md); each still arrives
# once, signed by a.test, and each sender is told "pushed" ----
BURST=16
bpids=()
for i in $(seq "$BURST"); do
	C alice@a.test im bob@b.test "burst $i" >"$W/burst$i.out" 2>&1 &
	bpids+=($!)
done
for i in $(seq "$BURST"); do
	wait "${bpids[$((i - 1))]}" || nok "burst $i: $(cat "$W/burst$i.out")"
	grep -qF "bob@b.test: pushed to 2 session(s)" "$W/burst$i.out" || nok "burst $i not pushed: $(cat "$W/burst$i.out")"
done
for i in $(seq "$BURST"); do
	wait_line "$W/s1.out" "alice@a.test: burst $i (signed by a.test)" 10 || nok "s1 missed burst $i"
done
sleep 1
for i in $(seq "$BURST"); do
	for s in s1 s2; do
		n=$(count "$W/$s.out" "alice@a.test: burst $i (signed by a.test)")
		[ "$n" = 1 ] || nok "session $s shows burst $i $n times"
	done
done
[ "$(nmsgs bob@b.test)" = "$before" ] || nok "a pushed burst message was stored"
nb=$(grep -c "instant messages to b.test in one DeliverBatch" "$W/a.test.log" || true)
ok "a burst of $BURST concurrent instant messages: each pushed once to both sessions, signed by a.test ($nb DeliverBatch calls carried some of them)"

echo "typed on stdin" >"$W/stdin.txt"
C alice@a.test im bob@b.test <"$W/stdin.txt" >"$OUT" 2>"$ERR" || nok "im from stdin"
out_has "im from stdin" "bob@b.test: pushed to 2 session(s)"
wait_line "$W/s1.out" "alice@a.test: typed on stdin (signed by a.test)" 10 || nok "text from stdin not shown"
run "a session name in use" 1 C bob@b.test listen --session s1 --once
err_has "a session name in use" "running already"
head -c 65537 /dev/zero | tr '\0' x >"$W/big.txt"
run "too long" 1 C alice@a.test im bob@b.test "$(cat "$W/big.txt")"
err_has "too long" "longer than 65536"
run "no recipient" 2 C alice@a.test im
run "bad recipient" 2 C alice@a.test im "not an address" hi
ok "text from standard input; one run per session name; a text over 64 KiB and bad command lines refused before sending"

# ---- reconnect and resume ----
stop_bg "$S2"
for i in 1 2 3 4 5; do
	C alice@a.test im bob@b.test "resume $i" >"$OUT" 2>"$ERR" || nok "resume $i not sent"
	grep -qF "bob@b.test: pushed to" "$OUT" || nok "resume $i: $(cat "$OUT")"
done
run "s2 comes back" 0 C bob@b.test listen --session s2 --count 5 --timeout 30
grep -F "resume" "$OUT" | sed 's/.*: \(resume [0-9]\) .*/\1/' >"$W/resumed"
printf 'resume %s\n' 1 2 3 4 5 | cmp -s - "$W/resumed" || nok "resumed: $(cat "$W/resumed")"
out_lacks "no duplicate on resume" "hello both"
run "s2 again, nothing pending" 0 C bob@b.test listen --session s2 --once
out_lacks "no duplicates after resume" "resume"
out_lacks "no duplicates after resume" "hello both"
wait_line "$W/s1.out" "resume 5" 10 || nok "s1 missed resume 5"
[ "$(grep -cF "resume" "$W/s1.out")" = 5 ] || nok "s1 shows $(grep -cF resume "$W/s1.out") resume lines"
ok "reconnect: the session stopped during 5 messages gets exactly those 5, in order, then nothing twice"

# ---- policy refusal ----
run "block a.test" 0 C bob@b.test im-policy set --accept anyone --block @a.test
run "policy shown" 0 C bob@b.test im-policy show
out_has "policy shown" "accept: anyone"
out_has "policy shown" "@a.test"
before=$(nmsgs bob@b.test)
run "im to bob, blocked" 1 C alice@a.test im bob@b.test "blocked one"
err_has "blocked: a fault" "NotAuthorized"
run "bob says nobody" 0 C bob@b.test im-policy set --accept nobody
run "im to bob, nobody" 1 C alice@a.test im bob@b.test "nobody one"
err_has "nobody: a fault" "NotAuthorized"
run "bob lists carol only" 0 C bob@b.test im-policy set --accept listed --allow carol@b.test
run "im to bob, not listed" 1 C alice@a.test im bob@b.test "unlisted one"
err_has "listed: a fault" "NotAuthorized"
run "carol is listed" 0 C carol@b.test im bob@b.test "carol listed"
out_has "listed: pushed" "bob@b.test: pushed to"
sleep 1
for w in "blocked one" "nobody one" "unlisted one"; do
	if grep -qF "$w" "$W/s1.out"; then nok "refused \"$w\" was pushed"; else pass; fi
done
[ "$(nmsgs bob@b.test)" = "$before" ] || nok "a refused message was stored"
grep -q "refus" "$W/b.test.log" || nok "no refusal logged at b.test"
wait_line "$W/s1.out" "carol@b.test: carol listed" 10 || nok "carol's message not shown"
run "bob accepts anyone again" 0 C bob@b.test im-policy set --accept anyone
ok "policy: blocked domain, nobody, not listed: a fault, nothing pushed or stored; a listed sender gets through"

# ---- a roaming sender ----
run "alice --direct" 0 C alice@a.test im bob@b.test "from the road" --direct
out_has "direct: pushed" "bob@b.test: pushed to"
wait_line "$W/s1.out" "alice@a.test: from the road (signed by alice@a.test's token from a.test)" 10 ||
	nok "the roaming message was not shown as signed by alice's token: $(tail -3 "$W/s1.out")"
ok "roaming: --direct with a token from a.test, accepted by b.test and verified by bob's session"

# ---- forged senders ----
run "mallory's token" 0 C mallory@a.test token
run "DeliverDirect From alice with mallory's token" 3 "$TOOL" direct \
	--server "https://mail.b.test:$PB/wsemail" --connect 127.0.0.1 \
	--roots "$W/pki/root/cert.pem" --key "$W/state/mallory@a.test.token.key" \
	--chain "$W/state/mallory@a.test.token.pem" --from alice@a.test --to bob@b.test \
	--text "forged by mallory"
out_has "forged direct: refused" "FAULT NotAuthorized"
cat >"$W/forged.xml" <<EOF
<m:Deliver xmlns:m="urn:wsemail:2026"><m:Origin>a.test</m:Origin><m:OriginId>urn:uuid:6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab</m:OriginId><m:Rcpt>bob@b.test</m:Rcpt><m:Message><m:From>alice@a.test</m:From><m:To>bob@b.test</m:To><m:Instant/><m:Text>forged by b.test</m:Text></m:Message></m:Deliver>
EOF
"$ADMIN" --pki "$W/pki" envelope sign --domain b.test --action urn:wsemail:2026/Deliver \
	--to "https://mail.b.test:$PB/wsemail" "$W/forged.xml" >"$W/forged.env" || fail "envelope sign"
curl -s --max-time 20 --cacert "$W/pki/root/cert.pem" --cert "$W/pki/b.test/chain.pem" \
	--key "$W/pki/b.test/service-key.pem" --resolve "mail.b.test:$PB:127.0.0.1" \
	-H 'Content-Type: application/soap+xml' --data-binary @"$W/forged.env" \
	"https://mail.b.test:$PB/wsemail" >"$OUT" 2>"$ERR"
if grep -qE "wse:(DomainMismatch|NotAuthorized|BadSignature|UntrustedCertificate)" "$OUT"; then pass; else nok "forged Deliver not refused"; fi
sleep 1
if grep -qF "forged by" "$W/s1.out"; then nok "a forged message was shown"; else pass; fi
if C bob@b.test list | grep -q "forged"; then nok "a forged message was stored"; else pass; fi
ok "forged senders refused: mallory's token for alice's From, b.test speaking for a.test; nothing shown or stored"

# ---- presence ----
run "presence, off by default" 1 C alice@a.test presence bob@b.test
err_has "presence off" "NotAuthorized"
run "bob shows alice" 0 C bob@b.test im-policy set --accept anyone --presence-to alice@a.test
run "presence, listed" 0 C alice@a.test presence bob@b.test
out_has "presence: online" "bob@b.test: online"
run "presence, not listed" 1 C mallory@a.test presence bob@b.test
err_has "presence not listed" "NotAuthorized"
stop_bg "$S1"
# offline once the grace has passed: ask until it says so (bounded)
gone_by=$(( $(date +%s) + GRACE + 15 ))
until C alice@a.test presence bob@b.test 2>/dev/null | grep -qF "bob@b.test: offline" ||
	[ "$(date +%s)" -ge "$gone_by" ]; do
	sleep 0.2
done
run "presence, bob gone" 0 C alice@a.test presence bob@b.test
out_has "presence: offline" "bob@b.test: offline"
ok "presence: refused by default and to the unlisted; online, then offline, for a listed contact"

run "alice --direct, bob offline" 0 C alice@a.test im bob@b.test "roaming, offline" --direct
out_has "direct, offline: stored" "bob@b.test: stored as mail (no session online)"
id=$(first_id bob@b.test "alice@a.test")
run "bob reads the roaming message" 0 C bob@b.test read "$id"
out_has "read a DeliverDirect: verified" "VALID"
out_lacks "read a DeliverDirect: verified" "NOT VALID"
out_has "read a DeliverDirect: the text" "roaming, offline"
ok "roaming, recipient offline: stored as mail; read verifies it against alice's token"

# ---- a chat ----
listen_bg bob@b.test s1; S1=$LAST_PID
wait_listening s1
mkfifo "$W/alice.in" "$W/bob.in"
timeout 120 "$CLIENT" --config "$W/alice@a.test.cconf" chat bob@b.test <"$W/alice.in" >"$W/chat-alice.out" 2>"$W/chat-alice.err" &
CA=$!; PIDS+=("$CA")
timeout 120 "$CLIENT" --config "$W/bob@b.test.cconf" chat alice@a.test <"$W/bob.in" >"$W/chat-bob.out" 2>"$W/chat-bob.err" &
CB=$!; PIDS+=("$CB")
exec 7>"$W/alice.in" 8>"$W/bob.in"
# Both chat sessions online before the first line: bob has two sessions
# (s1 and the chat), alice one; a slow machine may take a while.
online_n() {  # from to sessions
	local i
	for i in $(seq 60); do
		C "$1" im "$2" "warming up" 2>/dev/null | grep -qF "pushed to $3 session(s)" && return 0
		sleep 0.5
	done
	return 1
}
online_n alice@a.test bob@b.test 2 || nok "bob's chat session did not come online"
online_n bob@b.test alice@a.test 1 || nok "alice's chat session did not come online"
echo "hi bob, chat here" >&7
wait_line "$W/chat-bob.out" "alice@a.test: hi bob, chat here" 15 || nok "bob's chat did not show alice's line: $(cat "$W/chat-bob.out" "$W/chat-bob.err")"
wait_line "$W/chat-alice.out" "me: hi bob, chat here (pushed to 2 session(s))" 5 || nok "alice's chat: $(cat "$W/chat-alice.out" "$W/chat-alice.err")"
echo "hi alice" >&8
wait_line "$W/chat-alice.out" "bob@b.test: hi alice" 15 || nok "alice's chat did not show bob's line: $(cat "$W/chat-alice.out" "$W/chat-alice.err")"
exec 7>&- 8>&-
wait "$CA"; rca=$?; wait "$CB"; rcb=$?; forget "$CA" "$CB"
[ "$rca" = 0 ] && [ "$rcb" = 0 ] || nok "chats ended with $rca, $rcb: $(cat "$W/chat-alice.err" "$W/chat-bob.err")"
grep -qE "Sanitizer|runtime error" "$W"/chat-*.err && nok "chat: sanitizer report"
ok "chat: each line typed reaches the other side's view, end of input ends both"

# ---- many idle sessions ----
rss0=$(awk '/^VmRSS/ {print $2}' "/proc/$BPID/status")
"$TOOL" hold --server "https://mail.b.test:$PB/wsemail" --connect 127.0.0.1 \
	--roots "$W/pki/root/cert.pem" --user "$idle" -n "$IDLE" --wait 50 --hold 25 \
	>"$W/hold.out" 2>"$W/hold.err" &
HP=$!; PIDS+=("$HP")
wait_line "$W/hold.out" "holding" 120 || fail "the idle sessions were not set up: $(cat "$W/hold.err")"
sleep 2
rss1=$(awk '/^VmRSS/ {print $2}' "/proc/$BPID/status")
t0=$(now)
run "im while $IDLE sessions are held" 0 C alice@a.test im bob@b.test "still here"
out_has "delivered while held" "bob@b.test: pushed to"
wait_line "$W/s1.out" "alice@a.test: still here" 10 || nok "the listener did not get the message while $IDLE were held"
t1=$(now)
wait "$HP"; hrc=$?; forget "$HP"
grep -q "held=$IDLE answered=0 failed=0" "$W/hold.out" || nok "idle sessions: $(cat "$W/hold.out" "$W/hold.err")"
[ "$hrc" = 0 ] || nok "imtool hold exited $hrc"
ok "$IDLE idle push sessions of 20 users held ($(grep -o 'setup_s=[0-9.]*' "$W/hold.out")); an im still pushed in $(calc "$t1 - $t0" 2) s; b.test RSS $((rss0 / 1024)) -> $((rss1 / 1024)) MiB ($(( (rss1 - rss0) / IDLE )) KiB per session)"

stop_bg "$S1"
finish
