/*
 * plugins.c - wsemaild's external plugins (lib/plugin.h, docs/plugins.md):
 * loading them from the configuration, the host interface they get, and
 * the two places the server calls them (ops.c): the message hook before a
 * delivery is stored, and the operations they add.
 *
 * SECURITY: a plugin is code running in the server with all of its
 * rights, as trusted as the configuration file that names it.  Only
 * absolute paths are loaded; RTLD_NOW makes an unresolved symbol fail at
 * start-up rather than in the middle of a request, RTLD_LOCAL keeps one
 * plugin's symbols from binding another's.  A plugin's ABI string must
 * match ours exactly before anything else of its descriptor is read.
 * What plugins are handed has passed the same checks the built-in
 * operations rely on (verified signature, authenticated user, checked
 * message); their operation names can never shadow a built-in one, and
 * their answers are checked and signed by the server.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "plugin.h"
#include "wsed.h"
#include "xml.h"

#ifndef WSED_VERSION
#define WSED_VERSION "unknown"
#endif

void wsed_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct wsed_plugin {
	struct wse_plugin_host host;	/* host.priv points back here */
	struct wsed *s;
	const struct wse_plugin *p;
	void *dl;
	void *state;
	char path[1024];
};

/*
 * Held requests (WSE_PLUGIN_OP_HOLD).  One lock (holds->lock) guards
 * every held record's state, references and the list.  References: the
 * plugin's (hold .. answer/release), the worker's (hold .. the end of
 * the call), the transport's (while its close callback is registered:
 * dropped by the callback, or by whoever unregisters it).  Only the
 * party that moves a record out of HELD_CALL or HELD_WAIT may touch its
 * transport request, so the request is answered exactly once.
 */
enum held_state {
	HELD_CALL,		/* call has not returned yet */
	HELD_EARLY,		/* answered during call: the worker sends it */
	HELD_WAIT,		/* waiting, no thread: armed on the transport */
	HELD_DONE,		/* answered, failed or cancelled */
};

struct wse_plugin_held {
	struct wsed_plugin *pl;
	wse_http_req *req;
	enum held_state state;
	int refs;
	char *msgid;			/* the request's, for RelatesTo */
	char op[WSE_PLUGIN_OP_MAX + 1];
	wse_status early_st;		/* HELD_EARLY: the answer */
	wse_buf *early;
	struct wse_plugin_held *prev, *next;
};

struct wsed_holds {
	pthread_mutex_t lock;
	struct wse_plugin_held *head;
	size_t n;			/* records in the list */
	size_t waiting;			/* of them HELD_WAIT */
};

/* One plugin call in progress: the request the plugin sees, and what
 * hold needs. */
struct call_ctx {
	struct wse_plugin_request r;	/* first: hold gets &r */
	struct wsed_plugin *pl;
	unsigned flags;
	const char *msgid;
	struct wsed_hold_ctx *hc;
	wse_plugin_held *held;
};

/* ---- the host interface ---- */

static void host_log(const struct wse_plugin_host *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
host_log(const struct wse_plugin_host *h, const char *fmt, ...)
{
	const struct wsed_plugin *pl = h->priv;
	char line[1024];
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One line each, whatever untrusted text went into it. */
	for (i = 0; line[i] != '\0'; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	wsed_log("plugin %s: %s", pl->p->name, line);
}

static wse_status
host_submit(const struct wse_plugin_host *h, wse_msg *m, unsigned flags,
    char *id_r)
{
	const struct wsed_plugin *pl = h->priv;
	struct wsed *s = pl->s;
	char when[21], id[WSE_UUID_URN_LEN + 1];
	wse_status st;

	if (!atomic_load(&s->plugins_serving))
		return wse_err(WSE_ERR_TEMPFAIL, "plugin %s: submit while the "
		    "server is not serving", pl->p->name);
	if (m == NULL || m->from == NULL || !wse_addr_valid(m->from))
		return wse_err(WSE_ERR_INVALID, "plugin %s: submit without a "
		    "valid From", pl->p->name);
	if (strcasecmp(wse_addr_domain(m->from), s->domain) != 0)
		return wse_err(WSE_ERR_NOT_AUTHORIZED, "plugin %s: %s is not "
		    "an address of %s", pl->p->name, m->from, s->domain);
	if (m->nto + m->ncc == 0)
		return wse_err(WSE_ERR_INVALID, "plugin %s: submit without "
		    "recipients", pl->p->name);
	if ((flags & ~WSE_PLUGIN_SUBMIT_NO_BOUNCE) != 0)
		return wse_err(WSE_ERR_INVALID, "plugin %s: unknown submit "
		    "flags 0x%x", pl->p->name, flags);
	wse_time_format(s->now(), when);
	if ((st = wse_msg_set(m, "date", when)) != WSE_OK ||
	    (st = wsed_submit(s, m, (flags & WSE_PLUGIN_SUBMIT_NO_BOUNCE) ?
	    WSE_MSG_REPORT : 0, NULL, 0, id)) != WSE_OK)
		return st;
	wsed_log("plugin %s: queued %s from %s to %zu recipient(s)",
	    pl->p->name, id, m->from, m->nto + m->ncc);
	if (id_r != NULL)
		memcpy(id_r, id, sizeof(id));
	return WSE_OK;
}

/* Drop n references (the lock held); free at zero.  Returns 1 when
 * freed. */
static int
held_unref_n_locked(struct wsed_holds *hs, wse_plugin_held *hd, int n)
{
	hd->refs -= n;
	if (hd->refs > 0)
		return 0;
	if (hd->prev != NULL)
		hd->prev->next = hd->next;
	else
		hs->head = hd->next;
	if (hd->next != NULL)
		hd->next->prev = hd->prev;
	hs->n--;
	free(hd->msgid);
	wse_buf_free(&hd->early);
	free(hd);
	return 1;
}

static int
held_unref_locked(struct wsed_holds *hs, wse_plugin_held *hd)
{
	return held_unref_n_locked(hs, hd, 1);
}

static void
held_unref(struct wsed_holds *hs, wse_plugin_held *hd)
{
	pthread_mutex_lock(&hs->lock);
	(void)held_unref_locked(hs, hd);
	pthread_mutex_unlock(&hs->lock);
}

/* The payload a plugin answered op with must be exactly one
 * <m:OpResponse>, as for built-ins. */
static wse_status
check_payload(struct wsed *s, const struct wsed_plugin *pl, const char *op,
    const wse_buf *resp)
{
	char want[WSE_PLUGIN_OP_MAX + 16];
	xmlDocPtr doc = NULL;
	xmlNodePtr root;
	wse_status st = WSE_OK;

	(void)snprintf(want, sizeof(want), "%sResponse", op);
	if (resp == NULL || wse_buf_len(resp) == 0 ||
	    wse_xml_parse(wse_buf_data(resp), wse_buf_len(resp), &s->lim,
	    &doc) != WSE_OK || (root = xmlDocGetRootElement(doc)) == NULL ||
	    !wse_xml_is(root, WSE_NS_WSE, want))
		st = wse_err(WSE_ERR_INTERNAL, "plugin %s answered %s with "
		    "something other than one m:%s element", pl->p->name, op,
		    want);
	xmlFreeDoc(doc);
	return st;
}

/* Sign and send the answer of a held request whose transport request
 * the caller owns now (it moved it out of HELD_WAIT). */
static void
held_send(struct wsed *s, wse_plugin_held *hd, wse_status st,
    const wse_buf *payload)
{
	wse_buf *out = wse_buf_new(s->lim.max_message_bytes * 4);
	int http = 500;

	if (out == NULL) {
		wse_http_reply(hd->req, 503, "text/plain", "busy\n", 5);
		return;
	}
	wse_err_clear();
	if (st == WSE_OK && check_payload(s, hd->pl, hd->op, payload) !=
	    WSE_OK)
		st = WSE_ERR_INTERNAL;
	wsed_answer(s, hd->op, hd->msgid, st, payload, out, &http);
	wse_http_reply(hd->req, http, "application/soap+xml; charset=utf-8",
	    wse_buf_data(out), wse_buf_len(out));
	wse_buf_free(&out);
	wse_err_clear();
}

static wse_status
host_hold(const struct wse_plugin_host *h, const struct wse_plugin_request *r,
    wse_plugin_held **held_r)
{
	struct wsed_plugin *pl = h->priv;
	struct wsed *s = pl->s;
	struct call_ctx *cc = (struct call_ctx *)(uintptr_t)r;
	wse_plugin_held *hd;

	*held_r = NULL;
	if (r == NULL || cc->pl != pl || !(cc->flags & WSE_PLUGIN_OP_HOLD) ||
	    cc->hc == NULL || cc->hc->req == NULL || cc->held != NULL ||
	    s->holds == NULL)
		return wse_err(WSE_ERR_UNSUPPORTED, "plugin %s: this %s request "
		    "cannot be held", pl->p->name, r ? r->op : "?");
	if (!atomic_load(&s->plugins_serving))
		return wse_err(WSE_ERR_TEMPFAIL, "the server is stopping");
	if ((hd = calloc(1, sizeof(*hd))) == NULL ||
	    (cc->msgid != NULL && (hd->msgid = strdup(cc->msgid)) == NULL)) {
		free(hd);
		return wse_err(WSE_ERR_NOMEM, "cannot hold a request");
	}
	hd->pl = pl;
	hd->req = cc->hc->req;
	hd->state = HELD_CALL;
	hd->refs = 2;			/* the plugin's and the worker's */
	(void)snprintf(hd->op, sizeof(hd->op), "%s", r->op);
	pthread_mutex_lock(&s->holds->lock);
	hd->next = s->holds->head;
	if (hd->next != NULL)
		hd->next->prev = hd;
	s->holds->head = hd;
	s->holds->n++;
	pthread_mutex_unlock(&s->holds->lock);
	cc->held = hd;
	*held_r = hd;
	return WSE_OK;
}

static wse_status
host_answer(const struct wse_plugin_host *h, wse_plugin_held *hd,
    wse_status st, const wse_buf *payload)
{
	struct wsed_plugin *pl = h->priv;
	struct wsed_holds *hs = pl->s->holds;
	int send = 0, found = 1, drop_transport = 0;

	if (hd == NULL)
		return wse_err(WSE_ERR_INVALID, "no held request");
	pthread_mutex_lock(&hs->lock);
	switch (hd->state) {
	case HELD_CALL:
		/* The worker is still in call: it sends this answer. */
		hd->early_st = st;
		if (st == WSE_OK && payload != NULL &&
		    ((hd->early = wse_buf_new(wse_buf_len(payload) + 1)) ==
		    NULL || wse_buf_put(hd->early, wse_buf_data(payload),
		    wse_buf_len(payload)) != WSE_OK))
			hd->early_st = WSE_ERR_NOMEM;
		hd->state = HELD_EARLY;
		break;
	case HELD_WAIT:
		hd->state = HELD_DONE;
		hs->waiting--;
		send = 1;
		break;
	default:
		found = 0;
		break;
	}
	pthread_mutex_unlock(&hs->lock);
	if (send) {
		/* Unregistered before the transport took the callback: its
		 * reference is ours to drop. */
		drop_transport = wse_http_req_on_close(hd->req, NULL, NULL);
		held_send(pl->s, hd, st, payload);
	}
	pthread_mutex_lock(&hs->lock);
	/* the plugin's reference, and the transport's if we took it */
	(void)held_unref_n_locked(hs, hd, drop_transport ? 2 : 1);
	pthread_mutex_unlock(&hs->lock);
	if (!found)
		return wse_err(WSE_ERR_NOT_FOUND, "the request was cancelled "
		    "or answered before");
	return WSE_OK;
}

static void
host_release(const struct wse_plugin_host *h, wse_plugin_held *hd)
{
	(void)host_answer(h, hd, WSE_ERR_TEMPFAIL, NULL);
	wse_err_clear();
}

/* The transport: a held request's connection went away (loop thread). */
static void
held_closed(void *arg)
{
	wse_plugin_held *hd = arg;
	struct wsed_plugin *pl = hd->pl;
	struct wsed_holds *hs = pl->s->holds;
	int cancel = 0;

	pthread_mutex_lock(&hs->lock);
	if (hd->state == HELD_WAIT) {
		hd->state = HELD_DONE;
		hs->waiting--;
		cancel = 1;
	}
	pthread_mutex_unlock(&hs->lock);
	if (cancel) {
		/* Frees the transport's request (its answer is dropped). */
		wse_http_reply(hd->req, 500, NULL, NULL, 0);
		if (pl->p->cancelled != NULL)
			pl->p->cancelled(pl->state, hd);
	}
	held_unref(hs, hd);		/* the transport's */
}

size_t
wsed_plugins_held(struct wsed *s)
{
	size_t n;

	if (s->holds == NULL)
		return 0;
	pthread_mutex_lock(&s->holds->lock);
	n = s->holds->waiting;
	pthread_mutex_unlock(&s->holds->lock);
	return n;
}

static wse_status
host_deliver_instant(const struct wse_plugin_host *h, const wse_msg *m,
    const char *rcpt, const char *origin, const char *origin_id,
    const uint8_t *original, size_t len, int *stored_r,
    unsigned *sessions_r)
{
	const struct wsed_plugin *pl = h->priv;
	struct wsed *s = pl->s;
	char norm[WSE_ADDR_MAX + 1];
	wse_user_rec rec;
	wse_status st;

	*stored_r = 0;
	*sessions_r = 0;
	if (!atomic_load(&s->plugins_serving))
		return wse_err(WSE_ERR_TEMPFAIL, "the server is not serving");
	if (m == NULL || !m->instant || rcpt == NULL || origin == NULL ||
	    origin_id == NULL || original == NULL || len == 0 ||
	    wse_addr_normalize(rcpt, norm, sizeof(norm)) != WSE_OK ||
	    strcmp(wse_addr_domain(norm), s->domain) != 0 ||
	    strcasecmp(wse_addr_domain(m->from), origin) != 0)
		return wse_err(WSE_ERR_INVALID, "plugin %s: deliver_instant: "
		    "not an instant message to a mailbox of %s from %s",
		    pl->p->name, s->domain, origin ? origin : "?");
	if ((st = wsed_instant_check(m)) != WSE_OK)
		return st;
	if (strcmp(m->to[0], norm) != 0)
		return wse_err(WSE_ERR_INVALID, "the message is not to %s",
		    norm);
	st = wse_store_user_get(s->store, norm, &rec, NULL);
	if (st == WSE_ERR_NOT_FOUND)
		return wse_err(WSE_ERR_NO_SUCH_USER, "no such mailbox %s",
		    norm);
	if (st != WSE_OK)
		return wse_err(WSE_ERR_TEMPFAIL, "user store unavailable");
	return wsed_instant_local(s, m, norm, origin, origin_id, original,
	    len, NULL, 0, stored_r, sessions_r);
}

static const struct wse_plugin *
host_plugin(const struct wse_plugin_host *h, size_t i)
{
	const struct wsed_plugin *pl = h->priv;

	return i < pl->s->nplugins ? pl->s->plugins[i].p : NULL;
}

/* ---- loading ---- */

static int
name_ok(const char *n)
{
	size_t i;

	for (i = 0; n[i] != '\0'; i++)
		if (i == WSE_PLUGIN_NAME_MAX || !((n[i] >= 'a' && n[i] <= 'z') ||
		    (n[i] >= '0' && n[i] <= '9') || n[i] == '_' || n[i] == '-'))
			return 0;
	return i > 0;
}

static int
op_name_ok(const char *n)
{
	size_t i;

	if (!((n[0] >= 'A' && n[0] <= 'Z') || (n[0] >= 'a' && n[0] <= 'z')))
		return 0;
	for (i = 1; n[i] != '\0'; i++)
		if (i == WSE_PLUGIN_OP_MAX || !((n[i] >= 'A' && n[i] <= 'Z') ||
		    (n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9')))
			return 0;
	return 1;
}

/* Who already serves op ("a built-in operation", "plugin NAME"), or NULL
 * when nobody does; the text is in buf. */
static const char *
op_owner(const struct wsed *s, const char *op, char *buf, size_t size)
{
	size_t i, k;

	for (i = 0; wsed_builtin_ops[i] != NULL; i++)
		if (strcmp(wsed_builtin_ops[i], op) == 0)
			return "a built-in operation";
	for (i = 0; i < s->nplugins; i++)
		for (k = 0; s->plugins[i].p->ops != NULL &&
		    s->plugins[i].p->ops[k] != NULL; k++)
			if (strcmp(s->plugins[i].p->ops[k], op) == 0) {
				(void)snprintf(buf, size, "plugin %s",
				    s->plugins[i].p->name);
				return buf;
			}
	return NULL;
}

/* Check the descriptor; 0 or 1 (printed).  Only abi is read before it is
 * known to match. */
static int
check_descriptor(const struct wsed *s, const struct wse_plugin *d,
    const char *where)
{
	const char *owner;
	char who[WSE_PLUGIN_NAME_MAX + 8];
	size_t k, j;

	if (d == NULL) {
		fprintf(stderr, "wsemaild: %s: " WSE_PLUGIN_ENTRY "() returned "
		    "NULL\n", where);
		return 1;
	}
	if (d->abi == NULL || strcmp(d->abi, WSE_PLUGIN_ABI) != 0) {
		fprintf(stderr, "wsemaild: %s: plugin ABI mismatch: it was "
		    "built for \"%.64s\", this server needs \"" WSE_PLUGIN_ABI
		    "\" (rebuild the plugin against this server's "
		    "lib/plugin.h)\n", where, d->abi ? d->abi : "(none)");
		return 1;
	}
	if (d->name == NULL || !name_ok(d->name)) {
		fprintf(stderr, "wsemaild: %s: bad plugin name (1 to %d of "
		    "a-z 0-9 _ -)\n", where, WSE_PLUGIN_NAME_MAX);
		return 1;
	}
	for (k = 0; d->ops != NULL && d->ops[k] != NULL; k++) {
		if (k == WSE_PLUGIN_OPS_MAX) {
			fprintf(stderr, "wsemaild: %s: plugin %s adds more than "
			    "%d operations\n", where, d->name,
			    WSE_PLUGIN_OPS_MAX);
			return 1;
		}
		if (!op_name_ok(d->ops[k])) {
			fprintf(stderr, "wsemaild: %s: plugin %s: bad operation "
			    "name \"%.80s\" (a letter, then letters and "
			    "digits, at most %d)\n", where, d->name, d->ops[k],
			    WSE_PLUGIN_OP_MAX);
			return 1;
		}
		for (j = 0; j < k; j++)
			if (strcmp(d->ops[j], d->ops[k]) == 0) {
				fprintf(stderr, "wsemaild: %s: plugin %s lists "
				    "operation %s twice\n", where, d->name,
				    d->ops[k]);
				return 1;
			}
		if (d->op_flags != NULL && (d->op_flags[k] &
		    WSE_PLUGIN_OP_HOLD) && d->cancelled == NULL) {
			fprintf(stderr, "wsemaild: %s: plugin %s: operation %s "
			    "may be held but the plugin has no cancelled "
			    "hook\n", where, d->name, d->ops[k]);
			return 1;
		}
		if (d->op_flags != NULL && (d->op_flags[k] &
		    ~(WSE_PLUGIN_OP_TOKEN | WSE_PLUGIN_OP_STREAM |
		    WSE_PLUGIN_OP_HOLD)) != 0) {
			fprintf(stderr, "wsemaild: %s: plugin %s: operation %s "
			    "has unknown flags 0x%x\n", where, d->name,
			    d->ops[k], d->op_flags[k]);
			return 1;
		}
		if ((owner = op_owner(s, d->ops[k], who, sizeof(who))) !=
		    NULL) {
			fprintf(stderr, "wsemaild: %s: plugin %s: operation %s "
			    "is already taken by %s\n", where, d->name,
			    d->ops[k], owner);
			return 1;
		}
	}
	if (k > 0 && d->call == NULL) {
		fprintf(stderr, "wsemaild: %s: plugin %s adds operations but "
		    "has no call handler\n", where, d->name);
		return 1;
	}
	return 0;
}

/* Load one "PATH [ARGS]" into pl; 0, or 1 (printed, pl left empty). */
static int
load_one(struct wsed *s, struct wsed_plugin *pl, const char *line,
    const char *cfg_path)
{
	wse_plugin_entry_fn entry;
	const struct wse_plugin *d;
	const char *args, *dlerr;
	char where[1200], errs[1024];
	char names[WSE_PLUGIN_OPS_MAX * (WSE_PLUGIN_OP_MAX + 1) + 1];
	size_t plen, k;
	void *sym;
	wse_status st;

	memset(pl, 0, sizeof(*pl));
	plen = strcspn(line, " \t");
	args = line + plen;
	args += strspn(args, " \t");
	if (plen == 0 || line[0] != '/' || plen >= sizeof(pl->path)) {
		fprintf(stderr, "wsemaild: %s: bad plugin line \"%.200s\" "
		    "(an absolute path to a shared object, then its "
		    "arguments)\n", cfg_path, line);
		return 1;
	}
	memcpy(pl->path, line, plen);
	pl->path[plen] = '\0';
	(void)snprintf(where, sizeof(where), "%s: plugin %s", cfg_path,
	    pl->path);
	(void)dlerror();
	if ((pl->dl = dlopen(pl->path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		dlerr = dlerror();
		fprintf(stderr, "wsemaild: %s: cannot load: %s\n", where,
		    dlerr ? dlerr : "unknown error");
		goto fail;
	}
	if ((sym = dlsym(pl->dl, WSE_PLUGIN_ENTRY)) == NULL) {
		fprintf(stderr, "wsemaild: %s: no " WSE_PLUGIN_ENTRY "() (not "
		    "a wsemail plugin?)\n", where);
		goto fail;
	}
	memcpy(&entry, &sym, sizeof(entry));
	d = entry();
	if (check_descriptor(s, d, where) != 0)
		goto fail;
	pl->p = d;
	pl->s = s;
	pl->host.domain = s->domain;
	pl->host.version = "wsemaild " WSED_VERSION;
	pl->host.url = s->url;
	pl->host.limits = &s->lim;
	pl->host.store = s->store;
	pl->host.now = s->now;
	pl->host.log = host_log;
	pl->host.submit = host_submit;
	pl->host.plugin = host_plugin;
	pl->host.priv = pl;
	pl->host.hold = host_hold;
	pl->host.answer = host_answer;
	pl->host.release = host_release;
	pl->host.deliver_instant = host_deliver_instant;
	wse_err_clear();
	if (d->init != NULL &&
	    (st = d->init(&pl->host, args, &pl->state)) != WSE_OK) {
		fprintf(stderr, "wsemaild: %s: %s failed to start (%s): %s\n",
		    where, d->name, wse_status_name(st),
		    wse_err_format(errs, sizeof(errs)));
		wse_err_clear();
		goto fail;
	}
	names[0] = '\0';
	for (k = 0; d->ops != NULL && d->ops[k] != NULL; k++)
		(void)snprintf(names + strlen(names), sizeof(names) -
		    strlen(names), "%s%s", k ? " " : "", d->ops[k]);
	wsed_log("plugin %s loaded from %s (%s, %s; operations: %s)",
	    d->name, pl->path, d->message ? "message hook" :
	    "no message hook", d->submit ? "submit hook" : "no submit hook",
	    k ? names : "none");
	return 0;
fail:
	if (pl->dl != NULL)
		dlclose(pl->dl);
	memset(pl, 0, sizeof(*pl));
	return 1;
}

int
wsed_plugins_load(struct wsed *s, const wse_config *cfg, const char *cfg_path)
{
	size_t n = wse_config_count(cfg, "", "plugin"), i;

	if (n == 0)
		return 0;
	if (n > WSED_PLUGINS_MAX) {
		fprintf(stderr, "wsemaild: %s: more than %d plugins\n",
		    cfg_path, WSED_PLUGINS_MAX);
		return 1;
	}
	if ((s->holds = calloc(1, sizeof(*s->holds))) == NULL ||
	    pthread_mutex_init(&s->holds->lock, NULL) != 0) {
		free(s->holds);
		s->holds = NULL;
		fprintf(stderr, "wsemaild: out of memory\n");
		return 1;
	}
	/* Allocated once: every host.priv points into this array. */
	if ((s->plugins = calloc(n, sizeof(*s->plugins))) == NULL) {
		fprintf(stderr, "wsemaild: out of memory\n");
		return 1;
	}
	for (i = 0; i < n; i++) {
		if (load_one(s, &s->plugins[s->nplugins],
		    wse_config_get_nth(cfg, "", "plugin", i), cfg_path) != 0)
			return 1;
		s->nplugins++;
	}
	return 0;
}

void
wsed_plugins_start(struct wsed *s)
{
	atomic_store(&s->plugins_serving, 1);
}

void
wsed_plugins_unload(struct wsed *s)
{
	struct wsed_plugin *pl;

	atomic_store(&s->plugins_serving, 0);
	/* Requests still held (the transport was not freed first): their
	 * plugins are told before they go. */
	while (s->holds != NULL) {
		wse_plugin_held *hd;

		pthread_mutex_lock(&s->holds->lock);
		for (hd = s->holds->head; hd != NULL; hd = hd->next)
			if (hd->state == HELD_WAIT)
				break;
		if (hd != NULL) {
			hd->state = HELD_DONE;
			s->holds->waiting--;
			hd->refs++;
		}
		pthread_mutex_unlock(&s->holds->lock);
		if (hd == NULL)
			break;
		if (wse_http_req_on_close(hd->req, NULL, NULL))
			held_unref(s->holds, hd);	/* the transport's */
		wse_http_reply(hd->req, 500, NULL, NULL, 0);
		if (hd->pl->p->cancelled != NULL)
			hd->pl->p->cancelled(hd->pl->state, hd);
		held_unref(s->holds, hd);
	}
	while (s->nplugins > 0) {
		pl = &s->plugins[--s->nplugins];
		if (pl->p->deinit != NULL)
			pl->p->deinit(pl->state);
		wsed_log("plugin %s unloaded", pl->p->name);
		dlclose(pl->dl);
		memset(pl, 0, sizeof(*pl));
	}
	free(s->plugins);
	s->plugins = NULL;
	if (s->holds != NULL) {
		/* What a plugin never released is the plugin's leak; the
		 * records go with the server. */
		while (s->holds->head != NULL) {
			wse_plugin_held *hd = s->holds->head;

			s->holds->head = hd->next;
			free(hd->msgid);
			wse_buf_free(&hd->early);
			free(hd);
		}
		pthread_mutex_destroy(&s->holds->lock);
		free(s->holds);
		s->holds = NULL;
	}
}

/* ---- calls ---- */

static wse_status
deliver(struct wsed *s, const wse_msg *m, const char *origin,
    const char *origin_id, const uint8_t *original, size_t len,
    const char **rcpts, size_t *n, unsigned flags, int *refused_r,
    unsigned *sessions_r)
{
	struct wse_plugin_delivery d;
	int consumed[WSE_MSG_MAX_RCPTS];
	unsigned sessions[WSE_MSG_MAX_RCPTS];
	char errs[1024];
	size_t i, k, p;
	wse_status st;

	*refused_r = 0;
	*sessions_r = 0;
	memset(&d, 0, sizeof(d));
	d.flags = flags;
	d.sessions_r = sessions;
	d.msg = m;
	d.origin = origin;
	d.origin_id = origin_id;
	d.original = original;
	d.original_len = len;
	if (strncmp(m->from, "mailer-daemon@", 14) == 0)
		d.flags |= WSE_PLUGIN_MSG_REPORT;
	if (strcasecmp(origin, s->domain) == 0)
		d.flags |= WSE_PLUGIN_MSG_LOCAL;
	for (p = 0; p < s->nplugins && *n > 0; p++) {
		const struct wsed_plugin *pl = &s->plugins[p];

		if (pl->p->message == NULL)
			continue;
		if (*n > WSE_MSG_MAX_RCPTS)
			return wse_err(WSE_ERR_INTERNAL, "too many recipients");
		d.rcpts = rcpts;
		d.nrcpts = *n;
		memset(consumed, 0, sizeof(consumed));
		memset(sessions, 0, sizeof(sessions));
		wse_err_clear();
		st = pl->p->message(pl->state, &d, consumed);
		if (st == WSE_ERR_TEMPFAIL)
			return wse_err(WSE_ERR_TEMPFAIL, "plugin %s cannot take "
			    "%s from %s now", pl->p->name, origin_id, origin);
		if (st != WSE_OK) {
			wsed_log("plugin %s failed on %s from %s (%s: %s); "
			    "delivered as usual", pl->p->name, origin_id, origin,
			    wse_status_name(st), wse_err_format(errs,
			    sizeof(errs)));
			wse_err_clear();
			continue;
		}
		for (i = k = 0; i < *n; i++) {
			if (consumed[i] == WSE_PLUGIN_REFUSE) {
				wsed_log("plugin %s refused %s from %s (%s) for "
				    "%s", pl->p->name, origin_id, origin,
				    m->from, rcpts[i]);
				*refused_r = 1;
			} else if (consumed[i]) {
				wsed_log("plugin %s took %s from %s for %s%s",
				    pl->p->name, origin_id, origin, rcpts[i],
				    sessions[i] ? " (pushed)" : "");
				*sessions_r += sessions[i];
			} else
				rcpts[k++] = rcpts[i];
		}
		*n = k;
	}
	wse_err_clear();
	return WSE_OK;
}

wse_status
wsed_plugins_deliver(struct wsed *s, const wse_msg *m, const char *origin,
    const char *origin_id, const uint8_t *original, size_t len,
    const char **rcpts, size_t *n)
{
	int refused;
	unsigned sessions;

	return deliver(s, m, origin, origin_id, original, len, rcpts, n, 0,
	    &refused, &sessions);
}

wse_status
wsed_plugins_deliver_instant(struct wsed *s, const wse_msg *m,
    const char *origin, const char *origin_id, const uint8_t *original,
    size_t len, const char **rcpts, size_t *n, int *refused_r,
    unsigned *sessions_r)
{
	return deliver(s, m, origin, origin_id, original, len, rcpts, n,
	    WSE_PLUGIN_MSG_INSTANT, refused_r, sessions_r);
}

static const struct wsed_plugin *
find_op(const struct wsed *s, const char *op, unsigned *flags_r)
{
	size_t i, k;

	for (i = 0; i < s->nplugins; i++)
		for (k = 0; s->plugins[i].p->ops != NULL &&
		    s->plugins[i].p->ops[k] != NULL; k++)
			if (strcmp(s->plugins[i].p->ops[k], op) == 0) {
				if (flags_r != NULL)
					*flags_r = s->plugins[i].p->op_flags ?
					    s->plugins[i].p->op_flags[k] : 0;
				return &s->plugins[i];
			}
	return NULL;
}

unsigned
wsed_plugins_op_flags(const struct wsed *s, const char *op)
{
	unsigned f = 0;

	return find_op(s, op, &f) != NULL ? f : 0;
}

wse_status
wsed_plugins_submit(struct wsed *s, const char *user, const char *id,
    wse_msg *m)
{
	char errs[1024];
	wse_status st;
	size_t i;

	for (i = 0; i < s->nplugins; i++) {
		const struct wsed_plugin *pl = &s->plugins[i];

		if (pl->p->submit == NULL)
			continue;
		if ((st = pl->p->submit(pl->state, user, id, m)) != WSE_OK) {
			wsed_log("plugin %s refused submission %s: %s",
			    pl->p->name, id, wse_err_format(errs,
			    sizeof(errs)));
			if (wse_err_count() == 0)
				(void)wse_err(st, "plugin %s refused the "
				    "message", pl->p->name);
			return st;
		}
	}
	if (wse_msg_unresolved(m) > 0)
		return wse_err(WSE_ERR_INVALID, "on-demand attachments are "
		    "not served here, or the upload is unknown");
	return WSE_OK;
}

int
wsed_plugins_submit_hooked(const struct wsed *s)
{
	size_t i;

	for (i = 0; i < s->nplugins; i++)
		if (s->plugins[i].p->submit != NULL)
			return 1;
	return 0;
}

int
wsed_plugins_message_hooked(const struct wsed *s)
{
	size_t i;

	for (i = 0; i < s->nplugins; i++)
		if (s->plugins[i].p->message != NULL)
			return 1;
	return 0;
}

int
wsed_plugins_has_op(const struct wsed *s, const char *op)
{
	return find_op(s, op, NULL) != NULL;
}

const char *
wsed_plugins_op(const struct wsed *s, size_t i)
{
	size_t p, k;

	for (p = 0; p < s->nplugins; p++)
		for (k = 0; s->plugins[p].p->ops != NULL &&
		    s->plugins[p].p->ops[k] != NULL; k++)
			if (i-- == 0)
				return s->plugins[p].p->ops[k];
	return NULL;
}

wse_status
wsed_plugins_call(struct wsed *s, const char *op, const wse_verified *v,
    wse_buf *resp, struct wse_plugin_stream *stream)
{
	return wsed_plugins_call_held(s, op, v, NULL, 0, resp, stream, NULL);
}

/* After call held the request: arm it on the transport, or take the
 * answer the plugin gave during call.  *st is call's status, updated. */
static void
held_after_call(struct wsed *s, struct call_ctx *cc, wse_status *st,
    wse_buf *resp)
{
	struct wsed_holds *hs = s->holds;
	wse_plugin_held *hd = cc->held;
	int cancel = 0;

	pthread_mutex_lock(&hs->lock);
	switch (hd->state) {
	case HELD_CALL:
		if (*st != WSE_OK) {
			/* Failed after all: the worker sends the Fault. */
			hd->state = HELD_DONE;
			break;
		}
		wse_buf_reset(resp);
		hd->refs++;		/* the transport's */
		if (wse_http_req_on_close(hd->req, held_closed, hd)) {
			hd->state = HELD_WAIT;
			hs->waiting++;
			cc->hc->held = 1;
		} else {
			/* The client is gone already. */
			hd->refs--;
			hd->state = HELD_DONE;
			cancel = 1;
			*st = wse_err(WSE_ERR_TEMPFAIL, "client gone");
		}
		break;
	case HELD_EARLY:
		hd->state = HELD_DONE;
		*st = hd->early_st;
		wse_buf_reset(resp);
		if (*st == WSE_OK && (hd->early == NULL ||
		    wse_buf_put(resp, wse_buf_data(hd->early),
		    wse_buf_len(hd->early)) != WSE_OK))
			*st = wse_err(WSE_ERR_INTERNAL, "held answer lost");
		else if (*st != WSE_OK)
			(void)wse_err(*st, "plugin %s: %s failed",
			    cc->pl->p->name, cc->r.op);
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&hs->lock);
	if (cancel && cc->pl->p->cancelled != NULL)
		cc->pl->p->cancelled(cc->pl->state, hd);
	held_unref(hs, hd);		/* the worker's */
	cc->held = NULL;
}

wse_status
wsed_plugins_call_held(struct wsed *s, const char *op, const wse_verified *v,
    const uint8_t *original, size_t len, wse_buf *resp,
    struct wse_plugin_stream *stream, struct wsed_hold_ctx *hc)
{
	unsigned flags = 0;
	const struct wsed_plugin *pl = find_op(s, op, &flags);
	struct call_ctx cc;
	wse_status st;

	if (pl == NULL)
		return wse_err(WSE_ERR_UNSUPPORTED, "unknown operation %.64s",
		    op);
	memset(&cc, 0, sizeof(cc));
	cc.r.op = op;
	cc.r.auth = v->profile == WSE_PROFILE_PASSWORD ?
	    WSE_PLUGIN_AUTH_PASSWORD : WSE_PLUGIN_AUTH_TOKEN;
	cc.r.user = cc.r.auth == WSE_PLUGIN_AUTH_PASSWORD ? v->user :
	    v->signer_mailbox;
	cc.r.message_id = v->message_id_s;
	cc.r.body = v->body;
	cc.r.now = s->now();
	cc.r.original = original;
	cc.r.original_len = len;
	cc.pl = (struct wsed_plugin *)(uintptr_t)pl;
	cc.flags = flags;
	cc.msgid = v->message_id_s;
	cc.hc = hc;
	if (hc != NULL)
		hc->held = 0;
	if (cc.r.user == NULL || cc.r.body == NULL ||
	    (cc.r.auth == WSE_PLUGIN_AUTH_TOKEN) != ((flags &
	    WSE_PLUGIN_OP_TOKEN) != 0))
		return wse_err(WSE_ERR_INTERNAL, "%s: not verified", op);
	if (stream != NULL) {
		memset(stream, 0, sizeof(*stream));
		stream->fd = -1;
	}
	wse_buf_reset(resp);
	st = pl->p->call(pl->state, &cc.r, resp,
	    (flags & WSE_PLUGIN_OP_STREAM) ? stream : NULL);
	if (cc.held != NULL) {
		held_after_call(s, &cc, &st, resp);
		if (hc != NULL && hc->held)
			return WSE_OK;
		if (st != WSE_OK)
			return st;
		return check_payload(s, pl, op, resp);
	}
	if (st != WSE_OK && stream != NULL && stream->fd >= 0) {
		(void)close(stream->fd);
		stream->fd = -1;
	}
	if (st != WSE_OK) {
		if (wse_err_count() == 0)
			(void)wse_err(st, "plugin %s: %s failed", pl->p->name,
			    op);
		return st;
	}
	if (stream != NULL && stream->fd >= 0) {
		off_t end = lseek(stream->fd, 0, SEEK_END);

		if (end < 0 || stream->offset > (uint64_t)end ||
		    stream->length > (uint64_t)end - stream->offset) {
			(void)close(stream->fd);
			stream->fd = -1;
			return wse_err(WSE_ERR_INTERNAL, "plugin %s: %s: "
			    "stream range beyond the file", pl->p->name, op);
		}
		return WSE_OK;
	}
	return check_payload(s, pl, op, resp);
}
