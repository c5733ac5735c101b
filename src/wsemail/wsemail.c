/*
 * wsemail - the WSEmail client: send, list, read and delete mail through
 * the user's own WSEmail server, and fetch on-demand attachments from the
 * sender's server (docs/protocol.md, docs/client.md).
 *
 * SECURITY
 *	wsemail runs with the user's own privileges; it is not set-uid.  It
 *	trusts its command line, its environment (WSEMAIL_CONFIG,
 *	WSEMAIL_PASSWORD, HOME), its configuration file and the root
 *	certificates (and CRLs) that file names.  The password comes from
 *	WSEMAIL_PASSWORD, from the first line of password_file (which must
 *	not be readable by others), or from /dev/tty with echo off; it is
 *	never printed, is turned into the PBKDF2 key at once, and both are
 *	wiped after use.  The server is trusted only as far as it proves
 *	itself: the TLS certificate must chain to the configured roots and
 *	name the server's host, and every answer must carry a valid
 *	WS-Security signature by a service certificate of the user's own
 *	domain, be fresh, be new to this run, and name our request in its
 *	signed RelatesTo; nothing in an answer is read before that.  Mail is
 *	not taken on the server's word either: "read" verifies the sending
 *	server's original signature end to end, as of the time the message
 *	was received, for the domain the message claims to come from, and
 *	checks that the user was one of the signed recipients; a message that
 *	fails is still shown, marked NOT VALID, and its attachments are not
 *	saved.  Without a configured CRL, revocation is not checked and the
 *	output says so.  Everything a sender chose (names, subjects, text,
 *	attachment names) is untrusted: control characters and other bytes
 *	that could drive a terminal are replaced before printing, and an
 *	attachment is saved only under a plain name (no '/', no leading
 *	'.'), in the named directory, never over an existing file, and only
 *	when its SHA-256 matches.
 *
 *	On-demand attachments: the token key (ECDSA P-256) is made here and
 *	never leaves the machine; it is kept in state_dir (a directory of
 *	the user's, not writable by others, made 0700) as
 *	<address>.token.key, mode 0600, written to a new file (O_EXCL) and
 *	renamed into place, and a key file others could read is never used.
 *	A token is used only after it is checked to be for that key, for
 *	the user's own address, and to chain to the configured roots as a
 *	token; it is replaced (with a new key) well before it expires.  It
 *	signs nothing but FetchAttachment requests addressed to the one
 *	server named in a message that verified end to end, and only when
 *	that server is a host of the signing (sender's) domain; the TLS
 *	connection to it is checked as for our own server.  The fetched
 *	bytes are not signed: they go to NAME.part (0600, no symbolic links,
 *	no other hard links), and only when the SHA-256 of the whole file
 *	equals the digest in the signed message does the part become NAME
 *	(never over an existing file); otherwise the part is deleted.  A
 *	refusal is shown only once its signature verifies for that domain.
 *	Files sent with --on-demand are hashed before they are sent and
 *	again as they are sent; one that changed is not completed.
 *
 *	Results go to stdout; errors to stderr as "wsemail: <reason>", exit
 *	status 1; usage errors exit with status 2.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "cliopt.h"
#include "wsemail.h"

static int cmd_help(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv);

static const struct cli_cmd commands[] = {
	{ "send", cmd_send,
	    "--to ADDR [--to ADDR]... [--cc ADDR]... --subject TEXT "
	    "[--attach FILE]... [--on-demand FILE]... [BODYFILE|-]",
	    "send a message (the text from BODYFILE, or standard input)" },
	{ "list", cmd_list, "[--offset N] [--limit N]",
	    "list the messages in the mailbox, newest first" },
	{ "read", cmd_read, "ID [--save-attachments DIR]",
	    "show a message, verified end to end, and mark it read" },
	{ "delete", cmd_delete, "ID", "delete a message" },
	{ "attachment", cmd_attachment,
	    "fetch ID [NAME] [--out DIR] | log SUBMIT-ID | "
	    "revoke SUBMIT-ID [NAME]",
	    "on-demand attachments: fetch; for mail you sent, log and "
	    "revoke" },
	{ "token", cmd_token, "[--new]",
	    "show (or renew) the token certificate used for fetching" },
	{ "form", cmd_form,
	    "submit URL --field NAME=VALUE... | list | show ID | "
	    "approve ID | reject ID | delegate ID TO | verify ID | "
	    "export ID FILE",
	    "routed forms: submit, list, show, decide, verify "
	    "(\"form --help\": the options)" },
	{ "im", cmd_im, "ADDRESS [TEXT|-] [--direct [--server URL]]",
	    "send an instant message (the text, or standard input): pushed "
	    "to the recipient's screen, or kept as mail when offline" },
	{ "listen", cmd_listen,
	    "[--session NAME] [--once] [--count N] [--timeout S]",
	    "show instant messages as they arrive, verified end to end" },
	{ "chat", cmd_chat, "ADDRESS [--session NAME]",
	    "a conversation: each line typed is sent to ADDRESS; what "
	    "arrives is shown; Ctrl-D ends" },
	{ "im-policy", cmd_im_policy,
	    "show | set --accept anyone|listed|nobody [--allow X]... "
	    "[--block X]... [--presence-to X]...",
	    "who may send you instant messages, and see you online" },
	{ "presence", cmd_presence, "ADDRESS [--server URL]",
	    "whether ADDRESS has a session online (if they let you see it)" },
	{ "help", cmd_help, "", "this text" },
	{ NULL, NULL, NULL, NULL },
};

static void
print_cmd_usage(FILE *f, const struct cli_cmd *c)
{
	fprintf(f, "  %s [--config FILE] %s%s%s\n", CLI_PROG, c->name,
	    *c->args ? " " : "", c->args);
}

static void
print_help(FILE *f)
{
	const struct cli_cmd *c;

	fprintf(f, "usage: %s [--config FILE] COMMAND [ARGS...]\n\n"
	    "global options:\n"
	    "  --config FILE  configuration (default: $WSEMAIL_CONFIG or "
	    "~/.config/wsemail/config)\n"
	    "  -h, --help     this text; after a command: that command's "
	    "help\n\ncommands:\n", CLI_PROG);
	for (c = commands; c->name != NULL; c++) {
		fprintf(f, "  %-10s %s\n", c->name, c->summary);
		if (*c->args)
			fprintf(f, "  %-10s   %s %s\n", "", c->name, c->args);
	}
	fprintf(f, "\nconfiguration keys: server, address, roots, crl "
	    "(repeatable), password_file,\nstate_dir (the token key and "
	    "certificate; default ~/.wsemail), connect\n(repeatable: "
	    "\"connect = ADDR\" for the own server, \"connect = HOST[:PORT]"
	    "\nADDR\" for a host in any URL).  The password comes from "
	    "$WSEMAIL_PASSWORD,\npassword_file or a prompt.  \"read\" exits "
	    "with status 1 when the message does\nnot verify.  --on-demand "
	    "files stay on your server; their recipients fetch\nthem with "
	    "\"wsemail attachment fetch\".\n\nforms: publisher (repeatable: "
	    "PEM certificates of the form-type publishers\nyou trust), "
	    "form_cache (default: state_dir/forms), form_param (repeatable:"
	    "\nKEY=VALUE for the type's check).  Forms verify only with CRLs "
	    "(crl lines).\n\ninstant messages: dns_server (IP[:PORT]) and route "
	    "(repeatable: \"route =\nDOMAIN HOST:PORT\") find another "
	    "domain's server for im --direct and presence;\nlisten and chat "
	    "keep their place in state_dir.\n");
}

static int
cmd_help(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv)
{
	(void)cmd;
	(void)config;
	(void)argc;
	(void)argv;
	print_help(stdout);
	return CLI_EXIT_OK;
}

int
cli_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", CLI_PROG);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	return cli_fail_tail();
}

int
cli_fail_tail(void)
{
	char msg[WSE_ERR_DEPTH * (WSE_ERR_MSGLEN + 2)];

	if (wse_err_count() > 0) {
		/* The stack may quote what the network sent. */
		fputs(": ", stderr);
		term_put(stderr, wse_err_format(msg, sizeof(msg)), 0, 0);
	}
	fputc('\n', stderr);
	wse_err_clear();
	return CLI_EXIT_FAIL;
}

int
cli_usage(const struct cli_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", CLI_PROG);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (cmd != NULL) {
		fprintf(stderr, "usage:\n");
		print_cmd_usage(stderr, cmd);
	} else
		fprintf(stderr, "try '%s help'\n", CLI_PROG);
	return CLI_EXIT_USAGE;
}

int
cli_number(const char *s, long long lo, long long hi, long long *out)
{
	char *end;
	long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int
cli_parse(const struct cli_cmd *cmd, int argc, char **argv,
    const struct cli_opt *opts, size_t nopts, const char **config,
    const char **pos, int *npos, int maxpos)
{
	int i, only_pos = 0;
	size_t k;

	*npos = 0;
	for (k = 0; k < nopts; k++)
		if (opts[k].list != NULL && opts[k].list->v == NULL) {
			if ((opts[k].list->v = calloc((size_t)argc + 1,
			    sizeof(char *))) == NULL)
				return cli_fail("out of memory");
			opts[k].list->n = 0;
		}
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		const struct cli_opt *o = NULL;

		if (only_pos || a[0] != '-' || strcmp(a, "-") == 0) {
			if (*npos >= maxpos)
				return cli_usage(cmd, "unexpected argument "
				    "'%s'", a);
			pos[(*npos)++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_pos = 1;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			printf("%s\nusage:\n", cmd->summary);
			print_cmd_usage(stdout, cmd);
			return CLI_HELP_SHOWN;
		}
		if (cli_opt_matches(a, "--config", &val)) {
			if (val == NULL && i + 1 < argc)
				val = argv[++i];
			if (val == NULL || *val == '\0')
				return cli_usage(cmd, "--config needs a value");
			*config = val;
			continue;
		}
		for (k = 0; k < nopts && o == NULL; k++)
			if (cli_opt_matches(a, opts[k].name, &val))
				o = &opts[k];
		if (o == NULL)
			return cli_usage(cmd, "unknown option '%s'", a);
		if (val == NULL) {
			if (i + 1 >= argc)
				return cli_usage(cmd, "%s needs a value",
				    o->name);
			val = argv[++i];
		}
		if (o->list != NULL)
			o->list->v[o->list->n++] = val;
		else
			*o->str = val;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	const struct cli_cmd *c;
	const char *config = NULL;
	int i = 1, rc;

	while (i < argc && argv[i][0] == '-') {
		const char *val = NULL;

		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			print_help(stdout);
			return CLI_EXIT_OK;
		}
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (!cli_opt_matches(argv[i], "--config", &val))
			return cli_usage(NULL, "unknown option '%s'", argv[i]);
		if (val == NULL && i + 1 < argc)
			val = argv[++i];
		if (val == NULL || *val == '\0')
			return cli_usage(NULL, "--config needs a value");
		config = val;
		i++;
	}
	if (i >= argc) {
		print_help(stderr);
		return CLI_EXIT_USAGE;
	}
	for (c = commands; c->name != NULL; c++)
		if (strcmp(c->name, argv[i]) == 0)
			break;
	if (c->name == NULL)
		return cli_usage(NULL, "unknown command '%s'", argv[i]);
	rc = c->run(c, config, argc - i - 1, argv + i + 1);
	if (rc == CLI_HELP_SHOWN)
		rc = CLI_EXIT_OK;
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "%s: cannot write the output: %s\n", CLI_PROG,
		    strerror(errno));
		if (rc == CLI_EXIT_OK)
			rc = CLI_EXIT_FAIL;
	}
	xmlCleanupParser();
	return rc;
}
