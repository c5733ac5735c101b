/*
 * config.h - a small configuration-file parser.
 *
 * Syntax (one setting a line, Postfix/INI-like):
 *     # comment                 (a line whose first non-blank is '#')
 *     [section]                 (names: letters, digits, . _ - @)
 *     key = value               (keys: letters, digits, _ - .)
 *     key = "quoted value"      (\" and \\ escapes; keeps spaces)
 * Settings before any [section] belong to section "" (the main section).
 * A key may repeat (routes, trusted publishers): every value is kept in
 * order.  Lines longer than 4096 bytes, files over 1 MiB, NUL bytes and
 * anything else malformed are errors naming "origin:line".
 */
#ifndef WSE_CONFIG_H
#define WSE_CONFIG_H

#include <stddef.h>

#include "err.h"

typedef struct wse_config wse_config;

/* Parse text (len bytes); origin names it in errors (e.g. the path). */
wse_status wse_config_parse(const char *text, size_t len, const char *origin,
    wse_config **cfg_r);

/* Read and parse a file. WSE_ERR_IO when unreadable, WSE_ERR_CONFIG when
 * malformed. */
wse_status wse_config_load(const char *path, wse_config **cfg_r);

void wse_config_free(wse_config **cfg);

/* Last value of key in section ("" for the main section), or NULL.
 * Owned by cfg. */
const char *wse_config_get(const wse_config *cfg, const char *section,
    const char *key);

/* Number of values of key in section, and the i-th of them (0-based). */
size_t wse_config_count(const wse_config *cfg, const char *section,
    const char *key);
const char *wse_config_get_nth(const wse_config *cfg, const char *section,
    const char *key, size_t i);

/* Integer value in [lo, hi]; def when absent. WSE_ERR_CONFIG (naming the
 * line) when present but not such an integer. */
wse_status wse_config_get_int(const wse_config *cfg, const char *section,
    const char *key, long long def, long long lo, long long hi,
    long long *out);

/* yes/no/true/false/on/off/1/0; def when absent. */
wse_status wse_config_get_bool(const wse_config *cfg, const char *section,
    const char *key, int def, int *out);

/* Names of sections in file order: the i-th, or NULL past the end. */
const char *wse_config_section(const wse_config *cfg, size_t i);

/* The i-th key of a section in file order (with repetitions) and its
 * value, or NULL past the end. */
const char *wse_config_key(const wse_config *cfg, const char *section,
    size_t i, const char **value_r);

/* The line a key's last value came from, 0 when absent (for messages). */
unsigned wse_config_line(const wse_config *cfg, const char *section,
    const char *key);

#endif
