/*
 * session.c - the client's session with the user's own server: the
 * configuration, the log-in (GetAuthParams, PBKDF2, password signer) and
 * one verified request/answer exchange.
 *
 * Every answer of the server is verified (certificate profile, a service
 * certificate of the user's own domain, a fresh Timestamp, a MessageID
 * not seen before in this run) and must name our request in its signed
 * RelatesTo before anything in it is read.  The same check applies to
 * the signed Faults of another domain's server (FetchAttachment), for
 * that domain.
 *
 * "connect" lines (any number):
 *	connect = ADDR			our own server is at ADDR
 *	connect = HOST[:PORT] ADDR[:PORT]	URLs naming HOST (and PORT) too
 * ADDR is a numeric IPv4 or IPv6 address ("[::1]" or "::1"); the TLS
 * certificate is still checked against the URL's host.  The transport
 * keeps the URL's port, so a PORT after ADDR must be the same one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "text.h"
#include "xml.h"
#include "wsemail.h"

#define KDF_NAME "PBKDF2-HMAC-SHA256"
#define ITERATIONS_MAX 100000000u	/* refuse a cost that would hang us */
#define REPLAY_ENTRIES 4096

/* Every key the main section may hold. */
static const char *const known_keys[] = {
	"server", "connect", "address", "roots", "crl", "password_file",
	"state_dir", "publisher", "form_cache", "form_param", "dns_server",
	"route", NULL,
};

static const char *
config_default(char *buf, size_t size)
{
	const char *e = getenv("WSEMAIL_CONFIG"), *home;
	struct passwd *pw;

	if (e != NULL && *e != '\0')
		return e;
	home = getenv("HOME");
	if ((home == NULL || *home == '\0') &&
	    (pw = getpwuid(getuid())) != NULL)
		home = pw->pw_dir;
	if (home == NULL || *home == '\0')
		return NULL;
	if ((size_t)snprintf(buf, size, "%s/.config/wsemail/config", home) >=
	    size)
		return NULL;
	return buf;
}

static const char *
need(struct cli *c, const char *key)
{
	const char *v = wse_config_get(c->cfg, "", key);

	if (v == NULL || *v == '\0') {
		wse_err_clear();
		cli_fail("%s: \"%s\" is required", c->config_path, key);
		return NULL;
	}
	return v;
}

int
cli_url_host(const char *url, char *host, size_t size, long *port_r)
{
	const char *h, *e, *p;
	long long port = 443;
	char num[8];
	size_t n, i;

	if (url == NULL || strncasecmp(url, "https://", 8) != 0)
		return -1;
	h = url + 8;
	if (*h == '[') {
		if ((e = strchr(h, ']')) == NULL)
			return -1;
		h++;
		p = e + 1;
	} else {
		e = h + strcspn(h, ":/?#");
		p = e;
	}
	n = (size_t)(e - h);
	if (n == 0 || n >= size)
		return -1;
	for (i = 0; i < n; i++) {
		char ch = h[i];

		if (ch == '@' || ch == '%' || (unsigned char)ch <= ' ' ||
		    (unsigned char)ch >= 0x7f)
			return -1;
		host[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
	}
	host[n] = '\0';
	if (*p == ':') {
		n = strcspn(p + 1, "/?#");
		if (n == 0 || n >= sizeof(num))
			return -1;
		memcpy(num, p + 1, n);
		num[n] = '\0';
		if (cli_number(num, 1, 65535, &port) != 0)
			return -1;
		p += 1 + n;
	}
	if (*p != '\0' && *p != '/' && *p != '?' && *p != '#')
		return -1;
	*port_r = (long)port;
	return 0;
}

const char *
cli_connect_for(const struct cli *c, const char *url)
{
	char host[256];
	long port;
	size_t i;

	if (cli_url_host(url, host, sizeof(host), &port) != 0)
		return NULL;
	/* The most precise line wins: HOST:PORT, HOST, then the bare
	 * address for our own server. */
	for (i = 0; i < c->nconnects; i++)
		if (c->connects[i].port == port &&
		    strcmp(c->connects[i].host, host) == 0)
			return c->connects[i].addr;
	for (i = 0; i < c->nconnects; i++)
		if (c->connects[i].port == -1 && c->connects[i].host[0] &&
		    strcmp(c->connects[i].host, host) == 0)
			return c->connects[i].addr;
	if (c->server != NULL && strcmp(url, c->server) == 0)
		for (i = 0; i < c->nconnects; i++)
			if (c->connects[i].host[0] == '\0')
				return c->connects[i].addr;
	return NULL;
}

/* ADDR or ADDR:PORT ([v6]:PORT): the numeric address into out, the port
 * (-1 without one) into *port_r; -1 when malformed. */
static int
parse_addr(const char *s, char *out, size_t size, long *port_r)
{
	unsigned char tmp[sizeof(struct in6_addr)];
	char a[INET6_ADDRSTRLEN + 1];
	const char *colon;
	long long port;
	size_t n;

	*port_r = -1;
	if (s[0] == '[') {
		const char *e = strchr(s, ']');

		if (e == NULL || (n = (size_t)(e - s - 1)) == 0 ||
		    n >= sizeof(a))
			return -1;
		memcpy(a, s + 1, n);
		a[n] = '\0';
		if (inet_pton(AF_INET6, a, tmp) != 1)
			return -1;
		if (e[1] == ':') {
			if (cli_number(e + 2, 1, 65535, &port) != 0)
				return -1;
			*port_r = (long)port;
		} else if (e[1] != '\0')
			return -1;
	} else if (inet_pton(AF_INET6, s, tmp) == 1) {
		if (strlen(s) >= sizeof(a))
			return -1;
		(void)snprintf(a, sizeof(a), "%s", s);
	} else {
		colon = strchr(s, ':');
		n = colon != NULL ? (size_t)(colon - s) : strlen(s);
		if (n == 0 || n >= sizeof(a))
			return -1;
		memcpy(a, s, n);
		a[n] = '\0';
		if (inet_pton(AF_INET, a, tmp) != 1)
			return -1;
		if (colon != NULL) {
			if (cli_number(colon + 1, 1, 65535, &port) != 0)
				return -1;
			*port_r = (long)port;
		}
	}
	if (strlen(a) >= size)
		return -1;
	(void)snprintf(out, size, "%s", a);
	return 0;
}

static int
parse_connects(struct cli *c)
{
	size_t i, n = wse_config_count(c->cfg, "", "connect"), bare = 0;

	if (n > CLI_CONNECT_MAX)
		return cli_fail("%s: more than %d \"connect\" lines",
		    c->config_path, CLI_CONNECT_MAX);
	for (i = 0; i < n; i++) {
		const char *v = wse_config_get_nth(c->cfg, "", "connect", i);
		struct cli_connect *cc = &c->connects[c->nconnects];
		char url[300], hostspec[280];
		const char *sp;
		long port, aport;
		size_t hn;

		if (v == NULL || *v == '\0')
			continue;
		cc->port = -1;
		if ((sp = strpbrk(v, " \t")) == NULL) {
			if (bare++ > 0)
				return cli_fail("%s: \"connect = ADDR\" (our "
				    "own server) is given twice",
				    c->config_path);
			if (parse_addr(v, cc->addr, sizeof(cc->addr),
			    &aport) != 0 || aport != -1)
				return cli_fail("%s: connect \"%s\": not a "
				    "numeric IP address", c->config_path, v);
			cc->host[0] = '\0';
			c->nconnects++;
			continue;
		}
		hn = (size_t)(sp - v);
		if (hn >= sizeof(hostspec))
			goto bad;
		memcpy(hostspec, v, hn);
		hostspec[hn] = '\0';
		sp += strspn(sp, " \t");
		(void)snprintf(url, sizeof(url), "https://%s/", hostspec);
		if (cli_url_host(url, cc->host, sizeof(cc->host), &port) != 0)
			goto bad;
		/* Without ":PORT" the line is for any port of HOST. */
		if (strchr(hostspec[0] == '[' ? strchr(hostspec, ']') :
		    hostspec, ':') != NULL)
			cc->port = port;
		if (parse_addr(sp, cc->addr, sizeof(cc->addr), &aport) != 0)
			goto bad;
		if (aport != -1 && aport != cc->port)
			return cli_fail("%s: connect \"%s\": the port cannot "
			    "change (give ADDR alone, or HOST:PORT "
			    "ADDR:PORT with the same PORT)", c->config_path,
			    v);
		c->nconnects++;
		continue;
bad:
		return cli_fail("%s: connect \"%s\": use \"connect = ADDR\" "
		    "or \"connect = HOST[:PORT] ADDR[:PORT]\" (ADDR a "
		    "numeric address)", c->config_path, v);
	}
	return CLI_EXIT_OK;
}

/* state_dir, default $HOME/.wsemail (checked and made by token.c when
 * it is used). */
static int
state_dir(struct cli *c)
{
	const char *v = wse_config_get(c->cfg, "", "state_dir"), *home;
	struct passwd *pw;

	if (v != NULL && *v != '\0') {
		if ((size_t)snprintf(c->state_dir, sizeof(c->state_dir), "%s",
		    v) >= sizeof(c->state_dir))
			return cli_fail("%s: state_dir is too long",
			    c->config_path);
		return CLI_EXIT_OK;
	}
	home = getenv("HOME");
	if ((home == NULL || *home == '\0') &&
	    (pw = getpwuid(getuid())) != NULL)
		home = pw->pw_dir;
	if (home == NULL || *home == '\0') {
		c->state_dir[0] = '\0';	/* only an error when used */
		return CLI_EXIT_OK;
	}
	if ((size_t)snprintf(c->state_dir, sizeof(c->state_dir),
	    "%s/.wsemail", home) >= sizeof(c->state_dir))
		c->state_dir[0] = '\0';
	return CLI_EXIT_OK;
}

static int cli_http_new(struct cli *c);

int
cli_open(struct cli *c, const char *path)
{
	const char *key, *v, *addr;
	char host[256];
	size_t i, k, n;
	long port;

	memset(c, 0, sizeof(*c));
	if (path == NULL &&
	    (path = config_default(c->path_buf, sizeof(c->path_buf))) == NULL)
		return cli_fail("no configuration: use --config FILE or set "
		    "WSEMAIL_CONFIG");
	c->config_path = path;
	if (wse_config_load(path, &c->cfg) != WSE_OK)
		return cli_fail("configuration %s", path);
	for (i = 0; (key = wse_config_key(c->cfg, "", i, &v)) != NULL; i++) {
		for (k = 0; known_keys[k] != NULL; k++)
			if (strcmp(known_keys[k], key) == 0)
				break;
		if (known_keys[k] == NULL)
			return cli_fail("%s:%u: unknown setting \"%s\"", path,
			    wse_config_line(c->cfg, "", key), key);
	}
	wse_limits_default(&c->lim);
	for (i = 0; (key = wse_config_key(c->cfg, "limits", i, &v)) != NULL;
	    i++)
		if (wse_limits_set(&c->lim, key, v) != WSE_OK)
			return cli_fail("%s: [limits] %s", path, key);
	/* Answers carry a whole signed original in base64. */
	c->resp_lim = c->lim;
	if (c->resp_lim.max_message_bytes < SIZE_MAX / 2)
		c->resp_lim.max_message_bytes *= 2;

	if ((c->server = need(c, "server")) == NULL ||
	    (addr = need(c, "address")) == NULL ||
	    need(c, "roots") == NULL)
		return CLI_EXIT_FAIL;
	if (cli_url_host(c->server, host, sizeof(host), &port) != 0)
		return cli_fail("%s: server must be an https://HOST[:PORT]/PATH "
		    "URL", path);
	if (parse_connects(c) != CLI_EXIT_OK)
		return CLI_EXIT_FAIL;
	c->connect = cli_connect_for(c, c->server);
	if (wse_addr_normalize(addr, c->address, sizeof(c->address)) !=
	    WSE_OK)
		return cli_fail("%s: address", path);
	c->domain = wse_addr_domain(c->address);
	if (state_dir(c) != CLI_EXIT_OK)
		return CLI_EXIT_FAIL;

	if (wse_wss_init() != WSE_OK)
		return cli_fail("cannot initialise the XML security library");
	if (wse_trust_new(&c->trust) != WSE_OK ||
	    wse_trust_load_roots(c->trust, wse_config_get(c->cfg, "",
	    "roots")) != WSE_OK)
		return cli_fail("roots");
	n = wse_config_count(c->cfg, "", "crl");
	for (i = 0; i < n; i++)
		if (wse_trust_load_crls(c->trust, wse_config_get_nth(c->cfg,
		    "", "crl", i)) != WSE_OK)
			return cli_fail("crl");
	if (n == 0)
		wse_trust_skip_crls(c->trust);
	c->crls_checked = n > 0;
	if (wse_replay_memory_new(REPLAY_ENTRIES, &c->replay) != WSE_OK)
		return cli_fail("replay cache");

	return cli_http_new(c);
}

/* The HTTPS client of c (kept-alive connections; a WaitInstant is held
 * up to 60 s). */
static int
cli_http_new(struct cli *c)
{
	wse_http_client_opts ho;

	memset(&ho, 0, sizeof(ho));
	ho.roots = wse_config_get(c->cfg, "", "roots");
	ho.connect_timeout_ms = 10000;
	ho.timeout_ms = 120000;
	ho.max_response = c->resp_lim.max_message_bytes;
	if (wse_http_client_new(&ho, &c->http) != WSE_OK)
		return cli_fail("HTTPS client");
	return CLI_EXIT_OK;
}

int
cli_http_renew(struct cli *c)
{
	/* Not freed: closing it would end the TLS sessions the parent
	 * still uses.  The child leaves with _exit(). */
	c->http = NULL;
	return cli_http_new(c);
}

wse_trust *
cli_trust_nocrl(struct cli *c)
{
	if (c->trust_nocrl != NULL)
		return c->trust_nocrl;
	if (wse_trust_new(&c->trust_nocrl) != WSE_OK ||
	    wse_trust_load_roots(c->trust_nocrl, wse_config_get(c->cfg, "",
	    "roots")) != WSE_OK) {
		wse_trust_free(&c->trust_nocrl);
		cli_fail("roots");
		return NULL;
	}
	wse_trust_skip_crls(c->trust_nocrl);
	return c->trust_nocrl;
}

void
cli_close(struct cli *c)
{
	wse_trust_free(&c->trust_nocrl);
	wse_signer_free(&c->signer);
	wse_http_client_free(&c->http);
	wse_replay_free(&c->replay);
	wse_trust_free(&c->trust);
	wse_config_free(&c->cfg);
}

void
cli_reply_clear(struct cli_reply *r)
{
	wse_verified_clear(&r->v);
	wse_env_free(&r->env);
	r->payload = NULL;
}

char *
cli_child_text(const xmlNode *parent, const char *local, size_t max)
{
	return wse_xml_child_text(parent, WSE_NS_WSE, local, max);
}

int
cli_check_answer(struct cli *c, const char *what, const char *server,
    const char *domain, const char *op, const char *request_id,
    const wse_buf *resp, long http_status, struct cli_reply *r)
{
	wse_verify_opts o;
	wse_status st, fst;
	wse_trust *nocrl;
	char reason[256], want[128];
	const char *w = what != NULL ? what : "", *sep = what != NULL ? ": " :
	    "";

	c->last_refused = 0;
	c->last_fault = WSE_OK;
	if ((st = wse_env_parse(wse_buf_data(resp), wse_buf_len(resp),
	    &c->resp_lim, &r->env)) != WSE_OK) {
		if (http_status != 200 && http_status != 500) {
			wse_err_clear();
			fprintf(stderr, "%s: %s%s", CLI_PROG, w, sep);
			term_put(stderr, server, 0, 200);
			fprintf(stderr, " answered with HTTP status %ld\n",
			    http_status);
			return CLI_EXIT_FAIL;
		}
		return cli_fail("%s%sthe server's answer is not a SOAP "
		    "envelope", w, sep);
	}
	memset(&o, 0, sizeof(o));
	o.profile = WSE_PROFILE_CERT;
	o.limits = &c->resp_lim;
	o.replay = c->replay;
	o.now = (int64_t)time(NULL);
	o.trust = c->trust;
	o.purpose = WSE_PURPOSE_SERVICE;
	o.expected_domain = domain;
	st = wse_wss_verify(r->env, &o, &r->v);
	/* Another domain's CRL we may not have: as "read" does, verify
	 * without CRLs (our own domain's answers always need them). */
	if (st == WSE_ERR_TEMPFAIL && c->crls_checked &&
	    strcmp(domain, c->domain) != 0 &&
	    (nocrl = cli_trust_nocrl(c)) != NULL) {
		wse_err_clear();
		o.trust = nocrl;
		st = wse_wss_verify(r->env, &o, &r->v);
	}
	if (st != WSE_OK)
		return cli_fail("%s%sthe server's answer does not verify (%s)",
		    w, sep, wse_fault_subcode(st));
	if (r->v.relates_to_s == NULL ||
	    strcmp(r->v.relates_to_s, request_id) != 0)
		return cli_fail("%s%sthe server's answer is not about our "
		    "request", w, sep);
	if (wse_fault_read(r->v.body, &fst, reason, sizeof(reason)) ==
	    WSE_OK) {
		c->last_refused = 1;
		c->last_fault = fst;
		fprintf(stderr, "%s: %s%sthe server refused: %s (", CLI_PROG,
		    w, sep, wse_fault_subcode(fst));
		term_put(stderr, reason, 0, 200);
		fprintf(stderr, ")\n");
		wse_err_clear();
		return CLI_EXIT_FAIL;
	}
	(void)snprintf(want, sizeof(want), WSE_ACTION_PREFIX "%sResponse",
	    op);
	if (strcmp(r->v.action_s, want) != 0)
		return cli_fail("%s%sthe server answered with the wrong action",
		    w, sep);
	(void)snprintf(want, sizeof(want), "%sResponse", op);
	if (wse_xml_only_child(r->v.body, WSE_NS_WSE, want, &r->payload) !=
	    WSE_OK) {
		wse_err_clear();
		return cli_fail("%s%sthe server's answer holds no %s", w, sep,
		    want);
	}
	wse_err_clear();
	return CLI_EXIT_OK;
}

int
cli_call(struct cli *c, const char *op, const char *payload,
    int unsigned_request, struct cli_reply *r)
{
	wse_envelope *env = NULL;
	wse_buf *req = NULL, *resp = NULL;
	char action[128];
	wse_status st;
	long http = 0;
	int rc = CLI_EXIT_FAIL;

	memset(r, 0, sizeof(*r));
	wse_err_clear();
	c->last_refused = 0;
	c->last_fault = WSE_OK;
	(void)snprintf(action, sizeof(action), WSE_ACTION_PREFIX "%s", op);
	if (wse_env_new(c->server, action, &env) != WSE_OK ||
	    wse_env_add_body_xml(env, payload, strlen(payload), &c->lim) !=
	    WSE_OK) {
		rc = cli_fail("cannot build the %s request", op);
		goto out;
	}
	if (!unsigned_request && (c->signer == NULL || wse_wss_sign(env,
	    c->signer, (int64_t)time(NULL), CLI_REQUEST_TTL) != WSE_OK)) {
		rc = cli_fail("cannot sign the %s request", op);
		goto out;
	}
	if ((req = wse_buf_new(c->lim.max_message_bytes)) == NULL ||
	    (resp = wse_buf_new(c->resp_lim.max_message_bytes)) == NULL) {
		rc = cli_fail("out of memory");
		goto out;
	}
	if ((st = wse_env_serialize(env, req)) != WSE_OK) {
		if (st == WSE_ERR_TOO_LARGE) {
			wse_err_clear();
			rc = cli_fail("the request is larger than the limit of "
			    "%zu bytes", c->lim.max_message_bytes);
		} else
			rc = cli_fail("cannot serialise the request");
		goto out;
	}
	if ((st = wse_http_post(c->http, c->server, c->connect,
	    "application/soap+xml", wse_buf_data(req), wse_buf_len(req), resp,
	    &http)) != WSE_OK) {
		rc = cli_fail("cannot reach %s", c->server);
		goto out;
	}
	rc = cli_check_answer(c, NULL, c->server, c->domain, op,
	    wse_env_message_id(env), resp, http, r);
out:
	if (rc != CLI_EXIT_OK)
		cli_reply_clear(r);
	wse_env_free(&env);
	wse_buf_free(&req);
	wse_buf_free(&resp);
	return rc;
}

/* ---- the password ---- */

/* First line of the password file, which only its owner may read. */
static int
password_from_file(const char *path, char *buf, size_t size)
{
	struct stat sb;
	char tmp[CLI_PASSWORD_MAX + 2];
	size_t n = 0;
	ssize_t r;
	int fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		wse_err(WSE_ERR_IO, "password_file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		wse_err(WSE_ERR_IO, "password_file %s is not a regular file",
		    path);
		goto out;
	}
	if ((sb.st_mode & 077) != 0) {
		wse_err(WSE_ERR_CONFIG, "password_file %s may be read by "
		    "others (mode %03o): chmod 600 it", path,
		    (unsigned)(sb.st_mode & 0777));
		goto out;
	}
	while (n < sizeof(tmp) - 1 &&
	    (r = read(fd, tmp + n, sizeof(tmp) - 1 - n)) != 0) {
		if (r == -1) {
			if (errno == EINTR)
				continue;
			wse_err(WSE_ERR_IO, "password_file %s: %s", path,
			    strerror(errno));
			goto out;
		}
		n += (size_t)r;
		if (memchr(tmp, '\n', n) != NULL)
			break;
	}
	tmp[n] = '\0';
	n = strcspn(tmp, "\r\n");
	if (n >= size || n > CLI_PASSWORD_MAX) {
		wse_err(WSE_ERR_TOO_LARGE, "password_file %s: the password is "
		    "longer than %d bytes", path, CLI_PASSWORD_MAX);
		goto out;
	}
	memcpy(buf, tmp, n);
	buf[n] = '\0';
	rc = 0;
out:
	wse_memzero(tmp, sizeof(tmp));
	close(fd);
	return rc;
}

static int
get_password(struct cli *c, char *buf, size_t size)
{
	const char *e = getenv("WSEMAIL_PASSWORD"), *file;
	char prompt[WSE_ADDR_MAX + 32];
	size_t n;

	if (e != NULL && *e != '\0') {
		if ((n = strlen(e)) >= size || n > CLI_PASSWORD_MAX)
			return cli_fail("WSEMAIL_PASSWORD is longer than %d "
			    "bytes", CLI_PASSWORD_MAX);
		memcpy(buf, e, n + 1);
	} else if ((file = wse_config_get(c->cfg, "", "password_file")) !=
	    NULL && *file != '\0') {
		if (password_from_file(file, buf, size) != 0)
			return cli_fail("password");
	} else {
		(void)snprintf(prompt, sizeof(prompt), "Password for %s: ",
		    c->address);
		if (term_read_password(prompt, buf, size) != 0)
			return cli_fail("password (set WSEMAIL_PASSWORD or "
			    "password_file when there is no terminal)");
	}
	if (buf[0] == '\0')
		return cli_fail("the password is empty");
	return CLI_EXIT_OK;
}

/* ---- log-in ---- */

int
cli_login(struct cli *c)
{
	struct cli_reply r;
	wse_buf *payload = NULL, *salt = NULL;
	char password[CLI_PASSWORD_MAX + 1];
	char *kdf = NULL, *salt_b64 = NULL, *iter_s = NULL;
	uint8_t key[WSE_DERIVED_KEY_LEN];
	long long iter;
	int rc;

	memset(&r, 0, sizeof(r));
	password[0] = '\0';
	if ((rc = get_password(c, password, sizeof(password))) != CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	if ((payload = wse_buf_new(1024)) == NULL ||
	    (salt = wse_buf_new(256)) == NULL) {
		rc = cli_fail("out of memory");
		goto out;
	}
	if (wse_buf_puts(payload, "<m:GetAuthParams xmlns:m=\"" WSE_NS_WSE
	    "\"><m:User>") != WSE_OK ||
	    wse_buf_put_xml_escaped(payload, c->address,
	    strlen(c->address)) != WSE_OK ||
	    wse_buf_puts(payload, "</m:User></m:GetAuthParams>") != WSE_OK) {
		rc = cli_fail("cannot build GetAuthParams");
		goto out;
	}
	if ((rc = cli_call(c, "GetAuthParams", wse_buf_str(payload), 1, &r)) !=
	    CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	kdf = cli_child_text(r.payload, "Kdf", 64);
	salt_b64 = cli_child_text(r.payload, "Salt", 128);
	iter_s = cli_child_text(r.payload, "Iterations", 16);
	if (kdf == NULL || salt_b64 == NULL || iter_s == NULL) {
		rc = cli_fail("the server's GetAuthParamsResponse is "
		    "incomplete");
		goto out;
	}
	if (strcmp(kdf, KDF_NAME) != 0) {
		rc = cli_fail("the server asks for an unknown key derivation");
		goto out;
	}
	if (wse_base64_decode(salt_b64, strlen(salt_b64), salt) != WSE_OK ||
	    wse_buf_len(salt) < 8 || wse_buf_len(salt) > 64) {
		wse_err_clear();
		rc = cli_fail("the server announced a malformed salt");
		goto out;
	}
	if (cli_number(iter_s, 1, ITERATIONS_MAX, &iter) != 0) {
		rc = cli_fail("the server announced a malformed iteration "
		    "count");
		goto out;
	}
	if (iter < (long long)c->lim.pbkdf2_min_iterations) {
		rc = cli_fail("the server asks for %lld PBKDF2 iterations, "
		    "fewer than the minimum of %u: refusing to log in", iter,
		    c->lim.pbkdf2_min_iterations);
		goto out;
	}
	if (wse_pbkdf2_sha256(password, strlen(password), wse_buf_data(salt),
	    wse_buf_len(salt), (uint32_t)iter, key) != WSE_OK ||
	    wse_signer_new_password(c->address, key, &c->signer) != WSE_OK) {
		rc = cli_fail("cannot derive the key");
		goto out;
	}
	rc = CLI_EXIT_OK;
out:
	wse_memzero(password, sizeof(password));
	wse_memzero(key, sizeof(key));
	cli_reply_clear(&r);
	wse_buf_free(&payload);
	wse_buf_free(&salt);
	free(kdf);
	free(salt_b64);
	free(iter_s);
	return rc;
}

/* ---- small helpers ---- */

int
cli_state_dir_ready(struct cli *c)
{
	struct stat sb;

	if (c->state_dir[0] == '\0')
		return cli_fail("no state directory: set state_dir in %s (or "
		    "HOME)", c->config_path);
	if (mkdir(c->state_dir, 0700) == -1 && errno != EEXIST)
		return cli_fail("cannot make %s: %s", c->state_dir,
		    strerror(errno));
	if (stat(c->state_dir, &sb) == -1)
		return cli_fail("%s: %s", c->state_dir, strerror(errno));
	if (!S_ISDIR(sb.st_mode))
		return cli_fail("%s is not a directory", c->state_dir);
	if (sb.st_uid != geteuid() || (sb.st_mode & 022) != 0)
		return cli_fail("%s must belong to you and not be writable by "
		    "others (chmod 700 it)", c->state_dir);
	return CLI_EXIT_OK;
}

void
cli_human_size(uint64_t n, char *buf, size_t size)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB",
	    "PiB" };
	double v = (double)n;
	size_t u = 0;

	if (n < 1024) {
		(void)snprintf(buf, size, "%llu B", (unsigned long long)n);
		return;
	}
	v /= 1024;
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	(void)snprintf(buf, size, "%.1f %s", v, units[u]);
}

int
cli_safe_name(const char *name)
{
	return wse_attach_name_ok(name) && name[0] != '.' &&
	    strlen(name) <= 200;
}
