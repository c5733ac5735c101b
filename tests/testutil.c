/*
 * testutil.c - helpers shared by the unit tests.
 */
#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

char *
testutil_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *path;

	if (base == NULL || *base == '\0')
		base = "/tmp";
	if (asprintf(&path, "%s/wse-test-XXXXXX", base) == -1)
		return NULL;
	if (mkdtemp(path) == NULL) {
		free(path);
		return NULL;
	}
	return path;
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(path);
}

void
testutil_rmtree(const char *path)
{
	if (path != NULL)
		(void)nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

double
testutil_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void
testutil_sleep_ms(double ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1000) * 1e6);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

void
testutil_stderr_begin(testutil_stderr *c)
{
	FILE *tmp = tmpfile();

	assert_non_null(tmp);
	fflush(stderr);
	c->tmp = tmp;
	c->saved = dup(2);
	assert_true(c->saved >= 0);
	assert_true(dup2(fileno(tmp), 2) == 2);
}

size_t
testutil_stderr_end(testutil_stderr *c, char *out, size_t size)
{
	FILE *tmp = c->tmp;
	struct stat st;
	size_t n;

	fflush(stderr);
	assert_true(dup2(c->saved, 2) == 2);
	close(c->saved);
	assert_int_equal(fstat(fileno(tmp), &st), 0);
	rewind(tmp);
	n = fread(out, 1, size - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
	c->tmp = NULL;
	c->saved = -1;
	return (size_t)st.st_size;
}
