/*
 * ossl-private.h - translating OpenSSL's errors at the library boundary
 * (for the modules that call OpenSSL: crypto, pki, wss, http).
 */
#ifndef WSE_OSSL_PRIVATE_H
#define WSE_OSSL_PRIVATE_H

#include "err.h"

/*
 * Push fmt's message, with the oldest reason on OpenSSL's error queue
 * (usually the root cause) appended, on the wse error stack; empty the
 * OpenSSL queue.  Returns st.
 */
wse_status wse_ossl_err(wse_status st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
