/*
 * plugin_call.c - test helper (not a test): call one operation of a
 * wsemaild as a client would, for operations the wsemail CLI does not
 * know (those plugins add).
 *
 *   plugin_call --server URL --roots ROOT.pem --user USER --op OP
 *               [--connect ADDR] [--payload XML]
 *
 * The password comes from $WSEMAIL_PASSWORD.  It runs GetAuthParams,
 * derives the key (PBKDF2), signs the request with the password profile,
 * POSTs it, verifies the signed answer (certificate profile, a service
 * certificate of the user's domain, RelatesTo our MessageID; CRLs are not
 * checked) and prints
 *   OK\n<the response payload element>\n          exit 0
 *   FAULT <Subcode>\n                             exit 3
 * Anything else (cannot connect, answer does not verify): a message on
 * stderr, exit 1; bad usage: exit 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/tree.h>

#include "buf.h"
#include "crypto.h"
#include "http.h"
#include "msg.h"
#include "pki.h"
#include "replay.h"
#include "soap.h"
#include "wselimits.h"
#include "wss.h"
#include "xml.h"

struct call {
	const char *server, *connect, *roots, *user;
	wse_limits lim, resp_lim;
	wse_trust *trust;
	wse_replay *replay;
	wse_http_client *http;
	wse_signer *signer;
};

static int
fail(const char *what)
{
	char errs[1024];

	fprintf(stderr, "plugin_call: %s: %s\n", what,
	    wse_err_format(errs, sizeof(errs)));
	return 1;
}

/* Text of the only m:<local> child of parent, malloc'd, or NULL. */
static char *
child_text(const xmlNode *parent, const char *local)
{
	xmlNodePtr n;
	wse_buf *b;
	char *s = NULL;

	if (wse_xml_only_child(parent, WSE_NS_WSE, local, &n) != WSE_OK ||
	    (b = wse_buf_new(4096)) == NULL)
		return NULL;
	if (wse_xml_text(n, b) == WSE_OK)
		s = wse_buf_steal(b, NULL);
	wse_buf_free(&b);
	return s;
}

/*
 * One exchange.  Returns 0 with *env_r / *v (the verified answer) and
 * *payload_r (its <op>Response, NULL for a Fault, *fault_r then set),
 * or 1 (printed).
 */
static int
exchange(struct call *c, const char *op, const char *payload, int sign,
    wse_envelope **env_r, wse_verified *v, xmlNodePtr *payload_r,
    wse_status *fault_r)
{
	wse_envelope *env = NULL;
	wse_buf *req = NULL, *resp = NULL;
	wse_verify_opts o;
	char action[256], want[300], reason[256];
	long http = 0;
	int rc = 1;

	*env_r = NULL;
	*payload_r = NULL;
	*fault_r = WSE_OK;
	(void)snprintf(action, sizeof(action), WSE_ACTION_PREFIX "%s", op);
	if (wse_env_new(c->server, action, &env) != WSE_OK ||
	    wse_env_add_body_xml(env, payload, strlen(payload), &c->lim) !=
	    WSE_OK ||
	    (sign && wse_wss_sign(env, c->signer, (int64_t)time(NULL), 300) !=
	    WSE_OK)) {
		rc = fail("cannot build the request");
		goto out;
	}
	if ((req = wse_buf_new(c->lim.max_message_bytes)) == NULL ||
	    (resp = wse_buf_new(c->resp_lim.max_message_bytes)) == NULL ||
	    wse_env_serialize(env, req) != WSE_OK) {
		rc = fail("cannot serialise the request");
		goto out;
	}
	if (wse_http_post(c->http, c->server, c->connect,
	    "application/soap+xml", wse_buf_data(req), wse_buf_len(req), resp,
	    &http) != WSE_OK) {
		rc = fail("POST");
		goto out;
	}
	if (wse_env_parse(wse_buf_data(resp), wse_buf_len(resp), &c->resp_lim,
	    env_r) != WSE_OK) {
		rc = fail("answer");
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
		rc = fail("the answer does not verify");
		goto out;
	}
	if (v->relates_to_s == NULL ||
	    strcmp(v->relates_to_s, wse_env_message_id(env)) != 0) {
		fprintf(stderr, "plugin_call: the answer is not about our "
		    "request\n");
		goto out;
	}
	if (wse_fault_read(v->body, fault_r, reason, sizeof(reason)) ==
	    WSE_OK) {
		rc = 0;
		goto out;
	}
	*fault_r = WSE_OK;
	(void)snprintf(want, sizeof(want), "%sResponse", action);
	if (strcmp(v->action_s, want) != 0) {
		fprintf(stderr, "plugin_call: answer Action %s\n", v->action_s);
		goto out;
	}
	(void)snprintf(want, sizeof(want), "%sResponse", op);
	if (wse_xml_only_child(v->body, WSE_NS_WSE, want, payload_r) !=
	    WSE_OK) {
		fprintf(stderr, "plugin_call: the answer holds no m:%s\n", want);
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

static int
login(struct call *c, const char *password)
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
	if (exchange(c, "GetAuthParams", wse_buf_str(req), 0, &env, &v, &p,
	    &fault) != 0)
		goto out;
	if (fault != WSE_OK) {
		fprintf(stderr, "plugin_call: GetAuthParams: %s\n",
		    wse_fault_subcode(fault));
		goto out;
	}
	if ((salt_b64 = child_text(p, "Salt")) == NULL ||
	    (iter = child_text(p, "Iterations")) == NULL ||
	    wse_base64_decode(salt_b64, strlen(salt_b64), salt) != WSE_OK) {
		fprintf(stderr, "plugin_call: bad GetAuthParamsResponse\n");
		goto out;
	}
	if (wse_pbkdf2_sha256(password, strlen(password), wse_buf_data(salt),
	    wse_buf_len(salt), (uint32_t)strtoul(iter, NULL, 10), key) !=
	    WSE_OK ||
	    wse_signer_new_password(c->user, key, &c->signer) != WSE_OK) {
		rc = fail("key");
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

int
main(int argc, char **argv)
{
	struct call c;
	wse_http_client_opts ho;
	const char *op = NULL, *payload = NULL, *password;
	char defpayload[512];
	wse_envelope *env = NULL;
	wse_verified v;
	xmlNodePtr p;
	wse_status fault;
	xmlBufferPtr xb = NULL;
	int i, rc = 1;

	memset(&c, 0, sizeof(c));
	memset(&v, 0, sizeof(v));
	for (i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--server") == 0)
			c.server = argv[i + 1];
		else if (strcmp(argv[i], "--connect") == 0)
			c.connect = argv[i + 1];
		else if (strcmp(argv[i], "--roots") == 0)
			c.roots = argv[i + 1];
		else if (strcmp(argv[i], "--user") == 0)
			c.user = argv[i + 1];
		else if (strcmp(argv[i], "--op") == 0)
			op = argv[i + 1];
		else if (strcmp(argv[i], "--payload") == 0)
			payload = argv[i + 1];
		else
			break;
	}
	password = getenv("WSEMAIL_PASSWORD");
	if (i != argc || c.server == NULL || c.roots == NULL ||
	    c.user == NULL || op == NULL || password == NULL ||
	    !wse_addr_valid(c.user) || strlen(op) > 200) {
		fprintf(stderr, "usage: WSEMAIL_PASSWORD=... plugin_call "
		    "--server URL --roots PEM --user USER --op OP "
		    "[--connect ADDR] [--payload XML]\n");
		return 2;
	}
	if (payload == NULL) {
		(void)snprintf(defpayload, sizeof(defpayload),
		    "<m:%s xmlns:m=\"" WSE_NS_WSE "\"/>", op);
		payload = defpayload;
	}
	wse_limits_default(&c.lim);
	c.resp_lim = c.lim;
	c.resp_lim.max_message_bytes *= 2;
	memset(&ho, 0, sizeof(ho));
	ho.roots = c.roots;
	ho.connect_timeout_ms = 10000;
	ho.timeout_ms = 60000;
	ho.max_response = c.resp_lim.max_message_bytes;
	if (wse_wss_init() != WSE_OK || wse_trust_new(&c.trust) != WSE_OK ||
	    wse_trust_load_roots(c.trust, c.roots) != WSE_OK ||
	    wse_replay_memory_new(64, &c.replay) != WSE_OK ||
	    wse_http_client_new(&ho, &c.http) != WSE_OK) {
		rc = fail("set-up");
		goto out;
	}
	wse_trust_skip_crls(c.trust);
	if (login(&c, password) != 0 ||
	    exchange(&c, op, payload, 1, &env, &v, &p, &fault) != 0)
		goto out;
	if (fault != WSE_OK) {
		printf("FAULT %s\n", wse_fault_subcode(fault));
		rc = 3;
		goto out;
	}
	if ((xb = xmlBufferCreate()) == NULL ||
	    xmlNodeDump(xb, wse_env_doc(env), p, 0, 0) < 0) {
		fprintf(stderr, "plugin_call: cannot print the answer\n");
		goto out;
	}
	printf("OK\n%s\n", (const char *)xmlBufferContent(xb));
	rc = 0;
out:
	if (xb != NULL)
		xmlBufferFree(xb);
	wse_verified_clear(&v);
	wse_env_free(&env);
	wse_signer_free(&c.signer);
	wse_http_client_free(&c.http);
	wse_replay_free(&c.replay);
	wse_trust_free(&c.trust);
	xmlCleanupParser();
	return rc;
}
