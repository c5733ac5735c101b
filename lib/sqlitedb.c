/*
 * sqlitedb.c - an SQLite database of our own, opened the one hardened
 * way (sqlitedb.h).
 */
#include "sqlitedb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void
wse_sqlite_harden(sqlite3 *db)
{
	(void)sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	(void)sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	(void)sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0,
	    NULL);
}

int
wse_sqlite_wal(sqlite3 *db, int busy_ms, char *mode, size_t size)
{
	const struct timespec pause = { 0, 10 * 1000 * 1000 };
	sqlite3_stmt *st = NULL;
	const unsigned char *m;
	int rc, tries;

	mode[0] = '\0';
	for (tries = 0;; tries++) {
		if ((rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL",
		    -1, &st, NULL)) == SQLITE_OK)
			rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			break;
		/* The error stays with the connection once finalized. */
		sqlite3_finalize(st);
		st = NULL;
		if (((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) !=
		    SQLITE_LOCKED) || tries >= busy_ms / 10)
			return rc;
		(void)nanosleep(&pause, NULL);
	}
	if ((m = sqlite3_column_text(st, 0)) != NULL)
		(void)snprintf(mode, size, "%s", (const char *)m);
	sqlite3_finalize(st);	/* no statement may stay in progress */
	return SQLITE_OK;
}

wse_status
wse_sqlite_connect(const char *who, const char *path, int flags, int busy_ms,
    sqlite3 **db_r)
{
	sqlite3 *db = NULL;
	wse_status st;
	int rc;

	*db_r = NULL;
	if ((flags & SQLITE_OPEN_READONLY) == 0)
		flags |= SQLITE_OPEN_READWRITE;
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_NOFOLLOW | flags, NULL);
	if (rc != SQLITE_OK) {
		st = wse_err(WSE_ERR_CONFIG, "%s: cannot open %s: %s", who,
		    path, db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		(void)sqlite3_close(db);
		return st;
	}
	(void)sqlite3_extended_result_codes(db, 1);
	(void)sqlite3_busy_timeout(db, busy_ms);
	wse_sqlite_harden(db);
	*db_r = db;
	return WSE_OK;
}

wse_status
wse_sqlite_fail(const char *who, sqlite3 *db, int rc, const char *what)
{
	wse_status st;

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_FULL:
	case SQLITE_IOERR:
		st = WSE_ERR_TEMPFAIL;
		break;
	case SQLITE_NOMEM:
		st = WSE_ERR_NOMEM;
		break;
	default:
		st = WSE_ERR_IO;
		break;
	}
	return wse_err(st, "%s: database: %s: %s", who, what,
	    db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

/* PRAGMA user_version. */
static wse_status
read_version(const char *who, sqlite3 *db, int *v_r)
{
	sqlite3_stmt *s = NULL;
	wse_status st = WSE_OK;
	int rc;

	if ((rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s,
	    NULL)) != SQLITE_OK || (rc = sqlite3_step(s)) != SQLITE_ROW)
		st = wse_sqlite_fail(who, db, rc, "cannot read the schema version");
	else
		*v_r = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return st;
}

/* Constant SQL only: the pragmas and the schema. */
static wse_status
setup(const struct wse_sqlite_db *d, sqlite3 *db, const char *path, int v)
{
	char *msg = NULL;
	wse_status st;
	int rc = SQLITE_OK;

	if (d->setup != NULL)
		rc = sqlite3_exec(db, d->setup, NULL, NULL, &msg);
	if (rc == SQLITE_OK && v < d->version &&
	    (rc = sqlite3_exec(db, "BEGIN IMMEDIATE;", NULL, NULL, &msg)) ==
	    SQLITE_OK &&
	    (rc = sqlite3_exec(db, d->schema, NULL, NULL, &msg)) == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT;", NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		return WSE_OK;
	st = wse_err(WSE_ERR_CONFIG, "%s: %s: cannot set up the database: %s",
	    d->who, path, msg != NULL ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return st;
}

wse_status
wse_sqlite_open(const struct wse_sqlite_db *d, sqlite3 **db_r)
{
	char *path = NULL, mode[16];
	sqlite3 *db = NULL;
	wse_status st;
	int fd, rc, v = 0;

	*db_r = NULL;
	if (d->version > 0 && d->schema == NULL)
		return wse_err(WSE_ERR_INTERNAL, "%s: no schema", d->who);
	if (asprintf(&path, "%s/%s", d->dir, d->name) == -1)
		return wse_err(WSE_ERR_NOMEM, "%s: out of memory", d->who);
	/* Create the file ourselves, private, before SQLite does. */
	fd = d->dirfd >= 0 ? openat(d->dirfd, d->name, O_RDWR | O_CREAT |
	    O_CLOEXEC | O_NOFOLLOW, 0600) : open(path, O_RDWR | O_CREAT |
	    O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1) {
		st = wse_err(WSE_ERR_CONFIG, "%s: cannot create %s: %s",
		    d->who, path, strerror(errno));
		goto out;
	}
	close(fd);
	if ((st = wse_sqlite_connect(d->who, path, d->flags, d->busy_ms,
	    &db)) != WSE_OK)
		goto out;
	if ((rc = wse_sqlite_wal(db, d->busy_ms, mode, sizeof(mode))) !=
	    SQLITE_OK) {
		st = wse_sqlite_fail(d->who, db, rc, "cannot set WAL mode");
		goto out;
	}
	if (strcmp(mode, "wal") != 0) {
		st = wse_err(WSE_ERR_CONFIG, "%s: %s: journal mode is not WAL",
		    d->who, path);
		goto out;
	}
	if ((st = read_version(d->who, db, &v)) != WSE_OK)
		goto out;
	if (v < 0 || v > d->version) {
		st = wse_err(WSE_ERR_CONFIG, "%s: %s has schema version %d, "
		    "this plugin knows up to %d", d->who, path, v, d->version);
		goto out;
	}
	if ((st = setup(d, db, path, v)) != WSE_OK)
		goto out;
	*db_r = db;
	db = NULL;
out:
	(void)sqlite3_close(db);	/* rolls back what was begun */
	free(path);
	return st;
}
