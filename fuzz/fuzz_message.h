/*
 * fuzz_message.h - the message fuzz target's one input (fuzz_message.c).
 */
#ifndef WSE_FUZZ_MESSAGE_H
#define WSE_FUZZ_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

/* Parse data as a message and, when accepted, check its round trip
 * (aborts on a mismatch).  1 when the message was accepted, else 0. */
int fuzz_message_one(const uint8_t *data, size_t size);

#endif
