/*
 * pki.c - keys, certificates, CRLs, chain verification and CA directories
 * over OpenSSL 3 (see pki.h).
 *
 * Every OpenSSL failure is translated at this boundary: the reason goes on
 * the wse error stack and OpenSSL's error queue is emptied.
 *
 * Decisions recorded here:
 *  - A domain CA's name constraints permit DNS:<domain> (and its
 *    subdomains, RFC 5280) and email:<domain> (mailboxes exactly at the
 *    domain), nothing else: a domain CA can never vouch for another
 *    domain's names or mailboxes, nor for "localhost".  Loopback set-ups
 *    connect to 127.0.0.1 and check the peer's name as the domain.
 *  - A domain CA issues tokens and service certificates only when it has
 *    exactly that shape (ca_domain): a CA file put in another domain's
 *    directory, or one whose constraints are missing or wider, issues
 *    nothing.
 *  - The CRL number of a CRL issued by wse_crl_issue is its thisUpdate;
 *    the CA-directory functions use max(previous number + 1, now), so it
 *    grows with every reissue.
 *  - The subject is CN=<name>.  A common name holds at most 64
 *    characters (RFC 5280 ub-common-name), so a service or token
 *    certificate for a longer name has an empty subject and a critical
 *    subjectAltName instead (RFC 5280 4.2.1.6); a domain CA's name is its
 *    subject, so domain CAs are limited to 64-character domains.
 *  - Certificates and CRLs made by the CA-directory functions start
 *    BACKDATE seconds before now (clock skew between machines); their
 *    end is clamped to the issuer's notAfter.
 */
#include "pki-private.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "crypto.h"
#include "ossl-private.h"

#define PEM_FILE_MAX	(1u << 20)	/* key, certificate, chain */
#define CRL_FILE_MAX	(16u << 20)
#define REVOKED_MAX	(4u << 20)
#define PUBKEY_PEM_MAX	(64u << 10)
#define BUNDLE_MAX	64		/* certificates or CRLs in one file */
#define HOSTS_MAX	64
#define CHAIN_MAX	16
#define SERIAL_HEX_MAX	64
#define DAY		86400
#define DAYS_MAX	36500
#define BACKDATE	300
#define ROOT_DAYS	3650
#define DOMAIN_DAYS	365
#define SERVICE_DAYS	90
#define CRL_DAYS	30
#define TOKEN_BACKDATE	60
#define CN_MAX		64
#define ROOT_CN_DEFAULT	"WSEmail Root CA"
/* Latest time an ASN1_TIME can carry: 9999-12-31T23:59:59Z. */
#define TIME_MAX	INT64_C(253402300799)
/* Path buffers. */
#define PATHBUF		PATH_MAX

struct wse_key {
	EVP_PKEY *pkey;
	int priv;
};

struct wse_cert {
	X509 *x;
};

struct wse_crl {
	X509_CRL *crl;
};

/* Read-only once verification starts: X509_STORE does its own locking
 * for the lookups X509_verify_cert makes. */
/*
 * Verified-chain cache.  X509_verify_cert with CRL checks costs about
 * 0.3 ms here and every message of a peer carries the same chain, so a
 * success is remembered, keyed by SHA-256 over the purpose and the
 * digests of every certificate offered, for as long as it certainly
 * stays true: within every certificate's validity, within every loaded
 * CRL's thisUpdate..nextUpdate, and at most VCACHE_TTL seconds.  Adding a
 * root or a CRL empties it.  Failures are never cached.
 */
#define VCACHE_N	64
#define VCACHE_TTL	600

struct vcache_entry {
	uint8_t key[32];
	int64_t from, until;
	int used;
};

struct wse_trust {
	X509_STORE *store;		/* the roots */
	STACK_OF(X509_CRL) *crls;	/* the newest CRL of each issuer */
	pthread_mutex_t lock;		/* guards everything below */
	int64_t crl_from, crl_until;	/* max thisUpdate, min nextUpdate */
	struct vcache_entry cache[VCACHE_N];
	unsigned next;			/* round-robin replacement */
	int skip_crls;			/* clients only: no revocation check */
};

/*
 * Parsed-certificate cache: every message of a peer carries the same
 * DER certificates, and d2i_X509 costs ~0.1 ms in OpenSSL 3.0.  Keyed by
 * SHA-256 of the DER bytes; holds a reference to the parsed X509.
 */
#define DERCACHE_N	128

static struct {
	pthread_mutex_t lock;
	struct { uint8_t key[32]; X509 *x; } e[DERCACHE_N];
} dercache = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- helpers: memory BIOs, files ---- */

/* PEM callback: never prompt; encrypted PEM fails. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf; (void)size; (void)rwflag; (void)u;
	return -1;
}

/* Read-only BIO over a buffer's content. */
static wse_status
bio_over(const wse_buf *b, BIO **bio_r)
{
	if (wse_buf_len(b) > INT_MAX)
		return wse_err(WSE_ERR_TOO_LARGE, "input too large");
	if ((*bio_r = BIO_new_mem_buf(wse_buf_data(b),
	    (int)wse_buf_len(b))) == NULL)
		return wse_ossl_err(WSE_ERR_NOMEM, "cannot allocate a memory BIO");
	return WSE_OK;
}

/* Append everything written to a memory BIO. */
static wse_status
bio_append(BIO *bio, wse_buf *out)
{
	char *p = NULL;
	long n = BIO_get_mem_data(bio, &p);

	if (n < 0 || (n > 0 && p == NULL))
		return wse_ossl_err(WSE_ERR_INTERNAL, "memory BIO has no data");
	return wse_buf_put(out, p, (size_t)n);
}

/* Read a PEM/DER file of at most max bytes into a new BIO (and its
 * backing buffer, freed by the caller after the BIO). */
static wse_status
file_bio(const char *path, size_t max, wse_buf **b_r, BIO **bio_r)
{
	wse_status st;

	*bio_r = NULL;
	if (path == NULL)
		return wse_err(WSE_ERR_INVALID, "no file name");
	if ((st = wse_buf_read_file(path, max, b_r)) != WSE_OK)
		return st;
	if ((st = bio_over(*b_r, bio_r)) != WSE_OK)
		wse_buf_free(b_r);
	return st;
}

static int
path_exists(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0 || errno != ENOENT;
}

/* Directory part of path into buf ("." when it has none). */
static void
dir_of(const char *path, char *buf, size_t size)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (slash == NULL) {
		(void)snprintf(buf, size, ".");
		return;
	}
	n = (size_t)(slash - path);
	if (n == 0)
		n = 1;	/* "/file" */
	if (n >= size)
		n = size - 1;
	memcpy(buf, path, n);
	buf[n] = '\0';
}

static wse_status
fsync_dir(const char *path)
{
	char dir[PATHBUF];
	int fd;

	dir_of(path, dir, sizeof(dir));
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return wse_err(WSE_ERR_IO, "cannot open directory %s: %s", dir,
		    strerror(errno));
	if (fsync(fd) == -1 && errno != EINVAL) {
		int e = errno;

		close(fd);
		return wse_err(WSE_ERR_IO, "cannot sync directory %s: %s", dir,
		    strerror(e));
	}
	close(fd);
	return WSE_OK;
}

/*
 * Write len bytes to path atomically: a new temporary file in the same
 * directory (O_CREAT|O_EXCL, mode), fsync, then rename over path
 * (replace) or link to path (no replace: fails with WSE_ERR_EXISTS if
 * path exists, atomically), then sync the directory.
 */
static wse_status
write_file_atomic(const char *path, const void *data, size_t len,
    mode_t mode, int replace)
{
	char tmp[PATHBUF], hex[17];
	uint8_t rnd[8];
	const uint8_t *p = data;
	int fd = -1, created = 0, n;
	size_t off;
	wse_status st = WSE_ERR_INTERNAL;

	if (path == NULL || *path == '\0')
		return wse_err(WSE_ERR_INVALID, "no file name");
	if (!replace && path_exists(path))
		return wse_err(WSE_ERR_EXISTS,
		    "%s already exists; refusing to overwrite it", path);
	if ((st = wse_random(rnd, sizeof(rnd))) != WSE_OK)
		return st;
	wse_hex(rnd, sizeof(rnd), hex);
	n = snprintf(tmp, sizeof(tmp), "%s.tmp-%s", path, hex);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return wse_err(WSE_ERR_INVALID, "file name too long: %s", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    mode);
	if (fd == -1) {
		st = wse_err(WSE_ERR_IO, "cannot create %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	created = 1;
	if (fchmod(fd, mode) == -1) {	/* the umask may have cut bits */
		st = wse_err(WSE_ERR_IO, "cannot set the mode of %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	for (off = 0; off < len;) {
		ssize_t w = write(fd, p + off, len - off);

		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			st = wse_err(WSE_ERR_IO, "cannot write %s: %s", tmp,
			    w == 0 ? "short write" : strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) == -1) {
		st = wse_err(WSE_ERR_IO, "cannot sync %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	if (close(fd) == -1) {
		fd = -1;
		st = wse_err(WSE_ERR_IO, "cannot close %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	fd = -1;
	if (replace) {
		if (rename(tmp, path) == -1) {
			st = wse_err(WSE_ERR_IO, "cannot rename %s to %s: %s",
			    tmp, path, strerror(errno));
			goto out;
		}
	} else {
		/* link() never replaces: the check above is only advisory. */
		if (link(tmp, path) == -1) {
			st = errno == EEXIST ?
			    wse_err(WSE_ERR_EXISTS, "%s already exists; "
			    "refusing to overwrite it", path) :
			    wse_err(WSE_ERR_IO, "cannot link %s to %s: %s",
			    tmp, path, strerror(errno));
			goto out;
		}
		(void)unlink(tmp);
	}
	created = 0;
	st = fsync_dir(path);
out:
	if (fd != -1)
		close(fd);
	if (created)
		(void)unlink(tmp);
	return st;
}

/* ---- helpers: time ---- */

static int64_t
asn1_to_unix(const ASN1_TIME *t, int64_t on_error)
{
	struct tm tm;
	time_t r;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
		ERR_clear_error();
		return on_error;
	}
	r = timegm(&tm);
	if (r == (time_t)-1 && !(tm.tm_year == 69 && tm.tm_mon == 11 &&
	    tm.tm_mday == 31 && tm.tm_hour == 23 && tm.tm_min == 59 &&
	    tm.tm_sec == 59))
		return on_error;
	return (int64_t)r;
}

static wse_status
check_time_value(int64_t t, const char *what)
{
	if (t < 0 || t > TIME_MAX)
		return wse_err(WSE_ERR_INVALID, "%s %lld out of range", what,
		    (long long)t);
	return WSE_OK;
}

/* New ASN1_TIME for t (UTCTime up to 2049, then GeneralizedTime). */
static wse_status
unix_to_asn1(int64_t t, ASN1_TIME **out_r)
{
	wse_status st;

	if ((st = check_time_value(t, "time")) != WSE_OK)
		return st;
	if ((*out_r = ASN1_TIME_set(NULL, (time_t)t)) == NULL)
		return wse_ossl_err(WSE_ERR_CRYPTO, "cannot encode time %lld",
		    (long long)t);
	return WSE_OK;
}

/* ---- helpers: names ---- */

/* Lower-case LDH labels separated by dots, 1..253 characters. */
static int
valid_domain(const char *s)
{
	size_t len, label = 0, i;

	if (s == NULL || (len = strlen(s)) == 0 || len > 253)
		return 0;
	for (i = 0; i <= len; i++) {
		char c = s[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-'))
			return 0;
		if (c == '-' && label == 0)
			return 0;
		label++;
	}
	return 1;
}

/* local@domain: local part [A-Za-z0-9._+-]{1,64}, domain valid_domain.
 * On success *domain_r points into s. */
static int
valid_mailbox(const char *s, const char **domain_r)
{
	const char *at;
	size_t i, n;

	if (s == NULL || (at = strchr(s, '@')) == NULL)
		return 0;
	n = (size_t)(at - s);
	if (n == 0 || n > 64)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '+' || c == '-'))
			return 0;
	}
	if (!valid_domain(at + 1))
		return 0;
	if (domain_r != NULL)
		*domain_r = at + 1;
	return 1;
}

/* A root's common name: 1..64 printable ASCII characters. */
static int
valid_cn(const char *s)
{
	size_t i, len;

	if (s == NULL || (len = strlen(s)) == 0 || len > 64)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

/* host is domain or a subdomain of it. */
static int
host_in_domain(const char *host, const char *domain)
{
	size_t hl = strlen(host), dl = strlen(domain);

	if (strcmp(host, domain) == 0)
		return 1;
	return hl > dl && host[hl - dl - 1] == '.' &&
	    strcmp(host + hl - dl, domain) == 0;
}

/* 1 when ia5_copy would accept s for a buffer of size bytes. */
static int
ia5_ok(const ASN1_IA5STRING *s, size_t size)
{
	const unsigned char *d = ASN1_STRING_get0_data(s);
	int len = ASN1_STRING_length(s), i;

	if (d == NULL || len <= 0 || (size_t)len >= size)
		return 0;
	for (i = 0; i < len; i++)
		if (d[i] <= 0x20 || d[i] >= 0x7f)
			return 0;
	return 1;
}

/* Copy an IA5String of a certificate into buf, lower-cased; only
 * printable ASCII without spaces is accepted.  On failure buf is left
 * empty. */
static wse_status
ia5_copy(const ASN1_IA5STRING *s, char *buf, size_t size)
{
	const unsigned char *d = ASN1_STRING_get0_data(s);
	int len = ASN1_STRING_length(s), i;

	buf[0] = '\0';
	if (d == NULL || len <= 0)
		return wse_err(WSE_ERR_INVALID, "empty name in certificate");
	if ((size_t)len >= size)
		return wse_err(WSE_ERR_TOO_LARGE,
		    "name in certificate longer than %zu bytes", size - 1);
	for (i = 0; i < len; i++)
		if (d[i] <= 0x20 || d[i] >= 0x7f)
			return wse_err(WSE_ERR_INVALID,
			    "forbidden character 0x%02x in a certificate "
			    "name", d[i]);
	for (i = 0; i < len; i++)
		buf[i] = (char)(d[i] >= 'A' && d[i] <= 'Z' ?
		    d[i] - 'A' + 'a' : d[i]);
	buf[len] = '\0';
	return WSE_OK;
}

/* One-line RFC 2253 form of name into buf; TOO_LARGE if it does not
 * fit (buf then holds a truncated form, still NUL-terminated). */
static wse_status
name_text(const X509_NAME *name, char *buf, size_t size)
{
	BIO *bio = NULL;
	char *p = NULL;
	long n;
	wse_status st = WSE_ERR_INTERNAL;

	if (buf == NULL || size == 0)
		return wse_err(WSE_ERR_INVALID, "no output buffer");
	buf[0] = '\0';
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) < 0) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "cannot print a name");
		goto out;
	}
	n = BIO_get_mem_data(bio, &p);
	if (n < 0 || (n > 0 && p == NULL)) {
		st = wse_ossl_err(WSE_ERR_INTERNAL, "cannot print a name");
		goto out;
	}
	if ((size_t)n >= size) {
		memcpy(buf, p, size - 1);
		buf[size - 1] = '\0';
		st = wse_err(WSE_ERR_TOO_LARGE, "name longer than %zu bytes",
		    size - 1);
		goto out;
	}
	if (n > 0)	/* an empty name leaves p NULL */
		memcpy(buf, p, (size_t)n);
	buf[n] = '\0';
	st = WSE_OK;
out:
	BIO_free(bio);
	return st;
}

/* The subjectAltName extension; *gens_r is NULL when there is none. */
static wse_status
get_sans(const X509 *x, GENERAL_NAMES **gens_r)
{
	int crit = -1;

	*gens_r = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
	if (*gens_r != NULL)
		return WSE_OK;
	if (crit == -1) {
		ERR_clear_error();
		return WSE_OK;
	}
	return wse_ossl_err(WSE_ERR_INVALID, crit == -2 ?
	    "certificate has several subjectAltName extensions" :
	    "certificate has a malformed subjectAltName");
}

/* Count SAN entries by type. */
static void
count_sans(const GENERAL_NAMES *gens, int *dns_r, int *email_r, int *other_r)
{
	int i;

	*dns_r = *email_r = *other_r = 0;
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type == GEN_DNS)
			(*dns_r)++;
		else if (g->type == GEN_EMAIL)
			(*email_r)++;
		else
			(*other_r)++;
	}
}

/* ---- keys ---- */

/* EC P-256 or RSA >= 2048 bits, else WSE_ERR_UNSUPPORTED. */
static wse_status
key_check_strength(const EVP_PKEY *pkey, const char *what)
{
	char group[80];
	size_t glen = 0;
	int nid, bits;

	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_group_name(pkey, group, sizeof(group),
		    &glen) != 1) {
			ERR_clear_error();
			return wse_err(WSE_ERR_UNSUPPORTED,
			    "%s: EC key without a named curve", what);
		}
		if ((nid = OBJ_sn2nid(group)) == NID_undef)
			nid = EC_curve_nist2nid(group);
		if (nid != NID_X9_62_prime256v1)
			return wse_err(WSE_ERR_UNSUPPORTED,
			    "%s: EC curve %s is not supported (P-256 only)",
			    what, group);
		return WSE_OK;
	case EVP_PKEY_RSA:
		bits = EVP_PKEY_get_bits(pkey);
		if (bits < 2048)
			return wse_err(WSE_ERR_UNSUPPORTED,
			    "%s: RSA key of %d bits is too weak (2048 minimum)",
			    what, bits);
		return WSE_OK;
	default:
		return wse_err(WSE_ERR_UNSUPPORTED,
		    "%s: key type %s is not supported (EC P-256 or RSA)",
		    what, OBJ_nid2sn(EVP_PKEY_get_base_id(pkey)));
	}
}

/* Wrap pkey (ownership passes on success). */
static wse_status
key_wrap(EVP_PKEY *pkey, int priv, wse_key **key_r)
{
	wse_key *k;

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate a key");
	k->pkey = pkey;
	k->priv = priv;
	*key_r = k;
	return WSE_OK;
}

EVP_PKEY *
wse_key_evp(const wse_key *key)
{
	return key != NULL ? key->pkey : NULL;
}

wse_status
wse_key_generate(wse_key **key_r)
{
	EVP_PKEY *pkey = NULL;
	wse_status st;

	*key_r = NULL;
	if ((pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL)
		return wse_ossl_err(WSE_ERR_CRYPTO, "cannot generate a P-256 key");
	if ((st = key_wrap(pkey, 1, key_r)) != WSE_OK)
		EVP_PKEY_free(pkey);
	return st;
}

wse_status
wse_key_load(const char *path, wse_key **key_r)
{
	wse_buf *b = NULL;
	BIO *bio = NULL;
	EVP_PKEY *pkey = NULL;
	wse_status st;

	*key_r = NULL;
	if ((st = file_bio(path, PEM_FILE_MAX, &b, &bio)) != WSE_OK)
		goto out;
	if ((pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase,
	    NULL)) == NULL) {
		st = wse_ossl_err(WSE_ERR_INVALID,
		    "%s: not an unencrypted PEM private key", path);
		goto out;
	}
	if ((st = key_check_strength(pkey, path)) != WSE_OK)
		goto out;
	if ((st = key_wrap(pkey, 1, key_r)) != WSE_OK)
		goto out;
	pkey = NULL;
out:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	wse_buf_free(&b);
	ERR_clear_error();
	return st;
}

wse_status
wse_key_from_public_pem(const char *pem, size_t len, wse_key **key_r)
{
	BIO *bio = NULL;
	EVP_PKEY *pkey = NULL;
	wse_status st;

	*key_r = NULL;
	if (pem == NULL || len == 0)
		return wse_err(WSE_ERR_INVALID, "empty public key");
	if (len > PUBKEY_PEM_MAX)
		return wse_err(WSE_ERR_TOO_LARGE,
		    "public key PEM longer than %u bytes", PUBKEY_PEM_MAX);
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
		st = wse_ossl_err(WSE_ERR_NOMEM, "cannot allocate a memory BIO");
		goto out;
	}
	if ((pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase,
	    NULL)) == NULL) {
		st = wse_ossl_err(WSE_ERR_INVALID,
		    "not a PEM SubjectPublicKeyInfo");
		goto out;
	}
	if ((st = key_check_strength(pkey, "public key")) != WSE_OK)
		goto out;
	if ((st = key_wrap(pkey, 0, key_r)) != WSE_OK)
		goto out;
	pkey = NULL;
out:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	ERR_clear_error();
	return st;
}

wse_status
wse_key_public_pem(const wse_key *key, wse_buf *out)
{
	BIO *bio = NULL;
	wse_status st;

	if (key == NULL || out == NULL)
		return wse_err(WSE_ERR_INVALID, "no key");
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_PUBKEY(bio, key->pkey) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "cannot encode a public key");
		goto out;
	}
	st = bio_append(bio, out);
out:
	BIO_free(bio);
	return st;
}

wse_status
wse_key_save(const wse_key *key, const char *path)
{
	BIO *bio = NULL;
	char *p = NULL;
	long n;
	wse_status st;

	if (key == NULL || !key->priv)
		return wse_err(WSE_ERR_INVALID, "no private key to save");
	if (path == NULL)
		return wse_err(WSE_ERR_INVALID, "no file name");
	if (path_exists(path))
		return wse_err(WSE_ERR_EXISTS,
		    "%s already exists; refusing to overwrite a key", path);
	/* secmem: the PEM text is wiped when the BIO is freed */
	if ((bio = BIO_new(BIO_s_secmem())) == NULL ||
	    PEM_write_bio_PKCS8PrivateKey(bio, key->pkey, NULL, NULL, 0,
	    NULL, NULL) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "cannot encode a private key");
		goto out;
	}
	n = BIO_get_mem_data(bio, &p);
	if (n <= 0 || p == NULL) {
		st = wse_ossl_err(WSE_ERR_INTERNAL, "empty private key encoding");
		goto out;
	}
	st = write_file_atomic(path, p, (size_t)n, 0600, 0);
out:
	BIO_free(bio);
	return st;
}

int
wse_key_is_private(const wse_key *key)
{
	return key != NULL && key->priv;
}

void
wse_key_free(wse_key **key)
{
	if (key == NULL || *key == NULL)
		return;
	EVP_PKEY_free((*key)->pkey);
	free(*key);
	*key = NULL;
}

/* ---- certificates ---- */

/* Wrap x (ownership passes on success). */
static wse_status
cert_wrap(X509 *x, wse_cert **cert_r)
{
	wse_cert *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate a certificate");
	c->x = x;
	*cert_r = c;
	return WSE_OK;
}

X509 *
wse_cert_x509(const wse_cert *cert)
{
	return cert != NULL ? cert->x : NULL;
}

/* Read every certificate of a PEM BIO (at least one). */
static wse_status
read_cert_list(BIO *bio, const char *what, wse_cert ***certs_r, size_t *n_r)
{
	wse_cert **v = NULL;
	X509 *x = NULL;
	size_t n = 0;
	wse_status st = WSE_ERR_INTERNAL;

	*certs_r = NULL;
	*n_r = 0;
	if ((v = calloc(BUNDLE_MAX, sizeof(*v))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate a list");
	for (;;) {
		if ((x = PEM_read_bio_X509(bio, NULL, no_passphrase,
		    NULL)) == NULL) {
			unsigned long e = ERR_peek_last_error();

			if (n > 0 && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
				ERR_clear_error();
				break;
			}
			st = wse_ossl_err(WSE_ERR_INVALID,
			    "%s: certificate %zu is not valid PEM", what, n + 1);
			goto out;
		}
		if (n == BUNDLE_MAX) {
			st = wse_err(WSE_ERR_TOO_LARGE,
			    "%s: more than %d certificates", what, BUNDLE_MAX);
			goto out;
		}
		if ((st = cert_wrap(x, &v[n])) != WSE_OK)
			goto out;
		x = NULL;
		n++;
	}
	*certs_r = v;
	*n_r = n;
	v = NULL;
	st = WSE_OK;
out:
	X509_free(x);
	wse_cert_list_free(&v, n);
	return st;
}

wse_status
wse_cert_load(const char *path, wse_cert **cert_r)
{
	wse_buf *b = NULL;
	BIO *bio = NULL;
	X509 *x = NULL;
	wse_status st;

	*cert_r = NULL;
	if ((st = file_bio(path, PEM_FILE_MAX, &b, &bio)) != WSE_OK)
		goto out;
	if ((x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) == NULL) {
		st = wse_ossl_err(WSE_ERR_INVALID, "%s: not a PEM certificate",
		    path);
		goto out;
	}
	if ((st = cert_wrap(x, cert_r)) != WSE_OK)
		goto out;
	x = NULL;
out:
	X509_free(x);
	BIO_free(bio);
	wse_buf_free(&b);
	ERR_clear_error();
	return st;
}

wse_status
wse_cert_load_list(const char *path, wse_cert ***certs_r, size_t *n_r)
{
	wse_buf *b = NULL;
	BIO *bio = NULL;
	wse_status st;

	*certs_r = NULL;
	*n_r = 0;
	if ((st = file_bio(path, PEM_FILE_MAX, &b, &bio)) != WSE_OK)
		goto out;
	st = read_cert_list(bio, path, certs_r, n_r);
out:
	BIO_free(bio);
	wse_buf_free(&b);
	ERR_clear_error();
	return st;
}

void
wse_cert_list_free(wse_cert ***certs, size_t n)
{
	size_t i;

	if (certs == NULL || *certs == NULL)
		return;
	for (i = 0; i < n; i++)
		wse_cert_free(&(*certs)[i]);
	free(*certs);
	*certs = NULL;
}

wse_status
wse_cert_from_der(const uint8_t *der, size_t len, wse_cert **cert_r)
{
	const unsigned char *p = der;
	X509 *x = NULL;
	wse_status st;

	*cert_r = NULL;
	if (der == NULL || len == 0)
		return wse_err(WSE_ERR_INVALID, "empty certificate");
	if (len > PEM_FILE_MAX)
		return wse_err(WSE_ERR_TOO_LARGE,
		    "certificate longer than %u bytes", PEM_FILE_MAX);
	{
		uint8_t h[32];
		unsigned slot;

		if (EVP_Digest(der, len, h, NULL, EVP_sha256(), NULL) == 1) {
			slot = (unsigned)(h[0] | h[1] << 8) % DERCACHE_N;
			pthread_mutex_lock(&dercache.lock);
			if (dercache.e[slot].x != NULL &&
			    memcmp(dercache.e[slot].key, h, 32) == 0 &&
			    X509_up_ref(dercache.e[slot].x) == 1)
				x = dercache.e[slot].x;
			pthread_mutex_unlock(&dercache.lock);
			if (x != NULL) {
				if ((st = cert_wrap(x, cert_r)) == WSE_OK)
					x = NULL;
				goto out;
			}
		}
		if ((x = d2i_X509(NULL, &p, (long)len)) == NULL) {
			st = wse_ossl_err(WSE_ERR_INVALID, "not a DER certificate");
			goto out;
		}
		if (p == der + len &&
		    EVP_Digest(der, len, h, NULL, EVP_sha256(), NULL) == 1 &&
		    X509_up_ref(x) == 1) {
			slot = (unsigned)(h[0] | h[1] << 8) % DERCACHE_N;
			pthread_mutex_lock(&dercache.lock);
			X509_free(dercache.e[slot].x);
			memcpy(dercache.e[slot].key, h, 32);
			dercache.e[slot].x = x;
			pthread_mutex_unlock(&dercache.lock);
		}
	}
	if (p != der + len) {
		st = wse_err(WSE_ERR_INVALID,
		    "%zu bytes of trailing data after a DER certificate",
		    len - (size_t)(p - der));
		goto out;
	}
	if ((st = cert_wrap(x, cert_r)) != WSE_OK)
		goto out;
	x = NULL;
out:
	X509_free(x);
	ERR_clear_error();
	return st;
}

wse_status
wse_cert_to_der(const wse_cert *cert, wse_buf *out)
{
	unsigned char *der = NULL;
	int n;
	wse_status st;

	if (cert == NULL || out == NULL)
		return wse_err(WSE_ERR_INVALID, "no certificate");
	if ((n = i2d_X509(cert->x, &der)) <= 0)
		return wse_ossl_err(WSE_ERR_CRYPTO, "cannot encode a certificate");
	st = wse_buf_put(out, der, (size_t)n);
	OPENSSL_free(der);
	return st;
}

wse_status
wse_cert_to_pem(const wse_cert *cert, wse_buf *out)
{
	BIO *bio = NULL;
	wse_status st;

	if (cert == NULL || out == NULL)
		return wse_err(WSE_ERR_INVALID, "no certificate");
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_X509(bio, cert->x) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "cannot encode a certificate");
		goto out;
	}
	st = bio_append(bio, out);
out:
	BIO_free(bio);
	return st;
}

/* PEM of cert written to path (0644) atomically, replacing or not. */
static wse_status
cert_write(const wse_cert *cert, const char *path, int replace)
{
	wse_buf *b = NULL;
	wse_status st;

	if ((b = wse_buf_new(PEM_FILE_MAX)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate a buffer");
	if ((st = wse_cert_to_pem(cert, b)) == WSE_OK)
		st = write_file_atomic(path, wse_buf_data(b), wse_buf_len(b),
		    0644, replace);
	wse_buf_free(&b);
	return st;
}

wse_status
wse_cert_save(const wse_cert *cert, const char *path)
{
	return cert_write(cert, path, 1);
}

wse_cert *
wse_cert_from_x509(X509 *x)
{
	wse_cert *c;

	if (x == NULL || (c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if (X509_up_ref(x) != 1) {
		ERR_clear_error();
		free(c);
		return NULL;
	}
	c->x = x;
	return c;
}

wse_cert *
wse_cert_dup(const wse_cert *cert)
{
	return cert == NULL ? NULL : wse_cert_from_x509(cert->x);
}

void
wse_cert_free(wse_cert **cert)
{
	if (cert == NULL || *cert == NULL)
		return;
	X509_free((*cert)->x);
	free(*cert);
	*cert = NULL;
}

/* On a parse error: INT64_MAX, so that a time check fails closed. */
int64_t
wse_cert_not_before(const wse_cert *cert)
{
	return cert == NULL ? INT64_MAX :
	    asn1_to_unix(X509_get0_notBefore(cert->x), INT64_MAX);
}

/* On a parse error: INT64_MIN, so that a time check fails closed. */
int64_t
wse_cert_not_after(const wse_cert *cert)
{
	return cert == NULL ? INT64_MIN :
	    asn1_to_unix(X509_get0_notAfter(cert->x), INT64_MIN);
}

wse_status
wse_cert_check_time(const wse_cert *cert, int64_t now)
{
	char subj[160];

	if (cert == NULL)
		return wse_err(WSE_ERR_INVALID, "no certificate");
	if (now < wse_cert_not_before(cert)) {
		(void)name_text(X509_get_subject_name(cert->x), subj,
		    sizeof(subj));
		return wse_err(WSE_ERR_CERT_NOT_YET_VALID,
		    "certificate %s is not yet valid", subj);
	}
	if (now > wse_cert_not_after(cert)) {
		(void)name_text(X509_get_subject_name(cert->x), subj,
		    sizeof(subj));
		return wse_err(WSE_ERR_CERT_EXPIRED,
		    "certificate %s has expired", subj);
	}
	return WSE_OK;
}

/* Lower-case hex of an ASN1_INTEGER into buf. */
static wse_status
integer_hex(const ASN1_INTEGER *ai, char *buf, size_t size)
{
	BIGNUM *bn = NULL;
	char *hex = NULL;
	size_t i, len;
	wse_status st = WSE_ERR_INTERNAL;

	if (buf == NULL || size == 0)
		return wse_err(WSE_ERR_INVALID, "no output buffer");
	buf[0] = '\0';
	if ((bn = ASN1_INTEGER_to_BN(ai, NULL)) == NULL ||
	    (hex = BN_bn2hex(bn)) == NULL) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "cannot convert a serial");
		goto out;
	}
	if ((len = strlen(hex)) >= size) {
		st = wse_err(WSE_ERR_TOO_LARGE, "serial longer than %zu bytes",
		    size - 1);
		goto out;
	}
	for (i = 0; i <= len; i++)
		buf[i] = (char)(hex[i] >= 'A' && hex[i] <= 'F' ?
		    hex[i] - 'A' + 'a' : hex[i]);
	st = WSE_OK;
out:
	OPENSSL_free(hex);
	BN_free(bn);
	return st;
}

wse_status
wse_cert_serial(const wse_cert *cert, char *buf, size_t size)
{
	if (cert == NULL)
		return wse_err(WSE_ERR_INVALID, "no certificate");
	return integer_hex(X509_get0_serialNumber(cert->x), buf, size);
}

wse_status
wse_cert_subject(const wse_cert *cert, char *buf, size_t size)
{
	if (cert == NULL)
		return wse_err(WSE_ERR_INVALID, "no certificate");
	return name_text(X509_get_subject_name(cert->x), buf, size);
}

wse_status
wse_cert_issuer(const wse_cert *cert, char *buf, size_t size)
{
	if (cert == NULL)
		return wse_err(WSE_ERR_INVALID, "no certificate");
	return name_text(X509_get_issuer_name(cert->x), buf, size);
}

wse_status
wse_cert_san_text(const wse_cert *cert, wse_buf *out)
{
	GENERAL_NAMES *gens = NULL;
	char name[300];
	int i;
	wse_status st;

	if (cert == NULL || out == NULL)
		return wse_err(WSE_ERR_INVALID, "no certificate");
	if ((st = get_sans(cert->x, &gens)) != WSE_OK || gens == NULL)
		return st;
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const char *sep = i ? ", " : "";

		switch (g->type) {
		case GEN_DNS:
		case GEN_EMAIL:
		case GEN_URI:
			if (!ia5_ok(g->d.ia5, sizeof(name)) ||
			    ia5_copy(g->d.ia5, name, sizeof(name)) != WSE_OK)
				(void)snprintf(name, sizeof(name),
				    "<unprintable>");
			st = wse_buf_printf(out, "%s%s:%s", sep,
			    g->type == GEN_DNS ? "DNS" :
			    g->type == GEN_EMAIL ? "email" : "URI", name);
			break;
		case GEN_IPADD:
			st = wse_buf_printf(out, "%sIP:<%d bytes>", sep,
			    ASN1_STRING_length(g->d.ip));
			break;
		default:
			st = wse_buf_printf(out, "%sother(%d)", sep, g->type);
			break;
		}
		if (st != WSE_OK)
			break;
	}
	GENERAL_NAMES_free(gens);
	return st;
}

wse_status
wse_cert_mailbox(const wse_cert *cert, char *buf, size_t size)
{
	GENERAL_NAMES *gens = NULL;
	const GENERAL_NAME *email = NULL;
	int i;
	wse_status st;

	if (cert == NULL || buf == NULL || size == 0)
		return wse_err(WSE_ERR_INVALID, "no certificate or buffer");
	buf[0] = '\0';
	if ((st = get_sans(cert->x, &gens)) != WSE_OK)
		return st;
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type != GEN_EMAIL)
			continue;
		if (email != NULL) {
			st = wse_err(WSE_ERR_INVALID,
			    "certificate names more than one mailbox");
			goto out;
		}
		email = g;
	}
	if (email == NULL) {
		st = wse_err(WSE_ERR_NOT_FOUND,
		    "certificate names no mailbox");
		goto out;
	}
	if ((st = ia5_copy(email->d.ia5, buf, size)) != WSE_OK)
		goto out;
	if (!valid_mailbox(buf, NULL)) {
		st = wse_err(WSE_ERR_INVALID,
		    "certificate mailbox \"%s\" is malformed", buf);
		buf[0] = '\0';
		goto out;
	}
out:
	GENERAL_NAMES_free(gens);
	return st;
}

wse_status
wse_cert_domain(const wse_cert *cert, char *buf, size_t size)
{
	GENERAL_NAMES *gens = NULL;
	char mbox[64 + 1 + 253 + 1];
	const char *dom = NULL;
	int i;
	wse_status st;

	if (cert == NULL || buf == NULL || size == 0)
		return wse_err(WSE_ERR_INVALID, "no certificate or buffer");
	buf[0] = '\0';
	if ((st = get_sans(cert->x, &gens)) != WSE_OK)
		return st;
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type != GEN_DNS)
			continue;
		if ((st = ia5_copy(g->d.ia5, buf, size)) != WSE_OK)
			goto out;
		if (!valid_domain(buf)) {
			st = wse_err(WSE_ERR_INVALID,
			    "certificate DNS name \"%s\" is malformed", buf);
			buf[0] = '\0';
		}
		goto out;
	}
	/* No dNSName: a token's mailbox. */
	if ((st = wse_cert_mailbox(cert, mbox, sizeof(mbox))) != WSE_OK) {
		if (st == WSE_ERR_NOT_FOUND)
			st = wse_err(WSE_ERR_NOT_FOUND,
			    "certificate names neither a domain nor a mailbox");
		goto out;
	}
	(void)valid_mailbox(mbox, &dom);
	if (strlen(dom) >= size) {
		st = wse_err(WSE_ERR_TOO_LARGE, "domain longer than %zu bytes",
		    size - 1);
		goto out;
	}
	(void)snprintf(buf, size, "%s", dom);
	st = WSE_OK;
out:
	GENERAL_NAMES_free(gens);
	return st;
}

int
wse_cert_is_ca(const wse_cert *cert)
{
	int r;

	if (cert == NULL)
		return 0;
	r = X509_check_ca(cert->x);
	ERR_clear_error();
	return r != 0;
}

int
wse_cert_matches_key(const wse_cert *cert, const wse_key *key)
{
	EVP_PKEY *pub;
	int r;

	if (cert == NULL || key == NULL ||
	    (pub = X509_get0_pubkey(cert->x)) == NULL) {
		ERR_clear_error();
		return 0;
	}
	r = EVP_PKEY_eq(pub, key->pkey);
	ERR_clear_error();
	return r == 1;
}

wse_status
wse_cert_public_key(const wse_cert *cert, wse_key **key_r)
{
	EVP_PKEY *pkey;
	wse_status st;

	*key_r = NULL;
	if (cert == NULL)
		return wse_err(WSE_ERR_INVALID, "no certificate");
	if ((pkey = X509_get_pubkey(cert->x)) == NULL)
		return wse_ossl_err(WSE_ERR_INVALID,
		    "cannot decode the certificate's public key");
	if ((st = key_wrap(pkey, 0, key_r)) != WSE_OK)
		EVP_PKEY_free(pkey);
	return st;
}

/* ---- issuing ---- */

static wse_status
add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext;
	int ok;

	if ((ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value)) == NULL)
		return wse_ossl_err(WSE_ERR_CRYPTO, "cannot build extension %s=%s",
		    OBJ_nid2sn(nid), value);
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (ok != 1)
		return wse_ossl_err(WSE_ERR_CRYPTO, "cannot add extension %s",
		    OBJ_nid2sn(nid));
	return WSE_OK;
}

/* 128 random bits as a positive, non-zero serial. */
static wse_status
random_serial(X509 *x)
{
	uint8_t r[16];
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai = NULL;
	wse_status st;

	do {
		if ((st = wse_random(r, sizeof(r))) != WSE_OK)
			return st;
		BN_free(bn);
		if ((bn = BN_bin2bn(r, sizeof(r), NULL)) == NULL) {
			st = wse_ossl_err(WSE_ERR_NOMEM, "cannot make a serial");
			goto out;
		}
	} while (BN_is_zero(bn));
	if ((ai = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    X509_set_serialNumber(x, ai) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "cannot set a serial");
		goto out;
	}
	st = WSE_OK;
out:
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return st;
}

/* Check the profile's names and times; the kind-specific name. */
static wse_status
check_profile(const wse_cert_profile *pr)
{
	size_t i;
	wse_status st;

	if (pr->name == NULL)
		return wse_err(WSE_ERR_INVALID, "certificate profile has no name");
	switch (pr->kind) {
	case WSE_CERT_ROOT:
		if (!valid_cn(pr->name))
			return wse_err(WSE_ERR_INVALID, "invalid root name "
			    "(1..64 printable ASCII characters)");
		break;
	case WSE_CERT_DOMAIN_CA:
	case WSE_CERT_SERVICE:
		if (!valid_domain(pr->name))
			return wse_err(WSE_ERR_INVALID, "invalid domain name "
			    "\"%.260s\" (lower-case letters, digits, hyphens, "
			    "dots)", pr->name);
		if (pr->kind == WSE_CERT_DOMAIN_CA &&
		    strlen(pr->name) > CN_MAX)
			return wse_err(WSE_ERR_INVALID, "a domain CA's domain "
			    "has at most %d characters", CN_MAX);
		break;
	case WSE_CERT_TOKEN:
		if (!valid_mailbox(pr->name, NULL))
			return wse_err(WSE_ERR_INVALID,
			    "invalid mailbox \"%.320s\"", pr->name);
		break;
	default:
		return wse_err(WSE_ERR_INVALID, "unknown certificate kind %d",
		    (int)pr->kind);
	}
	if (pr->kind == WSE_CERT_SERVICE) {
		if (pr->nhosts > HOSTS_MAX || (pr->nhosts > 0 &&
		    pr->hosts == NULL))
			return wse_err(WSE_ERR_INVALID,
			    "bad host list (at most %d hosts)", HOSTS_MAX);
		for (i = 0; i < pr->nhosts; i++)
			if (!valid_domain(pr->hosts[i]))
				return wse_err(WSE_ERR_INVALID,
				    "invalid host name \"%.260s\"",
				    pr->hosts[i] ? pr->hosts[i] : "(null)");
	} else if (pr->nhosts != 0) {
		return wse_err(WSE_ERR_INVALID,
		    "only service certificates carry host names");
	}
	if ((st = check_time_value(pr->not_before, "notBefore")) != WSE_OK ||
	    (st = check_time_value(pr->not_after, "notAfter")) != WSE_OK)
		return st;
	if (pr->not_after <= pr->not_before)
		return wse_err(WSE_ERR_INVALID,
		    "notAfter must be later than notBefore");
	return WSE_OK;
}

/* subjectAltName value of a service certificate: the domain, then each
 * host not listed yet. */
static wse_status
service_san(const wse_cert_profile *pr, wse_buf *b)
{
	size_t i, j;
	wse_status st;

	if ((st = wse_buf_printf(b, "DNS:%s", pr->name)) != WSE_OK)
		return st;
	for (i = 0; i < pr->nhosts; i++) {
		int dup = strcmp(pr->hosts[i], pr->name) == 0;

		for (j = 0; j < i && !dup; j++)
			dup = strcmp(pr->hosts[i], pr->hosts[j]) == 0;
		if (!dup && (st = wse_buf_printf(b, ",DNS:%s",
		    pr->hosts[i])) != WSE_OK)
			return st;
	}
	return WSE_OK;
}

/* The extensions of each profile; the subjectAltName is critical when
 * the subject is empty. */
static wse_status
add_profile_exts(X509 *x, X509V3_CTX *ctx, const wse_cert_profile *pr,
    const EVP_PKEY *subject_pub, int empty_subject)
{
	const char *san_crit = empty_subject ? "critical," : "";

	wse_buf *b = NULL;
	wse_status st;

	if ((b = wse_buf_new(HOSTS_MAX * 260 + 1024)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate a buffer");
	/* Key identifiers first: the AKI of a self-signed certificate is
	 * taken from its own SKI. */
	if ((st = add_ext(x, ctx, NID_subject_key_identifier, "hash")) !=
	    WSE_OK ||
	    (st = add_ext(x, ctx, NID_authority_key_identifier,
	    "keyid:always")) != WSE_OK)
		goto out;
	switch (pr->kind) {
	case WSE_CERT_ROOT:
		if ((st = add_ext(x, ctx, NID_basic_constraints,
		    "critical,CA:TRUE")) != WSE_OK ||
		    (st = add_ext(x, ctx, NID_key_usage,
		    "critical,keyCertSign,cRLSign")) != WSE_OK)
			goto out;
		break;
	case WSE_CERT_DOMAIN_CA:
		if ((st = add_ext(x, ctx, NID_basic_constraints,
		    "critical,CA:TRUE,pathlen:0")) != WSE_OK ||
		    (st = add_ext(x, ctx, NID_key_usage,
		    "critical,keyCertSign,cRLSign")) != WSE_OK ||
		    (st = wse_buf_printf(b, "critical,permitted;DNS:%s,"
		    "permitted;email:%s", pr->name, pr->name)) != WSE_OK ||
		    (st = add_ext(x, ctx, NID_name_constraints,
		    wse_buf_str(b))) != WSE_OK)
			goto out;
		break;
	case WSE_CERT_SERVICE:
		if ((st = add_ext(x, ctx, NID_basic_constraints,
		    "critical,CA:FALSE")) != WSE_OK ||
		    (st = add_ext(x, ctx, NID_key_usage,
		    EVP_PKEY_get_base_id(subject_pub) == EVP_PKEY_RSA ?
		    "critical,digitalSignature,keyEncipherment" :
		    "critical,digitalSignature")) != WSE_OK ||
		    (st = add_ext(x, ctx, NID_ext_key_usage,
		    "serverAuth,clientAuth")) != WSE_OK ||
		    (st = wse_buf_puts(b, san_crit)) != WSE_OK ||
		    (st = service_san(pr, b)) != WSE_OK ||
		    (st = add_ext(x, ctx, NID_subject_alt_name,
		    wse_buf_str(b))) != WSE_OK)
			goto out;
		break;
	case WSE_CERT_TOKEN:
		if ((st = add_ext(x, ctx, NID_basic_constraints,
		    "critical,CA:FALSE")) != WSE_OK ||
		    (st = add_ext(x, ctx, NID_key_usage,
		    "critical,digitalSignature")) != WSE_OK ||
		    (st = add_ext(x, ctx, NID_ext_key_usage,
		    "clientAuth")) != WSE_OK ||
		    (st = wse_buf_printf(b, "%semail:%s", san_crit,
		    pr->name)) != WSE_OK ||
		    (st = add_ext(x, ctx, NID_subject_alt_name,
		    wse_buf_str(b))) != WSE_OK)
			goto out;
		break;
	}
	st = WSE_OK;
out:
	wse_buf_free(&b);
	return st;
}

wse_status
wse_cert_issue(const wse_cert_profile *profile, const wse_key *subject_key,
    const wse_cert *issuer, const wse_key *issuer_key, wse_cert **cert_r)
{
	X509 *x = NULL;
	X509_NAME *name = NULL;
	ASN1_TIME *nb = NULL, *na = NULL;
	X509V3_CTX ctx;
	int use_cn;
	wse_status st;

	*cert_r = NULL;
	if (profile == NULL || subject_key == NULL || issuer_key == NULL)
		return wse_err(WSE_ERR_INVALID, "issue: missing argument");
	if ((st = check_profile(profile)) != WSE_OK)
		return st;
	if (!issuer_key->priv)
		return wse_err(WSE_ERR_INVALID,
		    "issue: the issuer key has no private half");
	if (issuer == NULL) {
		if (EVP_PKEY_eq(subject_key->pkey, issuer_key->pkey) != 1) {
			ERR_clear_error();
			return wse_err(WSE_ERR_INVALID, "issue: a self-signed "
			    "certificate needs subject key == issuer key");
		}
	} else {
		if (profile->kind == WSE_CERT_ROOT)
			return wse_err(WSE_ERR_INVALID,
			    "issue: a root certificate is self-signed");
		if (!wse_cert_matches_key(issuer, issuer_key))
			return wse_err(WSE_ERR_INVALID, "issue: the issuer key "
			    "does not match the issuer certificate");
		if (profile->not_after > wse_cert_not_after(issuer))
			return wse_err(WSE_ERR_INVALID, "issue: notAfter is "
			    "later than the issuer's notAfter");
	}
	if ((st = key_check_strength(subject_key->pkey, "subject key")) !=
	    WSE_OK ||
	    (st = key_check_strength(issuer_key->pkey, "issuer key")) !=
	    WSE_OK)
		return st;

	if ((x = X509_new()) == NULL || X509_set_version(x, 2) != 1) {
		st = wse_ossl_err(WSE_ERR_NOMEM, "cannot allocate a certificate");
		goto out;
	}
	if ((st = random_serial(x)) != WSE_OK)
		goto out;
	use_cn = strlen(profile->name) <= CN_MAX;
	if ((name = X509_NAME_new()) == NULL ||
	    (use_cn && X509_NAME_add_entry_by_NID(name, NID_commonName,
	    MBSTRING_UTF8, (const unsigned char *)profile->name, -1, -1,
	    0) != 1) ||
	    X509_set_subject_name(x, name) != 1 ||
	    X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer->x) : name) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "cannot set certificate names");
		goto out;
	}
	if ((st = unix_to_asn1(profile->not_before, &nb)) != WSE_OK ||
	    (st = unix_to_asn1(profile->not_after, &na)) != WSE_OK)
		goto out;
	if (X509_set1_notBefore(x, nb) != 1 ||
	    X509_set1_notAfter(x, na) != 1 ||
	    X509_set_pubkey(x, subject_key->pkey) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "cannot set certificate fields");
		goto out;
	}
	X509V3_set_ctx(&ctx, issuer != NULL ? issuer->x : x, x, NULL, NULL, 0);
	if (X509V3_set_issuer_pkey(&ctx, issuer_key->pkey) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "cannot set the issuer key");
		goto out;
	}
	if ((st = add_profile_exts(x, &ctx, profile, subject_key->pkey,
	    !use_cn)) != WSE_OK)
		goto out;
	if (X509_sign(x, issuer_key->pkey, EVP_sha256()) <= 0) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "cannot sign the certificate");
		goto out;
	}
	if ((st = cert_wrap(x, cert_r)) != WSE_OK)
		goto out;
	x = NULL;
out:
	ASN1_TIME_free(nb);
	ASN1_TIME_free(na);
	X509_NAME_free(name);
	X509_free(x);
	ERR_clear_error();
	return st;
}

/* A name constraint's base as text ("DNS:b.test", "email:a.test",
 * "IP:<8 bytes>"), for error messages. */
static void
subtree_text(const GENERAL_NAME *g, char *buf, size_t size)
{
	char name[260];

	switch (g->type) {
	case GEN_DNS:
	case GEN_EMAIL:
	case GEN_URI:
		if (ia5_copy(g->d.ia5, name, sizeof(name)) != WSE_OK)
			(void)snprintf(name, sizeof(name), "<unprintable>");
		(void)snprintf(buf, size, "%s:%s", g->type == GEN_DNS ? "DNS" :
		    g->type == GEN_EMAIL ? "email" : "URI", name);
		break;
	case GEN_IPADD:
		(void)snprintf(buf, size, "IP:<%d bytes>",
		    ASN1_STRING_length(g->d.ip));
		break;
	default:
		(void)snprintf(buf, size, "a name of type %d", g->type);
		break;
	}
}

/*
 * The domain a domain CA certificate speaks for, from a certificate of
 * exactly the shape wse_cert_issue gives a domain CA: one common name,
 * a valid domain, and critical name constraints whose permitted subtrees
 * are DNS:<domain> and email:<domain>, once each, and nothing else.  A CA
 * without them, or whose constraints name another domain or more than its
 * own names, issues nothing here (WSE_ERR_NOT_AUTHORIZED).  Excluded
 * subtrees only narrow what it may vouch for and are not looked at.
 */
static wse_status
ca_domain(const wse_cert *ca, char *buf, size_t size)
{
	X509_NAME *subj = X509_get_subject_name(ca->x);
	NAME_CONSTRAINTS *nc = NULL;
	const ASN1_STRING *cn;
	char what[300];
	size_t len;
	int idx, crit = -1, i, n, dns = 0, email = 0;
	wse_status st = WSE_ERR_INTERNAL;

	idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	if (idx < 0 || X509_NAME_get_index_by_NID(subj, NID_commonName,
	    idx) >= 0) {
		st = wse_err(WSE_ERR_NOT_AUTHORIZED,
		    "domain CA must have exactly one common name");
		goto out;
	}
	cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
	if (ia5_copy(cn, buf, size) != WSE_OK || !valid_domain(buf)) {
		st = wse_err(WSE_ERR_NOT_AUTHORIZED,
		    "the issuer's common name is not a domain");
		goto out;
	}
	len = strlen(buf);
	nc = X509_get_ext_d2i(ca->x, NID_name_constraints, &crit, NULL);
	if (nc == NULL) {
		st = wse_err(WSE_ERR_NOT_AUTHORIZED, crit == -2 ?
		    "CA certificate for %s has several nameConstraints "
		    "extensions" : crit == -1 ?
		    "CA certificate for %s has no name constraints" :
		    "CA certificate for %s has malformed name constraints",
		    buf);
		goto out;
	}
	if (crit != 1) {
		st = wse_err(WSE_ERR_NOT_AUTHORIZED, "the name constraints of "
		    "the CA certificate for %s are not critical", buf);
		goto out;
	}
	n = nc->permittedSubtrees != NULL ?
	    sk_GENERAL_SUBTREE_num(nc->permittedSubtrees) : 0;
	for (i = 0; i < n; i++) {
		const GENERAL_NAME *g =
		    sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, i)->base;

		if ((g->type == GEN_DNS || g->type == GEN_EMAIL) &&
		    (size_t)ASN1_STRING_length(g->d.ia5) == len &&
		    memcmp(ASN1_STRING_get0_data(g->d.ia5), buf, len) == 0) {
			if (g->type == GEN_DNS)
				dns++;
			else
				email++;
			continue;
		}
		subtree_text(g, what, sizeof(what));
		st = wse_err(WSE_ERR_NOT_AUTHORIZED, "the name constraints of "
		    "the CA certificate for %s permit %s, which is not one of "
		    "its own names", buf, what);
		goto out;
	}
	if (dns != 1 || email != 1) {
		st = wse_err(WSE_ERR_NOT_AUTHORIZED, "the name constraints of "
		    "the CA certificate for %s must permit DNS:%s and "
		    "email:%s, once each", buf, buf, buf);
		goto out;
	}
	st = WSE_OK;
out:
	NAME_CONSTRAINTS_free(nc);
	ERR_clear_error();
	return st;
}

wse_status
wse_pki_issue_token(const wse_cert *domain_ca, const wse_key *domain_ca_key,
    const wse_key *client_pub, const char *mailbox, int64_t lifetime,
    int64_t now, wse_cert **cert_r)
{
	wse_cert_profile pr;
	char dom[254];
	const char *mdom = NULL;
	int64_t ca_end;
	wse_status st;

	*cert_r = NULL;
	if (domain_ca == NULL || domain_ca_key == NULL || client_pub == NULL)
		return wse_err(WSE_ERR_INVALID, "token: missing argument");
	if (!valid_mailbox(mailbox, &mdom))
		return wse_err(WSE_ERR_INVALID, "token: invalid mailbox");
	if (lifetime <= 0)
		return wse_err(WSE_ERR_INVALID,
		    "token: lifetime must be positive");
	if (now < TOKEN_BACKDATE || now > TIME_MAX)
		return wse_err(WSE_ERR_INVALID, "token: time out of range");
	if ((st = key_check_strength(client_pub->pkey, "token key")) != WSE_OK)
		return st;
	if (X509_check_ca(domain_ca->x) == 0) {
		ERR_clear_error();
		return wse_err(WSE_ERR_NOT_AUTHORIZED,
		    "token: issuer is not a CA certificate");
	}
	if (!wse_cert_matches_key(domain_ca, domain_ca_key))
		return wse_err(WSE_ERR_INVALID,
		    "token: CA key does not match the CA certificate");
	if ((st = ca_domain(domain_ca, dom, sizeof(dom))) != WSE_OK)
		return st;
	if (strcmp(mdom, dom) != 0)
		return wse_err(WSE_ERR_NOT_AUTHORIZED, "token: mailbox %s is "
		    "not in the CA's domain %s", mailbox, dom);
	if ((st = wse_cert_check_time(domain_ca, now)) != WSE_OK)
		return wse_err(st, "token: the domain CA is not valid now");

	memset(&pr, 0, sizeof(pr));
	pr.kind = WSE_CERT_TOKEN;
	pr.name = mailbox;
	pr.not_before = now - TOKEN_BACKDATE;
	pr.not_after = lifetime > TIME_MAX - now ? TIME_MAX : now + lifetime;
	ca_end = wse_cert_not_after(domain_ca);
	if (pr.not_after > ca_end)
		pr.not_after = ca_end;
	if (pr.not_after <= pr.not_before)
		return wse_err(WSE_ERR_CERT_EXPIRED,
		    "token: the domain CA expires too soon");
	return wse_cert_issue(&pr, client_pub, domain_ca, domain_ca_key,
	    cert_r);
}

/* ---- CRLs ---- */

/* Serial from hex (1..64 hex digits, either case). */
static wse_status
serial_parse(const char *hex, ASN1_INTEGER **ai_r)
{
	BIGNUM *bn = NULL;
	size_t i, len;
	wse_status st = WSE_ERR_INTERNAL;

	*ai_r = NULL;
	if (hex == NULL || (len = strlen(hex)) == 0 || len > SERIAL_HEX_MAX)
		return wse_err(WSE_ERR_INVALID,
		    "serial must be 1..%d hex digits", SERIAL_HEX_MAX);
	for (i = 0; i < len; i++) {
		char c = hex[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		    (c >= 'A' && c <= 'F')))
			return wse_err(WSE_ERR_INVALID,
			    "serial \"%.70s\" is not hexadecimal", hex);
	}
	if (BN_hex2bn(&bn, hex) != (int)len ||
	    (*ai_r = BN_to_ASN1_INTEGER(bn, NULL)) == NULL) {
		st = wse_ossl_err(WSE_ERR_INVALID, "cannot parse serial %s", hex);
		goto out;
	}
	st = WSE_OK;
out:
	BN_free(bn);
	return st;
}

/* WSE_OK when hex is a well-formed serial. */
static wse_status
serial_parse_check(const char *hex)
{
	ASN1_INTEGER *ai = NULL;
	wse_status st = serial_parse(hex, &ai);

	ASN1_INTEGER_free(ai);
	return st;
}

/* Normalised form of a hex serial (as wse_cert_serial writes it). */
static wse_status
serial_normalise(const char *hex, char *buf, size_t size)
{
	ASN1_INTEGER *ai = NULL;
	wse_status st;

	if ((st = serial_parse(hex, &ai)) == WSE_OK)
		st = integer_hex(ai, buf, size);
	ASN1_INTEGER_free(ai);
	return st;
}

static wse_status
crl_issue_number(const wse_cert *issuer, const wse_key *issuer_key,
    const char *const *serials_hex, size_t nserials, int64_t this_update,
    int64_t next_update, uint64_t number, wse_crl **crl_r)
{
	X509_CRL *crl = NULL;
	X509_REVOKED *rev = NULL;
	ASN1_TIME *tu = NULL, *nu = NULL;
	ASN1_INTEGER *ai = NULL, *num = NULL;
	X509_EXTENSION *ext = NULL;
	X509V3_CTX ctx;
	wse_crl *c = NULL;
	size_t i;
	wse_status st;

	*crl_r = NULL;
	if (issuer == NULL || issuer_key == NULL ||
	    (serials_hex == NULL && nserials > 0))
		return wse_err(WSE_ERR_INVALID, "crl: missing argument");
	if (!issuer_key->priv || !wse_cert_matches_key(issuer, issuer_key))
		return wse_err(WSE_ERR_INVALID,
		    "crl: the key does not match the issuer certificate");
	if ((st = check_time_value(this_update, "thisUpdate")) != WSE_OK ||
	    (st = check_time_value(next_update, "nextUpdate")) != WSE_OK)
		return st;
	if (next_update <= this_update)
		return wse_err(WSE_ERR_INVALID,
		    "crl: nextUpdate must be later than thisUpdate");
	if ((st = unix_to_asn1(this_update, &tu)) != WSE_OK ||
	    (st = unix_to_asn1(next_update, &nu)) != WSE_OK)
		goto out;
	if ((crl = X509_CRL_new()) == NULL ||
	    X509_CRL_set_version(crl, 1) != 1 ||
	    X509_CRL_set_issuer_name(crl,
	    X509_get_subject_name(issuer->x)) != 1 ||
	    X509_CRL_set1_lastUpdate(crl, tu) != 1 ||
	    X509_CRL_set1_nextUpdate(crl, nu) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "crl: cannot set fields");
		goto out;
	}
	for (i = 0; i < nserials; i++) {
		if ((st = serial_parse(serials_hex[i], &ai)) != WSE_OK)
			goto out;
		if ((rev = X509_REVOKED_new()) == NULL ||
		    X509_REVOKED_set_serialNumber(rev, ai) != 1 ||
		    X509_REVOKED_set_revocationDate(rev, tu) != 1 ||
		    X509_CRL_add0_revoked(crl, rev) != 1) {
			st = wse_ossl_err(WSE_ERR_CRYPTO,
			    "crl: cannot add serial %s", serials_hex[i]);
			goto out;
		}
		rev = NULL;
		ASN1_INTEGER_free(ai);
		ai = NULL;
	}
	X509V3_set_ctx(&ctx, issuer->x, NULL, NULL, crl, 0);
	if ((ext = X509V3_EXT_nconf_nid(NULL, &ctx,
	    NID_authority_key_identifier, "keyid:always")) == NULL ||
	    X509_CRL_add_ext(crl, ext, -1) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO,
		    "crl: cannot add the authority key identifier");
		goto out;
	}
	if ((num = ASN1_INTEGER_new()) == NULL ||
	    ASN1_INTEGER_set_uint64(num, number) != 1 ||
	    X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "crl: cannot add the CRL number");
		goto out;
	}
	if (X509_CRL_sort(crl) != 1 ||
	    X509_CRL_sign(crl, issuer_key->pkey, EVP_sha256()) <= 0) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "crl: cannot sign");
		goto out;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "crl: no memory");
		goto out;
	}
	c->crl = crl;
	crl = NULL;
	*crl_r = c;
	st = WSE_OK;
out:
	X509_EXTENSION_free(ext);
	ASN1_INTEGER_free(num);
	ASN1_INTEGER_free(ai);
	X509_REVOKED_free(rev);
	ASN1_TIME_free(tu);
	ASN1_TIME_free(nu);
	X509_CRL_free(crl);
	ERR_clear_error();
	return st;
}

wse_status
wse_crl_issue(const wse_cert *issuer, const wse_key *issuer_key,
    const char *const *serials_hex, size_t nserials, int64_t this_update,
    int64_t next_update, wse_crl **crl_r)
{
	return crl_issue_number(issuer, issuer_key, serials_hex, nserials,
	    this_update, next_update,
	    this_update > 0 ? (uint64_t)this_update : 0, crl_r);
}

/* Read every CRL of a PEM BIO into the given stack (at least one). */
static wse_status
read_crl_list(BIO *bio, const char *what, STACK_OF(X509_CRL) *sk)
{
	X509_CRL *crl;
	int n = 0;

	for (;;) {
		if ((crl = PEM_read_bio_X509_CRL(bio, NULL, no_passphrase,
		    NULL)) == NULL) {
			unsigned long e = ERR_peek_last_error();

			if (n > 0 && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
				ERR_clear_error();
				return WSE_OK;
			}
			return wse_ossl_err(WSE_ERR_INVALID,
			    "%s: CRL %d is not valid PEM", what, n + 1);
		}
		if (n == BUNDLE_MAX || sk_X509_CRL_push(sk, crl) <= 0) {
			X509_CRL_free(crl);
			return wse_err(n == BUNDLE_MAX ? WSE_ERR_TOO_LARGE :
			    WSE_ERR_NOMEM, "%s: cannot keep CRL %d", what,
			    n + 1);
		}
		n++;
	}
}

wse_status
wse_crl_load(const char *path, wse_crl **crl_r)
{
	wse_buf *b = NULL;
	BIO *bio = NULL;
	X509_CRL *crl = NULL;
	wse_crl *c = NULL;
	wse_status st;

	*crl_r = NULL;
	if ((st = file_bio(path, CRL_FILE_MAX, &b, &bio)) != WSE_OK)
		goto out;
	if ((crl = PEM_read_bio_X509_CRL(bio, NULL, no_passphrase,
	    NULL)) == NULL) {
		st = wse_ossl_err(WSE_ERR_INVALID, "%s: not a PEM CRL", path);
		goto out;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "crl: no memory");
		goto out;
	}
	c->crl = crl;
	crl = NULL;
	*crl_r = c;
	st = WSE_OK;
out:
	X509_CRL_free(crl);
	BIO_free(bio);
	wse_buf_free(&b);
	ERR_clear_error();
	return st;
}

/* PEM of crl written to path (0644) atomically, replacing or not. */
static wse_status
crl_write(const wse_crl *crl, const char *path, int replace)
{
	BIO *bio = NULL;
	char *p = NULL;
	long n;
	wse_status st;

	if (crl == NULL)
		return wse_err(WSE_ERR_INVALID, "no CRL");
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_X509_CRL(bio, crl->crl) != 1 ||
	    (n = BIO_get_mem_data(bio, &p)) <= 0 || p == NULL) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "cannot encode a CRL");
		goto out;
	}
	st = write_file_atomic(path, p, (size_t)n, 0644, replace);
out:
	BIO_free(bio);
	return st;
}

wse_status
wse_crl_save(const wse_crl *crl, const char *path)
{
	return crl_write(crl, path, 1);
}

void
wse_crl_free(wse_crl **crl)
{
	if (crl == NULL || *crl == NULL)
		return;
	X509_CRL_free((*crl)->crl);
	free(*crl);
	*crl = NULL;
}

/* ---- verification ---- */

wse_status
wse_trust_new(wse_trust **trust_r)
{
	wse_trust *t;

	*trust_r = NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate a trust store");
	if ((t->store = X509_STORE_new()) == NULL) {
		free(t);
		return wse_ossl_err(WSE_ERR_NOMEM, "cannot allocate a trust store");
	}
	if ((t->crls = sk_X509_CRL_new_null()) == NULL) {
		X509_STORE_free(t->store);
		free(t);
		return wse_ossl_err(WSE_ERR_NOMEM, "cannot allocate a trust store");
	}
	pthread_mutex_init(&t->lock, NULL);
	t->crl_from = INT64_MIN;
	t->crl_until = INT64_MAX;
	*trust_r = t;
	return WSE_OK;
}

void
wse_trust_free(wse_trust **trust)
{
	if (trust == NULL || *trust == NULL)
		return;
	X509_STORE_free((*trust)->store);
	sk_X509_CRL_pop_free((*trust)->crls, X509_CRL_free);
	pthread_mutex_destroy(&(*trust)->lock);
	free(*trust);
	*trust = NULL;
}

void
wse_trust_skip_crls(wse_trust *trust)
{
	pthread_mutex_lock(&trust->lock);
	trust->skip_crls = 1;
	memset(trust->cache, 0, sizeof(trust->cache));
	pthread_mutex_unlock(&trust->lock);
}

int
wse_trust_skips_crls(const wse_trust *trust)
{
	return trust->skip_crls;
}

wse_status
wse_trust_add_root(wse_trust *trust, const wse_cert *root)
{
	char subj[160];

	if (trust == NULL || root == NULL)
		return wse_err(WSE_ERR_INVALID, "no trust store or root");
	(void)name_text(X509_get_subject_name(root->x), subj, sizeof(subj));
	if (X509_self_signed(root->x, 1) != 1 || X509_check_ca(root->x) != 1) {
		ERR_clear_error();
		return wse_err(WSE_ERR_INVALID,
		    "%s is not a self-signed CA certificate", subj);
	}
	if (X509_STORE_add_cert(trust->store, root->x) != 1)
		return wse_ossl_err(WSE_ERR_CRYPTO, "cannot add root %s", subj);
	pthread_mutex_lock(&trust->lock);
	memset(trust->cache, 0, sizeof(trust->cache));
	pthread_mutex_unlock(&trust->lock);
	return WSE_OK;
}

wse_status
wse_trust_add_crl(wse_trust *trust, const wse_crl *crl)
{
	const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl->crl);
	int64_t from = asn1_to_unix(X509_CRL_get0_lastUpdate(crl->crl),
	    INT64_MAX);
	int64_t until = next != NULL ? asn1_to_unix(next, INT64_MIN) :
	    INT64_MIN;

	wse_status st = WSE_OK;
	int i, replace = -1;

	if (trust == NULL || crl == NULL)
		return wse_err(WSE_ERR_INVALID, "no trust store or CRL");
	/*
	 * Keep one CRL per issuer, the newest: with several, OpenSSL's own
	 * choice among CRLs of one issuer held in an X509_STORE is not the
	 * newest one, and a revocation could go unseen.
	 */
	pthread_mutex_lock(&trust->lock);
	for (i = 0; i < sk_X509_CRL_num(trust->crls); i++) {
		X509_CRL *old = sk_X509_CRL_value(trust->crls, i);

		if (X509_NAME_cmp(X509_CRL_get_issuer(old),
		    X509_CRL_get_issuer(crl->crl)) == 0) {
			replace = i;
			break;
		}
	}
	if (replace >= 0 && asn1_to_unix(X509_CRL_get0_lastUpdate(
	    sk_X509_CRL_value(trust->crls, replace)), INT64_MIN) > from)
		goto done;		/* the one we hold is newer */
	if (X509_CRL_up_ref(crl->crl) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "cannot add a CRL");
		goto done;
	}
	if (replace >= 0) {
		/* sk_set returns the new element: free the old one first. */
		X509_CRL_free(sk_X509_CRL_value(trust->crls, replace));
		(void)sk_X509_CRL_set(trust->crls, replace, crl->crl);
	} else if (sk_X509_CRL_push(trust->crls, crl->crl) <= 0) {
		X509_CRL_free(crl->crl);
		st = wse_ossl_err(WSE_ERR_NOMEM, "cannot add a CRL");
		goto done;
	}
	/* Recompute the window over the CRLs now held. */
	trust->crl_from = INT64_MIN;
	trust->crl_until = INT64_MAX;
	for (i = 0; i < sk_X509_CRL_num(trust->crls); i++) {
		X509_CRL *c = sk_X509_CRL_value(trust->crls, i);
		const ASN1_TIME *nu = X509_CRL_get0_nextUpdate(c);

		from = asn1_to_unix(X509_CRL_get0_lastUpdate(c), INT64_MAX);
		until = nu != NULL ? asn1_to_unix(nu, INT64_MIN) : INT64_MIN;
		if (from > trust->crl_from)
			trust->crl_from = from;
		if (until < trust->crl_until)
			trust->crl_until = until;
	}
	memset(trust->cache, 0, sizeof(trust->cache));
done:
	pthread_mutex_unlock(&trust->lock);
	return st;
}

wse_status
wse_trust_load_roots(wse_trust *trust, const char *path)
{
	wse_cert **v = NULL;
	size_t n = 0, i;
	wse_status st;

	if (trust == NULL)
		return wse_err(WSE_ERR_INVALID, "no trust store");
	if ((st = wse_cert_load_list(path, &v, &n)) != WSE_OK)
		return st;
	for (i = 0; i < n && st == WSE_OK; i++)
		st = wse_trust_add_root(trust, v[i]);
	wse_cert_list_free(&v, n);
	if (st != WSE_OK)
		wse_err(st, "%s: certificate %zu", path, i);
	return st;
}

wse_status
wse_trust_load_crls(wse_trust *trust, const char *path)
{
	STACK_OF(X509_CRL) *sk = NULL;
	wse_buf *b = NULL;
	BIO *bio = NULL;
	int i;
	wse_status st;

	if (trust == NULL)
		return wse_err(WSE_ERR_INVALID, "no trust store");
	if ((sk = sk_X509_CRL_new_null()) == NULL)
		return wse_ossl_err(WSE_ERR_NOMEM, "cannot allocate a list");
	if ((st = file_bio(path, CRL_FILE_MAX, &b, &bio)) != WSE_OK ||
	    (st = read_crl_list(bio, path, sk)) != WSE_OK)
		goto out;
	for (i = 0; i < sk_X509_CRL_num(sk); i++) {
		wse_crl one = { .crl = sk_X509_CRL_value(sk, i) };

		if ((st = wse_trust_add_crl(trust, &one)) != WSE_OK) {
			wse_err(st, "%s: cannot add CRL %d", path, i + 1);
			goto out;
		}
	}
	st = WSE_OK;
out:
	sk_X509_CRL_pop_free(sk, X509_CRL_free);
	BIO_free(bio);
	wse_buf_free(&b);
	ERR_clear_error();
	return st;
}

static wse_status
verify_status(int err)
{
	switch (err) {
	case X509_V_ERR_CERT_REVOKED:
		return WSE_ERR_REVOKED;
	/* Cannot tell whether something is revoked: fail closed, but as a
	 * temporary failure (a fresh CRL fixes it). */
	case X509_V_ERR_UNABLE_TO_GET_CRL:
	case X509_V_ERR_CRL_HAS_EXPIRED:
	case X509_V_ERR_CRL_NOT_YET_VALID:
	case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
	case X509_V_ERR_CRL_SIGNATURE_FAILURE:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
	case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
	case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
	case X509_V_ERR_CRL_PATH_VALIDATION_ERROR:
		return WSE_ERR_TEMPFAIL;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return WSE_ERR_CERT_EXPIRED;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return WSE_ERR_CERT_NOT_YET_VALID;
	default:
		return WSE_ERR_UNTRUSTED;
	}
}

/*
 * What the verify callback saw: the first error that only means "cannot
 * decide now" (a CRL missing, stale, or not signed by its issuer).  The
 * callback lets OpenSSL go on past such an error, so that a permanent
 * verdict found later (expired, revoked -- also by a stale CRL --,
 * untrusted) takes precedence; a call that recorded one never returns
 * WSE_OK.
 *
 * Going on past a CRL whose signature (or issuer) does not verify, OpenSSL
 * still looks the certificate up in that CRL: such a CRL is remembered,
 * and a revocation found in it is not a verdict (anyone could have
 * written it); the "cannot decide" recorded for it stands.
 */
#define VS_FORGED_MAX	8

struct verify_state {
	int err;
	int depth;
	char subject[200];
	const X509_CRL *forged[VS_FORGED_MAX];
	int nforged;
};

/* err says that the current CRL is not known to come from its issuer. */
static int
crl_unauthenticated(int err)
{
	return err == X509_V_ERR_CRL_SIGNATURE_FAILURE ||
	    err == X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE ||
	    err == X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER ||
	    err == X509_V_ERR_CRL_PATH_VALIDATION_ERROR;
}

static int
verify_cb(int ok, X509_STORE_CTX *ctx)
{
	struct verify_state *vs;
	const X509_CRL *crl;
	X509 *cur;
	int err, i;

	if (ok)
		return 1;
	err = X509_STORE_CTX_get_error(ctx);
	if ((vs = X509_STORE_CTX_get_app_data(ctx)) == NULL)
		return 0;
	crl = X509_STORE_CTX_get0_current_crl(ctx);
	if (crl_unauthenticated(err)) {
		/* with no room left, fail now rather than forget it */
		if (crl == NULL || vs->nforged == VS_FORGED_MAX)
			return 0;
		vs->forged[vs->nforged++] = crl;
	}
	if (err == X509_V_ERR_CERT_REVOKED && crl != NULL)
		for (i = 0; i < vs->nforged; i++)
			if (vs->forged[i] == crl)
				return 1;
	if (verify_status(err) != WSE_ERR_TEMPFAIL)
		return 0;
	if (vs->err == X509_V_OK) {
		vs->err = err;
		vs->depth = X509_STORE_CTX_get_error_depth(ctx);
		if ((cur = X509_STORE_CTX_get_current_cert(ctx)) != NULL)
			(void)name_text(X509_get_subject_name(cur),
			    vs->subject, sizeof(vs->subject));
	}
	return 1;
}

/* Leaf checks beyond OpenSSL's purpose check. */
static wse_status
check_leaf(X509 *leaf, wse_purpose purpose, const char *subj)
{
	GENERAL_NAMES *gens = NULL;
	int dns, email, other;
	wse_status st;

	if (X509_check_ca(leaf) != 0)
		return wse_err(WSE_ERR_UNTRUSTED,
		    "%s: a CA certificate cannot be used as %s", subj,
		    purpose == WSE_PURPOSE_SERVICE ? "a service certificate" :
		    "a token");
	if ((st = get_sans(leaf, &gens)) != WSE_OK)
		return wse_err(WSE_ERR_UNTRUSTED, "%s: bad subjectAltName",
		    subj);
	count_sans(gens, &dns, &email, &other);
	GENERAL_NAMES_free(gens);
	if (purpose == WSE_PURPOSE_SERVICE) {
		if (dns == 0 || email != 0 || other != 0)
			return wse_err(WSE_ERR_UNTRUSTED, "%s: a service "
			    "certificate names DNS names only", subj);
		/* servers are also TLS clients (server to server) */
		if (X509_check_purpose(leaf, X509_PURPOSE_SSL_CLIENT, 0) != 1) {
			ERR_clear_error();
			return wse_err(WSE_ERR_UNTRUSTED, "%s: a service "
			    "certificate needs EKU clientAuth", subj);
		}
	} else {
		if (email != 1 || dns != 0 || other != 0)
			return wse_err(WSE_ERR_UNTRUSTED, "%s: a token names "
			    "exactly one mailbox and nothing else", subj);
	}
	return WSE_OK;
}

static wse_status
vcache_key(const wse_cert *leaf, wse_cert *const *chain, size_t n,
    wse_purpose purpose, uint8_t key[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned dl;
	uint8_t p = (uint8_t)purpose;
	size_t i;
	int ok;

	ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(md, &p, 1) == 1 &&
	    X509_digest(leaf->x, EVP_sha256(), d, &dl) == 1 &&
	    EVP_DigestUpdate(md, d, dl) == 1;
	for (i = 0; ok && i < n; i++)
		ok = X509_digest(chain[i]->x, EVP_sha256(), d, &dl) == 1 &&
		    EVP_DigestUpdate(md, d, dl) == 1;
	ok = ok && EVP_DigestFinal_ex(md, key, NULL) == 1;
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return ok ? WSE_OK : WSE_ERR_CRYPTO;
}

static int
vcache_hit(wse_trust *t, const uint8_t key[32], int64_t now)
{
	int hit = 0;
	size_t i;

	pthread_mutex_lock(&t->lock);
	for (i = 0; i < VCACHE_N && !hit; i++)
		hit = t->cache[i].used && now >= t->cache[i].from &&
		    now <= t->cache[i].until &&
		    memcmp(t->cache[i].key, key, 32) == 0;
	pthread_mutex_unlock(&t->lock);
	return hit;
}

/* Remember a verified chain (path = the chain OpenSSL built, root
 * included) for the interval over which the verdict cannot change. */
static void
vcache_add(wse_trust *t, const uint8_t key[32], STACK_OF(X509) *path,
    int64_t now)
{
	int64_t from = now - VCACHE_TTL, until = now + VCACHE_TTL, v;
	struct vcache_entry *e;
	int i;

	for (i = 0; path != NULL && i < sk_X509_num(path); i++) {
		X509 *x = sk_X509_value(path, i);

		if ((v = asn1_to_unix(X509_get0_notBefore(x), INT64_MAX)) >
		    from)
			from = v;
		if ((v = asn1_to_unix(X509_get0_notAfter(x), INT64_MIN)) <
		    until)
			until = v;
	}
	pthread_mutex_lock(&t->lock);
	if (t->crl_from > from)
		from = t->crl_from;
	if (t->crl_until < until)
		until = t->crl_until;
	if (path != NULL && from <= now && now <= until) {
		e = &t->cache[t->next++ % VCACHE_N];
		memcpy(e->key, key, 32);
		e->from = from;
		e->until = until;
		e->used = 1;
	}
	pthread_mutex_unlock(&t->lock);
}

wse_status
wse_trust_verify(wse_trust *trust, const wse_cert *leaf,
    wse_cert *const *chain, size_t n, int64_t now, wse_purpose purpose)
{
	X509_STORE_CTX *ctx = NULL;
	STACK_OF(X509) *untrusted = NULL;
	X509_VERIFY_PARAM *param;
	X509 *cur;
	struct verify_state vs;
	char subj[200], leafsubj[200];
	uint8_t key[32];
	size_t i;
	int rc, err;
	wse_status st = WSE_ERR_INTERNAL;

	ERR_clear_error();
	if (trust == NULL || leaf == NULL || (chain == NULL && n > 0))
		return wse_err(WSE_ERR_INVALID, "verify: missing argument");
	if (n > CHAIN_MAX)
		return wse_err(WSE_ERR_TOO_LARGE,
		    "verify: more than %d chain certificates", CHAIN_MAX);
	if (now < 0 || now > TIME_MAX)
		return wse_err(WSE_ERR_INVALID, "verify: time out of range");
	if (purpose != WSE_PURPOSE_SERVICE && purpose != WSE_PURPOSE_TOKEN &&
	    purpose != WSE_PURPOSE_ANY)
		return wse_err(WSE_ERR_INVALID, "verify: unknown purpose");
	(void)name_text(X509_get_subject_name(leaf->x), leafsubj,
	    sizeof(leafsubj));
	memset(&vs, 0, sizeof(vs));
	vs.err = X509_V_OK;

	if ((untrusted = sk_X509_new_null()) == NULL) {
		st = wse_ossl_err(WSE_ERR_NOMEM, "verify: no memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (chain[i] == NULL) {
			st = wse_err(WSE_ERR_INVALID, "verify: empty chain slot");
			goto out;
		}
		if (sk_X509_push(untrusted, chain[i]->x) <= 0) {
			st = wse_ossl_err(WSE_ERR_NOMEM, "verify: no memory");
			goto out;
		}
	}
	if ((ctx = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(ctx, trust->store, leaf->x, untrusted) != 1) {
		st = wse_ossl_err(WSE_ERR_NOMEM, "verify: cannot set up");
		goto out;
	}
	if (vcache_key(leaf, chain, n, purpose, key) == WSE_OK &&
	    vcache_hit(trust, key, now)) {
		st = WSE_OK;
		goto out;
	}
	X509_STORE_CTX_set0_crls(ctx, trust->crls);
	X509_STORE_CTX_set_verify_cb(ctx, verify_cb);
	if (X509_STORE_CTX_set_app_data(ctx, &vs) != 1) {
		st = wse_ossl_err(WSE_ERR_NOMEM, "verify: cannot set up");
		goto out;
	}
	param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_time(param, (time_t)now);
	X509_VERIFY_PARAM_set_depth(param, 2);
	if (X509_VERIFY_PARAM_set_flags(param, (trust->skip_crls ? 0 :
	    X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL) |
	    X509_V_FLAG_X509_STRICT) != 1 ||
	    (purpose == WSE_PURPOSE_SERVICE &&
	    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER) != 1) ||
	    (purpose == WSE_PURPOSE_TOKEN &&
	    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1)) {
		st = wse_ossl_err(WSE_ERR_INTERNAL, "verify: cannot set parameters");
		goto out;
	}
	rc = X509_verify_cert(ctx);
	if (rc != 1) {
		err = X509_STORE_CTX_get_error(ctx);
		if (err == X509_V_OK) {
			st = wse_ossl_err(WSE_ERR_UNTRUSTED,
			    "verify: %s: verification failed", leafsubj);
			goto out;
		}
		cur = X509_STORE_CTX_get_current_cert(ctx);
		if (cur != NULL)
			(void)name_text(X509_get_subject_name(cur), subj,
			    sizeof(subj));
		else
			(void)snprintf(subj, sizeof(subj), "%s", leafsubj);
		ERR_clear_error();
		st = wse_err(verify_status(err),
		    "certificate %s (depth %d): %s", subj,
		    X509_STORE_CTX_get_error_depth(ctx),
		    X509_verify_cert_error_string(err));
		goto out;
	}
	if (purpose != WSE_PURPOSE_ANY &&
	    (st = check_leaf(leaf->x, purpose, leafsubj)) != WSE_OK)
		goto out;
	if (vs.err != X509_V_OK) {
		st = wse_err(WSE_ERR_TEMPFAIL, "certificate %s (depth %d): %s",
		    vs.subject, vs.depth, X509_verify_cert_error_string(vs.err));
		goto out;
	}
	vcache_add(trust, key, X509_STORE_CTX_get0_chain(ctx), now);
	st = WSE_OK;
out:
	X509_STORE_CTX_free(ctx);
	sk_X509_free(untrusted);
	ERR_clear_error();
	return st;
}

/* ---- CA directories ---- */

struct ca_paths {
	char dir[PATHBUF];
	char key[PATHBUF];
	char cert[PATHBUF];
	char crl[PATHBUF];
	char revoked[PATHBUF];
};

static wse_status
path_join(char *out, size_t size, const char *a, const char *b)
{
	int n = snprintf(out, size, "%s/%s", a, b);

	if (n < 0 || (size_t)n >= size)
		return wse_err(WSE_ERR_INVALID, "path too long: %s/%s", a, b);
	return WSE_OK;
}

/* Paths of CA "root" or DOMAIN under dir. */
static wse_status
ca_paths_of(const char *dir, const char *ca, struct ca_paths *p)
{
	int root;
	wse_status st;

	if (dir == NULL || *dir == '\0' || ca == NULL)
		return wse_err(WSE_ERR_INVALID, "no PKI directory or CA name");
	root = strcmp(ca, "root") == 0;
	if (!root && !valid_domain(ca))
		return wse_err(WSE_ERR_INVALID, "CA \"%.260s\" is neither "
		    "\"root\" nor a valid domain", ca);
	if ((st = path_join(p->dir, sizeof(p->dir), dir, ca)) != WSE_OK ||
	    (st = path_join(p->key, sizeof(p->key), p->dir,
	    root ? "key.pem" : "ca-key.pem")) != WSE_OK ||
	    (st = path_join(p->cert, sizeof(p->cert), p->dir,
	    root ? "cert.pem" : "ca.pem")) != WSE_OK ||
	    (st = path_join(p->crl, sizeof(p->crl), p->dir, "crl.pem")) !=
	    WSE_OK ||
	    (st = path_join(p->revoked, sizeof(p->revoked), p->dir,
	    "revoked")) != WSE_OK)
		return st;
	return WSE_OK;
}

static wse_status
make_dir(const char *path)
{
	struct stat sb;

	if (mkdir(path, 0755) == 0)
		return WSE_OK;
	if (errno == EEXIST && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
		return WSE_OK;
	return wse_err(WSE_ERR_IO, "cannot create directory %s: %s", path,
	    strerror(errno == EEXIST ? ENOTDIR : errno));
}

/* WSE_ERR_EXISTS when one of the paths exists, WSE_ERR_IO when it cannot
 * be told (a directory on the way that is a file, say). */
static wse_status
refuse_existing(const char *const *paths, size_t n, const char *what)
{
	struct stat sb;
	size_t i;

	for (i = 0; i < n; i++) {
		if (lstat(paths[i], &sb) == 0)
			return wse_err(WSE_ERR_EXISTS, "%s already exists; "
			    "refusing to overwrite %s", paths[i], what);
		if (errno != ENOENT)
			return wse_err(WSE_ERR_IO, "cannot create %s: %s",
			    paths[i], strerror(errno));
	}
	return WSE_OK;
}

static wse_status
check_days(int *days, int dflt)
{
	if (*days <= 0)
		*days = dflt;
	if (*days > DAYS_MAX)
		return wse_err(WSE_ERR_INVALID, "at most %d days", DAYS_MAX);
	return WSE_OK;
}

/* Load a CA's key and certificate and check that they belong together. */
static wse_status
ca_load(const struct ca_paths *p, wse_key **key_r, wse_cert **cert_r)
{
	wse_status st;

	if ((st = wse_cert_load(p->cert, cert_r)) != WSE_OK ||
	    (st = wse_key_load(p->key, key_r)) != WSE_OK)
		goto fail;
	if (!wse_cert_matches_key(*cert_r, *key_r)) {
		st = wse_err(WSE_ERR_INVALID, "%s does not match %s", p->key,
		    p->cert);
		goto fail;
	}
	return WSE_OK;
fail:
	wse_cert_free(cert_r);
	wse_key_free(key_r);
	return st;
}

/* Files created so far by one CA-directory operation, removed again if
 * the operation fails half-way. */
struct created {
	const char *path[4];
	size_t n;
};

static void
created_rollback(struct created *c)
{
	while (c->n > 0)
		(void)unlink(c->path[--c->n]);
}

/* A list of normalised hex serials. */
struct serials {
	char **v;
	size_t n, cap;
};

static void
serials_free(struct serials *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* Add hex (normalised) unless present; *added_r says whether it was. */
static wse_status
serials_add(struct serials *s, const char *hex, int *added_r)
{
	char norm[SERIAL_HEX_MAX + 4];
	size_t i;
	wse_status st;

	if (added_r != NULL)
		*added_r = 0;
	if ((st = serial_normalise(hex, norm, sizeof(norm))) != WSE_OK)
		return st;
	for (i = 0; i < s->n; i++)
		if (strcmp(s->v[i], norm) == 0)
			return WSE_OK;
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 16;
		char **nv;

		if (ncap > SIZE_MAX / sizeof(*nv) ||
		    (nv = realloc(s->v, ncap * sizeof(*nv))) == NULL)
			return wse_err(WSE_ERR_NOMEM, "no memory for serials");
		s->v = nv;
		s->cap = ncap;
	}
	if ((s->v[s->n] = strdup(norm)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "no memory for serials");
	s->n++;
	if (added_r != NULL)
		*added_r = 1;
	return WSE_OK;
}

/* Read a "revoked" file (missing file: empty list). */
static wse_status
serials_read(const char *path, struct serials *s)
{
	wse_buf *b = NULL;
	char line[SERIAL_HEX_MAX + 2];
	const char *p, *end, *nl;
	size_t lineno = 0, len;
	struct stat sb;
	wse_status st = WSE_OK;

	if (lstat(path, &sb) == -1 && errno == ENOENT)
		return WSE_OK;
	if ((st = wse_buf_read_file(path, REVOKED_MAX, &b)) != WSE_OK)
		return st;
	p = wse_buf_str(b);
	end = p + wse_buf_len(b);
	while (p < end) {
		lineno++;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		len = (size_t)(nl - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len > SERIAL_HEX_MAX) {
			st = wse_err(WSE_ERR_INVALID, "%s:%zu: line too long",
			    path, lineno);
			goto out;
		}
		memcpy(line, p, len);
		line[len] = '\0';
		p = nl + 1;
		if (len == 0)
			continue;
		if ((st = serials_add(s, line, NULL)) != WSE_OK) {
			wse_err(st, "%s:%zu: bad serial", path, lineno);
			goto out;
		}
	}
out:
	wse_buf_free(&b);
	return st;
}

static wse_status
serials_write(const char *path, const struct serials *s)
{
	wse_buf *b = NULL;
	size_t i;
	wse_status st = WSE_OK;

	if ((b = wse_buf_new(REVOKED_MAX)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate a buffer");
	for (i = 0; i < s->n && st == WSE_OK; i++)
		st = wse_buf_printf(b, "%s\n", s->v[i]);
	if (st == WSE_OK)
		st = write_file_atomic(path, wse_buf_data(b), wse_buf_len(b),
		    0644, 1);
	wse_buf_free(&b);
	return st;
}

/* The CRL number of the CRL at path, 0 when there is none. */
static uint64_t
crl_number_of(const char *path)
{
	wse_crl *crl = NULL;
	ASN1_INTEGER *num = NULL;
	uint64_t v = 0;

	/* A damaged CRL is replaced by the reissue; its message stays on
	 * the stack only as context. */
	if (!path_exists(path) || wse_crl_load(path, &crl) != WSE_OK)
		return 0;
	num = X509_CRL_get_ext_d2i(crl->crl, NID_crl_number, NULL, NULL);
	if (num == NULL || ASN1_INTEGER_get_uint64(&v, num) != 1)
		v = 0;
	ASN1_INTEGER_free(num);
	wse_crl_free(&crl);
	ERR_clear_error();
	return v;
}

/* A CRL of the CA for the serials, valid from now - BACKDATE for days
 * (at most to the CA's notAfter), numbered after the one at crl_path. */
static wse_status
ca_make_crl(const wse_cert *cert, const wse_key *key, const struct serials *s,
    int days, int64_t now, const char *crl_path, wse_crl **crl_r)
{
	int64_t tu = now - BACKDATE, nu = now + (int64_t)days * DAY;
	uint64_t num = crl_number_of(crl_path), base;

	if (now < BACKDATE || now > TIME_MAX - (int64_t)DAYS_MAX * DAY)
		return wse_err(WSE_ERR_INVALID, "time out of range");
	if (nu > wse_cert_not_after(cert))
		nu = wse_cert_not_after(cert);
	if (nu <= tu)
		return wse_err(WSE_ERR_CERT_EXPIRED,
		    "the CA certificate has expired");
	base = (uint64_t)now;
	num = num >= base ? num + 1 : base;
	return crl_issue_number(cert, key, (const char *const *)s->v, s->n,
	    tu, nu, num, crl_r);
}

/* Validity of a new certificate under an issuer ending at issuer_end. */
static wse_status
ca_validity(int days, int64_t now, int64_t issuer_end, int64_t *nb_r,
    int64_t *na_r)
{
	if (now < BACKDATE || now > TIME_MAX - (int64_t)DAYS_MAX * DAY)
		return wse_err(WSE_ERR_INVALID, "time out of range");
	*nb_r = now - BACKDATE;
	*na_r = now + (int64_t)days * DAY;
	if (*na_r > issuer_end)
		*na_r = issuer_end;
	if (*na_r <= now)
		return wse_err(WSE_ERR_CERT_EXPIRED,
		    "the issuing CA certificate has expired");
	return WSE_OK;
}

/* Write the new CA's key, certificate, CRL and empty revoked list,
 * all or nothing. */
static wse_status
ca_write_new(const struct ca_paths *p, const wse_key *key,
    const wse_cert *cert, const wse_crl *crl)
{
	struct created c = { { NULL }, 0 };
	wse_status st;

	if ((st = wse_key_save(key, p->key)) != WSE_OK)
		goto out;
	c.path[c.n++] = p->key;
	if ((st = cert_write(cert, p->cert, 0)) != WSE_OK)
		goto out;
	c.path[c.n++] = p->cert;
	if ((st = crl_write(crl, p->crl, 0)) != WSE_OK)
		goto out;
	c.path[c.n++] = p->crl;
	if ((st = write_file_atomic(p->revoked, "", 0, 0644, 0)) != WSE_OK)
		goto out;
	c.n = 0;
out:
	created_rollback(&c);
	return st;
}

wse_status
wse_ca_root_init(const char *dir, const char *cn, int days, int64_t now)
{
	struct ca_paths p;
	struct serials none = { NULL, 0, 0 };
	wse_cert_profile pr;
	wse_key *key = NULL;
	wse_cert *cert = NULL;
	wse_crl *crl = NULL;
	const char *files[4];
	wse_status st;

	if ((st = check_days(&days, ROOT_DAYS)) != WSE_OK ||
	    (st = ca_paths_of(dir, "root", &p)) != WSE_OK)
		return st;
	files[0] = p.key;
	files[1] = p.cert;
	files[2] = p.crl;
	files[3] = p.revoked;
	if ((st = refuse_existing(files, 4, "a root CA")) != WSE_OK)
		return st;
	memset(&pr, 0, sizeof(pr));
	pr.kind = WSE_CERT_ROOT;
	pr.name = cn != NULL ? cn : ROOT_CN_DEFAULT;
	if ((st = ca_validity(days, now, TIME_MAX, &pr.not_before,
	    &pr.not_after)) != WSE_OK)
		return st;
	if ((st = make_dir(dir)) != WSE_OK || (st = make_dir(p.dir)) != WSE_OK)
		return st;
	if ((st = wse_key_generate(&key)) != WSE_OK ||
	    (st = wse_cert_issue(&pr, key, NULL, key, &cert)) != WSE_OK ||
	    (st = ca_make_crl(cert, key, &none, CRL_DAYS, now, p.crl,
	    &crl)) != WSE_OK ||
	    (st = ca_write_new(&p, key, cert, crl)) != WSE_OK)
		goto out;
out:
	wse_crl_free(&crl);
	wse_cert_free(&cert);
	wse_key_free(&key);
	return st;
}

wse_status
wse_ca_domain_issue(const char *dir, const char *domain, int days,
    int64_t now)
{
	struct ca_paths rootp, p;
	struct serials none = { NULL, 0, 0 };
	wse_cert_profile pr;
	wse_key *root_key = NULL, *key = NULL;
	wse_cert *root = NULL, *cert = NULL;
	wse_crl *crl = NULL;
	const char *files[4];
	wse_status st;

	if (domain == NULL || strcmp(domain, "root") == 0 ||
	    !valid_domain(domain))
		return wse_err(WSE_ERR_INVALID, "invalid domain name \"%.260s\"",
		    domain ? domain : "(null)");
	if ((st = check_days(&days, DOMAIN_DAYS)) != WSE_OK ||
	    (st = ca_paths_of(dir, "root", &rootp)) != WSE_OK ||
	    (st = ca_paths_of(dir, domain, &p)) != WSE_OK)
		return st;
	files[0] = p.key;
	files[1] = p.cert;
	files[2] = p.crl;
	files[3] = p.revoked;
	if ((st = refuse_existing(files, 4, "a domain CA")) != WSE_OK)
		return st;
	if ((st = ca_load(&rootp, &root_key, &root)) != WSE_OK)
		goto out;
	memset(&pr, 0, sizeof(pr));
	pr.kind = WSE_CERT_DOMAIN_CA;
	pr.name = domain;
	if ((st = ca_validity(days, now, wse_cert_not_after(root),
	    &pr.not_before, &pr.not_after)) != WSE_OK ||
	    (st = make_dir(p.dir)) != WSE_OK ||
	    (st = wse_key_generate(&key)) != WSE_OK ||
	    (st = wse_cert_issue(&pr, key, root, root_key, &cert)) != WSE_OK ||
	    (st = ca_make_crl(cert, key, &none, CRL_DAYS, now, p.crl,
	    &crl)) != WSE_OK ||
	    (st = ca_write_new(&p, key, cert, crl)) != WSE_OK)
		goto out;
out:
	wse_crl_free(&crl);
	wse_cert_free(&cert);
	wse_cert_free(&root);
	wse_key_free(&key);
	wse_key_free(&root_key);
	return st;
}

wse_status
wse_ca_service_issue(const char *dir, const char *domain,
    const char *const *hosts, size_t nhosts, int days, int64_t now)
{
	struct ca_paths p;
	struct created c = { { NULL }, 0 };
	char keyp[PATHBUF], certp[PATHBUF], chainp[PATHBUF], cadom[254];
	const char *files[3];
	wse_cert_profile pr;
	wse_key *ca_key = NULL, *key = NULL;
	wse_cert *ca = NULL, *cert = NULL;
	wse_buf *chain = NULL;
	size_t i;
	wse_status st;

	if (domain == NULL || strcmp(domain, "root") == 0 ||
	    !valid_domain(domain))
		return wse_err(WSE_ERR_INVALID, "invalid domain name \"%.260s\"",
		    domain ? domain : "(null)");
	if (nhosts > 0 && hosts == NULL)
		return wse_err(WSE_ERR_INVALID, "no host list");
	for (i = 0; i < nhosts; i++) {
		if (!valid_domain(hosts[i]))
			return wse_err(WSE_ERR_INVALID,
			    "invalid host name \"%.260s\"",
			    hosts[i] ? hosts[i] : "(null)");
		if (!host_in_domain(hosts[i], domain))
			return wse_err(WSE_ERR_INVALID, "host %s is outside "
			    "the name constraints of %s's CA (%s, its "
			    "subdomains)", hosts[i], domain, domain);
	}
	if ((st = check_days(&days, SERVICE_DAYS)) != WSE_OK ||
	    (st = ca_paths_of(dir, domain, &p)) != WSE_OK ||
	    (st = path_join(keyp, sizeof(keyp), p.dir, "service-key.pem")) !=
	    WSE_OK ||
	    (st = path_join(certp, sizeof(certp), p.dir, "service.pem")) !=
	    WSE_OK ||
	    (st = path_join(chainp, sizeof(chainp), p.dir, "chain.pem")) !=
	    WSE_OK)
		return st;
	files[0] = keyp;
	files[1] = certp;
	files[2] = chainp;
	if ((st = refuse_existing(files, 3, "a service certificate")) !=
	    WSE_OK)
		return st;
	if ((st = ca_load(&p, &ca_key, &ca)) != WSE_OK)
		goto out;
	if (X509_check_ca(ca->x) == 0) {
		ERR_clear_error();
		st = wse_err(WSE_ERR_NOT_AUTHORIZED, "%s is not a CA "
		    "certificate", p.cert);
		goto out;
	}
	if ((st = ca_domain(ca, cadom, sizeof(cadom))) != WSE_OK) {
		wse_err(st, "%s cannot issue for %s", p.cert, domain);
		goto out;
	}
	if (strcmp(cadom, domain) != 0) {
		st = wse_err(WSE_ERR_NOT_AUTHORIZED, "%s is the CA certificate "
		    "of %s, not of %s", p.cert, cadom, domain);
		goto out;
	}
	memset(&pr, 0, sizeof(pr));
	pr.kind = WSE_CERT_SERVICE;
	pr.name = domain;
	pr.hosts = hosts;
	pr.nhosts = nhosts;
	if ((chain = wse_buf_new(2 * PEM_FILE_MAX)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate a buffer");
		goto out;
	}
	if ((st = ca_validity(days, now, wse_cert_not_after(ca),
	    &pr.not_before, &pr.not_after)) != WSE_OK ||
	    (st = wse_key_generate(&key)) != WSE_OK ||
	    (st = wse_cert_issue(&pr, key, ca, ca_key, &cert)) != WSE_OK ||
	    (st = wse_cert_to_pem(cert, chain)) != WSE_OK ||
	    (st = wse_cert_to_pem(ca, chain)) != WSE_OK)
		goto out;
	if ((st = wse_key_save(key, keyp)) != WSE_OK)
		goto out;
	c.path[c.n++] = keyp;
	if ((st = cert_write(cert, certp, 0)) != WSE_OK)
		goto out;
	c.path[c.n++] = certp;
	if ((st = write_file_atomic(chainp, wse_buf_data(chain),
	    wse_buf_len(chain), 0644, 0)) != WSE_OK)
		goto out;
	c.n = 0;
out:
	created_rollback(&c);
	wse_buf_free(&chain);
	wse_cert_free(&cert);
	wse_cert_free(&ca);
	wse_key_free(&key);
	wse_key_free(&ca_key);
	return st;
}

/* Reissue the CRL of the CA at p for s, then replace the revoked list
 * (when write_list) and the CRL, each atomically. */
static wse_status
ca_reissue(const struct ca_paths *p, const struct serials *s, int write_list,
    int crl_days, int64_t now)
{
	wse_key *key = NULL;
	wse_cert *cert = NULL;
	wse_crl *crl = NULL;
	wse_status st;

	if ((st = check_days(&crl_days, CRL_DAYS)) != WSE_OK ||
	    (st = ca_load(p, &key, &cert)) != WSE_OK ||
	    (st = ca_make_crl(cert, key, s, crl_days, now, p->crl,
	    &crl)) != WSE_OK)
		goto out;
	if (write_list && (st = serials_write(p->revoked, s)) != WSE_OK)
		goto out;
	st = crl_write(crl, p->crl, 1);
out:
	wse_crl_free(&crl);
	wse_cert_free(&cert);
	wse_key_free(&key);
	return st;
}

/* Exclusive lock on a CA's directory (flock on the directory itself), so
 * that two read-modify-write runs on its revoked list cannot interleave. */
static wse_status
ca_lock(const char *cadir, int *fd_r)
{
	int fd;

	*fd_r = -1;
	if ((fd = open(cadir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return wse_err(WSE_ERR_IO, "cannot open %s: %s", cadir,
		    strerror(errno));
	while (flock(fd, LOCK_EX) == -1) {
		if (errno == EINTR)
			continue;
		close(fd);
		return wse_err(WSE_ERR_IO, "cannot lock %s: %s", cadir,
		    strerror(errno));
	}
	*fd_r = fd;
	return WSE_OK;
}

static void
ca_unlock(int *fd)
{
	if (*fd != -1)
		close(*fd);	/* releases the lock */
	*fd = -1;
}

wse_status
wse_ca_revoke(const char *dir, const char *ca, const char *serial,
    int crl_days, int64_t now)
{
	struct ca_paths p;
	struct serials s = { NULL, 0, 0 };
	int added = 0, lock = -1;
	wse_status st;

	if ((st = ca_paths_of(dir, ca, &p)) != WSE_OK ||
	    (st = serial_parse_check(serial)) != WSE_OK ||
	    (st = ca_lock(p.dir, &lock)) != WSE_OK ||
	    (st = serials_read(p.revoked, &s)) != WSE_OK ||
	    (st = serials_add(&s, serial, &added)) != WSE_OK)
		goto out;
	st = ca_reissue(&p, &s, added, crl_days, now);
out:
	ca_unlock(&lock);
	serials_free(&s);
	return st;
}

wse_status
wse_ca_crl(const char *dir, const char *ca, int crl_days, int64_t now)
{
	struct ca_paths p;
	struct serials s = { NULL, 0, 0 };
	int lock = -1;
	wse_status st;

	if ((st = ca_paths_of(dir, ca, &p)) != WSE_OK ||
	    (st = ca_lock(p.dir, &lock)) != WSE_OK ||
	    (st = serials_read(p.revoked, &s)) != WSE_OK)
		goto out;
	st = ca_reissue(&p, &s, 0, crl_days, now);
out:
	ca_unlock(&lock);
	serials_free(&s);
	return st;
}
