/*
 * cmd_attach.c - "wsemail attachment": on-demand attachments
 * (docs/protocol.md "On-demand attachments and federated tokens").
 *
 *   fetch ID [NAME] [--out DIR]	FetchAttachment at the sender's server
 *   log SUBMIT-ID			AttachmentLog at our own server
 *   revoke SUBMIT-ID [NAME]		RevokeAttachment at our own server
 *
 * fetch: the message is fetched and verified end to end exactly as "read"
 * does (cli_fetch_message); only a valid message's on-demand entries are
 * used, and only when their server is of the sender's (signing) domain.
 * The call goes straight to that server: an envelope addressed (wsa:To)
 * to its URL, signed with our token key, the token and our domain CA in
 * the header; TLS is checked against our roots and the URL's host (the
 * "connect" lines apply).  The answer is either the bytes -- unsigned,
 * streamed into NAME.part and trusted only once the whole file's SHA-256
 * equals the signed digest (part.c) -- or a Fault, which must verify as
 * signed by that domain's server before its reason is shown.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "xml.h"
#include "wsemail.h"

#define FETCH_TRIES 3

static const struct cli_cmd sub_fetch = {
	"attachment fetch", NULL, "ID [NAME] [--out DIR]",
	"fetch a message's on-demand attachments (all, or NAME) from the "
	"sender's server into DIR (default: the current directory)",
};
static const struct cli_cmd sub_log = {
	"attachment log", NULL, "SUBMIT-ID",
	"who was sent and who fetched the on-demand attachments of a message "
	"you sent (SUBMIT-ID: the urn:uuid:... \"send\" printed)",
};
static const struct cli_cmd sub_revoke = {
	"attachment revoke", NULL, "SUBMIT-ID [NAME]",
	"revoke the on-demand attachments (all, or NAME) of a message you "
	"sent: their bytes are deleted",
};

static double
now_s(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * One FetchAttachment exchange from p->have to the end.  CLI_EXIT_OK when
 * bytes were streamed to the end of the answer (p->have tells how far
 * the part got); otherwise CLI_EXIT_FAIL (printed) with *again set when
 * trying again may help (the network) and clear when it will not (a
 * refusal).
 */
static int
fetch_call(struct cli *c, const struct cli_token *t, const char *domain,
    const wse_ondemand *o, struct cli_part *p, int *again)
{
	struct cli_reply r;
	wse_envelope *env = NULL;
	wse_buf *payload = NULL, *req = NULL, *resp = NULL;
	uint64_t total = 0;
	long http = 0;
	int streamed = 0, rc = CLI_EXIT_FAIL;
	wse_status st;

	*again = 0;
	memset(&r, 0, sizeof(r));
	wse_err_clear();
	if ((payload = wse_buf_new(1024)) == NULL ||
	    (req = wse_buf_new(c->lim.max_message_bytes)) == NULL ||
	    (resp = wse_buf_new(c->resp_lim.max_message_bytes)) == NULL) {
		rc = cli_fail("out of memory");
		goto out;
	}
	if (wse_buf_puts(payload, "<m:FetchAttachment xmlns:m=\"" WSE_NS_WSE
	    "\"><m:Ref>") != WSE_OK ||
	    wse_buf_put_xml_escaped(payload, o->ref, strlen(o->ref)) !=
	    WSE_OK ||
	    wse_buf_printf(payload, "</m:Ref><m:Offset>%llu</m:Offset>"
	    "</m:FetchAttachment>", (unsigned long long)p->have) != WSE_OK ||
	    wse_env_new(o->server, WSE_ACTION_PREFIX "FetchAttachment",
	    &env) != WSE_OK ||
	    wse_env_add_body_xml(env, wse_buf_str(payload),
	    wse_buf_len(payload), &c->lim) != WSE_OK ||
	    wse_wss_sign(env, t->signer, (int64_t)time(NULL),
	    CLI_REQUEST_TTL) != WSE_OK ||
	    wse_env_serialize(env, req) != WSE_OK) {
		rc = cli_fail("%s: cannot build the FetchAttachment request",
		    p->name);
		goto out;
	}
	st = wse_http_post_stream(c->http, o->server,
	    cli_connect_for(c, o->server), "application/soap+xml",
	    wse_buf_data(req), wse_buf_len(req), cli_part_sink, p, resp,
	    &http, &streamed, &total);
	if (streamed) {
		if (total != 0 && total != o->size) {
			fprintf(stderr, "%s: %s: the server has %llu bytes, "
			    "the signed size is %llu\n", CLI_PROG, p->name,
			    (unsigned long long)total,
			    (unsigned long long)o->size);
		}
		if (st == WSE_OK || p->overflow) {
			wse_err_clear();
			rc = CLI_EXIT_OK;
			goto out;
		}
		/* Broken off: what arrived is kept; go on from there. */
		*again = 1;
		fprintf(stderr, "%s: %s: the transfer broke off at byte %llu",
		    CLI_PROG, p->name, (unsigned long long)p->have);
		rc = cli_fail_tail();
		goto out;
	}
	if (st != WSE_OK) {
		*again = st == WSE_ERR_TEMPFAIL;
		fprintf(stderr, "%s: %s: cannot reach ", CLI_PROG, p->name);
		term_put(stderr, o->server, 0, 200);
		rc = cli_fail_tail();
		goto out;
	}
	/* Not the bytes: a (signed) Fault, or something we cannot use. */
	if (cli_check_answer(c, p->name, o->server, domain,
	    "FetchAttachment", wse_env_message_id(env), resp, http, &r) ==
	    CLI_EXIT_OK)
		cli_fail("%s: the server answered with XML instead of the "
		    "bytes", p->name);
	else if (c->last_refused && c->last_fault == WSE_ERR_TEMPFAIL)
		*again = 1;	/* busy: later */
	rc = CLI_EXIT_FAIL;
out:
	cli_reply_clear(&r);
	wse_env_free(&env);
	wse_buf_free(&payload);
	wse_buf_free(&req);
	wse_buf_free(&resp);
	return rc;
}

/* Fetch one on-demand attachment into dfd (dir for messages). */
static int
fetch_one(struct cli *c, const struct cli_token *t, const char *domain,
    const wse_ondemand *o, int dfd, const char *dir)
{
	struct cli_part p;
	char human[32];
	double start, secs;
	int tries = 0, again = 0, rc = CLI_EXIT_FAIL;
	wse_status st;
	struct stat sb;

	if (fstatat(dfd, o->name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
		fprintf(stderr, "%s: not fetching %s: %s/%s exists already\n",
		    CLI_PROG, o->name, dir, o->name);
		return CLI_EXIT_FAIL;
	}
	if (cli_part_open(&p, dfd, o->name, o->size) != 0) {
		fprintf(stderr, "%s: %s/", CLI_PROG, dir);
		term_put(stderr, o->name, 0, 100);
		return cli_fail_tail();
	}
	if (p.have > 0)
		printf("%s: resuming at byte %llu of %llu\n", p.name,
		    (unsigned long long)p.have, (unsigned long long)p.size);
	start = now_s();
	while (p.have < p.size) {
		if (fetch_call(c, t, domain, o, &p, &again) == CLI_EXIT_OK) {
			if (p.overflow || p.have == p.size)
				break;
			again = 1;	/* ended early: ask for the rest */
			fprintf(stderr, "%s: %s: the server sent %llu of %llu "
			    "bytes\n", CLI_PROG, p.name,
			    (unsigned long long)p.have,
			    (unsigned long long)p.size);
		}
		if (!again || ++tries >= FETCH_TRIES) {
			if (p.have > 0 && p.have < p.size)
				fprintf(stderr, "%s: %s/%s.part holds %llu "
				    "bytes; run the command again to "
				    "resume\n", CLI_PROG, dir, p.name,
				    (unsigned long long)p.have);
			goto out;
		}
		sleep((unsigned)tries);
	}
	secs = now_s() - start;
	if (p.have != p.size) {
		rc = cli_fail("%s: incomplete (%llu of %llu bytes)", p.name,
		    (unsigned long long)p.have, (unsigned long long)p.size);
		goto out;
	}
	if ((st = cli_part_finish(&p, o->sha256)) != WSE_OK) {
		if (st == WSE_ERR_BAD_SIGNATURE) {
			wse_err_clear();
			fprintf(stderr, "%s: %s: SHA-256 does not match the "
			    "signed digest; discarded\n", CLI_PROG, p.name);
			rc = CLI_EXIT_FAIL;
		} else
			rc = cli_fail("%s", p.name);
		goto out;
	}
	cli_human_size(p.size, human, sizeof(human));
	printf("saved %s/%s (%s, %llu bytes, sha256 matches the signed "
	    "digest)\n", dir, p.name, human, (unsigned long long)p.size);
	printf("received %llu bytes in %.2f s (%.2f MB/s)\n",
	    (unsigned long long)p.got, secs,
	    secs > 0 ? (double)p.got / secs / 1e6 : 0.0);
	rc = CLI_EXIT_OK;
out:
	cli_part_close(&p);
	return rc;
}

static int
attachment_fetch(int argc, char **argv, const char *config)
{
	const char *dir = ".", *pos[2], *name = NULL, *domain;
	const struct cli_opt opts[] = {
		{ "--out", &dir, NULL },
	};
	struct cli c;
	struct cli_e2e e;
	struct cli_token t;
	long long id;
	size_t i, nsel = 0;
	int rc, npos, dfd = -1, failed = 0;

	memset(&c, 0, sizeof(c));
	memset(&e, 0, sizeof(e));
	memset(&t, 0, sizeof(t));
	if ((rc = cli_parse(&sub_fetch, argc, argv, opts, 1, &config, pos,
	    &npos, 2)) != 0)
		return rc;
	if (npos < 1)
		return cli_usage(&sub_fetch, "which message?");
	if (cli_number(pos[0], 1, INT64_MAX, &id) != 0)
		return cli_usage(&sub_fetch, "'%s' is not a message id",
		    pos[0]);
	if (npos == 2)
		name = pos[1];
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "%s: %s: %s\n", CLI_PROG, dir,
		    strerror(errno));
		return CLI_EXIT_FAIL;
	}
	if ((rc = cli_open(&c, config)) != CLI_EXIT_OK ||
	    (rc = cli_login(&c)) != CLI_EXIT_OK ||
	    (rc = cli_fetch_message(&c, id, &e)) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	if (!e.valid) {
		fprintf(stderr, "%s: message %lld did not verify (%s: ",
		    CLI_PROG, id, e.subcode);
		term_put(stderr, e.detail, 0, 200);
		fprintf(stderr, "); not fetching its attachments\n");
		goto out;
	}
	if (e.m == NULL || e.m->nod == 0) {
		fprintf(stderr, "%s: message %lld has no on-demand "
		    "attachments\n", CLI_PROG, id);
		goto out;
	}
	/* The sender's domain: the one that signed (== From's domain). */
	domain = e.v.signer_domain;
	for (i = 0; i < e.m->nod; i++) {
		const wse_ondemand *o = &e.m->od[i];

		if (o->upload != NULL || o->server == NULL)
			continue;
		if (name != NULL && strcmp(o->name, name) != 0)
			continue;
		nsel++;
	}
	if (nsel == 0) {
		fprintf(stderr, "%s: message %lld has no on-demand attachment "
		    "%s", CLI_PROG, id, name != NULL ? "named \"" : "");
		if (name != NULL) {
			term_put(stderr, name, 0, 100);
			fputc('"', stderr);
		}
		fputc('\n', stderr);
		goto out;
	}
	if ((rc = cli_token_get(&c, 0, &t)) != CLI_EXIT_OK)
		goto out;
	for (i = 0; i < e.m->nod; i++) {
		const wse_ondemand *o = &e.m->od[i];

		if (o->upload != NULL || o->server == NULL ||
		    (name != NULL && strcmp(o->name, name) != 0))
			continue;
		if (!cli_safe_name(o->name)) {
			fprintf(stderr, "%s: not fetching \"", CLI_PROG);
			term_put(stderr, o->name, 0, 100);
			fprintf(stderr, "\": unsafe file name\n");
			failed = 1;
			continue;
		}
		if (!wse_url_in_domain(o->server, domain)) {
			fprintf(stderr, "%s: not fetching %s: its server ",
			    CLI_PROG, o->name);
			term_put(stderr, o->server, 0, 200);
			fprintf(stderr, " is not of the sender's domain %s\n",
			    domain);
			failed = 1;
			continue;
		}
		/* Long transfers: a token near its end is replaced. */
		if ((int64_t)time(NULL) > t.not_after - 120) {
			cli_token_clear(&t);
			if ((rc = cli_token_get(&c, 0, &t)) != CLI_EXIT_OK)
				goto out;
		}
		if (fetch_one(&c, &t, domain, o, dfd, dir) != CLI_EXIT_OK)
			failed = 1;
	}
	rc = failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
	close(dfd);
	cli_token_clear(&t);
	cli_e2e_clear(&e);
	cli_close(&c);
	return rc;
}

/* ---- log ---- */

static const char *
attr_or(const xmlNode *n, const char *name, const char *def)
{
	const char *v = wse_xml_attr(n, NULL, name);

	return v != NULL ? v : def;
}

static void
log_attachment(const xmlNode *a)
{
	const char *size_s = attr_or(a, "size", "?"), *sha =
	    attr_or(a, "sha256", "?");
	const char *revoked = attr_or(a, "revoked", "false");
	xmlNodePtr n;
	wse_buf *b;
	char human[32];
	long long size = -1, off, len;
	size_t nr = 0, nf = 0;

	term_put(stdout, attr_or(a, "name", "?"), 0, 0);
	if (cli_number(size_s, 0, INT64_MAX, &size) == 0) {
		cli_human_size((uint64_t)size, human, sizeof(human));
		printf("  %s (%lld bytes)", human, size);
	} else
		printf("  ? bytes");
	fputs("  sha256 ", stdout);
	term_put(stdout, sha, 0, 16);
	fputs("...\n  expires ", stdout);
	term_put(stdout, attr_or(a, "expires", "?"), 0, 0);
	printf("  revoked: %s\n  recipients:", strcmp(revoked, "true") == 0 ||
	    strcmp(revoked, "1") == 0 ? "YES" : "no");
	for (n = wse_xml_first_elem(a); n; n = wse_xml_next_elem(n)) {
		if (!wse_xml_is(n, WSE_NS_WSE, "Recipient") ||
		    (b = wse_buf_new(WSE_ADDR_MAX + 1)) == NULL)
			continue;
		if (wse_xml_text(n, b) == WSE_OK) {
			fputs(nr++ ? ", " : " ", stdout);
			term_put(stdout, wse_buf_str(b), 0, 0);
		}
		wse_buf_free(&b);
	}
	wse_err_clear();
	printf("%s\n", nr ? "" : " (none)");
	for (n = wse_xml_first_elem(a); n; n = wse_xml_next_elem(n)) {
		if (!wse_xml_is(n, WSE_NS_WSE, "Fetch"))
			continue;
		if (nf++ == 0)
			printf("  fetches:\n");
		fputs("    ", stdout);
		term_put(stdout, attr_or(n, "by", "?"), 0, 0);
		fputs("  ", stdout);
		term_put(stdout, attr_or(n, "at", "?"), 0, 0);
		if (cli_number(attr_or(n, "offset", ""), 0, INT64_MAX,
		    &off) != 0) {
			printf("  bytes ?\n");
			continue;
		}
		if (cli_number(attr_or(n, "length", ""), 0, INT64_MAX,
		    &len) == 0) {
			cli_human_size((uint64_t)len, human, sizeof(human));
			if (len > 0)
				printf("  bytes %llu-%llu (%s)\n",
				    (unsigned long long)off,
				    (unsigned long long)off +
				    (unsigned long long)len - 1, human);
			else
				printf("  bytes from %lld (none sent)\n", off);
		} else
			printf("  bytes from %lld to the end\n", off);
	}
	if (nf == 0)
		printf("  fetches: none\n");
}

static int
attachment_log(int argc, char **argv, const char *config)
{
	const char *pos[1];
	struct cli c;
	struct cli_reply r;
	char payload[256];
	xmlNodePtr a;
	size_t n = 0;
	int rc, npos;

	memset(&c, 0, sizeof(c));
	memset(&r, 0, sizeof(r));
	if ((rc = cli_parse(&sub_log, argc, argv, NULL, 0, &config, pos,
	    &npos, 1)) != 0)
		return rc;
	if (npos != 1)
		return cli_usage(&sub_log, "which message?");
	if (!wse_uuid_urn_valid(pos[0]))
		return cli_usage(&sub_log, "'%s' is not a message id as \"send\" "
		    "prints it (urn:uuid:...)", pos[0]);
	if ((rc = cli_open(&c, config)) != CLI_EXIT_OK ||
	    (rc = cli_login(&c)) != CLI_EXIT_OK)
		goto out;
	(void)snprintf(payload, sizeof(payload), "<m:AttachmentLog xmlns:m=\""
	    WSE_NS_WSE "\"><m:Id>%s</m:Id></m:AttachmentLog>", pos[0]);
	if ((rc = cli_call(&c, "AttachmentLog", payload, 0, &r)) !=
	    CLI_EXIT_OK)
		goto out;
	for (a = wse_xml_first_elem(r.payload); a; a = wse_xml_next_elem(a)) {
		if (!wse_xml_is(a, WSE_NS_WSE, "Attachment"))
			continue;
		if (n++ > 0)
			fputc('\n', stdout);
		log_attachment(a);
	}
	if (n == 0)
		printf("no on-demand attachments for %s\n", pos[0]);
out:
	cli_reply_clear(&r);
	cli_close(&c);
	return rc;
}

/* ---- revoke ---- */

static int
attachment_revoke(int argc, char **argv, const char *config)
{
	const char *pos[2];
	struct cli c;
	struct cli_reply r;
	wse_buf *p = NULL;
	char *n_s = NULL;
	long long n;
	int rc, npos;

	memset(&c, 0, sizeof(c));
	memset(&r, 0, sizeof(r));
	if ((rc = cli_parse(&sub_revoke, argc, argv, NULL, 0, &config, pos,
	    &npos, 2)) != 0)
		return rc;
	if (npos < 1)
		return cli_usage(&sub_revoke, "which message?");
	if (!wse_uuid_urn_valid(pos[0]))
		return cli_usage(&sub_revoke, "'%s' is not a message id as "
		    "\"send\" prints it (urn:uuid:...)", pos[0]);
	if (npos == 2 && !term_utf8_ok(pos[1], strlen(pos[1])))
		return cli_usage(&sub_revoke, "the name is not UTF-8 text");
	if ((rc = cli_open(&c, config)) != CLI_EXIT_OK ||
	    (rc = cli_login(&c)) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	if ((p = wse_buf_new(4096)) == NULL ||
	    wse_buf_printf(p, "<m:RevokeAttachment xmlns:m=\"" WSE_NS_WSE
	    "\"><m:Id>%s</m:Id>", pos[0]) != WSE_OK ||
	    (npos == 2 && (wse_buf_puts(p, "<m:Name>") != WSE_OK ||
	    wse_buf_put_xml_escaped(p, pos[1], strlen(pos[1])) != WSE_OK ||
	    wse_buf_puts(p, "</m:Name>") != WSE_OK)) ||
	    wse_buf_puts(p, "</m:RevokeAttachment>") != WSE_OK) {
		rc = cli_fail("cannot build the RevokeAttachment request");
		goto out;
	}
	if ((rc = cli_call(&c, "RevokeAttachment", wse_buf_str(p), 0, &r)) !=
	    CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	if ((n_s = cli_child_text(r.payload, "Revoked", 32)) == NULL ||
	    cli_number(n_s, 0, INT64_MAX, &n) != 0) {
		wse_err_clear();
		rc = cli_fail("the server's RevokeAttachmentResponse is "
		    "malformed");
		goto out;
	}
	printf("revoked %lld attachment%s\n", n, n == 1 ? "" : "s");
	if (n == 0) {
		fprintf(stderr, "%s: nothing was revoked (no such attachment, "
		    "or revoked already)\n", CLI_PROG);
		goto out;
	}
	rc = CLI_EXIT_OK;
out:
	free(n_s);
	wse_buf_free(&p);
	cli_reply_clear(&r);
	cli_close(&c);
	return rc;
}

int
cmd_attachment(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv)
{
	if (argc >= 1 && (strcmp(argv[0], "-h") == 0 ||
	    strcmp(argv[0], "--help") == 0)) {
		printf("%s\nusage:\n", cmd->summary);
		printf("  %s [--config FILE] %s %s\n", CLI_PROG, sub_fetch.name,
		    sub_fetch.args);
		printf("  %s [--config FILE] %s %s\n", CLI_PROG, sub_log.name,
		    sub_log.args);
		printf("  %s [--config FILE] %s %s\n", CLI_PROG,
		    sub_revoke.name, sub_revoke.args);
		return CLI_HELP_SHOWN;
	}
	if (argc < 1)
		return cli_usage(cmd, "fetch, log or revoke?");
	if (strcmp(argv[0], "fetch") == 0)
		return attachment_fetch(argc - 1, argv + 1, config);
	if (strcmp(argv[0], "log") == 0)
		return attachment_log(argc - 1, argv + 1, config);
	if (strcmp(argv[0], "revoke") == 0)
		return attachment_revoke(argc - 1, argv + 1, config);
	return cli_usage(cmd, "unknown sub-command '%s' (fetch, log or "
	    "revoke)", argv[0]);
}
