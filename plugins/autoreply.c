/*
 * autoreply.c - a message-dependent plugin: "I am away" answers.
 *
 *   plugin = /usr/lib/wsemail/plugins/autoreply.so bob@a.test=On holiday
 *            until Monday; carol@a.test=Back on the 3rd
 *
 * (one line) - entries ADDRESS=TEXT separated by ';', each ADDRESS a
 * mailbox of this domain, TEXT the reply's body (no ';').  For each
 * listed recipient of a delivered message the plugin queues one reply
 * from that recipient to the sender, with the subject "Auto: " + the
 * original subject, through host->submit (so it is signed, queued
 * durably and delivered like any mail).  It never consumes: the message
 * is stored as usual.
 *
 * At most one reply per (recipient, sender) in 24 hours, remembered in
 * memory (a restart forgets, so at worst one more reply; when the table
 * is full of fresh entries, no reply rather than a second one).
 *
 * No loops, no noise (after RFC 3834): no reply to a non-delivery report
 * (WSE_PLUGIN_MSG_REPORT, mailer-daemon@...), to a subject starting with
 * "Auto:" (what auto-replies - ours included - carry), or to oneself;
 * replies are queued with WSE_PLUGIN_SUBMIT_NO_BOUNCE, so an undeliverable
 * reply is dropped instead of producing a report.
 *
 * Threads: the hook runs concurrently on worker threads; the table of
 * sent replies is under one mutex, never held across host->submit.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "plugin.h"

#define WINDOW 86400		/* one reply per sender per this long */
#define SEEN_MAX 4096		/* remembered (recipient, sender) pairs */
#define RULES_MAX 64
#define PREFIX "Auto: "

struct rule {
	char addr[WSE_ADDR_MAX + 1];
	char *text;
};

struct seen {
	char rcpt[WSE_ADDR_MAX + 1];
	char sender[WSE_ADDR_MAX + 1];
	int64_t when;
};

struct autoreply {
	const struct wse_plugin_host *host;
	struct rule rules[RULES_MAX];
	size_t nrules;
	pthread_mutex_t lock;
	struct seen *seen;		/* [SEEN_MAX] */
	size_t nseen;
};

static void
ar_free(struct autoreply *a)
{
	size_t i;

	if (a == NULL)
		return;
	for (i = 0; i < a->nrules; i++)
		free(a->rules[i].text);
	free(a->seen);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/* Trim blanks at both ends of [*s, *s + *len). */
static void
trim(const char **s, size_t *len)
{
	while (*len > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
		(*len)--;
}

/* One "ADDRESS=TEXT" entry of len bytes. */
static wse_status
add_rule(struct autoreply *a, const char *e, size_t len)
{
	const char *eq = memchr(e, '=', len), *t;
	char addr[WSE_ADDR_MAX + 1], norm[WSE_ADDR_MAX + 1];
	size_t alen, tlen, i;
	struct rule *r;

	if (eq == NULL)
		return wse_err(WSE_ERR_CONFIG, "autoreply: \"%.*s\" is not "
		    "ADDRESS=TEXT", (int)(len > 80 ? 80 : len), e);
	alen = (size_t)(eq - e);
	t = eq + 1;
	tlen = len - alen - 1;
	trim(&e, &alen);
	trim(&t, &tlen);
	if (alen == 0 || alen > WSE_ADDR_MAX || tlen == 0)
		return wse_err(WSE_ERR_CONFIG, "autoreply: \"%.*s\" needs an "
		    "address and a text", (int)(len > 80 ? 80 : len), e);
	memcpy(addr, e, alen);
	addr[alen] = '\0';
	if (wse_addr_normalize(addr, norm, sizeof(norm)) != WSE_OK)
		return wse_err(WSE_ERR_CONFIG, "autoreply: bad address %s",
		    addr);
	if (strcasecmp(wse_addr_domain(norm), a->host->domain) != 0)
		return wse_err(WSE_ERR_CONFIG, "autoreply: %s is not an "
		    "address of %s", norm, a->host->domain);
	for (i = 0; i < a->nrules; i++)
		if (strcmp(a->rules[i].addr, norm) == 0)
			return wse_err(WSE_ERR_CONFIG, "autoreply: %s is listed "
			    "twice", norm);
	if (a->nrules == RULES_MAX)
		return wse_err(WSE_ERR_CONFIG, "autoreply: more than %d "
		    "addresses", RULES_MAX);
	r = &a->rules[a->nrules];
	if ((r->text = strndup(t, tlen)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "autoreply: out of memory");
	memcpy(r->addr, norm, sizeof(norm));
	a->nrules++;
	return WSE_OK;
}

static wse_status
ar_init(const struct wse_plugin_host *host, const char *args, void **state_r)
{
	struct autoreply *a;
	const char *p, *semi;
	wse_status st;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "autoreply: out of memory");
	a->host = host;
	if (pthread_mutex_init(&a->lock, NULL) != 0) {
		free(a);
		return wse_err(WSE_ERR_INTERNAL, "autoreply: no mutex");
	}
	if ((a->seen = calloc(SEEN_MAX, sizeof(*a->seen))) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "autoreply: out of memory");
		goto fail;
	}
	for (p = args;; p = semi + 1) {
		const char *e = p;
		size_t len;

		semi = p + strcspn(p, ";");
		len = (size_t)(semi - p);
		trim(&e, &len);
		if (len > 0 && (st = add_rule(a, e, len)) != WSE_OK)
			goto fail;
		if (*semi == '\0')
			break;
	}
	if (a->nrules == 0) {
		st = wse_err(WSE_ERR_CONFIG, "autoreply: no ADDRESS=TEXT "
		    "given");
		goto fail;
	}
	host->log(host, "answering for %zu address(es)", a->nrules);
	*state_r = a;
	return WSE_OK;
fail:
	ar_free(a);
	return st;
}

static void
ar_deinit(void *state)
{
	ar_free(state);
}

/*
 * Claim the right to answer sender for rcpt now: 1 when no reply went in
 * the last WINDOW seconds (the claim is recorded), else 0.
 */
static int
claim(struct autoreply *a, const char *rcpt, const char *sender, int64_t now)
{
	struct seen *free_slot = NULL, *e;
	size_t i;
	int ok = 0;

	pthread_mutex_lock(&a->lock);
	for (i = 0; i < a->nseen; i++) {
		e = &a->seen[i];
		if (strcmp(e->rcpt, rcpt) == 0 &&
		    strcmp(e->sender, sender) == 0) {
			if (now - e->when >= WINDOW) {
				e->when = now;
				ok = 1;
			}
			goto out;
		}
		if (free_slot == NULL && now - e->when >= WINDOW)
			free_slot = e;		/* expired: reusable */
	}
	if (free_slot == NULL && a->nseen < SEEN_MAX)
		free_slot = &a->seen[a->nseen++];
	if (free_slot == NULL)
		goto out;			/* full of fresh entries */
	memcpy(free_slot->rcpt, rcpt, strlen(rcpt) + 1);
	memcpy(free_slot->sender, sender, strlen(sender) + 1);
	free_slot->when = now;
	ok = 1;
out:
	pthread_mutex_unlock(&a->lock);
	return ok;
}

/* The reply could not be queued: let a later message try again. */
static void
unclaim(struct autoreply *a, const char *rcpt, const char *sender)
{
	size_t i;

	pthread_mutex_lock(&a->lock);
	for (i = 0; i < a->nseen; i++)
		if (strcmp(a->seen[i].rcpt, rcpt) == 0 &&
		    strcmp(a->seen[i].sender, sender) == 0)
			a->seen[i].when = INT64_MIN / 2;
	pthread_mutex_unlock(&a->lock);
}

static int
is_auto(const char *subject)
{
	if (subject == NULL)
		return 0;
	subject += strspn(subject, " \t");
	return strncasecmp(subject, "Auto:", 5) == 0;
}

/* "Auto: " + subject, cut to the limit on a UTF-8 character boundary. */
static void
reply_subject(const char *subject, char *out, size_t size)
{
	size_t max = WSE_MSG_SUBJECT_MAX < size - 1 ? WSE_MSG_SUBJECT_MAX :
	    size - 1, n;

	if (subject == NULL || *subject == '\0')
		subject = "(no subject)";
	n = strlen(PREFIX) + strlen(subject);
	if (n > max) {
		n = max;
		/* do not end inside a multi-byte character */
		while (n > strlen(PREFIX) &&
		    ((unsigned char)subject[n - strlen(PREFIX)] & 0xc0) == 0x80)
			n--;
	}
	memcpy(out, PREFIX, strlen(PREFIX));
	memcpy(out + strlen(PREFIX), subject, n - strlen(PREFIX));
	out[n] = '\0';
}

static wse_status
send_reply(struct autoreply *a, const struct rule *r, const wse_msg *orig)
{
	char subject[WSE_MSG_SUBJECT_MAX + 1], id[WSE_UUID_URN_LEN + 1];
	wse_msg *m = NULL;
	wse_status st;

	reply_subject(orig->subject, subject, sizeof(subject));
	if ((st = wse_msg_new(&m)) != WSE_OK ||
	    (st = wse_msg_set(m, "from", r->addr)) != WSE_OK ||
	    (st = wse_msg_add_rcpt(m, orig->from, 0)) != WSE_OK ||
	    (st = wse_msg_set(m, "subject", subject)) != WSE_OK ||
	    (st = wse_msg_set(m, "text", r->text)) != WSE_OK ||
	    (st = a->host->submit(a->host, m, WSE_PLUGIN_SUBMIT_NO_BOUNCE,
	    id)) != WSE_OK)
		goto out;
	a->host->log(a->host, "replied %s to %s for %s", id, orig->from,
	    r->addr);
out:
	wse_msg_free(&m);
	return st;
}

static wse_status
ar_message(void *state, const struct wse_plugin_delivery *d, int *consumed_r)
{
	struct autoreply *a = state;
	const wse_msg *m = d->msg;
	size_t i, k;
	int64_t now;

	(void)consumed_r;		/* never consumes */
	if ((d->flags & WSE_PLUGIN_MSG_REPORT) != 0 || is_auto(m->subject) ||
	    strncmp(m->from, "mailer-daemon@", 14) == 0)
		return WSE_OK;
	now = a->host->now();
	for (i = 0; i < d->nrcpts; i++) {
		for (k = 0; k < a->nrules; k++)
			if (strcmp(a->rules[k].addr, d->rcpts[i]) == 0)
				break;
		if (k == a->nrules || strcmp(m->from, d->rcpts[i]) == 0 ||
		    !claim(a, d->rcpts[i], m->from, now))
			continue;
		/* A reply that cannot be queued is no reason to hold the
		 * message up: log it and let a later message try again. */
		if (send_reply(a, &a->rules[k], m) != WSE_OK) {
			a->host->log(a->host, "cannot reply to %s for %s: %s",
			    m->from, d->rcpts[i], wse_err_last());
			unclaim(a, d->rcpts[i], m->from);
		}
	}
	return WSE_OK;
}

static const struct wse_plugin autoreply_plugin = {
	.abi = WSE_PLUGIN_ABI,
	.name = "autoreply",
	.init = ar_init,
	.deinit = ar_deinit,
	.message = ar_message,
};

WSE_PLUGIN_EXPORT const struct wse_plugin *
wse_plugin_entry(void)
{
	return &autoreply_plugin;
}
