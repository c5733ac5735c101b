/*
 * fuzz_envelope.h - the envelope fuzz target's pieces, shared with the
 * corpus replay test.
 */
#ifndef WSE_FUZZ_ENVELOPE_H
#define WSE_FUZZ_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

/* Mint the target's PKI (once). 0 on success. */
int fuzz_envelope_init(void);
/* Parse and verify with the certificate (0) or password (1) profile. */
wse_status fuzz_envelope_verify(const uint8_t *data, size_t size,
    int profile);
/* A valid envelope for the target's PKI / password, into out. */
wse_status fuzz_envelope_make_valid(int profile, wse_buf *out);
void fuzz_envelope_fini(void);

#endif
