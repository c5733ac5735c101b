/*
 * upload.c - sending a file as an on-demand attachment: UploadAttachment
 * calls to the user's own server (docs/protocol.md "On-demand attachments
 * and federated tokens").
 *
 * The file is never held whole in memory: a first streaming pass gives
 * its size and SHA-256 (before the log-in, so that mistakes show before
 * the password is asked for); then it is sent in chunks of at most 4 MiB
 * (less when [limits] max_message_bytes leaves no room), read one at a
 * time.  A call that fails without an answer (network, timeout) is
 * retried: with a handle, an empty Data call asks the server how much it
 * has (Received) and the upload goes on from there.  A signed refusal
 * ends the upload.  The bytes are hashed again as they are sent; a file
 * that changed since the first pass is not completed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "crypto.h"
#include "wsemail.h"

#define CHUNK_MAX (4u * 1024 * 1024)	/* the protocol's limit per call */
#define CHUNK_MIN 1024u
#define ENVELOPE_SLACK 16384u		/* headers, signature, elements */
#define HASH_BUF (1024u * 1024)
#define RETRIES 5

/* Read exactly len bytes at off; -1 (errno set, or 0 for a short file). */
static int
read_at(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	ssize_t r;

	while (len > 0) {
		r = pread(fd, p, len, (off_t)off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = 0;
			return -1;
		}
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

int
cli_upload_prepare(struct cli_upload *u)
{
	EVP_MD_CTX *ctx = NULL;
	uint8_t *buf = NULL, md[WSE_SHA256_LEN];
	unsigned mdlen = 0;
	struct stat sb;
	uint64_t total = 0;
	ssize_t r;
	int rc = CLI_EXIT_FAIL;

	u->fd = open(u->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (u->fd == -1) {
		fprintf(stderr, "%s: %s: %s\n", CLI_PROG, u->path,
		    strerror(errno));
		return CLI_EXIT_FAIL;
	}
	if (fstat(u->fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		fprintf(stderr, "%s: %s: not a regular file\n", CLI_PROG,
		    u->path);
		goto out;
	}
	if ((buf = malloc(HASH_BUF)) == NULL ||
	    (ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		rc = cli_fail("out of memory");
		goto out;
	}
	for (;;) {
		r = read(u->fd, buf, HASH_BUF);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			fprintf(stderr, "%s: %s: %s\n", CLI_PROG, u->path,
			    strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		if (EVP_DigestUpdate(ctx, buf, (size_t)r) != 1) {
			rc = cli_fail("SHA-256");
			goto out;
		}
		total += (uint64_t)r;
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != sizeof(md)) {
		rc = cli_fail("SHA-256");
		goto out;
	}
	wse_hex(md, sizeof(md), u->sha256);
	u->size = total;
	rc = CLI_EXIT_OK;
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	if (rc != CLI_EXIT_OK) {
		close(u->fd);
		u->fd = -1;
	}
	return rc;
}

void
cli_upload_close(struct cli_upload *u)
{
	if (u->fd != -1)
		close(u->fd);
	u->fd = -1;
}

/* A handle as the protocol makes them: [A-Za-z0-9_-]{16,128}. */
static int
handle_ok(const char *h)
{
	size_t n = strspn(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
	    "vwxyz0123456789_-");

	return h[n] == '\0' && n >= 16 && n <= WSE_ONDEMAND_REF_MAX;
}

/* One UploadAttachment call with data[0..len) at off.  Returns
 * CLI_EXIT_OK with *received_r and *complete_r, or CLI_EXIT_FAIL
 * (printed; c->last_refused tells a refusal from a failed call). */
static int
upload_call(struct cli *c, struct cli_upload *u, uint64_t off,
    const uint8_t *data, size_t len, uint64_t *received_r,
    int *complete_r)
{
	struct cli_reply r;
	wse_buf *p = NULL;
	char *h = NULL, *rcv = NULL, *cpl = NULL;
	long long n;
	int rc = CLI_EXIT_FAIL;

	memset(&r, 0, sizeof(r));
	if ((p = wse_buf_new((size_t)len / 3 * 4 + ENVELOPE_SLACK)) == NULL)
		return cli_fail("out of memory");
	if (wse_buf_puts(p, "<m:UploadAttachment xmlns:m=\"" WSE_NS_WSE
	    "\">") != WSE_OK ||
	    (u->handle[0] != '\0' && wse_buf_printf(p, "<m:Upload>%s"
	    "</m:Upload>", u->handle) != WSE_OK) ||
	    wse_buf_puts(p, "<m:Name>") != WSE_OK ||
	    wse_buf_put_xml_escaped(p, u->name, strlen(u->name)) != WSE_OK ||
	    wse_buf_puts(p, "</m:Name><m:Type>") != WSE_OK ||
	    wse_buf_put_xml_escaped(p, u->type, strlen(u->type)) != WSE_OK ||
	    wse_buf_printf(p, "</m:Type><m:Size>%llu</m:Size><m:Sha256>%s"
	    "</m:Sha256><m:Offset>%llu</m:Offset><m:Data>",
	    (unsigned long long)u->size, u->sha256,
	    (unsigned long long)off) != WSE_OK ||
	    (len > 0 && wse_base64_encode(data, len, p) != WSE_OK) ||
	    wse_buf_puts(p, "</m:Data></m:UploadAttachment>") != WSE_OK) {
		rc = cli_fail("cannot build the UploadAttachment request");
		goto out;
	}
	if ((rc = cli_call(c, "UploadAttachment", wse_buf_str(p), 0, &r)) !=
	    CLI_EXIT_OK)
		goto out;
	rc = CLI_EXIT_FAIL;
	h = cli_child_text(r.payload, "Upload", WSE_ONDEMAND_REF_MAX + 1);
	rcv = cli_child_text(r.payload, "Received", 32);
	cpl = cli_child_text(r.payload, "Complete", 8);
	if (h == NULL || !handle_ok(h) || rcv == NULL ||
	    cli_number(rcv, 0, INT64_MAX, &n) != 0 || cpl == NULL ||
	    (strcmp(cpl, "true") != 0 && strcmp(cpl, "false") != 0)) {
		wse_err_clear();
		rc = cli_fail("%s: the server's UploadAttachmentResponse is "
		    "malformed", u->path);
		goto out;
	}
	if (u->handle[0] != '\0' && strcmp(h, u->handle) != 0) {
		rc = cli_fail("%s: the server answered for another upload",
		    u->path);
		goto out;
	}
	if ((uint64_t)n > u->size) {
		rc = cli_fail("%s: the server claims %lld bytes of %llu",
		    u->path, n, (unsigned long long)u->size);
		goto out;
	}
	memcpy(u->handle, h, strlen(h) + 1);
	*received_r = (uint64_t)n;
	*complete_r = strcmp(cpl, "true") == 0;
	rc = CLI_EXIT_OK;
out:
	cli_reply_clear(&r);
	wse_buf_free(&p);
	free(h);
	free(rcv);
	free(cpl);
	return rc;
}

static void
progress(const struct cli_upload *u, uint64_t done, int end)
{
	if (!isatty(STDERR_FILENO))
		return;
	fprintf(stderr, "\rsending ");
	term_put(stderr, u->name, 0, 40);
	fprintf(stderr, ": %3u%%", u->size ? (unsigned)(done * 100 /
	    u->size) : 100u);
	if (end)
		fputc('\n', stderr);
	fflush(stderr);
}

int
cli_upload_run(struct cli *c, struct cli_upload *u)
{
	EVP_MD_CTX *ctx = NULL;
	uint8_t *buf = NULL, md[WSE_SHA256_LEN];
	char hex[2 * WSE_SHA256_LEN + 1];
	unsigned mdlen = 0;
	uint64_t off = 0, hashed = 0, received = 0, sent_hi = 0;
	size_t chunk, len;
	int complete = 0, tries = 0, rc = CLI_EXIT_FAIL;

	u->handle[0] = '\0';
	/* 4 MiB of data, or what fits a request under our own limit. */
	chunk = CHUNK_MAX;
	if (c->lim.max_message_bytes < CHUNK_MAX / 3 * 4 + ENVELOPE_SLACK) {
		if (c->lim.max_message_bytes < ENVELOPE_SLACK + CHUNK_MIN * 2)
			return cli_fail("[limits] max_message_bytes is too "
			    "small for uploads");
		chunk = (c->lim.max_message_bytes - ENVELOPE_SLACK) / 4 * 3;
	}
	if ((buf = malloc(chunk)) == NULL ||
	    (ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		rc = cli_fail("out of memory");
		goto out;
	}
	for (;;) {
		len = u->size - off < chunk ? (size_t)(u->size - off) : chunk;
		if (read_at(u->fd, buf, len, off) != 0) {
			fprintf(stderr, "%s: %s: %s\n", CLI_PROG, u->path,
			    errno ? strerror(errno) : "the file became "
			    "shorter");
			goto out;
		}
		/* Hash what we send, in order, once. */
		if (off == hashed) {
			if (EVP_DigestUpdate(ctx, buf, len) != 1) {
				rc = cli_fail("SHA-256");
				goto out;
			}
			hashed += len;
		}
		if (off + len == u->size && hashed == u->size) {
			if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1) {
				rc = cli_fail("SHA-256");
				goto out;
			}
			hashed++;	/* finalised */
			wse_hex(md, sizeof(md), hex);
			if (strcmp(hex, u->sha256) != 0) {
				rc = cli_fail("%s changed while it was being "
				    "sent; not completing the upload",
				    u->path);
				goto out;
			}
		}
		if (off + len > sent_hi)
			sent_hi = off + len;
		if (upload_call(c, u, off, buf, len, &received, &complete) ==
		    CLI_EXIT_OK) {
			tries = 0;
			if (received > sent_hi) {
				rc = cli_fail("%s: the server claims bytes "
				    "that were never sent", u->path);
				goto out;
			}
			off = received;
			progress(u, off, complete);
			if (complete)
				break;
			if (off == u->size) {
				rc = cli_fail("%s: the server has every byte "
				    "but does not call the upload complete",
				    u->path);
				goto out;
			}
			continue;
		}
		/* A refusal ends the upload; a failed call, or a server
		 * that is busy (TempFail), is tried again. */
		if ((c->last_refused && c->last_fault != WSE_ERR_TEMPFAIL) ||
		    ++tries > RETRIES)
			goto out;
		fprintf(stderr, "%s: retrying (%d of %d)\n", CLI_PROG, tries,
		    RETRIES);
		sleep((unsigned)tries);
		if (u->handle[0] == '\0')
			continue;	/* the first call again */
		/* How much did the server keep? */
		if (upload_call(c, u, off, NULL, 0, &received, &complete) !=
		    CLI_EXIT_OK) {
			if (c->last_refused && c->last_fault != WSE_ERR_TEMPFAIL)
				goto out;
			continue;
		}
		if (received > sent_hi) {
			rc = cli_fail("%s: the server claims bytes that were "
			    "never sent", u->path);
			goto out;
		}
		off = received;
		if (complete)
			break;
	}
	if (!complete || off != u->size) {
		rc = cli_fail("%s: the upload did not complete", u->path);
		goto out;
	}
	rc = CLI_EXIT_OK;
out:
	if (rc != CLI_EXIT_OK && isatty(STDERR_FILENO))
		fputc('\n', stderr);
	EVP_MD_CTX_free(ctx);
	free(buf);
	return rc;
}
