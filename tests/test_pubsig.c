/*
 * test_pubsig.c - publisher signatures over plugin files: the format
 * (checked against an independent encoder written here with OpenSSL),
 * the trust rule, and every refusal with its status.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "buf.h"
#include "crypto.h"
#include "pki-private.h"
#include "pki.h"
#include "pubsig.h"

#define DAY 86400

static const char plugin[] =
    "local M = {}\n"
    "function M.route(form) return { next = 'boss@a.test' } end\n"
    "return M\n";

#define assert_err_has(text) do {					\
	char eb__[2048];						\
	wse_err_format(eb__, sizeof(eb__));				\
	if (strstr(eb__, (text)) == NULL)				\
		fail_msg("no \"%s\" in: %s", (text), eb__);		\
	wse_err_clear();						\
} while (0)

struct fixture {
	int64_t now;
	wse_key *key1, *key2;
	wse_cert *pub1, *pub2;	/* "Acme Forms", "Other Forms" */
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->now = (int64_t)time(NULL);
	assert_wse_ok(wse_pubsig_publisher_new("Acme Forms", f->now - 60,
	    f->now + 30 * DAY, &f->key1, &f->pub1));
	assert_wse_ok(wse_pubsig_publisher_new("Other Forms", f->now - 60,
	    f->now + 30 * DAY, &f->key2, &f->pub2));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	wse_key_free(&f->key1);
	wse_key_free(&f->key2);
	wse_cert_free(&f->pub1);
	wse_cert_free(&f->pub2);
	free(f);
	return 0;
}

/* Signature file for plugin, signed by key1 under pub1, as a string. */
static char *
sign(const struct fixture *f, const void *file, size_t len,
    const char *name, const char *version, const wse_key *key,
    const wse_cert *cert)
{
	wse_buf *b = wse_buf_new(WSE_PUBSIG_FILE_MAX);
	char *s;

	assert_non_null(b);
	(void)f;
	assert_wse_ok(wse_pubsig_sign(file, len, name, version, key, cert, b));
	s = wse_buf_steal(b, NULL);
	wse_buf_free(&b);
	assert_non_null(s);
	return s;
}

/*
 * The format, written independently from pubsig.h's description: four
 * lines, the ECDSA-SHA256 signature over them in base64, the PEM
 * certificate.  key need not be cert's key.
 */
static char *
encode(const char *line1, const void *file, size_t len, const char *name,
    const char *version, const wse_key *key, const wse_cert *cert)
{
	uint8_t md[WSE_SHA256_LEN];
	char hex[2 * WSE_SHA256_LEN + 1];
	unsigned char der[256];
	size_t derlen = sizeof(der);
	wse_buf *b = wse_buf_new(WSE_PUBSIG_FILE_MAX);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char *s;

	assert_non_null(b);
	assert_non_null(ctx);
	assert_wse_ok(wse_sha256(file, len, md));
	wse_hex(md, sizeof(md), hex);
	assert_wse_ok(wse_buf_printf(b, "%s\nname: %s\nversion: %s\n"
	    "sha256: %s\n", line1, name, version, hex));
	assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL,
	    wse_key_evp(key)), 1);
	assert_int_equal(EVP_DigestSign(ctx, der, &derlen, wse_buf_data(b),
	    wse_buf_len(b)), 1);
	EVP_MD_CTX_free(ctx);
	assert_wse_ok(wse_buf_puts(b, "signature: "));
	assert_wse_ok(wse_base64_encode(der, derlen, b));
	assert_wse_ok(wse_buf_puts(b, "\n"));
	assert_wse_ok(wse_cert_to_pem(cert, b));
	s = wse_buf_steal(b, NULL);
	wse_buf_free(&b);
	return s;
}

static wse_status
verify_with(const struct fixture *f, const void *file, size_t len,
    const char *sig, wse_cert *const *trusted, size_t n, int64_t now,
    wse_pubsig_info *info)
{
	(void)f;
	return wse_pubsig_verify(file, len, sig, strlen(sig), trusted, n, now,
	    info);
}

/* Replace the first occurrence of from by to in s (same length). */
static void
patch(char *s, const char *from, const char *to)
{
	char *p = strstr(s, from);

	assert_non_null(p);
	assert_int_equal(strlen(from), strlen(to));
	memcpy(p, to, strlen(to));
}

static void
test_round_trip(void **state)
{
	struct fixture *f = *state;
	wse_cert *trusted[] = { f->pub2, f->pub1 };
	wse_pubsig_info info;
	uint8_t md[WSE_SHA256_LEN];
	char hex[2 * WSE_SHA256_LEN + 1], *sig, *mine, *p, *q;

	sig = sign(f, plugin, strlen(plugin), "expense", "1.2", f->key1,
	    f->pub1);
	assert_wse_ok(verify_with(f, plugin, strlen(plugin), sig, trusted, 2,
	    f->now, &info));
	assert_string_equal(info.name, "expense");
	assert_string_equal(info.version, "1.2");
	assert_wse_ok(wse_sha256(plugin, strlen(plugin), md));
	wse_hex(md, sizeof(md), hex);
	assert_string_equal(info.sha256, hex);
	assert_non_null(strstr(info.publisher, "CN=Acme Forms"));
	assert_true(info.not_after == wse_cert_not_after(f->pub1) &&
	    info.not_after > f->now);
	assert_int_equal(wse_err_count(), 0);

	/* the file is what the format says: compare with the encoder
	 * above, all but the (randomised) signature line */
	mine = encode("wsemail-plugin-signature 1", plugin, strlen(plugin),
	    "expense", "1.2", f->key1, f->pub1);
	p = strstr(sig, "signature: ");
	q = strstr(mine, "signature: ");
	assert_non_null(p);
	assert_non_null(q);
	assert_int_equal(p - sig, q - mine);
	assert_memory_equal(sig, mine, (size_t)(p - sig));
	assert_string_equal(strchr(p, '\n'), strchr(q, '\n'));
	{
		static const char head[] = "wsemail-plugin-signature 1\n"
		    "name: expense\nversion: 1.2\nsha256: ";

		assert_memory_equal(sig, head, strlen(head));
	}
	/* and the encoder's own signature verifies */
	assert_wse_ok(verify_with(f, plugin, strlen(plugin), mine, trusted, 2,
	    f->now, NULL));
	free(mine);

	/* an empty plugin file can be signed too */
	free(sig);
	sig = sign(f, "", 0, "empty", "0", f->key1, f->pub1);
	assert_wse_ok(verify_with(f, "", 0, sig, trusted, 2, f->now, NULL));
	free(sig);
}

static void
test_tampered(void **state)
{
	struct fixture *f = *state;
	wse_cert *trusted[] = { f->pub1 };
	wse_pubsig_info info;
	char *sig, *bad, *p, *other;
	size_t len = strlen(plugin);
	uint8_t md[WSE_SHA256_LEN];
	char hex[2 * WSE_SHA256_LEN + 1], oldhex[2 * WSE_SHA256_LEN + 1];

	sig = sign(f, plugin, len, "expense", "1", f->key1, f->pub1);

	/* the file */
	bad = strdup(plugin);
	patch(bad, "boss@a.test", "evil@a.test");
	assert_wse_status(verify_with(f, bad, len, sig, trusted, 1, f->now,
	    &info), WSE_ERR_BAD_SIGNATURE);
	assert_err_has("plugin file does not match the digest signed for "
	    "expense 1");
	assert_string_equal(info.name, "expense");	/* for messages */
	/* one byte more or less */
	assert_wse_status(verify_with(f, plugin, len - 1, sig, trusted, 1,
	    f->now, NULL), WSE_ERR_BAD_SIGNATURE);
	wse_err_clear();

	/* the digest line made to match the altered file */
	other = strdup(sig);
	assert_wse_ok(wse_sha256(bad, len, md));
	wse_hex(md, sizeof(md), hex);
	assert_wse_ok(wse_sha256(plugin, len, md));
	wse_hex(md, sizeof(md), oldhex);
	patch(other, oldhex, hex);
	assert_wse_status(verify_with(f, bad, len, other, trusted, 1, f->now,
	    NULL), WSE_ERR_BAD_SIGNATURE);
	assert_err_has("does not verify with publisher");
	free(other);
	free(bad);

	/* the name and version lines */
	other = strdup(sig);
	patch(other, "name: expense\n", "name: expensf\n");
	assert_wse_status(verify_with(f, plugin, len, other, trusted, 1,
	    f->now, &info), WSE_ERR_BAD_SIGNATURE);
	assert_err_has("signature of expensf 1 does not verify");
	free(other);
	other = strdup(sig);
	patch(other, "version: 1\n", "version: 9\n");
	assert_wse_status(verify_with(f, plugin, len, other, trusted, 1,
	    f->now, NULL), WSE_ERR_BAD_SIGNATURE);
	wse_err_clear();
	free(other);

	/* the signature itself: one base64 character changed */
	other = strdup(sig);
	p = strstr(other, "signature: ") + strlen("signature: ") + 10;
	*p = *p == 'A' ? 'B' : 'A';
	assert_wse_status(verify_with(f, plugin, len, other, trusted, 1,
	    f->now, NULL), WSE_ERR_BAD_SIGNATURE);
	wse_err_clear();
	free(other);
	free(sig);
}

static void
test_untrusted(void **state)
{
	struct fixture *f = *state;
	wse_cert *trusted[] = { f->pub1 };
	wse_pubsig_info info;
	char *sig;
	size_t len = strlen(plugin);

	/* signed by another publisher */
	sig = sign(f, plugin, len, "expense", "1", f->key2, f->pub2);
	assert_wse_status(verify_with(f, plugin, len, sig, trusted, 1, f->now,
	    &info), WSE_ERR_UNTRUSTED);
	assert_err_has("publisher CN=Other Forms is not a trusted publisher");
	assert_non_null(strstr(info.publisher, "Other Forms"));
	/* nobody trusted */
	assert_wse_status(verify_with(f, plugin, len, sig, NULL, 0, f->now,
	    NULL), WSE_ERR_UNTRUSTED);
	assert_err_has("no publisher is trusted");
	free(sig);
}

static void
test_swapped_certificate(void **state)
{
	struct fixture *f = *state;
	wse_cert *trusted[] = { f->pub1 };
	char *sig;
	size_t len = strlen(plugin);

	/* made with Other's key, but carrying Acme's (trusted) certificate */
	sig = encode("wsemail-plugin-signature 1", plugin, len, "expense", "1",
	    f->key2, f->pub1);
	assert_wse_status(verify_with(f, plugin, len, sig, trusted, 1, f->now,
	    NULL), WSE_ERR_BAD_SIGNATURE);
	assert_err_has("does not verify with publisher CN=Acme Forms's key");
	free(sig);
	/* and the library refuses to make such a file */
	{
		wse_buf *b = wse_buf_new(WSE_PUBSIG_FILE_MAX);

		assert_wse_status(wse_pubsig_sign(plugin, len, "expense", "1",
		    f->key2, f->pub1, b), WSE_ERR_INVALID);
		assert_err_has("is not the signing key's");
		assert_int_equal(wse_buf_len(b), 0);
		wse_buf_free(&b);
	}
}

static void
test_expired(void **state)
{
	struct fixture *f = *state;
	wse_key *k = NULL;
	wse_cert *c = NULL;
	wse_cert *trusted[1];
	char *sig;
	size_t len = strlen(plugin);

	assert_wse_ok(wse_pubsig_publisher_new("Old Forms", f->now - 400 * DAY,
	    f->now - DAY, &k, &c));
	trusted[0] = c;
	sig = sign(f, plugin, len, "expense", "1", k, c);
	assert_wse_status(verify_with(f, plugin, len, sig, trusted, 1, f->now,
	    NULL), WSE_ERR_CERT_EXPIRED);
	assert_err_has("the certificate of publisher CN=Old Forms has "
	    "expired");
	/* inside its validity it verifies */
	assert_wse_ok(verify_with(f, plugin, len, sig, trusted, 1,
	    f->now - 10 * DAY, NULL));
	/* not valid yet */
	assert_wse_status(verify_with(f, plugin, len, sig, trusted, 1,
	    f->now - 500 * DAY, NULL), WSE_ERR_CERT_NOT_YET_VALID);
	assert_err_has("is not valid yet");
	free(sig);
	wse_key_free(&k);
	wse_cert_free(&c);
}

/* Certificates not meant for code signing never sign plugins, even when
 * pinned. */
static void
test_not_code_signing(void **state)
{
	struct fixture *f = *state;
	wse_key *rk = NULL, *sk = NULL;
	wse_cert *root = NULL, *svc = NULL, *trusted[2];
	wse_cert_profile pr = { WSE_CERT_ROOT, "Mail Root", NULL, 0,
	    f->now - 60, f->now + DAY };
	wse_buf *b = wse_buf_new(WSE_PUBSIG_FILE_MAX);
	char *sig;
	size_t len = strlen(plugin);

	assert_wse_ok(wse_key_generate(&rk));
	assert_wse_ok(wse_cert_issue(&pr, rk, NULL, rk, &root));
	/* a self-signed service (TLS) certificate: digitalSignature, but
	 * extendedKeyUsage serverAuth, clientAuth */
	assert_wse_ok(wse_key_generate(&sk));
	pr.kind = WSE_CERT_SERVICE;
	pr.name = "forms.test";
	assert_wse_ok(wse_cert_issue(&pr, sk, NULL, sk, &svc));
	trusted[0] = root;
	trusted[1] = svc;

	assert_wse_status(wse_pubsig_sign(plugin, len, "expense", "1", rk,
	    root, b), WSE_ERR_INVALID);
	assert_err_has("keyUsage lacks digitalSignature");
	sig = encode("wsemail-plugin-signature 1", plugin, len, "expense", "1",
	    rk, root);
	assert_wse_status(verify_with(f, plugin, len, sig, trusted, 2, f->now,
	    NULL), WSE_ERR_UNTRUSTED);
	assert_err_has("keyUsage lacks digitalSignature");
	free(sig);
	sig = encode("wsemail-plugin-signature 1", plugin, len, "expense", "1",
	    sk, svc);
	assert_wse_status(verify_with(f, plugin, len, sig, trusted, 2, f->now,
	    NULL), WSE_ERR_UNTRUSTED);
	assert_err_has("extendedKeyUsage lacks codeSigning");
	free(sig);
	wse_buf_free(&b);
	wse_key_free(&rk);
	wse_key_free(&sk);
	wse_cert_free(&root);
	wse_cert_free(&svc);
}

static void
test_malformed(void **state)
{
	struct fixture *f = *state;
	wse_cert *trusted[] = { f->pub1 };
	size_t len = strlen(plugin), i;
	char *sig, *m, *p, *big;
	wse_buf *pem = wse_buf_new(WSE_PUBSIG_FILE_MAX);
	static const struct {
		const char *from, *to, *msg;
		wse_status st;
	} edits[] = {
		{ "wsemail-plugin-signature 1", "wsemail-plugin-signature 2",
		  "unsupported plugin signature format",
		  WSE_ERR_UNSUPPORTED },
		{ "wsemail-plugin-signature 1", "wsemail-plugin-signaturX 1",
		  "not a wsemail plugin signature", WSE_ERR_INVALID },
		{ "name: expense", "name: ../../x", "bad plugin name",
		  WSE_ERR_INVALID },
		{ "name: expense", "Name: expense", "expected a line \"name: ",
		  WSE_ERR_INVALID },
		{ "version: 1", "version:  ", "bad plugin version",
		  WSE_ERR_INVALID },
		{ "sha256: ", "sha256:\t", "expected a line \"sha256: ",
		  WSE_ERR_INVALID },
		{ "signature: ", "signature:-", "expected a line \"signature: ",
		  WSE_ERR_INVALID },
		{ "-----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATX-----",
		  "no publisher certificate", WSE_ERR_INVALID },
		{ "-----END CERTIFICATE-----", "-----END CERTIFICATX-----",
		  "the certificate does not end", WSE_ERR_INVALID },
	};

	sig = sign(f, plugin, len, "expense", "1", f->key1, f->pub1);
	for (i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		m = strdup(sig);
		patch(m, edits[i].from, edits[i].to);
		assert_wse_status(verify_with(f, plugin, len, m, trusted, 1,
		    f->now, NULL), edits[i].st);
		assert_err_has(edits[i].msg);
		free(m);
	}

	/* unsigned: empty */
	assert_wse_status(wse_pubsig_verify(plugin, len, "", 0, trusted, 1,
	    f->now, NULL), WSE_ERR_INVALID);
	assert_err_has("unsigned");
	/* the plugin itself given as its signature */
	assert_wse_status(verify_with(f, plugin, len, plugin, trusted, 1,
	    f->now, NULL), WSE_ERR_INVALID);
	assert_err_has("not a wsemail plugin signature");
	/* upper-case digest */
	m = strdup(sig);
	p = strstr(m, "sha256: ") + 8;
	for (i = 0; i < 64; i++)
		if (p[i] >= 'a' && p[i] <= 'f')
			p[i] = (char)(p[i] - 'a' + 'A');
	assert_wse_status(verify_with(f, plugin, len, m, trusted, 1, f->now,
	    NULL), WSE_ERR_INVALID);
	assert_err_has("64 lower-case hex digits");
	free(m);
	/* CR LF line ends */
	m = malloc(2 * strlen(sig) + 1);
	for (i = 0, p = m; sig[i] != '\0'; i++) {
		if (sig[i] == '\n')
			*p++ = '\r';
		*p++ = sig[i];
	}
	*p = '\0';
	assert_wse_status(verify_with(f, plugin, len, m, trusted, 1, f->now,
	    NULL), WSE_ERR_INVALID);
	assert_err_has("line ends must be LF");
	free(m);
	/* a NUL byte */
	m = strdup(sig);
	assert_wse_status(wse_pubsig_verify(plugin, len, m, strlen(m) + 1,
	    trusted, 1, f->now, NULL), WSE_ERR_INVALID);
	assert_err_has("NUL byte");
	free(m);
	/* truncated anywhere: never accepted */
	for (i = 0; i < strlen(sig) - 1; i += 7) {
		wse_status st = wse_pubsig_verify(plugin, len, sig, i, trusted,
		    1, f->now, NULL);

		assert_int_equal(st, WSE_ERR_INVALID);
		wse_err_clear();
	}
	/* a second certificate after the first */
	assert_wse_ok(wse_cert_to_pem(f->pub2, pem));
	m = malloc(strlen(sig) + wse_buf_len(pem) + 1);
	strcpy(m, sig);
	strcat(m, wse_buf_str(pem));
	assert_wse_status(verify_with(f, plugin, len, m, trusted, 1, f->now,
	    NULL), WSE_ERR_INVALID);
	assert_err_has("data after the certificate");
	free(m);
	/* base64 that is no certificate */
	m = strdup(sig);
	p = strstr(m, "-----BEGIN CERTIFICATE-----\n") + 28;
	memcpy(p, "AAAA", 4);
	assert_wse_status(verify_with(f, plugin, len, m, trusted, 1, f->now,
	    NULL), WSE_ERR_INVALID);
	assert_err_has("does not parse");
	free(m);
	/* signature line not base64 */
	m = strdup(sig);
	p = strstr(m, "signature: ") + 11;
	*p = '*';
	assert_wse_status(verify_with(f, plugin, len, m, trusted, 1, f->now,
	    NULL), WSE_ERR_INVALID);
	assert_err_has("not base64");
	free(m);
	/* too large */
	big = malloc(WSE_PUBSIG_FILE_MAX + 2);
	memset(big, 'x', WSE_PUBSIG_FILE_MAX + 1);
	big[WSE_PUBSIG_FILE_MAX + 1] = '\0';
	memcpy(big, sig, strlen(sig));
	assert_wse_status(verify_with(f, plugin, len, big, trusted, 1, f->now,
	    NULL), WSE_ERR_INVALID);
	assert_err_has("larger than");
	free(big);
	wse_buf_free(&pem);
	free(sig);
}

static void
test_names(void **state)
{
	struct fixture *f = *state;
	wse_buf *b = wse_buf_new(WSE_PUBSIG_FILE_MAX);
	char long_name[80];
	wse_key *k = NULL;
	wse_cert *c = NULL;

	assert_true(wse_pubsig_name_ok("expense"));
	assert_true(wse_pubsig_name_ok("Expense-2.form_x"));
	assert_false(wse_pubsig_name_ok(""));
	assert_false(wse_pubsig_name_ok(".hidden"));
	assert_false(wse_pubsig_name_ok("a b"));
	assert_false(wse_pubsig_name_ok("a/b"));
	assert_false(wse_pubsig_name_ok("a\nb"));
	memset(long_name, 'a', 65);
	long_name[65] = '\0';
	assert_false(wse_pubsig_name_ok(long_name));
	long_name[64] = '\0';
	assert_true(wse_pubsig_name_ok(long_name));
	assert_true(wse_pubsig_version_ok("1.0.0-rc1+b2~x"));
	assert_false(wse_pubsig_version_ok("-1"));
	assert_false(wse_pubsig_version_ok("1 2"));

	assert_wse_status(wse_pubsig_sign(plugin, 3, "a b", "1", f->key1,
	    f->pub1, b), WSE_ERR_INVALID);
	assert_err_has("bad plugin name");
	assert_wse_status(wse_pubsig_sign(plugin, 3, "a", "", f->key1,
	    f->pub1, b), WSE_ERR_INVALID);
	assert_err_has("bad plugin version");
	assert_int_equal(wse_buf_len(b), 0);

	assert_wse_status(wse_pubsig_publisher_new("", 0, 10, &k, &c),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_pubsig_publisher_new("a\tb", 0, 10, &k, &c),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_pubsig_publisher_new("ok", 10, 10, &k, &c),
	    WSE_ERR_INVALID);
	assert_null(k);
	assert_null(c);
	wse_err_clear();
	/* UTF-8 names are fine */
	assert_wse_ok(wse_pubsig_publisher_new("Caf\xc3\xa9 Forms", 0,
	    f->now + DAY, &k, &c));
	assert_false(wse_cert_is_ca(c));
	assert_true(wse_cert_matches_key(c, k));
	wse_key_free(&k);
	wse_cert_free(&c);
	wse_buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_untrusted),
		cmocka_unit_test(test_swapped_certificate),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_not_code_signing),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
