/*
 * config.c - a small configuration-file parser (syntax in config.h).
 *
 * The text is read line by line with explicit lengths; nothing relies on
 * NUL termination of the input.  Every value is copied into its own
 * allocation; the whole configuration is wiped when freed (a file may hold
 * secrets such as database passwords).
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"

#define CONFIG_MAX_FILE (1024u * 1024u)
#define CONFIG_MAX_LINE 4096u

struct cfg_entry {
	size_t section;		/* index into sections */
	char *key;
	char *value;
	unsigned line;
};

struct wse_config {
	char *origin;
	char **sections;	/* [0] is "" (main); then [name] in file order */
	size_t nsections, asections;
	struct cfg_entry *ents;
	size_t nents, aents;
};

static char *
dup_mem(const char *s, size_t len)
{
	char *d;

	if ((d = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

static void
free_str(char *s)
{
	if (s != NULL) {
		wse_memzero(s, strlen(s));
		free(s);
	}
}

void
wse_config_free(wse_config **cfgp)
{
	wse_config *cfg;
	size_t i;

	if (cfgp == NULL || (cfg = *cfgp) == NULL)
		return;
	for (i = 0; i < cfg->nents; i++) {
		free_str(cfg->ents[i].key);
		free_str(cfg->ents[i].value);
	}
	free(cfg->ents);
	for (i = 0; i < cfg->nsections; i++)
		free_str(cfg->sections[i]);
	free(cfg->sections);
	free_str(cfg->origin);
	free(cfg);
	*cfgp = NULL;
}

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int
is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static int
is_section_char(char c)
{
	return is_alnum(c) || c == '.' || c == '_' || c == '-' || c == '@';
}

static int
is_key_char(char c)
{
	return is_alnum(c) || c == '_' || c == '-' || c == '.';
}

/* Index of section name (len bytes), or nsections when absent. */
static size_t
find_section(const wse_config *cfg, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < cfg->nsections; i++)
		if (strlen(cfg->sections[i]) == len &&
		    memcmp(cfg->sections[i], name, len) == 0)
			return i;
	return cfg->nsections;
}

static wse_status
add_section(wse_config *cfg, const char *name, size_t len, size_t *idx_r)
{
	size_t i;
	char **ns;

	if ((i = find_section(cfg, name, len)) < cfg->nsections) {
		*idx_r = i;
		return WSE_OK;
	}
	if (cfg->nsections == cfg->asections) {
		size_t na = cfg->asections ? cfg->asections * 2 : 8;

		if ((ns = realloc(cfg->sections, na * sizeof(*ns))) == NULL)
			return wse_err(WSE_ERR_NOMEM, "out of memory");
		cfg->sections = ns;
		cfg->asections = na;
	}
	if ((cfg->sections[cfg->nsections] = dup_mem(name, len)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "out of memory");
	*idx_r = cfg->nsections++;
	return WSE_OK;
}

/* Takes ownership of value on success only. */
static wse_status
add_entry(wse_config *cfg, size_t section, const char *key, size_t keylen,
    char *value, unsigned line)
{
	struct cfg_entry *ne, *e;

	if (cfg->nents == cfg->aents) {
		size_t na = cfg->aents ? cfg->aents * 2 : 16;

		if ((ne = realloc(cfg->ents, na * sizeof(*ne))) == NULL)
			return wse_err(WSE_ERR_NOMEM, "out of memory");
		cfg->ents = ne;
		cfg->aents = na;
	}
	e = &cfg->ents[cfg->nents];
	if ((e->key = dup_mem(key, keylen)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "out of memory");
	e->section = section;
	e->value = value;
	e->line = line;
	cfg->nents++;
	return WSE_OK;
}

/*
 * The value part of a line (after '=' and blanks): quoted with \" and \\
 * escapes, or bare up to the end of the line minus trailing blanks.
 */
static wse_status
parse_value(const char *s, size_t len, const char *origin, unsigned line,
    char **value_r)
{
	char *v = NULL;
	size_t i, o = 0;

	*value_r = NULL;
	if (len == 0 || s[0] != '"') {
		while (len > 0 && is_blank(s[len - 1]))
			len--;
		if ((v = dup_mem(s, len)) == NULL)
			return wse_err(WSE_ERR_NOMEM, "out of memory");
		*value_r = v;
		return WSE_OK;
	}
	if ((v = malloc(len)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "out of memory");
	for (i = 1; i < len; i++) {
		if (s[i] == '"')
			break;
		if (s[i] == '\\') {
			if (i + 1 == len)
				break;
			if (s[i + 1] != '"' && s[i + 1] != '\\') {
				wse_memzero(v, len);
				free(v);
				return wse_err(WSE_ERR_CONFIG,
				    "%s:%u: unknown escape \\%c in quoted "
				    "value (only \\\" and \\\\)", origin, line,
				    (s[i + 1] > 0x20 && s[i + 1] < 0x7f) ?
				    s[i + 1] : '?');
			}
			i++;
		}
		v[o++] = s[i];
	}
	v[o] = '\0';
	if (i >= len) {
		wse_memzero(v, len);
		free(v);
		return wse_err(WSE_ERR_CONFIG, "%s:%u: unterminated quoted value",
		    origin, line);
	}
	for (i++; i < len; i++)
		if (!is_blank(s[i])) {
			wse_memzero(v, len);
			free(v);
			return wse_err(WSE_ERR_CONFIG,
			    "%s:%u: text after the closing quote", origin,
			    line);
		}
	*value_r = v;
	return WSE_OK;
}

static wse_status
parse_line(wse_config *cfg, const char *s, size_t len, unsigned line,
    size_t *section)
{
	const char *origin = cfg->origin;
	size_t i = 0, ks, ke, ne;
	char *value = NULL;
	wse_status st;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\0')
			return wse_err(WSE_ERR_CONFIG, "%s:%u: NUL byte", origin,
			    line);
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return wse_err(WSE_ERR_CONFIG,
			    "%s:%u: control character 0x%02x", origin, line,
			    c);
	}
	i = 0;
	while (i < len && is_blank(s[i]))
		i++;
	if (i == len || s[i] == '#')
		return WSE_OK;
	if (s[i] == '[') {
		ks = ++i;
		while (i < len && is_section_char(s[i]))
			i++;
		ne = i;
		if (ne == ks || i == len || s[i] != ']')
			return wse_err(WSE_ERR_CONFIG,
			    "%s:%u: bad section name (letters, digits and "
			    ". _ - @ between [ and ])", origin, line);
		for (i++; i < len; i++)
			if (!is_blank(s[i]))
				return wse_err(WSE_ERR_CONFIG,
				    "%s:%u: text after section header",
				    origin, line);
		return add_section(cfg, s + ks, ne - ks, section);
	}
	ks = i;
	while (i < len && is_key_char(s[i]))
		i++;
	ke = i;
	if (ke == ks)
		return wse_err(WSE_ERR_CONFIG,
		    "%s:%u: expected a key (letters, digits, _ - .)", origin,
		    line);
	while (i < len && is_blank(s[i]))
		i++;
	if (i == len || s[i] != '=')
		return wse_err(WSE_ERR_CONFIG, "%s:%u: expected '=' after key",
		    origin, line);
	i++;
	while (i < len && is_blank(s[i]))
		i++;
	if ((st = parse_value(s + i, len - i, origin, line, &value)) !=
	    WSE_OK)
		return st;
	if ((st = add_entry(cfg, *section, s + ks, ke - ks, value, line)) !=
	    WSE_OK) {
		free_str(value);
		return st;
	}
	return WSE_OK;
}

wse_status
wse_config_parse(const char *text, size_t len, const char *origin,
    wse_config **cfg_r)
{
	wse_config *cfg = NULL;
	size_t pos = 0, section = 0, eol, llen;
	const char *nl;
	unsigned line = 0;
	wse_status st = WSE_ERR_INTERNAL;

	if (cfg_r == NULL)
		return wse_err(WSE_ERR_INVALID, "wse_config_parse: NULL cfg_r");
	*cfg_r = NULL;
	if (origin == NULL)
		origin = "<config>";
	if (text == NULL && len != 0)
		return wse_err(WSE_ERR_INVALID, "wse_config_parse: NULL text");
	if (len > CONFIG_MAX_FILE)
		return wse_err(WSE_ERR_CONFIG,
		    "%s: configuration larger than %u bytes", origin,
		    CONFIG_MAX_FILE);
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL ||
	    (cfg->origin = dup_mem(origin, strlen(origin))) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((st = add_section(cfg, "", 0, &section)) != WSE_OK)
		goto out;
	while (pos < len) {
		line++;
		nl = memchr(text + pos, '\n', len - pos);
		eol = nl != NULL ? (size_t)(nl - text) : len;
		llen = eol - pos;
		if (llen > 0 && text[pos + llen - 1] == '\r')
			llen--;
		if (llen > CONFIG_MAX_LINE) {
			st = wse_err(WSE_ERR_CONFIG,
			    "%s:%u: line longer than %u bytes", origin, line,
			    CONFIG_MAX_LINE);
			goto out;
		}
		if ((st = parse_line(cfg, text + pos, llen, line, &section)) !=
		    WSE_OK)
			goto out;
		pos = nl != NULL ? eol + 1 : len;
	}
	*cfg_r = cfg;
	cfg = NULL;
	st = WSE_OK;
out:
	wse_config_free(&cfg);
	return st;
}

wse_status
wse_config_load(const char *path, wse_config **cfg_r)
{
	wse_buf *b = NULL;
	wse_status st;

	if (cfg_r == NULL || path == NULL)
		return wse_err(WSE_ERR_INVALID, "wse_config_load: NULL");
	*cfg_r = NULL;
	st = wse_buf_read_file(path, CONFIG_MAX_FILE, &b);
	if (st == WSE_ERR_TOO_LARGE)
		return wse_err(WSE_ERR_CONFIG, "%s: file larger than %u bytes",
		    path, CONFIG_MAX_FILE);
	if (st != WSE_OK)
		return st;
	st = wse_config_parse(wse_buf_str(b), wse_buf_len(b), path, cfg_r);
	wse_buf_free(&b);
	return st;
}

/* Index of the named section or nsections when absent. */
static size_t
section_index(const wse_config *cfg, const char *section)
{
	if (section == NULL)
		section = "";
	return find_section(cfg, section, strlen(section));
}

/* The last entry for (section, key), or NULL. */
static const struct cfg_entry *
last_entry(const wse_config *cfg, const char *section, const char *key)
{
	size_t s, i;

	if (cfg == NULL || key == NULL)
		return NULL;
	if ((s = section_index(cfg, section)) == cfg->nsections)
		return NULL;
	for (i = cfg->nents; i > 0; i--)
		if (cfg->ents[i - 1].section == s &&
		    strcmp(cfg->ents[i - 1].key, key) == 0)
			return &cfg->ents[i - 1];
	return NULL;
}

const char *
wse_config_get(const wse_config *cfg, const char *section, const char *key)
{
	const struct cfg_entry *e = last_entry(cfg, section, key);

	return e != NULL ? e->value : NULL;
}

unsigned
wse_config_line(const wse_config *cfg, const char *section, const char *key)
{
	const struct cfg_entry *e = last_entry(cfg, section, key);

	return e != NULL ? e->line : 0;
}

size_t
wse_config_count(const wse_config *cfg, const char *section, const char *key)
{
	size_t s, i, n = 0;

	if (cfg == NULL || key == NULL)
		return 0;
	if ((s = section_index(cfg, section)) == cfg->nsections)
		return 0;
	for (i = 0; i < cfg->nents; i++)
		if (cfg->ents[i].section == s &&
		    strcmp(cfg->ents[i].key, key) == 0)
			n++;
	return n;
}

const char *
wse_config_get_nth(const wse_config *cfg, const char *section,
    const char *key, size_t nth)
{
	size_t s, i;

	if (cfg == NULL || key == NULL)
		return NULL;
	if ((s = section_index(cfg, section)) == cfg->nsections)
		return NULL;
	for (i = 0; i < cfg->nents; i++)
		if (cfg->ents[i].section == s &&
		    strcmp(cfg->ents[i].key, key) == 0 && nth-- == 0)
			return cfg->ents[i].value;
	return NULL;
}

wse_status
wse_config_get_int(const wse_config *cfg, const char *section,
    const char *key, long long def, long long lo, long long hi,
    long long *out)
{
	const struct cfg_entry *e;
	const char *v;
	char *end;
	long long n;

	if (out == NULL)
		return wse_err(WSE_ERR_INVALID, "wse_config_get_int: NULL out");
	if ((e = last_entry(cfg, section, key)) == NULL) {
		*out = def;
		return WSE_OK;
	}
	v = e->value;
	if (!((v[0] >= '0' && v[0] <= '9') ||
	    (v[0] == '-' && v[1] >= '0' && v[1] <= '9')))
		goto bad;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || n < lo || n > hi)
		goto bad;
	*out = n;
	return WSE_OK;
bad:
	return wse_err(WSE_ERR_CONFIG,
	    "%s:%u: %s must be an integer from %lld to %lld", cfg->origin,
	    e->line, key, lo, hi);
}

wse_status
wse_config_get_bool(const wse_config *cfg, const char *section,
    const char *key, int def, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	const struct cfg_entry *e;
	size_t i;

	if (out == NULL)
		return wse_err(WSE_ERR_INVALID, "wse_config_get_bool: NULL out");
	if ((e = last_entry(cfg, section, key)) == NULL) {
		*out = def;
		return WSE_OK;
	}
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(e->value, yes[i]) == 0) {
			*out = 1;
			return WSE_OK;
		}
		if (strcasecmp(e->value, no[i]) == 0) {
			*out = 0;
			return WSE_OK;
		}
	}
	return wse_err(WSE_ERR_CONFIG,
	    "%s:%u: %s must be yes/no, true/false, on/off or 1/0",
	    cfg->origin, e->line, key);
}

const char *
wse_config_section(const wse_config *cfg, size_t i)
{
	/* sections[0] is the implicit main section "": not listed. */
	if (cfg == NULL || i >= cfg->nsections - 1)
		return NULL;
	return cfg->sections[i + 1];
}

const char *
wse_config_key(const wse_config *cfg, const char *section, size_t nth,
    const char **value_r)
{
	size_t s, i;

	if (value_r != NULL)
		*value_r = NULL;
	if (cfg == NULL)
		return NULL;
	if ((s = section_index(cfg, section)) == cfg->nsections)
		return NULL;
	for (i = 0; i < cfg->nents; i++)
		if (cfg->ents[i].section == s && nth-- == 0) {
			if (value_r != NULL)
				*value_r = cfg->ents[i].value;
			return cfg->ents[i].key;
		}
	return NULL;
}
