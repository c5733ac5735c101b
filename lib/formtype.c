/*
 * formtype.c - a routed form's type: its signed Lua plugin, fetched,
 * cached, verified and run in the sandbox (see formtype.h).
 *
 * SECURITY: the plugin file, its signature file and everything the
 * plugin returns are untrusted.  A plugin is accepted only when, in this
 * order, the file's SHA-256 is the one the form's signed content names,
 * the signature verifies under one of the caller's own publisher
 * certificates (pubsig.h), and the signed name is the form's type name;
 * then it runs only in a luabox under the caller's limits.  The cache
 * holds only plugins that passed these checks, but it is a directory on
 * disk like any other, so every load from it repeats them.  Cache file
 * names are built from the form's digest after checking that it is 64
 * hex digits, never from anything else in the form.  Results of the
 * plugin are converted strictly (mailboxes validated, text for people
 * cleaned of control characters and bad UTF-8) before the caller sees
 * them.
 */
#include "formtype.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"

#define LABEL_MAX	320		/* "plugin NAME from URL" */
#define LINE_MAX_BYTES	1000		/* one line of present() */
#define SIG_SUFFIX	".sig"

struct wse_formtype {
	wse_luabox *box;
	wse_pubsig_info info;		/* as verified */
};

/* ---- small helpers ---- */

static int
https_url_ok(const char *s)
{
	size_t i, n = s != NULL ? strlen(s) : 0;

	if (n <= 8 || n > WSE_FORM_URL_MAX || strncmp(s, "https://", 8) != 0)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/* A form field name: [A-Za-z][A-Za-z0-9_.-]{0,63}. */
static int
field_name_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > WSE_FORM_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		char c = s[i];
		int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		int digit = c >= '0' && c <= '9';

		if (i == 0 ? !alpha :
		    !(alpha || digit || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* A form type version: [A-Za-z0-9][A-Za-z0-9._-]{0,31}. */
static int
version_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > WSE_FORM_VERSION_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		char c = s[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9');

		if (!(alnum || (i > 0 && (c == '.' || c == '_' || c == '-'))))
			return 0;
	}
	return 1;
}

/* Lower-case copy of a domain into out[WSE_FORM_PARTY_MAX]; 0 when it
 * is not one (checked as the domain part of a mailbox). */
static int
domain_normalize(const char *s, size_t len, char *out)
{
	char probe[WSE_FORM_PARTY_MAX + 2];
	size_t i;

	if (len == 0 || len + 2 >= WSE_FORM_PARTY_MAX || memchr(s, '\0', len))
		return 0;
	for (i = 0; i < len; i++)
		out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) :
		    s[i];
	out[len] = '\0';
	(void)snprintf(probe, sizeof(probe), "x@%s", out);
	return wse_addr_valid(probe);
}

/* Lower-case mailbox into out[WSE_FORM_PARTY_MAX]; 0 when it is not. */
static int
mailbox_normalize(const char *s, size_t len, char *out)
{
	if (len == 0 || len >= WSE_FORM_PARTY_MAX || memchr(s, '\0', len) ||
	    !wse_addr_valid(s))
		return 0;
	if (wse_addr_normalize(s, out, WSE_FORM_PARTY_MAX) != WSE_OK) {
		wse_err_clear();
		return 0;
	}
	return 1;
}

/*
 * Text from a plugin for people, into dst (NUL-terminated when size > 0):
 * valid UTF-8 is kept; TAB becomes a space; other control characters
 * (C0, DEL, C1) and bytes that are not valid UTF-8 become '?'.  A text
 * longer than the room is cut at a character boundary and marked "...".
 * ascii_only: every non-ASCII character becomes '?' too.
 */
static void
clean_text(char *dst, size_t size, const char *src, size_t len,
    int ascii_only)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, o = 0, k, need, clen, olen, reserve;
	uint32_t cp;
	int bad;
	char rep;

	if (size == 0)
		return;
	while (i < len) {
		unsigned char c = s[i];

		need = 0;
		cp = c;
		bad = 0;
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else if (c >= 0x80)
			bad = 1;		/* never a lead byte */
		if (need > 0 && len - i <= need)
			bad = 1;
		for (k = 1; !bad && k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				bad = 1;
			else
				cp = cp << 6 | (s[i + k] & 0x3f);
		}
		/* overlong forms, surrogates, past U+10FFFF */
		if (!bad && need > 0 && ((need == 2 && cp < 0x800) ||
		    (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff)))
			bad = 1;
		clen = bad ? 1 : need + 1;
		rep = '\0';
		/* A C1 control (CSI is U+009B) is one character: one '?'. */
		if (bad || (ascii_only && need > 0) || c == 0x7f ||
		    (need > 0 && cp >= 0x80 && cp <= 0x9f))
			rep = '?';
		else if (c < 0x20)
			rep = c == '\t' ? ' ' : '?';
		olen = rep != '\0' ? 1 : clen;
		/* Room for "..." after anything that is not the end. */
		reserve = i + clen < len && size >= 4 ? 3 : 0;
		if (o + olen + reserve >= size)
			break;
		if (rep != '\0')
			dst[o] = rep;
		else
			memcpy(dst + o, s + i, clen);
		o += olen;
		i += clen;
	}
	if (i < len && size >= 4) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
}

static const char *
vtype(const wse_luabox_value *v)
{
	if (v == NULL)
		return "nothing";
	switch (v->type) {
	case WSE_LUABOX_NIL:
		return "nil";
	case WSE_LUABOX_BOOLEAN:
		return "a boolean";
	case WSE_LUABOX_INTEGER:
		return "an integer";
	case WSE_LUABOX_NUMBER:
		return "a number";
	case WSE_LUABOX_STRING:
		return "a string";
	case WSE_LUABOX_ARRAY:
		return "an array";
	case WSE_LUABOX_MAP:
		return v->n == 0 ? "an empty table" : "a table with keys";
	}
	return "something";
}

/* An empty result: nil, or {} (an empty MAP). */
static int
is_empty(const wse_luabox_value *v)
{
	return v == NULL || v->type == WSE_LUABOX_NIL ||
	    (v->type == WSE_LUABOX_MAP && v->n == 0);
}

/*
 * Push "LABEL: <the newest message>" with status st, dropping a leading
 * "plugin NAME: " from that message (the sandbox's prefix) so that the
 * newest message alone names the plugin, where it came from, and why.
 */
static wse_status
wrap(wse_status st, const char *label, const char *name)
{
	char last[WSE_ERR_MSGLEN], prefix[WSE_PUBSIG_NAME_MAX + 16];
	const char *m;

	(void)snprintf(last, sizeof(last), "%s", wse_err_last());
	(void)snprintf(prefix, sizeof(prefix), "plugin %s: ",
	    name != NULL ? name : "");
	m = last;
	if (name != NULL && strncmp(m, prefix, strlen(prefix)) == 0)
		m += strlen(prefix);
	return wse_err(st, "%s: %s", label, *m != '\0' ? m : "failed");
}

/* ---- verification and loading ---- */

static wse_status
verify_and_load(const wse_formtype_env *env, const char *label,
    const void *file, size_t len, const char *sig, size_t siglen,
    const char *expect_name, const char *expect_sha256, wse_formtype **ft_r)
{
	uint8_t digest[WSE_SHA256_LEN];
	char hex[2 * WSE_SHA256_LEN + 1], who[128];
	wse_pubsig_info info;
	wse_formtype *ft;
	wse_status st;

	if (len > WSE_FORMTYPE_MAX_PLUGIN)
		return wse_err(WSE_ERR_TOO_LARGE, "%s: the plugin file has "
		    "%zu bytes, more than %u", label, len,
		    WSE_FORMTYPE_MAX_PLUGIN);
	if (siglen > WSE_PUBSIG_FILE_MAX)
		return wse_err(WSE_ERR_TOO_LARGE, "%s: the signature file has "
		    "%zu bytes, more than %u", label, siglen,
		    WSE_PUBSIG_FILE_MAX);
	/* 1. The very file the form's signed content names. */
	if (expect_sha256 != NULL) {
		if (!wse_hex_valid(expect_sha256, 2 * WSE_SHA256_LEN))
			return wse_err(WSE_ERR_INVALID, "%s: the expected "
			    "digest is not 64 lower-case hex digits", label);
		if ((st = wse_sha256(file, len, digest)) != WSE_OK)
			return st;
		wse_hex(digest, sizeof(digest), hex);
		if (!wse_ct_equal(hex, expect_sha256, sizeof(hex) - 1))
			return wse_err(WSE_ERR_BAD_SIGNATURE, "%s: the "
			    "plugin's digest is not the one the form names "
			    "(tampered)", label);
	}
	/* 2. Signed by a publisher this party trusts. */
	st = wse_pubsig_verify(file, len, sig, siglen, env->publishers,
	    env->npublishers, env->now, &info);
	/* For messages only: what the file claims, shown safely. */
	clean_text(who, sizeof(who), info.publisher, strlen(info.publisher),
	    1);
	switch (st) {
	case WSE_OK:
		break;
	case WSE_ERR_INVALID:
		return wse_err(st, "%s: %s", label, siglen == 0 ?
		    "unsigned (no signature file)" :
		    "malformed signature file");
	case WSE_ERR_UNSUPPORTED:
		return wse_err(st, "%s: unsupported signature", label);
	case WSE_ERR_UNTRUSTED:
		return wse_err(st, "%s: untrusted publisher %s", label,
		    who[0] != '\0' ? who : "(unknown)");
	case WSE_ERR_CERT_EXPIRED:
		return wse_err(st, "%s: the certificate of publisher %s has "
		    "expired", label, who);
	case WSE_ERR_CERT_NOT_YET_VALID:
		return wse_err(st, "%s: the certificate of publisher %s is "
		    "not valid yet", label, who);
	case WSE_ERR_BAD_SIGNATURE:
		return wse_err(st, "%s: bad signature (the plugin or its "
		    "signature file was tampered with)", label);
	default:
		return wse_err(st, "%s: cannot verify its signature", label);
	}
	/* 3. Signed as this type, not as another plugin of the same
	 * publisher. */
	if (expect_name != NULL && strcmp(info.name, expect_name) != 0)
		return wse_err(WSE_ERR_INVALID, "%s: signed as plugin \"%s\", "
		    "not \"%s\"", label, info.name, expect_name);
	/* 4. Run the chunk, in its own box. */
	if ((ft = calloc(1, sizeof(*ft))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "%s: no memory", label);
	ft->info = info;
	if ((st = wse_luabox_new(file, len, info.name, &env->limits,
	    &ft->box)) != WSE_OK) {
		free(ft);
		return wrap(st, label, info.name);
	}
	*ft_r = ft;
	return WSE_OK;
}

static wse_status
env_ok(const wse_formtype_env *env)
{
	if (env == NULL)
		return wse_err(WSE_ERR_INVALID, "form type: no environment");
	if (env->npublishers > 0 && env->publishers == NULL)
		return wse_err(WSE_ERR_INVALID, "form type: publishers "
		    "missing");
	return WSE_OK;
}

wse_status
wse_formtype_load_bytes(const wse_formtype_env *env, const void *file,
    size_t len, const char *sig, size_t siglen, const char *expect_name,
    const char *expect_sha256, wse_formtype **ft_r)
{
	char label[LABEL_MAX];
	wse_status st;

	if (ft_r == NULL)
		return wse_err(WSE_ERR_INVALID, "form type: bad arguments");
	*ft_r = NULL;
	if ((st = env_ok(env)) != WSE_OK)
		return st;
	if ((file == NULL && len > 0) || (sig == NULL && siglen > 0))
		return wse_err(WSE_ERR_INVALID, "form type: bad arguments");
	if (expect_name != NULL)
		(void)snprintf(label, sizeof(label), "plugin %.64s",
		    expect_name);
	else
		(void)snprintf(label, sizeof(label), "plugin");
	return verify_and_load(env, label, file != NULL ? file : "", len,
	    sig != NULL ? sig : "", siglen, expect_name, expect_sha256, ft_r);
}

/* ---- the cache ---- */

/*
 * Read the regular file name of directory dfd (never through a symbolic
 * link), at most max bytes.  WSE_ERR_NOT_FOUND, without a message, when
 * there is none: a cache miss is not an error.
 */
static wse_status
read_at(int dfd, const char *name, size_t max, wse_buf **out_r)
{
	char chunk[16384];
	struct stat sb;
	wse_buf *b = NULL;
	wse_status st;
	ssize_t r;
	int fd;

	*out_r = NULL;
	if ((fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK | O_NOCTTY)) < 0) {
		if (errno == ENOENT)
			return WSE_ERR_NOT_FOUND;
		return wse_err(WSE_ERR_IO, "%s: %s", name, strerror(errno));
	}
	if (fstat(fd, &sb) != 0) {
		st = wse_err(WSE_ERR_IO, "%s: %s", name, strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		st = wse_err(WSE_ERR_INVALID, "%s: not a regular file", name);
		goto out;
	}
	if ((uint64_t)sb.st_size > max) {
		st = wse_err(WSE_ERR_TOO_LARGE, "%s: more than %zu bytes",
		    name, max);
		goto out;
	}
	if ((b = wse_buf_new(max)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "no memory");
		goto out;
	}
	for (;;) {
		if ((r = read(fd, chunk, sizeof(chunk))) < 0) {
			if (errno == EINTR)
				continue;
			st = wse_err(WSE_ERR_IO, "%s: %s", name,
			    strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		if ((st = wse_buf_put(b, chunk, (size_t)r)) != WSE_OK) {
			st = wse_err(st, "%s: more than %zu bytes", name, max);
			goto out;
		}
	}
	*out_r = b;
	b = NULL;
	st = WSE_OK;
out:
	wse_buf_free(&b);
	close(fd);
	return st;
}

/* Write dir/name atomically: a temporary file in dir, written, made
 * 0644, synced, renamed over name. */
static wse_status
store_file(const char *dir, const char *name, const void *data, size_t len)
{
	char tmp[4096], final[4096];
	const uint8_t *p = data;
	size_t off = 0;
	ssize_t r;
	int fd, n1, n2;

	n1 = snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, name);
	n2 = snprintf(final, sizeof(final), "%s/%s", dir, name);
	if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof(tmp) ||
	    (size_t)n2 >= sizeof(final))
		return wse_err(WSE_ERR_INVALID, "plugin cache: path too long");
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
		return wse_err(WSE_ERR_IO, "plugin cache %s: %s", dir,
		    strerror(errno));
	while (off < len) {
		if ((r = write(fd, p + off, len - off)) < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		off += (size_t)r;
	}
	if (fchmod(fd, 0644) != 0 || fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, final) != 0)
		goto fail;
	return WSE_OK;
fail:
	{
		int e = errno;

		if (fd >= 0)
			close(fd);
		(void)unlink(tmp);
		return wse_err(WSE_ERR_IO, "plugin cache %s: %s", final,
		    strerror(e));
	}
}

/* Keep an accepted plugin: the signature first, the file last, then the
 * directory synced so that both renames are durable. */
static wse_status
cache_store(const char *dir, int dfd, const char *luaname,
    const char *signame, const wse_buf *file, const wse_buf *sig)
{
	wse_status st;

	if ((st = store_file(dir, signame, wse_buf_data(sig),
	    wse_buf_len(sig))) != WSE_OK ||
	    (st = store_file(dir, luaname, wse_buf_data(file),
	    wse_buf_len(file))) != WSE_OK)
		return st;
	if (fsync(dfd) != 0)
		return wse_err(WSE_ERR_IO, "plugin cache %s: %s", dir,
		    strerror(errno));
	return WSE_OK;
}

static wse_status
fetch(const wse_formtype_env *env, const char *label, const char *url,
    size_t max, int missing_ok, wse_buf **out_r)
{
	wse_buf *b;
	wse_status st;
	long status = 0;

	*out_r = NULL;
	if ((b = wse_buf_new(max)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "no memory");
	if ((st = wse_http_get(env->http, url, env->connect_addr, max, b,
	    &status)) != WSE_OK) {
		wse_buf_free(&b);
		return wrap(st, label, NULL);
	}
	if (status == 404 && missing_ok) {
		wse_buf_reset(b);	/* no signature: "unsigned" below */
	} else if (status != 200) {
		wse_buf_free(&b);
		return wse_err(WSE_ERR_TEMPFAIL, "%s: GET %.200s: HTTP status "
		    "%ld", label, url, status);
	}
	*out_r = b;
	return WSE_OK;
}

wse_status
wse_formtype_load(const wse_formtype_env *env, const wse_form_content *content,
    wse_formtype **ft_r)
{
	char label[LABEL_MAX], clabel[LABEL_MAX], sigurl[WSE_FORM_URL_MAX + 8];
	char luaname[2 * WSE_SHA256_LEN + 8], signame[2 * WSE_SHA256_LEN + 16];
	wse_buf *file = NULL, *sig = NULL;
	wse_status st, fst;
	int dfd = -1;

	if (ft_r == NULL)
		return wse_err(WSE_ERR_INVALID, "form type: bad arguments");
	*ft_r = NULL;
	if ((st = env_ok(env)) != WSE_OK)
		return st;
	if (content == NULL || env->cache_dir == NULL ||
	    env->cache_dir[0] == '\0')
		return wse_err(WSE_ERR_INVALID, "form type: a form's content "
		    "and a cache directory are required");
	if (!wse_pubsig_name_ok(content->type_name))
		return wse_err(WSE_ERR_INVALID, "form type: bad type name "
		    "\"%.64s\"", content->type_name);
	if (!https_url_ok(content->plugin_url))
		return wse_err(WSE_ERR_INVALID, "plugin %s: the form's plugin "
		    "URL is not an https URL", content->type_name);
	(void)snprintf(label, sizeof(label), "plugin %s from %.200s",
	    content->type_name, content->plugin_url);
	/* The digest names the cache files: nothing but hex may reach a
	 * path. */
	if (!wse_hex_valid(content->plugin_sha256, 2 * WSE_SHA256_LEN))
		return wse_err(WSE_ERR_INVALID, "%s: the form's plugin digest "
		    "is not 64 lower-case hex digits", label);
	(void)snprintf(luaname, sizeof(luaname), "%s.lua",
	    content->plugin_sha256);
	(void)snprintf(signame, sizeof(signame), "%s.lua%s",
	    content->plugin_sha256, SIG_SUFFIX);
	(void)snprintf(sigurl, sizeof(sigurl), "%s%s", content->plugin_url,
	    SIG_SUFFIX);
	if ((dfd = open(env->cache_dir, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) < 0)
		return wse_err(WSE_ERR_IO, "plugin cache %s: %s",
		    env->cache_dir, strerror(errno));

	/* 1. The cache, verified like a download. */
	fst = read_at(dfd, luaname, WSE_FORMTYPE_MAX_PLUGIN, &file);
	if (fst == WSE_OK)
		fst = read_at(dfd, signame, WSE_PUBSIG_FILE_MAX, &sig);
	if (fst == WSE_OK) {
		(void)snprintf(clabel, sizeof(clabel), "plugin %s, cached copy "
		    "%s", content->type_name, luaname);
		st = verify_and_load(env, clabel, wse_buf_data(file),
		    wse_buf_len(file), wse_buf_str(sig), wse_buf_len(sig),
		    content->type_name, content->plugin_sha256, ft_r);
		if (st == WSE_OK || env->http == NULL)
			goto out;
		/* A copy refused now (altered on disk, a publisher no longer
		 * trusted, re-signed since) is replaced by a download that
		 * passes every check, or the load fails. */
	} else if (fst != WSE_ERR_NOT_FOUND && env->http == NULL) {
		st = wrap(fst, label, NULL);
		goto out;
	}
	wse_buf_free(&file);
	wse_buf_free(&sig);
	if (env->http == NULL) {
		st = wse_err(WSE_ERR_NOT_FOUND, "%s: not in the cache, and "
		    "this party does not fetch plugins", label);
		goto out;
	}

	/* 2. Download both, bounded. */
	if ((st = fetch(env, label, content->plugin_url,
	    WSE_FORMTYPE_MAX_PLUGIN, 0, &file)) != WSE_OK ||
	    (st = fetch(env, label, sigurl, WSE_PUBSIG_FILE_MAX, 1, &sig)) !=
	    WSE_OK)
		goto out;
	/* 3. Every check, then the sandbox. */
	if ((st = verify_and_load(env, label, wse_buf_data(file),
	    wse_buf_len(file), wse_buf_str(sig), wse_buf_len(sig),
	    content->type_name, content->plugin_sha256, ft_r)) != WSE_OK)
		goto out;
	/* 4. Keep it.  A cache that cannot be written costs a download
	 * next time, not this load. */
	(void)cache_store(env->cache_dir, dfd, luaname, signame, file, sig);
	st = WSE_OK;
out:
	wse_buf_free(&file);
	wse_buf_free(&sig);
	close(dfd);
	return st;
}

void
wse_formtype_free(wse_formtype **ftp)
{
	wse_formtype *ft;

	if (ftp == NULL || (ft = *ftp) == NULL)
		return;
	wse_luabox_free(&ft->box);
	free(ft);
	*ftp = NULL;
}

const wse_pubsig_info *
wse_formtype_info(const wse_formtype *ft)
{
	return ft != NULL ? &ft->info : NULL;
}

/* ---- the value handed to the plugin ---- */

#define SET(map, key, val) do {						\
	if ((st = wse_luabox_map_set((map), (key), (val))) != WSE_OK)	\
		goto out;						\
} while (0)
#define PUSH(arr, val) do {						\
	if ((st = wse_luabox_array_push((arr), (val))) != WSE_OK)	\
		goto out;						\
} while (0)
/* A new container put into map under key; p stays a borrowed handle. */
#define NEWIN(map, key, p, ctor) do {					\
	if (((p) = ctor()) == NULL) {					\
		st = wse_err(WSE_ERR_NOMEM, "no memory");		\
		goto out;						\
	}								\
	SET(map, key, p);						\
} while (0)

static wse_luabox_value *
field_value(const wse_form_field *f)
{
	switch (f->type) {
	case WSE_FIELD_DECIMAL:
		return wse_luabox_number(strtod(f->value, NULL));
	case WSE_FIELD_INTEGER:
		return wse_luabox_integer((int64_t)strtoll(f->value, NULL,
		    10));
	default:
		return wse_luabox_str(f->value);
	}
}

wse_status
wse_formtype_form_value(const wse_form *form, const wse_form_report *report,
    const char *party, const char *const *param_keys,
    const char *const *param_values, size_t nparams, wse_luabox_value **v_r)
{
	const wse_form_content *c;
	const wse_form_hop *hops;
	wse_form_state_info state;
	wse_luabox_value *v = NULL, *fields, *text, *route, *apps, *params,
	    *item;
	size_t i, nhops;
	wse_status st;

	if (v_r == NULL)
		return wse_err(WSE_ERR_INVALID, "form value: bad arguments");
	*v_r = NULL;
	if (nparams > WSE_FORMTYPE_MAX_PARAMS)
		return wse_err(WSE_ERR_TOO_LARGE, "form value: %zu parameters, "
		    "at most %d", nparams, WSE_FORMTYPE_MAX_PARAMS);
	if (nparams > 0 && (param_keys == NULL || param_values == NULL))
		return wse_err(WSE_ERR_INVALID, "form value: parameters "
		    "missing");
	for (i = 0; i < nparams; i++)
		if (param_keys[i] == NULL || param_keys[i][0] == '\0' ||
		    param_values[i] == NULL)
			return wse_err(WSE_ERR_INVALID, "form value: parameter "
			    "%zu has no key or no value", i + 1);
	if ((c = wse_form_content_get(form)) == NULL)
		return wse_err(WSE_ERR_INVALID, "form value: the form has not "
		    "been verified");
	if ((st = wse_form_state(form, &state)) != WSE_OK ||
	    (st = wse_form_route(form, &hops, &nhops)) != WSE_OK)
		return st;

	if ((v = wse_luabox_map()) == NULL)
		return wse_err(WSE_ERR_NOMEM, "no memory");
	SET(v, "id", wse_luabox_str(c->id));
	SET(v, "type", wse_luabox_str(c->type_name));
	SET(v, "version", wse_luabox_str(c->type_version));
	SET(v, "claimant", wse_luabox_str(c->claimant));
	SET(v, "final", wse_luabox_str(c->final_party));
	SET(v, "submitted", wse_luabox_integer(c->submitted));
	NEWIN(v, "fields", fields, wse_luabox_map);
	NEWIN(v, "text", text, wse_luabox_map);
	for (i = 0; i < c->nfields; i++) {
		SET(fields, c->fields[i].name, field_value(&c->fields[i]));
		SET(text, c->fields[i].name,
		    wse_luabox_str(c->fields[i].value));
	}
	NEWIN(v, "route", route, wse_luabox_array);
	for (i = 0; i < nhops; i++) {
		if ((item = wse_luabox_map()) == NULL) {
			st = wse_err(WSE_ERR_NOMEM, "no memory");
			goto out;
		}
		PUSH(route, item);
		SET(item, "kind", wse_luabox_str(hops[i].kind ==
		    WSE_HOP_ROUTER ? "router" : "approver"));
		SET(item, "name", wse_luabox_str(hops[i].name));
	}
	NEWIN(v, "approvals", apps, wse_luabox_array);
	for (i = 0; report != NULL && i < report->napprovals; i++) {
		const wse_form_approval *a = &report->approvals[i];

		if ((item = wse_luabox_map()) == NULL) {
			st = wse_err(WSE_ERR_NOMEM, "no memory");
			goto out;
		}
		PUSH(apps, item);
		SET(item, "approver", wse_luabox_str(a->approver));
		SET(item, "signer", wse_luabox_str(a->signer));
		SET(item, "position", wse_luabox_integer((int64_t)a->position));
		SET(item, "time", wse_luabox_integer(a->time));
	}
	SET(v, "outcome", wse_luabox_str(wse_form_outcome_name(
	    state.outcome)));
	if (party != NULL)
		SET(v, "party", wse_luabox_str(party));
	NEWIN(v, "params", params, wse_luabox_map);
	for (i = 0; i < nparams; i++)
		SET(params, param_keys[i], wse_luabox_str(param_values[i]));
	*v_r = v;
	v = NULL;
	st = WSE_OK;
out:
	wse_luabox_value_free(&v);
	return st;
}

/* ---- entry points ---- */

void
wse_formtype_strings_free(char ***vp, size_t n)
{
	size_t i;

	if (vp == NULL || *vp == NULL)
		return;
	for (i = 0; i < n; i++)
		free((*vp)[i]);
	free(*vp);
	*vp = NULL;
}

wse_status
wse_formtype_route(wse_formtype *ft, const wse_luabox_value *form,
    char ***approvers_r, size_t *n_r)
{
	char mbox[WSE_FORM_PARTY_MAX];
	wse_luabox_value *r = NULL;
	char **v = NULL;
	size_t i, j, n = 0;
	wse_status st;

	if (approvers_r == NULL || n_r == NULL)
		return wse_err(WSE_ERR_INVALID, "route: bad arguments");
	*approvers_r = NULL;
	*n_r = 0;
	if (ft == NULL || form == NULL)
		return wse_err(WSE_ERR_INVALID, "route: bad arguments");
	if ((st = wse_luabox_call(ft->box, "route", form, &r)) != WSE_OK)
		return st;
	if (is_empty(r)) {
		st = WSE_OK;
		goto out;
	}
	if (r->type != WSE_LUABOX_ARRAY) {
		st = wse_err(WSE_ERR_INVALID, "plugin %s: route() returned %s, "
		    "not an array of mailboxes", ft->info.name, vtype(r));
		goto out;
	}
	if (r->n > WSE_FORM_MAX_HOPS) {
		st = wse_err(WSE_ERR_INVALID, "plugin %s: route() returned %zu "
		    "approvers, at most %d", ft->info.name, r->n,
		    WSE_FORM_MAX_HOPS);
		goto out;
	}
	if ((v = calloc(r->n, sizeof(*v))) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "no memory");
		goto out;
	}
	for (i = 0; i < r->n; i++) {
		const wse_luabox_value *e = r->items[i];
		char shown[80];

		if (e->type != WSE_LUABOX_STRING) {
			st = wse_err(WSE_ERR_INVALID, "plugin %s: route() "
			    "entry %zu is %s, not a mailbox", ft->info.name,
			    i + 1, vtype(e));
			goto out;
		}
		if (!mailbox_normalize(e->str, e->len, mbox)) {
			clean_text(shown, sizeof(shown), e->str, e->len, 1);
			st = wse_err(WSE_ERR_INVALID, "plugin %s: route() "
			    "entry %zu, \"%s\", is not a mailbox",
			    ft->info.name, i + 1, shown);
			goto out;
		}
		for (j = 0; j < n; j++)
			if (strcmp(v[j], mbox) == 0) {
				st = wse_err(WSE_ERR_INVALID, "plugin %s: "
				    "route() names %s twice", ft->info.name,
				    mbox);
				goto out;
			}
		if ((v[n] = strdup(mbox)) == NULL) {
			st = wse_err(WSE_ERR_NOMEM, "no memory");
			goto out;
		}
		n++;
	}
	*approvers_r = v;
	*n_r = n;
	v = NULL;
	st = WSE_OK;
out:
	wse_formtype_strings_free(&v, n);
	wse_luabox_value_free(&r);
	return st;
}

wse_status
wse_formtype_check(wse_formtype *ft, const wse_luabox_value *form,
    char *reason, size_t size)
{
	wse_luabox_value *r = NULL;
	char why[WSE_ERR_MSGLEN];
	wse_status st;

	if (reason != NULL && size > 0)
		reason[0] = '\0';
	if (ft == NULL || form == NULL)
		return wse_err(WSE_ERR_INVALID, "check: bad arguments");
	if ((st = wse_luabox_call(ft->box, "check", form, &r)) != WSE_OK) {
		if (reason != NULL && size > 0)
			clean_text(reason, size, wse_err_last(),
			    strlen(wse_err_last()), 1);
		return st;
	}
	if (r == NULL)
		return wse_err(WSE_ERR_INTERNAL, "check: no result");
	if (r->type == WSE_LUABOX_BOOLEAN && r->boolean) {
		st = WSE_OK;
		goto out;
	}
	if (r->type == WSE_LUABOX_BOOLEAN || (r->type == WSE_LUABOX_STRING &&
	    r->len == 0))
		(void)snprintf(why, sizeof(why), "the form type's check "
		    "refused the form (no reason given)");
	else if (r->type == WSE_LUABOX_STRING)
		clean_text(why, 200, r->str, r->len, 1);
	else {
		st = wse_err(WSE_ERR_INVALID, "plugin %s: check() returned %s, "
		    "not true or a reason", ft->info.name, vtype(r));
		if (reason != NULL && size > 0)
			clean_text(reason, size, wse_err_last(),
			    strlen(wse_err_last()), 1);
		goto out;
	}
	if (reason != NULL && size > 0)
		clean_text(reason, size, why, strlen(why), 1);
	st = wse_err(WSE_ERR_NOT_AUTHORIZED, "plugin %s: check() refused the "
	    "form: %s", ft->info.name, why);
out:
	wse_luabox_value_free(&r);
	return st;
}

/* One cleaned line and its newline. */
static wse_status
put_line(wse_buf *b, const char *s, size_t len)
{
	char line[LINE_MAX_BYTES + 1];
	wse_status st;

	clean_text(line, sizeof(line), s, len, 0);
	if ((st = wse_buf_puts(b, line)) != WSE_OK ||
	    (st = wse_buf_put(b, "\n", 1)) != WSE_OK)
		return st;
	return WSE_OK;
}

static const char *
mstr(const wse_luabox_value *map, const char *key)
{
	const wse_luabox_value *v = wse_luabox_map_get(map, key);

	return v != NULL && v->type == WSE_LUABOX_STRING ? v->str : "?";
}

/* Without present(): the type, the claimant and every field's text. */
static wse_status
present_generic(const wse_luabox_value *form, wse_buf *b)
{
	const wse_luabox_value *text = wse_luabox_map_get(form, "text");
	char line[LINE_MAX_BYTES + 1];
	wse_status st;
	size_t i;
	int n;

	n = snprintf(line, sizeof(line), "%s form %s (version %s)",
	    mstr(form, "type"), mstr(form, "id"), mstr(form, "version"));
	if ((st = put_line(b, line, (size_t)n < sizeof(line) ? (size_t)n :
	    sizeof(line) - 1)) != WSE_OK)
		return st;
	n = snprintf(line, sizeof(line), "claimant: %s; outcome: %s",
	    mstr(form, "claimant"), mstr(form, "outcome"));
	if ((st = put_line(b, line, (size_t)n < sizeof(line) ? (size_t)n :
	    sizeof(line) - 1)) != WSE_OK)
		return st;
	for (i = 0; text != NULL && text->type == WSE_LUABOX_MAP &&
	    i < text->n; i++) {
		const wse_luabox_value *t = text->items[i];

		if (t->type != WSE_LUABOX_STRING)
			continue;
		n = snprintf(line, sizeof(line), "%s: %s", text->keys[i],
		    t->str);
		if ((st = put_line(b, line, (size_t)n < sizeof(line) ?
		    (size_t)n : sizeof(line) - 1)) != WSE_OK)
			return st;
	}
	return WSE_OK;
}

wse_status
wse_formtype_present(wse_formtype *ft, const wse_luabox_value *form,
    wse_buf *out)
{
	wse_luabox_value *r = NULL;
	wse_buf *b = NULL;
	wse_status st;
	size_t i;

	if (ft == NULL || form == NULL || out == NULL)
		return wse_err(WSE_ERR_INVALID, "present: bad arguments");
	/* Lines go to a scratch buffer first: out gets all or nothing. */
	if ((b = wse_buf_new(wse_buf_max(out))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "no memory");
	if (!wse_luabox_has(ft->box, "present")) {
		if ((st = present_generic(form, b)) != WSE_OK)
			goto out;
	} else {
		if ((st = wse_luabox_call(ft->box, "present", form, &r)) !=
		    WSE_OK)
			goto out;
		if (r == NULL) {
			st = wse_err(WSE_ERR_INTERNAL, "present: no result");
			goto out;
		}
		if (!is_empty(r) && r->type != WSE_LUABOX_ARRAY) {
			st = wse_err(WSE_ERR_INVALID, "plugin %s: present() "
			    "returned %s, not an array of lines",
			    ft->info.name, vtype(r));
			goto out;
		}
		if (r->type == WSE_LUABOX_ARRAY &&
		    r->n > WSE_FORMTYPE_MAX_LINES) {
			st = wse_err(WSE_ERR_INVALID, "plugin %s: present() "
			    "returned %zu lines, at most %d", ft->info.name,
			    r->n, WSE_FORMTYPE_MAX_LINES);
			goto out;
		}
		for (i = 0; r->type == WSE_LUABOX_ARRAY && i < r->n; i++) {
			const wse_luabox_value *e = r->items[i];

			if (e->type != WSE_LUABOX_STRING) {
				st = wse_err(WSE_ERR_INVALID, "plugin %s: "
				    "present() line %zu is %s, not a string",
				    ft->info.name, i + 1, vtype(e));
				goto out;
			}
			if ((st = put_line(b, e->str, e->len)) != WSE_OK)
				goto out;
		}
	}
	st = wse_buf_put(out, wse_buf_data(b), wse_buf_len(b));
out:
	wse_luabox_value_free(&r);
	wse_buf_free(&b);
	return st;
}

/* ---- definition() ---- */

static wse_status
def_field(const char *pname, size_t i, const wse_luabox_value *e,
    wse_formtype_fielddef *fd)
{
	const wse_luabox_value *name, *type, *label, *req;
	static const struct {
		const char *name;
		wse_form_ftype type;
	} types[] = {
		{ "text", WSE_FIELD_TEXT },
		{ "decimal", WSE_FIELD_DECIMAL },
		{ "integer", WSE_FIELD_INTEGER },
		{ "date", WSE_FIELD_DATE },
		{ "mailbox", WSE_FIELD_MAILBOX },
	};
	size_t k;

	if (e->type != WSE_LUABOX_MAP)
		return wse_err(WSE_ERR_INVALID, "plugin %s: definition(): "
		    "field %zu is %s, not a table", pname, i + 1, vtype(e));
	name = wse_luabox_map_get(e, "name");
	if (name == NULL || name->type != WSE_LUABOX_STRING ||
	    !field_name_ok(name->str, name->len))
		return wse_err(WSE_ERR_INVALID, "plugin %s: definition(): "
		    "field %zu has no valid name ([A-Za-z][A-Za-z0-9_.-], at "
		    "most %d)", pname, i + 1, WSE_FORM_NAME_MAX);
	memcpy(fd->name, name->str, name->len + 1);
	type = wse_luabox_map_get(e, "type");
	for (k = 0; type != NULL && type->type == WSE_LUABOX_STRING &&
	    k < sizeof(types) / sizeof(types[0]); k++)
		if (strcmp(type->str, types[k].name) == 0)
			break;
	if (type == NULL || type->type != WSE_LUABOX_STRING ||
	    k == sizeof(types) / sizeof(types[0]))
		return wse_err(WSE_ERR_INVALID, "plugin %s: definition(): "
		    "field %s has no valid type (text, decimal, integer, date "
		    "or mailbox)", pname, fd->name);
	fd->type = types[k].type;
	label = wse_luabox_map_get(e, "label");
	if (label != NULL && label->type != WSE_LUABOX_STRING)
		return wse_err(WSE_ERR_INVALID, "plugin %s: definition(): the "
		    "label of field %s is %s, not a string", pname, fd->name,
		    vtype(label));
	if (label != NULL)
		clean_text(fd->label, sizeof(fd->label), label->str,
		    label->len, 0);
	req = wse_luabox_map_get(e, "required");
	if (req != NULL && req->type != WSE_LUABOX_BOOLEAN)
		return wse_err(WSE_ERR_INVALID, "plugin %s: definition(): "
		    "\"required\" of field %s is %s, not a boolean", pname,
		    fd->name, vtype(req));
	fd->required = req != NULL && req->boolean;
	return WSE_OK;
}

wse_status
wse_formtype_definition(wse_formtype *ft, wse_formtype_def *def)
{
	const wse_luabox_value *name, *version, *title, *fields, *route,
	    *final;
	wse_luabox_value *r = NULL;
	const char *pname;
	wse_status st;
	size_t i, j;

	if (def == NULL)
		return wse_err(WSE_ERR_INVALID, "definition: bad arguments");
	memset(def, 0, sizeof(*def));
	if (ft == NULL)
		return wse_err(WSE_ERR_INVALID, "definition: bad arguments");
	pname = ft->info.name;
	if ((st = wse_luabox_call(ft->box, "definition", NULL, &r)) != WSE_OK)
		return st;
	if (r == NULL || r->type != WSE_LUABOX_MAP) {
		st = wse_err(WSE_ERR_INVALID, "plugin %s: definition() "
		    "returned %s, not a table", pname, vtype(r));
		goto out;
	}
	name = wse_luabox_map_get(r, "name");
	if (name == NULL || name->type != WSE_LUABOX_STRING ||
	    strcmp(name->str, pname) != 0 || name->len != strlen(pname)) {
		st = wse_err(WSE_ERR_INVALID, "plugin %s: definition() must "
		    "name the type it was signed as, \"%s\"", pname, pname);
		goto out;
	}
	memcpy(def->name, name->str, name->len + 1);
	version = wse_luabox_map_get(r, "version");
	if (version == NULL || version->type != WSE_LUABOX_STRING ||
	    !version_ok(version->str, version->len)) {
		st = wse_err(WSE_ERR_INVALID, "plugin %s: definition() has no "
		    "valid version ([A-Za-z0-9][A-Za-z0-9._-], at most %d)",
		    pname, WSE_FORM_VERSION_MAX);
		goto out;
	}
	memcpy(def->version, version->str, version->len + 1);
	title = wse_luabox_map_get(r, "title");
	if (title != NULL && title->type != WSE_LUABOX_STRING) {
		st = wse_err(WSE_ERR_INVALID, "plugin %s: definition(): the "
		    "title is %s, not a string", pname, vtype(title));
		goto out;
	}
	if (title != NULL)
		clean_text(def->title, sizeof(def->title), title->str,
		    title->len, 0);

	fields = wse_luabox_map_get(r, "fields");
	if (fields != NULL && !is_empty(fields)) {
		if (fields->type != WSE_LUABOX_ARRAY) {
			st = wse_err(WSE_ERR_INVALID, "plugin %s: "
			    "definition(): fields is %s, not an array", pname,
			    vtype(fields));
			goto out;
		}
		if (fields->n > WSE_FORM_MAX_FIELDS) {
			st = wse_err(WSE_ERR_INVALID, "plugin %s: "
			    "definition(): %zu fields, at most %d", pname,
			    fields->n, WSE_FORM_MAX_FIELDS);
			goto out;
		}
		if ((def->fields = calloc(fields->n,
		    sizeof(*def->fields))) == NULL) {
			st = wse_err(WSE_ERR_NOMEM, "no memory");
			goto out;
		}
		for (i = 0; i < fields->n; i++) {
			if ((st = def_field(pname, i, fields->items[i],
			    &def->fields[i])) != WSE_OK)
				goto out;
			for (j = 0; j < i; j++)
				if (strcmp(def->fields[j].name,
				    def->fields[i].name) == 0) {
					st = wse_err(WSE_ERR_INVALID, "plugin "
					    "%s: definition(): field %s twice",
					    pname, def->fields[i].name);
					goto out;
				}
			def->nfields = i + 1;
		}
	}

	route = wse_luabox_map_get(r, "route");
	if (route != NULL && !is_empty(route)) {
		if (route->type != WSE_LUABOX_ARRAY ||
		    route->n > WSE_FORM_MAX_HOPS) {
			st = wse_err(WSE_ERR_INVALID, "plugin %s: "
			    "definition(): route is %s, not an array of at "
			    "most %d hops", pname, vtype(route),
			    WSE_FORM_MAX_HOPS);
			goto out;
		}
		if ((def->route = calloc(route->n,
		    sizeof(*def->route))) == NULL) {
			st = wse_err(WSE_ERR_NOMEM, "no memory");
			goto out;
		}
		for (i = 0; i < route->n; i++) {
			const wse_luabox_value *h = route->items[i];
			wse_form_hop *hop = &def->route[i];
			int ok;

			if (h->type != WSE_LUABOX_STRING)
				ok = 0;
			else if (memchr(h->str, '@', h->len) != NULL) {
				hop->kind = WSE_HOP_APPROVER;
				ok = mailbox_normalize(h->str, h->len,
				    hop->name);
			} else {
				hop->kind = WSE_HOP_ROUTER;
				ok = domain_normalize(h->str, h->len,
				    hop->name);
			}
			if (!ok) {
				st = wse_err(WSE_ERR_INVALID, "plugin %s: "
				    "definition(): route hop %zu is not a "
				    "domain or a mailbox", pname, i + 1);
				goto out;
			}
			def->nroute = i + 1;
		}
	}

	final = wse_luabox_map_get(r, "final");
	if (final != NULL && !is_empty(final) &&
	    (final->type != WSE_LUABOX_STRING ||
	    !domain_normalize(final->str, final->len, def->final_party))) {
		st = wse_err(WSE_ERR_INVALID, "plugin %s: definition(): final "
		    "is not a domain", pname);
		goto out;
	}
	st = WSE_OK;
out:
	if (st != WSE_OK)
		wse_formtype_def_clear(def);
	wse_luabox_value_free(&r);
	return st;
}

void
wse_formtype_def_clear(wse_formtype_def *def)
{
	if (def == NULL)
		return;
	free(def->fields);
	free(def->route);
	memset(def, 0, sizeof(*def));
}

/* ---- carriage ---- */

wse_status
wse_formtype_next_address(const wse_form *form, const char *forms_local,
    char *out, size_t size)
{
	const wse_form_content *c;
	wse_form_state_info s;
	const char *addr = NULL;
	char tmp[WSE_ADDR_MAX + 2], buf[WSE_ADDR_MAX + 2];
	wse_status st;
	int n;

	if (out != NULL && size > 0)
		out[0] = '\0';
	if (form == NULL || out == NULL || size == 0)
		return wse_err(WSE_ERR_INVALID, "next address: bad arguments");
	if (forms_local == NULL)
		forms_local = WSE_FORM_MAILBOX;
	if ((st = wse_form_state(form, &s)) != WSE_OK)
		return st;
	switch (s.phase) {
	case WSE_FORM_DRAFT:
		return wse_err(WSE_ERR_INVALID, "next address: a draft goes "
		    "nowhere before it is signed");
	case WSE_FORM_ROUTER:
	case WSE_FORM_FINAL:
		n = snprintf(tmp, sizeof(tmp), "%s@%s", forms_local,
		    s.party != NULL ? s.party : "");
		if (n < 0 || (size_t)n >= sizeof(tmp) || !wse_addr_valid(tmp) ||
		    wse_addr_normalize(tmp, buf, sizeof(buf)) != WSE_OK)
			return wse_err(WSE_ERR_INVALID, "next address: "
			    "\"%.64s@%.80s\" is not a mailbox", forms_local,
			    s.party != NULL ? s.party : "");
		addr = buf;
		break;
	case WSE_FORM_APPROVER:
		addr = s.party;
		break;
	case WSE_FORM_CLOSED:
		if ((c = wse_form_content_get(form)) == NULL)
			return wse_err(WSE_ERR_INVALID, "next address: the "
			    "form has not been verified");
		addr = c->claimant;
		break;
	}
	if (addr == NULL || *addr == '\0')
		return wse_err(WSE_ERR_INTERNAL, "next address: nobody acts "
		    "next");
	if (strlen(addr) >= size)
		return wse_err(WSE_ERR_TOO_LARGE, "next address: %zu bytes of "
		    "room for %s", size, addr);
	memcpy(out, addr, strlen(addr) + 1);
	return WSE_OK;
}

const struct wse_attachment *
wse_formtype_find_attachment(const wse_msg *m)
{
	size_t i;

	if (m == NULL)
		return NULL;
	for (i = 0; i < m->natt; i++)
		if (m->att[i].type != NULL &&
		    strcasecmp(m->att[i].type, WSE_FORM_MEDIA_TYPE) == 0)
			return &m->att[i];
	return NULL;
}
