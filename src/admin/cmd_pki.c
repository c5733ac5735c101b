/*
 * cmd_pki.c - the PKI commands of wsemail-admin: ca init, domain issue,
 * service issue, revoke, crl, cert show.  The work is done by the
 * wse_ca_* functions of lib/pki.h; this file parses arguments and
 * reports.
 */
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "buf.h"
#include "err.h"
#include "pki.h"

#define DAYS_MAX	36500
#define ROOT_DAYS	3650
#define DOMAIN_DAYS	365
#define SERVICE_DAYS	90
#define CRL_DAYS	30
#define HOSTS_MAX	32

/* DIR/SUB/FILE into buf; 0 or -1 (message on the error stack). */
static int
pki_path(const struct admin_ctx *ctx, const char *sub, const char *file,
    char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s/%s", ctx->pki_dir, sub, file);

	if (n < 0 || (size_t)n >= size) {
		wse_err(WSE_ERR_INVALID, "path too long: %s/%s/%s",
		    ctx->pki_dir, sub, file);
		return -1;
	}
	return 0;
}

/* The certificate file of CA "root" or DOMAIN. */
static int
ca_cert_path(const struct admin_ctx *ctx, const char *ca, char *buf,
    size_t size)
{
	return pki_path(ctx, ca, strcmp(ca, "root") == 0 ? "cert.pem" :
	    "ca.pem", buf, size);
}

static void
describe(const wse_cert *c, int64_t now)
{
	char subj[512], iss[512], serial[80], t1[40], t2[40];
	wse_buf *names = wse_buf_new(8192);
	int64_t nb = wse_cert_not_before(c), na = wse_cert_not_after(c);
	const char *state = "";

	if (wse_cert_subject(c, subj, sizeof(subj)) != WSE_OK && *subj == '\0')
		snprintf(subj, sizeof(subj), "(unprintable)");
	if (wse_cert_issuer(c, iss, sizeof(iss)) != WSE_OK && *iss == '\0')
		snprintf(iss, sizeof(iss), "(unprintable)");
	if (wse_cert_serial(c, serial, sizeof(serial)) != WSE_OK)
		snprintf(serial, sizeof(serial), "(unprintable)");
	if (names == NULL || wse_cert_san_text(c, names) != WSE_OK)
		wse_buf_free(&names);
	wse_err_clear();
	if (now < nb)
		state = "  (not yet valid)";
	else if (now > na)
		state = "  (expired)";
	printf("  subject     %s\n", *subj ? subj : "(empty)");
	printf("  issuer      %s\n", *iss ? iss : "(empty)");
	printf("  serial      %s\n", serial);
	printf("  not before  %s\n", admin_time(nb, t1, sizeof(t1)));
	printf("  not after   %s%s\n", admin_time(na, t2, sizeof(t2)), state);
	printf("  names       %s\n", names == NULL ? "(unprintable)" :
	    wse_buf_len(names) > 0 ? wse_buf_str(names) : "(none)");
	printf("  CA          %s\n", wse_cert_is_ca(c) ? "yes" : "no");
	wse_buf_free(&names);
}

/* Describe every certificate of a PEM file. */
static int
describe_file(const struct admin_ctx *ctx, const char *path)
{
	wse_cert **v = NULL;
	size_t n = 0, i;

	if (wse_cert_load_list(path, &v, &n) != WSE_OK)
		return admin_fail(path);
	for (i = 0; i < n; i++) {
		if (n > 1)
			printf("%s: certificate %zu of %zu\n", path, i + 1, n);
		else
			printf("%s\n", path);
		describe(v[i], ctx->now);
	}
	wse_cert_list_free(&v, n);
	return ADMIN_EXIT_OK;
}

static int
cmd_ca_init(struct admin_ctx *ctx, int argc, char **argv)
{
	const char *cn = "WSEmail Root CA";
	int days = ROOT_DAYS, n = 0, r;
	const struct admin_opt opts[] = {
		{ .name = "--cn", .type = ADMIN_OPT_STRING, .str = &cn },
		{ .name = "--days", .type = ADMIN_OPT_INT, .num = &days,
		  .min = 1, .max = DAYS_MAX },
	};
	char path[4096];

	if ((r = admin_parse(ctx, argc, argv, opts, 2, NULL, &n, 0, 0)) != 0)
		return r;
	if (wse_ca_root_init(ctx->pki_dir, cn, days, ctx->now) != WSE_OK)
		return admin_fail("ca init failed");
	if (pki_path(ctx, "root", "cert.pem", path, sizeof(path)) != 0)
		return admin_fail(NULL);
	printf("created the root CA in %s/root (private key: key.pem, "
	    "keep it offline)\n", ctx->pki_dir);
	return describe_file(ctx, path);
}

static int
cmd_domain_issue(struct admin_ctx *ctx, int argc, char **argv)
{
	const char *pos[1];
	int days = DOMAIN_DAYS, n = 0, r;
	const struct admin_opt opts[] = {
		{ .name = "--days", .type = ADMIN_OPT_INT, .num = &days,
		  .min = 1, .max = DAYS_MAX },
	};
	char path[4096];

	if ((r = admin_parse(ctx, argc, argv, opts, 1, pos, &n, 1, 1)) != 0)
		return r;
	if (wse_ca_domain_issue(ctx->pki_dir, pos[0], days, ctx->now) !=
	    WSE_OK)
		return admin_fail("domain issue failed");
	if (pki_path(ctx, pos[0], "ca.pem", path, sizeof(path)) != 0)
		return admin_fail(NULL);
	printf("issued the domain CA of %s in %s/%s (with an empty CRL)\n",
	    pos[0], ctx->pki_dir, pos[0]);
	return describe_file(ctx, path);
}

static int
cmd_service_issue(struct admin_ctx *ctx, int argc, char **argv)
{
	const char *pos[1], *hostv[HOSTS_MAX];
	struct admin_list hosts = { hostv, 0, HOSTS_MAX };
	int days = SERVICE_DAYS, n = 0, r;
	const struct admin_opt opts[] = {
		{ .name = "--host", .type = ADMIN_OPT_LIST, .list = &hosts },
		{ .name = "--days", .type = ADMIN_OPT_INT, .num = &days,
		  .min = 1, .max = DAYS_MAX },
	};
	char path[4096];

	if ((r = admin_parse(ctx, argc, argv, opts, 2, pos, &n, 1, 1)) != 0)
		return r;
	if (wse_ca_service_issue(ctx->pki_dir, pos[0], hosts.v, hosts.n,
	    days, ctx->now) != WSE_OK)
		return admin_fail("service issue failed");
	if (pki_path(ctx, pos[0], "service.pem", path, sizeof(path)) != 0)
		return admin_fail(NULL);
	printf("issued the service certificate of %s in %s/%s "
	    "(service-key.pem, service.pem, chain.pem)\n", pos[0],
	    ctx->pki_dir, pos[0]);
	return describe_file(ctx, path);
}

static int
cmd_revoke(struct admin_ctx *ctx, int argc, char **argv)
{
	const char *pos[2], *certfile = NULL, *serial;
	int crl_days = CRL_DAYS, n = 0, r, rc = ADMIN_EXIT_FAIL;
	const struct admin_opt opts[] = {
		{ .name = "--cert", .type = ADMIN_OPT_STRING, .str = &certfile },
		{ .name = "--crl-days", .type = ADMIN_OPT_INT, .num = &crl_days,
		  .min = 1, .max = DAYS_MAX },
	};
	char path[4096], buf[80], ca_subj[512], issuer[512];
	wse_cert *cert = NULL, *ca = NULL;

	if ((r = admin_parse(ctx, argc, argv, opts, 2, pos, &n, 1, 2)) != 0)
		return r;
	if ((n == 2) == (certfile != NULL))
		return admin_usage(ctx, "give either SERIAL or --cert FILE");
	if (certfile != NULL) {
		/* the certificate must be one this CA issued */
		if (wse_cert_load(certfile, &cert) != WSE_OK ||
		    ca_cert_path(ctx, pos[0], path, sizeof(path)) != 0 ||
		    wse_cert_load(path, &ca) != WSE_OK ||
		    wse_cert_serial(cert, buf, sizeof(buf)) != WSE_OK ||
		    wse_cert_issuer(cert, issuer, sizeof(issuer)) != WSE_OK ||
		    wse_cert_subject(ca, ca_subj, sizeof(ca_subj)) != WSE_OK) {
			rc = admin_fail("revoke failed");
			goto out;
		}
		if (strcmp(issuer, ca_subj) != 0) {
			wse_err(WSE_ERR_INVALID, "%s was issued by %s, not by "
			    "the CA %s (%s)", certfile, issuer, pos[0],
			    ca_subj);
			rc = admin_fail(NULL);
			goto out;
		}
		serial = buf;
	} else {
		serial = pos[1];
	}
	if (wse_ca_revoke(ctx->pki_dir, pos[0], serial, crl_days, ctx->now) !=
	    WSE_OK) {
		rc = admin_fail("revoke failed");
		goto out;
	}
	printf("revoked serial %s at the CA %s; reissued %s/%s/crl.pem "
	    "(valid %d days)\n", serial, pos[0], ctx->pki_dir, pos[0],
	    crl_days);
	printf("copy the new CRL to every server that checks %s's "
	    "certificates\n", pos[0]);
	rc = ADMIN_EXIT_OK;
out:
	wse_cert_free(&cert);
	wse_cert_free(&ca);
	return rc;
}

static int
cmd_crl(struct admin_ctx *ctx, int argc, char **argv)
{
	const char *pos[1];
	int days = CRL_DAYS, n = 0, r;
	const struct admin_opt opts[] = {
		{ .name = "--days", .type = ADMIN_OPT_INT, .num = &days,
		  .min = 1, .max = DAYS_MAX },
	};

	if ((r = admin_parse(ctx, argc, argv, opts, 1, pos, &n, 1, 1)) != 0)
		return r;
	if (wse_ca_crl(ctx->pki_dir, pos[0], days, ctx->now) != WSE_OK)
		return admin_fail("crl failed");
	printf("reissued %s/%s/crl.pem (valid %d days, at most until the "
	    "CA expires)\n", ctx->pki_dir, pos[0], days);
	return ADMIN_EXIT_OK;
}

static int
cmd_cert_show(struct admin_ctx *ctx, int argc, char **argv)
{
	const char *pos[1];
	int n = 0, r;

	if ((r = admin_parse(ctx, argc, argv, NULL, 0, pos, &n, 1, 1)) != 0)
		return r;
	return describe_file(ctx, pos[0]);
}

const struct admin_cmd admin_pki_cmds[] = {
	{ "ca", "init", cmd_ca_init, "[--cn NAME] [--days N]",
	  "create the root CA (key, certificate, empty CRL)" },
	{ "domain", "issue", cmd_domain_issue, "DOMAIN [--days N]",
	  "issue a domain CA under the root (default 365 days)" },
	{ "service", "issue", cmd_service_issue,
	  "DOMAIN [--host H]... [--days N]",
	  "issue a domain's service certificate (default 90 days)" },
	{ "revoke", NULL, cmd_revoke,
	  "CA SERIAL|--cert FILE [--crl-days N]",
	  "revoke a certificate of CA (\"root\" or a domain), reissue its CRL" },
	{ "crl", NULL, cmd_crl, "CA [--days N]",
	  "reissue the CRL of CA (\"root\" or a domain; default 30 days)" },
	{ "cert", "show", cmd_cert_show, "FILE",
	  "describe the certificates of a PEM file" },
	{ NULL, NULL, NULL, NULL, NULL },
};
