/*
 * soap.c - SOAP 1.2 envelopes, WS-Addressing headers, Faults, dateTime.
 */
#include "soap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>

#include "crypto.h"
#include "xml.h"

struct wse_envelope {
	xmlDocPtr doc;
	xmlNodePtr envelope;
	xmlNodePtr header;
	xmlNodePtr body;
	char message_id[WSE_UUID_URN_LEN + 1];
};

/* Refuse empty strings and control characters in header values. */
static wse_status
check_value(const char *what, const char *s)
{
	const unsigned char *p;

	if (s == NULL || *s == '\0')
		return wse_err(WSE_ERR_INVALID, "%s is empty", what);
	for (p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return wse_err(WSE_ERR_INVALID,
			    "%s holds a control character", what);
	if (p - (const unsigned char *)s > 2048)
		return wse_err(WSE_ERR_TOO_LARGE, "%s is too long", what);
	return WSE_OK;
}

static xmlNsPtr
ns_of(xmlNodePtr root, const char *uri)
{
	return xmlSearchNsByHref(root->doc, root, BAD_CAST uri);
}

/* Add <prefix:local>text</prefix:local> under parent. */
static xmlNodePtr
add_text_child(xmlNodePtr parent, xmlNsPtr ns, const char *local,
    const char *text)
{
	xmlNodePtr n;

	if ((n = xmlNewNode(ns, BAD_CAST local)) == NULL)
		return NULL;
	if (text != NULL) {
		/* xmlNodeAddContent escapes; xmlNewTextChild would too. */
		xmlNodePtr t = xmlNewText(BAD_CAST text);
		if (t == NULL || xmlAddChild(n, t) == NULL) {
			xmlFreeNode(t);
			xmlFreeNode(n);
			return NULL;
		}
	}
	if (xmlAddChild(parent, n) == NULL) {
		xmlFreeNode(n);
		return NULL;
	}
	return n;
}

wse_status
wse_env_new(const char *to, const char *action, wse_envelope **env_r)
{
	wse_envelope *env = NULL;
	wse_status st;
	xmlNsPtr s, wsa;

	*env_r = NULL;
	if ((st = check_value("wsa:To", to)) != WSE_OK ||
	    (st = check_value("wsa:Action", action)) != WSE_OK)
		return st;
	if ((st = wse_xml_init()) != WSE_OK)
		return st;
	if ((env = calloc(1, sizeof(*env))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate envelope");
	st = WSE_ERR_NOMEM;
	if ((env->doc = xmlNewDoc(BAD_CAST "1.0")) == NULL ||
	    (env->envelope = xmlNewNode(NULL, BAD_CAST "Envelope")) == NULL)
		goto nomem;
	xmlDocSetRootElement(env->doc, env->envelope);
	if ((s = xmlNewNs(env->envelope, BAD_CAST WSE_NS_SOAP,
	    BAD_CAST "s")) == NULL ||
	    (wsa = xmlNewNs(env->envelope, BAD_CAST WSE_NS_WSA,
	    BAD_CAST "wsa")) == NULL ||
	    xmlNewNs(env->envelope, BAD_CAST WSE_NS_WSSE,
	    BAD_CAST "wsse") == NULL ||
	    xmlNewNs(env->envelope, BAD_CAST WSE_NS_WSU,
	    BAD_CAST "wsu") == NULL)
		goto nomem;
	xmlSetNs(env->envelope, s);
	if ((st = wse_uuid_urn(env->message_id)) != WSE_OK)
		goto out;
	st = WSE_ERR_NOMEM;
	if ((env->header = add_text_child(env->envelope, s, "Header",
	    NULL)) == NULL ||
	    (env->body = add_text_child(env->envelope, s, "Body",
	    NULL)) == NULL ||
	    add_text_child(env->header, wsa, "To", to) == NULL ||
	    add_text_child(env->header, wsa, "Action", action) == NULL ||
	    add_text_child(env->header, wsa, "MessageID",
	    env->message_id) == NULL)
		goto nomem;
	*env_r = env;
	env = NULL;
	st = WSE_OK;
	goto out;
nomem:
	st = wse_err(WSE_ERR_NOMEM, "cannot build envelope");
out:
	wse_env_free(&env);
	return st;
}

wse_status
wse_env_set_relates_to(wse_envelope *env, const char *message_id)
{
	wse_status st;
	xmlNodePtr n, after;

	if ((st = check_value("wsa:RelatesTo", message_id)) != WSE_OK)
		return st;
	if (env->header == NULL)
		return wse_err(WSE_ERR_INVALID, "envelope has no Header");
	if (wse_env_header_block(env, WSE_NS_WSA, "RelatesTo") != NULL)
		return wse_err(WSE_ERR_EXISTS, "RelatesTo is already set");
	if ((n = xmlNewNode(ns_of(env->envelope, WSE_NS_WSA),
	    BAD_CAST "RelatesTo")) == NULL ||
	    xmlAddChild(n, xmlNewText(BAD_CAST message_id)) == NULL) {
		xmlFreeNode(n);
		return wse_err(WSE_ERR_NOMEM, "cannot add RelatesTo");
	}
	after = wse_env_header_block(env, WSE_NS_WSA, "MessageID");
	if ((after != NULL ? xmlAddNextSibling(after, n) :
	    xmlAddChild(env->header, n)) == NULL) {
		xmlFreeNode(n);
		return wse_err(WSE_ERR_NOMEM, "cannot add RelatesTo");
	}
	return WSE_OK;
}

xmlNodePtr
wse_env_body_node(wse_envelope *env)
{
	return env->body;
}

wse_status
wse_env_add_body_xml(wse_envelope *env, const char *xml, size_t len,
    const wse_limits *lim)
{
	xmlDocPtr frag = NULL;
	xmlNodePtr root, copy;
	wse_status st;

	if ((st = wse_xml_parse((const uint8_t *)xml, len, lim, &frag)) !=
	    WSE_OK)
		return st;
	if ((root = xmlDocGetRootElement(frag)) == NULL) {
		st = wse_err(WSE_ERR_PARSE, "payload has no root element");
		goto out;
	}
	if ((copy = xmlDocCopyNode(root, env->doc, 1)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot copy payload");
		goto out;
	}
	if (xmlAddChild(env->body, copy) == NULL) {
		xmlFreeNode(copy);
		st = wse_err(WSE_ERR_NOMEM, "cannot add payload");
		goto out;
	}
	/* Drop namespace declarations the Envelope already has. */
	(void)xmlReconciliateNs(env->doc, copy);
	st = WSE_OK;
out:
	xmlFreeDoc(frag);
	return st;
}

const char *
wse_env_message_id(const wse_envelope *env)
{
	return env->message_id;
}

static int
must_understand(const xmlNode *n)
{
	const char *v = wse_xml_attr(n, WSE_NS_SOAP, "mustUnderstand");

	return v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

wse_status
wse_env_parse(const uint8_t *data, size_t len, const wse_limits *lim,
    wse_envelope **env_r)
{
	wse_envelope *env = NULL;
	xmlNodePtr n;
	wse_status st;
	unsigned nheaders = 0;
	static const char *const once[] = {
		WSE_NS_WSA, "To", WSE_NS_WSA, "Action", WSE_NS_WSA, "MessageID",
		WSE_NS_WSA, "RelatesTo", WSE_NS_WSSE, "Security",
	};
	size_t i;

	*env_r = NULL;
	if ((env = calloc(1, sizeof(*env))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate envelope");
	if ((st = wse_xml_parse(data, len, lim, &env->doc)) != WSE_OK)
		goto out;
	st = WSE_ERR_INVALID;
	env->envelope = xmlDocGetRootElement(env->doc);
	if (!wse_xml_is(env->envelope, WSE_NS_SOAP, "Envelope")) {
		wse_err(st, "root element is not a SOAP 1.2 Envelope");
		goto out;
	}
	n = wse_xml_first_elem(env->envelope);
	if (wse_xml_is(n, WSE_NS_SOAP, "Header")) {
		env->header = n;
		n = wse_xml_next_elem(n);
	}
	if (!wse_xml_is(n, WSE_NS_SOAP, "Body")) {
		wse_err(st, "Envelope lacks its Body");
		goto out;
	}
	env->body = n;
	if (wse_xml_next_elem(n) != NULL) {
		wse_err(st, "Envelope has elements after its Body");
		goto out;
	}
	for (n = env->header ? wse_xml_first_elem(env->header) : NULL;
	    n != NULL; n = wse_xml_next_elem(n)) {
		if (++nheaders > lim->max_soap_headers) {
			st = wse_err(WSE_ERR_TOO_LARGE,
			    "more than %u header blocks",
			    lim->max_soap_headers);
			goto out;
		}
		if (n->ns == NULL) {
			wse_err(st, "header block %s has no namespace",
			    (const char *)n->name);
			goto out;
		}
		if (must_understand(n) &&
		    strcmp((const char *)n->ns->href, WSE_NS_WSA) != 0 &&
		    strcmp((const char *)n->ns->href, WSE_NS_WSSE) != 0 &&
		    strcmp((const char *)n->ns->href, WSE_NS_WSE) != 0) {
			st = wse_err(WSE_ERR_UNSUPPORTED,
			    "header block {%s}%s must be understood",
			    (const char *)n->ns->href, (const char *)n->name);
			goto out;
		}
	}
	for (i = 0; env->header != NULL && i < sizeof(once) / sizeof(once[0]);
	    i += 2) {
		if (wse_xml_count_children(env->header, once[i],
		    once[i + 1]) > 1) {
			wse_err(st, "header block %s appears more than once",
			    once[i + 1]);
			goto out;
		}
	}
	*env_r = env;
	env = NULL;
	st = WSE_OK;
out:
	wse_env_free(&env);
	return st;
}

xmlDocPtr
wse_env_doc(wse_envelope *env)
{
	return env->doc;
}

xmlNodePtr
wse_env_header(wse_envelope *env)
{
	return env->header;
}

xmlNodePtr
wse_env_body(wse_envelope *env)
{
	return env->body;
}

xmlNodePtr
wse_env_header_block(wse_envelope *env, const char *ns, const char *local)
{
	xmlNodePtr n;

	if (env->header == NULL)
		return NULL;
	for (n = wse_xml_first_elem(env->header); n; n = wse_xml_next_elem(n))
		if (wse_xml_is(n, ns, local))
			return n;
	return NULL;
}

xmlNodePtr
wse_env_security(wse_envelope *env, int create)
{
	xmlNodePtr sec, n;

	if ((sec = wse_env_header_block(env, WSE_NS_WSSE, "Security")) ||
	    !create || env->header == NULL)
		return sec;
	if ((sec = xmlNewNode(ns_of(env->envelope, WSE_NS_WSSE),
	    BAD_CAST "Security")) == NULL)
		return NULL;
	xmlSetNsProp(sec, ns_of(env->envelope, WSE_NS_SOAP),
	    BAD_CAST "mustUnderstand", BAD_CAST "true");
	if ((n = wse_env_header_block(env, WSE_NS_WSA, "RelatesTo")) == NULL)
		n = wse_env_header_block(env, WSE_NS_WSA, "MessageID");
	if ((n != NULL ? xmlAddNextSibling(n, sec) :
	    xmlAddChild(env->header, sec)) == NULL) {
		xmlFreeNode(sec);
		return NULL;
	}
	return sec;
}

wse_status
wse_env_serialize(wse_envelope *env, wse_buf *out)
{
	return wse_xml_serialize(env->doc, out);
}

void
wse_env_free(wse_envelope **envp)
{
	wse_envelope *env;

	if (envp == NULL || (env = *envp) == NULL)
		return;
	xmlFreeDoc(env->doc);
	wse_memzero(env, sizeof(*env));
	free(env);
	*envp = NULL;
}

/* ---- Faults ---- */

static const struct {
	wse_status st;
	const char *subcode;
	const char *reason;
} faults[] = {
	{ WSE_ERR_EXPIRED, "MessageExpired", "The message has expired" },
	{ WSE_ERR_FUTURE, "MessageFromFuture",
	    "The message timestamp lies in the future" },
	{ WSE_ERR_REPLAY, "Replay", "The message was already received" },
	{ WSE_ERR_BAD_SIGNATURE, "BadSignature",
	    "The message signature is not valid" },
	{ WSE_ERR_UNSUPPORTED, "Unsupported",
	    "The message uses a feature or algorithm that is not allowed" },
	{ WSE_ERR_CERT_EXPIRED, "CertificateExpired",
	    "A certificate has expired" },
	{ WSE_ERR_CERT_NOT_YET_VALID, "CertificateNotYetValid",
	    "A certificate is not yet valid" },
	{ WSE_ERR_UNTRUSTED, "UntrustedCertificate",
	    "The signer's certificate is not trusted" },
	{ WSE_ERR_REVOKED, "CertificateRevoked",
	    "A certificate has been revoked" },
	{ WSE_ERR_DOMAIN_MISMATCH, "DomainMismatch",
	    "The signer does not speak for the sender's domain" },
	{ WSE_ERR_NOT_AUTHORIZED, "NotAuthorized", "Not authorized" },
	{ WSE_ERR_NO_SUCH_USER, "NoSuchUser", "No such mailbox" },
	{ WSE_ERR_TOO_LARGE, "TooLarge", "The message exceeds a limit" },
	{ WSE_ERR_PARSE, "InvalidMessage", "The message is malformed" },
	{ WSE_ERR_INVALID, "InvalidMessage", "The message is malformed" },
	{ WSE_ERR_TEMPFAIL, "TemporaryFailure",
	    "Temporary failure, try again later" },
	{ WSE_ERR_NOT_FOUND, "NotFound", "Not found" },
};

static int
fault_index(wse_status st)
{
	size_t i;

	for (i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
		if (faults[i].st == st)
			return (int)i;
	return -1;
}

const char *
wse_fault_subcode(wse_status st)
{
	int i = fault_index(st);

	return i < 0 ? "InternalError" : faults[i].subcode;
}

const char *
wse_fault_reason(wse_status st)
{
	int i = fault_index(st);

	return i < 0 ? "Internal server error" : faults[i].reason;
}

static int
is_receiver_fault(wse_status st)
{
	return st == WSE_ERR_TEMPFAIL || st == WSE_ERR_IO ||
	    st == WSE_ERR_NOMEM || st == WSE_ERR_INTERNAL ||
	    fault_index(st) < 0;
}

wse_status
wse_fault_new(wse_status st, const char *to, const char *relates_to,
    wse_envelope **env_r)
{
	wse_envelope *env = NULL;
	xmlNsPtr s, wse;
	xmlNodePtr fault, code, sub, reason, text;
	wse_status rc;
	char qname[128];

	*env_r = NULL;
	if ((rc = wse_env_new(to, WSE_NS_WSA "/fault", &env)) != WSE_OK)
		return rc;
	if (relates_to != NULL &&
	    (rc = wse_env_set_relates_to(env, relates_to)) != WSE_OK)
		goto out;
	rc = wse_err(WSE_ERR_NOMEM, "cannot build Fault");
	s = ns_of(env->envelope, WSE_NS_SOAP);
	if ((wse = xmlNewNs(env->envelope, BAD_CAST WSE_NS_WSE,
	    BAD_CAST "wse")) == NULL)
		goto out;
	if ((fault = add_text_child(env->body, s, "Fault", NULL)) == NULL ||
	    (code = add_text_child(fault, s, "Code", NULL)) == NULL ||
	    add_text_child(code, s, "Value", is_receiver_fault(st) ?
	    "s:Receiver" : "s:Sender") == NULL ||
	    (sub = add_text_child(code, s, "Subcode", NULL)) == NULL)
		goto out;
	(void)snprintf(qname, sizeof(qname), "wse:%s", wse_fault_subcode(st));
	if (add_text_child(sub, s, "Value", qname) == NULL ||
	    (reason = add_text_child(fault, s, "Reason", NULL)) == NULL ||
	    (text = add_text_child(reason, s, "Text",
	    wse_fault_reason(st))) == NULL ||
	    xmlSetNsProp(text, xmlSearchNsByHref(env->doc, text,
	    XML_XML_NAMESPACE), BAD_CAST "lang", BAD_CAST "en") == NULL)
		goto out;
	wse_err_clear();
	*env_r = env;
	env = NULL;
	rc = WSE_OK;
out:
	wse_env_free(&env);
	return rc;
}

wse_status
wse_fault_read(xmlNodePtr body, wse_status *st_r, char *reason,
    size_t reason_size)
{
	xmlNodePtr fault, code, sub, val, r, text;
	wse_buf *b = NULL;
	wse_status st;
	const char *colon;
	size_t i;

	*st_r = WSE_ERR_INTERNAL;
	if (reason != NULL && reason_size > 0)
		reason[0] = '\0';
	if (body == NULL || wse_xml_only_child(body, WSE_NS_SOAP, "Fault",
	    &fault) != WSE_OK)
		return WSE_ERR_NOT_FOUND;
	wse_err_clear();
	if ((b = wse_buf_new(1024)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	if (wse_xml_only_child(fault, WSE_NS_SOAP, "Code", &code) == WSE_OK &&
	    wse_xml_only_child(code, WSE_NS_SOAP, "Subcode", &sub) == WSE_OK &&
	    wse_xml_only_child(sub, WSE_NS_SOAP, "Value", &val) == WSE_OK &&
	    wse_xml_text(val, b) == WSE_OK) {
		colon = strchr(wse_buf_str(b), ':');
		colon = colon ? colon + 1 : wse_buf_str(b);
		for (i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
			if (strcmp(colon, faults[i].subcode) == 0) {
				*st_r = faults[i].st;
				break;
			}
	}
	wse_buf_reset(b);
	if (reason != NULL && reason_size > 0 &&
	    wse_xml_only_child(fault, WSE_NS_SOAP, "Reason", &r) == WSE_OK &&
	    (text = wse_xml_first_elem(r)) != NULL &&
	    wse_xml_text(text, b) == WSE_OK)
		(void)snprintf(reason, reason_size, "%s", wse_buf_str(b));
	st = WSE_OK;
	wse_buf_free(&b);
	return st;
}

/* ---- dateTime ---- */

void
wse_time_format(int64_t t, char out[21])
{
	struct tm tm;
	time_t tt = (time_t)t;
	char tmp[64];

	if (gmtime_r(&tt, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	(void)snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02dZ",
	    (tm.tm_year + 1900) % 10000, tm.tm_mon + 1, tm.tm_mday,
	    tm.tm_hour, tm.tm_min, tm.tm_sec);
	(void)snprintf(out, 21, "%.20s", tmp);
}

static int
digits(const char *s, int n, int *v)
{
	int i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		*v = *v * 10 + (s[i] - '0');
	}
	return 1;
}

wse_status
wse_time_parse(const char *s, int64_t *t_r)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	int y, mo, d, h, mi, sec, leap, dim;
	const char *p;
	int64_t days;

	if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' ||
	    !digits(s + 5, 2, &mo) || s[7] != '-' || !digits(s + 8, 2, &d) ||
	    s[10] != 'T' || !digits(s + 11, 2, &h) || s[13] != ':' ||
	    !digits(s + 14, 2, &mi) || s[16] != ':' ||
	    !digits(s + 17, 2, &sec))
		goto bad;
	p = s + 19;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			goto bad;
		while (*p >= '0' && *p <= '9' && p - s < 40)
			p++;
	}
	if (p[0] != 'Z' || p[1] != '\0')
		goto bad;
	if (y < 1970 || mo < 1 || mo > 12 || h > 23 || mi > 59 || sec > 59)
		goto bad;
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	dim = mdays[mo - 1] + (mo == 2 && leap);
	if (d < 1 || d > dim)
		goto bad;
	/* Days since the epoch (civil-from-days inverse, Howard Hinnant). */
	{
		int64_t yy = y - (mo <= 2);
		int64_t era = yy / 400;
		int64_t yoe = yy - era * 400;
		int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
		int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
		days = era * 146097 + doe - 719468;
	}
	*t_r = days * 86400 + h * 3600 + mi * 60 + sec;
	return WSE_OK;
bad:
	return wse_err(WSE_ERR_INVALID, "not a UTC xs:dateTime: %.40s", s);
}
