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
 *   BENCH_PHASES=1 also prints where each step's time goes;
 *   BENCH_PROFILE=certificate (or password) runs that profile only;
 *   BENCH_TEXT=BYTES sets the message text (default 4096, at most 4096:
 *   100 is an instant message of bench/im.sh).
 *
 * bench_wss --equiv: instead of timing, the differential check of the
 * subtree C14N walk (docs/performance.md): messages signed with either
 * walk verify with both, and every one-byte mutation of a signed message
 * (two per byte), a relative namespace declaration on every element and
 * a comment after every tag get the same verdict with both walks; so do
 * one signed element (routed forms) and its digest.  Exits 1 on any
 * difference; BENCH_EQUIV_SHOW=1 lists the mutants both walks accept
 * (changes to unsigned parts: token attributes, comments between
 * headers, ...).
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
#include "xml.h"

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

/* Parse and verify msg (after mutate) on fresh state, with whole-document
 * C14N when whole; the verdict (parse failures as WSE_ERR_PARSE). */
static wse_status
verify_once(const uint8_t *msg, size_t len, const wse_verify_opts *o0,
    const wse_limits *lim, int whole)
{
	wse_verify_opts o = *o0;
	wse_envelope *env = NULL;
	wse_verified v;
	wse_status st;

	o.caller_inserts_nonce = 1;	/* the replay cache stays as it is */
	if (wse_env_parse(msg, len, lim, &env) != WSE_OK) {
		wse_err_clear();
		return WSE_ERR_PARSE;
	}
	(void)wse_wss_whole_document_c14n(whole);
	st = wse_wss_verify(env, &o, &v);
	(void)wse_wss_whole_document_c14n(0);
	if (st == WSE_OK)
		wse_verified_clear(&v);
	wse_env_free(&env);
	wse_err_clear();
	return st;
}

struct equiv_count {
	long mutants, parsed, accepted, differ;
};

static void
equiv_one(const uint8_t *m, size_t len, const wse_verify_opts *o,
    const wse_limits *lim, struct equiv_count *c, const char *what,
    size_t pos)
{
	wse_status a = verify_once(m, len, o, lim, 0);
	wse_status b = verify_once(m, len, o, lim, 1);

	c->mutants++;
	if (a != WSE_ERR_PARSE)
		c->parsed++;
	if (a == WSE_OK) {
		c->accepted++;
		if (getenv("BENCH_EQUIV_SHOW") != NULL)
			fprintf(stderr, "accepted %s at %zu: %.40s\n", what,
			    pos, (const char *)m + (pos > 20 ? pos - 20 : 0));
	}
	if (a != b) {
		c->differ++;
		fprintf(stderr, "bench_wss: %s at %zu: subtree walk %d, whole "
		    "document %d\n", what, pos, (int)a, (int)b);
	}
}

static wse_status sign_one(const wse_signer *, const char *,
    const wse_limits *, int64_t, int, wse_buf **);

/* The differential check for one profile; the number of differences. */
static long
equiv(const wse_signer *s, const wse_verify_opts *o, const wse_limits *lim,
    const char *body, int64_t t, const char *name)
{
	struct equiv_count c = { 0, 0, 0, 0 };
	wse_buf *msg[2] = { NULL, NULL };
	uint8_t *m;
	size_t len, i, j, k;
	int w, x;
	static const char relns[] = " xmlns:zq=\"rel/x\"";
	static const char comment[] = "<!--c-->";

	for (w = 0; w < 2; w++) {
		if (sign_one(s, body, lim, t, w, &msg[w]) != WSE_OK) {
			fprintf(stderr, "bench_wss: cannot sign\n");
			return 1;
		}
		for (x = 0; x < 2; x++)
			if (verify_once(wse_buf_data(msg[w]),
			    wse_buf_len(msg[w]), o, lim, x) != WSE_OK) {
				fprintf(stderr, "bench_wss: signed with %s "
				    "walk, refused with %s walk\n",
				    w ? "whole" : "subtree",
				    x ? "whole" : "subtree");
				c.differ++;
			}
	}
	len = wse_buf_len(msg[0]);
	if ((m = malloc(len + sizeof(relns) + sizeof(comment))) == NULL)
		return 1;
	/* Every byte, two ways. */
	for (i = 0; i < len; i++) {
		for (k = 0; k < 2; k++) {
			memcpy(m, wse_buf_data(msg[0]), len);
			m[i] ^= k ? 0x20 : 0x01;
			equiv_one(m, len, o, lim, &c, "byte flip", i);
		}
	}
	/* A relative namespace declaration on every element; a comment
	 * after every tag. */
	for (i = 0; i + 1 < len; i++) {
		const uint8_t *d = wse_buf_data(msg[0]);

		if (d[i] == '<' && d[i + 1] != '/' && d[i + 1] != '?' &&
		    d[i + 1] != '!') {
			for (j = i + 1; j < len && d[j] != ' ' && d[j] != '>' &&
			    d[j] != '/'; j++)
				;
			memcpy(m, d, j);
			memcpy(m + j, relns, sizeof(relns) - 1);
			memcpy(m + j + sizeof(relns) - 1, d + j, len - j);
			equiv_one(m, len + sizeof(relns) - 1, o, lim, &c,
			    "relative namespace", i);
		}
		if (d[i] == '>') {
			memcpy(m, d, i + 1);
			memcpy(m + i + 1, comment, sizeof(comment) - 1);
			memcpy(m + i + sizeof(comment), d + i + 1, len - i - 1);
			equiv_one(m, len + sizeof(comment) - 1, o, lim, &c,
			    "comment", i);
		}
	}
	printf("  %-11s %ld mutants, %ld parsed, %ld accepted by both, "
	    "%ld differences\n", name, c.mutants, c.parsed, c.accepted,
	    c.differ);
	free(m);
	wse_buf_free(&msg[0]);
	wse_buf_free(&msg[1]);
	return c.differ;
}

/* One signed element (routed forms): signed with either walk, verified
 * with both, same digest; the number of differences. */
static long
equiv_node(const wse_key *key, const wse_cert *cert, const wse_limits *lim)
{
	static const char src[] = "<f:Form xmlns:f=\"urn:x:form\" "
	    "xmlns:g=\"urn:x:other\"><f:Rec g:k=\"v\"><f:Item>one &amp; "
	    "two</f:Item><g:Item/></f:Rec><f:Sigs/></f:Form>";
	long differ = 0;
	int w, x;

	for (w = 0; w < 2; w++) {
		xmlDocPtr doc = NULL, doc2 = NULL;
		xmlNodePtr rec, sigs;
		wse_buf *out = wse_buf_new(1 << 16);
		uint8_t d0[WSE_SHA256_LEN], d1[WSE_SHA256_LEN];

		if (out == NULL || wse_xml_parse((const uint8_t *)src,
		    sizeof(src) - 1, lim, &doc) != WSE_OK)
			return 1;
		rec = wse_xml_first_elem(xmlDocGetRootElement(doc));
		sigs = wse_xml_next_elem(rec);
		(void)wse_wss_whole_document_c14n(w);
		if (wse_wss_sign_node(rec, "rec", sigs, key, d0) != WSE_OK)
			differ++;
		(void)wse_wss_whole_document_c14n(0);
		if (wse_xml_serialize(doc, out) != WSE_OK)
			differ++;
		for (x = 0; x < 2; x++) {
			if (wse_xml_parse(wse_buf_data(out), wse_buf_len(out),
			    lim, &doc2) != WSE_OK)
				return differ + 1;
			rec = wse_xml_first_elem(xmlDocGetRootElement(doc2));
			sigs = wse_xml_next_elem(rec);
			(void)wse_wss_whole_document_c14n(x);
			if (wse_wss_digest_node(rec, d1) != WSE_OK ||
			    memcmp(d0, d1, sizeof(d0)) != 0) {
				fprintf(stderr, "bench_wss: element digest "
				    "differs with %s walk\n", x ? "whole" :
				    "subtree");
				differ++;
			}
			if (wse_wss_check_ids(doc2, 1000) != WSE_OK ||
			    wse_wss_verify_node(wse_xml_first_elem(sigs), rec,
			    cert, lim, d1) != WSE_OK ||
			    memcmp(d0, d1, sizeof(d0)) != 0) {
				fprintf(stderr, "bench_wss: element signed "
				    "with %s walk, refused with %s walk\n", w ?
				    "whole" : "subtree", x ? "whole" :
				    "subtree");
				differ++;
			}
			(void)wse_wss_whole_document_c14n(0);
			xmlFreeDoc(doc2);
			doc2 = NULL;
		}
		xmlFreeDoc(doc);
		wse_buf_free(&out);
		wse_err_clear();
	}
	printf("  one element: signed and verified with both walks, "
	    "%ld differences\n", differ);
	return differ;
}

#define CHECK(x) do { wse_status s_ = (x); if (s_ != WSE_OK) { \
	char eb_[1024]; fprintf(stderr, "bench_wss: %s: %s\n", #x, \
	wse_err_format(eb_, sizeof(eb_))); exit(1); } } while (0)

/* A signed, serialised envelope with body (whole: whole-document C14N). */
static wse_status
sign_one(const wse_signer *s, const char *body, const wse_limits *lim,
    int64_t t, int whole, wse_buf **msg_r)
{
	wse_envelope *env = NULL;
	wse_status st;

	*msg_r = NULL;
	if ((st = wse_env_new("https://b.test/wsemail",
	    "urn:wsemail:2026/Deliver", &env)) != WSE_OK ||
	    (st = wse_env_add_body_xml(env, body, strlen(body), lim)) !=
	    WSE_OK)
		goto out;
	(void)wse_wss_whole_document_c14n(whole);
	st = wse_wss_sign(env, s, t, 300);
	(void)wse_wss_whole_document_c14n(0);
	if (st != WSE_OK)
		goto out;
	if ((*msg_r = wse_buf_new(1 << 20)) == NULL) {
		st = WSE_ERR_NOMEM;
		goto out;
	}
	st = wse_env_serialize(env, *msg_r);
out:
	wse_env_free(&env);
	return st;
}

int
main(int argc, char **argv)
{
	int check = argc > 1 && strcmp(argv[1], "--equiv") == 0;
	int n = argc > 1 && !check ? (int)strtol(argv[1], NULL, 10) : 2000;
	int i, p;
	long differ = 0;
	int phases = getenv("BENCH_PHASES") != NULL;
	const char *only = getenv("BENCH_PROFILE");	/* one profile */
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
	const char *tenv = getenv("BENCH_TEXT");
	long tlen = tenv != NULL ? strtol(tenv, NULL, 10) : 4096;

	if (tlen < 1 || tlen > 4096) {
		fprintf(stderr, "bench_wss: BENCH_TEXT must be 1..4096\n");
		return 2;
	}
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
	memset(text, 'x', (size_t)tlen);
	text[tlen] = '\0';
	snprintf(body, sizeof(body), "<m:Deliver xmlns:m=\"urn:wsemail:2026\">"
	    "<m:From>alice@a.test</m:From><m:To>bob@b.test</m:To>"
	    "<m:Text>%s</m:Text></m:Deliver>", text);

	if (check)
		printf("bench_wss --equiv: subtree against whole-document "
		    "C14N walk, %zu-byte body\n", strlen(body));
	else
		printf("bench_wss: %d envelopes of %zu-byte body per profile\n",
		    n, strlen(body));
	for (p = 0; p < 2; p++) {
		wse_buf **msgs = calloc((size_t)n, sizeof(*msgs));
		wse_signer *s = NULL;
		wse_replay *replay = NULL;
		wse_cert *chain[2] = { svc, ca };
		double t0, sign_us, verify_us, ph[7];
		wse_verify_opts o = {
			.profile = p ? WSE_PROFILE_PASSWORD : WSE_PROFILE_CERT,
			.limits = &lim, .now = t, .trust = trust,
			.purpose = WSE_PURPOSE_SERVICE,
			.expected_domain = "a.test", .lookup = lookup,
		};

		if (only != NULL && strcmp(only, p ? "password" : "certificate")
		    != 0) {
			free(msgs);
			continue;
		}
		if (p)
			CHECK(wse_signer_new_password("alice", pwkey, &s));
		else
			CHECK(wse_signer_new_cert(sk, chain, 2, &s));
		CHECK(wse_replay_memory_new((size_t)n * 2, &replay));
		o.replay = replay;
		if (check) {
			differ += equiv(s, &o, &lim, body, t,
			    p ? "password:" : "certificate:");
			wse_signer_free(&s);
			wse_replay_free(&replay);
			free(msgs);
			continue;
		}
		memset(ph, 0, sizeof(ph));
		t0 = now_us();
		for (i = 0; i < n; i++) {
			wse_envelope *env = NULL;
			double a = phases ? now_us() : 0, b;

			CHECK(wse_env_new("https://b.test/wsemail",
			    "urn:wsemail:2026/Deliver", &env));
			CHECK(wse_env_add_body_xml(env, body, strlen(body),
			    &lim));
			b = phases ? now_us() : 0; ph[0] += b - a; a = b;
			CHECK(wse_wss_sign(env, s, t, 300));
			b = phases ? now_us() : 0; ph[1] += b - a; a = b;
			msgs[i] = wse_buf_new(1 << 20);
			CHECK(wse_env_serialize(env, msgs[i]));
			b = phases ? now_us() : 0; ph[2] += b - a; a = b;
			wse_env_free(&env);
			ph[3] += phases ? now_us() - a : 0;
		}
		sign_us = (now_us() - t0) / n;
		t0 = now_us();
		for (i = 0; i < n; i++) {
			wse_envelope *env = NULL;
			wse_verified v;
			double a = phases ? now_us() : 0, b;

			CHECK(wse_env_parse(wse_buf_data(msgs[i]),
			    wse_buf_len(msgs[i]), &lim, &env));
			b = phases ? now_us() : 0; ph[4] += b - a; a = b;
			CHECK(wse_wss_verify(env, &o, &v));
			b = phases ? now_us() : 0; ph[5] += b - a; a = b;
			wse_verified_clear(&v);
			wse_env_free(&env);
			ph[6] += phases ? now_us() - a : 0;
		}
		verify_us = (now_us() - t0) / n;
		printf("  %-11s sign %8.1f us/envelope   verify %8.1f "
		    "us/envelope   (%zu bytes on the wire)\n",
		    p ? "password:" : "certificate:", sign_us, verify_us,
		    wse_buf_len(msgs[0]));
		if (phases)
			printf("      sign = build %.1f + wse_wss_sign %.1f + "
			    "serialize %.1f + free %.1f;  verify = parse %.1f "
			    "+ wse_wss_verify %.1f + free %.1f\n", ph[0] / n,
			    ph[1] / n, ph[2] / n, ph[3] / n, ph[4] / n,
			    ph[5] / n, ph[6] / n);
		for (i = 0; i < n; i++)
			wse_buf_free(&msgs[i]);
		free(msgs);
		wse_signer_free(&s);
		wse_replay_free(&replay);
	}
	if (check)
		differ += equiv_node(sk, svc, &lim);
	if (!check)
		printf("reproduce: make bench   (or: build/bench/bench_wss "
		    "%d)\n", n);
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
	return differ != 0;
}
