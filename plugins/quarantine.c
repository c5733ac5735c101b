/*
 * quarantine.c - a message-dependent plugin that consumes: messages whose
 * subject starts with a configured prefix are not stored.
 *
 *   plugin = /usr/lib/wsemail/plugins/quarantine.so [SPAM]
 *
 * The argument is the prefix (compared without regard to ASCII case,
 * after leading blanks of the subject; 1..200 bytes).  A matching message
 * is taken for every recipient (nothing is stored; the sending server is
 * told it was accepted, so it sends no report) and one log line records
 * it: origin, origin id, sender, recipients, subject.  The message itself
 * is dropped, not kept elsewhere: the log line is its only trace.
 * Non-delivery reports are never taken (a sender must learn of failures).
 *
 * Stateless after init (the prefix is read only): safe on any number of
 * threads.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "plugin.h"

#define PREFIX_MAX 200

struct quarantine {
	const struct wse_plugin_host *host;
	char prefix[PREFIX_MAX + 1];
	size_t len;
};

static wse_status
q_init(const struct wse_plugin_host *host, const char *args, void **state_r)
{
	struct quarantine *q;
	size_t len = strlen(args);

	while (len > 0 && (args[len - 1] == ' ' || args[len - 1] == '\t'))
		len--;
	if (len == 0 || len > PREFIX_MAX)
		return wse_err(WSE_ERR_CONFIG, "quarantine needs a subject "
		    "prefix of 1 to %d bytes", PREFIX_MAX);
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "quarantine: out of memory");
	q->host = host;
	memcpy(q->prefix, args, len);
	q->len = len;
	host->log(host, "refusing subjects that start with \"%s\"", q->prefix);
	*state_r = q;
	return WSE_OK;
}

static void
q_deinit(void *state)
{
	free(state);
}

static wse_status
q_message(void *state, const struct wse_plugin_delivery *d, int *consumed_r)
{
	struct quarantine *q = state;
	const char *subj = d->msg->subject;
	char rcpts[1024];
	size_t i, used = 0;

	if ((d->flags & WSE_PLUGIN_MSG_REPORT) != 0 || subj == NULL)
		return WSE_OK;
	subj += strspn(subj, " \t");
	if (strncasecmp(subj, q->prefix, q->len) != 0)
		return WSE_OK;
	rcpts[0] = '\0';
	for (i = 0; i < d->nrcpts; i++) {
		consumed_r[i] = 1;
		if (used < sizeof(rcpts) - 1) {
			int w = snprintf(rcpts + used, sizeof(rcpts) - used,
			    "%s%s", i ? "," : "", d->rcpts[i]);

			used = w < 0 ? sizeof(rcpts) - 1 : used + (size_t)w;
		}
	}
	q->host->log(q->host, "refused %s from %s (%s) for %s: subject "
	    "\"%.200s\"", d->origin_id, d->origin, d->msg->from, rcpts,
	    d->msg->subject);
	return WSE_OK;
}

static const struct wse_plugin quarantine_plugin = {
	.abi = WSE_PLUGIN_ABI,
	.name = "quarantine",
	.init = q_init,
	.deinit = q_deinit,
	.message = q_message,
};

WSE_PLUGIN_EXPORT const struct wse_plugin *
wse_plugin_entry(void)
{
	return &quarantine_plugin;
}
