/*
 * soap.h - SOAP 1.2 envelopes with WS-Addressing 1.0 headers, and Faults.
 *
 * A wse_envelope owns one libxml2 document shaped as
 *   Envelope / Header { wsa:To, wsa:Action, wsa:MessageID, [wsa:RelatesTo],
 *                       [wsse:Security], other headers... }
 *            / Body { payload }
 * Building gives a fresh MessageID (urn:uuid v4 from the CSPRNG).  Parsing
 * runs the hardened parser and checks the structure by namespace URI and
 * local name; the nodes it finds are *candidates*: only wse_wss_verify
 * (wss.h) says which of them are signed, and an application reads the
 * Body and headers through its result, never through a second lookup.
 */
#ifndef WSE_SOAP_H
#define WSE_SOAP_H

#include <stddef.h>
#include <stdint.h>

#include <libxml/tree.h>

#include "buf.h"
#include "err.h"
#include "wselimits.h"

#define WSE_NS_SOAP "http://www.w3.org/2003/05/soap-envelope"
#define WSE_NS_WSA "http://www.w3.org/2005/08/addressing"
#define WSE_NS_WSSE \
	"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
#define WSE_NS_WSU \
	"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
#define WSE_NS_WSSE11 \
	"http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"
#define WSE_NS_DS "http://www.w3.org/2000/09/xmldsig#"
#define WSE_NS_WSE "urn:wsemail:2026"	/* our own elements and fault codes */

/* Actions are WSE_NS_WSE "/" operation, e.g. "urn:wsemail:2026/Deliver". */
#define WSE_ACTION_PREFIX WSE_NS_WSE "/"

typedef struct wse_envelope wse_envelope;

/*
 * New envelope addressed to `to` (wsa:To, the paper's first field) for
 * `action`, with a fresh MessageID and an empty Body.  WSE_ERR_INVALID for
 * empty or control-character arguments.
 */
wse_status wse_env_new(const char *to, const char *action,
    wse_envelope **env_r);

/* Add wsa:RelatesTo (a reply's reference to the request's MessageID). */
wse_status wse_env_set_relates_to(wse_envelope *env, const char *message_id);

/* The Body element, for adding payload with libxml2 calls (the payload
 * should use its own namespace). Borrowed. */
xmlNodePtr wse_env_body_node(wse_envelope *env);

/*
 * Parse payload (a well-formed XML fragment with one root element) with
 * the hardened parser and append its root to the Body.
 */
wse_status wse_env_add_body_xml(wse_envelope *env, const char *xml,
    size_t len, const wse_limits *lim);

/* The MessageID of an envelope this program built (NUL-terminated). */
const char *wse_env_message_id(const wse_envelope *env);

/*
 * Parse bytes received from the network.  Checks: the hardened parser;
 * root soap:Envelope; element children exactly [Header] Body; at most
 * lim->max_soap_headers header blocks; at most one each of wsa:To,
 * wsa:Action, wsa:MessageID, wsa:RelatesTo and wsse:Security; a header
 * block of another namespace with mustUnderstand="true"/"1" is refused
 * (WSE_ERR_UNSUPPORTED).  WSE_ERR_PARSE / WSE_ERR_TOO_LARGE /
 * WSE_ERR_INVALID otherwise.  Nothing here is trusted yet.
 */
wse_status wse_env_parse(const uint8_t *data, size_t len,
    const wse_limits *lim, wse_envelope **env_r);

/* Candidate nodes of a parsed or built envelope (NULL when absent). */
xmlDocPtr wse_env_doc(wse_envelope *env);
xmlNodePtr wse_env_header(wse_envelope *env);
xmlNodePtr wse_env_body(wse_envelope *env);
/* The header block (ns, local) (NULL when absent). */
xmlNodePtr wse_env_header_block(wse_envelope *env, const char *ns,
    const char *local);
/* wsse:Security, creating it (first in Header order after the
 * addressing blocks) when create is set. */
xmlNodePtr wse_env_security(wse_envelope *env, int create);

/* Serialise for the wire (UTF-8, no added white space). */
wse_status wse_env_serialize(wse_envelope *env, wse_buf *out);

void wse_env_free(wse_envelope **env);

/* ---- Faults ---- */

/*
 * The SOAP 1.2 Fault for status st: Code env:Sender (or env:Receiver for
 * WSE_ERR_TEMPFAIL, WSE_ERR_IO, WSE_ERR_NOMEM, WSE_ERR_INTERNAL), Subcode
 * wse:<name> (wse_fault_subcode), and a generic English Reason that
 * reveals nothing beyond the subcode (the precise reason belongs in the
 * server log).  relates_to (may be NULL) becomes wsa:RelatesTo.  The
 * result is an unsigned envelope; a server signs it like any response.
 */
wse_status wse_fault_new(wse_status st, const char *to,
    const char *relates_to, wse_envelope **env_r);

/* Subcode local name for a status: "MessageExpired", "Replay",
 * "BadSignature", "UntrustedCertificate", "NotAuthorized", ... */
const char *wse_fault_subcode(wse_status st);

/* Generic reason text for a status. */
const char *wse_fault_reason(wse_status st);

/*
 * If env's Body is a Fault: WSE_OK with *st_r set to the status its
 * subcode names (WSE_ERR_INTERNAL for an unknown subcode) and its reason
 * copied into reason (may be NULL).  WSE_ERR_NOT_FOUND when it is not a
 * Fault.
 */
wse_status wse_fault_read(xmlNodePtr body, wse_status *st_r, char *reason,
    size_t reason_size);

/* ---- time values (xs:dateTime, UTC only) ---- */

/* Format t as "YYYY-MM-DDTHH:MM:SSZ". */
void wse_time_format(int64_t t, char out[21]);

/* Parse "YYYY-MM-DDTHH:MM:SS[.fraction]Z" strictly (fraction dropped).
 * WSE_ERR_INVALID for anything else (no other zones, no leap seconds). */
wse_status wse_time_parse(const char *s, int64_t *t_r);

#endif
