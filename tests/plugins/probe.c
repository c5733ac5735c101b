/*
 * probe.c - a test plugin for tests/test_plugins.c.  Its descriptor is
 * chosen by the environment variable WSE_PROBE at wse_plugin_entry()
 * time, so that one file can show wsemaild every malformed descriptor it
 * must refuse.  "good" is a well-formed plugin whose hooks misbehave on
 * demand: its message hook returns the status named by WSE_PROBE_MSG,
 * and its operations fail, answer garbage or stream beyond their file.
 * probe_host() hands the test the host interface the server gave it.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin.h"

static const struct wse_plugin_host *probe_host_p;

WSE_PLUGIN_EXPORT const struct wse_plugin_host *probe_host(void);

const struct wse_plugin_host *
probe_host(void)
{
	return probe_host_p;
}

static wse_status
probe_init(const struct wse_plugin_host *host, const char *args,
    void **state_r)
{
	(void)args;
	probe_host_p = host;
	*state_r = NULL;
	return WSE_OK;
}

static void
probe_deinit(void *state)
{
	(void)state;
	probe_host_p = NULL;
}

static wse_status
probe_message(void *state, const struct wse_plugin_delivery *d,
    int *consumed_r)
{
	const char *v = getenv("WSE_PROBE_MSG");

	(void)state;
	if (v == NULL || strcmp(v, "ok") == 0)
		return WSE_OK;
	if (strcmp(v, "refuse") == 0) {
		consumed_r[0] = WSE_PLUGIN_REFUSE;
		return WSE_OK;
	}
	if (strcmp(v, "tempfail") == 0)
		return wse_err(WSE_ERR_TEMPFAIL, "probe: not now");
	/* Anything else: fail, with consumed_r set (it must be ignored). */
	consumed_r[0] = 1;
	if (d->nrcpts > 1)
		consumed_r[1] = 1;
	return WSE_ERR_INTERNAL;
}

static wse_status
probe_submit(void *state, const char *user, const char *id, wse_msg *m)
{
	(void)state; (void)user; (void)id; (void)m;
	return getenv("WSE_PROBE_SUBMIT") != NULL ? WSE_ERR_NOT_AUTHORIZED : WSE_OK;
}

static wse_status
probe_call(void *state, const struct wse_plugin_request *r, wse_buf *resp,
    struct wse_plugin_stream *stream)
{
	static const char echo[] =
	    "<m:EchoResponse xmlns:m=\"urn:wsemail:2026\"/>";
	static const char token[] =
	    "<m:TokenEchoResponse xmlns:m=\"urn:wsemail:2026\"/>";

	(void)state;
	if (strcmp(r->op, "Echo") == 0)
		return wse_buf_put(resp, echo, sizeof(echo) - 1);
	if (strcmp(r->op, "TokenEcho") == 0)
		return wse_buf_put(resp, token, sizeof(token) - 1);
	if (strcmp(r->op, "Garbage") == 0)	/* another operation's answer */
		return wse_buf_put(resp, "<m:SubmitResponse "
		    "xmlns:m=\"urn:wsemail:2026\"/>", 46);
	if (strcmp(r->op, "Fail") == 0)
		return WSE_ERR_NOT_FOUND;
	if (strcmp(r->op, "StreamFail") == 0 && stream != NULL) {
		stream->fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		return WSE_ERR_INTERNAL;
	}
	if (strcmp(r->op, "StreamPast") == 0 && stream != NULL) {
		/* /dev/null is 0 bytes long: any range is beyond it. */
		stream->fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		stream->offset = 0;
		stream->length = 1;
		return WSE_OK;
	}
	return WSE_ERR_INTERNAL;
}

static const char *const good_ops[] = { "Echo", "Garbage", "Fail",
    "StreamFail", "StreamPast", "TokenEcho", NULL };
static const unsigned good_flags[] = { 0, 0, 0, WSE_PLUGIN_OP_STREAM,
    WSE_PLUGIN_OP_STREAM, WSE_PLUGIN_OP_TOKEN };

static const char *const many_ops[] = { "A0", "A1", "A2", "A3", "A4", "A5",
    "A6", "A7", "A8", "A9", "A10", "A11", "A12", "A13", "A14", "A15", "A16",
    NULL };
static const char *const digit_ops[] = { "9Lives", NULL };
static const char *const dash_ops[] = { "Get-Mail", NULL };
static const char *const long_ops[] = {
    "A1234567890123456789012345678901234567890123456789012345678901234",
    NULL };
static const char *const twice_ops[] = { "Echo", "Other", "Echo", NULL };
static const char *const one_op[] = { "Echo", NULL };
static const unsigned hold_flags[] = { WSE_PLUGIN_OP_HOLD };
static const unsigned unknown_flags[] = { 0x100 };

#define PROBE(n, ...) { .abi = WSE_PLUGIN_ABI, .name = n, __VA_ARGS__ }

static const struct {
	const char *what;
	struct wse_plugin d;
} probes[] = {
	{ "good", PROBE("probe", .init = probe_init, .deinit = probe_deinit,
	    .message = probe_message, .submit = probe_submit,
	    .ops = good_ops, .op_flags = good_flags, .call = probe_call) },
	{ "noabi", { .abi = NULL, .name = "probe" } },
	{ "noname", PROBE(NULL) },
	{ "emptyname", PROBE("") },
	{ "uppername", PROBE("Probe") },
	{ "longname", PROBE("a23456789012345678901234567890123") },
	{ "manyops", PROBE("probe", .ops = many_ops, .call = probe_call) },
	{ "digitop", PROBE("probe", .ops = digit_ops, .call = probe_call) },
	{ "dashop", PROBE("probe", .ops = dash_ops, .call = probe_call) },
	{ "longop", PROBE("probe", .ops = long_ops, .call = probe_call) },
	{ "twice", PROBE("probe", .ops = twice_ops, .call = probe_call) },
	{ "hold", PROBE("probe", .ops = one_op, .op_flags = hold_flags,
	    .call = probe_call) },
	{ "flags", PROBE("probe", .ops = one_op, .op_flags = unknown_flags,
	    .call = probe_call) },
	{ "nocall", PROBE("probe", .ops = one_op) },
};

WSE_PLUGIN_EXPORT const struct wse_plugin *
wse_plugin_entry(void)
{
	const char *v = getenv("WSE_PROBE");
	size_t i;

	for (i = 0; v != NULL && i < sizeof(probes) / sizeof(probes[0]); i++)
		if (strcmp(probes[i].what, v) == 0)
			return &probes[i].d;
	return NULL;
}
