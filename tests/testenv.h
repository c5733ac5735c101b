/*
 * testenv.h - signed envelopes for the WS-Security tests.
 */
#ifndef WSE_TESTENV_H
#define WSE_TESTENV_H

#include <stdint.h>

#include "buf.h"
#include "pki.h"
#include "soap.h"
#include "wss.h"

#define TESTENV_TO "https://b.test/wsemail"
#define TESTENV_ACTION "urn:wsemail:2026/Deliver"
#define TESTENV_BODY "<m:Deliver xmlns:m=\"urn:wsemail:2026\">" \
	"<m:From>alice@a.test</m:From><m:To>bob@b.test</m:To>" \
	"<m:Subject>Quarterly figures</m:Subject>" \
	"<m:Text>Pay 100 EUR to account 1234.</m:Text></m:Deliver>"

/* The serialized envelope TESTENV_BODY to TESTENV_TO, signed at time t
 * with key and chain[0..n-1].  Aborts the test on failure. */
wse_buf *testenv_cert(const wse_key *key, wse_cert *const *chain, size_t n,
    int64_t t);

/* The same, signed with the password profile. */
wse_buf *testenv_password(const char *user,
    const uint8_t key[WSE_DERIVED_KEY_LEN], int64_t t);

/* Parse bytes and verify them with opts. */
wse_status testenv_verify(const uint8_t *data, size_t len,
    const wse_verify_opts *opts, wse_verified *out);

/* Parse bytes into an envelope (aborts the test on failure). */
wse_envelope *testenv_parse(const wse_buf *b);

/* Serialize env into a new buffer (aborts on failure). */
wse_buf *testenv_serialize(wse_envelope *env);

#endif
