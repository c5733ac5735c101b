/*
 * err.c - per-thread error stack.
 */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct err_entry {
	wse_status st;
	char msg[WSE_ERR_MSGLEN];
};

static _Thread_local struct err_entry stack[WSE_ERR_DEPTH];
static _Thread_local size_t depth;
static _Thread_local size_t pushed;	/* messages ever pushed (marks) */

static const char *const names[WSE_ERR__COUNT] = {
	[WSE_OK] = "ok",
	[WSE_ERR_INTERNAL] = "internal",
	[WSE_ERR_NOMEM] = "out-of-memory",
	[WSE_ERR_INVALID] = "invalid",
	[WSE_ERR_TOO_LARGE] = "too-large",
	[WSE_ERR_PARSE] = "parse",
	[WSE_ERR_IO] = "io",
	[WSE_ERR_CRYPTO] = "crypto",
	[WSE_ERR_NOT_FOUND] = "not-found",
	[WSE_ERR_EXISTS] = "exists",
	[WSE_ERR_CONFIG] = "config",
	[WSE_ERR_EXPIRED] = "expired",
	[WSE_ERR_FUTURE] = "future",
	[WSE_ERR_REPLAY] = "replay",
	[WSE_ERR_BAD_SIGNATURE] = "bad-signature",
	[WSE_ERR_UNSUPPORTED] = "unsupported",
	[WSE_ERR_CERT_EXPIRED] = "certificate-expired",
	[WSE_ERR_CERT_NOT_YET_VALID] = "certificate-not-yet-valid",
	[WSE_ERR_UNTRUSTED] = "untrusted",
	[WSE_ERR_REVOKED] = "revoked",
	[WSE_ERR_TEMPFAIL] = "temporary-failure",
	[WSE_ERR_DOMAIN_MISMATCH] = "domain-mismatch",
	[WSE_ERR_NOT_AUTHORIZED] = "not-authorized",
	[WSE_ERR_NO_SUCH_USER] = "no-such-user",
};

const char *
wse_status_name(wse_status st)
{
	if ((unsigned)st >= WSE_ERR__COUNT || names[st] == NULL)
		return "unknown";
	return names[st];
}

wse_status
wse_err(wse_status st, const char *fmt, ...)
{
	struct err_entry *e;
	va_list ap;

	if (depth == WSE_ERR_DEPTH) {
		memmove(&stack[0], &stack[1], sizeof(stack[0]) * (WSE_ERR_DEPTH - 1));
		depth--;
	}
	e = &stack[depth++];
	pushed++;
	e->st = st;
	va_start(ap, fmt);
	(void)vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return st;
}

void
wse_err_clear(void)
{
	depth = 0;
}

size_t
wse_err_count(void)
{
	return depth;
}

size_t
wse_err_mark(void)
{
	return pushed;
}

void
wse_err_truncate(size_t mark)
{
	size_t since = pushed - mark;	/* wraps harmlessly */

	depth = since < depth ? depth - since : 0;
	pushed = mark;
}

wse_status
wse_err_last_status(void)
{
	return depth ? stack[depth - 1].st : WSE_OK;
}

const char *
wse_err_last(void)
{
	return depth ? stack[depth - 1].msg : "";
}

char *
wse_err_format(char *buf, size_t size)
{
	size_t off = 0, i;

	if (size == 0)
		return buf;
	buf[0] = '\0';
	for (i = depth; i > 0; i--) {
		int n = snprintf(buf + off, size - off, "%s%s",
		    i == depth ? "" : ": ", stack[i - 1].msg);
		if (n < 0 || (size_t)n >= size - off)
			break;
		off += (size_t)n;
	}
	return buf;
}
