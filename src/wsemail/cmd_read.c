/*
 * cmd_read.c - "wsemail read": fetch a message, verify the sending
 * server's signature on the original Deliver envelope end to end, show
 * it, save its attachments, mark it read.
 *
 * The original is verified as of its receipt (the Received time our own,
 * verified, server reports): its Timestamp was fresh then, however old it
 * is now.  It must be signed by a service certificate of the domain its
 * m:Origin names, be a Deliver, list this user among its recipients, and
 * its From must belong to that domain.  A message that fails is still
 * shown, marked NOT VALID, and its attachments are not saved.
 *
 * On-demand attachments are listed from the verified original only; one
 * whose server is not of the sender's domain is flagged (its receiving
 * server should have refused it).  "wsemail attachment fetch" uses the
 * same fetch-and-verify path (cli_fetch_message).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "batch.h"
#include "crypto.h"
#include "xml.h"
#include "wsemail.h"

void
cli_e2e_clear(struct cli_e2e *e)
{
	wse_verified_clear(&e->v);
	wse_env_free(&e->env);
	xmlFreeDoc(e->item_doc);
	e->item_doc = NULL;
	wse_buf_free(&e->item);
	wse_msg_free(&e->m);
	free(e->received_s);
	e->received_s = NULL;
}

static void
e2e_refuse(struct cli_e2e *e, wse_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Record why the original is not valid (the first reason wins). */
static void
e2e_refuse(struct cli_e2e *e, wse_status st, const char *fmt, ...)
{
	char errs[WSE_ERR_DEPTH * (WSE_ERR_MSGLEN + 2)];
	va_list ap;

	if (!e->valid && e->subcode != NULL)
		return;
	e->valid = 0;
	e->subcode = wse_fault_subcode(st);
	if (fmt != NULL) {
		va_start(ap, fmt);
		(void)vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
		va_end(ap);
	} else
		(void)snprintf(e->detail, sizeof(e->detail), "%s",
		    wse_err_format(errs, sizeof(errs)));
	wse_err_clear();
}

/* 1 when the Deliver's signed Rcpt list names addr. */
static int
has_rcpt(const xmlNode *deliver, const char *addr)
{
	xmlNodePtr n;
	wse_buf *b;
	char norm[WSE_ADDR_MAX + 1];
	int found = 0;

	for (n = wse_xml_first_elem(deliver); n && !found;
	    n = wse_xml_next_elem(n)) {
		if (!wse_xml_is(n, WSE_NS_WSE, "Rcpt") ||
		    (b = wse_buf_new(WSE_ADDR_MAX + 1)) == NULL)
			continue;
		if (wse_xml_text(n, b) == WSE_OK &&
		    wse_addr_normalize(wse_buf_str(b), norm, sizeof(norm)) ==
		    WSE_OK && strcmp(norm, addr) == 0)
			found = 1;
		wse_buf_free(&b);
	}
	wse_err_clear();
	return found;
}

/*
 * The CRLs could not decide (one is missing, say for a domain whose CRL
 * we do not have, or it was issued after the message arrived, and a
 * verification as of receipt cannot use it): verify as a client without
 * CRLs does, and say so.  A permanent verdict (revoked, expired, bad
 * signature) never gets here.
 */
static wse_status
verify_without_crls(struct cli *c, struct cli_e2e *e, wse_verify_opts *o,
    wse_replay *fresh)
{
	wse_trust *t;

	(void)snprintf(e->revocation, sizeof(e->revocation), "%s",
	    wse_err_last());
	wse_err_clear();
	if ((t = cli_trust_nocrl(c)) == NULL)
		return wse_err(WSE_ERR_TEMPFAIL, "%s", e->revocation);
	o->trust = t;
	o->replay = fresh;
	return wse_wss_verify(e->env, o, &e->v);
}

/*
 * Check e's signature (certificate profile) as of received, for purpose
 * and, when expected_domain is set, that domain; with a replay cache of
 * its own (a stored original is read again and again).  A failure
 * refuses e.
 */
static void
e2e_verify(struct cli *c, struct cli_e2e *e, int64_t received,
    wse_purpose purpose, const char *expected_domain)
{
	wse_replay *fresh = NULL;
	wse_verify_opts o;
	wse_status st;

	if (wse_replay_memory_new(16, &fresh) != WSE_OK) {
		e2e_refuse(e, WSE_ERR_NOMEM, NULL);
		return;
	}
	memset(&o, 0, sizeof(o));
	o.profile = WSE_PROFILE_CERT;
	o.limits = &c->lim;
	o.replay = fresh;
	o.now = received;
	o.trust = c->trust;
	o.purpose = purpose;
	o.expected_domain = expected_domain;
	st = wse_wss_verify(e->env, &o, &e->v);
	if (st == WSE_ERR_TEMPFAIL && c->crls_checked)
		st = verify_without_crls(c, e, &o, fresh);
	if (st != WSE_OK)
		e2e_refuse(e, st, NULL);
	wse_replay_free(&fresh);
}

/* The signer's subject into e->signer ("?" when it cannot be read). */
static void
e2e_signer(struct cli_e2e *e)
{
	if (wse_cert_subject(e->v.signer, e->signer, sizeof(e->signer)) !=
	    WSE_OK) {
		(void)snprintf(e->signer, sizeof(e->signer), "?");
		wse_err_clear();
	}
}

/* The m:Origin of parent, lower-cased, into origin: 0, or -1 (origin
 * left empty) when there is none that fits. */
static int
read_origin(const xmlNode *parent, char origin[256])
{
	char *t = cli_child_text(parent, "Origin", 254);
	size_t i;

	origin[0] = '\0';
	if (t == NULL || strlen(t) >= 256) {
		free(t);
		return -1;
	}
	for (i = 0; t[i] != '\0'; i++)
		origin[i] = (t[i] >= 'A' && t[i] <= 'Z') ? (char)(t[i] + 32) :
		    t[i];
	origin[i] = '\0';
	free(t);
	return 0;
}

/* The original's m:Message into e->m; a failure refuses e and says why
 * the message cannot be shown. */
static wse_status
e2e_message(struct cli_e2e *e, const xmlNode *mnode)
{
	char errs[512];
	wse_status st;

	if ((st = wse_msg_parse(mnode, &e->m)) == WSE_OK)
		return WSE_OK;
	(void)snprintf(e->why_not_shown, sizeof(e->why_not_shown),
	    "the message is malformed: %s", wse_err_format(errs, sizeof(errs)));
	e2e_refuse(e, st, NULL);
	return st;
}

/* The message's From must be of the signing domain origin (when known). */
static void
e2e_from_domain(struct cli_e2e *e, const char *origin)
{
	if (origin[0] != '\0' &&
	    strcmp(wse_addr_domain(e->m->from), origin) != 0)
		e2e_refuse(e, WSE_ERR_DOMAIN_MISMATCH, "From %s is not of the "
		    "signing domain %s", e->m->from, origin);
}

/* 1 when the message's To names addr (a DeliverDirect has no Rcpt). */
static int
has_to(const wse_msg *m, const char *addr)
{
	size_t i;

	for (i = 0; i < m->nto; i++)
		if (strcmp(m->to[i], addr) == 0)
			return 1;
	return 0;
}

/*
 * A DeliverDirect original (a roaming sender, docs/im.md): signed by the
 * sender's token certificate (certificate profile, token purpose, any
 * domain whose CA chains to our roots), as of its receipt; the token must
 * name the message's From, and we must be in its To.
 */
static void
verify_direct(struct cli *c, xmlNodePtr direct, int64_t received,
    struct cli_e2e *e)
{
	xmlNodePtr mnode = NULL;

	e->direct = 1;
	if (wse_xml_only_child(direct, WSE_NS_WSE, "Message", &mnode) !=
	    WSE_OK)
		mnode = NULL;
	e2e_verify(c, e, received, WSE_PURPOSE_TOKEN, NULL);
	if (e->valid) {
		if (strcmp(e->v.action_s, WSE_ACTION_PREFIX "DeliverDirect") !=
		    0 || direct->parent != e->v.body)
			e2e_refuse(e, WSE_ERR_BAD_SIGNATURE, "the signature "
			    "does not cover the DeliverDirect message");
		else if (e->v.signer_mailbox == NULL)
			e2e_refuse(e, WSE_ERR_NOT_AUTHORIZED, "the signing "
			    "certificate is not a token of a mailbox");
		e2e_signer(e);
	}
	if (mnode == NULL) {
		e2e_refuse(e, WSE_ERR_INVALID, "the DeliverDirect holds no "
		    "Message");
		(void)snprintf(e->why_not_shown, sizeof(e->why_not_shown),
		    "the original holds no message");
		goto out;
	}
	if (e2e_message(e, mnode) != WSE_OK)
		goto out;
	if (e->valid && e->v.signer_mailbox != NULL &&
	    strcasecmp(e->v.signer_mailbox, e->m->from) != 0)
		e2e_refuse(e, WSE_ERR_NOT_AUTHORIZED, "From %s is not the "
		    "token's mailbox %s", e->m->from, e->v.signer_mailbox);
	else if (e->valid && !has_to(e->m, c->address))
		e2e_refuse(e, WSE_ERR_NOT_AUTHORIZED, "%s is not among the "
		    "signed recipients", c->address);
out:
	wse_err_clear();
}

/*
 * A batch original (lib/batch.h): its head into e->env, its item into
 * e->item and e->index.  WSE_ERR_NOT_FOUND when orig is something else;
 * any other failure refuses e.
 */
static wse_status
batch_split(struct cli *c, const wse_buf *orig, struct cli_e2e *e)
{
	wse_buf *head = NULL;
	wse_status st;

	if ((head = wse_buf_new(c->lim.max_message_bytes)) == NULL ||
	    (e->item = wse_buf_new(c->lim.max_message_bytes)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto refuse;
	}
	/* The original is larger than the message it holds (base64, and
	 * the head): read with the limits of an answer. */
	st = wse_batch_original_split(wse_buf_data(orig), wse_buf_len(orig),
	    &c->resp_lim, head, &e->index, e->item);
	if (st == WSE_ERR_NOT_FOUND) {
		wse_err_clear();
		wse_buf_free(&head);
		return st;
	}
	e->batch = 1;
	if (st == WSE_OK && (st = wse_env_parse(wse_buf_data(head),
	    wse_buf_len(head), &c->lim, &e->env)) == WSE_OK) {
		wse_buf_free(&head);
		return WSE_OK;
	}
refuse:
	e2e_refuse(e, st, NULL);
	(void)snprintf(e->why_not_shown, sizeof(e->why_not_shown),
	    "the original is not a readable batch original");
	wse_buf_free(&head);
	return st == WSE_ERR_NOT_FOUND ? WSE_ERR_INVALID : st;
}

/*
 * A message that came in a DeliverBatch (e->env: the batch's signed head,
 * e->item: the bare m:Deliver at e->index): the head signed, as of its
 * receipt, by a service certificate of the domain its m:Origin names, and
 * its signed digest at e->index that of the item; then the item checked
 * as a lone Deliver is (same Origin, we among its recipients, From of
 * that domain).
 */
static void
verify_batch(struct cli *c, int64_t received, struct cli_e2e *e)
{
	xmlNodePtr batch = NULL, deliver, mnode = NULL;
	char *item_origin = NULL, origin[256];
	wse_status st;

	origin[0] = '\0';
	if (wse_xml_only_child(wse_env_body(e->env), WSE_NS_WSE,
	    "DeliverBatch", &batch) != WSE_OK || read_origin(batch, origin) != 0)
		e2e_refuse(e, WSE_ERR_INVALID, "the batch original's head is "
		    "not a DeliverBatch naming its Origin");
	else
		e2e_verify(c, e, received, WSE_PURPOSE_SERVICE, origin);
	if (e->valid) {
		if (strcmp(e->v.action_s, WSE_ACTION_PREFIX "DeliverBatch") !=
		    0 || batch->parent != e->v.body)
			e2e_refuse(e, WSE_ERR_BAD_SIGNATURE, "the signature "
			    "does not cover the DeliverBatch");
		else if ((st = wse_batch_item_check(batch, e->index,
		    wse_buf_data(e->item), wse_buf_len(e->item))) != WSE_OK)
			e2e_refuse(e, st, NULL);
		e2e_signer(e);
	}
	/* The item: read only now, and believed only if e is still valid. */
	if ((st = wse_xml_parse(wse_buf_data(e->item), wse_buf_len(e->item),
	    &c->lim, &e->item_doc)) != WSE_OK ||
	    (deliver = xmlDocGetRootElement(e->item_doc)) == NULL ||
	    !wse_xml_is(deliver, WSE_NS_WSE, "Deliver") ||
	    wse_xml_only_child(deliver, WSE_NS_WSE, "Message", &mnode) !=
	    WSE_OK) {
		e2e_refuse(e, WSE_ERR_INVALID, "the batch item is not a Deliver "
		    "holding a Message");
		(void)snprintf(e->why_not_shown, sizeof(e->why_not_shown),
		    "the original holds no message");
		goto out;
	}
	if ((item_origin = cli_child_text(deliver, "Origin", 254)) == NULL ||
	    strcasecmp(item_origin, origin) != 0)
		e2e_refuse(e, WSE_ERR_DOMAIN_MISMATCH, "the batch item is not "
		    "of the batch's Origin");
	else if (e->valid && !has_rcpt(deliver, c->address))
		e2e_refuse(e, WSE_ERR_NOT_AUTHORIZED, "%s is not among the "
		    "signed recipients", c->address);
	if (e2e_message(e, mnode) != WSE_OK)
		goto out;
	e2e_from_domain(e, origin);
out:
	free(item_origin);
	wse_err_clear();
}

void
cli_verify_original(struct cli *c, const wse_buf *orig, int64_t received,
    struct cli_e2e *e)
{
	xmlNodePtr deliver = NULL, mnode = NULL;
	char origin[256];
	wse_status st;
	size_t mark;

	e->valid = 1;
	origin[0] = '\0';
	if ((st = batch_split(c, orig, e)) != WSE_ERR_NOT_FOUND) {
		if (st == WSE_OK)
			verify_batch(c, received, e);
		goto out;
	}
	if ((st = wse_env_parse(wse_buf_data(orig), wse_buf_len(orig),
	    &c->lim, &e->env)) != WSE_OK) {
		e2e_refuse(e, st, NULL);
		(void)snprintf(e->why_not_shown, sizeof(e->why_not_shown),
		    "the original is not a readable SOAP envelope");
		goto out;
	}
	/* Candidates: read only to tell the verifier whom to expect, and
	 * checked against what it proves below. */
	mark = wse_err_mark();
	if (wse_xml_only_child(wse_env_body(e->env), WSE_NS_WSE,
	    "DeliverDirect", &deliver) == WSE_OK) {
		verify_direct(c, deliver, received, e);
		goto out;
	}
	wse_err_truncate(mark);	/* not a DeliverDirect: no reason to give */
	if (wse_xml_only_child(wse_env_body(e->env), WSE_NS_WSE, "Deliver",
	    &deliver) != WSE_OK) {
		deliver = NULL;
		e2e_refuse(e, WSE_ERR_INVALID, "the original is not a Deliver "
		    "message");
		(void)snprintf(e->why_not_shown, sizeof(e->why_not_shown),
		    "the original holds no message");
		goto out;
	}
	if (wse_xml_only_child(deliver, WSE_NS_WSE, "Message", &mnode) !=
	    WSE_OK)
		mnode = NULL;
	if (read_origin(deliver, origin) != 0)
		e2e_refuse(e, WSE_ERR_INVALID, "the original names no Origin");
	else
		e2e_verify(c, e, received, WSE_PURPOSE_SERVICE, origin);
	if (e->valid) {
		if (strcmp(e->v.action_s, WSE_ACTION_PREFIX "Deliver") != 0 ||
		    deliver->parent != e->v.body)
			e2e_refuse(e, WSE_ERR_BAD_SIGNATURE, "the signature "
			    "does not cover the Deliver message");
		else if (!has_rcpt(deliver, c->address))
			e2e_refuse(e, WSE_ERR_NOT_AUTHORIZED, "%s is not among "
			    "the signed recipients", c->address);
		e2e_signer(e);
	}
	if (mnode == NULL) {
		e2e_refuse(e, WSE_ERR_INVALID, "the Deliver holds no Message");
		(void)snprintf(e->why_not_shown, sizeof(e->why_not_shown),
		    "the original holds no message");
		goto out;
	}
	if (e2e_message(e, mnode) != WSE_OK)
		goto out;
	e2e_from_domain(e, origin);
out:
	wse_err_clear();
}

static void
print_addrs(const char *label, char *const *v, size_t n)
{
	size_t i;

	if (n == 0)
		return;
	printf("%s: ", label);
	for (i = 0; i < n; i++) {
		if (i > 0)
			fputs(", ", stdout);
		term_put(stdout, v[i], 0, 0);
	}
	fputc('\n', stdout);
}

static void show_ondemand(const struct cli_e2e *e);

static void
show(const struct cli *c, const struct cli_e2e *e, const char *received)
{
	char when[21];
	size_t i;
	const char *nocrl = c->crls_checked ? "" : " (revocation not checked)";

	if (e->valid) {
		wse_time_format(e->v.created, when);
		fputs("Verified: signed by ", stdout);
		term_put(stdout, e->signer, 0, 0);
		fputs(" for ", stdout);
		term_put(stdout, e->v.signer_domain, 0, 0);
		printf(" at %s: VALID%s", when, nocrl);
		if (e->revocation[0] != '\0') {
			fputs(" (revocation not checked: ", stdout);
			term_put(stdout, e->revocation, 0, 200);
			fputc(')', stdout);
		}
		fputc('\n', stdout);
	} else {
		printf("Verified: NOT VALID: %s: ", e->subcode);
		term_put(stdout, e->detail, 0, 0);
		printf("%s\n", nocrl);
		printf("WARNING: this message did not verify; its sender and "
		    "content are NOT proven.\n");
	}
	if (e->m == NULL) {
		printf("(the message cannot be shown: ");
		term_put(stdout, e->why_not_shown, 0, 0);
		printf(")\n");
		return;
	}
	fputs("From: ", stdout);
	term_put(stdout, e->m->from, 0, 0);
	fputc('\n', stdout);
	print_addrs("To", e->m->to, e->m->nto);
	print_addrs("Cc", e->m->cc, e->m->ncc);
	fputs("Date: ", stdout);
	term_put(stdout, e->m->date ? e->m->date : "(none)", 0, 0);
	fputc('\n', stdout);
	fputs("Received: ", stdout);
	term_put(stdout, received, 0, 0);
	fputc('\n', stdout);
	fputs("Subject: ", stdout);
	term_put(stdout, e->m->subject ? e->m->subject : "", 0, 0);
	fputs("\n\n", stdout);
	if (e->m->text != NULL && *e->m->text != '\0') {
		term_put(stdout, e->m->text, 1, 0);
		if (e->m->text[strlen(e->m->text) - 1] != '\n')
			fputc('\n', stdout);
	}
	if (e->m->natt > 0) {
		printf("\nAttachments:\n");
		for (i = 0; i < e->m->natt; i++) {
			const wse_attachment *a = &e->m->att[i];

			printf("  %zu. ", i + 1);
			term_put(stdout, a->name, 0, 0);
			fputs("  ", stdout);
			term_put(stdout, a->type, 0, 0);
			printf("  %llu bytes  sha256 %s\n",
			    (unsigned long long)a->size, a->sha256);
		}
	}
	show_ondemand(e);
}

/* The on-demand attachments, as the sender's server signed them. */
static void
show_ondemand(const struct cli_e2e *e)
{
	const char *dom = wse_addr_domain(e->m->from);
	char human[32];
	size_t i;

	if (e->m->nod == 0)
		return;
	printf("\nOn-demand attachments (kept by the sender's server; "
	    "\"wsemail attachment fetch\"):\n");
	for (i = 0; i < e->m->nod; i++) {
		const wse_ondemand *o = &e->m->od[i];

		printf("  %zu. ", i + 1);
		if (o->upload != NULL || o->server == NULL) {
			printf("(an unresolved upload reference: it cannot "
			    "be fetched)\n");
			continue;
		}
		term_put(stdout, o->name, 0, 0);
		cli_human_size(o->size, human, sizeof(human));
		printf("  %s (%llu bytes)  ", human,
		    (unsigned long long)o->size);
		term_put(stdout, o->type, 0, 0);
		printf("  sha256 %.16s...\n     at ", o->sha256);
		term_put(stdout, o->server, 0, 0);
		if (!wse_url_in_domain(o->server, dom)) {
			fputs("  WARNING: not a server of ", stdout);
			term_put(stdout, dom, 0, 0);
			fputs("; it will not be fetched", stdout);
		}
		fputc('\n', stdout);
	}
	if (!e->valid)
		printf("  (the message did not verify: these will not be "
		    "fetched)\n");
}

/* Write one attachment as DIR/NAME; never over an existing file. */
static int
save_one(int dfd, const char *dir, const wse_attachment *a)
{
	uint8_t h[WSE_SHA256_LEN];
	char hex[2 * WSE_SHA256_LEN + 1];
	const uint8_t *p = wse_buf_data(a->data);
	size_t left = wse_buf_len(a->data);
	ssize_t r;
	int fd, rc = CLI_EXIT_FAIL;

	if (!cli_safe_name(a->name)) {
		fprintf(stderr, "%s: not saving attachment \"", CLI_PROG);
		term_put(stderr, a->name, 0, 100);
		fprintf(stderr, "\": unsafe file name\n");
		return CLI_EXIT_FAIL;
	}
	if (wse_sha256(p, left, h) != WSE_OK)
		return cli_fail("SHA-256");
	wse_hex(h, sizeof(h), hex);
	if (left != a->size || strcmp(hex, a->sha256) != 0) {
		fprintf(stderr, "%s: not saving attachment %s: its SHA-256 does "
		    "not match\n", CLI_PROG, a->name);
		return CLI_EXIT_FAIL;
	}
	if ((fd = openat(dfd, a->name, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600)) == -1) {
		fprintf(stderr, "%s: not saving attachment: %s/%s: %s\n",
		    CLI_PROG, dir, a->name, errno == EEXIST ?
		    "the file exists already" : strerror(errno));
		return CLI_EXIT_FAIL;
	}
	while (left > 0) {
		r = write(fd, p, left);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		p += r;
		left -= (size_t)r;
	}
	if (left > 0 || fsync(fd) == -1) {
		fprintf(stderr, "%s: %s/%s: %s\n", CLI_PROG, dir, a->name,
		    strerror(errno));
		(void)unlinkat(dfd, a->name, 0);
	} else
		rc = CLI_EXIT_OK;
	if (close(fd) == -1 && rc == CLI_EXIT_OK) {
		fprintf(stderr, "%s: %s/%s: %s\n", CLI_PROG, dir, a->name,
		    strerror(errno));
		(void)unlinkat(dfd, a->name, 0);
		rc = CLI_EXIT_FAIL;
	}
	if (rc == CLI_EXIT_OK)
		printf("saved %s/%s (%llu bytes, sha256 %s)\n", dir, a->name,
		    (unsigned long long)a->size, hex);
	return rc;
}

static int
save_attachments(const struct cli_e2e *e, int dfd, const char *dir)
{
	size_t i;
	int rc = CLI_EXIT_OK;

	if (e->m == NULL || e->m->natt == 0)
		return CLI_EXIT_OK;
	if (!e->valid) {
		fprintf(stderr, "%s: not saving the attachments of a message "
		    "that did not verify\n", CLI_PROG);
		return CLI_EXIT_FAIL;
	}
	for (i = 0; i < e->m->natt; i++)
		if (save_one(dfd, dir, &e->m->att[i]) != CLI_EXIT_OK)
			rc = CLI_EXIT_FAIL;
	return rc;
}

int
cli_fetch_message(struct cli *c, long long id, struct cli_e2e *e)
{
	struct cli_reply r;
	char payload[256], *got_id = NULL, *b64 = NULL;
	wse_buf *orig = NULL;
	long long got;
	int64_t received;
	int rc;

	memset(&r, 0, sizeof(r));
	memset(e, 0, sizeof(*e));
	(void)snprintf(payload, sizeof(payload), "<m:FetchMessage xmlns:m=\""
	    WSE_NS_WSE "\"><m:Id>%lld</m:Id></m:FetchMessage>", id);
	if ((rc = cli_call(c, "FetchMessage", payload, 0, &r)) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	got_id = cli_child_text(r.payload, "Id", 32);
	e->received_s = cli_child_text(r.payload, "Received", 64);
	b64 = cli_child_text(r.payload, "Original",
	    c->resp_lim.max_message_bytes);
	if (got_id == NULL || cli_number(got_id, 1, INT64_MAX, &got) != 0 ||
	    got != id || e->received_s == NULL ||
	    wse_time_parse(e->received_s, &received) != WSE_OK ||
	    b64 == NULL) {
		rc = cli_fail("the server's FetchMessageResponse is malformed");
		goto out;
	}
	cli_reply_clear(&r);
	if ((orig = wse_buf_new(c->resp_lim.max_message_bytes)) == NULL) {
		rc = cli_fail("out of memory");
		goto out;
	}
	if (wse_base64_decode(b64, strlen(b64), orig) != WSE_OK) {
		rc = cli_fail("the server sent a malformed Original");
		goto out;
	}
	free(b64);
	b64 = NULL;
	cli_verify_original(c, orig, received, e);
	rc = CLI_EXIT_OK;
out:
	cli_reply_clear(&r);
	wse_buf_free(&orig);
	free(got_id);
	free(b64);
	return rc;
}

int
cmd_read(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv)
{
	const char *save_dir = NULL, *pos[1];
	const struct cli_opt opts[] = {
		{ "--save-attachments", &save_dir, NULL },
	};
	struct cli c;
	struct cli_reply mr;
	struct cli_e2e e;
	char payload[256];
	long long id;
	int rc, npos, save_rc = CLI_EXIT_OK, dfd = -1;

	memset(&c, 0, sizeof(c));
	memset(&mr, 0, sizeof(mr));
	memset(&e, 0, sizeof(e));
	if ((rc = cli_parse(cmd, argc, argv, opts, 1, &config, pos, &npos,
	    1)) != 0)
		return rc;
	if (npos != 1)
		return cli_usage(cmd, "which message?");
	if (cli_number(pos[0], 1, INT64_MAX, &id) != 0)
		return cli_usage(cmd, "'%s' is not a message id", pos[0]);
	/* The directory is checked before anything is fetched. */
	if (save_dir != NULL && (dfd = open(save_dir, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		fprintf(stderr, "%s: %s: %s\n", CLI_PROG, save_dir,
		    strerror(errno));
		return CLI_EXIT_FAIL;
	}
	if ((rc = cli_open(&c, config)) != CLI_EXIT_OK ||
	    (rc = cli_login(&c)) != CLI_EXIT_OK ||
	    (rc = cli_fetch_message(&c, id, &e)) != CLI_EXIT_OK)
		goto out;
	show(&c, &e, e.received_s);
	if (dfd != -1)
		save_rc = save_attachments(&e, dfd, save_dir);
	if (fflush(stdout) != 0) {
		rc = cli_fail("cannot write the output");
		goto out;
	}

	/* The user has seen it. */
	(void)snprintf(payload, sizeof(payload), "<m:MarkRead xmlns:m=\""
	    WSE_NS_WSE "\"><m:Id>%lld</m:Id><m:Read>true</m:Read>"
	    "</m:MarkRead>", id);
	if ((rc = cli_call(&c, "MarkRead", payload, 0, &mr)) != CLI_EXIT_OK)
		goto out;
	if (!e.valid) {
		fprintf(stderr, "%s: message %lld did not verify: %s\n",
		    CLI_PROG, id, e.subcode);
		rc = CLI_EXIT_FAIL;
	} else
		rc = save_rc;
out:
	if (dfd != -1)
		close(dfd);
	cli_e2e_clear(&e);
	cli_reply_clear(&mr);
	cli_close(&c);
	return rc;
}
