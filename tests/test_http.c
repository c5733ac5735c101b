/*
 * test_http.c - the HTTPS transport over real TLS on loopback: a server
 * with a.test's service certificate (minted at test time) on 127.0.0.1,
 * port 0, its loop in a thread; libcurl clients and raw OpenSSL clients.
 * Round trips, client certificates, name and root checks, TLS versions,
 * suites, sessions and renegotiation, encrypted keys, limits, malformed,
 * chunked, slow and pipelined requests, short answers, deferred and
 * cross-thread answers, vanished clients, connection reuse, concurrency,
 * stopping.  Every wait is bounded.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "buf.h"
#include "http.h"
#include "pki.h"
#include "testpki.h"

static testpki pki;
static char root_pem[4096], a_chain[4096], a_key[4096], b_chain[4096],
    b_key[4096];

#define WAIT_MS 5000

static void
path_in(char *out, size_t size, const char *dir, const char *file)
{
	int n = snprintf(out, size, "%s/%s", dir, file);

	assert_true(n > 0 && (size_t)n < size);
}

static int
group_setup(void **state)
{
	(void)state;
	if (testpki_init(&pki, (int64_t)time(NULL)) != WSE_OK)
		return -1;
	path_in(root_pem, sizeof(root_pem), pki.dir, "root/cert.pem");
	path_in(a_chain, sizeof(a_chain), pki.dir, "a.test/chain.pem");
	path_in(a_key, sizeof(a_key), pki.dir, "a.test/service-key.pem");
	path_in(b_chain, sizeof(b_chain), pki.dir, "b.test/chain.pem");
	path_in(b_key, sizeof(b_key), pki.dir, "b.test/service-key.pem");
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	testpki_free(&pki);
	return 0;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- a server in a thread ---- */

enum mode {
	MODE_ECHO,	/* answer at once with the request body */
	MODE_DEFER,	/* answer from a worker thread after 100 ms */
	MODE_HOLD,	/* keep the request for the test to answer */
	MODE_BIG,	/* answer big_len bytes */
};

#define MAX_WORKERS 8
#define MAX_PEERS 64

struct fx {
	wse_http_server *srv;
	pthread_t th;
	wse_status run_st;
	enum mode mode;
	size_t big_len;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* under lock */
	int calls;
	int off_loop;		/* handler ran on another thread */
	char method[8], path[64], query[64], ctype[64], peer[64];
	int has_query, has_ctype;
	size_t body_len;
	size_t nchain;
	char subject[256];
	char domain[64];
	wse_status chain_verdict;
	char peers[MAX_PEERS][64];
	size_t npeers;
	wse_http_req *held;
	pthread_t workers[MAX_WORKERS];
	int nworkers;
};

static void
fx_opts(wse_http_server_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->listen = "127.0.0.1:0";
	o->cert_chain = a_chain;
	o->key = a_key;
	o->client_roots = root_pem;
	o->client_cert = WSE_CLIENT_CERT_OPTIONAL;
	o->max_body = 64 * 1024;
	o->timeout_s = 5;
	o->max_connections = 64;
}

static void *
worker(void *arg)
{
	wse_http_req *req = arg;

	sleep_ms(100);
	wse_http_reply(req, 200, "text/plain", "late", 4);
	return NULL;
}

static void
handler(void *arg, wse_http_req *req)
{
	struct fx *fx = arg;
	wse_cert *const *chain;
	const uint8_t *body;
	const char *s;
	size_t len, n, i;
	char *big;

	pthread_mutex_lock(&fx->lock);
	fx->calls++;
	if (!pthread_equal(pthread_self(), fx->th))
		fx->off_loop = 1;
	snprintf(fx->method, sizeof(fx->method), "%s",
	    wse_http_req_method(req));
	snprintf(fx->path, sizeof(fx->path), "%s", wse_http_req_path(req));
	s = wse_http_req_query(req);
	fx->has_query = s != NULL;
	snprintf(fx->query, sizeof(fx->query), "%s", s ? s : "");
	s = wse_http_req_content_type(req);
	fx->has_ctype = s != NULL;
	snprintf(fx->ctype, sizeof(fx->ctype), "%s", s ? s : "");
	s = wse_http_req_peer_addr(req);
	snprintf(fx->peer, sizeof(fx->peer), "%s", s);
	for (i = 0; i < fx->npeers; i++)
		if (strcmp(fx->peers[i], s) == 0)
			break;
	if (i == fx->npeers && fx->npeers < MAX_PEERS)
		snprintf(fx->peers[fx->npeers++], sizeof(fx->peers[0]), "%s",
		    s);
	body = wse_http_req_body(req, &len);
	fx->body_len = len;
	chain = wse_http_req_peer_chain(req, &n);
	fx->nchain = n;
	fx->subject[0] = fx->domain[0] = '\0';
	fx->chain_verdict = WSE_ERR__COUNT;
	if (n > 0) {
		(void)wse_cert_subject(chain[0], fx->subject,
		    sizeof(fx->subject));
		(void)wse_cert_domain(chain[0], fx->domain,
		    sizeof(fx->domain));
		fx->chain_verdict = wse_trust_verify(pki.trust, chain[0],
		    chain + 1, n - 1, (int64_t)time(NULL),
		    WSE_PURPOSE_SERVICE);
		wse_err_clear();
	}
	pthread_cond_broadcast(&fx->cond);
	switch (fx->mode) {
	case MODE_ECHO:
		pthread_mutex_unlock(&fx->lock);
		if (len > 5 && len < 200 && memcmp(body, "file ", 5) == 0) {
			/* "file PATH OFFSET LENGTH": answer with that range */
			char line[200], path[160];
			unsigned long long off, cnt;
			int fd;

			memcpy(line, body, len);
			line[len] = '\0';
			if (sscanf(line, "file %159s %llu %llu", path, &off,
			    &cnt) != 3 || (fd = open(path, O_RDONLY)) < 0) {
				wse_http_reply(req, 404, NULL, NULL, 0);
				return;
			}
			wse_http_reply_file(req, fd, off, cnt,
			    (uint64_t)lseek(fd, 0, SEEK_END));
			return;
		}
		if (strcmp(wse_http_req_method(req), "GET") == 0)
			wse_http_reply(req, 200, "text/xml", "<wsdl/>", 7);
		else if (len == 9 && memcmp(body, "<bad-st/>", 9) == 0)
			wse_http_reply(req, 42, "text/plain", "x", 1);
		else if (len == 9 && memcmp(body, "<bad-ct/>", 9) == 0)
			wse_http_reply(req, 200, "text/plain\r\nX-Evil: 1",
			    "x", 1);
		else
			wse_http_reply(req, 200, wse_http_req_content_type(req),
			    body, len);
		return;
	case MODE_DEFER:
		if (fx->nworkers < MAX_WORKERS &&
		    pthread_create(&fx->workers[fx->nworkers], NULL, worker,
		    req) == 0)
			fx->nworkers++;
		else
			wse_http_reply(req, 503, NULL, NULL, 0);
		pthread_mutex_unlock(&fx->lock);
		return;
	case MODE_HOLD:
		if (fx->held == NULL) {
			fx->held = req;
			pthread_mutex_unlock(&fx->lock);
			return;
		}
		pthread_mutex_unlock(&fx->lock);
		wse_http_reply(req, 503, NULL, NULL, 0);
		return;
	case MODE_BIG:
		n = fx->big_len;
		pthread_mutex_unlock(&fx->lock);
		if ((big = malloc(n)) == NULL) {
			wse_http_reply(req, 500, NULL, NULL, 0);
			return;
		}
		memset(big, 'x', n);
		wse_http_reply(req, 200, "text/plain", big, n);
		free(big);
		return;
	}
	pthread_mutex_unlock(&fx->lock);
}

static void *
run_thread(void *arg)
{
	struct fx *fx = arg;

	fx->run_st = wse_http_server_run(fx->srv);
	return NULL;
}

static void
fx_start_opts(struct fx *fx, enum mode mode, const wse_http_server_opts *o)
{
	memset(fx, 0, sizeof(*fx));
	pthread_mutex_init(&fx->lock, NULL);
	pthread_cond_init(&fx->cond, NULL);
	fx->mode = mode;
	assert_wse_ok(wse_http_server_new(o, handler, fx, &fx->srv));
	assert_true(wse_http_server_port(fx->srv) > 0);
	/* fx->th is written before the loop can call the handler. */
	pthread_mutex_lock(&fx->lock);
	assert_int_equal(pthread_create(&fx->th, NULL, run_thread, fx), 0);
	pthread_mutex_unlock(&fx->lock);
}

static void
fx_start(struct fx *fx, enum mode mode)
{
	wse_http_server_opts o;

	fx_opts(&o);
	fx_start_opts(fx, mode, &o);
}

static void
fx_stop(struct fx *fx)
{
	int i;

	for (i = 0; i < fx->nworkers; i++)
		pthread_join(fx->workers[i], NULL);
	wse_http_server_stop(fx->srv);
	pthread_join(fx->th, NULL);
	assert_wse_ok(fx->run_st);
	wse_http_server_free(&fx->srv);
	assert_null(fx->srv);
	pthread_cond_destroy(&fx->cond);
	pthread_mutex_destroy(&fx->lock);
}

static int
fx_calls(struct fx *fx)
{
	int n;

	pthread_mutex_lock(&fx->lock);
	n = fx->calls;
	pthread_mutex_unlock(&fx->lock);
	return n;
}

/* Wait until the handler holds a request; returns it (or NULL). */
static wse_http_req *
fx_wait_held(struct fx *fx)
{
	struct timespec until;
	wse_http_req *req;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_MS / 1000;
	pthread_mutex_lock(&fx->lock);
	while (fx->held == NULL &&
	    pthread_cond_timedwait(&fx->cond, &fx->lock, &until) == 0)
		;
	req = fx->held;
	fx->held = NULL;
	pthread_mutex_unlock(&fx->lock);
	return req;
}

/* ---- clients ---- */

static void
client_opts(wse_http_client_opts *o, int with_cert)
{
	memset(o, 0, sizeof(*o));
	o->roots = root_pem;
	if (with_cert) {
		o->cert_chain = b_chain;
		o->key = b_key;
	}
	/* Generous: the concurrency test queues 50 handshakes on one loop
	 * thread, and the test may run beside others (or under ASan). */
	o->connect_timeout_ms = WAIT_MS;
	o->timeout_ms = 2 * WAIT_MS;
	o->max_response = 1024 * 1024;
}

static void
url_for(char *out, size_t size, const char *host, uint16_t port)
{
	snprintf(out, size, "https://%s:%u/wsemail", host, (unsigned)port);
}

/* POST body to a.test on the fixture's port; the answer into resp. */
static wse_status
post(wse_http_client *c, struct fx *fx, const char *body, wse_buf *resp,
    long *status_r)
{
	char url[128];

	url_for(url, sizeof(url), "a.test", wse_http_server_port(fx->srv));
	return wse_http_post(c, url, "127.0.0.1", "application/soap+xml",
	    body, strlen(body), resp, status_r);
}

/* A raw OpenSSL client, for what curl will not do. */
struct raw {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
	unsigned long err;	/* first OpenSSL error of a failure */
};

static int raw_connect_with(struct raw *, uint16_t, int, const char *,
    const char *, const char *);

/* Sessions (session ids or tickets) the server gave raw clients to
 * resume with. */
static int raw_nsessions;

static int
raw_new_session(SSL *ssl, SSL_SESSION *sess)
{
	(void)ssl; (void)sess;
	raw_nsessions++;
	return 0;
}

/* A TCP connection to 127.0.0.1:port, reads and writes timing out
 * after tv. */
static int
loopback_connect(uint16_t port, const struct timeval *tv)
{
	struct sockaddr_in sin;
	int fd;

	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv,
	    sizeof(*tv)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, tv,
	    sizeof(*tv)), 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

static int
raw_connect(struct raw *r, uint16_t port, int max_version,
    const char *cert, const char *key)
{
	return raw_connect_with(r, port, max_version, cert, key, NULL);
}

/* The same, offering only the TLS 1.2 suites ciphers (when not NULL). */
static int
raw_connect_with(struct raw *r, uint16_t port, int max_version,
    const char *cert, const char *key, const char *ciphers)
{
	struct timeval tv = { WAIT_MS / 1000, 0 };

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	assert_non_null(r->ctx = SSL_CTX_new(TLS_client_method()));
	if (max_version != 0) {
		/* Let this client offer old versions at all. */
		SSL_CTX_set_security_level(r->ctx, 0);
		assert_int_equal(SSL_CTX_set_cipher_list(r->ctx,
		    "DEFAULT:@SECLEVEL=0"), 1);
		assert_int_equal(SSL_CTX_set_min_proto_version(r->ctx,
		    TLS1_VERSION), 1);
		assert_int_equal(SSL_CTX_set_max_proto_version(r->ctx,
		    max_version), 1);
	}
	if (ciphers != NULL)
		assert_int_equal(SSL_CTX_set_cipher_list(r->ctx, ciphers), 1);
	SSL_CTX_set_session_cache_mode(r->ctx, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(r->ctx, raw_new_session);
	assert_int_equal(SSL_CTX_load_verify_locations(r->ctx, root_pem,
	    NULL), 1);
	SSL_CTX_set_verify(r->ctx, SSL_VERIFY_PEER, NULL);
	if (cert != NULL) {
		assert_int_equal(SSL_CTX_use_certificate_chain_file(r->ctx,
		    cert), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(r->ctx, key,
		    SSL_FILETYPE_PEM), 1);
	}
	r->fd = loopback_connect(port, &tv);
	assert_non_null(r->ssl = SSL_new(r->ctx));
	assert_int_equal(SSL_set_fd(r->ssl, r->fd), 1);
	assert_int_equal(SSL_set_tlsext_host_name(r->ssl, "a.test"), 1);
	assert_int_equal(SSL_set1_host(r->ssl, "a.test"), 1);
	if (SSL_connect(r->ssl) != 1) {
		r->err = ERR_peek_error();
		ERR_clear_error();
		return -1;
	}
	return 0;
}

static void
raw_close(struct raw *r)
{
	if (r->ssl != NULL)
		SSL_free(r->ssl);
	if (r->fd >= 0)
		close(r->fd);
	SSL_CTX_free(r->ctx);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
	ERR_clear_error();
}

/* Send text; read the answer until the server closes.  Returns the HTTP
 * status (0 if none) and the whole answer in out. */
static int
raw_exchange(struct raw *r, const char *text, char *out, size_t size)
{
	size_t got = 0;
	int n, status = 0;

	assert_int_equal(SSL_write(r->ssl, text, (int)strlen(text)),
	    (int)strlen(text));
	while (got + 1 < size &&
	    (n = SSL_read(r->ssl, out + got, (int)(size - 1 - got))) > 0)
		got += (size_t)n;
	out[got] = '\0';
	ERR_clear_error();
	if (sscanf(out, "HTTP/1.1 %d", &status) != 1)
		status = 0;
	return status;
}

/* Writes to a connection the server has closed fail with EPIPE instead
 * of killing the test: SIGPIPE is held off this thread in between. */
static void
sigpipe_hold(sigset_t *old)
{
	sigset_t pipe_set;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &pipe_set, old), 0);
}

static void
sigpipe_release(const sigset_t *old)
{
	static const struct timespec zero = { 0, 0 };
	sigset_t pipe_set;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
		;
	assert_int_equal(pthread_sigmask(SIG_SETMASK, old, NULL), 0);
}

/* Send text on r and read the answer until the server closes: the status
 * (0 if none).  The server may answer and close before it has read
 * everything (a refusal): the rest of the write fails. */
static int
raw_one_on(struct raw *r, const char *text, char *out, size_t size)
{
	sigset_t old;
	size_t got = 0;
	int n, status = 0;

	sigpipe_hold(&old);
	(void)SSL_write(r->ssl, text, (int)strlen(text));
	while (got + 1 < size &&
	    (n = SSL_read(r->ssl, out + got, (int)(size - 1 - got))) > 0)
		got += (size_t)n;
	out[got] = '\0';
	ERR_clear_error();
	if (sscanf(out, "HTTP/1.1 %d", &status) != 1)
		status = 0;
	sigpipe_release(&old);
	return status;
}

/* The same on a connection of its own. */
static int
raw_one(uint16_t port, const char *text, char *out, size_t size)
{
	struct raw r;
	int status;

	assert_int_equal(raw_connect(&r, port, 0, NULL, NULL), 0);
	status = raw_one_on(&r, text, out, size);
	raw_close(&r);
	return status;
}

/* A one-shot raw TLS server (a.test's certificate) with a canned answer,
 * for answers evhttp never gives: chunked, redirects, none at all. */
struct rawsrv {
	int lfd;
	uint16_t port;
	const char *answer;
	size_t answer_len;
	int accepted;
	pthread_t th;
};

static void *
rawsrv_thread(void *arg)
{
	struct rawsrv *rs = arg;
	struct timeval tv = { WAIT_MS / 1000, 0 };
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	char buf[8192], *end, *cl;
	size_t got = 0, want = 0;
	int fd, n;

	if ((fd = accept(rs->lfd, NULL, NULL)) < 0)
		return NULL;
	rs->accepted++;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_use_certificate_chain_file(ctx, a_chain) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, a_key, SSL_FILETYPE_PEM) != 1 ||
	    (ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1 ||
	    SSL_accept(ssl) != 1)
		goto out;
	/* Read the request: headers, then Content-Length bytes. */
	for (;;) {
		if (got + 1 >= sizeof(buf) ||
		    (n = SSL_read(ssl, buf + got, (int)(sizeof(buf) - 1 -
		    got))) <= 0)
			goto out;
		got += (size_t)n;
		buf[got] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) == NULL)
			continue;
		if (want == 0) {
			want = (size_t)(end + 4 - buf);
			if ((cl = strstr(buf, "Content-Length: ")) != NULL &&
			    cl < end)
				want += strtoul(cl + 16, NULL, 10);
		}
		if (got >= want)
			break;
	}
	if (rs->answer_len > 0)
		(void)SSL_write(ssl, rs->answer, (int)rs->answer_len);
	(void)SSL_shutdown(ssl);
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	ERR_clear_error();
	return NULL;
}

/* Listen on a free loopback port (rs->port); rawsrv_go serves. */
static void
rawsrv_listen(struct rawsrv *rs)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);

	memset(rs, 0, sizeof(*rs));
	assert_true((rs->lfd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(rs->lfd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	assert_int_equal(listen(rs->lfd, 8), 0);
	assert_int_equal(getsockname(rs->lfd, (struct sockaddr *)&sin,
	    &slen), 0);
	rs->port = ntohs(sin.sin_port);
}

static void
rawsrv_go(struct rawsrv *rs, const char *answer, size_t len)
{
	rs->answer = answer;
	rs->answer_len = len;
	assert_int_equal(pthread_create(&rs->th, NULL, rawsrv_thread, rs), 0);
}

static void
rawsrv_start(struct rawsrv *rs, const char *answer, size_t len)
{
	rawsrv_listen(rs);
	rawsrv_go(rs, answer, len);
}

static void
rawsrv_stop(struct rawsrv *rs)
{
	pthread_join(rs->th, NULL);
	close(rs->lfd);
}

/* ---- tests ---- */

static void
test_echo_post(void **state)
{
	struct fx fx;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);
	wse_http_client_opts co;
	char expect_peer[32];
	long status = 0;

	(void)state;
	fx_start(&fx, MODE_ECHO);
	client_opts(&co, 0);
	assert_wse_ok(wse_http_client_new(&co, &c));
	assert_wse_ok(post(c, &fx, "<e>hello</e>", resp, &status));
	assert_int_equal(status, 200);
	assert_string_equal(wse_buf_str(resp), "<e>hello</e>");

	pthread_mutex_lock(&fx.lock);
	assert_int_equal(fx.calls, 1);
	assert_false(fx.off_loop);
	assert_string_equal(fx.method, "POST");
	assert_string_equal(fx.path, "/wsemail");
	assert_false(fx.has_query);
	assert_true(fx.has_ctype);
	assert_string_equal(fx.ctype, "application/soap+xml");
	assert_int_equal(fx.body_len, 12);
	assert_int_equal(fx.nchain, 0);
	snprintf(expect_peer, sizeof(expect_peer), "127.0.0.1:");
	assert_memory_equal(fx.peer, expect_peer, strlen(expect_peer));
	assert_true(strlen(fx.peer) > strlen(expect_peer));
	pthread_mutex_unlock(&fx.lock);

	/* An empty body, and no content type. */
	wse_buf_reset(resp);
	{
		char url[128];

		url_for(url, sizeof(url), "a.test",
		    wse_http_server_port(fx.srv));
		assert_wse_ok(wse_http_post(c, url, "127.0.0.1", NULL, NULL,
		    0, resp, &status));
	}
	assert_int_equal(status, 200);
	assert_int_equal(wse_buf_len(resp), 0);
	pthread_mutex_lock(&fx.lock);
	assert_int_equal(fx.body_len, 0);
	assert_false(fx.has_ctype);
	pthread_mutex_unlock(&fx.lock);

	/* Bad answers become 500 with nothing in them. */
	wse_buf_reset(resp);
	assert_wse_ok(post(c, &fx, "<bad-st/>", resp, &status));
	assert_int_equal(status, 500);
	assert_int_equal(wse_buf_len(resp), 0);
	assert_wse_ok(post(c, &fx, "<bad-ct/>", resp, &status));
	assert_int_equal(status, 500);
	assert_int_equal(wse_buf_len(resp), 0);

	wse_http_client_free(&c);
	assert_null(c);
	wse_http_client_free(&c);
	wse_buf_free(&resp);
	fx_stop(&fx);
}

static void
test_wsdl_get_and_methods(void **state)
{
	struct fx fx;
	struct raw r;
	char out[8192];
	uint16_t port;

	(void)state;
	fx_start(&fx, MODE_ECHO);
	port = wse_http_server_port(fx.srv);
	assert_int_equal(raw_connect(&r, port, 0, NULL, NULL), 0);
	assert_int_equal(raw_exchange(&r, "GET /wsemail?wsdl HTTP/1.1\r\n"
	    "Host: a.test\r\nConnection: close\r\n\r\n", out, sizeof(out)),
	    200);
	assert_non_null(strstr(out, "Content-Type: text/xml"));
	assert_non_null(strstr(out, "\r\n\r\n<wsdl/>"));
	raw_close(&r);
	pthread_mutex_lock(&fx.lock);
	assert_int_equal(fx.calls, 1);
	assert_string_equal(fx.method, "GET");
	assert_string_equal(fx.path, "/wsemail");
	assert_true(fx.has_query);
	assert_string_equal(fx.query, "wsdl");
	pthread_mutex_unlock(&fx.lock);

	/* Other methods never reach the handler. */
	assert_int_equal(raw_connect(&r, port, 0, NULL, NULL), 0);
	assert_int_equal(raw_exchange(&r, "PUT /wsemail HTTP/1.1\r\n"
	    "Host: a.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
	    out, sizeof(out)), 501);
	raw_close(&r);
	assert_int_equal(raw_connect(&r, port, 0, NULL, NULL), 0);
	assert_int_equal(raw_exchange(&r, "DELETE /wsemail HTTP/1.1\r\n"
	    "Host: a.test\r\nConnection: close\r\n\r\n", out, sizeof(out)),
	    501);
	raw_close(&r);
	/* Headers over the limit. */
	{
		static char big[40 * 1024];
		size_t n;

		n = (size_t)snprintf(big, sizeof(big), "POST /wsemail "
		    "HTTP/1.1\r\nHost: a.test\r\nX-Pad: ");
		memset(big + n, 'p', 20 * 1024);
		n += 20 * 1024;
		snprintf(big + n, sizeof(big) - n, "\r\nContent-Length: 0\r\n"
		    "Connection: close\r\n\r\n");
		assert_int_equal(raw_connect(&r, port, 0, NULL, NULL), 0);
		assert_int_not_equal(raw_exchange(&r, big, out, sizeof(out)),
		    200);
		raw_close(&r);
	}
	assert_int_equal(fx_calls(&fx), 1);
	fx_stop(&fx);
}

static void
test_peer_chain(void **state)
{
	struct fx fx;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);
	wse_http_client_opts co;
	long status = 0;

	(void)state;
	fx_start(&fx, MODE_ECHO);
	client_opts(&co, 1);
	assert_wse_ok(wse_http_client_new(&co, &c));
	assert_wse_ok(post(c, &fx, "<x/>", resp, &status));
	assert_int_equal(status, 200);
	pthread_mutex_lock(&fx.lock);
	assert_true(fx.nchain >= 2);
	assert_non_null(strstr(fx.subject, "CN=b.test"));
	assert_string_equal(fx.domain, "b.test");
	assert_int_equal(fx.chain_verdict, WSE_OK);
	pthread_mutex_unlock(&fx.lock);
	wse_http_client_free(&c);

	/* Without a certificate: an empty chain. */
	client_opts(&co, 0);
	assert_wse_ok(wse_http_client_new(&co, &c));
	assert_wse_ok(post(c, &fx, "<x/>", resp, &status));
	pthread_mutex_lock(&fx.lock);
	assert_int_equal(fx.nchain, 0);
	pthread_mutex_unlock(&fx.lock);
	wse_http_client_free(&c);
	wse_buf_free(&resp);
	fx_stop(&fx);
}

/* A server that does not ask for certificates sees none. */
static void
test_no_client_cert(void **state)
{
	struct fx fx;
	wse_http_server_opts o;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);
	wse_http_client_opts co;
	long status = 0;

	(void)state;
	fx_opts(&o);
	o.client_cert = WSE_CLIENT_CERT_NONE;
	o.client_roots = NULL;
	fx_start_opts(&fx, MODE_ECHO, &o);
	client_opts(&co, 1);
	assert_wse_ok(wse_http_client_new(&co, &c));
	assert_wse_ok(post(c, &fx, "<x/>", resp, &status));
	assert_int_equal(status, 200);
	pthread_mutex_lock(&fx.lock);
	assert_int_equal(fx.calls, 1);
	assert_int_equal(fx.nchain, 0);
	pthread_mutex_unlock(&fx.lock);
	wse_http_client_free(&c);
	wse_buf_free(&resp);
	fx_stop(&fx);
}

static void
test_required_client_cert(void **state)
{
	struct fx fx;
	wse_http_server_opts o;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);
	wse_http_client_opts co;
	long status = 0;

	(void)state;
	fx_opts(&o);
	o.client_cert = WSE_CLIENT_CERT_REQUIRED;
	fx_start_opts(&fx, MODE_ECHO, &o);
	client_opts(&co, 0);
	assert_wse_ok(wse_http_client_new(&co, &c));
	assert_wse_status(post(c, &fx, "<x/>", resp, &status),
	    WSE_ERR_TEMPFAIL);
	wse_err_clear();
	assert_int_equal(fx_calls(&fx), 0);
	wse_http_client_free(&c);

	client_opts(&co, 1);
	assert_wse_ok(wse_http_client_new(&co, &c));
	assert_wse_ok(post(c, &fx, "<x/>", resp, &status));
	assert_int_equal(status, 200);
	assert_int_equal(fx_calls(&fx), 1);
	wse_http_client_free(&c);
	wse_buf_free(&resp);
	fx_stop(&fx);
}

static void
test_wrong_name(void **state)
{
	struct fx fx;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);
	wse_http_client_opts co;
	char url[128];
	long status = 0;

	(void)state;
	fx_start(&fx, MODE_ECHO);
	client_opts(&co, 0);
	assert_wse_ok(wse_http_client_new(&co, &c));
	/* The server presents a.test (and mail.a.test); ask for b.test. */
	url_for(url, sizeof(url), "b.test", wse_http_server_port(fx.srv));
	assert_wse_status(wse_http_post(c, url, "127.0.0.1", "text/plain",
	    "x", 1, resp, &status), WSE_ERR_UNTRUSTED);
	wse_err_clear();
	/* Its other name is fine. */
	url_for(url, sizeof(url), "mail.a.test",
	    wse_http_server_port(fx.srv));
	assert_wse_ok(wse_http_post(c, url, "127.0.0.1", "text/plain", "x",
	    1, resp, &status));
	assert_int_equal(status, 200);
	/* An IP address is not a name in the certificate either. */
	url_for(url, sizeof(url), "127.0.0.1", wse_http_server_port(fx.srv));
	assert_wse_status(wse_http_post(c, url, NULL, "text/plain", "x", 1,
	    resp, &status), WSE_ERR_UNTRUSTED);
	wse_err_clear();
	assert_int_equal(fx_calls(&fx), 1);
	wse_http_client_free(&c);
	wse_buf_free(&resp);
	fx_stop(&fx);
}

static void
test_other_root(void **state)
{
	testpki other;
	struct fx fx;
	struct raw r;
	wse_http_server_opts o;
	char out[4096];
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);
	wse_http_client_opts co;
	char oroot[4096], ochain[4096], okey[4096];
	long status = 0;

	(void)state;
	assert_wse_ok(testpki_init(&other, (int64_t)time(NULL)));
	path_in(oroot, sizeof(oroot), other.dir, "root/cert.pem");
	path_in(ochain, sizeof(ochain), other.dir, "b.test/chain.pem");
	path_in(okey, sizeof(okey), other.dir, "b.test/service-key.pem");
	fx_start(&fx, MODE_ECHO);

	/* The client trusts only the other root. */
	client_opts(&co, 0);
	co.roots = oroot;
	assert_wse_ok(wse_http_client_new(&co, &c));
	assert_wse_status(post(c, &fx, "<x/>", resp, &status),
	    WSE_ERR_UNTRUSTED);
	wse_err_clear();
	wse_http_client_free(&c);

	/* A client certificate from the other root: the server refuses
	 * the handshake (optional certificates are verified when given). */
	client_opts(&co, 0);
	co.cert_chain = ochain;
	co.key = okey;
	assert_wse_ok(wse_http_client_new(&co, &c));
	assert_wse_status(post(c, &fx, "<x/>", resp, &status),
	    WSE_ERR_TEMPFAIL);
	wse_err_clear();
	wse_http_client_free(&c);

	assert_int_equal(fx_calls(&fx), 0);
	fx_stop(&fx);

	/* The same where a certificate is required; then one from the
	 * right root is let in. */
	fx_opts(&o);
	o.client_cert = WSE_CLIENT_CERT_REQUIRED;
	fx_start_opts(&fx, MODE_ECHO, &o);
	client_opts(&co, 0);
	co.cert_chain = ochain;
	co.key = okey;
	assert_wse_ok(wse_http_client_new(&co, &c));
	assert_wse_status(post(c, &fx, "<x/>", resp, &status),
	    WSE_ERR_TEMPFAIL);
	wse_err_clear();
	wse_http_client_free(&c);
	/* TLS 1.2: the handshake ends with an unknown_ca alert.  TLS 1.3:
	 * the client is done before the server has judged it; the alert
	 * comes instead of an answer. */
	assert_int_equal(raw_connect(&r, wse_http_server_port(fx.srv),
	    TLS1_2_VERSION, ochain, okey), -1);
	assert_int_equal(ERR_GET_REASON(r.err),
	    SSL_R_TLSV1_ALERT_UNKNOWN_CA);
	raw_close(&r);
	if (raw_connect(&r, wse_http_server_port(fx.srv), 0, ochain,
	    okey) == 0)
		assert_int_equal(raw_one_on(&r, "POST /wsemail HTTP/1.1\r\n"
		    "Host: a.test\r\nContent-Length: 4\r\n\r\n<x/>", out,
		    sizeof(out)), 0);
	raw_close(&r);
	assert_int_equal(fx_calls(&fx), 0);
	client_opts(&co, 1);
	assert_wse_ok(wse_http_client_new(&co, &c));
	assert_wse_ok(post(c, &fx, "<x/>", resp, &status));
	assert_int_equal(status, 200);
	assert_int_equal(fx_calls(&fx), 1);
	wse_http_client_free(&c);
	fx_stop(&fx);
	wse_buf_free(&resp);
	testpki_free(&other);
}

static void
test_tls_versions(void **state)
{
	struct fx fx;
	struct raw r;
	uint16_t port;
	char out[4096];
	const char *cipher;

	(void)state;
	fx_start(&fx, MODE_ECHO);
	port = wse_http_server_port(fx.srv);

	/* TLS 1.1: the server answers with a protocol_version alert. */
	assert_int_equal(raw_connect(&r, port, TLS1_1_VERSION, NULL, NULL),
	    -1);
	assert_int_equal(ERR_GET_REASON(r.err),
	    SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
	raw_close(&r);
	assert_int_equal(raw_connect(&r, port, TLS1_VERSION, NULL, NULL), -1);
	raw_close(&r);

	/* TLS 1.2 with the same permissive client: an AEAD suite. */
	assert_int_equal(raw_connect(&r, port, TLS1_2_VERSION, NULL, NULL),
	    0);
	assert_int_equal(SSL_version(r.ssl), TLS1_2_VERSION);
	cipher = SSL_get_cipher_name(r.ssl);
	assert_non_null(strstr(cipher, "ECDHE"));
	assert_true(strstr(cipher, "GCM") != NULL ||
	    strstr(cipher, "CHACHA20") != NULL);
	assert_int_equal(raw_exchange(&r, "POST /wsemail HTTP/1.1\r\n"
	    "Host: a.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
	    out, sizeof(out)), 200);
	raw_close(&r);

	/* Default client: TLS 1.3. */
	assert_int_equal(raw_connect(&r, port, 0, NULL, NULL), 0);
	assert_int_equal(SSL_version(r.ssl), TLS1_3_VERSION);
	raw_close(&r);
	assert_int_equal(fx_calls(&fx), 1);
	fx_stop(&fx);
}

/* What the TLS layer refuses besides old versions: TLS 1.2 suites
 * without forward secrecy or AEAD, sessions to resume (each connection
 * shows its certificate afresh), renegotiation, and plain HTTP on the
 * TLS port. */
static void
test_tls_refusals(void **state)
{
	struct fx fx;
	struct raw r;
	struct timeval tv = { WAIT_MS / 1000, 0 };
	const char *plain = "POST /wsemail HTTP/1.1\r\nHost: a.test\r\n"
	    "Content-Length: 4\r\nConnection: close\r\n\r\n<x/>";
	char out[4096];
	uint16_t port;
	ssize_t n;
	size_t got;
	int fd;

	(void)state;
	fx_start(&fx, MODE_ECHO);
	port = wse_http_server_port(fx.srv);

	/* RSA key exchange, CBC, no AEAD: no shared suite. */
	assert_int_equal(raw_connect_with(&r, port, TLS1_2_VERSION, NULL,
	    NULL, "AES128-SHA:AES256-SHA256:AES128-GCM-SHA256:"
	    "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA"), -1);
	assert_int_equal(ERR_GET_REASON(r.err),
	    SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE);
	raw_close(&r);

	/* No session to resume (neither a session id nor a ticket), with
	 * TLS 1.2 or 1.3. */
	raw_nsessions = 0;
	assert_int_equal(raw_connect(&r, port, TLS1_2_VERSION, b_chain,
	    b_key), 0);
	assert_int_equal(raw_one_on(&r, plain, out, sizeof(out)), 200);
	raw_close(&r);
	assert_int_equal(raw_nsessions, 0);
	assert_int_equal(raw_connect(&r, port, 0, b_chain, b_key), 0);
	assert_int_equal(raw_one_on(&r, plain, out, sizeof(out)), 200);
	raw_close(&r);
	assert_int_equal(raw_nsessions, 0);

	/* A client asking to renegotiate TLS 1.2 is refused, and its
	 * request not served. */
	assert_int_equal(raw_connect(&r, port, TLS1_2_VERSION, NULL, NULL),
	    0);
	assert_int_equal(SSL_renegotiate(r.ssl), 1);
	assert_int_not_equal(SSL_do_handshake(r.ssl), 1);
	assert_int_not_equal(raw_one_on(&r, plain, out, sizeof(out)), 200);
	raw_close(&r);

	/* Plain HTTP on the TLS port: no answer but a closed connection. */
	fd = loopback_connect(port, &tv);
	assert_int_equal(send(fd, plain, strlen(plain), MSG_NOSIGNAL),
	    (ssize_t)strlen(plain));
	got = 0;
	while (got + 1 < sizeof(out) &&
	    (n = recv(fd, out + got, sizeof(out) - 1 - got, 0)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	assert_null(strstr(out, "HTTP/1.1"));
	assert_true(n == 0 || (n < 0 && errno != EAGAIN &&
	    errno != EWOULDBLOCK));
	close(fd);

	assert_int_equal(fx_calls(&fx), 2);
	fx_stop(&fx);
}

/* Write key (PEM) again as path, encrypted under "secret". */
static void
encrypt_key(const char *key, const char *path)
{
	EVP_PKEY *pk = NULL;
	FILE *f;

	assert_non_null(f = fopen(key, "r"));
	assert_non_null(pk = PEM_read_PrivateKey(f, NULL, NULL, NULL));
	fclose(f);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(PEM_write_PrivateKey(f, pk, EVP_aes_256_cbc(),
	    (unsigned char *)"secret", 6, NULL, NULL), 1);
	fclose(f);
	EVP_PKEY_free(pk);
}

/* An encrypted key is refused, by the server and by the client, without
 * asking anyone for its passphrase (here: a standard input that would
 * give it). */
static void
test_encrypted_keys(void **state)
{
	struct fx fx;
	wse_http_server_opts o;
	wse_http_server *srv = NULL;
	wse_http_client_opts co;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);
	char ea[4096], eb[4096];
	long status = 0;
	int p[2], saved;

	(void)state;
	path_in(ea, sizeof(ea), pki.dir, "a.test/enc-key.pem");
	path_in(eb, sizeof(eb), pki.dir, "b.test/enc-key.pem");
	encrypt_key(a_key, ea);
	encrypt_key(b_key, eb);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "secret\nsecret\nsecret\n", 21), 21);
	close(p[1]);
	assert_true((saved = dup(0)) >= 0);
	assert_int_equal(dup2(p[0], 0), 0);
	close(p[0]);

	fx_opts(&o);
	o.key = ea;
	assert_wse_status(wse_http_server_new(&o, handler, NULL, &srv),
	    WSE_ERR_CONFIG);
	wse_err_clear();
	assert_null(srv);

	fx_start(&fx, MODE_ECHO);
	client_opts(&co, 1);
	co.key = eb;
	assert_wse_ok(wse_http_client_new(&co, &c));
	assert_wse_status(post(c, &fx, "<x/>", resp, &status),
	    WSE_ERR_CONFIG);
	wse_err_clear();
	wse_http_client_free(&c);
	assert_int_equal(fx_calls(&fx), 0);
	fx_stop(&fx);

	assert_int_equal(dup2(saved, 0), 0);
	close(saved);
	unlink(ea);
	unlink(eb);
	wse_buf_free(&resp);
}

static void
test_body_too_large(void **state)
{
	struct fx fx;
	wse_http_server_opts o;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);
	wse_http_client_opts co;
	char *body;
	long status = 0;

	(void)state;
	fx_opts(&o);
	o.max_body = 1024;
	fx_start_opts(&fx, MODE_ECHO, &o);
	client_opts(&co, 0);
	assert_wse_ok(wse_http_client_new(&co, &c));
	assert_non_null(body = malloc(64 * 1024 + 1));
	memset(body, 'b', 64 * 1024);
	body[4096] = '\0';
	assert_wse_ok(post(c, &fx, body, resp, &status));
	assert_int_equal(status, 413);
	assert_int_equal(fx_calls(&fx), 0);
	/* Much larger than the limit. */
	body[64 * 1024] = '\0';
	body[4096] = 'b';
	assert_wse_ok(post(c, &fx, body, resp, &status));
	assert_int_equal(status, 413);
	assert_int_equal(fx_calls(&fx), 0);
	/* Exactly the limit is fine. */
	body[1024] = '\0';
	wse_buf_reset(resp);
	assert_wse_ok(post(c, &fx, body, resp, &status));
	assert_int_equal(status, 200);
	assert_int_equal(wse_buf_len(resp), 1024);
	assert_int_equal(fx_calls(&fx), 1);
	free(body);
	wse_http_client_free(&c);
	wse_buf_free(&resp);
	fx_stop(&fx);
}

/* A good request still works (the server is healthy). */
static void
raw_good(uint16_t port)
{
	char out[4096];

	assert_int_equal(raw_one(port, "POST /wsemail HTTP/1.1\r\n"
	    "Host: a.test\r\nContent-Length: 4\r\nConnection: close\r\n\r\n"
	    "<ok>", out, sizeof(out)), 200);
	assert_non_null(strstr(out, "\r\n\r\n<ok>"));
}

/* Requests evhttp refuses before the handler: a clear status each, the
 * handler never called, the server fine afterwards. */
static void
test_malformed_requests(void **state)
{
	static const struct {
		const char *text;
		int status;
	} bad[] = {
		/* not HTTP */
		{ "HELLO\r\n\r\n", 400 },
		{ "POST\r\n\r\n", 400 },
		{ "POST /wsemail HTTP/9.9\r\nHost: a.test\r\n\r\n", 400 },
		/* a header line without a colon */
		{ "POST /wsemail HTTP/1.1\r\nHost a.test\r\n"
		  "Content-Length: 0\r\n\r\n", 400 },
		/* lengths that are not one */
		{ "POST /wsemail HTTP/1.1\r\nHost: a.test\r\n"
		  "Content-Length: abc\r\n\r\nabc", 400 },
		{ "POST /wsemail HTTP/1.1\r\nHost: a.test\r\n"
		  "Content-Length: -5\r\n\r\n", 400 },
		/* chunked: a size that is not hex (evhttp counts a corrupt
		 * chunk as too long), and one over max_body */
		{ "POST /wsemail HTTP/1.1\r\nHost: a.test\r\n"
		  "Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
		  413 },
		{ "POST /wsemail HTTP/1.1\r\nHost: a.test\r\n"
		  "Transfer-Encoding: chunked\r\n\r\n401\r\n", 413 },
	};
	struct fx fx;
	wse_http_server_opts o;
	char out[8192], *text;
	uint16_t port;
	size_t i, n;

	(void)state;
	fx_opts(&o);
	o.max_body = 1024;
	fx_start_opts(&fx, MODE_ECHO, &o);
	port = wse_http_server_port(fx.srv);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int got = raw_one(port, bad[i].text, out, sizeof(out));

		if (got != bad[i].status)
			fail_msg("case %zu: status %d, expected %d", i, got,
			    bad[i].status);
		assert_int_equal(fx_calls(&fx), 0);
	}

	/* Headers over the limit (evhttp: 400, a bad header). */
	assert_non_null(text = malloc(40 * 1024));
	n = (size_t)snprintf(text, 64, "POST /wsemail HTTP/1.1\r\nX-Pad: ");
	memset(text + n, 'p', 20 * 1024);
	n += 20 * 1024;
	snprintf(text + n, 64, "\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(raw_one(port, text, out, sizeof(out)), 400);
	/* So many small headers that they are over the limit together. */
	n = (size_t)snprintf(text, 64, "POST /wsemail HTTP/1.1\r\n");
	for (i = 0; i < 3000; i++)
		n += (size_t)snprintf(text + n, 16, "X-%04zu: y\r\n", i);
	snprintf(text + n, 64, "Content-Length: 0\r\n\r\n");
	assert_int_equal(raw_one(port, text, out, sizeof(out)), 400);
	free(text);
	assert_int_equal(fx_calls(&fx), 0);

	/* A chunked body within the limit reaches the handler whole; two
	 * chunks of 1024 together are over it. */
	assert_int_equal(raw_one(port, "POST /wsemail HTTP/1.1\r\n"
	    "Host: a.test\r\nTransfer-Encoding: chunked\r\n"
	    "Connection: close\r\n\r\n3\r\n<c>\r\n4\r\n</c>\r\n0\r\n\r\n",
	    out, sizeof(out)), 200);
	assert_non_null(strstr(out, "\r\n\r\n<c></c>"));
	assert_int_equal(fx_calls(&fx), 1);
	pthread_mutex_lock(&fx.lock);
	assert_int_equal(fx.body_len, 7);
	pthread_mutex_unlock(&fx.lock);
	assert_non_null(text = malloc(4096));
	n = (size_t)snprintf(text, 128, "POST /wsemail HTTP/1.1\r\n"
	    "Host: a.test\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (i = 0; i < 2; i++) {
		n += (size_t)snprintf(text + n, 16, "200\r\n");
		memset(text + n, 'c', 512);
		n += 512;
		memcpy(text + n, "\r\n", 2);
		n += 2;
	}
	n += (size_t)snprintf(text + n, 16, "1\r\nc\r\n0\r\n\r\n");
	assert_int_equal(raw_one(port, text, out, sizeof(out)), 413);
	free(text);
	assert_int_equal(fx_calls(&fx), 1);

	raw_good(port);
	assert_int_equal(fx_calls(&fx), 2);
	fx_stop(&fx);
}

/* Milliseconds until the server closes the plain connection fd without
 * a byte (a reset counts as closed; the read timing out does not). */
static double
fd_wait_close(int fd)
{
	double t0 = testutil_now_ms();
	ssize_t n;
	char byte;

	n = recv(fd, &byte, 1, 0);
	assert_true(n == 0 || (n < 0 && errno != EAGAIN &&
	    errno != EWOULDBLOCK));
	return testutil_now_ms() - t0;
}

/* Milliseconds until the server closes r's connection; whatever it sends
 * goes to out. */
static double
raw_wait_close(struct raw *r, char *out, size_t size)
{
	double t0 = testutil_now_ms();
	sigset_t old;
	size_t got = 0;
	int n;

	/* OpenSSL may answer what it reads with an alert. */
	sigpipe_hold(&old);
	while (got + 1 < size &&
	    (n = SSL_read(r->ssl, out + got, (int)(size - 1 - got))) > 0)
		got += (size_t)n;
	out[got] = '\0';
	ERR_clear_error();
	sigpipe_release(&old);
	return testutil_now_ms() - t0;
}

/* Clients that stop half-way or never start are cut off after
 * timeout_s, without reaching the handler. */
static void
test_slow_clients(void **state)
{
	struct fx fx;
	wse_http_server_opts o;
	struct raw r;
	struct timeval tv = { WAIT_MS / 1000, 0 };
	char out[4096];
	const char *text;
	uint16_t port;
	double dt;
	int fd, i;

	(void)state;
	fx_opts(&o);
	o.timeout_s = 1;
	o.max_body = 1024;
	fx_start_opts(&fx, MODE_ECHO, &o);
	port = wse_http_server_port(fx.srv);

	/* Half a header, then silence. */
	assert_int_equal(raw_connect(&r, port, 0, NULL, NULL), 0);
	assert_int_equal(SSL_write(r.ssl, "POST /wsemail HTTP/1.1\r\nHo", 26),
	    26);
	dt = raw_wait_close(&r, out, sizeof(out));
	assert_true(dt < WAIT_MS - 1500);
	assert_null(strstr(out, "HTTP/1.1 200"));
	raw_close(&r);

	/* The headers, and part of the body announced. */
	assert_int_equal(raw_connect(&r, port, 0, NULL, NULL), 0);
	assert_int_equal(SSL_write(r.ssl, "POST /wsemail HTTP/1.1\r\n"
	    "Host: a.test\r\nContent-Length: 100\r\n\r\n<part", 66), 66);
	dt = raw_wait_close(&r, out, sizeof(out));
	assert_true(dt < WAIT_MS - 1500);
	assert_null(strstr(out, "HTTP/1.1 200"));
	raw_close(&r);

	/* A body announced over max_body (or over any length) and not
	 * sent: the server reads what comes, so that a client sending it
	 * sees the 413, and closes at the timeout. */
	for (i = 0; i < 2; i++) {
		assert_int_equal(raw_connect(&r, port, 0, NULL, NULL), 0);
		text = i == 0 ? "POST /wsemail HTTP/1.1\r\nHost: a.test\r\n"
		    "Content-Length: 1025\r\n\r\n" :
		    "POST /wsemail HTTP/1.1\r\nHost: a.test\r\n"
		    "Content-Length: 99999999999999999999999\r\n\r\n";
		assert_int_equal(SSL_write(r.ssl, text, (int)strlen(text)),
		    (int)strlen(text));
		dt = raw_wait_close(&r, out, sizeof(out));
		assert_true(dt < WAIT_MS - 1500);
		assert_null(strstr(out, "HTTP/1.1 200"));
		raw_close(&r);
	}

	/* A truncated body: the client closes its side early. */
	assert_int_equal(raw_connect(&r, port, 0, NULL, NULL), 0);
	assert_int_equal(SSL_write(r.ssl, "POST /wsemail HTTP/1.1\r\n"
	    "Host: a.test\r\nContent-Length: 100\r\n\r\n<part", 66), 66);
	(void)SSL_shutdown(r.ssl);
	(void)shutdown(r.fd, SHUT_WR);
	dt = raw_wait_close(&r, out, sizeof(out));
	assert_true(dt < WAIT_MS - 1500);
	assert_null(strstr(out, "HTTP/1.1 200"));
	raw_close(&r);

	/* A connection that never starts its handshake. */
	fd = loopback_connect(port, &tv);
	assert_true(fd_wait_close(fd) < WAIT_MS - 1500);
	close(fd);

	/* A handshake begun and left: a bare ClientHello header. */
	fd = loopback_connect(port, &tv);
	assert_int_equal(send(fd, "\x16\x03\x01\x02\x00", 5, MSG_NOSIGNAL),
	    5);
	assert_true(fd_wait_close(fd) < WAIT_MS - 1500);
	close(fd);

	assert_int_equal(fx_calls(&fx), 0);
	raw_good(port);
	assert_int_equal(fx_calls(&fx), 1);
	fx_stop(&fx);
}

/* Requests sent back to back in one write are answered one at a time,
 * in order; a request sent while the one before waits for its answer
 * closes the connection, and that answer is dropped. */
static void
test_pipelined(void **state)
{
	struct fx fx;
	struct raw r;
	wse_http_req *req;
	const char *two = "POST /wsemail HTTP/1.1\r\nHost: a.test\r\n"
	    "Content-Length: 3\r\n\r\n<1>"
	    "POST /wsemail HTTP/1.1\r\nHost: a.test\r\n"
	    "Content-Length: 3\r\nConnection: close\r\n\r\n<2>";
	const char *one = "POST /wsemail HTTP/1.1\r\nHost: a.test\r\n"
	    "Content-Length: 3\r\n\r\n<1>";
	char out[4096], *p;
	uint16_t port;

	(void)state;
	fx_start(&fx, MODE_HOLD);
	port = wse_http_server_port(fx.srv);

	assert_int_equal(raw_connect(&r, port, 0, NULL, NULL), 0);
	assert_int_equal(SSL_write(r.ssl, two, (int)strlen(two)),
	    (int)strlen(two));
	assert_non_null(req = fx_wait_held(&fx));
	assert_int_equal(fx_calls(&fx), 1);
	wse_http_reply(req, 200, "text/plain", "first", 5);
	assert_non_null(req = fx_wait_held(&fx));
	assert_int_equal(fx_calls(&fx), 2);
	wse_http_reply(req, 200, "text/plain", "second", 6);
	(void)raw_wait_close(&r, out, sizeof(out));
	assert_non_null(p = strstr(out, "\r\n\r\nfirst"));
	assert_non_null(strstr(p, "HTTP/1.1 200"));
	assert_non_null(strstr(p, "\r\n\r\nsecond"));
	raw_close(&r);

	assert_int_equal(raw_connect(&r, port, 0, NULL, NULL), 0);
	assert_int_equal(SSL_write(r.ssl, one, (int)strlen(one)),
	    (int)strlen(one));
	assert_non_null(req = fx_wait_held(&fx));
	assert_int_equal(SSL_write(r.ssl, one, (int)strlen(one)),
	    (int)strlen(one));
	assert_true(raw_wait_close(&r, out, sizeof(out)) < WAIT_MS - 1500);
	assert_string_equal(out, "");
	wse_http_reply(req, 200, "text/plain", "dropped", 7);
	raw_close(&r);
	assert_int_equal(fx_calls(&fx), 3);

	pthread_mutex_lock(&fx.lock);
	fx.mode = MODE_ECHO;
	pthread_mutex_unlock(&fx.lock);
	assert_int_equal(raw_one(port, "POST /wsemail HTTP/1.1\r\n"
	    "Host: a.test\r\nContent-Length: 4\r\nConnection: close\r\n"
	    "\r\n<ok>", out, sizeof(out)), 200);
	fx_stop(&fx);
}

static void
test_deferred_reply(void **state)
{
	struct fx fx;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);
	wse_http_client_opts co;
	long status = 0;
	double t0, dt;

	(void)state;
	fx_start(&fx, MODE_DEFER);
	client_opts(&co, 0);
	assert_wse_ok(wse_http_client_new(&co, &c));
	t0 = testutil_now_ms();
	assert_wse_ok(post(c, &fx, "<x/>", resp, &status));
	dt = testutil_now_ms() - t0;
	assert_int_equal(status, 200);
	assert_string_equal(wse_buf_str(resp), "late");
	assert_true(dt >= 100.0);
	assert_true(dt < 2000.0);
	/* Again on the same connection. */
	wse_buf_reset(resp);
	assert_wse_ok(post(c, &fx, "<x/>", resp, &status));
	assert_string_equal(wse_buf_str(resp), "late");
	pthread_mutex_lock(&fx.lock);
	assert_int_equal(fx.npeers, 1);
	pthread_mutex_unlock(&fx.lock);
	wse_http_client_free(&c);
	wse_buf_free(&resp);
	fx_stop(&fx);
}

struct answer_arg {
	wse_http_req *req;
};

static void *
answer_thread(void *arg)
{
	struct answer_arg *a = arg;

	wse_http_reply(a->req, 200, "text/plain", "too late", 8);
	return NULL;
}

static void
test_client_gone(void **state)
{
	struct fx fx;
	struct raw r;
	struct answer_arg a;
	pthread_t th;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);
	wse_http_client_opts co;
	long status = 0;
	int i;
	const char *text = "POST /wsemail HTTP/1.1\r\nHost: a.test\r\n"
	    "Content-Length: 4\r\n\r\n<x/>";

	(void)state;
	fx_start(&fx, MODE_HOLD);
	for (i = 0; i < 3; i++) {
		assert_int_equal(raw_connect(&r, wse_http_server_port(fx.srv),
		    0, NULL, NULL), 0);
		assert_int_equal(SSL_write(r.ssl, text, (int)strlen(text)),
		    (int)strlen(text));
		assert_non_null(a.req = fx_wait_held(&fx));
		/* The client goes away before the answer: with a TLS
		 * close_notify, a plain FIN, or a reset (the server's
		 * write then fails with EPIPE: no SIGPIPE may kill us). */
		if (i == 1)
			(void)SSL_shutdown(r.ssl);
		if (i == 2) {
			struct linger lg = { 1, 0 };

			assert_int_equal(setsockopt(r.fd, SOL_SOCKET,
			    SO_LINGER, &lg, sizeof(lg)), 0);
		}
		raw_close(&r);
		sleep_ms(50);
		/* Answer from another thread (twice), or the test thread. */
		if (i < 2) {
			assert_int_equal(pthread_create(&th, NULL,
			    answer_thread, &a), 0);
			pthread_join(th, NULL);
		} else
			wse_http_reply(a.req, 200, NULL, NULL, 0);
		sleep_ms(50);
	}
	/* The server is fine. */
	client_opts(&co, 0);
	assert_wse_ok(wse_http_client_new(&co, &c));
	pthread_mutex_lock(&fx.lock);
	fx.mode = MODE_ECHO;
	pthread_mutex_unlock(&fx.lock);
	assert_wse_ok(post(c, &fx, "<ok/>", resp, &status));
	assert_int_equal(status, 200);
	assert_string_equal(wse_buf_str(resp), "<ok/>");
	wse_http_client_free(&c);
	wse_buf_free(&resp);
	fx_stop(&fx);
}

struct post_arg {
	struct fx *fx;
	wse_status st;
	long status;
};

static void *
post_thread(void *arg)
{
	struct post_arg *p = arg;
	wse_http_client_opts co;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);

	client_opts(&co, 0);
	p->st = resp == NULL ? WSE_ERR_NOMEM : wse_http_client_new(&co, &c);
	if (p->st == WSE_OK)
		p->st = post(c, p->fx, "<x/>", resp, &p->status);
	wse_http_client_free(&c);
	wse_buf_free(&resp);
	return NULL;
}

/* A request still waiting when the server is freed: its answer, given
 * afterwards, is dropped; the client sees the connection close. */
static void
test_reply_after_free(void **state)
{
	struct fx fx;
	struct post_arg p;
	pthread_t th;
	wse_http_req *req;

	(void)state;
	fx_start(&fx, MODE_HOLD);
	memset(&p, 0, sizeof(p));
	p.fx = &fx;
	assert_int_equal(pthread_create(&th, NULL, post_thread, &p), 0);
	assert_non_null(req = fx_wait_held(&fx));
	/* Answered after the loop stopped: queued, never sent. */
	wse_http_server_stop(fx.srv);
	pthread_join(fx.th, NULL);
	assert_wse_ok(fx.run_st);
	wse_http_reply(req, 200, "text/plain", "queued", 6);
	wse_http_server_free(&fx.srv);
	pthread_join(th, NULL);
	assert_int_equal(p.st, WSE_ERR_TEMPFAIL);

	/* And one answered only after the free. */
	fx_start(&fx, MODE_HOLD);
	memset(&p, 0, sizeof(p));
	p.fx = &fx;
	assert_int_equal(pthread_create(&th, NULL, post_thread, &p), 0);
	assert_non_null(req = fx_wait_held(&fx));
	wse_http_server_stop(fx.srv);
	pthread_join(fx.th, NULL);
	wse_http_server_free(&fx.srv);
	pthread_join(th, NULL);
	assert_int_equal(p.st, WSE_ERR_TEMPFAIL);
	wse_http_reply(req, 200, "text/plain", "orphan", 6);
	pthread_cond_destroy(&fx.cond);
	pthread_mutex_destroy(&fx.lock);
}

/* A server that does not answer in time: TEMPFAIL naming the timeout;
 * the late answer is dropped. */
static void
test_client_timeout(void **state)
{
	struct fx fx;
	wse_http_client_opts co;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);
	wse_http_req *req;
	long status = 0;
	double t0, dt;

	(void)state;
	fx_start(&fx, MODE_HOLD);
	client_opts(&co, 0);
	co.timeout_ms = 300;
	assert_wse_ok(wse_http_client_new(&co, &c));
	t0 = testutil_now_ms();
	assert_wse_status(post(c, &fx, "<slow/>", resp, &status),
	    WSE_ERR_TEMPFAIL);
	dt = testutil_now_ms() - t0;
	assert_non_null(strstr(wse_err_last(), "imeout"));
	wse_err_clear();
	assert_true(dt >= 250.0 && dt < 2000.0);
	assert_non_null(req = fx_wait_held(&fx));
	sleep_ms(20);
	wse_http_reply(req, 200, "text/plain", "late", 4);
	/* The same client goes on with a new connection. */
	pthread_mutex_lock(&fx.lock);
	fx.mode = MODE_ECHO;
	pthread_mutex_unlock(&fx.lock);
	wse_buf_reset(resp);
	assert_wse_ok(post(c, &fx, "<fast/>", resp, &status));
	assert_string_equal(wse_buf_str(resp), "<fast/>");
	wse_http_client_free(&c);
	wse_buf_free(&resp);
	fx_stop(&fx);
}

static void
test_connection_reuse(void **state)
{
	struct fx fx;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);
	wse_http_client_opts co;
	char body[64];
	long status = 0;
	int i;

	(void)state;
	fx_start(&fx, MODE_ECHO);
	client_opts(&co, 1);
	assert_wse_ok(wse_http_client_new(&co, &c));
	for (i = 0; i < 200; i++) {
		snprintf(body, sizeof(body), "<n>%d</n>", i);
		wse_buf_reset(resp);
		assert_wse_ok(post(c, &fx, body, resp, &status));
		assert_int_equal(status, 200);
		assert_string_equal(wse_buf_str(resp), body);
	}
	pthread_mutex_lock(&fx.lock);
	assert_int_equal(fx.calls, 200);
	assert_true(fx.npeers >= 1 && fx.npeers <= 2);
	pthread_mutex_unlock(&fx.lock);
	wse_http_client_free(&c);
	wse_buf_free(&resp);
	fx_stop(&fx);
}

#define NTHREADS 50
#define PER_THREAD 5

struct conc_arg {
	struct fx *fx;
	int id;
	int failures;
	char why[512];		/* the first failure */
};

static void *
conc_thread(void *arg)
{
	struct conc_arg *a = arg;
	wse_http_client_opts co;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);
	char body[64];
	long status;
	int i;

	client_opts(&co, a->id % 2);
	if (resp == NULL || wse_http_client_new(&co, &c) != WSE_OK) {
		a->failures = PER_THREAD;
		goto out;
	}
	for (i = 0; i < PER_THREAD; i++) {
		snprintf(body, sizeof(body), "<t id='%d' n='%d'/>", a->id, i);
		wse_buf_reset(resp);
		status = 0;
		if (post(c, a->fx, body, resp, &status) != WSE_OK ||
		    status != 200 || strcmp(wse_buf_str(resp), body) != 0) {
			if (a->failures++ == 0) {
				char eb[400];

				snprintf(a->why, sizeof(a->why), "status %ld: "
				    "%s", status, wse_err_format(eb,
				    sizeof(eb)));
			}
			wse_err_clear();
		}
	}
out:
	wse_http_client_free(&c);
	wse_buf_free(&resp);
	wse_err_clear();
	return NULL;
}

static void
test_concurrent_clients(void **state)
{
	struct fx fx;
	pthread_t th[NTHREADS];
	struct conc_arg args[NTHREADS];
	int i, failures = 0;

	(void)state;
	fx_start(&fx, MODE_ECHO);
	for (i = 0; i < NTHREADS; i++) {
		args[i].fx = &fx;
		args[i].id = i;
		args[i].failures = 0;
		args[i].why[0] = '\0';
		assert_int_equal(pthread_create(&th[i], NULL, conc_thread,
		    &args[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		failures += args[i].failures;
		if (args[i].failures > 0)
			print_message("client %d: %d failed, first: %s\n", i,
			    args[i].failures, args[i].why);
	}
	assert_int_equal(failures, 0);
	assert_int_equal(fx_calls(&fx), NTHREADS * PER_THREAD);
	fx_stop(&fx);
}

static void
test_max_connections(void **state)
{
	struct fx fx;
	wse_http_server_opts o;
	wse_http_client *c1 = NULL, *c2 = NULL, *c3 = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);
	wse_http_client_opts co;
	long status = 0;
	double t0;
	wse_status st;

	(void)state;
	fx_opts(&o);
	o.max_connections = 2;
	fx_start_opts(&fx, MODE_ECHO, &o);
	client_opts(&co, 0);
	assert_wse_ok(wse_http_client_new(&co, &c1));
	assert_wse_ok(wse_http_client_new(&co, &c2));
	assert_wse_ok(wse_http_client_new(&co, &c3));
	/* c1 and c2 keep their connections open. */
	assert_wse_ok(post(c1, &fx, "<1/>", resp, &status));
	assert_wse_ok(post(c2, &fx, "<2/>", resp, &status));
	assert_wse_status(post(c3, &fx, "<3/>", resp, &status),
	    WSE_ERR_TEMPFAIL);
	wse_err_clear();
	/* Kept connections still work. */
	assert_wse_ok(post(c1, &fx, "<1/>", resp, &status));
	/* Once c1 goes, there is room. */
	wse_http_client_free(&c1);
	t0 = testutil_now_ms();
	while ((st = post(c3, &fx, "<3/>", resp, &status)) != WSE_OK &&
	    testutil_now_ms() - t0 < WAIT_MS) {
		wse_err_clear();
		sleep_ms(20);
	}
	assert_wse_ok(st);
	assert_int_equal(status, 200);
	assert_int_equal(fx_calls(&fx), 4);
	wse_http_client_free(&c2);
	wse_http_client_free(&c3);
	wse_buf_free(&resp);
	fx_stop(&fx);
}

static void *
stopper(void *arg)
{
	sleep_ms(50);
	wse_http_server_stop(arg);
	return NULL;
}

static wse_http_server *volatile sig_srv;

static void
on_sigusr1(int sig)
{
	(void)sig;
	wse_http_server_stop(sig_srv);
}

static void
test_stop(void **state)
{
	struct fx fx;
	struct sigaction sa, old;
	pthread_t th;
	double t0, dt;

	(void)state;
	/* From another thread. */
	fx_start(&fx, MODE_ECHO);
	t0 = testutil_now_ms();
	assert_int_equal(pthread_create(&th, NULL, stopper, fx.srv), 0);
	pthread_join(fx.th, NULL);
	dt = testutil_now_ms() - t0;
	pthread_join(th, NULL);
	assert_wse_ok(fx.run_st);
	assert_true(dt >= 50.0 && dt < 1000.0);
	/* Run again; stop before run returns at once. */
	wse_http_server_stop(fx.srv);
	t0 = testutil_now_ms();
	assert_wse_ok(wse_http_server_run(fx.srv));
	assert_true(testutil_now_ms() - t0 < 1000.0);
	wse_http_server_free(&fx.srv);
	pthread_cond_destroy(&fx.cond);
	pthread_mutex_destroy(&fx.lock);

	/* From a signal handler. */
	fx_start(&fx, MODE_ECHO);
	sig_srv = fx.srv;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
	sleep_ms(20);
	t0 = testutil_now_ms();
	assert_int_equal(pthread_kill(fx.th, SIGUSR1), 0);
	pthread_join(fx.th, NULL);
	assert_true(testutil_now_ms() - t0 < 1000.0);
	assert_wse_ok(fx.run_st);
	assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
	sig_srv = NULL;
	wse_http_server_free(&fx.srv);
	pthread_cond_destroy(&fx.cond);
	pthread_mutex_destroy(&fx.lock);

	wse_http_server_stop(NULL);
	wse_http_server_free(NULL);
}

static void
test_response_too_large(void **state)
{
	struct fx fx;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20), *small = wse_buf_new(1024);
	wse_http_client_opts co;
	long status = 0;

	(void)state;
	fx_start(&fx, MODE_BIG);
	fx.big_len = 100 * 1024;
	client_opts(&co, 0);
	co.max_response = 10 * 1024;
	assert_wse_ok(wse_http_client_new(&co, &c));
	assert_wse_status(post(c, &fx, "<x/>", resp, &status),
	    WSE_ERR_TOO_LARGE);
	wse_err_clear();
	assert_int_equal(wse_buf_len(resp), 0);
	wse_http_client_free(&c);

	/* Within max_response but over the caller's buffer. */
	client_opts(&co, 0);
	assert_wse_ok(wse_http_client_new(&co, &c));
	pthread_mutex_lock(&fx.lock);
	fx.big_len = 2048;
	pthread_mutex_unlock(&fx.lock);
	assert_wse_status(post(c, &fx, "<x/>", small, &status),
	    WSE_ERR_TOO_LARGE);
	assert_non_null(strstr(wse_err_last(), "buffer (1024 bytes)"));
	wse_err_clear();
	assert_int_equal(wse_buf_len(small), 0);
	/* Exactly max_response is fine. */
	pthread_mutex_lock(&fx.lock);
	fx.big_len = 1024 * 1024;
	pthread_mutex_unlock(&fx.lock);
	assert_wse_ok(post(c, &fx, "<x/>", resp, &status));
	assert_int_equal(wse_buf_len(resp), 1024 * 1024);
	wse_http_client_free(&c);
	wse_buf_free(&small);
	wse_buf_free(&resp);
	fx_stop(&fx);
}

/* Answers that only a hand-made server gives. */
static void
test_odd_servers(void **state)
{
	struct rawsrv rs;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);
	wse_http_client_opts co;
	char url[128], redirect[256], *chunked;
	const char *ans;
	size_t n = 0;
	long status = 0;
	int i;

	(void)state;
	client_opts(&co, 0);
	co.max_response = 10 * 1024;
	co.timeout_ms = 2000;
	assert_wse_ok(wse_http_client_new(&co, &c));

	/* Chunked, no length announced: cut off by the write callback, and
	 * the caller's (empty) buffer is left empty. */
	assert_non_null(chunked = malloc(64 * 1024));
	n = (size_t)snprintf(chunked, 256, "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (i = 0; i < 5; i++) {
		n += (size_t)snprintf(chunked + n, 16, "1000\r\n");
		memset(chunked + n, 'c', 4096);
		n += 4096;
		memcpy(chunked + n, "\r\n", 2);
		n += 2;
	}
	memcpy(chunked + n, "0\r\n\r\n", 5);
	n += 5;
	rawsrv_start(&rs, chunked, n);
	url_for(url, sizeof(url), "a.test", rs.port);
	assert_wse_status(wse_http_post(c, url, "127.0.0.1", "text/plain", "x",
	    1, resp, &status), WSE_ERR_TOO_LARGE);
	assert_non_null(strstr(wse_err_last(), "over 10240 bytes"));
	wse_err_clear();
	assert_int_equal(wse_buf_len(resp), 0);
	rawsrv_stop(&rs);

	/* A redirect is handed back, not followed. */
	rawsrv_listen(&rs);
	snprintf(redirect, sizeof(redirect), "HTTP/1.1 302 Found\r\n"
	    "Location: https://a.test:%u/elsewhere\r\nContent-Length: 0\r\n"
	    "\r\n", (unsigned)rs.port);
	rawsrv_go(&rs, redirect, strlen(redirect));
	url_for(url, sizeof(url), "a.test", rs.port);
	assert_wse_ok(wse_http_post(c, url, "127.0.0.1", "text/plain", "x", 1,
	    resp, &status));
	assert_int_equal(status, 302);
	rawsrv_stop(&rs);
	assert_int_equal(rs.accepted, 1);

	/* An answer shorter than its Content-Length: an error, and the
	 * part that came is not handed back. */
	ans = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 100\r\n\r\n<short";
	rawsrv_start(&rs, ans, strlen(ans));
	url_for(url, sizeof(url), "a.test", rs.port);
	assert_wse_status(wse_http_post(c, url, "127.0.0.1", "text/plain", "x",
	    1, resp, &status), WSE_ERR_TEMPFAIL);
	wse_err_clear();
	assert_int_equal(wse_buf_len(resp), 0);
	rawsrv_stop(&rs);

	/* A length announced over max_response: refused before the body. */
	ans = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 20000\r\n\r\n<big>";
	rawsrv_start(&rs, ans, strlen(ans));
	url_for(url, sizeof(url), "a.test", rs.port);
	assert_wse_status(wse_http_post(c, url, "127.0.0.1", "text/plain", "x",
	    1, resp, &status), WSE_ERR_TOO_LARGE);
	wse_err_clear();
	assert_int_equal(wse_buf_len(resp), 0);
	rawsrv_stop(&rs);

	/* A server that closes without a word. */
	rawsrv_start(&rs, NULL, 0);
	url_for(url, sizeof(url), "a.test", rs.port);
	assert_wse_status(wse_http_post(c, url, "127.0.0.1", "text/plain", "x",
	    1, resp, &status), WSE_ERR_TEMPFAIL);
	wse_err_clear();
	rawsrv_stop(&rs);

	free(chunked);
	wse_http_client_free(&c);
	wse_buf_free(&resp);
}

/* GET: the same client, TLS checks and limits as POST; the body bounded
 * by the caller's max; no redirect followed; https only. */
static void
test_get(void **state)
{
	struct fx fx;
	struct rawsrv rs;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20), *small = wse_buf_new(100);
	wse_http_client_opts co;
	char url[128], redirect[256], *chunked;
	size_t n;
	long status = 0;
	int i;

	(void)state;
	fx_start(&fx, MODE_ECHO);
	client_opts(&co, 0);
	assert_wse_ok(wse_http_client_new(&co, &c));
	snprintf(url, sizeof(url), "https://a.test:%u/plugins/expense.lua",
	    (unsigned)wse_http_server_port(fx.srv));
	assert_wse_ok(wse_http_get(c, url, "127.0.0.1", 0, resp, &status));
	assert_int_equal(status, 200);
	assert_string_equal(wse_buf_str(resp), "<wsdl/>");
	pthread_mutex_lock(&fx.lock);
	assert_string_equal(fx.method, "GET");
	assert_string_equal(fx.path, "/plugins/expense.lua");
	assert_false(fx.has_query);
	assert_int_equal(fx.body_len, 0);
	pthread_mutex_unlock(&fx.lock);

	/* The handle goes back to POST, and GET after POST is a GET. */
	wse_buf_reset(resp);
	assert_wse_ok(post(c, &fx, "<after-get/>", resp, &status));
	assert_string_equal(wse_buf_str(resp), "<after-get/>");
	pthread_mutex_lock(&fx.lock);
	assert_string_equal(fx.method, "POST");
	pthread_mutex_unlock(&fx.lock);
	wse_buf_reset(resp);
	assert_wse_ok(wse_http_get(c, url, "127.0.0.1", 7, resp, &status));
	assert_string_equal(wse_buf_str(resp), "<wsdl/>");	/* = max */
	pthread_mutex_lock(&fx.lock);
	assert_string_equal(fx.method, "GET");
	pthread_mutex_unlock(&fx.lock);

	/* Over max: refused, nothing kept; over the caller's buffer too. */
	wse_buf_reset(resp);
	assert_wse_status(wse_http_get(c, url, "127.0.0.1", 6, resp,
	    &status), WSE_ERR_TOO_LARGE);
	assert_non_null(strstr(wse_err_last(), "over 6 bytes"));
	wse_err_clear();
	assert_int_equal(wse_buf_len(resp), 0);
	pthread_mutex_lock(&fx.lock);
	fx.mode = MODE_BIG;
	fx.big_len = 200;
	pthread_mutex_unlock(&fx.lock);
	assert_wse_status(wse_http_get(c, url, "127.0.0.1", 1000, small,
	    &status), WSE_ERR_TOO_LARGE);
	wse_err_clear();
	assert_int_equal(wse_buf_len(small), 0);
	/* max above the client's max_response is the caller's choice. */
	pthread_mutex_lock(&fx.lock);
	fx.big_len = 2 * 1024 * 1024;
	pthread_mutex_unlock(&fx.lock);
	wse_buf_free(&resp);
	resp = wse_buf_new(4 << 20);
	assert_wse_status(wse_http_get(c, url, "127.0.0.1", 0, resp,
	    &status), WSE_ERR_TOO_LARGE);
	wse_err_clear();
	assert_wse_ok(wse_http_get(c, url, "127.0.0.1", 2 * 1024 * 1024,
	    resp, &status));
	assert_int_equal(wse_buf_len(resp), 2 * 1024 * 1024);
	/* ... and POST keeps max_response afterwards. */
	wse_buf_reset(resp);
	assert_wse_status(post(c, &fx, "<x/>", resp, &status),
	    WSE_ERR_TOO_LARGE);
	wse_err_clear();

	/* The server's name is checked as for POST. */
	snprintf(url, sizeof(url), "https://b.test:%u/plugins/x",
	    (unsigned)wse_http_server_port(fx.srv));
	assert_wse_status(wse_http_get(c, url, "127.0.0.1", 0, resp,
	    &status), WSE_ERR_UNTRUSTED);
	wse_err_clear();
	fx_stop(&fx);

	/* https only; bad arguments. */
	assert_wse_status(wse_http_get(c, "http://a.test/x", "127.0.0.1", 0,
	    resp, &status), WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "not an https URL"));
	assert_wse_status(wse_http_get(c, "file:///etc/passwd", NULL, 0,
	    resp, &status), WSE_ERR_INVALID);
	assert_wse_status(wse_http_get(NULL, url, NULL, 0, resp, &status),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_http_get(c, NULL, NULL, 0, resp, &status),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_http_get(c, url, "not-an-ip", 0, resp,
	    &status), WSE_ERR_INVALID);
	wse_err_clear();

	/* A redirect is handed back, not followed. */
	rawsrv_listen(&rs);
	snprintf(redirect, sizeof(redirect), "HTTP/1.1 302 Found\r\n"
	    "Location: https://a.test:%u/elsewhere\r\nContent-Length: 0\r\n"
	    "\r\n", (unsigned)rs.port);
	rawsrv_go(&rs, redirect, strlen(redirect));
	snprintf(url, sizeof(url), "https://a.test:%u/plugins/x",
	    (unsigned)rs.port);
	wse_buf_reset(resp);
	assert_wse_ok(wse_http_get(c, url, "127.0.0.1", 0, resp, &status));
	assert_int_equal(status, 302);
	rawsrv_stop(&rs);
	assert_int_equal(rs.accepted, 1);

	/* Chunked, no length announced: cut off at max. */
	assert_non_null(chunked = malloc(64 * 1024));
	n = (size_t)snprintf(chunked, 256, "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (i = 0; i < 5; i++) {
		n += (size_t)snprintf(chunked + n, 16, "1000\r\n");
		memset(chunked + n, 'c', 4096);
		n += 4096;
		memcpy(chunked + n, "\r\n", 2);
		n += 2;
	}
	memcpy(chunked + n, "0\r\n\r\n", 5);
	n += 5;
	rawsrv_start(&rs, chunked, n);
	snprintf(url, sizeof(url), "https://a.test:%u/plugins/x",
	    (unsigned)rs.port);
	assert_wse_status(wse_http_get(c, url, "127.0.0.1", 10000, resp,
	    &status), WSE_ERR_TOO_LARGE);
	assert_non_null(strstr(wse_err_last(), "over 10000 bytes"));
	wse_err_clear();
	assert_int_equal(wse_buf_len(resp), 0);
	rawsrv_stop(&rs);
	free(chunked);

	wse_http_client_free(&c);
	wse_buf_free(&small);
	wse_buf_free(&resp);
}

static void
test_closed_port(void **state)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);
	wse_http_client_opts co;
	char url[128];
	long status = 0;
	double t0;
	int fd;

	(void)state;
	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	client_opts(&co, 0);
	assert_wse_ok(wse_http_client_new(&co, &c));
	url_for(url, sizeof(url), "a.test", ntohs(sin.sin_port));
	t0 = testutil_now_ms();
	assert_wse_status(wse_http_post(c, url, "127.0.0.1", "text/plain",
	    "x", 1, resp, &status), WSE_ERR_TEMPFAIL);
	assert_true(testutil_now_ms() - t0 < 1000.0);
	assert_non_null(strstr(wse_err_last(), "connect"));
	wse_err_clear();
	wse_http_client_free(&c);
	wse_buf_free(&resp);
}

static void
test_ipv6(void **state)
{
	struct fx fx;
	wse_http_server_opts o;
	wse_http_server *probe = NULL;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);
	wse_http_client_opts co;
	char url[128];
	long status = 0;

	(void)state;
	fx_opts(&o);
	o.listen = "[::1]:0";
	if (wse_http_server_new(&o, handler, NULL, &probe) != WSE_OK) {
		wse_err_clear();
		wse_buf_free(&resp);
		skip();		/* no IPv6 loopback here */
	}
	wse_http_server_free(&probe);
	fx_start_opts(&fx, MODE_ECHO, &o);
	client_opts(&co, 0);
	assert_wse_ok(wse_http_client_new(&co, &c));
	url_for(url, sizeof(url), "a.test", wse_http_server_port(fx.srv));
	assert_wse_ok(wse_http_post(c, url, "::1", "text/plain", "six", 3,
	    resp, &status));
	assert_int_equal(status, 200);
	assert_string_equal(wse_buf_str(resp), "six");
	pthread_mutex_lock(&fx.lock);
	assert_memory_equal(fx.peer, "[::1]:", 6);
	pthread_mutex_unlock(&fx.lock);
	wse_buf_reset(resp);
	assert_wse_ok(wse_http_post(c, url, "[::1]", "text/plain", "6", 1,
	    resp, &status));
	assert_string_equal(wse_buf_str(resp), "6");
	wse_http_client_free(&c);
	wse_buf_free(&resp);
	fx_stop(&fx);
}

static void
test_bad_arguments(void **state)
{
	static const char *const bad_listen[] = {
		"localhost:8443", "127.0.0.1", "127.0.0.1:", "127.0.0.1:x",
		"127.0.0.1:65536", "127.0.0.1:80:1", "[::1]", "[::1]80",
		"::1:80", "[nope]:80", "",
	};
	wse_http_server_opts o;
	wse_http_server *srv = NULL;
	wse_http_client_opts co;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1024);
	char missing[4096];
	long status = 0;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_listen) / sizeof(bad_listen[0]); i++) {
		fx_opts(&o);
		o.listen = bad_listen[i];
		assert_wse_status(wse_http_server_new(&o, handler, NULL,
		    &srv), WSE_ERR_CONFIG);
		assert_null(srv);
	}
	fx_opts(&o);
	o.key = NULL;
	assert_wse_status(wse_http_server_new(&o, handler, NULL, &srv),
	    WSE_ERR_INVALID);
	fx_opts(&o);
	assert_wse_status(wse_http_server_new(&o, NULL, NULL, &srv),
	    WSE_ERR_INVALID);
	fx_opts(&o);
	o.client_roots = NULL;
	assert_wse_status(wse_http_server_new(&o, handler, NULL, &srv),
	    WSE_ERR_INVALID);
	path_in(missing, sizeof(missing), pki.dir, "nope.pem");
	fx_opts(&o);
	o.cert_chain = missing;
	assert_wse_status(wse_http_server_new(&o, handler, NULL, &srv),
	    WSE_ERR_CONFIG);
	fx_opts(&o);
	o.key = b_key;		/* not a.test's key */
	assert_wse_status(wse_http_server_new(&o, handler, NULL, &srv),
	    WSE_ERR_CONFIG);
	/* A port in use. */
	{
		struct fx fx;

		fx_start(&fx, MODE_ECHO);
		fx_opts(&o);
		snprintf(missing, sizeof(missing), "127.0.0.1:%u",
		    (unsigned)wse_http_server_port(fx.srv));
		o.listen = missing;
		assert_wse_status(wse_http_server_new(&o, handler, NULL,
		    &srv), WSE_ERR_IO);
		fx_stop(&fx);
	}
	wse_err_clear();

	client_opts(&co, 0);
	co.roots = NULL;
	assert_wse_status(wse_http_client_new(&co, &c), WSE_ERR_INVALID);
	client_opts(&co, 0);
	co.key = NULL;
	co.cert_chain = b_chain;
	assert_wse_status(wse_http_client_new(&co, &c), WSE_ERR_INVALID);
	path_in(missing, sizeof(missing), pki.dir, "nope.pem");
	client_opts(&co, 0);
	co.roots = missing;
	assert_wse_status(wse_http_client_new(&co, &c), WSE_ERR_CONFIG);
	assert_null(c);
	client_opts(&co, 0);
	assert_wse_ok(wse_http_client_new(&co, &c));
	assert_wse_status(wse_http_post(c, "https://a.test:1/x", "a.test",
	    NULL, "x", 1, resp, &status), WSE_ERR_INVALID);
	assert_wse_status(wse_http_post(c, "https://a.test:1/x", "[nope]",
	    NULL, "x", 1, resp, &status), WSE_ERR_INVALID);
	assert_wse_status(wse_http_post(c, "http://a.test:1/x", "127.0.0.1",
	    NULL, "x", 1, resp, &status), WSE_ERR_INVALID);
	assert_wse_status(wse_http_post(c, "https://a.test:1/x", "127.0.0.1",
	    "text/plain\r\nX-Evil: 1", "x", 1, resp, &status),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_http_post(c, "https://a.test:1/x", "127.0.0.1",
	    NULL, NULL, 1, resp, &status), WSE_ERR_INVALID);
	wse_err_clear();
	wse_http_client_free(&c);
	wse_buf_free(&resp);
}

/* ---- file answers streamed (wse_http_reply_file, post_stream) ---- */

struct fsink {
	EVP_MD_CTX *md;
	size_t got, stop_after;
	uint8_t *copy;		/* first bytes, for range checks */
	size_t copy_max;
};

static int
fsink_put(void *arg, const void *data, size_t len)
{
	struct fsink *f = arg;

	if (f->stop_after > 0 && f->got + len > f->stop_after) {
		(void)wse_err(WSE_ERR_IO, "enough");
		return -1;
	}
	if (f->got < f->copy_max)
		memcpy(f->copy + f->got, data, len < f->copy_max - f->got ?
		    len : f->copy_max - f->got);
	f->got += len;
	return EVP_DigestUpdate(f->md, data, len) == 1 ? 0 : -1;
}

static void
test_file_stream(void **state)
{
	struct fx fx;
	wse_http_client *c = NULL;
	wse_buf *resp = wse_buf_new(1 << 20);
	wse_http_client_opts co;
	struct fsink fs;
	char path[4200], req[4400], url[128];
	const size_t size = 20u << 20;	/* 20 MiB */
	uint8_t *data = malloc(size), want[32], got[32];
	uint8_t part[1000];
	uint64_t total = 0;
	long status = 0;
	int fd, streamed = 0;
	size_t i;

	(void)state;
	assert_non_null(data);
	for (i = 0; i < size; i++)
		data[i] = (uint8_t)((i * 2654435761u) >> 13);
	path_in(path, sizeof(path), pki.dir, "big.bin");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, size), (ssize_t)size);
	close(fd);
	assert_int_equal(EVP_Digest(data, size, want, NULL, EVP_sha256(),
	    NULL), 1);

	fx_start(&fx, MODE_ECHO);
	client_opts(&co, 0);
	assert_wse_ok(wse_http_client_new(&co, &c));
	url_for(url, sizeof(url), "a.test", wse_http_server_port(fx.srv));

	/* The whole file, through the sink, never through resp. */
	memset(&fs, 0, sizeof(fs));
	fs.md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestInit_ex(fs.md, EVP_sha256(), NULL), 1);
	snprintf(req, sizeof(req), "file %s 0 %zu", path, size);
	assert_wse_ok(wse_http_post_stream(c, url, "127.0.0.1", "text/plain",
	    req, strlen(req), fsink_put, &fs, resp, &status, &streamed,
	    &total));
	assert_int_equal(status, 200);
	assert_true(streamed);
	assert_int_equal(total, size);
	assert_int_equal(fs.got, size);
	assert_int_equal(wse_buf_len(resp), 0);
	assert_int_equal(EVP_DigestFinal_ex(fs.md, got, NULL), 1);
	assert_memory_equal(got, want, 32);
	EVP_MD_CTX_free(fs.md);

	/* A range from an odd offset: exactly those bytes. */
	memset(&fs, 0, sizeof(fs));
	fs.md = EVP_MD_CTX_new();
	fs.copy = part;
	fs.copy_max = sizeof(part);
	assert_int_equal(EVP_DigestInit_ex(fs.md, EVP_sha256(), NULL), 1);
	snprintf(req, sizeof(req), "file %s %zu 1000", path,
	    (size_t)(5u << 20) + 1);
	assert_wse_ok(wse_http_post_stream(c, url, "127.0.0.1", "text/plain",
	    req, strlen(req), fsink_put, &fs, resp, &status, &streamed,
	    &total));
	assert_int_equal(fs.got, 1000);
	assert_memory_equal(part, data + (5u << 20) + 1, 1000);
	EVP_MD_CTX_free(fs.md);

	/* The receiver stops half-way: an error naming why, and the server
	 * and the client both go on. */
	memset(&fs, 0, sizeof(fs));
	fs.md = EVP_MD_CTX_new();
	fs.stop_after = 1u << 20;
	assert_int_equal(EVP_DigestInit_ex(fs.md, EVP_sha256(), NULL), 1);
	snprintf(req, sizeof(req), "file %s 0 %zu", path, size);
	assert_wse_status(wse_http_post_stream(c, url, "127.0.0.1",
	    "text/plain", req, strlen(req), fsink_put, &fs, resp, &status,
	    &streamed, &total), WSE_ERR_IO);
	wse_err_clear();
	EVP_MD_CTX_free(fs.md);

	/* A non-file answer lands in resp. */
	memset(&fs, 0, sizeof(fs));
	wse_buf_reset(resp);
	assert_wse_ok(wse_http_post_stream(c, url, "127.0.0.1", "text/plain",
	    "<e>x</e>", 8, fsink_put, &fs, resp, &status, &streamed,
	    &total));
	assert_false(streamed);
	assert_int_equal(fs.got, 0);
	assert_string_equal(wse_buf_str(resp), "<e>x</e>");

	/* The client hangs up after the headers: the server frees the
	 * request (ASan would see a leak or a use after free). */
	{
		struct raw r;
		char hdr[512];
		int n;

		snprintf(req, sizeof(req), "file %s 0 %zu", path, size);
		assert_int_equal(raw_connect(&r, wse_http_server_port(fx.srv), 0,
		    NULL, NULL), 0);
		n = snprintf(hdr, sizeof(hdr), "POST /wsemail HTTP/1.1\r\n"
		    "Host: a.test\r\nContent-Length: %zu\r\n\r\n%s",
		    strlen(req), req);
		assert_int_equal(SSL_write(r.ssl, hdr, n), n);
		assert_true(SSL_read(r.ssl, hdr, sizeof(hdr)) > 0);
		raw_close(&r);
	}
	/* still serving */
	wse_buf_reset(resp);
	assert_wse_ok(post(c, &fx, "<e>after</e>", resp, &status));
	assert_string_equal(wse_buf_str(resp), "<e>after</e>");

	wse_http_client_free(&c);
	wse_buf_free(&resp);
	fx_stop(&fx);
	unlink(path);
	free(data);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_echo_post),
		cmocka_unit_test(test_wsdl_get_and_methods),
		cmocka_unit_test(test_peer_chain),
		cmocka_unit_test(test_no_client_cert),
		cmocka_unit_test(test_required_client_cert),
		cmocka_unit_test(test_wrong_name),
		cmocka_unit_test(test_other_root),
		cmocka_unit_test(test_tls_versions),
		cmocka_unit_test(test_tls_refusals),
		cmocka_unit_test(test_encrypted_keys),
		cmocka_unit_test(test_body_too_large),
		cmocka_unit_test(test_malformed_requests),
		cmocka_unit_test(test_slow_clients),
		cmocka_unit_test(test_deferred_reply),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_client_gone),
		cmocka_unit_test(test_reply_after_free),
		cmocka_unit_test(test_client_timeout),
		cmocka_unit_test(test_connection_reuse),
		cmocka_unit_test(test_concurrent_clients),
		cmocka_unit_test(test_max_connections),
		cmocka_unit_test(test_stop),
		cmocka_unit_test(test_response_too_large),
		cmocka_unit_test(test_odd_servers),
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_closed_port),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_file_stream),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
