/*
 * ops.c - the SOAP operations of wsemaild (docs/protocol.md).
 *
 * SECURITY: every request is untrusted until wse_wss_verify has proven it;
 * before that, only the Action (to choose a handler) and the claimed
 * origin domain (to tell the verifier whose signature to expect) are read,
 * and both are then proven by the verifier (the signed Action and Body are
 * the very nodes read here).  Client operations act only on the
 * authenticated user's own mailbox.  Deliver needs mutual TLS with a
 * certificate of the same domain as the signature and the sender.  Faults
 * carry a generic reason; the precise one goes to the log.  Plugins
 * (plugins.c) see a delivery only once it is verified and its recipients
 * checked, and serve their operations only after the password profile
 * verified the request, exactly like the built-in client operations.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "wsed.h"
#include "xml.h"

#define LIST_MAX 500

void wsed_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * One line on stderr, written with ONE write: stderr is unbuffered, so
 * each stdio call on it would be a system call of its own (three or
 * more a line, several lines a message).  A line too long for the
 * buffer still goes out whole, in pieces under the stream's lock.
 */
void
wsed_log(const char *fmt, ...)
{
	char when[21], line[4096];
	va_list ap;
	int n, m;

	wse_time_format((int64_t)time(NULL), when);
	n = snprintf(line, sizeof(line), "%s wsemaild: ", when);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (m >= 0 && (size_t)n + (size_t)m + 1 < sizeof(line)) {
		line[n + m] = '\n';
		(void)fwrite(line, 1, (size_t)n + (size_t)m + 1, stderr);
		return;
	}
	flockfile(stderr);
	fprintf(stderr, "%s wsemaild: ", when);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

static wse_status
lookup_user(void *arg, const char *user, uint8_t key_r[WSE_DERIVED_KEY_LEN])
{
	struct wsed *s = arg;
	wse_user_rec rec;
	wse_status st = wse_store_user_get(s->store, user, &rec, key_r);

	return st == WSE_OK || st == WSE_ERR_NOT_FOUND ? st : WSE_ERR_TEMPFAIL;
}

/* Text of a candidate element, bounded; NULL when absent or not text. */
static char *
text_or_null(const xmlNode *n, size_t max)
{
	char *s = NULL;

	if (n != NULL && wse_xml_text_dup(n, max, &s) != WSE_OK)
		wse_err_clear();
	return s;
}

static xmlNodePtr
child(const xmlNode *parent, const char *local)
{
	xmlNodePtr n;

	return wse_xml_only_child(parent, WSE_NS_WSE, local, &n) == WSE_OK ?
	    n : NULL;
}

static wse_status
child_int(const xmlNode *parent, const char *local, long long def,
    long long lo, long long hi, long long *out)
{
	size_t mark = wse_err_mark();
	xmlNodePtr n;
	char *s, *end;
	long long v;
	wse_status st;

	*out = def;
	st = wse_xml_only_child(parent, WSE_NS_WSE, local, &n);
	wse_err_truncate(mark);
	if (st == WSE_ERR_NOT_FOUND)
		return WSE_OK;		/* absent: the default */
	if (st != WSE_OK)
		return wse_err(WSE_ERR_INVALID, "bad %s (repeated)", local);
	if ((s = text_or_null(n, 32)) == NULL)
		return wse_err(WSE_ERR_INVALID, "bad %s", local);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s < '0' || *s > '9' || *end != '\0' || errno == ERANGE ||
	    v < lo || v > hi) {
		free(s);
		return wse_err(WSE_ERR_INVALID, "bad %s", local);
	}
	free(s);
	*out = v;
	return WSE_OK;
}

void
wsed_server_opts(struct wsed *s, const char *domain, wse_verify_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->profile = WSE_PROFILE_CERT;
	o->limits = &s->lim;
	o->replay = s->replay;
	o->now = s->now();
	o->trust = s->trust;
	o->purpose = WSE_PURPOSE_SERVICE;
	o->expected_domain = domain;
}

size_t
wsed_max_submit(const struct wsed *s)
{
	size_t cap = s->lim.max_message_bytes < 9000000 ?
	    s->lim.max_message_bytes : 9000000;

	return cap / 4 * 3 - 65536;
}

wse_status
wsed_sign_out(struct wsed *s, wse_envelope *env, wse_buf *out)
{
	wse_status st;

	if ((st = wse_wss_sign(env, s->signer, s->now(), s->reply_ttl)) !=
	    WSE_OK)
		return st;
	return wse_env_serialize(env, out);
}

/* ---- operations: each fills resp (a payload XML) or fails ---- */

static wse_status
op_auth_params(struct wsed *s, xmlNodePtr body, wse_buf *resp)
{
	xmlNodePtr req = child(body, "GetAuthParams"), u;
	char *user = NULL, norm[WSE_ADDR_MAX + 1];
	uint8_t salt[WSE_SALT_LEN];
	uint32_t iter = s->lim.pbkdf2_iterations;
	wse_user_rec rec;
	wse_buf *b64 = NULL;
	wse_status st;

	if (req == NULL || (u = child(req, "User")) == NULL ||
	    (user = text_or_null(u, WSE_ADDR_MAX + 1)) == NULL ||
	    wse_addr_normalize(user, norm, sizeof(norm)) != WSE_OK) {
		st = wse_err(WSE_ERR_INVALID, "GetAuthParams needs a User");
		goto out;
	}
	/* Same answer shape for every name: a real account's salt and cost,
	 * or a stable decoy derived from the server secret. */
	st = wse_store_user_get(s->store, norm, &rec, NULL);
	if (st == WSE_OK) {
		memcpy(salt, rec.salt, sizeof(salt));
		iter = rec.iterations;
	} else if (st == WSE_ERR_NOT_FOUND) {
		if ((st = wse_decoy_salt(s->secret, norm, salt)) != WSE_OK)
			goto out;
	} else {
		st = wse_err(WSE_ERR_TEMPFAIL, "user store unavailable");
		goto out;
	}
	if ((b64 = wse_buf_new(64)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto out;
	}
	if ((st = wse_base64_encode(salt, sizeof(salt), b64)) != WSE_OK ||
	    (st = wse_buf_printf(resp, "<m:GetAuthParamsResponse xmlns:m=\""
	    WSE_NS_WSE "\"><m:Kdf>PBKDF2-HMAC-SHA256</m:Kdf><m:Salt>%s"
	    "</m:Salt><m:Iterations>%u</m:Iterations>"
	    "</m:GetAuthParamsResponse>", wse_buf_str(b64), iter)) != WSE_OK)
		goto out;
out:
	free(user);
	wse_buf_free(&b64);
	return st;
}

/* A submission's recipients grouped by domain, each mailbox once, in
 * the order given (pointers into the message). */
struct submit_rows {
	const char *domains[WSE_MSG_MAX_RCPTS];
	const char *flat[WSE_MSG_MAX_RCPTS];
	const char *const *rows[WSE_MSG_MAX_RCPTS];
	size_t nrcpts[WSE_MSG_MAX_RCPTS];
	size_t nd;
};

static void
group_rcpts(const wse_msg *m, struct submit_rows *g)
{
	const char *uniq[WSE_MSG_MAX_RCPTS];
	size_t udom[WSE_MSG_MAX_RCPTS], next[WSE_MSG_MAX_RCPTS];
	size_t n = m->nto + m->ncc, nu = 0, i, k, d;

	g->nd = 0;
	for (i = 0; i < n && i < WSE_MSG_MAX_RCPTS; i++) {
		const char *a = i < m->nto ? m->to[i] : m->cc[i - m->nto];
		const char *dom = wse_addr_domain(a);
		int dup = 0;

		for (k = 0; k < nu && !dup; k++)
			dup = strcmp(uniq[k], a) == 0;
		if (dup)
			continue;
		for (d = 0; d < g->nd; d++)
			if (strcmp(g->domains[d], dom) == 0)
				break;
		if (d == g->nd) {
			g->domains[g->nd] = dom;
			g->nrcpts[g->nd++] = 0;
		}
		g->nrcpts[d]++;
		uniq[nu] = a;
		udom[nu++] = d;
	}
	for (d = 0, k = 0; d < g->nd; k += g->nrcpts[d], d++) {
		next[d] = k;
		g->rows[d] = &g->flat[k];
	}
	for (k = 0; k < nu; k++)
		g->flat[next[udom[k]]++] = uniq[k];
}

/* Everything of a submission up to its commit: its id, the plugins'
 * say, the payload (*payload_r, the caller frees it) and sub, which
 * points into m, g, id_r and the payload. */
static wse_status
submit_prepare(struct wsed *s, wse_msg *m, unsigned flags,
    const char *replay_id, int64_t replay_expires, char *id_r,
    struct submit_rows *g, wse_buf **ready, wse_buf **payload_r,
    wse_submission *sub)
{
	wse_status st;

	*payload_r = NULL;
	if (!(flags & WSED_SUBMIT_KEEP_ID)) {
		if ((st = wse_uuid_urn(id_r)) != WSE_OK)
			return st;
	} else if (!wse_uuid_urn_valid(id_r))
		return wse_err(WSE_ERR_INVALID, "bad message id");
	flags &= ~WSED_SUBMIT_KEEP_ID;
	/* Plugins resolve on-demand attachments (and may refuse). */
	if ((st = wsed_plugins_submit(s, m->from, id_r, m)) != WSE_OK)
		return st;
	group_rcpts(m, g);
	if (ready != NULL && *ready != NULL && !wsed_plugins_submit_hooked(s)) {
		/* No plugin could have changed m since it was serialised. */
		*payload_r = *ready;
		*ready = NULL;
	} else {
		if ((*payload_r = wse_buf_new(s->lim.max_message_bytes * 2)) ==
		    NULL)
			return wse_err(WSE_ERR_NOMEM, "cannot allocate");
		if ((st = wse_buf_reserve(*payload_r, 8192)) != WSE_OK ||
		    (st = wse_msg_to_xml(m, *payload_r)) != WSE_OK)
			return st;
	}
	memset(sub, 0, sizeof(*sub));
	sub->sender = m->from;
	sub->message_id = id_r;
	sub->replay_id = replay_id;
	sub->replay_expires = replay_expires;
	sub->flags = flags;
	sub->payload = wse_buf_data(*payload_r);
	sub->len = wse_buf_len(*payload_r);
	sub->ndomains = g->nd;
	sub->domains = g->domains;
	sub->rcpts = g->rows;
	sub->nrcpts = g->nrcpts;
	return WSE_OK;
}

/* wsed_submit, with m perhaps already serialised in *ready (may be
 * NULL; submit_prepare says when it is used). */
static wse_status
submit_now(struct wsed *s, wse_msg *m, unsigned flags,
    const char *replay_id, int64_t replay_expires, char *id_r,
    wse_buf **ready)
{
	struct submit_rows g;
	wse_submission sub;
	wse_buf *payload = NULL;
	wse_status st;

	if ((st = submit_prepare(s, m, flags, replay_id, replay_expires, id_r,
	    &g, ready, &payload, &sub)) == WSE_OK &&
	    (st = wsed_commit(s, &sub)) == WSE_OK)
		wsed_outbound_kick(s);
	wse_buf_free(&payload);
	return st;
}

wse_status
wsed_submit(struct wsed *s, wse_msg *m, unsigned flags,
    const char *replay_id, int64_t replay_expires, char *id_r)
{
	return submit_now(s, m, flags, replay_id, replay_expires, id_r, NULL);
}

/* The log line of a client's submission, once it is queued. */
static void
submit_log(const wse_msg *m, const char *id)
{
	wsed_log("submit %s from %s to %zu recipient(s)", id, m->from,
	    m->nto + m->ncc);
}

/* The body of the answer to a client's Submit. */
static wse_status
submit_answer_body(wse_buf *resp, const char *id)
{
	return wse_buf_printf(resp, "<m:SubmitResponse xmlns:m=\""
	    WSE_NS_WSE "\"><m:Id>%s</m:Id></m:SubmitResponse>", id);
}

/*
 * A client's Submit handed to the committer without a worker waiting
 * for it: the committer answers the request once the message is durable
 * (submit_done), and owns this until then.  The answer is signed by the
 * worker beforehand, in parallel with other workers and the commit, and
 * goes out only if the commit succeeds (a Fault is made instead if not).
 */
struct submit_async {
	wse_msg *m;
	struct submit_rows g;
	wse_submission sub;
	wse_buf *payload;
	wse_buf *answer;		/* the signed SubmitResponse */
	int answer_status;
	char id[WSE_UUID_URN_LEN + 1];
	char *replay_id;
	char *request_id;		/* the request's MessageID: RelatesTo */
	wse_http_req *req;
};

/* A place for one more held Submit (s->async_max), or 0. */
static int
async_take(struct wsed *s)
{
	if (atomic_fetch_add(&s->async_n, 1) < s->async_max)
		return 1;
	atomic_fetch_sub(&s->async_n, 1);
	return 0;
}

/* Frees a and gives its place back. */
static void
submit_async_free(struct wsed *s, struct submit_async *a)
{
	atomic_fetch_sub(&s->async_n, 1);
	wse_msg_free(&a->m);
	wse_buf_free(&a->payload);
	wse_buf_free(&a->answer);
	free(a->replay_id);
	free(a->request_id);
	free(a);
}

/* On the committer thread, after the commit (wsed_commit_fn). */
static void
submit_done(struct wsed *s, void *arg, wse_status st)
{
	struct submit_async *a = arg;
	int status = 500;

	if (st == WSE_OK) {
		wsed_outbound_kick(s);
		submit_log(a->m, a->id);
		status = a->answer_status;
	} else {
		/* Not queued: the prepared answer is dropped unsent. */
		wse_buf_reset(a->answer);
		wsed_answer(s, "Submit", a->request_id, st, NULL, a->answer,
		    &status);
	}
	wse_http_reply(a->req, status, "application/soap+xml; charset=utf-8",
	    wse_buf_data(a->answer), wse_buf_len(a->answer));
	submit_async_free(s, a);
}

/* Submit m (checked, owned by this from now on: *mp becomes NULL) for
 * the request req, answered by the committer.  WSE_OK: held.  The
 * caller took a place (async_take); this gives it back on failure. */
static wse_status
submit_held(struct wsed *s, const wse_verified *v, wse_msg **mp,
    wse_buf **xml, const char *request_id, wse_http_req *req)
{
	struct submit_async *a;
	wse_buf *resp = NULL;
	wse_status st;

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		atomic_fetch_sub(&s->async_n, 1);
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	}
	a->m = *mp;
	*mp = NULL;
	a->req = req;
	if ((a->replay_id = strdup(v->message_id_s)) == NULL ||
	    (request_id != NULL &&
	    (a->request_id = strdup(request_id)) == NULL) ||
	    (a->answer = wse_buf_new(s->lim.max_message_bytes * 4)) == NULL ||
	    (resp = wse_buf_new(1024)) == NULL ||
	    wse_buf_reserve(a->answer, 8192) != WSE_OK) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto fail;
	}
	if ((st = submit_prepare(s, a->m, 0, a->replay_id, v->replay_expires,
	    a->id, &a->g, xml, &a->payload, &a->sub)) != WSE_OK ||
	    (st = submit_answer_body(resp, a->id)) != WSE_OK)
		goto fail;
	wsed_answer(s, "Submit", a->request_id, WSE_OK, resp, a->answer,
	    &a->answer_status);
	if (a->answer_status != 200) {
		/* The answer could not be signed (logged): refuse now. */
		st = wse_err(WSE_ERR_INTERNAL, "cannot sign the answer");
		goto fail;
	}
	wse_buf_free(&resp);
	if ((st = wsed_commit_async(s, &a->sub, submit_done, a)) != WSE_OK)
		goto fail;
	return WSE_OK;
fail:
	wse_buf_free(&resp);
	submit_async_free(s, a);
	return st;
}

wse_status
wsed_instant_check(const wse_msg *m)
{
	if (!m->instant)
		return wse_err(WSE_ERR_INVALID, "not an instant message");
	if (m->nto != 1 || m->ncc != 0)
		return wse_err(WSE_ERR_INVALID, "an instant message has "
		    "exactly one recipient (To) and no Cc");
	if (m->natt != 0 || m->nod != 0)
		return wse_err(WSE_ERR_INVALID, "an instant message has no "
		    "attachments");
	if (m->subject != NULL && m->subject[0] != '\0')
		return wse_err(WSE_ERR_INVALID, "an instant message has no "
		    "subject");
	if (m->text != NULL && strlen(m->text) > WSED_INSTANT_TEXT_MAX)
		return wse_err(WSE_ERR_INVALID, "an instant message has at most "
		    "%d bytes of text", WSED_INSTANT_TEXT_MAX);
	return WSE_OK;
}

wse_status
wsed_instant_local(struct wsed *s, const wse_msg *m, const char *rcpt,
    const char *origin, const char *origin_id, const uint8_t *original,
    size_t len, const char *replay_id, int64_t replay_expires,
    int *stored_r, unsigned *sessions_r)
{
	const char *acc[1] = { rcpt };
	size_t na = 1;
	int refused = 0;
	wse_msg_meta meta;
	wse_status st;

	*stored_r = 0;
	*sessions_r = 0;
	if ((st = wsed_plugins_deliver_instant(s, m, origin, origin_id,
	    original, len, acc, &na, &refused, sessions_r)) != WSE_OK)
		return st;
	if (refused || na == 0) {
		/* Refused or pushed: nothing to store; the nonce is spent. */
		if (replay_id != NULL && (st = wse_replay_insert(s->replay,
		    replay_id, replay_expires, s->now())) != WSE_OK)
			return st;
		if (refused) {
			*sessions_r = 0;
			return wse_err(WSE_ERR_NOT_AUTHORIZED, "refused by the "
			    "recipient's policy");
		}
		return WSE_OK;
	}
	*sessions_r = 0;
	memset(&meta, 0, sizeof(meta));
	(void)snprintf(meta.from, sizeof(meta.from), "%s", m->from);
	meta.flags = WSE_MSG_INSTANT;
	st = wse_store_deliver(s->store, origin, origin_id, acc, 1, &meta,
	    original, len, replay_id, replay_expires, s->now());
	if (st == WSE_ERR_EXISTS) {
		wsed_log("instant %s from %s: duplicate, already stored",
		    origin_id, origin);
		st = WSE_OK;
	}
	if (st == WSE_OK)
		*stored_r = 1;
	return st;
}

/* A Submit of an instant message (docs/im.md): delivered now, never
 * queued; the client learns the outcome. */
static wse_status
op_submit_instant(struct wsed *s, const wse_verified *v, wse_msg *m,
    wse_buf *resp)
{
	char id[WSE_UUID_URN_LEN + 1];
	unsigned sessions = 0;
	int stored = 0;
	wse_status st;

	if ((st = wsed_instant_check(m)) != WSE_OK ||
	    (st = wse_uuid_urn(id)) != WSE_OK ||
	    (st = wsed_plugins_submit(s, m->from, id, m)) != WSE_OK)
		return st;
	/* Nothing is queued, so the nonce is spent here, once. */
	if ((st = wse_replay_insert(s->replay, v->message_id_s,
	    v->replay_expires, s->now())) != WSE_OK)
		return st;
	st = wsed_instant_send(s, m, id, &stored, &sessions);
	wsed_log("instant %s from %s to %s: %s", id, m->from, m->to[0],
	    st != WSE_OK ? wse_status_name(st) : stored ? "stored" :
	    "pushed");
	if (st != WSE_OK)
		return st;
	if ((st = wse_buf_printf(resp, "<m:SubmitResponse xmlns:m=\""
	    WSE_NS_WSE "\"><m:Id>%s</m:Id><m:Instant rcpt=\"", id)) != WSE_OK ||
	    (st = wse_buf_put_xml_escaped(resp, m->to[0], strlen(m->to[0]))) !=
	    WSE_OK)
		return st;
	return wse_buf_printf(resp, "\" result=\"%s\" sessions=\"%u\"/>"
	    "</m:SubmitResponse>", stored ? "stored" : "pushed",
	    stored ? 0 : sessions);
}

/* hc, request_id: a request of the transport (hc may be NULL), answered
 * by the committer once durable (hc->held set). */
static wse_status
op_submit(struct wsed *s, const wse_verified *v, wse_buf *resp,
    struct wsed_hold_ctx *hc, const char *request_id)
{
	xmlNodePtr req = child(v->body, "Submit"), mnode;
	wse_msg *m = NULL;
	char when[21], id[WSE_UUID_URN_LEN + 1];
	wse_status st;
	size_t len = 0, i;
	wse_buf *xml = NULL;

	if (req == NULL || (mnode = child(req, "Message")) == NULL)
		return wse_err(WSE_ERR_INVALID, "Submit needs a Message");
	if ((st = wse_msg_parse(mnode, &m)) != WSE_OK)
		return st;
	if (strcmp(m->from, v->user) != 0) {
		st = wse_err(WSE_ERR_NOT_AUTHORIZED, "%s may not send as %s",
		    v->user, m->from);
		goto out;
	}
	/* A client names its own finished uploads; only this server says
	 * where an on-demand attachment lives and what it is. */
	for (i = 0; i < m->nod; i++)
		if (m->od[i].upload == NULL) {
			st = wse_err(WSE_ERR_INVALID, "an on-demand attachment "
			    "in a Submit must name an upload");
			goto out;
		}
	wse_time_format(s->now(), when);
	if ((st = wse_msg_set(m, "date", when)) != WSE_OK)
		goto out;
	if (m->instant) {
		st = op_submit_instant(s, v, m, resp);
		goto out;
	}
	/*
	 * The message must stay readable: FetchMessage returns the stored
	 * Deliver envelope in base64 (4/3 larger) inside an envelope the
	 * client parses under the same limit, and libxml2 refuses single
	 * text nodes over 10,000,000 bytes.  Refuse now what could never be
	 * fetched, rather than accept and strand it.
	 */
	if ((xml = wse_buf_new(s->lim.max_message_bytes * 2)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto out;
	}
	if ((st = wse_buf_reserve(xml, 8192)) != WSE_OK ||
	    (st = wse_msg_to_xml(m, xml)) != WSE_OK)
		goto out;
	len = wse_buf_len(xml);
	if (len > wsed_max_submit(s)) {
		st = wse_err(WSE_ERR_TOO_LARGE, "message of %zu bytes exceeds "
		    "%zu", len, wsed_max_submit(s));
		goto out;
	}
	if (hc != NULL && hc->req != NULL && async_take(s)) {
		if ((st = submit_held(s, v, &m, &xml, request_id, hc->req)) ==
		    WSE_OK)
			hc->held = 1;
		goto out;
	}
	if ((st = submit_now(s, m, 0, v->message_id_s, v->replay_expires,
	    id, &xml)) != WSE_OK)
		goto out;
	submit_log(m, id);
	st = submit_answer_body(resp, id);
out:
	wse_buf_free(&xml);
	wse_msg_free(&m);
	return st;
}

struct list_ctx {
	wse_buf *out;
	wse_status st;
};

static wse_status
list_one(void *arg, const wse_msg_meta *meta)
{
	struct list_ctx *c = arg;
	char when[21];
	wse_status st;

	wse_time_format(meta->received, when);
	if ((st = wse_buf_printf(c->out, "<m:Header id=\"%lld\" unread=\"%s\" "
	    "flags=\"%u\"><m:From>", (long long)meta->id,
	    meta->unread ? "true" : "false", meta->flags)) != WSE_OK ||
	    (st = wse_buf_put_xml_escaped(c->out, meta->from,
	    strlen(meta->from))) != WSE_OK ||
	    (st = wse_buf_puts(c->out, "</m:From><m:Subject>")) != WSE_OK ||
	    (st = wse_buf_put_xml_escaped(c->out, meta->subject,
	    strlen(meta->subject))) != WSE_OK ||
	    (st = wse_buf_printf(c->out, "</m:Subject><m:Received>%s"
	    "</m:Received><m:Size>%llu</m:Size></m:Header>", when,
	    (unsigned long long)meta->size)) != WSE_OK)
		return st;
	return WSE_OK;
}

static wse_status
op_list(struct wsed *s, const wse_verified *v, wse_buf *resp)
{
	xmlNodePtr req = child(v->body, "ListHeaders");
	long long off, lim;
	uint64_t total, unread;
	struct list_ctx c = { resp, WSE_OK };
	wse_status st;

	if (req == NULL)
		return wse_err(WSE_ERR_INVALID, "no ListHeaders");
	if ((st = child_int(req, "Offset", 0, 0, 1LL << 40, &off)) !=
	    WSE_OK ||
	    (st = child_int(req, "Limit", 50, 1, LIST_MAX, &lim)) != WSE_OK ||
	    (st = wse_store_count(s->store, v->user, &total, &unread)) !=
	    WSE_OK ||
	    (st = wse_buf_printf(resp, "<m:ListHeadersResponse xmlns:m=\""
	    WSE_NS_WSE "\" total=\"%llu\" unread=\"%llu\">",
	    (unsigned long long)total, (unsigned long long)unread)) != WSE_OK ||
	    (st = wse_store_list(s->store, v->user, (size_t)off, (size_t)lim,
	    list_one, &c)) != WSE_OK)
		return st;
	return wse_buf_puts(resp, "</m:ListHeadersResponse>");
}

static wse_status
op_fetch(struct wsed *s, const wse_verified *v, wse_buf *resp)
{
	xmlNodePtr req = child(v->body, "FetchMessage");
	long long id;
	wse_msg_meta meta;
	wse_buf *env = NULL;
	char when[21];
	wse_status st;

	if (req == NULL || child(req, "Id") == NULL)
		return wse_err(WSE_ERR_INVALID, "FetchMessage needs an Id");
	if ((st = child_int(req, "Id", 0, 1, INT64_MAX, &id)) != WSE_OK)
		return st;
	if ((env = wse_buf_new(s->lim.max_message_bytes * 2)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	if ((st = wse_store_fetch(s->store, v->user, id, &meta, env)) !=
	    WSE_OK)
		goto out;
	wse_time_format(meta.received, when);
	if ((st = wse_buf_printf(resp, "<m:FetchMessageResponse xmlns:m=\""
	    WSE_NS_WSE "\"><m:Id>%lld</m:Id><m:Received>%s</m:Received>"
	    "<m:Original>", id, when)) != WSE_OK ||
	    (st = wse_base64_encode(wse_buf_data(env), wse_buf_len(env),
	    resp)) != WSE_OK ||
	    (st = wse_buf_puts(resp, "</m:Original></m:FetchMessageResponse>"))
	    != WSE_OK)
		goto out;
out:
	wse_buf_free(&env);
	return st;
}

static wse_status
op_delete_or_read(struct wsed *s, const wse_verified *v, int del,
    wse_buf *resp)
{
	xmlNodePtr req = child(v->body, del ? "DeleteMessage" : "MarkRead");
	long long id;
	int read = 1;
	wse_status st;

	if (req == NULL || child(req, "Id") == NULL)
		return wse_err(WSE_ERR_INVALID, "needs an Id");
	if ((st = child_int(req, "Id", 0, 1, INT64_MAX, &id)) != WSE_OK)
		return st;
	if (!del) {
		xmlNodePtr r = child(req, "Read");
		char *t = r ? text_or_null(r, 8) : NULL;

		if (r != NULL) {
			if (t == NULL || (strcmp(t, "true") != 0 &&
			    strcmp(t, "false") != 0)) {
				free(t);
				return wse_err(WSE_ERR_INVALID, "bad Read");
			}
			read = strcmp(t, "true") == 0;
		}
		free(t);
	}
	st = del ? wse_store_delete(s->store, v->user, id) :
	    wse_store_mark_read(s->store, v->user, id, read);
	if (st != WSE_OK)
		return st;
	return wse_buf_printf(resp, "<m:%sResponse xmlns:m=\"" WSE_NS_WSE
	    "\"/>", del ? "DeleteMessage" : "MarkRead");
}

/* One delivery being received: what deliver_check found in it. */
struct inbound {
	char *origin_id;
	wse_msg *m;
	char rcpt[WSE_MSG_MAX_RCPTS][WSE_ADDR_MAX + 1];
	int accepted[WSE_MSG_MAX_RCPTS];
	const char *acc[WSE_MSG_MAX_RCPTS];	/* accepted, then not taken */
	size_t nr, nacc, na;
	wse_msg_meta meta;
};

static void
inbound_clear(struct inbound *in)
{
	free(in->origin_id);
	wse_msg_free(&in->m);
	memset(in, 0, sizeof(*in));
}

/*
 * Check a Deliver request that is proven to come from origin: the
 * message, its sender's domain, and its recipients, split into accepted
 * (a user here) and rejected.  WSE_ERR_NO_SUCH_USER when none is a user.
 */
static wse_status
deliver_check(struct wsed *s, const xmlNode *req, const char *origin,
    struct inbound *in)
{
	xmlNodePtr n, mnode = child(req, "Message");
	char *t = NULL;
	wse_user_rec rec;
	wse_status st;
	size_t i;

	if (mnode == NULL || (n = child(req, "OriginId")) == NULL ||
	    (in->origin_id = text_or_null(n, WSE_STORE_NAME_MAX)) == NULL ||
	    !wse_uuid_urn_valid(in->origin_id)) {
		st = wse_err(WSE_ERR_INVALID, "Deliver needs OriginId and "
		    "Message");
		goto out;
	}
	if ((st = wse_msg_parse(mnode, &in->m)) != WSE_OK)
		goto out;
	if (strcmp(wse_addr_domain(in->m->from), origin) != 0) {
		st = wse_err(WSE_ERR_DOMAIN_MISMATCH, "From %s is not of %s",
		    in->m->from, origin);
		goto out;
	}
	/* On-demand attachments live at a server of the sending domain,
	 * under the reference its signature covers. */
	for (i = 0; i < in->m->nod; i++)
		if (in->m->od[i].upload != NULL ||
		    !wse_url_in_domain(in->m->od[i].server, origin)) {
			st = wse_err(WSE_ERR_INVALID, "on-demand attachment "
			    "not resolved, or not at a server of %s", origin);
			goto out;
		}
	for (n = wse_xml_first_elem(req); n; n = wse_xml_next_elem(n)) {
		if (!wse_xml_is(n, WSE_NS_WSE, "Rcpt"))
			continue;
		if (in->nr == WSE_MSG_MAX_RCPTS) {
			st = wse_err(WSE_ERR_TOO_LARGE, "too many Rcpt");
			goto out;
		}
		free(t);
		if ((t = text_or_null(n, WSE_ADDR_MAX + 1)) == NULL ||
		    (st = wse_addr_normalize(t, in->rcpt[in->nr],
		    sizeof(in->rcpt[in->nr]))) != WSE_OK) {
			st = wse_err(WSE_ERR_INVALID, "bad Rcpt");
			goto out;
		}
		if (strcmp(wse_addr_domain(in->rcpt[in->nr]), s->domain) != 0) {
			st = wse_err(WSE_ERR_NOT_AUTHORIZED, "Rcpt %s is not "
			    "of %s", in->rcpt[in->nr], s->domain);
			goto out;
		}
		st = wse_store_user_get(s->store, in->rcpt[in->nr], &rec, NULL);
		if (st != WSE_OK && st != WSE_ERR_NOT_FOUND) {
			st = wse_err(WSE_ERR_TEMPFAIL, "user store unavailable");
			goto out;
		}
		in->accepted[in->nr] = st == WSE_OK;
		if (in->accepted[in->nr])
			in->acc[in->na++] = in->rcpt[in->nr];
		in->nr++;
	}
	wse_err_clear();
	in->nacc = in->na;
	if (in->nr == 0)
		st = wse_err(WSE_ERR_INVALID, "Deliver without Rcpt");
	else if (in->na == 0)
		st = wse_err(WSE_ERR_NO_SUCH_USER, "no such recipient");
	else
		st = WSE_OK;
out:
	free(t);
	return st;
}

/* After deliver_check of a mail (not instant) message: the
 * message-dependent plugins may take it for some recipients; the rest
 * (in->acc[0..in->na-1], maybe none) is to be stored with in->meta. */
static wse_status
deliver_plugins(struct wsed *s, const char *origin, const uint8_t *original,
    size_t len, struct inbound *in)
{
	wse_status st;

	if ((st = wsed_plugins_deliver(s, in->m, origin, in->origin_id,
	    original, len, in->acc, &in->na)) != WSE_OK)
		return st;
	memset(&in->meta, 0, sizeof(in->meta));
	(void)snprintf(in->meta.from, sizeof(in->meta.from), "%s",
	    in->m->from);
	(void)snprintf(in->meta.subject, sizeof(in->meta.subject), "%s",
	    in->m->subject ? in->m->subject : "");
	if (strncmp(in->m->from, "mailer-daemon@", 14) == 0)
		in->meta.flags |= WSE_MSG_REPORT;
	if (in->m->nod > 0)
		in->meta.flags |= WSE_MSG_ONDEMAND;
	return WSE_OK;
}

/* The recipients' outcome (m:Accepted / m:Rejected each), logged. */
static wse_status
deliver_outcome(const struct inbound *in, const char *origin, size_t len,
    wse_buf *resp)
{
	wse_status st = WSE_OK;
	size_t i;

	wsed_log("deliver %s from %s (%s): %zu accepted (%zu taken by "
	    "plugins), %zu rejected; %zu bytes", in->origin_id, origin,
	    in->m->from, in->nacc, in->nacc - in->na, in->nr - in->nacc, len);
	for (i = 0; i < in->nr && st == WSE_OK; i++)
		st = wse_buf_printf(resp, "<m:%s>%s</m:%s>",
		    in->accepted[i] ? "Accepted" : "Rejected", in->rcpt[i],
		    in->accepted[i] ? "Accepted" : "Rejected");
	return st;
}

/*
 * Store a Deliver request that is proven to come from origin: check the
 * message, split recipients into accepted and rejected, let the
 * message-dependent plugins take it for some of them, store once for the
 * rest.
 * original is the request as received (kept for end-to-end checks).
 */
static wse_status
deliver_local(struct wsed *s, const xmlNode *req, const char *origin,
    const char *replay_id, int64_t replay_expires, const uint8_t *original,
    size_t len, wse_buf *resp)
{
	struct inbound *in;
	wse_status st;

	if ((in = calloc(1, sizeof(*in))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	if ((st = deliver_check(s, req, origin, in)) != WSE_OK)
		goto out;
	if (in->m->instant) {
		int stored = 0;
		unsigned sessions = 0;

		/* One recipient, delivered now: pushed, stored, or refused
		 * (a Fault: nothing stored). */
		if ((st = wsed_instant_check(in->m)) != WSE_OK)
			goto out;
		if (in->nr != 1 || strcmp(in->rcpt[0], in->m->to[0]) != 0) {
			st = wse_err(WSE_ERR_INVALID, "an instant Deliver names "
			    "its one recipient");
			goto out;
		}
		st = wsed_instant_local(s, in->m, in->rcpt[0], origin,
		    in->origin_id, original, len, replay_id, replay_expires,
		    &stored, &sessions);
		wsed_log("instant %s from %s (%s) for %s: %s", in->origin_id,
		    origin, in->m->from, in->rcpt[0], st != WSE_OK ?
		    wse_status_name(st) : stored ? "stored" : "pushed");
		if (st != WSE_OK)
			goto out;
		st = wse_buf_printf(resp, "<m:DeliverResponse xmlns:m=\""
		    WSE_NS_WSE "\"><m:Accepted result=\"%s\" sessions=\"%u\">"
		    "%s</m:Accepted></m:DeliverResponse>", stored ? "stored" :
		    "pushed", stored ? 0 : sessions, in->rcpt[0]);
		goto out;
	}
	if ((st = deliver_plugins(s, origin, original, len, in)) != WSE_OK)
		goto out;
	if (in->na == 0) {
		/* Nothing to store; the nonce is spent all the same. */
		if (replay_id != NULL && (st = wse_replay_insert(s->replay,
		    replay_id, replay_expires, s->now())) != WSE_OK)
			goto out;
	} else {
		st = wse_store_deliver(s->store, origin, in->origin_id,
		    in->acc, in->na, &in->meta, original, len, replay_id,
		    replay_expires, s->now());
		if (st == WSE_ERR_EXISTS) {
			wsed_log("deliver %s from %s: duplicate, already "
			    "stored", in->origin_id, origin);
			st = WSE_OK;
		}
		if (st != WSE_OK)
			goto out;
	}
	if ((st = wse_buf_puts(resp, "<m:DeliverResponse xmlns:m=\""
	    WSE_NS_WSE "\">")) != WSE_OK ||
	    (st = deliver_outcome(in, origin, len, resp)) != WSE_OK)
		goto out;
	st = wse_buf_puts(resp, "</m:DeliverResponse>");
out:
	inbound_clear(in);
	free(in);
	return st;
}

/* The TLS peer of a server-to-server call must be a server of origin. */
static wse_status
peer_of(struct wsed *s, const char *origin, wse_cert *const *peer,
    size_t npeer, int64_t now)
{
	char dom[256];
	wse_status st;

	if (npeer == 0)
		return wse_err(WSE_ERR_NOT_AUTHORIZED, "Deliver without a TLS "
		    "client certificate");
	if ((st = wse_trust_verify(s->trust, peer[0], peer + 1, npeer - 1,
	    now, WSE_PURPOSE_SERVICE)) != WSE_OK)
		return st;
	if ((st = wse_cert_domain(peer[0], dom, sizeof(dom))) != WSE_OK ||
	    strcasecmp(dom, origin) != 0)
		return wse_err(WSE_ERR_DOMAIN_MISMATCH, "TLS peer is not of %s",
		    origin);
	return WSE_OK;
}

/* Deliver from another server: verify the signature (step 1-5) for the
 * claimed origin, then the TLS peer, then store. */
static wse_status
op_deliver(struct wsed *s, wse_envelope *env, const uint8_t *body,
    size_t len, wse_cert *const *peer, size_t npeer, wse_verified *v,
    wse_buf *resp)
{
	xmlNodePtr req = child(wse_env_body(env), "Deliver"), on;
	char *origin = NULL;
	wse_verify_opts o;
	wse_status st;

	if (req == NULL || (on = child(req, "Origin")) == NULL ||
	    (origin = text_or_null(on, 256)) == NULL) {
		st = wse_err(WSE_ERR_INVALID, "Deliver needs an Origin");
		goto out;
	}
	wsed_server_opts(s, origin, &o);
	o.caller_inserts_nonce = 1;	/* stored with the message */
	if ((st = wse_wss_verify(env, &o, v)) != WSE_OK ||
	    (st = peer_of(s, origin, peer, npeer, o.now)) != WSE_OK)
		goto out;
	/* The verified Body is the node req came from. */
	if (req->parent != v->body) {
		st = wse_err(WSE_ERR_BAD_SIGNATURE, "Deliver is not signed");
		goto out;
	}
	st = deliver_local(s, req, origin, v->message_id_s, v->replay_expires,
	    body, len, resp);
out:
	free(origin);
	return st;
}

/* One item of a DeliverBatch. */
struct batch_item {
	wse_buf *raw;			/* the item's bytes, as signed */
	int bare;			/* a bare m:Deliver (else a signed
					 * envelope, its own original) */
	wse_buf *orig;			/* a bare item's batch original, made
					 * only for readers of it here (the
					 * store puts it together itself) */
	wse_envelope *env;		/* a signed envelope item */
	xmlDocPtr doc;			/* a bare m:Deliver item */
	struct inbound in;
	wse_status st;
	int to_store;
	int instant, stored;		/* an instant message: its outcome */
	unsigned sessions;
};

/* The original of a batch item, for an instant message or the plugins'
 * message hooks: a signed envelope's bytes, or a bare item's batch
 * original of the head (head_b64) and its position index. */
static wse_status
item_original(struct wsed *s, const char *head_b64, size_t head_len,
    size_t index, struct batch_item *bi, const wse_buf **orig_r)
{
	wse_status st;

	if (!bi->bare) {
		*orig_r = bi->raw;
		return WSE_OK;
	}
	if ((bi->orig = wse_buf_new(s->lim.max_message_bytes * 3)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	if ((st = wse_batch_original(head_b64, head_len, index,
	    wse_buf_data(bi->raw), wse_buf_len(bi->raw), bi->orig)) != WSE_OK)
		return st;
	*orig_r = bi->orig;
	return WSE_OK;
}

/*
 * The m:Deliver of a signed envelope item (to: the batch's signed To):
 * addressed like the batch, and signed, its signature being the sending
 * server's end-to-end one, kept for the recipient's client.  What makes
 * the bytes authentic here is the batch signature over their digest.
 */
static wse_status
item_envelope(struct wsed *s, const char *to, struct batch_item *bi,
    xmlNodePtr *req_r)
{
	char *t = NULL;
	wse_status st;

	if ((st = wse_env_parse(wse_buf_data(bi->raw), wse_buf_len(bi->raw),
	    &s->lim, &bi->env)) != WSE_OK)
		return st;
	t = text_or_null(wse_env_header_block(bi->env, WSE_NS_WSA, "Action"),
	    256);
	if (t == NULL || strcmp(t, WSED_ACTION("Deliver")) != 0) {
		st = wse_err(WSE_ERR_INVALID, "batch item is not a Deliver");
		goto out;
	}
	free(t);
	t = text_or_null(wse_env_header_block(bi->env, WSE_NS_WSA, "To"),
	    2048);
	if (t == NULL || to == NULL || strcmp(t, to) != 0) {
		st = wse_err(WSE_ERR_INVALID, "batch item addressed elsewhere");
		goto out;
	}
	if (wse_env_header_block(bi->env, WSE_NS_WSSE, "Security") == NULL) {
		st = wse_err(WSE_ERR_BAD_SIGNATURE, "batch item not signed");
		goto out;
	}
	*req_r = child(wse_env_body(bi->env), "Deliver");
	st = WSE_OK;
out:
	free(t);
	return st;
}

/*
 * One item of a batch proven to come from origin (its digest checked
 * against the signed ones already): a bare m:Deliver, whose original is
 * the batch original of the head (head_b64) and the item at position
 * index, or a complete signed Deliver envelope, its own original.  Its
 * message is checked exactly as a lone Deliver's.
 */
static wse_status
batch_item_check(struct wsed *s, const char *origin, const char *to,
    const char *head_b64, size_t head_len, size_t index,
    struct batch_item *bi)
{
	xmlNodePtr req = NULL, on, root;
	const wse_buf *orig = NULL;
	char *t = NULL;
	wse_status st;

	if ((st = wse_xml_parse(wse_buf_data(bi->raw), wse_buf_len(bi->raw),
	    &s->lim, &bi->doc)) != WSE_OK)
		goto out;
	root = xmlDocGetRootElement(bi->doc);
	if (root != NULL && wse_xml_is(root, WSE_NS_SOAP, "Envelope")) {
		xmlFreeDoc(bi->doc);
		bi->doc = NULL;
		if ((st = item_envelope(s, to, bi, &req)) != WSE_OK)
			goto out;
	} else if (root != NULL && wse_xml_is(root, WSE_NS_WSE, "Deliver")) {
		req = root;
		bi->bare = 1;
	}
	if (req == NULL) {
		st = wse_err(WSE_ERR_INVALID, "batch item is not a Deliver");
		goto out;
	}
	if ((on = child(req, "Origin")) == NULL ||
	    (t = text_or_null(on, 256)) == NULL || strcasecmp(t, origin) != 0) {
		st = wse_err(WSE_ERR_DOMAIN_MISMATCH, "batch item not from %s",
		    origin);
		goto out;
	}
	if ((st = deliver_check(s, req, origin, &bi->in)) != WSE_OK)
		goto out;
	if (bi->in.m->instant) {
		/* Pushed, stored or refused now, as a lone Deliver would be
		 * (its nonce is the batch's). */
		bi->instant = 1;
		if ((st = wsed_instant_check(bi->in.m)) != WSE_OK)
			goto out;
		if (bi->in.nr != 1 ||
		    strcmp(bi->in.rcpt[0], bi->in.m->to[0]) != 0) {
			st = wse_err(WSE_ERR_INVALID, "an instant Deliver names "
			    "its one recipient");
			goto out;
		}
		if ((st = item_original(s, head_b64, head_len, index, bi,
		    &orig)) != WSE_OK)
			goto out;
		st = wsed_instant_local(s, bi->in.m, bi->in.rcpt[0], origin,
		    bi->in.origin_id, wse_buf_data(orig), wse_buf_len(orig),
		    NULL, 0, &bi->stored, &bi->sessions);
		wsed_log("instant %s from %s (%s) for %s: %s",
		    bi->in.origin_id, origin, bi->in.m->from, bi->in.rcpt[0],
		    st != WSE_OK ? wse_status_name(st) : bi->stored ?
		    "stored" : "pushed");
		goto out;
	}
	/* Only a message hook reads the original of a mail item. */
	if (wsed_plugins_message_hooked(s) && (st = item_original(s,
	    head_b64, head_len, index, bi, &orig)) != WSE_OK)
		goto out;
	st = deliver_plugins(s, origin, orig != NULL ? wse_buf_data(orig) :
	    NULL, orig != NULL ? wse_buf_len(orig) : 0, &bi->in);
out:
	free(t);
	return st;
}

/*
 * DeliverBatch: several messages of one origin in one call, proven by one
 * signature over their digests (lib/batch.h; checks as for Deliver); mail
 * stored in one transaction, instant messages pushed (or stored, or
 * refused) each at once.  The answer has one m:Item per request item, in
 * order: its recipients' outcome, or m:Refused with the Fault subcode of
 * that item alone (BadSignature: its bytes are not the signed ones).
 */
static wse_status
op_deliver_batch(struct wsed *s, wse_envelope *env, wse_cert *const *peer,
    size_t npeer, wse_verified *v, wse_buf *resp)
{
	xmlNodePtr req = child(wse_env_body(env), "DeliverBatch"), on;
	struct batch_item *bi = NULL;
	wse_delivery *d = NULL;
	wse_status *dst = NULL, st;
	wse_buf **raw = NULL, *head = NULL;
	uint8_t *digests = NULL;
	int *ok = NULL;
	size_t ni = 0, nd = 0, i, k;
	char *origin = NULL, errs[512];
	wse_verify_opts o;

	if (req == NULL || (on = child(req, "Origin")) == NULL ||
	    (origin = text_or_null(on, 256)) == NULL) {
		st = wse_err(WSE_ERR_INVALID, "DeliverBatch needs an Origin");
		goto out;
	}
	wsed_server_opts(s, origin, &o);
	o.caller_inserts_nonce = 1;	/* once the TLS peer is checked too */
	if ((st = wse_wss_verify(env, &o, v)) != WSE_OK ||
	    (st = peer_of(s, origin, peer, npeer, o.now)) != WSE_OK)
		goto out;
	if (req->parent != v->body) {
		st = wse_err(WSE_ERR_BAD_SIGNATURE, "DeliverBatch is not "
		    "signed");
		goto out;
	}
	/* The items are de-duplicated by origin id when stored; the batch's
	 * own nonce is spent now, whatever becomes of them. */
	if ((st = wse_replay_insert(s->replay, v->message_id_s,
	    v->replay_expires, s->now())) != WSE_OK)
		goto out;
	if ((st = wse_batch_digests(req, WSED_BATCH_MAX, &digests, &ni)) !=
	    WSE_OK)
		goto out;
	if ((bi = calloc(ni, sizeof(*bi))) == NULL ||
	    (d = calloc(ni, sizeof(*d))) == NULL ||
	    (dst = calloc(ni, sizeof(*dst))) == NULL ||
	    (raw = calloc(ni, sizeof(*raw))) == NULL ||
	    (ok = calloc(ni, sizeof(*ok))) == NULL ||
	    (head = wse_buf_new(s->lim.max_message_bytes * 2)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto out;
	}
	if ((st = wse_batch_items(env, digests, ni, &s->lim, raw, ok)) !=
	    WSE_OK)
		goto out;
	for (i = 0; i < ni; i++) {
		bi[i].raw = raw[i];
		raw[i] = NULL;
	}
	/* The signed request without its items: what each bare item's
	 * original carries for the recipient's client. */
	if ((st = wse_batch_head_base64(env, head)) != WSE_OK)
		goto out;
	for (i = 0; i < ni; i++) {
		if (!ok[i])
			bi[i].st = wse_err(WSE_ERR_BAD_SIGNATURE, "batch item "
			    "%zu is not the one signed", i);
		else
			bi[i].st = batch_item_check(s, origin, v->to_s,
			    wse_buf_str(head), wse_buf_len(head), i, &bi[i]);
		if (bi[i].st == WSE_OK && !bi[i].instant && bi[i].in.na > 0) {
			d[nd].origin_domain = origin;
			d[nd].origin_id = bi[i].in.origin_id;
			d[nd].mailboxes = bi[i].in.acc;
			d[nd].n = bi[i].in.na;
			d[nd].meta = &bi[i].in.meta;
			/* The store keeps a bare item with the batch's head,
			 * once for the batch. */
			d[nd].envelope = wse_buf_data(bi[i].raw);
			d[nd].len = wse_buf_len(bi[i].raw);
			if (bi[i].bare) {
				d[nd].head_b64 = wse_buf_str(head);
				d[nd].head_len = wse_buf_len(head);
				d[nd].head_index = i;
			}
			bi[i].to_store = 1;
			nd++;
		} else if (bi[i].st != WSE_OK) {
			wsed_log("deliver batch item %zu from %s refused: %s: "
			    "%s", i, origin, wse_status_name(bi[i].st),
			    wse_err_format(errs, sizeof(errs)));
			wse_err_clear();
		}
	}
	if ((st = wse_store_deliver_many(s->store, d, nd, s->now(), dst)) !=
	    WSE_OK)
		goto out;
	for (i = 0, k = 0; i < ni; i++) {
		if (!bi[i].to_store)
			continue;
		if (dst[k] == WSE_ERR_EXISTS)
			wsed_log("deliver %s from %s: duplicate, already "
			    "stored", bi[i].in.origin_id, origin);
		else if (dst[k] != WSE_OK)
			bi[i].st = dst[k];
		k++;
	}
	if ((st = wse_buf_puts(resp, "<m:DeliverBatchResponse xmlns:m=\""
	    WSE_NS_WSE "\">")) != WSE_OK)
		goto out;
	for (i = 0; i < ni && st == WSE_OK; i++) {
		if (bi[i].st != WSE_OK) {
			st = wse_buf_printf(resp, "<m:Item><m:Refused code=\""
			    "%s\"/></m:Item>", wse_fault_subcode(bi[i].st));
			continue;
		}
		if (bi[i].instant) {
			st = wse_buf_printf(resp, "<m:Item><m:Accepted result="
			    "\"%s\" sessions=\"%u\">%s</m:Accepted></m:Item>",
			    bi[i].stored ? "stored" : "pushed", bi[i].stored ?
			    0 : bi[i].sessions, bi[i].in.rcpt[0]);
			continue;
		}
		if ((st = wse_buf_puts(resp, "<m:Item>")) == WSE_OK &&
		    (st = deliver_outcome(&bi[i].in, origin,
		    wse_buf_len(bi[i].raw), resp)) == WSE_OK)
			st = wse_buf_puts(resp, "</m:Item>");
	}
	if (st == WSE_OK)
		st = wse_buf_puts(resp, "</m:DeliverBatchResponse>");
out:
	for (i = 0; bi != NULL && i < ni; i++) {
		inbound_clear(&bi[i].in);
		wse_env_free(&bi[i].env);
		xmlFreeDoc(bi[i].doc);
		wse_buf_free(&bi[i].raw);
		wse_buf_free(&bi[i].orig);
	}
	for (i = 0; raw != NULL && i < ni; i++)
		wse_buf_free(&raw[i]);
	free(raw);
	free(ok);
	free(digests);
	wse_buf_free(&head);
	free(bi);
	free(d);
	free(dst);
	free(origin);
	return st;
}

/* Every built-in operation (the dispatch below). */
const char *const wsed_builtin_ops[] = {
	"GetAuthParams", "Submit", "Deliver", "DeliverBatch", "ListHeaders",
	"FetchMessage", "DeleteMessage", "MarkRead", NULL,
};

void
wsed_handle(struct wsed *s, const uint8_t *body, size_t len,
    wse_cert *const *peer, size_t npeer, wse_buf *out, int *http_status_r)
{
	wsed_handle_stream(s, body, len, peer, npeer, NULL, out,
	    http_status_r, NULL);
}

/* A token operation's refusals that must look alike to the caller
 * (docs/protocol.md: nothing leaks whether an attachment exists). */
static wse_status
token_refusal(wse_status st)
{
	switch (st) {
	case WSE_ERR_CERT_EXPIRED:
	case WSE_ERR_CERT_NOT_YET_VALID:
	case WSE_ERR_UNTRUSTED:
	case WSE_ERR_REVOKED:
	case WSE_ERR_DOMAIN_MISMATCH:
	case WSE_ERR_NOT_FOUND:
		return WSE_ERR_NOT_AUTHORIZED;
	default:
		return st;
	}
}

/* The user a password-profile request claims (not yet verified: only for
 * the guard), or NULL. */
static char *
claimed_user(wse_envelope *env)
{
	xmlNodePtr sec = wse_env_header_block(env, WSE_NS_WSSE, "Security"),
	    n, u;

	for (n = sec ? wse_xml_first_elem(sec) : NULL; n;
	    n = wse_xml_next_elem(n)) {
		if (!wse_xml_is(n, WSE_NS_WSSE, "UsernameToken"))
			continue;
		for (u = wse_xml_first_elem(n); u; u = wse_xml_next_elem(u))
			if (wse_xml_is(u, WSE_NS_WSSE, "Username"))
				return text_or_null(u, 255);
	}
	return NULL;
}

void
wsed_answer(struct wsed *s, const char *op, const char *msgid, wse_status st,
    const wse_buf *payload, wse_buf *out, int *http_status_r)
{
	wse_envelope *reply = NULL;
	char raction[300], errs[1024];

	*http_status_r = 500;
	if (st != WSE_OK)
		goto fault;
	(void)snprintf(raction, sizeof(raction), WSE_ACTION_PREFIX
	    "%.200sResponse", op);
	if ((st = wse_env_new(WSED_REPLY_TO, raction, &reply)) != WSE_OK ||
	    (msgid && (st = wse_env_set_relates_to(reply, msgid)) != WSE_OK) ||
	    (st = wse_env_add_body_xml(reply, wse_buf_str(payload),
	    wse_buf_len(payload), &s->lim)) != WSE_OK ||
	    (st = wsed_sign_out(s, reply, out)) != WSE_OK)
		goto fault;
	*http_status_r = 200;
	wse_env_free(&reply);
	return;
fault:
	wsed_log("refused %s: %s: %s", op, wse_status_name(st),
	    wse_err_format(errs, sizeof(errs)));
	wse_env_free(&reply);
	wse_buf_reset(out);
	if (wse_fault_new(st, WSED_REPLY_TO, msgid && strlen(msgid) < 200 ?
	    msgid : NULL, &reply) != WSE_OK ||
	    wsed_sign_out(s, reply, out) != WSE_OK)
		wse_buf_reset(out);
	wse_env_free(&reply);
}

void
wsed_handle_stream(struct wsed *s, const uint8_t *body, size_t len,
    wse_cert *const *peer, size_t npeer, const char *peer_addr, wse_buf *out,
    int *http_status_r, struct wse_plugin_stream *stream)
{
	wsed_handle_held(s, body, len, peer, npeer, peer_addr, out,
	    http_status_r, stream, NULL);
}

void
wsed_handle_held(struct wsed *s, const uint8_t *body, size_t len,
    wse_cert *const *peer, size_t npeer, const char *peer_addr, wse_buf *out,
    int *http_status_r, struct wse_plugin_stream *stream,
    struct wsed_hold_ctx *hc)
{
	unsigned pflags = 0;
	char *claimed = NULL;
	wse_envelope *env = NULL, *reply = NULL;
	wse_verified v;
	wse_verify_opts o;
	wse_buf *resp = NULL;
	char *action = NULL, *msgid = NULL, raction[300], errs[1024];
	const char *op;
	wse_status st;

	memset(&v, 0, sizeof(v));
	*http_status_r = 500;
	if (stream != NULL) {
		memset(stream, 0, sizeof(*stream));
		stream->fd = -1;
	}
	wse_err_clear();
	if ((resp = wse_buf_new(s->lim.max_message_bytes * 3)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto fault;
	}
	if ((st = wse_env_parse(body, len, &s->lim, &env)) != WSE_OK)
		goto fault;
	msgid = text_or_null(wse_env_header_block(env, WSE_NS_WSA,
	    "MessageID"), 256);
	action = text_or_null(wse_env_header_block(env, WSE_NS_WSA, "Action"),
	    256);
	if (action == NULL || strncmp(action, WSE_ACTION_PREFIX,
	    strlen(WSE_ACTION_PREFIX)) != 0) {
		st = wse_err(WSE_ERR_UNSUPPORTED, "unknown Action");
		goto fault;
	}
	op = action + strlen(WSE_ACTION_PREFIX);
	/* The signature covers a fixed set of header blocks (lib/wss.h):
	 * an m:Instant block there could never be signed (docs/im.md: the
	 * mark is a field of the signed message). */
	if (wse_env_header_block(env, WSE_NS_WSE, "Instant") != NULL) {
		st = wse_err(WSE_ERR_BAD_SIGNATURE, "the m:Instant header is "
		    "not signed");
		goto fault;
	}

	if (strcmp(op, "GetAuthParams") == 0)
		st = op_auth_params(s, wse_env_body(env), resp);
	else if (strcmp(op, "Deliver") == 0)
		st = op_deliver(s, env, body, len, peer, npeer, &v, resp);
	else if (strcmp(op, "DeliverBatch") == 0)
		st = op_deliver_batch(s, env, peer, npeer, &v, resp);
	else if (wsed_plugins_has_op(s, op) && ((pflags =
	    wsed_plugins_op_flags(s, op)) & WSE_PLUGIN_OP_TOKEN)) {
		/* A federated token of any domain under our root (paper
		 * Msg 8): certificate profile, token purpose. */
		memset(&o, 0, sizeof(o));
		o.profile = WSE_PROFILE_CERT;
		o.limits = &s->lim;
		o.replay = s->replay;
		o.now = s->now();
		o.trust = s->trust;
		o.purpose = WSE_PURPOSE_TOKEN;
		o.expected_domain = NULL;	/* the token's own */
		o.expected_to = s->url;
		if ((st = wse_wss_verify(env, &o, &v)) != WSE_OK) {
			wsed_log("refused %s: token: %s: %s", op,
			    wse_status_name(st), wse_err_format(errs,
			    sizeof(errs)));
			st = token_refusal(st);
			wse_err_clear();
			(void)wse_err(st, "token refused");
			goto fault;
		}
		st = wsed_plugins_call_held(s, op, &v, body, len, resp, stream,
		    hc);
		if (st == WSE_OK && hc != NULL && hc->held) {
			*http_status_r = 0;	/* answered later */
			goto done;
		}
		if (st != WSE_OK) {
			st = token_refusal(st);
		} else if (stream != NULL && stream->fd >= 0) {
			wsed_log("%s by %s: %llu bytes from %llu", op,
			    v.signer_mailbox,
			    (unsigned long long)stream->length,
			    (unsigned long long)stream->offset);
			*http_status_r = 200;
			goto done;
		}
	} else if (strcmp(op, "Submit") == 0 || strcmp(op, "ListHeaders") == 0 ||
	    strcmp(op, "FetchMessage") == 0 ||
	    strcmp(op, "DeleteMessage") == 0 || strcmp(op, "MarkRead") == 0 ||
	    wsed_plugins_has_op(s, op)) {
		memset(&o, 0, sizeof(o));
		o.profile = WSE_PROFILE_PASSWORD;
		o.limits = &s->lim;
		o.replay = s->replay;
		o.now = s->now();
		o.lookup = lookup_user;
		o.lookup_arg = s;
		o.expected_to = s->url;
		/* Submit stores the nonce with the queued message. */
		o.caller_inserts_nonce = strcmp(op, "Submit") == 0;
		/* Guessing is slowed down before any cryptography. */
		claimed = claimed_user(env);
		if ((st = wsed_guard_check(s->guard, claimed, peer_addr,
		    o.now)) != WSE_OK)
			goto fault;
		if ((st = wse_wss_verify(env, &o, &v)) != WSE_OK) {
			if (st == WSE_ERR_NOT_AUTHORIZED)
				wsed_guard_fail(s->guard, claimed, peer_addr,
				    o.now);
			goto fault;
		}
		wsed_guard_ok(s->guard, v.user, peer_addr, o.now);
		if (strcmp(op, "Submit") == 0)
			st = op_submit(s, &v, resp, hc, msgid);
		else if (strcmp(op, "ListHeaders") == 0)
			st = op_list(s, &v, resp);
		else if (strcmp(op, "FetchMessage") == 0)
			st = op_fetch(s, &v, resp);
		else if (strcmp(op, "DeleteMessage") == 0 ||
		    strcmp(op, "MarkRead") == 0)
			st = op_delete_or_read(s, &v,
			    strcmp(op, "DeleteMessage") == 0, resp);
		else
			st = wsed_plugins_call_held(s, op, &v, body, len, resp,
			    (pflags & WSE_PLUGIN_OP_STREAM) ? stream : NULL,
			    hc);
		if (st == WSE_OK && hc != NULL && hc->held) {
			*http_status_r = 0;	/* answered later */
			goto done;
		}
		if (st == WSE_OK && stream != NULL && stream->fd >= 0) {
			*http_status_r = 200;
			goto done;
		}
	} else
		st = wse_err(WSE_ERR_UNSUPPORTED, "unknown operation %.64s",
		    op);
	if (st != WSE_OK)
		goto fault;
	(void)snprintf(raction, sizeof(raction), "%sResponse", action);
	if ((st = wse_env_new(WSED_REPLY_TO, raction, &reply)) != WSE_OK ||
	    (msgid && (st = wse_env_set_relates_to(reply, msgid)) != WSE_OK) ||
	    (st = wse_env_add_body_xml(reply, wse_buf_str(resp),
	    wse_buf_len(resp), &s->lim)) != WSE_OK ||
	    (st = wsed_sign_out(s, reply, out)) != WSE_OK)
		goto fault;
	*http_status_r = 200;
	goto done;
fault:
	wsed_log("refused %s: %s: %s", action ? action : "(no action)",
	    wse_status_name(st), wse_err_format(errs, sizeof(errs)));
	wse_env_free(&reply);
	wse_buf_reset(out);
	if (wse_fault_new(st, WSED_REPLY_TO, msgid && strlen(msgid) < 200 ?
	    msgid : NULL, &reply) != WSE_OK ||
	    wsed_sign_out(s, reply, out) != WSE_OK)
		wse_buf_reset(out);
	*http_status_r = 500;
done:
	wse_verified_clear(&v);
	wse_env_free(&env);
	wse_env_free(&reply);
	wse_buf_free(&resp);
	free(action);
	free(msgid);
	free(claimed);
}
