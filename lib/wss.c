/*
 * wss.c - WS-Security signing and verification over xmlsec1 (OpenSSL).
 *
 * SECURITY: everything here handles attacker-controlled documents.  No
 * xmlsec call sees a document before the structural checks below have
 * bounded it (one Signature in wsse:Security, a fixed set of "#id"
 * references to the nodes we expect, allow-listed algorithms, unique Ids,
 * no comments in signed content); xmlsec never chooses a key, never
 * follows a URI and never runs a transform outside the allow-list; its
 * verdict is read as ret == 0 && status == succeeded, and the signed nodes
 * are then re-checked by pointer.  The one-element functions at the end
 * (routed forms) apply the same rules to a single "#id" reference, with
 * no KeyInfo at all: the caller hands us the certificate.
 */
#include "wss.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/uri.h>
#include <libxml/valid.h>

#include <xmlsec/xmlsec.h>
#include <xmlsec/crypto.h>
#include <xmlsec/errors.h>
#include <xmlsec/keys.h>
#include <xmlsec/membuf.h>
#include <xmlsec/templates.h>
#include <xmlsec/transforms.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmltree.h>
#include <xmlsec/openssl/evp.h>

#include "pki-private.h"
#include "xml.h"

#define ALG_EXC_C14N "http://www.w3.org/2001/10/xml-exc-c14n#"
#define ALG_SHA256 "http://www.w3.org/2001/04/xmlenc#sha256"
#define ALG_ECDSA_SHA256 "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
#define ALG_RSA_SHA256 "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
#define ALG_HMAC_SHA256 "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"

#define WSS_X509V3 "http://docs.oasis-open.org/wss/2004/01/" \
	"oasis-200401-wss-x509-token-profile-1.0#X509v3"
#define WSS_BASE64 "http://docs.oasis-open.org/wss/2004/01/" \
	"oasis-200401-wss-soap-message-security-1.0#Base64Binary"
#define WSS_USERNAME "http://docs.oasis-open.org/wss/2004/01/" \
	"oasis-200401-wss-username-token-profile-1.0#UsernameToken"

#define MAX_CHAIN 16
#define MAX_NAME 256

/* The covered nodes, in a fixed order. */
enum { C_BODY, C_TS, C_TO, C_ACTION, C_MSGID, C_RELATES, C_UT, C__N };

static const char *const cover_prefix[C__N] = {
	"body", "ts", "to", "action", "msgid", "relates", "ut",
};

struct wse_signer {
	wse_profile profile;
	const wse_key *key;		/* certificate profile (borrowed) */
	const wse_cert *chain[MAX_CHAIN];	/* borrowed */
	size_t nchain;
	char *bst_b64[MAX_CHAIN];	/* base64 DER of chain[i], made once */
	char *user;			/* password profile */
	uint8_t mac_key[WSE_DERIVED_KEY_LEN];
};

/* ---- initialisation and error capture ---- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static wse_status init_status = WSE_ERR_INTERNAL;
static _Thread_local char xmlsec_last[256];

static void
xmlsec_error_cb(const char *file, int line, const char *func,
    const char *obj, const char *subj, int reason, const char *msg)
{
	(void)file; (void)line; (void)obj;
	(void)snprintf(xmlsec_last, sizeof(xmlsec_last), "%s: %s (%d: %s)",
	    func ? func : "?", subj ? subj : "", reason, msg ? msg : "");
}

static void
quiet_generic(void *ctx, const char *msg, ...)
{
	(void)ctx; (void)msg;
}

static void
quiet_structured(void *ctx, xmlErrorPtr err)
{
	(void)ctx; (void)err;
}

/* libxml2's error handlers are per thread: silence them on this one. */
static void
quiet_thread(void)
{
	xmlSetGenericErrorFunc(NULL, quiet_generic);
	xmlSetStructuredErrorFunc(NULL, quiet_structured);
}

static void
do_init(void)
{
	if (wse_xml_init() != WSE_OK)
		return;
	xmlSecErrorsSetCallback(xmlsec_error_cb);
	if (xmlSecInit() < 0 || xmlSecCheckVersion() != 1 ||
	    xmlSecCryptoAppInit(NULL) < 0 || xmlSecCryptoInit() < 0)
		return;
	init_status = WSE_OK;
}

wse_status
wse_wss_init(void)
{
	pthread_once(&init_once, do_init);
	quiet_thread();
	if (init_status != WSE_OK)
		return wse_err(WSE_ERR_INTERNAL,
		    "cannot initialise xmlsec: %s", xmlsec_last);
	return WSE_OK;
}

/* ---- small helpers ---- */

/* "<prefix>-<16 hex digits of rnd[0..7]>" */
static void
format_id(const char *prefix, const uint8_t rnd[8], char *out, size_t size)
{
	char hex[17];

	wse_hex(rnd, 8, hex);
	(void)snprintf(out, size, "%s-%s", prefix, hex);
}

static wse_status
make_id(const char *prefix, char *out, size_t size)
{
	uint8_t rnd[8];
	wse_status st;

	if ((st = wse_random(rnd, sizeof(rnd))) != WSE_OK)
		return st;
	format_id(prefix, rnd, out, size);
	return WSE_OK;
}

static xmlNsPtr
find_ns(xmlNodePtr node, const char *uri, const char *prefix)
{
	xmlNsPtr ns = xmlSearchNsByHref(node->doc, node, BAD_CAST uri);

	if (ns == NULL)
		ns = xmlNewNs(node, BAD_CAST uri, BAD_CAST prefix);
	return ns;
}

static wse_status
set_wsu_id(xmlNodePtr node, const char *id)
{
	xmlNsPtr wsu = find_ns(node, WSE_NS_WSU, "wsu");
	xmlAttrPtr a;

	if (wsu == NULL ||
	    (a = xmlSetNsProp(node, wsu, BAD_CAST "Id", BAD_CAST id)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot set wsu:Id");
	if (xmlAddID(NULL, node->doc, BAD_CAST id, a) == NULL)
		return wse_err(WSE_ERR_INTERNAL, "cannot register Id %s", id);
	return WSE_OK;
}

static xmlNodePtr
new_child(xmlNodePtr parent, const char *nsuri, const char *prefix,
    const char *local, const char *text)
{
	xmlNsPtr ns = find_ns(parent, nsuri, prefix);
	xmlNodePtr n;

	if (ns == NULL || (n = xmlNewChild(parent, ns, BAD_CAST local,
	    NULL)) == NULL)
		return NULL;
	if (text != NULL && xmlAddChild(n, xmlNewText(BAD_CAST text)) == NULL)
		return NULL;
	return n;
}

/* An xmlsec key for our own key material (EVP or HMAC bytes). */
static wse_status
xmlsec_key_evp(const wse_key *key, xmlSecKeyPtr *k_r)
{
	EVP_PKEY *pk = wse_key_evp(key);
	xmlSecKeyDataPtr data;
	xmlSecKeyPtr k;

	*k_r = NULL;
	if (pk == NULL || EVP_PKEY_up_ref(pk) != 1)
		return wse_err(WSE_ERR_CRYPTO, "no key");
	if ((data = xmlSecOpenSSLEvpKeyAdopt(pk)) == NULL) {
		EVP_PKEY_free(pk);
		return wse_err(WSE_ERR_CRYPTO, "xmlsec refused the key: %s",
		    xmlsec_last);
	}
	if ((k = xmlSecKeyCreate()) == NULL ||
	    xmlSecKeySetValue(k, data) < 0) {
		xmlSecKeyDataDestroy(data);
		if (k != NULL)
			xmlSecKeyDestroy(k);
		return wse_err(WSE_ERR_NOMEM, "cannot create xmlsec key");
	}
	*k_r = k;
	return WSE_OK;
}

static wse_status
xmlsec_key_hmac(const uint8_t key[WSE_DERIVED_KEY_LEN], xmlSecKeyPtr *k_r)
{
	*k_r = xmlSecKeyReadMemory(xmlSecKeyDataHmacId, key,
	    WSE_DERIVED_KEY_LEN);
	if (*k_r == NULL)
		return wse_err(WSE_ERR_CRYPTO, "cannot create HMAC key: %s",
		    xmlsec_last);
	return WSE_OK;
}

/* ---- canonicalising only the referenced subtree ----
 *
 * For every node set xmlsec hands it (each Reference, then SignedInfo),
 * libxml2's xmlC14NExecute walks the whole document from doc->children,
 * asking xmlsec's node set about every element, attribute and namespace
 * node and parsing every namespace URI; only the nodes of the set produce
 * output.  That walk was ~45% of signing and verifying an envelope.
 *
 * Our node sets are always one element's subtree: a "#id" Reference
 * resolved by xmlGetID (USE_VISA3D_HACK: the subtree without comments),
 * or SignedInfo.  Under exclusive C14N, a node outside that subtree
 * produces no output and leaves no state behind: an invisible element
 * adds nothing to the rendered-namespace stack (its namespace, attribute
 * and InclusiveNamespaces nodes are all outside the set), and the apex's
 * in-scope namespaces are found through its parent pointers, not the
 * walk.  So, just before xmlsec pushes a node set through the chain (its
 * pre-execute callback), we let the walk start at the apex and stop after
 * it: doc->children = apex, apex->next = NULL, undone at the next
 * callback and whenever xmlsec returns.  xmlsec still resolves the Id,
 * canonicalises with libxml2, digests, and compares or writes every
 * DigestValue and the SignatureValue itself; the bytes are the same.
 *
 * We narrow only when the chain is exactly Id look-up -> exclusive C14N
 * -> [xmlsec's stored copy] -> SHA-256 -> [base64 when signing] ->
 * [xmlsec's result buffer] and the Id names one of the nodes the caller
 * expects; anything else keeps the whole-document walk (and the caller's
 * checks refuse it as before).  Were the node xmlsec resolves ever
 * outside the apex's subtree, the output would lack it and the digest
 * would fail: closed, never open.  bench_wss --equiv checks both walks
 * give the same verdicts, on valid and on mutated messages.
 *
 * The whole-document walk also fails on a relative namespace URI or a
 * node type C14N refuses anywhere in the document; c14n_doc_ok makes the
 * same decision once, before xmlsec runs.
 */

struct c14n_scope {
	xmlDocPtr doc;
	xmlNodePtr const *nodes;	/* the elements a Reference may name */
	size_t nnodes;
	/* the one element of a plain chain (SignedInfo, or the element
	 * of wse_wss_digest_node) */
	xmlNodePtr signed_info;
	xmlNodePtr apex;		/* while narrowed: what to restore */
	xmlNodePtr saved_children, saved_next;
};

/* Tests and benchmarks: 1 = this thread keeps libxml2's whole-document
 * walk (wse_wss_whole_document_c14n). */
static _Thread_local int c14n_whole_doc;

int
wse_wss_whole_document_c14n(int on)
{
	int old = c14n_whole_doc;

	c14n_whole_doc = on != 0;
	return old;
}

static void
scope_restore(struct c14n_scope *sc)
{
	if (sc->apex == NULL)
		return;
	sc->apex->next = sc->saved_next;
	sc->doc->children = sc->saved_children;
	sc->apex = NULL;
}

static void
scope_narrow(struct c14n_scope *sc, xmlNodePtr apex)
{
	scope_restore(sc);
	if (c14n_whole_doc || apex == NULL || apex->doc != sc->doc ||
	    apex->type != XML_ELEMENT_NODE)
		return;
	sc->saved_children = sc->doc->children;
	sc->saved_next = apex->next;
	sc->doc->children = apex;
	apex->next = NULL;
	sc->apex = apex;
}

/* Pre-execute callback of each Reference's transform chain. */
static int
ref_pre_exec(xmlSecTransformCtxPtr tctx)
{
	struct c14n_scope *sc = tctx->userData;
	xmlSecTransformPtr t;
	xmlAttrPtr a;
	size_t i;

	if (sc == NULL)
		return 0;
	scope_restore(sc);
	t = tctx->first;
	if (t == NULL || t->id != xmlSecTransformVisa3DHackId ||
	    (t = t->next) == NULL || t->id != xmlSecTransformExclC14NId)
		return 0;
	t = t->next;
	if (t != NULL && t->id == xmlSecTransformMemBufId)
		t = t->next;
	if (t == NULL || t->id != xmlSecTransformSha256Id)
		return 0;
	t = t->next;
	if (t != NULL && t->id == xmlSecTransformBase64Id)
		t = t->next;
	if (t != NULL && t->id == xmlSecTransformMemBufId)
		t = t->next;	/* where xmlsec collects the result */
	if (t != NULL || tctx->uri == NULL || tctx->uri[0] != '\0' ||
	    tctx->xptrExpr == NULL || tctx->xptrExpr[0] != '#')
		return 0;
	/* The very look-up the Id transform will make. */
	if ((a = xmlGetID(sc->doc, tctx->xptrExpr + 1)) == NULL ||
	    a->parent == NULL)
		return 0;
	for (i = 0; i < sc->nnodes; i++)
		if (sc->nodes[i] == a->parent) {
			scope_narrow(sc, a->parent);
			break;
		}
	return 0;
}

/* Pre-execute callback of the SignedInfo chain. */
static int
si_pre_exec(xmlSecTransformCtxPtr tctx)
{
	struct c14n_scope *sc = tctx->userData;

	if (sc == NULL)
		return 0;
	scope_restore(sc);
	if (tctx->first != NULL && tctx->first->id ==
	    xmlSecTransformExclC14NId)
		scope_narrow(sc, sc->signed_info);
	return 0;
}

/*
 * 1 when libxml2's whole-document C14N walk would not fail on doc for a
 * reason outside the node set: every namespace URI of every element is
 * empty or absolute (xmlC14NCheckForRelativeNamespaces), and every node
 * is of a type C14N processes or ignores.
 */
static int
c14n_doc_ok(xmlDocPtr doc)
{
	const xmlChar *good[8];
	size_t ngood = 0, i;
	xmlNodePtr node = doc->children;
	xmlNsPtr ns;

	while (node != NULL) {
		switch (node->type) {
		case XML_ELEMENT_NODE:
			for (ns = node->nsDef; ns != NULL; ns = ns->next) {
				xmlURIPtr uri;
				int ok;

				if (xmlStrlen(ns->href) == 0)
					continue;
				for (i = 0; i < ngood; i++)
					if (xmlStrEqual(good[i], ns->href))
						break;
				if (i < ngood)
					continue;
				uri = xmlParseURI((const char *)ns->href);
				if (uri == NULL)
					return 0;
				ok = uri->scheme != NULL &&
				    uri->scheme[0] != '\0';
				xmlFreeURI(uri);
				if (!ok)
					return 0;
				if (ngood < sizeof(good) / sizeof(good[0]))
					good[ngood++] = ns->href;
			}
			break;
		case XML_TEXT_NODE:
		case XML_CDATA_SECTION_NODE:
		case XML_PI_NODE:
		case XML_COMMENT_NODE:
		case XML_DOCUMENT_NODE:
		case XML_DOCUMENT_FRAG_NODE:
		case XML_HTML_DOCUMENT_NODE:
		case XML_DOCUMENT_TYPE_NODE:
		case XML_NOTATION_NODE:
		case XML_DTD_NODE:
		case XML_ELEMENT_DECL:
		case XML_ATTRIBUTE_DECL:
		case XML_ENTITY_DECL:
		case XML_XINCLUDE_START:
		case XML_XINCLUDE_END:
			break;
		default:
			return 0;
		}
		/* C14N descends into elements and document nodes only. */
		if ((node->type == XML_ELEMENT_NODE ||
		    node->type == XML_DOCUMENT_NODE ||
		    node->type == XML_DOCUMENT_FRAG_NODE ||
		    node->type == XML_HTML_DOCUMENT_NODE) &&
		    node->children != NULL) {
			node = node->children;
			continue;
		}
		while (node != NULL && node->next == NULL)
			node = node->parent == (xmlNodePtr)doc ? NULL :
			    node->parent;
		if (node != NULL)
			node = node->next;
	}
	return 1;
}

/* Hook sc into ctx (nodes: the elements the references may name). */
static int
scope_attach(struct c14n_scope *sc, xmlSecDSigCtxPtr ctx, xmlNodePtr sig,
    xmlNodePtr const *nodes, size_t nnodes)
{
	memset(sc, 0, sizeof(*sc));
	sc->doc = sig->doc;
	sc->nodes = nodes;
	sc->nnodes = nnodes;
	sc->signed_info = wse_xml_first_elem(sig);
	if (!c14n_whole_doc && !c14n_doc_ok(sc->doc))
		return -1;
	ctx->userData = sc;
	ctx->referencePreExecuteCallback = ref_pre_exec;
	ctx->transformCtx.userData = sc;
	ctx->transformCtx.preExecCallback = si_pre_exec;
	return 0;
}

/* Undo any narrowing and forget sc (it lives on the caller's stack). */
static void
scope_detach(struct c14n_scope *sc, xmlSecDSigCtxPtr ctx)
{
	xmlSecSize i;

	scope_restore(sc);
	ctx->userData = NULL;
	ctx->referencePreExecuteCallback = NULL;
	ctx->transformCtx.userData = NULL;
	ctx->transformCtx.preExecCallback = NULL;
	for (i = 0; i < xmlSecPtrListGetSize(&ctx->signedInfoReferences);
	    i++) {
		xmlSecDSigReferenceCtxPtr r = xmlSecPtrListGetItem(
		    &ctx->signedInfoReferences, i);

		if (r != NULL) {
			r->transformCtx.userData = NULL;
			r->transformCtx.preExecCallback = NULL;
		}
	}
}

/*
 * Run xmlsec's signing on the template sig with key (always consumed).
 * "#id" references are resolved by a direct Id look-up rather than an
 * XPointer evaluation per reference (see xmlsec_verify); each is to one
 * of nodes, canonicalised over its own subtree only (see above).
 */
static wse_status
xmlsec_sign(xmlSecKeyPtr key, xmlNodePtr sig, xmlNodePtr const *nodes,
    size_t nnodes)
{
	xmlSecDSigCtxPtr ctx;
	struct c14n_scope sc;
	wse_status st = WSE_OK;

	if ((ctx = xmlSecDSigCtxCreate(NULL)) == NULL) {
		xmlSecKeyDestroy(key);
		return wse_err(WSE_ERR_NOMEM, "cannot create signature "
		    "context");
	}
	ctx->signKey = key;
	ctx->enabledReferenceUris = xmlSecTransformUriTypeSameDocument;
	ctx->flags = XMLSEC_DSIG_FLAGS_USE_VISA3D_HACK;
	xmlsec_last[0] = '\0';
	if (scope_attach(&sc, ctx, sig, nodes, nnodes) < 0) {
		xmlSecDSigCtxDestroy(ctx);
		return wse_err(WSE_ERR_CRYPTO, "signing failed: the document "
		    "cannot be canonicalised (relative namespace URI)");
	}
	if (xmlSecDSigCtxSign(ctx, sig) < 0 ||
	    ctx->status != xmlSecDSigStatusSucceeded)
		st = wse_err(WSE_ERR_CRYPTO, "signing failed: %s",
		    xmlsec_last);
	scope_detach(&sc, ctx);
	xmlSecDSigCtxDestroy(ctx);
	return st;
}

/*
 * The one call of xmlSecDSigCtxVerify (SECURITY-NOTES 1, 2, 3, 6): verify
 * sig with key (always consumed; chosen by us, never read from KeyInfo),
 * same-document references only, the algorithm allow-list (exclusive
 * C14N, SHA-256, and ECDSA/RSA-SHA256 or, when hmac, HMAC-SHA256); the
 * verdict is ret == 0 && status == succeeded.  On WSE_OK *ctx_r is the
 * context, with the references it processed, for the caller to prove
 * they name the nodes it will read; the caller destroys it.
 *
 * USE_VISA3D_HACK makes xmlsec resolve a "#id" reference with xmlGetID
 * (the Ids the caller registered, each checked to be the covered node)
 * instead of building an XPointer context and evaluating
 * xpointer(id('...')) per reference: the same node set (the element's
 * subtree without comments), ~40 us less per envelope.  Callers let
 * only the exact form "#<expected id>" reach xmlsec, so no other URI
 * syntax is involved.
 */
static wse_status
xmlsec_verify(xmlSecKeyPtr key, int hmac, xmlNodePtr sig,
    xmlNodePtr const *nodes, size_t nnodes, xmlSecDSigCtxPtr *ctx_r)
{
	xmlSecDSigCtxPtr ctx;
	struct c14n_scope sc;
	wse_status st;

	*ctx_r = NULL;
	if ((ctx = xmlSecDSigCtxCreate(NULL)) == NULL) {
		xmlSecKeyDestroy(key);
		return wse_err(WSE_ERR_NOMEM, "cannot create signature "
		    "context");
	}
	ctx->flags = XMLSEC_DSIG_FLAGS_STORE_SIGNEDINFO_REFERENCES |
	    XMLSEC_DSIG_FLAGS_IGNORE_MANIFESTS |
	    XMLSEC_DSIG_FLAGS_USE_VISA3D_HACK;
	ctx->enabledReferenceUris = xmlSecTransformUriTypeSameDocument;
	/* signKey is set and there is no keys manager: xmlsec never reads
	 * KeyInfo; should it try, it may not follow RetrievalMethod. */
	ctx->keyInfoReadCtx.maxRetrievalMethodLevel = 0;
	ctx->signKey = key;
	if (xmlSecDSigCtxEnableReferenceTransform(ctx,
	    xmlSecTransformExclC14NId) < 0 ||
	    xmlSecDSigCtxEnableReferenceTransform(ctx,
	    xmlSecTransformSha256Id) < 0 ||
	    xmlSecDSigCtxEnableSignatureTransform(ctx,
	    xmlSecTransformExclC14NId) < 0 ||
	    (!hmac ?
	    (xmlSecDSigCtxEnableSignatureTransform(ctx,
	    xmlSecTransformEcdsaSha256Id) < 0 ||
	    xmlSecDSigCtxEnableSignatureTransform(ctx,
	    xmlSecTransformRsaSha256Id) < 0) :
	    xmlSecDSigCtxEnableSignatureTransform(ctx,
	    xmlSecTransformHmacSha256Id) < 0)) {
		st = wse_err(WSE_ERR_INTERNAL, "cannot set allow-list");
		goto fail;
	}
	xmlsec_last[0] = '\0';
	if (scope_attach(&sc, ctx, sig, nodes, nnodes) < 0) {
		st = wse_err(WSE_ERR_BAD_SIGNATURE,
		    "signature could not be processed: the document cannot "
		    "be canonicalised (relative namespace URI)");
		goto fail;
	}
	if (xmlSecDSigCtxVerify(ctx, sig) < 0) {
		scope_detach(&sc, ctx);
		st = wse_err(WSE_ERR_BAD_SIGNATURE,
		    "signature could not be processed: %s", xmlsec_last);
		goto fail;
	}
	scope_detach(&sc, ctx);
	if (ctx->status != xmlSecDSigStatusSucceeded) {
		st = wse_err(WSE_ERR_BAD_SIGNATURE, "signature does not verify");
		goto fail;
	}
	*ctx_r = ctx;
	return WSE_OK;
fail:
	xmlSecDSigCtxDestroy(ctx);
	return st;
}

/* Register the wsu:Id id of elem as an Id of its document, once, and
 * check it names elem (SECURITY-NOTES 4: never xmlSecAddIDs). */
static wse_status
register_id(xmlNodePtr elem, const char *id)
{
	xmlAttrPtr a = xmlHasNsProp(elem, BAD_CAST "Id", BAD_CAST WSE_NS_WSU);

	if (a == NULL)
		return wse_err(WSE_ERR_BAD_SIGNATURE, "lost Id");
	if (xmlGetID(elem->doc, BAD_CAST id) == NULL &&
	    xmlAddID(NULL, elem->doc, BAD_CAST id, a) == NULL)
		return wse_err(WSE_ERR_BAD_SIGNATURE,
		    "cannot register Id %.64s", id);
	if (xmlGetID(elem->doc, BAD_CAST id) != a)
		return wse_err(WSE_ERR_BAD_SIGNATURE,
		    "Id %.64s names another node", id);
	return WSE_OK;
}

/* ---- signers ---- */

/* The base64 text of cert's DER, for its BinarySecurityToken. */
static wse_status
cert_b64(const wse_cert *cert, char **b64_r)
{
	wse_buf *der = NULL, *b64 = NULL;
	wse_status st;

	*b64_r = NULL;
	if ((der = wse_buf_new(64 * 1024)) == NULL ||
	    (b64 = wse_buf_new(128 * 1024)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto out;
	}
	if ((st = wse_cert_to_der(cert, der)) != WSE_OK ||
	    (st = wse_base64_encode(wse_buf_data(der), wse_buf_len(der),
	    b64)) != WSE_OK)
		goto out;
	if ((*b64_r = wse_buf_steal(b64, NULL)) == NULL)
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
out:
	wse_buf_free(&der);
	wse_buf_free(&b64);
	return st;
}

wse_status
wse_signer_new_cert(const wse_key *key, wse_cert *const *chain, size_t n,
    wse_signer **s_r)
{
	wse_signer *s;
	wse_status st;
	size_t i;

	*s_r = NULL;
	if (n == 0 || n > MAX_CHAIN)
		return wse_err(WSE_ERR_INVALID, "signer chain of %zu", n);
	if (!wse_key_is_private(key))
		return wse_err(WSE_ERR_INVALID, "signing key is not private");
	if (!wse_cert_matches_key(chain[0], key))
		return wse_err(WSE_ERR_INVALID,
		    "signing key does not match the certificate");
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate signer");
	s->profile = WSE_PROFILE_CERT;
	s->key = key;
	for (i = 0; i < n; i++)
		s->chain[i] = chain[i];
	s->nchain = n;
	/* The tokens' text is the same in every message: encode it once
	 * (the certificates are borrowed and never change). */
	for (i = 0; i < n; i++)
		if ((st = cert_b64(chain[i], &s->bst_b64[i])) != WSE_OK) {
			wse_signer_free(&s);
			return st;
		}
	*s_r = s;
	return WSE_OK;
}

/* A user name for UsernameToken: 1..255 bytes, no control characters. */
static wse_status
check_user(const char *user)
{
	size_t n = user ? strlen(user) : 0;
	size_t i;

	if (n == 0 || n >= MAX_NAME)
		return wse_err(WSE_ERR_INVALID, "bad user name length");
	for (i = 0; i < n; i++)
		if ((unsigned char)user[i] < 0x20 || user[i] == 0x7f)
			return wse_err(WSE_ERR_INVALID,
			    "control character in user name");
	return WSE_OK;
}

wse_status
wse_signer_new_password(const char *user,
    const uint8_t key[WSE_DERIVED_KEY_LEN], wse_signer **s_r)
{
	wse_signer *s;
	wse_status st;

	*s_r = NULL;
	if ((st = check_user(user)) != WSE_OK)
		return st;
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->user = strdup(user)) == NULL) {
		free(s);
		return wse_err(WSE_ERR_NOMEM, "cannot allocate signer");
	}
	s->profile = WSE_PROFILE_PASSWORD;
	memcpy(s->mac_key, key, WSE_DERIVED_KEY_LEN);
	*s_r = s;
	return WSE_OK;
}

void
wse_signer_free(wse_signer **sp)
{
	wse_signer *s;
	size_t i;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	for (i = 0; i < MAX_CHAIN; i++)
		free(s->bst_b64[i]);
	free(s->user);
	wse_memzero(s, sizeof(*s));
	free(s);
	*sp = NULL;
}

/* ---- signing ---- */

/* Add a BinarySecurityToken with the base64 certificate b64 under sec,
 * with the wsu:Id id. */
static wse_status
add_bst(xmlNodePtr sec, const char *b64, const char *id)
{
	xmlNodePtr bst;

	if ((bst = new_child(sec, WSE_NS_WSSE, "wsse",
	    "BinarySecurityToken", b64)) == NULL ||
	    xmlSetProp(bst, BAD_CAST "ValueType", BAD_CAST WSS_X509V3) ==
	    NULL || xmlSetProp(bst, BAD_CAST "EncodingType",
	    BAD_CAST WSS_BASE64) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot add token");
	return set_wsu_id(bst, id);
}

wse_status
wse_wss_sign(wse_envelope *env, const wse_signer *s, int64_t now,
    int64_t ttl)
{
	xmlNodePtr sec, ts, sig = NULL, ref, ki, str, r, cover[C__N] = { 0 };
	xmlSecKeyPtr key = NULL;
	wse_status st;
	char ids[C__N][40], tok_id[40], uri[48], tbuf[21];
	/* 8 random bytes per wsu:Id: the covered nodes', then the tokens' */
	uint8_t rnd[8 * (C__N + MAX_CHAIN)];
	size_t i;
	int c;

	if ((st = wse_wss_init()) != WSE_OK)
		return st;
	if (ttl <= 0)
		return wse_err(WSE_ERR_INVALID, "timestamp lifetime <= 0");
	if ((sec = wse_env_security(env, 1)) == NULL)
		return wse_err(WSE_ERR_INVALID, "envelope has no Header");
	if (wse_xml_count_children(sec, WSE_NS_DS, "Signature") != 0 ||
	    wse_xml_count_children(sec, WSE_NS_WSU, "Timestamp") != 0)
		return wse_err(WSE_ERR_EXISTS, "envelope is already signed");

	cover[C_BODY] = wse_env_body(env);
	cover[C_TO] = wse_env_header_block(env, WSE_NS_WSA, "To");
	cover[C_ACTION] = wse_env_header_block(env, WSE_NS_WSA, "Action");
	cover[C_MSGID] = wse_env_header_block(env, WSE_NS_WSA, "MessageID");
	cover[C_RELATES] = wse_env_header_block(env, WSE_NS_WSA, "RelatesTo");
	if (cover[C_BODY] == NULL || cover[C_TO] == NULL ||
	    cover[C_ACTION] == NULL || cover[C_MSGID] == NULL)
		return wse_err(WSE_ERR_INVALID,
		    "envelope lacks Body, To, Action or MessageID");

	/* Timestamp first in the Security header. */
	if ((ts = new_child(sec, WSE_NS_WSU, "wsu", "Timestamp",
	    NULL)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot add Timestamp");
	wse_time_format(now, tbuf);
	if (new_child(ts, WSE_NS_WSU, "wsu", "Created", tbuf) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot add Timestamp");
	wse_time_format(now + ttl, tbuf);
	if (new_child(ts, WSE_NS_WSU, "wsu", "Expires", tbuf) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot add Timestamp");
	cover[C_TS] = ts;
	/* Every Id of this message from one call of the generator. */
	if ((st = wse_random(rnd, sizeof(rnd))) != WSE_OK)
		return st;

	/* Tokens. */
	if (s->profile == WSE_PROFILE_CERT) {
		char chain_id[40];

		for (i = 0; i < s->nchain; i++) {
			format_id("x509", rnd + 8 * (C__N + i),
			    i == 0 ? tok_id : chain_id,
			    i == 0 ? sizeof(tok_id) : sizeof(chain_id));
			if ((st = add_bst(sec, s->bst_b64[i],
			    i == 0 ? tok_id : chain_id)) != WSE_OK)
				return st;
		}
	} else {
		xmlNodePtr ut;

		if ((ut = new_child(sec, WSE_NS_WSSE, "wsse", "UsernameToken",
		    NULL)) == NULL ||
		    new_child(ut, WSE_NS_WSSE, "wsse", "Username",
		    s->user) == NULL)
			return wse_err(WSE_ERR_NOMEM, "cannot add token");
		cover[C_UT] = ut;
	}

	for (c = 0; c < C__N; c++) {
		if (cover[c] == NULL)
			continue;
		format_id(cover_prefix[c], rnd + 8 * c, ids[c],
		    sizeof(ids[c]));
		if ((st = set_wsu_id(cover[c], ids[c])) != WSE_OK)
			return st;
	}
	if (s->profile == WSE_PROFILE_PASSWORD)
		(void)snprintf(tok_id, sizeof(tok_id), "%s", ids[C_UT]);

	/* Signature template. */
	if ((sig = xmlSecTmplSignatureCreateNsPref(wse_env_doc(env),
	    xmlSecTransformExclC14NId, s->profile == WSE_PROFILE_PASSWORD ?
	    xmlSecTransformHmacSha256Id :
	    EVP_PKEY_get_base_id(wse_key_evp(s->key)) == EVP_PKEY_RSA ?
	    xmlSecTransformRsaSha256Id : xmlSecTransformEcdsaSha256Id, NULL,
	    BAD_CAST "ds")) == NULL)
		goto nomem;
	if (xmlAddChild(sec, sig) == NULL) {
		xmlFreeNode(sig);
		goto nomem;
	}
	for (c = 0; c < C__N; c++) {
		if (cover[c] == NULL)
			continue;
		(void)snprintf(uri, sizeof(uri), "#%.39s", ids[c]);
		if ((ref = xmlSecTmplSignatureAddReference(sig,
		    xmlSecTransformSha256Id, NULL, BAD_CAST uri, NULL)) == NULL ||
		    xmlSecTmplReferenceAddTransform(ref,
		    xmlSecTransformExclC14NId) == NULL)
			goto nomem;
	}
	if ((ki = xmlSecTmplSignatureEnsureKeyInfo(sig, NULL)) == NULL ||
	    (str = new_child(ki, WSE_NS_WSSE, "wsse",
	    "SecurityTokenReference", NULL)) == NULL ||
	    (r = new_child(str, WSE_NS_WSSE, "wsse", "Reference",
	    NULL)) == NULL)
		goto nomem;
	(void)snprintf(uri, sizeof(uri), "#%.39s", tok_id);
	if (xmlSetProp(r, BAD_CAST "URI", BAD_CAST uri) == NULL ||
	    xmlSetProp(r, BAD_CAST "ValueType", BAD_CAST
	    (s->profile == WSE_PROFILE_CERT ? WSS_X509V3 : WSS_USERNAME)) ==
	    NULL)
		goto nomem;

	/* Sign with the key we hold. */
	st = s->profile == WSE_PROFILE_CERT ? xmlsec_key_evp(s->key, &key) :
	    xmlsec_key_hmac(s->mac_key, &key);
	if (st != WSE_OK)
		goto out;
	st = xmlsec_sign(key, sig, cover, C__N);
	key = NULL;
	goto out;
nomem:
	st = wse_err(WSE_ERR_NOMEM, "cannot build signature template");
out:
	if (key != NULL)
		xmlSecKeyDestroy(key);
	return st;
}

/* ---- verification ---- */

struct idval {
	const char *value;
	xmlAttrPtr attr;
};

static int
idval_cmp(const void *a, const void *b)
{
	return strcmp(((const struct idval *)a)->value,
	    ((const struct idval *)b)->value);
}

/*
 * Every attribute named Id/ID/id in any namespace (xml:id included) must
 * carry a value unique in the document: xmlsec and libxml2 would
 * otherwise silently pick one of several.
 */
static wse_status
check_ids_unique(xmlDocPtr doc, unsigned long max_nodes)
{
	struct idval *v = NULL;
	size_t n = 0, cap = 0, i;
	xmlNodePtr node = xmlDocGetRootElement(doc);
	unsigned long visited = 0;
	wse_status st = WSE_OK;

	while (node != NULL) {
		if (node->type == XML_ELEMENT_NODE) {
			xmlAttrPtr a;

			if (++visited > max_nodes) {
				st = wse_err(WSE_ERR_TOO_LARGE,
				    "too many elements");
				goto out;
			}
			for (a = node->properties; a; a = a->next) {
				if (strcasecmp((const char *)a->name, "id") != 0)
					continue;
				if (n == cap) {
					size_t ncap = cap ? cap * 2 : 16;
					struct idval *nv = reallocarray(v, ncap,
					    sizeof(*v));
					if (nv == NULL) {
						st = wse_err(WSE_ERR_NOMEM,
						    "cannot allocate");
						goto out;
					}
					v = nv;
					cap = ncap;
				}
				v[n].attr = a;
				v[n].value = (a->children &&
				    a->children->type == XML_TEXT_NODE &&
				    a->children->next == NULL &&
				    a->children->content) ?
				    (const char *)a->children->content : "";
				n++;
			}
		}
		/* Depth-first walk without recursion. */
		if (node->type == XML_ELEMENT_NODE && node->children) {
			node = node->children;
			continue;
		}
		while (node != NULL && node->next == NULL)
			node = node->parent && node->parent->type ==
			    XML_ELEMENT_NODE ? node->parent : NULL;
		if (node != NULL)
			node = node->next;
	}
	if (n > 1) {
		qsort(v, n, sizeof(*v), idval_cmp);
		for (i = 1; i < n; i++)
			if (strcmp(v[i - 1].value, v[i].value) == 0) {
				st = wse_err(WSE_ERR_BAD_SIGNATURE,
				    "duplicate Id \"%.64s\"", v[i].value);
				goto out;
			}
	}
out:
	free(v);
	return st;
}

static int
count_elems(const xmlNode *node, const char *ns, const char *local)
{
	int n = 0;
	const xmlNode *c;

	for (c = node; c != NULL; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (wse_xml_is(c, ns, local))
			n++;
		n += count_elems(c->children, ns, local);
	}
	return n;
}

static const char *
alg_of(const xmlNode *n)
{
	return wse_xml_attr(n, NULL, "Algorithm");
}

/* An element that must have no element children (except the optional
 * exclusive C14N InclusiveNamespaces). */
static wse_status
check_method(const xmlNode *n, const char *what, const char *const *allowed,
    int allow_incl)
{
	const char *alg = alg_of(n);
	const xmlNode *c;
	size_t i;

	if (alg == NULL)
		return wse_err(WSE_ERR_UNSUPPORTED, "%s without Algorithm",
		    what);
	for (i = 0; allowed[i] != NULL; i++)
		if (strcmp(alg, allowed[i]) == 0)
			break;
	if (allowed[i] == NULL)
		return wse_err(WSE_ERR_UNSUPPORTED, "%s %.100s not allowed",
		    what, alg);
	for (c = wse_xml_first_elem(n); c; c = wse_xml_next_elem(c)) {
		if (allow_incl && wse_xml_is(c, ALG_EXC_C14N,
		    "InclusiveNamespaces") && wse_xml_first_elem(c) == NULL)
			continue;
		return wse_err(WSE_ERR_UNSUPPORTED,
		    "unexpected %s inside %s", (const char *)c->name, what);
	}
	return WSE_OK;
}

/* "#" followed by an NCName-ish token: nothing else is a same-document
 * reference we follow (no xpointer(), no empty URI, no scheme). */
static const char *
plain_fragment(const char *uri)
{
	const char *p;

	if (uri == NULL || uri[0] != '#' || uri[1] == '\0' ||
	    strlen(uri) > 64)
		return NULL;
	if (!((uri[1] >= 'A' && uri[1] <= 'Z') ||
	    (uri[1] >= 'a' && uri[1] <= 'z') || uri[1] == '_'))
		return NULL;
	for (p = uri + 1; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
		    *p == '.'))
			return NULL;
	return uri + 1;
}

struct vctx {
	const wse_verify_opts *o;
	wse_envelope *env;
	xmlNodePtr sec, sig, signed_info, key_info;
	xmlNodePtr cover[C__N];
	const char *cover_id[C__N];
	int ncover;
	xmlNodePtr token;		/* BST of the signer, or UsernameToken */
	wse_cert *signer;
	wse_cert *chain[MAX_CHAIN];
	size_t nchain;
	char *user;
	int64_t created, expires;
};

static void
vctx_clear(struct vctx *v)
{
	size_t i;

	wse_cert_free(&v->signer);
	for (i = 0; i < v->nchain; i++)
		wse_cert_free(&v->chain[i]);
	free(v->user);
	memset(v, 0, sizeof(*v));
}

/* Decode a BinarySecurityToken into a certificate. */
static wse_status
bst_cert(const xmlNode *bst, wse_cert **cert_r)
{
	const char *vt = wse_xml_attr(bst, NULL, "ValueType");
	const char *et = wse_xml_attr(bst, NULL, "EncodingType");
	wse_buf *txt = NULL, *der = NULL;
	wse_status st;

	*cert_r = NULL;
	if (vt == NULL || strcmp(vt, WSS_X509V3) != 0 ||
	    (et != NULL && strcmp(et, WSS_BASE64) != 0))
		return wse_err(WSE_ERR_UNSUPPORTED,
		    "security token is not a base64 X.509v3 certificate");
	if ((txt = wse_buf_new(96 * 1024)) == NULL ||
	    (der = wse_buf_new(64 * 1024)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto out;
	}
	if ((st = wse_xml_text(bst, txt)) != WSE_OK ||
	    (st = wse_base64_decode(wse_buf_str(txt), wse_buf_len(txt),
	    der)) != WSE_OK ||
	    (st = wse_cert_from_der(wse_buf_data(der), wse_buf_len(der),
	    cert_r)) != WSE_OK)
		st = wse_err(WSE_ERR_INVALID, "unreadable security token");
out:
	wse_buf_free(&txt);
	wse_buf_free(&der);
	return st;
}


/* The end of a ds:Reference from its DigestMethod: SHA-256, then the
 * DigestValue, then nothing (*dv_r, when not NULL, gets the value). */
static wse_status
check_digest_tail(xmlNodePtr c, xmlNodePtr *dv_r)
{
	static const char *const digest_algs[] = { ALG_SHA256, NULL };
	wse_status st;

	if (!wse_xml_is(c, WSE_NS_DS, "DigestMethod"))
		return wse_err(WSE_ERR_BAD_SIGNATURE, "no DigestMethod");
	if ((st = check_method(c, "digest method", digest_algs, 0)) != WSE_OK)
		return st;
	c = wse_xml_next_elem(c);
	if (!wse_xml_is(c, WSE_NS_DS, "DigestValue") ||
	    wse_xml_next_elem(c) != NULL)
		return wse_err(WSE_ERR_BAD_SIGNATURE, "bad Reference");
	if (dv_r != NULL)
		*dv_r = c;
	return WSE_OK;
}

/* Structure of Security, Signature, SignedInfo, KeyInfo and the covered
 * nodes: everything that can be refused without cryptography. */
static wse_status
check_structure(struct vctx *v)
{
	const wse_limits *lim = v->o->limits;
	static const char *const c14n_algs[] = { ALG_EXC_C14N, NULL };
	static const char *const cert_algs[] = { ALG_ECDSA_SHA256,
	    ALG_RSA_SHA256, NULL };
	static const char *const pw_algs[] = { ALG_HMAC_SHA256, NULL };
	xmlNodePtr n, ref, c, tr;
	wse_status st;
	int nrefs = 0, c_i, seen[C__N] = { 0 };
	const char *id, *tok_uri;

	if ((v->sec = wse_env_security(v->env, 0)) == NULL)
		return wse_err(WSE_ERR_BAD_SIGNATURE, "no wsse:Security header");
	if (count_elems(xmlDocGetRootElement(wse_env_doc(v->env)), WSE_NS_DS,
	    "Signature") != 1)
		return wse_err(WSE_ERR_BAD_SIGNATURE,
		    "exactly one ds:Signature is required");
	if ((st = wse_xml_only_child(v->sec, WSE_NS_DS, "Signature",
	    &v->sig)) != WSE_OK)
		return wse_err(WSE_ERR_BAD_SIGNATURE,
		    "ds:Signature is not in wsse:Security");
	if ((st = wse_xml_only_child(v->sec, WSE_NS_WSU, "Timestamp",
	    &v->cover[C_TS])) != WSE_OK)
		return wse_err(WSE_ERR_BAD_SIGNATURE,
		    "exactly one wsu:Timestamp is required");

	/* Signature: SignedInfo, SignatureValue, KeyInfo; nothing else. */
	n = wse_xml_first_elem(v->sig);
	if (!wse_xml_is(n, WSE_NS_DS, "SignedInfo"))
		return wse_err(WSE_ERR_BAD_SIGNATURE, "no SignedInfo");
	v->signed_info = n;
	n = wse_xml_next_elem(n);
	if (!wse_xml_is(n, WSE_NS_DS, "SignatureValue") ||
	    wse_xml_first_elem(n) != NULL)
		return wse_err(WSE_ERR_BAD_SIGNATURE, "bad SignatureValue");
	n = wse_xml_next_elem(n);
	if (!wse_xml_is(n, WSE_NS_DS, "KeyInfo"))
		return wse_err(WSE_ERR_UNSUPPORTED,
		    "KeyInfo must reference the security token");
	v->key_info = n;
	if (wse_xml_next_elem(n) != NULL)
		return wse_err(WSE_ERR_UNSUPPORTED,
		    "ds:Object and other Signature content are not allowed");
	if ((st = wse_xml_check_no_comments(v->sig)) != WSE_OK)
		return wse_err(WSE_ERR_BAD_SIGNATURE,
		    "comment or PI inside the signature");

	/* KeyInfo: exactly one SecurityTokenReference/Reference URI="#id"
	 * (never KeyValue, X509Data or RetrievalMethod). */
	c = wse_xml_first_elem(v->key_info);
	if (!wse_xml_is(c, WSE_NS_WSSE, "SecurityTokenReference") ||
	    wse_xml_next_elem(c) != NULL)
		return wse_err(WSE_ERR_UNSUPPORTED,
		    "KeyInfo may only hold one wsse:SecurityTokenReference");
	ref = wse_xml_first_elem(c);
	if (!wse_xml_is(ref, WSE_NS_WSSE, "Reference") ||
	    wse_xml_next_elem(ref) != NULL ||
	    (tok_uri = plain_fragment(wse_xml_attr(ref, NULL, "URI"))) == NULL)
		return wse_err(WSE_ERR_UNSUPPORTED,
		    "SecurityTokenReference must be one local Reference");

	/* Tokens in Security. */
	if (v->o->profile == WSE_PROFILE_CERT) {
		if (wse_xml_count_children(v->sec, WSE_NS_WSSE,
		    "UsernameToken") != 0)
			return wse_err(WSE_ERR_UNSUPPORTED,
			    "UsernameToken in a certificate-profile message");
		for (n = wse_xml_first_elem(v->sec); n;
		    n = wse_xml_next_elem(n)) {
			const char *tid;
			wse_cert *cert = NULL;

			if (!wse_xml_is(n, WSE_NS_WSSE, "BinarySecurityToken"))
				continue;
			if (v->nchain + (v->signer != NULL) >=
			    lim->max_cert_chain)
				return wse_err(WSE_ERR_TOO_LARGE,
				    "more than %u security tokens",
				    lim->max_cert_chain);
			if ((st = bst_cert(n, &cert)) != WSE_OK)
				return st;
			tid = wse_xml_attr(n, WSE_NS_WSU, "Id");
			if (tid != NULL && strcmp(tid, tok_uri) == 0) {
				v->token = n;
				v->signer = cert;
			} else
				v->chain[v->nchain++] = cert;
		}
		if (v->signer == NULL)
			return wse_err(WSE_ERR_BAD_SIGNATURE,
			    "KeyInfo does not reference a BinarySecurityToken");
	} else {
		xmlNodePtr un;
		const char *tid;

		if (wse_xml_count_children(v->sec, WSE_NS_WSSE,
		    "BinarySecurityToken") != 0)
			return wse_err(WSE_ERR_UNSUPPORTED,
			    "certificate token in a password-profile message");
		if ((st = wse_xml_only_child(v->sec, WSE_NS_WSSE,
		    "UsernameToken", &v->token)) != WSE_OK)
			return wse_err(WSE_ERR_NOT_AUTHORIZED,
			    "exactly one UsernameToken is required");
		tid = wse_xml_attr(v->token, WSE_NS_WSU, "Id");
		if (tid == NULL || strcmp(tid, tok_uri) != 0)
			return wse_err(WSE_ERR_BAD_SIGNATURE,
			    "KeyInfo does not reference the UsernameToken");
		if ((st = wse_xml_only_child(v->token, WSE_NS_WSSE, "Username",
		    &un)) != WSE_OK ||
		    wse_xml_next_elem(wse_xml_first_elem(v->token)) != NULL ||
		    (st = wse_xml_text_dup(un, MAX_NAME, &v->user)) != WSE_OK ||
		    (st = check_user(v->user)) != WSE_OK)
			return wse_err(WSE_ERR_NOT_AUTHORIZED,
			    "malformed UsernameToken");
		v->cover[C_UT] = v->token;
	}

	/* The nodes that must be covered. */
	v->cover[C_BODY] = wse_env_body(v->env);
	v->cover[C_TO] = wse_env_header_block(v->env, WSE_NS_WSA, "To");
	v->cover[C_ACTION] = wse_env_header_block(v->env, WSE_NS_WSA,
	    "Action");
	v->cover[C_MSGID] = wse_env_header_block(v->env, WSE_NS_WSA,
	    "MessageID");
	v->cover[C_RELATES] = wse_env_header_block(v->env, WSE_NS_WSA,
	    "RelatesTo");
	for (c_i = 0; c_i < C__N; c_i++) {
		if (v->cover[c_i] == NULL) {
			if (c_i == C_RELATES || c_i == C_UT)
				continue;
			return wse_err(WSE_ERR_BAD_SIGNATURE,
			    "message lacks its %s", cover_prefix[c_i]);
		}
		if ((v->cover_id[c_i] = wse_xml_attr(v->cover[c_i], WSE_NS_WSU,
		    "Id")) == NULL)
			return wse_err(WSE_ERR_BAD_SIGNATURE,
			    "%s is not signed (no wsu:Id)", cover_prefix[c_i]);
		if (wse_xml_check_no_comments(v->cover[c_i]) != WSE_OK)
			return wse_err(WSE_ERR_BAD_SIGNATURE,
			    "comment or PI inside signed %s",
			    cover_prefix[c_i]);
		v->ncover++;
	}

	/* SignedInfo: C14N, SignatureMethod, then exactly ncover References,
	 * each "#id" of one covered node, once. */
	n = wse_xml_first_elem(v->signed_info);
	if (!wse_xml_is(n, WSE_NS_DS, "CanonicalizationMethod"))
		return wse_err(WSE_ERR_BAD_SIGNATURE,
		    "no CanonicalizationMethod");
	if ((st = check_method(n, "canonicalization", c14n_algs, 1)) !=
	    WSE_OK)
		return st;
	n = wse_xml_next_elem(n);
	if (!wse_xml_is(n, WSE_NS_DS, "SignatureMethod"))
		return wse_err(WSE_ERR_BAD_SIGNATURE, "no SignatureMethod");
	if ((st = check_method(n, "signature method",
	    v->o->profile == WSE_PROFILE_CERT ? cert_algs : pw_algs, 0)) !=
	    WSE_OK)
		return st;
	/* Count first: a huge reference list is refused before any
	 * per-reference work. */
	for (ref = wse_xml_next_elem(n); ref; ref = wse_xml_next_elem(ref))
		if (++nrefs > (int)lim->max_references)
			return wse_err(WSE_ERR_TOO_LARGE,
			    "more than %u references", lim->max_references);
	if (nrefs != v->ncover)
		return wse_err(WSE_ERR_BAD_SIGNATURE,
		    "signature covers %d of the %d parts that must be signed",
		    nrefs, v->ncover);
	for (ref = wse_xml_next_elem(n); ref; ref = wse_xml_next_elem(ref)) {
		int ntr = 0;

		if (!wse_xml_is(ref, WSE_NS_DS, "Reference"))
			return wse_err(WSE_ERR_BAD_SIGNATURE,
			    "unexpected %s in SignedInfo",
			    (const char *)ref->name);
		if ((id = plain_fragment(wse_xml_attr(ref, NULL, "URI"))) ==
		    NULL)
			return wse_err(WSE_ERR_UNSUPPORTED,
			    "reference URI is not a local \"#id\"");
		for (c_i = 0; c_i < C__N; c_i++)
			if (v->cover_id[c_i] != NULL &&
			    strcmp(v->cover_id[c_i], id) == 0)
				break;
		if (c_i == C__N || seen[c_i]++)
			return wse_err(WSE_ERR_BAD_SIGNATURE,
			    "reference #%.64s is not to a node that must be "
			    "signed, or repeats one", id);
		c = wse_xml_first_elem(ref);
		if (wse_xml_is(c, WSE_NS_DS, "Transforms")) {
			for (tr = wse_xml_first_elem(c); tr;
			    tr = wse_xml_next_elem(tr)) {
				if (!wse_xml_is(tr, WSE_NS_DS, "Transform"))
					return wse_err(WSE_ERR_UNSUPPORTED,
					    "bad Transforms");
				if (++ntr > (int)lim->max_transforms)
					return wse_err(WSE_ERR_TOO_LARGE,
					    "more than %u transforms",
					    lim->max_transforms);
				if ((st = check_method(tr, "transform",
				    c14n_algs, 1)) != WSE_OK)
					return st;
			}
			c = wse_xml_next_elem(c);
		}
		if ((st = check_digest_tail(c, NULL)) != WSE_OK)
			return st;
	}
	return WSE_OK;
}

/* Step 1: freshness from the (to be proven signed) Timestamp. */
static wse_status
check_freshness(struct vctx *v)
{
	const wse_limits *lim = v->o->limits;
	xmlNodePtr created, expires = NULL, n;
	char *s = NULL;
	wse_status st;

	n = wse_xml_first_elem(v->cover[C_TS]);
	if (!wse_xml_is(n, WSE_NS_WSU, "Created"))
		return wse_err(WSE_ERR_INVALID, "Timestamp lacks Created");
	created = n;
	n = wse_xml_next_elem(n);
	if (wse_xml_is(n, WSE_NS_WSU, "Expires")) {
		expires = n;
		n = wse_xml_next_elem(n);
	}
	if (n != NULL)
		return wse_err(WSE_ERR_INVALID, "unexpected Timestamp content");
	if ((st = wse_xml_text_dup(created, 64, &s)) != WSE_OK ||
	    (st = wse_time_parse(s, &v->created)) != WSE_OK)
		goto out;
	free(s);
	s = NULL;
	v->expires = INT64_MAX;
	if (expires != NULL && ((st = wse_xml_text_dup(expires, 64, &s)) != WSE_OK ||
	    (st = wse_time_parse(s, &v->expires)) != WSE_OK))
		goto out;
	if (v->expires < v->created) {
		st = wse_err(WSE_ERR_INVALID, "Timestamp expires before it "
		    "was created");
		goto out;
	}
	if (v->created > v->o->now + lim->future_skew) {
		st = wse_err(WSE_ERR_FUTURE, "Timestamp is %lld s in the future",
		    (long long)(v->created - v->o->now));
		goto out;
	}
	if (v->o->now - v->created > lim->freshness_window) {
		st = wse_err(WSE_ERR_EXPIRED, "Timestamp is %lld s old",
		    (long long)(v->o->now - v->created));
		goto out;
	}
	if (v->o->now > v->expires) {
		st = wse_err(WSE_ERR_EXPIRED, "Timestamp expired");
		goto out;
	}
	st = WSE_OK;
out:
	free(s);
	return st;
}

/* Only EC P-256 and RSA of at least 2048 bits sign messages. */
static wse_status
check_key_strength(const wse_key *key)
{
	EVP_PKEY *pk = wse_key_evp(key);
	char curve[64];
	size_t len;

	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(pk) >= 2048)
			return WSE_OK;
		return wse_err(WSE_ERR_UNSUPPORTED, "RSA key of %d bits",
		    EVP_PKEY_get_bits(pk));
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_utf8_string_param(pk, "group", curve,
		    sizeof(curve), &len) == 1 &&
		    strcmp(curve, "prime256v1") == 0)
			return WSE_OK;
		return wse_err(WSE_ERR_UNSUPPORTED, "EC key not on P-256");
	default:
		return wse_err(WSE_ERR_UNSUPPORTED, "signer key type refused");
	}
}

/* Step 4: the signature itself, by xmlsec, with our key and our rules. */
static wse_status
check_signature(struct vctx *v, const uint8_t *mac_key)
{
	xmlSecDSigCtxPtr ctx = NULL;
	xmlSecKeyPtr key = NULL;
	xmlDocPtr doc = wse_env_doc(v->env);
	wse_key *pub = NULL;
	wse_status st;
	xmlSecSize i, nrefs;
	int c, seen[C__N] = { 0 };

	/* Register exactly the covered Ids (unique: checked before). */
	for (c = 0; c < C__N; c++)
		if (v->cover[c] != NULL &&
		    (st = register_id(v->cover[c], v->cover_id[c])) != WSE_OK)
			return st;

	if (v->o->profile == WSE_PROFILE_CERT) {
		if ((st = wse_cert_public_key(v->signer, &pub)) != WSE_OK ||
		    (st = check_key_strength(pub)) != WSE_OK)
			goto out;
		st = xmlsec_key_evp(pub, &key);
	} else
		st = xmlsec_key_hmac(mac_key, &key);
	if (st != WSE_OK)
		goto out;
	st = xmlsec_verify(key, v->o->profile != WSE_PROFILE_CERT, v->sig,
	    v->cover, C__N, &ctx);
	key = NULL;
	if (st != WSE_OK)
		goto out;
	/* xmlsec says valid: now prove it signed what we will read. */
	nrefs = xmlSecPtrListGetSize(&ctx->signedInfoReferences);
	if ((int)nrefs != v->ncover) {
		st = wse_err(WSE_ERR_BAD_SIGNATURE,
		    "xmlsec processed %u references, expected %d",
		    (unsigned)nrefs, v->ncover);
		goto out;
	}
	for (i = 0; i < nrefs; i++) {
		xmlSecDSigReferenceCtxPtr r = xmlSecPtrListGetItem(
		    &ctx->signedInfoReferences, i);
		const char *id;

		if (r == NULL || r->status != xmlSecDSigStatusSucceeded ||
		    (id = plain_fragment((const char *)r->uri)) == NULL) {
			st = wse_err(WSE_ERR_BAD_SIGNATURE, "bad reference");
			goto out;
		}
		for (c = 0; c < C__N; c++) {
			xmlAttrPtr a;

			if (v->cover[c] == NULL || strcmp(id, v->cover_id[c]))
				continue;
			a = xmlGetID(doc, BAD_CAST id);
			if (a == NULL || a->parent != v->cover[c] || seen[c]++) {
				st = wse_err(WSE_ERR_BAD_SIGNATURE,
				    "reference %.64s resolved to another node",
				    id);
				goto out;
			}
			break;
		}
		if (c == C__N) {
			st = wse_err(WSE_ERR_BAD_SIGNATURE,
			    "unexpected reference %.64s", id);
			goto out;
		}
	}
	st = WSE_OK;
out:
	if (key != NULL)
		xmlSecKeyDestroy(key);
	if (ctx != NULL)
		xmlSecDSigCtxDestroy(ctx);
	wse_key_free(&pub);
	return st;
}

/* dom: the signer's domain, as step (5) read it (certificate profile). */
static wse_status
fill_result(struct vctx *v, wse_verified *out, const char *dom)
{
	wse_status st;
	char buf[MAX_NAME];

	out->profile = v->o->profile;
	out->body = v->cover[C_BODY];
	out->timestamp = v->cover[C_TS];
	out->to = v->cover[C_TO];
	out->action = v->cover[C_ACTION];
	out->message_id = v->cover[C_MSGID];
	out->relates_to = v->cover[C_RELATES];
	out->created = v->created;
	out->expires = v->expires;
	if ((st = wse_xml_text_dup(out->to, 2048, &out->to_s)) != WSE_OK ||
	    (st = wse_xml_text_dup(out->action, 2048, &out->action_s)) != WSE_OK ||
	    (st = wse_xml_text_dup(out->message_id, 256, &out->message_id_s)) !=
	    WSE_OK ||
	    (out->relates_to != NULL && (st = wse_xml_text_dup(out->relates_to, 256,
	    &out->relates_to_s)) != WSE_OK))
		return st;
	if (v->o->profile == WSE_PROFILE_PASSWORD) {
		out->user = v->user;
		v->user = NULL;
		return WSE_OK;
	}
	out->signer = v->signer;
	v->signer = NULL;
	if ((out->signer_domain = strdup(dom)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	if (wse_cert_mailbox(out->signer, buf, sizeof(buf)) == WSE_OK &&
	    (out->signer_mailbox = strdup(buf)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	wse_err_clear();
	return WSE_OK;
}

wse_status
wse_wss_verify(wse_envelope *env, const wse_verify_opts *o,
    wse_verified *out)
{
	struct vctx v;
	wse_status st;
	char *msgid = NULL, *to = NULL, dom[MAX_NAME];
	uint8_t mac_key[WSE_DERIVED_KEY_LEN];

	memset(&v, 0, sizeof(v));
	memset(out, 0, sizeof(*out));
	dom[0] = '\0';
	if ((st = wse_wss_init()) != WSE_OK)
		return st;
	if (o == NULL || o->limits == NULL || o->replay == NULL ||
	    (o->profile == WSE_PROFILE_CERT && (o->trust == NULL ||
	    (o->expected_domain == NULL &&
	    o->purpose != WSE_PURPOSE_TOKEN))) ||
	    (o->profile == WSE_PROFILE_PASSWORD && o->lookup == NULL))
		return wse_err(WSE_ERR_INVALID, "incomplete verify options");
	v.o = o;
	v.env = env;

	/* Before any cryptography: Ids, structure, algorithms. */
	if ((st = check_ids_unique(wse_env_doc(env),
	    o->limits->max_xml_nodes)) != WSE_OK ||
	    (st = check_structure(&v)) != WSE_OK)
		goto out;
	if ((st = wse_xml_text_dup(v.cover[C_MSGID], 256, &msgid)) != WSE_OK)
		goto out;
	if (!wse_uuid_urn_valid(msgid)) {
		st = wse_err(WSE_ERR_INVALID,
		    "MessageID is not a random urn:uuid");
		goto out;
	}

	/* (1) freshness */
	if ((st = check_freshness(&v)) != WSE_OK)
		goto out;
	if (o->profile == WSE_PROFILE_CERT) {
		/* (2) certificate validity interval */
		if ((st = wse_cert_check_time(v.signer, o->now)) != WSE_OK)
			goto out;
		/* (3) replay cache */
		if ((st = wse_replay_check(o->replay, msgid, v.created,
		    o->now)) != WSE_OK)
			goto out;
		/* (4) signature */
		if ((st = check_signature(&v, NULL)) != WSE_OK)
			goto out;
		/* (5) chain trust, then the signer's domain */
		if ((st = wse_trust_verify(o->trust, v.signer, v.chain,
		    v.nchain, o->now, o->purpose)) != WSE_OK)
			goto out;
		/* A token without an expected domain speaks for its own:
		 * the chain check above proved its CA may vouch for it. */
		if ((st = wse_cert_domain(v.signer, dom, sizeof(dom))) !=
		    WSE_OK || (o->expected_domain != NULL &&
		    strcasecmp(dom, o->expected_domain) != 0)) {
			st = wse_err(WSE_ERR_DOMAIN_MISMATCH,
			    "signer speaks for %s, not %.200s",
			    st == WSE_OK ? dom : "no domain",
			    o->expected_domain ? o->expected_domain : "?");
			goto out;
		}
	} else {
		wse_status lst;

		/* (2) replay cache */
		if ((st = wse_replay_check(o->replay, msgid, v.created,
		    o->now)) != WSE_OK)
			goto out;
		/* (3) MAC, with the same work whether or not the user
		 * exists. */
		lst = o->lookup(o->lookup_arg, v.user, mac_key);
		if (lst == WSE_ERR_NOT_FOUND) {
			if ((st = wse_random(mac_key, sizeof(mac_key))) !=
			    WSE_OK)
				goto out;
		} else if (lst != WSE_OK) {
			st = wse_err(WSE_ERR_TEMPFAIL,
			    "cannot look up user %.64s", v.user);
			goto out;
		}
		st = check_signature(&v, mac_key);
		wse_memzero(mac_key, sizeof(mac_key));
		if (st == WSE_OK && lst == WSE_ERR_NOT_FOUND)
			st = WSE_ERR_BAD_SIGNATURE;
		if (st == WSE_ERR_BAD_SIGNATURE) {
			st = wse_err(WSE_ERR_NOT_AUTHORIZED,
			    "user %.64s: %s", v.user, lst == WSE_ERR_NOT_FOUND ?
			    "no such user" : "wrong MAC");
			goto out;
		}
		if (st != WSE_OK)
			goto out;
	}

	/* The destination, read from the signed To. */
	if (o->expected_to != NULL) {
		if ((st = wse_xml_text_dup(v.cover[C_TO], 2048, &to)) != WSE_OK)
			goto out;
		if (strcmp(to, o->expected_to) != 0) {
			st = wse_err(WSE_ERR_NOT_AUTHORIZED,
			    "message is addressed to %.200s", to);
			goto out;
		}
	}

	/* Every check passed: enter the nonce, atomically. */
	if (!o->caller_inserts_nonce && (st = wse_replay_insert(o->replay,
	    msgid, v.created + o->limits->freshness_window + 1, o->now)) !=
	    WSE_OK)
		goto out;
	st = fill_result(&v, out, dom);
	out->replay_expires = v.created + o->limits->freshness_window + 1;
out:
	wse_memzero(mac_key, sizeof(mac_key));
	if (st != WSE_OK)
		wse_verified_clear(out);
	vctx_clear(&v);
	free(msgid);
	free(to);
	return st;
}

void
wse_verified_clear(wse_verified *v)
{
	if (v == NULL)
		return;
	free(v->to_s);
	free(v->action_s);
	free(v->message_id_s);
	free(v->relates_to_s);
	free(v->user);
	free(v->signer_domain);
	free(v->signer_mailbox);
	wse_cert_free(&v->signer);
	memset(v, 0, sizeof(*v));
}

/* ---- one signed element (routed forms) ----
 *
 * The same rules as the envelope signature, for a document that is not
 * an envelope: the caller names the element that must be signed and the
 * certificate whose key must have signed it; we check the shape of the
 * signature before xmlsec sees it, run xmlsec with the allow-list and
 * our key, and prove that its one reference resolved to that element.
 */

wse_status
wse_wss_check_ids(xmlDocPtr doc, unsigned long max_nodes)
{
	if (doc == NULL)
		return wse_err(WSE_ERR_INVALID, "no document");
	return check_ids_unique(doc, max_nodes);
}

wse_status
wse_wss_digest_node(xmlNodePtr elem, uint8_t out[WSE_SHA256_LEN])
{
	xmlSecTransformCtxPtr ctx = NULL;
	xmlSecNodeSetPtr nodes = NULL;
	xmlSecTransformPtr md;
	struct c14n_scope sc;
	wse_status st;
	int ret;

	if ((st = wse_wss_init()) != WSE_OK)
		return st;
	if (elem == NULL || elem->type != XML_ELEMENT_NODE ||
	    elem->doc == NULL)
		return wse_err(WSE_ERR_INVALID, "digest: not an element");
	/* C14N over elem's subtree only, as for a Reference (see
	 * "canonicalising only the referenced subtree"). */
	memset(&sc, 0, sizeof(sc));
	sc.doc = elem->doc;
	sc.signed_info = elem;
	if (!c14n_whole_doc && !c14n_doc_ok(sc.doc))
		return wse_err(WSE_ERR_CRYPTO, "digest failed: the document "
		    "cannot be canonicalised (relative namespace URI)");
	if ((ctx = xmlSecTransformCtxCreate()) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "digest: no memory");
		goto out;
	}
	if (xmlSecTransformCtxCreateAndAppend(ctx,
	    xmlSecTransformExclC14NId) == NULL ||
	    (md = xmlSecTransformCtxCreateAndAppend(ctx,
	    xmlSecTransformSha256Id)) == NULL) {
		st = wse_err(WSE_ERR_INTERNAL, "digest: cannot set up: %s",
		    xmlsec_last);
		goto out;
	}
	md->operation = xmlSecTransformOperationSign;
	ctx->userData = &sc;
	ctx->preExecCallback = si_pre_exec;
	/* The node set of a "#id" reference: the subtree, no comments. */
	if ((nodes = xmlSecNodeSetGetChildren(elem->doc, elem, 0, 0)) ==
	    NULL) {
		st = wse_err(WSE_ERR_NOMEM, "digest: no memory");
		goto out;
	}
	ret = xmlSecTransformCtxXmlExecute(ctx, nodes);
	scope_restore(&sc);
	if (ret < 0 || ctx->status != xmlSecTransformStatusFinished ||
	    ctx->result == NULL ||
	    xmlSecBufferGetSize(ctx->result) != WSE_SHA256_LEN) {
		st = wse_err(WSE_ERR_CRYPTO, "digest failed: %s", xmlsec_last);
		goto out;
	}
	memcpy(out, xmlSecBufferGetData(ctx->result), WSE_SHA256_LEN);
	st = WSE_OK;
out:
	scope_restore(&sc);
	if (nodes != NULL)
		xmlSecNodeSetDestroy(nodes);
	if (ctx != NULL)
		xmlSecTransformCtxDestroy(ctx);
	return st;
}

static wse_status digest_value(const xmlNode *, uint8_t *);

/* 1 when node is elem or inside it. */
static int
node_within(const xmlNode *node, const xmlNode *elem)
{
	for (; node != NULL; node = node->parent)
		if (node == elem)
			return 1;
	return 0;
}

wse_status
wse_wss_sign_node(xmlNodePtr elem, const char *id_prefix,
    xmlNodePtr sig_parent, const wse_key *key,
    uint8_t digest_r[WSE_SHA256_LEN])
{
	xmlSecKeyPtr k = NULL;
	xmlNodePtr sig, ref;
	char id[48], uri[56];
	wse_status st;

	if ((st = wse_wss_init()) != WSE_OK)
		return st;
	if (elem == NULL || sig_parent == NULL || key == NULL ||
	    id_prefix == NULL || elem->type != XML_ELEMENT_NODE ||
	    elem->doc == NULL || sig_parent->doc != elem->doc ||
	    node_within(sig_parent, elem) ||
	    strlen(id_prefix) == 0 || strlen(id_prefix) > 24)
		return wse_err(WSE_ERR_INVALID, "sign: bad arguments");
	if (wse_xml_attr(elem, WSE_NS_WSU, "Id") != NULL)
		return wse_err(WSE_ERR_EXISTS,
		    "sign: the element already has an Id");
	if (!wse_key_is_private(key))
		return wse_err(WSE_ERR_INVALID, "signing key is not private");
	if ((st = check_key_strength(key)) != WSE_OK)
		return st;
	if ((st = make_id(id_prefix, id, sizeof(id))) != WSE_OK)
		return st;
	(void)snprintf(uri, sizeof(uri), "#%s", id);
	if (plain_fragment(uri) == NULL)
		return wse_err(WSE_ERR_INVALID, "sign: bad Id prefix");
	if ((st = set_wsu_id(elem, id)) != WSE_OK)
		return st;

	if ((sig = xmlSecTmplSignatureCreateNsPref(elem->doc,
	    xmlSecTransformExclC14NId,
	    EVP_PKEY_get_base_id(wse_key_evp(key)) == EVP_PKEY_RSA ?
	    xmlSecTransformRsaSha256Id : xmlSecTransformEcdsaSha256Id, NULL,
	    BAD_CAST "ds")) == NULL)
		goto nomem;
	if (xmlAddChild(sig_parent, sig) == NULL) {
		xmlFreeNode(sig);
		goto nomem;
	}
	if ((ref = xmlSecTmplSignatureAddReference(sig,
	    xmlSecTransformSha256Id, NULL, BAD_CAST uri, NULL)) == NULL ||
	    xmlSecTmplReferenceAddTransform(ref,
	    xmlSecTransformExclC14NId) == NULL)
		goto nomem;
	if ((st = xmlsec_key_evp(key, &k)) != WSE_OK)
		goto out;
	st = xmlsec_sign(k, sig, &elem, 1);
	k = NULL;
	if (st != WSE_OK)
		goto out;
	if (digest_r != NULL) {
		xmlNodePtr dv = wse_xml_first_elem(ref);

		while (dv != NULL && !wse_xml_is(dv, WSE_NS_DS, "DigestValue"))
			dv = wse_xml_next_elem(dv);
		st = dv != NULL ? digest_value(dv, digest_r) :
		    wse_err(WSE_ERR_INTERNAL, "no DigestValue");
	}
	goto out;
nomem:
	st = wse_err(WSE_ERR_NOMEM, "cannot build signature template");
out:
	if (k != NULL)
		xmlSecKeyDestroy(k);
	return st;
}

/* Shape of a one-reference signature over elem (no cryptography). */
static wse_status
check_node_signature(xmlNodePtr sig, const char *elem_id,
    const wse_limits *lim, xmlNodePtr *digest_value_r)
{
	static const char *const c14n_algs[] = { ALG_EXC_C14N, NULL };
	static const char *const sig_algs[] = { ALG_ECDSA_SHA256,
	    ALG_RSA_SHA256, NULL };
	xmlNodePtr si, n, ref, c, tr;
	const char *id;
	unsigned nrefs = 0, ntr = 0;
	wse_status st;

	if (!wse_xml_is(sig, WSE_NS_DS, "Signature"))
		return wse_err(WSE_ERR_BAD_SIGNATURE, "no ds:Signature");
	if (wse_xml_check_no_comments(sig) != WSE_OK)
		return wse_err(WSE_ERR_BAD_SIGNATURE,
		    "comment or PI inside the signature");
	si = wse_xml_first_elem(sig);
	if (!wse_xml_is(si, WSE_NS_DS, "SignedInfo"))
		return wse_err(WSE_ERR_BAD_SIGNATURE, "no SignedInfo");
	n = wse_xml_next_elem(si);
	if (!wse_xml_is(n, WSE_NS_DS, "SignatureValue") ||
	    wse_xml_first_elem(n) != NULL)
		return wse_err(WSE_ERR_BAD_SIGNATURE, "bad SignatureValue");
	if (wse_xml_next_elem(n) != NULL)
		return wse_err(WSE_ERR_UNSUPPORTED, "KeyInfo, ds:Object and "
		    "other Signature content are not allowed here");

	n = wse_xml_first_elem(si);
	if (!wse_xml_is(n, WSE_NS_DS, "CanonicalizationMethod"))
		return wse_err(WSE_ERR_BAD_SIGNATURE,
		    "no CanonicalizationMethod");
	if ((st = check_method(n, "canonicalization", c14n_algs, 1)) !=
	    WSE_OK)
		return st;
	n = wse_xml_next_elem(n);
	if (!wse_xml_is(n, WSE_NS_DS, "SignatureMethod"))
		return wse_err(WSE_ERR_BAD_SIGNATURE, "no SignatureMethod");
	if ((st = check_method(n, "signature method", sig_algs, 0)) !=
	    WSE_OK)
		return st;
	/* Count before any per-reference work. */
	for (ref = wse_xml_next_elem(n); ref; ref = wse_xml_next_elem(ref))
		if (++nrefs > lim->max_references)
			return wse_err(WSE_ERR_TOO_LARGE,
			    "more than %u references", lim->max_references);
	if (nrefs != 1)
		return wse_err(WSE_ERR_BAD_SIGNATURE,
		    "signature has %u references, expected exactly one",
		    nrefs);
	ref = wse_xml_next_elem(n);
	if (!wse_xml_is(ref, WSE_NS_DS, "Reference"))
		return wse_err(WSE_ERR_BAD_SIGNATURE,
		    "unexpected %s in SignedInfo", (const char *)ref->name);
	if ((id = plain_fragment(wse_xml_attr(ref, NULL, "URI"))) == NULL)
		return wse_err(WSE_ERR_UNSUPPORTED,
		    "reference URI is not a local \"#id\"");
	if (strcmp(id, elem_id) != 0)
		return wse_err(WSE_ERR_BAD_SIGNATURE,
		    "reference #%.64s is not to the element that must be "
		    "signed", id);
	/* Exactly one transform, exclusive C14N without a PrefixList: the
	 * digest is then SHA-256 of the element's exclusive C14N, the very
	 * value wse_wss_digest_node computes. */
	c = wse_xml_first_elem(ref);
	if (!wse_xml_is(c, WSE_NS_DS, "Transforms"))
		return wse_err(WSE_ERR_UNSUPPORTED,
		    "the reference must name its transform");
	for (tr = wse_xml_first_elem(c); tr; tr = wse_xml_next_elem(tr)) {
		if (!wse_xml_is(tr, WSE_NS_DS, "Transform"))
			return wse_err(WSE_ERR_UNSUPPORTED, "bad Transforms");
		if (++ntr > lim->max_transforms)
			return wse_err(WSE_ERR_TOO_LARGE,
			    "more than %u transforms", lim->max_transforms);
		if ((st = check_method(tr, "transform", c14n_algs, 0)) !=
		    WSE_OK)
			return st;
	}
	if (ntr != 1)
		return wse_err(WSE_ERR_UNSUPPORTED,
		    "exactly one exclusive C14N transform is required");
	return check_digest_tail(wse_xml_next_elem(c), digest_value_r);
}

/* The 32 bytes of a (verified or just computed) ds:DigestValue. */
static wse_status
digest_value(const xmlNode *dv, uint8_t *out)
{
	wse_buf *txt = NULL, *bin = NULL;
	wse_status st;

	if ((txt = wse_buf_new(128)) == NULL ||
	    (bin = wse_buf_new(64)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto out;
	}
	if (wse_xml_text(dv, txt) != WSE_OK ||
	    wse_base64_decode(wse_buf_str(txt), wse_buf_len(txt), bin) !=
	    WSE_OK || wse_buf_len(bin) != WSE_SHA256_LEN) {
		st = wse_err(WSE_ERR_BAD_SIGNATURE, "bad DigestValue");
		goto out;
	}
	memcpy(out, wse_buf_data(bin), WSE_SHA256_LEN);
	st = WSE_OK;
out:
	wse_buf_free(&txt);
	wse_buf_free(&bin);
	return st;
}

wse_status
wse_wss_verify_node(xmlNodePtr sig, xmlNodePtr elem, const wse_cert *signer,
    const wse_limits *lim, uint8_t digest_r[WSE_SHA256_LEN])
{
	xmlSecDSigCtxPtr ctx = NULL;
	xmlSecDSigReferenceCtxPtr r;
	xmlSecKeyPtr key = NULL;
	xmlDocPtr doc;
	xmlAttrPtr a;
	xmlNodePtr dv = NULL;
	wse_key *pub = NULL;
	const char *id, *rid;
	char uri[72];
	wse_status st;

	if ((st = wse_wss_init()) != WSE_OK)
		return st;
	if (sig == NULL || elem == NULL || signer == NULL || lim == NULL ||
	    elem->type != XML_ELEMENT_NODE || (doc = elem->doc) == NULL ||
	    sig->doc != doc)
		return wse_err(WSE_ERR_INVALID, "verify: bad arguments");
	if (node_within(sig, elem) || node_within(elem, sig))
		return wse_err(WSE_ERR_BAD_SIGNATURE,
		    "signature and signed element are nested");
	/* The element's own Id, in the exact form we follow. */
	(void)snprintf(uri, sizeof(uri), "#%.64s",
	    (id = wse_xml_attr(elem, WSE_NS_WSU, "Id")) ? id : "");
	if (id == NULL || strlen(id) > 63 || plain_fragment(uri) == NULL)
		return wse_err(WSE_ERR_BAD_SIGNATURE,
		    "the element is not signed (no usable wsu:Id)");
	if (wse_xml_check_no_comments(elem) != WSE_OK)
		return wse_err(WSE_ERR_BAD_SIGNATURE,
		    "comment or PI inside the signed element");
	if ((st = check_node_signature(sig, id, lim, &dv)) != WSE_OK)
		return st;

	/* Register exactly this Id (unique: the caller checked). */
	if ((st = register_id(elem, id)) != WSE_OK)
		return st;

	if ((st = wse_cert_public_key(signer, &pub)) != WSE_OK ||
	    (st = check_key_strength(pub)) != WSE_OK ||
	    (st = xmlsec_key_evp(pub, &key)) != WSE_OK)
		goto out;
	st = xmlsec_verify(key, 0, sig, &elem, 1, &ctx);
	key = NULL;
	if (st != WSE_OK)
		goto out;
	/* xmlsec says valid: prove it signed the element we will read. */
	if (xmlSecPtrListGetSize(&ctx->signedInfoReferences) != 1 ||
	    (r = xmlSecPtrListGetItem(&ctx->signedInfoReferences, 0)) ==
	    NULL || r->status != xmlSecDSigStatusSucceeded ||
	    (rid = plain_fragment((const char *)r->uri)) == NULL ||
	    strcmp(rid, id) != 0 ||
	    (a = xmlGetID(doc, BAD_CAST id)) == NULL || a->parent != elem) {
		st = wse_err(WSE_ERR_BAD_SIGNATURE,
		    "the signature's reference resolved to another node");
		goto out;
	}
	/* The DigestValue is now proven: SHA-256 of elem's exclusive C14N. */
	st = digest_r != NULL ? digest_value(dv, digest_r) : WSE_OK;
out:
	if (key != NULL)
		xmlSecKeyDestroy(key);
	if (ctx != NULL)
		xmlSecDSigCtxDestroy(ctx);
	wse_key_free(&pub);
	return st;
}
