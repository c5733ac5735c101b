/*
 * store-private.h - the function table a store driver fills in (after
 * Dovecot's sql-api-private.h).
 *
 * store.c owns everything that is the same for every driver: URI parsing,
 * argument validation and canonical forms (mailboxes and domains in lower
 * case, names 1..255 bytes of UTF-8 without control characters, replay
 * ids up to 256 bytes as replay.h allows; subjects and error reasons are
 * display text, cut to size and made safe rather than refused), the
 * de-duplication of mailbox lists, and the sealing of users' derived keys,
 * so that a driver only ever sees and stores sealed bytes.
 *
 * A driver owns the database: connection(s), schema and migrations,
 * transactions, and the mapping of its errors onto wse_status:
 *
 *   busy / locked after the busy timeout, disk full, I/O error
 *	-> WSE_ERR_TEMPFAIL with the reason (never accept-then-lose);
 *   a unique-key conflict the operation expects
 *	-> WSE_ERR_EXISTS / WSE_ERR_REPLAY as store.h says;
 *   no row where one was addressed -> WSE_ERR_NOT_FOUND;
 *   anything else -> WSE_ERR_INTERNAL or WSE_ERR_IO.
 *
 * Every operation that changes state is one transaction and returns
 * WSE_OK only after its commit succeeded; a read is one statement or one
 * read transaction.  Arguments reaching a driver are validated: non-NULL
 * where store.h does not allow NULL, names NUL-terminated and shorter
 * than WSE_STORE_NAME_MAX, mailbox lists free of duplicates, ids > 0,
 * limits > 0.
 *
 * Callbacks (fn) are called with no driver lock held, so that they may
 * call back into the store; listings are read in batches, so a listing
 * that runs while others write is consistent per batch, not as a whole.
 */
#ifndef WSE_STORE_PRIVATE_H
#define WSE_STORE_PRIVATE_H

#include "store.h"

/* Additional data bound into every sealed derived key: this prefix, its
 * NUL, then the user name.  A sealed key copied to another user's row
 * does not open. */
#define WSE_STORE_KEY_AAD "wsemail-user-key"
/* The seal-key check value kept in every database (see seal_check). */
#define WSE_STORE_CHECK_AAD "wsemail-seal-check"
/* Room for one sealed value: nonce(12) + 32 + tag(16), with slack. */
#define WSE_STORE_SEALED_MAX 128
/* De-duplication records older than this are dropped by
 * wse_store_expire: longer than the longest queue lifetime a sender may
 * have (WSE_QUEUE_LIFETIME_MAX) and a lease (at most a day) after it, so
 * a last retry of an item whose first delivery went unseen still finds
 * its record. */
#define WSE_STORE_DEDUP_KEEP (WSE_QUEUE_LIFETIME_MAX + 2 * 24 * 3600)

struct wse_store_driver;

/* The common head of every driver's store object (drivers embed it as
 * their first member). */
struct wse_store {
	const struct wse_store_driver *v;
	uint8_t seal_key[WSE_SEAL_KEY_LEN];	/* set by store.c after open */
	/* Set by the driver's open: replay entries of messages created
	 * before this time (s) may be missing (replay.h); 0: none. */
	int64_t replay_floor;
};

/* The operations, one per public function of store.h. */
struct wse_store_driver {
	const char *scheme;		/* "sqlite" in "sqlite:PATH" */

	/* Open (create, migrate) the database named by the rest of the
	 * URI; *s_r is the driver's object, its head zeroed except v. */
	wse_status (*open)(const char *target, wse_store **s_r);
	/* Release everything; s is not NULL. */
	void (*close)(wse_store *s);
	int (*schema_version)(wse_store *s);

	/* Keep sealed (candidate, len) as the database's seal-check value
	 * unless one is already there, in one transaction, and append the
	 * value now stored to stored (store.c unseals it to prove the seal
	 * key is the one the database was created with). */
	wse_status (*seal_check)(wse_store *s, const void *candidate,
	    size_t len, wse_buf *stored);

	/* users; sealed keys are opaque bytes to the driver */
	wse_status (*user_add)(wse_store *s, const char *name,
	    const uint8_t salt[WSE_SALT_LEN], uint32_t iterations,
	    const void *sealed, size_t sealed_len, int64_t now);
	wse_status (*user_set_key)(wse_store *s, const char *name,
	    const uint8_t salt[WSE_SALT_LEN], uint32_t iterations,
	    const void *sealed, size_t sealed_len);
	wse_status (*user_del)(wse_store *s, const char *name);
	/* rec and sealed may be NULL; sealed receives the sealed key. */
	wse_status (*user_get)(wse_store *s, const char *name,
	    wse_user_rec *rec, wse_buf *sealed);
	wse_status (*user_list)(wse_store *s, wse_user_fn fn, void *arg);

	/* messages; mailboxes[0..n-1] distinct, n >= 1 */
	wse_status (*deliver)(wse_store *s, const char *origin_domain,
	    const char *origin_id, const char *const *mailboxes, size_t n,
	    const wse_msg_meta *meta, const void *envelope, size_t len,
	    const char *replay_id, int64_t replay_expires, int64_t now);
	/* d[i] canonical as for deliver; the driver skips items whose
	 * status_r[i] is preset to a failure (refused by store.c). */
	wse_status (*deliver_many)(wse_store *s, const wse_delivery *d,
	    size_t n, int64_t now, wse_status *status_r);
	wse_status (*list)(wse_store *s, const char *mailbox, size_t offset,
	    size_t limit, wse_msg_fn fn, void *arg);
	wse_status (*count)(wse_store *s, const char *mailbox,
	    uint64_t *total_r, uint64_t *unread_r);
	wse_status (*fetch)(wse_store *s, const char *mailbox, int64_t id,
	    wse_msg_meta *meta, wse_buf *envelope);
	wse_status (*del)(wse_store *s, const char *mailbox, int64_t id);
	wse_status (*mark_read)(wse_store *s, const char *mailbox,
	    int64_t id, int read);

	/* queue; status_r[i] is preset to WSE_OK for submissions to store
	 * and to a failure for those store.c refused (the driver skips
	 * them); the driver sets WSE_ERR_REPLAY where it applies. */
	wse_status (*enqueue)(wse_store *s, const wse_submission *subs,
	    size_t n, int64_t now, int64_t lifetime, wse_status *status_r);
	wse_status (*queue_take)(wse_store *s, int64_t now, int64_t lease,
	    size_t limit, wse_queue_fn fn, void *arg);
	wse_status (*queue_done)(wse_store *s, int64_t id);
	wse_status (*queue_done_many)(wse_store *s, const int64_t *ids,
	    size_t n);
	wse_status (*queue_defer)(wse_store *s, int64_t id,
	    int64_t next_attempt, const char *error);
	wse_status (*queue_list)(wse_store *s, wse_queue_fn fn, void *arg);
	wse_status (*queue_flush)(wse_store *s, int64_t id, int64_t now);
	wse_status (*queue_delete)(wse_store *s, int64_t id);

	/* replay cache and expiry */
	wse_status (*replay_seen)(wse_store *s, const char *id, int64_t now);
	wse_status (*replay_insert)(wse_store *s, const char *id,
	    int64_t expires, int64_t now);
	wse_status (*expire)(wse_store *s, int64_t now);
	/* Optional (NULL: nothing to do). */
	wse_status (*checkpoint)(wse_store *s);
};

extern const struct wse_store_driver wse_store_driver_sqlite;

#endif
