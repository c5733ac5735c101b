/*
 * admin_config.c - the part of wsemaild's configuration file that the
 * user and queue commands need: the domain, the [limits] section, the
 * store, and the server secret that seals the store's keys.
 *
 * SECURITY: the configuration file is trusted (it is the server's own).
 * The secret file is only read, never created: a missing secret means
 * the server was never started or the path is wrong, and a fresh secret
 * would make every sealed key of an existing store unreadable.  The
 * secret and the seal key live on the stack and are wiped before return.
 */
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "buf.h"
#include "config.h"
#include "crypto.h"
#include "err.h"
#include "store.h"
#include "wselimits.h"

/* A required, non-empty key of the main section, or NULL (message on the
 * error stack). */
static const char *
need(const wse_config *cfg, const char *path, const char *key)
{
	const char *v = wse_config_get(cfg, "", key);

	if (v == NULL || *v == '\0') {
		wse_err(WSE_ERR_CONFIG, "%s: \"%s\" is required", path, key);
		return NULL;
	}
	return v;
}

int
admin_server_open(const struct admin_ctx *ctx, struct admin_server *srv)
{
	wse_config *cfg = NULL;
	const char *path = ctx->config_path, *v, *key, *store_uri;
	const char *secret_path;
	uint8_t secret[WSE_SEAL_KEY_LEN], seal[WSE_SEAL_KEY_LEN];
	char what[512], errs[WSE_ERR_DEPTH * (WSE_ERR_MSGLEN + 2)];
	size_t i;
	int rc = ADMIN_EXIT_FAIL;

	memset(srv, 0, sizeof(*srv));
	wse_limits_default(&srv->lim);
	wse_err_clear();
	if (wse_config_load(path, &cfg) != WSE_OK) {
		snprintf(what, sizeof(what), "cannot read the configuration %s",
		    path);
		(void)admin_fail(what);
		goto out;
	}
	for (i = 0; (key = wse_config_key(cfg, "limits", i, &v)) != NULL; i++)
		if (wse_limits_set(&srv->lim, key, v) != WSE_OK) {
			wse_err(WSE_ERR_CONFIG, "%s:%u: [limits] %s", path,
			    wse_config_line(cfg, "limits", key), key);
			(void)admin_fail(NULL);
			goto out;
		}
	if ((v = need(cfg, path, "domain")) == NULL ||
	    (store_uri = need(cfg, path, "store")) == NULL ||
	    (secret_path = need(cfg, path, "secret_file")) == NULL) {
		(void)admin_fail(NULL);
		goto out;
	}
	if (strlen(v) >= sizeof(srv->domain) || strchr(v, '@') != NULL ||
	    strchr(v, ' ') != NULL) {
		fprintf(stderr, "%s: %s: \"domain\" is not a domain name\n",
		    ADMIN_PROG, path);
		goto out;
	}
	for (i = 0; v[i] != '\0'; i++)
		srv->domain[i] = (v[i] >= 'A' && v[i] <= 'Z') ?
		    (char)(v[i] - 'A' + 'a') : v[i];
	srv->domain[i] = '\0';
	if (wse_secret_load(secret_path, 0, secret) != WSE_OK) {
		fprintf(stderr, "%s: cannot read the server secret: %s "
		    "(wsemaild creates it when it first starts)\n", ADMIN_PROG,
		    wse_err_format(errs, sizeof(errs)));
		wse_err_clear();
		goto out;
	}
	if (wse_secret_derive(secret, "store-seal", seal) != WSE_OK) {
		(void)admin_fail("cannot derive the store's seal key");
		goto out;
	}
	if (wse_store_open(store_uri, seal, &srv->store) != WSE_OK) {
		fprintf(stderr, "%s: store unavailable: %s\n", ADMIN_PROG,
		    wse_err_format(errs, sizeof(errs)));
		wse_err_clear();
		goto out;
	}
	rc = 0;
out:
	wse_memzero(secret, sizeof(secret));
	wse_memzero(seal, sizeof(seal));
	wse_config_free(&cfg);
	return rc;
}

void
admin_server_close(struct admin_server *srv)
{
	if (srv != NULL)
		wse_store_close(&srv->store);
}

int
admin_store_fail(const char *what)
{
	char errs[WSE_ERR_DEPTH * (WSE_ERR_MSGLEN + 2)];
	wse_status st = wse_err_last_status();

	if (st == WSE_ERR_IO || st == WSE_ERR_TEMPFAIL ||
	    st == WSE_ERR_NOMEM || st == WSE_ERR_INTERNAL || st == WSE_OK)
		fprintf(stderr, "%s: store unavailable: %s\n", ADMIN_PROG,
		    wse_err_count() > 0 ? wse_err_format(errs, sizeof(errs)) :
		    what);
	else
		fprintf(stderr, "%s: %s: %s\n", ADMIN_PROG, what,
		    wse_err_format(errs, sizeof(errs)));
	wse_err_clear();
	return ADMIN_EXIT_FAIL;
}
