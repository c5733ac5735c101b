/*
 * testserver.c - see testserver.h.
 */
#include "testutil.h"
#include "testserver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "config.h"
#include "xml.h"

const uint8_t testserver_key[WSE_DERIVED_KEY_LEN] = { 0xa1, 0x1c, 0xe };
static uint8_t salt[WSE_SALT_LEN] = { 1, 2, 3 };

/* The two users of each domain of testpki. */
static const char *const users[3][2] = {
	{ "alice@a.test", "carol@a.test" },
	{ "bob@b.test", "dave@b.test" },
	{ "erin@c.test", "frank@c.test" },
};

int
testserver_init(testserver *t, testpki *p, int64_t (*now_fn)(void),
    const char *plugin_line)
{
	return testserver_init_domain(t, p, 0, now_fn, plugin_line);
}

int
testserver_init_domain(testserver *t, testpki *p, int d,
    int64_t (*now_fn)(void), const char *plugin_line)
{
	struct wsed *S = &t->s;
	uint8_t seal[WSE_SEAL_KEY_LEN] = { 7 };
	char uri[600];
	const char *name;
	wse_cert *chain[2];
	wse_config *cfg = NULL;

	memset(t, 0, sizeof(*t));
	if (d < 0 || d > 2)
		return -1;
	name = p->dom[d].name;
	S->now = now_fn;
	snprintf(S->domain, sizeof(S->domain), "%s", name);
	snprintf(S->url, sizeof(S->url), "https://mail.%s:8443/wsemail", name);
	wse_limits_default(&S->lim);
	S->retry_first = 1;
	S->retry_max = 2;
	S->lifetime = 60;
	S->lease = 60;
	S->reply_ttl = 300;
	/* The files testpki wrote: the delivery worker's HTTPS client. */
	snprintf(S->roots_path, sizeof(S->roots_path), "%s/root/cert.pem",
	    p->dir);
	snprintf(S->chain_path, sizeof(S->chain_path), "%s/%s/chain.pem",
	    p->dir, name);
	snprintf(S->key_path, sizeof(S->key_path),
	    "%s/%s/service-key.pem", p->dir, name);
	pthread_mutex_init(&S->wake_lock, NULL);
	wsed_instant_init(S);
	wsed_outbound_init(S);
	pthread_cond_init(&S->wake, NULL);
	pthread_mutex_init(&S->commit_lock, NULL);
	pthread_cond_init(&S->commit_work, NULL);
	S->commit_tail = &S->commit_head;
	snprintf(uri, sizeof(uri), "sqlite:%s/server-%s.db", p->dir, name);
	chain[0] = p->dom[d].svc;
	chain[1] = p->dom[d].ca;
	S->trust = p->trust;
	S->key = p->dom[d].svc_key;
	if (wse_store_open(uri, seal, &S->store) != WSE_OK ||
	    wse_store_replay(S->store, &S->replay) != WSE_OK ||
	    wse_signer_new_cert(S->key, chain, 2, &S->signer) != WSE_OK ||
	    wse_store_user_add(S->store, users[d][0], salt, 600000,
	    testserver_key, p->now) != WSE_OK ||
	    wse_store_user_add(S->store, users[d][1], salt, 600000,
	    testserver_key, p->now) != WSE_OK)
		return -1;
	if (wsed_guard_new(&S->guard) != WSE_OK ||
	    (S->chain = calloc(2, sizeof(*S->chain))) == NULL)
		return -1;
	S->chain[0] = wse_cert_dup(p->dom[d].svc);
	S->chain[1] = wse_cert_dup(p->dom[d].ca);
	S->nchain = 2;
	if (plugin_line != NULL) {
		if (wse_config_parse(plugin_line, strlen(plugin_line), "test",
		    &cfg) != WSE_OK)
			return -1;
		if (wsed_plugins_load(S, cfg, "test") != 0) {
			wse_config_free(&cfg);
			return -1;
		}
		wse_config_free(&cfg);
	}
	if (pthread_create(&t->committer, NULL, wsed_commit_main, S) != 0)
		return -1;
	t->committing = 1;
	wsed_plugins_start(S);
	return 0;
}

void
testserver_free(testserver *t)
{
	struct wsed *S = &t->s;

	if (t->committing) {
		wsed_commit_stop(S);
		pthread_join(t->committer, NULL);
		t->committing = 0;
	}
	wsed_plugins_unload(S);
	wsed_instant_fini(S);
	wsed_outbound_fini(S);
	wse_signer_free(&S->signer);
	wse_replay_free(&S->replay);
	wse_store_close(&S->store);
	wse_cert_list_free(&S->chain, S->nchain);
	wsed_guard_free(&S->guard);
}

wse_status
testserver_answer(testserver *t, testpki *p, int64_t now, const wse_buf *out,
    int http, wse_buf *body_r)
{
	wse_envelope *env = NULL;
	wse_replay *r = NULL;
	wse_verified v;
	wse_verify_opts o;
	wse_status st = WSE_OK;

	assert_wse_ok(wse_replay_memory_new(16, &r));
	memset(&o, 0, sizeof(o));
	o.profile = WSE_PROFILE_CERT;
	o.limits = &t->s.lim;
	o.replay = r;
	o.now = now;
	o.trust = p->trust;
	o.purpose = WSE_PURPOSE_SERVICE;
	o.expected_domain = t->s.domain;
	assert_wse_ok(wse_env_parse(wse_buf_data(out), wse_buf_len(out),
	    &t->s.lim, &env));
	assert_wse_ok(wse_wss_verify(env, &o, &v));
	if (wse_fault_read(v.body, &st, NULL, 0) == WSE_OK)
		assert_int_equal(http, 500);
	else {
		assert_int_equal(http, 200);
		st = WSE_OK;
		if (body_r != NULL) {
			xmlBufferPtr xb = xmlBufferCreate();

			xmlNodeDump(xb, v.body->doc, wse_xml_first_elem(v.body),
			    0, 0);
			assert_wse_ok(wse_buf_puts(body_r,
			    (const char *)xmlBufferContent(xb)));
			xmlBufferFree(xb);
		}
	}
	wse_verified_clear(&v);
	wse_env_free(&env);
	wse_replay_free(&r);
	return st;
}
