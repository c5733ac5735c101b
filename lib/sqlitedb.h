/*
 * sqlitedb.h - an SQLite database of our own, opened the one hardened way.
 *
 * The server plugins that keep a database (ondemand, forms, im) open it
 * with wse_sqlite_open; the store's driver (store-sqlite.c) shares the
 * hardening and the WAL switch.  A connection made here:
 *
 *  - refuses a symbolic link as its file (SQLITE_OPEN_NOFOLLOW), and
 *    wse_sqlite_open creates the file itself, mode 0600 and O_NOFOLLOW,
 *    before SQLite opens it (its -wal and -shm files get the same mode
 *    from SQLite);
 *  - runs in defensive mode, does not trust the schema's own functions
 *    and cannot load extensions (wse_sqlite_harden);
 *  - reports extended result codes and waits busy_ms for a lock.
 *
 * Like the rest of the library these functions never print or exit:
 * failures are pushed on the error stack (wse_err), each message
 * starting with the caller's name (`who`) and naming the file.
 */
#ifndef WSE_SQLITEDB_H
#define WSE_SQLITEDB_H

#include <stddef.h>

#include <sqlite3.h>

#include "err.h"

/* Defensive mode, no trust in the schema's own functions, no extensions:
 * what every connection of ours runs with. */
void wse_sqlite_harden(sqlite3 *db);

/*
 * PRAGMA journal_mode = WAL.  Changing the mode needs an exclusive lock,
 * and SQLite answers "busy" at once (without its busy handler) while
 * another connection is opening the same new database: retried for up to
 * busy_ms.  Returns SQLITE_OK with the mode now in force in mode[size]
 * ("" when SQLite named none; the caller checks that it is "wal"), or
 * the result code that failed (sqlite3_errmsg(db) tells why).  No
 * statement is left in progress.
 */
int wse_sqlite_wal(sqlite3 *db, int busy_ms, char *mode, size_t size);

/*
 * Push "<who>: database: <what>: <why>" for the result code rc of a call
 * on db (NULL: none), and return its status: WSE_ERR_TEMPFAIL when the
 * database was busy or locked, full or could not read or write,
 * WSE_ERR_NOMEM without memory, WSE_ERR_IO otherwise.
 */
wse_status wse_sqlite_fail(const char *who, sqlite3 *db, int rc,
    const char *what);

/*
 * A connection to the database file at path, which must exist:
 * sqlite3_open_v2 with SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW |
 * flags (the threading mode: SQLITE_OPEN_FULLMUTEX or _NOMUTEX; with
 * SQLITE_OPEN_READONLY in flags, read-only instead of READWRITE),
 * extended result codes, a busy timeout of busy_ms, hardened.  On
 * failure WSE_ERR_CONFIG "<who>: cannot open <path>: <why>" and *db_r
 * NULL; on success the caller owns *db_r (sqlite3_close).
 */
wse_status wse_sqlite_connect(const char *who, const char *path, int flags,
    int busy_ms, sqlite3 **db_r);

/* What wse_sqlite_open opens, and how. */
struct wse_sqlite_db {
	const char *who;	/* names the caller in messages ("forms") */
	const char *dir;	/* the directory (an absolute path) */
	int dirfd;		/* dir, open (O_DIRECTORY); or -1 */
	const char *name;	/* the file in dir ("forms.db") */
	int flags;		/* SQLITE_OPEN_FULLMUTEX or _NOMUTEX */
	int busy_ms;		/* busy timeout */
	/* Constant SQL run at every opening, after the version check:
	 * the connection's pragmas ("PRAGMA synchronous = FULL;"), and
	 * statements that are harmless to repeat.  NULL: none. */
	const char *setup;
	/* The schema version the caller knows (PRAGMA user_version), and
	 * the constant SQL that takes a database of any older version to
	 * it, setting user_version; run in one transaction (BEGIN
	 * IMMEDIATE) when the file's version is older.  A database of a
	 * newer version is refused. */
	int version;
	const char *schema;
};

/*
 * Open the database d->dir/d->name, creating the file (0600, O_NOFOLLOW)
 * when it does not exist: wse_sqlite_connect, journal_mode = WAL
 * (checked), the schema version read and compared with d->version,
 * d->setup, then d->schema when the file's version is older.  Every
 * failure is WSE_ERR_CONFIG but the database's own errors while setting
 * WAL mode or reading the version ("<who>: database: <what>: <why>",
 * WSE_ERR_TEMPFAIL when busy, full or on an I/O error); then nothing is
 * left open and *db_r is NULL.  On success the caller owns *db_r
 * (sqlite3_close, once its statements are finalized).
 */
wse_status wse_sqlite_open(const struct wse_sqlite_db *d, sqlite3 **db_r);

#endif
