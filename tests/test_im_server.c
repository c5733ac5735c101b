/*
 * test_im_server.c - instant messages through wsemaild's own request path
 * (src/wsemaild: ops.c, plugins.c, serve.c, outbound.c) with the real im
 * plugin loaded, a real SQLite store, a PKI minted at test time and a
 * real HTTPS server on loopback for the held WaitInstant requests
 * (docs/im.md).  Submits, Delivers (signed by b.test's server, with its
 * TLS chain as the peer) and token requests are built and signed here.
 * Three groups of tests, each on a server of its own whose plugin has
 * options of its own: room for 1,000 held requests; small bounds
 * (max_sessions, max_held); short times (max_wait, grace).
 *
 * Run as "test_im_server --clients PORT N FILE" it is the helper process
 * of test_thousand_held: it opens N TLS connections to PORT, sends the
 * N requests of FILE, reports, and reads the answers when told to.
 */
#include "testutil.h"
#include "testpki.h"
#include "testserver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <openssl/ssl.h>

#include "config.h"
#include "crypto.h"
#include "http.h"
#include "msg.h"
#include "route.h"
#include "wsed.h"
#include "xml.h"

static testpki P;
static testserver T;
#define S (T.s)
static int64_t clock_now;
static wse_http_server *H;
static struct wsed_serve *SV;
static pthread_t loop_thread;
static uint16_t port;
static char https_url[128];
static char root_pem[700];
static const uint8_t salt[WSE_SALT_LEN] = { 9 };

#define URL "https://mail.a.test:8443/wsemail"
#define NTHOUSAND 1000

static int64_t
test_now(void)
{
	return clock_now;
}

static void
on_req(void *arg, wse_http_req *req)
{
	(void)arg;
	wsed_serve_post(SV, req);
}

static void *
loop_main(void *arg)
{
	(void)arg;
	(void)wse_http_server_run(H);
	return NULL;
}

static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* The server of a group of tests, its im plugin given opts. */
static int
setup_im(const char *opts)
{
	const char *build = getenv("WSE_BUILD_ROOT");
	wse_http_server_opts ho;
	char line[4096], chain[700], key[700];
	static const char *const users[] = { "dave@a.test", "olga@a.test",
	    "pat@a.test", "quinn@a.test", "rita@a.test", "sam@a.test",
	    "tess@a.test", "una@a.test", "vic@a.test", "wes@a.test",
	    "xan@a.test", "yan@a.test", "zed@a.test", "amy@a.test",
	    "ben@a.test", "kim@a.test", "lee@a.test", NULL };
	size_t i;

	raise_fd_limit();
	clock_now = (int64_t)time(NULL);
	if (build == NULL || testpki_init(&P, clock_now) != WSE_OK)
		return -1;
	snprintf(line, sizeof(line), "domain = a.test\n"
	    "plugin = %s/plugins/im.so dir=%s/im %s\n", build, P.dir, opts);
	if (testserver_init(&T, &P, test_now, line) != 0)
		return -1;
	for (i = 0; users[i] != NULL; i++)
		if (wse_store_user_add(S.store, users[i], salt, 600000,
		    testserver_key, P.now) != WSE_OK)
			return -1;
	snprintf(chain, sizeof(chain), "%s/a.test/chain.pem", P.dir);
	snprintf(key, sizeof(key), "%s/a.test/service-key.pem", P.dir);
	snprintf(root_pem, sizeof(root_pem), "%s/root/cert.pem", P.dir);
	snprintf(S.chain_path, sizeof(S.chain_path), "%s", chain);
	snprintf(S.key_path, sizeof(S.key_path), "%s", key);
	snprintf(S.roots_path, sizeof(S.roots_path), "%s", root_pem);
	/* b.test's server is not running: instant Submits to it fail at
	 * once (TempFail) */
	if (wse_router_new(NULL, 1000, &S.router) != WSE_OK ||
	    wse_router_add_static(S.router, "b.test", "127.0.0.1:9") != WSE_OK)
		return -1;
	memset(&ho, 0, sizeof(ho));
	ho.listen = "127.0.0.1:0";
	ho.cert_chain = chain;
	ho.key = key;
	ho.client_roots = root_pem;
	ho.client_cert = WSE_CLIENT_CERT_OPTIONAL;
	ho.max_body = S.lim.max_message_bytes;
	ho.timeout_s = 60;
	ho.max_connections = 3000;
	if (wse_http_server_new(&ho, on_req, NULL, &H) != WSE_OK ||
	    wsed_serve_start(&S, 4, &SV) != 0 ||
	    pthread_create(&loop_thread, NULL, loop_main, NULL) != 0)
		return -1;
	port = wse_http_server_port(H);
	snprintf(https_url, sizeof(https_url), "https://mail.a.test:%u/wsemail",
	    port);
	return 0;
}

/* Room for test_thousand_held. */
static int
setup(void **state)
{
	(void)state;
	return setup_im("grace=35 max_wait=50 max_sessions=1100 "
	    "max_held=2000");
}

/* Small bounds, long waits: a held request ends when the test ends it. */
static int
setup_limits(void **state)
{
	(void)state;
	return setup_im("grace=35 max_wait=30 max_sessions=2 max_held=3");
}

/* Short times: a held request ends within a second, a session is
 * online for two seconds after its answer. */
static int
setup_short(void **state)
{
	(void)state;
	return setup_im("grace=2 max_wait=1 max_sessions=2");
}

static int
teardown(void **state)
{
	(void)state;
	wse_http_server_stop(H);
	pthread_join(loop_thread, NULL);
	wsed_serve_stop(&SV);
	/* Frees the connections: held requests are cancelled. */
	wse_http_server_free(&H);
	assert_int_equal(wsed_plugins_held(&S), 0);
	testserver_free(&T);
	wse_router_free(&S.router);
	testpki_free(&P);
	return 0;
}

/* ---- requests ---- */

/* A request for op with payload, signed by signer (NULL: not signed);
 * with_header: an m:Instant block in the SOAP Header. */
static wse_buf *
request(const char *op, const char *payload, const wse_signer *signer,
    int with_header)
{
	wse_envelope *env = NULL;
	wse_buf *b = wse_buf_new(1 << 24);
	char action[128];

	snprintf(action, sizeof(action), "urn:wsemail:2026/%s", op);
	assert_wse_ok(wse_env_new(URL, action, &env));
	assert_wse_ok(wse_env_add_body_xml(env, payload, strlen(payload),
	    &S.lim));
	if (with_header) {
		xmlNodePtr n = xmlNewNode(NULL, BAD_CAST "Instant");

		xmlSetNs(n, xmlNewNs(n, BAD_CAST WSE_NS_WSE, BAD_CAST "m"));
		assert_non_null(xmlAddChild(wse_env_header(env), n));
	}
	if (signer != NULL)
		assert_wse_ok(wse_wss_sign(env, signer, clock_now, 300));
	assert_wse_ok(wse_env_serialize(env, b));
	wse_env_free(&env);
	return b;
}

static wse_buf *
user_request(const char *user, const char *op, const char *payload)
{
	wse_signer *s = NULL;
	wse_buf *b;

	assert_wse_ok(wse_signer_new_password(user, testserver_key, &s));
	b = request(op, payload, s, 0);
	wse_signer_free(&s);
	return b;
}

/* In process: the answer's fault status, or WSE_OK (body_r: payload). */
static wse_status
call_peer(const wse_buf *req, wse_cert *const *peer, size_t npeer,
    wse_buf *body_r)
{
	wse_buf *out = wse_buf_new(1 << 24);
	wse_status st;
	int http;

	wsed_handle(&S, wse_buf_data(req), wse_buf_len(req), peer, npeer, out,
	    &http);
	st = testserver_answer(&T, &P, clock_now, out, http, body_r);
	wse_buf_free(&out);
	return st;
}

static wse_status
call(const wse_buf *req, wse_buf *body_r)
{
	return call_peer(req, NULL, 0, body_r);
}

/* An instant message (or, instant 0, a mail) as <m:OP> payload. */
static char *
im_payload(const char *op, const char *from, const char *to, const char *cc,
    const char *text, int instant)
{
	wse_msg *m = NULL;
	wse_buf *b = wse_buf_new(1 << 20);
	char *r;

	assert_wse_ok(wse_msg_new(&m));
	assert_wse_ok(wse_msg_set(m, "from", from));
	assert_wse_ok(wse_msg_add_rcpt(m, to, 0));
	if (cc != NULL)
		assert_wse_ok(wse_msg_add_rcpt(m, cc, 1));
	assert_wse_ok(wse_msg_set(m, "text", text));
	assert_wse_ok(wse_msg_set(m, "date", "2026-01-01T00:00:00Z"));
	m->instant = instant;
	assert_wse_ok(wse_buf_printf(b, "<m:%s xmlns:m=\"" WSE_NS_WSE "\">",
	    op));
	if (strcmp(op, "Deliver") == 0) {
		char id[WSE_UUID_URN_LEN + 1];

		assert_wse_ok(wse_uuid_urn(id));
		assert_wse_ok(wse_buf_printf(b, "<m:Origin>%s</m:Origin>"
		    "<m:OriginId>%s</m:OriginId><m:Rcpt>%s</m:Rcpt>",
		    wse_addr_domain(from), id, to));
	}
	assert_wse_ok(wse_msg_to_xml(m, b));
	assert_wse_ok(wse_buf_printf(b, "</m:%s>", op));
	r = strdup(wse_buf_str(b));
	wse_msg_free(&m);
	wse_buf_free(&b);
	return r;
}

/* A user's instant Submit; the SubmitResponse into body_r. */
static wse_status
im_submit(const char *from, const char *to, const char *text, wse_buf *body_r)
{
	char *p = im_payload("Submit", from, to, NULL, text, 1);
	wse_buf *req = user_request(from, "Submit", p);
	wse_status st = call(req, body_r);

	free(p);
	wse_buf_free(&req);
	return st;
}

/* An instant Deliver from b.test's server (signed by it, its TLS chain
 * as the peer). */
static wse_status
b_deliver(const char *from, const char *to, const char *text,
    wse_buf *body_r)
{
	wse_cert *chain[2] = { P.dom[1].svc, P.dom[1].ca };
	char *p = im_payload("Deliver", from, to, NULL, text, 1);
	wse_signer *s = NULL;
	wse_buf *req;
	wse_status st;

	assert_wse_ok(wse_signer_new_cert(P.dom[1].svc_key, chain, 2, &s));
	req = request("Deliver", p, s, 0);
	st = call_peer(req, chain, 2, body_r);
	wse_signer_free(&s);
	wse_buf_free(&req);
	free(p);
	return st;
}

/* Text of attribute name="..." (first after `after` in s), or NULL. */
static char *
attr_of(const char *s, const char *name)
{
	char open[64];
	const char *a, *b;

	snprintf(open, sizeof(open), " %s=\"", name);
	if ((a = strstr(s, open)) == NULL)
		return NULL;
	a += strlen(open);
	if ((b = strchr(a, '"')) == NULL)
		return NULL;
	return strndup(a, (size_t)(b - a));
}

static void
assert_result(const wse_buf *body, const char *result, const char *sessions)
{
	char *r = attr_of(wse_buf_str(body), "result");
	char *n = attr_of(wse_buf_str(body), "sessions");

	assert_non_null(r);
	assert_non_null(n);
	assert_string_equal(r, result);
	assert_string_equal(n, sessions);
	free(r);
	free(n);
}

static uint64_t
stored_count(const char *user)
{
	uint64_t total = 0, unread = 0;

	assert_wse_ok(wse_store_count(S.store, user, &total, &unread));
	return total;
}

struct flags_ctx {
	unsigned flags;
	size_t n;
};

static wse_status
flags_one(void *arg, const wse_msg_meta *meta)
{
	struct flags_ctx *c = arg;

	c->flags = meta->flags;
	c->n++;
	return WSE_OK;
}

/* ---- WaitInstant over HTTPS ---- */

struct poll_arg {
	char user[64];
	char session[WSE_UUID_URN_LEN + 1];
	long long after;
	int wait;
	wse_buf *req;
	wse_buf *resp;
	long http;
	wse_status st;
	pthread_t th;
};

static void *
poll_thread(void *arg)
{
	struct poll_arg *a = arg;
	wse_http_client_opts co;
	wse_http_client *c = NULL;

	memset(&co, 0, sizeof(co));
	co.roots = root_pem;
	co.connect_timeout_ms = 5000;
	co.timeout_ms = 70000;
	co.max_response = 1 << 24;
	a->st = wse_http_client_new(&co, &c);
	if (a->st == WSE_OK)
		a->st = wse_http_post(c, https_url, "127.0.0.1",
		    "application/soap+xml", wse_buf_data(a->req),
		    wse_buf_len(a->req), a->resp, &a->http);
	wse_http_client_free(&c);
	return NULL;
}

static void
poll_start(struct poll_arg *a, const char *user, const char *session,
    long long after, int wait)
{
	char payload[512];

	memset(a, 0, sizeof(*a));
	snprintf(a->user, sizeof(a->user), "%s", user);
	if (session != NULL)
		snprintf(a->session, sizeof(a->session), "%s", session);
	else
		assert_wse_ok(wse_uuid_urn(a->session));
	a->after = after;
	a->wait = wait;
	snprintf(payload, sizeof(payload), "<m:WaitInstant xmlns:m=\""
	    WSE_NS_WSE "\"><m:Session>%s</m:Session><m:After>%lld</m:After>"
	    "<m:Wait>%d</m:Wait></m:WaitInstant>", a->session, after, wait);
	a->req = user_request(user, "WaitInstant", payload);
	a->resp = wse_buf_new(1 << 24);
	assert_int_equal(pthread_create(&a->th, NULL, poll_thread, a), 0);
}

/* Join; the verified WaitInstantResponse into body. */
static void
poll_end(struct poll_arg *a, wse_buf *body)
{
	pthread_join(a->th, NULL);
	assert_wse_ok(a->st);
	assert_wse_ok(testserver_answer(&T, &P, clock_now, a->resp,
	    (int)a->http, body));
	wse_buf_free(&a->req);
	wse_buf_free(&a->resp);
}

static void
wait_held(size_t n)
{
	int i;

	for (i = 0; i < 1000 && wsed_plugins_held(&S) != n; i++)
		usleep(10000);
	assert_int_equal(wsed_plugins_held(&S), n);
}

/* The items of a WaitInstantResponse: their seq numbers (at most max)
 * and, for each, the Original verified as a Deliver of origin signed by
 * its server (or, direct, a DeliverDirect signed by a token of it) that
 * carries the m:Instant mark and `text`. */
static size_t
items(const char *resp, long long *seqs, size_t max, const char *origin,
    int direct, const char *text)
{
	const char *p = resp;
	size_t n = 0;

	while ((p = strstr(p, "<m:Item ")) != NULL) {
		char *seq = attr_of(p, "seq"), *b64;
		const char *a = strstr(p, "<m:Original>"), *e;
		wse_buf *orig = wse_buf_new(1 << 22);
		wse_envelope *env = NULL;
		wse_replay *r = NULL;
		wse_verify_opts o;
		wse_verified v;

		assert_non_null(seq);
		assert_true(n < max);
		seqs[n++] = atoll(seq);
		free(seq);
		assert_non_null(a);
		a += strlen("<m:Original>");
		assert_non_null(e = strstr(a, "</m:Original>"));
		b64 = strndup(a, (size_t)(e - a));
		assert_wse_ok(wse_base64_decode(b64, strlen(b64), orig));
		free(b64);
		/* end to end: the sending party's signature */
		assert_wse_ok(wse_replay_memory_new(16, &r));
		memset(&o, 0, sizeof(o));
		o.profile = WSE_PROFILE_CERT;
		o.limits = &S.lim;
		o.replay = r;
		o.now = clock_now;
		o.trust = P.trust;
		o.purpose = direct ? WSE_PURPOSE_TOKEN : WSE_PURPOSE_SERVICE;
		o.expected_domain = direct ? NULL : origin;
		assert_wse_ok(wse_env_parse(wse_buf_data(orig),
		    wse_buf_len(orig), &S.lim, &env));
		assert_wse_ok(wse_wss_verify(env, &o, &v));
		if (direct)
			assert_string_equal(v.signer_domain, origin);
		assert_non_null(strstr(wse_buf_str(orig), "<m:Instant/>"));
		if (text != NULL)
			assert_non_null(strstr(wse_buf_str(orig), text));
		wse_verified_clear(&v);
		wse_env_free(&env);
		wse_replay_free(&r);
		wse_buf_free(&orig);
		p = e;
	}
	return n;
}

/* ---- tests ---- */

/* Two held sessions of dave both get carol's message at once; the
 * sender learns "pushed to 2". */
static void
test_push_two_sessions(void **state)
{
	struct poll_arg a, b;
	wse_buf *body = wse_buf_new(1 << 24);
	long long seqs[8];
	char *last;

	(void)state;
	poll_start(&a, "dave@a.test", NULL, 0, 30);
	poll_start(&b, "dave@a.test", NULL, 0, 30);
	wait_held(2);
	assert_wse_ok(im_submit("carol@a.test", "dave@a.test", "hello dave",
	    body));
	assert_non_null(strstr(wse_buf_str(body), "rcpt=\"dave@a.test\""));
	assert_result(body, "pushed", "2");
	wse_buf_reset(body);
	poll_end(&a, body);
	assert_int_equal(items(wse_buf_str(body), seqs, 8, "a.test", 0,
	    "hello dave"), 1);
	assert_int_equal(seqs[0], 1);
	wse_buf_reset(body);
	poll_end(&b, body);
	assert_int_equal(items(wse_buf_str(body), seqs, 8, "a.test", 0,
	    "hello dave"), 1);
	assert_int_equal(seqs[0], 1);
	assert_non_null(last = attr_of(wse_buf_str(body), "last"));
	assert_string_equal(last, "1");
	free(last);
	/* nothing stored as mail */
	assert_int_equal(stored_count("dave@a.test"), 0);
	wait_held(0);
	wse_buf_free(&body);
}

/* A session that resumes after a number gets everything newer, in
 * order, once; what arrives while it is between polls (within grace)
 * is pushed to the log, not stored. */
static void
test_resume(void **state)
{
	struct poll_arg a;
	wse_buf *body = wse_buf_new(1 << 24);
	char session[WSE_UUID_URN_LEN + 1], text[32];
	long long seqs[16];
	size_t n;
	int i;

	(void)state;
	assert_wse_ok(wse_uuid_urn(session));
	poll_start(&a, "quinn@a.test", session, 0, 1);
	wse_buf_reset(body);
	poll_end(&a, body);		/* nothing yet: online from now on */
	assert_int_equal(items(wse_buf_str(body), seqs, 16, NULL, 0, NULL),
	    0);
	for (i = 1; i <= 4; i++) {
		snprintf(text, sizeof(text), "resume %d", i);
		wse_buf_reset(body);
		assert_wse_ok(b_deliver("bob@b.test", "quinn@a.test", text,
		    body));
		assert_result(body, "pushed", "1");
	}
	/* processed #1 before going away: resume after it */
	poll_start(&a, "quinn@a.test", session, 1, 5);
	wse_buf_reset(body);
	poll_end(&a, body);
	n = items(wse_buf_str(body), seqs, 16, "b.test", 0, NULL);
	assert_int_equal(n, 3);
	assert_int_equal(seqs[0], 2);
	assert_int_equal(seqs[1], 3);
	assert_int_equal(seqs[2], 4);
	assert_non_null(strstr(wse_buf_str(body), "last=\"4\""));
	/* and after the last one: nothing more, no duplicate */
	poll_start(&a, "quinn@a.test", session, 4, 1);
	wse_buf_reset(body);
	poll_end(&a, body);
	assert_int_equal(items(wse_buf_str(body), seqs, 16, NULL, 0, NULL),
	    0);
	assert_non_null(strstr(wse_buf_str(body), "last=\"4\""));
	assert_int_equal(stored_count("quinn@a.test"), 0);
	wse_buf_free(&body);
}

/* No session online: stored as mail flagged instant, the sender told. */
static void
test_offline_stored(void **state)
{
	wse_buf *body = wse_buf_new(1 << 24);
	struct flags_ctx fc = { 0, 0 };

	(void)state;
	assert_wse_ok(im_submit("carol@a.test", "olga@a.test", "are you there",
	    body));
	assert_result(body, "stored", "0");
	assert_int_equal(stored_count("olga@a.test"), 1);
	assert_wse_ok(wse_store_list(S.store, "olga@a.test", 0, 10, flags_one,
	    &fc));
	assert_int_equal(fc.n, 1);
	assert_int_equal(fc.flags, WSE_MSG_INSTANT);
	/* ListHeaders shows the flag */
	{
		wse_buf *req = user_request("olga@a.test", "ListHeaders",
		    "<m:ListHeaders xmlns:m=\"" WSE_NS_WSE "\"/>");

		wse_buf_reset(body);
		assert_wse_ok(call(req, body));
		assert_non_null(strstr(wse_buf_str(body), "flags=\"2\""));
		wse_buf_free(&req);
	}
	/* from another domain too */
	wse_buf_reset(body);
	assert_wse_ok(b_deliver("bob@b.test", "olga@a.test", "from b",
	    body));
	assert_result(body, "stored", "0");
	assert_int_equal(stored_count("olga@a.test"), 2);
	wse_buf_free(&body);
}

static void
set_policy(const char *user, const char *inner)
{
	char payload[2048];
	wse_buf *req, *body = wse_buf_new(1 << 16);

	snprintf(payload, sizeof(payload), "<m:SetInstantPolicy xmlns:m=\""
	    WSE_NS_WSE "\">%s</m:SetInstantPolicy>", inner);
	req = user_request(user, "SetInstantPolicy", payload);
	assert_wse_ok(call(req, body));
	wse_buf_free(&req);
	wse_buf_free(&body);
}

/* Refused by policy: a Fault, nothing stored, nothing pushed. */
static void
test_policy_refusals(void **state)
{
	struct poll_arg a;
	wse_buf *body = wse_buf_new(1 << 24), *req;
	long long seqs[4];

	(void)state;
	/* pat is online (a held request) for the whole test */
	poll_start(&a, "pat@a.test", NULL, 0, 30);
	wait_held(1);

	set_policy("pat@a.test", "<m:Accept>nobody</m:Accept>");
	assert_wse_status(im_submit("carol@a.test", "pat@a.test", "no", body),
	    WSE_ERR_NOT_AUTHORIZED);
	assert_wse_status(b_deliver("bob@b.test", "pat@a.test", "no", body),
	    WSE_ERR_NOT_AUTHORIZED);

	set_policy("pat@a.test", "<m:Accept>listed</m:Accept>"
	    "<m:Allow>Alice@A.test</m:Allow><m:Allow>@c.test</m:Allow>");
	assert_wse_status(im_submit("carol@a.test", "pat@a.test", "no", body),
	    WSE_ERR_NOT_AUTHORIZED);
	assert_wse_status(b_deliver("bob@b.test", "pat@a.test", "no", body),
	    WSE_ERR_NOT_AUTHORIZED);

	/* entries are compared lower-cased, @domain too */
	set_policy("pat@a.test", "<m:Accept>anyone</m:Accept>"
	    "<m:Block>@B.Test</m:Block><m:Block>carol@a.test</m:Block>");
	assert_wse_status(b_deliver("bob@b.test", "pat@a.test", "no", body),
	    WSE_ERR_NOT_AUTHORIZED);
	assert_wse_status(im_submit("carol@a.test", "pat@a.test", "no", body),
	    WSE_ERR_NOT_AUTHORIZED);
	/* the policy as set */
	req = user_request("pat@a.test", "GetInstantPolicy",
	    "<m:GetInstantPolicy xmlns:m=\"" WSE_NS_WSE "\"/>");
	wse_buf_reset(body);
	assert_wse_ok(call(req, body));
	wse_buf_free(&req);
	assert_non_null(strstr(wse_buf_str(body),
	    "<m:Accept>anyone</m:Accept>"));
	assert_non_null(strstr(wse_buf_str(body), "<m:Block>@b.test</m:Block>"));
	assert_non_null(strstr(wse_buf_str(body),
	    "<m:Block>carol@a.test</m:Block>"));
	/* a bad policy is refused whole */
	req = user_request("pat@a.test", "SetInstantPolicy",
	    "<m:SetInstantPolicy xmlns:m=\"" WSE_NS_WSE "\"><m:Accept>some"
	    "</m:Accept></m:SetInstantPolicy>");
	assert_wse_status(call(req, NULL), WSE_ERR_PARSE);
	wse_buf_free(&req);

	/* nothing was pushed: the held request is still waiting; nothing
	 * stored */
	assert_int_equal(wsed_plugins_held(&S), 1);
	assert_int_equal(stored_count("pat@a.test"), 0);
	/* and a permitted sender gets through */
	wse_buf_reset(body);
	assert_wse_ok(im_submit("alice@a.test", "pat@a.test", "yes", body));
	assert_result(body, "pushed", "1");
	wse_buf_reset(body);
	poll_end(&a, body);
	assert_int_equal(items(wse_buf_str(body), seqs, 4, "a.test", 0, "yes"),
	    1);
	assert_int_equal(seqs[0], 1);
	set_policy("pat@a.test", "");
	wse_buf_free(&body);
}

/* A user's own request to the im plugin, and what the server logged. */
static wse_status
user_call_logged(const char *user, const char *op, const char *payload,
    wse_buf *body, char *log, size_t size)
{
	testutil_stderr c;
	wse_buf *req = user_request(user, op, payload);
	wse_status st;

	testutil_stderr_begin(&c);
	st = call(req, body);
	testutil_stderr_end(&c, log, size);
	wse_buf_free(&req);
	return st;
}

#define POLICY(inner) "<m:SetInstantPolicy xmlns:m=\"" WSE_NS_WSE "\">" \
	inner "</m:SetInstantPolicy>"
/* A WaitInstant of a valid session with more children. */
#define WAIT(more) "<m:WaitInstant xmlns:m=\"" WSE_NS_WSE "\"><m:Session>" \
	"urn:uuid:11111111-1111-4111-8111-111111111111</m:Session>" more \
	"</m:WaitInstant>"

/*
 * Malformed policy and WaitInstant requests, and bodies that are not the
 * operation their signed Action names: each refused with its own reason
 * (the server's log), and a refused policy changes nothing (it is
 * checked whole before anything is written).
 */
static void
test_policy_input(void **state)
{
	static const struct {
		const char *op, *payload, *why;
		wse_status want;
	} c[] = {
		{ "SetInstantPolicy", POLICY("<m:Accept>some</m:Accept>"),
		  "Accept is anyone, listed or nobody", WSE_ERR_PARSE },
		{ "SetInstantPolicy", POLICY("<m:Accept>listed</m:Accept>"
		  "<m:Accept>anyone</m:Accept>"), "bad Accept",
		  WSE_ERR_PARSE },
		{ "SetInstantPolicy", POLICY("<m:Owner>x@a.test</m:Owner>"),
		  "unknown element in SetInstantPolicy", WSE_ERR_PARSE },
		{ "SetInstantPolicy", POLICY("<m:Allow>not an address"
		  "</m:Allow>"), "Allow is not an address or @domain",
		  WSE_ERR_PARSE },
		{ "SetInstantPolicy", POLICY("<m:Block>@</m:Block>"),
		  "Block is not an address or @domain", WSE_ERR_PARSE },
		{ "SetInstantPolicy", NULL, "more than 1000 policy entries",
		  WSE_ERR_TOO_LARGE },
		{ "WaitInstant", "<m:WaitInstant xmlns:m=\"" WSE_NS_WSE "\"/>",
		  "needs a Session", WSE_ERR_PARSE },
		{ "WaitInstant", "<m:WaitInstant xmlns:m=\"" WSE_NS_WSE "\">"
		  "<m:Session>7</m:Session></m:WaitInstant>",
		  "needs a Session", WSE_ERR_PARSE },
		{ "WaitInstant", "<m:WaitInstant xmlns:m=\"" WSE_NS_WSE "\">"
		  "<m:Session>urn:uuid:11111111-1111-4111-8111-111111111111"
		  "</m:Session><m:Session>urn:uuid:11111111-1111-4111-8111-"
		  "111111111111</m:Session></m:WaitInstant>",
		  "Session given twice", WSE_ERR_PARSE },
		{ "WaitInstant", WAIT("<m:After>-1</m:After>"), "bad After",
		  WSE_ERR_PARSE },
		{ "WaitInstant", WAIT("<m:After>1x</m:After>"), "bad After",
		  WSE_ERR_PARSE },
		{ "WaitInstant", WAIT("<m:After></m:After>"), "bad After",
		  WSE_ERR_PARSE },
		{ "WaitInstant", WAIT("<m:After>99999999999999999999"
		  "</m:After>"), "bad After", WSE_ERR_PARSE },
		{ "WaitInstant", WAIT("<m:After>0</m:After><m:After>0"
		  "</m:After>"), "After given twice", WSE_ERR_PARSE },
		{ "WaitInstant", WAIT("<m:Wait>0</m:Wait>"), "bad Wait",
		  WSE_ERR_PARSE },
		{ "WaitInstant", WAIT("<m:Wait>61</m:Wait>"), "bad Wait",
		  WSE_ERR_PARSE },
		{ "WaitInstant", WAIT("<m:Wait> 5</m:Wait>"), "bad Wait",
		  WSE_ERR_PARSE },
		/* the body is not the operation the signed Action names */
		{ "WaitInstant", "<m:GetInstantPolicy xmlns:m=\"" WSE_NS_WSE
		  "\"/>", "no WaitInstant", WSE_ERR_PARSE },
		{ "GetInstantPolicy", WAIT(""), "no GetInstantPolicy",
		  WSE_ERR_PARSE },
		{ "SetInstantPolicy", "<m:GetInstantPolicy xmlns:m=\""
		  WSE_NS_WSE "\"/>", "no SetInstantPolicy", WSE_ERR_PARSE },
		{ "GetInstantPolicy", POLICY("<m:Accept>anyone</m:Accept>"),
		  "no GetInstantPolicy", WSE_ERR_PARSE },
	};
	wse_buf *body = wse_buf_new(1 << 20), *many = wse_buf_new(1 << 20);
	char log[2048];
	wse_status st;
	size_t i, k;

	(void)state;
	assert_non_null(body);
	assert_non_null(many);
	assert_wse_ok(wse_buf_puts(many, "<m:SetInstantPolicy xmlns:m=\""
	    WSE_NS_WSE "\">"));
	for (k = 0; k <= 1000; k++)
		assert_wse_ok(wse_buf_printf(many, "<m:Allow>u%zu@c.test"
		    "</m:Allow>", k));
	assert_wse_ok(wse_buf_puts(many, "</m:SetInstantPolicy>"));
	set_policy("una@a.test", "<m:Accept>listed</m:Accept>"
	    "<m:Allow>alice@a.test</m:Allow>");
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		wse_buf_reset(body);
		st = user_call_logged("una@a.test", c[i].op, c[i].payload ?
		    c[i].payload : wse_buf_str(many), body, log, sizeof(log));
		if (st != c[i].want || strstr(log, c[i].why) == NULL)
			fail_msg("case %zu (%s): got %s, log \"%s\"", i,
			    c[i].why, wse_status_name(st), log);
	}
	/* the policy as it was */
	wse_buf_reset(body);
	assert_wse_ok(user_call_logged("una@a.test", "GetInstantPolicy",
	    "<m:GetInstantPolicy xmlns:m=\"" WSE_NS_WSE "\"/>", body, log,
	    sizeof(log)));
	assert_non_null(strstr(wse_buf_str(body),
	    "<m:Accept>listed</m:Accept>"));
	assert_non_null(strstr(wse_buf_str(body),
	    "<m:Allow>alice@a.test</m:Allow>"));
	assert_null(strstr(wse_buf_str(body), "c.test"));
	set_policy("una@a.test", "");
	wse_buf_free(&many);
	wse_buf_free(&body);
}

/* Many messages in a row to one online user, the plugin's statements
 * used again and again, with a policy written and a refusal between
 * some of them: the numbers run on without a gap (a refusal takes none
 * and stores nothing), and every message comes back once, in order. */
static void
test_many_in_a_row(void **state)
{
	struct poll_arg a;
	wse_buf *body = wse_buf_new(1 << 24);
	char session[WSE_UUID_URN_LEN + 1], text[32];
	long long seqs[64];
	size_t n;
	int i;

	(void)state;
	assert_wse_ok(wse_uuid_urn(session));
	poll_start(&a, "tess@a.test", session, 0, 1);
	poll_end(&a, body);		/* online from now on (grace) */
	for (i = 1; i <= 30; i++) {
		if (i % 10 == 5) {
			set_policy("tess@a.test",
			    "<m:Block>carol@a.test</m:Block>");
			assert_wse_status(im_submit("carol@a.test",
			    "tess@a.test", "refused", body),
			    WSE_ERR_NOT_AUTHORIZED);
			set_policy("tess@a.test", "");
		}
		snprintf(text, sizeof(text), "row %d", i);
		wse_buf_reset(body);
		assert_wse_ok(b_deliver("bob@b.test", "tess@a.test", text,
		    body));
		assert_result(body, "pushed", "1");
	}
	poll_start(&a, "tess@a.test", session, 0, 1);
	wse_buf_reset(body);
	poll_end(&a, body);
	n = items(wse_buf_str(body), seqs, 64, "b.test", 0, NULL);
	assert_int_equal(n, 30);
	for (i = 0; i < 30; i++)
		assert_int_equal(seqs[i], i + 1);
	assert_non_null(strstr(wse_buf_str(body), "last=\"30\""));
	assert_int_equal(stored_count("tess@a.test"), 0);
	wse_buf_free(&body);
}

/* The mark must be signed: a SOAP header block is refused; a malformed
 * instant message is refused; an unreachable domain is TempFail. */
static void
test_refusals(void **state)
{
	wse_signer *s = NULL;
	wse_buf *req, *body = wse_buf_new(1 << 20);
	char *p;

	(void)state;
	assert_wse_ok(wse_signer_new_password("carol@a.test", testserver_key,
	    &s));
	p = im_payload("Submit", "carol@a.test", "olga@a.test", NULL, "x", 0);
	req = request("Submit", p, s, 1);
	assert_wse_status(call(req, NULL), WSE_ERR_BAD_SIGNATURE);
	wse_buf_free(&req);
	free(p);
	/* with the (signed) mark too */
	p = im_payload("Submit", "carol@a.test", "olga@a.test", NULL, "x", 1);
	req = request("Submit", p, s, 1);
	assert_wse_status(call(req, NULL), WSE_ERR_BAD_SIGNATURE);
	wse_buf_free(&req);
	free(p);
	/* two recipients */
	p = im_payload("Submit", "carol@a.test", "olga@a.test", "dave@a.test",
	    "x", 1);
	req = request("Submit", p, s, 0);
	assert_wse_status(call(req, NULL), WSE_ERR_PARSE);
	wse_buf_free(&req);
	free(p);
	/* too long */
	{
		char *big = malloc(WSED_INSTANT_TEXT_MAX + 2);

		memset(big, 'a', WSED_INSTANT_TEXT_MAX + 1);
		big[WSED_INSTANT_TEXT_MAX + 1] = '\0';
		p = im_payload("Submit", "carol@a.test", "olga@a.test", NULL,
		    big, 1);
		req = request("Submit", p, s, 0);
		assert_wse_status(call(req, NULL), WSE_ERR_PARSE);
		wse_buf_free(&req);
		free(p);
		free(big);
	}
	/* another's From */
	p = im_payload("Submit", "alice@a.test", "olga@a.test", NULL, "x", 1);
	req = request("Submit", p, s, 0);
	assert_wse_status(call(req, NULL), WSE_ERR_NOT_AUTHORIZED);
	wse_buf_free(&req);
	free(p);
	/* b.test's server does not answer: TempFail, never queued */
	p = im_payload("Submit", "carol@a.test", "bob@b.test", NULL, "x", 1);
	req = request("Submit", p, s, 0);
	assert_wse_status(call(req, NULL), WSE_ERR_TEMPFAIL);
	/* the same request again: a replay */
	assert_wse_status(call(req, NULL), WSE_ERR_REPLAY);
	wse_buf_free(&req);
	free(p);
	/* no such local user */
	assert_wse_status(im_submit("carol@a.test", "nobody@a.test", "x",
	    body), WSE_ERR_NO_SUCH_USER);
	assert_int_equal(stored_count("olga@a.test"), 2);
	wse_signer_free(&s);
	wse_buf_free(&body);
}

static wse_cert *
mint_token(int d, const char *mailbox, wse_key **key_r)
{
	wse_cert_profile prof = { WSE_CERT_TOKEN, mailbox, NULL, 0,
	    P.now - 60, P.now + 3600 };
	wse_cert *c = NULL;

	assert_wse_ok(wse_key_generate(key_r));
	assert_wse_ok(wse_cert_issue(&prof, *key_r, P.dom[d].ca,
	    P.dom[d].ca_key, &c));
	return c;
}

static wse_status
token_call(wse_cert *tok, wse_key *key, int d, const char *op,
    const char *payload, wse_buf *body)
{
	wse_signer *s = NULL;
	wse_buf *req;
	wse_status st;

	assert_wse_ok(wse_signer_new_cert(key,
	    (wse_cert *[]){ tok, P.dom[d].ca }, 2, &s));
	req = request(op, payload, s, 0);
	st = call(req, body);
	wse_signer_free(&s);
	wse_buf_free(&req);
	return st;
}

/* A roaming client's message, signed with a token of its domain. */
static void
test_direct(void **state)
{
	struct poll_arg a;
	wse_key *bk = NULL, *dk = NULL;
	wse_cert *bob = mint_token(1, "bob@b.test", &bk);
	wse_cert *dave = mint_token(1, "dave@b.test", &dk);
	wse_buf *body = wse_buf_new(1 << 24);
	long long seqs[4];
	char *p;

	(void)state;
	/* rita online: pushed; the pushed original is the token-signed
	 * request */
	poll_start(&a, "rita@a.test", NULL, 0, 30);
	wait_held(1);
	p = im_payload("DeliverDirect", "bob@b.test", "rita@a.test", NULL,
	    "roaming hello", 1);
	assert_wse_ok(token_call(bob, bk, 1, "DeliverDirect", p, body));
	assert_non_null(strstr(wse_buf_str(body), ">rita@a.test</m:Accepted>"));
	assert_result(body, "pushed", "1");
	/* dave's token cannot send as bob */
	assert_wse_status(token_call(dave, dk, 1, "DeliverDirect", p, body),
	    WSE_ERR_NOT_AUTHORIZED);
	free(p);
	wse_buf_reset(body);
	poll_end(&a, body);
	assert_int_equal(items(wse_buf_str(body), seqs, 4, "b.test", 1,
	    "roaming hello"), 1);
	/* sam offline: stored, flagged instant */
	p = im_payload("DeliverDirect", "bob@b.test", "sam@a.test", NULL,
	    "while you were away", 1);
	wse_buf_reset(body);
	assert_wse_ok(token_call(bob, bk, 1, "DeliverDirect", p, body));
	assert_result(body, "stored", "0");
	assert_int_equal(stored_count("sam@a.test"), 1);
	free(p);
	/* not instant: refused */
	p = im_payload("DeliverDirect", "bob@b.test", "sam@a.test", NULL, "x",
	    0);
	assert_wse_status(token_call(bob, bk, 1, "DeliverDirect", p, body),
	    WSE_ERR_PARSE);
	free(p);
	/* refused by policy: nothing stored */
	set_policy("sam@a.test", "<m:Block>bob@b.test</m:Block>");
	p = im_payload("DeliverDirect", "bob@b.test", "sam@a.test", NULL, "x",
	    1);
	assert_wse_status(token_call(bob, bk, 1, "DeliverDirect", p, body),
	    WSE_ERR_NOT_AUTHORIZED);
	free(p);
	assert_int_equal(stored_count("sam@a.test"), 1);
	set_policy("sam@a.test", "");

	/* presence: off by default, then for bob only */
	p = "<m:GetPresence xmlns:m=\"" WSE_NS_WSE "\"><m:User>sam@a.test"
	    "</m:User></m:GetPresence>";
	assert_wse_status(token_call(bob, bk, 1, "GetPresence", p, body),
	    WSE_ERR_NOT_AUTHORIZED);
	set_policy("sam@a.test", "<m:PresenceTo>bob@b.test</m:PresenceTo>");
	wse_buf_reset(body);
	assert_wse_ok(token_call(bob, bk, 1, "GetPresence", p, body));
	assert_non_null(strstr(wse_buf_str(body), "online=\"false\""));
	poll_start(&a, "sam@a.test", NULL, 0, 30);
	wait_held(1);
	wse_buf_reset(body);
	assert_wse_ok(token_call(bob, bk, 1, "GetPresence", p, body));
	assert_non_null(strstr(wse_buf_str(body), "online=\"true\""));
	assert_wse_status(token_call(dave, dk, 1, "GetPresence", p, body),
	    WSE_ERR_NOT_AUTHORIZED);
	p = "<m:GetPresence xmlns:m=\"" WSE_NS_WSE "\"><m:User>nobody@a.test"
	    "</m:User></m:GetPresence>";
	assert_wse_status(token_call(bob, bk, 1, "GetPresence", p, body),
	    WSE_ERR_NOT_AUTHORIZED);
	/* end sam's wait with a message */
	wse_buf_reset(body);
	assert_wse_ok(im_submit("carol@a.test", "sam@a.test", "bye", body));
	assert_result(body, "pushed", "1");
	wse_buf_reset(body);
	poll_end(&a, body);
	set_policy("sam@a.test", "");
	wse_cert_free(&bob);
	wse_cert_free(&dave);
	wse_key_free(&bk);
	wse_key_free(&dk);
	wse_buf_free(&body);
}

/*
 * Malformed token requests, and bodies that are not the operation their
 * signed Action names: each refused with its own reason (the server's
 * log); nothing is delivered or stored.
 */
static void
test_token_input(void **state)
{
#define PRESENCE(inner) "<m:GetPresence xmlns:m=\"" WSE_NS_WSE "\">" inner \
	"</m:GetPresence>"
#define DIRECT(inner) "<m:DeliverDirect xmlns:m=\"" WSE_NS_WSE "\">" inner \
	"</m:DeliverDirect>"
	static const struct {
		const char *op, *payload, *why;
		wse_status want;
	} c[] = {
		{ "GetPresence", PRESENCE(""), "GetPresence needs a User",
		  WSE_ERR_PARSE },
		{ "GetPresence", PRESENCE("<m:User>not an address</m:User>"),
		  "GetPresence needs a User", WSE_ERR_PARSE },
		{ "GetPresence", PRESENCE("<m:User>sam@a.test</m:User>"
		  "<m:User>sam@a.test</m:User>"), "GetPresence needs a User",
		  WSE_ERR_PARSE },
		{ "GetPresence", DIRECT("<m:User>sam@a.test</m:User>"),
		  "GetPresence needs a User", WSE_ERR_PARSE },
		{ "DeliverDirect", DIRECT(""), "DeliverDirect needs a Message",
		  WSE_ERR_PARSE },
		{ "DeliverDirect", DIRECT("<m:Note/>"),
		  "DeliverDirect needs a Message", WSE_ERR_PARSE },
		{ "DeliverDirect", PRESENCE("<m:User>sam@a.test</m:User>"),
		  "DeliverDirect needs a Message", WSE_ERR_PARSE },
	};
#undef PRESENCE
#undef DIRECT
	wse_key *bk = NULL;
	wse_cert *bob = mint_token(1, "bob@b.test", &bk);
	wse_buf *body = wse_buf_new(1 << 20);
	uint64_t before = stored_count("sam@a.test");
	testutil_stderr e;
	char log[2048];
	wse_status st;
	size_t i;

	(void)state;
	assert_non_null(body);
	set_policy("sam@a.test", "<m:PresenceTo>bob@b.test</m:PresenceTo>");
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		wse_buf_reset(body);
		testutil_stderr_begin(&e);
		st = token_call(bob, bk, 1, c[i].op, c[i].payload, body);
		testutil_stderr_end(&e, log, sizeof(log));
		if (st != c[i].want || strstr(log, c[i].why) == NULL)
			fail_msg("case %zu (%s): got %s, log \"%s\"", i,
			    c[i].why, wse_status_name(st), log);
	}
	assert_int_equal(stored_count("sam@a.test"), before);
	set_policy("sam@a.test", "");
	wse_cert_free(&bob);
	wse_key_free(&bk);
	wse_buf_free(&body);
}

/* ---- raw TLS clients (held requests whose connection closes) ---- */

struct raw {
	int fd;
	SSL *ssl;
};

static SSL_CTX *
raw_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx != NULL)
		SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	return ctx;
}

/* Connect, handshake, send the HTTP POST of req.  0 or -1. */
static int
raw_send(SSL_CTX *ctx, uint16_t p, const uint8_t *req, size_t len,
    struct raw *r)
{
	struct sockaddr_in sa;
	char head[256];
	int n;

	r->ssl = NULL;
	if ((r->fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(p);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    (r->ssl = SSL_new(ctx)) == NULL ||
	    SSL_set_tlsext_host_name(r->ssl, "mail.a.test") != 1 ||
	    SSL_set_fd(r->ssl, r->fd) != 1 || SSL_connect(r->ssl) != 1)
		return -1;
	n = snprintf(head, sizeof(head), "POST /wsemail HTTP/1.1\r\nHost: "
	    "mail.a.test\r\nContent-Type: application/soap+xml\r\n"
	    "Content-Length: %zu\r\n\r\n", len);
	if (SSL_write(r->ssl, head, n) != n ||
	    SSL_write(r->ssl, req, (int)len) != (int)len)
		return -1;
	return 0;
}

static void
raw_close(struct raw *r)
{
	if (r->ssl != NULL)
		SSL_free(r->ssl);
	if (r->fd >= 0)
		close(r->fd);
	r->ssl = NULL;
	r->fd = -1;
}

/* Read an HTTP answer until "</env:Envelope>" or the end; 1 when it
 * holds an m:Item. */
static int
raw_read_item(struct raw *r, int timeout_ms)
{
	char buf[65536];
	size_t got = 0;
	int n;
	struct pollfd pf = { r->fd, POLLIN, 0 };

	while (got < sizeof(buf) - 1) {
		if (SSL_pending(r->ssl) == 0 && poll(&pf, 1, timeout_ms) <= 0)
			break;
		if ((n = SSL_read(r->ssl, buf + got, (int)(sizeof(buf) - 1 -
		    got))) <= 0)
			break;
		got += (size_t)n;
		buf[got] = '\0';
		if (strstr(buf, "Envelope>") != NULL &&
		    strstr(buf, "</") != NULL && strstr(buf, "Body>") != NULL)
			break;
	}
	buf[got] = '\0';
	return strstr(buf, "<m:Item ") != NULL;
}

/* A held request whose client goes away leaves nothing behind: the
 * session is gone, a message is then stored. */
static void
test_cancelled(void **state)
{
	SSL_CTX *ctx = raw_ctx();
	struct raw r[3];
	wse_buf *body = wse_buf_new(1 << 20);
	char payload[512], session[WSE_UUID_URN_LEN + 1];
	wse_buf *req;
	int i;

	(void)state;
	assert_non_null(ctx);
	for (i = 0; i < 3; i++) {
		assert_wse_ok(wse_uuid_urn(session));
		snprintf(payload, sizeof(payload), "<m:WaitInstant xmlns:m=\""
		    WSE_NS_WSE "\"><m:Session>%s</m:Session><m:After>0"
		    "</m:After><m:Wait>40</m:Wait></m:WaitInstant>", session);
		req = user_request("alice@a.test", "WaitInstant", payload);
		assert_int_equal(raw_send(ctx, port, wse_buf_data(req),
		    wse_buf_len(req), &r[i]), 0);
		wse_buf_free(&req);
	}
	wait_held(3);
	/* a close_notify, a FIN, a reset */
	(void)SSL_shutdown(r[0].ssl);
	raw_close(&r[0]);
	raw_close(&r[1]);
	{
		struct linger lg = { 1, 0 };

		assert_int_equal(setsockopt(r[2].fd, SOL_SOCKET, SO_LINGER, &lg,
		    sizeof(lg)), 0);
	}
	raw_close(&r[2]);
	wait_held(0);
	/* alice has no session online any more: stored */
	assert_wse_ok(im_submit("carol@a.test", "alice@a.test", "late", body));
	assert_result(body, "stored", "0");
	SSL_CTX_free(ctx);
	wse_buf_free(&body);
}

/* ---- 1,000 held requests ---- */

static long
rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			kib = atol(line + 6);
	fclose(f);
	return kib;
}

/* The helper process: N connections, each sends its request; "R\n" when
 * all are sent; then, on "G\n", reads every answer and prints how many
 * held an item. */
static int
clients_main(uint16_t p, int n, const char *file)
{
	SSL_CTX *ctx = raw_ctx();
	struct raw *r = calloc((size_t)n, sizeof(*r));
	FILE *f = fopen(file, "rb");
	char cmd[8];
	int i, got = 0;

	raise_fd_limit();
	if (ctx == NULL || r == NULL || f == NULL)
		return 2;
	for (i = 0; i < n; i++) {
		uint32_t len;
		uint8_t *req;

		if (fread(&len, sizeof(len), 1, f) != 1 ||
		    (req = malloc(len)) == NULL ||
		    fread(req, 1, len, f) != len)
			return 3;
		if (raw_send(ctx, p, req, len, &r[i]) != 0) {
			fprintf(stderr, "connection %d failed\n", i);
			return 4;
		}
		free(req);
	}
	fclose(f);
	printf("R\n");
	fflush(stdout);
	if (fgets(cmd, sizeof(cmd), stdin) == NULL)
		return 5;
	for (i = 0; i < n; i++)
		got += raw_read_item(&r[i], 10000);
	printf("%d\n", got);
	fflush(stdout);
	for (i = 0; i < n; i++)
		raw_close(&r[i]);
	free(r);
	SSL_CTX_free(ctx);
	return 0;
}

static void
test_thousand_held(void **state)
{
	char file[700], self[700], portarg[16], nstr[16], line[64];
	int in[2], out[2], status;
	FILE *f, *from;
	wse_buf *body = wse_buf_new(1 << 20);
	long before, after;
	double t0;
	pid_t pid;
	int i;

	(void)state;
	/* the requests, prepared here */
	snprintf(file, sizeof(file), "%s/held.reqs", P.dir);
	assert_non_null(f = fopen(file, "wb"));
	for (i = 0; i < NTHOUSAND; i++) {
		char payload[512], session[WSE_UUID_URN_LEN + 1];
		wse_buf *req;
		uint32_t len;

		assert_wse_ok(wse_uuid_urn(session));
		snprintf(payload, sizeof(payload), "<m:WaitInstant xmlns:m=\""
		    WSE_NS_WSE "\"><m:Session>%s</m:Session><m:After>0"
		    "</m:After><m:Wait>50</m:Wait></m:WaitInstant>", session);
		req = user_request("carol@a.test", "WaitInstant", payload);
		len = (uint32_t)wse_buf_len(req);
		assert_int_equal(fwrite(&len, sizeof(len), 1, f), 1);
		assert_int_equal(fwrite(wse_buf_data(req), 1, len, f), len);
		wse_buf_free(&req);
	}
	assert_int_equal(fclose(f), 0);
	before = rss_kib();
	{
		ssize_t k = readlink("/proc/self/exe", self, sizeof(self) - 1);

		assert_true(k > 0);
		self[k] = '\0';
	}
	snprintf(portarg, sizeof(portarg), "%u", port);
	snprintf(nstr, sizeof(nstr), "%d", NTHOUSAND);
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	t0 = testutil_now_ms();
	if ((pid = fork()) == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execl(self, self, "--clients", portarg, nstr, file,
		    (char *)NULL);
		_exit(127);
	}
	assert_true(pid > 0);
	close(in[0]);
	close(out[1]);
	assert_non_null(from = fdopen(out[0], "r"));
	assert_non_null(fgets(line, sizeof(line), from));
	assert_string_equal(line, "R\n");
	wait_held(NTHOUSAND);
	after = rss_kib();
	print_message("%d held WaitInstant requests over %d TLS connections "
	    "in %.0f ms; server RSS %ld KiB -> %ld KiB (+%ld KiB, %.1f KiB "
	    "per held session)\n", NTHOUSAND, NTHOUSAND,
	    testutil_now_ms() - t0, before, after, after - before,
	    (double)(after - before) / NTHOUSAND);
	/* one message reaches every session at once */
	t0 = testutil_now_ms();
	assert_wse_ok(im_submit("alice@a.test", "carol@a.test", "to all",
	    body));
	print_message("one instant message pushed to %d sessions in %.0f ms\n",
	    NTHOUSAND, testutil_now_ms() - t0);
	snprintf(line, sizeof(line), "%d", NTHOUSAND);
	assert_result(body, "pushed", line);
	assert_int_equal(wsed_plugins_held(&S), 0);
	assert_int_equal(write(in[1], "G\n", 2), 2);
	assert_non_null(fgets(line, sizeof(line), from));
	assert_int_equal(atoi(line), NTHOUSAND);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(in[1]);
	fclose(from);
	wse_buf_free(&body);
}

/* ---- bounds: max_sessions, max_held, max_wait ---- */

/* A WaitInstant of user's session (a new one when NULL) in process: it
 * cannot be held, so when accepted it is answered at once, and the
 * session is online for grace from then on.  What the server logged
 * into log. */
static wse_status
wait_now(const char *user, const char *session, long long after,
    wse_buf *body, char *log, size_t size)
{
	char payload[512], fresh[WSE_UUID_URN_LEN + 1];

	if (session == NULL) {
		assert_wse_ok(wse_uuid_urn(fresh));
		session = fresh;
	}
	snprintf(payload, sizeof(payload), "<m:WaitInstant xmlns:m=\""
	    WSE_NS_WSE "\"><m:Session>%s</m:Session><m:After>%lld</m:After>"
	    "<m:Wait>1</m:Wait></m:WaitInstant>", session, after);
	wse_buf_reset(body);
	return user_call_logged(user, "WaitInstant", payload, body, log, size);
}

/* Refused with a TemporaryFailure Fault, the server's log saying why. */
static void
assert_wait_refused(const char *user, const char *session, long long after,
    const char *why)
{
	wse_buf *body = wse_buf_new(1 << 20);
	char log[2048];
	wse_status st;

	assert_non_null(body);
	st = wait_now(user, session, after, body, log, sizeof(log));
	if (st != WSE_ERR_TEMPFAIL || strstr(log, why) == NULL)
		fail_msg("WaitInstant of %s: got %s, log \"%s\"; expected "
		    "TemporaryFailure, \"%s\"", user, wse_status_name(st), log,
		    why);
	wse_buf_free(&body);
}

/* Accepted, answered at once with n items of a.test, the first numbered
 * first (when n > 0). */
static void
assert_wait_answered(const char *user, const char *session, long long after,
    size_t n, long long first)
{
	wse_buf *body = wse_buf_new(1 << 24);
	long long seqs[16];
	char log[2048];
	size_t i;

	assert_non_null(body);
	assert_wse_ok(wait_now(user, session, after, body, log, sizeof(log)));
	assert_int_equal(items(wse_buf_str(body), seqs, 16, "a.test", 0, NULL),
	    n);
	for (i = 0; i < n; i++)
		assert_int_equal(seqs[i], first + (long long)i);
	wse_buf_free(&body);
}

/* A WaitInstant of a new session of user held over a raw TLS
 * connection, which the test may close. */
static void
raw_wait(SSL_CTX *ctx, const char *user, int wait, struct raw *r)
{
	char payload[512], session[WSE_UUID_URN_LEN + 1];
	wse_buf *req;

	assert_wse_ok(wse_uuid_urn(session));
	snprintf(payload, sizeof(payload), "<m:WaitInstant xmlns:m=\""
	    WSE_NS_WSE "\"><m:Session>%s</m:Session><m:After>0</m:After>"
	    "<m:Wait>%d</m:Wait></m:WaitInstant>", session, wait);
	req = user_request(user, "WaitInstant", payload);
	assert_int_equal(raw_send(ctx, port, wse_buf_data(req),
	    wse_buf_len(req), r), 0);
	wse_buf_free(&req);
}

/* Push text to user's sessions (n of them) and check that each of the
 * held requests polls[] (up to a NULL) gets it, numbered seq, and
 * nothing else. */
static void
push_to(const char *user, const char *text, const char *n,
    struct poll_arg *const *polls, long long seq)
{
	wse_buf *body = wse_buf_new(1 << 24);
	long long seqs[4];
	size_t i;

	assert_non_null(body);
	assert_wse_ok(im_submit("carol@a.test", user, text, body));
	assert_result(body, "pushed", n);
	for (i = 0; polls[i] != NULL; i++) {
		wse_buf_reset(body);
		poll_end(polls[i], body);
		assert_int_equal(items(wse_buf_str(body), seqs, 4, "a.test", 0,
		    text), 1);
		assert_int_equal(seqs[0], seq);
	}
	wse_buf_free(&body);
}

/*
 * max_sessions=2, max_held=3: a user's third request to be held, and a
 * fourth held in all, get a TemporaryFailure Fault (the log names the
 * bound) and change nothing: the refused user does not come online, and
 * what is held stays held.  A newer request of a session already held
 * takes the older one's place rather than a new one.  Every way a held
 * request ends gives its place back: answered by a message, its
 * connection closed, its Wait passed.
 */
static void
test_held_limits(void **state)
{
	SSL_CTX *ctx = raw_ctx();
	struct poll_arg v[2], vb, x;
	struct raw w;
	wse_buf *body = wse_buf_new(1 << 24);
	long long seqs[4];

	(void)state;
	assert_non_null(ctx);
	assert_non_null(body);
	poll_start(&v[0], "vic@a.test", NULL, 0, 30);
	poll_start(&v[1], "vic@a.test", NULL, 0, 30);
	wait_held(2);
	/* vic's third */
	assert_wait_refused("vic@a.test", NULL, 0, "too many requests held "
	    "(2 for vic@a.test, 2 in all)");
	/* wes takes the last place */
	raw_wait(ctx, "wes@a.test", 30, &w);
	wait_held(3);
	assert_wait_refused("xan@a.test", NULL, 0, "too many requests held "
	    "(0 for xan@a.test, 3 in all)");
	/* vic's first session asks again: its older request is answered,
	 * with nothing, and the newer one held in its place */
	poll_start(&vb, "vic@a.test", v[0].session, 0, 30);
	poll_end(&v[0], body);
	assert_int_equal(items(wse_buf_str(body), seqs, 4, NULL, 0, NULL), 0);
	wait_held(3);
	assert_wait_refused("xan@a.test", NULL, 0, "too many requests held "
	    "(0 for xan@a.test, 3 in all)");
	/* nothing was kept of xan's refused requests: xan is not online */
	wse_buf_reset(body);
	assert_wse_ok(im_submit("carol@a.test", "xan@a.test", "stored", body));
	assert_result(body, "stored", "0");
	assert_int_equal(stored_count("xan@a.test"), 1);

	/* a message answers vic's two: room for xan */
	push_to("vic@a.test", "to vic", "2",
	    (struct poll_arg *[]){ &vb, &v[1], NULL }, 1);
	wait_held(1);
	poll_start(&x, "xan@a.test", NULL, 0, 30);
	wait_held(2);
	/* wes's connection closes: its place is free */
	raw_close(&w);
	wait_held(1);
	/* two of vic's whose Wait passes */
	poll_start(&v[0], "vic@a.test", NULL, 1, 2);
	poll_start(&v[1], "vic@a.test", NULL, 1, 2);
	wse_buf_reset(body);
	poll_end(&v[0], body);
	assert_int_equal(items(wse_buf_str(body), seqs, 4, NULL, 0, NULL), 0);
	wse_buf_reset(body);
	poll_end(&v[1], body);
	assert_int_equal(items(wse_buf_str(body), seqs, 4, NULL, 0, NULL), 0);
	wait_held(1);
	/* every place given back: the server is full again with vic's
	 * two, and only then refuses */
	poll_start(&v[0], "vic@a.test", NULL, 1, 30);
	poll_start(&v[1], "vic@a.test", NULL, 1, 30);
	wait_held(3);
	assert_wait_refused("xan@a.test", NULL, 0, "too many requests held "
	    "(1 for xan@a.test, 3 in all)");
	/* nothing pushed to anyone else meanwhile */
	push_to("vic@a.test", "to vic again", "2",
	    (struct poll_arg *[]){ &v[0], &v[1], NULL }, 2);
	push_to("xan@a.test", "to xan", "1", (struct poll_arg *[]){ &x, NULL },
	    1);
	wait_held(0);
	assert_int_equal(stored_count("vic@a.test"), 0);
	assert_int_equal(stored_count("wes@a.test"), 0);
	assert_int_equal(stored_count("xan@a.test"), 1);
	SSL_CTX_free(ctx);
	wse_buf_free(&body);
}

/*
 * A refused request forgets no session: yan's two sessions are online
 * (each answered within grace, neither held) when the server is full;
 * yan's new sessions are refused, and neither of the two online gives
 * its place to them: the next message is pushed to both, and each
 * takes it once.
 */
static void
test_refused_keeps_sessions(void **state)
{
	char y1[WSE_UUID_URN_LEN + 1], y2[WSE_UUID_URN_LEN + 1];
	struct poll_arg z[2], a;

	(void)state;
	assert_wse_ok(wse_uuid_urn(y1));
	assert_wse_ok(wse_uuid_urn(y2));
	assert_wait_answered("yan@a.test", y1, 0, 0, 0);
	assert_wait_answered("yan@a.test", y2, 0, 0, 0);
	poll_start(&z[0], "zed@a.test", NULL, 0, 30);
	poll_start(&z[1], "zed@a.test", NULL, 0, 30);
	poll_start(&a, "amy@a.test", NULL, 0, 30);
	wait_held(3);
	assert_wait_refused("yan@a.test", NULL, 0, "too many requests held "
	    "(0 for yan@a.test, 3 in all)");
	assert_wait_refused("yan@a.test", NULL, 0, "too many requests held "
	    "(0 for yan@a.test, 3 in all)");
	push_to("yan@a.test", "to yan", "2", (struct poll_arg *[]){ NULL }, 1);
	assert_wait_answered("yan@a.test", y1, 0, 1, 1);
	assert_wait_answered("yan@a.test", y2, 0, 1, 1);
	/* the requests held were left alone */
	assert_int_equal(wsed_plugins_held(&S), 3);
	push_to("zed@a.test", "to zed", "2",
	    (struct poll_arg *[]){ &z[0], &z[1], NULL }, 1);
	push_to("amy@a.test", "to amy", "1", (struct poll_arg *[]){ &a, NULL },
	    1);
	wait_held(0);
	assert_int_equal(stored_count("yan@a.test"), 0);
}

/*
 * Beyond max_sessions a user's new session takes the place of the one
 * idle longest, never of one whose request is held: with both of ben's
 * places held a third session is refused, even one with something to
 * take at once; the session forgotten to make room loses nothing (it
 * takes what it missed from the log).
 */
static void
test_held_never_forgotten(void **state)
{
	char b0[WSE_UUID_URN_LEN + 1];
	struct poll_arg b[2];

	(void)state;
	assert_wse_ok(wse_uuid_urn(b0));
	assert_wait_answered("ben@a.test", b0, 0, 0, 0);
	push_to("ben@a.test", "to ben", "1", (struct poll_arg *[]){ NULL }, 1);
	/* the second takes b0's place */
	poll_start(&b[0], "ben@a.test", NULL, 1, 30);
	poll_start(&b[1], "ben@a.test", NULL, 1, 30);
	wait_held(2);
	assert_wait_refused("ben@a.test", NULL, 0, "ben@a.test has 2 "
	    "sessions waiting already");
	assert_wait_refused("ben@a.test", b0, 0, "ben@a.test has 2 "
	    "sessions waiting already");
	assert_wait_refused("ben@a.test", NULL, 1, "too many requests held "
	    "(2 for ben@a.test, 2 in all)");
	push_to("ben@a.test", "to ben again", "2",
	    (struct poll_arg *[]){ &b[0], &b[1], NULL }, 2);
	wait_held(0);
	assert_wait_answered("ben@a.test", b0, 0, 2, 1);
	assert_int_equal(stored_count("ben@a.test"), 0);
}

/* max_wait=1: a request that asks to wait 60 s is answered after 1 s,
 * with nothing, and its place given back. */
static void
test_wait_bounded(void **state)
{
	wse_buf *body = wse_buf_new(1 << 20);
	struct poll_arg k;
	long long seqs[4];
	double t0, ms;

	(void)state;
	assert_non_null(body);
	t0 = testutil_now_ms();
	poll_start(&k, "kim@a.test", NULL, 0, 60);
	poll_end(&k, body);
	ms = testutil_now_ms() - t0;
	assert_int_equal(items(wse_buf_str(body), seqs, 4, NULL, 0, NULL), 0);
	if (ms < 900 || ms > 10000)
		fail_msg("answered after %.0f ms", ms);
	wait_held(0);
	wse_buf_free(&body);
}

/*
 * grace=2, max_sessions=2: of lee's two remembered sessions, the one
 * idle longest (no longer online) gives its place to a new one, not the
 * one still online: the next message is pushed to two sessions; the
 * forgotten one loses nothing.
 */
static void
test_forget_idle_longest(void **state)
{
	char l1[WSE_UUID_URN_LEN + 1], l2[WSE_UUID_URN_LEN + 1];

	(void)state;
	assert_wse_ok(wse_uuid_urn(l1));
	assert_wse_ok(wse_uuid_urn(l2));
	assert_wait_answered("lee@a.test", l1, 0, 0, 0);
	testutil_sleep_ms(2300);	/* l1 no longer online */
	assert_wait_answered("lee@a.test", l2, 0, 0, 0);
	assert_wait_answered("lee@a.test", NULL, 0, 0, 0);
	push_to("lee@a.test", "to lee", "2", (struct poll_arg *[]){ NULL }, 1);
	assert_wait_answered("lee@a.test", l1, 0, 1, 1);
	assert_int_equal(stored_count("lee@a.test"), 0);
}

/* Options out of their bounds: the plugin does not start, and says
 * why; nothing is created. */
static void
test_options(void **state)
{
	static const struct {
		const char *args, *why;
	} c[] = {
		{ "max_sessions=0", "max_sessions=0 is not a number from 1 to "
		  "100000" },
		{ "max_sessions=100001", "max_sessions=100001 is not a number" },
		{ "max_held=0", "max_held=0 is not a number from 1 to "
		  "1000000" },
		{ "max_held=1000001", "max_held=1000001 is not a number" },
		{ "max_held=-1", "max_held=-1 is not a number" },
		{ "max_held=1e3", "max_held=1e3 is not a number" },
		{ "max_held=99999999999999999999", "is not a number from 1 to "
		  "1000000" },
		{ "max_wait=0", "max_wait=0 is not a number from 1 to 60" },
		{ "max_wait=61", "max_wait=61 is not a number from 1 to 60" },
		{ "grace=0", "grace=0 is not a number from 1 to 3600" },
		{ "retention=59", "retention=59 is not a number from 60 to " },
		{ "max_held", "\"max_held\" is not KEY=VALUE" },
		{ "max_held=", "\"max_held=\" is not KEY=VALUE" },
		{ "=5", "\"=5\" is not KEY=VALUE" },
		{ "maxheld=5", "unknown argument maxheld" },
		{ "dir=im", "dir=im is not an absolute path" },
		{ NULL, "dir= is required" },
	};
	const char *build = getenv("WSE_BUILD_ROOT");
	char line[1400], dir[800], log[2048];
	wse_config *cfg = NULL;
	struct wsed w;
	testutil_stderr e;
	size_t i;
	int rc;

	(void)state;
	assert_non_null(build);
	snprintf(dir, sizeof(dir), "%s/im-refused", P.dir);
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		if (c[i].args != NULL)
			snprintf(line, sizeof(line), "plugin = %s/plugins/im.so "
			    "dir=%s %s\n", build, dir, c[i].args);
		else
			snprintf(line, sizeof(line), "plugin = %s/plugins/im.so "
			    "max_held=5\n", build);
		memset(&w, 0, sizeof(w));
		snprintf(w.domain, sizeof(w.domain), "a.test");
		snprintf(w.url, sizeof(w.url), "%s", URL);
		wse_limits_default(&w.lim);
		w.store = S.store;
		w.now = test_now;
		assert_wse_ok(wse_config_parse(line, strlen(line), "test",
		    &cfg));
		testutil_stderr_begin(&e);
		rc = wsed_plugins_load(&w, cfg, "test");
		testutil_stderr_end(&e, log, sizeof(log));
		if (rc == 0 || strstr(log, c[i].why) == NULL)
			fail_msg("%s: loaded %d, log \"%s\"", c[i].args ?
			    c[i].args : "(no dir)", rc == 0, log);
		assert_int_equal(w.nplugins, 0);
		wsed_plugins_unload(&w);
		wse_config_free(&cfg);
		assert_int_equal(access(dir, F_OK), -1);
	}
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_push_two_sessions),
		cmocka_unit_test(test_resume),
		cmocka_unit_test(test_offline_stored),
		cmocka_unit_test(test_policy_refusals),
		cmocka_unit_test(test_policy_input),
		cmocka_unit_test(test_many_in_a_row),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_direct),
		cmocka_unit_test(test_token_input),
		cmocka_unit_test(test_cancelled),
		cmocka_unit_test(test_thousand_held),
		cmocka_unit_test(test_options),
	};
	const struct CMUnitTest limits[] = {
		cmocka_unit_test(test_held_limits),
		cmocka_unit_test(test_refused_keeps_sessions),
		cmocka_unit_test(test_held_never_forgotten),
	};
	const struct CMUnitTest short_times[] = {
		cmocka_unit_test(test_wait_bounded),
		cmocka_unit_test(test_forget_idle_longest),
	};
	int failed;

	if (argc == 5 && strcmp(argv[1], "--clients") == 0) {
		signal(SIGPIPE, SIG_IGN);
		return clients_main((uint16_t)atoi(argv[2]), atoi(argv[3]),
		    argv[4]);
	}
	signal(SIGPIPE, SIG_IGN);
	failed = cmocka_run_group_tests_name("im", tests, setup, teardown);
	failed += cmocka_run_group_tests_name("im bounds", limits,
	    setup_limits, teardown);
	failed += cmocka_run_group_tests_name("im short times", short_times,
	    setup_short, teardown);
	xmlCleanupParser();
	return failed;
}
