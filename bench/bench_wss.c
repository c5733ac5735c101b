/*
 * bench_wss.c - cost of signing and verifying one envelope.
 *
 * Builds a 4 KiB Deliver envelope, then measures, for the certificate
 * profile (ECDSA P-256, a.test's service certificate under a fresh
 * PKI) and the password profile (HMAC-SHA256):
 *   sign    = build + sign + serialize
 *   verify  = parse + full verification (freshness, replay, signature,
 *             chain with CRLs for the certificate profile)
 * Usage: bench_wss [ITERATIONS]   (default 2000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>

#include "pki.h"
#include "replay.h"
#include "soap.h"
#include "wss.h"

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static const uint8_t pwkey[WSE_DERIVED_KEY_LEN] = { 7 };

static wse_status
lookup(void *arg, const char *user, uint8_t key_r[WSE_DERIVED_KEY_LEN])
{
	(void)arg; (void)user;
	memcpy(key_r, pwkey, WSE_DERIVED_KEY_LEN);
	return WSE_OK;
}

#define CHECK(x) do { wse_status s_ = (x); if (s_ != WSE_OK) { \
	char eb_[1024]; fprintf(stderr, "bench_wss: %s: %s\n", #x, \
	wse_err_format(eb_, sizeof(eb_))); exit(1); } } while (0)

int
main(int argc, char **argv)
{
	int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 2000, i, p;
	int64_t t = (int64_t)time(NULL);
	wse_limits lim;
	wse_key *rk = NULL, *ck = NULL, *sk = NULL;
	wse_cert *root = NULL, *ca = NULL, *svc = NULL;
	wse_crl *rcrl = NULL, *ccrl = NULL;
	wse_trust *trust = NULL;
	wse_cert_profile rp = { WSE_CERT_ROOT, "Bench Root", NULL, 0, t - 60,
	    t + 86400 };
	wse_cert_profile dp = { WSE_CERT_DOMAIN_CA, "a.test", NULL, 0, t - 60,
	    t + 86400 };
	wse_cert_profile sp = { WSE_CERT_SERVICE, "a.test", NULL, 0, t - 60,
	    t + 86400 };
	char body[8192], text[4097];

	if (n < 10)
		n = 10;
	wse_limits_default(&lim);
	CHECK(wse_key_generate(&rk));
	CHECK(wse_key_generate(&ck));
	CHECK(wse_key_generate(&sk));
	CHECK(wse_cert_issue(&rp, rk, NULL, rk, &root));
	CHECK(wse_cert_issue(&dp, ck, root, rk, &ca));
	CHECK(wse_cert_issue(&sp, sk, ca, ck, &svc));
	CHECK(wse_crl_issue(root, rk, NULL, 0, t - 60, t + 86400, &rcrl));
	CHECK(wse_crl_issue(ca, ck, NULL, 0, t - 60, t + 86400, &ccrl));
	CHECK(wse_trust_new(&trust));
	CHECK(wse_trust_add_root(trust, root));
	CHECK(wse_trust_add_crl(trust, rcrl));
	CHECK(wse_trust_add_crl(trust, ccrl));
	memset(text, 'x', 4096);
	text[4096] = '\0';
	snprintf(body, sizeof(body), "<m:Deliver xmlns:m=\"urn:wsemail:2026\">"
	    "<m:From>alice@a.test</m:From><m:To>bob@b.test</m:To>"
	    "<m:Text>%s</m:Text></m:Deliver>", text);

	printf("bench_wss: %d envelopes of %zu-byte body per profile\n", n,
	    strlen(body));
	for (p = 0; p < 2; p++) {
		wse_buf **msgs = calloc((size_t)n, sizeof(*msgs));
		wse_signer *s = NULL;
		wse_replay *replay = NULL;
		wse_cert *chain[2] = { svc, ca };
		double t0, sign_us, verify_us;
		wse_verify_opts o = {
			.profile = p ? WSE_PROFILE_PASSWORD : WSE_PROFILE_CERT,
			.limits = &lim, .now = t, .trust = trust,
			.purpose = WSE_PURPOSE_SERVICE,
			.expected_domain = "a.test", .lookup = lookup,
		};

		if (p)
			CHECK(wse_signer_new_password("alice", pwkey, &s));
		else
			CHECK(wse_signer_new_cert(sk, chain, 2, &s));
		CHECK(wse_replay_memory_new((size_t)n * 2, &replay));
		o.replay = replay;
		t0 = now_us();
		for (i = 0; i < n; i++) {
			wse_envelope *env = NULL;

			CHECK(wse_env_new("https://b.test/wsemail",
			    "urn:wsemail:2026/Deliver", &env));
			CHECK(wse_env_add_body_xml(env, body, strlen(body),
			    &lim));
			CHECK(wse_wss_sign(env, s, t, 300));
			msgs[i] = wse_buf_new(1 << 20);
			CHECK(wse_env_serialize(env, msgs[i]));
			wse_env_free(&env);
		}
		sign_us = (now_us() - t0) / n;
		t0 = now_us();
		for (i = 0; i < n; i++) {
			wse_envelope *env = NULL;
			wse_verified v;

			CHECK(wse_env_parse(wse_buf_data(msgs[i]),
			    wse_buf_len(msgs[i]), &lim, &env));
			CHECK(wse_wss_verify(env, &o, &v));
			wse_verified_clear(&v);
			wse_env_free(&env);
		}
		verify_us = (now_us() - t0) / n;
		printf("  %-11s sign %8.1f us/envelope   verify %8.1f "
		    "us/envelope   (%zu bytes on the wire)\n",
		    p ? "password:" : "certificate:", sign_us, verify_us,
		    wse_buf_len(msgs[0]));
		for (i = 0; i < n; i++)
			wse_buf_free(&msgs[i]);
		free(msgs);
		wse_signer_free(&s);
		wse_replay_free(&replay);
	}
	printf("reproduce: make bench   (or: build/bench/bench_wss %d)\n", n);
	wse_trust_free(&trust);
	wse_crl_free(&rcrl);
	wse_crl_free(&ccrl);
	wse_cert_free(&root);
	wse_cert_free(&ca);
	wse_cert_free(&svc);
	wse_key_free(&rk);
	wse_key_free(&ck);
	wse_key_free(&sk);
	xmlCleanupParser();
	return 0;
}
