#!/usr/bin/env bash
# admin_user.sh - wsemail-admin user and queue commands against a real
# store, through a minimal server configuration: passwords reach the
# store only as sealed derived keys, salts change with passwords, bad
# addresses and short passwords are refused, a missing secret is reported
# (and never created), and the queue can be listed, flushed and emptied.
# Environment: WSE_BUILD_ROOT (the meson build directory).
set -u
T=admin_user
B=${WSE_BUILD_ROOT:?WSE_BUILD_ROOT is not set}
. "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null || fail "no sqlite3"
unset WSEMAIL_PASSWORD
conf="$W/wsemaild.conf"
db="$W/s.db"

sql() { sqlite3 -batch "$db" "$@"; }

# setsid: no controlling terminal, so a missing password source fails
# instead of prompting.
wa() { setsid -w "$ADMIN" --config "$conf" "$@"; }
wa_pw() { local pw=$1; shift; WSEMAIL_PASSWORD=$pw setsid -w "$ADMIN" --config "$conf" "$@"; }

head -c 32 /dev/urandom >"$W/secret" && chmod 600 "$W/secret" || exit 1
cat >"$conf" <<EOF
# minimal server configuration: what the user and queue commands read
store = sqlite:$db
secret_file = $W/secret
domain = a.test

[limits]
pbkdf2_iterations = 600000
EOF

pw1='correct-horse-battery'
pw2='staple-9-Xylophone'

# --- add ---
run "user add" 0 wa_pw "$pw1" user add Alice@A.test
has "user add" "added alice@a.test"
has "user add" "600000 iterations"
run "duplicate user add" 1 wa_pw "$pw1" user add alice@a.test
has "duplicate user add" "user alice@a.test exists"
run "bad address" 1 wa_pw "$pw1" user add 'not an address'
has "bad address" "not a mailbox address"
run "address without domain" 1 wa_pw "$pw1" user add bob
has "address without domain" "not a mailbox address"
run "address of another domain" 1 wa_pw "$pw1" user add bob@b.test
has "address of another domain" "not in the domain a.test"
run "short password" 1 wa_pw 'short7!' user add bob@a.test
has "short password" "too short"
run "short multi-byte password" 1 wa_pw 'ééééééé' user add bob@a.test
has "short multi-byte password" "too short"
run "no password source" 1 wa user add bob@a.test
has "no password source" "no terminal"

# --password-file: first line only, CRLF tolerated
printf '%s\r\nsecond line\n' "$pw2" >"$W/pwfile"
run "user add --password-file" 0 wa user add carol@a.test --password-file "$W/pwfile"
has "user add --password-file" "added carol@a.test"
run "password from both sources" 1 wa_pw "$pw1" user add dave@a.test --password-file "$W/pwfile"
has "password from both sources" "use one"
run "missing password file" 1 wa user add dave@a.test --password-file "$W/nope"
has "missing password file" "cannot open the password file"

# --- list ---
run "user list" 0 wa user list
has "user list" "alice@a.test"
has "user list" "carol@a.test"
has "user list" "600000"
has "user list" "$(date -u +%Y-%m-%d)"
lacks "user list: refused names" "bob@"
# $WSEMAIL_CONFIG names the configuration when --config is absent
run "WSEMAIL_CONFIG" 0 env WSEMAIL_CONFIG="$conf" "$ADMIN" user list
has "WSEMAIL_CONFIG" "alice@a.test"

# --- nothing of the password in the database ---
check "a row per user" [ "$(sql "SELECT count(*) FROM users")" = 2 ]
check "stored cost" [ "$(sql "SELECT iterations FROM users WHERE name='alice@a.test'")" = 600000 ]
for f in "$db" "$db-wal" "$db-shm"; do
	[ -e "$f" ] || continue
	if grep -qaF -- "$pw1" "$f" || grep -qaF -- "$pw2" "$f"; then
		nok "a password is in $(basename "$f")"
	else
		pass
	fi
done

# --- passwd: new salt, same cost ---
salt1=$(sql "SELECT hex(salt) FROM users WHERE name='alice@a.test'")
key1=$(sql "SELECT hex(sealed_key) FROM users WHERE name='alice@a.test'")
check "salt is 16 bytes" [ "${#salt1}" -eq 32 ]
run "user passwd" 0 wa_pw "$pw2" user passwd alice@a.test
has "user passwd" "changed the password of alice@a.test"
salt2=$(sql "SELECT hex(salt) FROM users WHERE name='alice@a.test'")
key2=$(sql "SELECT hex(sealed_key) FROM users WHERE name='alice@a.test'")
check "new salt is 16 bytes" [ "${#salt2}" -eq 32 ]
check "passwd changes the salt" [ "$salt1" != "$salt2" ]
check "a sealed key is stored" [ -n "$key1" ]
check "passwd changes the sealed key" [ "$key1" != "$key2" ]
run "passwd with a short password" 1 wa_pw 'short' user passwd alice@a.test
has "passwd with a short password" "too short"
check "refused passwd keeps the salt" [ "$(sql "SELECT hex(salt) FROM users WHERE name='alice@a.test'")" = "$salt2" ]
run "passwd of no such user" 1 wa_pw "$pw2" user passwd nobody@a.test
has "passwd of no such user" "no such user nobody@a.test"

# --- del ---
run "user del" 0 wa user del alice@a.test
has "user del" "deleted alice@a.test"
run "user del again" 1 wa user del alice@a.test
has "user del again" "no such user alice@a.test"
run "user list after del" 0 wa user list
lacks "user list after del" "alice@a.test"
has "user list after del" "carol@a.test"
run "user del other domain" 1 wa user del carol@b.test
has "user del other domain" "not in the domain"

# --- the server secret ---
mv "$W/secret" "$W/secret.saved"
run "missing secret file" 1 wa user list
has "missing secret file" "cannot read the server secret"
check "the secret is not created" [ ! -e "$W/secret" ]
run "missing secret file (queue)" 1 wa queue list
has "missing secret file (queue)" "cannot read the server secret"
head -c 32 /dev/urandom >"$W/secret"
run "wrong secret" 1 wa user list
has "wrong secret" "store unavailable"
has "wrong secret" "seal key"
head -c 31 /dev/urandom >"$W/secret"
run "short secret" 1 wa user list
has "short secret" "cannot read the server secret"
mv "$W/secret.saved" "$W/secret"

# --- the configuration ---
run "missing configuration" 1 "$ADMIN" --config "$W/none.conf" user list
has "missing configuration" "none.conf"
grep -v '^domain' "$conf" >"$W/nodomain.conf"
run "configuration without domain" 1 "$ADMIN" --config "$W/nodomain.conf" user list
has "configuration without domain" '"domain" is required'
sed 's/^pbkdf2_iterations.*/pbkdf2_iterations = 1000/' "$conf" >"$W/weak.conf"
run "cost below the minimum" 1 env WSEMAIL_PASSWORD="$pw1" "$ADMIN" --config "$W/weak.conf" user add erin@a.test
has "cost below the minimum" "below pbkdf2_min_iterations"
run "--config needs a value" 2 "$ADMIN" user list --config

# --- queue ---
run "queue list (empty)" 0 wa queue list
has "queue list (empty)" "queue is empty"
run "queue flush (empty)" 0 wa queue flush
run "queue flush of no such item" 1 wa queue flush 42
has "queue flush of no such item" "no queue item 42"
run "queue delete of no such item" 1 wa queue delete 42
has "queue delete of no such item" "no queue item 42"
run "queue delete needs an id" 2 wa queue delete
run "queue delete of a non-number" 2 wa queue delete 12x

# one item, written as the server would (a remote error with an ESC in it)
now=$(date +%s)
if sql "INSERT INTO payloads(id, data) VALUES (7, x'00');
    INSERT INTO queue(id, domain, sender, message_id, attempts, created,
      next_attempt, expires, last_error, payload_id)
    VALUES (7, 'b.test', 'carol@a.test', 'urn:uuid:x', 3, $now,
      $((now + 3600)), $((now + 86400)), 'refused' || char(27) || '[31m', 7);
    INSERT INTO queue_rcpts(queue_id, mailbox) VALUES (7, 'bob@b.test');"; then
	pass
	run "queue list" 0 wa queue list
	has "queue list" "b.test"
	has "queue list" "carol@a.test"
	has "queue list" "refused?[31m"
	lacks "queue list" "$(printf '\033')"
	run "queue flush ID" 0 wa queue flush 7
	has "queue flush ID" "queue item 7 is due now"
	check "flush makes it due" [ "$(sql "SELECT next_attempt <= $(($(date +%s) + 1)) FROM queue WHERE id = 7")" = 1 ]
	run "queue delete ID" 0 wa queue delete 7
	has "queue delete ID" "deleted queue item 7"
	run "queue list after delete" 0 wa queue list
	has "queue list after delete" "queue is empty"
else
	nok "cannot insert a queue item (has the store schema changed?)"
fi

# --- the password asked on a terminal (no echo, asked twice) ---
# tty_add ADDRESS FIRST SECOND: run "user add" on a new pseudo-terminal,
# answer the two prompts; prints the terminal's output, exits with the
# program's status.
tty_add() {
	python3 - "$ADMIN" "$conf" "$@" <<'PY'
import os, pty, select, signal, sys, time
admin, conf, addr, first, second = sys.argv[1:6]
pid, fd = pty.fork()
if pid == 0:
    os.environ.pop("WSEMAIL_PASSWORD", None)
    os.execv(admin, [admin, "--config", conf, "user", "add", addr])
out = b""
def read_until(done, secs):
    """Read the terminal until done() or end of output or timeout."""
    global out
    deadline = time.time() + secs
    while not done() and time.time() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                d = os.read(fd, 1024)
            except OSError:
                return done()
            if not d:
                return done()
            out += d
    return done()
for i, answer in enumerate((first, second)):
    # answer each prompt only once it is shown (the program flushes
    # pending input when it turns echo off)
    if not read_until(lambda: out.count(b"password: ") > i, 30):
        break
    os.write(fd, answer.encode() + b"\n")
read_until(lambda: False, 60)
deadline = time.time() + 30
wpid, st = os.waitpid(pid, os.WNOHANG)
while wpid == 0 and time.time() < deadline:
    time.sleep(0.05)
    wpid, st = os.waitpid(pid, os.WNOHANG)
if wpid == 0:    # still running: it did not finish in time
    os.kill(pid, signal.SIGKILL)
    _, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128)
PY
}
if command -v python3 >/dev/null; then
	run "password on the terminal" 0 tty_add tty@a.test "$pw1" "$pw1"
	has "password on the terminal" "Repeat the password"
	has "password on the terminal" "added tty@a.test"
	lacks "password on the terminal: no echo" "$pw1"
	run "passwords that differ" 1 tty_add tty2@a.test "$pw1" "$pw2"
	has "passwords that differ" "do not match"
	run "user list after the terminal" 0 wa user list
	has "user list after the terminal" "tty@a.test"
	lacks "user list after the terminal" "tty2@a.test"
else
	echo "admin_user: no python3, terminal checks skipped" >&2
fi

# --- help ---
run "help lists user and queue" 0 "$ADMIN" --help
has "help lists user and queue" "user add"
has "help lists user and queue" "queue flush"
has "help lists user and queue" "--config CONF"

finish
