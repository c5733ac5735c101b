/*
 * test_server.c - wsemaild's operations in process (src/wsemaild/ops.c):
 * requests signed here go through wsed_handle with a real SQLite store and
 * a PKI minted at test time.  Covers what is awkward from the outside:
 * a replayed Submit, sending as someone else, a Deliver without mutual TLS
 * or from a TLS peer of another domain, reading another user's message,
 * and GetAuthParams not revealing which accounts exist.  The delivery
 * worker (src/wsemaild/outbound.c) also sends to a second server in
 * process, for b.test, behind a real HTTPS server on loopback: one that
 * refuses DeliverBatch as a server from before batches does, to mail from
 * the queue and to instant messages sent together; or one whose answers
 * are forged (unsigned, signed by another domain, relating to another
 * request, outcomes that do not match the recipients sent, batches
 * answered in part), against which the worker must defer, report once
 * or deliver, and never lose or repeat a queued message.  Its name is
 * resolved by a real DNS server on loopback, dnsmasq (WSE_TEST_DNSMASQ,
 * which tests/meson.build sets when dnsmasq is installed; that case is
 * skipped without it).  The password guard's table (guard.c) on its own,
 * and refusals over HTTPS through the worker threads (serve.c).
 */
#include "testutil.h"
#include "testpki.h"
#include "batch.h"
#include "testserver.h"
#include "testdns.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libxml/parser.h>

#include "http.h"
#include "msg.h"
#include "route.h"
#include "wsed.h"
#include "xml.h"

static testpki P;
static testserver T;
#define S (T.s)
#define alice_key testserver_key

static int64_t skew;		/* seconds added to the test clock */

static int64_t
fixed_now(void)
{
	return P.now + skew;
}

static int
setup(void **state)
{
	(void)state;
	if (testpki_init(&P, (int64_t)time(NULL)) != WSE_OK)
		return -1;
	return testserver_init(&T, &P, fixed_now, NULL);
}

static int
teardown(void **state)
{
	(void)state;
	testserver_free(&T);
	testpki_free(&P);
	xmlCleanupParser();
	return 0;
}

/* A request envelope for op with payload, signed with the password
 * profile as user (key), or with a.test/b.test's service key (svc 0/1),
 * or unsigned (svc -2). */
static wse_buf *
request(const char *op, const char *payload, const char *user,
    const uint8_t *key, int svc)
{
	wse_envelope *env = NULL;
	wse_signer *s = NULL;
	wse_buf *b = wse_buf_new(1 << 24);
	char action[128];

	snprintf(action, sizeof(action), "urn:wsemail:2026/%s", op);
	assert_wse_ok(wse_env_new(S.url, action, &env));
	assert_wse_ok(wse_env_add_body_xml(env, payload, strlen(payload),
	    &S.lim));
	if (svc >= 0)
		assert_wse_ok(wse_signer_new_cert(P.dom[svc].svc_key,
		    (wse_cert *[]){ P.dom[svc].svc, P.dom[svc].ca }, 2, &s));
	else if (svc == -1)
		assert_wse_ok(wse_signer_new_password(user, key, &s));
	if (s != NULL)
		assert_wse_ok(wse_wss_sign(env, s, P.now + skew, 300));
	assert_wse_ok(wse_env_serialize(env, b));
	wse_signer_free(&s);
	wse_env_free(&env);
	return b;
}

/* Run a request; return the fault status (WSE_OK for a normal answer)
 * after checking the answer is signed by a.test. */
static wse_status
call(const wse_buf *req, wse_cert *const *peer, size_t npeer, wse_buf *body_r)
{
	wse_buf *out = wse_buf_new(1 << 23);
	wse_status st;
	int http;

	wsed_handle(&S, wse_buf_data(req), wse_buf_len(req), peer, npeer, out,
	    &http);
	st = testserver_answer(&T, &P, P.now + skew, out, http, body_r);
	wse_buf_free(&out);
	return st;
}

static wse_status
count_queue(void *arg, const wse_queue_item *item, const char *const *rcpts,
    size_t nrcpts, const void *payload, size_t len)
{
	(void)item; (void)rcpts; (void)nrcpts; (void)payload; (void)len;
	(*(int *)arg)++;
	return WSE_OK;
}

static int
queue_items(void)
{
	int n = 0;

	assert_wse_ok(wse_store_queue_list(S.store, count_queue, &n));
	return n;
}

#define SUBMIT(from, subject) "<m:Submit xmlns:m=\"urn:wsemail:2026\">" \
	"<m:Message><m:From>" from "</m:From><m:To>bob@b.test</m:To>" \
	"<m:Subject>" subject "</m:Subject><m:Text>hi</m:Text></m:Message>" \
	"</m:Submit>"

/* The same signed Submit twice: queued once, the copy refused. */
static void
test_replayed_submit(void **state)
{
	wse_buf *req = request("Submit", SUBMIT("alice@a.test", "once"),
	    "alice@a.test", alice_key, -1);
	int before = queue_items();

	(void)state;
	assert_wse_ok(call(req, NULL, 0, NULL));
	assert_int_equal(queue_items(), before + 1);
	assert_wse_status(call(req, NULL, 0, NULL), WSE_ERR_REPLAY);
	assert_int_equal(queue_items(), before + 1);
	wse_buf_free(&req);
}

/* A server configured with a small max_message_bytes (the least allowed
 * is 1024) still queues a Submit that fits: buffers sized ahead of
 * their contents stop at the maximum instead of refusing. */
static void
test_submit_small_limit(void **state)
{
	wse_buf *req = request("Submit", SUBMIT("alice@a.test", "small"),
	    "alice@a.test", alice_key, -1);
	wse_buf *out = wse_buf_new(1 << 23);
	size_t keep = S.lim.max_message_bytes;
	int before = queue_items(), http;

	(void)state;
	assert_true(wse_buf_len(req) < 3900);
	S.lim.max_message_bytes = 3900;
	wsed_handle(&S, wse_buf_data(req), wse_buf_len(req), NULL, 0, out,
	    &http);
	S.lim.max_message_bytes = keep;	/* the answer is larger */
	assert_wse_ok(testserver_answer(&T, &P, P.now + skew, out, http,
	    NULL));
	assert_int_equal(queue_items(), before + 1);
	wse_buf_free(&out);
	wse_buf_free(&req);
}

static void
test_submit_refusals(void **state)
{
	uint8_t wrong[WSE_DERIVED_KEY_LEN] = { 9 };
	wse_buf *req;
	int before = queue_items();

	(void)state;
	/* As someone else. */
	req = request("Submit", SUBMIT("carol@a.test", "spoof"),
	    "alice@a.test", alice_key, -1);
	assert_wse_status(call(req, NULL, 0, NULL), WSE_ERR_NOT_AUTHORIZED);
	wse_buf_free(&req);
	/* Wrong password, unknown user: the same answer. */
	req = request("Submit", SUBMIT("alice@a.test", "x"), "alice@a.test",
	    wrong, -1);
	assert_wse_status(call(req, NULL, 0, NULL), WSE_ERR_NOT_AUTHORIZED);
	wse_buf_free(&req);
	req = request("Submit", SUBMIT("zed@a.test", "x"), "zed@a.test",
	    alice_key, -1);
	assert_wse_status(call(req, NULL, 0, NULL), WSE_ERR_NOT_AUTHORIZED);
	wse_buf_free(&req);
	/* Unsigned, and signed by a server instead of the user. */
	req = request("Submit", SUBMIT("alice@a.test", "x"), NULL, NULL, -2);
	assert_int_not_equal(call(req, NULL, 0, NULL), WSE_OK);
	wse_buf_free(&req);
	req = request("Submit", SUBMIT("alice@a.test", "x"), NULL, NULL, 0);
	assert_int_not_equal(call(req, NULL, 0, NULL), WSE_OK);
	wse_buf_free(&req);
	/* Malformed message: no recipient; bad address. */
	req = request("Submit", "<m:Submit xmlns:m=\"urn:wsemail:2026\">"
	    "<m:Message><m:From>alice@a.test</m:From></m:Message></m:Submit>",
	    "alice@a.test", alice_key, -1);
	assert_string_equal(wse_fault_subcode(call(req, NULL, 0, NULL)),
	    "InvalidMessage");
	wse_buf_free(&req);
	req = request("Submit", "<m:Submit xmlns:m=\"urn:wsemail:2026\">"
	    "<m:Message><m:From>alice@a.test</m:From><m:To>bob at b</m:To>"
	    "</m:Message></m:Submit>", "alice@a.test", alice_key, -1);
	assert_string_equal(wse_fault_subcode(call(req, NULL, 0, NULL)),
	    "InvalidMessage");
	wse_buf_free(&req);
	/* Too large to be fetched again later: refused at once. */
	{
		size_t n = wsed_max_submit(&S) + 10;
		char *big = malloc(n + 300), *p;

		p = big + snprintf(big, 300, "<m:Submit xmlns:m=\"urn:wsemail:"
		    "2026\"><m:Message><m:From>alice@a.test</m:From><m:To>"
		    "bob@b.test</m:To><m:Text>");
		memset(p, 'x', n);
		strcpy(p + n, "</m:Text></m:Message></m:Submit>");
		req = request("Submit", big, "alice@a.test", alice_key, -1);
		assert_wse_status(call(req, NULL, 0, NULL), WSE_ERR_TOO_LARGE);
		wse_buf_free(&req);
		free(big);
	}
	/* Unknown operation. */
	req = request("Frobnicate", "<m:X xmlns:m=\"urn:wsemail:2026\"/>",
	    "alice@a.test", alice_key, -1);
	assert_wse_status(call(req, NULL, 0, NULL), WSE_ERR_UNSUPPORTED);
	wse_buf_free(&req);
	assert_int_equal(queue_items(), before);
}

#define DELIVER(origin, from, rcpt, id) "<m:Deliver xmlns:m=\"urn:wsemail:2026\">" \
	"<m:Origin>" origin "</m:Origin><m:OriginId>urn:uuid:" id \
	"</m:OriginId><m:Rcpt>" rcpt "</m:Rcpt><m:Message><m:From>" from \
	"</m:From><m:To>" rcpt "</m:To><m:Subject>d</m:Subject>" \
	"<m:Text>t</m:Text></m:Message></m:Deliver>"

static void
test_deliver_checks(void **state)
{
	wse_cert *bpeer[] = { P.dom[1].svc, P.dom[1].ca };
	wse_cert *apeer[] = { P.dom[0].svc, P.dom[0].ca };
	wse_buf *req;
	uint64_t total0, total, unread;

	(void)state;
	assert_wse_ok(wse_store_count(S.store, "alice@a.test", &total0,
	    &unread));
	/* b.test's server delivering for b.test, over mutual TLS: stored. */
	req = request("Deliver", DELIVER("b.test", "bob@b.test", "alice@a.test",
	    "11111111-1111-4111-8111-111111111111"), NULL, NULL, 1);
	assert_wse_status(call(req, NULL, 0, NULL), WSE_ERR_NOT_AUTHORIZED);
	assert_wse_status(call(req, apeer, 2, NULL), WSE_ERR_DOMAIN_MISMATCH);
	assert_wse_ok(wse_store_count(S.store, "alice@a.test", &total, &unread));
	assert_int_equal(total, total0);
	assert_wse_ok(call(req, bpeer, 2, NULL));
	assert_wse_ok(wse_store_count(S.store, "alice@a.test", &total, &unread));
	assert_int_equal(total, total0 + 1);
	wse_buf_free(&req);
	/* The same delivery again (a retry after a lost answer), signed
	 * anew: answered as accepted, stored once. */
	req = request("Deliver", DELIVER("b.test", "bob@b.test", "alice@a.test",
	    "11111111-1111-4111-8111-111111111111"), NULL, NULL, 1);
	assert_wse_ok(call(req, bpeer, 2, NULL));
	assert_wse_ok(wse_store_count(S.store, "alice@a.test", &total, &unread));
	assert_int_equal(total, total0 + 1);
	wse_buf_free(&req);
	/* Claiming a.test while signed by b.test. */
	req = request("Deliver", DELIVER("a.test", "carol@a.test",
	    "alice@a.test", "22222222-2222-4222-8222-222222222222"), NULL, NULL,
	    1);
	assert_wse_status(call(req, bpeer, 2, NULL), WSE_ERR_DOMAIN_MISMATCH);
	wse_buf_free(&req);
	/* From of another domain than the origin. */
	req = request("Deliver", DELIVER("b.test", "carol@a.test",
	    "alice@a.test", "33333333-3333-4333-8333-333333333333"), NULL, NULL,
	    1);
	assert_wse_status(call(req, bpeer, 2, NULL), WSE_ERR_DOMAIN_MISMATCH);
	wse_buf_free(&req);
	/* A recipient of another domain, and no such user. */
	req = request("Deliver", DELIVER("b.test", "bob@b.test", "zed@c.test",
	    "44444444-4444-4444-8444-444444444444"), NULL, NULL, 1);
	assert_wse_status(call(req, bpeer, 2, NULL), WSE_ERR_NOT_AUTHORIZED);
	wse_buf_free(&req);
	req = request("Deliver", DELIVER("b.test", "bob@b.test", "zed@a.test",
	    "55555555-5555-4555-8555-555555555555"), NULL, NULL, 1);
	assert_wse_status(call(req, bpeer, 2, NULL), WSE_ERR_NO_SUCH_USER);
	wse_buf_free(&req);
	assert_wse_ok(wse_store_count(S.store, "alice@a.test", &total, &unread));
	assert_int_equal(total, total0 + 1);
}

/*
 * A DeliverBatch signed by b.test's server (lib/batch.h), built here by
 * hand: the digests of items[0..nd-1] in the Body, items[0..n-1] in the
 * BatchItems header; each item a bare m:Deliver or a complete request
 * envelope (signed by svc's server or not at all).
 */
static wse_buf *
batch_of(wse_buf *const *items, size_t n, size_t nd, const char *origin)
{
	wse_buf *body = wse_buf_new(1 << 24), *dig = wse_buf_new(1 << 16),
	    *b64 = wse_buf_new(1 << 24), *req = wse_buf_new(1 << 24);
	wse_envelope *env = NULL;
	wse_signer *s = NULL;
	xmlNodePtr block;
	xmlNsPtr ns;
	uint8_t d[WSE_SHA256_LEN];
	size_t i;

	assert_true(body && dig && b64 && req);
	for (i = 0; i < nd; i++) {
		assert_wse_ok(wse_sha256(wse_buf_data(items[i]),
		    wse_buf_len(items[i]), d));
		assert_wse_ok(wse_buf_put(dig, d, sizeof(d)));
	}
	assert_wse_ok(wse_buf_printf(body, "<m:DeliverBatch xmlns:m=\""
	    "urn:wsemail:2026\"><m:Origin>%s</m:Origin><m:Digests>", origin));
	assert_wse_ok(wse_base64_encode(wse_buf_data(dig), wse_buf_len(dig),
	    body));
	assert_wse_ok(wse_buf_puts(body, "</m:Digests></m:DeliverBatch>"));
	assert_wse_ok(wse_env_new(S.url, "urn:wsemail:2026/DeliverBatch",
	    &env));
	assert_wse_ok(wse_env_add_body_xml(env, wse_buf_str(body),
	    wse_buf_len(body), &S.lim));
	block = xmlNewChild(wse_env_header(env), NULL, BAD_CAST "BatchItems",
	    NULL);
	assert_non_null(block);
	ns = xmlNewNs(block, BAD_CAST "urn:wsemail:2026", BAD_CAST "m");
	xmlSetNs(block, ns);
	for (i = 0; i < n; i++) {
		wse_buf_reset(b64);
		assert_wse_ok(wse_base64_encode(wse_buf_data(items[i]),
		    wse_buf_len(items[i]), b64));
		assert_non_null(xmlNewTextChild(block, ns, BAD_CAST "Item",
		    BAD_CAST wse_buf_str(b64)));
	}
	assert_wse_ok(wse_signer_new_cert(P.dom[1].svc_key,
	    (wse_cert *[]){ P.dom[1].svc, P.dom[1].ca }, 2, &s));
	assert_wse_ok(wse_wss_sign(env, s, P.now + skew, 300));
	assert_wse_ok(wse_env_serialize(env, req));
	wse_signer_free(&s);
	wse_env_free(&env);
	wse_buf_free(&body);
	wse_buf_free(&dig);
	wse_buf_free(&b64);
	return req;
}

static wse_buf *
batch(wse_buf *const *items, size_t n, const char *origin)
{
	return batch_of(items, n, n, origin);
}

/* A bare m:Deliver item (body is the element's text). */
static wse_buf *
bare(const char *body)
{
	wse_buf *b = wse_buf_new(1 << 20);

	assert_non_null(b);
	assert_wse_ok(wse_buf_puts(b, body));
	return b;
}

static uint64_t
stored(const char *box)
{
	uint64_t total, unread;

	assert_wse_ok(wse_store_count(S.store, box, &total, &unread));
	return total;
}

static wse_status
newest_one(void *arg, const wse_msg_meta *m)
{
	int64_t *id = arg;

	if (*id == 0)
		*id = m->id;
	return WSE_OK;
}

/* The original kept for box's newest message. */
static wse_buf *
newest_original(const char *box)
{
	wse_buf *b = wse_buf_new(1 << 24);
	wse_msg_meta meta;
	int64_t id = 0;

	assert_non_null(b);
	assert_wse_ok(wse_store_list(S.store, box, 0, 1, newest_one, &id));
	assert_true(id > 0);
	assert_wse_ok(wse_store_fetch(S.store, box, id, &meta, b));
	return b;
}

/* call(), with what the server logged meanwhile (its stderr) in log. */
static wse_status
call_logged(const wse_buf *req, wse_cert *const *peer, size_t npeer,
    char *log, size_t size)
{
	testutil_stderr c;
	wse_status st;

	testutil_stderr_begin(&c);
	st = call(req, peer, npeer, NULL);
	testutil_stderr_end(&c, log, size);
	return st;
}

#define M_OPEN "<m:Deliver xmlns:m=\"urn:wsemail:2026\">"
#define M_ID(k) "<m:OriginId>urn:uuid:77777777-7777-4777-8777-77777777777" \
	k "</m:OriginId>"
#define M_MSG "<m:Message><m:From>bob@b.test</m:From><m:To>alice@a.test" \
	"</m:To><m:Subject>d</m:Subject><m:Text>t</m:Text></m:Message>"

/*
 * Deliver requests signed by b.test's server over mutual TLS, each
 * malformed in one way: each gets its own Fault and nothing is stored.
 */
static void
test_deliver_malformed(void **state)
{
	wse_cert *bpeer[] = { P.dom[1].svc, P.dom[1].ca };
	static const struct {
		const char *op, *body, *why;
		wse_status want;
	} c[] = {
		{ "Deliver", M_OPEN M_ID("1") "<m:Rcpt>alice@a.test</m:Rcpt>"
		  M_MSG "</m:Deliver>", "Deliver needs an Origin",
		  WSE_ERR_PARSE },
		{ "Deliver", M_OPEN "<m:Origin>b.test</m:Origin>"
		  "<m:Rcpt>alice@a.test</m:Rcpt>" M_MSG "</m:Deliver>",
		  "needs OriginId", WSE_ERR_PARSE },
		{ "Deliver", M_OPEN "<m:Origin>b.test</m:Origin><m:OriginId>"
		  "7</m:OriginId><m:Rcpt>alice@a.test</m:Rcpt>" M_MSG
		  "</m:Deliver>", "needs OriginId", WSE_ERR_PARSE },
		{ "Deliver", M_OPEN "<m:Origin>b.test</m:Origin>" M_ID("2")
		  "<m:Rcpt>alice@a.test</m:Rcpt></m:Deliver>",
		  "needs OriginId and Message", WSE_ERR_PARSE },
		{ "Deliver", M_OPEN "<m:Origin>b.test</m:Origin>" M_ID("3")
		  M_MSG "</m:Deliver>", "without Rcpt", WSE_ERR_PARSE },
		{ "Deliver", M_OPEN "<m:Origin>b.test</m:Origin>" M_ID("4")
		  "<m:Rcpt>alice@a.test</m:Rcpt><m:Rcpt>not an address"
		  "</m:Rcpt>" M_MSG "</m:Deliver>", "bad Rcpt",
		  WSE_ERR_PARSE },
		{ "Deliver", NULL, "too many Rcpt", WSE_ERR_TOO_LARGE },
		{ "DeliverBatch", "<m:DeliverBatch xmlns:m=\"urn:wsemail:2026\">"
		  "<m:Item>AAAA</m:Item></m:DeliverBatch>",
		  "DeliverBatch needs an Origin", WSE_ERR_PARSE },
		{ "NoSuchOperation", "<m:NoSuchOperation xmlns:m=\""
		  "urn:wsemail:2026\"/>", "unknown operation NoSuchOperation",
		  WSE_ERR_UNSUPPORTED },
	};
	uint64_t alice0 = stored("alice@a.test");
	wse_buf *many = wse_buf_new(1 << 20), *req;
	char log[2048];
	wse_status st;
	size_t i, k;

	(void)state;
	assert_non_null(many);
	assert_wse_ok(wse_buf_puts(many, M_OPEN "<m:Origin>b.test</m:Origin>"
	    M_ID("5")));
	for (k = 0; k <= WSE_MSG_MAX_RCPTS; k++)
		assert_wse_ok(wse_buf_puts(many,
		    "<m:Rcpt>alice@a.test</m:Rcpt>"));
	assert_wse_ok(wse_buf_puts(many, M_MSG "</m:Deliver>"));
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		req = request(c[i].op, c[i].body != NULL ? c[i].body :
		    wse_buf_str(many), NULL, NULL, 1);
		st = call_logged(req, bpeer, 2, log, sizeof(log));
		/* The Fault names only the class (InvalidMessage is read
		 * back as WSE_ERR_PARSE); the server's log says why. */
		if (st != c[i].want || strstr(log, c[i].why) == NULL)
			fail_msg("case %zu (%s): got %s, log \"%s\"", i,
			    c[i].why, wse_status_name(st), log);
		wse_buf_free(&req);
	}
	assert_int_equal(stored("alice@a.test"), alice0);
	wse_buf_free(&many);
}

/* Verify a kept batch original as the recipient's client does: the
 * head signed by b.test's server, and the item (at index) the one whose
 * digest it signed; and that any change is caught. */
static void
check_batch_original(const wse_buf *orig, size_t index)
{
	wse_buf *head = wse_buf_new(1 << 24), *item = wse_buf_new(1 << 24);
	wse_envelope *env = NULL;
	wse_replay *r = NULL;
	wse_verified v;
	wse_verify_opts o;
	xmlNodePtr batch;
	size_t ix;
	char *p;

	assert_true(head && item);
	memset(&v, 0, sizeof(v));
	assert_wse_ok(wse_batch_original_split(wse_buf_data(orig),
	    wse_buf_len(orig), &S.lim, head, &ix, item));
	assert_int_equal(ix, index);
	assert_wse_ok(wse_env_parse(wse_buf_data(head), wse_buf_len(head),
	    &S.lim, &env));
	assert_wse_ok(wse_replay_memory_new(16, &r));
	memset(&o, 0, sizeof(o));
	o.profile = WSE_PROFILE_CERT;
	o.limits = &S.lim;
	o.replay = r;
	o.now = P.now + skew;
	o.trust = P.trust;
	o.purpose = WSE_PURPOSE_SERVICE;
	o.expected_domain = "b.test";
	assert_wse_ok(wse_wss_verify(env, &o, &v));
	assert_string_equal(v.action_s, "urn:wsemail:2026/DeliverBatch");
	assert_wse_ok(wse_xml_only_child(v.body, WSE_NS_WSE, "DeliverBatch",
	    &batch));
	assert_wse_ok(wse_batch_item_check(batch, ix, wse_buf_data(item),
	    wse_buf_len(item)));
	/* Another position, one past the last, a changed item. */
	assert_int_equal(wse_batch_item_check(batch, ix - 1,
	    wse_buf_data(item), wse_buf_len(item)), WSE_ERR_BAD_SIGNATURE);
	assert_int_equal(wse_batch_item_check(batch, ix + 1,
	    wse_buf_data(item), wse_buf_len(item)), WSE_ERR_INVALID);
	p = strstr((char *)wse_buf_data(item), "alice@a.test");
	assert_non_null(p);
	p[0] = 'A';
	assert_int_equal(wse_batch_item_check(batch, ix, wse_buf_data(item),
	    wse_buf_len(item)), WSE_ERR_BAD_SIGNATURE);
	wse_err_clear();
	/* Not a batch original; malformed ones. */
	wse_buf_reset(head);
	wse_buf_reset(item);
	assert_int_equal(wse_batch_original_split((const uint8_t *)
	    "<S:Envelope xmlns:S=\"x\"/>", 25, &S.lim, head, &ix, item),
	    WSE_ERR_NOT_FOUND);
	{
		static const char *const mal[] = {
		    "<m:BatchOriginal xmlns:m=\"urn:wsemail:2026\"><m:Index>1"
		    "</m:Index><m:Head>AAAA</m:Head></m:BatchOriginal>",
		    "<m:BatchOriginal xmlns:m=\"urn:wsemail:2026\"><m:Index>64"
		    "</m:Index><m:Head>AAAA</m:Head><m:Item>AAAA</m:Item>"
		    "</m:BatchOriginal>",
		    "<m:BatchOriginal xmlns:m=\"urn:wsemail:2026\"><m:Index>-1"
		    "</m:Index><m:Head>AAAA</m:Head><m:Item>AAAA</m:Item>"
		    "</m:BatchOriginal>",
		    "<m:BatchOriginal xmlns:m=\"urn:wsemail:2026\"><m:Index>1"
		    "</m:Index><m:Head>%%%%</m:Head><m:Item>AAAA</m:Item>"
		    "</m:BatchOriginal>",
		    "<m:BatchOriginal xmlns:m=\"urn:wsemail:2026\"><m:Index>1"
		    "</m:Index><m:Index>2</m:Index><m:Head>AAAA</m:Head>"
		    "<m:Item>AAAA</m:Item></m:BatchOriginal>",
		    "<m:BatchOriginal xmlns:m=\"urn:wsemail:2026\"><m:Index>1"
		    "</m:Index><m:Head>AAAA</m:Head><m:Item>AAAA",
		};
		size_t i;

		for (i = 0; i < sizeof(mal) / sizeof(mal[0]); i++) {
			wse_buf_reset(head);
			wse_buf_reset(item);
			if (wse_batch_original_split((const uint8_t *)mal[i],
			    strlen(mal[i]), &S.lim, head, &ix, item) == WSE_OK)
				fail_msg("malformed original %zu accepted", i);
			wse_err_clear();
		}
	}
	wse_verified_clear(&v);
	wse_env_free(&env);
	wse_replay_free(&r);
	wse_buf_free(&head);
	wse_buf_free(&item);
}

#define BID(k) "66666666-6666-4666-8666-66666666666" k

/* Several queued messages in one call: each stored or refused alone,
 * the answer naming each outcome in order; the batch signature is
 * checked like a Deliver's. */
static void
test_deliver_batch(void **state)
{
	wse_cert *bpeer[] = { P.dom[1].svc, P.dom[1].ca };
	wse_cert *apeer[] = { P.dom[0].svc, P.dom[0].ca };
	wse_buf *it[9], *req, *body = wse_buf_new(1 << 20), *orig;
	uint64_t alice0 = stored("alice@a.test"), carol0 = stored("carol@a.test");
	const char *r;
	size_t i;

	(void)state;
	assert_non_null(body);
	it[0] = request("Deliver", DELIVER("b.test", "bob@b.test",
	    "alice@a.test", BID("1")), NULL, NULL, 1);
	it[1] = request("Deliver", DELIVER("b.test", "bob@b.test",
	    "zed@a.test", BID("2")), NULL, NULL, 1);		/* no user */
	it[2] = request("Deliver", DELIVER("b.test", "carol@a.test",
	    "alice@a.test", BID("3")), NULL, NULL, 1);		/* From */
	it[3] = request("Deliver", DELIVER("a.test", "carol@a.test",
	    "alice@a.test", BID("4")), NULL, NULL, 1);		/* Origin */
	it[4] = request("ListHeaders", "<m:ListHeaders xmlns:m=\""
	    "urn:wsemail:2026\"/>", NULL, NULL, 1);		/* not Deliver */
	it[5] = request("Deliver", "<m:Deliver xmlns:m=\"urn:wsemail:2026\">"
	    "<m:Origin>b.test</m:Origin><m:OriginId>urn:uuid:" BID("6")
	    "</m:OriginId><m:Rcpt>carol@a.test</m:Rcpt><m:Message><m:From>"
	    "bob@b.test</m:From><m:To>carol@a.test</m:To><m:Instant/>"
	    "<m:Date>2026-11-26T12:00:00Z</m:Date>"
	    "<m:Text>t</m:Text></m:Message></m:Deliver>", NULL, NULL, 1);
	it[6] = request("Deliver", DELIVER("b.test", "bob@b.test",
	    "carol@a.test", BID("7")), NULL, NULL, -2);		/* unsigned */
	it[7] = request("Deliver", DELIVER("b.test", "bob@b.test",
	    "carol@a.test", BID("8")), NULL, NULL, 1);
	it[8] = bare(DELIVER("b.test", "bob@b.test", "alice@a.test",
	    "77777777-7777-4777-8777-777777777771"));	/* a bare item */
	req = batch(it, 9, "b.test");
	/* Mutual TLS with a server of the origin, as for Deliver. */
	assert_wse_status(call(req, NULL, 0, NULL), WSE_ERR_NOT_AUTHORIZED);
	assert_wse_status(call(req, apeer, 2, NULL), WSE_ERR_DOMAIN_MISMATCH);
	assert_int_equal(stored("alice@a.test"), alice0);
	assert_wse_ok(call(req, bpeer, 2, body));
	r = wse_buf_str(body);
	assert_non_null(strstr(r, "DeliverBatchResponse"));
	/* In order: stored, and each refusal with its own subcode. */
	{
		const char *want[] = { "<m:Accepted>alice@a.test</m:Accepted>",
		    "code=\"NoSuchUser\"", "code=\"DomainMismatch\"",
		    "code=\"DomainMismatch\"", "code=\"InvalidMessage\"",
		    "result=\"stored\" sessions=\"0\">carol@a.test<",
		    "code=\"BadSignature\"",
		    "<m:Accepted>carol@a.test</m:Accepted>",
		    "<m:Accepted>alice@a.test</m:Accepted>" };
		const char *at = r;

		for (i = 0; i < 9; i++) {
			at = strstr(at, "<m:Item");
			assert_non_null(at);
			at++;
			assert_true(strstr(at, want[i]) != NULL &&
			    (strstr(at, "<m:Item") == NULL ||
			    strstr(at, want[i]) < strstr(at, "<m:Item")));
		}
	}
	/* carol: the mail item, and the instant one (no session online:
	 * stored as mail flagged instant); alice: a signed and a bare item,
	 * the bare one kept as a batch original. */
	assert_int_equal(stored("alice@a.test"), alice0 + 2);
	assert_int_equal(stored("carol@a.test"), carol0 + 2);
	orig = newest_original("alice@a.test");
	assert_non_null(strstr(wse_buf_str(orig), "<m:BatchOriginal"));
	assert_non_null(strstr(wse_buf_str(orig), "<m:Index>8</m:Index>"));
	assert_null(strstr(wse_buf_str(orig), "BatchItems"));
	check_batch_original(orig, 8);
	wse_buf_free(&orig);
	/* The same batch again: a replay, refused whole. */
	assert_wse_status(call(req, bpeer, 2, NULL), WSE_ERR_REPLAY);
	wse_buf_free(&req);
	/* A new batch with the same items (a retry after a lost answer):
	 * accepted, nothing stored twice. */
	req = batch(it, 9, "b.test");
	assert_wse_ok(call(req, bpeer, 2, NULL));
	assert_int_equal(stored("alice@a.test"), alice0 + 2);
	assert_int_equal(stored("carol@a.test"), carol0 + 2);
	wse_buf_free(&req);
	/* Claiming a.test while signed by b.test. */
	req = batch(it, 1, "a.test");
	assert_wse_status(call(req, bpeer, 2, NULL), WSE_ERR_DOMAIN_MISMATCH);
	wse_buf_free(&req);
	/* No digests; more items than digests, and fewer; an item that is
	 * not base64; no items; too many. */
	req = request("DeliverBatch", "<m:DeliverBatch xmlns:m=\"urn:wsemail:"
	    "2026\"><m:Origin>b.test</m:Origin></m:DeliverBatch>", NULL, NULL,
	    1);
	assert_string_equal(wse_fault_subcode(call(req, bpeer, 2, NULL)),
	    "InvalidMessage");
	wse_buf_free(&req);
	req = batch_of(it, 2, 1, "b.test");
	assert_string_equal(wse_fault_subcode(call(req, bpeer, 2, NULL)),
	    "InvalidMessage");
	wse_buf_free(&req);
	req = batch_of(it, 1, 2, "b.test");
	assert_string_equal(wse_fault_subcode(call(req, bpeer, 2, NULL)),
	    "InvalidMessage");
	wse_buf_free(&req);
	req = batch(&it[8], 1, "b.test");
	{
		char *p = strstr((char *)wse_buf_data(req), "<m:Item>");

		assert_non_null(p);
		p[8] = '%';
	}
	assert_string_equal(wse_fault_subcode(call(req, bpeer, 2, NULL)),
	    "InvalidMessage");
	wse_buf_free(&req);
	req = batch(it, 0, "b.test");
	assert_string_equal(wse_fault_subcode(call(req, bpeer, 2, NULL)),
	    "InvalidMessage");
	wse_buf_free(&req);
	{
		wse_buf *many[WSED_BATCH_MAX + 1];

		for (i = 0; i <= WSED_BATCH_MAX; i++)
			many[i] = it[7];
		req = batch(many, WSED_BATCH_MAX + 1, "b.test");
		assert_string_equal(wse_fault_subcode(call(req, bpeer, 2,
		    NULL)), "InvalidMessage");
		wse_buf_free(&req);
	}
	/* A bare instant item (no session online): stored at once, flagged
	 * instant, as its batch original. */
	{
		wse_buf *im[1], *head = wse_buf_new(1 << 20),
		    *item = wse_buf_new(1 << 20);
		size_t ix = 9;

		assert_true(head && item);
		im[0] = bare("<m:Deliver xmlns:m=\"urn:wsemail:2026\">"
		    "<m:Origin>b.test</m:Origin><m:OriginId>urn:uuid:"
		    "77777777-7777-4777-8777-777777777774</m:OriginId>"
		    "<m:Rcpt>carol@a.test</m:Rcpt><m:Message><m:From>"
		    "bob@b.test</m:From><m:To>carol@a.test</m:To><m:Instant/>"
		    "<m:Date>2026-11-26T12:00:00Z</m:Date><m:Text>bare</m:Text>"
		    "</m:Message></m:Deliver>");
		req = batch(im, 1, "b.test");
		wse_buf_reset(body);
		assert_wse_ok(call(req, bpeer, 2, body));
		assert_non_null(strstr(wse_buf_str(body),
		    "result=\"stored\" sessions=\"0\">carol@a.test<"));
		assert_int_equal(stored("carol@a.test"), carol0 + 3);
		orig = newest_original("carol@a.test");
		assert_wse_ok(wse_batch_original_split(wse_buf_data(orig),
		    wse_buf_len(orig), &S.lim, head, &ix, item));
		assert_int_equal(ix, 0);
		assert_int_equal(wse_buf_len(item), wse_buf_len(im[0]));
		assert_memory_equal(wse_buf_data(item), wse_buf_data(im[0]),
		    wse_buf_len(item));
		wse_buf_free(&orig);
		wse_buf_free(&req);
		wse_buf_free(&im[0]);
		wse_buf_free(&head);
		wse_buf_free(&item);
	}
	/* A tampered digest: the batch signature fails. */
	req = batch(it, 1, "b.test");
	{
		char *p = strstr((char *)wse_buf_data(req), "<m:Digests>");

		assert_non_null(p);
		p[12] = p[12] == 'A' ? 'B' : 'A';
	}
	assert_wse_status(call(req, bpeer, 2, NULL), WSE_ERR_BAD_SIGNATURE);
	wse_buf_free(&req);
	/* A tampered item (the header is not signed; its digest is): that
	 * item alone is refused, the other one stored. */
	{
		wse_buf *two[2];
		char *p;

		two[0] = bare(DELIVER("b.test", "bob@b.test", "alice@a.test",
		    "77777777-7777-4777-8777-777777777772"));
		two[1] = bare(DELIVER("b.test", "bob@b.test", "carol@a.test",
		    "77777777-7777-4777-8777-777777777773"));
		req = batch(two, 2, "b.test");
		p = strstr((char *)wse_buf_data(req), "<m:Item>");
		assert_non_null(p);
		p[20] = p[20] == 'A' ? 'B' : 'A';
		wse_buf_reset(body);
		assert_wse_ok(call(req, bpeer, 2, body));
		r = wse_buf_str(body);
		assert_non_null(strstr(r, "<m:Item><m:Refused code=\""
		    "BadSignature\"/></m:Item><m:Item><m:Accepted>carol@a.test"
		    "</m:Accepted></m:Item>"));
		assert_int_equal(stored("carol@a.test"), carol0 + 4);
		wse_buf_free(&req);
		wse_buf_free(&two[0]);
		wse_buf_free(&two[1]);
	}
	assert_int_equal(stored("alice@a.test"), alice0 + 2);
	for (i = 0; i < 9; i++)
		wse_buf_free(&it[i]);
	wse_buf_free(&body);
}

/* The batch answer body holds one Item, refused with code; the server
 * logged why. */
static void
assert_item_refused(wse_buf *const *it, size_t n, const char *code,
    const char *why)
{
	wse_cert *bpeer[] = { P.dom[1].svc, P.dom[1].ca };
	wse_buf *req = batch(it, n, "b.test"), *body = wse_buf_new(1 << 20);
	testutil_stderr c;
	char log[4096], want[64];

	assert_non_null(body);
	testutil_stderr_begin(&c);
	assert_wse_ok(call(req, bpeer, 2, body));
	testutil_stderr_end(&c, log, sizeof(log));
	(void)snprintf(want, sizeof(want), "<m:Refused code=\"%s\"", code);
	if (strstr(wse_buf_str(body), want) == NULL ||
	    strstr(log, why) == NULL)
		fail_msg("%s: answer \"%s\", log \"%s\"", why,
		    wse_buf_str(body), log);
	wse_buf_free(&body);
	wse_buf_free(&req);
}

/*
 * Requests refused before anything is stored or queued, each with its
 * own Fault and the reason logged: GetAuthParams without a user, a
 * Submit without a message, a batch item addressed to another server,
 * an instant item for several recipients.
 */
static void
test_op_refusals(void **state)
{
	static const struct {
		const char *op, *body, *why;
		int svc;
	} c[] = {
		{ "GetAuthParams", "<m:GetAuthParams xmlns:m=\"urn:wsemail:"
		  "2026\"/>", "GetAuthParams needs a User", -2 },
		{ "GetAuthParams", "<m:GetAuthParams xmlns:m=\"urn:wsemail:"
		  "2026\"><m:User>no address</m:User></m:GetAuthParams>",
		  "GetAuthParams needs a User", -2 },
		{ "Submit", "<m:Submit xmlns:m=\"urn:wsemail:2026\"/>",
		  "Submit needs a Message", -1 },
		{ "Submit", "<m:Submit xmlns:m=\"urn:wsemail:2026\"><m:Message/>"
		  "<m:Message/></m:Submit>", "Submit needs a Message", -1 },
	};
	uint64_t alice0 = stored("alice@a.test"), carol0 = stored("carol@a.test");
	int q0 = queue_items();
	wse_buf *req, *it[1];
	char log[4096], *p;
	wse_status st;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		req = request(c[i].op, c[i].body, "alice@a.test", alice_key,
		    c[i].svc);
		st = call_logged(req, NULL, 0, log, sizeof(log));
		if (strcmp(wse_fault_subcode(st), "InvalidMessage") != 0 ||
		    strstr(log, c[i].why) == NULL)
			fail_msg("case %zu (%s): got %s, log \"%s\"", i,
			    c[i].why, wse_status_name(st), log);
		wse_buf_free(&req);
	}
	/* A batch item signed for another server. */
	it[0] = request("Deliver", DELIVER("b.test", "bob@b.test",
	    "carol@a.test", "99999999-9999-4999-8999-999999999991"), NULL,
	    NULL, 1);
	p = strstr((char *)wse_buf_data(it[0]), "mail.a.test");
	assert_non_null(p);
	p[5] = 'x';
	assert_item_refused(it, 1, "InvalidMessage",
	    "batch item addressed elsewhere");
	wse_buf_free(&it[0]);
	/* An instant item naming two recipients. */
	it[0] = request("Deliver", "<m:Deliver xmlns:m=\"urn:wsemail:2026\">"
	    "<m:Origin>b.test</m:Origin><m:OriginId>urn:uuid:"
	    "99999999-9999-4999-8999-999999999992</m:OriginId>"
	    "<m:Rcpt>carol@a.test</m:Rcpt><m:Rcpt>alice@a.test</m:Rcpt>"
	    "<m:Message><m:From>bob@b.test</m:From><m:To>carol@a.test</m:To>"
	    "<m:Instant/><m:Date>2026-11-26T12:00:00Z</m:Date>"
	    "<m:Text>t</m:Text></m:Message></m:Deliver>", NULL, NULL, 1);
	assert_item_refused(it, 1, "InvalidMessage",
	    "an instant Deliver names its one recipient");
	wse_buf_free(&it[0]);
	assert_int_equal(queue_items(), q0);
	assert_int_equal(stored("alice@a.test"), alice0);
	assert_int_equal(stored("carol@a.test"), carol0);
}

/* Password guessing is slowed down per account and per address: past
 * the free failures the account is blocked (TempFail, even for the right
 * password), with a growing wait, and only for a while. */
static void
test_guessing_guard(void **state)
{
	static const uint8_t wrong[WSE_DERIVED_KEY_LEN] = { 0x66 };
	const char *list = "<m:ListHeaders xmlns:m=\"urn:wsemail:2026\"/>";
	wse_buf *req;
	int i;

	(void)state;
	for (i = 0; i < 5; i++) {
		req = request("ListHeaders", list, "carol@a.test", wrong, -1);
		assert_wse_status(call(req, NULL, 0, NULL),
		    WSE_ERR_NOT_AUTHORIZED);
		wse_buf_free(&req);
	}
	/* the sixth failure blocks carol for 1 s ... */
	req = request("ListHeaders", list, "carol@a.test", wrong, -1);
	assert_wse_status(call(req, NULL, 0, NULL), WSE_ERR_NOT_AUTHORIZED);
	wse_buf_free(&req);
	/* ... even with the right key, answered before any MAC */
	req = request("ListHeaders", list, "carol@a.test", alice_key, -1);
	assert_wse_status(call(req, NULL, 0, NULL), WSE_ERR_TEMPFAIL);
	wse_buf_free(&req);
	/* alice is not affected */
	req = request("ListHeaders", list, "alice@a.test", alice_key, -1);
	assert_wse_ok(call(req, NULL, 0, NULL));
	wse_buf_free(&req);
	/* after the wait carol gets in, and her count is cleared */
	skew += 2;
	req = request("ListHeaders", list, "carol@a.test", alice_key, -1);
	assert_wse_ok(call(req, NULL, 0, NULL));
	wse_buf_free(&req);
	req = request("ListHeaders", list, "carol@a.test", wrong, -1);
	assert_wse_status(call(req, NULL, 0, NULL), WSE_ERR_NOT_AUTHORIZED);
	wse_buf_free(&req);
	req = request("ListHeaders", list, "carol@a.test", alice_key, -1);
	assert_wse_ok(call(req, NULL, 0, NULL));
	wse_buf_free(&req);
	wse_err_clear();
}

/* The guard's table on its own: addresses (the port does not count),
 * the growing wait and its cap, forgetting, and a table that fills up
 * without giving up the blocks in it. */
static void
test_guard_table(void **state)
{
	struct wsed_guard *g = NULL;
	const int64_t t = 1000000;
	char user[64], addr[64];
	int i;

	(void)state;
	/* No guard: nothing is ever refused. */
	wsed_guard_fail(NULL, "x@a.test", "192.0.2.1:1", t);
	wsed_guard_ok(NULL, "x@a.test", "192.0.2.1:1", t);
	assert_wse_ok(wsed_guard_check(NULL, "x@a.test", "192.0.2.1:1", t));

	assert_wse_ok(wsed_guard_new(&g));
	/* 20 failures from one address, each naming another account and
	 * coming from another port, are free; the 21st blocks the address
	 * (whatever the port) but not its neighbour. */
	for (i = 0; i < 21; i++) {
		snprintf(user, sizeof(user), "u%d@a.test", i);
		snprintf(addr, sizeof(addr), "192.0.2.1:%d", 1000 + i);
		assert_wse_ok(wsed_guard_check(g, user, addr, t));
		wsed_guard_fail(g, user, addr, t);
	}
	assert_wse_status(wsed_guard_check(g, "new@a.test", "192.0.2.1:9",
	    t), WSE_ERR_TEMPFAIL);
	wse_err_clear();
	assert_wse_status(wsed_guard_check(g, NULL, "192.0.2.1:9", t),
	    WSE_ERR_TEMPFAIL);
	wse_err_clear();
	assert_wse_ok(wsed_guard_check(g, "new@a.test", "192.0.2.11:9", t));
	assert_wse_ok(wsed_guard_check(g, "new@a.test", NULL, t));
	assert_wse_ok(wsed_guard_check(g, "new@a.test", "192.0.2.1:9",
	    t + 1));
	/* The same for IPv6. */
	for (i = 0; i < 21; i++)
		wsed_guard_fail(g, NULL, "[2001:db8::1]:443", t);
	assert_wse_status(wsed_guard_check(g, NULL, "[2001:db8::1]:80", t),
	    WSE_ERR_TEMPFAIL);
	wse_err_clear();
	assert_wse_ok(wsed_guard_check(g, NULL, "[2001:db8::2]:443", t));

	/* An account: 1, 2, 4, ... 256 s, then never more than 300 s. */
	for (i = 0; i < 5; i++)
		wsed_guard_fail(g, "dave@a.test", NULL, t);
	assert_wse_ok(wsed_guard_check(g, "dave@a.test", NULL, t));
	for (i = 0; i < 9; i++) {
		wsed_guard_fail(g, "dave@a.test", NULL, t);
		assert_wse_status(wsed_guard_check(g, "dave@a.test", NULL,
		    t + (1 << i) - 1), WSE_ERR_TEMPFAIL);
		wse_err_clear();
		assert_wse_ok(wsed_guard_check(g, "dave@a.test", NULL,
		    t + (1 << i)));
	}
	for (i = 0; i < 40; i++)
		wsed_guard_fail(g, "dave@a.test", NULL, t);
	assert_wse_status(wsed_guard_check(g, "dave@a.test", NULL, t + 299),
	    WSE_ERR_TEMPFAIL);
	assert_non_null(strstr(wse_err_last(), "retry in 1 s"));
	wse_err_clear();
	assert_wse_ok(wsed_guard_check(g, "dave@a.test", NULL, t + 300));
	/* A success clears it at once. */
	wsed_guard_fail(g, "dave@a.test", NULL, t + 300);
	assert_wse_status(wsed_guard_check(g, "dave@a.test", NULL, t + 301),
	    WSE_ERR_TEMPFAIL);
	wse_err_clear();
	wsed_guard_ok(g, "dave@a.test", NULL, t + 301);
	assert_wse_ok(wsed_guard_check(g, "dave@a.test", NULL, t + 301));

	/* An hour without failures forgets them: 5 then, 5 now are all
	 * free; the next one is not. */
	for (i = 0; i < 5; i++)
		wsed_guard_fail(g, "erin@a.test", NULL, t);
	for (i = 0; i < 5; i++)
		wsed_guard_fail(g, "erin@a.test", NULL, t + 3601);
	assert_wse_ok(wsed_guard_check(g, "erin@a.test", NULL, t + 3601));
	wsed_guard_fail(g, "erin@a.test", NULL, t + 3601);
	assert_wse_status(wsed_guard_check(g, "erin@a.test", NULL, t + 3601),
	    WSE_ERR_TEMPFAIL);
	wse_err_clear();

	/* Blocked, frank stays blocked while one failure for each of many
	 * more names than the table holds goes by: the names nobody is
	 * blocked for give way first. */
	for (i = 0; i < 6; i++)
		wsed_guard_fail(g, "frank@a.test", NULL, t + 4000);
	for (i = 0; i < 20000; i++) {
		snprintf(user, sizeof(user), "spray%d@a.test", i);
		wsed_guard_fail(g, user, NULL, t + 4000);
	}
	assert_wse_status(wsed_guard_check(g, "frank@a.test", NULL, t + 4000),
	    WSE_ERR_TEMPFAIL);
	wse_err_clear();
	assert_wse_ok(wsed_guard_check(g, "frank@a.test", NULL, t + 4001));

	wsed_guard_free(&g);
	assert_null(g);
	wsed_guard_free(&g);
	wsed_guard_free(NULL);
}

/* ---- the HTTP side: the transport, serve.c's workers, ops.c ---- */

static struct wsed_serve *http_sv;

static void
on_http(void *arg, wse_http_req *req)
{
	(void)arg;
	wsed_serve_post(http_sv, req);
}

static void *
http_loop(void *arg)
{
	(void)wse_http_server_run(arg);
	return NULL;
}

/* POST body over HTTPS; the answer must be a.test's: returns its Fault
 * status (WSE_OK for a normal answer), the HTTP status in *http_r. */
static wse_status
http_call(wse_http_client *c, const char *url, const char *body,
    size_t len, long *http_r)
{
	wse_buf *resp = wse_buf_new(1 << 20);
	wse_status st;

	assert_wse_ok(wse_http_post(c, url, "127.0.0.1",
	    "application/soap+xml", body, len, resp, http_r));
	st = testserver_answer(&T, &P, P.now + skew, resp, (int)*http_r, NULL);
	wse_buf_free(&resp);
	return st;
}

/* What is not a request gets a signed Fault over HTTP and stores
 * nothing; a body over the limit gets 413 before any worker sees it;
 * the server goes on serving. */
static void
test_http_refusals(void **state)
{
	wse_http_server_opts ho;
	wse_http_client_opts co;
	wse_http_server *h = NULL;
	wse_http_client *c = NULL;
	struct wsed_serve *sv = NULL;
	pthread_t th;
	char chain[4096], key[4096], root[4096], url[128], other[128];
	wse_buf *req, *resp = wse_buf_new(1 << 20);
	const char *s;
	char *big;
	size_t n;
	long http = 0;
	int before = queue_items();

	(void)state;
	/* Worker counts out of range. */
	assert_int_equal(wsed_serve_start(&S, 0, &sv), -1);
	assert_null(sv);
	assert_int_equal(wsed_serve_start(&S, WSED_THREADS_MAX + 1, &sv), -1);
	assert_null(sv);

	snprintf(chain, sizeof(chain), "%s/a.test/chain.pem", P.dir);
	snprintf(key, sizeof(key), "%s/a.test/service-key.pem", P.dir);
	snprintf(root, sizeof(root), "%s/root/cert.pem", P.dir);
	memset(&ho, 0, sizeof(ho));
	ho.listen = "127.0.0.1:0";
	ho.cert_chain = chain;
	ho.key = key;
	ho.client_roots = root;
	ho.client_cert = WSE_CLIENT_CERT_OPTIONAL;
	ho.max_body = S.lim.max_message_bytes;
	ho.timeout_s = 5;
	ho.max_connections = 16;
	assert_wse_ok(wse_http_server_new(&ho, on_http, NULL, &h));
	assert_int_equal(wsed_serve_start(&S, 2, &http_sv), 0);
	assert_int_equal(pthread_create(&th, NULL, http_loop, h), 0);
	snprintf(url, sizeof(url), "https://mail.a.test:%u/wsemail",
	    (unsigned)wse_http_server_port(h));
	memset(&co, 0, sizeof(co));
	co.roots = root;
	co.connect_timeout_ms = 5000;
	co.timeout_ms = 10000;
	co.max_response = 1 << 20;
	assert_wse_ok(wse_http_client_new(&co, &c));

	/* Not XML, empty, XML but no envelope, an envelope without a
	 * Body. */
	s = "this is not xml";
	assert_string_equal(wse_fault_subcode(http_call(c, url, s, strlen(s),
	    &http)), "InvalidMessage");
	assert_int_equal(http, 500);
	assert_string_equal(wse_fault_subcode(http_call(c, url, "", 0,
	    &http)), "InvalidMessage");
	s = "<x/>";
	assert_string_equal(wse_fault_subcode(http_call(c, url, s, strlen(s),
	    &http)), "InvalidMessage");
	s = "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"/>";
	assert_string_equal(wse_fault_subcode(http_call(c, url, s, strlen(s),
	    &http)), "InvalidMessage");
	/* Over max_message_bytes: 413 from the transport, no worker. */
	n = S.lim.max_message_bytes + 1;
	assert_non_null(big = malloc(n));
	memset(big, ' ', n);
	assert_wse_ok(wse_http_post(c, url, "127.0.0.1",
	    "application/soap+xml", big, n, resp, &http));
	assert_int_equal(http, 413);
	free(big);
	assert_int_equal(queue_items(), before);

	/* The SOAP 1.2 binding: another media type is 415 and another
	 * path 404, before any worker; parameters are allowed. */
	req = request("Submit", SUBMIT("alice@a.test", "wrong type"),
	    "alice@a.test", alice_key, -1);
	assert_wse_ok(wse_http_post(c, url, "127.0.0.1", "text/xml",
	    wse_buf_data(req), wse_buf_len(req), resp, &http));
	assert_int_equal(http, 415);
	wse_buf_reset(resp);
	assert_wse_ok(wse_http_post(c, url, "127.0.0.1",
	    "application/soap+xmlx", wse_buf_data(req), wse_buf_len(req),
	    resp, &http));
	assert_int_equal(http, 415);
	wse_buf_reset(resp);
	snprintf(other, sizeof(other), "https://mail.a.test:%u/other",
	    (unsigned)wse_http_server_port(h));
	assert_wse_ok(wse_http_post(c, other, "127.0.0.1",
	    "application/soap+xml", wse_buf_data(req), wse_buf_len(req), resp,
	    &http));
	assert_int_equal(http, 404);
	wse_buf_reset(resp);
	assert_int_equal(queue_items(), before);
	wse_buf_free(&req);

	/* A good Submit still goes through, with parameters. */
	req = request("Submit", SUBMIT("alice@a.test", "with charset"),
	    "alice@a.test", alice_key, -1);
	assert_wse_ok(wse_http_post(c, url, "127.0.0.1",
	    "Application/SOAP+XML; charset=utf-8", wse_buf_data(req),
	    wse_buf_len(req), resp, &http));
	assert_int_equal(http, 200);
	wse_buf_reset(resp);
	assert_int_equal(queue_items(), before + 1);
	wse_buf_free(&req);
	before++;

	/* A good Submit still goes through. */
	req = request("Submit", SUBMIT("alice@a.test", "over http"),
	    "alice@a.test", alice_key, -1);
	assert_wse_ok(http_call(c, url, wse_buf_str(req), wse_buf_len(req),
	    &http));
	assert_int_equal(http, 200);
	assert_int_equal(queue_items(), before + 1);
	wse_buf_free(&req);

	wse_http_client_free(&c);
	wse_http_server_stop(h);
	pthread_join(th, NULL);
	wsed_serve_stop(&http_sv);
	assert_null(http_sv);
	wse_http_server_free(&h);
	wse_buf_free(&resp);
	wse_err_clear();
}

/* alice reads her message; carol cannot read it by its id. */
static void
test_mailbox_isolation(void **state)
{
	wse_buf *req, *body = wse_buf_new(1 << 20);
	char payload[200];
	long long id;
	const char *p;

	(void)state;
	req = request("ListHeaders", "<m:ListHeaders xmlns:m=\"urn:wsemail:2026\"/>",
	    "alice@a.test", alice_key, -1);
	assert_wse_ok(call(req, NULL, 0, body));
	wse_buf_free(&req);
	p = strstr(wse_buf_str(body), "id=\"");
	assert_non_null(p);
	id = strtoll(p + 4, NULL, 10);
	snprintf(payload, sizeof(payload), "<m:FetchMessage xmlns:m=\""
	    "urn:wsemail:2026\"><m:Id>%lld</m:Id></m:FetchMessage>", id);
	req = request("FetchMessage", payload, "carol@a.test", alice_key, -1);
	assert_wse_status(call(req, NULL, 0, NULL), WSE_ERR_NOT_FOUND);
	wse_buf_free(&req);
	wse_buf_reset(body);
	req = request("FetchMessage", payload, "alice@a.test", alice_key, -1);
	assert_wse_ok(call(req, NULL, 0, body));
	assert_non_null(strstr(wse_buf_str(body), "<m:Original>"));
	wse_buf_free(&req);
	wse_buf_free(&body);
}

/* Deliver message k (from bob@b.test, OriginId ...k) to rcpt. */
static void
deliver_to(const char *rcpt, int k)
{
	wse_cert *bpeer[] = { P.dom[1].svc, P.dom[1].ca };
	wse_buf *req;
	char body[1024];

	(void)snprintf(body, sizeof(body), "<m:Deliver xmlns:m=\""
	    "urn:wsemail:2026\"><m:Origin>b.test</m:Origin><m:OriginId>"
	    "urn:uuid:88888888-8888-4888-8888-8888888888%02d</m:OriginId>"
	    "<m:Rcpt>%s</m:Rcpt><m:Message><m:From>bob@b.test</m:From>"
	    "<m:To>%s</m:To><m:Subject>m%d</m:Subject><m:Text>t</m:Text>"
	    "</m:Message></m:Deliver>", k, rcpt, rcpt, k);
	req = request("Deliver", body, NULL, NULL, 1);
	assert_wse_ok(call(req, bpeer, 2, NULL));
	wse_buf_free(&req);
}

/* A mailbox operation of user's (signed with alice_key, as every test
 * user's is) with payload; its status, the answer's body in body_r. */
static wse_status
mbox_op(const char *op, const char *user, const char *payload,
    wse_buf *body_r)
{
	wse_buf *req = request(op, payload, user, alice_key, -1);
	wse_status st;

	if (body_r != NULL)
		wse_buf_reset(body_r);
	st = call(req, NULL, 0, body_r);
	wse_buf_free(&req);
	return st;
}

/* The ids a ListHeadersResponse lists, in order, into ids; how many. */
static size_t
listed_ids(const wse_buf *body, long long *ids, size_t max)
{
	const char *p = wse_buf_str(body);
	size_t n = 0;

	while ((p = strstr(p, "<m:Header id=\"")) != NULL) {
		assert_true(n < max);
		ids[n++] = strtoll(p + 14, NULL, 10);
		p += 14;
	}
	return n;
}

#define LIST(x) "<m:ListHeaders xmlns:m=\"urn:wsemail:2026\">" x \
	"</m:ListHeaders>"
#define BYID(op, x) "<m:" op " xmlns:m=\"urn:wsemail:2026\">" x "</m:" op ">"

/*
 * The client's mailbox operations: ListHeaders pages through the whole
 * mailbox, newest first, without a message twice or left out; MarkRead
 * and DeleteMessage act only on the caller's own messages; every
 * malformed or out-of-range argument is refused with InvalidMessage and
 * changes nothing.
 */
static void
test_mailbox_ops(void **state)
{
	static const char *const bad_list[] = {
		LIST("<m:Limit>0</m:Limit>"), LIST("<m:Limit>501</m:Limit>"),
		LIST("<m:Limit>-1</m:Limit>"), LIST("<m:Limit>2x</m:Limit>"),
		LIST("<m:Limit></m:Limit>"), LIST("<m:Offset>-1</m:Offset>"),
		LIST("<m:Offset>+1</m:Offset>"),
		LIST("<m:Offset>1099511627777</m:Offset>"),
		LIST("<m:Limit><m:X/></m:Limit>"),
		LIST("<m:Offset>0</m:Offset><m:Offset>5</m:Offset>"),
		LIST("<m:Limit>2</m:Limit><m:Limit>3</m:Limit>"),
		"<m:ListHeader xmlns:m=\"urn:wsemail:2026\"/>",
	};
	static const char *const bad_id[] = {
		"", "<m:Id>0</m:Id>", "<m:Id>-3</m:Id>", "<m:Id> 3</m:Id>",
		"<m:Id>3x</m:Id>", "<m:Id></m:Id>", "<m:Id>1</m:Id><m:Id>1</m:Id>",
		"<m:Id>99999999999999999999</m:Id>",	/* beyond 2^63 - 1 */
	};
	wse_buf *body = wse_buf_new(1 << 20);
	long long all[16], page[16], mine;
	uint64_t total, unread, t, u, a0;
	char pl[256];
	size_t i, k, n, seen;
	int j;

	(void)state;
	assert_non_null(body);
	for (j = 0; j < 5; j++)
		deliver_to("carol@a.test", j);
	assert_wse_ok(wse_store_count(S.store, "carol@a.test", &total,
	    &unread));
	assert_true(total >= 5 && total <= 16);
	a0 = stored("alice@a.test");
	/* Everything in one page, newest first ... */
	assert_wse_ok(mbox_op("ListHeaders", "carol@a.test", LIST(""), body));
	(void)snprintf(pl, sizeof(pl), "total=\"%llu\" unread=\"%llu\"",
	    (unsigned long long)total, (unsigned long long)unread);
	assert_non_null(strstr(wse_buf_str(body), pl));
	assert_int_equal(listed_ids(body, all, 16), total);
	for (i = 1; i < total; i++)
		assert_true(all[i] != all[i - 1]);
	/* ... and page by page, two at a time: the same, in order. */
	for (seen = 0; seen < total + 2; seen += 2) {
		(void)snprintf(pl, sizeof(pl), LIST("<m:Offset>%zu</m:Offset>"
		    "<m:Limit>2</m:Limit>"), seen);
		assert_wse_ok(mbox_op("ListHeaders", "carol@a.test", pl,
		    body));
		n = listed_ids(body, page, 16);
		assert_int_equal(n, seen >= total ? 0 :
		    total - seen < 2 ? total - seen : 2);
		for (k = 0; k < n; k++)
			assert_int_equal(page[k], all[seen + k]);
	}
	/* Refused, each alone. */
	for (i = 0; i < sizeof(bad_list) / sizeof(bad_list[0]); i++)
		if (strcmp(wse_fault_subcode(mbox_op("ListHeaders",
		    "carol@a.test", bad_list[i], NULL)), "InvalidMessage") != 0)
			fail_msg("ListHeaders case %zu accepted", i);
	for (i = 0; i < sizeof(bad_id) / sizeof(bad_id[0]); i++) {
		static const char *const ops[] = { "FetchMessage", "MarkRead",
		    "DeleteMessage" };

		for (k = 0; k < 3; k++) {
			(void)snprintf(pl, sizeof(pl), "<m:%s xmlns:m=\""
			    "urn:wsemail:2026\">%s</m:%s>", ops[k], bad_id[i],
			    ops[k]);
			if (strcmp(wse_fault_subcode(mbox_op(ops[k],
			    "carol@a.test", pl, NULL)), "InvalidMessage") != 0)
				fail_msg("%s case %zu accepted", ops[k], i);
		}
	}
	mine = all[0];
	(void)snprintf(pl, sizeof(pl), BYID("MarkRead", "<m:Id>%lld</m:Id>"
	    "<m:Read>yes</m:Read>"), mine);
	assert_string_equal(wse_fault_subcode(mbox_op("MarkRead",
	    "carol@a.test", pl, NULL)), "InvalidMessage");
	assert_wse_ok(wse_store_count(S.store, "carol@a.test", &t, &u));
	assert_int_equal(t, total);
	assert_int_equal(u, unread);
	/* Another user's message: NotFound, for each operation, and it
	 * is left as it was. */
	(void)snprintf(pl, sizeof(pl), BYID("MarkRead", "<m:Id>%lld</m:Id>"),
	    mine);
	assert_wse_status(mbox_op("MarkRead", "alice@a.test", pl, NULL),
	    WSE_ERR_NOT_FOUND);
	(void)snprintf(pl, sizeof(pl), BYID("DeleteMessage",
	    "<m:Id>%lld</m:Id>"), mine);
	assert_wse_status(mbox_op("DeleteMessage", "alice@a.test", pl, NULL),
	    WSE_ERR_NOT_FOUND);
	assert_wse_ok(wse_store_count(S.store, "carol@a.test", &t, &u));
	assert_int_equal(t, total);
	assert_int_equal(u, unread);
	assert_int_equal(stored("alice@a.test"), a0);
	/* Her own: read, unread again, read; deleted once. */
	(void)snprintf(pl, sizeof(pl), BYID("MarkRead", "<m:Id>%lld</m:Id>"),
	    mine);
	assert_wse_ok(mbox_op("MarkRead", "carol@a.test", pl, body));
	assert_non_null(strstr(wse_buf_str(body), "MarkReadResponse"));
	assert_wse_ok(wse_store_count(S.store, "carol@a.test", &t, &u));
	assert_int_equal(u, unread - 1);
	(void)snprintf(pl, sizeof(pl), BYID("MarkRead", "<m:Id>%lld</m:Id>"
	    "<m:Read>false</m:Read>"), mine);
	assert_wse_ok(mbox_op("MarkRead", "carol@a.test", pl, NULL));
	assert_wse_ok(wse_store_count(S.store, "carol@a.test", &t, &u));
	assert_int_equal(u, unread);
	(void)snprintf(pl, sizeof(pl), BYID("MarkRead", "<m:Id>%lld</m:Id>"
	    "<m:Read>true</m:Read>"), mine);
	assert_wse_ok(mbox_op("MarkRead", "carol@a.test", pl, NULL));
	(void)snprintf(pl, sizeof(pl), BYID("DeleteMessage",
	    "<m:Id>%lld</m:Id>"), mine);
	assert_wse_ok(mbox_op("DeleteMessage", "carol@a.test", pl, body));
	assert_non_null(strstr(wse_buf_str(body), "DeleteMessageResponse"));
	assert_wse_status(mbox_op("DeleteMessage", "carol@a.test", pl, NULL),
	    WSE_ERR_NOT_FOUND);
	(void)snprintf(pl, sizeof(pl), BYID("FetchMessage",
	    "<m:Id>%lld</m:Id>"), mine);
	assert_wse_status(mbox_op("FetchMessage", "carol@a.test", pl, NULL),
	    WSE_ERR_NOT_FOUND);
	assert_wse_ok(wse_store_count(S.store, "carol@a.test", &t, &u));
	assert_int_equal(t, total - 1);
	assert_int_equal(u, unread - 1);
	/* The same deliveries again (a sender's retries): duplicates, not
	 * stored anew, the deleted one included. */
	for (j = 0; j < 5; j++)
		deliver_to("carol@a.test", j);
	assert_wse_ok(wse_store_count(S.store, "carol@a.test", &t, &u));
	assert_int_equal(t, total - 1);
	wse_buf_free(&body);
}

/* The same answer shape for accounts and non-accounts; the decoy salt is
 * stable. */
static void
test_auth_params(void **state)
{
	wse_buf *req, *a = wse_buf_new(4096), *b = wse_buf_new(4096),
	    *c = wse_buf_new(4096);

	(void)state;
	S.secret[0] = 42;
	req = request("GetAuthParams", "<m:GetAuthParams xmlns:m=\""
	    "urn:wsemail:2026\"><m:User>alice@a.test</m:User></m:GetAuthParams>",
	    NULL, NULL, -2);
	assert_wse_ok(call(req, NULL, 0, a));
	wse_buf_free(&req);
	req = request("GetAuthParams", "<m:GetAuthParams xmlns:m=\""
	    "urn:wsemail:2026\"><m:User>nobody@a.test</m:User></m:GetAuthParams>",
	    NULL, NULL, -2);
	assert_wse_ok(call(req, NULL, 0, b));
	assert_wse_ok(call(req, NULL, 0, c));	/* unsigned: no replay */
	wse_buf_free(&req);
	assert_string_equal(wse_buf_str(b), wse_buf_str(c));
	assert_string_not_equal(wse_buf_str(a), wse_buf_str(b));
	assert_int_equal(wse_buf_len(a), wse_buf_len(b));
	assert_non_null(strstr(wse_buf_str(b), "<m:Iterations>600000<"));
	wse_buf_free(&a);
	wse_buf_free(&b);
	wse_buf_free(&c);
}

/*
 * One bounce per refusal, even when the queue item comes back after its
 * bounce was queued (a crash before the item left the queue): the second
 * bounce has the same id and the sender's mailbox keeps the first.
 */
static void
test_bounce_once(void **state)
{
	wse_msg *m = NULL;
	char id[WSE_UUID_URN_LEN + 1];
	uint64_t t0, t1, t2, u;
	int i;

	(void)state;
	assert_wse_ok(wse_store_count(S.store, "alice@a.test", &t0, &u));
	assert_wse_ok(wse_msg_new(&m));
	assert_wse_ok(wse_msg_set(m, "from", "alice@a.test"));
	assert_wse_ok(wse_msg_add_rcpt(m, "nobody@a.test", 0));
	assert_wse_ok(wse_msg_set(m, "subject", "to nobody"));
	assert_wse_ok(wse_msg_set(m, "text", "hello"));
	assert_wse_ok(wsed_submit(&S, m, 0, NULL, 0, id));
	for (i = 0; i < 4; i++)
		(void)wsed_outbound_pass(&S);
	assert_wse_ok(wse_store_count(S.store, "alice@a.test", &t1, &u));
	assert_int_equal(t1, t0 + 1);
	/* The same item again, refused again. */
	assert_wse_ok(wsed_submit(&S, m, WSED_SUBMIT_KEEP_ID, NULL, 0, id));
	for (i = 0; i < 4; i++)
		(void)wsed_outbound_pass(&S);
	assert_wse_ok(wse_store_count(S.store, "alice@a.test", &t2, &u));
	assert_int_equal(t2, t1);
	/* A caller-given id must be one. */
	(void)snprintf(id, sizeof(id), "urn:uuid:not-an-id");
	assert_wse_status(wsed_submit(&S, m, WSED_SUBMIT_KEEP_ID, NULL, 0,
	    id), WSE_ERR_INVALID);
	wse_msg_free(&m);
}

/* ---- a peer without DeliverBatch: b.test's server over HTTPS ---- */

/*
 * b.test's server as one from before DeliverBatch: today's operations
 * (a real testserver for b.test behind a real HTTPS server with mutual
 * TLS), except that a DeliverBatch is answered as any unknown operation
 * is, with a signed Fault whose subcode is Unsupported.  The calls are
 * counted by Action.
 */
static testserver B;
static testdns D;
static wse_http_server *PH;
static pthread_t peer_thread;
static pthread_mutex_t peer_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t peer_cond = PTHREAD_COND_INITIALIZER;
static int peer_batches, peer_delivers, peer_others;
/* The Fault the peer answers a DeliverBatch with. */
static wse_status peer_batch_fault = WSE_ERR_UNSUPPORTED;
/* 1: hold the next call until the case sets 0 again (2 while held). */
static int peer_hold;

/*
 * When forge.on, the peer answers every Deliver and DeliverBatch with
 * forge.payload (or the Fault forge.fault) instead of serving it, signed
 * as b.test's (signer 1) or c.test's (2) server or not at all (-2), and
 * relating to the request or, with forge.other, to another one.  It
 * stores nothing.  Set and copied under peer_lock.
 */
struct forge {
	int on, signer, other;
	const char *payload;
	wse_status fault;
};
static struct forge forge;

/* Runs on the peer's thread: no cmocka assertion here; anything that
 * fails leaves an empty answer, which the case then sees. */
static void
forge_answer(const struct forge *f, const char *op, const char *msgid,
    wse_buf *out, int *http)
{
	const char *rel = f->other ?
	    "urn:uuid:00000000-0000-4000-8000-000000000000" : msgid;
	const char *pl = f->payload != NULL ? f->payload : "";
	wse_signer *saved = B.s.signer, *c = NULL;
	wse_envelope *env = NULL;
	wse_buf *b = wse_buf_new(1 << 16);

	*http = 500;
	if (b == NULL || wse_buf_puts(b, pl) != WSE_OK)
		goto out;
	if (f->signer == -2) {
		if (wse_env_new(WSED_REPLY_TO, "urn:wsemail:2026/"
		    "DeliverResponse", &env) == WSE_OK &&
		    wse_env_set_relates_to(env, rel) == WSE_OK &&
		    wse_env_add_body_xml(env, pl, strlen(pl), &B.s.lim) ==
		    WSE_OK && wse_env_serialize(env, out) == WSE_OK)
			*http = 200;
		goto out;
	}
	if (f->signer == 2) {
		if (wse_signer_new_cert(P.dom[2].svc_key, (wse_cert *[]){
		    P.dom[2].svc, P.dom[2].ca }, 2, &c) != WSE_OK)
			goto out;
		B.s.signer = c;
	}
	if (f->fault != WSE_OK)
		(void)wse_err(f->fault, "forged");
	wsed_answer(&B.s, op, rel, f->fault, b, out, http);
	B.s.signer = saved;
out:
	wse_signer_free(&c);
	wse_env_free(&env);
	wse_buf_free(&b);
}

static char *
header_text(wse_envelope *env, const char *name)
{
	xmlNodePtr n = wse_env_header_block(env, WSE_NS_WSA, name);
	char *s = NULL;

	if (n != NULL && wse_xml_text_dup(n, 256, &s) != WSE_OK)
		s = NULL;
	return s;
}

static void
peer_request(void *arg, wse_http_req *req)
{
	wse_envelope *env = NULL;
	wse_cert *const *chain;
	wse_buf *out = wse_buf_new(B.s.lim.max_message_bytes * 3);
	const uint8_t *body;
	char *action = NULL, *msgid = NULL;
	size_t len, nchain;
	int http = 500, *count = &peer_others;
	struct forge f;

	(void)arg;
	body = wse_http_req_body(req, &len);
	chain = wse_http_req_peer_chain(req, &nchain);
	if (wse_env_parse(body, len, &B.s.lim, &env) == WSE_OK) {
		action = header_text(env, "Action");
		msgid = header_text(env, "MessageID");
	}
	wse_err_clear();
	if (action != NULL && strcmp(action, WSED_ACTION("DeliverBatch")) == 0)
		count = &peer_batches;
	else if (action != NULL && strcmp(action, WSED_ACTION("Deliver")) == 0)
		count = &peer_delivers;
	pthread_mutex_lock(&peer_lock);
	(*count)++;
	f = forge;
	if (peer_hold == 1) {
		/* Everything else waits behind it: one event loop. */
		struct timespec ts;

		peer_hold = 2;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 10;
		while (peer_hold == 2 && pthread_cond_timedwait(&peer_cond,
		    &peer_lock, &ts) == 0)
			;
		peer_hold = 0;
	}
	pthread_mutex_unlock(&peer_lock);
	if (out == NULL)
		wse_http_reply(req, 503, "text/plain", "busy\n", 5);
	else {
		if (f.on && count != &peer_others)
			forge_answer(&f, count == &peer_batches ?
			    "DeliverBatch" : "Deliver", msgid, out, &http);
		else if (count == &peer_batches) {
			(void)wse_err(peer_batch_fault, "unknown operation "
			    "DeliverBatch");
			wsed_answer(&B.s, "DeliverBatch", msgid,
			    peer_batch_fault, NULL, out, &http);
		} else
			wsed_handle(&B.s, body, len, chain, nchain, out, &http);
		wse_http_reply(req, http, "application/soap+xml; charset=utf-8",
		    wse_buf_data(out), wse_buf_len(out));
	}
	wse_err_clear();
	free(action);
	free(msgid);
	wse_env_free(&env);
	wse_buf_free(&out);
}

static void *
peer_main(void *arg)
{
	(void)arg;
	(void)wse_http_server_run(PH);
	return NULL;
}

static int peer_teardown(void **state);

/* Start the peer. */
static int
peer_setup(void **state)
{
	wse_http_server_opts ho;

	(void)state;
	if (testserver_init_domain(&B, &P, 1, fixed_now, NULL) != 0)
		goto fail;
	memset(&ho, 0, sizeof(ho));
	ho.listen = "127.0.0.1:0";
	ho.cert_chain = B.s.chain_path;
	ho.key = B.s.key_path;
	ho.client_roots = B.s.roots_path;
	ho.client_cert = WSE_CLIENT_CERT_REQUIRED;
	ho.max_body = B.s.lim.max_message_bytes * 3;
	ho.timeout_s = 30;
	ho.max_connections = 16;
	if (wse_http_server_new(&ho, peer_request, NULL, &PH) != WSE_OK)
		goto fail;
	if (pthread_create(&peer_thread, NULL, peer_main, NULL) != 0) {
		wse_http_server_free(&PH);
		goto fail;
	}
	peer_batches = peer_delivers = peer_others = 0;
	return 0;
fail:
	(void)peer_teardown(state);
	return -1;
}

/*
 * Route a.test's mail for b.test to the peer: the static route
 * "b.test mail.b.test:PORT", whose host is the name the peer's
 * certificate must carry (so a numeric route would not do), resolved by
 * a real DNS server on loopback, dnsmasq (tests/testdns.h), that knows
 * mail.b.test as A 127.0.0.1 (no AAAA).  Skips the case without dnsmasq;
 * the teardown stops it.
 */
static void
peer_route(void)
{
	static const char *const recs[] = {
	    "--host-record=mail.b.test,127.0.0.1", NULL };
	char route[64];

	testdns_init(&D);
	testdns_start(&D, recs);
	snprintf(route, sizeof(route), "mail.b.test:%u",
	    (unsigned)wse_http_server_port(PH));
	assert_wse_ok(wse_router_new(D.addr, 2000, &S.router));
	assert_wse_ok(wse_router_add_static(S.router, "b.test", route));
}

static int
peer_teardown(void **state)
{
	(void)state;
	wse_router_free(&S.router);
	if (PH != NULL) {
		wse_http_server_stop(PH);
		pthread_join(peer_thread, NULL);
		wse_http_server_free(&PH);
	}
	testdns_free(&D);
	testserver_free(&B);
	/* The next case's peer starts afresh (its users, an empty store). */
	{
		static const char *const ext[] = { "", "-wal", "-shm" };
		char path[1024];
		size_t i;

		for (i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
			snprintf(path, sizeof(path), "%s/server-b.test.db%s",
			    P.dir, ext[i]);
			(void)unlink(path);
		}
	}
	wse_err_clear();
	return 0;
}

/* The calls the peer has had so far. */
static void
assert_peer_calls(int batches, int delivers)
{
	int b, d, o;

	pthread_mutex_lock(&peer_lock);
	b = peer_batches;
	d = peer_delivers;
	o = peer_others;
	pthread_mutex_unlock(&peer_lock);
	assert_int_equal(b, batches);
	assert_int_equal(d, delivers);
	assert_int_equal(o, 0);
}

/* Queue a message of alice@a.test to bob@b.test; its id into id. */
static void
queue_for_bob(const char *subject, char id[WSE_UUID_URN_LEN + 1])
{
	wse_msg *m = NULL;

	assert_wse_ok(wse_msg_new(&m));
	assert_wse_ok(wse_msg_set(m, "from", "alice@a.test"));
	assert_wse_ok(wse_msg_add_rcpt(m, "bob@b.test", 0));
	assert_wse_ok(wse_msg_set(m, "subject", subject));
	assert_wse_ok(wse_msg_set(m, "text", "hello"));
	assert_wse_ok(wsed_submit(&S, m, 0, NULL, 0, id));
	wse_msg_free(&m);
}

/* The messages sent to bob, by their ids, and how often each is in his
 * mailbox at b.test. */
struct sent {
	char ids[32][WSE_UUID_URN_LEN + 1];
	int seen[32];
	size_t n;
	int others;
};

static wse_status
count_sent(void *arg, const wse_msg_meta *meta)
{
	struct sent *o = arg;
	size_t i;

	for (i = 0; i < o->n; i++)
		if (strcmp(meta->origin_domain, "a.test") == 0 &&
		    strcmp(meta->origin_id, o->ids[i]) == 0) {
			o->seen[i]++;
			return WSE_OK;
		}
	o->others++;
	return WSE_OK;
}

/* Queue messages for bob until o holds upto of them. */
static void
send_upto(struct sent *o, size_t upto)
{
	char subj[32];

	assert_true(upto <= sizeof(o->ids) / sizeof(o->ids[0]));
	for (; o->n < upto; o->n++) {
		snprintf(subj, sizeof(subj), "old peer %zu", o->n);
		queue_for_bob(subj, o->ids[o->n]);
	}
}

/* Every message sent is in bob's mailbox once, and nothing else. */
static void
assert_stored_once(struct sent *o)
{
	size_t i;

	memset(o->seen, 0, sizeof(o->seen));
	o->others = 0;
	assert_wse_ok(wse_store_list(B.s.store, "bob@b.test", 0, 100,
	    count_sent, o));
	for (i = 0; i < o->n; i++)
		assert_int_equal(o->seen[i], 1);
	assert_int_equal(o->others, 0);
}

/*
 * A peer that answers DeliverBatch with Unsupported (a server from before
 * batches) gets the items one Deliver each, in the same pass: each stored
 * there once, the queue empty, no bounce (docs/protocol.md).  The refusal
 * is remembered for WSED_NOBATCH_SECONDS: meanwhile the passes with
 * several items for it send them one Deliver each without asking for a
 * batch; then a batch is tried again.  A lone item goes as a Deliver.
 */
static void
test_batch_unsupported(void **state)
{
	struct sent o;
	uint64_t a0, a1, u;

	(void)state;
	peer_route();
	/* Runs first: nothing is queued yet. */
	assert_int_equal(queue_items(), 0);
	assert_wse_ok(wse_store_count(S.store, "alice@a.test", &a0, &u));
	memset(&o, 0, sizeof(o));
	send_upto(&o, 3);
	assert_int_equal(wsed_outbound_pass(&S), 3);
	assert_peer_calls(1, 3);
	assert_int_equal(queue_items(), 0);
	assert_stored_once(&o);
	/* Nothing left: a pass sends nothing (a bounce would go now). */
	assert_int_equal(wsed_outbound_pass(&S), 0);
	assert_peer_calls(1, 3);
	/* Two more: the refusal is remembered, each goes as a Deliver at
	 * once, without a batch refused first. */
	send_upto(&o, 5);
	assert_int_equal(wsed_outbound_pass(&S), 2);
	assert_peer_calls(1, 5);
	assert_int_equal(queue_items(), 0);
	assert_stored_once(&o);
	/* One alone: a plain Deliver. */
	queue_for_bob("old peer alone", o.ids[o.n++]);
	assert_int_equal(wsed_outbound_pass(&S), 1);
	assert_peer_calls(1, 6);
	assert_int_equal(queue_items(), 0);
	assert_stored_once(&o);
	/* Still remembered a second before the interval ends. */
	skew += WSED_NOBATCH_SECONDS - 1;
	send_upto(&o, 9);
	assert_int_equal(wsed_outbound_pass(&S), 3);
	assert_peer_calls(1, 9);
	assert_int_equal(queue_items(), 0);
	assert_stored_once(&o);
	/* Once it has run out, a batch is tried again (the peer might have
	 * been upgraded): refused, each sent alone in the same pass ... */
	skew += 1;
	send_upto(&o, 11);
	assert_int_equal(wsed_outbound_pass(&S), 2);
	assert_peer_calls(2, 11);
	assert_int_equal(queue_items(), 0);
	assert_stored_once(&o);
	/* ... and remembered anew. */
	send_upto(&o, 13);
	assert_int_equal(wsed_outbound_pass(&S), 2);
	assert_peer_calls(2, 13);
	assert_int_equal(queue_items(), 0);
	assert_stored_once(&o);
	/* No report to alice of any of them. */
	assert_int_equal(wsed_outbound_pass(&S), 0);
	assert_wse_ok(wse_store_count(S.store, "alice@a.test", &a1, &u));
	assert_int_equal(a1, a0);
	assert_peer_calls(2, 13);
	/* The peer's address came from the DNS server. */
	assert_true(testdns_queries(&D, "A", "mail.b.test") > 0);
}

/*
 * A peer that refuses a DeliverBatch whole as malformed (InvalidMessage:
 * one that reads batches otherwise) gets the items one Deliver each in
 * the same pass, each stored once, nothing bounced; unlike Unsupported
 * this is not remembered: the next pass tries a batch again.
 */
static void
test_batch_refused_whole(void **state)
{
	struct sent o;
	uint64_t a0, a1, u;

	(void)state;
	peer_route();
	assert_int_equal(queue_items(), 0);
	skew += WSED_NOBATCH_SECONDS;	/* whatever an earlier case left */
	peer_batch_fault = WSE_ERR_INVALID;
	assert_wse_ok(wse_store_count(S.store, "alice@a.test", &a0, &u));
	memset(&o, 0, sizeof(o));
	send_upto(&o, 3);
	assert_int_equal(wsed_outbound_pass(&S), 3);
	assert_peer_calls(1, 3);
	assert_stored_once(&o);
	send_upto(&o, 5);
	assert_int_equal(wsed_outbound_pass(&S), 2);
	assert_peer_calls(2, 5);
	assert_stored_once(&o);
	assert_int_equal(queue_items(), 0);
	assert_int_equal(wsed_outbound_pass(&S), 0);
	assert_wse_ok(wse_store_count(S.store, "alice@a.test", &a1, &u));
	assert_int_equal(a1, a0);
	peer_batch_fault = WSE_ERR_UNSUPPORTED;
}

/* ---- instant messages to the peer without DeliverBatch ---- */

struct im_send {
	wse_msg *m;
	const char *id;
	wse_status st;
	int stored;
	unsigned sessions;
	pthread_t th;
};

static void *
im_send_main(void *arg)
{
	struct im_send *j = arg;

	j->st = wsed_instant_send(&S, j->m, j->id, &j->stored, &j->sessions);
	wse_err_clear();
	return NULL;
}

/* Wait (at most 5 s) until done(arg) holds for a.test's instant
 * senders (read under their lock); 1 when it does. */
static int
im_wait(int (*done)(const void *), const void *arg)
{
	struct timespec ms = { 0, 1000000 };
	int i, ok = 0;

	for (i = 0; i < 5000 && !ok; i++) {
		pthread_mutex_lock(&S.instant_lock);
		ok = done(arg);
		pthread_mutex_unlock(&S.instant_lock);
		if (!ok)
			nanosleep(&ms, NULL);
	}
	return ok;
}

static int
im_all_leading(const void *arg)
{
	(void)arg;
	return S.instant_leader == WSED_INSTANT_LEADERS;
}

/* The queue of waiting messages ends elsewhere than at *arg. */
static int
im_queued_past(const void *arg)
{
	return S.instant_tail != *(struct wsed_instant_req **const *)arg;
}

#define IM_BURST (WSED_INSTANT_LEADERS + 2)

/*
 * IM_BURST instant messages for bob, sent at once by as many threads
 * (the HTTP workers serving the Submits), made to meet the way they
 * meet under load: the peer holds the first call until
 * WSED_INSTANT_LEADERS calls are in flight and two more messages wait,
 * so that those two go out together (a DeliverBatch, unless the peer is
 * known to refuse one).  Each is stored once (bob has no session).
 */
static void
im_burst(struct sent *o)
{
	struct im_send j[IM_BURST];
	struct wsed_instant_req **tail;
	char when[21];
	size_t i;
	int met;

	assert_true(o->n + IM_BURST <= sizeof(o->ids) / sizeof(o->ids[0]));
	wse_time_format(fixed_now(), when);
	memset(j, 0, sizeof(j));
	for (i = 0; i < IM_BURST; i++) {
		assert_wse_ok(wse_msg_new(&j[i].m));
		assert_wse_ok(wse_msg_set(j[i].m, "from", "alice@a.test"));
		assert_wse_ok(wse_msg_add_rcpt(j[i].m, "bob@b.test", 0));
		assert_wse_ok(wse_msg_set(j[i].m, "text", "hi"));
		assert_wse_ok(wse_msg_set(j[i].m, "date", when));
		j[i].m->instant = 1;
		assert_wse_ok(wsed_instant_check(j[i].m));
		assert_wse_ok(wse_uuid_urn(o->ids[o->n]));
		j[i].id = o->ids[o->n++];
	}
	pthread_mutex_lock(&peer_lock);
	peer_hold = 1;
	pthread_mutex_unlock(&peer_lock);
	for (i = 0; i < WSED_INSTANT_LEADERS; i++)
		assert_int_equal(pthread_create(&j[i].th, NULL, im_send_main,
		    &j[i]), 0);
	/* Each alone in a call of its own: none can end while the peer
	 * holds the first. */
	met = im_wait(im_all_leading, NULL);
	for (; i < IM_BURST; i++) {
		pthread_mutex_lock(&S.instant_lock);
		tail = S.instant_tail;
		pthread_mutex_unlock(&S.instant_lock);
		assert_int_equal(pthread_create(&j[i].th, NULL, im_send_main,
		    &j[i]), 0);
		met &= im_wait(im_queued_past, &tail);
	}
	/* Let go, and join every thread before any check may fail. */
	pthread_mutex_lock(&peer_lock);
	peer_hold = 0;
	pthread_cond_broadcast(&peer_cond);
	pthread_mutex_unlock(&peer_lock);
	for (i = 0; i < IM_BURST; i++)
		pthread_join(j[i].th, NULL);
	assert_true(met);
	for (i = 0; i < IM_BURST; i++) {
		assert_wse_ok(j[i].st);
		assert_int_equal(j[i].stored, 1);
		wse_msg_free(&j[i].m);
	}
	assert_stored_once(o);
}

/*
 * Instant messages share the memory of a peer that refuses DeliverBatch
 * with the queue's mail: a batch of them refused is remembered, and the
 * messages that meet later go one Deliver each, as do the queued mails;
 * a batch of mail refused keeps the instant messages from trying one.
 */
static void
test_batch_unsupported_instant(void **state)
{
	struct sent o;
	int n = 0;

	(void)state;
	peer_route();
	/* Runs second: the queue is empty. */
	assert_int_equal(queue_items(), 0);
	memset(&o, 0, sizeof(o));
	/* What the first case remembered has run out: a batch is tried,
	 * refused, and its two messages are sent alone. */
	skew += WSED_NOBATCH_SECONDS;
	im_burst(&o);
	assert_peer_calls(1, n += IM_BURST);
	/* Remembered: the two that meet go alone at once. */
	im_burst(&o);
	assert_peer_calls(1, n += IM_BURST);
	/* So do several queued mails. */
	send_upto(&o, o.n + 2);
	assert_int_equal(wsed_outbound_pass(&S), 2);
	assert_peer_calls(1, n += 2);
	assert_stored_once(&o);
	/* Run out: the mails try a batch, refused and remembered ... */
	skew += WSED_NOBATCH_SECONDS;
	send_upto(&o, o.n + 2);
	assert_int_equal(wsed_outbound_pass(&S), 2);
	assert_peer_calls(2, n += 2);
	assert_stored_once(&o);
	/* ... for the instant messages too. */
	im_burst(&o);
	assert_peer_calls(2, n += IM_BURST);
	assert_int_equal(queue_items(), 0);
}

/* ---- answers from the peer that prove nothing ---- */

static void
forge_set(int signer, int other, const char *payload, wse_status fault)
{
	pthread_mutex_lock(&peer_lock);
	forge.on = 1;
	forge.signer = signer;
	forge.other = other;
	forge.payload = payload;
	forge.fault = fault;
	pthread_mutex_unlock(&peer_lock);
}

/* A pass of a.test's delivery worker, with what it logged in log. */
static size_t
pass_logged(char *log, size_t size)
{
	testutil_stderr c;
	size_t n;

	testutil_stderr_begin(&c);
	n = wsed_outbound_pass(&S);
	testutil_stderr_end(&c, log, size);
	return n;
}

/* The peer serves again; past every backoff, what is queued goes to it
 * for real: each message of o is then in bob's mailbox once, and the
 * queue is empty.  The peer's refusal of DeliverBatch is forgotten. */
static void
drain(struct sent *o)
{
	int i;

	pthread_mutex_lock(&peer_lock);
	forge.on = 0;
	pthread_mutex_unlock(&peer_lock);
	skew += S.retry_max + 1;
	for (i = 0; i < 3 && queue_items() > 0; i++)
		(void)wsed_outbound_pass(&S);
	assert_int_equal(queue_items(), 0);
	assert_stored_once(o);
	memset(S.nobatch, 0, sizeof(S.nobatch));
}

/* alice's newest message is a report from mailer-daemon@a.test. */
static wse_status
newest_is_report(void *arg, const wse_msg_meta *meta)
{
	*(int *)arg = strcmp(meta->from, "mailer-daemon@a.test") == 0 &&
	    strncmp(meta->subject, "Undeliverable: ", 15) == 0;
	return WSE_OK;
}

/* The report queued by the last pass reaches alice (one more message,
 * a report), and nothing is left queued. */
static void
assert_reported(uint64_t alice0)
{
	int report = 0;

	assert_int_equal(queue_items(), 1);
	assert_int_equal(wsed_outbound_pass(&S), 1);
	assert_int_equal(queue_items(), 0);
	assert_int_equal(stored("alice@a.test"), alice0 + 1);
	assert_wse_ok(wse_store_list(S.store, "alice@a.test", 0, 1,
	    newest_is_report, &report));
	assert_true(report);
}

#define DR(x) "<m:DeliverResponse xmlns:m=\"urn:wsemail:2026\">" x \
	"</m:DeliverResponse>"
#define DBR(x) "<m:DeliverBatchResponse xmlns:m=\"urn:wsemail:2026\">" x \
	"</m:DeliverBatchResponse>"
#define ACC(a) "<m:Accepted>" a "</m:Accepted>"
#define REJ(a) "<m:Rejected>" a "</m:Rejected>"
#define ITEM(x) "<m:Item>" x "</m:Item>"

/*
 * A Deliver answered with something that does not prove delivery:
 * unsigned, signed by another domain's server, relating to another
 * request, another operation's answer, a temporary Fault, or outcomes
 * that do not account for the recipients sent exactly once.  Each is a
 * deferral with the reason logged: the item stays queued, is not tried
 * again before its backoff, reports nothing, and later reaches the peer
 * once.
 */
static void
test_untrusted_answers(void **state)
{
	static const struct {
		int signer, other;
		const char *payload;
		wse_status fault;
		const char *why;
	} c[] = {
		{ -2, 0, DR(ACC("bob@b.test")), WSE_OK,
		  "unverifiable answer from b.test" },
		{ 2, 0, DR(ACC("bob@b.test")), WSE_OK,
		  "unverifiable answer from b.test" },
		{ 2, 0, NULL, WSE_ERR_NO_SUCH_USER,
		  "unverifiable answer from b.test" },
		{ 1, 1, DR(ACC("bob@b.test")), WSE_OK,
		  "answer from b.test does not relate to our Deliver" },
		{ 1, 0, "<m:SubmitResponse xmlns:m=\"urn:wsemail:2026\"/>",
		  WSE_OK, "odd answer from b.test to our Deliver" },
		{ 1, 0, NULL, WSE_ERR_TEMPFAIL, "b.test refused: " },
		{ 1, 0, DR(""), WSE_OK, "outcomes do not match" },
		{ 1, 0, DR("<m:Other/>"), WSE_OK, "outcomes do not match" },
		{ 1, 0, DR(ACC("eve@b.test")), WSE_OK,
		  "outcomes do not match" },
		{ 1, 0, DR(ACC("bob@b.test") REJ("eve@b.test")), WSE_OK,
		  "outcomes do not match" },
		{ 1, 0, DR(ACC("bob@b.test") ACC("bob@b.test")), WSE_OK,
		  "outcomes do not match" },
		{ 1, 0, DR(ACC("bob@b.test") REJ("bob@b.test")), WSE_OK,
		  "outcomes do not match" },
		{ 1, 0, DR(ACC("bob@b.test")
		  "<m:Rejected><m:X>eve@b.test</m:X></m:Rejected>"),
		  WSE_OK, "outcomes do not match" },
	};
	uint64_t alice0 = stored("alice@a.test");
	struct sent o;
	char log[8192];
	size_t i;

	(void)state;
	peer_route();
	memset(S.nobatch, 0, sizeof(S.nobatch));
	memset(&o, 0, sizeof(o));
	assert_int_equal(queue_items(), 0);
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		send_upto(&o, o.n + 1);
		forge_set(c[i].signer, c[i].other, c[i].payload, c[i].fault);
		assert_int_equal(pass_logged(log, sizeof(log)), 1);
		if (strstr(log, c[i].why) == NULL ||
		    strstr(log, "deferred ") == NULL ||
		    strstr(log, "delivered ") != NULL ||
		    strstr(log, "bounce") != NULL)
			fail_msg("case %zu (%s): log \"%s\"", i, c[i].why, log);
		assert_int_equal(queue_items(), 1);
		/* Not again before its backoff. */
		assert_int_equal(wsed_outbound_pass(&S), 0);
		assert_int_equal(stored("alice@a.test"), alice0);
		drain(&o);
	}
	assert_int_equal(stored("alice@a.test"), alice0);
}

/*
 * The answers that refuse for good report at once, one report each,
 * naming only the recipients sent; a report is never reported; an item
 * that keeps failing is retried with a growing wait until it expires,
 * then reported once.
 */
static void
test_refusal_reports(void **state)
{
	static const struct {
		const char *payload;
		wse_status fault;
		const char *why;
	} c[] = {
		{ DR(REJ("bob@b.test")), WSE_OK, "no such mailbox at b.test" },
		{ NULL, WSE_ERR_NO_SUCH_USER, "b.test refused: NoSuchUser" },
		{ NULL, WSE_ERR_DOMAIN_MISMATCH, "b.test refused: " },
	};
	char log[8192], id[WSE_UUID_URN_LEN + 1];
	uint64_t alice0;
	wse_msg *m = NULL;
	size_t i;

	(void)state;
	peer_route();
	assert_int_equal(queue_items(), 0);
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		alice0 = stored("alice@a.test");
		queue_for_bob("refused", id);
		forge_set(1, 0, c[i].payload, c[i].fault);
		assert_int_equal(pass_logged(log, sizeof(log)), 1);
		if (strstr(log, c[i].why) == NULL ||
		    strstr(log, "bounce ") == NULL ||
		    strstr(log, "deferred ") != NULL)
			fail_msg("case %zu (%s): log \"%s\"", i, c[i].why, log);
		assert_reported(alice0);
		/* Once. */
		skew += S.retry_max + 1;
		assert_int_equal(wsed_outbound_pass(&S), 0);
		assert_int_equal(stored("alice@a.test"), alice0 + 1);
	}

	/* A report refused for good: dropped, never reported. */
	assert_wse_ok(wse_msg_new(&m));
	assert_wse_ok(wse_msg_set(m, "from", "mailer-daemon@a.test"));
	assert_wse_ok(wse_msg_add_rcpt(m, "bob@b.test", 0));
	assert_wse_ok(wse_msg_set(m, "subject", "Undeliverable: x"));
	assert_wse_ok(wse_msg_set(m, "text", "report"));
	assert_wse_ok(wsed_submit(&S, m, WSE_MSG_REPORT, NULL, 0, id));
	forge_set(1, 0, DR(REJ("bob@b.test")), WSE_OK);
	assert_int_equal(pass_logged(log, sizeof(log)), 1);
	assert_non_null(strstr(log, "dropped, never reported"));
	assert_null(strstr(log, "bounce "));
	assert_int_equal(queue_items(), 0);
	/* ... and one that expires. */
	assert_wse_ok(wsed_submit(&S, m, WSE_MSG_REPORT, NULL, 0, id));
	forge_set(1, 0, NULL, WSE_ERR_TEMPFAIL);
	wse_msg_free(&m);
	assert_int_equal(wsed_outbound_pass(&S), 1);
	assert_int_equal(queue_items(), 1);
	skew += S.lifetime;
	assert_int_equal(pass_logged(log, sizeof(log)), 1);
	assert_non_null(strstr(log, "dropped, never reported"));
	assert_int_equal(queue_items(), 0);

	/* Retried with exponential backoff (1 s, 2 s, then at most
	 * retry_max), then expired: one report, which says so. */
	alice0 = stored("alice@a.test");
	queue_for_bob("expires", id);
	assert_int_equal(wsed_outbound_pass(&S), 1);	/* next in 1 s */
	assert_int_equal(wsed_outbound_pass(&S), 0);
	skew += 1;
	assert_int_equal(wsed_outbound_pass(&S), 1);	/* next in 2 s */
	skew += 1;
	assert_int_equal(wsed_outbound_pass(&S), 0);
	skew += 1;
	assert_int_equal(wsed_outbound_pass(&S), 1);
	assert_int_equal(stored("alice@a.test"), alice0);
	skew += S.lifetime;
	assert_int_equal(pass_logged(log, sizeof(log)), 1);
	assert_non_null(strstr(log, "gave up after 4 attempts"));
	assert_reported(alice0);
	skew += S.retry_max + 1;
	assert_int_equal(wsed_outbound_pass(&S), 0);
	assert_int_equal(stored("alice@a.test"), alice0 + 1);
	pthread_mutex_lock(&peer_lock);
	forge.on = 0;
	pthread_mutex_unlock(&peer_lock);
}

/*
 * A DeliverBatch answered in part: each item settled on its own outcome
 * (delivered, reported, deferred), a wrong number of outcomes or an
 * answer that proves nothing deferring them all.  Nothing is lost or
 * reported twice; what was deferred later reaches the peer once.
 */
static void
test_batch_outcomes(void **state)
{
	static const struct {
		int signer, other;
		const char *payload;
		int gone[2], reports;	/* delivered or reported */
		const char *why;
	} c[] = {
		{ 1, 0, DBR(ITEM(ACC("bob@b.test"))
		  ITEM("<m:Refused code=\"NoSuchUser\"/>")), { 1, 1 }, 1,
		  "b.test refused: NoSuchUser" },
		{ 1, 0, DBR(ITEM(ACC("eve@b.test")) ITEM(ACC("bob@b.test"))),
		  { 0, 1 }, 0, "outcomes do not match" },
		{ 1, 0, DBR(ITEM(ACC("bob@b.test")) ITEM("")), { 1, 0 }, 0,
		  "outcomes do not match" },
		{ 1, 0, DBR(ITEM("<m:Refused code=\"Bogus\"/>")
		  ITEM(REJ("bob@b.test"))), { 0, 1 }, 1,
		  "no such mailbox at b.test" },
		{ 1, 0, DBR(ITEM(ACC("bob@b.test"))), { 0, 0 }, 0,
		  "1 items for 2" },
		{ 1, 0, DBR(ITEM(ACC("bob@b.test")) ITEM(ACC("bob@b.test"))
		  ITEM(ACC("bob@b.test"))), { 0, 0 }, 0, "3 items for 2" },
		{ -2, 0, DBR(ITEM(ACC("bob@b.test")) ITEM(ACC("bob@b.test"))),
		  { 0, 0 }, 0, "unverifiable answer from b.test" },
		{ 1, 1, DBR(ITEM(ACC("bob@b.test")) ITEM(ACC("bob@b.test"))),
		  { 0, 0 }, 0, "does not relate to our DeliverBatch" },
	};
	struct sent o;
	char log[8192], id[WSE_UUID_URN_LEN + 1];
	uint64_t alice0;
	size_t i, k, left;

	(void)state;
	peer_route();
	memset(&o, 0, sizeof(o));
	assert_int_equal(queue_items(), 0);
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		alice0 = stored("alice@a.test");
		memset(S.nobatch, 0, sizeof(S.nobatch));
		/* Queued in order, taken in order: the batch's items. */
		left = 0;
		for (k = 0; k < 2; k++) {
			if (c[i].gone[k])
				queue_for_bob("batch", id);
			else {
				send_upto(&o, o.n + 1);
				left++;
			}
		}
		forge_set(c[i].signer, c[i].other, c[i].payload, WSE_OK);
		assert_int_equal(pass_logged(log, sizeof(log)), 2);
		if (strstr(log, c[i].why) == NULL)
			fail_msg("case %zu (%s): log \"%s\"", i, c[i].why, log);
		assert_int_equal(queue_items(), left + c[i].reports);
		if (c[i].reports)
			(void)wsed_outbound_pass(&S);	/* to alice */
		assert_int_equal(stored("alice@a.test"), alice0 +
		    c[i].reports);
		drain(&o);
		assert_int_equal(stored("alice@a.test"), alice0 +
		    c[i].reports);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		/* first: it needs the queue empty */
		cmocka_unit_test_setup_teardown(test_batch_unsupported,
		    peer_setup, peer_teardown),
		cmocka_unit_test_setup_teardown(test_batch_refused_whole,
		    peer_setup, peer_teardown),
		cmocka_unit_test_setup_teardown(test_batch_unsupported_instant,
		    peer_setup, peer_teardown),
		cmocka_unit_test_setup_teardown(test_untrusted_answers,
		    peer_setup, peer_teardown),
		cmocka_unit_test_setup_teardown(test_refusal_reports,
		    peer_setup, peer_teardown),
		cmocka_unit_test_setup_teardown(test_batch_outcomes,
		    peer_setup, peer_teardown),
		cmocka_unit_test(test_replayed_submit),
		cmocka_unit_test(test_submit_small_limit),
		cmocka_unit_test(test_submit_refusals),
		cmocka_unit_test(test_deliver_checks),
		cmocka_unit_test(test_deliver_malformed),
		cmocka_unit_test(test_deliver_batch),
		cmocka_unit_test(test_op_refusals),
		cmocka_unit_test(test_mailbox_isolation),
		cmocka_unit_test(test_mailbox_ops),
		cmocka_unit_test(test_auth_params),
		cmocka_unit_test(test_bounce_once),
		cmocka_unit_test(test_guessing_guard),
		cmocka_unit_test(test_guard_table),
		cmocka_unit_test(test_http_refusals),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
