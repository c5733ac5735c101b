/*
 * test_store.c - the store conformance suite.
 *
 * Written against store.h only, so that every driver runs the very same
 * tests: the store under test is named by store_uri() ("sqlite:DIR/
 * store.db" in a fresh directory per test, or $WSE_STORE_URI).  Each test
 * starts by emptying the store through the public API (store_wipe), so a
 * shared server database works too.  A few checks look at the SQLite file
 * itself (the key never in clear on disk, the schema version, a newer
 * schema refused, disk full) and run only for "sqlite:" URIs.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "buf.h"
#include "crypto.h"
#include "replay.h"
#include "batch.h"
#include "store.h"

static const uint8_t seal_key[WSE_SEAL_KEY_LEN] = {
	0x5e, 0xa1, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05,
	0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
	0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
	0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x5e,
};

/* A derived key with a pattern that is easy to look for in a file. */
static void
make_key(uint8_t key[WSE_DERIVED_KEY_LEN], uint8_t seed)
{
	size_t i;

	for (i = 0; i < WSE_DERIVED_KEY_LEN; i++)
		key[i] = (uint8_t)(0xa0 ^ (seed * 31 + i * 7));
}

static void
make_salt(uint8_t salt[WSE_SALT_LEN], uint8_t seed)
{
	size_t i;

	for (i = 0; i < WSE_SALT_LEN; i++)
		salt[i] = (uint8_t)(0x3c ^ (seed * 17 + i * 5));
}

/* ---- the store under test ---- */

/* "sqlite:DIR/store.db", or $WSE_STORE_URI when set (another driver). */
static const char *
store_uri(const char *dir)
{
	static _Thread_local char uri[4096];
	const char *env = getenv("WSE_STORE_URI");

	if (env != NULL && *env != '\0')
		return env;
	if (snprintf(uri, sizeof(uri), "sqlite:%s/store.db", dir) >=
	    (int)sizeof(uri))
		return NULL;
	return uri;
}

/* The database file when the store under test is SQLite, else NULL. */
static const char *
sqlite_path(const char *dir)
{
	const char *uri = store_uri(dir);

	return strncmp(uri, "sqlite:", 7) == 0 ? uri + 7 : NULL;
}

struct fix {
	char *dir;
	wse_store *s;
};

static wse_status
collect_user_name(void *arg, const wse_user_rec *rec)
{
	wse_buf *b = arg;

	return wse_buf_printf(b, "%s\n", rec->name);
}

static wse_status
collect_queue_id(void *arg, const wse_queue_item *item,
    const char *const *rcpts, size_t nrcpts, const void *payload, size_t len)
{
	wse_buf *b = arg;

	(void)rcpts; (void)nrcpts; (void)payload; (void)len;
	return wse_buf_put(b, &item->id, sizeof(item->id));
}

/* Empty the store through the public API (for a shared database). */
static void
store_wipe(wse_store *s)
{
	wse_buf *b = wse_buf_new(1 << 24);
	const char *p, *nl;
	size_t i;

	assert_non_null(b);
	assert_wse_ok(wse_store_user_list(s, collect_user_name, b));
	for (p = wse_buf_str(b); (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
		char name[WSE_STORE_NAME_MAX];

		snprintf(name, sizeof(name), "%.*s", (int)(nl - p), p);
		assert_wse_ok(wse_store_user_del(s, name));
	}
	wse_buf_reset(b);
	assert_wse_ok(wse_store_queue_list(s, collect_queue_id, b));
	for (i = 0; i < wse_buf_len(b) / sizeof(int64_t); i++) {
		int64_t id;

		memcpy(&id, wse_buf_data(b) + i * sizeof(id), sizeof(id));
		assert_wse_ok(wse_store_queue_delete(s, id));
	}
	/* Far in the future: every replay entry and de-dup record expires. */
	assert_wse_ok(wse_store_expire(s, INT64_MAX));
	wse_buf_free(&b);
}

static int
setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	if (f == NULL || (f->dir = testutil_tmpdir()) == NULL)
		return -1;
	if (wse_store_open(store_uri(f->dir), seal_key, &f->s) != WSE_OK) {
		char eb[2048];

		print_error("cannot open %s: %s\n", store_uri(f->dir),
		    wse_err_format(eb, sizeof(eb)));
		return -1;
	}
	store_wipe(f->s);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	wse_store_close(&f->s);
	testutil_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static void
add_user(wse_store *s, const char *name, uint8_t seed)
{
	uint8_t salt[WSE_SALT_LEN], key[WSE_DERIVED_KEY_LEN];

	make_salt(salt, seed);
	make_key(key, seed);
	assert_wse_ok(wse_store_user_add(s, name, salt, 600000, key, 1000));
}

/* Deliver a small message from b.test with origin id oid. */
static wse_status
deliver(wse_store *s, const char *oid, const char *const *boxes, size_t n,
    const char *replay_id, int64_t now)
{
	wse_msg_meta m;
	char env[512];
	int len;

	memset(&m, 0, sizeof(m));
	snprintf(m.from, sizeof(m.from), "carol@b.test");
	snprintf(m.subject, sizeof(m.subject), "subject of %s", oid);
	len = snprintf(env, sizeof(env), "<Envelope id=\"%s\"/>", oid);
	return wse_store_deliver(s, "b.test", oid, boxes, n, &m, env,
	    (size_t)len, replay_id, now + 300, now);
}

static uint64_t
count_total(wse_store *s, const char *box)
{
	uint64_t t = 0, u = 0;

	assert_wse_ok(wse_store_count(s, box, &t, &u));
	return t;
}

/* An integer from a SELECT on the SQLite file (driver-specific checks). */
static long long
raw_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void
raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* 1 when the file at path (missing: 0) contains needle. */
static int
file_contains(const char *path, const void *needle, size_t n)
{
	wse_buf *b = NULL;
	const uint8_t *d;
	size_t i, len;
	int found = 0;

	if (access(path, F_OK) != 0)
		return 0;
	assert_wse_ok(wse_buf_read_file(path, 1 << 28, &b));
	d = wse_buf_data(b);
	len = wse_buf_len(b);
	for (i = 0; i + n <= len && !found; i++)
		found = memcmp(d + i, needle, n) == 0;
	wse_buf_free(&b);
	return found;
}

/* ---- open, schema ---- */

static void
test_open_and_schema(void **state)
{
	struct fix *f = *state;
	const char *path = sqlite_path(f->dir);
	wse_store *s2 = NULL;
	int v;

	v = wse_store_schema_version(f->s);
	assert_true(v >= 1);
	assert_int_equal(wse_store_schema_version(NULL), -1);
	/* Reopening keeps the version. */
	wse_store_close(&f->s);
	assert_null(f->s);
	wse_store_close(&f->s);
	assert_wse_ok(wse_store_open(store_uri(f->dir), seal_key, &f->s));
	assert_int_equal(wse_store_schema_version(f->s), v);
	/* Bad URIs. */
	assert_wse_status(wse_store_open("nosuch:/x", seal_key, &s2),
	    WSE_ERR_UNSUPPORTED);
	assert_null(s2);
	assert_wse_status(wse_store_open("sqlite:", seal_key, &s2),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_store_open("no-scheme", seal_key, &s2),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_store_open(NULL, seal_key, &s2), WSE_ERR_INVALID);
	if (path != NULL) {
		struct stat sb;
		char p2[4096];

		/* Private files, WAL mode, version in user_version. */
		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0600);
		snprintf(p2, sizeof(p2), "%s-wal", path);
		assert_int_equal(stat(p2, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0600);
		assert_int_equal(raw_int(path, "SELECT count(*) FROM "
		    "pragma_journal_mode WHERE journal_mode = 'wal'"), 1);
		assert_int_equal(raw_int(path, "PRAGMA user_version"), v);
		/* A directory that does not exist: an error, not a crash. */
		snprintf(p2, sizeof(p2), "sqlite:%s/no/such/dir/x.db", f->dir);
		assert_wse_status(wse_store_open(p2, seal_key, &s2),
		    WSE_ERR_IO);
		/* A symbolic link is refused. */
		snprintf(p2, sizeof(p2), "%s/link.db", f->dir);
		assert_int_equal(symlink(path, p2), 0);
		snprintf(p2, sizeof(p2), "sqlite:%s/link.db", f->dir);
		assert_true(wse_store_open(p2, seal_key, &s2) != WSE_OK);
		assert_null(s2);
		/* Not a database. */
		snprintf(p2, sizeof(p2), "%s/text.db", f->dir);
		{
			FILE *fp = fopen(p2, "w");

			assert_non_null(fp);
			int i;

			for (i = 0; i < 200; i++)
				fputs("this is not a database\n", fp);
			fclose(fp);
		}
		snprintf(p2, sizeof(p2), "sqlite:%s/text.db", f->dir);
		assert_wse_status(wse_store_open(p2, seal_key, &s2),
		    WSE_ERR_IO);
		assert_null(s2);
	}
}

struct locker {
	const char *path;
	int ms;
};

static void *
hold_write_lock(void *arg)
{
	struct locker *k = arg;
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(k->path, &db, SQLITE_OPEN_READWRITE, NULL) ==
	    SQLITE_OK &&
	    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK) {
		__atomic_store_n(&k->ms, 1, __ATOMIC_SEQ_CST);	/* locked */
		usleep(300 * 1000);
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	sqlite3_close(db);
	return NULL;
}

/* A writer (another process) holding the lock is waited for, up to the
 * busy timeout, instead of failing at once. */
static void
test_busy_wait(void **state)
{
	struct fix *f = *state;
	const char *path = sqlite_path(f->dir);
	struct locker k = { path, 0 };
	pthread_t t;
	double t0;

	if (path == NULL)
		skip();
	assert_int_equal(pthread_create(&t, NULL, hold_write_lock, &k), 0);
	while (__atomic_load_n(&k.ms, __ATOMIC_SEQ_CST) == 0)
		usleep(1000);
	t0 = testutil_now_ms();
	add_user(f->s, "late@a.test", 1);
	assert_true(testutil_now_ms() - t0 > 150);
	pthread_join(t, NULL);
	assert_wse_ok(wse_store_user_get(f->s, "late@a.test", NULL, NULL));
}

/* An empty (zero-byte) file is migrated to the current schema; a
 * database of a newer schema is refused. */
static void
test_migrate_and_newer_refused(void **state)
{
	struct fix *f = *state;
	const char *path = sqlite_path(f->dir);
	wse_store *s = NULL;
	char empty[4096], uri[4200];
	int fd, v;

	if (path == NULL)
		skip();
	v = wse_store_schema_version(f->s);
	snprintf(empty, sizeof(empty), "%s/empty.db", f->dir);
	fd = open(empty, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(uri, sizeof(uri), "sqlite:%s", empty);
	assert_wse_ok(wse_store_open(uri, seal_key, &s));
	assert_int_equal(wse_store_schema_version(s), v);
	add_user(s, "x@a.test", 1);
	wse_store_close(&s);
	assert_int_equal(raw_int(empty, "PRAGMA user_version"), v);
	assert_int_equal(raw_int(empty, "SELECT count(*) FROM users"), 1);
	assert_int_equal(raw_int(empty, "SELECT count(*) FROM "
	    "pragma_journal_mode WHERE journal_mode = 'wal'"), 1);

	/* From the future: refused, and left alone. */
	wse_store_close(&f->s);
	raw_exec(path, "PRAGMA user_version = 999");
	assert_wse_status(wse_store_open(store_uri(f->dir), seal_key, &f->s),
	    WSE_ERR_UNSUPPORTED);
	assert_null(f->s);
	assert_int_equal(raw_int(path, "PRAGMA user_version"), 999);
	{
		char sql[64];

		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
		raw_exec(path, sql);
	}
	assert_wse_ok(wse_store_open(store_uri(f->dir), seal_key, &f->s));
	/* A database of version 1 (before batch heads), with a message:
	 * migrated on open, the message still there and read whole. */
	add_user(f->s, "old@a.test", 1);
	{
		const char *who[] = { "old@a.test" };

		assert_wse_ok(deliver(f->s, "urn:uuid:v1", who, 1, NULL, 1000));
	}
	wse_store_close(&f->s);
	raw_exec(path, "PRAGMA legacy_alter_table = ON;"
	    " CREATE TABLE bodies_v1 (id INTEGER PRIMARY KEY,"
	    " envelope BLOB NOT NULL);"
	    " INSERT INTO bodies_v1 SELECT id, envelope FROM bodies;"
	    " DROP TABLE bodies; ALTER TABLE bodies_v1 RENAME TO bodies;"
	    " DROP TABLE batch_heads; PRAGMA user_version = 1");
	assert_wse_ok(wse_store_open(store_uri(f->dir), seal_key, &f->s));
	assert_int_equal(raw_int(path, "PRAGMA user_version"), v);
	assert_int_equal(count_total(f->s, "old@a.test"), 1);
	assert_int_equal(raw_int(path, "SELECT count(*) FROM bodies WHERE "
	    "head_id IS NULL AND head_index = 0"), 1);
}

/* ---- users ---- */

static wse_status
stop_after_two(void *arg, const wse_user_rec *rec)
{
	int *n = arg;

	(void)rec;
	return ++*n == 2 ? WSE_ERR_NOT_AUTHORIZED : WSE_OK;
}

struct reentry {
	wse_store *s;
	int users;
	uint64_t messages;
};

/* A callback may call back into the store (no lock is held). */
static wse_status
reenter(void *arg, const wse_user_rec *rec)
{
	struct reentry *r = arg;
	uint64_t t = 0, u = 0;
	wse_status st;

	if ((st = wse_store_count(r->s, rec->name, &t, &u)) != WSE_OK)
		return st;
	r->users++;
	r->messages += t;
	return WSE_OK;
}

static void
test_users(void **state)
{
	struct fix *f = *state;
	uint8_t salt[WSE_SALT_LEN], key[WSE_DERIVED_KEY_LEN];
	uint8_t got[WSE_DERIVED_KEY_LEN], zero[WSE_DERIVED_KEY_LEN] = { 0 };
	char name[WSE_STORE_NAME_MAX + 8];
	struct reentry re = { f->s, 0, 0 };
	wse_user_rec rec;
	wse_buf *b = wse_buf_new(1 << 20);
	const char *p;
	int i, n = 0;

	assert_non_null(b);
	make_salt(salt, 1);
	make_key(key, 1);
	assert_wse_ok(wse_store_user_add(f->s, "Alice@A.Test", salt, 600000,
	    key, 1234));
	/* Names are folded to lower case: the same user. */
	assert_wse_status(wse_store_user_add(f->s, "alice@a.test", salt, 1,
	    key, 1), WSE_ERR_EXISTS);
	assert_wse_ok(wse_store_user_get(f->s, "ALICE@a.test", &rec, got));
	assert_string_equal(rec.name, "alice@a.test");
	assert_memory_equal(rec.salt, salt, WSE_SALT_LEN);
	assert_int_equal(rec.iterations, 600000);
	assert_int_equal(rec.created, 1234);
	assert_memory_equal(got, key, WSE_DERIVED_KEY_LEN);
	assert_wse_ok(wse_store_user_get(f->s, "alice@a.test", NULL, NULL));
	/* Unknown user: not found, and nothing handed back. */
	memset(got, 0x55, sizeof(got));
	assert_wse_status(wse_store_user_get(f->s, "bob@a.test", &rec, got),
	    WSE_ERR_NOT_FOUND);
	assert_memory_equal(got, zero, sizeof(got));
	assert_string_equal(rec.name, "");

	/* Password change. */
	make_salt(salt, 2);
	make_key(key, 2);
	assert_wse_ok(wse_store_user_set_key(f->s, "alice@a.test", salt,
	    700000, key));
	assert_wse_ok(wse_store_user_get(f->s, "alice@a.test", &rec, got));
	assert_memory_equal(got, key, WSE_DERIVED_KEY_LEN);
	assert_memory_equal(rec.salt, salt, WSE_SALT_LEN);
	assert_int_equal(rec.iterations, 700000);
	assert_int_equal(rec.created, 1234);
	assert_wse_status(wse_store_user_set_key(f->s, "bob@a.test", salt,
	    1, key), WSE_ERR_NOT_FOUND);

	/* Invalid names and arguments. */
	assert_wse_status(wse_store_user_add(f->s, "", salt, 1, key, 0),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_store_user_add(f->s, "nodomain", salt, 1, key,
	    0), WSE_ERR_INVALID);
	assert_wse_status(wse_store_user_add(f->s, "a@b@c", salt, 1, key, 0),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_store_user_add(f->s, "@a.test", salt, 1, key,
	    0), WSE_ERR_INVALID);
	assert_wse_status(wse_store_user_add(f->s, "x@", salt, 1, key, 0),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_store_user_add(f->s, "a\nb@a.test", salt, 1,
	    key, 0), WSE_ERR_INVALID);
	assert_wse_status(wse_store_user_add(f->s, "a b@a.test", salt, 1,
	    key, 0), WSE_ERR_INVALID);
	assert_wse_status(wse_store_user_add(f->s, "\xff@a.test", salt, 1,
	    key, 0), WSE_ERR_INVALID);
	assert_wse_status(wse_store_user_add(f->s, NULL, salt, 1, key, 0),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_store_user_add(f->s, "z@a.test", salt, 0, key,
	    0), WSE_ERR_INVALID);
	memset(name, 'x', sizeof(name));
	memcpy(name + WSE_STORE_NAME_MAX - 1 - 7, "@a.test", 7);
	name[WSE_STORE_NAME_MAX - 1] = '\0';		/* 255 bytes: fits */
	assert_wse_ok(wse_store_user_add(f->s, name, salt, 1, key, 0));
	assert_wse_ok(wse_store_user_get(f->s, name, &rec, got));
	assert_string_equal(rec.name, name);
	assert_wse_ok(wse_store_user_del(f->s, name));
	memset(name, 'x', sizeof(name));
	memcpy(name + WSE_STORE_NAME_MAX - 7, "@a.test", 7);
	name[WSE_STORE_NAME_MAX] = '\0';		/* 256 bytes: too long */
	assert_wse_status(wse_store_user_add(f->s, name, salt, 1, key, 0),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_store_user_get(f->s, name, &rec, got),
	    WSE_ERR_INVALID);

	/* Listing in name order, across several batches. */
	for (i = 69; i >= 0; i--) {
		snprintf(name, sizeof(name), "u%03d@a.test", i);
		add_user(f->s, name, (uint8_t)i);
	}
	assert_wse_ok(wse_store_user_list(f->s, collect_user_name, b));
	p = wse_buf_str(b);
	assert_true(strncmp(p, "alice@a.test\nu000@a.test\nu001@a.test\n",
	    37) == 0);
	assert_non_null(strstr(p, "u068@a.test\nu069@a.test\n"));
	assert_int_equal(strlen(p), 13 + 70 * 12);
	assert_wse_status(wse_store_user_list(f->s, stop_after_two, &n),
	    WSE_ERR_NOT_AUTHORIZED);
	assert_int_equal(n, 2);
	assert_wse_ok(wse_store_user_list(f->s, reenter, &re));
	assert_int_equal(re.users, 71);
	assert_wse_status(wse_store_user_list(f->s, NULL, NULL),
	    WSE_ERR_INVALID);

	/* Deletion. */
	assert_wse_ok(wse_store_user_del(f->s, "Alice@a.test"));
	assert_wse_status(wse_store_user_del(f->s, "alice@a.test"),
	    WSE_ERR_NOT_FOUND);
	assert_wse_status(wse_store_user_get(f->s, "alice@a.test", NULL,
	    NULL), WSE_ERR_NOT_FOUND);
	wse_buf_free(&b);
}

/* The derived key is never on disk in clear (database and WAL). */
static void
test_key_sealed_at_rest(void **state)
{
	struct fix *f = *state;
	const char *path = sqlite_path(f->dir);
	uint8_t salt[WSE_SALT_LEN], key[WSE_DERIVED_KEY_LEN];
	char wal[4200];

	if (path == NULL)
		skip();
	snprintf(wal, sizeof(wal), "%s-wal", path);
	make_salt(salt, 9);
	make_key(key, 9);
	assert_wse_ok(wse_store_user_add(f->s, "k@a.test", salt, 1000, key,
	    1));
	/* The salt is stored in clear: proof that the search works. */
	assert_true(file_contains(path, salt, sizeof(salt)) ||
	    file_contains(wal, salt, sizeof(salt)));
	assert_false(file_contains(path, key, sizeof(key)));
	assert_false(file_contains(wal, key, sizeof(key)));
	make_key(key, 10);
	assert_wse_ok(wse_store_user_set_key(f->s, "k@a.test", salt, 1000,
	    key));
	assert_false(file_contains(path, key, sizeof(key)));
	assert_false(file_contains(wal, key, sizeof(key)));
	wse_store_close(&f->s);	/* checkpoints the WAL into the file */
	assert_true(file_contains(path, salt, sizeof(salt)));
	assert_false(file_contains(path, key, sizeof(key)));
	make_key(key, 9);
	assert_false(file_contains(path, key, sizeof(key)));
	assert_wse_ok(wse_store_open(store_uri(f->dir), seal_key, &f->s));
}

/* Another seal key: an error at open, never a wrong key; a sealed key
 * moved to another user's row does not open. */
static void
test_wrong_seal_key(void **state)
{
	struct fix *f = *state;
	const char *path = sqlite_path(f->dir);
	uint8_t other[WSE_SEAL_KEY_LEN], got[WSE_DERIVED_KEY_LEN];
	wse_user_rec rec;
	wse_store *s = NULL;

	add_user(f->s, "alice@a.test", 1);
	add_user(f->s, "bob@a.test", 2);
	memcpy(other, seal_key, sizeof(other));
	other[7] ^= 0x01;
	assert_wse_status(wse_store_open(store_uri(f->dir), other, &s),
	    WSE_ERR_CRYPTO);
	assert_null(s);
	/* The right key still works after the failed attempt. */
	assert_wse_ok(wse_store_open(store_uri(f->dir), seal_key, &s));
	assert_wse_ok(wse_store_user_get(s, "bob@a.test", NULL, got));
	wse_store_close(&s);
	if (path == NULL)
		return;
	raw_exec(path, "UPDATE users SET sealed_key = (SELECT sealed_key "
	    "FROM users WHERE name = 'alice@a.test') WHERE name = 'bob@a.test'");
	memset(got, 0x11, sizeof(got));
	assert_wse_status(wse_store_user_get(f->s, "bob@a.test", &rec, got),
	    WSE_ERR_CRYPTO);
	assert_int_equal(got[0], 0);
	assert_wse_ok(wse_store_user_get(f->s, "bob@a.test", &rec, NULL));
	assert_wse_ok(wse_store_user_get(f->s, "alice@a.test", &rec, got));
}

/* ---- messages ---- */

static void
test_deliver_several_mailboxes(void **state)
{
	struct fix *f = *state;
	const char *path = sqlite_path(f->dir);
	const char *boxes[] = { "alice@a.test", "Bob@A.test", "alice@a.test" };
	wse_msg_meta m, ma;
	wse_buf *env = wse_buf_new(4096);
	int64_t ida, idb;

	assert_non_null(env);
	add_user(f->s, "alice@a.test", 1);
	add_user(f->s, "bob@a.test", 2);
	{
		wse_msg_meta in;

		memset(&in, 0, sizeof(in));
		snprintf(in.from, sizeof(in.from), "carol@b.test");
		snprintf(in.subject, sizeof(in.subject), "Quarterly\tfigures");
		in.flags = WSE_MSG_INSTANT;
		in.id = 999;		/* ignored: set by the store */
		in.unread = 0;		/* ignored */
		assert_wse_ok(wse_store_deliver(f->s, "B.Test", "urn:uuid:1",
		    boxes, 3, &in, "<E>signed</E>", 13, "urn:uuid:r1", 1300,
		    1000));
	}
	assert_int_equal(count_total(f->s, "alice@a.test"), 1);
	assert_int_equal(count_total(f->s, "bob@a.test"), 1);
	if (path != NULL) {
		assert_int_equal(raw_int(path, "SELECT count(*) FROM bodies"),
		    1);
		assert_int_equal(raw_int(path,
		    "SELECT count(*) FROM messages"), 2);
	}
	/* Find the ids through the listing. */
	{
		uint64_t t, u;

		assert_wse_ok(wse_store_count(f->s, "alice@a.test", &t, &u));
		assert_int_equal(t, 1);
		assert_int_equal(u, 1);
		assert_wse_ok(wse_store_count(f->s, "alice@a.test", NULL,
		    NULL));
	}
	ida = idb = 0;
	{
		int64_t id;

		for (id = 1; id < 100000 && (ida == 0 || idb == 0); id++) {
			if (ida == 0 && wse_store_fetch(f->s, "alice@a.test",
			    id, NULL, NULL) == WSE_OK)
				ida = id;
			else if (idb == 0 && wse_store_fetch(f->s,
			    "bob@a.test", id, NULL, NULL) == WSE_OK)
				idb = id;
		}
	}
	assert_true(ida > 0 && idb > 0 && ida != idb);
	assert_wse_ok(wse_store_fetch(f->s, "alice@a.test", ida, &ma, env));
	assert_string_equal(wse_buf_str(env), "<E>signed</E>");
	assert_int_equal(ma.id, ida);
	assert_string_equal(ma.mailbox, "alice@a.test");
	assert_string_equal(ma.from, "carol@b.test");
	assert_string_equal(ma.subject, "Quarterly\tfigures");
	assert_string_equal(ma.origin_domain, "b.test");
	assert_string_equal(ma.origin_id, "urn:uuid:1");
	assert_int_equal(ma.received, 1000);
	assert_int_equal(ma.size, 13);
	assert_int_equal(ma.unread, 1);
	assert_int_equal(ma.flags, WSE_MSG_INSTANT);
	wse_buf_reset(env);
	assert_wse_ok(wse_store_fetch(f->s, "BOB@a.test", idb, &m, env));
	assert_string_equal(wse_buf_str(env), "<E>signed</E>");
	assert_string_equal(m.mailbox, "bob@a.test");
	/* The shared body outlives the first copy deleted. */
	assert_wse_ok(wse_store_delete(f->s, "alice@a.test", ida));
	wse_buf_reset(env);
	assert_wse_ok(wse_store_fetch(f->s, "bob@a.test", idb, NULL, env));
	assert_string_equal(wse_buf_str(env), "<E>signed</E>");
	if (path != NULL)
		assert_int_equal(raw_int(path, "SELECT count(*) FROM bodies"),
		    1);
	/* Deleting the user deletes its mailbox and the last body. */
	assert_wse_ok(wse_store_user_del(f->s, "bob@a.test"));
	assert_wse_status(wse_store_fetch(f->s, "bob@a.test", idb, NULL,
	    NULL), WSE_ERR_NOT_FOUND);
	if (path != NULL) {
		assert_int_equal(raw_int(path, "SELECT count(*) FROM bodies"),
		    0);
		assert_int_equal(raw_int(path,
		    "SELECT count(*) FROM messages"), 0);
	}
	wse_buf_free(&env);
}

static void
test_deliver_no_such_user(void **state)
{
	struct fix *f = *state;
	const char *boxes[] = { "alice@a.test", "nobody@a.test" };
	wse_replay *r = NULL;

	add_user(f->s, "alice@a.test", 1);
	assert_wse_ok(wse_store_replay(f->s, &r));
	assert_wse_status(deliver(f->s, "urn:uuid:n1", boxes, 2, "urn:uuid:rn",
	    1000), WSE_ERR_NO_SUCH_USER);
	assert_int_equal(count_total(f->s, "alice@a.test"), 0);
	/* Neither the replay id nor the de-dup record was kept. */
	assert_wse_ok(wse_replay_seen(r, "urn:uuid:rn", 1001));
	assert_wse_ok(deliver(f->s, "urn:uuid:n1", boxes, 1, "urn:uuid:rn",
	    1001));
	assert_int_equal(count_total(f->s, "alice@a.test"), 1);
	assert_wse_status(wse_replay_seen(r, "urn:uuid:rn", 1002),
	    WSE_ERR_REPLAY);
	wse_replay_free(&r);
}

static void
test_deliver_dedup(void **state)
{
	struct fix *f = *state;
	const char *boxes[] = { "alice@a.test" };
	wse_replay *r = NULL;
	wse_msg_meta m;

	add_user(f->s, "alice@a.test", 1);
	assert_wse_ok(wse_store_replay(f->s, &r));
	assert_wse_ok(deliver(f->s, "urn:uuid:d1", boxes, 1, "urn:uuid:ra",
	    1000));
	/* A retry (new nonce, same origin message): stores nothing. */
	assert_wse_status(deliver(f->s, "urn:uuid:d1", boxes, 1,
	    "urn:uuid:rb", 1010), WSE_ERR_EXISTS);
	assert_int_equal(count_total(f->s, "alice@a.test"), 1);
	assert_wse_ok(wse_replay_seen(r, "urn:uuid:rb", 1011));
	/* The very same bytes again: a de-duplicated retry as well. */
	assert_wse_status(deliver(f->s, "urn:uuid:d1", boxes, 1,
	    "urn:uuid:ra", 1012), WSE_ERR_EXISTS);
	/* The same id from another origin is another message. */
	memset(&m, 0, sizeof(m));
	assert_wse_ok(wse_store_deliver(f->s, "c.test", "urn:uuid:d1", boxes,
	    1, &m, "x", 1, NULL, 0, 1020));
	assert_int_equal(count_total(f->s, "alice@a.test"), 2);
	wse_replay_free(&r);
}

/* A group stored in one transaction: each delivery stored or refused
 * alone, as wse_store_deliver would. */
static void
test_deliver_many(void **state)
{
	struct fix *f = *state;
	const char *both[] = { "alice@a.test", "Bob@A.test", "alice@a.test" };
	const char *nobody[] = { "alice@a.test", "nobody@a.test" };
	const char *bad[] = { "not a mailbox" };
	const char *one[] = { "bob@a.test" };
	wse_delivery d[6];
	wse_status status[6];
	wse_msg_meta m;
	size_t i;

	add_user(f->s, "alice@a.test", 1);
	add_user(f->s, "bob@a.test", 2);
	assert_wse_ok(deliver(f->s, "urn:uuid:old", one, 1, "urn:uuid:r0",
	    900));
	memset(&m, 0, sizeof(m));
	snprintf(m.from, sizeof(m.from), "carol@b.test");
	snprintf(m.subject, sizeof(m.subject), "batch");
	memset(d, 0, sizeof(d));
	for (i = 0; i < 6; i++) {
		d[i].origin_domain = "B.test";
		d[i].mailboxes = one;
		d[i].n = 1;
		d[i].meta = &m;
		d[i].envelope = "<E/>";
		d[i].len = 4;
	}
	d[0].origin_id = "urn:uuid:b0";		/* two mailboxes */
	d[0].mailboxes = both;
	d[0].n = 3;
	d[0].replay_id = "urn:uuid:r1";
	d[0].replay_expires = 2000;
	d[1].origin_id = "urn:uuid:b1";		/* a mailbox without user */
	d[1].mailboxes = nobody;
	d[1].n = 2;
	d[2].origin_id = "urn:uuid:old";	/* delivered before */
	d[3].origin_id = "urn:uuid:b3";		/* malformed mailbox */
	d[3].mailboxes = bad;
	d[4].origin_id = "urn:uuid:b4";		/* replay id seen in d[0] */
	d[4].replay_id = "urn:uuid:r1";
	d[4].replay_expires = 2000;
	d[5].origin_id = "urn:uuid:b5";
	assert_wse_ok(wse_store_deliver_many(f->s, d, 6, 1000, status));
	assert_int_equal(status[0], WSE_OK);
	assert_int_equal(status[1], WSE_ERR_NO_SUCH_USER);
	assert_int_equal(status[2], WSE_ERR_EXISTS);
	assert_int_equal(status[3], WSE_ERR_INVALID);
	assert_int_equal(status[4], WSE_ERR_REPLAY);
	assert_int_equal(status[5], WSE_OK);
	assert_int_equal(count_total(f->s, "alice@a.test"), 1);
	assert_int_equal(count_total(f->s, "bob@a.test"), 3);
	/* The refused ones left nothing: b1 and b4 can come again. */
	d[1].mailboxes = one;
	d[1].n = 1;
	d[4].replay_id = NULL;
	assert_wse_ok(wse_store_deliver_many(f->s, &d[1], 1, 1001, status));
	assert_int_equal(status[0], WSE_OK);
	assert_wse_ok(wse_store_deliver_many(f->s, &d[4], 1, 1001, status));
	assert_int_equal(status[0], WSE_OK);
	/* ...and the stored ones are de-duplicated on a retry. */
	assert_wse_ok(wse_store_deliver_many(f->s, d, 1, 1002, status));
	assert_int_equal(status[0], WSE_ERR_EXISTS);
	assert_int_equal(count_total(f->s, "bob@a.test"), 5);
	if (sqlite_path(f->dir) != NULL)
		assert_int_equal(raw_int(sqlite_path(f->dir),
		    "SELECT count(*) FROM bodies"), 5);
	assert_wse_ok(wse_store_deliver_many(f->s, d, 0, 1003, status));
	assert_wse_status(wse_store_deliver_many(f->s, NULL, 1, 1003, status),
	    WSE_ERR_INVALID);
}

struct idlist {
	int64_t id[8];
	size_t n;
};

static wse_status
collect_id(void *arg, const wse_msg_meta *meta)
{
	struct idlist *l = arg;

	if (l->n >= 8)
		return WSE_ERR_INTERNAL;
	l->id[l->n++] = meta->id;
	return WSE_OK;
}

/* Batch items: the head kept once for the deliveries that share it,
 * each fetched as the batch original (lib/batch.h) of that head, its
 * index and its item; a refused delivery takes no head away from the
 * others; the head goes with the last message that uses it. */
static void
test_deliver_batch_heads(void **state)
{
	struct fix *f = *state;
	const char *one[] = { "bob@a.test" };
	const char *nobody[] = { "nobody@a.test" };
	static const char head[] = "SEVBRA==", head2[] = "SEVBRDI=";
	const char *items[4] = { "<m:Deliver>0</m:Deliver>",
	    "<m:Deliver>1</m:Deliver>", "<m:Deliver>2</m:Deliver>",
	    "<m:Deliver>3</m:Deliver>" };
	wse_delivery d[4];
	wse_status status[4];
	wse_msg_meta m;
	wse_buf *got = wse_buf_new(1 << 16), *want = wse_buf_new(1 << 16);
	int64_t ids[4];
	size_t i, n = 0;
	struct idlist l;

	assert_true(got && want);
	add_user(f->s, "bob@a.test", 1);
	memset(&m, 0, sizeof(m));
	snprintf(m.from, sizeof(m.from), "carol@b.test");
	snprintf(m.subject, sizeof(m.subject), "batch");
	memset(d, 0, sizeof(d));
	for (i = 0; i < 4; i++) {
		d[i].origin_domain = "b.test";
		d[i].mailboxes = one;
		d[i].n = 1;
		d[i].meta = &m;
		d[i].envelope = items[i];
		d[i].len = strlen(items[i]);
		d[i].head_b64 = head;
		d[i].head_len = strlen(head);
		d[i].head_index = i;
	}
	d[0].origin_id = "urn:uuid:h0";
	d[0].mailboxes = nobody;	/* refused: stored the head first */
	d[1].origin_id = "urn:uuid:h1";
	d[2].origin_id = "urn:uuid:h2";
	d[3].origin_id = "urn:uuid:h3";
	d[3].head_b64 = NULL;		/* kept whole */
	assert_wse_ok(wse_store_deliver_many(f->s, d, 4, 1000, status));
	assert_int_equal(status[0], WSE_ERR_NO_SUCH_USER);
	assert_int_equal(status[1], WSE_OK);
	assert_int_equal(status[2], WSE_OK);
	assert_int_equal(status[3], WSE_OK);
	/* Newest first: h3, h2, h1 (same time: by id). */
	memset(&l, 0, sizeof(l));
	assert_wse_ok(wse_store_list(f->s, "bob@a.test", 0, 10, collect_id,
	    &l));
	assert_int_equal(l.n, 3);
	for (i = 0; i < 3; i++)
		ids[i] = l.id[i];
	for (i = 1; i < 4; i++) {
		wse_buf_reset(got);
		wse_buf_reset(want);
		assert_wse_ok(wse_store_fetch(f->s, "bob@a.test", ids[3 - i],
		    &m, got));
		if (i < 3)
			assert_wse_ok(wse_batch_original(head, strlen(head), i,
			    (const uint8_t *)items[i], strlen(items[i]), want));
		else
			assert_wse_ok(wse_buf_puts(want, items[i]));
		assert_int_equal(wse_buf_len(got), wse_buf_len(want));
		assert_memory_equal(wse_buf_data(got), wse_buf_data(want),
		    wse_buf_len(want));
		n++;
	}
	assert_int_equal(n, 3);
	if (sqlite_path(f->dir) != NULL)
		assert_int_equal(raw_int(sqlite_path(f->dir),
		    "SELECT count(*) FROM batch_heads"), 1);
	/* Another batch, another head. */
	d[0].origin_id = "urn:uuid:h4";
	d[0].mailboxes = one;
	d[0].head_b64 = head2;
	d[0].head_len = strlen(head2);
	assert_wse_ok(wse_store_deliver_many(f->s, d, 1, 1001, status));
	assert_int_equal(status[0], WSE_OK);
	if (sqlite_path(f->dir) != NULL)
		assert_int_equal(raw_int(sqlite_path(f->dir),
		    "SELECT count(*) FROM batch_heads"), 2);
	/* The first head goes with the last of its messages. */
	assert_wse_ok(wse_store_delete(f->s, "bob@a.test", ids[1]));
	if (sqlite_path(f->dir) != NULL)
		assert_int_equal(raw_int(sqlite_path(f->dir),
		    "SELECT count(*) FROM batch_heads"), 2);
	assert_wse_ok(wse_store_delete(f->s, "bob@a.test", ids[2]));
	if (sqlite_path(f->dir) != NULL)
		assert_int_equal(raw_int(sqlite_path(f->dir),
		    "SELECT count(*) FROM batch_heads"), 1);
	wse_buf_free(&got);
	wse_buf_free(&want);
}

static void
test_deliver_replay(void **state)
{
	struct fix *f = *state;
	const char *boxes[] = { "alice@a.test" };
	wse_replay *r = NULL;

	add_user(f->s, "alice@a.test", 1);
	assert_wse_ok(wse_store_replay(f->s, &r));
	assert_wse_ok(wse_replay_insert(r, "urn:uuid:x", 1300, 1000));
	assert_wse_status(deliver(f->s, "urn:uuid:m1", boxes, 1, "urn:uuid:x",
	    1001), WSE_ERR_REPLAY);
	assert_int_equal(count_total(f->s, "alice@a.test"), 0);
	/* Nothing of it was kept: the de-dup record neither. */
	assert_wse_ok(deliver(f->s, "urn:uuid:m1", boxes, 1, "urn:uuid:y",
	    1002));
	/* The nonce entered the cache with the message. */
	assert_wse_status(wse_replay_seen(r, "urn:uuid:y", 1003),
	    WSE_ERR_REPLAY);
	assert_wse_status(wse_replay_insert(r, "urn:uuid:y", 1400, 1003),
	    WSE_ERR_REPLAY);
	/* An expired entry is as good as absent. */
	assert_wse_ok(deliver(f->s, "urn:uuid:m2", boxes, 1, "urn:uuid:x",
	    1300));
	assert_int_equal(count_total(f->s, "alice@a.test"), 2);
	wse_replay_free(&r);
}

static void
test_deliver_invalid(void **state)
{
	struct fix *f = *state;
	const char *boxes[] = { "alice@a.test" };
	const char *bad[] = { "alice" };
	wse_msg_meta m;

	add_user(f->s, "alice@a.test", 1);
	memset(&m, 0, sizeof(m));
	assert_wse_status(wse_store_deliver(f->s, "b.test", "id", boxes, 0,
	    &m, "x", 1, NULL, 0, 1), WSE_ERR_INVALID);
	assert_wse_status(wse_store_deliver(f->s, "b.test", "id", bad, 1,
	    &m, "x", 1, NULL, 0, 1), WSE_ERR_INVALID);
	assert_wse_status(wse_store_deliver(f->s, "b.test", "id", boxes, 1,
	    NULL, "x", 1, NULL, 0, 1), WSE_ERR_INVALID);
	assert_wse_status(wse_store_deliver(f->s, "b.test", "id", boxes, 1,
	    &m, NULL, 0, NULL, 0, 1), WSE_ERR_INVALID);
	assert_wse_status(wse_store_deliver(f->s, "", "id", boxes, 1,
	    &m, "x", 1, NULL, 0, 1), WSE_ERR_INVALID);
	assert_wse_status(wse_store_deliver(f->s, "b@test", "id", boxes, 1,
	    &m, "x", 1, NULL, 0, 1), WSE_ERR_INVALID);
	assert_wse_status(wse_store_deliver(f->s, "b.test", "", boxes, 1,
	    &m, "x", 1, NULL, 0, 1), WSE_ERR_INVALID);
	assert_wse_status(wse_store_deliver(f->s, "b.test", "id", boxes, 1,
	    &m, "x", 1, "", 0, 1), WSE_ERR_INVALID);
	memset(&m, 0, sizeof(m));
	memset(m.from, 'x', sizeof(m.from));
	assert_wse_status(wse_store_deliver(f->s, "b.test", "id", boxes, 1,
	    &m, "x", 1, NULL, 0, 1), WSE_ERR_INVALID);
	assert_int_equal(count_total(f->s, "alice@a.test"), 0);
	/* Binary envelopes are kept byte for byte. */
	memset(&m, 0, sizeof(m));
	{
		static const uint8_t bin[] = { 0, 1, 2, 0, 0xff, 0 };
		wse_buf *b = wse_buf_new(64);
		wse_msg_meta g;
		int64_t id;

		assert_wse_ok(wse_store_deliver(f->s, "b.test", "bin", boxes,
		    1, &m, bin, sizeof(bin), NULL, 0, 1));
		for (id = 1; id < 100000; id++)
			if (wse_store_fetch(f->s, "alice@a.test", id, &g, b) ==
			    WSE_OK)
				break;
		assert_int_equal(wse_buf_len(b), sizeof(bin));
		assert_memory_equal(wse_buf_data(b), bin, sizeof(bin));
		assert_int_equal(g.size, sizeof(bin));
		assert_string_equal(g.from, "");
		wse_buf_free(&b);
	}
}

/* Subjects are display text: made safe, never a reason to refuse. */
static void
test_deliver_subject_sanitized(void **state)
{
	struct fix *f = *state;
	const char *boxes[] = { "alice@a.test" };
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "bell\a and\r\nnewline", "bell  and  newline" },
		{ "tab\tkept, caf\xc3\xa9 too", "tab\tkept, caf\xc3\xa9 too" },
		{ "bad \xff byte \xc3\xa9", "bad ? byte ??" },
	};
	wse_msg_meta m, g;
	char oid[32], want[WSE_STORE_SUBJECT_MAX];
	size_t i;

	add_user(f->s, "alice@a.test", 1);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]) + 2; i++) {
		int64_t id, found = 0;

		memset(&m, 0, sizeof(m));
		if (i < sizeof(cases) / sizeof(cases[0])) {
			snprintf(m.subject, sizeof(m.subject), "%s",
			    cases[i].in);
			snprintf(want, sizeof(want), "%s", cases[i].want);
		} else if (i == sizeof(cases) / sizeof(cases[0])) {
			/* Full, without a NUL: the last byte goes. */
			memset(m.subject, 's', sizeof(m.subject));
			memset(want, 's', sizeof(want) - 1);
			want[sizeof(want) - 1] = '\0';
		} else {
			/* A character cut at the end is dropped whole. */
			memset(m.subject, 's', sizeof(m.subject));
			memcpy(m.subject + sizeof(m.subject) - 2, "\xc3\xa9", 2);
			memset(want, 's', sizeof(want) - 2);
			want[sizeof(want) - 2] = '\0';
		}
		snprintf(oid, sizeof(oid), "urn:uuid:s%zu", i);
		assert_wse_ok(wse_store_deliver(f->s, "b.test", oid, boxes, 1,
		    &m, "x", 1, NULL, 0, 10 + (int64_t)i));
		for (id = 1; id < 100000 && found == 0; id++)
			if (wse_store_fetch(f->s, "alice@a.test", id, &g,
			    NULL) == WSE_OK && strcmp(g.origin_id, oid) == 0)
				found = id;
		assert_true(found > 0);
		assert_string_equal(g.subject, want);
	}
}

struct listing {
	wse_msg_meta m[256];
	size_t n;
	size_t stop_at;		/* 0: never */
};

static wse_status
collect_meta(void *arg, const wse_msg_meta *meta)
{
	struct listing *l = arg;

	if (l->n >= 256)
		return WSE_ERR_INTERNAL;
	l->m[l->n++] = *meta;
	return l->stop_at != 0 && l->n == l->stop_at ? WSE_ERR_EXISTS : WSE_OK;
}

static void
test_list_count_mark(void **state)
{
	struct fix *f = *state;
	const char *alice[] = { "alice@a.test" }, *bob[] = { "bob@a.test" };
	struct listing *l = calloc(1, sizeof(*l));
	char oid[64];
	uint64_t t, u;
	size_t i;

	assert_non_null(l);
	add_user(f->s, "alice@a.test", 1);
	add_user(f->s, "bob@a.test", 2);
	/* 70 messages: received 1000, 1000, 1001, 1001, ... (pairs tie on
	 * time and are ordered by id). */
	for (i = 0; i < 70; i++) {
		snprintf(oid, sizeof(oid), "urn:uuid:l%zu", i);
		assert_wse_ok(deliver(f->s, oid, alice, 1, NULL,
		    1000 + (int64_t)i / 2));
	}
	assert_wse_ok(deliver(f->s, "urn:uuid:bob", bob, 1, NULL, 5000));
	assert_wse_ok(wse_store_count(f->s, "alice@a.test", &t, &u));
	assert_int_equal(t, 70);
	assert_int_equal(u, 70);
	assert_wse_ok(wse_store_count(f->s, "nobody@a.test", &t, &u));
	assert_int_equal(t, 0);

	/* Everything, newest first, across batches. */
	assert_wse_ok(wse_store_list(f->s, "alice@a.test", 0, SIZE_MAX,
	    collect_meta, l));
	assert_int_equal(l->n, 70);
	assert_string_equal(l->m[0].origin_id, "urn:uuid:l69");
	assert_string_equal(l->m[1].origin_id, "urn:uuid:l68");
	assert_string_equal(l->m[69].origin_id, "urn:uuid:l0");
	for (i = 1; i < l->n; i++) {
		assert_true(l->m[i].received <= l->m[i - 1].received);
		assert_true(l->m[i].id < l->m[i - 1].id);
		assert_string_equal(l->m[i].mailbox, "alice@a.test");
	}
	/* Pages. */
	l->n = 0;
	assert_wse_ok(wse_store_list(f->s, "alice@a.test", 10, 5,
	    collect_meta, l));
	assert_int_equal(l->n, 5);
	assert_string_equal(l->m[0].origin_id, "urn:uuid:l59");
	assert_string_equal(l->m[4].origin_id, "urn:uuid:l55");
	l->n = 0;
	assert_wse_ok(wse_store_list(f->s, "alice@a.test", 65, 100,
	    collect_meta, l));
	assert_int_equal(l->n, 5);
	assert_string_equal(l->m[4].origin_id, "urn:uuid:l0");
	l->n = 0;
	assert_wse_ok(wse_store_list(f->s, "alice@a.test", 2, 66,
	    collect_meta, l));
	assert_int_equal(l->n, 66);
	assert_string_equal(l->m[0].origin_id, "urn:uuid:l67");
	assert_string_equal(l->m[65].origin_id, "urn:uuid:l2");
	l->n = 0;
	assert_wse_ok(wse_store_list(f->s, "alice@a.test", 70, 10,
	    collect_meta, l));
	assert_wse_ok(wse_store_list(f->s, "alice@a.test", SIZE_MAX, 10,
	    collect_meta, l));
	assert_wse_ok(wse_store_list(f->s, "alice@a.test", 0, 0,
	    collect_meta, l));
	assert_wse_ok(wse_store_list(f->s, "nobody@a.test", 0, 10,
	    collect_meta, l));
	assert_int_equal(l->n, 0);
	/* The callback's status stops the walk. */
	l->stop_at = 3;
	assert_wse_status(wse_store_list(f->s, "alice@a.test", 0, 100,
	    collect_meta, l), WSE_ERR_EXISTS);
	assert_int_equal(l->n, 3);
	l->stop_at = 0;

	/* Read / unread. */
	assert_wse_ok(wse_store_mark_read(f->s, "alice@a.test", l->m[0].id,
	    1));
	assert_wse_ok(wse_store_mark_read(f->s, "alice@a.test", l->m[1].id,
	    1));
	assert_wse_ok(wse_store_mark_read(f->s, "alice@a.test", l->m[1].id,
	    1));
	assert_wse_ok(wse_store_count(f->s, "alice@a.test", &t, &u));
	assert_int_equal(t, 70);
	assert_int_equal(u, 68);
	assert_wse_ok(wse_store_mark_read(f->s, "alice@a.test", l->m[1].id,
	    0));
	assert_wse_ok(wse_store_count(f->s, "alice@a.test", &t, &u));
	assert_int_equal(u, 69);
	l->n = 0;
	assert_wse_ok(wse_store_list(f->s, "alice@a.test", 0, 2,
	    collect_meta, l));
	assert_int_equal(l->m[0].unread, 0);
	assert_int_equal(l->m[1].unread, 1);
	free(l);
}

static void
test_fetch_delete_other_mailbox(void **state)
{
	struct fix *f = *state;
	const char *alice[] = { "alice@a.test" };
	struct listing *l = calloc(1, sizeof(*l));
	wse_buf *small = wse_buf_new(4);
	wse_msg_meta m;
	int64_t id;

	assert_non_null(l);
	assert_non_null(small);
	add_user(f->s, "alice@a.test", 1);
	add_user(f->s, "eve@a.test", 2);
	assert_wse_ok(deliver(f->s, "urn:uuid:secret", alice, 1, NULL, 1000));
	assert_wse_ok(wse_store_list(f->s, "alice@a.test", 0, 10,
	    collect_meta, l));
	assert_int_equal(l->n, 1);
	id = l->m[0].id;
	/* Another user's message does not exist for eve. */
	assert_wse_status(wse_store_fetch(f->s, "eve@a.test", id, &m, NULL),
	    WSE_ERR_NOT_FOUND);
	assert_string_equal(m.subject, "");
	assert_wse_status(wse_store_delete(f->s, "eve@a.test", id),
	    WSE_ERR_NOT_FOUND);
	assert_wse_status(wse_store_mark_read(f->s, "eve@a.test", id, 1),
	    WSE_ERR_NOT_FOUND);
	assert_wse_status(wse_store_fetch(f->s, "alice@a.test", id + 1000,
	    &m, NULL), WSE_ERR_NOT_FOUND);
	assert_wse_status(wse_store_fetch(f->s, "alice@a.test", 0, &m, NULL),
	    WSE_ERR_NOT_FOUND);
	assert_wse_status(wse_store_fetch(f->s, "alice@a.test", -1, &m,
	    NULL), WSE_ERR_NOT_FOUND);
	/* A buffer too small: an error, not a truncated envelope. */
	assert_wse_status(wse_store_fetch(f->s, "alice@a.test", id, &m,
	    small), WSE_ERR_TOO_LARGE);
	assert_int_equal(wse_buf_len(small), 0);
	/* Still there for alice; then deleted once. */
	assert_wse_ok(wse_store_fetch(f->s, "alice@a.test", id, &m, NULL));
	assert_int_equal(m.id, id);
	assert_wse_ok(wse_store_delete(f->s, "alice@a.test", id));
	assert_wse_status(wse_store_delete(f->s, "alice@a.test", id),
	    WSE_ERR_NOT_FOUND);
	assert_wse_status(wse_store_fetch(f->s, "alice@a.test", id, &m,
	    NULL), WSE_ERR_NOT_FOUND);
	assert_int_equal(count_total(f->s, "alice@a.test"), 0);
	wse_buf_free(&small);
	free(l);
}

/* ---- the queue ---- */

struct qitem {
	wse_queue_item item;
	char rcpts[4][WSE_STORE_NAME_MAX];
	size_t nrcpts;
	char payload[64];
	size_t len;
};

struct qlist {
	struct qitem it[128];
	size_t n;
	size_t stop_at;
};

static wse_status
collect_item(void *arg, const wse_queue_item *item,
    const char *const *rcpts, size_t nrcpts, const void *payload, size_t len)
{
	struct qlist *l = arg;
	struct qitem *q;
	size_t i;

	if (l->n >= 128 || nrcpts > 4 || len >= sizeof(q->payload))
		return WSE_ERR_INTERNAL;
	q = &l->it[l->n++];
	q->item = *item;
	for (i = 0; i < nrcpts; i++)
		snprintf(q->rcpts[i], sizeof(q->rcpts[i]), "%s", rcpts[i]);
	q->nrcpts = nrcpts;
	memcpy(q->payload, payload, len);
	q->payload[len] = '\0';
	q->len = len;
	return l->stop_at != 0 && l->n == l->stop_at ? WSE_ERR_TEMPFAIL :
	    WSE_OK;
}

/* A submission to one or two domains. */
struct sub {
	wse_submission s;
	const char *domains[2];
	const char *const *rcpts[2];
	size_t nrcpts[2];
};

static const char *const rc_b[] = { "x@b.test", "Y@B.test", "x@b.test" };
static const char *const rc_c[] = { "z@c.test" };
static const char *const rc_bad[] = { "z@d.test" };

static void
make_sub(struct sub *u, const char *msgid, const char *replay,
    const char *payload, int two)
{
	memset(u, 0, sizeof(*u));
	u->domains[0] = "b.test";
	u->rcpts[0] = rc_b;
	u->nrcpts[0] = 3;
	u->domains[1] = "C.test";
	u->rcpts[1] = rc_c;
	u->nrcpts[1] = 1;
	u->s.sender = "Alice@a.test";
	u->s.message_id = msgid;
	u->s.replay_id = replay;
	u->s.replay_expires = 5000;
	u->s.payload = payload;
	u->s.len = strlen(payload);
	u->s.ndomains = two ? 2 : 1;
	u->s.domains = u->domains;
	u->s.rcpts = u->rcpts;
	u->s.nrcpts = u->nrcpts;
}

static void
test_enqueue_group_commit(void **state)
{
	struct fix *f = *state;
	struct sub u[6];
	wse_submission subs[6];
	wse_status status[6];
	struct qlist *l = calloc(1, sizeof(*l));
	wse_replay *r = NULL;
	size_t i;

	assert_non_null(l);
	assert_wse_ok(wse_store_replay(f->s, &r));
	assert_wse_ok(wse_replay_insert(r, "urn:uuid:seen", 5000, 1000));
	make_sub(&u[0], "m0", "urn:uuid:r0", "payload-0", 1);
	make_sub(&u[1], "m1", "urn:uuid:seen", "payload-1", 1);
	make_sub(&u[2], "m2", NULL, "payload-2", 0);
	make_sub(&u[3], "m3", "urn:uuid:r3", "payload-3", 0);
	u[3].rcpts[0] = rc_bad;		/* not in its domain: refused */
	u[3].nrcpts[0] = 1;
	make_sub(&u[4], "m4", "urn:uuid:r0", "payload-4", 0);	/* dup in batch */
	make_sub(&u[5], "m5", "urn:uuid:r5", "payload-5", 1);
	u[5].s.sender = "";		/* a report: no sender */
	u[5].s.flags = WSE_MSG_REPORT;
	for (i = 0; i < 6; i++)
		subs[i] = u[i].s;
	assert_wse_ok(wse_store_enqueue(f->s, subs, 6, 1000, 86400, status));
	assert_int_equal(status[0], WSE_OK);
	assert_int_equal(status[1], WSE_ERR_REPLAY);
	assert_int_equal(status[2], WSE_OK);
	assert_int_equal(status[3], WSE_ERR_INVALID);
	assert_int_equal(status[4], WSE_ERR_REPLAY);
	assert_int_equal(status[5], WSE_OK);
	/* The replay ids of the stored ones are in the cache; r3 is not. */
	assert_wse_status(wse_replay_seen(r, "urn:uuid:r0", 1001),
	    WSE_ERR_REPLAY);
	assert_wse_status(wse_replay_seen(r, "urn:uuid:r5", 1001),
	    WSE_ERR_REPLAY);
	assert_wse_ok(wse_replay_seen(r, "urn:uuid:r3", 1001));

	assert_wse_ok(wse_store_queue_list(f->s, collect_item, l));
	assert_int_equal(l->n, 5);	/* m0 x2, m2, m5 x2 */
	assert_string_equal(l->it[0].item.message_id, "m0");
	assert_string_equal(l->it[0].item.domain, "b.test");
	assert_string_equal(l->it[0].item.sender, "alice@a.test");
	assert_int_equal(l->it[0].nrcpts, 2);	/* duplicates folded */
	assert_string_equal(l->it[0].rcpts[0], "x@b.test");
	assert_string_equal(l->it[0].rcpts[1], "y@b.test");
	assert_string_equal(l->it[0].payload, "payload-0");
	assert_int_equal(l->it[0].item.attempts, 0);
	assert_int_equal(l->it[0].item.created, 1000);
	assert_int_equal(l->it[0].item.next_attempt, 1000);
	assert_int_equal(l->it[0].item.expires, 1000 + 86400);
	assert_string_equal(l->it[0].item.last_error, "");
	assert_string_equal(l->it[1].item.message_id, "m0");
	assert_string_equal(l->it[1].item.domain, "c.test");
	assert_int_equal(l->it[1].nrcpts, 1);
	assert_string_equal(l->it[1].rcpts[0], "z@c.test");
	assert_string_equal(l->it[1].payload, "payload-0");
	assert_string_equal(l->it[2].item.message_id, "m2");
	assert_string_equal(l->it[3].item.message_id, "m5");
	assert_string_equal(l->it[3].item.sender, "");
	assert_int_equal(l->it[3].item.flags, WSE_MSG_REPORT);

	/* A group of only refused submissions commits nothing, says OK. */
	subs[0] = u[1].s;
	assert_wse_ok(wse_store_enqueue(f->s, subs, 1, 1000, 86400, status));
	assert_int_equal(status[0], WSE_ERR_REPLAY);
	assert_wse_ok(wse_store_enqueue(f->s, subs, 0, 1000, 86400, status));
	assert_wse_status(wse_store_enqueue(f->s, subs, 1, 1000, 0, status),
	    WSE_ERR_INVALID);
	assert_int_equal(status[0], WSE_ERR_INVALID);
	l->n = 0;
	assert_wse_ok(wse_store_queue_list(f->s, collect_item, l));
	assert_int_equal(l->n, 5);
	/* A callback's status stops the walk. */
	l->n = 0;
	l->stop_at = 2;
	assert_wse_status(wse_store_queue_list(f->s, collect_item, l),
	    WSE_ERR_TEMPFAIL);
	assert_int_equal(l->n, 2);
	/* Payloads shared by two items go with the last of them. */
	l->n = 0;
	l->stop_at = 0;
	assert_wse_ok(wse_store_queue_list(f->s, collect_item, l));
	assert_wse_ok(wse_store_queue_done(f->s, l->it[0].item.id));
	if (sqlite_path(f->dir) != NULL)
		assert_int_equal(raw_int(sqlite_path(f->dir),
		    "SELECT count(*) FROM payloads"), 3);
	for (i = 1; i < l->n; i++)
		assert_wse_ok(wse_store_queue_delete(f->s, l->it[i].item.id));
	if (sqlite_path(f->dir) != NULL) {
		assert_int_equal(raw_int(sqlite_path(f->dir),
		    "SELECT count(*) FROM payloads"), 0);
		assert_int_equal(raw_int(sqlite_path(f->dir),
		    "SELECT count(*) FROM queue_rcpts"), 0);
	}
	wse_replay_free(&r);
	free(l);
}

/* Several delivered items removed in one call; ids already gone are
 * skipped. */
static void
test_queue_done_many(void **state)
{
	struct fix *f = *state;
	struct sub u[3];
	wse_submission subs[3];
	wse_status status[3];
	struct qlist *l = calloc(1, sizeof(*l));
	int64_t ids[3];
	size_t i;

	assert_non_null(l);
	make_sub(&u[0], "d0", NULL, "p0", 1);
	make_sub(&u[1], "d1", NULL, "p1", 0);
	make_sub(&u[2], "d2", NULL, "p2", 0);
	for (i = 0; i < 3; i++)
		subs[i] = u[i].s;
	assert_wse_ok(wse_store_enqueue(f->s, subs, 3, 1000, 86400, status));
	assert_wse_ok(wse_store_queue_list(f->s, collect_item, l));
	assert_int_equal(l->n, 4);
	ids[0] = l->it[0].item.id;	/* d0 to b.test */
	ids[1] = l->it[2].item.id;	/* d1 */
	ids[2] = ids[0];		/* gone by then: skipped */
	assert_wse_ok(wse_store_queue_done_many(f->s, ids, 3));
	l->n = 0;
	assert_wse_ok(wse_store_queue_list(f->s, collect_item, l));
	assert_int_equal(l->n, 2);
	assert_string_equal(l->it[0].item.message_id, "d0");
	assert_string_equal(l->it[0].item.domain, "c.test");
	assert_string_equal(l->it[1].item.message_id, "d2");
	assert_wse_ok(wse_store_queue_done_many(f->s, ids, 0));
	ids[0] = 0;
	assert_wse_status(wse_store_queue_done_many(f->s, ids, 1),
	    WSE_ERR_INVALID);
	free(l);
}

static void
test_queue_lease_defer_flush(void **state)
{
	struct fix *f = *state;
	struct sub u[3];
	wse_submission subs[3];
	wse_status status[3];
	struct qlist *l = calloc(1, sizeof(*l));
	int64_t id0, id1, id2;
	size_t i;

	assert_non_null(l);
	make_sub(&u[0], "q0", NULL, "p0", 0);
	make_sub(&u[1], "q1", NULL, "p1", 0);
	make_sub(&u[2], "q2", NULL, "p2", 0);
	for (i = 0; i < 3; i++)
		subs[i] = u[i].s;
	/* q2 first (oldest), then q0 and q1 together. */
	assert_wse_ok(wse_store_enqueue(f->s, &subs[2], 1, 900, 3600, status));
	assert_wse_ok(wse_store_enqueue(f->s, subs, 2, 1000, 3600, status));
	/* Not due before its time. */
	assert_wse_ok(wse_store_queue_take(f->s, 899, 60, 10, collect_item,
	    l));
	assert_int_equal(l->n, 0);
	/* Oldest first, at most limit, leased for 60 s. */
	assert_wse_ok(wse_store_queue_take(f->s, 1000, 60, 2, collect_item,
	    l));
	assert_int_equal(l->n, 2);
	assert_string_equal(l->it[0].item.message_id, "q2");
	assert_string_equal(l->it[1].item.message_id, "q0");
	assert_string_equal(l->it[0].payload, "p2");
	assert_int_equal(l->it[0].nrcpts, 2);
	id2 = l->it[0].item.id;
	id0 = l->it[1].item.id;
	/* A second worker gets only what is not leased. */
	l->n = 0;
	assert_wse_ok(wse_store_queue_take(f->s, 1010, 60, 10, collect_item,
	    l));
	assert_int_equal(l->n, 1);
	assert_string_equal(l->it[0].item.message_id, "q1");
	id1 = l->it[0].item.id;
	l->n = 0;
	assert_wse_ok(wse_store_queue_take(f->s, 1059, 60, 10, collect_item,
	    l));
	assert_int_equal(l->n, 0);
	/* Leases expire: the items come back. */
	assert_wse_ok(wse_store_queue_take(f->s, 1060, 60, 10, collect_item,
	    l));
	assert_int_equal(l->n, 2);
	assert_int_equal(l->it[0].item.id, id2);
	assert_int_equal(l->it[1].item.id, id0);

	/* Done: gone.  Defer: later, counted, with the reason. */
	assert_wse_ok(wse_store_queue_done(f->s, id2));
	assert_wse_status(wse_store_queue_done(f->s, id2), WSE_ERR_NOT_FOUND);
	assert_wse_ok(wse_store_queue_defer(f->s, id0, 2000,
	    "connect:\r\nrefused"));
	assert_wse_ok(wse_store_queue_defer(f->s, id1, 3000, NULL));
	assert_wse_status(wse_store_queue_defer(f->s, id2, 3000, "x"),
	    WSE_ERR_NOT_FOUND);
	l->n = 0;
	assert_wse_ok(wse_store_queue_list(f->s, collect_item, l));
	assert_int_equal(l->n, 2);
	assert_int_equal(l->it[0].item.id, id0);
	assert_int_equal(l->it[0].item.attempts, 1);
	assert_int_equal(l->it[0].item.next_attempt, 2000);
	assert_string_equal(l->it[0].item.last_error, "connect:  refused");
	assert_int_equal(l->it[1].item.attempts, 1);
	assert_string_equal(l->it[1].item.last_error, "");
	/* A deferred item is released: due again at its next attempt. */
	l->n = 0;
	assert_wse_ok(wse_store_queue_take(f->s, 1999, 60, 10, collect_item,
	    l));
	assert_int_equal(l->n, 0);
	assert_wse_ok(wse_store_queue_take(f->s, 2000, 60, 10, collect_item,
	    l));
	assert_int_equal(l->n, 1);
	assert_int_equal(l->it[0].item.id, id0);
	{
		char longerr[600];

		memset(longerr, 'e', sizeof(longerr));
		memcpy(longerr + 254, "\xc3\xa9", 2);	/* cut in two */
		longerr[sizeof(longerr) - 1] = '\0';
		assert_wse_ok(wse_store_queue_defer(f->s, id0, 2500,
		    longerr));
	}
	/* Flush one, then all: due now (leases still hold). */
	assert_wse_ok(wse_store_queue_flush(f->s, id1, 2100));
	assert_wse_status(wse_store_queue_flush(f->s, 99999, 2100),
	    WSE_ERR_NOT_FOUND);
	l->n = 0;
	assert_wse_ok(wse_store_queue_take(f->s, 2100, 60, 10, collect_item,
	    l));
	assert_int_equal(l->n, 1);
	assert_int_equal(l->it[0].item.id, id1);
	assert_int_equal(l->it[0].item.next_attempt, 2100);
	assert_wse_ok(wse_store_queue_flush(f->s, 0, 2101));
	l->n = 0;
	assert_wse_ok(wse_store_queue_take(f->s, 2101, 60, 10, collect_item,
	    l));
	assert_int_equal(l->n, 1);	/* id1 is still leased */
	assert_int_equal(l->it[0].item.id, id0);
	assert_int_equal(l->it[0].item.attempts, 2);
	assert_int_equal(strlen(l->it[0].item.last_error), 254);
	/* Delete. */
	assert_wse_ok(wse_store_queue_delete(f->s, id0));
	assert_wse_status(wse_store_queue_delete(f->s, id0),
	    WSE_ERR_NOT_FOUND);
	assert_wse_status(wse_store_queue_delete(f->s, 0), WSE_ERR_NOT_FOUND);
	/* A callback's failure is returned; the items stay leased. */
	assert_wse_ok(wse_store_enqueue(f->s, subs, 2, 3000, 3600, status));
	l->n = 0;
	l->stop_at = 1;
	assert_wse_status(wse_store_queue_take(f->s, 3000, 60, 10,
	    collect_item, l), WSE_ERR_TEMPFAIL);
	assert_int_equal(l->n, 1);
	l->n = 0;
	l->stop_at = 0;
	assert_wse_ok(wse_store_queue_take(f->s, 3001, 60, 10, collect_item,
	    l));
	assert_int_equal(l->n, 0);
	assert_wse_ok(wse_store_queue_take(f->s, 3060, 60, 10, collect_item,
	    l));
	assert_int_equal(l->n, 3);	/* id1 and the two new ones */
	assert_wse_status(wse_store_queue_take(f->s, 3060, 0, 10,
	    collect_item, l), WSE_ERR_INVALID);
	assert_wse_ok(wse_store_queue_take(f->s, 9000, 60, 0, collect_item,
	    l));
	/* expire drops leases that have run out. */
	assert_wse_ok(wse_store_expire(f->s, 3200));
	l->n = 0;
	assert_wse_ok(wse_store_queue_take(f->s, 3120, 60, 10, collect_item,
	    l));
	assert_int_equal(l->n, 3);
	free(l);
}

struct doer {
	wse_store *s;
	int done;
};

/* A delivery worker settles each item from inside the callback. */
static wse_status
settle(void *arg, const wse_queue_item *item, const char *const *rcpts,
    size_t nrcpts, const void *payload, size_t len)
{
	struct doer *d = arg;
	wse_status st;

	(void)rcpts; (void)nrcpts; (void)payload; (void)len;
	if (d->done % 2 == 0)
		st = wse_store_queue_done(d->s, item->id);
	else
		st = wse_store_queue_defer(d->s, item->id, item->next_attempt +
		    600, "try later");
	d->done++;
	return st;
}

static void
test_queue_callback_reenters(void **state)
{
	struct fix *f = *state;
	struct sub u[4];
	wse_submission subs[4];
	wse_status status[4];
	struct doer d = { f->s, 0 };
	struct qlist *l = calloc(1, sizeof(*l));
	size_t i;

	assert_non_null(l);
	for (i = 0; i < 4; i++) {
		make_sub(&u[i], "r", NULL, "p", 0);
		subs[i] = u[i].s;
	}
	assert_wse_ok(wse_store_enqueue(f->s, subs, 4, 1000, 3600, status));
	assert_wse_ok(wse_store_queue_take(f->s, 1000, 60, 10, settle, &d));
	assert_int_equal(d.done, 4);
	assert_wse_ok(wse_store_queue_list(f->s, collect_item, l));
	assert_int_equal(l->n, 2);
	assert_int_equal(l->it[0].item.attempts, 1);
	assert_int_equal(l->it[0].item.next_attempt, 1600);
	free(l);
}

/* ---- replay cache ---- */

static void
test_replay_backend(void **state)
{
	struct fix *f = *state;
	wse_replay *r = NULL;

	assert_wse_ok(wse_store_replay(f->s, &r));
	assert_wse_ok(wse_replay_seen(r, "urn:uuid:a", 1000));
	assert_wse_ok(wse_replay_insert(r, "urn:uuid:a", 1300, 1000));
	assert_wse_status(wse_replay_seen(r, "urn:uuid:a", 1001),
	    WSE_ERR_REPLAY);
	assert_wse_status(wse_replay_insert(r, "urn:uuid:a", 1600, 1001),
	    WSE_ERR_REPLAY);
	assert_wse_ok(wse_replay_insert(r, "urn:uuid:b", 2000, 1000));
	assert_wse_status(wse_replay_seen(r, "", 0), WSE_ERR_INVALID);
	assert_wse_status(wse_replay_insert(r, "a\nb", 2000, 0),
	    WSE_ERR_INVALID);
	/* Survives a restart. */
	wse_replay_free(&r);
	wse_store_close(&f->s);
	assert_wse_ok(wse_store_open(store_uri(f->dir), seal_key, &f->s));
	assert_wse_ok(wse_store_replay(f->s, &r));
	assert_wse_status(wse_replay_seen(r, "urn:uuid:a", 1299),
	    WSE_ERR_REPLAY);
	/* At its expiry it is gone and may enter again. */
	assert_wse_ok(wse_replay_seen(r, "urn:uuid:a", 1300));
	assert_wse_ok(wse_replay_insert(r, "urn:uuid:a", 1600, 1300));
	assert_wse_status(wse_replay_seen(r, "urn:uuid:a", 1599),
	    WSE_ERR_REPLAY);
	/* expire drops only what has run out. */
	assert_wse_ok(wse_store_expire(f->s, 1700));
	assert_wse_ok(wse_replay_seen(r, "urn:uuid:a", 0));
	assert_wse_status(wse_replay_seen(r, "urn:uuid:b", 0), WSE_ERR_REPLAY);
	wse_replay_free(&r);
	assert_null(r);
	assert_wse_status(wse_store_replay(NULL, &r), WSE_ERR_INVALID);
}

/*
 * Replay entries stored alone skip the fsync; once the machine has
 * restarted (another boot id than the database last saw), messages
 * created before the reopening are refused, in every later process too,
 * because the last entries may have been lost (SQLite driver).
 */
static void
test_replay_floor(void **state)
{
	struct fix *f = *state;
	const char *path = sqlite_path(f->dir);
	const char *id = "urn:uuid:6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e";
	wse_replay *r = NULL;
	int64_t t0;

	if (path == NULL || access("/proc/sys/kernel/random/boot_id", R_OK) != 0)
		skip();
	/* Same boot: nothing forgotten, entries persist and are refused. */
	assert_wse_ok(wse_store_replay(f->s, &r));
	assert_wse_ok(wse_replay_check(r, id, 0, 1000));
	assert_wse_ok(wse_replay_insert(r, id, INT64_MAX / 2, 1000));
	wse_replay_free(&r);
	wse_store_close(&f->s);
	assert_wse_ok(wse_store_open(store_uri(f->dir), seal_key, &f->s));
	assert_wse_ok(wse_store_replay(f->s, &r));
	assert_wse_status(wse_replay_check(r, id, 1000, 1001), WSE_ERR_REPLAY);
	assert_wse_ok(wse_replay_check(r, "urn:uuid:x", 5, 1001));
	wse_replay_free(&r);
	wse_store_close(&f->s);
	/* The machine "restarted": the database saw another boot. */
	raw_exec(path, "UPDATE meta SET value = "
	    "'00000000-0000-4000-8000-000000000000' WHERE name = 'boot_id'");
	t0 = (int64_t)time(NULL);
	assert_wse_ok(wse_store_open(store_uri(f->dir), seal_key, &f->s));
	assert_wse_ok(wse_store_replay(f->s, &r));
	assert_wse_status(wse_replay_check(r, "urn:uuid:x", t0 - 1, t0 + 5),
	    WSE_ERR_EXPIRED);
	assert_wse_ok(wse_replay_check(r, "urn:uuid:x", t0 + 2, t0 + 5));
	assert_wse_status(wse_replay_check(r, id, t0 + 2, t0 + 5),
	    WSE_ERR_REPLAY);
	wse_replay_free(&r);
	wse_store_close(&f->s);
	/* A later opener in the same boot keeps the floor. */
	assert_wse_ok(wse_store_open(store_uri(f->dir), seal_key, &f->s));
	assert_wse_ok(wse_store_replay(f->s, &r));
	assert_wse_status(wse_replay_check(r, "urn:uuid:x", t0 - 1, t0 + 5),
	    WSE_ERR_EXPIRED);
	assert_true(raw_int(path, "SELECT CAST(value AS INTEGER) FROM meta "
	    "WHERE name = 'replay_floor'") >= t0);
	wse_replay_free(&r);
}

/* A checkpoint from the background moves the log into the database
 * file, while the store goes on working (SQLite driver: file sizes). */
static void
test_checkpoint(void **state)
{
	struct fix *f = *state;
	const char *path = sqlite_path(f->dir);
	char id[64], wal[4200];
	struct stat before, after, w;
	wse_replay *r = NULL;
	int i;

	assert_wse_ok(wse_store_checkpoint(f->s));
	assert_wse_status(wse_store_checkpoint(NULL), WSE_ERR_INVALID);
	if (path == NULL)
		skip();
	assert_int_equal(stat(path, &before), 0);
	assert_wse_ok(wse_store_replay(f->s, &r));
	for (i = 0; i < 3000; i++) {
		(void)snprintf(id, sizeof(id), "urn:uuid:ck-%d", i);
		assert_wse_ok(wse_replay_insert(r, id, 5000, 1000));
	}
	(void)snprintf(wal, sizeof(wal), "%s-wal", path);
	assert_int_equal(stat(wal, &w), 0);
	assert_true(w.st_size > 0);
	assert_wse_ok(wse_store_checkpoint(f->s));
	assert_int_equal(stat(path, &after), 0);
	assert_true(after.st_size > before.st_size);
	/* Everything is still there and the store still writes. */
	assert_wse_status(wse_replay_check(r, "urn:uuid:ck-2999", 1000, 1001),
	    WSE_ERR_REPLAY);
	assert_wse_ok(wse_replay_insert(r, "urn:uuid:ck-last", 5000, 1000));
	assert_wse_ok(wse_store_checkpoint(f->s));
	wse_replay_free(&r);
}

/* De-dup records are kept long past any retry, then expire. */
static void
test_expire_dedup(void **state)
{
	struct fix *f = *state;
	const char *boxes[] = { "alice@a.test" };
	const int64_t day = 86400;

	add_user(f->s, "alice@a.test", 1);
	assert_wse_ok(deliver(f->s, "urn:uuid:e", boxes, 1, NULL, 1000));
	assert_wse_ok(wse_store_expire(f->s, 1000 + 6 * day));
	assert_wse_status(deliver(f->s, "urn:uuid:e", boxes, 1, NULL,
	    1000 + 6 * day), WSE_ERR_EXISTS);
	/* Still there for a sender's last retry: after the longest queue
	 * lifetime and a lease. */
	assert_wse_ok(wse_store_expire(f->s, 1000 + WSE_QUEUE_LIFETIME_MAX +
	    day));
	assert_wse_status(deliver(f->s, "urn:uuid:e", boxes, 1, NULL,
	    1000 + WSE_QUEUE_LIFETIME_MAX + day), WSE_ERR_EXISTS);
	assert_wse_ok(wse_store_expire(f->s, 1000 + 63 * day));
	assert_wse_ok(deliver(f->s, "urn:uuid:e", boxes, 1, NULL,
	    1000 + 63 * day));
	assert_int_equal(count_total(f->s, "alice@a.test"), 2);
}

/* ---- concurrency ---- */

#define NTHREADS 4
#define PER_THREAD 15

struct worker {
	wse_store *s;
	int n;
	int ok_deliver, exists, ok_replay, replays, failures;
	int ok_enqueue;
};

static void *
work(void *arg)
{
	struct worker *w = arg;
	const char *boxes[] = { "alice@a.test", "bob@a.test" };
	wse_replay *r = NULL;
	char oid[64], rid[64];
	int i;

	if (wse_store_replay(w->s, &r) != WSE_OK) {
		w->failures++;
		return NULL;
	}
	for (i = 0; i < PER_THREAD; i++) {
		struct sub u;
		wse_status st, sst;

		/* Own message. */
		snprintf(oid, sizeof(oid), "urn:uuid:own-%d-%d", w->n, i);
		snprintf(rid, sizeof(rid), "urn:uuid:ownr-%d-%d", w->n, i);
		st = deliver(w->s, oid, boxes, 2, rid, 1000);
		if (st == WSE_OK)
			w->ok_deliver++;
		else
			w->failures++;
		/* The same delivery raced by every thread. */
		snprintf(oid, sizeof(oid), "urn:uuid:race-%d", i);
		st = deliver(w->s, oid, boxes, 1, NULL, 1000);
		if (st == WSE_OK)
			w->ok_deliver++;
		else if (st == WSE_ERR_EXISTS)
			w->exists++;
		else
			w->failures++;
		/* One submission; the replay id raced by every thread. */
		snprintf(oid, sizeof(oid), "m-%d-%d", w->n, i);
		snprintf(rid, sizeof(rid), "urn:uuid:sub-%d", i);
		make_sub(&u, oid, rid, "payload", 0);
		st = wse_store_enqueue(w->s, &u.s, 1, 1000, 3600, &sst);
		if (st != WSE_OK)
			w->failures++;
		else if (sst == WSE_OK)
			w->ok_enqueue++;
		else if (sst == WSE_ERR_REPLAY)
			w->replays++;
		else
			w->failures++;
		/* The replay cache alone. */
		snprintf(rid, sizeof(rid), "urn:uuid:cache-%d", i);
		st = wse_replay_insert(r, rid, 5000, 1000);
		if (st == WSE_OK)
			w->ok_replay++;
		else if (st == WSE_ERR_REPLAY)
			w->replays++;
		else
			w->failures++;
	}
	wse_replay_free(&r);
	return NULL;
}

/* Threads sharing one store object, or each its own object on one
 * database (as several server processes would). */
static void
run_workers(struct fix *f, int own_objects)
{
	struct worker w[NTHREADS];
	pthread_t t[NTHREADS];
	struct qlist *l = calloc(1, sizeof(*l));
	int i, ok_deliver = 0, exists = 0, ok_replay = 0, replays = 0;
	int ok_enqueue = 0;

	assert_non_null(l);
	add_user(f->s, "alice@a.test", 1);
	add_user(f->s, "bob@a.test", 2);
	memset(w, 0, sizeof(w));
	for (i = 0; i < NTHREADS; i++) {
		w[i].n = i;
		w[i].s = f->s;
		if (own_objects)
			assert_wse_ok(wse_store_open(store_uri(f->dir),
			    seal_key, &w[i].s));
	}
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
	for (i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < NTHREADS; i++) {
		assert_int_equal(w[i].failures, 0);
		ok_deliver += w[i].ok_deliver;
		exists += w[i].exists;
		ok_replay += w[i].ok_replay;
		replays += w[i].replays;
		ok_enqueue += w[i].ok_enqueue;
		if (own_objects)
			wse_store_close(&w[i].s);
	}
	/* Nothing lost, nothing twice. */
	assert_int_equal(ok_deliver, NTHREADS * PER_THREAD + PER_THREAD);
	assert_int_equal(exists, (NTHREADS - 1) * PER_THREAD);
	assert_int_equal(ok_enqueue, PER_THREAD);
	assert_int_equal(ok_replay, PER_THREAD);
	assert_int_equal(replays, 2 * (NTHREADS - 1) * PER_THREAD);
	assert_int_equal(count_total(f->s, "alice@a.test"),
	    NTHREADS * PER_THREAD + PER_THREAD);
	assert_int_equal(count_total(f->s, "bob@a.test"),
	    NTHREADS * PER_THREAD);
	assert_wse_ok(wse_store_queue_list(f->s, collect_item, l));
	assert_int_equal(l->n, PER_THREAD);
	/* Two workers taking at once never share an item. */
	free(l);
}

static void
test_threads_one_object(void **state)
{
	run_workers(*state, 0);
}

static void
test_threads_own_objects(void **state)
{
	run_workers(*state, 1);
}

struct taker {
	wse_store *s;
	struct qlist *l;
	wse_status st;
};

static void *
take_all(void *arg)
{
	struct taker *t = arg;
	size_t before;

	do {
		before = t->l->n;
		t->st = wse_store_queue_take(t->s, 1000, 600, 3,
		    collect_item, t->l);
	} while (t->st == WSE_OK && t->l->n > before);
	return NULL;
}

/* Two store objects on one database: one replay cache, one de-dup, and
 * leases that keep two workers off each other's items. */
static void
test_two_objects_share(void **state)
{
	struct fix *f = *state;
	const char *boxes[] = { "alice@a.test" };
	struct taker tk[2];
	pthread_t t[2];
	wse_store *s2 = NULL;
	wse_replay *r1 = NULL, *r2 = NULL;
	struct sub u[40];
	wse_submission subs[40];
	wse_status status[40];
	char ids[40][16];
	size_t i, j;

	assert_wse_ok(wse_store_open(store_uri(f->dir), seal_key, &s2));
	add_user(f->s, "alice@a.test", 1);
	assert_wse_ok(wse_store_user_get(s2, "alice@a.test", NULL, NULL));
	assert_wse_ok(wse_store_replay(f->s, &r1));
	assert_wse_ok(wse_store_replay(s2, &r2));
	assert_wse_ok(wse_replay_insert(r1, "urn:uuid:1", 2000, 1000));
	assert_wse_status(wse_replay_seen(r2, "urn:uuid:1", 1000),
	    WSE_ERR_REPLAY);
	assert_wse_status(wse_replay_insert(r2, "urn:uuid:1", 2000, 1000),
	    WSE_ERR_REPLAY);
	assert_wse_status(deliver(s2, "urn:uuid:m", boxes, 1, "urn:uuid:1",
	    1000), WSE_ERR_REPLAY);
	assert_wse_ok(deliver(f->s, "urn:uuid:m", boxes, 1, "urn:uuid:2",
	    1000));
	assert_wse_status(deliver(s2, "urn:uuid:m", boxes, 1, "urn:uuid:3",
	    1000), WSE_ERR_EXISTS);
	assert_wse_status(wse_replay_seen(r2, "urn:uuid:2", 1000),
	    WSE_ERR_REPLAY);
	assert_int_equal(count_total(s2, "alice@a.test"), 1);

	/* Two workers, one on each object, drain 40 items concurrently. */
	for (i = 0; i < 40; i++) {
		snprintf(ids[i], sizeof(ids[i]), "t%zu", i);
		make_sub(&u[i], ids[i], NULL, "p", 0);
		subs[i] = u[i].s;
	}
	assert_wse_ok(wse_store_enqueue(f->s, subs, 40, 1000, 3600, status));
	tk[0].s = f->s;
	tk[1].s = s2;
	for (i = 0; i < 2; i++) {
		assert_non_null(tk[i].l = calloc(1, sizeof(*tk[i].l)));
		assert_int_equal(pthread_create(&t[i], NULL, take_all, &tk[i]),
		    0);
	}
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_wse_ok(tk[0].st);
	assert_wse_ok(tk[1].st);
	assert_int_equal(tk[0].l->n + tk[1].l->n, 40);
	for (i = 0; i < tk[0].l->n; i++)
		for (j = 0; j < tk[1].l->n; j++)
			assert_true(tk[0].l->it[i].item.id !=
			    tk[1].l->it[j].item.id);
	free(tk[0].l);
	free(tk[1].l);
	wse_replay_free(&r1);
	wse_replay_free(&r2);
	wse_store_close(&s2);
}

struct opener {
	const char *uri;
	wse_status st;
	int version;
	char err[1024];
};

static void *
open_close(void *arg)
{
	struct opener *o = arg;
	wse_store *s = NULL;

	o->st = wse_store_open(o->uri, seal_key, &s);
	wse_err_format(o->err, sizeof(o->err));
	o->version = wse_store_schema_version(s);
	wse_store_close(&s);
	return NULL;
}

/* Several processes starting at once on a new database: each creates,
 * migrates or waits, and all agree. */
static void
test_concurrent_open(void **state)
{
	struct fix *f = *state;
	struct opener o[4];
	pthread_t t[4];
	char uri[4200];
	size_t i;

	if (sqlite_path(f->dir) != NULL)
		snprintf(uri, sizeof(uri), "sqlite:%s/fresh.db", f->dir);
	else
		snprintf(uri, sizeof(uri), "%s", store_uri(f->dir));
	for (i = 0; i < 4; i++) {
		o[i].uri = uri;
		assert_int_equal(pthread_create(&t[i], NULL, open_close, &o[i]),
		    0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < 4; i++) {
		if (o[i].st != WSE_OK)
			fail_msg("open %zu: %s", i, o[i].err);
		assert_int_equal(o[i].version,
		    wse_store_schema_version(f->s));
	}
}

/* ---- durability ---- */

/* A child acknowledges a delivery and a submission, then dies without
 * closing anything: both are there when the store is opened again. */
static void
test_durability_after_crash(void **state)
{
	struct fix *f = *state;
	const char *boxes[] = { "alice@a.test" };
	struct qlist *l = calloc(1, sizeof(*l));
	struct listing *ml = calloc(1, sizeof(*ml));
	int status = 0;
	pid_t pid;

	assert_non_null(l);
	assert_non_null(ml);
	add_user(f->s, "alice@a.test", 1);
	wse_store_close(&f->s);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		wse_store *s = NULL;
		struct sub u;
		wse_status sst = WSE_ERR_INTERNAL;

		make_sub(&u, "crash", "urn:uuid:crash", "payload", 0);
		if (wse_store_open(store_uri(f->dir), seal_key, &s) !=
		    WSE_OK ||
		    deliver(s, "urn:uuid:durable", boxes, 1, "urn:uuid:dr",
		    1000) != WSE_OK ||
		    wse_store_enqueue(s, &u.s, 1, 1000, 3600, &sst) !=
		    WSE_OK || sst != WSE_OK)
			_exit(1);
		_exit(0);	/* no close, no checkpoint */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_wse_ok(wse_store_open(store_uri(f->dir), seal_key, &f->s));
	assert_wse_ok(wse_store_list(f->s, "alice@a.test", 0, 10,
	    collect_meta, ml));
	assert_int_equal(ml->n, 1);
	assert_string_equal(ml->m[0].origin_id, "urn:uuid:durable");
	assert_wse_ok(wse_store_queue_list(f->s, collect_item, l));
	assert_int_equal(l->n, 1);
	assert_string_equal(l->it[0].item.message_id, "crash");
	assert_wse_status(deliver(f->s, "urn:uuid:x", boxes, 1,
	    "urn:uuid:dr", 1001), WSE_ERR_REPLAY);
	free(l);
	free(ml);
}

/*
 * Leases, removals of delivered items and replay entries stored alone
 * commit without the fsync where the driver allows it; they still
 * survive the death of the process.
 */
static void
test_lazy_commits_survive_process_death(void **state)
{
	struct fix *f = *state;
	struct qlist *l = calloc(1, sizeof(*l));
	wse_replay *r = NULL;
	int status = 0;
	pid_t pid;

	assert_non_null(l);
	wse_store_close(&f->s);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		wse_store *s = NULL;
		wse_replay *cr = NULL;
		struct qlist *cl = calloc(1, sizeof(*cl));
		struct sub u[3];
		wse_submission subs[3];
		wse_status sst[3];
		int64_t done[2];
		int i;

		for (i = 0; i < 3; i++) {
			make_sub(&u[i], i == 0 ? "m0" : i == 1 ? "m1" : "m2",
			    NULL, "payload", 0);
			subs[i] = u[i].s;
		}
		if (cl == NULL ||
		    wse_store_open(store_uri(f->dir), seal_key, &s) !=
		    WSE_OK ||
		    wse_store_enqueue(s, subs, 3, 1000, 3600, sst) != WSE_OK ||
		    wse_store_queue_take(s, 1000, 300, 10, collect_item, cl) !=
		    WSE_OK || cl->n != 3)
			_exit(1);
		done[0] = cl->it[0].item.id;
		done[1] = cl->it[1].item.id;
		if (wse_store_queue_done_many(s, done, 1) != WSE_OK ||
		    wse_store_queue_done(s, done[1]) != WSE_OK ||
		    wse_store_replay(s, &cr) != WSE_OK ||
		    wse_replay_insert(cr, "urn:uuid:lazy", 5000, 1000) !=
		    WSE_OK)
			_exit(1);
		_exit(0);	/* no close, no checkpoint */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_wse_ok(wse_store_open(store_uri(f->dir), seal_key, &f->s));
	/* Two removed; the third still leased until 1300. */
	assert_wse_ok(wse_store_queue_list(f->s, collect_item, l));
	assert_int_equal(l->n, 1);
	assert_string_equal(l->it[0].item.message_id, "m2");
	l->n = 0;
	assert_wse_ok(wse_store_queue_take(f->s, 1299, 300, 10, collect_item,
	    l));
	assert_int_equal(l->n, 0);
	assert_wse_ok(wse_store_queue_take(f->s, 1300, 300, 10, collect_item,
	    l));
	assert_int_equal(l->n, 1);
	assert_wse_ok(wse_store_replay(f->s, &r));
	assert_wse_status(wse_replay_seen(r, "urn:uuid:lazy", 1000),
	    WSE_ERR_REPLAY);
	wse_replay_free(&r);
	free(l);
}

/* Disk full (here: the file size limit) is a temporary failure and
 * nothing of the operation is kept. */
static void
test_disk_full_tempfail(void **state)
{
	struct fix *f = *state;
	const char *boxes[] = { "alice@a.test" };
	int status = 0;
	pid_t pid;

	if (sqlite_path(f->dir) == NULL)
		skip();
	add_user(f->s, "alice@a.test", 1);
	wse_store_close(&f->s);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		static uint8_t big[1 << 20];
		struct rlimit rl = { 256 * 1024, 256 * 1024 };
		wse_store *s = NULL;
		wse_msg_meta m;
		wse_status st;

		signal(SIGXFSZ, SIG_IGN);
		memset(&m, 0, sizeof(m));
		memset(big, 'x', sizeof(big));
		if (wse_store_open(store_uri(f->dir), seal_key, &s) != WSE_OK)
			_exit(1);
		if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
			_exit(2);
		st = wse_store_deliver(s, "b.test", "urn:uuid:big", boxes, 1,
		    &m, big, sizeof(big), "urn:uuid:bigr", 2000, 1000);
		_exit(st == WSE_ERR_TEMPFAIL ? 0 : 10 + (int)st);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_wse_ok(wse_store_open(store_uri(f->dir), seal_key, &f->s));
	assert_int_equal(count_total(f->s, "alice@a.test"), 0);
	/* Not acknowledged, so not remembered: the retry goes through. */
	assert_wse_ok(deliver(f->s, "urn:uuid:big", boxes, 1, "urn:uuid:bigr",
	    1001));
}

/* ---- reads beside writes ---- */

/* Often enough to use every connection a driver may read on. */
#define READ_ROUNDS 12

static void
check_key(wse_store *s, const char *name, uint8_t seed, uint32_t iterations)
{
	uint8_t salt[WSE_SALT_LEN], key[WSE_DERIVED_KEY_LEN];
	uint8_t got[WSE_DERIVED_KEY_LEN];
	wse_user_rec rec;

	make_salt(salt, seed);
	make_key(key, seed);
	assert_wse_ok(wse_store_user_get(s, name, &rec, got));
	assert_memory_equal(rec.salt, salt, WSE_SALT_LEN);
	assert_int_equal(rec.iterations, iterations);
	assert_memory_equal(got, key, sizeof(got));
}

/* A read sees every write committed before it began. */
static void
test_read_after_write(void **state)
{
	struct fix *f = *state;
	const char *boxes[] = { "alice@a.test" };
	uint8_t salt[WSE_SALT_LEN], key[WSE_DERIVED_KEY_LEN];
	wse_replay *r = NULL;
	wse_msg_meta m;
	struct sub u;
	wse_status sst;
	char id[64];
	int i;

	assert_wse_ok(wse_store_replay(f->s, &r));
	for (i = 0; i < READ_ROUNDS; i++) {
		snprintf(id, sizeof(id), "urn:uuid:raw-%d", i);
		assert_wse_ok(wse_replay_seen(r, id, 1000));
		assert_wse_ok(wse_replay_insert(r, id, 5000, 1000));
		assert_wse_status(wse_replay_seen(r, id, 1000),
		    WSE_ERR_REPLAY);
		snprintf(id, sizeof(id), "urn:uuid:raw-sub-%d", i);
		assert_wse_ok(wse_replay_seen(r, id, 1000));
		make_sub(&u, "m", id, "payload", 0);
		assert_wse_ok(wse_store_enqueue(f->s, &u.s, 1, 1000, 3600,
		    &sst));
		assert_wse_ok(sst);
		assert_wse_status(wse_replay_seen(r, id, 1000),
		    WSE_ERR_REPLAY);
	}
	for (i = 0; i < READ_ROUNDS; i++) {
		assert_wse_status(wse_store_user_get(f->s, "alice@a.test",
		    NULL, NULL), WSE_ERR_NOT_FOUND);
		add_user(f->s, "alice@a.test", (uint8_t)i);
		check_key(f->s, "alice@a.test", (uint8_t)i, 600000);
		make_salt(salt, (uint8_t)(i + 100));
		make_key(key, (uint8_t)(i + 100));
		assert_wse_ok(wse_store_user_set_key(f->s, "alice@a.test",
		    salt, 700000 + i, key));
		check_key(f->s, "alice@a.test", (uint8_t)(i + 100),
		    700000 + i);
		snprintf(id, sizeof(id), "urn:uuid:raw-msg-%d", i);
		assert_wse_ok(deliver(f->s, id, boxes, 1, NULL, 1000));
		assert_int_equal(count_total(f->s, "alice@a.test"), 1);
		assert_wse_ok(wse_store_user_del(f->s, "alice@a.test"));
		assert_wse_status(wse_store_user_get(f->s, "alice@a.test",
		    NULL, NULL), WSE_ERR_NOT_FOUND);
		assert_int_equal(count_total(f->s, "alice@a.test"), 0);
		assert_wse_status(wse_store_fetch(f->s, "alice@a.test", 1, &m,
		    NULL), WSE_ERR_NOT_FOUND);
	}
	wse_replay_free(&r);
}

struct blocked_writer {
	wse_store *s;
	int started;
	wse_status st;
};

static void *
add_late_user(void *arg)
{
	struct blocked_writer *b = arg;
	uint8_t salt[WSE_SALT_LEN], key[WSE_DERIVED_KEY_LEN];

	make_salt(salt, 9);
	make_key(key, 9);
	__atomic_store_n(&b->started, 1, __ATOMIC_SEQ_CST);
	b->st = wse_store_user_add(b->s, "late@a.test", salt, 600000, key, 1);
	return NULL;
}

/*
 * While a write of the store waits for the database (another process
 * holds the write lock), reads go on at once and see what was committed
 * (SQLite driver: the reads do not take the writer's lock).
 */
static void
test_reads_beside_writer(void **state)
{
	struct fix *f = *state;
	const char *path = sqlite_path(f->dir);
	struct locker k = { path, 0 };
	struct blocked_writer b = { f->s, 0, WSE_ERR_INTERNAL };
	wse_replay *r = NULL;
	pthread_t t, w;
	double t0;
	int i;

	if (path == NULL)
		skip();
	add_user(f->s, "alice@a.test", 1);
	assert_wse_ok(wse_store_replay(f->s, &r));
	assert_wse_ok(wse_replay_insert(r, "urn:uuid:beside", 5000, 1000));
	assert_int_equal(pthread_create(&t, NULL, hold_write_lock, &k), 0);
	while (__atomic_load_n(&k.ms, __ATOMIC_SEQ_CST) == 0)
		usleep(1000);
	assert_int_equal(pthread_create(&w, NULL, add_late_user, &b), 0);
	while (__atomic_load_n(&b.started, __ATOMIC_SEQ_CST) == 0)
		usleep(1000);
	usleep(30 * 1000);	/* the writer is in its busy wait now */
	t0 = testutil_now_ms();
	for (i = 0; i < READ_ROUNDS; i++) {
		check_key(f->s, "alice@a.test", 1, 600000);
		assert_wse_status(wse_replay_seen(r, "urn:uuid:beside", 1000),
		    WSE_ERR_REPLAY);
		assert_wse_ok(wse_replay_seen(r, "urn:uuid:other", 1000));
		assert_wse_status(wse_store_user_get(f->s, "late@a.test",
		    NULL, NULL), WSE_ERR_NOT_FOUND);
		assert_int_equal(count_total(f->s, "alice@a.test"), 0);
	}
	assert_true(testutil_now_ms() - t0 < 150);
	pthread_join(w, NULL);
	pthread_join(t, NULL);
	assert_wse_ok(b.st);
	check_key(f->s, "late@a.test", 9, 600000);
	wse_replay_free(&r);
}

#define READERS 8
#define WRITES 120

struct rw {
	wse_store *s;
	int committed;		/* submissions 0 .. committed-1 are stored */
	int stop;
	int failures;
	long reads;
};

/* Enqueue WRITES submissions with replay ids, each followed by a user,
 * and change alice's key back and forth. */
static void *
rw_writer(void *arg)
{
	struct rw *x = arg;
	uint8_t salt[WSE_SALT_LEN], key[WSE_DERIVED_KEY_LEN];
	char oid[64], rid[64], name[64];
	struct sub u;
	wse_status st, sst;
	int i;

	for (i = 0; i < WRITES; i++) {
		snprintf(oid, sizeof(oid), "m-%d", i);
		snprintf(rid, sizeof(rid), "urn:uuid:rw-%d", i);
		make_sub(&u, oid, rid, "payload", 0);
		st = wse_store_enqueue(x->s, &u.s, 1, 1000, 3600, &sst);
		snprintf(name, sizeof(name), "u%d@a.test", i);
		make_salt(salt, (uint8_t)i);
		make_key(key, (uint8_t)i);
		if (st != WSE_OK || sst != WSE_OK ||
		    wse_store_user_add(x->s, name, salt, 600000, key, 1) !=
		    WSE_OK) {
			__atomic_add_fetch(&x->failures, 1, __ATOMIC_SEQ_CST);
			break;
		}
		__atomic_store_n(&x->committed, i + 1, __ATOMIC_SEQ_CST);
		make_salt(salt, (uint8_t)(200 + i % 2));
		make_key(key, (uint8_t)(200 + i % 2));
		if (wse_store_user_set_key(x->s, "alice@a.test", salt, 600000,
		    key) != WSE_OK)
			__atomic_add_fetch(&x->failures, 1, __ATOMIC_SEQ_CST);
	}
	__atomic_store_n(&x->stop, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Whatever was committed before a read is seen by it; what was not yet
 * written is not. */
static void *
rw_reader(void *arg)
{
	struct rw *x = arg;
	uint8_t got[WSE_DERIVED_KEY_LEN], k0[WSE_DERIVED_KEY_LEN];
	uint8_t k1[WSE_DERIVED_KEY_LEN], key[WSE_DERIVED_KEY_LEN];
	char rid[64], name[64];
	wse_replay *r = NULL;
	wse_user_rec rec;
	unsigned seed = (unsigned)(uintptr_t)&rec;
	int bad = 0, c, j;

	make_key(k0, 200);
	make_key(k1, 201);
	if (wse_store_replay(x->s, &r) != WSE_OK) {
		__atomic_add_fetch(&x->failures, 1, __ATOMIC_SEQ_CST);
		return NULL;
	}
	while (!__atomic_load_n(&x->stop, __ATOMIC_SEQ_CST) && bad == 0) {
		c = __atomic_load_n(&x->committed, __ATOMIC_SEQ_CST);
		j = c > 0 ? (int)(rand_r(&seed) % (unsigned)c) : 0;
		snprintf(rid, sizeof(rid), "urn:uuid:rw-%d", j);
		snprintf(name, sizeof(name), "u%d@a.test", j);
		make_key(key, (uint8_t)j);
		if (c > 0 && (wse_replay_seen(r, rid, 1000) != WSE_ERR_REPLAY ||
		    wse_store_user_get(x->s, name, &rec, got) != WSE_OK ||
		    memcmp(got, key, sizeof(got)) != 0))
			bad++;
		/* Never committed before the writer's count passes it. */
		snprintf(rid, sizeof(rid), "urn:uuid:rw-%d", WRITES + j);
		snprintf(name, sizeof(name), "u%d@a.test", WRITES + j);
		if (wse_replay_seen(r, rid, 1000) != WSE_OK ||
		    wse_store_user_get(x->s, name, NULL, NULL) !=
		    WSE_ERR_NOT_FOUND)
			bad++;
		if (wse_store_user_get(x->s, "alice@a.test", NULL, got) !=
		    WSE_OK || (memcmp(got, k0, sizeof(got)) != 0 &&
		    memcmp(got, k1, sizeof(got)) != 0))
			bad++;
		wse_err_clear();
		__atomic_add_fetch(&x->reads, 1, __ATOMIC_RELAXED);
	}
	wse_replay_free(&r);
	if (bad != 0)
		__atomic_add_fetch(&x->failures, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Many readers beside one writer on one store object: no errors, no
 * stale or missing answers. */
static void
test_readers_beside_writer_threads(void **state)
{
	struct fix *f = *state;
	struct rw x = { f->s, 0, 0, 0, 0 };
	pthread_t rt[READERS], wt;
	struct qlist *l = calloc(1, sizeof(*l));
	int i;

	assert_non_null(l);
	add_user(f->s, "alice@a.test", 1);
	{
		uint8_t salt[WSE_SALT_LEN], key[WSE_DERIVED_KEY_LEN];

		make_salt(salt, 200);
		make_key(key, 200);
		assert_wse_ok(wse_store_user_set_key(f->s, "alice@a.test",
		    salt, 600000, key));
	}
	for (i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&rt[i], NULL, rw_reader, &x),
		    0);
	assert_int_equal(pthread_create(&wt, NULL, rw_writer, &x), 0);
	pthread_join(wt, NULL);
	for (i = 0; i < READERS; i++)
		pthread_join(rt[i], NULL);
	assert_int_equal(x.failures, 0);
	assert_int_equal(x.committed, WRITES);
	assert_true(x.reads > 0);
	assert_wse_ok(wse_store_queue_list(f->s, collect_item, l));
	assert_int_equal(l->n, WRITES);
	free(l);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_open_and_schema),
		T(test_migrate_and_newer_refused),
		T(test_busy_wait),
		T(test_users),
		T(test_key_sealed_at_rest),
		T(test_wrong_seal_key),
		T(test_deliver_several_mailboxes),
		T(test_deliver_no_such_user),
		T(test_deliver_dedup),
		T(test_deliver_many),
		T(test_queue_done_many),
		T(test_deliver_batch_heads),
		T(test_deliver_replay),
		T(test_deliver_invalid),
		T(test_deliver_subject_sanitized),
		T(test_list_count_mark),
		T(test_fetch_delete_other_mailbox),
		T(test_enqueue_group_commit),
		T(test_queue_lease_defer_flush),
		T(test_queue_callback_reenters),
		T(test_replay_backend),
		T(test_replay_floor),
		T(test_checkpoint),
		T(test_expire_dedup),
		T(test_threads_one_object),
		T(test_threads_own_objects),
		T(test_two_objects_share),
		T(test_concurrent_open),
		T(test_durability_after_crash),
		T(test_lazy_commits_survive_process_death),
		T(test_disk_full_tempfail),
		T(test_read_after_write),
		T(test_reads_beside_writer),
		T(test_readers_beside_writer_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
