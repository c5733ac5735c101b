/*
 * crypto.c - symmetric primitives over OpenSSL 3 (see crypto.h).
 *
 * Every OpenSSL failure is translated here into a wse_status with a
 * message, and OpenSSL's own error queue is emptied, so that nothing
 * outside this file and pki.c ever sees it.
 */
#include "crypto.h"
#include "ossl-private.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define GCM_NONCE_LEN 12
#define GCM_TAG_LEN 16
/* Largest chunk handed to an OpenSSL call that takes an int length. */
#define CHUNK (1u << 20)

/* Declared in ossl-private.h. */
wse_status
wse_ossl_err(wse_status st, const char *fmt, ...)
{
	char msg[WSE_ERR_MSGLEN], reason[160];
	unsigned long e, first = 0;
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	while ((e = ERR_get_error()) != 0)
		if (first == 0)
			first = e;
	if (first == 0)
		return wse_err(st, "%s", msg);
	ERR_error_string_n(first, reason, sizeof(reason));
	return wse_err(st, "%s: %s", msg, reason);
}

wse_status
wse_random(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		size_t n = len > CHUNK ? CHUNK : len;

		if (RAND_bytes(p, (int)n) != 1)
			return wse_ossl_err(WSE_ERR_CRYPTO,
			    "random number generator failed");
		p += n;
		len -= n;
	}
	return WSE_OK;
}

static const char hexdigits[] = "0123456789abcdef";

void
wse_hex(const void *data, size_t len, char *out)
{
	const uint8_t *p = data;
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = hexdigits[p[i] >> 4];
		out[2 * i + 1] = hexdigits[p[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

wse_status
wse_uuid_urn(char out[WSE_UUID_URN_LEN + 1])
{
	uint8_t u[16];
	char hex[33];
	wse_status st;

	if ((st = wse_random(u, sizeof(u))) != WSE_OK)
		return st;
	u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);	/* version 4 */
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);	/* RFC 4122 variant */
	wse_hex(u, sizeof(u), hex);
	(void)snprintf(out, WSE_UUID_URN_LEN + 1,
	    "urn:uuid:%.8s-%.4s-%.4s-%.4s-%.12s",
	    hex, hex + 8, hex + 12, hex + 16, hex + 20);
	wse_memzero(u, sizeof(u));
	return WSE_OK;
}

static int
is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int
wse_hex_valid(const char *s, size_t len)
{
	size_t i;

	if (s == NULL)
		return 0;
	for (i = 0; i < len; i++)
		if (!is_lower_hex(s[i]))
			return 0;	/* also stops at a NUL */
	return s[len] == '\0';
}

int
wse_uuid_urn_valid(const char *s)
{
	static const char prefix[] = "urn:uuid:";
	const char *u;
	size_t i;

	if (s == NULL || strncmp(s, prefix, sizeof(prefix) - 1) != 0)
		return 0;
	u = s + sizeof(prefix) - 1;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (u[i] != '-')
				return 0;
		} else if (!is_lower_hex(u[i])) {
			return 0;	/* also stops at the NUL */
		}
	}
	if (u[36] != '\0')
		return 0;
	if (u[14] != '4')
		return 0;
	if (u[19] != '8' && u[19] != '9' && u[19] != 'a' && u[19] != 'b')
		return 0;
	return 1;
}

wse_status
wse_sha256(const void *data, size_t len, uint8_t out[WSE_SHA256_LEN])
{
	unsigned int outlen = 0;

	if (data == NULL && len != 0)
		return wse_err(WSE_ERR_INVALID, "sha256: no data");
	if (EVP_Digest(len ? data : "", len, out, &outlen, EVP_sha256(),
	    NULL) != 1 || outlen != WSE_SHA256_LEN)
		return wse_ossl_err(WSE_ERR_CRYPTO, "sha256 failed");
	return WSE_OK;
}

wse_status
wse_hmac_sha256(const void *key, size_t keylen, const void *data,
    size_t len, uint8_t out[WSE_SHA256_LEN])
{
	size_t outlen = 0;

	if ((key == NULL && keylen != 0) || (data == NULL && len != 0))
		return wse_err(WSE_ERR_INVALID, "hmac-sha256: no input");
	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL,
	    keylen ? key : "", keylen, len ? data : "", len,
	    out, WSE_SHA256_LEN, &outlen) == NULL || outlen != WSE_SHA256_LEN)
		return wse_ossl_err(WSE_ERR_CRYPTO, "hmac-sha256 failed");
	return WSE_OK;
}

wse_status
wse_pbkdf2_sha256(const char *password, size_t pwlen, const uint8_t *salt,
    size_t saltlen, uint32_t iterations, uint8_t out[WSE_DERIVED_KEY_LEN])
{
	if ((password == NULL && pwlen != 0) || (salt == NULL && saltlen != 0))
		return wse_err(WSE_ERR_INVALID, "pbkdf2: no input");
	if (pwlen > INT_MAX || saltlen > INT_MAX)
		return wse_err(WSE_ERR_TOO_LARGE, "pbkdf2: input too long");
	if (iterations == 0 || iterations > INT_MAX)
		return wse_err(WSE_ERR_INVALID,
		    "pbkdf2: iteration count %u out of range", iterations);
	if (PKCS5_PBKDF2_HMAC(pwlen ? password : "", (int)pwlen,
	    saltlen ? salt : (const uint8_t *)"", (int)saltlen,
	    (int)iterations, EVP_sha256(), WSE_DERIVED_KEY_LEN, out) != 1)
		return wse_ossl_err(WSE_ERR_CRYPTO, "pbkdf2-hmac-sha256 failed");
	return WSE_OK;
}

wse_status
wse_decoy_salt(const uint8_t secret[WSE_SEAL_KEY_LEN], const char *user,
    uint8_t salt_r[WSE_SALT_LEN])
{
	static const char label[] = "wsemail-salt";	/* + its NUL */
	uint8_t mac[WSE_SHA256_LEN];
	wse_buf *msg = NULL;
	wse_status st;

	if (user == NULL)
		return wse_err(WSE_ERR_INVALID, "decoy salt: no user name");
	if ((msg = wse_buf_new(sizeof(label) + strlen(user) + 1)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "decoy salt: no memory");
	if ((st = wse_buf_put(msg, label, sizeof(label))) != WSE_OK ||
	    (st = wse_buf_puts(msg, user)) != WSE_OK)
		goto out;
	if ((st = wse_hmac_sha256(secret, WSE_SEAL_KEY_LEN, wse_buf_data(msg),
	    wse_buf_len(msg), mac)) != WSE_OK)
		goto out;
	memcpy(salt_r, mac, WSE_SALT_LEN);
	st = WSE_OK;
out:
	wse_memzero(mac, sizeof(mac));
	wse_buf_free(&msg);
	return st;
}

int
wse_ct_equal(const void *a, const void *b, size_t len)
{
	if (len == 0)
		return 1;
	return CRYPTO_memcmp(a, b, len) == 0;
}

/* Room for n more bytes in out, without touching it. */
static wse_status
check_room(const wse_buf *out, size_t n, const char *what)
{
	if (n > wse_buf_max(out) - wse_buf_len(out))
		return wse_err(WSE_ERR_TOO_LARGE,
		    "%s: %zu bytes do not fit in the output buffer", what, n);
	return WSE_OK;
}

wse_status
wse_seal(const uint8_t key[WSE_SEAL_KEY_LEN], const void *aad, size_t aadlen,
    const void *plain, size_t len, wse_buf *out)
{
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t *tmp = NULL, *ct;
	const uint8_t *pt = plain, *ad = aad;
	size_t total = 0, off;
	int n;
	wse_status st = WSE_ERR_INTERNAL;

	if ((plain == NULL && len != 0) || (aad == NULL && aadlen != 0))
		return wse_err(WSE_ERR_INVALID, "seal: no input");
	if (len > SIZE_MAX - GCM_NONCE_LEN - GCM_TAG_LEN)
		return wse_err(WSE_ERR_TOO_LARGE, "seal: input too long");
	total = GCM_NONCE_LEN + len + GCM_TAG_LEN;
	if ((st = check_room(out, total, "seal")) != WSE_OK)
		return st;
	if ((tmp = malloc(total)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "seal: no memory");
	ct = tmp + GCM_NONCE_LEN;
	if ((st = wse_random(tmp, GCM_NONCE_LEN)) != WSE_OK)
		goto out;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GCM_NONCE_LEN,
	    NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, key, tmp) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "seal: cannot set up AES-256-GCM");
		goto out;
	}
	for (off = 0; off < aadlen;) {
		size_t c = aadlen - off > CHUNK ? CHUNK : aadlen - off;

		if (EVP_EncryptUpdate(ctx, NULL, &n, ad + off, (int)c) != 1) {
			st = wse_ossl_err(WSE_ERR_CRYPTO, "seal: aad failed");
			goto out;
		}
		off += c;
	}
	for (off = 0; off < len;) {
		size_t c = len - off > CHUNK ? CHUNK : len - off;

		if (EVP_EncryptUpdate(ctx, ct + off, &n, pt + off, (int)c) != 1 ||
		    (size_t)n != c) {
			st = wse_ossl_err(WSE_ERR_CRYPTO, "seal: encryption failed");
			goto out;
		}
		off += c;
	}
	if (EVP_EncryptFinal_ex(ctx, ct + len, &n) != 1 || n != 0 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN,
	    ct + len) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "seal: finalisation failed");
		goto out;
	}
	st = wse_buf_put(out, tmp, total);
out:
	EVP_CIPHER_CTX_free(ctx);
	if (tmp != NULL) {
		wse_memzero(tmp, total);
		free(tmp);
	}
	return st;
}

wse_status
wse_unseal(const uint8_t key[WSE_SEAL_KEY_LEN], const void *aad,
    size_t aadlen, const void *sealed, size_t len, wse_buf *out)
{
	EVP_CIPHER_CTX *ctx = NULL;
	const uint8_t *in = sealed, *ad = aad, *ct;
	uint8_t *pt = NULL, tag[GCM_TAG_LEN];
	size_t ctlen = 0, off;
	int n;
	wse_status st = WSE_ERR_INTERNAL;

	if ((sealed == NULL && len != 0) || (aad == NULL && aadlen != 0))
		return wse_err(WSE_ERR_INVALID, "unseal: no input");
	if (len < GCM_NONCE_LEN + GCM_TAG_LEN)
		return wse_err(WSE_ERR_BAD_SIGNATURE,
		    "unseal: %zu bytes are too short for a sealed value", len);
	ctlen = len - GCM_NONCE_LEN - GCM_TAG_LEN;
	ct = in + GCM_NONCE_LEN;
	memcpy(tag, ct + ctlen, GCM_TAG_LEN);
	if ((st = check_room(out, ctlen, "unseal")) != WSE_OK)
		return st;
	if ((pt = malloc(ctlen ? ctlen : 1)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "unseal: no memory");
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GCM_NONCE_LEN,
	    NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, key, in) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO,
		    "unseal: cannot set up AES-256-GCM");
		goto out;
	}
	for (off = 0; off < aadlen;) {
		size_t c = aadlen - off > CHUNK ? CHUNK : aadlen - off;

		if (EVP_DecryptUpdate(ctx, NULL, &n, ad + off, (int)c) != 1) {
			st = wse_ossl_err(WSE_ERR_CRYPTO, "unseal: aad failed");
			goto out;
		}
		off += c;
	}
	for (off = 0; off < ctlen;) {
		size_t c = ctlen - off > CHUNK ? CHUNK : ctlen - off;

		if (EVP_DecryptUpdate(ctx, pt + off, &n, ct + off, (int)c) != 1 ||
		    (size_t)n != c) {
			st = wse_ossl_err(WSE_ERR_CRYPTO, "unseal: decryption failed");
			goto out;
		}
		off += c;
	}
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN,
	    tag) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "unseal: cannot set the tag");
		goto out;
	}
	if (EVP_DecryptFinal_ex(ctx, pt + ctlen, &n) != 1) {
		ERR_clear_error();
		st = wse_err(WSE_ERR_BAD_SIGNATURE,
		    "unseal: authentication tag does not verify");
		goto out;
	}
	st = wse_buf_put(out, pt, ctlen);
out:
	EVP_CIPHER_CTX_free(ctx);
	wse_memzero(pt, ctlen ? ctlen : 1);
	free(pt);
	return st;
}

wse_status
wse_base64_encode(const void *data, size_t len, wse_buf *out)
{
	const uint8_t *p = data;
	uint8_t *tmp = NULL;
	size_t olen, off, done = 0;
	wse_status st;

	if (data == NULL && len != 0)
		return wse_err(WSE_ERR_INVALID, "base64: no input");
	if (len == 0)
		return WSE_OK;
	if (len / 3 >= SIZE_MAX / 4 - 1)
		return wse_err(WSE_ERR_TOO_LARGE, "base64: input too long");
	olen = (len + 2) / 3 * 4;
	if ((st = check_room(out, olen, "base64")) != WSE_OK)
		return st;
	/* +1: EVP_EncodeBlock writes a NUL after each block it encodes. */
	if ((tmp = malloc(olen + 1)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "base64: no memory");
	for (off = 0; off < len;) {
		/* a multiple of 3 so that padding appears only at the end */
		size_t c = len - off > 3 * (CHUNK / 4) ? 3 * (CHUNK / 4) :
		    len - off;
		int n = EVP_EncodeBlock(tmp + done, p + off, (int)c);

		if (n < 0 || (size_t)n != (c + 2) / 3 * 4) {
			st = wse_ossl_err(WSE_ERR_CRYPTO, "base64: encoding failed");
			goto out;
		}
		done += (size_t)n;
		off += c;
	}
	st = wse_buf_put(out, tmp, olen);
out:
	wse_memzero(tmp, olen + 1);
	free(tmp);
	return st;
}

/* Value of one base64 character, or -1. */
static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* b64val for every byte (-1: not a base64 digit), made once. */
static signed char b64tab[256];
static pthread_once_t b64tab_once = PTHREAD_ONCE_INIT;

static void
b64tab_init(void)
{
	int c;

	for (c = 0; c < 256; c++)
		b64tab[c] = (signed char)b64val((unsigned char)c);
}

static int
is_b64_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
	    c == '\f' || c == '\v';
}

wse_status
wse_base64_decode(const char *s, size_t len, wse_buf *out)
{
	uint8_t *tmp = NULL;
	size_t i, olen = 0, cap, nq = 0;	/* nq: characters in quad */
	int quad[4], pad = 0;
	wse_status st = WSE_ERR_INTERNAL;

	if (s == NULL && len != 0)
		return wse_err(WSE_ERR_INVALID, "base64: no input");
	if (len == 0)
		return WSE_OK;
	cap = len / 4 * 3 + 3;
	if ((tmp = malloc(cap)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "base64: no memory");
	pthread_once(&b64tab_once, b64tab_init);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int v;

		/* Fast path: a whole quad of digits, no padding yet (what
		 * almost all of the input is); anything else goes the
		 * careful way below. */
		if (nq == 0 && pad == 0 && len - i >= 4) {
			const unsigned char *q = (const unsigned char *)s + i;
			int a = b64tab[q[0]], b = b64tab[q[1]],
			    d = b64tab[q[2]], e = b64tab[q[3]];

			if ((a | b | d | e) >= 0) {
				tmp[olen] = (uint8_t)(a << 2 | b >> 4);
				tmp[olen + 1] = (uint8_t)((b & 0x0f) << 4 |
				    d >> 2);
				tmp[olen + 2] = (uint8_t)((d & 0x03) << 6 | e);
				olen += 3;
				i += 3;
				continue;
			}
		}

		if (is_b64_space(c))
			continue;
		if (pad > 0 && nq == 0) {
			/* data after a padded final quad */
			st = wse_err(WSE_ERR_INVALID,
			    "base64: data after padding at offset %zu", i);
			goto out;
		}
		if (c == '=') {
			/* '=' only in positions 3 and 4 of a quad, and once
			 * one is seen the rest of the quad is '=' too. */
			if (nq < 2) {
				st = wse_err(WSE_ERR_INVALID,
				    "base64: misplaced '=' at offset %zu", i);
				goto out;
			}
			pad++;
			quad[nq++] = 0;
		} else {
			if ((v = b64val(c)) < 0) {
				st = wse_err(WSE_ERR_INVALID,
				    "base64: invalid character 0x%02x at "
				    "offset %zu", c, i);
				goto out;
			}
			if (pad > 0) {
				st = wse_err(WSE_ERR_INVALID,
				    "base64: data after '=' at offset %zu", i);
				goto out;
			}
			quad[nq++] = v;
		}
		if (nq < 4)
			continue;
		nq = 0;
		if (olen + 3 > cap) {	/* cannot happen: cap is an upper bound */
			st = wse_err(WSE_ERR_INTERNAL, "base64: overflow");
			goto out;
		}
		tmp[olen] = (uint8_t)(quad[0] << 2 | quad[1] >> 4);
		tmp[olen + 1] = (uint8_t)((quad[1] & 0x0f) << 4 | quad[2] >> 2);
		tmp[olen + 2] = (uint8_t)((quad[2] & 0x03) << 6 | quad[3]);
		/* Canonical encoding: the bits that padding drops are zero. */
		if ((pad == 1 && (quad[2] & 0x03) != 0) ||
		    (pad == 2 && (quad[1] & 0x0f) != 0)) {
			st = wse_err(WSE_ERR_INVALID,
			    "base64: non-zero bits before padding");
			goto out;
		}
		olen += 3 - (size_t)pad;
	}
	if (nq != 0) {
		st = wse_err(WSE_ERR_INVALID,
		    "base64: input length is not a multiple of 4");
		goto out;
	}
	st = wse_buf_put(out, tmp, olen);
out:
	wse_memzero(tmp, cap);
	free(tmp);
	return st;
}

wse_status
wse_secret_load(const char *path, int create, uint8_t out[WSE_SEAL_KEY_LEN])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	wse_status st;

	if (fd == -1 && errno == ENOENT && create) {
		if ((st = wse_random(out, WSE_SEAL_KEY_LEN)) != WSE_OK)
			return st;
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd == -1 || write(fd, out, WSE_SEAL_KEY_LEN) !=
		    WSE_SEAL_KEY_LEN || fsync(fd) != 0) {
			st = wse_err(WSE_ERR_IO, "cannot create %s: %s", path,
			    strerror(errno));
			if (fd != -1) {
				close(fd);
				(void)unlink(path);
			}
			wse_memzero(out, WSE_SEAL_KEY_LEN);
			return st;
		}
		close(fd);
		return WSE_OK;
	}
	if (fd == -1)
		return wse_err(WSE_ERR_IO, "cannot open %s: %s", path,
		    strerror(errno));
	n = read(fd, out, WSE_SEAL_KEY_LEN);
	if (n == WSE_SEAL_KEY_LEN) {
		uint8_t extra;

		if (read(fd, &extra, 1) != 0)
			n = -1;
	}
	close(fd);
	if (n != WSE_SEAL_KEY_LEN) {
		wse_memzero(out, WSE_SEAL_KEY_LEN);
		return wse_err(WSE_ERR_INVALID, "%s must hold exactly %d bytes",
		    path, WSE_SEAL_KEY_LEN);
	}
	return WSE_OK;
}

wse_status
wse_secret_derive(const uint8_t secret[WSE_SEAL_KEY_LEN], const char *label,
    uint8_t out[WSE_SEAL_KEY_LEN])
{
	return wse_hmac_sha256(secret, WSE_SEAL_KEY_LEN, label, strlen(label),
	    out);
}
