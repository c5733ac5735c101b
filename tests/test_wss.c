/*
 * test_wss.c - signing and verification that work: both profiles, RSA,
 * replies, the password-derived key, option checks, concurrent copies.
 * (The attacks are in test_verify_attacks.c.)
 */
#include "testutil.h"
#include "testenv.h"
#include "testpki.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "xml.h"

static testpki P;
static wse_limits lim;
static int64_t now;

static int
setup(void **state)
{
	(void)state;
	now = (int64_t)time(NULL);
	wse_limits_default(&lim);
	return testpki_init(&P, now) == WSE_OK ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	testpki_free(&P);
	xmlCleanupParser();
	return 0;
}

static wse_verify_opts
cert_opts(wse_replay *r)
{
	wse_verify_opts o = {
		.profile = WSE_PROFILE_CERT, .limits = &lim, .replay = r,
		.now = now, .trust = P.trust, .purpose = WSE_PURPOSE_SERVICE,
		.expected_domain = "a.test",
	};
	return o;
}

static void
test_signer_checks(void **state)
{
	wse_signer *s = NULL;
	wse_envelope *env = NULL;
	wse_cert *chain[] = { P.dom[0].svc, P.dom[0].ca };
	wse_cert *wrong[] = { P.dom[1].svc };
	uint8_t k[WSE_DERIVED_KEY_LEN] = { 0 };
	wse_key *pub = NULL;

	(void)state;
	assert_wse_status(wse_signer_new_cert(P.dom[0].svc_key, wrong, 1, &s),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_signer_new_cert(P.dom[0].svc_key, chain, 0, &s),
	    WSE_ERR_INVALID);
	assert_wse_ok(wse_cert_public_key(P.dom[0].svc, &pub));
	assert_wse_status(wse_signer_new_cert(pub, chain, 2, &s),
	    WSE_ERR_INVALID);
	wse_key_free(&pub);
	assert_wse_status(wse_signer_new_password("", k, &s), WSE_ERR_INVALID);
	assert_wse_status(wse_signer_new_password("a\nb", k, &s),
	    WSE_ERR_INVALID);
	assert_null(s);
	assert_wse_ok(wse_signer_new_cert(P.dom[0].svc_key, chain, 2, &s));
	assert_wse_ok(wse_env_new("x", "y", &env));
	assert_wse_status(wse_wss_sign(env, s, now, 0), WSE_ERR_INVALID);
	assert_wse_ok(wse_wss_sign(env, s, now, 300));
	assert_wse_status(wse_wss_sign(env, s, now, 300), WSE_ERR_EXISTS);
	wse_env_free(&env);
	wse_signer_free(&s);
	assert_null(s);
	wse_signer_free(&s);
}

static void
test_incomplete_options(void **state)
{
	wse_replay *r = NULL;
	wse_envelope *env;
	wse_verify_opts o;
	wse_verified v;
	wse_buf *b = testenv_cert(P.dom[0].svc_key, (wse_cert *[]){
	    P.dom[0].svc, P.dom[0].ca }, 2, now);

	(void)state;
	assert_wse_ok(wse_replay_memory_new(10, &r));
	env = testenv_parse(b);
	o = cert_opts(r);
	o.expected_domain = NULL;	/* must say whose message it is */
	assert_wse_status(wse_wss_verify(env, &o, &v), WSE_ERR_INVALID);
	o = cert_opts(NULL);
	assert_wse_status(wse_wss_verify(env, &o, &v), WSE_ERR_INVALID);
	o = cert_opts(r);
	o.profile = WSE_PROFILE_PASSWORD;	/* no lookup */
	assert_wse_status(wse_wss_verify(env, &o, &v), WSE_ERR_INVALID);
	assert_wse_status(wse_wss_verify(env, NULL, &v), WSE_ERR_INVALID);
	o = cert_opts(r);
	assert_wse_ok(wse_wss_verify(env, &o, &v));
	wse_verified_clear(&v);
	wse_verified_clear(&v);
	wse_env_free(&env);
	wse_buf_free(&b);
	wse_replay_free(&r);
}

/* A reply: RelatesTo is covered too. */
static void
test_reply_relates_to(void **state)
{
	wse_envelope *env = NULL;
	wse_signer *s = NULL;
	wse_replay *r = NULL;
	wse_verify_opts o;
	wse_verified v;
	wse_buf *b;
	const char *rel = "urn:uuid:3f1d5c2e-9b7a-4c1e-8f00-1234567890ab";
	char *m, *p;

	(void)state;
	assert_wse_ok(wse_replay_memory_new(10, &r));
	o = cert_opts(r);
	assert_wse_ok(wse_env_new("https://b.test/", "urn:wsemail:2026/"
	    "SubmitResponse", &env));
	assert_wse_ok(wse_env_set_relates_to(env, rel));
	assert_wse_ok(wse_signer_new_cert(P.dom[0].svc_key, (wse_cert *[]){
	    P.dom[0].svc, P.dom[0].ca }, 2, &s));
	assert_wse_ok(wse_wss_sign(env, s, now, 300));
	b = testenv_serialize(env);
	/* Tampered RelatesTo: refused. */
	m = strdup(wse_buf_str(b));
	p = strstr(m, "1234567890ab");
	assert_non_null(p);
	p[0] = '2';
	assert_wse_status(testenv_verify((uint8_t *)m, strlen(m), &o, &v),
	    WSE_ERR_BAD_SIGNATURE);
	free(m);
	assert_wse_ok(testenv_verify(wse_buf_data(b), wse_buf_len(b), &o, &v));
	assert_string_equal(v.relates_to_s, rel);
	assert_string_equal(v.action_s, "urn:wsemail:2026/SubmitResponse");
	wse_verified_clear(&v);
	wse_buf_free(&b);
	wse_signer_free(&s);
	wse_env_free(&env);
	wse_replay_free(&r);
}

/* RSA-SHA256 with 2048 bits is accepted for verification. */
static void
test_rsa_signer(void **state)
{
	EVP_PKEY *pk = EVP_RSA_gen(2048);
	char path[512];
	FILE *f;
	wse_key *k = NULL;
	wse_cert *c = NULL;
	wse_replay *r = NULL;
	wse_verify_opts o;
	wse_verified v;
	wse_buf *b;
	wse_cert_profile sp = { WSE_CERT_SERVICE, "a.test", NULL, 0, now - 60,
	    now + 86400 };

	(void)state;
	assert_non_null(pk);
	snprintf(path, sizeof(path), "%s/rsa.pem", P.dir);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL,
	    NULL), 1);
	fclose(f);
	EVP_PKEY_free(pk);
	assert_wse_ok(wse_key_load(path, &k));
	assert_wse_ok(wse_cert_issue(&sp, k, P.dom[0].ca, P.dom[0].ca_key, &c));
	b = testenv_cert(k, (wse_cert *[]){ c, P.dom[0].ca }, 2, now);
	assert_non_null(strstr(wse_buf_str(b), "rsa-sha256"));
	assert_wse_ok(wse_replay_memory_new(10, &r));
	o = cert_opts(r);
	assert_wse_ok(testenv_verify(wse_buf_data(b), wse_buf_len(b), &o, &v));
	wse_verified_clear(&v);
	wse_buf_free(&b);
	wse_cert_free(&c);
	wse_key_free(&k);
	wse_replay_free(&r);
}

/* The password profile with a real PBKDF2-derived key. */
static uint8_t derived[WSE_DERIVED_KEY_LEN];

static wse_status
lookup(void *arg, const char *user, uint8_t key_r[WSE_DERIVED_KEY_LEN])
{
	(void)arg;
	if (strcmp(user, "alice@a.test") != 0)
		return WSE_ERR_NOT_FOUND;
	memcpy(key_r, derived, sizeof(derived));
	return WSE_OK;
}

static void
test_password_derived(void **state)
{
	uint8_t salt[WSE_SALT_LEN] = { 9, 8, 7 };
	uint8_t client[WSE_DERIVED_KEY_LEN];
	wse_replay *r = NULL;
	wse_verified v;
	wse_buf *b;
	wse_verify_opts o = {
		.profile = WSE_PROFILE_PASSWORD, .limits = &lim, .now = now,
		.lookup = lookup, .expected_to = TESTENV_TO,
	};

	(void)state;
	/* Server side, at account creation; client side, at log-in. */
	assert_wse_ok(wse_pbkdf2_sha256("correct horse", 13, salt,
	    sizeof(salt), lim.pbkdf2_iterations, derived));
	assert_wse_ok(wse_pbkdf2_sha256("correct horse", 13, salt,
	    sizeof(salt), lim.pbkdf2_iterations, client));
	assert_true(lim.pbkdf2_iterations >= 600000);
	assert_wse_ok(wse_replay_memory_new(10, &r));
	o.replay = r;
	b = testenv_password("alice@a.test", client, now);
	assert_wse_ok(testenv_verify(wse_buf_data(b), wse_buf_len(b), &o, &v));
	assert_string_equal(v.user, "alice@a.test");
	assert_null(v.signer);
	wse_verified_clear(&v);
	wse_buf_free(&b);
	/* A different password derives a different key. */
	assert_wse_ok(wse_pbkdf2_sha256("correct horsf", 13, salt,
	    sizeof(salt), 1000, client));
	b = testenv_password("alice@a.test", client, now);
	assert_wse_status(testenv_verify(wse_buf_data(b), wse_buf_len(b), &o,
	    &v), WSE_ERR_NOT_AUTHORIZED);
	wse_buf_free(&b);
	wse_replay_free(&r);
}

/* MessageID must be a random urn:uuid (the paper's nonce r). */
static void
test_message_id_form(void **state)
{
	wse_replay *r = NULL;
	wse_verify_opts o;
	wse_verified v;
	wse_buf *b = testenv_cert(P.dom[0].svc_key, (wse_cert *[]){
	    P.dom[0].svc, P.dom[0].ca }, 2, now);
	char *m = strdup(wse_buf_str(b)), *p = strstr(m, "urn:uuid:");

	(void)state;
	assert_wse_ok(wse_replay_memory_new(10, &r));
	o = cert_opts(r);
	memcpy(p, "urn:uuix:", 9);
	assert_wse_status(testenv_verify((uint8_t *)m, strlen(m), &o, &v),
	    WSE_ERR_INVALID);
	free(m);
	wse_buf_free(&b);
	wse_replay_free(&r);
}

struct racer {
	const wse_buf *msg;
	wse_verify_opts o;
	wse_status st;
};

static void *
race(void *arg)
{
	struct racer *ra = arg;
	wse_verified v;

	ra->st = testenv_verify(wse_buf_data(ra->msg), wse_buf_len(ra->msg),
	    &ra->o, &v);
	wse_verified_clear(&v);
	return NULL;
}

/* Concurrent copies of one message: exactly one is accepted. */
static void
test_concurrent_copies(void **state)
{
	wse_replay *r = NULL;
	struct racer ra[4];
	pthread_t t[4];
	wse_buf *b = testenv_cert(P.dom[0].svc_key, (wse_cert *[]){
	    P.dom[0].svc, P.dom[0].ca }, 2, now);
	int i, ok = 0, replays = 0;

	(void)state;
	assert_wse_ok(wse_replay_memory_new(10, &r));
	for (i = 0; i < 4; i++) {
		ra[i].msg = b;
		ra[i].o = cert_opts(r);
		assert_int_equal(pthread_create(&t[i], NULL, race, &ra[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ok += ra[i].st == WSE_OK;
		replays += ra[i].st == WSE_ERR_REPLAY;
	}
	assert_int_equal(ok, 1);
	assert_int_equal(replays, 3);
	wse_buf_free(&b);
	wse_replay_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signer_checks),
		cmocka_unit_test(test_incomplete_options),
		cmocka_unit_test(test_reply_relates_to),
		cmocka_unit_test(test_rsa_signer),
		cmocka_unit_test(test_password_derived),
		cmocka_unit_test(test_message_id_form),
		cmocka_unit_test(test_concurrent_copies),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
