/*
 * err.h - status codes and the per-thread error stack of libwsemail.
 *
 * Every fallible library call returns a wse_status.  WSE_OK is zero; every
 * other value names one class of failure that a caller may act on (a SOAP
 * Fault subcode is chosen from it).  Details for humans are pushed on a small
 * per-thread stack of messages; the library never prints and never exits.
 */
#ifndef WSE_ERR_H
#define WSE_ERR_H

#include <stddef.h>

typedef enum wse_status {
	WSE_OK = 0,
	WSE_ERR_INTERNAL,	/* a bug or an impossible state */
	WSE_ERR_NOMEM,		/* allocation failed */
	WSE_ERR_INVALID,	/* bad argument or malformed input */
	WSE_ERR_TOO_LARGE,	/* a configured limit was exceeded */
	WSE_ERR_PARSE,		/* XML not well formed or forbidden construct */
	WSE_ERR_IO,		/* file or network I/O failed */
	WSE_ERR_CRYPTO,		/* a cryptographic primitive failed */
	WSE_ERR_NOT_FOUND,	/* lookup found nothing (not a backend failure) */
	WSE_ERR_EXISTS,		/* would overwrite something that exists */
	WSE_ERR_CONFIG,		/* configuration file error */
	/* message-level security verdicts */
	WSE_ERR_EXPIRED,	/* Timestamp older than the freshness window */
	WSE_ERR_FUTURE,		/* Timestamp too far in the future */
	WSE_ERR_REPLAY,		/* MessageID already in the replay cache */
	WSE_ERR_BAD_SIGNATURE,	/* signature or MAC does not verify */
	WSE_ERR_UNSUPPORTED,	/* algorithm or transform not allowed */
	WSE_ERR_CERT_EXPIRED,	/* a certificate's notAfter has passed */
	WSE_ERR_CERT_NOT_YET_VALID, /* a certificate's notBefore is ahead */
	WSE_ERR_UNTRUSTED,	/* chain does not lead to a configured root */
	WSE_ERR_REVOKED,	/* a certificate in the chain is revoked */
	WSE_ERR_TEMPFAIL,	/* cannot decide now (e.g. CRL missing) */
	WSE_ERR_DOMAIN_MISMATCH,/* signer does not belong to claimed domain */
	WSE_ERR_NOT_AUTHORIZED,	/* authentication/authorisation refused */
	WSE_ERR_NO_SUCH_USER,	/* addressed mailbox does not exist */
	WSE_ERR__COUNT
} wse_status;

/* Short stable name of a status ("replay", "bad-signature", ...). Static. */
const char *wse_status_name(wse_status st);

/*
 * Push a message onto this thread's error stack and return st unchanged,
 * so that "return wse_err(WSE_ERR_INVALID, "bad %s", x);" reads naturally.
 * When the stack is full the oldest entry is dropped.
 */
wse_status wse_err(wse_status st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Forget every message on this thread's stack. */
void wse_err_clear(void);

/* Number of messages on the stack (0 .. WSE_ERR_DEPTH). */
size_t wse_err_count(void);

/*
 * Forget the messages pushed since mark (a wse_err_mark() taken before a
 * call whose failure is an expected answer, not an error); the older
 * ones stay.  When the stack overflowed meanwhile, the older messages
 * it dropped are gone too.
 */
size_t wse_err_mark(void);
void wse_err_truncate(size_t mark);

/* Status of the newest message, or WSE_OK when the stack is empty. */
wse_status wse_err_last_status(void);

/* Newest message, or "" when the stack is empty. Valid until the next push. */
const char *wse_err_last(void);

/*
 * Write every message, newest first, joined by ": " into buf (always
 * NUL-terminated when size > 0). Returns buf.
 */
char *wse_err_format(char *buf, size_t size);

#define WSE_ERR_DEPTH 8
#define WSE_ERR_MSGLEN 256

#endif
