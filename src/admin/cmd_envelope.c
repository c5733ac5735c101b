/*
 * cmd_envelope.c - wsemail-admin envelope sign | verify: sign a SOAP
 * envelope with a service (or token) key, and verify one exactly as a
 * server does, printing the verdict.  For operators checking keys and
 * trust set-up, and for the demonstration.
 *
 * SECURITY: verify reads an untrusted file through the same hardened
 * parser and verifier as the server; it trusts only the root and CRLs of
 * the PKI directory (or those named on the command line).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>

#include "admin.h"
#include "buf.h"
#include "wselimits.h"
#include "pki.h"
#include "replay.h"
#include "soap.h"
#include "wss.h"
#include "xml.h"

#define ENVELOPE_MAX (16u << 20)

static wse_status
read_input(const char *path, wse_buf **b_r)
{
	if (strcmp(path, "-") == 0)
		return wse_buf_read_file("/dev/stdin", ENVELOPE_MAX, b_r);
	return wse_buf_read_file(path, ENVELOPE_MAX, b_r);
}

static int
envelope_sign(struct admin_ctx *ctx, int argc, char **argv)
{
	const char *key_path = NULL, *chain_path = NULL, *domain = NULL;
	const char *to = NULL, *action = "urn:wsemail:2026/Deliver";
	const char *pos[1];
	int npos = 0, ttl = 300, rc, offset = 0;
	char kbuf[1024], cbuf[1024];
	struct admin_opt opts[] = {
		{ "--domain", ADMIN_OPT_STRING, NULL, &domain, NULL, 0, 0, NULL },
		{ "--key", ADMIN_OPT_STRING, NULL, &key_path, NULL, 0, 0, NULL },
		{ "--chain", ADMIN_OPT_STRING, NULL, &chain_path, NULL, 0, 0,
		    NULL },
		{ "--to", ADMIN_OPT_STRING, NULL, &to, NULL, 0, 0, NULL },
		{ "--action", ADMIN_OPT_STRING, NULL, &action, NULL, 0, 0, NULL },
		{ "--ttl", ADMIN_OPT_INT, NULL, NULL, &ttl, 1, 86400, NULL },
		{ "--time-offset", ADMIN_OPT_INT, NULL, NULL, &offset,
		    -10 * 86400, 10 * 86400, NULL },
	};
	wse_key *key = NULL;
	wse_cert **chain = NULL;
	size_t nchain = 0;
	wse_buf *body = NULL, *out = NULL;
	wse_envelope *env = NULL;
	wse_signer *s = NULL;
	wse_limits lim;

	if ((rc = admin_parse(ctx, argc, argv, opts, sizeof(opts) /
	    sizeof(opts[0]), pos, &npos, 1, 1)) != 0)
		return rc == ADMIN_HELP_SHOWN ? ADMIN_EXIT_OK : rc;
	if (domain != NULL) {
		snprintf(kbuf, sizeof(kbuf), "%s/%s/service-key.pem",
		    ctx->pki_dir, domain);
		snprintf(cbuf, sizeof(cbuf), "%s/%s/chain.pem", ctx->pki_dir,
		    domain);
		if (key_path == NULL)
			key_path = kbuf;
		if (chain_path == NULL)
			chain_path = cbuf;
	}
	if (key_path == NULL || chain_path == NULL)
		return admin_usage(ctx, "give --domain, or --key and --chain");
	if (to == NULL)
		to = "https://wsemail.invalid/";
	wse_limits_default(&lim);
	rc = ADMIN_EXIT_FAIL;
	if (wse_key_load(key_path, &key) != WSE_OK ||
	    wse_cert_load_list(chain_path, &chain, &nchain) != WSE_OK ||
	    read_input(pos[0], &body) != WSE_OK ||
	    wse_env_new(to, action, &env) != WSE_OK ||
	    wse_env_add_body_xml(env, wse_buf_str(body), wse_buf_len(body),
	    &lim) != WSE_OK ||
	    wse_signer_new_cert(key, chain, nchain, &s) != WSE_OK ||
	    wse_wss_sign(env, s, ctx->now + offset, ttl) != WSE_OK ||
	    (out = wse_buf_new(ENVELOPE_MAX * 2)) == NULL ||
	    wse_env_serialize(env, out) != WSE_OK) {
		rc = admin_fail("cannot sign the envelope");
		goto out;
	}
	if (fwrite(wse_buf_data(out), 1, wse_buf_len(out), stdout) !=
	    wse_buf_len(out) || fflush(stdout) != 0) {
		rc = admin_fail("cannot write the envelope");
		goto out;
	}
	rc = ADMIN_EXIT_OK;
out:
	wse_signer_free(&s);
	wse_env_free(&env);
	wse_buf_free(&body);
	wse_buf_free(&out);
	wse_cert_list_free(&chain, nchain);
	wse_key_free(&key);
	return rc;
}

/* Add DIR/root/crl.pem and every DIR/<domain>/crl.pem. */
static wse_status
load_pki_crls(wse_trust *trust, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[4096];
	wse_status st = WSE_OK;
	FILE *f;

	if (d == NULL)
		return wse_err(WSE_ERR_IO, "cannot open PKI directory %s", dir);
	while (st == WSE_OK && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/crl.pem", dir, de->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		fclose(f);
		st = wse_trust_load_crls(trust, path);
	}
	closedir(d);
	return st;
}

static int
envelope_verify(struct admin_ctx *ctx, int argc, char **argv)
{
	const char *domain = NULL, *roots = NULL, *to = NULL, *pos[1];
	struct admin_list crls = { 0 };
	int npos = 0, rc, token = 0, i;
	struct admin_opt opts[] = {
		{ "--domain", ADMIN_OPT_STRING, NULL, &domain, NULL, 0, 0, NULL },
		{ "--roots", ADMIN_OPT_STRING, NULL, &roots, NULL, 0, 0, NULL },
		{ "--crl", ADMIN_OPT_LIST, NULL, NULL, NULL, 0, 0, &crls },
		{ "--to", ADMIN_OPT_STRING, NULL, &to, NULL, 0, 0, NULL },
		{ "--token", ADMIN_OPT_FLAG, &token, NULL, NULL, 0, 0, NULL },
	};
	char rbuf[1024], subject[512], errs[2048];
	wse_trust *trust = NULL;
	wse_replay *replay = NULL;
	wse_buf *in = NULL;
	wse_envelope *env = NULL;
	wse_verified v;
	wse_verify_opts o;
	wse_limits lim;
	wse_status st;

	memset(&v, 0, sizeof(v));
	if ((rc = admin_parse(ctx, argc, argv, opts, sizeof(opts) /
	    sizeof(opts[0]), pos, &npos, 1, 1)) != 0) {
		free(crls.v);
		return rc == ADMIN_HELP_SHOWN ? ADMIN_EXIT_OK : rc;
	}
	if (domain == NULL) {
		free(crls.v);
		return admin_usage(ctx, "--domain (the claimed sender's "
		    "domain) is required");
	}
	if (roots == NULL) {
		snprintf(rbuf, sizeof(rbuf), "%s/root/cert.pem", ctx->pki_dir);
		roots = rbuf;
	}
	wse_limits_default(&lim);
	rc = ADMIN_EXIT_FAIL;
	if (wse_trust_new(&trust) != WSE_OK ||
	    wse_trust_load_roots(trust, roots) != WSE_OK ||
	    wse_replay_memory_new(16, &replay) != WSE_OK) {
		rc = admin_fail("cannot load the trust anchors");
		goto out;
	}
	if (crls.n == 0 && load_pki_crls(trust, ctx->pki_dir) != WSE_OK) {
		rc = admin_fail("cannot load the CRLs");
		goto out;
	}
	for (i = 0; i < (int)crls.n; i++)
		if (wse_trust_load_crls(trust, crls.v[i]) != WSE_OK) {
			rc = admin_fail("cannot load a CRL");
			goto out;
		}
	if (read_input(pos[0], &in) != WSE_OK) {
		rc = admin_fail("cannot read the envelope");
		goto out;
	}
	memset(&o, 0, sizeof(o));
	o.profile = WSE_PROFILE_CERT;
	o.limits = &lim;
	o.replay = replay;
	o.now = ctx->now;
	o.trust = trust;
	o.purpose = token ? WSE_PURPOSE_TOKEN : WSE_PURPOSE_SERVICE;
	o.expected_domain = domain;
	o.expected_to = to;
	wse_err_clear();
	st = wse_env_parse(wse_buf_data(in), wse_buf_len(in), &lim, &env);
	if (st == WSE_OK)
		st = wse_wss_verify(env, &o, &v);
	if (st != WSE_OK) {
		printf("REFUSED  fault wse:%s (%s)\n         reason: %s\n",
		    wse_fault_subcode(st), wse_status_name(st),
		    wse_err_format(errs, sizeof(errs)));
		wse_err_clear();
		goto out;
	}
	if (wse_cert_subject(v.signer, subject, sizeof(subject)) != WSE_OK)
		snprintf(subject, sizeof(subject), "?");
	{
		char created[32];
		xmlBufferPtr xb = xmlBufferCreate();
		xmlNodePtr payload = wse_xml_first_elem(v.body);

		admin_time(v.created, created, sizeof(created));
		printf("VALID    signed by %s (%s %s)\n", subject,
		    v.signer_mailbox ? "mailbox" : "domain",
		    v.signer_mailbox ? v.signer_mailbox : v.signer_domain);
		printf("         to %s, action %s\n", v.to_s, v.action_s);
		printf("         message %s, created %s\n", v.message_id_s,
		    created);
		if (xb != NULL && payload != NULL &&
		    xmlNodeDump(xb, v.body->doc, payload, 0, 0) >= 0)
			printf("         body: %s\n", xmlBufferContent(xb));
		xmlBufferFree(xb);
	}
	rc = ADMIN_EXIT_OK;
out:
	wse_verified_clear(&v);
	wse_env_free(&env);
	wse_buf_free(&in);
	wse_replay_free(&replay);
	wse_trust_free(&trust);
	free(crls.v);
	return rc;
}

const struct admin_cmd admin_envelope_cmds[] = {
	{ "envelope", "sign", envelope_sign,
	    "(--domain D | --key K --chain C) [--to URL] [--action A] "
	    "[--ttl S] [--time-offset S] BODY.xml|-",
	    "sign a SOAP envelope around BODY with a service key" },
	{ "envelope", "verify", envelope_verify,
	    "--domain D [--roots R] [--crl C]... [--to URL] [--token] "
	    "FILE|-",
	    "verify an envelope as a server would and print the verdict" },
	{ NULL, NULL, NULL, NULL, NULL },
};
