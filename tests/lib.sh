# tests/lib.sh - shared fixtures of the shell tests, benchmarks and demo:
# a PKI minted on the spot, a real DNS server (dnsmasq) with SRV records,
# wsemaild servers on loopback, users and client configurations, and
# check counting.
#
# Source it after setting T (the test's name, for messages) and B (the
# build directory):   T=ondemand; B=${WSE_BUILD_ROOT:?}; . tests/lib.sh
# It makes a work directory $W, removed on exit (kept if KEEP is set),
# and stops by PID every process started through it (or added to PIDS).
# Functions:
#   fail MSG            print MSG and the tail of every log, exit 1
#   ok MSG              count and print one passed check
#   finish              print "T: N checks passed"; or, when checks
#                       failed (nok), "T: F of N checks failed" and exit 1
#   free_port           an unused TCP port on 127.0.0.1
#   t_pki DOMAIN[=HOST,...]...   root CA, and per domain a domain CA and
#                       a service certificate for mail.DOMAIN (or for the
#                       HOSTs given), under $W/pki
#   t_dns DOMAIN=[HOST:]PORT[,...]... [--DNSMASQ-OPTION...]
#                       dnsmasq on $DNS (its PID: DNS_PID; its output:
#                       $W/dns.log) with _wsemail._tcp SRV records, the
#                       targets in order of preference (priority 10, 20,
#                       ...; HOST mail.DOMAIN unless given) and A records to
#                       127.0.0.1; other options go to dnsmasq as they are;
#                       it lives MAX_SECONDS at most (default 3600)
#   t_conf DOMAIN PORT [EXTRA-LINES]   $W/DOMAIN.conf (see t_merge; no
#                       dns_server line if t_dns has not run)
#   t_start DOMAIN      start its server, wait until ready; $LAST_PID
#   t_stop PID          stop one server, wait for it; its exit status
#   t_users DOMAIN ADDRESS...   create users (password $WSEMAIL_PASSWORD);
#                       with KDF_ITERATIONS set, their PBKDF2 cost is that
#                       ([limits] pbkdf2_iterations for wsemail-admin only;
#                       the server's own configuration is unchanged)
#   t_client ADDRESS [EXTRA-LINES]  $W/ADDRESS.cconf for the wsemail
#                       client, for the url of the address's domain; with
#                       KDF_ITERATIONS set, it ends in a [limits] section
#                       whose pbkdf2_min_iterations is that (so a line for
#                       the main section must go before it)
#   KDF_ITERATIONS      set by a test before sourcing this file (1000 in
#                       the end-to-end tests): a cheap password cost for
#                       its users instead of the default 600,000, so that
#                       a client run does not spend its time deriving the
#                       key (about 1 s under the sanitizers); the default
#                       cost is exercised by admin_user.sh and client_cli.sh
#   t_merge DEFAULTS EXTRA  print the configuration lines DEFAULTS with
#                       EXTRA merged in: a main-section "key = value" of
#                       EXTRA replaces DEFAULTS' lines of that key ("key ="
#                       drops them); its other lines are added at the end
#   C ADDRESS ARGS...   run the client as ADDRESS
#   wait_for ADDRESS PATTERN SECONDS   until "list" shows PATTERN
#   first_id ADDRESS PATTERN           mailbox id of the first match
#   peak_rss_kib PID    VmHWM of a running process, in KiB
#   forget PID...       no longer stop these (waited for already)
# Checks that go on after a failure (all counted; finish reports them):
#   pass                count one passed check, silently
#   nok MSG             count one failed check: MSG, and the output of
#                       the last run
#   run WHAT STATUS CMD...  CMD must exit with STATUS; its stdout goes to
#                       $OUT, its stderr to $ERR (a sanitizer report there
#                       fails too); 60 s at most unless CMD is a function
#   out_has / out_lacks / err_has / has / lacks WHAT TEXT
#                       TEXT in $OUT, not in $OUT, in $ERR, in either,
#                       in neither
#   check WHAT CMD...   CMD must succeed
# For the benchmarks:
#   t_watchdog SECONDS  TERM this shell when SECONDS have passed
#   now, calc EXPR [DECIMALS], median NUMBER...

ADMIN=$B/src/wsemail-admin
SERVER=$B/src/wsemaild
CLIENT=$B/src/wsemail
for _p in "$ADMIN" "$SERVER" "$CLIENT"; do
	[ -x "$_p" ] || { echo "$T: $_p is missing" >&2; exit 1; }
done
W=$(mktemp -d "${TMPDIR:-/tmp}/wse-$T.XXXXXX")
PIDS=()
WATCHDOG=""
checks=0
failures=0
OUT=$W/out
ERR=$W/err
export WSEMAIL_PASSWORD=${WSEMAIL_PASSWORD:-correct-horse-battery}
unset WSEMAIL_CONFIG
# Sanitizer builds: every report fatal and visible (no effect otherwise).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Stop every process (SIGKILL after 5 s), then remove $W.
t_cleanup() {
	trap - EXIT INT TERM HUP
	[ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null && wait "$WATCHDOG" 2>/dev/null
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	[ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap t_cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
	echo "$T: FAIL: $*" >&2
	for f in "$W"/*.log "$W"/*.err "$W"/*/*.log; do
		[ -s "$f" ] || continue
		echo "--- $f" >&2
		tail -20 "$f" >&2
	done
	exit 1
}
ok() { checks=$((checks + 1)); echo "ok $checks - $*"; }
finish() {
	if [ "$failures" -ne 0 ]; then
		echo "$T: $failures of $((checks + failures)) checks failed" >&2
		exit 1
	fi
	echo "$T: $checks checks passed"
}
free_port() {
	python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}
forget() {
	local p q keep=()
	for p in "${PIDS[@]}"; do
		for q in "$@"; do [ "$p" = "$q" ] && continue 2; done
		keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

A() { timeout 60 "$ADMIN" --pki "$W/pki" "$@" >/dev/null || fail "wsemail-admin $*"; }

t_pki() {  # domain[=host,host...]...
	local a d h names hosts
	A ca init --cn "Test Root"
	for a in "$@"; do
		d=${a%%=*}
		names=("mail.$d")
		[ "$a" = "$d" ] || IFS=, read -ra names <<<"${a#*=}"
		hosts=()
		for h in "${names[@]}"; do hosts+=(--host "$h"); done
		A domain issue "$d"
		A service issue "$d" "${hosts[@]}"
	done
}

t_dns() {  # domain=[host:]port[,[host:]port...]... [--dnsmasq-option...]
	DNS=$(free_port)
	local args=() a d h p t prio targets
	for a in "$@"; do
		case $a in --*) args+=("$a"); continue ;; esac
		d=${a%%=*}
		prio=10
		IFS=, read -ra targets <<<"${a#*=}"
		for t in "${targets[@]}"; do
			case $t in
			*:*) h=${t%:*}; p=${t##*:} ;;
			*) h=mail.$d; p=$t ;;
			esac
			args+=(--srv-host="_wsemail._tcp.$d,$h,$p,$prio,10"
			       --host-record="$h,127.0.0.1")
			prio=$((prio + 10))
		done
	done
	timeout -k 5 "${MAX_SECONDS:-3600}" /usr/sbin/dnsmasq --no-daemon --conf-file=/dev/null \
		--no-resolv --no-hosts \
		--listen-address=127.0.0.1 --bind-interfaces --port="$DNS" \
		--local=/test/ --pid-file="$W/dnsmasq.pid" "${args[@]}" \
		>"$W/dns.log" 2>&1 &
	DNS_PID=$!
	PIDS+=("$DNS_PID")
	command -v ss >/dev/null || { sleep 0.5; return 0; }
	for _ in $(seq 100); do
		ss -Hlun "sport = :$DNS" 2>/dev/null | grep -q . && return 0
		kill -0 "$DNS_PID" 2>/dev/null || fail "dnsmasq did not start"
		sleep 0.1
	done
	fail "dnsmasq is not listening on port $DNS"
}

t_merge() {  # defaults extra
	X=$2 awk '
	function key(l) {
		if (!match(l, /^[A-Za-z_][A-Za-z0-9_]*[ \t]*=/))
			return ""
		l = substr(l, 1, RLENGTH - 1)
		sub(/[ \t]+$/, "", l)
		return l
	}
	$0 != "" { d[++nd] = $0; dk[key($0)] = 1 }
	END {
		nx = split(ENVIRON["X"], x, "\n")
		main = 1
		for (i = 1; i <= nx; i++) {
			if (x[i] ~ /^[ \t]*\[/)
				main = 0
			k = main ? key(x[i]) : ""
			if (k == "" || !(k in dk))
				continue
			if (x[i] !~ /=[ \t]*$/)
				over[k] = over[k] x[i] "\n"
			else if (!(k in over))
				over[k] = ""
			used[i] = 1
		}
		for (i = 1; i <= nd; i++) {
			k = key(d[i])
			if (!(k in over))
				print d[i]
			else if (!(k in done)) {
				printf "%s", over[k]
				done[k] = 1
			}
		}
		for (i = 1; i <= nx; i++)
			if (!(i in used) && x[i] != "")
				print x[i]
	}' <<<"$1"
}

t_conf() {  # domain port [extra lines]
	local crls="" f
	for f in "$W"/pki/*/crl.pem; do crls+="crl = $f"$'\n'; done
	t_merge "domain = $1
url = https://mail.$1:$2/wsemail
listen = 127.0.0.1:$2
cert_chain = $W/pki/$1/chain.pem
key = $W/pki/$1/service-key.pem
roots = $W/pki/root/cert.pem
${crls}store = sqlite:$W/$1.db
secret_file = $W/$1.secret
${DNS:+dns_server = 127.0.0.1:$DNS}
retry_first = 1
retry_max = 2
lifetime = 60
threads = 4" "${3:-}" >"$W/$1.conf"
}

t_start() {  # domain -> LAST_PID
	"$SERVER" "$W/$1.conf" >"$W/$1.out" 2>>"$W/$1.log" &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
	for _ in $(seq 200); do
		grep -q ready "$W/$1.out" 2>/dev/null && return 0
		kill -0 "$LAST_PID" 2>/dev/null || fail "$1 server died"
		sleep 0.1
	done
	fail "$1 server did not start"
}

t_stop() {  # pid -> its exit status
	local rc
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	rc=$?
	forget "$1"
	return $rc
}

t_users() {  # domain address...
	local d=$1 u conf=$W/$1.conf; shift
	if [ -n "${KDF_ITERATIONS:-}" ]; then
		conf=$W/$d.users.conf
		{ cat "$W/$d.conf"; printf '[limits]\npbkdf2_iterations = %s\npbkdf2_min_iterations = %s\n' \
			"$KDF_ITERATIONS" "$KDF_ITERATIONS"; } >"$conf"
	fi
	for u in "$@"; do
		timeout 60 "$ADMIN" --config "$conf" user add "$u" \
			>/dev/null || fail "user add $u"
	done
}

t_client() {  # address [extra lines]
	local d=${1#*@} f c
	c="server = $(sed -n 's/^url = //p' "$W/$d.conf")
connect = 127.0.0.1
address = $1
roots = $W/pki/root/cert.pem
state_dir = $W/state"
	for f in "$W"/pki/*/crl.pem; do c+=$'\n'"crl = $f"; done
	# other domains' servers (on-demand attachments live there)
	for f in "$W"/pki/*/ca.pem; do
		f=${f%/ca.pem}
		c+=$'\n'"connect = mail.${f##*/} 127.0.0.1"
	done
	t_merge "$c" "${2:-}" >"$W/$1.cconf"
	[ -z "${KDF_ITERATIONS:-}" ] ||
		printf '[limits]\npbkdf2_min_iterations = %s\n' "$KDF_ITERATIONS" >>"$W/$1.cconf"
}

C() { local u=$1; shift; timeout 600 "$CLIENT" --config "$W/$u.cconf" "$@"; }

wait_for() {  # address pattern seconds
	for _ in $(seq $(($3 * 5))); do
		C "$1" list 2>/dev/null | grep -q -- "$2" && return 0
		sleep 0.2
	done
	return 1
}

first_id() { C "$1" list | grep -- "$2" | head -1 | awk '{print $1}'; }

peak_rss_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# ---- checks that go on after a failure ----
pass() { checks=$((checks + 1)); }
nok() {
	failures=$((failures + 1))
	echo "FAIL: $*" >&2
	[ -s "$OUT" ] && sed 's/^/    out: /' "$OUT" >&2
	[ -s "$ERR" ] && sed 's/^/    err: /' "$ERR" >&2
	return 0
}
run() {  # what status command...
	local what=$1 want=$2 rc
	shift 2
	if declare -F "$1" >/dev/null; then
		"$@" >"$OUT" 2>"$ERR" </dev/null	# times itself
	else
		timeout 60 "$@" >"$OUT" 2>"$ERR" </dev/null
	fi
	rc=$?
	if [ "$rc" -eq "$want" ]; then pass; else nok "$what (exit $rc, wanted $want)"; fi
	if grep -qE "Sanitizer|runtime error" "$ERR"; then
		nok "$what: sanitizer report"
	fi
}
out_has() { if grep -qF -- "$2" "$OUT"; then pass; else nok "$1: no '$2' on stdout"; fi; }
out_lacks() { if grep -qF -- "$2" "$OUT"; then nok "$1: '$2' on stdout"; else pass; fi; }
err_has() { if grep -qF -- "$2" "$ERR"; then pass; else nok "$1: no '$2' on stderr"; fi; }
has() { if cat "$OUT" "$ERR" | grep -qF -- "$2"; then pass; else nok "$1: no '$2' in the output"; fi; }
lacks() { if cat "$OUT" "$ERR" | grep -qF -- "$2"; then nok "$1: '$2' in the output"; else pass; fi; }
check() {  # what command...
	local what=$1
	shift
	if "$@"; then pass; else nok "$what"; fi
}

# ---- for the benchmarks ----
t_watchdog() {  # seconds
	bash -c 'sleep "$1" & s=$!; trap "kill $s; exit 0" TERM; wait $s &&
		{ echo "$3: time limit ($1 s) reached" >&2; kill -TERM "$2"; }' \
		_ "$1" $$ "$T" &
	WATCHDOG=$!
}
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }
median() {
	[ $# -eq 0 ] && { echo "-"; return; }
	printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END { if (NR % 2) print v[(NR+1)/2]; else printf "%.1f\n", (v[NR/2] + v[NR/2+1]) / 2 }'
}
