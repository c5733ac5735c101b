/*
 * test_err_buf.c - the error stack and bounded buffers.
 */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"

static void
test_err_stack(void **state)
{
	char out[512], want[32];
	size_t mark;
	int i;

	(void)state;
	wse_err_clear();
	assert_int_equal(wse_err_count(), 0);
	assert_string_equal(wse_err_last(), "");
	assert_int_equal(wse_err_last_status(), WSE_OK);
	assert_int_equal(wse_err(WSE_ERR_IO, "inner %d", 1), WSE_ERR_IO);
	assert_int_equal(wse_err(WSE_ERR_INVALID, "outer"), WSE_ERR_INVALID);
	assert_int_equal(wse_err_count(), 2);
	assert_string_equal(wse_err_last(), "outer");
	assert_int_equal(wse_err_last_status(), WSE_ERR_INVALID);
	assert_string_equal(wse_err_format(out, sizeof(out)),
	    "outer: inner 1");
	/* Back to a mark taken before: newer messages go, older stay. */
	mark = wse_err_mark();
	wse_err(WSE_ERR_NOT_FOUND, "probe");
	wse_err_truncate(mark);
	assert_int_equal(wse_err_count(), 2);
	assert_string_equal(wse_err_last(), "outer");
	wse_err_truncate(mark);
	assert_int_equal(wse_err_count(), 2);
	/* A probe that overflows the stack: none of its messages stay. */
	for (i = 0; i < WSE_ERR_DEPTH - 3; i++)
		wse_err(WSE_ERR_IO, "old%d", i);
	mark = wse_err_mark();
	for (i = 0; i < 3; i++)
		wse_err(WSE_ERR_NOT_FOUND, "probe%d", i);
	wse_err_truncate(mark);
	assert_int_equal(wse_err_count(), WSE_ERR_DEPTH - 3);	/* 2 dropped */
	(void)snprintf(want, sizeof(want), "old%d", WSE_ERR_DEPTH - 4);
	assert_string_equal(wse_err_last(), want);
	mark = wse_err_mark();
	for (i = 0; i < 2 * WSE_ERR_DEPTH; i++)
		wse_err(WSE_ERR_NOT_FOUND, "probe%d", i);
	wse_err_truncate(mark);
	assert_int_equal(wse_err_count(), 0);
	/* Overflow drops the oldest, never more than WSE_ERR_DEPTH kept. */
	for (i = 0; i < 20; i++)
		wse_err(WSE_ERR_IO, "m%d", i);
	assert_int_equal(wse_err_count(), WSE_ERR_DEPTH);
	assert_string_equal(wse_err_last(), "m19");
	/* Truncation of long messages and tiny output buffers is safe. */
	wse_err_clear();
	wse_err(WSE_ERR_IO, "%0600d", 7);
	assert_int_equal(strlen(wse_err_last()), WSE_ERR_MSGLEN - 1);
	wse_err_format(out, 4);
	assert_true(strlen(out) <= 3);
	wse_err_clear();
	assert_int_equal(wse_err_count(), 0);
}

static void
test_status_names(void **state)
{
	int s;

	(void)state;
	for (s = 0; s < WSE_ERR__COUNT; s++)
		assert_string_not_equal(wse_status_name((wse_status)s),
		    "unknown");
	assert_string_equal(wse_status_name(WSE_ERR__COUNT), "unknown");
	assert_string_equal(wse_status_name(WSE_ERR_REPLAY), "replay");
}

static void
test_buf_bounds(void **state)
{
	wse_buf *b = wse_buf_new(10);

	(void)state;
	assert_non_null(b);
	assert_wse_ok(wse_buf_puts(b, "hello"));
	assert_wse_ok(wse_buf_put(b, "world", 5));
	assert_int_equal(wse_buf_len(b), 10);
	assert_string_equal(wse_buf_str(b), "helloworld");
	/* One byte more is refused and changes nothing. */
	assert_wse_status(wse_buf_put(b, "!", 1), WSE_ERR_TOO_LARGE);
	assert_int_equal(wse_buf_len(b), 10);
	assert_string_equal(wse_buf_str(b), "helloworld");
	assert_wse_status(wse_buf_printf(b, "%d", 1), WSE_ERR_TOO_LARGE);
	assert_wse_ok(wse_buf_put(b, "", 0));
	wse_buf_reset(b);
	assert_int_equal(wse_buf_len(b), 0);
	assert_wse_ok(wse_buf_printf(b, "%s-%d", "ab", 42));
	assert_string_equal(wse_buf_str(b), "ab-42");
	assert_int_equal(wse_buf_max(b), 10);
	wse_buf_free(&b);
	assert_null(b);
	wse_buf_free(&b);
	wse_buf_free(NULL);
	assert_null(wse_buf_new(0));
	assert_null(wse_buf_new(SIZE_MAX));
}

static void
test_buf_growth(void **state)
{
	wse_buf *b = wse_buf_new(1 << 20);
	char chunk[1000];
	char *s;
	size_t len, i;

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	for (i = 0; i < 1048; i++)
		assert_wse_ok(wse_buf_put(b, chunk, sizeof(chunk)));
	assert_int_equal(wse_buf_len(b), 1048000);
	assert_wse_status(wse_buf_put(b, chunk, sizeof(chunk)),
	    WSE_ERR_TOO_LARGE);
	s = wse_buf_steal(b, &len);
	assert_non_null(s);
	assert_int_equal(len, 1048000);
	assert_int_equal(s[len], '\0');
	assert_int_equal(wse_buf_len(b), 0);
	free(s);
	wse_buf_free(&b);
}

/* wse_buf_reserve is a size hint: past the maximum it reserves what is
 * left, and the appends still check the maximum; wse_buf_truncate cuts
 * back and never lengthens. */
static void
test_buf_reserve_truncate(void **state)
{
	wse_buf *b = wse_buf_new(10);

	(void)state;
	assert_non_null(b);
	assert_wse_ok(wse_buf_reserve(b, 8192));
	assert_int_equal(wse_buf_len(b), 0);
	assert_wse_ok(wse_buf_puts(b, "helloworld"));
	assert_wse_ok(wse_buf_reserve(b, 1));
	assert_wse_status(wse_buf_put(b, "!", 1), WSE_ERR_TOO_LARGE);
	assert_string_equal(wse_buf_str(b), "helloworld");
	wse_buf_truncate(b, 20);
	assert_string_equal(wse_buf_str(b), "helloworld");
	wse_buf_truncate(b, 5);
	assert_int_equal(wse_buf_len(b), 5);
	assert_string_equal(wse_buf_str(b), "hello");
	assert_wse_ok(wse_buf_puts(b, "there"));
	assert_string_equal(wse_buf_str(b), "hellothere");
	wse_buf_free(&b);
}

static void
test_buf_xml_escape(void **state)
{
	wse_buf *b = wse_buf_new(100);
	const char *in = "a<b>&\"c'\r\n\td";

	(void)state;
	assert_wse_ok(wse_buf_put_xml_escaped(b, in, strlen(in)));
	assert_string_equal(wse_buf_str(b),
	    "a&lt;b&gt;&amp;&quot;c&apos;&#13;\n\td");
	wse_buf_reset(b);
	assert_wse_status(wse_buf_put_xml_escaped(b, "a\x01", 2),
	    WSE_ERR_INVALID);
	/* Escaping respects the bound too. */
	wse_buf_free(&b);
	b = wse_buf_new(8);
	assert_wse_status(wse_buf_put_xml_escaped(b, "<<<", 3),
	    WSE_ERR_TOO_LARGE);
	wse_buf_free(&b);
}

static void
test_buf_read_file(void **state)
{
	char *dir = testutil_tmpdir(), path[512];
	wse_buf *b = NULL;
	int fd;

	(void)state;
	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789", 10), 10);
	close(fd);
	assert_wse_ok(wse_buf_read_file(path, 10, &b));
	assert_string_equal(wse_buf_str(b), "0123456789");
	wse_buf_free(&b);
	assert_wse_status(wse_buf_read_file(path, 9, &b), WSE_ERR_TOO_LARGE);
	assert_null(b);
	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_wse_status(wse_buf_read_file(path, 9, &b), WSE_ERR_IO);
	assert_non_null(strstr(wse_err_last(), "missing"));
	testutil_rmtree(dir);
	free(dir);
}

static void
test_memzero(void **state)
{
	unsigned char x[16];

	(void)state;
	memset(x, 0xaa, sizeof(x));
	wse_memzero(x, sizeof(x));
	for (size_t i = 0; i < sizeof(x); i++)
		assert_int_equal(x[i], 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_stack),
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_buf_bounds),
		cmocka_unit_test(test_buf_growth),
		cmocka_unit_test(test_buf_reserve_truncate),
		cmocka_unit_test(test_buf_xml_escape),
		cmocka_unit_test(test_buf_read_file),
		cmocka_unit_test(test_memzero),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
