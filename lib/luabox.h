/*
 * luabox.h - a sandbox for downloaded Lua 5.4 plugins (a routed form
 * type's semantics: router rules, checks, presentation).
 *
 * A plugin is Lua source text whose chunk returns a table of functions,
 * its entry points:
 *
 *	local M = {}
 *	function M.route(form) if form.amount > 1000 then ... end end
 *	return M
 *
 * wse_luabox_new runs the chunk once in a fresh lua_State; wse_luabox_call
 * calls one entry point with one argument and converts its one result.
 * Arguments and results cross the boundary as wse_luabox_value trees
 * (nil, boolean, integer, number, string, array, map), never as Lua
 * objects.
 *
 * SECURITY
 *	The plugin is untrusted code even when its publisher's signature
 *	verified (lib/pubsig.h): it may be buggy or hostile.  It sees only
 *	the base library without dofile, loadfile, load, require,
 *	collectgarbage, print and warn; string without dump; table; math;
 *	utf8.  No io, os, package, debug or coroutine: no file, process,
 *	network, environment, clock or code loading.  Binary chunks are
 *	refused.  Every run (the chunk, each call) is bounded by a count of
 *	VM instructions, a wall-clock deadline and a cap on the whole
 *	state's heap; C library functions whose cost is not bounded by
 *	those (pattern matching, string.rep, table.move, table functions on
 *	tables with metamethods, finalizers) are wrapped or refused, see
 *	docs/plugins-lua.md.  No Lua error crosses a C frame of the caller:
 *	every entry into Lua is a lua_pcall.
 *
 *	State persists between calls (globals, upvalues): a plugin can
 *	carry information from one call to the next.  A caller that must
 *	keep messages apart (different senders, different users) uses one
 *	box per message; a box costs a new lua_State and one run of the
 *	chunk.
 *
 * Failures (every one also pushes a message on the error stack):
 *	WSE_ERR_INVALID	 bad arguments; bad plugin code (syntax error,
 *			 binary chunk, runtime error, no such entry point,
 *			 chunk not returning a table); a result that cannot
 *			 be converted (function, userdata, cycle, too deep,
 *			 too many nodes, string or total too long, mixed
 *			 or sparse keys, non-finite number)
 *	WSE_ERR_TOO_LARGE a run exceeded its instruction budget, its time
 *			 or the memory cap; or an argument exceeds the
 *			 conversion bounds below
 *	WSE_ERR_NOMEM	 the C heap (not the Lua cap) is exhausted
 * A failed call leaves the box usable: the Lua state is unwound to where
 * it was before the call and the limits are reset for the next one (the
 * plugin's own globals keep whatever the interrupted code had set).
 *
 * Threads: a box is used by one thread at a time; boxes are independent.
 * Lua allows 200 nested C calls; the calling thread needs an ordinary
 * stack (the default 8 MiB is ample; do not run boxes on tiny stacks).
 */
#ifndef WSE_LUABOX_H
#define WSE_LUABOX_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Defaults of wse_luabox_limits. */
#define WSE_LUABOX_DEFAULT_MEMORY	(8u << 20)	/* bytes of Lua heap */
#define WSE_LUABOX_DEFAULT_INSTRUCTIONS	10000000u	/* per run */
#define WSE_LUABOX_DEFAULT_MILLIS	1000u		/* per run */

/* Conversion bounds, for arguments and results alike. */
#define WSE_LUABOX_MAX_DEPTH	16		/* nested tables */
#define WSE_LUABOX_MAX_NODES	10000		/* values, keys excluded */
#define WSE_LUABOX_MAX_STRING	(1u << 20)	/* one string or key */
#define WSE_LUABOX_MAX_TOTAL	(4u << 20)	/* all strings and keys */

typedef struct wse_luabox_limits {
	/* Cap on the whole state's heap (the plugin's data, its code,
	 * the libraries), bytes.  0: the default.  At least 64 KiB. */
	size_t max_memory;
	/* Work budget of one run (the chunk, or one call): VM
	 * instructions, plus the estimated cost of pattern matching and
	 * table.move in the same units.  0: the default. */
	uint64_t max_instructions;
	/* Wall-clock budget of one run, milliseconds.  0: the default. */
	uint32_t max_millis;
} wse_luabox_limits;

void wse_luabox_limits_default(wse_luabox_limits *lim);

/* ---- values crossing the boundary ---- */

typedef enum wse_luabox_type {
	WSE_LUABOX_NIL,
	WSE_LUABOX_BOOLEAN,
	WSE_LUABOX_INTEGER,	/* a Lua integer */
	WSE_LUABOX_NUMBER,	/* a Lua float */
	WSE_LUABOX_STRING,	/* bytes, may contain NULs */
	WSE_LUABOX_ARRAY,	/* a Lua table with keys 1..n */
	WSE_LUABOX_MAP,		/* a Lua table with string keys */
} wse_luabox_type;

/*
 * One node of a value tree.  Read the fields directly; build and change
 * trees only through the functions below.  A Lua result table with
 * keys exactly 1..n (n >= 1) becomes an ARRAY, one with only string keys
 * a MAP whose keys are sorted bytewise; an empty table becomes an empty
 * MAP.  Tables mixing both kinds of keys, with holes, or with other
 * keys (booleans, floats, tables) are refused.
 */
typedef struct wse_luabox_value wse_luabox_value;
struct wse_luabox_value {
	wse_luabox_type type;
	int boolean;		/* BOOLEAN: 0 or 1 */
	int64_t integer;	/* INTEGER */
	double number;		/* NUMBER */
	char *str;		/* STRING: len bytes, then a NUL */
	size_t len;
	size_t n;		/* ARRAY, MAP: number of items */
	wse_luabox_value **items; /* ARRAY, MAP: the values */
	char **keys;		/* MAP: keys[i] (NUL-terminated) of items[i] */
	size_t *keylens;	/* MAP: their lengths */
	size_t cap;		/* room in items (and keys) */
};

/*
 * Constructors: a new node, owned by the caller (or by the container it
 * is put in); NULL when memory is exhausted.  Strings are copied.
 */
wse_luabox_value *wse_luabox_nil(void);
wse_luabox_value *wse_luabox_boolean(int b);
wse_luabox_value *wse_luabox_integer(int64_t i);
wse_luabox_value *wse_luabox_number(double d);
wse_luabox_value *wse_luabox_string(const void *s, size_t len);
wse_luabox_value *wse_luabox_str(const char *s);	/* NUL-terminated */
wse_luabox_value *wse_luabox_array(void);
wse_luabox_value *wse_luabox_map(void);

/*
 * Append v to array arr.  Takes v in every case: on failure v is freed.
 * v == NULL (a constructor that failed) gives WSE_ERR_NOMEM, so that
 * constructors nest: wse_luabox_array_push(a, wse_luabox_str("x")).
 * WSE_ERR_INVALID when arr is not an ARRAY.
 */
wse_status wse_luabox_array_push(wse_luabox_value *arr, wse_luabox_value *v);

/* Set map[key] = v, replacing (and freeing) an earlier value.  Takes v
 * as wse_luabox_array_push does.  WSE_ERR_INVALID when map is not a MAP
 * or key is NULL. */
wse_status wse_luabox_map_set(wse_luabox_value *map, const char *key,
    wse_luabox_value *v);

/* The value under key in map (borrowed), or NULL when there is none or
 * map is not a MAP. */
const wse_luabox_value *wse_luabox_map_get(const wse_luabox_value *map,
    const char *key);

/* Free a tree; accepts NULL and sets *vp to NULL. */
void wse_luabox_value_free(wse_luabox_value **vp);

/* ---- boxes ---- */

typedef struct wse_luabox wse_luabox;

/*
 * Make a sandbox and run chunk (len bytes of Lua source) in it once,
 * under the limits lim (NULL: the defaults).  name names the plugin in
 * messages ("expense:12: attempt to ..."); bytes outside [A-Za-z0-9._-]
 * are shown as '?', at most 64 are kept.  The chunk must return a table;
 * its fields are the entry points.  On success *b_r is a new box, freed
 * with wse_luabox_free; on failure *b_r is NULL.
 * WSE_ERR_INVALID: binary chunk (first byte 0x1B, or any binary load),
 * syntax error, runtime error, a result that is not a table.
 * WSE_ERR_TOO_LARGE: instruction, time or memory limit.
 */
wse_status wse_luabox_new(const char *chunk, size_t len, const char *name,
    const wse_luabox_limits *lim, wse_luabox **b_r);

/*
 * Call entry point fn of the plugin with one argument (arg == NULL:
 * nil), under fresh instruction and time budgets (the memory cap is on
 * the state as a whole).  On success *result_r is the converted first
 * result (nil when the function returned nothing), owned by the caller;
 * on failure *result_r is NULL.  Statuses as described at the top; the
 * box stays usable after every failure.
 */
wse_status wse_luabox_call(wse_luabox *b, const char *fn,
    const wse_luabox_value *arg, wse_luabox_value **result_r);

/* 1 when the plugin's table has a function under fn, else 0. */
int wse_luabox_has(wse_luabox *b, const char *fn);

/* Bytes of Lua heap in use now. */
size_t wse_luabox_memory(const wse_luabox *b);

/* Close the state and free the box; accepts NULL, sets *bp to NULL. */
void wse_luabox_free(wse_luabox **bp);

#endif
