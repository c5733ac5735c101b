/*
 * test_ondemand_plugin.c - the ondemand plugin (plugins/ondemand.c) as the
 * server sees it: the built ondemand.so is dlopen()ed (its path comes from
 * $WSE_ONDEMAND_SO or the build), bound to this program's own copy of
 * libwsemail (linked whole and exported, like wsemaild), given a host
 * whose clock the tests move, and driven through its hooks with request
 * bodies parsed by the hardened parser.  The PKI (root, domain CAs of
 * a.test and b.test) is minted at run time; tokens are verified with the
 * library's chain verification.  Each test gets a fresh plugin directory.
 */
#include "testutil.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sqlite3.h>

#include "buf.h"
#include "crypto.h"
#include "msg.h"
#include "pki.h"
#include "plugin.h"
#include "soap.h"
#include "testpki.h"
#include "xml.h"

#ifndef ONDEMAND_SO
#define ONDEMAND_SO "plugins/ondemand.so"
#endif

#define URL "https://a.test:8443/wsemail"
#define BODY_MAX (16u * 1024 * 1024)
#define RESP_MAX (1u * 1024 * 1024)
#define MAX_SIZE 10000000
#define ATT_LIFETIME 3600
#define UP_LIFETIME 600

static testpki P;
static void *so;
static const struct wse_plugin *plug;
static wse_limits lim;

/* The host's clock and log. */
static int64_t clock_now;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char logbuf[65536];
static size_t loglen;

static int64_t
host_now(void)
{
	return __atomic_load_n(&clock_now, __ATOMIC_SEQ_CST);
}

static void
set_clock(int64_t t)
{
	__atomic_store_n(&clock_now, t, __ATOMIC_SEQ_CST);
}

static void host_log(const struct wse_plugin_host *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * A gate in the host's log.  While armed, a hook that logs a line
 * holding gate_needle stops there until the gate opens: the plugin holds
 * none of its locks while it logs, so a test can act while a call stands
 * at that point ("upload ... started by": a new upload being written).
 */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static const char *gate_needle;
static int gate_held;

static void
gate_pass(const char *line)
{
	pthread_mutex_lock(&gate_lock);
	if (gate_needle != NULL && strstr(line, gate_needle) != NULL) {
		gate_held++;
		pthread_cond_broadcast(&gate_cond);
		while (gate_needle != NULL)
			pthread_cond_wait(&gate_cond, &gate_lock);
		gate_held--;
	}
	pthread_mutex_unlock(&gate_lock);
}

static void
gate_arm(const char *needle)
{
	pthread_mutex_lock(&gate_lock);
	gate_needle = needle;
	pthread_mutex_unlock(&gate_lock);
}

/* Wait (at most 60 s) until n calls stand at the gate. */
static void
gate_wait(int n)
{
	struct timespec dl;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 60;
	pthread_mutex_lock(&gate_lock);
	while (gate_held < n && rc == 0)
		rc = pthread_cond_timedwait(&gate_cond, &gate_lock, &dl);
	n -= gate_held;
	pthread_mutex_unlock(&gate_lock);
	if (n > 0)
		fail_msg("%d call(s) did not reach the gate", n);
}

static void
gate_open(void)
{
	pthread_mutex_lock(&gate_lock);
	gate_needle = NULL;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

static int starters_wait(void);

static void
host_log(const struct wse_plugin_host *h, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	size_t n;

	(void)h;
	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	n = strlen(line);
	pthread_mutex_lock(&log_lock);
	if (loglen + n + 2 > sizeof(logbuf))
		loglen = 0;		/* wrap: keep only recent lines */
	memcpy(logbuf + loglen, line, n);
	loglen += n;
	logbuf[loglen++] = '\n';
	logbuf[loglen] = '\0';
	pthread_mutex_unlock(&log_lock);
	gate_pass(line);
}

static int
log_has(const char *needle)
{
	int r;

	pthread_mutex_lock(&log_lock);
	r = strstr(logbuf, needle) != NULL;
	pthread_mutex_unlock(&log_lock);
	return r;
}

static struct wse_plugin_host host = {
	.domain = "a.test",
	.version = "wsemaild test",
	.url = URL,
	.now = host_now,
	.log = host_log,
};

/* One test's plugin instance. */
static struct {
	char *tmp;		/* removed afterwards */
	char dir[4096];		/* the plugin's dir= */
	void *state;
} F;

/* ---- set-up ---- */

static int
group_setup(void **state)
{
	const char *path = getenv("WSE_ONDEMAND_SO");
	wse_plugin_entry_fn entry;
	char eb[2048];

	(void)state;
	wse_limits_default(&lim);
	if (testpki_init(&P, (int64_t)time(NULL)) != WSE_OK) {
		fprintf(stderr, "testpki_init: %s\n",
		    wse_err_format(eb, sizeof(eb)));
		return -1;
	}
	if (path == NULL || *path == '\0')
		path = ONDEMAND_SO;
	if ((so = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
		return -1;
	}
	*(void **)&entry = dlsym(so, WSE_PLUGIN_ENTRY);
	if (entry == NULL || (plug = entry()) == NULL) {
		fprintf(stderr, "%s: no plugin entry\n", path);
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	if (so != NULL)
		dlclose(so);
	testpki_free(&P);
	return 0;
}

static void
ca_paths(int d, char *cert, char *key, size_t size)
{
	snprintf(cert, size, "%s/%s/ca.pem", P.dir, P.dom[d].name);
	snprintf(key, size, "%s/%s/ca-key.pem", P.dir, P.dom[d].name);
}

/* Initialise an instance with the usual arguments plus extra. */
static wse_status
plugin_init(const char *extra, void **state_r)
{
	char cert[4096], key[4096], args[16384];

	ca_paths(0, cert, key, sizeof(cert));
	snprintf(args, sizeof(args), "dir=%s ca_cert=%s ca_key=%s %s", F.dir,
	    cert, key, extra);
	return plug->init(&host, args, state_r);
}

static void
restart(const char *extra)
{
	if (F.state != NULL)
		plug->deinit(F.state);
	F.state = NULL;
	assert_wse_ok(plugin_init(extra, &F.state));
}

static const char default_extra[] = "attachment_lifetime=3600 "
    "upload_lifetime=600 max_size=10000000";

static int
setup(void **state)
{
	(void)state;
	wse_err_clear();
	set_clock(P.now);
	pthread_mutex_lock(&log_lock);
	loglen = 0;
	logbuf[0] = '\0';
	pthread_mutex_unlock(&log_lock);
	if ((F.tmp = testutil_tmpdir()) == NULL)
		return -1;
	snprintf(F.dir, sizeof(F.dir), "%s/od", F.tmp);
	F.state = NULL;
	if (plugin_init(default_extra, &F.state) != WSE_OK) {
		char eb[2048];

		fprintf(stderr, "init: %s\n", wse_err_format(eb, sizeof(eb)));
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (starters_wait() != 0)
		return -1;
	if (F.state != NULL)
		plug->deinit(F.state);
	F.state = NULL;
	testutil_rmtree(F.tmp);
	free(F.tmp);
	F.tmp = NULL;
	return 0;
}

/* ---- requests ---- */

/*
 * Call op for user with the Body's content content; the answer (on
 * WSE_OK, when not streamed) is parsed into *doc_r (may be NULL) and
 * must be one m:<op>Response element.
 */
static wse_status
call_body(const char *op, int auth, const char *user, const char *content,
    xmlDocPtr *doc_r, struct wse_plugin_stream *stream)
{
	struct wse_plugin_request r;
	wse_buf *body, *resp;
	xmlDocPtr doc = NULL;
	wse_status st;
	char want[128];

	if (doc_r != NULL)
		*doc_r = NULL;
	body = wse_buf_new(BODY_MAX);
	resp = wse_buf_new(RESP_MAX);
	assert_non_null(body);
	assert_non_null(resp);
	assert_wse_ok(wse_buf_puts(body, "<s:Body xmlns:s=\"" WSE_NS_SOAP
	    "\">"));
	assert_wse_ok(wse_buf_puts(body, content));
	assert_wse_ok(wse_buf_puts(body, "</s:Body>"));
	assert_wse_ok(wse_xml_parse(wse_buf_data(body), wse_buf_len(body),
	    &lim, &doc));
	memset(&r, 0, sizeof(r));
	r.op = op;
	r.auth = auth;
	r.user = user;
	r.message_id = "urn:uuid:00000000-0000-4000-8000-000000000000";
	r.body = xmlDocGetRootElement(doc);
	r.now = host_now();
	if (stream != NULL) {
		memset(stream, 0, sizeof(*stream));
		stream->fd = -1;
	}
	st = plug->call(F.state, &r, resp, stream);
	xmlFreeDoc(doc);
	if (st == WSE_OK && (stream == NULL || stream->fd == -1)) {
		xmlDocPtr rd = NULL;

		assert_wse_ok(wse_xml_parse(wse_buf_data(resp),
		    wse_buf_len(resp), &lim, &rd));
		snprintf(want, sizeof(want), "%sResponse", op);
		assert_true(wse_xml_is(xmlDocGetRootElement(rd), WSE_NS_WSE,
		    want));
		if (doc_r != NULL)
			*doc_r = rd;
		else
			xmlFreeDoc(rd);
	}
	wse_buf_free(&body);
	wse_buf_free(&resp);
	return st;
}

/* The same with the request element m:<op> holding inner. */
static wse_status
call_as(const char *op, int auth, const char *user, const char *inner,
    xmlDocPtr *doc_r, struct wse_plugin_stream *stream)
{
	wse_buf *content = wse_buf_new(BODY_MAX);
	wse_status st;

	assert_non_null(content);
	assert_wse_ok(wse_buf_printf(content, "<m:%s xmlns:m=\"" WSE_NS_WSE
	    "\">", op));
	assert_wse_ok(wse_buf_puts(content, inner));
	assert_wse_ok(wse_buf_printf(content, "</m:%s>", op));
	st = call_body(op, auth, user, wse_buf_str(content), doc_r, stream);
	wse_buf_free(&content);
	return st;
}

static wse_status
call_pw(const char *op, const char *user, const char *inner, xmlDocPtr *doc_r)
{
	return call_as(op, WSE_PLUGIN_AUTH_PASSWORD, user, inner, doc_r, NULL);
}

/* The text of the first element named local (our namespace) in doc, or
 * NULL; malloc'd. */
static xmlNodePtr
find_elem(xmlNodePtr n, const char *local)
{
	xmlNodePtr c, f;

	if (wse_xml_is(n, WSE_NS_WSE, local))
		return n;
	for (c = wse_xml_first_elem(n); c != NULL; c = wse_xml_next_elem(c))
		if ((f = find_elem(c, local)) != NULL)
			return f;
	return NULL;
}

static char *
doc_text(xmlDocPtr doc, const char *local)
{
	xmlNodePtr n = find_elem(xmlDocGetRootElement(doc), local);
	char *s = NULL;

	if (n == NULL)
		return NULL;
	assert_wse_ok(wse_xml_text_dup(n, 1 << 20, &s));
	return s;
}

static void
assert_doc_text(xmlDocPtr doc, const char *local, const char *want)
{
	char *s = doc_text(doc, local);

	assert_non_null(s);
	assert_string_equal(s, want);
	free(s);
}

/* Deterministic test bytes. */
static uint8_t *
make_bytes(size_t n, unsigned seed)
{
	uint8_t *b = malloc(n + 1);
	uint32_t x = 2463534242u ^ seed;
	size_t i;

	assert_non_null(b);
	for (i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (uint8_t)x;
	}
	return b;
}

static void
sha_hex(const void *data, size_t len, char hex[65])
{
	uint8_t md[WSE_SHA256_LEN];

	assert_wse_ok(wse_sha256(data, len, md));
	wse_hex(md, sizeof(md), hex);
}

/*
 * One UploadAttachment call.  handle: NULL for a new upload, else the
 * handle (the new one is written to handle_r).  name/size/sha: NULL/0
 * leave the element out (size < 0 leaves it out).  offset < 0: no
 * Offset.  data == NULL: no Data.
 */
struct up_result {
	char handle[64];
	unsigned long long received;
	int complete;
};

static wse_status
upload_call(const char *user, const char *handle, const char *name,
    long long size, const char *sha, long long offset, const void *data,
    size_t len, struct up_result *res)
{
	wse_buf *in = wse_buf_new(BODY_MAX);
	xmlDocPtr doc = NULL;
	wse_status st;
	char *s;

	assert_non_null(in);
	if (handle != NULL)
		assert_wse_ok(wse_buf_printf(in, "<m:Upload>%s</m:Upload>",
		    handle));
	if (name != NULL)
		assert_wse_ok(wse_buf_printf(in, "<m:Name>%s</m:Name>"
		    "<m:Type>application/octet-stream</m:Type>", name));
	if (size >= 0)
		assert_wse_ok(wse_buf_printf(in, "<m:Size>%lld</m:Size>",
		    size));
	if (sha != NULL)
		assert_wse_ok(wse_buf_printf(in, "<m:Sha256>%s</m:Sha256>",
		    sha));
	if (offset >= 0)
		assert_wse_ok(wse_buf_printf(in, "<m:Offset>%lld</m:Offset>",
		    offset));
	if (data != NULL) {
		assert_wse_ok(wse_buf_puts(in, "<m:Data>"));
		assert_wse_ok(wse_base64_encode(data, len, in));
		assert_wse_ok(wse_buf_puts(in, "</m:Data>"));
	}
	st = call_pw("UploadAttachment", user, wse_buf_str(in), &doc);
	wse_buf_free(&in);
	if (st != WSE_OK)
		return st;
	if (res != NULL) {
		memset(res, 0, sizeof(*res));
		s = doc_text(doc, "Upload");
		assert_non_null(s);
		assert_true(strlen(s) < sizeof(res->handle));
		strcpy(res->handle, s);
		free(s);
		s = doc_text(doc, "Received");
		assert_non_null(s);
		res->received = strtoull(s, NULL, 10);
		free(s);
		s = doc_text(doc, "Complete");
		assert_non_null(s);
		assert_true(strcmp(s, "true") == 0 || strcmp(s, "false") == 0);
		res->complete = strcmp(s, "true") == 0;
		free(s);
	}
	xmlFreeDoc(doc);
	return st;
}

/* A complete upload of data by user, in chunks of chunk bytes. */
static void
upload_all(const char *user, const char *name, const uint8_t *data,
    size_t len, size_t chunk, char handle[64])
{
	struct up_result r;
	char hex[65];
	size_t off, n;

	sha_hex(data, len, hex);
	n = len < chunk ? len : chunk;
	assert_wse_ok(upload_call(user, NULL, name, (long long)len, hex, 0,
	    data, n, &r));
	strcpy(handle, r.handle);
	for (off = n; off < len; off += n) {
		n = len - off < chunk ? len - off : chunk;
		assert_wse_ok(upload_call(user, handle, name, (long long)len,
		    hex, (long long)off, data + off, n, &r));
		assert_int_equal(r.received, off + n);
	}
	assert_int_equal(r.received, len);
	assert_true(r.complete);
}

static int
file_exists(const char *sub, const char *name)
{
	char path[8192];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s/%s", F.dir, sub, name);
	return stat(path, &sb) == 0;
}

static size_t
count_files(const char *sub)
{
	char path[8192];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", F.dir, sub);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* One number the plugin's database answers to sql (read-only, through
 * a connection of the test's own). */
static long long
db_num(const char *sql)
{
	char path[8192];
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	long long v;

	snprintf(path, sizeof(path), "%s/ondemand.db", F.dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return v;
}

/* What the plugin keeps: its rows and files.  A refusal changes none. */
struct kept {
	long long uploads, unsent, received, attachments, recipients,
	    fetches, revoked;
	size_t upfiles, atfiles;
};

static void
kept(struct kept *k)
{
	k->uploads = db_num("SELECT count(*) FROM upload");
	k->unsent = db_num("SELECT count(*) FROM upload WHERE used = 0");
	k->received = db_num("SELECT total(received) + total(complete)"
	    " FROM upload");
	k->attachments = db_num("SELECT count(*) FROM attachment");
	k->recipients = db_num("SELECT count(*) FROM recipient");
	k->fetches = db_num("SELECT count(*) FROM fetch");
	k->revoked = db_num("SELECT total(revoked) + total(gone)"
	    " FROM attachment");
	k->upfiles = count_files("uploads");
	k->atfiles = count_files("attachments");
}

static void
assert_kept(const struct kept *was)
{
	struct kept now;

	kept(&now);
	assert_int_equal(now.uploads, was->uploads);
	assert_int_equal(now.unsent, was->unsent);
	assert_int_equal(now.received, was->received);
	assert_int_equal(now.attachments, was->attachments);
	assert_int_equal(now.recipients, was->recipients);
	assert_int_equal(now.fetches, was->fetches);
	assert_int_equal(now.revoked, was->revoked);
	assert_int_equal(now.upfiles, was->upfiles);
	assert_int_equal(now.atfiles, was->atfiles);
}

/* The error the last refusal left says why. */
static void
assert_err_has(const char *needle)
{
	char eb[2048];

	wse_err_format(eb, sizeof(eb));
	if (strstr(eb, needle) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", eb, needle);
	wse_err_clear();
}

/* The upload's Received as its owner sees it. */
static unsigned long long
received_of(const char *user, const char *h)
{
	struct up_result r;

	assert_wse_ok(upload_call(user, h, NULL, -1, NULL, -1, NULL, 0, &r));
	return r.received;
}

/* Replace "@H@" in t by h (at most once). */
static const char *
with_handle(const char *t, const char *h, char *out, size_t size)
{
	const char *at = strstr(t, "@H@");

	if (at == NULL)
		snprintf(out, size, "%s", t);
	else
		snprintf(out, size, "%.*s%s%s", (int)(at - t), t, h, at + 3);
	return out;
}

/* A message from alice to bob@b.test, cc carol@a.test, with upload h. */
static wse_msg *
make_msg(const char *from, const char *h)
{
	wse_msg *m = NULL;

	assert_wse_ok(wse_msg_new(&m));
	assert_wse_ok(wse_msg_set(m, "from", from));
	assert_wse_ok(wse_msg_set(m, "subject", "big file"));
	assert_wse_ok(wse_msg_set(m, "text", "see attachment"));
	assert_wse_ok(wse_msg_add_rcpt(m, "bob@b.test", 0));
	assert_wse_ok(wse_msg_add_rcpt(m, "carol@a.test", 1));
	if (h != NULL)
		assert_wse_ok(wse_msg_add_upload(m, h));
	return m;
}

static const char msg_id[] = "urn:uuid:6f1c2a4e-1d2b-4c3d-8e4f-5a6b7c8d9e0f";

/* alice uploads data as "big.bin" and sends it to bob@b.test (cc
 * carol@a.test) as message id: the resolved reference into ref. */
static void
send_attachment(const uint8_t *data, size_t len, const char *id,
    char ref[64])
{
	char h[64];
	wse_msg *m;

	upload_all("alice@a.test", "big.bin", data, len, 65536, h);
	m = make_msg("alice@a.test", h);
	assert_wse_ok(plug->submit(F.state, "alice@a.test", id, m));
	assert_int_equal(wse_msg_unresolved(m), 0);
	assert_true(strlen(m->od[0].ref) < 64);
	strcpy(ref, m->od[0].ref);
	wse_msg_free(&m);
}

/* FetchAttachment by user with a token. */
static wse_status
fetch(const char *user, const char *ref, long long offset, long long length,
    struct wse_plugin_stream *s)
{
	char inner[1024];
	int n;

	n = snprintf(inner, sizeof(inner), "<m:Ref>%s</m:Ref>", ref);
	if (offset >= 0)
		n += snprintf(inner + n, sizeof(inner) - (size_t)n,
		    "<m:Offset>%lld</m:Offset>", offset);
	if (length >= 0)
		snprintf(inner + n, sizeof(inner) - (size_t)n,
		    "<m:Length>%lld</m:Length>", length);
	return call_as("FetchAttachment", WSE_PLUGIN_AUTH_TOKEN, user, inner,
	    NULL, s);
}

/* The fetch succeeded with this range: read it through the fd. */
static void
check_stream(struct wse_plugin_stream *s, const uint8_t *data, size_t size,
    uint64_t offset, uint64_t length)
{
	uint8_t *got;
	ssize_t n;

	assert_true(s->fd >= 0);
	assert_int_equal(s->offset, offset);
	assert_int_equal(s->length, length);
	assert_int_equal(s->total, size);
	assert_true((fcntl(s->fd, F_GETFD) & FD_CLOEXEC) != 0);
	assert_non_null(got = malloc(length + 1));
	n = pread(s->fd, got, length, (off_t)offset);
	assert_int_equal(n, (ssize_t)length);
	assert_memory_equal(got, data + offset, length);
	free(got);
	close(s->fd);
	s->fd = -1;
}

static void
assert_refused(const char *user, const char *ref)
{
	struct wse_plugin_stream s;

	assert_wse_status(fetch(user, ref, 0, -1, &s), WSE_ERR_NOT_AUTHORIZED);
	assert_int_equal(s.fd, -1);
}

/* ---- init ---- */

static void
init_fails(const char *args, const char *needle)
{
	void *st = NULL;
	char eb[2048];

	wse_err_clear();
	assert_int_not_equal(plug->init(&host, args, &st), WSE_OK);
	assert_null(st);
	wse_err_format(eb, sizeof(eb));
	if (strstr(eb, needle) == NULL)
		fail_msg("init \"%s\": \"%s\" does not mention \"%s\"", args,
		    eb, needle);
}

static void
test_init(void **state)
{
	char cert[4096], key[4096], bcert[4096], bkey[4096], a[32768],
	    path[8192], dir2[4096];
	struct wse_plugin_host h2;
	struct stat sb;
	void *st = NULL;

	(void)state;
	assert_string_equal(plug->abi, WSE_PLUGIN_ABI);
	assert_string_equal(plug->name, "ondemand");
	assert_string_equal(plug->ops[0], "RequestToken");
	assert_string_equal(plug->ops[4], "FetchAttachment");
	assert_null(plug->ops[5]);
	assert_int_equal(plug->op_flags[4], WSE_PLUGIN_OP_TOKEN |
	    WSE_PLUGIN_OP_STREAM);
	assert_int_equal(plug->op_flags[0], WSE_PLUGIN_OP_PASSWORD);

	/* What the fixture's init made. */
	assert_int_equal(stat(F.dir, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/uploads", F.dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/attachments", F.dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/ondemand.db", F.dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_true(log_has("serving"));

	ca_paths(0, cert, key, sizeof(cert));
	ca_paths(1, bcert, bkey, sizeof(bcert));
	snprintf(dir2, sizeof(dir2), "%s/other", F.tmp);
#define ARGS(...) (snprintf(a, sizeof(a), __VA_ARGS__), a)
	init_fails("", "required");
	init_fails(ARGS("dir=%s ca_cert=%s", dir2, cert), "required");
	init_fails(ARGS("dir=%s ca_cert=%s ca_key=%s foo=1", dir2, cert, key),
	    "unknown argument foo");
	init_fails(ARGS("dir=%s ca_cert=%s ca_key=%s bogus", dir2, cert, key),
	    "not KEY=VALUE");
	init_fails(ARGS("dir=%s ca_cert=%s ca_key=%s token_lifetime=abc", dir2,
	    cert, key), "token_lifetime=abc");
	init_fails(ARGS("dir=%s ca_cert=%s ca_key=%s max_size=0", dir2, cert,
	    key), "max_size=0");
	init_fails(ARGS("dir=%s ca_cert=%s ca_key=%s upload_lifetime=-5", dir2,
	    cert, key), "upload_lifetime=-5");
	init_fails(ARGS("dir=%s ca_cert=%s ca_key=%s "
	    "attachment_lifetime=99999999999999999999", dir2, cert, key),
	    "attachment_lifetime=");
	init_fails(ARGS("dir=%s ca_cert=%s ca_key=%s dir=%s", dir2, cert, key,
	    dir2), "dir given twice");
	init_fails(ARGS("dir=relative ca_cert=%s ca_key=%s", cert, key),
	    "not an absolute path");
	init_fails(ARGS("dir=%s ca_cert=%s/nope.pem ca_key=%s", dir2, P.dir,
	    key), "cannot load");
	init_fails(ARGS("dir=%s ca_cert=%s ca_key=%s/nope.pem", dir2, cert,
	    P.dir), "nope.pem: cannot load");
	/* b.test's domain CA cannot serve a.test */
	init_fails(ARGS("dir=%s ca_cert=%s ca_key=%s", dir2, bcert, bkey),
	    "domain CA of a.test");
	/* a.test's CA with b.test's key */
	init_fails(ARGS("dir=%s ca_cert=%s ca_key=%s", dir2, cert, bkey),
	    "is not the key");
	/* a service certificate is no CA */
	init_fails(ARGS("dir=%s ca_cert=%s/a.test/service.pem "
	    "ca_key=%s/a.test/service-key.pem", dir2, P.dir, P.dir),
	    "not a CA");
	/* the dir's parent must exist */
	init_fails(ARGS("dir=%s/x/y ca_cert=%s ca_key=%s", F.tmp, cert, key),
	    "cannot create");
	assert_int_equal(stat(dir2, &sb), -1);

	/* A URL outside the domain would make every reference refused. */
	h2 = host;
	h2.url = "https://evil.test/wsemail";
	wse_err_clear();
	assert_wse_status(plug->init(&h2, ARGS("dir=%s ca_cert=%s ca_key=%s",
	    dir2, cert, key), &st), WSE_ERR_CONFIG);
	assert_null(st);
	/* A host without a clock */
	h2 = host;
	h2.now = NULL;
	wse_err_clear();
	assert_wse_status(plug->init(&h2, ARGS("dir=%s ca_cert=%s ca_key=%s",
	    dir2, cert, key), &st), WSE_ERR_CONFIG);
	assert_null(st);
	assert_err_has("incomplete host");
	assert_int_equal(stat(dir2, &sb), -1);

	/* Every key accepted; a second instance on its own directory. */
	assert_wse_ok(plug->init(&host, ARGS("dir=%s ca_cert=%s ca_key=%s "
	    "token_lifetime=60 attachment_lifetime=86400 max_size=1024 "
	    "upload_lifetime=3600", dir2, cert, key), &st));
	assert_non_null(st);
	plug->deinit(st);
#undef ARGS
}

/* ---- RequestToken ---- */

static wse_status
request_token(const char *user, const char *pem, xmlDocPtr *doc_r)
{
	wse_buf *in = wse_buf_new(65536);
	wse_status st;

	assert_non_null(in);
	assert_wse_ok(wse_buf_puts(in, "<m:PublicKey>"));
	assert_wse_ok(wse_buf_put_xml_escaped(in, pem, strlen(pem)));
	assert_wse_ok(wse_buf_puts(in, "</m:PublicKey>"));
	st = call_pw("RequestToken", user, wse_buf_str(in), doc_r);
	wse_buf_free(&in);
	return st;
}

static wse_cert *
cert_from_pem(const char *pem)
{
	char path[8192];
	wse_cert *c = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "%s/cert.pem", F.tmp);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fputs(pem, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_wse_ok(wse_cert_load(path, &c));
	unlink(path);
	return c;
}

static char *
rsa_public_pem(unsigned bits)
{
	EVP_PKEY *k = EVP_RSA_gen(bits);
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	assert_non_null(k);
	assert_non_null(b);
	assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
	n = BIO_get_mem_data(b, &data);
	assert_true(n > 0);
	assert_non_null(out = malloc((size_t)n + 1));
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	BIO_free(b);
	EVP_PKEY_free(k);
	return out;
}

static void
test_request_token(void **state)
{
	wse_key *k = NULL;
	wse_buf *pem = wse_buf_new(65536), *capem = wse_buf_new(65536);
	xmlDocPtr doc = NULL;
	wse_cert *tok, *ca, *chain[1];
	char *t, mbox[300], na[21];
	char *rsa;

	(void)state;
	assert_wse_ok(wse_key_generate(&k));
	assert_wse_ok(wse_key_public_pem(k, pem));
	assert_wse_ok(request_token("Alice@a.test", wse_buf_str(pem), &doc));

	t = doc_text(doc, "Token");
	assert_non_null(t);
	tok = cert_from_pem(t);
	free(t);
	t = doc_text(doc, "Ca");
	assert_non_null(t);
	assert_wse_ok(wse_cert_to_pem(P.dom[0].ca, capem));
	assert_string_equal(t, wse_buf_str(capem));
	ca = cert_from_pem(t);
	free(t);

	/* Issued for the user's (normalised) mailbox, to this key, by the
	 * domain CA, for the default hour; it verifies under the root. */
	assert_wse_ok(wse_cert_mailbox(tok, mbox, sizeof(mbox)));
	assert_string_equal(mbox, "alice@a.test");
	assert_true(wse_cert_matches_key(tok, k));
	assert_int_equal(wse_cert_not_after(tok), P.now + 3600);
	wse_time_format(P.now + 3600, na);
	assert_doc_text(doc, "NotAfter", na);
	chain[0] = ca;
	assert_wse_ok(wse_trust_verify(P.trust, tok, chain, 1, P.now,
	    WSE_PURPOSE_TOKEN));
	/* ... and not past its lifetime */
	assert_wse_status(wse_trust_verify(P.trust, tok, chain, 1,
	    P.now + 3601, WSE_PURPOSE_TOKEN), WSE_ERR_CERT_EXPIRED);
	assert_true(log_has("token issued for alice@a.test"));
	xmlFreeDoc(doc);
	wse_cert_free(&tok);
	wse_cert_free(&ca);

	/* Weak keys and garbage are refused. */
	rsa = rsa_public_pem(1024);
	assert_wse_status(request_token("alice@a.test", rsa, NULL),
	    WSE_ERR_UNSUPPORTED);
	free(rsa);
	rsa = rsa_public_pem(2048);
	assert_wse_ok(request_token("alice@a.test", rsa, NULL));
	free(rsa);
	assert_wse_status(request_token("alice@a.test", "-----BEGIN PUBLIC "
	    "KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", NULL),
	    WSE_ERR_INVALID);
	assert_wse_status(call_pw("RequestToken", "alice@a.test", "", NULL),
	    WSE_ERR_INVALID);
	assert_wse_status(call_pw("RequestToken", "alice@a.test",
	    "<m:PublicKey>x</m:PublicKey><m:Extra/>", NULL), WSE_ERR_INVALID);
	/* Only for mailboxes of the CA's domain (the server would never
	 * pass another, but the plugin does not rely on it). */
	assert_wse_status(request_token("mallory@b.test", wse_buf_str(pem),
	    NULL), WSE_ERR_NOT_AUTHORIZED);
	/* A token operation needs the password profile. */
	assert_wse_status(call_as("RequestToken", WSE_PLUGIN_AUTH_TOKEN,
	    "alice@a.test", "", NULL, NULL), WSE_ERR_NOT_AUTHORIZED);

	/* token_lifetime is honoured */
	restart("token_lifetime=600");
	assert_wse_ok(request_token("alice@a.test", wse_buf_str(pem), &doc));
	t = doc_text(doc, "Token");
	tok = cert_from_pem(t);
	free(t);
	assert_int_equal(wse_cert_not_after(tok), P.now + 600);
	wse_cert_free(&tok);
	xmlFreeDoc(doc);

	wse_key_free(&k);
	wse_buf_free(&pem);
	wse_buf_free(&capem);
}

/* ---- UploadAttachment ---- */

static void
test_upload_chunks_resume(void **state)
{
	const size_t len = 300000;
	uint8_t *data = make_bytes(len, 1);
	struct up_result r;
	char hex[65], h[64], path[8192];
	wse_buf *file = NULL;
	struct stat sb;

	(void)state;
	sha_hex(data, len, hex);
	/* first call: names the file, carries the first chunk */
	assert_wse_ok(upload_call("alice@a.test", NULL, "big.bin", len, hex, 0,
	    data, 100000, &r));
	assert_int_equal(strlen(r.handle), 43);
	assert_int_equal(strspn(r.handle, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
	assert_int_equal(r.received, 100000);
	assert_false(r.complete);
	strcpy(h, r.handle);
	assert_true(file_exists("uploads", h));
	snprintf(path, sizeof(path), "%s/uploads/%s", F.dir, h);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	/* an interrupted client asks where it was: empty Data */
	assert_wse_ok(upload_call("alice@a.test", h, "big.bin", len, hex, 0,
	    "", 0, &r));
	assert_int_equal(r.received, 100000);
	assert_false(r.complete);
	assert_wse_ok(upload_call("alice@a.test", h, NULL, -1, NULL, -1, NULL,
	    0, &r));
	assert_int_equal(r.received, 100000);
	assert_string_equal(r.handle, h);

	/* a chunk at the wrong offset is refused, nothing changes */
	assert_wse_status(upload_call("alice@a.test", h, "big.bin", len, hex,
	    0, data, 100000, NULL), WSE_ERR_INVALID);
	assert_wse_status(upload_call("alice@a.test", h, "big.bin", len, hex,
	    150000, data + 150000, 1000, NULL), WSE_ERR_INVALID);
	assert_wse_status(upload_call("alice@a.test", h, "big.bin", len, hex,
	    -1, data + 100000, 1000, NULL), WSE_ERR_INVALID);
	/* later calls must agree with the first */
	assert_wse_status(upload_call("alice@a.test", h, "other.bin", len, hex,
	    100000, data + 100000, 1000, NULL), WSE_ERR_INVALID);
	assert_wse_status(upload_call("alice@a.test", h, "big.bin", len + 1,
	    hex, 100000, data + 100000, 1000, NULL), WSE_ERR_INVALID);
	assert_wse_ok(upload_call("alice@a.test", h, NULL, -1, NULL, -1, NULL,
	    0, &r));
	assert_int_equal(r.received, 100000);

	/* resume after a server restart */
	restart(default_extra);
	assert_wse_ok(upload_call("alice@a.test", h, "big.bin", len, hex,
	    100000, data + 100000, 100000, &r));
	assert_int_equal(r.received, 200000);
	assert_false(r.complete);
	/* more than Size is refused */
	assert_wse_status(upload_call("alice@a.test", h, NULL, -1, NULL,
	    200000, data, 100001, NULL), WSE_ERR_INVALID);
	assert_wse_ok(upload_call("alice@a.test", h, "big.bin", len, hex,
	    200000, data + 200000, 100000, &r));
	assert_int_equal(r.received, len);
	assert_true(r.complete);
	assert_true(log_has("complete (300000 bytes)"));

	/* complete: reports, takes no more data */
	assert_wse_ok(upload_call("alice@a.test", h, NULL, -1, NULL, -1, NULL,
	    0, &r));
	assert_true(r.complete);
	assert_int_equal(r.received, len);
	assert_wse_status(upload_call("alice@a.test", h, NULL, -1, NULL, len,
	    data, 1, NULL), WSE_ERR_INVALID);

	/* the file holds exactly the bytes */
	assert_wse_ok(wse_buf_read_file(path, len + 1, &file));
	assert_int_equal(wse_buf_len(file), len);
	assert_memory_equal(wse_buf_data(file), data, len);
	wse_buf_free(&file);
	free(data);
}

static void
test_upload_empty_file(void **state)
{
	struct up_result r;
	char hex[65];

	(void)state;
	sha_hex("", 0, hex);
	assert_wse_ok(upload_call("alice@a.test", NULL, "empty.txt", 0, hex, 0,
	    NULL, 0, &r));
	assert_true(r.complete);
	assert_int_equal(r.received, 0);
}

static void
test_upload_digest_mismatch(void **state)
{
	const size_t len = 150000;
	uint8_t *data = make_bytes(len, 2);
	struct up_result r;
	char hex[65], h[64];

	(void)state;
	sha_hex(data, len, hex);
	data[len - 1] ^= 1;	/* the bytes differ from the digest */
	assert_wse_ok(upload_call("alice@a.test", NULL, "x.bin", len, hex, 0,
	    data, 100000, &r));
	strcpy(h, r.handle);
	assert_wse_status(upload_call("alice@a.test", h, "x.bin", len, hex,
	    100000, data + 100000, len - 100000, NULL), WSE_ERR_INVALID);
	/* dropped: handle and file gone */
	assert_false(file_exists("uploads", h));
	assert_wse_status(upload_call("alice@a.test", h, NULL, -1, NULL, -1,
	    NULL, 0, NULL), WSE_ERR_NOT_FOUND);
	assert_true(log_has("SHA-256 mismatch"));
	/* in one call as well */
	assert_wse_status(upload_call("alice@a.test", NULL, "x.bin", len, hex,
	    0, data, len, NULL), WSE_ERR_INVALID);
	assert_int_equal(count_files("uploads"), 0);
	free(data);
}

static void
test_upload_wrong_owner(void **state)
{
	const size_t len = 1000;
	uint8_t *data = make_bytes(len, 3);
	struct up_result r;
	char hex[65], h[64];

	(void)state;
	sha_hex(data, len, hex);
	assert_wse_ok(upload_call("alice@a.test", NULL, "a.bin", len, hex, 0,
	    data, 10, &r));
	strcpy(h, r.handle);
	/* bob can neither see nor write alice's upload */
	assert_wse_status(upload_call("bob@a.test", h, NULL, -1, NULL, -1,
	    NULL, 0, NULL), WSE_ERR_NOT_FOUND);
	assert_wse_status(upload_call("bob@a.test", h, "a.bin", len, hex, 10,
	    data + 10, 10, NULL), WSE_ERR_NOT_FOUND);
	/* nor can anybody guess: unknown and malformed handles */
	assert_wse_status(upload_call("alice@a.test",
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL, -1, NULL, -1,
	    NULL, 0, NULL), WSE_ERR_NOT_FOUND);
	assert_wse_status(upload_call("alice@a.test", "../../etc/passwd", NULL,
	    -1, NULL, 10, data, 10, NULL), WSE_ERR_NOT_FOUND);
	/* alice's upload is intact; the user name's case does not matter */
	assert_wse_ok(upload_call("ALICE@A.TEST", h, "a.bin", len, hex, 10,
	    data + 10, len - 10, &r));
	assert_true(r.complete);
	free(data);
}

static void
test_upload_limits(void **state)
{
	uint8_t *data;
	struct up_result r;
	char hex[65], name[300];
	static const char *const bad_names[] = { "a/b", ".hidden", "x&#9;y",
	    "&#133;x", "x&#127;", "", "cod&#x202E;fdp.exe", "a&#x2067;b",
	    "a&#x200F;b", "a&#x2028;b", NULL };
	size_t i;

	(void)state;
	sha_hex("x", 1, hex);
	/* Size over max_size */
	assert_wse_status(upload_call("alice@a.test", NULL, "huge.iso",
	    MAX_SIZE + 1LL, hex, 0, NULL, 0, NULL), WSE_ERR_TOO_LARGE);
	assert_wse_ok(upload_call("alice@a.test", NULL, "max.iso",
	    MAX_SIZE, hex, 0, NULL, 0, &r));
	/* a chunk over 4 MiB */
	data = make_bytes(4u * 1024 * 1024 + 1, 4);
	assert_wse_status(upload_call("alice@a.test", r.handle, NULL, -1, NULL,
	    0, data, 4u * 1024 * 1024 + 1, NULL), WSE_ERR_TOO_LARGE);
	/* exactly 4 MiB is fine */
	assert_wse_ok(upload_call("alice@a.test", r.handle, NULL, -1, NULL, 0,
	    data, 4u * 1024 * 1024, &r));
	assert_int_equal(r.received, 4u * 1024 * 1024);
	free(data);
	/* data past Size in the first call */
	assert_wse_status(upload_call("alice@a.test", NULL, "s.bin", 1, hex, 0,
	    "xy", 2, NULL), WSE_ERR_INVALID);

	/* names */
	for (i = 0; bad_names[i] != NULL; i++)
		assert_wse_status(upload_call("alice@a.test", NULL,
		    bad_names[i], 1, hex, 0, NULL, 0, NULL), WSE_ERR_INVALID);
	memset(name, 'n', 256);
	name[256] = '\0';
	assert_wse_status(upload_call("alice@a.test", NULL, name, 1, hex, 0,
	    NULL, 0, NULL), WSE_ERR_INVALID);
	name[255] = '\0';
	assert_wse_ok(upload_call("alice@a.test", NULL, name, 1, hex, 0, "x",
	    1, &r));
	assert_true(r.complete);
	assert_wse_ok(upload_call("alice@a.test", NULL, "r&#233;sum&#233; "
	    "&amp; co.pdf", 1, hex, 0, NULL, 0, NULL));
	/* the other fields */
	assert_wse_status(upload_call("alice@a.test", NULL, "a", 1, "abc", 0,
	    NULL, 0, NULL), WSE_ERR_INVALID);
	assert_wse_status(upload_call("alice@a.test", NULL, "a", 1, NULL, 0,
	    NULL, 0, NULL), WSE_ERR_INVALID);
	assert_wse_status(upload_call("alice@a.test", NULL, "a", -1, hex, 0,
	    NULL, 0, NULL), WSE_ERR_INVALID);
	assert_wse_status(upload_call("alice@a.test", NULL, "a", 1, hex, 5,
	    NULL, 0, NULL), WSE_ERR_INVALID);
	assert_wse_status(call_pw("UploadAttachment", "alice@a.test",
	    "<m:Name>a</m:Name><m:Size>-1</m:Size>", NULL), WSE_ERR_INVALID);
	assert_wse_status(call_pw("UploadAttachment", "alice@a.test",
	    "<m:Name>a</m:Name><m:Name>b</m:Name>", NULL), WSE_ERR_INVALID);
	assert_wse_status(call_pw("UploadAttachment", "alice@a.test",
	    "<m:Data>!!!</m:Data>", NULL), WSE_ERR_INVALID);
}

#define SHA0 "0000000000000000000000000000000000000000000000000000000000000000"
#define A16 "aaaaaaaaaaaaaaaa"
#define A256 A16 A16 A16 A16 A16 A16 A16 A16 A16 A16 A16 A16 A16 A16 A16 A16
#define G16 "gggggggggggggggg"
#define NEW(type, size) "<m:Name>n.bin</m:Name>" type "<m:Size>" size \
	"</m:Size><m:Sha256>" SHA0 "</m:Sha256>"

/*
 * UploadAttachment refused, each for its own reason: every refusal
 * stores nothing (no row, no file, no byte received) and leaves the
 * uploads in progress as they were; they finish afterwards with their
 * digests.
 */
static void
test_upload_refusals(void **state)
{
	enum { NONE, PART, EMPTY, DONE, BOBS, SENT };
	static const struct {
		const char *user;
		int h;			/* the handle @H@ stands for */
		const char *inner, *why;
		wse_status want;
	} c[] = {
		/* new uploads */
		{ "alice@a.test", NONE, NEW("<m:Type>text/plain&#9;x</m:Type>",
		  "1"), "bad media type", WSE_ERR_INVALID },
		{ "alice@a.test", NONE, NEW("<m:Type>t&#233;xt/plain</m:Type>",
		  "1"), "bad media type", WSE_ERR_INVALID },
		{ "alice@a.test", NONE, NEW("<m:Type></m:Type>", "1"),
		  "bad media type", WSE_ERR_INVALID },
		{ "alice@a.test", NONE, NEW("<m:Type>" A256 "</m:Type>", "1"),
		  "bad media type", WSE_ERR_INVALID },
		{ "alice@a.test", NONE, NEW("", "10000001"),
		  "upload of 10000001 bytes, the limit is 10000000",
		  WSE_ERR_TOO_LARGE },
		{ "alice@a.test", NONE, NEW("", "10000001") "<m:Data>eA==</m:Data>",
		  "the limit is 10000000", WSE_ERR_TOO_LARGE },
		{ "alice@a.test", NONE, NEW("", "99999999999999999999"),
		  "m:Size is not a number", WSE_ERR_INVALID },
		{ "alice@a.test", NONE, NEW("", "-1"), "m:Size is not a number",
		  WSE_ERR_INVALID },
		{ "alice@a.test", NONE, "<m:Name>n.bin</m:Name><m:Size>1</m:Size>",
		  "needs m:Name, m:Size and m:Sha256", WSE_ERR_INVALID },
		{ "alice@a.test", NONE, "<m:Name>n.bin</m:Name><m:Size>1</m:Size>"
		  "<m:Sha256>" A16 "</m:Sha256>", "not 64 hex digits",
		  WSE_ERR_INVALID },
		{ "alice@a.test", NONE, "<m:Name>n.bin</m:Name><m:Size>1</m:Size>"
		  "<m:Sha256>" G16 G16 G16 G16 "</m:Sha256>",
		  "not 64 hex digits", WSE_ERR_INVALID },
		{ "alice@a.test", NONE, NEW("", "1") "<m:Offset>1</m:Offset>",
		  "starts at offset 0", WSE_ERR_INVALID },
		{ "alice@a.test", NONE, NEW("", "1") "<m:Data>eHk=</m:Data>",
		  "more data than m:Size", WSE_ERR_INVALID },
		{ "alice@a.test", NONE, NEW("", "1") "<m:Data>e!==</m:Data>",
		  "bad m:Data", WSE_ERR_INVALID },
		{ "alice@a.test", NONE, "<m:Name>a/b</m:Name><m:Size>1</m:Size>"
		  "<m:Sha256>" SHA0 "</m:Sha256>", "bad attachment name",
		  WSE_ERR_INVALID },
		{ "alice@a.test", NONE, NEW("", "1") "<m:Name>o.bin</m:Name>",
		  "several m:Name", WSE_ERR_INVALID },
		{ "alice@a.test", NONE, NEW("", "1") "<m:Owner>bob@a.test"
		  "</m:Owner>", "unexpected element Owner", WSE_ERR_INVALID },
		{ "alice@a.test", NONE, "<m:Name>n<m:b/></m:Name><m:Size>1"
		  "</m:Size><m:Sha256>" SHA0 "</m:Sha256>", "bad m:Name",
		  WSE_ERR_INVALID },
		/* later calls */
		{ "alice@a.test", NONE, "<m:Upload>" A256 "a</m:Upload>",
		  "bad m:Upload", WSE_ERR_TOO_LARGE },
		{ "alice@a.test", NONE, "<m:Upload>../uploads/x</m:Upload>"
		  "<m:Offset>0</m:Offset><m:Data>eA==</m:Data>",
		  "no such upload", WSE_ERR_NOT_FOUND },
		{ "alice@a.test", NONE, "<m:Upload>AAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		  "AAAAAAAAAAAAAAA</m:Upload><m:Offset>0</m:Offset>"
		  "<m:Data>eA==</m:Data>", "no upload AAAAAAAA",
		  WSE_ERR_NOT_FOUND },
		{ "bob@a.test", PART, "<m:Upload>@H@</m:Upload><m:Offset>1000"
		  "</m:Offset><m:Data>eA==</m:Data>",
		  "bob@a.test: no upload", WSE_ERR_NOT_FOUND },
		{ "alice@a.test", BOBS, "<m:Upload>@H@</m:Upload><m:Offset>0"
		  "</m:Offset><m:Data>eA==</m:Data>",
		  "alice@a.test: no upload", WSE_ERR_NOT_FOUND },
		{ "alice@a.test", SENT, "<m:Upload>@H@</m:Upload>",
		  "alice@a.test: no upload", WSE_ERR_NOT_FOUND },
		{ "alice@a.test", PART, "<m:Upload>@H@</m:Upload><m:Name>o.bin"
		  "</m:Name>", "differ from the first call", WSE_ERR_INVALID },
		{ "alice@a.test", PART, "<m:Upload>@H@</m:Upload><m:Type>"
		  "text/plain</m:Type>", "differ from the first call",
		  WSE_ERR_INVALID },
		{ "alice@a.test", PART, "<m:Upload>@H@</m:Upload><m:Size>3001"
		  "</m:Size>", "differ from the first call", WSE_ERR_INVALID },
		{ "alice@a.test", PART, "<m:Upload>@H@</m:Upload><m:Sha256>"
		  SHA0 "</m:Sha256>", "differ from the first call",
		  WSE_ERR_INVALID },
		{ "alice@a.test", PART, "<m:Upload>@H@</m:Upload><m:Offset>0"
		  "</m:Offset><m:Data>eA==</m:Data>", "1 bytes at offset 0, "
		  "but 1000 of 3000 received", WSE_ERR_INVALID },
		{ "alice@a.test", PART, "<m:Upload>@H@</m:Upload><m:Offset>1001"
		  "</m:Offset><m:Data>eA==</m:Data>", "1 bytes at offset 1001",
		  WSE_ERR_INVALID },
		{ "alice@a.test", EMPTY, "<m:Upload>@H@</m:Upload>"
		  "<m:Data>eA==</m:Data>", "1 bytes at offset 0, but 0 of 4",
		  WSE_ERR_INVALID },
		{ "alice@a.test", EMPTY, "<m:Upload>@H@</m:Upload><m:Offset>0"
		  "</m:Offset><m:Data>eHl6d3p4</m:Data>", "6 bytes at offset 0, "
		  "but 0 of 4", WSE_ERR_INVALID },
		{ "alice@a.test", DONE, "<m:Upload>@H@</m:Upload><m:Offset>1"
		  "</m:Offset><m:Data>eA==</m:Data>", "(complete)",
		  WSE_ERR_INVALID },
	};
	const size_t len = 3000;
	uint8_t *data = make_bytes(len, 20);
	char h[SENT + 1][64], hex[65], x[65], inner[1024];
	struct up_result r;
	struct kept k;
	wse_msg *m;
	wse_status st;
	size_t i;

	(void)state;
	sha_hex(data, len, hex);
	sha_hex("x", 1, x);
	h[NONE][0] = '\0';
	assert_wse_ok(upload_call("alice@a.test", NULL, "part.bin", len, hex, 0,
	    data, 1000, &r));
	strcpy(h[PART], r.handle);
	assert_wse_ok(upload_call("alice@a.test", NULL, "empty.bin", 4, SHA0,
	    0, NULL, 0, &r));
	strcpy(h[EMPTY], r.handle);
	upload_all("alice@a.test", "done.bin", (const uint8_t *)"x", 1, 1,
	    h[DONE]);
	assert_wse_ok(upload_call("bob@a.test", NULL, "bob.bin", len, hex, 0,
	    data, 10, &r));
	strcpy(h[BOBS], r.handle);
	upload_all("alice@a.test", "sent.bin", (const uint8_t *)"x", 1, 1,
	    h[SENT]);
	m = make_msg("alice@a.test", h[SENT]);
	assert_wse_ok(plug->submit(F.state, "alice@a.test", msg_id, m));
	wse_msg_free(&m);

	kept(&k);
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char eb[2048];

		wse_err_clear();
		st = call_pw("UploadAttachment", c[i].user,
		    with_handle(c[i].inner, h[c[i].h], inner, sizeof(inner)),
		    NULL);
		wse_err_format(eb, sizeof(eb));
		if (st != c[i].want || strstr(eb, c[i].why) == NULL)
			fail_msg("case %zu (%s): got %s: %s", i, c[i].why,
			    wse_status_name(st), eb);
		assert_kept(&k);
	}
	wse_err_clear();

	/* the uploads go on where they were */
	assert_int_equal(received_of("alice@a.test", h[PART]), 1000);
	assert_int_equal(received_of("alice@a.test", h[EMPTY]), 0);
	assert_int_equal(received_of("bob@a.test", h[BOBS]), 10);
	assert_wse_ok(upload_call("alice@a.test", h[PART], NULL, -1, NULL, 1000,
	    data + 1000, len - 1000, &r));
	assert_true(r.complete);
	assert_wse_ok(upload_call("bob@a.test", h[BOBS], NULL, -1, NULL, 10,
	    data + 10, len - 10, &r));
	assert_true(r.complete);
	assert_wse_ok(upload_call("alice@a.test", h[DONE], NULL, -1, NULL, -1,
	    NULL, 0, &r));
	assert_true(r.complete);
	/* max_size itself is allowed */
	assert_wse_ok(call_pw("UploadAttachment", "alice@a.test",
	    NEW("", "10000000"), NULL));
	free(data);
}

/*
 * At most UPLOADS_MAX (64) unsent uploads per user: the next new upload
 * is TooLarge and stores nothing (not even its first chunk); the user's
 * uploads and other users are not affected, and an upload sent with a
 * message no longer counts.
 */
static void
test_upload_quota(void **state)
{
	char x[65], hc[64];
	struct up_result r;
	struct kept k;
	wse_msg *m;
	size_t i;

	(void)state;
	sha_hex("x", 1, x);
	for (i = 0; i < 63; i++)
		assert_wse_ok(upload_call("bob@a.test", NULL, "f", 1, x, 0,
		    NULL, 0, NULL));
	upload_all("bob@a.test", "c", (const uint8_t *)"x", 1, 1, hc);
	kept(&k);
	assert_int_equal(k.unsent, 64);
	wse_err_clear();
	assert_wse_status(upload_call("bob@a.test", NULL, "g", 1, x, 0, "x", 1,
	    NULL), WSE_ERR_TOO_LARGE);
	assert_err_has("bob@a.test has 64 unsent uploads already");
	assert_wse_status(upload_call("BOB@A.TEST", NULL, "g", 1, x, 0, NULL,
	    0, NULL), WSE_ERR_TOO_LARGE);
	assert_kept(&k);
	assert_false(log_has("started by bob@a.test: g"));
	/* bob's uploads still serve him; carol has her own room */
	assert_int_equal(received_of("bob@a.test", hc), 1);
	assert_wse_ok(upload_call("carol@a.test", NULL, "f", 1, x, 0, NULL, 0,
	    NULL));
	/* a sent upload leaves room for one more */
	m = make_msg("bob@a.test", hc);
	assert_wse_ok(plug->submit(F.state, "bob@a.test", msg_id, m));
	wse_msg_free(&m);
	assert_wse_ok(upload_call("bob@a.test", NULL, "g", 1, x, 0, "x", 1,
	    &r));
	assert_true(r.complete);
	assert_wse_status(upload_call("bob@a.test", NULL, "h", 1, x, 0, NULL,
	    0, NULL), WSE_ERR_TOO_LARGE);
	wse_err_clear();
}

/*
 * A chunk that cannot be written (here beyond the process's file size
 * limit, as on a full disk): a first call leaves no upload behind (its
 * handle was never answered), a later call leaves the upload as it was,
 * to be resumed.
 */
static void
test_upload_write_fails(void **state)
{
	const size_t len = 3u << 20;
	uint8_t *data = make_bytes(len, 21);
	struct rlimit old, small;
	void (*oldsig)(int);
	struct up_result r;
	char hex[65], h[64];
	struct kept k;
	wse_status st;

	(void)state;
	sha_hex(data, len, hex);
	oldsig = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = old;
	small.rlim_cur = 1u << 20;

	kept(&k);
	wse_err_clear();
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	st = upload_call("alice@a.test", NULL, "big.bin", len, hex, 0, data,
	    2u << 20, NULL);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_wse_status(st, WSE_ERR_IO);
	assert_err_has("cannot write upload");
	assert_kept(&k);
	assert_true(log_has("dropped: the call that started it failed"));

	/* a later call */
	assert_wse_ok(upload_call("alice@a.test", NULL, "big.bin", len, hex, 0,
	    data, 512u << 10, &r));
	strcpy(h, r.handle);
	kept(&k);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	st = upload_call("alice@a.test", h, NULL, -1, NULL, 512u << 10,
	    data + (512u << 10), 1u << 20, NULL);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	(void)signal(SIGXFSZ, oldsig);
	assert_wse_status(st, WSE_ERR_IO);
	wse_err_clear();
	assert_int_equal(received_of("alice@a.test", h), 512u << 10);
	assert_int_equal(db_num("SELECT count(*) FROM upload"), k.uploads);
	assert_wse_ok(upload_call("alice@a.test", h, NULL, -1, NULL, 512u << 10,
	    data + (512u << 10), len - (512u << 10), &r));
	assert_true(r.complete);
	free(data);
}

/*
 * New uploads, each by a thread of its own (they stop at the gate).  The
 * threads are detached and counted: starters_wait() waits for all (the
 * teardown too, so that a failed test never unloads the plugin under
 * them).
 */
struct starter {
	char user[64];
	const char *name;
	const uint8_t *data;
	size_t size, len;
	char hex[65];
	wse_status st;
	unsigned long long received;
};

static int starters;		/* running; under gate_lock */

static void *
starter_main(void *arg)
{
	struct starter *a = arg;
	struct up_result r;

	memset(&r, 0, sizeof(r));
	a->st = upload_call(a->user, NULL, a->name, (long long)a->size,
	    a->hex, 0, a->data, a->len, &r);
	a->received = r.received;
	pthread_mutex_lock(&gate_lock);
	starters--;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
	return NULL;
}

static void
starter_start(struct starter *a)
{
	pthread_attr_t attr;
	pthread_t t;

	assert_int_equal(pthread_attr_init(&attr), 0);
	assert_int_equal(pthread_attr_setdetachstate(&attr,
	    PTHREAD_CREATE_DETACHED), 0);
	assert_int_equal(pthread_attr_setstacksize(&attr, 1u << 20), 0);
	pthread_mutex_lock(&gate_lock);
	starters++;
	pthread_mutex_unlock(&gate_lock);
	if (pthread_create(&t, &attr, starter_main, a) != 0) {
		pthread_mutex_lock(&gate_lock);
		starters--;
		pthread_mutex_unlock(&gate_lock);
		fail_msg("pthread_create failed");
	}
	pthread_attr_destroy(&attr);
}

/* Open the gate and wait (at most 60 s) until every starter is done. */
static int
starters_wait(void)
{
	struct timespec dl;
	int n;

	gate_open();
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 60;
	pthread_mutex_lock(&gate_lock);
	while (starters > 0 && pthread_cond_timedwait(&gate_cond, &gate_lock,
	    &dl) == 0)
		;
	n = starters;
	pthread_mutex_unlock(&gate_lock);
	return n;
}

/* The name of the only file in dir/uploads. */
static void
only_upload(char h[64])
{
	char path[8192];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/uploads", F.dir);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.') {
			assert_true(strlen(de->d_name) < 64);
			strcpy(h, de->d_name);
			n++;
		}
	closedir(d);
	assert_int_equal(n, 1);
}

/*
 * While one call writes an upload, a second writer of the same upload is
 * told TempFail and writes nothing; asking for Received is answered, a
 * Submit naming it is refused; when the first call ends, its bytes are
 * there and the upload finishes with its digest.
 */
static void
test_upload_busy(void **state)
{
	const size_t len = 3000;
	uint8_t *data = make_bytes(len, 22), *other = make_bytes(len, 23);
	struct starter a;
	struct up_result r;
	struct kept k;
	char h[64], bh[64];
	wse_msg *m;

	(void)state;
	memset(&a, 0, sizeof(a));
	strcpy(a.user, "alice@a.test");
	a.name = "busy.bin";
	a.data = data;
	a.size = len;
	a.len = 1000;
	sha_hex(data, len, a.hex);
	gate_arm("started by alice@a.test");
	starter_start(&a);
	gate_wait(1);
	only_upload(h);

	kept(&k);
	wse_err_clear();
	assert_wse_status(upload_call("alice@a.test", h, NULL, -1, NULL, 0,
	    other, 1000, NULL), WSE_ERR_TEMPFAIL);
	assert_err_has("is being written by another call");
	assert_wse_status(upload_call("alice@a.test", h, NULL, -1, NULL, 0,
	    other, len, NULL), WSE_ERR_TEMPFAIL);
	wse_err_clear();
	assert_kept(&k);
	assert_int_equal(received_of("alice@a.test", h), 0);
	m = make_msg("alice@a.test", h);
	assert_wse_status(plug->submit(F.state, "alice@a.test", msg_id, m),
	    WSE_ERR_INVALID);
	assert_err_has("is not complete");
	wse_msg_free(&m);
	assert_kept(&k);
	/* other uploads go on meanwhile */
	upload_all("bob@a.test", "b.bin", other, len, 1000, bh);

	assert_int_equal(starters_wait(), 0);
	assert_wse_ok(a.st);
	assert_int_equal(a.received, 1000);
	assert_wse_ok(upload_call("alice@a.test", h, NULL, -1, NULL, 1000,
	    data + 1000, len - 1000, &r));
	assert_true(r.complete);	/* the digest: only the first's bytes */
	free(data);
	free(other);
}

/*
 * At most BUSY_MAX (256) uploads are written at once: the next new
 * upload is TempFail, and the row and file it had made are gone again.
 */
static void
test_upload_busy_max(void **state)
{
	enum { N = 256 };
	static struct starter a[N];
	char x[65];
	struct kept k;
	int i;

	(void)state;
	sha_hex("x", 1, x);
	memset(a, 0, sizeof(a));
	gate_arm("started by u");
	for (i = 0; i < N; i++) {
		snprintf(a[i].user, sizeof(a[i].user), "u%d@a.test", i);
		a[i].name = "f";
		a[i].size = 1;
		strcpy(a[i].hex, x);
		starter_start(&a[i]);
	}
	gate_wait(N);
	kept(&k);
	assert_int_equal(k.uploads, N);
	wse_err_clear();
	assert_wse_status(upload_call("late@a.test", NULL, "f", 1, x, 0, "x",
	    1, NULL), WSE_ERR_TEMPFAIL);
	assert_err_has("256 uploads are being written");
	assert_kept(&k);
	assert_int_equal(starters_wait(), 0);
	for (i = 0; i < N; i++)
		assert_wse_ok(a[i].st);
	assert_wse_ok(upload_call("late@a.test", NULL, "f", 1, x, 0, "x", 1,
	    NULL));
}

/* ---- the submit hook ---- */

static void
test_submit_resolves(void **state)
{
	const size_t len = 200000;
	uint8_t *data = make_bytes(len, 5);
	char h[64], hex[65], path[8192];
	wse_buf *file = NULL;
	wse_msg *m;
	struct stat sb;

	(void)state;
	sha_hex(data, len, hex);
	upload_all("alice@a.test", "report.pdf", data, len, 70000, h);
	m = make_msg("alice@a.test", NULL);
	/* an entry resolved elsewhere stays as it is */
	assert_wse_ok(wse_msg_add_ondemand(m, "https://c.test/wsemail",
	    "cccccccccccccccccccccccccccccccccccccccccccc", "c.txt", NULL, 3,
	    hex));
	assert_wse_ok(wse_msg_add_upload(m, h));
	assert_wse_ok(plug->submit(F.state, "alice@a.test", msg_id, m));
	assert_int_equal(wse_msg_unresolved(m), 0);
	assert_string_equal(m->od[0].server, "https://c.test/wsemail");
	assert_null(m->od[1].upload);
	assert_string_equal(m->od[1].server, URL);
	assert_int_equal(strlen(m->od[1].ref), 43);
	assert_string_not_equal(m->od[1].ref, h);
	assert_string_equal(m->od[1].name, "report.pdf");
	assert_string_equal(m->od[1].type, "application/octet-stream");
	assert_int_equal(m->od[1].size, len);
	assert_string_equal(m->od[1].sha256, hex);
	/* the bytes moved from the upload to the attachment */
	assert_false(file_exists("uploads", h));
	snprintf(path, sizeof(path), "%s/attachments/%s", F.dir,
	    m->od[1].ref);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_wse_ok(wse_buf_read_file(path, len + 1, &file));
	assert_memory_equal(wse_buf_data(file), data, len);
	wse_buf_free(&file);
	wse_msg_free(&m);

	/* a message without on-demand entries is untouched */
	m = make_msg("alice@a.test", NULL);
	assert_wse_ok(plug->submit(F.state, "alice@a.test", msg_id, m));
	wse_msg_free(&m);
	free(data);
}

#define ID129 "urn:uuid:" A16 A16 A16 A16 A16 A16 A16 "aaaaaaaa"

/*
 * The submit hook refuses, each for its own reason, a message naming an
 * upload that is not a complete, unsent upload of the sender, or that
 * comes without a sender or an id.  A refused message records nothing:
 * no attachment, recipient or file, even when an entry before the bad
 * one had been linked already, and every upload stays as it was.
 */
static void
test_submit_refusals(void **state)
{
	enum { A, B, I, V, BAD, UNKNOWN, NH };
	static const struct {
		const char *user, *id;
		int h[2];		/* the message's uploads (-1: none) */
		const char *why;
		wse_status want;
	} c[] = {
		{ "alice@a.test", msg_id, { B, -1 }, "is not an upload of this "
		  "user", WSE_ERR_INVALID },
		{ "alice@a.test", msg_id, { UNKNOWN, -1 }, "is not an upload of "
		  "this user", WSE_ERR_INVALID },
		{ "alice@a.test", msg_id, { I, -1 }, "is not complete (100 of "
		  "5000 bytes)", WSE_ERR_INVALID },
		{ "alice@a.test", msg_id, { BAD, -1 }, "bad upload handle",
		  WSE_ERR_INVALID },
		/* one upload twice; a good one before a bad one; a good one
		 * before one whose file is gone */
		{ "alice@a.test", msg_id, { A, A }, "was already sent with a "
		  "message", WSE_ERR_INVALID },
		{ "alice@a.test", msg_id, { A, I }, "is not complete",
		  WSE_ERR_INVALID },
		{ "alice@a.test", msg_id, { A, V }, "cannot move upload",
		  WSE_ERR_IO },
		{ "ALICE@A.TEST", msg_id, { B, -1 }, "is not an upload of this "
		  "user", WSE_ERR_INVALID },
		{ NULL, msg_id, { A, -1 }, "without a sender or an id",
		  WSE_ERR_INVALID },
		{ "alice@a.test", NULL, { A, -1 }, "without a sender or an id",
		  WSE_ERR_INVALID },
		{ "alice@a.test", "", { A, -1 }, "without a sender or an id",
		  WSE_ERR_INVALID },
		{ "alice@a.test", ID129, { A, -1 }, "without a sender or an id",
		  WSE_ERR_INVALID },
		{ "alice", msg_id, { A, -1 }, "bad sender", WSE_ERR_INVALID },
	};
	const size_t len = 5000;
	uint8_t *data = make_bytes(len, 6);
	char h[NH][64], hex[65], path[8192];
	struct up_result r;
	struct kept k;
	wse_msg *m;
	size_t i, j;

	(void)state;
	sha_hex(data, len, hex);
	upload_all("alice@a.test", "a.bin", data, len, 4096, h[A]);
	upload_all("bob@a.test", "b.bin", data, len, 4096, h[B]);
	assert_wse_ok(upload_call("alice@a.test", NULL, "i.bin", len, hex, 0,
	    data, 100, &r));
	strcpy(h[I], r.handle);
	upload_all("alice@a.test", "v.bin", data, len, 4096, h[V]);
	snprintf(path, sizeof(path), "%s/uploads/%s", F.dir, h[V]);
	assert_int_equal(unlink(path), 0);
	strcpy(h[BAD], "CCCCCCCCCCCCCCCCCCCC");
	strcpy(h[UNKNOWN], "UUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUUU");

	kept(&k);
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char eb[2048];
		wse_status st;

		m = make_msg("alice@a.test", NULL);
		for (j = 0; j < 2; j++)
			if (c[i].h[j] >= 0)
				assert_wse_ok(wse_msg_add_upload(m,
				    h[c[i].h[j]]));
		wse_err_clear();
		st = plug->submit(F.state, c[i].user, c[i].id, m);
		wse_err_format(eb, sizeof(eb));
		if (st != c[i].want || strstr(eb, c[i].why) == NULL)
			fail_msg("case %zu (%s): got %s: %s", i, c[i].why,
			    wse_status_name(st), eb);
		wse_msg_free(&m);
		assert_kept(&k);
		assert_false(log_has("(upload "));
	}
	wse_err_clear();
	assert_true(file_exists("uploads", h[A]));
	assert_int_equal(received_of("alice@a.test", h[A]), len);
	assert_int_equal(received_of("alice@a.test", h[I]), 100);

	/* the refused uploads still serve their owners */
	m = make_msg("bob@a.test", h[B]);
	assert_wse_ok(plug->submit(F.state, "bob@a.test", msg_id, m));
	wse_msg_free(&m);
	m = make_msg("alice@a.test", h[A]);
	assert_wse_ok(plug->submit(F.state, "alice@a.test", msg_id, m));
	wse_msg_free(&m);
	assert_int_equal(count_files("attachments"), 2);
	/* ... once */
	m = make_msg("alice@a.test", h[A]);
	assert_wse_status(plug->submit(F.state, "alice@a.test", msg_id, m),
	    WSE_ERR_INVALID);
	assert_non_null(m->od[0].upload);
	wse_msg_free(&m);
	/* and a sent upload is no longer an upload */
	assert_wse_status(upload_call("alice@a.test", h[A], NULL, -1, NULL, -1,
	    NULL, 0, NULL), WSE_ERR_NOT_FOUND);
	free(data);
}

/* ---- FetchAttachment ---- */

static void
test_fetch_ranges(void **state)
{
	const size_t len = 123457;
	uint8_t *data = make_bytes(len, 7);
	struct wse_plugin_stream s;
	char ref[64];

	(void)state;
	send_attachment(data, len, msg_id, ref);
	/* the whole file, a To recipient of another domain */
	assert_wse_ok(fetch("bob@b.test", ref, -1, -1, &s));
	check_stream(&s, data, len, 0, len);
	/* a range, a Cc recipient, the address in another case */
	assert_wse_ok(fetch("Carol@A.test", ref, 1000, 5000, &s));
	check_stream(&s, data, len, 1000, 5000);
	/* from an offset to the end */
	assert_wse_ok(fetch("bob@b.test", ref, 100000, -1, &s));
	check_stream(&s, data, len, 100000, len - 100000);
	/* a length past the end stops at the end */
	assert_wse_ok(fetch("bob@b.test", ref, len - 10, 1000, &s));
	check_stream(&s, data, len, len - 10, 10);
	/* at the end: nothing */
	assert_wse_ok(fetch("bob@b.test", ref, len, -1, &s));
	assert_int_equal(s.length, 0);
	close(s.fd);
	/* past the end: malformed */
	assert_wse_status(fetch("bob@b.test", ref, len + 1, -1, &s),
	    WSE_ERR_INVALID);
	assert_int_equal(s.fd, -1);
	/* malformed requests */
	assert_wse_status(call_as("FetchAttachment", WSE_PLUGIN_AUTH_TOKEN,
	    "bob@b.test", "<m:Offset>0</m:Offset>", NULL, &s),
	    WSE_ERR_INVALID);
	/* a server that offers no stream */
	assert_wse_status(fetch("bob@b.test", ref, -1, -1, NULL),
	    WSE_ERR_INTERNAL);
	free(data);
}

static void
test_fetch_refusals(void **state)
{
	const size_t len = 4000;
	uint8_t *data = make_bytes(len, 8);
	char ref[64], ref2[64];
	struct wse_plugin_stream s;
	char eb[2048], first[2048];
	struct kept k;

	(void)state;
	send_attachment(data, len, msg_id, ref);
	/* not a recipient - the sender is not one either */
	wse_err_clear();
	assert_refused("mallory@b.test", ref);
	wse_err_format(first, sizeof(first));
	assert_refused("alice@a.test", ref);
	/* unknown and malformed references */
	assert_refused("bob@b.test",
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	assert_refused("bob@b.test", "../attachments/x");
	assert_refused("bob@b.test", "");
	/* a fetch with the password profile */
	assert_wse_status(call_as("FetchAttachment", WSE_PLUGIN_AUTH_PASSWORD,
	    "bob@b.test", "<m:Ref>x</m:Ref>", NULL, &s),
	    WSE_ERR_NOT_AUTHORIZED);

	/* revoked */
	send_attachment(data, len, "urn:uuid:revoked", ref2);
	assert_wse_ok(fetch("bob@b.test", ref2, 0, -1, &s));
	close(s.fd);
	assert_wse_ok(call_pw("RevokeAttachment", "alice@a.test",
	    "<m:Id>urn:uuid:revoked</m:Id>", NULL));
	wse_err_clear();
	kept(&k);
	assert_refused("bob@b.test", ref2);
	assert_kept(&k);
	/* the same words for every refusal but the names */
	wse_err_format(eb, sizeof(eb));
	assert_non_null(strstr(eb, "fetch refused"));
	assert_non_null(strstr(first, "fetch refused"));

	/* expired: refused at once, the bytes deleted by the next expiry
	 * run (at most a minute later) */
	set_clock(P.now + ATT_LIFETIME - 10);
	assert_wse_ok(fetch("bob@b.test", ref, 0, -1, &s));	/* runs expiry */
	close(s.fd);
	set_clock(P.now + ATT_LIFETIME);
	kept(&k);
	assert_refused("bob@b.test", ref);
	assert_refused("carol@a.test", ref);
	assert_kept(&k);
	assert_true(file_exists("attachments", ref));
	set_clock(P.now + ATT_LIFETIME + 60);
	assert_refused("bob@b.test", ref);
	assert_false(file_exists("attachments", ref));
	assert_true(log_has("expired 1 attachment"));
	free(data);
}

/*
 * FetchAttachment requests refused: whatever is wrong with the caller or
 * the reference is the same NotAuthorized, also when the range is bad
 * too (the range is checked after the authorisation); a bad range or a
 * malformed request of a recipient is InvalidRequest.  No refusal is
 * logged as a fetch or hands out a descriptor.
 */
static void
test_fetch_refused_requests(void **state)
{
	static const struct {
		const char *user;
		int auth;
		const char *inner, *why;
		wse_status want;
	} c[] = {
		{ "mallory@b.test", WSE_PLUGIN_AUTH_TOKEN, "<m:Ref>@H@</m:Ref>"
		  "<m:Offset>4001</m:Offset>", "mallory@b.test is not a "
		  "recipient", WSE_ERR_NOT_AUTHORIZED },
		{ "alice@a.test", WSE_PLUGIN_AUTH_TOKEN, "<m:Ref>@H@</m:Ref>",
		  "alice@a.test is not a recipient", WSE_ERR_NOT_AUTHORIZED },
		{ "bob@b.test", WSE_PLUGIN_AUTH_TOKEN, "<m:Ref>AAAAAAAAAAAAAAAAA"
		  "AAAAAAAAAAAAAAAAAAAAAAAAAA</m:Ref><m:Offset>99999</m:Offset>",
		  "bob@b.test is not a recipient", WSE_ERR_NOT_AUTHORIZED },
		{ "bob@b.test", WSE_PLUGIN_AUTH_TOKEN, "<m:Ref>../attachments/"
		  "@H@</m:Ref>", "is not a recipient", WSE_ERR_NOT_AUTHORIZED },
		{ "bob@b.test", WSE_PLUGIN_AUTH_TOKEN, "<m:Ref>@H@x</m:Ref>",
		  "is not a recipient", WSE_ERR_NOT_AUTHORIZED },
		{ "bob", WSE_PLUGIN_AUTH_TOKEN, "<m:Ref>@H@</m:Ref>", "bad user",
		  WSE_ERR_NOT_AUTHORIZED },
		{ "bob@b.test", WSE_PLUGIN_AUTH_PASSWORD, "<m:Ref>@H@</m:Ref>",
		  "FetchAttachment with the wrong profile",
		  WSE_ERR_NOT_AUTHORIZED },
		{ "bob@b.test", WSE_PLUGIN_AUTH_TOKEN, "<m:Ref>@H@</m:Ref>"
		  "<m:Offset>4001</m:Offset>", "at offset 4001 past its 4000 "
		  "bytes", WSE_ERR_INVALID },
		{ "bob@b.test", WSE_PLUGIN_AUTH_TOKEN, "<m:Ref>@H@</m:Ref>"
		  "<m:Offset>abc</m:Offset>", "m:Offset is not a number",
		  WSE_ERR_INVALID },
		{ "bob@b.test", WSE_PLUGIN_AUTH_TOKEN, "<m:Ref>@H@</m:Ref>"
		  "<m:Length>-1</m:Length>", "m:Length is not a number",
		  WSE_ERR_INVALID },
		{ "bob@b.test", WSE_PLUGIN_AUTH_TOKEN, "<m:Ref>@H@</m:Ref>"
		  "<m:Ref>@H@</m:Ref>", "several m:Ref", WSE_ERR_INVALID },
		{ "bob@b.test", WSE_PLUGIN_AUTH_TOKEN, "<m:Ref>@H@</m:Ref>"
		  "<m:Upload>x</m:Upload>", "unexpected element Upload",
		  WSE_ERR_INVALID },
		{ "bob@b.test", WSE_PLUGIN_AUTH_TOKEN, "<m:Offset>0</m:Offset>",
		  "without m:Ref", WSE_ERR_INVALID },
	};
	const size_t len = 4000;
	uint8_t *data = make_bytes(len, 24);
	struct wse_plugin_stream s;
	char ref[64], inner[1024];
	struct kept k;
	size_t i;

	(void)state;
	send_attachment(data, len, msg_id, ref);
	assert_wse_ok(fetch("bob@b.test", ref, 0, -1, &s));
	close(s.fd);
	kept(&k);
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char eb[2048];
		wse_status st;

		wse_err_clear();
		st = call_as("FetchAttachment", c[i].auth, c[i].user,
		    with_handle(c[i].inner, ref, inner, sizeof(inner)), NULL,
		    &s);
		wse_err_format(eb, sizeof(eb));
		if (st != c[i].want || strstr(eb, c[i].why) == NULL)
			fail_msg("case %zu (%s): got %s: %s", i, c[i].why,
			    wse_status_name(st), eb);
		assert_int_equal(s.fd, -1);
		assert_kept(&k);
	}
	wse_err_clear();
	assert_false(log_has("fetched by mallory"));
	assert_wse_ok(fetch("bob@b.test", ref, 0, -1, &s));
	check_stream(&s, data, len, 0, len);
	free(data);
}

/*
 * An attachment whose file is not what was recorded - gone, a symbolic
 * link (even to the right bytes), another size - is TempFail for its
 * recipients, never streamed and not logged as fetched.
 */
static void
test_fetch_bad_file(void **state)
{
	const size_t len = 4000;
	uint8_t *data = make_bytes(len, 25);
	struct wse_plugin_stream s;
	char ref[64], path[8192], aside[8192];
	struct kept k;
	int i;

	(void)state;
	send_attachment(data, len, msg_id, ref);
	snprintf(path, sizeof(path), "%s/attachments/%s", F.dir, ref);
	snprintf(aside, sizeof(aside), "%s/aside", F.tmp);
	for (i = 0; i < 3; i++) {
		assert_int_equal(rename(path, aside), 0);
		if (i == 1)
			assert_int_equal(symlink(aside, path), 0);
		if (i == 2) {
			int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);

			assert_true(fd >= 0);
			assert_int_equal(write(fd, data, len - 1),
			    (ssize_t)len - 1);
			close(fd);
		}
		kept(&k);
		wse_err_clear();
		assert_wse_status(fetch("bob@b.test", ref, 0, -1, &s),
		    WSE_ERR_TEMPFAIL);
		assert_err_has("file missing or of the wrong size");
		assert_int_equal(s.fd, -1);
		assert_kept(&k);
		/* a non-recipient learns nothing more than before */
		assert_refused("mallory@b.test", ref);
		wse_err_clear();
		(void)unlink(path);
		assert_int_equal(rename(aside, path), 0);
		assert_wse_ok(fetch("bob@b.test", ref, 0, -1, &s));
		check_stream(&s, data, len, 0, len);
	}
	free(data);
}

/*
 * Requests no operation can take: an unknown operation, a Body without
 * the operation's element, the wrong profile, a user that is not an
 * address, malformed AttachmentLog and RevokeAttachment requests, and a
 * revocation by another user.  None changes anything: the attachment is
 * neither revoked nor logged and is still fetched.
 */
static void
test_call_refusals(void **state)
{
#define OPEN(op) "<m:" op " xmlns:m=\"" WSE_NS_WSE "\">"
	static const struct {
		const char *op, *user;
		int auth;
		const char *body, *why;
		wse_status want;
	} c[] = {
		{ "Bogus", "alice@a.test", WSE_PLUGIN_AUTH_PASSWORD,
		  OPEN("Bogus") "</m:Bogus>", "no operation Bogus",
		  WSE_ERR_UNSUPPORTED },
		{ "UploadAttachment", "alice@a.test", WSE_PLUGIN_AUTH_PASSWORD,
		  OPEN("RevokeAttachment") "<m:Id>@H@</m:Id>"
		  "</m:RevokeAttachment>", "holds no one m:UploadAttachment",
		  WSE_ERR_INVALID },
		{ "RevokeAttachment", "alice@a.test", WSE_PLUGIN_AUTH_PASSWORD,
		  OPEN("RevokeAttachment") "<m:Id>@H@</m:Id>"
		  "</m:RevokeAttachment>" OPEN("RevokeAttachment") "<m:Id>@H@"
		  "</m:Id></m:RevokeAttachment>",
		  "holds no one m:RevokeAttachment", WSE_ERR_INVALID },
		{ "AttachmentLog", "alice@a.test", WSE_PLUGIN_AUTH_PASSWORD, "",
		  "holds no one m:AttachmentLog", WSE_ERR_INVALID },
		{ "UploadAttachment", "alice@a.test", WSE_PLUGIN_AUTH_TOKEN,
		  OPEN("UploadAttachment") NEW("", "1") "</m:UploadAttachment>",
		  "UploadAttachment with the wrong profile",
		  WSE_ERR_NOT_AUTHORIZED },
		{ "RevokeAttachment", "alice@a.test", WSE_PLUGIN_AUTH_TOKEN,
		  OPEN("RevokeAttachment") "<m:Id>@H@</m:Id>"
		  "</m:RevokeAttachment>", "RevokeAttachment with the wrong "
		  "profile", WSE_ERR_NOT_AUTHORIZED },
		{ "AttachmentLog", "alice@a.test", WSE_PLUGIN_AUTH_TOKEN,
		  OPEN("AttachmentLog") "<m:Id>@H@</m:Id></m:AttachmentLog>",
		  "AttachmentLog with the wrong profile",
		  WSE_ERR_NOT_AUTHORIZED },
		{ "UploadAttachment", "alice", WSE_PLUGIN_AUTH_PASSWORD,
		  OPEN("UploadAttachment") NEW("", "1") "</m:UploadAttachment>",
		  "bad user", WSE_ERR_NOT_AUTHORIZED },
		{ "RevokeAttachment", "alice@a.test", WSE_PLUGIN_AUTH_PASSWORD,
		  OPEN("RevokeAttachment") "</m:RevokeAttachment>", "no m:Id",
		  WSE_ERR_INVALID },
		{ "RevokeAttachment", "alice@a.test", WSE_PLUGIN_AUTH_PASSWORD,
		  OPEN("RevokeAttachment") "<m:Id></m:Id><m:Name>big.bin"
		  "</m:Name></m:RevokeAttachment>", "no m:Id",
		  WSE_ERR_INVALID },
		{ "RevokeAttachment", "alice@a.test", WSE_PLUGIN_AUTH_PASSWORD,
		  OPEN("RevokeAttachment") "<m:Id>@H@</m:Id><m:Ref>x</m:Ref>"
		  "</m:RevokeAttachment>", "unexpected element Ref",
		  WSE_ERR_INVALID },
		{ "RevokeAttachment", "alice@a.test", WSE_PLUGIN_AUTH_PASSWORD,
		  OPEN("RevokeAttachment") "<m:Id>@H@</m:Id><m:Name>big<m:x/>"
		  "</m:Name></m:RevokeAttachment>", "bad m:Name",
		  WSE_ERR_INVALID },
		{ "RevokeAttachment", "alice@a.test", WSE_PLUGIN_AUTH_PASSWORD,
		  OPEN("RevokeAttachment") "<m:Id>" A256 "</m:Id>"
		  "</m:RevokeAttachment>", "bad m:Id", WSE_ERR_TOO_LARGE },
		{ "RevokeAttachment", "bob@a.test", WSE_PLUGIN_AUTH_PASSWORD,
		  OPEN("RevokeAttachment") "<m:Id>@H@</m:Id>"
		  "</m:RevokeAttachment>", "bob@a.test has no attachments in "
		  "message", WSE_ERR_NOT_FOUND },
		{ "AttachmentLog", "alice@a.test", WSE_PLUGIN_AUTH_PASSWORD,
		  OPEN("AttachmentLog") "<m:Id>@H@</m:Id><m:Id>@H@</m:Id>"
		  "</m:AttachmentLog>", "several m:Id", WSE_ERR_INVALID },
		{ "AttachmentLog", "bob@b.test", WSE_PLUGIN_AUTH_PASSWORD,
		  OPEN("AttachmentLog") "<m:Id>@H@</m:Id></m:AttachmentLog>",
		  "bob@b.test has no attachments in message", WSE_ERR_NOT_FOUND },
	};
#undef OPEN
	const size_t len = 2000;
	uint8_t *data = make_bytes(len, 26);
	struct wse_plugin_stream s;
	char ref[64], body[2048];
	struct kept k;
	size_t i;

	(void)state;
	send_attachment(data, len, msg_id, ref);
	kept(&k);
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char eb[2048];
		wse_status st;

		wse_err_clear();
		st = call_body(c[i].op, c[i].auth, c[i].user,
		    with_handle(c[i].body, msg_id, body, sizeof(body)), NULL,
		    NULL);
		wse_err_format(eb, sizeof(eb));
		if (st != c[i].want || strstr(eb, c[i].why) == NULL)
			fail_msg("case %zu (%s): got %s: %s", i, c[i].why,
			    wse_status_name(st), eb);
		assert_kept(&k);
	}
	wse_err_clear();
	assert_false(log_has("revoked by"));
	assert_wse_ok(fetch("bob@b.test", ref, 0, -1, &s));
	check_stream(&s, data, len, 0, len);
	free(data);
}

/* ---- AttachmentLog and RevokeAttachment ---- */

static void
test_attachment_log(void **state)
{
	const size_t len = 50000;
	uint8_t *data = make_bytes(len, 9);
	struct wse_plugin_stream s;
	char ref[64], hex[65], at1[21], at2[21], exp[21];
	xmlDocPtr doc = NULL;
	xmlNodePtr att, c;
	const char *rcpts[2] = { "bob@b.test", "carol@a.test" };
	size_t nr = 0, nf = 0;

	(void)state;
	sha_hex(data, len, hex);
	send_attachment(data, len, msg_id, ref);
	wse_time_format(P.now + ATT_LIFETIME, exp);

	/* nobody fetched yet */
	assert_wse_ok(call_pw("AttachmentLog", "alice@a.test",
	    "<m:Id>urn:uuid:6f1c2a4e-1d2b-4c3d-8e4f-5a6b7c8d9e0f</m:Id>", &doc));
	assert_null(find_elem(xmlDocGetRootElement(doc), "Fetch"));
	xmlFreeDoc(doc);

	set_clock(P.now + 10);
	wse_time_format(P.now + 10, at1);
	assert_wse_ok(fetch("bob@b.test", ref, 0, 1000, &s));
	close(s.fd);
	set_clock(P.now + 20);
	wse_time_format(P.now + 20, at2);
	assert_wse_ok(fetch("carol@a.test", ref, 1000, -1, &s));
	close(s.fd);
	assert_refused("mallory@b.test", ref);	/* refusals are not fetches */

	assert_wse_ok(call_pw("AttachmentLog", "alice@a.test", "<m:Id>"
	    "urn:uuid:6f1c2a4e-1d2b-4c3d-8e4f-5a6b7c8d9e0f</m:Id>", &doc));
	att = wse_xml_first_elem(xmlDocGetRootElement(doc));
	assert_true(wse_xml_is(att, WSE_NS_WSE, "Attachment"));
	assert_null(wse_xml_next_elem(att));
	assert_string_equal(wse_xml_attr(att, NULL, "ref"), ref);
	assert_string_equal(wse_xml_attr(att, NULL, "name"), "big.bin");
	assert_string_equal(wse_xml_attr(att, NULL, "size"), "50000");
	assert_string_equal(wse_xml_attr(att, NULL, "sha256"), hex);
	assert_string_equal(wse_xml_attr(att, NULL, "expires"), exp);
	assert_string_equal(wse_xml_attr(att, NULL, "revoked"), "false");
	for (c = wse_xml_first_elem(att); c != NULL; c = wse_xml_next_elem(c)) {
		if (wse_xml_is(c, WSE_NS_WSE, "Recipient")) {
			char *t = NULL;

			assert_int_equal(nf, 0);	/* recipients first */
			assert_true(nr < 2);
			assert_wse_ok(wse_xml_text_dup(c, 300, &t));
			assert_string_equal(t, rcpts[nr]);
			free(t);
			nr++;
		} else {
			assert_true(wse_xml_is(c, WSE_NS_WSE, "Fetch"));
			assert_true(nf < 2);
			assert_string_equal(wse_xml_attr(c, NULL, "by"),
			    rcpts[nf]);
			assert_string_equal(wse_xml_attr(c, NULL, "at"),
			    nf == 0 ? at1 : at2);
			assert_string_equal(wse_xml_attr(c, NULL, "offset"),
			    nf == 0 ? "0" : "1000");
			assert_string_equal(wse_xml_attr(c, NULL, "length"),
			    nf == 0 ? "1000" : "49000");
			nf++;
		}
	}
	assert_int_equal(nr, 2);
	assert_int_equal(nf, 2);
	xmlFreeDoc(doc);

	/* only the owner sees it; unknown ids are not found */
	assert_wse_status(call_pw("AttachmentLog", "bob@a.test", "<m:Id>"
	    "urn:uuid:6f1c2a4e-1d2b-4c3d-8e4f-5a6b7c8d9e0f</m:Id>", NULL),
	    WSE_ERR_NOT_FOUND);
	assert_wse_status(call_pw("AttachmentLog", "alice@a.test", "<m:Id>"
	    "urn:uuid:00000000-1d2b-4c3d-8e4f-5a6b7c8d9e0f</m:Id>", NULL),
	    WSE_ERR_NOT_FOUND);
	assert_wse_status(call_pw("AttachmentLog", "alice@a.test", "", NULL),
	    WSE_ERR_INVALID);
	free(data);
}

static void
test_revoke(void **state)
{
	const size_t len = 3000;
	uint8_t *data = make_bytes(len, 10);
	char h[64], ref1[64], ref2[64];
	xmlDocPtr doc = NULL;
	xmlNodePtr att;
	wse_msg *m;

	(void)state;
	/* one message, two attachments */
	upload_all("alice@a.test", "one.bin", data, len, 1000, h);
	m = make_msg("alice@a.test", h);
	upload_all("alice@a.test", "two.bin", data, len, 1000, h);
	assert_wse_ok(wse_msg_add_upload(m, h));
	assert_wse_ok(plug->submit(F.state, "alice@a.test", msg_id, m));
	strcpy(ref1, m->od[0].ref);
	strcpy(ref2, m->od[1].ref);
	wse_msg_free(&m);

	/* not the owner: not found, nothing revoked */
	assert_wse_status(call_pw("RevokeAttachment", "bob@b.test", "<m:Id>"
	    "urn:uuid:6f1c2a4e-1d2b-4c3d-8e4f-5a6b7c8d9e0f</m:Id>", NULL),
	    WSE_ERR_NOT_FOUND);
	assert_wse_status(call_pw("RevokeAttachment", "alice@a.test",
	    "<m:Id>urn:uuid:nope</m:Id>", NULL), WSE_ERR_NOT_FOUND);
	/* by name: a name no attachment has revokes nothing */
	assert_wse_ok(call_pw("RevokeAttachment", "alice@a.test", "<m:Id>"
	    "urn:uuid:6f1c2a4e-1d2b-4c3d-8e4f-5a6b7c8d9e0f</m:Id>"
	    "<m:Name>three.bin</m:Name>", &doc));
	assert_doc_text(doc, "Revoked", "0");
	xmlFreeDoc(doc);
	assert_wse_ok(call_pw("RevokeAttachment", "alice@a.test", "<m:Id>"
	    "urn:uuid:6f1c2a4e-1d2b-4c3d-8e4f-5a6b7c8d9e0f</m:Id>"
	    "<m:Name>one.bin</m:Name>", &doc));
	assert_doc_text(doc, "Revoked", "1");
	xmlFreeDoc(doc);
	assert_false(file_exists("attachments", ref1));
	assert_true(file_exists("attachments", ref2));
	assert_refused("bob@b.test", ref1);
	/* all the rest */
	assert_wse_ok(call_pw("RevokeAttachment", "alice@a.test", "<m:Id>"
	    "urn:uuid:6f1c2a4e-1d2b-4c3d-8e4f-5a6b7c8d9e0f</m:Id>", &doc));
	assert_doc_text(doc, "Revoked", "1");
	xmlFreeDoc(doc);
	assert_false(file_exists("attachments", ref2));
	assert_int_equal(count_files("attachments"), 0);
	assert_wse_ok(call_pw("RevokeAttachment", "alice@a.test", "<m:Id>"
	    "urn:uuid:6f1c2a4e-1d2b-4c3d-8e4f-5a6b7c8d9e0f</m:Id>", &doc));
	assert_doc_text(doc, "Revoked", "0");
	xmlFreeDoc(doc);
	/* the log stays */
	assert_wse_ok(call_pw("AttachmentLog", "alice@a.test", "<m:Id>"
	    "urn:uuid:6f1c2a4e-1d2b-4c3d-8e4f-5a6b7c8d9e0f</m:Id>", &doc));
	att = wse_xml_first_elem(xmlDocGetRootElement(doc));
	assert_string_equal(wse_xml_attr(att, NULL, "revoked"), "true");
	assert_string_equal(wse_xml_attr(wse_xml_next_elem(att), NULL,
	    "revoked"), "true");
	xmlFreeDoc(doc);
	assert_true(log_has("revoked by alice@a.test"));
	free(data);
}

/* ---- expiry of uploads, restart ---- */

static void
test_upload_expiry(void **state)
{
	const size_t len = 2000;
	uint8_t *data = make_bytes(len, 11);
	char hc[64], hi[64], hn[64], hex[65];
	struct up_result r;
	wse_msg *m;

	(void)state;
	sha_hex(data, len, hex);
	upload_all("alice@a.test", "c.bin", data, len, 1000, hc);
	assert_wse_ok(upload_call("alice@a.test", NULL, "i.bin", len, hex, 0,
	    data, 10, &r));
	strcpy(hi, r.handle);
	set_clock(P.now + UP_LIFETIME - 100);
	assert_wse_ok(upload_call("alice@a.test", NULL, "n.bin", len, hex, 0,
	    data, 10, &r));
	strcpy(hn, r.handle);
	/* older than upload_lifetime: dropped at the next expiry run */
	set_clock(P.now + UP_LIFETIME + 60);
	assert_wse_status(upload_call("alice@a.test", hi, NULL, -1, NULL, -1,
	    NULL, 0, NULL), WSE_ERR_NOT_FOUND);
	assert_false(file_exists("uploads", hc));
	assert_false(file_exists("uploads", hi));
	assert_true(file_exists("uploads", hn));
	assert_true(log_has("dropped 2 upload(s)"));
	m = make_msg("alice@a.test", hc);
	assert_wse_status(plug->submit(F.state, "alice@a.test", msg_id, m),
	    WSE_ERR_INVALID);
	wse_msg_free(&m);
	/* the younger one goes on */
	assert_wse_ok(upload_call("alice@a.test", hn, NULL, -1, NULL, 10,
	    data + 10, len - 10, &r));
	assert_true(r.complete);
	free(data);
}

static void
test_restart_sweep(void **state)
{
	const size_t len = 7000;
	uint8_t *data = make_bytes(len, 12);
	struct wse_plugin_stream s;
	char ref[64], path[8192];
	int fd;

	(void)state;
	send_attachment(data, len, msg_id, ref);
	/* files no row accounts for (a crash between link and commit) */
	snprintf(path, sizeof(path), "%s/attachments/"
	    "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ", F.dir);
	assert_true((fd = open(path, O_WRONLY | O_CREAT, 0600)) >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/uploads/junk", F.dir);
	assert_true((fd = open(path, O_WRONLY | O_CREAT, 0600)) >= 0);
	close(fd);
	restart(default_extra);
	assert_int_equal(count_files("attachments"), 1);
	assert_int_equal(count_files("uploads"), 0);
	assert_true(log_has("stray file"));
	/* what was recorded survives */
	assert_wse_ok(fetch("bob@b.test", ref, 0, -1, &s));
	check_stream(&s, data, len, 0, len);
	free(data);
}

/* ---- threads ---- */

struct worker {
	int id;
	int ok;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	const size_t len = 100000;
	uint8_t *data = make_bytes(len, 100 + (unsigned)w->id);
	char user[64], h[64], hex[65];
	struct up_result r;
	struct wse_plugin_stream s;
	size_t off;
	wse_msg *m = NULL;
	char id[64];

	w->ok = 0;
	snprintf(user, sizeof(user), "user%d@a.test", w->id);
	snprintf(id, sizeof(id), "urn:uuid:worker-%d", w->id);
	sha_hex(data, len, hex);
	if (upload_call(user, NULL, "w.bin", len, hex, 0, data, 10000,
	    &r) != WSE_OK)
		goto out;
	strcpy(h, r.handle);
	for (off = 10000; off < len; off += 10000)
		if (upload_call(user, h, NULL, -1, NULL, (long long)off,
		    data + off, 10000, &r) != WSE_OK)
			goto out;
	if (!r.complete || wse_msg_new(&m) != WSE_OK ||
	    wse_msg_set(m, "from", user) != WSE_OK ||
	    wse_msg_add_rcpt(m, "bob@b.test", 0) != WSE_OK ||
	    wse_msg_add_upload(m, h) != WSE_OK ||
	    plug->submit(F.state, user, id, m) != WSE_OK)
		goto out;
	if (fetch("bob@b.test", m->od[0].ref, 0, -1, &s) != WSE_OK)
		goto out;
	{
		uint8_t *got = malloc(len);

		if (got != NULL && pread(s.fd, got, len, 0) == (ssize_t)len &&
		    memcmp(got, data, len) == 0)
			w->ok = 1;
		free(got);
		close(s.fd);
	}
out:
	wse_msg_free(&m);
	free(data);
	return NULL;
}

/* Two writers of one chunk of one upload. */
struct racer {
	const char *handle;
	const uint8_t *data;
	wse_status st;
};

static void *
racer_main(void *arg)
{
	struct racer *r = arg;

	r->st = upload_call("alice@a.test", r->handle, NULL, -1, NULL, 0,
	    r->data, 3000000, NULL);
	return NULL;
}

static void
test_threads(void **state)
{
	struct worker w[6];
	pthread_t t[6];
	struct racer rc[2];
	const size_t len = 3000001;
	uint8_t *data = make_bytes(len, 13);
	struct up_result r;
	char hex[65];
	int i, nok = 0;

	(void)state;
	for (i = 0; i < 6; i++) {
		w[i].id = i;
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]),
		    0);
	}
	for (i = 0; i < 6; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_true(w[i].ok);
	}

	/* the same chunk written twice at once: one wins, the other is
	 * told TempFail (concurrent) or InvalidRequest (after it) */
	sha_hex(data, len, hex);
	assert_wse_ok(upload_call("alice@a.test", NULL, "race.bin", len, hex,
	    0, NULL, 0, &r));
	for (i = 0; i < 2; i++) {
		rc[i].handle = r.handle;
		rc[i].data = data;
		assert_int_equal(pthread_create(&t[i], NULL, racer_main,
		    &rc[i]), 0);
	}
	for (i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (rc[i].st == WSE_OK)
			nok++;
		else
			assert_true(rc[i].st == WSE_ERR_TEMPFAIL ||
			    rc[i].st == WSE_ERR_INVALID);
	}
	assert_int_equal(nok, 1);
	assert_wse_ok(upload_call("alice@a.test", r.handle, NULL, -1, NULL,
	    3000000, data + 3000000, 1, &r));
	assert_true(r.complete);	/* the digest proves no corruption */
	free(data);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_init),
		T(test_request_token),
		T(test_upload_chunks_resume),
		T(test_upload_empty_file),
		T(test_upload_digest_mismatch),
		T(test_upload_wrong_owner),
		T(test_upload_limits),
		T(test_upload_refusals),
		T(test_upload_quota),
		T(test_upload_write_fails),
		T(test_upload_busy),
		T(test_upload_busy_max),
		T(test_submit_resolves),
		T(test_submit_refusals),
		T(test_fetch_ranges),
		T(test_fetch_refusals),
		T(test_fetch_refused_requests),
		T(test_fetch_bad_file),
		T(test_call_refusals),
		T(test_attachment_log),
		T(test_revoke),
		T(test_upload_expiry),
		T(test_restart_sweep),
		T(test_threads),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
