/*
 * test_pki.c - unit tests of pki.c: keys, issuing, CRLs, chain
 * verification and the CA directory functions.  Every key and
 * certificate is minted at run time.
 */
#include "testutil.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "pki.h"
#include "pki-private.h"
#include "testpki.h"

#define DAY 86400

static testpki P;	/* shared by every test; never modified */

static int
group_setup(void **state)
{
	(void)state;
	if (testpki_init(&P, (int64_t)time(NULL)) != WSE_OK) {
		char eb[2048];

		fprintf(stderr, "testpki_init: %s\n",
		    wse_err_format(eb, sizeof(eb)));
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	testpki_free(&P);
	return 0;
}

/* The error stack mentions needle. */
static void
assert_err_mentions(const char *needle)
{
	char eb[2048];

	wse_err_format(eb, sizeof(eb));
	if (strstr(eb, needle) == NULL)
		fail_msg("error stack \"%s\" does not mention \"%s\"", eb,
		    needle);
}

static wse_status
verify_svc(wse_trust *t, const struct testpki_domain *d, int64_t now)
{
	wse_cert *chain[1] = { d->ca };

	wse_err_clear();
	return wse_trust_verify(t, d->svc, chain, 1, now, WSE_PURPOSE_SERVICE);
}

static wse_status
verify_leaf(wse_trust *t, const wse_cert *leaf, wse_cert *ca,
    wse_purpose purpose)
{
	wse_cert *chain[1] = { ca };

	wse_err_clear();
	return wse_trust_verify(t, leaf, chain, ca ? 1 : 0, P.now, purpose);
}

static size_t
count_dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static char *
join(const char *a, const char *b)
{
	char *s = NULL;

	assert_true(asprintf(&s, "%s/%s", a, b) > 0);
	return s;
}

static int
file_mode(const char *dir, const char *file)
{
	char *p = join(dir, file);
	struct stat sb;
	int r;

	r = stat(p, &sb) == 0 ? (int)(sb.st_mode & 07777) : -1;
	free(p);
	return r;
}

/* Copy of n bytes that are not NUL-terminated. */
static char *
copy_bytes(const char *p, long n)
{
	char *s = malloc((size_t)n + 1);

	assert_non_null(s);
	memcpy(s, p, (size_t)n);
	s[n] = '\0';
	return s;
}

/* PEM of pk's public half (and of its private half when asked). */
static char *
openssl_pem(EVP_PKEY *pk, char **priv_pem_r)
{
	BIO *b;
	char *p, *out;
	long n;

	assert_non_null(pk);
	b = BIO_new(BIO_s_mem());
	assert_non_null(b);
	assert_int_equal(PEM_write_bio_PUBKEY(b, pk), 1);
	n = BIO_get_mem_data(b, &p);
	out = copy_bytes(p, n);
	BIO_free(b);
	if (priv_pem_r != NULL) {
		b = BIO_new(BIO_s_mem());
		assert_int_equal(PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0,
		    NULL, NULL), 1);
		n = BIO_get_mem_data(b, &p);
		*priv_pem_r = copy_bytes(p, n);
		BIO_free(b);
	}
	return out;
}

static void
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static wse_cert *
issue(wse_cert_kind kind, const char *name, const wse_key *key,
    const wse_cert *issuer, const wse_key *issuer_key, int64_t nb,
    int64_t na, wse_status want)
{
	wse_cert_profile pr;
	wse_cert *c = NULL;

	memset(&pr, 0, sizeof(pr));
	pr.kind = kind;
	pr.name = name;
	pr.not_before = nb;
	pr.not_after = na;
	wse_err_clear();
	assert_wse_status(wse_cert_issue(&pr, key, issuer, issuer_key, &c),
	    want);
	if (want != WSE_OK)
		assert_null(c);
	return c;
}

/* ---- certificates of shapes wse_cert_issue never makes ---- */

/* One extension, as in openssl.cnf: its name and value. */
struct ext {
	const char *name;
	const char *value;
};

#define EXTS_END	{ NULL, NULL }

/* The extensions of each kind, as wse_cert_issue writes them. */
#define EXT_CA(nc)							\
	{ "basicConstraints", "critical,CA:TRUE,pathlen:0" },		\
	{ "keyUsage", "critical,keyCertSign,cRLSign" },			\
	{ "nameConstraints", (nc) }
#define EXT_SERVICE(san)						\
	{ "basicConstraints", "critical,CA:FALSE" },			\
	{ "keyUsage", "critical,digitalSignature" },			\
	{ "extendedKeyUsage", "serverAuth,clientAuth" },		\
	{ "subjectAltName", (san) }
#define EXT_TOKEN(san)							\
	{ "basicConstraints", "critical,CA:FALSE" },			\
	{ "keyUsage", "critical,digitalSignature" },			\
	{ "extendedKeyUsage", "clientAuth" },				\
	{ "subjectAltName", (san) }

/*
 * A certificate built with OpenSSL itself: a subject of the common names
 * cns (NULL-terminated; an empty subject when cns is NULL), key
 * identifiers, then exts (until a NULL name), valid nb..na, for the
 * public key pub, signed by issuer_key under issuer's name (self-signed
 * when issuer is NULL).
 */
static wse_cert *
forge(const char *const *cns, const struct ext *exts, EVP_PKEY *pub,
    const wse_cert *issuer, EVP_PKEY *issuer_key, int64_t nb, int64_t na)
{
	X509 *x = X509_new(), *ix;
	X509_NAME *name = X509_NAME_new();
	X509_EXTENSION *e;
	X509V3_CTX ctx;
	BIGNUM *bn = BN_new();
	wse_cert *c;
	size_t i;

	assert_non_null(x);
	assert_non_null(name);
	assert_non_null(bn);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(BN_rand(bn, 127, BN_RAND_TOP_ONE,
	    BN_RAND_BOTTOM_ANY), 1);
	assert_non_null(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)));
	for (i = 0; cns != NULL && cns[i] != NULL; i++)
		assert_int_equal(X509_NAME_add_entry_by_NID(name,
		    NID_commonName, MBSTRING_UTF8,
		    (const unsigned char *)cns[i], -1, -1, 0), 1);
	assert_int_equal(X509_set_subject_name(x, name), 1);
	ix = issuer != NULL ? wse_cert_x509(issuer) : x;
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(ix)),
	    1);
	assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb));
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na));
	assert_int_equal(X509_set_pubkey(x, pub), 1);
	X509V3_set_ctx(&ctx, ix, x, NULL, NULL, 0);
	e = X509V3_EXT_nconf(NULL, &ctx, "subjectKeyIdentifier", "hash");
	assert_non_null(e);
	assert_int_equal(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
	e = X509V3_EXT_nconf(NULL, &ctx, "authorityKeyIdentifier",
	    "keyid:always");
	assert_non_null(e);
	assert_int_equal(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
	for (i = 0; exts != NULL && exts[i].name != NULL; i++) {
		e = X509V3_EXT_nconf(NULL, &ctx, exts[i].name, exts[i].value);
		if (e == NULL)
			fail_msg("extension %s = %s", exts[i].name,
			    exts[i].value);
		assert_int_equal(X509_add_ext(x, e, -1), 1);
		X509_EXTENSION_free(e);
	}
	assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
	c = wse_cert_from_x509(x);
	assert_non_null(c);
	X509_free(x);
	X509_NAME_free(name);
	BN_free(bn);
	return c;
}

/* forge() under a domain of the shared PKI (-1: the root), valid for a
 * day from an hour ago, for key. */
static wse_cert *
forge_under(int d, const char *const *cns, const struct ext *exts,
    const wse_key *key)
{
	const wse_cert *ca = d < 0 ? P.root : P.dom[d].ca;
	const wse_key *ca_key = d < 0 ? P.root_key : P.dom[d].ca_key;

	return forge(cns, exts, wse_key_evp(key), ca, wse_key_evp(ca_key),
	    P.now - 3600, P.now + DAY);
}

/* Names for forge(). */
static const char *const cn_a[] = { "a.test", NULL };
static const char *const cn_alice[] = { "alice", NULL };

/* ---- keys ---- */

static void
test_key_save_mode_and_refusal(void **state)
{
	char *dir = testutil_tmpdir(), *path;
	wse_key *k = NULL, *k2 = NULL, *pub = NULL;
	wse_buf *a = wse_buf_new(4096), *b = wse_buf_new(4096), *f = NULL;

	(void)state;
	assert_non_null(dir);
	path = join(dir, "key.pem");
	assert_wse_ok(wse_key_generate(&k));
	assert_true(wse_key_is_private(k));
	assert_wse_ok(wse_key_save(k, path));
	assert_int_equal(file_mode(dir, "key.pem"), 0600);
	assert_wse_status(wse_key_save(k, path), WSE_ERR_EXISTS);
	assert_int_equal(count_dir_entries(dir), 1);	/* no temp file */

	assert_wse_ok(wse_key_load(path, &k2));
	assert_true(wse_key_is_private(k2));
	assert_wse_ok(wse_key_public_pem(k, a));
	assert_wse_ok(wse_key_public_pem(k2, b));
	assert_string_equal(wse_buf_str(a), wse_buf_str(b));
	assert_non_null(strstr(wse_buf_str(a), "BEGIN PUBLIC KEY"));

	assert_wse_ok(wse_buf_read_file(path, 65536, &f));
	assert_non_null(strstr(wse_buf_str(f), "BEGIN " "PRIVATE KEY"));

	/* a public key has no private half to save */
	assert_wse_ok(wse_key_from_public_pem(wse_buf_str(a), wse_buf_len(a),
	    &pub));
	assert_false(wse_key_is_private(pub));
	free(path);
	path = join(dir, "pub.pem");
	assert_wse_status(wse_key_save(pub, path), WSE_ERR_INVALID);
	wse_key_free(&pub);

	assert_wse_status(wse_key_load("/nonexistent/key.pem", &pub),
	    WSE_ERR_IO);
	assert_null(pub);
	free(path);
	path = join(dir, "junk.pem");
	write_text(path, "not a key\n");
	assert_wse_status(wse_key_load(path, &pub), WSE_ERR_INVALID);

	wse_key_free(&k);
	wse_key_free(&k2);
	wse_key_free(&pub);	/* NULL is fine */
	wse_key_free(NULL);
	assert_null(k);
	wse_buf_free(&a);
	wse_buf_free(&b);
	wse_buf_free(&f);
	testutil_rmtree(dir);
	free(path);
	free(dir);
}

static void
test_key_strength(void **state)
{
	EVP_PKEY *rsa1024, *rsa2048, *p384;
	char *pem, *priv, *dir = testutil_tmpdir(), *path;
	wse_key *k = NULL;

	(void)state;
	rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	rsa2048 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");

	pem = openssl_pem(rsa1024, &priv);
	assert_wse_status(wse_key_from_public_pem(pem, strlen(pem), &k),
	    WSE_ERR_UNSUPPORTED);
	assert_null(k);
	path = join(dir, "weak.pem");
	write_text(path, priv);
	assert_wse_status(wse_key_load(path, &k), WSE_ERR_UNSUPPORTED);
	free(pem);
	free(priv);
	free(path);

	pem = openssl_pem(p384, NULL);
	assert_wse_status(wse_key_from_public_pem(pem, strlen(pem), &k),
	    WSE_ERR_UNSUPPORTED);
	free(pem);

	/* RSA-2048 is accepted; its service certificate also gets
	 * keyEncipherment */
	pem = openssl_pem(rsa2048, &priv);
	assert_wse_ok(wse_key_from_public_pem(pem, strlen(pem), &k));
	assert_false(wse_key_is_private(k));
	wse_key_free(&k);
	path = join(dir, "rsa.pem");
	write_text(path, priv);
	assert_wse_ok(wse_key_load(path, &k));
	{
		wse_cert *c = issue(WSE_CERT_SERVICE, "a.test", k,
		    P.dom[0].ca, P.dom[0].ca_key, P.now - 60, P.now + DAY,
		    WSE_OK);

		assert_wse_ok(verify_leaf(P.trust, c, P.dom[0].ca,
		    WSE_PURPOSE_SERVICE));
		wse_cert_free(&c);
	}
	wse_key_free(&k);
	free(pem);
	free(priv);
	free(path);

	assert_wse_status(wse_key_from_public_pem("garbage", 7, &k),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_key_from_public_pem("", 0, &k), WSE_ERR_INVALID);

	EVP_PKEY_free(rsa1024);
	EVP_PKEY_free(rsa2048);
	EVP_PKEY_free(p384);
	testutil_rmtree(dir);
	free(dir);
}

/* ---- issuing: shape checks ---- */

static void
test_issue_shape_checks(void **state)
{
	static const char *const bad_domains[] = {
		"", "A.test", "a..test", ".a.test", "a.test.", "-a.test",
		"a-.test", "a_b.test", "a test", "a/b", "*.a.test", "a.test\n",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		".test",	/* a 64-character label */
	};
	static const char *const bad_mailboxes[] = {
		"alice", "@a.test", "alice@", "alice@A.TEST", "al ice@a.test",
		"al\"ice@a.test", "alice@b@a.test", "alice@a..test",
		"al,ice@a.test",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"@a.test",	/* a 65-character local part */
	};
	char dom[300];
	const char *hosts[2];
	wse_cert_profile pr;
	wse_key *k = NULL;
	wse_cert *c = NULL;
	size_t i;
	int64_t now = P.now;

	(void)state;
	assert_wse_ok(wse_key_generate(&k));
	for (i = 0; i < sizeof(bad_domains) / sizeof(bad_domains[0]); i++) {
		c = issue(WSE_CERT_SERVICE, bad_domains[i], k, P.dom[0].ca,
		    P.dom[0].ca_key, now - 60, now + DAY, WSE_ERR_INVALID);
		c = issue(WSE_CERT_DOMAIN_CA, bad_domains[i], k, P.root,
		    P.root_key, now - 60, now + DAY, WSE_ERR_INVALID);
	}
	for (i = 0; i < sizeof(bad_mailboxes) / sizeof(bad_mailboxes[0]); i++)
		c = issue(WSE_CERT_TOKEN, bad_mailboxes[i], k, P.dom[0].ca,
		    P.dom[0].ca_key, now - 60, now + DAY, WSE_ERR_INVALID);

	/* 253 characters are fine, 254 are not */
	memset(dom, 0, sizeof(dom));
	for (i = 0; i < 253; i++)
		dom[i] = (i % 50 == 49) ? '.' : 'a';
	assert_int_equal(strlen(dom), 253);
	c = issue(WSE_CERT_SERVICE, dom, k, NULL, k, now - 60, now + DAY,
	    WSE_OK);
	wse_cert_free(&c);
	dom[253] = 'a';
	c = issue(WSE_CERT_SERVICE, dom, k, NULL, k, now - 60, now + DAY,
	    WSE_ERR_INVALID);

	/* a 64-character local part and the full character set are fine */
	c = issue(WSE_CERT_TOKEN,
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.+-_Z"
	    "@a.test", k, P.dom[0].ca, P.dom[0].ca_key, now - 60, now + DAY,
	    WSE_OK);
	wse_cert_free(&c);

	/* times: ordered, and within the issuer's notAfter */
	c = issue(WSE_CERT_SERVICE, "a.test", k, P.dom[0].ca, P.dom[0].ca_key,
	    now, now, WSE_ERR_INVALID);
	c = issue(WSE_CERT_SERVICE, "a.test", k, P.dom[0].ca, P.dom[0].ca_key,
	    now, now - 1, WSE_ERR_INVALID);
	c = issue(WSE_CERT_SERVICE, "a.test", k, P.dom[0].ca, P.dom[0].ca_key,
	    now, wse_cert_not_after(P.dom[0].ca) + 1, WSE_ERR_INVALID);
	c = issue(WSE_CERT_SERVICE, "a.test", k, P.dom[0].ca, P.dom[0].ca_key,
	    -5, now, WSE_ERR_INVALID);
	/* exactly the issuer's notAfter, and before its notBefore: fine */
	c = issue(WSE_CERT_SERVICE, "a.test", k, P.dom[0].ca, P.dom[0].ca_key,
	    now - 30 * DAY, wse_cert_not_after(P.dom[0].ca), WSE_OK);
	assert_int_equal(wse_cert_not_before(c), now - 30 * DAY);
	assert_int_equal(wse_cert_not_after(c), wse_cert_not_after(P.dom[0].ca));
	wse_cert_free(&c);

	/* bad host names; hosts only on service certificates */
	memset(&pr, 0, sizeof(pr));
	pr.kind = WSE_CERT_SERVICE;
	pr.name = "a.test";
	pr.not_before = now - 60;
	pr.not_after = now + DAY;
	hosts[0] = "mail.a.test";
	hosts[1] = "bad host";
	pr.hosts = hosts;
	pr.nhosts = 2;
	assert_wse_status(wse_cert_issue(&pr, k, P.dom[0].ca, P.dom[0].ca_key,
	    &c), WSE_ERR_INVALID);
	pr.kind = WSE_CERT_TOKEN;
	pr.name = "alice@a.test";
	pr.nhosts = 1;
	assert_wse_status(wse_cert_issue(&pr, k, P.dom[0].ca, P.dom[0].ca_key,
	    &c), WSE_ERR_INVALID);

	/* key mismatches */
	c = issue(WSE_CERT_SERVICE, "a.test", k, P.dom[0].ca, P.dom[1].ca_key,
	    now - 60, now + DAY, WSE_ERR_INVALID);
	c = issue(WSE_CERT_ROOT, "Root", k, NULL, P.root_key, now - 60,
	    now + DAY, WSE_ERR_INVALID);
	c = issue(WSE_CERT_ROOT, "Root", k, P.root, P.root_key, now - 60,
	    now + DAY, WSE_ERR_INVALID);
	c = issue(WSE_CERT_ROOT, "Bad\001Root", k, NULL, k, now - 60,
	    now + DAY, WSE_ERR_INVALID);
	wse_key_free(&k);
}

/* ---- the hierarchy ---- */

static void
test_hierarchy_verifies(void **state)
{
	char buf[512], serial[80];
	wse_buf *san = wse_buf_new(1024);
	int d;

	(void)state;
	for (d = 0; d < 2; d++) {
		const struct testpki_domain *dom = &P.dom[d];

		assert_wse_ok(verify_svc(P.trust, dom, P.now));
		assert_wse_ok(verify_leaf(P.trust, dom->svc, dom->ca,
		    WSE_PURPOSE_ANY));
		/* the domain CA on its own, for diagnostics */
		assert_wse_ok(verify_leaf(P.trust, dom->ca, NULL,
		    WSE_PURPOSE_ANY));
		assert_wse_ok(wse_cert_domain(dom->svc, buf, sizeof(buf)));
		assert_string_equal(buf, dom->name);
		assert_wse_status(wse_cert_mailbox(dom->svc, buf, sizeof(buf)),
		    WSE_ERR_NOT_FOUND);
		assert_wse_ok(wse_cert_subject(dom->svc, buf, sizeof(buf)));
		assert_true(strncmp(buf, "CN=", 3) == 0);
		assert_string_equal(buf + 3, dom->name);
		assert_wse_ok(wse_cert_issuer(dom->svc, buf, sizeof(buf)));
		assert_true(strncmp(buf, "CN=", 3) == 0);
		assert_string_equal(buf + 3, dom->name);
		assert_wse_ok(wse_cert_issuer(dom->ca, buf, sizeof(buf)));
		assert_string_equal(buf, "CN=WSEmail Test Root");
		wse_buf_reset(san);
		assert_wse_ok(wse_cert_san_text(dom->svc, san));
		snprintf(buf, sizeof(buf), "DNS:%s, DNS:mail.%s", dom->name,
		    dom->name);
		assert_string_equal(wse_buf_str(san), buf);
		assert_true(wse_cert_is_ca(dom->ca));
		assert_false(wse_cert_is_ca(dom->svc));
		assert_true(wse_cert_matches_key(dom->svc, dom->svc_key));
		assert_false(wse_cert_matches_key(dom->svc, dom->ca_key));
		assert_wse_ok(wse_cert_check_time(dom->svc, P.now));
		assert_int_equal(wse_cert_not_before(dom->svc), P.now - 3600);
		assert_int_equal(wse_cert_not_after(dom->svc), P.now + 30 * DAY);
	}
	assert_true(wse_cert_is_ca(P.root));
	wse_buf_reset(san);
	assert_wse_ok(wse_cert_san_text(P.root, san));
	assert_int_equal(wse_buf_len(san), 0);

	/* serials: 128 random bits, lower-case hex, all different */
	assert_wse_ok(wse_cert_serial(P.dom[0].svc, serial, sizeof(serial)));
	assert_true(strlen(serial) >= 20 && strlen(serial) <= 34);
	assert_true(strspn(serial, "0123456789abcdef") == strlen(serial));
	assert_wse_ok(wse_cert_serial(P.dom[1].svc, buf, sizeof(buf)));
	assert_string_not_equal(serial, buf);
	assert_wse_status(wse_cert_serial(P.dom[0].svc, serial, 4),
	    WSE_ERR_TOO_LARGE);
	assert_wse_status(wse_cert_subject(P.root, buf, 5), WSE_ERR_TOO_LARGE);
	wse_buf_free(&san);
}

static void
test_hierarchy_files(void **state)
{
	char *p;
	wse_trust *t = NULL;
	wse_cert **chain = NULL, *svc = NULL;
	wse_key *k = NULL;
	size_t n = 0;
	char dirname[300];

	(void)state;
	assert_int_equal(file_mode(P.dir, "root/key.pem"), 0600);
	assert_int_equal(file_mode(P.dir, "a.test/ca-key.pem"), 0600);
	assert_int_equal(file_mode(P.dir, "b.test/service-key.pem"), 0600);
	assert_wse_ok(wse_trust_new(&t));
	p = join(P.dir, "root/cert.pem");
	assert_wse_ok(wse_trust_load_roots(t, p));
	free(p);
	p = join(P.dir, "root/crl.pem");
	assert_wse_ok(wse_trust_load_crls(t, p));
	free(p);
	p = join(P.dir, "a.test/crl.pem");
	assert_wse_ok(wse_trust_load_crls(t, p));
	free(p);
	p = join(P.dir, "a.test/chain.pem");
	assert_wse_ok(wse_cert_load_list(p, &chain, &n));
	free(p);
	assert_int_equal(n, 2);
	assert_wse_ok(wse_trust_verify(t, chain[0], &chain[1], 1, P.now,
	    WSE_PURPOSE_SERVICE));
	p = join(P.dir, "a.test/service.pem");
	assert_wse_ok(wse_cert_load(p, &svc));
	free(p);
	p = join(P.dir, "a.test/service-key.pem");
	assert_wse_ok(wse_key_load(p, &k));
	free(p);
	assert_true(wse_cert_matches_key(svc, k));
	assert_true(wse_cert_matches_key(chain[0], k));
	/* b.test's CRL is not loaded: its service cannot be checked */
	assert_wse_status(verify_svc(t, &P.dom[1], P.now), WSE_ERR_TEMPFAIL);
	snprintf(dirname, sizeof(dirname), "%s/root/cert.pem", P.dir);
	/* a service certificate is not a root */
	assert_wse_status(wse_trust_add_root(t, svc), WSE_ERR_INVALID);
	p = join(P.dir, "a.test/service.pem");
	assert_wse_status(wse_trust_load_roots(t, p), WSE_ERR_INVALID);
	free(p);
	assert_wse_status(wse_trust_load_crls(t, dirname), WSE_ERR_INVALID);
	wse_cert_list_free(&chain, n);
	assert_null(chain);
	wse_cert_free(&svc);
	wse_key_free(&k);
	wse_trust_free(&t);
	wse_trust_free(&t);
	assert_null(t);
}

static void
test_der_pem_roundtrip(void **state)
{
	wse_buf *der = wse_buf_new(1 << 16), *pem = wse_buf_new(1 << 16);
	wse_cert *c = NULL, *d = NULL;
	wse_crl *crl = NULL;
	char s1[80], s2[80];
	char *dir = testutil_tmpdir(), *p;
	uint8_t *junk;

	(void)state;
	assert_wse_ok(wse_cert_to_der(P.dom[0].svc, der));
	assert_wse_ok(wse_cert_from_der(wse_buf_data(der), wse_buf_len(der),
	    &c));
	assert_wse_ok(wse_cert_serial(c, s1, sizeof(s1)));
	assert_wse_ok(wse_cert_serial(P.dom[0].svc, s2, sizeof(s2)));
	assert_string_equal(s1, s2);
	wse_cert_free(&c);

	/* trailing garbage and truncation */
	junk = malloc(wse_buf_len(der) + 1);
	memcpy(junk, wse_buf_data(der), wse_buf_len(der));
	junk[wse_buf_len(der)] = 0;
	assert_wse_status(wse_cert_from_der(junk, wse_buf_len(der) + 1, &c),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_cert_from_der(junk, wse_buf_len(der) - 1, &c),
	    WSE_ERR_INVALID);
	assert_null(c);
	free(junk);

	assert_wse_ok(wse_cert_to_pem(P.dom[0].svc, pem));
	assert_non_null(strstr(wse_buf_str(pem), "BEGIN CERTIFICATE"));

	p = join(dir, "c.pem");
	assert_wse_ok(wse_cert_save(P.dom[0].svc, p));
	assert_int_equal(file_mode(dir, "c.pem"), 0644);
	assert_wse_ok(wse_cert_save(P.dom[1].svc, p));	/* replaces */
	assert_wse_ok(wse_cert_load(p, &c));
	assert_wse_ok(wse_cert_serial(c, s1, sizeof(s1)));
	assert_wse_ok(wse_cert_serial(P.dom[1].svc, s2, sizeof(s2)));
	assert_string_equal(s1, s2);
	free(p);

	p = join(dir, "crl.pem");
	assert_wse_ok(wse_crl_save(P.dom[0].crl, p));
	assert_wse_ok(wse_crl_load(p, &crl));
	wse_crl_free(&crl);
	assert_null(crl);
	assert_wse_status(wse_cert_load(p, &d), WSE_ERR_INVALID);
	free(p);
	assert_int_equal(count_dir_entries(dir), 2);

	d = wse_cert_dup(c);
	assert_non_null(d);
	wse_cert_free(&c);
	assert_wse_ok(wse_cert_serial(d, s1, sizeof(s1)));	/* still alive */
	wse_cert_free(&d);
	wse_cert_free(&d);
	wse_buf_free(&der);
	wse_buf_free(&pem);
	testutil_rmtree(dir);
	free(dir);
}

/* ---- tokens ---- */

static void
test_token_issue_and_verify(void **state)
{
	wse_key *client = NULL, *pub = NULL;
	wse_cert *tok = NULL;
	wse_buf *pem = wse_buf_new(4096);
	char buf[300];

	(void)state;
	assert_wse_ok(wse_key_generate(&client));
	assert_wse_ok(wse_key_public_pem(client, pem));
	assert_wse_ok(wse_key_from_public_pem(wse_buf_str(pem),
	    wse_buf_len(pem), &pub));
	assert_wse_ok(wse_pki_issue_token(P.dom[0].ca, P.dom[0].ca_key, pub,
	    "Alice.Smith+x@a.test", 4 * 3600, P.now, &tok));
	/* the documented default interval: now - 60 .. now + lifetime */
	assert_int_equal(wse_cert_not_before(tok), P.now - 60);
	assert_int_equal(wse_cert_not_after(tok), P.now + 4 * 3600);
	assert_wse_ok(verify_leaf(P.trust, tok, P.dom[0].ca,
	    WSE_PURPOSE_TOKEN));
	assert_wse_ok(wse_cert_mailbox(tok, buf, sizeof(buf)));
	assert_string_equal(buf, "alice.smith+x@a.test");
	assert_wse_ok(wse_cert_domain(tok, buf, sizeof(buf)));
	assert_string_equal(buf, "a.test");
	assert_false(wse_cert_is_ca(tok));
	assert_true(wse_cert_matches_key(tok, client));
	assert_true(wse_cert_matches_key(tok, pub));
	assert_wse_status(wse_cert_mailbox(tok, buf, 5), WSE_ERR_TOO_LARGE);

	/* a token is not a service certificate */
	assert_wse_status(verify_leaf(P.trust, tok, P.dom[0].ca,
	    WSE_PURPOSE_SERVICE), WSE_ERR_UNTRUSTED);
	/* nor is a service certificate a token */
	assert_wse_status(verify_leaf(P.trust, P.dom[0].svc, P.dom[0].ca,
	    WSE_PURPOSE_TOKEN), WSE_ERR_UNTRUSTED);
	/* and a CA is neither */
	assert_wse_status(verify_leaf(P.trust, P.dom[0].ca, NULL,
	    WSE_PURPOSE_SERVICE), WSE_ERR_UNTRUSTED);
	assert_wse_status(verify_leaf(P.trust, P.dom[0].ca, NULL,
	    WSE_PURPOSE_TOKEN), WSE_ERR_UNTRUSTED);
	/* without its chain, a token does not verify */
	assert_wse_status(verify_leaf(P.trust, tok, NULL, WSE_PURPOSE_TOKEN),
	    WSE_ERR_UNTRUSTED);
	/* a chain of the wrong domain does not help */
	assert_wse_status(verify_leaf(P.trust, tok, P.dom[1].ca,
	    WSE_PURPOSE_TOKEN), WSE_ERR_UNTRUSTED);

	wse_cert_free(&tok);
	wse_key_free(&client);
	wse_key_free(&pub);
	wse_buf_free(&pem);
}

/* Names too long for a CN: empty subject, critical subjectAltName. */
static void
test_long_names(void **state)
{
	static const char mbox[] =
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "@a.test";
	static const char host[] =
	    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb."
	    "cccccccccc.a.test";
	wse_key *k = NULL;
	wse_cert *c = NULL;
	char buf[300];

	(void)state;
	assert_wse_ok(wse_key_generate(&k));
	assert_wse_ok(wse_pki_issue_token(P.dom[0].ca, P.dom[0].ca_key, k,
	    mbox, 600, P.now, &c));
	assert_wse_ok(verify_leaf(P.trust, c, P.dom[0].ca, WSE_PURPOSE_TOKEN));
	assert_wse_ok(wse_cert_subject(c, buf, sizeof(buf)));
	assert_string_equal(buf, "");
	assert_wse_ok(wse_cert_mailbox(c, buf, sizeof(buf)));
	assert_string_equal(buf, mbox);
	wse_cert_free(&c);
	wse_key_free(&k);

	assert_wse_ok(testpki_service(&P, 0, host, P.now - 60, P.now + DAY,
	    &k, &c));
	assert_wse_ok(verify_leaf(P.trust, c, P.dom[0].ca,
	    WSE_PURPOSE_SERVICE));
	assert_wse_ok(wse_cert_domain(c, buf, sizeof(buf)));
	assert_string_equal(buf, host);
	wse_cert_free(&c);
	wse_key_free(&k);
	/* a domain CA's name is its CN */
	assert_wse_ok(wse_key_generate(&k));
	c = issue(WSE_CERT_DOMAIN_CA, host, k, P.root, P.root_key, P.now - 60,
	    P.now + DAY, WSE_ERR_INVALID);
	wse_key_free(&k);
}

static void
test_token_cross_domain(void **state)
{
	wse_key *client = NULL;
	wse_cert *tok = NULL, *svc = NULL;
	wse_key *svc_key = NULL;

	(void)state;
	assert_wse_ok(wse_key_generate(&client));
	/* policy: a.test's CA does not issue for b.test */
	wse_err_clear();
	assert_wse_status(wse_pki_issue_token(P.dom[0].ca, P.dom[0].ca_key,
	    client, "bob@b.test", 3600, P.now, &tok), WSE_ERR_NOT_AUTHORIZED);
	assert_null(tok);
	/* nor for a subdomain */
	assert_wse_status(wse_pki_issue_token(P.dom[0].ca, P.dom[0].ca_key,
	    client, "bob@x.a.test", 3600, P.now, &tok),
	    WSE_ERR_NOT_AUTHORIZED);

	/* forced through the lower level: the name constraints refuse it */
	tok = issue(WSE_CERT_TOKEN, "bob@b.test", client, P.dom[0].ca,
	    P.dom[0].ca_key, P.now - 60, P.now + 3600, WSE_OK);
	assert_wse_status(verify_leaf(P.trust, tok, P.dom[0].ca,
	    WSE_PURPOSE_TOKEN), WSE_ERR_UNTRUSTED);
	assert_err_mentions("permitted subtree violation");
	wse_cert_free(&tok);
	tok = issue(WSE_CERT_TOKEN, "bob@x.a.test", client, P.dom[0].ca,
	    P.dom[0].ca_key, P.now - 60, P.now + 3600, WSE_OK);
	assert_wse_status(verify_leaf(P.trust, tok, P.dom[0].ca,
	    WSE_PURPOSE_TOKEN), WSE_ERR_UNTRUSTED);
	assert_err_mentions("permitted subtree violation");
	wse_cert_free(&tok);

	/* a service certificate for b.test from a.test's CA */
	assert_wse_ok(testpki_service(&P, 0, "b.test", P.now - 60,
	    P.now + DAY, &svc_key, &svc));
	assert_wse_status(verify_leaf(P.trust, svc, P.dom[0].ca,
	    WSE_PURPOSE_SERVICE), WSE_ERR_UNTRUSTED);
	assert_err_mentions("permitted subtree violation");
	wse_cert_free(&svc);
	wse_key_free(&svc_key);
	/* a subdomain of its own domain is within the constraints */
	assert_wse_ok(testpki_service(&P, 0, "mail.a.test", P.now - 60,
	    P.now + DAY, &svc_key, &svc));
	assert_wse_ok(verify_leaf(P.trust, svc, P.dom[0].ca,
	    WSE_PURPOSE_SERVICE));
	wse_cert_free(&svc);
	wse_key_free(&svc_key);
	wse_key_free(&client);
}

static void
test_token_lifetime_and_policy(void **state)
{
	wse_key *client = NULL, *ca_key = NULL;
	wse_cert *tok = NULL, *ca = NULL;
	int64_t now = P.now;

	(void)state;
	assert_wse_ok(wse_key_generate(&client));

	/* clamped to the CA's notAfter */
	assert_wse_ok(wse_pki_issue_token(P.dom[1].ca, P.dom[1].ca_key,
	    client, "carol@b.test", 365 * DAY, now, &tok));
	assert_int_equal(wse_cert_not_after(tok),
	    wse_cert_not_after(P.dom[1].ca));
	assert_wse_ok(verify_leaf(P.trust, tok, P.dom[1].ca,
	    WSE_PURPOSE_TOKEN));
	wse_cert_free(&tok);
	assert_wse_ok(wse_pki_issue_token(P.dom[1].ca, P.dom[1].ca_key,
	    client, "carol@b.test", INT64_MAX, now, &tok));
	assert_int_equal(wse_cert_not_after(tok),
	    wse_cert_not_after(P.dom[1].ca));
	wse_cert_free(&tok);
	/* one second */
	assert_wse_ok(wse_pki_issue_token(P.dom[1].ca, P.dom[1].ca_key,
	    client, "carol@b.test", 1, now, &tok));
	assert_int_equal(wse_cert_not_after(tok), now + 1);
	wse_cert_free(&tok);

	/* lifetime must be positive; mailbox well formed */
	assert_wse_status(wse_pki_issue_token(P.dom[1].ca, P.dom[1].ca_key,
	    client, "carol@b.test", 0, now, &tok), WSE_ERR_INVALID);
	assert_wse_status(wse_pki_issue_token(P.dom[1].ca, P.dom[1].ca_key,
	    client, "carol@b.test", -1, now, &tok), WSE_ERR_INVALID);
	assert_wse_status(wse_pki_issue_token(P.dom[1].ca, P.dom[1].ca_key,
	    client, "carol b@b.test", 60, now, &tok), WSE_ERR_INVALID);
	assert_wse_status(wse_pki_issue_token(P.dom[1].ca, P.dom[1].ca_key,
	    client, "carol@B.test", 60, now, &tok), WSE_ERR_INVALID);
	assert_wse_status(wse_pki_issue_token(P.dom[1].ca, P.dom[1].ca_key,
	    client, NULL, 60, now, &tok), WSE_ERR_INVALID);
	/* the CA key must match the CA */
	assert_wse_status(wse_pki_issue_token(P.dom[1].ca, P.dom[0].ca_key,
	    client, "carol@b.test", 60, now, &tok), WSE_ERR_INVALID);
	/* only a domain CA issues tokens: not a service, not the root */
	assert_wse_status(wse_pki_issue_token(P.dom[1].svc, P.dom[1].svc_key,
	    client, "carol@b.test", 60, now, &tok), WSE_ERR_NOT_AUTHORIZED);
	assert_wse_status(wse_pki_issue_token(P.root, P.root_key,
	    client, "carol@b.test", 60, now, &tok), WSE_ERR_NOT_AUTHORIZED);
	/* an expired domain CA issues nothing */
	assert_wse_status(wse_pki_issue_token(P.dom[1].ca, P.dom[1].ca_key,
	    client, "carol@b.test", 60, now + 31 * DAY, &tok),
	    WSE_ERR_CERT_EXPIRED);
	assert_null(tok);

	/* a CA that expires in 10 s: the token ends with it */
	assert_wse_ok(wse_key_generate(&ca_key));
	ca = issue(WSE_CERT_DOMAIN_CA, "c.test", ca_key, P.root, P.root_key,
	    now - 60, now + 10, WSE_OK);
	assert_wse_ok(wse_pki_issue_token(ca, ca_key, client, "dan@c.test",
	    3600, now, &tok));
	assert_int_equal(wse_cert_not_after(tok), now + 10);
	wse_cert_free(&tok);
	wse_cert_free(&ca);
	wse_key_free(&ca_key);
	wse_key_free(&client);
}

/* ---- who may issue: the shape of a domain CA ---- */

#define NC_A	"critical,permitted;DNS:a.test,permitted;email:a.test"

static const char *const cn_b[] = { "b.test", NULL };
static const char *const cn_aa[] = { "a.test", "a.test", NULL };
static const char *const cn_ab[] = { "a.test", "b.test", NULL };

/*
 * Domain CA certificates, each signed by the root and otherwise sound,
 * that must not issue for a.test: the issuer-side checks refuse each for
 * the reason given.
 */
static const struct odd_ca {
	const char *const *cns;
	const char *nc;		/* NULL: no nameConstraints extension */
	const char *reason;	/* what the error says */
} odd_cas[] = {
	{ cn_a, NULL, "has no name constraints" },
	{ cn_a, "permitted;DNS:a.test,permitted;email:a.test",
	    "are not critical" },
	{ cn_aa, NC_A, "exactly one common name" },
	{ cn_ab, NC_A, "exactly one common name" },
	{ NULL, NC_A, "exactly one common name" },
	{ cn_a, "critical,permitted;DNS:b.test,permitted;email:b.test",
	    "permit DNS:b.test" },
	{ cn_b, NC_A, "permit DNS:a.test" },
	{ cn_a, NC_A ",permitted;DNS:b.test", "permit DNS:b.test" },
	{ cn_a, NC_A ",permitted;email:b.test", "permit email:b.test" },
	{ cn_a, NC_A ",permitted;email:.a.test", "permit email:.a.test" },
	{ cn_a, NC_A ",permitted;IP:10.0.0.0/255.0.0.0", "permit IP:" },
	{ cn_a, NC_A ",permitted;email:a.test", "once each" },
	{ cn_a, "critical,permitted;email:a.test", "once each" },
	{ cn_a, "critical,permitted;DNS:a.test", "once each" },
	{ cn_a, "critical,excluded;DNS:b.test", "once each" },
	{ cn_a, "critical,permitted;DNS:x.a.test,permitted;email:x.a.test",
	    "permit DNS:x.a.test" },
};

static wse_cert *
odd_ca(const struct odd_ca *o, const wse_key *key)
{
	const struct ext exts[] = { EXT_CA(o->nc), EXTS_END };
	const struct ext no_nc[] = {
		{ "basicConstraints", "critical,CA:TRUE,pathlen:0" },
		{ "keyUsage", "critical,keyCertSign,cRLSign" },
		EXTS_END,
	};

	return forge_under(-1, o->cns, o->nc != NULL ? exts : no_nc, key);
}

/* Tokens come only from a CA of exactly the domain CA's shape. */
static void
test_token_issuer_shape(void **state)
{
	const struct ext good[] = { EXT_CA(NC_A), EXTS_END };
	wse_key *ck = NULL, *client = NULL;
	wse_cert *ca = NULL, *tok = NULL;
	wse_crl *crl = NULL;
	wse_trust *t = NULL;
	size_t i;

	(void)state;
	assert_wse_ok(wse_key_generate(&ck));
	assert_wse_ok(wse_key_generate(&client));
	/* the control: a CA built the same way, of the right shape */
	ca = forge_under(-1, cn_a, good, ck);
	assert_wse_ok(wse_pki_issue_token(ca, ck, client, "alice@a.test", 600,
	    P.now, &tok));
	assert_wse_ok(wse_crl_issue(ca, ck, NULL, 0, P.now - 60, P.now + DAY,
	    &crl));
	assert_wse_ok(testpki_trust(&P, 1, 0, 1, &t));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	assert_wse_ok(verify_leaf(t, tok, ca, WSE_PURPOSE_TOKEN));
	wse_trust_free(&t);
	wse_crl_free(&crl);
	wse_cert_free(&tok);
	wse_cert_free(&ca);

	for (i = 0; i < sizeof(odd_cas) / sizeof(odd_cas[0]); i++) {
		ca = odd_ca(&odd_cas[i], ck);
		wse_err_clear();
		if (wse_pki_issue_token(ca, ck, client, "alice@a.test", 600,
		    P.now, &tok) != WSE_ERR_NOT_AUTHORIZED)
			fail_msg("odd CA %zu (%s): not refused", i,
			    odd_cas[i].reason);
		assert_null(tok);
		assert_err_mentions(odd_cas[i].reason);
		wse_cert_free(&ca);
	}
	wse_key_free(&client);
	wse_key_free(&ck);
}

/* DIR/DOMAIN holding only ca.pem and ca-key.pem, as given. */
static char *
ca_dir_with(const char *pki, const char *domain, const wse_cert *ca,
    const wse_key *key)
{
	char *d = join(pki, domain), *p;

	testutil_rmtree(d);
	assert_int_equal(mkdir(d, 0755), 0);
	p = join(d, "ca.pem");
	assert_wse_ok(wse_cert_save(ca, p));
	free(p);
	p = join(d, "ca-key.pem");
	assert_wse_ok(wse_key_save(key, p));
	free(p);
	return d;
}

/* wse_ca_service_issue issues only with DOMAIN's own domain CA, and
 * writes nothing otherwise. */
static void
test_ca_service_issuer(void **state)
{
	static const char *const hosts[] = { "mail.a.test" };
	const struct ext good[] = { EXT_CA(NC_A), EXTS_END };
	char *pki = testutil_tmpdir(), *d;
	wse_key *ck = NULL;
	wse_cert *ca = NULL;
	size_t i;

	(void)state;
	assert_non_null(pki);
	assert_wse_ok(wse_key_generate(&ck));

	/* another domain's genuine CA, filed under a.test */
	d = ca_dir_with(pki, "a.test", P.dom[1].ca, P.dom[1].ca_key);
	wse_err_clear();
	assert_wse_status(wse_ca_service_issue(pki, "a.test", hosts, 1, 0,
	    P.now), WSE_ERR_NOT_AUTHORIZED);
	assert_err_mentions("is the CA certificate of b.test, not of a.test");
	assert_int_equal(count_dir_entries(d), 2);
	free(d);
	/* a service certificate in the CA's place */
	d = ca_dir_with(pki, "a.test", P.dom[0].svc, P.dom[0].svc_key);
	wse_err_clear();
	assert_wse_status(wse_ca_service_issue(pki, "a.test", NULL, 0, 0,
	    P.now), WSE_ERR_NOT_AUTHORIZED);
	assert_err_mentions("not a CA certificate");
	assert_int_equal(count_dir_entries(d), 2);
	free(d);
	/* the CA's certificate with another CA's key */
	d = ca_dir_with(pki, "a.test", P.dom[0].ca, P.dom[1].ca_key);
	wse_err_clear();
	assert_wse_status(wse_ca_service_issue(pki, "a.test", NULL, 0, 0,
	    P.now), WSE_ERR_INVALID);
	assert_err_mentions("ca-key.pem does not match");
	assert_int_equal(count_dir_entries(d), 2);
	free(d);

	for (i = 0; i < sizeof(odd_cas) / sizeof(odd_cas[0]); i++) {
		ca = odd_ca(&odd_cas[i], ck);
		d = ca_dir_with(pki, "a.test", ca, ck);
		wse_err_clear();
		if (wse_ca_service_issue(pki, "a.test", hosts, 1, 0, P.now) !=
		    WSE_ERR_NOT_AUTHORIZED)
			fail_msg("odd CA %zu (%s): not refused", i,
			    odd_cas[i].reason);
		assert_err_mentions(odd_cas[i].reason);
		assert_int_equal(count_dir_entries(d), 2);
		free(d);
		wse_cert_free(&ca);
	}

	/* the control: the right shape issues */
	ca = forge_under(-1, cn_a, good, ck);
	d = ca_dir_with(pki, "a.test", ca, ck);
	assert_wse_ok(wse_ca_service_issue(pki, "a.test", hosts, 1, 0, P.now));
	assert_int_equal(count_dir_entries(d), 5);
	free(d);
	wse_cert_free(&ca);
	wse_key_free(&ck);
	testutil_rmtree(pki);
	free(pki);
}

/* ---- revocation and CRLs ---- */

static void
test_revoked_service(void **state)
{
	char serial[80];
	const char *serials[1] = { serial };
	wse_crl *crl = NULL;
	wse_trust *t = NULL;

	(void)state;
	assert_wse_ok(wse_cert_serial(P.dom[0].svc, serial, sizeof(serial)));
	assert_wse_ok(wse_crl_issue(P.dom[0].ca, P.dom[0].ca_key, serials, 1,
	    P.now - 3600, P.now + DAY, &crl));
	assert_wse_ok(testpki_trust(&P, 1, 0, 1, &t));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	assert_wse_status(verify_svc(t, &P.dom[0], P.now), WSE_ERR_REVOKED);
	assert_err_mentions("certificate revoked");
	assert_err_mentions("CN=a.test");
	/* b.test is unaffected */
	assert_wse_ok(verify_svc(t, &P.dom[1], P.now));
	wse_trust_free(&t);
	wse_crl_free(&crl);

	/* a CRL signed with the wrong key is no CRL at all */
	assert_wse_status(wse_crl_issue(P.dom[0].ca, P.dom[1].ca_key, serials,
	    1, P.now - 3600, P.now + DAY, &crl), WSE_ERR_INVALID);
	assert_wse_status(wse_crl_issue(P.dom[0].ca, P.dom[0].ca_key, serials,
	    1, P.now, P.now, &crl), WSE_ERR_INVALID);
	serial[0] = 'x';
	assert_wse_status(wse_crl_issue(P.dom[0].ca, P.dom[0].ca_key, serials,
	    1, P.now - 3600, P.now + DAY, &crl), WSE_ERR_INVALID);
	assert_null(crl);
}

static void
test_revoked_domain_ca(void **state)
{
	char serial[80];
	const char *serials[1] = { serial };
	wse_crl *crl = NULL;
	wse_trust *t = NULL;
	wse_key *client = NULL;
	wse_cert *tok = NULL;

	(void)state;
	assert_wse_ok(wse_cert_serial(P.dom[0].ca, serial, sizeof(serial)));
	assert_wse_ok(wse_crl_issue(P.root, P.root_key, serials, 1,
	    P.now - 3600, P.now + DAY, &crl));
	assert_wse_ok(testpki_trust(&P, 0, 1, 1, &t));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	assert_wse_status(verify_svc(t, &P.dom[0], P.now), WSE_ERR_REVOKED);
	assert_wse_ok(verify_svc(t, &P.dom[1], P.now));
	/* tokens of the revoked domain CA fall with it */
	assert_wse_ok(wse_key_generate(&client));
	assert_wse_ok(wse_pki_issue_token(P.dom[0].ca, P.dom[0].ca_key,
	    client, "alice@a.test", 3600, P.now, &tok));
	assert_wse_status(verify_leaf(t, tok, P.dom[0].ca, WSE_PURPOSE_TOKEN),
	    WSE_ERR_REVOKED);
	wse_cert_free(&tok);
	wse_key_free(&client);
	wse_trust_free(&t);
	wse_crl_free(&crl);
}

static void
test_missing_and_stale_crls(void **state)
{
	wse_trust *t = NULL;
	wse_crl *crl = NULL;

	(void)state;
	/* no domain CRL */
	assert_wse_ok(testpki_trust(&P, 1, 0, 1, &t));
	assert_wse_status(verify_svc(t, &P.dom[0], P.now), WSE_ERR_TEMPFAIL);
	assert_err_mentions("unable to get certificate CRL");
	assert_wse_ok(verify_svc(t, &P.dom[1], P.now));
	wse_trust_free(&t);
	/* no root CRL: nothing below the root can be checked */
	assert_wse_ok(testpki_trust(&P, 0, 1, 1, &t));
	assert_wse_status(verify_svc(t, &P.dom[0], P.now), WSE_ERR_TEMPFAIL);
	assert_wse_status(verify_svc(t, &P.dom[1], P.now), WSE_ERR_TEMPFAIL);
	wse_trust_free(&t);

	/* an expired domain CRL */
	assert_wse_ok(wse_crl_issue(P.dom[0].ca, P.dom[0].ca_key, NULL, 0,
	    P.now - 7200, P.now - 3600, &crl));
	assert_wse_ok(testpki_trust(&P, 1, 0, 1, &t));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	assert_wse_status(verify_svc(t, &P.dom[0], P.now), WSE_ERR_TEMPFAIL);
	assert_err_mentions("CRL has expired");
	wse_trust_free(&t);
	wse_crl_free(&crl);
	/* the shared store's CRLs expire after 7 days */
	assert_wse_status(verify_svc(P.trust, &P.dom[0], P.now + 8 * DAY),
	    WSE_ERR_TEMPFAIL);

	/* a CRL that is not valid yet */
	assert_wse_ok(wse_crl_issue(P.dom[0].ca, P.dom[0].ca_key, NULL, 0,
	    P.now + 3600, P.now + DAY, &crl));
	assert_wse_ok(testpki_trust(&P, 1, 0, 1, &t));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	assert_wse_status(verify_svc(t, &P.dom[0], P.now), WSE_ERR_TEMPFAIL);
	wse_trust_free(&t);
	wse_crl_free(&crl);

	/* A permanent verdict wins over "cannot decide": an expired leaf
	 * without its CRL is expired, a certificate listed on a stale CRL
	 * is revoked, a stranger is untrusted. */
	{
		wse_key *k = NULL;
		wse_cert *c = NULL;
		char serial[80];
		const char *serials[1] = { serial };

		assert_wse_ok(testpki_service(&P, 0, "a.test", P.now - 7200,
		    P.now - 3700, &k, &c));
		assert_wse_ok(testpki_trust(&P, 1, 0, 1, &t));
		assert_wse_status(verify_leaf(t, c, P.dom[0].ca,
		    WSE_PURPOSE_SERVICE), WSE_ERR_CERT_EXPIRED);
		wse_cert_free(&c);
		wse_key_free(&k);
		assert_wse_ok(testpki_service(&P, -1, "a.test", P.now - 60,
		    P.now + DAY, &k, &c));
		assert_wse_status(verify_leaf(t, c, NULL, WSE_PURPOSE_SERVICE),
		    WSE_ERR_UNTRUSTED);
		wse_cert_free(&c);
		wse_key_free(&k);
		assert_wse_status(verify_leaf(t, P.dom[0].svc, P.dom[0].ca,
		    WSE_PURPOSE_TOKEN), WSE_ERR_UNTRUSTED);
		wse_trust_free(&t);

		assert_wse_ok(wse_cert_serial(P.dom[0].svc, serial,
		    sizeof(serial)));
		assert_wse_ok(wse_crl_issue(P.dom[0].ca, P.dom[0].ca_key,
		    serials, 1, P.now - 7200, P.now - 3600, &crl));
		assert_wse_ok(testpki_trust(&P, 1, 0, 1, &t));
		assert_wse_ok(wse_trust_add_crl(t, crl));
		assert_wse_status(verify_svc(t, &P.dom[0], P.now),
		    WSE_ERR_REVOKED);
		wse_trust_free(&t);
		wse_crl_free(&crl);
	}

	/* b.test's CRL offered for a.test: still missing */
	assert_wse_ok(testpki_trust(&P, 1, 0, 0, &t));
	assert_wse_ok(wse_trust_add_crl(t, P.dom[1].crl));
	assert_wse_status(verify_svc(t, &P.dom[0], P.now), WSE_ERR_TEMPFAIL);
	wse_trust_free(&t);
}

/* ---- validity, self-signed, wrong issuer ---- */

static void
test_leaf_times(void **state)
{
	wse_key *k = NULL;
	wse_cert *c = NULL;

	(void)state;
	assert_wse_ok(testpki_service(&P, 0, "a.test", P.now - 7200,
	    P.now - 3700, &k, &c));
	assert_wse_status(verify_leaf(P.trust, c, P.dom[0].ca,
	    WSE_PURPOSE_SERVICE), WSE_ERR_CERT_EXPIRED);
	assert_err_mentions("certificate has expired");
	assert_wse_status(wse_cert_check_time(c, P.now), WSE_ERR_CERT_EXPIRED);
	assert_wse_ok(wse_cert_check_time(c, P.now - 7200));
	assert_wse_ok(wse_cert_check_time(c, P.now - 3700));
	wse_cert_free(&c);
	wse_key_free(&k);

	assert_wse_ok(testpki_service(&P, 0, "a.test", P.now + 3600,
	    P.now + 7200, &k, &c));
	assert_wse_status(verify_leaf(P.trust, c, P.dom[0].ca,
	    WSE_PURPOSE_SERVICE), WSE_ERR_CERT_NOT_YET_VALID);
	assert_wse_status(wse_cert_check_time(c, P.now),
	    WSE_ERR_CERT_NOT_YET_VALID);
	wse_cert_free(&c);
	wse_key_free(&k);

	/* the whole hierarchy has expired after 30 days */
	assert_wse_status(verify_svc(P.trust, &P.dom[0], P.now + 31 * DAY),
	    WSE_ERR_CERT_EXPIRED);
	/* and was not valid two hours before "now" */
	assert_wse_status(verify_svc(P.trust, &P.dom[0], P.now - 7200),
	    WSE_ERR_CERT_NOT_YET_VALID);
}

static void
test_self_signed_and_strangers(void **state)
{
	wse_key *k = NULL, *rk = NULL, *ck = NULL;
	wse_cert *c = NULL, *root2 = NULL, *ca2 = NULL, *svc2 = NULL;

	(void)state;
	/* self-signed with the right name */
	assert_wse_ok(testpki_service(&P, -1, "a.test", P.now - 60,
	    P.now + DAY, &k, &c));
	assert_wse_status(verify_leaf(P.trust, c, NULL, WSE_PURPOSE_SERVICE),
	    WSE_ERR_UNTRUSTED);
	assert_err_mentions("self-signed");
	assert_wse_status(verify_leaf(P.trust, c, P.dom[0].ca,
	    WSE_PURPOSE_SERVICE), WSE_ERR_UNTRUSTED);
	assert_wse_status(verify_leaf(P.trust, c, NULL, WSE_PURPOSE_ANY),
	    WSE_ERR_UNTRUSTED);
	wse_cert_free(&c);
	wse_key_free(&k);

	/* a look-alike hierarchy under another root */
	assert_wse_ok(wse_key_generate(&rk));
	assert_wse_ok(wse_key_generate(&ck));
	assert_wse_ok(wse_key_generate(&k));
	root2 = issue(WSE_CERT_ROOT, "WSEmail Test Root", rk, NULL, rk,
	    P.now - 3600, P.now + 30 * DAY, WSE_OK);
	ca2 = issue(WSE_CERT_DOMAIN_CA, "a.test", ck, root2, rk,
	    P.now - 3600, P.now + 30 * DAY, WSE_OK);
	svc2 = issue(WSE_CERT_SERVICE, "a.test", k, ca2, ck,
	    P.now - 3600, P.now + 30 * DAY, WSE_OK);
	assert_wse_status(verify_leaf(P.trust, svc2, ca2, WSE_PURPOSE_SERVICE),
	    WSE_ERR_UNTRUSTED);
	/* the genuine CA's name, the wrong signature */
	assert_wse_status(verify_leaf(P.trust, svc2, P.dom[0].ca,
	    WSE_PURPOSE_SERVICE), WSE_ERR_UNTRUSTED);
	/* a service certificate cannot issue: pathlen 0 / not a CA */
	wse_cert_free(&c);
	c = issue(WSE_CERT_SERVICE, "a.test", ck, P.dom[0].svc,
	    P.dom[0].svc_key, P.now - 60, P.now + DAY, WSE_OK);
	{
		wse_cert *chain[2] = { P.dom[0].svc, P.dom[0].ca };

		wse_err_clear();
		assert_wse_status(wse_trust_verify(P.trust, c, chain, 2, P.now,
		    WSE_PURPOSE_SERVICE), WSE_ERR_UNTRUSTED);
	}
	wse_cert_free(&c);
	wse_cert_free(&svc2);
	wse_cert_free(&ca2);
	wse_cert_free(&root2);
	wse_key_free(&k);
	wse_key_free(&ck);
	wse_key_free(&rk);
}

/* ---- verification: shapes, paths, CRLs ---- */

/* Leaves under a.test's CA that pass OpenSSL's own checks (chain, name
 * constraints, CRLs, purpose) but are not a service certificate or a
 * token as wse_cert_issue makes them: refused for the reason given. */
static const struct odd_leaf {
	wse_purpose purpose;
	const char *const *cns;
	struct ext exts[6];
	const char *reason;
} odd_leaves[] = {
	{ WSE_PURPOSE_SERVICE, cn_a,
	  { EXT_SERVICE("DNS:a.test"), EXTS_END }, NULL },
	{ WSE_PURPOSE_TOKEN, NULL,
	  { EXT_TOKEN("critical,email:alice@a.test"), EXTS_END }, NULL },
	{ WSE_PURPOSE_SERVICE, cn_a,
	  { EXT_SERVICE("DNS:a.test,email:postmaster@a.test"), EXTS_END },
	  "a service certificate names DNS names only" },
	{ WSE_PURPOSE_SERVICE, cn_a,
	  { EXT_SERVICE("DNS:a.test,URI:https://a.test/"), EXTS_END },
	  "a service certificate names DNS names only" },
	{ WSE_PURPOSE_SERVICE, cn_a,
	  { { "basicConstraints", "critical,CA:FALSE" },
	    { "keyUsage", "critical,digitalSignature" },
	    { "extendedKeyUsage", "serverAuth,clientAuth" }, EXTS_END },
	  "a service certificate names DNS names only" },
	{ WSE_PURPOSE_SERVICE, cn_a,
	  { { "basicConstraints", "critical,CA:FALSE" },
	    { "keyUsage", "critical,digitalSignature" },
	    { "extendedKeyUsage", "serverAuth" },
	    { "subjectAltName", "DNS:a.test" }, EXTS_END },
	  "a service certificate needs EKU clientAuth" },
	{ WSE_PURPOSE_SERVICE, cn_a,
	  { { "basicConstraints", "critical,CA:TRUE" },
	    { "keyUsage", "critical,digitalSignature,keyCertSign" },
	    { "extendedKeyUsage", "serverAuth,clientAuth" },
	    { "subjectAltName", "DNS:a.test" }, EXTS_END },
	  "a CA certificate cannot be used as a service certificate" },
	{ WSE_PURPOSE_TOKEN, NULL,
	  { EXT_TOKEN("critical,email:alice@a.test,email:bob@a.test"),
	    EXTS_END }, "a token names exactly one mailbox and nothing else" },
	{ WSE_PURPOSE_TOKEN, NULL,
	  { EXT_TOKEN("critical,email:alice@a.test,DNS:a.test"), EXTS_END },
	  "a token names exactly one mailbox and nothing else" },
	{ WSE_PURPOSE_TOKEN, NULL,
	  { EXT_TOKEN("critical,DNS:a.test"), EXTS_END },
	  "a token names exactly one mailbox and nothing else" },
	{ WSE_PURPOSE_TOKEN, cn_alice,
	  { { "basicConstraints", "critical,CA:TRUE" },
	    { "keyUsage", "critical,digitalSignature,keyCertSign" },
	    { "extendedKeyUsage", "clientAuth" },
	    { "subjectAltName", "critical,email:alice@a.test" }, EXTS_END },
	  "a CA certificate cannot be used as a token" },
};

static void
test_leaf_shapes(void **state)
{
	wse_key *k = NULL;
	wse_cert *c = NULL;
	size_t i;
	wse_status st;

	(void)state;
	assert_wse_ok(wse_key_generate(&k));
	for (i = 0; i < sizeof(odd_leaves) / sizeof(odd_leaves[0]); i++) {
		const struct odd_leaf *o = &odd_leaves[i];

		c = forge_under(0, o->cns, o->exts, k);
		st = verify_leaf(P.trust, c, P.dom[0].ca, o->purpose);
		if (o->reason == NULL) {	/* the controls */
			if (st != WSE_OK)
				fail_msg("leaf %zu refused", i);
		} else {
			if (st != WSE_ERR_UNTRUSTED)
				fail_msg("leaf %zu (%s): %s", i, o->reason,
				    wse_status_name(st));
			assert_err_mentions(o->reason);
		}
		wse_cert_free(&c);
	}
	wse_key_free(&k);
}

/* pathlen:0: a CA under a domain CA issues nothing that verifies, even
 * within the domain's names and with every CRL at hand. */
static void
test_pathlen(void **state)
{
	const struct ext sub[] = {
		EXT_CA("critical,permitted;DNS:sub.a.test,"
		    "permitted;email:sub.a.test"), EXTS_END };
	const char *const cn_sub[] = { "sub.a.test", NULL };
	wse_key *sk = NULL, *k = NULL;
	wse_cert *subca = NULL, *c = NULL, *chain[2];
	wse_crl *crl = NULL;
	wse_trust *t = NULL;

	(void)state;
	assert_wse_ok(wse_key_generate(&sk));
	subca = forge_under(0, cn_sub, sub, sk);
	assert_wse_ok(wse_crl_issue(subca, sk, NULL, 0, P.now - 60,
	    P.now + DAY, &crl));
	assert_wse_ok(testpki_trust(&P, 1, 1, 1, &t));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	assert_wse_ok(wse_key_generate(&k));
	c = issue(WSE_CERT_SERVICE, "sub.a.test", k, subca, sk, P.now - 60,
	    P.now + DAY, WSE_OK);
	chain[0] = subca;
	chain[1] = P.dom[0].ca;
	wse_err_clear();
	assert_wse_status(wse_trust_verify(t, c, chain, 2, P.now,
	    WSE_PURPOSE_SERVICE), WSE_ERR_UNTRUSTED);
	assert_err_mentions("path length constraint exceeded");
	wse_cert_free(&c);
	/* nor does the sub-CA issue tokens of its own */
	wse_err_clear();
	assert_wse_status(wse_pki_issue_token(subca, sk, k, "x@sub.a.test",
	    600, P.now, &c), WSE_OK);
	assert_wse_status(wse_trust_verify(t, c, chain, 2, P.now,
	    WSE_PURPOSE_TOKEN), WSE_ERR_UNTRUSTED);
	assert_err_mentions("path length constraint exceeded");
	wse_cert_free(&c);
	wse_cert_free(&subca);
	wse_crl_free(&crl);
	wse_trust_free(&t);
	wse_key_free(&k);
	wse_key_free(&sk);
}

/* A CA that is not valid yet or no longer valid fails the chain of a
 * leaf that is itself valid. */
static void
test_ca_times(void **state)
{
	const struct ext good[] = { EXT_CA(NC_A), EXTS_END };
	wse_key *ck = NULL, *k = NULL;
	wse_cert *ca = NULL, *c = NULL;
	wse_crl *crl = NULL;
	wse_trust *t = NULL;

	(void)state;
	assert_wse_ok(wse_key_generate(&ck));
	assert_wse_ok(wse_key_generate(&k));
	/* a CA from an hour ahead, a leaf valid now */
	ca = issue(WSE_CERT_DOMAIN_CA, "a.test", ck, P.root, P.root_key,
	    P.now + 3600, P.now + 2 * DAY, WSE_OK);
	c = issue(WSE_CERT_SERVICE, "a.test", k, ca, ck, P.now - 60,
	    P.now + DAY, WSE_OK);
	assert_wse_ok(wse_crl_issue(ca, ck, NULL, 0, P.now - 60, P.now + DAY,
	    &crl));
	assert_wse_ok(testpki_trust(&P, 1, 0, 1, &t));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	assert_wse_status(verify_leaf(t, c, ca, WSE_PURPOSE_SERVICE),
	    WSE_ERR_CERT_NOT_YET_VALID);
	assert_err_mentions("CN=a.test (depth 1): certificate is not yet valid");
	wse_cert_free(&c);
	wse_cert_free(&ca);
	wse_crl_free(&crl);
	wse_trust_free(&t);
	/* a CA that expired an hour ago, a leaf that outlives it */
	ca = forge(cn_a, good, wse_key_evp(ck), P.root,
	    wse_key_evp(P.root_key), P.now - 2 * DAY, P.now - 3600);
	c = forge(cn_a, (const struct ext[]){ EXT_SERVICE("DNS:a.test"),
	    EXTS_END }, wse_key_evp(k), ca, wse_key_evp(ck), P.now - DAY,
	    P.now + DAY);
	assert_wse_ok(wse_crl_issue(ca, ck, NULL, 0, P.now - 60, P.now + DAY,
	    &crl));
	assert_wse_ok(testpki_trust(&P, 1, 0, 1, &t));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	assert_wse_status(verify_leaf(t, c, ca, WSE_PURPOSE_SERVICE),
	    WSE_ERR_CERT_EXPIRED);
	assert_err_mentions("CN=a.test (depth 1): certificate has expired");
	wse_cert_free(&c);
	wse_cert_free(&ca);
	wse_crl_free(&crl);
	wse_trust_free(&t);
	wse_key_free(&k);
	wse_key_free(&ck);
}

/* A copy of crl, through a file in dir, with the last bit of its
 * signature flipped. */
static wse_crl *
crl_tampered(const wse_crl *crl, const char *dir)
{
	char *p = join(dir, "tampered.pem");
	unsigned char *der = NULL;
	X509_CRL *x;
	wse_crl *out = NULL;
	FILE *f;
	int n;

	(void)unlink(p);
	assert_wse_ok(wse_crl_save(crl, p));
	f = fopen(p, "r");
	assert_non_null(f);
	x = PEM_read_X509_CRL(f, NULL, NULL, NULL);
	assert_non_null(x);
	fclose(f);
	n = i2d_X509_CRL(x, &der);
	assert_true(n > 0);
	der[n - 1] ^= 0x01;
	f = fopen(p, "w");
	assert_non_null(f);
	assert_true(PEM_write(f, PEM_STRING_X509_CRL, "", der, n) > 0);
	assert_int_equal(fclose(f), 0);
	assert_wse_ok(wse_crl_load(p, &out));
	OPENSSL_free(der);
	X509_CRL_free(x);
	free(p);
	return out;
}

/* A CRL that its issuer did not sign vouches for nothing: the chain
 * cannot be decided (never accepted), and a forged revocation does not
 * count either. */
static void
test_forged_crls(void **state)
{
	char *dir = testutil_tmpdir();
	char serial[80];
	const char *serials[1] = { serial };
	wse_key *rk = NULL, *ck = NULL, *k = NULL;
	wse_cert *root2 = NULL, *ca2 = NULL, *c = NULL;
	wse_crl *crl = NULL, *good = NULL;
	wse_trust *t = NULL;

	(void)state;
	/* a.test's genuine CRL, its signature broken */
	crl = crl_tampered(P.dom[0].crl, dir);
	assert_wse_ok(testpki_trust(&P, 1, 0, 1, &t));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	assert_wse_status(verify_svc(t, &P.dom[0], P.now), WSE_ERR_TEMPFAIL);
	assert_err_mentions("CRL signature failure");
	assert_wse_ok(verify_svc(t, &P.dom[1], P.now));
	wse_trust_free(&t);
	wse_crl_free(&crl);
	/* one listing a.test's service, its signature broken */
	assert_wse_ok(wse_cert_serial(P.dom[0].svc, serial, sizeof(serial)));
	assert_wse_ok(wse_crl_issue(P.dom[0].ca, P.dom[0].ca_key, serials, 1,
	    P.now - 60, P.now + DAY, &good));
	crl = crl_tampered(good, dir);
	wse_crl_free(&good);
	assert_wse_ok(testpki_trust(&P, 1, 0, 1, &t));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	assert_wse_status(verify_svc(t, &P.dom[0], P.now), WSE_ERR_TEMPFAIL);
	assert_err_mentions("CRL signature failure");
	wse_trust_free(&t);
	wse_crl_free(&crl);
	/* the root's */
	crl = crl_tampered(P.root_crl, dir);
	assert_wse_ok(testpki_trust(&P, 0, 1, 1, &t));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	assert_wse_status(verify_svc(t, &P.dom[0], P.now), WSE_ERR_TEMPFAIL);
	assert_err_mentions("CRL signature failure");
	assert_wse_status(verify_svc(t, &P.dom[1], P.now), WSE_ERR_TEMPFAIL);
	wse_trust_free(&t);
	wse_crl_free(&crl);

	/* CRLs of a look-alike a.test CA under another root: an empty one
	 * does not clear a.test's service, one listing it does not revoke
	 * it */
	assert_wse_ok(wse_key_generate(&rk));
	assert_wse_ok(wse_key_generate(&ck));
	root2 = issue(WSE_CERT_ROOT, "WSEmail Test Root", rk, NULL, rk,
	    P.now - 3600, P.now + 30 * DAY, WSE_OK);
	ca2 = issue(WSE_CERT_DOMAIN_CA, "a.test", ck, root2, rk,
	    P.now - 3600, P.now + 30 * DAY, WSE_OK);
	assert_wse_ok(wse_crl_issue(ca2, ck, NULL, 0, P.now - 60, P.now + DAY,
	    &crl));
	assert_wse_ok(testpki_trust(&P, 1, 0, 1, &t));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	assert_wse_status(verify_svc(t, &P.dom[0], P.now), WSE_ERR_TEMPFAIL);
	wse_trust_free(&t);
	wse_crl_free(&crl);
	assert_wse_ok(wse_crl_issue(ca2, ck, serials, 1, P.now - 60,
	    P.now + DAY, &crl));
	assert_wse_ok(testpki_trust(&P, 1, 0, 1, &t));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	assert_wse_status(verify_svc(t, &P.dom[0], P.now), WSE_ERR_TEMPFAIL);
	wse_crl_free(&crl);
	/* past a forged revocation, the permanent verdict is still found */
	assert_wse_ok(testpki_service(&P, 0, "a.test", P.now - 7200,
	    P.now - 3700, &k, &c));
	assert_wse_ok(wse_cert_serial(c, serial, sizeof(serial)));
	assert_wse_ok(wse_crl_issue(ca2, ck, serials, 1, P.now - 60,
	    P.now + DAY, &crl));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	assert_wse_status(verify_leaf(t, c, P.dom[0].ca, WSE_PURPOSE_SERVICE),
	    WSE_ERR_CERT_EXPIRED);
	wse_cert_free(&c);
	wse_key_free(&k);
	wse_trust_free(&t);
	wse_crl_free(&crl);

	wse_cert_free(&ca2);
	wse_cert_free(&root2);
	wse_key_free(&ck);
	wse_key_free(&rk);
	testutil_rmtree(dir);
	free(dir);
}

/* Without CRLs (clients only), every other check still holds. */
static void
test_skip_crls(void **state)
{
	wse_trust *t = NULL;
	wse_key *k = NULL;
	wse_cert *c = NULL;

	(void)state;
	assert_wse_ok(wse_trust_new(&t));
	assert_wse_ok(wse_trust_add_root(t, P.root));
	assert_false(wse_trust_skips_crls(t));
	assert_wse_status(verify_svc(t, &P.dom[0], P.now), WSE_ERR_TEMPFAIL);
	wse_trust_skip_crls(t);
	assert_true(wse_trust_skips_crls(t));
	assert_wse_ok(verify_svc(t, &P.dom[0], P.now));
	assert_wse_status(verify_svc(t, &P.dom[0], P.now + 31 * DAY),
	    WSE_ERR_CERT_EXPIRED);
	assert_wse_status(verify_leaf(t, P.dom[0].svc, P.dom[0].ca,
	    WSE_PURPOSE_TOKEN), WSE_ERR_UNTRUSTED);
	assert_wse_ok(testpki_service(&P, 0, "b.test", P.now - 60, P.now + DAY,
	    &k, &c));
	assert_wse_status(verify_leaf(t, c, P.dom[0].ca, WSE_PURPOSE_SERVICE),
	    WSE_ERR_UNTRUSTED);
	assert_err_mentions("permitted subtree violation");
	wse_cert_free(&c);
	wse_key_free(&k);
	assert_wse_ok(testpki_service(&P, -1, "a.test", P.now - 60, P.now + DAY,
	    &k, &c));
	assert_wse_status(verify_leaf(t, c, NULL, WSE_PURPOSE_SERVICE),
	    WSE_ERR_UNTRUSTED);
	wse_cert_free(&c);
	wse_key_free(&k);
	wse_trust_free(&t);
}

static void
test_verify_arguments(void **state)
{
	wse_cert *chain[17], *none[1] = { NULL };
	size_t i;

	(void)state;
	for (i = 0; i < 17; i++)
		chain[i] = P.dom[0].ca;
	assert_wse_ok(wse_trust_verify(P.trust, P.dom[0].svc, chain, 16,
	    P.now, WSE_PURPOSE_SERVICE));
	wse_err_clear();
	assert_wse_status(wse_trust_verify(P.trust, P.dom[0].svc, chain, 17,
	    P.now, WSE_PURPOSE_SERVICE), WSE_ERR_TOO_LARGE);
	assert_err_mentions("more than 16 chain certificates");
	assert_wse_status(wse_trust_verify(P.trust, P.dom[0].svc, none, 1,
	    P.now, WSE_PURPOSE_SERVICE), WSE_ERR_INVALID);
	assert_wse_status(wse_trust_verify(P.trust, P.dom[0].svc, NULL, 1,
	    P.now, WSE_PURPOSE_SERVICE), WSE_ERR_INVALID);
	assert_wse_status(wse_trust_verify(P.trust, NULL, chain, 1,
	    P.now, WSE_PURPOSE_SERVICE), WSE_ERR_INVALID);
	assert_wse_status(wse_trust_verify(NULL, P.dom[0].svc, chain, 1,
	    P.now, WSE_PURPOSE_SERVICE), WSE_ERR_INVALID);
	assert_wse_status(wse_trust_verify(P.trust, P.dom[0].svc, chain, 1,
	    -1, WSE_PURPOSE_SERVICE), WSE_ERR_INVALID);
	assert_wse_status(wse_trust_verify(P.trust, P.dom[0].svc, chain, 1,
	    INT64_C(253402300800), WSE_PURPOSE_SERVICE), WSE_ERR_INVALID);
	assert_wse_status(wse_trust_verify(P.trust, P.dom[0].svc, chain, 1,
	    P.now, (wse_purpose)7), WSE_ERR_INVALID);
}

/* ---- tokens: keys and times ---- */

static void
test_token_keys_and_times(void **state)
{
	EVP_PKEY *rsa1024, *ed;
	wse_key *weak = NULL, *edk = NULL, *capub = NULL;
	wse_cert *c = NULL;

	(void)state;
	/* keys the API never makes itself come from certificates */
	rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_non_null(rsa1024);
	assert_non_null(ed);
	c = forge(cn_alice, NULL, rsa1024, P.root, wse_key_evp(P.root_key),
	    P.now - 60, P.now + DAY);
	assert_wse_ok(wse_cert_public_key(c, &weak));
	wse_cert_free(&c);
	c = forge(cn_alice, NULL, ed, P.root, wse_key_evp(P.root_key),
	    P.now - 60, P.now + DAY);
	assert_wse_ok(wse_cert_public_key(c, &edk));
	wse_cert_free(&c);

	wse_err_clear();
	assert_wse_status(wse_pki_issue_token(P.dom[0].ca, P.dom[0].ca_key,
	    weak, "alice@a.test", 600, P.now, &c), WSE_ERR_UNSUPPORTED);
	assert_err_mentions("token key: RSA key of 1024 bits is too weak");
	assert_null(c);
	wse_err_clear();
	assert_wse_status(wse_pki_issue_token(P.dom[0].ca, P.dom[0].ca_key,
	    edk, "alice@a.test", 600, P.now, &c), WSE_ERR_UNSUPPORTED);
	assert_err_mentions("token key: key type ED25519 is not supported");
	/* the lower level refuses them as well */
	c = issue(WSE_CERT_TOKEN, "alice@a.test", weak, P.dom[0].ca,
	    P.dom[0].ca_key, P.now - 60, P.now + 600, WSE_ERR_UNSUPPORTED);
	assert_err_mentions("subject key: RSA key of 1024 bits");
	c = issue(WSE_CERT_SERVICE, "a.test", edk, P.dom[0].ca,
	    P.dom[0].ca_key, P.now - 60, P.now + 600, WSE_ERR_UNSUPPORTED);
	/* an issuer key without its private half */
	assert_wse_ok(wse_cert_public_key(P.dom[0].ca, &capub));
	c = issue(WSE_CERT_SERVICE, "a.test", P.dom[0].svc_key, P.dom[0].ca,
	    capub, P.now - 60, P.now + 600, WSE_ERR_INVALID);
	assert_err_mentions("the issuer key has no private half");
	assert_wse_status(wse_pki_issue_token(P.dom[0].ca, capub,
	    P.dom[0].svc_key, "alice@a.test", 600, P.now, &c),
	    WSE_ERR_INVALID);

	/* times out of range, missing arguments */
	wse_err_clear();
	assert_wse_status(wse_pki_issue_token(P.dom[0].ca, P.dom[0].ca_key,
	    P.dom[0].svc_key, "alice@a.test", 600, 59, &c), WSE_ERR_INVALID);
	assert_err_mentions("time out of range");
	assert_wse_status(wse_pki_issue_token(P.dom[0].ca, P.dom[0].ca_key,
	    P.dom[0].svc_key, "alice@a.test", 600, INT64_C(253402300800), &c),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_pki_issue_token(NULL, P.dom[0].ca_key,
	    P.dom[0].svc_key, "alice@a.test", 600, P.now, &c),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_pki_issue_token(P.dom[0].ca, P.dom[0].ca_key,
	    NULL, "alice@a.test", 600, P.now, &c), WSE_ERR_INVALID);
	assert_null(c);

	wse_key_free(&capub);
	wse_key_free(&edk);
	wse_key_free(&weak);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(rsa1024);
}

/* ---- malformed files and names ---- */

/* path holds n copies of text, then tail. */
static void
write_repeated(const char *path, const char *text, size_t n,
    const char *tail)
{
	FILE *f = fopen(path, "w");
	size_t i;

	assert_non_null(f);
	for (i = 0; i < n; i++)
		assert_true(fputs(text, f) >= 0);
	assert_true(fputs(tail, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static void
test_malformed_files(void **state)
{
	static const char broken[] = "-----BEGIN CERTIFICATE-----\n"
	    "MIIBkTCB+wIJAKHHIG...\n-----END CERTIFICATE-----\n";
	static const char broken_crl[] = "-----BEGIN X509 CRL-----\n"
	    "MIIBkTCB+wIJAKHHIG...\n-----END X509 CRL-----\n";
	char *dir = testutil_tmpdir(), *p, *priv, *pem;
	char serial[80];
	const char *serials[1] = { serial };
	wse_buf *b = wse_buf_new(1 << 16), *crlpem = NULL;
	wse_cert *c = NULL, **v = NULL;
	wse_crl *crl = NULL;
	wse_trust *t = NULL;
	wse_key *k = NULL;
	EVP_PKEY *pk;
	BIO *bio;
	uint8_t *big;
	size_t n = 0;
	long len;

	(void)state;
	p = join(dir, "f.pem");

	/* an encrypted key: refused, without asking for a passphrase */
	pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	bio = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PKCS8PrivateKey(bio, pk,
	    EVP_aes_256_cbc(), "secret", 6, NULL, NULL), 1);
	len = BIO_get_mem_data(bio, &priv);
	priv = copy_bytes(priv, len);
	BIO_free(bio);
	EVP_PKEY_free(pk);
	write_text(p, priv);
	free(priv);
	wse_err_clear();
	assert_wse_status(wse_key_load(p, &k), WSE_ERR_INVALID);
	assert_err_mentions("not an unencrypted PEM private key");
	assert_null(k);
	/* an Ed25519 key, private or public */
	pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	pem = openssl_pem(pk, &priv);
	EVP_PKEY_free(pk);
	write_text(p, priv);
	wse_err_clear();
	assert_wse_status(wse_key_load(p, &k), WSE_ERR_UNSUPPORTED);
	assert_err_mentions("key type ED25519 is not supported");
	assert_wse_status(wse_key_from_public_pem(pem, strlen(pem), &k),
	    WSE_ERR_UNSUPPORTED);
	assert_null(k);
	free(pem);
	free(priv);

	/* DER */
	assert_wse_status(wse_cert_from_der(NULL, 0, &c), WSE_ERR_INVALID);
	big = calloc(1, (1u << 20) + 1);
	assert_non_null(big);
	assert_wse_status(wse_cert_from_der(big, (1u << 20) + 1, &c),
	    WSE_ERR_TOO_LARGE);
	wse_err_clear();
	assert_wse_status(wse_cert_from_der((const uint8_t *)"\x30\x03\x02\x01"
	    "\x01", 5, &c), WSE_ERR_INVALID);
	assert_err_mentions("not a DER certificate");
	assert_null(c);

	/* PEM bundles: empty, a broken second certificate, one too many,
	 * a file over the limit */
	assert_wse_ok(wse_cert_to_pem(P.dom[0].ca, b));
	write_text(p, "");
	assert_wse_status(wse_cert_load_list(p, &v, &n), WSE_ERR_INVALID);
	assert_wse_status(wse_cert_load(p, &c), WSE_ERR_INVALID);
	write_repeated(p, wse_buf_str(b), 1, broken);
	wse_err_clear();
	assert_wse_status(wse_cert_load_list(p, &v, &n), WSE_ERR_INVALID);
	assert_err_mentions("certificate 2 is not valid PEM");
	assert_null(v);
	assert_int_equal(n, 0);
	write_repeated(p, wse_buf_str(b), 64, "");
	assert_wse_ok(wse_cert_load_list(p, &v, &n));
	assert_int_equal(n, 64);
	wse_cert_list_free(&v, n);
	write_repeated(p, wse_buf_str(b), 65, "");
	wse_err_clear();
	assert_wse_status(wse_cert_load_list(p, &v, &n), WSE_ERR_TOO_LARGE);
	assert_err_mentions("more than 64 certificates");
	{
		FILE *f = fopen(p, "w");

		assert_non_null(f);
		assert_int_equal(fwrite(big, 1, (1u << 20) + 1, f),
		    (1u << 20) + 1);
		assert_int_equal(fclose(f), 0);
	}
	assert_wse_status(wse_cert_load(p, &c), WSE_ERR_TOO_LARGE);
	assert_wse_status(wse_key_load(p, &k), WSE_ERR_TOO_LARGE);
	free(big);

	/* CRLs: a certificate is not one; a bundle with a broken CRL adds
	 * none of its CRLs, not even the good one before it */
	write_text(p, wse_buf_str(b));
	wse_err_clear();
	assert_wse_status(wse_crl_load(p, &crl), WSE_ERR_INVALID);
	assert_err_mentions("not a PEM CRL");
	assert_null(crl);
	assert_wse_ok(wse_cert_serial(P.dom[0].svc, serial, sizeof(serial)));
	assert_wse_ok(wse_crl_issue(P.dom[0].ca, P.dom[0].ca_key, serials, 1,
	    P.now - 60, P.now + DAY, &crl));
	assert_wse_ok(wse_crl_save(crl, p));
	wse_crl_free(&crl);
	assert_wse_ok(wse_buf_read_file(p, 1 << 20, &crlpem));
	write_repeated(p, wse_buf_str(crlpem), 1, broken_crl);
	assert_wse_ok(testpki_trust(&P, 1, 0, 1, &t));
	wse_err_clear();
	assert_wse_status(wse_trust_load_crls(t, p), WSE_ERR_INVALID);
	assert_err_mentions("CRL 2 is not valid PEM");
	assert_wse_status(verify_svc(t, &P.dom[0], P.now), WSE_ERR_TEMPFAIL);
	write_repeated(p, wse_buf_str(crlpem), 65, "");
	wse_err_clear();
	assert_wse_status(wse_trust_load_crls(t, p), WSE_ERR_TOO_LARGE);
	assert_wse_status(verify_svc(t, &P.dom[0], P.now), WSE_ERR_TEMPFAIL);
	/* the good CRL alone is taken */
	write_text(p, wse_buf_str(crlpem));
	assert_wse_ok(wse_trust_load_crls(t, p));
	assert_wse_status(verify_svc(t, &P.dom[0], P.now), WSE_ERR_REVOKED);
	wse_trust_free(&t);

	wse_buf_free(&crlpem);
	wse_buf_free(&b);
	free(p);
	testutil_rmtree(dir);
	free(dir);
}

/* The names a certificate speaks for: anything but exactly one
 * well-formed name of the expected kind is refused, never guessed at. */
static void
test_cert_names_malformed(void **state)
{
	static const struct {
		const char *san;	/* NULL: no subjectAltName */
		wse_status domain, mailbox;
		const char *reason;
	} cases[] = {
		{ "email:alice@a.test,email:bob@a.test", WSE_ERR_INVALID,
		  WSE_ERR_INVALID, "more than one mailbox" },
		{ "email:alice", WSE_ERR_INVALID, WSE_ERR_INVALID,
		  "certificate mailbox \"alice\" is malformed" },
		{ "email:al ice@a.test", WSE_ERR_INVALID, WSE_ERR_INVALID,
		  "forbidden character 0x20" },
		{ "DNS:a_b.test", WSE_ERR_INVALID, WSE_ERR_NOT_FOUND,
		  "certificate DNS name \"a_b.test\" is malformed" },
		{ "DNS:A.TEST", WSE_OK, WSE_ERR_NOT_FOUND, NULL },
		{ NULL, WSE_ERR_NOT_FOUND, WSE_ERR_NOT_FOUND,
		  "neither a domain nor a mailbox" },
	};
	const struct ext two[] = {
		{ "subjectAltName", "DNS:a.test" },
		{ "subjectAltName", "DNS:b.test" }, EXTS_END };
	char buf[300];
	wse_key *k = NULL;
	wse_cert *c = NULL;
	wse_buf *san = wse_buf_new(1024);
	size_t i;

	(void)state;
	assert_wse_ok(wse_key_generate(&k));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct ext exts[] = {
			{ "subjectAltName", cases[i].san }, EXTS_END };

		c = forge_under(0, cn_alice, cases[i].san ? exts : NULL, k);
		wse_err_clear();
		assert_wse_status(wse_cert_domain(c, buf, sizeof(buf)),
		    cases[i].domain);
		if (cases[i].reason != NULL) {
			assert_err_mentions(cases[i].reason);
			assert_string_equal(buf, "");
		} else {
			assert_string_equal(buf, "a.test");
		}
		assert_wse_status(wse_cert_mailbox(c, buf, sizeof(buf)),
		    cases[i].mailbox);
		assert_string_equal(buf, "");
		wse_cert_free(&c);
	}
	/* two subjectAltName extensions: which one would count? */
	c = forge_under(0, cn_alice, two, k);
	wse_err_clear();
	assert_wse_status(wse_cert_domain(c, buf, sizeof(buf)),
	    WSE_ERR_INVALID);
	assert_err_mentions("several subjectAltName extensions");
	assert_wse_status(wse_cert_mailbox(c, buf, sizeof(buf)),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_cert_san_text(c, san), WSE_ERR_INVALID);
	assert_wse_status(verify_leaf(P.trust, c, P.dom[0].ca,
	    WSE_PURPOSE_SERVICE), WSE_ERR_UNTRUSTED);
	wse_cert_free(&c);
	/* a domain longer than the caller's buffer */
	assert_wse_status(wse_cert_domain(P.dom[0].svc, buf, 4),
	    WSE_ERR_TOO_LARGE);
	wse_buf_free(&san);
	wse_key_free(&k);
}

/* ---- concurrency: one trust store, several threads ---- */

struct worker {
	int ok;
};

static void *
verify_worker(void *arg)
{
	struct worker *w = arg;
	int i, d;

	w->ok = 1;
	for (i = 0; i < 40; i++) {
		d = i & 1;
		if (verify_svc(P.trust, &P.dom[d], P.now) != WSE_OK)
			w->ok = 0;
		if (verify_leaf(P.trust, P.dom[d].svc, P.dom[d].ca,
		    WSE_PURPOSE_TOKEN) != WSE_ERR_UNTRUSTED)
			w->ok = 0;
	}
	return NULL;
}

static void
test_verify_threads(void **state)
{
	enum { N = 6 };
	pthread_t th[N];
	struct worker w[N];
	int i;

	(void)state;
	for (i = 0; i < N; i++)
		assert_int_equal(pthread_create(&th[i], NULL, verify_worker,
		    &w[i]), 0);
	for (i = 0; i < N; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_true(w[i].ok);
	}
}

/* ---- CA directories ---- */

static void
read_file_text(const char *dir, const char *file, wse_buf **b)
{
	char *p = join(dir, file);

	wse_buf_free(b);
	assert_wse_ok(wse_buf_read_file(p, 1 << 20, b));
	free(p);
}

/* Trust store from the files of a CA directory. */
static void
dir_trust(const char *dir, wse_trust **t)
{
	static const char *const crls[] = { "root/crl.pem", "a.test/crl.pem",
	    "b.test/crl.pem" };
	char *p;
	size_t i;

	wse_trust_free(t);
	assert_wse_ok(wse_trust_new(t));
	p = join(dir, "root/cert.pem");
	assert_wse_ok(wse_trust_load_roots(*t, p));
	free(p);
	for (i = 0; i < 3; i++) {
		p = join(dir, crls[i]);
		assert_wse_ok(wse_trust_load_crls(*t, p));
		free(p);
	}
}

static wse_status
dir_verify(const char *dir, const char *domain, wse_trust *t, int64_t now)
{
	char file[300];
	char *p;
	wse_cert **chain = NULL;
	size_t n = 0;
	wse_status st;

	snprintf(file, sizeof(file), "%s/chain.pem", domain);
	p = join(dir, file);
	assert_wse_ok(wse_cert_load_list(p, &chain, &n));
	free(p);
	assert_int_equal(n, 2);
	wse_err_clear();
	st = wse_trust_verify(t, chain[0], &chain[1], 1, now,
	    WSE_PURPOSE_SERVICE);
	wse_cert_list_free(&chain, n);
	return st;
}

static void
test_ca_directory(void **state)
{
	static const char *const hosts[] = { "mx.a.test", "mail.a.test" };
	static const char *const bhosts[] = { "mail.b.test" };
	static const char *const evil[] = { "b.test" };
	static const char *const local[] = { "localhost" };
	char *dir = testutil_tmpdir(), *pki, *p;
	char serial[80], caserial[80], line[100];
	int64_t now = P.now;
	wse_trust *t = NULL;
	wse_cert *c = NULL;
	wse_buf *b = NULL, *before = NULL;

	(void)state;
	pki = join(dir, "pki");	/* created by root_init */
	assert_wse_ok(wse_ca_root_init(pki, "Test Root", 0, now));
	assert_int_equal(file_mode(pki, "root/key.pem"), 0600);
	assert_int_equal(file_mode(pki, "root/cert.pem"), 0644);
	read_file_text(pki, "root/key.pem", &before);
	/* a second init refuses and leaves the root alone */
	assert_wse_status(wse_ca_root_init(pki, "Other Root", 0, now),
	    WSE_ERR_EXISTS);
	read_file_text(pki, "root/key.pem", &b);
	assert_string_equal(wse_buf_str(b), wse_buf_str(before));
	read_file_text(pki, "root/revoked", &b);
	assert_int_equal(wse_buf_len(b), 0);
	p = join(pki, "root/cert.pem");
	assert_wse_ok(wse_cert_load(p, &c));
	free(p);
	assert_true(wse_cert_is_ca(c));
	assert_int_equal(wse_cert_not_after(c), now + 3650 * DAY);
	wse_cert_free(&c);

	/* domains */
	assert_wse_status(wse_ca_service_issue(pki, "a.test", NULL, 0, 0, now),
	    WSE_ERR_IO);	/* no domain CA yet */
	assert_wse_ok(wse_ca_domain_issue(pki, "a.test", 0, now));
	assert_wse_ok(wse_ca_domain_issue(pki, "b.test", 30, now));
	assert_wse_status(wse_ca_domain_issue(pki, "a.test", 0, now),
	    WSE_ERR_EXISTS);
	assert_wse_status(wse_ca_domain_issue(pki, "root", 0, now),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_ca_domain_issue(pki, "../x", 0, now),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_ca_domain_issue(pki, "A.test", 0, now),
	    WSE_ERR_INVALID);
	assert_int_equal(file_mode(pki, "a.test/ca-key.pem"), 0600);
	p = join(pki, "a.test/ca.pem");
	assert_wse_ok(wse_cert_load(p, &c));
	free(p);
	assert_int_equal(wse_cert_not_after(c), now + 365 * DAY);
	assert_wse_ok(wse_cert_serial(c, caserial, sizeof(caserial)));
	wse_cert_free(&c);

	/* service certificates */
	assert_wse_status(wse_ca_service_issue(pki, "a.test", evil, 1, 0, now),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_ca_service_issue(pki, "a.test", local, 1, 0,
	    now), WSE_ERR_INVALID);
	assert_wse_ok(wse_ca_service_issue(pki, "a.test", hosts, 2, 0, now));
	assert_wse_ok(wse_ca_service_issue(pki, "b.test", bhosts, 1, 400,
	    now));	/* clamped to the domain CA's 30 days */
	assert_wse_status(wse_ca_service_issue(pki, "a.test", hosts, 2, 0,
	    now), WSE_ERR_EXISTS);
	assert_int_equal(file_mode(pki, "a.test/service-key.pem"), 0600);
	p = join(pki, "b.test/service.pem");
	assert_wse_ok(wse_cert_load(p, &c));
	free(p);
	assert_int_equal(wse_cert_not_after(c), now + 30 * DAY);
	wse_cert_free(&c);
	p = join(pki, "a.test/service.pem");
	assert_wse_ok(wse_cert_load(p, &c));
	free(p);
	assert_int_equal(wse_cert_not_after(c), now + 90 * DAY);
	assert_wse_ok(wse_cert_serial(c, serial, sizeof(serial)));
	wse_buf_free(&b);
	b = wse_buf_new(1024);
	assert_wse_ok(wse_cert_san_text(c, b));
	assert_string_equal(wse_buf_str(b),
	    "DNS:a.test, DNS:mx.a.test, DNS:mail.a.test");
	wse_cert_free(&c);

	dir_trust(pki, &t);
	assert_wse_ok(dir_verify(pki, "a.test", t, now));
	assert_wse_ok(dir_verify(pki, "b.test", t, now));
	/* CRLs: 30 days by default */
	assert_wse_status(dir_verify(pki, "a.test", t, now + 31 * DAY),
	    WSE_ERR_TEMPFAIL);
	/* reissued for 1 day: stale after 2 days */
	assert_wse_ok(wse_ca_crl(pki, "a.test", 1, now));
	assert_wse_ok(wse_ca_crl(pki, "root", 1, now));
	dir_trust(pki, &t);
	assert_wse_ok(dir_verify(pki, "a.test", t, now));
	assert_wse_status(dir_verify(pki, "a.test", t, now + 2 * DAY),
	    WSE_ERR_TEMPFAIL);
	assert_wse_status(wse_ca_crl(pki, "nosuch.test", 1, now), WSE_ERR_IO);
	assert_wse_status(wse_ca_crl(pki, "a.test", 40000, now),
	    WSE_ERR_INVALID);

	/* revoke a.test's service certificate */
	assert_wse_status(wse_ca_revoke(pki, "a.test", "xyz", 0, now),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_ca_revoke(pki, "c.test", serial, 0, now),
	    WSE_ERR_IO);
	assert_wse_status(wse_ca_revoke(pki, "../etc", serial, 0, now),
	    WSE_ERR_INVALID);
	assert_wse_ok(wse_ca_revoke(pki, "a.test", serial, 0, now));
	snprintf(line, sizeof(line), "%s\n", serial);
	read_file_text(pki, "a.test/revoked", &b);
	assert_string_equal(wse_buf_str(b), line);
	/* again, in upper case: recorded once */
	{
		char up[80];
		size_t i;

		for (i = 0; serial[i]; i++)
			up[i] = (char)(serial[i] >= 'a' && serial[i] <= 'f' ?
			    serial[i] - 'a' + 'A' : serial[i]);
		up[i] = '\0';
		assert_wse_ok(wse_ca_revoke(pki, "a.test", up, 0, now + 1));
	}
	read_file_text(pki, "a.test/revoked", &b);
	assert_string_equal(wse_buf_str(b), line);
	dir_trust(pki, &t);
	assert_wse_status(dir_verify(pki, "a.test", t, now), WSE_ERR_REVOKED);
	assert_wse_ok(dir_verify(pki, "b.test", t, now));

	/* revoke b.test's domain CA at the root */
	p = join(pki, "b.test/ca.pem");
	assert_wse_ok(wse_cert_load(p, &c));
	free(p);
	assert_wse_ok(wse_cert_serial(c, caserial, sizeof(caserial)));
	wse_cert_free(&c);
	assert_wse_ok(wse_ca_revoke(pki, "root", caserial, 0, now));
	dir_trust(pki, &t);
	assert_wse_status(dir_verify(pki, "b.test", t, now), WSE_ERR_REVOKED);

	/* a reissued CRL keeps the revoked serials; a stale CRL still
	 * says revoked */
	assert_wse_ok(wse_ca_crl(pki, "a.test", 0, now + 2));
	dir_trust(pki, &t);
	assert_wse_status(dir_verify(pki, "a.test", t, now), WSE_ERR_REVOKED);
	assert_wse_status(dir_verify(pki, "a.test", t, now + 31 * DAY),
	    WSE_ERR_REVOKED);

	/* no temporary files anywhere */
	p = join(pki, "a.test");
	assert_int_equal(count_dir_entries(p), 7);
	free(p);
	p = join(pki, "root");
	assert_int_equal(count_dir_entries(p), 4);
	free(p);

	wse_trust_free(&t);
	wse_buf_free(&b);
	wse_buf_free(&before);
	testutil_rmtree(dir);
	free(pki);
	free(dir);
}

/* The text of DIR/FILE, or NULL when there is no such file. */
static char *
file_text(const char *dir, const char *file)
{
	char *p = join(dir, file), *s = NULL;
	wse_buf *b = NULL;
	struct stat sb;

	if (stat(p, &sb) == 0) {
		assert_wse_ok(wse_buf_read_file(p, 1 << 20, &b));
		s = strdup(wse_buf_str(b));
		assert_non_null(s);
	}
	wse_buf_free(&b);
	free(p);
	return s;
}

/* DIR/FILE still holds text. */
static void
assert_file_is(const char *dir, const char *file, const char *text)
{
	char *now = file_text(dir, file);

	assert_non_null(now);
	if (strcmp(now, text) != 0)
		fail_msg("%s/%s has changed", dir, file);
	free(now);
}

/* Refusals of the CA-directory functions: an expired issuer, a damaged
 * revoked list, a root key that is not the root's.  Each says what is
 * wrong and leaves every file as it was. */
static void
test_ca_directory_refusals(void **state)
{
	static const struct {
		const char *text;
		const char *reason;
	} bad_lists[] = {
		{ "zz\n", "revoked:1: bad serial" },
		{ "0a\n\nnot-hex\n", "revoked:3: bad serial" },
		{ "0a\n0123456789abcdef0123456789abcdef"
		    "0123456789abcdef0123456789abcdef0\n",
		    "revoked:2: line too long" },
	};
	char *dir = testutil_tmpdir(), *pki, *a, *root, *crl, *rev, *p;
	char serial[80], line[100];
	int64_t now = P.now;
	wse_cert *c = NULL;
	size_t i;

	(void)state;
	pki = join(dir, "pki");
	a = join(pki, "a.test");
	root = join(pki, "root");
	assert_wse_ok(wse_ca_root_init(pki, "Test Root", 400, now));
	assert_wse_ok(wse_ca_domain_issue(pki, "a.test", 0, now));
	assert_int_equal(count_dir_entries(a), 4);
	crl = file_text(a, "crl.pem");
	rev = file_text(a, "revoked");
	p = join(pki, "a.test/ca.pem");
	assert_wse_ok(wse_cert_load(p, &c));
	free(p);
	assert_wse_ok(wse_cert_serial(c, serial, sizeof(serial)));
	wse_cert_free(&c);

	/* a year and a day later the domain CA has expired: no service
	 * certificate, no CRL, no revocation */
	wse_err_clear();
	assert_wse_status(wse_ca_service_issue(pki, "a.test", NULL, 0, 0,
	    now + 366 * DAY), WSE_ERR_CERT_EXPIRED);
	assert_err_mentions("the issuing CA certificate has expired");
	assert_int_equal(count_dir_entries(a), 4);
	wse_err_clear();
	assert_wse_status(wse_ca_crl(pki, "a.test", 0, now + 366 * DAY),
	    WSE_ERR_CERT_EXPIRED);
	assert_err_mentions("the CA certificate has expired");
	assert_file_is(a, "crl.pem", crl);
	wse_err_clear();
	assert_wse_status(wse_ca_revoke(pki, "a.test", serial, 0,
	    now + 366 * DAY), WSE_ERR_CERT_EXPIRED);
	assert_file_is(a, "crl.pem", crl);
	assert_file_is(a, "revoked", rev);
	/* the root (400 days) issues no domain CA after it expires */
	wse_err_clear();
	assert_wse_status(wse_ca_domain_issue(pki, "b.test", 0,
	    now + 401 * DAY), WSE_ERR_CERT_EXPIRED);
	assert_err_mentions("the issuing CA certificate has expired");
	assert_int_equal(count_dir_entries(pki), 2);	/* root, a.test */

	/* a damaged revoked list: refused with its line; nothing changes */
	for (i = 0; i < sizeof(bad_lists) / sizeof(bad_lists[0]); i++) {
		p = join(a, "revoked");
		write_text(p, bad_lists[i].text);
		free(p);
		wse_err_clear();
		assert_wse_status(wse_ca_revoke(pki, "a.test", serial, 0, now),
		    WSE_ERR_INVALID);
		assert_err_mentions(bad_lists[i].reason);
		assert_file_is(a, "revoked", bad_lists[i].text);
		assert_file_is(a, "crl.pem", crl);
		wse_err_clear();
		assert_wse_status(wse_ca_crl(pki, "a.test", 0, now),
		    WSE_ERR_INVALID);
		assert_err_mentions(bad_lists[i].reason);
		assert_file_is(a, "crl.pem", crl);
	}
	/* CRLF line ends and empty lines are fine */
	p = join(a, "revoked");
	write_text(p, "0A\r\n\r\n");
	free(p);
	assert_wse_ok(wse_ca_revoke(pki, "a.test", serial, 0, now));
	snprintf(line, sizeof(line), "0a\n%s\n", serial);
	assert_file_is(a, "revoked", line);
	assert_int_equal(count_dir_entries(a), 4);

	/* a root key that is not the root's: no domain CA */
	p = join(root, "key.pem");
	assert_int_equal(unlink(p), 0);
	assert_wse_ok(wse_key_save(P.root_key, p));
	free(p);
	wse_err_clear();
	assert_wse_status(wse_ca_domain_issue(pki, "b.test", 0, now),
	    WSE_ERR_INVALID);
	assert_err_mentions("root/key.pem does not match");
	assert_int_equal(count_dir_entries(pki), 2);

	free(rev);
	free(crl);
	free(a);
	free(root);
	free(pki);
	testutil_rmtree(dir);
	free(dir);
}

/* A CA-directory operation that fails half-way removes what it wrote
 * already.  A file-size limit makes a write fail part of the way: the
 * third file of a service certificate (chain.pem), the second of a
 * domain CA (ca.pem). */
static void
test_ca_directory_all_or_nothing(void **state)
{
	static const char *const bad_host[] = { "bad host" };
	char *dir = testutil_tmpdir(), *pki, *a, *b, *p;
	char e1[2048], e2[2048];
	struct rlimit saved, lim;
	void (*saved_sig)(int);
	int64_t now = P.now;
	wse_status st1, st2;

	(void)state;
	pki = join(dir, "pki");
	a = join(pki, "a.test");
	b = join(pki, "b.test");
	assert_wse_ok(wse_ca_root_init(pki, NULL, 0, now));
	assert_wse_ok(wse_ca_domain_issue(pki, "a.test", 0, now));

	/* nothing may fail between setting the limit and restoring it */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	saved_sig = signal(SIGXFSZ, SIG_IGN);
	lim = saved;
	lim.rlim_cur = 1000;	/* key 241 bytes, certificate ~670, chain ~1330 */
	(void)setrlimit(RLIMIT_FSIZE, &lim);
	wse_err_clear();
	st1 = wse_ca_service_issue(pki, "a.test", NULL, 0, 0, now);
	wse_err_format(e1, sizeof(e1));
	lim.rlim_cur = 450;	/* key 241 bytes, domain CA ~650 */
	(void)setrlimit(RLIMIT_FSIZE, &lim);
	wse_err_clear();
	st2 = wse_ca_domain_issue(pki, "b.test", 0, now);
	wse_err_format(e2, sizeof(e2));
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	(void)signal(SIGXFSZ, saved_sig);

	assert_int_equal(st1, WSE_ERR_IO);
	if (strstr(e1, "chain.pem") == NULL ||
	    strstr(e1, "File too large") == NULL)
		fail_msg("service issue: %s", e1);
	assert_int_equal(count_dir_entries(a), 4);	/* the CA's files */
	assert_int_equal(st2, WSE_ERR_IO);
	if (strstr(e2, "ca.pem") == NULL)
		fail_msg("domain issue: %s", e2);
	assert_int_equal(count_dir_entries(b), 0);
	/* and both go through once the files fit */
	assert_wse_ok(wse_ca_service_issue(pki, "a.test", NULL, 0, 0, now));
	assert_int_equal(count_dir_entries(a), 7);
	assert_wse_ok(wse_ca_domain_issue(pki, "b.test", 0, now));
	assert_int_equal(count_dir_entries(b), 4);

	/* a domain's directory that is a file */
	p = join(pki, "c.test");
	write_text(p, "x");
	wse_err_clear();
	assert_wse_status(wse_ca_domain_issue(pki, "c.test", 0, now),
	    WSE_ERR_IO);
	assert_err_mentions("Not a directory");
	assert_file_is(pki, "c.test", "x");
	free(p);

	/* arguments refused before anything is looked at */
	testutil_rmtree(b);
	wse_err_clear();
	assert_wse_status(wse_ca_service_issue(pki, "B.test", NULL, 0, 0, now),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_ca_service_issue(pki, "b.test", NULL, 1, 0, now),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_ca_service_issue(pki, "b.test", bad_host, 1, 0,
	    now), WSE_ERR_INVALID);
	assert_err_mentions("invalid host name \"bad host\"");
	assert_wse_status(wse_ca_domain_issue(pki, "b.test", 0, 10),
	    WSE_ERR_INVALID);
	assert_err_mentions("time out of range");
	assert_int_equal(count_dir_entries(pki), 3);	/* root, a, c */
	assert_wse_status(wse_ca_crl(pki, "a.test", 0, 10), WSE_ERR_INVALID);
	assert_wse_status(wse_ca_revoke(pki, "a.test",
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
	    0, now), WSE_ERR_INVALID);
	assert_err_mentions("1..64 hex digits");
	assert_int_equal(count_dir_entries(a), 7);

	free(b);
	free(a);
	free(pki);
	testutil_rmtree(dir);
	free(dir);
}

/* The verified-chain cache never outlives what it remembers: a new CRL
 * revoking the certificate, or time passing beyond its validity or the
 * CRLs' nextUpdate, gives the uncached verdict again. */
static void
test_verify_cache_is_sound(void **state)
{
	wse_trust *t = NULL;
	wse_crl *crl = NULL;
	wse_cert *chain[] = { P.dom[0].ca };
	char serial[80];
	const char *serials[] = { serial };
	int i;

	(void)state;
	assert_wse_ok(testpki_trust(&P, 1, 1, 1, &t));
	for (i = 0; i < 3; i++)		/* first verifies, then cache hits */
		assert_wse_ok(wse_trust_verify(t, P.dom[0].svc, chain, 1, P.now,
		    WSE_PURPOSE_SERVICE));
	/* other purpose: not the cached verdict */
	assert_wse_status(wse_trust_verify(t, P.dom[0].svc, chain, 1, P.now,
	    WSE_PURPOSE_TOKEN), WSE_ERR_UNTRUSTED);
	/* past the CRLs' nextUpdate (7 days) and the certificate (30 days) */
	assert_wse_status(wse_trust_verify(t, P.dom[0].svc, chain, 1,
	    P.now + 8 * DAY, WSE_PURPOSE_SERVICE), WSE_ERR_TEMPFAIL);
	assert_wse_status(wse_trust_verify(t, P.dom[0].svc, chain, 1,
	    P.now + 31 * DAY, WSE_PURPOSE_SERVICE), WSE_ERR_CERT_EXPIRED);
	/* without the chain: not the cached verdict either */
	assert_wse_status(wse_trust_verify(t, P.dom[0].svc, NULL, 0, P.now,
	    WSE_PURPOSE_SERVICE), WSE_ERR_UNTRUSTED);
	/* a new CRL revoking it takes effect at once */
	assert_wse_ok(wse_cert_serial(P.dom[0].svc, serial, sizeof(serial)));
	assert_wse_ok(wse_crl_issue(P.dom[0].ca, P.dom[0].ca_key, serials, 1,
	    P.now - 60, P.now + DAY, &crl));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	assert_wse_status(wse_trust_verify(t, P.dom[0].svc, chain, 1, P.now,
	    WSE_PURPOSE_SERVICE), WSE_ERR_REVOKED);
	/* an older CRL of the same issuer, added later, changes nothing */
	assert_wse_ok(wse_trust_add_crl(t, P.dom[0].crl));
	assert_wse_status(wse_trust_verify(t, P.dom[0].svc, chain, 1, P.now,
	    WSE_PURPOSE_SERVICE), WSE_ERR_REVOKED);
	wse_crl_free(&crl);
	wse_trust_free(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_save_mode_and_refusal),
		cmocka_unit_test(test_key_strength),
		cmocka_unit_test(test_issue_shape_checks),
		cmocka_unit_test(test_hierarchy_verifies),
		cmocka_unit_test(test_hierarchy_files),
		cmocka_unit_test(test_der_pem_roundtrip),
		cmocka_unit_test(test_token_issue_and_verify),
		cmocka_unit_test(test_long_names),
		cmocka_unit_test(test_token_cross_domain),
		cmocka_unit_test(test_token_lifetime_and_policy),
		cmocka_unit_test(test_token_issuer_shape),
		cmocka_unit_test(test_ca_service_issuer),
		cmocka_unit_test(test_revoked_service),
		cmocka_unit_test(test_revoked_domain_ca),
		cmocka_unit_test(test_missing_and_stale_crls),
		cmocka_unit_test(test_leaf_times),
		cmocka_unit_test(test_self_signed_and_strangers),
		cmocka_unit_test(test_leaf_shapes),
		cmocka_unit_test(test_pathlen),
		cmocka_unit_test(test_ca_times),
		cmocka_unit_test(test_forged_crls),
		cmocka_unit_test(test_skip_crls),
		cmocka_unit_test(test_verify_arguments),
		cmocka_unit_test(test_token_keys_and_times),
		cmocka_unit_test(test_malformed_files),
		cmocka_unit_test(test_cert_names_malformed),
		cmocka_unit_test(test_verify_threads),
		cmocka_unit_test(test_verify_cache_is_sound),
		cmocka_unit_test(test_ca_directory),
		cmocka_unit_test(test_ca_directory_refusals),
		cmocka_unit_test(test_ca_directory_all_or_nothing),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
