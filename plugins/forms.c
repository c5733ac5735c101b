/*
 * forms.c - the server's part of routed forms (paper section 3, Figure 3;
 * docs/forms.md, docs/forms-server.md): a domain's router hops and its
 * final party.
 *
 *   plugin = /usr/lib/wsemail/plugins/forms.so dir=/var/lib/wsemail/forms
 *            cert=/etc/wsemail/service.pem key=/etc/wsemail/service-key.pem
 *            ca=/etc/wsemail/domain-ca.pem roots=/etc/wsemail/roots.pem
 *            crl=/etc/wsemail/root-crl.pem crl=... publisher=pub.pem ...
 *            [mailbox=forms] [param.KEY=VALUE ...] [retry=300]
 *            [max_delegation=2] [lua_memory=] [lua_instructions=]
 *            [lua_millis=] [fetch_connect=ADDR]
 *
 * (one line).  Forms travel as signed mail with the serialised form as an
 * attachment of type WSE_FORM_MEDIA_TYPE (lib/formtype.h).  The message
 * hook takes every message addressed to <mailbox>@<domain>: it stores the
 * form durably (de-duplicated by the SHA-256 of its bytes) and wakes the
 * worker thread; it never verifies anything itself, so that a delivery
 * is answered quickly.  The worker then, per form:
 *   - parses and verifies it (wse_form_verify with this server's roots
 *     and CRLs, at host->now());
 *   - a router hop of this domain: loads the form's type (its signed Lua
 *     plugin, from the cache or fetched, checked against the configured
 *     publishers and the digest the form names), asks its route() for the
 *     approvers, signs an insert with the service certificate and sends
 *     the form on to the next party;
 *   - the final party, this domain: verifies again with require_complete
 *     and final_party, runs the type's check() on an approved form (the
 *     type's rules are enforced again at the end), signs the accept and
 *     sends the closed form to the claimant;
 *   - anything else is refused and the sender is told why; a form whose
 *     type cannot be loaded or run now stays pending and is retried.
 *
 * Storage, under dir (created 0700): forms.db (SQLite, WAL,
 * synchronous=FULL; tables incoming, accepted, outbox) and types/, the
 * cache of accepted type plugins (lib/formtype.h).  Every message the
 * plugin sends goes through the outbox table: a decision and the messages
 * it implies are committed together, then submitted (host->submit) and
 * marked sent, so that a crash or a server not yet serving delays a
 * message but never loses it.
 *
 * SECURITY: nothing in a form is believed before wse_form_verify; the
 * type's code runs only in the sandbox (lib/luabox.h), bounded in time,
 * instructions and memory, in a fresh box per form; a plugin that fails
 * leaves the form pending, never accepted.  Notices are never sent in
 * answer to a non-delivery report, nor to another server's forms
 * mailbox (two forms services must not answer each other forever), and
 * are submitted without non-delivery reports.
 *
 * Threads: the hooks run concurrently with the worker.  One mutex guards
 * the database connection and its statements; it is held only for short
 * database work, never while verifying, running Lua or calling
 * host->submit.  The trust store, the http client and the signing key
 * are used by the worker alone.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "form.h"
#include "formtype.h"
#include "pki.h"
#include "plugin.h"
#include "sqlitedb.h"
#include "xml.h"

#define SCHEMA_VERSION 1
#define BUSY_TIMEOUT_MS 5000
#define REASON_MAX 1024
#define SUBJECT_MAX 300
#define BODY_MAX (256u * 1024)
#define MAX_PATHS 32			/* crl=, publisher= */
#define MAX_OUT 4			/* messages one decision sends */
#define ROUND_MAX 64			/* rows per worker round */
#define WAKE_MS 1000			/* the worker looks at the clock */
#define SUBMIT_RETRY 30			/* s, after host->submit failed */
#define PURGE_INTERVAL 3600
#define KEEP_BYTES (40LL * 86400)	/* form bytes of decided rows */
#define KEEP_SENT (7LL * 86400)		/* sent outbox rows (de-dup) */
#define STATUS_MAX 50			/* rows in a FormStatus answer */
#define FETCH_CONNECT_MS 5000
#define FETCH_TIMEOUT_MS 20000

#define DEF_RETRY 300
#define RETRY_MAX (7LL * 86400)
#define DEF_MAX_DELEGATION 2

enum {
	Q_BEGIN, Q_COMMIT, Q_ROLLBACK,
	Q_IN_INSERT, Q_IN_BY_SHA, Q_IN_DUE, Q_IN_GET, Q_IN_UPDATE,
	Q_IN_ROUTED, Q_AC_GET, Q_AC_INSERT, Q_OB_INSERT, Q_OB_DUE,
	Q_OB_DONE, Q_OB_LATER, Q_STATUS, Q_PURGE_IN, Q_PURGE_OB,
	Q__COUNT
};

static const char *const sql_text[Q__COUNT] = {
	[Q_BEGIN] = "BEGIN IMMEDIATE",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	[Q_IN_INSERT] = "INSERT OR IGNORE INTO incoming (sha256, received,"
	    " sender, origin, origin_id, form, state, reason, next_try,"
	    " notified) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'new', '', ?2, 0)",
	[Q_IN_BY_SHA] = "SELECT id, state FROM incoming WHERE sha256 = ?1",
	[Q_IN_DUE] = "SELECT id FROM incoming WHERE state = 'new'"
	    " OR (state = 'pending' AND next_try <= ?1)"
	    " ORDER BY id LIMIT 1",
	[Q_IN_GET] = "SELECT form, sender, state, notified, expires,"
	    " received, reason, claimant, type, form_id FROM incoming"
	    " WHERE id = ?1",
	[Q_IN_UPDATE] = "UPDATE incoming SET state = ?2, reason = ?3,"
	    " next_try = ?4, form_id = ?5, type = ?6, claimant = ?7,"
	    " nrecords = ?8, outcome = ?9, expires = ?10, notified = ?11,"
	    " decided = ?12 WHERE id = ?1",
	[Q_IN_ROUTED] = "SELECT received FROM incoming WHERE form_id = ?1"
	    " AND nrecords = ?2 AND state = 'routed' AND id <> ?3 LIMIT 1",
	[Q_AC_GET] = "SELECT outcome, time FROM accepted WHERE form_id = ?1",
	[Q_AC_INSERT] = "INSERT INTO accepted (form_id, type, claimant,"
	    " outcome, time, form, incoming)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[Q_OB_INSERT] = "INSERT OR IGNORE INTO outbox (dedup, incoming, rcpt,"
	    " subject, body, form, created, next_try, sent)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 0)",
	[Q_OB_DUE] = "SELECT id, rcpt, subject, body, form FROM outbox"
	    " WHERE sent = 0 AND next_try <= ?1 ORDER BY id LIMIT 1",
	[Q_OB_DONE] = "UPDATE outbox SET sent = 1, form = NULL, body = '',"
	    " next_try = ?2 WHERE id = ?1",
	[Q_OB_LATER] = "UPDATE outbox SET next_try = ?2 WHERE id = ?1",
	[Q_STATUS] = "SELECT state, outcome, reason, received, decided, type,"
	    " claimant, sender FROM incoming WHERE form_id = ?1"
	    " AND (claimant = ?2 OR sender = ?2) ORDER BY id LIMIT ?3",
	[Q_PURGE_IN] = "UPDATE incoming SET form = NULL WHERE form IS NOT NULL"
	    " AND state IN ('routed', 'accepted', 'refused')"
	    " AND decided < ?1",
	[Q_PURGE_OB] = "DELETE FROM outbox WHERE sent = 1 AND next_try < ?1",
};

/*
 * incoming: one row per distinct form received (sha256 of its bytes).
 *   state: new (not looked at yet), pending (to retry at next_try),
 *   routed, accepted, refused (final).  form_id .. expires are filled in
 *   once the form verified.
 * accepted: the forms this domain closed, with the closed form's bytes.
 * outbox: messages to submit; dedup (NULL but for notices answering a
 *   delivery without a form) keeps a repeated delivery from being
 *   answered twice.
 */
static const char schema[] =
	"CREATE TABLE IF NOT EXISTS incoming ("
	" id INTEGER PRIMARY KEY,"
	" sha256 TEXT NOT NULL UNIQUE,"
	" received INTEGER NOT NULL,"
	" sender TEXT NOT NULL,"
	" origin TEXT NOT NULL,"
	" origin_id TEXT NOT NULL,"
	" form BLOB,"
	" state TEXT NOT NULL,"
	" reason TEXT NOT NULL,"
	" next_try INTEGER NOT NULL,"
	" notified INTEGER NOT NULL,"
	" form_id TEXT,"
	" type TEXT,"
	" claimant TEXT,"
	" nrecords INTEGER,"
	" outcome TEXT,"
	" expires INTEGER,"
	" decided INTEGER);"
	"CREATE INDEX IF NOT EXISTS incoming_due ON incoming (state, next_try);"
	"CREATE INDEX IF NOT EXISTS incoming_form ON incoming (form_id);"
	"CREATE TABLE IF NOT EXISTS accepted ("
	" form_id TEXT PRIMARY KEY NOT NULL,"
	" type TEXT NOT NULL,"
	" claimant TEXT NOT NULL,"
	" outcome TEXT NOT NULL,"
	" time INTEGER NOT NULL,"
	" form BLOB NOT NULL,"
	" incoming INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS outbox ("
	" id INTEGER PRIMARY KEY,"
	" dedup TEXT UNIQUE,"
	" incoming INTEGER,"
	" rcpt TEXT NOT NULL,"
	" subject TEXT NOT NULL,"
	" body TEXT NOT NULL,"
	" form BLOB,"
	" created INTEGER NOT NULL,"
	" next_try INTEGER NOT NULL,"
	" sent INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS outbox_due ON outbox (sent, next_try);"
	"PRAGMA user_version = 1;";

/* A file whose change makes the worker rebuild its trust store. */
struct watched {
	char *path;
	struct timespec mtime;
	off_t size;
};

struct fp {
	const struct wse_plugin_host *host;
	char *dir;
	char *types_dir;
	int dirfd;
	char domain[WSE_FORM_PARTY_MAX];	/* lower case */
	char mailbox[65];
	char addr[WSE_ADDR_MAX + 1];		/* mailbox@domain */

	/* Signing (the worker only). */
	wse_key *key;
	wse_cert *cert;
	wse_cert *ca;

	/* Verification (the worker only): roots, then CRLs. */
	struct watched trust_files[1 + MAX_PATHS];
	size_t ntrust_files;			/* [0] is roots= */
	wse_trust *trust;
	wse_cert *publishers[MAX_PATHS];
	size_t npublishers;
	wse_http_client *http;
	char *fetch_connect;

	char *param_keys[WSE_FORMTYPE_MAX_PARAMS];
	char *param_values[WSE_FORMTYPE_MAX_PARAMS];
	size_t nparams;
	int64_t retry;
	unsigned max_delegation;
	wse_luabox_limits limits;

	pthread_mutex_t lock;		/* db, stmt, stop, kick */
	int lock_ok;
	pthread_cond_t cond;
	int cond_ok;
	pthread_t thread;
	int thread_ok;
	int stop;
	int kick;
	sqlite3 *db;
	sqlite3_stmt *stmt[Q__COUNT];
	int64_t last_purge;
};

static const char *const fp_ops[] = { "FormStatus", NULL };
static const unsigned fp_op_flags[] = { WSE_PLUGIN_OP_PASSWORD };

/* ---- small helpers ---- */

/* Replace what a mail text or XML could not carry (controls, DEL, and
 * anything outside ASCII: reasons are for people and logs). */
static void
sanitize(char *s)
{
	unsigned char *p;

	for (p = (unsigned char *)s; *p != '\0'; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
		else if (*p < 0x20 || *p >= 0x7f)
			*p = '?';
}

/* 1 when the len bytes at s are UTF-8 without controls but TAB and LF. */
static int
text_ok(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n, k;
	uint32_t c;

	while (i < len) {
		c = p[i];
		if (c < 0x80) {
			if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
				return 0;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, c &= 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, c &= 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, c &= 0x07;
		else
			return 0;
		for (k = 1; k <= n; k++) {
			if (i + k >= len || (p[i + k] & 0xc0) != 0x80)
				return 0;
			c = c << 6 | (p[i + k] & 0x3f);
		}
		if ((n == 2 && c < 0x800) || (n == 3 && (c < 0x10000 ||
		    c > 0x10ffff)) || (c >= 0xd800 && c <= 0xdfff) ||
		    (c >= 0x80 && c <= 0x9f))
			return 0;
		i += n + 1;
	}
	return 1;
}

/* The first 8 hex digits of a form id, for subjects and logs. */
static void
short_id(const char *id, char out[9])
{
	const char *p = id;

	if (strncmp(p, "urn:uuid:", 9) == 0)
		p += 9;
	(void)snprintf(out, 9, "%.8s", p);
}

/* The error stack as one line, then cleared. */
static void
err_text(char *buf, size_t size)
{
	wse_err_format(buf, size);
	if (buf[0] == '\0')
		(void)snprintf(buf, size, "unknown error");
	wse_err_clear();
}

static int
parse_u64(const char *s, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t i;

	if (s == NULL || s[0] == '\0')
		return 0;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 19)
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*v_r = v;
	return 1;
}

/* A notice may go to addr: not a report address, not a forms service. */
static int
answerable(const struct fp *o, const char *addr)
{
	const char *at = strchr(addr, '@');
	size_t n;

	if (at == NULL)
		return 0;
	n = (size_t)(at - addr);
#define LOCAL_IS(s) (n == strlen(s) && strncasecmp(addr, s, n) == 0)
	if (LOCAL_IS("mailer-daemon") || LOCAL_IS("postmaster") ||
	    LOCAL_IS(WSE_FORM_MAILBOX) || LOCAL_IS(o->mailbox))
		return 0;
#undef LOCAL_IS
	return 1;
}

/* ---- database ---- */

static wse_status
db_fail(struct fp *o, int rc, const char *what)
{
	return wse_sqlite_fail("forms", o->db, rc, what);
}

static void
q_done(sqlite3_stmt *s)
{
	(void)sqlite3_reset(s);
	(void)sqlite3_clear_bindings(s);
}

static int
bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL)
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

static int
bind_blob(sqlite3_stmt *s, int i, const wse_buf *b)
{
	if (b == NULL)
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_blob(s, i, wse_buf_data(b), (int)wse_buf_len(b),
	    SQLITE_TRANSIENT);
}

/* Step a statement that returns no row; reset it. */
static wse_status
q_run(struct fp *o, int q, const char *what)
{
	int rc = sqlite3_step(o->stmt[q]);

	q_done(o->stmt[q]);
	if (rc != SQLITE_DONE)
		return db_fail(o, rc, what);
	return WSE_OK;
}

/* A column's text copied into out (size bytes), "" for NULL. */
static void
col_text(sqlite3_stmt *s, int i, char *out, size_t size)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	(void)snprintf(out, size, "%s", t != NULL ? (const char *)t : "");
}

static wse_status
db_begin(struct fp *o)
{
	return q_run(o, Q_BEGIN, "begin");
}

static wse_status
db_commit(struct fp *o)
{
	return q_run(o, Q_COMMIT, "commit");
}

static void
db_rollback(struct fp *o)
{
	if (!sqlite3_get_autocommit(o->db))
		(void)q_run(o, Q_ROLLBACK, "rollback");
	wse_err_clear();
}

/* Queue one message in the outbox (inside the caller's transaction or
 * alone).  dedup may be NULL. */
static wse_status
outbox_add(struct fp *o, const char *dedup, int64_t incoming,
    const char *rcpt, const char *subject, const char *body,
    const wse_buf *form, int64_t now)
{
	sqlite3_stmt *s = o->stmt[Q_OB_INSERT];

	if (bind_text(s, 1, dedup) != SQLITE_OK ||
	    (incoming > 0 ? sqlite3_bind_int64(s, 2, incoming) :
	    sqlite3_bind_null(s, 2)) != SQLITE_OK ||
	    bind_text(s, 3, rcpt) != SQLITE_OK ||
	    bind_text(s, 4, subject) != SQLITE_OK ||
	    bind_text(s, 5, body) != SQLITE_OK ||
	    bind_blob(s, 6, form) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 7, now) != SQLITE_OK) {
		q_done(s);
		return db_fail(o, SQLITE_NOMEM, "bind");
	}
	return q_run(o, Q_OB_INSERT, "queue a message");
}

/* ---- the worker: one form ---- */

struct row {
	int64_t id;
	wse_buf *form;
	char sender[WSE_ADDR_MAX + 1];
	char state[16];
	int notified;
	int64_t expires;
	int64_t received;
	char reason[REASON_MAX];
	char claimant[WSE_FORM_PARTY_MAX];
	char type[WSE_FORM_NAME_MAX + 1];
	char form_id[WSE_UUID_URN_LEN + 1];
};

struct outmsg {
	char rcpt[WSE_ADDR_MAX + 1];
	char subject[SUBJECT_MAX];
	wse_buf *body;
	wse_buf *form;		/* attachment, or NULL */
};

/* What the worker decided about one row. */
struct decision {
	const char *state;	/* routed, accepted, refused, pending */
	char reason[REASON_MAX];
	char form_id[WSE_UUID_URN_LEN + 1];
	char type[WSE_FORM_NAME_MAX + 1];
	char claimant[WSE_FORM_PARTY_MAX];
	size_t nrecords;
	const char *outcome;	/* accepted forms, else NULL */
	int64_t expires;
	int notified;
	int64_t next_try;
	int64_t decided;
	wse_buf *closed;	/* accepted: the closed form */
	struct outmsg out[MAX_OUT];
	size_t nout;
};

static void
decision_clear(struct decision *d)
{
	size_t i;

	for (i = 0; i < d->nout; i++) {
		wse_buf_free(&d->out[i].body);
		wse_buf_free(&d->out[i].form);
	}
	wse_buf_free(&d->closed);
	memset(d, 0, sizeof(*d));
}

/* A new outgoing message to rcpt (NULL when rcpt already has one or
 * cannot be answered: then nothing is sent to it). */
static struct outmsg *
out_new(struct fp *o, struct decision *d, const char *rcpt, int notice)
{
	struct outmsg *m;
	size_t i;

	if (rcpt == NULL || rcpt[0] == '\0' || d->nout >= MAX_OUT ||
	    !wse_addr_valid(rcpt) || (notice && !answerable(o, rcpt)))
		return NULL;
	for (i = 0; i < d->nout; i++)
		if (strcasecmp(d->out[i].rcpt, rcpt) == 0)
			return NULL;
	m = &d->out[d->nout];
	memset(m, 0, sizeof(*m));
	if ((m->body = wse_buf_new(BODY_MAX)) == NULL)
		return NULL;
	if (wse_addr_normalize(rcpt, m->rcpt, sizeof(m->rcpt)) != WSE_OK) {
		wse_buf_free(&m->body);
		wse_err_clear();
		return NULL;
	}
	d->nout++;
	return m;
}

/* A text notice to rcpt. */
static void notice(struct fp *o, struct decision *d, const char *rcpt,
    const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
notice(struct fp *o, struct decision *d, const char *rcpt,
    const char *subject, const char *fmt, ...)
{
	struct outmsg *m;
	char text[4096];
	va_list ap;

	if ((m = out_new(o, d, rcpt, 1)) == NULL)
		return;
	(void)snprintf(m->subject, sizeof(m->subject), "%s", subject);
	va_start(ap, fmt);
	(void)vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	(void)wse_buf_puts(m->body, text);
}

/* "Form expense 1a2b3c4d" or "Your form" when nothing verified. */
static void
form_label(const struct decision *d, char *out, size_t size)
{
	char sid[9];

	if (d->form_id[0] == '\0') {
		(void)snprintf(out, size, "Form");
		return;
	}
	short_id(d->form_id, sid);
	(void)snprintf(out, size, "Form %s %s", d->type, sid);
}

static void
set_reason(struct decision *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
set_reason(struct decision *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
	va_end(ap);
	sanitize(d->reason);
}

/* Refused: the sender (and, when asked, the claimant) is told why. */
static void
refuse(struct fp *o, const struct row *r, struct decision *d,
    int tell_claimant)
{
	char label[128], subject[SUBJECT_MAX];

	d->state = "refused";
	d->decided = o->host->now();
	form_label(d, label, sizeof(label));
	(void)snprintf(subject, sizeof(subject), "%s: refused", label);
	notice(o, d, r->sender, subject, "The forms service of %s refused "
	    "the form you sent it%s%s.\n\nReason: %s\n\nNothing was signed "
	    "or sent on; this server will not look at these bytes again.\n",
	    o->domain, d->form_id[0] != '\0' ? " " : "", d->form_id,
	    d->reason);
	if (tell_claimant && d->claimant[0] != '\0')
		notice(o, d, d->claimant, subject, "The forms service of %s "
		    "refused your form %s (type %s).\n\nReason: %s\n",
		    o->domain, d->form_id, d->type, d->reason);
	o->host->log(o->host, "form %s from %s: refused: %s",
	    d->form_id[0] != '\0' ? d->form_id : "(unverified)", r->sender,
	    d->reason);
}

/* Pending: retried later; the claimant and the sender are told once. */
static void
pend(struct fp *o, const struct row *r, struct decision *d, int64_t now)
{
	char label[128], subject[SUBJECT_MAX], until[21];

	d->state = "pending";
	d->next_try = now + o->retry;
	if (d->expires == 0)
		d->expires = r->received + 30LL * 86400;
	wse_time_format(d->expires, until);
	if (!r->notified) {
		form_label(d, label, sizeof(label));
		(void)snprintf(subject, sizeof(subject), "%s: delayed", label);
		notice(o, d, d->claimant, subject, "The forms service of %s "
		    "cannot process the form %s yet.\n\nReason: %s\n\nIt "
		    "tries again every %" PRId64 " s until %s; you get another "
		    "message when it is done or given up.\n", o->domain,
		    d->form_id, d->reason, o->retry, until);
		notice(o, d, r->sender, subject, "The forms service of %s "
		    "cannot process the form %s yet.\n\nReason: %s\n\nIt "
		    "tries again every %" PRId64 " s until %s; you get another "
		    "message when it is done or given up.\n", o->domain,
		    d->form_id, d->reason, o->retry, until);
	}
	d->notified = 1;
	o->host->log(o->host, "form %s from %s: pending: %s (retry in %"
	    PRId64 " s)", d->form_id[0] != '\0' ? d->form_id :
	    "(unverified)", r->sender, d->reason, o->retry);
}

/* The configured params as the formtype call wants them. */
static wse_status
form_value(struct fp *o, const wse_form *f, const wse_form_report *rep,
    wse_luabox_value **v_r)
{
	return wse_formtype_form_value(f, rep, o->domain,
	    (const char *const *)o->param_keys,
	    (const char *const *)o->param_values, o->nparams, v_r);
}

static wse_status
load_type(struct fp *o, const wse_form_content *c, int64_t now,
    wse_formtype **ft_r)
{
	wse_formtype_env env;

	memset(&env, 0, sizeof(env));
	env.cache_dir = o->types_dir;
	env.http = o->http;
	env.connect_addr = o->fetch_connect;
	env.publishers = o->publishers;
	env.npublishers = o->npublishers;
	env.limits = o->limits;
	env.now = now;
	return wse_formtype_load(&env, c, ft_r);
}

/* The type's plugin failed: the form waits (reason from the stack). */
static void
type_failed(struct fp *o, const struct row *r, struct decision *d,
    const wse_form_content *c, const char *what, int64_t now)
{
	char eb[REASON_MAX - 128];

	err_text(eb, sizeof(eb));
	/* The loader's messages name the plugin already. */
	if (strncmp(eb, "plugin ", 7) == 0)
		set_reason(d, "%s", eb);
	else
		set_reason(d, "plugin %s from %s: %s%s", c->type_name,
		    c->plugin_url, what, eb);
	pend(o, r, d, now);
}

/* A router hop of this domain: insert the type's approvers. */
static void
do_route(struct fp *o, const struct row *r, struct decision *d,
    wse_form *f, const wse_form_report *rep, int64_t now)
{
	const wse_form_content *c = wse_form_content_get(f);
	wse_form_signer signer = { o->key, o->cert, o->ca };
	wse_formtype *ft = NULL;
	wse_luabox_value *v = NULL;
	char **appr = NULL, next[WSE_ADDR_MAX + 1], sid[9], eb[600];
	wse_buf *list = NULL, *lines = NULL, *out = NULL;
	wse_form_state_info s;
	struct outmsg *m;
	size_t n = 0, i;
	sqlite3_stmt *q;
	int rc;

	/* The same hop routed here before (another copy of the form):
	 * a second insert would fork it.  A routed row counts the records
	 * with its insert, one more than the copy had on arrival. */
	pthread_mutex_lock(&o->lock);
	q = o->stmt[Q_IN_ROUTED];
	(void)bind_text(q, 1, c->id);
	(void)sqlite3_bind_int64(q, 2, (int64_t)wse_form_nrecords(f) + 1);
	(void)sqlite3_bind_int64(q, 3, r->id);
	rc = sqlite3_step(q);
	q_done(q);
	pthread_mutex_unlock(&o->lock);
	if (rc == SQLITE_ROW) {
		set_reason(d, "this server already routed form %s at this "
		    "point (record %zu): a form is routed once", c->id,
		    wse_form_nrecords(f));
		refuse(o, r, d, 0);
		return;
	}

	wse_err_clear();
	if (load_type(o, c, now, &ft) != WSE_OK) {
		type_failed(o, r, d, c, "", now);
		return;
	}
	if (form_value(o, f, rep, &v) != WSE_OK) {
		type_failed(o, r, d, c, "", now);
		goto out;
	}
	if (wse_formtype_route(ft, v, &appr, &n) != WSE_OK) {
		type_failed(o, r, d, c, "route(): ", now);
		goto out;
	}
	if (wse_form_add_insert(f, &signer, 0, (const char *const *)appr, n,
	    now) != WSE_OK) {
		err_text(eb, sizeof(eb));
		set_reason(d, "the approvers the type named cannot be "
		    "inserted: %s", eb);
		refuse(o, r, d, 1);
		goto out;
	}
	if ((out = wse_buf_new(WSE_FORM_MAX_BYTES)) == NULL ||
	    (list = wse_buf_new(8192)) == NULL ||
	    wse_form_serialize(f, out) != WSE_OK ||
	    wse_formtype_next_address(f, NULL, next, sizeof(next)) != WSE_OK ||
	    wse_form_state(f, &s) != WSE_OK) {
		err_text(eb, sizeof(eb));
		set_reason(d, "cannot send the form on: %s", eb);
		pend(o, r, d, now);
		goto out;
	}
	/* A hop of this domain again goes to this service's own mailbox. */
	if ((s.phase == WSE_FORM_ROUTER || s.phase == WSE_FORM_FINAL) &&
	    s.party != NULL && strcmp(s.party, o->domain) == 0)
		(void)snprintf(next, sizeof(next), "%s", o->addr);
	for (i = 0; i < n; i++)
		(void)wse_buf_printf(list, "%s%s", i > 0 ? ", " : "", appr[i]);
	if (n == 0)
		(void)wse_buf_puts(list, "none");
	/* What the form says, for whoever must act (best effort). */
	if ((lines = wse_buf_new(64 * 1024)) != NULL &&
	    (wse_formtype_present(ft, v, lines) != WSE_OK ||
	    !text_ok(wse_buf_str(lines), wse_buf_len(lines))))
		wse_buf_free(&lines);
	wse_err_clear();

	if ((m = out_new(o, d, next, 0)) == NULL) {
		set_reason(d, "the next party's address %s cannot be used",
		    next);
		pend(o, r, d, now);
		goto out;
	}
	short_id(c->id, sid);
	(void)snprintf(m->subject, sizeof(m->subject), "Form %s %s: %s",
	    c->type_name, sid, s.phase == WSE_FORM_APPROVER ?
	    "your action is needed" : "routed to you");
	(void)wse_buf_printf(m->body, "Form %s (type %s) of %s.\n\n"
	    "%s routed it and inserted these approvers: %s.\n",
	    c->id, c->type_name, c->claimant, o->domain, wse_buf_str(list));
	if (s.phase == WSE_FORM_APPROVER)
		(void)wse_buf_printf(m->body, "It is now the turn of %s to "
		    "approve or reject it (or to delegate the decision): "
		    "open the attached form (%s) with your WSEmail client.\n",
		    s.party, WSE_FORM_ATTACHMENT);
	else
		(void)wse_buf_printf(m->body, "It goes to %s next; the form "
		    "is attached (%s).\n", s.party != NULL ? s.party : next,
		    WSE_FORM_ATTACHMENT);
	if (lines != NULL && wse_buf_len(lines) > 0) {
		(void)wse_buf_puts(m->body, "\n");
		(void)wse_buf_put(m->body, wse_buf_data(lines),
		    wse_buf_len(lines));
	}
	m->form = out;
	out = NULL;
	d->state = "routed";
	d->decided = now;
	d->nrecords = wse_form_nrecords(f);
	set_reason(d, "inserted %zu approver(s) (%s) and sent to %s", n,
	    wse_buf_str(list), next);
	o->host->log(o->host, "form %s of %s: %s", c->id, c->claimant,
	    d->reason);
out:
	wse_formtype_strings_free(&appr, n);
	wse_luabox_value_free(&v);
	wse_formtype_free(&ft);
	wse_buf_free(&out);
	wse_buf_free(&list);
	wse_buf_free(&lines);
}

/* The final party: check, accept, send the closed form to the claimant. */
static void
do_final(struct fp *o, const struct row *r, struct decision *d,
    wse_form *f, int64_t now)
{
	const wse_form_content *c;
	wse_form_signer signer = { o->key, o->cert, o->ca };
	wse_form_policy pol;
	wse_form_report rep;
	wse_formtype *ft = NULL;
	wse_luabox_value *v = NULL;
	char why[512], eb[600], at[21], next[WSE_ADDR_MAX + 1], sid[9],
	    outcome[16];
	wse_buf *closed = NULL;
	struct outmsg *m;
	sqlite3_stmt *q;
	wse_status st;
	size_t i;
	int rc;

	memset(&rep, 0, sizeof(rep));
	wse_form_policy_default(&pol);
	pol.max_delegation = o->max_delegation;
	pol.require_complete = 1;
	pol.final_party = o->domain;
	st = wse_form_verify(f, o->trust, now, &pol, &rep);
	if (st == WSE_ERR_TEMPFAIL) {
		set_reason(d, "cannot verify the form now: %s", rep.reason);
		pend(o, r, d, now);
		goto out;
	}
	if (st != WSE_OK) {
		set_reason(d, "%s", rep.reason);
		refuse(o, r, d, 0);
		goto out;
	}
	c = wse_form_content_get(f);

	/* A form is accepted once. */
	pthread_mutex_lock(&o->lock);
	q = o->stmt[Q_AC_GET];
	(void)bind_text(q, 1, c->id);
	if ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		col_text(q, 0, outcome, sizeof(outcome));
		wse_time_format(sqlite3_column_int64(q, 1), at);
	}
	q_done(q);
	pthread_mutex_unlock(&o->lock);
	if (rc == SQLITE_ROW) {
		set_reason(d, "form %s was already accepted here at %s "
		    "(outcome %s): a form is accepted once", c->id, at,
		    outcome);
		refuse(o, r, d, 0);
		goto out;
	}
	if (rc != SQLITE_DONE) {
		set_reason(d, "database: %s", sqlite3_errmsg(o->db));
		pend(o, r, d, now);
		goto out;
	}

	/* The type's constraints, again, on an approved form (a rejected
	 * one closes whatever its type says). */
	if (rep.outcome == WSE_OUTCOME_APPROVED) {
		wse_err_clear();
		if (load_type(o, c, now, &ft) != WSE_OK) {
			type_failed(o, r, d, c, "", now);
			goto out;
		}
		if (form_value(o, f, &rep, &v) != WSE_OK) {
			type_failed(o, r, d, c, "", now);
			goto out;
		}
		why[0] = '\0';
		st = wse_formtype_check(ft, v, why, sizeof(why));
		if (st == WSE_ERR_NOT_AUTHORIZED) {
			wse_err_clear();
			set_reason(d, "the form type's check refused it: %s",
			    why[0] != '\0' ? why : "(no reason given)");
			refuse(o, r, d, 1);
			goto out;
		}
		if (st != WSE_OK) {
			type_failed(o, r, d, c, "check(): ", now);
			goto out;
		}
	}

	if (wse_form_add_accept(f, &signer, now) != WSE_OK ||
	    (closed = wse_buf_new(WSE_FORM_MAX_BYTES)) == NULL ||
	    wse_form_serialize(f, closed) != WSE_OK ||
	    wse_formtype_next_address(f, NULL, next, sizeof(next)) != WSE_OK) {
		err_text(eb, sizeof(eb));
		set_reason(d, "cannot accept the form: %s", eb);
		pend(o, r, d, now);
		goto out;
	}
	d->state = "accepted";
	d->outcome = rep.outcome == WSE_OUTCOME_APPROVED ? "approved" :
	    "rejected";
	d->decided = now;
	d->nrecords = wse_form_nrecords(f);
	wse_time_format(now, at);
	short_id(c->id, sid);
	if ((m = out_new(o, d, next, 0)) != NULL) {
		(void)snprintf(m->subject, sizeof(m->subject), "Form %s %s: %s",
		    c->type_name, sid, d->outcome);
		(void)wse_buf_printf(m->body, "Your form %s (type %s) was %s. "
		    "%s, its final party, verified every record and closed "
		    "it at %s.\n\n", c->id, c->type_name, d->outcome,
		    o->domain, at);
		for (i = 0; i < rep.napprovals; i++) {
			const wse_form_approval *a = &rep.approvals[i];

			(void)wse_buf_printf(m->body, "approved by %s",
			    a->approver);
			if (strcmp(a->approver, a->signer) != 0)
				(void)wse_buf_printf(m->body, " (signed by %s)",
				    a->signer);
			(void)wse_buf_puts(m->body, "\n");
		}
		if (rep.rejected_by[0] != '\0') {
			(void)wse_buf_printf(m->body, "rejected by %s",
			    rep.rejected_by);
			if (strcmp(rep.rejected_by, rep.rejected_for) != 0)
				(void)wse_buf_printf(m->body, " (for %s)",
				    rep.rejected_for);
			(void)wse_buf_puts(m->body, "\n");
		}
		(void)wse_buf_printf(m->body, "\nThe closed form is attached "
		    "(%s): it proves the outcome to anyone who trusts the "
		    "parties' domains.\n", WSE_FORM_ATTACHMENT);
		if ((m->form = wse_buf_new(WSE_FORM_MAX_BYTES)) != NULL)
			(void)wse_buf_put(m->form, wse_buf_data(closed),
			    wse_buf_len(closed));
	}
	d->closed = closed;
	closed = NULL;
	set_reason(d, "accepted, outcome %s; closed form sent to %s",
	    d->outcome, next);
	o->host->log(o->host, "form %s of %s: %s", c->id, c->claimant,
	    d->reason);
out:
	wse_form_report_clear(&rep);
	wse_luabox_value_free(&v);
	wse_formtype_free(&ft);
	wse_buf_free(&closed);
}

/* Rebuild the trust store when roots= or a crl= file changed (an
 * administrator publishes new CRLs in place).  A failure keeps the old
 * store and is logged. */
static void
trust_refresh(struct fp *o)
{
	wse_trust *t = NULL;
	struct stat sb;
	size_t i;
	int changed = 0;
	char eb[512];

	for (i = 0; i < o->ntrust_files; i++) {
		if (stat(o->trust_files[i].path, &sb) == -1)
			continue;
		if (sb.st_mtim.tv_sec != o->trust_files[i].mtime.tv_sec ||
		    sb.st_mtim.tv_nsec != o->trust_files[i].mtime.tv_nsec ||
		    sb.st_size != o->trust_files[i].size)
			changed = 1;
	}
	if (!changed && o->trust != NULL)
		return;
	if (wse_trust_new(&t) != WSE_OK ||
	    wse_trust_load_roots(t, o->trust_files[0].path) != WSE_OK)
		goto fail;
	for (i = 1; i < o->ntrust_files; i++)
		if (wse_trust_load_crls(t, o->trust_files[i].path) != WSE_OK)
			goto fail;
	for (i = 0; i < o->ntrust_files; i++)
		if (stat(o->trust_files[i].path, &sb) == 0) {
			o->trust_files[i].mtime = sb.st_mtim;
			o->trust_files[i].size = sb.st_size;
		}
	wse_trust_free(&o->trust);
	o->trust = t;
	return;
fail:
	err_text(eb, sizeof(eb));
	o->host->log(o->host, "cannot reload roots and CRLs (keeping the "
	    "previous ones): %s", eb);
	wse_trust_free(&t);
}

/* Decide about one row's form. */
static void
decide(struct fp *o, const struct row *r, struct decision *d, int64_t now)
{
	wse_form *f = NULL;
	wse_form_policy pol;
	wse_form_report rep;
	wse_form_state_info s;
	const wse_form_content *c;
	char eb[600];
	wse_status st;

	memset(&rep, 0, sizeof(rep));
	trust_refresh(o);
	wse_err_clear();
	if (r->form == NULL || wse_form_parse(wse_buf_data(r->form),
	    wse_buf_len(r->form), o->host->limits, &f) != WSE_OK) {
		err_text(eb, sizeof(eb));
		set_reason(d, "not a valid form: %s", eb);
		refuse(o, r, d, 0);
		goto out;
	}
	wse_form_policy_default(&pol);
	pol.max_delegation = o->max_delegation;
	st = wse_form_verify(f, o->trust, now, &pol, &rep);
	wse_err_clear();
	if (st == WSE_ERR_TEMPFAIL) {
		set_reason(d, "cannot verify the form now: %s", rep.reason);
		pend(o, r, d, now);
		goto out;
	}
	if (st != WSE_OK) {
		set_reason(d, "%s", rep.reason);
		refuse(o, r, d, 0);
		goto out;
	}
	c = wse_form_content_get(f);
	(void)snprintf(d->form_id, sizeof(d->form_id), "%s", c->id);
	(void)snprintf(d->type, sizeof(d->type), "%s", c->type_name);
	(void)snprintf(d->claimant, sizeof(d->claimant), "%s", c->claimant);
	d->nrecords = wse_form_nrecords(f);
	d->expires = c->submitted + (pol.max_age > 0 ? pol.max_age :
	    30LL * 86400);
	if (wse_form_state(f, &s) != WSE_OK) {
		err_text(eb, sizeof(eb));
		set_reason(d, "no state: %s", eb);
		refuse(o, r, d, 0);
		goto out;
	}
	switch (s.phase) {
	case WSE_FORM_ROUTER:
		if (strcmp(s.party, o->domain) != 0) {
			set_reason(d, "not this server's turn: the router %s "
			    "must act on form %s now (hop %zu of %zu)",
			    s.party, c->id, s.hop, s.nhops);
			refuse(o, r, d, 0);
			break;
		}
		do_route(o, r, d, f, &rep, now);
		break;
	case WSE_FORM_FINAL:
		if (strcmp(s.party, o->domain) != 0) {
			set_reason(d, "not this server's turn: form %s ends "
			    "at %s, not at %s", c->id, s.party, o->domain);
			refuse(o, r, d, 0);
			break;
		}
		do_final(o, r, d, f, now);
		break;
	case WSE_FORM_APPROVER:
		set_reason(d, "not this server's turn: %s must act on form %s "
		    "now (hop %zu of %zu)", s.party, c->id, s.hop, s.nhops);
		refuse(o, r, d, 0);
		break;
	case WSE_FORM_CLOSED:
		set_reason(d, "form %s is already closed: its final party "
		    "accepted it, nothing follows", c->id);
		refuse(o, r, d, 0);
		break;
	default:
		set_reason(d, "form %s is in no state this server acts on",
		    c->id);
		refuse(o, r, d, 0);
		break;
	}
out:
	wse_form_report_clear(&rep);
	wse_form_free(&f);
	wse_err_clear();
}

/* A pending form past its age: the final notice. */
static void
give_up(struct fp *o, const struct row *r, struct decision *d)
{
	char label[128], subject[SUBJECT_MAX];

	d->state = "refused";
	d->decided = o->host->now();
	d->notified = 1;
	set_reason(d, "given up: the form could not be processed before it "
	    "expired; last reason: %s", r->reason);
	form_label(d, label, sizeof(label));
	(void)snprintf(subject, sizeof(subject), "%s: not processed", label);
	notice(o, d, d->claimant, subject, "The forms service of %s gave up "
	    "the form %s.\n\n%s\n", o->domain, d->form_id, d->reason);
	notice(o, d, r->sender, subject, "The forms service of %s gave up "
	    "the form %s.\n\n%s\n", o->domain, d->form_id, d->reason);
	o->host->log(o->host, "form %s from %s: %s", d->form_id[0] != '\0' ?
	    d->form_id : "(unverified)", r->sender, d->reason);
}

/* Load row id (under the lock). */
static wse_status
row_get(struct fp *o, int64_t id, struct row *r)
{
	sqlite3_stmt *s = o->stmt[Q_IN_GET];
	const void *blob;
	int rc, n;
	wse_status st = WSE_OK;

	memset(r, 0, sizeof(*r));
	r->id = id;
	(void)sqlite3_bind_int64(s, 1, id);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		st = db_fail(o, rc, "read a form");
		goto out;
	}
	blob = sqlite3_column_blob(s, 0);
	n = sqlite3_column_bytes(s, 0);
	if (blob != NULL && n > 0) {
		if ((r->form = wse_buf_new(WSE_FORM_MAX_BYTES)) == NULL ||
		    wse_buf_put(r->form, blob, (size_t)n) != WSE_OK) {
			wse_buf_free(&r->form);
			wse_err_clear();
		}
	}
	col_text(s, 1, r->sender, sizeof(r->sender));
	col_text(s, 2, r->state, sizeof(r->state));
	r->notified = sqlite3_column_int(s, 3);
	r->expires = sqlite3_column_int64(s, 4);
	r->received = sqlite3_column_int64(s, 5);
	col_text(s, 6, r->reason, sizeof(r->reason));
	col_text(s, 7, r->claimant, sizeof(r->claimant));
	col_text(s, 8, r->type, sizeof(r->type));
	col_text(s, 9, r->form_id, sizeof(r->form_id));
out:
	q_done(s);
	return st;
}

/* Store a decision and its messages in one transaction (under the
 * lock). */
static wse_status
row_store(struct fp *o, const struct row *r, const struct decision *d,
    int64_t now)
{
	sqlite3_stmt *s = o->stmt[Q_IN_UPDATE];
	wse_status st;
	size_t i;

	if ((st = db_begin(o)) != WSE_OK)
		return st;
	if (sqlite3_bind_int64(s, 1, r->id) != SQLITE_OK ||
	    bind_text(s, 2, d->state) != SQLITE_OK ||
	    bind_text(s, 3, d->reason) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 4, d->next_try) != SQLITE_OK ||
	    bind_text(s, 5, d->form_id[0] != '\0' ? d->form_id : NULL) !=
	    SQLITE_OK ||
	    bind_text(s, 6, d->type[0] != '\0' ? d->type : NULL) !=
	    SQLITE_OK ||
	    bind_text(s, 7, d->claimant[0] != '\0' ? d->claimant : NULL) !=
	    SQLITE_OK ||
	    (d->nrecords > 0 ? sqlite3_bind_int64(s, 8,
	    (int64_t)d->nrecords) : sqlite3_bind_null(s, 8)) != SQLITE_OK ||
	    bind_text(s, 9, d->outcome) != SQLITE_OK ||
	    (d->expires > 0 ? sqlite3_bind_int64(s, 10, d->expires) :
	    sqlite3_bind_null(s, 10)) != SQLITE_OK ||
	    sqlite3_bind_int(s, 11, d->notified) != SQLITE_OK ||
	    (d->decided > 0 ? sqlite3_bind_int64(s, 12, d->decided) :
	    sqlite3_bind_null(s, 12)) != SQLITE_OK) {
		q_done(s);
		st = db_fail(o, SQLITE_NOMEM, "bind");
		goto out;
	}
	if ((st = q_run(o, Q_IN_UPDATE, "record a decision")) != WSE_OK)
		goto out;
	if (d->closed != NULL) {
		s = o->stmt[Q_AC_INSERT];
		if (bind_text(s, 1, d->form_id) != SQLITE_OK ||
		    bind_text(s, 2, d->type) != SQLITE_OK ||
		    bind_text(s, 3, d->claimant) != SQLITE_OK ||
		    bind_text(s, 4, d->outcome) != SQLITE_OK ||
		    sqlite3_bind_int64(s, 5, d->decided) != SQLITE_OK ||
		    bind_blob(s, 6, d->closed) != SQLITE_OK ||
		    sqlite3_bind_int64(s, 7, r->id) != SQLITE_OK) {
			q_done(s);
			st = db_fail(o, SQLITE_NOMEM, "bind");
			goto out;
		}
		if ((st = q_run(o, Q_AC_INSERT, "record the acceptance")) !=
		    WSE_OK)
			goto out;
	}
	for (i = 0; i < d->nout; i++)
		if ((st = outbox_add(o, NULL, r->id, d->out[i].rcpt,
		    d->out[i].subject, wse_buf_str(d->out[i].body),
		    d->out[i].form, now)) != WSE_OK)
			goto out;
	st = db_commit(o);
out:
	if (st != WSE_OK)
		db_rollback(o);
	return st;
}

/* Process the next due row; 1 when one was processed, 0 when none is
 * due, -1 on a database failure. */
static int
process_one(struct fp *o)
{
	struct row r;
	struct decision d;
	sqlite3_stmt *s;
	int64_t id, now = o->host->now();
	int rc;
	wse_status st;
	char eb[512];

	memset(&d, 0, sizeof(d));
	pthread_mutex_lock(&o->lock);
	s = o->stmt[Q_IN_DUE];
	(void)sqlite3_bind_int64(s, 1, now);
	rc = sqlite3_step(s);
	id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	q_done(s);
	if (rc != SQLITE_ROW) {
		pthread_mutex_unlock(&o->lock);
		if (rc == SQLITE_DONE)
			return 0;
		o->host->log(o->host, "database: cannot find work: %s",
		    sqlite3_errstr(rc));
		return -1;
	}
	st = row_get(o, id, &r);
	pthread_mutex_unlock(&o->lock);
	if (st != WSE_OK) {
		err_text(eb, sizeof(eb));
		o->host->log(o->host, "%s", eb);
		return -1;
	}

	/* What is known from an earlier look stays (pending rows). */
	(void)snprintf(d.form_id, sizeof(d.form_id), "%s", r.form_id);
	(void)snprintf(d.type, sizeof(d.type), "%s", r.type);
	(void)snprintf(d.claimant, sizeof(d.claimant), "%s", r.claimant);
	d.expires = r.expires;
	d.notified = r.notified;
	if (strcmp(r.state, "pending") == 0 && r.expires > 0 &&
	    now >= r.expires)
		give_up(o, &r, &d);
	else
		decide(o, &r, &d, now);

	pthread_mutex_lock(&o->lock);
	st = row_store(o, &r, &d, now);
	pthread_mutex_unlock(&o->lock);
	if (st != WSE_OK) {
		err_text(eb, sizeof(eb));
		o->host->log(o->host, "cannot record the decision on form "
		    "row %" PRId64 " (it will be looked at again): %s", id, eb);
	}
	decision_clear(&d);
	wse_buf_free(&r.form);
	return st == WSE_OK ? 1 : -1;
}

/* Submit the next due outbox message; 1 sent (or dropped), 0 none,
 * -1 failure (try later). */
static int
send_one(struct fp *o)
{
	sqlite3_stmt *s;
	int64_t id, now = o->host->now();
	char rcpt[WSE_ADDR_MAX + 1], subject[SUBJECT_MAX], eb[512];
	wse_buf *body = NULL, *form = NULL;
	const void *blob;
	wse_msg *m = NULL;
	wse_status st;
	int rc, n, ret;

	pthread_mutex_lock(&o->lock);
	s = o->stmt[Q_OB_DUE];
	(void)sqlite3_bind_int64(s, 1, now);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		q_done(s);
		pthread_mutex_unlock(&o->lock);
		return rc == SQLITE_DONE ? 0 : -1;
	}
	id = sqlite3_column_int64(s, 0);
	col_text(s, 1, rcpt, sizeof(rcpt));
	col_text(s, 2, subject, sizeof(subject));
	if ((body = wse_buf_new(BODY_MAX + 1)) != NULL) {
		const unsigned char *t = sqlite3_column_text(s, 3);

		(void)wse_buf_puts(body, t != NULL ? (const char *)t : "");
	}
	blob = sqlite3_column_blob(s, 4);
	n = sqlite3_column_bytes(s, 4);
	if (blob != NULL && n > 0 && (form = wse_buf_new(WSE_FORM_MAX_BYTES))
	    != NULL && wse_buf_put(form, blob, (size_t)n) != WSE_OK)
		wse_buf_free(&form);
	q_done(s);
	pthread_mutex_unlock(&o->lock);

	wse_err_clear();
	if (body == NULL || (blob != NULL && n > 0 && form == NULL))
		st = wse_err(WSE_ERR_NOMEM, "out of memory");
	else if ((st = wse_msg_new(&m)) == WSE_OK &&
	    (st = wse_msg_set(m, "from", o->addr)) == WSE_OK &&
	    (st = wse_msg_add_rcpt(m, rcpt, 0)) == WSE_OK &&
	    (st = wse_msg_set(m, "subject", subject)) == WSE_OK &&
	    (st = wse_msg_set(m, "text", wse_buf_str(body))) == WSE_OK &&
	    (form == NULL || (st = wse_msg_add_attachment(m,
	    WSE_FORM_ATTACHMENT, WSE_FORM_MEDIA_TYPE, wse_buf_data(form),
	    wse_buf_len(form))) == WSE_OK))
		st = o->host->submit(o->host, m, form == NULL ?
		    WSE_PLUGIN_SUBMIT_NO_BOUNCE : 0, NULL);
	wse_msg_free(&m);
	wse_buf_free(&body);
	wse_buf_free(&form);

	pthread_mutex_lock(&o->lock);
	if (st == WSE_ERR_TEMPFAIL || st == WSE_ERR_NOMEM) {
		/* Not serving yet, or the queue is full: later. */
		s = o->stmt[Q_OB_LATER];
		ret = -1;
	} else {
		/* Sent, or it never will be (logged below). */
		s = o->stmt[Q_OB_DONE];
		ret = 1;
	}
	(void)sqlite3_bind_int64(s, 1, id);
	(void)sqlite3_bind_int64(s, 2, st == WSE_ERR_TEMPFAIL ||
	    st == WSE_ERR_NOMEM ? now + SUBMIT_RETRY : now);
	rc = sqlite3_step(s);
	q_done(s);
	pthread_mutex_unlock(&o->lock);
	if (st != WSE_OK) {
		err_text(eb, sizeof(eb));
		o->host->log(o->host, "message to %s (%.80s) %s: %s", rcpt,
		    subject, ret < 0 ? "not sent yet" : "dropped", eb);
	}
	if (rc != SQLITE_DONE)
		return -1;
	return ret;
}

/* Drop the bytes of long-decided forms and old sent messages. */
static void
purge(struct fp *o, int64_t now)
{
	if (o->last_purge != INT64_MIN && now - o->last_purge <
	    PURGE_INTERVAL && now >= o->last_purge)
		return;
	o->last_purge = now;
	pthread_mutex_lock(&o->lock);
	(void)sqlite3_bind_int64(o->stmt[Q_PURGE_IN], 1, now - KEEP_BYTES);
	(void)q_run(o, Q_PURGE_IN, "purge forms");
	(void)sqlite3_bind_int64(o->stmt[Q_PURGE_OB], 1, now - KEEP_SENT);
	(void)q_run(o, Q_PURGE_OB, "purge messages");
	pthread_mutex_unlock(&o->lock);
	wse_err_clear();
}

static int
stopping(struct fp *o)
{
	int s;

	pthread_mutex_lock(&o->lock);
	s = o->stop;
	pthread_mutex_unlock(&o->lock);
	return s;
}

static void *
worker_main(void *arg)
{
	struct fp *o = arg;
	struct timespec ts;
	int i, r;

	wse_err_clear();
	for (;;) {
		pthread_mutex_lock(&o->lock);
		o->kick = 0;
		pthread_mutex_unlock(&o->lock);
		for (i = 0; i < ROUND_MAX && !stopping(o); i++)
			if ((r = process_one(o)) <= 0)
				break;
		for (i = 0; i < ROUND_MAX && !stopping(o); i++)
			if ((r = send_one(o)) <= 0)
				break;
		purge(o, o->host->now());
		wse_err_clear();

		pthread_mutex_lock(&o->lock);
		if (o->stop) {
			pthread_mutex_unlock(&o->lock);
			break;
		}
		if (!o->kick) {
			(void)clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += WAKE_MS / 1000;
			ts.tv_nsec += (long)(WAKE_MS % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			(void)pthread_cond_timedwait(&o->cond, &o->lock, &ts);
		}
		pthread_mutex_unlock(&o->lock);
	}
	return NULL;
}

static void
wake(struct fp *o)
{
	o->kick = 1;
	(void)pthread_cond_signal(&o->cond);
}

/* ---- the message hook ---- */

static wse_status
fp_message(void *state, const struct wse_plugin_delivery *d,
    int *consumed_r)
{
	struct fp *o = state;
	const wse_attachment *att;
	const wse_msg *m = d->msg;
	uint8_t md[WSE_SHA256_LEN];
	char hex[2 * WSE_SHA256_LEN + 1], dedup[600], subject[SUBJECT_MAX],
	    text[1024];
	size_t i, mine = 0;
	int64_t now = o->host->now(), dup_id = 0;
	sqlite3_stmt *s;
	wse_status st = WSE_OK;
	const char *from = m->from != NULL ? m->from : "";
	const char *oid = d->origin_id != NULL ? d->origin_id : "";
	const char *origin = d->origin != NULL ? d->origin : "";
	int rc;

	for (i = 0; i < d->nrcpts; i++)
		if (strcasecmp(d->rcpts[i], o->addr) == 0)
			mine++;
	if (mine == 0)
		return WSE_OK;

	if (d->flags & WSE_PLUGIN_MSG_REPORT) {
		/* A form we sent on could not be delivered: say so, never
		 * answer. */
		o->host->log(o->host, "non-delivery report from %s: %.200s",
		    from, m->subject != NULL ? m->subject : "");
		goto consume;
	}

	att = wse_formtype_find_attachment(m);
	if (att == NULL || att->data == NULL ||
	    wse_buf_len(att->data) > WSE_FORM_MAX_BYTES ||
	    wse_buf_len(att->data) == 0) {
		o->host->log(o->host, "message from %s (%s %.80s): %s", from,
		    origin, oid, att == NULL ?
		    "no form attached" : "form attachment too large or empty");
		if (!answerable(o, from) || !wse_addr_valid(from))
			goto consume;
		(void)snprintf(subject, sizeof(subject), "Your message to %s "
		    "was not processed", o->addr);
		(void)snprintf(text, sizeof(text), "%s is the forms service of "
		    "%s: it takes routed forms, attached as %s of type %s "
		    "(at most %u bytes).\n\nYour message %s; nothing was "
		    "done with it.\n", o->addr, o->domain,
		    WSE_FORM_ATTACHMENT, WSE_FORM_MEDIA_TYPE,
		    WSE_FORM_MAX_BYTES, att == NULL ?
		    "had no form attached" : "had a form that is empty or too "
		    "large");
		sanitize(subject);
		(void)snprintf(dedup, sizeof(dedup), "%s %s", origin,
		    oid);
		pthread_mutex_lock(&o->lock);
		st = outbox_add(o, dedup, 0, from, subject, text, NULL, now);
		if (st == WSE_OK)
			wake(o);
		pthread_mutex_unlock(&o->lock);
		if (st != WSE_OK)
			return WSE_ERR_TEMPFAIL;
		goto consume;
	}

	if ((st = wse_sha256(wse_buf_data(att->data), wse_buf_len(att->data),
	    md)) != WSE_OK)
		return WSE_ERR_TEMPFAIL;
	wse_hex(md, sizeof(md), hex);
	pthread_mutex_lock(&o->lock);
	s = o->stmt[Q_IN_INSERT];
	if (bind_text(s, 1, hex) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, now) != SQLITE_OK ||
	    bind_text(s, 3, from) != SQLITE_OK ||
	    bind_text(s, 4, origin) != SQLITE_OK ||
	    bind_text(s, 5, oid) !=
	    SQLITE_OK ||
	    bind_blob(s, 6, att->data) != SQLITE_OK) {
		q_done(s);
		st = db_fail(o, SQLITE_NOMEM, "bind");
	} else
		st = q_run(o, Q_IN_INSERT, "store a form");
	if (st == WSE_OK && sqlite3_changes(o->db) == 0) {
		s = o->stmt[Q_IN_BY_SHA];
		(void)bind_text(s, 1, hex);
		if ((rc = sqlite3_step(s)) == SQLITE_ROW)
			dup_id = sqlite3_column_int64(s, 0);
		q_done(s);
	}
	if (st == WSE_OK)
		wake(o);
	pthread_mutex_unlock(&o->lock);
	if (st != WSE_OK)
		return WSE_ERR_TEMPFAIL;
	if (dup_id != 0)
		o->host->log(o->host, "form from %s (%s %.80s) received "
		    "before (row %" PRId64 "): ignored", from, origin,
		    oid, dup_id);
consume:
	for (i = 0; i < d->nrcpts; i++)
		if (strcasecmp(d->rcpts[i], o->addr) == 0)
			consumed_r[i] = 1;
	return WSE_OK;
}

/* ---- FormStatus ---- */

static wse_status
put_attr(wse_buf *b, const char *name, const char *value)
{
	wse_status st;

	if ((st = wse_buf_printf(b, " %s=\"", name)) != WSE_OK ||
	    (st = wse_buf_put_xml_escaped(b, value, strlen(value))) != WSE_OK)
		return st;
	return wse_buf_puts(b, "\"");
}

static wse_status
fp_call(void *state, const struct wse_plugin_request *r, wse_buf *resp,
    struct wse_plugin_stream *stream)
{
	struct fp *o = state;
	xmlNodePtr req, idn;
	char *id = NULL, text[REASON_MAX], t[21];
	sqlite3_stmt *s;
	wse_status st;
	int rc, n = 0;

	(void)stream;
	if (strcmp(r->op, "FormStatus") != 0)
		return wse_err(WSE_ERR_INVALID, "forms: no operation %s",
		    r->op);
	if (r->body == NULL || wse_xml_only_child(r->body, WSE_NS_WSE,
	    "FormStatus", &req) != WSE_OK ||
	    wse_xml_only_child(req, WSE_NS_WSE, "FormId", &idn) != WSE_OK ||
	    wse_xml_text_dup(idn, WSE_UUID_URN_LEN + 2, &id) != WSE_OK ||
	    !wse_uuid_urn_valid(id)) {
		free(id);
		return wse_err(WSE_ERR_INVALID, "forms: FormStatus needs one "
		    "m:FormId, a urn:uuid");
	}
	if ((st = wse_buf_printf(resp, "<m:FormStatusResponse xmlns:m=\""
	    WSE_NS_WSE "\"><m:FormId>%s</m:FormId>", id)) != WSE_OK)
		goto out;
	pthread_mutex_lock(&o->lock);
	s = o->stmt[Q_STATUS];
	(void)bind_text(s, 1, id);
	(void)bind_text(s, 2, r->user);
	(void)sqlite3_bind_int(s, 3, STATUS_MAX);
	while (st == WSE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		n++;
		if ((st = wse_buf_puts(resp, "<m:Entry")) != WSE_OK)
			break;
		col_text(s, 0, text, sizeof(text));
		st = put_attr(resp, "state", text);
		col_text(s, 1, text, sizeof(text));
		if (st == WSE_OK && text[0] != '\0')
			st = put_attr(resp, "outcome", text);
		wse_time_format(sqlite3_column_int64(s, 3), t);
		if (st == WSE_OK)
			st = put_attr(resp, "received", t);
		if (st == WSE_OK && sqlite3_column_type(s, 4) != SQLITE_NULL) {
			wse_time_format(sqlite3_column_int64(s, 4), t);
			st = put_attr(resp, "decided", t);
		}
		col_text(s, 5, text, sizeof(text));
		if (st == WSE_OK && text[0] != '\0')
			st = put_attr(resp, "type", text);
		col_text(s, 6, text, sizeof(text));
		if (st == WSE_OK && text[0] != '\0')
			st = put_attr(resp, "claimant", text);
		col_text(s, 7, text, sizeof(text));
		if (st == WSE_OK)
			st = put_attr(resp, "sender", text);
		col_text(s, 2, text, sizeof(text));
		if (st == WSE_OK)
			st = wse_buf_puts(resp, ">");
		if (st == WSE_OK)
			st = wse_buf_put_xml_escaped(resp, text, strlen(text));
		if (st == WSE_OK)
			st = wse_buf_puts(resp, "</m:Entry>");
	}
	q_done(s);
	pthread_mutex_unlock(&o->lock);
	if (st != WSE_OK)
		goto out;
	if (n == 0) {
		st = wse_err(WSE_ERR_NOT_FOUND, "forms: %s knows nothing of "
		    "form %s", r->user, id);
		goto out;
	}
	st = wse_buf_puts(resp, "</m:FormStatusResponse>");
out:
	free(id);
	return st;
}

/* ---- set-up ---- */

static wse_status
db_open(struct fp *o)
{
	const struct wse_sqlite_db d = {
		.who = "forms",
		.dir = o->dir,
		.dirfd = o->dirfd,
		.name = "forms.db",
		.flags = SQLITE_OPEN_FULLMUTEX,
		.busy_ms = BUSY_TIMEOUT_MS,
		.setup = "PRAGMA synchronous = FULL;",
		.version = SCHEMA_VERSION,
		.schema = schema,
	};
	wse_status st;
	int rc, i;

	if ((st = wse_sqlite_open(&d, &o->db)) != WSE_OK)
		return st;
	for (i = 0; i < Q__COUNT; i++)
		if ((rc = sqlite3_prepare_v3(o->db, sql_text[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &o->stmt[i], NULL)) !=
		    SQLITE_OK)
			return db_fail(o, rc, "cannot prepare a statement");
	return WSE_OK;
}

static void
fp_free(struct fp *o)
{
	size_t i;

	if (o == NULL)
		return;
	if (o->thread_ok) {
		pthread_mutex_lock(&o->lock);
		o->stop = 1;
		(void)pthread_cond_signal(&o->cond);
		pthread_mutex_unlock(&o->lock);
		(void)pthread_join(o->thread, NULL);
	}
	for (i = 0; i < Q__COUNT; i++)
		sqlite3_finalize(o->stmt[i]);
	if (o->db != NULL)
		(void)sqlite3_close(o->db);
	if (o->dirfd != -1)
		close(o->dirfd);
	wse_key_free(&o->key);
	wse_cert_free(&o->cert);
	wse_cert_free(&o->ca);
	for (i = 0; i < o->ntrust_files; i++)
		free(o->trust_files[i].path);
	wse_trust_free(&o->trust);
	for (i = 0; i < o->npublishers; i++)
		wse_cert_free(&o->publishers[i]);
	wse_http_client_free(&o->http);
	free(o->fetch_connect);
	for (i = 0; i < o->nparams; i++) {
		free(o->param_keys[i]);
		free(o->param_values[i]);
	}
	if (o->cond_ok)
		pthread_cond_destroy(&o->cond);
	if (o->lock_ok)
		pthread_mutex_destroy(&o->lock);
	free(o->types_dir);
	free(o->dir);
	free(o);
}

static wse_status
conf_num(const char *key, const char *v, uint64_t min, uint64_t max,
    uint64_t *out)
{
	if (!parse_u64(v, out) || *out < min || *out > max)
		return wse_err(WSE_ERR_CONFIG, "forms: %s=%.64s: not a number "
		    "from %" PRIu64 " to %" PRIu64, key, v, min, max);
	return WSE_OK;
}

static int
param_key_ok(const char *k)
{
	size_t i;

	for (i = 0; k[i] != '\0'; i++)
		if (i >= 64 || !(isalnum((unsigned char)k[i]) || k[i] == '_' ||
		    k[i] == '-' || k[i] == '.'))
			return 0;
	return i > 0;
}

static int
mailbox_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (i >= 64 || !(isalnum((unsigned char)s[i]) || s[i] == '.' ||
		    s[i] == '_' || s[i] == '+' || s[i] == '-'))
			return 0;
	return i > 0;
}

/* The service certificate, its key and its domain CA: this domain's,
 * matching, and chaining to the roots. */
static wse_status
check_signer(struct fp *o, const char *cert, const char *key,
    const char *ca)
{
	char dom[WSE_FORM_PARTY_MAX], eb[512];
	wse_status st;

	if (wse_cert_load(cert, &o->cert) != WSE_OK)
		return wse_err(WSE_ERR_CONFIG, "forms: cert=%s: cannot load",
		    cert);
	if (wse_key_load(key, &o->key) != WSE_OK)
		return wse_err(WSE_ERR_CONFIG, "forms: key=%s: cannot load",
		    key);
	if (wse_cert_load(ca, &o->ca) != WSE_OK)
		return wse_err(WSE_ERR_CONFIG, "forms: ca=%s: cannot load", ca);
	if (!wse_cert_matches_key(o->cert, o->key))
		return wse_err(WSE_ERR_CONFIG, "forms: key=%s is not the key "
		    "of cert=%s", key, cert);
	if (!wse_cert_is_ca(o->ca))
		return wse_err(WSE_ERR_CONFIG, "forms: ca=%s is not a CA "
		    "certificate", ca);
	if (wse_cert_domain(o->cert, dom, sizeof(dom)) != WSE_OK ||
	    strcmp(dom, o->domain) != 0)
		return wse_err(WSE_ERR_CONFIG, "forms: cert=%s is not a "
		    "service certificate of %s", cert, o->domain);
	st = wse_trust_verify(o->trust, o->cert, &o->ca, 1, o->host->now(),
	    WSE_PURPOSE_SERVICE);
	if (st == WSE_ERR_TEMPFAIL) {
		err_text(eb, sizeof(eb));
		o->host->log(o->host, "warning: cert=%s cannot be fully "
		    "verified now (%s); forms wait until it can", cert, eb);
	} else if (st != WSE_OK)
		return wse_err(WSE_ERR_CONFIG, "forms: cert=%s with ca=%s does "
		    "not verify under roots= and crl= (%s): the parties "
		    "would refuse its records", cert, ca, wse_status_name(st));
	return WSE_OK;
}

static wse_status
add_watched(struct fp *o, const char *path)
{
	struct stat sb;

	if (o->ntrust_files >= 1 + MAX_PATHS)
		return wse_err(WSE_ERR_CONFIG, "forms: at most %d crl= files",
		    MAX_PATHS);
	if (stat(path, &sb) == -1)
		return wse_err(WSE_ERR_CONFIG, "forms: %s: %s", path,
		    strerror(errno));
	if ((o->trust_files[o->ntrust_files].path = strdup(path)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "forms: out of memory");
	o->ntrust_files++;
	return WSE_OK;
}

static wse_status
open_dirs(struct fp *o)
{
	if (mkdir(o->dir, 0700) == -1 && errno != EEXIST)
		return wse_err(WSE_ERR_CONFIG, "forms: cannot create dir=%s: "
		    "%s", o->dir, strerror(errno));
	if ((o->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1)
		return wse_err(WSE_ERR_CONFIG, "forms: cannot open dir=%s: %s",
		    o->dir, strerror(errno));
	if (asprintf(&o->types_dir, "%s/types", o->dir) == -1) {
		o->types_dir = NULL;
		return wse_err(WSE_ERR_NOMEM, "forms: out of memory");
	}
	if (mkdir(o->types_dir, 0700) == -1 && errno != EEXIST)
		return wse_err(WSE_ERR_CONFIG, "forms: cannot create %s: %s",
		    o->types_dir, strerror(errno));
	return WSE_OK;
}

enum {
	A_DIR, A_CERT, A_KEY, A_CA, A_ROOTS, A_CRL, A_PUBLISHER, A_MAILBOX,
	A_RETRY, A_FETCH_CONNECT, A_MAX_DELEGATION, A_LUA_MEMORY,
	A_LUA_INSTRUCTIONS, A_LUA_MILLIS, A__COUNT
};

static const char *const arg_names[A__COUNT] = {
	"dir", "cert", "key", "ca", "roots", "crl", "publisher", "mailbox",
	"retry", "fetch_connect", "max_delegation", "lua_memory",
	"lua_instructions", "lua_millis",
};

static wse_status
fp_init(const struct wse_plugin_host *host, const char *args, void **state_r)
{
	struct fp *o;
	char *copy = NULL, *w, *save = NULL, *eq, *val[A__COUNT] = { NULL };
	char *crls[MAX_PATHS], *pubs[MAX_PATHS];
	size_t ncrls = 0, npubs = 0, k, i;
	unsigned char addrbuf[sizeof(struct in6_addr)];
	wse_http_client_opts ho;
	pthread_condattr_t ca;
	uint64_t v;
	wse_status st;

	*state_r = NULL;
	if (host == NULL || host->domain == NULL || host->now == NULL ||
	    host->log == NULL || host->submit == NULL)
		return wse_err(WSE_ERR_CONFIG, "forms: incomplete host");
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "forms: out of memory");
	o->host = host;
	o->dirfd = -1;
	o->retry = DEF_RETRY;
	o->max_delegation = DEF_MAX_DELEGATION;
	o->last_purge = INT64_MIN;
	wse_luabox_limits_default(&o->limits);
	if (strlen(host->domain) >= sizeof(o->domain)) {
		st = wse_err(WSE_ERR_CONFIG, "forms: domain too long");
		goto fail;
	}
	for (i = 0; host->domain[i] != '\0'; i++)
		o->domain[i] = (char)tolower((unsigned char)host->domain[i]);
	if (pthread_mutex_init(&o->lock, NULL) != 0) {
		st = wse_err(WSE_ERR_INTERNAL, "forms: no mutex");
		goto fail;
	}
	o->lock_ok = 1;
	if (pthread_condattr_init(&ca) != 0) {
		st = wse_err(WSE_ERR_INTERNAL, "forms: no condition variable");
		goto fail;
	}
	(void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	o->cond_ok = pthread_cond_init(&o->cond, &ca) == 0;
	(void)pthread_condattr_destroy(&ca);
	if (!o->cond_ok) {
		st = wse_err(WSE_ERR_INTERNAL, "forms: no condition variable");
		goto fail;
	}

	if ((copy = strdup(args != NULL ? args : "")) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "forms: out of memory");
		goto fail;
	}
	for (w = strtok_r(copy, " \t", &save); w != NULL;
	    w = strtok_r(NULL, " \t", &save)) {
		if ((eq = strchr(w, '=')) == NULL || eq == w || eq[1] == '\0') {
			st = wse_err(WSE_ERR_CONFIG, "forms: \"%.64s\" is not "
			    "KEY=VALUE", w);
			goto fail;
		}
		*eq++ = '\0';
		if (strncmp(w, "param.", 6) == 0) {
			if (!param_key_ok(w + 6)) {
				st = wse_err(WSE_ERR_CONFIG, "forms: %.80s: a "
				    "parameter name is 1..64 of [A-Za-z0-9_.-]",
				    w);
				goto fail;
			}
			for (i = 0; i < o->nparams; i++)
				if (strcmp(o->param_keys[i], w + 6) == 0)
					break;
			if (i < o->nparams) {
				st = wse_err(WSE_ERR_CONFIG, "forms: %.80s "
				    "given twice", w);
				goto fail;
			}
			if (o->nparams >= WSE_FORMTYPE_MAX_PARAMS) {
				st = wse_err(WSE_ERR_CONFIG, "forms: at most "
				    "%d param.KEY=", WSE_FORMTYPE_MAX_PARAMS);
				goto fail;
			}
			if ((o->param_keys[o->nparams] = strdup(w + 6)) ==
			    NULL || (o->param_values[o->nparams] =
			    strdup(eq)) == NULL) {
				free(o->param_keys[o->nparams]);
				st = wse_err(WSE_ERR_NOMEM, "forms: out of "
				    "memory");
				goto fail;
			}
			o->nparams++;
			continue;
		}
		for (k = 0; k < A__COUNT; k++)
			if (strcmp(w, arg_names[k]) == 0)
				break;
		if (k == A__COUNT) {
			st = wse_err(WSE_ERR_CONFIG, "forms: unknown argument "
			    "%.64s (dir, cert, key, ca, roots, crl, publisher, "
			    "mailbox, param.KEY, retry, fetch_connect, "
			    "max_delegation, lua_memory, lua_instructions, "
			    "lua_millis)", w);
			goto fail;
		}
		if (k == A_CRL || k == A_PUBLISHER) {
			if ((k == A_CRL ? ncrls : npubs) >= MAX_PATHS) {
				st = wse_err(WSE_ERR_CONFIG, "forms: at most "
				    "%d %s=", MAX_PATHS, w);
				goto fail;
			}
			if (k == A_CRL)
				crls[ncrls++] = eq;
			else
				pubs[npubs++] = eq;
			continue;
		}
		if (val[k] != NULL) {
			st = wse_err(WSE_ERR_CONFIG, "forms: %s given twice",
			    w);
			goto fail;
		}
		val[k] = eq;
	}
	for (k = A_DIR; k <= A_ROOTS; k++)
		if (val[k] == NULL) {
			st = wse_err(WSE_ERR_CONFIG, "forms: dir=, cert=, "
			    "key=, ca= and roots= are required (%s= is "
			    "missing)",
			    arg_names[k]);
			goto fail;
		}
	if (val[A_DIR][0] != '/') {
		st = wse_err(WSE_ERR_CONFIG, "forms: dir=%.200s is not an "
		    "absolute path", val[A_DIR]);
		goto fail;
	}
	if ((o->dir = strdup(val[A_DIR])) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "forms: out of memory");
		goto fail;
	}
	(void)snprintf(o->mailbox, sizeof(o->mailbox), "%s",
	    val[A_MAILBOX] != NULL ? val[A_MAILBOX] : WSE_FORM_MAILBOX);
	if (val[A_MAILBOX] != NULL && !mailbox_ok(val[A_MAILBOX])) {
		st = wse_err(WSE_ERR_CONFIG, "forms: mailbox=%.80s is not a "
		    "mailbox name", val[A_MAILBOX]);
		goto fail;
	}
	for (i = 0; o->mailbox[i] != '\0'; i++)
		o->mailbox[i] = (char)tolower((unsigned char)o->mailbox[i]);
	if ((size_t)snprintf(o->addr, sizeof(o->addr), "%s@%s", o->mailbox,
	    o->domain) >= sizeof(o->addr) || !wse_addr_valid(o->addr)) {
		st = wse_err(WSE_ERR_CONFIG, "forms: %s@%s is not a valid "
		    "address", o->mailbox, o->domain);
		goto fail;
	}
	if (val[A_RETRY] != NULL) {
		if ((st = conf_num("retry", val[A_RETRY], 1, RETRY_MAX, &v)) !=
		    WSE_OK)
			goto fail;
		o->retry = (int64_t)v;
	}
	if (val[A_MAX_DELEGATION] != NULL) {
		if ((st = conf_num("max_delegation", val[A_MAX_DELEGATION], 0,
		    WSE_FORM_MAX_DELEGATION, &v)) != WSE_OK)
			goto fail;
		o->max_delegation = (unsigned)v;
	}
	if (val[A_LUA_MEMORY] != NULL) {
		if ((st = conf_num("lua_memory", val[A_LUA_MEMORY], 64 * 1024,
		    1ULL << 30, &v)) != WSE_OK)
			goto fail;
		o->limits.max_memory = (size_t)v;
	}
	if (val[A_LUA_INSTRUCTIONS] != NULL) {
		if ((st = conf_num("lua_instructions", val[A_LUA_INSTRUCTIONS],
		    1000, 1ULL << 40, &v)) != WSE_OK)
			goto fail;
		o->limits.max_instructions = v;
	}
	if (val[A_LUA_MILLIS] != NULL) {
		if ((st = conf_num("lua_millis", val[A_LUA_MILLIS], 1, 60000,
		    &v)) != WSE_OK)
			goto fail;
		o->limits.max_millis = (uint32_t)v;
	}
	if (val[A_FETCH_CONNECT] != NULL) {
		if (inet_pton(AF_INET, val[A_FETCH_CONNECT], addrbuf) != 1 &&
		    inet_pton(AF_INET6, val[A_FETCH_CONNECT], addrbuf) != 1) {
			st = wse_err(WSE_ERR_CONFIG, "forms: fetch_connect="
			    "%.80s is not a numeric address",
			    val[A_FETCH_CONNECT]);
			goto fail;
		}
		if ((o->fetch_connect = strdup(val[A_FETCH_CONNECT])) == NULL) {
			st = wse_err(WSE_ERR_NOMEM, "forms: out of memory");
			goto fail;
		}
	}

	/* Trust: roots and CRLs, watched for changes. */
	if ((st = add_watched(o, val[A_ROOTS])) != WSE_OK)
		goto fail;
	for (i = 0; i < ncrls; i++)
		if ((st = add_watched(o, crls[i])) != WSE_OK)
			goto fail;
	if ((st = wse_trust_new(&o->trust)) != WSE_OK)
		goto fail;
	if (wse_trust_load_roots(o->trust, val[A_ROOTS]) != WSE_OK) {
		st = wse_err(WSE_ERR_CONFIG, "forms: roots=%s: cannot load",
		    val[A_ROOTS]);
		goto fail;
	}
	for (i = 0; i < ncrls; i++)
		if (wse_trust_load_crls(o->trust, crls[i]) != WSE_OK) {
			st = wse_err(WSE_ERR_CONFIG, "forms: crl=%s: cannot "
			    "load", crls[i]);
			goto fail;
		}
	for (i = 0; i < o->ntrust_files; i++) {
		struct stat sb;

		if (stat(o->trust_files[i].path, &sb) == 0) {
			o->trust_files[i].mtime = sb.st_mtim;
			o->trust_files[i].size = sb.st_size;
		}
	}
	if ((st = check_signer(o, val[A_CERT], val[A_KEY], val[A_CA])) !=
	    WSE_OK)
		goto fail;
	for (i = 0; i < npubs; i++) {
		if (wse_cert_load(pubs[i], &o->publishers[i]) != WSE_OK) {
			st = wse_err(WSE_ERR_CONFIG, "forms: publisher=%s: "
			    "cannot load", pubs[i]);
			goto fail;
		}
		o->npublishers++;
	}
	memset(&ho, 0, sizeof(ho));
	ho.roots = val[A_ROOTS];
	ho.connect_timeout_ms = FETCH_CONNECT_MS;
	ho.timeout_ms = FETCH_TIMEOUT_MS;
	ho.max_response = WSE_FORMTYPE_MAX_PLUGIN + 4096;
	if (wse_http_client_new(&ho, &o->http) != WSE_OK) {
		st = wse_err(WSE_ERR_CONFIG, "forms: cannot make the client "
		    "that fetches type plugins");
		goto fail;
	}

	if ((st = open_dirs(o)) != WSE_OK || (st = db_open(o)) != WSE_OK)
		goto fail;
	if (pthread_create(&o->thread, NULL, worker_main, o) != 0) {
		st = wse_err(WSE_ERR_INTERNAL, "forms: cannot start the worker "
		    "thread");
		goto fail;
	}
	o->thread_ok = 1;
	free(copy);
	if (o->npublishers == 0)
		host->log(host, "warning: no publisher= given: no form type "
		    "can be loaded, only rejected forms can be closed");
	host->log(host, "serving %s for %s: %zu publisher(s), %zu "
	    "parameter(s), retry %" PRId64 " s", o->addr, o->dir,
	    o->npublishers, o->nparams, o->retry);
	*state_r = o;
	return WSE_OK;
fail:
	free(copy);
	fp_free(o);
	return st;
}

static void
fp_deinit(void *state)
{
	fp_free(state);
}

static const struct wse_plugin forms_plugin = {
	.abi = WSE_PLUGIN_ABI,
	.name = "forms",
	.init = fp_init,
	.deinit = fp_deinit,
	.message = fp_message,
	.ops = fp_ops,
	.op_flags = fp_op_flags,
	.call = fp_call,
};

WSE_PLUGIN_EXPORT const struct wse_plugin *
wse_plugin_entry(void)
{
	return &forms_plugin;
}
