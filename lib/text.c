/*
 * text.c - untrusted text (text.h).
 */
#include <string.h>

#include "text.h"

size_t
wse_utf8_next(const unsigned char *s, size_t n, unsigned long *cp_r)
{
	unsigned long cp;
	size_t len, i;

	if (n == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp_r = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return len;
}

int
wse_cp_unsafe(unsigned long cp)
{
	return cp < 0x20 || cp == 0x7f ||
	    (cp >= 0x80 && cp <= 0x9f) ||		/* C1: CSI, OSC, ... */
	    cp == 0x200e || cp == 0x200f ||		/* LRM, RLM */
	    (cp >= 0x202a && cp <= 0x202e) ||		/* embeddings, overrides */
	    (cp >= 0x2066 && cp <= 0x2069) ||		/* isolates */
	    cp == 0x2028 || cp == 0x2029 ||		/* line/para separators */
	    cp == 0x061c ||				/* arabic letter mark */
	    cp == 0xfffe || cp == 0xffff;
}

int
wse_attach_name_ok(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n, i = 0, len;
	unsigned long cp;

	if (str == NULL || str[0] == '\0' ||
	    (n = strlen(str)) > WSE_ATTACH_NAME_MAX)
		return 0;
	while (i < n) {
		if ((len = wse_utf8_next(s + i, n - i, &cp)) == 0 ||
		    wse_cp_unsafe(cp) || cp == '/')
			return 0;
		i += len;
	}
	return 1;
}
