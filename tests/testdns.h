/*
 * testdns.h - a real DNS server for a test case: dnsmasq (the program
 * named by WSE_TEST_DNSMASQ) on 127.0.0.1 at a free high port,
 * authoritative for *.test (NXDOMAIN for the names it does not know,
 * REFUSED outside .test: it has no upstream), with the records the case
 * gives it as dnsmasq options, and logging the queries it gets.
 *
 *	testdns d;
 *	static const char *const recs[] = {
 *	    "--host-record=mail.b.test,127.0.0.1", NULL };
 *
 *	testdns_init(&d);		(skips the case without dnsmasq)
 *	testdns_start(&d, recs);	(then resolve through d.addr)
 *	...
 *	testdns_free(&d);		(in the case's teardown)
 *
 * An instance is killed (SIGKILL, PR_SET_PDEATHSIG) when the thread that
 * started it ends, so the test program leaves none behind; start it from
 * the thread that runs the case.
 */
#ifndef WSE_TESTDNS_H
#define WSE_TESTDNS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct testdns {
	const char *prog;		/* the dnsmasq program */
	char *dir;			/* testutil_tmpdir, for the logs */
	char log[512];			/* the current instance's log */
	unsigned port;
	char addr[64];			/* "127.0.0.1:PORT" */
	pid_t pid;			/* 0: not running */
	int starts;
} testdns;

/* Clear d for the program WSE_TEST_DNSMASQ names; when it names none,
 * say so and skip the current case (cmocka skip()). */
void testdns_init(testdns *d);
/* Start dnsmasq with the options opts (NULL-terminated) and wait until
 * it answers.  After testdns_stop, start it again (with other records)
 * on the same port and address; each start logs to a file of its own.
 * Fails the current case when it cannot. */
void testdns_start(testdns *d, const char *const *opts);
/* Stop the instance, if running: SIGTERM to its PID, then wait for it. */
void testdns_stop(testdns *d);
/* Stop it, remove its logs and clear d; for the teardowns, whether the
 * case passed or not (a d cleared or never started is fine). */
void testdns_free(testdns *d);
/* A loopback UDP socket that is bound but never read: a DNS server that
 * does not answer.  Its "127.0.0.1:PORT" goes to addr; the caller closes
 * it. */
int testdns_silent(char *addr, size_t size);

/* How many queries of TYPE ("A", "SRV", ...) for NAME the current
 * instance has logged. */
size_t testdns_queries(const testdns *d, const char *type,
    const char *name);

#endif
