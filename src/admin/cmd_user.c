/*
 * cmd_user.c - the user commands of wsemail-admin: user add, user passwd,
 * user del, user list, on the store named by the server's configuration
 * (--config).
 *
 * A user's key is PBKDF2-HMAC-SHA256(password, salt, iterations): 16
 * fresh random bytes of salt, the cost [limits] pbkdf2_iterations (never
 * below pbkdf2_min_iterations).  The store seals the key at rest; the
 * password itself is never stored.
 *
 * SECURITY: the password comes from $WSEMAIL_PASSWORD, the first line of
 * --password-file FILE ("-": standard input), or the terminal (/dev/tty,
 * without echo, asked twice).  It is held in fixed buffers that are wiped,
 * with the derived key, before the command returns; it is never printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "admin.h"
#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "msg.h"
#include "store.h"

#define PW_MAX		1024	/* bytes of a password */
#define PW_MIN_CHARS	8	/* characters (UTF-8 code points) */

/* ---- reading the password ---- */

static volatile sig_atomic_t tty_signal;

static void
on_tty_signal(int sig)
{
	tty_signal = sig;
}

/* Signals that end the program while the terminal does not echo: caught
 * so that echo is restored first, then raised again. */
static const int tty_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
/* Job control while the terminal does not echo: ignored. */
static const int tty_ignored[] = { SIGTSTP, SIGTTIN, SIGTTOU };
#define NSIGS(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Print prompt on the terminal fd and read one line without echo into
 * buf (PW_MAX + 1 bytes, NUL-terminated), *len_r its length.  Returns 0,
 * or ADMIN_EXIT_FAIL after a message.  A terminating signal restores the
 * terminal and is then delivered.
 */
static int
tty_read(int fd, const char *prompt, char *buf, size_t *len_r)
{
	struct termios old, quiet;
	struct sigaction sa, saved[NSIGS(tty_signals)],
	    saved_ign[NSIGS(tty_ignored)];
	size_t n = 0, i;
	int too_long = 0, rc = ADMIN_EXIT_FAIL, err = 0;
	ssize_t r;
	char c;

	*len_r = 0;
	buf[0] = '\0';
	if (tcgetattr(fd, &old) != 0) {
		fprintf(stderr, "%s: /dev/tty: %s\n", ADMIN_PROG,
		    strerror(errno));
		return ADMIN_EXIT_FAIL;
	}
	tty_signal = 0;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_tty_signal;	/* no SA_RESTART: read stops */
	for (i = 0; i < NSIGS(tty_signals); i++)
		(void)sigaction(tty_signals[i], &sa, &saved[i]);
	sa.sa_handler = SIG_IGN;
	for (i = 0; i < NSIGS(tty_ignored); i++)
		(void)sigaction(tty_ignored[i], &sa, &saved_ign[i]);

	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0) {
		err = errno;
		goto restore;
	}
	if (write(fd, prompt, strlen(prompt)) < 0) {
		err = errno;
		goto restore;
	}
	for (;;) {
		r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR && tty_signal == 0)
			continue;
		if (r < 0) {
			err = errno;
			break;
		}
		if (r == 0 || c == '\n')
			break;
		if (n < PW_MAX)
			buf[n++] = c;
		else
			too_long = 1;
	}
	c = 0;
	buf[n] = '\0';
	if (write(fd, "\n", 1) < 0 && err == 0)
		err = errno;
	if (err == 0)
		rc = 0;
restore:
	(void)tcsetattr(fd, TCSAFLUSH, &old);
	for (i = 0; i < NSIGS(tty_ignored); i++)
		(void)sigaction(tty_ignored[i], &saved_ign[i], NULL);
	for (i = 0; i < NSIGS(tty_signals); i++)
		(void)sigaction(tty_signals[i], &saved[i], NULL);
	if (tty_signal != 0) {
		wse_memzero(buf, PW_MAX + 1);
		(void)raise(tty_signal);
		fprintf(stderr, "%s: interrupted\n", ADMIN_PROG);
		return ADMIN_EXIT_FAIL;
	}
	if (rc != 0) {
		wse_memzero(buf, PW_MAX + 1);
		fprintf(stderr, "%s: /dev/tty: %s\n", ADMIN_PROG,
		    strerror(err));
		return ADMIN_EXIT_FAIL;
	}
	if (too_long) {
		wse_memzero(buf, PW_MAX + 1);
		fprintf(stderr, "%s: the password is longer than %d bytes\n",
		    ADMIN_PROG, PW_MAX);
		return ADMIN_EXIT_FAIL;
	}
	*len_r = n;
	return 0;
}

/* Ask twice on the terminal; both answers must match. */
static int
pw_from_tty(char *pw, size_t *len_r)
{
	char again[PW_MAX + 1];
	size_t n2 = 0;
	int fd, rc = ADMIN_EXIT_FAIL;

	if ((fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "%s: no terminal to ask for the password "
		    "(/dev/tty: %s); set WSEMAIL_PASSWORD or use "
		    "--password-file\n", ADMIN_PROG, strerror(errno));
		return ADMIN_EXIT_FAIL;
	}
	if (tty_read(fd, "New password: ", pw, len_r) != 0 ||
	    tty_read(fd, "Repeat the password: ", again, &n2) != 0)
		goto out;
	if (n2 != *len_r || !wse_ct_equal(pw, again, n2)) {
		fprintf(stderr, "%s: the passwords do not match\n",
		    ADMIN_PROG);
		goto out;
	}
	rc = 0;
out:
	if (rc != 0) {
		wse_memzero(pw, PW_MAX + 1);
		*len_r = 0;
	}
	wse_memzero(again, sizeof(again));
	(void)close(fd);
	return rc;
}

/* The first line of path ("-": standard input), without its "\n" or
 * "\r\n". */
static int
pw_from_file(const char *path, char *pw, size_t *len_r)
{
	char raw[PW_MAX + 2];	/* room for the password and its "\r" */
	size_t n = 0, len;
	char *nl = NULL;
	ssize_t r;
	int fd = -1, rc = ADMIN_EXIT_FAIL;

	*len_r = 0;
	if (strcmp(path, "-") == 0)
		fd = STDIN_FILENO;
	else if ((fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "%s: cannot open the password file %s: %s\n",
		    ADMIN_PROG, path, strerror(errno));
		return ADMIN_EXIT_FAIL;
	}
	while (n < sizeof(raw) && nl == NULL) {
		if ((r = read(fd, raw + n, sizeof(raw) - n)) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "%s: cannot read the password file "
			    "%s: %s\n", ADMIN_PROG, path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		nl = memchr(raw + n, '\n', (size_t)r);
		n += (size_t)r;
	}
	len = nl != NULL ? (size_t)(nl - raw) : n;
	if (len > 0 && raw[len - 1] == '\r')
		len--;
	if (len > PW_MAX) {
		fprintf(stderr, "%s: %s: the password is longer than %d "
		    "bytes\n", ADMIN_PROG, path, PW_MAX);
		goto out;
	}
	if (memchr(raw, '\0', len) != NULL) {
		fprintf(stderr, "%s: %s: the password contains a NUL byte\n",
		    ADMIN_PROG, path);
		goto out;
	}
	memcpy(pw, raw, len);
	pw[len] = '\0';
	*len_r = len;
	rc = 0;
out:
	wse_memzero(raw, sizeof(raw));
	if (fd != STDIN_FILENO)
		(void)close(fd);
	return rc;
}

/* Characters of a UTF-8 string: bytes that do not continue a sequence. */
static size_t
pw_chars(const char *pw, size_t len)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++)
		if (((unsigned char)pw[i] & 0xc0) != 0x80)
			n++;
	return n;
}

/*
 * The new password into pw (PW_MAX + 1 bytes), from $WSEMAIL_PASSWORD,
 * else file (when not NULL), else the terminal; at least PW_MIN_CHARS
 * characters.  0 or ADMIN_EXIT_FAIL after a message (pw wiped).
 */
static int
get_password(const char *file, char *pw, size_t *len_r)
{
	const char *env = getenv("WSEMAIL_PASSWORD");
	int rc;

	*len_r = 0;
	if (env != NULL && file != NULL) {
		fprintf(stderr, "%s: both WSEMAIL_PASSWORD and --password-file "
		    "give a password; use one\n", ADMIN_PROG);
		return ADMIN_EXIT_FAIL;
	}
	if (env != NULL) {
		size_t n = strlen(env);

		if (n > PW_MAX) {
			fprintf(stderr, "%s: WSEMAIL_PASSWORD is longer than "
			    "%d bytes\n", ADMIN_PROG, PW_MAX);
			return ADMIN_EXIT_FAIL;
		}
		memcpy(pw, env, n + 1);
		*len_r = n;
		rc = 0;
	} else if (file != NULL) {
		rc = pw_from_file(file, pw, len_r);
	} else {
		rc = pw_from_tty(pw, len_r);
	}
	if (rc != 0)
		return rc;
	if (pw_chars(pw, *len_r) < PW_MIN_CHARS) {
		wse_memzero(pw, PW_MAX + 1);
		*len_r = 0;
		fprintf(stderr, "%s: the password is too short (at least %d "
		    "characters)\n", ADMIN_PROG, PW_MIN_CHARS);
		return ADMIN_EXIT_FAIL;
	}
	return 0;
}

/* ---- common steps ---- */

/* ADDRESS as a lower-case mailbox of the configured domain into addr. */
static int
check_address(const struct admin_ctx *ctx, const struct admin_server *srv,
    const char *address, char addr[WSE_ADDR_MAX + 1])
{
	if (wse_addr_normalize(address, addr, WSE_ADDR_MAX + 1) != WSE_OK) {
		wse_err_clear();
		fprintf(stderr, "%s: '%s' is not a mailbox address "
		    "(local@domain)\n", ADMIN_PROG, address);
		return ADMIN_EXIT_FAIL;
	}
	if (strcmp(wse_addr_domain(addr), srv->domain) != 0) {
		fprintf(stderr, "%s: %s is not in the domain %s of %s\n",
		    ADMIN_PROG, addr, srv->domain, ctx->config_path);
		return ADMIN_EXIT_FAIL;
	}
	return 0;
}

/* The cost for new keys: [limits] pbkdf2_iterations, refused below
 * pbkdf2_min_iterations. */
static int
check_cost(const struct admin_ctx *ctx, const struct admin_server *srv)
{
	if (srv->lim.pbkdf2_iterations < srv->lim.pbkdf2_min_iterations) {
		fprintf(stderr, "%s: %s: [limits] pbkdf2_iterations %u is "
		    "below pbkdf2_min_iterations %u\n", ADMIN_PROG,
		    ctx->config_path, (unsigned)srv->lim.pbkdf2_iterations,
		    (unsigned)srv->lim.pbkdf2_min_iterations);
		return ADMIN_EXIT_FAIL;
	}
	return 0;
}

/*
 * Ask for the password of addr and set (add or replace) its key: fresh
 * salt, the configured cost.  0 or ADMIN_EXIT_FAIL after a message.
 */
static int
set_password(const struct admin_server *srv, const char *addr,
    const char *pw_file, int add, int64_t now)
{
	char pw[PW_MAX + 1];
	uint8_t salt[WSE_SALT_LEN], key[WSE_DERIVED_KEY_LEN];
	uint32_t iter = srv->lim.pbkdf2_iterations;
	size_t len = 0;
	char what[WSE_ADDR_MAX + 32];
	wse_status st;
	int rc = ADMIN_EXIT_FAIL;

	if (get_password(pw_file, pw, &len) != 0)
		goto out;
	if (wse_random(salt, sizeof(salt)) != WSE_OK ||
	    wse_pbkdf2_sha256(pw, len, salt, sizeof(salt), iter, key) !=
	    WSE_OK) {
		(void)admin_fail("cannot derive the key");
		goto out;
	}
	wse_memzero(pw, sizeof(pw));
	st = add ? wse_store_user_add(srv->store, addr, salt, iter, key, now) :
	    wse_store_user_set_key(srv->store, addr, salt, iter, key);
	if (st == WSE_ERR_EXISTS) {
		wse_err_clear();
		fprintf(stderr, "%s: user %s exists\n", ADMIN_PROG, addr);
		goto out;
	}
	if (st == WSE_ERR_NOT_FOUND) {
		wse_err_clear();
		fprintf(stderr, "%s: no such user %s\n", ADMIN_PROG, addr);
		goto out;
	}
	if (st != WSE_OK) {
		snprintf(what, sizeof(what), "cannot %s %s",
		    add ? "add" : "change the password of", addr);
		(void)admin_store_fail(what);
		goto out;
	}
	rc = 0;
out:
	wse_memzero(pw, sizeof(pw));
	wse_memzero(key, sizeof(key));
	return rc;
}

/* 0 when addr is a user, else ADMIN_EXIT_FAIL after a message ("no such
 * user" or the store's failure).  With want_absent, the other way round. */
static int
check_user(const struct admin_server *srv, const char *addr, int want_absent)
{
	wse_user_rec rec;
	wse_status st = wse_store_user_get(srv->store, addr, &rec, NULL);

	if (st == WSE_OK && !want_absent)
		return 0;
	if (st == WSE_ERR_NOT_FOUND && want_absent) {
		wse_err_clear();
		return 0;
	}
	if (st == WSE_OK) {
		fprintf(stderr, "%s: user %s exists\n", ADMIN_PROG, addr);
		return ADMIN_EXIT_FAIL;
	}
	if (st == WSE_ERR_NOT_FOUND) {
		wse_err_clear();
		fprintf(stderr, "%s: no such user %s\n", ADMIN_PROG, addr);
		return ADMIN_EXIT_FAIL;
	}
	return admin_store_fail("cannot look the user up");
}

/* ---- the commands ---- */

/* user add / user passwd */
static int
user_set(struct admin_ctx *ctx, int argc, char **argv, int add)
{
	const char *pos[1], *pw_file = NULL;
	const struct admin_opt opts[] = {
		{ .name = "--password-file", .type = ADMIN_OPT_STRING,
		  .str = &pw_file },
	};
	struct admin_server srv;
	char addr[WSE_ADDR_MAX + 1];
	int n = 0, r;

	if ((r = admin_parse(ctx, argc, argv, opts, 1, pos, &n, 1, 1)) != 0)
		return r;
	if (pw_file != NULL && *pw_file == '\0')
		return admin_usage(ctx, "--password-file needs a value");
	if ((r = admin_server_open(ctx, &srv)) != 0)
		return r;
	if ((r = check_address(ctx, &srv, pos[0], addr)) != 0 ||
	    (r = check_cost(ctx, &srv)) != 0 ||
	    (r = check_user(&srv, addr, add)) != 0 ||
	    (r = set_password(&srv, addr, pw_file, add, ctx->now)) != 0)
		goto out;
	if (add)
		printf("added %s (PBKDF2-HMAC-SHA256, %u iterations)\n", addr,
		    (unsigned)srv.lim.pbkdf2_iterations);
	else
		printf("changed the password of %s (PBKDF2-HMAC-SHA256, %u "
		    "iterations)\n", addr,
		    (unsigned)srv.lim.pbkdf2_iterations);
	r = ADMIN_EXIT_OK;
out:
	admin_server_close(&srv);
	return r;
}

static int
cmd_user_add(struct admin_ctx *ctx, int argc, char **argv)
{
	return user_set(ctx, argc, argv, 1);
}

static int
cmd_user_passwd(struct admin_ctx *ctx, int argc, char **argv)
{
	return user_set(ctx, argc, argv, 0);
}

static int
cmd_user_del(struct admin_ctx *ctx, int argc, char **argv)
{
	const char *pos[1];
	struct admin_server srv;
	char addr[WSE_ADDR_MAX + 1];
	wse_status st;
	int n = 0, r;

	if ((r = admin_parse(ctx, argc, argv, NULL, 0, pos, &n, 1, 1)) != 0)
		return r;
	if ((r = admin_server_open(ctx, &srv)) != 0)
		return r;
	if ((r = check_address(ctx, &srv, pos[0], addr)) != 0)
		goto out;
	if ((st = wse_store_user_del(srv.store, addr)) == WSE_ERR_NOT_FOUND) {
		wse_err_clear();
		fprintf(stderr, "%s: no such user %s\n", ADMIN_PROG, addr);
		r = ADMIN_EXIT_FAIL;
		goto out;
	}
	if (st != WSE_OK) {
		r = admin_store_fail("cannot delete the user");
		goto out;
	}
	printf("deleted %s and its mailbox\n", addr);
	r = ADMIN_EXIT_OK;
out:
	admin_server_close(&srv);
	return r;
}

struct list_state {
	size_t n;
};

static wse_status
print_user(void *arg, const wse_user_rec *rec)
{
	struct list_state *ls = arg;
	char created[40];

	if (ls->n++ == 0)
		printf("%-40s %-20s %s\n", "ADDRESS", "CREATED", "ITERATIONS");
	printf("%-40s %-20s %u\n", rec->name,
	    admin_time(rec->created, created, sizeof(created)),
	    (unsigned)rec->iterations);
	return WSE_OK;
}

static int
cmd_user_list(struct admin_ctx *ctx, int argc, char **argv)
{
	struct admin_server srv;
	struct list_state ls = { 0 };
	int n = 0, r;

	if ((r = admin_parse(ctx, argc, argv, NULL, 0, NULL, &n, 0, 0)) != 0)
		return r;
	if ((r = admin_server_open(ctx, &srv)) != 0)
		return r;
	if (wse_store_user_list(srv.store, print_user, &ls) != WSE_OK) {
		r = admin_store_fail("cannot list the users");
		goto out;
	}
	if (ls.n == 0)
		printf("no users\n");
	r = ADMIN_EXIT_OK;
out:
	admin_server_close(&srv);
	return r;
}

const struct admin_cmd admin_user_cmds[] = {
	{ "user", "add", cmd_user_add, "ADDRESS [--password-file FILE]",
	  "add a user of the domain (password: $WSEMAIL_PASSWORD, FILE "
	  "or asked)" },
	{ "user", "passwd", cmd_user_passwd,
	  "ADDRESS [--password-file FILE]",
	  "set a new password (new salt, the configured cost)" },
	{ "user", "del", cmd_user_del, "ADDRESS",
	  "delete a user and its mailbox" },
	{ "user", "list", cmd_user_list, "",
	  "list the users: address, created, iterations" },
	{ NULL, NULL, NULL, NULL, NULL },
};
