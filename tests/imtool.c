/*
 * imtool.c - test helper (not a test) for tests/im.sh: what the wsemail
 * client does not do.
 *
 *   imtool hold --server URL --roots ROOT.pem --user USER[,USER...]
 *               [--connect ADDR] [-n 1000] [--wait 50] [--hold 20]
 *               [--after SEQ]
 *	Hold many idle push sessions.  The password (the same for every
 *	user) comes from $WSEMAIL_PASSWORD.  Each user logs in once
 *	(GetAuthParams, PBKDF2); then n TLS connections are opened to the
 *	server (the certificate checked against the roots and the URL's
 *	host), and on each goes one WaitInstant of its own session (users
 *	taken in turn; a random session id, After = SEQ, Wait = --wait s),
 *	signed with the password profile.  It prints "holding N" once every
 *	request is out, then watches the connections for --hold seconds:
 *	none should be answered before its Wait.  Last line: held=N
 *	answered=K failed=F setup_s=S (answered: answers that came early;
 *	failed: connections that could not be made or were closed).  Exit 0
 *	when all n were held to the end.
 *
 *   imtool direct --server URL --roots ROOT.pem --key KEY.pem
 *               --chain CHAIN.pem --from ADDR --to ADDR [--text TEXT]
 *               [--connect ADDR] [--no-instant]
 *	A DeliverDirect of a message marked instant (unless --no-instant),
 *	From and To as given, signed with KEY and CHAIN (a token and its CA,
 *	as "wsemail token" keeps them) whatever mailbox they are for: what a
 *	dishonest roaming client could send.  Prints "OK RESULT" (exit 0) or
 *	"FAULT Subcode" (exit 3) once the answer verifies as signed by the
 *	To domain's server; anything else exit 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "crypto.h"
#include "msg.h"
#include "testcall.h"
#include "xml.h"

static double
now_s(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct conn {
	int fd;
	SSL *ssl;
	int done;		/* answered or closed */
};

/* Host and port of "https://HOST:PORT/PATH"; the path into path. */
static int
split_url(const char *url, char *host, size_t hsize, int *port, char *path,
    size_t psize)
{
	const char *h, *e, *p;

	if (strncmp(url, "https://", 8) != 0)
		return -1;
	h = url + 8;
	e = h + strcspn(h, ":/");
	if ((size_t)(e - h) >= hsize)
		return -1;
	memcpy(host, h, (size_t)(e - h));
	host[e - h] = '\0';
	*port = 443;
	if (*e == ':')
		*port = atoi(e + 1);
	p = strchr(e, '/');
	(void)snprintf(path, psize, "%s", p != NULL ? p : "/");
	return 0;
}

/* Connect, TLS, send the request; -1 on failure (printed once). */
static int
open_one(SSL_CTX *ctx, const char *host, const char *addr, int port,
    const char *path, const wse_buf *body, struct conn *k)
{
	struct sockaddr_in sa;
	char head[1024];
	int n;

	k->fd = -1;
	k->ssl = NULL;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return -1;
	if ((k->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(k->fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		perror("imtool: connect");
		return -1;
	}
	if ((k->ssl = SSL_new(ctx)) == NULL ||
	    SSL_set_fd(k->ssl, k->fd) != 1 ||
	    SSL_set_tlsext_host_name(k->ssl, host) != 1 ||
	    SSL_set1_host(k->ssl, host) != 1 || SSL_connect(k->ssl) != 1) {
		fprintf(stderr, "imtool: TLS handshake failed\n");
		ERR_print_errors_fp(stderr);
		return -1;
	}
	n = snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: %s:%d\r\n"
	    "Content-Type: application/soap+xml\r\nContent-Length: %zu\r\n"
	    "\r\n", path, host, port, wse_buf_len(body));
	if (SSL_write(k->ssl, head, n) != n ||
	    SSL_write(k->ssl, wse_buf_data(body), (int)wse_buf_len(body)) !=
	    (int)wse_buf_len(body)) {
		fprintf(stderr, "imtool: cannot send the request\n");
		return -1;
	}
	(void)fcntl(k->fd, F_SETFL, fcntl(k->fd, F_GETFL) | O_NONBLOCK);
	return 0;
}

static int
direct(int argc, char **argv)
{
	struct tcall c;
	const char *key_path = NULL, *chain_path = NULL, *from = NULL;
	const char *to = NULL, *text = "a forged instant message";
	wse_key *key = NULL;
	wse_cert **chain = NULL;
	size_t nchain = 0;
	wse_msg *m = NULL;
	wse_envelope *ans = NULL;
	wse_buf *payload = NULL;
	wse_verified v;
	wse_status fst;
	xmlNodePtr acc;
	char date[21];
	int i, instant = 1, rc = 1;

	memset(&c, 0, sizeof(c));
	memset(&v, 0, sizeof(v));
	c.prog = "imtool";
	for (i = 0; i < argc; i++) {
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(argv[i], "--no-instant") == 0) {
			instant = 0;
			continue;
		}
		if (val == NULL)
			break;
		if (strcmp(argv[i], "--server") == 0)
			c.server = val;
		else if (strcmp(argv[i], "--connect") == 0)
			c.connect = val;
		else if (strcmp(argv[i], "--roots") == 0)
			c.roots = val;
		else if (strcmp(argv[i], "--key") == 0)
			key_path = val;
		else if (strcmp(argv[i], "--chain") == 0)
			chain_path = val;
		else if (strcmp(argv[i], "--from") == 0)
			from = val;
		else if (strcmp(argv[i], "--to") == 0)
			to = val;
		else if (strcmp(argv[i], "--text") == 0)
			text = val;
		else
			break;
		i++;
	}
	if (i != argc || c.server == NULL || c.roots == NULL ||
	    key_path == NULL || chain_path == NULL || from == NULL ||
	    to == NULL || !wse_addr_valid(to)) {
		fprintf(stderr, "usage: imtool direct --server URL --roots PEM "
		    "--key KEY --chain CHAIN --from ADDR --to ADDR "
		    "[--text TEXT] [--connect ADDR] [--no-instant]\n");
		return 2;
	}
	c.user = to;		/* the answer is signed by To's server */
	wse_time_format((int64_t)time(NULL), date);
	if (tcall_setup(&c) != 0)
		goto out;
	if (wse_key_load(key_path, &key) != WSE_OK ||
	    wse_cert_load_list(chain_path, &chain, &nchain) != WSE_OK ||
	    nchain < 1 ||
	    wse_signer_new_cert(key, chain, nchain, &c.signer) != WSE_OK) {
		rc = tcall_fail(&c, "set-up");
		goto out;
	}
	if (wse_msg_new(&m) != WSE_OK || wse_msg_set(m, "from", from) !=
	    WSE_OK || wse_msg_add_rcpt(m, to, 0) != WSE_OK ||
	    wse_msg_set(m, "text", text) != WSE_OK ||
	    wse_msg_set(m, "date", date) != WSE_OK ||
	    (m->instant = instant) != instant ||
	    (payload = wse_buf_new(1 << 20)) == NULL ||
	    wse_buf_puts(payload, "<m:DeliverDirect xmlns:m=\"" WSE_NS_WSE
	    "\">") != WSE_OK || wse_msg_to_xml(m, payload) != WSE_OK ||
	    wse_buf_puts(payload, "</m:DeliverDirect>") != WSE_OK) {
		rc = tcall_fail(&c, "cannot build the request");
		goto out;
	}
	if (tcall_exchange(&c, "DeliverDirect", wse_buf_str(payload), 1, &ans,
	    &v, &acc, &fst) != 0)
		goto out;
	if (fst != WSE_OK) {
		printf("FAULT %s\n", wse_fault_subcode(fst));
		rc = 3;
		goto out;
	}
	if (wse_xml_only_child(acc, WSE_NS_WSE, "Accepted", &acc) != WSE_OK) {
		rc = tcall_fail(&c, "the answer holds no result");
		goto out;
	}
	printf("OK %s\n", wse_xml_attr(acc, NULL, "result") ?
	    wse_xml_attr(acc, NULL, "result") : "?");
	rc = 0;
out:
	wse_verified_clear(&v);
	wse_env_free(&ans);
	wse_buf_free(&payload);
	wse_msg_free(&m);
	if (chain != NULL)
		wse_cert_list_free(&chain, nchain);
	wse_key_free(&key);
	tcall_free(&c);
	return rc;
}

static int
hold(int argc, char **argv)
{
	struct tcall c;
	const char *password;
	long n = 1000, wait = 50, hold = 20;
	char *ulist = NULL, *save = NULL, *tok;
	wse_signer *signers[256];
	size_t nusers = 0;
	const char *users = NULL;
	char host[256], path[256], payload[512], sid[WSE_UUID_URN_LEN + 1];
	wse_envelope *env = NULL;
	wse_verified v;
	struct conn *cs = NULL;
	struct pollfd *pf = NULL;
	SSL_CTX *ctx = NULL;
	wse_buf *req = NULL;
	long long last = 0;
	long i, held = 0, answered = 0, failed = 0;
	double t0, setup, end;
	int port, rc = 1;

	memset(&c, 0, sizeof(c));
	memset(&v, 0, sizeof(v));
	c.prog = "imtool";
	for (i = 0; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--server") == 0)
			c.server = argv[i + 1];
		else if (strcmp(argv[i], "--connect") == 0)
			c.connect = argv[i + 1];
		else if (strcmp(argv[i], "--roots") == 0)
			c.roots = argv[i + 1];
		else if (strcmp(argv[i], "--user") == 0)
			users = argv[i + 1];
		else if (strcmp(argv[i], "--after") == 0)
			last = atoll(argv[i + 1]);
		else if (strcmp(argv[i], "-n") == 0)
			n = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--wait") == 0)
			wait = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--hold") == 0)
			hold = atol(argv[i + 1]);
		else
			break;
	}
	password = getenv("WSEMAIL_PASSWORD");
	if (i != argc || c.server == NULL || c.roots == NULL ||
	    users == NULL || password == NULL ||
	    n < 1 || n > 100000 || wait < 1 || wait > 60 || hold < 1 ||
	    split_url(c.server, host, sizeof(host), &port, path,
	    sizeof(path)) != 0) {
		fprintf(stderr, "usage: WSEMAIL_PASSWORD=... imtool hold --server "
		    "URL --roots PEM --user USER[,USER...] [--connect ADDR] "
		    "[-n N] [--wait S] [--hold S] [--after SEQ]\n");
		return 2;
	}
	if (tcall_setup(&c) != 0)
		goto out;
	if ((ulist = strdup(users)) == NULL)
		goto out;
	for (tok = strtok_r(ulist, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (nusers == sizeof(signers) / sizeof(signers[0]) ||
		    !wse_addr_valid(tok)) {
			fprintf(stderr, "imtool: bad or too many users\n");
			goto out;
		}
		c.user = tok;
		c.signer = NULL;
		if (tcall_login(&c, password) != 0)
			goto out;
		signers[nusers++] = c.signer;
	}
	c.signer = NULL;
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, c.roots, NULL) != 1) {
		fprintf(stderr, "imtool: TLS set-up failed\n");
		goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if ((cs = calloc((size_t)n, sizeof(*cs))) == NULL ||
	    (pf = calloc((size_t)n, sizeof(*pf))) == NULL ||
	    (req = wse_buf_new(c.lim.max_message_bytes)) == NULL)
		goto out;
	t0 = now_s();
	for (i = 0; i < n; i++) {
		wse_buf_reset(req);
		if (wse_uuid_urn(sid) != WSE_OK)
			goto out;
		(void)snprintf(payload, sizeof(payload), "<m:WaitInstant "
		    "xmlns:m=\"" WSE_NS_WSE "\"><m:Session>%s</m:Session>"
		    "<m:After>%lld</m:After><m:Wait>%ld</m:Wait>"
		    "</m:WaitInstant>", sid, last, wait);
		c.signer = signers[(size_t)i % nusers];
		if (tcall_build(&c, "WaitInstant", payload, 1, &env, req) != 0)
			goto out;
		wse_env_free(&env);
		if (open_one(ctx, host, c.connect ? c.connect : "127.0.0.1",
		    port, path, req, &cs[i]) != 0) {
			cs[i].done = 1;
			failed++;
		}
	}
	setup = now_s() - t0;
	printf("holding %ld\n", n - failed);
	fflush(stdout);
	end = now_s() + (double)hold;
	while (now_s() < end) {
		long np = 0, j;
		char buf[4096];

		for (i = 0; i < n; i++)
			if (!cs[i].done) {
				pf[np].fd = cs[i].fd;
				pf[np].events = POLLIN;
				np++;
			}
		if (np == 0)
			break;
		if (poll(pf, (nfds_t)np, 200) <= 0)
			continue;
		for (i = 0, j = 0; i < n; i++) {
			if (cs[i].done)
				continue;
			if (pf[j++].revents == 0)
				continue;
			/* Something came back before its Wait. */
			if (SSL_read(cs[i].ssl, buf, sizeof(buf)) > 0)
				answered++;
			else
				failed++;
			cs[i].done = 1;
		}
	}
	for (i = 0; i < n; i++)
		if (!cs[i].done)
			held++;
	printf("held=%ld answered=%ld failed=%ld setup_s=%.1f\n", held,
	    answered, failed, setup);
	rc = held == n ? 0 : 1;
out:
	for (i = 0; cs != NULL && i < n; i++) {
		if (cs[i].ssl != NULL)
			SSL_free(cs[i].ssl);
		if (cs[i].fd > 0)
			close(cs[i].fd);
	}
	free(cs);
	free(pf);
	if (ctx != NULL)
		SSL_CTX_free(ctx);
	wse_buf_free(&req);
	wse_verified_clear(&v);
	wse_env_free(&env);
	c.signer = NULL;
	while (nusers > 0)
		wse_signer_free(&signers[--nusers]);
	free(ulist);
	tcall_free(&c);
	return rc;
}

int
main(int argc, char **argv)
{
	int rc = 2;

	if (argc >= 2 && strcmp(argv[1], "hold") == 0)
		rc = hold(argc - 2, argv + 2);
	else if (argc >= 2 && strcmp(argv[1], "direct") == 0)
		rc = direct(argc - 2, argv + 2);
	else
		fprintf(stderr, "usage: imtool hold ... | imtool direct ...\n");
	xmlCleanupParser();
	return rc;
}
