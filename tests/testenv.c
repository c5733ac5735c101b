/*
 * testenv.c - signed envelopes for the WS-Security tests.
 */
#include "testutil.h"
#include "testenv.h"

#include <string.h>

static wse_buf *
finish(wse_envelope *env, const wse_signer *s, int64_t t)
{
	wse_limits lim;
	wse_buf *b;

	wse_limits_default(&lim);
	assert_wse_ok(wse_env_add_body_xml(env, TESTENV_BODY,
	    strlen(TESTENV_BODY), &lim));
	assert_wse_ok(wse_wss_sign(env, s, t, 300));
	b = testenv_serialize(env);
	return b;
}

wse_buf *
testenv_cert(const wse_key *key, wse_cert *const *chain, size_t n, int64_t t)
{
	wse_envelope *env = NULL;
	wse_signer *s = NULL;
	wse_buf *b;

	assert_wse_ok(wse_env_new(TESTENV_TO, TESTENV_ACTION, &env));
	assert_wse_ok(wse_signer_new_cert(key, chain, n, &s));
	b = finish(env, s, t);
	wse_signer_free(&s);
	wse_env_free(&env);
	return b;
}

wse_buf *
testenv_password(const char *user, const uint8_t key[WSE_DERIVED_KEY_LEN],
    int64_t t)
{
	wse_envelope *env = NULL;
	wse_signer *s = NULL;
	wse_buf *b;

	assert_wse_ok(wse_env_new(TESTENV_TO, TESTENV_ACTION, &env));
	assert_wse_ok(wse_signer_new_password(user, key, &s));
	b = finish(env, s, t);
	wse_signer_free(&s);
	wse_env_free(&env);
	return b;
}

wse_status
testenv_verify(const uint8_t *data, size_t len, const wse_verify_opts *opts,
    wse_verified *out)
{
	wse_envelope *env = NULL;
	wse_status st;

	memset(out, 0, sizeof(*out));
	if ((st = wse_env_parse(data, len, opts->limits, &env)) != WSE_OK)
		return st;
	st = wse_wss_verify(env, opts, out);
	/* The verified nodes point into env: tests only read strings. */
	out->body = out->timestamp = out->to = out->action = NULL;
	out->message_id = out->relates_to = NULL;
	wse_env_free(&env);
	return st;
}

wse_envelope *
testenv_parse(const wse_buf *b)
{
	wse_limits lim;
	wse_envelope *env = NULL;

	wse_limits_default(&lim);
	assert_wse_ok(wse_env_parse(wse_buf_data(b), wse_buf_len(b), &lim,
	    &env));
	return env;
}

wse_buf *
testenv_serialize(wse_envelope *env)
{
	wse_buf *b = wse_buf_new(1 << 22);

	assert_non_null(b);
	assert_wse_ok(wse_env_serialize(env, b));
	return b;
}
