/*
 * admin.h - shared parts of wsemail-admin: the command table and the
 * option parser every command uses.
 *
 * Adding a command group: write src/admin/cmd_<group>.c with a
 * NULL-terminated array of struct admin_cmd, declare the array below,
 * list it in admin_groups[] in wsemail-admin.c and the file in
 * src/meson.build.  Handlers print their own results to stdout and leave
 * failures to admin_fail() / admin_usage(); the library never prints.
 */
#ifndef WSE_ADMIN_H
#define WSE_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "wselimits.h"

#define ADMIN_EXIT_OK		0
#define ADMIN_EXIT_FAIL		1	/* the operation failed */
#define ADMIN_EXIT_USAGE	2	/* bad command line */
#define ADMIN_HELP_SHOWN	(-1)	/* admin_parse printed --help */

#define ADMIN_PROG "wsemail-admin"
#define ADMIN_CONFIG_DEFAULT "/etc/wsemail/wsemaild.conf"

struct admin_cmd;

/* What every handler gets. */
struct admin_ctx {
	const char *pki_dir;	/* --pki DIR, else $WSEMAIL_PKI, else ./pki */
	const char *config_path;	/* --config CONF, else $WSEMAIL_CONFIG,
					   else ADMIN_CONFIG_DEFAULT */
	int64_t now;		/* time of this run, Unix seconds */
	const struct admin_cmd *cmd;	/* the command being run */
};

/*
 * One command: "GROUP VERB ARGS..." or, when verb is NULL, "GROUP ARGS...".
 * run gets the arguments after the command words (argv[0] is the first
 * of them, argc may be 0) and returns an ADMIN_EXIT_* status.
 */
struct admin_cmd {
	const char *group;
	const char *verb;
	int (*run)(struct admin_ctx *ctx, int argc, char **argv);
	const char *args;	/* synopsis of the arguments, one line */
	const char *summary;	/* what it does, one line */
};

/* The command groups, each terminated by an entry with group == NULL. */
extern const struct admin_cmd admin_pki_cmds[];
extern const struct admin_cmd admin_envelope_cmds[];
extern const struct admin_cmd admin_plugin_cmds[];	/* cmd_plugin.c */

/* ---- option parsing (wsemail-admin.c) ---- */

enum admin_opt_type {
	ADMIN_OPT_FLAG,		/* --x: *flag = 1 */
	ADMIN_OPT_STRING,	/* --x VALUE: *str = VALUE (the last one) */
	ADMIN_OPT_INT,		/* --x N: *num = N, min <= N <= max */
	ADMIN_OPT_LIST,		/* --x VALUE, repeatable: appended to *list */
};

/* Values of a repeatable option.  Either the caller provides storage
 * (v and cap set), or v is NULL and admin_parse allocates room for every
 * possible value; then the caller frees v, whatever admin_parse returned. */
struct admin_list {
	const char **v;
	size_t n;
	size_t cap;
};

struct admin_opt {
	const char *name;	/* "--days" */
	enum admin_opt_type type;
	int *flag;
	const char **str;
	int *num;
	long min, max;
	struct admin_list *list;
};

/*
 * Parse a command's arguments: options (--name VALUE or --name=VALUE)
 * may appear anywhere, "--" ends them; the global --pki DIR and
 * --config CONF are accepted here too.  The positional arguments are stored in pos[0..*npos-1]
 * (pos has room for maxpos); there must be between minpos and maxpos of
 * them.  Returns 0, ADMIN_EXIT_USAGE after printing a usage message, or
 * ADMIN_HELP_SHOWN after printing the command's help for -h/--help.
 */
int admin_parse(struct admin_ctx *ctx, int argc, char **argv,
    const struct admin_opt *opts, size_t nopts, const char **pos,
    int *npos, int minpos, int maxpos);

/*
 * Print "wsemail-admin: " and the library's error stack (or what, when
 * the stack is empty) to stderr, clear the stack; returns
 * ADMIN_EXIT_FAIL.
 */
int admin_fail(const char *what);

/* Print "wsemail-admin: <message>" and the command's usage to stderr;
 * returns ADMIN_EXIT_USAGE. */
int admin_usage(const struct admin_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Format Unix time t as "YYYY-MM-DDTHH:MM:SSZ" into buf (21 bytes). */
const char *admin_time(int64_t t, char *buf, size_t size);

/* ---- the server's configuration (admin_config.c) ---- */

/* Commands that work on a server's store: user (cmd_user.c) and queue
 * (cmd_queue.c). */
extern const struct admin_cmd admin_user_cmds[];
extern const struct admin_cmd admin_queue_cmds[];

/* What those commands take from the configuration file wsemaild reads. */
struct admin_server {
	char domain[256];	/* "domain", lower case */
	wse_limits lim;		/* defaults overridden by [limits] */
	struct wse_store *store; /* "store", opened with the seal key */
};

/*
 * Read ctx->config_path (keys domain, store, secret_file and the section
 * [limits]) into *srv and open the store with the seal key derived from
 * secret_file, which must exist already: only wsemaild creates it.  On
 * failure prints the reason ("wsemail-admin: ...") to stderr and returns
 * ADMIN_EXIT_FAIL, with nothing to free; else 0, and the caller frees
 * srv with admin_server_close().
 */
int admin_server_open(const struct admin_ctx *ctx, struct admin_server *srv);

/* Close the store of srv (srv may be NULL or already closed). */
void admin_server_close(struct admin_server *srv);

/*
 * Report a failed store operation: "wsemail-admin: store unavailable: ..."
 * when the library's last status says the backend is down (I/O, busy,
 * out of memory), else "wsemail-admin: WHAT: ..." with the library's
 * messages; clears the error stack and returns ADMIN_EXIT_FAIL.
 */
int admin_store_fail(const char *what);

#endif
