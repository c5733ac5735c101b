/*
 * crypto.h - the symmetric primitives libwsemail needs, over OpenSSL 3.
 *
 * Random bytes, UUIDs, hashes, HMAC, PBKDF2, AEAD sealing of secrets at
 * rest, constant-time comparison, base64 and hex.  All functions return
 * WSE_OK or a status with a message on the error stack.
 */
#ifndef WSE_CRYPTO_H
#define WSE_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define WSE_SHA256_LEN 32
#define WSE_SALT_LEN 16
#define WSE_DERIVED_KEY_LEN 32
#define WSE_SEAL_KEY_LEN 32
#define WSE_UUID_URN_LEN 45	/* "urn:uuid:" + 36 characters */

/* Fill buf with len bytes from the CSPRNG. WSE_ERR_CRYPTO on failure. */
wse_status wse_random(void *buf, size_t len);

/* A random (version 4) UUID as "urn:uuid:xxxxxxxx-xxxx-4xxx-yxxx-..."
 * (122 random bits) into out, NUL-terminated. */
wse_status wse_uuid_urn(char out[WSE_UUID_URN_LEN + 1]);

/* 1 when s is exactly of the form produced by wse_uuid_urn (lower-case
 * hex, version 4, RFC 4122 variant), else 0. */
int wse_uuid_urn_valid(const char *s);

wse_status wse_sha256(const void *data, size_t len, uint8_t out[WSE_SHA256_LEN]);

wse_status wse_hmac_sha256(const void *key, size_t keylen, const void *data,
    size_t len, uint8_t out[WSE_SHA256_LEN]);

/* PBKDF2-HMAC-SHA256 of password with salt, iterations rounds, 32 bytes. */
wse_status wse_pbkdf2_sha256(const char *password, size_t pwlen,
    const uint8_t *salt, size_t saltlen, uint32_t iterations,
    uint8_t out[WSE_DERIVED_KEY_LEN]);

/*
 * The salt the server announces for a user name that has no account:
 * HMAC-SHA256(server_secret, "wsemail-salt\0" || user) truncated to
 * WSE_SALT_LEN, so that it is stable and indistinguishable from a real,
 * random salt.
 */
wse_status wse_decoy_salt(const uint8_t secret[WSE_SEAL_KEY_LEN],
    const char *user, uint8_t salt_r[WSE_SALT_LEN]);

/*
 * A server's 32-byte secret, kept in a file of exactly that size (mode
 * 0600).  With create set, a missing file is created with fresh random
 * bytes (O_EXCL, fsync).  WSE_ERR_IO / WSE_ERR_INVALID (wrong size).
 */
wse_status wse_secret_load(const char *path, int create,
    uint8_t out[WSE_SEAL_KEY_LEN]);

/* A key for one purpose derived from the server secret:
 * HMAC-SHA256(secret, label).  Labels in use: "store-seal" (sealing
 * users' derived keys in the store), "decoy-salt" (salts announced for
 * unknown user names). */
wse_status wse_secret_derive(const uint8_t secret[WSE_SEAL_KEY_LEN],
    const char *label, uint8_t out[WSE_SEAL_KEY_LEN]);

/* 1 when the len bytes at a and b are equal, in time independent of them. */
int wse_ct_equal(const void *a, const void *b, size_t len);

/*
 * Seal plaintext with AES-256-GCM under key, binding aad (may be NULL/0):
 * appends nonce(12) || ciphertext || tag(16) to out.
 */
wse_status wse_seal(const uint8_t key[WSE_SEAL_KEY_LEN], const void *aad,
    size_t aadlen, const void *plain, size_t len, wse_buf *out);

/* Open what wse_seal produced; appends the plaintext to out.
 * WSE_ERR_BAD_SIGNATURE when the tag does not verify. */
wse_status wse_unseal(const uint8_t key[WSE_SEAL_KEY_LEN], const void *aad,
    size_t aadlen, const void *sealed, size_t len, wse_buf *out);

/* Standard base64 with padding, no line breaks, appended to out. */
wse_status wse_base64_encode(const void *data, size_t len, wse_buf *out);

/* Strict base64 decode (ASCII white space ignored, padding required,
 * anything else WSE_ERR_INVALID), appended to out. */
wse_status wse_base64_decode(const char *s, size_t len, wse_buf *out);

/* Lower-case hex of data into out (2*len+1 bytes, NUL-terminated). */
void wse_hex(const void *data, size_t len, char *out);

/* 1 when s is exactly len lower-case hex digits (the form wse_hex
 * writes, e.g. a SHA-256 as 64 digits) followed by its NUL, else 0. */
int wse_hex_valid(const char *s, size_t len);

#endif
