/*
 * replay_message.c - run the message fuzz target (or, built with
 * -DFUZZ_BATCH, the batch one) over its seed corpus as an ordinary test
 * (any compiler).  Usage: fuzz_message_replay DIR...
 *
 * A file whose name starts with "refused-" must be refused, every other
 * one accepted (and its round trip checked by the target), so the test
 * proves the target reaches both sides of the parser.  Prints
 * FUZZ_NAME ": N checks passed" or names the file that did not.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#ifdef FUZZ_BATCH
#include "fuzz_batch.h"
#define FUZZ_ONE fuzz_batch_one
#define FUZZ_NAME "fuzz_batch"
#else
#include "fuzz_message.h"
#define FUZZ_ONE fuzz_message_one
#define FUZZ_NAME "fuzz_message"
#endif

#define FILE_MAX (1 << 20)

int
main(int argc, char **argv)
{
	static uint8_t data[FILE_MAX];
	char path[4096];
	struct dirent *e;
	size_t len, checks = 0;
	int i, want, got, bad = 0;
	DIR *d;
	FILE *f;

	if (argc < 2) {
		fprintf(stderr, "usage: " FUZZ_NAME "_replay DIR...\n");
		return 2;
	}
	for (i = 1; i < argc; i++) {
		if ((d = opendir(argv[i])) == NULL) {
			fprintf(stderr, FUZZ_NAME ": cannot open %s\n",
			    argv[i]);
			return 2;
		}
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i],
			    e->d_name);
			if ((f = fopen(path, "rb")) == NULL) {
				fprintf(stderr, FUZZ_NAME ": cannot open "
				    "%s\n", path);
				bad++;
				continue;
			}
			len = fread(data, 1, sizeof(data), f);
			fclose(f);
			want = strncmp(e->d_name, "refused-", 8) != 0;
			got = FUZZ_ONE(data, len);
			if (got != want) {
				fprintf(stderr, FUZZ_NAME ": %s: %s, wanted "
				    "%s\n", path, got ? "accepted" : "refused",
				    want ? "accepted" : "refused");
				bad++;
			} else
				checks++;
		}
		closedir(d);
	}
	xmlCleanupParser();
	if (bad > 0 || checks == 0) {
		fprintf(stderr, FUZZ_NAME ": %d failed, %zu passed\n", bad,
		    checks);
		return 1;
	}
	printf(FUZZ_NAME ": %zu checks passed\n", checks);
	return 0;
}
