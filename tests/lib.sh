# tests/lib.sh - shared fixtures of the shell tests, benchmarks and demo:
# a PKI minted on the spot, a real DNS server (dnsmasq) with SRV records,
# wsemaild servers on loopback, users and client configurations.
#
# Source it after setting T (the test's name, for messages) and B (the
# build directory):   T=ondemand; B=${WSE_BUILD_ROOT:?}; . tests/lib.sh
# It makes a work directory $W, removed on exit, and stops by PID every
# process started through it.  Functions:
#   fail MSG            print MSG and the tail of every log, exit 1
#   ok MSG              count and print one passed check
#   finish              print "T: N checks passed"
#   free_port           an unused TCP port on 127.0.0.1
#   t_pki DOMAIN...     root CA, and per domain a domain CA and a service
#                       certificate for mail.DOMAIN, under $W/pki
#   t_dns DOMAIN=PORT... dnsmasq on $DNS with _wsemail._tcp SRV records
#                       (mail.DOMAIN at PORT) and A records to 127.0.0.1
#   t_conf DOMAIN PORT [EXTRA-LINES]  $W/DOMAIN.conf (main-section lines
#                       in EXTRA-LINES go before [limits])
#   t_start DOMAIN      start its server, wait until ready; $LAST_PID
#   t_stop PID          stop one server and wait for it
#   t_users DOMAIN ADDRESS...   create users (password $WSEMAIL_PASSWORD)
#   t_client ADDRESS    $W/ADDRESS.cconf for the wsemail client
#   C ADDRESS ARGS...   run the client as ADDRESS
#   wait_for ADDRESS PATTERN SECONDS   until "list" shows PATTERN
#   first_id ADDRESS PATTERN           mailbox id of the first match
#   peak_rss_kib PID    VmHWM of a running process, in KiB

ADMIN=$B/src/wsemail-admin
SERVER=$B/src/wsemaild
CLIENT=$B/src/wsemail
for _p in "$ADMIN" "$SERVER" "$CLIENT"; do
	[ -x "$_p" ] || { echo "$T: $_p is missing" >&2; exit 1; }
done
W=$(mktemp -d "${TMPDIR:-/tmp}/wse-$T.XXXXXX")
PIDS=()
checks=0
export WSEMAIL_PASSWORD=${WSEMAIL_PASSWORD:-correct-horse-battery}

t_cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	[ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap t_cleanup EXIT

fail() {
	echo "$T: FAIL: $*" >&2
	for f in "$W"/*.log; do
		[ -f "$f" ] || continue
		echo "--- $f" >&2
		tail -20 "$f" >&2
	done
	exit 1
}
ok() { checks=$((checks + 1)); echo "ok $checks - $*"; }
finish() { echo "$T: $checks checks passed"; }
free_port() {
	python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

A() { timeout 60 "$ADMIN" --pki "$W/pki" "$@" >/dev/null || fail "wsemail-admin $*"; }

t_pki() {
	A ca init --cn "Test Root"
	for d in "$@"; do
		A domain issue "$d"
		A service issue "$d" --host "mail.$d"
	done
}

t_dns() {
	DNS=$(free_port)
	local args=() d p
	for dp in "$@"; do
		d=${dp%%=*}; p=${dp#*=}
		args+=(--srv-host="_wsemail._tcp.$d,mail.$d,$p,10,10"
		       --host-record="mail.$d,127.0.0.1")
	done
	timeout 3600 /usr/sbin/dnsmasq --no-daemon --no-resolv --no-hosts \
		--listen-address=127.0.0.1 --bind-interfaces --port="$DNS" \
		--local=/test/ --pid-file="$W/dnsmasq.pid" "${args[@]}" \
		>"$W/dns.log" 2>&1 &
	PIDS+=($!)
}

t_conf() {  # domain port [extra main-section lines]
	local crls="" f
	for f in "$W"/pki/*/crl.pem; do crls+="crl = $f"$'\n'; done
	cat >"$W/$1.conf" <<EOF
domain = $1
url = https://mail.$1:$2/wsemail
listen = 127.0.0.1:$2
cert_chain = $W/pki/$1/chain.pem
key = $W/pki/$1/service-key.pem
roots = $W/pki/root/cert.pem
${crls}store = sqlite:$W/$1.db
secret_file = $W/$1.secret
dns_server = 127.0.0.1:${DNS:?t_dns first}
retry_first = 1
retry_max = 2
lifetime = 60
threads = 4
${3:-}
EOF
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

t_stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

t_users() {  # domain address...
	local d=$1 u; shift
	for u in "$@"; do
		timeout 60 "$ADMIN" --config "$W/$d.conf" user add "$u" \
			>/dev/null || fail "user add $u"
	done
}

t_client() {  # address
	local d=${1#*@}
	cat >"$W/$1.cconf" <<EOF
server = https://mail.$d:$(sed -n 's/^listen = 127.0.0.1://p' "$W/$d.conf")/wsemail
connect = 127.0.0.1
address = $1
roots = $W/pki/root/cert.pem
state_dir = $W/state
EOF
	for f in "$W"/pki/*/crl.pem; do echo "crl = $f" >>"$W/$1.cconf"; done
	# other domains' servers (on-demand attachments live there)
	for f in "$W"/pki/*/ca.pem; do
		f=${f%/ca.pem}
		echo "connect = mail.${f##*/} 127.0.0.1" >>"$W/$1.cconf"
	done
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

peak_rss_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
