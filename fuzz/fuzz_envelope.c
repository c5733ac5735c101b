/*
 * fuzz_envelope.c - libFuzzer target: parse and verify an envelope.
 *
 * Every input goes through wse_env_parse and then wse_wss_verify twice,
 * once with the certificate profile against a PKI minted at start-up and
 * once with the password profile.  Network, entity loading and KeyInfo
 * keys are off by construction (they are off in the library itself).
 * Built with clang -fsanitize=fuzzer for fuzzing (make fuzz), and with a
 * replay main (replay_main.c) that runs the seed corpus as an ordinary
 * test under gcc.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz_envelope.h"
#include "crypto.h"
#include "pki.h"
#include "replay.h"
#include "soap.h"
#include "wss.h"

static struct {
	int ready;
	int64_t now;
	wse_limits lim;
	wse_key *root_key, *ca_key, *svc_key;
	wse_cert *root, *ca, *svc;
	wse_crl *root_crl, *ca_crl;
	wse_trust *trust;
} F;

/* Random per run: a committed seed's MAC never verifies again. */
static uint8_t user_key[WSE_DERIVED_KEY_LEN];

static wse_status
lookup(void *arg, const char *user, uint8_t key_r[WSE_DERIVED_KEY_LEN])
{
	(void)arg;
	if (strcmp(user, "alice") != 0)
		return WSE_ERR_NOT_FOUND;
	memcpy(key_r, user_key, WSE_DERIVED_KEY_LEN);
	return WSE_OK;
}

int
fuzz_envelope_init(void)
{
	wse_cert_profile rp = { WSE_CERT_ROOT, "Fuzz Root", NULL, 0, 0, 0 };
	wse_cert_profile dp = { WSE_CERT_DOMAIN_CA, "a.test", NULL, 0, 0, 0 };
	wse_cert_profile sp = { WSE_CERT_SERVICE, "a.test", NULL, 0, 0, 0 };

	if (F.ready)
		return 0;
	F.now = (int64_t)time(NULL);
	wse_limits_default(&F.lim);
	rp.not_before = dp.not_before = sp.not_before = F.now - 3600;
	rp.not_after = F.now + 86400 * 30;
	dp.not_after = sp.not_after = F.now + 86400 * 20;
	if (wse_wss_init() != WSE_OK ||
	    wse_random(user_key, sizeof(user_key)) != WSE_OK ||
	    wse_key_generate(&F.root_key) != WSE_OK ||
	    wse_key_generate(&F.ca_key) != WSE_OK ||
	    wse_key_generate(&F.svc_key) != WSE_OK ||
	    wse_cert_issue(&rp, F.root_key, NULL, F.root_key, &F.root) !=
	    WSE_OK ||
	    wse_cert_issue(&dp, F.ca_key, F.root, F.root_key, &F.ca) != WSE_OK ||
	    wse_cert_issue(&sp, F.svc_key, F.ca, F.ca_key, &F.svc) != WSE_OK ||
	    wse_crl_issue(F.root, F.root_key, NULL, 0, F.now - 3600,
	    F.now + 86400, &F.root_crl) != WSE_OK ||
	    wse_crl_issue(F.ca, F.ca_key, NULL, 0, F.now - 3600,
	    F.now + 86400, &F.ca_crl) != WSE_OK ||
	    wse_trust_new(&F.trust) != WSE_OK ||
	    wse_trust_add_root(F.trust, F.root) != WSE_OK ||
	    wse_trust_add_crl(F.trust, F.root_crl) != WSE_OK ||
	    wse_trust_add_crl(F.trust, F.ca_crl) != WSE_OK)
		return -1;
	F.ready = 1;
	return 0;
}

wse_status
fuzz_envelope_verify(const uint8_t *data, size_t size, int profile)
{
	wse_envelope *env = NULL;
	wse_replay *replay = NULL;
	wse_verified v;
	wse_verify_opts o;
	wse_status st;

	memset(&o, 0, sizeof(o));
	if ((st = wse_replay_memory_new(16, &replay)) != WSE_OK)
		return st;
	o.limits = &F.lim;
	o.replay = replay;
	o.now = F.now;
	o.profile = profile ? WSE_PROFILE_PASSWORD : WSE_PROFILE_CERT;
	o.trust = F.trust;
	o.purpose = WSE_PURPOSE_SERVICE;
	o.expected_domain = "a.test";
	o.lookup = lookup;
	if ((st = wse_env_parse(data, size, &F.lim, &env)) == WSE_OK)
		st = wse_wss_verify(env, &o, &v);
	if (st == WSE_OK)
		wse_verified_clear(&v);
	wse_env_free(&env);
	wse_replay_free(&replay);
	wse_err_clear();
	return st;
}

wse_status
fuzz_envelope_make_valid(int profile, wse_buf *out)
{
	wse_envelope *env = NULL;
	wse_signer *s = NULL;
	wse_cert *chain[2] = { F.svc, F.ca };
	const char *body = "<m:Deliver xmlns:m=\"urn:wsemail:2026\"><m:From>"
	    "alice@a.test</m:From><m:Text>hello</m:Text></m:Deliver>";
	wse_status st;

	if ((st = wse_env_new("https://b.test/wsemail",
	    "urn:wsemail:2026/Deliver", &env)) != WSE_OK ||
	    (st = wse_env_add_body_xml(env, body, strlen(body), &F.lim)) !=
	    WSE_OK)
		goto out;
	st = profile ? wse_signer_new_password("alice", user_key, &s) :
	    wse_signer_new_cert(F.svc_key, chain, 2, &s);
	if (st != WSE_OK ||
	    (st = wse_wss_sign(env, s, F.now, 300)) != WSE_OK)
		goto out;
	st = wse_env_serialize(env, out);
out:
	wse_signer_free(&s);
	wse_env_free(&env);
	return st;
}

void
fuzz_envelope_fini(void)
{
	wse_trust_free(&F.trust);
	wse_crl_free(&F.root_crl);
	wse_crl_free(&F.ca_crl);
	wse_cert_free(&F.root);
	wse_cert_free(&F.ca);
	wse_cert_free(&F.svc);
	wse_key_free(&F.root_key);
	wse_key_free(&F.ca_key);
	wse_key_free(&F.svc_key);
	F.ready = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fuzz_envelope_init() != 0)
		abort();
	(void)fuzz_envelope_verify(data, size, 0);
	(void)fuzz_envelope_verify(data, size, 1);
	return 0;
}
