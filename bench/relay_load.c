/*
 * relay_load.c - a load generator for wsemaild's Submit: it speaks the
 * client protocol itself (docs/protocol.md), without the CLI.
 *
 * Per sender: GetAuthParams once, PBKDF2 once.  Then C threads, each with
 * its own kept-alive HTTPS connection and its own password signer, take
 * message numbers from a shared counter and Submit one message each
 * (From: a sender, To: one recipient, a text body of SIZE bytes) until N
 * messages were ACKNOWLEDGED (HTTP 200 with a SubmitResponse Id) or the
 * deadline passes.  A Submit that fails (server down, connection reset,
 * Fault) is not counted; the thread pauses briefly and submits a NEW
 * message (new MessageID, new body) in its place.
 *
 * Usage: relay_load [options]
 *   -u URL        server endpoint (https://mail.a.test:PORT/wsemail)
 *   -a ADDR       connect to this numeric address instead of URL's host
 *   -r ROOTS      PEM roots
 *   -f LIST       senders, comma-separated (alice@a.test,carol@a.test)
 *   -t LIST       recipients, comma-separated; message k goes to t[k % n]
 *   -n N          acknowledged messages wanted (2000)
 *   -c C          concurrent clients (32)
 *   -s BYTES      body size (4096)
 *   -V 0|1        verify each answer's signature (certificate profile) (1)
 *   -d SECONDS    give up after this long (600)
 *   -R RATE       pace: start at most RATE Submits per second in all
 *                 (0: as fast as the clients go) (0)
 *   -P 0|1        prepare (0): see below
 *   -g FILE       with -P 1: when the timed part is over, create FILE and
 *                 wait until it is not empty (someone appended to it)
 *                 before checking the answers, so that the check does not
 *                 compete with servers still relaying (bench/relay.sh
 *                 appends once all messages are stored); at most -d s
 *   -S FILE       create FILE when the clock starts (after -P 1's
 *                 preparation), so that whoever measures the machine
 *                 measures the timed part only
 *   -X            with -P 1: after the run, send the first prepared
 *                 Submit again; it must be refused as a replay
 *   -i FILE       append each acknowledged id, one per line
 *   -q            quiet: no per-failure messages on stderr
 * The password comes from WSEMAIL_PASSWORD (the same for every sender).
 *
 * -P 0 (inline): each thread builds and signs a Submit just before
 * POSTing it and checks the answer (signature, RelatesTo, Id) right after,
 * so the clients' own crypto runs on the clock, on the same cores as the
 * servers measured.  -P 1 (prepare): the clients' own signing happens
 * before the clock starts and every answer is verified after it stops,
 * so the figures measure the servers.  Before the first Submit, N Submit
 * requests are built, signed and serialised (message k from sender
 * (k / nto) % nfrom to t[k % nto]; a fresh MessageID and Timestamp each);
 * the timed part only POSTs those bytes and keeps each answer with HTTP
 * status 200 (latency: POST out to answer read).  After the last
 * acknowledgement every kept answer is checked exactly as -P 0 checks it
 * (with -V 1: the server's signature against ROOTS at the time it was
 * received, RelatesTo our request; a SubmitResponse Id); an answer that
 * fails counts as failed, is reported on stderr and the exit status is 1.
 * A Submit that fails in the timed part (connection, HTTP status other
 * than 200) is replaced by a new message built and signed inline, as is a
 * prepared request older than half of its lifetime (REQUEST_TTL s).
 * With -i, ids are written during that check, after the run.  -P 1 keeps
 * every request and answer in memory (about 10 KB per message with the
 * default SIZE), so -n is at most 200000 with it.
 *
 * Prints one line of key=value figures on stdout:
 *   acked failed first_submit (CLOCK_REALTIME, s) last_ack elapsed_s
 *   rate (acked/s between first submit and last ack) p50_ms p90_ms p99_ms
 *   max_ms (latency of one Submit: from the POST going out to its
 *   acknowledgement read and checked), cpu_s (this program's own CPU
 *   time while submitting, user + system, all threads).
 * With -P 1 also: prepare_s (preparing the requests, before first_submit)
 *   verify_s (checking the answers, after last_ack) verified (answers
 *   that passed that check) inline (Submits built and signed in the timed
 *   part: replacements of failed ones and stale prepared ones); acked is
 *   then the number acknowledged AND verified, and elapsed_s, rate, the
 *   latencies and cpu_s cover the timed part only.
 * Exit status 0 when N messages were acknowledged (with -P 1: and passed
 * the check after the run), 1 otherwise.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <libxml/parser.h>

#include "benchutil.h"
#include "crypto.h"
#include "http.h"
#include "msg.h"
#include "replay.h"
#include "soap.h"
#include "wss.h"
#include "xml.h"

#define MAX_LIST 256
#define REQUEST_TTL 300

static struct {
	const char *url, *addr, *roots, *idfile, *gate, *start;
	int replay_check;
	char *from[MAX_LIST], *to[MAX_LIST];
	size_t nfrom, nto;
	long n, c, size, deadline_s;
	double rate;
	int verify, quiet, prepare;
	uint8_t key[MAX_LIST][WSE_DERIVED_KEY_LEN];	/* per sender */
	wse_limits lim, resp_lim;
	wse_trust *trust;
	char *text;				/* the body */
} cfg;

static atomic_long next_msg;		/* message numbers handed out */
static atomic_long claimed;		/* acknowledged + in flight */
static atomic_long acked, failed;
static double t_first = -1, t_last = -1;	/* CLOCK_REALTIME */
static double *lat_ms;			/* one per acknowledged message */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *idf;
static double t_deadline, t_start;

/* -P 1: the requests made before the clock starts, one per message number
 * below N, and the answers kept for checking after it stops, one per
 * acknowledged message. */
struct prepared {
	char *req;			/* serialised, signed Submit */
	size_t len;
	char *msgid;
	size_t sender;
	time_t made;
};
struct kept {
	char *ans;			/* the answer's bytes (HTTP 200) */
	size_t len;
	char *msgid;			/* of the request */
	size_t sender;
	time_t at;			/* when it was read */
	long k;				/* message number */
};
static struct prepared *prep;
static struct kept *kept;
static atomic_long inline_built;	/* Submits signed in the timed part */

static double
now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define die(what) bench_die("relay_load", what)
#define new_client() bench_http_client("relay_load", cfg.roots, \
	    cfg.resp_lim.max_message_bytes)

static size_t
split(char *s, char **v)
{
	size_t n = 0;
	char *save = NULL, *p;

	for (p = strtok_r(s, ",", &save); p != NULL && n < MAX_LIST;
	    p = strtok_r(NULL, ",", &save))
		v[n++] = p;
	return n;
}

/*
 * Build op's envelope around payload, sign it when signer is set (with a
 * Timestamp of now) and serialise it: *req_r gets the bytes, *msgid_r a
 * copy of its MessageID (both malloc'd).
 */
static int
build_request(const wse_signer *signer, const char *op, const char *payload,
    char **req_r, size_t *len_r, char **msgid_r, char *why, size_t whysz)
{
	wse_envelope *env = NULL;
	wse_buf *req = NULL;
	char action[128], eb[512];
	int ok = 0;

	*req_r = NULL;
	*msgid_r = NULL;
	(void)snprintf(action, sizeof(action), WSE_ACTION_PREFIX "%s", op);
	if (wse_env_new(cfg.url, action, &env) != WSE_OK ||
	    wse_env_add_body_xml(env, payload, strlen(payload), &cfg.lim) !=
	    WSE_OK ||
	    (signer != NULL && wse_wss_sign(env, signer, (int64_t)time(NULL),
	    REQUEST_TTL) != WSE_OK) ||
	    (req = wse_buf_new(cfg.lim.max_message_bytes)) == NULL ||
	    wse_env_serialize(env, req) != WSE_OK) {
		(void)snprintf(why, whysz, "build: %s",
		    wse_err_format(eb, sizeof(eb)));
		goto out;
	}
	if ((*msgid_r = strdup(wse_env_message_id(env))) == NULL ||
	    (*req_r = wse_buf_steal(req, len_r)) == NULL) {
		free(*msgid_r);
		*msgid_r = NULL;
		(void)snprintf(why, whysz, "build: out of memory");
		goto out;
	}
	ok = 1;
out:
	wse_env_free(&env);
	wse_buf_free(&req);
	return ok;
}

/*
 * Check the answer (data, len, HTTP status) to our request msgid, as of
 * time now: a SOAP envelope, (when verifying) a valid signature of the
 * server for domain and RelatesTo msgid, HTTP 200 and an <opResponse>
 * body.  On success *env_r holds the answer and *resp_r its payload
 * element.
 */
static int
check_answer(wse_replay *replay, const char *op, const char *domain,
    const char *msgid, const uint8_t *data, size_t len, long status,
    int64_t now, wse_envelope **env_r, xmlNodePtr *resp_r, char *why,
    size_t whysz)
{
	wse_envelope *ans = NULL;
	wse_verified v;
	wse_verify_opts o;
	xmlNodePtr body, pl;
	char want[128], eb[512];
	int ok = 0;

	memset(&v, 0, sizeof(v));
	*env_r = NULL;
	if (wse_env_parse(data, len, &cfg.resp_lim, &ans) != WSE_OK) {
		(void)snprintf(why, whysz, "HTTP %ld, not an envelope", status);
		goto out;
	}
	body = wse_env_body(ans);
	if (cfg.verify) {
		memset(&o, 0, sizeof(o));
		o.profile = WSE_PROFILE_CERT;
		o.limits = &cfg.resp_lim;
		o.replay = replay;
		o.now = now;
		o.trust = cfg.trust;
		o.purpose = WSE_PURPOSE_SERVICE;
		o.expected_domain = domain;
		if (wse_wss_verify(ans, &o, &v) != WSE_OK) {
			(void)snprintf(why, whysz, "answer does not verify: %s",
			    wse_err_format(eb, sizeof(eb)));
			goto out;
		}
		if (v.relates_to_s == NULL ||
		    strcmp(v.relates_to_s, msgid) != 0) {
			(void)snprintf(why, whysz, "answer not about our "
			    "request");
			goto out;
		}
		body = v.body;
	}
	(void)snprintf(want, sizeof(want), "%sResponse", op);
	if (status != 200 || body == NULL ||
	    wse_xml_only_child(body, WSE_NS_WSE, want, &pl) != WSE_OK) {
		wse_status fst;
		char reason[200];

		if (body != NULL && wse_fault_read(body, &fst, reason,
		    sizeof(reason)) == WSE_OK)
			(void)snprintf(why, whysz, "HTTP %ld, Fault %s", status,
			    wse_fault_subcode(fst));
		else
			(void)snprintf(why, whysz, "HTTP %ld, no %s", status,
			    want);
		goto out;
	}
	*resp_r = pl;
	*env_r = ans;
	ans = NULL;
	ok = 1;
out:
	wse_verified_clear(&v);
	wse_env_free(&ans);
	return ok;
}

/*
 * One exchange: build op's envelope around payload, sign it when signer
 * is set, POST it, and check the answer (check_answer).  On success
 * *env_r holds the answer and *resp_r its payload element.  *post_ms gets
 * the POST's round trip, the check included.
 */
static int
call(wse_http_client *http, wse_replay *replay, const wse_signer *signer,
    const char *op, const char *payload, const char *domain,
    wse_envelope **env_r, xmlNodePtr *resp_r, double *post_ms, char *why,
    size_t whysz)
{
	wse_buf *resp = NULL;
	char *req = NULL, *msgid = NULL, eb[512];
	size_t len = 0;
	long status = 0;
	double t0;
	int ok = 0;

	*env_r = NULL;
	why[0] = '\0';
	if (!build_request(signer, op, payload, &req, &len, &msgid, why,
	    whysz))
		goto out;
	if ((resp = wse_buf_new(cfg.resp_lim.max_message_bytes)) == NULL) {
		(void)snprintf(why, whysz, "build: out of memory");
		goto out;
	}
	t0 = bench_now_mono();
	if (wse_http_post(http, cfg.url, cfg.addr, "application/soap+xml",
	    req, len, resp, &status) != WSE_OK) {
		(void)snprintf(why, whysz, "post: %s",
		    wse_err_format(eb, sizeof(eb)));
		goto out;
	}
	if (!check_answer(replay, op, domain, msgid, wse_buf_data(resp),
	    wse_buf_len(resp), status, (int64_t)time(NULL), env_r, resp_r,
	    why, whysz))
		goto out;
	*post_ms = (bench_now_mono() - t0) * 1e3;
	ok = 1;
out:
	free(req);
	free(msgid);
	wse_buf_free(&resp);
	wse_err_clear();
	return ok;
}

/* GetAuthParams + PBKDF2 for sender i. */
static void
login(wse_http_client *http, wse_replay *replay, size_t i)
{
	wse_envelope *ans = NULL;
	xmlNodePtr pl;
	wse_buf *salt = NULL;
	char payload[600], why[600], *salt_b64, *iter_s, *pw;
	double ms;
	long iter = 0;

	pw = getenv("WSEMAIL_PASSWORD");
	if (pw == NULL || *pw == '\0') {
		fprintf(stderr, "relay_load: set WSEMAIL_PASSWORD\n");
		exit(2);
	}
	(void)snprintf(payload, sizeof(payload), "<m:GetAuthParams xmlns:m=\""
	    WSE_NS_WSE "\"><m:User>%s</m:User></m:GetAuthParams>",
	    cfg.from[i]);
	if (!call(http, replay, NULL, "GetAuthParams", payload,
	    wse_addr_domain(cfg.from[i]), &ans, &pl, &ms, why, sizeof(why))) {
		fprintf(stderr, "relay_load: GetAuthParams for %s: %s\n",
		    cfg.from[i], why);
		exit(2);
	}
	salt_b64 = bench_child_text(pl, "Salt", 128);
	iter_s = bench_child_text(pl, "Iterations", 16);
	if (salt_b64 == NULL || iter_s == NULL ||
	    (salt = wse_buf_new(256)) == NULL ||
	    wse_base64_decode(salt_b64, strlen(salt_b64), salt) != WSE_OK ||
	    (iter = strtol(iter_s, NULL, 10)) < 1)
		die("GetAuthParamsResponse");
	if (wse_pbkdf2_sha256(pw, strlen(pw), wse_buf_data(salt),
	    wse_buf_len(salt), (uint32_t)iter, cfg.key[i]) != WSE_OK)
		die("PBKDF2");
	wse_buf_free(&salt);
	free(salt_b64);
	free(iter_s);
	wse_env_free(&ans);
}

/* The Submit payload for message k from sender s. */
static wse_buf *
submit_payload(size_t s, long k)
{
	wse_msg *m = NULL;
	wse_buf *b = wse_buf_new(cfg.lim.max_message_bytes);
	char subj[64];

	(void)snprintf(subj, sizeof(subj), "relay load %ld", k);
	if (b == NULL || wse_msg_new(&m) != WSE_OK ||
	    wse_msg_set(m, "from", cfg.from[s]) != WSE_OK ||
	    wse_msg_add_rcpt(m, cfg.to[(size_t)k % cfg.nto], 0) != WSE_OK ||
	    wse_msg_set(m, "subject", subj) != WSE_OK ||
	    wse_msg_set(m, "text", cfg.text) != WSE_OK ||
	    wse_buf_puts(b, "<m:Submit xmlns:m=\"" WSE_NS_WSE "\">") !=
	    WSE_OK || wse_msg_to_xml(m, b) != WSE_OK ||
	    wse_buf_puts(b, "</m:Submit>") != WSE_OK)
		die("message");
	wse_msg_free(&m);
	return b;
}

/*
 * -P 1: before the clock starts, build, sign and serialise the Submits of
 * messages 0..N-1 (message k from sender (k / nto) % nfrom), each with its
 * sender's password signer and a Timestamp of now.
 */
static void
prepare_all(void)
{
	wse_signer *signer[MAX_LIST];
	char why[600];
	size_t s;
	long k;

	memset(signer, 0, sizeof(signer));
	if ((prep = calloc((size_t)cfg.n, sizeof(*prep))) == NULL)
		die("memory");
	for (s = 0; s < cfg.nfrom; s++)
		if (wse_signer_new_password(cfg.from[s], cfg.key[s],
		    &signer[s]) != WSE_OK)
			die("signer");
	for (k = 0; k < cfg.n; k++) {
		struct prepared *p = &prep[k];
		wse_buf *payload;

		p->sender = (size_t)(k / (long)cfg.nto) % cfg.nfrom;
		p->made = time(NULL);
		payload = submit_payload(p->sender, k);
		if (!build_request(signer[p->sender], "Submit",
		    wse_buf_str(payload), &p->req, &p->len, &p->msgid, why,
		    sizeof(why))) {
			fprintf(stderr, "relay_load: preparing message %ld: "
			    "%s\n", k, why);
			exit(2);
		}
		wse_buf_free(&payload);
	}
	for (s = 0; s < cfg.nfrom; s++)
		wse_signer_free(&signer[s]);
	wse_err_clear();
}

/*
 * -P 1, the timed part: POST message k (prepared, or built and signed now
 * for sender s with signer when there is no fresh prepared request) and
 * keep the answer when its HTTP status is 200; it is checked after the
 * run (verify_kept).  0 and why when it failed.
 */
static int
post_kept(wse_http_client *http, wse_replay *replay, const wse_signer *signer,
    size_t s, long k, char *why, size_t whysz)
{
	struct prepared *p = NULL;
	wse_buf *resp = NULL;
	char *req = NULL, *msgid = NULL, *ans = NULL, eb[512];
	size_t len = 0, alen = 0;
	long status = 0, a;
	double t0, tm, ms;
	time_t at;
	int ok = 0;

	why[0] = '\0';
	if (k < cfg.n && time(NULL) - prep[k].made <= REQUEST_TTL / 2) {
		p = &prep[k];
		s = p->sender;
	} else {
		wse_buf *payload = submit_payload(s, k);
		int built = build_request(signer, "Submit",
		    wse_buf_str(payload), &req, &len, &msgid, why, whysz);

		wse_buf_free(&payload);
		atomic_fetch_add(&inline_built, 1);
		if (!built)
			goto out;
	}
	if ((resp = wse_buf_new(cfg.resp_lim.max_message_bytes)) == NULL) {
		(void)snprintf(why, whysz, "out of memory");
		goto out;
	}
	t0 = now_real();
	pthread_mutex_lock(&out_lock);
	if (t_first < 0)
		t_first = t0;
	pthread_mutex_unlock(&out_lock);
	tm = bench_now_mono();
	if (wse_http_post(http, cfg.url, cfg.addr, "application/soap+xml",
	    p != NULL ? p->req : req, p != NULL ? p->len : len, resp,
	    &status) != WSE_OK) {
		(void)snprintf(why, whysz, "post: %s",
		    wse_err_format(eb, sizeof(eb)));
		goto out;
	}
	if (status != 200) {
		wse_envelope *env = NULL;
		xmlNodePtr pl;

		/* Only for the reason (a Fault); fails for certain. */
		(void)check_answer(replay, "Submit",
		    wse_addr_domain(cfg.from[s]), p != NULL ? p->msgid :
		    msgid, wse_buf_data(resp), wse_buf_len(resp), status,
		    (int64_t)time(NULL), &env, &pl, why, whysz);
		wse_env_free(&env);
		goto out;
	}
	ms = (bench_now_mono() - tm) * 1e3;
	at = time(NULL);
	if ((ans = wse_buf_steal(resp, &alen)) == NULL) {
		(void)snprintf(why, whysz, "out of memory");
		goto out;
	}
	pthread_mutex_lock(&out_lock);
	a = atomic_fetch_add(&acked, 1);
	if (a < cfg.n) {
		struct kept *kp = &kept[a];

		lat_ms[a] = ms;
		t_last = now_real();
		kp->ans = ans;
		kp->len = alen;
		kp->sender = s;
		kp->at = at;
		kp->k = k;
		if (p != NULL) {
			kp->msgid = p->msgid;
			p->msgid = NULL;
		} else {
			kp->msgid = msgid;
			msgid = NULL;
		}
		ans = NULL;
	}
	pthread_mutex_unlock(&out_lock);
	ok = 1;
out:
	free(ans);
	free(req);
	free(msgid);
	wse_buf_free(&resp);
	wse_err_clear();
	return ok;
}

/*
 * -P 1, -g FILE: the timed part is over; create FILE, then wait until it
 * is not empty (at most -d seconds) before the answers are checked.
 */
static void
gate_wait(void)
{
	struct stat st;
	double until = bench_now_mono() + (double)cfg.deadline_s;
	int fd;

	fd = open(cfg.gate, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror(cfg.gate);
		return;
	}
	(void)close(fd);
	while (stat(cfg.gate, &st) == 0 && st.st_size == 0 &&
	    bench_now_mono() < until)
		usleep(20 * 1000);
}

/*
 * -P 1, after the run: check each of the n kept answers as the inline
 * path checks it (check_answer, as of when it was read, and an Id); -i's
 * ids are written here.  Returns how many failed, each told on stderr
 * (the first 10 of them).
 */
static long
verify_kept(long n)
{
	wse_replay *replay = NULL;
	long a, bad = 0;

	if (wse_replay_memory_new((size_t)n + 1024, &replay) != WSE_OK)
		die("replay");
	for (a = 0; a < n; a++) {
		struct kept *kp = &kept[a];
		wse_envelope *ans = NULL;
		xmlNodePtr pl;
		char why[600], *id = NULL;

		why[0] = '\0';
		if (!check_answer(replay, "Submit",
		    wse_addr_domain(cfg.from[kp->sender]), kp->msgid,
		    (const uint8_t *)kp->ans, kp->len, 200, (int64_t)kp->at,
		    &ans, &pl, why, sizeof(why)) ||
		    (id = bench_child_text(pl, "Id", 128)) == NULL ||
		    !wse_uuid_urn_valid(id)) {
			if (ans != NULL)
				(void)snprintf(why, sizeof(why), "no Id");
			if (bad++ < 10)
				fprintf(stderr, "relay_load: the answer to "
				    "message %ld fails the check after the "
				    "run: %s\n", kp->k, why);
		} else if (idf != NULL)
			fprintf(idf, "%s\n", id);
		free(id);
		wse_env_free(&ans);
		wse_err_clear();
	}
	if (bad > 0)
		fprintf(stderr, "relay_load: %ld of %ld acknowledged answers "
		    "fail the check after the run\n", bad, n);
	if (idf != NULL)
		fflush(idf);
	wse_replay_free(&replay);
	return bad;
}

static void *
client_main(void *arg)
{
	size_t tid = (size_t)(uintptr_t)arg, s = tid % cfg.nfrom;
	wse_http_client *http = new_client();
	wse_replay *replay = NULL;
	wse_signer *signer = NULL;
	const char *domain = wse_addr_domain(cfg.from[s]);

	if (wse_replay_memory_new(65536, &replay) != WSE_OK ||
	    wse_signer_new_password(cfg.from[s], cfg.key[s], &signer) !=
	    WSE_OK)
		die("signer");
	for (;;) {
		wse_envelope *ans = NULL;
		wse_buf *payload;
		xmlNodePtr pl;
		char why[600], *id = NULL;
		double ms, t0;
		long k, a;

		if (atomic_load(&acked) >= cfg.n || bench_now_mono() > t_deadline)
			break;
		/* Never more than N acknowledged: a slot is held while a
		 * Submit is in flight and given back when it fails. */
		if (atomic_fetch_add(&claimed, 1) >= cfg.n) {
			atomic_fetch_sub(&claimed, 1);
			usleep(10 * 1000);
			continue;
		}
		k = atomic_fetch_add(&next_msg, 1);
		if (cfg.rate > 0) {
			double wait = t_start + (double)k / cfg.rate -
			    bench_now_mono();

			if (wait > 0)
				usleep((useconds_t)(wait * 1e6));
		}
		if (cfg.prepare) {
			if (!post_kept(http, replay, signer, s, k, why,
			    sizeof(why))) {
				atomic_fetch_add(&failed, 1);
				atomic_fetch_sub(&claimed, 1);
				if (!cfg.quiet)
					fprintf(stderr, "relay_load: submit "
					    "%ld failed (%s); a new message "
					    "will be sent\n", k, why);
				usleep(100 * 1000);
			}
			continue;
		}
		payload = submit_payload(s, k);
		t0 = now_real();
		pthread_mutex_lock(&out_lock);
		if (t_first < 0)
			t_first = t0;
		pthread_mutex_unlock(&out_lock);
		if (!call(http, replay, signer, "Submit", wse_buf_str(payload),
		    domain, &ans, &pl, &ms, why, sizeof(why)) ||
		    (id = bench_child_text(pl, "Id", 128)) == NULL ||
		    !wse_uuid_urn_valid(id)) {
			if (ans != NULL)
				(void)snprintf(why, sizeof(why), "no Id");
			free(id);
			wse_env_free(&ans);
			wse_buf_free(&payload);
			atomic_fetch_add(&failed, 1);
			atomic_fetch_sub(&claimed, 1);
			if (!cfg.quiet)
				fprintf(stderr, "relay_load: submit %ld "
				    "failed (%s); a new message will be "
				    "sent\n", k, why);
			usleep(100 * 1000);
			continue;
		}
		wse_env_free(&ans);
		wse_buf_free(&payload);
		pthread_mutex_lock(&out_lock);
		a = atomic_fetch_add(&acked, 1);
		if (a < cfg.n) {
			lat_ms[a] = ms;
			t_last = now_real();
		}
		if (idf != NULL) {
			fprintf(idf, "%s\n", id);
			fflush(idf);
		}
		pthread_mutex_unlock(&out_lock);
		free(id);
	}
	wse_signer_free(&signer);
	wse_replay_free(&replay);
	wse_http_client_free(&http);
	return NULL;
}

/* CPU time of this process so far (user + system, all threads), s. */
/*
 * -X: send the first prepared Submit, acknowledged during the run, once
 * more; the server must refuse it as a replay (HTTP 500, a Fault with
 * subcode wse:Replay) and queue nothing.  1 when it did.
 */
static int
replay_refused(char *why, size_t whysz)
{
	wse_http_client *http = new_client();
	wse_envelope *env = NULL;
	wse_buf *resp = NULL;
	wse_status fst = WSE_OK;
	char reason[256], eb[512];
	long status = 0;
	int ok = 0;

	if (prep == NULL || prep[0].req == NULL) {
		(void)snprintf(why, whysz, "no prepared request to send again");
		goto out;
	}
	if ((resp = wse_buf_new(cfg.resp_lim.max_message_bytes)) == NULL ||
	    wse_http_post(http, cfg.url, cfg.addr, "application/soap+xml",
	    prep[0].req, prep[0].len, resp, &status) != WSE_OK) {
		(void)snprintf(why, whysz, "post: %s",
		    wse_err_format(eb, sizeof(eb)));
		goto out;
	}
	if (status != 500 || wse_env_parse(wse_buf_data(resp),
	    wse_buf_len(resp), &cfg.resp_lim, &env) != WSE_OK ||
	    wse_fault_read(wse_env_body(env), &fst, reason,
	    sizeof(reason)) != WSE_OK) {
		(void)snprintf(why, whysz, "HTTP %ld, not a Fault", status);
		goto out;
	}
	if (fst != WSE_ERR_REPLAY) {
		(void)snprintf(why, whysz, "Fault %s (%s), not a replay",
		    wse_fault_subcode(fst), reason);
		goto out;
	}
	ok = 1;
out:
	wse_err_clear();
	wse_env_free(&env);
	wse_buf_free(&resp);
	wse_http_client_free(&http);
	return ok;
}

static double
cpu_now(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(const double *v, long n, double p)
{
	long i;

	if (n <= 0)
		return 0;
	i = (long)(p * (double)n + 0.999999) - 1;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return v[i];
}

/* A whole number in [lo, hi] from the command line, or exit with usage. */
static long
opt_num(const char *s, long lo, long hi)
{
	return bench_opt_num("relay_load", s, lo, hi);
}

int
main(int argc, char **argv)
{
	pthread_t *th;
	wse_http_client *http;
	wse_replay *replay;
	double cpu_s, prepare_s = 0, verify_s = 0;
	long i, n_ok, bad = 0;
	int replay_ok = 0;
	int opt;

	cfg.n = 2000;
	cfg.c = 32;
	cfg.size = 4096;
	cfg.verify = 1;
	cfg.deadline_s = 600;
	while ((opt = getopt(argc, argv, "u:a:r:f:t:n:c:s:V:d:i:qR:P:g:S:X")) != -1) {
		switch (opt) {
		case 'u': cfg.url = optarg; break;
		case 'a': cfg.addr = optarg; break;
		case 'r': cfg.roots = optarg; break;
		case 'f': cfg.nfrom = split(optarg, cfg.from); break;
		case 't': cfg.nto = split(optarg, cfg.to); break;
		case 'n': cfg.n = opt_num(optarg, 1, 10000000); break;
		case 'c': cfg.c = opt_num(optarg, 1, 4096); break;
		case 's': cfg.size = opt_num(optarg, 1, 64 << 20); break;
		case 'V': cfg.verify = opt_num(optarg, 0, 1) != 0; break;
		case 'P': cfg.prepare = opt_num(optarg, 0, 1) != 0; break;
		case 'd': cfg.deadline_s = opt_num(optarg, 1, 86400); break;
		case 'i': cfg.idfile = optarg; break;
		case 'g': cfg.gate = optarg; break;
		case 'S': cfg.start = optarg; break;
		case 'X': cfg.replay_check = 1; break;
		case 'q': cfg.quiet = 1; break;
		case 'R':
			cfg.rate = opt_num(optarg, 0, 1000000);
			break;
		default:
			fprintf(stderr, "usage: see the comment at the top of "
			    "bench/relay_load.c\n");
			return 2;
		}
	}
	if (cfg.url == NULL || cfg.roots == NULL || cfg.nfrom == 0 ||
	    cfg.nto == 0 || cfg.n < 1 || cfg.c < 1 || cfg.c > 1024 ||
	    cfg.size < 1 || cfg.size > 1 << 20) {
		fprintf(stderr, "relay_load: need -u URL -r ROOTS -f FROM "
		    "-t TO (and sane -n -c -s)\n");
		return 2;
	}
	if (cfg.prepare && cfg.n > 200000) {
		fprintf(stderr, "relay_load: -P 1 keeps every request and "
		    "answer in memory: -n at most 200000\n");
		return 2;
	}
	wse_limits_default(&cfg.lim);
	cfg.lim.max_message_bytes = 4u << 20;
	cfg.resp_lim = cfg.lim;
	if (wse_wss_init() != WSE_OK)
		die("xmlsec");
	if (wse_trust_new(&cfg.trust) != WSE_OK ||
	    wse_trust_load_roots(cfg.trust, cfg.roots) != WSE_OK)
		die("roots");
	wse_trust_skip_crls(cfg.trust);
	if ((cfg.text = malloc((size_t)cfg.size + 1)) == NULL ||
	    (lat_ms = calloc((size_t)cfg.n, sizeof(double))) == NULL ||
	    (th = calloc((size_t)cfg.c, sizeof(*th))) == NULL)
		die("memory");
	for (i = 0; i < cfg.size; i++)
		cfg.text[i] = (i % 64 == 63) ? '\n' :
		    (char)('a' + (i * 7 + i / 64) % 26);
	cfg.text[cfg.size] = '\0';
	if (cfg.idfile != NULL && (idf = fopen(cfg.idfile, "a")) == NULL) {
		perror(cfg.idfile);
		return 2;
	}
	/* Log-in: once per sender, on this thread. */
	http = new_client();
	if (wse_replay_memory_new(1024, &replay) != WSE_OK)
		die("replay");
	for (i = 0; i < (long)cfg.nfrom; i++)
		login(http, replay, (size_t)i);
	wse_http_client_free(&http);
	wse_replay_free(&replay);
	if (cfg.prepare) {
		double t0 = bench_now_mono();

		if ((kept = calloc((size_t)cfg.n, sizeof(*kept))) == NULL)
			die("memory");
		prepare_all();
		prepare_s = bench_now_mono() - t0;
	}
	cpu_s = -cpu_now();	/* the logins' PBKDF2 is not counted */
	if (cfg.start != NULL) {
		/* The clock starts now: tell whoever measures the machine. */
		int sfd = open(cfg.start, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

		if (sfd < 0) {
			perror(cfg.start);
			return 2;
		}
		(void)close(sfd);
	}

	t_start = bench_now_mono();
	t_deadline = t_start + (double)cfg.deadline_s;
	for (i = 0; i < cfg.c; i++)
		if (pthread_create(&th[i], NULL, client_main,
		    (void *)(uintptr_t)i) != 0) {
			fprintf(stderr, "relay_load: cannot start thread\n");
			return 2;
		}
	for (i = 0; i < cfg.c; i++)
		pthread_join(th[i], NULL);
	n_ok = atomic_load(&acked);
	if (n_ok > cfg.n)
		n_ok = cfg.n;
	qsort(lat_ms, (size_t)n_ok, sizeof(double), cmp_d);
	cpu_s += cpu_now();
	if (cfg.prepare) {
		double t0;

		if (cfg.gate != NULL)
			gate_wait();
		t0 = bench_now_mono();
		bad = verify_kept(n_ok);
		verify_s = bench_now_mono() - t0;
	}
	if (cfg.replay_check) {
		char why[600];

		if (!replay_refused(why, sizeof(why))) {
			fprintf(stderr, "relay_load: the Submit sent again was "
			    "not refused as a replay: %s\n", why);
			bad++;
		} else
			replay_ok = 1;
	}
	printf("acked=%ld failed=%ld first_submit=%.6f last_ack=%.6f "
	    "elapsed_s=%.3f rate=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f "
	    "max_ms=%.2f cpu_s=%.2f", n_ok - bad, atomic_load(&failed) + bad,
	    t_first, t_last, t_last - t_first, t_last > t_first ?
	    (double)n_ok / (t_last - t_first) : 0.0, pct(lat_ms, n_ok, 0.50),
	    pct(lat_ms, n_ok, 0.90), pct(lat_ms, n_ok, 0.99),
	    n_ok ? lat_ms[n_ok - 1] : 0.0, cpu_s);
	if (cfg.prepare)
		printf(" prepare_s=%.3f verify_s=%.3f verified=%ld inline=%ld",
		    prepare_s, verify_s, n_ok - bad,
		    atomic_load(&inline_built));
	if (cfg.replay_check)
		printf(" replay=%s", replay_ok ? "refused" : "ACCEPTED");
	printf("\n");
	fflush(stdout);
	if (idf != NULL)
		fclose(idf);
	wse_trust_free(&cfg.trust);
	free(cfg.text);
	free(lat_ms);
	free(th);
	if (prep != NULL)
		for (i = 0; i < cfg.n; i++) {
			free(prep[i].req);
			free(prep[i].msgid);
		}
	if (kept != NULL)
		for (i = 0; i < cfg.n; i++) {
			free(kept[i].ans);
			free(kept[i].msgid);
		}
	free(prep);
	free(kept);
	xmlCleanupParser();
	return n_ok - bad >= cfg.n ? 0 : 1;
}
