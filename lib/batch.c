/*
 * batch.c - DeliverBatch items proven by one signature over their
 * digests, and the batch originals kept for end-to-end checks (batch.h).
 *
 * SECURITY: the m:BatchItems header is never signed.  Nothing in it is
 * used before wse_batch_items has compared the SHA-256 of its decoded
 * bytes with the digest at the same position in the verified Body; a
 * count that differs refuses the whole batch.  The same comparison is the
 * client's proof (wse_batch_item_check), against a head it has verified
 * itself.
 */
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "batch.h"
#include "xml.h"

/* The one header block m:BatchItems of env, or NULL (none, or several). */
static xmlNodePtr
items_block(wse_envelope *env)
{
	xmlNodePtr h = wse_env_header(env), n, found = NULL;

	for (n = h ? wse_xml_first_elem(h) : NULL; n; n = wse_xml_next_elem(n))
		if (wse_xml_is(n, WSE_NS_WSE, "BatchItems")) {
			if (found != NULL)
				return NULL;
			found = n;
		}
	return found;
}

wse_status
wse_batch_build(wse_envelope *env, const char *origin,
    const wse_buf *const *items, size_t n, const wse_limits *lim)
{
	xmlDocPtr doc = wse_env_doc(env);
	xmlNodePtr batch = NULL, block = NULL, it, text, hdr;
	xmlNsPtr ns;
	wse_buf *b64 = NULL, *dig = NULL;
	uint8_t d[WSE_SHA256_LEN];
	size_t i, most = 0, total = 0;
	wse_status st;

	if (n == 0 || n > WSE_BATCH_MAX || origin == NULL ||
	    (hdr = wse_env_header(env)) == NULL)
		return wse_err(WSE_ERR_INVALID, "a batch of %zu items", n);
	for (i = 0; i < n; i++) {
		size_t e = (wse_buf_len(items[i]) + 2) / 3 * 4;

		most = e > most ? e : most;
		total += e + 32;
	}
	if (total > lim->max_message_bytes)
		return wse_err(WSE_ERR_TOO_LARGE, "batch of %zu bytes", total);
	if ((b64 = wse_buf_new(most + 1)) == NULL ||
	    (dig = wse_buf_new((n * WSE_SHA256_LEN + 2) / 3 * 4 + 1)) ==
	    NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto out;
	}
	/* The items' base64 goes straight into text nodes: no document
	 * text to parse back and copy for hundreds of kilobytes. */
	if ((block = xmlNewDocNode(doc, NULL, BAD_CAST "BatchItems", NULL)) ==
	    NULL || (ns = xmlNewNs(block, BAD_CAST WSE_NS_WSE, BAD_CAST "m")) ==
	    NULL)
		goto nomem;
	xmlSetNs(block, ns);
	for (i = 0; i < n; i++) {
		if ((st = wse_sha256(wse_buf_data(items[i]),
		    wse_buf_len(items[i]), d)) != WSE_OK)
			goto out;
		if ((st = wse_buf_put(dig, d, sizeof(d))) != WSE_OK)
			goto out;
		wse_buf_reset(b64);
		if ((st = wse_base64_encode(wse_buf_data(items[i]),
		    wse_buf_len(items[i]), b64)) != WSE_OK)
			goto out;
		if ((it = xmlNewChild(block, ns, BAD_CAST "Item", NULL)) ==
		    NULL || (text = xmlNewDocTextLen(doc, wse_buf_data(b64),
		    (int)wse_buf_len(b64))) == NULL)
			goto nomem;
		(void)xmlAddChild(it, text);
	}
	wse_buf_reset(b64);
	if ((st = wse_base64_encode(wse_buf_data(dig), wse_buf_len(dig),
	    b64)) != WSE_OK)
		goto out;
	if ((batch = xmlNewDocNode(doc, NULL, BAD_CAST "DeliverBatch",
	    NULL)) == NULL || (ns = xmlNewNs(batch, BAD_CAST WSE_NS_WSE,
	    BAD_CAST "m")) == NULL)
		goto nomem;
	xmlSetNs(batch, ns);
	if (xmlNewTextChild(batch, ns, BAD_CAST "Origin", BAD_CAST origin) ==
	    NULL || xmlNewTextChild(batch, ns, BAD_CAST "Digests",
	    BAD_CAST wse_buf_str(b64)) == NULL)
		goto nomem;
	if (xmlAddChild(wse_env_body_node(env), batch) == NULL)
		goto nomem;
	batch = NULL;
	if (xmlAddChild(hdr, block) == NULL)
		goto nomem;
	block = NULL;
	st = WSE_OK;
	goto out;
nomem:
	st = wse_err(WSE_ERR_NOMEM, "cannot build the batch");
out:
	xmlFreeNode(batch);
	xmlFreeNode(block);
	wse_buf_free(&b64);
	wse_buf_free(&dig);
	return st;
}

wse_status
wse_batch_digests(const xmlNode *batch, size_t max, uint8_t **digests_r,
    size_t *n_r)
{
	xmlNodePtr dn;
	wse_buf *t = NULL, *raw = NULL;
	size_t cap = (max * WSE_SHA256_LEN + 2) / 3 * 4;
	wse_status st;

	*digests_r = NULL;
	*n_r = 0;
	if (wse_xml_only_child(batch, WSE_NS_WSE, "Digests", &dn) != WSE_OK) {
		wse_err_clear();
		return wse_err(WSE_ERR_INVALID, "DeliverBatch needs one Digests");
	}
	if ((t = wse_buf_new(cap + 64)) == NULL ||
	    (raw = wse_buf_new(max * WSE_SHA256_LEN)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto out;
	}
	if (wse_xml_text(dn, t) != WSE_OK ||
	    wse_base64_decode(wse_buf_str(t), wse_buf_len(t), raw) != WSE_OK ||
	    wse_buf_len(raw) == 0 || wse_buf_len(raw) % WSE_SHA256_LEN != 0) {
		wse_err_clear();
		st = wse_err(WSE_ERR_INVALID, "DeliverBatch with Digests that "
		    "are not 1..%zu SHA-256 digests", max);
		goto out;
	}
	if ((*digests_r = malloc(wse_buf_len(raw))) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto out;
	}
	memcpy(*digests_r, wse_buf_data(raw), wse_buf_len(raw));
	*n_r = wse_buf_len(raw) / WSE_SHA256_LEN;
	st = WSE_OK;
out:
	wse_buf_free(&t);
	wse_buf_free(&raw);
	return st;
}

wse_status
wse_batch_items(wse_envelope *env, const uint8_t *digests, size_t n,
    const wse_limits *lim, wse_buf **items, int *ok)
{
	xmlNodePtr block = items_block(env), it;
	wse_buf *b64 = NULL;
	uint8_t d[WSE_SHA256_LEN];
	size_t i = 0;
	wse_status st;

	if (block == NULL)
		return wse_err(WSE_ERR_INVALID, "DeliverBatch needs one "
		    "BatchItems header");
	if (wse_xml_count_children(block, WSE_NS_WSE, "Item") != n)
		return wse_err(WSE_ERR_INVALID, "DeliverBatch with %zu digests "
		    "and %zu items", n, wse_xml_count_children(block,
		    WSE_NS_WSE, "Item"));
	if ((b64 = wse_buf_new(lim->max_message_bytes / 3 * 4 + 8)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	for (it = wse_xml_first_elem(block); it; it = wse_xml_next_elem(it)) {
		if (!wse_xml_is(it, WSE_NS_WSE, "Item"))
			continue;
		wse_buf_reset(b64);
		if ((items[i] = wse_buf_new(lim->max_message_bytes)) == NULL) {
			st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
			goto out;
		}
		if (wse_xml_text(it, b64) != WSE_OK ||
		    wse_base64_decode(wse_buf_str(b64), wse_buf_len(b64),
		    items[i]) != WSE_OK || wse_buf_len(items[i]) == 0) {
			wse_err_clear();
			st = wse_err(WSE_ERR_INVALID, "batch item %zu is not "
			    "base64 of at most %zu bytes", i,
			    lim->max_message_bytes);
			goto out;
		}
		if ((st = wse_sha256(wse_buf_data(items[i]),
		    wse_buf_len(items[i]), d)) != WSE_OK)
			goto out;
		ok[i] = wse_ct_equal(d, digests + i * WSE_SHA256_LEN,
		    WSE_SHA256_LEN);
		i++;
	}
	st = WSE_OK;
out:
	if (st != WSE_OK)
		while (i < n)
			wse_buf_free(&items[i++]);
	wse_buf_free(&b64);
	return st;
}

wse_status
wse_batch_head_base64(wse_envelope *env, wse_buf *out)
{
	xmlNodePtr block = items_block(env);
	wse_buf *head;
	wse_status st;

	if (block != NULL) {
		xmlUnlinkNode(block);
		xmlFreeNode(block);
	}
	if ((head = wse_buf_new(wse_buf_max(out))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	if ((st = wse_env_serialize(env, head)) == WSE_OK)
		st = wse_base64_encode(wse_buf_data(head), wse_buf_len(head),
		    out);
	wse_buf_free(&head);
	return st;
}

wse_status
wse_batch_original(const char *head_b64, size_t head_b64_len, size_t index,
    const uint8_t *item, size_t len, wse_buf *out)
{
	wse_status st;

	if ((st = wse_buf_reserve(out, head_b64_len + len / 3 * 4 + 256)) !=
	    WSE_OK ||
	    (st = wse_buf_printf(out, "<m:BatchOriginal xmlns:m=\""
	    WSE_NS_WSE "\"><m:Index>%zu</m:Index><m:Head>", index)) !=
	    WSE_OK ||
	    (st = wse_buf_put(out, head_b64, head_b64_len)) != WSE_OK ||
	    (st = wse_buf_puts(out, "</m:Head><m:Item>")) != WSE_OK ||
	    (st = wse_base64_encode(item, len, out)) != WSE_OK)
		return st;
	return wse_buf_puts(out, "</m:Item></m:BatchOriginal>");
}

/* The base64 text of root's one child local, decoded into out. */
static wse_status
child_base64(const xmlNode *root, const char *local, size_t max,
    wse_buf *out)
{
	xmlNodePtr n;
	wse_buf *t;
	wse_status st;

	if (wse_xml_only_child(root, WSE_NS_WSE, local, &n) != WSE_OK)
		return WSE_ERR_INVALID;
	if ((t = wse_buf_new(max / 3 * 4 + 8)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate");
	st = wse_xml_text(n, t);
	if (st == WSE_OK)
		st = wse_base64_decode(wse_buf_str(t), wse_buf_len(t), out);
	wse_buf_free(&t);
	return st;
}

wse_status
wse_batch_original_split(const uint8_t *data, size_t len,
    const wse_limits *lim, wse_buf *head, size_t *index_r, wse_buf *item)
{
	xmlDocPtr doc = NULL;
	xmlNodePtr root, n;
	wse_buf *t = NULL;
	char *end;
	unsigned long long ix;
	wse_status st;

	*index_r = 0;
	/* A cheap look first: anything kept whole is a soap:Envelope. */
	if (len < 20 || memmem(data, len < 200 ? len : 200, "BatchOriginal",
	    13) == NULL)
		return WSE_ERR_NOT_FOUND;
	if ((st = wse_xml_parse(data, len, lim, &doc)) != WSE_OK)
		return st;
	root = xmlDocGetRootElement(doc);
	if (root == NULL || !wse_xml_is(root, WSE_NS_WSE, "BatchOriginal")) {
		st = WSE_ERR_NOT_FOUND;
		goto out;
	}
	if ((t = wse_buf_new(32)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "cannot allocate");
		goto out;
	}
	if (wse_xml_only_child(root, WSE_NS_WSE, "Index", &n) != WSE_OK ||
	    wse_xml_text(n, t) != WSE_OK || wse_buf_len(t) == 0 ||
	    wse_buf_str(t)[0] < '0' || wse_buf_str(t)[0] > '9' ||
	    (ix = strtoull(wse_buf_str(t), &end, 10), *end != '\0') ||
	    ix >= WSE_BATCH_MAX ||
	    child_base64(root, "Head", lim->max_message_bytes, head) !=
	    WSE_OK ||
	    child_base64(root, "Item", lim->max_message_bytes, item) !=
	    WSE_OK) {
		wse_err_clear();
		st = wse_err(WSE_ERR_INVALID, "a malformed batch original");
		goto out;
	}
	*index_r = (size_t)ix;
	st = WSE_OK;
out:
	wse_buf_free(&t);
	xmlFreeDoc(doc);
	return st;
}

wse_status
wse_batch_item_check(const xmlNode *batch, size_t index, const uint8_t *item,
    size_t len)
{
	uint8_t *digests = NULL, d[WSE_SHA256_LEN];
	size_t n;
	wse_status st;

	if ((st = wse_batch_digests(batch, WSE_BATCH_MAX, &digests, &n)) !=
	    WSE_OK)
		return st;
	if (index >= n)
		st = wse_err(WSE_ERR_INVALID, "the batch has no item %zu",
		    index);
	else if ((st = wse_sha256(item, len, d)) == WSE_OK &&
	    !wse_ct_equal(d, digests + index * WSE_SHA256_LEN,
	    WSE_SHA256_LEN))
		st = wse_err(WSE_ERR_BAD_SIGNATURE, "the item is not the one "
		    "the batch signature covers at position %zu", index);
	free(digests);
	return st;
}
