/*
 * route.c - where to deliver a domain's mail: static routes, else DNS SRV
 * "_wsemail._tcp.<domain>" (RFC 2782) resolved with c-ares.
 *
 * SECURITY: everything that comes back from DNS is untrusted.  Answers are
 * parsed by c-ares; SRV targets must be valid host names (LDH labels, at
 * most 253 characters) or they are dropped; at most ROUTE_MAX_TARGETS
 * targets and WSE_ROUTE_MAX_ADDRS addresses per target are kept.  Each
 * resolution is bounded by the router's timeout as a whole.
 *
 * Threads: a router is shared read-mostly; the static table is under a
 * mutex, and every resolution builds its own c-ares channel, so concurrent
 * wse_router_resolve calls never share c-ares state.
 *
 * Cache: an SRV resolution costs a few hundred microseconds on every
 * message (one SRV and two address queries per target), so the answer of
 * a successful one is kept per domain: the records in answer order and
 * each target's addresses, until the smallest TTL involved runs out (SRV
 * and CNAME records of the SRV answer, every address kept; at most
 * ROUTE_CACHE_TTL_MAX).  c-ares 1.18 does not report SRV TTLs, so we walk
 * the answer section ourselves; whatever does not parse cleanly gives TTL
 * 0, and TTL 0 (dnsmasq's default for its own records) is never cached.
 * Nothing negative is kept: not NXDOMAIN, NODATA or "." (RFC 2308 would
 * need the SOA; a permanent "no" is rare on a path that delivers mail),
 * not a timeout or SERVFAIL of any query, not an answer with a target
 * left without addresses.  The one negative fact that is kept is a
 * family without addresses beside one with them (a host with A and no
 * AAAA): it lives as long as the addresses it goes with.  Every hit is
 * ordered afresh (RFC 2782 weights), so load spreading is the same as
 * without the cache.  Expiry is by the monotonic clock; the cache holds at
 * most ROUTE_CACHE_MAX domains (an expired entry goes first, else the one
 * least recently used) under its own mutex, never held during a query;
 * concurrent misses on one domain each ask DNS, the last answer stays.
 * Static routes are configuration, not DNS: never cached.
 *
 * Address order within a target: IPv4 first, then IPv6 (at least half of
 * the slots are kept for each family when both are present).
 */
#include "route.h"

#include <arpa/inet.h>
#include <ares.h>
#include <ares_nameser.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "crypto.h"

#define ROUTE_NAME_MAX 253		/* DNS name, without trailing dot */
#define ROUTE_MAX_TARGETS 64		/* SRV records or static routes kept */
#define ROUTE_MAX_STATIC 65536		/* static routes in one router */
#define ROUTE_TIMEOUT_MAX 600000	/* ms */
#define ROUTE_SRV_PREFIX "_wsemail._tcp."
#define ROUTE_ADDRLEN 46		/* INET6_ADDRSTRLEN */
#define ROUTE_CACHE_MAX 256		/* domains in the SRV cache */
#define ROUTE_CACHE_TTL_MAX 300		/* s: longer TTLs are cut to this */

struct static_route {
	char domain[ROUTE_NAME_MAX + 1];
	wse_route_target t;		/* naddrs 1 when host is numeric */
};

/*
 * One SRV record with the addresses of its target.  Addresses belong to
 * the host name alone, so a fresh ordering of the records can find each
 * one's addresses by name.
 */
struct srv_target {
	wse_srv_rec srv;
	size_t naddrs;
	char addrs[WSE_ROUTE_MAX_ADDRS][ROUTE_ADDRLEN];
};

struct cache_entry {
	char domain[ROUTE_NAME_MAX + 1];	/* normalised */
	uint32_t hash;			/* of domain */
	double expires;			/* now_ms() value */
	uint64_t used;			/* cache_tick of the last hit */
	struct srv_target *targets;	/* n, in answer order */
	size_t n;
};

struct wse_router {
	char dns_server[64];		/* canonical "IP:PORT", "" = system */
	int timeout_ms;
	pthread_mutex_t lock;		/* guards statics */
	struct static_route *statics;
	size_t nstatics, capstatics;
	pthread_mutex_t cache_lock;	/* guards the four below */
	struct cache_entry *cache;
	size_t ncache, capcache;
	uint64_t cache_tick;
};

/* ---- c-ares library initialisation (reference counted, thread safe) ---- */

static pthread_mutex_t ares_lib_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long ares_lib_refs;

static wse_status
ares_lib_acquire(void)
{
	wse_status st = WSE_OK;
	int rc;

	pthread_mutex_lock(&ares_lib_lock);
	if (ares_lib_refs == 0 &&
	    (rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS)
		st = wse_err(WSE_ERR_INTERNAL, "c-ares initialisation: %s",
		    ares_strerror(rc));
	else
		ares_lib_refs++;
	pthread_mutex_unlock(&ares_lib_lock);
	return st;
}

static void
ares_lib_release(void)
{
	pthread_mutex_lock(&ares_lib_lock);
	if (ares_lib_refs > 0 && --ares_lib_refs == 0)
		ares_library_cleanup();
	pthread_mutex_unlock(&ares_lib_lock);
}

/* ---- names and addresses ---- */

/*
 * Validate a host or domain name (LDH labels of 1..63 characters, no
 * leading or trailing hyphen, not all-numeric in the last label, at most
 * 253 characters, one trailing dot allowed) and copy it lower-cased to
 * out (ROUTE_NAME_MAX + 1 bytes).  Returns 1 when valid.
 */
static int
name_normalize(const char *in, char out[ROUTE_NAME_MAX + 1])
{
	size_t len, i, label = 0;
	int alldigits = 1;

	if (in == NULL)
		return 0;
	len = strlen(in);
	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > ROUTE_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		char c = in[i];

		if (c == '.') {
			if (label == 0 || in[i - 1] == '-')
				return 0;
			label = 0;
			alldigits = 1;
			out[i] = c;
			continue;
		}
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c == '-') {
			if (label == 0)
				return 0;
		} else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			return 0;
		if (c < '0' || c > '9')
			alldigits = 0;
		if (++label > 63)
			return 0;
		out[i] = c;
	}
	if (in[len - 1] == '-' || alldigits)
		return 0;
	out[len] = '\0';
	return 1;
}

/* Decimal port 1..65535, digits only. */
static int
port_parse(const char *s, uint16_t *port_r)
{
	unsigned long v = 0;
	size_t i;

	if (s == NULL || *s == '\0' || strlen(s) > 5)
		return 0;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return 0;
	*port_r = (uint16_t)v;
	return 1;
}

/*
 * Split "HOST:PORT", "[V6]:PORT" (port_required) or "HOST", "[V6]",
 * "HOST:PORT", "[V6]:PORT" (port optional, *port_r 0 when absent).
 * Numeric hosts are returned in canonical form with *family_r AF_INET or
 * AF_INET6; names (only when names_ok) lower-cased with *family_r 0.
 */
static int
hostport_parse(const char *s, int port_required, int names_ok,
    char host[ROUTE_NAME_MAX + 1], int *family_r, uint16_t *port_r)
{
	char tmp[ROUTE_NAME_MAX + 1];
	const char *colon, *end, *portstr = NULL;
	unsigned char bin[sizeof(struct in6_addr)];
	size_t hlen;

	*port_r = 0;
	*family_r = 0;
	if (s == NULL || *s == '\0' || strlen(s) > ROUTE_NAME_MAX + 8)
		return 0;
	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return 0;
		hlen = (size_t)(end - (s + 1));
		if (hlen == 0 || hlen >= sizeof(tmp))
			return 0;
		memcpy(tmp, s + 1, hlen);
		tmp[hlen] = '\0';
		if (end[1] == ':')
			portstr = end + 2;
		else if (end[1] != '\0')
			return 0;
		if (inet_pton(AF_INET6, tmp, bin) != 1 ||
		    inet_ntop(AF_INET6, bin, host, ROUTE_NAME_MAX + 1) == NULL)
			return 0;
		*family_r = AF_INET6;
	} else {
		colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			return 0;	/* bare IPv6: must be "[addr]:port" */
		hlen = colon != NULL ? (size_t)(colon - s) : strlen(s);
		if (hlen == 0 || hlen >= sizeof(tmp))
			return 0;
		memcpy(tmp, s, hlen);
		tmp[hlen] = '\0';
		if (colon != NULL)
			portstr = colon + 1;
		if (inet_pton(AF_INET, tmp, bin) == 1) {
			if (inet_ntop(AF_INET, bin, host,
			    ROUTE_NAME_MAX + 1) == NULL)
				return 0;
			*family_r = AF_INET;
		} else if (!names_ok || !name_normalize(tmp, host))
			return 0;
	}
	if (portstr != NULL)
		return port_parse(portstr, port_r);
	return !port_required;
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- router ---- */

wse_status
wse_router_new(const char *dns_server, int timeout_ms, wse_router **r_r)
{
	wse_router *r = NULL;
	char host[ROUTE_NAME_MAX + 1];
	int family, n;
	uint16_t port;
	wse_status st;

	*r_r = NULL;
	if (timeout_ms <= 0 || timeout_ms > ROUTE_TIMEOUT_MAX)
		return wse_err(WSE_ERR_INVALID,
		    "DNS timeout %d ms out of range 1..%d", timeout_ms,
		    ROUTE_TIMEOUT_MAX);
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate router");
	r->timeout_ms = timeout_ms;
	if (dns_server != NULL) {
		if (!hostport_parse(dns_server, 0, 0, host, &family, &port)) {
			free(r);
			return wse_err(WSE_ERR_INVALID,
			    "DNS server \"%.64s\" is not IP, IP:PORT or "
			    "[IPv6]:PORT", dns_server);
		}
		if (port == 0)
			port = 53;	/* c-ares 1.18 refuses "[v6]" alone */
		n = snprintf(r->dns_server, sizeof(r->dns_server),
		    family == AF_INET6 ? "[%s]:%u" : "%s:%u", host,
		    (unsigned)port);
		if (n < 0 || (size_t)n >= sizeof(r->dns_server)) {
			free(r);
			return wse_err(WSE_ERR_INTERNAL, "DNS server too long");
		}
	}
	if ((st = ares_lib_acquire()) != WSE_OK) {
		free(r);
		return st;
	}
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->cache_lock, NULL);
	*r_r = r;
	return WSE_OK;
}

void
wse_router_free(wse_router **rp)
{
	wse_router *r;
	size_t i;

	if (rp == NULL || (r = *rp) == NULL)
		return;
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->cache_lock);
	for (i = 0; i < r->ncache; i++)
		free(r->cache[i].targets);
	free(r->cache);
	free(r->statics);
	free(r);
	*rp = NULL;
	ares_lib_release();
}

wse_status
wse_router_add_static(wse_router *r, const char *domain, const char *target)
{
	struct static_route sr, *grown;
	char host[ROUTE_NAME_MAX + 1];
	size_t i, same = 0, cap;
	int family;
	wse_status st = WSE_OK;

	if (r == NULL)
		return wse_err(WSE_ERR_INVALID, "no router");
	memset(&sr, 0, sizeof(sr));
	if (!name_normalize(domain, sr.domain))
		return wse_err(WSE_ERR_INVALID, "static route: bad domain "
		    "\"%.64s\"", domain != NULL ? domain : "(null)");
	if (!hostport_parse(target, 1, 1, host, &family, &sr.t.port))
		return wse_err(WSE_ERR_INVALID, "static route for %s: target "
		    "\"%.64s\" is not HOST:PORT or [IPv6]:PORT", sr.domain,
		    target != NULL ? target : "(null)");
	if (strlen(host) >= sizeof(sr.t.host))
		return wse_err(WSE_ERR_INVALID, "static route host too long");
	memcpy(sr.t.host, host, strlen(host) + 1);
	if (family != 0) {
		memcpy(sr.t.addrs[0], host, strlen(host) + 1);
		sr.t.naddrs = 1;
	}

	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->nstatics; i++)
		if (strcmp(r->statics[i].domain, sr.domain) == 0)
			same++;
	if (same >= ROUTE_MAX_TARGETS || r->nstatics >= ROUTE_MAX_STATIC) {
		st = wse_err(WSE_ERR_TOO_LARGE, "too many static routes "
		    "(for %s)", sr.domain);
		goto out;
	}
	if (r->nstatics == r->capstatics) {
		cap = r->capstatics ? r->capstatics * 2 : 8;
		if ((grown = realloc(r->statics, cap * sizeof(*grown)))
		    == NULL) {
			st = wse_err(WSE_ERR_NOMEM, "cannot grow static routes");
			goto out;
		}
		r->statics = grown;
		r->capstatics = cap;
	}
	r->statics[r->nstatics++] = sr;
out:
	pthread_mutex_unlock(&r->lock);
	return st;
}

/* ---- RFC 2782 ordering ---- */

/* Uniform value in [0, bound] from the CSPRNG (rejection sampling). */
static uint32_t
default_rnd(void *arg, uint32_t bound)
{
	uint64_t range = (uint64_t)bound + 1, limit;
	uint32_t x;
	int i;

	(void)arg;
	limit = ((uint64_t)1 << 32) - (((uint64_t)1 << 32) % range);
	for (i = 0; i < 64; i++) {
		if (wse_random(&x, sizeof(x)) != WSE_OK)
			return 0;
		if ((uint64_t)x < limit)
			return (uint32_t)((uint64_t)x % range);
	}
	return 0;
}

/* Order one priority group in place, per RFC 2782. */
static void
order_group(wse_srv_rec *recs, size_t n,
    uint32_t (*rnd)(void *arg, uint32_t bound), void *arg)
{
	wse_srv_rec tmp;
	size_t i, j, k, pick;
	uint64_t total, sum, x;

	/* "all those with weight 0 are placed at the beginning of the
	 * list" (stable, so the result only depends on rnd) */
	for (i = 0, j = 0; i < n; i++) {
		if (recs[i].weight != 0)
			continue;
		if (i != j) {
			tmp = recs[i];
			memmove(&recs[j + 1], &recs[j],
			    (i - j) * sizeof(*recs));
			recs[j] = tmp;
		}
		j++;
	}
	/* recs[k..n) are not ordered yet; pick the next one into k */
	for (k = 0; k + 1 < n; k++) {
		total = 0;
		for (i = k; i < n; i++)
			total += recs[i].weight;
		pick = k;		/* forced when every weight is 0 */
		if (total > 0) {
			x = rnd(arg, total > UINT32_MAX ? UINT32_MAX :
			    (uint32_t)total);
			pick = n - 1;	/* rnd beyond bound: the last */
			for (i = k, sum = 0; i < n; i++) {
				sum += recs[i].weight;
				if (sum >= x) {
					pick = i;
					break;
				}
			}
		}
		if (pick != k) {
			tmp = recs[pick];
			memmove(&recs[k + 1], &recs[k],
			    (pick - k) * sizeof(*recs));
			recs[k] = tmp;
		}
	}
}

void
wse_srv_order(wse_srv_rec *recs, size_t n,
    uint32_t (*rnd)(void *arg, uint32_t bound), void *arg)
{
	wse_srv_rec tmp;
	size_t i, j, start, end;

	if (recs == NULL || n == 0)
		return;
	if (rnd == NULL) {
		rnd = default_rnd;
		arg = NULL;
	}
	/* stable insertion sort by priority (n is small) */
	for (i = 1; i < n; i++) {
		if (recs[i - 1].priority <= recs[i].priority)
			continue;
		tmp = recs[i];
		for (j = i; j > 0 && recs[j - 1].priority > tmp.priority; j--)
			recs[j] = recs[j - 1];
		recs[j] = tmp;
	}
	for (start = 0; start < n; start = end) {
		for (end = start + 1; end < n &&
		    recs[end].priority == recs[start].priority; end++)
			;
		order_group(recs + start, end - start, rnd, arg);
	}
}

/* ---- c-ares queries ---- */

struct lookup {
	ares_channel ch;
	int pending;			/* queries whose callback is due */
	double deadline;		/* now_ms() value */
	int timeout_ms;
};

struct srv_query {
	struct lookup *lk;
	int status;			/* ares status of query, then parse */
	struct ares_srv_reply *reply;
	uint32_t ttl;			/* of the answer section; 0: do not
					 * cache */
};

struct addr_query {
	struct lookup *lk;
	int family;
	int status;
	size_t n;
	char addrs[WSE_ROUTE_MAX_ADDRS][ROUTE_ADDRLEN];
	uint32_t ttls[WSE_ROUTE_MAX_ADDRS];	/* s, of addrs[i] */
};

struct host_job {
	struct addr_query q4, q6;
};

static unsigned
get16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | (unsigned)p[1];
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/*
 * The smallest TTL (seconds) of the answer section of a DNS message that
 * c-ares has accepted already: ares_parse_srv_reply drops the TTLs, the
 * cache needs them.  Any doubt gives 0 ("do not cache"): not exactly one
 * question, no answer, a name that does not expand, a record running past
 * the end.  A TTL with the top bit set counts as 0 (RFC 2181 section 8).
 * Every answer record counts, CNAMEs on the way to the SRV set included.
 */
static uint32_t
answer_min_ttl(const unsigned char *abuf, int alen)
{
	const unsigned char *p, *end;
	unsigned i, qdcount, ancount;
	uint32_t ttl, min = UINT32_MAX;
	size_t rdlen;
	long enclen;
	char *name;

	if (abuf == NULL || alen < HFIXEDSZ)
		return 0;
	end = abuf + alen;
	qdcount = get16(abuf + 4);
	ancount = get16(abuf + 6);
	if (qdcount != 1 || ancount == 0)
		return 0;
	p = abuf + HFIXEDSZ;
	for (i = 0; i < qdcount + ancount; i++) {
		if (p >= end || ares_expand_name(p, abuf, alen, &name,
		    &enclen) != ARES_SUCCESS)
			return 0;
		ares_free_string(name);
		if (enclen <= 0 || enclen > end - p)
			return 0;
		p += enclen;
		if (i < qdcount) {		/* type, class */
			if (end - p < QFIXEDSZ)
				return 0;
			p += QFIXEDSZ;
			continue;
		}
		/* type, class, TTL, RDLENGTH, then RDATA */
		if (end - p < RRFIXEDSZ)
			return 0;
		ttl = get32(p + 4);
		rdlen = get16(p + 8);
		p += RRFIXEDSZ;
		if (rdlen > (size_t)(end - p))
			return 0;
		p += rdlen;
		if (ttl > INT32_MAX)
			ttl = 0;
		if (ttl < min)
			min = ttl;
	}
	return min;
}

static void
srv_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct srv_query *q = arg;

	(void)timeouts;
	q->lk->pending--;
	q->status = status;
	q->ttl = 0;
	if (status != ARES_SUCCESS)
		return;
	q->status = ares_parse_srv_reply(abuf, alen, &q->reply);
	if (q->status == ARES_SUCCESS)
		q->ttl = answer_min_ttl(abuf, alen);
}

static void
addr_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct addr_query *q = arg;
	struct ares_addrttl a4[WSE_ROUTE_MAX_ADDRS];
	struct ares_addr6ttl a6[WSE_ROUTE_MAX_ADDRS];
	int i, n = WSE_ROUTE_MAX_ADDRS;

	(void)timeouts;
	q->lk->pending--;
	q->status = status;
	q->n = 0;
	if (status != ARES_SUCCESS)
		return;
	if (q->family == AF_INET)
		q->status = ares_parse_a_reply(abuf, alen, NULL, a4, &n);
	else
		q->status = ares_parse_aaaa_reply(abuf, alen, NULL, a6, &n);
	if (q->status != ARES_SUCCESS)
		return;
	for (i = 0; i < n && i < WSE_ROUTE_MAX_ADDRS; i++) {
		const void *src = q->family == AF_INET ?
		    (const void *)&a4[i].ipaddr : (const void *)&a6[i].ip6addr;
		int ttl = q->family == AF_INET ? a4[i].ttl : a6[i].ttl;

		if (inet_ntop(q->family, src, q->addrs[q->n],
		    ROUTE_ADDRLEN) == NULL)
			continue;
		/* c-ares has taken the CNAMEs' TTLs into account; it hands
		 * the 32 bits over as an int (RFC 2181: top bit = 0) */
		q->ttls[q->n++] = ttl > 0 ? (uint32_t)ttl : 0;
	}
	if (q->n == 0)
		q->status = ARES_ENODATA;
}

static wse_status
lookup_open(const wse_router *r, struct lookup *lk)
{
	struct ares_options opts;
	int rc, per_try;

	memset(lk, 0, sizeof(*lk));
	lk->timeout_ms = r->timeout_ms;
	lk->deadline = now_ms() + r->timeout_ms;
	/* three tries (the second waits twice as long); the deadline cuts
	 * whatever is left when the whole budget is spent */
	per_try = r->timeout_ms / 4 > 0 ? r->timeout_ms / 4 : 1;
	memset(&opts, 0, sizeof(opts));
	opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	opts.timeout = per_try;
	opts.tries = 3;
	rc = ares_init_options(&lk->ch, &opts,
	    ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		lk->ch = NULL;
		return wse_err(rc == ARES_ENOMEM ? WSE_ERR_NOMEM :
		    WSE_ERR_TEMPFAIL, "cannot set up DNS resolver: %s",
		    ares_strerror(rc));
	}
	if (r->dns_server[0] != '\0' &&
	    (rc = ares_set_servers_ports_csv(lk->ch, r->dns_server))
	    != ARES_SUCCESS) {
		ares_destroy(lk->ch);
		lk->ch = NULL;
		return wse_err(rc == ARES_ENOMEM ? WSE_ERR_NOMEM :
		    WSE_ERR_INTERNAL, "cannot use DNS server %s: %s",
		    r->dns_server, ares_strerror(rc));
	}
	return WSE_OK;
}

/* Destroy the channel; pending callbacks run (ARES_EDESTRUCTION) first. */
static void
lookup_close(struct lookup *lk)
{
	if (lk->ch != NULL)
		ares_destroy(lk->ch);
	lk->ch = NULL;
}

/*
 * Drive the channel until every query has called back or the deadline
 * passes; then the rest are cancelled (their callbacks see
 * ARES_ECANCELLED).  WSE_OK in both cases: callers read each query's
 * status.  WSE_ERR_IO when poll() fails.
 */
static wse_status
lookup_run(struct lookup *lk)
{
	ares_socket_t socks[ARES_GETSOCK_MAXNUM];
	struct pollfd pfd[ARES_GETSOCK_MAXNUM];
	struct timeval maxtv, tv, *tvp;
	double left;
	unsigned mask;
	int i, nfds, ms, rc;

	while (lk->pending > 0) {
		left = lk->deadline - now_ms();
		if (left <= 0) {
			ares_cancel(lk->ch);
			return WSE_OK;
		}
		maxtv.tv_sec = (time_t)(left / 1000);
		maxtv.tv_usec = (suseconds_t)((left - (double)maxtv.tv_sec *
		    1000) * 1000);
		tvp = ares_timeout(lk->ch, &maxtv, &tv);
		ms = (int)(tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000);
		if (ms < 1)
			ms = 1;

		mask = (unsigned)ares_getsock(lk->ch, socks,
		    ARES_GETSOCK_MAXNUM);
		for (i = 0, nfds = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short ev = 0;

			/* the ARES_GETSOCK_* macros shift a signed 1 into
			 * the sign bit; test the mask as unsigned */
			if (mask & (1u << i))
				ev |= POLLIN;
			if (mask & (1u << (i + ARES_GETSOCK_MAXNUM)))
				ev |= POLLOUT;
			if (ev == 0)
				continue;
			pfd[nfds].fd = socks[i];
			pfd[nfds].events = ev;
			pfd[nfds].revents = 0;
			nfds++;
		}
		rc = poll(pfd, (nfds_t)nfds, ms);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			rc = errno;
			ares_cancel(lk->ch);
			return wse_err(WSE_ERR_IO, "poll on DNS sockets: %s",
			    strerror(rc));
		}
		if (rc == 0) {
			ares_process_fd(lk->ch, ARES_SOCKET_BAD,
			    ARES_SOCKET_BAD);
			continue;
		}
		for (i = 0; i < nfds; i++) {
			ares_socket_t rfd = ARES_SOCKET_BAD;
			ares_socket_t wfd = ARES_SOCKET_BAD;

			if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
				rfd = pfd[i].fd;
			if (pfd[i].revents & POLLOUT)
				wfd = pfd[i].fd;
			if (rfd != ARES_SOCKET_BAD || wfd != ARES_SOCKET_BAD)
				ares_process_fd(lk->ch, rfd, wfd);
		}
	}
	return WSE_OK;
}

/* A query status that means "try later" rather than "does not exist". */
static int
ares_status_temporary(int status)
{
	return status != ARES_SUCCESS && status != ARES_ENODATA &&
	    status != ARES_ENOTFOUND;
}

static const char *
ares_status_text(int status)
{
	if (status == ARES_ECANCELLED || status == ARES_EDESTRUCTION)
		return "timed out";
	return ares_strerror(status);
}

/*
 * Resolve the A and AAAA records of every target that has no address yet
 * (numeric static routes already have theirs).  *ttl_r (when not NULL):
 * the smallest TTL of the addresses kept, or 0 when the result must not
 * be cached: a query that did not end in an answer or a definite "no such
 * name / no such record", or a target left without any address (the
 * answer to keep would then hold a negative one whose SOA we have not
 * seen).  *last_r: the status that explains a target without addresses.
 */
static wse_status
resolve_targets(const wse_router *r, struct lookup *lk, wse_route_target *t,
    size_t n, uint32_t *ttl_r, int *last_r)
{
	struct host_job *jobs = NULL;
	const struct addr_query *qs[2];
	size_t i, j, k, n4, n6, keep4, keep6;
	uint32_t ttl = ROUTE_CACHE_TTL_MAX;
	int need = 0;
	wse_status st = WSE_OK;

	*last_r = ARES_SUCCESS;
	for (i = 0; i < n; i++)
		if (t[i].naddrs == 0)
			need = 1;
	if (!need)
		goto out;
	if ((jobs = calloc(n, sizeof(*jobs))) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate address lookups");
		goto out;
	}
	if (lk->ch == NULL && (st = lookup_open(r, lk)) != WSE_OK)
		goto out;
	for (i = 0; i < n; i++) {
		if (t[i].naddrs != 0)
			continue;
		jobs[i].q4.lk = jobs[i].q6.lk = lk;
		jobs[i].q4.family = AF_INET;
		jobs[i].q6.family = AF_INET6;
		lk->pending += 2;
		ares_query(lk->ch, t[i].host, C_IN, T_A, addr_cb, &jobs[i].q4);
		ares_query(lk->ch, t[i].host, C_IN, T_AAAA, addr_cb,
		    &jobs[i].q6);
	}
	if ((st = lookup_run(lk)) != WSE_OK)
		goto out;
	for (i = 0; i < n; i++) {
		if (t[i].naddrs != 0)
			continue;
		qs[0] = &jobs[i].q4;
		qs[1] = &jobs[i].q6;
		for (j = 0; j < 2; j++)
			if (ares_status_temporary(qs[j]->status))
				ttl = 0;
		n4 = qs[0]->n;
		n6 = qs[1]->n;
		keep6 = n6 < WSE_ROUTE_MAX_ADDRS / 2 ? n6 :
		    WSE_ROUTE_MAX_ADDRS / 2;
		keep4 = n4 < WSE_ROUTE_MAX_ADDRS - keep6 ? n4 :
		    WSE_ROUTE_MAX_ADDRS - keep6;
		if (keep4 + keep6 < WSE_ROUTE_MAX_ADDRS)
			keep6 = n6 < WSE_ROUTE_MAX_ADDRS - keep4 ?
			    n6 : WSE_ROUTE_MAX_ADDRS - keep4;
		for (k = 0; k < keep4; k++) {
			memcpy(t[i].addrs[t[i].naddrs++], qs[0]->addrs[k],
			    ROUTE_ADDRLEN);
			if (qs[0]->ttls[k] < ttl)
				ttl = qs[0]->ttls[k];
		}
		for (k = 0; k < keep6; k++) {
			memcpy(t[i].addrs[t[i].naddrs++], qs[1]->addrs[k],
			    ROUTE_ADDRLEN);
			if (qs[1]->ttls[k] < ttl)
				ttl = qs[1]->ttls[k];
		}
		if (t[i].naddrs == 0) {
			ttl = 0;
			*last_r = ares_status_temporary(qs[0]->status) ?
			    qs[0]->status : qs[1]->status;
		}
	}
out:
	if (ttl_r != NULL)
		*ttl_r = st == WSE_OK && need ? ttl : 0;
	free(jobs);
	return st;
}

/*
 * Drop the targets without any address, keeping the order.
 * WSE_ERR_TEMPFAIL when none remains (last: the status of the last
 * failure, for the message).
 */
static wse_status
compact_targets(const char *domain, wse_route_target *t, size_t *n_r,
    int last)
{
	size_t i, k;

	for (i = 0, k = 0; i < *n_r; i++) {
		if (t[i].naddrs == 0)
			continue;
		if (i != k)
			t[k] = t[i];
		k++;
	}
	*n_r = k;
	if (k == 0)
		return wse_err(WSE_ERR_TEMPFAIL, "no address for any mail "
		    "server of %.128s (last: %s)", domain, ares_status_text(last));
	return WSE_OK;
}

/*
 * Look up the SRV records of domain into recs (at most max), in the order
 * of the answer; *ttl_r: the answer's smallest TTL, 0 when unknown.
 */
static wse_status
lookup_srv(const wse_router *r, struct lookup *lk, const char *domain,
    wse_srv_rec *recs, size_t max, size_t *n_r, uint32_t *ttl_r)
{
	char qname[sizeof(ROUTE_SRV_PREFIX) + ROUTE_NAME_MAX];
	struct srv_query q;
	struct ares_srv_reply *s;
	size_t n = 0, nrecs = 0, nroot = 0;
	wse_status st;
	int len;

	*n_r = 0;
	*ttl_r = 0;
	memset(&q, 0, sizeof(q));
	len = snprintf(qname, sizeof(qname), "%s%s", ROUTE_SRV_PREFIX, domain);
	if (len < 0 || (size_t)len >= sizeof(qname) || len > ROUTE_NAME_MAX)
		return wse_err(WSE_ERR_NOT_FOUND, "%.128s: name too long for an "
		    "SRV lookup", domain);
	if ((st = lookup_open(r, lk)) != WSE_OK)
		return st;
	q.lk = lk;
	lk->pending++;
	ares_query(lk->ch, qname, C_IN, T_SRV, srv_cb, &q);
	if ((st = lookup_run(lk)) != WSE_OK)
		goto out;

	switch (q.status) {
	case ARES_SUCCESS:
		break;
	case ARES_ENOTFOUND:
		st = wse_err(WSE_ERR_NOT_FOUND, "%.128s: no such domain", qname);
		goto out;
	case ARES_ENODATA:
		st = wse_err(WSE_ERR_NOT_FOUND, "%.128s: no SRV record", qname);
		goto out;
	case ARES_ENOMEM:
		st = wse_err(WSE_ERR_NOMEM, "%.128s: out of memory", qname);
		goto out;
	default:
		st = wse_err(WSE_ERR_TEMPFAIL, "SRV lookup of %.128s: %s", qname,
		    ares_status_text(q.status));
		goto out;
	}

	for (s = q.reply; s != NULL; s = s->next) {
		nrecs++;
		if (s->host == NULL || s->host[0] == '\0' ||
		    strcmp(s->host, ".") == 0) {
			nroot++;	/* target "." */
			continue;
		}
		if (n == max)
			continue;
		if (!name_normalize(s->host, recs[n].host))
			continue;	/* not a host name: dropped */
		recs[n].priority = s->priority;
		recs[n].weight = s->weight;
		recs[n].port = s->port;
		n++;
	}
	if (nrecs > 0 && nroot == nrecs) {
		st = wse_err(WSE_ERR_NOT_FOUND, "%.128s: SRV target \".\": the "
		    "domain offers no service", qname);
		goto out;
	}
	if (n == 0) {
		st = wse_err(WSE_ERR_TEMPFAIL, "%.128s: no usable SRV target",
		    qname);
		goto out;
	}
	*n_r = n;
	*ttl_r = q.ttl;
	st = WSE_OK;
out:
	if (q.reply != NULL)
		ares_free_data(q.reply);
	return st;
}

/* ---- the SRV cache ---- */

/* FNV-1a: a cheap first comparison of names. */
static uint32_t
name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

/* The entry for domain, or NULL; with r->cache_lock held. */
static struct cache_entry *
cache_find(wse_router *r, const char *domain, uint32_t hash)
{
	size_t i;

	for (i = 0; i < r->ncache; i++)
		if (r->cache[i].hash == hash &&
		    strcmp(r->cache[i].domain, domain) == 0)
			return &r->cache[i];
	return NULL;
}

/*
 * Copy domain's unexpired answer into out (room for ROUTE_MAX_TARGETS).
 * Returns its number of records, 0 on a miss; an expired entry is
 * dropped on the way.
 */
static size_t
cache_get(wse_router *r, const char *domain, struct srv_target *out)
{
	struct cache_entry *e;
	struct srv_target *stale = NULL;
	size_t n = 0;

	pthread_mutex_lock(&r->cache_lock);
	if ((e = cache_find(r, domain, name_hash(domain))) != NULL) {
		if (e->expires > now_ms()) {
			n = e->n;
			memcpy(out, e->targets, n * sizeof(*out));
			e->used = ++r->cache_tick;
		} else {
			stale = e->targets;
			*e = r->cache[--r->ncache];
		}
	}
	pthread_mutex_unlock(&r->cache_lock);
	free(stale);
	return n;
}

/*
 * Keep domain's answer (n records with their addresses) until expires.
 * The cache only saves time: when memory is short nothing is kept and
 * nothing fails.
 */
static void
cache_put(wse_router *r, const char *domain, const struct srv_target *in,
    size_t n, double expires)
{
	struct cache_entry *e, *grown;
	struct srv_target *copy, *old = NULL;
	uint32_t hash = name_hash(domain);
	double now = now_ms();
	size_t i, cap;

	if (n == 0 || n > ROUTE_MAX_TARGETS ||
	    (copy = malloc(n * sizeof(*copy))) == NULL)
		return;
	memcpy(copy, in, n * sizeof(*copy));

	pthread_mutex_lock(&r->cache_lock);
	if ((e = cache_find(r, domain, hash)) != NULL)
		old = e->targets;	/* a concurrent miss got here first */
	else if (r->ncache < r->capcache)
		e = &r->cache[r->ncache++];
	else if (r->capcache < ROUTE_CACHE_MAX) {
		cap = r->capcache ? r->capcache * 2 : 16;
		if (cap > ROUTE_CACHE_MAX)
			cap = ROUTE_CACHE_MAX;
		if ((grown = realloc(r->cache, cap * sizeof(*grown))) ==
		    NULL) {
			pthread_mutex_unlock(&r->cache_lock);
			free(copy);
			return;
		}
		r->cache = grown;
		r->capcache = cap;
		e = &r->cache[r->ncache++];
	} else {
		/* full: an expired entry (the scan stops at the first),
		 * else the least recently used */
		e = &r->cache[0];
		for (i = 0; i < r->ncache && e->expires > now; i++)
			if (r->cache[i].expires <= now ||
			    r->cache[i].used < e->used)
				e = &r->cache[i];
		old = e->targets;
	}
	memcpy(e->domain, domain, strlen(domain) + 1);
	e->hash = hash;
	e->expires = expires;
	e->used = ++r->cache_tick;
	e->targets = copy;
	e->n = n;
	pthread_mutex_unlock(&r->cache_lock);
	free(old);
}

/*
 * Domain's SRV records with their targets' addresses, in answer order:
 * from the cache, else from DNS (and then cached when every TTL allows).
 * t: scratch room for ROUTE_MAX_TARGETS targets.  Targets without an
 * address are still in out (they take part in the ordering).
 */
static wse_status
srv_answer(wse_router *r, struct lookup *lk, const char *domain,
    struct srv_target *out, size_t *n_r, wse_route_target *t)
{
	wse_srv_rec *recs = NULL;
	uint32_t srv_ttl, addr_ttl;
	size_t i, n = 0, have = 0;
	double t0;
	int last;
	wse_status st;

	if ((*n_r = cache_get(r, domain, out)) > 0)
		return WSE_OK;

	/* TTLs count from the question, not from the answer */
	t0 = now_ms();
	if ((recs = calloc(ROUTE_MAX_TARGETS, sizeof(*recs))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate SRV records");
	if ((st = lookup_srv(r, lk, domain, recs, ROUTE_MAX_TARGETS, &n,
	    &srv_ttl)) != WSE_OK)
		goto out;
	memset(t, 0, n * sizeof(*t));
	for (i = 0; i < n; i++) {
		memcpy(t[i].host, recs[i].host, strlen(recs[i].host) + 1);
		t[i].port = recs[i].port;
	}
	if ((st = resolve_targets(r, lk, t, n, &addr_ttl, &last)) != WSE_OK)
		goto out;
	for (i = 0; i < n; i++) {
		out[i].srv = recs[i];
		out[i].naddrs = t[i].naddrs;
		memcpy(out[i].addrs, t[i].addrs, sizeof(out[i].addrs));
		if (t[i].naddrs > 0)
			have++;
	}
	if (have == 0) {
		st = wse_err(WSE_ERR_TEMPFAIL, "no address for any mail "
		    "server of %.128s (last: %s)", domain, ares_status_text(last));
		goto out;
	}
	if (addr_ttl < srv_ttl)
		srv_ttl = addr_ttl;
	if (srv_ttl > ROUTE_CACHE_TTL_MAX)
		srv_ttl = ROUTE_CACHE_TTL_MAX;
	if (srv_ttl > 0)
		cache_put(r, domain, out, n, t0 + srv_ttl * 1000.0);
	*n_r = n;
out:
	free(recs);
	return st;
}

wse_status
wse_router_resolve(wse_router *r, const char *domain,
    wse_route_target **targets_r, size_t *n_r)
{
	char dom[ROUTE_NAME_MAX + 1];
	wse_route_target *t = NULL;
	struct srv_target *ans = NULL;
	wse_srv_rec *recs = NULL;
	struct lookup lk;
	size_t i, j, n = 0;
	int last = ARES_SUCCESS;
	wse_status st;

	memset(&lk, 0, sizeof(lk));
	*targets_r = NULL;
	*n_r = 0;
	if (r == NULL)
		return wse_err(WSE_ERR_INVALID, "no router");
	if (!name_normalize(domain, dom))
		return wse_err(WSE_ERR_INVALID, "bad domain name \"%.64s\"",
		    domain != NULL ? domain : "(null)");
	if ((t = calloc(ROUTE_MAX_TARGETS, sizeof(*t))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate targets");

	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->nstatics && n < ROUTE_MAX_TARGETS; i++)
		if (strcmp(r->statics[i].domain, dom) == 0)
			t[n++] = r->statics[i].t;
	pthread_mutex_unlock(&r->lock);

	if (n > 0) {
		if ((st = resolve_targets(r, &lk, t, n, NULL, &last)) !=
		    WSE_OK)
			goto out;
	} else {
		if ((ans = malloc(ROUTE_MAX_TARGETS * sizeof(*ans))) == NULL ||
		    (recs = malloc(ROUTE_MAX_TARGETS * sizeof(*recs))) ==
		    NULL) {
			st = wse_err(WSE_ERR_NOMEM, "cannot allocate SRV "
			    "records");
			goto out;
		}
		if ((st = srv_answer(r, &lk, dom, ans, &n, t)) != WSE_OK)
			goto out;
		/* a fresh RFC 2782 order every time, cached or not; then
		 * each record finds its target's addresses by name (recs
		 * is a permutation of ans, so the search ends on a match;
		 * the bound only keeps j in range) */
		for (i = 0; i < n; i++)
			recs[i] = ans[i].srv;
		wse_srv_order(recs, n, default_rnd, NULL);
		for (i = 0; i < n; i++) {
			for (j = 0; j + 1 < n &&
			    strcmp(ans[j].srv.host, recs[i].host) != 0; j++)
				;
			memset(&t[i], 0, sizeof(t[i]));
			memcpy(t[i].host, recs[i].host,
			    strlen(recs[i].host) + 1);
			t[i].port = recs[i].port;
			t[i].naddrs = ans[j].naddrs;
			memcpy(t[i].addrs, ans[j].addrs, sizeof(t[i].addrs));
		}
	}
	if ((st = compact_targets(dom, t, &n, last)) != WSE_OK)
		goto out;
	*targets_r = t;
	*n_r = n;
	t = NULL;
out:
	lookup_close(&lk);
	free(ans);
	free(recs);
	free(t);
	return st;
}
