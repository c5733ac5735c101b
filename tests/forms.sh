#!/usr/bin/env bash
# Routed forms across three domains on loopback: the paper's Figure 3.
# Claimant q@a.test submits an expense claim; router b.test (S_2) inserts
# the manager c2@a.test and, above the threshold, the finance approver
# c3@b.test; c3 delegates to c4@b.test; c5@c.test approves; c.test (S_5)
# verifies everything and accepts.  The type's Lua plugin is signed by its
# publisher and served by a.test; every party fetches it and checks it
# against its own trusted publishers.
# Then the attacks, each sent to the real final party, which must refuse:
# an approval removed, two reordered, one replayed from another form, one
# signed with a token of the wrong domain's CA, the claimant approving
# through a delegation, a delegation signed by someone else, the accepted
# form replayed; and the plugin attacks: a tampered plugin (the form
# waits, then goes on once the genuine file is back), an untrusted
# publisher, a plugin that loops forever and one that allocates without
# bound (stopped, reported, the server unharmed).  And a rejection, which
# stops the route and reaches the claimant.
# Needs: WSE_BUILD_ROOT, WSE_SOURCE_ROOT (meson sets them).  Every process
# it starts is stopped by PID on exit.
set -uo pipefail
T=forms
KDF_ITERATIONS=1000	# cheap test users (tests/lib.sh)
B=${WSE_BUILD_ROOT:?}
SRC=${WSE_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
. "$(dirname "$0")/lib.sh"
FORMS=$B/plugins/forms.so
OD=$B/plugins/ondemand.so
FORGE=$B/tests/formforge
for f in "$FORMS" "$OD" "$FORGE" "$SRC/examples/forms/expense.lua"; do
	[ -e "$f" ] || fail "$f is missing"
done
MAX_SECONDS=600

PA=$(free_port); PB=$(free_port); PC=$(free_port)
t_pki a.test b.test c.test
t_dns a.test="$PA" b.test="$PB" c.test="$PC"

# ---- publishers and form types ----
WA() { timeout 60 "$ADMIN" "$@" >/dev/null || fail "wsemail-admin $*"; }
mkdir -p "$W/pub"
WA plugin keygen --cn "Acme Forms" --out-key "$W/acme-key.pem" --out-cert "$W/acme.pem"
WA plugin keygen --cn "Other Forms" --out-key "$W/other-key.pem" --out-cert "$W/other.pem"
cp "$SRC/examples/forms/expense.lua" "$W/pub/expense.lua"
# three more types, all with expense's fields: one by a publisher only
# the claimant trusts, one whose router rule loops, one that eats memory
def='function M.definition()
  return { name = NAME, version = "1", title = "test type",
    fields = { { name = "amount", type = "decimal", required = true } } }
end
function M.check(form) return true end'
for t in evil loop hog; do
	{
		echo "local M = {}"
		echo "local NAME = \"$t\""
		echo "$def"
		case $t in
		evil) echo 'function M.route(form) return { "c2@a.test" } end' ;;
		loop) echo 'function M.route(form) local n = 0 while true do n = n + 1 end end' ;;
		hog) echo 'function M.route(form) local t = {} for i = 1, 1e9 do t[i] = ("x"):rep(4096) .. i end end' ;;
		esac
		echo "return M"
	} >"$W/pub/$t.lua"
done
WA plugin sign "$W/pub/expense.lua" --name expense --version 1.0 \
	--key "$W/acme-key.pem" --cert "$W/acme.pem"
for t in loop hog; do
	WA plugin sign "$W/pub/$t.lua" --name "$t" --version 1 \
		--key "$W/acme-key.pem" --cert "$W/acme.pem"
done
WA plugin sign "$W/pub/evil.lua" --name evil --version 1 \
	--key "$W/other-key.pem" --cert "$W/other.pem"
URL=https://mail.a.test:$PA/plugins
ok "two publishers; expense (the real type), loop and hog signed by Acme, evil by Other"

# ---- three domains, each with the token issuer and the forms service ----
crls=""
for f in "$W"/pki/*/crl.pem; do crls+=" crl=$f"; done
conf() {  # domain extra-forms-args [extra lines]
	local d=$1
	t_conf "$d" "$2" "plugin = $OD dir=$W/od-$d ca_cert=$W/pki/$d/ca.pem ca_key=$W/pki/$d/ca-key.pem
plugin = $FORMS dir=$W/forms-$d cert=$W/pki/$d/chain.pem key=$W/pki/$d/service-key.pem ca=$W/pki/$d/ca.pem roots=$W/pki/root/cert.pem$crls publisher=$W/acme.pem retry=2 fetch_connect=127.0.0.1 lua_millis=500 $3
${4:-}"
}
conf a.test "$PA" "" "publish_dir = $W/pub"
conf b.test "$PB" "param.finance=c3@b.test param.threshold=1000"
conf c.test "$PC" "param.finance=c3@b.test param.threshold=1000"
t_start a.test; APID=$LAST_PID
t_start b.test; BPID=$LAST_PID
t_start c.test; CPID=$LAST_PID
t_users a.test q@a.test c2@a.test forms@a.test
t_users b.test c3@b.test c4@b.test forms@b.test
t_users c.test c5@c.test forms@c.test
# the claimant checks the closed form with the final party's parameters
t_client q@a.test "publisher = $W/acme.pem
publisher = $W/other.pem
form_param = finance=c3@b.test
form_param = threshold=1000"
for u in c2@a.test c3@b.test c4@b.test c5@c.test; do
	t_client "$u" "publisher = $W/acme.pem"
done
ok "three servers (ondemand + forms plugins), a DNS server, six users"

# the plugin as served
run "GET the plugin" 0 curl -sS --fail --cacert "$W/pki/root/cert.pem" \
	--resolve "mail.a.test:$PA:127.0.0.1" "$URL/expense.lua"
check "served plugin is the file" cmp -s "$OUT" "$W/pub/expense.lua"
run "GET outside the directory" 22 curl -sS --fail --cacert "$W/pki/root/cert.pem" \
	--resolve "mail.a.test:$PA:127.0.0.1" "$URL/..%2fa.test.conf"
ok "a.test publishes the signed plugin at $URL/expense.lua, nothing else"

# ---- Figure 3 ----
logwait() {  # file pattern seconds
	for _ in $(seq $(($3 * 5))); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.2
	done
	return 1
}
submit() {  # amount [more args] -> form id in $FID
	C q@a.test form submit "$URL/expense.lua" --field "amount=$1" \
		--field currency=EUR --field "purpose=Conference travel" \
		--field date=2026-11-20 --field manager=c2@a.test \
		--route b.test --route c5@c.test --final c.test >"$W/submit.out" 2>&1 ||
		fail "q form submit: $(cat "$W/submit.out")"
	FID=$(grep -o 'urn:uuid:[0-9a-f-]*' "$W/submit.out" | head -1)
	[ -n "$FID" ] || fail "no form id: $(cat "$W/submit.out")"
	SHORT=${FID#urn:uuid:}; SHORT=${SHORT:0:8}
}
turn() {  # address -> message id of the newest form naming $SHORT
	wait_for "$1" "$SHORT" 30 || fail "$1 did not get form $SHORT: $(C "$1" list 2>&1)"
	C "$1" list | grep -- "$SHORT" | head -1 | awk '{print $1}'
}

submit 2500.00
F1=$FID; S1=$SHORT
grep -q "forms@b.test" "$W/submit.out" || fail "submit did not go to b.test: $(cat "$W/submit.out")"
ok "q@a.test submitted expense claim $F1 (2500.00 EUR) to the router b.test"

id=$(turn c2@a.test)
logwait "$W/b.test.log" "inserted 2 approver" 10 ||
	fail "b.test did not insert: $(tail -5 "$W/b.test.log")"
run "c2 form list" 0 C c2@a.test form list
out_has "c2 form list" "$S1"
out_has "c2 form list" "your turn"
run "c2 form show" 0 C c2@a.test form show "$id"
out_has "c2 form show" "Conference travel"
out_has "c2 form show" "2500.00"
out_has "c2 form show" "c3@b.test"
ok "router b.test inserted c2@a.test and c3@b.test (amount above 1000); c2 sees its turn"

run "c2 approve" 0 C c2@a.test form approve "$id" --note "within budget"
out_has "c2 approve" "c3@b.test"
id=$(turn c3@b.test)
run "c3 delegates to c4" 0 C c3@b.test form delegate "$id" c4@b.test
id3=$id
id=$(turn c4@b.test)
run "c4 approves for c3" 0 C c4@b.test form approve "$id"
out_has "c4 approves for c3" "c5@c.test"
id5=$(turn c5@c.test)
run "c5 form show" 0 C c5@c.test form show "$id5"
out_has "c5 form show" "c4@b.test"
run "export the form at c5's turn" 0 C c5@c.test form export "$id5" "$W/f4.form"
ok "c2 approved, c3 delegated to c4, c4 approved for c3; the form is c5@c.test's turn"

# ---- the attacks, each against the real final party c.test ----
C c5@c.test token >/dev/null 2>&1 || fail "c5 token"
C q@a.test token >/dev/null 2>&1 || fail "q token"
ST=$W/state
TRUSTARGS=("$W/pki/root/cert.pem")
for f in "$W"/pki/*/crl.pem; do TRUSTARGS+=("$f"); done
printf 'a form\n' >"$W/body.txt"
# a complete form nobody sent: c5's genuine approval appended
run "forge: c5's approval" 0 "$FORGE" append "$W/f4.form" "$W/full.form" decide \
	"$ST/c5@c.test.token.key" "$ST/c5@c.test.token.pem" "${TRUSTARGS[@]}"
nref=0
refused() {  # what file reason-text: sent to forms@c.test, must be refused
	nref=$((nref + 1))
	cp "$2" "$W/attack$nref.form"
	C c5@c.test send --to forms@c.test --subject "attack $nref" \
		--attach "$W/attack$nref.form" "$W/body.txt" >"$OUT" 2>"$ERR" ||
		{ nok "$1: send"; return; }
	if logwait "$W/c.test.log" "refused.*$3" 20; then pass; else
		nok "$1: c.test did not refuse with '$3': $(grep -i 'refused\|accepted\|pending' "$W/c.test.log" | tail -3)"
	fi
}
run "forge: drop c2's approval" 0 "$FORGE" drop "$W/full.form" 3 "$W/drop.form"
refused "an approval removed" "$W/drop.form" "record 3"
run "forge: swap two approvals" 0 "$FORGE" swap "$W/full.form" 3 5 "$W/swap.form"
refused "two approvals reordered" "$W/swap.form" "record 3"
submit 300.00
F2=$FID
id=$(turn c2@a.test)
run "c2 approves the second form" 0 C c2@a.test form approve "$id"
id=$(turn c5@c.test)
run "export the second form" 0 C c5@c.test form export "$id" "$W/g.form"
run "forge: c2's approval of form 2 into form 1" 0 "$FORGE" splice "$W/full.form" 3 "$W/g.form" 3 "$W/splice.form"
refused "an approval replayed from another form" "$W/splice.form" "record 3"
run "forge: token for c5@c.test by b.test's CA" 0 "$FORGE" token \
	"$W/pki/b.test/ca.pem" "$W/pki/b.test/ca-key.pem" c5@c.test "$W/bad.key" "$W/bad.pem"
run "forge: c5's approval with it" 0 "$FORGE" append "$W/f4.form" "$W/wrongca.form" decide \
	"$W/bad.key" "$W/bad.pem" "${TRUSTARGS[@]}"
refused "an approval signed by a token of the wrong domain's CA" "$W/wrongca.form" "record 6"
run "c3's form, at c3's turn" 0 C c3@b.test form export "$id3" "$W/f2.form"
run "the claimant as delegate: client refuses" 1 C c3@b.test form delegate "$id3" q@a.test
has "the claimant as delegate: client refuses" "claimant"
run "forge: c3 delegates to the claimant" 0 "$FORGE" append "$W/f2.form" "$W/d1.form" delegate \
	"$ST/c3@b.test.token.key" "$ST/c3@b.test.token.pem" "${TRUSTARGS[@]}" -- to=q@a.test
refused "the claimant approving via delegation" "$W/d1.form" "claimant"
C c4@b.test token >/dev/null 2>&1 || fail "c4 token"
run "forge: c4 delegates c3's hop to itself" 0 "$FORGE" append "$W/f2.form" "$W/d2.form" delegate \
	"$ST/c4@b.test.token.key" "$ST/c4@b.test.token.pem" "${TRUSTARGS[@]}" -- for=c3@b.test to=c4@b.test
refused "a delegation signed by someone else" "$W/d2.form" "record 4"
grep -q "form .*: accepted" "$W/c.test.log" && nok "c.test accepted a form during the attacks"
ok "c.test refused: approval removed, reordered, replayed from another form, wrong-domain token, claimant via delegation, delegation by another"

# ---- a tampered plugin: the form waits, then goes on ----
cp "$W/pub/expense.lua" "$W/expense.good"
printf '\n-- harmless?\n' >>"$W/pub/expense.lua"
run "c5 approves" 0 C c5@c.test form approve "$id5"
out_has "c5 approves" "forms@c.test"
logwait "$W/c.test.log" "pending.*expense" 20 ||
	nok "c.test did not hold the form for the tampered plugin: $(tail -3 "$W/c.test.log")"
grep -qi "pending.*\(digest\|tamper\)" "$W/c.test.log" || nok "pending reason: $(grep pending "$W/c.test.log" | tail -1)"
grep -q "form .*: accepted" "$W/c.test.log" && nok "c.test accepted with a tampered plugin"
ok "a tampered plugin: c.test keeps the form pending and says why"
cp "$W/expense.good" "$W/pub/expense.lua"
logwait "$W/c.test.log" "$F1.*: accepted" 20 || fail "c.test did not accept after the plugin was restored: $(tail -5 "$W/c.test.log")"
wait_for q@a.test "$S1.*approved" 30 || fail "q was not told: $(C q@a.test list 2>&1)"
id=$(C q@a.test list | grep -- "$S1.*approved" | head -1 | awk '{print $1}')
run "q verifies the closed form" 0 C q@a.test form verify "$id"
out_has "q verifies the closed form" "VALID"
out_has "q verifies the closed form" "c4@b.test"
run "q exports the closed form" 0 C q@a.test form export "$id" "$W/closed.form"
ok "genuine plugin back: c.test verified every record and accepted; q got the closed form and verified it (Figure 3 done)"

refused "the accepted form replayed" "$W/closed.form" "$S1"

# ---- untrusted publisher, loop, memory ----
bsub() {  # type amount
	C q@a.test form submit "$URL/$1.lua" --field "amount=$2" --route b.test \
		--route c5@c.test --final c.test >"$W/bsub.out" 2>&1 ||
		fail "q form submit $1: $(cat "$W/bsub.out")"
}
run "c2 submits an untrusted type" 1 C c2@a.test form submit "$URL/evil.lua" \
	--field amount=5 --route b.test --final c.test
has "c2 submits an untrusted type" "untrusted"
bsub evil 5
logwait "$W/b.test.log" "pending.*untrusted" 20 || nok "b.test: untrusted publisher: $(tail -3 "$W/b.test.log")"
bsub loop 5
logwait "$W/b.test.log" "pending.*\(instruction\|time\) limit" 20 || nok "b.test: loop: $(tail -3 "$W/b.test.log")"
bsub hog 5
logwait "$W/b.test.log" "pending.*memory limit" 20 || nok "b.test: hog: $(tail -3 "$W/b.test.log")"
kill -0 "$BPID" 2>/dev/null || fail "b.test died"
rss=$(peak_rss_kib "$BPID")
ok "b.test holds forms of an untrusted publisher, a looping and a hungry plugin pending (peak RSS ${rss} KiB)"

# b.test still routes: a rejection, which stops the route
submit 150.00
S3=$SHORT
id=$(turn c2@a.test)
run "c2 rejects" 0 C c2@a.test form reject "$id" --note "not a business expense"
out_has "c2 rejects" "forms@c.test"
wait_for q@a.test "$S3.*rejected" 30 || fail "q was not told of the rejection: $(C q@a.test list 2>&1)"
id=$(C q@a.test list | grep -- "$S3.*rejected" | head -1 | awk '{print $1}')
run "q verifies the rejected form" 0 C q@a.test form verify "$id"
has "q verifies the rejected form" "rejected"
grep -q "$S3" <(C c5@c.test list) && nok "c5 got a rejected form"
ok "a rejection stops the route: c.test closes it and q is notified"

finish
