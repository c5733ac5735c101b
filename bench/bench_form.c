/*
 * bench_form.c - cost for the final party to verify a routed form.
 *
 * Mints a PKI (root; domain CAs and service certificates for a.test,
 * b.test, c.test; CRLs), then builds a form of claimant q@a.test routed
 * through router b.test, which inserts APPROVALS approvers (default 20,
 * mailboxes spread over the three domains, one token each); every
 * approver approves in turn, each party verifying the form it received
 * before signing.  The final party c.test then verifies the serialised
 * form (parse + every signature, chain, hash link and workflow rule,
 * require_complete) ITERATIONS times, two days later (every token has
 * expired: the time rule of docs/forms.md):
 *   warm = one trust store for all rounds (its verified-chain cache on);
 *   cold = a fresh trust store per round (built outside the timing).
 * Usage: bench_form [ITERATIONS [APPROVALS]]   (default 200 20)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>

#include "form.h"
#include "pki.h"

#define DAY 86400
#define MAXAP 60

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

#define CHECK(x) do { wse_status s_ = (x); if (s_ != WSE_OK) { \
	char eb_[1024]; fprintf(stderr, "bench_form: %s: %s\n", #x, \
	wse_err_format(eb_, sizeof(eb_))); exit(1); } } while (0)

static const char *const domains[3] = { "a.test", "b.test", "c.test" };
static wse_key *root_key, *ca_key[3], *svc_key[3];
static wse_cert *root, *ca[3], *svc[3];
static wse_crl *crl[4];

static wse_trust *
trust_new(void)
{
	wse_trust *t = NULL;
	int i;

	CHECK(wse_trust_new(&t));
	CHECK(wse_trust_add_root(t, root));
	for (i = 0; i < 4; i++)
		CHECK(wse_trust_add_crl(t, crl[i]));
	return t;
}

static void
pki(int64_t t)
{
	wse_cert_profile p = { WSE_CERT_ROOT, "Bench Root", NULL, 0,
	    t - 3600, t + 30 * DAY };
	int i;

	CHECK(wse_key_generate(&root_key));
	CHECK(wse_cert_issue(&p, root_key, NULL, root_key, &root));
	CHECK(wse_crl_issue(root, root_key, NULL, 0, t - 3600, t + 7 * DAY,
	    &crl[0]));
	for (i = 0; i < 3; i++) {
		p.kind = WSE_CERT_DOMAIN_CA;
		p.name = domains[i];
		CHECK(wse_key_generate(&ca_key[i]));
		CHECK(wse_cert_issue(&p, ca_key[i], root, root_key, &ca[i]));
		CHECK(wse_crl_issue(ca[i], ca_key[i], NULL, 0, t - 3600,
		    t + 7 * DAY, &crl[i + 1]));
		p.kind = WSE_CERT_SERVICE;
		CHECK(wse_key_generate(&svc_key[i]));
		CHECK(wse_cert_issue(&p, svc_key[i], ca[i], ca_key[i],
		    &svc[i]));
	}
}

int
main(int argc, char **argv)
{
	int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 200;
	int nap = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 20;
	int64_t t = (int64_t)time(NULL), t0 = t - 1800, vnow = t + 2 * DAY;
	wse_form_type type = { "expense-claim", "1.0",
	    "https://forms.b.test/expense-claim-1.0.lua",
	    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	};
	char mbox[MAXAP + 1][64];
	const char *aps[MAXAP];
	wse_key *ukey[MAXAP + 1];
	wse_cert *utok[MAXAP + 1];
	wse_form_signer s;
	wse_form_policy pol;
	wse_form_report rep;
	wse_form *f = NULL;
	wse_trust *warm;
	wse_buf *wire;
	double start, warm_us, cold_us = 0;
	int i;

	if (n < 1)
		n = 1;
	if (nap < 1 || nap > MAXAP) {
		fprintf(stderr, "bench_form: 1..%d approvals\n", MAXAP);
		return 2;
	}
	pki(t);
	warm = trust_new();
	/* the claimant (index nap) and the approvers, one token each */
	for (i = 0; i <= nap; i++) {
		int d = i == nap ? 0 : i % 3;

		if (i == nap)
			snprintf(mbox[i], sizeof(mbox[i]), "q@a.test");
		else
			snprintf(mbox[i], sizeof(mbox[i]), "approver%02d@%s",
			    i + 1, domains[d]);
		CHECK(wse_key_generate(&ukey[i]));
		CHECK(wse_pki_issue_token(ca[d], ca_key[d], ukey[i], mbox[i],
		    3600, t0, &utok[i]));
		if (i < nap)
			aps[i] = mbox[i];
	}

	/* the form's life, each party verifying before it signs */
	CHECK(wse_form_new("q@a.test", &type, "c.test", &f));
	CHECK(wse_form_add_field(f, "amount", WSE_FIELD_DECIMAL, "1234.50"));
	CHECK(wse_form_add_field(f, "purpose", WSE_FIELD_TEXT,
	    "Conference travel"));
	CHECK(wse_form_add_hop(f, WSE_HOP_ROUTER, "b.test"));
	s = (wse_form_signer){ ukey[nap], utok[nap], ca[0] };
	CHECK(wse_form_sign_submit(f, &s, t0));
	CHECK(wse_form_verify(f, warm, t0 + 10, NULL, NULL));
	s = (wse_form_signer){ svc_key[1], svc[1], ca[1] };
	CHECK(wse_form_add_insert(f, &s, 0, aps, (size_t)nap, t0 + 10));
	for (i = 0; i < nap; i++) {
		CHECK(wse_form_verify(f, warm, t0 + 20 + 10 * i, NULL, NULL));
		s = (wse_form_signer){ ukey[i], utok[i], ca[i % 3] };
		CHECK(wse_form_add_decision(f, &s, WSE_VERDICT_APPROVE, NULL,
		    t0 + 20 + 10 * i));
	}
	wire = wse_buf_new(WSE_FORM_MAX_BYTES);
	CHECK(wse_form_serialize(f, wire));
	wse_form_free(&f);

	wse_form_policy_default(&pol);
	pol.require_complete = 1;
	pol.final_party = "c.test";
	/* warm */
	start = now_us();
	for (i = 0; i < n; i++) {
		memset(&rep, 0, sizeof(rep));
		CHECK(wse_form_parse(wse_buf_data(wire), wse_buf_len(wire),
		    NULL, &f));
		CHECK(wse_form_verify(f, warm, vnow, &pol, &rep));
		if (rep.napprovals != (size_t)nap) {
			fprintf(stderr, "bench_form: %zu approvals\n",
			    rep.napprovals);
			return 1;
		}
		wse_form_report_clear(&rep);
		wse_form_free(&f);
	}
	warm_us = (now_us() - start) / n;
	/* cold: a new trust store each round, outside the timing */
	for (i = 0; i < n; i++) {
		wse_trust *cold = trust_new();

		start = now_us();
		CHECK(wse_form_parse(wse_buf_data(wire), wse_buf_len(wire),
		    NULL, &f));
		CHECK(wse_form_verify(f, cold, vnow, &pol, NULL));
		cold_us += now_us() - start;
		wse_form_free(&f);
		wse_trust_free(&cold);
	}
	cold_us /= n;
	printf("bench_form: the final party verifies a form of %d records "
	    "(%d approvals, %zu bytes), %d rounds\n", nap + 2, nap,
	    wse_buf_len(wire), n);
	printf("  parse + verify: %8.2f ms/form warm (chain cache)   "
	    "%8.2f ms/form cold (new trust store)\n", warm_us / 1000,
	    cold_us / 1000);
	printf("reproduce: build/bench/bench_form %d %d\n", n, nap);

	wse_buf_free(&wire);
	wse_trust_free(&warm);
	for (i = 0; i <= nap; i++) {
		wse_cert_free(&utok[i]);
		wse_key_free(&ukey[i]);
	}
	for (i = 0; i < 3; i++) {
		wse_cert_free(&svc[i]);
		wse_key_free(&svc_key[i]);
		wse_cert_free(&ca[i]);
		wse_key_free(&ca_key[i]);
	}
	for (i = 0; i < 4; i++)
		wse_crl_free(&crl[i]);
	wse_cert_free(&root);
	wse_key_free(&root_key);
	xmlCleanupParser();
	return 0;
}
