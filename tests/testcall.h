/*
 * testcall.h - a client's call of one operation, for the test helper
 * programs (plugin_call, imtool): log in with a password
 * (GetAuthParams, PBKDF2), build and sign a request, POST it and verify
 * the signed answer (certificate profile, a service certificate of the
 * user's domain, RelatesTo the request; CRLs are not checked).
 * Messages go to stderr, prefixed with the program's name.
 */
#ifndef WSE_TESTCALL_H
#define WSE_TESTCALL_H

#include <libxml/tree.h>

#include "buf.h"
#include "http.h"
#include "pki.h"
#include "replay.h"
#include "soap.h"
#include "wselimits.h"
#include "wss.h"

struct tcall {
	const char *prog;		/* prefix of the messages */
	const char *server, *connect, *roots;
	const char *user;		/* whose domain's server answers */
	wse_limits lim, resp_lim;
	wse_trust *trust;
	wse_replay *replay;
	wse_http_client *http;
	wse_signer *signer;		/* freed by tcall_free */
};

/* "<prog>: <what>: <the error stack>" on stderr; returns 1. */
int tcall_fail(const struct tcall *c, const char *what);

/* Limits (answers up to twice a request's size), the roots as the only
 * trust (no CRLs), a replay cache and the HTTPS client.  0, or 1
 * (printed). */
int tcall_setup(struct tcall *c);

/* Free what tcall_setup and tcall_login made. */
void tcall_free(struct tcall *c);

/* Text of the only m:<local> child of parent, malloc'd, or NULL. */
char *tcall_child_text(const xmlNode *parent, const char *local);

/* A request of op with payload, signed with c->signer when sign, into
 * *env_r and serialised into req.  0, or 1 (printed). */
int tcall_build(struct tcall *c, const char *op, const char *payload,
    int sign, wse_envelope **env_r, wse_buf *req);

/*
 * One exchange.  Returns 0 with *env_r / *v (the verified answer) and
 * *payload_r (its <op>Response, NULL for a Fault, *fault_r then set),
 * or 1 (printed).
 */
int tcall_exchange(struct tcall *c, const char *op, const char *payload,
    int sign, wse_envelope **env_r, wse_verified *v, xmlNodePtr *payload_r,
    wse_status *fault_r);

/* GetAuthParams for c->user, then c->signer: the password profile's
 * signer of the key derived from password.  0, or 1 (printed). */
int tcall_login(struct tcall *c, const char *password);

#endif
