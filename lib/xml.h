/*
 * xml.h - the hardened XML parser and namespace-aware navigation.
 *
 * Parsing (SECURITY-NOTES "libxml2 traps"): the raw bytes are scanned
 * first: any DOCTYPE, ENTITY declaration, processing instruction (other
 * than the leading XML declaration), too-deep nesting, too many attributes
 * on one tag, too long a tag or too many elements fails in linear time
 * before libxml2 sees them.  libxml2 then parses with XML_PARSE_NONET
 * (never NOENT, DTDLOAD, DTDATTR, XINCLUDE, HUGE or RECOVER); an
 * internalSubset SAX hook
 * stops the parser on any DTD; the external entity loader refuses
 * everything; the verdict is the parser's error number, never doc != NULL.
 *
 * Structure checks go by namespace URI and local name, never by prefix.
 */
#ifndef WSE_XML_H
#define WSE_XML_H

#include <stddef.h>
#include <stdint.h>

#include <libxml/tree.h>

#include "buf.h"
#include "err.h"
#include "wselimits.h"

/* Process-wide set-up (idempotent, thread-safe): initialise libxml2 and
 * install the refusing external entity loader.  Every parse calls it. */
wse_status wse_xml_init(void);

/*
 * Scan raw bytes: WSE_ERR_TOO_LARGE for size/depth/attribute/tag/node
 * limits, WSE_ERR_PARSE for DOCTYPE, ENTITY, processing instructions
 * after the XML declaration, a non-UTF-8 encoding declaration, NUL bytes
 * or an unterminated construct.  Linear in len.
 */
wse_status wse_xml_prescan(const uint8_t *data, size_t len,
    const wse_limits *lim);

/* Prescan, then parse into a new document the caller frees with
 * xmlFreeDoc.  WSE_ERR_PARSE with libxml2's message for anything not well
 * formed.  Comments are kept (the WS-Security layer refuses them inside
 * signed content). */
wse_status wse_xml_parse(const uint8_t *data, size_t len,
    const wse_limits *lim, xmlDocPtr *doc_r);

/* 1 when node is an element with this namespace URI (NULL: none) and
 * local name. */
int wse_xml_is(const xmlNode *node, const char *ns, const char *local);

/* First element child / next element sibling, or NULL (skipping text,
 * comments and PIs). */
xmlNodePtr wse_xml_first_elem(const xmlNode *parent);
xmlNodePtr wse_xml_next_elem(const xmlNode *node);

/* Number of element children of parent named (ns, local). */
size_t wse_xml_count_children(const xmlNode *parent, const char *ns,
    const char *local);

/*
 * The one element child of parent named (ns, local): WSE_ERR_NOT_FOUND
 * when there is none, WSE_ERR_PARSE when there are several.
 */
wse_status wse_xml_only_child(const xmlNode *parent, const char *ns,
    const char *local, xmlNodePtr *child_r);

/* Value of the attribute (ns may be NULL for no namespace) of node, or
 * NULL.  Borrowed from the document. */
const char *wse_xml_attr(const xmlNode *node, const char *ns,
    const char *local);

/*
 * The text of an element that must hold only character data: appends the
 * concatenation of its text children to out.  WSE_ERR_PARSE when it has
 * element, comment or PI children (so a comment can never split signed
 * text).
 */
wse_status wse_xml_text(const xmlNode *node, wse_buf *out);

/* The same text as a new malloc'd string of at most max - 1 bytes
 * (WSE_ERR_TOO_LARGE beyond).  The caller frees *out. */
wse_status wse_xml_text_dup(const xmlNode *node, size_t max, char **out);

/* The text of parent's only child ns:local, at most max bytes, malloc'd;
 * NULL when there is none, or several, or it holds more than text. */
char *wse_xml_child_text(const xmlNode *parent, const char *ns,
    const char *local, size_t max);

/* WSE_ERR_PARSE when the subtree at node holds a comment or a processing
 * instruction. */
wse_status wse_xml_check_no_comments(const xmlNode *node);

/* Serialise the document (no formatting added) and append to out. */
wse_status wse_xml_serialize(xmlDocPtr doc, wse_buf *out);

#endif
