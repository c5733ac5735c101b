/*
 * testcall.c - a client's call of one operation, for the test helper
 * programs (testcall.h).
 */
#include "testcall.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "msg.h"
#include "xml.h"

int
tcall_fail(const struct tcall *c, const char *what)
{
	char errs[1024];

	fprintf(stderr, "%s: %s: %s\n", c->prog, what,
	    wse_err_format(errs, sizeof(errs)));
	return 1;
}

int
tcall_setup(struct tcall *c)
{
	wse_http_client_opts ho;

	wse_limits_default(&c->lim);
	c->resp_lim = c->lim;
	c->resp_lim.max_message_bytes *= 2;
	memset(&ho, 0, sizeof(ho));
	ho.roots = c->roots;
	ho.connect_timeout_ms = 10000;
	ho.timeout_ms = 60000;
	ho.max_response = c->resp_lim.max_message_bytes;
	if (wse_wss_init() != WSE_OK || wse_trust_new(&c->trust) != WSE_OK ||
	    wse_trust_load_roots(c->trust, c->roots) != WSE_OK ||
	    wse_replay_memory_new(64, &c->replay) != WSE_OK ||
	    wse_http_client_new(&ho, &c->http) != WSE_OK)
		return tcall_fail(c, "set-up");
	wse_trust_skip_crls(c->trust);
	return 0;
}

void
tcall_free(struct tcall *c)
{
	wse_signer_free(&c->signer);
	wse_http_client_free(&c->http);
	wse_replay_free(&c->replay);
	wse_trust_free(&c->trust);
}

char *
tcall_child_text(const xmlNode *parent, const char *local)
{
	return wse_xml_child_text(parent, WSE_NS_WSE, local, 4096);
}

int
tcall_build(struct tcall *c, const char *op, const char *payload, int sign,
    wse_envelope **env_r, wse_buf *req)
{
	char action[256];

	(void)snprintf(action, sizeof(action), WSE_ACTION_PREFIX "%s", op);
	if (wse_env_new(c->server, action, env_r) != WSE_OK ||
	    wse_env_add_body_xml(*env_r, payload, strlen(payload), &c->lim) !=
	    WSE_OK ||
	    (sign && wse_wss_sign(*env_r, c->signer, (int64_t)time(NULL),
	    300) != WSE_OK) || wse_env_serialize(*env_r, req) != WSE_OK)
		return tcall_fail(c, "cannot build the request");
	return 0;
}

int
tcall_exchange(struct tcall *c, const char *op, const char *payload,
    int sign, wse_envelope **env_r, wse_verified *v, xmlNodePtr *payload_r,
    wse_status *fault_r)
{
	wse_envelope *env = NULL;
	wse_buf *req = NULL, *resp = NULL;
	wse_verify_opts o;
	char want[300], reason[256];
	long http = 0;
	int rc = 1;

	*env_r = NULL;
	*payload_r = NULL;
	*fault_r = WSE_OK;
	if ((req = wse_buf_new(c->lim.max_message_bytes)) == NULL ||
	    (resp = wse_buf_new(c->resp_lim.max_message_bytes)) == NULL) {
		rc = tcall_fail(c, "cannot serialise the request");
		goto out;
	}
	if (tcall_build(c, op, payload, sign, &env, req) != 0)
		goto out;
	if (wse_http_post(c->http, c->server, c->connect,
	    "application/soap+xml", wse_buf_data(req), wse_buf_len(req), resp,
	    &http) != WSE_OK) {
		rc = tcall_fail(c, "POST");
		goto out;
	}
	if (wse_env_parse(wse_buf_data(resp), wse_buf_len(resp), &c->resp_lim,
	    env_r) != WSE_OK) {
		rc = tcall_fail(c, "answer");
		goto out;
	}
	memset(&o, 0, sizeof(o));
	o.profile = WSE_PROFILE_CERT;
	o.limits = &c->resp_lim;
	o.replay = c->replay;
	o.now = (int64_t)time(NULL);
	o.trust = c->trust;
	o.purpose = WSE_PURPOSE_SERVICE;
	o.expected_domain = wse_addr_domain(c->user);
	if (wse_wss_verify(*env_r, &o, v) != WSE_OK) {
		rc = tcall_fail(c, "the answer does not verify");
		goto out;
	}
	if (v->relates_to_s == NULL ||
	    strcmp(v->relates_to_s, wse_env_message_id(env)) != 0) {
		fprintf(stderr, "%s: the answer is not about our request\n",
		    c->prog);
		goto out;
	}
	if (wse_fault_read(v->body, fault_r, reason, sizeof(reason)) ==
	    WSE_OK) {
		rc = 0;
		goto out;
	}
	*fault_r = WSE_OK;
	(void)snprintf(want, sizeof(want), WSE_ACTION_PREFIX "%sResponse", op);
	if (strcmp(v->action_s, want) != 0) {
		fprintf(stderr, "%s: answer Action %s\n", c->prog, v->action_s);
		goto out;
	}
	(void)snprintf(want, sizeof(want), "%sResponse", op);
	if (wse_xml_only_child(v->body, WSE_NS_WSE, want, payload_r) !=
	    WSE_OK) {
		fprintf(stderr, "%s: the answer holds no m:%s\n", c->prog, want);
		goto out;
	}
	rc = 0;
out:
	if (rc != 0) {
		wse_verified_clear(v);
		wse_env_free(env_r);
	}
	wse_env_free(&env);
	wse_buf_free(&req);
	wse_buf_free(&resp);
	return rc;
}

int
tcall_login(struct tcall *c, const char *password)
{
	wse_envelope *env = NULL;
	wse_verified v;
	xmlNodePtr p;
	wse_status fault;
	wse_buf *req = NULL, *salt = NULL;
	char *salt_b64 = NULL, *iter = NULL;
	uint8_t key[WSE_DERIVED_KEY_LEN];
	int rc = 1;

	memset(&v, 0, sizeof(v));
	if ((req = wse_buf_new(1024)) == NULL ||
	    (salt = wse_buf_new(256)) == NULL ||
	    wse_buf_printf(req, "<m:GetAuthParams xmlns:m=\"" WSE_NS_WSE "\">"
	    "<m:User>%s</m:User></m:GetAuthParams>", c->user) != WSE_OK)
		goto out;
	if (tcall_exchange(c, "GetAuthParams", wse_buf_str(req), 0, &env, &v,
	    &p, &fault) != 0)
		goto out;
	if (fault != WSE_OK) {
		fprintf(stderr, "%s: GetAuthParams: %s\n", c->prog,
		    wse_fault_subcode(fault));
		goto out;
	}
	if ((salt_b64 = tcall_child_text(p, "Salt")) == NULL ||
	    (iter = tcall_child_text(p, "Iterations")) == NULL ||
	    wse_base64_decode(salt_b64, strlen(salt_b64), salt) != WSE_OK) {
		fprintf(stderr, "%s: bad GetAuthParamsResponse\n", c->prog);
		goto out;
	}
	if (wse_pbkdf2_sha256(password, strlen(password), wse_buf_data(salt),
	    wse_buf_len(salt), (uint32_t)strtoul(iter, NULL, 10), key) !=
	    WSE_OK ||
	    wse_signer_new_password(c->user, key, &c->signer) != WSE_OK) {
		rc = tcall_fail(c, "key");
		goto out;
	}
	rc = 0;
out:
	wse_memzero(key, sizeof(key));
	wse_verified_clear(&v);
	wse_env_free(&env);
	wse_buf_free(&req);
	wse_buf_free(&salt);
	free(salt_b64);
	free(iter);
	return rc;
}
