/*
 * replay.h - the replay cache interface (the paper's "replay cache of B").
 *
 * A verifier first asks whether an identifier was seen (the paper's check
 * order puts that look-up before the signature check), and only after every
 * check has passed inserts it.  The insert is atomic: of two concurrent
 * copies of one message only one insert succeeds, the other gets
 * WSE_ERR_REPLAY.  Entries expire; an expired entry is as good as absent.
 * Backends: the in-memory cache here (one process) and the store's
 * persistent, shared cache.
 */
#ifndef WSE_REPLAY_H
#define WSE_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct wse_replay wse_replay;

struct wse_replay_ops {
	/* WSE_OK when id is absent (or expired), WSE_ERR_REPLAY when present,
	 * another status when the backend cannot answer. */
	wse_status (*seen)(void *ctx, const char *id, int64_t now);
	/* Insert id until expires; WSE_ERR_REPLAY when a live entry exists. */
	wse_status (*insert)(void *ctx, const char *id, int64_t expires,
	    int64_t now);
	void (*free)(void *ctx);
	/* Optional: a time (s) before which entries may be missing (the
	 * store's commits of lone entries skip the fsync, and the machine
	 * restarted since); 0 or NULL: the cache forgets nothing. */
	int64_t (*floor)(void *ctx);
};

/* Wrap a backend; the cache owns ctx and frees it with ops->free. */
wse_status wse_replay_new(const struct wse_replay_ops *ops, void *ctx,
    wse_replay **r_r);

/* In-process cache holding at most max_entries live identifiers (an
 * insert beyond that, after expired entries are purged, fails with
 * WSE_ERR_TEMPFAIL: refusing is safe, forgetting is not). */
wse_status wse_replay_memory_new(size_t max_entries, wse_replay **r_r);

/* Live entries in an in-memory cache (for tests and statistics). */
size_t wse_replay_memory_count(wse_replay *r, int64_t now);

wse_status wse_replay_seen(wse_replay *r, const char *id, int64_t now);
/* The look-up a verifier makes: WSE_ERR_EXPIRED when a message created
 * at `created` is older than the cache's floor (it may have been seen
 * and forgotten), else as wse_replay_seen. */
wse_status wse_replay_check(wse_replay *r, const char *id, int64_t created,
    int64_t now);
wse_status wse_replay_insert(wse_replay *r, const char *id, int64_t expires,
    int64_t now);

/* Free; accepts NULL and sets *r to NULL. */
void wse_replay_free(wse_replay **r);

#endif
