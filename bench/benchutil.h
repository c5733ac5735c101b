/*
 * benchutil.h - what the benchmark load programs (relay_load, im_load)
 * share: command-line numbers, their HTTPS client, reading a text child.
 */
#ifndef BENCHUTIL_H
#define BENCHUTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/tree.h>

#include "buf.h"
#include "http.h"
#include "soap.h"
#include "xml.h"

/* A whole number in [lo, hi] from the command line, or exit(2) with a
 * message naming prog. */
/* Seconds on the monotonic clock. */
static inline double
bench_now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Give up: prog: what: the library's last error, exit status 2. */
static inline void bench_die(const char *prog, const char *what)
    __attribute__((noreturn));
static inline void
bench_die(const char *prog, const char *what)
{
	char eb[1024];

	fprintf(stderr, "%s: %s: %s\n", prog, what,
	    wse_err_format(eb, sizeof(eb)));
	exit(2);
}

static inline long
bench_opt_num(const char *prog, const char *s, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "%s: \"%s\" is not a number from %ld to %ld\n",
		    prog, s, lo, hi);
		exit(2);
	}
	return v;
}

/* An HTTPS client trusting roots, answers up to max_response bytes; on
 * failure prog gives up (bench_die). */
static inline wse_http_client *
bench_http_client(const char *prog, const char *roots, size_t max_response)
{
	wse_http_client_opts o;
	wse_http_client *c = NULL;

	memset(&o, 0, sizeof(o));
	o.roots = roots;
	o.connect_timeout_ms = 5000;
	o.timeout_ms = 60000;
	o.max_response = max_response;
	if (wse_http_client_new(&o, &c) != WSE_OK)
		bench_die(prog, "HTTPS client");
	return c;
}

/* The text of parent's only child WSE_NS_WSE:local, at most max bytes,
 * malloc'd; NULL when absent, repeated or not text. */
static inline char *
bench_child_text(const xmlNode *parent, const char *local, size_t max)
{
	return wse_xml_child_text(parent, WSE_NS_WSE, local, max);
}

#endif
