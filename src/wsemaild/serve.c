/*
 * serve.c - the HTTP side of wsemaild: POST requests from the transport's
 * event loop (lib/http.c) go to a pool of worker threads, which run
 * ops.c on them and answer.  A request a plugin holds (WSE_PLUGIN_OP_HOLD,
 * plugins.c) leaves its worker at once: it is answered later, from
 * whatever thread the plugin answers on, and holds no thread meanwhile.
 *
 * Idle workers wait on a stack, each on its own condition: a new request
 * wakes the one that went idle last, so under light load the same few
 * threads (their stacks, malloc caches and libxml2 state warm) serve
 * everything instead of all of them in turn.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wsed.h"

struct work {
	struct work *next;
	wse_http_req *req;
};

/* An idle worker, on its own stack. */
struct idle {
	pthread_cond_t cond;
	int woken;			/* popped by wsed_serve_post */
	struct idle *next;
};

struct wsed_serve {
	struct wsed *s;
	pthread_mutex_t lock;
	struct idle *idle;		/* last idle first */
	struct work *head, **tail;
	int stop;
	int nthreads;
	pthread_t threads[WSED_THREADS_MAX];
};

/*
 * The SOAP 1.2 HTTP binding: application/soap+xml (parameters such as
 * charset or action allowed), POSTed to the endpoint.  The endpoint is
 * /wsemail, where servers deliver (outbound.c), or the path of this
 * server's configured url, where its clients post.
 */
static int
soap_type(const char *ct)
{
	static const char want[] = "application/soap+xml";
	size_t n = sizeof(want) - 1;

	if (ct == NULL || strncasecmp(ct, want, n) != 0)
		return 0;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

static int
endpoint(const struct wsed *s, const char *path)
{
	const char *p = strstr(s->url, "://");

	if (path == NULL)
		return 0;
	if (strcmp(path, "/wsemail") == 0)
		return 1;
	if (p == NULL || (p = strchr(p + 3, '/')) == NULL)
		p = "/";
	return strcmp(path, p) == 0;
}

void
wsed_serve_post(struct wsed_serve *sv, wse_http_req *req)
{
	static const char wrong_type[] = "unsupported media type: "
	    "application/soap+xml expected\n";
	struct work *w;

	if (!soap_type(wse_http_req_content_type(req))) {
		wse_http_reply(req, 415, "text/plain", wrong_type,
		    sizeof(wrong_type) - 1);
		return;
	}
	if (!endpoint(sv->s, wse_http_req_path(req))) {
		wse_http_reply(req, 404, "text/plain", "not found\n", 10);
		return;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		wse_http_reply(req, 503, "text/plain", "busy\n", 5);
		return;
	}
	w->req = req;
	pthread_mutex_lock(&sv->lock);
	*sv->tail = w;
	sv->tail = &w->next;
	if (sv->idle != NULL) {
		struct idle *i = sv->idle;

		sv->idle = i->next;
		i->woken = 1;
		pthread_cond_signal(&i->cond);
	}
	pthread_mutex_unlock(&sv->lock);
}

static void *
worker_main(void *arg)
{
	struct wsed_serve *sv = arg;
	struct wsed *s = sv->s;
	wse_buf *out = wse_buf_new(s->lim.max_message_bytes * 4);
	struct idle me, **pp;

	memset(&me, 0, sizeof(me));
	pthread_cond_init(&me.cond, NULL);
	(void)pthread_setname_np(pthread_self(), "wsed-worker");

	for (;;) {
		struct work *w;
		const uint8_t *body;
		size_t len, npeer;
		wse_cert *const *peer;
		struct wse_plugin_stream fs;
		struct wsed_hold_ctx hc;
		int status;

		pthread_mutex_lock(&sv->lock);
		while (sv->head == NULL && !sv->stop) {
			me.woken = 0;
			me.next = sv->idle;
			sv->idle = &me;
			while (!me.woken && !sv->stop)
				pthread_cond_wait(&me.cond, &sv->lock);
			if (!me.woken)		/* stopping: off the stack */
				for (pp = &sv->idle; *pp != NULL;
				    pp = &(*pp)->next)
					if (*pp == &me) {
						*pp = me.next;
						break;
					}
		}
		if (sv->head == NULL) {
			pthread_mutex_unlock(&sv->lock);
			break;
		}
		w = sv->head;
		if ((sv->head = w->next) == NULL)
			sv->tail = &sv->head;
		pthread_mutex_unlock(&sv->lock);
		if (out == NULL) {
			wse_http_reply(w->req, 503, "text/plain", "busy\n", 5);
			free(w);
			continue;
		}
		body = wse_http_req_body(w->req, &len);
		peer = wse_http_req_peer_chain(w->req, &npeer);
		memset(&hc, 0, sizeof(hc));
		hc.req = w->req;
		wse_buf_reset(out);
		wsed_handle_held(s, body, len, peer, npeer,
		    wse_http_req_peer_addr(w->req), out, &status, &fs, &hc);
		if (hc.held)
			;	/* a plugin answers it later */
		else if (fs.fd >= 0)
			wse_http_reply_file(w->req, fs.fd, fs.offset, fs.length,
			    fs.total);
		else
			wse_http_reply(w->req, status,
			    "application/soap+xml; charset=utf-8",
			    wse_buf_data(out), wse_buf_len(out));
		free(w);
	}
	wse_buf_free(&out);
	pthread_cond_destroy(&me.cond);
	return NULL;
}

int
wsed_serve_start(struct wsed *s, int threads, struct wsed_serve **sv_r)
{
	struct wsed_serve *sv;
	int i;

	*sv_r = NULL;
	if (threads < 1 || threads > WSED_THREADS_MAX ||
	    (sv = calloc(1, sizeof(*sv))) == NULL)
		return -1;
	sv->s = s;
	sv->tail = &sv->head;
	pthread_mutex_init(&sv->lock, NULL);
	for (i = 0; i < threads; i++) {
		if (pthread_create(&sv->threads[i], NULL, worker_main, sv) !=
		    0)
			break;
		sv->nthreads++;
	}
	*sv_r = sv;
	if (sv->nthreads < threads) {
		wsed_serve_stop(sv_r);
		return -1;
	}
	return 0;
}

void
wsed_serve_stop(struct wsed_serve **svp)
{
	struct wsed_serve *sv = *svp;
	struct idle *w;
	int i;

	if (sv == NULL)
		return;
	*svp = NULL;
	pthread_mutex_lock(&sv->lock);
	sv->stop = 1;
	for (w = sv->idle; w != NULL; w = w->next)
		pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&sv->lock);
	for (i = 0; i < sv->nthreads; i++)
		pthread_join(sv->threads[i], NULL);
	pthread_mutex_destroy(&sv->lock);
	free(sv);
}
