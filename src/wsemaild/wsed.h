/*
 * wsed.h - the domain server's shared state and its parts:
 * ops.c (the SOAP operations), outbound.c (the delivery worker),
 * wsdl.c (the service description), plugins.c (external plugins,
 * lib/plugin.h), main.c (configuration, threads).
 */
#ifndef WSED_H
#define WSED_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "batch.h"
#include "buf.h"
#include "config.h"
#include "crypto.h"
#include "http.h"
#include "msg.h"
#include "plugin.h"
#include "pki.h"
#include "replay.h"
#include "route.h"
#include "soap.h"
#include "store.h"
#include "wselimits.h"
#include "wss.h"

#define WSED_ACTION(op) WSE_ACTION_PREFIX op
#define WSED_REPLY_TO "http://www.w3.org/2005/08/addressing/anonymous"
#define WSED_PLUGINS_MAX 32
/* Calls carrying instant messages to other servers in flight at once
 * (outbound.c), each with its own HTTPS client. */
#define WSED_INSTANT_LEADERS 4
/* HTTP worker threads at most (configuration "threads"). */
#define WSED_THREADS_MAX 256
/* Items in one DeliverBatch (docs/protocol.md), and the base64 bytes
 * a sender puts in one. */
#define WSED_BATCH_MAX WSE_BATCH_MAX
#define WSED_BATCH_BYTES (2u * 1024 * 1024)
/* Domains whose server answered a DeliverBatch with a signed Unsupported
 * Fault are remembered for WSED_NOBATCH_SECONDS: meanwhile their items go
 * one Deliver each, without a batch refused first.  Then a batch is tried
 * again (the server may have been upgraded).  At most WSED_NOBATCH_MAX
 * such domains are kept; a new one takes the place of the one that runs
 * out first. */
#define WSED_NOBATCH_MAX 64
#define WSED_NOBATCH_SECONDS 3600

/* A domain whose server refused DeliverBatch, until when (outbound.c). */
struct wsed_nobatch {
	char domain[WSE_STORE_NAME_MAX];
	int64_t until;			/* 0: a free entry */
};

struct wsed_plugin;		/* plugins.c */
struct wsed_holds;		/* plugins.c: held requests */
struct wsed_guard;		/* guard.c */

struct wsed {
	char domain[256];
	char url[512];			/* our endpoint, as clients address it */
	wse_limits lim;
	wse_store *store;
	wse_replay *replay;		/* backed by the store */
	wse_trust *trust;		/* root + CRLs */
	wse_key *key;			/* service key */
	wse_cert **chain;		/* service certificate + domain CA */
	size_t nchain;
	wse_signer *signer;
	char chain_path[1024], key_path[1024], roots_path[1024];
	uint8_t secret[WSE_SEAL_KEY_LEN];	/* decoy salts */
	/* delivery */
	wse_router *router;
	int64_t retry_first, retry_max, lifetime, lease;
	int64_t reply_ttl;		/* Timestamp lifetime of what we sign */
	int delivery_threads;		/* parallel delivery workers */
	/* Instant messages to other servers are sent by the HTTP worker
	 * that serves the client's Submit, which waits for the answer.  At
	 * most instant_out_max workers wait so at once, so that the
	 * others always serve incoming Delivers: two servers sending to
	 * each other cannot end up with every worker of each waiting for
	 * the other's. */
	int instant_out_max;
	atomic_int instant_out;
	/* Those waiting workers' messages go out together: one of them (the
	 * leader) sends what is pending, a DeliverBatch per domain, while
	 * the others wait for their outcome (outbound.c). */
	pthread_mutex_t instant_lock;
	pthread_cond_t instant_done;
	struct wsed_instant_req *instant_head, **instant_tail;
	int instant_leader;
	wse_http_client *instant_pool[WSED_INSTANT_LEADERS];	/* a leader's */
	unsigned char instant_busy[WSED_INSTANT_LEADERS];
	/* Servers without DeliverBatch, shared by the delivery workers and
	 * the instant senders; the lock is never held across a call. */
	pthread_mutex_t nobatch_lock;
	struct wsed_nobatch nobatch[WSED_NOBATCH_MAX];
	int64_t last_expire;		/* last wse_store_expire run */
	int64_t last_checkpoint;	/* last wse_store_checkpoint run */
	atomic_int stopping;		/* set once by main at shutdown */
	pthread_mutex_t wake_lock;
	pthread_cond_t wake;		/* new work for the delivery worker */
	/* group commit (commit.c) */
	pthread_mutex_t commit_lock;
	pthread_cond_t commit_work;
	struct commit_req *commit_head, **commit_tail;
	int commit_stop;
	uint64_t commits, committed;	/* transactions, submissions */
	/* Client Submits handed over without a waiting worker (ops.c): at
	 * most async_max at once, so that a flood of them holds no more
	 * messages in memory than as many waiting workers would; past it,
	 * the worker waits for the commit itself.  0: never. */
	int async_max;
	atomic_int async_n;
	/* time source (tests shift it) */
	int64_t (*now)(void);
	/* external plugins (plugins.c), in configuration order */
	struct wsed_plugin *plugins;
	size_t nplugins;
	atomic_int plugins_serving;	/* host->submit allowed */
	struct wsed_holds *holds;	/* requests plugins hold */
	/* password-guessing guard (guard.c); NULL: none */
	struct wsed_guard *guard;
};

/* ---- password-guessing guard (guard.c) ---- */

wse_status wsed_guard_new(struct wsed_guard **g_r);
void wsed_guard_free(struct wsed_guard **g);
/* WSE_ERR_TEMPFAIL (with the wait) while user or addr ("IP:PORT") is
 * blocked; either may be NULL. */
wse_status wsed_guard_check(struct wsed_guard *g, const char *user,
    const char *addr, int64_t now);
/* A failed MAC for user from addr. */
void wsed_guard_fail(struct wsed_guard *g, const char *user,
    const char *addr, int64_t now);
/* A verified request: forget the failures of user and addr. */
void wsed_guard_ok(struct wsed_guard *g, const char *user, const char *addr,
    int64_t now);

/* Every built-in operation, NULL-terminated (ops.c: the dispatch in
 * wsed_handle); plugins may not take these names. */
extern const char *const wsed_builtin_ops[];

/* Queue one submission durably through the committer (group commit);
 * returns its own outcome (WSE_ERR_REPLAY for a replayed nonce). */
wse_status wsed_commit(struct wsed *s, const wse_submission *sub);
/*
 * The same without waiting: sub (and everything it points to) must stay
 * valid until fn(s, arg, st) is called, once, on the committer thread
 * after the commit, with what wsed_commit would have returned (its
 * error on the calling thread's stack).  fn must not commit.
 * WSE_ERR_TEMPFAIL (fn never called) when the committer is stopping.
 */
typedef void (*wsed_commit_fn)(struct wsed *s, void *arg, wse_status st);
wse_status wsed_commit_async(struct wsed *s, const wse_submission *sub,
    wsed_commit_fn fn, void *arg);
/* The committer thread; wsed_commit_stop makes it finish the waiting
 * submissions and return. */
void *wsed_commit_main(void *arg);
void wsed_commit_stop(struct wsed *s);

/* Most bytes of text in an instant message (docs/im.md). */
#define WSED_INSTANT_TEXT_MAX 65536
/* Seconds an instant message may take to reach another domain's server. */
#define WSED_INSTANT_TIMEOUT_MS 5000

/* A request that came over the network (serve.c): a plugin operation
 * flagged WSE_PLUGIN_OP_HOLD may hold it.  held: out, 1 when the request
 * is held - the caller must not answer it (out is empty). */
struct wsed_hold_ctx {
	wse_http_req *req;
	int held;
};

/* Handle one HTTP request body (a SOAP envelope) and append the signed
 * response envelope to out; *http_status_r gets 200 or 500 (Fault).
 * peer/npeer: the TLS client's verified chain (npeer 0 if none). */
void wsed_handle(struct wsed *s, const uint8_t *body, size_t len,
    wse_cert *const *peer, size_t npeer, wse_buf *out, int *http_status_r);
/* The same; a plugin operation may answer with a file range instead:
 * then stream->fd >= 0 (the caller owns it and sends it with
 * wse_http_reply_file) and out is empty.  stream->fd is -1 otherwise.
 * peer_addr ("IP:PORT", may be NULL) feeds the password guard. */
void wsed_handle_stream(struct wsed *s, const uint8_t *body, size_t len,
    wse_cert *const *peer, size_t npeer, const char *peer_addr, wse_buf *out,
    int *http_status_r, struct wse_plugin_stream *stream);

/* The same, for a request of the transport: hc (may be NULL) lets a
 * plugin hold it. */
void wsed_handle_held(struct wsed *s, const uint8_t *body, size_t len,
    wse_cert *const *peer, size_t npeer, const char *peer_addr, wse_buf *out,
    int *http_status_r, struct wse_plugin_stream *stream,
    struct wsed_hold_ctx *hc);

/* The signed answer to a request (its MessageID msgid, may be NULL) for
 * operation op: the payload (st WSE_OK) or a Fault for st, into out;
 * *http_status_r gets 200 or 500. */
void wsed_answer(struct wsed *s, const char *op, const char *msgid,
    wse_status st, const wse_buf *payload, wse_buf *out, int *http_status_r);

/* ---- instant messages (ops.c, outbound.c; docs/im.md) ---- */

/* WSE_OK when m is a valid instant message: one To, no Cc, no
 * attachments, text of at most WSED_INSTANT_TEXT_MAX bytes, no subject;
 * WSE_ERR_INVALID with the reason. */
wse_status wsed_instant_check(const wse_msg *m);
/*
 * The receiving side of an instant message for the local mailbox rcpt
 * (which must exist; m checked, its From proven): the message hooks with
 * WSE_PLUGIN_MSG_INSTANT, then stored flagged WSE_MSG_INSTANT unless a
 * plugin took it.  replay_id (may be NULL): the request's nonce, spent
 * in every outcome.  *stored_r, *sessions_r: the outcome.
 * WSE_ERR_NOT_AUTHORIZED when a plugin refused it (nothing stored).
 */
wse_status wsed_instant_local(struct wsed *s, const wse_msg *m,
    const char *rcpt, const char *origin, const char *origin_id,
    const uint8_t *original, size_t len, const char *replay_id,
    int64_t replay_expires, int *stored_r, unsigned *sessions_r);
/*
 * Send the instant message m (checked, dated) of a local user at once,
 * not queued: a signed Deliver to the recipient's server (this one for a
 * local recipient), within WSED_INSTANT_TIMEOUT_MS.  id: the
 * submission's id (the Deliver's OriginId).  *stored_r, *sessions_r:
 * the recipient server's answer.  Its Faults come back as their status
 * (WSE_ERR_NOT_AUTHORIZED: refused by the recipient's policy); an
 * unreachable or unverifiable server is WSE_ERR_TEMPFAIL.
 */
wse_status wsed_instant_send(struct wsed *s, const wse_msg *m, const char *id,
    int *stored_r, unsigned *sessions_r);
/* Set up what wsed_instant_send shares between workers; fini frees its
 * HTTPS clients once no worker runs. */
void wsed_instant_init(struct wsed *s);
void wsed_instant_fini(struct wsed *s);

/* ---- the HTTP side (serve.c): requests to worker threads ---- */

struct wsed_serve;
/* Start `threads` workers for s.  0 or -1. */
int wsed_serve_start(struct wsed *s, int threads, struct wsed_serve **sv_r);
/* Queue a POST request of the transport for the workers. */
void wsed_serve_post(struct wsed_serve *sv, wse_http_req *req);
/* Let the workers finish what is queued, join them and free sv. */
void wsed_serve_stop(struct wsed_serve **sv);

/* Options to verify a message signed by domain's server (certificate
 * profile, service purpose, our trust store, replay cache and clock). */
void wsed_server_opts(struct wsed *s, const char *domain,
    wse_verify_opts *o);

/* Largest serialised m:Message a client may submit, so that its stored
 * original can always be fetched (base64 inside a response that must
 * itself fit the limits). */
size_t wsed_max_submit(const struct wsed *s);

/* Sign env (certificate profile) and serialise it into out. */
wse_status wsed_sign_out(struct wsed *s, wse_envelope *env, wse_buf *out);

/* Queue a message from the local user `sender` (already authenticated
 * and checked) to every recipient; *id_r (WSE_UUID_URN_LEN + 1) gets
 * the submission's id (with WSED_SUBMIT_KEEP_ID in flags, id_r already
 * holds the id to use).  Durable when it returns WSE_OK. */
#define WSED_SUBMIT_KEEP_ID	(1u << 30)
wse_status wsed_submit(struct wsed *s, wse_msg *m, unsigned flags,
    const char *replay_id, int64_t replay_expires, char *id_r);

/* Set up and free what the delivery workers and the instant senders
 * share (the servers remembered to refuse DeliverBatch); fini once
 * neither runs. */
void wsed_outbound_init(struct wsed *s);
void wsed_outbound_fini(struct wsed *s);
/* Run the delivery worker until s->stopping (thread entry). */
void *wsed_outbound_main(void *arg);
/* One pass over the due queue items; returns how many were handled. */
size_t wsed_outbound_pass(struct wsed *s);
/* Wake the worker (new submission). */
void wsed_outbound_kick(struct wsed *s);

/* The WSDL 1.1 document for s->url: built-in and plugin operations. */
wse_status wsed_wsdl(const struct wsed *s, wse_buf *out);

/* ---- plugins (plugins.c, lib/plugin.h) ---- */

/* Load every "plugin = PATH [ARGS]" of cfg's main section in order:
 * dlopen, ABI and name checks, init.  Returns 0, or 1 after printing the
 * reason (what was loaded stays for wsed_plugins_unload). */
int wsed_plugins_load(struct wsed *s, const wse_config *cfg,
    const char *cfg_path);
/* The committer runs: from now on host->submit works. */
void wsed_plugins_start(struct wsed *s);
/* deinit and dlclose every plugin, last first.  No hook may be running. */
void wsed_plugins_unload(struct wsed *s);
/*
 * Run the message hooks on a verified delivery to the local mailboxes
 * rcpts[0..*n-1]; the recipients a plugin took are removed from rcpts (in
 * place, order kept) and *n is updated.  WSE_ERR_TEMPFAIL when a plugin
 * asks for the delivery to be retried later; otherwise WSE_OK.
 */
wse_status wsed_plugins_deliver(struct wsed *s, const wse_msg *m,
    const char *origin, const char *origin_id, const uint8_t *original,
    size_t len, const char **rcpts, size_t *n);
/* The same for an instant message (WSE_PLUGIN_MSG_INSTANT): *refused_r
 * gets 1 when a plugin refused it for a recipient (then nothing may be
 * stored), *sessions_r the sessions reported for what was taken. */
wse_status wsed_plugins_deliver_instant(struct wsed *s, const wse_msg *m,
    const char *origin, const char *origin_id, const uint8_t *original,
    size_t len, const char **rcpts, size_t *n, int *refused_r,
    unsigned *sessions_r);
/* 1 when a plugin serves operation op. */
int wsed_plugins_has_op(const struct wsed *s, const char *op);
/* The i-th plugin operation (load order), NULL past the end. */
const char *wsed_plugins_op(const struct wsed *s, size_t i);
/* The WSE_PLUGIN_OP_* flags of plugin operation op (0 if unknown). */
unsigned wsed_plugins_op_flags(const struct wsed *s, const char *op);
/* Call the plugin serving op for a request verified with the password
 * profile or, for a WSE_PLUGIN_OP_TOKEN operation, a token (v); its
 * payload is appended to resp and checked.  stream (may be NULL) is
 * handed to a WSE_PLUGIN_OP_STREAM operation: on WSE_OK with
 * stream->fd >= 0 the answer is that file range (the caller owns fd). */
wse_status wsed_plugins_call(struct wsed *s, const char *op,
    const wse_verified *v, wse_buf *resp, struct wse_plugin_stream *stream);
/* The same with the request as received (original) and, for a request
 * that may be held, hc (may be NULL; see struct wsed_hold_ctx). */
wse_status wsed_plugins_call_held(struct wsed *s, const char *op,
    const wse_verified *v, const uint8_t *original, size_t len,
    wse_buf *resp, struct wse_plugin_stream *stream,
    struct wsed_hold_ctx *hc);
/* 1 when a plugin has a submit hook (may change a message submitted). */
int wsed_plugins_submit_hooked(const struct wsed *s);
/* 1 when a plugin has a message hook (reads each delivered message and
 * its original). */
int wsed_plugins_message_hooked(const struct wsed *s);
/* How many requests plugins hold now. */
size_t wsed_plugins_held(struct wsed *s);
/* Run every plugin's submit hook on a message user submits (id: its
 * submission id); then refuse one with on-demand entries left
 * unresolved. */
wse_status wsed_plugins_submit(struct wsed *s, const char *user,
    const char *id, wse_msg *m);

#endif
