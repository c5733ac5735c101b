/*
 * wsemaild - the WSEmail server of one domain.
 *
 * Usage: wsemaild [-t] CONFIG     (-t: check the configuration and exit)
 *
 * SECURITY: wsemaild trusts its configuration file, its domain's service
 * key and certificate, the root certificate and the CRLs named there, and
 * its store.  Everything that arrives on the network is untrusted: it goes
 * through the hardened parser and the WS-Security verifier (lib/wss.c)
 * before any operation reads it, within the limits of the [limits]
 * section.  It never needs the root's private key.  The plugins its
 * configuration names ("plugin = PATH [ARGS]", lib/plugin.h) run inside
 * it with all of its rights: they are trusted like the configuration.
 * With "publish_dir = DIR" it also serves the files of DIR (signed form
 * type plugins, docs/forms.md) at GET /plugins/NAME: only plain names,
 * only regular files, never through a symbolic link, at most 1 MiB.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <libxml/parser.h>

#include "config.h"
#include "wsed.h"

void wsed_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static wse_http_server *the_server;
static volatile sig_atomic_t got_signal;

static void
on_signal(int sig)
{
	got_signal = sig;
	if (the_server != NULL)
		wse_http_server_stop(the_server);
}

/* publish_dir, opened once: files are opened relative to it. */
static int publish_fd = -1;

#define PUBLISH_PREFIX		"/plugins/"
#define PUBLISH_NAME_MAX	128
#define PUBLISH_FILE_MAX	(1 << 20)

static int64_t
clock_now(void)
{
	return (int64_t)time(NULL);
}

/* ---- published files: GET /plugins/NAME ---- */

/* [A-Za-z0-9][A-Za-z0-9._-]{0,127} without "..": a name in publish_dir,
 * never a path. */
static int
publish_name_ok(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > PUBLISH_NAME_MAX || strstr(name, "..") != NULL)
		return 0;
	for (i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') ||
		    (i > 0 && (c == '.' || c == '_' || c == '-'))))
			return 0;
	}
	return 1;
}

/*
 * Answer with the file publish_dir/name, or 404.  Read whole on the loop
 * thread: a local file of at most 1 MiB.  O_NONBLOCK keeps a FIFO from
 * blocking the open; O_NOFOLLOW refuses a symbolic link.
 */
static void
serve_published(wse_http_req *req, const char *name)
{
	struct stat sb;
	const char *ctype;
	size_t got = 0, n;
	ssize_t r;
	char *data = NULL;
	int fd = -1;

	if (publish_fd < 0 || !publish_name_ok(name))
		goto notfound;
	if ((fd = openat(publish_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK | O_NOCTTY)) < 0 || fstat(fd, &sb) != 0 ||
	    !S_ISREG(sb.st_mode) || sb.st_size > PUBLISH_FILE_MAX)
		goto notfound;
	n = (size_t)sb.st_size;
	if ((data = malloc(n + 1)) == NULL) {
		close(fd);
		wse_http_reply(req, 503, "text/plain", "busy\n", 5);
		return;
	}
	/* One byte more than fstat said, to notice a file that grew. */
	while (got <= n && (r = read(fd, data + got, n + 1 - got)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			goto notfound;
		}
		got += (size_t)r;
	}
	if (got != n)
		goto notfound;	/* changed under us: the next GET is fine */
	close(fd);
	n = strlen(name);
	ctype = n > 4 && strcmp(name + n - 4, ".lua") == 0 ?
	    "text/plain; charset=utf-8" : "application/octet-stream";
	wse_http_reply(req, 200, ctype, data, got);
	free(data);
	return;
notfound:
	if (fd >= 0)
		close(fd);
	free(data);
	wse_http_reply(req, 404, "text/plain", "not found\n", 10);
}

/* ---- requests: GETs here, POSTs to the workers (serve.c) ---- */

static struct {
	struct wsed_serve *sv;
	wse_buf *wsdl;
} wq;

static void
on_request(void *arg, wse_http_req *req)
{
	const char *q = wse_http_req_query(req);

	(void)arg;
	if (strcmp(wse_http_req_method(req), "GET") == 0) {
		const char *path = wse_http_req_path(req);

		if (q == NULL && strncmp(path, PUBLISH_PREFIX,
		    strlen(PUBLISH_PREFIX)) == 0)
			serve_published(req, path + strlen(PUBLISH_PREFIX));
		else if (q != NULL && strcmp(q, "wsdl") == 0)
			wse_http_reply(req, 200, "text/xml",
			    wse_buf_data(wq.wsdl), wse_buf_len(wq.wsdl));
		else
			wse_http_reply(req, 404, "text/plain", "not found\n", 10);
		return;
	}
	wsed_serve_post(wq.sv, req);
}

/* ---- configuration ---- */

static const char *
need(const wse_config *cfg, const char *key, const char *path)
{
	const char *v = wse_config_get(cfg, "", key);

	if (v == NULL || *v == '\0')
		fprintf(stderr, "wsemaild: %s: \"%s\" is required\n", path, key);
	return v;
}

static int
fail(const char *what)
{
	char errs[1024];

	fprintf(stderr, "wsemaild: %s: %s\n", what,
	    wse_err_format(errs, sizeof(errs)));
	return 1;
}

static int
setup(struct wsed *s, const char *path, wse_http_server_opts *ho,
    int *threads)
{
	wse_config *cfg = NULL;
	const char *v, *key;
	uint8_t secret[WSE_SEAL_KEY_LEN], seal[WSE_SEAL_KEY_LEN];
	long long num;
	size_t i, n;
	int rc = 1;

	if (wse_config_load(path, &cfg) != WSE_OK)
		return fail("configuration");
	wse_limits_default(&s->lim);
	for (i = 0; (key = wse_config_key(cfg, "limits", i, &v)) != NULL; i++)
		if (wse_limits_set(&s->lim, key, v) != WSE_OK) {
			rc = fail(path);
			goto out;
		}
	if ((v = need(cfg, "domain", path)) == NULL)
		goto out;
	(void)snprintf(s->domain, sizeof(s->domain), "%s", v);
	if ((v = need(cfg, "url", path)) == NULL)
		goto out;
	(void)snprintf(s->url, sizeof(s->url), "%s", v);
	if ((v = need(cfg, "listen", path)) == NULL ||
	    (ho->listen = strdup(v)) == NULL ||
	    (v = need(cfg, "cert_chain", path)) == NULL)
		goto out;
	(void)snprintf(s->chain_path, sizeof(s->chain_path), "%s", v);
	if ((v = need(cfg, "key", path)) == NULL)
		goto out;
	(void)snprintf(s->key_path, sizeof(s->key_path), "%s", v);
	if ((v = need(cfg, "roots", path)) == NULL)
		goto out;
	(void)snprintf(s->roots_path, sizeof(s->roots_path), "%s", v);
	if (need(cfg, "crl", path) == NULL || need(cfg, "store", path) ==
	    NULL || need(cfg, "secret_file", path) == NULL)
		goto out;
	ho->cert_chain = s->chain_path;
	ho->key = s->key_path;
	ho->client_roots = s->roots_path;
	ho->client_cert = WSE_CLIENT_CERT_OPTIONAL;
	ho->max_body = s->lim.max_message_bytes;
	ho->timeout_s = 60;
	ho->max_connections = 2000;

#define INT(k, def, lo, hi, dst) do {					\
	if (wse_config_get_int(cfg, "", k, def, lo, hi, &num) != WSE_OK) {	\
		rc = fail(path);					\
		goto out;						\
	}								\
	dst = num;							\
} while (0)
	INT("retry_first", 300, 1, 86400, s->retry_first);
	INT("retry_max", 4000, 1, 86400 * 7, s->retry_max);
	INT("lifetime", 5 * 86400, 1, WSE_QUEUE_LIFETIME_MAX, s->lifetime);
	INT("lease", 120, 5, 86400, s->lease);
	INT("reply_ttl", 300, 10, 3600, s->reply_ttl);
	INT("threads", 16, 1, WSED_THREADS_MAX, *threads);
	INT("delivery_threads", 4, 1, 16, s->delivery_threads);
#undef INT

	if (wse_secret_load(wse_config_get(cfg, "", "secret_file"), 1,
	    secret) != WSE_OK ||
	    wse_secret_derive(secret, "store-seal", seal) != WSE_OK ||
	    wse_secret_derive(secret, "decoy-salt", s->secret) != WSE_OK) {
		rc = fail("server secret");
		goto out;
	}
	if (wse_key_load(s->key_path, &s->key) != WSE_OK ||
	    wse_cert_load_list(s->chain_path, &s->chain, &s->nchain) !=
	    WSE_OK ||
	    wse_signer_new_cert(s->key, s->chain, s->nchain, &s->signer) !=
	    WSE_OK) {
		rc = fail("service key and certificate");
		goto out;
	}
	if (wse_trust_new(&s->trust) != WSE_OK ||
	    wse_trust_load_roots(s->trust, s->roots_path) != WSE_OK) {
		rc = fail("roots");
		goto out;
	}
	n = wse_config_count(cfg, "", "crl");
	for (i = 0; i < n; i++)
		if (wse_trust_load_crls(s->trust, wse_config_get_nth(cfg, "",
		    "crl", i)) != WSE_OK) {
			rc = fail("CRL");
			goto out;
		}
	if (wse_trust_verify(s->trust, s->chain[0], s->chain + 1,
	    s->nchain - 1, s->now(), WSE_PURPOSE_SERVICE) != WSE_OK) {
		rc = fail("our own service certificate does not verify");
		goto out;
	}
	if (wse_store_open(wse_config_get(cfg, "", "store"), seal,
	    &s->store) != WSE_OK || wse_store_replay(s->store, &s->replay) !=
	    WSE_OK) {
		rc = fail("store");
		goto out;
	}
	if (wsed_guard_new(&s->guard) != WSE_OK) {
		rc = fail("guard");
		goto out;
	}
	if (wse_router_new(wse_config_get(cfg, "", "dns_server"), 3000,
	    &s->router) != WSE_OK) {
		rc = fail("resolver");
		goto out;
	}
	n = wse_config_count(cfg, "", "route");
	for (i = 0; i < n; i++) {
		char dom[256], tgt[300];
		const char *r = wse_config_get_nth(cfg, "", "route", i);

		if (sscanf(r, "%255s %299s", dom, tgt) != 2 ||
		    wse_router_add_static(s->router, dom, tgt) != WSE_OK) {
			fprintf(stderr, "wsemaild: %s: bad route \"%s\" "
			    "(DOMAIN HOST:PORT)\n", path, r);
			goto out;
		}
	}
	if ((v = wse_config_get(cfg, "", "publish_dir")) != NULL) {
		errno = 0;
		if (*v == '\0' || (publish_fd = open(v, O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC)) < 0) {
			fprintf(stderr, "wsemaild: %s: publish_dir %s: %s\n",
			    path, v, *v == '\0' ? "empty" : strerror(errno));
			goto out;
		}
	}
	if (wsed_plugins_load(s, cfg, path) != 0)
		goto out;
	rc = 0;
out:
	wse_memzero(secret, sizeof(secret));
	wse_memzero(seal, sizeof(seal));
	wse_config_free(&cfg);
	return rc;
}

static void
teardown(struct wsed *s)
{
	wsed_plugins_unload(s);
	wsed_outbound_fini(s);
	wse_router_free(&s->router);
	wse_replay_free(&s->replay);
	wse_store_close(&s->store);
	wsed_guard_free(&s->guard);
	wse_trust_free(&s->trust);
	wse_signer_free(&s->signer);
	wse_cert_list_free(&s->chain, s->nchain);
	wse_key_free(&s->key);
	wse_memzero(s->secret, sizeof(s->secret));
}

int
main(int argc, char **argv)
{
	struct wsed s;
	wse_http_server_opts ho;
	pthread_t out_threads[16], commit_thread;
	int threads = 2, i, check_only = 0, rc = 1;
	struct sigaction sa;

	if (argc == 3 && strcmp(argv[1], "-t") == 0) {
		check_only = 1;
		argv++;
		argc--;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: wsemaild [-t] CONFIG\n");
		return 2;
	}
	memset(&s, 0, sizeof(s));
	memset(&ho, 0, sizeof(ho));
	s.now = clock_now;
	pthread_mutex_init(&s.wake_lock, NULL);
	wsed_instant_init(&s);
	wsed_outbound_init(&s);
	pthread_cond_init(&s.wake, NULL);
	pthread_mutex_init(&s.commit_lock, NULL);
	pthread_cond_init(&s.commit_work, NULL);
	s.commit_tail = &s.commit_head;
	if (wse_wss_init() != WSE_OK || setup(&s, argv[1], &ho, &threads) != 0)
		goto out;
	if (check_only) {
		printf("wsemaild: %s: configuration of %s is valid\n", argv[1],
		    s.domain);
		rc = 0;
		goto out;
	}
	if ((wq.wsdl = wse_buf_new(1 << 20)) == NULL ||
	    wsed_wsdl(&s, wq.wsdl) != WSE_OK) {
		rc = fail("WSDL");
		goto out;
	}
	if (wse_http_server_new(&ho, on_request, &s, &the_server) != WSE_OK) {
		rc = fail("listen");
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	pthread_create(&commit_thread, NULL, wsed_commit_main, &s);
	wsed_plugins_start(&s);
	s.instant_out_max = threads > 1 ? threads / 2 : 1;
	s.async_max = threads;
	if (wsed_serve_start(&s, threads, &wq.sv) != 0) {
		fprintf(stderr, "wsemaild: cannot start the workers\n");
		s.stopping = 1;
		wsed_commit_stop(&s);
		pthread_join(commit_thread, NULL);
		goto out;
	}
	for (i = 0; i < s.delivery_threads; i++)
		pthread_create(&out_threads[i], NULL, wsed_outbound_main, &s);
	wsed_log("%s listening on %s (port %u), %d workers", s.domain,
	    ho.listen, wse_http_server_port(the_server), threads);
	printf("wsemaild: %s ready on port %u\n", s.domain,
	    wse_http_server_port(the_server));
	fflush(stdout);
	if (wse_http_server_run(the_server) != WSE_OK)
		(void)fail("event loop");
	wsed_log("stopping (signal %d)", (int)got_signal);
	s.stopping = 1;
	pthread_mutex_lock(&s.wake_lock);
	pthread_cond_broadcast(&s.wake);
	pthread_mutex_unlock(&s.wake_lock);
	wsed_serve_stop(&wq.sv);
	wsed_instant_fini(&s);		/* no worker sends any more */
	for (i = 0; i < s.delivery_threads; i++)
		pthread_join(out_threads[i], NULL);
	wsed_commit_stop(&s);
	pthread_join(commit_thread, NULL);
	wsed_log("%llu submissions in %llu transactions",
	    (unsigned long long)s.committed, (unsigned long long)s.commits);
	rc = 0;
out:
	wse_http_server_free(&the_server);
	wse_buf_free(&wq.wsdl);
	if (publish_fd >= 0)
		close(publish_fd);
	free((char *)ho.listen);
	teardown(&s);
	xmlCleanupParser();
	return rc;
}
