/*
 * testutil.h - helpers shared by the unit tests.
 */
#ifndef WSE_TESTUTIL_H
#define WSE_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"

/* Fail the current test, printing the library's error stack, unless
 * expr evaluates to WSE_OK. */
#define assert_wse_ok(expr) do {					\
	wse_status st__ = (expr);					\
	if (st__ != WSE_OK) {						\
		char eb__[2048];					\
		fail_msg("%s -> %s: %s", #expr, wse_status_name(st__),	\
		    wse_err_format(eb__, sizeof(eb__)));		\
	}								\
} while (0)

/* Assert that expr yields exactly the status want. */
#define assert_wse_status(expr, want) do {				\
	wse_status st__ = (expr);					\
	if (st__ != (want)) {						\
		char eb__[2048];					\
		fail_msg("%s -> %s, expected %s: %s", #expr,		\
		    wse_status_name(st__), wse_status_name(want),	\
		    wse_err_format(eb__, sizeof(eb__)));		\
	}								\
} while (0)

/* A fresh private temporary directory (mkdtemp under $TMPDIR or /tmp);
 * returns a malloc'd path.  testutil_rmtree removes it and its content. */
char *testutil_tmpdir(void);
void testutil_rmtree(const char *path);

/* Monotonic milliseconds, for "rejected in milliseconds" checks. */
double testutil_now_ms(void);
/* Sleep ms milliseconds (nothing when ms <= 0). */
void testutil_sleep_ms(double ms);

/* What this process writes to stderr between testutil_stderr_begin and
 * testutil_stderr_end (an in-process server's log, for instance): end
 * puts it back, copies at most size - 1 bytes of it to out and returns
 * how many bytes were written in all. */
typedef struct testutil_stderr {
	void *tmp;			/* FILE * */
	int saved;
} testutil_stderr;
void testutil_stderr_begin(testutil_stderr *c);
size_t testutil_stderr_end(testutil_stderr *c, char *out, size_t size);

#endif
