/*
 * outbound.c - the delivery worker: takes due queue items, signs a Deliver
 * call for each recipient domain, sends it to that domain's server (static
 * route or DNS SRV, next target on failure) over mutual TLS, checks the
 * signed answer, and then removes, defers (exponential backoff) or bounces
 * the item.  Local recipients take the same path without the network, so
 * every stored message carries its server's signature.  Several due items
 * for one domain go in one DeliverBatch, unless its server refused one
 * lately (remembered for WSED_NOBATCH_SECONDS).
 *
 * SECURITY: answers are verified like any message (certificate profile,
 * the recipient domain's service certificate); an unverifiable answer is a
 * temporary failure, never a success.  A non-delivery report is never
 * itself reported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#include "batch.h"
#include "wsed.h"
#include "xml.h"

void wsed_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define TAKE_MAX WSED_BATCH_MAX
/* Added to the nice value of the delivery threads. */
#define WSED_DELIVER_NICE 5

struct job {
	wse_queue_item item;
	char **rcpts;
	size_t nrcpts;
	wse_buf *payload;
};

static void
job_clear(struct job *j)
{
	size_t i;

	for (i = 0; i < j->nrcpts; i++)
		free(j->rcpts[i]);
	free(j->rcpts);
	wse_buf_free(&j->payload);
	memset(j, 0, sizeof(*j));
}

struct take_ctx {
	struct job jobs[TAKE_MAX];
	size_t n;
};

static wse_status
take_one(void *arg, const wse_queue_item *item, const char *const *rcpts,
    size_t nrcpts, const void *payload, size_t len)
{
	struct take_ctx *c = arg;
	struct job *j;
	size_t i;

	if (c->n == TAKE_MAX)
		return WSE_OK;
	j = &c->jobs[c->n];
	memset(j, 0, sizeof(*j));
	j->item = *item;
	if ((j->rcpts = calloc(nrcpts ? nrcpts : 1, sizeof(char *))) == NULL ||
	    (j->payload = wse_buf_new(len + 1)) == NULL ||
	    wse_buf_put(j->payload, payload, len) != WSE_OK)
		goto nomem;
	for (i = 0; i < nrcpts; i++) {
		if ((j->rcpts[i] = strdup(rcpts[i])) == NULL)
			goto nomem;
		j->nrcpts++;
	}
	c->n++;
	return WSE_OK;
nomem:
	job_clear(j);
	return wse_err(WSE_ERR_NOMEM, "cannot copy a queue item");
}

/* Close the m:<op> body begun in body (for a Deliver: Origin, OriginId,
 * the Rcpt elements and the message) and sign it as an envelope to url
 * with the Action of op. */
static wse_status
sign_call(struct wsed *s, wse_buf *body, const char *op, const char *url,
    wse_buf *out, char msgid_r[WSE_UUID_URN_LEN + 1])
{
	wse_envelope *env = NULL;
	wse_status st;
	char action[64];

	(void)snprintf(action, sizeof(action), WSE_ACTION_PREFIX "%s", op);
	if ((st = wse_buf_printf(body, "</m:%s>", op)) != WSE_OK ||
	    (st = wse_env_new(url, action, &env)) != WSE_OK ||
	    (st = wse_env_add_body_xml(env, wse_buf_str(body),
	    wse_buf_len(body), &s->lim)) != WSE_OK)
		goto out;
	(void)snprintf(msgid_r, WSE_UUID_URN_LEN + 1, "%s",
	    wse_env_message_id(env));
	st = wsed_sign_out(s, env, out);
out:
	wse_env_free(&env);
	return st;
}

/* The m:Deliver element for a job, left open (sign_call closes it):
 * Origin, OriginId, the Rcpt elements and the message. */
static wse_status
deliver_open(struct wsed *s, const struct job *j, wse_buf *body)
{
	wse_status st;
	size_t i;

	if ((st = wse_buf_printf(body, "<m:Deliver xmlns:m=\"" WSE_NS_WSE
	    "\"><m:Origin>%s</m:Origin><m:OriginId>%s</m:OriginId>",
	    s->domain, j->item.message_id)) != WSE_OK)
		return st;
	for (i = 0; i < j->nrcpts; i++)
		if ((st = wse_buf_printf(body, "<m:Rcpt>%s</m:Rcpt>",
		    j->rcpts[i])) != WSE_OK)
			return st;
	return wse_buf_put(body, wse_buf_data(j->payload),
	    wse_buf_len(j->payload));
}

/* The signed Deliver envelope for a job, addressed to url. */
static wse_status
build_deliver(struct wsed *s, const struct job *j, const char *url,
    wse_buf *out, char msgid_r[WSE_UUID_URN_LEN + 1])
{
	wse_buf *body = NULL;
	wse_status st;

	if ((body = wse_buf_new(wse_buf_len(j->payload) + 64 * 1024)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	/* Room for the body and the signed envelope at once, rather than
	 * doubling (copy and wipe) up to them. */
	if ((st = wse_buf_reserve(body, wse_buf_len(j->payload) + 1024)) ==
	    WSE_OK && (st = wse_buf_reserve(out, wse_buf_len(j->payload) +
	    16384)) == WSE_OK && (st = deliver_open(s, j, body)) == WSE_OK)
		st = sign_call(s, body, "Deliver", url, out, msgid_r);
	wse_buf_free(&body);
	return st;
}

/* A job as a batch item: its bare m:Deliver element, proven by the batch
 * signature (lib/batch.h). */
static wse_status
build_item(struct wsed *s, const struct job *j, wse_buf *out)
{
	wse_status st;

	if ((st = wse_buf_reserve(out, wse_buf_len(j->payload) + 1024)) !=
	    WSE_OK || (st = deliver_open(s, j, out)) != WSE_OK)
		return st;
	return wse_buf_puts(out, "</m:Deliver>");
}

/* Outcome of one attempt. */
enum outcome { DELIVERED, DEFER, BOUNCE };

struct result {
	enum outcome what;
	char reason[1024];
	char rejected[WSE_MSG_MAX_RCPTS][WSE_ADDR_MAX + 1];
	size_t nrejected;
};

static int
permanent(wse_status st)
{
	return st == WSE_ERR_NO_SUCH_USER || st == WSE_ERR_TOO_LARGE ||
	    st == WSE_ERR_INVALID || st == WSE_ERR_PARSE ||
	    st == WSE_ERR_NOT_AUTHORIZED || st == WSE_ERR_DOMAIN_MISMATCH;
}

/*
 * A delivery's outcome (the m:Accepted / m:Rejected children of out):
 * delivered, and the rejected recipients to report.  The answer must
 * account for each recipient of j exactly once and name nobody else;
 * anything else (no outcome at all, an unknown or repeated address, an
 * outcome that is not plain text) is an odd answer, a temporary failure:
 * the item stays queued rather than being removed on an answer that
 * proves nothing, and no report names an address the sender did not
 * write to.  Elements other than these two are left for later versions.
 */
static void
read_delivered(const xmlNode *out, const struct job *j, struct result *r)
{
	char seen[WSE_MSG_MAX_RCPTS], *who = NULL;
	xmlNodePtr n;
	size_t i, nseen = 0;
	int rej;

	memset(seen, 0, sizeof(seen));
	r->what = DELIVERED;
	r->nrejected = 0;
	for (n = wse_xml_first_elem(out); n; n = wse_xml_next_elem(n)) {
		rej = wse_xml_is(n, WSE_NS_WSE, "Rejected");
		if (!rej && !wse_xml_is(n, WSE_NS_WSE, "Accepted"))
			continue;	/* room for later additions */
		if (wse_xml_text_dup(n, WSE_ADDR_MAX + 1, &who) != WSE_OK)
			goto odd;
		for (i = 0; i < j->nrcpts && i < WSE_MSG_MAX_RCPTS; i++)
			if (!seen[i] && strcmp(j->rcpts[i], who) == 0)
				break;
		if (i == j->nrcpts || i == WSE_MSG_MAX_RCPTS)
			goto odd;
		seen[i] = 1;
		nseen++;
		if (rej)
			(void)snprintf(r->rejected[r->nrejected++],
			    sizeof(r->rejected[0]), "%s", who);
		free(who);
		who = NULL;
	}
	if (nseen != j->nrcpts)
		goto odd;
	if (r->nrejected > 0)
		(void)snprintf(r->reason, sizeof(r->reason), "no such mailbox "
		    "at %.253s", j->item.domain);
	return;
odd:
	free(who);
	wse_err_clear();
	r->what = DEFER;
	r->nrejected = 0;
	(void)snprintf(r->reason, sizeof(r->reason), "odd answer from %.253s: "
	    "the recipients' outcomes do not match the recipients sent",
	    j->item.domain);
}

/*
 * Open the answer to our op call (request_id) from domain's server:
 * verified as its server's (certificate profile), relating to our
 * request, and its body the only m:<op>Response (*resp_r, a node of
 * *env_r: the caller frees *env_r and clears v).  Otherwise the status
 * a Fault names, or WSE_ERR_TEMPFAIL; the reason is set with wse_err.
 * An old answer replayed cannot confirm a new call, so answers need no
 * durable replay entry.
 */
static wse_status
answer_open(struct wsed *s, const char *domain, const char *op,
    const char *request_id, const uint8_t *data, size_t len,
    wse_envelope **env_r, wse_verified *v, xmlNodePtr *resp_r)
{
	wse_verify_opts o;
	wse_status fst;
	char reason[200], errs[512], want[64];

	wsed_server_opts(s, domain, &o);
	o.caller_inserts_nonce = 1;	/* bound to our request instead */
	if (wse_env_parse(data, len, &s->lim, env_r) != WSE_OK ||
	    wse_wss_verify(*env_r, &o, v) != WSE_OK) {
		(void)wse_err_format(errs, sizeof(errs));
		wse_err_clear();
		return wse_err(WSE_ERR_TEMPFAIL, "unverifiable answer from "
		    "%.253s: %.500s", domain, errs);
	}
	if (v->relates_to_s == NULL || strcmp(v->relates_to_s, request_id) != 0)
		return wse_err(WSE_ERR_TEMPFAIL, "answer from %.253s does not "
		    "relate to our %s", domain, op);
	if (wse_fault_read(v->body, &fst, reason, sizeof(reason)) == WSE_OK)
		return wse_err(fst, "%.253s refused: %s (%.190s)", domain,
		    wse_fault_subcode(fst), reason);
	(void)snprintf(want, sizeof(want), "%sResponse", op);
	if (wse_xml_only_child(v->body, WSE_NS_WSE, want, resp_r) != WSE_OK) {
		wse_err_clear();
		return wse_err(WSE_ERR_TEMPFAIL, "odd answer from %.253s to "
		    "our %s", domain, op);
	}
	return WSE_OK;
}

/* Read a DeliverResponse (answer_open) or Fault into r. */
static void
read_answer(struct wsed *s, const struct job *j, const char *request_id,
    const uint8_t *data, size_t len, struct result *r)
{
	wse_envelope *env = NULL;
	wse_verified v;
	wse_status st;
	xmlNodePtr resp = NULL;

	memset(&v, 0, sizeof(v));
	st = answer_open(s, j->item.domain, "Deliver", request_id, data, len,
	    &env, &v, &resp);
	if (st == WSE_OK)
		read_delivered(resp, j, r);
	else {
		r->what = permanent(st) ? BOUNCE : DEFER;
		(void)wse_err_format(r->reason, sizeof(r->reason));
	}
	wse_verified_clear(&v);
	wse_env_free(&env);
	wse_err_clear();
}

/* Deliver one job to its domain's server(s). */
static void
attempt_remote(struct wsed *s, wse_http_client *client, const struct job *j,
    struct result *r)
{
	wse_route_target *t = NULL;
	size_t nt = 0, i, k;
	wse_buf *req = NULL, *resp = NULL;
	wse_status st;
	char url[600], errs[512], reqid[WSE_UUID_URN_LEN + 1];
	long http;

	r->what = DEFER;
	st = wse_router_resolve(s->router, j->item.domain, &t, &nt);
	if (st != WSE_OK) {
		r->what = st == WSE_ERR_NOT_FOUND ? BOUNCE : DEFER;
		(void)snprintf(r->reason, sizeof(r->reason), "no route to %.253s: "
		    "%.500s", j->item.domain, wse_err_format(errs, sizeof(errs)));
		goto out;
	}
	if ((req = wse_buf_new(s->lim.max_message_bytes * 3)) == NULL ||
	    (resp = wse_buf_new(s->lim.max_message_bytes * 3)) == NULL)
		goto out;
	(void)snprintf(r->reason, sizeof(r->reason), "no server of %.253s "
	    "answered", j->item.domain);
	for (i = 0; i < nt; i++) {
		(void)snprintf(url, sizeof(url), "https://%s:%u/wsemail",
		    t[i].host, t[i].port);
		for (k = 0; k < t[i].naddrs; k++) {
			wse_buf_reset(req);
			wse_buf_reset(resp);
			if (build_deliver(s, j, url, req, reqid) != WSE_OK)
				goto out;
			st = wse_http_post(client, url, t[i].addrs[k],
			    "application/soap+xml", wse_buf_data(req),
			    wse_buf_len(req), resp, &http);
			if (st != WSE_OK) {
				(void)snprintf(r->reason, sizeof(r->reason),
				    "%.400s (%s): %.500s", url, t[i].addrs[k],
				    wse_err_format(errs, sizeof(errs)));
				wse_err_clear();
				continue;	/* next address / target */
			}
			read_answer(s, j, reqid, wse_buf_data(resp),
			    wse_buf_len(resp),
			    r);
			goto out;
		}
	}
out:
	free(t);
	wse_buf_free(&req);
	wse_buf_free(&resp);
}

/* Deliver one job to our own mailboxes: sign it as we would for another
 * server and run the receiving side on it. */
static void
attempt_local(struct wsed *s, const struct job *j, struct result *r)
{
	wse_buf *req = NULL, *resp = NULL;
	wse_status st;
	int http;
	char errs[512], reqid[WSE_UUID_URN_LEN + 1];

	if ((req = wse_buf_new(s->lim.max_message_bytes * 3)) == NULL ||
	    (resp = wse_buf_new(s->lim.max_message_bytes * 3)) == NULL) {
		r->what = DEFER;
		goto out;
	}
	if ((st = build_deliver(s, j, s->url, req, reqid)) != WSE_OK) {
		r->what = DEFER;
		(void)snprintf(r->reason, sizeof(r->reason), "%s",
		    wse_err_format(errs, sizeof(errs)));
		goto out;
	}
	/* Our own service certificate stands in for the TLS peer. */
	wsed_handle(s, wse_buf_data(req), wse_buf_len(req), s->chain,
	    s->nchain, resp, &http);
	read_answer(s, j, reqid, wse_buf_data(resp), wse_buf_len(resp), r);
out:
	wse_buf_free(&req);
	wse_buf_free(&resp);
}

/*
 * A bounce's id is a function of what it reports: the message, the
 * domain of the queue item and the recipients.  If the item comes back
 * after the bounce was queued but before the item left the queue (a
 * crash in between) and is refused again, the second bounce has the same
 * id, and the sender's mailbox keeps only the first (delivery
 * de-duplication on origin domain and id).  Only this server delivers
 * under its own origin, so a predictable id gives nobody else anything.
 */
static wse_status
bounce_id(const struct job *j, char (*rcpts)[WSE_ADDR_MAX + 1], size_t n,
    char id[WSE_UUID_URN_LEN + 1])
{
	wse_buf *in = wse_buf_new((n + 2) * (WSE_ADDR_MAX + 2) + 512);
	uint8_t h[WSE_SHA256_LEN];
	wse_status st;
	size_t i;

	if (in == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	/* Each part NUL-terminated, so that no two lists run together. */
	st = wse_buf_put(in, "wsemail bounce", 15);
	if (st == WSE_OK)
		st = wse_buf_put(in, j->item.message_id,
		    strlen(j->item.message_id) + 1);
	if (st == WSE_OK)
		st = wse_buf_put(in, j->item.domain,
		    strlen(j->item.domain) + 1);
	for (i = 0; st == WSE_OK && i < n; i++)
		st = wse_buf_put(in, rcpts[i], strlen(rcpts[i]) + 1);
	if (st == WSE_OK)
		st = wse_sha256(wse_buf_data(in), wse_buf_len(in), h);
	wse_buf_free(&in);
	if (st != WSE_OK)
		return st;
	h[6] = (uint8_t)((h[6] & 0x0f) | 0x40);	/* the form of a v4 id */
	h[8] = (uint8_t)((h[8] & 0x3f) | 0x80);
	(void)snprintf(id, WSE_UUID_URN_LEN + 1, "urn:uuid:%02x%02x%02x%02x-"
	    "%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", h[0], h[1],
	    h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11],
	    h[12], h[13], h[14], h[15]);
	return WSE_OK;
}

/* Tell the sender, unless the item is itself a report. */
static void
bounce(struct wsed *s, const struct job *j, char (*rcpts)[WSE_ADDR_MAX + 1],
    size_t n, const char *reason)
{
	wse_msg *m = NULL, *orig = NULL;
	xmlDocPtr doc = NULL;
	wse_buf *text = NULL;
	char from[300], id[WSE_UUID_URN_LEN + 1], subj[WSE_MSG_SUBJECT_MAX];
	size_t i;

	if (j->item.flags & WSE_MSG_REPORT) {
		wsed_log("report %s undeliverable (%s): dropped, never "
		    "reported", j->item.message_id, reason);
		return;
	}
	if (wse_xml_parse(wse_buf_data(j->payload), wse_buf_len(j->payload),
	    &s->lim, &doc) == WSE_OK)
		(void)wse_msg_parse(xmlDocGetRootElement(doc), &orig);
	(void)snprintf(from, sizeof(from), "mailer-daemon@%s", s->domain);
	(void)snprintf(subj, sizeof(subj), "Undeliverable: %.900s",
	    orig && orig->subject ? orig->subject : "(no subject)");
	if ((text = wse_buf_new(64 * 1024)) == NULL ||
	    wse_buf_printf(text, "Your message %s could not be delivered "
	    "to:\n", j->item.message_id) != WSE_OK)
		goto out;
	for (i = 0; i < n; i++)
		(void)wse_buf_printf(text, "  %s\n", rcpts[i]);
	(void)wse_buf_printf(text, "Reason: %s\n", reason);
	if (wse_msg_new(&m) != WSE_OK ||
	    wse_msg_set(m, "from", from) != WSE_OK ||
	    wse_msg_add_rcpt(m, j->item.sender, 0) != WSE_OK ||
	    wse_msg_set(m, "subject", subj) != WSE_OK ||
	    wse_msg_set(m, "text", wse_buf_str(text)) != WSE_OK)
		goto out;
	{
		char when[21];

		wse_time_format(s->now(), when);
		(void)wse_msg_set(m, "date", when);
	}
	if (bounce_id(j, rcpts, n, id) == WSE_OK &&
	    wsed_submit(s, m, WSE_MSG_REPORT | WSED_SUBMIT_KEEP_ID, NULL, 0,
	    id) == WSE_OK)
		wsed_log("bounce %s for %s to %s: %s", id, j->item.message_id,
		    j->item.sender, reason);
	else
		wsed_log("cannot queue a bounce for %s", j->item.message_id);
out:
	wse_msg_free(&m);
	wse_msg_free(&orig);
	wse_buf_free(&text);
	xmlFreeDoc(doc);
}

static int64_t
backoff(const struct wsed *s, int attempts)
{
	int64_t d = s->retry_first;
	int i;

	for (i = 0; i < attempts && d < s->retry_max; i++)
		d *= 2;
	return d < s->retry_max ? d : s->retry_max;
}

/* Where delivered and bounced items go: removed together at the end of
 * a pass (one transaction). */
struct done_list {
	int64_t ids[TAKE_MAX];
	size_t n;
};

/* Act on the outcome of an attempt for j. */
static void
settle(struct wsed *s, struct job *j, struct result *r, struct done_list *dl)
{
	int64_t now = s->now(), next;
	size_t i;

	if (r->what == DEFER && now >= j->item.expires) {
		r->what = BOUNCE;
		(void)snprintf(r->reason + strlen(r->reason),
		    sizeof(r->reason) - strlen(r->reason),
		    "; gave up after %d attempts", j->item.attempts + 1);
	}
	switch (r->what) {
	case DELIVERED:
		if (r->nrejected > 0)
			bounce(s, j, r->rejected, r->nrejected, r->reason);
		dl->ids[dl->n++] = j->item.id;
		wsed_log("delivered %s to %s", j->item.message_id,
		    j->item.domain);
		break;
	case BOUNCE: {
		char (*all)[WSE_ADDR_MAX + 1] = calloc(j->nrcpts ? j->nrcpts : 1,
		    sizeof(*all));

		for (i = 0; all != NULL && i < j->nrcpts; i++)
			(void)snprintf(all[i], sizeof(all[i]), "%s",
			    j->rcpts[i]);
		if (all != NULL)
			bounce(s, j, all, j->nrcpts, r->reason);
		free(all);
		dl->ids[dl->n++] = j->item.id;
		break;
	}
	case DEFER:
		next = now + backoff(s, j->item.attempts);
		if (next > j->item.expires)
			next = j->item.expires;
		(void)wse_store_queue_defer(s->store, j->item.id, next,
		    r->reason);
		wsed_log("deferred %s to %s: %s (next try in %lld s)",
		    j->item.message_id, j->item.domain, r->reason,
		    (long long)(next - now));
		break;
	}
	wse_err_clear();
}

static void
handle_job(struct wsed *s, wse_http_client *client, struct job *j,
    struct done_list *dl)
{
	struct result *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return;		/* the lease runs out; tried again later */
	if (strcmp(j->item.domain, s->domain) == 0)
		attempt_local(s, j, r);
	else
		attempt_remote(s, client, j, r);
	settle(s, j, r, dl);
	free(r);
}

/* ---- several items for one domain in one DeliverBatch ---- */

/*
 * The servers that refused a DeliverBatch with a signed Unsupported
 * Fault (from before batches), by recipient domain: for
 * WSED_NOBATCH_SECONDS their items go one Deliver each at once, rather
 * than one signed round trip per pass that is refused again.  Domains
 * are compared exactly: the queue and the message addresses hold them
 * lower-cased.  A small table under a lock held only to read or write
 * it, shared by the delivery workers and the instant senders.
 */
void
wsed_outbound_init(struct wsed *s)
{
	pthread_mutex_init(&s->nobatch_lock, NULL);
	memset(s->nobatch, 0, sizeof(s->nobatch));
}

void
wsed_outbound_fini(struct wsed *s)
{
	pthread_mutex_destroy(&s->nobatch_lock);
	memset(s->nobatch, 0, sizeof(s->nobatch));
}

/* 1 when e is in force at now.  An entry further ahead than the interval
 * (the clock was set back) has run out too. */
static int
nobatch_live(const struct wsed_nobatch *e, int64_t now)
{
	return e->until > now && e->until - now <= WSED_NOBATCH_SECONDS;
}

/* 1 while domain's server is remembered to refuse DeliverBatch. */
static int
nobatch_known(struct wsed *s, const char *domain)
{
	int64_t now = s->now();
	size_t i;
	int known = 0;

	pthread_mutex_lock(&s->nobatch_lock);
	for (i = 0; i < WSED_NOBATCH_MAX && !known; i++)
		known = nobatch_live(&s->nobatch[i], now) &&
		    strcmp(s->nobatch[i].domain, domain) == 0;
	pthread_mutex_unlock(&s->nobatch_lock);
	return known;
}

/*
 * Remember that domain's server answered a DeliverBatch with a signed
 * Unsupported Fault.  A domain already known keeps its time (workers
 * whose batches were on their way when the first answer came); a new one
 * takes a free or run-out entry, else the one that runs out first.
 * Logged once per interval.
 */
static void
nobatch_remember(struct wsed *s, const char *domain)
{
	int64_t now = s->now();
	struct wsed_nobatch *e = NULL;
	size_t i;
	int fresh = 1;

	if (strlen(domain) >= sizeof(s->nobatch[0].domain))
		return;		/* cannot be a queue's domain */
	pthread_mutex_lock(&s->nobatch_lock);
	for (i = 0; i < WSED_NOBATCH_MAX; i++)
		if (s->nobatch[i].until != 0 &&
		    strcmp(s->nobatch[i].domain, domain) == 0) {
			e = &s->nobatch[i];
			fresh = !nobatch_live(e, now);
			break;
		}
	for (i = 0; e == NULL && i < WSED_NOBATCH_MAX; i++)
		if (!nobatch_live(&s->nobatch[i], now))
			e = &s->nobatch[i];
	if (e == NULL) {
		e = &s->nobatch[0];
		for (i = 1; i < WSED_NOBATCH_MAX; i++)
			if (s->nobatch[i].until < e->until)
				e = &s->nobatch[i];
	}
	if (fresh) {
		(void)snprintf(e->domain, sizeof(e->domain), "%s", domain);
		e->until = now + WSED_NOBATCH_SECONDS;
	}
	pthread_mutex_unlock(&s->nobatch_lock);
	if (fresh)
		wsed_log("%s does not take DeliverBatch; sending one Deliver "
		    "per item for %d s", domain, WSED_NOBATCH_SECONDS);
}

/* The status a batch answer's subcode names (TEMPFAIL when unknown). */
static wse_status
subcode_status(const char *code)
{
	static const wse_status known[] = {
		WSE_ERR_NO_SUCH_USER, WSE_ERR_TOO_LARGE, WSE_ERR_INVALID,
		WSE_ERR_PARSE, WSE_ERR_NOT_AUTHORIZED, WSE_ERR_DOMAIN_MISMATCH,
		WSE_ERR_BAD_SIGNATURE, WSE_ERR_REPLAY, WSE_ERR_UNSUPPORTED,
	};
	size_t i;

	for (i = 0; code != NULL && i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(code, wse_fault_subcode(known[i])) == 0)
			return known[i];
	return WSE_ERR_TEMPFAIL;
}

/* The signed DeliverBatch of items[0..n-1] (bare m:Deliver elements or
 * signed Deliver envelopes, proven by the batch signature over their
 * digests: lib/batch.h), addressed to url. */
static wse_status
batch_envelope(struct wsed *s, wse_buf *const *items, size_t n,
    const char *url, wse_buf *out, char msgid_r[WSE_UUID_URN_LEN + 1])
{
	wse_envelope *env = NULL;
	wse_status st;
	size_t i, total = 0;

	for (i = 0; i < n; i++)
		total += (wse_buf_len(items[i]) + 2) / 3 * 4 + 32;
	if ((st = wse_env_new(url, WSE_ACTION_PREFIX "DeliverBatch", &env)) !=
	    WSE_OK ||
	    (st = wse_batch_build(env, s->domain, (const wse_buf *const *)items,
	    n, &s->lim)) != WSE_OK)
		goto out;
	(void)snprintf(msgid_r, WSE_UUID_URN_LEN + 1, "%s",
	    wse_env_message_id(env));
	if ((st = wse_buf_reserve(out, total + 16384)) != WSE_OK)
		goto out;
	st = wsed_sign_out(s, env, out);
out:
	wse_env_free(&env);
	return st;
}

/* Room for n batch items (freed with items_free). */
static wse_buf **
items_new(struct wsed *s, size_t n)
{
	wse_buf **items = calloc(n, sizeof(*items));
	size_t i;

	for (i = 0; items != NULL && i < n; i++)
		if ((items[i] = wse_buf_new(s->lim.max_message_bytes)) ==
		    NULL) {
			while (i > 0)
				wse_buf_free(&items[--i]);
			free(items);
			items = NULL;
		}
	return items;
}

static void
items_free(wse_buf **items, size_t n)
{
	size_t i;

	for (i = 0; items != NULL && i < n; i++)
		wse_buf_free(&items[i]);
	free(items);
}

/* The signed DeliverBatch for jobs[0..n-1], addressed to url. */
static wse_status
build_batch(struct wsed *s, struct job *const *jobs, size_t n,
    const char *url, wse_buf *out, char msgid_r[WSE_UUID_URN_LEN + 1])
{
	wse_buf **items = items_new(s, n);
	wse_status st = WSE_OK;
	size_t i;

	if (items == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	for (i = 0; i < n && st == WSE_OK; i++)
		st = build_item(s, jobs[i], items[i]);
	if (st == WSE_OK)
		st = batch_envelope(s, items, n, url, out, msgid_r);
	items_free(items, n);
	return st;
}

/* The next m:Item of a batch answer from it (NULL: the first). */
static xmlNodePtr
batch_item_next(const xmlNode *resp, xmlNodePtr it)
{
	for (it = it ? wse_xml_next_elem(it) : wse_xml_first_elem(resp); it;
	    it = wse_xml_next_elem(it))
		if (wse_xml_is(it, WSE_NS_WSE, "Item"))
			return it;
	return NULL;
}

/*
 * 1 when the answer st to a DeliverBatch of n items to domain means that
 * they go one Deliver each, now: the peer does not know DeliverBatch
 * (Unsupported: remembered for a while), or it refused this batch whole
 * as malformed (InvalidMessage: a peer that reads batches otherwise, such
 * as another version; that says nothing of the messages, each gets its
 * own verdict; nothing is remembered).
 */
static int
batch_fallback(struct wsed *s, const char *domain, wse_status st, size_t n)
{
	char why[512];

	if (st == WSE_ERR_UNSUPPORTED) {
		nobatch_remember(s, domain);
		return 1;
	}
	if (st != WSE_ERR_INVALID && st != WSE_ERR_PARSE)
		return 0;
	(void)wse_err_format(why, sizeof(why));
	wsed_log("%s refused a DeliverBatch whole: %s; sending its %zu items "
	    "one Deliver each", domain, why, n);
	return 1;
}

/* answer_open for a DeliverBatch of n items, and exactly n m:Item. */
static wse_status
batch_answer_open(struct wsed *s, const char *domain, const char *request_id,
    const uint8_t *data, size_t len, size_t n, wse_envelope **env_r,
    wse_verified *v, xmlNodePtr *resp_r)
{
	wse_status st;
	xmlNodePtr it = NULL;
	size_t i = 0;

	if ((st = answer_open(s, domain, "DeliverBatch", request_id, data,
	    len, env_r, v, resp_r)) != WSE_OK)
		return st;
	while ((it = batch_item_next(*resp_r, it)) != NULL)
		i++;
	if (i != n)
		return wse_err(WSE_ERR_TEMPFAIL, "odd answer from %.253s: %zu "
		    "items for %zu", domain, i, n);
	return WSE_OK;
}

/* 1 with *st_r when the item is m:Refused (the status its code names). */
static int
batch_item_refused(const xmlNode *it, wse_status *st_r)
{
	xmlNodePtr x;
	xmlChar *code;

	if (wse_xml_only_child(it, WSE_NS_WSE, "Refused", &x) != WSE_OK) {
		wse_err_clear();
		return 0;
	}
	code = xmlGetProp(x, BAD_CAST "code");
	*st_r = subcode_status((const char *)code);
	xmlFree(code);
	return 1;
}

/*
 * Read a DeliverBatchResponse into r[0..n-1] (verified like a Deliver
 * answer).  Returns 1 when the peer does not know DeliverBatch (the jobs
 * are then sent one by one, and the domain is remembered for a while) or
 * refused this one whole as malformed (sent one by one, not
 * remembered), else 0.
 */
static int
read_batch_answer(struct wsed *s, const char *domain, const char *request_id,
    const uint8_t *data, size_t len, struct job *const *jobs, size_t n,
    struct result *r)
{
	wse_envelope *env = NULL;
	wse_verified v;
	wse_status st, fst;
	xmlNodePtr it = NULL, resp = NULL;
	char why[1024];
	size_t i;
	int unsupported = 0;

	memset(&v, 0, sizeof(v));
	st = batch_answer_open(s, domain, request_id, data, len, n, &env, &v,
	    &resp);
	if (batch_fallback(s, domain, st, n))
		unsupported = 1;
	else if (st != WSE_OK) {
		(void)wse_err_format(why, sizeof(why));
		for (i = 0; i < n; i++) {
			r[i].what = permanent(st) ? BOUNCE : DEFER;
			(void)snprintf(r[i].reason, sizeof(r[i].reason), "%s",
			    why);
		}
	} else {
		for (i = 0; i < n && (it = batch_item_next(resp, it)); i++) {
			if (!batch_item_refused(it, &fst)) {
				read_delivered(it, jobs[i], &r[i]);
				continue;
			}
			r[i].what = permanent(fst) ? BOUNCE : DEFER;
			(void)snprintf(r[i].reason, sizeof(r[i].reason),
			    "%.253s refused: %s", domain,
			    wse_fault_subcode(fst));
		}
	}
	wse_verified_clear(&v);
	wse_env_free(&env);
	wse_err_clear();
	return unsupported;
}

/* Deliver jobs[0..n-1], all for one other domain, in one DeliverBatch
 * (static route or SRV, next target on failure, like one job). */
static void
handle_batch(struct wsed *s, wse_http_client *client, struct job **jobs,
    size_t n, struct done_list *dl)
{
	const char *domain = jobs[0]->item.domain;
	wse_route_target *t = NULL;
	struct result *r = calloc(n, sizeof(*r));
	wse_buf *req = NULL, *resp = NULL;
	size_t nt = 0, i, k;
	char url[600], errs[512], reqid[WSE_UUID_URN_LEN + 1];
	char why[1024];
	wse_status st;
	long http;

	if (r == NULL)
		return;		/* the leases run out; tried again later */
	for (i = 0; i < n; i++)
		r[i].what = DEFER;
	(void)snprintf(why, sizeof(why), "no server of %.253s answered",
	    domain);
	st = wse_router_resolve(s->router, domain, &t, &nt);
	if (st != WSE_OK) {
		(void)snprintf(why, sizeof(why), "no route to %.253s: %.500s",
		    domain, wse_err_format(errs, sizeof(errs)));
		for (i = 0; i < n; i++)
			r[i].what = st == WSE_ERR_NOT_FOUND ? BOUNCE : DEFER;
		goto settle;
	}
	if ((req = wse_buf_new(s->lim.max_message_bytes * 3)) == NULL ||
	    (resp = wse_buf_new(s->lim.max_message_bytes * 3)) == NULL)
		goto settle;
	for (i = 0; i < nt; i++) {
		(void)snprintf(url, sizeof(url), "https://%s:%u/wsemail",
		    t[i].host, t[i].port);
		for (k = 0; k < t[i].naddrs; k++) {
			wse_buf_reset(req);
			wse_buf_reset(resp);
			if (build_batch(s, jobs, n, url, req, reqid) != WSE_OK) {
				(void)snprintf(why, sizeof(why), "%.500s",
				    wse_err_format(errs, sizeof(errs)));
				goto settle;
			}
			st = wse_http_post(client, url, t[i].addrs[k],
			    "application/soap+xml", wse_buf_data(req),
			    wse_buf_len(req), resp, &http);
			if (st != WSE_OK) {
				(void)snprintf(why, sizeof(why),
				    "%.400s (%s): %.500s", url, t[i].addrs[k],
				    wse_err_format(errs, sizeof(errs)));
				wse_err_clear();
				continue;	/* next address / target */
			}
			if (read_batch_answer(s, domain, reqid,
			    wse_buf_data(resp), wse_buf_len(resp), jobs, n,
			    r)) {
				/* A server without batches: one by one. */
				free(t);
				wse_buf_free(&req);
				wse_buf_free(&resp);
				free(r);
				for (i = 0; i < n; i++)
					handle_job(s, client, jobs[i], dl);
				return;
			}
			why[0] = '\0';
			wsed_log("sent %zu items to %s in one DeliverBatch",
			    n, domain);
			goto settle;
		}
	}
settle:
	for (i = 0; i < n; i++) {
		if (why[0] != '\0')
			(void)snprintf(r[i].reason, sizeof(r[i].reason), "%s",
			    why);
		settle(s, jobs[i], &r[i], dl);
	}
	free(t);
	wse_buf_free(&req);
	wse_buf_free(&resp);
	free(r);
}

/*
 * Send the jobs taken in one pass: items of our own domain one by one
 * (no network); items of another domain together, in DeliverBatch calls
 * of at most WSED_BATCH_MAX items and WSED_BATCH_BYTES; a lone item, and
 * the items for a server remembered to refuse batches, as plain Delivers.
 */
static void
send_jobs(struct wsed *s, wse_http_client *client, struct job *jobs,
    size_t n, struct done_list *dl)
{
	struct job *group[TAKE_MAX];
	char taken[TAKE_MAX];
	size_t i, k, ng, bytes, cost;

	memset(taken, 0, sizeof(taken));
	for (i = 0; i < n; i++) {
		if (taken[i])
			continue;
		taken[i] = 1;
		if (strcmp(jobs[i].item.domain, s->domain) == 0) {
			handle_job(s, client, &jobs[i], dl);
			continue;
		}
		group[0] = &jobs[i];
		ng = 1;
		bytes = wse_buf_len(jobs[i].payload) / 3 * 4 + 16384;
		for (k = i + 1; k < n && ng < WSED_BATCH_MAX; k++) {
			if (taken[k] || strcmp(jobs[k].item.domain,
			    jobs[i].item.domain) != 0)
				continue;
			cost = wse_buf_len(jobs[k].payload) / 3 * 4 + 16384;
			if (bytes + cost > WSED_BATCH_BYTES)
				continue;
			bytes += cost;
			group[ng++] = &jobs[k];
			taken[k] = 1;
		}
		if (ng > 1 && !nobatch_known(s, jobs[i].item.domain)) {
			handle_batch(s, client, group, ng, dl);
			continue;
		}
		/* A lone item, or a server known to refuse batches: one
		 * Deliver each. */
		for (k = 0; k < ng; k++)
			handle_job(s, client, group[k], dl);
	}
}

static wse_http_client *
new_client(struct wsed *s)
{
	wse_http_client_opts co;
	wse_http_client *c = NULL;
	char errs[512];

	memset(&co, 0, sizeof(co));
	co.roots = s->roots_path;
	co.cert_chain = s->chain_path;
	co.key = s->key_path;
	co.connect_timeout_ms = 5000;
	co.timeout_ms = 30000;
	co.max_response = s->lim.max_message_bytes * 3;
	if (wse_http_client_new(&co, &c) != WSE_OK)
		wsed_log("cannot create the HTTPS client: %s",
		    wse_err_format(errs, sizeof(errs)));
	return c;
}

size_t
wsed_outbound_pass(struct wsed *s)
{
	static _Thread_local wse_http_client *client;
	struct take_ctx c;
	struct done_list dl;
	size_t i;
	char errs[512];

	int64_t now = s->now(), last = __atomic_load_n(&s->last_expire,
	    __ATOMIC_RELAXED);

	if (client == NULL && (client = new_client(s)) == NULL)
		return 0;
	/* Once a minute, one worker drops expired replay entries, leases
	 * and old de-duplication records. */
	if (now - last >= 60 && __atomic_compare_exchange_n(&s->last_expire,
	    &last, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED) &&
	    wse_store_expire(s->store, now) != WSE_OK) {
		wsed_log("cannot expire old entries: %s",
		    wse_err_format(errs, sizeof(errs)));
		wse_err_clear();
	}
	/* Once a second, one worker moves the store's write-ahead log into
	 * the database, so that no request's commit has to. */
	last = __atomic_load_n(&s->last_checkpoint, __ATOMIC_RELAXED);
	if (now != last && __atomic_compare_exchange_n(&s->last_checkpoint,
	    &last, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED) &&
	    wse_store_checkpoint(s->store) != WSE_OK) {
		wsed_log("cannot checkpoint the store: %s",
		    wse_err_format(errs, sizeof(errs)));
		wse_err_clear();
	}
	memset(&c, 0, sizeof(c));
	if (wse_store_queue_take(s->store, s->now(), s->lease, TAKE_MAX,
	    take_one, &c) != WSE_OK) {
		wsed_log("queue unavailable: %s",
		    wse_err_format(errs, sizeof(errs)));
		wse_err_clear();
	}
	dl.n = 0;
	send_jobs(s, client, c.jobs, c.n, &dl);
	if (dl.n > 0 && wse_store_queue_done_many(s->store, dl.ids, dl.n) !=
	    WSE_OK) {
		/* Delivered all the same; the receiver de-duplicates the
		 * next attempt. */
		wsed_log("cannot remove %zu delivered items from the queue: %s",
		    dl.n, wse_err_format(errs, sizeof(errs)));
		wse_err_clear();
	}
	for (i = 0; i < c.n; i++)
		job_clear(&c.jobs[i]);
	if (s->stopping)
		wse_http_client_free(&client);
	return c.n;
}

void
wsed_outbound_kick(struct wsed *s)
{
	pthread_mutex_lock(&s->wake_lock);
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->wake_lock);
}

void *
wsed_outbound_main(void *arg)
{
	struct wsed *s = arg;

	(void)pthread_setname_np(pthread_self(), "wsed-deliver");
	/*
	 * Delivery is bulk work that can wait a little; a client waiting
	 * for its Submit cannot.  A lower priority for this thread alone
	 * (Linux: nice applies per thread) lets the event loop, the workers
	 * and the committer run first, and these threads take the rest of
	 * the machine: the queue grows a little, and its batches with it.
	 */
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), WSED_DELIVER_NICE);
	while (!s->stopping) {
		struct timespec ts;

		if (wsed_outbound_pass(s) > 0)
			continue;
		/* Nothing due: sleep until kicked or a second has passed
		 * (deferred items come due by the clock). */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_mutex_lock(&s->wake_lock);
		if (!s->stopping)
			pthread_cond_timedwait(&s->wake, &s->wake_lock, &ts);
		pthread_mutex_unlock(&s->wake_lock);
	}
	(void)wsed_outbound_pass(s);	/* frees this thread's client */
	return NULL;
}

/* ---- instant messages: delivered now, never queued (docs/im.md) ---- */

/* A client with the short instant timeouts (one per slot of
 * s->instant_pool, made when first needed, freed by wsed_instant_fini). */
static wse_http_client *
instant_client_new(struct wsed *s)
{
	wse_http_client_opts co;
	wse_http_client *c;
	char errs[512];

	memset(&co, 0, sizeof(co));
	co.roots = s->roots_path;
	co.cert_chain = s->chain_path;
	co.key = s->key_path;
	co.connect_timeout_ms = WSED_INSTANT_TIMEOUT_MS / 2;
	co.timeout_ms = WSED_INSTANT_TIMEOUT_MS;
	co.max_response = s->lim.max_message_bytes * 3;
	if (wse_http_client_new(&co, &c) != WSE_OK) {
		wsed_log("cannot create the HTTPS client: %s",
		    wse_err_format(errs, sizeof(errs)));
		return NULL;
	}
	return c;
}

/* The signed Deliver of the instant message m to rcpt's server at url. */
static wse_status
build_instant(struct wsed *s, const wse_msg *m, const char *id,
    const char *url, wse_buf *out, char msgid_r[WSE_UUID_URN_LEN + 1])
{
	wse_buf *body = NULL;
	wse_status st;

	if ((body = wse_buf_new(s->lim.max_message_bytes)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	if ((st = wse_buf_printf(body, "<m:Deliver xmlns:m=\"" WSE_NS_WSE
	    "\"><m:Origin>%s</m:Origin><m:OriginId>%s</m:OriginId>"
	    "<m:Rcpt>%s</m:Rcpt>", s->domain, id, m->to[0])) == WSE_OK &&
	    (st = wse_msg_to_xml(m, body)) == WSE_OK)
		st = sign_call(s, body, "Deliver", url, out, msgid_r);
	wse_buf_free(&body);
	return st;
}

/* The outcome of an instant message in out (a DeliverResponse or a
 * batch's m:Item): exactly one m:Accepted for rcpt, pushed (to how many
 * sessions) or stored. */
static wse_status
instant_accepted(const xmlNode *out, const char *domain, const char *rcpt,
    int *stored_r, unsigned *sessions_r)
{
	xmlNodePtr acc;
	const char *result, *sessions;
	char *who = NULL, *end;
	unsigned long n = 0;
	wse_status st = WSE_OK;

	if (wse_xml_only_child(out, WSE_NS_WSE, "Accepted", &acc) != WSE_OK ||
	    wse_xml_text_dup(acc, WSE_ADDR_MAX + 1, &who) != WSE_OK ||
	    strcmp(who, rcpt) != 0 ||
	    (result = wse_xml_attr(acc, NULL, "result")) == NULL ||
	    (sessions = wse_xml_attr(acc, NULL, "sessions")) == NULL ||
	    (strcmp(result, "pushed") != 0 && strcmp(result, "stored") != 0) ||
	    *sessions < '0' || *sessions > '9' ||
	    (n = strtoul(sessions, &end, 10)) > 1000000 || *end != '\0') {
		wse_err_clear();
		st = wse_err(WSE_ERR_TEMPFAIL, "odd answer from %s to an "
		    "instant message", domain);
	} else {
		*stored_r = strcmp(result, "stored") == 0;
		*sessions_r = (unsigned)n;
	}
	free(who);
	return st;
}

/* The recipient server's answer to our instant Deliver: signed by domain,
 * relating to request_id; a Fault gives its status. */
static wse_status
instant_answer(struct wsed *s, const char *domain, const char *rcpt,
    const char *request_id, const wse_buf *data, int *stored_r,
    unsigned *sessions_r)
{
	wse_envelope *env = NULL;
	wse_verified v;
	wse_status st;
	xmlNodePtr resp = NULL;

	memset(&v, 0, sizeof(v));
	if ((st = answer_open(s, domain, "Deliver", request_id,
	    wse_buf_data(data), wse_buf_len(data), &env, &v, &resp)) == WSE_OK)
		st = instant_accepted(resp, domain, rcpt, stored_r, sessions_r);
	wse_verified_clear(&v);
	wse_env_free(&env);
	return st;
}

static wse_status instant_remote(struct wsed *s, wse_http_client *client,
    const wse_msg *m, const char *id, const char *domain, wse_buf *req,
    wse_buf *resp, int *stored_r, unsigned *sessions_r);
static wse_status instant_combined(struct wsed *s, const wse_msg *m,
    const char *id, const char *domain, wse_buf *req, wse_buf *resp,
    int *stored_r, unsigned *sessions_r);

wse_status
wsed_instant_send(struct wsed *s, const wse_msg *m, const char *id,
    int *stored_r, unsigned *sessions_r)
{
	const char *domain = wse_addr_domain(m->to[0]);
	wse_buf *req = NULL, *resp = NULL;
	char reqid[WSE_UUID_URN_LEN + 1];
	wse_status st;
	int status, max;

	*stored_r = 0;
	*sessions_r = 0;
	if ((req = wse_buf_new(s->lim.max_message_bytes * 2)) == NULL ||
	    (resp = wse_buf_new(s->lim.max_message_bytes * 3)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto out;
	}
	if (strcmp(domain, s->domain) == 0) {
		/* Our own mailbox: the receiving side in process, on a
		 * Deliver we sign to ourselves (so what is pushed or stored
		 * carries a server signature). */
		if ((st = build_instant(s, m, id, s->url, req, reqid)) != WSE_OK)
			goto out;
		wsed_handle(s, wse_buf_data(req), wse_buf_len(req), s->chain,
		    s->nchain, resp, &status);
		wse_err_clear();
		st = instant_answer(s, s->domain, m->to[0], reqid, resp,
		    stored_r, sessions_r);
		goto out;
	}
	max = s->instant_out_max > 0 ? s->instant_out_max : 8;
	if (atomic_fetch_add(&s->instant_out, 1) >= max) {
		atomic_fetch_sub(&s->instant_out, 1);
		st = wse_err(WSE_ERR_TEMPFAIL, "too many instant messages "
		    "waiting for other servers (%d)", max);
		goto out;
	}
	st = instant_combined(s, m, id, domain, req, resp, stored_r,
	    sessions_r);
	atomic_fetch_sub(&s->instant_out, 1);
out:
	wse_buf_free(&req);
	wse_buf_free(&resp);
	return st;
}

/* The remote part of wsed_instant_send: the route, then one Deliver. */
static wse_status
instant_remote(struct wsed *s, wse_http_client *client, const wse_msg *m,
    const char *id, const char *domain, wse_buf *req, wse_buf *resp,
    int *stored_r, unsigned *sessions_r)
{
	wse_route_target *t = NULL;
	char url[600], errs[512], reqid[WSE_UUID_URN_LEN + 1];
	size_t nt = 0, i, k;
	wse_status st;
	long http;

	if ((st = wse_router_resolve(s->router, domain, &t, &nt)) != WSE_OK) {
		st = st == WSE_ERR_NOT_FOUND ? WSE_ERR_NO_SUCH_USER :
		    WSE_ERR_TEMPFAIL;
		(void)wse_err(st, "no route to %s", domain);
		goto out;
	}
	if (client == NULL) {
		st = wse_err(WSE_ERR_TEMPFAIL, "no HTTPS client");
		goto out;
	}
	st = wse_err(WSE_ERR_TEMPFAIL, "no server of %s answered", domain);
	for (i = 0; i < nt; i++) {
		(void)snprintf(url, sizeof(url), "https://%s:%u/wsemail",
		    t[i].host, t[i].port);
		for (k = 0; k < t[i].naddrs; k++) {
			wse_buf_reset(req);
			wse_buf_reset(resp);
			if ((st = build_instant(s, m, id, url, req, reqid)) !=
			    WSE_OK)
				goto out;
			if (wse_http_post(client, url, t[i].addrs[k],
			    "application/soap+xml", wse_buf_data(req),
			    wse_buf_len(req), resp, &http) != WSE_OK) {
				wsed_log("instant %s: %s (%s): %s", id, url,
				    t[i].addrs[k], wse_err_format(errs,
				    sizeof(errs)));
				wse_err_clear();
				st = wse_err(WSE_ERR_TEMPFAIL, "no server of %s "
				    "answered", domain);
				continue;
			}
			wse_err_clear();
			st = instant_answer(s, domain, m->to[0], reqid, resp,
			    stored_r, sessions_r);
			goto out;
		}
	}
out:
	free(t);
	return st;
}

/* ---- instant messages of several workers in one DeliverBatch ---- */

/* One waiting worker's instant message, with its own signed Deliver
 * (item) for the first address of its route; written by a leader, read
 * by its worker once done is set (under s->instant_lock). */
struct wsed_instant_req {
	const wse_msg *m;
	const char *id, *domain;
	char url[600], addr[46];
	wse_buf *item;
	char itemid[WSE_UUID_URN_LEN + 1];
	wse_status st;
	char err[512];
	int stored, done;
	unsigned sessions;
	struct wsed_instant_req *next;
};

void
wsed_instant_init(struct wsed *s)
{
	pthread_mutex_init(&s->instant_lock, NULL);
	pthread_cond_init(&s->instant_done, NULL);
	s->instant_head = NULL;
	s->instant_tail = &s->instant_head;
	s->instant_leader = 0;
	memset(s->instant_pool, 0, sizeof(s->instant_pool));
	memset(s->instant_busy, 0, sizeof(s->instant_busy));
}

void
wsed_instant_fini(struct wsed *s)
{
	size_t i;

	for (i = 0; i < WSED_INSTANT_LEADERS; i++)
		wse_http_client_free(&s->instant_pool[i]);
}

/* Every request of the group gets st and the current error as reason. */
static void
instant_fail_all(struct wsed_instant_req **rq, size_t n, wse_status st)
{
	char errs[512];
	size_t i;

	(void)wse_err_format(errs, sizeof(errs));
	for (i = 0; i < n; i++) {
		rq[i]->st = st;
		(void)snprintf(rq[i]->err, sizeof(rq[i]->err), "%s", errs);
	}
	wse_err_clear();
}

/*
 * The answer to an instant DeliverBatch for rq[0..n-1] (as for mail:
 * batch_answer_open), one outcome per message.  Returns 1 when the peer
 * does not know DeliverBatch (remembered for a while, as for mail).
 */
static int
instant_batch_answer(struct wsed *s, struct wsed_instant_req **rq, size_t n,
    const char *request_id, const wse_buf *data)
{
	const char *domain = rq[0]->domain;
	wse_envelope *env = NULL;
	wse_verified v;
	wse_status st;
	xmlNodePtr it = NULL, resp = NULL;
	size_t i;
	int unsupported = 0;

	memset(&v, 0, sizeof(v));
	st = batch_answer_open(s, domain, request_id, wse_buf_data(data),
	    wse_buf_len(data), n, &env, &v, &resp);
	if (batch_fallback(s, domain, st, n))
		unsupported = 1;
	else if (st != WSE_OK)
		instant_fail_all(rq, n, st);
	for (i = 0; st == WSE_OK && i < n &&
	    (it = batch_item_next(resp, it)); i++) {
		if (batch_item_refused(it, &rq[i]->st))
			(void)snprintf(rq[i]->err, sizeof(rq[i]->err),
			    "%s refused: %s", domain,
			    wse_fault_subcode(rq[i]->st));
		else if ((rq[i]->st = instant_accepted(it, domain,
		    rq[i]->m->to[0], &rq[i]->stored, &rq[i]->sessions)) !=
		    WSE_OK)
			(void)wse_err_format(rq[i]->err, sizeof(rq[i]->err));
		wse_err_clear();
	}
	wse_err_clear();
	wse_verified_clear(&v);
	wse_env_free(&env);
	return unsupported;
}

/* One request the slow way: its own Deliver, every route target. */
static void
instant_alone(struct wsed *s, wse_http_client *client,
    struct wsed_instant_req *r, wse_buf *req, wse_buf *resp)
{
	r->st = instant_remote(s, client, r->m, r->id, r->domain, req, resp,
	    &r->stored, &r->sessions);
	(void)wse_err_format(r->err, sizeof(r->err));
	wse_err_clear();
}

/*
 * Send rq[0..n-1] (one domain, the same first address) in one call: the
 * workers' own signed Deliver envelopes, in one DeliverBatch when there
 * are several.  Anything but an answer from that address (no connection,
 * a server without batches) sends each the slow way.  A server
 * remembered to refuse batches gets each envelope as a lone Deliver.
 */
static void
instant_group(struct wsed *s, wse_http_client *client,
    struct wsed_instant_req **rq, size_t n, wse_buf *req, wse_buf *resp)
{
	wse_buf **items = NULL;
	char reqid[WSE_UUID_URN_LEN + 1], errs[512];
	const char *body_reqid;
	size_t i;
	long http;
	int slow = 1;

	if (client == NULL)
		goto out;
	if (n > 1 && nobatch_known(s, rq[0]->domain)) {
		for (i = 0; i < n; i++)
			instant_group(s, client, &rq[i], 1, req, resp);
		return;
	}
	wse_buf_reset(req);
	wse_buf_reset(resp);
	if (n == 1) {
		if (wse_buf_put(req, wse_buf_data(rq[0]->item),
		    wse_buf_len(rq[0]->item)) != WSE_OK)
			goto out;
		body_reqid = rq[0]->itemid;
	} else {
		if ((items = calloc(n, sizeof(*items))) == NULL)
			goto out;
		for (i = 0; i < n; i++)
			items[i] = rq[i]->item;
		if (batch_envelope(s, items, n, rq[0]->url, req, reqid) !=
		    WSE_OK)
			goto out;
		body_reqid = reqid;
	}
	if (wse_http_post(client, rq[0]->url, rq[0]->addr,
	    "application/soap+xml", wse_buf_data(req), wse_buf_len(req), resp,
	    &http) != WSE_OK) {
		wsed_log("instant %s (%zu): %s (%s): %s", rq[0]->id, n,
		    rq[0]->url, rq[0]->addr, wse_err_format(errs,
		    sizeof(errs)));
		goto out;
	}
	wse_err_clear();
	if (n == 1) {
		rq[0]->st = instant_answer(s, rq[0]->domain, rq[0]->m->to[0],
		    body_reqid, resp, &rq[0]->stored, &rq[0]->sessions);
		(void)wse_err_format(rq[0]->err, sizeof(rq[0]->err));
		slow = 0;
	} else if (!(slow = instant_batch_answer(s, rq, n, body_reqid,
	    resp)))
		wsed_log("sent %zu instant messages to %s in one DeliverBatch",
		    n, rq[0]->domain);
out:
	wse_err_clear();
	free(items);
	for (i = 0; slow && i < n; i++)
		instant_alone(s, client, rq[i], req, resp);
}

/*
 * Send one instant message to another domain's server.  The worker signs
 * its own Deliver for the first address of the route, then queues it with
 * those of the other waiting workers; while fewer than WSED_INSTANT_LEADERS
 * calls are in flight, a waiting worker takes what is pending (up to
 * WSED_BATCH_MAX) and sends it, one DeliverBatch per address (a lone
 * message as a plain Deliver), while the others wait for their outcome.
 * A message alone goes out at once from its own worker.
 */
static wse_status
instant_combined(struct wsed *s, const wse_msg *m, const char *id,
    const char *domain, wse_buf *req, wse_buf *resp, int *stored_r,
    unsigned *sessions_r)
{
	struct wsed_instant_req me, *all[WSED_BATCH_MAX], *grp[WSED_BATCH_MAX];
	wse_route_target *t = NULL;
	char taken[WSED_BATCH_MAX];
	size_t nt = 0, n, i, k, ng, slot;
	wse_status st;

	memset(&me, 0, sizeof(me));
	me.m = m;
	me.id = id;
	me.domain = domain;
	if ((st = wse_router_resolve(s->router, domain, &t, &nt)) != WSE_OK) {
		st = st == WSE_ERR_NOT_FOUND ? WSE_ERR_NO_SUCH_USER :
		    WSE_ERR_TEMPFAIL;
		free(t);
		return wse_err(st, "no route to %s", domain);
	}
	if (nt == 0 || t[0].naddrs == 0) {
		free(t);
		return wse_err(WSE_ERR_TEMPFAIL, "no address for %s", domain);
	}
	(void)snprintf(me.url, sizeof(me.url), "https://%s:%u/wsemail",
	    t[0].host, t[0].port);
	(void)snprintf(me.addr, sizeof(me.addr), "%s", t[0].addrs[0]);
	free(t);
	if ((me.item = wse_buf_new(s->lim.max_message_bytes)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	if ((st = build_instant(s, m, id, me.url, me.item, me.itemid)) !=
	    WSE_OK) {
		wse_buf_free(&me.item);
		return st;
	}
	pthread_mutex_lock(&s->instant_lock);
	*s->instant_tail = &me;
	s->instant_tail = &me.next;
	while (!me.done) {
		if (s->instant_leader >= WSED_INSTANT_LEADERS ||
		    s->instant_head == NULL) {
			pthread_cond_wait(&s->instant_done, &s->instant_lock);
			continue;
		}
		s->instant_leader++;
		for (slot = 0; slot < WSED_INSTANT_LEADERS &&
		    s->instant_busy[slot]; slot++)
			;
		s->instant_busy[slot] = 1;	/* one is free: leaders < max */
		for (n = 0; n < WSED_BATCH_MAX && s->instant_head != NULL; n++) {
			all[n] = s->instant_head;
			s->instant_head = all[n]->next;
		}
		if (s->instant_head == NULL)
			s->instant_tail = &s->instant_head;
		pthread_mutex_unlock(&s->instant_lock);
		if (s->instant_pool[slot] == NULL)
			s->instant_pool[slot] = instant_client_new(s);
		memset(taken, 0, sizeof(taken));
		for (i = 0; i < n; i++) {
			if (taken[i])
				continue;
			grp[0] = all[i];
			ng = 1;
			for (k = i + 1; k < n; k++)
				if (!taken[k] && strcmp(all[k]->url,
				    all[i]->url) == 0 && strcmp(all[k]->addr,
				    all[i]->addr) == 0) {
					grp[ng++] = all[k];
					taken[k] = 1;
				}
			instant_group(s, s->instant_pool[slot], grp, ng, req,
			    resp);
		}
		pthread_mutex_lock(&s->instant_lock);
		for (i = 0; i < n; i++)
			all[i]->done = 1;	/* not touched again */
		s->instant_busy[slot] = 0;
		s->instant_leader--;
		pthread_cond_broadcast(&s->instant_done);
	}
	pthread_mutex_unlock(&s->instant_lock);
	wse_buf_free(&me.item);
	if (me.st != WSE_OK)
		return wse_err(me.st, "%s", me.err);
	*stored_r = me.stored;
	*sessions_r = me.sessions;
	return WSE_OK;
}
