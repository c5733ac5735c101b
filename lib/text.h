/*
 * text.h - untrusted text: UTF-8 decoding, the code points that must not
 * reach a terminal as they are, and the one rule for attachment names.
 *
 * A message's sender chooses its subject, text and attachment names; a
 * receiving client shows them and may save files under those names.  What
 * could move the cursor, change colours, retitle the window or reorder
 * what is shown (C0/C1 controls, DEL, bidi marks, embeddings, overrides
 * and isolates, line and paragraph separators) is "unsafe" here.
 */
#ifndef WSE_TEXT_H
#define WSE_TEXT_H

#include <stddef.h>

/* Longest attachment name, in bytes. */
#define WSE_ATTACH_NAME_MAX 255

/* Decode one UTF-8 sequence at s (n bytes left): its length, with its
 * code point in *cp_r, or 0 when it is not well formed (overlong,
 * surrogate, beyond U+10FFFF, truncated). */
size_t wse_utf8_next(const unsigned char *s, size_t n, unsigned long *cp_r);

/* 1 for a code point that must not reach a terminal as it is (see
 * above; also the noncharacters U+FFFE and U+FFFF). */
int wse_cp_unsafe(unsigned long cp);

/* 1 when s is a safe attachment name: 1..WSE_ATTACH_NAME_MAX bytes of
 * well-formed UTF-8, no unsafe code point and no '/' (so it names no
 * other directory and shows as what it is).  A leading '.' is allowed
 * here; where a name becomes a file, the caller refuses it too. */
int wse_attach_name_ok(const char *s);

#endif
