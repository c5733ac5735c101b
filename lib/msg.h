/*
 * msg.h - the mail message carried in Submit and Deliver (docs/protocol.md):
 * parse and check an m:Message element, build one, and mailbox addresses.
 */
#ifndef WSE_MSG_H
#define WSE_MSG_H

#include <stddef.h>
#include <stdint.h>

#include <libxml/tree.h>

#include "buf.h"
#include "err.h"
#include "wselimits.h"

#define WSE_MSG_MAX_RCPTS 100
#define WSE_MSG_MAX_ATTACHMENTS 32
#define WSE_MSG_SUBJECT_MAX 998
#define WSE_ADDR_MAX 254

typedef struct wse_attachment {
	char *name;
	char *type;
	uint64_t size;
	char sha256[65];		/* lower-case hex */
	wse_buf *data;			/* decoded bytes */
} wse_attachment;

/*
 * An on-demand attachment (docs/protocol.md "On-demand attachments"):
 * the bytes stay on the sender's server; the message carries where they
 * are and what they are.  Two forms on the wire:
 *   as a client submits it:  <m:OnDemand upload="HANDLE"/>
 *     (HANDLE names a finished upload of this user at its own server);
 *   as a server sends it:    <m:OnDemand server="URL" ref="REF"
 *     name="N" type="T" size="S" sha256="HEX"/>
 *     (URL: the sender's server endpoint, https; REF: the unguessable
 *     reference there, [A-Za-z0-9_-]{16,128}).
 * A resolved entry has upload == NULL and every other field set; an
 * unresolved one has only upload.
 */
#define WSE_MSG_MAX_ONDEMAND 32
#define WSE_ONDEMAND_REF_MAX 128
#define WSE_ONDEMAND_URL_MAX 512

typedef struct wse_ondemand {
	char *upload;
	char *server;
	char *ref;
	char *name;
	char *type;
	uint64_t size;
	char sha256[65];		/* lower-case hex */
} wse_ondemand;

typedef struct wse_msg {
	char *from;
	char **to;
	size_t nto;
	char **cc;
	size_t ncc;
	char *subject;
	char *date;			/* xs:dateTime, may be NULL */
	char *text;
	wse_attachment *att;
	size_t natt;
	wse_ondemand *od;
	size_t nod;
	int instant;			/* <m:Instant/>: an instant message
					 * (docs/im.md) */
} wse_msg;

/* 1 when s is a mailbox address local@domain (local: letters, digits,
 * . _ + -, 1..64; domain: LDH labels), any case. */
int wse_addr_valid(const char *s);

/* Lower-case copy of a valid address into out; WSE_ERR_INVALID. */
wse_status wse_addr_normalize(const char *s, char *out, size_t size);

/* The domain part of a (valid) address; pointer into s. */
const char *wse_addr_domain(const char *s);

/*
 * Parse an m:Message element: every field checked (addresses valid and
 * normalised, at most WSE_MSG_MAX_RCPTS recipients in all and at least
 * one, subject length, attachments decoded with their size and SHA-256
 * verified).  WSE_ERR_INVALID / WSE_ERR_TOO_LARGE with the reason.
 */
wse_status wse_msg_parse(const xmlNode *message, wse_msg **m_r);

/* A new, empty message (for building). */
wse_status wse_msg_new(wse_msg **m_r);
/* Append a recipient to To (cc = 0) or Cc (cc = 1); validated. */
wse_status wse_msg_add_rcpt(wse_msg *m, const char *addr, int cc);
/* Set a string field: "from", "subject", "date", "text". */
wse_status wse_msg_set(wse_msg *m, const char *field, const char *value);
/* Add an inline attachment (data copied; size and digest computed). */
wse_status wse_msg_add_attachment(wse_msg *m, const char *name,
    const char *type, const void *data, size_t len);

/* Add an unresolved on-demand attachment (client side: an upload
 * handle, [A-Za-z0-9_-]{16,128}). */
wse_status wse_msg_add_upload(wse_msg *m, const char *upload);
/* Add a resolved on-demand attachment; every field checked (server an
 * https URL, ref as above, name without '/', sha256 64 hex digits). */
wse_status wse_msg_add_ondemand(wse_msg *m, const char *server,
    const char *ref, const char *name, const char *type, uint64_t size,
    const char *sha256);
/* Resolve entry i (which must hold an upload) in place: the same checks
 * as wse_msg_add_ondemand; the upload handle is dropped. */
wse_status wse_msg_resolve_ondemand(wse_msg *m, size_t i, const char *server,
    const char *ref, const char *name, const char *type, uint64_t size,
    const char *sha256);
/* How many on-demand entries are still unresolved. */
size_t wse_msg_unresolved(const wse_msg *m);
/* 1 when url is "https://HOST[:PORT]/..." and HOST is domain or a name
 * under it (case-insensitive): an on-demand server of that domain. */
int wse_url_in_domain(const char *url, const char *domain);

/* Serialise as <m:Message xmlns:m="urn:wsemail:2026">...</m:Message>. */
wse_status wse_msg_to_xml(const wse_msg *m, wse_buf *out);

void wse_msg_free(wse_msg **m);

#endif
