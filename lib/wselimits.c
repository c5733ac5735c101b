/*
 * wselimits.c - defaults and configuration of the limits.
 */
#include "wselimits.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void
wse_limits_default(wse_limits *l)
{
	memset(l, 0, sizeof(*l));
	l->max_message_bytes = 10u * 1024 * 1024;
	l->max_xml_depth = 32;
	l->max_attrs_per_tag = 32;
	l->max_tag_bytes = 8192;
	l->max_xml_nodes = 100000;
	l->max_soap_headers = 32;
	l->max_references = 8;
	l->max_transforms = 2;
	l->max_cert_chain = 4;
	l->freshness_window = 300;
	l->future_skew = 60;
	l->pbkdf2_min_iterations = 600000;
	l->pbkdf2_iterations = 600000;
}

enum ltype { L_SIZE, L_UINT, L_ULONG, L_I64, L_U32 };

static const struct {
	const char *name;
	size_t off;
	enum ltype type;
	unsigned long long lo, hi;
} table[] = {
#define F(n, t, lo, hi) { #n, offsetof(wse_limits, n), t, lo, hi }
	F(max_message_bytes, L_SIZE, 1024, 1ull << 34),
	F(max_xml_depth, L_UINT, 8, 256),
	F(max_attrs_per_tag, L_UINT, 4, 1024),
	F(max_tag_bytes, L_SIZE, 256, 1u << 20),
	F(max_xml_nodes, L_ULONG, 64, 100000000),
	F(max_soap_headers, L_UINT, 4, 1024),
	F(max_references, L_UINT, 5, 64),
	F(max_transforms, L_UINT, 1, 8),
	F(max_cert_chain, L_UINT, 1, 16),
	F(freshness_window, L_I64, 1, 30ull * 86400),
	F(future_skew, L_I64, 0, 86400),
	F(pbkdf2_min_iterations, L_U32, 1, 100000000),
	F(pbkdf2_iterations, L_U32, 1, 100000000),
#undef F
};

wse_status
wse_limits_set(wse_limits *l, const char *name, const char *value)
{
	unsigned long long v;
	char *end;
	size_t i;

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcmp(table[i].name, name) == 0)
			break;
	if (i == sizeof(table) / sizeof(table[0]))
		return wse_err(WSE_ERR_NOT_FOUND, "unknown limit %s", name);
	if (value[0] < '0' || value[0] > '9')
		return wse_err(WSE_ERR_INVALID, "%s: not a number: %s", name,
		    value);
	errno = 0;
	v = strtoull(value, &end, 10);
	if (errno != 0 || *end != '\0' || v < table[i].lo || v > table[i].hi)
		return wse_err(WSE_ERR_INVALID,
		    "%s must be an integer from %llu to %llu, not %s", name,
		    table[i].lo, table[i].hi, value);
	switch (table[i].type) {
	case L_SIZE: *(size_t *)((char *)l + table[i].off) = (size_t)v; break;
	case L_UINT: *(unsigned *)((char *)l + table[i].off) = (unsigned)v; break;
	case L_ULONG:
		*(unsigned long *)((char *)l + table[i].off) = (unsigned long)v;
		break;
	case L_I64: *(int64_t *)((char *)l + table[i].off) = (int64_t)v; break;
	case L_U32: *(uint32_t *)((char *)l + table[i].off) = (uint32_t)v; break;
	}
	return WSE_OK;
}
