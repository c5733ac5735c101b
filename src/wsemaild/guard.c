/*
 * guard.c - slows down password guessing (SECURITY-NOTES: "rate-limit
 * guessing per account and per address with backoff, never a permanent
 * lockout").
 *
 * Every password-profile request that fails its MAC counts one failure
 * against the account it names and one against the client's IP address.
 * Past a number of free failures (GUARD_FREE_USER for an account,
 * GUARD_FREE_ADDR for an address, which may be shared by many users) the
 * key is blocked for 2^k seconds, k growing with each further failure, at
 * most GUARD_MAX_BLOCK; while blocked, requests naming it are refused
 * with TempFail before any cryptography.  A success clears the account's
 * and the address's counts; a key without failures for GUARD_FORGET
 * seconds is forgotten.  Nothing is permanent.
 *
 * The table is in memory, per process, bounded (GUARD_SLOTS entries; when
 * a probe window is full a key that is not blocked gives way, the one
 * seen longest ago; a blocked one only when all are), and guarded by one
 * mutex.  Several processes sharing one store each keep
 * their own counts: an attacker spreading guesses over them gets
 * proportionally more, still bounded.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsed.h"

#define GUARD_SLOTS 4096
#define GUARD_PROBE 16
#define GUARD_FREE_USER 5
#define GUARD_FREE_ADDR 20
#define GUARD_MAX_BLOCK 300
#define GUARD_FORGET 3600
#define GUARD_KEY_MAX 300

struct guard_slot {
	char key[GUARD_KEY_MAX];	/* "" = free */
	unsigned fails;
	int64_t until;			/* blocked before this time */
	int64_t last;			/* last failure */
};

struct wsed_guard {
	pthread_mutex_t lock;
	struct guard_slot slot[GUARD_SLOTS];
};

wse_status
wsed_guard_new(struct wsed_guard **g_r)
{
	struct wsed_guard *g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate the guard");
	pthread_mutex_init(&g->lock, NULL);
	*g_r = g;
	return WSE_OK;
}

void
wsed_guard_free(struct wsed_guard **g)
{
	if (g == NULL || *g == NULL)
		return;
	pthread_mutex_destroy(&(*g)->lock);
	free(*g);
	*g = NULL;
}

static uint32_t
hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/*
 * 1 when slot a should give way before slot b: a free slot first, then
 * a key that is not blocked (the one seen longest ago first), a blocked
 * key last (the one whose block ends first).  Failures spread over many
 * names thus push out only counts, never a block.
 */
static int
gives_way(const struct guard_slot *a, const struct guard_slot *b,
    int64_t now)
{
	if (a->key[0] == '\0' || b->key[0] == '\0')
		return a->key[0] == '\0' && b->key[0] != '\0';
	if ((a->until > now) != (b->until > now))
		return a->until <= now;
	if (a->until > now)
		return a->until < b->until;
	return a->last < b->last;
}

/* The slot of key (NULL if absent, or a slot to take when create). */
static struct guard_slot *
find(struct wsed_guard *g, const char *key, int create, int64_t now)
{
	uint32_t h = hash(key);
	struct guard_slot *s, *victim = NULL;
	size_t i;

	for (i = 0; i < GUARD_PROBE; i++) {
		s = &g->slot[(h + i) % GUARD_SLOTS];
		if (s->key[0] != '\0' && now - s->last > GUARD_FORGET &&
		    s->until <= now)
			s->key[0] = '\0';	/* forgotten */
		if (s->key[0] != '\0' && strcmp(s->key, key) == 0)
			return s;
		if (victim == NULL || gives_way(s, victim, now))
			victim = s;
	}
	if (!create)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	(void)snprintf(victim->key, sizeof(victim->key), "%s", key);
	return victim;
}

static void
keys(const char *user, const char *addr, char ku[GUARD_KEY_MAX],
    char ka[GUARD_KEY_MAX])
{
	size_t n;

	(void)snprintf(ku, GUARD_KEY_MAX, "u:%s", user ? user : "");
	/* "IP:PORT" or "[IPv6]:PORT": the address without the port */
	n = addr ? strlen(addr) : 0;
	while (n > 0 && addr[n - 1] != ':')
		n--;
	if (n > 0)
		n--;
	(void)snprintf(ka, GUARD_KEY_MAX, "a:%.*s", (int)n, addr ? addr : "");
}

wse_status
wsed_guard_check(struct wsed_guard *g, const char *user, const char *addr,
    int64_t now)
{
	char ku[GUARD_KEY_MAX], ka[GUARD_KEY_MAX];
	struct guard_slot *s;
	int64_t wait = 0;

	if (g == NULL)
		return WSE_OK;
	keys(user, addr, ku, ka);
	pthread_mutex_lock(&g->lock);
	if (user != NULL && (s = find(g, ku, 0, now)) != NULL &&
	    s->until > now)
		wait = s->until - now;
	if (addr != NULL && (s = find(g, ka, 0, now)) != NULL &&
	    s->until - now > wait)
		wait = s->until - now;
	pthread_mutex_unlock(&g->lock);
	if (wait > 0)
		return wse_err(WSE_ERR_TEMPFAIL, "too many failed log-ins for "
		    "%.100s or from %.60s: retry in %lld s", user ? user : "?",
		    addr ? addr : "?", (long long)wait);
	return WSE_OK;
}

static void
fail_one(struct wsed_guard *g, const char *key, unsigned free_fails,
    int64_t now)
{
	struct guard_slot *s = find(g, key, 1, now);
	unsigned k;

	s->fails++;
	s->last = now;
	if (s->fails > free_fails) {
		k = s->fails - free_fails - 1;
		s->until = now + (k >= 9 ? GUARD_MAX_BLOCK :
		    ((int64_t)1 << k) < GUARD_MAX_BLOCK ? ((int64_t)1 << k) :
		    GUARD_MAX_BLOCK);
	}
}

void
wsed_guard_fail(struct wsed_guard *g, const char *user, const char *addr,
    int64_t now)
{
	char ku[GUARD_KEY_MAX], ka[GUARD_KEY_MAX];

	if (g == NULL)
		return;
	keys(user, addr, ku, ka);
	pthread_mutex_lock(&g->lock);
	if (user != NULL)
		fail_one(g, ku, GUARD_FREE_USER, now);
	if (addr != NULL)
		fail_one(g, ka, GUARD_FREE_ADDR, now);
	pthread_mutex_unlock(&g->lock);
}

void
wsed_guard_ok(struct wsed_guard *g, const char *user, const char *addr,
    int64_t now)
{
	char ku[GUARD_KEY_MAX], ka[GUARD_KEY_MAX];
	struct guard_slot *s;

	if (g == NULL)
		return;
	keys(user, addr, ku, ka);
	pthread_mutex_lock(&g->lock);
	if (user != NULL && (s = find(g, ku, 0, now)) != NULL)
		s->key[0] = '\0';
	if (addr != NULL && (s = find(g, ka, 0, now)) != NULL)
		s->key[0] = '\0';
	pthread_mutex_unlock(&g->lock);
}
