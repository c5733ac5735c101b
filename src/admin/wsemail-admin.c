/*
 * wsemail-admin - administration of a WSEmail installation: the root and
 * domain CAs, service certificates and CRLs, a server's users and its
 * delivery queue.
 *
 * SECURITY
 *	wsemail-admin is run by the operator, by hand, with the operator's
 *	own privileges; it is not set-uid and opens no network connection.
 *	It trusts its command line, its environment (WSEMAIL_PKI names the
 *	PKI directory) and the content of the PKI directory, which holds the
 *	CA keys: root/key.pem is the root's private key and belongs on an
 *	offline machine; a domain's server needs only that domain's files,
 *	root/cert.pem and the CRLs.  Private keys are written mode 0600
 *	through a new temporary file and an atomic link, and existing CA,
 *	domain and service material is never overwritten.  Certificates
 *	named on the command line ("cert show", "revoke --cert") are
 *	treated as untrusted input: they are parsed with size limits by the
 *	library and only described, never trusted.  Output goes to stdout;
 *	errors to stderr as "wsemail-admin: <reason>", exit status 1;
 *	usage errors exit with status 2.
 *
 *	The user and queue commands trust the server's configuration file
 *	(--config, else $WSEMAIL_CONFIG) and what it names: the store and
 *	the server secret, from which the store's seal key is derived; they
 *	never create that secret.  Passwords come from $WSEMAIL_PASSWORD, a
 *	file, or the terminal without echo; they and the keys derived from
 *	them are wiped after use and never stored or printed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cliopt.h"
#include "admin.h"
#include "err.h"

/* Every command group, in the order help lists them. */
static const struct admin_cmd *const admin_groups[] = {
	admin_pki_cmds,
	admin_envelope_cmds,
	admin_user_cmds,
	admin_queue_cmds,
	admin_plugin_cmds,
	NULL,
};

/* The groups that work on a server's configuration (--config). */
static const struct admin_cmd *const admin_config_groups[] = {
	admin_user_cmds,
	admin_queue_cmds,
	NULL,
};

static const char *
pki_default(void)
{
	const char *e = getenv("WSEMAIL_PKI");

	return e != NULL && *e != '\0' ? e : "./pki";
}

static const char *
config_default(void)
{
	const char *e = getenv("WSEMAIL_CONFIG");

	return e != NULL && *e != '\0' ? e : ADMIN_CONFIG_DEFAULT;
}

/* The global option that matters to command c, for its usage line. */
static const char *
global_synopsis(const struct admin_cmd *c)
{
	size_t g;
	const struct admin_cmd *x;

	for (g = 0; admin_config_groups[g] != NULL; g++)
		for (x = admin_config_groups[g]; x->group != NULL; x++)
			if (x == c)
				return "[--config CONF]";
	return "[--pki DIR]";
}

static void
print_cmd_usage(FILE *f, const struct admin_cmd *c)
{
	fprintf(f, "  %s %s %s%s%s%s%s\n", ADMIN_PROG, global_synopsis(c),
	    c->group,
	    c->verb ? " " : "", c->verb ? c->verb : "",
	    c->args && *c->args ? " " : "", c->args ? c->args : "");
}

static void
print_help(FILE *f)
{
	size_t g;
	const struct admin_cmd *c;

	fprintf(f, "usage: %s [--pki DIR] [--config CONF] COMMAND [ARGS...]\n"
	    "\nglobal options:\n"
	    "  --pki DIR      PKI directory (default: $WSEMAIL_PKI or ./pki)\n"
	    "  --config CONF  server configuration, for user and queue\n"
	    "                 (default: $WSEMAIL_CONFIG or %s)\n"
	    "  -h, --help     this text; after a command: that command's help\n"
	    "\ncommands:\n", ADMIN_PROG, ADMIN_CONFIG_DEFAULT);
	for (g = 0; admin_groups[g] != NULL; g++)
		for (c = admin_groups[g]; c->group != NULL; c++) {
			char words[64];

			snprintf(words, sizeof(words), "%s%s%s", c->group,
			    c->verb ? " " : "", c->verb ? c->verb : "");
			fprintf(f, "  %-15s %s\n", words, c->summary);
			fprintf(f, "  %-15s   %s%s%s\n", "", words,
			    c->args && *c->args ? " " : "",
			    c->args ? c->args : "");
		}
}

int
admin_fail(const char *what)
{
	char msg[WSE_ERR_DEPTH * (WSE_ERR_MSGLEN + 2)];

	if (wse_err_count() > 0)
		fprintf(stderr, "%s: %s\n", ADMIN_PROG,
		    wse_err_format(msg, sizeof(msg)));
	else
		fprintf(stderr, "%s: %s\n", ADMIN_PROG,
		    what != NULL ? what : "failed");
	wse_err_clear();
	return ADMIN_EXIT_FAIL;
}

int
admin_usage(const struct admin_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", ADMIN_PROG);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (ctx != NULL && ctx->cmd != NULL) {
		fprintf(stderr, "usage:\n");
		print_cmd_usage(stderr, ctx->cmd);
	} else {
		fprintf(stderr, "try '%s --help'\n", ADMIN_PROG);
	}
	return ADMIN_EXIT_USAGE;
}

const char *
admin_time(int64_t t, char *buf, size_t size)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "@%lld", (long long)t);
	return buf;
}

static int
parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * When argv[*i] is a global option (--pki DIR, --config CONF), store its
 * value in ctx and step *i over a separate value: 1; 0 when it is not
 * one; -1 after a usage message (missing or empty value).
 */
static int
global_option(struct admin_ctx *ctx, int argc, char **argv, int *i)
{
	static const char *const names[] = { "--pki", "--config" };
	const char *val = NULL;
	size_t k;

	for (k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		if (!cli_opt_matches(argv[*i], names[k], &val))
			continue;
		if (val == NULL) {
			if (*i + 1 >= argc) {
				(void)admin_usage(ctx, "%s needs a value",
				    names[k]);
				return -1;
			}
			val = argv[++*i];
		}
		if (*val == '\0') {
			(void)admin_usage(ctx, "%s needs a value", names[k]);
			return -1;
		}
		if (k == 0)
			ctx->pki_dir = val;
		else
			ctx->config_path = val;
		return 1;
	}
	return 0;
}

int
admin_parse(struct admin_ctx *ctx, int argc, char **argv,
    const struct admin_opt *opts, size_t nopts, const char **pos,
    int *npos, int minpos, int maxpos)
{
	int i, r, only_pos = 0;
	size_t k;

	*npos = 0;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		const struct admin_opt *o = NULL;
		long v;

		if (only_pos || a[0] != '-' || strcmp(a, "-") == 0) {
			if (*npos >= maxpos)
				return admin_usage(ctx,
				    "unexpected argument '%s'", a);
			pos[(*npos)++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_pos = 1;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			printf("%s\nusage:\n", ctx->cmd->summary);
			print_cmd_usage(stdout, ctx->cmd);
			return ADMIN_HELP_SHOWN;
		}
		if ((r = global_option(ctx, argc, argv, &i)) != 0) {
			if (r < 0)
				return ADMIN_EXIT_USAGE;
			continue;
		}
		for (k = 0; k < nopts && o == NULL; k++)
			if (cli_opt_matches(a, opts[k].name, &val))
				o = &opts[k];
		if (o == NULL)
			return admin_usage(ctx, "unknown option '%s'", a);
		if (o->type == ADMIN_OPT_FLAG) {
			if (val != NULL)
				return admin_usage(ctx, "%s takes no value",
				    o->name);
			*o->flag = 1;
			continue;
		}
		if (val == NULL) {
			if (i + 1 >= argc)
				return admin_usage(ctx, "%s needs a value",
				    o->name);
			val = argv[++i];
		}
		switch (o->type) {
		case ADMIN_OPT_STRING:
			*o->str = val;
			break;
		case ADMIN_OPT_INT:
			if (parse_long(val, o->min, o->max, &v) != 0)
				return admin_usage(ctx, "%s: '%s' is not a "
				    "number from %ld to %ld", o->name, val,
				    o->min, o->max);
			*o->num = (int)v;
			break;
		case ADMIN_OPT_LIST:
			if (o->list->v == NULL) {
				/* never more values than arguments */
				if ((o->list->v = calloc((size_t)argc,
				    sizeof(*o->list->v))) == NULL)
					return admin_fail("out of memory");
				o->list->n = 0;
				o->list->cap = (size_t)argc;
			}
			if (o->list->n >= o->list->cap)
				return admin_usage(ctx, "%s: at most %zu "
				    "values", o->name, o->list->cap);
			o->list->v[o->list->n++] = val;
			break;
		case ADMIN_OPT_FLAG:
			break;
		}
	}
	if (*npos < minpos)
		return admin_usage(ctx, "missing argument");
	return 0;
}

/* The command named by argv[0] (and argv[1]); *used_r: words used. */
static const struct admin_cmd *
find_cmd(int argc, char **argv, int *used_r, int *group_known_r)
{
	size_t g;
	const struct admin_cmd *c;

	*group_known_r = 0;
	for (g = 0; admin_groups[g] != NULL; g++)
		for (c = admin_groups[g]; c->group != NULL; c++) {
			if (strcmp(c->group, argv[0]) != 0)
				continue;
			*group_known_r = 1;
			if (c->verb == NULL) {
				*used_r = 1;
				return c;
			}
			if (argc > 1 && strcmp(c->verb, argv[1]) == 0) {
				*used_r = 2;
				return c;
			}
		}
	return NULL;
}

static void
print_group_verbs(FILE *f, const char *group)
{
	size_t g;
	const struct admin_cmd *c;

	fprintf(f, "usage:\n");
	for (g = 0; admin_groups[g] != NULL; g++)
		for (c = admin_groups[g]; c->group != NULL; c++)
			if (strcmp(c->group, group) == 0)
				print_cmd_usage(f, c);
}

int
main(int argc, char **argv)
{
	struct admin_ctx ctx;
	const struct admin_cmd *cmd;
	int i = 1, used = 0, known = 0, rc;

	memset(&ctx, 0, sizeof(ctx));
	ctx.pki_dir = pki_default();
	ctx.config_path = config_default();
	ctx.now = (int64_t)time(NULL);

	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			print_help(stdout);
			return ADMIN_EXIT_OK;
		}
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if ((rc = global_option(&ctx, argc, argv, &i)) < 0)
			return ADMIN_EXIT_USAGE;
		if (rc == 0)
			return admin_usage(NULL, "unknown option '%s'",
			    argv[i]);
		i++;
	}
	if (i >= argc) {
		print_help(stderr);
		return ADMIN_EXIT_USAGE;
	}
	if (strcmp(argv[i], "help") == 0) {
		print_help(stdout);
		return ADMIN_EXIT_OK;
	}
	if ((cmd = find_cmd(argc - i, argv + i, &used, &known)) == NULL) {
		if (!known)
			return admin_usage(NULL, "unknown command '%s'",
			    argv[i]);
		if (i + 1 < argc && (strcmp(argv[i + 1], "-h") == 0 ||
		    strcmp(argv[i + 1], "--help") == 0)) {
			print_group_verbs(stdout, argv[i]);
			return ADMIN_EXIT_OK;
		}
		fprintf(stderr, "%s: unknown or missing verb after '%s'\n",
		    ADMIN_PROG, argv[i]);
		print_group_verbs(stderr, argv[i]);
		return ADMIN_EXIT_USAGE;
	}
	ctx.cmd = cmd;
	rc = cmd->run(&ctx, argc - i - used, argv + i + used);
	if (rc == ADMIN_HELP_SHOWN)
		rc = ADMIN_EXIT_OK;
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "%s: cannot write the output: %s\n",
		    ADMIN_PROG, strerror(errno));
		if (rc == ADMIN_EXIT_OK)
			rc = ADMIN_EXIT_FAIL;
	}
	return rc;
}
