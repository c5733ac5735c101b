/*
 * replay_main.c - run the envelope fuzz target over its seed corpus as an
 * ordinary test (any compiler).  Usage: fuzz_envelope_replay DIR...
 *
 * Each corpus file must be refused (it is hostile or signed by a key the
 * target does not trust) without a crash or sanitizer report; a fresh
 * valid envelope of each profile must be accepted, proving the target
 * reaches the whole verifier.  Prints "fuzz_envelope: N checks passed".
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "fuzz_envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
write_file(const char *dir, const char *name, const void *data, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "wb")) == NULL)
		return -1;
	if (fwrite(data, 1, len, f) != len) {
		fclose(f);
		return -1;
	}
	return fclose(f);
}

/* Write the seed corpus: fresh valid envelopes (signed by this run's
 * throw-away PKI, so stale and untrusted for any later run) and the
 * hostile shapes of the security notes. */
static int
write_seeds(const char *dir)
{
	static const struct { const char *name, *text; } hostile[] = {
		{ "dtd.xml", "<?xml version=\"1.0\"?><!DOCTYPE s:Envelope "
		    "[<!ELEMENT a ANY>]><s:Envelope xmlns:s=\"http://www.w3.org/"
		    "2003/05/soap-envelope\"><s:Body/></s:Envelope>" },
		{ "xxe.xml", "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e "
		    "SYSTEM \"file:///etc/passwd\">]><s:Envelope xmlns:s=\""
		    "http://www.w3.org/2003/05/soap-envelope\"><s:Body>&e;"
		    "</s:Body></s:Envelope>" },
		{ "lol.xml", "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a "
		    "\"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]>"
		    "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-"
		    "envelope\"><s:Body>&b;</s:Body></s:Envelope>" },
		{ "pi.xml", "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/"
		    "soap-envelope\"><?evil x?><s:Body/></s:Envelope>" },
		{ "soap11.xml", "<s:Envelope xmlns:s=\"http://schemas.xmlsoap."
		    "org/soap/envelope/\"><s:Body/></s:Envelope>" },
	};
	wse_buf *b = wse_buf_new(1 << 20);
	size_t i;
	int k;

	if (b == NULL)
		return 1;
	for (k = 0; k < 2; k++) {
		wse_buf_reset(b);
		if (fuzz_envelope_make_valid(k, b) != WSE_OK ||
		    write_file(dir, k ? "signed-password.xml" :
		    "signed-cert.xml", wse_buf_data(b), wse_buf_len(b)) != 0)
			return 1;
	}
	for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++)
		if (write_file(dir, hostile[i].name, hostile[i].text,
		    strlen(hostile[i].text)) != 0)
			return 1;
	wse_buf_reset(b);
	(void)wse_buf_puts(b, "<s:Envelope xmlns:s=\"http://www.w3.org/2003/"
	    "05/soap-envelope\"><s:Body>");
	for (k = 0; k < 40; k++)
		(void)wse_buf_puts(b, "<a>");
	for (k = 0; k < 40; k++)
		(void)wse_buf_puts(b, "</a>");
	(void)wse_buf_puts(b, "</s:Body></s:Envelope>");
	if (write_file(dir, "deep.xml", wse_buf_data(b), wse_buf_len(b)))
		return 1;
	wse_buf_reset(b);
	(void)wse_buf_puts(b, "<s:Envelope xmlns:s=\"http://www.w3.org/2003/"
	    "05/soap-envelope\"><s:Body><a");
	for (k = 0; k < 200; k++)
		(void)wse_buf_printf(b, " a%d=\"\"", k);
	(void)wse_buf_puts(b, "/></s:Body></s:Envelope>");
	if (write_file(dir, "attrs.xml", wse_buf_data(b), wse_buf_len(b)))
		return 1;
	wse_buf_free(&b);
	return 0;
}

int
main(int argc, char **argv)
{
	int i, checks = 0, failed = 0, profile;
	wse_buf *b;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS-DIR...\n", argv[0]);
		return 2;
	}
	if (fuzz_envelope_init() != 0) {
		fprintf(stderr, "fuzz_envelope: cannot set up the PKI\n");
		return 1;
	}
	if (strcmp(argv[1], "--write-seeds") == 0) {
		int rc = argc == 3 ? write_seeds(argv[2]) : 2;

		fuzz_envelope_fini();
		xmlCleanupParser();
		return rc;
	}
	for (profile = 0; profile < 2; profile++) {
		wse_status st;

		if ((b = wse_buf_new(1 << 20)) == NULL ||
		    fuzz_envelope_make_valid(profile, b) != WSE_OK) {
			fprintf(stderr, "fuzz_envelope: cannot make seed\n");
			return 1;
		}
		st = fuzz_envelope_verify(wse_buf_data(b), wse_buf_len(b),
		    profile);
		if (st != WSE_OK) {
			fprintf(stderr, "fuzz_envelope: valid %s envelope "
			    "refused: %s\n", profile ? "password" : "cert",
			    wse_status_name(st));
			failed++;
		}
		checks++;
		wse_buf_free(&b);
	}
	for (i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		struct dirent *de;

		if (d == NULL) {
			fprintf(stderr, "fuzz_envelope: cannot open %s\n",
			    argv[i]);
			return 1;
		}
		while ((de = readdir(d)) != NULL) {
			char path[4096];

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i],
			    de->d_name);
			if (wse_buf_read_file(path, 16u << 20, &b) != WSE_OK) {
				fprintf(stderr, "fuzz_envelope: cannot read "
				    "%s\n", path);
				failed++;
				continue;
			}
			(void)LLVMFuzzerTestOneInput(wse_buf_data(b),
			    wse_buf_len(b));
			/* Signed with keys this target never trusted. */
			if (fuzz_envelope_verify(wse_buf_data(b),
			    wse_buf_len(b), 0) == WSE_OK ||
			    fuzz_envelope_verify(wse_buf_data(b),
			    wse_buf_len(b), 1) == WSE_OK) {
				fprintf(stderr, "fuzz_envelope: %s was "
				    "accepted\n", path);
				failed++;
			}
			checks++;
			wse_buf_free(&b);
		}
		closedir(d);
	}
	fuzz_envelope_fini();
	xmlCleanupParser();
	if (failed) {
		printf("fuzz_envelope: %d of %d checks failed\n", failed,
		    checks);
		return 1;
	}
	printf("fuzz_envelope: %d checks passed\n", checks);
	return 0;
}
