/*
 * test_ondemand_server.c - on-demand attachments through wsemaild's own
 * request path (src/wsemaild/ops.c + plugins.c) with the real ondemand
 * plugin loaded, a real SQLite store and a PKI minted at test time.
 * Every request is built and signed here, so the attacks on
 * FetchAttachment (paper Msg 8) can be exact: a token of another
 * domain's CA, a non-recipient's token, a signature by a key other than
 * the token's, a replay, an expired token, a service certificate posing
 * as a token, a token not yet valid or without its domain CA, a
 * request for another server, an unknown, revoked or expired reference.
 * Refused uploads, Submits, logs, revocations and fetches are checked as
 * a client sees them (a signed Fault, its Code and its generic Reason)
 * and as the server keeps them (its log says why; no row, file, queued
 * message or fetch is left).
 */
#include "testutil.h"
#include "testpki.h"
#include "testserver.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <sqlite3.h>

#include "config.h"
#include "crypto.h"
#include "msg.h"
#include "soap.h"
#include "store.h"
#include "wsed.h"
#include "xml.h"

static testpki P;
static testserver T;
#define S (T.s)
#define alice_key testserver_key
static int64_t clock_now;
static char od_dir[600];

#define URL "https://mail.a.test:8443/wsemail"

static int64_t
test_now(void)
{
	return clock_now;
}

static int
setup(void **state)
{
	const char *build = getenv("WSE_BUILD_ROOT");
	char line[4096];

	(void)state;
	if (build == NULL || testpki_init(&P, (int64_t)time(NULL)) != WSE_OK)
		return -1;
	clock_now = P.now;
	snprintf(od_dir, sizeof(od_dir), "%s/ondemand", P.dir);
	snprintf(line, sizeof(line), "domain = a.test\n"
	    "plugin = %s/plugins/ondemand.so dir=%s ca_cert=%s/a.test/ca.pem "
	    "ca_key=%s/a.test/ca-key.pem attachment_lifetime=3600\n",
	    build, od_dir, P.dir, P.dir);
	return testserver_init(&T, &P, test_now, line);
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

/* A request for op with payload to `to`, signed by signer (NULL: not
 * signed), at the test clock. */
static wse_buf *
request_to(const char *to, const char *op, const char *payload,
    const wse_signer *signer)
{
	wse_envelope *env = NULL;
	wse_buf *b = wse_buf_new(1 << 24);
	char action[128];

	snprintf(action, sizeof(action), "urn:wsemail:2026/%s", op);
	assert_wse_ok(wse_env_new(to, action, &env));
	assert_wse_ok(wse_env_add_body_xml(env, payload, strlen(payload),
	    &S.lim));
	if (signer != NULL)
		assert_wse_ok(wse_wss_sign(env, signer, clock_now, 300));
	assert_wse_ok(wse_env_serialize(env, b));
	wse_env_free(&env);
	return b;
}

static wse_buf *
alice_request(const char *op, const char *payload)
{
	wse_signer *s = NULL;
	wse_buf *b;

	assert_wse_ok(wse_signer_new_password("alice@a.test", alice_key, &s));
	b = request_to(URL, op, payload, s);
	wse_signer_free(&s);
	return b;
}

/*
 * Run a request.  A file answer: *fd_r gets the descriptor (and *off_r,
 * *len_r), WSE_OK.  Otherwise the answer must verify as a.test's; the
 * fault status is returned (WSE_OK for a normal answer, its first Body
 * child serialised into body_r when given).
 */
static wse_status
call(const wse_buf *req, wse_buf *body_r, int *fd_r, uint64_t *off_r,
    uint64_t *len_r)
{
	wse_buf *out = wse_buf_new(1 << 23);
	struct wse_plugin_stream fs;
	wse_status st;
	int http;

	if (fd_r != NULL)
		*fd_r = -1;
	wsed_handle_stream(&S, wse_buf_data(req), wse_buf_len(req), NULL, 0,
	    NULL, out, &http, &fs);
	if (fs.fd >= 0) {
		assert_int_equal(http, 200);
		assert_int_equal(wse_buf_len(out), 0);
		assert_non_null(fd_r);
		*fd_r = fs.fd;
		*off_r = fs.offset;
		*len_r = fs.length;
		wse_buf_free(&out);
		return WSE_OK;
	}
	st = testserver_answer(&T, &P, clock_now, out, http, body_r);
	wse_buf_free(&out);
	return st;
}

/* Text between <m:TAG> and </m:TAG> (or of attribute TAG="...") in s. */
static char *
extract(const char *s, const char *tag, int attr)
{
	char open[80], close[80];
	const char *a, *b;
	char *r;

	if (attr)
		snprintf(open, sizeof(open), " %s=\"", tag);
	else
		snprintf(open, sizeof(open), "<m:%s>", tag);
	snprintf(close, sizeof(close), attr ? "\"" : "</m:%s>", tag);
	assert_non_null(a = strstr(s, open));
	a += strlen(open);
	assert_non_null(b = strstr(a, close));
	assert_non_null(r = strndup(a, (size_t)(b - a)));
	return r;
}

/* ---- the fixture: alice uploads and sends one on-demand file ---- */

static uint8_t file_data[300000];
static char file_sha[65];
static char submit_id[WSE_UUID_URN_LEN + 1];
static char ref[200];

static void
upload_and_send(void)
{
	wse_buf *req, *body = wse_buf_new(1 << 20), *b64 = wse_buf_new(1 << 20);
	char *payload = malloc(1 << 20), *handle = NULL, *t;
	uint8_t h[32];
	size_t off, i, n;

	for (i = 0; i < sizeof(file_data); i++)
		file_data[i] = (uint8_t)(i * 7 + (i >> 9));
	assert_wse_ok(wse_sha256(file_data, sizeof(file_data), h));
	wse_hex(h, sizeof(h), file_sha);
	/* three calls: 100,000 bytes each */
	for (off = 0; off < sizeof(file_data); off += n) {
		n = 100000;
		wse_buf_reset(b64);
		assert_wse_ok(wse_base64_encode(file_data + off, n, b64));
		snprintf(payload, 1 << 20, "<m:UploadAttachment xmlns:m=\""
		    WSE_NS_WSE "\">%s%s%s<m:Name>report.bin</m:Name>"
		    "<m:Type>application/octet-stream</m:Type>"
		    "<m:Size>%zu</m:Size><m:Sha256>%s</m:Sha256>"
		    "<m:Offset>%zu</m:Offset><m:Data>%s</m:Data>"
		    "</m:UploadAttachment>", handle ? "<m:Upload>" : "",
		    handle ? handle : "", handle ? "</m:Upload>" : "",
		    sizeof(file_data), file_sha, off, wse_buf_str(b64));
		req = alice_request("UploadAttachment", payload);
		wse_buf_reset(body);
		assert_wse_ok(call(req, body, NULL, NULL, NULL));
		wse_buf_free(&req);
		if (handle == NULL)
			handle = extract(wse_buf_str(body), "Upload", 0);
		t = extract(wse_buf_str(body), "Received", 0);
		assert_int_equal(strtoull(t, NULL, 10), off + n);
		free(t);
	}
	t = extract(wse_buf_str(body), "Complete", 0);
	assert_string_equal(t, "true");
	free(t);
	snprintf(payload, 1 << 20, "<m:Submit xmlns:m=\"" WSE_NS_WSE "\">"
	    "<m:Message><m:From>alice@a.test</m:From><m:To>bob@b.test</m:To>"
	    "<m:Cc>carol@a.test</m:Cc><m:Subject>report</m:Subject>"
	    "<m:OnDemand upload=\"%s\"/></m:Message></m:Submit>", handle);
	req = alice_request("Submit", payload);
	wse_buf_reset(body);
	assert_wse_ok(call(req, body, NULL, NULL, NULL));
	wse_buf_free(&req);
	t = extract(wse_buf_str(body), "Id", 0);
	snprintf(submit_id, sizeof(submit_id), "%s", t);
	free(t);
	/* the upload served one message only (InvalidMessage, which reads
	 * back as WSE_ERR_PARSE) */
	req = alice_request("Submit", payload);
	assert_wse_status(call(req, NULL, NULL, NULL, NULL), WSE_ERR_PARSE);
	wse_buf_free(&req);
	/* a client may not name a reference itself, only its uploads */
	snprintf(payload, 1 << 20, "<m:Submit xmlns:m=\"" WSE_NS_WSE "\">"
	    "<m:Message><m:From>alice@a.test</m:From><m:To>bob@b.test</m:To>"
	    "<m:OnDemand server=\"" URL "\" ref=\"%s\" name=\"x\" "
	    "size=\"1\" sha256=\"%s\"/></m:Message></m:Submit>", handle,
	    file_sha);
	req = alice_request("Submit", payload);
	assert_wse_status(call(req, NULL, NULL, NULL, NULL), WSE_ERR_PARSE);
	wse_buf_free(&req);
	/* its reference, from the sender's log */
	snprintf(payload, 1 << 20, "<m:AttachmentLog xmlns:m=\"" WSE_NS_WSE
	    "\"><m:Id>%s</m:Id></m:AttachmentLog>", submit_id);
	req = alice_request("AttachmentLog", payload);
	wse_buf_reset(body);
	assert_wse_ok(call(req, body, NULL, NULL, NULL));
	wse_buf_free(&req);
	t = extract(wse_buf_str(body), "ref", 1);
	snprintf(ref, sizeof(ref), "%s", t);
	free(t);
	assert_non_null(strstr(wse_buf_str(body), "bob@b.test"));
	assert_non_null(strstr(wse_buf_str(body), "carol@a.test"));
	free(handle);
	free(payload);
	wse_buf_free(&body);
	wse_buf_free(&b64);
}

/* A token for mailbox issued by dom[d]'s CA (policy checks skipped, so
 * that a CA can be made to vouch for another domain's mailbox), valid
 * [nb, na]; key_r gets its new key. */
static wse_cert *
mint_token(int d, const char *mailbox, int64_t nb, int64_t na,
    wse_key **key_r)
{
	wse_cert_profile prof = { WSE_CERT_TOKEN, mailbox, NULL, 0, nb, na };
	wse_cert *c = NULL;

	assert_wse_ok(wse_key_generate(key_r));
	assert_wse_ok(wse_cert_issue(&prof, *key_r, P.dom[d].ca,
	    P.dom[d].ca_key, &c));
	return c;
}

/* A FetchAttachment for ref_ at `to`, signed with sign_key and the
 * certificate chain {leaf, dom[d].ca}. */
static wse_buf *
fetch_req(const char *to, const char *ref_, uint64_t off, const wse_key
    *sign_key, wse_cert *leaf, int d)
{
	wse_signer *s = NULL;
	wse_buf *b;
	char payload[512];

	snprintf(payload, sizeof(payload), "<m:FetchAttachment xmlns:m=\""
	    WSE_NS_WSE "\"><m:Ref>%s</m:Ref><m:Offset>%llu</m:Offset>"
	    "</m:FetchAttachment>", ref_, (unsigned long long)off);
	assert_wse_ok(wse_signer_new_cert(sign_key,
	    (wse_cert *[]){ leaf, P.dom[d].ca }, 2, &s));
	b = request_to(to, "FetchAttachment", payload, s);
	wse_signer_free(&s);
	return b;
}

/* Replace the base64 DER of cert `from` by that of `to` in req. */
static void
swap_cert(wse_buf *req, const wse_cert *from, const wse_cert *to)
{
	wse_buf *d1 = wse_buf_new(8192), *d2 = wse_buf_new(8192),
	    *b1 = wse_buf_new(16384), *b2 = wse_buf_new(16384),
	    *out = wse_buf_new(1 << 24);
	const char *s = wse_buf_str(req), *at;

	assert_wse_ok(wse_cert_to_der(from, d1));
	assert_wse_ok(wse_cert_to_der(to, d2));
	assert_wse_ok(wse_base64_encode(wse_buf_data(d1), wse_buf_len(d1),
	    b1));
	assert_wse_ok(wse_base64_encode(wse_buf_data(d2), wse_buf_len(d2),
	    b2));
	assert_non_null(at = strstr(s, wse_buf_str(b1)));
	assert_wse_ok(wse_buf_put(out, s, (size_t)(at - s)));
	assert_wse_ok(wse_buf_puts(out, wse_buf_str(b2)));
	assert_wse_ok(wse_buf_puts(out, at + wse_buf_len(b1)));
	wse_buf_reset(req);
	assert_wse_ok(wse_buf_put(req, wse_buf_data(out), wse_buf_len(out)));
	wse_buf_free(&d1);
	wse_buf_free(&d2);
	wse_buf_free(&b1);
	wse_buf_free(&b2);
	wse_buf_free(&out);
}

static void
check_bytes(int fd, uint64_t off, uint64_t len)
{
	uint8_t *buf = malloc(len + 1);
	ssize_t n;

	assert_non_null(buf);
	n = pread(fd, buf, len, (off_t)off);
	assert_int_equal(n, (ssize_t)len);
	assert_memory_equal(buf, file_data + off, len);
	free(buf);
	close(fd);
}

static void
test_fetch_flow_and_attacks(void **state)
{
	wse_key *bob_key = NULL, *dave_key = NULL, *evil_key = NULL,
	    *old_key = NULL, *other = NULL;
	wse_cert *bob = NULL, *dave = NULL, *evil = NULL, *old = NULL;
	wse_buf *req, *body = wse_buf_new(1 << 20);
	uint64_t off, len;
	char payload[512];
	int fd;

	(void)state;
	upload_and_send();

	/* Msg 8/9: bob's token (b.test's CA) fetches from a.test. */
	bob = mint_token(1, "bob@b.test", P.now - 60, P.now + 3600, &bob_key);
	req = fetch_req(URL, ref, 0, bob_key, bob, 1);
	assert_wse_ok(call(req, NULL, &fd, &off, &len));
	assert_int_equal(off, 0);
	assert_int_equal(len, sizeof(file_data));
	check_bytes(fd, off, len);

	/* the same signed request again: a replay */
	assert_wse_status(call(req, NULL, &fd, &off, &len), WSE_ERR_REPLAY);
	wse_buf_free(&req);

	/* resuming from an offset */
	req = fetch_req(URL, ref, 123457, bob_key, bob, 1);
	assert_wse_ok(call(req, NULL, &fd, &off, &len));
	assert_int_equal(off, 123457);
	assert_int_equal(len, sizeof(file_data) - 123457);
	check_bytes(fd, off, len);
	wse_buf_free(&req);

	/* a.test's own recipient, carol, with a token of a.test's CA */
	{
		wse_key *ck = NULL;
		wse_cert *carol = mint_token(0, "carol@a.test", P.now - 60,
		    P.now + 3600, &ck);

		req = fetch_req(URL, ref, 0, ck, carol, 0);
		assert_wse_ok(call(req, NULL, &fd, &off, &len));
		close(fd);
		wse_buf_free(&req);
		wse_cert_free(&carol);
		wse_key_free(&ck);
	}

	/* b.test's CA vouching for an a.test mailbox (a recipient!):
	 * name constraints refuse it - NotAuthorized, nothing streamed */
	evil = mint_token(1, "carol@a.test", P.now - 60, P.now + 3600,
	    &evil_key);
	req = fetch_req(URL, ref, 0, evil_key, evil, 1);
	assert_wse_status(call(req, NULL, &fd, &off, &len),
	    WSE_ERR_NOT_AUTHORIZED);
	wse_buf_free(&req);

	/* a valid token of a non-recipient */
	dave = mint_token(1, "dave@b.test", P.now - 60, P.now + 3600,
	    &dave_key);
	req = fetch_req(URL, ref, 0, dave_key, dave, 1);
	assert_wse_status(call(req, NULL, &fd, &off, &len),
	    WSE_ERR_NOT_AUTHORIZED);
	wse_buf_free(&req);

	/* bob's token, with a signature by another key: signed with a
	 * second token of bob's, whose certificate is then swapped for the
	 * first one in the header */
	{
		wse_cert *bob2 = mint_token(1, "bob@b.test", P.now - 60,
		    P.now + 3600, &other);

		req = fetch_req(URL, ref, 0, other, bob2, 1);
		swap_cert(req, bob2, bob);
		assert_wse_status(call(req, NULL, &fd, &off, &len),
		    WSE_ERR_BAD_SIGNATURE);
		wse_buf_free(&req);
		wse_cert_free(&bob2);
	}

	/* an expired token of the right mailbox: the same NotAuthorized */
	old = mint_token(1, "bob@b.test", P.now - 7200, P.now - 3600,
	    &old_key);
	req = fetch_req(URL, ref, 0, old_key, old, 1);
	assert_wse_status(call(req, NULL, &fd, &off, &len),
	    WSE_ERR_NOT_AUTHORIZED);
	wse_buf_free(&req);

	/* an unknown reference: the same NotAuthorized */
	req = fetch_req(URL, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0,
	    bob_key, bob, 1);
	assert_wse_status(call(req, NULL, &fd, &off, &len),
	    WSE_ERR_NOT_AUTHORIZED);
	wse_buf_free(&req);

	/* a request addressed to another server */
	req = fetch_req("https://mail.c.test/wsemail", ref, 0, bob_key, bob, 1);
	assert_wse_status(call(req, NULL, &fd, &off, &len),
	    WSE_ERR_NOT_AUTHORIZED);
	wse_buf_free(&req);

	/* b.test's SERVICE certificate is no token */
	req = fetch_req(URL, ref, 0, P.dom[1].svc_key, P.dom[1].svc, 1);
	assert_wse_status(call(req, NULL, &fd, &off, &len),
	    WSE_ERR_NOT_AUTHORIZED);
	wse_buf_free(&req);

	/* a password-signed FetchAttachment is refused too */
	snprintf(payload, sizeof(payload), "<m:FetchAttachment xmlns:m=\""
	    WSE_NS_WSE "\"><m:Ref>%s</m:Ref></m:FetchAttachment>", ref);
	req = alice_request("FetchAttachment", payload);
	assert_int_not_equal(call(req, NULL, &fd, &off, &len), WSE_OK);
	wse_buf_free(&req);

	/* the sender's log: bob's and carol's fetches, nobody else's */
	snprintf(payload, sizeof(payload), "<m:AttachmentLog xmlns:m=\""
	    WSE_NS_WSE "\"><m:Id>%s</m:Id></m:AttachmentLog>", submit_id);
	req = alice_request("AttachmentLog", payload);
	assert_wse_ok(call(req, body, NULL, NULL, NULL));
	wse_buf_free(&req);
	assert_non_null(strstr(wse_buf_str(body), "by=\"bob@b.test\""));
	assert_non_null(strstr(wse_buf_str(body), "by=\"carol@a.test\""));
	assert_null(strstr(wse_buf_str(body), "by=\"dave@b.test\""));

	/* revoked: bob's next fetch is refused like any other */
	snprintf(payload, sizeof(payload), "<m:RevokeAttachment xmlns:m=\""
	    WSE_NS_WSE "\"><m:Id>%s</m:Id></m:RevokeAttachment>", submit_id);
	req = alice_request("RevokeAttachment", payload);
	wse_buf_reset(body);
	assert_wse_ok(call(req, body, NULL, NULL, NULL));
	wse_buf_free(&req);
	assert_non_null(strstr(wse_buf_str(body), ">1</m:Revoked>"));
	req = fetch_req(URL, ref, 0, bob_key, bob, 1);
	assert_wse_status(call(req, NULL, &fd, &off, &len),
	    WSE_ERR_NOT_AUTHORIZED);
	wse_buf_free(&req);

	wse_err_clear();
	wse_cert_free(&bob);
	wse_cert_free(&dave);
	wse_cert_free(&evil);
	wse_cert_free(&old);
	wse_key_free(&bob_key);
	wse_key_free(&dave_key);
	wse_key_free(&evil_key);
	wse_key_free(&old_key);
	wse_key_free(&other);
	wse_buf_free(&body);
}

/* RequestToken (Msg 6/7): a token for the caller's own mailbox, issued by
 * its domain CA, that the root vouches for. */
static void
test_request_token(void **state)
{
	wse_key *k = NULL, *pub = NULL;
	wse_buf *pem = wse_buf_new(4096), *body = wse_buf_new(1 << 16), *req;
	char *payload = malloc(8192), *tok, *ca, mbox[300];
	wse_cert *t = NULL, *c = NULL;
	wse_cert **list = NULL;
	size_t n = 0;
	char path[700];
	FILE *f;

	(void)state;
	(void)pub;
	assert_wse_ok(wse_key_generate(&k));
	assert_wse_ok(wse_key_public_pem(k, pem));
	snprintf(payload, 8192, "<m:RequestToken xmlns:m=\"" WSE_NS_WSE "\">"
	    "<m:PublicKey>%s</m:PublicKey></m:RequestToken>",
	    wse_buf_str(pem));
	req = alice_request("RequestToken", payload);
	assert_wse_ok(call(req, body, NULL, NULL, NULL));
	wse_buf_free(&req);
	tok = extract(wse_buf_str(body), "Token", 0);
	ca = extract(wse_buf_str(body), "Ca", 0);
	snprintf(path, sizeof(path), "%s/token.pem", P.dir);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "%s\n%s\n", tok, ca);
	fclose(f);
	assert_wse_ok(wse_cert_load_list(path, &list, &n));
	assert_int_equal(n, 2);
	t = list[0];
	c = list[1];
	assert_true(wse_cert_matches_key(t, k));
	assert_wse_ok(wse_cert_mailbox(t, mbox, sizeof(mbox)));
	assert_string_equal(mbox, "alice@a.test");
	assert_wse_ok(wse_trust_verify(P.trust, t, &c, 1, P.now,
	    WSE_PURPOSE_TOKEN));
	assert_true(wse_cert_not_after(t) <= P.now + 3600 + 60);
	wse_cert_list_free(&list, n);
	free(tok);
	free(ca);
	free(payload);
	wse_key_free(&k);
	wse_buf_free(&pem);
	wse_buf_free(&body);
}

/* ---- refusals through the server ---- */

/* A password-profile request of user's. */
static wse_buf *
user_request(const char *user, const char *op, const char *payload)
{
	wse_signer *s = NULL;
	wse_buf *b;

	assert_wse_ok(wse_signer_new_password(user, alice_key, &s));
	b = request_to(URL, op, payload, s);
	wse_signer_free(&s);
	return b;
}

/* A token-profile request for op at this server, signed with key and
 * the chain {leaf, dom[d].ca} (just {leaf} when d < 0). */
static wse_buf *
token_request(const char *op, const char *payload, const wse_key *key,
    wse_cert *leaf, int d)
{
	wse_signer *s = NULL;
	wse_buf *b;

	assert_wse_ok(wse_signer_new_cert(key, (wse_cert *[]){ leaf,
	    d >= 0 ? P.dom[d].ca : NULL }, d >= 0 ? 2 : 1, &s));
	b = request_to(URL, op, payload, s);
	wse_signer_free(&s);
	return b;
}

/* One number the plugin's database answers to sql. */
static long long
od_num(const char *sql)
{
	char path[700];
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	long long v;

	snprintf(path, sizeof(path), "%s/ondemand.db", od_dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return v;
}

static size_t
od_files(const char *sub)
{
	char path[700];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", od_dir, sub);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static wse_status
count_item(void *arg, const wse_queue_item *item, const char *const *rcpts,
    size_t nrcpts, const void *payload, size_t len)
{
	(void)item;
	(void)rcpts;
	(void)nrcpts;
	(void)payload;
	(void)len;
	(*(size_t *)arg)++;
	return WSE_OK;
}

/* What the server and the plugin keep: a refusal changes none of it. */
struct kept {
	long long rows, received, revoked;
	size_t upfiles, atfiles, queued;
	uint64_t carol;
};

static void
kept(struct kept *k)
{
	uint64_t unread;

	k->rows = od_num("SELECT (SELECT count(*) FROM upload) * 1000000"
	    " + (SELECT count(*) FROM attachment) * 10000"
	    " + (SELECT count(*) FROM recipient) * 100"
	    " + (SELECT count(*) FROM fetch)");
	k->received = od_num("SELECT total(received) + total(complete)"
	    " + total(used) FROM upload");
	k->revoked = od_num("SELECT total(revoked) + total(gone)"
	    " FROM attachment");
	k->upfiles = od_files("uploads");
	k->atfiles = od_files("attachments");
	k->queued = 0;
	assert_wse_ok(wse_store_queue_list(S.store, count_item, &k->queued));
	assert_wse_ok(wse_store_count(S.store, "carol@a.test", &k->carol,
	    &unread));
}

static void
assert_kept(const struct kept *was)
{
	struct kept now;

	kept(&now);
	assert_int_equal(now.rows, was->rows);
	assert_int_equal(now.received, was->received);
	assert_int_equal(now.revoked, was->revoked);
	assert_int_equal(now.upfiles, was->upfiles);
	assert_int_equal(now.atfiles, was->atfiles);
	assert_int_equal(now.queued, was->queued);
	assert_int_equal(now.carol, was->carol);
}

/*
 * Run a request that must be refused: the answer is a Fault signed by
 * a.test, its Code blames the sender (the receiver for a temporary
 * failure), its Reason is the generic one of its Subcode, and nowhere
 * does it say why (why); the server's log (log) does.  Returns the
 * status the Subcode names.
 */
static wse_status
call_refused(const wse_buf *req, const char *why, char *log, size_t size)
{
	wse_buf *out = wse_buf_new(1 << 23);
	struct wse_plugin_stream fs;
	testutil_stderr c;
	wse_envelope *env = NULL;
	xmlNodePtr f, code, val;
	char reason[256], *v = NULL;
	wse_status st, rst;
	int http;

	testutil_stderr_begin(&c);
	wsed_handle_stream(&S, wse_buf_data(req), wse_buf_len(req), NULL, 0,
	    NULL, out, &http, &fs);
	testutil_stderr_end(&c, log, size);
	assert_int_equal(fs.fd, -1);
	st = testserver_answer(&T, &P, clock_now, out, http, NULL);
	if (st == WSE_OK)
		fail_msg("not refused; log \"%s\"", log);
	if (strstr(wse_buf_str(out), why) != NULL)
		fail_msg("the Fault tells why: %s", wse_buf_str(out));
	assert_wse_ok(wse_env_parse(wse_buf_data(out), wse_buf_len(out),
	    &S.lim, &env));
	assert_wse_ok(wse_fault_read(wse_env_body(env), &rst, reason,
	    sizeof(reason)));
	assert_int_equal(rst, st);
	assert_string_equal(reason, wse_fault_reason(st));
	assert_wse_ok(wse_xml_only_child(wse_env_body(env), WSE_NS_SOAP,
	    "Fault", &f));
	assert_wse_ok(wse_xml_only_child(f, WSE_NS_SOAP, "Code", &code));
	assert_wse_ok(wse_xml_only_child(code, WSE_NS_SOAP, "Value", &val));
	assert_wse_ok(wse_xml_text_dup(val, 64, &v));
	assert_string_equal(strchr(v, ':') + 1, st == WSE_ERR_TEMPFAIL ||
	    st == WSE_ERR_IO ? "Receiver" : "Sender");
	free(v);
	wse_env_free(&env);
	wse_buf_free(&out);
	return st;
}

/* Replace each @X@ of t by subst[X - 'A'] (NULL: left as it is). */
static void
expand(const char *t, const char *const subst[26], char *out, size_t size)
{
	size_t n = 0;

	while (*t != '\0' && n + 1 < size) {
		if (t[0] == '@' && t[1] >= 'A' && t[1] <= 'Z' && t[2] == '@' &&
		    subst[t[1] - 'A'] != NULL) {
			n += (size_t)snprintf(out + n, size - n, "%s",
			    subst[t[1] - 'A']);
			if (n >= size)
				n = size - 1;
			t += 3;
		} else
			out[n++] = *t++;
	}
	out[n] = '\0';
}

#define UPLOAD(x) "<m:UploadAttachment xmlns:m=\"" WSE_NS_WSE "\">" x \
	"</m:UploadAttachment>"
#define NEWUP(type, size, data) UPLOAD("<m:Name>n.bin</m:Name>" type \
	"<m:Size>" size "</m:Size><m:Sha256>" SHA0 "</m:Sha256>" data)
#define SHA0 "0000000000000000000000000000000000000000000000000000000000000000"
#define SUBMIT(x) "<m:Submit xmlns:m=\"" WSE_NS_WSE "\"><m:Message>" \
	"<m:From>alice@a.test</m:From><m:To>bob@b.test</m:To><m:Cc>" \
	"carol@a.test</m:Cc><m:Subject>s</m:Subject>" x "</m:Message>" \
	"</m:Submit>"
#define FETCH(x) "<m:FetchAttachment xmlns:m=\"" WSE_NS_WSE "\">" x \
	"</m:FetchAttachment>"

/* Who signs a table row's request. */
enum { ALICE, CAROL, BOB_TOKEN, DAVE_TOKEN, BOB_EARLY, BOB_NOCA };

/*
 * Requests to the ondemand plugin's operations, and Submits, refused
 * through the server's request path, each with its Fault and its reason
 * in the log: nothing of them is stored, no upload, attachment, fetch,
 * queued message or mailbox changes, and the upload in progress and the
 * attachment sent before serve as before.
 */
static void
test_refusals(void **state)
{
	static const struct {
		int who;
		const char *op, *payload, *why;
		wse_status want;	/* InvalidMessage reads WSE_ERR_PARSE */
	} c[] = {
		{ ALICE, "UploadAttachment", NEWUP("<m:Type>text/plain&#10;"
		  "</m:Type>", "1", ""), "bad media type", WSE_ERR_PARSE },
		{ ALICE, "UploadAttachment", NEWUP("", "2147483649", ""),
		  "upload of 2147483649 bytes, the limit is 2147483648",
		  WSE_ERR_TOO_LARGE },
		{ ALICE, "UploadAttachment", NEWUP("", "1",
		  "<m:Data>eHk=</m:Data>"), "more data than m:Size",
		  WSE_ERR_PARSE },
		{ ALICE, "UploadAttachment", UPLOAD("<m:Upload>AAAAAAAAAAAAAAAA"
		  "AAAAAAAAAAAAAAAAAAAAAAAAAAA</m:Upload>"),
		  "alice@a.test: no upload AAAAAAAA", WSE_ERR_NOT_FOUND },
		{ CAROL, "UploadAttachment", UPLOAD("<m:Upload>@P@</m:Upload>"
		  "<m:Offset>1000</m:Offset><m:Data>eA==</m:Data>"),
		  "carol@a.test: no upload", WSE_ERR_NOT_FOUND },
		{ ALICE, "UploadAttachment", UPLOAD("<m:Upload>@P@</m:Upload>"
		  "<m:Offset>0</m:Offset><m:Data>eA==</m:Data>"),
		  "1 bytes at offset 0, but 1000 of 3000 received",
		  WSE_ERR_PARSE },
		{ ALICE, "Submit", SUBMIT("<m:OnDemand upload=\"@C@\"/>"),
		  "is not an upload of this user", WSE_ERR_PARSE },
		{ ALICE, "Submit", SUBMIT("<m:OnDemand upload=\"@P@\"/>"),
		  "is not complete (1000 of 3000 bytes)", WSE_ERR_PARSE },
		{ ALICE, "Submit", SUBMIT("<m:OnDemand upload=\"CCCCCCCCCCCCC"
		  "CCCCCCC\"/>"), "bad upload handle", WSE_ERR_PARSE },
		{ CAROL, "AttachmentLog", "<m:AttachmentLog xmlns:m=\""
		  WSE_NS_WSE "\"><m:Id>@I@</m:Id></m:AttachmentLog>",
		  "carol@a.test has no attachments", WSE_ERR_NOT_FOUND },
		{ CAROL, "RevokeAttachment", "<m:RevokeAttachment xmlns:m=\""
		  WSE_NS_WSE "\"><m:Id>@I@</m:Id></m:RevokeAttachment>",
		  "carol@a.test has no attachments", WSE_ERR_NOT_FOUND },
		{ ALICE, "RevokeAttachment", "<m:RevokeAttachment xmlns:m=\""
		  WSE_NS_WSE "\"><m:Name>report.bin</m:Name>"
		  "</m:RevokeAttachment>", "no m:Id", WSE_ERR_PARSE },
		{ BOB_TOKEN, "FetchAttachment", FETCH("<m:Ref>@R@</m:Ref>"
		  "<m:Offset>300001</m:Offset>"), "past its 300000 bytes",
		  WSE_ERR_PARSE },
		{ BOB_TOKEN, "FetchAttachment", FETCH("<m:Ref>@R@</m:Ref>"
		  "<m:Offset>x</m:Offset>"), "m:Offset is not a number",
		  WSE_ERR_PARSE },
		{ DAVE_TOKEN, "FetchAttachment", FETCH("<m:Ref>@R@</m:Ref>"
		  "<m:Offset>300001</m:Offset>"), "dave@b.test is not a "
		  "recipient", WSE_ERR_NOT_AUTHORIZED },
		{ BOB_TOKEN, "FetchAttachment", FETCH("<m:Ref>../attachments/"
		  "@R@</m:Ref>"), "bob@b.test is not a recipient",
		  WSE_ERR_NOT_AUTHORIZED },
		{ BOB_EARLY, "FetchAttachment", FETCH("<m:Ref>@R@</m:Ref>"),
		  "refused FetchAttachment: token", WSE_ERR_NOT_AUTHORIZED },
		{ BOB_NOCA, "FetchAttachment", FETCH("<m:Ref>@R@</m:Ref>"),
		  "refused FetchAttachment: token", WSE_ERR_NOT_AUTHORIZED },
	};
	const char *subst[26] = { NULL };
	wse_key *bk = NULL, *dk = NULL, *ek = NULL;
	wse_cert *bob, *dave, *early;
	wse_buf *req, *body = wse_buf_new(1 << 20), *b64 = wse_buf_new(8192);
	char *payload = malloc(1 << 16), *hp, *hc, log[4096], sha[65],
	    path[1024], aside[1024];
	uint8_t part[3000], md[32];
	uint64_t off, len;
	struct kept k;
	size_t i;
	int fd;

	(void)state;
	assert_non_null(payload);
	upload_and_send();		/* a fresh ref and submit_id */
	/* alice's upload in progress: 1000 of 3000 bytes */
	for (i = 0; i < sizeof(part); i++)
		part[i] = (uint8_t)(i * 13);
	assert_wse_ok(wse_sha256(part, sizeof(part), md));
	wse_hex(md, sizeof(md), sha);
	assert_wse_ok(wse_base64_encode(part, 1000, b64));
	snprintf(payload, 1 << 16, UPLOAD("<m:Name>part.bin</m:Name>"
	    "<m:Size>3000</m:Size><m:Sha256>%s</m:Sha256><m:Data>%s</m:Data>"),
	    sha, wse_buf_str(b64));
	req = user_request("alice@a.test", "UploadAttachment", payload);
	assert_wse_ok(call(req, body, NULL, NULL, NULL));
	wse_buf_free(&req);
	hp = extract(wse_buf_str(body), "Upload", 0);
	/* carol's finished upload */
	assert_wse_ok(wse_sha256((const uint8_t *)"x", 1, md));
	wse_hex(md, sizeof(md), sha);
	snprintf(payload, 1 << 16, UPLOAD("<m:Name>c.bin</m:Name>"
	    "<m:Size>1</m:Size><m:Sha256>%s</m:Sha256><m:Data>eA==</m:Data>"),
	    sha);
	req = user_request("carol@a.test", "UploadAttachment", payload);
	wse_buf_reset(body);
	assert_wse_ok(call(req, body, NULL, NULL, NULL));
	wse_buf_free(&req);
	hc = extract(wse_buf_str(body), "Upload", 0);
	subst['P' - 'A'] = hp;
	subst['C' - 'A'] = hc;
	subst['R' - 'A'] = ref;
	subst['I' - 'A'] = submit_id;

	bob = mint_token(1, "bob@b.test", P.now - 60, P.now + 3600, &bk);
	dave = mint_token(1, "dave@b.test", P.now - 60, P.now + 3600, &dk);
	early = mint_token(1, "bob@b.test", P.now + 600, P.now + 3600, &ek);
	kept(&k);
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char answer[1 << 12];
		wse_status st;

		expand(c[i].payload, subst, payload, 1 << 16);
		switch (c[i].who) {
		case ALICE:
		case CAROL:
			req = user_request(c[i].who == ALICE ? "alice@a.test" :
			    "carol@a.test", c[i].op, payload);
			break;
		case BOB_TOKEN:
			req = token_request(c[i].op, payload, bk, bob, 1);
			break;
		case DAVE_TOKEN:
			req = token_request(c[i].op, payload, dk, dave, 1);
			break;
		case BOB_EARLY:
			req = token_request(c[i].op, payload, ek, early, 1);
			break;
		default:
			req = token_request(c[i].op, payload, bk, bob, -1);
			break;
		}
		st = call_refused(req, c[i].why, log, sizeof(log));
		snprintf(answer, sizeof(answer), "%s: ", c[i].op);
		if (st != c[i].want || strstr(log, c[i].why) == NULL ||
		    strstr(log, answer) == NULL)
			fail_msg("case %zu (%s): got %s, log \"%s\"", i,
			    c[i].why, wse_status_name(st), log);
		wse_buf_free(&req);
		assert_kept(&k);
	}

	/* an attachment whose file is gone: a temporary failure, the
	 * server's (a Receiver Fault), and no fetch is logged */
	snprintf(path, sizeof(path), "%s/attachments/%s", od_dir, ref);
	snprintf(aside, sizeof(aside), "%s/aside", od_dir);
	assert_int_equal(rename(path, aside), 0);
	kept(&k);
	snprintf(payload, 1 << 16, FETCH("<m:Ref>%s</m:Ref>"), ref);
	req = token_request("FetchAttachment", payload, bk, bob, 1);
	assert_wse_status(call_refused(req, "file missing", log, sizeof(log)),
	    WSE_ERR_TEMPFAIL);
	assert_non_null(strstr(log, "file missing or of the wrong size"));
	wse_buf_free(&req);
	assert_kept(&k);
	assert_int_equal(rename(aside, path), 0);

	/* what was there serves as before */
	snprintf(payload, 1 << 16, FETCH("<m:Ref>%s</m:Ref>"), ref);
	req = token_request("FetchAttachment", payload, bk, bob, 1);
	assert_wse_ok(call(req, NULL, &fd, &off, &len));
	assert_int_equal(len, sizeof(file_data));
	check_bytes(fd, off, len);
	wse_buf_free(&req);
	snprintf(payload, 1 << 16, UPLOAD("<m:Upload>%s</m:Upload>"), hp);
	req = user_request("alice@a.test", "UploadAttachment", payload);
	wse_buf_reset(body);
	assert_wse_ok(call(req, body, NULL, NULL, NULL));
	wse_buf_free(&req);
	assert_non_null(strstr(wse_buf_str(body), ">1000</m:Received>"));

	wse_err_clear();
	wse_cert_free(&bob);
	wse_cert_free(&dave);
	wse_cert_free(&early);
	wse_key_free(&bk);
	wse_key_free(&dk);
	wse_key_free(&ek);
	free(hp);
	free(hc);
	free(payload);
	wse_buf_free(&body);
	wse_buf_free(&b64);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fetch_flow_and_attacks),
		cmocka_unit_test(test_request_token),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
