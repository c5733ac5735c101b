/*
 * store.c - the store front end: URI to driver, argument validation and
 * canonical names, sealing of derived keys; everything else is the
 * driver's (store-private.h).
 *
 * SECURITY: the callers pass names that came off the network.  Every name
 * is checked here (1..255 bytes of valid UTF-8, no control characters;
 * mailboxes "local@domain" without white space, folded to lower case), so
 * drivers store only canonical, bounded values.  Users' derived keys are
 * password-equivalent: they are sealed here with AES-256-GCM under the
 * seal key, bound to the user name, and a driver only ever sees the
 * sealed bytes.
 */
#include "store-private.h"

#include <stdlib.h>
#include <string.h>

static const struct wse_store_driver *const drivers[] = {
	&wse_store_driver_sqlite,
	NULL,
};

/* What the seal-check value of a database opens to. */
static const char seal_check_plain[] = "wsemail seal check 1";

/* ---- names ---- */

#define NAME_MAX_BYTES (WSE_STORE_NAME_MAX - 1)

/* 1 when s[0..n-1] is valid UTF-8 (no overlongs, no surrogates). */
static int
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0, k, len;
	uint32_t cp, min;

	while (i < n) {
		unsigned char c = s[i];

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2; cp = c & 0x1f; min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3; cp = c & 0x0f; min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4; cp = c & 0x07; min = 0x10000;
		} else
			return 0;
		if (n - i < len)
			return 0;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

/*
 * Check text of at most max bytes (min_len .. max): valid UTF-8 and no
 * control characters (tab allowed when allow_tab).  *len_r gets its
 * length.
 */
static wse_status
check_text(const char *what, const char *s, size_t min_len, size_t max,
    int allow_tab, size_t *len_r)
{
	size_t n, i;

	if (s == NULL)
		return wse_err(WSE_ERR_INVALID, "store: no %s", what);
	n = strnlen(s, max + 1);
	if (n < min_len)
		return wse_err(WSE_ERR_INVALID, "store: empty %s", what);
	if (n > max)
		return wse_err(WSE_ERR_INVALID,
		    "store: %s longer than %zu bytes", what, max);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && !(allow_tab && c == '\t')) || c == 0x7f)
			return wse_err(WSE_ERR_INVALID,
			    "store: control character 0x%02x in %s", c, what);
	}
	if (!utf8_valid((const unsigned char *)s, n))
		return wse_err(WSE_ERR_INVALID, "store: %s is not UTF-8", what);
	if (len_r != NULL)
		*len_r = n;
	return WSE_OK;
}

/* An opaque identifier (message id, replay id): 1..255 bytes. */
static wse_status
check_name(const char *what, const char *s)
{
	return check_text(what, s, 1, NAME_MAX_BYTES, 0, NULL);
}

/* A replay identifier: 1..256 bytes, as replay.h allows. */
static wse_status
check_replay_id(const char *s)
{
	return check_text("replay id", s, 1, WSE_STORE_NAME_MAX, 0, NULL);
}

static void
lower_copy(char *out, const char *in, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char c = in[i];

		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	out[n] = '\0';
}

/*
 * Display text (a subject, an error reason) is kept, never refused: at
 * most size - 1 bytes of src, cut on a character boundary, control
 * characters other than tab made blanks, and when the rest is not UTF-8
 * every non-ASCII byte made '?'.  src may be NULL (empty).
 */
static void
sanitize_text(char *dst, size_t size, const char *src)
{
	size_t n = 0, i;

	if (src != NULL) {
		n = strnlen(src, size - 1);
		if (n == size - 1)
			while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
				n--;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = ((c < 0x20 && c != '\t') || c == 0x7f) ? ' ' :
		    (char)c;
	}
	dst[n] = '\0';
	if (!utf8_valid((const unsigned char *)dst, n))
		for (i = 0; i < n; i++)
			if ((unsigned char)dst[i] >= 0x80)
				dst[i] = '?';
}

/* A domain: 1..255 bytes, no white space, no '@', lower-cased into out. */
static wse_status
canon_domain(const char *what, const char *in, char out[WSE_STORE_NAME_MAX])
{
	size_t n, i;
	wse_status st;

	if ((st = check_text(what, in, 1, NAME_MAX_BYTES, 0, &n)) != WSE_OK)
		return st;
	for (i = 0; i < n; i++)
		if (in[i] == ' ' || in[i] == '@')
			return wse_err(WSE_ERR_INVALID,
			    "store: %s is not a domain name", what);
	lower_copy(out, in, n);
	return WSE_OK;
}

/* A mailbox: "local@domain", exactly one '@', both sides non-empty, no
 * white space, at most 255 bytes; lower-cased into out. */
static wse_status
canon_mailbox(const char *what, const char *in, char out[WSE_STORE_NAME_MAX])
{
	const char *at;
	size_t n, i;
	wse_status st;

	if ((st = check_text(what, in, 1, NAME_MAX_BYTES, 0, &n)) != WSE_OK)
		return st;
	for (i = 0; i < n; i++)
		if (in[i] == ' ')
			return wse_err(WSE_ERR_INVALID,
			    "store: white space in %s", what);
	if ((at = strchr(in, '@')) == NULL || at == in || at[1] == '\0' ||
	    strchr(at + 1, '@') != NULL)
		return wse_err(WSE_ERR_INVALID,
		    "store: %s is not of the form local@domain", what);
	lower_copy(out, in, n);
	return WSE_OK;
}

/* The domain part of a canonical mailbox. */
static const char *
mailbox_domain(const char *mailbox)
{
	return strchr(mailbox, '@') + 1;
}

/* ---- sealing ---- */

/* aad = prefix NUL name; returns its length. */
static size_t
key_aad(const char *name, uint8_t aad[sizeof(WSE_STORE_KEY_AAD) +
    WSE_STORE_NAME_MAX])
{
	size_t n = strlen(name);

	memcpy(aad, WSE_STORE_KEY_AAD, sizeof(WSE_STORE_KEY_AAD));
	memcpy(aad + sizeof(WSE_STORE_KEY_AAD), name, n);
	return sizeof(WSE_STORE_KEY_AAD) + n;
}

static wse_status
seal_user_key(wse_store *s, const char *name,
    const uint8_t key[WSE_DERIVED_KEY_LEN], wse_buf **sealed_r)
{
	uint8_t aad[sizeof(WSE_STORE_KEY_AAD) + WSE_STORE_NAME_MAX];
	wse_buf *b = NULL;
	wse_status st;

	*sealed_r = NULL;
	if ((b = wse_buf_new(WSE_STORE_SEALED_MAX)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "store: no memory");
	if ((st = wse_seal(s->seal_key, aad, key_aad(name, aad), key,
	    WSE_DERIVED_KEY_LEN, b)) != WSE_OK) {
		wse_buf_free(&b);
		return wse_err(st, "store: cannot seal the key of %s", name);
	}
	*sealed_r = b;
	return WSE_OK;
}

static wse_status
unseal_user_key(wse_store *s, const char *name, const wse_buf *sealed,
    uint8_t key_r[WSE_DERIVED_KEY_LEN])
{
	uint8_t aad[sizeof(WSE_STORE_KEY_AAD) + WSE_STORE_NAME_MAX];
	wse_buf *plain = NULL;
	wse_status st = WSE_ERR_INTERNAL;

	if ((plain = wse_buf_new(WSE_STORE_SEALED_MAX)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "store: no memory");
	if (wse_unseal(s->seal_key, aad, key_aad(name, aad),
	    wse_buf_data(sealed), wse_buf_len(sealed), plain) != WSE_OK ||
	    wse_buf_len(plain) != WSE_DERIVED_KEY_LEN) {
		st = wse_err(WSE_ERR_CRYPTO, "store: the sealed key of %s "
		    "does not open (wrong seal key or altered row)", name);
		goto out;
	}
	memcpy(key_r, wse_buf_data(plain), WSE_DERIVED_KEY_LEN);
	st = WSE_OK;
out:
	wse_buf_free(&plain);
	return st;
}

/* Prove that seal_key is the key this database was created with. */
static wse_status
check_seal_key(wse_store *s)
{
	wse_buf *cand = NULL, *stored = NULL, *plain = NULL;
	wse_status st = WSE_ERR_INTERNAL;

	if ((cand = wse_buf_new(WSE_STORE_SEALED_MAX)) == NULL ||
	    (stored = wse_buf_new(WSE_STORE_SEALED_MAX)) == NULL ||
	    (plain = wse_buf_new(WSE_STORE_SEALED_MAX)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "store: no memory");
		goto out;
	}
	if ((st = wse_seal(s->seal_key, WSE_STORE_CHECK_AAD,
	    sizeof(WSE_STORE_CHECK_AAD), seal_check_plain,
	    sizeof(seal_check_plain), cand)) != WSE_OK)
		goto out;
	if ((st = s->v->seal_check(s, wse_buf_data(cand), wse_buf_len(cand),
	    stored)) != WSE_OK)
		goto out;
	if (wse_unseal(s->seal_key, WSE_STORE_CHECK_AAD,
	    sizeof(WSE_STORE_CHECK_AAD), wse_buf_data(stored),
	    wse_buf_len(stored), plain) != WSE_OK ||
	    wse_buf_len(plain) != sizeof(seal_check_plain) ||
	    memcmp(wse_buf_data(plain), seal_check_plain,
	    sizeof(seal_check_plain)) != 0) {
		st = wse_err(WSE_ERR_CRYPTO,
		    "store: the seal key is not the one this store was "
		    "created with");
		goto out;
	}
	st = WSE_OK;
out:
	wse_buf_free(&cand);
	wse_buf_free(&stored);
	wse_buf_free(&plain);
	return st;
}

/* ---- open and close ---- */

wse_status
wse_store_open(const char *uri, const uint8_t seal_key[WSE_SEAL_KEY_LEN],
    wse_store **s_r)
{
	const struct wse_store_driver *drv = NULL;
	const char *colon;
	wse_store *s = NULL;
	size_t i, slen;
	wse_status st = WSE_ERR_INTERNAL;

	*s_r = NULL;
	if (uri == NULL || seal_key == NULL)
		return wse_err(WSE_ERR_INVALID, "store: no URI or seal key");
	if ((colon = strchr(uri, ':')) == NULL || colon[1] == '\0')
		return wse_err(WSE_ERR_INVALID,
		    "store: URI is not of the form scheme:target");
	slen = (size_t)(colon - uri);
	for (i = 0; drivers[i] != NULL; i++)
		if (strlen(drivers[i]->scheme) == slen &&
		    strncmp(drivers[i]->scheme, uri, slen) == 0)
			drv = drivers[i];
	if (drv == NULL)
		return wse_err(WSE_ERR_UNSUPPORTED,
		    "store: no driver for URI scheme \"%.*s\"",
		    (int)(slen > 32 ? 32 : slen), uri);
	if ((st = drv->open(colon + 1, &s)) != WSE_OK)
		return st;
	s->v = drv;
	memcpy(s->seal_key, seal_key, WSE_SEAL_KEY_LEN);
	if ((st = check_seal_key(s)) != WSE_OK)
		goto out;
	*s_r = s;
	s = NULL;
	st = WSE_OK;
out:
	wse_store_close(&s);
	return st;
}

void
wse_store_close(wse_store **sp)
{
	wse_store *s;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	wse_memzero(s->seal_key, sizeof(s->seal_key));
	s->v->close(s);
	*sp = NULL;
}

int
wse_store_schema_version(wse_store *s)
{
	return s == NULL ? -1 : s->v->schema_version(s);
}

/* ---- users ---- */

wse_status
wse_store_user_add(wse_store *s, const char *name,
    const uint8_t salt[WSE_SALT_LEN], uint32_t iterations,
    const uint8_t key[WSE_DERIVED_KEY_LEN], int64_t now)
{
	char cname[WSE_STORE_NAME_MAX];
	wse_buf *sealed = NULL;
	wse_status st;

	if ((st = canon_mailbox("user name", name, cname)) != WSE_OK)
		return st;
	if (salt == NULL || key == NULL || iterations == 0)
		return wse_err(WSE_ERR_INVALID, "store: no salt, cost or key");
	if ((st = seal_user_key(s, cname, key, &sealed)) != WSE_OK)
		return st;
	st = s->v->user_add(s, cname, salt, iterations, wse_buf_data(sealed),
	    wse_buf_len(sealed), now);
	wse_buf_free(&sealed);
	return st;
}

wse_status
wse_store_user_set_key(wse_store *s, const char *name,
    const uint8_t salt[WSE_SALT_LEN], uint32_t iterations,
    const uint8_t key[WSE_DERIVED_KEY_LEN])
{
	char cname[WSE_STORE_NAME_MAX];
	wse_buf *sealed = NULL;
	wse_status st;

	if ((st = canon_mailbox("user name", name, cname)) != WSE_OK)
		return st;
	if (salt == NULL || key == NULL || iterations == 0)
		return wse_err(WSE_ERR_INVALID, "store: no salt, cost or key");
	if ((st = seal_user_key(s, cname, key, &sealed)) != WSE_OK)
		return st;
	st = s->v->user_set_key(s, cname, salt, iterations,
	    wse_buf_data(sealed), wse_buf_len(sealed));
	wse_buf_free(&sealed);
	return st;
}

wse_status
wse_store_user_del(wse_store *s, const char *name)
{
	char cname[WSE_STORE_NAME_MAX];
	wse_status st;

	if ((st = canon_mailbox("user name", name, cname)) != WSE_OK)
		return st;
	return s->v->user_del(s, cname);
}

wse_status
wse_store_user_get(wse_store *s, const char *name, wse_user_rec *rec,
    uint8_t key_r[WSE_DERIVED_KEY_LEN])
{
	char cname[WSE_STORE_NAME_MAX];
	wse_buf *sealed = NULL;
	wse_status st = WSE_ERR_INTERNAL;

	if (rec != NULL)
		memset(rec, 0, sizeof(*rec));
	if (key_r != NULL)
		wse_memzero(key_r, WSE_DERIVED_KEY_LEN);
	if ((st = canon_mailbox("user name", name, cname)) != WSE_OK)
		return st;
	if (key_r != NULL &&
	    (sealed = wse_buf_new(WSE_STORE_SEALED_MAX)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "store: no memory");
	if ((st = s->v->user_get(s, cname, rec, sealed)) != WSE_OK)
		goto out;
	if (key_r != NULL &&
	    (st = unseal_user_key(s, cname, sealed, key_r)) != WSE_OK)
		goto out;
	st = WSE_OK;
out:
	if (st != WSE_OK && rec != NULL)
		memset(rec, 0, sizeof(*rec));
	wse_buf_free(&sealed);
	return st;
}

wse_status
wse_store_user_list(wse_store *s, wse_user_fn fn, void *arg)
{
	if (fn == NULL)
		return wse_err(WSE_ERR_INVALID, "store: no callback");
	return s->v->user_list(s, fn, arg);
}

/* ---- messages ---- */

/* All allocations of one call, freed together. */
struct arena {
	void **p;
	size_t n, cap;
};

static void *
arena_calloc(struct arena *a, size_t nmemb, size_t size)
{
	void *x, **np;

	if (a->n == a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 16;

		if ((np = realloc(a->p, ncap * sizeof(*np))) == NULL)
			return NULL;
		a->p = np;
		a->cap = ncap;
	}
	if ((x = calloc(nmemb ? nmemb : 1, size)) == NULL)
		return NULL;
	a->p[a->n++] = x;
	return x;
}

static void
arena_free(struct arena *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->p[i]);
	free(a->p);
	a->p = NULL;
	a->n = a->cap = 0;
}

/*
 * Check one delivery and build its canonical copy in *out (memory from
 * a): origin domain and mailboxes in canonical form, mailboxes without
 * duplicates, the subject made safe.  WSE_ERR_INVALID (with a message),
 * WSE_ERR_NOMEM.
 */
static wse_status
canon_delivery(struct arena *a, const wse_delivery *in, wse_delivery *out)
{
	char *cdomain;
	char (*cbox)[WSE_STORE_NAME_MAX];
	const char **boxes;
	wse_msg_meta *m;
	size_t i, j, nb = 0;
	wse_status st;

	if ((cdomain = arena_calloc(a, 1, WSE_STORE_NAME_MAX)) == NULL ||
	    (m = arena_calloc(a, 1, sizeof(*m))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "store: no memory");
	if ((st = canon_domain("origin domain", in->origin_domain, cdomain)) !=
	    WSE_OK ||
	    (st = check_name("origin message id", in->origin_id)) != WSE_OK)
		return st;
	if (in->replay_id != NULL &&
	    (st = check_replay_id(in->replay_id)) != WSE_OK)
		return st;
	if (in->meta == NULL || in->envelope == NULL || in->len == 0 ||
	    in->mailboxes == NULL || in->n == 0)
		return wse_err(WSE_ERR_INVALID,
		    "store: delivery without meta, envelope or mailbox");
	if ((st = check_text("sender", in->meta->from, 0, NAME_MAX_BYTES, 0,
	    NULL)) != WSE_OK)
		return st;
	/* The subject is a display hint (the envelope is kept unchanged):
	 * made safe, never a reason to refuse a message. */
	memcpy(m->from, in->meta->from, strlen(in->meta->from) + 1);
	m->flags = in->meta->flags;
	{
		char subj[WSE_STORE_SUBJECT_MAX + 1];

		/* meta->subject need not be NUL-terminated when full. */
		memcpy(subj, in->meta->subject, WSE_STORE_SUBJECT_MAX);
		subj[WSE_STORE_SUBJECT_MAX] = '\0';
		sanitize_text(m->subject, sizeof(m->subject), subj);
	}
	if ((cbox = arena_calloc(a, in->n, sizeof(*cbox))) == NULL ||
	    (boxes = arena_calloc(a, in->n, sizeof(*boxes))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "store: no memory");
	/* Canonical, without duplicates: one copy per distinct mailbox. */
	for (i = 0; i < in->n; i++) {
		if ((st = canon_mailbox("mailbox", in->mailboxes[i],
		    cbox[nb])) != WSE_OK)
			return st;
		for (j = 0; j < nb; j++)
			if (strcmp(cbox[j], cbox[nb]) == 0)
				break;
		if (j == nb) {
			boxes[nb] = cbox[nb];
			nb++;
		}
	}
	*out = *in;
	out->origin_domain = cdomain;
	out->mailboxes = boxes;
	out->n = nb;
	out->meta = m;
	return WSE_OK;
}

wse_status
wse_store_deliver(wse_store *s, const char *origin_domain,
    const char *origin_id, const char *const *mailboxes, size_t n,
    const wse_msg_meta *meta, const void *envelope, size_t len,
    const char *replay_id, int64_t replay_expires, int64_t now)
{
	struct arena a = { 0 };
	wse_delivery in, c;
	wse_status st;

	in.origin_domain = origin_domain;
	in.origin_id = origin_id;
	in.mailboxes = mailboxes;
	in.n = n;
	in.meta = meta;
	in.envelope = envelope;
	in.len = len;
	in.replay_id = replay_id;
	in.replay_expires = replay_expires;
	if ((st = canon_delivery(&a, &in, &c)) == WSE_OK)
		st = s->v->deliver(s, c.origin_domain, c.origin_id,
		    c.mailboxes, c.n, c.meta, c.envelope, c.len, c.replay_id,
		    c.replay_expires, now);
	arena_free(&a);
	return st;
}

wse_status
wse_store_deliver_many(wse_store *s, const wse_delivery *d, size_t n,
    int64_t now, wse_status *status_r)
{
	struct arena a = { 0 };
	wse_delivery *cd = NULL;
	size_t i, ngood = 0;
	wse_status st = WSE_ERR_INTERNAL;

	if (n == 0)
		return WSE_OK;
	if (d == NULL || status_r == NULL)
		return wse_err(WSE_ERR_INVALID, "store: no deliveries");
	if ((cd = arena_calloc(&a, n, sizeof(*cd))) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "store: no memory");
		goto fail;
	}
	/* A bad delivery is refused alone. */
	for (i = 0; i < n; i++) {
		st = canon_delivery(&a, &d[i], &cd[i]);
		if (st == WSE_ERR_NOMEM)
			goto fail;
		status_r[i] = st;
		if (st == WSE_OK)
			ngood++;
	}
	st = ngood == 0 ? WSE_OK : s->v->deliver_many(s, cd, n, now, status_r);
	if (st != WSE_OK)
		goto fail;
	arena_free(&a);
	wse_err_clear();
	return WSE_OK;
fail:
	for (i = 0; i < n; i++)
		status_r[i] = st;
	arena_free(&a);
	return st;
}

wse_status
wse_store_list(wse_store *s, const char *mailbox, size_t offset,
    size_t limit, wse_msg_fn fn, void *arg)
{
	char cbox[WSE_STORE_NAME_MAX];
	wse_status st;

	if ((st = canon_mailbox("mailbox", mailbox, cbox)) != WSE_OK)
		return st;
	if (fn == NULL)
		return wse_err(WSE_ERR_INVALID, "store: no callback");
	if (limit == 0)
		return WSE_OK;
	return s->v->list(s, cbox, offset, limit, fn, arg);
}

wse_status
wse_store_count(wse_store *s, const char *mailbox, uint64_t *total_r,
    uint64_t *unread_r)
{
	char cbox[WSE_STORE_NAME_MAX];
	uint64_t t = 0, u = 0;
	wse_status st;

	if (total_r != NULL)
		*total_r = 0;
	if (unread_r != NULL)
		*unread_r = 0;
	if ((st = canon_mailbox("mailbox", mailbox, cbox)) != WSE_OK)
		return st;
	if ((st = s->v->count(s, cbox, &t, &u)) != WSE_OK)
		return st;
	if (total_r != NULL)
		*total_r = t;
	if (unread_r != NULL)
		*unread_r = u;
	return WSE_OK;
}

wse_status
wse_store_fetch(wse_store *s, const char *mailbox, int64_t id,
    wse_msg_meta *meta, wse_buf *envelope)
{
	char cbox[WSE_STORE_NAME_MAX];
	wse_msg_meta m;
	wse_status st;

	if (meta != NULL)
		memset(meta, 0, sizeof(*meta));
	if ((st = canon_mailbox("mailbox", mailbox, cbox)) != WSE_OK)
		return st;
	if (id <= 0)
		return wse_err(WSE_ERR_NOT_FOUND, "store: no message %lld",
		    (long long)id);
	if ((st = s->v->fetch(s, cbox, id, &m, envelope)) != WSE_OK)
		return st;
	if (meta != NULL)
		*meta = m;
	return WSE_OK;
}

wse_status
wse_store_delete(wse_store *s, const char *mailbox, int64_t id)
{
	char cbox[WSE_STORE_NAME_MAX];
	wse_status st;

	if ((st = canon_mailbox("mailbox", mailbox, cbox)) != WSE_OK)
		return st;
	if (id <= 0)
		return wse_err(WSE_ERR_NOT_FOUND, "store: no message %lld",
		    (long long)id);
	return s->v->del(s, cbox, id);
}

wse_status
wse_store_mark_read(wse_store *s, const char *mailbox, int64_t id, int read)
{
	char cbox[WSE_STORE_NAME_MAX];
	wse_status st;

	if ((st = canon_mailbox("mailbox", mailbox, cbox)) != WSE_OK)
		return st;
	if (id <= 0)
		return wse_err(WSE_ERR_NOT_FOUND, "store: no message %lld",
		    (long long)id);
	return s->v->mark_read(s, cbox, id, read != 0);
}

/* ---- the delivery queue ---- */

/*
 * Check one submission and build its canonical copy in *out (memory from
 * a).  WSE_ERR_INVALID (with a message) for a bad submission,
 * WSE_ERR_NOMEM.
 */
static wse_status
canon_submission(struct arena *a, const wse_submission *in,
    wse_submission *out)
{
	char (*doms)[WSE_STORE_NAME_MAX];
	char *sender;
	const char **dptr;
	const char *const **rptr;
	size_t *nr, i, j, k;
	wse_status st;

	memset(out, 0, sizeof(*out));
	if (in->payload == NULL || in->len == 0 || in->ndomains == 0 ||
	    in->domains == NULL || in->rcpts == NULL || in->nrcpts == NULL)
		return wse_err(WSE_ERR_INVALID,
		    "store: submission without payload or recipients");
	if ((st = check_name("message id", in->message_id)) != WSE_OK)
		return st;
	if (in->replay_id != NULL &&
	    (st = check_replay_id(in->replay_id)) != WSE_OK)
		return st;
	if ((sender = arena_calloc(a, 1, WSE_STORE_NAME_MAX)) == NULL ||
	    (doms = arena_calloc(a, in->ndomains, sizeof(*doms))) == NULL ||
	    (dptr = arena_calloc(a, in->ndomains, sizeof(*dptr))) == NULL ||
	    (rptr = arena_calloc(a, in->ndomains, sizeof(*rptr))) == NULL ||
	    (nr = arena_calloc(a, in->ndomains, sizeof(*nr))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "store: no memory");
	/* The sender gets reports; none for a report (empty sender). */
	if (in->sender == NULL || in->sender[0] != '\0') {
		if ((st = canon_mailbox("sender", in->sender, sender)) !=
		    WSE_OK)
			return st;
	}
	for (i = 0; i < in->ndomains; i++) {
		char (*boxes)[WSE_STORE_NAME_MAX];
		const char **bptr;

		if ((st = canon_domain("recipient domain", in->domains[i],
		    doms[i])) != WSE_OK)
			return st;
		for (j = 0; j < i; j++)
			if (strcmp(doms[j], doms[i]) == 0)
				return wse_err(WSE_ERR_INVALID,
				    "store: domain %s twice in a submission",
				    doms[i]);
		if (in->nrcpts[i] == 0 || in->rcpts[i] == NULL)
			return wse_err(WSE_ERR_INVALID,
			    "store: no recipient in domain %s", doms[i]);
		if ((boxes = arena_calloc(a, in->nrcpts[i], sizeof(*boxes))) ==
		    NULL ||
		    (bptr = arena_calloc(a, in->nrcpts[i], sizeof(*bptr))) ==
		    NULL)
			return wse_err(WSE_ERR_NOMEM, "store: no memory");
		for (j = 0, k = 0; j < in->nrcpts[i]; j++) {
			size_t m;

			if ((st = canon_mailbox("recipient", in->rcpts[i][j],
			    boxes[k])) != WSE_OK)
				return st;
			if (strcmp(mailbox_domain(boxes[k]), doms[i]) != 0)
				return wse_err(WSE_ERR_INVALID,
				    "store: recipient %s is not in domain %s",
				    boxes[k], doms[i]);
			for (m = 0; m < k; m++)
				if (strcmp(boxes[m], boxes[k]) == 0)
					break;
			if (m == k) {
				bptr[k] = boxes[k];
				k++;
			}
		}
		dptr[i] = doms[i];
		rptr[i] = bptr;
		nr[i] = k;
	}
	out->sender = sender;
	out->message_id = in->message_id;
	out->replay_id = in->replay_id;
	out->replay_expires = in->replay_expires;
	out->flags = in->flags;
	out->payload = in->payload;
	out->len = in->len;
	out->ndomains = in->ndomains;
	out->domains = dptr;
	out->rcpts = rptr;
	out->nrcpts = nr;
	return WSE_OK;
}

wse_status
wse_store_enqueue(wse_store *s, const wse_submission *subs, size_t n,
    int64_t now, int64_t lifetime, wse_status *status_r)
{
	struct arena a = { 0 };
	wse_submission *cs = NULL;
	size_t i, ngood = 0;
	wse_status st = WSE_ERR_INTERNAL;

	if (n == 0)
		return WSE_OK;
	if (subs == NULL || status_r == NULL)
		return wse_err(WSE_ERR_INVALID, "store: no submissions");
	for (i = 0; i < n; i++)
		status_r[i] = WSE_ERR_INTERNAL;
	if (lifetime <= 0) {
		st = wse_err(WSE_ERR_INVALID, "store: queue lifetime %lld",
		    (long long)lifetime);
		goto fail;
	}
	if ((cs = arena_calloc(&a, n, sizeof(*cs))) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "store: no memory");
		goto fail;
	}
	/* A bad submission is refused alone (WSE_ERR_INVALID in its slot),
	 * so that one malformed client request cannot fail a group. */
	for (i = 0; i < n; i++) {
		st = canon_submission(&a, &subs[i], &cs[i]);
		if (st == WSE_ERR_NOMEM)
			goto fail;
		status_r[i] = st;
		if (st == WSE_OK)
			ngood++;
	}
	st = ngood == 0 ? WSE_OK :
	    s->v->enqueue(s, cs, n, now, lifetime, status_r);
	if (st != WSE_OK)
		goto fail;
	arena_free(&a);
	return WSE_OK;
fail:
	for (i = 0; i < n; i++)
		status_r[i] = st;
	arena_free(&a);
	return st;
}

wse_status
wse_store_queue_take(wse_store *s, int64_t now, int64_t lease, size_t limit,
    wse_queue_fn fn, void *arg)
{
	if (fn == NULL || lease <= 0)
		return wse_err(WSE_ERR_INVALID,
		    "store: queue take without callback or lease");
	if (limit == 0)
		return WSE_OK;
	return s->v->queue_take(s, now, lease, limit, fn, arg);
}

wse_status
wse_store_queue_done(wse_store *s, int64_t id)
{
	if (id <= 0)
		return wse_err(WSE_ERR_NOT_FOUND, "store: no queue item %lld",
		    (long long)id);
	return s->v->queue_done(s, id);
}

wse_status
wse_store_queue_done_many(wse_store *s, const int64_t *ids, size_t n)
{
	size_t i;

	if (n == 0)
		return WSE_OK;
	if (ids == NULL)
		return wse_err(WSE_ERR_INVALID, "store: no queue items");
	for (i = 0; i < n; i++)
		if (ids[i] <= 0)
			return wse_err(WSE_ERR_INVALID, "store: queue item %lld",
			    (long long)ids[i]);
	return s->v->queue_done_many(s, ids, n);
}

wse_status
wse_store_queue_defer(wse_store *s, int64_t id, int64_t next_attempt,
    const char *error)
{
	char e[sizeof(((wse_queue_item *)0)->last_error)];

	if (id <= 0)
		return wse_err(WSE_ERR_NOT_FOUND, "store: no queue item %lld",
		    (long long)id);
	/* The reason is for humans: keep what fits. */
	sanitize_text(e, sizeof(e), error);
	return s->v->queue_defer(s, id, next_attempt, e);
}

wse_status
wse_store_queue_list(wse_store *s, wse_queue_fn fn, void *arg)
{
	if (fn == NULL)
		return wse_err(WSE_ERR_INVALID, "store: no callback");
	return s->v->queue_list(s, fn, arg);
}

wse_status
wse_store_queue_flush(wse_store *s, int64_t id, int64_t now)
{
	if (id < 0)
		return wse_err(WSE_ERR_NOT_FOUND, "store: no queue item %lld",
		    (long long)id);
	return s->v->queue_flush(s, id, now);
}

wse_status
wse_store_queue_delete(wse_store *s, int64_t id)
{
	if (id <= 0)
		return wse_err(WSE_ERR_NOT_FOUND, "store: no queue item %lld",
		    (long long)id);
	return s->v->queue_delete(s, id);
}

/* ---- replay cache ---- */

static wse_status
replay_seen(void *ctx, const char *id, int64_t now)
{
	wse_store *s = ctx;
	wse_status st;

	if ((st = check_replay_id(id)) != WSE_OK)
		return st;
	return s->v->replay_seen(s, id, now);
}

static wse_status
replay_insert(void *ctx, const char *id, int64_t expires, int64_t now)
{
	wse_store *s = ctx;
	wse_status st;

	if ((st = check_replay_id(id)) != WSE_OK)
		return st;
	return s->v->replay_insert(s, id, expires, now);
}

static int64_t
replay_floor(void *ctx)
{
	return ((wse_store *)ctx)->replay_floor;
}

static void
replay_free(void *ctx)
{
	(void)ctx;	/* the cache borrows the store */
}

static const struct wse_replay_ops store_replay_ops = {
	.seen = replay_seen,
	.insert = replay_insert,
	.floor = replay_floor,
	.free = replay_free,
};

wse_status
wse_store_replay(wse_store *s, wse_replay **r_r)
{
	*r_r = NULL;
	if (s == NULL)
		return wse_err(WSE_ERR_INVALID, "store: no store");
	return wse_replay_new(&store_replay_ops, s, r_r);
}

wse_status
wse_store_expire(wse_store *s, int64_t now)
{
	return s->v->expire(s, now);
}

wse_status
wse_store_checkpoint(wse_store *s)
{
	if (s == NULL)
		return wse_err(WSE_ERR_INVALID, "store: no store");
	return s->v->checkpoint != NULL ? s->v->checkpoint(s) : WSE_OK;
}
