/*
 * test_crypto.c - unit tests of crypto.c.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"

static void
hex_to_bytes(const char *hex, uint8_t *out, size_t n)
{
	size_t i;

	assert_int_equal(strlen(hex), 2 * n);
	for (i = 0; i < n; i++) {
		unsigned v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static void
test_random(void **state)
{
	uint8_t a[64], b[64], zero[64];

	(void)state;
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	memset(zero, 0, sizeof(zero));
	assert_wse_ok(wse_random(a, sizeof(a)));
	assert_wse_ok(wse_random(b, sizeof(b)));
	assert_memory_not_equal(a, b, sizeof(a));
	assert_memory_not_equal(a, zero, sizeof(a));
	assert_wse_ok(wse_random(a, 0));
}

static void
test_hex(void **state)
{
	static const uint8_t d[] = { 0x00, 0x01, 0xab, 0xff, 0x7f };
	char out[2 * sizeof(d) + 1];

	(void)state;
	wse_hex(d, sizeof(d), out);
	assert_string_equal(out, "0001abff7f");
	wse_hex(d, 0, out);
	assert_string_equal(out, "");

	/* wse_hex_valid: exactly len lower-case digits, then the NUL. */
	wse_hex(d, sizeof(d), out);
	assert_true(wse_hex_valid(out, 2 * sizeof(d)));
	assert_true(wse_hex_valid("", 0));
	assert_false(wse_hex_valid(NULL, 0));
	assert_false(wse_hex_valid(out, 2 * sizeof(d) - 1));	/* longer */
	assert_false(wse_hex_valid(out, 2 * sizeof(d) + 1));	/* shorter */
	assert_false(wse_hex_valid("0001ABFF7F", 10));	/* upper case */
	assert_false(wse_hex_valid("0001abff7g", 10));
	assert_false(wse_hex_valid("0001ab ff7", 10));
	assert_false(wse_hex_valid("0001ab\0ff7", 10));
}

static void
test_uuid_format_and_uniqueness(void **state)
{
	enum { N = 1000 };
	char (*u)[WSE_UUID_URN_LEN + 1];
	size_t i, j;

	(void)state;
	u = calloc(N, sizeof(*u));
	assert_non_null(u);
	for (i = 0; i < N; i++) {
		assert_wse_ok(wse_uuid_urn(u[i]));
		assert_int_equal(strlen(u[i]), WSE_UUID_URN_LEN);
		assert_true(wse_uuid_urn_valid(u[i]));
		assert_int_equal(u[i][9 + 14], '4');
		assert_non_null(strchr("89ab", u[i][9 + 19]));
	}
	for (i = 0; i < N; i++)
		for (j = i + 1; j < N; j++)
			assert_string_not_equal(u[i], u[j]);
	free(u);
}

static void
test_uuid_valid_rejects(void **state)
{
	(void)state;
	assert_true(wse_uuid_urn_valid(
	    "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e"));
	assert_false(wse_uuid_urn_valid(NULL));
	assert_false(wse_uuid_urn_valid(""));
	/* upper case */
	assert_false(wse_uuid_urn_valid(
	    "urn:uuid:0F8FAD5B-D9CB-469F-A165-70867728950E"));
	/* version 1 */
	assert_false(wse_uuid_urn_valid(
	    "urn:uuid:0f8fad5b-d9cb-169f-a165-70867728950e"));
	/* wrong variant */
	assert_false(wse_uuid_urn_valid(
	    "urn:uuid:0f8fad5b-d9cb-469f-c165-70867728950e"));
	/* no prefix, short, long, misplaced hyphen, trailing data */
	assert_false(wse_uuid_urn_valid("0f8fad5b-d9cb-469f-a165-70867728950e"));
	assert_false(wse_uuid_urn_valid(
	    "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950"));
	assert_false(wse_uuid_urn_valid(
	    "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e0"));
	assert_false(wse_uuid_urn_valid(
	    "urn:uuid:0f8fad5bd-9cb-469f-a165-70867728950e"));
	assert_false(wse_uuid_urn_valid(
	    "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e "));
	assert_false(wse_uuid_urn_valid(
	    "URN:UUID:0f8fad5b-d9cb-469f-a165-70867728950e"));
}

static void
test_sha256(void **state)
{
	uint8_t out[WSE_SHA256_LEN], want[WSE_SHA256_LEN];

	(void)state;
	assert_wse_ok(wse_sha256("abc", 3, out));
	hex_to_bytes("ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad", want, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
	assert_wse_ok(wse_sha256(NULL, 0, out));
	hex_to_bytes("e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855", want, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

/* RFC 4231 test cases 1 and 2. */
static void
test_hmac_rfc4231(void **state)
{
	uint8_t key[20], out[WSE_SHA256_LEN], want[WSE_SHA256_LEN];

	(void)state;
	memset(key, 0x0b, sizeof(key));
	assert_wse_ok(wse_hmac_sha256(key, sizeof(key), "Hi There", 8, out));
	hex_to_bytes("b0344c61d8db38535ca8afceaf0bf12b"
	    "881dc200c9833da726e9376c2e32cff7", want, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));

	assert_wse_ok(wse_hmac_sha256("Jefe", 4,
	    "what do ya want for nothing?", 28, out));
	hex_to_bytes("5bdcc146bf60754e6a042426089575c7"
	    "5a003f089d2739839dec58b964ec3843", want, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

/* RFC 7914 section 11: PBKDF2-HMAC-SHA256, P="passwd", S="salt", c=1;
 * the first 32 bytes of the 64-byte output. */
static void
test_pbkdf2_vector(void **state)
{
	uint8_t out[WSE_DERIVED_KEY_LEN], want[WSE_DERIVED_KEY_LEN];

	(void)state;
	assert_wse_ok(wse_pbkdf2_sha256("passwd", 6, (const uint8_t *)"salt",
	    4, 1, out));
	hex_to_bytes("55ac046e56e3089fec1691c22544b605"
	    "f94185216dde0465e68b9d57c20dacbc", want, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
	assert_wse_status(wse_pbkdf2_sha256("passwd", 6,
	    (const uint8_t *)"salt", 4, 0, out), WSE_ERR_INVALID);
}

static void
test_decoy_salt(void **state)
{
	uint8_t secret[WSE_SEAL_KEY_LEN], other[WSE_SEAL_KEY_LEN];
	uint8_t s1[WSE_SALT_LEN], s2[WSE_SALT_LEN], s3[WSE_SALT_LEN];
	uint8_t s4[WSE_SALT_LEN], mac[WSE_SHA256_LEN];
	static const char msg[] = "wsemail-salt\0nobody";

	(void)state;
	memset(secret, 0x42, sizeof(secret));
	memset(other, 0x43, sizeof(other));
	assert_wse_ok(wse_decoy_salt(secret, "nobody", s1));
	assert_wse_ok(wse_decoy_salt(secret, "nobody", s2));
	assert_memory_equal(s1, s2, sizeof(s1));	/* stable */
	assert_wse_ok(wse_decoy_salt(secret, "nobody2", s3));
	assert_memory_not_equal(s1, s3, sizeof(s1));	/* per user */
	assert_wse_ok(wse_decoy_salt(other, "nobody", s4));
	assert_memory_not_equal(s1, s4, sizeof(s1));	/* per secret */
	/* exactly the documented construction */
	assert_wse_ok(wse_hmac_sha256(secret, sizeof(secret), msg,
	    sizeof(msg) - 1, mac));
	assert_memory_equal(s1, mac, WSE_SALT_LEN);
}

static void
test_ct_equal(void **state)
{
	(void)state;
	assert_true(wse_ct_equal("abcd", "abcd", 4));
	assert_false(wse_ct_equal("abcd", "abce", 4));
	assert_true(wse_ct_equal("a", "b", 0));
}

static void
test_seal_roundtrip(void **state)
{
	uint8_t key[WSE_SEAL_KEY_LEN];
	static const char plain[] = "the derived key of alice";
	wse_buf *s1 = wse_buf_new(4096), *s2 = wse_buf_new(4096);
	wse_buf *p = wse_buf_new(4096);

	(void)state;
	assert_non_null(s1);
	assert_non_null(s2);
	assert_non_null(p);
	assert_wse_ok(wse_random(key, sizeof(key)));
	assert_wse_ok(wse_seal(key, "alice", 5, plain, sizeof(plain), s1));
	assert_int_equal(wse_buf_len(s1), 12 + sizeof(plain) + 16);
	assert_wse_ok(wse_seal(key, "alice", 5, plain, sizeof(plain), s2));
	/* fresh nonce each time */
	assert_memory_not_equal(wse_buf_data(s1), wse_buf_data(s2), 12);
	assert_wse_ok(wse_unseal(key, "alice", 5, wse_buf_data(s1),
	    wse_buf_len(s1), p));
	assert_int_equal(wse_buf_len(p), sizeof(plain));
	assert_memory_equal(wse_buf_data(p), plain, sizeof(plain));

	/* empty plaintext, no aad */
	wse_buf_reset(s1);
	wse_buf_reset(p);
	assert_wse_ok(wse_seal(key, NULL, 0, NULL, 0, s1));
	assert_int_equal(wse_buf_len(s1), 28);
	assert_wse_ok(wse_unseal(key, NULL, 0, wse_buf_data(s1),
	    wse_buf_len(s1), p));
	assert_int_equal(wse_buf_len(p), 0);
	wse_buf_free(&s1);
	wse_buf_free(&s2);
	wse_buf_free(&p);
	assert_null(s1);
}

static void
test_seal_tamper(void **state)
{
	uint8_t key[WSE_SEAL_KEY_LEN], key2[WSE_SEAL_KEY_LEN], *t;
	static const char plain[] = "secret";
	wse_buf *s = wse_buf_new(4096), *p = wse_buf_new(4096);
	size_t len, i;

	(void)state;
	assert_wse_ok(wse_random(key, sizeof(key)));
	memcpy(key2, key, sizeof(key));
	key2[0] ^= 1;
	assert_wse_ok(wse_seal(key, "aad", 3, plain, sizeof(plain), s));
	len = wse_buf_len(s);
	t = malloc(len);
	assert_non_null(t);

	/* flip one bit in each position: nonce, ciphertext, tag */
	for (i = 0; i < len; i++) {
		memcpy(t, wse_buf_data(s), len);
		t[i] ^= 0x01;
		assert_wse_status(wse_unseal(key, "aad", 3, t, len, p),
		    WSE_ERR_BAD_SIGNATURE);
		assert_int_equal(wse_buf_len(p), 0);	/* nothing appended */
	}
	memcpy(t, wse_buf_data(s), len);
	assert_wse_status(wse_unseal(key, "aae", 3, t, len, p),
	    WSE_ERR_BAD_SIGNATURE);
	assert_wse_status(wse_unseal(key, NULL, 0, t, len, p),
	    WSE_ERR_BAD_SIGNATURE);
	assert_wse_status(wse_unseal(key2, "aad", 3, t, len, p),
	    WSE_ERR_BAD_SIGNATURE);
	assert_wse_status(wse_unseal(key, "aad", 3, t, len - 1, p),
	    WSE_ERR_BAD_SIGNATURE);
	assert_wse_status(wse_unseal(key, "aad", 3, t, 27, p),
	    WSE_ERR_BAD_SIGNATURE);
	assert_int_equal(wse_buf_len(p), 0);
	assert_wse_ok(wse_unseal(key, "aad", 3, t, len, p));
	free(t);
	wse_buf_free(&s);
	wse_buf_free(&p);
}

static void
test_seal_too_large(void **state)
{
	uint8_t key[WSE_SEAL_KEY_LEN];
	wse_buf *s = wse_buf_new(30);

	(void)state;
	memset(key, 1, sizeof(key));
	assert_wse_status(wse_seal(key, NULL, 0, "abc", 3, s),
	    WSE_ERR_TOO_LARGE);
	assert_int_equal(wse_buf_len(s), 0);
	assert_wse_ok(wse_seal(key, NULL, 0, "ab", 2, s));
	wse_buf_free(&s);
}

static void
b64_roundtrip_one(const uint8_t *data, size_t len)
{
	wse_buf *e = wse_buf_new(1 << 20), *d = wse_buf_new(1 << 20);

	assert_wse_ok(wse_base64_encode(data, len, e));
	assert_int_equal(wse_buf_len(e), (len + 2) / 3 * 4);
	assert_wse_ok(wse_base64_decode(wse_buf_str(e), wse_buf_len(e), d));
	assert_int_equal(wse_buf_len(d), len);
	if (len > 0)
		assert_memory_equal(wse_buf_data(d), data, len);
	wse_buf_free(&e);
	wse_buf_free(&d);
}

static void
test_base64_vectors(void **state)
{
	/* RFC 4648 section 10 */
	static const char *const in[] = { "", "f", "fo", "foo", "foob",
	    "fooba", "foobar" };
	static const char *const out[] = { "", "Zg==", "Zm8=", "Zm9v",
	    "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	wse_buf *b = wse_buf_new(256);
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		wse_buf_reset(b);
		assert_wse_ok(wse_base64_encode(in[i], strlen(in[i]), b));
		assert_string_equal(wse_buf_str(b), out[i]);
		wse_buf_reset(b);
		assert_wse_ok(wse_base64_decode(out[i], strlen(out[i]), b));
		assert_int_equal(wse_buf_len(b), strlen(in[i]));
		assert_string_equal(wse_buf_str(b), in[i]);
	}
	/* appends */
	wse_buf_reset(b);
	assert_wse_ok(wse_buf_puts(b, "x"));
	assert_wse_ok(wse_base64_encode("foo", 3, b));
	assert_string_equal(wse_buf_str(b), "xZm9v");
	wse_buf_free(&b);
}

static void
test_base64_roundtrip(void **state)
{
	uint8_t *data;
	size_t len;

	(void)state;
	data = malloc(70000);
	assert_non_null(data);
	assert_wse_ok(wse_random(data, 70000));
	for (len = 0; len < 300; len++)
		b64_roundtrip_one(data, len);
	b64_roundtrip_one(data, 70000);
	b64_roundtrip_one(data, 69999);
	b64_roundtrip_one(data, 69998);
	free(data);
}

static void
test_base64_whitespace(void **state)
{
	static const char in[] = " Zm9v\r\nYmFy\tZg=\n=\n";
	wse_buf *b = wse_buf_new(256);

	(void)state;
	assert_wse_ok(wse_base64_decode(in, strlen(in), b));
	assert_string_equal(wse_buf_str(b), "foobarf");
	wse_buf_free(&b);
}

static void
test_base64_strict_rejects(void **state)
{
	static const char *const bad[] = {
		"Zg",		/* no padding */
		"Zg=",		/* short padding */
		"Zm9",		/* length not a multiple of 4 */
		"Z===",		/* too much padding */
		"====",
		"=Zm9",
		"Zg==Zg==",	/* data after padding */
		"Zg==\nZm9v",
		"Zm=v",		/* '=' inside */
		"Zm9v-A==",	/* base64url alphabet */
		"Zm9v_A==",
		"Zm9v*A==",
		"Zh==",		/* non-zero bits before padding */
		"Zm9=",
		"Zm9vYg=",
		"Zm9vYg===",
	};
	wse_buf *b = wse_buf_new(256);
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wse_buf_reset(b);
		assert_wse_status(wse_base64_decode(bad[i], strlen(bad[i]), b),
		    WSE_ERR_INVALID);
		assert_int_equal(wse_buf_len(b), 0);
	}
	/* an embedded NUL is not white space */
	assert_wse_status(wse_base64_decode("Zm9v\0Zm9v", 9, b),
	    WSE_ERR_INVALID);
	/* 8-bit bytes */
	assert_wse_status(wse_base64_decode("Zm9v\xc3\xa9", 6, b),
	    WSE_ERR_INVALID);
	wse_buf_free(&b);
}

static void
test_base64_limits(void **state)
{
	wse_buf *b = wse_buf_new(7);

	(void)state;
	/* 6 bytes need 8 characters */
	assert_wse_status(wse_base64_encode("foobar", 6, b),
	    WSE_ERR_TOO_LARGE);
	assert_int_equal(wse_buf_len(b), 0);
	assert_wse_ok(wse_base64_encode("foo", 3, b));
	wse_buf_free(&b);

	b = wse_buf_new(5);
	assert_wse_status(wse_base64_decode("Zm9vYmFy", 8, b),
	    WSE_ERR_TOO_LARGE);
	assert_int_equal(wse_buf_len(b), 0);
	wse_buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_uuid_format_and_uniqueness),
		cmocka_unit_test(test_uuid_valid_rejects),
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_hmac_rfc4231),
		cmocka_unit_test(test_pbkdf2_vector),
		cmocka_unit_test(test_decoy_salt),
		cmocka_unit_test(test_ct_equal),
		cmocka_unit_test(test_seal_roundtrip),
		cmocka_unit_test(test_seal_tamper),
		cmocka_unit_test(test_seal_too_large),
		cmocka_unit_test(test_base64_vectors),
		cmocka_unit_test(test_base64_roundtrip),
		cmocka_unit_test(test_base64_whitespace),
		cmocka_unit_test(test_base64_strict_rejects),
		cmocka_unit_test(test_base64_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
