/*
 * cmd_send.c - "wsemail send": build an m:Message, Submit it.  Files
 * given with --on-demand are uploaded first (upload.c) and the message
 * carries their upload handles; the server turns them into signed
 * references, and the recipients fetch the bytes from it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "crypto.h"
#include "formtype.h"
#include "wsemail.h"

/* A few common types by extension; everything else is octets. */
static const struct {
	const char *ext;
	const char *type;
} types[] = {
	{ "txt", "text/plain" }, { "csv", "text/csv" },
	{ "html", "text/html" }, { "htm", "text/html" },
	{ "xml", "application/xml" }, { "json", "application/json" },
	{ "pdf", "application/pdf" }, { "zip", "application/zip" },
	{ "gz", "application/gzip" }, { "png", "image/png" },
	{ "jpg", "image/jpeg" }, { "jpeg", "image/jpeg" },
	{ "gif", "image/gif" }, { "svg", "image/svg+xml" },
	{ "form", WSE_FORM_MEDIA_TYPE },	/* a routed form, as it is */
};

const char *
cli_guess_type(const char *name)
{
	const char *dot = strrchr(name, '.');
	size_t i;

	if (dot == NULL || dot == name)
		return "application/octet-stream";
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcasecmp(dot + 1, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

static const char *
base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s != NULL ? s + 1 : path;
}

/* The whole of standard input, at most max bytes. */
static wse_status
read_stdin(size_t max, wse_buf **out_r)
{
	wse_buf *b = wse_buf_new(max);
	char chunk[65536];
	ssize_t r;
	wse_status st = WSE_OK;

	*out_r = NULL;
	if (b == NULL)
		return wse_err(WSE_ERR_NOMEM, "out of memory");
	if (isatty(STDIN_FILENO))
		fprintf(stderr, "(type the message; end it with Ctrl-D on a "
		    "line of its own)\n");
	while ((r = read(STDIN_FILENO, chunk, sizeof(chunk))) != 0) {
		if (r == -1) {
			if (errno == EINTR)
				continue;
			st = wse_err(WSE_ERR_IO, "standard input: %s",
			    strerror(errno));
			break;
		}
		if ((st = wse_buf_put(b, chunk, (size_t)r)) != WSE_OK) {
			st = wse_err(st, "standard input: more than %zu bytes",
			    max);
			break;
		}
	}
	if (st != WSE_OK) {
		wse_buf_free(&b);
		return st;
	}
	*out_r = b;
	return WSE_OK;
}

/* <m:Submit> with the message, into payload (reset first). */
static int
build_submit(const struct cli *c, const wse_msg *m, wse_buf *payload)
{
	wse_buf_reset(payload);
	if (wse_buf_puts(payload, "<m:Submit xmlns:m=\"" WSE_NS_WSE "\">") !=
	    WSE_OK || wse_msg_to_xml(m, payload) != WSE_OK ||
	    wse_buf_puts(payload, "</m:Submit>") != WSE_OK) {
		wse_err_clear();
		return cli_fail("the message is larger than the limit of %zu "
		    "bytes", c->lim.max_message_bytes);
	}
	return CLI_EXIT_OK;
}

int
cmd_send(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv)
{
	struct cli_list to = { NULL, 0 }, cc = { NULL, 0 }, att = { NULL, 0 };
	struct cli_list od = { NULL, 0 };
	const char *subject = NULL, *pos[1], *body_path;
	const struct cli_opt opts[] = {
		{ "--to", NULL, &to },
		{ "--cc", NULL, &cc },
		{ "--attach", NULL, &att },
		{ "--on-demand", NULL, &od },
		{ "--subject", &subject, NULL },
	};
	struct cli c;
	struct cli_reply r;
	struct cli_upload *ups = NULL;
	wse_msg *m = NULL;
	wse_buf *body = NULL, *file = NULL, *payload = NULL;
	char *id = NULL, human[32];
	size_t i, nups = 0;
	int rc, npos;

	memset(&c, 0, sizeof(c));
	memset(&r, 0, sizeof(r));
	if ((rc = cli_parse(cmd, argc, argv, opts, 5, &config, pos, &npos,
	    1)) != 0)
		goto out;
	if (od.n > WSE_MSG_MAX_ONDEMAND) {
		rc = cli_usage(cmd, "at most %d --on-demand files",
		    WSE_MSG_MAX_ONDEMAND);
		goto out;
	}
	if (to.n == 0) {
		rc = cli_usage(cmd, "at least one --to is needed");
		goto out;
	}
	if (subject == NULL) {
		rc = cli_usage(cmd, "--subject is needed");
		goto out;
	}
	body_path = npos == 1 ? pos[0] : "-";
	if ((rc = cli_open(&c, config)) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;

	/* The message, checked here so that mistakes are caught before
	 * the password is asked for. */
	if (wse_msg_new(&m) != WSE_OK ||
	    wse_msg_set(m, "from", c.address) != WSE_OK) {
		rc = cli_fail("cannot build the message");
		goto out;
	}
	for (i = 0; i < to.n; i++)
		if (wse_msg_add_rcpt(m, to.v[i], 0) != WSE_OK) {
			rc = cli_fail("--to");
			goto out;
		}
	for (i = 0; i < cc.n; i++)
		if (wse_msg_add_rcpt(m, cc.v[i], 1) != WSE_OK) {
			rc = cli_fail("--cc");
			goto out;
		}
	if (!term_utf8_ok(subject, strlen(subject)) ||
	    wse_msg_set(m, "subject", subject) != WSE_OK) {
		rc = cli_fail("--subject: one line of UTF-8 text, please");
		goto out;
	}
	if (strcmp(body_path, "-") == 0) {
		if (read_stdin(c.lim.max_message_bytes, &body) != WSE_OK) {
			rc = cli_fail("message text");
			goto out;
		}
	} else if (wse_buf_read_file(body_path, c.lim.max_message_bytes,
	    &body) != WSE_OK) {
		rc = cli_fail("message text");
		goto out;
	}
	if (!term_utf8_ok(wse_buf_str(body), wse_buf_len(body))) {
		rc = cli_fail("the message text is not UTF-8 text (no NUL or "
		    "control characters); send binary data with --attach");
		goto out;
	}
	if (wse_msg_set(m, "text", wse_buf_str(body)) != WSE_OK) {
		rc = cli_fail("message text");
		goto out;
	}
	for (i = 0; i < att.n; i++) {
		const char *name = base_name(att.v[i]);

		wse_buf_free(&file);
		if (*name == '\0' || !term_utf8_ok(name, strlen(name))) {
			rc = cli_fail("%s: not a usable attachment name",
			    att.v[i]);
			goto out;
		}
		if (wse_buf_read_file(att.v[i], c.lim.max_message_bytes,
		    &file) != WSE_OK ||
		    wse_msg_add_attachment(m, name, cli_guess_type(name),
		    wse_buf_data(file), wse_buf_len(file)) != WSE_OK) {
			rc = cli_fail("attachment %s", att.v[i]);
			goto out;
		}
	}
	/* The on-demand files: opened and hashed before the log-in. */
	if (od.n > 0 && (ups = calloc(od.n, sizeof(*ups))) == NULL) {
		rc = cli_fail("out of memory");
		goto out;
	}
	for (i = 0; i < od.n; i++) {
		struct cli_upload *u = &ups[nups];

		u->fd = -1;
		u->path = od.v[i];
		u->name = base_name(od.v[i]);
		if (!cli_safe_name(u->name)) {
			rc = cli_fail("%s: not a usable attachment name (no "
			    "leading '.', printable UTF-8, at most 200 bytes)",
			    od.v[i]);
			goto out;
		}
		u->type = cli_guess_type(u->name);
		nups++;
		if ((rc = cli_upload_prepare(u)) != CLI_EXIT_OK)
			goto out;
	}
	/* The size is checked before the log-in too (the upload handles
	 * add a few bytes each). */
	if ((payload = wse_buf_new(c.lim.max_message_bytes)) == NULL) {
		rc = cli_fail("out of memory");
		goto out;
	}
	if ((rc = build_submit(&c, m, payload)) != CLI_EXIT_OK)
		goto out;
	wse_buf_free(&body);
	wse_buf_free(&file);
	if ((rc = cli_login(&c)) != CLI_EXIT_OK)
		goto out;
	for (i = 0; i < nups; i++) {
		if ((rc = cli_upload_run(&c, &ups[i])) != CLI_EXIT_OK)
			goto out;
		cli_upload_close(&ups[i]);
		if (wse_msg_add_upload(m, ups[i].handle) != WSE_OK) {
			rc = cli_fail("%s: the server's upload handle",
			    ups[i].path);
			goto out;
		}
	}
	if (nups > 0 && (rc = build_submit(&c, m, payload)) != CLI_EXIT_OK)
		goto out;
	wse_msg_free(&m);

	if ((rc = cli_call(&c, "Submit", wse_buf_str(payload), 0, &r)) !=
	    CLI_EXIT_OK)
		goto out;
	if ((id = cli_child_text(r.payload, "Id", 128)) == NULL ||
	    !wse_uuid_urn_valid(id)) {
		rc = cli_fail("the server's SubmitResponse holds no message id");
		goto out;
	}
	printf("queued %s\n", id);
	for (i = 0; i < nups; i++) {
		cli_human_size(ups[i].size, human, sizeof(human));
		printf("on-demand: ");
		term_put(stdout, ups[i].name, 0, 0);
		printf(" (%s, %llu bytes, sha256 %.16s...) stays on your "
		    "server; the recipients fetch it from there\n", human,
		    (unsigned long long)ups[i].size, ups[i].sha256);
	}
	if (nups > 0)
		printf("see who fetched it: wsemail attachment log %s\n", id);
	rc = CLI_EXIT_OK;
out:
	for (i = 0; i < nups; i++)
		cli_upload_close(&ups[i]);
	free(ups);
	free(od.v);
	free(to.v);
	free(cc.v);
	free(att.v);
	free(id);
	wse_msg_free(&m);
	wse_buf_free(&body);
	wse_buf_free(&file);
	wse_buf_free(&payload);
	cli_reply_clear(&r);
	cli_close(&c);
	return rc;
}
