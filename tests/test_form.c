/*
 * test_form.c - routed forms (lib/form.h): the paper's Figure 3 end to
 * end across three domains, the time rule, and every attack of
 * docs/forms.md, each refused with the right status, position and
 * reason.  A PKI is minted at test time (root, a.test, b.test, c.test).
 *
 * Figure 3 here: claimant q@a.test; router b.test inserts c2@a.test and
 * c3@a.test before the next hop; c3 delegates to c4@b.test, who
 * approves for c3; c5@c.test approves; the final party c.test verifies
 * and accepts.  Records: 1 submit, 2 insert, 3 decide (c2), 4 delegate
 * (c3 -> c4), 5 decide (c4 for c3), 6 decide (c5), 7 accept.
 */
#include "testutil.h"
#include "testpki.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "form.h"
#include "soap.h"
#include "wss.h"
#include "xml.h"

#define DAY 86400
#define PLUGIN_SHA \
	"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static testpki P;
static int64_t T0;		/* the claimant signs */
static int64_t VNOW;		/* the final party verifies; tokens gone */

/* Users with a token each (issued at T0, valid one hour). */
struct party {
	const char *mbox;
	int d;			/* issuing domain CA */
	wse_key *key;
	wse_cert *cert;
};

enum { Q, C2, C3, C4, C5, C6, C7, EVE, NPARTY };
static struct party U[NPARTY] = {
	[Q] = { "q@a.test", 0, NULL, NULL },
	[C2] = { "c2@a.test", 0, NULL, NULL },
	[C3] = { "c3@a.test", 0, NULL, NULL },
	[C4] = { "c4@b.test", 1, NULL, NULL },
	[C5] = { "c5@c.test", 2, NULL, NULL },
	[C6] = { "c6@b.test", 1, NULL, NULL },
	[C7] = { "c7@c.test", 2, NULL, NULL },
	[EVE] = { "eve@b.test", 1, NULL, NULL },
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

static int
setup(void **state)
{
	int i;

	(void)state;
	if (testpki_init(&P, (int64_t)time(NULL)) != WSE_OK)
		return -1;
	T0 = P.now - 1800;
	VNOW = P.now + 2 * DAY;
	for (i = 0; i < NPARTY; i++)
		if (wse_key_generate(&U[i].key) != WSE_OK ||
		    wse_pki_issue_token(P.dom[U[i].d].ca, P.dom[U[i].d].ca_key,
		    U[i].key, U[i].mbox, 3600, T0, &U[i].cert) != WSE_OK)
			return -1;
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
	testpki_free(&P);
	xmlCleanupParser();
	return 0;
}

/* ---- helpers ---- */

/* The wire: serialise, free, parse again (as the next party gets it). */
static void
wire(wse_form **f)
{
	wse_buf *b = wse_buf_new(WSE_FORM_MAX_BYTES);

	assert_non_null(b);
	assert_wse_ok(wse_form_serialize(*f, b));
	wse_form_free(f);
	assert_wse_ok(wse_form_parse(wse_buf_data(b), wse_buf_len(b), NULL, f));
	wse_buf_free(&b);
}

/* A party receives the form: parse, verify at time t, expect its turn. */
static void
receive(wse_form **f, int64_t t, wse_form_phase phase, const char *party)
{
	wse_form_state_info s;
	wse_form_report rep;

	wire(f);
	assert_null(wse_form_content_get(*f));
	assert_wse_status(wse_form_state(*f, &s), WSE_ERR_INVALID);
	memset(&rep, 0, sizeof(rep));
	assert_wse_ok(wse_form_verify(*f, P.trust, t, NULL, &rep));
	assert_int_equal(rep.status, WSE_OK);
	wse_form_report_clear(&rep);
	assert_wse_ok(wse_form_state(*f, &s));
	assert_int_equal(s.phase, phase);
	if (party != NULL)
		assert_string_equal(s.party, party);
}

static wse_form *
new_claim(void)
{
	wse_form_type type = { "expense-claim", "1.0",
	    "https://forms.b.test/expense-claim-1.0.lua", PLUGIN_SHA };
	wse_form *f = NULL;

	assert_wse_ok(wse_form_new("Q@A.test", &type, "c.test", &f));
	assert_wse_ok(wse_form_add_field(f, "amount", WSE_FIELD_DECIMAL,
	    "1234.50"));
	assert_wse_ok(wse_form_add_field(f, "purpose", WSE_FIELD_TEXT,
	    "Conference <WSEmail> & travel\nParis, caf\xc3\xa9"));
	assert_wse_ok(wse_form_add_field(f, "nights", WSE_FIELD_INTEGER, "3"));
	assert_wse_ok(wse_form_add_field(f, "date", WSE_FIELD_DATE,
	    "2026-02-28"));
	assert_wse_ok(wse_form_add_field(f, "manager", WSE_FIELD_MAILBOX,
	    "C5@c.test"));
	assert_wse_ok(wse_form_add_hop(f, WSE_HOP_ROUTER, "b.test"));
	assert_wse_ok(wse_form_add_hop(f, WSE_HOP_APPROVER, "c5@c.test"));
	return f;
}

/*
 * Figure 3 up to and including step upto (1 submit .. 7 accept), each
 * party receiving the form over the wire and verifying it first.
 */
static wse_form *
fig3(int upto)
{
	static const char *const inserted[] = { "c2@a.test", "C3@a.test" };
	wse_form_signer s;
	wse_form *f = new_claim();

	s = user(Q);
	assert_wse_ok(wse_form_sign_submit(f, &s, T(1)));
	if (upto < 2)
		return f;
	receive(&f, T(2), WSE_FORM_ROUTER, "b.test");
	s = server(1);
	assert_wse_ok(wse_form_add_insert(f, &s, 0, inserted, 2, T(2)));
	if (upto < 3)
		return f;
	receive(&f, T(3), WSE_FORM_APPROVER, "c2@a.test");
	s = user(C2);
	assert_wse_ok(wse_form_add_decision(f, &s, WSE_VERDICT_APPROVE,
	    "within budget", T(3)));
	if (upto < 4)
		return f;
	receive(&f, T(4), WSE_FORM_APPROVER, "c3@a.test");
	s = user(C3);
	assert_wse_ok(wse_form_add_delegation(f, &s, "c4@b.test", T(4)));
	if (upto < 5)
		return f;
	receive(&f, T(5), WSE_FORM_APPROVER, "c4@b.test");
	s = user(C4);
	assert_wse_ok(wse_form_add_decision(f, &s, WSE_VERDICT_APPROVE, NULL,
	    T(5)));
	if (upto < 6)
		return f;
	receive(&f, T(6), WSE_FORM_APPROVER, "c5@c.test");
	s = user(C5);
	assert_wse_ok(wse_form_add_decision(f, &s, WSE_VERDICT_APPROVE, NULL,
	    T(6)));
	if (upto < 7)
		return f;
	receive(&f, T(7), WSE_FORM_FINAL, "c.test");
	s = server(2);
	assert_wse_ok(wse_form_add_accept(f, &s, T(7)));
	return f;
}

static wse_form_policy
final_policy(void)
{
	wse_form_policy p;

	wse_form_policy_default(&p);
	p.require_complete = 1;
	p.final_party = "c.test";
	return p;
}

/* Verification must fail with status want at record position, the
 * reason containing needle. */
static void
refused(wse_form *f, int64_t t, const wse_form_policy *pol, wse_status want,
    size_t position, const char *needle)
{
	wse_form_report rep;
	wse_form_state_info s;
	wse_status st;

	memset(&rep, 0, sizeof(rep));
	st = wse_form_verify(f, P.trust, t, pol, &rep);
	if (st != want || rep.position != position ||
	    (needle != NULL && strstr(rep.reason, needle) == NULL))
		fail_msg("got %s at %zu: \"%s\"; expected %s at %zu with "
		    "\"%s\"", wse_status_name(st), rep.position, rep.reason,
		    wse_status_name(want), position, needle ? needle : "");
	assert_int_equal(rep.status, want);
	/* nothing of a refused form is handed out */
	assert_null(wse_form_content_get(f));
	assert_wse_status(wse_form_state(f, &s), WSE_ERR_INVALID);
	wse_form_report_clear(&rep);
}

/* The form as a plain libxml2 tree for surgery, and back. */
static xmlDocPtr
to_doc(const wse_form *f)
{
	wse_buf *b = wse_buf_new(WSE_FORM_MAX_BYTES);
	xmlDocPtr d;

	assert_wse_ok(wse_form_serialize(f, b));
	d = xmlReadMemory(wse_buf_str(b), (int)wse_buf_len(b), NULL, NULL,
	    XML_PARSE_NONET);
	assert_non_null(d);
	wse_buf_free(&b);
	return d;
}

static wse_status
from_doc(xmlDocPtr d, wse_form **f_r)
{
	xmlChar *mem = NULL;
	int size = 0;
	wse_status st;

	xmlDocDumpMemory(d, &mem, &size);
	assert_non_null(mem);
	st = wse_form_parse(mem, (size_t)size, NULL, f_r);
	xmlFree(mem);
	return st;
}

/* Record n (1-based) of a form tree. */
static xmlNodePtr
record(xmlDocPtr d, size_t n)
{
	xmlNodePtr r = wse_xml_first_elem(xmlDocGetRootElement(d));

	while (r != NULL && --n > 0)
		r = wse_xml_next_elem(r);
	assert_non_null(r);
	return r;
}

/* The child f:local of node (first one). */
static xmlNodePtr
child(xmlNodePtr node, const char *local)
{
	xmlNodePtr c;

	for (c = wse_xml_first_elem(node); c; c = wse_xml_next_elem(c))
		if (wse_xml_is(c, WSE_NS_FORM, local))
			return c;
	fail_msg("no f:%s", local);
	return NULL;
}

static void
set_text(xmlNodePtr n, const char *text)
{
	xmlNodeSetContent(n, NULL);
	xmlNodeAddContent(n, BAD_CAST text);
}

/* ---- the paper's Figure 3 ---- */

static void
test_figure3(void **state)
{
	wse_form *f;
	wse_form_policy pol = final_policy();
	wse_form_report rep;
	wse_form_state_info s;
	const wse_form_content *c;
	const wse_form_hop *hops;
	size_t n;

	(void)state;
	f = fig3(6);
	/* The final party, two days later: every token has expired. */
	wire(&f);
	memset(&rep, 0, sizeof(rep));
	assert_wse_ok(wse_form_verify(f, P.trust, VNOW, &pol, &rep));
	assert_int_equal(rep.outcome, WSE_OUTCOME_APPROVED);
	assert_int_equal(rep.nrecords, 6);
	assert_int_equal(rep.napprovals, 3);
	assert_string_equal(rep.approvals[0].approver, "c2@a.test");
	assert_string_equal(rep.approvals[0].signer, "c2@a.test");
	assert_int_equal(rep.approvals[0].position, 3);
	assert_string_equal(rep.approvals[1].approver, "c3@a.test");
	assert_string_equal(rep.approvals[1].signer, "c4@b.test");
	assert_int_equal(rep.approvals[1].position, 5);
	assert_string_equal(rep.approvals[2].approver, "c5@c.test");
	assert_string_equal(rep.approvals[2].signer, "c5@c.test");
	assert_int_equal(rep.approvals[2].time, T(6));
	assert_string_equal(rep.rejected_by, "");
	wse_form_report_clear(&rep);

	/* What it proved: the content and the effective route. */
	assert_non_null(c = wse_form_content_get(f));
	assert_true(wse_uuid_urn_valid(c->id));
	assert_string_equal(c->claimant, "q@a.test");
	assert_string_equal(c->final_party, "c.test");
	assert_string_equal(c->type_name, "expense-claim");
	assert_string_equal(c->plugin_sha256, PLUGIN_SHA);
	assert_int_equal(c->nfields, 5);
	assert_string_equal(c->fields[0].value, "1234.50");
	assert_string_equal(c->fields[1].value,
	    "Conference <WSEmail> & travel\nParis, caf\xc3\xa9");
	assert_string_equal(c->fields[4].value, "c5@c.test");
	assert_int_equal(c->nroute, 2);
	assert_int_equal(c->submitted, T(1));
	assert_wse_ok(wse_form_route(f, &hops, &n));
	assert_int_equal(n, 4);
	assert_string_equal(hops[0].name, "b.test");
	assert_string_equal(hops[1].name, "c2@a.test");
	assert_string_equal(hops[2].name, "c3@a.test");
	assert_string_equal(hops[3].name, "c5@c.test");
	assert_wse_ok(wse_form_state(f, &s));
	assert_int_equal(s.phase, WSE_FORM_FINAL);
	assert_string_equal(s.party, "c.test");

	/* The final party closes it; the closed form verifies too. */
	{
		wse_form_signer sv = server(2);

		assert_wse_ok(wse_form_add_accept(f, &sv, VNOW));
	}
	wire(&f);
	memset(&rep, 0, sizeof(rep));
	assert_wse_ok(wse_form_verify(f, P.trust, VNOW + 10, &pol, &rep));
	wse_form_report_clear(&rep);
	assert_wse_ok(wse_form_state(f, &s));
	assert_int_equal(s.phase, WSE_FORM_CLOSED);
	assert_null(s.party);
	assert_int_equal(s.nrecords, 7);
	wse_form_free(&f);
}

/* The same, step by step: who must act at each point. */
static void
test_states(void **state)
{
	wse_form *f;
	wse_form_state_info s;

	(void)state;
	f = new_claim();
	assert_wse_ok(wse_form_state(f, &s));
	assert_int_equal(s.phase, WSE_FORM_DRAFT);
	{
		wse_buf *b = wse_buf_new(1024);

		assert_wse_status(wse_form_serialize(f, b), WSE_ERR_INVALID);
		wse_buf_free(&b);
	}
	wse_form_free(&f);

	f = fig3(4);
	receive(&f, T(5), WSE_FORM_APPROVER, "c4@b.test");
	assert_wse_ok(wse_form_state(f, &s));
	assert_string_equal(s.approver, "c3@a.test");
	assert_int_equal(s.hop, 3);
	assert_int_equal(s.nhops, 4);
	assert_int_equal(s.delegations, 1);
	assert_int_equal(s.nrecords, 4);
	assert_int_equal(s.outcome, WSE_OUTCOME_PENDING);
	wse_form_free(&f);
}

/* ---- the time rule ---- */

/* CRLs issued after the records were signed: still valid, since a
 * token is checked at its signing time and its CA now. */
static void
test_crls_newer_than_records(void **state)
{
	wse_form *f = fig3(6);
	wse_form_policy pol = final_policy();
	wse_crl *crl[4] = { NULL };
	wse_trust *t = NULL;
	int i;

	(void)state;
	assert_wse_ok(wse_crl_issue(P.root, P.root_key, NULL, 0, VNOW - 60,
	    VNOW + 7 * DAY, &crl[0]));
	for (i = 0; i < 3; i++)
		assert_wse_ok(wse_crl_issue(P.dom[i].ca, P.dom[i].ca_key,
		    NULL, 0, VNOW - 60, VNOW + 7 * DAY, &crl[i + 1]));
	assert_wse_ok(wse_trust_new(&t));
	assert_wse_ok(wse_trust_add_root(t, P.root));
	for (i = 0; i < 4; i++)
		assert_wse_ok(wse_trust_add_crl(t, crl[i]));
	assert_wse_ok(wse_form_verify(f, t, VNOW, &pol, NULL));
	for (i = 0; i < 4; i++)
		wse_crl_free(&crl[i]);
	wse_trust_free(&t);
	wse_form_free(&f);
}

/* A domain CA revoked since: every record its tokens signed falls. */
static void
test_revoked_domain_ca(void **state)
{
	wse_form *f = fig3(6);
	wse_form_report rep;
	wse_crl *crl = NULL;
	wse_trust *t = NULL;
	char serial[80];
	const char *serials[1] = { serial };

	(void)state;
	assert_wse_ok(wse_cert_serial(P.dom[2].ca, serial, sizeof(serial)));
	assert_wse_ok(wse_crl_issue(P.root, P.root_key, serials, 1, VNOW - 60,
	    VNOW + 7 * DAY, &crl));
	assert_wse_ok(testpki_trust(&P, 0, 1, 1, &t));
	assert_wse_ok(wse_trust_add_crl(t, crl));
	memset(&rep, 0, sizeof(rep));
	assert_wse_status(wse_form_verify(f, t, VNOW, NULL, &rep),
	    WSE_ERR_REVOKED);
	assert_int_equal(rep.position, 6);	/* c5@c.test's approval */
	assert_non_null(strstr(rep.reason, "chain is revoked"));
	wse_form_report_clear(&rep);
	/* no root CRL at all: fail closed, as a temporary failure */
	wse_trust_free(&t);
	assert_wse_ok(testpki_trust(&P, 0, 1, 1, &t));
	memset(&rep, 0, sizeof(rep));
	assert_wse_status(wse_form_verify(f, t, VNOW, NULL, &rep),
	    WSE_ERR_TEMPFAIL);
	assert_int_equal(rep.position, 1);
	assert_non_null(strstr(rep.reason, "not trusted now"));
	wse_form_report_clear(&rep);
	wse_crl_free(&crl);
	wse_trust_free(&t);
	wse_form_free(&f);
}

static void
test_times(void **state)
{
	wse_form *f = fig3(3);
	wse_form_policy pol;
	wse_form_signer s = user(C3);
	wse_form_record_spec spec = { .kind = WSE_REC_DECIDE,
	    .verdict = WSE_VERDICT_APPROVE };

	(void)state;
	/* in the future of the verifier */
	refused(f, T(3) - 61, NULL, WSE_ERR_FUTURE, 3, "61 s in the future");
	/* too old for the policy */
	wse_form_policy_default(&pol);
	pol.max_age = 3600;
	refused(f, T(1) + 7200, &pol, WSE_ERR_EXPIRED, 0 + 1, "submitted");
	/* earlier than the record before */
	spec.time = T(2);
	assert_wse_ok(wse_form_append_unchecked(f, &s, &spec, T(4)));
	refused(f, VNOW, NULL, WSE_ERR_INVALID, 4, "signed before record 3");
	wse_form_free(&f);

	/* signed after the token expired */
	f = fig3(3);
	spec.time = wse_cert_not_after(U[C3].cert) + 100;
	assert_wse_ok(wse_form_append_unchecked(f, &s, &spec, T(4)));
	refused(f, VNOW, NULL, WSE_ERR_CERT_EXPIRED, 4, "signing time");
	wse_form_free(&f);

	/* the checked builder refuses an expired token */
	f = fig3(3);
	receive(&f, T(4), WSE_FORM_APPROVER, "c3@a.test");
	assert_wse_status(wse_form_add_decision(f, &s, WSE_VERDICT_APPROVE,
	    NULL, VNOW), WSE_ERR_CERT_EXPIRED);
	wse_form_free(&f);
}

/* ---- attacks ---- */

static void
test_approval_removed(void **state)
{
	wse_form *f = fig3(6), *g = NULL;
	xmlDocPtr d = to_doc(f);
	xmlNodePtr r = record(d, 3);

	(void)state;
	xmlUnlinkNode(r);
	xmlFreeNode(r);
	assert_wse_ok(from_doc(d, &g));
	refused(g, VNOW, NULL, WSE_ERR_BAD_SIGNATURE, 3, "says it is record 4");
	wse_form_free(&g);
	xmlFreeDoc(d);
	/* the last one: the form is then merely incomplete */
	d = to_doc(f);
	r = record(d, 6);
	xmlUnlinkNode(r);
	xmlFreeNode(r);
	assert_wse_ok(from_doc(d, &g));
	{
		wse_form_policy pol = final_policy();

		refused(g, VNOW, &pol, WSE_ERR_NOT_AUTHORIZED, 0,
		    "hop 4 (approver c5@c.test) has not acted");
	}
	wse_form_free(&g);
	xmlFreeDoc(d);
	wse_form_free(&f);
}

static void
test_approvals_reordered(void **state)
{
	wse_form *f = fig3(6), *g = NULL;
	xmlDocPtr d = to_doc(f);
	xmlNodePtr r5 = record(d, 5), r6 = record(d, 6);

	(void)state;
	xmlUnlinkNode(r6);
	xmlAddPrevSibling(r5, r6);
	assert_wse_ok(from_doc(d, &g));
	refused(g, VNOW, NULL, WSE_ERR_BAD_SIGNATURE, 5, "says it is record 6");
	wse_form_free(&g);
	xmlFreeDoc(d);
	wse_form_free(&f);
}

/* c2's approval of another claim, with the same route, put in place of
 * their approval (or refusal) of this one. */
static void
test_approval_replayed(void **state)
{
	wse_form *f = fig3(2), *other = fig3(3), *g = NULL;
	xmlDocPtr d, od;
	xmlNodePtr copy;

	(void)state;
	d = to_doc(f);
	od = to_doc(other);
	copy = xmlDocCopyNode(record(od, 3), d, 1);
	assert_non_null(copy);
	xmlAddChild(xmlDocGetRootElement(d), copy);
	assert_wse_ok(from_doc(d, &g));
	refused(g, VNOW, NULL, WSE_ERR_BAD_SIGNATURE, 3, "belongs to form");
	wse_form_free(&g);
	/* even with this form's id put back, the signature breaks */
	set_text(child(wse_xml_first_elem(copy), "FormId"),
	    wse_form_content_get(f)->id);
	assert_wse_ok(from_doc(d, &g));
	refused(g, VNOW, NULL, WSE_ERR_BAD_SIGNATURE, 3, "other content");
	wse_form_free(&g);
	xmlFreeDoc(d);
	xmlFreeDoc(od);
	wse_form_free(&other);
	wse_form_free(&f);
}

/* b.test's CA vouches for c5@c.test: its name constraints forbid it. */
static void
test_wrong_domain_ca(void **state)
{
	wse_form *f = fig3(5);
	wse_cert_profile pr = { WSE_CERT_TOKEN, "c5@c.test", NULL, 0,
	    T0 - 60, T0 + 3600 };
	wse_key *k = NULL;
	wse_cert *forged = NULL;
	wse_form_signer s;
	wse_form_record_spec spec = { .kind = WSE_REC_DECIDE,
	    .verdict = WSE_VERDICT_APPROVE };

	(void)state;
	receive(&f, T(6), WSE_FORM_APPROVER, "c5@c.test");
	assert_wse_ok(wse_key_generate(&k));
	assert_wse_ok(wse_cert_issue(&pr, k, P.dom[1].ca, P.dom[1].ca_key,
	    &forged));
	s.key = k;
	s.cert = forged;
	s.ca = P.dom[1].ca;
	assert_wse_ok(wse_form_append_unchecked(f, &s, &spec, T(6)));
	refused(f, VNOW, NULL, WSE_ERR_UNTRUSTED, 6, "does not chain");
	wse_form_free(&f);

	/* eve@b.test's genuine token, naming c5@c.test as the author */
	f = fig3(5);
	s = user(EVE);
	spec.author = "c5@c.test";
	assert_wse_ok(wse_form_append_unchecked(f, &s, &spec, T(6)));
	refused(f, VNOW, NULL, WSE_ERR_DOMAIN_MISMATCH, 6,
	    "token of eve@b.test");
	wse_form_free(&f);
	/* or as herself */
	f = fig3(5);
	spec.author = NULL;
	assert_wse_ok(wse_form_append_unchecked(f, &s, &spec, T(6)));
	refused(f, VNOW, NULL, WSE_ERR_NOT_AUTHORIZED, 6,
	    "decide by eve@b.test, but c5@c.test must act");
	wse_form_free(&f);
	wse_cert_free(&forged);
	wse_key_free(&k);
}

static void
test_claimant_via_delegation(void **state)
{
	wse_form *f = fig3(3);
	wse_form_signer s = user(C3), q = user(Q);
	wse_form_record_spec spec = { .kind = WSE_REC_DELEGATE,
	    .delegate = "q@a.test" };
	wse_form_record_spec dec = { .kind = WSE_REC_DECIDE,
	    .verdict = WSE_VERDICT_APPROVE, .on_behalf = "c3@a.test" };

	(void)state;
	receive(&f, T(4), WSE_FORM_APPROVER, "c3@a.test");
	/* the honest builder will not sign it */
	assert_wse_status(wse_form_add_delegation(f, &s, "q@a.test", T(4)),
	    WSE_ERR_NOT_AUTHORIZED);
	assert_int_equal(wse_form_nrecords(f), 3);
	/* a dishonest c3 does; the claimant then approves */
	assert_wse_ok(wse_form_append_unchecked(f, &s, &spec, T(4)));
	assert_wse_ok(wse_form_append_unchecked(f, &q, &dec, T(5)));
	refused(f, VNOW, NULL, WSE_ERR_NOT_AUTHORIZED, 4,
	    "the claimant decides nothing on their own form, not even");
	wse_form_free(&f);

	/* the claimant approving directly in c3's place */
	f = fig3(3);
	assert_wse_ok(wse_form_append_unchecked(f, &q, &dec, T(4)));
	refused(f, VNOW, NULL, WSE_ERR_NOT_AUTHORIZED, 4,
	    "decide by q@a.test, but c3@a.test must act");
	wse_form_free(&f);

	/* a router cannot make the claimant an approver either */
	f = fig3(1);
	{
		wse_form_signer sv = server(1);
		const char *ap[] = { "q@a.test" };
		char why[1024];

		receive(&f, T(2), WSE_FORM_ROUTER, "b.test");
		wse_err_clear();
		assert_wse_status(wse_form_add_insert(f, &sv, 0, ap, 1, T(2)),
		    WSE_ERR_NOT_AUTHORIZED);
		/* the rule alone, not a probe of the service certificate */
		assert_int_equal(wse_err_count(), 1);
		assert_non_null(strstr(wse_err_format(why, sizeof(why)),
		    "the claimant q@a.test cannot be an approver"));
		wse_err_clear();
	}
	wse_form_free(&f);
}

static void
test_delegation_by_other(void **state)
{
	wse_form *f = fig3(3);
	wse_form_signer s = user(C2);
	wse_form_record_spec spec = { .kind = WSE_REC_DELEGATE,
	    .on_behalf = "c3@a.test", .delegate = "c4@b.test" };

	(void)state;
	receive(&f, T(4), WSE_FORM_APPROVER, "c3@a.test");
	assert_wse_status(wse_form_add_delegation(f, &s, "c4@b.test", T(4)),
	    WSE_ERR_NOT_AUTHORIZED);
	assert_wse_ok(wse_form_append_unchecked(f, &s, &spec, T(4)));
	refused(f, VNOW, NULL, WSE_ERR_NOT_AUTHORIZED, 4,
	    "delegate by c2@a.test, but c3@a.test must act (hop 3)");
	wse_form_free(&f);

	/* after c3 delegated to c4, c3 can no longer decide */
	f = fig3(4);
	s = user(C3);
	receive(&f, T(5), WSE_FORM_APPROVER, "c4@b.test");
	assert_wse_status(wse_form_add_decision(f, &s, WSE_VERDICT_APPROVE,
	    NULL, T(5)), WSE_ERR_NOT_AUTHORIZED);
	wse_form_free(&f);
}

static void
test_delegation_depth(void **state)
{
	wse_form *f = fig3(4);
	wse_form_signer s4 = user(C4), s6 = user(C6), s7 = user(C7);
	wse_form_record_spec spec = { .kind = WSE_REC_DELEGATE,
	    .on_behalf = "c3@a.test", .delegate = "c7@c.test" };
	wse_form_policy pol;

	(void)state;
	receive(&f, T(5), WSE_FORM_APPROVER, "c4@b.test");
	assert_wse_ok(wse_form_add_delegation(f, &s4, "c6@b.test", T(5)));
	receive(&f, T(6), WSE_FORM_APPROVER, "c6@b.test");
	/* depth 3 > 2 */
	assert_wse_status(wse_form_add_delegation(f, &s6, "c7@c.test", T(6)),
	    WSE_ERR_NOT_AUTHORIZED);
	assert_wse_ok(wse_form_append_unchecked(f, &s6, &spec, T(6)));
	refused(f, VNOW, NULL, WSE_ERR_NOT_AUTHORIZED, 6,
	    "delegation 3 at hop 3: the policy allows 2");
	/* a policy allowing 3 accepts it, and c7 decides for c3 */
	wse_form_policy_default(&pol);
	pol.max_delegation = 3;
	assert_wse_ok(wse_form_verify(f, P.trust, T(7), &pol, NULL));
	assert_wse_ok(wse_form_add_decision(f, &s7, WSE_VERDICT_APPROVE, NULL,
	    T(7)));
	assert_wse_ok(wse_form_verify(f, P.trust, VNOW, &pol, NULL));
	wse_form_free(&f);
}

static void
test_insert_by_other_domain(void **state)
{
	static const char *const ap[] = { "c2@a.test" };
	wse_form *f = fig3(1);
	wse_form_signer a = server(0), q = user(Q);
	wse_form_record_spec spec = { .kind = WSE_REC_INSERT,
	    .approvers = ap, .napprovers = 1 };

	(void)state;
	receive(&f, T(2), WSE_FORM_ROUTER, "b.test");
	assert_wse_status(wse_form_add_insert(f, &a, 0, ap, 1, T(2)),
	    WSE_ERR_NOT_AUTHORIZED);
	/* a user's token cannot sign a router's record */
	assert_wse_status(wse_form_add_insert(f, &q, 0, ap, 1, T(2)),
	    WSE_ERR_NOT_AUTHORIZED);
	assert_wse_ok(wse_form_append_unchecked(f, &a, &spec, T(2)));
	refused(f, VNOW, NULL, WSE_ERR_NOT_AUTHORIZED, 2,
	    "insert by a.test, but router b.test must act (hop 1)");
	wse_form_free(&f);

	/* a.test's server naming b.test as the author */
	f = fig3(1);
	spec.author = "b.test";
	assert_wse_ok(wse_form_append_unchecked(f, &a, &spec, T(2)));
	refused(f, VNOW, NULL, WSE_ERR_DOMAIN_MISMATCH, 2,
	    "service certificate of a.test, but names b.test");
	wse_form_free(&f);

	/* an insertion before the router's own hop */
	f = fig3(1);
	a = server(1);
	spec.author = NULL;
	spec.at = 1;
	assert_wse_ok(wse_form_append_unchecked(f, &a, &spec, T(2)));
	refused(f, VNOW, NULL, WSE_ERR_NOT_AUTHORIZED, 2,
	    "insertion at hop 1");
	wse_form_free(&f);
}

/*
 * Records a dishonest party signs out of turn (the honest builder
 * refuses each of them first): each is refused at its own position.
 */
static void
test_out_of_turn(void **state)
{
	static const char *const ap[] = { "c7@c.test" };
	static const struct {
		int upto;		/* the honest form up to this step */
		int who;		/* user index, or -1 - domain */
		wse_form_record_spec spec;
		size_t position;
		const char *needle;
	} T_[] = {
		/* at router b.test's hop, an approver decides */
		{ 1, C5, { .kind = WSE_REC_DECIDE, .on_behalf = "c5@c.test",
		    .verdict = WSE_VERDICT_APPROVE }, 2,
		    "a decide record, but router b.test must act (hop 1)" },
		/* c2 decides, but "for" the next approver c3 */
		{ 2, C2, { .kind = WSE_REC_DECIDE, .on_behalf = "c3@a.test",
		    .verdict = WSE_VERDICT_APPROVE }, 3,
		    "the record is for c3@a.test, but hop 2 is c2@a.test's" },
		/* c3 delegates, "for" c2 who already decided */
		{ 3, C3, { .kind = WSE_REC_DELEGATE, .on_behalf = "c2@a.test",
		    .delegate = "c7@c.test" }, 4,
		    "the record is for c2@a.test, but hop 3 is c3@a.test's" },
		/* a router's insert at an approver's hop */
		{ 2, -2, { .kind = WSE_REC_INSERT, .approvers = ap,
		    .napprovers = 1 }, 3,
		    "an insert record, but approver c2@a.test must act" },
		/* every hop done: one more decision */
		{ 6, C5, { .kind = WSE_REC_DECIDE, .on_behalf = "c5@c.test",
		    .verdict = WSE_VERDICT_REJECT }, 7,
		    "every hop is done: only the final party c.test" },
		/* ... or an accept by another server than the final party */
		{ 6, -2, { .kind = WSE_REC_ACCEPT,
		    .result = WSE_OUTCOME_APPROVED }, 7,
		    "accept by b.test, but the final party is c.test" },
		/* the final party's accept misstates the outcome */
		{ 6, -3, { .kind = WSE_REC_ACCEPT,
		    .result = WSE_OUTCOME_REJECTED }, 7,
		    "the accept says rejected, but the form was approved" },
	};
	wse_form *f;
	wse_form_signer s;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(T_) / sizeof(T_[0]); i++) {
		f = fig3(T_[i].upto);
		s = T_[i].who >= 0 ? user(T_[i].who) : server(-1 - T_[i].who);
		assert_wse_ok(wse_form_append_unchecked(f, &s, &T_[i].spec,
		    T(T_[i].upto + 1)));
		refused(f, VNOW, NULL, WSE_ERR_NOT_AUTHORIZED, T_[i].position,
		    T_[i].needle);
		wse_form_free(&f);
	}

	/* a rejected form closed as approved */
	f = fig3(2);
	s = user(C2);
	receive(&f, T(3), WSE_FORM_APPROVER, "c2@a.test");
	assert_wse_ok(wse_form_add_decision(f, &s, WSE_VERDICT_REJECT, NULL,
	    T(3)));
	{
		wse_form_record_spec acc = { .kind = WSE_REC_ACCEPT,
		    .result = WSE_OUTCOME_APPROVED };

		s = server(2);
		assert_wse_ok(wse_form_append_unchecked(f, &s, &acc, T(4)));
	}
	refused(f, VNOW, NULL, WSE_ERR_NOT_AUTHORIZED, 4,
	    "the accept says approved, but the form was rejected");
	wse_form_free(&f);
}

/* Signers the builder refuses before it signs anything. */
static void
test_bad_signers(void **state)
{
	wse_form *f = fig3(2);
	wse_form_signer s = user(C2), sv = server(2);
	wse_form_signer mixed = { U[C3].key, U[C2].cert, P.dom[0].ca };
	wse_form_signer partial = { U[C2].key, NULL, P.dom[0].ca };

	(void)state;
	receive(&f, T(3), WSE_FORM_APPROVER, "c2@a.test");
	/* a server's certificate cannot sign a person's decision */
	assert_wse_status(wse_form_add_decision(f, &sv, WSE_VERDICT_APPROVE,
	    NULL, T(3)), WSE_ERR_NOT_AUTHORIZED);
	assert_non_null(strstr(wse_err_last(), "needs their token"));
	/* another person's key under c2's token */
	assert_wse_status(wse_form_add_decision(f, &mixed,
	    WSE_VERDICT_APPROVE, NULL, T(3)), WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "does not match"));
	assert_wse_status(wse_form_add_decision(f, &partial,
	    WSE_VERDICT_APPROVE, NULL, T(3)), WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "incomplete signer"));
	/* a clock far behind the newest record */
	assert_wse_status(wse_form_add_decision(f, &s, WSE_VERDICT_APPROVE,
	    NULL, T(2) - DAY), WSE_ERR_FUTURE);
	assert_non_null(strstr(wse_err_last(), "ahead of this clock"));
	wse_err_clear();
	/* nothing was added; the form is still c2's to decide */
	assert_int_equal(wse_form_nrecords(f), 2);
	assert_wse_ok(wse_form_add_decision(f, &s, WSE_VERDICT_APPROVE, NULL,
	    T(3)));
	assert_int_equal(wse_form_nrecords(f), 3);
	wse_form_free(&f);
}

static void
test_tampered_field(void **state)
{
	wse_form *f = fig3(6), *g = NULL;
	xmlDocPtr d = to_doc(f);
	xmlNodePtr fields = child(wse_xml_first_elem(record(d, 1)), "Fields");

	(void)state;
	set_text(wse_xml_first_elem(fields), "99999.00");
	assert_wse_ok(from_doc(d, &g));
	refused(g, VNOW, NULL, WSE_ERR_BAD_SIGNATURE, 1, "does not verify");
	wse_form_free(&g);
	xmlFreeDoc(d);
	wse_form_free(&f);
}

static void
test_after_rejection(void **state)
{
	wse_form *f = fig3(2);
	wse_form_signer c2 = user(C2), c3 = user(C3), c5 = user(C5);
	wse_form_signer sv = server(2);
	wse_form_record_spec spec = { .kind = WSE_REC_DECIDE,
	    .verdict = WSE_VERDICT_APPROVE, .on_behalf = "c3@a.test" };
	wse_form_policy pol = final_policy();
	wse_form_report rep;
	wse_form_state_info s;

	(void)state;
	receive(&f, T(3), WSE_FORM_APPROVER, "c2@a.test");
	assert_wse_ok(wse_form_add_decision(f, &c2, WSE_VERDICT_REJECT,
	    "no receipts", T(3)));
	/* the route stopped: the final party's turn */
	receive(&f, T(4), WSE_FORM_FINAL, "c.test");
	assert_wse_status(wse_form_add_decision(f, &c3, WSE_VERDICT_APPROVE,
	    NULL, T(4)), WSE_ERR_NOT_AUTHORIZED);
	memset(&rep, 0, sizeof(rep));
	assert_wse_ok(wse_form_verify(f, P.trust, VNOW, &pol, &rep));
	assert_int_equal(rep.outcome, WSE_OUTCOME_REJECTED);
	assert_string_equal(rep.rejected_by, "c2@a.test");
	assert_string_equal(rep.rejected_for, "c2@a.test");
	assert_int_equal(rep.rejected_at, 3);
	assert_int_equal(rep.napprovals, 0);
	wse_form_report_clear(&rep);

	/* c3 approves anyway */
	assert_wse_ok(wse_form_append_unchecked(f, &c3, &spec, T(4)));
	refused(f, VNOW, NULL, WSE_ERR_NOT_AUTHORIZED, 4,
	    "c2@a.test rejected at record 3: the route stopped");
	wse_form_free(&f);

	/* only the final party may follow, and says "rejected" */
	f = fig3(2);
	receive(&f, T(3), WSE_FORM_APPROVER, "c2@a.test");
	assert_wse_ok(wse_form_add_decision(f, &c2, WSE_VERDICT_REJECT, NULL,
	    T(3)));
	receive(&f, T(4), WSE_FORM_FINAL, "c.test");
	assert_wse_ok(wse_form_add_accept(f, &sv, T(4)));
	receive(&f, VNOW, WSE_FORM_CLOSED, NULL);
	assert_wse_ok(wse_form_state(f, &s));
	assert_int_equal(s.outcome, WSE_OUTCOME_REJECTED);
	/* nothing after the accept */
	spec.on_behalf = "c5@c.test";
	assert_wse_ok(wse_form_append_unchecked(f, &c5, &spec, T(5)));
	refused(f, VNOW, NULL, WSE_ERR_NOT_AUTHORIZED, 5,
	    "closed the form at record 4");
	wse_form_free(&f);

	/* an accept that lies about the outcome */
	f = fig3(3);
	{
		wse_form_record_spec acc = { .kind = WSE_REC_ACCEPT,
		    .result = WSE_OUTCOME_APPROVED };

		receive(&f, T(4), WSE_FORM_APPROVER, "c3@a.test");
		assert_wse_ok(wse_form_append_unchecked(f, &sv, &acc, T(4)));
		refused(f, VNOW, NULL, WSE_ERR_NOT_AUTHORIZED, 4,
		    "an accept record, but approver c3@a.test must act");
	}
	wse_form_free(&f);
}

static void
test_decides_twice(void **state)
{
	wse_form *f = fig3(3);
	wse_form_signer c3 = user(C3), c2 = user(C2), b = server(1);
	wse_form_record_spec del = { .kind = WSE_REC_DELEGATE,
	    .on_behalf = "c3@a.test", .delegate = "c2@a.test" };
	wse_form_record_spec dec = { .kind = WSE_REC_DECIDE,
	    .verdict = WSE_VERDICT_APPROVE, .on_behalf = "c3@a.test" };

	(void)state;
	/* c3 hands the decision to c2, who already approved */
	receive(&f, T(4), WSE_FORM_APPROVER, "c3@a.test");
	assert_wse_status(wse_form_add_delegation(f, &c3, "c2@a.test", T(4)),
	    WSE_ERR_NOT_AUTHORIZED);
	assert_wse_ok(wse_form_append_unchecked(f, &c3, &del, T(4)));
	assert_wse_ok(wse_form_append_unchecked(f, &c2, &dec, T(5)));
	refused(f, VNOW, NULL, WSE_ERR_NOT_AUTHORIZED, 4,
	    "no person decides twice");
	wse_form_free(&f);

	/* delegation to a later approver (who would then decide twice) */
	f = fig3(3);
	del.delegate = "c5@c.test";
	assert_wse_ok(wse_form_append_unchecked(f, &c3, &del, T(4)));
	refused(f, VNOW, NULL, WSE_ERR_NOT_AUTHORIZED, 4,
	    "c5@c.test cannot be a delegate");
	wse_form_free(&f);

	/* a router listing someone twice, or someone already on the route */
	f = fig3(1);
	{
		static const char *const twice[] = { "c2@a.test", "c2@a.test" };
		static const char *const again[] = { "c5@c.test" };
		wse_form_record_spec ins = { .kind = WSE_REC_INSERT,
		    .approvers = twice, .napprovers = 2 };

		receive(&f, T(2), WSE_FORM_ROUTER, "b.test");
		assert_wse_status(wse_form_add_insert(f, &b, 0, twice, 2, T(2)),
		    WSE_ERR_NOT_AUTHORIZED);
		assert_wse_status(wse_form_add_insert(f, &b, 0, again, 1, T(2)),
		    WSE_ERR_NOT_AUTHORIZED);
		assert_wse_ok(wse_form_append_unchecked(f, &b, &ins, T(2)));
		refused(f, VNOW, NULL, WSE_ERR_NOT_AUTHORIZED, 2,
		    "c2@a.test cannot be an approver");
	}
	wse_form_free(&f);

	/* the claimant's own route listing an approver twice */
	f = new_claim();
	assert_wse_status(wse_form_add_hop(f, WSE_HOP_APPROVER, "c5@c.test"),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_form_add_hop(f, WSE_HOP_APPROVER, "q@a.test"),
	    WSE_ERR_NOT_AUTHORIZED);
	wse_form_free(&f);
}

/* Signature wrapping: duplicate Ids, a moved signed element. */
static void
test_wrapping(void **state)
{
	wse_form *f = fig3(6), *g = NULL;
	xmlDocPtr d;
	xmlNodePtr r, el, forged, sig;
	const char *id;

	(void)state;
	/* 1. a second element with record 3's Id */
	d = to_doc(f);
	el = wse_xml_first_elem(record(d, 3));
	id = wse_xml_attr(el, WSE_NS_WSU, "Id");
	assert_non_null(id);
	r = child(record(d, 2), "Certificate");
	xmlSetNsProp(r, xmlSearchNsByHref(d, r, BAD_CAST WSE_NS_WSU),
	    BAD_CAST "Id", BAD_CAST id);
	assert_wse_status(from_doc(d, &g), WSE_ERR_BAD_SIGNATURE);
	assert_non_null(strstr(wse_err_last(), "duplicate Id"));
	xmlFreeDoc(d);

	/* 2. the same with xml:id (which libxml2 registers by itself) */
	d = to_doc(f);
	el = wse_xml_first_elem(record(d, 3));
	id = wse_xml_attr(el, WSE_NS_WSU, "Id");
	xmlSetNsProp(child(record(d, 4), "Certificate"),
	    xmlSearchNs(d, xmlDocGetRootElement(d), BAD_CAST "xml"),
	    BAD_CAST "id", BAD_CAST id);
	assert_wse_status(from_doc(d, &g), WSE_ERR_BAD_SIGNATURE);
	xmlFreeDoc(d);

	/* 3. c2's signed approval moved into its signature as ds:Object, a
	 *    forged rejection with a new Id in its place */
	d = to_doc(f);
	r = record(d, 3);
	el = wse_xml_first_elem(r);
	forged = xmlCopyNode(el, 1);
	xmlSetNsProp(forged, xmlSearchNsByHref(d, el, BAD_CAST WSE_NS_WSU),
	    BAD_CAST "Id", BAD_CAST "rec-forged");
	set_text(child(forged, "Verdict"), "reject");
	{
		xmlNodePtr note = child(forged, "Note");

		xmlUnlinkNode(note);
		xmlFreeNode(note);
	}
	sig = wse_xml_next_elem(wse_xml_next_elem(wse_xml_next_elem(el)));
	xmlUnlinkNode(el);
	xmlAddPrevSibling(wse_xml_first_elem(r), forged);
	{
		xmlNodePtr obj = xmlNewChild(sig, sig->ns, BAD_CAST "Object",
		    NULL);

		xmlAddChild(obj, el);
	}
	assert_wse_ok(from_doc(d, &g));
	refused(g, VNOW, NULL, WSE_ERR_UNSUPPORTED, 3, "ds:Object");
	wse_form_free(&g);
	xmlFreeDoc(d);

	/* 4. the original kept elsewhere in the record, the forged one read */
	d = to_doc(f);
	r = record(d, 3);
	el = wse_xml_first_elem(r);
	forged = xmlCopyNode(el, 1);
	xmlSetNsProp(forged, xmlSearchNsByHref(d, el, BAD_CAST WSE_NS_WSU),
	    BAD_CAST "Id", BAD_CAST "rec-forged");
	set_text(child(forged, "Verdict"), "reject");
	xmlAddPrevSibling(el, forged);
	assert_wse_status(from_doc(d, &g), WSE_ERR_INVALID);
	xmlFreeDoc(d);

	/* 5. the forged element with the original's Id, the original gone:
	 *    the digest no longer matches */
	d = to_doc(f);
	el = wse_xml_first_elem(record(d, 3));
	set_text(child(el, "Verdict"), "reject");
	assert_wse_ok(from_doc(d, &g));
	refused(g, VNOW, NULL, WSE_ERR_BAD_SIGNATURE, 3, "does not verify");
	wse_form_free(&g);
	xmlFreeDoc(d);

	/* 6. the reference pointed at another record's signed element */
	d = to_doc(f);
	el = wse_xml_first_elem(record(d, 6));
	id = wse_xml_attr(el, WSE_NS_WSU, "Id");
	{
		char uri[80];
		xmlNodePtr s3 = wse_xml_next_elem(wse_xml_next_elem(
		    wse_xml_next_elem(wse_xml_first_elem(record(d, 3)))));
		xmlNodePtr ref = wse_xml_next_elem(wse_xml_next_elem(
		    wse_xml_first_elem(wse_xml_first_elem(s3))));

		snprintf(uri, sizeof(uri), "#%s", id);
		xmlSetProp(ref, BAD_CAST "URI", BAD_CAST uri);
	}
	assert_wse_ok(from_doc(d, &g));
	refused(g, VNOW, NULL, WSE_ERR_BAD_SIGNATURE, 3,
	    "not to the element that must be signed");
	wse_form_free(&g);
	xmlFreeDoc(d);
	wse_form_free(&f);
}

/* The signature's other traps: KeyInfo, XPointer, a swapped
 * certificate, comments. */
static void
test_signature_traps(void **state)
{
	wse_form *f = fig3(3), *g = NULL;
	xmlDocPtr d;
	xmlNodePtr sig, ref;
	wse_buf *b;

	(void)state;
	/* KeyInfo naming an attacker's key: refused outright */
	d = to_doc(f);
	sig = wse_xml_next_elem(wse_xml_next_elem(wse_xml_next_elem(
	    wse_xml_first_elem(record(d, 3)))));
	xmlNewChild(sig, sig->ns, BAD_CAST "KeyInfo", NULL);
	assert_wse_ok(from_doc(d, &g));
	refused(g, VNOW, NULL, WSE_ERR_UNSUPPORTED, 3, "KeyInfo");
	wse_form_free(&g);
	xmlFreeDoc(d);

	/* #xpointer(/) */
	d = to_doc(f);
	sig = wse_xml_next_elem(wse_xml_next_elem(wse_xml_next_elem(
	    wse_xml_first_elem(record(d, 2)))));
	ref = wse_xml_next_elem(wse_xml_next_elem(wse_xml_first_elem(
	    wse_xml_first_elem(sig))));
	xmlSetProp(ref, BAD_CAST "URI", BAD_CAST "#xpointer(/)");
	assert_wse_ok(from_doc(d, &g));
	refused(g, VNOW, NULL, WSE_ERR_UNSUPPORTED, 2, "#id");
	wse_form_free(&g);
	xmlFreeDoc(d);

	/* no transform (inclusive C14N by default), or a PrefixList */
	d = to_doc(f);
	sig = wse_xml_next_elem(wse_xml_next_elem(wse_xml_next_elem(
	    wse_xml_first_elem(record(d, 2)))));
	ref = wse_xml_next_elem(wse_xml_next_elem(wse_xml_first_elem(
	    wse_xml_first_elem(sig))));
	{
		xmlNodePtr trs = wse_xml_first_elem(ref);

		xmlUnlinkNode(trs);
		xmlFreeNode(trs);
	}
	assert_wse_ok(from_doc(d, &g));
	refused(g, VNOW, NULL, WSE_ERR_UNSUPPORTED, 2, "transform");
	wse_form_free(&g);
	xmlFreeDoc(d);
	d = to_doc(f);
	sig = wse_xml_next_elem(wse_xml_next_elem(wse_xml_next_elem(
	    wse_xml_first_elem(record(d, 2)))));
	ref = wse_xml_next_elem(wse_xml_next_elem(wse_xml_first_elem(
	    wse_xml_first_elem(sig))));
	{
		xmlNodePtr tr = wse_xml_first_elem(wse_xml_first_elem(ref));
		xmlNsPtr ec = xmlNewNs(tr, BAD_CAST
		    "http://www.w3.org/2001/10/xml-exc-c14n#", BAD_CAST "ec");
		xmlNodePtr inc = xmlNewChild(tr, ec,
		    BAD_CAST "InclusiveNamespaces", NULL);

		xmlSetProp(inc, BAD_CAST "PrefixList", BAD_CAST "f");
	}
	assert_wse_ok(from_doc(d, &g));
	refused(g, VNOW, NULL, WSE_ERR_UNSUPPORTED, 2, "InclusiveNamespaces");
	wse_form_free(&g);
	xmlFreeDoc(d);

	/* another genuine token of c2's domain CA put in its place */
	d = to_doc(f);
	{
		wse_buf *der = wse_buf_new(16384), *b64 = wse_buf_new(32768);

		assert_wse_ok(wse_cert_to_der(U[Q].cert, der));
		assert_wse_ok(wse_base64_encode(wse_buf_data(der),
		    wse_buf_len(der), b64));
		set_text(child(record(d, 3), "Certificate"), wse_buf_str(b64));
		wse_buf_free(&der);
		wse_buf_free(&b64);
	}
	assert_wse_ok(from_doc(d, &g));
	refused(g, VNOW, NULL, WSE_ERR_BAD_SIGNATURE, 3,
	    "not the one named");
	wse_form_free(&g);
	xmlFreeDoc(d);

	/* a comment anywhere */
	d = to_doc(f);
	xmlAddChild(child(wse_xml_first_elem(record(d, 3)), "Note"),
	    xmlNewComment(BAD_CAST "x"));
	assert_wse_status(from_doc(d, &g), WSE_ERR_PARSE);
	xmlFreeDoc(d);

	/* what a record's reference digests is what the chain hashes */
	d = to_doc(f);
	{
		xmlNodePtr el = wse_xml_first_elem(record(d, 2));
		xmlNodePtr s2 = wse_xml_next_elem(wse_xml_next_elem(
		    wse_xml_next_elem(el)));
		xmlNodePtr r2 = wse_xml_next_elem(wse_xml_next_elem(
		    wse_xml_first_elem(wse_xml_first_elem(s2))));
		xmlNodePtr dv = wse_xml_next_elem(wse_xml_next_elem(
		    wse_xml_first_elem(r2)));
		uint8_t dg[WSE_SHA256_LEN];
		char *txt = NULL, hex[65], prev[80];

		b = wse_buf_new(128);
		assert_wse_ok(wse_wss_digest_node(el, dg));
		assert_wse_ok(wse_base64_encode(dg, sizeof(dg), b));
		assert_wse_ok(wse_xml_text_dup(dv, 128, &txt));
		assert_string_equal(txt, wse_buf_str(b));
		free(txt);
		wse_buf_free(&b);
		wse_hex(dg, sizeof(dg), hex);
		assert_wse_ok(wse_xml_text_dup(child(wse_xml_first_elem(
		    record(d, 3)), "Previous"), sizeof(prev), &txt));
		assert_string_equal(txt, hex);
		free(txt);
	}
	xmlFreeDoc(d);
	wse_form_free(&f);
}

/* Structure and limits, refused by the parser. */
static void
test_parse_limits(void **state)
{
	wse_form *f = fig3(2), *g = NULL;
	xmlDocPtr d;
	xmlNodePtr r;
	int i;
	static const char *const bad[] = {
		"",
		"<x/>",
		"<f:Form xmlns:f=\"" WSE_NS_FORM "\"/>",
		"<!DOCTYPE f [<!ENTITY e \"x\">]><f:Form xmlns:f=\""
		    WSE_NS_FORM "\"/>",
		"<f:Form xmlns:f=\"" WSE_NS_FORM "\"><f:Other/></f:Form>",
	};

	(void)state;
	for (i = 0; i < (int)(sizeof(bad) / sizeof(bad[0])); i++)
		assert_int_not_equal(wse_form_parse((const uint8_t *)bad[i],
		    strlen(bad[i]), NULL, &g), WSE_OK);
	assert_null(g);

	/* 65 records */
	d = to_doc(f);
	r = record(d, 2);
	for (i = 0; i < 63; i++)
		xmlAddChild(xmlDocGetRootElement(d), xmlCopyNode(r, 1));
	assert_wse_status(from_doc(d, &g), WSE_ERR_BAD_SIGNATURE);
	xmlFreeDoc(d);
	d = to_doc(f);
	r = record(d, 2);
	/* the same but Ids made unique: then the count refuses */
	for (i = 0; i < 63; i++) {
		xmlNodePtr c = xmlCopyNode(r, 1);
		char id[32];

		snprintf(id, sizeof(id), "x-%d", i);
		xmlSetNsProp(wse_xml_first_elem(c), xmlSearchNsByHref(d,
		    xmlDocGetRootElement(d), BAD_CAST WSE_NS_WSU),
		    BAD_CAST "Id", BAD_CAST id);
		xmlAddChild(xmlDocGetRootElement(d), c);
	}
	assert_wse_status(from_doc(d, &g), WSE_ERR_TOO_LARGE);
	assert_non_null(strstr(wse_err_last(), "more than 64 records"));
	xmlFreeDoc(d);

	/* a second submit, an unknown element, a third certificate */
	d = to_doc(f);
	xmlAddChild(xmlDocGetRootElement(d), xmlCopyNode(record(d, 1), 1));
	xmlSetNsProp(wse_xml_first_elem(record(d, 3)), xmlSearchNsByHref(d,
	    xmlDocGetRootElement(d), BAD_CAST WSE_NS_WSU), BAD_CAST "Id",
	    BAD_CAST "x-1");
	assert_wse_status(from_doc(d, &g), WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "record 3"));
	xmlFreeDoc(d);
	d = to_doc(f);
	xmlNewChild(wse_xml_first_elem(record(d, 2)), NULL, BAD_CAST "Extra",
	    NULL);
	assert_wse_status(from_doc(d, &g), WSE_ERR_INVALID);
	xmlFreeDoc(d);
	d = to_doc(f);
	r = child(record(d, 2), "Certificate");
	xmlAddNextSibling(r, xmlCopyNode(r, 1));
	assert_wse_status(from_doc(d, &g), WSE_ERR_INVALID);
	xmlFreeDoc(d);
	wse_form_free(&f);

	/* builder limits and syntax */
	f = new_claim();
	for (i = 5; i < WSE_FORM_MAX_FIELDS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%d", i);
		assert_wse_ok(wse_form_add_field(f, name, WSE_FIELD_INTEGER,
		    "-42"));
	}
	assert_wse_status(wse_form_add_field(f, "more", WSE_FIELD_TEXT, "x"),
	    WSE_ERR_TOO_LARGE);
	wse_form_free(&f);
	f = new_claim();
	assert_wse_status(wse_form_add_field(f, "amount", WSE_FIELD_TEXT, "x"),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_form_add_field(f, "x1", WSE_FIELD_DECIMAL,
	    "01.5"), WSE_ERR_INVALID);
	assert_wse_status(wse_form_add_field(f, "x2", WSE_FIELD_DATE,
	    "2025-02-29"), WSE_ERR_INVALID);
	assert_wse_status(wse_form_add_field(f, "x3", WSE_FIELD_TEXT,
	    "a\rb"), WSE_ERR_INVALID);
	assert_wse_status(wse_form_add_field(f, "x4", WSE_FIELD_TEXT,
	    "\xc0\xaf"), WSE_ERR_INVALID);
	assert_wse_status(wse_form_add_field(f, "x5", WSE_FIELD_MAILBOX,
	    "not-a-mailbox"), WSE_ERR_INVALID);
	assert_wse_ok(wse_form_add_field(f, "x6", WSE_FIELD_DATE,
	    "2024-02-29"));
	{
		wse_form_signer s = user(C2);

		/* only the claimant's token submits */
		assert_wse_status(wse_form_sign_submit(f, &s, T(1)),
		    WSE_ERR_NOT_AUTHORIZED);
		s = server(0);
		assert_wse_status(wse_form_sign_submit(f, &s, T(1)),
		    WSE_ERR_NOT_AUTHORIZED);
		s = user(Q);
		assert_wse_ok(wse_form_sign_submit(f, &s, T(1)));
		assert_wse_status(wse_form_sign_submit(f, &s, T(1)),
		    WSE_ERR_EXISTS);
		assert_wse_status(wse_form_add_field(f, "late",
		    WSE_FIELD_TEXT, "x"), WSE_ERR_EXISTS);
	}
	wse_form_free(&f);
	{
		wse_form_type ty = { "expense-claim", "1.0",
		    "http://forms.b.test/x.lua", PLUGIN_SHA };

		assert_wse_status(wse_form_new("q@a.test", &ty, "c.test", &f),
		    WSE_ERR_INVALID);
		ty.plugin_url = "https://forms.b.test/x.lua";
		assert_wse_status(wse_form_new("q@a.test", &ty, "c@test", &f),
		    WSE_ERR_INVALID);
		assert_null(f);
	}
}

/* The final party's policy: completeness and its own name. */
static void
test_final_policy(void **state)
{
	wse_form *f = fig3(5);
	wse_form_policy pol = final_policy();

	(void)state;
	refused(f, VNOW, &pol, WSE_ERR_NOT_AUTHORIZED, 0,
	    "incomplete: hop 4 (approver c5@c.test)");
	pol.final_party = "b.test";
	refused(f, VNOW, &pol, WSE_ERR_NOT_AUTHORIZED, 0,
	    "ends at c.test, not at b.test");
	wse_form_free(&f);
	/* adding requires a verified form */
	f = fig3(5);
	wire(&f);
	{
		wse_form_signer s = user(C5);

		assert_wse_status(wse_form_add_decision(f, &s,
		    WSE_VERDICT_APPROVE, NULL, T(6)), WSE_ERR_INVALID);
	}
	wse_form_free(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_figure3),
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_crls_newer_than_records),
		cmocka_unit_test(test_revoked_domain_ca),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_approval_removed),
		cmocka_unit_test(test_approvals_reordered),
		cmocka_unit_test(test_approval_replayed),
		cmocka_unit_test(test_wrong_domain_ca),
		cmocka_unit_test(test_claimant_via_delegation),
		cmocka_unit_test(test_delegation_by_other),
		cmocka_unit_test(test_delegation_depth),
		cmocka_unit_test(test_insert_by_other_domain),
		cmocka_unit_test(test_out_of_turn),
		cmocka_unit_test(test_bad_signers),
		cmocka_unit_test(test_tampered_field),
		cmocka_unit_test(test_after_rejection),
		cmocka_unit_test(test_decides_twice),
		cmocka_unit_test(test_wrapping),
		cmocka_unit_test(test_signature_traps),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_final_policy),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
