#!/usr/bin/env bash
# Mail between two domains, end to end, on loopback: a PKI minted here, a
# real DNS server (dnsmasq) with SRV records, two wsemaild servers, and
# the wsemail client.  Checks: mail both ways, several recipients across
# domains, SRV failover to the second target, retry after the recipient's
# server comes back (and nothing lost across its restart), one bounce at
# expiry and one for an unknown user, end-to-end verification shown to the
# recipient, and refusals of bad input.
# Needs: WSE_BUILD_ROOT (meson sets it).  Every process it starts is
# stopped by PID on exit.
set -uo pipefail
T=mail_two_domains
KDF_ITERATIONS=1000	# cheap test users (tests/lib.sh)
B=${WSE_BUILD_ROOT:?}
. "$(dirname "$0")/lib.sh"

PA=$(free_port); PB1=$(free_port); PB2=$(free_port)
t_pki a.test b.test=mail1.b.test,mail2.b.test
# b.test's first SRV target has no server (failover)
t_dns a.test="$PA" b.test=mail1.b.test:"$PB1",mail2.b.test:"$PB2"
settings='lifetime = 12
threads = 2
[limits]
max_message_bytes = 1048576'
# a.test retries a deferred item after 60 s, or at its expiry if that is
# sooner: no retry of its own falls between b.test's restart and the
# queue flush below (which must send the three waiting items together).
t_conf a.test "$PA" "retry_first = 60
retry_max = 60
$settings"
t_conf b.test "$PB2" "url = https://mail2.b.test:$PB2/wsemail
$settings"
t_start a.test; APID=$LAST_PID
t_start b.test; BPID=$LAST_PID
ok "two servers and a DNS server started"

t_users a.test alice@a.test carol@a.test
t_users b.test bob@b.test dave@b.test
ok "users created"
# Clients without CRLs: bob still reaches b.test once its service
# certificate is revoked (the last check).
for u in alice@a.test carol@a.test bob@b.test dave@b.test; do t_client "$u" "crl ="; done

# ---- mail across domains, several recipients, an attachment ----
printf 'Quarterly figures attached.\n' >"$W/body.txt"
head -c 3000 /dev/urandom >"$W/figures.bin"
C alice@a.test send --to bob@b.test --to carol@a.test --cc dave@b.test \
	--subject "Q3 figures" --attach "$W/figures.bin" "$W/body.txt" >/dev/null ||
	fail "alice send"
ok "alice submitted to bob@b.test, dave@b.test and carol@a.test"
wait_for bob@b.test "Q3 figures" 15 || fail "bob did not get the message"
wait_for dave@b.test "Q3 figures" 15 || fail "dave did not get the message"
wait_for carol@a.test "Q3 figures" 15 || fail "carol did not get the message"
ok "delivered to all three (b.test via its second SRV target)"
id=$(first_id bob@b.test "Q3 figures")
mkdir -p "$W/saved"
C bob@b.test read "$id" --save-attachments "$W/saved" >"$W/read.txt" || fail "bob read"
grep -q "VALID" "$W/read.txt" && ! grep -q "NOT VALID" "$W/read.txt" || fail "no VALID verdict: $(cat "$W/read.txt")"
grep -q "a.test" "$W/read.txt" || fail "signer not shown"
cmp -s "$W/saved/figures.bin" "$W/figures.bin" || fail "attachment differs"
ok "bob verified a.test's signature end to end and got the attachment intact"

# ---- and back ----
printf 'Thanks!\n' | C bob@b.test send --to alice@a.test --subject "Re: Q3" - >/dev/null || fail "bob send"
wait_for alice@a.test "Re: Q3" 15 || fail "alice did not get the reply"
ok "mail from b.test to a.test"

# ---- unknown user: one bounce at once ----
printf 'x\n' | C alice@a.test send --to nobody@b.test --subject "to nobody" - >/dev/null || fail "send to nobody"
wait_for alice@a.test "Undeliverable: to nobody" 15 || fail "no bounce for an unknown user"
n=$(C alice@a.test list | grep -c "Undeliverable: to nobody")
[ "$n" = 1 ] || fail "$n bounces for one unknown user"
ok "unknown recipient: exactly one non-delivery report"

# ---- the recipient's server is down, then comes back ----
# Three messages wait for b.test; once it is back and the queue is
# flushed they go in one DeliverBatch, each with its own outcome.
t_stop "$BPID"
printf 'while you were away\n' | C alice@a.test send --to bob@b.test --subject "retry me" - >/dev/null || fail "send while b is down"
printf 'two of you\n' | C alice@a.test send --to bob@b.test --to dave@b.test --subject "retry two" - >/dev/null || fail "send while b is down"
printf 'nobody home\n' | C alice@a.test send --to nobody@b.test --subject "retry nobody" - >/dev/null || fail "send while b is down"
for _ in $(seq 100); do
	[ "$(grep -c "deferred" "$W/a.test.log")" -ge 3 ] && break
	sleep 0.1
done
[ "$(grep -c "deferred" "$W/a.test.log")" -ge 3 ] || fail "no deferral logged"
t_start b.test; BPID=$LAST_PID
setsid -w "$ADMIN" --config "$W/a.test.conf" queue flush >/dev/null || fail "queue flush"
wait_for bob@b.test "retry me" 20 || fail "not delivered after b.test came back"
wait_for bob@b.test "Q3 figures" 2 || fail "b.test lost a message across its restart"
wait_for bob@b.test "retry two" 5 || fail "bob: retry two not delivered"
wait_for dave@b.test "retry two" 5 || fail "dave: retry two not delivered"
wait_for alice@a.test "Undeliverable: retry nobody" 15 || fail "no bounce from the batch"
grep -q "sent 3 items to b.test in one DeliverBatch" "$W/a.test.log" ||
	fail "the three were not sent together: $(grep -E "DeliverBatch|delivered" "$W/a.test.log" | tail -5)"
n=$(C alice@a.test list | grep -c "Undeliverable: retry nobody")
[ "$n" = 1 ] || fail "$n bounces for the refused batch item"
id=$(first_id dave@b.test "retry two")
C dave@b.test read "$id" >"$W/read2.txt" || fail "dave read"
grep -q "VALID" "$W/read2.txt" && ! grep -q "NOT VALID" "$W/read2.txt" ||
	fail "a batched message does not verify end to end: $(cat "$W/read2.txt")"
ok "deferred while b.test was down, delivered in one batch after it came back (one bounce, end-to-end signature valid), nothing lost"

# ---- a batch original that does not verify ----
# btamper ID PYTHON: run the statement on message ID's stored parts at
# b.test: item (its bytes), index (its position), head (the batch's
# signed head, base64); they are written back
btamper() {
	python3 - "$W/b.test.db" "$1" "$2" <<'PY'
import base64, sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
bid, item, index, hid, head = db.execute(
    "SELECT b.id, b.envelope, b.head_index, h.id, h.head FROM bodies b "
    "JOIN messages m ON m.body_id = b.id JOIN batch_heads h "
    "ON h.id = b.head_id WHERE m.id = ?", (int(sys.argv[2]),)).fetchone()
item, head = bytes(item), bytes(head)
exec(sys.argv[3])
db.execute("UPDATE bodies SET envelope = ?, head_index = ? WHERE id = ?",
           (item, index, bid))
db.execute("UPDATE batch_heads SET head = ? WHERE id = ?", (head, hid))
db.commit()
PY
}
# the item changed (one word of the text): its digest no longer the signed one
btamper "$id" 'item = item.replace(b"two of you", b"two of YOU")' ||
	fail "a batched message is not kept with its batch's head"
C dave@b.test read "$id" >"$W/read3.txt" 2>&1 && fail "a changed batch item was read without failure"
grep -q "NOT VALID: BadSignature: the item is not the one the batch signature covers" "$W/read3.txt" ||
	fail "a changed batch item: $(cat "$W/read3.txt")"
btamper "$id" 'item = item.replace(b"two of YOU", b"two of you")'
# the item at another position of the same signed batch
btamper "$id" 'index = (index + 1) % 3'
C dave@b.test read "$id" >"$W/read4.txt" 2>&1 && fail "a moved batch item was read without failure"
grep -q "NOT VALID: BadSignature" "$W/read4.txt" || fail "a moved batch item: $(cat "$W/read4.txt")"
btamper "$id" 'index = (index + 2) % 3'
# a head naming another origin: the signature no longer verifies
btamper "$id" 'head = base64.b64encode(base64.b64decode(head).replace(b"<m:Origin>a.test<", b"<m:Origin>b.test<"))'
C dave@b.test read "$id" >"$W/read5.txt" 2>&1 && fail "a batch head naming another origin was read without failure"
grep -q "NOT VALID" "$W/read5.txt" || fail "a batch head naming another origin: $(cat "$W/read5.txt")"
btamper "$id" 'head = base64.b64encode(base64.b64decode(head).replace(b"<m:Origin>b.test<", b"<m:Origin>a.test<"))'
C dave@b.test read "$id" >"$W/read6.txt" || fail "dave read (restored)"
grep -q ": VALID" "$W/read6.txt" || fail "the restored batch original: $(cat "$W/read6.txt")"
ok "a batch original with its item changed, moved to another position, or a head naming another origin: NOT VALID"

# ---- down past the lifetime: exactly one bounce ----
t_stop "$BPID"
printf 'doomed\n' | C alice@a.test send --to bob@b.test --subject "never arrives" - >/dev/null || fail "send doomed"
wait_for alice@a.test "Undeliverable: never arrives" 30 || fail "no bounce at expiry"
sleep 3
n=$(C alice@a.test list | grep -c "Undeliverable: never arrives")
[ "$n" = 1 ] || fail "$n bounces at expiry"
ok "lifetime passed: exactly one non-delivery report"
t_start b.test; BPID=$LAST_PID

# ---- refusals ----
if WSEMAIL_PASSWORD=wrong-password C alice@a.test list >"$W/wrong.txt" 2>&1; then
	fail "wrong password accepted"
fi
grep -q "NotAuthorized" "$W/wrong.txt" || fail "wrong password: $(cat "$W/wrong.txt")"
ok "wrong password refused (NotAuthorized)"
if C dave@b.test read "$id" >/dev/null 2>"$W/other.txt"; then
	# the same id may exist in dave's mailbox: it must then be dave's copy
	C dave@b.test read "$id" | grep -q "dave@b.test" || fail "dave read bob's message"
fi
ok "a user reads only their own mailbox"

# A Deliver signed by b.test's server but claiming to come from a.test.
cat >"$W/deliver.xml" <<'EOF'
<m:Deliver xmlns:m="urn:wsemail:2026"><m:Origin>a.test</m:Origin><m:OriginId>urn:uuid:6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab</m:OriginId><m:Rcpt>bob@b.test</m:Rcpt><m:Message><m:From>alice@a.test</m:From><m:To>bob@b.test</m:To><m:Subject>forged</m:Subject><m:Text>forged</m:Text></m:Message></m:Deliver>
EOF
timeout 30 "$ADMIN" --pki "$W/pki" envelope sign --domain b.test \
	--action urn:wsemail:2026/Deliver --to "https://mail2.b.test:$PB2/wsemail" \
	"$W/deliver.xml" >"$W/forged.xml" || fail "sign forged"
code=$(timeout 30 curl -s -o "$W/forged.out" -w '%{http_code}' \
	--cacert "$W/pki/root/cert.pem" --cert "$W/pki/b.test/chain.pem" \
	--key "$W/pki/b.test/service-key.pem" \
	--resolve "mail2.b.test:$PB2:127.0.0.1" -H 'Content-Type: application/soap+xml' \
	--data-binary @"$W/forged.xml" "https://mail2.b.test:$PB2/wsemail")
[ "$code" = 500 ] && grep -q "DomainMismatch" "$W/forged.out" || fail "forged origin: $code $(head -c 300 "$W/forged.out")"
C bob@b.test list | grep -q forged && fail "forged message stored"
ok "Deliver signed by another domain's server: DomainMismatch, nothing stored"

code=$(timeout 30 curl -s -o "$W/bad.out" -w '%{http_code}' --cacert "$W/pki/root/cert.pem" \
	--resolve "mail.a.test:$PA:127.0.0.1" -H 'Content-Type: application/soap+xml' \
	--data-binary '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>' \
	"https://mail.a.test:$PA/wsemail")
[ "$code" = 500 ] && grep -q "InvalidMessage" "$W/bad.out" || fail "malformed XML: $code"
ok "malformed XML: a signed SOAP Fault (InvalidMessage)"

head -c 2000000 /dev/zero | tr '\0' 'x' >"$W/big.txt"
if C alice@a.test send --to bob@b.test --subject big "$W/big.txt" >"$W/big.out" 2>&1; then
	fail "oversized message accepted"
fi
grep -qi "TooLarge\|too large\|413" "$W/big.out" || fail "oversized: $(cat "$W/big.out")"
ok "oversized message refused"

code=$(timeout 30 curl -s -o "$W/wsdl.xml" -w '%{http_code}' --cacert "$W/pki/root/cert.pem" \
	--resolve "mail.a.test:$PA:127.0.0.1" "https://mail.a.test:$PA/wsemail?wsdl")
[ "$code" = 200 ] && grep -q "FetchMessage" "$W/wsdl.xml" || fail "WSDL: $code"
ok "WSDL served at ?wsdl"
/usr/bin/python3 - "$W/wsdl.xml" >"$W/zeep.out" 2>&1 <<'PY' || fail "zeep: $(cat "$W/zeep.out")"
import sys
import zeep
client = zeep.Client(sys.argv[1])
ops = set()
for service in client.wsdl.services.values():
    for port in service.ports.values():
        ops |= set(port.binding._operations)
want = {"GetAuthParams", "Submit", "Deliver", "ListHeaders", "FetchMessage",
        "DeleteMessage", "MarkRead"}
assert want <= ops, ops
print("zeep loaded the WSDL:", ", ".join(sorted(ops)))
PY
ok "a stock SOAP client (python3-zeep) loads the WSDL: $(cut -d: -f2 "$W/zeep.out")"

# ---- b.test's service certificate revoked: a.test refuses its mail ----
serial=$(timeout 30 "$ADMIN" --pki "$W/pki" cert show "$W/pki/b.test/service.pem" | awk '/serial/ {print $NF}')
A revoke b.test "$serial"
t_stop "$APID"
t_start a.test; APID=$LAST_PID			# reloads the CRLs
printf 'from a revoked server\n' | C bob@b.test send --to alice@a.test --subject "revoked sender" - >/dev/null || fail "send from b"
for _ in $(seq 50); do grep -q "certificate revoked" "$W/a.test.log" && break; sleep 0.2; done
grep -q "certificate revoked" "$W/a.test.log" || fail "a.test did not refuse the revoked certificate"
C alice@a.test list | grep -q "revoked sender" && fail "mail from a revoked server was stored"
ok "a revoked service certificate: its Deliver is refused (CertificateRevoked), nothing stored"

finish
