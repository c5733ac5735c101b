/*
 * cmd_form.c - "wsemail form": routed forms (docs/forms.md, paper section
 * 3).  A form travels as the attachment form.xml (WSE_FORM_MEDIA_TYPE) of
 * an ordinary mail message addressed to the next party (formtype.h).
 *
 *   submit URL --field NAME=VALUE... [--route HOP]... [--final DOMAIN]
 *	[--sha256 HEX]		fill in and sign a new form of the type
 *				whose plugin is at URL, send it on its way
 *   list [--limit N]		the forms in the mailbox and their state
 *   show ID | --file FILE	a form in full, verified
 *   approve ID [--note TEXT], reject ID [--note TEXT], delegate ID TO
 *				act on a form whose turn is ours
 *   verify ID | --file FILE [--final DOMAIN]
 *				the final party's check, from here
 *   export ID FILE		the form's XML as received
 *
 * ID is a mailbox message id (as "list" prints it).
 *
 * What is trusted: nothing in a form before wse_form_verify has checked
 * every record against the configured roots and CRLs; a form that fails
 * is reported with the record and the reason, and nothing of its content
 * is shown.  Revocation is never skipped here: without a "crl" line in
 * the configuration the token chains cannot be checked and every form
 * fails closed (a temporary failure, said so).  The form's type is a Lua
 * plugin fetched from the URL its signed content names; it is run only
 * when its SHA-256 is the one the form names and its publisher's
 * signature verifies under one of the "publisher" certificates of our
 * configuration.  A form whose type we do not trust is left alone: we
 * neither approve, reject nor delegate it (it stays pending for us).
 * The carrying message is fetched and verified as "read" does; its
 * verdict is shown, but the form's own records are what count.  All
 * text from a form or a plugin reaches the terminal through term_put.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "form.h"
#include "formtype.h"
#include "xml.h"
#include "wsemail.h"

#define FORM_LIST_DEFAULT 100	/* newest headers looked at by "list" */
#define FORM_LIST_MAX 500
#define FORM_FETCH_MAX 50	/* candidate messages fetched by "list" */
#define FORM_PUBLISHERS_MAX 64
#define FORM_SUBJECT_PREFIX "Form "

static const struct cli_cmd sub_submit = {
	"form submit", NULL,
	"URL --field NAME=VALUE... [--route HOP]... [--final DOMAIN] "
	"[--sha256 HEX]",
	"fill in, sign and send a new form of the type whose plugin is at "
	"URL (HOP: a router domain, or an approver's mailbox)",
};
static const struct cli_cmd sub_list = {
	"form list", NULL, "[--limit N]",
	"the forms among the newest N messages (default 100) and their state",
};
static const struct cli_cmd sub_show = {
	"form show", NULL, "ID | --file FILE",
	"a form, verified: type, claimant, fields, route, records, outcome",
};
static const struct cli_cmd sub_approve = {
	"form approve", NULL, "ID [--note TEXT]",
	"approve a form whose turn is yours and send it on",
};
static const struct cli_cmd sub_reject = {
	"form reject", NULL, "ID [--note TEXT]",
	"reject a form whose turn is yours (the route stops) and send it on",
};
static const struct cli_cmd sub_delegate = {
	"form delegate", NULL, "ID TO",
	"hand the decision on a form whose turn is yours to the mailbox TO",
};
static const struct cli_cmd sub_verify = {
	"form verify", NULL, "ID | --file FILE [--final DOMAIN]",
	"the final party's check: complete, every record valid, the type's "
	"own check (exit 0 valid, 1 invalid)",
};
static const struct cli_cmd sub_export = {
	"form export", NULL, "ID FILE",
	"write a form's XML, as received, to the new file FILE",
};

/* The session with what forms need on top of it. */
struct fctx {
	struct cli c;
	wse_cert *pubs[FORM_PUBLISHERS_MAX];	/* trusted publishers */
	size_t npubs;
	char cache[1200];
	int cache_ready;
	char *params[WSE_FORMTYPE_MAX_PARAMS];	/* "KEY\0VALUE" */
	const char *pkeys[WSE_FORMTYPE_MAX_PARAMS];
	const char *pvals[WSE_FORMTYPE_MAX_PARAMS];
	size_t nparams;
	wse_trust *ftrust;		/* roots only, CRLs required (no CRL
					 * configured: fails closed) */
	int logged_in;
};

/* One form at hand: from a message or a file, parsed and verified. */
struct held {
	long long id;			/* message id, 0 for a file */
	const char *path;		/* the file, or NULL */
	struct cli_e2e e;		/* the carrying message */
	wse_buf *file;
	const uint8_t *data;		/* the form's bytes (borrowed) */
	size_t len;
	wse_form *form;			/* NULL when it did not parse */
	wse_status vst;			/* WSE_OK: verified */
	wse_form_report rep;
	const wse_form_content *ct;	/* when verified */
	wse_form_state_info state;	/* when verified */
	int quiet;			/* no message for "no form" */
	int noform;			/* the message carries none */
};

/* ---- set-up ---- */

static void
fctx_close(struct fctx *fx)
{
	size_t i;

	for (i = 0; i < fx->npubs; i++)
		wse_cert_free(&fx->pubs[i]);
	fx->npubs = 0;
	for (i = 0; i < fx->nparams; i++)
		free(fx->params[i]);
	fx->nparams = 0;
	wse_trust_free(&fx->ftrust);
	cli_close(&fx->c);
}

static int
load_publishers(struct fctx *fx)
{
	size_t i, k, n = wse_config_count(fx->c.cfg, "", "publisher"), nc;
	wse_cert **certs;

	for (i = 0; i < n; i++) {
		const char *p = wse_config_get_nth(fx->c.cfg, "", "publisher",
		    i);

		if (p == NULL || *p == '\0')
			continue;
		if (wse_cert_load_list(p, &certs, &nc) != WSE_OK)
			return cli_fail("%s: publisher %s", fx->c.config_path,
			    p);
		for (k = 0; k < nc; k++) {
			if (fx->npubs >= FORM_PUBLISHERS_MAX) {
				wse_cert_list_free(&certs, nc);
				return cli_fail("%s: more than %d publisher "
				    "certificates", fx->c.config_path,
				    FORM_PUBLISHERS_MAX);
			}
			if ((fx->pubs[fx->npubs] = wse_cert_dup(certs[k])) ==
			    NULL) {
				wse_cert_list_free(&certs, nc);
				return cli_fail("out of memory");
			}
			fx->npubs++;
		}
		wse_cert_list_free(&certs, nc);
	}
	return CLI_EXIT_OK;
}

static int
param_key_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 64)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		    s[i] == '.' || s[i] == '-'))
			return 0;
	return 1;
}

static int
load_params(struct fctx *fx)
{
	size_t i, n = wse_config_count(fx->c.cfg, "", "form_param");

	if (n > WSE_FORMTYPE_MAX_PARAMS)
		return cli_fail("%s: more than %d \"form_param\" lines",
		    fx->c.config_path, WSE_FORMTYPE_MAX_PARAMS);
	for (i = 0; i < n; i++) {
		const char *v = wse_config_get_nth(fx->c.cfg, "", "form_param",
		    i), *eq;
		char *p;

		if (v == NULL || (eq = strchr(v, '=')) == NULL ||
		    !param_key_ok(v, (size_t)(eq - v)) ||
		    !term_utf8_ok(eq + 1, strlen(eq + 1)))
			return cli_fail("%s: form_param \"%s\": use "
			    "\"form_param = KEY=VALUE\" (KEY of letters, "
			    "digits, . _ -)", fx->c.config_path,
			    v != NULL ? v : "");
		if ((p = strdup(v)) == NULL)
			return cli_fail("out of memory");
		p[eq - v] = '\0';
		fx->params[fx->nparams] = p;
		fx->pkeys[fx->nparams] = p;
		fx->pvals[fx->nparams] = p + (eq - v) + 1;
		fx->nparams++;
	}
	return CLI_EXIT_OK;
}

static int
fctx_open(struct fctx *fx, const char *config)
{
	const char *v;
	int rc;

	memset(fx, 0, sizeof(*fx));
	if ((rc = cli_open(&fx->c, config)) != CLI_EXIT_OK ||
	    (rc = load_publishers(fx)) != CLI_EXIT_OK ||
	    (rc = load_params(fx)) != CLI_EXIT_OK)
		return rc;
	v = wse_config_get(fx->c.cfg, "", "form_cache");
	if (v != NULL && *v != '\0') {
		if ((size_t)snprintf(fx->cache, sizeof(fx->cache), "%s", v) >=
		    sizeof(fx->cache))
			return cli_fail("%s: form_cache is too long",
			    fx->c.config_path);
	} else if (fx->c.state_dir[0] != '\0' &&
	    (size_t)snprintf(fx->cache, sizeof(fx->cache), "%s/forms",
	    fx->c.state_dir) >= sizeof(fx->cache))
		fx->cache[0] = '\0';
	return CLI_EXIT_OK;
}

static int
fctx_login(struct fctx *fx)
{
	int rc;

	if (fx->logged_in)
		return CLI_EXIT_OK;
	if ((rc = cli_login(&fx->c)) == CLI_EXIT_OK)
		fx->logged_in = 1;
	return rc;
}

/* A directory of ours that others cannot write, made 0700 if missing. */
static int
private_dir(const char *path)
{
	struct stat sb;

	if (mkdir(path, 0700) == -1 && errno != EEXIST)
		return cli_fail("cannot make %s: %s", path, strerror(errno));
	if (stat(path, &sb) == -1)
		return cli_fail("%s: %s", path, strerror(errno));
	if (!S_ISDIR(sb.st_mode))
		return cli_fail("%s is not a directory", path);
	if (sb.st_uid != geteuid() || (sb.st_mode & 022) != 0)
		return cli_fail("%s must belong to you and not be writable by "
		    "others (chmod 700 it)", path);
	return CLI_EXIT_OK;
}

/* The plugin cache: form_cache, default state_dir/forms. */
static int
cache_ready(struct fctx *fx)
{
	int rc;

	if (fx->cache_ready)
		return CLI_EXIT_OK;
	if (fx->cache[0] == '\0')
		return cli_fail("no directory for form types: set form_cache "
		    "or state_dir in %s (or HOME)", fx->c.config_path);
	if (wse_config_get(fx->c.cfg, "", "form_cache") == NULL &&
	    (rc = private_dir(fx->c.state_dir)) != CLI_EXIT_OK)
		return rc;
	if ((rc = private_dir(fx->cache)) != CLI_EXIT_OK)
		return rc;
	fx->cache_ready = 1;
	return CLI_EXIT_OK;
}

static void
type_env(struct fctx *fx, const char *url, wse_formtype_env *env)
{
	memset(env, 0, sizeof(*env));
	env->cache_dir = fx->cache;
	env->http = fx->c.http;
	env->connect_addr = url != NULL ? cli_connect_for(&fx->c, url) : NULL;
	env->publishers = fx->pubs;
	env->npublishers = fx->npubs;
	env->now = (int64_t)time(NULL);
}

/*
 * The trust store for forms.  With CRLs configured it is the client's
 * own; without, a store of the roots that does check revocation -- and,
 * having no CRL, fails closed on every chain.  A form is a standing
 * authorisation: it is never accepted with revocation unchecked.
 */
static wse_trust *
form_trust(struct fctx *fx)
{
	if (fx->c.crls_checked)
		return fx->c.trust;
	if (fx->ftrust != NULL)
		return fx->ftrust;
	if (wse_trust_new(&fx->ftrust) != WSE_OK ||
	    wse_trust_load_roots(fx->ftrust, wse_config_get(fx->c.cfg, "",
	    "roots")) != WSE_OK) {
		wse_trust_free(&fx->ftrust);
		cli_fail("roots");
		return NULL;
	}
	return fx->ftrust;
}

/* ---- a form at hand ---- */

static void
held_clear(struct held *h)
{
	wse_form_report_clear(&h->rep);
	wse_form_free(&h->form);
	wse_buf_free(&h->file);
	cli_e2e_clear(&h->e);
	memset(h, 0, sizeof(*h));
}

/* The error stack as the report's reason (the first failure wins). */
static void
held_refuse(struct held *h, wse_status st, const char *what)
{
	char errs[WSE_ERR_DEPTH * (WSE_ERR_MSGLEN + 2)];

	h->vst = st;
	h->rep.status = st;
	(void)snprintf(h->rep.reason, sizeof(h->rep.reason), "%s%s%s", what,
	    wse_err_count() > 0 ? ": " : "",
	    wse_err_count() > 0 ? wse_err_format(errs, sizeof(errs)) : "");
	wse_err_clear();
}

/*
 * Parse and verify the bytes at h->data under policy pol.  The verdict
 * goes to h->vst and h->rep; a CRL that is missing because none is
 * configured is said so.
 */
static int
held_verify(struct fctx *fx, struct held *h, const wse_form_policy *pol)
{
	wse_trust *trust;
	wse_status st;
	size_t n;

	wse_form_report_clear(&h->rep);
	wse_form_free(&h->form);
	h->ct = NULL;
	if ((trust = form_trust(fx)) == NULL)
		return CLI_EXIT_FAIL;
	if ((st = wse_form_parse(h->data, h->len, NULL, &h->form)) !=
	    WSE_OK) {
		held_refuse(h, st, "malformed");
		return CLI_EXIT_OK;
	}
	st = wse_form_verify(h->form, trust, (int64_t)time(NULL), pol,
	    &h->rep);
	wse_err_clear();
	h->vst = st;
	if (st == WSE_OK && ((h->ct = wse_form_content_get(h->form)) ==
	    NULL || wse_form_state(h->form, &h->state) != WSE_OK)) {
		held_refuse(h, WSE_ERR_INTERNAL, "the verified form cannot be "
		    "read");
		h->ct = NULL;
	}
	if (st == WSE_ERR_TEMPFAIL && !fx->c.crls_checked &&
	    (n = strlen(h->rep.reason)) < sizeof(h->rep.reason))
		(void)snprintf(h->rep.reason + n, sizeof(h->rep.reason) - n,
		    " (no \"crl\" line in %s: revocation cannot be checked, "
		    "so no form verifies; add the root's and the domain CAs' "
		    "CRLs)", fx->c.config_path);
	return CLI_EXIT_OK;
}

/* Fetch message id (verified as "read" does) and take its form. */
static int
held_from_message(struct fctx *fx, long long id, struct held *h,
    const wse_form_policy *pol)
{
	const wse_attachment *a;
	int rc;

	h->id = id;
	if ((rc = fctx_login(fx)) != CLI_EXIT_OK ||
	    (rc = cli_fetch_message(&fx->c, id, &h->e)) != CLI_EXIT_OK)
		return rc;
	if (h->e.m == NULL) {
		fprintf(stderr, "%s: message %lld cannot be read: ", CLI_PROG,
		    id);
		term_put(stderr, h->e.why_not_shown, 0, 200);
		fputc('\n', stderr);
		return CLI_EXIT_FAIL;
	}
	if ((a = wse_formtype_find_attachment(h->e.m)) == NULL ||
	    a->data == NULL) {
		h->noform = 1;
		if (h->quiet)
			return CLI_EXIT_FAIL;
		fprintf(stderr, "%s: message %lld carries no form (no "
		    "attachment of type %s)\n", CLI_PROG, id,
		    WSE_FORM_MEDIA_TYPE);
		return CLI_EXIT_FAIL;
	}
	h->data = wse_buf_data(a->data);
	h->len = wse_buf_len(a->data);
	return held_verify(fx, h, pol);
}

static int
held_from_file(struct fctx *fx, const char *path, struct held *h,
    const wse_form_policy *pol)
{
	h->path = path;
	if (wse_buf_read_file(path, WSE_FORM_MAX_BYTES, &h->file) != WSE_OK)
		return cli_fail("%s", path);
	h->data = wse_buf_data(h->file);
	h->len = wse_buf_len(h->file);
	return held_verify(fx, h, pol);
}

/* "ID" or "--file FILE": the form, verified under pol. */
static int
held_get(struct fctx *fx, const struct cli_cmd *cmd, const char *idarg,
    const char *file, struct held *h, const wse_form_policy *pol)
{
	long long id;

	if (file != NULL)
		return held_from_file(fx, file, h, pol);
	if (cli_number(idarg, 1, INT64_MAX, &id) != 0)
		return cli_usage(cmd, "'%s' is not a message id", idarg);
	return held_from_message(fx, id, h, pol);
}

/* "message 12" or "FILE", for messages. */
static void
held_name(const struct held *h, FILE *f)
{
	if (h->path != NULL)
		term_put(f, h->path, 0, 200);
	else
		fprintf(f, "message %lld", h->id);
}

/* The first 8 hex digits of a form id. */
static const char *
short_id(const char *id)
{
	const char *p = strncmp(id, "urn:uuid:", 9) == 0 ? id + 9 : id;
	static char s[9];
	size_t n = strnlen(p, 8);

	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* "wsemail: <form> does not verify: <reason>" on stderr. */
static int
held_invalid(const struct held *h, int with_reason)
{
	fprintf(stderr, "%s: the form in ", CLI_PROG);
	held_name(h, stderr);
	fprintf(stderr, " does not verify (%s)", wse_fault_subcode(h->vst));
	if (with_reason) {
		fputs(": ", stderr);
		term_put(stderr, h->rep.reason, 0, 0);
	}
	fputc('\n', stderr);
	return CLI_EXIT_FAIL;
}

/* ---- the type plugin ---- */

static const char *
refusal(wse_status st)
{
	switch (st) {
	case WSE_ERR_UNTRUSTED:
		return "untrusted (its publisher is none of the \"publisher\" "
		    "certificates you trust)";
	case WSE_ERR_BAD_SIGNATURE:
		return "tampered (its signature or digest does not match)";
	case WSE_ERR_CERT_EXPIRED:
	case WSE_ERR_CERT_NOT_YET_VALID:
		return "its publisher's certificate is not valid now";
	case WSE_ERR_TEMPFAIL:
		return "it cannot be fetched now";
	default:
		return "it is not usable";
	}
}

/*
 * Load the type of a verified form.  On failure *why gets the reason
 * (from the error stack) and the status is returned; nothing printed.
 */
static wse_status
load_type(struct fctx *fx, const wse_form_content *ct, wse_formtype **ft,
    char *why, size_t size)
{
	wse_formtype_env env;
	char errs[WSE_ERR_DEPTH * (WSE_ERR_MSGLEN + 2)];
	wse_status st;

	*ft = NULL;
	why[0] = '\0';
	if (fx->npubs == 0) {
		(void)snprintf(why, size, "untrusted (no \"publisher\" "
		    "certificate in %s: no form type is trusted)",
		    fx->c.config_path);
		return WSE_ERR_UNTRUSTED;
	}
	if (cache_ready(fx) != CLI_EXIT_OK) {
		(void)snprintf(why, size, "no plugin cache directory");
		return WSE_ERR_IO;
	}
	type_env(fx, ct->plugin_url, &env);
	if ((st = wse_formtype_load(&env, ct, ft)) != WSE_OK) {
		/* The newest message says it; older ones repeat it. */
		(void)snprintf(why, size, "%s: %s", refusal(st),
		    wse_err_count() > 0 ? wse_err_last() :
		    wse_err_format(errs, sizeof(errs)));
		wse_err_clear();
	}
	return st;
}

/* The value handed to the plugin's entry points. */
static wse_status
form_value(struct fctx *fx, const struct held *h, wse_luabox_value **v)
{
	return wse_formtype_form_value(h->form, &h->rep, fx->c.address,
	    fx->pkeys, fx->pvals, fx->nparams, v);
}

/* ---- sending a form on ---- */

static int
mark_read(struct fctx *fx, long long id)
{
	struct cli_reply r;
	char payload[256];
	int rc;

	(void)snprintf(payload, sizeof(payload), "<m:MarkRead xmlns:m=\""
	    WSE_NS_WSE "\"><m:Id>%lld</m:Id><m:Read>true</m:Read>"
	    "</m:MarkRead>", id);
	rc = cli_call(&fx->c, "MarkRead", payload, 0, &r);
	cli_reply_clear(&r);
	return rc;
}

/* Printable ASCII only (for a subject built from plugin text). */
static void
plain(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < ' ' || (unsigned char)*s >= 0x7f)
			*s = '?';
}

/*
 * Mail the serialised form to `to` from the user, with subject and body,
 * through our own server (logged in).  The message id goes to msgid.
 */
static int
send_form(struct fctx *fx, const wse_buf *xml, const char *to,
    const char *subject, const char *body, char msgid[WSE_UUID_URN_LEN + 1])
{
	struct cli_reply r;
	wse_msg *m = NULL;
	wse_buf *payload = NULL;
	char *id = NULL;
	int rc = CLI_EXIT_FAIL;

	memset(&r, 0, sizeof(r));
	if (wse_msg_new(&m) != WSE_OK ||
	    wse_msg_set(m, "from", fx->c.address) != WSE_OK ||
	    wse_msg_add_rcpt(m, to, 0) != WSE_OK ||
	    wse_msg_set(m, "subject", subject) != WSE_OK ||
	    wse_msg_set(m, "text", body) != WSE_OK ||
	    wse_msg_add_attachment(m, WSE_FORM_ATTACHMENT,
	    WSE_FORM_MEDIA_TYPE, wse_buf_data(xml), wse_buf_len(xml)) !=
	    WSE_OK) {
		rc = cli_fail("cannot build the message to %s", to);
		goto out;
	}
	if ((payload = wse_buf_new(fx->c.lim.max_message_bytes)) == NULL) {
		rc = cli_fail("out of memory");
		goto out;
	}
	if (wse_buf_puts(payload, "<m:Submit xmlns:m=\"" WSE_NS_WSE "\">") !=
	    WSE_OK || wse_msg_to_xml(m, payload) != WSE_OK ||
	    wse_buf_puts(payload, "</m:Submit>") != WSE_OK) {
		wse_err_clear();
		rc = cli_fail("the message is larger than the limit of %zu "
		    "bytes", fx->c.lim.max_message_bytes);
		goto out;
	}
	if ((rc = cli_call(&fx->c, "Submit", wse_buf_str(payload), 0, &r)) !=
	    CLI_EXIT_OK)
		goto out;
	if ((id = cli_child_text(r.payload, "Id", 128)) == NULL ||
	    !wse_uuid_urn_valid(id)) {
		rc = cli_fail("the server's SubmitResponse holds no message "
		    "id");
		goto out;
	}
	(void)snprintf(msgid, WSE_UUID_URN_LEN + 1, "%s", id);
	rc = CLI_EXIT_OK;
out:
	free(id);
	wse_buf_free(&payload);
	wse_msg_free(&m);
	cli_reply_clear(&r);
	return rc;
}

/* "forms@b.test (router b.test)" and the like, for the output. */
static void
describe_next(const wse_form *form, const char *to)
{
	wse_form_state_info s;

	term_put(stdout, to, 0, 0);
	if (wse_form_state(form, &s) != WSE_OK) {
		wse_err_clear();
		return;
	}
	switch (s.phase) {
	case WSE_FORM_ROUTER:
		fputs(" (the router of ", stdout);
		term_put(stdout, s.party, 0, 0);
		fputs(")", stdout);
		break;
	case WSE_FORM_APPROVER:
		fputs(" (approver", stdout);
		if (s.approver != NULL && s.party != NULL &&
		    strcmp(s.approver, s.party) != 0) {
			fputs(", for ", stdout);
			term_put(stdout, s.approver, 0, 0);
		}
		fputs(")", stdout);
		break;
	case WSE_FORM_FINAL:
		fputs(" (the final party ", stdout);
		term_put(stdout, s.party, 0, 0);
		printf("; outcome %s)", wse_form_outcome_name(s.outcome));
		break;
	default:
		break;
	}
}

/* ---- submit ---- */

static int
hex64_lower(const char *s, char out[65])
{
	size_t i;

	if (strlen(s) != 64)
		return -1;
	for (i = 0; i < 64; i++) {
		char ch = s[i];

		if (ch >= 'A' && ch <= 'F')
			ch = (char)(ch + 32);
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			return -1;
		out[i] = ch;
	}
	out[64] = '\0';
	return 0;
}

/* GET url (at most max bytes) into *out. */
static int
fetch_url(struct fctx *fx, const char *url, size_t max, wse_buf **out)
{
	long status = 0;
	wse_status st;

	if ((*out = wse_buf_new(max)) == NULL)
		return cli_fail("out of memory");
	st = wse_http_get(fx->c.http, url, cli_connect_for(&fx->c, url), max,
	    *out, &status);
	if (st != WSE_OK) {
		fputs(CLI_PROG ": cannot fetch ", stderr);
		term_put(stderr, url, 0, 200);
		return cli_fail_tail();
	}
	if (status != 200) {
		wse_err_clear();
		fputs(CLI_PROG ": ", stderr);
		term_put(stderr, url, 0, 200);
		fprintf(stderr, " answered with HTTP status %ld\n", status);
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

/* Lower-case copy of s into out: 0, or -1 when it does not fit. */
static int
lower_copy(const char *s, char *out, size_t size)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i + 1 >= size)
			return -1;
		out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) :
		    s[i];
	}
	out[i] = '\0';
	return 0;
}

static const wse_formtype_fielddef *
find_fielddef(const wse_formtype_def *def, const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < def->nfields; i++)
		if (strlen(def->fields[i].name) == n &&
		    strncmp(def->fields[i].name, name, n) == 0)
			return &def->fields[i];
	return NULL;
}

static void
list_fields(const wse_formtype_def *def)
{
	size_t i;

	fputs("its fields:", stderr);
	for (i = 0; i < def->nfields; i++) {
		fputc(' ', stderr);
		term_put(stderr, def->fields[i].name, 0, 0);
		fprintf(stderr, " (%s%s)",
		    wse_form_ftype_name(def->fields[i].type),
		    def->fields[i].required ? ", required" : "");
	}
	fputc('\n', stderr);
}

/* Check the --field names against the definition (every one known,
 * none twice, every required one given); with a form, also add the
 * values to it, typed as the definition says. */
static int
fill_fields(wse_form *form, const wse_formtype_def *def,
    const struct cli_list *fields)
{
	const wse_formtype_fielddef *fd;
	char *given;
	size_t i, k;
	int rc = CLI_EXIT_OK;

	if ((given = calloc(def->nfields + 1, 1)) == NULL)
		return cli_fail("out of memory");
	for (i = 0; i < fields->n; i++) {
		const char *f = fields->v[i], *eq = strchr(f, '=');

		if (eq == NULL || eq == f) {
			rc = cli_usage(&sub_submit, "--field %s: use "
			    "NAME=VALUE", f);
			goto out;
		}
		if ((fd = find_fielddef(def, f, (size_t)(eq - f))) == NULL) {
			fprintf(stderr, "%s: the type %s has no field \"",
			    CLI_PROG, def->name);
			term_put(stderr, f, 0, (size_t)(eq - f) < 64 ?
			    (size_t)(eq - f) : 64);
			fputs("\"; ", stderr);
			list_fields(def);
			rc = CLI_EXIT_FAIL;
			goto out;
		}
		k = (size_t)(fd - def->fields);
		if (given[k]) {
			rc = cli_fail("--field %s is given twice", fd->name);
			goto out;
		}
		given[k] = 1;
		if (form == NULL)
			continue;
		if (!term_utf8_ok(eq + 1, strlen(eq + 1)) ||
		    wse_form_add_field(form, fd->name, fd->type, eq + 1) !=
		    WSE_OK) {
			fprintf(stderr, "%s: --field %s (%s): ", CLI_PROG,
			    fd->name, wse_form_ftype_name(fd->type));
			term_put(stderr, wse_err_count() > 0 ? wse_err_last() :
			    "not UTF-8 text", 0, 300);
			fputc('\n', stderr);
			wse_err_clear();
			rc = CLI_EXIT_FAIL;
			goto out;
		}
	}
	for (k = 0; k < def->nfields; k++)
		if (def->fields[k].required && !given[k]) {
			fprintf(stderr, "%s: the field %s is required (",
			    CLI_PROG, def->fields[k].name);
			term_put(stderr, def->fields[k].label, 0, 100);
			fprintf(stderr, "): --field %s=VALUE\n",
			    def->fields[k].name);
			rc = CLI_EXIT_FAIL;
		}
out:
	free(given);
	return rc;
}

static int
form_submit(int argc, char **argv, const char *config)
{
	struct cli_list fields = { NULL, 0 }, route = { NULL, 0 };
	const char *final = NULL, *sha = NULL, *pos[1], *url;
	const struct cli_opt opts[] = {
		{ "--field", NULL, &fields },
		{ "--route", NULL, &route },
		{ "--final", &final, NULL },
		{ "--sha256", &sha, NULL },
	};
	struct fctx fx;
	struct cli_token t;
	wse_formtype_env env;
	wse_formtype *ft = NULL;
	wse_formtype_def def;
	const wse_pubsig_info *info;
	wse_form *form = NULL;
	wse_form_type type;
	wse_form_signer sg;
	const wse_form_content *ct;
	wse_buf *file = NULL, *sig = NULL, *xml = NULL, *body = NULL;
	char pin[65], sigurl[WSE_FORM_URL_MAX + 8], host[256];
	char to[WSE_FORM_PARTY_MAX + 16], subject[1024], title[128];
	char lc[WSE_FORM_PARTY_MAX], msgid[WSE_UUID_URN_LEN + 1];
	const char *fin;
	wse_status st;
	long port;
	size_t i;
	int rc, npos;

	memset(&fx, 0, sizeof(fx));
	memset(&t, 0, sizeof(t));
	memset(&def, 0, sizeof(def));
	if ((rc = cli_parse(&sub_submit, argc, argv, opts, 4, &config, pos,
	    &npos, 1)) != 0)
		goto out;
	rc = CLI_EXIT_USAGE;
	if (npos != 1) {
		rc = cli_usage(&sub_submit, "the URL of the form type's "
		    "plugin, please");
		goto out;
	}
	url = pos[0];
	if (strlen(url) > WSE_FORM_URL_MAX ||
	    cli_url_host(url, host, sizeof(host), &port) != 0) {
		rc = cli_usage(&sub_submit, "'%s' is not an https:// URL of at "
		    "most %d bytes", url, WSE_FORM_URL_MAX);
		goto out;
	}
	if (sha != NULL && hex64_lower(sha, pin) != 0) {
		rc = cli_usage(&sub_submit, "--sha256: 64 hex digits, please");
		goto out;
	}
	if (route.n > WSE_FORM_MAX_HOPS) {
		rc = cli_usage(&sub_submit, "at most %d --route hops",
		    WSE_FORM_MAX_HOPS);
		goto out;
	}
	if (fields.n > WSE_FORM_MAX_FIELDS) {
		rc = cli_usage(&sub_submit, "at most %d --field values",
		    WSE_FORM_MAX_FIELDS);
		goto out;
	}
	if ((rc = fctx_open(&fx, config)) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	if (fx.npubs == 0) {
		rc = cli_fail("no \"publisher\" certificate in %s: no form "
		    "type is trusted", fx.c.config_path);
		goto out;
	}

	/* The type: fetched, verified against our publishers, loaded. */
	(void)snprintf(sigurl, sizeof(sigurl), "%s.sig", url);
	if ((rc = fetch_url(&fx, url, WSE_FORMTYPE_MAX_PLUGIN, &file)) !=
	    CLI_EXIT_OK ||
	    (rc = fetch_url(&fx, sigurl, WSE_PUBSIG_FILE_MAX, &sig)) !=
	    CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	type_env(&fx, url, &env);
	if ((rc = cache_ready(&fx)) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	if ((st = wse_formtype_load_bytes(&env, wse_buf_data(file),
	    wse_buf_len(file), wse_buf_str(sig), wse_buf_len(sig), NULL,
	    sha != NULL ? pin : NULL, &ft)) != WSE_OK) {
		fputs(CLI_PROG ": the form type at ", stderr);
		term_put(stderr, url, 0, 200);
		fprintf(stderr, " is refused: %s", refusal(st));
		rc = cli_fail_tail();
		goto out;
	}
	info = wse_formtype_info(ft);
	if (wse_formtype_definition(ft, &def) != WSE_OK) {
		rc = cli_fail("the form type %s: definition()", info->name);
		goto out;
	}

	/* The draft. */
	if ((rc = fill_fields(NULL, &def, &fields)) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	fin = final != NULL ? final : def.final_party;
	if (fin != NULL && lower_copy(fin, lc, sizeof(lc)) == 0)
		fin = lc;
	if (fin == NULL || *fin == '\0') {
		rc = cli_fail("the type %s names no final party: give --final "
		    "DOMAIN", info->name);
		goto out;
	}
	memset(&type, 0, sizeof(type));
	type.name = info->name;
	type.version = info->version;
	type.plugin_url = url;
	type.plugin_sha256 = info->sha256;
	if (wse_form_new(fx.c.address, &type, fin, &form) != WSE_OK) {
		rc = cli_fail("cannot make the form");
		goto out;
	}
	if ((rc = fill_fields(form, &def, &fields)) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	if (route.n > 0) {
		for (i = 0; i < route.n; i++)
			if (lower_copy(route.v[i], lc, sizeof(lc)) != 0 ||
			    wse_form_add_hop(form, strchr(lc, '@') != NULL ?
			    WSE_HOP_APPROVER : WSE_HOP_ROUTER, lc) != WSE_OK) {
				rc = cli_fail("--route %s", route.v[i]);
				goto out;
			}
	} else {
		for (i = 0; i < def.nroute; i++)
			if (wse_form_add_hop(form, def.route[i].kind,
			    def.route[i].name) != WSE_OK) {
				rc = cli_fail("the type's route (%s)",
				    def.route[i].name);
				goto out;
			}
	}

	/* Signed with our token, sent through our server. */
	if ((rc = fctx_login(&fx)) != CLI_EXIT_OK ||
	    (rc = cli_token_get(&fx.c, 0, &t)) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	sg.key = t.key;
	sg.cert = t.chain[0];
	sg.ca = t.chain[1];
	if (wse_form_sign_submit(form, &sg, (int64_t)time(NULL)) != WSE_OK) {
		rc = cli_fail("cannot sign the form");
		goto out;
	}
	ct = wse_form_content_get(form);
	if (ct == NULL || (xml = wse_buf_new(WSE_FORM_MAX_BYTES)) == NULL ||
	    wse_form_serialize(form, xml) != WSE_OK ||
	    wse_formtype_next_address(form, NULL, to, sizeof(to)) != WSE_OK) {
		rc = cli_fail("cannot serialise the form");
		goto out;
	}
	(void)snprintf(title, sizeof(title), "%s", def.title[0] != '\0' ?
	    def.title : info->name);
	plain(title);
	(void)snprintf(subject, sizeof(subject), FORM_SUBJECT_PREFIX
	    "%s %s: %s from %s", ct->type_name, short_id(ct->id), title,
	    fx.c.address);
	if ((body = wse_buf_new(4096)) == NULL ||
	    wse_buf_printf(body, "A routed form of type %s %s (%s) from %s.\n"
	    "Form id: %s\nIt is attached as %s; see it with \"wsemail form "
	    "show ID\".\n", ct->type_name, ct->type_version, title,
	    ct->claimant, ct->id, WSE_FORM_ATTACHMENT) != WSE_OK) {
		rc = cli_fail("out of memory");
		goto out;
	}
	if ((rc = send_form(&fx, xml, to, subject, wse_buf_str(body),
	    msgid)) != CLI_EXIT_OK)
		goto out;
	printf("submitted form %s (%s %s, %zu field%s)\nsent to ", ct->id,
	    ct->type_name, ct->type_version, ct->nfields,
	    ct->nfields == 1 ? "" : "s");
	describe_next(form, to);
	printf(" as message %s\n", msgid);
	rc = CLI_EXIT_OK;
out:
	free(fields.v);
	free(route.v);
	wse_buf_free(&file);
	wse_buf_free(&sig);
	wse_buf_free(&xml);
	wse_buf_free(&body);
	wse_form_free(&form);
	wse_formtype_def_clear(&def);
	wse_formtype_free(&ft);
	cli_token_clear(&t);
	fctx_close(&fx);
	return rc;
}

/* ---- list ---- */

/* The state of a verified form, for this user, in a few words. */
static void
put_state(struct fctx *fx, const struct held *h)
{
	const wse_form_state_info *s = &h->state;

	if (h->vst != WSE_OK || h->ct == NULL) {
		fputs("INVALID: ", stdout);
		term_put(stdout, h->rep.reason, 0, 160);
		return;
	}
	switch (s->phase) {
	case WSE_FORM_CLOSED:
		fputs(wse_form_outcome_name(s->outcome), stdout);
		break;
	case WSE_FORM_APPROVER:
		if (s->party != NULL && strcmp(s->party, fx->c.address) == 0) {
			fputs("your turn", stdout);
			if (s->approver != NULL &&
			    strcmp(s->approver, s->party) != 0) {
				fputs(" (for ", stdout);
				term_put(stdout, s->approver, 0, 0);
				fputc(')', stdout);
			}
			break;
		}
		/* FALLTHROUGH */
	case WSE_FORM_ROUTER:
		fputs("waiting for ", stdout);
		term_put(stdout, s->party != NULL ? s->party : "?", 0, 0);
		break;
	case WSE_FORM_FINAL:
		printf("%s, waiting for the final party ",
		    wse_form_outcome_name(s->outcome));
		term_put(stdout, s->party != NULL ? s->party : "?", 0, 0);
		break;
	default:
		fputs(wse_form_phase_name(s->phase), stdout);
		break;
	}
}

/* A message that may carry a form: its subject says so, or it comes
 * from a forms service mailbox.  Only a hint: each is fetched and its
 * form verified. */
static int
maybe_form(const char *subject, const char *from)
{
	size_t n = strlen(WSE_FORM_MAILBOX);

	if (subject != NULL && strncasecmp(subject, FORM_SUBJECT_PREFIX,
	    strlen(FORM_SUBJECT_PREFIX)) == 0)
		return 1;
	return from != NULL && strncasecmp(from, WSE_FORM_MAILBOX, n) == 0 &&
	    from[n] == '@';
}

static int
form_list(int argc, char **argv, const char *config)
{
	const char *limit_s = NULL, *pos[1];
	const struct cli_opt opts[] = {
		{ "--limit", &limit_s, NULL },
	};
	struct fctx fx;
	struct cli_reply r;
	long long limit = FORM_LIST_DEFAULT, ids[FORM_FETCH_MAX];
	int unread[FORM_FETCH_MAX];
	size_t i, n = 0, skipped = 0, n_noform = 0;
	char payload[256];
	xmlNodePtr hd;
	int rc, npos, failed = 0;

	memset(&fx, 0, sizeof(fx));
	memset(&r, 0, sizeof(r));
	if ((rc = cli_parse(&sub_list, argc, argv, opts, 1, &config, pos,
	    &npos, 0)) != 0)
		return rc;
	if (limit_s != NULL && cli_number(limit_s, 1, FORM_LIST_MAX, &limit))
		return cli_usage(&sub_list, "--limit: '%s' is not a number "
		    "from 1 to %d", limit_s, FORM_LIST_MAX);
	if ((rc = fctx_open(&fx, config)) != CLI_EXIT_OK ||
	    (rc = fctx_login(&fx)) != CLI_EXIT_OK)
		goto out;
	(void)snprintf(payload, sizeof(payload), "<m:ListHeaders xmlns:m=\""
	    WSE_NS_WSE "\"><m:Offset>0</m:Offset><m:Limit>%lld</m:Limit>"
	    "</m:ListHeaders>", limit);
	if ((rc = cli_call(&fx.c, "ListHeaders", payload, 0, &r)) !=
	    CLI_EXIT_OK)
		goto out;
	/* The candidates, newest first, at most FORM_FETCH_MAX fetched. */
	for (hd = wse_xml_first_elem(r.payload); hd != NULL;
	    hd = wse_xml_next_elem(hd)) {
		const char *id_s = wse_xml_attr(hd, NULL, "id");
		const char *un = wse_xml_attr(hd, NULL, "unread");
		char *subject, *from;
		long long id;

		if (!wse_xml_is(hd, WSE_NS_WSE, "Header") || id_s == NULL ||
		    cli_number(id_s, 1, INT64_MAX, &id) != 0)
			continue;
		subject = cli_child_text(hd, "Subject",
		    4 * WSE_MSG_SUBJECT_MAX);
		from = cli_child_text(hd, "From", WSE_ADDR_MAX + 1);
		if (maybe_form(subject, from)) {
			if (n < FORM_FETCH_MAX) {
				unread[n] = un != NULL &&
				    strcmp(un, "true") == 0;
				ids[n++] = id;
			} else
				skipped++;
		}
		free(subject);
		free(from);
	}
	cli_reply_clear(&r);
	wse_err_clear();
	printf("%6s %s %-8s %-12s %-28s %s\n", "ID", "N", "FORM", "TYPE",
	    "CLAIMANT", "STATE");
	for (i = 0; i < n; i++) {
		struct held h;

		memset(&h, 0, sizeof(h));
		h.quiet = 1;
		if (held_from_message(&fx, ids[i], &h, NULL) != CLI_EXIT_OK) {
			if (!h.noform)
				failed = 1;
			else
				n_noform++;
			held_clear(&h);
			continue;
		}
		printf("%6lld %s ", ids[i], unread[i] ? "N" : " ");
		if (h.ct != NULL) {
			printf("%-8s ", short_id(h.ct->id));
			term_cell(stdout, h.ct->type_name, 12);
			fputc(' ', stdout);
			term_cell(stdout, h.ct->claimant, 28);
			fputc(' ', stdout);
		} else
			printf("%-8s %-12s %-28s ", "?", "?", "?");
		put_state(&fx, &h);
		fputc('\n', stdout);
		held_clear(&h);
	}
	n -= n_noform;
	printf("%zu form%s", n, n == 1 ? "" : "s");
	if (skipped > 0)
		printf(" (and %zu more not shown: at most %d are fetched; "
		    "delete or read older ones)", skipped, FORM_FETCH_MAX);
	printf(" among the newest %lld messages\n", limit);
	rc = failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
	cli_reply_clear(&r);
	fctx_close(&fx);
	return rc;
}

/* ---- show ---- */

/* Text of the only child (form namespace) local of el, or NULL. */
static char *
ftext(const xmlNode *el, const char *local, size_t max)
{
	xmlNodePtr n;
	char *s = NULL;

	if (wse_xml_only_child(el, WSE_NS_FORM, local, &n) != WSE_OK ||
	    wse_xml_text_dup(n, max, &s) != WSE_OK) {
		wse_err_clear();
		return NULL;
	}
	return s;
}

/*
 * The records, read back from the verified bytes (the parser has checked
 * their fixed shape and the verifier every signature over them).
 */
static void
print_records(const struct held *h)
{
	static const char *const keys[] = { "For", "Verdict", "To", "At",
	    "Result", NULL };
	wse_limits lim;
	xmlDocPtr doc = NULL;
	xmlNodePtr rec, el, n;
	size_t k;

	wse_limits_default(&lim);
	if (lim.max_message_bytes > WSE_FORM_MAX_BYTES)
		lim.max_message_bytes = WSE_FORM_MAX_BYTES;
	if (wse_xml_parse(h->data, h->len, &lim, &doc) != WSE_OK) {
		wse_err_clear();
		printf("  (the records cannot be read back)\n");
		return;
	}
	for (rec = wse_xml_first_elem(xmlDocGetRootElement(doc)); rec != NULL;
	    rec = wse_xml_next_elem(rec)) {
		char *pos, *tm, *author, *v, *note, kind[16];
		size_t na = 0;

		if (!wse_xml_is(rec, WSE_NS_FORM, "Record") ||
		    (el = wse_xml_first_elem(rec)) == NULL)
			continue;
		pos = ftext(el, "Position", 8);
		tm = ftext(el, "Time", 32);
		author = ftext(el, "Author", WSE_FORM_PARTY_MAX);
		printf("  %3s. ", pos != NULL ? pos : "?");
		for (k = 0; k < sizeof(kind) - 1 && el->name[k] != '\0'; k++)
			kind[k] = (char)(k == 0 && el->name[k] >= 'A' &&
			    el->name[k] <= 'Z' ? el->name[k] + 32 :
			    el->name[k]);
		kind[k] = '\0';
		term_cell(stdout, kind, 9);
		fputc(' ', stdout);
		term_cell(stdout, author != NULL ? author : "?", 24);
		fputc(' ', stdout);
		term_put(stdout, tm != NULL ? tm : "?", 0, 32);
		for (k = 0; keys[k] != NULL; k++) {
			if ((v = ftext(el, keys[k], WSE_FORM_PARTY_MAX)) ==
			    NULL)
				continue;
			printf("  %c%s ", keys[k][0] + 32, keys[k] + 1);
			term_put(stdout, v, 0, 0);
			free(v);
		}
		for (n = wse_xml_first_elem(el); n; n = wse_xml_next_elem(n)) {
			if (!wse_xml_is(n, WSE_NS_FORM, "Approver") ||
			    strcmp((const char *)el->name, "Insert") != 0 ||
			    wse_xml_text_dup(n, WSE_FORM_PARTY_MAX, &v) !=
			    WSE_OK)
				continue;
			fputs(na++ == 0 ? "  inserted " : ", ", stdout);
			term_put(stdout, v, 0, 0);
			free(v);
		}
		if (strcmp((const char *)el->name, "Insert") == 0 && na == 0)
			fputs("  inserted nobody", stdout);
		fputc('\n', stdout);
		if ((note = ftext(el, "Note", 4 * WSE_FORM_NOTE_MAX)) != NULL) {
			fputs("        note: ", stdout);
			term_put(stdout, note, 0, 0);
			fputc('\n', stdout);
			free(note);
		}
		free(pos);
		free(tm);
		free(author);
	}
	wse_err_clear();
	xmlFreeDoc(doc);
}

/* Each hop of the effective route and where it stands. */
static void
print_route(struct fctx *fx, const struct held *h)
{
	const wse_form_state_info *s = &h->state;
	const wse_form_hop *hops;
	size_t i, k, nhops, rejected_hop = 0;

	if (wse_form_route(h->form, &hops, &nhops) != WSE_OK) {
		wse_err_clear();
		return;
	}
	printf("Route:\n");
	if (nhops == 0)
		printf("  (no hops: straight to the final party)\n");
	for (i = 0; i < nhops; i++) {
		const wse_form_hop *hp = &hops[i];
		int done = 0;

		printf("  %2zu. %-8s ", i + 1, hp->kind == WSE_HOP_ROUTER ?
		    "router" : "approver");
		term_cell(stdout, hp->name, 28);
		fputc(' ', stdout);
		if (hp->kind == WSE_HOP_APPROVER) {
			for (k = 0; k < h->rep.napprovals; k++) {
				const wse_form_approval *a =
				    &h->rep.approvals[k];

				if (strcmp(a->approver, hp->name) != 0)
					continue;
				printf("approved");
				if (strcmp(a->signer, hp->name) != 0) {
					fputs(" by ", stdout);
					term_put(stdout, a->signer, 0, 0);
					fputs(" (delegate)", stdout);
				}
				printf(" (record %zu)", a->position);
				done = 1;
				break;
			}
			if (!done && h->rep.rejected_at != 0 &&
			    strcmp(h->rep.rejected_for, hp->name) == 0) {
				fputs("REJECTED by ", stdout);
				term_put(stdout, h->rep.rejected_by, 0, 0);
				printf(" (record %zu)", h->rep.rejected_at);
				rejected_hop = i + 1;
				done = 1;
			}
		}
		if (done) {
			fputc('\n', stdout);
			continue;
		}
		if ((s->phase == WSE_FORM_ROUTER ||
		    s->phase == WSE_FORM_APPROVER) && s->hop == i + 1) {
			if (s->party != NULL &&
			    strcmp(s->party, fx->c.address) == 0)
				fputs("YOUR TURN", stdout);
			else {
				fputs("waiting for ", stdout);
				term_put(stdout, s->party ? s->party : "?", 0,
				    0);
			}
			if (s->delegations > 0)
				printf(" (delegated %u time%s)",
				    s->delegations,
				    s->delegations == 1 ? "" : "s");
		} else if (rejected_hop != 0 && i + 1 > rejected_hop)
			fputs("skipped (the route stopped)", stdout);
		else if (hp->kind == WSE_HOP_ROUTER &&
		    (s->hop == 0 || i + 1 < s->hop))
			fputs("done", stdout);
		else
			fputs("pending", stdout);
		fputc('\n', stdout);
	}
}

static void
print_form(struct fctx *fx, const struct held *h)
{
	const wse_form_content *ct = h->ct;
	const wse_form_state_info *s = &h->state;
	char when[21];
	size_t i;

	fputs("Form ", stdout);
	term_put(stdout, ct->id, 0, 0);
	fputs("\nType: ", stdout);
	term_put(stdout, ct->type_name, 0, 0);
	fputc(' ', stdout);
	term_put(stdout, ct->type_version, 0, 0);
	fputs("  plugin ", stdout);
	term_put(stdout, ct->plugin_url, 0, 0);
	printf("  sha256 %.16s...\n", ct->plugin_sha256);
	fputs("Claimant: ", stdout);
	term_put(stdout, ct->claimant, 0, 0);
	wse_time_format(ct->submitted, when);
	printf("\nSubmitted: %s\nFinal party: ", when);
	term_put(stdout, ct->final_party, 0, 0);
	printf("\nVerified: VALID (%zu record%s)%s\n", s->nrecords,
	    s->nrecords == 1 ? "" : "s", fx->c.crls_checked ? "" :
	    " (revocation not checked)");
	printf("Fields:\n");
	if (ct->nfields == 0)
		printf("  (none)\n");
	for (i = 0; i < ct->nfields; i++) {
		printf("  ");
		term_put(stdout, ct->fields[i].name, 0, 0);
		printf(" (%s): ", wse_form_ftype_name(ct->fields[i].type));
		term_put(stdout, ct->fields[i].value, 0, 0);
		fputc('\n', stdout);
	}
	print_route(fx, h);
	printf("Records:\n");
	print_records(h);
	printf("Outcome: %s", wse_form_outcome_name(s->outcome));
	switch (s->phase) {
	case WSE_FORM_CLOSED:
		printf(" (accepted by the final party)");
		break;
	case WSE_FORM_FINAL:
		fputs(" (the route is done; waiting for the final party ",
		    stdout);
		term_put(stdout, s->party ? s->party : "?", 0, 0);
		fputc(')', stdout);
		break;
	default:
		fputs(s->party != NULL && strcmp(s->party, fx->c.address) ==
		    0 ? " (your turn: wsemail form approve | reject | "
		    "delegate)" : "", stdout);
		break;
	}
	fputc('\n', stdout);
}

/* The type's own view of the form, or why its plugin is refused. */
static void
print_present(struct fctx *fx, const struct held *h)
{
	wse_formtype *ft = NULL;
	wse_luabox_value *v = NULL;
	wse_buf *out = NULL;
	char why[1024];

	if (load_type(fx, h->ct, &ft, why, sizeof(why)) != WSE_OK) {
		fputs("Type plugin: REFUSED: ", stdout);
		term_put(stdout, why, 0, 0);
		if (h->state.phase == WSE_FORM_APPROVER &&
		    h->state.party != NULL &&
		    strcmp(h->state.party, fx->c.address) == 0)
			fputs("\nThe form stays pending for you: you cannot "
			    "approve, reject or delegate a form whose type "
			    "you do not trust.", stdout);
		fputc('\n', stdout);
		return;
	}
	printf("Type plugin: ");
	term_put(stdout, wse_formtype_info(ft)->name, 0, 0);
	fputs(" signed by ", stdout);
	term_put(stdout, wse_formtype_info(ft)->publisher, 0, 0);
	fputc('\n', stdout);
	if ((out = wse_buf_new(1u << 20)) == NULL ||
	    form_value(fx, h, &v) != WSE_OK ||
	    wse_formtype_present(ft, v, out) != WSE_OK) {
		char errs[1024];

		fputs("(the type's presentation failed: ", stdout);
		term_put(stdout, wse_err_format(errs, sizeof(errs)), 0, 300);
		fputs(")\n", stdout);
		wse_err_clear();
	} else {
		fputc('\n', stdout);
		term_put(stdout, wse_buf_str(out), 1, 0);
	}
	wse_buf_free(&out);
	wse_luabox_value_free(&v);
	wse_formtype_free(&ft);
}

static int
form_show(int argc, char **argv, const char *config)
{
	const char *file = NULL, *pos[1];
	const struct cli_opt opts[] = {
		{ "--file", &file, NULL },
	};
	struct fctx fx;
	struct held h;
	int rc, npos;

	memset(&fx, 0, sizeof(fx));
	memset(&h, 0, sizeof(h));
	if ((rc = cli_parse(&sub_show, argc, argv, opts, 1, &config, pos,
	    &npos, 1)) != 0)
		return rc;
	if ((npos == 1) == (file != NULL))
		return cli_usage(&sub_show, "a message id or --file FILE, "
		    "please");
	if (file == NULL && cli_number(pos[0], 1, INT64_MAX, &h.id) != 0)
		return cli_usage(&sub_show, "'%s' is not a message id",
		    pos[0]);
	if ((rc = fctx_open(&fx, config)) != CLI_EXIT_OK ||
	    (rc = held_get(&fx, &sub_show, file == NULL ? pos[0] : NULL, file,
	    &h, NULL)) != CLI_EXIT_OK)
		goto out;
	if (h.id != 0 && !h.e.valid) {
		printf("WARNING: the message carrying it did not verify (%s: ",
		    h.e.subcode);
		term_put(stdout, h.e.detail, 0, 200);
		printf("); the form's own signatures are checked below\n");
	}
	if (h.vst != WSE_OK || h.ct == NULL) {
		fputs("Form in ", stdout);
		held_name(&h, stdout);
		printf(": INVALID (%s): ", wse_fault_subcode(h.vst));
		term_put(stdout, h.rep.reason, 0, 0);
		fputc('\n', stdout);
		rc = held_invalid(&h, 0);
		goto out;
	}
	print_form(&fx, &h);
	print_present(&fx, &h);
	rc = CLI_EXIT_OK;
out:
	held_clear(&h);
	fctx_close(&fx);
	return rc;
}

/* ---- approve, reject, delegate ---- */

enum act { ACT_APPROVE, ACT_REJECT, ACT_DELEGATE };

static int
form_act(enum act act, int argc, char **argv, const char *config)
{
	const struct cli_cmd *cmd = act == ACT_APPROVE ? &sub_approve :
	    act == ACT_REJECT ? &sub_reject : &sub_delegate;
	const char *note = NULL, *pos[2];
	const struct cli_opt opts[] = {
		{ "--note", &note, NULL },
	};
	struct fctx fx;
	struct held h;
	struct cli_token t;
	wse_formtype *ft = NULL;
	wse_form_signer sg;
	wse_buf *xml = NULL, *body = NULL;
	char delegate[WSE_ADDR_MAX + 1], why[1024], subject[1024];
	char to[WSE_FORM_PARTY_MAX + 16], what[WSE_ADDR_MAX + 32];
	char msgid[WSE_UUID_URN_LEN + 1];
	long long id;
	wse_status st;
	int rc, npos;

	memset(&fx, 0, sizeof(fx));
	memset(&h, 0, sizeof(h));
	memset(&t, 0, sizeof(t));
	if ((rc = cli_parse(cmd, argc, argv, opts, act == ACT_DELEGATE ? 0 :
	    1, &config, pos, &npos, act == ACT_DELEGATE ? 2 : 1)) != 0)
		return rc;
	if (npos < 1)
		return cli_usage(cmd, "which message?");
	if (cli_number(pos[0], 1, INT64_MAX, &id) != 0)
		return cli_usage(cmd, "'%s' is not a message id", pos[0]);
	if (act == ACT_DELEGATE) {
		if (npos != 2)
			return cli_usage(cmd, "to whom?");
		if (wse_addr_normalize(pos[1], delegate, sizeof(delegate)) !=
		    WSE_OK) {
			wse_err_clear();
			return cli_usage(cmd, "'%s' is not a mailbox address",
			    pos[1]);
		}
	}
	if (note != NULL && (strlen(note) > WSE_FORM_NOTE_MAX ||
	    !term_utf8_ok(note, strlen(note))))
		return cli_usage(cmd, "--note: UTF-8 text of at most %d bytes, "
		    "please", WSE_FORM_NOTE_MAX);
	if ((rc = fctx_open(&fx, config)) != CLI_EXIT_OK ||
	    (rc = held_from_message(&fx, id, &h, NULL)) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	if (h.vst != WSE_OK || h.ct == NULL) {
		rc = held_invalid(&h, 1);
		goto out;
	}
	if (h.state.phase != WSE_FORM_APPROVER || h.state.party == NULL ||
	    strcmp(h.state.party, fx.c.address) != 0) {
		fprintf(stderr, "%s: form %s is not yours to decide: ",
		    CLI_PROG, short_id(h.ct->id));
		if (h.state.phase == WSE_FORM_CLOSED)
			fprintf(stderr, "it is closed (%s)\n",
			    wse_form_outcome_name(h.state.outcome));
		else {
			fputs("waiting for ", stderr);
			term_put(stderr, h.state.party ? h.state.party : "?",
			    0, 0);
			fputc('\n', stderr);
		}
		goto out;
	}
	/* Never act on a form whose type we do not trust. */
	if ((st = load_type(&fx, h.ct, &ft, why, sizeof(why))) != WSE_OK) {
		fprintf(stderr, "%s: the type %s of form %s is refused: ",
		    CLI_PROG, h.ct->type_name, short_id(h.ct->id));
		term_put(stderr, why, 0, 0);
		fprintf(stderr, "\n%s: the form stays pending: nothing was "
		    "signed or sent\n", CLI_PROG);
		goto out;
	}
	if ((rc = cli_token_get(&fx.c, 0, &t)) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	sg.key = t.key;
	sg.cert = t.chain[0];
	sg.ca = t.chain[1];
	if (act == ACT_DELEGATE)
		st = wse_form_add_delegation(h.form, &sg, delegate,
		    (int64_t)time(NULL));
	else
		st = wse_form_add_decision(h.form, &sg, act == ACT_APPROVE ?
		    WSE_VERDICT_APPROVE : WSE_VERDICT_REJECT, note,
		    (int64_t)time(NULL));
	if (st != WSE_OK) {
		rc = cli_fail("cannot sign the record");
		goto out;
	}
	if ((xml = wse_buf_new(WSE_FORM_MAX_BYTES)) == NULL ||
	    wse_form_serialize(h.form, xml) != WSE_OK ||
	    wse_formtype_next_address(h.form, NULL, to, sizeof(to)) !=
	    WSE_OK) {
		rc = cli_fail("cannot serialise the form");
		goto out;
	}
	if (act == ACT_DELEGATE)
		(void)snprintf(what, sizeof(what), "delegated to %s",
		    delegate);
	else
		(void)snprintf(what, sizeof(what), "%s by %s",
		    act == ACT_APPROVE ? "approved" : "rejected",
		    fx.c.address);
	(void)snprintf(subject, sizeof(subject), FORM_SUBJECT_PREFIX
	    "%s %s: %s", h.ct->type_name, short_id(h.ct->id), what);
	if ((body = wse_buf_new(8192)) == NULL ||
	    wse_buf_printf(body, "A routed form of type %s from %s, %s.\n"
	    "Form id: %s\nIt is attached as %s; see it with \"wsemail form "
	    "show ID\".\n", h.ct->type_name, h.ct->claimant, what,
	    h.ct->id, WSE_FORM_ATTACHMENT) != WSE_OK) {
		rc = cli_fail("out of memory");
		goto out;
	}
	if ((rc = send_form(&fx, xml, to, subject, wse_buf_str(body),
	    msgid)) != CLI_EXIT_OK)
		goto out;
	printf("%s form %s (%s of ", act == ACT_APPROVE ? "approved" :
	    act == ACT_REJECT ? "rejected" : "delegated", h.ct->id,
	    h.ct->type_name);
	term_put(stdout, h.ct->claimant, 0, 0);
	printf(") as record %zu", wse_form_nrecords(h.form));
	if (act == ACT_DELEGATE) {
		fputs(" to ", stdout);
		term_put(stdout, delegate, 0, 0);
	}
	fputs("\nsent to ", stdout);
	describe_next(h.form, to);
	printf(" as message %s\n", msgid);
	/* The original has been dealt with. */
	if (mark_read(&fx, id) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_OK;
out:
	wse_buf_free(&xml);
	wse_buf_free(&body);
	wse_formtype_free(&ft);
	cli_token_clear(&t);
	held_clear(&h);
	fctx_close(&fx);
	return rc;
}

/* ---- verify ---- */

static void
put_approvals(const wse_form_report *rep)
{
	size_t i;

	for (i = 0; i < rep->napprovals; i++) {
		const wse_form_approval *a = &rep->approvals[i];

		fputs(i == 0 ? "" : ", ", stdout);
		term_put(stdout, a->signer, 0, 0);
		if (strcmp(a->signer, a->approver) != 0) {
			fputs(" (for ", stdout);
			term_put(stdout, a->approver, 0, 0);
			fputc(')', stdout);
		}
	}
	if (rep->napprovals == 0)
		fputs("nobody (the route had no approver)", stdout);
}

static int
form_verify(int argc, char **argv, const char *config)
{
	const char *file = NULL, *final = NULL, *pos[1];
	const struct cli_opt opts[] = {
		{ "--file", &file, NULL },
		{ "--final", &final, NULL },
	};
	struct fctx fx;
	struct held h;
	wse_form_policy pol;
	wse_formtype *ft = NULL;
	wse_luabox_value *v = NULL;
	char fin[WSE_FORM_PARTY_MAX], why[1024], reason[512];
	wse_status st;
	int rc, npos;

	memset(&fx, 0, sizeof(fx));
	memset(&h, 0, sizeof(h));
	if ((rc = cli_parse(&sub_verify, argc, argv, opts, 2, &config, pos,
	    &npos, 1)) != 0)
		return rc;
	if ((npos == 1) == (file != NULL))
		return cli_usage(&sub_verify, "a message id or --file FILE, "
		    "please");
	if (file == NULL && cli_number(pos[0], 1, INT64_MAX, &h.id) != 0)
		return cli_usage(&sub_verify, "'%s' is not a message id",
		    pos[0]);
	if (final != NULL) {
		if (lower_copy(final, fin, sizeof(fin)) != 0 ||
		    strchr(final, '@') != NULL || *final == '\0')
			return cli_usage(&sub_verify, "--final: a domain, "
			    "please");
	}
	wse_form_policy_default(&pol);
	pol.require_complete = 1;
	pol.final_party = final != NULL ? fin : NULL;	/* else its own */
	if ((rc = fctx_open(&fx, config)) != CLI_EXIT_OK ||
	    (rc = held_get(&fx, &sub_verify, file == NULL ? pos[0] : NULL,
	    file, &h, &pol)) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	if (h.vst != WSE_OK || h.ct == NULL) {
		fputs("form in ", stdout);
		held_name(&h, stdout);
		printf(" INVALID (%s): ", wse_fault_subcode(h.vst));
		term_put(stdout, h.rep.reason, 0, 0);
		fputc('\n', stdout);
		goto out;
	}
	/* The type's constraints, under our own parameters. */
	if ((st = load_type(&fx, h.ct, &ft, why, sizeof(why))) == WSE_OK) {
		if ((st = form_value(&fx, &h, &v)) != WSE_OK) {
			rc = cli_fail("the form's value for its type");
			goto out;
		}
		st = wse_formtype_check(ft, v, reason, sizeof(reason));
		if (st != WSE_OK) {
			printf("form %s INVALID: the type %s refuses it: ",
			    h.ct->id, h.ct->type_name);
			if (st == WSE_ERR_NOT_AUTHORIZED)
				term_put(stdout, reason, 0, 0);
			else {
				char errs[1024];

				term_put(stdout, wse_err_format(errs,
				    sizeof(errs)), 0, 0);
			}
			fputc('\n', stdout);
			wse_err_clear();
			goto out;
		}
	}
	printf("form %s VALID: ", h.ct->id);
	if (h.state.outcome == WSE_OUTCOME_REJECTED) {
		fputs("rejected by ", stdout);
		term_put(stdout, h.rep.rejected_by, 0, 0);
		if (strcmp(h.rep.rejected_by, h.rep.rejected_for) != 0) {
			fputs(" (for ", stdout);
			term_put(stdout, h.rep.rejected_for, 0, 0);
			fputc(')', stdout);
		}
		printf(" (record %zu)", h.rep.rejected_at);
	} else {
		fputs("approved by ", stdout);
		put_approvals(&h.rep);
	}
	printf("; %s %s of ", h.ct->type_name, h.ct->type_version);
	term_put(stdout, h.ct->claimant, 0, 0);
	fputs(", final party ", stdout);
	term_put(stdout, h.ct->final_party, 0, 0);
	printf(", %zu records%s\n", h.state.nrecords,
	    h.state.phase == WSE_FORM_CLOSED ? ", accepted" : "");
	if (ft != NULL)
		printf("type check: passed (%zu parameter%s)\n", fx.nparams,
		    fx.nparams == 1 ? "" : "s");
	else {
		fputs("type check: NOT RUN: the plugin is ", stdout);
		term_put(stdout, why, 0, 0);
		fputc('\n', stdout);
	}
	rc = CLI_EXIT_OK;
out:
	wse_luabox_value_free(&v);
	wse_formtype_free(&ft);
	held_clear(&h);
	fctx_close(&fx);
	return rc;
}

/* ---- export ---- */

static int
write_new_file(const char *path, const uint8_t *p, size_t left)
{
	ssize_t r;
	int fd, rc = CLI_EXIT_OK;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC | O_NOCTTY, 0644)) == -1)
		return cli_fail("%s: %s", path, errno == EEXIST ?
		    "the file exists already" : strerror(errno));
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
		rc = cli_fail("%s: %s", path, strerror(errno));
		(void)unlink(path);
	}
	if (close(fd) == -1 && rc == CLI_EXIT_OK) {
		rc = cli_fail("%s: %s", path, strerror(errno));
		(void)unlink(path);
	}
	return rc;
}

static int
form_export(int argc, char **argv, const char *config)
{
	const char *pos[2];
	struct fctx fx;
	struct held h;
	long long id;
	int rc, npos;

	memset(&fx, 0, sizeof(fx));
	memset(&h, 0, sizeof(h));
	if ((rc = cli_parse(&sub_export, argc, argv, NULL, 0, &config, pos,
	    &npos, 2)) != 0)
		return rc;
	if (npos != 2)
		return cli_usage(&sub_export, "a message id and a file, "
		    "please");
	if (cli_number(pos[0], 1, INT64_MAX, &id) != 0)
		return cli_usage(&sub_export, "'%s' is not a message id",
		    pos[0]);
	if ((rc = fctx_open(&fx, config)) != CLI_EXIT_OK ||
	    (rc = held_from_message(&fx, id, &h, NULL)) != CLI_EXIT_OK ||
	    (rc = write_new_file(pos[1], h.data, h.len)) != CLI_EXIT_OK)
		goto out;
	printf("wrote %zu bytes to ", h.len);
	term_put(stdout, pos[1], 0, 0);
	if (h.vst == WSE_OK && h.ct != NULL)
		printf(" (form %s, which verifies)\n", h.ct->id);
	else {
		printf(" (WARNING: the form does not verify: %s: ",
		    wse_fault_subcode(h.vst));
		term_put(stdout, h.rep.reason, 0, 200);
		fputs(")\n", stdout);
	}
out:
	held_clear(&h);
	fctx_close(&fx);
	return rc;
}

/* ---- the command ---- */

int
cmd_form(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv)
{
	static const struct cli_cmd *const subs[] = { &sub_submit, &sub_list,
	    &sub_show, &sub_approve, &sub_reject, &sub_delegate, &sub_verify,
	    &sub_export, NULL };
	const char *s;
	size_t i;

	if (argc >= 1 && (strcmp(argv[0], "-h") == 0 ||
	    strcmp(argv[0], "--help") == 0)) {
		printf("%s\nusage:\n", cmd->summary);
		for (i = 0; subs[i] != NULL; i++)
			printf("  %s [--config FILE] %s %s\n", CLI_PROG,
			    subs[i]->name, subs[i]->args);
		return CLI_HELP_SHOWN;
	}
	if (argc < 1)
		return cli_usage(cmd, "submit, list, show, approve, reject, "
		    "delegate, verify or export?");
	s = argv[0];
	if (strcmp(s, "submit") == 0)
		return form_submit(argc - 1, argv + 1, config);
	if (strcmp(s, "list") == 0)
		return form_list(argc - 1, argv + 1, config);
	if (strcmp(s, "show") == 0)
		return form_show(argc - 1, argv + 1, config);
	if (strcmp(s, "approve") == 0)
		return form_act(ACT_APPROVE, argc - 1, argv + 1, config);
	if (strcmp(s, "reject") == 0)
		return form_act(ACT_REJECT, argc - 1, argv + 1, config);
	if (strcmp(s, "delegate") == 0)
		return form_act(ACT_DELEGATE, argc - 1, argv + 1, config);
	if (strcmp(s, "verify") == 0)
		return form_verify(argc - 1, argv + 1, config);
	if (strcmp(s, "export") == 0)
		return form_export(argc - 1, argv + 1, config);
	return cli_usage(cmd, "unknown sub-command '%s' (submit, list, show, "
	    "approve, reject, delegate, verify or export)", s);
}
