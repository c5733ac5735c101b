/*
 * pki-private.h - OpenSSL handles behind the pki types, for the
 * WS-Security module only (xmlsec needs the raw EVP_PKEY and X509).
 */
#ifndef WSE_PKI_PRIVATE_H
#define WSE_PKI_PRIVATE_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "pki.h"

/* Borrowed pointers; owned by the wrapper. */
EVP_PKEY *wse_key_evp(const wse_key *key);
X509 *wse_cert_x509(const wse_cert *cert);

/* A new wse_cert holding its own reference to x (X509_up_ref). NULL on
 * allocation failure. */
wse_cert *wse_cert_from_x509(X509 *x);

#endif
