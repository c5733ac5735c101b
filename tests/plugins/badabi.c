/*
 * badabi.c - a test plugin built for another ABI version: wsemaild must
 * refuse to start with it (tests/plugins_server.sh).
 */
#include <stddef.h>

#include "plugin.h"

static const struct wse_plugin badabi_plugin = {
	.abi = "wsemail-plugin-abi-0",
	.name = "badabi",
};

WSE_PLUGIN_EXPORT const struct wse_plugin *
wse_plugin_entry(void)
{
	return &badabi_plugin;
}
