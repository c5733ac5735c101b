/*
 * xml.c - the hardened XML parser and namespace-aware navigation.
 *
 * SECURITY: every byte handed to wse_xml_parse() is untrusted (it comes
 * from the network).  Three independent layers keep libxml2 2.9.14 away
 * from its known traps (SECURITY-NOTES.md, "libxml2 2.9.14 traps"):
 *
 *  1. wse_xml_prescan() walks the raw bytes once, in linear time, and
 *     refuses DTDs, entity and other markup declarations, processing
 *     instructions, NUL bytes, non-UTF-8 input and anything over the
 *     configured size, depth, attribute, tag-length and element limits,
 *     before libxml2 sees a single byte (libxml2 spends quadratic time on
 *     many attributes and expands internal entities without bound).
 *  2. libxml2 parses with XML_PARSE_NONET | XML_PARSE_NOCDATA only; the
 *     per-context SAX handler stops the parser on any DOCTYPE and refuses
 *     entity declarations, entity look-ups and entity resolution; the
 *     process-wide external entity loader refuses everything.  The verdict
 *     comes from the parser's wellFormed / nsWellFormed / errNo, never from
 *     "a document came back".
 *  3. The finished tree is walked once more: a DTD, an entity reference or
 *     a processing instruction anywhere fails the parse.
 *
 * libxml2 never prints: each parse installs a capturing structured error
 * handler on its own context and, for the duration of the call, on the
 * calling thread's libxml2 error globals (thread-local in a threaded
 * libxml2, which this file insists on), restoring them afterwards.
 */
#include "xml.h"

#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/SAX2.h>
#include <libxml/globals.h>
#include <libxml/parser.h>
#include <libxml/xmlsave.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlversion.h>

#ifndef LIBXML_THREAD_ENABLED
#error "libwsemail needs a libxml2 built with thread support"
#endif

/* The only parser options ever used.  Never NOENT, DTDLOAD, DTDATTR,
 * DTDVALID, XINCLUDE, HUGE or RECOVER. */
#define WSE_XML_PARSE_OPTIONS (XML_PARSE_NONET | XML_PARSE_NOCDATA)

#define WSE_XML_INT_MAX ((size_t)INT_MAX)

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

/* Copy at most 40 bytes of untrusted text into dst for an error message:
 * printable ASCII only, everything else as '?', "..." when cut. */
static const char *
excerpt(char *dst, size_t size, const void *src, size_t len)
{
	const unsigned char *s = src;
	size_t i, o = 0, max = 40;

	if (size == 0)
		return dst;
	for (i = 0; i < len && i < max && o + 1 < size; i++)
		dst[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
	if (i < len && o + 4 < size) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	return dst;
}

static int
is_xml_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int
starts_with(const uint8_t *p, size_t avail, const char *lit)
{
	size_t n = strlen(lit);

	return avail >= n && memcmp(p, lit, n) == 0;
}

/* ------------------------------------------------------------------ */
/* Prescan                                                             */
/* ------------------------------------------------------------------ */

/*
 * The leading XML declaration "<?xml ...?>" at p (avail bytes left).
 * Checks that its pseudo-attributes are version / encoding / standalone
 * and that the encoding, when present, is UTF-8.  *used_r: bytes consumed.
 */
static wse_status
scan_xml_decl(const uint8_t *p, size_t avail, size_t off,
    const wse_limits *lim, size_t *used_r)
{
	size_t end, k, window, ns, ne, vs, ve;
	char ex[64];
	uint8_t q;

	window = avail < lim->max_tag_bytes ? avail : lim->max_tag_bytes;
	for (end = 5; end + 1 < window; end++)
		if (p[end] == '?' && p[end + 1] == '>')
			break;
	if (end + 1 >= window) {
		if (avail > lim->max_tag_bytes)
			return wse_err(WSE_ERR_TOO_LARGE,
			    "XML declaration longer than tag limit %zu bytes",
			    lim->max_tag_bytes);
		return wse_err(WSE_ERR_PARSE, "unterminated XML declaration");
	}
	k = 5;
	for (;;) {
		while (k < end && is_xml_space(p[k]))
			k++;
		if (k == end)
			break;
		ns = k;
		while (k < end && ((p[k] >= 'a' && p[k] <= 'z') ||
		    (p[k] >= 'A' && p[k] <= 'Z')))
			k++;
		ne = k;
		while (k < end && is_xml_space(p[k]))
			k++;
		if (ne == ns || k == end || p[k] != '=')
			return wse_err(WSE_ERR_PARSE,
			    "malformed XML declaration at offset %zu", off + k);
		k++;
		while (k < end && is_xml_space(p[k]))
			k++;
		if (k == end || (p[k] != '"' && p[k] != '\''))
			return wse_err(WSE_ERR_PARSE,
			    "malformed XML declaration at offset %zu", off + k);
		q = p[k++];
		vs = k;
		while (k < end && p[k] != q)
			k++;
		if (k == end)
			return wse_err(WSE_ERR_PARSE,
			    "malformed XML declaration at offset %zu", off + k);
		ve = k++;
		if (ne - ns == 8 && memcmp(p + ns, "encoding", 8) == 0) {
			if (ve - vs != 5 || strncasecmp((const char *)p + vs,
			    "UTF-8", 5) != 0)
				return wse_err(WSE_ERR_PARSE,
				    "XML encoding \"%s\" is not accepted: "
				    "only UTF-8",
				    excerpt(ex, sizeof(ex), p + vs, ve - vs));
		} else if (!(ne - ns == 7 && memcmp(p + ns, "version", 7) == 0) &&
		    !(ne - ns == 10 && memcmp(p + ns, "standalone", 10) == 0)) {
			return wse_err(WSE_ERR_PARSE,
			    "unknown XML declaration attribute \"%s\"",
			    excerpt(ex, sizeof(ex), p + ns, ne - ns));
		}
	}
	*used_r = end + 2;
	return WSE_OK;
}

/*
 * An element tag starting with '<' at data[i] (not "</", "<!" or "<?").
 * Counts attribute names (a name token outside quotes that follows
 * white space or a closing quote), enforces the tag length and attribute
 * limits as it goes, and tells whether the tag is empty ("<a/>").
 */
static wse_status
scan_start_tag(const uint8_t *data, size_t len, size_t i,
    const wse_limits *lim, size_t *end_r, int *empty_r)
{
	size_t j, limit;
	unsigned attrs = 0;
	uint8_t quote = 0, c;
	int sep = 0;

	limit = lim->max_tag_bytes;
	for (j = i + 1; j < len; j++) {
		if (j - i + 1 > limit)
			return wse_err(WSE_ERR_TOO_LARGE,
			    "XML tag at offset %zu is longer than limit %zu "
			    "bytes", i, limit);
		c = data[j];
		if (quote != 0) {
			if (c == quote) {
				quote = 0;
				sep = 1;
			} else if (c == '<') {
				return wse_err(WSE_ERR_PARSE,
				    "'<' in attribute value at offset %zu", j);
			}
			continue;
		}
		switch (c) {
		case '>':
			*end_r = j + 1;
			*empty_r = data[j - 1] == '/';
			return WSE_OK;
		case '<':
			return wse_err(WSE_ERR_PARSE,
			    "'<' inside tag at offset %zu", j);
		case '"':
		case '\'':
			quote = c;
			break;
		case ' ': case '\t': case '\r': case '\n':
			sep = 1;
			break;
		case '=':
		case '/':
			sep = 0;
			break;
		default:
			if (sep) {
				if (++attrs > lim->max_attrs_per_tag)
					return wse_err(WSE_ERR_TOO_LARGE,
					    "XML tag at offset %zu has more than "
					    "%u attributes", i,
					    lim->max_attrs_per_tag);
				sep = 0;
			}
			break;
		}
	}
	if (quote != 0)
		return wse_err(WSE_ERR_PARSE,
		    "unterminated attribute value in tag at offset %zu", i);
	return wse_err(WSE_ERR_PARSE, "unterminated tag at offset %zu", i);
}

/* An end tag "</name>" at data[i]. */
static wse_status
scan_end_tag(const uint8_t *data, size_t len, size_t i,
    const wse_limits *lim, size_t *end_r)
{
	size_t j;

	for (j = i + 2; j < len; j++) {
		if (j - i + 1 > lim->max_tag_bytes)
			return wse_err(WSE_ERR_TOO_LARGE,
			    "XML end tag at offset %zu is longer than limit "
			    "%zu bytes", i, lim->max_tag_bytes);
		if (data[j] == '>') {
			*end_r = j + 1;
			return WSE_OK;
		}
		if (data[j] == '<' || data[j] == '"' || data[j] == '\'')
			return wse_err(WSE_ERR_PARSE,
			    "malformed end tag at offset %zu", i);
	}
	return wse_err(WSE_ERR_PARSE, "unterminated end tag at offset %zu", i);
}

/* "<!" at data[i]: a comment or a CDATA section, scanned to its end;
 * every other declaration is refused. */
static wse_status
scan_bang(const uint8_t *data, size_t len, size_t i, size_t depth,
    size_t *end_r)
{
	const uint8_t *p = data + i, *e;
	size_t avail = len - i;

	if (starts_with(p, avail, "<!--")) {
		e = memmem(p + 4, avail - 4, "-->", 3);
		if (e == NULL)
			return wse_err(WSE_ERR_PARSE,
			    "unterminated comment at offset %zu", i);
		*end_r = (size_t)(e - data) + 3;
		return WSE_OK;
	}
	if (starts_with(p, avail, "<![CDATA[")) {
		if (depth == 0)
			return wse_err(WSE_ERR_PARSE,
			    "CDATA section outside the root element at "
			    "offset %zu", i);
		e = memmem(p + 9, avail - 9, "]]>", 3);
		if (e == NULL)
			return wse_err(WSE_ERR_PARSE,
			    "unterminated CDATA section at offset %zu", i);
		*end_r = (size_t)(e - data) + 3;
		return WSE_OK;
	}
	if (starts_with(p, avail, "<!DOCTYPE"))
		return wse_err(WSE_ERR_PARSE,
		    "DOCTYPE is not allowed in SOAP messages (offset %zu)", i);
	if (starts_with(p, avail, "<!ENTITY"))
		return wse_err(WSE_ERR_PARSE,
		    "ENTITY declaration is not allowed (offset %zu)", i);
	return wse_err(WSE_ERR_PARSE,
	    "markup declaration \"<!\" is not allowed (offset %zu)", i);
}

wse_status
wse_xml_prescan(const uint8_t *data, size_t len, const wse_limits *lim)
{
	wse_limits defaults;
	const uint8_t *p;
	size_t i = 0, end = 0, used = 0, depth = 0;
	unsigned long elements = 0;
	int empty = 0, seen_root = 0;
	wse_status st;

	if (lim == NULL) {
		wse_limits_default(&defaults);
		lim = &defaults;
	}
	if (data == NULL && len != 0)
		return wse_err(WSE_ERR_INVALID, "NULL XML data");
	if (len > lim->max_message_bytes)
		return wse_err(WSE_ERR_TOO_LARGE,
		    "XML message of %zu bytes exceeds limit %zu", len,
		    lim->max_message_bytes);
	if (len == 0)
		return wse_err(WSE_ERR_PARSE, "empty XML document");
	if (len >= 2 && ((data[0] == 0xFE && data[1] == 0xFF) ||
	    (data[0] == 0xFF && data[1] == 0xFE)))
		return wse_err(WSE_ERR_PARSE,
		    "UTF-16 byte order mark: only UTF-8 XML is accepted");
	if ((p = memchr(data, 0, len)) != NULL)
		return wse_err(WSE_ERR_PARSE, "NUL byte at offset %zu%s",
		    (size_t)(p - data), p - data < 4 ?
		    " (UTF-16 or UTF-32 XML is not accepted)" : "");
	if (starts_with(data, len, "\xEF\xBB\xBF"))
		i = 3;
	if (i == len || (data[i] != '<' && !is_xml_space(data[i])))
		return wse_err(WSE_ERR_PARSE,
		    "XML document must start with '<' or white space "
		    "(and be UTF-8)");
	if (starts_with(data + i, len - i, "<?xml") && len - i > 5 &&
	    is_xml_space(data[i + 5])) {
		if ((st = scan_xml_decl(data + i, len - i, i, lim, &used)) !=
		    WSE_OK)
			return st;
		i += used;
	}
	while (i < len) {
		if ((p = memchr(data + i, '<', len - i)) == NULL)
			break;
		i = (size_t)(p - data);
		if (i + 1 >= len)
			return wse_err(WSE_ERR_PARSE,
			    "unterminated markup at offset %zu", i);
		switch (data[i + 1]) {
		case '!':
			if ((st = scan_bang(data, len, i, depth, &end)) !=
			    WSE_OK)
				return st;
			break;
		case '?':
			if (starts_with(data + i, len - i, "<?xml"))
				return wse_err(WSE_ERR_PARSE,
				    "XML declaration or <?xml...?> "
				    "processing instruction not at the start "
				    "(offset %zu)", i);
			return wse_err(WSE_ERR_PARSE,
			    "processing instruction at offset %zu is not "
			    "allowed", i);
		case '/':
			if ((st = scan_end_tag(data, len, i, lim, &end)) !=
			    WSE_OK)
				return st;
			if (depth == 0)
				return wse_err(WSE_ERR_PARSE,
				    "end tag without start tag at offset %zu",
				    i);
			depth--;
			break;
		default:
			if ((st = scan_start_tag(data, len, i, lim, &end,
			    &empty)) != WSE_OK)
				return st;
			if (depth == 0 && seen_root)
				return wse_err(WSE_ERR_PARSE,
				    "second root element at offset %zu", i);
			seen_root = 1;
			if (++elements > lim->max_xml_nodes)
				return wse_err(WSE_ERR_TOO_LARGE,
				    "XML element count %lu exceeds limit %lu",
				    elements, lim->max_xml_nodes);
			if (!empty && ++depth > lim->max_xml_depth)
				return wse_err(WSE_ERR_TOO_LARGE,
				    "XML depth %zu exceeds limit %u", depth,
				    lim->max_xml_depth);
			break;
		}
		i = end;
	}
	if (!seen_root)
		return wse_err(WSE_ERR_PARSE, "XML document has no root element");
	if (depth != 0)
		return wse_err(WSE_ERR_PARSE,
		    "truncated XML document: %zu element(s) not closed", depth);
	return WSE_OK;
}

/* ------------------------------------------------------------------ */
/* libxml2 set-up and error capture                                    */
/* ------------------------------------------------------------------ */

/* What one parse learnt from its hooks and libxml2's error reports. */
struct parse_cap {
	xmlParserCtxtPtr ctxt;
	int refused;		/* a hook refused a construct */
	char reason[128];	/* the first refusal */
	int have_err;
	char msg[192];		/* libxml2's first error message */
	int line, col;
};

/* The parse running on this thread (callbacks run synchronously). */
static _Thread_local struct parse_cap *cur_cap;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void
cap_refuse(const char *what)
{
	struct parse_cap *cap = cur_cap;

	if (cap == NULL || cap->refused)
		return;
	cap->refused = 1;
	(void)snprintf(cap->reason, sizeof(cap->reason), "%s", what);
}

/* Refuse, and stop the parser (only from SAX callbacks). */
static void
cap_refuse_stop(const char *what)
{
	cap_refuse(what);
	if (cur_cap != NULL && cur_cap->ctxt != NULL)
		xmlStopParser(cur_cap->ctxt);
}

static void
quiet_generic(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

/* Structured error sink: keep the first error's text, print nothing. */
static void
capture_serror(void *data, xmlErrorPtr err)
{
	struct parse_cap *cap = cur_cap;
	size_t n;

	(void)data;
	if (cap == NULL || err == NULL || cap->have_err ||
	    err->level < XML_ERR_ERROR)
		return;
	cap->have_err = 1;
	cap->line = err->line;
	cap->col = err->int2;
	if (err->message == NULL) {
		(void)snprintf(cap->msg, sizeof(cap->msg), "libxml2 error %d",
		    err->code);
		return;
	}
	n = strlen(err->message);
	while (n > 0 && (err->message[n - 1] == '\n' ||
	    err->message[n - 1] == '\r'))
		n--;
	if (n >= sizeof(cap->msg))
		n = sizeof(cap->msg) - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)err->message[i];
		cap->msg[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	cap->msg[n] = '\0';
}

/* The process-wide external entity loader: refuses everything. */
static xmlParserInputPtr
refuse_entity_loader(const char *url, const char *id, xmlParserCtxtPtr ctxt)
{
	(void)url;
	(void)id;
	(void)ctxt;
	cap_refuse("external entity refused");
	return NULL;
}

/* SAX hooks installed on every context we create. */
static void
hook_internal_subset(void *ctx, const xmlChar *name, const xmlChar *eid,
    const xmlChar *sid)
{
	(void)ctx; (void)name; (void)eid; (void)sid;
	cap_refuse_stop("DOCTYPE is not allowed in SOAP messages");
}

static void
hook_external_subset(void *ctx, const xmlChar *name, const xmlChar *eid,
    const xmlChar *sid)
{
	(void)ctx; (void)name; (void)eid; (void)sid;
	cap_refuse_stop("external DTD subset is not allowed");
}

static void
hook_entity_decl(void *ctx, const xmlChar *name, int type,
    const xmlChar *pid, const xmlChar *sid, xmlChar *content)
{
	(void)ctx; (void)name; (void)type; (void)pid; (void)sid; (void)content;
	cap_refuse_stop("ENTITY declaration is not allowed");
}

static void
hook_unparsed_entity_decl(void *ctx, const xmlChar *name,
    const xmlChar *pid, const xmlChar *sid, const xmlChar *notation)
{
	(void)ctx; (void)name; (void)pid; (void)sid; (void)notation;
	cap_refuse_stop("ENTITY declaration is not allowed");
}

static void
hook_notation_decl(void *ctx, const xmlChar *name, const xmlChar *pid,
    const xmlChar *sid)
{
	(void)ctx; (void)name; (void)pid; (void)sid;
	cap_refuse_stop("NOTATION declaration is not allowed");
}

static void
hook_element_decl(void *ctx, const xmlChar *name, int type,
    xmlElementContentPtr content)
{
	(void)ctx; (void)name; (void)type; (void)content;
	cap_refuse_stop("ELEMENT declaration is not allowed");
}

static void
hook_attribute_decl(void *ctx, const xmlChar *elem, const xmlChar *name,
    int type, int def, const xmlChar *defval, xmlEnumerationPtr tree)
{
	(void)ctx; (void)elem; (void)name; (void)type; (void)def;
	(void)defval;
	/* The SAX handler owns tree (see xmlSAX2AttributeDecl). */
	xmlFreeEnumeration(tree);
	cap_refuse_stop("ATTLIST declaration is not allowed");
}

/* Predefined entities (&lt; ...) never reach this hook; every other
 * entity reference is refused. */
static xmlEntityPtr
hook_get_entity(void *ctx, const xmlChar *name)
{
	(void)ctx; (void)name;
	cap_refuse("entity references are not allowed");
	return NULL;
}

static xmlParserInputPtr
hook_resolve_entity(void *ctx, const xmlChar *pid, const xmlChar *sid)
{
	(void)ctx; (void)pid; (void)sid;
	cap_refuse("external entity refused");
	return NULL;
}

static void
xml_init_once(void)
{
	xmlInitParser();
	xmlSetExternalEntityLoader(refuse_entity_loader);
}

wse_status
wse_xml_init(void)
{
	if (pthread_once(&init_once, xml_init_once) != 0)
		return wse_err(WSE_ERR_INTERNAL, "cannot initialise libxml2");
	return WSE_OK;
}

/* Silence libxml2 on this thread for the duration of one call. */
struct quiet {
	xmlStructuredErrorFunc serr;
	void *serr_ctx;
	xmlGenericErrorFunc gerr;
	void *gerr_ctx;
	struct parse_cap *prev_cap;
};

static void
quiet_begin(struct quiet *q, struct parse_cap *cap)
{
	q->serr = xmlStructuredError;
	q->serr_ctx = xmlStructuredErrorContext;
	q->gerr = xmlGenericError;
	q->gerr_ctx = xmlGenericErrorContext;
	q->prev_cap = cur_cap;
	xmlSetStructuredErrorFunc(NULL, capture_serror);
	xmlSetGenericErrorFunc(NULL, quiet_generic);
	cur_cap = cap;
}

static void
quiet_end(struct quiet *q)
{
	xmlStructuredError = q->serr;
	xmlStructuredErrorContext = q->serr_ctx;
	xmlGenericError = q->gerr;
	xmlGenericErrorContext = q->gerr_ctx;
	cur_cap = q->prev_cap;
}

/* Override every context setting that a thread-local libxml2 default
 * (xmlSubstituteEntitiesDefault, xmlLoadExtDtdDefaultValue, ...) may have
 * changed, and install the refusing SAX hooks and the quiet error sinks. */
static void
harden_ctxt(xmlParserCtxtPtr ctxt)
{
	xmlSAXHandlerPtr sax = ctxt->sax;

	ctxt->replaceEntities = 0;
	ctxt->loadsubset = 0;
	ctxt->validate = 0;
	ctxt->pedantic = 0;
	ctxt->keepBlanks = 1;
	ctxt->recovery = 0;
	sax->ignorableWhitespace = xmlSAX2Characters;
	sax->internalSubset = hook_internal_subset;
	sax->externalSubset = hook_external_subset;
	sax->entityDecl = hook_entity_decl;
	sax->unparsedEntityDecl = hook_unparsed_entity_decl;
	sax->notationDecl = hook_notation_decl;
	sax->elementDecl = hook_element_decl;
	sax->attributeDecl = hook_attribute_decl;
	sax->getEntity = hook_get_entity;
	sax->getParameterEntity = hook_get_entity;
	sax->resolveEntity = hook_resolve_entity;
	sax->serror = capture_serror;
	sax->warning = quiet_generic;
	sax->error = quiet_generic;
	sax->fatalError = quiet_generic;
	ctxt->vctxt.error = quiet_generic;
	ctxt->vctxt.warning = quiet_generic;
}

static wse_status
forbidden_node(const xmlNode *n)
{
	switch (n->type) {
	case XML_ENTITY_REF_NODE:
	case XML_ENTITY_NODE:
	case XML_ENTITY_DECL:
		return wse_err(WSE_ERR_PARSE,
		    "entity references are not allowed");
	case XML_DTD_NODE:
	case XML_DOCUMENT_TYPE_NODE:
	case XML_NOTATION_NODE:
	case XML_ELEMENT_DECL:
	case XML_ATTRIBUTE_DECL:
		return wse_err(WSE_ERR_PARSE,
		    "DOCTYPE is not allowed in SOAP messages");
	case XML_PI_NODE:
		return wse_err(WSE_ERR_PARSE,
		    "processing instructions are not allowed");
	case XML_XINCLUDE_START:
	case XML_XINCLUDE_END:
		return wse_err(WSE_ERR_PARSE, "XInclude is not allowed");
	default:
		return WSE_OK;
	}
}

/* The final tree walk (iterative): no DTD, entity reference or PI
 * anywhere, attribute values are plain text. */
static wse_status
check_tree(xmlDocPtr doc)
{
	xmlNodePtr n;
	xmlAttrPtr a;
	xmlNodePtr c;
	wse_status st;

	if (doc->intSubset != NULL || doc->extSubset != NULL)
		return wse_err(WSE_ERR_PARSE,
		    "DOCTYPE is not allowed in SOAP messages");
	if (xmlDocGetRootElement(doc) == NULL)
		return wse_err(WSE_ERR_PARSE, "XML document has no root element");
	n = doc->children;
	while (n != NULL) {
		if ((st = forbidden_node(n)) != WSE_OK)
			return st;
		if (n->type == XML_ELEMENT_NODE) {
			for (a = n->properties; a != NULL; a = a->next)
				for (c = a->children; c != NULL; c = c->next)
					if (c->type != XML_TEXT_NODE)
						return wse_err(WSE_ERR_PARSE,
						    "entity references are "
						    "not allowed");
			if (n->children != NULL) {
				n = n->children;
				continue;
			}
		}
		while (n != NULL && n->next == NULL) {
			n = n->parent;
			if (n == (xmlNodePtr)doc)
				n = NULL;
		}
		if (n != NULL)
			n = n->next;
	}
	return WSE_OK;
}

static wse_status
parse_bytes(const uint8_t *data, size_t len, xmlDocPtr *doc_r)
{
	struct parse_cap cap;
	struct quiet q;
	xmlParserCtxtPtr ctxt = NULL;
	xmlDocPtr doc = NULL;
	const xmlError *le;
	wse_status st = WSE_ERR_INTERNAL;

	*doc_r = NULL;
	if (len > WSE_XML_INT_MAX)
		return wse_err(WSE_ERR_TOO_LARGE,
		    "XML message of %zu bytes is too large for libxml2", len);
	memset(&cap, 0, sizeof(cap));
	quiet_begin(&q, &cap);
	if ((ctxt = xmlCreateMemoryParserCtxt((const char *)data,
	    (int)len)) == NULL || ctxt->sax == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot create XML parser");
		goto out;
	}
	if (xmlCtxtUseOptions(ctxt, WSE_XML_PARSE_OPTIONS) != 0) {
		st = wse_err(WSE_ERR_INTERNAL, "libxml2 refused parser options");
		goto out;
	}
	harden_ctxt(ctxt);
	cap.ctxt = ctxt;
	(void)xmlParseDocument(ctxt);
	doc = ctxt->myDoc;
	ctxt->myDoc = NULL;
	if (cap.refused) {
		st = wse_err(WSE_ERR_PARSE, "%s", cap.reason);
		goto out;
	}
	if (!ctxt->wellFormed || !ctxt->nsWellFormed ||
	    ctxt->errNo != XML_ERR_OK || doc == NULL) {
		if (cap.have_err) {
			st = wse_err(WSE_ERR_PARSE,
			    "XML not well formed (line %d, column %d): %s",
			    cap.line, cap.col, cap.msg);
		} else if ((le = xmlCtxtGetLastError(ctxt)) != NULL &&
		    le->code != XML_ERR_OK) {
			st = wse_err(WSE_ERR_PARSE,
			    "XML not well formed (line %d): libxml2 error %d",
			    le->line, le->code);
		} else {
			st = wse_err(WSE_ERR_PARSE,
			    "XML not well formed (libxml2 error %d)",
			    ctxt->errNo);
		}
		goto out;
	}
	if ((st = check_tree(doc)) != WSE_OK)
		goto out;
	*doc_r = doc;
	doc = NULL;
	st = WSE_OK;
out:
	cap.ctxt = NULL;
	xmlFreeDoc(doc);
	if (ctxt != NULL)
		xmlFreeParserCtxt(ctxt);
	quiet_end(&q);
	return st;
}

wse_status
wse_xml_parse(const uint8_t *data, size_t len, const wse_limits *lim,
    xmlDocPtr *doc_r)
{
	wse_status st;

	if (doc_r == NULL)
		return wse_err(WSE_ERR_INVALID, "wse_xml_parse: NULL doc_r");
	*doc_r = NULL;
	if ((st = wse_xml_init()) != WSE_OK)
		return st;
	if ((st = wse_xml_prescan(data, len, lim)) != WSE_OK)
		return st;
	return parse_bytes(data, len, doc_r);
}

/*
 * For the unit tests only: parse WITHOUT the prescan, so that the
 * libxml2-level defences (SAX hooks, entity loader, final tree walk) can
 * be shown to hold on their own.  Not declared in xml.h; never call it
 * from program code.
 */
wse_status wse_xml__parse_noscan(const uint8_t *data, size_t len,
    xmlDocPtr *doc_r);

wse_status
wse_xml__parse_noscan(const uint8_t *data, size_t len, xmlDocPtr *doc_r)
{
	wse_status st;

	if (doc_r == NULL)
		return wse_err(WSE_ERR_INVALID, "NULL doc_r");
	*doc_r = NULL;
	if ((st = wse_xml_init()) != WSE_OK)
		return st;
	if (data == NULL || len == 0)
		return wse_err(WSE_ERR_PARSE, "empty XML document");
	return parse_bytes(data, len, doc_r);
}

/* ------------------------------------------------------------------ */
/* Navigation                                                          */
/* ------------------------------------------------------------------ */

/* xmlStrEqual for two non-NULL strings, with libc's strcmp: the names
 * and namespace URIs compared here are long and mostly equal. */
static int
str_eq(const xmlChar *a, const char *b)
{
	return strcmp((const char *)a, b) == 0;
}

int
wse_xml_is(const xmlNode *node, const char *ns, const char *local)
{
	if (node == NULL || local == NULL || node->type != XML_ELEMENT_NODE ||
	    node->name == NULL)
		return 0;
	if (!str_eq(node->name, local))
		return 0;
	if (ns == NULL || *ns == '\0')
		return node->ns == NULL || node->ns->href == NULL ||
		    node->ns->href[0] == '\0';
	return node->ns != NULL && node->ns->href != NULL &&
	    str_eq(node->ns->href, ns);
}

static xmlNodePtr
elem_from(xmlNodePtr n)
{
	while (n != NULL && n->type != XML_ELEMENT_NODE)
		n = n->next;
	return n;
}

xmlNodePtr
wse_xml_first_elem(const xmlNode *parent)
{
	if (parent == NULL)
		return NULL;
	return elem_from(parent->children);
}

xmlNodePtr
wse_xml_next_elem(const xmlNode *node)
{
	if (node == NULL)
		return NULL;
	return elem_from(node->next);
}

size_t
wse_xml_count_children(const xmlNode *parent, const char *ns,
    const char *local)
{
	xmlNodePtr c;
	size_t n = 0;

	for (c = wse_xml_first_elem(parent); c != NULL;
	    c = wse_xml_next_elem(c))
		if (wse_xml_is(c, ns, local))
			n++;
	return n;
}

wse_status
wse_xml_only_child(const xmlNode *parent, const char *ns, const char *local,
    xmlNodePtr *child_r)
{
	xmlNodePtr c, found = NULL;
	size_t n = 0;

	if (child_r != NULL)
		*child_r = NULL;
	for (c = wse_xml_first_elem(parent); c != NULL;
	    c = wse_xml_next_elem(c)) {
		if (!wse_xml_is(c, ns, local))
			continue;
		if (n++ == 0)
			found = c;
	}
	if (n == 0)
		return wse_err(WSE_ERR_NOT_FOUND, "no {%s}%s element",
		    ns != NULL ? ns : "", local != NULL ? local : "");
	if (n > 1)
		return wse_err(WSE_ERR_PARSE,
		    "%zu {%s}%s elements where exactly one is allowed", n,
		    ns != NULL ? ns : "", local);
	if (child_r != NULL)
		*child_r = found;
	return WSE_OK;
}

const char *
wse_xml_attr(const xmlNode *node, const char *ns, const char *local)
{
	xmlAttrPtr a;
	int want_none = ns == NULL || *ns == '\0';

	if (node == NULL || local == NULL || node->type != XML_ELEMENT_NODE)
		return NULL;
	for (a = node->properties; a != NULL; a = a->next) {
		if (a->name == NULL || !str_eq(a->name, local))
			continue;
		if (want_none) {
			if (a->ns != NULL && a->ns->href != NULL &&
			    a->ns->href[0] != '\0')
				continue;
		} else if (a->ns == NULL || a->ns->href == NULL ||
		    !str_eq(a->ns->href, ns)) {
			continue;
		}
		if (a->children == NULL)
			return "";
		if (a->children->type != XML_TEXT_NODE ||
		    a->children->next != NULL)
			return NULL;
		return a->children->content != NULL ?
		    (const char *)a->children->content : "";
	}
	return NULL;
}

static const char *
node_kind(const xmlNode *n)
{
	switch (n->type) {
	case XML_ELEMENT_NODE: return "an element";
	case XML_COMMENT_NODE: return "a comment";
	case XML_PI_NODE: return "a processing instruction";
	case XML_ENTITY_REF_NODE: return "an entity reference";
	default: return "a non-text node";
	}
}

wse_status
wse_xml_text(const xmlNode *node, wse_buf *out)
{
	xmlNodePtr c;
	size_t total = 0, n;
	char ex[64];
	wse_status st;

	if (node == NULL || out == NULL || node->type != XML_ELEMENT_NODE)
		return wse_err(WSE_ERR_INVALID, "wse_xml_text: not an element");
	for (c = node->children; c != NULL; c = c->next) {
		if (c->type != XML_TEXT_NODE &&
		    c->type != XML_CDATA_SECTION_NODE)
			return wse_err(WSE_ERR_PARSE,
			    "element %s must hold only text but contains %s",
			    excerpt(ex, sizeof(ex), node->name,
			    strlen((const char *)node->name)), node_kind(c));
		if (c->content != NULL) {
			n = strlen((const char *)c->content);
			if (n > SIZE_MAX - total)
				return wse_err(WSE_ERR_TOO_LARGE,
				    "text too large");
			total += n;
		}
	}
	/* All or nothing: never leave a partial text in out. */
	if (total > wse_buf_max(out) - wse_buf_len(out))
		return wse_err(WSE_ERR_TOO_LARGE,
		    "text of element %s (%zu bytes) does not fit the buffer",
		    excerpt(ex, sizeof(ex), node->name,
		    strlen((const char *)node->name)), total);
	for (c = node->children; c != NULL; c = c->next)
		if (c->content != NULL &&
		    (st = wse_buf_puts(out, (const char *)c->content)) !=
		    WSE_OK)
			return st;
	return WSE_OK;
}

wse_status
wse_xml_check_no_comments(const xmlNode *node)
{
	const xmlNode *n = node;

	if (node == NULL)
		return WSE_OK;
	for (;;) {
		if (n->type == XML_COMMENT_NODE)
			return wse_err(WSE_ERR_PARSE,
			    "comments are not allowed in this content");
		if (n->type == XML_PI_NODE)
			return wse_err(WSE_ERR_PARSE,
			    "processing instructions are not allowed in this "
			    "content");
		if ((n->type == XML_ELEMENT_NODE ||
		    n->type == XML_DOCUMENT_NODE ||
		    n->type == XML_DOCUMENT_FRAG_NODE) && n->children != NULL) {
			n = n->children;
			continue;
		}
		while (n != node && n->next == NULL)
			n = n->parent;
		if (n == node)
			break;
		n = n->next;
	}
	return WSE_OK;
}

/* Where xmlSaveToIO writes: straight into the caller's buffer. */
struct save_sink {
	wse_buf *out;
	wse_status st;
};

static int
save_write(void *arg, const char *data, int len)
{
	struct save_sink *k = arg;

	if (len < 0 || k->st != WSE_OK)
		return -1;
	if ((k->st = wse_buf_put(k->out, data, (size_t)len)) != WSE_OK)
		return -1;
	return len;
}

static int
save_close(void *arg)
{
	(void)arg;
	return 0;
}

/*
 * The same bytes as xmlDocDumpFormatMemoryEnc(doc, .., "UTF-8", 0), the
 * XML declaration included, but written through to out in the output
 * buffer's chunks: no copy of the whole document in libxml2's memory
 * first (for a DeliverBatch of hundreds of kilobytes, three copies and
 * their page faults).
 */
wse_status
wse_xml_serialize(xmlDocPtr doc, wse_buf *out)
{
	struct parse_cap cap;
	struct quiet q;
	struct save_sink k;
	xmlSaveCtxtPtr sv;
	size_t len0;
	long r;
	int rc;

	if (doc == NULL || out == NULL)
		return wse_err(WSE_ERR_INVALID, "wse_xml_serialize: NULL");
	len0 = wse_buf_len(out);
	k.out = out;
	k.st = WSE_OK;
	memset(&cap, 0, sizeof(cap));
	quiet_begin(&q, &cap);
	if ((sv = xmlSaveToIO(save_write, save_close, &k, "UTF-8",
	    XML_SAVE_AS_XML)) == NULL) {
		quiet_end(&q);
		return wse_err(WSE_ERR_NOMEM, "cannot serialise XML document");
	}
	r = xmlSaveDoc(sv, doc);
	rc = xmlSaveClose(sv);
	quiet_end(&q);
	if (k.st != WSE_OK || r < 0 || rc < 0) {
		wse_buf_truncate(out, len0);
		if (k.st != WSE_OK)
			return k.st;
		return wse_err(WSE_ERR_NOMEM, "cannot serialise XML document%s%s",
		    cap.have_err ? ": " : "", cap.have_err ? cap.msg : "");
	}
	return WSE_OK;
}

wse_status
wse_xml_text_dup(const xmlNode *node, size_t max, char **out)
{
	wse_buf *b;
	wse_status st;

	*out = NULL;
	if ((b = wse_buf_new(max)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	if ((st = wse_xml_text(node, b)) == WSE_OK &&
	    (*out = wse_buf_steal(b, NULL)) == NULL)
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
	wse_buf_free(&b);
	return st;
}

char *
wse_xml_child_text(const xmlNode *parent, const char *ns, const char *local,
    size_t max)
{
	xmlNodePtr n;
	char *s = NULL;

	if (parent == NULL ||
	    wse_xml_only_child(parent, ns, local, &n) != WSE_OK ||
	    wse_xml_text_dup(n, max, &s) != WSE_OK) {
		free(s);
		return NULL;
	}
	return s;
}
