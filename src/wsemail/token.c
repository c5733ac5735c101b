/*
 * token.c - the user's token certificate (docs/protocol.md RequestToken,
 * the paper's Msg 6/7): a short-lived certificate for the user's mailbox
 * from the user's own domain CA, with which the client signs calls to
 * another domain's server (FetchAttachment).
 *
 * The client makes the key (ECDSA P-256) itself; only its public half
 * leaves the machine.  Key, token and CA are kept under state_dir
 * (default $HOME/.wsemail, made 0700; it must be ours and not writable
 * by others):
 *	<address>.token.key	the private key, PKCS#8 PEM, mode 0600,
 *				written to a new file (O_EXCL, 0600) that is
 *				then renamed into place
 *	<address>.token.pem	the token, then the domain CA (0600 too)
 *	<address>.token.lock	serialises renewals of concurrent runs
 * A kept token is used while it verifies (matches the key, names our
 * address, chains to our roots as a token, CRLs as configured) and has
 * more than max(5 minutes, 10% of its lifetime) left; otherwise a new key
 * is made and a new token requested, verified the same way, and kept.  A
 * key file that others may read is never used (and is replaced).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "wsemail.h"

#define RENEW_MIN 300		/* renew with less than 5 minutes left */
#define PEM_MAX 16384

struct paths {
	char key[1200], pem[1200], lock[1200];
};

static int
make_paths(struct cli *c, struct paths *p)
{
	if ((size_t)snprintf(p->key, sizeof(p->key), "%s/%s.token.key",
	    c->state_dir, c->address) >= sizeof(p->key) ||
	    (size_t)snprintf(p->pem, sizeof(p->pem), "%s/%s.token.pem",
	    c->state_dir, c->address) >= sizeof(p->pem) ||
	    (size_t)snprintf(p->lock, sizeof(p->lock), "%s/%s.token.lock",
	    c->state_dir, c->address) >= sizeof(p->lock))
		return cli_fail("state_dir is too long");
	return CLI_EXIT_OK;
}

void
cli_token_clear(struct cli_token *t)
{
	wse_signer_free(&t->signer);
	wse_cert_free(&t->chain[0]);
	wse_cert_free(&t->chain[1]);
	wse_key_free(&t->key);
	memset(t, 0, sizeof(*t));
}

/*
 * Does the token (chain[0], issued by chain[1]) belong to key and to us,
 * and chain to our roots as a token?  WSE_OK, or a status with the reason
 * on the error stack.
 */
static wse_status
token_check(struct cli *c, const wse_key *key, wse_cert *const *chain,
    int64_t now)
{
	char mailbox[WSE_ADDR_MAX + 1];
	wse_trust *nocrl;
	wse_status st;

	if (!wse_cert_matches_key(chain[0], key))
		return wse_err(WSE_ERR_INVALID, "the token is not for our "
		    "key");
	if (wse_cert_mailbox(chain[0], mailbox, sizeof(mailbox)) != WSE_OK ||
	    strcmp(mailbox, c->address) != 0) {
		wse_err_clear();
		return wse_err(WSE_ERR_INVALID, "the token does not name %s",
		    c->address);
	}
	if (!wse_cert_is_ca(chain[1]))
		return wse_err(WSE_ERR_INVALID, "the token's issuer is not "
		    "a CA");
	st = wse_trust_verify(c->trust, chain[0], &chain[1], 1, now,
	    WSE_PURPOSE_TOKEN);
	/* Our CRLs cannot decide: as "read" does, without them. */
	if (st == WSE_ERR_TEMPFAIL && c->crls_checked &&
	    (nocrl = cli_trust_nocrl(c)) != NULL) {
		wse_err_clear();
		st = wse_trust_verify(nocrl, chain[0], &chain[1], 1, now,
		    WSE_PURPOSE_TOKEN);
	}
	return st;
}

/* The time after which a token is renewed. */
static int64_t
renew_at(const struct cli_token *t)
{
	int64_t life = t->not_after - t->not_before, margin = life / 10;

	if (margin < RENEW_MIN)
		margin = RENEW_MIN;
	return t->not_after - margin;
}

static int
make_signer(struct cli_token *t)
{
	t->not_before = wse_cert_not_before(t->chain[0]);
	t->not_after = wse_cert_not_after(t->chain[0]);
	if (wse_signer_new_cert(t->key, t->chain, 2, &t->signer) != WSE_OK)
		return cli_fail("cannot sign with the token");
	return CLI_EXIT_OK;
}

/* The kept token, when it is usable: 1; 0 when a new one is needed. */
static int
load_kept(struct cli *c, const struct paths *p, struct cli_token *t,
    int64_t now)
{
	wse_cert **certs = NULL;
	struct stat sb;
	size_t n = 0;

	if (lstat(p->pem, &sb) == -1 || lstat(p->key, &sb) == -1)
		return 0;
	if (!S_ISREG(sb.st_mode) || sb.st_uid != geteuid() ||
	    (sb.st_mode & 077) != 0) {
		fprintf(stderr, "%s: warning: %s is not a private file of "
		    "yours; replacing the token and its key\n", CLI_PROG,
		    p->key);
		return 0;
	}
	if (wse_key_load(p->key, &t->key) != WSE_OK ||
	    wse_cert_load_list(p->pem, &certs, &n) != WSE_OK || n != 2)
		goto no;
	t->chain[0] = certs[0];
	t->chain[1] = certs[1];
	free(certs);
	certs = NULL;
	n = 0;
	if (token_check(c, t->key, t->chain, now) != WSE_OK)
		goto no;
	t->not_before = wse_cert_not_before(t->chain[0]);
	t->not_after = wse_cert_not_after(t->chain[0]);
	if (now >= renew_at(t))
		goto no;
	wse_err_clear();
	return 1;
no:
	wse_err_clear();
	if (certs != NULL)
		wse_cert_list_free(&certs, n);
	cli_token_clear(t);
	return 0;
}

/* The one PEM certificate in text (nothing but white space around it). */
static wse_status
pem_cert(const char *text, wse_cert **cert_r)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	static const char end[] = "-----END CERTIFICATE-----";
	const char *b, *e, *rest;
	wse_buf *der;
	wse_status st;

	*cert_r = NULL;
	b = text + strspn(text, " \t\r\n");
	if (strncmp(b, begin, sizeof(begin) - 1) != 0 ||
	    (e = strstr(b, end)) == NULL)
		return wse_err(WSE_ERR_INVALID, "not a PEM certificate");
	rest = e + sizeof(end) - 1;
	if (rest[strspn(rest, " \t\r\n")] != '\0')
		return wse_err(WSE_ERR_INVALID, "more than one PEM block");
	b += sizeof(begin) - 1;
	if ((der = wse_buf_new(PEM_MAX)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "out of memory");
	if ((st = wse_base64_decode(b, (size_t)(e - b), der)) == WSE_OK)
		st = wse_cert_from_der(wse_buf_data(der), wse_buf_len(der),
		    cert_r);
	wse_buf_free(&der);
	return st;
}

/* Write data to a new file path (O_EXCL, 0600) and sync it. */
static wse_status
write_new(const char *path, const void *data, size_t len)
{
	const uint8_t *q = data;
	ssize_t w;
	int fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) == -1)
		return wse_err(WSE_ERR_IO, "%s: %s", path, strerror(errno));
	while (len > 0) {
		w = write(fd, q, len);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		q += w;
		len -= (size_t)w;
	}
	if (len > 0 || fsync(fd) == -1) {
		wse_err(WSE_ERR_IO, "%s: %s", path, strerror(errno));
		close(fd);
		(void)unlink(path);
		return WSE_ERR_IO;
	}
	if (close(fd) == -1) {
		(void)unlink(path);
		return wse_err(WSE_ERR_IO, "%s: %s", path, strerror(errno));
	}
	return WSE_OK;
}

/* Keep key and token: new files renamed over the old ones. */
static int
save_token(struct cli *c, const struct paths *p, const struct cli_token *t)
{
	char tkey[1300], tpem[1300], hex[17];
	uint8_t rnd[8];
	wse_buf *pem = NULL;
	int dfd, rc = CLI_EXIT_FAIL;

	tkey[0] = tpem[0] = '\0';
	if (wse_random(rnd, sizeof(rnd)) != WSE_OK)
		return cli_fail("random");
	wse_hex(rnd, sizeof(rnd), hex);
	(void)snprintf(tkey, sizeof(tkey), "%s.new-%s", p->key, hex);
	(void)snprintf(tpem, sizeof(tpem), "%s.new-%s", p->pem, hex);
	if ((pem = wse_buf_new(2 * PEM_MAX)) == NULL ||
	    wse_cert_to_pem(t->chain[0], pem) != WSE_OK ||
	    wse_cert_to_pem(t->chain[1], pem) != WSE_OK) {
		rc = cli_fail("cannot encode the token");
		goto out;
	}
	if (wse_key_save(t->key, tkey) != WSE_OK) {
		tkey[0] = '\0';
		rc = cli_fail("cannot keep the token key");
		goto out;
	}
	if (write_new(tpem, wse_buf_data(pem), wse_buf_len(pem)) != WSE_OK) {
		tpem[0] = '\0';
		rc = cli_fail("cannot keep the token");
		goto out;
	}
	/* Key first: a crash in between leaves a token that does not match
	 * the key, which the next run replaces. */
	if (rename(tkey, p->key) == -1 || rename(tpem, p->pem) == -1) {
		rc = cli_fail("cannot keep the token in %s: %s", c->state_dir,
		    strerror(errno));
		goto out;
	}
	tkey[0] = tpem[0] = '\0';
	if ((dfd = open(c->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) !=
	    -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	rc = CLI_EXIT_OK;
out:
	if (tkey[0] != '\0')
		(void)unlink(tkey);
	if (tpem[0] != '\0')
		(void)unlink(tpem);
	wse_buf_free(&pem);
	return rc;
}

/* A new key, RequestToken, checks. */
static int
request_token(struct cli *c, struct cli_token *t, int64_t *now)
{
	struct cli_reply r;
	wse_buf *p = NULL, *pub = NULL;
	char *tok = NULL, *ca = NULL, *na = NULL;
	int64_t not_after;
	int rc = CLI_EXIT_FAIL;

	memset(&r, 0, sizeof(r));
	if (c->signer == NULL && (rc = cli_login(c)) != CLI_EXIT_OK)
		return rc;
	rc = CLI_EXIT_FAIL;
	if (wse_key_generate(&t->key) != WSE_OK) {
		rc = cli_fail("cannot make a key");
		goto out;
	}
	if ((pub = wse_buf_new(PEM_MAX)) == NULL ||
	    (p = wse_buf_new(2 * PEM_MAX)) == NULL ||
	    wse_key_public_pem(t->key, pub) != WSE_OK ||
	    wse_buf_puts(p, "<m:RequestToken xmlns:m=\"" WSE_NS_WSE "\">"
	    "<m:PublicKey>") != WSE_OK ||
	    wse_buf_put_xml_escaped(p, wse_buf_str(pub), wse_buf_len(pub)) !=
	    WSE_OK ||
	    wse_buf_puts(p, "</m:PublicKey></m:RequestToken>") != WSE_OK) {
		rc = cli_fail("cannot build the RequestToken request");
		goto out;
	}
	if ((rc = cli_call(c, "RequestToken", wse_buf_str(p), 0, &r)) !=
	    CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	tok = cli_child_text(r.payload, "Token", PEM_MAX);
	ca = cli_child_text(r.payload, "Ca", PEM_MAX);
	na = cli_child_text(r.payload, "NotAfter", 64);
	if (tok == NULL || ca == NULL || na == NULL ||
	    wse_time_parse(na, &not_after) != WSE_OK) {
		wse_err_clear();
		rc = cli_fail("the server's RequestTokenResponse is malformed");
		goto out;
	}
	if (pem_cert(tok, &t->chain[0]) != WSE_OK ||
	    pem_cert(ca, &t->chain[1]) != WSE_OK) {
		rc = cli_fail("the server's token");
		goto out;
	}
	*now = (int64_t)time(NULL);
	if (token_check(c, t->key, t->chain, *now) != WSE_OK) {
		rc = cli_fail("the token the server issued does not verify");
		goto out;
	}
	if (wse_cert_not_after(t->chain[0]) != not_after)
		fprintf(stderr, "%s: warning: the token's NotAfter differs "
		    "from the certificate's; using the certificate's\n",
		    CLI_PROG);
	t->renewed = 1;
	rc = CLI_EXIT_OK;
out:
	cli_reply_clear(&r);
	wse_buf_free(&p);
	wse_buf_free(&pub);
	free(tok);
	free(ca);
	free(na);
	return rc;
}

int
cli_token_get(struct cli *c, int force_new, struct cli_token *t)
{
	struct paths p;
	int64_t now = (int64_t)time(NULL);
	int lfd = -1, rc;

	memset(t, 0, sizeof(*t));
	if ((rc = cli_state_dir_ready(c)) != CLI_EXIT_OK ||
	    (rc = make_paths(c, &p)) != CLI_EXIT_OK)
		return rc;
	if ((lfd = open(p.lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0600)) == -1)
		return cli_fail("%s: %s", p.lock, strerror(errno));
	while (flock(lfd, LOCK_EX) == -1)
		if (errno != EINTR) {
			rc = cli_fail("%s: %s", p.lock, strerror(errno));
			goto out;
		}
	if (force_new || !load_kept(c, &p, t, now)) {
		if ((rc = request_token(c, t, &now)) != CLI_EXIT_OK ||
		    (rc = save_token(c, &p, t)) != CLI_EXIT_OK)
			goto out;
	}
	rc = make_signer(t);
out:
	close(lfd);	/* releases the lock */
	if (rc != CLI_EXIT_OK)
		cli_token_clear(t);
	return rc;
}

/* ---- "wsemail token" ---- */

int
cmd_token(const struct cli_cmd *cmd, const char *config, int argc,
    char **argv)
{
	const char *pos[1];
	struct cli c;
	struct cli_token t;
	char subject[512], from[21], to[21], **args;
	int rc, npos, i, n = 0, force = 0;

	memset(&c, 0, sizeof(c));
	memset(&t, 0, sizeof(t));
	/* "--new" is a flag (cli_parse options take values). */
	if ((args = calloc((size_t)argc + 1, sizeof(*args))) == NULL)
		return cli_fail("out of memory");
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < argc)
				args[n++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "--new") == 0)
			force = 1;
		else
			args[n++] = argv[i];
	}
	rc = cli_parse(cmd, n, args, NULL, 0, &config, pos, &npos, 0);
	free(args);
	if (rc != 0)
		return rc;
	if ((rc = cli_open(&c, config)) != CLI_EXIT_OK ||
	    (rc = cli_token_get(&c, force, &t)) != CLI_EXIT_OK)
		goto out;
	if (wse_cert_subject(t.chain[1], subject, sizeof(subject)) != WSE_OK) {
		wse_err_clear();
		(void)snprintf(subject, sizeof(subject), "?");
	}
	wse_time_format(t.not_before, from);
	wse_time_format(t.not_after, to);
	printf("token for %s (%s)\nissued by ", c.address, t.renewed ?
	    "new" : "kept");
	term_put(stdout, subject, 0, 0);
	printf("\nvalid %s to %s\nkept in %s/%s.token.key and .token.pem\n",
	    from, to, c.state_dir, c.address);
out:
	cli_token_clear(&t);
	cli_close(&c);
	return rc;
}
