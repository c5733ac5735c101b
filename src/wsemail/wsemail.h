/*
 * wsemail.h - shared parts of the wsemail client: the session with the
 * user's own server (session.c), the commands (cmd_send.c, cmd_read.c,
 * cmd_box.c, cmd_attach.c, cmd_form.c, cmd_im.c), the option parser
 * (wsemail.c),
 * safe terminal output and the password prompt (term.c), token
 * certificates (token.c), on-demand uploads (upload.c) and resumable
 * downloads (part.c).
 *
 * Handlers return a CLI_EXIT_* status and print their own results to
 * stdout; every failure is reported once, on stderr, as "wsemail: ...",
 * by the function that found it.  The library never prints.
 */
#ifndef WSEMAIL_H
#define WSEMAIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libxml/tree.h>

#include "buf.h"
#include "config.h"
#include "err.h"
#include "msg.h"
#include "pki.h"
#include "replay.h"
#include "soap.h"
#include "wselimits.h"
#include "wss.h"
#include "http.h"

#define CLI_PROG "wsemail"

#define CLI_EXIT_OK	0
#define CLI_EXIT_FAIL	1	/* the operation failed or was refused */
#define CLI_EXIT_USAGE	2	/* bad command line */
#define CLI_HELP_SHOWN	(-1)	/* cli_parse printed a command's help */

#define CLI_PASSWORD_MAX 1024	/* bytes, without the NUL */
#define CLI_REQUEST_TTL 300	/* Timestamp lifetime of our requests, s */

/* ---- the session (session.c) ---- */

/* One "connect" line: a URL host (and port, -1 for any) and the
 * numeric address to connect to instead of resolving it. */
struct cli_connect {
	char host[256];			/* lower case; "" for the own server */
	long port;
	char addr[64];			/* for wse_http_post: "1.2.3.4", "::1" */
};

#define CLI_CONNECT_MAX 64

struct cli {
	const char *config_path;	/* as chosen by cli_open */
	wse_config *cfg;
	const char *server;		/* endpoint URL (wsa:To) */
	const char *connect;		/* numeric address to connect to */
	struct cli_connect connects[CLI_CONNECT_MAX];
	size_t nconnects;
	char state_dir[1024];		/* state_dir, default $HOME/.wsemail */
	int last_refused;		/* the last call got a signed Fault */
	wse_status last_fault;		/* its subcode, as a status */
	char address[WSE_ADDR_MAX + 1];	/* the user, normalised */
	const char *domain;		/* into address */
	wse_limits lim;			/* what we build; signed originals */
	wse_limits resp_lim;		/* our server's answers (larger) */
	wse_trust *trust;		/* roots [+ CRLs] */
	int crls_checked;		/* 0: wse_trust_skip_crls */
	wse_trust *trust_nocrl;		/* roots only (cli_trust_nocrl) */
	wse_replay *replay;		/* answers seen in this run */
	wse_http_client *http;
	wse_signer *signer;		/* set by cli_login */
	char path_buf[4096];
};

/* A verified answer of the server: the envelope, what the verifier
 * proved, and the operation's response element (a child of the signed
 * Body). */
struct cli_reply {
	wse_envelope *env;
	wse_verified v;
	xmlNodePtr payload;
};

/*
 * Find and load the configuration (path, else $WSEMAIL_CONFIG, else
 * ~/.config/wsemail/config), set up the trust store, the replay cache
 * and the HTTPS client.  Prints the reason and returns CLI_EXIT_FAIL on
 * failure.
 */
int cli_open(struct cli *c, const char *path);
void cli_close(struct cli *c);

/* In a child made by fork(): a new HTTPS client of its own.  The
 * parent's, whose connections the child shares, is left alone (not
 * freed: the child ends with _exit()). */
int cli_http_renew(struct cli *c);

/* The roots of the configuration without any CRL (revocation not
 * checked), made on first use; NULL after a printed failure. */
wse_trust *cli_trust_nocrl(struct cli *c);

/* Obtain the password, run GetAuthParams, derive the key and make the
 * password signer.  The password and the key are wiped. */
int cli_login(struct cli *c);

/*
 * One call: build the envelope for urn:wsemail:2026/<op> with payload
 * (one XML element), sign it with the password signer (unless
 * unsigned_request), POST it, verify the answer and check it answers
 * this request with <op>Response.  A Fault is printed as "the server
 * refused".  On CLI_EXIT_OK, r holds the answer (cli_reply_clear).
 */
int cli_call(struct cli *c, const char *op, const char *payload,
    int unsigned_request, struct cli_reply *r);
void cli_reply_clear(struct cli_reply *r);

/*
 * Check an answer (resp, with its HTTP status) to the request request_id
 * for op, from server (a URL, for messages) of domain: it must be a SOAP
 * envelope signed by a service certificate of domain (CRLs as configured;
 * when they cannot decide, verified without them), fresh, new to this run,
 * naming request_id in its signed RelatesTo, and hold <op>Response.  A
 * verified Fault is printed as "[WHAT: ]the server refused: SUBCODE
 * (reason)" and sets c->last_refused / c->last_fault.  On CLI_EXIT_OK, r
 * holds the answer.
 */
int cli_check_answer(struct cli *c, const char *what, const char *server,
    const char *domain, const char *op, const char *request_id,
    const wse_buf *resp, long http_status, struct cli_reply *r);

/* The numeric address the "connect" lines give for url (NULL: resolve
 * the URL's host as usual). */
const char *cli_connect_for(const struct cli *c, const char *url);

/* Split "https://HOST[:PORT]/..." into HOST (lower case, without
 * brackets) and PORT (443 when absent): 0, or -1 when malformed. */
int cli_url_host(const char *url, char *host, size_t size, long *port_r);

/* state_dir: made (0700) when missing; it must be a directory of ours
 * not writable by others.  A printed failure otherwise. */
int cli_state_dir_ready(struct cli *c);

/* "1.5 GiB" and the like, into buf. */
void cli_human_size(uint64_t n, char *buf, size_t size);

/* 1 when name is safe as a file name in a directory the user chose:
 * an attachment name as wse_attach_name_ok has it (printable UTF-8 that
 * term_put shows as it is, no '/'), no leading '.', at most 200 bytes
 * (room for a ".part" suffix). */
int cli_safe_name(const char *name);

/* Text of the only child (ns WSE_NS_WSE, local) of parent, at most max
 * bytes, as a malloc'd string; NULL when absent, repeated or not text. */
char *cli_child_text(const xmlNode *parent, const char *local, size_t max);

/* ---- a message verified end to end (cmd_read.c) ---- */

/* The verdict on one original. */
struct cli_e2e {
	wse_envelope *env;
	wse_verified v;
	int valid;
	const char *subcode;		/* when not valid */
	char detail[512];		/* when not valid */
	char signer[512];		/* subject of the signing certificate */
	char revocation[300];		/* why revocation was not checked */
	wse_msg *m;			/* NULL when it cannot be shown */
	char why_not_shown[512];
	char *received_s;		/* as our server reported it */
	int direct;			/* a DeliverDirect, signed by the
					 * sender's token (docs/im.md) */
	int batch;			/* a batch original: e->env is the
					 * batch's head (lib/batch.h) */
	wse_buf *item;			/* its item, at index */
	size_t index;
	xmlDocPtr item_doc;		/* the item, parsed */
};

/*
 * FetchMessage id from our own server (logged in) and verify the original
 * end to end into *e (see cmd_read.c).  CLI_EXIT_OK when the message was
 * fetched, whether or not it verified (e->valid says); a printed failure
 * otherwise.  e is cleared with cli_e2e_clear either way.
 */
int cli_fetch_message(struct cli *c, long long id, struct cli_e2e *e);
void cli_e2e_clear(struct cli_e2e *e);

/*
 * Verify an original envelope (as our server keeps it) end to end, as of
 * received, into *e (zeroed by the caller): a Deliver signed by a service
 * certificate of the domain its m:Origin names, listing us among its
 * recipients, its From of that domain; or a DeliverDirect (an instant
 * message from a roaming sender) signed by a token certificate of the
 * mailbox its From names, listing us in its To.  e->valid says; e->m is
 * set whenever the message can be shown.
 */
void cli_verify_original(struct cli *c, const wse_buf *orig,
    int64_t received, struct cli_e2e *e);

/* ---- token certificates (token.c) ---- */

/* A token certificate of the user's own domain CA (docs/protocol.md
 * RequestToken) with its key and a signer for the certificate profile. */
struct cli_token {
	wse_key *key;
	wse_cert *chain[2];		/* the token, the domain CA */
	wse_signer *signer;
	int64_t not_before, not_after;
	int renewed;			/* obtained in this run */
};

/*
 * A usable token: the one kept under state_dir when it verifies and has
 * more than max(5 minutes, 10% of its lifetime) left (unless force_new),
 * else a new key and a new token from our server (RequestToken; logs in
 * when needed), verified and kept.  A printed failure otherwise.
 */
int cli_token_get(struct cli *c, int force_new, struct cli_token *t);
void cli_token_clear(struct cli_token *t);

/* ---- on-demand uploads (upload.c) ---- */

/* A file to upload: opened, its size and SHA-256 computed (a streaming
 * pass), before the log-in. */
struct cli_upload {
	const char *path;
	const char *name;		/* into path */
	const char *type;
	int fd;
	uint64_t size;
	char sha256[65];
	char handle[WSE_ONDEMAND_REF_MAX + 1];	/* after cli_upload_run */
};

/* Open and hash u->path (u->path, name and type set by the caller). */
int cli_upload_prepare(struct cli_upload *u);
/* Upload it to our server (logged in) in chunks of at most 4 MiB,
 * resuming after a failed call; sets u->handle. */
int cli_upload_run(struct cli *c, struct cli_upload *u);
void cli_upload_close(struct cli_upload *u);

/* ---- resumable downloads (part.c) ---- */

/*
 * DIR/NAME.part of an on-demand attachment being fetched: opened or
 * created (0600, no symbolic links, a regular file), what it holds
 * already hashed; size is the signed size.  A part longer than size is
 * started over.
 */
struct cli_part {
	int dfd;
	char name[256];			/* the final name */
	char part[256];			/* name + ".part" */
	int fd;
	uint64_t size;			/* the signed size */
	uint64_t have;			/* bytes in the part */
	uint64_t got;			/* bytes received in this run */
	void *sha;			/* EVP_MD_CTX of bytes [0, have) */
	int overflow;			/* the server sent more than size */
	int created;			/* the part is new in this run */
};

int cli_part_open(struct cli_part *p, int dfd, const char *name,
    uint64_t size);
/* A wse_http_sink appending to the part (at most up to size). */
int cli_part_sink(void *arg, const void *data, size_t len);
/*
 * When the part holds size bytes: compare its SHA-256 with sha256_hex;
 * equal: sync, rename NAME.part to NAME (never over an existing file),
 * WSE_OK; different: the part is deleted, WSE_ERR_BAD_SIGNATURE.
 * WSE_ERR_EXISTS when NAME exists (the part is kept), WSE_ERR_IO.
 */
wse_status cli_part_finish(struct cli_part *p, const char *sha256_hex);
/* Delete the part and close it. */
void cli_part_discard(struct cli_part *p);
/* Close it (a part this run made and left empty is deleted). */
void cli_part_close(struct cli_part *p);

/* ---- messages and usage (wsemail.c) ---- */

/* "wsemail: WHAT: <error stack>" (or just WHAT when the stack is empty)
 * on stderr; clears the stack; returns CLI_EXIT_FAIL. */
int cli_fail(const char *what, ...) __attribute__((format(printf, 1, 2)));
/* End a message already begun on stderr the same way: ": <error stack>"
 * when there is one, a newline; clears the stack; CLI_EXIT_FAIL. */
int cli_fail_tail(void);

struct cli_cmd;

/* "wsemail: <message>" and the command's usage on stderr; returns
 * CLI_EXIT_USAGE. */
int cli_usage(const struct cli_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

struct cli_cmd {
	const char *name;
	int (*run)(const struct cli_cmd *cmd, const char *config, int argc,
	    char **argv);
	const char *args;
	const char *summary;
};

/* ---- option parsing (wsemail.c) ---- */

struct cli_list {
	const char **v;
	size_t n;
};

struct cli_opt {
	const char *name;	/* "--to" */
	const char **str;	/* a value (the last one), or */
	struct cli_list *list;	/* repeatable values */
};

/*
 * Parse a command's arguments: --name VALUE or --name=VALUE anywhere,
 * "--" ends the options, "-" is a positional argument; the global
 * --config FILE is accepted too (stored in *config).  At most maxpos
 * positional arguments go to pos.  list->v is allocated here (room for
 * argc values); the caller frees it whatever the result.  Returns 0,
 * CLI_EXIT_USAGE (printed) or CLI_HELP_SHOWN.
 */
int cli_parse(const struct cli_cmd *cmd, int argc, char **argv,
    const struct cli_opt *opts, size_t nopts, const char **config,
    const char **pos, int *npos, int maxpos);

/* A decimal number in [lo, hi]: 0, or -1 when s is not one. */
int cli_number(const char *s, long long lo, long long hi, long long *out);

/* ---- commands ---- */

int cmd_send(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv);
int cmd_list(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv);
int cmd_read(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv);
int cmd_delete(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv);
int cmd_attachment(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv);
int cmd_token(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv);
/* "wsemail form ...": routed forms (cmd_form.c). */
int cmd_form(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv);
/* Instant messages (cmd_im.c, docs/im.md): "im", "listen", "chat",
 * "im-policy", "presence". */
int cmd_im(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv);
int cmd_listen(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv);
int cmd_chat(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv);
int cmd_im_policy(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv);
int cmd_presence(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv);
/* The MIME type guessed from a file name's extension (cmd_send.c). */
const char *cli_guess_type(const char *name);

/* ---- terminal (term.c) ---- */

/*
 * Write untrusted UTF-8 text so that it cannot drive a terminal: C0 and
 * C1 control characters, DEL, bidirectional overrides, line separators
 * and invalid UTF-8 become '?'.  With multiline, '\n' and '\t' are kept
 * (and a '\r' before '\n' is dropped).  At most max code points are
 * written (max 0: no limit); returns how many were written.
 */
size_t term_put(FILE *f, const char *s, int multiline, size_t max);

/* term_put of at most width code points, then spaces up to width. */
void term_cell(FILE *f, const char *s, size_t width);

/* 1 when the len bytes at s are well-formed UTF-8 that XML 1.0 can carry
 * (no NUL, no C0 control other than tab, LF and CR). */
int term_utf8_ok(const char *s, size_t len);


/*
 * Prompt on /dev/tty with echo off and read one line into buf (size
 * bytes with the NUL).  Signals restore the terminal before they act.
 * Returns 0, or -1 with a message on the error stack.
 */
int term_read_password(const char *prompt, char *buf, size_t size);

#endif
