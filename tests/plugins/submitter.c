/*
 * submitter.c - a test plugin (tests/plugins_server.sh): its operation
 * PluginSubmit hands host->submit the message it is asked for, so that
 * the test can see what the server refuses from a plugin (a sender of
 * another domain, no recipient, unknown flags) and that what it accepts
 * is queued and delivered like any message.
 *
 *   <m:PluginSubmit><m:From>ADDR</m:From>[<m:To>ADDR</m:To>]
 *       [<m:Flags>N</m:Flags>]</m:PluginSubmit>
 * answered <m:PluginSubmitResponse><m:Id>ID</m:Id></m:PluginSubmitResponse>
 * or host->submit's Fault.
 */
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "plugin.h"
#include "xml.h"

static wse_status
sub_init(const struct wse_plugin_host *host, const char *args,
    void **state_r)
{
	(void)args;
	*state_r = (void *)host;
	return WSE_OK;
}

static wse_status
sub_call(void *state, const struct wse_plugin_request *r, wse_buf *resp,
    struct wse_plugin_stream *stream)
{
	const struct wse_plugin_host *h = state;
	char *from = NULL, *to = NULL, *flags = NULL, id[WSE_UUID_URN_LEN + 1];
	xmlNodePtr req;
	wse_msg *m = NULL;
	wse_status st;

	(void)stream;
	if (wse_xml_only_child(r->body, WSE_NS_WSE, "PluginSubmit", &req) !=
	    WSE_OK ||
	    (from = wse_xml_child_text(req, WSE_NS_WSE, "From", 256)) ==
	    NULL) {
		st = wse_err(WSE_ERR_INVALID, "submitter: no m:From");
		goto out;
	}
	to = wse_xml_child_text(req, WSE_NS_WSE, "To", 256);
	flags = wse_xml_child_text(req, WSE_NS_WSE, "Flags", 16);
	if ((st = wse_msg_new(&m)) != WSE_OK ||
	    (st = wse_msg_set(m, "from", from)) != WSE_OK ||
	    (to != NULL && (st = wse_msg_add_rcpt(m, to, 0)) != WSE_OK) ||
	    (st = wse_msg_set(m, "subject", "from a plugin")) != WSE_OK ||
	    (st = wse_msg_set(m, "text", "queued through host->submit")) !=
	    WSE_OK)
		goto out;
	if ((st = h->submit(h, m, flags != NULL ?
	    (unsigned)strtoul(flags, NULL, 0) : 0, id)) != WSE_OK)
		goto out;
	st = wse_buf_printf(resp, "<m:PluginSubmitResponse xmlns:m=\""
	    WSE_NS_WSE "\"><m:Id>%s</m:Id></m:PluginSubmitResponse>", id);
out:
	wse_msg_free(&m);
	free(from);
	free(to);
	free(flags);
	return st;
}

static const char *const sub_ops[] = { "PluginSubmit", NULL };

static const struct wse_plugin sub_plugin = {
	.abi = WSE_PLUGIN_ABI,
	.name = "submitter",
	.init = sub_init,
	.ops = sub_ops,
	.call = sub_call,
};

WSE_PLUGIN_EXPORT const struct wse_plugin *
wse_plugin_entry(void)
{
	return &sub_plugin;
}
