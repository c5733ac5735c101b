/*
 * http.c - the HTTPS transport (see http.h): an evhttp server over OpenSSL
 * bufferevents, and a libcurl client.
 *
 * SECURITY: the server reads untrusted bytes from the network.  TLS is done
 * by OpenSSL (1.2 or newer, AEAD ciphers with forward secrecy only, no
 * compression, no renegotiation, no session resumption so that every
 * connection proves its client certificate afresh); HTTP is parsed by
 * libevent's evhttp with limits on the header size, the body size (413
 * beyond it, before the handler sees anything), the idle time and the
 * number of open connections; only GET and POST reach the handler.  The
 * client certificate chain is verified against client_roots only; the
 * application applies the full checks (CRLs, purpose, domain).  The client
 * trusts only the roots it is given (never the system store), checks the
 * server's name, speaks HTTPS only and follows no redirects.  Neither
 * side asks for a passphrase: an encrypted key fails to load.
 *
 * Threads (server): every libevent call happens on the loop thread -- the
 * thread inside wse_http_server_run, or the one freeing the server after
 * the loop has stopped -- so libevent needs no locking.  Other threads
 * reach the loop only through srv->queue (finished answers, under
 * srv->lock) and a non-blocking self-pipe whose read end is a libevent
 * event: wse_http_reply queues the answer and writes one byte;
 * wse_http_server_stop sets an atomic flag and writes one byte (write(2) is
 * async-signal-safe).  The loop drains the pipe, sends the queued answers
 * with evhttp_send_reply and breaks out when the flag is set.
 *
 * Request lifetime: a wse_http_req copies everything a handler may read
 * (method, path, query, body, peer chain), so worker threads never touch
 * libevent memory.  While it waits for its answer, the connection's close
 * callback (set on every request) clears req->ev when libevent frees the
 * connection; evhttp frees the evhttp_request with it, except when it
 * detached the request first (EOF or timeout before the answer), in which
 * case the close callback frees it.  An answer for a request whose
 * connection is gone is dropped.  Each waiting request holds a reference
 * on the server's shared part, so an answer that comes after
 * wse_http_server_free is dropped safely too.
 *
 * Connections are counted by a per-connection record stored in the SSL
 * object's ex_data (freed, and uncounted, by OpenSSL when libevent frees
 * the SSL).  Connections beyond max_connections are refused in the TLS
 * client-hello callback, before any expensive cryptography.
 */
#include "http.h"
#include "ossl-private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "pki-private.h"

#define HTTP_MAX_HEADERS	(16 * 1024)	/* request line + headers */
#define HTTP_BACKLOG		128
#define HTTP_VERIFY_DEPTH	2	/* leaf, domain CA, one more, root */
#define HTTP_ACCEPT_RETRY_MS	100	/* after accept() fails (EMFILE) */

/* Defaults for option fields left at 0. */
#define DEF_MAX_BODY		(10 * 1024 * 1024)
#define DEF_TIMEOUT_S		30
#define DEF_MAX_CONNS		1024
#define DEF_CONNECT_MS		10000
#define DEF_TIMEOUT_MS		60000
#define DEF_MAX_RESPONSE	(10 * 1024 * 1024)

/* TLS 1.2 suites: ECDHE + AEAD only.  TLS 1.3 suites are all AEAD. */
static const char tls12_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/* ---- helpers ---- */


/* PEM callback: never prompt; an encrypted key fails to load. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf; (void)size; (void)rwflag; (void)u;
	return -1;
}

/* 1 when s is printable ASCII (header values we emit). */
static int
header_value_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

/* ---- process-wide initialisation ---- */

static pthread_once_t server_once = PTHREAD_ONCE_INIT;
static int conn_idx = -1;		/* SSL ex_data index of struct conn */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void conn_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad,
    int idx, long argl, void *argp);

/* The library never prints: drop libevent's warnings. */
static void
quiet_log(int severity, const char *msg)
{
	(void)severity; (void)msg;
}

static void
server_init_once(void)
{
	event_set_log_callback(quiet_log);
	conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_ex_free);
}

static void
curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- server ---- */

/* One accepted connection; owned by its SSL object (ex_data). */
/* Most bytes libevent reads or writes per socket event. */
#define IO_SLICE (256u << 10)

struct conn {
	wse_http_server *srv;
	wse_http_req *pending;		/* the request awaiting its answer */
	struct event *watch;		/* the peer's socket while pending */
	int refused;			/* over max_connections */
};

struct wse_http_req {
	wse_http_server *srv;		/* holds a reference */
	/* loop thread only */
	struct evhttp_request *ev;	/* NULL once the connection is gone */
	struct conn *conn;
	/* under srv->lock */
	wse_http_req *qnext;
	void (*closefn)(void *);	/* wse_http_req_on_close */
	void *closearg;
	int gone;			/* the connection went first */
	/* read-only after creation: what the handler sees */
	const char *method;
	char *path;
	char *query;
	char *ctype;
	char *peer;
	uint8_t *body;
	size_t body_len;
	wse_cert **chain;
	size_t nchain;
	/* a file answer (wse_http_reply_file): sfd >= 0 */
	int sfd;
	uint64_t soff, sleft, stotal;
	int streaming;			/* loop thread: headers sent */
	/* the answer, written once by wse_http_reply */
	int status;
	char *rctype;
	uint8_t *rbody;
	size_t rlen;
};

struct wse_http_server {
	/* shared with other threads */
	pthread_mutex_t lock;
	size_t refs;			/* 1 + requests awaiting an answer */
	int dead;			/* wse_http_server_free was called */
	int in_loop;			/* wse_http_server_run is running */
	pthread_t loop_thread;
	wse_http_req *queue;		/* answered, not yet sent */
	wse_http_req **queue_tail;
	int wake[2];			/* self-pipe, non-blocking */
	atomic_int stop;
	/* loop thread only */
	struct event_base *base;
	struct evhttp *http;
	struct evconnlistener *listener; /* owned by http */
	struct event *wake_ev;
	struct event *retry_ev;		/* re-enables the listener */
	SSL_CTX *ctx;
	wse_http_handler handler;
	void *arg;
	uint16_t port;
	size_t max_conns;
	size_t nconns;
};

static void
srv_unref(wse_http_server *srv)
{
	size_t left;

	pthread_mutex_lock(&srv->lock);
	left = --srv->refs;
	pthread_mutex_unlock(&srv->lock);
	if (left > 0)
		return;
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}

static void
req_destroy(wse_http_req *req)
{
	free(req->path);
	free(req->query);
	free(req->ctype);
	free(req->peer);
	if (req->body != NULL) {
		wse_memzero(req->body, req->body_len);
		free(req->body);
	}
	wse_cert_list_free(&req->chain, req->nchain);
	if (req->sfd >= 0)
		(void)close(req->sfd);
	free(req->rctype);
	if (req->rbody != NULL) {
		wse_memzero(req->rbody, req->rlen);
		free(req->rbody);
	}
	free(req);
}

/* Free req and drop its reference on the server. */
static void
req_release(wse_http_req *req)
{
	wse_http_server *srv = req->srv;

	req_destroy(req);
	srv_unref(srv);
}

/* OpenSSL ex_data destructor: runs for every SSL freed in the process;
 * ptr is NULL for those that are not our connections. */
static void
conn_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	struct conn *conn = ptr;

	(void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
	if (conn == NULL)
		return;
	if (!conn->refused && conn->srv->nconns > 0)
		conn->srv->nconns--;
	if (conn->watch != NULL)
		event_free(conn->watch);
	if (conn->pending != NULL) {
		/* Not reached: the close callback runs first.  Never touch
		 * the evhttp request again. */
		conn->pending->conn = NULL;
		conn->pending->ev = NULL;
	}
	free(conn);
}

/* evhttp: the connection is going away (called before it is freed). */
static void
on_conn_close(struct evhttp_connection *evcon, void *arg)
{
	struct conn *conn = arg;
	wse_http_req *req = conn->pending;
	wse_http_server *srv;
	void (*fn)(void *);
	void *fnarg;

	(void)evcon;
	if (conn->watch != NULL) {
		event_free(conn->watch);
		conn->watch = NULL;
	}
	if (req == NULL)
		return;
	srv = req->srv;
	conn->pending = NULL;
	req->conn = NULL;
	/* evhttp frees the requests still attached to the connection; one
	 * it detached (EOF or timeout while the handler was busy) is ours. */
	if (req->ev != NULL && evhttp_request_get_connection(req->ev) == NULL)
		evhttp_request_free(req->ev);
	req->ev = NULL;
	/* A file answer in progress is ours alone: nothing else will
	 * touch it once its connection is gone. */
	if (req->streaming) {
		req_release(req);
		return;
	}
	/* Tell whoever waits to answer it (a held request); req may be
	 * answered, and freed, from inside fn: not touched after it. */
	pthread_mutex_lock(&srv->lock);
	req->gone = 1;
	fn = req->closefn;
	fnarg = req->closearg;
	req->closefn = NULL;
	pthread_mutex_unlock(&srv->lock);
	if (fn != NULL)
		fn(fnarg);
}

/* TLS: refuse connections over the limit before any real work; tune the
 * socket of the others. */
static int
on_client_hello(SSL *ssl, int *al, void *arg)
{
	struct conn *conn = SSL_get_ex_data(ssl, conn_idx);
	int fd, one = 1;

	(void)arg;
	if (conn == NULL || conn->refused) {
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	/* The first sight of the socket: answers are written as a few TLS
	 * records, which Nagle's algorithm would hold back for the peer's
	 * delayed ACK (40 ms a request on a kept-alive connection). */
	if ((fd = SSL_get_fd(ssl)) >= 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	return SSL_CLIENT_HELLO_SUCCESS;
}

/* evhttp: a new connection needs a bufferevent (TLS, server side).  On
 * failure evhttp would fall back to plain TCP; on_request drops such
 * connections. */
static struct bufferevent *
on_new_bev(struct event_base *base, void *arg)
{
	wse_http_server *srv = arg;
	struct conn *conn;
	struct bufferevent *bev;
	SSL *ssl;

	if ((conn = calloc(1, sizeof(*conn))) == NULL)
		return NULL;
	conn->srv = srv;
	if ((ssl = SSL_new(srv->ctx)) == NULL) {
		free(conn);
		ERR_clear_error();
		return NULL;
	}
	if (SSL_set_ex_data(ssl, conn_idx, conn) != 1) {
		free(conn);
		SSL_free(ssl);
		ERR_clear_error();
		return NULL;
	}
	/* From here the SSL owns conn. */
	if (srv->nconns >= srv->max_conns)
		conn->refused = 1;
	else
		srv->nconns++;
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		ERR_clear_error();
		return NULL;		/* ssl (and conn) already freed */
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	/* libevent moves at most 16 KiB per socket event by default: a
	 * large request or a streamed file would cost one loop iteration
	 * per TLS record. */
	(void)bufferevent_set_max_single_read(bev, IO_SLICE);
	(void)bufferevent_set_max_single_write(bev, IO_SLICE);
	return bev;
}

static wse_status
copy_chain(SSL *ssl, wse_cert ***chain_r, size_t *n_r)
{
	STACK_OF(X509) *sk;
	wse_cert **certs = NULL;
	size_t i, n;
	wse_status st = WSE_OK;

	*chain_r = NULL;
	*n_r = 0;
	if (SSL_get0_peer_certificate(ssl) == NULL)
		return WSE_OK;
	if (SSL_get_verify_result(ssl) != X509_V_OK ||
	    (sk = SSL_get0_verified_chain(ssl)) == NULL ||
	    sk_X509_num(sk) < 1)
		return wse_err(WSE_ERR_UNTRUSTED,
		    "client certificate was not verified");
	n = (size_t)sk_X509_num(sk);
	if ((certs = calloc(n, sizeof(*certs))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot copy a peer chain");
	for (i = 0; i < n; i++) {
		if ((certs[i] = wse_cert_from_x509(sk_X509_value(sk,
		    (int)i))) == NULL) {
			st = wse_err(WSE_ERR_NOMEM, "cannot copy a peer chain");
			goto out;
		}
	}
	*chain_r = certs;
	certs = NULL;
	*n_r = n;
out:
	wse_cert_list_free(&certs, n);
	return st;
}

/* Copy out of ev what a handler may read.  Returns an HTTP status for
 * the failure, 0 on success. */
static int
req_fill(wse_http_req *req, struct evhttp_request *ev,
    struct evhttp_connection *evcon, SSL *ssl)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
	struct evbuffer *in = evhttp_request_get_input_buffer(ev);
	const char *path, *query, *ctype, *hp;
	char *host = NULL;
	ev_uint16_t port = 0;
	size_t len;

	switch (evhttp_request_get_command(ev)) {
	case EVHTTP_REQ_GET:
		req->method = "GET";
		break;
	case EVHTTP_REQ_POST:
		req->method = "POST";
		break;
	default:
		return 405;
	}
	if (uri == NULL)
		return 400;
	path = evhttp_uri_get_path(uri);
	query = evhttp_uri_get_query(uri);
	ctype = evhttp_find_header(evhttp_request_get_input_headers(ev),
	    "Content-Type");
	if ((req->path = strdup(path != NULL && *path != '\0' ? path : "/")) ==
	    NULL ||
	    (query != NULL && (req->query = strdup(query)) == NULL) ||
	    (ctype != NULL && (req->ctype = strdup(ctype)) == NULL))
		return 500;
	len = evbuffer_get_length(in);
	if ((req->body = malloc(len + 1)) == NULL)
		return 500;
	if (len > 0 && evbuffer_copyout(in, req->body, len) != (ev_ssize_t)len)
		return 500;
	req->body[len] = '\0';
	req->body_len = len;
	evhttp_connection_get_peer(evcon, &host, &port);
	hp = host != NULL ? host : "?";
	if (asprintf(&req->peer, strchr(hp, ':') != NULL ? "[%s]:%u" :
	    "%s:%u", hp, (unsigned)port) == -1) {
		req->peer = NULL;
		return 500;
	}
	if (copy_chain(ssl, &req->chain, &req->nchain) != WSE_OK) {
		wse_err_clear();	/* nobody to report to on this thread */
		return 403;
	}
	return 0;
}

/*
 * While a request waits for its answer, evhttp reads nothing from its
 * connection, so it would not notice the client going away until the
 * answer is written - which, for a request held for an event (a long
 * poll), may be a minute later.  The socket is watched instead: a client
 * that sends anything (a TLS close_notify, a FIN, a reset; a pipelined
 * request, which this server does not serve) while its request is
 * pending has its connection closed, and the close callback tells
 * whoever holds the request.
 */
static void
on_peer_input(evutil_socket_t fd, short what, void *arg)
{
	struct conn *conn = arg;
	struct evhttp_connection *evcon;

	(void)fd; (void)what;
	if (conn->watch != NULL) {
		event_free(conn->watch);
		conn->watch = NULL;
	}
	if (conn->pending == NULL || conn->pending->ev == NULL ||
	    conn->pending->streaming ||
	    (evcon = evhttp_request_get_connection(conn->pending->ev)) ==
	    NULL)
		return;
	evhttp_connection_free(evcon);
}

static void
watch_peer(wse_http_server *srv, struct conn *conn, struct bufferevent *bev)
{
	evutil_socket_t fd = bufferevent_getfd(bev);

	if (fd < 0 || conn->watch != NULL)
		return;
	if ((conn->watch = event_new(srv->base, fd, EV_READ, on_peer_input,
	    conn)) != NULL && event_add(conn->watch, NULL) != 0) {
		event_free(conn->watch);
		conn->watch = NULL;
	}
}

/* evhttp: a complete request (GET or POST, body within the limit). */
static void
on_request(struct evhttp_request *ev, void *arg)
{
	wse_http_server *srv = arg;
	struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
	struct bufferevent *bev;
	SSL *ssl = NULL;
	struct conn *conn = NULL;
	wse_http_req *req = NULL;
	int code;

	if (evcon != NULL &&
	    (bev = evhttp_connection_get_bufferevent(evcon)) != NULL &&
	    (ssl = bufferevent_openssl_get_ssl(bev)) != NULL)
		conn = SSL_get_ex_data(ssl, conn_idx);
	if (conn == NULL || conn->pending != NULL) {
		/* Not one of our TLS connections (on_new_bev failed and
		 * evhttp fell back to plain TCP), or a second request while
		 * one is pending (evhttp never does that): drop it without a
		 * word. */
		if (evcon != NULL)
			evhttp_connection_free(evcon);
		return;
	}
	if ((req = calloc(1, sizeof(*req))) == NULL) {
		evhttp_send_error(ev, 500, NULL);
		return;
	}
	req->sfd = -1;
	req->srv = srv;
	if ((code = req_fill(req, ev, evcon, ssl)) != 0) {
		req_destroy(req);
		evhttp_send_error(ev, code, NULL);
		return;
	}
	pthread_mutex_lock(&srv->lock);
	srv->refs++;
	pthread_mutex_unlock(&srv->lock);
	req->ev = ev;
	req->conn = conn;
	conn->pending = req;
	evhttp_connection_set_closecb(evcon, on_conn_close, conn);
	watch_peer(srv, conn, bev);
	srv->handler(srv->arg, req);
}

/* File answers are read and queued STREAM_SLICE bytes at a time, and
 * refilled when libevent has written what was queued. */
#define STREAM_SLICE (256u << 10)
#define STREAM_QUEUE (4u * STREAM_SLICE)

static void stream_more(struct evhttp_connection *evcon, void *arg);

/* Loop thread: the bufferevent under req's connection, NULL once it is
 * gone. */
static struct bufferevent *
req_bev(wse_http_req *req)
{
	struct evhttp_connection *evcon;

	if (req->ev == NULL ||
	    (evcon = evhttp_request_get_connection(req->ev)) == NULL)
		return NULL;
	return evhttp_connection_get_bufferevent(evcon);
}

/* Loop thread: end a file answer that cannot go on (the file could not
 * be read): close the connection under it, so the client sees a short
 * transfer at once; on_conn_close then frees req. */
static void
stream_abort(wse_http_req *req)
{
	struct bufferevent *bev = req_bev(req);
	evutil_socket_t fd;

	if (bev != NULL && (fd = bufferevent_getfd(bev)) >= 0)
		(void)shutdown(fd, SHUT_RDWR);
}

/* Loop thread: the write low-water mark of req's connection. */
static void
stream_watermark(wse_http_req *req, size_t low)
{
	struct bufferevent *bev = req_bev(req);

	if (bev != NULL)
		bufferevent_setwatermark(bev, EV_WRITE, low, 0);
}

/* Loop thread: queue the next slices of a file answer. */
static void
stream_more(struct evhttp_connection *evcon, void *arg)
{
	wse_http_req *req = arg;
	struct evbuffer *chunk;
	struct evbuffer_iovec v;
	size_t want;
	ssize_t n;

	(void)evcon;
	if (req->ev == NULL)
		return;		/* gone; on_conn_close frees req */
	if (req->sleft == 0) {
		struct evhttp_request *ev = req->ev;

		stream_watermark(req, 0);
		if (req->conn != NULL)
			req->conn->pending = NULL;
		req->conn = NULL;
		req->ev = NULL;
		req->streaming = 0;
		evhttp_send_reply_end(ev);
		req_release(req);
		return;
	}
	if ((chunk = evbuffer_new()) == NULL) {
		stream_abort(req);
		return;
	}
	while (req->sleft > 0 && evbuffer_get_length(chunk) < STREAM_QUEUE) {
		want = req->sleft < STREAM_SLICE ? (size_t)req->sleft :
		    STREAM_SLICE;
		if (evbuffer_reserve_space(chunk, (ev_ssize_t)want, &v, 1) <
		    1)
			break;
		do
			n = pread(req->sfd, v.iov_base, want,
			    (off_t)req->soff);
		while (n < 0 && errno == EINTR);
		if (n <= 0) {
			evbuffer_free(chunk);
			stream_abort(req);
			return;
		}
		v.iov_len = (size_t)n;
		if (evbuffer_commit_space(chunk, &v, 1) != 0)
			break;
		req->soff += (uint64_t)n;
		req->sleft -= (uint64_t)n;
	}
	if (evbuffer_get_length(chunk) == 0) {
		evbuffer_free(chunk);
		stream_abort(req);
		return;
	}
	evhttp_send_reply_chunk_with_cb(req->ev, chunk, stream_more, req);
	evbuffer_free(chunk);
}

/* Loop thread: send the headers of a file answer and its first bytes. */
static void
stream_start(wse_http_req *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req->ev);
	char num[32], tot[32];

	(void)snprintf(num, sizeof(num), "%llu",
	    (unsigned long long)req->sleft);
	(void)snprintf(tot, sizeof(tot), "%llu",
	    (unsigned long long)req->stotal);
	if (evhttp_add_header(h, "Content-Type",
	    "application/octet-stream") != 0 ||
	    evhttp_add_header(h, "Content-Length", num) != 0 ||
	    evhttp_add_header(h, "X-WSEmail-Total", tot) != 0) {
		evhttp_send_error(req->ev, 500, NULL);
		if (req->conn != NULL)
			req->conn->pending = NULL;
		req_release(req);
		return;
	}
	req->streaming = 1;
	evhttp_send_reply_start(req->ev, 200, "OK");
	/* Ask for more when a quarter of the queue is left, so the socket
	 * never waits for the file. */
	stream_watermark(req, STREAM_QUEUE / 4);
	stream_more(NULL, req);
}

/* Loop thread: send req's answer (if its connection is still there) and
 * free req. */
static void
send_now(wse_http_req *req)
{
	struct evhttp_request *ev = req->ev;
	struct evbuffer *out;
	int status = req->status;

	if (ev == NULL)
		goto out;
	if (req->conn != NULL && req->conn->watch != NULL) {
		event_free(req->conn->watch);
		req->conn->watch = NULL;
	}
	if (req->sfd >= 0) {
		stream_start(req);
		return;
	}
	if (req->conn != NULL)
		req->conn->pending = NULL;
	req->conn = NULL;
	req->ev = NULL;
	out = evhttp_request_get_output_buffer(ev);
	if ((req->rctype != NULL && evhttp_add_header(
	    evhttp_request_get_output_headers(ev), "Content-Type",
	    req->rctype) != 0) ||
	    (req->rlen > 0 && evbuffer_add(out, req->rbody, req->rlen) != 0)) {
		evbuffer_drain(out, evbuffer_get_length(out));
		status = 500;
	}
	evhttp_send_reply(ev, status, NULL, NULL);
out:
	req_release(req);
}

/* Loop thread: the self-pipe is readable. */
static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	wse_http_server *srv = arg;
	wse_http_req *q, *next;
	char b[64];
	ssize_t r;

	(void)what;
	while ((r = read(fd, b, sizeof(b))) > 0 || (r < 0 && errno == EINTR))
		;
	pthread_mutex_lock(&srv->lock);
	q = srv->queue;
	srv->queue = NULL;
	srv->queue_tail = &srv->queue;
	pthread_mutex_unlock(&srv->lock);
	for (; q != NULL; q = next) {
		next = q->qnext;
		send_now(q);
	}
	if (atomic_load(&srv->stop))
		event_base_loopbreak(srv->base);
}

/* accept() failed (e.g. out of descriptors): pause instead of spinning. */
static void
on_accept_error(struct evconnlistener *lev, void *arg)
{
	wse_http_server *srv = arg;
	struct timeval tv = { 0, HTTP_ACCEPT_RETRY_MS * 1000 };

	evconnlistener_disable(lev);
	evtimer_add(srv->retry_ev, &tv);
}

static void
on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	wse_http_server *srv = arg;

	(void)fd; (void)what;
	evconnlistener_enable(srv->listener);
}

/* "a.b.c.d:port" or "[v6]:port" (numeric only; port 0 = any). */
static wse_status
parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len_r)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *p, *colon;
	unsigned long port = 0;
	size_t hlen;
	int v6 = 0;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		if ((p = strchr(s, ']')) == NULL || p[1] != ':')
			goto bad;
		hlen = (size_t)(p - s - 1);
		s++;
		colon = p + 1;
		v6 = 1;
	} else {
		if ((colon = strchr(s, ':')) == NULL ||
		    strchr(colon + 1, ':') != NULL)
			goto bad;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(host) || colon[1] == '\0')
		goto bad;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	for (p = colon + 1; *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || port > 65535)
			goto bad;
		port = port * 10 + (unsigned long)(*p - '0');
	}
	if (port > 65535)
		goto bad;
	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			goto bad;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len_r = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			goto bad;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len_r = sizeof(*sin);
	}
	return WSE_OK;
bad:
	return wse_err(WSE_ERR_CONFIG, "listen address \"%s\": expected "
	    "IPv4:PORT or [IPv6]:PORT", s);
}

static wse_status
server_ctx(const wse_http_server_opts *o, SSL_CTX **ctx_r)
{
	static const unsigned char sid_ctx[] = "wsemail";
	STACK_OF(X509_NAME) *names = NULL;
	SSL_CTX *ctx = NULL;
	int mode;
	wse_status st;

	*ctx_r = NULL;
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		st = wse_ossl_err(WSE_ERR_NOMEM, "cannot create a TLS context");
		goto out;
	}
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) {
		st = wse_ossl_err(WSE_ERR_CRYPTO, "cannot configure TLS");
		goto out;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	(void)SSL_CTX_set_num_tickets(ctx, 0);
	(void)SSL_CTX_set_session_id_context(ctx, sid_ctx,
	    sizeof(sid_ctx) - 1);
	if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_chain) != 1) {
		st = wse_ossl_err(WSE_ERR_CONFIG, "%s: cannot load the certificate "
		    "chain", o->cert_chain);
		goto out;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1) {
		st = wse_ossl_err(WSE_ERR_CONFIG, "%s: cannot load the private key",
		    o->key);
		goto out;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		st = wse_ossl_err(WSE_ERR_CONFIG, "%s does not match %s", o->key,
		    o->cert_chain);
		goto out;
	}
	SSL_CTX_set_client_hello_cb(ctx, on_client_hello, NULL);
	if (o->client_cert == WSE_CLIENT_CERT_NONE) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	} else {
		if (SSL_CTX_load_verify_locations(ctx, o->client_roots,
		    NULL) != 1 ||
		    (names = SSL_load_client_CA_file(o->client_roots)) ==
		    NULL) {
			st = wse_ossl_err(WSE_ERR_CONFIG, "%s: cannot load client "
			    "roots", o->client_roots);
			goto out;
		}
		SSL_CTX_set_client_CA_list(ctx, names);	/* takes names */
		mode = SSL_VERIFY_PEER;
		if (o->client_cert == WSE_CLIENT_CERT_REQUIRED)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, mode, NULL);
		SSL_CTX_set_verify_depth(ctx, HTTP_VERIFY_DEPTH);
	}
	ERR_clear_error();
	*ctx_r = ctx;
	ctx = NULL;
	st = WSE_OK;
out:
	SSL_CTX_free(ctx);
	return st;
}

wse_status
wse_http_server_new(const wse_http_server_opts *o, wse_http_handler handler,
    void *arg, wse_http_server **srv_r)
{
	wse_http_server *srv = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	struct evhttp_bound_socket *bound;
	size_t max_body;
	wse_status st;

	*srv_r = NULL;
	if (o == NULL || handler == NULL || o->listen == NULL ||
	    o->cert_chain == NULL || o->key == NULL)
		return wse_err(WSE_ERR_INVALID, "http server: listen address, "
		    "certificate chain, key and handler are required");
	if (o->client_cert != WSE_CLIENT_CERT_NONE && o->client_roots == NULL)
		return wse_err(WSE_ERR_INVALID, "http server: client "
		    "certificates need client_roots");
	if (o->client_cert != WSE_CLIENT_CERT_NONE &&
	    o->client_cert != WSE_CLIENT_CERT_OPTIONAL &&
	    o->client_cert != WSE_CLIENT_CERT_REQUIRED)
		return wse_err(WSE_ERR_INVALID, "http server: bad client "
		    "certificate mode %d", (int)o->client_cert);
	max_body = o->max_body > 0 ? o->max_body : DEF_MAX_BODY;
	if (max_body > (size_t)INT32_MAX || o->timeout_s < 0)
		return wse_err(WSE_ERR_INVALID, "http server: limits out of "
		    "range");
	pthread_once(&server_once, server_init_once);
	if (conn_idx < 0)
		return wse_ossl_err(WSE_ERR_INTERNAL, "no SSL ex_data index");
	if ((st = parse_listen(o->listen, &ss, &sslen)) != WSE_OK)
		return st;

	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate an http server");
	pthread_mutex_init(&srv->lock, NULL);
	srv->refs = 1;
	srv->queue_tail = &srv->queue;
	srv->wake[0] = srv->wake[1] = -1;
	atomic_init(&srv->stop, 0);
	srv->handler = handler;
	srv->arg = arg;
	srv->max_conns = o->max_connections > 0 ? o->max_connections :
	    DEF_MAX_CONNS;

	if ((st = server_ctx(o, &srv->ctx)) != WSE_OK)
		goto out;
	if ((srv->base = event_base_new()) == NULL ||
	    (srv->http = evhttp_new(srv->base)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot create an event loop");
		goto out;
	}
	evhttp_set_bevcb(srv->http, on_new_bev, srv);
	evhttp_set_gencb(srv->http, on_request, srv);
	evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET |
	    EVHTTP_REQ_POST);
	evhttp_set_max_body_size(srv->http, (ev_ssize_t)max_body);
	evhttp_set_max_headers_size(srv->http, HTTP_MAX_HEADERS);
	evhttp_set_timeout(srv->http, o->timeout_s > 0 ? o->timeout_s :
	    DEF_TIMEOUT_S);
	evhttp_set_default_content_type(srv->http, NULL);
	/* Read the rest of a too large body before answering 413, so that
	 * the client sees the answer rather than a reset. */
	(void)evhttp_set_flags(srv->http, EVHTTP_SERVER_LINGERING_CLOSE);

	srv->listener = evconnlistener_new_bind(srv->base, NULL, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
	    HTTP_BACKLOG, (struct sockaddr *)&ss, (int)sslen);
	if (srv->listener == NULL) {
		st = wse_err(WSE_ERR_IO, "cannot listen on %s: %s", o->listen,
		    strerror(errno));
		goto out;
	}
	if ((bound = evhttp_bind_listener(srv->http, srv->listener)) ==
	    NULL) {
		evconnlistener_free(srv->listener);
		srv->listener = NULL;
		st = wse_err(WSE_ERR_NOMEM, "cannot bind the listener");
		goto out;
	}
	evconnlistener_set_error_cb(srv->listener, on_accept_error);
	memset(&ss, 0, sizeof(ss));
	sslen = sizeof(ss);
	if (getsockname(evconnlistener_get_fd(srv->listener),
	    (struct sockaddr *)&ss, &sslen) != 0) {
		st = wse_err(WSE_ERR_IO, "getsockname: %s", strerror(errno));
		goto out;
	}
	srv->port = ss.ss_family == AF_INET6 ?
	    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) :
	    ntohs(((struct sockaddr_in *)&ss)->sin_port);

	if (pipe2(srv->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
		srv->wake[0] = srv->wake[1] = -1;
		st = wse_err(WSE_ERR_IO, "pipe: %s", strerror(errno));
		goto out;
	}
	if ((srv->wake_ev = event_new(srv->base, srv->wake[0],
	    EV_READ | EV_PERSIST, on_wake, srv)) == NULL ||
	    event_add(srv->wake_ev, NULL) != 0 ||
	    (srv->retry_ev = evtimer_new(srv->base, on_accept_retry,
	    srv)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot create loop events");
		goto out;
	}
	*srv_r = srv;
	srv = NULL;
	st = WSE_OK;
out:
	wse_http_server_free(&srv);
	return st;
}

uint16_t
wse_http_server_port(const wse_http_server *srv)
{
	return srv == NULL ? 0 : srv->port;
}

wse_status
wse_http_server_run(wse_http_server *srv)
{
	static const struct timespec zero = { 0, 0 };
	sigset_t pipe_set, old;
	int r;

	if (srv == NULL || srv->base == NULL)
		return wse_err(WSE_ERR_INVALID, "no http server to run");
	/* Writing to a vanished peer raises SIGPIPE in this thread: keep it
	 * blocked while the loop runs (write fails with EPIPE), and discard
	 * what is pending afterwards. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	pthread_mutex_lock(&srv->lock);
	srv->loop_thread = pthread_self();
	srv->in_loop = 1;
	pthread_mutex_unlock(&srv->lock);

	r = event_base_dispatch(srv->base);

	pthread_mutex_lock(&srv->lock);
	srv->in_loop = 0;
	pthread_mutex_unlock(&srv->lock);
	atomic_store(&srv->stop, 0);
	if (!sigismember(&old, SIGPIPE))
		while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
			;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		return wse_err(WSE_ERR_IO, "the event loop failed");
	return WSE_OK;
}

void
wse_http_server_stop(wse_http_server *srv)
{
	int saved = errno;

	if (srv == NULL)
		return;
	atomic_store(&srv->stop, 1);
	if (srv->wake[1] >= 0 && write(srv->wake[1], "s", 1) < 0) {
		/* Pipe full: the loop wakes up anyway. */
	}
	errno = saved;
}

void
wse_http_server_free(wse_http_server **srvp)
{
	wse_http_server *srv;
	wse_http_req *q, *next;

	if (srvp == NULL || (srv = *srvp) == NULL)
		return;
	*srvp = NULL;
	/* Frees every connection; their close callbacks detach the requests
	 * still waiting for an answer.  The bufferevents (and SSL objects,
	 * and struct conn) go when the base runs its finalizers. */
	if (srv->http != NULL)
		evhttp_free(srv->http);
	if (srv->wake_ev != NULL)
		event_free(srv->wake_ev);
	if (srv->retry_ev != NULL)
		event_free(srv->retry_ev);
	if (srv->base != NULL)
		event_base_free(srv->base);
	SSL_CTX_free(srv->ctx);

	pthread_mutex_lock(&srv->lock);
	srv->dead = 1;
	q = srv->queue;
	srv->queue = NULL;
	srv->queue_tail = &srv->queue;
	if (srv->wake[0] >= 0)
		close(srv->wake[0]);
	if (srv->wake[1] >= 0)
		close(srv->wake[1]);
	srv->wake[0] = srv->wake[1] = -1;
	pthread_mutex_unlock(&srv->lock);
	for (; q != NULL; q = next) {
		next = q->qnext;
		req_release(q);
	}
	srv_unref(srv);
}

/* ---- requests ---- */

const char *
wse_http_req_method(const wse_http_req *req)
{
	return req->method;
}

const char *
wse_http_req_path(const wse_http_req *req)
{
	return req->path;
}

const char *
wse_http_req_query(const wse_http_req *req)
{
	return req->query;
}

const char *
wse_http_req_content_type(const wse_http_req *req)
{
	return req->ctype;
}

const uint8_t *
wse_http_req_body(const wse_http_req *req, size_t *len_r)
{
	if (len_r != NULL)
		*len_r = req->body_len;
	return req->body;
}

wse_cert *const *
wse_http_req_peer_chain(const wse_http_req *req, size_t *n_r)
{
	*n_r = req->nchain;
	return req->chain;
}

const char *
wse_http_req_peer_addr(const wse_http_req *req)
{
	return req->peer;
}

static void enqueue(wse_http_req *req);

int
wse_http_req_on_close(wse_http_req *req, void (*fn)(void *arg), void *arg)
{
	int r = 0;

	if (req == NULL)
		return 0;
	pthread_mutex_lock(&req->srv->lock);
	if (!req->gone) {
		req->closefn = fn;
		req->closearg = fn != NULL ? arg : NULL;
		r = 1;
	}
	pthread_mutex_unlock(&req->srv->lock);
	return r;
}

void
wse_http_reply(wse_http_req *req, int status, const char *content_type,
    const void *body, size_t len)
{
	if (req == NULL)
		return;
	if (status < 100 || status > 599 || (body == NULL && len > 0) ||
	    (content_type != NULL && !header_value_ok(content_type)) ||
	    (content_type != NULL &&
	    (req->rctype = strdup(content_type)) == NULL) ||
	    (len > 0 && (req->rbody = malloc(len)) == NULL)) {
		/* Answer 500 with no body rather than something else. */
		free(req->rctype);
		req->rctype = NULL;
		free(req->rbody);
		req->rbody = NULL;
		status = 500;
	} else if (len > 0) {
		memcpy(req->rbody, body, len);
		req->rlen = len;
	}
	req->status = status;
	enqueue(req);
}

void
wse_http_reply_file(wse_http_req *req, int fd, uint64_t offset,
    uint64_t length, uint64_t total)
{
	if (req == NULL) {
		if (fd >= 0)
			(void)close(fd);
		return;
	}
	if (fd < 0) {
		wse_http_reply(req, 500, NULL, NULL, 0);
		return;
	}
	req->sfd = fd;
	req->soff = offset;
	req->sleft = length;
	req->stotal = total;
	req->status = 200;
	enqueue(req);
}

/* Hand req's answer to the loop thread (or send it now when on it). */
static void
enqueue(wse_http_req *req)
{
	wse_http_server *srv = req->srv;
	int dead, on_loop;

	pthread_mutex_lock(&srv->lock);
	req->closefn = NULL;		/* answered: no longer waiting */
	dead = srv->dead;
	on_loop = srv->in_loop && pthread_equal(srv->loop_thread,
	    pthread_self());
	if (!dead && !on_loop) {
		req->qnext = NULL;
		*srv->queue_tail = req;
		srv->queue_tail = &req->qnext;
		/* Under the lock: wse_http_server_free closes the pipe. */
		if (write(srv->wake[1], "r", 1) < 0) {
			/* Pipe full: the loop is about to drain it. */
		}
	}
	pthread_mutex_unlock(&srv->lock);
	if (dead)
		req_release(req);
	else if (on_loop)
		send_now(req);
}

/* ---- client ---- */

struct wse_http_client {
	CURL *curl;
	size_t max_response;
	long timeout_ms;
	char errbuf[CURL_ERROR_SIZE];
};

/* Where the response body goes. */
struct sink {
	wse_buf *out;
	size_t max;		/* max_response */
	size_t got;
	int over;		/* more than max arrived */
	wse_status st;		/* out refused the bytes */
	/* wse_http_post_stream only */
	CURL *curl;
	wse_http_sink fn;	/* NULL: everything goes to out */
	void *fn_arg;
	int decided;		/* the first byte has been seen */
	int streaming;		/* this answer goes to fn */
	int aborted;		/* fn returned -1 */
	uint64_t total;		/* X-WSEmail-Total */
};

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t len = size * n;
	wse_status st;

	if (s->fn != NULL && !s->decided) {
		long code = 0;
		char *ct = NULL;

		s->decided = 1;
		(void)curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE,
		    &code);
		(void)curl_easy_getinfo(s->curl, CURLINFO_CONTENT_TYPE, &ct);
		s->streaming = code == 200 && ct != NULL &&
		    strncasecmp(ct, "application/octet-stream", 24) == 0;
	}
	if (s->streaming) {
		if (s->fn(s->fn_arg, p, len) != 0) {
			s->aborted = 1;
			return 0;
		}
		return len;
	}
	if (len > s->max - s->got) {
		s->over = 1;
		return 0;
	}
	if ((st = wse_buf_put(s->out, p, len)) != WSE_OK) {
		s->st = st;
		return 0;
	}
	s->got += len;
	return len;
}

/* Response headers of wse_http_post_stream: X-WSEmail-Total. */
static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t len = size * n, k = sizeof("X-WSEmail-Total:") - 1;
	char num[32], *end;
	size_t i, j = 0;

	if (len > k && strncasecmp(p, "X-WSEmail-Total:", k) == 0) {
		for (i = k; i < len && j + 1 < sizeof(num); i++)
			if (p[i] >= '0' && p[i] <= '9')
				num[j++] = p[i];
			else if (p[i] != ' ' && p[i] != '\t' &&
			    p[i] != '\r' && p[i] != '\n')
				return len;	/* malformed: ignored */
		num[j] = '\0';
		if (j > 0 && j < 20)
			s->total = strtoull(num, &end, 10);
	}
	return len;
}

static wse_status
check_file(const char *what, const char *path)
{
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		return wse_err(WSE_ERR_CONFIG, "%s %s: %s", what, path,
		    strerror(errno));
	fclose(f);
	return WSE_OK;
}

wse_status
wse_http_client_new(const wse_http_client_opts *o, wse_http_client **c_r)
{
	wse_http_client *c = NULL;
	CURL *h;
	long connect_ms, total_ms;
	wse_status st;

	*c_r = NULL;
	if (o == NULL || o->roots == NULL)
		return wse_err(WSE_ERR_INVALID, "http client: roots are "
		    "required");
	if ((o->cert_chain == NULL) != (o->key == NULL))
		return wse_err(WSE_ERR_INVALID, "http client: a client "
		    "certificate needs its key and the other way round");
	if (o->connect_timeout_ms < 0 || o->timeout_ms < 0)
		return wse_err(WSE_ERR_INVALID, "http client: negative "
		    "timeout");
	if ((st = check_file("roots", o->roots)) != WSE_OK ||
	    (o->cert_chain != NULL &&
	    (st = check_file("certificate chain", o->cert_chain)) !=
	    WSE_OK) ||
	    (o->key != NULL && (st = check_file("key", o->key)) != WSE_OK))
		return st;
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return wse_err(WSE_ERR_INTERNAL, "curl_global_init: %s",
		    curl_easy_strerror(curl_init_rc));

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate an http client");
	c->max_response = o->max_response > 0 ? o->max_response :
	    DEF_MAX_RESPONSE;
	connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms :
	    DEF_CONNECT_MS;
	total_ms = o->timeout_ms > 0 ? o->timeout_ms : DEF_TIMEOUT_MS;
	c->timeout_ms = total_ms;
	if ((c->curl = h = curl_easy_init()) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "curl_easy_init failed");
		goto out;
	}
	if (curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https") !=
	    CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_PROXY, "") != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_HTTP_VERSION,
	    (long)CURL_HTTP_VERSION_1_1) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_SSLVERSION,
	    (long)CURL_SSLVERSION_TLSv1_2) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_SSL_CIPHER_LIST, tls12_ciphers) !=
	    CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_CAINFO, o->roots) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_CAPATH, NULL) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms) !=
	    CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, total_ms) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)c->max_response) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_USERAGENT, "wsemail/0.1") !=
	    CURLE_OK) {
		st = wse_err(WSE_ERR_INTERNAL, "cannot configure curl");
		goto out;
	}
	if (o->cert_chain != NULL &&
	    (curl_easy_setopt(h, CURLOPT_SSLCERT, o->cert_chain) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM") != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_SSLKEY, o->key) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM") != CURLE_OK ||
	    /* Never ask for a passphrase (OpenSSL would prompt on the
	     * terminal, or read standard input): an encrypted key fails
	     * to load. */
	    curl_easy_setopt(h, CURLOPT_KEYPASSWD, "") != CURLE_OK)) {
		st = wse_err(WSE_ERR_INTERNAL, "cannot configure curl");
		goto out;
	}
	*c_r = c;
	c = NULL;
	st = WSE_OK;
out:
	wse_http_client_free(&c);
	return st;
}

void
wse_http_client_free(wse_http_client **cp)
{
	wse_http_client *c;

	if (cp == NULL || (c = *cp) == NULL)
		return;
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	free(c);
	*cp = NULL;
}

static wse_status
curl_status(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return WSE_OK;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_INVALIDCERTSTATUS:
		return WSE_ERR_UNTRUSTED;
	case CURLE_FILESIZE_EXCEEDED:
		return WSE_ERR_TOO_LARGE;
	case CURLE_OUT_OF_MEMORY:
		return WSE_ERR_NOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_BAD_FUNCTION_ARGUMENT:
		return WSE_ERR_INVALID;
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
		return WSE_ERR_CONFIG;
	default:
		/* connect, resolve, timeout, TLS handshake, send, receive */
		return WSE_ERR_TEMPFAIL;
	}
}

/* CURLOPT_CONNECT_TO entry sending any host:port of this transfer to the
 * numeric address addr.  Unlike CURLOPT_RESOLVE it does not outlive the
 * transfer, and curl reuses a connection only for the same target. */
static wse_status
connect_to_entry(const char *addr, char **entry_r)
{
	unsigned char tmp[sizeof(struct in6_addr)];
	char v6[INET6_ADDRSTRLEN + 1];
	size_t n = strlen(addr);
	int r;

	*entry_r = NULL;
	if (n > 2 && addr[0] == '[' && addr[n - 1] == ']' &&
	    n - 2 < sizeof(v6)) {
		memcpy(v6, addr + 1, n - 2);
		v6[n - 2] = '\0';
		if (inet_pton(AF_INET6, v6, tmp) != 1)
			goto bad;
		r = asprintf(entry_r, "::%s:", addr);
	} else if (inet_pton(AF_INET, addr, tmp) == 1)
		r = asprintf(entry_r, "::%s:", addr);
	else if (inet_pton(AF_INET6, addr, tmp) == 1)
		r = asprintf(entry_r, "::[%s]:", addr);
	else
		goto bad;
	if (r == -1) {
		*entry_r = NULL;
		return wse_err(WSE_ERR_NOMEM, "no memory");
	}
	return WSE_OK;
bad:
	return wse_err(WSE_ERR_INVALID, "connect address \"%s\" is not a "
	    "numeric IP address", addr);
}

static wse_status
post(wse_http_client *c, const char *url, const char *connect_addr,
    const char *content_type, const void *body, size_t len, wse_buf *resp,
    long *status_r, struct sink *sinkp)
{
	struct sink sink = *sinkp;
	struct curl_slist *headers = NULL, *connect_to = NULL, *tmp;
	char *ct_line = NULL, *entry = NULL;
	size_t start;
	long code = 0;
	CURLcode rc;
	wse_status st;

	if (status_r != NULL)
		*status_r = 0;
	if (c == NULL || url == NULL || resp == NULL || (body == NULL && len))
		return wse_err(WSE_ERR_INVALID, "http post: bad arguments");
	if (content_type != NULL && !header_value_ok(content_type))
		return wse_err(WSE_ERR_INVALID, "http post: bad content type");
	start = wse_buf_len(resp);
	sink.out = resp;
	sink.max = c->max_response;
	sink.over = 0;
	sink.st = WSE_OK;

	if (asprintf(&ct_line, "Content-Type:%s%s", content_type ? " " : "",
	    content_type ? content_type : "") == -1) {
		ct_line = NULL;
		st = wse_err(WSE_ERR_NOMEM, "no memory");
		goto out;
	}
	if ((tmp = curl_slist_append(headers, ct_line)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "no memory");
		goto out;
	}
	headers = tmp;
	/* No "Expect: 100-continue" round trip. */
	if ((tmp = curl_slist_append(headers, "Expect:")) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "no memory");
		goto out;
	}
	headers = tmp;
	if (connect_addr != NULL) {
		if ((st = connect_to_entry(connect_addr, &entry)) != WSE_OK)
			goto out;
		if ((connect_to = curl_slist_append(NULL, entry)) == NULL) {
			st = wse_err(WSE_ERR_NOMEM, "no memory");
			goto out;
		}
	}
	c->errbuf[0] = '\0';
	if (curl_easy_setopt(c->curl, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers) !=
	    CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_CONNECT_TO, connect_to) !=
	    CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)len) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS,
	    body != NULL ? body : "") != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &sink) != CURLE_OK) {
		st = wse_err(WSE_ERR_INTERNAL, "cannot configure curl");
		goto out;
	}
	if (sink.fn != NULL && (
	    curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header) !=
	    CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, &sink) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, 0L) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)0) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 1L) !=
	    CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_BUFFERSIZE, 512L * 1024) !=
	    CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME,
	    c->timeout_ms / 1000 > 0 ? c->timeout_ms / 1000 : 1L) !=
	    CURLE_OK)) {
		st = wse_err(WSE_ERR_INTERNAL, "cannot configure curl");
		goto restore;
	}
	rc = curl_easy_perform(c->curl);
	/* Nothing set per call may outlive the call. */
	(void)curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	(void)curl_easy_setopt(c->curl, CURLOPT_CONNECT_TO, NULL);
	(void)curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, "");
	(void)curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, NULL);
	*sinkp = sink;
	if (rc == CURLE_WRITE_ERROR && sink.aborted) {
		st = wse_err_last_status() != WSE_OK ? wse_err_last_status() :
		    wse_err(WSE_ERR_IO,
		    "POST %s: the receiver stopped the transfer", url);
		goto restore;
	}
	if (rc == CURLE_WRITE_ERROR && sink.st != WSE_OK) {
		st = wse_err(sink.st, "POST %s: the response does not fit "
		    "the buffer (%zu bytes)", url, wse_buf_max(resp));
		goto out;
	}
	if ((rc == CURLE_WRITE_ERROR && sink.over) ||
	    rc == CURLE_FILESIZE_EXCEEDED) {
		st = wse_err(WSE_ERR_TOO_LARGE, "POST %s: response over %zu "
		    "bytes", url, c->max_response);
		goto out;
	}
	if (rc != CURLE_OK) {
		st = wse_err(curl_status(rc), "POST %s: %s%s%s", url,
		    curl_easy_strerror(rc), c->errbuf[0] != '\0' ? ": " : "",
		    c->errbuf);
		goto out;
	}
	(void)curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
	if (status_r != NULL)
		*status_r = code;
	st = WSE_OK;
restore:
	if (sink.fn != NULL) {
		(void)curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, NULL);
		(void)curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, NULL);
		(void)curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS,
		    (long)c->timeout_ms);
		(void)curl_easy_setopt(c->curl, CURLOPT_MAXFILESIZE_LARGE,
		    (curl_off_t)c->max_response);
		(void)curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 0L);
		(void)curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, 0L);
		(void)curl_easy_setopt(c->curl, CURLOPT_BUFFERSIZE,
		    (long)CURL_MAX_WRITE_SIZE);
	}
out:
	/* A failed call leaves no partial answer in a buffer it found
	 * empty. */
	if (st != WSE_OK && start == 0 && wse_buf_len(resp) > 0)
		wse_buf_reset(resp);
	curl_slist_free_all(headers);
	curl_slist_free_all(connect_to);
	free(ct_line);
	free(entry);
	return st;
}

wse_status
wse_http_post(wse_http_client *c, const char *url, const char *connect_addr,
    const char *content_type, const void *body, size_t len, wse_buf *resp,
    long *status_r)
{
	struct sink sink;

	memset(&sink, 0, sizeof(sink));
	return post(c, url, connect_addr, content_type, body, len, resp,
	    status_r, &sink);
}

wse_status
wse_http_get(wse_http_client *c, const char *url, const char *connect_addr,
    size_t max, wse_buf *resp, long *status_r)
{
	struct sink sink;
	struct curl_slist *connect_to = NULL;
	char *entry = NULL;
	size_t start;
	long code = 0;
	CURLcode rc;
	wse_status st;

	if (status_r != NULL)
		*status_r = 0;
	if (c == NULL || url == NULL || resp == NULL)
		return wse_err(WSE_ERR_INVALID, "http get: bad arguments");
	/* curl is limited to https already; say so before connecting. */
	if (strncasecmp(url, "https://", 8) != 0)
		return wse_err(WSE_ERR_INVALID, "GET %.200s: not an https URL",
		    url);
	if (max == 0)
		max = c->max_response;
	memset(&sink, 0, sizeof(sink));
	start = wse_buf_len(resp);
	sink.out = resp;
	sink.max = max;
	if (connect_addr != NULL) {
		if ((st = connect_to_entry(connect_addr, &entry)) != WSE_OK)
			goto out;
		if ((connect_to = curl_slist_append(NULL, entry)) == NULL) {
			st = wse_err(WSE_ERR_NOMEM, "no memory");
			goto out;
		}
	}
	c->errbuf[0] = '\0';
	/* A Content-Length over max stops the transfer before the body
	 * (MAXFILESIZE); a body without one is cut by on_body. */
	if (curl_easy_setopt(c->curl, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_CONNECT_TO, connect_to) !=
	    CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)max) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &sink) != CURLE_OK) {
		st = wse_err(WSE_ERR_INTERNAL, "cannot configure curl");
		goto restore;
	}
	rc = curl_easy_perform(c->curl);
	if (rc == CURLE_WRITE_ERROR && sink.st != WSE_OK) {
		st = wse_err(sink.st, "GET %.200s: the response does not fit "
		    "the buffer (%zu bytes)", url, wse_buf_max(resp));
		goto restore;
	}
	if ((rc == CURLE_WRITE_ERROR && sink.over) ||
	    rc == CURLE_FILESIZE_EXCEEDED) {
		st = wse_err(WSE_ERR_TOO_LARGE, "GET %.200s: response over %zu "
		    "bytes", url, max);
		goto restore;
	}
	if (rc != CURLE_OK) {
		st = wse_err(curl_status(rc), "GET %.200s: %s%s%s", url,
		    curl_easy_strerror(rc), c->errbuf[0] != '\0' ? ": " : "",
		    c->errbuf);
		goto restore;
	}
	(void)curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
	if (status_r != NULL)
		*status_r = code;
	st = WSE_OK;
restore:
	/* Back to the POST the handle is configured for. */
	(void)curl_easy_setopt(c->curl, CURLOPT_CONNECT_TO, NULL);
	(void)curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, NULL);
	(void)curl_easy_setopt(c->curl, CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)c->max_response);
	(void)curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
out:
	if (st != WSE_OK && start == 0 && wse_buf_len(resp) > 0)
		wse_buf_reset(resp);
	curl_slist_free_all(connect_to);
	free(entry);
	return st;
}

wse_status
wse_http_post_stream(wse_http_client *c, const char *url,
    const char *connect_addr, const char *content_type, const void *body,
    size_t len, wse_http_sink fn, void *fn_arg, wse_buf *resp,
    long *status_r, int *streamed_r, uint64_t *total_r)
{
	struct sink sink;
	wse_status st;

	if (streamed_r != NULL)
		*streamed_r = 0;
	if (total_r != NULL)
		*total_r = 0;
	if (c == NULL || fn == NULL)
		return wse_err(WSE_ERR_INVALID, "http post: bad arguments");
	memset(&sink, 0, sizeof(sink));
	sink.curl = c->curl;
	sink.fn = fn;
	sink.fn_arg = fn_arg;
	st = post(c, url, connect_addr, content_type, body, len, resp,
	    status_r, &sink);
	if (streamed_r != NULL)
		*streamed_r = sink.streaming;
	if (total_r != NULL)
		*total_r = sink.total;
	return st;
}
