/*
 * msg.c - the mail message: parse, check, build.
 */
#include "msg.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"
#include "text.h"
#include "soap.h"
#include "xml.h"

#define TEXT_MAX (64u << 20)
#define NAME_MAX_LEN 255

int
wse_addr_valid(const char *s)
{
	const char *at, *p, *label;
	size_t n;

	if (s == NULL || (n = strlen(s)) == 0 || n > WSE_ADDR_MAX ||
	    (at = strchr(s, '@')) == NULL || strchr(at + 1, '@') != NULL)
		return 0;
	if (at == s || at - s > 64)
		return 0;
	for (p = s; p < at; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
		    *p == '+' || *p == '-'))
			return 0;
	if (s[0] == '.' || at[-1] == '.')
		return 0;
	/* domain: labels of letters, digits, hyphens, not at either end */
	label = at + 1;
	if (*label == '\0' || strlen(label) > 253)
		return 0;
	for (p = label;; p++) {
		if (*p == '.' || *p == '\0') {
			if (p == label || p - label > 63 || label[0] == '-' ||
			    p[-1] == '-')
				return 0;
			if (*p == '\0')
				break;
			label = p + 1;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-'))
			return 0;
	}
	return 1;
}

wse_status
wse_addr_normalize(const char *s, char *out, size_t size)
{
	size_t i, n;

	if (!wse_addr_valid(s))
		return wse_err(WSE_ERR_INVALID, "not a mailbox address: "
		    "\"%.80s\"", s ? s : "");
	if ((n = strlen(s)) >= size)
		return wse_err(WSE_ERR_TOO_LARGE, "address too long");
	for (i = 0; i <= n; i++)
		out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) :
		    s[i];
	return WSE_OK;
}

const char *
wse_addr_domain(const char *s)
{
	const char *at = strchr(s, '@');

	return at ? at + 1 : "";
}

wse_status
wse_msg_new(wse_msg **m_r)
{
	if ((*m_r = calloc(1, sizeof(**m_r))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate a message");
	return WSE_OK;
}

static void
ondemand_clear(wse_ondemand *o)
{
	free(o->upload);
	free(o->server);
	free(o->ref);
	free(o->name);
	free(o->type);
	memset(o, 0, sizeof(*o));
}

void
wse_msg_free(wse_msg **mp)
{
	wse_msg *m;
	size_t i;

	if (mp == NULL || (m = *mp) == NULL)
		return;
	free(m->from);
	for (i = 0; i < m->nto; i++)
		free(m->to[i]);
	free(m->to);
	for (i = 0; i < m->ncc; i++)
		free(m->cc[i]);
	free(m->cc);
	free(m->subject);
	free(m->date);
	free(m->text);
	for (i = 0; i < m->natt; i++) {
		free(m->att[i].name);
		free(m->att[i].type);
		wse_buf_free(&m->att[i].data);
	}
	free(m->att);
	for (i = 0; i < m->nod; i++)
		ondemand_clear(&m->od[i]);
	free(m->od);
	free(m);
	*mp = NULL;
}

static wse_status
set_str(char **dst, const char *value, size_t max, const char *what)
{
	char *copy;
	const unsigned char *p;

	if (value == NULL)
		return wse_err(WSE_ERR_INVALID, "no %s", what);
	if (strlen(value) > max)
		return wse_err(WSE_ERR_TOO_LARGE, "%s longer than %zu bytes",
		    what, max);
	for (p = (const unsigned char *)value; *p; p++)
		if ((*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r') ||
		    *p == 0x7f)
			return wse_err(WSE_ERR_INVALID,
			    "control character in %s", what);
	if ((copy = strdup(value)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	free(*dst);
	*dst = copy;
	return WSE_OK;
}

wse_status
wse_msg_set(wse_msg *m, const char *field, const char *value)
{
	char addr[WSE_ADDR_MAX + 1];
	wse_status st;

	if (strcmp(field, "from") == 0) {
		if ((st = wse_addr_normalize(value, addr, sizeof(addr))) !=
		    WSE_OK)
			return st;
		return set_str(&m->from, addr, WSE_ADDR_MAX, "From");
	}
	if (strcmp(field, "subject") == 0) {
		if (strchr(value, '\n') != NULL || strchr(value, '\r') != NULL)
			return wse_err(WSE_ERR_INVALID,
			    "line break in Subject");
		return set_str(&m->subject, value, WSE_MSG_SUBJECT_MAX,
		    "Subject");
	}
	if (strcmp(field, "date") == 0) {
		int64_t t;

		if ((st = wse_time_parse(value, &t)) != WSE_OK)
			return st;
		return set_str(&m->date, value, 40, "Date");
	}
	if (strcmp(field, "text") == 0)
		return set_str(&m->text, value, TEXT_MAX, "Text");
	return wse_err(WSE_ERR_INVALID, "unknown message field %s", field);
}

wse_status
wse_msg_add_rcpt(wse_msg *m, const char *s, int cc)
{
	char addr[WSE_ADDR_MAX + 1], **v, *copy;
	size_t *n = cc ? &m->ncc : &m->nto;
	wse_status st;

	if ((st = wse_addr_normalize(s, addr, sizeof(addr))) != WSE_OK)
		return st;
	if (m->nto + m->ncc >= WSE_MSG_MAX_RCPTS)
		return wse_err(WSE_ERR_TOO_LARGE, "more than %d recipients",
		    WSE_MSG_MAX_RCPTS);
	if ((v = reallocarray(cc ? m->cc : m->to, *n + 1, sizeof(*v))) ==
	    NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	if (cc)
		m->cc = v;
	else
		m->to = v;
	if ((copy = strdup(addr)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	v[(*n)++] = copy;
	return WSE_OK;
}

wse_status
wse_msg_add_attachment(wse_msg *m, const char *name, const char *type,
    const void *data, size_t len)
{
	wse_attachment *v, *a;
	uint8_t h[WSE_SHA256_LEN];
	wse_status st;

	if (m->natt >= WSE_MSG_MAX_ATTACHMENTS)
		return wse_err(WSE_ERR_TOO_LARGE, "more than %d attachments",
		    WSE_MSG_MAX_ATTACHMENTS);
	if (!wse_attach_name_ok(name))
		return wse_err(WSE_ERR_INVALID, "bad attachment name");
	if ((v = reallocarray(m->att, m->natt + 1, sizeof(*v))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	m->att = v;
	a = &m->att[m->natt];
	memset(a, 0, sizeof(*a));
	if ((st = set_str(&a->name, name, NAME_MAX_LEN, "attachment name")) !=
	    WSE_OK ||
	    (st = set_str(&a->type, type ? type : "application/octet-stream",
	    NAME_MAX_LEN, "attachment type")) != WSE_OK)
		goto fail;
	if ((a->data = wse_buf_new(len + 1)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto fail;
	}
	if ((st = wse_buf_put(a->data, data, len)) != WSE_OK ||
	    (st = wse_sha256(data, len, h)) != WSE_OK)
		goto fail;
	wse_hex(h, sizeof(h), a->sha256);
	a->size = len;
	m->natt++;
	return WSE_OK;
fail:
	free(a->name);
	free(a->type);
	wse_buf_free(&a->data);
	return st;
}

/* ---- on-demand attachments ---- */

static int
token_ok(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n] != '\0'; n++)
		if (!isalnum((unsigned char)s[n]) && s[n] != '_' && s[n] != '-')
			return 0;
	return n >= 16 && n <= WSE_ONDEMAND_REF_MAX;
}

int
wse_url_in_domain(const char *url, const char *domain)
{
	const char *h, *e;
	size_t hl, dl;

	if (url == NULL || domain == NULL || strncmp(url, "https://", 8) != 0)
		return 0;
	h = url + 8;
	e = h + strcspn(h, ":/?#@");
	if (*e == '@' || e == h)
		return 0;
	hl = (size_t)(e - h);
	dl = strlen(domain);
	if (dl == 0 || hl < dl)
		return 0;
	if (strncasecmp(e - dl, domain, dl) != 0)
		return 0;
	return hl == dl || e[-(ptrdiff_t)dl - 1] == '.';
}

static wse_status
ondemand_fill(wse_ondemand *o, const char *server, const char *ref,
    const char *name, const char *type, uint64_t size, const char *sha256)
{
	wse_status st;

	if (server == NULL || strncmp(server, "https://", 8) != 0 ||
	    strlen(server) > WSE_ONDEMAND_URL_MAX)
		return wse_err(WSE_ERR_INVALID, "on-demand server is not an "
		    "https URL");
	if (!token_ok(ref))
		return wse_err(WSE_ERR_INVALID, "bad on-demand reference");
	if (!wse_attach_name_ok(name))
		return wse_err(WSE_ERR_INVALID, "bad attachment name");
	if (!wse_hex_valid(sha256, 64))
		return wse_err(WSE_ERR_INVALID, "bad attachment SHA-256");
	ondemand_clear(o);
	if ((st = set_str(&o->server, server, WSE_ONDEMAND_URL_MAX,
	    "on-demand server")) != WSE_OK ||
	    (st = set_str(&o->ref, ref, WSE_ONDEMAND_REF_MAX,
	    "on-demand reference")) != WSE_OK ||
	    (st = set_str(&o->name, name, NAME_MAX_LEN, "attachment name")) !=
	    WSE_OK ||
	    (st = set_str(&o->type, type ? type : "application/octet-stream",
	    NAME_MAX_LEN, "attachment type")) != WSE_OK) {
		ondemand_clear(o);
		return st;
	}
	o->size = size;
	memcpy(o->sha256, sha256, 65);
	return WSE_OK;
}

static wse_status
ondemand_slot(wse_msg *m, wse_ondemand **o_r)
{
	wse_ondemand *v;

	if (m->nod >= WSE_MSG_MAX_ONDEMAND)
		return wse_err(WSE_ERR_TOO_LARGE, "more than %d on-demand "
		    "attachments", WSE_MSG_MAX_ONDEMAND);
	if ((v = reallocarray(m->od, m->nod + 1, sizeof(*v))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	m->od = v;
	memset(&v[m->nod], 0, sizeof(v[m->nod]));
	*o_r = &v[m->nod];
	return WSE_OK;
}

wse_status
wse_msg_add_upload(wse_msg *m, const char *upload)
{
	wse_ondemand *o = NULL;
	wse_status st;

	if (!token_ok(upload))
		return wse_err(WSE_ERR_INVALID, "bad upload handle");
	if ((st = ondemand_slot(m, &o)) != WSE_OK)
		return st;
	if ((o->upload = strdup(upload)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	m->nod++;
	return WSE_OK;
}

wse_status
wse_msg_add_ondemand(wse_msg *m, const char *server, const char *ref,
    const char *name, const char *type, uint64_t size, const char *sha256)
{
	wse_ondemand *o = NULL;
	wse_status st;

	if ((st = ondemand_slot(m, &o)) != WSE_OK ||
	    (st = ondemand_fill(o, server, ref, name, type, size, sha256)) !=
	    WSE_OK)
		return st;
	m->nod++;
	return WSE_OK;
}

wse_status
wse_msg_resolve_ondemand(wse_msg *m, size_t i, const char *server,
    const char *ref, const char *name, const char *type, uint64_t size,
    const char *sha256)
{
	wse_ondemand tmp;
	wse_status st;

	if (i >= m->nod || m->od[i].upload == NULL)
		return wse_err(WSE_ERR_INVALID, "no upload to resolve");
	memset(&tmp, 0, sizeof(tmp));
	if ((st = ondemand_fill(&tmp, server, ref, name, type, size,
	    sha256)) != WSE_OK)
		return st;
	ondemand_clear(&m->od[i]);
	m->od[i] = tmp;
	return WSE_OK;
}

size_t
wse_msg_unresolved(const wse_msg *m)
{
	size_t i, n = 0;

	for (i = 0; i < m->nod; i++)
		n += m->od[i].upload != NULL;
	return n;
}

static wse_status
parse_ondemand(wse_msg *m, const xmlNode *n)
{
	const char *upload = wse_xml_attr(n, NULL, "upload");
	const char *size = wse_xml_attr(n, NULL, "size");
	unsigned long long sz;
	char *end;

	if (wse_xml_first_elem(n) != NULL)
		return wse_err(WSE_ERR_INVALID, "OnDemand has content");
	if (upload != NULL) {
		if (wse_xml_attr(n, NULL, "ref") != NULL ||
		    wse_xml_attr(n, NULL, "server") != NULL)
			return wse_err(WSE_ERR_INVALID, "OnDemand is both an "
			    "upload and a reference");
		return wse_msg_add_upload(m, upload);
	}
	if (size == NULL || *size < '0' || *size > '9')
		return wse_err(WSE_ERR_INVALID, "bad on-demand size");
	errno = 0;
	sz = strtoull(size, &end, 10);
	if (*end != '\0' || errno != 0)
		return wse_err(WSE_ERR_INVALID, "bad on-demand size");
	return wse_msg_add_ondemand(m, wse_xml_attr(n, NULL, "server"),
	    wse_xml_attr(n, NULL, "ref"), wse_xml_attr(n, NULL, "name"),
	    wse_xml_attr(n, NULL, "type"), sz, wse_xml_attr(n, NULL,
	    "sha256"));
}

/* ---- parsing ---- */

static wse_status
parse_attachment(wse_msg *m, const xmlNode *n)
{
	const char *name = wse_xml_attr(n, NULL, "name");
	const char *type = wse_xml_attr(n, NULL, "type");
	const char *size = wse_xml_attr(n, NULL, "size");
	const char *sha = wse_xml_attr(n, NULL, "sha256");
	wse_buf *txt = NULL, *bin = NULL;
	wse_status st;
	char *end;
	unsigned long long sz;

	if (name == NULL || size == NULL || sha == NULL)
		return wse_err(WSE_ERR_INVALID,
		    "attachment lacks name, size or sha256");
	sz = strtoull(size, &end, 10);
	if (*size < '0' || *size > '9' || *end != '\0')
		return wse_err(WSE_ERR_INVALID, "bad attachment size");
	if ((txt = wse_buf_new(TEXT_MAX)) == NULL ||
	    (bin = wse_buf_new(TEXT_MAX)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto out;
	}
	if ((st = wse_xml_text(n, txt)) != WSE_OK ||
	    (st = wse_base64_decode(wse_buf_str(txt), wse_buf_len(txt),
	    bin)) != WSE_OK)
		goto out;
	if (wse_buf_len(bin) != sz) {
		st = wse_err(WSE_ERR_INVALID, "attachment %.80s: %zu bytes, "
		    "%llu announced", name, wse_buf_len(bin), sz);
		goto out;
	}
	if ((st = wse_msg_add_attachment(m, name, type, wse_buf_data(bin),
	    wse_buf_len(bin))) != WSE_OK)
		goto out;
	if (strcmp(m->att[m->natt - 1].sha256, sha) != 0) {
		st = wse_err(WSE_ERR_INVALID, "attachment %.80s: SHA-256 does "
		    "not match", name);
		goto out;
	}
out:
	wse_buf_free(&txt);
	wse_buf_free(&bin);
	return st;
}

wse_status
wse_msg_parse(const xmlNode *message, wse_msg **m_r)
{
	wse_msg *m = NULL;
	const xmlNode *n;
	char *s = NULL;
	wse_status st;

	*m_r = NULL;
	if (!wse_xml_is(message, WSE_NS_WSE, "Message"))
		return wse_err(WSE_ERR_INVALID, "no m:Message");
	if ((st = wse_msg_new(&m)) != WSE_OK)
		return st;
	for (n = wse_xml_first_elem(message); n; n = wse_xml_next_elem(n)) {
		const char *field = NULL;
		int rcpt = -1;

		if (n->ns == NULL || strcmp((const char *)n->ns->href,
		    WSE_NS_WSE) != 0) {
			st = wse_err(WSE_ERR_INVALID, "foreign element in "
			    "Message");
			goto out;
		}
		if (wse_xml_is(n, WSE_NS_WSE, "Attachment")) {
			if ((st = parse_attachment(m, n)) != WSE_OK)
				goto out;
			continue;
		}
		if (wse_xml_is(n, WSE_NS_WSE, "OnDemand")) {
			if ((st = parse_ondemand(m, n)) != WSE_OK)
				goto out;
			continue;
		}
		if (wse_xml_is(n, WSE_NS_WSE, "Instant")) {
			if (m->instant || n->children != NULL ||
			    n->properties != NULL) {
				st = wse_err(WSE_ERR_INVALID, "bad or repeated "
				    "Instant");
				goto out;
			}
			m->instant = 1;
			continue;
		}
		if (wse_xml_is(n, WSE_NS_WSE, "From"))
			field = m->from ? NULL : "from";
		else if (wse_xml_is(n, WSE_NS_WSE, "Subject"))
			field = m->subject ? NULL : "subject";
		else if (wse_xml_is(n, WSE_NS_WSE, "Date"))
			field = m->date ? NULL : "date";
		else if (wse_xml_is(n, WSE_NS_WSE, "Text"))
			field = m->text ? NULL : "text";
		else if (wse_xml_is(n, WSE_NS_WSE, "To"))
			rcpt = 0;
		else if (wse_xml_is(n, WSE_NS_WSE, "Cc"))
			rcpt = 1;
		else {
			st = wse_err(WSE_ERR_INVALID, "unknown Message field "
			    "%.40s", (const char *)n->name);
			goto out;
		}
		if (field == NULL && rcpt < 0) {
			st = wse_err(WSE_ERR_INVALID, "repeated Message field "
			    "%.40s", (const char *)n->name);
			goto out;
		}
		if ((st = wse_xml_text_dup(n, TEXT_MAX, &s)) != WSE_OK)
			goto out;
		st = rcpt >= 0 ? wse_msg_add_rcpt(m, s, rcpt) :
		    wse_msg_set(m, field, s);
		free(s);
		s = NULL;
		if (st != WSE_OK)
			goto out;
	}
	if (m->from == NULL || m->nto + m->ncc == 0) {
		st = wse_err(WSE_ERR_INVALID, "Message needs From and a "
		    "recipient");
		goto out;
	}
	*m_r = m;
	m = NULL;
	st = WSE_OK;
out:
	wse_msg_free(&m);
	return st;
}

/* ---- building ---- */

static wse_status
put_elem(wse_buf *b, const char *name, const char *text)
{
	wse_status st;

	if ((st = wse_buf_printf(b, "<m:%s>", name)) != WSE_OK ||
	    (st = wse_buf_put_xml_escaped(b, text, strlen(text))) != WSE_OK)
		return st;
	return wse_buf_printf(b, "</m:%s>", name);
}

wse_status
wse_msg_to_xml(const wse_msg *m, wse_buf *out)
{
	wse_buf *b64 = NULL;
	wse_status st;
	size_t i;

	if (m->from == NULL || m->nto + m->ncc == 0)
		return wse_err(WSE_ERR_INVALID, "message needs From and a "
		    "recipient");
	if ((st = wse_buf_puts(out, "<m:Message xmlns:m=\"" WSE_NS_WSE
	    "\">")) != WSE_OK ||
	    (st = put_elem(out, "From", m->from)) != WSE_OK)
		return st;
	for (i = 0; i < m->nto; i++)
		if ((st = put_elem(out, "To", m->to[i])) != WSE_OK)
			return st;
	for (i = 0; i < m->ncc; i++)
		if ((st = put_elem(out, "Cc", m->cc[i])) != WSE_OK)
			return st;
	if (m->instant && (st = wse_buf_puts(out, "<m:Instant/>")) != WSE_OK)
		return st;
	if ((m->subject && (st = put_elem(out, "Subject", m->subject)) !=
	    WSE_OK) ||
	    (m->date && (st = put_elem(out, "Date", m->date)) != WSE_OK) ||
	    (m->text && (st = put_elem(out, "Text", m->text)) != WSE_OK))
		return st;
	for (i = 0; i < m->natt; i++) {
		const wse_attachment *a = &m->att[i];

		if ((b64 = wse_buf_new(a->size * 4 / 3 + 8)) == NULL)
			return wse_err(WSE_ERR_NOMEM, "cannot allocate");
		if ((st = wse_base64_encode(wse_buf_data(a->data),
		    wse_buf_len(a->data), b64)) != WSE_OK ||
		    (st = wse_buf_puts(out, "<m:Attachment name=\"")) != WSE_OK ||
		    (st = wse_buf_put_xml_escaped(out, a->name,
		    strlen(a->name))) != WSE_OK ||
		    (st = wse_buf_puts(out, "\" type=\"")) != WSE_OK ||
		    (st = wse_buf_put_xml_escaped(out, a->type,
		    strlen(a->type))) != WSE_OK ||
		    (st = wse_buf_printf(out, "\" size=\"%llu\" sha256=\"%s\">",
		    (unsigned long long)a->size, a->sha256)) != WSE_OK ||
		    (st = wse_buf_put(out, wse_buf_data(b64),
		    wse_buf_len(b64))) != WSE_OK ||
		    (st = wse_buf_puts(out, "</m:Attachment>")) != WSE_OK) {
			wse_buf_free(&b64);
			return st;
		}
		wse_buf_free(&b64);
	}
	for (i = 0; i < m->nod; i++) {
		const wse_ondemand *o = &m->od[i];

		if (o->upload != NULL) {
			if ((st = wse_buf_printf(out, "<m:OnDemand upload=\"%s\""
			    "/>", o->upload)) != WSE_OK)
				return st;
			continue;
		}
		if ((st = wse_buf_puts(out, "<m:OnDemand server=\"")) !=
		    WSE_OK ||
		    (st = wse_buf_put_xml_escaped(out, o->server,
		    strlen(o->server))) != WSE_OK ||
		    (st = wse_buf_printf(out, "\" ref=\"%s\" name=\"",
		    o->ref)) != WSE_OK ||
		    (st = wse_buf_put_xml_escaped(out, o->name,
		    strlen(o->name))) != WSE_OK ||
		    (st = wse_buf_puts(out, "\" type=\"")) != WSE_OK ||
		    (st = wse_buf_put_xml_escaped(out, o->type,
		    strlen(o->type))) != WSE_OK ||
		    (st = wse_buf_printf(out, "\" size=\"%llu\" sha256=\"%s\"/>",
		    (unsigned long long)o->size, o->sha256)) != WSE_OK)
			return st;
	}
	return wse_buf_puts(out, "</m:Message>");
}
