/*
 * test_route.c - routing: RFC 2782 ordering, static routes, and (when
 * WSE_TEST_DNS names a DNS server, as tests/route_dns.sh does with a real
 * dnsmasq on loopback) SRV resolution.  The timeout cases bind their own
 * loopback UDP ports and need no DNS server.  The cache cases (when
 * WSE_TEST_DNSMASQ names dnsmasq) start their own dnsmasq instances with
 * the TTLs they need, stop and restart them with other records, and count
 * the queries each one logged.
 */
#include "testutil.h"
#include "testdns.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crypto.h"
#include "route.h"

/* ---- helpers ---- */

/* A scripted rnd: returns vals[i] in turn and records each bound. */
struct script {
	const uint32_t *vals;
	size_t nvals, i;
	uint32_t bounds[32];
	size_t nbounds;
	int always_max;		/* ignore vals, return bound */
};

static uint32_t
script_rnd(void *arg, uint32_t bound)
{
	struct script *s = arg;
	uint32_t v;

	if (s->nbounds < 32)
		s->bounds[s->nbounds++] = bound;
	if (s->always_max)
		return bound;
	v = s->i < s->nvals ? s->vals[s->i++] : 0;
	assert_true(v <= bound);
	return v;
}

/* A uniform rnd in [0, bound] from wse_random. */
static uint32_t
csprng_rnd(void *arg, uint32_t bound)
{
	uint64_t range = (uint64_t)bound + 1;
	uint64_t limit = ((uint64_t)1 << 32) - (((uint64_t)1 << 32) % range);
	uint32_t x;

	(void)arg;
	do {
		assert_wse_ok(wse_random(&x, sizeof(x)));
	} while ((uint64_t)x >= limit);
	return (uint32_t)((uint64_t)x % range);
}

static wse_srv_rec
rec(const char *host, uint16_t prio, uint16_t weight)
{
	wse_srv_rec r;

	memset(&r, 0, sizeof(r));
	snprintf(r.host, sizeof(r.host), "%s", host);
	r.priority = prio;
	r.weight = weight;
	r.port = 7000;
	return r;
}

static void
assert_order(const wse_srv_rec *recs, size_t n, const char *const *want)
{
	size_t i;

	for (i = 0; i < n; i++)
		assert_string_equal(recs[i].host, want[i]);
}


static int
target_has_addr(const wse_route_target *t, const char *addr)
{
	size_t i;

	for (i = 0; i < t->naddrs; i++)
		if (strcmp(t->addrs[i], addr) == 0)
			return 1;
	return 0;
}

/* ---- RFC 2782 ordering ---- */

static void
test_order_priority(void **state)
{
	wse_srv_rec r[6];
	struct script s = { 0 };
	size_t i;

	(void)state;
	r[0] = rec("p30", 30, 5);
	r[1] = rec("p10a", 10, 1);
	r[2] = rec("p20", 20, 0);
	r[3] = rec("p10b", 10, 1);
	r[4] = rec("p0", 0, 100);
	r[5] = rec("p65535", 65535, 1);
	wse_srv_order(r, 6, script_rnd, &s);
	for (i = 1; i < 6; i++)
		assert_true(r[i - 1].priority <= r[i].priority);
	assert_string_equal(r[0].host, "p0");
	assert_string_equal(r[3].host, "p20");
	assert_string_equal(r[4].host, "p30");
	assert_string_equal(r[5].host, "p65535");
	/* single-member groups need no random number; p10 asked once */
	assert_int_equal(s.nbounds, 1);
	assert_int_equal(s.bounds[0], 2);
	/* rnd 0: first entry with running sum >= 0 */
	assert_string_equal(r[1].host, "p10a");
	assert_string_equal(r[2].host, "p10b");

	/* n = 0 and n = 1 are no-ops */
	wse_srv_order(r, 0, script_rnd, &s);
	wse_srv_order(r, 1, script_rnd, &s);
	assert_string_equal(r[0].host, "p0");
	assert_int_equal(s.nbounds, 1);
}

/*
 * The RFC's selection: zero weights first, running sums, the first entry
 * whose running sum is >= the random number in [0, total].
 */
static void
test_order_rfc_algorithm(void **state)
{
	wse_srv_rec in[5], r[5];
	static const uint32_t vals[] = { 75, 0, 61 };
	static const char *const want1[] = { "D", "B", "E", "C", "A" };
	static const char *const want_max[] = { "D", "C", "B", "A", "E" };
	static const char *const want_zero[] = { "D", "E", "A", "B", "C" };
	struct script s;

	(void)state;
	in[0] = rec("A", 10, 60);
	in[1] = rec("B", 10, 30);
	in[2] = rec("C", 10, 10);
	in[3] = rec("D", 5, 0);
	in[4] = rec("E", 10, 0);

	/* group p10 as the RFC arranges it: E(0) A(60) B(90) C(100).
	 * 75 -> B; then E(0) A(60) C(70): 0 -> E; then A(60) C(70):
	 * 61 -> C; A is left. */
	memcpy(r, in, sizeof(r));
	memset(&s, 0, sizeof(s));
	s.vals = vals;
	s.nvals = 3;
	wse_srv_order(r, 5, script_rnd, &s);
	assert_order(r, 5, want1);
	assert_int_equal(s.nbounds, 3);
	assert_int_equal(s.bounds[0], 100);
	assert_int_equal(s.bounds[1], 70);
	assert_int_equal(s.bounds[2], 70);

	/* always the bound: the last of the list each time */
	memcpy(r, in, sizeof(r));
	memset(&s, 0, sizeof(s));
	s.always_max = 1;
	wse_srv_order(r, 5, script_rnd, &s);
	assert_order(r, 5, want_max);
	assert_int_equal(s.nbounds, 3);
	assert_int_equal(s.bounds[0], 100);
	assert_int_equal(s.bounds[1], 90);
	assert_int_equal(s.bounds[2], 60);

	/* always 0: the zero-weight entry, then list order */
	memcpy(r, in, sizeof(r));
	memset(&s, 0, sizeof(s));
	wse_srv_order(r, 5, script_rnd, &s);
	assert_order(r, 5, want_zero);
	assert_int_equal(s.bounds[0], 100);
	assert_int_equal(s.bounds[1], 100);
	assert_int_equal(s.bounds[2], 40);
}

static void
test_order_all_zero(void **state)
{
	wse_srv_rec r[3];
	struct script s = { 0 };

	(void)state;
	r[0] = rec("x", 1, 0);
	r[1] = rec("y", 1, 0);
	r[2] = rec("z", 1, 0);
	/* total 0: the random number can only be 0, the order is forced */
	wse_srv_order(r, 3, script_rnd, &s);
	assert_int_equal(s.nbounds, 0);
	assert_string_equal(r[0].host, "x");
	assert_string_equal(r[1].host, "y");
	assert_string_equal(r[2].host, "z");
}

#define RUNS 20000

static void
test_order_statistics(void **state)
{
	wse_srv_rec base[3], r[3];
	size_t first[3] = { 0, 0, 0 }, i, k;
	/* P(first) = (w_i + [i is first in list]) / (total + 1) */
	const double want[3] = { 61.0 / 101, 30.0 / 101, 10.0 / 101 };

	(void)state;
	base[0] = rec("w60", 1, 60);
	base[1] = rec("w30", 1, 30);
	base[2] = rec("w10", 1, 10);
	for (i = 0; i < RUNS; i++) {
		memcpy(r, base, sizeof(r));
		wse_srv_order(r, 3, csprng_rnd, NULL);
		for (k = 0; k < 3; k++)
			if (strcmp(r[0].host, base[k].host) == 0)
				first[k]++;
	}
	for (k = 0; k < 3; k++) {
		double f = (double)first[k] / RUNS;

		print_message("first pick %s: %.3f (expected %.3f)\n",
		    base[k].host, f, want[k]);
		assert_true(f > want[k] - 0.02 && f < want[k] + 0.02);
	}
}

static void
test_order_zero_weight_chance(void **state)
{
	wse_srv_rec base[3], r[3];
	size_t zero_first = 0, zero_last = 0, i;
	double f;

	(void)state;
	base[0] = rec("w10", 1, 10);
	base[1] = rec("w0", 1, 0);
	base[2] = rec("other", 2, 50);	/* another priority: always last */
	for (i = 0; i < RUNS; i++) {
		memcpy(r, base, sizeof(r));
		wse_srv_order(r, 3, csprng_rnd, NULL);
		assert_string_equal(r[2].host, "other");
		if (strcmp(r[0].host, "w0") == 0)
			zero_first++;
		else
			zero_last++;
	}
	/* w0 is first when the number drawn in [0, 10] is 0: 1/11 */
	f = (double)zero_first / RUNS;
	print_message("weight 0 first: %.4f (expected %.4f)\n", f, 1.0 / 11);
	assert_true(f > 1.0 / 11 - 0.02 && f < 1.0 / 11 + 0.02);
	assert_true(zero_last > 0);
}

/* ---- router construction and static routes ---- */

static void
test_router_new_args(void **state)
{
	static const char *const good[] = { "127.0.0.1", "127.0.0.1:5353",
	    "[::1]:53", "[::1]", "192.0.2.1:65535" };
	static const char *const bad[] = { "", "localhost", "::1",
	    "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:", "[::1]:",
	    "[::1]x", "[127.0.0.1]:53", "127.0.0.1:53x", "1.2.3:53",
	    "[::1:53" };
	wse_router *r = NULL;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_wse_ok(wse_router_new(good[i], 1000, &r));
		wse_router_free(&r);
		assert_null(r);
	}
	/* c-ares takes the loopback ones (port 53 when none is given):
	 * whatever listens there, or nothing, the answer is no bug */
	for (i = 0; i < 3; i++) {
		wse_route_target *t = NULL;
		size_t n = 0;
		wse_status st;

		assert_wse_ok(wse_router_new(good[i], 300, &r));
		st = wse_router_resolve(r, "example.invalid", &t, &n);
		if (st != WSE_ERR_NOT_FOUND && st != WSE_ERR_TEMPFAIL)
			fail_msg("%s: %s", good[i], wse_status_name(st));
		assert_null(t);
		wse_router_free(&r);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_wse_status(wse_router_new(bad[i], 1000, &r),
		    WSE_ERR_INVALID);
		assert_null(r);
	}
	assert_wse_status(wse_router_new(NULL, 0, &r), WSE_ERR_INVALID);
	assert_wse_status(wse_router_new(NULL, -5, &r), WSE_ERR_INVALID);
	assert_wse_ok(wse_router_new(NULL, 1000, &r));	/* resolv.conf */
	wse_router_free(&r);
	wse_router_free(&r);
	wse_router_free(NULL);
}

static void
test_static_parse(void **state)
{
	static const char *const good[] = { "mail.example.org:8443",
	    "MAIL.Example.ORG.:25", "127.0.0.1:1", "[::1]:443",
	    "[2001:db8::1]:65535", "a-b.c-d:7", "x:9", "1host.example:80" };
	static const char *const bad[] = { "", "mail.example.org", "mail:0",
	    "mail:65536", "mail:", ":25", "::1:25", "2001:db8::1:25",
	    "[::1]", "[::1]25", "[::1]:", "[nothex]:25", "[]:25",
	    "[127.0.0.1]:25", "a..b:25", ".a.b:25", "-a.b:25", "a-.b:25",
	    "a_b.c:25", "host:25x", "host:+25", "host:-1", "host: 25",
	    "ho st:25", "1.2.3:25", "999.1.1.1:25", "host:123456",
	    "a.b..:25", "h\xc3\xa9.example:25" };
	static const char *const bad_domains[] = { "", ".", "a..b", "bad_d",
	    "-x.org", "x-.org", "a.123", "a b" };
	char longname[300], label[70];
	wse_router *r = NULL;
	size_t i;

	(void)state;
	assert_wse_ok(wse_router_new("127.0.0.1:9", 1000, &r));
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_wse_ok(wse_router_add_static(r, "example.org", good[i]));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wse_err_clear();
		if (wse_router_add_static(r, "example.org", bad[i]) !=
		    WSE_ERR_INVALID)
			fail_msg("static target \"%s\" accepted", bad[i]);
		assert_true(wse_err_count() > 0);
	}
	assert_wse_status(wse_router_add_static(r, "example.org", NULL),
	    WSE_ERR_INVALID);
	for (i = 0; i < sizeof(bad_domains) / sizeof(bad_domains[0]); i++)
		if (wse_router_add_static(r, bad_domains[i], "x.org:1") !=
		    WSE_ERR_INVALID)
			fail_msg("domain \"%s\" accepted", bad_domains[i]);
	assert_wse_status(wse_router_add_static(r, NULL, "x.org:1"),
	    WSE_ERR_INVALID);

	/* a 63-character label is fine, 64 is not */
	memset(label, 'a', 63);
	label[63] = '\0';
	snprintf(longname, sizeof(longname), "%s.org:25", label);
	assert_wse_ok(wse_router_add_static(r, "example.net", longname));
	snprintf(longname, sizeof(longname), "%sa.org:25", label);
	assert_wse_status(wse_router_add_static(r, "example.net", longname),
	    WSE_ERR_INVALID);
	/* 253 characters is the limit of a name */
	memset(longname, 0, sizeof(longname));
	for (i = 0; i < 253; i++)
		longname[i] = (i % 10 == 9) ? '.' : 'b';
	longname[252] = 'c';
	assert_wse_ok(wse_router_add_static(r, longname, "x.org:1"));
	longname[253] = 'd';
	assert_wse_status(wse_router_add_static(r, longname, "x.org:1"),
	    WSE_ERR_INVALID);

	/* domains are checked on resolve too */
	{
		wse_route_target *t = (void *)1;
		size_t n = 9;

		assert_wse_status(wse_router_resolve(r, "bad_domain", &t, &n),
		    WSE_ERR_INVALID);
		assert_null(t);
		assert_int_equal(n, 0);
	}
	wse_router_free(&r);
}

/* Static routes answer without DNS: the DNS server here never answers. */
static void
test_static_override(void **state)
{
	char dns[64];
	wse_router *r = NULL;
	wse_route_target *t = NULL;
	size_t n = 0;
	double t0, el;
	int fd;

	(void)state;
	fd = testdns_silent(dns, sizeof(dns));
	assert_wse_ok(wse_router_new(dns, 500, &r));
	assert_wse_ok(wse_router_add_static(r, "Example.ORG",
	    "[2001:DB8:0::7]:8443"));
	assert_wse_ok(wse_router_add_static(r, "example.org",
	    "192.0.2.1:25"));
	assert_wse_ok(wse_router_add_static(r, "other.example",
	    "192.0.2.99:1"));

	t0 = testutil_now_ms();
	assert_wse_ok(wse_router_resolve(r, "EXAMPLE.org.", &t, &n));
	el = testutil_now_ms() - t0;
	assert_true(el < 500);
	assert_int_equal(n, 2);
	assert_string_equal(t[0].host, "2001:db8::7");
	assert_int_equal(t[0].port, 8443);
	assert_int_equal(t[0].naddrs, 1);
	assert_string_equal(t[0].addrs[0], "2001:db8::7");
	assert_string_equal(t[1].host, "192.0.2.1");
	assert_int_equal(t[1].port, 25);
	assert_int_equal(t[1].naddrs, 1);
	assert_string_equal(t[1].addrs[0], "192.0.2.1");
	free(t);
	t = NULL;

	/* a subdomain is another domain: it goes to DNS, which is silent */
	assert_wse_status(wse_router_resolve(r, "sub.example.org", &t, &n),
	    WSE_ERR_TEMPFAIL);
	assert_null(t);
	wse_router_free(&r);
	close(fd);
}

/* A DNS server that never answers: TEMPFAIL within the timeout. */
static void
test_timeout(void **state)
{
	const int timeout = 400;
	char dns[64];
	wse_router *r = NULL;
	wse_route_target *t = NULL;
	size_t n = 0;
	double t0, el;
	int fd;

	(void)state;
	fd = testdns_silent(dns, sizeof(dns));
	assert_wse_ok(wse_router_new(dns, timeout, &r));

	t0 = testutil_now_ms();
	assert_wse_status(wse_router_resolve(r, "example.org", &t, &n),
	    WSE_ERR_TEMPFAIL);
	el = testutil_now_ms() - t0;
	print_message("silent DNS server: temporary-failure after %.0f ms "
	    "(timeout %d ms)\n", el, timeout);
	assert_true(el >= timeout * 0.9);
	assert_true(el < 2.0 * timeout);
	assert_null(t);

	/* a static route to a name uses the same DNS server and budget */
	assert_wse_ok(wse_router_add_static(r, "example.org",
	    "mail.example.org:1"));
	t0 = testutil_now_ms();
	assert_wse_status(wse_router_resolve(r, "example.org", &t, &n),
	    WSE_ERR_TEMPFAIL);
	el = testutil_now_ms() - t0;
	print_message("silent DNS server, static name: temporary-failure "
	    "after %.0f ms\n", el);
	assert_true(el < 2.0 * timeout);
	wse_router_free(&r);
	close(fd);
}

/* A closed UDP port (ICMP port unreachable): TEMPFAIL, at once. */
static void
test_refused(void **state)
{
	char dns[64];
	wse_router *r = NULL;
	wse_route_target *t = NULL;
	size_t n = 0;
	double t0, el;
	int fd;

	(void)state;
	fd = testdns_silent(dns, sizeof(dns));
	close(fd);
	assert_wse_ok(wse_router_new(dns, 2000, &r));
	t0 = testutil_now_ms();
	assert_wse_status(wse_router_resolve(r, "example.org", &t, &n),
	    WSE_ERR_TEMPFAIL);
	el = testutil_now_ms() - t0;
	print_message("closed DNS port: temporary-failure after %.0f ms\n",
	    el);
	assert_true(el < 4000);
	wse_router_free(&r);
}

/* ---- against a real DNS server (tests/route_dns.sh) ---- */

#define DNS_TIMEOUT 2000

static wse_router *
dns_router(void)
{
	const char *dns = getenv("WSE_TEST_DNS");
	wse_router *r = NULL;

	if (dns == NULL || *dns == '\0')
		skip();
	assert_wse_ok(wse_router_new(dns, DNS_TIMEOUT, &r));
	return r;
}

static const wse_route_target *
find_target(const wse_route_target *t, size_t n, const char *host)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(t[i].host, host) == 0)
			return &t[i];
	return NULL;
}

/*
 * _wsemail._tcp.a.test: mail1 (prio 10, weight 60, A+AAAA), mail2 (prio
 * 10, weight 30, A), mail3 (prio 20, AAAA), ghost (prio 30, no address).
 */
static void
test_dns_srv(void **state)
{
	wse_router *r;
	wse_route_target *t = NULL;
	const wse_route_target *m;
	size_t n = 0;

	(void)state;
	r = dns_router();
	assert_wse_ok(wse_router_resolve(r, "a.test", &t, &n));
	assert_int_equal(n, 3);		/* ghost dropped */
	assert_true((strcmp(t[0].host, "mail1.a.test") == 0 &&
	    strcmp(t[1].host, "mail2.a.test") == 0) ||
	    (strcmp(t[0].host, "mail2.a.test") == 0 &&
	    strcmp(t[1].host, "mail1.a.test") == 0));
	assert_string_equal(t[2].host, "mail3.a.test");

	assert_non_null(m = find_target(t, n, "mail1.a.test"));
	assert_int_equal(m->port, 7001);
	assert_int_equal(m->naddrs, 2);
	assert_string_equal(m->addrs[0], "127.0.0.1");	/* IPv4 first */
	assert_string_equal(m->addrs[1], "::1");
	assert_non_null(m = find_target(t, n, "mail2.a.test"));
	assert_int_equal(m->port, 7002);
	assert_int_equal(m->naddrs, 1);
	assert_string_equal(m->addrs[0], "127.0.0.2");
	assert_non_null(m = find_target(t, n, "mail3.a.test"));
	assert_int_equal(m->port, 7003);
	assert_int_equal(m->naddrs, 1);
	assert_string_equal(m->addrs[0], "::1");
	free(t);
	t = NULL;

	/* case-insensitive, trailing dot */
	assert_wse_ok(wse_router_resolve(r, "A.Test.", &t, &n));
	assert_int_equal(n, 3);
	free(t);
	wse_router_free(&r);
}

static void
test_dns_weights(void **state)
{
	wse_router *r;
	wse_route_target *t = NULL;
	size_t n = 0, i, first1 = 0, first2 = 0;

	(void)state;
	r = dns_router();
	for (i = 0; i < 200; i++) {
		assert_wse_ok(wse_router_resolve(r, "a.test", &t, &n));
		assert_int_equal(n, 3);
		if (strcmp(t[0].host, "mail1.a.test") == 0)
			first1++;
		else if (strcmp(t[0].host, "mail2.a.test") == 0)
			first2++;
		free(t);
		t = NULL;
	}
	print_message("first: mail1 (weight 60) %zu, mail2 (weight 30) %zu\n",
	    first1, first2);
	assert_int_equal(first1 + first2, 200);
	assert_true(first2 > 0);
	assert_true(first1 > first2);
	wse_router_free(&r);
}

static void
test_dns_not_found(void **state)
{
	static const char *const perm[] = {
		"none.test",	/* SRV target "." */
		"nx.test",	/* NXDOMAIN */
		"nodata.test",	/* the name exists, no SRV (NODATA) */
	};
	wse_router *r;
	wse_route_target *t = NULL;
	size_t n = 0, i;

	(void)state;
	r = dns_router();
	for (i = 0; i < sizeof(perm) / sizeof(perm[0]); i++) {
		wse_err_clear();
		if (wse_router_resolve(r, perm[i], &t, &n) !=
		    WSE_ERR_NOT_FOUND) {
			char eb[1024];

			fail_msg("%s: %s", perm[i],
			    wse_err_format(eb, sizeof(eb)));
		}
		assert_null(t);
		assert_int_equal(n, 0);
	}
	/* a "." record beside a real one is ignored */
	assert_wse_ok(wse_router_resolve(r, "mixed.test", &t, &n));
	assert_int_equal(n, 1);
	assert_string_equal(t[0].host, "mail2.a.test");
	free(t);
	wse_router_free(&r);
}

static void
test_dns_tempfail(void **state)
{
	wse_router *r;
	wse_route_target *t = NULL;
	size_t n = 0;

	(void)state;
	r = dns_router();
	/* the only target has no address */
	assert_wse_status(wse_router_resolve(r, "noaddr.test", &t, &n),
	    WSE_ERR_TEMPFAIL);
	assert_null(t);
	/* the server refuses names outside its zones (REFUSED) */
	assert_wse_status(wse_router_resolve(r, "elsewhere.example", &t, &n),
	    WSE_ERR_TEMPFAIL);
	assert_null(t);
	wse_router_free(&r);
}

static void
test_dns_static(void **state)
{
	wse_router *r;
	wse_route_target *t = NULL;
	size_t n = 0;

	(void)state;
	r = dns_router();
	/* a static route overrides the domain's SRV records entirely */
	assert_wse_ok(wse_router_add_static(r, "A.test", "192.0.2.7:9000"));
	assert_wse_ok(wse_router_resolve(r, "a.test", &t, &n));
	assert_int_equal(n, 1);
	assert_string_equal(t[0].host, "192.0.2.7");
	assert_int_equal(t[0].port, 9000);
	free(t);
	t = NULL;

	/* a static route to a name is resolved through the DNS server;
	 * one without an address is dropped, order is kept */
	assert_wse_ok(wse_router_add_static(r, "static.test",
	    "ghost.a.test:9000"));
	assert_wse_ok(wse_router_add_static(r, "static.test",
	    "Mail1.A.Test:9001"));
	assert_wse_ok(wse_router_add_static(r, "static.test",
	    "[::1]:9002"));
	assert_wse_ok(wse_router_add_static(r, "static.test",
	    "mail2.a.test:9003"));
	assert_wse_ok(wse_router_resolve(r, "static.test", &t, &n));
	assert_int_equal(n, 3);
	assert_string_equal(t[0].host, "mail1.a.test");
	assert_int_equal(t[0].port, 9001);
	assert_int_equal(t[0].naddrs, 2);
	assert_true(target_has_addr(&t[0], "127.0.0.1"));
	assert_true(target_has_addr(&t[0], "::1"));
	assert_string_equal(t[1].host, "::1");
	assert_int_equal(t[1].port, 9002);
	assert_string_equal(t[2].host, "mail2.a.test");
	assert_int_equal(t[2].port, 9003);
	assert_int_equal(t[2].naddrs, 1);
	assert_string_equal(t[2].addrs[0], "127.0.0.2");
	free(t);
	t = NULL;

	/* only unresolvable static names: temporary failure */
	assert_wse_ok(wse_router_add_static(r, "ghost.test",
	    "ghost.a.test:1"));
	assert_wse_status(wse_router_resolve(r, "ghost.test", &t, &n),
	    WSE_ERR_TEMPFAIL);
	assert_null(t);
	wse_router_free(&r);
}

struct thread_arg {
	wse_router *r;
	int ok;
};

static void *
resolve_thread(void *p)
{
	struct thread_arg *a = p;
	wse_route_target *t;
	size_t n, i;

	a->ok = 0;
	for (i = 0; i < 25; i++) {
		t = NULL;
		if (wse_router_resolve(a->r, "a.test", &t, &n) != WSE_OK ||
		    n != 3)
			return NULL;
		free(t);
		t = NULL;
		if (wse_router_resolve(a->r, "nx.test", &t, &n) !=
		    WSE_ERR_NOT_FOUND)
			return NULL;
	}
	a->ok = 1;
	return NULL;
}

static void
test_dns_threads(void **state)
{
	struct thread_arg a[4];
	pthread_t th[4];
	wse_router *r;
	int i;

	(void)state;
	r = dns_router();
	for (i = 0; i < 4; i++) {
		a[i].r = r;
		assert_int_equal(pthread_create(&th[i], NULL, resolve_thread,
		    &a[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_true(a[i].ok);
	}
	wse_router_free(&r);
}

/* ---- the SRV cache, against dnsmasq instances of our own ---- */

/* The instances of the cache cases (tests/testdns.h); the teardown
 * stops them, whether the case passed or not. */
static testdns dm[2];

static int
dnsmasq_teardown(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(dm) / sizeof(dm[0]); i++)
		testdns_free(&dm[i]);
	return 0;
}

/* The instance we need, or skip (tests/route_dns.sh sets
 * WSE_TEST_DNSMASQ). */
static testdns *
dnsmasq_init(int i)
{
	testdns_init(&dm[i]);
	return &dm[i];
}

/* How many TYPE queries for NAME the current instance has logged. */
static size_t
queries(const testdns *d, const char *type, const char *name)
{
	return testdns_queries(d, type, name);
}

static void
assert_one_target(wse_router *r, const char *domain, const char *host,
    unsigned port, const char *addr)
{
	wse_route_target *t = NULL;
	size_t n = 0;

	assert_wse_ok(wse_router_resolve(r, domain, &t, &n));
	assert_int_equal(n, 1);
	assert_string_equal(t[0].host, host);
	assert_int_equal(t[0].port, port);
	assert_int_equal(t[0].naddrs, 1);
	assert_string_equal(t[0].addrs[0], addr);
	free(t);
}

static void
assert_resolve_fails(wse_router *r, const char *domain, wse_status want)
{
	wse_route_target *t = NULL;
	size_t n = 0;

	assert_wse_status(wse_router_resolve(r, domain, &t, &n), want);
	assert_null(t);
}

/*
 * Records with a TTL are answered from the cache until it runs out, even
 * with the DNS server gone or changed; then asked again.  Negative and
 * partial answers are never kept.
 */
static void
test_cache_ttl(void **state)
{
	static const char *const first[] = { "--local-ttl=3",
	    "--srv-host=_wsemail._tcp.c.test,mail.c.test,7001,10,10",
	    "--host-record=mail.c.test,127.0.0.1",	/* A, no AAAA */
	    "--srv-host=_wsemail._tcp.g.test,mail.c.test,7002,10,10",
	    "--srv-host=_wsemail._tcp.g.test,ghost.c.test,7003,20,10",
	    "--srv-host=_wsemail._tcp.none.test", NULL };
	static const char *const second[] = { "--local-ttl=3",
	    "--srv-host=_wsemail._tcp.c.test,mail.c.test,7009,10,10",
	    "--host-record=mail.c.test,127.0.0.9",
	    "--srv-host=_wsemail._tcp.late.test,mail.c.test,7010,10,10",
	    "--srv-host=_wsemail._tcp.none.test,mail.c.test,7011,10,10",
	    NULL };
	testdns *d;
	wse_router *r;
	wse_route_target *t = NULL;
	size_t n = 0, i;
	double t0, el;

	(void)state;
	d = dnsmasq_init(0);
	testdns_start(d, first);
	assert_wse_ok(wse_router_new(d->addr, DNS_TIMEOUT, &r));

	t0 = testutil_now_ms();
	for (i = 0; i < 20; i++)
		assert_one_target(r, i % 2 ? "C.Test." : "c.test",
		    "mail.c.test", 7001, "127.0.0.1");
	assert_int_equal(queries(d, "SRV", "_wsemail._tcp.c.test"), 1);
	assert_int_equal(queries(d, "A", "mail.c.test"), 1);
	assert_int_equal(queries(d, "AAAA", "mail.c.test"), 1);

	/* a target without an address: usable, not cached */
	assert_one_target(r, "g.test", "mail.c.test", 7002, "127.0.0.1");
	assert_one_target(r, "g.test", "mail.c.test", 7002, "127.0.0.1");
	assert_int_equal(queries(d, "SRV", "_wsemail._tcp.g.test"), 2);
	assert_resolve_fails(r, "none.test", WSE_ERR_NOT_FOUND);
	assert_resolve_fails(r, "late.test", WSE_ERR_NOT_FOUND);

	/* no server at all: c.test is still known, nothing else */
	testdns_stop(d);
	assert_one_target(r, "c.test", "mail.c.test", 7001, "127.0.0.1");
	assert_resolve_fails(r, "g.test", WSE_ERR_TEMPFAIL);
	assert_resolve_fails(r, "late.test", WSE_ERR_TEMPFAIL);

	/* other records: the cached c.test stands until its TTL is out;
	 * NXDOMAIN and "." were not kept */
	testdns_start(d, second);
	assert_one_target(r, "c.test", "mail.c.test", 7001, "127.0.0.1");
	el = testutil_now_ms() - t0;
	if (el >= 2800)
		fail_msg("too slow to test a 3 s TTL: %.0f ms", el);
	assert_int_equal(queries(d, "SRV", "_wsemail._tcp.c.test"), 0);
	assert_one_target(r, "late.test", "mail.c.test", 7010, "127.0.0.9");
	assert_one_target(r, "none.test", "mail.c.test", 7011, "127.0.0.9");

	/* the TTL has run out: asked again */
	testutil_sleep_ms(t0 + 3000 + 100 - testutil_now_ms());
	assert_wse_ok(wse_router_resolve(r, "c.test", &t, &n));
	assert_int_equal(n, 1);
	assert_int_equal(t[0].port, 7009);
	assert_string_equal(t[0].addrs[0], "127.0.0.9");
	free(t);
	assert_int_equal(queries(d, "SRV", "_wsemail._tcp.c.test"), 1);
	print_message("cached within the 3 s TTL (%.0f ms after the first "
	    "query), asked again after it\n", el);

	wse_router_free(&r);
}

/* TTL 0, dnsmasq's default for its own records: never cached. */
static void
test_cache_ttl_zero(void **state)
{
	static const char *const recs[] = {
	    "--srv-host=_wsemail._tcp.c.test,mail.c.test,7001,10,10",
	    "--host-record=mail.c.test,127.0.0.1", NULL };
	testdns *d;
	wse_router *r;
	size_t i;

	(void)state;
	d = dnsmasq_init(0);
	testdns_start(d, recs);
	assert_wse_ok(wse_router_new(d->addr, DNS_TIMEOUT, &r));
	for (i = 0; i < 5; i++)
		assert_one_target(r, "c.test", "mail.c.test", 7001,
		    "127.0.0.1");
	assert_int_equal(queries(d, "SRV", "_wsemail._tcp.c.test"), 5);
	assert_int_equal(queries(d, "A", "mail.c.test"), 5);
	testdns_stop(d);
	assert_resolve_fails(r, "c.test", WSE_ERR_TEMPFAIL);
	wse_router_free(&r);
}

/*
 * The entry lives as long as the shortest TTL: of the SRV record, of an
 * address, of a CNAME on the way to an address.  Two servers, since
 * dnsmasq gives every SRV record the one --local-ttl.
 */
static void
test_cache_min_ttl(void **state)
{
	static const char *const long_srv[] = { "--local-ttl=60",
	    /* A record: 2 s */
	    "--srv-host=_wsemail._tcp.a.test,mail.a.test,7001,10,10",
	    "--host-record=mail.a.test,127.0.0.1,2",
	    /* CNAME: 2 s, its A record 60 s */
	    "--srv-host=_wsemail._tcp.cn.test,alias.cn.test,7002,10,10",
	    "--host-record=real.cn.test,127.0.0.2,60",
	    "--cname=alias.cn.test,real.cn.test,2",
	    /* the SRV record's 60 s win over AAAA's 90 s; the cap of
	     * 300 s is not reached */
	    "--srv-host=_wsemail._tcp.long.test,mail.long.test,7003,10,10",
	    "--host-record=mail.long.test,::1,90", NULL };
	static const char *const short_srv[] = { "--local-ttl=2",
	    "--srv-host=_wsemail._tcp.s.test,mail.s.test,7004,10,10",
	    "--host-record=mail.s.test,127.0.0.4,60", NULL };
	testdns *d1, *d2;
	wse_router *r1, *r2;
	double t0;

	(void)state;
	d1 = dnsmasq_init(0);
	d2 = dnsmasq_init(1);
	testdns_start(d1, long_srv);
	testdns_start(d2, short_srv);
	assert_wse_ok(wse_router_new(d1->addr, DNS_TIMEOUT, &r1));
	assert_wse_ok(wse_router_new(d2->addr, DNS_TIMEOUT, &r2));

	t0 = testutil_now_ms();
	assert_one_target(r1, "a.test", "mail.a.test", 7001, "127.0.0.1");
	assert_one_target(r1, "cn.test", "alias.cn.test", 7002, "127.0.0.2");
	assert_one_target(r1, "long.test", "mail.long.test", 7003, "::1");
	assert_one_target(r2, "s.test", "mail.s.test", 7004, "127.0.0.4");
	testdns_stop(d1);
	testdns_stop(d2);
	/* all four cached */
	assert_one_target(r1, "a.test", "mail.a.test", 7001, "127.0.0.1");
	assert_one_target(r1, "cn.test", "alias.cn.test", 7002, "127.0.0.2");
	assert_one_target(r1, "long.test", "mail.long.test", 7003, "::1");
	assert_one_target(r2, "s.test", "mail.s.test", 7004, "127.0.0.4");
	if (testutil_now_ms() - t0 >= 1800)
		fail_msg("too slow to test a 2 s TTL");
	/* after 2 s only the one whose every TTL is long */
	testutil_sleep_ms(t0 + 2000 + 100 - testutil_now_ms());
	assert_resolve_fails(r1, "a.test", WSE_ERR_TEMPFAIL);
	assert_resolve_fails(r1, "cn.test", WSE_ERR_TEMPFAIL);
	assert_resolve_fails(r2, "s.test", WSE_ERR_TEMPFAIL);
	assert_one_target(r1, "long.test", "mail.long.test", 7003, "::1");
	wse_router_free(&r1);
	wse_router_free(&r2);
}

/*
 * Hits are ordered afresh by weight, each record keeps its own port and
 * its target's addresses.
 */
static void
test_cache_weights(void **state)
{
	static const char *const recs[] = { "--local-ttl=60",
	    "--srv-host=_wsemail._tcp.w.test,mail1.w.test,7001,10,60",
	    "--srv-host=_wsemail._tcp.w.test,mail2.w.test,7002,10,30",
	    "--srv-host=_wsemail._tcp.w.test,mail1.w.test,7011,20,0",
	    "--host-record=mail1.w.test,127.0.0.1,::1",
	    "--host-record=mail2.w.test,127.0.0.2", NULL };
	testdns *d;
	wse_router *r;
	wse_route_target *t = NULL;
	const wse_route_target *m1, *m2;
	size_t n = 0, i, first1 = 0, first2 = 0;

	(void)state;
	d = dnsmasq_init(0);
	testdns_start(d, recs);
	assert_wse_ok(wse_router_new(d->addr, DNS_TIMEOUT, &r));
	for (i = 0; i < 300; i++) {
		assert_wse_ok(wse_router_resolve(r, "w.test", &t, &n));
		assert_int_equal(n, 3);
		m1 = strcmp(t[0].host, "mail1.w.test") == 0 ? &t[0] : &t[1];
		m2 = m1 == &t[0] ? &t[1] : &t[0];
		if (m1 == &t[0])
			first1++;
		else
			first2++;
		assert_string_equal(m1->host, "mail1.w.test");
		assert_int_equal(m1->port, 7001);
		assert_int_equal(m1->naddrs, 2);
		assert_string_equal(m1->addrs[0], "127.0.0.1");
		assert_string_equal(m1->addrs[1], "::1");
		assert_string_equal(m2->host, "mail2.w.test");
		assert_int_equal(m2->port, 7002);
		assert_int_equal(m2->naddrs, 1);
		assert_string_equal(m2->addrs[0], "127.0.0.2");
		assert_string_equal(t[2].host, "mail1.w.test");
		assert_int_equal(t[2].port, 7011);
		assert_int_equal(t[2].naddrs, 2);
		free(t);
		t = NULL;
	}
	print_message("from the cache, first: mail1 (weight 60) %zu, mail2 "
	    "(weight 30) %zu\n", first1, first2);
	assert_int_equal(queries(d, "SRV", "_wsemail._tcp.w.test"), 1);
	assert_true(first2 > 0);
	assert_true(first1 > first2);
	wse_router_free(&r);
}

#define MANY_DOMAINS 300		/* more than the cache holds (256) */

struct many_arg {
	wse_router *r;
	unsigned seed;
	int ok;
};

static void *
many_thread(void *p)
{
	struct many_arg *a = p;
	wse_route_target *t;
	char dom[32];
	size_t n, i;

	a->ok = 0;
	for (i = 0; i < 400; i++) {
		a->seed = a->seed * 1103515245u + 12345u;
		snprintf(dom, sizeof(dom), "d%u.test",
		    (a->seed >> 8) % MANY_DOMAINS);
		t = NULL;
		if (wse_router_resolve(a->r, dom, &t, &n) != WSE_OK ||
		    n != 1 || t[0].port != 7000 || t[0].naddrs != 1) {
			free(t);
			return NULL;
		}
		free(t);
	}
	a->ok = 1;
	return NULL;
}

/*
 * The cache is bounded: past 256 domains the least recently used goes.
 * Then four threads share one router over more domains than it keeps
 * (hits, misses, evictions at once).
 */
static void
test_cache_bound(void **state)
{
	static char opts[MANY_DOMAINS + 2][64];
	const char *argv[MANY_DOMAINS + 3];
	struct many_arg a[4];
	pthread_t th[4];
	testdns *d;
	wse_router *r;
	char dom[32], qname[64];
	size_t i;

	(void)state;
	d = dnsmasq_init(0);
	for (i = 0; i < MANY_DOMAINS; i++) {
		snprintf(opts[i], sizeof(opts[i]), "--srv-host=_wsemail._tcp."
		    "d%zu.test,mail.c.test,7000,10,10", i);
		argv[i] = opts[i];
	}
	argv[i++] = "--local-ttl=60";
	argv[i++] = "--host-record=mail.c.test,127.0.0.1";
	argv[i] = NULL;
	testdns_start(d, argv);
	assert_wse_ok(wse_router_new(d->addr, DNS_TIMEOUT, &r));
	for (i = 0; i < MANY_DOMAINS; i++) {
		snprintf(dom, sizeof(dom), "d%zu.test", i);
		assert_one_target(r, dom, "mail.c.test", 7000, "127.0.0.1");
	}
	/* d44..d299 are the 256 kept: the last one and one in the middle
	 * answer from the cache; the first one was dropped */
	assert_one_target(r, "d299.test", "mail.c.test", 7000, "127.0.0.1");
	assert_one_target(r, "d100.test", "mail.c.test", 7000, "127.0.0.1");
	assert_one_target(r, "d44.test", "mail.c.test", 7000, "127.0.0.1");
	assert_int_equal(queries(d, "SRV", "_wsemail._tcp.d299.test"), 1);
	assert_int_equal(queries(d, "SRV", "_wsemail._tcp.d100.test"), 1);
	assert_int_equal(queries(d, "SRV", "_wsemail._tcp.d44.test"), 1);
	assert_one_target(r, "d0.test", "mail.c.test", 7000, "127.0.0.1");
	assert_int_equal(queries(d, "SRV", "_wsemail._tcp.d0.test"), 2);
	/* d0 took the place of the least recently used, d45 (d44 was
	 * just used) */
	assert_one_target(r, "d44.test", "mail.c.test", 7000, "127.0.0.1");
	assert_one_target(r, "d45.test", "mail.c.test", 7000, "127.0.0.1");
	assert_int_equal(queries(d, "SRV", "_wsemail._tcp.d44.test"), 1);
	assert_int_equal(queries(d, "SRV", "_wsemail._tcp.d45.test"), 2);
	snprintf(qname, sizeof(qname), "_wsemail._tcp.d%u.test", 1u);
	assert_int_equal(queries(d, "SRV", qname), 1);

	for (i = 0; i < 4; i++) {
		a[i].r = r;
		a[i].seed = (unsigned)i * 7919u + 1;
		assert_int_equal(pthread_create(&th[i], NULL, many_thread,
		    &a[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_true(a[i].ok);
	}
	wse_router_free(&r);
}

/* At most 64 static routes per domain; other domains still take theirs;
 * no router, no route. */
static void
test_static_limits(void **state)
{
	wse_router *r = NULL;
	wse_route_target *t = (void *)1;
	char target[64];
	size_t i, n = 9;

	(void)state;
	assert_wse_ok(wse_router_new("127.0.0.1:9", 1000, &r));
	for (i = 0; i < 64; i++) {
		snprintf(target, sizeof(target), "192.0.2.%zu:25", i + 1);
		assert_wse_ok(wse_router_add_static(r, "example.org", target));
	}
	wse_err_clear();
	assert_wse_status(wse_router_add_static(r, "Example.Org.",
	    "192.0.2.200:25"), WSE_ERR_TOO_LARGE);
	assert_non_null(strstr(wse_err_last(), "too many static routes "
	    "(for example.org)"));
	wse_err_clear();
	assert_wse_ok(wse_router_add_static(r, "example.net",
	    "192.0.2.201:25"));
	/* the refused one is not among them */
	assert_wse_ok(wse_router_resolve(r, "example.org", &t, &n));
	assert_int_equal(n, 64);
	for (i = 0; i < n; i++)
		assert_string_not_equal(t[i].host, "192.0.2.200");
	free(t);
	t = (void *)1;

	assert_wse_status(wse_router_add_static(NULL, "example.org",
	    "192.0.2.1:25"), WSE_ERR_INVALID);
	assert_wse_status(wse_router_resolve(NULL, "example.org", &t, &n),
	    WSE_ERR_INVALID);
	assert_null(t);
	assert_int_equal(n, 0);
	wse_router_free(&r);
}

/* A domain whose SRV name (_wsemail._tcp.DOMAIN) would pass 253
 * characters is not looked up: no such route, at once, no query. */
static void
test_srv_name_too_long(void **state)
{
	char dns[64], name[260];
	wse_router *r = NULL;
	wse_route_target *t = NULL;
	size_t n = 9, i;
	double t0;
	int fd;

	(void)state;
	fd = testdns_silent(dns, sizeof(dns));
	assert_wse_ok(wse_router_new(dns, 2000, &r));
	/* 240 characters: a valid name, 254 with the prefix */
	for (i = 0; i < 240; i++)
		name[i] = (i % 10 == 9) ? '.' : 'b';
	name[239] = 'c';
	name[240] = '\0';
	t0 = testutil_now_ms();
	wse_err_clear();
	assert_wse_status(wse_router_resolve(r, name, &t, &n),
	    WSE_ERR_NOT_FOUND);
	assert_true(testutil_now_ms() - t0 < 500);
	assert_null(t);
	assert_int_equal(n, 0);
	assert_non_null(strstr(wse_err_last(), "name too long for an SRV "
	    "lookup"));
	wse_err_clear();
	/* a static route for it still works */
	assert_wse_ok(wse_router_add_static(r, name, "192.0.2.1:25"));
	assert_wse_ok(wse_router_resolve(r, name, &t, &n));
	assert_int_equal(n, 1);
	free(t);
	wse_router_free(&r);
	close(fd);
}

/* Without a random function of the caller's, the library's own: the
 * priorities are still in order, every record still there. */
static void
test_order_default_rnd(void **state)
{
	wse_srv_rec recs[4];
	size_t i, k, seen;

	(void)state;
	for (k = 0; k < 50; k++) {
		recs[0] = rec("c", 30, 5);
		recs[1] = rec("a", 10, 10);
		recs[2] = rec("b2", 20, 0);
		recs[3] = rec("b1", 20, 90);
		wse_srv_order(recs, 4, NULL, (void *)1);
		assert_string_equal(recs[0].host, "a");
		assert_int_equal(recs[1].priority, 20);
		assert_int_equal(recs[2].priority, 20);
		assert_string_equal(recs[3].host, "c");
		for (i = seen = 0; i < 4; i++)
			seen |= recs[i].host[0] == 'b' ?
			    (recs[i].host[1] == '1' ? 1 : 2) : 0;
		assert_int_equal(seen, 3);
	}
	wse_srv_order(NULL, 3, NULL, NULL);
}

/*
 * What a DNS server may answer that is not taken as is: SRV targets that
 * are not host names are dropped (none left: TempFail), more than 64
 * records are cut to 64.
 */
static void
test_dns_srv_malformed(void **state)
{
	static const char *fixed[] = { "--local-ttl=0",
	    "--host-record=mail.m.test,127.0.0.1",
	    "--srv-host=_wsemail._tcp.bad.test,bad_host.m.test,7001,10,10",
	    "--srv-host=_wsemail._tcp.bad.test,-dash.m.test,7002,10,10",
	    "--srv-host=_wsemail._tcp.half.test,bad_host.m.test,7003,10,10",
	    "--srv-host=_wsemail._tcp.half.test,mail.m.test,7004,20,10",
	};
	const char *opts[sizeof(fixed) / sizeof(fixed[0]) + 70 + 1];
	char many[70][96];
	testdns *d;
	wse_router *r;
	wse_route_target *t = NULL;
	size_t n = 0, i, k;
	int seen[70];

	(void)state;
	d = dnsmasq_init(0);
	for (k = 0; k < sizeof(fixed) / sizeof(fixed[0]); k++)
		opts[k] = fixed[k];
	for (i = 0; i < 70; i++) {
		snprintf(many[i], sizeof(many[i]), "--srv-host=_wsemail._tcp."
		    "many.test,mail.m.test,%zu,10,10", 8000 + i);
		opts[k++] = many[i];
	}
	opts[k] = NULL;
	testdns_start(d, opts);
	assert_wse_ok(wse_router_new(d->addr, DNS_TIMEOUT, &r));

	wse_err_clear();
	assert_resolve_fails(r, "bad.test", WSE_ERR_TEMPFAIL);
	assert_non_null(strstr(wse_err_last(), "no usable SRV target"));
	wse_err_clear();
	assert_one_target(r, "half.test", "mail.m.test", 7004, "127.0.0.1");

	assert_wse_ok(wse_router_resolve(r, "many.test", &t, &n));
	assert_int_equal(n, 64);
	memset(seen, 0, sizeof(seen));
	for (i = 0; i < n; i++) {
		assert_string_equal(t[i].host, "mail.m.test");
		assert_true(t[i].port >= 8000 && t[i].port < 8070);
		assert_int_equal(seen[t[i].port - 8000]++, 0);
	}
	free(t);
	wse_router_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_priority),
		cmocka_unit_test(test_order_rfc_algorithm),
		cmocka_unit_test(test_order_all_zero),
		cmocka_unit_test(test_order_statistics),
		cmocka_unit_test(test_order_zero_weight_chance),
		cmocka_unit_test(test_router_new_args),
		cmocka_unit_test(test_static_parse),
		cmocka_unit_test(test_static_override),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_dns_srv),
		cmocka_unit_test(test_dns_weights),
		cmocka_unit_test(test_dns_not_found),
		cmocka_unit_test(test_dns_tempfail),
		cmocka_unit_test(test_dns_static),
		cmocka_unit_test(test_dns_threads),
		cmocka_unit_test_teardown(test_cache_ttl,
		    dnsmasq_teardown),
		cmocka_unit_test_teardown(test_cache_ttl_zero,
		    dnsmasq_teardown),
		cmocka_unit_test_teardown(test_cache_min_ttl,
		    dnsmasq_teardown),
		cmocka_unit_test_teardown(test_cache_weights,
		    dnsmasq_teardown),
		cmocka_unit_test_teardown(test_cache_bound,
		    dnsmasq_teardown),
		cmocka_unit_test(test_static_limits),
		cmocka_unit_test(test_srv_name_too_long),
		cmocka_unit_test(test_order_default_rnd),
		cmocka_unit_test_teardown(test_dns_srv_malformed,
		    dnsmasq_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
