/*
 * test_formtype.c - a form type's signed plugin (lib/formtype.h) with the
 * real examples/forms/expense.lua, signed at test time by a publisher
 * made at test time: verification in order (digest, publisher, name),
 * the sandbox's limits, route/check/present/definition on a Figure-3-like
 * form across three domains, where a form goes next, and the cache (a
 * first load fetched over HTTPS from an in-process server that serves
 * files as wsemaild's publish_dir does, later loads from disk only, a
 * copy altered on disk refused).
 *
 * The form: claimant q@a.test, manager m@a.test, amount 2500.00 EUR;
 * router b.test inserts the manager and finance (fin@c.test) by the
 * type's rule; fin delegates to d@b.test, who approves for fin; the
 * final party c.test checks the type's rules again.
 */
#include "testutil.h"
#include "testpki.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libxml/parser.h>

#include "crypto.h"
#include "form.h"
#include "formtype.h"
#include "http.h"
#include "msg.h"
#include "pubsig.h"

#ifndef EXPENSE_LUA
#error "EXPENSE_LUA (path of examples/forms/expense.lua) must be defined"
#endif

static testpki P;
static int64_t T0;
static char root_pem[4096], a_chain[4096], a_key[4096];

/* Publishers: acme is trusted, other is not. */
static wse_key *acme_key, *other_key;
static wse_cert *acme, *other;

static wse_buf *expense;		/* examples/forms/expense.lua */
static wse_buf *expense_sig;		/* signed by acme as "expense" */
static char expense_sha[65];

struct party {
	const char *mbox;
	int d;
	wse_key *key;
	wse_cert *cert;
};

enum { Q, M, FIN, D, NPARTY };
static struct party U[NPARTY] = {
	[Q] = { "q@a.test", 0, NULL, NULL },
	[M] = { "m@a.test", 0, NULL, NULL },
	[FIN] = { "fin@c.test", 2, NULL, NULL },
	[D] = { "d@b.test", 1, NULL, NULL },
};

static int64_t
T(int step)
{
	return T0 + 60 * step;
}

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

static void
sha_hex(const void *data, size_t len, char out[65])
{
	uint8_t d[WSE_SHA256_LEN];

	assert_wse_ok(wse_sha256(data, len, d));
	wse_hex(d, sizeof(d), out);
}

static wse_buf *
sign(const void *file, size_t len, const char *name, wse_key *k,
    wse_cert *c)
{
	wse_buf *b = wse_buf_new(WSE_PUBSIG_FILE_MAX);

	assert_non_null(b);
	assert_wse_ok(wse_pubsig_sign(file, len, name, "1.0", k, c, b));
	return b;
}

static int
setup(void **state)
{
	int i;

	(void)state;
	if (testpki_init(&P, (int64_t)time(NULL)) != WSE_OK)
		return -1;
	T0 = P.now - 1800;
	for (i = 0; i < NPARTY; i++)
		if (wse_key_generate(&U[i].key) != WSE_OK ||
		    wse_pki_issue_token(P.dom[U[i].d].ca, P.dom[U[i].d].ca_key,
		    U[i].key, U[i].mbox, 3600, T0, &U[i].cert) != WSE_OK)
			return -1;
	if (wse_pubsig_publisher_new("Acme Forms", P.now - 3600,
	    P.now + 365 * 86400, &acme_key, &acme) != WSE_OK ||
	    wse_pubsig_publisher_new("Other Forms", P.now - 3600,
	    P.now + 365 * 86400, &other_key, &other) != WSE_OK)
		return -1;
	if (wse_buf_read_file(EXPENSE_LUA, WSE_FORMTYPE_MAX_PLUGIN,
	    &expense) != WSE_OK)
		return -1;
	if ((expense_sig = wse_buf_new(WSE_PUBSIG_FILE_MAX)) == NULL ||
	    wse_pubsig_sign(wse_buf_data(expense), wse_buf_len(expense),
	    "expense", "1.0", acme_key, acme, expense_sig) != WSE_OK)
		return -1;
	sha_hex(wse_buf_data(expense), wse_buf_len(expense), expense_sha);
	snprintf(root_pem, sizeof(root_pem), "%s/root/cert.pem", P.dir);
	snprintf(a_chain, sizeof(a_chain), "%s/a.test/chain.pem", P.dir);
	snprintf(a_key, sizeof(a_key), "%s/a.test/service-key.pem", P.dir);
	return 0;
}

static int
teardown(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < NPARTY; i++) {
		wse_cert_free(&U[i].cert);
		wse_key_free(&U[i].key);
	}
	wse_buf_free(&expense);
	wse_buf_free(&expense_sig);
	wse_cert_free(&acme);
	wse_key_free(&acme_key);
	wse_cert_free(&other);
	wse_key_free(&other_key);
	testpki_free(&P);
	xmlCleanupParser();
	return 0;
}

/* ---- helpers ---- */

static wse_cert *trust_acme[1], *trust_other[1];

static void
env_init(wse_formtype_env *env, const char *cache_dir, int trust)
{
	memset(env, 0, sizeof(*env));
	env->cache_dir = cache_dir;
	trust_acme[0] = acme;
	trust_other[0] = other;
	env->publishers = trust ? trust_acme : trust_other;
	env->npublishers = 1;
	env->now = P.now;
}

static wse_formtype *
load_expense(void)
{
	wse_formtype_env env;
	wse_formtype *ft = NULL;

	env_init(&env, "/nonexistent", 1);
	assert_wse_ok(wse_formtype_load_bytes(&env, wse_buf_data(expense),
	    wse_buf_len(expense), wse_buf_str(expense_sig),
	    wse_buf_len(expense_sig), "expense", expense_sha, &ft));
	return ft;
}

/* Load a small plugin signed by acme under name. */
static wse_status
load_src(const char *src, const char *name, const wse_luabox_limits *lim,
    wse_formtype **ft_r)
{
	wse_formtype_env env;
	wse_buf *sig = sign(src, strlen(src), name, acme_key, acme);
	wse_status st;

	env_init(&env, "/nonexistent", 1);
	if (lim != NULL)
		env.limits = *lim;
	st = wse_formtype_load_bytes(&env, src, strlen(src),
	    wse_buf_str(sig), wse_buf_len(sig), name, NULL, ft_r);
	wse_buf_free(&sig);
	return st;
}

static void
wire(wse_form **f)
{
	wse_buf *b = wse_buf_new(WSE_FORM_MAX_BYTES);

	assert_wse_ok(wse_form_serialize(*f, b));
	wse_form_free(f);
	assert_wse_ok(wse_form_parse(wse_buf_data(b), wse_buf_len(b), NULL, f));
	wse_buf_free(&b);
}

static void
receive(wse_form **f, int64_t t, wse_form_phase phase, const char *party,
    wse_form_report *rep)
{
	wse_form_state_info s;
	wse_form_report tmp;

	wire(f);
	if (rep == NULL)
		rep = &tmp;
	memset(rep, 0, sizeof(*rep));
	assert_wse_ok(wse_form_verify(*f, P.trust, t, NULL, rep));
	if (rep == &tmp)
		wse_form_report_clear(&tmp);
	assert_wse_ok(wse_form_state(*f, &s));
	assert_int_equal(s.phase, phase);
	if (party != NULL)
		assert_string_equal(s.party, party);
}

/* A draft expense claim by q@a.test: route b.test, final c.test. */
static wse_form *
new_claim(const char *amount, const char *purpose)
{
	wse_form_type type = { "expense", "1.0",
	    "https://a.test/plugins/expense.lua", expense_sha };
	wse_form *f = NULL;

	assert_wse_ok(wse_form_new("q@a.test", &type, "c.test", &f));
	assert_wse_ok(wse_form_add_field(f, "amount", WSE_FIELD_DECIMAL,
	    amount));
	assert_wse_ok(wse_form_add_field(f, "currency", WSE_FIELD_TEXT,
	    "EUR"));
	assert_wse_ok(wse_form_add_field(f, "purpose", WSE_FIELD_TEXT,
	    purpose));
	assert_wse_ok(wse_form_add_field(f, "date", WSE_FIELD_DATE,
	    "2026-03-02"));
	assert_wse_ok(wse_form_add_field(f, "manager", WSE_FIELD_MAILBOX,
	    "m@a.test"));
	assert_wse_ok(wse_form_add_hop(f, WSE_HOP_ROUTER, "b.test"));
	return f;
}

static const char *const params_k[] = { "threshold", "finance" };
static const char *const params_v[] = { "1000", "fin@c.test" };

/* The value a party hands the plugin. */
static wse_luabox_value *
value(const wse_form *f, const wse_form_report *rep, const char *party,
    size_t nparams)
{
	wse_luabox_value *v = NULL;

	assert_wse_ok(wse_formtype_form_value(f, rep, party, params_k,
	    params_v, nparams, &v));
	return v;
}

/* Submitted and at router b.test, which inserts what route() says. */
static wse_form *
routed(const char *amount, wse_formtype *ft, char ***who, size_t *n)
{
	wse_form *f = new_claim(amount, "Conference in Paris");
	wse_form_signer s = user(Q);
	wse_luabox_value *v;

	assert_wse_ok(wse_form_sign_submit(f, &s, T(1)));
	receive(&f, T(2), WSE_FORM_ROUTER, "b.test", NULL);
	v = value(f, NULL, "b.test", 2);
	assert_wse_ok(wse_formtype_route(ft, v, who, n));
	wse_luabox_value_free(&v);
	s = server(1);
	assert_wse_ok(wse_form_add_insert(f, &s, 0, (const char *const *)*who,
	    *n, T(2)));
	return f;
}

/* ---- loading and verification ---- */

static void
test_load_bytes(void **state)
{
	wse_formtype *ft;
	const wse_pubsig_info *info;

	(void)state;
	ft = load_expense();
	assert_non_null(info = wse_formtype_info(ft));
	assert_string_equal(info->name, "expense");
	assert_string_equal(info->version, "1.0");
	assert_string_equal(info->sha256, expense_sha);
	assert_string_equal(info->publisher, "CN=Acme Forms");
	wse_formtype_free(&ft);
	assert_null(ft);
	wse_formtype_free(&ft);
	assert_null(wse_formtype_info(NULL));
}

static void
test_refusals(void **state)
{
	wse_formtype_env env;
	wse_formtype *ft = NULL;
	wse_buf *sig;
	char *bad, other_sha[65];
	size_t len = wse_buf_len(expense);

	(void)state;
	env_init(&env, "/nonexistent", 1);
	assert_non_null(bad = malloc(len));
	memcpy(bad, wse_buf_data(expense), len);
	bad[len / 2] ^= 0x20;

	/* Tampered file, the form's digest pinned: the digest says so. */
	assert_wse_status(wse_formtype_load_bytes(&env, bad, len,
	    wse_buf_str(expense_sig), wse_buf_len(expense_sig), "expense",
	    expense_sha, &ft), WSE_ERR_BAD_SIGNATURE);
	assert_null(ft);
	assert_non_null(strstr(wse_err_last(), "plugin expense: the plugin's "
	    "digest is not the one the form names (tampered)"));
	wse_err_clear();
	/* Not pinned: the signature's digest says so. */
	assert_wse_status(wse_formtype_load_bytes(&env, bad, len,
	    wse_buf_str(expense_sig), wse_buf_len(expense_sig), "expense",
	    NULL, &ft), WSE_ERR_BAD_SIGNATURE);
	assert_non_null(strstr(wse_err_last(), "bad signature"));
	wse_err_clear();

	/* A genuine plugin, but not the one the form names. */
	sha_hex("another file", 12, other_sha);
	assert_wse_status(wse_formtype_load_bytes(&env, wse_buf_data(expense),
	    len, wse_buf_str(expense_sig), wse_buf_len(expense_sig),
	    "expense", other_sha, &ft), WSE_ERR_BAD_SIGNATURE);
	wse_err_clear();
	assert_wse_status(wse_formtype_load_bytes(&env, wse_buf_data(expense),
	    len, wse_buf_str(expense_sig), wse_buf_len(expense_sig),
	    "expense", "../../etc/passwd", &ft), WSE_ERR_INVALID);
	wse_err_clear();

	/* A publisher this party does not trust. */
	env_init(&env, "/nonexistent", 0);
	assert_wse_status(wse_formtype_load_bytes(&env, wse_buf_data(expense),
	    len, wse_buf_str(expense_sig), wse_buf_len(expense_sig),
	    "expense", expense_sha, &ft), WSE_ERR_UNTRUSTED);
	assert_non_null(strstr(wse_err_last(), "plugin expense: untrusted "
	    "publisher CN=Acme Forms"));
	wse_err_clear();
	env.npublishers = 0;
	assert_wse_status(wse_formtype_load_bytes(&env, wse_buf_data(expense),
	    len, wse_buf_str(expense_sig), wse_buf_len(expense_sig),
	    "expense", expense_sha, &ft), WSE_ERR_UNTRUSTED);
	wse_err_clear();
	/* Signed by the untrusted one, while acme is trusted. */
	env_init(&env, "/nonexistent", 1);
	sig = sign(wse_buf_data(expense), len, "expense", other_key, other);
	assert_wse_status(wse_formtype_load_bytes(&env, wse_buf_data(expense),
	    len, wse_buf_str(sig), wse_buf_len(sig), "expense", expense_sha,
	    &ft), WSE_ERR_UNTRUSTED);
	assert_non_null(strstr(wse_err_last(), "CN=Other Forms"));
	wse_err_clear();
	wse_buf_free(&sig);

	/* Signed as another type. */
	sig = sign(wse_buf_data(expense), len, "payroll", acme_key, acme);
	assert_wse_status(wse_formtype_load_bytes(&env, wse_buf_data(expense),
	    len, wse_buf_str(sig), wse_buf_len(sig), "expense", expense_sha,
	    &ft), WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "signed as plugin "
	    "\"payroll\", not \"expense\""));
	wse_err_clear();
	/* Without an expected name any signed name goes. */
	assert_wse_ok(wse_formtype_load_bytes(&env, wse_buf_data(expense),
	    len, wse_buf_str(sig), wse_buf_len(sig), NULL, expense_sha, &ft));
	assert_string_equal(wse_formtype_info(ft)->name, "payroll");
	wse_formtype_free(&ft);
	wse_buf_free(&sig);

	/* Unsigned; a signature that is not one. */
	assert_wse_status(wse_formtype_load_bytes(&env, wse_buf_data(expense),
	    len, NULL, 0, "expense", expense_sha, &ft), WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "unsigned"));
	wse_err_clear();
	assert_wse_status(wse_formtype_load_bytes(&env, wse_buf_data(expense),
	    len, "hello\n", 6, "expense", expense_sha, &ft), WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "malformed"));
	wse_err_clear();

	/* The publisher certificate expired (a year on). */
	env.now = P.now + 400 * 86400;
	assert_wse_status(wse_formtype_load_bytes(&env, wse_buf_data(expense),
	    len, wse_buf_str(expense_sig), wse_buf_len(expense_sig),
	    "expense", expense_sha, &ft), WSE_ERR_CERT_EXPIRED);
	assert_non_null(strstr(wse_err_last(), "has expired"));
	wse_err_clear();
	env.now = P.now;

	/* Too large; bad arguments. */
	assert_wse_status(wse_formtype_load_bytes(&env, bad,
	    WSE_FORMTYPE_MAX_PLUGIN + 1, wse_buf_str(expense_sig),
	    wse_buf_len(expense_sig), "expense", NULL, &ft),
	    WSE_ERR_TOO_LARGE);
	{
		char *big = malloc(WSE_PUBSIG_FILE_MAX + 1);

		assert_non_null(big);
		memset(big, ' ', WSE_PUBSIG_FILE_MAX + 1);
		memcpy(big, wse_buf_data(expense_sig),
		    wse_buf_len(expense_sig));
		assert_wse_status(wse_formtype_load_bytes(&env,
		    wse_buf_data(expense), len, big, WSE_PUBSIG_FILE_MAX + 1,
		    "expense", expense_sha, &ft), WSE_ERR_TOO_LARGE);
		assert_non_null(strstr(wse_err_last(),
		    "the signature file has"));
		free(big);
	}
	assert_wse_status(wse_formtype_load_bytes(NULL, bad, len, NULL, 0,
	    NULL, NULL, &ft), WSE_ERR_INVALID);
	assert_wse_status(wse_formtype_load_bytes(&env, NULL, 5, NULL, 0,
	    NULL, NULL, &ft), WSE_ERR_INVALID);
	wse_err_clear();
	assert_null(ft);
	free(bad);
}

/* Hostile plugins: each refused by a limit, the process unharmed. */
static void
test_limits(void **state)
{
	static const char loop[] = "while true do end\nreturn {}\n";
	static const char hog[] = "local t, i = {}, 0\n"
	    "while true do i = i + 1; t[i] = string.rep('x', 4096) .. i end\n";
	static const char slow[] = "local M = {}\n"
	    "function M.route(f) while true do end end\n"
	    "function M.check(f) return true end\n"
	    "return M\n";
	wse_luabox_limits lim;
	wse_formtype *ft = NULL;
	wse_luabox_value *v = wse_luabox_map();
	char **who = NULL;
	size_t n = 0;
	double t0;

	(void)state;
	memset(&lim, 0, sizeof(lim));
	lim.max_instructions = 2000000;
	lim.max_millis = 5000;
	t0 = testutil_now_ms();
	assert_wse_status(load_src(loop, "loop", &lim, &ft),
	    WSE_ERR_TOO_LARGE);
	assert_null(ft);
	assert_non_null(strstr(wse_err_last(), "plugin loop: running the "
	    "chunk: instruction limit (2000000) exceeded"));
	assert_true(testutil_now_ms() - t0 < 5000.0);
	wse_err_clear();

	memset(&lim, 0, sizeof(lim));
	lim.max_memory = 2u << 20;
	assert_wse_status(load_src(hog, "hog", &lim, &ft), WSE_ERR_TOO_LARGE);
	assert_non_null(strstr(wse_err_last(), "memory limit"));
	wse_err_clear();

	/* A route() that never returns; the box is fine afterwards. */
	memset(&lim, 0, sizeof(lim));
	lim.max_instructions = 1000000;
	assert_wse_ok(load_src(slow, "slow", &lim, &ft));
	assert_non_null(v);
	assert_wse_status(wse_formtype_route(ft, v, &who, &n),
	    WSE_ERR_TOO_LARGE);
	assert_null(who);
	assert_int_equal(n, 0);
	wse_err_clear();
	assert_wse_ok(wse_formtype_check(ft, v, NULL, 0));
	wse_formtype_free(&ft);
	wse_luabox_value_free(&v);

	/* And the real one still loads. */
	ft = load_expense();
	wse_formtype_free(&ft);
}

/* ---- the entry points on a Figure-3-like form ---- */

static void
test_route(void **state)
{
	wse_formtype *ft = load_expense();
	wse_luabox_value *v;
	wse_form *f;
	wse_form_signer s;
	char **who = NULL;
	size_t n = 0;

	(void)state;
	/* Over the threshold: the manager and finance. */
	f = routed("2500.00", ft, &who, &n);
	assert_int_equal(n, 2);
	assert_string_equal(who[0], "m@a.test");
	assert_string_equal(who[1], "fin@c.test");
	wse_formtype_strings_free(&who, n);
	assert_null(who);
	wse_form_free(&f);

	/* Under it: the manager only. */
	f = routed("250", ft, &who, &n);
	assert_int_equal(n, 1);
	assert_string_equal(who[0], "m@a.test");
	wse_formtype_strings_free(&who, n);
	wse_form_free(&f);

	/* Over it with no finance configured at the router: refused. */
	f = new_claim("1000.01", "Printer");
	s = user(Q);
	assert_wse_ok(wse_form_sign_submit(f, &s, T(1)));
	receive(&f, T(2), WSE_FORM_ROUTER, "b.test", NULL);
	v = value(f, NULL, "b.test", 1);
	assert_wse_status(wse_formtype_route(ft, v, &who, &n),
	    WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "parameter finance is not "
	    "set"));
	wse_err_clear();
	assert_null(who);
	wse_luabox_value_free(&v);
	wse_form_free(&f);

	/* The claimant already routed it to the manager: not twice. */
	f = new_claim("99.90", "Books");
	assert_wse_ok(wse_form_add_hop(f, WSE_HOP_APPROVER, "m@a.test"));
	s = user(Q);
	assert_wse_ok(wse_form_sign_submit(f, &s, T(1)));
	receive(&f, T(2), WSE_FORM_ROUTER, "b.test", NULL);
	v = value(f, NULL, "b.test", 2);
	assert_wse_ok(wse_formtype_route(ft, v, &who, &n));
	assert_int_equal(n, 0);
	assert_null(who);
	wse_luabox_value_free(&v);
	wse_form_free(&f);
	wse_formtype_free(&ft);
}

/* Carry a routed form (manager, finance) to the final party:
 * m approves, fin delegates to d, d approves for fin. */
static wse_form *
to_final(wse_formtype *ft, const char *amount, wse_form_report *rep)
{
	char **who = NULL;
	size_t n = 0;
	wse_form *f = routed(amount, ft, &who, &n);
	wse_form_signer s;

	assert_int_equal(n, 2);
	wse_formtype_strings_free(&who, n);
	receive(&f, T(3), WSE_FORM_APPROVER, "m@a.test", NULL);
	s = user(M);
	assert_wse_ok(wse_form_add_decision(f, &s, WSE_VERDICT_APPROVE, NULL,
	    T(3)));
	receive(&f, T(4), WSE_FORM_APPROVER, "fin@c.test", NULL);
	s = user(FIN);
	assert_wse_ok(wse_form_add_delegation(f, &s, "d@b.test", T(4)));
	receive(&f, T(5), WSE_FORM_APPROVER, "d@b.test", NULL);
	s = user(D);
	assert_wse_ok(wse_form_add_decision(f, &s, WSE_VERDICT_APPROVE,
	    "ok for fin", T(5)));
	receive(&f, P.now, WSE_FORM_FINAL, "c.test", rep);
	return f;
}

static void
test_check(void **state)
{
	static const char *const k1[] = { "threshold", "finance" };
	static const char *const v_lenient[] = { "5000", "fin@c.test" };
	static const char *const v_other[] = { "1000", "cfo@c.test" };
	wse_formtype *ft = load_expense();
	wse_form_report rep;
	wse_luabox_value *v;
	wse_form *f;
	char reason[128], **who = NULL;
	size_t n = 0;
	wse_form_signer s;

	(void)state;
	/* Every rule kept: accepted at the final party. */
	f = to_final(ft, "2500.00", &rep);
	assert_int_equal(rep.outcome, WSE_OUTCOME_APPROVED);
	assert_int_equal(rep.napprovals, 2);
	v = value(f, &rep, "c.test", 2);
	assert_wse_ok(wse_formtype_check(ft, v, reason, sizeof(reason)));
	assert_string_equal(reason, "");
	wse_luabox_value_free(&v);
	/* The final party's finance is someone else: refused. */
	assert_wse_ok(wse_formtype_form_value(f, &rep, "c.test", k1, v_other,
	    2, &v));
	assert_wse_status(wse_formtype_check(ft, v, reason, sizeof(reason)),
	    WSE_ERR_NOT_AUTHORIZED);
	assert_string_equal(reason, "an expense over 1000 must be approved by "
	    "finance (cfo@c.test)");
	assert_non_null(strstr(wse_err_last(), "plugin expense: check() "
	    "refused the form: an expense over 1000"));
	wse_err_clear();
	wse_luabox_value_free(&v);
	/* No report: no approvals at all. */
	v = value(f, NULL, "c.test", 2);
	assert_wse_status(wse_formtype_check(ft, v, reason, sizeof(reason)),
	    WSE_ERR_NOT_AUTHORIZED);
	assert_string_equal(reason, "the manager m@a.test has not approved");
	wse_err_clear();
	wse_luabox_value_free(&v);
	wse_form_report_clear(&rep);
	wse_form_free(&f);

	/* A lenient router (threshold 5000) skipped finance; the final
	 * party's own rule (1000) refuses the approved form. */
	f = new_claim("2500.00", "Conference");
	s = user(Q);
	assert_wse_ok(wse_form_sign_submit(f, &s, T(1)));
	receive(&f, T(2), WSE_FORM_ROUTER, "b.test", NULL);
	assert_wse_ok(wse_formtype_form_value(f, NULL, "b.test", k1,
	    v_lenient, 2, &v));
	assert_wse_ok(wse_formtype_route(ft, v, &who, &n));
	wse_luabox_value_free(&v);
	assert_int_equal(n, 1);
	s = server(1);
	assert_wse_ok(wse_form_add_insert(f, &s, 0, (const char *const *)who,
	    n, T(2)));
	wse_formtype_strings_free(&who, n);
	receive(&f, T(3), WSE_FORM_APPROVER, "m@a.test", NULL);
	s = user(M);
	assert_wse_ok(wse_form_add_decision(f, &s, WSE_VERDICT_APPROVE, NULL,
	    T(3)));
	receive(&f, P.now, WSE_FORM_FINAL, "c.test", &rep);
	v = value(f, &rep, "c.test", 2);
	assert_wse_status(wse_formtype_check(ft, v, reason, 30),
	    WSE_ERR_NOT_AUTHORIZED);
	assert_string_equal(reason, "an expense over 1000 must ...");
	wse_err_clear();
	wse_luabox_value_free(&v);
	wse_form_report_clear(&rep);
	wse_form_free(&f);

	/* A draft: the fields themselves. */
	f = new_claim("0", "Nothing");
	v = value(f, NULL, NULL, 0);
	assert_wse_status(wse_formtype_check(ft, v, reason, sizeof(reason)),
	    WSE_ERR_NOT_AUTHORIZED);
	assert_string_equal(reason, "the amount must be greater than zero");
	wse_err_clear();
	wse_luabox_value_free(&v);
	wse_form_free(&f);
	f = new_claim("12.00", "Lunch");
	v = value(f, NULL, NULL, 0);
	assert_wse_ok(wse_formtype_check(ft, v, NULL, 0));
	wse_luabox_value_free(&v);
	wse_form_free(&f);
	wse_formtype_free(&ft);
}

static void
test_form_value(void **state)
{
	wse_formtype *ft = load_expense();
	wse_form_report rep;
	wse_luabox_value *v;
	const wse_luabox_value *x, *y;
	wse_form *f;
	const char *const many[WSE_FORMTYPE_MAX_PARAMS + 1] = { NULL };

	(void)state;
	f = to_final(ft, "2500.00", &rep);
	v = value(f, &rep, "c.test", 2);
	assert_string_equal(wse_luabox_map_get(v, "type")->str, "expense");
	assert_string_equal(wse_luabox_map_get(v, "version")->str, "1.0");
	assert_string_equal(wse_luabox_map_get(v, "claimant")->str,
	    "q@a.test");
	assert_string_equal(wse_luabox_map_get(v, "final")->str, "c.test");
	assert_string_equal(wse_luabox_map_get(v, "party")->str, "c.test");
	assert_string_equal(wse_luabox_map_get(v, "outcome")->str,
	    "approved");
	assert_int_equal(wse_luabox_map_get(v, "submitted")->integer, T(1));
	x = wse_luabox_map_get(v, "fields");
	assert_int_equal(wse_luabox_map_get(x, "amount")->type,
	    WSE_LUABOX_NUMBER);
	assert_true(wse_luabox_map_get(x, "amount")->number == 2500.0);
	assert_string_equal(wse_luabox_map_get(x, "manager")->str, "m@a.test");
	x = wse_luabox_map_get(v, "text");
	assert_string_equal(wse_luabox_map_get(x, "amount")->str, "2500.00");
	x = wse_luabox_map_get(v, "route");
	assert_int_equal(x->type, WSE_LUABOX_ARRAY);
	assert_int_equal(x->n, 3);
	assert_string_equal(wse_luabox_map_get(x->items[0], "kind")->str,
	    "router");
	assert_string_equal(wse_luabox_map_get(x->items[2], "name")->str,
	    "fin@c.test");
	x = wse_luabox_map_get(v, "approvals");
	assert_int_equal(x->n, 2);
	y = x->items[1];
	assert_string_equal(wse_luabox_map_get(y, "approver")->str,
	    "fin@c.test");
	assert_string_equal(wse_luabox_map_get(y, "signer")->str, "d@b.test");
	assert_int_equal(wse_luabox_map_get(y, "position")->integer, 5);
	x = wse_luabox_map_get(v, "params");
	assert_string_equal(wse_luabox_map_get(x, "finance")->str,
	    "fin@c.test");
	wse_luabox_value_free(&v);
	/* No party, no params. */
	v = value(f, NULL, NULL, 0);
	assert_null(wse_luabox_map_get(v, "party"));
	assert_int_equal(wse_luabox_map_get(v, "approvals")->n, 0);
	assert_int_equal(wse_luabox_map_get(v, "params")->n, 0);
	wse_luabox_value_free(&v);
	/* Too many parameters; a parameter without a key. */
	assert_wse_status(wse_formtype_form_value(f, NULL, NULL, many, many,
	    WSE_FORMTYPE_MAX_PARAMS + 1, &v), WSE_ERR_TOO_LARGE);
	assert_wse_status(wse_formtype_form_value(f, NULL, NULL, many, many,
	    1, &v), WSE_ERR_INVALID);
	assert_null(v);
	wse_err_clear();
	wse_form_report_clear(&rep);
	wse_form_free(&f);
	/* A parsed form nobody verified. */
	f = new_claim("1.00", "x");
	{
		wse_form_signer s = user(Q);

		assert_wse_ok(wse_form_sign_submit(f, &s, T(1)));
	}
	wire(&f);
	assert_wse_status(wse_formtype_form_value(f, NULL, NULL, NULL, NULL,
	    0, &v), WSE_ERR_INVALID);
	wse_err_clear();
	wse_form_free(&f);
	wse_formtype_free(&ft);
}

static void
test_present(void **state)
{
	static const char odd[] = "local M = {}\n"
	    "function M.present(f)\n"
	    "  return { 'red \\27[31m alert\\tend', 'bad \\255 byte', "
	    "'c1 \\194\\155 csi', 'caf\\195\\169', string.rep('y', 5000) }\n"
	    "end\n"
	    "return M\n";
	static const char bare[] = "return { check = function(f) return "
	    "false end }\n";
	static const char many[] = "return { present = function(f) local t "
	    "= {} for i = 1, 201 do t[i] = 'x' end return t end }\n";
	wse_formtype *ft = load_expense();
	wse_form_report rep;
	wse_luabox_value *v;
	wse_form *f;
	wse_buf *out = wse_buf_new(1 << 16), *small;
	char reason[100];

	(void)state;
	f = to_final(ft, "2500.00", &rep);
	v = value(f, &rep, "c.test", 2);
	assert_wse_ok(wse_formtype_present(ft, v, out));
	assert_string_equal(wse_buf_str(out),
	    "Expense claim by q@a.test: 2500.00 EUR for \"Conference in "
	    "Paris\" on 2026-03-02\n"
	    "Manager: m@a.test\n"
	    "Approved by m@a.test\n"
	    "Approved by fin@c.test (signed by d@b.test, delegate)\n"
	    "Status: approved\n");
	/* All or nothing. */
	assert_non_null(small = wse_buf_new(40));
	assert_wse_status(wse_formtype_present(ft, v, small),
	    WSE_ERR_TOO_LARGE);
	assert_int_equal(wse_buf_len(small), 0);
	wse_err_clear();
	wse_buf_free(&small);
	wse_formtype_free(&ft);

	/* What a plugin says is cleaned for a terminal. */
	assert_wse_ok(load_src(odd, "odd", NULL, &ft));
	wse_buf_reset(out);
	assert_wse_ok(wse_formtype_present(ft, v, out));
	assert_memory_equal(wse_buf_str(out), "red ?[31m alert end\n"
	    "bad ? byte\nc1 ? csi\ncaf\xc3\xa9\nyyy", 49);
	assert_int_equal(wse_buf_len(out), 46 + 997 + 3 + 1);
	assert_memory_equal(wse_buf_str(out) + 46 + 997, "...\n", 4);
	wse_formtype_free(&ft);

	/* No present(): a generic listing. check() saying false. */
	assert_wse_ok(load_src(bare, "bare", NULL, &ft));
	wse_buf_reset(out);
	assert_wse_ok(wse_formtype_present(ft, v, out));
	assert_non_null(strstr(wse_buf_str(out), "claimant: q@a.test; "
	    "outcome: approved\n"));
	assert_non_null(strstr(wse_buf_str(out), "\npurpose: Conference in "
	    "Paris\n"));
	assert_wse_status(wse_formtype_check(ft, v, reason, sizeof(reason)),
	    WSE_ERR_NOT_AUTHORIZED);
	assert_non_null(strstr(reason, "no reason given"));
	wse_err_clear();
	wse_formtype_free(&ft);

	assert_wse_ok(load_src(many, "many", NULL, &ft));
	wse_buf_reset(out);
	assert_wse_status(wse_formtype_present(ft, v, out), WSE_ERR_INVALID);
	assert_int_equal(wse_buf_len(out), 0);
	wse_err_clear();
	wse_formtype_free(&ft);

	wse_luabox_value_free(&v);
	wse_form_report_clear(&rep);
	wse_form_free(&f);
	wse_buf_free(&out);
}

/* Results that are not what the header promises are refused. */
static void
test_strict_results(void **state)
{
	static const char odd[] = "local M = {}\n"
	    "function M.route(f) return f.params.r == 'dup' and "
	    "{ 'Alice@A.test', 'alice@a.test' } or f.params.r == 'bad' and "
	    "{ 'Alice@A.test', 'bob' } or f.params.r == 'map' and "
	    "{ x = 1 } or { 'Alice@A.Test', 'c5@C.TEST' } end\n"
	    "function M.check(f) if f.params.r == 'err' then "
	    "error('no way') end return 42 end\n"
	    "function M.definition() return { name = 'other', version = '1' }"
	    " end\n"
	    "return M\n";
	static const char *const rk[] = { "r" };
	static const char *const rv_ok[] = { "ok" }, *const rv_dup[] = {
	    "dup" }, *const rv_bad[] = { "bad" }, *const rv_map[] = { "map" },
	    *const rv_err[] = { "err" };
	wse_formtype *ft = NULL;
	wse_formtype_def def;
	wse_luabox_value *v;
	wse_form *f = new_claim("1.00", "x");
	char **who = NULL, reason[64];
	size_t n = 0;

	(void)state;
	assert_wse_ok(load_src(odd, "odd", NULL, &ft));
	assert_wse_ok(wse_formtype_form_value(f, NULL, NULL, rk, rv_ok, 1,
	    &v));
	assert_wse_ok(wse_formtype_route(ft, v, &who, &n));
	assert_int_equal(n, 2);
	assert_string_equal(who[0], "alice@a.test");
	assert_string_equal(who[1], "c5@c.test");
	wse_formtype_strings_free(&who, n);
	assert_wse_status(wse_formtype_check(ft, v, reason, sizeof(reason)),
	    WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "check() returned an integer"));
	wse_err_clear();
	wse_luabox_value_free(&v);

	assert_wse_ok(wse_formtype_form_value(f, NULL, NULL, rk, rv_dup, 1,
	    &v));
	assert_wse_status(wse_formtype_route(ft, v, &who, &n),
	    WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "alice@a.test twice"));
	wse_luabox_value_free(&v);
	assert_wse_ok(wse_formtype_form_value(f, NULL, NULL, rk, rv_bad, 1,
	    &v));
	assert_wse_status(wse_formtype_route(ft, v, &who, &n),
	    WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "entry 2, \"bob\", is not a "
	    "mailbox"));
	wse_luabox_value_free(&v);
	assert_wse_ok(wse_formtype_form_value(f, NULL, NULL, rk, rv_map, 1,
	    &v));
	assert_wse_status(wse_formtype_route(ft, v, &who, &n),
	    WSE_ERR_INVALID);
	wse_luabox_value_free(&v);
	assert_null(who);
	assert_wse_ok(wse_formtype_form_value(f, NULL, NULL, rk, rv_err, 1,
	    &v));
	assert_wse_status(wse_formtype_check(ft, v, reason, sizeof(reason)),
	    WSE_ERR_INVALID);
	assert_non_null(strstr(reason, "no way"));
	wse_luabox_value_free(&v);
	wse_err_clear();

	/* definition() must name the type it was signed as. */
	assert_wse_status(wse_formtype_definition(ft, &def), WSE_ERR_INVALID);
	assert_int_equal(def.nfields, 0);
	assert_null(def.fields);
	wse_err_clear();
	wse_formtype_free(&ft);
	wse_form_free(&f);
}

/* What route() returns is checked before anyone is inserted. */
static void
test_route_results(void **state)
{
	static const char src[] = "local M = {}\n"
	    "function M.route(f)\n"
	    "  if f.params.r == 'many' then\n"
	    "    local t = {}\n"
	    "    for i = 1, 65 do t[i] = 'p' .. i .. '@a.test' end\n"
	    "    return t\n"
	    "  elseif f.params.r == 'num' then return { 'a@a.test', 7 }\n"
	    "  elseif f.params.r == 'str' then return 'a@a.test'\n"
	    "  end\n"
	    "  return {}\n"
	    "end\n"
	    "return M\n";
	static const char *const rk[] = { "r" };
	static const struct {
		const char *r;
		const char *needle;
	} T_[] = {
		{ "many", "route() returned 65 approvers, at most 64" },
		{ "num", "entry 2 is an integer, not a mailbox" },
		{ "str", "not an array of mailboxes" },
	};
	wse_formtype *ft = NULL;
	wse_luabox_value *v;
	wse_form *f = new_claim("1.00", "x");
	char **who = NULL;
	size_t n = 0, i;

	(void)state;
	assert_wse_ok(load_src(src, "odd", NULL, &ft));
	for (i = 0; i < sizeof(T_) / sizeof(T_[0]); i++) {
		const char *rv[1] = { T_[i].r };

		assert_wse_ok(wse_formtype_form_value(f, NULL, NULL, rk, rv, 1,
		    &v));
		assert_wse_status(wse_formtype_route(ft, v, &who, &n),
		    WSE_ERR_INVALID);
		if (strstr(wse_err_last(), T_[i].needle) == NULL)
			fail_msg("route %s: \"%s\"", T_[i].r, wse_err_last());
		assert_null(who);
		assert_int_equal(n, 0);
		wse_err_clear();
		wse_luabox_value_free(&v);
	}
	wse_formtype_free(&ft);
	wse_form_free(&f);
}

static void
test_definition(void **state)
{
	static const char bare[] = "return { definition = function() return "
	    "{ name = 'bare', version = '2', fields = { { name = 'n', type = "
	    "'integer' } }, route = { 'B.test', 'X@C.test' }, final = "
	    "'c.test' } end }\n";
	static const char badtype[] = "return { definition = function() "
	    "return { name = 'badtype', version = '2', fields = { { name = "
	    "'n', type = 'float' } } } end }\n";
	wse_formtype *ft = load_expense();
	wse_formtype_def def;

	(void)state;
	assert_wse_ok(wse_formtype_definition(ft, &def));
	assert_string_equal(def.name, "expense");
	assert_string_equal(def.version, "1.0");
	assert_string_equal(def.title, "Expense claim");
	assert_int_equal(def.nfields, 5);
	assert_string_equal(def.fields[0].name, "amount");
	assert_int_equal(def.fields[0].type, WSE_FIELD_DECIMAL);
	assert_true(def.fields[0].required);
	assert_int_equal(def.fields[1].type, WSE_FIELD_TEXT);
	assert_string_equal(def.fields[2].name, "purpose");
	assert_int_equal(def.fields[3].type, WSE_FIELD_DATE);
	assert_string_equal(def.fields[4].name, "manager");
	assert_int_equal(def.fields[4].type, WSE_FIELD_MAILBOX);
	assert_string_equal(def.fields[4].label, "Your manager");
	assert_int_equal(def.nroute, 0);
	assert_string_equal(def.final_party, "");
	wse_formtype_def_clear(&def);
	assert_null(def.fields);
	wse_formtype_free(&ft);

	assert_wse_ok(load_src(bare, "bare", NULL, &ft));
	assert_wse_ok(wse_formtype_definition(ft, &def));
	assert_string_equal(def.title, "");
	assert_int_equal(def.nfields, 1);
	assert_int_equal(def.fields[0].type, WSE_FIELD_INTEGER);
	assert_false(def.fields[0].required);
	assert_int_equal(def.nroute, 2);
	assert_int_equal(def.route[0].kind, WSE_HOP_ROUTER);
	assert_string_equal(def.route[0].name, "b.test");
	assert_int_equal(def.route[1].kind, WSE_HOP_APPROVER);
	assert_string_equal(def.route[1].name, "x@c.test");
	assert_string_equal(def.final_party, "c.test");
	wse_formtype_def_clear(&def);
	wse_formtype_free(&ft);

	assert_wse_ok(load_src(badtype, "badtype", NULL, &ft));
	assert_wse_status(wse_formtype_definition(ft, &def), WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "field n has no valid type"));
	wse_err_clear();
	wse_formtype_free(&ft);
}

/* ---- carriage ---- */

static void
test_next_address(void **state)
{
	wse_formtype *ft = load_expense();
	wse_form *f;
	wse_form_signer s;
	char out[64], **who = NULL;
	size_t n = 0;

	(void)state;
	f = new_claim("2500.00", "Trip");
	assert_wse_status(wse_formtype_next_address(f, NULL, out,
	    sizeof(out)), WSE_ERR_INVALID);
	assert_string_equal(out, "");
	wse_err_clear();
	s = user(Q);
	assert_wse_ok(wse_form_sign_submit(f, &s, T(1)));
	/* Signed here: the claimant sends it to the router's service. */
	assert_wse_ok(wse_formtype_next_address(f, NULL, out, sizeof(out)));
	assert_string_equal(out, "forms@b.test");
	assert_wse_ok(wse_formtype_next_address(f, "Formulare", out,
	    sizeof(out)));
	assert_string_equal(out, "formulare@b.test");
	assert_wse_status(wse_formtype_next_address(f, "no way", out,
	    sizeof(out)), WSE_ERR_INVALID);
	assert_wse_status(wse_formtype_next_address(f, NULL, out, 12),
	    WSE_ERR_TOO_LARGE);
	wse_err_clear();
	/* Received but not verified: nowhere. */
	wire(&f);
	assert_wse_status(wse_formtype_next_address(f, NULL, out,
	    sizeof(out)), WSE_ERR_INVALID);
	wse_err_clear();
	wse_form_free(&f);

	f = routed("2500.00", ft, &who, &n);
	wse_formtype_strings_free(&who, n);
	assert_wse_ok(wse_formtype_next_address(f, NULL, out, sizeof(out)));
	assert_string_equal(out, "m@a.test");
	receive(&f, T(3), WSE_FORM_APPROVER, "m@a.test", NULL);
	s = user(M);
	assert_wse_ok(wse_form_add_decision(f, &s, WSE_VERDICT_APPROVE, NULL,
	    T(3)));
	assert_wse_ok(wse_formtype_next_address(f, NULL, out, sizeof(out)));
	assert_string_equal(out, "fin@c.test");
	receive(&f, T(4), WSE_FORM_APPROVER, "fin@c.test", NULL);
	s = user(FIN);
	assert_wse_ok(wse_form_add_delegation(f, &s, "d@b.test", T(4)));
	assert_wse_ok(wse_formtype_next_address(f, NULL, out, sizeof(out)));
	assert_string_equal(out, "d@b.test");
	receive(&f, T(5), WSE_FORM_APPROVER, "d@b.test", NULL);
	s = user(D);
	assert_wse_ok(wse_form_add_decision(f, &s, WSE_VERDICT_REJECT,
	    "too much", T(5)));
	/* Rejected: the final party closes it anyway. */
	assert_wse_ok(wse_formtype_next_address(f, NULL, out, sizeof(out)));
	assert_string_equal(out, "forms@c.test");
	receive(&f, P.now, WSE_FORM_FINAL, "c.test", NULL);
	s = server(2);
	assert_wse_ok(wse_form_add_accept(f, &s, P.now));
	/* Closed: the outcome goes back to the claimant. */
	assert_wse_ok(wse_formtype_next_address(f, NULL, out, sizeof(out)));
	assert_string_equal(out, "q@a.test");
	wse_form_free(&f);
	wse_formtype_free(&ft);
}

static void
test_find_attachment(void **state)
{
	wse_msg *m = NULL;
	const wse_attachment *a;

	(void)state;
	assert_null(wse_formtype_find_attachment(NULL));
	assert_wse_ok(wse_msg_new(&m));
	assert_null(wse_formtype_find_attachment(m));
	assert_wse_ok(wse_msg_add_attachment(m, "form.xml", "text/plain",
	    "a", 1));
	assert_wse_ok(wse_msg_add_attachment(m, WSE_FORM_ATTACHMENT,
	    WSE_FORM_MEDIA_TYPE, "<f:Form/>", 9));
	assert_wse_ok(wse_msg_add_attachment(m, "second.xml",
	    WSE_FORM_MEDIA_TYPE, "<x/>", 4));
	assert_non_null(a = wse_formtype_find_attachment(m));
	assert_string_equal(a->name, "form.xml");
	assert_string_equal(a->type, WSE_FORM_MEDIA_TYPE);
	assert_int_equal(a->size, 9);
	wse_msg_free(&m);
}

/* ---- the cache, with a server like wsemaild's publish_dir ---- */

struct pubsrv {
	wse_http_server *srv;
	pthread_t th;
	wse_status run_st;
	const char *dir;
	pthread_mutex_t lock;
	int gets;
	int fail;		/* answer 500 to everything */
};

static void
pub_handler(void *arg, wse_http_req *req)
{
	struct pubsrv *ps = arg;
	const char *path = wse_http_req_path(req), *name;
	char file[4096];
	wse_buf *b = NULL;
	int fail;

	pthread_mutex_lock(&ps->lock);
	ps->gets++;
	fail = ps->fail;
	pthread_mutex_unlock(&ps->lock);
	if (fail) {
		wse_http_reply(req, 500, "text/plain", "oops\n", 5);
		return;
	}
	if (strcmp(wse_http_req_method(req), "GET") != 0 ||
	    strncmp(path, "/plugins/", 9) != 0 ||
	    strchr(name = path + 9, '/') != NULL || name[0] == '.' ||
	    snprintf(file, sizeof(file), "%s/%s", ps->dir, name) >=
	    (int)sizeof(file) ||
	    wse_buf_read_file(file, 4u << 20, &b) != WSE_OK) {
		wse_err_clear();
		wse_http_reply(req, 404, "text/plain", "not found\n", 10);
		return;
	}
	wse_http_reply(req, 200, "text/plain; charset=utf-8",
	    wse_buf_data(b), wse_buf_len(b));
	wse_buf_free(&b);
}

static void *
pub_run(void *arg)
{
	struct pubsrv *ps = arg;

	ps->run_st = wse_http_server_run(ps->srv);
	return NULL;
}

static void
pub_start(struct pubsrv *ps, const char *dir, const char *listen)
{
	wse_http_server_opts o;

	memset(ps, 0, sizeof(*ps));
	pthread_mutex_init(&ps->lock, NULL);
	ps->dir = dir;
	memset(&o, 0, sizeof(o));
	o.listen = listen;
	o.cert_chain = a_chain;
	o.key = a_key;
	o.client_cert = WSE_CLIENT_CERT_NONE;
	o.max_body = 1024;
	o.timeout_s = 5;
	o.max_connections = 16;
	assert_wse_ok(wse_http_server_new(&o, pub_handler, ps, &ps->srv));
	assert_int_equal(pthread_create(&ps->th, NULL, pub_run, ps), 0);
}

static void
pub_stop(struct pubsrv *ps)
{
	wse_http_server_stop(ps->srv);
	pthread_join(ps->th, NULL);
	assert_wse_ok(ps->run_st);
	wse_http_server_free(&ps->srv);
	pthread_mutex_destroy(&ps->lock);
}

static int
pub_gets(struct pubsrv *ps)
{
	int n;

	pthread_mutex_lock(&ps->lock);
	n = ps->gets;
	pthread_mutex_unlock(&ps->lock);
	return n;
}

static void
put_file(const char *dir, const char *name, const void *data, size_t len)
{
	char path[4096];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(fp = fopen(path, "wb"));
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void
content_for(wse_form_content *c, const char *url, const char *sha)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->type_name, sizeof(c->type_name), "expense");
	snprintf(c->type_version, sizeof(c->type_version), "1.0");
	snprintf(c->plugin_url, sizeof(c->plugin_url), "%s", url);
	snprintf(c->plugin_sha256, sizeof(c->plugin_sha256), "%s", sha);
}

static void
test_cache(void **state)
{
	struct pubsrv ps;
	wse_http_client_opts co;
	wse_http_client *http = NULL;
	wse_formtype_env env;
	wse_formtype *ft = NULL;
	wse_form_content c;
	char *pub = testutil_tmpdir(), *cache = testutil_tmpdir();
	char url[256], listen[64], path[4096], msg[2048];
	struct stat sb;
	uint16_t port;
	wse_formtype_def def;
	char *big;

	(void)state;
	put_file(pub, "expense.lua", wse_buf_data(expense),
	    wse_buf_len(expense));
	put_file(pub, "expense.lua.sig", wse_buf_data(expense_sig),
	    wse_buf_len(expense_sig));
	pub_start(&ps, pub, "127.0.0.1:0");
	port = wse_http_server_port(ps.srv);
	memset(&co, 0, sizeof(co));
	co.roots = root_pem;
	co.connect_timeout_ms = 5000;
	co.timeout_ms = 10000;
	assert_wse_ok(wse_http_client_new(&co, &http));
	env_init(&env, cache, 1);
	env.http = http;
	env.connect_addr = "127.0.0.1";
	snprintf(url, sizeof(url), "https://a.test:%u/plugins/expense.lua",
	    (unsigned)port);
	content_for(&c, url, expense_sha);

	/* First load: fetched (plugin and signature), verified, cached. */
	assert_wse_ok(wse_formtype_load(&env, &c, &ft));
	assert_int_equal(pub_gets(&ps), 2);
	assert_wse_ok(wse_formtype_definition(ft, &def));
	assert_string_equal(def.name, "expense");
	wse_formtype_def_clear(&def);
	wse_formtype_free(&ft);
	snprintf(path, sizeof(path), "%s/%s.lua", cache, expense_sha);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0644);
	assert_int_equal((size_t)sb.st_size, wse_buf_len(expense));
	snprintf(path, sizeof(path), "%s/%s.lua.sig", cache, expense_sha);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0644);

	/* Second load: the cache only. */
	assert_wse_ok(wse_formtype_load(&env, &c, &ft));
	assert_int_equal(pub_gets(&ps), 2);
	wse_formtype_free(&ft);
	pub_stop(&ps);
	assert_wse_ok(wse_formtype_load(&env, &c, &ft));
	wse_formtype_free(&ft);
	env.http = NULL;
	assert_wse_ok(wse_formtype_load(&env, &c, &ft));
	wse_formtype_free(&ft);
	/* Checked again on every load: this party stops trusting acme. */
	env.publishers = trust_other;
	assert_wse_status(wse_formtype_load(&env, &c, &ft), WSE_ERR_UNTRUSTED);
	assert_non_null(strstr(wse_err_last(), "plugin expense, cached copy "));
	assert_non_null(strstr(wse_err_last(), ": untrusted publisher "
	    "CN=Acme Forms"));
	wse_err_clear();
	env.publishers = trust_acme;

	/* A cached file altered on disk is refused ... */
	snprintf(path, sizeof(path), "%s/%s.lua", cache, expense_sha);
	{
		FILE *fp = fopen(path, "ab");

		assert_non_null(fp);
		fputs("\nreturn { route = function() return {'eve@b.test'} "
		    "end }\n", fp);
		fclose(fp);
	}
	assert_wse_status(wse_formtype_load(&env, &c, &ft),
	    WSE_ERR_BAD_SIGNATURE);
	assert_null(ft);
	assert_non_null(strstr(wse_err_last(), "(tampered)"));
	wse_err_clear();
	/* ... whether or not a download could replace it ... */
	env.http = http;
	assert_wse_status(wse_formtype_load(&env, &c, &ft), WSE_ERR_TEMPFAIL);
	wse_err_format(msg, sizeof(msg));
	assert_non_null(strstr(msg, "(tampered)"));
	wse_err_clear();
	/* ... and replaced by a good download when it is back. */
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)port);
	pub_start(&ps, pub, listen);
	assert_wse_ok(wse_formtype_load(&env, &c, &ft));
	assert_int_equal(pub_gets(&ps), 2);
	wse_formtype_free(&ft);
	env.http = NULL;
	assert_wse_ok(wse_formtype_load(&env, &c, &ft));
	wse_formtype_free(&ft);

	/* A symbolic link in the cache is not followed. */
	assert_int_equal(unlink(path), 0);
	snprintf(msg, sizeof(msg), "%s/expense.lua", pub);
	assert_int_equal(symlink(msg, path), 0);
	assert_wse_status(wse_formtype_load(&env, &c, &ft), WSE_ERR_IO);
	wse_err_clear();
	assert_int_equal(unlink(path), 0);
	/* Not in the cache, and no fetching. */
	assert_wse_status(wse_formtype_load(&env, &c, &ft), WSE_ERR_NOT_FOUND);
	assert_non_null(strstr(wse_err_last(), "not in the cache"));
	wse_err_clear();
	env.http = http;

	/* What the server gives is checked like the cache. */
	{
		wse_buf *sig = sign("return {}", 9, "expense", other_key,
		    other);

		put_file(pub, "other.lua", "return {}", 9);
		put_file(pub, "other.lua.sig", wse_buf_data(sig),
		    wse_buf_len(sig));
		wse_buf_free(&sig);
	}
	{
		char sha[65];

		sha_hex("return {}", 9, sha);
		snprintf(url, sizeof(url), "https://a.test:%u/plugins/"
		    "other.lua", (unsigned)port);
		content_for(&c, url, sha);
		assert_wse_status(wse_formtype_load(&env, &c, &ft),
		    WSE_ERR_UNTRUSTED);
		snprintf(msg, sizeof(msg), "plugin expense from %s: untrusted "
		    "publisher CN=Other Forms", url);
		assert_string_equal(wse_err_last(), msg);
		wse_err_clear();
		snprintf(path, sizeof(path), "%s/%s.lua", cache, sha);
		assert_int_not_equal(stat(path, &sb), 0);	/* not kept */
	}
	/* The form names another file than the one served. */
	snprintf(url, sizeof(url), "https://a.test:%u/plugins/other.lua",
	    (unsigned)port);
	content_for(&c, url, expense_sha);
	assert_wse_status(wse_formtype_load(&env, &c, &ft),
	    WSE_ERR_BAD_SIGNATURE);
	assert_non_null(strstr(wse_err_last(), "not the one the form names"));
	wse_err_clear();
	/* No signature published (404): unsigned. */
	put_file(pub, "nosig.lua", wse_buf_data(expense),
	    wse_buf_len(expense));
	snprintf(url, sizeof(url), "https://a.test:%u/plugins/nosig.lua",
	    (unsigned)port);
	content_for(&c, url, expense_sha);
	assert_wse_status(wse_formtype_load(&env, &c, &ft), WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "unsigned"));
	wse_err_clear();
	/* No such plugin; a failing server: try later. */
	snprintf(url, sizeof(url), "https://a.test:%u/plugins/none.lua",
	    (unsigned)port);
	content_for(&c, url, expense_sha);
	assert_wse_status(wse_formtype_load(&env, &c, &ft), WSE_ERR_TEMPFAIL);
	assert_non_null(strstr(wse_err_last(), "HTTP status 404"));
	wse_err_clear();
	pthread_mutex_lock(&ps.lock);
	ps.fail = 1;
	pthread_mutex_unlock(&ps.lock);
	assert_wse_status(wse_formtype_load(&env, &c, &ft), WSE_ERR_TEMPFAIL);
	wse_err_clear();
	pthread_mutex_lock(&ps.lock);
	ps.fail = 0;
	pthread_mutex_unlock(&ps.lock);
	/* A plugin over 1 MiB is not downloaded past the limit. */
	assert_non_null(big = malloc(WSE_FORMTYPE_MAX_PLUGIN + 100));
	memset(big, '-', WSE_FORMTYPE_MAX_PLUGIN + 100);
	put_file(pub, "big.lua", big, WSE_FORMTYPE_MAX_PLUGIN + 100);
	free(big);
	snprintf(url, sizeof(url), "https://a.test:%u/plugins/big.lua",
	    (unsigned)port);
	content_for(&c, url, expense_sha);
	assert_wse_status(wse_formtype_load(&env, &c, &ft), WSE_ERR_TOO_LARGE);
	wse_err_clear();
	/* Only https; only a hex digest reaches a file name. */
	content_for(&c, "http://a.test/plugins/expense.lua", expense_sha);
	assert_wse_status(wse_formtype_load(&env, &c, &ft), WSE_ERR_INVALID);
	content_for(&c, url, "../../../../etc/passwd");
	assert_wse_status(wse_formtype_load(&env, &c, &ft), WSE_ERR_INVALID);
	content_for(&c, url, expense_sha);
	env.cache_dir = NULL;
	assert_wse_status(wse_formtype_load(&env, &c, &ft), WSE_ERR_INVALID);
	env.cache_dir = "/nonexistent/cache";
	assert_wse_status(wse_formtype_load(&env, &c, &ft), WSE_ERR_IO);
	wse_err_clear();
	assert_null(ft);

	pub_stop(&ps);
	wse_http_client_free(&http);
	testutil_rmtree(pub);
	testutil_rmtree(cache);
	free(pub);
	free(cache);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_bytes),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_route),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_form_value),
		cmocka_unit_test(test_present),
		cmocka_unit_test(test_strict_results),
		cmocka_unit_test(test_route_results),
		cmocka_unit_test(test_definition),
		cmocka_unit_test(test_next_address),
		cmocka_unit_test(test_find_attachment),
		cmocka_unit_test(test_cache),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
