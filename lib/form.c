/*
 * form.c - routed forms: the document, its signed records, verification
 * (docs/forms.md).
 *
 * SECURITY: a parsed form comes from whoever had it last.  wse_form_parse
 * bounds and checks its whole structure before anything else (hardened
 * parser, a size cap, no comment or PI anywhere, unique Ids, the fixed
 * shape of every record, every value's syntax and length, certificate
 * counts); wse_form_verify then works through the records in order and
 * decides only on data read from the very signed element that
 * wse_wss_verify_node proved the signature covers (node pointers kept
 * from the parse, never a second lookup by name).  The key that checks a
 * record comes from the certificate the record carries, bound by its
 * digest into the signed content; xmlsec never reads KeyInfo (there is
 * none).  Which certificate may sign a record is decided by the route
 * rebuilt from the records verified so far.  Nothing of a parsed form is
 * handed out before it verified.  xmlsec and OpenSSL stay behind wss.h
 * and pki.h.
 */
#include "form.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "msg.h"
#include "soap.h"
#include "wss.h"
#include "xml.h"

#define PARTY WSE_FORM_PARTY_MAX
#define HEXLEN (2 * WSE_SHA256_LEN)
#define CERT_B64_MAX (16 * 1024)
#define CERT_DER_MAX (12 * 1024)
#define DEFAULT_MAX_DELEGATION 2
#define DEFAULT_FUTURE_SKEW 60
#define DEFAULT_MAX_AGE (30 * 86400)
#define MAX_PEOPLE (WSE_FORM_MAX_HOPS + WSE_FORM_MAX_RECORDS)

/* One record as parsed (or as about to be signed). */
struct rec {
	xmlNodePtr node;		/* f:Record */
	xmlNodePtr el;			/* the signed element */
	xmlNodePtr sig;			/* its ds:Signature */
	wse_form_rec_kind kind;
	size_t position;
	int64_t time;
	char form_id[WSE_UUID_URN_LEN + 1];
	char author[PARTY];
	uint8_t cert_digest[WSE_SHA256_LEN];
	uint8_t content[WSE_SHA256_LEN];	/* position >= 2 */
	uint8_t previous[WSE_SHA256_LEN];	/* position >= 2 */
	wse_cert *cert, *ca;
	/* kind data */
	size_t at;				/* insert */
	char (*approvers)[PARTY];		/* insert */
	size_t napprovers;
	char on_behalf[PARTY];			/* decide, delegate */
	wse_form_verdict verdict;		/* decide */
	char *note;				/* decide, may be NULL */
	char delegate[PARTY];			/* delegate */
	wse_form_outcome result;		/* accept */
	/* SHA-256 of the signed element's exclusive C14N */
	uint8_t digest[WSE_SHA256_LEN];
	int have_digest;
};

/* Everyone who takes part as an approver or a delegate. */
struct person {
	char name[PARTY];
	size_t record;			/* where they entered the form */
	size_t decided;			/* their decide record or 0 */
};

/* The workflow, rebuilt from the records in order. */
struct wstate {
	wse_form_hop route[WSE_FORM_MAX_HOPS];
	size_t nroute;
	size_t cur;			/* current hop, 0-based */
	char deleg[WSE_FORM_MAX_DELEGATION][PARTY];
	unsigned ndeleg;		/* delegations at the current hop */
	struct person people[MAX_PEOPLE];
	size_t npeople;
	wse_form_approval approvals[WSE_FORM_MAX_RECORDS];
	size_t napprovals;
	int rejected;
	size_t rejected_at;
	char rejected_by[PARTY], rejected_for[PARTY];
	size_t closed_at;		/* the accept record, 0: open */
	size_t nrecords;
	int64_t last_time;
};

struct wse_form {
	xmlDocPtr doc;
	xmlNodePtr root;
	wse_limits lim;
	wse_form_content content;
	int draft;
	struct rec recs[WSE_FORM_MAX_RECORDS];
	size_t nrec;
	/* set by a successful wse_form_verify (or sign_submit) and kept up
	 * to date by the checked builders */
	int state_valid;
	unsigned max_delegation;
	int64_t future_skew;
	struct wstate w;
};

static const char *const kind_elem[] = {
	NULL, "Submit", "Insert", "Decide", "Delegate", "Accept",
};
static const char *const kind_name[] = {
	NULL, "submit", "insert", "decide", "delegate", "accept",
};
static const char *const ftype_name[] = {
	"text", "decimal", "integer", "date", "mailbox",
};

/* ---- names ---- */

const char *
wse_form_kind_name(wse_form_rec_kind kind)
{
	if (kind < WSE_REC_SUBMIT || kind > WSE_REC_ACCEPT)
		return "?";
	return kind_name[kind];
}

const char *
wse_form_phase_name(wse_form_phase phase)
{
	switch (phase) {
	case WSE_FORM_DRAFT:	return "draft";
	case WSE_FORM_ROUTER:	return "router";
	case WSE_FORM_APPROVER:	return "approver";
	case WSE_FORM_FINAL:	return "final";
	case WSE_FORM_CLOSED:	return "closed";
	}
	return "?";
}

const char *
wse_form_outcome_name(wse_form_outcome outcome)
{
	switch (outcome) {
	case WSE_OUTCOME_PENDING:	return "pending";
	case WSE_OUTCOME_APPROVED:	return "approved";
	case WSE_OUTCOME_REJECTED:	return "rejected";
	}
	return "?";
}

const char *
wse_form_ftype_name(wse_form_ftype type)
{
	if ((unsigned)type >= sizeof(ftype_name) / sizeof(ftype_name[0]))
		return "?";
	return ftype_name[type];
}

/* "a decide record", "an insert record" */
static const char *
article(wse_form_rec_kind kind)
{
	return kind == WSE_REC_INSERT || kind == WSE_REC_ACCEPT ? "an" : "a";
}

/* Service certificates sign inserts and accepts, tokens the rest. */
static int
kind_is_service(wse_form_rec_kind kind)
{
	return kind == WSE_REC_INSERT || kind == WSE_REC_ACCEPT;
}

/* ---- syntax of values ---- */

static int
all_lower(const char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			return 0;
	return 1;
}

static int
valid_mailbox(const char *s)
{
	return s != NULL && strlen(s) < PARTY && wse_addr_valid(s) &&
	    all_lower(s);
}

static int
valid_domain(const char *s)
{
	char buf[PARTY + 2];
	size_t n;

	if (s == NULL || (n = strlen(s)) == 0 || n >= PARTY - 2 ||
	    !all_lower(s))
		return 0;
	(void)snprintf(buf, sizeof(buf), "x@%s", s);
	return wse_addr_valid(buf);
}

/* Lower-case copy of a mailbox (domain: is_domain) into out[PARTY]. */
static wse_status
normalize_party(const char *s, int is_domain, char out[PARTY])
{
	size_t i, n = s != NULL ? strlen(s) : 0;

	if (n == 0 || n >= PARTY)
		return wse_err(WSE_ERR_INVALID, "empty or too long %s",
		    is_domain ? "domain" : "mailbox");
	for (i = 0; i <= n; i++)
		out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) :
		    s[i];
	if (is_domain ? !valid_domain(out) : !valid_mailbox(out))
		return wse_err(WSE_ERR_INVALID, "not a %s: \"%.80s\"",
		    is_domain ? "domain" : "mailbox", s);
	return WSE_OK;
}

/* A name of 1..max characters: letters, digits, '.', '_', '-', starting
 * with a letter (or a digit when digit_first). */
static int
valid_name(const char *s, size_t max, int digit_first)
{
	size_t i, n = s != NULL ? strlen(s) : 0;

	if (n == 0 || n > max)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];
		int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		int digit = c >= '0' && c <= '9';

		if (i == 0 ? !(alpha || (digit && digit_first)) :
		    !(alpha || digit || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static int
valid_url(const char *s)
{
	size_t i, n = s != NULL ? strlen(s) : 0;

	if (n <= 8 || n > WSE_FORM_URL_MAX || strncmp(s, "https://", 8) != 0 ||
	    s[8] == '/')
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f || strchr("\"<>\\`{}|^",
		    s[i]) != NULL)
			return 0;
	return 1;
}

static void
hex_decode(const char *s, uint8_t *out, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		int hi = s[2 * i] <= '9' ? s[2 * i] - '0' : s[2 * i] - 'a' + 10;
		int lo = s[2 * i + 1] <= '9' ? s[2 * i + 1] - '0' :
		    s[2 * i + 1] - 'a' + 10;

		out[i] = (uint8_t)(hi << 4 | lo);
	}
}

/*
 * Text for people: valid UTF-8 of at most max bytes, no control
 * character but TAB and LF (CR does not survive XML parsing), no
 * noncharacter XML 1.0 refuses.
 */
static int
valid_text(const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t k, need;

	if (s == NULL || strlen(s) > max)
		return 0;
	while (*p != '\0') {
		if (*p < 0x80) {
			if ((*p < 0x20 && *p != '\t' && *p != '\n') ||
			    *p == 0x7f)
				return 0;
			p++;
			continue;
		}
		if (*p >= 0xc2 && *p <= 0xdf)
			need = 1;
		else if (*p >= 0xe0 && *p <= 0xef)
			need = 2;
		else if (*p >= 0xf0 && *p <= 0xf4)
			need = 3;
		else
			return 0;
		for (k = 1; k <= need; k++)
			if ((p[k] & 0xc0) != 0x80)
				return 0;
		if ((p[0] == 0xe0 && p[1] < 0xa0) ||	/* overlong */
		    (p[0] == 0xed && p[1] >= 0xa0) ||	/* surrogates */
		    (p[0] == 0xf0 && p[1] < 0x90) ||	/* overlong */
		    (p[0] == 0xf4 && p[1] >= 0x90) ||	/* > U+10FFFF */
		    (p[0] == 0xef && p[1] == 0xbf && p[2] >= 0xbe))
			return 0;
		p += need + 1;
	}
	return 1;
}

/* -?(0|[1-9][0-9]{0,maxint-1}), then with frac a fraction .[0-9]{1,10} */
static int
valid_number(const char *s, size_t maxint, int frac)
{
	size_t n = 0;

	if (*s == '-')
		s++;
	if (*s == '0')
		s++, n = 1;
	else
		while (*s >= '0' && *s <= '9' && n <= maxint)
			s++, n++;
	if (n == 0 || n > maxint)
		return 0;
	if (frac && *s == '.') {
		s++;
		for (n = 0; *s >= '0' && *s <= '9' && n <= 10; s++)
			n++;
		if (n == 0 || n > 10)
			return 0;
	}
	return *s == '\0';
}

static int
valid_date(const char *s)
{
	static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30,
	    31, 30, 31 };
	int y, m, d, i;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return 0;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !(s[i] >= '0' && s[i] <= '9'))
			return 0;
	y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 +
	    (s[3] - '0');
	m = (s[5] - '0') * 10 + (s[6] - '0');
	d = (s[8] - '0') * 10 + (s[9] - '0');
	if (y < 1000 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return 0;
	if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) ||
	    y % 400 == 0))
		return 0;
	return 1;
}

static wse_status
check_value(wse_form_ftype type, const char *v)
{
	int ok;

	switch (type) {
	case WSE_FIELD_TEXT:
		ok = valid_text(v, WSE_FORM_VALUE_MAX);
		break;
	case WSE_FIELD_DECIMAL:
		ok = strcmp(v, "-0") != 0 && valid_number(v, 30, 1);
		break;
	case WSE_FIELD_INTEGER:
		ok = strcmp(v, "-0") != 0 && valid_number(v, 18, 0);
		break;
	case WSE_FIELD_DATE:
		ok = valid_date(v);
		break;
	case WSE_FIELD_MAILBOX:
		ok = valid_mailbox(v);
		break;
	default:
		return wse_err(WSE_ERR_INVALID, "unknown field type");
	}
	if (!ok)
		return wse_err(WSE_ERR_INVALID, "not a valid %s value: "
		    "\"%.40s\"", wse_form_ftype_name(type), v);
	return WSE_OK;
}

static int
ftype_parse(const char *s, wse_form_ftype *t_r)
{
	size_t i;

	for (i = 0; i < sizeof(ftype_name) / sizeof(ftype_name[0]); i++)
		if (strcmp(s, ftype_name[i]) == 0) {
			*t_r = (wse_form_ftype)i;
			return 1;
		}
	return 0;
}

/* ---- content ---- */

static void
content_clear(wse_form_content *c)
{
	size_t i;

	for (i = 0; i < c->nfields; i++)
		free(c->fields[i].value);
	free(c->fields);
	free(c->route);
	memset(c, 0, sizeof(*c));
}

static wse_status
content_alloc(wse_form_content *c)
{
	if ((c->fields = calloc(WSE_FORM_MAX_FIELDS,
	    sizeof(*c->fields))) == NULL ||
	    (c->route = calloc(WSE_FORM_MAX_HOPS, sizeof(*c->route))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate form content");
	return WSE_OK;
}

static wse_status
content_add_field(wse_form_content *c, const char *name,
    wse_form_ftype type, const char *value)
{
	char mbox[PARTY];
	wse_status st;
	size_t i;

	if (c->nfields >= WSE_FORM_MAX_FIELDS)
		return wse_err(WSE_ERR_TOO_LARGE, "more than %d fields",
		    WSE_FORM_MAX_FIELDS);
	if (!valid_name(name, WSE_FORM_NAME_MAX, 0))
		return wse_err(WSE_ERR_INVALID, "bad field name \"%.70s\"",
		    name ? name : "");
	for (i = 0; i < c->nfields; i++)
		if (strcmp(c->fields[i].name, name) == 0)
			return wse_err(WSE_ERR_INVALID,
			    "field \"%s\" appears twice", name);
	if (value == NULL)
		return wse_err(WSE_ERR_INVALID, "field %s has no value", name);
	if (type == WSE_FIELD_MAILBOX && wse_addr_valid(value)) {
		if ((st = normalize_party(value, 0, mbox)) != WSE_OK)
			return st;
		value = mbox;
	}
	if ((st = check_value(type, value)) != WSE_OK)
		return wse_err(st, "field %s: %s", name, wse_err_last());
	if ((c->fields[c->nfields].value = strdup(value)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	(void)snprintf(c->fields[c->nfields].name,
	    sizeof(c->fields[c->nfields].name), "%s", name);
	c->fields[c->nfields].type = type;
	c->nfields++;
	return WSE_OK;
}

/* ---- XML reading helpers ---- */

static int
blank(const xmlChar *s)
{
	for (; s != NULL && *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
			return 0;
	return 1;
}

/* Only element children (and white space between them). */
static wse_status
elements_only(const xmlNode *n)
{
	const xmlNode *c;

	for (c = n->children; c != NULL; c = c->next) {
		if (c->type == XML_ELEMENT_NODE ||
		    (c->type == XML_TEXT_NODE && blank(c->content)))
			continue;
		return wse_err(WSE_ERR_INVALID, "%.40s may hold only elements",
		    (const char *)n->name);
	}
	return WSE_OK;
}

/* No attributes but a1, a2 (no namespace) and, with id_ok, wsu:Id. */
static wse_status
attrs_only(const xmlNode *n, int id_ok, const char *a1, const char *a2)
{
	const xmlAttr *a;

	for (a = n->properties; a != NULL; a = a->next) {
		const char *name = (const char *)a->name;

		if (a->ns == NULL && ((a1 != NULL && strcmp(name, a1) == 0) ||
		    (a2 != NULL && strcmp(name, a2) == 0)))
			continue;
		if (id_ok && a->ns != NULL && a->ns->href != NULL &&
		    strcmp((const char *)a->ns->href, WSE_NS_WSU) == 0 &&
		    strcmp(name, "Id") == 0)
			continue;
		return wse_err(WSE_ERR_INVALID,
		    "unexpected attribute %.40s on %.40s", name,
		    (const char *)n->name);
	}
	return WSE_OK;
}

/* The text of element n (character data only) into buf[size]. */
static wse_status
text_of(const xmlNode *n, char *buf, size_t size)
{
	char *s = NULL;
	wse_status st;

	if ((st = wse_xml_text_dup(n, size - 1, &s)) != WSE_OK)
		return wse_err(st == WSE_ERR_TOO_LARGE ? st : WSE_ERR_INVALID,
		    "f:%.40s: not plain text of at most %zu bytes",
		    (const char *)n->name, size - 1);
	if (strlen(s) >= size) {
		free(s);
		return wse_err(WSE_ERR_TOO_LARGE, "f:%.40s: too long",
		    (const char *)n->name);
	}
	memcpy(buf, s, strlen(s) + 1);
	free(s);
	return WSE_OK;
}

/*
 * *cur must be the text-only element f:local without attributes: copy
 * its text and step to the next element.
 */
static wse_status
take_text(xmlNodePtr *cur, const char *local, char *buf, size_t size)
{
	xmlNodePtr n = *cur;
	wse_status st;

	if (!wse_xml_is(n, WSE_NS_FORM, local))
		return wse_err(WSE_ERR_INVALID, "expected f:%s, found %.40s",
		    local, n != NULL ? (const char *)n->name : "nothing");
	if ((st = attrs_only(n, 0, NULL, NULL)) != WSE_OK ||
	    (st = text_of(n, buf, size)) != WSE_OK)
		return st;
	*cur = wse_xml_next_elem(n);
	return WSE_OK;
}

static wse_status
take_hex(xmlNodePtr *cur, const char *local, uint8_t out[WSE_SHA256_LEN])
{
	char hex[HEXLEN + 2];
	wse_status st;

	if ((st = take_text(cur, local, hex, sizeof(hex))) != WSE_OK)
		return st;
	if (!wse_hex_valid(hex, HEXLEN))
		return wse_err(WSE_ERR_INVALID,
		    "f:%s is not a lower-case hex SHA-256", local);
	hex_decode(hex, out, WSE_SHA256_LEN);
	return WSE_OK;
}

/* A positive decimal without leading zeros, at most max. */
static wse_status
take_count(xmlNodePtr *cur, const char *local, size_t max, size_t *v_r)
{
	char s[16];
	size_t v = 0, i;
	wse_status st;

	if ((st = take_text(cur, local, s, sizeof(s))) != WSE_OK)
		return st;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || (i == 0 && s[i] == '0') ||
		    i >= 6)
			return wse_err(WSE_ERR_INVALID,
			    "f:%s is not a positive number", local);
		v = v * 10 + (size_t)(s[i] - '0');
	}
	if (v == 0 || v > max)
		return wse_err(WSE_ERR_INVALID, "f:%s out of range 1..%zu",
		    local, max);
	*v_r = v;
	return WSE_OK;
}

static wse_status
take_party(xmlNodePtr *cur, const char *local, int is_domain,
    char out[PARTY])
{
	wse_status st;

	if ((st = take_text(cur, local, out, PARTY)) != WSE_OK)
		return st;
	if (is_domain ? !valid_domain(out) : !valid_mailbox(out))
		return wse_err(WSE_ERR_INVALID,
		    "f:%s is not a lower-case %s", local,
		    is_domain ? "domain" : "mailbox");
	return WSE_OK;
}

/* Decode an f:Certificate (base64 DER). */
static wse_status
take_cert(xmlNodePtr *cur, wse_cert **cert_r)
{
	xmlNodePtr n = *cur;
	wse_buf *txt = NULL, *der = NULL;
	wse_status st;

	*cert_r = NULL;
	if (!wse_xml_is(n, WSE_NS_FORM, "Certificate"))
		return wse_err(WSE_ERR_INVALID,
		    "a record carries exactly two f:Certificate");
	if ((st = attrs_only(n, 0, NULL, NULL)) != WSE_OK)
		return st;
	if ((txt = wse_buf_new(CERT_B64_MAX)) == NULL ||
	    (der = wse_buf_new(CERT_DER_MAX)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto out;
	}
	if (wse_xml_text(n, txt) != WSE_OK ||
	    wse_base64_decode(wse_buf_str(txt), wse_buf_len(txt), der) !=
	    WSE_OK || wse_cert_from_der(wse_buf_data(der), wse_buf_len(der),
	    cert_r) != WSE_OK) {
		st = wse_err(WSE_ERR_INVALID, "unreadable f:Certificate");
		goto out;
	}
	*cur = wse_xml_next_elem(n);
	st = WSE_OK;
out:
	wse_buf_free(&txt);
	wse_buf_free(&der);
	return st;
}

/* ---- records ---- */

static void
rec_clear(struct rec *r)
{
	wse_cert_free(&r->cert);
	wse_cert_free(&r->ca);
	free(r->approvers);
	free(r->note);
	memset(r, 0, sizeof(*r));
}

static wse_status
rec_digest(struct rec *r)
{
	wse_status st;

	if (r->have_digest)
		return WSE_OK;
	if ((st = wse_wss_digest_node(r->el, r->digest)) != WSE_OK)
		return st;
	r->have_digest = 1;
	return WSE_OK;
}

/* The content of the submit record, after its common part. */
static wse_status
parse_content(xmlNodePtr *cur, wse_form_content *c)
{
	xmlNodePtr n = *cur, t, h;
	char value_type[16], name[WSE_FORM_NAME_MAX + 2];
	const char *a;
	wse_form_ftype ft;
	char *value = NULL;
	wse_status st;

	/* f:Type: Name, Version, Plugin (sha256 attribute, URL text) */
	if (!wse_xml_is(n, WSE_NS_FORM, "Type"))
		return wse_err(WSE_ERR_INVALID, "expected f:Type");
	if ((st = attrs_only(n, 0, NULL, NULL)) != WSE_OK ||
	    (st = elements_only(n)) != WSE_OK)
		return st;
	t = wse_xml_first_elem(n);
	if ((st = take_text(&t, "Name", c->type_name,
	    sizeof(c->type_name))) != WSE_OK ||
	    (st = take_text(&t, "Version", c->type_version,
	    sizeof(c->type_version))) != WSE_OK)
		return st;
	if (!valid_name(c->type_name, WSE_FORM_NAME_MAX, 1) ||
	    !all_lower(c->type_name) ||
	    !valid_name(c->type_version, WSE_FORM_VERSION_MAX, 1))
		return wse_err(WSE_ERR_INVALID,
		    "bad form type name or version");
	if (!wse_xml_is(t, WSE_NS_FORM, "Plugin") ||
	    wse_xml_next_elem(t) != NULL)
		return wse_err(WSE_ERR_INVALID, "f:Type must end with one "
		    "f:Plugin");
	if ((st = attrs_only(t, 0, "sha256", NULL)) != WSE_OK)
		return st;
	if ((a = wse_xml_attr(t, NULL, "sha256")) == NULL ||
	    !wse_hex_valid(a, HEXLEN))
		return wse_err(WSE_ERR_INVALID,
		    "f:Plugin needs a lower-case hex sha256");
	memcpy(c->plugin_sha256, a, HEXLEN + 1);
	if ((st = text_of(t, c->plugin_url, sizeof(c->plugin_url))) !=
	    WSE_OK)
		return st;
	if (!valid_url(c->plugin_url))
		return wse_err(WSE_ERR_INVALID, "f:Plugin is not an https URL");

	/* f:Fields */
	n = wse_xml_next_elem(n);
	if (!wse_xml_is(n, WSE_NS_FORM, "Fields"))
		return wse_err(WSE_ERR_INVALID, "expected f:Fields");
	if ((st = attrs_only(n, 0, NULL, NULL)) != WSE_OK ||
	    (st = elements_only(n)) != WSE_OK)
		return st;
	for (t = wse_xml_first_elem(n); t != NULL; t = wse_xml_next_elem(t)) {
		if (!wse_xml_is(t, WSE_NS_FORM, "Field"))
			return wse_err(WSE_ERR_INVALID,
			    "f:Fields holds only f:Field");
		if (c->nfields >= WSE_FORM_MAX_FIELDS)
			return wse_err(WSE_ERR_TOO_LARGE, "more than %d fields",
			    WSE_FORM_MAX_FIELDS);
		if ((st = attrs_only(t, 0, "name", "type")) != WSE_OK)
			return st;
		if ((a = wse_xml_attr(t, NULL, "name")) == NULL ||
		    strlen(a) >= sizeof(name))
			return wse_err(WSE_ERR_INVALID, "f:Field needs a name");
		memcpy(name, a, strlen(a) + 1);
		if ((a = wse_xml_attr(t, NULL, "type")) == NULL ||
		    strlen(a) >= sizeof(value_type) || !ftype_parse(a, &ft))
			return wse_err(WSE_ERR_INVALID, "field %.64s: bad type",
			    name);
		if ((st = wse_xml_text_dup(t, WSE_FORM_VALUE_MAX, &value)) !=
		    WSE_OK)
			return wse_err(st == WSE_ERR_TOO_LARGE ? st :
			    WSE_ERR_INVALID, "field %.64s: bad value", name);
		/* The stored value must already be in normal form. */
		if (ft == WSE_FIELD_MAILBOX && !valid_mailbox(value))
			st = wse_err(WSE_ERR_INVALID, "field %.64s: not a "
			    "lower-case mailbox", name);
		else
			st = content_add_field(c, name, ft, value);
		free(value);
		value = NULL;
		if (st != WSE_OK)
			return st;
	}

	/* f:Route: f:Router (domain) and f:Approver (mailbox) hops */
	n = wse_xml_next_elem(n);
	if (!wse_xml_is(n, WSE_NS_FORM, "Route"))
		return wse_err(WSE_ERR_INVALID, "expected f:Route");
	if ((st = attrs_only(n, 0, NULL, NULL)) != WSE_OK ||
	    (st = elements_only(n)) != WSE_OK)
		return st;
	for (h = wse_xml_first_elem(n); h != NULL;) {
		wse_form_hop *hop;
		int router = wse_xml_is(h, WSE_NS_FORM, "Router");

		if (c->nroute >= WSE_FORM_MAX_HOPS)
			return wse_err(WSE_ERR_TOO_LARGE, "more than %d hops",
			    WSE_FORM_MAX_HOPS);
		hop = &c->route[c->nroute];
		hop->kind = router ? WSE_HOP_ROUTER : WSE_HOP_APPROVER;
		if ((st = take_party(&h, router ? "Router" : "Approver",
		    router, hop->name)) != WSE_OK)
			return st;
		c->nroute++;
	}

	n = wse_xml_next_elem(n);
	if ((st = take_party(&n, "FinalParty", 1, c->final_party)) != WSE_OK)
		return st;
	*cur = n;
	return WSE_OK;
}

/*
 * Parse the f:Record node as record number n into r (and, for the
 * submit, the content into c).  Syntax only: nothing is trusted.
 */
static wse_status
parse_record(xmlNodePtr node, size_t n, struct rec *r, wse_form_content *c)
{
	xmlNodePtr el, cur;
	char buf[WSE_FORM_NOTE_MAX + 2];
	size_t k;
	int i;
	wse_status st;

	memset(r, 0, sizeof(*r));
	r->node = node;
	if ((st = attrs_only(node, 0, NULL, NULL)) != WSE_OK ||
	    (st = elements_only(node)) != WSE_OK)
		return st;
	el = wse_xml_first_elem(node);
	for (i = WSE_REC_SUBMIT; i <= WSE_REC_ACCEPT; i++)
		if (wse_xml_is(el, WSE_NS_FORM, kind_elem[i]))
			break;
	if (i > WSE_REC_ACCEPT)
		return wse_err(WSE_ERR_INVALID, "not a record kind: %.40s",
		    el != NULL ? (const char *)el->name : "nothing");
	r->kind = (wse_form_rec_kind)i;
	r->el = el;
	if ((n == 1) != (r->kind == WSE_REC_SUBMIT))
		return wse_err(WSE_ERR_INVALID,
		    "record 1, and only record 1, is the claimant's submit");

	/* [signed element] f:Certificate f:Certificate ds:Signature */
	cur = wse_xml_next_elem(el);
	if ((st = take_cert(&cur, &r->cert)) != WSE_OK ||
	    (st = take_cert(&cur, &r->ca)) != WSE_OK)
		return st;
	if (!wse_xml_is(cur, WSE_NS_DS, "Signature") ||
	    wse_xml_next_elem(cur) != NULL)
		return wse_err(WSE_ERR_INVALID, "a record ends with exactly "
		    "one ds:Signature after its two certificates");
	r->sig = cur;

	/* The signed element: wsu:Id only; the common part in order. */
	if ((st = attrs_only(el, 1, NULL, NULL)) != WSE_OK ||
	    (st = elements_only(el)) != WSE_OK)
		return st;
	if (wse_xml_attr(el, WSE_NS_WSU, "Id") == NULL)
		return wse_err(WSE_ERR_INVALID, "the record is not signed "
		    "(no wsu:Id)");
	cur = wse_xml_first_elem(el);
	if ((st = take_text(&cur, "FormId", r->form_id,
	    sizeof(r->form_id))) != WSE_OK)
		return st;
	if (!wse_uuid_urn_valid(r->form_id))
		return wse_err(WSE_ERR_INVALID, "f:FormId is not a urn:uuid");
	if ((st = take_count(&cur, "Position", WSE_FORM_MAX_RECORDS,
	    &r->position)) != WSE_OK)
		return st;
	if ((st = take_text(&cur, "Time", buf, 64)) != WSE_OK)
		return st;
	if (wse_time_parse(buf, &r->time) != WSE_OK || r->time <= 0)
		return wse_err(WSE_ERR_INVALID, "f:Time is not a UTC dateTime");
	if ((st = take_party(&cur, "Author", kind_is_service(r->kind),
	    r->author)) != WSE_OK ||
	    (st = take_hex(&cur, "SignerCert", r->cert_digest)) != WSE_OK)
		return st;
	if (r->kind != WSE_REC_SUBMIT &&
	    ((st = take_hex(&cur, "Content", r->content)) != WSE_OK ||
	    (st = take_hex(&cur, "Previous", r->previous)) != WSE_OK))
		return st;

	switch (r->kind) {
	case WSE_REC_SUBMIT:
		if ((st = content_alloc(c)) != WSE_OK ||
		    (st = parse_content(&cur, c)) != WSE_OK)
			return st;
		memcpy(c->id, r->form_id, sizeof(c->id));
		memcpy(c->claimant, r->author, sizeof(c->claimant));
		c->submitted = r->time;
		break;
	case WSE_REC_INSERT:
		if ((st = take_count(&cur, "At", WSE_FORM_MAX_HOPS + 1,
		    &r->at)) != WSE_OK)
			return st;
		if ((r->approvers = calloc(WSE_FORM_MAX_HOPS,
		    sizeof(*r->approvers))) == NULL)
			return wse_err(WSE_ERR_NOMEM, "cannot allocate");
		for (k = 0; wse_xml_is(cur, WSE_NS_FORM, "Approver"); k++) {
			if (k >= WSE_FORM_MAX_HOPS)
				return wse_err(WSE_ERR_TOO_LARGE,
				    "more than %d approvers inserted",
				    WSE_FORM_MAX_HOPS);
			if ((st = take_party(&cur, "Approver", 0,
			    r->approvers[k])) != WSE_OK)
				return st;
		}
		r->napprovers = k;
		break;
	case WSE_REC_DECIDE:
		if ((st = take_party(&cur, "For", 0, r->on_behalf)) != WSE_OK ||
		    (st = take_text(&cur, "Verdict", buf, 16)) != WSE_OK)
			return st;
		if (strcmp(buf, "approve") == 0)
			r->verdict = WSE_VERDICT_APPROVE;
		else if (strcmp(buf, "reject") == 0)
			r->verdict = WSE_VERDICT_REJECT;
		else
			return wse_err(WSE_ERR_INVALID,
			    "f:Verdict is approve or reject");
		if (wse_xml_is(cur, WSE_NS_FORM, "Note")) {
			if ((st = take_text(&cur, "Note", buf,
			    sizeof(buf))) != WSE_OK)
				return st;
			if (!valid_text(buf, WSE_FORM_NOTE_MAX))
				return wse_err(WSE_ERR_INVALID, "bad f:Note");
			if ((r->note = strdup(buf)) == NULL)
				return wse_err(WSE_ERR_NOMEM,
				    "cannot allocate");
		}
		break;
	case WSE_REC_DELEGATE:
		if ((st = take_party(&cur, "For", 0, r->on_behalf)) != WSE_OK ||
		    (st = take_party(&cur, "To", 0, r->delegate)) != WSE_OK)
			return st;
		break;
	case WSE_REC_ACCEPT:
		if ((st = take_text(&cur, "Result", buf, 16)) != WSE_OK)
			return st;
		if (strcmp(buf, "approved") == 0)
			r->result = WSE_OUTCOME_APPROVED;
		else if (strcmp(buf, "rejected") == 0)
			r->result = WSE_OUTCOME_REJECTED;
		else
			return wse_err(WSE_ERR_INVALID,
			    "f:Result is approved or rejected");
		break;
	}
	if (cur != NULL)
		return wse_err(WSE_ERR_INVALID, "unexpected %.40s in the "
		    "signed element", (const char *)cur->name);
	return WSE_OK;
}

/* ---- the workflow ---- */

static struct person *
w_person(struct wstate *w, const char *name)
{
	size_t i;

	for (i = 0; i < w->npeople; i++)
		if (strcmp(w->people[i].name, name) == 0)
			return &w->people[i];
	return NULL;
}

/* A new approver or delegate: never the claimant, never someone who
 * already takes part (so nobody can come to decide twice). */
static wse_status
w_add_person(struct wstate *w, const wse_form_content *c, const char *name,
    size_t record, const char *as)
{
	struct person *p;

	if (strcmp(name, c->claimant) == 0)
		return wse_err(WSE_ERR_NOT_AUTHORIZED, "the claimant %s cannot "
		    "be %s: the claimant decides nothing on their own form%s",
		    name, as, strcmp(as, "a delegate") == 0 ?
		    ", not even as a delegate" : "");
	if ((p = w_person(w, name)) != NULL)
		return wse_err(WSE_ERR_NOT_AUTHORIZED, "%s cannot be %s: they "
		    "already take part in this form (since record %zu), and "
		    "no person decides twice", name, as, p->record);
	if (w->npeople >= MAX_PEOPLE)
		return wse_err(WSE_ERR_TOO_LARGE, "too many participants");
	p = &w->people[w->npeople++];
	memset(p, 0, sizeof(*p));
	memcpy(p->name, name, strlen(name) + 1);
	p->record = record;
	return WSE_OK;
}

/* State after the (verified) submit record. */
static wse_status
w_start(struct wstate *w, const wse_form_content *c)
{
	size_t i;
	wse_status st;

	memset(w, 0, sizeof(*w));
	for (i = 0; i < c->nroute; i++) {
		w->route[i] = c->route[i];
		if (c->route[i].kind == WSE_HOP_APPROVER &&
		    (st = w_add_person(w, c, c->route[i].name, 1,
		    "an approver")) != WSE_OK)
			return st;
	}
	w->nroute = c->nroute;
	w->nrecords = 1;
	w->last_time = c->submitted;
	return WSE_OK;
}

static wse_status
w_insert(struct wstate *w, const wse_form_content *c, const struct rec *r)
{
	size_t i, at0;
	wse_status st;

	if (r->at < w->cur + 2 || r->at > w->nroute + 1)
		return wse_err(WSE_ERR_NOT_AUTHORIZED, "insertion at hop %zu: "
		    "it must come after the router's own hop %zu and at "
		    "most at %zu", r->at, w->cur + 1, w->nroute + 1);
	if (w->nroute + r->napprovers > WSE_FORM_MAX_HOPS)
		return wse_err(WSE_ERR_TOO_LARGE, "the route would have more "
		    "than %d hops", WSE_FORM_MAX_HOPS);
	for (i = 0; i < r->napprovers; i++)
		if ((st = w_add_person(w, c, r->approvers[i], r->position,
		    "an approver")) != WSE_OK)
			return st;
	at0 = r->at - 1;
	memmove(&w->route[at0 + r->napprovers], &w->route[at0],
	    (w->nroute - at0) * sizeof(w->route[0]));
	for (i = 0; i < r->napprovers; i++) {
		w->route[at0 + i].kind = WSE_HOP_APPROVER;
		memcpy(w->route[at0 + i].name, r->approvers[i], PARTY);
	}
	w->nroute += r->napprovers;
	w->cur++;
	return WSE_OK;
}

/*
 * Apply record r (its signature, chain and author already verified) to
 * the workflow: r's author must be the party the route expects now, and
 * what r does must keep every rule.
 */
static wse_status
w_apply(struct wstate *w, const wse_form_content *c, const struct rec *r,
    unsigned max_delegation)
{
	const wse_form_hop *hop;
	const char *actor;
	struct person *p;
	wse_form_outcome want;
	wse_status st;

	if (r->kind == WSE_REC_SUBMIT)
		return wse_err(WSE_ERR_NOT_AUTHORIZED,
		    "only record 1 may be a submit");
	if (w->closed_at != 0)
		return wse_err(WSE_ERR_NOT_AUTHORIZED, "the final party closed "
		    "the form at record %zu: nothing may follow", w->closed_at);
	if (w->rejected || w->cur == w->nroute) {
		if (r->kind != WSE_REC_ACCEPT) {
			if (w->rejected)
				return wse_err(WSE_ERR_NOT_AUTHORIZED,
				    "%s rejected at record %zu: the route "
				    "stopped there, only the final party %s "
				    "may add a record", w->rejected_by,
				    w->rejected_at, c->final_party);
			return wse_err(WSE_ERR_NOT_AUTHORIZED, "every hop is "
			    "done: only the final party %s may add a record",
			    c->final_party);
		}
		if (strcmp(r->author, c->final_party) != 0)
			return wse_err(WSE_ERR_NOT_AUTHORIZED, "accept by %s, "
			    "but the final party is %s", r->author,
			    c->final_party);
		want = w->rejected ? WSE_OUTCOME_REJECTED :
		    WSE_OUTCOME_APPROVED;
		if (r->result != want)
			return wse_err(WSE_ERR_NOT_AUTHORIZED, "the accept "
			    "says %s, but the form was %s",
			    wse_form_outcome_name(r->result),
			    wse_form_outcome_name(want));
		w->closed_at = r->position;
		goto done;
	}

	hop = &w->route[w->cur];
	if (hop->kind == WSE_HOP_ROUTER) {
		if (r->kind != WSE_REC_INSERT)
			return wse_err(WSE_ERR_NOT_AUTHORIZED, "%s %s record, "
			    "but router %s must act (hop %zu)",
			    article(r->kind), wse_form_kind_name(r->kind),
			    hop->name, w->cur + 1);
		if (strcmp(r->author, hop->name) != 0)
			return wse_err(WSE_ERR_NOT_AUTHORIZED, "insert by %s, "
			    "but router %s must act (hop %zu)", r->author,
			    hop->name, w->cur + 1);
		if ((st = w_insert(w, c, r)) != WSE_OK)
			return st;
		goto done;
	}

	/* An approver's hop: they act, or the last one they delegated to. */
	actor = w->ndeleg > 0 ? w->deleg[w->ndeleg - 1] : hop->name;
	if (r->kind != WSE_REC_DECIDE && r->kind != WSE_REC_DELEGATE)
		return wse_err(WSE_ERR_NOT_AUTHORIZED, "%s %s record, but "
		    "approver %s must act (hop %zu)", article(r->kind),
		    wse_form_kind_name(r->kind), actor, w->cur + 1);
	if (strcmp(r->author, actor) != 0)
		return wse_err(WSE_ERR_NOT_AUTHORIZED, "%s by %s, but %s must "
		    "act (hop %zu%s%s)", wse_form_kind_name(r->kind),
		    r->author, actor, w->cur + 1, w->ndeleg ? ", for " : "",
		    w->ndeleg ? hop->name : "");
	if (strcmp(r->on_behalf, hop->name) != 0)
		return wse_err(WSE_ERR_NOT_AUTHORIZED, "the record is for %s, "
		    "but hop %zu is %s's", r->on_behalf, w->cur + 1,
		    hop->name);
	/* Defence in depth: w_add_person keeps both out of the route. */
	if (strcmp(r->author, c->claimant) == 0)
		return wse_err(WSE_ERR_NOT_AUTHORIZED,
		    "the claimant %s decides nothing on their own form",
		    r->author);
	if ((p = w_person(w, r->author)) == NULL)
		return wse_err(WSE_ERR_INTERNAL, "%s is on no list",
		    r->author);
	if (p->decided != 0)
		return wse_err(WSE_ERR_NOT_AUTHORIZED, "%s already decided at "
		    "record %zu: no person decides twice", r->author,
		    p->decided);

	if (r->kind == WSE_REC_DELEGATE) {
		if (w->ndeleg >= max_delegation)
			return wse_err(WSE_ERR_NOT_AUTHORIZED, "delegation %u "
			    "at hop %zu: the policy allows %u", w->ndeleg + 1,
			    w->cur + 1, max_delegation);
		if ((st = w_add_person(w, c, r->delegate, r->position,
		    "a delegate")) != WSE_OK)
			return st;
		memcpy(w->deleg[w->ndeleg++], r->delegate, PARTY);
		goto done;
	}

	p->decided = r->position;
	if (r->verdict == WSE_VERDICT_APPROVE) {
		wse_form_approval *a = &w->approvals[w->napprovals++];

		memcpy(a->approver, hop->name, PARTY);
		memcpy(a->signer, r->author, PARTY);
		a->position = r->position;
		a->time = r->time;
	} else {
		w->rejected = 1;
		w->rejected_at = r->position;
		memcpy(w->rejected_by, r->author, PARTY);
		memcpy(w->rejected_for, hop->name, PARTY);
	}
	w->cur++;
	w->ndeleg = 0;
done:
	w->nrecords = r->position;
	w->last_time = r->time;
	return WSE_OK;
}

/* ---- verification of one record ---- */

/* Push "what: <the newest message>" with status st. */
static wse_status
wrap_err(wse_status st, const char *what)
{
	char why[WSE_ERR_MSGLEN];

	(void)snprintf(why, sizeof(why), "%s", wse_err_last());
	return wse_err(st, "%s: %s", what, why);
}

/*
 * A user's token.  Its chain must have been good when the record was
 * signed: validity, signatures, name constraints (the domain CA may only
 * vouch for mailboxes of its domain) and purpose, at the signing time.
 * The domain CA that issued it must be trusted and unrevoked now.
 * At the signing time, CRLs issued later count as "not yet valid", a
 * temporary failure in wse_trust_verify that only ever comes when no
 * permanent verdict (expired, untrusted, name constraints, revoked --
 * even by such a CRL) applies; revocation is then decided at now, by the
 * check of the domain CA, where a missing or stale CRL fails closed.
 * Tokens are never revoked themselves (ARCHITECTURE.md): they are
 * short-lived, and a record carries the time they were used.
 */
static wse_status
check_token_chain(wse_trust *trust, struct rec *r, int64_t now)
{
	char issuer[512], subject[512];
	wse_cert *chain[1];
	wse_status st;

	chain[0] = r->ca;
	st = wse_trust_verify(trust, r->cert, chain, 1, r->time,
	    WSE_PURPOSE_TOKEN);
	if (st == WSE_ERR_REVOKED)
		return wrap_err(st, "the token's chain is revoked");
	if (st != WSE_OK && st != WSE_ERR_TEMPFAIL)
		return wrap_err(st, "the token does not chain to a trusted "
		    "CA of its mailbox's domain at the signing time");
	if (wse_cert_issuer(r->cert, issuer, sizeof(issuer)) != WSE_OK ||
	    wse_cert_subject(r->ca, subject, sizeof(subject)) != WSE_OK ||
	    strcmp(issuer, subject) != 0 || !wse_cert_is_ca(r->ca))
		return wse_err(WSE_ERR_UNTRUSTED, "the token was not issued by "
		    "the CA certificate beside it");
	if ((st = wse_trust_verify(trust, r->ca, NULL, 0, now,
	    WSE_PURPOSE_ANY)) != WSE_OK)
		return wrap_err(st, "the domain CA that issued the token is "
		    "not trusted now");
	return WSE_OK;
}

static wse_status
check_service_chain(wse_trust *trust, struct rec *r, int64_t now)
{
	wse_cert *chain[1];
	wse_status st;

	chain[0] = r->ca;
	if ((st = wse_trust_verify(trust, r->cert, chain, 1, now,
	    WSE_PURPOSE_SERVICE)) != WSE_OK)
		return wrap_err(st, "the service certificate is not trusted");
	return WSE_OK;
}

/* Verify record i (everything but the workflow), in the order of
 * docs/forms.md. */
static wse_status
verify_record(wse_form *f, wse_trust *trust, int64_t now,
    const wse_form_policy *pol, size_t i)
{
	struct rec *r = &f->recs[i], *prev = i > 0 ? &f->recs[i - 1] : NULL;
	uint8_t d[WSE_SHA256_LEN];
	char name[PARTY], tbuf[21];
	wse_buf *der = NULL;
	wse_status st;

	/* 1. Its place: position, form, content, the previous record. */
	if (r->position != i + 1)
		return wse_err(WSE_ERR_BAD_SIGNATURE, "it says it is record "
		    "%zu: a record was removed, inserted or reordered",
		    r->position);
	if (strcmp(r->form_id, f->content.id) != 0)
		return wse_err(WSE_ERR_BAD_SIGNATURE, "it belongs to form %s, "
		    "not to this one (%s)", r->form_id, f->content.id);
	if (i > 0) {
		if ((st = rec_digest(&f->recs[0])) != WSE_OK ||
		    (st = rec_digest(prev)) != WSE_OK)
			return st;
		if (!wse_ct_equal(r->content, f->recs[0].digest,
		    WSE_SHA256_LEN))
			return wse_err(WSE_ERR_BAD_SIGNATURE, "it was signed "
			    "over other content than this form's submit");
		if (!wse_ct_equal(r->previous, prev->digest, WSE_SHA256_LEN))
			return wse_err(WSE_ERR_BAD_SIGNATURE, "it does not "
			    "follow record %zu (the hash chain is broken: a "
			    "record was removed, replaced or reordered)", i);
	}

	/* 2. Its time. */
	if (prev != NULL && r->time < prev->time) {
		wse_time_format(prev->time, tbuf);
		return wse_err(WSE_ERR_INVALID, "it was signed before record "
		    "%zu (%s)", i, tbuf);
	}
	if (r->time > now + pol->future_skew)
		return wse_err(WSE_ERR_FUTURE, "it was signed %lld s in the "
		    "future", (long long)(r->time - now));
	if (i == 0 && pol->max_age > 0 && now - r->time > pol->max_age)
		return wse_err(WSE_ERR_EXPIRED, "the form was submitted %lld s "
		    "ago; the policy allows %lld s",
		    (long long)(now - r->time), (long long)pol->max_age);

	/* 3. The certificate the signer named, valid at the signing time. */
	if ((der = wse_buf_new(CERT_DER_MAX)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	st = wse_cert_to_der(r->cert, der);
	if (st == WSE_OK)
		st = wse_sha256(wse_buf_data(der), wse_buf_len(der), d);
	wse_buf_free(&der);
	if (st != WSE_OK)
		return st;
	if (!wse_ct_equal(d, r->cert_digest, WSE_SHA256_LEN))
		return wse_err(WSE_ERR_BAD_SIGNATURE, "its certificate is not "
		    "the one named in the signed content");
	if ((st = wse_cert_check_time(r->cert, r->time)) != WSE_OK)
		return wrap_err(st, "the signer's certificate was not valid "
		    "at the signing time");

	/* 4. The signature, by that certificate's key, over this element. */
	if ((st = wse_wss_verify_node(r->sig, r->el, r->cert, &f->lim,
	    r->digest)) != WSE_OK)
		return st;
	r->have_digest = 1;
	/* 5. The chain. */
	st = kind_is_service(r->kind) ? check_service_chain(trust, r, now) :
	    check_token_chain(trust, r, now);
	if (st != WSE_OK)
		return st;

	/* 6. The author is whom the certificate names. */
	if (kind_is_service(r->kind)) {
		if (wse_cert_mailbox(r->cert, name, sizeof(name)) == WSE_OK)
			return wse_err(WSE_ERR_NOT_AUTHORIZED, "a user's token "
			    "cannot sign a server's record");
		if ((st = wse_cert_domain(r->cert, name, sizeof(name))) !=
		    WSE_OK || strcmp(name, r->author) != 0)
			return wse_err(WSE_ERR_DOMAIN_MISMATCH, "signed with "
			    "the service certificate of %s, but names %s as "
			    "its author", st == WSE_OK ? name : "no domain",
			    r->author);
	} else {
		if ((st = wse_cert_mailbox(r->cert, name, sizeof(name))) !=
		    WSE_OK || strcmp(name, r->author) != 0)
			return wse_err(WSE_ERR_DOMAIN_MISMATCH, "signed with "
			    "the token of %s, but names %s as its author",
			    st == WSE_OK ? name : "no mailbox", r->author);
	}
	return WSE_OK;
}

void
wse_form_policy_default(wse_form_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->max_delegation = DEFAULT_MAX_DELEGATION;
	p->future_skew = DEFAULT_FUTURE_SKEW;
	p->max_age = DEFAULT_MAX_AGE;
}

void
wse_form_report_clear(wse_form_report *r)
{
	if (r == NULL)
		return;
	free(r->approvals);
	memset(r, 0, sizeof(*r));
}

static wse_form_outcome
w_outcome(const struct wstate *w)
{
	if (w->rejected)
		return WSE_OUTCOME_REJECTED;
	return w->cur == w->nroute ? WSE_OUTCOME_APPROVED :
	    WSE_OUTCOME_PENDING;
}

/* Record the failure in the report and on the error stack. */
static wse_status
fail(wse_form_report *rep, wse_status st, size_t position,
    const struct rec *r)
{
	char why[WSE_ERR_MSGLEN];

	(void)snprintf(why, sizeof(why), "%s", wse_err_last());
	rep->status = st;
	rep->position = position;
	if (r != NULL)
		(void)snprintf(rep->reason, sizeof(rep->reason),
		    "record %zu (%s by %s): %s", position,
		    wse_form_kind_name(r->kind), r->author, why);
	else
		(void)snprintf(rep->reason, sizeof(rep->reason), "%s", why);
	return wse_err(st, "%s", rep->reason);
}

wse_status
wse_form_verify(wse_form *f, wse_trust *trust, int64_t now,
    const wse_form_policy *policy, wse_form_report *report)
{
	wse_form_policy defpol;
	wse_form_report local;
	wse_form_report *rep = report != NULL ? report : &local;
	struct wstate *w;
	size_t i;
	wse_status st;

	memset(rep, 0, sizeof(*rep));
	if (policy == NULL) {
		wse_form_policy_default(&defpol);
		policy = &defpol;
	}
	if (f == NULL || trust == NULL)
		return wse_err(WSE_ERR_INVALID, "form verify: NULL argument");
	f->state_valid = 0;
	if (f->nrec == 0) {
		st = wse_err(WSE_ERR_INVALID, "a draft has nothing to verify");
		return fail(rep, st, 0, NULL);
	}
	if (policy->max_delegation > WSE_FORM_MAX_DELEGATION ||
	    policy->future_skew < 0 || policy->max_age < 0) {
		st = wse_err(WSE_ERR_INVALID, "bad form policy");
		return fail(rep, st, 0, NULL);
	}
	w = &f->w;
	rep->nrecords = f->nrec;
	for (i = 0; i < f->nrec; i++) {
		if ((st = verify_record(f, trust, now, policy, i)) != WSE_OK)
			goto bad_record;
		if (i == 0) {
			if ((st = w_start(w, &f->content)) != WSE_OK)
				goto bad_record;
			if (policy->final_party != NULL &&
			    strcmp(policy->final_party,
			    f->content.final_party) != 0) {
				st = wse_err(WSE_ERR_NOT_AUTHORIZED, "the form "
				    "ends at %s, not at %.100s",
				    f->content.final_party,
				    policy->final_party);
				goto bad_form;
			}
		} else if ((st = w_apply(w, &f->content, &f->recs[i],
		    policy->max_delegation)) != WSE_OK)
			goto bad_record;
	}
	if (policy->require_complete && !w->rejected && w->cur < w->nroute) {
		const wse_form_hop *h = &w->route[w->cur];

		st = wse_err(WSE_ERR_NOT_AUTHORIZED, "the form is incomplete: "
		    "hop %zu (%s %s) has not acted", w->cur + 1,
		    h->kind == WSE_HOP_ROUTER ? "router" : "approver",
		    h->name);
		goto bad_form;
	}

	rep->status = WSE_OK;
	rep->outcome = w_outcome(w);
	if (w->napprovals > 0) {
		if ((rep->approvals = calloc(w->napprovals,
		    sizeof(*rep->approvals))) == NULL)
			return wse_err(WSE_ERR_NOMEM, "cannot allocate");
		memcpy(rep->approvals, w->approvals,
		    w->napprovals * sizeof(*rep->approvals));
	}
	rep->napprovals = w->napprovals;
	memcpy(rep->rejected_by, w->rejected_by, PARTY);
	memcpy(rep->rejected_for, w->rejected_for, PARTY);
	rep->rejected_at = w->rejected_at;
	f->state_valid = 1;
	f->max_delegation = policy->max_delegation;
	f->future_skew = policy->future_skew;
	if (rep == &local)
		wse_form_report_clear(&local);
	wse_err_clear();
	return WSE_OK;
bad_record:
	return fail(rep, st, i + 1, &f->recs[i]);
bad_form:
	return fail(rep, st, 0, NULL);
}

/* ---- reading a form ---- */

void
wse_form_free(wse_form **fp)
{
	wse_form *f;
	size_t i;

	if (fp == NULL || (f = *fp) == NULL)
		return;
	for (i = 0; i < f->nrec; i++)
		rec_clear(&f->recs[i]);
	content_clear(&f->content);
	if (f->doc != NULL)
		xmlFreeDoc(f->doc);
	free(f);
	*fp = NULL;
}

static wse_status
form_alloc(const wse_limits *lim, wse_form **f_r)
{
	wse_form *f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate a form");
	if (lim != NULL)
		f->lim = *lim;
	else
		wse_limits_default(&f->lim);
	if (f->lim.max_message_bytes > WSE_FORM_MAX_BYTES)
		f->lim.max_message_bytes = WSE_FORM_MAX_BYTES;
	f->max_delegation = DEFAULT_MAX_DELEGATION;
	f->future_skew = DEFAULT_FUTURE_SKEW;
	*f_r = f;
	return WSE_OK;
}

wse_status
wse_form_parse(const uint8_t *data, size_t len, const wse_limits *lim,
    wse_form **form_r)
{
	wse_form *f = NULL;
	xmlNodePtr n;
	size_t count = 0, i;
	wse_status st;

	*form_r = NULL;
	if (data == NULL)
		return wse_err(WSE_ERR_INVALID, "form parse: no data");
	if ((st = form_alloc(lim, &f)) != WSE_OK)
		return st;
	if (len > f->lim.max_message_bytes) {
		st = wse_err(WSE_ERR_TOO_LARGE, "a form of %zu bytes (at most "
		    "%zu)", len, f->lim.max_message_bytes);
		goto out;
	}
	if ((st = wse_xml_parse(data, len, &f->lim, &f->doc)) != WSE_OK)
		goto out;
	f->root = xmlDocGetRootElement(f->doc);
	if (!wse_xml_is(f->root, WSE_NS_FORM, "Form")) {
		st = wse_err(WSE_ERR_INVALID, "not a form (f:Form)");
		goto out;
	}
	/* Before anything else: nothing hidden, every Id unique. */
	for (n = f->doc->children; n != NULL; n = n->next)
		if (n->type == XML_COMMENT_NODE || n->type == XML_PI_NODE)
			break;
	if (n != NULL || wse_xml_check_no_comments(f->root) != WSE_OK) {
		st = wse_err(WSE_ERR_PARSE, "comments and processing "
		    "instructions are not allowed in a form");
		goto out;
	}
	if ((st = wse_wss_check_ids(f->doc, f->lim.max_xml_nodes)) != WSE_OK ||
	    (st = attrs_only(f->root, 0, NULL, NULL)) != WSE_OK ||
	    (st = elements_only(f->root)) != WSE_OK)
		goto out;
	/* Count the records before looking into any. */
	for (n = wse_xml_first_elem(f->root); n; n = wse_xml_next_elem(n)) {
		if (!wse_xml_is(n, WSE_NS_FORM, "Record")) {
			st = wse_err(WSE_ERR_INVALID,
			    "f:Form holds only f:Record");
			goto out;
		}
		if (++count > WSE_FORM_MAX_RECORDS) {
			st = wse_err(WSE_ERR_TOO_LARGE,
			    "more than %d records", WSE_FORM_MAX_RECORDS);
			goto out;
		}
	}
	if (count == 0) {
		st = wse_err(WSE_ERR_INVALID, "a form without records");
		goto out;
	}
	for (i = 0, n = wse_xml_first_elem(f->root); i < count;
	    i++, n = wse_xml_next_elem(n)) {
		f->nrec = i + 1;
		if ((st = parse_record(n, i + 1, &f->recs[i],
		    &f->content)) != WSE_OK) {
			char why[WSE_ERR_MSGLEN];

			(void)snprintf(why, sizeof(why), "%s", wse_err_last());
			st = wse_err(st, "record %zu: %s", i + 1, why);
			goto out;
		}
	}
	*form_r = f;
	f = NULL;
	st = WSE_OK;
out:
	wse_form_free(&f);
	return st;
}

wse_status
wse_form_serialize(const wse_form *f, wse_buf *out)
{
	if (f == NULL || out == NULL || f->doc == NULL)
		return wse_err(WSE_ERR_INVALID, "form serialize: NULL");
	if (f->draft)
		return wse_err(WSE_ERR_INVALID, "a draft is not signed yet");
	return wse_xml_serialize(f->doc, out);
}

const wse_form_content *
wse_form_content_get(const wse_form *f)
{
	if (f == NULL || (!f->draft && !f->state_valid))
		return NULL;
	return &f->content;
}

size_t
wse_form_nrecords(const wse_form *f)
{
	return f != NULL ? f->nrec : 0;
}

wse_status
wse_form_state(const wse_form *f, wse_form_state_info *s)
{
	const struct wstate *w;
	const wse_form_hop *hop;

	memset(s, 0, sizeof(*s));
	if (f == NULL || (!f->draft && !f->state_valid))
		return wse_err(WSE_ERR_INVALID,
		    "the form has not been verified");
	if (f->draft) {
		s->phase = WSE_FORM_DRAFT;
		s->nhops = f->content.nroute;
		return WSE_OK;
	}
	w = &f->w;
	s->outcome = w_outcome(w);
	s->nhops = w->nroute;
	s->nrecords = f->nrec;
	s->last_time = w->last_time;
	if (w->closed_at != 0) {
		s->phase = WSE_FORM_CLOSED;
		return WSE_OK;
	}
	if (w->rejected || w->cur == w->nroute) {
		s->phase = WSE_FORM_FINAL;
		s->party = f->content.final_party;
		return WSE_OK;
	}
	hop = &w->route[w->cur];
	s->hop = w->cur + 1;
	if (hop->kind == WSE_HOP_ROUTER) {
		s->phase = WSE_FORM_ROUTER;
		s->party = hop->name;
		return WSE_OK;
	}
	s->phase = WSE_FORM_APPROVER;
	s->approver = hop->name;
	s->party = w->ndeleg > 0 ? w->deleg[w->ndeleg - 1] : hop->name;
	s->delegations = w->ndeleg;
	return WSE_OK;
}

wse_status
wse_form_route(const wse_form *f, const wse_form_hop **hops_r, size_t *n_r)
{
	*hops_r = NULL;
	*n_r = 0;
	if (f == NULL || (!f->draft && !f->state_valid))
		return wse_err(WSE_ERR_INVALID,
		    "the form has not been verified");
	if (f->draft) {
		*hops_r = f->content.route;
		*n_r = f->content.nroute;
	} else {
		*hops_r = f->w.route;
		*n_r = f->w.nroute;
	}
	return WSE_OK;
}

/* ---- building ---- */

wse_status
wse_form_new(const char *claimant, const wse_form_type *type,
    const char *final_party, wse_form **form_r)
{
	wse_form *f = NULL;
	wse_form_content *c;
	xmlNsPtr ns;
	wse_status st;

	*form_r = NULL;
	if (type == NULL)
		return wse_err(WSE_ERR_INVALID, "no form type");
	if ((st = form_alloc(NULL, &f)) != WSE_OK)
		return st;
	c = &f->content;
	if ((st = content_alloc(c)) != WSE_OK ||
	    (st = normalize_party(claimant, 0, c->claimant)) != WSE_OK ||
	    (st = normalize_party(final_party, 1, c->final_party)) != WSE_OK)
		goto out;
	if (!valid_name(type->name, WSE_FORM_NAME_MAX, 1) ||
	    !all_lower(type->name)) {
		st = wse_err(WSE_ERR_INVALID, "bad form type name");
		goto out;
	}
	if (!valid_name(type->version, WSE_FORM_VERSION_MAX, 1)) {
		st = wse_err(WSE_ERR_INVALID, "bad form type version");
		goto out;
	}
	if (!valid_url(type->plugin_url)) {
		st = wse_err(WSE_ERR_INVALID, "the plugin URL must be https "
		    "and at most %d bytes", WSE_FORM_URL_MAX);
		goto out;
	}
	if (!wse_hex_valid(type->plugin_sha256, HEXLEN)) {
		st = wse_err(WSE_ERR_INVALID,
		    "the plugin SHA-256 must be 64 lower-case hex digits");
		goto out;
	}
	(void)snprintf(c->type_name, sizeof(c->type_name), "%s", type->name);
	(void)snprintf(c->type_version, sizeof(c->type_version), "%s",
	    type->version);
	(void)snprintf(c->plugin_url, sizeof(c->plugin_url), "%s",
	    type->plugin_url);
	memcpy(c->plugin_sha256, type->plugin_sha256, HEXLEN + 1);
	if ((st = wse_uuid_urn(c->id)) != WSE_OK)
		goto out;
	if ((f->doc = xmlNewDoc(BAD_CAST "1.0")) == NULL ||
	    (f->root = xmlNewNode(NULL, BAD_CAST "Form")) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto out;
	}
	xmlDocSetRootElement(f->doc, f->root);
	if ((ns = xmlNewNs(f->root, BAD_CAST WSE_NS_FORM, BAD_CAST "f")) ==
	    NULL || xmlNewNs(f->root, BAD_CAST WSE_NS_WSU,
	    BAD_CAST "wsu") == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto out;
	}
	xmlSetNs(f->root, ns);
	f->draft = 1;
	*form_r = f;
	f = NULL;
	st = WSE_OK;
out:
	wse_form_free(&f);
	return st;
}

wse_status
wse_form_add_field(wse_form *f, const char *name, wse_form_ftype type,
    const char *value)
{
	if (f == NULL || !f->draft)
		return wse_err(WSE_ERR_EXISTS,
		    "fields can only be added to a draft");
	return content_add_field(&f->content, name, type, value);
}

wse_status
wse_form_add_hop(wse_form *f, wse_form_hop_kind kind, const char *name)
{
	wse_form_content *c;
	wse_form_hop *h;
	size_t i;
	wse_status st;

	if (f == NULL || !f->draft)
		return wse_err(WSE_ERR_EXISTS,
		    "hops can only be added to a draft");
	c = &f->content;
	if (c->nroute >= WSE_FORM_MAX_HOPS)
		return wse_err(WSE_ERR_TOO_LARGE, "more than %d hops",
		    WSE_FORM_MAX_HOPS);
	if (kind != WSE_HOP_ROUTER && kind != WSE_HOP_APPROVER)
		return wse_err(WSE_ERR_INVALID, "unknown hop kind");
	h = &c->route[c->nroute];
	if ((st = normalize_party(name, kind == WSE_HOP_ROUTER, h->name)) !=
	    WSE_OK)
		return st;
	if (kind == WSE_HOP_APPROVER) {
		if (strcmp(h->name, c->claimant) == 0)
			return wse_err(WSE_ERR_NOT_AUTHORIZED, "the claimant "
			    "cannot approve their own form");
		for (i = 0; i < c->nroute; i++)
			if (c->route[i].kind == WSE_HOP_APPROVER &&
			    strcmp(c->route[i].name, h->name) == 0)
				return wse_err(WSE_ERR_INVALID, "%s is already "
				    "an approver: no person decides twice",
				    h->name);
	}
	h->kind = kind;
	c->nroute++;
	return WSE_OK;
}

static xmlNodePtr
add_el(xmlNodePtr parent, const char *local, const char *text)
{
	xmlNodePtr n, t;

	if ((n = xmlNewChild(parent, parent->ns, BAD_CAST local, NULL)) ==
	    NULL)
		return NULL;
	if (text != NULL && *text != '\0') {
		if ((t = xmlNewText(BAD_CAST text)) == NULL)
			return NULL;
		if (xmlAddChild(n, t) == NULL) {
			xmlFreeNode(t);
			return NULL;
		}
	}
	return n;
}

static xmlNodePtr
add_hex(xmlNodePtr parent, const char *local, const uint8_t d[WSE_SHA256_LEN])
{
	char hex[HEXLEN + 1];

	wse_hex(d, WSE_SHA256_LEN, hex);
	return add_el(parent, local, hex);
}

static wse_status
add_cert(xmlNodePtr rec, const wse_cert *cert, uint8_t digest_r[])
{
	wse_buf *der = NULL, *b64 = NULL;
	wse_status st;

	if ((der = wse_buf_new(CERT_DER_MAX)) == NULL ||
	    (b64 = wse_buf_new(CERT_B64_MAX)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto out;
	}
	if ((st = wse_cert_to_der(cert, der)) != WSE_OK ||
	    (st = wse_base64_encode(wse_buf_data(der), wse_buf_len(der),
	    b64)) != WSE_OK ||
	    (digest_r != NULL && (st = wse_sha256(wse_buf_data(der),
	    wse_buf_len(der), digest_r)) != WSE_OK))
		goto out;
	if (add_el(rec, "Certificate", wse_buf_str(b64)) == NULL)
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
out:
	wse_buf_free(&der);
	wse_buf_free(&b64);
	return st;
}

/* The kind-specific children of the signed element. */
static wse_status
emit_kind(xmlNodePtr el, const wse_form_content *c, const struct rec *p)
{
	char num[24];
	size_t i;
	int ok = 1;

	switch (p->kind) {
	case WSE_REC_SUBMIT: {
		xmlNodePtr t, fl, rt, pl;

		ok = (t = add_el(el, "Type", NULL)) != NULL &&
		    add_el(t, "Name", c->type_name) != NULL &&
		    add_el(t, "Version", c->type_version) != NULL &&
		    (pl = add_el(t, "Plugin", c->plugin_url)) != NULL &&
		    xmlSetProp(pl, BAD_CAST "sha256",
		    BAD_CAST c->plugin_sha256) != NULL &&
		    (fl = add_el(el, "Fields", NULL)) != NULL;
		for (i = 0; ok && i < c->nfields; i++) {
			xmlNodePtr fe = add_el(fl, "Field", c->fields[i].value);

			ok = fe != NULL && xmlSetProp(fe, BAD_CAST "name",
			    BAD_CAST c->fields[i].name) != NULL &&
			    xmlSetProp(fe, BAD_CAST "type", BAD_CAST
			    wse_form_ftype_name(c->fields[i].type)) != NULL;
		}
		ok = ok && (rt = add_el(el, "Route", NULL)) != NULL;
		for (i = 0; ok && i < c->nroute; i++)
			ok = add_el(rt, c->route[i].kind == WSE_HOP_ROUTER ?
			    "Router" : "Approver", c->route[i].name) != NULL;
		ok = ok && add_el(el, "FinalParty", c->final_party) != NULL;
		break;
	}
	case WSE_REC_INSERT:
		(void)snprintf(num, sizeof(num), "%zu", p->at);
		ok = add_el(el, "At", num) != NULL;
		for (i = 0; ok && i < p->napprovers; i++)
			ok = add_el(el, "Approver", p->approvers[i]) != NULL;
		break;
	case WSE_REC_DECIDE:
		ok = add_el(el, "For", p->on_behalf) != NULL &&
		    add_el(el, "Verdict", p->verdict == WSE_VERDICT_APPROVE ?
		    "approve" : "reject") != NULL &&
		    (p->note == NULL || add_el(el, "Note", p->note) != NULL);
		break;
	case WSE_REC_DELEGATE:
		ok = add_el(el, "For", p->on_behalf) != NULL &&
		    add_el(el, "To", p->delegate) != NULL;
		break;
	case WSE_REC_ACCEPT:
		ok = add_el(el, "Result", p->result == WSE_OUTCOME_REJECTED ?
		    "rejected" : "approved") != NULL;
		break;
	}
	return ok ? WSE_OK : wse_err(WSE_ERR_NOMEM, "cannot build record");
}

/*
 * Build, sign and append record p (its kind, author, time and kind data)
 * as record f->nrec + 1, then parse it back exactly as a receiver would
 * into f->recs.  On failure the form is unchanged.
 */
static wse_status
append_record(wse_form *f, const wse_form_signer *s, const struct rec *p)
{
	xmlNodePtr rec = NULL, el;
	xmlNsPtr ns;
	wse_form_content tmp;
	uint8_t cert_digest[WSE_SHA256_LEN], d[WSE_SHA256_LEN];
	char num[24], tbuf[21];
	size_t n = f->nrec + 1;
	wse_status st;

	memset(&tmp, 0, sizeof(tmp));
	if (n > WSE_FORM_MAX_RECORDS)
		return wse_err(WSE_ERR_TOO_LARGE, "a form holds at most %d "
		    "records", WSE_FORM_MAX_RECORDS);
	if (n > 1 && ((st = rec_digest(&f->recs[0])) != WSE_OK ||
	    (st = rec_digest(&f->recs[n - 2])) != WSE_OK))
		return st;
	if ((ns = xmlSearchNsByHref(f->doc, f->root,
	    BAD_CAST WSE_NS_FORM)) == NULL)
		return wse_err(WSE_ERR_INTERNAL, "the form lost its namespace");
	if ((rec = xmlNewChild(f->root, ns, BAD_CAST "Record", NULL)) == NULL ||
	    (el = xmlNewChild(rec, ns, BAD_CAST kind_elem[p->kind],
	    NULL)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot build record");
		goto out;
	}
	(void)snprintf(num, sizeof(num), "%zu", n);
	wse_time_format(p->time, tbuf);
	if (add_el(el, "FormId", f->content.id) == NULL ||
	    add_el(el, "Position", num) == NULL ||
	    add_el(el, "Time", tbuf) == NULL ||
	    add_el(el, "Author", p->author) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot build record");
		goto out;
	}
	/* The certificates first (their digest goes into the content). */
	if ((st = add_cert(rec, s->cert, cert_digest)) != WSE_OK ||
	    (st = add_cert(rec, s->ca, NULL)) != WSE_OK)
		goto out;
	if (add_hex(el, "SignerCert", cert_digest) == NULL ||
	    (n > 1 && (add_hex(el, "Content", f->recs[0].digest) == NULL ||
	    add_hex(el, "Previous", f->recs[n - 2].digest) == NULL))) {
		st = wse_err(WSE_ERR_NOMEM, "cannot build record");
		goto out;
	}
	if ((st = emit_kind(el, &f->content, p)) != WSE_OK ||
	    (st = wse_wss_sign_node(el, "rec", rec, s->key, d)) != WSE_OK)
		goto out;
	/* Read it back as any receiver will. */
	if ((st = parse_record(rec, n, &f->recs[n - 1], &tmp)) != WSE_OK) {
		st = wrap_err(WSE_ERR_INVALID, "the new record does not parse");
		rec_clear(&f->recs[n - 1]);
		goto out;
	}
	memcpy(f->recs[n - 1].digest, d, sizeof(d));
	f->recs[n - 1].have_digest = 1;
	f->nrec = n;
	rec = NULL;
out:
	content_clear(&tmp);
	if (rec != NULL) {
		xmlUnlinkNode(rec);
		xmlFreeNode(rec);
	}
	return st;
}

/* The signer's identity: a token's mailbox, or a service certificate's
 * domain (service set). */
static wse_status
signer_identity(const wse_form_signer *s, int service, char out[PARTY])
{
	char mbox[PARTY];
	size_t mark = wse_err_mark();

	if (s == NULL || s->key == NULL || s->cert == NULL || s->ca == NULL)
		return wse_err(WSE_ERR_INVALID, "incomplete signer");
	if (!wse_key_is_private(s->key) ||
	    !wse_cert_matches_key(s->cert, s->key))
		return wse_err(WSE_ERR_INVALID,
		    "the signing key does not match the certificate");
	if (wse_cert_mailbox(s->cert, mbox, sizeof(mbox)) == WSE_OK) {
		if (service)
			return wse_err(WSE_ERR_NOT_AUTHORIZED, "a user's "
			    "token cannot sign a server's record");
		memcpy(out, mbox, PARTY);
		return WSE_OK;
	}
	/* A service certificate names no mailbox: not a cause to keep
	 * under whatever the record's rules refuse next. */
	wse_err_truncate(mark);
	if (!service)
		return wse_err(WSE_ERR_NOT_AUTHORIZED,
		    "a user's record needs their token certificate");
	if (wse_cert_domain(s->cert, out, PARTY) != WSE_OK)
		return wse_err(WSE_ERR_INVALID,
		    "the service certificate names no domain");
	return WSE_OK;
}

/* The signing time: now, or the newest record's time when this clock is
 * behind it (by at most the allowed skew). */
static wse_status
sign_time(const wse_form *f, int64_t now, int64_t *t_r)
{
	int64_t last = f->nrec > 0 ? f->recs[f->nrec - 1].time : 0;

	if (now <= 0)
		return wse_err(WSE_ERR_INVALID, "bad time");
	if (last > now) {
		if (last - now > f->future_skew)
			return wse_err(WSE_ERR_FUTURE, "the newest record is "
			    "%lld s ahead of this clock",
			    (long long)(last - now));
		now = last;
	}
	*t_r = now;
	return WSE_OK;
}

wse_status
wse_form_sign_submit(wse_form *f, const wse_form_signer *s, int64_t now)
{
	struct rec p;
	char who[PARTY];
	wse_status st;

	if (f == NULL || !f->draft)
		return wse_err(WSE_ERR_EXISTS, "the form is already submitted");
	if ((st = signer_identity(s, 0, who)) != WSE_OK)
		return st;
	if (strcmp(who, f->content.claimant) != 0)
		return wse_err(WSE_ERR_NOT_AUTHORIZED, "the token is %s's, but "
		    "the claimant is %s", who, f->content.claimant);
	if ((st = wse_cert_check_time(s->cert, now)) != WSE_OK)
		return st;
	memset(&p, 0, sizeof(p));
	p.kind = WSE_REC_SUBMIT;
	p.time = now;
	memcpy(p.author, who, PARTY);
	f->content.submitted = now;
	/* the route's rules, before signing anything */
	if ((st = w_start(&f->w, &f->content)) != WSE_OK)
		goto out;
	if ((st = append_record(f, s, &p)) != WSE_OK)
		goto out;
	f->draft = 0;
	f->state_valid = 1;
out:
	if (st != WSE_OK)
		f->content.submitted = 0;
	return st;
}

/* Check p against the verified state, then sign and append it. */
static wse_status
add_checked(wse_form *f, const wse_form_signer *s, struct rec *p,
    int64_t now)
{
	struct wstate *w = NULL;
	wse_status st;

	if (f == NULL || f->draft || !f->state_valid)
		return wse_err(WSE_ERR_INVALID, "verify the form "
		    "(wse_form_verify) before adding to it");
	if ((st = signer_identity(s, kind_is_service(p->kind),
	    p->author)) != WSE_OK ||
	    (st = sign_time(f, now, &p->time)) != WSE_OK)
		return st;
	if ((st = wse_cert_check_time(s->cert, p->time)) != WSE_OK)
		return wrap_err(st, "the signer's certificate is not valid");
	p->position = f->nrec + 1;
	if ((w = malloc(sizeof(*w))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	memcpy(w, &f->w, sizeof(*w));
	if ((st = w_apply(w, &f->content, p, f->max_delegation)) == WSE_OK &&
	    (st = append_record(f, s, p)) == WSE_OK)
		memcpy(&f->w, w, sizeof(*w));
	free(w);
	return st;
}

/* The approver of the current hop, or "" when it is not an approver's. */
static void
current_approver(const wse_form *f, char out[PARTY])
{
	const struct wstate *w = &f->w;

	out[0] = '\0';
	if (!w->rejected && w->closed_at == 0 && w->cur < w->nroute &&
	    w->route[w->cur].kind == WSE_HOP_APPROVER)
		memcpy(out, w->route[w->cur].name, PARTY);
}

wse_status
wse_form_add_insert(wse_form *f, const wse_form_signer *s, size_t at,
    const char *const *approvers, size_t n, int64_t now)
{
	struct rec p;
	size_t i;
	wse_status st;

	memset(&p, 0, sizeof(p));
	if (f == NULL || (n > 0 && approvers == NULL))
		return wse_err(WSE_ERR_INVALID, "insert: NULL argument");
	if (n > WSE_FORM_MAX_HOPS)
		return wse_err(WSE_ERR_TOO_LARGE, "too many approvers");
	if ((p.approvers = calloc(n > 0 ? n : 1, sizeof(*p.approvers))) ==
	    NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	for (i = 0; i < n; i++)
		if ((st = normalize_party(approvers[i], 0, p.approvers[i])) !=
		    WSE_OK)
			goto out;
	p.napprovers = n;
	p.kind = WSE_REC_INSERT;
	p.at = at != 0 ? at : f->w.cur + 2;
	st = add_checked(f, s, &p, now);
out:
	free(p.approvers);
	return st;
}

wse_status
wse_form_add_decision(wse_form *f, const wse_form_signer *s,
    wse_form_verdict verdict, const char *note, int64_t now)
{
	struct rec p;

	memset(&p, 0, sizeof(p));
	if (f == NULL)
		return wse_err(WSE_ERR_INVALID, "decision: NULL form");
	if (verdict != WSE_VERDICT_APPROVE && verdict != WSE_VERDICT_REJECT)
		return wse_err(WSE_ERR_INVALID, "unknown verdict");
	if (note != NULL && !valid_text(note, WSE_FORM_NOTE_MAX))
		return wse_err(WSE_ERR_INVALID, "bad note (UTF-8, at most %d "
		    "bytes, no control characters)", WSE_FORM_NOTE_MAX);
	p.kind = WSE_REC_DECIDE;
	p.verdict = verdict;
	p.note = (char *)(uintptr_t)note;	/* read only */
	current_approver(f, p.on_behalf);
	return add_checked(f, s, &p, now);
}

wse_status
wse_form_add_delegation(wse_form *f, const wse_form_signer *s,
    const char *delegate, int64_t now)
{
	struct rec p;
	wse_status st;

	memset(&p, 0, sizeof(p));
	if (f == NULL)
		return wse_err(WSE_ERR_INVALID, "delegation: NULL form");
	if ((st = normalize_party(delegate, 0, p.delegate)) != WSE_OK)
		return st;
	p.kind = WSE_REC_DELEGATE;
	current_approver(f, p.on_behalf);
	return add_checked(f, s, &p, now);
}

wse_status
wse_form_add_accept(wse_form *f, const wse_form_signer *s, int64_t now)
{
	struct rec p;

	memset(&p, 0, sizeof(p));
	if (f == NULL)
		return wse_err(WSE_ERR_INVALID, "accept: NULL form");
	p.kind = WSE_REC_ACCEPT;
	p.result = f->w.rejected ? WSE_OUTCOME_REJECTED :
	    WSE_OUTCOME_APPROVED;
	return add_checked(f, s, &p, now);
}

wse_status
wse_form_append_unchecked(wse_form *f, const wse_form_signer *s,
    const wse_form_record_spec *spec, int64_t now)
{
	struct rec p;
	char who[PARTY];
	size_t i;
	wse_status st;

	memset(&p, 0, sizeof(p));
	if (f == NULL || spec == NULL || f->draft || f->nrec == 0)
		return wse_err(WSE_ERR_INVALID, "append: a submitted form and "
		    "a record are needed");
	if (spec->kind < WSE_REC_INSERT || spec->kind > WSE_REC_ACCEPT)
		return wse_err(WSE_ERR_INVALID, "append: bad record kind");
	p.kind = spec->kind;
	if ((st = signer_identity(s, kind_is_service(p.kind), who)) != WSE_OK)
		return st;
	(void)snprintf(p.author, sizeof(p.author), "%s",
	    spec->author != NULL ? spec->author : who);
	if (spec->time != 0)
		p.time = spec->time;
	else if ((st = sign_time(f, now, &p.time)) != WSE_OK)
		return st;
	p.at = spec->at != 0 ? spec->at : f->w.cur + 2;
	if (spec->napprovers > WSE_FORM_MAX_HOPS ||
	    (spec->napprovers > 0 && spec->approvers == NULL))
		return wse_err(WSE_ERR_INVALID, "append: bad approvers");
	if ((p.approvers = calloc(spec->napprovers + 1,
	    sizeof(*p.approvers))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	for (i = 0; i < spec->napprovers; i++)
		(void)snprintf(p.approvers[i], PARTY, "%s",
		    spec->approvers[i]);
	p.napprovers = spec->napprovers;
	if (spec->on_behalf != NULL)
		(void)snprintf(p.on_behalf, PARTY, "%s", spec->on_behalf);
	else
		current_approver(f, p.on_behalf);
	p.verdict = spec->verdict != 0 ? spec->verdict : WSE_VERDICT_APPROVE;
	p.note = (char *)(uintptr_t)spec->note;	/* read only */
	if (spec->delegate != NULL)
		(void)snprintf(p.delegate, PARTY, "%s", spec->delegate);
	p.result = spec->result != WSE_OUTCOME_PENDING ? spec->result :
	    WSE_OUTCOME_APPROVED;
	st = append_record(f, s, &p);
	if (st == WSE_OK)
		f->state_valid = 0;
	free(p.approvers);
	return st;
}
