/*
 * cmd_queue.c - the queue commands of wsemail-admin: queue list, queue
 * flush, queue delete, on the delivery queue of the store named by the
 * server's configuration (--config).
 *
 * SECURITY: the queue's texts (a remote server's last error above all)
 * are not trusted to be printable: control characters are shown as '?'.
 * Deleting an item drops it without a report to its sender.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "err.h"
#include "store.h"

/* Print s with control characters as '?', at least width columns. */
static void
print_text(const char *s, int width)
{
	int n = 0;

	for (; *s != '\0'; s++, n++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
	for (; n < width; n++)
		putchar(' ');
}

struct queue_state {
	size_t n;
	int64_t now;
};

static wse_status
print_item(void *arg, const wse_queue_item *it, const char *const *rcpts,
    size_t nrcpts, const void *payload, size_t len)
{
	struct queue_state *qs = arg;
	char next[40], expires[40];

	(void)rcpts;
	(void)payload;
	(void)len;
	if (qs->n++ == 0)
		printf("%-8s %-24s %-32s %-8s %-20s %-20s %s\n", "ID", "DOMAIN",
		    "SENDER", "ATTEMPTS", "NEXT ATTEMPT", "EXPIRES",
		    "LAST ERROR");
	printf("%-8lld ", (long long)it->id);
	print_text(it->domain, 24);
	putchar(' ');
	if (it->sender[0] == '\0')
		print_text("<>", 32);
	else
		print_text(it->sender, 32);
	printf(" %-8d %-20s %-20s ", it->attempts,
	    it->next_attempt <= qs->now ? "now" :
	    admin_time(it->next_attempt, next, sizeof(next)),
	    admin_time(it->expires, expires, sizeof(expires)));
	print_text(it->last_error[0] != '\0' ? it->last_error : "-", 0);
	if (it->flags & WSE_MSG_REPORT)
		printf(" (report)");
	printf(" [%zu recipient%s]\n", nrcpts, nrcpts == 1 ? "" : "s");
	return WSE_OK;
}

static int
cmd_queue_list(struct admin_ctx *ctx, int argc, char **argv)
{
	struct admin_server srv;
	struct queue_state qs = { 0, ctx->now };
	int n = 0, r;

	if ((r = admin_parse(ctx, argc, argv, NULL, 0, NULL, &n, 0, 0)) != 0)
		return r;
	if ((r = admin_server_open(ctx, &srv)) != 0)
		return r;
	if (wse_store_queue_list(srv.store, print_item, &qs) != WSE_OK) {
		r = admin_store_fail("cannot list the queue");
		goto out;
	}
	if (qs.n == 0)
		printf("queue is empty\n");
	r = ADMIN_EXIT_OK;
out:
	admin_server_close(&srv);
	return r;
}

/* A queue item id: a decimal number > 0. */
static int
parse_id(const struct admin_ctx *ctx, const char *s, int64_t *id_r)
{
	char *end;
	long long v;

	if (*s < '0' || *s > '9')
		return admin_usage(ctx, "'%s' is not a queue item id", s);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return admin_usage(ctx, "'%s' is not a queue item id", s);
	*id_r = (int64_t)v;
	return 0;
}

/* Report a store failure on item id: "no queue item" or the store's. */
static int
item_fail(int64_t id, wse_status st, const char *what)
{
	if (st == WSE_ERR_NOT_FOUND) {
		wse_err_clear();
		fprintf(stderr, "%s: no queue item %lld\n", ADMIN_PROG,
		    (long long)id);
		return ADMIN_EXIT_FAIL;
	}
	return admin_store_fail(what);
}

static int
cmd_queue_flush(struct admin_ctx *ctx, int argc, char **argv)
{
	const char *pos[1];
	struct admin_server srv;
	int64_t id = 0;
	wse_status st;
	int n = 0, r;

	if ((r = admin_parse(ctx, argc, argv, NULL, 0, pos, &n, 0, 1)) != 0)
		return r;
	if (n == 1 && (r = parse_id(ctx, pos[0], &id)) != 0)
		return r;
	if ((r = admin_server_open(ctx, &srv)) != 0)
		return r;
	if ((st = wse_store_queue_flush(srv.store, id, ctx->now)) != WSE_OK) {
		r = item_fail(id, st, "cannot flush the queue");
		goto out;
	}
	if (id > 0)
		printf("queue item %lld is due now\n", (long long)id);
	else
		printf("every queue item is due now\n");
	r = ADMIN_EXIT_OK;
out:
	admin_server_close(&srv);
	return r;
}

static int
cmd_queue_delete(struct admin_ctx *ctx, int argc, char **argv)
{
	const char *pos[1];
	struct admin_server srv;
	int64_t id = 0;
	wse_status st;
	int n = 0, r;

	if ((r = admin_parse(ctx, argc, argv, NULL, 0, pos, &n, 1, 1)) != 0)
		return r;
	if ((r = parse_id(ctx, pos[0], &id)) != 0)
		return r;
	if ((r = admin_server_open(ctx, &srv)) != 0)
		return r;
	if ((st = wse_store_queue_delete(srv.store, id)) != WSE_OK) {
		r = item_fail(id, st, "cannot delete the queue item");
		goto out;
	}
	printf("deleted queue item %lld (no report is sent)\n",
	    (long long)id);
	r = ADMIN_EXIT_OK;
out:
	admin_server_close(&srv);
	return r;
}

const struct admin_cmd admin_queue_cmds[] = {
	{ "queue", "list", cmd_queue_list, "",
	  "list the delivery queue" },
	{ "queue", "flush", cmd_queue_flush, "[ID]",
	  "make every queue item (or item ID) due now" },
	{ "queue", "delete", cmd_queue_delete, "ID",
	  "remove a queue item without delivering it or reporting" },
	{ NULL, NULL, NULL, NULL, NULL },
};
