/*
 * fuzz_batch.c - libFuzzer target: DeliverBatch items and batch
 * originals (lib/batch.c).
 *
 * Every input is read both ways the product reads these bytes: as a kept
 * original, the way the recipient's client does (split, the head parsed
 * as an envelope, the item checked against the head's signed digest at
 * its index), and as a received DeliverBatch, the way the receiving
 * server does once the signature holds (the Body's digests, the
 * BatchItems header decoded and compared, the head serialised without
 * it).  No signature is checked here: the parsing around it is the
 * target.  Built with clang -fsanitize=fuzzer (make fuzz,
 * FUZZ_TARGETS=batch), and with replay_message.c as an ordinary test
 * over its seed corpus.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "fuzz_batch.h"
#include "soap.h"
#include "xml.h"

#define FUZZ_MAX (1u << 20)

/* 1 when data is a batch original whose item is the one its head's
 * digest at its index names. */
static int
as_original(const uint8_t *data, size_t size, const wse_limits *lim)
{
	wse_buf *head = wse_buf_new(FUZZ_MAX), *item = wse_buf_new(FUZZ_MAX);
	wse_envelope *env = NULL;
	xmlNodePtr batch;
	size_t ix;
	int ok = 0;

	if (head != NULL && item != NULL &&
	    wse_batch_original_split(data, size, lim, head, &ix, item) ==
	    WSE_OK &&
	    wse_env_parse(wse_buf_data(head), wse_buf_len(head), lim, &env) ==
	    WSE_OK &&
	    wse_xml_only_child(wse_env_body(env), WSE_NS_WSE, "DeliverBatch",
	    &batch) == WSE_OK)
		ok = wse_batch_item_check(batch, ix, wse_buf_data(item),
		    wse_buf_len(item)) == WSE_OK;
	wse_env_free(&env);
	wse_buf_free(&head);
	wse_buf_free(&item);
	return ok;
}

/* 1 when data is a DeliverBatch envelope whose every item matches its
 * digest. */
static int
as_batch(const uint8_t *data, size_t size, const wse_limits *lim)
{
	wse_envelope *env = NULL;
	wse_buf **items = NULL, *out = NULL;
	uint8_t *digests = NULL;
	int *match = NULL, ok = 0;
	xmlNodePtr batch;
	size_t n = 0, i;

	if (wse_env_parse(data, size, lim, &env) != WSE_OK ||
	    wse_xml_only_child(wse_env_body(env), WSE_NS_WSE, "DeliverBatch",
	    &batch) != WSE_OK ||
	    wse_batch_digests(batch, WSE_BATCH_MAX, &digests, &n) != WSE_OK)
		goto out;
	if ((items = calloc(n, sizeof(*items))) == NULL ||
	    (match = calloc(n, sizeof(*match))) == NULL ||
	    (out = wse_buf_new(4 * FUZZ_MAX)) == NULL ||
	    wse_batch_items(env, digests, n, lim, items, match) != WSE_OK)
		goto out;
	for (ok = 1, i = 0; i < n; i++)
		ok &= match[i];
	if (wse_batch_head_base64(env, out) != WSE_OK)
		ok = 0;
out:
	for (i = 0; items != NULL && i < n; i++)
		wse_buf_free(&items[i]);
	free(items);
	free(match);
	free(digests);
	wse_buf_free(&out);
	wse_env_free(&env);
	return ok;
}

int
fuzz_batch_one(const uint8_t *data, size_t size)
{
	wse_limits lim;
	int ok;

	wse_limits_default(&lim);
	lim.max_message_bytes = FUZZ_MAX;
	ok = as_original(data, size, &lim);
	ok |= as_batch(data, size, &lim);
	wse_err_clear();
	return ok;
}

#ifdef WSE_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	(void)fuzz_batch_one(data, size);
	return 0;
}
#endif
