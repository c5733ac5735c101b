/*
 * fuzz_batch.h - the batch fuzz target's one input (fuzz_batch.c).
 */
#ifndef WSE_FUZZ_BATCH_H
#define WSE_FUZZ_BATCH_H

#include <stddef.h>
#include <stdint.h>

/* Read data as a batch original and as a received DeliverBatch.  1 when
 * either reading accepted it (every item matching its digest), else 0. */
int fuzz_batch_one(const uint8_t *data, size_t size);

#endif
