/*
 * pubsig.c - publisher signatures over plugin files (see pubsig.h).
 *
 * SECURITY
 *	The signature file, and the plugin file, are untrusted input.  The
 *	file is parsed strictly (exact line prefixes, LF only, bounded
 *	lengths and character sets, exactly one certificate and nothing
 *	after it).  Nothing read from it is believed before the
 *	certificate it carries matched a pinned publisher certificate byte
 *	for byte; the certificate is then only used as that pinned one.
 *	The signature is checked before the file's digest, so that "file
 *	altered" is only reported for a signature that is genuine.
 *
 *	OpenSSL is reached through pki-private.h (wse_key_evp,
 *	wse_cert_x509); every OpenSSL failure is translated here and its
 *	error queue emptied.
 */
#include "pubsig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto.h"
#include "ossl-private.h"
#include "pki-private.h"

#define MAGIC		"wsemail-plugin-signature "
#define LINE1		"wsemail-plugin-signature 1\n"
#define PEM_BEGIN	"-----BEGIN CERTIFICATE-----\n"
#define PEM_END		"-----END CERTIFICATE-----"
#define SIG_B64_MAX	128	/* a DER ECDSA P-256 signature: <= 72 bytes */
#define SIG_DER_MAX	96
#define CN_MAX		64

/* ---- names ---- */

static int
charset_ok(const char *s, size_t max, const char *extra)
{
	size_t i;

	if (s == NULL || !((s[0] >= 'a' && s[0] <= 'z') ||
	    (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= '0' && s[0] <= '9')))
		return 0;
	for (i = 0; s[i] != '\0'; i++) {
		char c = s[i];

		if (i >= max)
			return 0;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr(extra, c) != NULL)
			continue;
		return 0;
	}
	return 1;
}

int
wse_pubsig_name_ok(const char *s)
{
	return charset_ok(s, WSE_PUBSIG_NAME_MAX, "._-");
}

int
wse_pubsig_version_ok(const char *s)
{
	return charset_ok(s, WSE_PUBSIG_VERSION_MAX, ".+~_-");
}

/* ---- key and certificate checks ---- */

/* WSE_OK when pk is an EC P-256 key. */
static wse_status
p256_ok(EVP_PKEY *pk)
{
	char grp[64];
	size_t gl = 0;
	int nid = NID_undef;

	if (pk != NULL && EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC &&
	    EVP_PKEY_get_group_name(pk, grp, sizeof(grp), &gl) == 1) {
		if ((nid = OBJ_sn2nid(grp)) == NID_undef)
			nid = EC_curve_nist2nid(grp);
	}
	ERR_clear_error();
	if (nid != NID_X9_62_prime256v1)
		return wse_err(WSE_ERR_UNSUPPORTED, "publisher keys are ECDSA "
		    "P-256 keys; this one is not");
	return WSE_OK;
}

/* WSE_OK when cert may sign code (see pubsig.h), else st. */
static wse_status
code_signing_ok(const wse_cert *cert, wse_status st, const char *who)
{
	X509 *x = wse_cert_x509(cert);
	uint32_t ku, xku;

	ku = X509_get_key_usage(x);
	xku = X509_get_extended_key_usage(x);
	ERR_clear_error();
	if (ku != UINT32_MAX && (ku & KU_DIGITAL_SIGNATURE) == 0)
		return wse_err(st, "certificate of %s is not meant for "
		    "signing (its keyUsage lacks digitalSignature)", who);
	if (xku != UINT32_MAX && (xku & (XKU_CODE_SIGN | XKU_ANYEKU)) == 0)
		return wse_err(st, "certificate of %s is not meant for "
		    "signing code (its extendedKeyUsage lacks codeSigning)",
		    who);
	return WSE_OK;
}

static void
subject_of(const wse_cert *cert, char *buf, size_t size)
{
	if (wse_cert_subject(cert, buf, size) != WSE_OK || *buf == '\0')
		snprintf(buf, size, "(unprintable subject)");
}

/* ---- signing ---- */

static wse_status
signed_part(const void *file, size_t len, const char *name,
    const char *version, wse_buf *out)
{
	uint8_t md[WSE_SHA256_LEN];
	char hex[2 * WSE_SHA256_LEN + 1];
	wse_status st;

	if ((st = wse_sha256(file, len, md)) != WSE_OK)
		return st;
	wse_hex(md, sizeof(md), hex);
	return wse_buf_printf(out, "%sname: %s\nversion: %s\nsha256: %s\n",
	    LINE1, name, version, hex);
}

wse_status
wse_pubsig_sign(const void *file, size_t len, const char *name,
    const char *version, const wse_key *key, const wse_cert *cert,
    wse_buf *out)
{
	EVP_MD_CTX *md = NULL;
	unsigned char der[SIG_DER_MAX];
	size_t derlen = sizeof(der);
	wse_buf *b = NULL;
	char who[WSE_PUBSIG_SUBJECT_MAX];
	wse_status st;

	if ((file == NULL && len > 0) || key == NULL || cert == NULL ||
	    out == NULL)
		return wse_err(WSE_ERR_INVALID, "pubsig sign: missing argument");
	if (!wse_pubsig_name_ok(name))
		return wse_err(WSE_ERR_INVALID, "bad plugin name \"%.80s\" (1 "
		    "to %d of A-Z a-z 0-9 . _ -, first a letter or digit)",
		    name != NULL ? name : "", WSE_PUBSIG_NAME_MAX);
	if (!wse_pubsig_version_ok(version))
		return wse_err(WSE_ERR_INVALID, "bad plugin version \"%.80s\" "
		    "(1 to %d of A-Z a-z 0-9 . + ~ _ -, first a letter or "
		    "digit)", version != NULL ? version : "",
		    WSE_PUBSIG_VERSION_MAX);
	if (!wse_key_is_private(key))
		return wse_err(WSE_ERR_INVALID, "signing needs a private key");
	if ((st = p256_ok(wse_key_evp(key))) != WSE_OK)
		return st;
	subject_of(cert, who, sizeof(who));
	if (!wse_cert_matches_key(cert, key))
		return wse_err(WSE_ERR_INVALID, "the certificate %s is not the "
		    "signing key's", who);
	if ((st = code_signing_ok(cert, WSE_ERR_INVALID, who)) != WSE_OK)
		return st;

	if ((b = wse_buf_new(WSE_PUBSIG_FILE_MAX)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate a signature");
	if ((st = signed_part(file, len, name, version, b)) != WSE_OK)
		goto out;
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
	    wse_key_evp(key)) != 1 ||
	    EVP_DigestSign(md, der, &derlen, wse_buf_data(b),
	    wse_buf_len(b)) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "cannot sign the plugin");
		goto out;
	}
	if ((st = wse_buf_puts(b, "signature: ")) != WSE_OK ||
	    (st = wse_base64_encode(der, derlen, b)) != WSE_OK ||
	    (st = wse_buf_puts(b, "\n")) != WSE_OK ||
	    (st = wse_cert_to_pem(cert, b)) != WSE_OK ||
	    (st = wse_buf_put(out, wse_buf_data(b), wse_buf_len(b))) !=
	    WSE_OK)
		goto out;
	st = WSE_OK;
out:
	EVP_MD_CTX_free(md);
	wse_buf_free(&b);
	ERR_clear_error();
	return st;
}

/* ---- verifying ---- */

/*
 * At *p: prefix, then a value of printable ASCII up to '\n', copied to
 * out (size bytes, NUL-terminated); *p moves past the newline.
 */
static wse_status
take_line(const char **p, const char *end, const char *prefix, char *out,
    size_t size)
{
	size_t pl = strlen(prefix), i = 0;
	const char *q;

	if ((size_t)(end - *p) < pl || memcmp(*p, prefix, pl) != 0)
		return wse_err(WSE_ERR_INVALID, "malformed signature file: "
		    "expected a line \"%s...\"", prefix);
	for (q = *p + pl; q < end && *q != '\n'; q++) {
		if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e)
			return wse_err(WSE_ERR_INVALID, "malformed signature "
			    "file: a control or non-ASCII byte in the line "
			    "\"%s...\"", prefix);
		if (i + 1 >= size)
			return wse_err(WSE_ERR_INVALID, "malformed signature "
			    "file: the line \"%s...\" is too long", prefix);
		out[i++] = *q;
	}
	if (q >= end)
		return wse_err(WSE_ERR_INVALID, "malformed signature file: "
		    "the line \"%s...\" does not end", prefix);
	out[i] = '\0';
	*p = q + 1;
	return WSE_OK;
}

static int
b64_chars(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		    (*s >= '0' && *s <= '9') || *s == '+' || *s == '/' ||
		    *s == '='))
			return 0;
	return 1;
}

/* The parsed file: info, the signed bytes, the signature and the
 * certificate's DER. */
struct parsed {
	wse_pubsig_info info;
	const char *tbs;
	size_t tbslen;
	wse_buf *sig;
	wse_buf *der;
};

static wse_status
parse(const char *s, size_t n, struct parsed *ps)
{
	const char *p = s, *end = s + n, *body, *e, *after;
	char b64[SIG_B64_MAX + 1];
	size_t ml = strlen(MAGIC), l1 = strlen(LINE1), bl = strlen(PEM_BEGIN);
	wse_status st;

	if (s == NULL || n == 0)
		return wse_err(WSE_ERR_INVALID, "unsigned: the signature file "
		    "is empty");
	if (n > WSE_PUBSIG_FILE_MAX)
		return wse_err(WSE_ERR_INVALID, "malformed signature file: "
		    "larger than %u bytes", WSE_PUBSIG_FILE_MAX);
	if (memchr(s, '\0', n) != NULL)
		return wse_err(WSE_ERR_INVALID, "malformed signature file: a "
		    "NUL byte");
	if (memchr(s, '\r', n) != NULL)
		return wse_err(WSE_ERR_INVALID, "malformed signature file: "
		    "line ends must be LF, not CR LF");
	if (n < ml || memcmp(s, MAGIC, ml) != 0)
		return wse_err(WSE_ERR_INVALID, "not a wsemail plugin "
		    "signature (the first line must be \"%.*s\")",
		    (int)l1 - 1, LINE1);
	if ((e = memchr(s, '\n', n)) == NULL)
		return wse_err(WSE_ERR_INVALID, "malformed signature file: "
		    "the first line does not end");
	if ((size_t)(e + 1 - s) != l1 || memcmp(s, LINE1, l1) != 0)
		return wse_err(WSE_ERR_UNSUPPORTED, "unsupported plugin "
		    "signature format (only \"%.*s\")", (int)l1 - 1, LINE1);
	p += l1;
	if ((st = take_line(&p, end, "name: ", ps->info.name,
	    sizeof(ps->info.name))) != WSE_OK)
		return st;
	if (!wse_pubsig_name_ok(ps->info.name))
		return wse_err(WSE_ERR_INVALID, "malformed signature file: bad "
		    "plugin name \"%s\"", ps->info.name);
	if ((st = take_line(&p, end, "version: ", ps->info.version,
	    sizeof(ps->info.version))) != WSE_OK)
		return st;
	if (!wse_pubsig_version_ok(ps->info.version))
		return wse_err(WSE_ERR_INVALID, "malformed signature file: bad "
		    "plugin version \"%s\"", ps->info.version);
	if ((st = take_line(&p, end, "sha256: ", ps->info.sha256,
	    sizeof(ps->info.sha256))) != WSE_OK)
		return st;
	if (!wse_hex_valid(ps->info.sha256, 2 * WSE_SHA256_LEN))
		return wse_err(WSE_ERR_INVALID, "malformed signature file: the "
		    "sha256 line needs 64 lower-case hex digits");
	ps->tbs = s;
	ps->tbslen = (size_t)(p - s);
	if ((st = take_line(&p, end, "signature: ", b64, sizeof(b64))) !=
	    WSE_OK)
		return st;
	if (!b64_chars(b64) ||
	    (st = wse_base64_decode(b64, strlen(b64), ps->sig)) != WSE_OK) {
		wse_err_clear();
		return wse_err(WSE_ERR_INVALID, "malformed signature file: the "
		    "signature line is not base64");
	}
	if ((size_t)(end - p) < bl || memcmp(p, PEM_BEGIN, bl) != 0)
		return wse_err(WSE_ERR_INVALID, "malformed signature file: no "
		    "publisher certificate after the signature line");
	body = p + bl;
	if ((e = memmem(body, (size_t)(end - body), PEM_END,
	    strlen(PEM_END))) == NULL)
		return wse_err(WSE_ERR_INVALID, "malformed signature file: the "
		    "certificate does not end");
	after = e + strlen(PEM_END);
	if (after < end && *after == '\n')
		after++;
	if (after != end)
		return wse_err(WSE_ERR_INVALID, "malformed signature file: "
		    "data after the certificate (exactly one is allowed)");
	if (wse_base64_decode(body, (size_t)(e - body), ps->der) != WSE_OK ||
	    wse_buf_len(ps->der) == 0) {
		wse_err_clear();
		return wse_err(WSE_ERR_INVALID, "malformed signature file: the "
		    "certificate is not base64");
	}
	return WSE_OK;
}

wse_status
wse_pubsig_verify(const void *file, size_t len, const char *sig,
    size_t siglen, wse_cert *const *trusted, size_t ntrusted, int64_t now,
    wse_pubsig_info *info_r)
{
	struct parsed ps;
	wse_cert *presented = NULL;
	const wse_cert *pinned = NULL;
	wse_buf *tder = NULL;
	EVP_MD_CTX *md = NULL;
	uint8_t digest[WSE_SHA256_LEN];
	char hex[2 * WSE_SHA256_LEN + 1], *who;
	size_t i;
	wse_status st;
	int r;

	memset(&ps, 0, sizeof(ps));
	who = ps.info.publisher;
	if (info_r != NULL)
		memset(info_r, 0, sizeof(*info_r));
	if (file == NULL && len > 0)
		return wse_err(WSE_ERR_INVALID, "pubsig verify: no file");
	if ((ps.sig = wse_buf_new(SIG_DER_MAX)) == NULL ||
	    (ps.der = wse_buf_new(WSE_PUBSIG_FILE_MAX)) == NULL ||
	    (tder = wse_buf_new(WSE_PUBSIG_FILE_MAX)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate a verification");
		goto out;
	}
	if ((st = parse(sig, siglen, &ps)) != WSE_OK)
		goto out;
	if (wse_cert_from_der(wse_buf_data(ps.der), wse_buf_len(ps.der),
	    &presented) != WSE_OK) {
		st = wse_err(WSE_ERR_INVALID, "malformed signature file: the "
		    "publisher certificate does not parse");
		goto out;
	}
	subject_of(presented, who, WSE_PUBSIG_SUBJECT_MAX);
	ps.info.not_after = wse_cert_not_after(presented);

	/* Trust: byte-identical to a pinned publisher certificate. */
	for (i = 0; i < ntrusted && pinned == NULL; i++) {
		if (trusted[i] == NULL)
			continue;
		wse_buf_reset(tder);
		if ((st = wse_cert_to_der(trusted[i], tder)) != WSE_OK)
			goto out;
		if (wse_buf_len(tder) == wse_buf_len(ps.der) &&
		    memcmp(wse_buf_data(tder), wse_buf_data(ps.der),
		    wse_buf_len(tder)) == 0)
			pinned = trusted[i];
	}
	if (pinned == NULL) {
		st = wse_err(WSE_ERR_UNTRUSTED, "publisher %s is not a trusted "
		    "publisher%s", who, ntrusted == 0 ?
		    " (no publisher is trusted)" : "");
		goto out;
	}
	if ((st = code_signing_ok(pinned, WSE_ERR_UNTRUSTED, who)) != WSE_OK)
		goto out;
	if ((st = wse_cert_check_time(pinned, now)) != WSE_OK) {
		wse_err_clear();
		st = wse_err(st, "the certificate of publisher %s %s", who,
		    st == WSE_ERR_CERT_EXPIRED ? "has expired" :
		    "is not valid yet");
		goto out;
	}
	if ((st = p256_ok(X509_get0_pubkey(wse_cert_x509(pinned)))) != WSE_OK)
		goto out;

	/* The signature over the four lines, then the file's digest. */
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
	    X509_get0_pubkey(wse_cert_x509(pinned))) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "cannot verify a signature");
		goto out;
	}
	r = EVP_DigestVerify(md, wse_buf_data(ps.sig), wse_buf_len(ps.sig),
	    (const unsigned char *)ps.tbs, ps.tbslen);
	ERR_clear_error();
	if (r != 1) {
		st = wse_err(WSE_ERR_BAD_SIGNATURE, "the signature of %s %s "
		    "does not verify with publisher %s's key (the signature "
		    "file was altered, or made with another key)",
		    ps.info.name, ps.info.version, who);
		goto out;
	}
	if ((st = wse_sha256(file, len, digest)) != WSE_OK)
		goto out;
	wse_hex(digest, sizeof(digest), hex);
	if (!wse_ct_equal(hex, ps.info.sha256, sizeof(hex) - 1)) {
		st = wse_err(WSE_ERR_BAD_SIGNATURE, "the plugin file does not "
		    "match the digest signed for %s %s (the file was altered, "
		    "or the signature is another file's)", ps.info.name,
		    ps.info.version);
		goto out;
	}
	st = WSE_OK;
out:
	if (info_r != NULL)
		*info_r = ps.info;
	EVP_MD_CTX_free(md);
	wse_cert_free(&presented);
	wse_buf_free(&ps.sig);
	wse_buf_free(&ps.der);
	wse_buf_free(&tder);
	ERR_clear_error();
	return st;
}

/* ---- publishers ---- */

static wse_status
add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext;
	int ok;

	if ((ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value)) == NULL)
		return wse_ossl_err(WSE_ERR_CRYPTO, "cannot build extension %s",
		    OBJ_nid2sn(nid));
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (ok != 1)
		return wse_ossl_err(WSE_ERR_CRYPTO, "cannot add extension %s",
		    OBJ_nid2sn(nid));
	return WSE_OK;
}

wse_status
wse_pubsig_publisher_new(const char *cn, int64_t not_before,
    int64_t not_after, wse_key **key_r, wse_cert **cert_r)
{
	wse_key *key = NULL;
	wse_cert *cert = NULL;
	X509 *x = NULL;
	X509_NAME *nm = NULL;
	BIGNUM *bn = NULL;
	X509V3_CTX ctx;
	EVP_PKEY *pk;
	unsigned char serial[16];
	size_t i, n;
	wse_status st;

	*key_r = NULL;
	*cert_r = NULL;
	if (cn == NULL || (n = strlen(cn)) == 0 || n > CN_MAX)
		return wse_err(WSE_ERR_INVALID, "a publisher name has 1 to %d "
		    "characters", CN_MAX);
	for (i = 0; i < n; i++)
		if ((unsigned char)cn[i] < 0x20 || cn[i] == 0x7f)
			return wse_err(WSE_ERR_INVALID, "a control character "
			    "in the publisher name");
	if (not_before >= not_after)
		return wse_err(WSE_ERR_INVALID, "the publisher certificate "
		    "would end before it starts");
	if ((st = wse_key_generate(&key)) != WSE_OK ||
	    (st = wse_random(serial, sizeof(serial))) != WSE_OK)
		goto out;
	serial[0] &= 0x7f;
	serial[0] |= 0x40;	/* positive, and never zero */
	pk = wse_key_evp(key);
	if ((x = X509_new()) == NULL || X509_set_version(x, 2) != 1 ||
	    (bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
	    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)not_before) ==
	    NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after) == NULL ||
	    (nm = X509_NAME_new()) == NULL) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "cannot build a certificate");
		goto out;
	}
	if (X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) != 1) {
		st = wse_ossl_err(WSE_ERR_INVALID, "bad publisher name");
		goto out;
	}
	if (X509_set_subject_name(x, nm) != 1 ||
	    X509_set_issuer_name(x, nm) != 1 || X509_set_pubkey(x, pk) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "cannot build a certificate");
		goto out;
	}
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if ((st = add_ext(x, &ctx, NID_basic_constraints,
	    "critical,CA:FALSE")) != WSE_OK ||
	    (st = add_ext(x, &ctx, NID_key_usage,
	    "critical,digitalSignature")) != WSE_OK ||
	    (st = add_ext(x, &ctx, NID_ext_key_usage, "codeSigning")) !=
	    WSE_OK ||
	    (st = add_ext(x, &ctx, NID_subject_key_identifier, "hash")) !=
	    WSE_OK)
		goto out;
	if (X509_sign(x, pk, EVP_sha256()) <= 0) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "cannot sign a certificate");
		goto out;
	}
	if ((cert = wse_cert_from_x509(x)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate a certificate");
		goto out;
	}
	*key_r = key;
	*cert_r = cert;
	key = NULL;
	st = WSE_OK;
out:
	wse_key_free(&key);
	X509_NAME_free(nm);
	X509_free(x);
	BN_free(bn);
	ERR_clear_error();
	return st;
}
