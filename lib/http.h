/*
 * http.h - the HTTPS transport: a server (libevent evhttp over OpenSSL
 * bufferevents) and a client (libcurl).  TLS 1.2 or newer only.
 *
 * The transport authenticates the TLS layer (the peer's chain must lead
 * to the configured root) and hands the peer's certificate chain to the
 * application, which applies the full checks (CRLs, purpose, domain) with
 * wse_trust_verify.  It knows nothing of SOAP.
 *
 * Threads: the server runs its event loop on the thread that calls
 * wse_http_server_run; handlers are called there.  A handler may answer
 * at once or later, from any thread, with wse_http_reply (so slow work -
 * cryptography, a group commit - runs on worker threads without blocking
 * the loop).
 */
#ifndef WSE_HTTP_H
#define WSE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "pki.h"

typedef struct wse_http_server wse_http_server;
typedef struct wse_http_req wse_http_req;

typedef enum wse_client_cert {
	WSE_CLIENT_CERT_NONE,		/* do not ask */
	WSE_CLIENT_CERT_OPTIONAL,	/* ask; verify when given */
	WSE_CLIENT_CERT_REQUIRED,	/* handshake fails without one */
} wse_client_cert;

typedef struct wse_http_server_opts {
	const char *listen;		/* "127.0.0.1:8443", "[::1]:0", port 0 = any */
	const char *cert_chain;		/* PEM: service certificate + domain CA */
	const char *key;		/* PEM private key, not encrypted */
	const char *client_roots;	/* PEM roots for client certificates */
	wse_client_cert client_cert;
	size_t max_body;		/* larger requests get 413 */
	int timeout_s;			/* per connection, read and write */
	size_t max_connections;		/* further ones are refused */
} wse_http_server_opts;

/* Called on the loop thread for every POST (and GET, for ?wsdl). */
typedef void (*wse_http_handler)(void *arg, wse_http_req *req);

wse_status wse_http_server_new(const wse_http_server_opts *o,
    wse_http_handler handler, void *arg, wse_http_server **srv_r);
/* The bound port (useful with port 0). */
uint16_t wse_http_server_port(const wse_http_server *srv);
/* Run the event loop until wse_http_server_stop. */
wse_status wse_http_server_run(wse_http_server *srv);
/* Ask the loop to stop (any thread, async-signal-safe). */
void wse_http_server_stop(wse_http_server *srv);
void wse_http_server_free(wse_http_server **srv);

/* ---- a request, valid until wse_http_reply ---- */

const char *wse_http_req_method(const wse_http_req *req);	/* "POST" */
const char *wse_http_req_path(const wse_http_req *req);		/* "/wsemail" */
const char *wse_http_req_query(const wse_http_req *req);	/* "wsdl" or NULL */
const char *wse_http_req_content_type(const wse_http_req *req);
const uint8_t *wse_http_req_body(const wse_http_req *req, size_t *len_r);
/* The TLS peer's verified chain (leaf first), or n = 0 when the client
 * sent no certificate.  Borrowed until the reply. */
wse_cert *const *wse_http_req_peer_chain(const wse_http_req *req,
    size_t *n_r);
/* "IP:PORT" of the peer. */
const char *wse_http_req_peer_addr(const wse_http_req *req);

/*
 * Be told when req's connection goes away before req is answered (the
 * client closed it, it timed out, or the server is being freed): fn(arg)
 * is then called once, on the loop thread (or the thread freeing the
 * server); req must still be answered afterwards (the answer is dropped)
 * and stays valid until then.  Lets a request wait for an event (a long
 * poll) without holding a thread.  Any thread, before req is answered;
 * a second call replaces the first, fn == NULL unregisters; answering
 * unregisters too.  Returns 1 when (un)registered, 0 when the connection
 * is already gone: then a fn registered before has been taken to run
 * (it runs, or ran, exactly once) and nothing is registered.
 */
int wse_http_req_on_close(wse_http_req *req, void (*fn)(void *arg),
    void *arg);

/*
 * Answer req (exactly once; any thread): HTTP status, content type and
 * body (copied).  req is invalid afterwards.  If the client has gone, the
 * answer is dropped quietly.
 */
void wse_http_reply(wse_http_req *req, int status, const char *content_type,
    const void *body, size_t len);

/*
 * Answer req (exactly once; any thread) with `length` bytes of the open
 * file fd from `offset`: HTTP 200, Content-Type application/octet-stream,
 * Content-Length, and "X-WSEmail-Total: <total>".  The transport owns fd
 * from this call on and closes it.  The bytes are read and written a
 * slice at a time as the connection drains (at most a few hundred KiB
 * buffered per request), so a file of any size streams in bounded
 * memory.  If reading fails or the client goes away the connection is
 * closed.
 */
void wse_http_reply_file(wse_http_req *req, int fd, uint64_t offset,
    uint64_t length, uint64_t total);

/* ---- client ---- */

typedef struct wse_http_client wse_http_client;

typedef struct wse_http_client_opts {
	const char *roots;		/* PEM roots the server must chain to */
	const char *cert_chain;		/* optional client certificate chain */
	const char *key;		/* its key (PEM, not encrypted) */
	int connect_timeout_ms;
	int timeout_ms;			/* whole request */
	size_t max_response;
} wse_http_client_opts;

wse_status wse_http_client_new(const wse_http_client_opts *o,
    wse_http_client **c_r);
void wse_http_client_free(wse_http_client **c);

/*
 * POST body to url ("https://HOST:PORT/path"); when connect_addr is set
 * the connection goes to that numeric address while the certificate is
 * still checked against HOST (and SNI is HOST).  Connections are reused.
 * Appends the response body to resp; *status_r gets the HTTP status.
 * WSE_ERR_TEMPFAIL for connection, TLS or timeout failures (the message
 * names which), WSE_ERR_UNTRUSTED when the server's certificate fails,
 * WSE_ERR_TOO_LARGE for a response over max_response.
 * One client is used by one thread at a time.
 */
wse_status wse_http_post(wse_http_client *c, const char *url,
    const char *connect_addr, const char *content_type, const void *body,
    size_t len, wse_buf *resp, long *status_r);

/*
 * GET url ("https://HOST:PORT/path", nothing else), with the same TLS
 * checks, connect_addr handling and timeouts as wse_http_post; no
 * redirect is followed (a 3xx is returned as its status).  Appends the
 * response body, at most max bytes (0: the client's max_response), to
 * resp; a larger body fails with WSE_ERR_TOO_LARGE as soon as it is
 * announced or passes max, never holding more than max bytes.  A failed
 * call leaves a resp it found empty empty.  Statuses as wse_http_post.
 */
wse_status wse_http_get(wse_http_client *c, const char *url,
    const char *connect_addr, size_t max, wse_buf *resp, long *status_r);

/*
 * Receives a streamed response body a piece at a time; return 0 to go
 * on, -1 to abort the transfer (wse_http_post_stream then fails with the
 * status the sink pushed with wse_err, or WSE_ERR_IO).
 */
typedef int (*wse_http_sink)(void *arg, const void *data, size_t len);

/*
 * Like wse_http_post, for an answer that may be a byte stream: when the
 * server answers 200 with Content-Type application/octet-stream, the body
 * goes to sink (never held in memory) and *total_r gets the
 * X-WSEmail-Total header (0 when absent); any other answer (a Fault) is
 * appended to resp as with wse_http_post (bounded by max_response) and
 * *streamed_r is 0.  The whole-request timeout does not apply to a
 * stream; a transfer slower than 1 byte/s over timeout_ms is aborted
 * (WSE_ERR_TEMPFAIL).
 */
wse_status wse_http_post_stream(wse_http_client *c, const char *url,
    const char *connect_addr, const char *content_type, const void *body,
    size_t len, wse_http_sink sink, void *sink_arg, wse_buf *resp,
    long *status_r, int *streamed_r, uint64_t *total_r);

#endif
