/*
 * testdns.c - see testdns.h.
 */
#include "testutil.h"
#include "testdns.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "route.h"

#define TESTDNS_MAX_ARGS 640

void
testdns_init(testdns *d)
{
	memset(d, 0, sizeof(*d));
	d->prog = getenv("WSE_TEST_DNSMASQ");
	if (d->prog == NULL || *d->prog == '\0') {
		print_message("no dnsmasq: WSE_TEST_DNSMASQ is not set "
		    "(Debian package dnsmasq-base)\n");
		skip();
	}
}

int
testdns_silent(char *addr, size_t size)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd;

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(addr, size, "127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
	return fd;
}

/* A loopback UDP port free a moment ago. */
static unsigned
free_udp_port(void)
{
	char addr[64];
	unsigned port;

	close(testdns_silent(addr, sizeof(addr)));
	assert_int_equal(sscanf(addr, "127.0.0.1:%u", &port), 1);
	return port;
}

/*
 * Start dnsmasq on d->port with the options opts besides "ready.test",
 * which tells when it answers.  Returns 0 when it exited instead (its
 * port was taken).
 */
static int
spawn(testdns *d, const char *const *opts)
{
	const char *argv[TESTDNS_MAX_ARGS];
	char portopt[32];
	wse_router *probe;
	wse_route_target *t;
	size_t n, i, k = 0;
	pid_t parent;
	int fd, tries;

	snprintf(d->log, sizeof(d->log), "%s/dnsmasq.%d.log", d->dir,
	    ++d->starts);
	snprintf(portopt, sizeof(portopt), "--port=%u", d->port);
	argv[k++] = d->prog;
	argv[k++] = "--no-daemon";
	argv[k++] = "--conf-file=/dev/null";
	argv[k++] = "--no-resolv";
	argv[k++] = "--no-hosts";
	argv[k++] = "--listen-address=127.0.0.1";
	argv[k++] = "--bind-interfaces";
	argv[k++] = portopt;
	argv[k++] = "--local=/test/";
	argv[k++] = "--log-queries";
	argv[k++] = "--srv-host=_wsemail._tcp.ready.test,ready.test,1";
	argv[k++] = "--host-record=ready.test,127.0.0.1";
	for (i = 0; opts[i] != NULL; i++) {
		assert_true(k + 1 < TESTDNS_MAX_ARGS);
		argv[k++] = opts[i];
	}
	argv[k] = NULL;

	parent = getpid();
	d->pid = fork();
	assert_true(d->pid >= 0);
	if (d->pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 ||
		    getppid() != parent)
			_exit(127);
		fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execv(d->prog, (char *const *)argv);
		_exit(127);
	}
	/* a router of its own each time: nothing cached in between */
	for (tries = 0; tries < 100; tries++) {
		assert_wse_ok(wse_router_new(d->addr, 200, &probe));
		t = NULL;
		if (wse_router_resolve(probe, "ready.test", &t, &n) ==
		    WSE_OK) {
			free(t);
			wse_router_free(&probe);
			return 1;
		}
		wse_router_free(&probe);
		if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
			d->pid = 0;
			return 0;
		}
		testutil_sleep_ms(50);
	}
	fail_msg("dnsmasq on %s does not answer (log %s)", d->addr, d->log);
	return 0;
}

/*
 * The first start takes another free port when the one picked was taken
 * meanwhile (dnsmasq binds TCP too).
 */
void
testdns_start(testdns *d, const char *const *opts)
{
	int attempt;

	assert_non_null(d->prog);
	assert_int_equal(d->pid, 0);
	if (d->dir != NULL) {
		if (!spawn(d, opts))
			fail_msg("dnsmasq did not restart on %s (log %s)",
			    d->addr, d->log);
		return;
	}
	assert_non_null(d->dir = testutil_tmpdir());
	for (attempt = 0; attempt < 5; attempt++) {
		d->port = free_udp_port();
		snprintf(d->addr, sizeof(d->addr), "127.0.0.1:%u", d->port);
		if (spawn(d, opts))
			return;
	}
	fail_msg("dnsmasq did not start (log %s)", d->log);
}

void
testdns_stop(testdns *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		waitpid(d->pid, NULL, 0);
	}
	d->pid = 0;
}

void
testdns_free(testdns *d)
{
	testdns_stop(d);
	if (d->dir != NULL)
		testutil_rmtree(d->dir);
	free(d->dir);
	memset(d, 0, sizeof(*d));
}

size_t
testdns_queries(const testdns *d, const char *type, const char *name)
{
	char line[1024], want[600];
	size_t n = 0;
	FILE *f;

	snprintf(want, sizeof(want), "query[%s] %s from ", type, name);
	assert_non_null(f = fopen(d->log, "r"));
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, want) != NULL)
			n++;
	fclose(f);
	return n;
}
