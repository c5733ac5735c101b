/*
 * clash.c - a test plugin that claims the built-in operation Submit:
 * wsemaild must refuse to start with it (tests/plugins_server.sh).
 */
#include <stddef.h>

#include "plugin.h"

static wse_status
clash_call(void *state, const struct wse_plugin_request *r, wse_buf *resp,
    struct wse_plugin_stream *stream)
{
	(void)state; (void)r; (void)resp; (void)stream;
	return WSE_ERR_INTERNAL;
}

static const char *const clash_ops[] = { "Submit", NULL };

static const struct wse_plugin clash_plugin = {
	.abi = WSE_PLUGIN_ABI,
	.name = "clash",
	.ops = clash_ops,
	.call = clash_call,
};

WSE_PLUGIN_EXPORT const struct wse_plugin *
wse_plugin_entry(void)
{
	return &clash_plugin;
}
