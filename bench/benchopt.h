/*
 * benchopt.h - command-line numbers for the benchmark load programs.
 */
#ifndef BENCHOPT_H
#define BENCHOPT_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* A whole number in [lo, hi] from the command line, or exit(2) with a
 * message naming prog. */
static inline long
bench_opt_num(const char *prog, const char *s, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "%s: \"%s\" is not a number from %ld to %ld\n",
		    prog, s, lo, hi);
		exit(2);
	}
	return v;
}

#endif
