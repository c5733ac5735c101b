/*
 * buf.h - bounded byte buffers for untrusted data.
 *
 * Every buffer has a hard maximum fixed at creation; an append that would
 * pass it fails with WSE_ERR_TOO_LARGE and leaves the buffer unchanged.
 * The content is always followed by a NUL byte (not counted in the length),
 * so text can be handed to C string functions.  Freeing wipes the memory.
 * This is the one API through which buffer lengths are checked.
 */
#ifndef WSE_BUF_H
#define WSE_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct wse_buf wse_buf;

/* New empty buffer holding at most max bytes. NULL on allocation failure. */
wse_buf *wse_buf_new(size_t max);

/* Wipe and free; accepts NULL and sets *bp to NULL. */
void wse_buf_free(wse_buf **bp);

/* Drop the content (wiped), keep the allocation and the maximum. */
void wse_buf_reset(wse_buf *b);

const uint8_t *wse_buf_data(const wse_buf *b);
/* Content as a NUL-terminated string (may contain earlier NULs). */
const char *wse_buf_str(const wse_buf *b);
size_t wse_buf_len(const wse_buf *b);
size_t wse_buf_max(const wse_buf *b);

/*
 * Make room for n more bytes now (fewer if the maximum comes first), so
 * that appending them does not grow (and copy) the buffer step by step.
 * A size hint: the maximum is still checked by each append.  Only
 * WSE_ERR_NOMEM; the content is unchanged either way.
 */
wse_status wse_buf_reserve(wse_buf *b, size_t n);

/* Cut the content back to its first len bytes (the rest wiped); a len
 * at or past the current length changes nothing. */
void wse_buf_truncate(wse_buf *b, size_t len);

/* Append len bytes. WSE_ERR_TOO_LARGE past the maximum, WSE_ERR_NOMEM. */
wse_status wse_buf_put(wse_buf *b, const void *data, size_t len);

/* Append a NUL-terminated string (without its NUL). */
wse_status wse_buf_puts(wse_buf *b, const char *s);

/* Append printf-formatted text. */
wse_status wse_buf_printf(wse_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Append text escaped for XML character data and attribute values
 * (& < > " ' become entities).  Control characters other than tab, CR and
 * LF are refused with WSE_ERR_INVALID, as XML 1.0 cannot carry them.
 */
wse_status wse_buf_put_xml_escaped(wse_buf *b, const char *s, size_t len);

/*
 * Hand the content over to the caller as a malloc'd NUL-terminated string,
 * its length in *len_r (may be NULL); the buffer becomes empty.
 * NULL on allocation failure.  The caller frees the result.
 */
char *wse_buf_steal(wse_buf *b, size_t *len_r);

/*
 * Read a whole file into a new buffer of maximum max.  WSE_ERR_IO when it
 * cannot be read, WSE_ERR_TOO_LARGE when it is larger than max.
 */
wse_status wse_buf_read_file(const char *path, size_t max, wse_buf **out_r);

/* Constant-time wipe of len bytes at p. */
void wse_memzero(void *p, size_t len);

#endif
