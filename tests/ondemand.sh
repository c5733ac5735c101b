#!/usr/bin/env bash
# On-demand attachments across two domains on loopback (the paper's nine
# messages): a PKI minted here, dnsmasq with SRV records, two wsemaild
# servers with the ondemand plugin, and the wsemail client.
# Checks: the full flow (upload, Submit, Deliver with only the reference,
# read, token, FetchAttachment at the sender's server, digest check); the
# token kept and reused; a resumed download; a corrupted download
# detected; the sender's log; revocation and expiry; refusals (a file
# over max_size, malformed requests: each its Fault and its reason in the
# server's log, nothing left in the plugin's directory); and one BIG file
# (1 GiB; 64 MiB in the sanitizer build, or BIG_MIB) sent to 50 recipients
# and more: it crosses between the servers as a reference only, the
# recipients who fetch pull it, and the servers' memory stays bounded.
# Needs: WSE_BUILD_ROOT (meson sets it).  Every process it starts is
# stopped by PID on exit.
set -uo pipefail
T=ondemand
KDF_ITERATIONS=1000	# cheap test users (tests/lib.sh)
B=${WSE_BUILD_ROOT:?}
. "$(dirname "$0")/lib.sh"
PLUGIN=$B/plugins/ondemand.so
[ -f "$PLUGIN" ] || fail "$PLUGIN is missing"
# Under the sanitizers a smaller file, and memory is not measured
# (AddressSanitizer's quarantine and shadow memory dominate it).
RSS_LIMIT_KIB=262144
if [ -z "${BIG_MIB:-}" ]; then
	case $B in *asan*) BIG_MIB=64 ;; *) BIG_MIB=1024 ;; esac
fi
case $B in *asan*) RSS_LIMIT_KIB=2097152 ;; esac

PA=$(free_port); PB=$(free_port)
t_pki a.test b.test
t_dns a.test="$PA" b.test="$PB"
od() {  # domain [extra plugin arguments]
	echo "plugin = $PLUGIN dir=$W/od-$1 ca_cert=$W/pki/$1/ca.pem ca_key=$W/pki/$1/ca-key.pem ${2:-}"
}
t_conf a.test "$PA" "$(od a.test)"
t_conf b.test "$PB" "$(od b.test)"
t_start a.test; APID=$LAST_PID
t_start b.test; BPID=$LAST_PID
ok "two servers with the ondemand plugin and a DNS server started"

t_users a.test alice@a.test
t_users b.test bob@b.test dave@b.test
# Fifty more recipients who never log in: a cheap password cost for them.
{ cat "$W/b.test.conf"; printf '[limits]\npbkdf2_iterations = 1000\npbkdf2_min_iterations = 1000\n'; } >"$W/bulk.conf"
for i in $(seq -w 1 50); do
	timeout 60 "$ADMIN" --config "$W/bulk.conf" user add "r$i@b.test" \
		>/dev/null || fail "user add r$i"
done
for u in alice@a.test bob@b.test dave@b.test; do t_client "$u"; done
ok "users created (3 + 50 recipients)"

# ---- the nine messages with a 3 MiB file ----
head -c 3145728 /dev/urandom >"$W/report.bin"
printf 'The report is on my server.\n' >"$W/body.txt"
C alice@a.test send --to bob@b.test --subject "report" \
	--on-demand "$W/report.bin" "$W/body.txt" >"$W/send1.out" ||
	fail "alice send --on-demand: $(cat "$W/send1.out")"
sid=$(grep -o 'urn:uuid:[0-9a-f-]*' "$W/send1.out" | head -1)
[ -n "$sid" ] || fail "no submission id: $(cat "$W/send1.out")"
ok "alice uploaded report.bin to a.test and sent it on demand ($sid)"

wait_for bob@b.test "report" 15 || fail "bob did not get the message"
grep -q "deliver .* from a.test (alice@a.test): 1 accepted .*; [0-9]* bytes" "$W/b.test.log" ||
	fail "no deliver line"
dbytes=$(grep "from a.test (alice@a.test): 1 accepted" "$W/b.test.log" | tail -1 | sed 's/.*; \([0-9]*\) bytes/\1/')
[ "$dbytes" -lt 65536 ] || fail "the Deliver carried $dbytes bytes for a 3 MiB on-demand file"
ok "the Deliver to b.test carried the reference only ($dbytes bytes for a 3 MiB file)"

id=$(first_id bob@b.test "report")
C bob@b.test list | grep "report" | grep -q "^ *$id N@ " ||
	fail "list does not mark the on-demand message: $(C bob@b.test list)"
C bob@b.test read "$id" >"$W/read1.txt" || fail "bob read: $(cat "$W/read1.txt")"
grep -q "VALID" "$W/read1.txt" && ! grep -q "NOT VALID" "$W/read1.txt" || fail "no VALID verdict: $(cat "$W/read1.txt")"
grep -q "report.bin" "$W/read1.txt" && grep -q "3145728" "$W/read1.txt" &&
	grep -q "mail.a.test" "$W/read1.txt" || fail "on-demand attachment not shown: $(cat "$W/read1.txt")"
ok "bob's list marks the message (@); read shows it verified end to end, with report.bin, its size and where it lives"

mkdir -p "$W/bob"
C bob@b.test attachment fetch "$id" report.bin --out "$W/bob" >"$W/fetch1.out" 2>&1 ||
	fail "bob fetch: $(cat "$W/fetch1.out")"
cmp -s "$W/bob/report.bin" "$W/report.bin" || fail "fetched file differs"
grep -q "token issued for bob@b.test" "$W/b.test.log" || fail "no token issued by b.test"
grep -q "fetched by bob@b.test: 3145728 bytes at 0" "$W/a.test.log" || fail "a.test did not log the fetch"
ok "bob got a token from b.test and fetched report.bin from a.test directly; SHA-256 checked"

# the token is kept and reused: a second fetch asks b.test for none
ntok=$(grep -c "token issued for bob@b.test" "$W/b.test.log")
rm -f "$W/bob/report.bin"
C bob@b.test attachment fetch "$id" report.bin --out "$W/bob" >"$W/fetch2.out" 2>&1 ||
	fail "bob fetch again: $(cat "$W/fetch2.out")"
[ "$(grep -c "token issued for bob@b.test" "$W/b.test.log")" = "$ntok" ] ||
	fail "a second token was issued while the first was fresh"
ok "the token is kept and reused while fresh"

# a download interrupted half-way resumes where it stopped
rm -f "$W/bob/report.bin"
head -c 1048576 "$W/report.bin" >"$W/bob/report.bin.part"
C bob@b.test attachment fetch "$id" report.bin --out "$W/bob" >"$W/fetch3.out" 2>&1 ||
	fail "bob resume: $(cat "$W/fetch3.out")"
cmp -s "$W/bob/report.bin" "$W/report.bin" || fail "resumed file differs"
grep -q "fetched by bob@b.test: 2097152 bytes at 1048576" "$W/a.test.log" ||
	fail "the resumed fetch did not start at the offset"
ok "an interrupted download resumes from its .part (2 MiB fetched from offset 1 MiB)"

# a corrupted copy on the sender's server: detected, nothing kept
stored=$(find "$W/od-a.test" -type f -size 3145728c | head -1)
[ -n "$stored" ] || fail "stored attachment not found"
cp "$stored" "$W/stored.bak"
# Byte 1000 changed for certain: the file is random, so writing a fixed
# byte would leave it unchanged once in 256 runs.
b=$(dd if="$stored" bs=1 skip=1000 count=1 status=none | od -An -tu1 | tr -d ' ')
printf "\\$(printf '%03o' $(((b + 1) % 256)))" |
	dd of="$stored" bs=1 seek=1000 conv=notrunc status=none
cmp -s "$stored" "$W/stored.bak" && fail "the stored copy was not changed"
rm -f "$W/bob/report.bin"
if C bob@b.test attachment fetch "$id" report.bin --out "$W/bob" >"$W/fetch4.out" 2>&1; then
	fail "a corrupted download was accepted"
fi
grep -qi "SHA-256" "$W/fetch4.out" || fail "corruption not reported: $(cat "$W/fetch4.out")"
[ ! -e "$W/bob/report.bin" ] && [ ! -e "$W/bob/report.bin.part" ] || fail "corrupted bytes were kept"
cp "$W/stored.bak" "$stored"
ok "a corrupted download is detected by its SHA-256 and discarded"

# the sender's view
C alice@a.test attachment log "$sid" >"$W/log.out" 2>&1 || fail "attachment log: $(cat "$W/log.out")"
grep -q "bob@b.test" "$W/log.out" && grep -q "report.bin" "$W/log.out" ||
	fail "log: $(cat "$W/log.out")"
[ "$(grep -c "bob@b.test" "$W/log.out")" -ge 4 ] || fail "log lacks fetches: $(cat "$W/log.out")"
ok "alice's attachment log shows who fetched report.bin and when"

# revocation
C alice@a.test attachment revoke "$sid" >"$W/revoke.out" 2>&1 || fail "revoke: $(cat "$W/revoke.out")"
rm -f "$W/bob/report.bin"
if C bob@b.test attachment fetch "$id" report.bin --out "$W/bob" >"$W/fetch5.out" 2>&1; then
	fail "fetched after revocation"
fi
grep -q "NotAuthorized" "$W/fetch5.out" || fail "revoked: $(cat "$W/fetch5.out")"
[ -z "$(find "$W/od-a.test" -type f -size 3145728c)" ] || fail "revoked bytes still on disk"
ok "revoked: the next fetch gets NotAuthorized and the bytes are gone"

# ---- one big file for 51 recipients; two of them fetch it ----
rcpts=(--to bob@b.test --cc dave@b.test)
for i in $(seq -w 1 50); do rcpts+=(--cc "r$i@b.test"); done
openssl enc -aes-128-ctr -nosalt -pass pass:wsemail -in /dev/zero 2>/dev/null |
	head -c $((BIG_MIB * 1048576)) >"$W/big.iso"
t0=$(date +%s.%N)
printf 'big one\n' | C alice@a.test send "${rcpts[@]}" --subject "big file" \
	--on-demand "$W/big.iso" - >"$W/send2.out" 2>&1 || fail "send big: $(cat "$W/send2.out")"
t1=$(date +%s.%N)
wait_for dave@b.test "big file" 30 || fail "dave did not get the big message"
wait_for bob@b.test "big file" 10 || fail "bob did not get the big message"
line=$(grep "from a.test (alice@a.test): 52 accepted" "$W/b.test.log" | tail -1)
[ -n "$line" ] || fail "the big message did not reach 52 mailboxes at b.test"
dbytes=$(echo "$line" | sed 's/.*; \([0-9]*\) bytes/\1/')
[ "$dbytes" -lt 65536 ] || fail "the Deliver carried $dbytes bytes"
ok "$BIG_MIB MiB uploaded in $(awk "BEGIN {printf \"%.1f\", $t1 - $t0}") s and sent to 52 mailboxes: one Deliver of $dbytes bytes crossed to b.test"

for u in bob@b.test dave@b.test; do
	mkdir -p "$W/$u"
	bid=$(first_id "$u" "big file")
	C "$u" attachment fetch "$bid" big.iso --out "$W/$u" >"$W/$u.fetch" 2>&1 ||
		fail "$u fetch big: $(cat "$W/$u.fetch")"
	cmp -s "$W/$u/big.iso" "$W/big.iso" || fail "$u: big file differs"
	rm -f "$W/$u/big.iso"
done
n=$(grep -c "fetched by .*: $((BIG_MIB * 1048576)) bytes at 0" "$W/a.test.log")
[ "$n" = 2 ] || fail "$n full fetches of the big file logged at a.test, expected 2"
rss_a=$(peak_rss_kib "$APID"); rss_b=$(peak_rss_kib "$BPID")
[ "$rss_a" -lt "$RSS_LIMIT_KIB" ] && [ "$rss_b" -lt "$RSS_LIMIT_KIB" ] ||
	fail "peak RSS a.test $rss_a KiB, b.test $rss_b KiB"
ok "two of 52 recipients fetched the $BIG_MIB MiB file (the others pulled nothing); peak RSS a.test $((rss_a / 1024)) MiB, b.test $((rss_b / 1024)) MiB"
echo "# $(cat "$W/bob@b.test.fetch" | tail -1)"

# ---- expiry ----
t_stop "$APID"
t_conf a.test "$PA" "$(od a.test "attachment_lifetime=3 max_size=65536")"
t_start a.test; APID=$LAST_PID
head -c 10000 /dev/urandom >"$W/short.bin"
printf 'short-lived\n' | C alice@a.test send --to bob@b.test --subject "short-lived" \
	--on-demand "$W/short.bin" - >/dev/null 2>&1 || fail "send short-lived"
wait_for bob@b.test "short-lived" 15 || fail "bob did not get short-lived"
sleep 4
sid2=$(first_id bob@b.test "short-lived")
if C bob@b.test attachment fetch "$sid2" short.bin --out "$W/bob" >"$W/fetch6.out" 2>&1; then
	fail "fetched an expired attachment"
fi
grep -q "NotAuthorized" "$W/fetch6.out" || fail "expired: $(cat "$W/fetch6.out")"
ok "an expired attachment: NotAuthorized"

# ---- refusals: a Fault with the reason in the server's log, nothing kept ----
CALL=$B/tests/plugin_call
[ -x "$CALL" ] || fail "$CALL is missing"
P() {  # user operation payload
	timeout 60 "$CALL" --server "https://mail.a.test:$PA/wsemail" \
		--connect 127.0.0.1 --roots "$W/pki/root/cert.pem" --user "$1" \
		--op "$2" --payload "<m:$2 xmlns:m=\"urn:wsemail:2026\">$3</m:$2>"
}
kept() {  # what a.test's plugin keeps: its files
	find "$W/od-a.test/uploads" "$W/od-a.test/attachments" -type f | sort
}
kept >"$W/kept0"
nsub=$(grep -c "submit .* from alice@a.test" "$W/a.test.log")
head -c 70000 /dev/urandom >"$W/toobig.bin"
if printf 'too big\n' | C alice@a.test send --to bob@b.test --subject "too big" \
	--on-demand "$W/toobig.bin" - >"$W/toobig.out" 2>&1; then
	fail "a file over max_size was sent"
fi
grep -q "refused: TooLarge" "$W/toobig.out" || fail "over max_size: $(cat "$W/toobig.out")"
grep -q "upload of 70000 bytes, the limit is 65536" "$W/a.test.log" ||
	fail "no reason logged for the upload over max_size"
[ "$(grep -c "submit .* from alice@a.test" "$W/a.test.log")" = "$nsub" ] ||
	fail "a message was submitted for the refused upload"
ok "a file over max_size: TooLarge, the limit in the log, no message sent"

sha0=0000000000000000000000000000000000000000000000000000000000000000
P alice@a.test UploadAttachment "<m:Name>x</m:Name><m:Type>text/plain&#10;</m:Type><m:Size>1</m:Size><m:Sha256>$sha0</m:Sha256>" >"$W/p1.out" 2>&1
[ "$(head -1 "$W/p1.out")" = "FAULT InvalidMessage" ] || fail "bad media type: $(cat "$W/p1.out")"
grep -q "refused .*UploadAttachment: .*bad media type" "$W/a.test.log" || fail "bad media type not logged"
P alice@a.test UploadAttachment "<m:Upload>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA</m:Upload>" >"$W/p2.out" 2>&1
[ "$(head -1 "$W/p2.out")" = "FAULT NotFound" ] || fail "unknown upload: $(cat "$W/p2.out")"
P alice@a.test RevokeAttachment "<m:Name>x</m:Name>" >"$W/p3.out" 2>&1
[ "$(head -1 "$W/p3.out")" = "FAULT InvalidMessage" ] || fail "revoke without Id: $(cat "$W/p3.out")"
P alice@a.test FetchAttachment "<m:Ref>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA</m:Ref>" >"$W/p4.out" 2>&1
[ "$(head -1 "$W/p4.out")" = "FAULT Unsupported" ] || fail "password FetchAttachment: $(cat "$W/p4.out")"
kept >"$W/kept1"
cmp -s "$W/kept0" "$W/kept1" || fail "a refusal left files: $(diff "$W/kept0" "$W/kept1")"
grep -q "fetched by alice" "$W/a.test.log" && fail "a password-signed fetch was served"
ok "a bad media type, an unknown upload, a revocation without Id, a fetch signed with a password: each its Fault, nothing left in the plugin's directory"

finish
