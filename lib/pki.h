/*
 * pki.h - keys, certificates, CRLs and chain verification (OpenSSL 3).
 *
 * The hierarchy (ARCHITECTURE.md): an offline root issues each domain a
 * domain CA (CA:TRUE, pathlen:0, name constraints limited to the domain's
 * DNS names and mailboxes, 12 months); a domain CA issues
 * its server a service certificate (TLS server+client and XMLDSIG
 * signing) and its users short-lived token certificates (one mailbox
 * each).  Root and domain CAs publish CRLs; chain checks always require
 * them (a missing or stale CRL, or one its issuer did not sign, is
 * WSE_ERR_TEMPFAIL, never acceptance -- unless a permanent verdict such as
 * expired or revoked applies; only a CRL its issuer signed revokes).
 *
 * Only this module (and the WS-Security module, through pki-private.h)
 * sees OpenSSL types.  Times are Unix seconds; passing them explicitly
 * keeps every check testable.
 */
#ifndef WSE_PKI_H
#define WSE_PKI_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

typedef struct wse_key wse_key;		/* a key pair or a public key */
typedef struct wse_cert wse_cert;	/* one X.509 certificate */
typedef struct wse_crl wse_crl;		/* one X.509 CRL */
typedef struct wse_trust wse_trust;	/* roots + CRLs for verification */

/* ---- keys ---- */

/* New ECDSA P-256 key pair. */
wse_status wse_key_generate(wse_key **key_r);
/* Private key from a PEM file (unencrypted PKCS#8 or traditional).  Only
 * EC P-256 and RSA >= 2048 bits (WSE_ERR_UNSUPPORTED otherwise). */
wse_status wse_key_load(const char *path, wse_key **key_r);
/* Public key from PEM SubjectPublicKeyInfo text (len bytes). Only EC P-256
 * and RSA >= 2048 bits are accepted (WSE_ERR_UNSUPPORTED otherwise). */
wse_status wse_key_from_public_pem(const char *pem, size_t len,
    wse_key **key_r);
/* Append the public half as PEM SubjectPublicKeyInfo. */
wse_status wse_key_public_pem(const wse_key *key, wse_buf *out);
/* Write the private key as PKCS#8 PEM, mode 0600, atomically (temporary
 * file + rename); WSE_ERR_EXISTS if path exists. */
wse_status wse_key_save(const wse_key *key, const char *path);
/* 1 when the key holds a private half. */
int wse_key_is_private(const wse_key *key);
void wse_key_free(wse_key **key);

/* ---- certificates ---- */

wse_status wse_cert_load(const char *path, wse_cert **cert_r);
/* Every certificate of a PEM bundle, in file order; *n_r >= 1. The caller
 * frees with wse_cert_list_free. */
wse_status wse_cert_load_list(const char *path, wse_cert ***certs_r,
    size_t *n_r);
void wse_cert_list_free(wse_cert ***certs, size_t n);
wse_status wse_cert_from_der(const uint8_t *der, size_t len, wse_cert **cert_r);
/* Append the DER encoding. */
wse_status wse_cert_to_der(const wse_cert *cert, wse_buf *out);
/* Append the PEM encoding. */
wse_status wse_cert_to_pem(const wse_cert *cert, wse_buf *out);
/* Write PEM (mode 0644, atomically; replaces an existing file). */
wse_status wse_cert_save(const wse_cert *cert, const char *path);
/* New reference to the same certificate. */
wse_cert *wse_cert_dup(const wse_cert *cert);
void wse_cert_free(wse_cert **cert);

/* WSE_OK when not_before <= now <= not_after, else WSE_ERR_CERT_EXPIRED or
 * WSE_ERR_CERT_NOT_YET_VALID. */
wse_status wse_cert_check_time(const wse_cert *cert, int64_t now);
int64_t wse_cert_not_before(const wse_cert *cert);
int64_t wse_cert_not_after(const wse_cert *cert);
/* Serial number as lower-case hex, NUL-terminated, into buf. */
wse_status wse_cert_serial(const wse_cert *cert, char *buf, size_t size);
/* Subject as a one-line string (RFC 2253), into buf. */
wse_status wse_cert_subject(const wse_cert *cert, char *buf, size_t size);
/* Issuer as a one-line string (RFC 2253), into buf. */
wse_status wse_cert_issuer(const wse_cert *cert, char *buf, size_t size);
/* Append the subjectAltNames as text for people ("DNS:a.test,
 * DNS:mail.a.test" or "email:bob@a.test"); appends nothing when the
 * certificate has none. */
wse_status wse_cert_san_text(const wse_cert *cert, wse_buf *out);
/* The domain a certificate speaks for: for a service certificate its
 * first dNSName subjectAltName; for a token, the domain part of its
 * rfc822Name.  Lower case.  WSE_ERR_NOT_FOUND when it has neither. */
wse_status wse_cert_domain(const wse_cert *cert, char *buf, size_t size);
/* The rfc822Name subjectAltName of a token certificate, lower case. */
wse_status wse_cert_mailbox(const wse_cert *cert, char *buf, size_t size);
/* 1 when cert is a CA certificate. */
int wse_cert_is_ca(const wse_cert *cert);
/* 1 when cert's public key equals key's public key. */
int wse_cert_matches_key(const wse_cert *cert, const wse_key *key);
/* New public key object for cert's subject key. */
wse_status wse_cert_public_key(const wse_cert *cert, wse_key **key_r);

/* ---- issuing ---- */

typedef enum wse_cert_kind {
	WSE_CERT_ROOT,		/* self-signed, CA:TRUE */
	WSE_CERT_DOMAIN_CA,	/* CA:TRUE pathlen:0, nameConstraints */
	WSE_CERT_SERVICE,	/* serverAuth+clientAuth, dNSName SANs */
	WSE_CERT_TOKEN,		/* clientAuth, one rfc822Name SAN */
} wse_cert_kind;

typedef struct wse_cert_profile {
	wse_cert_kind kind;
	/* ROOT: common name; DOMAIN_CA and SERVICE: the domain
	 * (lower-case DNS name); TOKEN: the mailbox (local@domain). */
	const char *name;
	/* SERVICE only: further host names for the dNSName SAN (the domain
	 * itself always comes first). */
	const char *const *hosts;
	size_t nhosts;
	int64_t not_before;
	int64_t not_after;
} wse_cert_profile;

/*
 * Issue a certificate for subject_key (its public half is used) according
 * to profile, signed by issuer_key.  issuer is NULL for a self-signed
 * root (then issuer_key must be subject_key).  Serial: 128 random bits.
 * This checks the profile's shape (names well formed, times ordered, the
 * end not after the issuer's notAfter, keys strong enough), not policy:
 * wse_pki_issue_token adds the policy checks.  A name longer than 64
 * characters (no room in a CN) gives a service or token certificate an
 * empty subject and a critical subjectAltName; a domain CA's domain has at
 * most 64 characters.
 */
wse_status wse_cert_issue(const wse_cert_profile *profile,
    const wse_key *subject_key, const wse_cert *issuer,
    const wse_key *issuer_key, wse_cert **cert_r);

/*
 * Issue a token certificate (paper Msg 7) for a client's public key and a
 * mailbox of the domain CA's own domain, valid from now - 60 s to
 * now + lifetime.  WSE_ERR_NOT_AUTHORIZED when the mailbox is not in the
 * CA's domain, or when domain_ca is not a domain CA of exactly the shape
 * wse_cert_issue gives one (one common name, its domain; critical name
 * constraints permitting DNS:<domain> and email:<domain> once each and
 * nothing else); WSE_ERR_INVALID for a malformed mailbox or lifetime <= 0,
 * WSE_ERR_UNSUPPORTED for a weak public key.  The lifetime never exceeds
 * the CA's own notAfter.
 */
wse_status wse_pki_issue_token(const wse_cert *domain_ca,
    const wse_key *domain_ca_key, const wse_key *client_pub,
    const char *mailbox, int64_t lifetime, int64_t now, wse_cert **cert_r);

/* CRL signed by issuer listing the given serials (hex), valid from
 * this_update to next_update. */
wse_status wse_crl_issue(const wse_cert *issuer, const wse_key *issuer_key,
    const char *const *serials_hex, size_t nserials, int64_t this_update,
    int64_t next_update, wse_crl **crl_r);
wse_status wse_crl_load(const char *path, wse_crl **crl_r);
wse_status wse_crl_save(const wse_crl *crl, const char *path);
void wse_crl_free(wse_crl **crl);

/* ---- verification ---- */

wse_status wse_trust_new(wse_trust **trust_r);
void wse_trust_free(wse_trust **trust);
/* Add a trusted root (a self-signed CA certificate). */
wse_status wse_trust_add_root(wse_trust *trust, const wse_cert *root);
/* Add a CRL (root's or a domain CA's).  Only the newest CRL of each
 * issuer is kept (an older one added later is ignored).  Adding roots or
 * CRLs must not run concurrently with wse_trust_verify: build a new
 * trust store to reload, and swap it in. */
wse_status wse_trust_add_crl(wse_trust *trust, const wse_crl *crl);
/*
 * For clients only: verify chains without CRLs (revocation unchecked).
 * A client that cannot obtain its peers' CRLs relies on its own server,
 * which always checks them; servers never call this.
 */
void wse_trust_skip_crls(wse_trust *trust);
/* 1 when wse_trust_skip_crls was called. */
int wse_trust_skips_crls(const wse_trust *trust);

/* Convenience: add every certificate of a PEM file as root / every CRL of
 * a PEM file. */
wse_status wse_trust_load_roots(wse_trust *trust, const char *path);
wse_status wse_trust_load_crls(wse_trust *trust, const char *path);

typedef enum wse_purpose {
	WSE_PURPOSE_SERVICE,	/* a server's certificate (EKU serverAuth) */
	WSE_PURPOSE_TOKEN,	/* a user's token (EKU clientAuth, mailbox) */
	WSE_PURPOSE_ANY,	/* chain only (CLI diagnostics) */
} wse_purpose;

/*
 * Verify leaf against the trusted roots at time now, with untrusted
 * intermediates chain[0..n-1]: every certificate's validity, signatures,
 * basic and name constraints, CRLs for every CA in the path
 * (X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL), and the purpose.
 * Returns WSE_OK, WSE_ERR_UNTRUSTED, WSE_ERR_REVOKED, WSE_ERR_CERT_EXPIRED,
 * WSE_ERR_CERT_NOT_YET_VALID or WSE_ERR_TEMPFAIL (a CRL missing, expired,
 * not yet valid, or not signed by its issuer: a revocation listed in such
 * a CRL does not count), with OpenSSL's reason on the error stack.
 */
wse_status wse_trust_verify(wse_trust *trust, const wse_cert *leaf,
    wse_cert *const *chain, size_t n, int64_t now, wse_purpose purpose);

/* ---- CA directories (driven by wsemail-admin) ---- */

/*
 * Layout under a PKI directory DIR:
 *   DIR/root/key.pem  cert.pem  crl.pem  revoked   (root CA)
 *   DIR/DOMAIN/ca-key.pem  ca.pem  crl.pem  revoked (domain CA)
 *   DIR/DOMAIN/service-key.pem  service.pem  chain.pem (service cert;
 *        chain.pem = service + domain CA, ready for TLS and signing)
 * "revoked" lists revoked serials, one hex serial a line.
 * Private keys are mode 0600.  A running server needs only its domain's
 * files and root/cert.pem + the CRLs, never root/key.pem.
 */

/* Create DIR/root: key, self-signed certificate (valid days), empty CRL. */
wse_status wse_ca_root_init(const char *dir, const char *cn, int days,
    int64_t now);
/* Issue DIR/DOMAIN's domain CA (valid days, default 365) under the root,
 * and its empty CRL. */
wse_status wse_ca_domain_issue(const char *dir, const char *domain, int days,
    int64_t now);
/* Issue DIR/DOMAIN's service certificate for domain + extra hosts, with
 * DIR/DOMAIN's CA, which must be a domain CA for DOMAIN as
 * wse_pki_issue_token requires (WSE_ERR_NOT_AUTHORIZED otherwise).  On any
 * failure nothing is written. */
wse_status wse_ca_service_issue(const char *dir, const char *domain,
    const char *const *hosts, size_t nhosts, int days, int64_t now);
/* Record serial (hex) as revoked by the CA "root" or DOMAIN, and reissue
 * that CA's CRL. */
wse_status wse_ca_revoke(const char *dir, const char *ca, const char *serial,
    int crl_days, int64_t now);
/* Reissue the CRL of CA "root" or DOMAIN, valid crl_days. */
wse_status wse_ca_crl(const char *dir, const char *ca, int crl_days,
    int64_t now);

#endif
