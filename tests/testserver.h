/*
 * testserver.h - a wsemaild for a.test (or another domain of testpki) in
 * process (struct wsed of src/wsemaild/wsed.h) on a PKI minted at test
 * time: a real SQLite store and replay cache, the service certificate and
 * signer, two users (alice@a.test and carol@a.test; bob@b.test and
 * dave@b.test; erin@c.test and frank@c.test; derived key testserver_key),
 * and the committer thread.  The tests call wsed_handle on it.
 */
#ifndef WSE_TESTSERVER_H
#define WSE_TESTSERVER_H

#include <pthread.h>
#include <stdint.h>

#include "testpki.h"
#include "wsed.h"

extern const uint8_t testserver_key[WSE_DERIVED_KEY_LEN];

typedef struct testserver {
	struct wsed s;
	pthread_t committer;
	int committing;
} testserver;

/* Set up t for a.test at https://mail.a.test:8443/wsemail with p's
 * certificates, its store under p->dir, and the clock now_fn.  When
 * plugin_line is not NULL it is a "plugin = ..." configuration line,
 * loaded before the committer starts.  0 or -1. */
int testserver_init(testserver *t, testpki *p, int64_t (*now_fn)(void),
    const char *plugin_line);
/* The same for the domain p->dom[d] (0 a.test, 1 b.test, 2 c.test), at
 * https://mail.<domain>:8443/wsemail; each domain has its own store, so
 * servers of several domains run side by side on one p. */
int testserver_init_domain(testserver *t, testpki *p, int d,
    int64_t (*now_fn)(void), const char *plugin_line);
/* Check an answer of t's (out, with HTTP status http) as a client
 * would: it must verify as t's domain's at time now (fresh replay cache).
 * Returns the Fault's status, or WSE_OK for a normal answer, whose first
 * Body child is then serialised into body_r (when not NULL).  Frees
 * nothing of out.  Fails the test on anything else. */
wse_status testserver_answer(testserver *t, testpki *p, int64_t now,
    const wse_buf *out, int http, wse_buf *body_r);
/* Stop the committer, unload plugins, free everything but p. */
void testserver_free(testserver *t);

#endif
