/*
 * store-sqlite.c - the SQLite 3 store driver (the embedded default).
 *
 * One writing connection per store object, serialised by a mutex: every
 * public operation that writes takes the mutex, runs one transaction
 * (BEGIN IMMEDIATE ... COMMIT) and releases it before any callback runs.
 * The operations that only read (user look-ups, the replay look-up,
 * mailbox listings) run on a few read-only connections of their own, each
 * with its mutex, one snapshot per statement, so that they never wait for
 * a writer's commit (sq_rlock).  Several processes (or several store
 * objects) may share one database file: WAL mode lets readers run beside
 * the one writer, and the busy timeout makes writers wait for each
 * other; a writer still blocked after it gets WSE_ERR_TEMPFAIL.
 *
 * Durability: journal_mode=WAL with synchronous=FULL, so a commit that
 * returned is on disk (but for the few whose loss is harmless,
 * sq_begin_lazy).  Disk full and I/O errors are temporary failures,
 * the transaction is rolled back and the caller must not acknowledge.
 *
 * SECURITY: every statement is a fixed string prepared once and cached;
 * values only ever reach SQLite as bound parameters.  The database file is
 * created mode 0600 before SQLite opens it (its -wal and -shm files get
 * the same mode from SQLite), symbolic links are refused, and the
 * connection runs in defensive mode with untrusted schema features off.
 */
#include "batch.h"
#include "store-private.h"
#include "sqlitedb.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#define SQ_BUSY_TIMEOUT_MS 5000
#define SQ_BATCH 64		/* rows per listing batch */

/* ---- schema ---- */

/*
 * The migrations, in order: migrations[v] takes a database from version
 * v to v + 1 (PRAGMA user_version), each in one transaction.  Append
 * only; never edit one that has shipped.
 */
static const char *const migrations[] = {
	/* 0 -> 1: the initial schema */
	"CREATE TABLE meta ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  value BLOB NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE users ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  salt BLOB NOT NULL,"
	"  iterations INTEGER NOT NULL,"
	"  sealed_key BLOB NOT NULL,"
	"  created INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE bodies ("
	"  id INTEGER PRIMARY KEY,"
	"  envelope BLOB NOT NULL"
	");"
	"CREATE TABLE messages ("
	"  id INTEGER PRIMARY KEY,"
	"  mailbox TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,"
	"  from_addr TEXT NOT NULL,"
	"  subject TEXT NOT NULL,"
	"  origin_domain TEXT NOT NULL,"
	"  origin_id TEXT NOT NULL,"
	"  received INTEGER NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  unread INTEGER NOT NULL DEFAULT 1,"
	"  flags INTEGER NOT NULL DEFAULT 0,"
	"  body_id INTEGER NOT NULL REFERENCES bodies(id)"
	");"
	"CREATE INDEX messages_by_mailbox"
	"  ON messages(mailbox, received DESC, id DESC);"
	"CREATE INDEX messages_by_body ON messages(body_id);"
	/* A body goes with the last message that shares it (also when the
	 * messages go by ON DELETE CASCADE from users). */
	"CREATE TRIGGER messages_body_gc AFTER DELETE ON messages"
	"  WHEN NOT EXISTS (SELECT 1 FROM messages WHERE body_id = OLD.body_id)"
	"  BEGIN DELETE FROM bodies WHERE id = OLD.body_id; END;"
	"CREATE TABLE deliveries ("
	"  origin_domain TEXT NOT NULL,"
	"  origin_id TEXT NOT NULL,"
	"  received INTEGER NOT NULL,"
	"  PRIMARY KEY (origin_domain, origin_id)"
	") WITHOUT ROWID;"
	"CREATE INDEX deliveries_by_time ON deliveries(received);"
	"CREATE TABLE payloads ("
	"  id INTEGER PRIMARY KEY,"
	"  data BLOB NOT NULL"
	");"
	"CREATE TABLE queue ("
	"  id INTEGER PRIMARY KEY,"
	"  domain TEXT NOT NULL,"
	"  sender TEXT NOT NULL,"
	"  message_id TEXT NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  created INTEGER NOT NULL,"
	"  next_attempt INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL,"
	"  flags INTEGER NOT NULL DEFAULT 0,"
	"  last_error TEXT NOT NULL DEFAULT '',"
	"  lease_until INTEGER NOT NULL DEFAULT 0,"
	"  payload_id INTEGER NOT NULL REFERENCES payloads(id)"
	");"
	"CREATE INDEX queue_by_due ON queue(next_attempt);"
	"CREATE INDEX queue_by_age ON queue(created, id);"
	"CREATE INDEX queue_by_payload ON queue(payload_id);"
	"CREATE TRIGGER queue_payload_gc AFTER DELETE ON queue"
	"  WHEN NOT EXISTS (SELECT 1 FROM queue WHERE payload_id = OLD.payload_id)"
	"  BEGIN DELETE FROM payloads WHERE id = OLD.payload_id; END;"
	"CREATE TABLE queue_rcpts ("
	"  queue_id INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,"
	"  mailbox TEXT NOT NULL,"
	"  PRIMARY KEY (queue_id, mailbox)"
	") WITHOUT ROWID;"
	"CREATE TABLE replay ("
	"  id TEXT PRIMARY KEY NOT NULL,"
	"  expires INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE INDEX replay_by_expiry ON replay(expires);",
	/* 1 -> 2: the signed head of a DeliverBatch kept once for the
	 * messages that came in it (lib/batch.h); a body with a head_id
	 * holds the item alone, its original being the batch original
	 * that head, head_index and the item make. */
	"CREATE TABLE batch_heads ("
	"  id INTEGER PRIMARY KEY,"
	"  head BLOB NOT NULL"
	");"
	"ALTER TABLE bodies ADD COLUMN head_id INTEGER"
	"  REFERENCES batch_heads(id);"
	"ALTER TABLE bodies ADD COLUMN head_index INTEGER NOT NULL DEFAULT 0;"
	"CREATE INDEX bodies_by_head ON bodies(head_id)"
	"  WHERE head_id IS NOT NULL;"
	/* A head goes with the last body that uses it. */
	"CREATE TRIGGER bodies_head_gc AFTER DELETE ON bodies"
	"  WHEN OLD.head_id IS NOT NULL AND NOT EXISTS"
	"  (SELECT 1 FROM bodies WHERE head_id = OLD.head_id)"
	"  BEGIN DELETE FROM batch_heads WHERE id = OLD.head_id; END;",
};

#define SQ_SCHEMA_VERSION \
	((int)(sizeof(migrations) / sizeof(migrations[0])))

/* ---- the statements, each prepared once per connection ---- */

#define MSG_COLS "m.id, m.mailbox, m.from_addr, m.subject, m.origin_domain," \
	" m.origin_id, m.received, m.size, m.unread, m.flags"
#define QUEUE_COLS "q.id, q.domain, q.sender, q.message_id, q.attempts," \
	" q.created, q.next_attempt, q.expires, q.flags, q.last_error"

enum sq_q {
	Q_BEGIN, Q_BEGIN_READ, Q_COMMIT, Q_ROLLBACK,
	Q_SAVEPOINT, Q_RELEASE, Q_ROLLBACK_TO,
	Q_VERSION, Q_META_PUT, Q_META_GET, Q_META_SET,
	Q_SYNC_FULL, Q_SYNC_NORMAL,
	Q_USER_ADD, Q_USER_SET, Q_USER_DEL, Q_USER_GET, Q_USER_LIST,
	Q_USER_EXISTS,
	Q_DEDUP_ADD, Q_REPLAY_PURGE_ONE, Q_REPLAY_ADD, Q_REPLAY_SEEN,
	Q_BODY_ADD, Q_BODY_ADD_ITEM, Q_HEAD_ADD, Q_MSG_ADD, Q_MSG_LIST_FIRST, Q_MSG_LIST_NEXT,
	Q_MSG_COUNT, Q_MSG_FETCH, Q_MSG_DEL, Q_MSG_MARK,
	Q_PAYLOAD_ADD, Q_QUEUE_ADD, Q_RCPT_ADD, Q_QUEUE_LEASE,
	Q_QUEUE_GET, Q_QUEUE_RCPTS, Q_QUEUE_PAGE, Q_QUEUE_DEL,
	Q_QUEUE_DEFER, Q_QUEUE_FLUSH_ALL, Q_QUEUE_FLUSH_ONE,
	Q_EXPIRE_REPLAY, Q_EXPIRE_LEASES, Q_EXPIRE_DEDUP,
	Q__COUNT
};

static const char *const sq_sql[Q__COUNT] = {
	[Q_BEGIN] = "BEGIN IMMEDIATE",
	[Q_BEGIN_READ] = "BEGIN DEFERRED",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	[Q_SAVEPOINT] = "SAVEPOINT submission",
	[Q_RELEASE] = "RELEASE submission",
	[Q_ROLLBACK_TO] = "ROLLBACK TO submission",
	[Q_VERSION] = "PRAGMA user_version",
	[Q_META_PUT] = "INSERT OR IGNORE INTO meta(name, value) VALUES(?1, ?2)",
	[Q_META_GET] = "SELECT value FROM meta WHERE name = ?1",
	[Q_META_SET] = "INSERT OR REPLACE INTO meta(name, value) VALUES(?1, ?2)",
	[Q_SYNC_FULL] = "PRAGMA synchronous = FULL",
	[Q_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
	[Q_USER_ADD] = "INSERT INTO users(name, salt, iterations, sealed_key,"
	    " created) VALUES(?1, ?2, ?3, ?4, ?5)",
	[Q_USER_SET] = "UPDATE users SET salt = ?2, iterations = ?3,"
	    " sealed_key = ?4 WHERE name = ?1",
	[Q_USER_DEL] = "DELETE FROM users WHERE name = ?1",
	[Q_USER_GET] = "SELECT name, salt, iterations, created, sealed_key"
	    " FROM users WHERE name = ?1",
	[Q_USER_LIST] = "SELECT name, salt, iterations, created FROM users"
	    " WHERE name > ?1 ORDER BY name LIMIT ?2",
	[Q_USER_EXISTS] = "SELECT 1 FROM users WHERE name = ?1",
	[Q_DEDUP_ADD] = "INSERT INTO deliveries(origin_domain, origin_id,"
	    " received) VALUES(?1, ?2, ?3)",
	[Q_REPLAY_PURGE_ONE] = "DELETE FROM replay WHERE id = ?1"
	    " AND expires <= ?2",
	[Q_REPLAY_ADD] = "INSERT INTO replay(id, expires) VALUES(?1, ?2)",
	[Q_REPLAY_SEEN] = "SELECT 1 FROM replay WHERE id = ?1 AND expires > ?2",
	[Q_BODY_ADD] = "INSERT INTO bodies(envelope) VALUES(?1)",
	[Q_BODY_ADD_ITEM] = "INSERT INTO bodies(envelope, head_id, head_index)"
	    " VALUES(?1, ?2, ?3)",
	[Q_HEAD_ADD] = "INSERT INTO batch_heads(head) VALUES(?1)",
	[Q_MSG_ADD] = "INSERT INTO messages(mailbox, from_addr, subject,"
	    " origin_domain, origin_id, received, size, unread, flags, body_id)"
	    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?9)",
	[Q_MSG_LIST_FIRST] = "SELECT " MSG_COLS " FROM messages m"
	    " WHERE m.mailbox = ?1 ORDER BY m.received DESC, m.id DESC"
	    " LIMIT ?2 OFFSET ?3",
	[Q_MSG_LIST_NEXT] = "SELECT " MSG_COLS " FROM messages m"
	    " WHERE m.mailbox = ?1 AND (m.received, m.id) < (?2, ?3)"
	    " ORDER BY m.received DESC, m.id DESC LIMIT ?4",
	[Q_MSG_COUNT] = "SELECT count(*), coalesce(sum(unread <> 0), 0)"
	    " FROM messages WHERE mailbox = ?1",
	[Q_MSG_FETCH] = "SELECT " MSG_COLS ", b.envelope, b.head_index, h.head"
	    " FROM messages m JOIN bodies b ON b.id = m.body_id"
	    " LEFT JOIN batch_heads h ON h.id = b.head_id"
	    " WHERE m.id = ?1 AND m.mailbox = ?2",
	[Q_MSG_DEL] = "DELETE FROM messages WHERE id = ?1 AND mailbox = ?2",
	[Q_MSG_MARK] = "UPDATE messages SET unread = ?3"
	    " WHERE id = ?1 AND mailbox = ?2",
	[Q_PAYLOAD_ADD] = "INSERT INTO payloads(data) VALUES(?1)",
	[Q_QUEUE_ADD] = "INSERT INTO queue(domain, sender, message_id,"
	    " attempts, created, next_attempt, expires, flags, last_error,"
	    " lease_until, payload_id)"
	    " VALUES(?1, ?2, ?3, 0, ?4, ?4, ?5, ?6, '', 0, ?7)",
	[Q_RCPT_ADD] = "INSERT OR IGNORE INTO queue_rcpts(queue_id, mailbox)"
	    " VALUES(?1, ?2)",
	[Q_QUEUE_LEASE] = "UPDATE queue SET lease_until = ?2 WHERE id IN"
	    " (SELECT id FROM queue WHERE next_attempt <= ?1"
	    " AND lease_until <= ?1 ORDER BY created, id LIMIT ?3)"
	    " RETURNING id",
	[Q_QUEUE_GET] = "SELECT " QUEUE_COLS ", p.data FROM queue q"
	    " JOIN payloads p ON p.id = q.payload_id WHERE q.id = ?1",
	[Q_QUEUE_RCPTS] = "SELECT mailbox FROM queue_rcpts WHERE queue_id = ?1"
	    " ORDER BY mailbox",
	[Q_QUEUE_PAGE] = "SELECT id FROM queue WHERE (created, id) > (?1, ?2)"
	    " ORDER BY created, id LIMIT ?3",
	[Q_QUEUE_DEL] = "DELETE FROM queue WHERE id = ?1",
	[Q_QUEUE_DEFER] = "UPDATE queue SET attempts = attempts + 1,"
	    " next_attempt = ?2, last_error = ?3, lease_until = 0"
	    " WHERE id = ?1",
	[Q_QUEUE_FLUSH_ALL] = "UPDATE queue SET next_attempt = ?1"
	    " WHERE next_attempt > ?1",
	[Q_QUEUE_FLUSH_ONE] = "UPDATE queue SET next_attempt ="
	    " min(next_attempt, ?1) WHERE id = ?2",
	[Q_EXPIRE_REPLAY] = "DELETE FROM replay WHERE expires <= ?1",
	[Q_EXPIRE_LEASES] = "UPDATE queue SET lease_until = 0"
	    " WHERE lease_until <> 0 AND lease_until <= ?1",
	[Q_EXPIRE_DEDUP] = "DELETE FROM deliveries WHERE received <= ?1",
};

/* A connection with its statements, used by one operation at a time. */
struct sq_conn {
	pthread_mutex_t lock;		/* one operation at a time */
	sqlite3 *db;
	sqlite3_stmt *stmt[Q__COUNT];
	unsigned char used[Q__COUNT];	/* to reset when the op ends */
};

/*
 * Read-only connections for the operations that only read (sq_rlock),
 * opened on first use: in WAL mode they read beside the writer, which
 * may hold its lock through a commit and its fsync meanwhile.
 */
#define SQ_READERS 4

struct sq_store {
	struct wse_store base;		/* must be first */
	struct sq_conn w;		/* the writer: every write, the boot */
	struct sq_conn rd[SQ_READERS];	/* the readers, each its own lock */
	size_t nrd;			/* rd[i < nrd]: lock initialised */
	unsigned rd_next;		/* the next search starts here */
	int version;
	int lazy_commit;		/* sq_begin_lazy may skip the fsync */
	int sync_normal;		/* synchronous is NORMAL right now */
	/* Checkpoints in the background (sq_checkpoint): a connection of
	 * their own, so that they never hold the operations' lock. */
	pthread_mutex_t ck_lock;
	sqlite3 *ck;
	char *path;
	int ck_armed;			/* autocheckpoint raised */
};

/* ---- errors ---- */

static wse_status
sq_status(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_NOMEM:
		return WSE_ERR_NOMEM;
	case SQLITE_TOOBIG:
		return WSE_ERR_TOO_LARGE;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return WSE_ERR_IO;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_PROTOCOL:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_NOLFS:
	case SQLITE_INTERRUPT:
		return WSE_ERR_TEMPFAIL;
	default:
		return WSE_ERR_INTERNAL;
	}
}

static wse_status
sq_cfail(struct sq_conn *c, int rc, const char *what)
{
	return wse_err(sq_status(rc), "store: %s: %s (%s)", what,
	    c->db != NULL ? sqlite3_errmsg(c->db) : "no database",
	    sqlite3_errstr(rc));
}

static wse_status
sq_fail(struct sq_store *q, int rc, const char *what)
{
	return sq_cfail(&q->w, rc, what);
}

static int
is_unique_violation(int rc)
{
	return rc == SQLITE_CONSTRAINT_PRIMARYKEY ||
	    rc == SQLITE_CONSTRAINT_UNIQUE;
}

/* ---- statements and transactions ---- */

struct sq_val {
	char type;		/* 't' text, 'i' integer, 'b' blob */
	const void *p;
	int64_t i;
	size_t n;
};
#define T(s) ((struct sq_val){ 't', (s), 0, 0 })
#define I(x) ((struct sq_val){ 'i', NULL, (int64_t)(x), 0 })
#define B(p, n) ((struct sq_val){ 'b', (p), 0, (n) })
#define VALS(...) (const struct sq_val[]){ __VA_ARGS__ },		\
	sizeof((const struct sq_val[]){ __VA_ARGS__ }) / sizeof(struct sq_val)

/*
 * The statement id of connection c, reset, with vals bound to ?1..?n.
 * It is reset again when the operation ends (sq_cend).
 */
static wse_status
sq_cprep(struct sq_conn *c, enum sq_q id, sqlite3_stmt **st_r,
    const struct sq_val *vals, size_t nvals)
{
	sqlite3_stmt *st;
	size_t i;
	int rc;

	*st_r = NULL;
	if ((st = c->stmt[id]) == NULL) {
		rc = sqlite3_prepare_v3(c->db, sq_sql[id], -1,
		    SQLITE_PREPARE_PERSISTENT, &st, NULL);
		if (rc != SQLITE_OK)
			return sq_cfail(c, rc, "cannot prepare a statement");
		c->stmt[id] = st;
	}
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
	c->used[id] = 1;
	for (i = 0; i < nvals; i++) {
		const struct sq_val *v = &vals[i];
		int col = (int)i + 1;

		switch (v->type) {
		case 't':
			rc = sqlite3_bind_text(st, col, v->p, -1,
			    SQLITE_TRANSIENT);
			break;
		case 'i':
			rc = sqlite3_bind_int64(st, col, v->i);
			break;
		default:
			rc = sqlite3_bind_blob64(st, col, v->p, v->n,
			    SQLITE_STATIC);
			break;
		}
		if (rc != SQLITE_OK)
			return sq_cfail(c, rc, "cannot bind a value");
	}
	*st_r = st;
	return WSE_OK;
}

/* The same on the writer's connection. */
static wse_status
sq_prep(struct sq_store *q, enum sq_q id, sqlite3_stmt **st_r,
    const struct sq_val *vals, size_t nvals)
{
	return sq_cprep(&q->w, id, st_r, vals, nvals);
}

/* Run a statement that returns no rows. */
static wse_status
sq_run(struct sq_store *q, enum sq_q id, const struct sq_val *vals,
    size_t nvals, const char *what)
{
	sqlite3_stmt *st;
	wse_status ws;
	int rc;

	if ((ws = sq_prep(q, id, &st, vals, nvals)) != WSE_OK)
		return ws;
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return sq_fail(q, rc, what);
	(void)sqlite3_reset(st);
	return WSE_OK;
}

static void
sq_lock(struct sq_store *q)
{
	pthread_mutex_lock(&q->w.lock);
}

static void
sq_creset_used(struct sq_conn *c)
{
	size_t i;

	for (i = 0; i < Q__COUNT; i++)
		if (c->used[i]) {
			(void)sqlite3_reset(c->stmt[i]);
			(void)sqlite3_clear_bindings(c->stmt[i]);
			c->used[i] = 0;
		}
}

static void
sq_reset_used(struct sq_store *q)
{
	sq_creset_used(&q->w);
}

/* End an operation on c: roll back what is still open, reset, unlock. */
static void
sq_cend(struct sq_conn *c)
{
	sqlite3_stmt *st;

	sq_creset_used(c);
	if (!sqlite3_get_autocommit(c->db) &&
	    sq_cprep(c, Q_ROLLBACK, &st, NULL, 0) == WSE_OK)
		(void)sqlite3_step(st);
	sq_creset_used(c);
	pthread_mutex_unlock(&c->lock);
}

static void
sq_end(struct sq_store *q)
{
	sq_cend(&q->w);
}

/*
 * Open reader c (its lock held) on the writer's file: read-only, with the
 * writer's threading mode, busy timeout and hardening, symbolic links
 * refused.  Only once sq_open has migrated the schema (readers are used
 * by operations on an open store only).  0 when it cannot be opened.
 */
static int
sq_reader_open(struct sq_store *q, struct sq_conn *c)
{
	size_t mark = wse_err_mark();

	if (wse_sqlite_connect("store", q->path, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_FULLMUTEX, SQ_BUSY_TIMEOUT_MS, &c->db) != WSE_OK) {
		wse_err_truncate(mark);
		return 0;
	}
	return 1;
}

/*
 * A connection for one operation that only reads, locked; sq_cend ends
 * it.  A free reader if there is one, else the one this call drew, in
 * turn.  Each statement runs outside any explicit transaction, so each
 * step from a reset opens a read transaction on the latest commit: in
 * WAL mode a read sees every write committed before it began, by this
 * process or another.  Should a reader not open, the operation runs on
 * the writer's connection as it would with no readers at all.
 */
static struct sq_conn *
sq_rlock(struct sq_store *q)
{
	unsigned start = __atomic_fetch_add(&q->rd_next, 1,
	    __ATOMIC_RELAXED);
	struct sq_conn *c = NULL;
	size_t i;

	for (i = 0; i < SQ_READERS; i++) {
		c = &q->rd[(start + i) % SQ_READERS];
		if (pthread_mutex_trylock(&c->lock) == 0)
			break;
		c = NULL;
	}
	if (c == NULL) {
		c = &q->rd[start % SQ_READERS];
		pthread_mutex_lock(&c->lock);
	}
	if (c->db == NULL && !sq_reader_open(q, c)) {
		pthread_mutex_unlock(&c->lock);
		c = &q->w;
		sq_lock(q);
	}
	return c;
}

/*
 * Every write transaction but those of sq_begin_lazy runs with
 * synchronous=FULL: put it back first if one of those lowered it.
 */
static wse_status
sq_sync(struct sq_store *q, int normal)
{
	wse_status ws;

	if (q->sync_normal == normal)
		return WSE_OK;
	if ((ws = sq_run(q, normal ? Q_SYNC_NORMAL : Q_SYNC_FULL, NULL, 0,
	    "cannot set the synchronous mode")) != WSE_OK)
		return ws;
	q->sync_normal = normal;
	return WSE_OK;
}

static wse_status
sq_begin(struct sq_store *q)
{
	wse_status ws;

	if ((ws = sq_sync(q, 0)) != WSE_OK)
		return ws;
	return sq_run(q, Q_BEGIN, NULL, 0, "cannot begin a transaction");
}

/*
 * Begin a transaction that commits with synchronous=NORMAL, without the
 * fsync, when sq_boot allows it (q->lazy_commit); with FULL otherwise or
 * should the pragma fail.  For writes whose loss in a crash of the
 * machine is harmless: a replay entry stored alone (sq_boot), a queue
 * item's lease (sq_queue_take) and the removal of an item that was
 * delivered or bounced (sq_queue_done, sq_queue_done_many).
 *
 * In WAL mode such a commit survives the death of the process; a crash
 * of the machine may lose the last ones (the log is written in order,
 * and the next FULL commit or checkpoint syncs everything before it,
 * so a loss is always of the latest commits).  A lost lease leaves the
 * item due again, as if its lease had run out.  A lost removal sends
 * the item once more when the server is back: it is due, and its lease,
 * if that survived, runs out (the "lease" setting, at most a day).  The
 * receiver answers the copy as delivered from its de-duplication on
 * (origin domain, origin id) (sq_deliver_one), whose records it keeps
 * WSE_STORE_DEDUP_KEEP, 62 days (Q_EXPIRE_DEDUP, by wse_store_expire):
 * past the longest lifetime a sender may set, so no retry of its can
 * make a duplicate.  A bounce is
 * queued FULL before its item's removal; an item that comes back from a
 * lost removal is refused again and gets a bounce of the same id, which
 * the sender's mailbox already holds (as after a server killed between
 * the two).  Deferrals, bounces, and every other write stay FULL.
 */
static wse_status
sq_begin_lazy(struct sq_store *q)
{
	size_t mark = wse_err_mark();

	if (q->lazy_commit && sq_sync(q, 1) == WSE_OK)
		return sq_run(q, Q_BEGIN, NULL, 0,
		    "cannot begin a transaction");
	wse_err_truncate(mark);
	return sq_begin(q);
}

static wse_status
sq_begin_read(struct sq_store *q)
{
	return sq_run(q, Q_BEGIN_READ, NULL, 0, "cannot begin a transaction");
}

/* Commit; the statements of the transaction are reset first. */
static wse_status
sq_commit(struct sq_store *q)
{
	sq_reset_used(q);
	return sq_run(q, Q_COMMIT, NULL, 0, "cannot commit");
}

/* One member i of a group transaction (sq_group). */
typedef wse_status (*sq_member_fn)(struct sq_store *q, size_t i, void *arg);

/* Failures of one member that leave the others of a group alone. */
static int
member_refusal(wse_status ws)
{
	return ws == WSE_ERR_EXISTS || ws == WSE_ERR_REPLAY ||
	    ws == WSE_ERR_NO_SUCH_USER;
}

/*
 * A group in ONE transaction (the caller holds the lock; sq_end undoes
 * an unfinished one): each member i whose status_r[i] is WSE_OK runs in
 * its own savepoint; a refusal of that member alone (member_refusal)
 * undoes just it and lands in status_r[i]; any other failure is the
 * group's.
 */
static wse_status
sq_group(struct sq_store *q, size_t n, wse_status *status_r, sq_member_fn fn,
    void *arg)
{
	wse_status ws;
	size_t i;

	if ((ws = sq_begin(q)) != WSE_OK)
		return ws;
	for (i = 0; i < n; i++) {
		if (status_r[i] != WSE_OK)
			continue;
		if ((ws = sq_run(q, Q_SAVEPOINT, NULL, 0,
		    "cannot open a savepoint")) != WSE_OK)
			return ws;
		ws = fn(q, i, arg);
		if (member_refusal(ws)) {
			/* This one alone is undone. */
			status_r[i] = ws;
			sq_reset_used(q);
			if ((ws = sq_run(q, Q_ROLLBACK_TO, NULL, 0,
			    "cannot roll back a savepoint")) != WSE_OK)
				return ws;
		} else if (ws != WSE_OK)
			return ws;
		if ((ws = sq_run(q, Q_RELEASE, NULL, 0,
		    "cannot release a savepoint")) != WSE_OK)
			return ws;
	}
	return sq_commit(q);
}

/* ---- column helpers ---- */

static wse_status
col_text(sqlite3_stmt *st, int col, char *dst, size_t size, const char *what)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	int n = sqlite3_column_bytes(st, col);

	if (t == NULL || n <= 0) {
		dst[0] = '\0';
		return WSE_OK;
	}
	if ((size_t)n >= size)
		return wse_err(WSE_ERR_IO, "store: stored %s is %d bytes, "
		    "more than %zu (damaged database?)", what, n, size - 1);
	memcpy(dst, t, (size_t)n);
	dst[n] = '\0';
	return WSE_OK;
}

/* Columns base .. base+9 in MSG_COLS order. */
static wse_status
col_meta(sqlite3_stmt *st, int base, wse_msg_meta *m)
{
	wse_status ws;

	memset(m, 0, sizeof(*m));
	m->id = sqlite3_column_int64(st, base);
	if ((ws = col_text(st, base + 1, m->mailbox, sizeof(m->mailbox),
	    "mailbox")) != WSE_OK ||
	    (ws = col_text(st, base + 2, m->from, sizeof(m->from),
	    "sender")) != WSE_OK ||
	    (ws = col_text(st, base + 3, m->subject, sizeof(m->subject),
	    "subject")) != WSE_OK ||
	    (ws = col_text(st, base + 4, m->origin_domain,
	    sizeof(m->origin_domain), "origin domain")) != WSE_OK ||
	    (ws = col_text(st, base + 5, m->origin_id, sizeof(m->origin_id),
	    "origin id")) != WSE_OK)
		return ws;
	m->received = sqlite3_column_int64(st, base + 6);
	m->size = (uint64_t)sqlite3_column_int64(st, base + 7);
	m->unread = sqlite3_column_int64(st, base + 8) != 0;
	m->flags = (unsigned)sqlite3_column_int64(st, base + 9);
	return WSE_OK;
}

/* name, salt, iterations, created at columns 0..3. */
static wse_status
col_user(sqlite3_stmt *st, wse_user_rec *rec)
{
	const void *salt;
	sqlite3_int64 it;
	wse_status ws;

	memset(rec, 0, sizeof(*rec));
	if ((ws = col_text(st, 0, rec->name, sizeof(rec->name),
	    "user name")) != WSE_OK)
		return ws;
	salt = sqlite3_column_blob(st, 1);
	it = sqlite3_column_int64(st, 2);
	if (salt == NULL || sqlite3_column_bytes(st, 1) != WSE_SALT_LEN ||
	    it <= 0 || it > (sqlite3_int64)UINT32_MAX)
		return wse_err(WSE_ERR_IO, "store: user %s has a damaged "
		    "salt or cost", rec->name);
	memcpy(rec->salt, salt, WSE_SALT_LEN);
	rec->iterations = (uint32_t)it;
	rec->created = sqlite3_column_int64(st, 3);
	return WSE_OK;
}

static int64_t
clamp64(size_t n)
{
	return (uint64_t)n > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)n;
}

/* ---- open, migrate, close ---- */

static void sq_close(wse_store *s);

/* Run constant SQL (pragmas, migrations; never values). */
static wse_status
sq_exec_const(struct sq_store *q, const char *sql, const char *what)
{
	char *msg = NULL;
	wse_status ws;
	int rc;

	if ((rc = sqlite3_exec(q->w.db, sql, NULL, NULL, &msg)) == SQLITE_OK)
		return WSE_OK;
	ws = wse_err(sq_status(rc), "store: %s: %s", what,
	    msg != NULL ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return ws;
}

static wse_status
sq_read_version(struct sq_store *q, int *v_r)
{
	sqlite3_stmt *st;
	wse_status ws;
	int rc;

	if ((ws = sq_prep(q, Q_VERSION, &st, NULL, 0)) != WSE_OK)
		return ws;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW)
		return sq_fail(q, rc, "cannot read the schema version");
	*v_r = sqlite3_column_int(st, 0);
	(void)sqlite3_reset(st);
	return WSE_OK;
}

/* Bring the schema to SQ_SCHEMA_VERSION, one migration per transaction;
 * another process may be migrating at the same time. */
static wse_status
sq_migrate(struct sq_store *q)
{
	char sql[64];
	int v = 0;
	wse_status ws = WSE_ERR_INTERNAL;

	sq_lock(q);
	for (;;) {
		if ((ws = sq_begin(q)) != WSE_OK ||
		    (ws = sq_read_version(q, &v)) != WSE_OK)
			goto out;
		if (v < 0 || v > SQ_SCHEMA_VERSION) {
			ws = wse_err(WSE_ERR_UNSUPPORTED, "store: database "
			    "schema version %d, this program knows up to %d",
			    v, SQ_SCHEMA_VERSION);
			goto out;
		}
		if (v == SQ_SCHEMA_VERSION)
			break;
		if ((ws = sq_exec_const(q, migrations[v],
		    "schema migration failed")) != WSE_OK)
			goto out;
		/* The version is a constant of this program, not a value. */
		if (snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
		    v + 1) >= (int)sizeof(sql)) {
			ws = wse_err(WSE_ERR_INTERNAL, "store: version");
			goto out;
		}
		if ((ws = sq_exec_const(q, sql, "cannot set the schema "
		    "version")) != WSE_OK ||
		    (ws = sq_commit(q)) != WSE_OK)
			goto out;
	}
	if ((ws = sq_commit(q)) != WSE_OK)
		goto out;
	q->version = v;
	ws = WSE_OK;
out:
	sq_end(q);
	return ws;
}

/* journal_mode=WAL, checked: the pragma answers the mode now in force
 * (wse_sqlite_wal retries while another connection opens a new file). */
static wse_status
sq_set_wal(struct sq_store *q, const char *path)
{
	char mode[16];
	int rc;

	if ((rc = wse_sqlite_wal(q->w.db, SQ_BUSY_TIMEOUT_MS, mode,
	    sizeof(mode))) != SQLITE_OK)
		return sq_fail(q, rc, "cannot set WAL mode");
	if (strcmp(mode, "wal") != 0)
		return wse_err(WSE_ERR_IO, "store: %s: journal mode is %s, "
		    "not WAL", path, mode[0] != '\0' ? mode : "?");
	return WSE_OK;
}

/*
 * Replay entries stored with nothing else (the nonce of a request that
 * stores no message: WaitInstant, ListHeaders, an instant message...)
 * are committed with synchronous=NORMAL: in WAL mode such a commit
 * survives the death of the process, and the next FULL commit or
 * checkpoint syncs it, but a crash of the machine may lose the last
 * ones.  So that a lost entry can never let a message through twice,
 * every opener compares the kernel's boot id with the one the database
 * last saw: when the machine restarted in between, the opening time
 * becomes the replay floor (kept in meta, so every process sharing the
 * database uses it), and the verifier refuses any message created
 * before it (replay.h).  Without a boot id (no /proc) every commit
 * stays FULL.
 */
#define SQ_BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"

static int
sq_boot_id(char *out, size_t size)
{
	FILE *f = fopen(SQ_BOOT_ID_PATH, "re");
	size_t n;

	if (f == NULL)
		return 0;
	n = fread(out, 1, size - 1, f);
	(void)fclose(f);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
		n--;
	out[n] = '\0';
	return n >= 16 && strspn(out, "0123456789abcdef-") == n;
}

/* meta[name] as text into out (empty when absent). */
static wse_status
sq_meta_text(struct sq_store *q, const char *name, char *out, size_t size)
{
	sqlite3_stmt *st;
	wse_status ws;
	int rc, n;

	out[0] = '\0';
	if ((ws = sq_prep(q, Q_META_GET, &st, VALS(T(name)))) != WSE_OK)
		return ws;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		n = sqlite3_column_bytes(st, 0);
		if (n > 0 && (size_t)n < size) {
			memcpy(out, sqlite3_column_blob(st, 0), (size_t)n);
			out[n] = '\0';
		}
	} else if (rc != SQLITE_DONE)
		ws = sq_fail(q, rc, "cannot read meta");
	(void)sqlite3_reset(st);
	return ws;
}

static wse_status
sq_boot(struct sq_store *q)
{
	char boot[64], seen[64], floor[32];
	int64_t fl;
	wse_status ws;

	if (!sq_boot_id(boot, sizeof(boot)))
		return WSE_OK;
	sq_lock(q);
	if ((ws = sq_begin(q)) != WSE_OK ||
	    (ws = sq_meta_text(q, "boot_id", seen, sizeof(seen))) != WSE_OK ||
	    (ws = sq_meta_text(q, "replay_floor", floor, sizeof(floor))) !=
	    WSE_OK)
		goto out;
	fl = strtoll(floor, NULL, 10);
	if (seen[0] != '\0' && strcmp(seen, boot) != 0) {
		fl = (int64_t)time(NULL);
		(void)snprintf(floor, sizeof(floor), "%lld", (long long)fl);
		if ((ws = sq_run(q, Q_META_SET, VALS(T("replay_floor"),
		    B(floor, strlen(floor))), "cannot store the replay "
		    "floor")) != WSE_OK)
			goto out;
	}
	if (strcmp(seen, boot) != 0 && (ws = sq_run(q, Q_META_SET,
	    VALS(T("boot_id"), B(boot, strlen(boot))), "cannot store the "
	    "boot id")) != WSE_OK)
		goto out;
	if ((ws = sq_commit(q)) != WSE_OK)
		goto out;
	q->base.replay_floor = fl > 0 ? fl : 0;
	q->lazy_commit = 1;
out:
	sq_end(q);
	return ws;
}

static wse_status
sq_open(const char *path, wse_store **s_r)
{
	struct sq_store *q = NULL;
	wse_status ws = WSE_ERR_INTERNAL;
	int fd, rc;

	*s_r = NULL;
	if (path[0] == '\0' || strcmp(path, ":memory:") == 0)
		return wse_err(WSE_ERR_INVALID,
		    "store: sqlite needs the path of a database file");
	/* Create the file ourselves, private, before SQLite does. */
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd == -1 && errno != EEXIST)
		return wse_err(WSE_ERR_IO, "store: cannot create %s: %s", path,
		    strerror(errno));
	if (fd != -1) {
		if (fchmod(fd, 0600) == -1) {
			ws = wse_err(WSE_ERR_IO, "store: cannot chmod %s: %s",
			    path, strerror(errno));
			close(fd);
			return ws;
		}
		close(fd);
	}
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "store: no memory");
	if ((rc = pthread_mutex_init(&q->w.lock, NULL)) != 0) {
		free(q);
		return wse_err(WSE_ERR_INTERNAL, "store: mutex: %s",
		    strerror(rc));
	}
	if ((rc = pthread_mutex_init(&q->ck_lock, NULL)) != 0) {
		pthread_mutex_destroy(&q->w.lock);
		free(q);
		return wse_err(WSE_ERR_INTERNAL, "store: mutex: %s",
		    strerror(rc));
	}
	q->base.v = &wse_store_driver_sqlite;
	for (; q->nrd < SQ_READERS; q->nrd++)
		if ((rc = pthread_mutex_init(&q->rd[q->nrd].lock, NULL)) !=
		    0) {
			ws = wse_err(WSE_ERR_INTERNAL, "store: mutex: %s",
			    strerror(rc));
			goto out;
		}
	if ((q->path = strdup(path)) == NULL) {
		ws = wse_err(WSE_ERR_NOMEM, "store: no memory");
		goto out;
	}
	if ((ws = wse_sqlite_connect("store", path, SQLITE_OPEN_CREATE |
	    SQLITE_OPEN_FULLMUTEX, SQ_BUSY_TIMEOUT_MS, &q->w.db)) != WSE_OK)
		goto out;
	if ((ws = sq_set_wal(q, path)) != WSE_OK)
		goto out;
	if ((ws = sq_exec_const(q, "PRAGMA synchronous = FULL;"
	    "PRAGMA foreign_keys = ON;", "cannot configure")) != WSE_OK)
		goto out;
	if ((ws = sq_migrate(q)) != WSE_OK || (ws = sq_boot(q)) != WSE_OK)
		goto out;
	*s_r = &q->base;
	q = NULL;
	ws = WSE_OK;
out:
	if (q != NULL)
		sq_close(&q->base);
	return ws;
}

static void
sq_close(wse_store *s)
{
	struct sq_store *q = (struct sq_store *)s;
	size_t i, r;

	/* The readers first: the writer's close, the last, checkpoints. */
	for (r = 0; r < q->nrd; r++) {
		for (i = 0; i < Q__COUNT; i++)
			sqlite3_finalize(q->rd[r].stmt[i]);
		(void)sqlite3_close(q->rd[r].db);
		pthread_mutex_destroy(&q->rd[r].lock);
	}
	for (i = 0; i < Q__COUNT; i++)
		sqlite3_finalize(q->w.stmt[i]);
	(void)sqlite3_close(q->ck);
	(void)sqlite3_close(q->w.db);
	pthread_mutex_destroy(&q->ck_lock);
	pthread_mutex_destroy(&q->w.lock);
	free(q->path);
	free(q);
}

static int
sq_schema_version(wse_store *s)
{
	return ((struct sq_store *)s)->version;
}

static wse_status
sq_seal_check(wse_store *s, const void *candidate, size_t len,
    wse_buf *stored)
{
	struct sq_store *q = (struct sq_store *)s;
	sqlite3_stmt *st;
	wse_status ws;
	int rc;

	sq_lock(q);
	if ((ws = sq_begin(q)) != WSE_OK ||
	    (ws = sq_run(q, Q_META_PUT, VALS(T("seal_check"),
	    B(candidate, len)), "cannot store the seal check")) != WSE_OK ||
	    (ws = sq_prep(q, Q_META_GET, &st, VALS(T("seal_check")))) !=
	    WSE_OK)
		goto out;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		ws = rc == SQLITE_DONE ? wse_err(WSE_ERR_IO,
		    "store: no seal check") :
		    sq_fail(q, rc, "cannot read the seal check");
		goto out;
	}
	if ((ws = wse_buf_put(stored, sqlite3_column_blob(st, 0),
	    (size_t)sqlite3_column_bytes(st, 0))) != WSE_OK)
		goto out;
	ws = sq_commit(q);
out:
	sq_end(q);
	return ws;
}

/* ---- users ---- */

static wse_status
sq_user_add(wse_store *s, const char *name, const uint8_t salt[WSE_SALT_LEN],
    uint32_t iterations, const void *sealed, size_t sealed_len, int64_t now)
{
	struct sq_store *q = (struct sq_store *)s;
	sqlite3_stmt *st;
	wse_status ws;
	int rc;

	sq_lock(q);
	if ((ws = sq_begin(q)) != WSE_OK ||
	    (ws = sq_prep(q, Q_USER_ADD, &st, VALS(T(name),
	    B(salt, WSE_SALT_LEN), I(iterations), B(sealed, sealed_len),
	    I(now)))) != WSE_OK)
		goto out;
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		ws = is_unique_violation(rc) ? wse_err(WSE_ERR_EXISTS,
		    "store: user %s exists", name) :
		    sq_fail(q, rc, "cannot add a user");
		goto out;
	}
	ws = sq_commit(q);
out:
	sq_end(q);
	return ws;
}

static wse_status
sq_user_set_key(wse_store *s, const char *name,
    const uint8_t salt[WSE_SALT_LEN], uint32_t iterations,
    const void *sealed, size_t sealed_len)
{
	struct sq_store *q = (struct sq_store *)s;
	wse_status ws;

	sq_lock(q);
	if ((ws = sq_begin(q)) != WSE_OK ||
	    (ws = sq_run(q, Q_USER_SET, VALS(T(name), B(salt, WSE_SALT_LEN),
	    I(iterations), B(sealed, sealed_len)), "cannot change a key")) !=
	    WSE_OK)
		goto out;
	if (sqlite3_changes(q->w.db) == 0) {
		ws = wse_err(WSE_ERR_NOT_FOUND, "store: no user %s", name);
		goto out;
	}
	ws = sq_commit(q);
out:
	sq_end(q);
	return ws;
}

static wse_status
sq_user_del(wse_store *s, const char *name)
{
	struct sq_store *q = (struct sq_store *)s;
	wse_status ws;

	sq_lock(q);
	if ((ws = sq_begin(q)) != WSE_OK ||
	    (ws = sq_run(q, Q_USER_DEL, VALS(T(name)),
	    "cannot delete a user")) != WSE_OK)
		goto out;
	if (sqlite3_changes(q->w.db) == 0) {
		ws = wse_err(WSE_ERR_NOT_FOUND, "store: no user %s", name);
		goto out;
	}
	ws = sq_commit(q);
out:
	sq_end(q);
	return ws;
}

static wse_status
sq_user_get(wse_store *s, const char *name, wse_user_rec *rec,
    wse_buf *sealed)
{
	struct sq_store *q = (struct sq_store *)s;
	struct sq_conn *c;
	sqlite3_stmt *st;
	wse_user_rec r;
	wse_status ws;
	int rc;

	c = sq_rlock(q);
	if ((ws = sq_cprep(c, Q_USER_GET, &st, VALS(T(name)))) != WSE_OK)
		goto out;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		ws = rc == SQLITE_DONE ? wse_err(WSE_ERR_NOT_FOUND,
		    "store: no user %s", name) :
		    sq_cfail(c, rc, "cannot look a user up");
		goto out;
	}
	if ((ws = col_user(st, &r)) != WSE_OK)
		goto out;
	if (sealed != NULL && (ws = wse_buf_put(sealed,
	    sqlite3_column_blob(st, 4),
	    (size_t)sqlite3_column_bytes(st, 4))) != WSE_OK)
		goto out;
	if (rec != NULL)
		*rec = r;
	ws = WSE_OK;
out:
	sq_cend(c);
	return ws;
}

static wse_status
sq_user_list(wse_store *s, wse_user_fn fn, void *arg)
{
	struct sq_store *q = (struct sq_store *)s;
	struct sq_conn *c;
	char last[WSE_STORE_NAME_MAX] = "";
	wse_user_rec *batch = NULL;
	sqlite3_stmt *st;
	size_t n, i;
	wse_status ws = WSE_ERR_INTERNAL;
	int rc = SQLITE_DONE;

	if ((batch = calloc(SQ_BATCH, sizeof(*batch))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "store: no memory");
	do {
		n = 0;
		c = sq_rlock(q);
		if ((ws = sq_cprep(c, Q_USER_LIST, &st, VALS(T(last),
		    I(SQ_BATCH)))) != WSE_OK) {
			sq_cend(c);
			goto out;
		}
		while (n < SQ_BATCH && (rc = sqlite3_step(st)) == SQLITE_ROW)
			if ((ws = col_user(st, &batch[n++])) != WSE_OK)
				break;
		if (ws == WSE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
			ws = sq_cfail(c, rc, "cannot list users");
		sq_cend(c);
		if (ws != WSE_OK)
			goto out;
		for (i = 0; i < n; i++)
			if ((ws = fn(arg, &batch[i])) != WSE_OK)
				goto out;
		if (n > 0)
			memcpy(last, batch[n - 1].name, sizeof(last));
	} while (n == SQ_BATCH);
	ws = WSE_OK;
out:
	free(batch);
	return ws;
}

/* ---- messages ---- */

/* Insert the replay id (expired entries of it count as absent). */
static wse_status
sq_replay_add(struct sq_store *q, const char *id, int64_t expires,
    int64_t now)
{
	sqlite3_stmt *st;
	wse_status ws;
	int rc;

	if ((ws = sq_run(q, Q_REPLAY_PURGE_ONE, VALS(T(id), I(now)),
	    "cannot purge the replay cache")) != WSE_OK ||
	    (ws = sq_prep(q, Q_REPLAY_ADD, &st, VALS(T(id), I(expires)))) !=
	    WSE_OK)
		return ws;
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		return is_unique_violation(rc) ? wse_err(WSE_ERR_REPLAY,
		    "store: message identifier %s was seen before", id) :
		    sq_fail(q, rc, "cannot insert into the replay cache");
	return WSE_OK;
}

/*
 * One delivery's rows, inside the caller's transaction.  A batch item's
 * head is stored once: *head_id_io names the row of d->head_b64 when an
 * earlier delivery of the group stored it (else 0); a head stored here
 * is returned in *new_head_r, for the caller to reuse once this delivery
 * is kept.
 */
static wse_status
sq_deliver_one(struct sq_store *q, const wse_delivery *d, int64_t now,
    sqlite3_int64 head_id, sqlite3_int64 *new_head_r)
{
	sqlite3_stmt *st;
	sqlite3_int64 body;
	wse_status ws;
	size_t i;
	int rc;

	/* De-duplication first: a retry of a stored delivery is a success
	 * for the caller, whatever else it carries. */
	if ((ws = sq_prep(q, Q_DEDUP_ADD, &st, VALS(T(d->origin_domain),
	    T(d->origin_id), I(now)))) != WSE_OK)
		return ws;
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		return is_unique_violation(rc) ? wse_err(WSE_ERR_EXISTS,
		    "store: message %s from %s was delivered before",
		    d->origin_id, d->origin_domain) :
		    sq_fail(q, rc, "cannot record a delivery");
	if (d->replay_id != NULL && (ws = sq_replay_add(q, d->replay_id,
	    d->replay_expires, now)) != WSE_OK)
		return ws;
	for (i = 0; i < d->n; i++) {
		if ((ws = sq_prep(q, Q_USER_EXISTS, &st,
		    VALS(T(d->mailboxes[i])))) != WSE_OK)
			return ws;
		if ((rc = sqlite3_step(st)) != SQLITE_ROW)
			return rc == SQLITE_DONE ? wse_err(WSE_ERR_NO_SUCH_USER,
			    "store: no mailbox %s", d->mailboxes[i]) :
			    sq_fail(q, rc, "cannot look a user up");
	}
	if (d->head_b64 != NULL && head_id == 0) {
		if ((ws = sq_run(q, Q_HEAD_ADD, VALS(B(d->head_b64,
		    d->head_len)), "cannot store a batch head")) != WSE_OK)
			return ws;
		head_id = sqlite3_last_insert_rowid(q->w.db);
		*new_head_r = head_id;
	}
	if (d->head_b64 != NULL)
		ws = sq_run(q, Q_BODY_ADD_ITEM, VALS(B(d->envelope, d->len),
		    I(head_id), I(d->head_index)), "cannot store a message");
	else
		ws = sq_run(q, Q_BODY_ADD, VALS(B(d->envelope, d->len)),
		    "cannot store a message");
	if (ws != WSE_OK)
		return ws;
	body = sqlite3_last_insert_rowid(q->w.db);
	for (i = 0; i < d->n; i++)
		if ((ws = sq_run(q, Q_MSG_ADD, VALS(T(d->mailboxes[i]),
		    T(d->meta->from), T(d->meta->subject), T(d->origin_domain),
		    T(d->origin_id), I(now), I(d->len), I(d->meta->flags),
		    I(body)), "cannot store a message")) != WSE_OK)
			return ws;
	return WSE_OK;
}

static wse_status
sq_deliver(wse_store *s, const char *origin_domain, const char *origin_id,
    const char *const *mailboxes, size_t n, const wse_msg_meta *meta,
    const void *envelope, size_t len, const char *replay_id,
    int64_t replay_expires, int64_t now)
{
	struct sq_store *q = (struct sq_store *)s;
	sqlite3_int64 head = 0;
	wse_delivery d;
	wse_status ws;

	d.origin_domain = origin_domain;
	d.origin_id = origin_id;
	d.mailboxes = mailboxes;
	d.n = n;
	d.meta = meta;
	d.envelope = envelope;
	d.len = len;
	d.replay_id = replay_id;
	d.replay_expires = replay_expires;
	d.head_b64 = NULL;
	d.head_len = 0;
	d.head_index = 0;
	sq_lock(q);
	if ((ws = sq_begin(q)) == WSE_OK &&
	    (ws = sq_deliver_one(q, &d, now, 0, &head)) == WSE_OK)
		ws = sq_commit(q);
	sq_end(q);
	return ws;
}

struct deliver_group {
	const wse_delivery *d;
	int64_t now;
	const char *head;		/* the last head stored, */
	sqlite3_int64 head_id;		/* in this row (0: none yet) */
};

static wse_status
sq_deliver_member(struct sq_store *q, size_t i, void *arg)
{
	struct deliver_group *g = arg;
	const wse_delivery *d = &g->d[i];
	sqlite3_int64 fresh = 0;
	wse_status ws;

	ws = sq_deliver_one(q, d, g->now, d->head_b64 != NULL &&
	    d->head_b64 == g->head ? g->head_id : 0, &fresh);
	/* Kept only with the delivery that stored it: a refused one's
	 * savepoint takes its head away too. */
	if (ws == WSE_OK && fresh != 0) {
		g->head = d->head_b64;
		g->head_id = fresh;
	}
	return ws;
}

static wse_status
sq_deliver_many(wse_store *s, const wse_delivery *d, size_t n, int64_t now,
    wse_status *status_r)
{
	struct sq_store *q = (struct sq_store *)s;
	struct deliver_group g = { d, now, NULL, 0 };
	wse_status ws;

	sq_lock(q);
	ws = sq_group(q, n, status_r, sq_deliver_member, &g);
	sq_end(q);
	return ws;
}

static wse_status
sq_list(wse_store *s, const char *mailbox, size_t offset, size_t limit,
    wse_msg_fn fn, void *arg)
{
	struct sq_store *q = (struct sq_store *)s;
	struct sq_conn *c;
	wse_msg_meta *batch = NULL;
	sqlite3_stmt *st;
	size_t want, n = 0, i;
	int first = 1, rc = SQLITE_DONE;
	wse_status ws = WSE_ERR_INTERNAL;

	if ((batch = calloc(SQ_BATCH, sizeof(*batch))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "store: no memory");
	while (limit > 0) {
		want = limit < SQ_BATCH ? limit : SQ_BATCH;
		n = 0;
		c = sq_rlock(q);
		if (first)
			ws = sq_cprep(c, Q_MSG_LIST_FIRST, &st, VALS(T(mailbox),
			    I(want), I(clamp64(offset))));
		else
			ws = sq_cprep(c, Q_MSG_LIST_NEXT, &st, VALS(T(mailbox),
			    I(batch[SQ_BATCH - 1].received),
			    I(batch[SQ_BATCH - 1].id), I(want)));
		if (ws != WSE_OK) {
			sq_cend(c);
			goto out;
		}
		while (n < want && (rc = sqlite3_step(st)) == SQLITE_ROW)
			if ((ws = col_meta(st, 0, &batch[n++])) != WSE_OK)
				break;
		if (ws == WSE_OK && n < want && rc != SQLITE_DONE)
			ws = sq_cfail(c, rc, "cannot list messages");
		sq_cend(c);
		if (ws != WSE_OK)
			goto out;
		for (i = 0; i < n; i++)
			if ((ws = fn(arg, &batch[i])) != WSE_OK)
				goto out;
		if (n < SQ_BATCH)
			break;
		limit -= n;
		first = 0;
	}
	ws = WSE_OK;
out:
	free(batch);
	return ws;
}

static wse_status
sq_count(wse_store *s, const char *mailbox, uint64_t *total_r,
    uint64_t *unread_r)
{
	struct sq_store *q = (struct sq_store *)s;
	struct sq_conn *c;
	sqlite3_stmt *st;
	wse_status ws;
	int rc;

	c = sq_rlock(q);
	if ((ws = sq_cprep(c, Q_MSG_COUNT, &st, VALS(T(mailbox)))) != WSE_OK)
		goto out;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		ws = sq_cfail(c, rc, "cannot count messages");
		goto out;
	}
	*total_r = (uint64_t)sqlite3_column_int64(st, 0);
	*unread_r = (uint64_t)sqlite3_column_int64(st, 1);
	ws = WSE_OK;
out:
	sq_cend(c);
	return ws;
}

static wse_status
sq_fetch(wse_store *s, const char *mailbox, int64_t id, wse_msg_meta *meta,
    wse_buf *envelope)
{
	struct sq_store *q = (struct sq_store *)s;
	struct sq_conn *c;
	sqlite3_stmt *st;
	wse_status ws;
	int rc;

	c = sq_rlock(q);
	if ((ws = sq_cprep(c, Q_MSG_FETCH, &st, VALS(I(id), T(mailbox)))) !=
	    WSE_OK)
		goto out;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		ws = rc == SQLITE_DONE ? wse_err(WSE_ERR_NOT_FOUND,
		    "store: no message %lld in %s", (long long)id, mailbox) :
		    sq_cfail(c, rc, "cannot fetch a message");
		goto out;
	}
	if ((ws = col_meta(st, 0, meta)) != WSE_OK)
		goto out;
	if (envelope != NULL && sqlite3_column_type(st, 12) != SQLITE_NULL)
		/* A batch item: its original is the batch original. */
		ws = wse_batch_original(sqlite3_column_blob(st, 12),
		    (size_t)sqlite3_column_bytes(st, 12),
		    (size_t)sqlite3_column_int64(st, 11),
		    sqlite3_column_blob(st, 10),
		    (size_t)sqlite3_column_bytes(st, 10), envelope);
	else if (envelope != NULL)
		ws = wse_buf_put(envelope, sqlite3_column_blob(st, 10),
		    (size_t)sqlite3_column_bytes(st, 10));
	if (ws != WSE_OK)
		goto out;
	ws = WSE_OK;
out:
	sq_cend(c);
	return ws;
}

/* How a transaction commits: fsynced, or as sq_begin_lazy allows. */
enum sq_durability { SQ_FULL, SQ_LAZY };

/* One UPDATE/DELETE of exactly one addressed row, in a transaction. */
static wse_status
sq_change_one(struct sq_store *q, enum sq_durability dur, enum sq_q id,
    const struct sq_val *vals, size_t nvals, const char *what,
    const char *thing, int64_t num)
{
	wse_status ws;

	sq_lock(q);
	if ((ws = dur == SQ_LAZY ? sq_begin_lazy(q) : sq_begin(q)) !=
	    WSE_OK ||
	    (ws = sq_run(q, id, vals, nvals, what)) != WSE_OK)
		goto out;
	if (sqlite3_changes(q->w.db) == 0) {
		ws = wse_err(WSE_ERR_NOT_FOUND, "store: no %s %lld", thing,
		    (long long)num);
		goto out;
	}
	ws = sq_commit(q);
out:
	sq_end(q);
	return ws;
}

static wse_status
sq_del(wse_store *s, const char *mailbox, int64_t id)
{
	return sq_change_one((struct sq_store *)s, SQ_FULL, Q_MSG_DEL,
	    VALS(I(id), T(mailbox)), "cannot delete a message", "message", id);
}

static wse_status
sq_mark_read(wse_store *s, const char *mailbox, int64_t id, int read)
{
	return sq_change_one((struct sq_store *)s, SQ_FULL, Q_MSG_MARK,
	    VALS(I(id), T(mailbox), I(read ? 0 : 1)),
	    "cannot mark a message", "message", id);
}

/* ---- the delivery queue ---- */

/* One submission's rows, inside the caller's savepoint. */
static wse_status
sq_enqueue_one(struct sq_store *q, const wse_submission *sub, int64_t now,
    int64_t lifetime)
{
	sqlite3_int64 payload, item;
	int64_t expires;
	wse_status ws;
	size_t d, r;

	expires = now > INT64_MAX - lifetime ? INT64_MAX : now + lifetime;
	if ((ws = sq_run(q, Q_PAYLOAD_ADD, VALS(B(sub->payload, sub->len)),
	    "cannot queue a payload")) != WSE_OK)
		return ws;
	payload = sqlite3_last_insert_rowid(q->w.db);
	for (d = 0; d < sub->ndomains; d++) {
		if ((ws = sq_run(q, Q_QUEUE_ADD, VALS(T(sub->domains[d]),
		    T(sub->sender), T(sub->message_id), I(now), I(expires),
		    I(sub->flags), I(payload)), "cannot queue a message")) !=
		    WSE_OK)
			return ws;
		item = sqlite3_last_insert_rowid(q->w.db);
		for (r = 0; r < sub->nrcpts[d]; r++)
			if ((ws = sq_run(q, Q_RCPT_ADD, VALS(I(item),
			    T(sub->rcpts[d][r])), "cannot queue a recipient"))
			    != WSE_OK)
				return ws;
	}
	return WSE_OK;
}

struct enqueue_group {
	const wse_submission *subs;
	int64_t now, lifetime;
};

/* One submission: its replay entry (WSE_ERR_REPLAY: seen before), then
 * its rows. */
static wse_status
sq_enqueue_member(struct sq_store *q, size_t i, void *arg)
{
	const struct enqueue_group *g = arg;
	const wse_submission *sub = &g->subs[i];
	wse_status ws;

	if (sub->replay_id != NULL && (ws = sq_replay_add(q, sub->replay_id,
	    sub->replay_expires, g->now)) != WSE_OK)
		return ws;
	return sq_enqueue_one(q, sub, g->now, g->lifetime);
}

static wse_status
sq_enqueue(wse_store *s, const wse_submission *subs, size_t n, int64_t now,
    int64_t lifetime, wse_status *status_r)
{
	struct sq_store *q = (struct sq_store *)s;
	struct enqueue_group g = { subs, now, lifetime };
	wse_status ws;

	sq_lock(q);
	ws = sq_group(q, n, status_r, sq_enqueue_member, &g);
	sq_end(q);
	return ws;
}

/* A queue item loaded into memory, to be handed to a callback. */
struct sq_item {
	wse_queue_item item;
	char (*rcpt)[WSE_STORE_NAME_MAX];
	const char **rptr;
	size_t nrcpts;
	void *payload;
	size_t len;
};

static void
sq_items_free(struct sq_item *items, size_t n)
{
	size_t i;

	if (items == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(items[i].rcpt);
		free(items[i].rptr);
		free(items[i].payload);
	}
	free(items);
}

/* Load item id with its recipients and payload; lock held. */
static wse_status
sq_item_load(struct sq_store *q, int64_t id, struct sq_item *it)
{
	wse_queue_item *qi = &it->item;
	sqlite3_stmt *st;
	const void *p;
	size_t cap = 0, k;
	wse_status ws;
	int rc;

	memset(it, 0, sizeof(*it));
	if ((ws = sq_prep(q, Q_QUEUE_GET, &st, VALS(I(id)))) != WSE_OK)
		return ws;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW)
		return rc == SQLITE_DONE ? wse_err(WSE_ERR_NOT_FOUND,
		    "store: no queue item %lld", (long long)id) :
		    sq_fail(q, rc, "cannot read the queue");
	qi->id = sqlite3_column_int64(st, 0);
	if ((ws = col_text(st, 1, qi->domain, sizeof(qi->domain),
	    "domain")) != WSE_OK ||
	    (ws = col_text(st, 2, qi->sender, sizeof(qi->sender),
	    "sender")) != WSE_OK ||
	    (ws = col_text(st, 3, qi->message_id, sizeof(qi->message_id),
	    "message id")) != WSE_OK ||
	    (ws = col_text(st, 9, qi->last_error, sizeof(qi->last_error),
	    "error")) != WSE_OK)
		return ws;
	qi->attempts = sqlite3_column_int(st, 4);
	qi->created = sqlite3_column_int64(st, 5);
	qi->next_attempt = sqlite3_column_int64(st, 6);
	qi->expires = sqlite3_column_int64(st, 7);
	qi->flags = (unsigned)sqlite3_column_int64(st, 8);
	it->len = (size_t)sqlite3_column_bytes(st, 10);
	if ((it->payload = malloc(it->len ? it->len : 1)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "store: no memory");
	if (it->len > 0) {
		if ((p = sqlite3_column_blob(st, 10)) == NULL)
			return wse_err(WSE_ERR_NOMEM, "store: no memory");
		memcpy(it->payload, p, it->len);
	}
	if ((ws = sq_prep(q, Q_QUEUE_RCPTS, &st, VALS(I(id)))) != WSE_OK)
		return ws;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (it->nrcpts == cap) {
			char (*nr)[WSE_STORE_NAME_MAX];

			cap = cap ? cap * 2 : 4;
			if ((nr = realloc(it->rcpt, cap * sizeof(*nr))) ==
			    NULL)
				return wse_err(WSE_ERR_NOMEM,
				    "store: no memory");
			it->rcpt = nr;
		}
		if ((ws = col_text(st, 0, it->rcpt[it->nrcpts],
		    WSE_STORE_NAME_MAX, "recipient")) != WSE_OK)
			return ws;
		it->nrcpts++;
	}
	if (rc != SQLITE_DONE)
		return sq_fail(q, rc, "cannot read queue recipients");
	if ((it->rptr = calloc(it->nrcpts ? it->nrcpts : 1,
	    sizeof(*it->rptr))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "store: no memory");
	for (k = 0; k < it->nrcpts; k++)
		it->rptr[k] = it->rcpt[k];
	return WSE_OK;
}

static int
item_cmp(const void *a, const void *b)
{
	const wse_queue_item *x = &((const struct sq_item *)a)->item;
	const wse_queue_item *y = &((const struct sq_item *)b)->item;

	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static wse_status
sq_items_call(struct sq_item *items, size_t n, wse_queue_fn fn, void *arg)
{
	wse_status ws;
	size_t i;

	for (i = 0; i < n; i++)
		if ((ws = fn(arg, &items[i].item, items[i].rptr,
		    items[i].nrcpts, items[i].payload, items[i].len)) !=
		    WSE_OK)
			return ws;
	return WSE_OK;
}

static wse_status
sq_queue_take(wse_store *s, int64_t now, int64_t lease, size_t limit,
    wse_queue_fn fn, void *arg)
{
	struct sq_store *q = (struct sq_store *)s;
	struct sq_item *items = NULL;
	int64_t *ids = NULL, until;
	sqlite3_stmt *st;
	size_t n = 0, cap = 0, loaded = 0, i;
	wse_status ws;
	int rc;

	until = now > INT64_MAX - lease ? INT64_MAX : now + lease;
	sq_lock(q);
	/* The leases commit without the fsync (sq_begin_lazy). */
	if ((ws = sq_begin_lazy(q)) != WSE_OK ||
	    (ws = sq_prep(q, Q_QUEUE_LEASE, &st, VALS(I(now), I(until),
	    I(clamp64(limit))))) != WSE_OK)
		goto out_locked;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			int64_t *ni;

			cap = cap ? cap * 2 : 16;
			if ((ni = realloc(ids, cap * sizeof(*ni))) == NULL) {
				ws = wse_err(WSE_ERR_NOMEM, "store: no memory");
				goto out_locked;
			}
			ids = ni;
		}
		ids[n++] = sqlite3_column_int64(st, 0);
	}
	if (rc != SQLITE_DONE) {
		ws = sq_fail(q, rc, "cannot lease queue items");
		goto out_locked;
	}
	if (n > 0 && (items = calloc(n, sizeof(*items))) == NULL) {
		ws = wse_err(WSE_ERR_NOMEM, "store: no memory");
		goto out_locked;
	}
	for (i = 0; i < n; i++) {
		ws = sq_item_load(q, ids[i], &items[i]);
		loaded = i + 1;
		if (ws != WSE_OK)
			goto out_locked;
	}
	ws = sq_commit(q);
out_locked:
	sq_end(q);
	/* The leases are committed: hand the items over, no lock held. */
	if (ws == WSE_OK) {
		if (n > 1)
			qsort(items, n, sizeof(*items), item_cmp);
		ws = sq_items_call(items, n, fn, arg);
	}
	sq_items_free(items, loaded);
	free(ids);
	return ws;
}

/* The removal of a delivered or bounced item: no fsync (sq_begin_lazy). */
static wse_status
sq_queue_done(wse_store *s, int64_t id)
{
	return sq_change_one((struct sq_store *)s, SQ_LAZY, Q_QUEUE_DEL,
	    VALS(I(id)), "cannot remove a queue item", "queue item", id);
}

static wse_status
sq_queue_done_many(wse_store *s, const int64_t *ids, size_t n)
{
	struct sq_store *q = (struct sq_store *)s;
	wse_status ws;
	size_t i;

	sq_lock(q);
	if ((ws = sq_begin_lazy(q)) != WSE_OK)	/* no fsync: sq_begin_lazy */
		goto out;
	for (i = 0; i < n; i++)
		if ((ws = sq_run(q, Q_QUEUE_DEL, VALS(I(ids[i])),
		    "cannot remove a queue item")) != WSE_OK)
			goto out;
	ws = sq_commit(q);
out:
	sq_end(q);
	return ws;
}

static wse_status
sq_queue_defer(wse_store *s, int64_t id, int64_t next_attempt,
    const char *error)
{
	return sq_change_one((struct sq_store *)s, SQ_FULL, Q_QUEUE_DEFER,
	    VALS(I(id), I(next_attempt), T(error)),
	    "cannot defer a queue item", "queue item", id);
}

static wse_status
sq_queue_list(wse_store *s, wse_queue_fn fn, void *arg)
{
	struct sq_store *q = (struct sq_store *)s;
	struct sq_item *items = NULL;
	int64_t ids[SQ_BATCH], last_created = INT64_MIN, last_id = INT64_MIN;
	sqlite3_stmt *st;
	size_t n, loaded, i;
	wse_status ws = WSE_OK;
	int rc = SQLITE_DONE;

	do {
		n = loaded = 0;
		sq_lock(q);
		if ((ws = sq_begin_read(q)) != WSE_OK ||
		    (ws = sq_prep(q, Q_QUEUE_PAGE, &st, VALS(I(last_created),
		    I(last_id), I(SQ_BATCH)))) != WSE_OK)
			goto batch_end;
		while (n < SQ_BATCH && (rc = sqlite3_step(st)) == SQLITE_ROW)
			ids[n++] = sqlite3_column_int64(st, 0);
		if (n < SQ_BATCH && rc != SQLITE_DONE) {
			ws = sq_fail(q, rc, "cannot list the queue");
			goto batch_end;
		}
		if (n > 0 && (items = calloc(n, sizeof(*items))) == NULL) {
			ws = wse_err(WSE_ERR_NOMEM, "store: no memory");
			goto batch_end;
		}
		for (i = 0; i < n; i++) {
			ws = sq_item_load(q, ids[i], &items[i]);
			loaded = i + 1;
			if (ws != WSE_OK)
				goto batch_end;
		}
		ws = sq_commit(q);
batch_end:
		sq_end(q);
		if (ws == WSE_OK)
			ws = sq_items_call(items, n, fn, arg);
		if (ws == WSE_OK && n > 0) {
			last_created = items[n - 1].item.created;
			last_id = items[n - 1].item.id;
		}
		sq_items_free(items, loaded);
		items = NULL;
	} while (ws == WSE_OK && n == SQ_BATCH);
	return ws;
}

static wse_status
sq_queue_flush(wse_store *s, int64_t id, int64_t now)
{
	struct sq_store *q = (struct sq_store *)s;
	wse_status ws;

	if (id > 0)
		return sq_change_one(q, SQ_FULL, Q_QUEUE_FLUSH_ONE,
		    VALS(I(now), I(id)), "cannot flush a queue item",
		    "queue item", id);
	sq_lock(q);
	if ((ws = sq_begin(q)) != WSE_OK ||
	    (ws = sq_run(q, Q_QUEUE_FLUSH_ALL, VALS(I(now)),
	    "cannot flush the queue")) != WSE_OK)
		goto out;
	ws = sq_commit(q);
out:
	sq_end(q);
	return ws;
}

static wse_status
sq_queue_delete(wse_store *s, int64_t id)
{
	return sq_change_one((struct sq_store *)s, SQ_FULL, Q_QUEUE_DEL,
	    VALS(I(id)), "cannot delete a queue item", "queue item", id);
}

/* ---- replay cache, expiry ---- */

static wse_status
sq_replay_seen(wse_store *s, const char *id, int64_t now)
{
	struct sq_store *q = (struct sq_store *)s;
	struct sq_conn *c;
	sqlite3_stmt *st;
	wse_status ws;
	int rc;

	c = sq_rlock(q);
	if ((ws = sq_cprep(c, Q_REPLAY_SEEN, &st, VALS(T(id), I(now)))) !=
	    WSE_OK)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ws = wse_err(WSE_ERR_REPLAY,
		    "store: message identifier %s was seen before", id);
	else if (rc != SQLITE_DONE)
		ws = sq_cfail(c, rc, "cannot read the replay cache");
out:
	sq_cend(c);
	return ws;
}

static wse_status
sq_replay_insert(wse_store *s, const char *id, int64_t expires, int64_t now)
{
	struct sq_store *q = (struct sq_store *)s;
	wse_status ws;

	sq_lock(q);
	/* Without the fsync when sq_boot allows it (sq_begin_lazy). */
	if ((ws = sq_begin_lazy(q)) != WSE_OK ||
	    (ws = sq_replay_add(q, id, expires, now)) != WSE_OK)
		goto out;
	ws = sq_commit(q);
out:
	sq_end(q);
	return ws;
}

/*
 * A passive checkpoint from a connection of its own.  Left to SQLite, the
 * commit that crosses wal_autocheckpoint (1000 pages) copies the WAL into
 * the database and fsyncs both while it holds the operations' lock, and
 * every request behind it waits (the slowest 1% of instant messages were
 * mostly these).  A caller that runs this regularly raises that
 * threshold to a safety net; a passive checkpoint never waits for
 * readers or the writer, and copies what it can.
 */
#define SQ_AUTOCHECKPOINT_NET 10000	/* pages, when checkpointing here */

static wse_status
sq_checkpoint(wse_store *s)
{
	struct sq_store *q = (struct sq_store *)s;
	wse_status ws = WSE_OK;
	char sql[64];
	int rc;

	pthread_mutex_lock(&q->ck_lock);
	if (q->ck == NULL) {
		rc = sqlite3_open_v2(q->path, &q->ck, SQLITE_OPEN_READWRITE |
		    SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
		if (rc != SQLITE_OK) {
			ws = wse_err(WSE_ERR_IO, "store: cannot open %s for "
			    "checkpoints: %s", q->path, q->ck != NULL ?
			    sqlite3_errmsg(q->ck) : sqlite3_errstr(rc));
			(void)sqlite3_close(q->ck);
			q->ck = NULL;
			goto out;
		}
		(void)sqlite3_busy_timeout(q->ck, 100);
		wse_sqlite_harden(q->ck);
		if (sqlite3_exec(q->ck, "PRAGMA synchronous = FULL;", NULL,
		    NULL, NULL) != SQLITE_OK) {
			ws = wse_err(WSE_ERR_IO, "store: checkpoint "
			    "connection: %s", sqlite3_errmsg(q->ck));
			(void)sqlite3_close(q->ck);	/* set up again next time */
			q->ck = NULL;
			goto out;
		}
	}
	if (!q->ck_armed) {
		(void)snprintf(sql, sizeof(sql), "PRAGMA wal_autocheckpoint = "
		    "%d;", SQ_AUTOCHECKPOINT_NET);
		sq_lock(q);
		ws = sq_exec_const(q, sql, "cannot set wal_autocheckpoint");
		sq_end(q);
		if (ws != WSE_OK)
			goto out;
		q->ck_armed = 1;
	}
	rc = sqlite3_wal_checkpoint_v2(q->ck, NULL, SQLITE_CHECKPOINT_PASSIVE,
	    NULL, NULL);
	if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY &&
	    (rc & 0xff) != SQLITE_LOCKED)
		ws = wse_err(WSE_ERR_IO, "store: checkpoint: %s",
		    sqlite3_errmsg(q->ck));
out:
	pthread_mutex_unlock(&q->ck_lock);
	return ws;
}

static wse_status
sq_expire(wse_store *s, int64_t now)
{
	struct sq_store *q = (struct sq_store *)s;
	int64_t dedup = now < INT64_MIN + WSE_STORE_DEDUP_KEEP ? INT64_MIN :
	    now - WSE_STORE_DEDUP_KEEP;
	wse_status ws;

	sq_lock(q);
	if ((ws = sq_begin(q)) != WSE_OK ||
	    (ws = sq_run(q, Q_EXPIRE_REPLAY, VALS(I(now)),
	    "cannot expire the replay cache")) != WSE_OK ||
	    (ws = sq_run(q, Q_EXPIRE_LEASES, VALS(I(now)),
	    "cannot expire leases")) != WSE_OK ||
	    (ws = sq_run(q, Q_EXPIRE_DEDUP, VALS(I(dedup)),
	    "cannot expire delivery records")) != WSE_OK)
		goto out;
	ws = sq_commit(q);
out:
	sq_end(q);
	return ws;
}

const struct wse_store_driver wse_store_driver_sqlite = {
	.scheme = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.schema_version = sq_schema_version,
	.seal_check = sq_seal_check,
	.user_add = sq_user_add,
	.user_set_key = sq_user_set_key,
	.user_del = sq_user_del,
	.user_get = sq_user_get,
	.user_list = sq_user_list,
	.deliver = sq_deliver,
	.deliver_many = sq_deliver_many,
	.list = sq_list,
	.count = sq_count,
	.fetch = sq_fetch,
	.del = sq_del,
	.mark_read = sq_mark_read,
	.enqueue = sq_enqueue,
	.queue_take = sq_queue_take,
	.queue_done = sq_queue_done,
	.queue_done_many = sq_queue_done_many,
	.queue_defer = sq_queue_defer,
	.queue_list = sq_queue_list,
	.queue_flush = sq_queue_flush,
	.queue_delete = sq_queue_delete,
	.replay_seen = sq_replay_seen,
	.replay_insert = sq_replay_insert,
	.expire = sq_expire,
	.checkpoint = sq_checkpoint,
};
