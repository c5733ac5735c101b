/*
 * store.h - the message store interface (the paper's storage, queue and
 * retrieval plugins): users, mailboxes, messages, the delivery queue, the
 * replay cache and delivery de-duplication.
 *
 * One public API, several drivers (store-private.h holds the function
 * table they fill in; store-sqlite.c is the embedded default, a
 * PostgreSQL driver follows the same table).  Every driver passes the
 * same conformance suite (tests/test_store.c).
 *
 * Rules every driver keeps:
 *  - every state change is one transaction; success is returned only
 *    after the commit is durable (SQLite: WAL + synchronous=FULL).  The
 *    one exception is a replay entry stored alone: it must survive the
 *    death of the process, and may be lost with the machine only if the
 *    driver then sets a replay floor (store-private.h, replay.h);
 *  - prepared statements only; the schema is versioned and migrated on
 *    open;
 *  - "not found" (WSE_ERR_NOT_FOUND) is kept apart from "backend down"
 *    (WSE_ERR_TEMPFAIL / WSE_ERR_IO): a caller never turns a backend
 *    failure into a negative answer;
 *  - a user's derived key is sealed at rest (AES-256-GCM under the
 *    server's seal key, bound to the user name), never stored in clear;
 *  - the object is safe to use from several threads (drivers serialise
 *    internally where they must).
 */
#ifndef WSE_STORE_H
#define WSE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "replay.h"

/* The longest a queued item may wait for delivery (wsemaild's
 * "lifetime"); receivers keep their de-duplication records longer. */
#define WSE_QUEUE_LIFETIME_MAX (60 * 24 * 3600)

typedef struct wse_store wse_store;

/*
 * Open a store by URI: "sqlite:PATH" (created if absent, mode 0600).
 * seal_key seals users' derived keys at rest.  Migrates the schema to the
 * current version; WSE_ERR_UNSUPPORTED for a database of a newer version.
 */
wse_status wse_store_open(const char *uri,
    const uint8_t seal_key[WSE_SEAL_KEY_LEN], wse_store **s_r);
void wse_store_close(wse_store **s);

/* Schema version of the open store. */
int wse_store_schema_version(wse_store *s);

/* ---- users ---- */

#define WSE_STORE_NAME_MAX 256	/* mailbox / user names, with the NUL */

typedef struct wse_user_rec {
	char name[WSE_STORE_NAME_MAX];	/* the mailbox, "alice@a.test" */
	uint8_t salt[WSE_SALT_LEN];
	uint32_t iterations;
	int64_t created;
} wse_user_rec;

/* New user with its password-derived key. WSE_ERR_EXISTS if present. */
wse_status wse_store_user_add(wse_store *s, const char *name,
    const uint8_t salt[WSE_SALT_LEN], uint32_t iterations,
    const uint8_t key[WSE_DERIVED_KEY_LEN], int64_t now);
/* Replace salt, cost and key (password change). WSE_ERR_NOT_FOUND. */
wse_status wse_store_user_set_key(wse_store *s, const char *name,
    const uint8_t salt[WSE_SALT_LEN], uint32_t iterations,
    const uint8_t key[WSE_DERIVED_KEY_LEN]);
/* Delete a user and its mailbox. WSE_ERR_NOT_FOUND. */
wse_status wse_store_user_del(wse_store *s, const char *name);
/* Look a user up; key_r (may be NULL) receives the unsealed derived key.
 * WSE_ERR_NOT_FOUND for no such user. */
wse_status wse_store_user_get(wse_store *s, const char *name,
    wse_user_rec *rec, uint8_t key_r[WSE_DERIVED_KEY_LEN]);
/* Call fn for every user in name order; fn's non-OK status stops the
 * walk and is returned. */
typedef wse_status (*wse_user_fn)(void *arg, const wse_user_rec *rec);
wse_status wse_store_user_list(wse_store *s, wse_user_fn fn, void *arg);

/* ---- messages ---- */

#define WSE_STORE_SUBJECT_MAX 512

typedef struct wse_msg_meta {
	int64_t id;			/* per store, assigned on delivery */
	char mailbox[WSE_STORE_NAME_MAX];
	char from[WSE_STORE_NAME_MAX];
	char subject[WSE_STORE_SUBJECT_MAX];
	char origin_domain[WSE_STORE_NAME_MAX];	/* the sending server */
	char origin_id[WSE_STORE_NAME_MAX];	/* its MessageID */
	int64_t received;
	uint64_t size;			/* bytes of the stored envelope */
	int unread;
	unsigned flags;			/* WSE_MSG_* */
} wse_msg_meta;

#define WSE_MSG_REPORT	0x1u	/* a non-delivery report */
#define WSE_MSG_INSTANT	0x2u	/* an instant message stored as mail */
#define WSE_MSG_ONDEMAND 0x4u	/* carries on-demand attachments */

/*
 * Store one delivered message for mailboxes[0..n-1] in one transaction,
 * together with the replay identifier (replay_id, may be NULL, until
 * replay_expires).  meta supplies from, subject, flags; id, mailbox,
 * received and size are set here.  The envelope bytes (the sending
 * server's signed original) are kept unchanged for end-to-end checks.
 * De-duplication: when (origin_domain, origin_id) was stored before, the
 * call stores nothing and returns WSE_ERR_EXISTS (the caller answers
 * success: a retry after a lost answer has no second effect).  A replay_id
 * already present gives WSE_ERR_REPLAY and stores nothing.
 * WSE_ERR_NO_SUCH_USER (nothing stored) when a mailbox has no user.
 */
wse_status wse_store_deliver(wse_store *s, const char *origin_domain,
    const char *origin_id, const char *const *mailboxes, size_t n,
    const wse_msg_meta *meta, const void *envelope, size_t len,
    const char *replay_id, int64_t replay_expires, int64_t now);

/* One delivery of a group (wse_store_deliver_many): the arguments of
 * wse_store_deliver. */
typedef struct wse_delivery {
	const char *origin_domain;
	const char *origin_id;
	const char *const *mailboxes;
	size_t n;
	const wse_msg_meta *meta;
	const void *envelope;
	size_t len;
	const char *replay_id;		/* may be NULL */
	int64_t replay_expires;
	/* A message that came in a DeliverBatch (lib/batch.h): envelope is
	 * its item, head_b64 the batch's signed head (base64), kept once
	 * for every delivery of the group that passes the same pointer,
	 * head_index the item's position; wse_store_fetch hands out the
	 * batch original they make.  NULL: envelope is the whole original. */
	const char *head_b64;
	size_t head_len;
	size_t head_index;
} wse_delivery;

/*
 * Store n deliveries in ONE transaction (one commit for a batch that
 * arrived together).  Each is stored or refused alone, as
 * wse_store_deliver would: status_r[i] is WSE_OK, WSE_ERR_EXISTS
 * (delivered before: nothing stored, a success for the caller),
 * WSE_ERR_REPLAY, WSE_ERR_NO_SUCH_USER or WSE_ERR_INVALID (nothing of it
 * stored).  Returns WSE_OK when the transaction committed; otherwise the
 * failure, every status_r[i] set to it, and nothing stored.
 */
wse_status wse_store_deliver_many(wse_store *s, const wse_delivery *d,
    size_t n, int64_t now, wse_status *status_r);

/* Headers of mailbox, newest first, from offset, at most limit. */
typedef wse_status (*wse_msg_fn)(void *arg, const wse_msg_meta *meta);
wse_status wse_store_list(wse_store *s, const char *mailbox, size_t offset,
    size_t limit, wse_msg_fn fn, void *arg);
/* Number of messages and unread messages in mailbox. */
wse_status wse_store_count(wse_store *s, const char *mailbox,
    uint64_t *total_r, uint64_t *unread_r);
/* One message of mailbox: meta and the stored envelope (appended to
 * envelope, may be NULL; for a batch item its batch original).  WSE_ERR_NOT_FOUND when id is not in that
 * mailbox (whether or not it exists elsewhere). */
wse_status wse_store_fetch(wse_store *s, const char *mailbox, int64_t id,
    wse_msg_meta *meta, wse_buf *envelope);
wse_status wse_store_delete(wse_store *s, const char *mailbox, int64_t id);
wse_status wse_store_mark_read(wse_store *s, const char *mailbox, int64_t id,
    int read);

/* ---- the delivery queue ---- */

typedef struct wse_queue_item {
	int64_t id;
	char domain[WSE_STORE_NAME_MAX];	/* recipient domain */
	char sender[WSE_STORE_NAME_MAX];	/* for reports */
	char message_id[WSE_STORE_NAME_MAX];	/* the submission's id */
	int attempts;
	int64_t created, next_attempt, expires;
	unsigned flags;			/* WSE_MSG_REPORT: never bounce it */
	char last_error[256];
} wse_queue_item;

/* One submission to queue: for each recipient domain, its mailboxes. */
typedef struct wse_submission {
	const char *sender;
	const char *message_id;
	const char *replay_id;		/* may be NULL */
	int64_t replay_expires;
	unsigned flags;
	const void *payload;		/* what the delivery worker sends */
	size_t len;
	size_t ndomains;
	const char *const *domains;	/* [ndomains] */
	const char *const *const *rcpts; /* [ndomains][nrcpts[i]] */
	const size_t *nrcpts;
} wse_submission;

/*
 * Queue n submissions in ONE transaction (group commit): each gets one
 * queue item per recipient domain, next_attempt = now, expires =
 * now + lifetime.  Per-submission outcome in status_r[i]: WSE_OK, or
 * WSE_ERR_REPLAY (its replay_id was seen: nothing of it stored).  Returns
 * WSE_OK when the transaction committed, or the failure (nothing stored).
 */
wse_status wse_store_enqueue(wse_store *s, const wse_submission *subs,
    size_t n, int64_t now, int64_t lifetime, wse_status *status_r);

/*
 * Items due at now (next_attempt <= now), oldest first, at most limit;
 * each is leased until now + lease so concurrent workers never take the
 * same item.  The payload and recipients come with each item.
 */
typedef wse_status (*wse_queue_fn)(void *arg, const wse_queue_item *item,
    const char *const *rcpts, size_t nrcpts, const void *payload,
    size_t len);
wse_status wse_store_queue_take(wse_store *s, int64_t now, int64_t lease,
    size_t limit, wse_queue_fn fn, void *arg);
/* Delivered (or given up): remove the item. */
wse_status wse_store_queue_done(wse_store *s, int64_t id);
/* Several delivered items removed in one transaction; ids no longer in
 * the queue are skipped. */
wse_status wse_store_queue_done_many(wse_store *s, const int64_t *ids,
    size_t n);
/* Failed for now: attempts + 1, next try at next_attempt. */
wse_status wse_store_queue_defer(wse_store *s, int64_t id,
    int64_t next_attempt, const char *error);
/* Every item (for wsemail-admin queue list), oldest first. */
wse_status wse_store_queue_list(wse_store *s, wse_queue_fn fn, void *arg);
/* Make every item (or one, id > 0) due now. */
wse_status wse_store_queue_flush(wse_store *s, int64_t id, int64_t now);
/* Remove an item without delivering it. WSE_ERR_NOT_FOUND. */
wse_status wse_store_queue_delete(wse_store *s, int64_t id);

/* ---- replay cache ---- */

/* A replay cache backed by this store (shared by every process using the
 * same database; survives restarts).  The cache borrows s. */
wse_status wse_store_replay(wse_store *s, wse_replay **r_r);
/* Drop expired replay entries and leases. */
wse_status wse_store_expire(wse_store *s, int64_t now);
/* Move what the write-ahead log holds into the database, without holding
 * up other operations (a server calls it about once a second from a
 * background thread; once called, the driver leaves this work to it and
 * no longer does it inside a commit, up to a safety limit). */
wse_status wse_store_checkpoint(wse_store *s);

#endif
