/*
 * ondemand.c - on-demand attachments and federated tokens (the paper's
 * section 3, Figure 2; docs/protocol.md "On-demand attachments and
 * federated tokens"; docs/plugins.md "ondemand").
 *
 *   plugin = /usr/lib/wsemail/plugins/ondemand.so
 *            dir=/var/lib/wsemail/ondemand
 *            ca_cert=/etc/wsemail/domain-ca.pem
 *            ca_key=/etc/wsemail/domain-ca.key
 *            [token_lifetime=3600] [attachment_lifetime=2592000]
 *            [max_size=2147483648] [upload_lifetime=86400]
 *
 * (one line).  Operations:
 *   RequestToken      (password)  a token certificate for the caller's
 *                                 mailbox, issued by the domain CA
 *   UploadAttachment  (password)  chunked, resumable upload of a file
 *   AttachmentLog     (password)  the sender's view of an attachment's
 *                                 recipients and fetches
 *   RevokeAttachment  (password)  the sender withdraws an attachment
 *   FetchAttachment   (token, stream)  a recipient of ANY domain fetches
 *                                 a byte range
 * and the submit hook, which turns <m:OnDemand upload="HANDLE"/> entries
 * of a user's message into signed references <m:OnDemand server= ref=
 * name= type= size= sha256=/>.
 *
 * Storage, all under dir (created 0700): ondemand.db (SQLite, WAL,
 * synchronous=FULL; tables upload, attachment, recipient, fetch),
 * uploads/HANDLE (an upload in progress or finished, not yet sent) and
 * attachments/REF (a sent attachment's bytes); files are 0600.  An
 * upload's file becomes the attachment's with link() + commit + unlink(),
 * so a crash at any point leaves either the upload or the attachment; the
 * files no row accounts for are removed at start-up.
 *
 * SECURITY: handles and references are 256 random bits (base64url); every
 * handle or reference taken from a request is checked against that
 * alphabet before it names a file, and files are opened relative to the
 * plugin's directories with O_NOFOLLOW.  A handle is usable only by the
 * user who made it (any other user is told "not found").  Attachment
 * names are refused unless wse_attach_name_ok (UTF-8 without '/',
 * control or bidi characters, not starting with '.'), and never name a
 * file here.  FetchAttachment answers the same
 * NotAuthorized for an unknown, revoked or expired reference and for a
 * caller who is not a recipient, so a token holder learns nothing about
 * references that are not his; the range check comes after that.  The
 * streamed bytes are not signed: the recipient checks them against the
 * SHA-256 in the sender's server's signed message, and this plugin
 * checks the digest of every upload before it may be sent.  The domain
 * CA's private key is held in memory for the server's lifetime (it signs
 * tokens); tokens are issued only for the authenticated user's own
 * mailbox and only for EC P-256 or RSA >= 2048 public keys.  Disk use
 * is bounded per upload (max_size), per user (UPLOADS_MAX unsent uploads)
 * and in time (upload_lifetime, attachment_lifetime).
 *
 * Threads: every hook may run concurrently.  One mutex guards the
 * database connection and the set of uploads being written; it is never
 * held while a chunk is written or an upload is hashed (an upload being
 * written is marked busy instead, and a second writer is told TempFail).
 * Expiry runs at most once a minute, lazily from the hooks (and once in
 * init).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "pki.h"
#include "plugin.h"
#include "sqlitedb.h"
#include "text.h"
#include "xml.h"

#define TOKEN_LEN 43			/* 256 bits, base64url, no '=' */
#define CHUNK_MAX (4u * 1024 * 1024)	/* decoded Data per call */
#define DATA_TEXT_MAX (8u * 1024 * 1024) /* its base64 text (blanks too) */
#define PEM_TEXT_MAX 16384
#define NAME_MAX_LEN WSE_ATTACH_NAME_MAX
#define ID_MAX 128
#define UPLOADS_MAX 64			/* unsent uploads per user */
#define BUSY_MAX 256			/* uploads being written at once */
#define EXPIRY_INTERVAL 60
#define EXPIRY_BATCH 256
#define BUSY_TIMEOUT_MS 5000
#define SCHEMA_VERSION 1
#define HASH_BUF (64 * 1024)

#define DEF_TOKEN_LIFETIME 3600
#define DEF_ATTACHMENT_LIFETIME 2592000
#define DEF_MAX_SIZE 2147483648ULL
#define DEF_UPLOAD_LIFETIME 86400
#define LIFETIME_MAX (10LL * 366 * 86400)
#define SIZE_MAX_CONF (1ULL << 50)

enum {
	Q_BEGIN, Q_COMMIT, Q_ROLLBACK,
	Q_UP_INSERT, Q_UP_GET, Q_UP_COUNT, Q_UP_RECEIVED, Q_UP_USE,
	Q_UP_DELETE, Q_UP_OLD,
	Q_AT_INSERT, Q_AT_GET, Q_RC_INSERT, Q_AT_FETCHABLE, Q_FETCH_LOG,
	Q_AT_BY_MSG, Q_RC_LIST, Q_FETCH_LIST, Q_AT_REVOKE, Q_AT_EXPIRED,
	Q_AT_GONE,
	Q__COUNT
};

static const char *const sql_text[Q__COUNT] = {
	[Q_BEGIN] = "BEGIN IMMEDIATE",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	[Q_UP_INSERT] = "INSERT INTO upload (handle, owner, name, type, size,"
	    " sha256, received, complete, used, created)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0, 0, ?7)",
	[Q_UP_GET] = "SELECT owner, name, type, size, sha256, received,"
	    " complete, used, created FROM upload WHERE handle = ?1",
	[Q_UP_COUNT] = "SELECT count(*) FROM upload"
	    " WHERE owner = ?1 AND used = 0",
	[Q_UP_RECEIVED] = "UPDATE upload SET received = ?2, complete = ?3"
	    " WHERE handle = ?1",
	[Q_UP_USE] = "UPDATE upload SET used = 1 WHERE handle = ?1",
	[Q_UP_DELETE] = "DELETE FROM upload WHERE handle = ?1",
	[Q_UP_OLD] = "SELECT handle FROM upload WHERE created <= ?1"
	    " ORDER BY created LIMIT ?2",
	[Q_AT_INSERT] = "INSERT INTO attachment (ref, msg, owner, name, type,"
	    " size, sha256, created, expires, revoked, gone)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, 0)",
	[Q_AT_GET] = "SELECT gone FROM attachment WHERE ref = ?1",
	[Q_RC_INSERT] = "INSERT OR IGNORE INTO recipient (ref, addr)"
	    " VALUES (?1, ?2)",
	[Q_AT_FETCHABLE] = "SELECT a.size FROM attachment a"
	    " JOIN recipient r ON r.ref = a.ref"
	    " WHERE a.ref = ?1 AND r.addr = ?2 AND a.revoked = 0"
	    " AND a.gone = 0 AND a.expires > ?3",
	[Q_FETCH_LOG] = "INSERT INTO fetch (ref, who, at, off, len)"
	    " VALUES (?1, ?2, ?3, ?4, ?5)",
	[Q_AT_BY_MSG] = "SELECT ref, name, size, sha256, expires, revoked"
	    " FROM attachment WHERE msg = ?1 AND owner = ?2 ORDER BY rowid",
	[Q_RC_LIST] = "SELECT addr FROM recipient WHERE ref = ?1"
	    " ORDER BY rowid",
	[Q_FETCH_LIST] = "SELECT who, at, off, len FROM fetch WHERE ref = ?1"
	    " ORDER BY rowid",
	[Q_AT_REVOKE] = "UPDATE attachment SET revoked = 1, gone = 1"
	    " WHERE ref = ?1",
	[Q_AT_EXPIRED] = "SELECT ref FROM attachment WHERE gone = 0"
	    " AND expires <= ?1 ORDER BY expires LIMIT ?2",
	[Q_AT_GONE] = "UPDATE attachment SET gone = 1 WHERE ref = ?1",
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS upload ("
	" handle TEXT PRIMARY KEY NOT NULL,"
	" owner TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" type TEXT NOT NULL,"
	" size INTEGER NOT NULL,"
	" sha256 TEXT NOT NULL,"
	" received INTEGER NOT NULL,"
	" complete INTEGER NOT NULL,"
	" used INTEGER NOT NULL,"
	" created INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS upload_owner ON upload (owner, used);"
	"CREATE INDEX IF NOT EXISTS upload_created ON upload (created);"
	"CREATE TABLE IF NOT EXISTS attachment ("
	" ref TEXT PRIMARY KEY NOT NULL,"
	" msg TEXT NOT NULL,"
	" owner TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" type TEXT NOT NULL,"
	" size INTEGER NOT NULL,"
	" sha256 TEXT NOT NULL,"
	" created INTEGER NOT NULL,"
	" expires INTEGER NOT NULL,"
	" revoked INTEGER NOT NULL,"
	" gone INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS attachment_msg ON attachment (msg, owner);"
	"CREATE INDEX IF NOT EXISTS attachment_expires ON attachment"
	" (gone, expires);"
	"CREATE TABLE IF NOT EXISTS recipient ("
	" ref TEXT NOT NULL REFERENCES attachment (ref),"
	" addr TEXT NOT NULL,"
	" UNIQUE (ref, addr));"
	"CREATE TABLE IF NOT EXISTS fetch ("
	" ref TEXT NOT NULL REFERENCES attachment (ref),"
	" who TEXT NOT NULL,"
	" at INTEGER NOT NULL,"
	" off INTEGER NOT NULL,"
	" len INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS fetch_ref ON fetch (ref);"
	"PRAGMA user_version = 1;";

struct od {
	const struct wse_plugin_host *host;
	char *dir;
	int dirfd, upfd, atfd;		/* dir, dir/uploads, dir/attachments */
	wse_cert *ca;
	wse_key *ca_key;
	int64_t token_lifetime;
	int64_t attachment_lifetime;
	int64_t upload_lifetime;
	uint64_t max_size;

	pthread_mutex_t lock;		/* db, stmt, busy, last_expiry */
	int lock_ok;
	sqlite3 *db;
	sqlite3_stmt *stmt[Q__COUNT];
	char busy[BUSY_MAX][TOKEN_LEN + 1];
	size_t nbusy;
	int64_t last_expiry;

	pthread_mutex_t pki_lock;	/* the CA key while signing */
	int pki_lock_ok;
};

/* An upload's row. */
struct upload {
	char owner[WSE_ADDR_MAX + 1];
	char name[NAME_MAX_LEN + 1];
	char type[NAME_MAX_LEN + 1];
	uint64_t size;
	char sha256[65];
	uint64_t received;
	int complete;
	int used;
	int64_t created;
};

static const char *const od_ops[] = {
	"RequestToken", "UploadAttachment", "AttachmentLog",
	"RevokeAttachment", "FetchAttachment", NULL
};

static const unsigned od_op_flags[] = {
	WSE_PLUGIN_OP_PASSWORD, WSE_PLUGIN_OP_PASSWORD, WSE_PLUGIN_OP_PASSWORD,
	WSE_PLUGIN_OP_PASSWORD, WSE_PLUGIN_OP_TOKEN | WSE_PLUGIN_OP_STREAM,
};

/* ---- small helpers ---- */

/* 256 random bits as 43 characters of base64url without padding. */
static wse_status
new_token(char out[TOKEN_LEN + 1])
{
	static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t r[33];
	size_t i, o = 0;
	wse_status st;

	if ((st = wse_random(r, 32)) != WSE_OK)
		return st;
	r[32] = 0;
	for (i = 0; i < 33; i += 3) {
		uint32_t v = (uint32_t)r[i] << 16 | (uint32_t)r[i + 1] << 8 |
		    r[i + 2];

		out[o++] = alpha[(v >> 18) & 63];
		out[o++] = alpha[(v >> 12) & 63];
		if (o < TOKEN_LEN)
			out[o++] = alpha[(v >> 6) & 63];
		if (o < TOKEN_LEN)
			out[o++] = alpha[v & 63];
	}
	out[TOKEN_LEN] = '\0';
	wse_memzero(r, sizeof(r));
	return WSE_OK;
}

/* 1 when s has the shape of a handle or reference made here. */
static int
token_valid(const char *s)
{
	size_t i;

	if (s == NULL)
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (i >= TOKEN_LEN || !(isalnum((unsigned char)s[i]) ||
		    s[i] == '-' || s[i] == '_'))
			return 0;
	return i == TOKEN_LEN;
}

/* A decimal number of at most 19 digits (fits int64), nothing else. */
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

/* Media type: 1..255 printable ASCII characters. */
static int
type_valid(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0' || strlen(s) > NAME_MAX_LEN)
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

/* 64 hex digits, lower-cased in place. */
static int
sha_valid(char *s)
{
	size_t i;

	if (s == NULL || strlen(s) != 64)
		return 0;
	for (i = 0; i < 64; i++) {
		if (!isxdigit((unsigned char)s[i]))
			return 0;
		s[i] = (char)tolower((unsigned char)s[i]);
	}
	return 1;
}

static wse_status
text_elem(wse_buf *b, const char *name, const char *text)
{
	wse_status st;

	if ((st = wse_buf_printf(b, "<m:%s>", name)) != WSE_OK ||
	    (st = wse_buf_put_xml_escaped(b, text, strlen(text))) != WSE_OK)
		return st;
	return wse_buf_printf(b, "</m:%s>", name);
}

static wse_status
attr(wse_buf *b, const char *name, const char *value)
{
	wse_status st;

	if ((st = wse_buf_printf(b, " %s=\"", name)) != WSE_OK ||
	    (st = wse_buf_put_xml_escaped(b, value, strlen(value))) != WSE_OK)
		return st;
	return wse_buf_puts(b, "\"");
}

/* ---- request parsing ---- */

/*
 * The request element of r: the one child of the Body named r->op.  Every
 * child of it must be one of the names in allowed (NULL-terminated), at
 * most once each.
 */
static wse_status
request_elem(const struct wse_plugin_request *r, const char *const *allowed,
    xmlNodePtr *req_r)
{
	xmlNodePtr req, c;
	size_t i;

	if (r->body == NULL || wse_xml_only_child(r->body, WSE_NS_WSE, r->op,
	    &req) != WSE_OK)
		return wse_err(WSE_ERR_INVALID, "ondemand: the Body holds no "
		    "one m:%s", r->op);
	for (c = wse_xml_first_elem(req); c != NULL; c = wse_xml_next_elem(c)) {
		for (i = 0; allowed[i] != NULL; i++)
			if (wse_xml_is(c, WSE_NS_WSE, allowed[i]))
				break;
		if (allowed[i] == NULL)
			return wse_err(WSE_ERR_INVALID, "ondemand: m:%s has an "
			    "unexpected element %.64s", r->op,
			    (const char *)c->name);
		if (wse_xml_count_children(req, WSE_NS_WSE, allowed[i]) > 1)
			return wse_err(WSE_ERR_INVALID, "ondemand: m:%s has "
			    "several m:%s", r->op, allowed[i]);
	}
	*req_r = req;
	return WSE_OK;
}

/* The text of the optional child `name` of req (malloc'd, *out NULL when
 * absent); at most max - 1 bytes. */
static wse_status
child_text(const xmlNode *req, const char *name, size_t max, char **out)
{
	xmlNodePtr c;
	wse_status st;

	*out = NULL;
	if (wse_xml_count_children(req, WSE_NS_WSE, name) == 0)
		return WSE_OK;
	if (wse_xml_only_child(req, WSE_NS_WSE, name, &c) != WSE_OK)
		return wse_err(WSE_ERR_INVALID, "ondemand: bad m:%s", name);
	if ((st = wse_xml_text_dup(c, max, out)) != WSE_OK)
		return wse_err(st == WSE_ERR_TOO_LARGE ? st : WSE_ERR_INVALID,
		    "ondemand: bad m:%s", name);
	return WSE_OK;
}

/* An optional numeric child; *present_r tells whether it was there. */
static wse_status
child_u64(const xmlNode *req, const char *name, uint64_t *v_r,
    int *present_r)
{
	char *s;
	wse_status st;
	int ok;

	*present_r = 0;
	if ((st = child_text(req, name, 32, &s)) != WSE_OK)
		return st;
	if (s == NULL)
		return WSE_OK;
	ok = parse_u64(s, v_r);
	free(s);
	if (!ok)
		return wse_err(WSE_ERR_INVALID, "ondemand: m:%s is not a "
		    "number", name);
	*present_r = 1;
	return WSE_OK;
}

/* ---- database ---- */

static wse_status
db_fail(struct od *o, int rc, const char *what)
{
	return wse_sqlite_fail("ondemand", o->db, rc, what);
}

static void
q_done(sqlite3_stmt *s)
{
	(void)sqlite3_reset(s);
	(void)sqlite3_clear_bindings(s);
}

/* Step a statement that returns no row, then reset it. */
static wse_status
q_run(struct od *o, int q, const char *what)
{
	sqlite3_stmt *s = o->stmt[q];
	int rc = sqlite3_step(s);

	q_done(s);
	if (rc != SQLITE_DONE)
		return db_fail(o, rc, what);
	return WSE_OK;
}

static int
bind_text(sqlite3_stmt *s, int i, const char *v)
{
	return sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

/* Copy a text column into buf (WSE_ERR_INTERNAL when it does not fit:
 * the database was not written by this plugin). */
static wse_status
col_copy(sqlite3_stmt *s, int i, char *buf, size_t size)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	int n = sqlite3_column_bytes(s, i);

	if (t == NULL || n < 0 || (size_t)n >= size)
		return wse_err(WSE_ERR_INTERNAL, "ondemand: database value "
		    "out of range");
	memcpy(buf, t, (size_t)n);
	buf[n] = '\0';
	return WSE_OK;
}

static wse_status
db_begin(struct od *o)
{
	return q_run(o, Q_BEGIN, "begin");
}

static wse_status
db_commit(struct od *o)
{
	wse_status st;

	if ((st = q_run(o, Q_COMMIT, "commit")) != WSE_OK)
		(void)q_run(o, Q_ROLLBACK, "rollback");
	return st;
}

static void
db_rollback(struct od *o)
{
	if (sqlite3_get_autocommit(o->db) == 0)
		(void)q_run(o, Q_ROLLBACK, "rollback");
}

/* The upload row of handle: WSE_ERR_NOT_FOUND when there is none. */
static wse_status
upload_get(struct od *o, const char *handle, struct upload *u)
{
	sqlite3_stmt *s = o->stmt[Q_UP_GET];
	wse_status st;
	int rc;

	memset(u, 0, sizeof(*u));
	if (bind_text(s, 1, handle) != SQLITE_OK) {
		q_done(s);
		return db_fail(o, SQLITE_NOMEM, "bind");
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		q_done(s);
		return WSE_ERR_NOT_FOUND;
	}
	if (rc != SQLITE_ROW) {
		st = db_fail(o, rc, "read upload");
		q_done(s);
		return st;
	}
	if ((st = col_copy(s, 0, u->owner, sizeof(u->owner))) == WSE_OK &&
	    (st = col_copy(s, 1, u->name, sizeof(u->name))) == WSE_OK &&
	    (st = col_copy(s, 2, u->type, sizeof(u->type))) == WSE_OK &&
	    (st = col_copy(s, 4, u->sha256, sizeof(u->sha256))) == WSE_OK) {
		u->size = (uint64_t)sqlite3_column_int64(s, 3);
		u->received = (uint64_t)sqlite3_column_int64(s, 5);
		u->complete = sqlite3_column_int(s, 6) != 0;
		u->used = sqlite3_column_int(s, 7) != 0;
		u->created = sqlite3_column_int64(s, 8);
	}
	q_done(s);
	return st;
}

static wse_status
upload_set_received(struct od *o, const char *handle, uint64_t received,
    int complete)
{
	sqlite3_stmt *s = o->stmt[Q_UP_RECEIVED];

	if (bind_text(s, 1, handle) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, (int64_t)received) != SQLITE_OK ||
	    sqlite3_bind_int(s, 3, complete) != SQLITE_OK) {
		q_done(s);
		return db_fail(o, SQLITE_NOMEM, "bind");
	}
	return q_run(o, Q_UP_RECEIVED, "update upload");
}

static wse_status
by_key(struct od *o, int q, const char *key, const char *what)
{
	if (bind_text(o->stmt[q], 1, key) != SQLITE_OK) {
		q_done(o->stmt[q]);
		return db_fail(o, SQLITE_NOMEM, "bind");
	}
	return q_run(o, q, what);
}

/* ---- uploads being written (under o->lock) ---- */

static int
busy_find(struct od *o, const char *handle)
{
	size_t i;

	for (i = 0; i < o->nbusy; i++)
		if (strcmp(o->busy[i], handle) == 0)
			return (int)i;
	return -1;
}

static wse_status
busy_add(struct od *o, const char *handle)
{
	if (busy_find(o, handle) >= 0)
		return wse_err(WSE_ERR_TEMPFAIL, "ondemand: upload %.8s... is "
		    "being written by another call", handle);
	if (o->nbusy == BUSY_MAX)
		return wse_err(WSE_ERR_TEMPFAIL, "ondemand: %d uploads are "
		    "being written", BUSY_MAX);
	memcpy(o->busy[o->nbusy++], handle, TOKEN_LEN + 1);
	return WSE_OK;
}

static void
busy_del(struct od *o, const char *handle)
{
	int i = busy_find(o, handle);

	if (i < 0)
		return;
	o->nbusy--;
	if ((size_t)i != o->nbusy)
		memcpy(o->busy[i], o->busy[o->nbusy], TOKEN_LEN + 1);
}

/* Drop an upload being written by this call (busy): its row, its place
 * among the busy ones, its file. */
static void
upload_drop(struct od *o, const char *handle, const char *user,
    const char *why)
{
	pthread_mutex_lock(&o->lock);
	(void)by_key(o, Q_UP_DELETE, handle, "drop upload");
	busy_del(o, handle);
	pthread_mutex_unlock(&o->lock);
	(void)unlinkat(o->upfd, handle, 0);
	o->host->log(o->host, "upload %.8s... of %s dropped: %s", handle, user,
	    why);
}

/* ---- expiry ---- */

/*
 * At most once a minute: delete the bytes of expired attachments (their
 * rows and logs stay) and drop uploads older than upload_lifetime
 * (incomplete, complete but unsent, or sent: those hold no file).  Files
 * are unlinked after the database says they are gone, outside the lock.
 */
static void
expire(struct od *o, int64_t now)
{
	char (*refs)[TOKEN_LEN + 1] = NULL, (*handles)[TOKEN_LEN + 1] = NULL;
	size_t nrefs = 0, nhandles = 0, i;
	sqlite3_stmt *s;
	wse_status st = WSE_OK;
	int rc, again = 0;

	pthread_mutex_lock(&o->lock);
	if (o->last_expiry != INT64_MIN && now >= o->last_expiry &&
	    now - o->last_expiry < EXPIRY_INTERVAL) {
		pthread_mutex_unlock(&o->lock);
		return;
	}
	o->last_expiry = now;
	if ((refs = calloc(EXPIRY_BATCH, sizeof(*refs))) == NULL ||
	    (handles = calloc(EXPIRY_BATCH, sizeof(*handles))) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "ondemand: out of memory");
		goto out;
	}
	if ((st = db_begin(o)) != WSE_OK)
		goto out;

	s = o->stmt[Q_AT_EXPIRED];
	(void)sqlite3_bind_int64(s, 1, now);
	(void)sqlite3_bind_int(s, 2, EXPIRY_BATCH);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (col_copy(s, 0, refs[nrefs], TOKEN_LEN + 1) == WSE_OK)
			nrefs++;
	q_done(s);
	if (rc != SQLITE_DONE) {
		st = db_fail(o, rc, "expired attachments");
		goto out;
	}
	for (i = 0; i < nrefs; i++)
		if ((st = by_key(o, Q_AT_GONE, refs[i], "expire attachment")) !=
		    WSE_OK)
			goto out;

	s = o->stmt[Q_UP_OLD];
	(void)sqlite3_bind_int64(s, 1, now - o->upload_lifetime);
	(void)sqlite3_bind_int(s, 2, EXPIRY_BATCH);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (col_copy(s, 0, handles[nhandles], TOKEN_LEN + 1) ==
		    WSE_OK && busy_find(o, handles[nhandles]) < 0)
			nhandles++;
	q_done(s);
	if (rc != SQLITE_DONE) {
		st = db_fail(o, rc, "old uploads");
		goto out;
	}
	for (i = 0; i < nhandles; i++)
		if ((st = by_key(o, Q_UP_DELETE, handles[i], "drop upload")) !=
		    WSE_OK)
			goto out;
	if ((st = db_commit(o)) != WSE_OK)
		goto out;
	/* A full batch: let the next call go on with the rest. */
	again = nrefs == EXPIRY_BATCH || nhandles == EXPIRY_BATCH;
	if (again)
		o->last_expiry = INT64_MIN;
out:
	if (st != WSE_OK) {
		char eb[512];

		db_rollback(o);
		nrefs = nhandles = 0;
		o->host->log(o->host, "expiry failed: %s",
		    wse_err_format(eb, sizeof(eb)));
		wse_err_clear();
	}
	pthread_mutex_unlock(&o->lock);
	for (i = 0; i < nrefs; i++)
		if (unlinkat(o->atfd, refs[i], 0) == -1 && errno != ENOENT)
			o->host->log(o->host, "cannot delete attachment "
			    "%.8s...: %s", refs[i], strerror(errno));
	for (i = 0; i < nhandles; i++)
		if (unlinkat(o->upfd, handles[i], 0) == -1 && errno != ENOENT)
			o->host->log(o->host, "cannot delete upload %.8s...: "
			    "%s", handles[i], strerror(errno));
	if (nrefs > 0 || nhandles > 0)
		o->host->log(o->host, "expired %zu attachment(s), dropped %zu "
		    "upload(s)", nrefs, nhandles);
	free(refs);
	free(handles);
}

/* ---- RequestToken ---- */

static wse_status
op_request_token(struct od *o, const struct wse_plugin_request *r,
    const char *user, wse_buf *resp)
{
	static const char *const allowed[] = { "PublicKey", NULL };
	xmlNodePtr req;
	char *pem = NULL, na[21];
	wse_key *pub = NULL;
	wse_cert *tok = NULL;
	wse_buf *tpem = NULL, *cpem = NULL;
	wse_status st;

	if ((st = request_elem(r, allowed, &req)) != WSE_OK ||
	    (st = child_text(req, "PublicKey", PEM_TEXT_MAX, &pem)) != WSE_OK)
		goto out;
	if (pem == NULL) {
		st = wse_err(WSE_ERR_INVALID, "ondemand: RequestToken without "
		    "m:PublicKey");
		goto out;
	}
	if ((st = wse_key_from_public_pem(pem, strlen(pem), &pub)) != WSE_OK) {
		(void)wse_err(st, "ondemand: RequestToken from %s: unusable "
		    "public key", user);
		goto out;
	}
	pthread_mutex_lock(&o->pki_lock);
	st = wse_pki_issue_token(o->ca, o->ca_key, pub, user,
	    o->token_lifetime, r->now, &tok);
	pthread_mutex_unlock(&o->pki_lock);
	if (st != WSE_OK)
		goto out;
	if ((tpem = wse_buf_new(PEM_TEXT_MAX)) == NULL ||
	    (cpem = wse_buf_new(PEM_TEXT_MAX)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "ondemand: out of memory");
		goto out;
	}
	wse_time_format(wse_cert_not_after(tok), na);
	if ((st = wse_cert_to_pem(tok, tpem)) != WSE_OK ||
	    (st = wse_cert_to_pem(o->ca, cpem)) != WSE_OK ||
	    (st = wse_buf_puts(resp, "<m:RequestTokenResponse xmlns:m=\""
	    WSE_NS_WSE "\">")) != WSE_OK ||
	    (st = text_elem(resp, "Token", wse_buf_str(tpem))) != WSE_OK ||
	    (st = text_elem(resp, "Ca", wse_buf_str(cpem))) != WSE_OK ||
	    (st = text_elem(resp, "NotAfter", na)) != WSE_OK ||
	    (st = wse_buf_puts(resp, "</m:RequestTokenResponse>")) != WSE_OK)
		goto out;
	o->host->log(o->host, "token issued for %s until %s", user, na);
out:
	free(pem);
	wse_key_free(&pub);
	wse_cert_free(&tok);
	wse_buf_free(&tpem);
	wse_buf_free(&cpem);
	return st;
}

/* ---- UploadAttachment ---- */

/* SHA-256 of the upload file, streamed, as lower-case hex. */
static wse_status
hash_file(struct od *o, const char *handle, char hex[65])
{
	EVP_MD_CTX *ctx = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	uint8_t *buf = NULL;
	ssize_t n;
	wse_status st = WSE_OK;
	int fd;

	if ((fd = openat(o->upfd, handle, O_RDONLY | O_CLOEXEC |
	    O_NOFOLLOW)) == -1)
		return wse_err(WSE_ERR_IO, "ondemand: cannot open upload "
		    "%.8s...: %s", handle, strerror(errno));
	if ((buf = malloc(HASH_BUF)) == NULL ||
	    (ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		st = wse_err(WSE_ERR_CRYPTO, "ondemand: cannot start SHA-256");
		goto out;
	}
	for (;;) {
		n = read(fd, buf, HASH_BUF);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			st = wse_err(WSE_ERR_IO, "ondemand: cannot read upload "
			    "%.8s...: %s", handle, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
			st = wse_err(WSE_ERR_CRYPTO, "ondemand: SHA-256 failed");
			goto out;
		}
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
		st = wse_err(WSE_ERR_CRYPTO, "ondemand: SHA-256 failed");
		goto out;
	}
	wse_hex(md, 32, hex);
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	close(fd);
	return st;
}

/* Write data at offset into the upload file (cut there first, so that a
 * tail left by an interrupted call goes), then flush it to disk. */
static wse_status
write_chunk(struct od *o, const char *handle, uint64_t offset,
    const uint8_t *data, size_t len)
{
	size_t done = 0;
	ssize_t n;
	wse_status st = WSE_OK;
	int fd;

	if ((fd = openat(o->upfd, handle, O_WRONLY | O_CLOEXEC |
	    O_NOFOLLOW)) == -1)
		return wse_err(WSE_ERR_IO, "ondemand: cannot open upload "
		    "%.8s...: %s", handle, strerror(errno));
	if (ftruncate(fd, (off_t)offset) == -1) {
		st = wse_err(WSE_ERR_IO, "ondemand: cannot truncate upload "
		    "%.8s...: %s", handle, strerror(errno));
		goto out;
	}
	while (done < len) {
		n = pwrite(fd, data + done, len - done,
		    (off_t)(offset + done));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			st = wse_err(errno == ENOSPC || errno == EDQUOT ?
			    WSE_ERR_TEMPFAIL : WSE_ERR_IO, "ondemand: cannot "
			    "write upload %.8s...: %s", handle,
			    n == 0 ? "short write" : strerror(errno));
			goto out;
		}
		done += (size_t)n;
	}
	if (fsync(fd) == -1)
		st = wse_err(WSE_ERR_IO, "ondemand: cannot sync upload "
		    "%.8s...: %s", handle, strerror(errno));
out:
	close(fd);
	return st;
}

/* A new upload of user: row and empty file; marked busy when busy is
 * set (the same call writes a first chunk). */
static wse_status
upload_create(struct od *o, const char *user, const struct upload *u,
    int64_t now, int busy, char handle[TOKEN_LEN + 1])
{
	sqlite3_stmt *s;
	wse_status st;
	int fd = -1, rc, created = 0;
	int64_t n;

	pthread_mutex_lock(&o->lock);
	s = o->stmt[Q_UP_COUNT];
	(void)bind_text(s, 1, user);
	rc = sqlite3_step(s);
	n = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	q_done(s);
	if (rc != SQLITE_ROW) {
		st = db_fail(o, rc, "count uploads");
		goto out;
	}
	if (n >= UPLOADS_MAX) {
		st = wse_err(WSE_ERR_TOO_LARGE, "ondemand: %s has %d unsent "
		    "uploads already", user, UPLOADS_MAX);
		goto out;
	}
	if ((st = new_token(handle)) != WSE_OK)
		goto out;
	if ((fd = openat(o->upfd, handle, O_WRONLY | O_CREAT | O_EXCL |
	    O_CLOEXEC | O_NOFOLLOW, 0600)) == -1) {
		st = wse_err(WSE_ERR_IO, "ondemand: cannot create an upload "
		    "file: %s", strerror(errno));
		goto out;
	}
	created = 1;
	close(fd);
	if (fsync(o->upfd) == -1) {
		st = wse_err(WSE_ERR_IO, "ondemand: cannot sync the uploads "
		    "directory: %s", strerror(errno));
		goto out;
	}
	s = o->stmt[Q_UP_INSERT];
	if (bind_text(s, 1, handle) != SQLITE_OK ||
	    bind_text(s, 2, user) != SQLITE_OK ||
	    bind_text(s, 3, u->name) != SQLITE_OK ||
	    bind_text(s, 4, u->type) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 5, (int64_t)u->size) != SQLITE_OK ||
	    bind_text(s, 6, u->sha256) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 7, now) != SQLITE_OK) {
		q_done(s);
		st = db_fail(o, SQLITE_NOMEM, "bind");
		goto out;
	}
	if ((st = q_run(o, Q_UP_INSERT, "insert upload")) != WSE_OK)
		goto out;
	if (busy && (st = busy_add(o, handle)) != WSE_OK) {
		(void)by_key(o, Q_UP_DELETE, handle, "drop upload");
		goto out;
	}
	st = WSE_OK;
out:
	if (st != WSE_OK && created)
		(void)unlinkat(o->upfd, handle, 0);
	pthread_mutex_unlock(&o->lock);
	return st;
}

static wse_status
op_upload(struct od *o, const struct wse_plugin_request *r, const char *user,
    wse_buf *resp)
{
	static const char *const allowed[] = { "Upload", "Name", "Type",
	    "Size", "Sha256", "Offset", "Data", NULL };
	xmlNodePtr req, dn;
	char *handle_in = NULL, *name = NULL, *type = NULL, *sha = NULL;
	char handle[TOKEN_LEN + 1], hex[65];
	struct upload u;
	uint64_t size = 0, offset = 0;
	int have_size, have_offset, busy = 0, created = 0, complete, finish;
	wse_buf *text = NULL, *data = NULL;
	size_t len = 0;
	wse_status st;

	memset(&u, 0, sizeof(u));
	if ((st = request_elem(r, allowed, &req)) != WSE_OK ||
	    (st = child_text(req, "Upload", 256, &handle_in)) != WSE_OK ||
	    (st = child_text(req, "Name", 1024, &name)) != WSE_OK ||
	    (st = child_text(req, "Type", 1024, &type)) != WSE_OK ||
	    (st = child_text(req, "Sha256", 128, &sha)) != WSE_OK ||
	    (st = child_u64(req, "Size", &size, &have_size)) != WSE_OK ||
	    (st = child_u64(req, "Offset", &offset, &have_offset)) != WSE_OK)
		goto out;
	if (name != NULL && (!wse_attach_name_ok(name) || name[0] == '.')) {
		st = wse_err(WSE_ERR_INVALID, "ondemand: bad attachment name "
		    "(empty, longer than %d bytes, not UTF-8, starting with "
		    "'.', or holding '/', a control or a bidi character)",
		    WSE_ATTACH_NAME_MAX);
		goto out;
	}
	if (type != NULL && !type_valid(type)) {
		st = wse_err(WSE_ERR_INVALID, "ondemand: bad media type");
		goto out;
	}
	if (sha != NULL && !sha_valid(sha)) {
		st = wse_err(WSE_ERR_INVALID, "ondemand: m:Sha256 is not 64 "
		    "hex digits");
		goto out;
	}
	/* Data: at most CHUNK_MAX bytes once decoded; absent = empty. */
	if ((text = wse_buf_new(DATA_TEXT_MAX)) == NULL ||
	    (data = wse_buf_new(CHUNK_MAX)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "ondemand: out of memory");
		goto out;
	}
	if (wse_xml_count_children(req, WSE_NS_WSE, "Data") == 1 &&
	    wse_xml_only_child(req, WSE_NS_WSE, "Data", &dn) == WSE_OK) {
		if ((st = wse_xml_text(dn, text)) != WSE_OK ||
		    (st = wse_base64_decode(wse_buf_str(text),
		    wse_buf_len(text), data)) != WSE_OK) {
			if (st != WSE_ERR_TOO_LARGE)
				st = WSE_ERR_INVALID;
			(void)wse_err(st, "ondemand: bad m:Data (base64, at "
			    "most %u bytes)", CHUNK_MAX);
			goto out;
		}
	}
	len = wse_buf_len(data);

	if (handle_in == NULL) {
		/* A new upload. */
		if (name == NULL || !have_size || sha == NULL) {
			st = wse_err(WSE_ERR_INVALID, "ondemand: a new upload "
			    "needs m:Name, m:Size and m:Sha256");
			goto out;
		}
		if (have_offset && offset != 0) {
			st = wse_err(WSE_ERR_INVALID, "ondemand: a new upload "
			    "starts at offset 0");
			goto out;
		}
		if (size > o->max_size) {
			st = wse_err(WSE_ERR_TOO_LARGE, "ondemand: %s: upload of "
			    "%" PRIu64 " bytes, the limit is %" PRIu64, user,
			    size, o->max_size);
			goto out;
		}
		if (len > size) {
			st = wse_err(WSE_ERR_INVALID, "ondemand: more data than "
			    "m:Size");
			goto out;
		}
		(void)snprintf(u.owner, sizeof(u.owner), "%s", user);
		(void)snprintf(u.name, sizeof(u.name), "%s", name);
		(void)snprintf(u.type, sizeof(u.type), "%s",
		    type != NULL ? type : "application/octet-stream");
		(void)snprintf(u.sha256, sizeof(u.sha256), "%s", sha);
		u.size = size;
		u.created = r->now;
		offset = 0;
		if ((st = upload_create(o, user, &u, r->now, 1, handle)) !=
		    WSE_OK)
			goto out;
		busy = created = 1;
		o->host->log(o->host, "upload %.8s... started by %s: %s, "
		    "%" PRIu64 " bytes", handle, user, u.name, u.size);
	} else {
		/* A later call: the handle must be this user's, unsent. */
		if (!token_valid(handle_in)) {
			st = wse_err(WSE_ERR_NOT_FOUND, "ondemand: no such "
			    "upload");
			goto out;
		}
		memcpy(handle, handle_in, TOKEN_LEN + 1);
		pthread_mutex_lock(&o->lock);
		st = upload_get(o, handle, &u);
		if (st == WSE_ERR_NOT_FOUND || (st == WSE_OK &&
		    (strcmp(u.owner, user) != 0 || u.used))) {
			pthread_mutex_unlock(&o->lock);
			st = wse_err(WSE_ERR_NOT_FOUND, "ondemand: %s: no "
			    "upload %.8s... of this user", user, handle);
			goto out;
		}
		if (st != WSE_OK) {
			pthread_mutex_unlock(&o->lock);
			goto out;
		}
		if ((name != NULL && strcmp(name, u.name) != 0) ||
		    (type != NULL && strcmp(type, u.type) != 0) ||
		    (have_size && size != u.size) ||
		    (sha != NULL && strcmp(sha, u.sha256) != 0)) {
			pthread_mutex_unlock(&o->lock);
			st = wse_err(WSE_ERR_INVALID, "ondemand: upload "
			    "%.8s...: name, type, size or digest differ from "
			    "the first call", handle);
			goto out;
		}
		if (len > 0 && (u.complete || offset != u.received ||
		    !have_offset || len > u.size - u.received)) {
			pthread_mutex_unlock(&o->lock);
			st = wse_err(WSE_ERR_INVALID, "ondemand: upload "
			    "%.8s...: %zu bytes at offset %" PRIu64 ", but "
			    "%" PRIu64 " of %" PRIu64 " received%s", handle,
			    len, offset, u.received, u.size,
			    u.complete ? " (complete)" : "");
			goto out;
		}
		finish = !u.complete && u.received + len == u.size;
		if ((len > 0 || finish) &&
		    (st = busy_add(o, handle)) != WSE_OK) {
			pthread_mutex_unlock(&o->lock);
			goto out;
		}
		busy = len > 0 || finish;
		pthread_mutex_unlock(&o->lock);
	}

	/* Outside the lock: write, and at the end check the digest. */
	complete = u.complete;
	if (len > 0 && (st = write_chunk(o, handle, u.received,
	    wse_buf_data(data), len)) != WSE_OK)
		goto out;
	if (!complete && u.received + len == u.size) {
		if ((st = hash_file(o, handle, hex)) != WSE_OK)
			goto out;
		if (strcmp(hex, u.sha256) != 0) {
			upload_drop(o, handle, user, "SHA-256 mismatch");
			busy = created = 0;
			st = wse_err(WSE_ERR_INVALID, "ondemand: upload "
			    "%.8s...: the SHA-256 of the %" PRIu64 " bytes "
			    "is not the announced one; upload dropped",
			    handle, u.size);
			goto out;
		}
		complete = 1;
	}
	if (busy) {
		pthread_mutex_lock(&o->lock);
		st = upload_set_received(o, handle, u.received + len, complete);
		busy_del(o, handle);
		busy = 0;
		pthread_mutex_unlock(&o->lock);
		if (st != WSE_OK)
			goto out;
		if (complete && !u.complete)
			o->host->log(o->host, "upload %.8s... of %s complete "
			    "(%" PRIu64 " bytes)", handle, user, u.size);
	}
	if ((st = wse_buf_puts(resp, "<m:UploadAttachmentResponse xmlns:m=\""
	    WSE_NS_WSE "\">")) != WSE_OK ||
	    (st = text_elem(resp, "Upload", handle)) != WSE_OK ||
	    (st = wse_buf_printf(resp, "<m:Received>%" PRIu64 "</m:Received>"
	    "<m:Complete>%s</m:Complete></m:UploadAttachmentResponse>",
	    u.received + len, complete ? "true" : "false")) != WSE_OK)
		goto out;
out:
	/* A first call that fails drops the upload it made: its handle was
	 * never answered, so nobody could resume or send it. */
	if (st != WSE_OK && created) {
		upload_drop(o, handle, user, "the call that started it failed");
		busy = 0;
	}
	if (busy) {
		pthread_mutex_lock(&o->lock);
		busy_del(o, handle);
		pthread_mutex_unlock(&o->lock);
	}
	free(handle_in);
	free(name);
	free(type);
	free(sha);
	wse_buf_free(&text);
	wse_buf_free(&data);
	return st;
}

/* ---- FetchAttachment ---- */

static wse_status
op_fetch(struct od *o, const struct wse_plugin_request *r, const char *user,
    struct wse_plugin_stream *stream)
{
	static const char *const allowed[] = { "Ref", "Offset", "Length",
	    NULL };
	xmlNodePtr req;
	char *ref = NULL;
	uint64_t offset = 0, length = 0, size;
	int have_offset, have_length, rc, fd = -1;
	sqlite3_stmt *s;
	struct stat sb;
	wse_status st;

	if (stream == NULL)
		return wse_err(WSE_ERR_INTERNAL, "ondemand: FetchAttachment "
		    "without a stream");
	if ((st = request_elem(r, allowed, &req)) != WSE_OK ||
	    (st = child_text(req, "Ref", 256, &ref)) != WSE_OK ||
	    (st = child_u64(req, "Offset", &offset, &have_offset)) != WSE_OK ||
	    (st = child_u64(req, "Length", &length, &have_length)) != WSE_OK)
		goto out;
	if (ref == NULL) {
		st = wse_err(WSE_ERR_INVALID, "ondemand: FetchAttachment "
		    "without m:Ref");
		goto out;
	}
	/* From here on, every refusal about the reference is the same. */
	if (!token_valid(ref)) {
		st = WSE_ERR_NOT_AUTHORIZED;
		goto refuse;
	}
	pthread_mutex_lock(&o->lock);
	s = o->stmt[Q_AT_FETCHABLE];
	(void)bind_text(s, 1, ref);
	(void)bind_text(s, 2, user);
	(void)sqlite3_bind_int64(s, 3, r->now);
	rc = sqlite3_step(s);
	size = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
	q_done(s);
	if (rc == SQLITE_DONE) {
		pthread_mutex_unlock(&o->lock);
		st = WSE_ERR_NOT_AUTHORIZED;
		goto refuse;
	}
	if (rc != SQLITE_ROW) {
		st = db_fail(o, rc, "look up attachment");
		pthread_mutex_unlock(&o->lock);
		goto out;
	}
	if (offset > size) {
		pthread_mutex_unlock(&o->lock);
		st = wse_err(WSE_ERR_INVALID, "ondemand: fetch of %.8s... by "
		    "%s at offset %" PRIu64 " past its %" PRIu64 " bytes", ref,
		    user, offset, size);
		goto out;
	}
	if (!have_length || length > size - offset)
		length = size - offset;
	if ((fd = openat(o->atfd, ref, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) ==
	    -1 || fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) ||
	    (uint64_t)sb.st_size != size) {
		st = wse_err(WSE_ERR_TEMPFAIL, "ondemand: attachment %.8s...: "
		    "file missing or of the wrong size", ref);
		pthread_mutex_unlock(&o->lock);
		goto out;
	}
	s = o->stmt[Q_FETCH_LOG];
	(void)bind_text(s, 1, ref);
	(void)bind_text(s, 2, user);
	(void)sqlite3_bind_int64(s, 3, r->now);
	(void)sqlite3_bind_int64(s, 4, (int64_t)offset);
	(void)sqlite3_bind_int64(s, 5, (int64_t)length);
	st = q_run(o, Q_FETCH_LOG, "log fetch");
	pthread_mutex_unlock(&o->lock);
	if (st != WSE_OK)
		goto out;
	o->host->log(o->host, "attachment %.8s... fetched by %s: %" PRIu64
	    " bytes at %" PRIu64, ref, user, length, offset);
	stream->fd = fd;
	stream->offset = offset;
	stream->length = length;
	stream->total = size;
	fd = -1;
	st = WSE_OK;
	goto out;
refuse:
	st = wse_err(WSE_ERR_NOT_AUTHORIZED, "ondemand: fetch refused: %s "
	    "is not a recipient of a current attachment %.8s...", user,
	    ref != NULL ? ref : "");
out:
	if (fd != -1)
		close(fd);
	free(ref);
	return st;
}

/* ---- AttachmentLog and RevokeAttachment ---- */

static wse_status
log_attachment(struct od *o, sqlite3_stmt *a, wse_buf *resp)
{
	sqlite3_stmt *s;
	const char *ref = (const char *)sqlite3_column_text(a, 0);
	const char *name = (const char *)sqlite3_column_text(a, 1);
	const char *sha = (const char *)sqlite3_column_text(a, 3);
	char t[21];
	wse_status st;
	int rc;

	if (ref == NULL || name == NULL || sha == NULL)
		return wse_err(WSE_ERR_INTERNAL, "ondemand: bad attachment row");
	wse_time_format(sqlite3_column_int64(a, 4), t);
	if ((st = wse_buf_puts(resp, "<m:Attachment")) != WSE_OK ||
	    (st = attr(resp, "ref", ref)) != WSE_OK ||
	    (st = attr(resp, "name", name)) != WSE_OK ||
	    (st = wse_buf_printf(resp, " size=\"%" PRId64 "\"",
	    (int64_t)sqlite3_column_int64(a, 2))) != WSE_OK ||
	    (st = attr(resp, "sha256", sha)) != WSE_OK ||
	    (st = attr(resp, "expires", t)) != WSE_OK ||
	    (st = attr(resp, "revoked", sqlite3_column_int(a, 5) ? "true" :
	    "false")) != WSE_OK ||
	    (st = wse_buf_puts(resp, ">")) != WSE_OK)
		return st;

	s = o->stmt[Q_RC_LIST];
	(void)bind_text(s, 1, ref);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *addr = (const char *)sqlite3_column_text(s, 0);

		if (addr != NULL && (st = text_elem(resp, "Recipient", addr)) !=
		    WSE_OK) {
			q_done(s);
			return st;
		}
	}
	q_done(s);
	if (rc != SQLITE_DONE)
		return db_fail(o, rc, "list recipients");

	s = o->stmt[Q_FETCH_LIST];
	(void)bind_text(s, 1, ref);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *who = (const char *)sqlite3_column_text(s, 0);

		if (who == NULL)
			continue;
		wse_time_format(sqlite3_column_int64(s, 1), t);
		if ((st = wse_buf_puts(resp, "<m:Fetch")) != WSE_OK ||
		    (st = attr(resp, "by", who)) != WSE_OK ||
		    (st = attr(resp, "at", t)) != WSE_OK ||
		    (st = wse_buf_printf(resp, " offset=\"%" PRId64 "\" "
		    "length=\"%" PRId64 "\"/>",
		    (int64_t)sqlite3_column_int64(s, 2),
		    (int64_t)sqlite3_column_int64(s, 3))) != WSE_OK) {
			q_done(s);
			return st;
		}
	}
	q_done(s);
	if (rc != SQLITE_DONE)
		return db_fail(o, rc, "list fetches");
	return wse_buf_puts(resp, "</m:Attachment>");
}

/* The m:Id of an AttachmentLog or RevokeAttachment request. */
static wse_status
request_id(const xmlNode *req, char **id_r)
{
	wse_status st;

	if ((st = child_text(req, "Id", ID_MAX + 1, id_r)) != WSE_OK)
		return st;
	if (*id_r == NULL || (*id_r)[0] == '\0')
		return wse_err(WSE_ERR_INVALID, "ondemand: no m:Id");
	return WSE_OK;
}

static wse_status
op_log(struct od *o, const struct wse_plugin_request *r, const char *user,
    wse_buf *resp)
{
	static const char *const allowed[] = { "Id", NULL };
	xmlNodePtr req;
	char *id = NULL;
	sqlite3_stmt *s;
	size_t n = 0;
	wse_status st;
	int rc;

	if ((st = request_elem(r, allowed, &req)) != WSE_OK ||
	    (st = request_id(req, &id)) != WSE_OK)
		goto out;
	if ((st = wse_buf_puts(resp, "<m:AttachmentLogResponse xmlns:m=\""
	    WSE_NS_WSE "\">")) != WSE_OK)
		goto out;
	pthread_mutex_lock(&o->lock);
	/* One read transaction: a consistent picture. */
	if ((st = db_begin(o)) != WSE_OK) {
		pthread_mutex_unlock(&o->lock);
		goto out;
	}
	s = o->stmt[Q_AT_BY_MSG];
	(void)bind_text(s, 1, id);
	(void)bind_text(s, 2, user);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		n++;
		if ((st = log_attachment(o, s, resp)) != WSE_OK)
			break;
	}
	q_done(s);
	if (st == WSE_OK && rc != SQLITE_DONE)
		st = db_fail(o, rc, "list attachments");
	(void)q_run(o, Q_COMMIT, "end read");
	pthread_mutex_unlock(&o->lock);
	if (st != WSE_OK)
		goto out;
	if (n == 0) {
		st = wse_err(WSE_ERR_NOT_FOUND, "ondemand: %s has no "
		    "attachments in message %.64s", user, id);
		goto out;
	}
	st = wse_buf_puts(resp, "</m:AttachmentLogResponse>");
out:
	free(id);
	return st;
}

static wse_status
op_revoke(struct od *o, const struct wse_plugin_request *r, const char *user,
    wse_buf *resp)
{
	static const char *const allowed[] = { "Id", "Name", NULL };
	xmlNodePtr req;
	char *id = NULL, *name = NULL;
	char (*refs)[TOKEN_LEN + 1] = NULL;
	size_t n = 0, nrev = 0, i;
	sqlite3_stmt *s;
	wse_status st;
	int rc;

	if ((st = request_elem(r, allowed, &req)) != WSE_OK ||
	    (st = request_id(req, &id)) != WSE_OK ||
	    (st = child_text(req, "Name", 1024, &name)) != WSE_OK)
		goto out;
	if ((refs = calloc(WSE_MSG_MAX_ONDEMAND, sizeof(*refs))) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "ondemand: out of memory");
		goto out;
	}
	pthread_mutex_lock(&o->lock);
	if ((st = db_begin(o)) != WSE_OK) {
		pthread_mutex_unlock(&o->lock);
		goto out;
	}
	s = o->stmt[Q_AT_BY_MSG];
	(void)bind_text(s, 1, id);
	(void)bind_text(s, 2, user);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *aname = (const char *)sqlite3_column_text(s, 1);

		n++;
		if (sqlite3_column_int(s, 5) != 0 || nrev ==
		    WSE_MSG_MAX_ONDEMAND || (name != NULL && (aname == NULL ||
		    strcmp(aname, name) != 0)))
			continue;
		if (col_copy(s, 0, refs[nrev], TOKEN_LEN + 1) == WSE_OK)
			nrev++;
	}
	q_done(s);
	if (rc != SQLITE_DONE)
		st = db_fail(o, rc, "list attachments");
	for (i = 0; st == WSE_OK && i < nrev; i++)
		st = by_key(o, Q_AT_REVOKE, refs[i], "revoke");
	if (st == WSE_OK)
		st = db_commit(o);
	else
		db_rollback(o);
	pthread_mutex_unlock(&o->lock);
	if (st != WSE_OK)
		goto out;
	if (n == 0) {
		st = wse_err(WSE_ERR_NOT_FOUND, "ondemand: %s has no "
		    "attachments in message %.64s", user, id);
		goto out;
	}
	for (i = 0; i < nrev; i++) {
		if (unlinkat(o->atfd, refs[i], 0) == -1 && errno != ENOENT)
			o->host->log(o->host, "cannot delete attachment "
			    "%.8s...: %s", refs[i], strerror(errno));
		o->host->log(o->host, "attachment %.8s... revoked by %s",
		    refs[i], user);
	}
	st = wse_buf_printf(resp, "<m:RevokeAttachmentResponse xmlns:m=\""
	    WSE_NS_WSE "\"><m:Revoked>%zu</m:Revoked>"
	    "</m:RevokeAttachmentResponse>", nrev);
out:
	free(id);
	free(name);
	free(refs);
	return st;
}

/* ---- the hooks ---- */

static wse_status
od_call(void *state, const struct wse_plugin_request *r, wse_buf *resp,
    struct wse_plugin_stream *stream)
{
	struct od *o = state;
	char user[WSE_ADDR_MAX + 1];
	int token_op;

	if (r == NULL || r->op == NULL || r->user == NULL)
		return wse_err(WSE_ERR_INTERNAL, "ondemand: no request");
	token_op = strcmp(r->op, "FetchAttachment") == 0;
	if (r->auth != (token_op ? WSE_PLUGIN_AUTH_TOKEN :
	    WSE_PLUGIN_AUTH_PASSWORD))
		return wse_err(WSE_ERR_NOT_AUTHORIZED, "ondemand: %s with the "
		    "wrong profile", r->op);
	if (wse_addr_normalize(r->user, user, sizeof(user)) != WSE_OK)
		return wse_err(WSE_ERR_NOT_AUTHORIZED, "ondemand: bad user");
	expire(o, r->now);
	if (token_op)
		return op_fetch(o, r, user, stream);
	if (strcmp(r->op, "RequestToken") == 0)
		return op_request_token(o, r, user, resp);
	if (strcmp(r->op, "UploadAttachment") == 0)
		return op_upload(o, r, user, resp);
	if (strcmp(r->op, "AttachmentLog") == 0)
		return op_log(o, r, user, resp);
	if (strcmp(r->op, "RevokeAttachment") == 0)
		return op_revoke(o, r, user, resp);
	return wse_err(WSE_ERR_UNSUPPORTED, "ondemand: no operation %.64s",
	    r->op);
}

static wse_status
add_recipients(struct od *o, const char *ref, char *const *addrs, size_t n)
{
	char norm[WSE_ADDR_MAX + 1];
	sqlite3_stmt *s = o->stmt[Q_RC_INSERT];
	wse_status st;
	size_t i;

	for (i = 0; i < n; i++) {
		if ((st = wse_addr_normalize(addrs[i], norm, sizeof(norm))) !=
		    WSE_OK)
			return st;
		if (bind_text(s, 1, ref) != SQLITE_OK ||
		    bind_text(s, 2, norm) != SQLITE_OK) {
			q_done(s);
			return db_fail(o, SQLITE_NOMEM, "bind");
		}
		if ((st = q_run(o, Q_RC_INSERT, "insert recipient")) != WSE_OK)
			return st;
	}
	return WSE_OK;
}

/*
 * The submit hook: each entry holding an upload handle must name a
 * complete, unsent upload of user.  In one transaction per message: a
 * new reference, the upload's file linked to attachments/REF, the
 * attachment and its recipients (every To and Cc address) recorded, the
 * upload marked sent, the entry resolved.  After the commit the upload's
 * own file name goes.
 */
static wse_status
od_submit(void *state, const char *user_in, const char *id, wse_msg *m)
{
	struct od *o = state;
	char user[WSE_ADDR_MAX + 1];
	char refs[WSE_MSG_MAX_ONDEMAND][TOKEN_LEN + 1];
	char handles[WSE_MSG_MAX_ONDEMAND][TOKEN_LEN + 1];
	size_t i, nlinked = 0;
	struct upload u;
	sqlite3_stmt *s;
	int64_t now;
	wse_status st;

	if (m == NULL || wse_msg_unresolved(m) == 0)
		return WSE_OK;
	if (user_in == NULL || id == NULL || id[0] == '\0' ||
	    strlen(id) > ID_MAX)
		return wse_err(WSE_ERR_INVALID, "ondemand: submission without "
		    "a sender or an id");
	if (wse_addr_normalize(user_in, user, sizeof(user)) != WSE_OK)
		return wse_err(WSE_ERR_INVALID, "ondemand: bad sender");
	if (m->nod > WSE_MSG_MAX_ONDEMAND)
		return wse_err(WSE_ERR_TOO_LARGE, "ondemand: too many "
		    "on-demand attachments");
	now = o->host->now();
	expire(o, now);

	pthread_mutex_lock(&o->lock);
	if ((st = db_begin(o)) != WSE_OK)
		goto out;
	for (i = 0; i < m->nod; i++) {
		const char *h = m->od[i].upload;

		if (h == NULL)
			continue;
		if (!token_valid(h)) {
			st = wse_err(WSE_ERR_INVALID, "ondemand: %s: bad upload "
			    "handle", user);
			goto out;
		}
		st = upload_get(o, h, &u);
		if (st == WSE_ERR_NOT_FOUND || (st == WSE_OK &&
		    strcmp(u.owner, user) != 0)) {
			st = wse_err(WSE_ERR_INVALID, "ondemand: %s: upload "
			    "%.8s... is not an upload of this user", user, h);
			goto out;
		}
		if (st != WSE_OK)
			goto out;
		if (u.used) {
			st = wse_err(WSE_ERR_INVALID, "ondemand: %s: upload "
			    "%.8s... was already sent with a message", user, h);
			goto out;
		}
		if (!u.complete || busy_find(o, h) >= 0) {
			st = wse_err(WSE_ERR_INVALID, "ondemand: %s: upload "
			    "%.8s... is not complete (%" PRIu64 " of %" PRIu64
			    " bytes)", user, h, u.received, u.size);
			goto out;
		}
		memcpy(handles[nlinked], h, TOKEN_LEN + 1);
		if ((st = new_token(refs[nlinked])) != WSE_OK)
			goto out;
		if (linkat(o->upfd, h, o->atfd, refs[nlinked], 0) == -1) {
			st = wse_err(WSE_ERR_IO, "ondemand: cannot move upload "
			    "%.8s...: %s", h, strerror(errno));
			goto out;
		}
		nlinked++;
		s = o->stmt[Q_AT_INSERT];
		if (bind_text(s, 1, refs[nlinked - 1]) != SQLITE_OK ||
		    bind_text(s, 2, id) != SQLITE_OK ||
		    bind_text(s, 3, user) != SQLITE_OK ||
		    bind_text(s, 4, u.name) != SQLITE_OK ||
		    bind_text(s, 5, u.type) != SQLITE_OK ||
		    sqlite3_bind_int64(s, 6, (int64_t)u.size) != SQLITE_OK ||
		    bind_text(s, 7, u.sha256) != SQLITE_OK ||
		    sqlite3_bind_int64(s, 8, now) != SQLITE_OK ||
		    sqlite3_bind_int64(s, 9, now + o->attachment_lifetime) !=
		    SQLITE_OK) {
			q_done(s);
			st = db_fail(o, SQLITE_NOMEM, "bind");
			goto out;
		}
		if ((st = q_run(o, Q_AT_INSERT, "insert attachment")) !=
		    WSE_OK ||
		    (st = add_recipients(o, refs[nlinked - 1], m->to, m->nto)) !=
		    WSE_OK ||
		    (st = add_recipients(o, refs[nlinked - 1], m->cc, m->ncc)) !=
		    WSE_OK ||
		    (st = by_key(o, Q_UP_USE, h, "mark upload sent")) != WSE_OK)
			goto out;
		/* h points into m->od[i], which this frees. */
		if ((st = wse_msg_resolve_ondemand(m, i, o->host->url,
		    refs[nlinked - 1], u.name, u.type, u.size, u.sha256)) !=
		    WSE_OK)
			goto out;
	}
	if (fsync(o->atfd) == -1) {
		st = wse_err(WSE_ERR_IO, "ondemand: cannot sync the "
		    "attachments directory: %s", strerror(errno));
		goto out;
	}
	st = db_commit(o);
out:
	if (st != WSE_OK) {
		db_rollback(o);
		for (i = 0; i < nlinked; i++)
			(void)unlinkat(o->atfd, refs[i], 0);
		nlinked = 0;
	}
	pthread_mutex_unlock(&o->lock);
	for (i = 0; i < nlinked; i++) {
		(void)unlinkat(o->upfd, handles[i], 0);
		o->host->log(o->host, "attachment %.8s... of %s in %.64s "
		    "(upload %.8s...)", refs[i], user, id, handles[i]);
	}
	if (nlinked > 0)
		(void)fsync(o->upfd);
	return st;
}

/* ---- set-up ---- */

/* Remove files no row accounts for: attachments without a current row
 * (a crash between link and commit, or after revocation or expiry
 * before the unlink), uploads without an unsent row. */
static void
sweep(struct od *o, int dfd, int attachments)
{
	struct upload u;
	sqlite3_stmt *s;
	struct dirent *de;
	wse_status ws;
	DIR *d;
	int fd, keep, rc;
	size_t n = 0;

	if ((fd = dup(dfd)) == -1)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		keep = 0;
		if (token_valid(de->d_name)) {
			if (attachments) {
				s = o->stmt[Q_AT_GET];
				(void)bind_text(s, 1, de->d_name);
				rc = sqlite3_step(s);
				keep = rc != SQLITE_DONE && (rc != SQLITE_ROW ||
				    sqlite3_column_int(s, 0) == 0);
				q_done(s);
			} else {
				ws = upload_get(o, de->d_name, &u);
				keep = ws != WSE_ERR_NOT_FOUND &&
				    (ws != WSE_OK || !u.used);
			}
		}
		if (!keep && unlinkat(dfd, de->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	if (n > 0)
		o->host->log(o->host, "removed %zu stray file(s) from %s", n,
		    attachments ? "attachments" : "uploads");
}

static wse_status
open_subdir(struct od *o, const char *name, int *fd_r)
{
	struct stat sb;

	if (mkdirat(o->dirfd, name, 0700) == -1 && errno != EEXIST)
		return wse_err(WSE_ERR_CONFIG, "ondemand: cannot create "
		    "%s/%s: %s", o->dir, name, strerror(errno));
	if ((*fd_r = openat(o->dirfd, name, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC | O_NOFOLLOW)) == -1 || fstat(*fd_r, &sb) == -1)
		return wse_err(WSE_ERR_CONFIG, "ondemand: cannot open %s/%s: "
		    "%s", o->dir, name, strerror(errno));
	return WSE_OK;
}

static wse_status
db_open(struct od *o)
{
	const struct wse_sqlite_db d = {
		.who = "ondemand",
		.dir = o->dir,
		.dirfd = o->dirfd,
		.name = "ondemand.db",
		.flags = SQLITE_OPEN_FULLMUTEX,
		.busy_ms = BUSY_TIMEOUT_MS,
		.setup = "PRAGMA synchronous = FULL;"
		    "PRAGMA foreign_keys = ON;",
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
od_free(struct od *o)
{
	size_t i;

	if (o == NULL)
		return;
	for (i = 0; i < Q__COUNT; i++)
		sqlite3_finalize(o->stmt[i]);
	if (o->db != NULL)
		(void)sqlite3_close(o->db);
	if (o->upfd != -1)
		close(o->upfd);
	if (o->atfd != -1)
		close(o->atfd);
	if (o->dirfd != -1)
		close(o->dirfd);
	wse_cert_free(&o->ca);
	wse_key_free(&o->ca_key);
	if (o->lock_ok)
		pthread_mutex_destroy(&o->lock);
	if (o->pki_lock_ok)
		pthread_mutex_destroy(&o->pki_lock);
	free(o->dir);
	free(o);
}

/* A positive number up to max for key; WSE_ERR_CONFIG otherwise. */
static wse_status
conf_num(const char *key, const char *v, uint64_t max, uint64_t *out)
{
	if (!parse_u64(v, out) || *out == 0 || *out > max)
		return wse_err(WSE_ERR_CONFIG, "ondemand: %s=%.64s: not a "
		    "number from 1 to %" PRIu64, key, v, max);
	return WSE_OK;
}

/*
 * The domain CA: a CA certificate of this domain whose key is ca_key.
 * The library's token issuing is the authority on "of this domain" (the
 * CA's common name and its mailbox name constraint), so a trial token
 * for postmaster@DOMAIN is issued and dropped.
 */
static wse_status
check_ca(struct od *o, const char *cert_path, const char *key_path)
{
	char mbox[WSE_ADDR_MAX + 16], subj[512];
	wse_key *k = NULL;
	wse_cert *t = NULL;
	wse_status st;

	if ((st = wse_cert_load(cert_path, &o->ca)) != WSE_OK)
		return wse_err(WSE_ERR_CONFIG, "ondemand: ca_cert=%s: cannot "
		    "load", cert_path);
	if ((st = wse_key_load(key_path, &o->ca_key)) != WSE_OK)
		return wse_err(WSE_ERR_CONFIG, "ondemand: ca_key=%s: cannot "
		    "load", key_path);
	if (!wse_cert_is_ca(o->ca))
		return wse_err(WSE_ERR_CONFIG, "ondemand: ca_cert=%s is not a "
		    "CA certificate", cert_path);
	if (!wse_cert_matches_key(o->ca, o->ca_key))
		return wse_err(WSE_ERR_CONFIG, "ondemand: ca_key=%s is not the "
		    "key of ca_cert=%s", key_path, cert_path);
	if (wse_cert_subject(o->ca, subj, sizeof(subj)) != WSE_OK)
		(void)snprintf(subj, sizeof(subj), "?");
	(void)snprintf(mbox, sizeof(mbox), "postmaster@%s", o->host->domain);
	if ((st = wse_key_generate(&k)) != WSE_OK)
		return st;
	st = wse_pki_issue_token(o->ca, o->ca_key, k, mbox, 60,
	    o->host->now(), &t);
	wse_key_free(&k);
	wse_cert_free(&t);
	if (st != WSE_OK)
		return wse_err(WSE_ERR_CONFIG, "ondemand: ca_cert=%s (%s) "
		    "cannot issue tokens for %s (%s): it must be the domain "
		    "CA of %s, valid now", cert_path, subj, o->host->domain,
		    wse_status_name(st), o->host->domain);
	return WSE_OK;
}

static wse_status
od_init(const struct wse_plugin_host *host, const char *args, void **state_r)
{
	struct od *o;
	char *copy = NULL, *w, *save = NULL, *eq;
	const char *cert_path = NULL, *key_path = NULL;
	uint64_t v = 0;
	int seen[7] = { 0 };
	wse_status st;
	static const char *const keys[] = { "dir", "ca_cert", "ca_key",
	    "token_lifetime", "attachment_lifetime", "max_size",
	    "upload_lifetime" };
	size_t k;

	*state_r = NULL;
	if (host == NULL || host->domain == NULL || host->now == NULL ||
	    host->log == NULL)
		return wse_err(WSE_ERR_CONFIG, "ondemand: incomplete host");
	if (host->url == NULL || !wse_url_in_domain(host->url, host->domain) ||
	    strlen(host->url) > WSE_ONDEMAND_URL_MAX)
		return wse_err(WSE_ERR_CONFIG, "ondemand: the server's URL "
		    "\"%.100s\" is not an https URL of %s (receiving servers "
		    "would refuse its references)",
		    host->url != NULL ? host->url : "", host->domain);
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "ondemand: out of memory");
	o->host = host;
	o->dirfd = o->upfd = o->atfd = -1;
	o->token_lifetime = DEF_TOKEN_LIFETIME;
	o->attachment_lifetime = DEF_ATTACHMENT_LIFETIME;
	o->upload_lifetime = DEF_UPLOAD_LIFETIME;
	o->max_size = DEF_MAX_SIZE;
	o->last_expiry = INT64_MIN;
	if (pthread_mutex_init(&o->lock, NULL) != 0) {
		st = wse_err(WSE_ERR_INTERNAL, "ondemand: no mutex");
		goto fail;
	}
	o->lock_ok = 1;
	if (pthread_mutex_init(&o->pki_lock, NULL) != 0) {
		st = wse_err(WSE_ERR_INTERNAL, "ondemand: no mutex");
		goto fail;
	}
	o->pki_lock_ok = 1;

	if ((copy = strdup(args != NULL ? args : "")) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "ondemand: out of memory");
		goto fail;
	}
	for (w = strtok_r(copy, " \t", &save); w != NULL;
	    w = strtok_r(NULL, " \t", &save)) {
		if ((eq = strchr(w, '=')) == NULL || eq == w || eq[1] == '\0') {
			st = wse_err(WSE_ERR_CONFIG, "ondemand: \"%.64s\" is not "
			    "KEY=VALUE", w);
			goto fail;
		}
		*eq++ = '\0';
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (strcmp(w, keys[k]) == 0)
				break;
		if (k == sizeof(keys) / sizeof(keys[0])) {
			st = wse_err(WSE_ERR_CONFIG, "ondemand: unknown argument "
			    "%.64s (dir, ca_cert, ca_key, token_lifetime, "
			    "attachment_lifetime, max_size, upload_lifetime)",
			    w);
			goto fail;
		}
		if (seen[k]++) {
			st = wse_err(WSE_ERR_CONFIG, "ondemand: %s given twice",
			    w);
			goto fail;
		}
		st = WSE_OK;
		switch (k) {
		case 0:
			if (eq[0] != '/') {
				st = wse_err(WSE_ERR_CONFIG, "ondemand: dir=%.200s "
				    "is not an absolute path", eq);
				goto fail;
			}
			if ((o->dir = strdup(eq)) == NULL) {
				st = wse_err(WSE_ERR_NOMEM, "ondemand: out of "
				    "memory");
				goto fail;
			}
			break;
		case 1:
			cert_path = eq;
			break;
		case 2:
			key_path = eq;
			break;
		case 3:
			if ((st = conf_num(w, eq, LIFETIME_MAX, &v)) == WSE_OK)
				o->token_lifetime = (int64_t)v;
			break;
		case 4:
			if ((st = conf_num(w, eq, LIFETIME_MAX, &v)) == WSE_OK)
				o->attachment_lifetime = (int64_t)v;
			break;
		case 5:
			if ((st = conf_num(w, eq, SIZE_MAX_CONF, &v)) == WSE_OK)
				o->max_size = v;
			break;
		case 6:
			if ((st = conf_num(w, eq, LIFETIME_MAX, &v)) == WSE_OK)
				o->upload_lifetime = (int64_t)v;
			break;
		}
		if (st != WSE_OK)
			goto fail;
	}
	if (o->dir == NULL || cert_path == NULL || key_path == NULL) {
		st = wse_err(WSE_ERR_CONFIG, "ondemand: dir=, ca_cert= and "
		    "ca_key= are required");
		goto fail;
	}
	if ((st = check_ca(o, cert_path, key_path)) != WSE_OK)
		goto fail;

	if (mkdir(o->dir, 0700) == -1 && errno != EEXIST) {
		st = wse_err(WSE_ERR_CONFIG, "ondemand: cannot create dir=%s: "
		    "%s", o->dir, strerror(errno));
		goto fail;
	}
	if ((o->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1) {
		st = wse_err(WSE_ERR_CONFIG, "ondemand: cannot open dir=%s: %s",
		    o->dir, strerror(errno));
		goto fail;
	}
	if ((st = open_subdir(o, "uploads", &o->upfd)) != WSE_OK ||
	    (st = open_subdir(o, "attachments", &o->atfd)) != WSE_OK ||
	    (st = db_open(o)) != WSE_OK)
		goto fail;
	sweep(o, o->atfd, 1);
	sweep(o, o->upfd, 0);
	expire(o, host->now());
	free(copy);
	host->log(host, "serving %s; tokens %" PRId64 " s, attachments %"
	    PRId64 " s, uploads up to %" PRIu64 " bytes for %" PRId64 " s",
	    o->dir, o->token_lifetime, o->attachment_lifetime, o->max_size,
	    o->upload_lifetime);
	*state_r = o;
	return WSE_OK;
fail:
	free(copy);
	od_free(o);
	return st;
}

static void
od_deinit(void *state)
{
	od_free(state);
}

static const struct wse_plugin ondemand_plugin = {
	.abi = WSE_PLUGIN_ABI,
	.name = "ondemand",
	.init = od_init,
	.deinit = od_deinit,
	.ops = od_ops,
	.op_flags = od_op_flags,
	.call = od_call,
	.submit = od_submit,
};

WSE_PLUGIN_EXPORT const struct wse_plugin *
wse_plugin_entry(void)
{
	return &ondemand_plugin;
}
