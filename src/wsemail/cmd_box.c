/*
 * cmd_box.c - the mailbox commands: list and delete.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"		/* WSE_MSG_* flags */
#include "xml.h"
#include "wsemail.h"

#define LIST_DEFAULT 50
#define LIST_MAX 500

/* The width of each column of the list. */
#define W_ID 6
#define W_DATE 20
#define W_FROM 28
#define W_SUBJECT 36

static void
list_row(const xmlNode *h)
{
	const char *id = wse_xml_attr(h, NULL, "id");
	const char *unread = wse_xml_attr(h, NULL, "unread");
	const char *flags = wse_xml_attr(h, NULL, "flags");
	char *from = cli_child_text(h, "From", WSE_ADDR_MAX + 1);
	char *subject = cli_child_text(h, "Subject", 4 * WSE_MSG_SUBJECT_MAX);
	char *received = cli_child_text(h, "Received", 64);
	char *size = cli_child_text(h, "Size", 32);
	long long n;

	/* The id is what the user types next: show it only when it is a
	 * number. */
	if (id == NULL || cli_number(id, 1, INT64_MAX, &n) != 0)
		id = "?";
	printf("%*s ", W_ID, id);
	/* The second column: '@' on-demand attachments, 'I' an instant
	 * message kept as mail (it has no attachments). */
	if (flags == NULL || cli_number(flags, 0, 0xffff, &n) != 0)
		n = 0;
	printf("%s%s ", unread != NULL && strcmp(unread, "true") == 0 ? "N" :
	    " ", (n & WSE_MSG_ONDEMAND) ? "@" : (n & WSE_MSG_INSTANT) ? "I" :
	    " ");
	term_cell(stdout, received ? received : "", W_DATE);
	fputc(' ', stdout);
	term_cell(stdout, from ? from : "", W_FROM);
	fputc(' ', stdout);
	term_cell(stdout, subject ? subject : "", W_SUBJECT);
	fputc(' ', stdout);
	if (size == NULL || cli_number(size, 0, INT64_MAX, &n) != 0)
		printf("%9s\n", "?");
	else
		printf("%9lld\n", n);
	free(from);
	free(subject);
	free(received);
	free(size);
}

int
cmd_list(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv)
{
	const char *offset_s = NULL, *limit_s = NULL, *pos[1], *t, *u;
	const struct cli_opt opts[] = {
		{ "--offset", &offset_s, NULL },
		{ "--limit", &limit_s, NULL },
	};
	long long offset = 0, limit = LIST_DEFAULT, total = 0, unread = 0;
	struct cli c;
	struct cli_reply r;
	char payload[256];
	xmlNodePtr h;
	int rc, npos;

	memset(&c, 0, sizeof(c));
	memset(&r, 0, sizeof(r));
	if ((rc = cli_parse(cmd, argc, argv, opts, 2, &config, pos, &npos,
	    0)) != 0)
		return rc;
	if (offset_s != NULL && cli_number(offset_s, 0, 1LL << 40, &offset))
		return cli_usage(cmd, "--offset: '%s' is not a number",
		    offset_s);
	if (limit_s != NULL && cli_number(limit_s, 1, LIST_MAX, &limit))
		return cli_usage(cmd, "--limit: '%s' is not a number from 1 "
		    "to %d", limit_s, LIST_MAX);
	if ((rc = cli_open(&c, config)) != CLI_EXIT_OK ||
	    (rc = cli_login(&c)) != CLI_EXIT_OK)
		goto out;
	(void)snprintf(payload, sizeof(payload), "<m:ListHeaders xmlns:m=\""
	    WSE_NS_WSE "\"><m:Offset>%lld</m:Offset><m:Limit>%lld</m:Limit>"
	    "</m:ListHeaders>", offset, limit);
	if ((rc = cli_call(&c, "ListHeaders", payload, 0, &r)) != CLI_EXIT_OK)
		goto out;
	t = wse_xml_attr(r.payload, NULL, "total");
	u = wse_xml_attr(r.payload, NULL, "unread");
	if (t == NULL || u == NULL || cli_number(t, 0, INT64_MAX, &total) ||
	    cli_number(u, 0, INT64_MAX, &unread)) {
		rc = cli_fail("the server's ListHeadersResponse lacks its "
		    "counts");
		goto out;
	}
	printf("%*s %s %-*s %-*s %-*s %9s\n", W_ID, "ID", "N", W_DATE,
	    "DATE", W_FROM, "FROM", W_SUBJECT, "SUBJECT", "SIZE");
	for (h = wse_xml_first_elem(r.payload); h; h = wse_xml_next_elem(h))
		if (wse_xml_is(h, WSE_NS_WSE, "Header"))
			list_row(h);
	printf("%lld message%s, %lld unread\n", total, total == 1 ? "" : "s",
	    unread);
out:
	cli_reply_clear(&r);
	cli_close(&c);
	return rc;
}

int
cmd_delete(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv)
{
	const char *pos[1];
	struct cli c;
	struct cli_reply r;
	char payload[256];
	long long id;
	int rc, npos;

	memset(&c, 0, sizeof(c));
	memset(&r, 0, sizeof(r));
	if ((rc = cli_parse(cmd, argc, argv, NULL, 0, &config, pos, &npos,
	    1)) != 0)
		return rc;
	if (npos != 1)
		return cli_usage(cmd, "which message?");
	if (cli_number(pos[0], 1, INT64_MAX, &id) != 0)
		return cli_usage(cmd, "'%s' is not a message id", pos[0]);
	if ((rc = cli_open(&c, config)) != CLI_EXIT_OK ||
	    (rc = cli_login(&c)) != CLI_EXIT_OK)
		goto out;
	(void)snprintf(payload, sizeof(payload), "<m:DeleteMessage xmlns:m=\""
	    WSE_NS_WSE "\"><m:Id>%lld</m:Id></m:DeleteMessage>", id);
	if ((rc = cli_call(&c, "DeleteMessage", payload, 0, &r)) !=
	    CLI_EXIT_OK)
		goto out;
	printf("deleted %lld\n", id);
out:
	cli_reply_clear(&r);
	cli_close(&c);
	return rc;
}
