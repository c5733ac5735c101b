/*
 * buf.c - bounded byte buffers.
 */
#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Only d[0..len] (the bytes in use and the NUL after them) ever hold
 * data: every write goes through buf_reserve and ends at len, and len
 * shrinks only in wse_buf_reset, which wipes first.  So wiping len + 1
 * bytes wipes everything the buffer was given; the rest of the
 * allocation is never written or read.
 */
struct wse_buf {
	uint8_t *d;
	size_t len;	/* bytes in use, excluding the trailing NUL */
	size_t alloc;	/* allocated bytes, including room for the NUL */
	size_t max;	/* hard limit on len */
};

void
wse_memzero(void *p, size_t len)
{
	/* glibc's explicit_bzero: memset speed, never optimised away. */
	if (p != NULL && len > 0)
		explicit_bzero(p, len);
}

wse_buf *
wse_buf_new(size_t max)
{
	wse_buf *b;

	if (max == 0 || max > SIZE_MAX / 2)
		return NULL;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	b->alloc = max < 256 ? max + 1 : 256;
	if ((b->d = calloc(1, b->alloc)) == NULL) {
		free(b);
		return NULL;
	}
	b->max = max;
	return b;
}

void
wse_buf_free(wse_buf **bp)
{
	wse_buf *b;

	if (bp == NULL || (b = *bp) == NULL)
		return;
	wse_memzero(b->d, b->len + 1);
	free(b->d);
	free(b);
	*bp = NULL;
}

void
wse_buf_reset(wse_buf *b)
{
	wse_memzero(b->d, b->len + 1);
	b->len = 0;
}

const uint8_t *
wse_buf_data(const wse_buf *b)
{
	return b->d;
}

const char *
wse_buf_str(const wse_buf *b)
{
	return (const char *)b->d;
}

size_t
wse_buf_len(const wse_buf *b)
{
	return b->len;
}

size_t
wse_buf_max(const wse_buf *b)
{
	return b->max;
}

/* Make room for need more bytes plus the NUL. */
static wse_status
buf_reserve(wse_buf *b, size_t need)
{
	size_t want, nalloc;
	uint8_t *nd;

	if (need > b->max - b->len)
		return wse_err(WSE_ERR_TOO_LARGE,
		    "buffer limit of %zu bytes exceeded", b->max);
	want = b->len + need + 1;
	if (want <= b->alloc)
		return WSE_OK;
	nalloc = b->alloc;
	while (nalloc < want)
		nalloc = nalloc > (b->max + 1) / 2 ? b->max + 1 : nalloc * 2;
	/* Grow by copy so that the old copy can be wiped. */
	if ((nd = malloc(nalloc)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot grow buffer to %zu bytes",
		    nalloc);
	memcpy(nd, b->d, b->len + 1);
	wse_memzero(b->d, b->len + 1);
	free(b->d);
	b->d = nd;
	b->alloc = nalloc;
	return WSE_OK;
}

wse_status
wse_buf_reserve(wse_buf *b, size_t n)
{
	return buf_reserve(b, n < b->max - b->len ? n : b->max - b->len);
}

void
wse_buf_truncate(wse_buf *b, size_t len)
{
	if (len >= b->len)
		return;
	wse_memzero(b->d + len, b->len - len + 1);
	b->len = len;
}

wse_status
wse_buf_put(wse_buf *b, const void *data, size_t len)
{
	wse_status st;

	if (len == 0)
		return WSE_OK;
	if ((st = buf_reserve(b, len)) != WSE_OK)
		return st;
	memcpy(b->d + b->len, data, len);
	b->len += len;
	b->d[b->len] = '\0';
	return WSE_OK;
}

wse_status
wse_buf_puts(wse_buf *b, const char *s)
{
	return wse_buf_put(b, s, strlen(s));
}

wse_status
wse_buf_printf(wse_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	wse_status st;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return wse_err(WSE_ERR_INVALID, "bad format string");
	if ((st = buf_reserve(b, (size_t)n)) != WSE_OK)
		return st;
	va_start(ap, fmt);
	(void)vsnprintf((char *)b->d + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return WSE_OK;
}

wse_status
wse_buf_put_xml_escaped(wse_buf *b, const char *s, size_t len)
{
	size_t i, start = 0;
	wse_status st;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *rep = NULL;

		switch (c) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&apos;"; break;
		case '\r': rep = "&#13;"; break;
		default:
			if (c < 0x20 && c != '\t' && c != '\n')
				return wse_err(WSE_ERR_INVALID,
				    "control character 0x%02x cannot be "
				    "carried in XML", c);
			continue;
		}
		if ((st = wse_buf_put(b, s + start, i - start)) != WSE_OK ||
		    (st = wse_buf_puts(b, rep)) != WSE_OK)
			return st;
		start = i + 1;
	}
	return wse_buf_put(b, s + start, len - start);
}

char *
wse_buf_steal(wse_buf *b, size_t *len_r)
{
	char *s;

	if ((s = malloc(b->len + 1)) == NULL)
		return NULL;
	memcpy(s, b->d, b->len + 1);
	if (len_r != NULL)
		*len_r = b->len;
	wse_buf_reset(b);
	return s;
}

wse_status
wse_buf_read_file(const char *path, size_t max, wse_buf **out_r)
{
	wse_buf *b = NULL;
	uint8_t chunk[8192];
	wse_status st = WSE_ERR_INTERNAL;
	int fd;
	ssize_t n;

	*out_r = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return wse_err(WSE_ERR_IO, "cannot open %s: %s", path,
		    strerror(errno));
	if ((b = wse_buf_new(max)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate buffer");
		goto out;
	}
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			st = wse_err(WSE_ERR_IO, "cannot read %s: %s", path,
			    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if ((st = wse_buf_put(b, chunk, (size_t)n)) != WSE_OK) {
			wse_err(st, "%s is larger than %zu bytes", path, max);
			goto out;
		}
	}
	*out_r = b;
	b = NULL;
	st = WSE_OK;
out:
	wse_memzero(chunk, sizeof(chunk));
	close(fd);
	wse_buf_free(&b);
	return st;
}
