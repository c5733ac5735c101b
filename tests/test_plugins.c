/*
 * test_plugins.c - wsemaild's plugin host (src/wsemaild/plugins.c) in
 * process, with the test plugin tests/plugins/probe.c: every malformed
 * descriptor is refused with a message naming the problem and leaves no
 * plugin loaded; a plugin line that is too long, too many plugin lines
 * and a shared object without an entry point are refused; the results of
 * the message, submit and call hooks are applied as documented (a
 * TempFail refuses the delivery, a failure is ignored, an answer of the
 * wrong shape, a stream beyond its file and a request of the wrong
 * profile are refused); and the host callbacks refuse what a plugin may
 * not do (submit before the server serves or without a valid From,
 * deliver_instant of anything but an instant message to this domain).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1		/* dladdr */
#endif
#include "testutil.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "config.h"
#include "msg.h"
#include "plugin.h"
#include "wsed.h"

static char probe_so[1024];

static int64_t
test_now(void)
{
	return 1700000000;
}

static void
server_init(struct wsed *w)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->domain, sizeof(w->domain), "a.test");
	snprintf(w->url, sizeof(w->url), "https://mail.a.test/wsemail");
	wse_limits_default(&w->lim);
	w->now = test_now;
}

/* Load text as a configuration; returns wsed_plugins_load's result and
 * the log in log. */
static int
load(struct wsed *w, const char *text, char *log, size_t size)
{
	testutil_stderr e;
	wse_config *cfg = NULL;
	int rc;

	assert_wse_ok(wse_config_parse(text, strlen(text), "test", &cfg));
	testutil_stderr_begin(&e);
	rc = wsed_plugins_load(w, cfg, "test");
	testutil_stderr_end(&e, log, size);
	wse_config_free(&cfg);
	return rc;
}

/* Load the probe plugin with descriptor what. */
static int
load_probe(struct wsed *w, const char *what, char *log, size_t size)
{
	char line[1200];

	setenv("WSE_PROBE", what, 1);
	snprintf(line, sizeof(line), "plugin = %s\n", probe_so);
	return load(w, line, log, size);
}

static void
test_bad_descriptors(void **state)
{
	static const struct {
		const char *what, *why;
	} c[] = {
		{ "none", "wse_plugin_entry() returned NULL" },
		{ "noabi", "plugin ABI mismatch: it was built for \"(none)\"" },
		{ "noname", "bad plugin name" },
		{ "emptyname", "bad plugin name" },
		{ "uppername", "bad plugin name" },
		{ "longname", "bad plugin name" },
		{ "manyops", "plugin probe adds more than 16 operations" },
		{ "digitop", "bad operation name \"9Lives\"" },
		{ "dashop", "bad operation name \"Get-Mail\"" },
		{ "longop", "bad operation name \"A1234567890" },
		{ "twice", "plugin probe lists operation Echo twice" },
		{ "hold", "operation Echo may be held but the plugin has no "
		    "cancelled hook" },
		{ "flags", "operation Echo has unknown flags 0x100" },
		{ "nocall", "plugin probe adds operations but has no call "
		    "handler" },
	};
	struct wsed w;
	char log[4096];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		server_init(&w);
		if (load_probe(&w, c[i].what, log, sizeof(log)) == 0 ||
		    strstr(log, c[i].why) == NULL ||
		    strstr(log, probe_so) == NULL)
			fail_msg("%s: loaded, or log \"%s\"", c[i].what, log);
		assert_int_equal(w.nplugins, 0);
		assert_null(wsed_plugins_op(&w, 0));
		wsed_plugins_unload(&w);
	}
	/* The same file with a good descriptor loads. */
	server_init(&w);
	if (load_probe(&w, "good", log, sizeof(log)) != 0)
		fail_msg("good: %s", log);
	assert_int_equal(w.nplugins, 1);
	assert_true(wsed_plugins_has_op(&w, "Echo"));
	wsed_plugins_unload(&w);
}

static void
test_bad_lines(void **state)
{
	struct wsed w;
	char log[4096], *text, *p;
	Dl_info di;
	size_t i;

	(void)state;
	/* A path as long as the host's buffer. */
	text = malloc(4096);
	assert_non_null(text);
	p = text + snprintf(text, 4096, "plugin = /");
	memset(p, 'a', 1100);
	snprintf(p + 1100, 16, ".so\n");
	server_init(&w);
	if (load(&w, text, log, sizeof(log)) == 0 ||
	    strstr(log, "bad plugin line") == NULL)
		fail_msg("long path: %s", log);
	assert_int_equal(w.nplugins, 0);
	wsed_plugins_unload(&w);

	/* One plugin line more than the server takes. */
	setenv("WSE_PROBE", "good", 1);
	text[0] = '\0';
	for (i = 0; i < WSED_PLUGINS_MAX + 1; i++)
		snprintf(text + strlen(text), 4096 - strlen(text),
		    "plugin = /nonexistent/p%zu.so\n", i);
	server_init(&w);
	if (load(&w, text, log, sizeof(log)) == 0 ||
	    strstr(log, "more than 32 plugins") == NULL)
		fail_msg("too many: %s", log);
	assert_int_equal(w.nplugins, 0);
	wsed_plugins_unload(&w);
	free(text);

	/* A shared object that is not a plugin: the C library. */
	assert_int_not_equal(dladdr((void *)(uintptr_t)&printf, &di), 0);
	assert_non_null(di.dli_fname);
	assert_int_equal(di.dli_fname[0], '/');
	snprintf(log, sizeof(log), "plugin = %s\n", di.dli_fname);
	text = strdup(log);
	server_init(&w);
	if (load(&w, text, log, sizeof(log)) == 0 ||
	    strstr(log, "no wse_plugin_entry() (not a wsemail plugin?)") ==
	    NULL)
		fail_msg("libc: %s", log);
	assert_int_equal(w.nplugins, 0);
	wsed_plugins_unload(&w);
	free(text);
}

/* The probe's host interface, from the loaded copy of probe.so. */
static const struct wse_plugin_host *
probe_host(void)
{
	const struct wse_plugin_host *(*fn)(void);
	void *dl, *sym;
	const struct wse_plugin_host *h;

	dl = dlopen(probe_so, RTLD_NOW | RTLD_NOLOAD);
	assert_non_null(dl);
	sym = dlsym(dl, "probe_host");
	assert_non_null(sym);
	memcpy(&fn, &sym, sizeof(fn));
	h = fn();
	dlclose(dl);
	assert_non_null(h);
	return h;
}

static wse_msg *
msg(const char *from, const char *to, const char *to2)
{
	wse_msg *m = NULL;

	assert_wse_ok(wse_msg_new(&m));
	assert_wse_ok(wse_msg_set(m, "from", from));
	if (to != NULL)
		assert_wse_ok(wse_msg_add_rcpt(m, to, 0));
	if (to2 != NULL)
		assert_wse_ok(wse_msg_add_rcpt(m, to2, 0));
	return m;
}

static void
test_message_hook(void **state)
{
	struct wsed w;
	char log[4096];
	testutil_stderr e;
	const char *rcpts[2];
	wse_msg *m;
	size_t n;
	wse_status st;

	(void)state;
	server_init(&w);
	if (load_probe(&w, "good", log, sizeof(log)) != 0)
		fail_msg("good: %s", log);
	m = msg("carol@b.test", "alice@a.test", "bob@a.test");

	/* TempFail: the whole delivery is refused. */
	setenv("WSE_PROBE_MSG", "tempfail", 1);
	rcpts[0] = "alice@a.test";
	rcpts[1] = "bob@a.test";
	n = 2;
	wse_err_clear();
	st = wsed_plugins_deliver(&w, m, "b.test", "id-1",
	    (const uint8_t *)"x", 1, rcpts, &n);
	assert_int_equal(st, WSE_ERR_TEMPFAIL);
	assert_non_null(strstr(wse_err_last(), "plugin probe cannot take "
	    "id-1 from b.test now"));
	wse_err_clear();

	/* A failure: logged, its consumed_r ignored. */
	setenv("WSE_PROBE_MSG", "fail", 1);
	n = 2;
	testutil_stderr_begin(&e);
	st = wsed_plugins_deliver(&w, m, "b.test", "id-2",
	    (const uint8_t *)"x", 1, rcpts, &n);
	testutil_stderr_end(&e, log, sizeof(log));
	assert_wse_ok(st);
	assert_int_equal(n, 2);
	assert_string_equal(rcpts[0], "alice@a.test");
	assert_string_equal(rcpts[1], "bob@a.test");
	if (strstr(log, "plugin probe failed on id-2 from b.test "
	    "(internal") == NULL || strstr(log, "delivered as usual") == NULL)
		fail_msg("failure log: %s", log);

	/* A refusal takes the recipient away and is logged. */
	setenv("WSE_PROBE_MSG", "refuse", 1);
	n = 2;
	testutil_stderr_begin(&e);
	st = wsed_plugins_deliver(&w, m, "b.test", "id-3",
	    (const uint8_t *)"x", 1, rcpts, &n);
	testutil_stderr_end(&e, log, sizeof(log));
	assert_wse_ok(st);
	assert_int_equal(n, 1);
	assert_string_equal(rcpts[0], "bob@a.test");
	if (strstr(log, "plugin probe refused id-3 from b.test "
	    "(carol@b.test) for alice@a.test") == NULL)
		fail_msg("refusal log: %s", log);
	unsetenv("WSE_PROBE_MSG");

	/* The submit hook's refusal reaches the client even when the
	 * plugin gave no reason. */
	setenv("WSE_PROBE_SUBMIT", "1", 1);
	wse_err_clear();
	testutil_stderr_begin(&e);
	st = wsed_plugins_submit(&w, "carol@a.test", "sub-1", m);
	testutil_stderr_end(&e, log, sizeof(log));
	assert_int_equal(st, WSE_ERR_NOT_AUTHORIZED);
	assert_non_null(strstr(wse_err_last(), "plugin probe refused the "
	    "message"));
	assert_non_null(strstr(log, "plugin probe refused submission sub-1"));
	wse_err_clear();
	unsetenv("WSE_PROBE_SUBMIT");

	/* An upload no hook resolved: refused, whatever the hooks said. */
	assert_wse_ok(wse_msg_add_upload(m, "upload-0123456789abcdef"));
	assert_int_equal(wsed_plugins_submit(&w, "carol@a.test", "sub-2", m),
	    WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "on-demand attachments are "
	    "not served here"));
	wse_err_clear();

	wse_msg_free(&m);
	wsed_plugins_unload(&w);
}

static void
test_call_results(void **state)
{
	struct wsed w;
	struct wse_plugin_stream stream;
	wse_verified v;
	char log[4096];
	xmlDocPtr doc;
	wse_buf *resp;

	(void)state;
	server_init(&w);
	if (load_probe(&w, "good", log, sizeof(log)) != 0)
		fail_msg("good: %s", log);
	doc = xmlReadMemory("<m:Echo xmlns:m=\"urn:wsemail:2026\"/>", 36,
	    NULL, NULL, XML_PARSE_NONET);
	assert_non_null(doc);
	memset(&v, 0, sizeof(v));
	v.profile = WSE_PROFILE_PASSWORD;
	v.user = "alice@a.test";
	v.body = xmlDocGetRootElement(doc);
	v.message_id_s = "urn:uuid:00000000-0000-4000-8000-000000000000";
	resp = wse_buf_new(65536);
	assert_non_null(resp);

	wse_err_clear();
	assert_wse_ok(wsed_plugins_call(&w, "Echo", &v, resp, NULL));
	assert_int_equal(wsed_plugins_call(&w, "NoSuch", &v, resp, NULL),
	    WSE_ERR_UNSUPPORTED);
	assert_non_null(strstr(wse_err_last(), "unknown operation NoSuch"));
	wse_err_clear();

	/* An answer of another operation's shape. */
	assert_int_equal(wsed_plugins_call(&w, "Garbage", &v, resp, NULL),
	    WSE_ERR_INTERNAL);
	assert_non_null(strstr(wse_err_last(), "plugin probe answered "
	    "Garbage with something other than one m:GarbageResponse"));
	wse_err_clear();

	/* A failure without a reason gets one. */
	assert_int_equal(wsed_plugins_call(&w, "Fail", &v, resp, NULL),
	    WSE_ERR_NOT_FOUND);
	assert_non_null(strstr(wse_err_last(), "plugin probe: Fail failed"));
	wse_err_clear();

	/* A stream: closed on failure; refused beyond the file. */
	assert_int_equal(wsed_plugins_call(&w, "StreamFail", &v, resp,
	    &stream), WSE_ERR_INTERNAL);
	assert_int_equal(stream.fd, -1);
	wse_err_clear();
	assert_int_equal(wsed_plugins_call(&w, "StreamPast", &v, resp,
	    &stream), WSE_ERR_INTERNAL);
	assert_int_equal(stream.fd, -1);
	assert_non_null(strstr(wse_err_last(), "stream range beyond the "
	    "file"));
	wse_err_clear();

	/* The profile must be the operation's: a token operation is not
	 * served to a password request, nor a password one to a token. */
	assert_int_equal(wsed_plugins_call(&w, "TokenEcho", &v, resp, NULL),
	    WSE_ERR_INTERNAL);
	assert_non_null(strstr(wse_err_last(), "TokenEcho: not verified"));
	wse_err_clear();
	v.profile = WSE_PROFILE_CERT;
	v.user = NULL;
	v.signer_mailbox = "alice@a.test";
	assert_wse_ok(wsed_plugins_call(&w, "TokenEcho", &v, resp, NULL));
	assert_int_equal(wsed_plugins_call(&w, "Echo", &v, resp, NULL),
	    WSE_ERR_INTERNAL);
	assert_non_null(strstr(wse_err_last(), "Echo: not verified"));
	wse_err_clear();
	/* A token request without its mailbox. */
	v.signer_mailbox = NULL;
	assert_int_equal(wsed_plugins_call(&w, "TokenEcho", &v, resp, NULL),
	    WSE_ERR_INTERNAL);
	wse_err_clear();

	wse_buf_free(&resp);
	xmlFreeDoc(doc);
	wsed_plugins_unload(&w);
}

static void
test_host_refusals(void **state)
{
	const struct wse_plugin_host *h;
	struct wsed w;
	char log[4096], id[WSE_UUID_URN_LEN + 1];
	int stored;
	unsigned sessions;
	wse_msg *m, *bad;

	(void)state;
	server_init(&w);
	if (load_probe(&w, "good", log, sizeof(log)) != 0)
		fail_msg("good: %s", log);
	h = probe_host();
	assert_string_equal(h->domain, "a.test");
	m = msg("alice@a.test", "bob@a.test", NULL);

	/* Not serving yet: nothing is submitted. */
	wse_err_clear();
	assert_int_equal(h->submit(h, m, 0, id), WSE_ERR_TEMPFAIL);
	assert_non_null(strstr(wse_err_last(), "submit while the server is "
	    "not serving"));
	wse_err_clear();
	assert_int_equal(h->deliver_instant(h, m, "bob@a.test", "a.test",
	    "id", (const uint8_t *)"x", 1, &stored, &sessions),
	    WSE_ERR_TEMPFAIL);
	wse_err_clear();

	wsed_plugins_start(&w);
	assert_int_equal(h->submit(h, NULL, 0, id), WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "submit without a valid "
	    "From"));
	wse_err_clear();
	bad = msg("alice@a.test", "bob@a.test", NULL);
	free(bad->from);
	bad->from = strdup("alice.a.test");
	assert_non_null(bad->from);
	assert_int_equal(h->submit(h, bad, 0, id), WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "submit without a valid "
	    "From"));
	wse_err_clear();
	wse_msg_free(&bad);

	/* deliver_instant: only instant messages, to a mailbox here, from
	 * the origin's domain. */
	stored = 7;
	sessions = 7;
	assert_int_equal(h->deliver_instant(h, m, "bob@a.test", "a.test",
	    "id", (const uint8_t *)"x", 1, &stored, &sessions),
	    WSE_ERR_INVALID);
	assert_int_equal(stored, 0);
	assert_int_equal(sessions, 0);
	assert_non_null(strstr(wse_err_last(), "not an instant message"));
	wse_err_clear();
	m->instant = 1;
	/* to a mailbox elsewhere, even when the message is to it */
	bad = msg("alice@a.test", "bob@c.test", NULL);
	bad->instant = 1;
	assert_int_equal(h->deliver_instant(h, bad, "bob@c.test", "a.test",
	    "id", (const uint8_t *)"x", 1, &stored, &sessions),
	    WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "not an instant message to "
	    "a mailbox of a.test"));
	wse_err_clear();
	wse_msg_free(&bad);
	assert_int_equal(h->deliver_instant(h, m, "bob@a.test", "b.test",
	    "id", (const uint8_t *)"x", 1, &stored, &sessions),
	    WSE_ERR_INVALID);
	wse_err_clear();
	assert_int_equal(h->deliver_instant(h, m, "bob@a.test", "a.test",
	    "id", (const uint8_t *)"x", 0, &stored, &sessions),
	    WSE_ERR_INVALID);
	wse_err_clear();
	/* to bob, delivered as if to carol */
	assert_int_equal(h->deliver_instant(h, m, "carol@a.test", "a.test",
	    "id", (const uint8_t *)"x", 1, &stored, &sessions),
	    WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "the message is not to "
	    "carol@a.test"));
	wse_err_clear();
	/* more than one recipient */
	assert_wse_ok(wse_msg_add_rcpt(m, "carol@a.test", 1));
	assert_int_equal(h->deliver_instant(h, m, "bob@a.test", "a.test",
	    "id", (const uint8_t *)"x", 1, &stored, &sessions),
	    WSE_ERR_INVALID);
	assert_non_null(strstr(wse_err_last(), "exactly one recipient"));
	wse_err_clear();

	/* host->plugin lists the loaded plugins only. */
	assert_non_null(h->plugin(h, 0));
	assert_string_equal(h->plugin(h, 0)->name, "probe");
	assert_null(h->plugin(h, 1));

	wse_msg_free(&m);
	wsed_plugins_unload(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_descriptors),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_message_hook),
		cmocka_unit_test(test_call_results),
		cmocka_unit_test(test_host_refusals),
	};

	snprintf(probe_so, sizeof(probe_so), "%s", PROBE_SO);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
