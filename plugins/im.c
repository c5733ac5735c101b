/*
 * im.c - instant messages (docs/im.md): a message-dependent and RPC-like
 * plugin on the ABI of lib/plugin.h.
 *
 *     plugin = /usr/lib/.../im.so dir=/var/lib/wsemail/im [retention=86400]
 *              [grace=35] [max_wait=50] [max_sessions=64] [max_held=10000]
 *
 * Message hook (instant messages only, WSE_PLUGIN_MSG_INSTANT): the
 * recipient's policy first (refused: WSE_PLUGIN_REFUSE, nothing kept);
 * then, when a session of the recipient is online (a WaitInstant held, or
 * answered less than grace seconds ago), the message - the signed
 * envelope exactly as received - is appended to the recipient's instant
 * log under the next sequence number and every held WaitInstant of the
 * recipient is answered at once (taken, sessions = N); otherwise it is
 * left to the server, which stores it as mail flagged instant.
 *
 * Operations: WaitInstant (password, held without a thread: one timer
 * thread ends the waits), SetInstantPolicy / GetInstantPolicy (password),
 * GetPresence (token of any domain), DeliverDirect (token: a roaming
 * client's instant message, From = the token's mailbox; delivered
 * through host->deliver_instant, so the same policy, push and fallback
 * apply, and what is pushed or stored is the token-signed request).
 *
 * Storage: dir/im.db (SQLite, WAL, synchronous=NORMAL: the log is not
 * fsynced per message; created 0600 and opened hardened, symbolic links
 * refused: lib/sqlitedb.h): policies, the per-user log with its last
 * sequence number (kept even when the log is emptied by retention, so
 * numbers never go back), rows older than retention are dropped at most
 * once a minute.  Memory is bounded: at most max_sessions held requests
 * and remembered sessions per user and max_held held requests in all
 * (further WaitInstant get TempFail).  A user's new session beyond
 * max_sessions takes the place of the one idle longest, never of one
 * held; a request refused for a bound takes no place.
 *
 * Threads: one mutex guards the database and the in-memory state; it is
 * never held while answering a held request or calling the host's
 * deliver_instant.  Lock order: this plugin's mutex, then the server's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "plugin.h"
#include "sqlitedb.h"
#include "xml.h"

#define DEF_RETENTION	86400
#define DEF_GRACE	35
#define DEF_MAX_WAIT	50
#define DEF_WAIT	25
#define DEF_MAX_SESS	64
#define DEF_MAX_HELD	10000
#define POLICY_MAX	1000	/* entries of one user's policy */
#define ITEMS_MAX	100	/* items in one WaitInstantResponse */
#define USER_HASH	1024
#define STMT_MAX	32	/* statements kept prepared (14 used) */

enum accept { ACCEPT_ANYONE, ACCEPT_LISTED, ACCEPT_NOBODY };
static const char *const accept_name[] = { "anyone", "listed", "nobody" };
enum kind { K_ALLOW, K_BLOCK, K_PRESENCE };
static const char *const kind_name[] = { "Allow", "Block", "PresenceTo" };

struct imuser;

struct waiter {
	wse_plugin_held *held;
	struct imuser *u;
	char session[WSE_UUID_URN_LEN + 1];
	long long after;
	int64_t deadline_ms;		/* monotonic */
	struct waiter *prev, *next;	/* all waiters, by deadline */
	struct waiter *uprev, *unext;	/* this user's */
};

struct sess {
	char id[WSE_UUID_URN_LEN + 1];
	int64_t last_ms;		/* last answered (monotonic) */
	int held;
};

struct imuser {
	char name[WSE_ADDR_MAX + 1];
	struct waiter *waiters;
	size_t nwaiters;
	struct sess *sess;		/* grown as sessions come, */
	size_t nsess, asess;		/* up to max_sessions */
	struct imuser *next;		/* hash chain */
};

/*
 * A statement prepared once and kept for the connection: an instant
 * message runs some 13 statements, and preparing each anew was a good
 * part of its latency.
 * sql is the statement's own copy of its text (sqlite3_sql), so callers
 * may pass any string; busy while a caller has it, so that a nested use
 * of the same text gets a statement of its own rather than resetting the
 * caller's.
 */
struct stmt {
	const char *sql;
	sqlite3_stmt *q;
	int busy;
};

struct im {
	const struct wse_plugin_host *h;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int lock_ok, cond_ok;
	pthread_t timer;
	int timer_ok, stop;
	sqlite3 *db;
	sqlite3 *ck;			/* the timer's, for checkpoints */
	int64_t last_ck_ms;
	struct stmt stmt[STMT_MAX];	/* under lock, like db */
	size_t nstmt;
	char *dir;
	int64_t retention, grace, max_wait;
	size_t max_sessions, max_held, nheld;
	struct waiter *head, *tail;
	struct imuser *users[USER_HASH];
	int64_t last_expire;
};

/* An answer to send once the lock is released. */
struct pending {
	wse_plugin_held *held;
	wse_buf *payload;
};

static const char *const im_ops[] = {
	"WaitInstant", "SetInstantPolicy", "GetInstantPolicy", "GetPresence",
	"DeliverDirect", NULL,
};
static const unsigned im_op_flags[] = {
	WSE_PLUGIN_OP_HOLD, 0, 0, WSE_PLUGIN_OP_TOKEN, WSE_PLUGIN_OP_TOKEN,
};

/* Run at every opening (wse_sqlite_open, which sets WAL mode first):
 * the log carries no schema version, and its statements are harmless to
 * repeat. */
static const char setup[] =
	"PRAGMA synchronous = NORMAL;"
	/* The timer thread checkpoints once a second from its own
	 * connection (checkpoint()); a commit does it only as a net. */
	"PRAGMA wal_autocheckpoint = 10000;"
	"CREATE TABLE IF NOT EXISTS policy (user TEXT PRIMARY KEY,"
	" accept INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS policy_entry (user TEXT NOT NULL,"
	" kind INTEGER NOT NULL, value TEXT NOT NULL,"
	" PRIMARY KEY (user, kind, value));"
	"CREATE TABLE IF NOT EXISTS seqs (user TEXT PRIMARY KEY,"
	" last INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS log (user TEXT NOT NULL,"
	" seq INTEGER NOT NULL, received INTEGER NOT NULL,"
	" origin TEXT NOT NULL, origin_id TEXT NOT NULL,"
	" original BLOB NOT NULL, PRIMARY KEY (user, seq),"
	" UNIQUE (user, origin, origin_id));"
	"CREATE INDEX IF NOT EXISTS log_received ON log (received);";

/* ---- small helpers ---- */

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static wse_status
db_fail(struct im *im, const char *what)
{
	int rc = sqlite3_errcode(im->db);

	return wse_err((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) ==
	    SQLITE_LOCKED || (rc & 0xff) == SQLITE_FULL || (rc & 0xff) ==
	    SQLITE_IOERR ? WSE_ERR_TEMPFAIL : WSE_ERR_IO,
	    "im: database: %s: %s", what, sqlite3_errmsg(im->db));
}

/*
 * The statement for sql (one statement), ready to bind: the kept one, or
 * a new one kept from now on.  When the cache is full, or the kept one is
 * in use, a statement for this call only.  Whatever the outcome the
 * caller gives it back with db_release.
 */
static wse_status
db_prep(struct im *im, const char *sql, sqlite3_stmt **q_r)
{
	struct stmt *c;
	size_t i;
	int keep;

	*q_r = NULL;
	for (i = 0; i < im->nstmt; i++)
		if (strcmp(im->stmt[i].sql, sql) == 0)
			break;
	if (i < im->nstmt && !im->stmt[i].busy) {
		im->stmt[i].busy = 1;
		*q_r = im->stmt[i].q;
		return WSE_OK;
	}
	keep = i == im->nstmt && im->nstmt < STMT_MAX;
	if (sqlite3_prepare_v3(im->db, sql, -1, keep ?
	    SQLITE_PREPARE_PERSISTENT : 0, q_r, NULL) != SQLITE_OK) {
		*q_r = NULL;
		return db_fail(im, "prepare");
	}
	if (keep) {
		c = &im->stmt[im->nstmt++];
		c->sql = sqlite3_sql(*q_r);
		c->q = *q_r;
		c->busy = 1;
	}
	return WSE_OK;
}

/*
 * Give back *q_r (NULL or from db_prep) and clear it, on every path: a
 * kept statement is reset - a SELECT left stepping would hold its read
 * transaction open, and no WAL checkpoint could pass it - and its
 * bindings cleared, as they may point into the caller's memory
 * (SQLITE_STATIC); any other is finalized.
 */
static void
db_release(struct im *im, sqlite3_stmt **q_r)
{
	sqlite3_stmt *q = *q_r;
	size_t i;

	if (q == NULL)
		return;
	*q_r = NULL;
	for (i = 0; i < im->nstmt; i++)
		if (im->stmt[i].q == q) {
			(void)sqlite3_reset(q);
			(void)sqlite3_clear_bindings(q);
			im->stmt[i].busy = 0;
			return;
		}
	sqlite3_finalize(q);
}

/* One statement without parameters or rows: BEGIN, COMMIT. */
static wse_status
db_exec(struct im *im, const char *sql)
{
	sqlite3_stmt *q;
	wse_status st;

	if ((st = db_prep(im, sql, &q)) != WSE_OK)
		return st;
	if (sqlite3_step(q) != SQLITE_DONE)
		st = db_fail(im, sql);
	db_release(im, &q);
	return st;
}

/*
 * Undo the open transaction, if one is (a failed COMMIT may have ended
 * it already).  The caller reports its own error, so a failure here adds
 * none; every statement of the transaction must have been released.
 */
static void
db_rollback(struct im *im)
{
	sqlite3_stmt *q;

	if (sqlite3_get_autocommit(im->db) || db_prep(im, "ROLLBACK", &q) !=
	    WSE_OK)
		return;
	(void)sqlite3_step(q);
	db_release(im, &q);
}

/* An address or "@domain", lower-cased into out. */
static int
entry_norm(const char *v, char *out, size_t size)
{
	char probe[WSE_ADDR_MAX + 8];
	size_t i;

	if (v[0] == '@') {
		if (strlen(v) >= size || snprintf(probe, sizeof(probe), "x%s",
		    v) >= (int)sizeof(probe) || !wse_addr_valid(probe))
			return 0;
		for (i = 0; v[i] != '\0'; i++)
			out[i] = (char)(v[i] >= 'A' && v[i] <= 'Z' ?
			    v[i] - 'A' + 'a' : v[i]);
		out[i] = '\0';
		return 1;
	}
	return wse_addr_normalize(v, out, size) == WSE_OK;
}

/* ---- users, sessions, waiters (the lock held) ---- */

static unsigned
user_hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % USER_HASH;
}

static struct imuser *
user_find(struct im *im, const char *name, int create)
{
	unsigned k = user_hash(name);
	struct imuser *u;

	for (u = im->users[k]; u != NULL; u = u->next)
		if (strcmp(u->name, name) == 0)
			return u;
	if (!create || (u = calloc(1, sizeof(*u))) == NULL)
		return NULL;
	(void)snprintf(u->name, sizeof(u->name), "%s", name);
	u->next = im->users[k];
	im->users[k] = u;
	return u;
}

static int
sess_live(const struct im *im, const struct sess *x, int64_t now)
{
	return x->held || now - x->last_ms < im->grace * 1000;
}

/* Sessions online now: a request held, or answered within grace. */
static unsigned
user_online(const struct im *im, const struct imuser *u, int64_t now)
{
	unsigned n = 0;
	size_t i;

	for (i = 0; u != NULL && i < u->nsess; i++)
		n += sess_live(im, &u->sess[i], now) != 0;
	return n;
}

/* The session named id, remembered anew if need be; NULL when every
 * place is taken by a held one, or out of memory. */
static struct sess *
sess_get(struct im *im, struct imuser *u, const char *id, int64_t now)
{
	size_t i, victim = SIZE_MAX;

	for (i = 0; i < u->nsess; i++)
		if (strcmp(u->sess[i].id, id) == 0)
			return &u->sess[i];
	if (u->nsess < im->max_sessions) {
		if (u->nsess == u->asess) {
			size_t n = u->asess < 2 ? 2 : 2 * u->asess;
			struct sess *p;

			if (n > im->max_sessions)
				n = im->max_sessions;
			if ((p = reallocarray(u->sess, n, sizeof(*p))) == NULL)
				return NULL;
			u->sess = p;
			u->asess = n;
		}
		i = u->nsess++;
	} else {
		/* Forget the session idle longest, never a held one. */
		for (i = 0; i < u->nsess; i++)
			if (!u->sess[i].held && (victim == SIZE_MAX ||
			    u->sess[i].last_ms < u->sess[victim].last_ms))
				victim = i;
		if (victim == SIZE_MAX)
			return NULL;
		i = victim;
	}
	memset(&u->sess[i], 0, sizeof(u->sess[i]));
	(void)snprintf(u->sess[i].id, sizeof(u->sess[i].id), "%s", id);
	u->sess[i].last_ms = now - im->grace * 1000;
	return &u->sess[i];
}

static void
sess_drop(struct imuser *u, const char *id)
{
	size_t i;

	for (i = 0; i < u->nsess; i++)
		if (strcmp(u->sess[i].id, id) == 0) {
			u->sess[i] = u->sess[--u->nsess];
			return;
		}
}

static void
waiter_link(struct im *im, struct waiter *w)
{
	struct waiter *p = im->tail;

	/* Mostly the latest deadline: search from the tail. */
	while (p != NULL && p->deadline_ms > w->deadline_ms)
		p = p->prev;
	w->prev = p;
	w->next = p != NULL ? p->next : im->head;
	if (w->next != NULL)
		w->next->prev = w;
	else
		im->tail = w;
	if (p != NULL)
		p->next = w;
	else
		im->head = w;
	w->uprev = NULL;
	w->unext = w->u->waiters;
	if (w->unext != NULL)
		w->unext->uprev = w;
	w->u->waiters = w;
	w->u->nwaiters++;
	im->nheld++;
}

/* Unlink w and mark its session answered (at now) or gone (now < 0). */
static void
waiter_unlink(struct im *im, struct waiter *w, int64_t now)
{
	struct sess *x;
	size_t i;

	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		im->head = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	else
		im->tail = w->prev;
	if (w->uprev != NULL)
		w->uprev->unext = w->unext;
	else
		w->u->waiters = w->unext;
	if (w->unext != NULL)
		w->unext->uprev = w->uprev;
	w->u->nwaiters--;
	im->nheld--;
	for (i = 0; i < w->u->nsess; i++) {
		x = &w->u->sess[i];
		if (strcmp(x->id, w->session) != 0)
			continue;
		x->held = 0;
		if (now >= 0)
			x->last_ms = now;
		else
			sess_drop(w->u, w->session);
		break;
	}
}

/* ---- the log ---- */

static void
expire(struct im *im)
{
	int64_t now = im->h->now();
	sqlite3_stmt *q = NULL;

	if (now - im->last_expire < 60)
		return;
	im->last_expire = now;
	if (db_prep(im, "DELETE FROM log WHERE received < ?", &q) == WSE_OK) {
		sqlite3_bind_int64(q, 1, now - im->retention);
		if (sqlite3_step(q) != SQLITE_DONE)
			(void)db_fail(im, "expire");
	}
	db_release(im, &q);
	wse_err_clear();
}

static wse_status
last_seq(struct im *im, const char *user, long long *last_r)
{
	sqlite3_stmt *q = NULL;
	wse_status st;
	int rc;

	*last_r = 0;
	if ((st = db_prep(im, "SELECT last FROM seqs WHERE user = ?", &q)) !=
	    WSE_OK)
		return st;
	sqlite3_bind_text(q, 1, user, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*last_r = sqlite3_column_int64(q, 0);
	else if (rc != SQLITE_DONE)
		st = db_fail(im, "last sequence number");
	db_release(im, &q);
	return st;
}

/* Append d's original for user: a new sequence number, or the one the
 * same message (origin, origin_id) got before. */
static wse_status
log_append(struct im *im, const char *user,
    const struct wse_plugin_delivery *d, long long *seq_r)
{
	sqlite3_stmt *q = NULL;
	long long last;
	wse_status st;
	int rc;

	if ((st = db_exec(im, "BEGIN IMMEDIATE")) != WSE_OK)
		return st;
	if ((st = db_prep(im, "SELECT seq FROM log WHERE user = ? AND "
	    "origin = ? AND origin_id = ?", &q)) != WSE_OK)
		goto fail;
	sqlite3_bind_text(q, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, d->origin, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, d->origin_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*seq_r = sqlite3_column_int64(q, 0);
	else if (rc != SQLITE_DONE) {
		st = db_fail(im, "log look-up");
		goto fail;
	}
	db_release(im, &q);
	if (rc == SQLITE_ROW) {
		if ((st = db_exec(im, "COMMIT")) != WSE_OK)
			goto fail;
		return WSE_OK;
	}
	if ((st = last_seq(im, user, &last)) != WSE_OK ||
	    (st = db_prep(im, "INSERT INTO log (user, seq, received, origin, "
	    "origin_id, original) VALUES (?, ?, ?, ?, ?, ?)", &q)) != WSE_OK)
		goto fail;
	sqlite3_bind_text(q, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, last + 1);
	sqlite3_bind_int64(q, 3, im->h->now());
	sqlite3_bind_text(q, 4, d->origin, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 5, d->origin_id, -1, SQLITE_STATIC);
	sqlite3_bind_blob(q, 6, d->original, (int)d->original_len,
	    SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE) {
		st = db_fail(im, "log append");
		goto fail;
	}
	db_release(im, &q);
	if ((st = db_prep(im, "INSERT OR REPLACE INTO seqs (user, last) "
	    "VALUES (?, ?)", &q)) != WSE_OK)
		goto fail;
	sqlite3_bind_text(q, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, last + 1);
	if (sqlite3_step(q) != SQLITE_DONE) {
		st = db_fail(im, "sequence number");
		goto fail;
	}
	db_release(im, &q);
	/* A COMMIT that fails may leave the transaction open: roll it
	 * back, or every later BEGIN would fail. */
	if ((st = db_exec(im, "COMMIT")) != WSE_OK)
		goto fail;
	*seq_r = last + 1;
	return WSE_OK;
fail:
	db_release(im, &q);
	db_rollback(im);
	return st;
}

/* A WaitInstantResponse for user with the items after `after`. */
static wse_status
build_items(struct im *im, const char *user, long long after, wse_buf **out_r)
{
	size_t budget = im->h->limits->max_message_bytes / 2;
	sqlite3_stmt *q = NULL;
	wse_buf *b = NULL;
	long long last;
	wse_status st;
	char when[21];
	int rc, n = 0;

	*out_r = NULL;
	if (budget > (4u << 20))
		budget = 4u << 20;
	if ((b = wse_buf_new(budget + 65536)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "im: out of memory");
	if ((st = last_seq(im, user, &last)) != WSE_OK ||
	    (st = wse_buf_printf(b, "<m:WaitInstantResponse xmlns:m=\""
	    WSE_NS_WSE "\" last=\"%lld\">", last)) != WSE_OK)
		goto out;
	if (last > after) {
		if ((st = db_prep(im, "SELECT seq, received, original FROM log "
		    "WHERE user = ? AND seq > ? ORDER BY seq LIMIT ?", &q)) !=
		    WSE_OK)
			goto out;
		sqlite3_bind_text(q, 1, user, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 2, after);
		sqlite3_bind_int(q, 3, ITEMS_MAX);
		while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
			size_t len = (size_t)sqlite3_column_bytes(q, 2);

			/* At least one item; the rest on the next poll. */
			if (n > 0 && wse_buf_len(b) + len / 3 * 4 + 200 >
			    budget)
				break;
			wse_time_format(sqlite3_column_int64(q, 1), when);
			if ((st = wse_buf_printf(b, "<m:Item seq=\"%lld\" "
			    "received=\"%s\"><m:Original>",
			    (long long)sqlite3_column_int64(q, 0), when)) !=
			    WSE_OK ||
			    (st = wse_base64_encode(sqlite3_column_blob(q, 2),
			    len, b)) != WSE_OK ||
			    (st = wse_buf_puts(b, "</m:Original></m:Item>")) !=
			    WSE_OK)
				goto out;
			n++;
		}
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			st = db_fail(im, "log read");
			goto out;
		}
	}
	if ((st = wse_buf_puts(b, "</m:WaitInstantResponse>")) != WSE_OK)
		goto out;
	*out_r = b;
	b = NULL;
out:
	db_release(im, &q);	/* also when it stopped early, on budget */
	wse_buf_free(&b);
	return st;
}

/* Take waiter w out and queue its answer into p (the lock held). */
static void
waiter_answer_prep(struct im *im, struct waiter *w, int64_t now,
    struct pending *p)
{
	p->held = w->held;
	p->payload = NULL;
	if (build_items(im, w->u->name, w->after, &p->payload) != WSE_OK)
		p->payload = NULL;	/* answered TempFail */
	waiter_unlink(im, w, now);
	free(w);
}

static void
pending_send(struct im *im, struct pending *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		(void)im->h->answer(im->h, p[i].held, p[i].payload != NULL ?
		    WSE_OK : WSE_ERR_TEMPFAIL, p[i].payload);
		wse_buf_free(&p[i].payload);
		wse_err_clear();
	}
}

/* ---- policy ---- */

struct policy {
	int accept;
	char (*v)[WSE_ADDR_MAX + 2];
	int *kind;
	size_t n;
};

static void
policy_clear(struct policy *p)
{
	free(p->v);
	free(p->kind);
	memset(p, 0, sizeof(*p));
}

static wse_status
policy_load(struct im *im, const char *user, struct policy *p)
{
	sqlite3_stmt *q = NULL;
	wse_status st;
	int rc;

	memset(p, 0, sizeof(*p));
	p->accept = ACCEPT_ANYONE;
	if ((p->v = calloc(POLICY_MAX, sizeof(*p->v))) == NULL ||
	    (p->kind = calloc(POLICY_MAX, sizeof(*p->kind))) == NULL) {
		policy_clear(p);
		return wse_err(WSE_ERR_NOMEM, "im: out of memory");
	}
	if ((st = db_prep(im, "SELECT accept FROM policy WHERE user = ?", &q))
	    != WSE_OK)
		goto fail;
	sqlite3_bind_text(q, 1, user, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(q)) == SQLITE_ROW)
		p->accept = sqlite3_column_int(q, 0);
	else if (rc != SQLITE_DONE) {
		st = db_fail(im, "policy");
		goto fail;
	}
	db_release(im, &q);
	if ((st = db_prep(im, "SELECT kind, value FROM policy_entry WHERE "
	    "user = ? ORDER BY kind, value", &q)) != WSE_OK)
		goto fail;
	sqlite3_bind_text(q, 1, user, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW && p->n < POLICY_MAX) {
		p->kind[p->n] = sqlite3_column_int(q, 0);
		(void)snprintf(p->v[p->n], sizeof(p->v[0]), "%s",
		    (const char *)sqlite3_column_text(q, 1));
		p->n++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		st = db_fail(im, "policy entries");
		goto fail;
	}
	db_release(im, &q);	/* also when POLICY_MAX stopped it */
	return WSE_OK;
fail:
	db_release(im, &q);
	policy_clear(p);
	return st;
}

/* 1 when who (an address) or its @domain is listed as kind. */
static int
policy_has(const struct policy *p, int kind, const char *who)
{
	const char *at = strchr(who, '@');
	size_t i;

	for (i = 0; i < p->n; i++)
		if (p->kind[i] == kind && (strcmp(p->v[i], who) == 0 ||
		    (at != NULL && strcmp(p->v[i], at) == 0)))
			return 1;
	return 0;
}

/* May `from` send user an instant message?  1, 0, or -1 (no answer). */
static int
policy_allows(struct im *im, const char *user, const char *from)
{
	struct policy p;
	char who[WSE_ADDR_MAX + 1];
	int ok;

	if (wse_addr_normalize(from, who, sizeof(who)) != WSE_OK)
		return 0;
	if (policy_load(im, user, &p) != WSE_OK)
		return -1;
	if (policy_has(&p, K_BLOCK, who))
		ok = 0;
	else if (p.accept == ACCEPT_ANYONE)
		ok = 1;
	else if (p.accept == ACCEPT_LISTED)
		ok = policy_has(&p, K_ALLOW, who);
	else
		ok = 0;
	policy_clear(&p);
	return ok;
}

/* ---- the message hook ---- */

static wse_status
im_message(void *state, const struct wse_plugin_delivery *d, int *consumed_r)
{
	struct im *im = state;
	struct pending *p = NULL;
	size_t i, np = 0;
	long long seq = 0;
	int64_t now;
	int ok;

	if (!(d->flags & WSE_PLUGIN_MSG_INSTANT))
		return WSE_OK;
	for (i = 0; i < d->nrcpts; i++) {
		struct imuser *u;
		struct waiter *w;
		unsigned n;

		pthread_mutex_lock(&im->lock);
		expire(im);
		ok = policy_allows(im, d->rcpts[i], d->msg->from);
		if (ok < 0) {
			pthread_mutex_unlock(&im->lock);
			return WSE_ERR_TEMPFAIL;
		}
		if (!ok) {
			pthread_mutex_unlock(&im->lock);
			consumed_r[i] = WSE_PLUGIN_REFUSE;
			im->h->log(im->h, "refused %s from %s for %s (policy)",
			    d->origin_id, d->msg->from, d->rcpts[i]);
			continue;
		}
		now = mono_ms();
		u = user_find(im, d->rcpts[i], 0);
		if ((n = user_online(im, u, now)) == 0) {
			/* Nobody online: the server stores it as mail. */
			pthread_mutex_unlock(&im->lock);
			continue;
		}
		if (log_append(im, d->rcpts[i], d, &seq) != WSE_OK) {
			pthread_mutex_unlock(&im->lock);
			return WSE_ERR_TEMPFAIL;
		}
		if (u->nwaiters > 0 && (p = calloc(u->nwaiters,
		    sizeof(*p))) == NULL) {
			pthread_mutex_unlock(&im->lock);
			return WSE_ERR_TEMPFAIL;
		}
		np = 0;
		while ((w = u->waiters) != NULL)
			waiter_answer_prep(im, w, now, &p[np++]);
		pthread_mutex_unlock(&im->lock);
		pending_send(im, p, np);
		free(p);
		p = NULL;
		consumed_r[i] = WSE_PLUGIN_TAKEN;
		if (d->sessions_r != NULL)
			d->sessions_r[i] = n;
		im->h->log(im->h, "pushed %s from %s to %s: #%lld, %u "
		    "session(s)", d->origin_id, d->msg->from, d->rcpts[i], seq,
		    n);
	}
	return WSE_OK;
}

/* ---- operations ---- */

static xmlNodePtr
request_elem(const struct wse_plugin_request *r)
{
	xmlNodePtr n;

	if (wse_xml_only_child(r->body, WSE_NS_WSE, r->op, &n) != WSE_OK)
		return NULL;
	return n;
}

/* The text of the only child `name` of req (NULL, WSE_OK when absent). */
static wse_status
child_text(const xmlNode *req, const char *name, size_t max, char **out)
{
	xmlNodePtr n = NULL;
	const xmlNode *c;
	int count = 0;

	*out = NULL;
	for (c = wse_xml_first_elem(req); c; c = wse_xml_next_elem(c))
		if (wse_xml_is(c, WSE_NS_WSE, name)) {
			n = (xmlNodePtr)(uintptr_t)c;
			count++;
		}
	if (count == 0)
		return WSE_OK;
	if (count > 1)
		return wse_err(WSE_ERR_INVALID, "im: %s given twice", name);
	return wse_xml_text_dup(n, max, out);
}

static wse_status
child_num(const xmlNode *req, const char *name, long long def, long long lo,
    long long hi, long long *v_r)
{
	char *s = NULL, *end;
	wse_status st;
	long long v;

	*v_r = def;
	if ((st = child_text(req, name, 32, &s)) != WSE_OK || s == NULL)
		return st;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v < lo ||
	    v > hi)
		st = wse_err(WSE_ERR_INVALID, "im: bad %s", name);
	else
		*v_r = v;
	free(s);
	return st;
}

static wse_status
op_wait(struct im *im, const struct wse_plugin_request *r, wse_buf *resp)
{
	xmlNodePtr req = request_elem(r);
	struct pending old = { NULL, NULL };
	struct waiter *w = NULL, *x;
	wse_buf *b = NULL;
	char *session = NULL;
	long long after, wait, last;
	struct imuser *u;
	struct sess *ss;
	wse_plugin_held *held = NULL;
	int64_t now = mono_ms();
	wse_status st;

	if (req == NULL)
		return wse_err(WSE_ERR_INVALID, "im: no WaitInstant");
	if ((st = child_text(req, "Session", WSE_UUID_URN_LEN + 1, &session)) !=
	    WSE_OK || session == NULL || !wse_uuid_urn_valid(session)) {
		free(session);
		return wse_err(WSE_ERR_INVALID, "im: WaitInstant needs a "
		    "Session (urn:uuid)");
	}
	if ((st = child_num(req, "After", 0, 0, INT64_MAX / 2, &after)) !=
	    WSE_OK || (st = child_num(req, "Wait", DEF_WAIT, 1, 60, &wait)) !=
	    WSE_OK) {
		free(session);
		return st;
	}
	if (wait > im->max_wait)
		wait = im->max_wait;
	pthread_mutex_lock(&im->lock);
	expire(im);
	if ((u = user_find(im, r->user, 1)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "im: out of memory");
		goto out;
	}
	if ((st = last_seq(im, r->user, &last)) != WSE_OK)
		goto out;
	/* A session has one request held: a newer one replaces it. */
	for (x = u->waiters; x != NULL; x = x->unext)
		if (strcmp(x->session, session) == 0)
			break;
	if (x != NULL)
		waiter_answer_prep(im, x, now, &old);
	/* Refused before the session is looked up: a new one would take
	 * the place of another, which a refusal must leave online. */
	if (last <= after && (u->nwaiters >= im->max_sessions ||
	    im->nheld >= im->max_held)) {
		st = wse_err(WSE_ERR_TEMPFAIL, "im: too many requests held "
		    "(%zu for %s, %zu in all)", u->nwaiters, r->user,
		    im->nheld);
		goto out;
	}
	if ((ss = sess_get(im, u, session, now)) == NULL) {
		st = u->nsess < im->max_sessions ? wse_err(WSE_ERR_NOMEM,
		    "im: out of memory") : wse_err(WSE_ERR_TEMPFAIL, "im: %s "
		    "has %zu sessions waiting already", r->user,
		    im->max_sessions);
		goto out;
	}
	if (last > after) {
		/* Something to give at once. */
		if ((st = build_items(im, r->user, after, &b)) != WSE_OK)
			goto out;
		ss->last_ms = now;
		st = wse_buf_put(resp, wse_buf_data(b), wse_buf_len(b));
		goto out;
	}
	st = im->h->hold(im->h, r, &held);
	if (st == WSE_ERR_UNSUPPORTED) {
		/* Not over the network: answer now, with nothing. */
		wse_err_clear();
		if ((st = build_items(im, r->user, after, &b)) != WSE_OK)
			goto out;
		ss->last_ms = now;
		st = wse_buf_put(resp, wse_buf_data(b), wse_buf_len(b));
		goto out;
	}
	if (st != WSE_OK)
		goto out;
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		pthread_mutex_unlock(&im->lock);
		(void)im->h->answer(im->h, held, WSE_ERR_TEMPFAIL, NULL);
		free(session);
		return WSE_OK;		/* answered (TempFail) */
	}
	w->held = held;
	w->u = u;
	(void)snprintf(w->session, sizeof(w->session), "%s", session);
	w->after = after;
	w->deadline_ms = now + wait * 1000;
	waiter_link(im, w);
	ss->held = 1;
	pthread_cond_signal(&im->cond);
out:
	pthread_mutex_unlock(&im->lock);
	if (old.held != NULL)
		pending_send(im, &old, 1);
	wse_buf_free(&b);
	free(session);
	return st;
}

static wse_status
op_set_policy(struct im *im, const struct wse_plugin_request *r,
    wse_buf *resp)
{
	xmlNodePtr req = request_elem(r), n;
	sqlite3_stmt *q = NULL;
	char *t = NULL, norm[WSE_ADDR_MAX + 2];
	int accept = ACCEPT_ANYONE, k, naccept = 0;
	size_t count = 0;
	wse_status st;

	if (req == NULL)
		return wse_err(WSE_ERR_INVALID, "im: no SetInstantPolicy");
	/* Check everything before anything is written. */
	for (n = wse_xml_first_elem(req); n; n = wse_xml_next_elem(n)) {
		if (wse_xml_is(n, WSE_NS_WSE, "Accept")) {
			if (naccept++ || wse_xml_text_dup(n, 16, &t) != WSE_OK)
				return wse_err(WSE_ERR_INVALID, "im: bad Accept");
			for (k = 0; k < 3; k++)
				if (strcmp(t, accept_name[k]) == 0)
					break;
			free(t);
			t = NULL;
			if (k == 3)
				return wse_err(WSE_ERR_INVALID, "im: Accept is "
				    "anyone, listed or nobody");
			accept = k;
			continue;
		}
		for (k = 0; k < 3; k++)
			if (wse_xml_is(n, WSE_NS_WSE, kind_name[k]))
				break;
		if (k == 3)
			return wse_err(WSE_ERR_INVALID, "im: unknown element "
			    "in SetInstantPolicy");
		if (wse_xml_text_dup(n, WSE_ADDR_MAX + 2, &t) != WSE_OK ||
		    !entry_norm(t, norm, sizeof(norm))) {
			free(t);
			return wse_err(WSE_ERR_INVALID, "im: %s is not an "
			    "address or @domain", kind_name[k]);
		}
		free(t);
		t = NULL;
		if (++count > POLICY_MAX)
			return wse_err(WSE_ERR_TOO_LARGE, "im: more than %d "
			    "policy entries", POLICY_MAX);
	}
	pthread_mutex_lock(&im->lock);
	if ((st = db_exec(im, "BEGIN IMMEDIATE")) != WSE_OK)
		goto out;
	if ((st = db_prep(im, "DELETE FROM policy_entry WHERE user = ?", &q))
	    != WSE_OK)
		goto fail;
	sqlite3_bind_text(q, 1, r->user, -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE) {
		st = db_fail(im, "policy");
		goto fail;
	}
	db_release(im, &q);
	if ((st = db_prep(im, "INSERT OR REPLACE INTO policy (user, accept) "
	    "VALUES (?, ?)", &q)) != WSE_OK)
		goto fail;
	sqlite3_bind_text(q, 1, r->user, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 2, accept);
	if (sqlite3_step(q) != SQLITE_DONE) {
		st = db_fail(im, "policy");
		goto fail;
	}
	db_release(im, &q);
	if ((st = db_prep(im, "INSERT OR IGNORE INTO policy_entry (user, kind, "
	    "value) VALUES (?, ?, ?)", &q)) != WSE_OK)
		goto fail;
	for (n = wse_xml_first_elem(req); n; n = wse_xml_next_elem(n)) {
		for (k = 0; k < 3; k++)
			if (wse_xml_is(n, WSE_NS_WSE, kind_name[k]))
				break;
		if (k == 3)
			continue;
		if (wse_xml_text_dup(n, WSE_ADDR_MAX + 2, &t) != WSE_OK ||
		    !entry_norm(t, norm, sizeof(norm))) {
			st = wse_err(WSE_ERR_INVALID, "im: bad entry");
			goto fail;
		}
		free(t);
		t = NULL;
		sqlite3_reset(q);
		sqlite3_bind_text(q, 1, r->user, -1, SQLITE_STATIC);
		sqlite3_bind_int(q, 2, k);
		sqlite3_bind_text(q, 3, norm, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(q) != SQLITE_DONE) {
			st = db_fail(im, "policy entry");
			goto fail;
		}
	}
	db_release(im, &q);
	if ((st = db_exec(im, "COMMIT")) != WSE_OK)
		goto fail;
	pthread_mutex_unlock(&im->lock);
	im->h->log(im->h, "%s set the policy: %s, %zu entries", r->user,
	    accept_name[accept], count);
	return wse_buf_puts(resp, "<m:SetInstantPolicyResponse xmlns:m=\""
	    WSE_NS_WSE "\"/>");
fail:
	free(t);
	db_release(im, &q);
	db_rollback(im);
out:
	pthread_mutex_unlock(&im->lock);
	return st;
}

static wse_status
op_get_policy(struct im *im, const struct wse_plugin_request *r,
    wse_buf *resp)
{
	struct policy p;
	wse_status st;
	size_t i;

	if (request_elem(r) == NULL)
		return wse_err(WSE_ERR_INVALID, "im: no GetInstantPolicy");
	pthread_mutex_lock(&im->lock);
	st = policy_load(im, r->user, &p);
	pthread_mutex_unlock(&im->lock);
	if (st != WSE_OK)
		return st;
	if ((st = wse_buf_printf(resp, "<m:GetInstantPolicyResponse xmlns:m=\""
	    WSE_NS_WSE "\"><m:Accept>%s</m:Accept>", accept_name[p.accept >= 0 &&
	    p.accept < 3 ? p.accept : 0])) != WSE_OK)
		goto out;
	for (i = 0; i < p.n; i++)
		if (p.kind[i] >= 0 && p.kind[i] < 3 &&
		    (st = wse_buf_printf(resp, "<m:%s>%s</m:%s>",
		    kind_name[p.kind[i]], p.v[i], kind_name[p.kind[i]])) !=
		    WSE_OK)
			goto out;
	st = wse_buf_puts(resp, "</m:GetInstantPolicyResponse>");
out:
	policy_clear(&p);
	return st;
}

static wse_status
op_presence(struct im *im, const struct wse_plugin_request *r, wse_buf *resp)
{
	xmlNodePtr req = request_elem(r);
	char *t = NULL, user[WSE_ADDR_MAX + 1], asker[WSE_ADDR_MAX + 1];
	struct policy p;
	wse_user_rec rec;
	unsigned online;
	int ok;

	if (req == NULL || child_text(req, "User", WSE_ADDR_MAX + 1, &t) !=
	    WSE_OK || t == NULL || wse_addr_normalize(t, user, sizeof(user)) !=
	    WSE_OK) {
		free(t);
		return wse_err(WSE_ERR_INVALID, "im: GetPresence needs a User");
	}
	free(t);
	if (wse_addr_normalize(r->user, asker, sizeof(asker)) != WSE_OK)
		return wse_err(WSE_ERR_NOT_AUTHORIZED, "im: bad asker");
	/* The same refusal whatever the reason. */
	if (strcmp(wse_addr_domain(user), im->h->domain) != 0 ||
	    wse_store_user_get(im->h->store, user, &rec, NULL) != WSE_OK) {
		wse_err_clear();
		return wse_err(WSE_ERR_NOT_AUTHORIZED, "im: %s may not see %s",
		    asker, user);
	}
	pthread_mutex_lock(&im->lock);
	if (policy_load(im, user, &p) != WSE_OK) {
		pthread_mutex_unlock(&im->lock);
		return WSE_ERR_TEMPFAIL;
	}
	ok = policy_has(&p, K_PRESENCE, asker) && !policy_has(&p, K_BLOCK,
	    asker);
	policy_clear(&p);
	online = ok ? user_online(im, user_find(im, user, 0), mono_ms()) : 0;
	pthread_mutex_unlock(&im->lock);
	if (!ok)
		return wse_err(WSE_ERR_NOT_AUTHORIZED, "im: %s may not see %s",
		    asker, user);
	return wse_buf_printf(resp, "<m:GetPresenceResponse xmlns:m=\""
	    WSE_NS_WSE "\"><m:User online=\"%s\">%s</m:User>"
	    "</m:GetPresenceResponse>", online ? "true" : "false", user);
}

static wse_status
op_direct(struct im *im, const struct wse_plugin_request *r, wse_buf *resp)
{
	xmlNodePtr req = request_elem(r), mn;
	char from[WSE_ADDR_MAX + 1];
	unsigned sessions = 0;
	wse_msg *m = NULL;
	int stored = 0;
	wse_status st;

	if (req == NULL || wse_xml_only_child(req, WSE_NS_WSE, "Message", &mn) !=
	    WSE_OK)
		return wse_err(WSE_ERR_INVALID, "im: DeliverDirect needs a "
		    "Message");
	if ((st = wse_msg_parse(mn, &m)) != WSE_OK)
		return st;
	/* The token proves its mailbox: that is the only sender it may
	 * speak for. */
	if (wse_addr_normalize(r->user, from, sizeof(from)) != WSE_OK ||
	    strcmp(m->from, from) != 0) {
		st = wse_err(WSE_ERR_NOT_AUTHORIZED, "im: a token of %s cannot "
		    "send as %s", r->user, m->from);
		goto out;
	}
	if (!m->instant || m->nto != 1) {
		st = wse_err(WSE_ERR_INVALID, "im: DeliverDirect carries one "
		    "instant message");
		goto out;
	}
	if (r->original == NULL || r->original_len == 0) {
		st = wse_err(WSE_ERR_INTERNAL, "im: no original");
		goto out;
	}
	st = im->h->deliver_instant(im->h, m, m->to[0],
	    wse_addr_domain(m->from), r->message_id, r->original,
	    r->original_len, &stored, &sessions);
	im->h->log(im->h, "direct %s from %s to %s: %s", r->message_id,
	    m->from, m->to[0], st != WSE_OK ? wse_status_name(st) :
	    stored ? "stored" : "pushed");
	if (st != WSE_OK)
		goto out;
	st = wse_buf_printf(resp, "<m:DeliverDirectResponse xmlns:m=\""
	    WSE_NS_WSE "\"><m:Accepted result=\"%s\" sessions=\"%u\">%s"
	    "</m:Accepted></m:DeliverDirectResponse>", stored ? "stored" :
	    "pushed", stored ? 0 : sessions, m->to[0]);
out:
	wse_msg_free(&m);
	return st;
}

static wse_status
im_call(void *state, const struct wse_plugin_request *r, wse_buf *resp,
    struct wse_plugin_stream *stream)
{
	struct im *im = state;

	(void)stream;
	if (strcmp(r->op, "WaitInstant") == 0)
		return op_wait(im, r, resp);
	if (strcmp(r->op, "SetInstantPolicy") == 0)
		return op_set_policy(im, r, resp);
	if (strcmp(r->op, "GetInstantPolicy") == 0)
		return op_get_policy(im, r, resp);
	if (strcmp(r->op, "GetPresence") == 0)
		return op_presence(im, r, resp);
	if (strcmp(r->op, "DeliverDirect") == 0)
		return op_direct(im, r, resp);
	return wse_err(WSE_ERR_UNSUPPORTED, "im: unknown operation");
}

static void
im_cancelled(void *state, wse_plugin_held *held)
{
	struct im *im = state;
	struct waiter *w;

	pthread_mutex_lock(&im->lock);
	for (w = im->head; w != NULL; w = w->next)
		if (w->held == held)
			break;
	if (w != NULL) {
		waiter_unlink(im, w, -1);	/* that session is gone */
		free(w);
	}
	pthread_mutex_unlock(&im->lock);
	/* Not found: another thread is answering it, and that answer
	 * fails cleanly and drops the reference. */
	if (w != NULL)
		im->h->release(im->h, held);
}

/* ---- the timer: held requests whose Wait has passed ---- */

/*
 * Move the log's WAL into the database, outside the lock: left to the
 * committing thread (every 1000 pages), it ran under the plugin's lock
 * with its fsyncs, and every instant message waited behind it.  Passive:
 * never waits for the writer or readers.  Timer thread only.
 */
static void
checkpoint(struct im *im)
{
	int64_t now = mono_ms();

	if (im->ck == NULL || now - im->last_ck_ms < 1000)
		return;
	im->last_ck_ms = now;
	(void)sqlite3_wal_checkpoint_v2(im->ck, NULL,
	    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
}

static void *
timer_main(void *arg)
{
	struct im *im = arg;
	struct pending *p = NULL;
	size_t np, cap = 0;

	pthread_mutex_lock(&im->lock);
	while (!im->stop) {
		int64_t now = mono_ms();

		np = 0;
		while (im->head != NULL && im->head->deadline_ms <= now &&
		    np < 256) {
			if (np == cap) {
				struct pending *q = realloc(p, (cap + 64) *
				    sizeof(*p));

				if (q == NULL)
					break;
				p = q;
				cap += 64;
			}
			waiter_answer_prep(im, im->head, now, &p[np++]);
		}
		if (np > 0) {
			pthread_mutex_unlock(&im->lock);
			pending_send(im, p, np);
			pthread_mutex_lock(&im->lock);
			continue;
		}
		pthread_mutex_unlock(&im->lock);
		checkpoint(im);
		pthread_mutex_lock(&im->lock);
		if (im->stop)
			break;
		{
			struct timespec ts;
			int64_t left = im->head != NULL ?
			    im->head->deadline_ms - now : 1000;

			if (left > 1000)	/* the next checkpoint */
				left = 1000;
			if (left < 0)
				left = 0;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += left / 1000;
			ts.tv_nsec += (left % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			(void)pthread_cond_timedwait(&im->cond, &im->lock, &ts);
		}
	}
	pthread_mutex_unlock(&im->lock);
	free(p);
	return NULL;
}

/* ---- set-up ---- */

static void
im_deinit(void *state)
{
	struct im *im = state;
	struct waiter *w;
	struct imuser *u;
	size_t k;

	if (im == NULL)
		return;
	if (im->timer_ok) {
		pthread_mutex_lock(&im->lock);
		im->stop = 1;
		pthread_cond_broadcast(&im->cond);
		pthread_mutex_unlock(&im->lock);
		pthread_join(im->timer, NULL);
	}
	/* The server cancelled what it held; anything left is released. */
	while ((w = im->head) != NULL) {
		wse_plugin_held *held = w->held;

		waiter_unlink(im, w, -1);
		free(w);
		im->h->release(im->h, held);
	}
	for (k = 0; k < USER_HASH; k++)
		while ((u = im->users[k]) != NULL) {
			im->users[k] = u->next;
			free(u->sess);
			free(u);
		}
	/* sqlite3_close fails, and keeps the connection, while any
	 * statement is left. */
	for (k = 0; k < im->nstmt; k++)
		sqlite3_finalize(im->stmt[k].q);
	im->nstmt = 0;
	if (im->ck != NULL)
		sqlite3_close(im->ck);
	if (im->db != NULL)
		sqlite3_close(im->db);
	if (im->cond_ok)
		pthread_cond_destroy(&im->cond);
	if (im->lock_ok)
		pthread_mutex_destroy(&im->lock);
	free(im->dir);
	free(im);
}

static wse_status
conf_num(const char *key, const char *v, long long lo, long long hi,
    long long *out)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 || n < lo ||
	    n > hi)
		return wse_err(WSE_ERR_CONFIG, "im: %s=%.32s is not a number "
		    "from %lld to %lld", key, v, lo, hi);
	*out = n;
	return WSE_OK;
}

static wse_status
im_init(const struct wse_plugin_host *h, const char *args, void **state_r)
{
	static const char *const keys[] = { "dir", "retention", "grace",
	    "max_wait", "max_sessions", "max_held" };
	struct im *im;
	char *copy = NULL, *w, *save = NULL, *eq, path[4200];
	struct wse_sqlite_db spec = {
		.who = "im",
		.dirfd = -1,
		.name = "im.db",
		.flags = SQLITE_OPEN_NOMUTEX,
		.busy_ms = 5000,
		.setup = setup,
	};
	long long v = 0;
	wse_status st;
	pthread_condattr_t ca;
	size_t k;

	*state_r = NULL;
	if (h == NULL || h->hold == NULL || h->answer == NULL ||
	    h->deliver_instant == NULL)
		return wse_err(WSE_ERR_CONFIG, "im: incomplete host");
	if ((im = calloc(1, sizeof(*im))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "im: out of memory");
	im->h = h;
	im->retention = DEF_RETENTION;
	im->grace = DEF_GRACE;
	im->max_wait = DEF_MAX_WAIT;
	im->max_sessions = DEF_MAX_SESS;
	im->max_held = DEF_MAX_HELD;
	im->last_expire = INT64_MIN / 2;
	if (pthread_mutex_init(&im->lock, NULL) != 0) {
		st = wse_err(WSE_ERR_INTERNAL, "im: no mutex");
		goto fail;
	}
	im->lock_ok = 1;
	if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&im->cond, &ca) != 0) {
		st = wse_err(WSE_ERR_INTERNAL, "im: no condition variable");
		goto fail;
	}
	pthread_condattr_destroy(&ca);
	im->cond_ok = 1;
	if ((copy = strdup(args != NULL ? args : "")) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "im: out of memory");
		goto fail;
	}
	for (w = strtok_r(copy, " \t", &save); w != NULL;
	    w = strtok_r(NULL, " \t", &save)) {
		if ((eq = strchr(w, '=')) == NULL || eq == w || eq[1] == '\0') {
			st = wse_err(WSE_ERR_CONFIG, "im: \"%.64s\" is not "
			    "KEY=VALUE", w);
			goto fail;
		}
		*eq++ = '\0';
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (strcmp(w, keys[k]) == 0)
				break;
		st = WSE_OK;
		switch (k) {
		case 0:
			if (eq[0] != '/' || strlen(eq) > 4000) {
				st = wse_err(WSE_ERR_CONFIG, "im: dir=%.200s is "
				    "not an absolute path", eq);
				break;
			}
			free(im->dir);
			if ((im->dir = strdup(eq)) == NULL)
				st = wse_err(WSE_ERR_NOMEM, "im: out of memory");
			break;
		case 1:
			if ((st = conf_num(w, eq, 60, 86400 * 365, &v)) ==
			    WSE_OK)
				im->retention = v;
			break;
		case 2:
			if ((st = conf_num(w, eq, 1, 3600, &v)) == WSE_OK)
				im->grace = v;
			break;
		case 3:
			if ((st = conf_num(w, eq, 1, 60, &v)) == WSE_OK)
				im->max_wait = v;
			break;
		case 4:
			if ((st = conf_num(w, eq, 1, 100000, &v)) == WSE_OK)
				im->max_sessions = (size_t)v;
			break;
		case 5:
			if ((st = conf_num(w, eq, 1, 1000000, &v)) == WSE_OK)
				im->max_held = (size_t)v;
			break;
		default:
			st = wse_err(WSE_ERR_CONFIG, "im: unknown argument "
			    "%.64s (dir, retention, grace, max_wait, "
			    "max_sessions, max_held)", w);
			break;
		}
		if (st != WSE_OK)
			goto fail;
	}
	if (im->dir == NULL) {
		st = wse_err(WSE_ERR_CONFIG, "im: dir= is required");
		goto fail;
	}
	spec.dir = im->dir;
	if (mkdir(im->dir, 0700) == -1 && errno != EEXIST) {
		st = wse_err(WSE_ERR_CONFIG, "im: cannot create dir=%s: %s",
		    im->dir, strerror(errno));
		goto fail;
	}
	(void)snprintf(path, sizeof(path), "%s/im.db", im->dir);
	if ((st = wse_sqlite_open(&spec, &im->db)) != WSE_OK ||
	    (st = wse_sqlite_connect("im", path, SQLITE_OPEN_NOMUTEX, 100,
	    &im->ck)) != WSE_OK)
		goto fail;
	if (pthread_create(&im->timer, NULL, timer_main, im) != 0) {
		st = wse_err(WSE_ERR_INTERNAL, "im: cannot start the timer");
		goto fail;
	}
	im->timer_ok = 1;
	free(copy);
	h->log(h, "instant messages in %s (retention %lld s, grace %lld s, "
	    "max_wait %lld s, %zu sessions per user, %zu held in all)",
	    im->dir, (long long)im->retention, (long long)im->grace,
	    (long long)im->max_wait, im->max_sessions, im->max_held);
	*state_r = im;
	return WSE_OK;
fail:
	free(copy);
	im_deinit(im);
	return st;
}

static const struct wse_plugin im_plugin = {
	.abi = WSE_PLUGIN_ABI,
	.name = "im",
	.init = im_init,
	.deinit = im_deinit,
	.message = im_message,
	.ops = im_ops,
	.op_flags = im_op_flags,
	.call = im_call,
	.cancelled = im_cancelled,
};

WSE_PLUGIN_EXPORT const struct wse_plugin *
wse_plugin_entry(void)
{
	return &im_plugin;
}
