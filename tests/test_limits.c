/*
 * test_limits.c - defaults and wse_limits_set() of lib/limits.c.
 */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "wselimits.h"

/* The configurable range of each limit (lib/limits.c). */
static const struct {
	const char *name;
	unsigned long long lo, hi;
} ranges[] = {
	{ "max_message_bytes", 1024, 1ull << 34 },
	{ "max_xml_depth", 8, 256 },
	{ "max_attrs_per_tag", 4, 1024 },
	{ "max_tag_bytes", 256, 1u << 20 },
	{ "max_xml_nodes", 64, 100000000 },
	{ "max_soap_headers", 4, 1024 },
	{ "max_references", 5, 64 },
	{ "max_transforms", 1, 8 },
	{ "max_cert_chain", 1, 16 },
	{ "freshness_window", 1, 30ull * 86400 },
	{ "future_skew", 0, 86400 },
	{ "pbkdf2_min_iterations", 1, 100000000 },
	{ "pbkdf2_iterations", 1, 100000000 },
};
#define NRANGES (sizeof(ranges) / sizeof(ranges[0]))

/* Read a limit back by name, as an unsigned long long. */
static unsigned long long
get_field(const wse_limits *l, const char *name)
{
#define G(n) if (strcmp(name, #n) == 0) return (unsigned long long)l->n
	G(max_message_bytes);
	G(max_xml_depth);
	G(max_attrs_per_tag);
	G(max_tag_bytes);
	G(max_xml_nodes);
	G(max_soap_headers);
	G(max_references);
	G(max_transforms);
	G(max_cert_chain);
	G(freshness_window);
	G(future_skew);
	G(pbkdf2_min_iterations);
	G(pbkdf2_iterations);
#undef G
	fail_msg("no such field %s", name);
	return 0;
}

static void
test_defaults(void **state)
{
	wse_limits l;

	(void)state;
	memset(&l, 0xa5, sizeof(l));
	wse_limits_default(&l);
	assert_int_equal(l.max_message_bytes, 10u * 1024 * 1024);
	assert_int_equal(l.max_xml_depth, 32);
	assert_int_equal(l.max_attrs_per_tag, 32);
	assert_int_equal(l.max_tag_bytes, 8192);
	assert_int_equal(l.max_xml_nodes, 100000);
	assert_int_equal(l.max_soap_headers, 32);
	assert_int_equal(l.max_references, 8);
	assert_int_equal(l.max_transforms, 2);
	assert_int_equal(l.max_cert_chain, 4);
	assert_int_equal(l.freshness_window, 300);
	assert_int_equal(l.future_skew, 60);
	assert_int_equal(l.pbkdf2_min_iterations, 600000);
	assert_int_equal(l.pbkdf2_iterations, 600000);
}

/* Each default lies inside its configurable range. */
static void
test_defaults_in_range(void **state)
{
	wse_limits l;
	size_t i;

	(void)state;
	wse_limits_default(&l);
	for (i = 0; i < NRANGES; i++) {
		unsigned long long v = get_field(&l, ranges[i].name);

		if (v < ranges[i].lo || v > ranges[i].hi)
			fail_msg("default %s = %llu outside [%llu, %llu]",
			    ranges[i].name, v, ranges[i].lo, ranges[i].hi);
	}
}

static void
test_set_min_max(void **state)
{
	wse_limits l;
	char v[64];
	size_t i;

	(void)state;
	for (i = 0; i < NRANGES; i++) {
		wse_limits_default(&l);
		(void)snprintf(v, sizeof(v), "%llu", ranges[i].lo);
		assert_wse_ok(wse_limits_set(&l, ranges[i].name, v));
		assert_true(get_field(&l, ranges[i].name) == ranges[i].lo);
		(void)snprintf(v, sizeof(v), "%llu", ranges[i].hi);
		assert_wse_ok(wse_limits_set(&l, ranges[i].name, v));
		assert_true(get_field(&l, ranges[i].name) == ranges[i].hi);
	}
}

static void
test_set_out_of_range(void **state)
{
	wse_limits l;
	unsigned long long before;
	char v[64];
	size_t i;

	(void)state;
	for (i = 0; i < NRANGES; i++) {
		wse_limits_default(&l);
		before = get_field(&l, ranges[i].name);
		if (ranges[i].lo == 0)
			(void)snprintf(v, sizeof(v), "-1");
		else
			(void)snprintf(v, sizeof(v), "%llu", ranges[i].lo - 1);
		wse_err_clear();
		assert_wse_status(wse_limits_set(&l, ranges[i].name, v),
		    WSE_ERR_INVALID);
		assert_non_null(strstr(wse_err_last(), ranges[i].name));
		(void)snprintf(v, sizeof(v), "%llu", ranges[i].hi + 1);
		assert_wse_status(wse_limits_set(&l, ranges[i].name, v),
		    WSE_ERR_INVALID);
		/* A refused value leaves the limit unchanged. */
		assert_true(get_field(&l, ranges[i].name) == before);
	}
}

static void
test_set_garbage(void **state)
{
	static const char *const bad[] = {
		"", "abc", "-5", "-0", "12abc", "12 ", " 12", "0x20", "1e3",
		"12.5", "+12", "99999999999999999999999999",
		"18446744073709551616",
	};
	wse_limits l;
	size_t i, j;

	(void)state;
	for (i = 0; i < NRANGES; i++) {
		for (j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
			wse_limits_default(&l);
			if (wse_limits_set(&l, ranges[i].name, bad[j]) !=
			    WSE_ERR_INVALID)
				fail_msg("%s accepted \"%s\"", ranges[i].name,
				    bad[j]);
		}
	}
}

static void
test_set_unknown(void **state)
{
	wse_limits l, orig;

	(void)state;
	wse_limits_default(&l);
	orig = l;
	assert_wse_status(wse_limits_set(&l, "max_bogus", "10"),
	    WSE_ERR_NOT_FOUND);
	assert_wse_status(wse_limits_set(&l, "", "10"), WSE_ERR_NOT_FOUND);
	assert_wse_status(wse_limits_set(&l, "MAX_XML_DEPTH", "10"),
	    WSE_ERR_NOT_FOUND);
	assert_wse_status(wse_limits_set(&l, "max_xml_depth ", "10"),
	    WSE_ERR_NOT_FOUND);
	assert_memory_equal(&l, &orig, sizeof(l));
}

/* Setting one limit touches no other field. */
static void
test_set_is_local(void **state)
{
	wse_limits l, orig;
	size_t i, j;
	char v[64];

	(void)state;
	for (i = 0; i < NRANGES; i++) {
		wse_limits_default(&l);
		orig = l;
		(void)snprintf(v, sizeof(v), "%llu", ranges[i].hi);
		assert_wse_ok(wse_limits_set(&l, ranges[i].name, v));
		for (j = 0; j < NRANGES; j++)
			if (j != i)
				assert_true(get_field(&l, ranges[j].name) ==
				    get_field(&orig, ranges[j].name));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_defaults_in_range),
		cmocka_unit_test(test_set_min_max),
		cmocka_unit_test(test_set_out_of_range),
		cmocka_unit_test(test_set_garbage),
		cmocka_unit_test(test_set_unknown),
		cmocka_unit_test(test_set_is_local),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
