/*
 * im_load.c - a load generator for instant messages (docs/im.md): it
 * speaks the client protocol itself, without the CLI.
 *
 * P pairs of users, pair i being PREFIX_A<i>@DOMAIN_A and
 * PREFIX_B<i>@DOMAIN_B (i = 1..P, three digits).  Every user logs in once
 * (GetAuthParams, PBKDF2) and runs a session: a thread of WaitInstant
 * long-polls at its own server, each answer's signature verified, and each
 * item's original verified end to end (the sending server's signature, for
 * the sender's domain) and parsed, as "wsemail listen" does.  Once every
 * session is online, senders Submit instant messages (password profile)
 * at their own server, which delivers each synchronously to the other
 * domain's server, which pushes it to the waiting session.
 *
 *   -m latency     one sender (a1 -> b1), one message at a time: N
 *                  messages; the latency of each is from just before its
 *                  Submit goes out to the moment the recipient's session
 *                  has verified it.
 *   -m throughput  each pair chats: a<i> sends to b<i>, b<i> answers once
 *                  it has a<i>'s message, a<i> answers that, and so on
 *                  (one message of each pair in flight), all pairs at
 *                  once, until N messages were sent in all; the rate is
 *                  messages received per second from the first Submit to
 *                  the last arrival.
 *
 * Usage: im_load -a URL_A -b URL_B -r ROOTS [options]
 *   -A ADDR / -B ADDR   connect to these numeric addresses
 *   -x PREFIX_A (a)  -y PREFIX_B (b)  -P pairs (1)  -n N (10000)
 *   -s BYTES  text size (100)   -V 0|1 verify (1)   -d SECONDS (600)
 * The password comes from WSEMAIL_PASSWORD (the same for every user).
 * IM_LOAD_TIMES=FILE also writes each arrived message's send time (s
 * from the start) and latency (ms), one line each, in sending order.
 * Prints one line of key=value figures: mode pairs size sent received
 * stored failed bad elapsed_s rate p50_ms p90_ms p99_ms max_ms.
 * Exit status 0 when every message arrived.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libxml/parser.h>

#include "benchutil.h"
#include "crypto.h"
#include "http.h"
#include "msg.h"
#include "replay.h"
#include "soap.h"
#include "wss.h"
#include "xml.h"

#define MAX_PAIRS 1000
#define REQUEST_TTL 300
#define WAIT_S 5

struct user {
	char addr[WSE_ADDR_MAX + 1];
	char peer[WSE_ADDR_MAX + 1];
	const char *url, *connect;
	const char *domain, *peer_domain;
	wse_signer *signer;
	pthread_t rx, tx;
	sem_t turn;		/* posted when this user is to send next */
	struct user *other;	/* the pair's other user */
};

static struct {
	const char *url_a, *url_b, *addr_a, *addr_b, *roots;
	const char *pa, *pb, *dom_a, *dom_b;
	char dom_a_buf[256], dom_b_buf[256];
	long pairs, n, size, deadline_s;
	int verify, latency;
	wse_limits lim, resp_lim;
	wse_trust *trust;
} cfg;

static struct user *users;		/* 2 * pairs */
static double *t_sent;
static volatile double *t_arrived;	/* per message number, monotonic */
static atomic_long next_msg, received, stored, failed, bad;
static atomic_int online, stop;
static double t_end;
static char *filler;

#define die(what) bench_die("im_load", what)
#define new_client() bench_http_client("im_load", cfg.roots, \
	    cfg.resp_lim.max_message_bytes)

/*
 * One exchange with u's server: op around payload, signed by u (unless
 * unsigned); the answer checked (HTTP,
 * envelope, signature by u's domain and RelatesTo when verifying, no
 * Fault, <op>Response).  0 with *env_r and *resp_r, or -1.
 */
static int
call(const struct user *u, wse_http_client *http, wse_replay *replay,
    const char *op, const char *payload, int sign, wse_envelope **env_r,
    xmlNodePtr *resp_r)
{
	wse_envelope *env = NULL, *ans = NULL;
	wse_buf *req = NULL, *resp = NULL;
	wse_verified v;
	wse_verify_opts o;
	xmlNodePtr body;
	char action[128], want[128];
	long status = 0;
	int ok = -1;

	memset(&v, 0, sizeof(v));
	*env_r = NULL;
	(void)snprintf(action, sizeof(action), WSE_ACTION_PREFIX "%s", op);
	if (wse_env_new(u->url, action, &env) != WSE_OK ||
	    wse_env_add_body_xml(env, payload, strlen(payload), &cfg.lim) !=
	    WSE_OK)
		goto out;
	if ((sign && wse_wss_sign(env, u->signer, (int64_t)time(NULL),
	    REQUEST_TTL) != WSE_OK) ||
	    (req = wse_buf_new(cfg.lim.max_message_bytes)) == NULL ||
	    (resp = wse_buf_new(cfg.resp_lim.max_message_bytes)) == NULL ||
	    wse_env_serialize(env, req) != WSE_OK)
		goto out;
	if (wse_http_post(http, u->url, u->connect, "application/soap+xml",
	    wse_buf_data(req), wse_buf_len(req), resp, &status) != WSE_OK ||
	    status != 200)
		goto out;
	if (wse_env_parse(wse_buf_data(resp), wse_buf_len(resp),
	    &cfg.resp_lim, &ans) != WSE_OK)
		goto out;
	if (cfg.verify) {
		memset(&o, 0, sizeof(o));
		o.profile = WSE_PROFILE_CERT;
		o.limits = &cfg.resp_lim;
		o.replay = replay;
		o.now = (int64_t)time(NULL);
		o.trust = cfg.trust;
		o.purpose = WSE_PURPOSE_SERVICE;
		o.expected_domain = u->domain;
		if (wse_wss_verify(ans, &o, &v) != WSE_OK ||
		    v.relates_to_s == NULL ||
		    strcmp(v.relates_to_s, wse_env_message_id(env)) != 0)
			goto out;
		body = v.body;
	} else
		body = wse_env_body(ans);
	(void)snprintf(want, sizeof(want), "%sResponse", op);
	if (wse_xml_only_child(body, WSE_NS_WSE, want, resp_r) != WSE_OK)
		goto out;
	*env_r = ans;
	ans = NULL;
	ok = 0;
out:
	wse_err_clear();
	wse_verified_clear(&v);
	wse_env_free(&ans);
	wse_env_free(&env);
	wse_buf_free(&req);
	wse_buf_free(&resp);
	return ok;
}

static void
login(struct user *u)
{
	wse_http_client *http = new_client();
	wse_replay *replay = NULL;
	wse_envelope *env = NULL;
	xmlNodePtr p;
	wse_buf *salt = wse_buf_new(256);
	char payload[512], *salt_b64 = NULL, *iter = NULL;
	uint8_t key[WSE_DERIVED_KEY_LEN];
	const char *pw = getenv("WSEMAIL_PASSWORD");

	if (pw == NULL || salt == NULL ||
	    wse_replay_memory_new(64, &replay) != WSE_OK)
		die("set-up");
	(void)snprintf(payload, sizeof(payload), "<m:GetAuthParams xmlns:m=\""
	    WSE_NS_WSE "\"><m:User>%s</m:User></m:GetAuthParams>", u->addr);
	if (call(u, http, replay, "GetAuthParams", payload, 0, &env,
	    &p) != 0 ||
	    (salt_b64 = bench_child_text(p, "Salt", 128)) == NULL ||
	    (iter = bench_child_text(p, "Iterations", 16)) == NULL ||
	    wse_base64_decode(salt_b64, strlen(salt_b64), salt) != WSE_OK ||
	    wse_pbkdf2_sha256(pw, strlen(pw), wse_buf_data(salt),
	    wse_buf_len(salt), (uint32_t)strtoul(iter, NULL, 10), key) !=
	    WSE_OK ||
	    wse_signer_new_password(u->addr, key, &u->signer) != WSE_OK) {
		fprintf(stderr, "im_load: log-in of %s failed\n", u->addr);
		exit(2);
	}
	wse_memzero(key, sizeof(key));
	free(salt_b64);
	free(iter);
	wse_buf_free(&salt);
	wse_env_free(&env);
	wse_replay_free(&replay);
	wse_http_client_free(&http);
}

/* An item's original: verified (as of now) for the sender's domain and
 * parsed; the message number from its text, or -1. */
static long
item_number(const struct user *u, const xmlNode *item, wse_buf *orig)
{
	wse_envelope *env = NULL;
	wse_verified v;
	wse_verify_opts o;
	wse_replay *fresh = NULL;
	xmlNodePtr d, mn;
	wse_msg *m = NULL;
	char *b64 = bench_child_text(item, "Original",
	    cfg.resp_lim.max_message_bytes);
	long k = -1;

	memset(&v, 0, sizeof(v));
	wse_buf_reset(orig);
	if (b64 == NULL || wse_base64_decode(b64, strlen(b64), orig) !=
	    WSE_OK || wse_env_parse(wse_buf_data(orig), wse_buf_len(orig),
	    &cfg.lim, &env) != WSE_OK)
		goto out;
	if (cfg.verify) {
		if (wse_replay_memory_new(4, &fresh) != WSE_OK)
			goto out;
		memset(&o, 0, sizeof(o));
		o.profile = WSE_PROFILE_CERT;
		o.limits = &cfg.lim;
		o.replay = fresh;
		o.now = (int64_t)time(NULL);
		o.trust = cfg.trust;
		o.purpose = WSE_PURPOSE_SERVICE;
		o.expected_domain = u->peer_domain;
		if (wse_wss_verify(env, &o, &v) != WSE_OK)
			goto out;
		d = v.body;
	} else
		d = wse_env_body(env);
	if (wse_xml_only_child(d, WSE_NS_WSE, "Deliver", &d) != WSE_OK ||
	    wse_xml_only_child(d, WSE_NS_WSE, "Message", &mn) != WSE_OK ||
	    wse_msg_parse(mn, &m) != WSE_OK || m->text == NULL ||
	    strcmp(m->from, u->peer) != 0 || m->text[0] != '#')
		goto out;
	k = strtol(m->text + 1, NULL, 10);
	if (k < 0 || k >= cfg.n)
		k = -1;
out:
	if (k < 0)
		atomic_fetch_add(&bad, 1);
	wse_err_clear();
	wse_msg_free(&m);
	wse_verified_clear(&v);
	wse_env_free(&env);
	wse_replay_free(&fresh);
	free(b64);
	return k;
}

static void *
rx_main(void *arg)
{
	struct user *u = arg;
	wse_http_client *http = new_client();
	wse_replay *replay = NULL;
	wse_buf *orig = wse_buf_new(cfg.resp_lim.max_message_bytes);
	char sid[WSE_UUID_URN_LEN + 1], payload[512];
	long long after = 0;
	int first = 1;

	if (orig == NULL || wse_replay_memory_new(1 << 20, &replay) !=
	    WSE_OK || wse_uuid_urn(sid) != WSE_OK)
		die("set-up");
	while (!atomic_load(&stop) && bench_now_mono() < t_end) {
		wse_envelope *env = NULL;
		xmlNodePtr p, it;

		(void)snprintf(payload, sizeof(payload), "<m:WaitInstant "
		    "xmlns:m=\"" WSE_NS_WSE "\"><m:Session>%s</m:Session>"
		    "<m:After>%lld</m:After><m:Wait>%d</m:Wait>"
		    "</m:WaitInstant>", sid, after, first ? 1 : WAIT_S);
		if (call(u, http, replay, "WaitInstant", payload, 1, &env,
		    &p) != 0) {
			fprintf(stderr, "im_load: WaitInstant of %s failed\n",
			    u->addr);
			usleep(100000);
			continue;
		}
		if (first) {
			const char *l = wse_xml_attr(p, NULL, "last");

			if (l != NULL)
				after = strtoll(l, NULL, 10);
			first = 0;
			atomic_fetch_add(&online, 1);
			wse_env_free(&env);
			continue;
		}
		for (it = wse_xml_first_elem(p); it; it = wse_xml_next_elem(it)) {
			const char *s = wse_xml_attr(it, NULL, "seq");
			long long seq = s ? strtoll(s, NULL, 10) : 0;
			long k;

			if (!wse_xml_is(it, WSE_NS_WSE, "Item") || seq <= after)
				continue;
			after = seq;
			if ((k = item_number(u, it, orig)) >= 0) {
				t_arrived[k] = bench_now_mono();
				atomic_fetch_add(&received, 1);
				/* Our answer; latency: the sender's next. */
				sem_post(cfg.latency ? &u->other->turn :
				    &u->turn);
			}
		}
		wse_env_free(&env);
		if (atomic_load(&received) + atomic_load(&stored) +
		    atomic_load(&failed) >= cfg.n && atomic_load(&next_msg) >=
		    cfg.n)
			atomic_store(&stop, 1);
	}
	wse_buf_free(&orig);
	wse_replay_free(&replay);
	wse_http_client_free(&http);
	return NULL;
}

/* One instant message numbered k from u to its peer. */
static void
send_one(const struct user *u, wse_http_client *http, wse_replay *replay,
    long k, wse_msg *m, wse_buf *payload, char *text)
{
	wse_envelope *env = NULL;
	xmlNodePtr p, in;
	char head[32];
	const char *res;
	size_t hl;

	hl = (size_t)snprintf(head, sizeof(head), "#%ld ", k);
	memcpy(text, head, hl < (size_t)cfg.size ? hl : (size_t)cfg.size);
	if (wse_msg_set(m, "text", text) != WSE_OK)
		die("message");
	wse_buf_reset(payload);
	if (wse_buf_puts(payload, "<m:Submit xmlns:m=\"" WSE_NS_WSE "\">") !=
	    WSE_OK || wse_msg_to_xml(m, payload) != WSE_OK ||
	    wse_buf_puts(payload, "</m:Submit>") != WSE_OK)
		die("message");
	t_sent[k] = bench_now_mono();
	if (call(u, http, replay, "Submit", wse_buf_str(payload), 1, &env,
	    &p) != 0 || wse_xml_only_child(p, WSE_NS_WSE, "Instant", &in) !=
	    WSE_OK || (res = wse_xml_attr(in, NULL, "result")) == NULL) {
		wse_err_clear();
		atomic_fetch_add(&failed, 1);
	} else if (strcmp(res, "stored") == 0)
		atomic_fetch_add(&stored, 1);
	wse_env_free(&env);
}

static void *
tx_main(void *arg)
{
	struct user *u = arg;
	wse_http_client *http = new_client();
	wse_replay *replay = NULL;
	wse_buf *payload = wse_buf_new(cfg.lim.max_message_bytes);
	wse_msg *m = NULL;
	char *text = strdup(filler);
	long k;

	if (payload == NULL || text == NULL || wse_replay_memory_new(1 << 20, &replay) !=
	    WSE_OK || wse_msg_new(&m) != WSE_OK ||
	    wse_msg_set(m, "from", u->addr) != WSE_OK ||
	    wse_msg_add_rcpt(m, u->peer, 0) != WSE_OK)
		die("set-up");
	m->instant = 1;
	for (;;) {
		struct timespec ts;
		long before;

		/* Our turn: at the start (a<i>), or once the peer's message
		 * arrived. */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (atomic_load(&stop) || bench_now_mono() >= t_end)
			break;
		if (sem_timedwait(&u->turn, &ts) != 0)
			continue;
		if ((k = atomic_fetch_add(&next_msg, 1)) >= cfg.n)
			break;
		before = atomic_load(&failed) + atomic_load(&stored);
		send_one(u, http, replay, k, m, payload, text);
		/* Not pushed: no answer will come; go on ourselves. */
		if (atomic_load(&failed) + atomic_load(&stored) != before)
			sem_post(&u->turn);
	}
	free(text);
	wse_msg_free(&m);
	wse_buf_free(&payload);
	wse_replay_free(&replay);
	wse_http_client_free(&http);
	return NULL;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static const char *
domain_of(const char *url, char *buf, size_t size)
{
	const char *h = url + 8, *e = h + strcspn(h, ":/");

	/* mail.DOMAIN */
	if (strncmp(h, "mail.", 5) == 0)
		h += 5;
	(void)snprintf(buf, size, "%.*s", (int)(e - h), h);
	return buf;
}

int
main(int argc, char **argv)
{
	double t0, t_last = 0, *lat;
	const char *times;
	long i, nl = 0, nusers;
	int opt;

	cfg.pa = "a";
	cfg.pb = "b";
	cfg.pairs = 1;
	cfg.n = 10000;
	cfg.size = 100;
	cfg.verify = 1;
	cfg.deadline_s = 600;
	cfg.latency = 1;
	while ((opt = getopt(argc, argv, "a:b:A:B:r:x:y:P:n:s:V:d:m:")) != -1) {
		switch (opt) {
		case 'a': cfg.url_a = optarg; break;
		case 'b': cfg.url_b = optarg; break;
		case 'A': cfg.addr_a = optarg; break;
		case 'B': cfg.addr_b = optarg; break;
		case 'r': cfg.roots = optarg; break;
		case 'x': cfg.pa = optarg; break;
		case 'y': cfg.pb = optarg; break;
		case 'P': cfg.pairs = bench_opt_num("im_load", optarg, 1, MAX_PAIRS); break;
		case 'n': cfg.n = bench_opt_num("im_load", optarg, 1, 100000000); break;
		case 's': cfg.size = bench_opt_num("im_load", optarg, 16, 65536); break;
		case 'V': cfg.verify = (int)bench_opt_num("im_load", optarg, 0, 1); break;
		case 'd': cfg.deadline_s = bench_opt_num("im_load", optarg, 1, 86400); break;
		case 'm': cfg.latency = strcmp(optarg, "latency") == 0; break;
		default: goto usage;
		}
	}
	if (cfg.url_a == NULL || cfg.url_b == NULL || cfg.roots == NULL ||
	    strncmp(cfg.url_a, "https://", 8) != 0 ||
	    strncmp(cfg.url_b, "https://", 8) != 0 || cfg.pairs < 1 ||
	    cfg.pairs > MAX_PAIRS || cfg.n < 1 || cfg.size < 16 ||
	    cfg.size > 65536)
		goto usage;
	if (cfg.latency)
		cfg.pairs = 1;
	cfg.dom_a = domain_of(cfg.url_a, cfg.dom_a_buf, sizeof(cfg.dom_a_buf));
	cfg.dom_b = domain_of(cfg.url_b, cfg.dom_b_buf, sizeof(cfg.dom_b_buf));
	wse_limits_default(&cfg.lim);
	cfg.resp_lim = cfg.lim;
	cfg.resp_lim.max_message_bytes *= 8;
	if (wse_wss_init() != WSE_OK || wse_trust_new(&cfg.trust) != WSE_OK ||
	    wse_trust_load_roots(cfg.trust, cfg.roots) != WSE_OK)
		die("roots");
	wse_trust_skip_crls(cfg.trust);
	if ((filler = malloc((size_t)cfg.size + 1)) == NULL ||
	    (t_sent = calloc((size_t)cfg.n, sizeof(double))) == NULL ||
	    (t_arrived = calloc((size_t)cfg.n, sizeof(double))) == NULL ||
	    (lat = calloc((size_t)cfg.n, sizeof(double))) == NULL)
		die("memory");
	memset(filler, 'x', (size_t)cfg.size);
	filler[cfg.size] = '\0';
	nusers = 2 * cfg.pairs;
	if ((users = calloc((size_t)nusers, sizeof(*users))) == NULL)
		die("memory");
	for (i = 0; i < cfg.pairs; i++) {
		struct user *a = &users[2 * i], *b = &users[2 * i + 1];

		(void)snprintf(a->addr, sizeof(a->addr), "%s%03ld@%s", cfg.pa,
		    i + 1, cfg.dom_a);
		(void)snprintf(b->addr, sizeof(b->addr), "%s%03ld@%s", cfg.pb,
		    i + 1, cfg.dom_b);
		memcpy(a->peer, b->addr, sizeof(a->peer));
		memcpy(b->peer, a->addr, sizeof(b->peer));
		a->url = cfg.url_a;
		a->connect = cfg.addr_a;
		a->domain = cfg.dom_a;
		a->peer_domain = cfg.dom_b;
		b->url = cfg.url_b;
		b->connect = cfg.addr_b;
		b->domain = cfg.dom_b;
		b->peer_domain = cfg.dom_a;
		login(a);
		login(b);
		/* a<i> starts; b<i> sends only when answering (latency:
		 * only a1 sends, each time b1's session has its message). */
		a->other = b;
		b->other = a;
		if (sem_init(&a->turn, 0, 1) != 0 || sem_init(&b->turn, 0, 0) != 0)
			die("semaphore");
	}
	t_end = bench_now_mono() + (double)cfg.deadline_s;
	for (i = 0; i < nusers; i++)
		if (pthread_create(&users[i].rx, NULL, rx_main, &users[i]) != 0)
			die("thread");
	while (atomic_load(&online) < nusers && bench_now_mono() < t_end)
		usleep(10000);
	/* Every session is online; let each hold its next WaitInstant. */
	usleep(300000);
	t0 = bench_now_mono();
	for (i = 0; i < nusers; i++) {
		if (cfg.latency && i > 0)
			break;
		if (pthread_create(&users[i].tx, NULL, tx_main, &users[i]) != 0)
			die("thread");
	}
	for (i = 0; i < nusers; i++)
		if (!cfg.latency || i == 0)
			pthread_join(users[i].tx, NULL);
	while (!atomic_load(&stop) && bench_now_mono() < t_end)
		usleep(10000);
	atomic_store(&stop, 1);
	for (i = 0; i < nusers; i++)
		pthread_join(users[i].rx, NULL);
	for (i = 0; i < cfg.n; i++)
		if (t_arrived[i] > 0 && t_sent[i] > 0) {
			lat[nl++] = (t_arrived[i] - t_sent[i]) * 1000;
			if (t_arrived[i] > t_last)
				t_last = t_arrived[i];
		}
	if ((times = getenv("IM_LOAD_TIMES")) != NULL && *times != '\0') {
		FILE *f = fopen(times, "w");

		for (i = 0; f != NULL && i < cfg.n; i++)
			if (t_arrived[i] > 0 && t_sent[i] > 0)
				fprintf(f, "%.6f %.3f\n", t_sent[i] - t0,
				    (t_arrived[i] - t_sent[i]) * 1000);
		if (f == NULL || fclose(f) != 0)
			fprintf(stderr, "im_load: cannot write %s\n", times);
	}
	qsort(lat, (size_t)nl, sizeof(double), cmp_d);
#define PCT(p) (nl ? lat[(size_t)((double)(nl - 1) * (p))] : 0)
	printf("mode=%s pairs=%ld size=%ld sent=%ld received=%ld stored=%ld "
	    "failed=%ld bad=%ld elapsed_s=%.2f rate=%.1f p50_ms=%.2f "
	    "p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
	    cfg.latency ? "latency" : "throughput", cfg.pairs, cfg.size,
	    cfg.n, atomic_load(&received), atomic_load(&stored),
	    atomic_load(&failed), atomic_load(&bad), t_last > t0 ? t_last - t0 :
	    0, t_last > t0 ? (double)nl / (t_last - t0) : 0, PCT(0.5),
	    PCT(0.9), PCT(0.99), nl ? lat[nl - 1] : 0);
	for (i = 0; i < nusers; i++)
		wse_signer_free(&users[i].signer);
	free(users);
	free(t_sent);
	free((void *)t_arrived);
	free(lat);
	free(filler);
	wse_trust_free(&cfg.trust);
	xmlCleanupParser();
	return atomic_load(&received) == cfg.n ? 0 : 1;
usage:
	fprintf(stderr, "usage: WSEMAIL_PASSWORD=... im_load -a URL_A -b URL_B "
	    "-r ROOTS [-A ADDR] [-B ADDR] [-x PREFIX] [-y PREFIX] [-P PAIRS] "
	    "[-n N] [-s BYTES] [-V 0|1] [-d SECONDS] [-m latency|throughput]\n");
	return 2;
}
