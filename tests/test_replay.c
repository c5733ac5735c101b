/*
 * test_replay.c - the replay cache: look-up, atomic insert, expiry,
 * capacity, concurrency.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "replay.h"

static void
test_seen_insert_expire(void **state)
{
	wse_replay *r = NULL;

	(void)state;
	assert_wse_ok(wse_replay_memory_new(100, &r));
	assert_wse_ok(wse_replay_seen(r, "urn:uuid:a", 1000));
	assert_wse_ok(wse_replay_insert(r, "urn:uuid:a", 1300, 1000));
	assert_wse_status(wse_replay_seen(r, "urn:uuid:a", 1001),
	    WSE_ERR_REPLAY);
	assert_wse_status(wse_replay_insert(r, "urn:uuid:a", 1300, 1001),
	    WSE_ERR_REPLAY);
	assert_int_equal(wse_replay_memory_count(r, 1001), 1);
	/* At its expiry the entry is gone, and the id may enter again. */
	assert_wse_ok(wse_replay_seen(r, "urn:uuid:a", 1300));
	assert_int_equal(wse_replay_memory_count(r, 1300), 0);
	assert_wse_ok(wse_replay_insert(r, "urn:uuid:a", 1600, 1300));
	/* Bad identifiers. */
	assert_wse_status(wse_replay_seen(r, "", 0), WSE_ERR_INVALID);
	{
		char big[300];
		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_wse_status(wse_replay_insert(r, big, 10, 0),
		    WSE_ERR_INVALID);
	}
	wse_replay_free(&r);
	assert_null(r);
	wse_replay_free(&r);
}

static void
test_capacity(void **state)
{
	wse_replay *r = NULL;
	char id[32];
	int i;

	(void)state;
	assert_wse_ok(wse_replay_memory_new(10, &r));
	for (i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "id-%d", i);
		assert_wse_ok(wse_replay_insert(r, id, 100 + i, 0));
	}
	/* Full of live entries: refuse (never forget one). */
	assert_wse_status(wse_replay_insert(r, "id-x", 200, 0),
	    WSE_ERR_TEMPFAIL);
	/* Once some expire there is room again. */
	assert_wse_ok(wse_replay_insert(r, "id-x", 200, 105));
	assert_int_equal(wse_replay_memory_count(r, 105), 5);
	wse_replay_free(&r);
}

struct race {
	wse_replay *r;
	int wins;
};

static void *
racer(void *arg)
{
	struct race *ra = arg;
	char id[32];
	int i;

	for (i = 0; i < 2000; i++) {
		snprintf(id, sizeof(id), "race-%d", i);
		if (wse_replay_insert(ra->r, id, 1000, 0) == WSE_OK)
			__atomic_add_fetch(&ra->wins, 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

/* Of concurrent inserts of the same identifiers exactly one wins each. */
static void
test_concurrent_insert(void **state)
{
	struct race ra = { 0 };
	pthread_t t[4];
	int i;

	(void)state;
	assert_wse_ok(wse_replay_memory_new(100000, &ra.r));
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, racer, &ra), 0);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(ra.wins, 2000);
	wse_replay_free(&ra.r);
}

static int custom_frees;
static wse_status c_seen(void *c, const char *id, int64_t now)
{ (void)c; (void)id; (void)now; return WSE_ERR_TEMPFAIL; }
static wse_status c_insert(void *c, const char *id, int64_t e, int64_t now)
{ (void)c; (void)id; (void)e; (void)now; return WSE_OK; }
static void c_free(void *c) { (void)c; custom_frees++; }

/* A backend that cannot answer propagates its status (fail closed). */
static void
test_custom_backend(void **state)
{
	static const struct wse_replay_ops ops = { .seen = c_seen,
	    .insert = c_insert, .free = c_free };
	static const struct wse_replay_ops bad = { .insert = c_insert,
	    .free = c_free };
	wse_replay *r = NULL;

	(void)state;
	assert_wse_ok(wse_replay_new(&ops, NULL, &r));
	assert_wse_status(wse_replay_seen(r, "x", 0), WSE_ERR_TEMPFAIL);
	assert_int_equal(wse_replay_memory_count(r, 0), 0);
	wse_replay_free(&r);
	assert_int_equal(custom_frees, 1);
	assert_wse_status(wse_replay_new(&bad, NULL, &r), WSE_ERR_INVALID);
	assert_wse_status(wse_replay_memory_new(0, &r), WSE_ERR_INVALID);
}

static int64_t c_floor(void *c) { (void)c; return 1000; }
static wse_status c_ok(void *c, const char *id, int64_t now)
{ (void)c; (void)id; (void)now; return WSE_OK; }

/* A cache that may have forgotten what came before its floor refuses
 * messages created before it as expired; the others are looked up. */
static void
test_floor(void **state)
{
	static const struct wse_replay_ops ops = { .seen = c_ok,
	    .insert = c_insert, .free = c_free, .floor = c_floor };
	static const char id[] = "urn:uuid:8d3c4a52-1b6e-4f0a-9c1d-2e5f7a9b0c3d";
	wse_replay *r = NULL, *m = NULL;

	(void)state;
	assert_wse_ok(wse_replay_new(&ops, NULL, &r));
	assert_wse_status(wse_replay_check(r, id, 999, 1100), WSE_ERR_EXPIRED);
	assert_wse_status(wse_replay_check(r, id, 0, 1100), WSE_ERR_EXPIRED);
	assert_wse_ok(wse_replay_check(r, id, 1000, 1100));
	assert_wse_ok(wse_replay_check(r, id, 1050, 1100));
	assert_wse_status(wse_replay_check(r, "", 1050, 1100),
	    WSE_ERR_INVALID);
	wse_replay_free(&r);
	/* No floor: only the look-up decides. */
	assert_wse_ok(wse_replay_memory_new(4, &m));
	assert_wse_ok(wse_replay_check(m, id, 0, 1100));
	assert_wse_ok(wse_replay_insert(m, id, 2000, 1100));
	assert_wse_status(wse_replay_check(m, id, 1050, 1100), WSE_ERR_REPLAY);
	wse_replay_free(&m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seen_insert_expire),
		cmocka_unit_test(test_capacity),
		cmocka_unit_test(test_concurrent_insert),
		cmocka_unit_test(test_custom_backend),
		cmocka_unit_test(test_floor),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
