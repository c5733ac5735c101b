/*
 * test_forms_plugin.c - the forms plugin (plugins/forms.c) as the server
 * sees it: the built forms.so is dlopen()ed (its path comes from
 * $WSE_FORMS_SO or the build), bound to this program's own copy of
 * libwsemail (linked whole and exported, like wsemaild), given hosts for
 * b.test (a router) and c.test (a final party) whose clock the tests
 * move and whose submit captures what the plugin sends, and fed
 * deliveries to forms@<domain>.  The PKI (root, domain CAs and service
 * certificates of a.test, b.test, c.test), the users' tokens and the
 * form type's publishers are minted at run time; the type plugins are
 * signed at run time and put in the plugin's cache, so nothing is
 * fetched (fetch_connect points at a closed port).
 *
 * The form type is a small "expense": route() inserts the claimant's
 * manager (field manager) and, above params.threshold, params.finance;
 * check() requires finance's approval above the threshold.
 */
#include "testutil.h"
#include "testpki.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "crypto.h"
#include "form.h"
#include "formtype.h"
#include "msg.h"
#include "pki.h"
#include "plugin.h"
#include "pubsig.h"
#include "soap.h"
#include "xml.h"

#ifndef FORMS_SO
#define FORMS_SO "plugins/forms.so"
#endif

#define WAIT_MS 10000
#define RETRY 60
#define PLUGIN_URL "https://a.test:9/plugins/expense.lua"

static testpki P;
static void *so;
static const struct wse_plugin *plug;
static wse_limits lim;

/* ---- the form types ---- */

static const char good_lua[] =
	"local M = {}\n"
	"function M.definition()\n"
	"  return { name = 'expense', version = '1', title = 'Expense',\n"
	"    fields = {\n"
	"      { name = 'amount', type = 'decimal', label = 'Amount',\n"
	"        required = true },\n"
	"      { name = 'purpose', type = 'text', label = 'Purpose' },\n"
	"      { name = 'manager', type = 'mailbox', label = 'Manager',\n"
	"        required = true } } }\n"
	"end\n"
	"local function threshold(form)\n"
	"  return tonumber(form.params.threshold) or 1000\n"
	"end\n"
	"function M.route(form)\n"
	"  local a = { form.fields.manager }\n"
	"  if form.fields.amount > threshold(form) and form.params.finance\n"
	"  then a[#a + 1] = form.params.finance end\n"
	"  return a\n"
	"end\n"
	"function M.check(form)\n"
	"  if form.fields.amount <= threshold(form) then return true end\n"
	"  for _, ap in ipairs(form.approvals) do\n"
	"    if ap.approver == form.params.finance then return true end\n"
	"  end\n"
	"  return 'an amount over ' .. threshold(form) ..\n"
	"    ' needs the approval of finance'\n"
	"end\n"
	"return M\n";

static const char loop_lua[] =
	"local M = {}\n"
	"function M.route(form) while true do end end\n"
	"function M.check(form) while true do end end\n"
	"return M\n";

static const char hog_lua[] =
	"local M = {}\n"
	"function M.route(form)\n"
	"  local t = {}\n"
	"  for i = 1, 100000000 do t[i] = { i, i, i, i, i, i, i, i } end\n"
	"  return {}\n"
	"end\n"
	"M.check = M.route\n"
	"return M\n";

enum { T_GOOD, T_LOOP, T_HOG, T_OTHERPUB, NTYPES };

struct ftype {
	const char *src;
	int publisher;		/* 0: trusted, 1: not (at first) */
	char sha[65];
	wse_buf *sig;
};

static struct ftype TY[NTYPES] = {
	[T_GOOD] = { good_lua, 0, "", NULL },
	[T_LOOP] = { loop_lua, 0, "", NULL },
	[T_HOG] = { hog_lua, 0, "", NULL },
	[T_OTHERPUB] = { good_lua, 1, "", NULL },
};

/* The publishers: [0] trusted by the servers, [1] not at first. */
static wse_key *pub_key[2];
static wse_cert *pub_cert[2];
static char pub_path[2][4096];

/* ---- users ---- */

enum { Q, C2, C3, C5, C6, NUSER };
static struct {
	const char *mbox;
	int d;
	wse_key *key;
	wse_cert *cert;
} U[NUSER] = {
	[Q] = { "q@a.test", 0, NULL, NULL },
	[C2] = { "c2@a.test", 0, NULL, NULL },
	[C3] = { "c3@b.test", 1, NULL, NULL },	/* finance */
	[C5] = { "c5@c.test", 2, NULL, NULL },
	[C6] = { "c6@a.test", 0, NULL, NULL },
};

static wse_form_signer
user(int i)
{
	wse_form_signer s = { U[i].key, U[i].cert, P.dom[U[i].d].ca };

	return s;
}

static wse_form_signer
server(int d)
{
	wse_form_signer s = { P.dom[d].svc_key, P.dom[d].svc, P.dom[d].ca };

	return s;
}

/* ---- the hosts ---- */

static int64_t clock_now;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char logbuf[1 << 18];
static size_t loglen;

struct sent {
	char domain[32];	/* the host that submitted */
	char from[WSE_ADDR_MAX + 1];
	char to[WSE_ADDR_MAX + 1];
	char subject[1000];
	char *text;
	uint8_t *form;
	size_t formlen;
	unsigned flags;
};

#define SENT_MAX 256
static struct sent S[SENT_MAX];
static size_t nsent;

static int64_t
host_now(void)
{
	return __atomic_load_n(&clock_now, __ATOMIC_SEQ_CST);
}

static void
set_clock(int64_t t)
{
	__atomic_store_n(&clock_now, t, __ATOMIC_SEQ_CST);
}

static void host_log(const struct wse_plugin_host *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
host_log(const struct wse_plugin_host *h, const char *fmt, ...)
{
	va_list ap;
	int n;

	pthread_mutex_lock(&mu);
	if (loglen > sizeof(logbuf) - 4096)
		loglen = 0;
	n = snprintf(logbuf + loglen, sizeof(logbuf) - loglen, "[%s] ",
	    h->domain);
	if (n > 0)
		loglen += (size_t)n;
	va_start(ap, fmt);
	n = vsnprintf(logbuf + loglen, sizeof(logbuf) - loglen - 2, fmt, ap);
	va_end(ap);
	if (n > 0) {
		loglen += (size_t)n;
		if (loglen > sizeof(logbuf) - 2)
			loglen = sizeof(logbuf) - 2;
	}
	logbuf[loglen++] = '\n';
	logbuf[loglen] = '\0';
	if (getenv("WSE_TEST_VERBOSE") != NULL)
		fprintf(stderr, "%s", logbuf + loglen - (size_t)(n > 0 ? n : 0)
		    - 1);
	pthread_mutex_unlock(&mu);
}

static int
log_has(const char *needle)
{
	int r;

	pthread_mutex_lock(&mu);
	r = strstr(logbuf, needle) != NULL;
	pthread_mutex_unlock(&mu);
	return r;
}

static wse_status
host_submit(const struct wse_plugin_host *h, wse_msg *m, unsigned flags,
    char *id_r)
{
	const wse_attachment *att;
	struct sent *s;
	const char *dom;

	(void)id_r;
	if (m->from == NULL || (dom = wse_addr_domain(m->from)) == NULL ||
	    strcmp(dom, h->domain) != 0)
		return wse_err(WSE_ERR_NOT_AUTHORIZED, "sender of another "
		    "domain");
	if (m->nto != 1 || m->ncc != 0 || m->subject == NULL ||
	    m->text == NULL)
		return wse_err(WSE_ERR_INVALID, "unexpected message shape");
	pthread_mutex_lock(&mu);
	if (nsent == SENT_MAX) {
		pthread_mutex_unlock(&mu);
		return wse_err(WSE_ERR_TEMPFAIL, "test queue full");
	}
	s = &S[nsent];
	memset(s, 0, sizeof(*s));
	snprintf(s->domain, sizeof(s->domain), "%s", h->domain);
	snprintf(s->from, sizeof(s->from), "%s", m->from);
	snprintf(s->to, sizeof(s->to), "%s", m->to[0]);
	snprintf(s->subject, sizeof(s->subject), "%s", m->subject);
	s->text = strdup(m->text);
	s->flags = flags;
	if ((att = wse_formtype_find_attachment(m)) != NULL) {
		s->formlen = wse_buf_len(att->data);
		s->form = malloc(s->formlen + 1);
		memcpy(s->form, wse_buf_data(att->data), s->formlen);
		s->form[s->formlen] = 0;
	}
	nsent++;
	pthread_mutex_unlock(&mu);
	return WSE_OK;
}

static struct wse_plugin_host host_b = {
	.domain = "b.test",
	.version = "wsemaild test",
	.url = "https://b.test:8443/wsemail",
	.limits = &lim,
	.now = host_now,
	.log = host_log,
	.submit = host_submit,
};

static struct wse_plugin_host host_c = {
	.domain = "c.test",
	.version = "wsemaild test",
	.url = "https://c.test:8443/wsemail",
	.limits = &lim,
	.now = host_now,
	.log = host_log,
	.submit = host_submit,
};

static void
sent_clear(void)
{
	size_t i;

	pthread_mutex_lock(&mu);
	for (i = 0; i < nsent; i++) {
		free(S[i].text);
		free(S[i].form);
	}
	nsent = 0;
	loglen = 0;
	logbuf[0] = '\0';
	pthread_mutex_unlock(&mu);
}

/* Messages sent to `to` (NULL: any) whose subject contains needle
 * (NULL: any). */
static size_t
count_sent(const char *to, const char *needle)
{
	size_t i, n = 0;

	pthread_mutex_lock(&mu);
	for (i = 0; i < nsent; i++)
		if ((to == NULL || strcmp(S[i].to, to) == 0) &&
		    (needle == NULL || strstr(S[i].subject, needle) != NULL))
			n++;
	pthread_mutex_unlock(&mu);
	return n;
}

/* A copy of the newest such message (the caller frees text and form). */
static int
find_sent(const char *to, const char *needle, struct sent *out)
{
	size_t i;
	int found = 0;

	pthread_mutex_lock(&mu);
	for (i = nsent; i-- > 0;)
		if ((to == NULL || strcmp(S[i].to, to) == 0) &&
		    (needle == NULL || strstr(S[i].subject, needle) != NULL)) {
			*out = S[i];
			out->text = strdup(S[i].text);
			if (S[i].form != NULL) {
				out->form = malloc(S[i].formlen + 1);
				memcpy(out->form, S[i].form, S[i].formlen + 1);
			}
			found = 1;
			break;
		}
	pthread_mutex_unlock(&mu);
	return found;
}

static void
sent_free(struct sent *s)
{
	free(s->text);
	free(s->form);
	s->text = NULL;
	s->form = NULL;
}

/* Poll (bounded) until cond holds. */
#define WAIT_FOR(cond) do {						\
	int w_;								\
	for (w_ = 0; w_ < WAIT_MS / 10 && !(cond); w_++)		\
		usleep(10000);						\
	if (!(cond))							\
		fail_msg("timed out waiting for %s; log:\n%s", #cond,	\
		    logbuf);						\
} while (0)

/* Give the worker time to do what it should not (then check nothing
 * happened): two wake-ups of its clock poll. */
static void
settle(void)
{
	usleep(2300 * 1000);
}

static int
log_count(const char *needle)
{
	const char *p;
	int n = 0;

	pthread_mutex_lock(&mu);
	for (p = logbuf; (p = strstr(p, needle)) != NULL; p++)
		n++;
	pthread_mutex_unlock(&mu);
	return n;
}

static int
write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (f == NULL)
		return -1;
	ok = fwrite(data, 1, len, f) == len;
	return fclose(f) == 0 && ok ? 0 : -1;
}

/* ---- plugin instances ---- */

static struct {
	char *tmp;
	void *b;		/* b.test's instance */
	void *c;		/* c.test's instance */
} F;

static void
dir_of(const char *dom, char *out, size_t size)
{
	snprintf(out, size, "%s/forms-%s", F.tmp, dom);
}

static void
args_for(int d, int trust_other, const char *extra, char *out, size_t size)
{
	const char *dom = P.dom[d].name;
	char dir[4096];

	dir_of(dom, dir, sizeof(dir));
	snprintf(out, size, "dir=%s cert=%s/%s/service.pem "
	    "key=%s/%s/service-key.pem ca=%s/%s/ca.pem roots=%s/root/cert.pem "
	    "crl=%s/root/crl.pem crl=%s/a.test/crl.pem crl=%s/b.test/crl.pem "
	    "crl=%s/c.test/crl.pem publisher=%s%s%s "
	    "param.finance=c3@b.test param.threshold=1000 retry=%d "
	    "fetch_connect=127.0.0.1 lua_memory=4194304 "
	    "lua_instructions=3000000 lua_millis=3000 %s",
	    dir, P.dir, dom, P.dir, dom, P.dir, dom, P.dir, P.dir, P.dir,
	    P.dir, P.dir, pub_path[0], trust_other ? " publisher=" : "",
	    trust_other ? pub_path[1] : "", RETRY, extra != NULL ? extra : "");
}

/* Put type t's files in the cache of the instance of domain d;
 * tamper: the plugin's bytes altered. */
static void
cache_put(int d, int t, int tamper)
{
	char path[8192], dir[4096];
	size_t len = strlen(TY[t].src);
	char *src = strdup(TY[t].src);

	dir_of(P.dom[d].name, dir, sizeof(dir));
	(void)mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/types", dir);
	(void)mkdir(path, 0700);
	if (tamper)
		src[len - 2] = 'N';	/* "return M" -> "return N" */
	snprintf(path, sizeof(path), "%s/types/%s.lua", dir, TY[t].sha);
	assert_true(write_file(path, src, len) == 0);
	snprintf(path, sizeof(path), "%s/types/%s.lua.sig", dir, TY[t].sha);
	assert_true(write_file(path, wse_buf_str(TY[t].sig),
	    wse_buf_len(TY[t].sig)) == 0);
	free(src);
}

static void
start(int d, int trust_other, const char *extra)
{
	char args[32768], eb[2048];
	void **slot = d == 1 ? &F.b : &F.c;
	wse_status st;

	args_for(d, trust_other, extra, args, sizeof(args));
	wse_err_clear();
	st = plug->init(d == 1 ? &host_b : &host_c, args, slot);
	if (st != WSE_OK)
		fail_msg("init %s: %s", P.dom[d].name,
		    wse_err_format(eb, sizeof(eb)));
}

static void
stop(int d)
{
	void **slot = d == 1 ? &F.b : &F.c;

	if (*slot != NULL)
		plug->deinit(*slot);
	*slot = NULL;
}

/* ---- forms ---- */

static wse_form *
new_claim(int t, const char *amount, const char *manager, const char *final,
    int with_router)
{
	wse_form_type type = { "expense", "1", PLUGIN_URL, TY[t].sha };
	wse_form *f = NULL;
	wse_form_signer s = user(Q);

	assert_wse_ok(wse_form_new("q@a.test", &type, final, &f));
	assert_wse_ok(wse_form_add_field(f, "amount", WSE_FIELD_DECIMAL,
	    amount));
	assert_wse_ok(wse_form_add_field(f, "purpose", WSE_FIELD_TEXT,
	    "Conference <Paris> & travel"));
	assert_wse_ok(wse_form_add_field(f, "manager", WSE_FIELD_MAILBOX,
	    manager));
	if (with_router)
		assert_wse_ok(wse_form_add_hop(f, WSE_HOP_ROUTER, "b.test"));
	assert_wse_ok(wse_form_add_hop(f, WSE_HOP_APPROVER, "c5@c.test"));
	assert_wse_ok(wse_form_sign_submit(f, &s, host_now()));
	return f;
}

static wse_buf *
bytes_of(const wse_form *f)
{
	wse_buf *b = wse_buf_new(WSE_FORM_MAX_BYTES);

	assert_non_null(b);
	assert_wse_ok(wse_form_serialize(f, b));
	return b;
}

/* Serialise, parse, verify (as the next party does). */
static void
receive(wse_form **f)
{
	wse_buf *b = bytes_of(*f);
	wse_form_report rep;

	wse_form_free(f);
	assert_wse_ok(wse_form_parse(wse_buf_data(b), wse_buf_len(b), NULL,
	    f));
	wse_buf_free(&b);
	memset(&rep, 0, sizeof(rep));
	if (wse_form_verify(*f, P.trust, host_now(), NULL, &rep) != WSE_OK)
		fail_msg("verify: %s", rep.reason);
	wse_form_report_clear(&rep);
}

static wse_form *
parse_verified(const uint8_t *data, size_t len, const wse_form_policy *pol)
{
	wse_form *f = NULL;
	wse_form_report rep;

	assert_wse_ok(wse_form_parse(data, len, NULL, &f));
	memset(&rep, 0, sizeof(rep));
	if (wse_form_verify(f, P.trust, host_now(), pol, &rep) != WSE_OK)
		fail_msg("verify: %s", rep.reason);
	wse_form_report_clear(&rep);
	return f;
}

/*
 * A complete form at the final party: q's claim, routed by b.test
 * (which inserts c2 and, when finance, c3), then every approver
 * approves, except reject_by (-1: none) who rejects.
 */
static wse_form *
complete_form(int t, const char *amount, int finance, int reject_by,
    const char *final)
{
	const char *ins[2] = { "c2@a.test", "c3@b.test" };
	int order[3] = { C2, C3, C5 }, i;
	wse_form *f = new_claim(t, amount, "c2@a.test", final, 1);
	wse_form_signer s;

	receive(&f);
	s = server(1);
	assert_wse_ok(wse_form_add_insert(f, &s, 0, ins, finance ? 2 : 1,
	    host_now()));
	for (i = 0; i < 3; i++) {
		if (order[i] == C3 && !finance)
			continue;
		receive(&f);
		s = user(order[i]);
		assert_wse_ok(wse_form_add_decision(f, &s, order[i] ==
		    reject_by ? WSE_VERDICT_REJECT : WSE_VERDICT_APPROVE,
		    NULL, host_now()));
		if (order[i] == reject_by)
			break;
	}
	receive(&f);
	return f;
}

/* A delivery of bytes (NULL: no form) from `from` to forms@<domain>. */
static wse_status
deliver_to(int d, const char *from, const void *bytes, size_t len,
    const char *origin_id, unsigned flags)
{
	struct wse_plugin_delivery dl;
	const char *rcpts[2];
	char forms[64];
	int consumed[2] = { 0, 0 };
	wse_msg *m = NULL;
	wse_status st;

	snprintf(forms, sizeof(forms), "forms@%s", P.dom[d].name);
	assert_wse_ok(wse_msg_new(&m));
	assert_wse_ok(wse_msg_set(m, "from", from));
	assert_wse_ok(wse_msg_set(m, "subject", "a form"));
	assert_wse_ok(wse_msg_set(m, "text", "see the attachment"));
	assert_wse_ok(wse_msg_add_rcpt(m, forms, 0));
	assert_wse_ok(wse_msg_add_rcpt(m, "someone@c.test", 1));
	if (bytes != NULL)
		assert_wse_ok(wse_msg_add_attachment(m, WSE_FORM_ATTACHMENT,
		    WSE_FORM_MEDIA_TYPE, bytes, len));
	rcpts[0] = "someone@x.test";
	rcpts[1] = forms;
	memset(&dl, 0, sizeof(dl));
	dl.msg = m;
	dl.origin = wse_addr_domain(from);
	dl.origin_id = origin_id;
	dl.flags = flags;
	dl.rcpts = rcpts;
	dl.nrcpts = 2;
	st = plug->message(d == 1 ? F.b : F.c, &dl, consumed);
	if (st == WSE_OK) {
		assert_int_equal(consumed[0], 0);
		assert_int_equal(consumed[1], 1);
	}
	wse_msg_free(&m);
	return st;
}

static void
deliver_form(int d, const char *from, const wse_form *f,
    const char *origin_id)
{
	wse_buf *b = bytes_of(f);

	assert_wse_ok(deliver_to(d, from, wse_buf_data(b), wse_buf_len(b),
	    origin_id, 0));
	wse_buf_free(&b);
}

/* ---- set-up ---- */

static int
group_setup(void **state)
{
	const char *path = getenv("WSE_FORMS_SO");
	wse_plugin_entry_fn entry;
	char eb[2048];
	uint8_t md[WSE_SHA256_LEN];
	int i;

	(void)state;
	wse_limits_default(&lim);
	if (testpki_init(&P, (int64_t)time(NULL)) != WSE_OK) {
		fprintf(stderr, "testpki_init: %s\n",
		    wse_err_format(eb, sizeof(eb)));
		return -1;
	}
	for (i = 0; i < NUSER; i++)
		if (wse_key_generate(&U[i].key) != WSE_OK ||
		    wse_pki_issue_token(P.dom[U[i].d].ca, P.dom[U[i].d].ca_key,
		    U[i].key, U[i].mbox, 4 * 3600, P.now - 60,
		    &U[i].cert) != WSE_OK)
			return -1;
	for (i = 0; i < 2; i++) {
		if (wse_pubsig_publisher_new(i == 0 ? "Expense Publisher" :
		    "Other Publisher", P.now - 3600, P.now + 90 * 86400,
		    &pub_key[i], &pub_cert[i]) != WSE_OK)
			return -1;
		snprintf(pub_path[i], sizeof(pub_path[i]), "%s/publisher%d.pem",
		    P.dir, i);
		if (wse_cert_save(pub_cert[i], pub_path[i]) != WSE_OK)
			return -1;
	}
	for (i = 0; i < NTYPES; i++) {
		size_t len = strlen(TY[i].src);
		char *src = strdup(TY[i].src);

		/* The same source under another publisher must differ to
		 * have a digest of its own. */
		if (i == T_OTHERPUB)
			src[len - 1] = ' ';
		TY[i].src = src;
		if (wse_sha256(src, len, md) != WSE_OK)
			return -1;
		wse_hex(md, sizeof(md), TY[i].sha);
		TY[i].sig = wse_buf_new(WSE_PUBSIG_FILE_MAX);
		if (wse_pubsig_sign(src, len, "expense", "1",
		    pub_key[TY[i].publisher], pub_cert[TY[i].publisher],
		    TY[i].sig) != WSE_OK) {
			fprintf(stderr, "sign: %s\n",
			    wse_err_format(eb, sizeof(eb)));
			return -1;
		}
	}
	if (path == NULL || *path == '\0')
		path = FORMS_SO;
	if ((so = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
		return -1;
	}
	*(void **)&entry = dlsym(so, WSE_PLUGIN_ENTRY);
	if (entry == NULL || (plug = entry()) == NULL) {
		fprintf(stderr, "%s: no plugin entry\n", path);
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	int i;

	(void)state;
	if (so != NULL)
		dlclose(so);
	for (i = 0; i < NUSER; i++) {
		wse_cert_free(&U[i].cert);
		wse_key_free(&U[i].key);
	}
	for (i = 0; i < 2; i++) {
		wse_cert_free(&pub_cert[i]);
		wse_key_free(&pub_key[i]);
	}
	for (i = 0; i < NTYPES; i++) {
		free((char *)TY[i].src);
		wse_buf_free(&TY[i].sig);
	}
	testpki_free(&P);
	sent_clear();
	return 0;
}

static int
setup(void **state)
{
	int t;

	(void)state;
	wse_err_clear();
	set_clock(P.now);
	sent_clear();
	if ((F.tmp = testutil_tmpdir()) == NULL)
		return -1;
	for (t = 0; t < NTYPES; t++) {
		cache_put(1, t, 0);
		cache_put(2, t, 0);
	}
	start(1, 0, NULL);
	start(2, 0, NULL);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	stop(1);
	stop(2);
	testutil_rmtree(F.tmp);
	free(F.tmp);
	F.tmp = NULL;
	return 0;
}

/* ---- init ---- */

static void
init_fails(const char *args, const char *needle)
{
	void *st = NULL;
	char eb[4096];

	wse_err_clear();
	assert_int_not_equal(plug->init(&host_b, args, &st), WSE_OK);
	assert_null(st);
	wse_err_format(eb, sizeof(eb));
	if (strstr(eb, needle) == NULL)
		fail_msg("init \"%s\": \"%s\" does not mention \"%s\"", args,
		    eb, needle);
	wse_err_clear();
}

/* good with its first `from` replaced by `to`, into out. */
static void
replaced(const char *good, const char *from, const char *to, char *out,
    size_t size)
{
	const char *p = strstr(good, from);

	assert_non_null(p);
	snprintf(out, size, "%.*s%s%s", (int)(p - good), good, to,
	    p + strlen(from));
}

static void
test_init(void **state)
{
	char good[32768], bad[40000], dir[4096];

	(void)state;
	assert_string_equal(plug->abi, WSE_PLUGIN_ABI);
	assert_string_equal(plug->name, "forms");
	assert_non_null(plug->message);
	assert_string_equal(plug->ops[0], "FormStatus");
	assert_null(plug->ops[1]);
	assert_int_equal(plug->op_flags[0], WSE_PLUGIN_OP_PASSWORD);

	stop(1);
	args_for(1, 0, NULL, good, sizeof(good));
	dir_of("b.test", dir, sizeof(dir));
	init_fails("", "required");
	snprintf(bad, sizeof(bad), "%s bogus=1", good);
	init_fails(bad, "unknown argument bogus");
	snprintf(bad, sizeof(bad), "%s max_delegation=9", good);
	init_fails(bad, "max_delegation=9");
	snprintf(bad, sizeof(bad), "%s mailbox=a@b", good);
	init_fails(bad, "mailbox=");
	replaced(good, "fetch_connect=127.0.0.1", "fetch_connect=a.test", bad,
	    sizeof(bad));
	init_fails(bad, "numeric address");
	snprintf(bad, sizeof(bad), "%s param.finance=x", good);
	init_fails(bad, "given twice");
	replaced(good, "lua_memory=4194304", "lua_memory=10", bad,
	    sizeof(bad));
	init_fails(bad, "lua_memory");
	snprintf(bad, sizeof(bad), "%s publisher=%s/nonexistent.pem", good,
	    P.dir);
	init_fails(bad, "publisher=");
	/* relative dir, missing roots */
	init_fails("dir=forms cert=x key=y ca=z roots=w", "absolute");
	/* the key of another certificate; a certificate of another domain */
	snprintf(bad, sizeof(bad), "dir=%s cert=%s/b.test/service.pem "
	    "key=%s/a.test/service-key.pem ca=%s/b.test/ca.pem "
	    "roots=%s/root/cert.pem crl=%s/root/crl.pem", dir, P.dir, P.dir,
	    P.dir, P.dir, P.dir);
	init_fails(bad, "is not the key of");
	snprintf(bad, sizeof(bad), "dir=%s cert=%s/a.test/service.pem "
	    "key=%s/a.test/service-key.pem ca=%s/a.test/ca.pem "
	    "roots=%s/root/cert.pem crl=%s/root/crl.pem", dir, P.dir, P.dir,
	    P.dir, P.dir, P.dir);
	init_fails(bad, "not a service certificate of b.test");
	snprintf(bad, sizeof(bad), "dir=%s cert=%s/b.test/service.pem "
	    "key=%s/b.test/service-key.pem ca=%s/b.test/service.pem "
	    "roots=%s/root/cert.pem crl=%s/root/crl.pem", dir, P.dir, P.dir,
	    P.dir, P.dir, P.dir);
	init_fails(bad, "not a CA");
	snprintf(bad, sizeof(bad), "%s crl=%s/nope.pem", good, P.dir);
	init_fails(bad, "nope.pem");
	/* and the good line works */
	start(1, 0, NULL);
	assert_true(log_has("serving forms@b.test"));
}

/* ---- (1) a router hop ---- */

static void
check_routed(const struct sent *s, const char *next, size_t nhops,
    const char *const *route)
{
	wse_form *f;
	wse_form_state_info st;
	const wse_form_hop *hops;
	size_t n, i;

	assert_string_equal(s->from, "forms@b.test");
	assert_string_equal(s->to, next);
	assert_non_null(strstr(s->subject, "your action is needed"));
	assert_int_equal(s->flags & WSE_PLUGIN_SUBMIT_NO_BOUNCE, 0);
	assert_non_null(s->form);
	f = parse_verified(s->form, s->formlen, NULL);
	assert_wse_ok(wse_form_state(f, &st));
	assert_int_equal(st.phase, WSE_FORM_APPROVER);
	assert_string_equal(st.party, next);
	assert_int_equal(st.nrecords, 2);
	assert_wse_ok(wse_form_route(f, &hops, &n));
	assert_int_equal(n, nhops);
	for (i = 0; i < n; i++)
		assert_string_equal(hops[i].name, route[i]);
	wse_form_free(&f);
}

static void
test_router(void **state)
{
	static const char *const big[] = { "b.test", "c2@a.test",
	    "c3@b.test", "c5@c.test" };
	static const char *const small[] = { "b.test", "c6@a.test",
	    "c5@c.test" };
	wse_form *f1, *f2;
	struct sent s;
	xmlDocPtr doc = NULL;
	struct wse_plugin_request r;
	wse_buf *body, *resp;
	xmlNodePtr e;
	char id[64];

	(void)state;
	/* over the threshold: manager and finance */
	f1 = new_claim(T_GOOD, "1500.00", "c2@a.test", "c.test", 1);
	/* under it: the manager only */
	f2 = new_claim(T_GOOD, "99.5", "c6@a.test", "c.test", 1);
	snprintf(id, sizeof(id), "%s", wse_form_content_get(f1)->id);
	set_clock(P.now + 5);
	deliver_form(1, "q@a.test", f1, "id-1");
	deliver_form(1, "q@a.test", f2, "id-2");
	WAIT_FOR(count_sent("c2@a.test", NULL) == 1 &&
	    count_sent("c6@a.test", NULL) == 1);
	assert_true(find_sent("c2@a.test", NULL, &s));
	check_routed(&s, "c2@a.test", 4, big);
	assert_non_null(strstr(s.text, "c2@a.test, c3@b.test"));
	sent_free(&s);
	assert_true(find_sent("c6@a.test", NULL, &s));
	check_routed(&s, "c6@a.test", 3, small);
	sent_free(&s);
	assert_true(log_has("inserted 2 approver(s) (c2@a.test, c3@b.test) "
	    "and sent to c2@a.test"));
	assert_true(log_has("inserted 1 approver(s) (c6@a.test)"));
	settle();
	assert_int_equal(count_sent(NULL, NULL), 2);	/* nothing else */

	/* FormStatus: the claimant sees it, someone else does not */
	body = wse_buf_new(1 << 16);
	resp = wse_buf_new(1 << 16);
	assert_wse_ok(wse_buf_printf(body, "<s:Body xmlns:s=\"" WSE_NS_SOAP
	    "\"><m:FormStatus xmlns:m=\"" WSE_NS_WSE "\"><m:FormId>%s"
	    "</m:FormId></m:FormStatus></s:Body>", id));
	assert_wse_ok(wse_xml_parse(wse_buf_data(body), wse_buf_len(body),
	    &lim, &doc));
	memset(&r, 0, sizeof(r));
	r.op = "FormStatus";
	r.auth = WSE_PLUGIN_AUTH_PASSWORD;
	r.user = "q@a.test";
	r.body = xmlDocGetRootElement(doc);
	r.now = host_now();
	assert_wse_ok(plug->call(F.b, &r, resp, NULL));
	{
		xmlDocPtr rd = NULL;

		assert_wse_ok(wse_xml_parse(wse_buf_data(resp),
		    wse_buf_len(resp), &lim, &rd));
		e = xmlDocGetRootElement(rd);
		assert_true(wse_xml_is(e, WSE_NS_WSE, "FormStatusResponse"));
		e = wse_xml_next_elem(wse_xml_first_elem(e));
		assert_true(wse_xml_is(e, WSE_NS_WSE, "Entry"));
		assert_string_equal(wse_xml_attr(e, NULL, "state"), "routed");
		assert_string_equal(wse_xml_attr(e, NULL, "claimant"),
		    "q@a.test");
		xmlFreeDoc(rd);
	}
	wse_buf_reset(resp);
	r.user = "eve@b.test";
	assert_wse_status(plug->call(F.b, &r, resp, NULL), WSE_ERR_NOT_FOUND);
	xmlFreeDoc(doc);
	wse_buf_free(&body);
	wse_buf_free(&resp);
	wse_form_free(&f1);
	wse_form_free(&f2);
}

/* ---- (2) the final party ---- */

static void
test_final(void **state)
{
	wse_form *f, *g;
	wse_form_state_info st;
	wse_form_policy pol;
	struct sent s;

	(void)state;
	wse_form_policy_default(&pol);
	pol.final_party = "c.test";
	pol.require_complete = 1;

	/* approved by everyone, finance included */
	f = complete_form(T_GOOD, "1500.00", 1, -1, "c.test");
	set_clock(P.now + 30);
	deliver_form(2, "c5@c.test", f, "fin-1");
	WAIT_FOR(count_sent("q@a.test", "approved") == 1);
	assert_true(find_sent("q@a.test", "approved", &s));
	assert_string_equal(s.from, "forms@c.test");
	assert_non_null(strstr(s.subject, "Form expense "));
	assert_non_null(strstr(s.text, "approved by c3@b.test"));
	assert_non_null(s.form);
	g = parse_verified(s.form, s.formlen, &pol);
	assert_wse_ok(wse_form_state(g, &st));
	assert_int_equal(st.phase, WSE_FORM_CLOSED);
	assert_int_equal(st.outcome, WSE_OUTCOME_APPROVED);
	assert_int_equal(st.nrecords, 6);
	wse_form_free(&g);
	sent_free(&s);
	assert_true(log_has("accepted, outcome approved; closed form sent to "
	    "q@a.test"));
	wse_form_free(&f);

	/* rejected by the manager: closed as rejected, no check needed */
	f = complete_form(T_GOOD, "1500.00", 1, C2, "c.test");
	deliver_form(2, "c2@a.test", f, "fin-2");
	WAIT_FOR(count_sent("q@a.test", "rejected") == 1);
	assert_true(find_sent("q@a.test", "rejected", &s));
	g = parse_verified(s.form, s.formlen, &pol);
	assert_wse_ok(wse_form_state(g, &st));
	assert_int_equal(st.phase, WSE_FORM_CLOSED);
	assert_int_equal(st.outcome, WSE_OUTCOME_REJECTED);
	assert_non_null(strstr(s.text, "rejected by c2@a.test"));
	wse_form_free(&g);
	sent_free(&s);
	wse_form_free(&f);

	/* approved, but finance was never asked: the type's check refuses
	 * it at the end; the claimant and the sender are told */
	f = complete_form(T_GOOD, "2500", 0, -1, "c.test");
	deliver_form(2, "c5@c.test", f, "fin-3");
	WAIT_FOR(count_sent("q@a.test", "refused") == 1 &&
	    count_sent("c5@c.test", "refused") == 1);
	assert_true(find_sent("q@a.test", "refused", &s));
	assert_non_null(strstr(s.text, "needs the approval of finance"));
	assert_null(s.form);
	assert_int_not_equal(s.flags & WSE_PLUGIN_SUBMIT_NO_BOUNCE, 0);
	sent_free(&s);
	assert_true(log_has("the form type's check refused it"));
	settle();
	assert_int_equal(count_sent("q@a.test", NULL), 3);
	wse_form_free(&f);
}

/* ---- (3) refusals ---- */

static void
expect_refused(const char *sender, const char *needle)
{
	struct sent s;

	WAIT_FOR(count_sent(sender, "refused") == 1);
	assert_true(find_sent(sender, "refused", &s));
	if (strstr(s.text, needle) == NULL)
		fail_msg("refusal \"%s\" does not mention \"%s\"", s.text,
		    needle);
	assert_null(s.form);
	sent_free(&s);
}

static void
test_refusals(void **state)
{
	wse_form *f, *f2;
	wse_buf *b;
	char *p;
	struct sent s;
	int64_t t0 = P.now;

	(void)state;
	/* a field changed after submission: the signature fails */
	f = complete_form(T_GOOD, "1500.00", 1, -1, "c.test");
	b = bytes_of(f);
	assert_non_null(p = strstr((char *)wse_buf_data(b), "1500.00"));
	p[0] = '9';
	set_clock(t0 + 30);
	assert_wse_ok(deliver_to(2, "c5@c.test", wse_buf_data(b),
	    wse_buf_len(b), "r-1", 0));
	expect_refused("c5@c.test", "record 1");
	assert_true(log_has("refused"));
	wse_buf_free(&b);

	/* not bytes of a form at all */
	assert_wse_ok(deliver_to(2, "c6@a.test", "<x/>", 4, "r-2", 0));
	expect_refused("c6@a.test", "not a valid form");

	/* another final party */
	set_clock(t0);
	f2 = complete_form(T_GOOD, "1500.00", 1, -1, "a.test");
	set_clock(t0 + 40);
	deliver_form(2, "c2@a.test", f2, "r-3");
	expect_refused("c2@a.test", "ends at a.test, not at c.test");
	wse_form_free(&f2);

	/* not this server's turn: an approver must act */
	set_clock(t0);
	f2 = new_claim(T_GOOD, "10", "c2@a.test", "c.test", 0);
	deliver_form(2, "q@a.test", f2, "r-4");
	expect_refused("q@a.test", "c5@c.test must act");
	wse_form_free(&f2);
	/* ... or a router of another domain */
	f2 = new_claim(T_GOOD, "11", "c2@a.test", "c.test", 1);
	deliver_form(2, "c6@a.test", f2, "r-5");
	WAIT_FOR(count_sent("c6@a.test", "refused") == 2);
	assert_true(find_sent("c6@a.test", "refused", &s));
	assert_non_null(strstr(s.text, "router b.test must act"));
	sent_free(&s);
	wse_form_free(&f2);

	/* accepted once; the closed form replayed */
	set_clock(t0 + 50);
	deliver_form(2, "c5@c.test", f, "r-6");
	WAIT_FOR(count_sent("q@a.test", "approved") == 1);
	assert_true(find_sent("q@a.test", "approved", &s));
	set_clock(t0 + 60);
	assert_wse_ok(deliver_to(2, "q@a.test", s.form, s.formlen, "r-7", 0));
	sent_free(&s);
	WAIT_FOR(count_sent("q@a.test", "refused") == 2);
	assert_true(find_sent("q@a.test", "refused", &s));
	assert_non_null(strstr(s.text, "already closed"));
	sent_free(&s);
	wse_form_free(&f);
	settle();
	/* no accept for any refused one */
	assert_int_equal(count_sent("q@a.test", "approved"), 1);
	assert_int_equal(count_sent(NULL, "approved"), 1);
}

/* A fork of one form (the last approver signed twice) is accepted once. */
static void
test_accepted_once(void **state)
{
	const char *ins[2] = { "c2@a.test", "c3@b.test" };
	wse_form *f, *g;
	wse_form_signer s;
	wse_buf *b;
	int i, order[2] = { C2, C3 };

	(void)state;
	f = new_claim(T_GOOD, "1500.00", "c2@a.test", "c.test", 1);
	receive(&f);
	s = server(1);
	assert_wse_ok(wse_form_add_insert(f, &s, 0, ins, 2, host_now()));
	for (i = 0; i < 2; i++) {
		receive(&f);
		s = user(order[i]);
		assert_wse_ok(wse_form_add_decision(f, &s,
		    WSE_VERDICT_APPROVE, NULL, host_now()));
	}
	receive(&f);
	/* two copies, c5 deciding at two times */
	b = bytes_of(f);
	assert_wse_ok(wse_form_parse(wse_buf_data(b), wse_buf_len(b), NULL,
	    &g));
	wse_buf_free(&b);
	{
		wse_form_report rep;

		memset(&rep, 0, sizeof(rep));
		assert_wse_ok(wse_form_verify(g, P.trust, host_now(), NULL,
		    &rep));
		wse_form_report_clear(&rep);
	}
	s = user(C5);
	assert_wse_ok(wse_form_add_decision(f, &s, WSE_VERDICT_APPROVE, NULL,
	    host_now() + 1));
	assert_wse_ok(wse_form_add_decision(g, &s, WSE_VERDICT_APPROVE,
	    "again", host_now() + 2));
	set_clock(P.now + 10);
	deliver_form(2, "c5@c.test", f, "a-1");
	WAIT_FOR(count_sent("q@a.test", "approved") == 1);
	deliver_form(2, "c5@c.test", g, "a-2");
	expect_refused("c5@c.test", "already accepted here");
	settle();
	assert_int_equal(count_sent("q@a.test", "approved"), 1);
	wse_form_free(&f);
	wse_form_free(&g);
}

/*
 * Router refusals: approvers the type names that the route cannot take,
 * and a second copy of a form whose hop this server routed already.
 * Each is refused with its reason; nothing is routed on.
 */
static void
test_router_refusals(void **state)
{
	wse_form_type type = { "expense", "1", PLUGIN_URL, TY[T_GOOD].sha };
	wse_form *f, *g;
	wse_form_signer s;
	wse_buf *b;
	struct sent m;

	(void)state;
	/* the claimant names themself as the manager */
	f = new_claim(T_GOOD, "10", "q@a.test", "c.test", 1);
	set_clock(P.now + 5);
	deliver_form(1, "q@a.test", f, "rr-1");
	expect_refused("q@a.test", "cannot be inserted");
	assert_true(log_has("the claimant q@a.test cannot be an approver"));
	/* the reason is the rule's, not a probe of the signer's certificate */
	assert_false(log_has("names no mailbox"));
	wse_form_free(&f);
	/* ... or an approver already on the route */
	f = new_claim(T_GOOD, "10", "c5@c.test", "c.test", 1);
	deliver_form(1, "c6@a.test", f, "rr-2");
	expect_refused("c6@a.test", "no person decides twice");
	/* the claimant is told as well (once when they are the sender) */
	WAIT_FOR(count_sent("q@a.test", "refused") == 2);
	wse_form_free(&f);

	/* c5 approves first, then b.test routes; c5 signs two copies */
	assert_wse_ok(wse_form_new("q@a.test", &type, "c.test", &f));
	assert_wse_ok(wse_form_add_field(f, "amount", WSE_FIELD_DECIMAL,
	    "20"));
	assert_wse_ok(wse_form_add_field(f, "manager", WSE_FIELD_MAILBOX,
	    "c2@a.test"));
	assert_wse_ok(wse_form_add_hop(f, WSE_HOP_APPROVER, "c5@c.test"));
	assert_wse_ok(wse_form_add_hop(f, WSE_HOP_ROUTER, "b.test"));
	s = user(Q);
	assert_wse_ok(wse_form_sign_submit(f, &s, host_now()));
	receive(&f);
	b = bytes_of(f);
	assert_wse_ok(wse_form_parse(wse_buf_data(b), wse_buf_len(b), NULL,
	    &g));
	wse_buf_free(&b);
	assert_wse_ok(wse_form_verify(g, P.trust, host_now(), NULL, NULL));
	s = user(C5);
	assert_wse_ok(wse_form_add_decision(f, &s, WSE_VERDICT_APPROVE, NULL,
	    host_now() + 1));
	assert_wse_ok(wse_form_add_decision(g, &s, WSE_VERDICT_APPROVE,
	    "again", host_now() + 2));
	set_clock(P.now + 10);
	deliver_form(1, "c5@c.test", f, "rr-3");
	WAIT_FOR(count_sent("c2@a.test", "your action is needed") == 1);
	deliver_form(1, "c5@c.test", g, "rr-4");
	WAIT_FOR(count_sent("c5@c.test", "refused") == 1);
	assert_true(find_sent("c5@c.test", "refused", &m));
	if (strstr(m.text, "already routed form") == NULL)
		fail_msg("refusal \"%s\"", m.text);
	sent_free(&m);
	settle();
	/* one routed copy; nothing signed or sent for the refused ones */
	assert_int_equal(count_sent("c2@a.test", NULL), 1);
	assert_int_equal(count_sent("c5@c.test", NULL), 1);
	assert_int_equal(count_sent("q@a.test", "refused"), 2);
	assert_int_equal(count_sent(NULL, NULL), 5);
	assert_int_equal(log_count("inserted "), 1);
	wse_form_free(&f);
	wse_form_free(&g);
}

/*
 * The final party runs the type's check() on an approved form: a type it
 * cannot load (an untrusted publisher, a tampered cached file) or whose
 * check() does not finish leaves the form pending, never accepted.
 */
static void
test_final_type_fails(void **state)
{
	static const struct {
		int t;
		int tamper;
		const char *needle;
	} T_[] = {
		{ T_OTHERPUB, 0, "untrusted publisher" },
		{ T_GOOD, 1, "tampered" },
		{ T_LOOP, 0, "check(): instruction limit" },
	};
	wse_form *f;
	size_t i;
	char id[8];

	(void)state;
	for (i = 0; i < sizeof(T_) / sizeof(T_[0]); i++) {
		set_clock(P.now);
		f = complete_form(T_[i].t, "10", 0, -1, "c.test");
		if (T_[i].tamper)
			cache_put(2, T_[i].t, 1);
		set_clock(P.now + 30);
		snprintf(id, sizeof(id), "ft-%zu", i);
		deliver_form(2, "c5@c.test", f, id);
		WAIT_FOR(count_sent("c5@c.test", "delayed") == i + 1);
		if (!log_has(T_[i].needle))
			fail_msg("no \"%s\" in the log:\n%s", T_[i].needle,
			    logbuf);
		wse_form_free(&f);
	}
	settle();
	assert_int_equal(count_sent(NULL, "approved"), 0);
	assert_int_equal(count_sent(NULL, "refused"), 0);
	assert_int_equal(log_count("accepted, outcome"), 0);
}

/* ---- (4) pending ---- */

static void
test_pending(void **state)
{
	wse_form *fu, *ft, *fl, *fh, *fg;
	struct sent s;
	int64_t t0 = P.now;

	(void)state;
	/* untrusted publisher */
	fu = new_claim(T_OTHERPUB, "1500.00", "c2@a.test", "c.test", 1);
	/* the good type, its cached file altered (and nothing fetchable) */
	ft = new_claim(T_GOOD, "1500.00", "c6@a.test", "c.test", 1);
	cache_put(1, T_GOOD, 1);
	set_clock(t0 + 5);
	deliver_form(1, "q@a.test", fu, "p-1");
	WAIT_FOR(log_has("pending: plugin expense from " PLUGIN_URL));
	WAIT_FOR(count_sent("q@a.test", "delayed") == 1);
	assert_true(find_sent("q@a.test", "delayed", &s));
	assert_non_null(strstr(s.text, "plugin expense"));
	assert_non_null(strstr(s.text, "untrusted publisher CN=Other "
	    "Publisher"));
	assert_int_not_equal(s.flags & WSE_PLUGIN_SUBMIT_NO_BOUNCE, 0);
	sent_free(&s);
	deliver_form(1, "q@a.test", ft, "p-2");
	WAIT_FOR(count_sent("q@a.test", "delayed") == 2);
	assert_true(find_sent("q@a.test", "delayed", &s));
	assert_non_null(strstr(s.text, "plugin expense"));
	assert_non_null(strstr(s.text, "tampered"));
	sent_free(&s);

	/* a looping plugin and a memory-hungry one: bounded, pending */
	fl = new_claim(T_LOOP, "1", "c2@a.test", "c.test", 1);
	fh = new_claim(T_HOG, "2", "c2@a.test", "c.test", 1);
	deliver_form(1, "q@a.test", fl, "p-3");
	deliver_form(1, "q@a.test", fh, "p-4");
	WAIT_FOR(count_sent("q@a.test", "delayed") == 4);
	assert_true(log_has("pending: plugin expense: route(): instruction "
	    "limit"));
	assert_true(log_has("pending: plugin expense: route(): memory "
	    "limit"));

	/* the plugin still works: a good form of a good (cached) type */
	cache_put(1, T_GOOD, 0);
	fg = new_claim(T_GOOD, "5", "c2@a.test", "c.test", 1);
	deliver_form(1, "q@a.test", fg, "p-5");
	WAIT_FOR(count_sent("c2@a.test", "your action is needed") == 1);

	/* retried, still failing: no second notice */
	cache_put(1, T_GOOD, 1);
	set_clock(t0 + 5 + RETRY + 1);
	WAIT_FOR(log_count("pending: ") >= 8);
	assert_int_equal(count_sent(NULL, NULL), 5);
	settle();
	assert_int_equal(count_sent("q@a.test", "delayed"), 4);

	/* the cache fixed and the publisher trusted: the retry routes both */
	cache_put(1, T_GOOD, 0);
	cache_put(1, T_OTHERPUB, 0);
	stop(1);
	start(1, 1, NULL);
	set_clock(t0 + 5 + 2 * RETRY + 2);
	WAIT_FOR(count_sent("c2@a.test", "your action is needed") == 2 &&
	    count_sent("c6@a.test", "your action is needed") == 1);
	settle();
	assert_int_equal(count_sent("q@a.test", "delayed"), 4);

	/* the looping ones are given up after the form's age, once */
	set_clock(t0 + 31LL * 86400);
	WAIT_FOR(count_sent("q@a.test", "not processed") == 2);
	settle();
	assert_int_equal(count_sent("q@a.test", "not processed"), 2);
	wse_form_free(&fu);
	wse_form_free(&ft);
	wse_form_free(&fl);
	wse_form_free(&fh);
	wse_form_free(&fg);
}

/* ---- (5) duplicates, (6) no form ---- */

static void
test_duplicates(void **state)
{
	wse_form *f;

	(void)state;
	f = new_claim(T_GOOD, "1500.00", "c2@a.test", "c.test", 1);
	set_clock(P.now + 5);
	deliver_form(1, "q@a.test", f, "d-1");
	deliver_form(1, "q@a.test", f, "d-1");	/* the sender retried */
	deliver_form(1, "q@a.test", f, "d-2");	/* sent again */
	WAIT_FOR(count_sent("c2@a.test", NULL) == 1);
	assert_true(log_has("received before"));
	/* after a restart too */
	stop(1);
	start(1, 0, NULL);
	deliver_form(1, "q@a.test", f, "d-3");
	settle();
	assert_int_equal(count_sent(NULL, NULL), 1);
	wse_form_free(&f);
}

static void
test_no_form(void **state)
{
	struct sent s;

	(void)state;
	assert_wse_ok(deliver_to(1, "bob@a.test", NULL, 0, "n-1", 0));
	assert_wse_ok(deliver_to(1, "bob@a.test", NULL, 0, "n-1", 0));
	WAIT_FOR(count_sent("bob@a.test", "not processed") == 1);
	assert_true(find_sent("bob@a.test", NULL, &s));
	assert_string_equal(s.from, "forms@b.test");
	assert_non_null(strstr(s.text, WSE_FORM_MEDIA_TYPE));
	assert_int_not_equal(s.flags & WSE_PLUGIN_SUBMIT_NO_BOUNCE, 0);
	sent_free(&s);
	/* never an answer to a report, nor to another forms service */
	assert_wse_ok(deliver_to(1, "mailer-daemon@a.test", NULL, 0, "n-2",
	    WSE_PLUGIN_MSG_REPORT));
	assert_wse_ok(deliver_to(1, "forms@c.test", NULL, 0, "n-3", 0));
	/* a message to someone else is not taken */
	{
		struct wse_plugin_delivery dl;
		const char *rc[1] = { "bob@b.test" };
		int consumed[1] = { 0 };
		wse_msg *m = NULL;

		assert_wse_ok(wse_msg_new(&m));
		assert_wse_ok(wse_msg_set(m, "from", "q@a.test"));
		assert_wse_ok(wse_msg_add_rcpt(m, "bob@b.test", 0));
		memset(&dl, 0, sizeof(dl));
		dl.msg = m;
		dl.origin = "a.test";
		dl.origin_id = "n-4";
		dl.rcpts = rc;
		dl.nrcpts = 1;
		assert_wse_ok(plug->message(F.b, &dl, consumed));
		assert_int_equal(consumed[0], 0);
		wse_msg_free(&m);
	}
	settle();
	assert_int_equal(count_sent(NULL, NULL), 1);
	assert_true(log_has("non-delivery report from mailer-daemon@a.test"));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_init),
		T(test_router),
		T(test_final),
		T(test_refusals),
		T(test_accepted_once),
		T(test_router_refusals),
		T(test_final_type_fails),
		T(test_pending),
		T(test_duplicates),
		T(test_no_form),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
