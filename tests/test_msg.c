/*
 * test_msg.c - the m:Message element: building, parsing, the checks on
 * every field, inline and on-demand attachments, and which servers may
 * hold a domain's on-demand attachments.
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "msg.h"
#include "text.h"
#include "soap.h"
#include "xml.h"

static wse_limits lim;

#define SHA "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define REF "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde"

static int
setup(void **state)
{
	(void)state;
	wse_limits_default(&lim);
	return 0;
}

/* Parse one m:Message document; returns the status, *m_r on success. */
static wse_status
parse_text(const char *xml, wse_msg **m_r)
{
	xmlDocPtr doc = NULL;
	wse_status st;

	*m_r = NULL;
	assert_wse_ok(wse_xml_parse((const uint8_t *)xml, strlen(xml), &lim,
	    &doc));
	st = wse_msg_parse(xmlDocGetRootElement(doc), m_r);
	xmlFreeDoc(doc);
	return st;
}

static wse_msg *
roundtrip(const wse_msg *m)
{
	wse_buf *b = wse_buf_new(1 << 20);
	wse_msg *back = NULL;

	assert_non_null(b);
	assert_wse_ok(wse_msg_to_xml(m, b));
	assert_wse_ok(parse_text(wse_buf_str(b), &back));
	wse_buf_free(&b);
	return back;
}

static void
test_basic_roundtrip(void **state)
{
	wse_msg *m = NULL, *b;

	(void)state;
	assert_wse_ok(wse_msg_new(&m));
	assert_wse_ok(wse_msg_set(m, "from", "Alice@A.test"));
	assert_wse_ok(wse_msg_add_rcpt(m, "bob@b.test", 0));
	assert_wse_ok(wse_msg_add_rcpt(m, "carol@b.test", 1));
	assert_wse_ok(wse_msg_set(m, "subject", "figures <&>"));
	assert_wse_ok(wse_msg_set(m, "text", "line 1\nline 2"));
	assert_wse_ok(wse_msg_add_attachment(m, "a.txt", "text/plain",
	    "test", 4));
	b = roundtrip(m);
	assert_string_equal(b->from, "alice@a.test");
	assert_int_equal(b->nto, 1);
	assert_int_equal(b->ncc, 1);
	assert_string_equal(b->cc[0], "carol@b.test");
	assert_string_equal(b->subject, "figures <&>");
	assert_int_equal(b->natt, 1);
	assert_string_equal(b->att[0].sha256, SHA);
	assert_int_equal(b->nod, 0);
	wse_msg_free(&b);
	wse_msg_free(&m);
	assert_null(m);
}

static void
test_ondemand_forms(void **state)
{
	wse_msg *m = NULL, *b;

	(void)state;
	assert_wse_ok(wse_msg_new(&m));
	assert_wse_ok(wse_msg_set(m, "from", "alice@a.test"));
	assert_wse_ok(wse_msg_add_rcpt(m, "bob@b.test", 0));
	/* the client's form */
	assert_wse_ok(wse_msg_add_upload(m, REF));
	assert_int_equal(wse_msg_unresolved(m), 1);
	b = roundtrip(m);
	assert_int_equal(b->nod, 1);
	assert_string_equal(b->od[0].upload, REF);
	assert_null(b->od[0].ref);
	wse_msg_free(&b);
	/* resolved by the server */
	assert_wse_ok(wse_msg_resolve_ondemand(m, 0,
	    "https://a.test:8443/wsemail", REF, "big file.iso", NULL,
	    1073741824ull, SHA));
	assert_int_equal(wse_msg_unresolved(m), 0);
	assert_null(m->od[0].upload);
	assert_wse_status(wse_msg_resolve_ondemand(m, 0, "https://a.test/",
	    REF, "x", NULL, 1, SHA), WSE_ERR_INVALID);
	wse_err_clear();
	b = roundtrip(m);
	assert_int_equal(b->nod, 1);
	assert_null(b->od[0].upload);
	assert_string_equal(b->od[0].server, "https://a.test:8443/wsemail");
	assert_string_equal(b->od[0].ref, REF);
	assert_string_equal(b->od[0].name, "big file.iso");
	assert_string_equal(b->od[0].type, "application/octet-stream");
	assert_true(b->od[0].size == 1073741824ull);
	assert_string_equal(b->od[0].sha256, SHA);
	wse_msg_free(&b);
	wse_msg_free(&m);
}

/* Attachment names (text.h): shown to the recipient and perhaps saved
 * as files, so nothing that could drive a terminal or reorder what is
 * shown, no '/', well-formed UTF-8, at most 255 bytes. */
static void
test_attachment_names(void **state)
{
	static const char *const bad[] = {
		"", "a/b", "../x", "a\tb", "a\x7f", "a\xc2\x85" "b",
		"cod\xe2\x80\xae" "fdp.exe",	/* U+202E right-to-left override */
		"a\xe2\x81\xa7" "b",		/* U+2067 right-to-left isolate */
		"a\xe2\x80\x8f" "b",		/* U+200F right-to-left mark */
		"a\xe2\x80\xa8" "b",		/* U+2028 line separator */
		"a\xef\xbf\xbf" "b",		/* U+FFFF */
		"a\xc0\xaf" "b",			/* overlong '/' */
		"a\xed\xa0\x80" "b",		/* a surrogate */
		"a\xff" "b", "a\xe2\x80",
		NULL,
	};
	static const char *const good[] = { "a.txt", ".profile",
	    "R\xc3\xa9sum\xc3\xa9 2026.pdf", "\xe6\x97\xa5\xe6\x9c\xac.txt",
	    "\xf0\x9f\x93\x8e clip", NULL };
	char name[300];
	wse_msg *m = NULL;
	size_t i;

	(void)state;
	assert_wse_ok(wse_msg_new(&m));
	for (i = 0; bad[i] != NULL; i++) {
		assert_false(wse_attach_name_ok(bad[i]));
		assert_wse_status(wse_msg_add_attachment(m, bad[i],
		    "text/plain", "x", 1), WSE_ERR_INVALID);
		wse_err_clear();
	}
	assert_false(wse_attach_name_ok(NULL));
	assert_int_equal(m->natt, 0);
	for (i = 0; good[i] != NULL; i++) {
		assert_true(wse_attach_name_ok(good[i]));
		assert_wse_ok(wse_msg_add_attachment(m, good[i], "text/plain",
		    "x", 1));
	}
	memset(name, 'n', WSE_ATTACH_NAME_MAX);
	name[WSE_ATTACH_NAME_MAX] = '\0';
	assert_true(wse_attach_name_ok(name));
	name[WSE_ATTACH_NAME_MAX] = 'n';
	name[WSE_ATTACH_NAME_MAX + 1] = '\0';
	assert_false(wse_attach_name_ok(name));
	wse_msg_free(&m);

	/* The same rule for a received message's names. */
	assert_int_not_equal(parse_text("<m:Message xmlns:m=\"" WSE_NS_WSE
	    "\"><m:From>a@a.test</m:From><m:To>b@b.test</m:To>"
	    "<m:OnDemand server=\"https://a.test/\" ref=\"" REF "\" "
	    "name=\"cod&#x202E;fdp.exe\" size=\"1\" sha256=\"" SHA "\"/>"
	    "</m:Message>", &m), WSE_OK);
	assert_null(m);
	wse_err_clear();
}

static void
test_ondemand_rejects(void **state)
{
	static const char *const bad[] = {
		/* both forms at once */
		"<m:OnDemand upload=\"" REF "\" ref=\"" REF "\"/>",
		/* short handle */
		"<m:OnDemand upload=\"abc\"/>",
		/* a character outside base64url */
		"<m:OnDemand upload=\"AbCdEfGhIjKlMnOp/rStUv\"/>",
		/* not https */
		"<m:OnDemand server=\"http://a.test/\" ref=\"" REF "\" "
		    "name=\"x\" size=\"1\" sha256=\"" SHA "\"/>",
		/* a path in the name */
		"<m:OnDemand server=\"https://a.test/\" ref=\"" REF "\" "
		    "name=\"../x\" size=\"1\" sha256=\"" SHA "\"/>",
		/* upper-case or short digest */
		"<m:OnDemand server=\"https://a.test/\" ref=\"" REF "\" "
		    "name=\"x\" size=\"1\" sha256=\"ABCD\"/>",
		/* size not a number, negative, overflowing */
		"<m:OnDemand server=\"https://a.test/\" ref=\"" REF "\" "
		    "name=\"x\" size=\"-1\" sha256=\"" SHA "\"/>",
		"<m:OnDemand server=\"https://a.test/\" ref=\"" REF "\" "
		    "name=\"x\" size=\"99999999999999999999999\" sha256=\""
		    SHA "\"/>",
		/* missing ref */
		"<m:OnDemand server=\"https://a.test/\" name=\"x\" size=\"1\" "
		    "sha256=\"" SHA "\"/>",
		/* content */
		"<m:OnDemand upload=\"" REF "\"><m:X/></m:OnDemand>",
		NULL,
	};
	char xml[2048];
	wse_msg *m;
	size_t i;

	(void)state;
	for (i = 0; bad[i] != NULL; i++) {
		snprintf(xml, sizeof(xml), "<m:Message xmlns:m=\"" WSE_NS_WSE
		    "\"><m:From>a@a.test</m:From><m:To>b@b.test</m:To>%s"
		    "</m:Message>", bad[i]);
		assert_int_not_equal(parse_text(xml, &m), WSE_OK);
		assert_null(m);
		wse_err_clear();
	}
	/* At most WSE_MSG_MAX_ONDEMAND entries. */
	assert_wse_ok(wse_msg_new(&m));
	for (i = 0; i < WSE_MSG_MAX_ONDEMAND; i++)
		assert_wse_ok(wse_msg_add_upload(m, REF));
	assert_wse_status(wse_msg_add_upload(m, REF), WSE_ERR_TOO_LARGE);
	wse_err_clear();
	wse_msg_free(&m);
}

static void
test_url_in_domain(void **state)
{
	(void)state;
	assert_true(wse_url_in_domain("https://a.test/wsemail", "a.test"));
	assert_true(wse_url_in_domain("https://A.Test:8443/w", "a.test"));
	assert_true(wse_url_in_domain("https://mail.a.test/w", "a.test"));
	assert_false(wse_url_in_domain("https://evila.test/w", "a.test"));
	assert_false(wse_url_in_domain("https://a.test.evil/w", "a.test"));
	assert_false(wse_url_in_domain("https://a.test@b.test/w", "a.test"));
	assert_false(wse_url_in_domain("http://a.test/w", "a.test"));
	assert_false(wse_url_in_domain("https://b.test/w", "a.test"));
	assert_false(wse_url_in_domain("https:///w", "a.test"));
	assert_false(wse_url_in_domain(NULL, "a.test"));
}

static void
test_message_rejects(void **state)
{
	static const char *const bad[] = {
		"<m:From>a@a.test</m:From>",				/* no rcpt */
		"<m:To>b@b.test</m:To>",				/* no From */
		"<m:From>a@a.test</m:From><m:From>c@a.test</m:From>"
		    "<m:To>b@b.test</m:To>",				/* twice */
		"<m:From>not an address</m:From><m:To>b@b.test</m:To>",
		"<m:From>a@a.test</m:From><m:To>b@b.test</m:To>"
		    "<m:Subject>a\nb</m:Subject>",			/* break */
		"<m:From>a@a.test</m:From><m:To>b@b.test</m:To>"
		    "<m:Attachment name=\"x\" size=\"5\" sha256=\"" SHA "\">"
		    "dGVzdA==</m:Attachment>",				/* size */
		"<m:From>a@a.test</m:From><m:To>b@b.test</m:To><m:Bcc>x</m:Bcc>",
		NULL,
	};
	char xml[2048];
	wse_msg *m;
	size_t i;

	(void)state;
	for (i = 0; bad[i] != NULL; i++) {
		snprintf(xml, sizeof(xml), "<m:Message xmlns:m=\"" WSE_NS_WSE
		    "\">%s</m:Message>", bad[i]);
		assert_int_not_equal(parse_text(xml, &m), WSE_OK);
		assert_null(m);
		wse_err_clear();
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic_roundtrip),
		cmocka_unit_test(test_ondemand_forms),
		cmocka_unit_test(test_attachment_names),
		cmocka_unit_test(test_ondemand_rejects),
		cmocka_unit_test(test_url_in_domain),
		cmocka_unit_test(test_message_rejects),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
