/*
 * serverinfo.c - an RPC-like plugin: the operation ServerInfo.
 *
 *   plugin = /usr/lib/wsemail/plugins/serverinfo.so
 *
 * Request (password profile, like every client operation):
 *   <m:ServerInfo xmlns:m="urn:wsemail:2026"/>
 * Response (signed by the server):
 *   <m:ServerInfoResponse xmlns:m="urn:wsemail:2026">
 *     <m:Domain>a.test</m:Domain>
 *     <m:Software>wsemaild 0.1.0</m:Software>
 *     <m:PluginAbi>wsemail-plugin-abi-3</m:PluginAbi>
 *     <m:Plugin name="autoreply" message="true"/>
 *     <m:Plugin name="serverinfo" message="false">
 *       <m:Operation>ServerInfo</m:Operation></m:Plugin>
 *   </m:ServerInfoResponse>
 * Only what the server is and runs: no user data, no configuration
 * arguments (they may name users).  Only authenticated users of this
 * domain can ask.  Stateless apart from the host pointer: safe to call
 * from any number of threads.
 */
#include <string.h>

#include "plugin.h"
#include "xml.h"

static wse_status
si_init(const struct wse_plugin_host *host, const char *args, void **state_r)
{
	if (args[0] != '\0')
		return wse_err(WSE_ERR_CONFIG, "serverinfo takes no arguments");
	*state_r = (void *)host;
	return WSE_OK;
}

static wse_status
text_elem(wse_buf *b, const char *name, const char *text)
{
	wse_status st;

	if ((st = wse_buf_printf(b, "<m:%s>", name)) != WSE_OK ||
	    (st = wse_buf_put_xml_escaped(b, text, strlen(text))) != WSE_OK)
		return st;
	return wse_buf_printf(b, "</m:%s>", name);
}

static wse_status
si_call(void *state, const struct wse_plugin_request *r, wse_buf *resp,
    struct wse_plugin_stream *stream)
{
	const struct wse_plugin_host *h = state;
	const struct wse_plugin *p;
	xmlNodePtr req;
	wse_status st;
	size_t i, k;

	(void)stream;
	if (strcmp(r->op, "ServerInfo") != 0 ||
	    wse_xml_only_child(r->body, WSE_NS_WSE, "ServerInfo", &req) != WSE_OK)
		return wse_err(WSE_ERR_INVALID, "serverinfo: the Body holds no "
		    "one m:ServerInfo");
	if ((st = wse_buf_puts(resp, "<m:ServerInfoResponse xmlns:m=\""
	    WSE_NS_WSE "\">")) != WSE_OK ||
	    (st = text_elem(resp, "Domain", h->domain)) != WSE_OK ||
	    (st = text_elem(resp, "Software", h->version)) != WSE_OK ||
	    (st = text_elem(resp, "PluginAbi", WSE_PLUGIN_ABI)) != WSE_OK)
		return st;
	for (i = 0; (p = h->plugin(h, i)) != NULL; i++) {
		/* names are checked by the server: [a-z0-9_-] */
		if ((st = wse_buf_printf(resp, "<m:Plugin name=\"%s\" "
		    "message=\"%s\">", p->name, p->message ? "true" : "false"))
		    != WSE_OK)
			return st;
		for (k = 0; p->ops != NULL && p->ops[k] != NULL; k++)
			if ((st = text_elem(resp, "Operation", p->ops[k])) !=
			    WSE_OK)
				return st;
		if ((st = wse_buf_puts(resp, "</m:Plugin>")) != WSE_OK)
			return st;
	}
	return wse_buf_puts(resp, "</m:ServerInfoResponse>");
}

static const char *const si_ops[] = { "ServerInfo", NULL };

static const struct wse_plugin serverinfo_plugin = {
	.abi = WSE_PLUGIN_ABI,
	.name = "serverinfo",
	.init = si_init,
	.ops = si_ops,
	.call = si_call,
};

WSE_PLUGIN_EXPORT const struct wse_plugin *
wse_plugin_entry(void)
{
	return &serverinfo_plugin;
}
