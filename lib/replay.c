/*
 * replay.c - the replay cache front end and its in-memory backend.
 */
#include "replay.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct wse_replay {
	const struct wse_replay_ops *ops;
	void *ctx;
};

wse_status
wse_replay_new(const struct wse_replay_ops *ops, void *ctx, wse_replay **r_r)
{
	wse_replay *r;

	*r_r = NULL;
	if (ops == NULL || ops->seen == NULL || ops->insert == NULL)
		return wse_err(WSE_ERR_INVALID, "incomplete replay backend");
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		if (ops->free != NULL)
			ops->free(ctx);
		return wse_err(WSE_ERR_NOMEM, "cannot allocate replay cache");
	}
	r->ops = ops;
	r->ctx = ctx;
	*r_r = r;
	return WSE_OK;
}

void
wse_replay_free(wse_replay **rp)
{
	wse_replay *r;

	if (rp == NULL || (r = *rp) == NULL)
		return;
	if (r->ops->free != NULL)
		r->ops->free(r->ctx);
	free(r);
	*rp = NULL;
}

static wse_status
check_id(const char *id)
{
	size_t n;

	if (id == NULL || (n = strlen(id)) == 0)
		return wse_err(WSE_ERR_INVALID, "empty replay identifier");
	if (n > 256)
		return wse_err(WSE_ERR_INVALID, "replay identifier too long");
	return WSE_OK;
}

wse_status
wse_replay_seen(wse_replay *r, const char *id, int64_t now)
{
	wse_status st;

	if ((st = check_id(id)) != WSE_OK)
		return st;
	return r->ops->seen(r->ctx, id, now);
}

wse_status
wse_replay_check(wse_replay *r, const char *id, int64_t created, int64_t now)
{
	int64_t floor;
	wse_status st;

	if ((st = check_id(id)) != WSE_OK)
		return st;
	floor = r->ops->floor != NULL ? r->ops->floor(r->ctx) : 0;
	if (floor > 0 && created < floor)
		return wse_err(WSE_ERR_EXPIRED, "Timestamp is older than the "
		    "replay cache's memory (the server's machine restarted); "
		    "sign the message again");
	return r->ops->seen(r->ctx, id, now);
}

wse_status
wse_replay_insert(wse_replay *r, const char *id, int64_t expires,
    int64_t now)
{
	wse_status st;

	if ((st = check_id(id)) != WSE_OK)
		return st;
	return r->ops->insert(r->ctx, id, expires, now);
}

/* ---- in-memory backend: a chained hash table under one mutex ---- */

struct mem_entry {
	struct mem_entry *next;
	int64_t expires;
	char id[];
};

struct mem_cache {
	pthread_mutex_t lock;
	struct mem_entry **slots;
	size_t nslots;
	size_t count;
	size_t max;
};

static size_t
mem_hash(const char *s, size_t nslots)
{
	uint64_t h = 1469598103934665603ull;	/* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return (size_t)(h % nslots);
}

/* Remove expired entries; caller holds the lock. */
static void
mem_purge(struct mem_cache *m, int64_t now)
{
	size_t i;

	for (i = 0; i < m->nslots; i++) {
		struct mem_entry **pp = &m->slots[i], *e;

		while ((e = *pp) != NULL) {
			if (e->expires <= now) {
				*pp = e->next;
				free(e);
				m->count--;
			} else
				pp = &e->next;
		}
	}
}

static struct mem_entry *
mem_find(struct mem_cache *m, const char *id, int64_t now)
{
	struct mem_entry *e;

	for (e = m->slots[mem_hash(id, m->nslots)]; e; e = e->next)
		if (e->expires > now && strcmp(e->id, id) == 0)
			return e;
	return NULL;
}

static wse_status
mem_seen(void *ctx, const char *id, int64_t now)
{
	struct mem_cache *m = ctx;
	struct mem_entry *e;

	pthread_mutex_lock(&m->lock);
	e = mem_find(m, id, now);
	pthread_mutex_unlock(&m->lock);
	return e != NULL ? wse_err(WSE_ERR_REPLAY,
	    "message identifier %s was seen before", id) : WSE_OK;
}

static wse_status
mem_insert(void *ctx, const char *id, int64_t expires, int64_t now)
{
	struct mem_cache *m = ctx;
	struct mem_entry *e;
	size_t len = strlen(id), slot;
	wse_status st = WSE_OK;

	pthread_mutex_lock(&m->lock);
	if (mem_find(m, id, now) != NULL) {
		st = wse_err(WSE_ERR_REPLAY,
		    "message identifier %s was seen before", id);
		goto out;
	}
	if (m->count >= m->max)
		mem_purge(m, now);
	if (m->count >= m->max) {
		st = wse_err(WSE_ERR_TEMPFAIL, "replay cache is full");
		goto out;
	}
	if ((e = malloc(sizeof(*e) + len + 1)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot grow replay cache");
		goto out;
	}
	memcpy(e->id, id, len + 1);
	e->expires = expires;
	slot = mem_hash(id, m->nslots);
	e->next = m->slots[slot];
	m->slots[slot] = e;
	m->count++;
out:
	pthread_mutex_unlock(&m->lock);
	return st;
}

static void
mem_free(void *ctx)
{
	struct mem_cache *m = ctx;

	if (m == NULL)
		return;
	mem_purge(m, INT64_MAX);
	pthread_mutex_destroy(&m->lock);
	free(m->slots);
	free(m);
}

static const struct wse_replay_ops mem_ops = {
	.seen = mem_seen,
	.insert = mem_insert,
	.free = mem_free,
};

wse_status
wse_replay_memory_new(size_t max_entries, wse_replay **r_r)
{
	struct mem_cache *m;

	*r_r = NULL;
	if (max_entries == 0)
		return wse_err(WSE_ERR_INVALID, "replay cache of size 0");
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate replay cache");
	m->max = max_entries;
	m->nslots = max_entries < 1024 ? 64 : max_entries / 4;
	if ((m->slots = calloc(m->nslots, sizeof(*m->slots))) == NULL) {
		free(m);
		return wse_err(WSE_ERR_NOMEM, "cannot allocate replay cache");
	}
	pthread_mutex_init(&m->lock, NULL);
	return wse_replay_new(&mem_ops, m, r_r);
}

size_t
wse_replay_memory_count(wse_replay *r, int64_t now)
{
	struct mem_cache *m;
	size_t n;

	if (r == NULL || r->ops != &mem_ops)
		return 0;
	m = r->ctx;
	pthread_mutex_lock(&m->lock);
	mem_purge(m, now);
	n = m->count;
	pthread_mutex_unlock(&m->lock);
	return n;
}
