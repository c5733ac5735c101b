/*
 * test_sqlitedb.c - a database of our own opened the hardened way
 * (lib/sqlitedb.c): the file's mode and links, WAL, the schema version
 * and its migration, the errors.
 */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlitedb.h"

/* The one integer sql answers on db. */
static long long
one_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	long long v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* The newest message on the error stack contains needle; cleared. */
static void
err_has(const char *needle)
{
	char buf[1024];

	wse_err_format(buf, sizeof(buf));
	if (strstr(buf, needle) == NULL)
		fail_msg("\"%s\" not in \"%s\"", needle, buf);
	wse_err_clear();
}

static void
test_open_and_migrate(void **state)
{
	char *dir = testutil_tmpdir(), path[4096], link[4096];
	struct wse_sqlite_db d = {
		.who = "t", .dirfd = -1, .name = "t.db",
		.flags = SQLITE_OPEN_FULLMUTEX, .busy_ms = 1000,
		.setup = "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
		.version = 1,
		/* Fails when run twice: proves it runs once. */
		.schema = "CREATE TABLE x (a INTEGER); PRAGMA user_version = 1;",
	};
	struct stat sb;
	sqlite3 *db = NULL;
	int dirfd;

	(void)state;
	assert_non_null(dir);
	d.dir = dir;
	snprintf(path, sizeof(path), "%s/t.db", dir);
	assert_wse_ok(wse_sqlite_open(&d, &db));
	assert_non_null(db);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(one_int(db, "SELECT count(*) FROM pragma_journal_mode"
	    " WHERE journal_mode = 'wal'"), 1);
	assert_int_equal(one_int(db, "PRAGMA user_version"), 1);
	assert_int_equal(one_int(db, "PRAGMA synchronous"), 2);
	assert_int_equal(one_int(db, "PRAGMA foreign_keys"), 1);
	assert_int_equal(one_int(db, "SELECT count(*) FROM x"), 0);
	sqlite3_close(db);

	/* Again, through the directory's descriptor: the schema is not run
	 * again, the setup is. */
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dirfd >= 0);
	d.dirfd = dirfd;
	assert_wse_ok(wse_sqlite_open(&d, &db));
	assert_int_equal(one_int(db, "PRAGMA foreign_keys"), 1);
	sqlite3_close(db);

	/* A newer version is refused, and the file left alone. */
	assert_wse_ok(wse_sqlite_connect("t", path, SQLITE_OPEN_NOMUTEX, 100,
	    &db));
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 7", NULL,
	    NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_wse_status(wse_sqlite_open(&d, &db), WSE_ERR_CONFIG);
	assert_null(db);
	err_has("t.db has schema version 7, this plugin knows up to 1");

	/* A schema that fails is rolled back. */
	d.name = "bad.db";
	d.schema = "CREATE TABLE y (a); PRAGMA user_version = 1; NONSENSE;";
	assert_wse_status(wse_sqlite_open(&d, &db), WSE_ERR_CONFIG);
	assert_null(db);
	err_has("bad.db: cannot set up the database");
	d.version = 0;		/* read it, and create nothing */
	assert_wse_ok(wse_sqlite_open(&d, &db));
	assert_int_equal(one_int(db, "PRAGMA user_version"), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM sqlite_schema"), 0);
	sqlite3_close(db);

	/* A symbolic link is refused, by file name and by connection. */
	snprintf(link, sizeof(link), "%s/link.db", dir);
	assert_int_equal(symlink(path, link), 0);
	d.name = "link.db";
	assert_wse_status(wse_sqlite_open(&d, &db), WSE_ERR_CONFIG);
	assert_null(db);
	err_has("t: cannot create");
	assert_wse_status(wse_sqlite_connect("t", link, SQLITE_OPEN_NOMUTEX,
	    100, &db), WSE_ERR_CONFIG);
	assert_null(db);
	err_has("t: cannot open");

	/* No such directory. */
	d.dirfd = -1;
	d.name = "no/such.db";
	assert_wse_status(wse_sqlite_open(&d, &db), WSE_ERR_CONFIG);
	assert_null(db);
	err_has("cannot create");

	close(dirfd);
	testutil_rmtree(dir);
	free(dir);
}

/* Version 0 (no schema version kept): the setup alone makes the tables,
 * at every opening. */
static void
test_setup_only(void **state)
{
	char *dir = testutil_tmpdir();
	const struct wse_sqlite_db d = {
		.who = "t", .dirfd = -1, .name = "s.db",
		.flags = SQLITE_OPEN_NOMUTEX, .busy_ms = 1000,
		.setup = "PRAGMA synchronous = NORMAL;"
		    "CREATE TABLE IF NOT EXISTS s (a INTEGER);",
		.dir = dir,
	};
	sqlite3 *db = NULL;
	char mode[16];
	int i;

	(void)state;
	assert_non_null(dir);
	for (i = 0; i < 2; i++) {
		assert_wse_ok(wse_sqlite_open(&d, &db));
		assert_int_equal(one_int(db, "PRAGMA synchronous"), 1);
		assert_int_equal(one_int(db, "SELECT count(*) FROM s"), 0);
		assert_int_equal(one_int(db, "PRAGMA user_version"), 0);
		assert_int_equal(wse_sqlite_wal(db, 100, mode, sizeof(mode)),
		    SQLITE_OK);
		assert_string_equal(mode, "wal");
		/* Defensive: the schema cannot be written to. */
		assert_int_not_equal(sqlite3_exec(db,
		    "PRAGMA writable_schema = ON; DELETE FROM sqlite_schema",
		    NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(db);
	}
	testutil_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_and_migrate),
		cmocka_unit_test(test_setup_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
