/*
 * wselimits.h - every configurable limit of libwsemail, in one place.
 *
 * A wse_limits value is passed (const) to each function that consumes
 * untrusted input.  wse_limits_default() gives the documented defaults;
 * programs override single fields from their configuration file with
 * wse_limits_set().  Each limit has a unit test.
 */
#ifndef WSE_WSELIMITS_H
#define WSE_WSELIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct wse_limits {
	/* XML / SOAP input (checked on raw bytes before libxml2 sees them) */
	size_t max_message_bytes;	/* whole envelope */
	unsigned max_xml_depth;		/* element nesting */
	unsigned max_attrs_per_tag;	/* attributes (incl. xmlns) per tag */
	size_t max_tag_bytes;		/* bytes from '<' to '>' */
	unsigned long max_xml_nodes;	/* elements in the document */
	unsigned max_soap_headers;	/* children of soap:Header */
	/* XMLDSIG */
	unsigned max_references;	/* ds:Reference per signature */
	unsigned max_transforms;	/* ds:Transform per reference */
	unsigned max_cert_chain;	/* BinarySecurityTokens per message */
	/* WS-Security time checks, seconds */
	int64_t freshness_window;	/* max age of wsu:Timestamp/Created */
	int64_t future_skew;		/* max clock lead of a sender */
	/* password profile */
	uint32_t pbkdf2_min_iterations;	/* refuse weaker parameters */
	uint32_t pbkdf2_iterations;	/* cost for new passwords */
} wse_limits;

/* Defaults:
 *  max_message_bytes 10 MiB, max_xml_depth 32, max_attrs_per_tag 32,
 *  max_tag_bytes 8 KiB, max_xml_nodes 100000, max_soap_headers 32,
 *  max_references 8, max_transforms 2, max_cert_chain 4,
 *  freshness_window 300 s, future_skew 60 s,
 *  pbkdf2_min_iterations 600000, pbkdf2_iterations 600000. */
void wse_limits_default(wse_limits *l);

/*
 * Set one limit by its configuration name (the field name above, e.g.
 * "max_xml_depth") from a decimal string.  WSE_ERR_NOT_FOUND for an unknown
 * name, WSE_ERR_INVALID for a value that is not a positive integer in range.
 */
wse_status wse_limits_set(wse_limits *l, const char *name, const char *value);

#endif
