/*
 * pubsig.h - publisher signatures over downloadable plugin files (a
 * routed form type's Lua code, lib/luabox.h).
 *
 * A publisher holds an ECDSA P-256 key and a certificate for it
 * (self-signed is normal).  A party installing plugins lists, in its own
 * configuration, the publisher certificates it trusts: trust is by
 * pinning, not by a chain.
 *
 * The signature file (text, LF line ends, nothing else; usually named
 * after the plugin file plus ".sig"):
 *
 *	wsemail-plugin-signature 1
 *	name: expense
 *	version: 1
 *	sha256: <64 lower-case hex digits: SHA-256 of the plugin file>
 *	signature: <base64 of a DER ECDSA-Sig-Value>
 *	-----BEGIN CERTIFICATE-----
 *	<the publisher's certificate, PEM>
 *	-----END CERTIFICATE-----
 *
 * The signature is ECDSA P-256 with SHA-256 over the bytes of the first
 * four lines, their newlines included.  The first line names the format
 * and its version (and keeps these signatures apart from every other
 * use of a key); the signed part binds the plugin's name, its version
 * and its file's digest.  A name is 1 to 64 of [A-Za-z0-9._-], starting
 * with a letter or digit; a version 1 to 32 of [A-Za-z0-9.+~_-], starting
 * with a letter or digit.
 *
 * The trust rule: the certificate in the file must be byte-for-byte
 * (DER) one of the trusted publisher certificates -- not merely carry the
 * same public key, so that the validity period and subject the installer
 * pinned are the ones checked, and nothing in the file is believed before
 * that match.  It must be valid now, be meant for signing code (when it
 * has a keyUsage it includes digitalSignature; when it has an
 * extendedKeyUsage it includes codeSigning: a mail root, a domain CA, a
 * server or user certificate pinned by mistake does not sign plugins),
 * hold an EC P-256 key, and the signature must verify with that key.
 *
 * The signature has no time of signing: when a publisher certificate
 * expires, every plugin signed under it is refused until the publisher
 * re-signs under a new certificate and installers pin it.
 *
 * What a verified signature does not say: that the plugin is the one a
 * caller asked for.  The caller compares info->name (and, by its own
 * policy, info->version) with the form type it fetched, so that another
 * signed plugin of the same publisher, or an older version, cannot be
 * substituted.
 */
#ifndef WSE_PUBSIG_H
#define WSE_PUBSIG_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "pki.h"

#define WSE_PUBSIG_NAME_MAX	64
#define WSE_PUBSIG_VERSION_MAX	32
#define WSE_PUBSIG_SUBJECT_MAX	512
#define WSE_PUBSIG_FILE_MAX	(64u << 10)	/* a signature file */

typedef struct wse_pubsig_info {
	char name[WSE_PUBSIG_NAME_MAX + 1];
	char version[WSE_PUBSIG_VERSION_MAX + 1];
	char sha256[2 * 32 + 1];	/* as signed, lower-case hex */
	char publisher[WSE_PUBSIG_SUBJECT_MAX];	/* certificate subject */
	int64_t not_after;		/* of the publisher certificate */
} wse_pubsig_info;

/* 1 when s is a valid plugin name / version (rules above). */
int wse_pubsig_name_ok(const char *s);
int wse_pubsig_version_ok(const char *s);

/*
 * Append to out the signature file for the len bytes at file, named
 * name, version version, signed with key (a private EC P-256 key) under
 * cert (its certificate).  WSE_ERR_INVALID: bad name or version, cert
 * not key's, cert not meant for code signing; WSE_ERR_UNSUPPORTED: not
 * an EC P-256 key; WSE_ERR_CRYPTO; WSE_ERR_TOO_LARGE from out.
 */
wse_status wse_pubsig_sign(const void *file, size_t len, const char *name,
    const char *version, const wse_key *key, const wse_cert *cert,
    wse_buf *out);

/*
 * Verify the signature file sig (siglen bytes) over the len bytes at
 * file, trusting the publisher certificates trusted[0..ntrusted-1], at
 * time now (Unix seconds).  WSE_OK only when every check passes, in this
 * order:
 *	WSE_ERR_INVALID		not a signature file: unsigned (empty),
 *				malformed, too large, bad name or version,
 *				no or bad certificate
 *	WSE_ERR_UNSUPPORTED	another format version
 *	WSE_ERR_UNTRUSTED	the certificate is none of the trusted ones,
 *				or it is not meant for code signing
 *	WSE_ERR_CERT_EXPIRED, WSE_ERR_CERT_NOT_YET_VALID
 *				the publisher certificate, at now
 *	WSE_ERR_BAD_SIGNATURE	the signature does not verify (a signed
 *				line altered, another key), or the file's
 *				digest is not the signed one (file altered)
 * info_r (may be NULL) is cleared, then gets whatever was read before a
 * failure (name, version, sha256, publisher), for messages only: nothing
 * in it is vouched for unless the status is WSE_OK.
 */
wse_status wse_pubsig_verify(const void *file, size_t len, const char *sig,
    size_t siglen, wse_cert *const *trusted, size_t ntrusted, int64_t now,
    wse_pubsig_info *info_r);

/*
 * A new publisher: an EC P-256 key and a self-signed certificate with
 * subject CN=cn (1 to 64 characters, no control characters), valid from
 * not_before to not_after, CA:FALSE, keyUsage digitalSignature,
 * extendedKeyUsage codeSigning, 128-bit random serial.  The caller frees
 * both.  WSE_ERR_INVALID for a bad name or times.
 */
wse_status wse_pubsig_publisher_new(const char *cn, int64_t not_before,
    int64_t not_after, wse_key **key_r, wse_cert **cert_r);

#endif
