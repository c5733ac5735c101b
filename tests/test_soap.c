/*
 * test_soap.c - envelope building and parsing, WS-Addressing, Faults,
 * dateTime values.
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "soap.h"
#include "xml.h"

static wse_limits lim;

static int
setup(void **state)
{
	(void)state;
	wse_limits_default(&lim);
	return 0;
}

static wse_buf *
serialize(wse_envelope *env)
{
	wse_buf *b = wse_buf_new(1 << 20);

	assert_non_null(b);
	assert_wse_ok(wse_env_serialize(env, b));
	return b;
}

static char *
text(xmlNodePtr n)
{
	wse_buf *b = wse_buf_new(4096);
	char *s;

	assert_non_null(n);
	assert_wse_ok(wse_xml_text(n, b));
	s = wse_buf_steal(b, NULL);
	wse_buf_free(&b);
	return s;
}

static void
test_build_parse_roundtrip(void **state)
{
	wse_envelope *env = NULL, *back = NULL;
	wse_buf *b;
	const char *payload =
	    "<m:Submit xmlns:m=\"urn:wsemail:2026\"><m:Subject>Hi &amp; "
	    "bye</m:Subject></m:Submit>";
	char *s;

	(void)state;
	assert_wse_ok(wse_env_new("https://b.test/wsemail",
	    WSE_ACTION_PREFIX "Submit", &env));
	assert_true(wse_uuid_urn_valid(wse_env_message_id(env)));
	assert_wse_ok(wse_env_set_relates_to(env,
	    "urn:uuid:00000000-0000-4000-8000-000000000000"));
	assert_wse_status(wse_env_set_relates_to(env, "urn:uuid:x"),
	    WSE_ERR_EXISTS);
	assert_wse_ok(wse_env_add_body_xml(env, payload, strlen(payload),
	    &lim));
	b = serialize(env);
	assert_wse_ok(wse_env_parse(wse_buf_data(b), wse_buf_len(b), &lim,
	    &back));
	s = text(wse_env_header_block(back, WSE_NS_WSA, "To"));
	assert_string_equal(s, "https://b.test/wsemail");
	free(s);
	s = text(wse_env_header_block(back, WSE_NS_WSA, "Action"));
	assert_string_equal(s, "urn:wsemail:2026/Submit");
	free(s);
	s = text(wse_env_header_block(back, WSE_NS_WSA, "MessageID"));
	assert_string_equal(s, wse_env_message_id(env));
	free(s);
	s = text(wse_env_header_block(back, WSE_NS_WSA, "RelatesTo"));
	assert_string_equal(s, "urn:uuid:00000000-0000-4000-8000-000000000000");
	free(s);
	{
		xmlNodePtr sub = wse_xml_first_elem(wse_xml_first_elem(
		    wse_env_body(back)));
		assert_true(wse_xml_is(sub, WSE_NS_WSE, "Subject"));
		s = text(sub);
		assert_string_equal(s, "Hi & bye");
		free(s);
	}
	assert_null(wse_env_security(back, 0));
	wse_buf_free(&b);
	wse_env_free(&back);
	wse_env_free(&env);
	assert_null(env);
	wse_env_free(NULL);
}

static void
test_message_ids_unique(void **state)
{
	wse_envelope *a = NULL, *b = NULL;

	(void)state;
	assert_wse_ok(wse_env_new("x", "y", &a));
	assert_wse_ok(wse_env_new("x", "y", &b));
	assert_string_not_equal(wse_env_message_id(a), wse_env_message_id(b));
	wse_env_free(&a);
	wse_env_free(&b);
}

static void
test_build_rejects(void **state)
{
	wse_envelope *env = NULL;

	(void)state;
	assert_wse_status(wse_env_new("", "a", &env), WSE_ERR_INVALID);
	assert_wse_status(wse_env_new("a", "b\nc", &env), WSE_ERR_INVALID);
	assert_null(env);
	assert_wse_ok(wse_env_new("a", "b", &env));
	assert_wse_status(wse_env_add_body_xml(env, "<a><b></a>", 10, &lim),
	    WSE_ERR_PARSE);
	wse_env_free(&env);
}

static wse_status
parse_str(const char *s)
{
	wse_envelope *env = NULL;
	wse_status st = wse_env_parse((const uint8_t *)s, strlen(s), &lim,
	    &env);

	wse_env_free(&env);
	return st;
}

#define ENV_OPEN "<s:Envelope xmlns:s=\"" WSE_NS_SOAP "\" xmlns:wsa=\"" \
	WSE_NS_WSA "\">"

static void
test_parse_structure(void **state)
{
	(void)state;
	assert_wse_ok(parse_str(ENV_OPEN "<s:Body/></s:Envelope>"));
	assert_wse_ok(parse_str(ENV_OPEN "<s:Header/><s:Body/></s:Envelope>"));
	/* Prefixes do not matter, namespaces do. */
	assert_wse_ok(parse_str("<e:Envelope xmlns:e=\"" WSE_NS_SOAP
	    "\"><e:Body/></e:Envelope>"));
	assert_wse_status(parse_str("<s:Envelope xmlns:s=\"http://schemas."
	    "xmlsoap.org/soap/envelope/\"><s:Body/></s:Envelope>"),
	    WSE_ERR_INVALID);
	assert_wse_status(parse_str(ENV_OPEN "</s:Envelope>"),
	    WSE_ERR_INVALID);
	assert_wse_status(parse_str(ENV_OPEN "<s:Body/><s:Body/></s:Envelope>"),
	    WSE_ERR_INVALID);
	assert_wse_status(parse_str(ENV_OPEN
	    "<s:Body/><s:Header/></s:Envelope>"), WSE_ERR_INVALID);
	assert_wse_status(parse_str(ENV_OPEN "<s:Header><wsa:To>a</wsa:To>"
	    "<wsa:To>b</wsa:To></s:Header><s:Body/></s:Envelope>"),
	    WSE_ERR_INVALID);
	assert_wse_status(parse_str(ENV_OPEN "<s:Header><x:H xmlns:x=\"urn:x\" "
	    "s:mustUnderstand=\"true\"/></s:Header><s:Body/></s:Envelope>"),
	    WSE_ERR_UNSUPPORTED);
	assert_wse_ok(parse_str(ENV_OPEN "<s:Header><x:H xmlns:x=\"urn:x\" "
	    "s:mustUnderstand=\"false\"/></s:Header><s:Body/></s:Envelope>"));
	assert_wse_status(parse_str(ENV_OPEN "<s:Header><H/></s:Header>"
	    "<s:Body/></s:Envelope>"), WSE_ERR_INVALID);
	assert_wse_status(parse_str("<a/>"), WSE_ERR_INVALID);
	assert_wse_status(parse_str("not xml"), WSE_ERR_PARSE);
}

static void
test_header_limit(void **state)
{
	wse_buf *b = wse_buf_new(1 << 16);
	unsigned i;

	(void)state;
	assert_wse_ok(wse_buf_puts(b, ENV_OPEN "<s:Header>"));
	for (i = 0; i < lim.max_soap_headers; i++)
		assert_wse_ok(wse_buf_puts(b, "<x:H xmlns:x=\"urn:x\"/>"));
	assert_wse_ok(wse_buf_puts(b, "</s:Header><s:Body/></s:Envelope>"));
	assert_wse_ok(parse_str(wse_buf_str(b)));
	wse_buf_reset(b);
	assert_wse_ok(wse_buf_puts(b, ENV_OPEN "<s:Header>"));
	for (i = 0; i <= lim.max_soap_headers; i++)
		assert_wse_ok(wse_buf_puts(b, "<x:H xmlns:x=\"urn:x\"/>"));
	assert_wse_ok(wse_buf_puts(b, "</s:Header><s:Body/></s:Envelope>"));
	assert_wse_status(parse_str(wse_buf_str(b)), WSE_ERR_TOO_LARGE);
	wse_buf_free(&b);
}

static void
test_faults(void **state)
{
	static const struct { wse_status st; const char *sub; int recv; } t[] = {
		{ WSE_ERR_EXPIRED, "MessageExpired", 0 },
		{ WSE_ERR_REPLAY, "Replay", 0 },
		{ WSE_ERR_BAD_SIGNATURE, "BadSignature", 0 },
		{ WSE_ERR_UNTRUSTED, "UntrustedCertificate", 0 },
		{ WSE_ERR_NOT_AUTHORIZED, "NotAuthorized", 0 },
		{ WSE_ERR_NO_SUCH_USER, "NoSuchUser", 0 },
		{ WSE_ERR_TOO_LARGE, "TooLarge", 0 },
		{ WSE_ERR_TEMPFAIL, "TemporaryFailure", 1 },
		{ WSE_ERR_INTERNAL, "InternalError", 1 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		wse_envelope *f = NULL, *back = NULL;
		wse_buf *b;
		wse_status got;
		char reason[256];

		wse_err(WSE_ERR_IO, "secret detail /etc/wsemail/key.pem");
		assert_wse_ok(wse_fault_new(t[i].st, "https://a.test/",
		    "urn:uuid:11111111-1111-4111-8111-111111111111", &f));
		b = serialize(f);
		/* Precise reasons never reach the wire. */
		assert_null(strstr(wse_buf_str(b), "secret"));
		assert_non_null(strstr(wse_buf_str(b), t[i].recv ?
		    "s:Receiver" : "s:Sender"));
		assert_non_null(strstr(wse_buf_str(b), t[i].sub));
		assert_string_equal(wse_fault_subcode(t[i].st), t[i].sub);
		assert_wse_ok(wse_env_parse(wse_buf_data(b), wse_buf_len(b),
		    &lim, &back));
		assert_wse_ok(wse_fault_read(wse_env_body(back), &got, reason,
		    sizeof(reason)));
		assert_int_equal(got, t[i].st);
		assert_string_equal(reason, wse_fault_reason(t[i].st));
		wse_buf_free(&b);
		wse_env_free(&f);
		wse_env_free(&back);
	}
}

static void
test_fault_read_not_fault(void **state)
{
	wse_envelope *env = NULL;
	wse_status got;

	(void)state;
	assert_wse_ok(wse_env_new("a", "b", &env));
	assert_wse_status(wse_fault_read(wse_env_body(env), &got, NULL, 0),
	    WSE_ERR_NOT_FOUND);
	wse_env_free(&env);
}

static void
test_time(void **state)
{
	int64_t t;
	char out[21];

	(void)state;
	assert_wse_ok(wse_time_parse("1970-01-01T00:00:00Z", &t));
	assert_int_equal(t, 0);
	assert_wse_ok(wse_time_parse("2026-11-26T14:50:07Z", &t));
	assert_int_equal(t, 1795704607);
	wse_time_format(t, out);
	assert_string_equal(out, "2026-11-26T14:50:07Z");
	assert_wse_ok(wse_time_parse("2024-02-29T23:59:59.123456Z", &t));
	wse_time_format(t, out);
	assert_string_equal(out, "2024-02-29T23:59:59Z");
	assert_wse_status(wse_time_parse("2023-02-29T00:00:00Z", &t),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_time_parse("2026-11-26T14:50:07+01:00", &t),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_time_parse("2026-11-26T14:50:07", &t),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_time_parse("2026-11-26 14:50:07Z", &t),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_time_parse("2026-11-26T24:00:00Z", &t),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_time_parse("2026-11-26T23:59:60Z", &t),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_time_parse("2026-11-26T14:50:07.Z", &t),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_time_parse("2026-11-26T14:50:07Zx", &t),
	    WSE_ERR_INVALID);
	assert_wse_status(wse_time_parse("", &t), WSE_ERR_INVALID);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_parse_roundtrip),
		cmocka_unit_test(test_message_ids_unique),
		cmocka_unit_test(test_build_rejects),
		cmocka_unit_test(test_parse_structure),
		cmocka_unit_test(test_header_limit),
		cmocka_unit_test(test_faults),
		cmocka_unit_test(test_fault_read_not_fault),
		cmocka_unit_test(test_time),
	};
	int rc = cmocka_run_group_tests(tests, setup, NULL);

	xmlCleanupParser();
	return rc;
}
