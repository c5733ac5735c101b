/*
 * plugin.h - the ABI of wsemaild's external plugins (the paper's section 2:
 * "message-dependent" and "RPC-like" plugins; ARCHITECTURE.md item 7).
 * docs/plugins.md is the guide; this header is the contract.
 *
 * A plugin is a shared object that wsemaild loads at start-up, one
 * configuration line each (main section, repeatable, loaded and called in
 * this order):
 *
 *     plugin = /usr/lib/wsemail/plugins/autoreply.so bob@a.test=Away
 *
 * The path (absolute, no blanks) is dlopen'ed with RTLD_NOW | RTLD_LOCAL;
 * the rest of the line, leading blanks removed, is the plugin's `args`
 * ("" when there is none).  The object exports ONE symbol:
 *
 *     const struct wse_plugin *wse_plugin_entry(void);
 *
 * returning a descriptor of static storage duration (see WSE_PLUGIN_EXPORT).
 * The server refuses to start - a message naming the plugin on stderr and
 * exit status 1 (also with `wsemaild -t`) - when the file cannot be
 * loaded or has an unresolved symbol, wse_plugin_entry is missing or
 * returns NULL, `abi` is not exactly WSE_PLUGIN_ABI, `name` or an
 * operation name is malformed, an operation name is a built-in operation
 * or another plugin's, or init fails.
 *
 * VERSIONING (Dovecot's plugin version string): WSE_PLUGIN_ABI names this
 * header - the layouts of struct wse_plugin, wse_plugin_host and
 * wse_plugin_delivery, the flags and the calling rules below - together
 * with the libwsemail functions a plugin calls.  Any incompatible change
 * gets a new string.  `abi` is the first member of struct wse_plugin in
 * every version, so the server can read it from any plugin, old or new.
 *
 * LINKING: a plugin calls libwsemail (wse_err, wse_buf_*, wse_msg_*,
 * wse_addr_*, wse_xml_*, wse_store_*, ...) directly: wsemaild holds the
 * whole library and exports its symbols, and the dynamic linker binds the
 * plugin's references to them when it is loaded.  A plugin must NOT link
 * its own copy of libwsemail (it would get a second error stack and
 * second library state); it may link shared libraries such as libxml2,
 * which are then the server's own instances.  It must not call the
 * server's internal wsed_* functions (exported too, but not part of the
 * ABI).
 *
 * TRUST: a plugin runs inside the server with all of its privileges; it
 * is exactly as trusted as the configuration file that names it.  Code
 * obtained from elsewhere (a form type's semantics) is not run this way
 * (ARCHITECTURE.md: signed, sandboxed Lua).
 *
 * THREADS:
 *  - init and deinit run on the server's main thread: every init before
 *    the first request is served, every deinit (in reverse order) after
 *    the last hook has returned and every worker thread has stopped.
 *  - message and call are called from worker threads - the HTTP workers
 *    and the delivery worker, which runs deliveries to this domain's own
 *    mailboxes - CONCURRENTLY: several calls may run at once, for the
 *    same or different plugins, with the same state.  A plugin protects
 *    its mutable state itself (a pthread mutex; never hold it while
 *    calling host->submit).  A hook runs while a client or a sending
 *    server waits for its answer: it must be quick and must never block
 *    without a bound (no network call without a short timeout).
 *  - libwsemail's error stack (wse_err) is per thread: a hook may push
 *    messages on it; the server logs them and clears the stack.
 *  - The host's functions are thread-safe and may be called from hooks
 *    and from threads a plugin starts (which it must stop in deinit).
 *  - cancelled (held requests) is called from the server's event loop
 *    thread (or a worker thread, or the thread that stops the server):
 *    it must only take the plugin's own lock briefly and never wait.
 */
#ifndef WSE_PLUGIN_H
#define WSE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include <libxml/tree.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "msg.h"
#include "soap.h"		/* WSE_NS_WSE, wse_time_* */
#include "store.h"
#include "wselimits.h"

#define WSE_PLUGIN_ABI "wsemail-plugin-abi-3"

/* The one symbol a plugin exports. */
#define WSE_PLUGIN_ENTRY "wse_plugin_entry"
#define WSE_PLUGIN_EXPORT __attribute__((visibility("default")))

/* Names: a plugin's name is 1..32 of [a-z0-9_-]; an operation name is
 * 1..64 of [A-Za-z0-9], starting with a letter (its Actions are
 * urn:wsemail:2026/<Op> and urn:wsemail:2026/<Op>Response).  At most
 * WSE_PLUGIN_OPS_MAX operations per plugin. */
#define WSE_PLUGIN_NAME_MAX 32
#define WSE_PLUGIN_OP_MAX 64
#define WSE_PLUGIN_OPS_MAX 16

/* struct wse_plugin_delivery.flags */
#define WSE_PLUGIN_MSG_REPORT	0x1u	/* a non-delivery report (From
					 * mailer-daemon@...): never answer */
#define WSE_PLUGIN_MSG_LOCAL	0x2u	/* origin is this server's domain */
#define WSE_PLUGIN_MSG_INSTANT	0x4u	/* an instant message (m:Instant,
					 * docs/im.md): delivered while the
					 * sender waits, never queued; the
					 * hook may refuse it */

/* consumed_r[i] values of the message hook */
#define WSE_PLUGIN_KEEP		0	/* not taken: stored as usual */
#define WSE_PLUGIN_TAKEN	1	/* taken: not stored for rcpts[i] */
#define WSE_PLUGIN_REFUSE	2	/* refused for rcpts[i]: nothing
					 * stored for it; an instant message
					 * is answered with a NotAuthorized
					 * Fault (mail: as TAKEN) */

/* struct wse_plugin.op_flags[i]: how requests for ops[i] are verified */
#define WSE_PLUGIN_OP_PASSWORD	0x0u	/* password profile, a user of
					 * this domain (the default) */
#define WSE_PLUGIN_OP_TOKEN	0x1u	/* certificate profile signed with a
					 * federated token (paper Msg 7) of
					 * ANY domain whose CA chains to our
					 * root; the user is the token's
					 * mailbox */
#define WSE_PLUGIN_OP_STREAM	0x2u	/* may answer with a byte stream
					 * instead of a SOAP envelope */
#define WSE_PLUGIN_OP_HOLD	0x4u	/* call may hold the request and
					 * answer it later (host->hold) */

/* struct wse_plugin_request.auth */
#define WSE_PLUGIN_AUTH_PASSWORD 1
#define WSE_PLUGIN_AUTH_TOKEN	2

/* host->submit flags */
#define WSE_PLUGIN_SUBMIT_NO_BOUNCE 0x1u /* if undeliverable, drop it: no
					  * non-delivery report goes back
					  * (auto-replies, notifications) */

struct wse_plugin;
struct wse_plugin_request;

/*
 * A held request (WSE_PLUGIN_OP_HOLD): opaque, owned by the server,
 * reference-counted.  The plugin owns ONE reference from host->hold
 * until it calls host->answer or host->release (exactly one of them,
 * exactly once); the handle stays valid until then whatever happens to
 * the client's connection, so a plugin can never touch freed memory.
 */
typedef struct wse_plugin_held wse_plugin_held;

/*
 * What the server gives a plugin: one per loaded plugin, passed to init,
 * owned by the server and valid (unchanged) until that plugin's deinit
 * has returned.  Every function is thread-safe.
 */
struct wse_plugin_host {
	/* This server's domain ("a.test"), as configured. */
	const char *domain;
	/* The server software and version ("wsemaild 0.1.0"). */
	const char *version;
	/* This server's endpoint URL as other parties address it
	 * ("https://a.test:8443/wsemail"): the wsa:To of requests to it. */
	const char *url;
	/* The server's limits (message size, ...); read only. */
	const wse_limits *limits;
	/*
	 * The server's store (store.h): users, mailboxes, queue.  The object
	 * is thread-safe; a plugin should only read it (wse_store_user_get,
	 * wse_store_count, wse_store_list, ...) - mail it wants delivered
	 * goes through submit, so that it is signed, queued durably and
	 * delivered like any message.
	 */
	wse_store *store;
	/* The server's clock (seconds since the epoch); tests shift it. */
	int64_t (*now)(void);
	/* Log one line, prefixed with the time and "plugin NAME: ";
	 * control characters in the result are replaced, so untrusted text
	 * (a subject) may be logged. */
	void (*log)(const struct wse_plugin_host *h, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
	/*
	 * Queue a new message through the server's normal durable path (as a
	 * client's Submit: group commit, then signed Deliver calls, retries,
	 * non-delivery reports).  m->from must be an address of this domain
	 * (it need not be a user: e.g. "postmaster@a.test"); at least one
	 * recipient.  The server sets m's Date (that is the only change); the
	 * caller still owns m and frees it.  flags: WSE_PLUGIN_SUBMIT_*.
	 * id_r (may be NULL) receives the queued message's id.  Returns
	 * once the message is durable: WSE_OK; WSE_ERR_NOT_AUTHORIZED for a
	 * sender of another domain; WSE_ERR_INVALID; WSE_ERR_TEMPFAIL while
	 * the server is not serving (from init or deinit, during shutdown)
	 * or the queue cannot be written.  It waits for a store commit:
	 * never call it holding a lock another hook may need.
	 */
	wse_status (*submit)(const struct wse_plugin_host *h, wse_msg *m,
	    unsigned flags, char *id_r /* [WSE_UUID_URN_LEN + 1] */);
	/*
	 * The i-th loaded plugin's descriptor in configuration order (this
	 * one included), NULL past the end.  The list is complete once every
	 * plugin is loaded, i.e. from the first hook on; the descriptors
	 * stay valid until deinit.
	 */
	const struct wse_plugin *(*plugin)(const struct wse_plugin_host *h,
	    size_t i);
	/* The server's; a plugin never reads or changes it. */
	void *priv;

	/* ---- ABI 3: held requests (WSE_PLUGIN_OP_HOLD operations) ---- */

	/*
	 * From call only, for a request of an operation flagged
	 * WSE_PLUGIN_OP_HOLD: do not answer it now.  *held_r gets the
	 * handle (the plugin's reference); call then returns WSE_OK with
	 * resp left empty, and no worker thread waits: the client's
	 * connection stays open until the plugin answers.  Later, from any
	 * thread, the plugin calls answer (or release).  If the client's
	 * connection closes first, or the server stops, the server calls
	 * the plugin's cancelled(state, held) once - never before call has
	 * returned - and the plugin then releases its reference (or
	 * answers: that fails cleanly).  WSE_ERR_UNSUPPORTED when this
	 * request cannot be held (it did not come over the network, or
	 * the operation is not flagged): answer it at once instead.
	 * WSE_ERR_TEMPFAIL when the server is stopping.
	 */
	wse_status (*hold)(const struct wse_plugin_host *h,
	    const struct wse_plugin_request *r, wse_plugin_held **held_r);
	/*
	 * Answer a held request and drop the plugin's reference: st WSE_OK
	 * with payload exactly one <m:OpResponse> element, as call would
	 * have written it (the server checks it, wraps it in a response
	 * envelope that RelatesTo the request, signs it and sends it); any
	 * other st sends the Fault for that status (payload may be NULL).
	 * Thread-safe, never blocks on the network.  WSE_OK when the
	 * answer was handed to the connection; WSE_ERR_NOT_FOUND when the
	 * request was cancelled (or answered) before; the reference is
	 * dropped in every case - held is invalid afterwards.
	 */
	wse_status (*answer)(const struct wse_plugin_host *h,
	    wse_plugin_held *held, wse_status st, const wse_buf *payload);
	/* Drop the plugin's reference without answering (after cancelled);
	 * a request still waiting gets a TempFail Fault.  held is invalid
	 * afterwards. */
	void (*release)(const struct wse_plugin_host *h, wse_plugin_held *held);

	/* ---- ABI 3: instant messages that arrive outside a Deliver ---- */

	/*
	 * Deliver the instant message m (m->instant, one To: the local
	 * mailbox rcpt, which must exist) as the server does for an
	 * instant Deliver: every plugin's message hook with
	 * WSE_PLUGIN_MSG_INSTANT (this plugin's too: do not hold a lock the
	 * hook needs), then, unless a plugin took it, stored in rcpt's
	 * mailbox flagged WSE_MSG_INSTANT.  The caller has proven m's From
	 * (for DeliverDirect: the token's mailbox).  origin and origin_id
	 * name the message for de-duplication (origin: From's domain);
	 * original (len bytes) is what is stored and handed on for
	 * end-to-end verification (the signed request as received).
	 * *stored_r: 1 stored, 0 taken by a plugin; *sessions_r: the
	 * sessions the taking plugin reported.  WSE_ERR_NOT_AUTHORIZED when
	 * a plugin refused it (nothing stored), WSE_ERR_NO_SUCH_USER,
	 * WSE_ERR_TEMPFAIL, WSE_ERR_INVALID (not a valid instant message).
	 */
	wse_status (*deliver_instant)(const struct wse_plugin_host *h,
	    const wse_msg *m, const char *rcpt, const char *origin,
	    const char *origin_id, const uint8_t *original, size_t len,
	    int *stored_r, unsigned *sessions_r);
};

/*
 * One message about to be stored in this domain, given to the message
 * hook.  It has passed every check of a Deliver (certificate signature of
 * origin's server, TLS peer of the same domain, From of origin's domain,
 * the message's own checks); the recipients are this domain's existing
 * mailboxes.  Everything here is owned by the server and valid only
 * during the call; a plugin copies what it keeps.
 */
struct wse_plugin_delivery {
	const wse_msg *msg;		/* the parsed, checked message */
	const char *origin;		/* the verified sending domain */
	const char *origin_id;		/* its id of the message: (origin,
					 * origin_id) names one message */
	const uint8_t *original;	/* the signed Deliver envelope as
					 * received, or for an item of a
					 * DeliverBatch its batch original
					 * (lib/batch.h): what the store
					 * keeps, for end-to-end
					 * verification */
	size_t original_len;
	unsigned flags;			/* WSE_PLUGIN_MSG_* */
	const char *const *rcpts;	/* local recipients (normalised)
					 * not taken by an earlier plugin */
	size_t nrcpts;			/* >= 1 */
	/* ABI 3: nrcpts entries, all 0: for a recipient it takes, the hook
	 * may set how many of its sessions got the message (an instant
	 * message pushed to N screens); the sender is told. */
	unsigned *sessions_r;
};

/*
 * One verified request for a plugin operation.  Owned by the server,
 * valid only during the call.
 */
struct wse_plugin_request {
	const char *op;			/* one of the plugin's ops */
	int auth;			/* WSE_PLUGIN_AUTH_* */
	/* PASSWORD: the authenticated user, a mailbox of this domain.
	 * TOKEN: the token's mailbox (any domain), proven by: freshness,
	 * token validity interval, replay cache, signature by the token's
	 * key, chain root -> that domain's CA -> token with name
	 * constraints and CRLs, wsa:To = this server - in that order. */
	const char *user;
	const char *message_id;		/* the request's wsa:MessageID */
	const xmlNode *body;		/* the VERIFIED soap:Body */
	int64_t now;			/* the server's clock */
	/* ABI 3: the request envelope exactly as received (what a plugin
	 * keeps when it hands the request on for end-to-end checks) */
	const uint8_t *original;
	size_t original_len;
};

/*
 * A streamed answer (operations flagged WSE_PLUGIN_OP_STREAM only).  The
 * server hands call a stream with fd = -1.  To answer with bytes instead
 * of an envelope, call sets fd to an open, readable, seekable file and
 * returns WSE_OK: the server then owns fd (closes it in every case) and
 * sends HTTP 200, Content-Type application/octet-stream, the header
 * "X-WSEmail-Total: <total>" and exactly `length` bytes read from
 * `offset`, flow-controlled (the file is never held whole in memory).
 * The bytes are NOT signed: the party fetching them checks them against
 * a digest it holds from a signed message.  resp is ignored then.
 */
struct wse_plugin_stream {
	int fd;
	uint64_t offset;
	uint64_t length;
	uint64_t total;
};

/*
 * The descriptor a plugin exports through wse_plugin_entry.  It and every
 * string it points to are the plugin's, constant and valid until the
 * server unloads the plugin.
 */
struct wse_plugin {
	/* WSE_PLUGIN_ABI, exactly.  Always the first member. */
	const char *abi;
	/* Short name for logs and the plugin list: [a-z0-9_-]{1,32}. */
	const char *name;

	/*
	 * Optional (NULL: nothing to set up).  Called once per
	 * configuration line naming the plugin (the same file may be named
	 * twice: two independent instances).  host: see above.  args: the
	 * rest of the configuration line, valid only during the call (copy
	 * what is kept).  *state_r: the plugin's own state, handed back to
	 * every hook and to deinit (may stay NULL).  On failure return a
	 * status with the reason pushed with wse_err(); the server prints
	 * it and refuses to start; deinit is NOT called then, so init frees
	 * what it made.
	 */
	wse_status (*init)(const struct wse_plugin_host *host,
	    const char *args, void **state_r);
	/* Optional.  Free the state; stop any thread the plugin started.
	 * host->submit no longer works. */
	void (*deinit)(void *state);

	/*
	 * Optional message-dependent hook, called for every message about
	 * to be stored in this domain, after its signature was verified and
	 * its recipients were checked, before it is stored.  consumed_r has
	 * d->nrcpts entries, all 0: set consumed_r[i] = 1 to take the message
	 * for d->rcpts[i], which is then NOT stored for that recipient (the
	 * plugin has delivered it some other way, or refuses it); the
	 * sending server is still told "Accepted" for every recipient.  When
	 * every recipient is taken, nothing is stored (the request's nonce
	 * is still spent).  Plugins are called in configuration order, each
	 * with the recipients left by the earlier ones; once none is left,
	 * no further plugin is called.  The hook may queue new messages
	 * with host->submit.
	 * ABI 3: consumed_r[i] = WSE_PLUGIN_REFUSE refuses the message for
 * rcpts[i]: it is stored for nobody it was refused for; for a message
 * flagged WSE_PLUGIN_MSG_INSTANT the sender gets a NotAuthorized Fault
 * (nothing of it is stored or pushed); for mail it counts as taken.
 * A plugin that takes an instant message may report in
 * d->sessions_r[i] how many sessions it reached.  An instant message
 * that no plugin takes is stored flagged WSE_MSG_INSTANT.
 * Returns: WSE_OK - consumed_r applies.  WSE_ERR_TEMPFAIL - "not
	 * now": the whole delivery is refused with a TempFail Fault, nothing
	 * is stored, and the sending server retries later.  Anything else -
	 * the plugin failed: the server logs it and ignores its consumed_r
	 * (the message is stored as if the plugin were absent).
	 * Delivery is at least once: the same message (same origin,
	 * origin_id) can reach the hook again - after a TempFail, after a
	 * lost answer (the sending server retries; a message that was
	 * stored is then de-duplicated only AFTER the hooks ran), or for
	 * two concurrent copies of one request.  A hook must tolerate that.
	 */
	wse_status (*message)(void *state, const struct wse_plugin_delivery *d,
	    int *consumed_r);

	/*
	 * Optional RPC-like part: operations this plugin adds, a
	 * NULL-terminated list of names (NULL or empty: none), their flags
	 * (op_flags: NULL, or one WSE_PLUGIN_OP_* set per name), and the
	 * handler (required when there are operations).  A request for one
	 * of them is verified before call runs: with the password profile
	 * (freshness, replay cache, MAC under the user's key, wsa:To = this
	 * server), like a client's built-in operations, or for
	 * WSE_PLUGIN_OP_TOKEN with the certificate profile and a token
	 * certificate (see struct wse_plugin_request).  For a token
	 * operation, a token outside its validity interval, untrusted or
	 * revoked gives the client the same NotAuthorized fault as any
	 * refusal by the plugin, so that a caller cannot tell them apart.
	 *   r:      the verified request;
	 *   resp:   an empty buffer for the answer payload, exactly one
	 *           element <m:OpResponse xmlns:m="urn:wsemail:2026">...,
	 *           written with wse_buf_* (text through
	 *           wse_buf_put_xml_escaped);
	 *   stream: NULL, or (WSE_PLUGIN_OP_STREAM) see struct
	 *           wse_plugin_stream.
	 * The server checks the payload's shape, wraps it in a response
	 * envelope (Action <Op>Response, RelatesTo the request) and signs
	 * it with its service certificate.  On failure return a status (for
	 * example WSE_ERR_INVALID for a malformed request,
	 * WSE_ERR_NOT_AUTHORIZED, WSE_ERR_NOT_FOUND, WSE_ERR_TEMPFAIL): the
	 * client gets a signed Fault whose subcode comes from it and a
	 * generic reason; messages pushed with wse_err() go to the server
	 * log only.  A stream fd set on failure is closed by the server.
	 */
	const char *const *ops;
	const unsigned *op_flags;
	wse_status (*call)(void *state, const struct wse_plugin_request *r,
	    wse_buf *resp, struct wse_plugin_stream *stream);

	/*
	 * Optional: called for every message a user of this domain submits
	 * (and every message queued through host->submit), after it was
	 * verified and checked and before it is queued.  user: the
	 * authenticated sender (m->from); id: the submission's id, as the
	 * client is told it.  The hook may resolve the message's on-demand
	 * entries (wse_msg_resolve_ondemand) and must not change anything
	 * else.  Any status but WSE_OK refuses the submission (the client
	 * gets a Fault with that status's subcode; nothing is queued); a
	 * message that still has unresolved on-demand entries after every
	 * hook ran is refused as invalid.  Called concurrently, like the
	 * other hooks.  What the hook records for the message may outlive a
	 * submission that then fails to commit; it must tolerate that.
	 */
	wse_status (*submit)(void *state, const char *user, const char *id,
	    wse_msg *m);

	/*
	 * ABI 3, required when an operation is flagged WSE_PLUGIN_OP_HOLD:
	 * the request held as `held` will never be answered (its client's
	 * connection closed, or the server is stopping).  Called once per
	 * held request that the plugin had not answered yet, on the
	 * server's event-loop thread (see THREADS).  The plugin forgets
	 * held and calls host->release for it (or, if another of its
	 * threads is about to answer it, lets that answer fail).
	 */
	void (*cancelled)(void *state, wse_plugin_held *held);
};

/* The entry point every plugin defines (with WSE_PLUGIN_EXPORT). */
typedef const struct wse_plugin *(*wse_plugin_entry_fn)(void);
const struct wse_plugin *wse_plugin_entry(void);

#endif
