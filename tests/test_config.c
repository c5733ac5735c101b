/*
 * test_config.c - the configuration-file parser (lib/config.c).
 */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static wse_config *
parse_ok(const char *text)
{
	wse_config *cfg = NULL;

	wse_err_clear();
	assert_wse_ok(wse_config_parse(text, strlen(text), "t.conf", &cfg));
	assert_non_null(cfg);
	return cfg;
}

/* Parse must fail with WSE_ERR_CONFIG and a message containing want
 * (typically "t.conf:<line>:") and what. */
static void
parse_bad_len(const char *text, size_t len, const char *want,
    const char *what)
{
	wse_config *cfg = (wse_config *)&cfg;	/* must be reset to NULL */

	wse_err_clear();
	assert_wse_status(wse_config_parse(text, len, "t.conf", &cfg),
	    WSE_ERR_CONFIG);
	assert_null(cfg);
	if (strstr(wse_err_last(), want) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", wse_err_last(),
		    want);
	if (what != NULL && strstr(wse_err_last(), what) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", wse_err_last(),
		    what);
}

static void
parse_bad(const char *text, const char *want, const char *what)
{
	parse_bad_len(text, strlen(text), want, what);
}

static void
test_sections(void **state)
{
	wse_config *cfg;

	(void)state;
	cfg = parse_ok(
	    "hostname = mx.example.test\n"
	    "[domain.example.test]\n"
	    "store = sqlite\n"
	    "[alice@example.test]\n"
	    "quota = 100\n"
	    "[a-b_c.9]\n"
	    "x = 1\n"
	    "[domain.example.test]\n"
	    "path = /var/lib/wse\n");
	assert_string_equal(wse_config_get(cfg, "", "hostname"),
	    "mx.example.test");
	assert_string_equal(wse_config_get(cfg, NULL, "hostname"),
	    "mx.example.test");
	assert_null(wse_config_get(cfg, "domain.example.test", "hostname"));
	assert_string_equal(wse_config_get(cfg, "domain.example.test",
	    "store"), "sqlite");
	/* A repeated section header continues the same section. */
	assert_string_equal(wse_config_get(cfg, "domain.example.test", "path"),
	    "/var/lib/wse");
	assert_string_equal(wse_config_get(cfg, "alice@example.test", "quota"),
	    "100");
	assert_null(wse_config_get(cfg, "nosuch", "quota"));
	assert_null(wse_config_get(cfg, "", "quota"));
	/* Sections in file order, each once, the main section not listed. */
	assert_string_equal(wse_config_section(cfg, 0), "domain.example.test");
	assert_string_equal(wse_config_section(cfg, 1), "alice@example.test");
	assert_string_equal(wse_config_section(cfg, 2), "a-b_c.9");
	assert_null(wse_config_section(cfg, 3));
	assert_int_equal(wse_config_line(cfg, "", "hostname"), 1);
	assert_int_equal(wse_config_line(cfg, "domain.example.test", "path"), 9);
	assert_int_equal(wse_config_line(cfg, "", "nosuch"), 0);
	wse_config_free(&cfg);
	assert_null(cfg);
	wse_config_free(&cfg);	/* NULL is fine */
	wse_config_free(NULL);
}

static void
test_repeated_keys(void **state)
{
	wse_config *cfg;
	const char *v, *k;

	(void)state;
	cfg = parse_ok(
	    "[routes]\n"
	    "route = a.test smtp\n"
	    "other = x\n"
	    "route = b.test wse\n"
	    "route = c.test local\n");
	assert_int_equal(wse_config_count(cfg, "routes", "route"), 3);
	assert_int_equal(wse_config_count(cfg, "routes", "nosuch"), 0);
	assert_int_equal(wse_config_count(cfg, "nosuch", "route"), 0);
	assert_string_equal(wse_config_get_nth(cfg, "routes", "route", 0),
	    "a.test smtp");
	assert_string_equal(wse_config_get_nth(cfg, "routes", "route", 1),
	    "b.test wse");
	assert_string_equal(wse_config_get_nth(cfg, "routes", "route", 2),
	    "c.test local");
	assert_null(wse_config_get_nth(cfg, "routes", "route", 3));
	/* get returns the last value, line the line of the last value. */
	assert_string_equal(wse_config_get(cfg, "routes", "route"),
	    "c.test local");
	assert_int_equal(wse_config_line(cfg, "routes", "route"), 5);
	/* Keys of a section in file order, with repetitions. */
	k = wse_config_key(cfg, "routes", 0, &v);
	assert_string_equal(k, "route");
	assert_string_equal(v, "a.test smtp");
	k = wse_config_key(cfg, "routes", 1, &v);
	assert_string_equal(k, "other");
	assert_string_equal(v, "x");
	k = wse_config_key(cfg, "routes", 3, NULL);
	assert_string_equal(k, "route");
	assert_null(wse_config_key(cfg, "routes", 4, &v));
	assert_null(v);
	assert_null(wse_config_key(cfg, "", 0, &v));
	wse_config_free(&cfg);
}

static void
test_quotes_and_escapes(void **state)
{
	wse_config *cfg;

	(void)state;
	cfg = parse_ok(
	    "a = \"  spaced  value  \"\n"
	    "b = \"say \\\"hi\\\" \\\\ back\"\n"
	    "c = \"\"\n"
	    "d = \"# not a comment\"   \n"
	    "e = bare value with \"quotes\" inside\n"
	    "f = \"=[x]\"\n");
	assert_string_equal(wse_config_get(cfg, "", "a"), "  spaced  value  ");
	assert_string_equal(wse_config_get(cfg, "", "b"),
	    "say \"hi\" \\ back");
	assert_string_equal(wse_config_get(cfg, "", "c"), "");
	assert_string_equal(wse_config_get(cfg, "", "d"), "# not a comment");
	assert_string_equal(wse_config_get(cfg, "", "e"),
	    "bare value with \"quotes\" inside");
	assert_string_equal(wse_config_get(cfg, "", "f"), "=[x]");
	wse_config_free(&cfg);
}

static void
test_comments_and_whitespace(void **state)
{
	wse_config *cfg;

	(void)state;
	cfg = parse_ok(
	    "# leading comment\n"
	    "\n"
	    "   # indented comment\n"
	    "\t\n"
	    "  key1=v1\n"
	    "key2   =   v2   \t\n"
	    "\tkey3\t=\tv3\n"
	    "empty =\n"
	    "empty2 =    \n"
	    "  [sec]  \n"
	    "crlf = yes\r\n"
	    "url = http://x.test/a#frag\n"
	    "last = no newline at end");
	assert_string_equal(wse_config_get(cfg, "", "key1"), "v1");
	assert_string_equal(wse_config_get(cfg, "", "key2"), "v2");
	assert_string_equal(wse_config_get(cfg, "", "key3"), "v3");
	assert_string_equal(wse_config_get(cfg, "", "empty"), "");
	assert_string_equal(wse_config_get(cfg, "", "empty2"), "");
	assert_string_equal(wse_config_get(cfg, "sec", "crlf"), "yes");
	/* '#' only starts a comment at the beginning of a line. */
	assert_string_equal(wse_config_get(cfg, "sec", "url"),
	    "http://x.test/a#frag");
	assert_string_equal(wse_config_get(cfg, "sec", "last"),
	    "no newline at end");
	assert_int_equal(wse_config_line(cfg, "sec", "last"), 13);
	assert_null(wse_config_get(cfg, "", "#"));
	wse_config_free(&cfg);

	/* Empty input and comment-only input are valid. */
	cfg = parse_ok("");
	assert_null(wse_config_section(cfg, 0));
	assert_null(wse_config_key(cfg, "", 0, NULL));
	wse_config_free(&cfg);
	cfg = parse_ok("# nothing\n\n");
	wse_config_free(&cfg);
}

static void
test_errors_with_lines(void **state)
{
	(void)state;
	parse_bad("a = 1\nthis is not a setting\n", "t.conf:2:", "'='");
	parse_bad("a = 1\nb = 2\nc = \"open\n", "t.conf:3:", "unterminated");
	parse_bad("x = \"a\" trailing\n", "t.conf:1:", "after");
	parse_bad("x = \"bad \\n escape\"\n", "t.conf:1:", "escape");
	parse_bad("\n\n[bad section]\n", "t.conf:3:", "section");
	parse_bad("[]\n", "t.conf:1:", "section");
	parse_bad("[unterminated\n", "t.conf:1:", "section");
	parse_bad("[a/b]\n", "t.conf:1:", "section");
	parse_bad("[sec] extra\n", "t.conf:1:", "section");
	parse_bad("keyonly\n", "t.conf:1:", "'='");
	parse_bad("a = 1\n\nkey with space = 1\n", "t.conf:3:", "'='");
	parse_bad("= value\n", "t.conf:1:", "key");
	parse_bad("k$y = 1\n", "t.conf:1:", NULL);
	parse_bad("a = 1\nb = x\x01y\n", "t.conf:2:", "control");
	parse_bad("a = 1\rb = 2\n", "t.conf:1:", "control");
}

static void
test_nul_byte(void **state)
{
	static const char text[] = "a = 1\nb = x\0y\nc = 3\n";

	(void)state;
	parse_bad_len(text, sizeof(text) - 1, "t.conf:2:", "NUL");
}

static void
test_long_line(void **state)
{
	char *text;
	wse_config *cfg;
	size_t vlen;

	(void)state;
	/* "k = " + value: exactly 4096 bytes is fine, 4097 is not. */
	text = malloc(8192);
	assert_non_null(text);
	vlen = 4096 - 4;
	memcpy(text, "a = 1\nk = ", 10);
	memset(text + 10, 'v', vlen);
	memcpy(text + 10 + vlen, "\n", 2);
	cfg = parse_ok(text);
	assert_int_equal(strlen(wse_config_get(cfg, "", "k")), vlen);
	wse_config_free(&cfg);

	memset(text + 10, 'v', vlen + 1);
	memcpy(text + 10 + vlen + 1, "\n", 2);
	parse_bad(text, "t.conf:2:", "4096");
	free(text);
}

/* Write len bytes of text to a new file in dir; returns its path. */
static char *
write_file(const char *dir, const char *name, const char *text, size_t len)
{
	char *path;
	FILE *f;

	assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

static void
test_load_file(void **state)
{
	char *dir, *path;
	wse_config *cfg = NULL;
	const char *text = "# cfg\n[s]\nk = v\n";

	(void)state;
	dir = testutil_tmpdir();
	assert_non_null(dir);
	path = write_file(dir, "ok.conf", text, strlen(text));
	assert_wse_ok(wse_config_load(path, &cfg));
	assert_string_equal(wse_config_get(cfg, "s", "k"), "v");
	wse_config_free(&cfg);
	free(path);

	/* Errors name the path and the line. */
	path = write_file(dir, "bad.conf", "a = 1\n[x y]\n", 12);
	wse_err_clear();
	assert_wse_status(wse_config_load(path, &cfg), WSE_ERR_CONFIG);
	assert_null(cfg);
	assert_non_null(strstr(wse_err_last(), "bad.conf:2:"));
	free(path);

	testutil_rmtree(dir);
	free(dir);
}

static void
test_missing_file(void **state)
{
	char *dir, *path;
	wse_config *cfg = (wse_config *)&cfg;

	(void)state;
	dir = testutil_tmpdir();
	assert_non_null(dir);
	assert_true(asprintf(&path, "%s/does-not-exist.conf", dir) > 0);
	wse_err_clear();
	assert_wse_status(wse_config_load(path, &cfg), WSE_ERR_IO);
	assert_null(cfg);
	assert_non_null(strstr(wse_err_last(), "does-not-exist.conf"));
	free(path);
	testutil_rmtree(dir);
	free(dir);
}

static void
test_file_size_limit(void **state)
{
	const size_t mib = 1024 * 1024;
	char *dir, *path, *text;
	wse_config *cfg = NULL;
	size_t i;

	(void)state;
	/* Exactly 1 MiB of comment lines (64 bytes each) is accepted. */
	text = malloc(mib + 64);
	assert_non_null(text);
	for (i = 0; i < mib + 64; i += 64) {
		memset(text + i, 'x', 63);
		text[i] = '#';
		text[i + 63] = '\n';
	}
	dir = testutil_tmpdir();
	assert_non_null(dir);
	path = write_file(dir, "big.conf", text, mib);
	assert_wse_ok(wse_config_load(path, &cfg));
	wse_config_free(&cfg);
	free(path);

	/* One byte more is refused, for files and for text. */
	path = write_file(dir, "huge.conf", text, mib + 1);
	wse_err_clear();
	assert_wse_status(wse_config_load(path, &cfg), WSE_ERR_CONFIG);
	assert_null(cfg);
	assert_non_null(strstr(wse_err_last(), "huge.conf"));
	free(path);
	parse_bad_len(text, mib + 1, "t.conf", "larger");

	testutil_rmtree(dir);
	free(dir);
	free(text);
}

static void
test_get_int(void **state)
{
	wse_config *cfg;
	long long v;

	(void)state;
	cfg = parse_ok(
	    "port = 8443\n"
	    "neg = -5\n"
	    "zero = 0\n"
	    "big = 99999999999999999999999\n"
	    "junk = 12abc\n"
	    "word = abc\n"
	    "empty =\n"
	    "spaced = \" 12\"\n"
	    "plus = +3\n"
	    "max = 9223372036854775807\n");
	assert_wse_ok(wse_config_get_int(cfg, "", "port", 25, 1, 65535, &v));
	assert_int_equal(v, 8443);
	assert_wse_ok(wse_config_get_int(cfg, "", "absent", 25, 1, 65535, &v));
	assert_int_equal(v, 25);
	assert_wse_ok(wse_config_get_int(cfg, "nosec", "port", 7, 1, 9, &v));
	assert_int_equal(v, 7);
	assert_wse_ok(wse_config_get_int(cfg, "", "neg", 0, -10, 10, &v));
	assert_int_equal(v, -5);
	assert_wse_ok(wse_config_get_int(cfg, "", "zero", 1, 0, 10, &v));
	assert_int_equal(v, 0);
	assert_wse_ok(wse_config_get_int(cfg, "", "max", 0, 0, 0x7fffffffffffffffLL,
	    &v));
	assert_int_equal(v, 0x7fffffffffffffffLL);
	/* Range bounds are inclusive. */
	assert_wse_ok(wse_config_get_int(cfg, "", "port", 0, 8443, 8443, &v));

	v = 42;
	wse_err_clear();
	assert_wse_status(wse_config_get_int(cfg, "", "port", 0, 1, 8442, &v),
	    WSE_ERR_CONFIG);
	assert_non_null(strstr(wse_err_last(), "t.conf:1:"));
	assert_non_null(strstr(wse_err_last(), "port"));
	assert_int_equal(v, 42);	/* untouched on error */
	assert_wse_status(wse_config_get_int(cfg, "", "port", 0, 8444, 9000, &v),
	    WSE_ERR_CONFIG);
	assert_wse_status(wse_config_get_int(cfg, "", "neg", 0, 0, 10, &v),
	    WSE_ERR_CONFIG);
	assert_non_null(strstr(wse_err_last(), "t.conf:2:"));
	assert_wse_status(wse_config_get_int(cfg, "", "big", 0, 0, 10, &v),
	    WSE_ERR_CONFIG);
	assert_wse_status(wse_config_get_int(cfg, "", "junk", 0, 0, 100, &v),
	    WSE_ERR_CONFIG);
	assert_non_null(strstr(wse_err_last(), "t.conf:5:"));
	assert_wse_status(wse_config_get_int(cfg, "", "word", 0, 0, 100, &v),
	    WSE_ERR_CONFIG);
	assert_wse_status(wse_config_get_int(cfg, "", "empty", 0, 0, 100, &v),
	    WSE_ERR_CONFIG);
	assert_wse_status(wse_config_get_int(cfg, "", "spaced", 0, 0, 100, &v),
	    WSE_ERR_CONFIG);
	assert_wse_status(wse_config_get_int(cfg, "", "plus", 0, 0, 100, &v),
	    WSE_ERR_CONFIG);
	wse_config_free(&cfg);
}

static void
test_get_bool(void **state)
{
	static const char *const yes[] = { "yes", "true", "on", "1", "YES",
	    "True" };
	static const char *const no[] = { "no", "false", "off", "0", "NO",
	    "Off" };
	wse_config *cfg;
	char text[64];
	size_t i;
	int b;

	(void)state;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		(void)snprintf(text, sizeof(text), "b = %s\n", yes[i]);
		cfg = parse_ok(text);
		b = 0;
		assert_wse_ok(wse_config_get_bool(cfg, "", "b", 0, &b));
		assert_int_equal(b, 1);
		wse_config_free(&cfg);
		(void)snprintf(text, sizeof(text), "b = %s\n", no[i]);
		cfg = parse_ok(text);
		b = 1;
		assert_wse_ok(wse_config_get_bool(cfg, "", "b", 1, &b));
		assert_int_equal(b, 0);
		wse_config_free(&cfg);
	}
	cfg = parse_ok("x = 1\nb = maybe\nc = yess\nd =\n");
	assert_wse_ok(wse_config_get_bool(cfg, "", "absent", 1, &b));
	assert_int_equal(b, 1);
	assert_wse_ok(wse_config_get_bool(cfg, "", "absent", 0, &b));
	assert_int_equal(b, 0);
	wse_err_clear();
	assert_wse_status(wse_config_get_bool(cfg, "", "b", 0, &b),
	    WSE_ERR_CONFIG);
	assert_non_null(strstr(wse_err_last(), "t.conf:2:"));
	assert_wse_status(wse_config_get_bool(cfg, "", "c", 0, &b),
	    WSE_ERR_CONFIG);
	assert_wse_status(wse_config_get_bool(cfg, "", "d", 0, &b),
	    WSE_ERR_CONFIG);
	wse_config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_repeated_keys),
		cmocka_unit_test(test_quotes_and_escapes),
		cmocka_unit_test(test_comments_and_whitespace),
		cmocka_unit_test(test_errors_with_lines),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_file_size_limit),
		cmocka_unit_test(test_get_int),
		cmocka_unit_test(test_get_bool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
