/*
 * wsemail.h - shared parts of the wsemail client: the session with the
 * user's own server (session.c), the commands (cmd_send.c, cmd_read.c,
 * cmd_box.c), the option parser (wsemail.c) and safe terminal output and
 * the password prompt (term.c).
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

struct cli {
	const char *config_path;	/* as chosen by cli_open */
	wse_config *cfg;
	const char *server;		/* endpoint URL (wsa:To) */
	const char *connect;		/* numeric address to connect to */
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

/* Text of the only child (ns WSE_NS_WSE, local) of parent, at most max
 * bytes, as a malloc'd string; NULL when absent, repeated or not text. */
char *cli_child_text(const xmlNode *parent, const char *local, size_t max);

/* ---- messages and usage (wsemail.c) ---- */

/* "wsemail: WHAT: <error stack>" (or just WHAT when the stack is empty)
 * on stderr; clears the stack; returns CLI_EXIT_FAIL. */
int cli_fail(const char *what, ...) __attribute__((format(printf, 1, 2)));

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

/* 1 when s is non-empty, well-formed UTF-8 and holds nothing that
 * term_put would replace (no control or bidi characters at all). */
int term_name_ok(const char *s);

/*
 * Prompt on /dev/tty with echo off and read one line into buf (size
 * bytes with the NUL).  Signals restore the terminal before they act.
 * Returns 0, or -1 with a message on the error stack.
 */
int term_read_password(const char *prompt, char *buf, size_t size);

#endif
