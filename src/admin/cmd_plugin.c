/*
 * cmd_plugin.c - wsemail-admin plugin keygen | sign | verify | list:
 * publisher keys and signatures for downloadable (Lua) form-type
 * plugins.  The work is done by lib/pubsig.h; this file reads and writes
 * files and reports.
 *
 * SECURITY: keygen writes the publisher's private key mode 0600 through a
 * new file (never over an existing one).  verify and list read plugin
 * and signature files as untrusted input; they trust only the publisher
 * certificates named with --trust, and only as pinned certificates (see
 * pubsig.h).  Nothing here runs a plugin.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "pki.h"
#include "pubsig.h"

#define PLUGIN_MAX	(16u << 20)	/* a plugin file */
#define TRUST_MAX	64		/* --trust options */
#define LIST_MAX	4096		/* plugins in a directory */
#define DAYS_MAX	3650
#define DAYS_DEFAULT	365
#define BACKDATE	300		/* seconds, for clock skew */

/* ---- helpers ---- */

/* Write len bytes to path (mode 0644) through a temporary file in the
 * same directory and a rename. */
static int
write_atomic(const char *path, const void *data, size_t len)
{
	char tmp[4096];
	const char *p = data;
	ssize_t w;
	int fd, n;

	n = snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		wse_err(WSE_ERR_INVALID, "path too long: %s", path);
		return -1;
	}
	if ((fd = mkstemp(tmp)) < 0) {
		wse_err(WSE_ERR_IO, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	while (len > 0) {
		if ((w = write(fd, p, len)) < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		p += w;
		len -= (size_t)w;
	}
	if (fchmod(fd, 0644) != 0 || fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto fail;
	return 0;
fail:
	wse_err(WSE_ERR_IO, "%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}

/* Every certificate of every --trust file; the caller frees. */
static int
load_trust(const struct admin_list *paths, wse_cert ***certs_r, size_t *n_r)
{
	wse_cert **all = NULL, **v = NULL, **grown;
	size_t n = 0, nv = 0, i, j;

	*certs_r = NULL;
	*n_r = 0;
	for (i = 0; i < paths->n; i++) {
		if (wse_cert_load_list(paths->v[i], &v, &nv) != WSE_OK) {
			wse_err(WSE_ERR_CONFIG, "cannot read the trusted "
			    "publisher certificates in %s", paths->v[i]);
			goto fail;
		}
		if ((grown = realloc(all, (n + nv) * sizeof(*all))) == NULL) {
			wse_cert_list_free(&v, nv);
			wse_err(WSE_ERR_NOMEM, "out of memory");
			goto fail;
		}
		all = grown;
		for (j = 0; j < nv; j++) {
			all[n++] = v[j];
			v[j] = NULL;
		}
		wse_cert_list_free(&v, nv);
	}
	*certs_r = all;
	*n_r = n;
	return 0;
fail:
	wse_cert_list_free(&all, n);
	return -1;
}

static const char *
verdict(wse_status st)
{
	switch (st) {
	case WSE_OK:
		return "ok";
	case WSE_ERR_INVALID:
		return "malformed";
	case WSE_ERR_UNSUPPORTED:
		return "unsupported";
	case WSE_ERR_UNTRUSTED:
		return "untrusted";
	case WSE_ERR_CERT_EXPIRED:
		return "expired";
	case WSE_ERR_CERT_NOT_YET_VALID:
		return "not-yet-valid";
	case WSE_ERR_BAD_SIGNATURE:
		return "bad-signature";
	default:
		return wse_status_name(st);
	}
}

/*
 * Verify file path against signature file sigpath.  Returns the status;
 * the reason is on the error stack.  A missing signature file is
 * "unsigned" (WSE_ERR_INVALID, *unsigned_r set).
 */
static wse_status
verify_file(const char *path, const char *sigpath, wse_cert *const *trusted,
    size_t ntrusted, int64_t now, wse_pubsig_info *info, int *unsigned_r)
{
	wse_buf *file = NULL, *sig = NULL;
	wse_status st;

	memset(info, 0, sizeof(*info));
	*unsigned_r = 0;
	if ((st = wse_buf_read_file(path, PLUGIN_MAX, &file)) != WSE_OK)
		goto out;
	if (access(sigpath, F_OK) != 0 && errno == ENOENT) {
		*unsigned_r = 1;
		st = wse_err(WSE_ERR_INVALID, "unsigned: there is no %s",
		    sigpath);
		goto out;
	}
	if ((st = wse_buf_read_file(sigpath, WSE_PUBSIG_FILE_MAX, &sig)) !=
	    WSE_OK) {
		st = wse_err(WSE_ERR_INVALID, "cannot use the signature file "
		    "%s", sigpath);
		goto out;
	}
	st = wse_pubsig_verify(wse_buf_data(file), wse_buf_len(file),
	    wse_buf_str(sig), wse_buf_len(sig), trusted, ntrusted, now, info);
out:
	wse_buf_free(&file);
	wse_buf_free(&sig);
	return st;
}

static void
print_fingerprint(const wse_cert *cert)
{
	wse_buf *der = wse_buf_new(1u << 20);
	uint8_t md[WSE_SHA256_LEN];
	char hex[2 * WSE_SHA256_LEN + 1];

	if (der != NULL && wse_cert_to_der(cert, der) == WSE_OK &&
	    wse_sha256(wse_buf_data(der), wse_buf_len(der), md) == WSE_OK) {
		wse_hex(md, sizeof(md), hex);
		printf("  fingerprint SHA256:%s\n", hex);
	}
	wse_err_clear();
	wse_buf_free(&der);
}

/* ---- plugin keygen ---- */

static int
cmd_keygen(struct admin_ctx *ctx, int argc, char **argv)
{
	const char *cn = NULL, *out_key = NULL, *out_cert = NULL;
	int days = DAYS_DEFAULT, n = 0, r, rc = ADMIN_EXIT_FAIL;
	const struct admin_opt opts[] = {
		{ .name = "--cn", .type = ADMIN_OPT_STRING, .str = &cn },
		{ .name = "--out-key", .type = ADMIN_OPT_STRING,
		  .str = &out_key },
		{ .name = "--out-cert", .type = ADMIN_OPT_STRING,
		  .str = &out_cert },
		{ .name = "--days", .type = ADMIN_OPT_INT, .num = &days,
		  .min = 1, .max = DAYS_MAX },
	};
	wse_key *key = NULL;
	wse_cert *cert = NULL;
	char subj[WSE_PUBSIG_SUBJECT_MAX], t[40];

	if ((r = admin_parse(ctx, argc, argv, opts, 4, NULL, &n, 0, 0)) != 0)
		return r;
	if (cn == NULL || out_key == NULL || out_cert == NULL)
		return admin_usage(ctx, "give --cn, --out-key and --out-cert");
	if (strcmp(out_key, out_cert) == 0)
		return admin_usage(ctx, "--out-key and --out-cert must differ");
	if (access(out_key, F_OK) == 0 || access(out_cert, F_OK) == 0) {
		wse_err(WSE_ERR_EXISTS, "refusing to overwrite %s",
		    access(out_key, F_OK) == 0 ? out_key : out_cert);
		return admin_fail(NULL);
	}
	if (wse_pubsig_publisher_new(cn, ctx->now - BACKDATE,
	    ctx->now + (int64_t)days * 86400, &key, &cert) != WSE_OK ||
	    wse_key_save(key, out_key) != WSE_OK) {
		rc = admin_fail("plugin keygen failed");
		goto out;
	}
	if (wse_cert_save(cert, out_cert) != WSE_OK) {
		unlink(out_key);
		rc = admin_fail("plugin keygen failed");
		goto out;
	}
	if (wse_cert_subject(cert, subj, sizeof(subj)) != WSE_OK)
		snprintf(subj, sizeof(subj), "(unprintable)");
	wse_err_clear();
	printf("created publisher %s\n", subj);
	printf("  private key %s (mode 0600: keep it private)\n", out_key);
	printf("  certificate %s (give it to the parties that will trust "
	    "this publisher)\n", out_cert);
	printf("  not after   %s\n", admin_time(wse_cert_not_after(cert), t,
	    sizeof(t)));
	print_fingerprint(cert);
	rc = ADMIN_EXIT_OK;
out:
	wse_key_free(&key);
	wse_cert_free(&cert);
	return rc;
}

/* ---- plugin sign ---- */

static int
cmd_sign(struct admin_ctx *ctx, int argc, char **argv)
{
	const char *pos[1], *name = NULL, *version = NULL, *key_path = NULL;
	const char *cert_path = NULL, *out_path = NULL;
	int n = 0, r, rc = ADMIN_EXIT_FAIL;
	const struct admin_opt opts[] = {
		{ .name = "--name", .type = ADMIN_OPT_STRING, .str = &name },
		{ .name = "--version", .type = ADMIN_OPT_STRING,
		  .str = &version },
		{ .name = "--key", .type = ADMIN_OPT_STRING, .str = &key_path },
		{ .name = "--cert", .type = ADMIN_OPT_STRING,
		  .str = &cert_path },
		{ .name = "--out", .type = ADMIN_OPT_STRING, .str = &out_path },
	};
	wse_buf *file = NULL, *sig = NULL;
	wse_key *key = NULL;
	wse_cert *cert = NULL;
	char def_out[4096], subj[WSE_PUBSIG_SUBJECT_MAX];
	wse_status st;

	if ((r = admin_parse(ctx, argc, argv, opts, 5, pos, &n, 1, 1)) != 0)
		return r;
	if (name == NULL || version == NULL || key_path == NULL ||
	    cert_path == NULL)
		return admin_usage(ctx, "give --name, --version, --key and "
		    "--cert");
	if (out_path == NULL) {
		r = snprintf(def_out, sizeof(def_out), "%s.sig", pos[0]);
		if (r < 0 || (size_t)r >= sizeof(def_out))
			return admin_usage(ctx, "path too long");
		out_path = def_out;
	}
	if ((sig = wse_buf_new(WSE_PUBSIG_FILE_MAX)) == NULL) {
		rc = admin_fail("out of memory");
		goto out;
	}
	if (wse_buf_read_file(pos[0], PLUGIN_MAX, &file) != WSE_OK ||
	    wse_key_load(key_path, &key) != WSE_OK ||
	    wse_cert_load(cert_path, &cert) != WSE_OK) {
		rc = admin_fail("plugin sign failed");
		goto out;
	}
	if (wse_cert_subject(cert, subj, sizeof(subj)) != WSE_OK)
		snprintf(subj, sizeof(subj), "(unprintable)");
	wse_err_clear();
	if ((st = wse_cert_check_time(cert, ctx->now)) != WSE_OK) {
		wse_err_clear();
		wse_err(st, "the publisher certificate %s %s: nobody would "
		    "accept the signature", cert_path,
		    st == WSE_ERR_CERT_EXPIRED ? "has expired" :
		    "is not valid yet");
		rc = admin_fail(NULL);
		goto out;
	}
	if (wse_pubsig_sign(wse_buf_data(file), wse_buf_len(file), name,
	    version, key, cert, sig) != WSE_OK ||
	    write_atomic(out_path, wse_buf_data(sig), wse_buf_len(sig)) != 0) {
		rc = admin_fail("plugin sign failed");
		goto out;
	}
	printf("signed %s as %s %s by %s\n  wrote %s\n", pos[0], name,
	    version, subj, out_path);
	rc = ADMIN_EXIT_OK;
out:
	wse_buf_free(&file);
	wse_buf_free(&sig);
	wse_key_free(&key);
	wse_cert_free(&cert);
	return rc;
}

/* ---- plugin verify ---- */

static int
cmd_verify(struct admin_ctx *ctx, int argc, char **argv)
{
	const char *pos[1], *sig_path = NULL, *want_name = NULL;
	const char *tv[TRUST_MAX];
	struct admin_list trust = { tv, 0, TRUST_MAX };
	int n = 0, r, unsig, rc = ADMIN_EXIT_FAIL;
	const struct admin_opt opts[] = {
		{ .name = "--sig", .type = ADMIN_OPT_STRING, .str = &sig_path },
		{ .name = "--trust", .type = ADMIN_OPT_LIST, .list = &trust },
		{ .name = "--name", .type = ADMIN_OPT_STRING,
		  .str = &want_name },
	};
	wse_cert **trusted = NULL;
	size_t ntrusted = 0;
	wse_pubsig_info info;
	char def_sig[4096], t[40];
	wse_status st;

	if ((r = admin_parse(ctx, argc, argv, opts, 3, pos, &n, 1, 1)) != 0)
		return r;
	if (trust.n == 0)
		return admin_usage(ctx, "give at least one --trust "
		    "PUBLISHER.pem");
	if (sig_path == NULL) {
		r = snprintf(def_sig, sizeof(def_sig), "%s.sig", pos[0]);
		if (r < 0 || (size_t)r >= sizeof(def_sig))
			return admin_usage(ctx, "path too long");
		sig_path = def_sig;
	}
	if (load_trust(&trust, &trusted, &ntrusted) != 0)
		return admin_fail(NULL);
	st = verify_file(pos[0], sig_path, trusted, ntrusted, ctx->now, &info,
	    &unsig);
	if (st == WSE_OK && want_name != NULL &&
	    strcmp(want_name, info.name) != 0)
		st = wse_err(WSE_ERR_INVALID, "the file is signed as plugin "
		    "\"%s\", not \"%s\"", info.name, want_name);
	if (st != WSE_OK) {
		fprintf(stderr, "%s: %s: REFUSED (%s)\n", ADMIN_PROG, pos[0],
		    unsig ? "unsigned" : verdict(st));
		rc = admin_fail(NULL);
		goto out;
	}
	printf("%s: signature OK\n", pos[0]);
	printf("  name        %s\n", info.name);
	printf("  version     %s\n", info.version);
	printf("  sha256      %s\n", info.sha256);
	printf("  publisher   %s\n", info.publisher);
	printf("  valid until %s\n", admin_time(info.not_after, t, sizeof(t)));
	rc = ADMIN_EXIT_OK;
out:
	wse_cert_list_free(&trusted, ntrusted);
	return rc;
}

/* ---- plugin list ---- */

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
cmd_list(struct admin_ctx *ctx, int argc, char **argv)
{
	const char *pos[1], *tv[TRUST_MAX];
	struct admin_list trust = { tv, 0, TRUST_MAX };
	int n = 0, r, unsig, mismatch, rc = ADMIN_EXIT_FAIL;
	const struct admin_opt opts[] = {
		{ .name = "--trust", .type = ADMIN_OPT_LIST, .list = &trust },
	};
	wse_cert **trusted = NULL;
	size_t ntrusted = 0, nnames = 0, i, len, refused = 0;
	char **names = NULL, path[4096], sigpath[4200], base[256];
	char why[WSE_ERR_DEPTH * (WSE_ERR_MSGLEN + 2)];
	DIR *d = NULL;
	struct dirent *de;
	wse_pubsig_info info;
	wse_status st;

	if ((r = admin_parse(ctx, argc, argv, opts, 1, pos, &n, 1, 1)) != 0)
		return r;
	if (trust.n == 0)
		return admin_usage(ctx, "give at least one --trust "
		    "PUBLISHER.pem");
	if (load_trust(&trust, &trusted, &ntrusted) != 0)
		return admin_fail(NULL);
	if ((d = opendir(pos[0])) == NULL) {
		wse_err(WSE_ERR_IO, "%s: %s", pos[0], strerror(errno));
		rc = admin_fail(NULL);
		goto out;
	}
	if ((names = calloc(LIST_MAX, sizeof(*names))) == NULL) {
		rc = admin_fail("out of memory");
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= 4 ||
		    strcmp(de->d_name + len - 4, ".lua") != 0)
			continue;
		if (nnames >= LIST_MAX) {
			wse_err(WSE_ERR_TOO_LARGE, "%s: more than %d plugins",
			    pos[0], LIST_MAX);
			rc = admin_fail(NULL);
			goto out;
		}
		if ((names[nnames] = strdup(de->d_name)) == NULL) {
			rc = admin_fail("out of memory");
			goto out;
		}
		nnames++;
	}
	qsort(names, nnames, sizeof(*names), name_cmp);
	if (nnames == 0) {
		printf("no plugins (*.lua) in %s\n", pos[0]);
		rc = ADMIN_EXIT_OK;
		goto out;
	}
	printf("%-24s %-16s %-10s %-14s %s\n", "FILE", "NAME", "VERSION",
	    "VERDICT", "PUBLISHER");
	for (i = 0; i < nnames; i++) {
		const char *v;

		snprintf(path, sizeof(path), "%s/%s", pos[0], names[i]);
		snprintf(sigpath, sizeof(sigpath), "%s.sig", path);
		snprintf(base, sizeof(base), "%.*s",
		    (int)(strlen(names[i]) - 4), names[i]);
		st = verify_file(path, sigpath, trusted, ntrusted, ctx->now,
		    &info, &unsig);
		/* installed plugins are found by name: the file must be
		 * named after the plugin it is signed as */
		mismatch = st == WSE_OK && strcmp(base, info.name) != 0;
		if (mismatch)
			st = wse_err(WSE_ERR_INVALID, "%s is signed as plugin "
			    "\"%s\"", names[i], info.name);
		v = unsig ? "unsigned" : mismatch ? "name-mismatch" :
		    verdict(st);
		printf("%-24s %-16s %-10s %-14s %s\n", names[i],
		    *info.name ? info.name : "-",
		    *info.version ? info.version : "-", v,
		    *info.publisher ? info.publisher : "-");
		if (st != WSE_OK) {
			refused++;
			fprintf(stderr, "%s: %s: %s\n", ADMIN_PROG, names[i],
			    wse_err_format(why, sizeof(why)));
		}
		wse_err_clear();
	}
	if (refused > 0)
		fprintf(stderr, "%s: %zu of %zu plugins refused\n", ADMIN_PROG,
		    refused, nnames);
	rc = refused == 0 ? ADMIN_EXIT_OK : ADMIN_EXIT_FAIL;
out:
	if (d != NULL)
		closedir(d);
	for (i = 0; names != NULL && i < nnames; i++)
		free(names[i]);
	free(names);
	wse_cert_list_free(&trusted, ntrusted);
	return rc;
}

const struct admin_cmd admin_plugin_cmds[] = {
	{ "plugin", "keygen", cmd_keygen,
	  "--cn NAME --out-key KEY.pem --out-cert CERT.pem [--days N]",
	  "make a plugin publisher's key and self-signed certificate" },
	{ "plugin", "sign", cmd_sign,
	  "FILE --name N --version V --key KEY.pem --cert CERT.pem "
	  "[--out FILE.sig]",
	  "sign a plugin file as its publisher" },
	{ "plugin", "verify", cmd_verify,
	  "FILE [--sig FILE.sig] [--name N] --trust PUBLISHER.pem...",
	  "verify a plugin's signature against trusted publishers" },
	{ "plugin", "list", cmd_list, "DIR --trust PUBLISHER.pem...",
	  "list the plugins (*.lua) of DIR with their verdicts" },
	{ NULL, NULL, NULL, NULL, NULL },
};
