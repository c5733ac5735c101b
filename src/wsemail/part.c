/*
 * part.c - a resumable download of an on-demand attachment: DIR/NAME.part.
 *
 * The streamed bytes are not signed; only the SHA-256 in the sender's
 * server's signed message is.  So the bytes go to NAME.part (created 0600,
 * never through a symbolic link, never a file with other links), the
 * digest runs over everything the part holds (a resumed download first
 * hashes what it already has), and only a matching digest turns the part
 * into NAME -- by a rename that never replaces an existing file.  A
 * mismatch deletes the part.  Nothing beyond the signed size is written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "crypto.h"
#include "wsemail.h"

#define HASH_BUF (1024u * 1024)

static int
write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	ssize_t w;

	while (len > 0) {
		w = write(fd, p, len);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Hash the first p->have bytes of the part (as they are on disk). */
static wse_status
hash_existing(struct cli_part *p, uint64_t len)
{
	uint8_t *buf;
	uint64_t done = 0;
	ssize_t r;

	if ((buf = malloc(HASH_BUF)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "out of memory");
	while (done < len) {
		size_t want = len - done < HASH_BUF ? (size_t)(len - done) :
		    HASH_BUF;

		r = pread(p->fd, buf, want, (off_t)done);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;	/* shorter than fstat said: keep what we read */
		if (EVP_DigestUpdate(p->sha, buf, (size_t)r) != 1) {
			free(buf);
			return wse_err(WSE_ERR_CRYPTO, "SHA-256");
		}
		done += (uint64_t)r;
	}
	free(buf);
	if (done < len && ftruncate(p->fd, (off_t)done) == -1)
		return wse_err(WSE_ERR_IO, "%s: %s", p->part, strerror(errno));
	p->have = done;
	return WSE_OK;
}

int
cli_part_open(struct cli_part *p, int dfd, const char *name, uint64_t size)
{
	struct stat sb;
	wse_status st;

	memset(p, 0, sizeof(*p));
	p->fd = -1;
	p->dfd = dfd;
	p->size = size;
	if (!cli_safe_name(name) ||
	    (size_t)snprintf(p->name, sizeof(p->name), "%s", name) >=
	    sizeof(p->name) ||
	    (size_t)snprintf(p->part, sizeof(p->part), "%s.part", name) >=
	    sizeof(p->part)) {
		wse_err(WSE_ERR_INVALID, "unsafe file name");
		return -1;
	}
	p->fd = openat(dfd, p->part, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC | O_NOCTTY, 0600);
	if (p->fd != -1)
		p->created = 1;
	else if (errno == EEXIST)
		p->fd = openat(dfd, p->part, O_RDWR | O_NOFOLLOW | O_CLOEXEC |
		    O_NOCTTY);
	if (p->fd == -1) {
		wse_err(WSE_ERR_IO, "%s: %s", p->part, strerror(errno));
		return -1;
	}
	if (fstat(p->fd, &sb) == -1) {
		wse_err(WSE_ERR_IO, "%s: %s", p->part, strerror(errno));
		goto fail;
	}
	/* Only a plain file of ours that no other name shares. */
	if (!S_ISREG(sb.st_mode) || sb.st_uid != geteuid() ||
	    sb.st_nlink != 1) {
		wse_err(WSE_ERR_IO, "%s is not a plain file of ours (a "
		    "link?); remove it", p->part);
		goto fail;
	}
	if ((p->sha = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(p->sha, EVP_sha256(), NULL) != 1) {
		wse_err(WSE_ERR_NOMEM, "out of memory");
		goto fail;
	}
	if ((uint64_t)sb.st_size > size) {
		/* Not a prefix of this attachment: start over. */
		if (ftruncate(p->fd, 0) == -1) {
			wse_err(WSE_ERR_IO, "%s: %s", p->part, strerror(errno));
			goto fail;
		}
		sb.st_size = 0;
	}
	if ((st = hash_existing(p, (uint64_t)sb.st_size)) != WSE_OK)
		goto fail;
	if (lseek(p->fd, (off_t)p->have, SEEK_SET) == -1) {
		wse_err(WSE_ERR_IO, "%s: %s", p->part, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	cli_part_close(p);
	return -1;
}

int
cli_part_sink(void *arg, const void *data, size_t len)
{
	struct cli_part *p = arg;
	uint64_t room = p->size - p->have;
	size_t n = (uint64_t)len > room ? (size_t)room : len;

	if (n > 0) {
		if (write_all(p->fd, data, n) != 0) {
			wse_err(WSE_ERR_IO, "%s: %s", p->part,
			    strerror(errno));
			return -1;
		}
		if (EVP_DigestUpdate(p->sha, data, n) != 1) {
			wse_err(WSE_ERR_CRYPTO, "SHA-256");
			return -1;
		}
		p->have += n;
		p->got += n;
	}
	if (n < len) {
		p->overflow = 1;
		wse_err(WSE_ERR_TOO_LARGE, "the server sent more than the "
		    "signed size of %llu bytes", (unsigned long long)p->size);
		return -1;
	}
	return 0;
}

/* Rename part to name, never over an existing file. */
static int
rename_noreplace(int dfd, const char *from, const char *to)
{
	if (renameat2(dfd, from, dfd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* A file system without RENAME_NOREPLACE: link, then unlink. */
	if (linkat(dfd, from, dfd, to, 0) == -1)
		return -1;
	(void)unlinkat(dfd, from, 0);
	return 0;
}

wse_status
cli_part_finish(struct cli_part *p, const char *sha256_hex)
{
	uint8_t md[WSE_SHA256_LEN];
	char hex[2 * WSE_SHA256_LEN + 1];
	unsigned mdlen = 0;

	if (p->have != p->size)
		return wse_err(WSE_ERR_INVALID, "%s holds %llu of %llu bytes",
		    p->part, (unsigned long long)p->have,
		    (unsigned long long)p->size);
	if (EVP_DigestFinal_ex(p->sha, md, &mdlen) != 1 ||
	    mdlen != sizeof(md))
		return wse_err(WSE_ERR_CRYPTO, "SHA-256");
	/* The context is finished: a second call starts afresh. */
	(void)EVP_DigestInit_ex(p->sha, EVP_sha256(), NULL);
	wse_hex(md, sizeof(md), hex);
	if (strcmp(hex, sha256_hex) != 0) {
		cli_part_discard(p);
		return wse_err(WSE_ERR_BAD_SIGNATURE, "SHA-256 does not match "
		    "the signed digest");
	}
	if (fsync(p->fd) == -1)
		return wse_err(WSE_ERR_IO, "%s: %s", p->part, strerror(errno));
	if (rename_noreplace(p->dfd, p->part, p->name) == -1) {
		if (errno == EEXIST)
			return wse_err(WSE_ERR_EXISTS, "%s exists already; "
			    "the verified bytes stay in %s", p->name,
			    p->part);
		return wse_err(WSE_ERR_IO, "%s: %s", p->name,
		    strerror(errno));
	}
	p->created = 0;	/* it is NAME now */
	(void)fsync(p->dfd);
	return WSE_OK;
}

void
cli_part_discard(struct cli_part *p)
{
	if (p->fd != -1)
		(void)unlinkat(p->dfd, p->part, 0);
	p->created = 0;
	cli_part_close(p);
}

void
cli_part_close(struct cli_part *p)
{
	struct stat sb;

	if (p->fd != -1 && p->created && p->have == 0 &&
	    fstat(p->fd, &sb) == 0 && sb.st_size == 0)
		(void)unlinkat(p->dfd, p->part, 0);
	if (p->fd != -1)
		close(p->fd);
	p->fd = -1;
	EVP_MD_CTX_free(p->sha);
	p->sha = NULL;
}
