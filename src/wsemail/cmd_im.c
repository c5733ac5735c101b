/*
 * cmd_im.c - instant messages (docs/im.md): "im", "listen", "chat",
 * "im-policy" and "presence".
 *
 *   im ADDRESS [TEXT] [--direct] [--server URL]
 *	A Submit to our own server of a message marked instant (its
 *	m:Instant field, inside the signed Body), password profile; the server delivers it at once and
 *	says "pushed" (to N sessions), "stored" (no session online: kept as
 *	mail flagged instant) or refuses (the recipient's policy).  With
 *	--direct the message goes straight to the recipient's server as a
 *	DeliverDirect signed with our token certificate (token.c); that
 *	server is found with --server, a "route = DOMAIN HOST:PORT" line, or
 *	DNS SRV _wsemail._tcp.DOMAIN ("dns_server" names the resolver).
 *   listen [--session NAME] [--once] [--count N] [--timeout S]
 *	A session: WaitInstant long-polls to our own server with a random
 *	session id per run and After = the last sequence number processed,
 *	kept in state_dir/ADDRESS.im-NAME.seq (written to a new file, synced
 *	and renamed over the old one after each message shown), so that a
 *	restarted session resumes with no loss and no duplicates.  One run
 *	per NAME at a time (state_dir/ADDRESS.im-NAME.lock).  Each message's
 *	original is verified end to end (cli_verify_original: the sending
 *	server's signature, or the roaming sender's token) before it is
 *	shown; one that fails is shown as such, never as a message.
 *   chat ADDRESS [--session NAME]
 *	A session (default NAME "chat") in a child process printing what
 *	arrives, while this process reads lines from standard input and
 *	sends each as an instant message to ADDRESS.  End of input (Ctrl-D)
 *	ends both.
 *   im-policy show | set --accept anyone|listed|nobody [--allow X]...
 *	[--block X]... [--presence-to X]...
 *	GetInstantPolicy / SetInstantPolicy at our own server.
 *   presence ADDRESS [--server URL]
 *	GetPresence at ADDRESS's server, signed with our token.
 *
 * Everything a sender chose is untrusted and printed through term_put.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "route.h"
#include "xml.h"
#include "wsemail.h"

#define IM_TEXT_MAX 65536	/* bytes of text in one instant message */
#define IM_WAIT 25		/* seconds a WaitInstant may be held */
#define IM_NAME_MAX 64		/* a session name */
#define IM_RETRY_MAX 30		/* seconds between tries when unreachable */
#define IM_URL_MAX 600

/* ---- small helpers ---- */

static double
now_s(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Remove the flags named in flags[] (options without a value) from argv:
 * set[i] is 1 when flags[i] was given.  *args_r (freed by the caller)
 * gets the other arguments; "--" and what follows are kept as they are.
 */
static int
take_flags(int argc, char **argv, const char *const *flags, int *set,
    char ***args_r, int *n_r)
{
	char **args;
	int i, k, n = 0;

	if ((args = calloc((size_t)argc + 1, sizeof(*args))) == NULL)
		return cli_fail("out of memory");
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < argc)
				args[n++] = argv[i++];
			break;
		}
		for (k = 0; flags[k] != NULL; k++)
			if (strcmp(argv[i], flags[k]) == 0)
				break;
		if (flags[k] != NULL)
			set[k] = 1;
		else
			args[n++] = argv[i];
	}
	*args_r = args;
	*n_r = n;
	return 0;
}

/* Write a whole line (already formatted) to fd 1 in one write, so that
 * the two processes of "chat" never interleave within a line. */
static void
put_line(char *line, size_t len)
{
	ssize_t w;

	fflush(stdout);
	while (len > 0) {
		w = write(STDOUT_FILENO, line, len);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		line += w;
		len -= (size_t)w;
	}
}

/* "[HH:MM:SS] " of t (local time) into buf. */
static void
stamp(int64_t t, char buf[16])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL ||
	    strftime(buf, 16, "[%H:%M:%S] ", &tm) == 0)
		(void)snprintf(buf, 16, "[--:--:--] ");
}

/* A normalised mailbox address from the command line. */
static int
rcpt_arg(const struct cli_cmd *cmd, const char *s, char *out, size_t size)
{
	if (wse_addr_normalize(s, out, size) != WSE_OK) {
		wse_err_clear();
		return cli_usage(cmd, "'%s' is not a mailbox address", s);
	}
	return 0;
}

/*
 * The text of an instant message: arg, or standard input (one trailing
 * newline dropped); UTF-8 text of 1 to IM_TEXT_MAX bytes.
 */
static int
im_text(const char *arg, char **text_r)
{
	wse_buf *b = NULL;
	char chunk[8192];
	ssize_t r;
	size_t n;
	char *t;

	*text_r = NULL;
	if (arg != NULL) {
		if ((t = strdup(arg)) == NULL)
			return cli_fail("out of memory");
	} else {
		if ((b = wse_buf_new(IM_TEXT_MAX + 2)) == NULL)
			return cli_fail("out of memory");
		if (isatty(STDIN_FILENO))
			fprintf(stderr, "(type the message; end it with Ctrl-D "
			    "on a line of its own)\n");
		while ((r = read(STDIN_FILENO, chunk, sizeof(chunk))) != 0) {
			if (r == -1 && errno == EINTR)
				continue;
			if (r == -1) {
				wse_buf_free(&b);
				return cli_fail("standard input: %s",
				    strerror(errno));
			}
			if (wse_buf_put(b, chunk, (size_t)r) != WSE_OK) {
				wse_buf_free(&b);
				wse_err_clear();
				return cli_fail("the text is longer than %d "
				    "bytes", IM_TEXT_MAX);
			}
		}
		if ((t = wse_buf_steal(b, NULL)) == NULL) {
			wse_buf_free(&b);
			return cli_fail("out of memory");
		}
		wse_buf_free(&b);
		n = strlen(t);
		if (n > 0 && t[n - 1] == '\n')
			t[--n] = '\0';
		if (n > 0 && t[n - 1] == '\r')
			t[--n] = '\0';
	}
	n = strlen(t);
	if (n == 0 || n > IM_TEXT_MAX || !term_utf8_ok(t, n)) {
		free(t);
		return cli_fail(n == 0 ? "the text is empty" : n > IM_TEXT_MAX ?
		    "the text is longer than 65536 bytes" : "the text is not "
		    "UTF-8 text (no NUL or control characters)");
	}
	*text_r = t;
	return CLI_EXIT_OK;
}

/*
 * <m:OP> with an instant message (m:Instant in its m:Message) from us to
 * rcpt </m:OP> into payload; a
 * Date when dated (a DeliverDirect: no server of ours sets it).
 */
static int
im_payload(const struct cli *c, const char *op, const char *rcpt,
    const char *text, int dated, wse_buf *payload)
{
	wse_msg *m = NULL;
	char date[21];
	int rc = CLI_EXIT_OK;

	wse_time_format((int64_t)time(NULL), date);
	if (wse_msg_new(&m) != WSE_OK ||
	    wse_msg_set(m, "from", c->address) != WSE_OK ||
	    wse_msg_add_rcpt(m, rcpt, 0) != WSE_OK ||
	    wse_msg_set(m, "text", text) != WSE_OK ||
	    (m->instant = 1) != 1 ||
	    (dated && wse_msg_set(m, "date", date) != WSE_OK))
		rc = cli_fail("cannot build the message");
	else if (wse_buf_printf(payload, "<m:%s xmlns:m=\"" WSE_NS_WSE "\">",
	    op) != WSE_OK || wse_msg_to_xml(m, payload) != WSE_OK ||
	    wse_buf_printf(payload, "</m:%s>", op) != WSE_OK) {
		wse_err_clear();
		rc = cli_fail("the message is larger than the limit of %zu "
		    "bytes", c->lim.max_message_bytes);
	}
	wse_msg_free(&m);
	return rc;
}

/*
 * One exchange with url (whose answers a service certificate of domain
 * signs): op with payload, signed by signer.  Like cli_call otherwise.
 */
static int
im_call(struct cli *c, const char *url, const char *connect,
    const char *domain, const char *op, const char *payload,
    const wse_signer *signer, struct cli_reply *r)
{
	wse_envelope *env = NULL;
	wse_buf *req = NULL, *resp = NULL;
	char action[128];
	wse_status st;
	long http = 0;
	int rc = CLI_EXIT_FAIL;

	memset(r, 0, sizeof(*r));
	wse_err_clear();
	c->last_refused = 0;
	c->last_fault = WSE_OK;
	(void)snprintf(action, sizeof(action), WSE_ACTION_PREFIX "%s", op);
	if (wse_env_new(url, action, &env) != WSE_OK ||
	    wse_env_add_body_xml(env, payload, strlen(payload), &c->lim) !=
	    WSE_OK || wse_wss_sign(env, signer, (int64_t)time(NULL), CLI_REQUEST_TTL) !=
	    WSE_OK) {
		rc = cli_fail("cannot build the %s request", op);
		goto out;
	}
	if ((req = wse_buf_new(c->lim.max_message_bytes)) == NULL ||
	    (resp = wse_buf_new(c->resp_lim.max_message_bytes)) == NULL) {
		rc = cli_fail("out of memory");
		goto out;
	}
	if (wse_env_serialize(env, req) != WSE_OK) {
		rc = cli_fail("cannot serialise the request");
		goto out;
	}
	if ((st = wse_http_post(c->http, url, connect, "application/soap+xml",
	    wse_buf_data(req), wse_buf_len(req), resp, &http)) != WSE_OK) {
		fprintf(stderr, "%s: cannot reach ", CLI_PROG);
		term_put(stderr, url, 0, 200);
		rc = cli_fail_tail();
		goto out;
	}
	rc = cli_check_answer(c, NULL, url, domain, op,
	    wse_env_message_id(env), resp, http, r);
out:
	if (rc != CLI_EXIT_OK)
		cli_reply_clear(r);
	wse_env_free(&env);
	wse_buf_free(&req);
	wse_buf_free(&resp);
	return rc;
}

/*
 * The endpoint of domain's server: override (--server), else the first
 * target of a "route = DOMAIN HOST:PORT" line or of DNS SRV
 * _wsemail._tcp.DOMAIN ("dns_server", default the system's resolver), as
 * https://HOST:PORT/wsemail.  *connect_r: the numeric address to use (a
 * "connect" line wins; else the target's first address; NULL: resolve).
 */
static int
find_server(struct cli *c, const char *domain, const char *override,
    char *url, size_t size, char *addr, size_t asize,
    const char **connect_r)
{
	wse_router *rt = NULL;
	wse_route_target *t = NULL;
	char host[256];
	size_t i, n = 0, nt = 0;
	long port;
	int rc = CLI_EXIT_FAIL;

	*connect_r = NULL;
	addr[0] = '\0';
	if (override != NULL) {
		if (cli_url_host(override, host, sizeof(host), &port) != 0 ||
		    strlen(override) >= size)
			return cli_fail("--server: '%s' is not an https:// URL",
			    override);
		(void)snprintf(url, size, "%s", override);
		*connect_r = cli_connect_for(c, url);
		return CLI_EXIT_OK;
	}
	if (wse_router_new(wse_config_get(c->cfg, "", "dns_server"), 5000,
	    &rt) != WSE_OK) {
		rc = cli_fail("%s: dns_server", c->config_path);
		goto out;
	}
	wse_err_clear();
	n = wse_config_count(c->cfg, "", "route");
	for (i = 0; i < n; i++) {
		const char *v = wse_config_get_nth(c->cfg, "", "route", i);
		char dom[256], tgt[300];

		if (v == NULL || sscanf(v, "%255s %299s", dom, tgt) != 2 ||
		    wse_router_add_static(rt, dom, tgt) != WSE_OK) {
			rc = cli_fail("%s: route \"%s\": use \"route = DOMAIN "
			    "HOST:PORT\"", c->config_path, v ? v : "");
			goto out;
		}
	}
	if (wse_router_resolve(rt, domain, &t, &nt) != WSE_OK || nt == 0) {
		rc = cli_fail("cannot find the server of %s (give --server "
		    "URL, a \"route = %s HOST:PORT\" line, or dns_server)",
		    domain, domain);
		goto out;
	}
	if ((size_t)snprintf(url, size, strchr(t[0].host, ':') != NULL ?
	    "https://[%s]:%u/wsemail" : "https://%s:%u/wsemail", t[0].host,
	    (unsigned)t[0].port) >= size) {
		rc = cli_fail("the server name of %s is too long", domain);
		goto out;
	}
	if ((*connect_r = cli_connect_for(c, url)) == NULL &&
	    t[0].naddrs > 0) {
		(void)snprintf(addr, asize, "%s", t[0].addrs[0]);
		*connect_r = addr;
	}
	rc = CLI_EXIT_OK;
out:
	free(t);
	wse_router_free(&rt);
	return rc;
}

/* "pushed" / "stored" as the server signed it, for rcpt: printed. */
static int
print_result(const char *rcpt, const char *result, const char *sessions)
{
	long long n = 0;

	if (result != NULL && strcmp(result, "pushed") == 0 &&
	    sessions != NULL && cli_number(sessions, 1, INT32_MAX, &n) == 0) {
		term_put(stdout, rcpt, 0, 0);
		printf(": pushed to %lld session(s)\n", n);
		return CLI_EXIT_OK;
	}
	if (result != NULL && strcmp(result, "stored") == 0) {
		term_put(stdout, rcpt, 0, 0);
		printf(": stored as mail (no session online)\n");
		return CLI_EXIT_OK;
	}
	return cli_fail("the server's answer gives no result for the instant "
	    "message");
}

/*
 * Send text to rcpt: through our server (Submit), or with t (a token)
 * straight to url (DeliverDirect).  The outcome is printed; with quiet,
 * only failures ("chat" prints its own line), and *pushed_r gets the
 * number of sessions (0: stored).
 */
static int
im_send(struct cli *c, const char *rcpt, const char *text,
    const struct cli_token *t, const char *url, const char *connect,
    int quiet, long long *pushed_r)
{
	struct cli_reply r;
	wse_buf *payload = NULL;
	xmlNodePtr n = NULL;
	char *id = NULL, *acc = NULL, norm[WSE_ADDR_MAX + 1];
	const char *result = NULL, *sessions = NULL, *who = NULL;
	long long k;
	int rc;

	memset(&r, 0, sizeof(r));
	if ((payload = wse_buf_new(c->lim.max_message_bytes)) == NULL)
		return cli_fail("out of memory");
	if (t == NULL) {
		if ((rc = im_payload(c, "Submit", rcpt, text, 0, payload)) !=
		    CLI_EXIT_OK || (rc = im_call(c, c->server, c->connect,
		    c->domain, "Submit", wse_buf_str(payload), c->signer,
		    &r)) != CLI_EXIT_OK)
			goto out;
		rc = CLI_EXIT_FAIL;
		if ((id = cli_child_text(r.payload, "Id", 128)) == NULL ||
		    !wse_uuid_urn_valid(id)) {
			rc = cli_fail("the server's SubmitResponse holds no "
			    "message id");
			goto out;
		}
		if (wse_xml_only_child(r.payload, WSE_NS_WSE, "Instant",
		    &n) != WSE_OK) {
			wse_err_clear();
			rc = cli_fail("the server did not take the message as "
			    "an instant message (queued as mail %s)", id);
			goto out;
		}
		who = wse_xml_attr(n, NULL, "rcpt");
	} else {
		if ((rc = im_payload(c, "DeliverDirect", rcpt, text, 1,
		    payload)) != CLI_EXIT_OK || (rc = im_call(c, url, connect,
		    wse_addr_domain(rcpt), "DeliverDirect",
		    wse_buf_str(payload), t->signer, &r)) != CLI_EXIT_OK)
			goto out;
		rc = CLI_EXIT_FAIL;
		if (wse_xml_only_child(r.payload, WSE_NS_WSE, "Accepted",
		    &n) != WSE_OK) {
			wse_err_clear();
			rc = cli_fail("the server's DeliverDirectResponse holds "
			    "no result");
			goto out;
		}
		who = acc = cli_child_text(r.payload, "Accepted",
		    WSE_ADDR_MAX + 1);
	}
	result = wse_xml_attr(n, NULL, "result");
	sessions = wse_xml_attr(n, NULL, "sessions");
	if (who == NULL || wse_addr_normalize(who, norm, sizeof(norm)) !=
	    WSE_OK || strcmp(norm, rcpt) != 0) {
		wse_err_clear();
		rc = cli_fail("the server's answer is about another recipient");
		goto out;
	}
	if (quiet) {
		if (result != NULL && strcmp(result, "stored") == 0)
			k = 0;
		else if (result == NULL || strcmp(result, "pushed") != 0 ||
		    sessions == NULL || cli_number(sessions, 1, INT32_MAX,
		    &k) != 0) {
			rc = cli_fail("the server's answer gives no result "
			    "for the instant message");
			goto out;
		}
		*pushed_r = k;
		rc = CLI_EXIT_OK;
	} else
		rc = print_result(rcpt, result, sessions);
out:
	cli_reply_clear(&r);
	wse_buf_free(&payload);
	free(id);
	free(acc);
	return rc;
}

/* ---- "wsemail im" ---- */

int
cmd_im(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv)
{
	static const char *const flags[] = { "--direct", NULL };
	int set[1] = { 0 };
	const char *server = NULL, *pos[2], *connect = NULL;
	const struct cli_opt opts[] = {
		{ "--server", &server, NULL },
	};
	char rcpt[WSE_ADDR_MAX + 1], url[IM_URL_MAX], addr[64], *text = NULL;
	char **args = NULL;
	struct cli c;
	struct cli_token t;
	int rc, n, npos;

	memset(&c, 0, sizeof(c));
	memset(&t, 0, sizeof(t));
	if ((rc = take_flags(argc, argv, flags, set, &args, &n)) != 0)
		return rc;
	rc = cli_parse(cmd, n, args, opts, 1, &config, pos, &npos, 2);
	free(args);
	if (rc != 0)
		return rc;
	if (npos < 1)
		return cli_usage(cmd, "to whom?");
	if ((rc = rcpt_arg(cmd, pos[0], rcpt, sizeof(rcpt))) != 0)
		return rc;
	if (server != NULL && !set[0])
		return cli_usage(cmd, "--server goes with --direct");
	if ((rc = cli_open(&c, config)) != CLI_EXIT_OK ||
	    (rc = im_text(npos == 2 && strcmp(pos[1], "-") != 0 ? pos[1] :
	    NULL, &text)) != CLI_EXIT_OK)
		goto out;
	if (!set[0]) {
		if ((rc = cli_login(&c)) == CLI_EXIT_OK)
			rc = im_send(&c, rcpt, text, NULL, NULL, NULL, 0, NULL);
		goto out;
	}
	if ((rc = find_server(&c, wse_addr_domain(rcpt), server, url,
	    sizeof(url), addr, sizeof(addr), &connect)) != CLI_EXIT_OK ||
	    (rc = cli_token_get(&c, 0, &t)) != CLI_EXIT_OK)
		goto out;
	rc = im_send(&c, rcpt, text, &t, url, connect, 0, NULL);
out:
	free(text);
	cli_token_clear(&t);
	cli_close(&c);
	return rc;
}

/* ---- sessions: "listen" and "chat" ---- */

struct im_sess {
	struct cli *c;
	char id[WSE_UUID_URN_LEN + 1];		/* this run's session id */
	char seq_path[1200], tmp_path[1300];
	int lock_fd;
	long long after;			/* last sequence number shown */
	long long shown;			/* messages shown in this run */
	long long bad;				/* of which did not verify */
	long long last;				/* the server's last, or -1 */
	int items;				/* in the last answer */
	int fatal;				/* the place cannot be kept */
};

static int
name_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > IM_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		    s[i] == '-'))
			return 0;
	return 1;
}

/* Lock the session NAME and read where it stopped. */
static int
sess_open(struct cli *c, const char *name, struct im_sess *s)
{
	char lock[1200], buf[32];
	ssize_t r;
	long long v;
	int fd;

	memset(s, 0, sizeof(*s));
	s->c = c;
	s->lock_fd = -1;
	s->last = -1;
	if (cli_state_dir_ready(c) != CLI_EXIT_OK)
		return CLI_EXIT_FAIL;
	if ((size_t)snprintf(s->seq_path, sizeof(s->seq_path),
	    "%s/%s.im-%s.seq", c->state_dir, c->address, name) >=
	    sizeof(s->seq_path) ||
	    (size_t)snprintf(lock, sizeof(lock), "%s/%s.im-%s.lock",
	    c->state_dir, c->address, name) >= sizeof(lock))
		return cli_fail("state_dir is too long");
	(void)snprintf(s->tmp_path, sizeof(s->tmp_path), "%s.new",
	    s->seq_path);
	if ((s->lock_fd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) == -1)
		return cli_fail("%s: %s", lock, strerror(errno));
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) == -1)
		return cli_fail("the session \"%s\" of %s is running already "
		    "(another one: --session NAME)", name, c->address);
	if ((fd = open(s->seq_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) ==
	    -1) {
		if (errno != ENOENT)
			return cli_fail("%s: %s", s->seq_path,
			    strerror(errno));
		return CLI_EXIT_OK;	/* a new session starts at 0 */
	}
	r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r < 0)
		return cli_fail("%s: %s", s->seq_path, strerror(errno));
	buf[r] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (cli_number(buf, 0, INT64_MAX, &v) != 0)
		return cli_fail("%s: not a sequence number (delete it to "
		    "start the session over)", s->seq_path);
	s->after = v;
	return CLI_EXIT_OK;
}

static void
sess_close(struct im_sess *s)
{
	if (s->lock_fd != -1)
		close(s->lock_fd);	/* releases the lock */
	s->lock_fd = -1;
}

/* Keep s->after: a new file, synced, renamed over the old one. */
static int
sess_save(struct im_sess *s)
{
	char buf[32];
	int fd, n, ok;

	n = snprintf(buf, sizeof(buf), "%lld\n", s->after);
	if ((fd = open(s->tmp_path, O_WRONLY | O_CREAT | O_TRUNC |
	    O_NOFOLLOW | O_CLOEXEC, 0600)) == -1)
		return cli_fail("%s: %s", s->tmp_path, strerror(errno));
	ok = write(fd, buf, (size_t)n) == n && fsync(fd) == 0;
	if (close(fd) != 0 || !ok || rename(s->tmp_path, s->seq_path) != 0) {
		(void)unlink(s->tmp_path);
		return cli_fail("cannot keep the session's place in %s: %s",
		    s->seq_path, strerror(errno));
	}
	return CLI_EXIT_OK;
}

/* One verified message, as one line (or several, for multi-line text). */
static void
show_item(struct im_sess *s, int64_t received, const struct cli_e2e *e)
{
	char when[16], *line = NULL;
	size_t len = 0;
	FILE *f;

	stamp(received, when);
	if ((f = open_memstream(&line, &len)) == NULL)
		return;
	fputs(when, f);
	if (e->valid && e->m != NULL) {
		term_put(f, e->m->from, 0, 0);
		fputs(": ", f);
		term_put(f, e->m->text ? e->m->text : "", 1, 0);
		if (e->direct) {
			fputs(" (signed by ", f);
			term_put(f, e->v.signer_mailbox, 0, 0);
			fputs("'s token from ", f);
			term_put(f, e->v.signer_domain ? e->v.signer_domain :
			    wse_addr_domain(e->m->from), 0, 0);
			fputs(")", f);
		} else {
			fputs(" (signed by ", f);
			term_put(f, e->v.signer_domain, 0, 0);
			fputs(")", f);
		}
		if (!s->c->crls_checked)
			fputs(" (revocation not checked)", f);
		else if (e->revocation[0] != '\0')
			fputs(" (revocation not checked for that domain)", f);
	} else {
		fprintf(f, "WARNING: an instant message that did NOT verify "
		    "(%s: ", e->subcode ? e->subcode : "?");
		term_put(f, e->detail, 0, 200);
		fputs(")", f);
		if (e->m != NULL) {
			fputs("; it claims to be from ", f);
			term_put(f, e->m->from, 0, 0);
			fputs(" and says: ", f);
			term_put(f, e->m->text ? e->m->text : "", 0, 200);
		} else {
			fputs("; ", f);
			term_put(f, e->why_not_shown, 0, 200);
		}
	}
	fputc('\n', f);
	if (fclose(f) == 0)
		put_line(line, len);
	free(line);
}

/* A number attribute of n (>= 0), or -1. */
static long long
num_attr(const xmlNode *n, const char *name)
{
	const char *v = wse_xml_attr(n, NULL, name);
	long long k;

	if (v == NULL || cli_number(v, 0, INT64_MAX, &k) != 0)
		return -1;
	return k;
}

/*
 * One item of a WaitInstantResponse: verified, shown, and its number
 * kept -- with SIGINT and SIGTERM held back, so that what is shown and
 * what is kept never differ.  Returns CLI_EXIT_FAIL when the place cannot
 * be kept.
 */
static int
sess_item(struct im_sess *s, const xmlNode *item)
{
	struct cli_e2e e;
	sigset_t block, old;
	wse_buf *orig = NULL;
	long long seq = num_attr(item, "seq");
	const char *recv_s = wse_xml_attr(item, NULL, "received");
	char *b64 = NULL;
	int64_t received;
	int rc;

	memset(&e, 0, sizeof(e));
	if (seq <= s->after)
		return CLI_EXIT_OK;		/* had it already */
	if (recv_s == NULL || wse_time_parse(recv_s, &received) != WSE_OK) {
		wse_err_clear();
		received = (int64_t)time(NULL);
	}
	b64 = cli_child_text(item, "Original",
	    s->c->resp_lim.max_message_bytes);
	if ((orig = wse_buf_new(s->c->resp_lim.max_message_bytes)) == NULL) {
		free(b64);
		return cli_fail("out of memory");
	}
	if (b64 == NULL || wse_base64_decode(b64, strlen(b64), orig) !=
	    WSE_OK) {
		wse_err_clear();
		e.valid = 0;
		e.subcode = "Invalid";
		(void)snprintf(e.detail, sizeof(e.detail), "item %lld holds "
		    "no readable original", seq);
		(void)snprintf(e.why_not_shown, sizeof(e.why_not_shown),
		    "there is nothing to show");
	} else
		cli_verify_original(s->c, orig, received, &e);
	free(b64);
	wse_buf_free(&orig);

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	(void)sigprocmask(SIG_BLOCK, &block, &old);
	show_item(s, received, &e);
	s->shown++;
	if (!e.valid)
		s->bad++;
	s->after = seq;
	if ((rc = sess_save(s)) != CLI_EXIT_OK)
		s->fatal = 1;
	(void)sigprocmask(SIG_SETMASK, &old, NULL);
	cli_e2e_clear(&e);
	return rc;
}

/*
 * One WaitInstant held at most wait seconds; the items are shown and
 * counted.  CLI_EXIT_FAIL (printed) when the call failed: then
 * c->last_refused tells a refusal from a network failure.
 */
static int
sess_poll(struct im_sess *s, int wait)
{
	struct cli_reply r;
	char payload[512];
	xmlNodePtr it;
	int rc;

	s->items = 0;
	if (s->id[0] == '\0' && wse_uuid_urn(s->id) != WSE_OK)
		return cli_fail("random");
	(void)snprintf(payload, sizeof(payload), "<m:WaitInstant xmlns:m=\""
	    WSE_NS_WSE "\"><m:Session>%s</m:Session><m:After>%lld</m:After>"
	    "<m:Wait>%d</m:Wait></m:WaitInstant>", s->id, s->after, wait);
	if ((rc = cli_call(s->c, "WaitInstant", payload, 0, &r)) !=
	    CLI_EXIT_OK)
		return rc;
	s->last = num_attr(r.payload, "last");
	for (it = wse_xml_first_elem(r.payload); it != NULL;
	    it = wse_xml_next_elem(it)) {
		if (!wse_xml_is(it, WSE_NS_WSE, "Item"))
			continue;
		s->items++;
		if ((rc = sess_item(s, it)) != CLI_EXIT_OK)
			break;
	}
	/* The server's log ends before our place (its state was lost): go
	 * on from where it is. */
	if (rc == CLI_EXIT_OK && s->last >= 0 && s->last < s->after) {
		fprintf(stderr, "%s: the server's instant log ends at %lld, "
		    "before this session's place %lld: going on from there\n",
		    CLI_PROG, s->last, s->after);
		s->after = s->last;
		if ((rc = sess_save(s)) != CLI_EXIT_OK)
			s->fatal = 1;
	}
	cli_reply_clear(&r);
	return rc;
}

struct run_opts {
	int once;
	long long count;		/* 0: no limit */
	long long timeout;		/* seconds, 0: none */
};

/*
 * The session's loop: poll until --count messages were shown, --timeout
 * passed, or (--once) nothing more is pending.  A network failure is
 * retried (after 1, 2, 4 ... 30 s); a refusal ends it.
 */
static int
sess_run(struct im_sess *s, const struct run_opts *o)
{
	double deadline = o->timeout > 0 ? now_s() + (double)o->timeout : 0;
	int backoff = 1, wait, rc;

	for (;;) {
		wait = o->once ? 1 : IM_WAIT;
		if (deadline > 0) {
			double left = deadline - now_s();

			if (left <= 0)
				break;
			if (left < wait)
				wait = left < 1 ? 1 : (int)left;
		}
		rc = sess_poll(s, wait);
		if (rc != CLI_EXIT_OK) {
			/* A refusal ends it; a signed TempFail (the server
			 * holds too many sessions) is tried again. */
			if ((s->c->last_refused &&
			    s->c->last_fault != WSE_ERR_TEMPFAIL) || s->fatal ||
			    o->once)
				return CLI_EXIT_FAIL;
			/* Not reachable (printed): try again. */
			if (deadline > 0 && now_s() + backoff >= deadline)
				break;
			sleep((unsigned)backoff);
			backoff = backoff * 2 > IM_RETRY_MAX ? IM_RETRY_MAX :
			    backoff * 2;
			continue;
		}
		backoff = 1;
		if (o->count > 0 && s->shown >= o->count)
			return CLI_EXIT_OK;
		if (o->once && (s->items == 0 || s->last <= s->after))
			return CLI_EXIT_OK;
	}
	if (o->count > 0 && s->shown < o->count)
		return cli_fail("%lld of %lld messages arrived in %lld s",
		    s->shown, o->count, o->timeout);
	return CLI_EXIT_OK;
}

int
cmd_listen(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv)
{
	static const char *const flags[] = { "--once", NULL };
	int set[1] = { 0 };
	const char *name = "default", *count_s = NULL, *timeout_s = NULL;
	const char *pos[1];
	const struct cli_opt opts[] = {
		{ "--session", &name, NULL },
		{ "--count", &count_s, NULL },
		{ "--timeout", &timeout_s, NULL },
	};
	struct run_opts ro;
	struct im_sess s;
	struct cli c;
	char **args = NULL;
	int rc, n, npos;

	memset(&c, 0, sizeof(c));
	memset(&s, 0, sizeof(s));
	memset(&ro, 0, sizeof(ro));
	s.lock_fd = -1;
	if ((rc = take_flags(argc, argv, flags, set, &args, &n)) != 0)
		return rc;
	rc = cli_parse(cmd, n, args, opts, 3, &config, pos, &npos, 0);
	free(args);
	if (rc != 0)
		return rc;
	ro.once = set[0];
	if (!name_ok(name))
		return cli_usage(cmd, "--session: letters, digits, '_' and "
		    "'-', at most %d", IM_NAME_MAX);
	if (count_s != NULL && cli_number(count_s, 1, INT32_MAX, &ro.count))
		return cli_usage(cmd, "--count: '%s' is not a number",
		    count_s);
	if (timeout_s != NULL && cli_number(timeout_s, 1, 1LL << 31,
	    &ro.timeout))
		return cli_usage(cmd, "--timeout: '%s' is not a number of "
		    "seconds", timeout_s);
	if ((rc = cli_open(&c, config)) != CLI_EXIT_OK ||
	    (rc = sess_open(&c, name, &s)) != CLI_EXIT_OK ||
	    (rc = cli_login(&c)) != CLI_EXIT_OK)
		goto out;
	/* On stderr, so that scripts know the session is up. */
	if (!ro.once)
		fprintf(stderr, "listening for instant messages to %s "
		    "(session %s, after %lld)%s\n", c.address, name, s.after,
		    isatty(STDOUT_FILENO) ? "; Ctrl-C ends" : "");
	rc = sess_run(&s, &ro);
out:
	sess_close(&s);
	cli_close(&c);
	return rc;
}

/* ---- "wsemail chat" ---- */

/* The receiving half of a chat: a child process, ended by SIGTERM. */
static void
chat_child(struct im_sess *s, pid_t parent)
{
	struct run_opts ro;
	int rc;

	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(0);
	/* The parent's HTTPS connections are its own. */
	if (cli_http_renew(s->c) != CLI_EXIT_OK)
		_exit(1);
	memset(&ro, 0, sizeof(ro));
	rc = sess_run(s, &ro);
	fflush(stdout);
	fflush(stderr);
	_exit(rc);
}

/* One line typed (or read) by the user: sent, and shown in the view. */
static void
chat_send(struct cli *c, const char *rcpt, const char *text, int tty)
{
	char when[16], *line = NULL;
	long long pushed = 0;
	size_t len = 0;
	FILE *f;

	if (im_send(c, rcpt, text, NULL, NULL, NULL, 1, &pushed) !=
	    CLI_EXIT_OK)
		return;		/* printed; the chat goes on */
	stamp((int64_t)time(NULL), when);
	if ((f = open_memstream(&line, &len)) == NULL)
		return;
	if (tty)
		fputs("\033[1A\r\033[K", f);	/* over the line typed */
	fputs(when, f);
	fputs("me: ", f);
	term_put(f, text, 0, 0);
	if (pushed > 0)
		fprintf(f, " (pushed to %lld session(s))\n", pushed);
	else
		fputs(" (stored as mail: no session online)\n", f);
	if (fclose(f) == 0)
		put_line(line, len);
	free(line);
}

/* Read lines from standard input and send them until its end, or until
 * the receiving child ends. */
static int
chat_loop(struct cli *c, const char *rcpt, pid_t child)
{
	char *buf, *nl;
	size_t have = 0, cap = IM_TEXT_MAX + 2;
	struct pollfd pfd;
	ssize_t r;
	int tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO), st, eof = 0;
	int skipping = 0;	/* the rest of a line too long to send */

	if ((buf = malloc(cap + 1)) == NULL)
		return cli_fail("out of memory");
	while (!eof) {
		if (waitpid(child, &st, WNOHANG) == child) {
			free(buf);
			fprintf(stderr, "%s: the receiving session ended\n",
			    CLI_PROG);
			return CLI_EXIT_FAIL;
		}
		pfd.fd = STDIN_FILENO;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 500) <= 0)
			continue;
		r = read(STDIN_FILENO, buf + have, cap - have);
		if (r == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0) {
			eof = 1;
			if (have == 0)
				break;
			buf[have++] = '\n';	/* the last, unended line */
		} else
			have += (size_t)r;
		buf[have] = '\0';
		while ((nl = memchr(buf, '\n', have)) != NULL) {
			size_t n = (size_t)(nl - buf);

			*nl = '\0';
			if (n > 0 && buf[n - 1] == '\r')
				buf[n - 1] = '\0';
			if (skipping)
				skipping = 0;
			else if (buf[0] != '\0') {
				if (!term_utf8_ok(buf, strlen(buf)))
					cli_fail("not sent: the line is not "
					    "UTF-8 text");
				else
					chat_send(c, rcpt, buf, tty);
			}
			memmove(buf, nl + 1, have - n - 1);
			have -= n + 1;
		}
		if (have == cap) {
			if (!skipping)
				cli_fail("not sent: a line longer than %d "
				    "bytes", IM_TEXT_MAX);
			skipping = 1;
			have = 0;
		}
	}
	free(buf);
	return CLI_EXIT_OK;
}

int
cmd_chat(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv)
{
	const char *name = "chat", *pos[1];
	const struct cli_opt opts[] = {
		{ "--session", &name, NULL },
	};
	char rcpt[WSE_ADDR_MAX + 1];
	struct im_sess s;
	struct cli c;
	pid_t parent = getpid(), child;
	int rc, npos, st;

	memset(&c, 0, sizeof(c));
	memset(&s, 0, sizeof(s));
	s.lock_fd = -1;
	if ((rc = cli_parse(cmd, argc, argv, opts, 1, &config, pos, &npos,
	    1)) != 0)
		return rc;
	if (npos != 1)
		return cli_usage(cmd, "with whom?");
	if ((rc = rcpt_arg(cmd, pos[0], rcpt, sizeof(rcpt))) != 0)
		return rc;
	if (!name_ok(name))
		return cli_usage(cmd, "--session: letters, digits, '_' and "
		    "'-', at most %d", IM_NAME_MAX);
	if ((rc = cli_open(&c, config)) != CLI_EXIT_OK ||
	    (rc = sess_open(&c, name, &s)) != CLI_EXIT_OK ||
	    (rc = cli_login(&c)) != CLI_EXIT_OK)
		goto out;
	if (isatty(STDOUT_FILENO))
		fprintf(stderr, "chat with %s: type a line and Enter to send "
		    "it; Ctrl-D ends\n", rcpt);
	fflush(stdout);
	fflush(stderr);
	if ((child = fork()) == -1) {
		rc = cli_fail("fork: %s", strerror(errno));
		goto out;
	}
	if (child == 0)
		chat_child(&s, parent);	/* does not return */
	rc = chat_loop(&c, rcpt, child);
	(void)kill(child, SIGTERM);
	while (waitpid(child, &st, 0) == -1 && errno == EINTR)
		;
out:
	sess_close(&s);
	cli_close(&c);
	return rc;
}

/* ---- "wsemail im-policy" ---- */

static const struct cli_cmd sub_show = {
	"im-policy show", NULL, "",
	"show your instant-message policy",
};
static const struct cli_cmd sub_set = {
	"im-policy set", NULL, "--accept anyone|listed|nobody [--allow X]... "
	"[--block X]... [--presence-to X]...",
	"replace your instant-message policy (X: an address or @domain)",
};

/* An address or "@domain" of a policy. */
static int
entry_ok(const char *s)
{
	char tmp[WSE_ADDR_MAX + 8];

	if (s[0] != '@')
		return wse_addr_valid(s);
	if ((size_t)snprintf(tmp, sizeof(tmp), "x%s", s) >= sizeof(tmp))
		return 0;
	return wse_addr_valid(tmp);
}

static int
put_entries(const struct cli_cmd *cmd, wse_buf *p, const char *elem,
    const struct cli_list *l, const char *opt)
{
	char norm[WSE_ADDR_MAX + 8];
	size_t i, k;

	for (i = 0; i < l->n; i++) {
		if (!entry_ok(l->v[i]))
			return cli_usage(cmd, "%s: '%s' is not an address or "
			    "@domain", opt, l->v[i]);
		for (k = 0; l->v[i][k] != '\0' && k + 1 < sizeof(norm); k++)
			norm[k] = (l->v[i][k] >= 'A' && l->v[i][k] <= 'Z') ?
			    (char)(l->v[i][k] + 32) : l->v[i][k];
		norm[k] = '\0';
		if (wse_buf_printf(p, "<m:%s>", elem) != WSE_OK ||
		    wse_buf_put_xml_escaped(p, norm, strlen(norm)) != WSE_OK ||
		    wse_buf_printf(p, "</m:%s>", elem) != WSE_OK)
			return cli_fail("out of memory");
	}
	return 0;
}

static void
show_policy(const xmlNode *pol)
{
	static const struct {
		const char *elem, *label;
	} rows[] = {
		{ "Allow", "allow" }, { "Block", "block" },
		{ "PresenceTo", "presence to" },
	};
	char *accept = cli_child_text(pol, "Accept", 16);
	xmlNodePtr n;
	wse_buf *b;
	size_t i, k;

	wse_err_clear();
	fputs("accept: ", stdout);
	term_put(stdout, accept ? accept : "?", 0, 0);
	fputc('\n', stdout);
	free(accept);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		k = 0;
		printf("%s:", rows[i].label);
		for (n = wse_xml_first_elem(pol); n; n = wse_xml_next_elem(n)) {
			if (!wse_xml_is(n, WSE_NS_WSE, rows[i].elem) ||
			    (b = wse_buf_new(WSE_ADDR_MAX + 8)) == NULL)
				continue;
			if (wse_xml_text(n, b) == WSE_OK) {
				fputc(' ', stdout);
				term_put(stdout, wse_buf_str(b), 0, 0);
				k++;
			}
			wse_buf_free(&b);
		}
		printf("%s\n", k == 0 ? " (none)" : "");
	}
	wse_err_clear();
}

int
cmd_im_policy(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv)
{
	struct cli_list allow = { NULL, 0 }, block = { NULL, 0 };
	struct cli_list pres = { NULL, 0 };
	const char *accept = NULL, *pos[1];
	const struct cli_opt opts[] = {
		{ "--accept", &accept, NULL },
		{ "--allow", NULL, &allow },
		{ "--block", NULL, &block },
		{ "--presence-to", NULL, &pres },
	};
	struct cli c;
	struct cli_reply r;
	wse_buf *p = NULL;
	int rc, npos;

	memset(&c, 0, sizeof(c));
	memset(&r, 0, sizeof(r));
	if (argc < 1 || (strcmp(argv[0], "show") != 0 &&
	    strcmp(argv[0], "set") != 0)) {
		if (argc >= 1 && (strcmp(argv[0], "-h") == 0 ||
		    strcmp(argv[0], "--help") == 0)) {
			printf("%s\nusage:\n  %s im-policy show\n  %s "
			    "im-policy %s\n", cmd->summary, CLI_PROG, CLI_PROG,
			    "set " "--accept anyone|listed|nobody "
			    "[--allow X]... [--block X]... "
			    "[--presence-to X]...");
			return CLI_HELP_SHOWN;
		}
		return cli_usage(cmd, "im-policy show, or im-policy set");
	}
	if (strcmp(argv[0], "show") == 0) {
		if ((rc = cli_parse(&sub_show, argc - 1, argv + 1, NULL, 0,
		    &config, pos, &npos, 0)) != 0)
			return rc;
		if ((rc = cli_open(&c, config)) != CLI_EXIT_OK ||
		    (rc = cli_login(&c)) != CLI_EXIT_OK ||
		    (rc = cli_call(&c, "GetInstantPolicy", "<m:GetInstantPolicy "
		    "xmlns:m=\"" WSE_NS_WSE "\"/>", 0, &r)) != CLI_EXIT_OK)
			goto out;
		show_policy(r.payload);
		goto out;
	}
	if ((rc = cli_parse(&sub_set, argc - 1, argv + 1, opts, 4, &config,
	    pos, &npos, 0)) != 0)
		goto out;
	if (accept == NULL || (strcmp(accept, "anyone") != 0 &&
	    strcmp(accept, "listed") != 0 && strcmp(accept, "nobody") != 0)) {
		rc = cli_usage(&sub_set, "--accept anyone, listed or nobody");
		goto out;
	}
	if ((p = wse_buf_new(1 << 20)) == NULL) {
		rc = cli_fail("out of memory");
		goto out;
	}
	if (wse_buf_printf(p, "<m:SetInstantPolicy xmlns:m=\"" WSE_NS_WSE
	    "\"><m:Accept>%s</m:Accept>", accept) != WSE_OK) {
		rc = cli_fail("out of memory");
		goto out;
	}
	if ((rc = put_entries(&sub_set, p, "Allow", &allow, "--allow")) != 0 ||
	    (rc = put_entries(&sub_set, p, "Block", &block, "--block")) != 0 ||
	    (rc = put_entries(&sub_set, p, "PresenceTo", &pres,
	    "--presence-to")) != 0)
		goto out;
	if (wse_buf_puts(p, "</m:SetInstantPolicy>") != WSE_OK) {
		rc = cli_fail("out of memory");
		goto out;
	}
	if ((rc = cli_open(&c, config)) != CLI_EXIT_OK ||
	    (rc = cli_login(&c)) != CLI_EXIT_OK ||
	    (rc = cli_call(&c, "SetInstantPolicy", wse_buf_str(p), 0, &r)) !=
	    CLI_EXIT_OK)
		goto out;
	printf("policy set: accept %s; %zu allowed, %zu blocked, presence "
	    "visible to %zu\n", accept, allow.n, block.n, pres.n);
out:
	free(allow.v);
	free(block.v);
	free(pres.v);
	wse_buf_free(&p);
	cli_reply_clear(&r);
	cli_close(&c);
	return rc;
}

/* ---- "wsemail presence" ---- */

int
cmd_presence(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv)
{
	const char *server = NULL, *pos[1], *connect = NULL, *online;
	const struct cli_opt opts[] = {
		{ "--server", &server, NULL },
	};
	char who[WSE_ADDR_MAX + 1], url[IM_URL_MAX], addr[64], payload[512];
	char norm[WSE_ADDR_MAX + 1];
	struct cli c;
	struct cli_token t;
	struct cli_reply r;
	xmlNodePtr u;
	wse_buf *b = NULL;
	int rc, npos;

	memset(&c, 0, sizeof(c));
	memset(&t, 0, sizeof(t));
	memset(&r, 0, sizeof(r));
	if ((rc = cli_parse(cmd, argc, argv, opts, 1, &config, pos, &npos,
	    1)) != 0)
		return rc;
	if (npos != 1)
		return cli_usage(cmd, "whose presence?");
	if ((rc = rcpt_arg(cmd, pos[0], who, sizeof(who))) != 0)
		return rc;
	if ((rc = cli_open(&c, config)) != CLI_EXIT_OK ||
	    (rc = find_server(&c, wse_addr_domain(who), server, url,
	    sizeof(url), addr, sizeof(addr), &connect)) != CLI_EXIT_OK ||
	    (rc = cli_token_get(&c, 0, &t)) != CLI_EXIT_OK)
		goto out;
	(void)snprintf(payload, sizeof(payload), "<m:GetPresence xmlns:m=\""
	    WSE_NS_WSE "\"><m:User>%s</m:User></m:GetPresence>", who);
	if ((rc = im_call(&c, url, connect, wse_addr_domain(who),
	    "GetPresence", payload, t.signer, &r)) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	if (wse_xml_only_child(r.payload, WSE_NS_WSE, "User", &u) != WSE_OK ||
	    (b = wse_buf_new(WSE_ADDR_MAX + 1)) == NULL ||
	    wse_xml_text(u, b) != WSE_OK ||
	    wse_addr_normalize(wse_buf_str(b), norm, sizeof(norm)) != WSE_OK ||
	    strcmp(norm, who) != 0 ||
	    (online = wse_xml_attr(u, NULL, "online")) == NULL ||
	    (strcmp(online, "true") != 0 && strcmp(online, "false") != 0)) {
		wse_err_clear();
		rc = cli_fail("the server's GetPresenceResponse is malformed");
		goto out;
	}
	printf("%s: %s\n", who, strcmp(online, "true") == 0 ? "online" :
	    "offline");
	rc = CLI_EXIT_OK;
out:
	wse_buf_free(&b);
	cli_reply_clear(&r);
	cli_token_clear(&t);
	cli_close(&c);
	return rc;
}
