/*
 * test_verify_attacks.c - the verifier against every attack of
 * SECURITY-NOTES.md: each must fail with the right status, and leave the
 * replay cache exactly as it was.  A PKI is minted at test time.
 */
#include "testutil.h"
#include "testenv.h"
#include "testpki.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/crypto.h>
#include <xmlsec/templates.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/openssl/evp.h>

#include "pki-private.h"
#include "xml.h"

static testpki P;
static wse_limits lim;
static wse_replay *replay;
static int64_t now;
static wse_buf *genuine;	/* a.test service -> b.test, signed at now */

static int
setup(void **state)
{
	(void)state;
	now = (int64_t)time(NULL);
	wse_limits_default(&lim);
	if (testpki_init(&P, now) != WSE_OK)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	testpki_free(&P);
	xmlCleanupParser();
	return 0;
}

static int
each_setup(void **state)
{
	(void)state;
	if (wse_replay_memory_new(10000, &replay) != WSE_OK)
		return -1;
	genuine = testenv_cert(P.dom[0].svc_key, (wse_cert *[]){ P.dom[0].svc,
	    P.dom[0].ca }, 2, now);
	return 0;
}

static int
each_teardown(void **state)
{
	(void)state;
	wse_replay_free(&replay);
	wse_buf_free(&genuine);
	return 0;
}

static wse_verify_opts
cert_opts(wse_trust *trust, const char *domain)
{
	wse_verify_opts o = {
		.profile = WSE_PROFILE_CERT,
		.limits = &lim,
		.replay = replay,
		.now = now,
		.trust = trust ? trust : P.trust,
		.purpose = WSE_PURPOSE_SERVICE,
		.expected_domain = domain ? domain : "a.test",
	};
	return o;
}

/* Verify bytes, expect want, and check the replay cache did not move
 * unless the message was accepted. */
static wse_status
run(const void *data, size_t len, const wse_verify_opts *o)
{
	wse_verified v;
	size_t before = wse_replay_memory_count(replay, now);
	wse_status st = testenv_verify(data, len, o, &v);
	size_t after = wse_replay_memory_count(replay, now);

	if (st == WSE_OK)
		assert_int_equal(after, before + 1);
	else
		assert_int_equal(after, before);
	wse_verified_clear(&v);
	return st;
}

#define EXPECT(data, len, o, want) assert_wse_status(run(data, len, o), want)
#define EXPECT_S(str, o, want) EXPECT(str, strlen(str), o, want)

/* A copy of s with the first occurrence of from replaced by to. */
static char *
replace(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	char *out;
	size_t a, b, c;

	if (p == NULL)
		fail_msg("\"%s\" not found", from);
	a = (size_t)(p - s);
	b = strlen(to);
	c = strlen(p + strlen(from));
	out = malloc(a + b + c + 1);
	assert_non_null(out);
	memcpy(out, s, a);
	memcpy(out + a, to, b);
	memcpy(out + a + b, p + strlen(from), c + 1);
	return out;
}

/* The value of attribute `attr="` that follows `after` in s. */
static char *
attr_after(const char *s, const char *after, const char *attr)
{
	const char *p = strstr(s, after), *q, *e;
	char *out;

	assert_non_null(p);
	q = strstr(p, attr);
	assert_non_null(q);
	q += strlen(attr);
	e = strchr(q, '"');
	assert_non_null(e);
	out = strndup(q, (size_t)(e - q));
	assert_non_null(out);
	return out;
}

/* ---- the genuine article ---- */

static void
test_genuine_cert(void **state)
{
	wse_verify_opts o = cert_opts(NULL, NULL);
	wse_verified v;

	(void)state;
	assert_wse_ok(testenv_verify(wse_buf_data(genuine),
	    wse_buf_len(genuine), &o, &v));
	assert_string_equal(v.to_s, TESTENV_TO);
	assert_string_equal(v.action_s, TESTENV_ACTION);
	assert_string_equal(v.signer_domain, "a.test");
	assert_null(v.signer_mailbox);
	assert_int_equal(v.created, now);
	assert_int_equal(v.expires, now + 300);
	assert_true(wse_uuid_urn_valid(v.message_id_s));
	wse_verified_clear(&v);
	assert_int_equal(wse_replay_memory_count(replay, now), 1);
}

/* The verified nodes are the very nodes of the document. */
static void
test_signed_nodes_by_pointer(void **state)
{
	wse_envelope *env = testenv_parse(genuine);
	wse_verify_opts o = cert_opts(NULL, NULL);
	wse_verified v;

	(void)state;
	assert_wse_ok(wse_wss_verify(env, &o, &v));
	assert_ptr_equal(v.body, wse_env_body(env));
	assert_ptr_equal(v.to, wse_env_header_block(env, WSE_NS_WSA, "To"));
	assert_ptr_equal(v.message_id, wse_env_header_block(env, WSE_NS_WSA,
	    "MessageID"));
	assert_true(wse_xml_is(v.timestamp, WSE_NS_WSU, "Timestamp"));
	assert_ptr_equal(v.timestamp->parent, wse_env_security(env, 0));
	wse_verified_clear(&v);
	wse_env_free(&env);
}

/* ---- tampering ---- */

static void
range(const char *s, const char *open, const char *close, size_t *a,
    size_t *b)
{
	const char *p = strstr(s, open), *q;

	assert_non_null(p);
	q = strstr(p, close);
	assert_non_null(q);
	*a = (size_t)(p - s);
	*b = (size_t)(q - s) + strlen(close);
}

/* One flipped bit in any byte of any signed part, or of SignedInfo or
 * SignatureValue, is refused; never accepted, never a crash. */
static void
test_flip_every_signed_byte(void **state)
{
	static const char *const parts[][2] = {
		{ "<s:Body", "</s:Body>" },
		{ "<wsu:Timestamp", "</wsu:Timestamp>" },
		{ "<wsa:To", "</wsa:To>" },
		{ "<wsa:Action", "</wsa:Action>" },
		{ "<wsa:MessageID", "</wsa:MessageID>" },
		{ "<ds:SignedInfo", "</ds:SignedInfo>" },
		{ "<ds:SignatureValue", "</ds:SignatureValue>" },
	};
	const char *s = wse_buf_str(genuine);
	size_t len = wse_buf_len(genuine), i, a, b, tried = 0;
	char *copy = malloc(len);
	wse_verify_opts o = cert_opts(NULL, NULL);

	(void)state;
	assert_non_null(copy);
	for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		range(s, parts[i][0], parts[i][1], &a, &b);
		for (size_t k = a; k < b; k++) {
			wse_status st;

			memcpy(copy, s, len);
			copy[k] ^= 0x01;
			st = run(copy, len, &o);
			if (st == WSE_OK)
				fail_msg("flipping byte %zu ('%c') of %s was "
				    "accepted", k, s[k], parts[i][0]);
			if (st == WSE_ERR_INTERNAL || st == WSE_ERR_NOMEM)
				fail_msg("byte %zu: %s", k, wse_status_name(st));
			tried++;
		}
	}
	assert_true(tried > 1000);
	assert_int_equal(wse_replay_memory_count(replay, now), 0);
	/* And the untouched original still passes afterwards. */
	EXPECT(s, len, &o, WSE_OK);
	free(copy);
}

/* ---- signature wrapping ---- */

static xmlNodePtr
new_wrapper_header(wse_envelope *env)
{
	xmlNodePtr w = xmlNewChild(wse_env_header(env), NULL, BAD_CAST "Wrap",
	    NULL);
	xmlNsPtr ns = xmlNewNs(w, BAD_CAST "urn:attacker", BAD_CAST "x");

	xmlSetNs(w, ns);
	return w;
}

static xmlNodePtr
evil_body(wse_envelope *env, const char *id)
{
	xmlNodePtr root = xmlDocGetRootElement(wse_env_doc(env));
	xmlNodePtr b = xmlNewNode(root->ns, BAD_CAST "Body");
	xmlNodePtr m = xmlNewChild(b, NULL, BAD_CAST "Deliver", NULL);

	xmlSetNs(m, xmlNewNs(m, BAD_CAST "urn:wsemail:2026", BAD_CAST "m"));
	xmlNewChild(m, m->ns, BAD_CAST "Text",
	    BAD_CAST "Pay 100000 EUR to account 6666.");
	if (id != NULL)
		xmlSetNsProp(b, xmlSearchNsByHref(wse_env_doc(env), root,
		    BAD_CAST WSE_NS_WSU), BAD_CAST "Id", BAD_CAST id);
	return b;
}

static void
expect_env(wse_envelope *env, wse_status want)
{
	wse_buf *b = testenv_serialize(env);
	wse_verify_opts o = cert_opts(NULL, NULL);

	EXPECT(wse_buf_data(b), wse_buf_len(b), &o, want);
	wse_buf_free(&b);
}

/* Signed Body moved into a header, a new Body in its place. */
static void
test_wrapping_moved_body(void **state)
{
	wse_envelope *env = testenv_parse(genuine);
	xmlNodePtr body = wse_env_body(env);

	(void)state;
	xmlUnlinkNode(body);
	xmlAddChild(new_wrapper_header(env), body);
	xmlAddChild(xmlDocGetRootElement(wse_env_doc(env)),
	    evil_body(env, NULL));
	expect_env(env, WSE_ERR_BAD_SIGNATURE);
	wse_env_free(&env);
}

/* The same, the new Body carrying the signed Body's Id: duplicate Ids,
 * the signed copy first in document order. */
static void
test_wrapping_duplicate_id_signed_first(void **state)
{
	wse_envelope *env = testenv_parse(genuine);
	xmlNodePtr body = wse_env_body(env);
	char *id = strdup(wse_xml_attr(body, WSE_NS_WSU, "Id"));

	(void)state;
	xmlUnlinkNode(body);
	xmlAddChild(new_wrapper_header(env), body);
	xmlAddChild(xmlDocGetRootElement(wse_env_doc(env)),
	    evil_body(env, id));
	expect_env(env, WSE_ERR_BAD_SIGNATURE);
	free(id);
	wse_env_free(&env);
}

/* ... and the forged Body first, the signed copy after it. */
static void
test_wrapping_duplicate_id_forged_first(void **state)
{
	wse_envelope *env = testenv_parse(genuine);
	xmlNodePtr body = wse_env_body(env), evil, w;
	char *id = strdup(wse_xml_attr(body, WSE_NS_WSU, "Id"));

	(void)state;
	xmlUnlinkNode(body);
	evil = evil_body(env, id);
	xmlAddChild(xmlDocGetRootElement(wse_env_doc(env)), evil);
	w = xmlNewChild(evil, NULL, BAD_CAST "Wrap", NULL);
	xmlAddChild(w, body);
	expect_env(env, WSE_ERR_BAD_SIGNATURE);
	free(id);
	wse_env_free(&env);
}

/* An xml:id (registered by libxml2 on its own) duplicating a signed Id. */
static void
test_duplicate_xml_id(void **state)
{
	char *id = attr_after(wse_buf_str(genuine), "<s:Body", "wsu:Id=\"");
	char attr[128], *m;
	wse_verify_opts o = cert_opts(NULL, NULL);

	(void)state;
	snprintf(attr, sizeof(attr), "<wsa:Action xml:id=\"%s\"", id);
	m = replace(wse_buf_str(genuine), "<wsa:Action", attr);
	EXPECT_S(m, &o, WSE_ERR_BAD_SIGNATURE);
	free(m);
	free(id);
}

/* The ds:Signature of a parsed envelope. */
static xmlNodePtr
signature_of(wse_envelope *env)
{
	xmlNodePtr n = wse_xml_first_elem(wse_env_security(env, 0));

	while (n != NULL && !wse_xml_is(n, WSE_NS_DS, "Signature"))
		n = wse_xml_next_elem(n);
	assert_non_null(n);
	return n;
}

/* A second Timestamp, a second Signature, a Signature outside Security. */
static void
test_extra_security_elements(void **state)
{
	wse_envelope *env;
	xmlNodePtr sec, sig;

	(void)state;
	/* Timestamp twice (a forged one first). */
	env = testenv_parse(genuine);
	sec = wse_env_security(env, 0);
	xmlAddPrevSibling(wse_xml_first_elem(sec),
	    xmlDocCopyNode(wse_xml_first_elem(sec), wse_env_doc(env), 1));
	expect_env(env, WSE_ERR_BAD_SIGNATURE);
	wse_env_free(&env);

	/* Signature twice in Security. */
	env = testenv_parse(genuine);
	sig = signature_of(env);
	xmlAddNextSibling(sig, xmlDocCopyNode(sig, wse_env_doc(env), 1));
	expect_env(env, WSE_ERR_BAD_SIGNATURE);
	wse_env_free(&env);

	/* A second Signature hidden in the Body. */
	env = testenv_parse(genuine);
	sig = signature_of(env);
	xmlAddChild(wse_xml_first_elem(wse_env_body(env)),
	    xmlDocCopyNode(sig, wse_env_doc(env), 1));
	expect_env(env, WSE_ERR_BAD_SIGNATURE);
	wse_env_free(&env);

	/* The only Signature moved out of Security into another header. */
	env = testenv_parse(genuine);
	sig = signature_of(env);
	xmlUnlinkNode(sig);
	xmlAddChild(new_wrapper_header(env), sig);
	expect_env(env, WSE_ERR_BAD_SIGNATURE);
	wse_env_free(&env);
}

/* ---- keys chosen by us ---- */

/* Replace the KeyInfo content by an attacker's ds:KeyValue. */
static void
test_attacker_keyvalue(void **state)
{
	const char *s = wse_buf_str(genuine);
	wse_verify_opts o = cert_opts(NULL, NULL);
	size_t a, b;
	char *m;

	(void)state;
	range(s, "<wsse:SecurityTokenReference", "</wsse:SecurityTokenReference>",
	    &a, &b);
	m = malloc(strlen(s) + 512);
	memcpy(m, s, a);
	strcpy(m + a, "<ds:KeyValue><ds:ECKeyValue>AAAA</ds:ECKeyValue>"
	    "</ds:KeyValue>");
	strcat(m, s + b);
	EXPECT_S(m, &o, WSE_ERR_UNSUPPORTED);
	free(m);
}

/* An attacker signs with its own key but names the genuine certificate:
 * the key is taken from the certificate we validate, so it fails. */
static void
test_attacker_key_genuine_cert(void **state)
{
	wse_key *k = NULL;
	wse_cert *self = NULL;
	wse_buf *forged;
	char *good_b64, *bad_b64, *m;
	wse_verify_opts o = cert_opts(NULL, NULL);

	(void)state;
	assert_wse_ok(testpki_service(&P, -1, "a.test", now - 60,
	    now + 86400, &k, &self));
	forged = testenv_cert(k, &self, 1, now);
	good_b64 = attr_after(wse_buf_str(genuine), "<wsse:BinarySecurityToken",
	    "EncodingType=\"");
	free(good_b64);
	/* Swap the token content for the genuine certificate's. */
	{
		const char *g = strstr(wse_buf_str(genuine),
		    "<wsse:BinarySecurityToken");
		const char *f = strstr(wse_buf_str(forged),
		    "<wsse:BinarySecurityToken");
		const char *ge = strchr(strchr(g, '>') + 1, '<');
		const char *fe = strchr(strchr(f, '>') + 1, '<');

		good_b64 = strndup(strchr(g, '>') + 1,
		    (size_t)(ge - strchr(g, '>') - 1));
		bad_b64 = strndup(strchr(f, '>') + 1,
		    (size_t)(fe - strchr(f, '>') - 1));
	}
	m = replace(wse_buf_str(forged), bad_b64, good_b64);
	EXPECT_S(m, &o, WSE_ERR_BAD_SIGNATURE);
	/* As sent, with its own self-signed certificate "a.test". */
	EXPECT(wse_buf_data(forged), wse_buf_len(forged), &o,
	    WSE_ERR_UNTRUSTED);
	free(m);
	free(good_b64);
	free(bad_b64);
	wse_buf_free(&forged);
	wse_cert_free(&self);
	wse_key_free(&k);
}

/* HMAC in a certificate message: the public key must never become an
 * HMAC secret. */
static void
test_algorithm_confusion(void **state)
{
	wse_verify_opts o = cert_opts(NULL, NULL);
	char *m = replace(wse_buf_str(genuine),
	    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
	    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256");

	(void)state;
	EXPECT_S(m, &o, WSE_ERR_UNSUPPORTED);
	free(m);
}

/* ---- references and transforms ---- */

static int
listener(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static void
test_remote_reference_uri(void **state)
{
	wse_verify_opts o = cert_opts(NULL, NULL);
	char *id = attr_after(wse_buf_str(genuine), "<s:Body", "wsu:Id=\"");
	char from[96], to[128], errs[4096], *m;
	int port, fd = listener(&port), c;

	(void)state;
	snprintf(from, sizeof(from), "URI=\"#%s\"", id);
	snprintf(to, sizeof(to), "URI=\"http://127.0.0.1:%d/x\"", port);
	m = replace(wse_buf_str(genuine), from, to);
	EXPECT_S(m, &o, WSE_ERR_UNSUPPORTED);
	free(m);
	c = accept(fd, NULL, NULL);
	assert_int_equal(c, -1);	/* nobody connected */
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	close(fd);

	m = replace(wse_buf_str(genuine), from, "URI=\"file:///etc/passwd\"");
	EXPECT_S(m, &o, WSE_ERR_UNSUPPORTED);
	wse_err_format(errs, sizeof(errs));
	assert_null(strstr(errs, "root:"));
	free(m);
	m = replace(wse_buf_str(genuine), from, "URI=\"#xpointer(/)\"");
	EXPECT_S(m, &o, WSE_ERR_UNSUPPORTED);
	free(m);
	m = replace(wse_buf_str(genuine), from, "URI=\"\"");
	EXPECT_S(m, &o, WSE_ERR_UNSUPPORTED);
	free(m);
	free(id);
}

static void
test_disallowed_algorithms(void **state)
{
	static const char *const swaps[][2] = {
		/* XSLT would run by default in xmlsec. */
		{ "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"",
		  "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xslt-19991116\"" },
		{ "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"",
		  "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xpath-19991116\"" },
		{ "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"",
		  "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"" },
		{ "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"",
		  "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#WithComments\"" },
		{ "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"",
		  "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315\"" },
		{ "http://www.w3.org/2001/04/xmlenc#sha256",
		  "http://www.w3.org/2000/09/xmldsig#sha1" },
		{ "http://www.w3.org/2001/04/xmlenc#sha256",
		  "http://www.w3.org/2001/04/xmldsig-more#md5" },
		{ "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
		  "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1" },
		{ "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
		  "http://www.w3.org/2000/09/xmldsig#rsa-sha1" },
	};
	wse_verify_opts o = cert_opts(NULL, NULL);
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(swaps) / sizeof(swaps[0]); i++) {
		char *m = replace(wse_buf_str(genuine), swaps[i][0],
		    swaps[i][1]);
		EXPECT_S(m, &o, WSE_ERR_UNSUPPORTED);
		free(m);
	}
}

/* 5,000 references (a valid one costs xmlsec 30 s) are refused before
 * any digest is computed. */
static void
test_many_references(void **state)
{
	const char *s = wse_buf_str(genuine);
	wse_verify_opts o = cert_opts(NULL, NULL);
	size_t a, b, i, rlen;
	wse_buf *m = wse_buf_new(8u << 20);
	double t0, dt;

	(void)state;
	range(s, "<ds:Reference", "</ds:Reference>", &a, &b);
	rlen = b - a;
	assert_wse_ok(wse_buf_put(m, s, b));
	for (i = 0; i < 5000; i++)
		assert_wse_ok(wse_buf_put(m, s + a, rlen));
	assert_wse_ok(wse_buf_puts(m, s + b));
	t0 = testutil_now_ms();
	EXPECT(wse_buf_data(m), wse_buf_len(m), &o, WSE_ERR_TOO_LARGE);
	dt = testutil_now_ms() - t0;
	print_message("5,000 references refused in %.1f ms\n", dt);
	assert_true(dt < 2000);
	wse_buf_free(&m);
}

/* Re-sign a parsed genuine envelope ourselves with xmlsec, covering only
 * the nodes named, with the service key: a *valid* signature over too
 * little must still be refused. */
static wse_buf *
resign_covering(const char *const *elems, size_t n)
{
	wse_envelope *env = testenv_parse(genuine);
	xmlNodePtr sec = wse_env_security(env, 0), sig, ref, old;
	xmlSecDSigCtxPtr ctx;
	xmlSecKeyDataPtr kd;
	xmlSecKeyPtr key;
	EVP_PKEY *pk = wse_key_evp(P.dom[0].svc_key);
	wse_buf *out;
	size_t i;

	old = wse_xml_first_elem(sec);
	while (old && !wse_xml_is(old, WSE_NS_DS, "Signature"))
		old = wse_xml_next_elem(old);
	assert_non_null(old);
	/* Keep the token reference (its namespace is declared on the
	 * Envelope, not on the Signature that goes away). */
	xmlNodePtr ki = wse_xml_first_elem(old);
	while (ki && !wse_xml_is(ki, WSE_NS_DS, "KeyInfo"))
		ki = wse_xml_next_elem(ki);
	xmlNodePtr str = wse_xml_first_elem(ki);
	xmlUnlinkNode(str);
	xmlUnlinkNode(old);
	xmlFreeNode(old);
	sig = xmlSecTmplSignatureCreateNsPref(wse_env_doc(env),
	    xmlSecTransformExclC14NId, xmlSecTransformEcdsaSha256Id, NULL,
	    BAD_CAST "ds");
	xmlAddChild(sec, sig);
	for (i = 0; i < n; i++) {
		xmlNodePtr node;
		char uri[80];
		const char *id;

		if (strcmp(elems[i], "Timestamp") == 0)
			node = wse_xml_first_elem(sec);
		else if (strcmp(elems[i], "Body") == 0)
			node = wse_env_body(env);
		else
			node = wse_env_header_block(env, WSE_NS_WSA, elems[i]);
		assert_non_null(node);
		id = wse_xml_attr(node, WSE_NS_WSU, "Id");
		xmlAddID(NULL, wse_env_doc(env), BAD_CAST id,
		    xmlHasNsProp(node, BAD_CAST "Id", BAD_CAST WSE_NS_WSU));
		snprintf(uri, sizeof(uri), "#%s", id);
		ref = xmlSecTmplSignatureAddReference(sig,
		    xmlSecTransformSha256Id, NULL, BAD_CAST uri, NULL);
		xmlSecTmplReferenceAddTransform(ref, xmlSecTransformExclC14NId);
	}
	xmlAddChild(xmlSecTmplSignatureEnsureKeyInfo(sig, NULL), str);
	ctx = xmlSecDSigCtxCreate(NULL);
	EVP_PKEY_up_ref(pk);
	kd = xmlSecOpenSSLEvpKeyAdopt(pk);
	key = xmlSecKeyCreate();
	xmlSecKeySetValue(key, kd);
	ctx->signKey = key;
	assert_int_equal(xmlSecDSigCtxSign(ctx, sig), 0);
	xmlSecDSigCtxDestroy(ctx);
	out = testenv_serialize(env);
	wse_env_free(&env);
	return out;
}

static void
test_signature_over_timestamp_only(void **state)
{
	static const char *const only_ts[] = { "Timestamp" };
	static const char *const all[] = { "Body", "Timestamp", "To", "Action",
	    "MessageID" };
	static const char *const no_to[] = { "Body", "Timestamp", "Action",
	    "MessageID" };
	wse_verify_opts o = cert_opts(NULL, NULL);
	wse_buf *b;

	(void)state;
	/* The re-signing itself is sound: all five covered verifies. */
	b = resign_covering(all, 5);
	EXPECT(wse_buf_data(b), wse_buf_len(b), &o, WSE_OK);
	wse_buf_free(&b);
	wse_replay_free(&replay);
	assert_wse_ok(wse_replay_memory_new(100, &replay));
	o.replay = replay;
	b = resign_covering(only_ts, 1);
	EXPECT(wse_buf_data(b), wse_buf_len(b), &o, WSE_ERR_BAD_SIGNATURE);
	wse_buf_free(&b);
	b = resign_covering(no_to, 4);
	EXPECT(wse_buf_data(b), wse_buf_len(b), &o, WSE_ERR_BAD_SIGNATURE);
	wse_buf_free(&b);
}

/* ---- comments inside signed text ---- */

static void
test_comment_in_signed_text(void **state)
{
	wse_verify_opts o = cert_opts(NULL, NULL);
	char *m;

	(void)state;
	/* Exclusive C14N drops comments: the digest is unchanged, so only
	 * the structural rule catches this. */
	m = replace(wse_buf_str(genuine), "<m:To>bob@b.test</m:To>",
	    "<m:To>bob@b<!---->.test</m:To>");
	EXPECT_S(m, &o, WSE_ERR_BAD_SIGNATURE);
	free(m);
	m = replace(wse_buf_str(genuine), "b.test/wsemail</wsa:To>",
	    "b.test<!---->/wsemail</wsa:To>");
	EXPECT_S(m, &o, WSE_ERR_BAD_SIGNATURE);
	free(m);
}

/* ---- the shape of the security header ---- */

/*
 * Each rule of the verifier's structural pass, broken alone, mostly in
 * parts no digest covers (so only the rule can catch it), with the
 * status and the words the rule answers.  Where the change is inside a
 * signed part, the rule runs before the signature and its own words
 * tell it apart from a digest mismatch.  from2/to2: a second change (the
 * end tag of a renamed element).
 */
static void
test_structure_rules(void **state)
{
	static const struct {
		const char *from, *to, *from2, *to2, *why;
		wse_status want;
	} c[] = {
		{ "</wsu:Timestamp>", "</wsu:Timestamp><wsu:Timestamp>"
		  "<wsu:Created>2026-01-01T00:00:00Z</wsu:Created>"
		  "</wsu:Timestamp>", NULL, NULL,
		  "exactly one wsu:Timestamp", WSE_ERR_BAD_SIGNATURE },
		{ "</ds:KeyInfo>", "</ds:KeyInfo><ds:Object>x</ds:Object>",
		  NULL, NULL, "ds:Object", WSE_ERR_UNSUPPORTED },
		{ "</ds:KeyInfo>", "</ds:KeyInfo><!-- x -->", NULL, NULL,
		  "comment or PI inside the signature",
		  WSE_ERR_BAD_SIGNATURE },
		/* a processing instruction: the envelope parser refuses it
		 * anywhere, before the verifier */
		{ "</ds:KeyInfo>", "</ds:KeyInfo><?x y?>", NULL, NULL,
		  "processing instruction", WSE_ERR_PARSE },
		{ "<ds:KeyInfo>", "<ds:KeyInfo><ds:KeyName>a.test</ds:KeyName>",
		  NULL, NULL, "only hold one wsse:SecurityTokenReference",
		  WSE_ERR_UNSUPPORTED },
		{ "<wsse:Reference URI=\"#", "<wsse:Reference URI=\"https://"
		  "evil.test/#", NULL, NULL, "one local Reference",
		  WSE_ERR_UNSUPPORTED },
		{ "<wsse:Reference URI=\"#", "<wsse:Reference URI=\"#no-such-",
		  NULL, NULL, "does not reference a BinarySecurityToken",
		  WSE_ERR_BAD_SIGNATURE },
		{ "<ds:KeyInfo>", "<ds:Foo>", "</ds:KeyInfo>", "</ds:Foo>",
		  "KeyInfo must reference the security token",
		  WSE_ERR_UNSUPPORTED },
		{ "<ds:SignatureValue>", "<ds:SignatureValue><ds:X/>", NULL,
		  NULL, "bad SignatureValue", WSE_ERR_BAD_SIGNATURE },
		{ "<wsu:Created>", "<wsu:Extra/><wsu:Created>", NULL, NULL,
		  "Timestamp lacks Created", WSE_ERR_INVALID },
		{ "</wsu:Timestamp>", "<wsu:Extra/></wsu:Timestamp>", NULL,
		  NULL, "unexpected Timestamp content", WSE_ERR_INVALID },
		{ "<wsa:To wsu:Id=", "<wsa:To xml:lang=", NULL, NULL,
		  "to is not signed (no wsu:Id)", WSE_ERR_BAD_SIGNATURE },
		{ "<wsa:Action ", "<wsa:Other ", "</wsa:Action>",
		  "</wsa:Other>", "message lacks its action",
		  WSE_ERR_BAD_SIGNATURE },
		{ "<ds:Reference URI=\"#msgid", "<ds:Manifest URI=\"#msgid",
		  "</ds:Reference>\n</ds:SignedInfo>",
		  "</ds:Manifest>\n</ds:SignedInfo>",
		  "unexpected Manifest in SignedInfo", WSE_ERR_BAD_SIGNATURE },
	};
	wse_verify_opts o = cert_opts(NULL, NULL);
	char errs[1024], *m, *m2;
	wse_status st;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		m = replace(wse_buf_str(genuine), c[i].from, c[i].to);
		if (c[i].from2 != NULL) {
			m2 = replace(m, c[i].from2, c[i].to2);
			free(m);
			m = m2;
		}
		wse_err_clear();
		st = run(m, strlen(m), &o);
		(void)wse_err_format(errs, sizeof(errs));
		if (st != c[i].want || strstr(errs, c[i].why) == NULL)
			fail_msg("case %zu (%s): got %s, \"%s\"", i, c[i].why,
			    wse_status_name(st), errs);
		free(m);
	}
}

/* ---- a relative namespace URI outside the signed parts ---- */

/*
 * Canonicalisation walks only the referenced subtrees (lib/wss.c), but
 * libxml2's whole-document walk failed on a relative namespace URI
 * anywhere in the document, so the verifier still refuses one wherever
 * it is: in an unsigned header, on the Envelope, as a default namespace.
 * The same header with an absolute URI is accepted, so what is refused
 * is the URI alone.
 */
static void
test_relative_namespace_outside_signed_parts(void **state)
{
	wse_verify_opts o = cert_opts(NULL, NULL);
	static const char *const bad[] = {
		"<x:Extra xmlns:x=\"relative\"/></s:Header>",
		"<x:Extra xmlns:x=\"dir/relative#frag\"/></s:Header>",
		"<Extra xmlns=\"relative\"/></s:Header>",
	};
	char *m;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = replace(wse_buf_str(genuine), "</s:Header>", bad[i]);
		EXPECT_S(m, &o, WSE_ERR_BAD_SIGNATURE);
		free(m);
	}
	m = replace(wse_buf_str(genuine), "<s:Envelope ",
	    "<s:Envelope xmlns:z=\"relative\" ");
	EXPECT_S(m, &o, WSE_ERR_BAD_SIGNATURE);
	free(m);
	/* last: once accepted, its MessageID is spent */
	m = replace(wse_buf_str(genuine), "</s:Header>",
	    "<x:Extra xmlns:x=\"urn:example:extra\"/></s:Header>");
	EXPECT_S(m, &o, WSE_OK);
	free(m);
}

/* ---- time ---- */

static void
test_stale_and_future(void **state)
{
	wse_verify_opts o = cert_opts(NULL, NULL);
	wse_cert *chain[] = { P.dom[0].svc, P.dom[0].ca };
	static const struct { int64_t off; wse_status want; } t[] = {
		{ -301, WSE_ERR_EXPIRED },
		{ -299, WSE_OK },
		{ 61, WSE_ERR_FUTURE },
		{ 59, WSE_OK },
		{ -86400 * 365, WSE_ERR_EXPIRED },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		wse_buf *b = testenv_cert(P.dom[0].svc_key, chain, 2,
		    now + t[i].off);
		EXPECT(wse_buf_data(b), wse_buf_len(b), &o, t[i].want);
		wse_buf_free(&b);
	}
}

/* Expires in the past (short ttl) although Created is fresh. */
static void
test_expires_passed(void **state)
{
	wse_verify_opts o = cert_opts(NULL, NULL);
	wse_cert *chain[] = { P.dom[0].svc, P.dom[0].ca };
	wse_envelope *env = NULL;
	wse_signer *s = NULL;
	wse_buf *b;

	(void)state;
	assert_wse_ok(wse_env_new(TESTENV_TO, TESTENV_ACTION, &env));
	assert_wse_ok(wse_signer_new_cert(P.dom[0].svc_key, chain, 2, &s));
	assert_wse_ok(wse_wss_sign(env, s, now - 100, 50));
	b = testenv_serialize(env);
	EXPECT(wse_buf_data(b), wse_buf_len(b), &o, WSE_ERR_EXPIRED);
	wse_buf_free(&b);
	wse_signer_free(&s);
	wse_env_free(&env);
}

/* ---- replay ---- */

static void
test_replay(void **state)
{
	wse_verify_opts o = cert_opts(NULL, NULL);

	(void)state;
	EXPECT(wse_buf_data(genuine), wse_buf_len(genuine), &o, WSE_OK);
	EXPECT(wse_buf_data(genuine), wse_buf_len(genuine), &o,
	    WSE_ERR_REPLAY);
	/* A different message reusing the MessageID, signed anew. */
	{
		char *mid = NULL;
		const char *p = strstr(wse_buf_str(genuine), "urn:uuid:");
		wse_buf *other;
		const char *q;
		char *m;

		mid = strndup(p, 45);
		other = testenv_cert(P.dom[0].svc_key, (wse_cert *[]){
		    P.dom[0].svc, P.dom[0].ca }, 2, now);
		q = strstr(wse_buf_str(other), "urn:uuid:");
		{
			char *omid = strndup(q, 45);
			m = replace(wse_buf_str(other), omid, mid);
			free(omid);
		}
		/* (Its signature no longer matches either: refused before
		 * the signature is even looked at.) */
		EXPECT_S(m, &o, WSE_ERR_REPLAY);
		free(m);
		free(mid);
		wse_buf_free(&other);
	}
	/* After the window the entry lapses; freshness then refuses. */
	o.now = now + 302;
	EXPECT(wse_buf_data(genuine), wse_buf_len(genuine), &o,
	    WSE_ERR_EXPIRED);
}

/* ---- certificates ---- */

static void
signed_by(wse_key *k, wse_cert *c, int with_ca, wse_verify_opts *o,
    wse_status want)
{
	wse_cert *chain[] = { c, P.dom[0].ca };
	wse_buf *b = testenv_cert(k, chain, with_ca ? 2 : 1, now);

	EXPECT(wse_buf_data(b), wse_buf_len(b), o, want);
	wse_buf_free(&b);
}

static void
test_cert_validity(void **state)
{
	wse_verify_opts o = cert_opts(NULL, NULL);
	wse_key *k = NULL;
	wse_cert *c = NULL;

	(void)state;
	assert_wse_ok(testpki_service(&P, 0, "a.test", now - 86400 * 10,
	    now - 86400, &k, &c));
	signed_by(k, c, 1, &o, WSE_ERR_CERT_EXPIRED);
	wse_cert_free(&c);
	wse_key_free(&k);
	assert_wse_ok(testpki_service(&P, 0, "a.test", now + 3600,
	    now + 86400 * 10, &k, &c));
	signed_by(k, c, 1, &o, WSE_ERR_CERT_NOT_YET_VALID);
	wse_cert_free(&c);
	wse_key_free(&k);
}

static void
test_revoked(void **state)
{
	wse_trust *t = NULL;
	wse_crl *crl = NULL;
	char serial[128];
	const char *serials[1] = { serial };
	wse_verify_opts o;

	(void)state;
	assert_wse_ok(wse_cert_serial(P.dom[0].svc, serial, sizeof(serial)));
	assert_wse_ok(wse_crl_issue(P.dom[0].ca, P.dom[0].ca_key, serials, 1,
	    now - 60, now + 86400, &crl));
	assert_wse_ok(testpki_trust(&P, 1, 0, 1, &t));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	o = cert_opts(t, NULL);
	EXPECT(wse_buf_data(genuine), wse_buf_len(genuine), &o,
	    WSE_ERR_REVOKED);
	wse_crl_free(&crl);
	wse_trust_free(&t);

	/* The domain CA itself revoked by the root. */
	assert_wse_ok(wse_cert_serial(P.dom[0].ca, serial, sizeof(serial)));
	assert_wse_ok(wse_crl_issue(P.root, P.root_key, serials, 1,
	    now - 60, now + 86400, &crl));
	assert_wse_ok(testpki_trust(&P, 0, 1, 1, &t));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	o = cert_opts(t, NULL);
	EXPECT(wse_buf_data(genuine), wse_buf_len(genuine), &o,
	    WSE_ERR_REVOKED);
	wse_crl_free(&crl);
	wse_trust_free(&t);
}

/* No CRL, or a stale one: a temporary failure, never acceptance. */
static void
test_missing_crl(void **state)
{
	wse_trust *t = NULL;
	wse_crl *crl = NULL;
	wse_verify_opts o;

	(void)state;
	assert_wse_ok(testpki_trust(&P, 1, 0, 1, &t));
	o = cert_opts(t, NULL);
	EXPECT(wse_buf_data(genuine), wse_buf_len(genuine), &o,
	    WSE_ERR_TEMPFAIL);
	wse_trust_free(&t);
	assert_wse_ok(testpki_trust(&P, 0, 1, 1, &t));
	o = cert_opts(t, NULL);
	EXPECT(wse_buf_data(genuine), wse_buf_len(genuine), &o,
	    WSE_ERR_TEMPFAIL);
	wse_trust_free(&t);
	/* Expired CRL. */
	assert_wse_ok(wse_crl_issue(P.dom[0].ca, P.dom[0].ca_key, NULL, 0,
	    now - 86400 * 8, now - 86400, &crl));
	assert_wse_ok(testpki_trust(&P, 1, 0, 1, &t));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	o = cert_opts(t, NULL);
	EXPECT(wse_buf_data(genuine), wse_buf_len(genuine), &o,
	    WSE_ERR_TEMPFAIL);
	wse_crl_free(&crl);
	wse_trust_free(&t);
}

static void
test_self_signed_right_name(void **state)
{
	wse_verify_opts o = cert_opts(NULL, NULL);
	wse_key *k = NULL;
	wse_cert *c = NULL;

	(void)state;
	assert_wse_ok(testpki_service(&P, -1, "a.test", now - 60, now + 86400,
	    &k, &c));
	signed_by(k, c, 0, &o, WSE_ERR_UNTRUSTED);
	wse_cert_free(&c);
	wse_key_free(&k);
}

static void
test_other_domain(void **state)
{
	wse_verify_opts o = cert_opts(NULL, NULL);
	wse_buf *b = testenv_cert(P.dom[1].svc_key, (wse_cert *[]){
	    P.dom[1].svc, P.dom[1].ca }, 2, now);

	(void)state;
	EXPECT(wse_buf_data(b), wse_buf_len(b), &o, WSE_ERR_DOMAIN_MISMATCH);
	o.expected_domain = "b.test";
	EXPECT(wse_buf_data(b), wse_buf_len(b), &o, WSE_OK);
	wse_buf_free(&b);
}

/* A token certificate signs as a user: refused where a server's
 * signature is required, accepted as a token of its own domain. */
static void
test_token_purpose(void **state)
{
	wse_verify_opts o = cert_opts(NULL, NULL);
	wse_key *k = NULL, *pub = NULL;
	wse_cert *tok = NULL;
	wse_buf *b;
	wse_verified v;

	(void)state;
	assert_wse_ok(wse_key_generate(&k));
	assert_wse_ok(wse_cert_public_key(P.dom[0].svc, &pub));
	wse_key_free(&pub);
	assert_wse_ok(wse_pki_issue_token(P.dom[0].ca, P.dom[0].ca_key, k,
	    "alice@a.test", 3600, now, &tok));
	b = testenv_cert(k, (wse_cert *[]){ tok, P.dom[0].ca }, 2, now);
	EXPECT(wse_buf_data(b), wse_buf_len(b), &o, WSE_ERR_UNTRUSTED);
	o.purpose = WSE_PURPOSE_TOKEN;
	assert_wse_ok(testenv_verify(wse_buf_data(b), wse_buf_len(b), &o, &v));
	assert_string_equal(v.signer_mailbox, "alice@a.test");
	assert_string_equal(v.signer_domain, "a.test");
	wse_verified_clear(&v);
	wse_buf_free(&b);
	wse_cert_free(&tok);
	wse_key_free(&k);
}

/* The server's own check on the destination (the paper's first field). */
static void
test_expected_to(void **state)
{
	wse_verify_opts o = cert_opts(NULL, NULL);

	(void)state;
	o.expected_to = "https://evil.test/wsemail";
	EXPECT(wse_buf_data(genuine), wse_buf_len(genuine), &o,
	    WSE_ERR_NOT_AUTHORIZED);
	o.expected_to = TESTENV_TO;
	EXPECT(wse_buf_data(genuine), wse_buf_len(genuine), &o, WSE_OK);
}

/* ---- the parser's defences, reached through the verifier ---- */

static void
test_hostile_xml(void **state)
{
	wse_verify_opts o = cert_opts(NULL, NULL);
	const char *dtd = "<?xml version=\"1.0\"?><!DOCTYPE s:Envelope "
	    "[<!ELEMENT a ANY>]><s:Envelope xmlns:s=\"" WSE_NS_SOAP "\">"
	    "<s:Body/></s:Envelope>";
	const char *xxe = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e "
	    "SYSTEM \"file:///etc/passwd\">]><s:Envelope xmlns:s=\""
	    WSE_NS_SOAP "\"><s:Body>&e;</s:Body></s:Envelope>";
	const char *lol = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol "
	    "\"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"
	    "&lol;&lol;\"><!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"
	    "&lol2;&lol2;&lol2;&lol2;\"><!ENTITY lol9 \"&lol3;&lol3;&lol3;"
	    "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">]><s:Envelope "
	    "xmlns:s=\"" WSE_NS_SOAP "\"><s:Body>&lol9;</s:Body></s:Envelope>";
	wse_buf *b = wse_buf_new(4u << 20);
	double t0, dt;
	int i;
	char errs[4096];

	(void)state;
	EXPECT_S(dtd, &o, WSE_ERR_PARSE);
	EXPECT_S(xxe, &o, WSE_ERR_PARSE);
	wse_err_format(errs, sizeof(errs));
	assert_null(strstr(errs, "root:"));
	t0 = testutil_now_ms();
	EXPECT_S(lol, &o, WSE_ERR_PARSE);
	dt = testutil_now_ms() - t0;
	assert_true(dt < 100);

	/* 100 levels of nesting in the Body. */
	assert_wse_ok(wse_buf_puts(b, "<s:Envelope xmlns:s=\"" WSE_NS_SOAP
	    "\"><s:Body>"));
	for (i = 0; i < 100; i++)
		assert_wse_ok(wse_buf_puts(b, "<a>"));
	for (i = 0; i < 100; i++)
		assert_wse_ok(wse_buf_puts(b, "</a>"));
	assert_wse_ok(wse_buf_puts(b, "</s:Body></s:Envelope>"));
	EXPECT(wse_buf_data(b), wse_buf_len(b), &o, WSE_ERR_TOO_LARGE);

	/* 50,000 attributes on one tag, in milliseconds. */
	wse_buf_reset(b);
	assert_wse_ok(wse_buf_puts(b, "<s:Envelope xmlns:s=\"" WSE_NS_SOAP
	    "\"><s:Body><a"));
	for (i = 0; i < 50000; i++)
		assert_wse_ok(wse_buf_printf(b, " a%d=\"\"", i));
	assert_wse_ok(wse_buf_puts(b, "/></s:Body></s:Envelope>"));
	t0 = testutil_now_ms();
	EXPECT(wse_buf_data(b), wse_buf_len(b), &o, WSE_ERR_TOO_LARGE);
	dt = testutil_now_ms() - t0;
	print_message("50,000 attributes refused in %.2f ms\n", dt);
	assert_true(dt < 100);
	wse_buf_free(&b);
}

/* ---- the password profile ---- */

static const uint8_t alice_key[WSE_DERIVED_KEY_LEN] = { 1, 2, 3, 4, 5 };

static wse_status
lookup(void *arg, const char *user, uint8_t key_r[WSE_DERIVED_KEY_LEN])
{
	if (arg != NULL)
		return WSE_ERR_IO;
	if (strcmp(user, "alice") != 0)
		return WSE_ERR_NOT_FOUND;
	memcpy(key_r, alice_key, WSE_DERIVED_KEY_LEN);
	return WSE_OK;
}

static wse_verify_opts
pw_opts(void)
{
	wse_verify_opts o = {
		.profile = WSE_PROFILE_PASSWORD,
		.limits = &lim,
		.replay = replay,
		.now = now,
		.lookup = lookup,
	};
	return o;
}

static void
test_password_profile(void **state)
{
	wse_verify_opts o = pw_opts(), oc = cert_opts(NULL, NULL);
	uint8_t wrong[WSE_DERIVED_KEY_LEN] = { 1, 2, 3, 4, 6 };
	wse_buf *good = testenv_password("alice", alice_key, now);
	wse_buf *bad = testenv_password("alice", wrong, now);
	wse_buf *nouser = testenv_password("mallory", alice_key, now);
	wse_buf *stale = testenv_password("alice", alice_key, now - 400);
	wse_verified v;
	char errs[1024], *m;

	(void)state;
	EXPECT(wse_buf_data(bad), wse_buf_len(bad), &o, WSE_ERR_NOT_AUTHORIZED);
	EXPECT(wse_buf_data(nouser), wse_buf_len(nouser), &o,
	    WSE_ERR_NOT_AUTHORIZED);
	EXPECT(wse_buf_data(stale), wse_buf_len(stale), &o, WSE_ERR_EXPIRED);
	/* Another user's name on alice's MAC. */
	m = replace(wse_buf_str(good), ">alice</wsse:Username>",
	    ">bob</wsse:Username>");
	EXPECT_S(m, &o, WSE_ERR_NOT_AUTHORIZED);
	free(m);
	/* HMAC truncation (CVE-2009-0217). */
	m = replace(wse_buf_str(good), "hmac-sha256\"/>",
	    "hmac-sha256\"><ds:HMACOutputLength>8</ds:HMACOutputLength>"
	    "</ds:SignatureMethod>");
	EXPECT_S(m, &o, WSE_ERR_UNSUPPORTED);
	free(m);
	/* A second, unsigned UsernameToken naming someone else. */
	m = replace(wse_buf_str(good), "</wsse:UsernameToken>",
	    "</wsse:UsernameToken><wsse:UsernameToken><wsse:Username>bob"
	    "</wsse:Username></wsse:UsernameToken>");
	EXPECT_S(m, &o, WSE_ERR_NOT_AUTHORIZED);
	assert_non_null(strstr(wse_err_format(errs, sizeof(errs)),
	    "exactly one UsernameToken"));
	free(m);
	/* More than the Username inside the token. */
	m = replace(wse_buf_str(good), "</wsse:Username>",
	    "</wsse:Username><wsse:Password>x</wsse:Password>");
	EXPECT_S(m, &o, WSE_ERR_NOT_AUTHORIZED);
	assert_non_null(strstr(wse_err_format(errs, sizeof(errs)),
	    "malformed UsernameToken"));
	free(m);
	/* A certificate token next to the UsernameToken. */
	m = replace(wse_buf_str(good), "</wsse:UsernameToken>",
	    "</wsse:UsernameToken><wsse:BinarySecurityToken>AAAA"
	    "</wsse:BinarySecurityToken>");
	EXPECT_S(m, &o, WSE_ERR_UNSUPPORTED);
	assert_non_null(strstr(wse_err_format(errs, sizeof(errs)),
	    "certificate token in a password-profile message"));
	free(m);
	/* A password message offered where a certificate is required. */
	EXPECT(wse_buf_data(good), wse_buf_len(good), &oc, WSE_ERR_UNSUPPORTED);
	/* The store cannot answer: temporary failure. */
	o.lookup_arg = (void *)1;
	EXPECT(wse_buf_data(good), wse_buf_len(good), &o, WSE_ERR_TEMPFAIL);
	o.lookup_arg = NULL;
	assert_wse_ok(testenv_verify(wse_buf_data(good), wse_buf_len(good), &o,
	    &v));
	assert_string_equal(v.user, "alice");
	wse_verified_clear(&v);
	EXPECT(wse_buf_data(good), wse_buf_len(good), &o, WSE_ERR_REPLAY);
	wse_buf_free(&good);
	wse_buf_free(&bad);
	wse_buf_free(&nouser);
	wse_buf_free(&stale);
}

/* Flipped bytes in a password message. */
static void
test_password_flip(void **state)
{
	wse_verify_opts o = pw_opts();
	wse_buf *good = testenv_password("alice", alice_key, now);
	const char *s = wse_buf_str(good);
	size_t len = wse_buf_len(good), a, b, k;
	char *copy = malloc(len);

	(void)state;
	range(s, "<s:Body", "</s:Body>", &a, &b);
	for (k = a; k < b; k++) {
		memcpy(copy, s, len);
		copy[k] ^= 0x01;
		assert_int_not_equal(run(copy, len, &o), WSE_OK);
	}
	range(s, "<wsse:UsernameToken", "</wsse:UsernameToken>", &a, &b);
	for (k = a; k < b; k++) {
		memcpy(copy, s, len);
		copy[k] ^= 0x01;
		assert_int_not_equal(run(copy, len, &o), WSE_OK);
	}
	free(copy);
	wse_buf_free(&good);
}

/* Every verdict maps to a distinct, precise fault subcode. */
static void
test_fault_subcodes(void **state)
{
	(void)state;
	assert_string_equal(wse_fault_subcode(WSE_ERR_EXPIRED),
	    "MessageExpired");
	assert_string_equal(wse_fault_subcode(WSE_ERR_REPLAY), "Replay");
	assert_string_equal(wse_fault_subcode(WSE_ERR_BAD_SIGNATURE),
	    "BadSignature");
	assert_string_equal(wse_fault_subcode(WSE_ERR_UNTRUSTED),
	    "UntrustedCertificate");
	assert_string_equal(wse_fault_subcode(WSE_ERR_REVOKED),
	    "CertificateRevoked");
	assert_string_equal(wse_fault_subcode(WSE_ERR_TEMPFAIL),
	    "TemporaryFailure");
	assert_string_equal(wse_fault_subcode(WSE_ERR_DOMAIN_MISMATCH),
	    "DomainMismatch");
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, each_setup, each_teardown)
	const struct CMUnitTest tests[] = {
		T(test_genuine_cert),
		T(test_signed_nodes_by_pointer),
		T(test_flip_every_signed_byte),
		T(test_wrapping_moved_body),
		T(test_wrapping_duplicate_id_signed_first),
		T(test_wrapping_duplicate_id_forged_first),
		T(test_duplicate_xml_id),
		T(test_extra_security_elements),
		T(test_attacker_keyvalue),
		T(test_attacker_key_genuine_cert),
		T(test_algorithm_confusion),
		T(test_remote_reference_uri),
		T(test_disallowed_algorithms),
		T(test_many_references),
		T(test_signature_over_timestamp_only),
		T(test_comment_in_signed_text),
		T(test_structure_rules),
		T(test_relative_namespace_outside_signed_parts),
		T(test_stale_and_future),
		T(test_expires_passed),
		T(test_replay),
		T(test_cert_validity),
		T(test_revoked),
		T(test_missing_crl),
		T(test_self_signed_right_name),
		T(test_other_domain),
		T(test_token_purpose),
		T(test_expected_to),
		T(test_hostile_xml),
		T(test_password_profile),
		T(test_password_flip),
		T(test_fault_subcodes),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
