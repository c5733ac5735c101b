/*
 * wss.h - WS-Security: signing and the one verification function.
 *
 * Two profiles (ARCHITECTURE.md "Wire format"):
 *  - certificate: wsse:BinarySecurityToken(s) carry the signer's X.509
 *    certificate and its chain (not the root); XMLDSIG ECDSA-SHA256
 *    (RSA-SHA256 >= 2048 bits accepted on verification), exclusive C14N;
 *  - password: wsse:UsernameToken names the user; XMLDSIG HMAC-SHA256
 *    keyed with the password-derived key (PBKDF2-HMAC-SHA256).
 * The signature always covers Body, wsu:Timestamp, wsa:To, wsa:Action,
 * wsa:MessageID (and wsa:RelatesTo when present), each by wsu:Id, with
 * SHA-256 digests and exclusive C14N, and nothing else.
 *
 * Only this module includes xmlsec.  Its traps (SECURITY-NOTES) are dealt
 * with here: the verdict is ret == 0 && status == succeeded; the key is
 * chosen by us, never read from KeyInfo; only "#id" references to the
 * expected nodes; Ids counted and unique; reference and transform counts
 * checked before xmlsec runs; an algorithm allow-list; exactly one
 * ds:Signature, in wsse:Security; no comments or PIs in signed content;
 * the signed nodes are handed to the caller by pointer.
 */
#ifndef WSE_WSS_H
#define WSE_WSS_H

#include <stddef.h>
#include <stdint.h>

#include <libxml/tree.h>

#include "crypto.h"
#include "err.h"
#include "wselimits.h"
#include "pki.h"
#include "replay.h"
#include "soap.h"

/* Process-wide set-up of xmlsec (idempotent, thread-safe). */
wse_status wse_wss_init(void);

/*
 * Tests and benchmarks only: with on != 0, signing and verification on
 * the calling thread let libxml2's C14N walk the whole document for each
 * Reference (as before the subtree walk, docs/performance.md); the bytes
 * digested and every check are the same either way.  Returns the
 * previous setting (0 by default).
 */
int wse_wss_whole_document_c14n(int on);

typedef enum wse_profile {
	WSE_PROFILE_CERT,
	WSE_PROFILE_PASSWORD,
} wse_profile;

/* ---- signing ---- */

typedef struct wse_signer wse_signer;

/*
 * A certificate signer: key must hold the private half matching
 * chain[0] (the signer's certificate); chain[1..n-1] are the CAs up to,
 * not including, the root.  The signer borrows key and the certificates:
 * they must outlive it.
 */
wse_status wse_signer_new_cert(const wse_key *key, wse_cert *const *chain,
    size_t n, wse_signer **s_r);

/* A password signer for user with the password-derived key. */
wse_status wse_signer_new_password(const char *user,
    const uint8_t key[WSE_DERIVED_KEY_LEN], wse_signer **s_r);

/* Wipe and free; accepts NULL. */
void wse_signer_free(wse_signer **s);

/*
 * Sign env: adds wsse:Security (if absent) with a wsu:Timestamp
 * (Created = now, Expires = now + ttl), the tokens, wsu:Id attributes on
 * the covered nodes and the ds:Signature.  WSE_ERR_EXISTS when env is
 * already signed.
 */
wse_status wse_wss_sign(wse_envelope *env, const wse_signer *s, int64_t now,
    int64_t ttl);

/* ---- verification ---- */

/* Look up the derived key of user: WSE_OK, WSE_ERR_NOT_FOUND for no such
 * user, or another status when the store cannot answer. */
typedef wse_status (*wse_key_lookup_fn)(void *arg, const char *user,
    uint8_t key_r[WSE_DERIVED_KEY_LEN]);

typedef struct wse_verify_opts {
	wse_profile profile;
	const wse_limits *limits;
	wse_replay *replay;
	int64_t now;
	/* certificate profile */
	wse_trust *trust;
	wse_purpose purpose;		/* SERVICE or TOKEN */
	const char *expected_domain;	/* the claimed sender's domain; NULL
					 * only for WSE_PURPOSE_TOKEN: the
					 * token speaks for its own domain */
	/* password profile */
	wse_key_lookup_fn lookup;
	void *lookup_arg;
	/* both: when set, the signed wsa:To must equal it */
	const char *expected_to;
	/* both: when set, the verifier only looks the MessageID up; the
	 * caller inserts it (wse_verified.message_id_s) in the same
	 * transaction that stores the message, so that a nonce is never
	 * consumed by a message that was not kept. */
	int caller_inserts_nonce;
} wse_verify_opts;

/* What verification proved.  Node pointers are borrowed from the
 * envelope; strings are owned and freed by wse_verified_clear. */
typedef struct wse_verified {
	wse_profile profile;
	xmlNodePtr body;
	xmlNodePtr timestamp;
	xmlNodePtr to;
	xmlNodePtr action;
	xmlNodePtr message_id;
	xmlNodePtr relates_to;		/* NULL when the message has none */
	char *to_s, *action_s, *message_id_s, *relates_to_s;
	int64_t created, expires;
	int64_t replay_expires;		/* keep the nonce until then */
	char *user;			/* password profile */
	wse_cert *signer;		/* certificate profile */
	char *signer_domain;		/* certificate profile */
	char *signer_mailbox;		/* token certificates */
} wse_verified;

/*
 * Verify env in the paper's order and fill *out.
 * Certificate profile: (1) Timestamp freshness (WSE_ERR_EXPIRED /
 * WSE_ERR_FUTURE), (2) signer certificate validity interval
 * (WSE_ERR_CERT_EXPIRED / _NOT_YET_VALID), (3) replay look-up
 * (WSE_ERR_REPLAY), (4) signature (WSE_ERR_BAD_SIGNATURE,
 * WSE_ERR_UNSUPPORTED), (5) chain trust with CRLs and name constraints
 * (WSE_ERR_UNTRUSTED, _REVOKED, _TEMPFAIL, ...) and signer domain ==
 * expected_domain (WSE_ERR_DOMAIN_MISMATCH).
 * Password profile: (1) freshness, (2) replay look-up, (3) MAC: no such
 * user and a wrong MAC both give WSE_ERR_NOT_AUTHORIZED after the same
 * work.
 * Structural problems give WSE_ERR_PARSE / _INVALID / _TOO_LARGE /
 * _BAD_SIGNATURE / _UNSUPPORTED before any cryptography.  Then the
 * expected_to check (WSE_ERR_NOT_AUTHORIZED).  Only when everything
 * passed is the MessageID inserted into the replay cache (atomic: a
 * concurrent copy gets WSE_ERR_REPLAY; not at all with
 * caller_inserts_nonce); any failure leaves the cache as it was.  On
 * failure *out is cleared.  out->replay_expires tells until when the
 * nonce must be remembered.
 */
wse_status wse_wss_verify(wse_envelope *env, const wse_verify_opts *opts,
    wse_verified *out);

/* Free what *v owns and zero it. */
void wse_verified_clear(wse_verified *v);

/* ---- one signed element (routed forms, docs/forms.md) ---- */

/*
 * Every attribute named Id/ID/id in any namespace (xml:id included) of
 * doc must carry a distinct value: WSE_ERR_BAD_SIGNATURE names the first
 * duplicate, WSE_ERR_TOO_LARGE past max_nodes elements.  Run it over a
 * whole untrusted document before wse_wss_verify_node.
 */
wse_status wse_wss_check_ids(xmlDocPtr doc, unsigned long max_nodes);

/*
 * SHA-256 of the exclusive C14N (without comments) of the subtree at
 * elem: exactly what a Reference "#id" to elem digests.
 */
wse_status wse_wss_digest_node(xmlNodePtr elem,
    uint8_t out[WSE_SHA256_LEN]);

/*
 * Sign one element: elem gets wsu:Id="<id_prefix>-<16 hex>" (it must
 * have none yet) and a ds:Signature is appended as the last child of
 * sig_parent (which must not be inside elem): exclusive C14N, one
 * Reference "#id" with the exclusive C14N transform and SHA-256,
 * ECDSA-SHA256 (RSA-SHA256 for RSA keys), and no KeyInfo: the verifier
 * takes the key from a certificate it has chosen, never from the
 * signature.  key must be private, EC P-256 or RSA >= 2048 bits.
 * digest_r (may be NULL) gets the Reference's digest, i.e.
 * wse_wss_digest_node(elem).
 */
wse_status wse_wss_sign_node(xmlNodePtr elem, const char *id_prefix,
    xmlNodePtr sig_parent, const wse_key *key,
    uint8_t digest_r[WSE_SHA256_LEN]);

/*
 * Verify the ds:Signature sig over elem with the public key of signer
 * (the caller chose the certificate and checks its chain itself).
 * Before xmlsec runs: sig holds exactly SignedInfo and SignatureValue
 * (no KeyInfo, no Object); SignedInfo holds exclusive C14N, ECDSA- or
 * RSA-SHA256, and exactly one Reference whose URI is "#" + elem's wsu:Id,
 * with exactly one transform, exclusive C14N without InclusiveNamespaces,
 * and SHA-256; no comment or PI in elem or sig; the key is P-256 or
 * RSA >= 2048 bits.  The verdict is ret == 0 && status == succeeded, and
 * then the one processed reference must have resolved to elem itself.
 * The caller must have run wse_wss_check_ids over the document.  On
 * success digest_r (may be NULL) gets the verified Reference digest,
 * equal to wse_wss_digest_node(elem) without a second C14N pass.
 * WSE_OK, or WSE_ERR_BAD_SIGNATURE / WSE_ERR_UNSUPPORTED /
 * WSE_ERR_TOO_LARGE with the reason on the error stack.
 */
wse_status wse_wss_verify_node(xmlNodePtr sig, xmlNodePtr elem,
    const wse_cert *signer, const wse_limits *lim,
    uint8_t digest_r[WSE_SHA256_LEN]);

#endif
