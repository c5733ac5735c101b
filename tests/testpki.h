/*
 * testpki.h - a complete PKI minted at test time (no key is ever committed).
 *
 * testpki_init creates, in memory and under a fresh temporary directory:
 * a root CA; domain CAs for "a.test", "b.test" and "c.test" (issued by
 * the root);
 * a service certificate for each domain (dNSName the domain itself plus
 * "mail.<domain>"); an empty CRL for the root and for each domain CA; and a
 * trust store holding the root and all four CRLs.  Every certificate is
 * valid from now - 3600 to now + 30 days; CRLs from now - 3600 to
 * now + 7 days.  It also writes the files in the wse_ca_* directory layout
 * of pki.h under p->dir, so that command-line tools can use them.
 */
#ifndef WSE_TESTPKI_H
#define WSE_TESTPKI_H

#include <stdint.h>

#include "pki.h"

struct testpki_domain {
	const char *name;	/* "a.test" / "b.test" / "c.test" */
	wse_key *ca_key;
	wse_cert *ca;
	wse_crl *crl;
	wse_key *svc_key;
	wse_cert *svc;
};

typedef struct testpki {
	char *dir;		/* temporary directory, removed by free */
	int64_t now;
	wse_key *root_key;
	wse_cert *root;
	wse_crl *root_crl;
	struct testpki_domain dom[3];	/* [0] a.test, [1] b.test,
					 * [2] c.test (routed forms) */
	wse_trust *trust;	/* root + root CRL + every domain CRL */
} testpki;

/* Build everything above at time now. */
wse_status testpki_init(testpki *p, int64_t now);

/* Free everything and remove p->dir. */
void testpki_free(testpki *p);

/* New trust store with the root and only the CRLs whose flags are set
 * (root CRL, a.test CRL, b.test CRL): to test missing CRLs.  c.test's
 * CRL is always added. */
wse_status testpki_trust(const testpki *p, int with_root_crl,
    int with_a_crl, int with_b_crl, wse_trust **trust_r);

/* Issue a service certificate for domain under dom[d]'s CA (or, when
 * d is -1, self-signed with the given name) with the given validity and a
 * new key. */
wse_status testpki_service(const testpki *p, int d, const char *domain,
    int64_t not_before, int64_t not_after, wse_key **key_r,
    wse_cert **cert_r);

#endif
