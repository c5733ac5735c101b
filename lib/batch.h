/*
 * batch.h - DeliverBatch: several messages of one sending server in one
 * call, proven by one signature over their SHA-256 digests
 * (docs/protocol.md).
 *
 *   Header: ... wsse:Security ...,
 *           m:BatchItems { m:Item base64(item 1) ... m:Item base64(item n) }
 *   Body:   m:DeliverBatch { m:Origin, m:Digests base64(SHA-256(item 1) ||
 *                            ... || SHA-256(item n)) }
 *
 * The signature covers the Body (as it covers every Body), so the digests
 * are signed; the items travel beside them, unsigned, and each is worth
 * something only once its bytes hash to its signed digest.  An item is a
 * bare m:Deliver element (the message, its origin id and its recipients)
 * or a complete signed Deliver envelope.
 *
 * The recipient's server keeps, for a bare item, a batch original: the
 * signed request without its items (the head) and the item with its
 * position, from which the recipient's client checks the sending server's
 * signature end to end exactly as the server did:
 *
 *   m:BatchOriginal { m:Index i, m:Head base64(head), m:Item base64(item) }
 */
#ifndef WSE_BATCH_H
#define WSE_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include <libxml/tree.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "soap.h"
#include "wselimits.h"

#define WSE_BATCH_MAX 64		/* items in one DeliverBatch */

/*
 * Put items[0..n-1] (1 <= n <= WSE_BATCH_MAX) into env, which must not be
 * signed yet: the Body's m:DeliverBatch for origin with their digests,
 * and the m:BatchItems header block.  WSE_ERR_TOO_LARGE when their base64
 * would pass lim->max_message_bytes.
 */
wse_status wse_batch_build(wse_envelope *env, const char *origin,
    const wse_buf *const *items, size_t n, const wse_limits *lim);

/*
 * The signed digests of a verified m:DeliverBatch element: exactly one
 * m:Digests of 1..max digests.  *digests_r (32 bytes each, freed by the
 * caller) and *n_r.  WSE_ERR_INVALID otherwise.
 */
wse_status wse_batch_digests(const xmlNode *batch, size_t max,
    uint8_t **digests_r, size_t *n_r);

/*
 * The items of env's m:BatchItems header, decoded: exactly n of them
 * (WSE_ERR_INVALID otherwise, and when one is not base64).  items[i]
 * (allocated here, each at most lim->max_message_bytes; freed by the
 * caller with wse_buf_free) holds item i; ok[i] is 1 when its SHA-256 is
 * digests[i], else 0 (the caller refuses that item: its bytes are not
 * the signed ones).
 */
wse_status wse_batch_items(wse_envelope *env, const uint8_t *digests,
    size_t n, const wse_limits *lim, wse_buf **items, int *ok);

/*
 * The head of a received batch: env without its m:BatchItems header (it
 * is removed from env), serialised, as base64 appended to out.  Its
 * signature still verifies: the items were never signed.
 */
wse_status wse_batch_head_base64(wse_envelope *env, wse_buf *out);

/* The batch original of item index (len bytes) of the batch whose head
 * (base64) is head_b64, appended to out. */
wse_status wse_batch_original(const char *head_b64, size_t head_b64_len,
    size_t index, const uint8_t *item, size_t len, wse_buf *out);

/*
 * Split a kept original: when its root is m:BatchOriginal, the head
 * envelope's bytes into head, the index into *index_r and the item's
 * bytes into item (WSE_OK); WSE_ERR_NOT_FOUND when it is something else
 * (a signed envelope kept whole); WSE_ERR_INVALID when it is a malformed
 * batch original.
 */
wse_status wse_batch_original_split(const uint8_t *data, size_t len,
    const wse_limits *lim, wse_buf *head, size_t *index_r, wse_buf *item);

/*
 * WSE_OK when item (len bytes) hashes to digest index of the verified
 * m:DeliverBatch element batch; WSE_ERR_BAD_SIGNATURE when it does not,
 * WSE_ERR_INVALID when batch has no such digest.
 */
wse_status wse_batch_item_check(const xmlNode *batch, size_t index,
    const uint8_t *item, size_t len);

#endif
