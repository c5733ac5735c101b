/*
 * formforge - what a dishonest party can do to a routed form, for
 * tests/forms.sh: drop, swap or transplant whole records, append a record
 * that breaks the workflow rules (signed with a genuine key), and mint a
 * token certificate with another domain's CA.  Every forged form is then
 * sent to a real final party, which must refuse it.
 *
 *   formforge drop IN N OUT            remove record N
 *   formforge swap IN N M OUT          exchange records N and M
 *   formforge splice IN N OTHER M OUT  record N of IN := record M of OTHER
 *   formforge append IN OUT KIND KEY CHAIN ROOTS [CRL...] [-- OPT=VALUE...]
 *        KIND decide|delegate; KEY the signer's private key; CHAIN its
 *        certificate then its CA (PEM); ROOTS and CRLs to verify IN first
 *        (so that the record follows the route as it stands); options
 *        for=MAILBOX verdict=approve|reject to=MAILBOX author=TEXT
 *   formforge token CA-CERT CA-KEY MAILBOX OUT-KEY OUT-CHAIN
 *        a one-hour token for MAILBOX signed by that CA, whatever its
 *        domain (the CA refuses nothing here: wse_cert_issue directly)
 *
 * Exit 0 on success, 1 with a message on stderr otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "buf.h"
#include "err.h"
#include "form.h"
#include "pki.h"
#include "wss.h"

static int
die(const char *what)
{
	char msg[1024];

	wse_err_format(msg, sizeof(msg));
	fprintf(stderr, "formforge: %s%s%s\n", what, msg[0] ? ": " : "", msg);
	return 1;
}

static int read_file(const char *path, wse_buf *b);

/* The library's set-up refuses every external load, so read the bytes
 * first and parse them from memory. */
static xmlDocPtr
read_doc(const char *path)
{
	wse_buf *b = wse_buf_new(WSE_FORM_MAX_BYTES);
	xmlDocPtr d = NULL;

	if (b != NULL && read_file(path, b) == 0)
		d = xmlReadMemory((const char *)wse_buf_data(b),
		    (int)wse_buf_len(b), NULL, NULL, XML_PARSE_NONET);
	wse_buf_free(&b);
	if (d == NULL)
		fprintf(stderr, "formforge: %s: not XML\n", path);
	return d;
}

/* The n-th (1-based) f:Record child of the root. */
static xmlNodePtr
record(xmlDocPtr d, long n)
{
	xmlNodePtr c;
	long i = 0;

	for (c = xmlDocGetRootElement(d)->children; c != NULL; c = c->next)
		if (c->type == XML_ELEMENT_NODE &&
		    strcmp((const char *)c->name, "Record") == 0 && ++i == n)
			return c;
	fprintf(stderr, "formforge: no record %ld\n", n);
	return NULL;
}

static int write_buf(const char *path, const wse_buf *b);

static int
save(xmlDocPtr d, const char *path)
{
	xmlChar *mem = NULL;
	int n = 0, rc = 1;
	wse_buf *b = wse_buf_new(WSE_FORM_MAX_BYTES * 2);

	xmlDocDumpMemoryEnc(d, &mem, &n, "UTF-8");
	if (b != NULL && mem != NULL && wse_buf_put(b, mem, (size_t)n) ==
	    WSE_OK)
		rc = write_buf(path, b);
	else
		fprintf(stderr, "formforge: cannot write %s\n", path);
	xmlFree(mem);
	wse_buf_free(&b);
	xmlFreeDoc(d);
	return rc;
}

static int
cmd_drop(char **av)
{
	xmlDocPtr d = read_doc(av[0]);
	xmlNodePtr r;

	if (d == NULL || (r = record(d, atol(av[1]))) == NULL)
		return 1;
	xmlUnlinkNode(r);
	xmlFreeNode(r);
	return save(d, av[2]);
}

static int
cmd_swap(char **av)
{
	xmlDocPtr d = read_doc(av[0]);
	xmlNodePtr a, b, ca, cb;

	if (d == NULL || (a = record(d, atol(av[1]))) == NULL ||
	    (b = record(d, atol(av[2]))) == NULL || a == b)
		return 1;
	ca = xmlDocCopyNode(a, d, 1);
	cb = xmlDocCopyNode(b, d, 1);
	xmlReplaceNode(a, cb);
	xmlReplaceNode(b, ca);
	xmlFreeNode(a);
	xmlFreeNode(b);
	return save(d, av[3]);
}

static int
cmd_splice(char **av)
{
	xmlDocPtr d = read_doc(av[0]), o = read_doc(av[2]);
	xmlNodePtr a, b;

	if (d == NULL || o == NULL || (a = record(d, atol(av[1]))) == NULL ||
	    (b = record(o, atol(av[3]))) == NULL)
		return 1;
	xmlReplaceNode(a, xmlDocCopyNode(b, d, 1));
	xmlFreeNode(a);
	xmlFreeDoc(o);
	return save(d, av[4]);
}

static int
read_file(const char *path, wse_buf *b)
{
	FILE *f = fopen(path, "rb");
	char chunk[8192];
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "formforge: cannot read %s\n", path);
		return 1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (wse_buf_put(b, chunk, n) != WSE_OK) {
			fclose(f);
			return die(path);
		}
	fclose(f);
	return 0;
}

static int
write_buf(const char *path, const wse_buf *b)
{
	FILE *f = fopen(path, "wb");
	int rc;

	if (f == NULL) {
		fprintf(stderr, "formforge: cannot write %s\n", path);
		return 1;
	}
	rc = fwrite(wse_buf_data(b), 1, wse_buf_len(b), f) != wse_buf_len(b);
	rc |= fclose(f) != 0;
	if (rc)
		fprintf(stderr, "formforge: cannot write %s\n", path);
	return rc;
}

static int
cmd_append(int ac, char **av)
{
	const char *in = av[0], *out = av[1], *kind = av[2];
	wse_buf *raw = wse_buf_new(WSE_FORM_MAX_BYTES);
	wse_buf *ser = wse_buf_new(WSE_FORM_MAX_BYTES);
	wse_form *f = NULL;
	wse_trust *trust = NULL;
	wse_key *key = NULL;
	wse_cert **chain = NULL;
	size_t nchain = 0;
	wse_form_record_spec spec;
	wse_form_signer s;
	wse_form_report rep;
	int i, rc = 1;
	int64_t now = (int64_t)time(NULL);

	memset(&spec, 0, sizeof(spec));
	memset(&rep, 0, sizeof(rep));
	if (strcmp(kind, "decide") == 0)
		spec.kind = WSE_REC_DECIDE;
	else if (strcmp(kind, "delegate") == 0)
		spec.kind = WSE_REC_DELEGATE;
	else {
		fprintf(stderr, "formforge: kind: decide or delegate\n");
		goto out;
	}
	if (raw == NULL || ser == NULL || read_file(in, raw) != 0)
		goto out;
	if (wse_key_load(av[3], &key) != WSE_OK ||
	    wse_cert_load_list(av[4], &chain, &nchain) != WSE_OK ||
	    nchain < 2 || wse_trust_new(&trust) != WSE_OK ||
	    wse_trust_load_roots(trust, av[5]) != WSE_OK) {
		rc = die("key, chain or roots");
		goto out;
	}
	for (i = 6; i < ac && strcmp(av[i], "--") != 0; i++)
		if (wse_trust_load_crls(trust, av[i]) != WSE_OK) {
			rc = die(av[i]);
			goto out;
		}
	for (i++; i < ac; i++) {
		char *v = strchr(av[i], '=');

		if (v == NULL)
			goto usage;
		*v++ = '\0';
		if (strcmp(av[i], "for") == 0)
			spec.on_behalf = v;
		else if (strcmp(av[i], "to") == 0)
			spec.delegate = v;
		else if (strcmp(av[i], "author") == 0)
			spec.author = v;
		else if (strcmp(av[i], "verdict") == 0)
			spec.verdict = strcmp(v, "reject") == 0 ?
			    WSE_VERDICT_REJECT : WSE_VERDICT_APPROVE;
		else
			goto usage;
	}
	if (wse_form_parse(wse_buf_data(raw), wse_buf_len(raw), NULL, &f) !=
	    WSE_OK) {
		rc = die(in);
		goto out;
	}
	/* The route as it stands, so that unset fields follow it. */
	if (wse_form_verify(f, trust, now, NULL, &rep) != WSE_OK) {
		fprintf(stderr, "formforge: %s does not verify: %s\n", in,
		    rep.reason);
		goto out;
	}
	s.key = key;
	s.cert = chain[0];
	s.ca = chain[1];
	if (wse_form_append_unchecked(f, &s, &spec, now) != WSE_OK ||
	    wse_form_serialize(f, ser) != WSE_OK) {
		rc = die("append");
		goto out;
	}
	rc = write_buf(out, ser);
	goto out;
usage:
	fprintf(stderr, "formforge: option %s: for=, to=, author=, "
	    "verdict=\n", av[i]);
out:
	wse_form_report_clear(&rep);
	wse_form_free(&f);
	wse_trust_free(&trust);
	wse_key_free(&key);
	wse_cert_list_free(&chain, nchain);
	wse_buf_free(&raw);
	wse_buf_free(&ser);
	return rc;
}

static int
cmd_token(char **av)
{
	wse_cert *ca = NULL, *tok = NULL;
	wse_key *cakey = NULL, *key = NULL;
	wse_cert_profile p;
	wse_buf *pem = wse_buf_new(1 << 16);
	int rc = 1;
	int64_t now = (int64_t)time(NULL);

	if (pem == NULL || wse_cert_load(av[0], &ca) != WSE_OK ||
	    wse_key_load(av[1], &cakey) != WSE_OK ||
	    wse_key_generate(&key) != WSE_OK) {
		rc = die("CA or key");
		goto out;
	}
	memset(&p, 0, sizeof(p));
	p.kind = WSE_CERT_TOKEN;
	p.name = av[2];
	p.not_before = now - 60;
	p.not_after = now + 3600;
	if (wse_cert_issue(&p, key, ca, cakey, &tok) != WSE_OK ||
	    wse_cert_to_pem(tok, pem) != WSE_OK ||
	    wse_cert_to_pem(ca, pem) != WSE_OK) {
		rc = die("issue");
		goto out;
	}
	if (wse_key_save(key, av[3]) != WSE_OK) {
		rc = die(av[3]);
		goto out;
	}
	rc = write_buf(av[4], pem);
out:
	wse_cert_free(&ca);
	wse_cert_free(&tok);
	wse_key_free(&cakey);
	wse_key_free(&key);
	wse_buf_free(&pem);
	return rc;
}

int
main(int argc, char **argv)
{
	int rc;

	if (wse_wss_init() != WSE_OK)
		return die("init");
	if (argc == 5 && strcmp(argv[1], "drop") == 0)
		rc = cmd_drop(argv + 2);
	else if (argc == 6 && strcmp(argv[1], "swap") == 0)
		rc = cmd_swap(argv + 2);
	else if (argc == 7 && strcmp(argv[1], "splice") == 0)
		rc = cmd_splice(argv + 2);
	else if (argc >= 8 && strcmp(argv[1], "append") == 0)
		rc = cmd_append(argc - 2, argv + 2);
	else if (argc == 7 && strcmp(argv[1], "token") == 0)
		rc = cmd_token(argv + 2);
	else {
		fprintf(stderr, "usage: formforge drop|swap|splice|append|"
		    "token ...\n");
		rc = 1;
	}
	return rc;
}
