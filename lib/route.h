/*
 * route.h - where to deliver a domain's mail.
 *
 * Static routes from the configuration override DNS (like Postfix's
 * transport map).  Otherwise DNS SRV "_wsemail._tcp.<domain>" per RFC
 * 2782: lowest priority first, weighted random order within a priority
 * (weight 0 entries still get a chance), a single target "." means the
 * domain offers no service.  Each target's addresses (A and AAAA) are
 * resolved by the same resolver, so a caller connects to exactly what DNS
 * said, and tries the next target on failure.
 *
 * Resolution uses c-ares against a configurable DNS server (tests run
 * dnsmasq on 127.0.0.1), never a mock.
 *
 * Cache: a router keeps the answer of each successful SRV resolution (the
 * records and every target's addresses) per domain until the smallest TTL
 * of the records involved runs out (SRV, CNAME, A, AAAA; at most 300 s),
 * by the monotonic clock.  TTL 0 is never cached, nor is any failure
 * (NXDOMAIN, no SRV record, ".", timeout, SERVFAIL) or an answer with a
 * target left without addresses.  Each hit is put in a fresh RFC 2782
 * order, as a lookup would be.  At most 256 domains (expired first, else
 * the least recently used make room); thread safe, never locked during a
 * query; freed with the router.  Static routes are not cached.
 */
#ifndef WSE_ROUTE_H
#define WSE_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define WSE_ROUTE_MAX_ADDRS 8
#define WSE_ROUTE_HOST_MAX 256

typedef struct wse_route_target {
	char host[WSE_ROUTE_HOST_MAX];	/* the name the server's certificate
					 * must carry (SRV target or static) */
	uint16_t port;
	size_t naddrs;
	char addrs[WSE_ROUTE_MAX_ADDRS][46];	/* numeric IPv4/IPv6 */
} wse_route_target;

typedef struct wse_router wse_router;

/*
 * New router.  dns_server: "IP" or "IP:PORT" (IPv6 as "[IP]:PORT"), or
 * NULL for the system's resolv.conf.  timeout_ms bounds each whole
 * resolution (all queries and retries).
 */
wse_status wse_router_new(const char *dns_server, int timeout_ms,
    wse_router **r_r);
void wse_router_free(wse_router **r);

/*
 * Static route: mail for domain goes to target "HOST:PORT" (HOST a name
 * or a numeric address; "[v6]:PORT").  Several calls for one domain give
 * an ordered list tried in turn.  WSE_ERR_INVALID for a malformed target.
 */
wse_status wse_router_add_static(wse_router *r, const char *domain,
    const char *target);

/*
 * The ordered targets for domain (static routes first and only, else
 * SRV, from the cache while its TTL lasts), each with its addresses.
 * Caller frees *targets_r with free().
 * WSE_ERR_NOT_FOUND: permanent (NXDOMAIN, no SRV record, or "." = no
 * service); WSE_ERR_TEMPFAIL: try later (timeout, SERVFAIL, no address
 * for any target).
 */
wse_status wse_router_resolve(wse_router *r, const char *domain,
    wse_route_target **targets_r, size_t *n_r);

/* RFC 2782 ordering, exposed for tests: sort targets by priority and
 * order each priority group by weighted random selection.  rnd returns a
 * uniform value in [0, bound] (inclusive). */
typedef struct wse_srv_rec {
	uint16_t priority, weight, port;
	char host[WSE_ROUTE_HOST_MAX];
} wse_srv_rec;
void wse_srv_order(wse_srv_rec *recs, size_t n,
    uint32_t (*rnd)(void *arg, uint32_t bound), void *arg);

#endif
