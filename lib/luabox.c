/*
 * luabox.c - the Lua 5.4 sandbox for downloaded plugins (see luabox.h).
 *
 * SECURITY
 *	The code run here is untrusted.  Three bounds hold for every run:
 *
 *	memory	A custom allocator caps the whole state's heap.  It refuses
 *		only growth (Lua requires shrinking never to fail); Lua turns
 *		the refusal into a memory error after an emergency
 *		collection, and lua_pcall catches it.
 *	work	A count hook fires every HOOK_EVERY VM instructions and adds
 *		them to the run's budget.  C functions do no VM instructions,
 *		so those whose cost is not linear in memory the plugin already
 *		paid for are wrapped: the pattern functions (find, match,
 *		gmatch, gsub) first charge an upper bound of their matching
 *		cost (below), table.move its element count, string.rep of
 *		empty strings answers at once (Lua's own would loop n times),
 *		and the table functions refuse tables with a metatable (a
 *		__len answering 2^62 would make table.insert loop in C).
 *		table.sort compares through a Lua function, never a C one.
 *	time	The same hook checks a wall-clock deadline.  Between two
 *		hooks at most HOOK_EVERY instructions run, each at most
 *		linear in the memory cap (a concatenation, a comparison of
 *		long strings), so a run overshoots its deadline by a bounded
 *		amount.
 *
 *	Once a bound is hit the run is "tripped": the hook fires on every
 *	instruction and raises an error each time, and the sandbox's pcall
 *	and xpcall re-raise instead of returning, so a plugin cannot catch
 *	the limit and go on.  Finalizers (__gc) are refused by
 *	setmetatable, so no plugin code runs inside the collector or
 *	lua_close.
 *
 *	Everything that may raise a Lua error (allocation included) runs
 *	inside lua_pcall; outside it only non-raising calls are made
 *	(lua_next, lua_rawget*, lua_to*, lua_checkstack), and C memory is
 *	only allocated outside it, so no longjmp skips a free.
 *
 * The pattern cost bound.  Lua's matcher branches only at the quantifiers
 * '*', '+', '-' (at most one more than the longest run of subject bytes
 * the quantified class matches) and '?' (two ways); %b and back
 * references scan at most the subject.  So one attempt costs at most
 * items * prod(fan-outs) steps (times n+1 with %b or %1-9), and a scan
 * makes at most n+1 attempts (one when anchored with '^').  The runs are
 * measured on the subject, so ordinary patterns on ordinary text cost
 * about their linear scan, and nested '.-' on a long subject is refused
 * before it starts.
 */
#include "luabox.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define HOOK_EVERY	100		/* instructions between two hooks */
#define MIN_MEMORY	(64u << 10)
#define NAME_MAX_LEN	64
#define FN_MAX_LEN	64
#define MSG_MAX		200		/* bytes of a plugin's error message */

enum trip { TRIP_NONE, TRIP_INSTR, TRIP_TIME, TRIP_CLOSE };
enum phase { PH_SETUP, PH_LOAD, PH_RUN, PH_RESULT, PH_LOOKUP, PH_CALL };
enum pat { PAT_FIND, PAT_MATCH, PAT_GMATCH, PAT_GSUB };

struct wse_luabox {
	lua_State *L;
	size_t used;		/* bytes allocated by the state */
	size_t max_mem;
	int mem_refused;	/* the cap refused an allocation this run */
	int load_mem;		/* the loader failed for memory */
	uint64_t count;		/* work done this run */
	uint64_t max_instr;
	uint32_t max_millis;
	uint64_t deadline;	/* CLOCK_MONOTONIC, nanoseconds */
	enum trip tripped;
	char name[NAME_MAX_LEN + 1];
};

/* The plugin's table in the registry, under this address. */
static const char plugin_key;

/* ---- limits ---- */

void
wse_luabox_limits_default(wse_luabox_limits *lim)
{
	lim->max_memory = WSE_LUABOX_DEFAULT_MEMORY;
	lim->max_instructions = WSE_LUABOX_DEFAULT_INSTRUCTIONS;
	lim->max_millis = WSE_LUABOX_DEFAULT_MILLIS;
}

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t
sat_mul(uint64_t a, uint64_t b)
{
	if (a != 0 && b > UINT64_MAX / a)
		return UINT64_MAX;
	return a * b;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the allocator ---- */

static void *
box_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	wse_luabox *b = ud;
	size_t old = ptr != NULL ? osize : 0;
	void *p;

	if (nsize == 0) {
		if (ptr != NULL) {
			b->used -= osize;
			free(ptr);
		}
		return NULL;
	}
	/* Only growth may fail (Lua requires shrinking never to). */
	if (nsize > old && nsize - old > b->max_mem - b->used) {
		b->mem_refused = 1;
		return NULL;
	}
	if ((p = realloc(ptr, nsize)) == NULL)
		return NULL;
	b->used = b->used - old + nsize;
	return p;
}

/* ---- the work and time bounds ---- */

static wse_luabox *
box_of(lua_State *L)
{
	return *(wse_luabox **)lua_getextraspace(L);
}

static void box_hook(lua_State *L, lua_Debug *ar);

static const char *
trip_message(enum trip t)
{
	switch (t) {
	case TRIP_INSTR:
		return "instruction limit exceeded";
	case TRIP_TIME:
		return "time limit exceeded";
	case TRIP_CLOSE:
		return "the sandbox is closing";
	case TRIP_NONE:
		break;
	}
	return "limit exceeded";
}

static int
trip(lua_State *L, wse_luabox *b, enum trip why)
{
	if (b->tripped == TRIP_NONE)
		b->tripped = why;
	/* From now on every instruction raises the error again. */
	lua_sethook(L, box_hook, LUA_MASKCOUNT, 1);
	lua_pushstring(L, trip_message(b->tripped));
	return lua_error(L);
}

/* Add cost to this run's work; raise when a bound is passed. */
static void
charge(lua_State *L, wse_luabox *b, uint64_t cost)
{
	if (b->tripped != TRIP_NONE)
		(void)trip(L, b, b->tripped);
	b->count = sat_add(b->count, cost);
	if (b->count > b->max_instr)
		(void)trip(L, b, TRIP_INSTR);
	if (now_ns() > b->deadline)
		(void)trip(L, b, TRIP_TIME);
}

static void
box_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	charge(L, box_of(L), HOOK_EVERY);
}

/* Start a run: fresh budgets. */
static void
arm(wse_luabox *b)
{
	b->count = 0;
	b->tripped = TRIP_NONE;
	b->mem_refused = 0;
	b->load_mem = 0;
	b->deadline = sat_add(now_ns(), (uint64_t)b->max_millis * 1000000u);
	lua_sethook(b->L, box_hook, LUA_MASKCOUNT, HOOK_EVERY);
}

static void
disarm(wse_luabox *b)
{
	lua_sethook(b->L, NULL, 0, 0);
}

/* ---- the wrapped library functions ---- */

/* Call upvalue 1 (the original function) with this call's arguments. */
static int
call_orig(lua_State *L)
{
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

/* pcall and xpcall, as Lua's, but a tripped run is never caught. */
static int
box_pcall(lua_State *L)
{
	int st;

	luaL_checkany(L, 1);
	luaL_checkstack(L, 2, "too many arguments");
	lua_pushboolean(L, 1);
	lua_insert(L, 1);
	st = lua_pcall(L, lua_gettop(L) - 2, LUA_MULTRET, 0);
	if (box_of(L)->tripped != TRIP_NONE)
		return lua_error(L);
	if (st != LUA_OK) {
		lua_pushboolean(L, 0);
		lua_pushvalue(L, -2);
		return 2;
	}
	return lua_gettop(L);
}

/*
 * xpcall: the message handler runs after the stack is unwound, not at
 * the point of the error.  Lua calls it from inside the error, and when
 * the error came from the count hook, hooks are still off at that point:
 * the handler would run unbounded.  Without the debug library nothing
 * can tell the difference.  As in Lua, no handler for memory errors.
 */
static int
box_xpcall(lua_State *L)
{
	int n = lua_gettop(L), st;

	luaL_checktype(L, 2, LUA_TFUNCTION);
	luaL_checkstack(L, 3, "too many arguments");
	lua_pushboolean(L, 1);		/* f, h, args..., true */
	lua_pushvalue(L, 1);		/* f, h, args..., true, f */
	lua_rotate(L, 3, 2);		/* f, h, true, f, args... */
	st = lua_pcall(L, n - 2, LUA_MULTRET, 0);
	if (box_of(L)->tripped != TRIP_NONE)
		return lua_error(L);
	if (st == LUA_OK)
		return lua_gettop(L) - 2;
	if (st != LUA_ERRMEM) {		/* f, h, true, err */
		lua_pushvalue(L, 2);
		lua_insert(L, -2);	/* f, h, true, h, err */
		(void)lua_pcall(L, 1, 1, 0);
		if (box_of(L)->tripped != TRIP_NONE)
			return lua_error(L);
	}
	lua_pushboolean(L, 0);
	lua_insert(L, -2);		/* ..., false, err or handler's */
	return 2;
}

/* setmetatable without finalizers. */
static int
box_setmetatable(lua_State *L)
{
	if (lua_type(L, 2) == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "finalizers (__gc) are not "
			    "available in this sandbox");
		lua_pop(L, 1);
	}
	return call_orig(L);
}

/* string.rep: Lua's loops n times even for an empty result. */
static int
box_strrep(lua_State *L)
{
	size_t l, lsep = 0;
	lua_Integer n;

	(void)luaL_checklstring(L, 1, &l);
	n = luaL_checkinteger(L, 2);
	(void)luaL_optlstring(L, 3, "", &lsep);
	if (n <= 0 || l + lsep == 0) {
		lua_pushliteral(L, "");
		return 1;
	}
	return call_orig(L);
}

/* A table argument without a metatable (no metamethod can then make a
 * table function loop in C). */
static void
plain_table(lua_State *L, int arg)
{
	luaL_checktype(L, arg, LUA_TTABLE);
	if (lua_getmetatable(L, arg))
		(void)luaL_error(L, "bad argument #%d: the table functions of "
		    "this sandbox refuse tables with a metatable", arg);
}

static int
box_tabfn(lua_State *L)
{
	plain_table(L, 1);
	return call_orig(L);
}

static int
box_tabmove(lua_State *L)
{
	lua_Integer f, e;

	plain_table(L, 1);
	f = luaL_checkinteger(L, 2);
	e = luaL_checkinteger(L, 3);
	(void)luaL_checkinteger(L, 4);
	if (!lua_isnoneornil(L, 5))
		plain_table(L, 5);
	if (e >= f)
		charge(L, box_of(L), (uint64_t)e - (uint64_t)f + 1);
	return call_orig(L);
}

/* table.sort, always through a Lua comparator (upvalue 2 by default). */
static int
box_tabsort(lua_State *L)
{
	plain_table(L, 1);
	if (lua_isnoneornil(L, 2)) {
		lua_settop(L, 1);
		lua_pushvalue(L, lua_upvalueindex(2));
	} else {
		luaL_checktype(L, 2, LUA_TFUNCTION);
		if (lua_iscfunction(L, 2))
			return luaL_error(L, "bad argument #2 to 'sort' (a "
			    "Lua function expected)");
	}
	lua_settop(L, 2);
	return call_orig(L);
}

/* -- the pattern cost bound (see the top of this file) -- */

static int
class_has(int c, int cl)
{
	int r;

	switch (tolower(cl)) {
	case 'a': r = isalpha(c); break;
	case 'c': r = iscntrl(c); break;
	case 'd': r = isdigit(c); break;
	case 'g': r = isgraph(c); break;
	case 'l': r = islower(c); break;
	case 'p': r = ispunct(c); break;
	case 's': r = isspace(c); break;
	case 'u': r = isupper(c); break;
	case 'w': r = isalnum(c); break;
	case 'x': r = isxdigit(c); break;
	default:
		return cl == c;
	}
	if (isupper(cl))
		r = !r;
	return r != 0;
}

/* Does byte c belong to the set p[0] == '[' .. ec[0] == ']'? */
static int
set_has(int c, const unsigned char *p, const unsigned char *ec)
{
	int sig = 1;

	if (p[1] == '^') {
		sig = 0;
		p++;
	}
	while (++p < ec) {
		if (*p == '%') {
			p++;
			if (class_has(c, *p))
				return sig;
		} else if (p[1] == '-' && p + 2 < ec) {
			p += 2;
			if (p[-2] <= c && c <= *p)
				return sig;
		} else if (*p == c) {
			return sig;
		}
	}
	return !sig;
}

/* The end of the single-character class at p, or NULL when malformed
 * (Lua will raise on it; the cost up to there is what counts). */
static const unsigned char *
class_end(const unsigned char *p, const unsigned char *pe)
{
	const unsigned char *q;

	if (*p == '%')
		return p + 1 < pe ? p + 2 : NULL;
	if (*p != '[')
		return p + 1;
	q = p + 1;
	if (q < pe && *q == '^')
		q++;
	for (;;) {	/* the first byte always belongs to the set */
		if (q >= pe)
			return NULL;
		if (*q++ == '%') {
			if (q >= pe)
				return NULL;
			q++;
		}
		if (q >= pe)
			return NULL;
		if (*q == ']')
			return q + 1;
	}
}

static int
single(int c, const unsigned char *p, const unsigned char *ep)
{
	switch (*p) {
	case '.':
		return 1;
	case '%':
		return class_has(c, p[1]);
	case '[':
		return set_has(c, p, ep - 1);
	default:
		return *p == c;
	}
}

static uint64_t
longest_run(const unsigned char *s, size_t n, const unsigned char *p,
    const unsigned char *ep)
{
	size_t i, cur = 0, best = 0;

	if (*p == '.')
		return n;
	for (i = 0; i < n; i++) {
		if (single(s[i], p, ep)) {
			if (++cur > best)
				best = cur;
		} else {
			cur = 0;
		}
	}
	return best;
}

static uint64_t
pattern_cost(lua_State *L, wse_luabox *b, const unsigned char *s, size_t n,
    const unsigned char *p, size_t m, int anchorable)
{
	const unsigned char *pe = p + m, *ep;
	uint64_t starts = (uint64_t)n + 1, prod = 1, items = 1, cost;
	int linear = 0;

	if (anchorable && m > 0 && *p == '^') {
		starts = 1;
		p++;
	}
	while (p < pe) {
		if (*p == '(') {
			p += p + 1 < pe && p[1] == ')' ? 2 : 1;
			items++;
			continue;
		}
		if (*p == ')') {
			p++;
			items++;
			continue;
		}
		if (*p == '$' && p + 1 == pe)
			break;
		if (*p == '%' && p + 1 < pe) {
			if (p[1] == 'b') {
				if (pe - p < 4)
					break;
				p += 4;
				linear = 1;
				items++;
				continue;
			}
			if (p[1] == 'f') {
				p += 2;
				if (p >= pe || *p != '[' ||
				    (ep = class_end(p, pe)) == NULL)
					break;
				p = ep;
				items++;
				continue;
			}
			if (isdigit(p[1])) {
				p += 2;
				linear = 1;
				items++;
				continue;
			}
		}
		if ((ep = class_end(p, pe)) == NULL)
			break;
		items++;
		if (ep < pe && (*ep == '*' || *ep == '+' || *ep == '-')) {
			charge(L, b, n / 16 + 1);	/* the scan */
			prod = sat_mul(prod, longest_run(s, n, p, ep) + 1);
			ep++;
		} else if (ep < pe && *ep == '?') {
			prod = sat_mul(prod, 2);
			ep++;
		}
		p = ep;
	}
	cost = sat_mul(sat_mul(starts, prod), items);
	if (linear)
		cost = sat_mul(cost, (uint64_t)n + 1);
	return cost;
}

static int
no_specials(const char *p, size_t m)
{
	size_t i;

	for (i = 0; i < m; i++)
		if (p[i] != '\0' && strchr("^$*+?.([%-", p[i]) != NULL)
			return 0;
	return 1;
}

/* string.find, match, gmatch, gsub: charge the bound, then run Lua's. */
static int
box_strpattern(lua_State *L)
{
	wse_luabox *b = box_of(L);
	enum pat kind = (enum pat)lua_tointeger(L, lua_upvalueindex(2));
	size_t n, m, lr;
	const char *s = luaL_checklstring(L, 1, &n);
	const char *p = luaL_checklstring(L, 2, &m);
	uint64_t cost;

	if (kind == PAT_FIND && (lua_toboolean(L, 4) || no_specials(p, m)))
		/* memchr, then a compare of at most m bytes per start */
		cost = sat_mul(m <= n ? (uint64_t)(n - m) + 2 : 1, m / 32 + 1);
	else
		cost = pattern_cost(L, b, (const unsigned char *)s, n,
		    (const unsigned char *)p, m, kind != PAT_GMATCH);
	if (kind == PAT_GSUB && lua_type(L, 3) == LUA_TSTRING) {
		/* the replacement string is scanned once per match */
		(void)lua_tolstring(L, 3, &lr);
		cost = sat_add(cost, sat_mul((uint64_t)n + 1, lr / 16 + 1));
	}
	charge(L, b, cost);
	return call_orig(L);
}

/* ---- setting the sandbox up ---- */

/* Replace field name of the table at the top with fn, which gets the
 * original as upvalue 1 and, when extra is set, the value just below the
 * table as upvalue 2 (that value is popped). */
static void
wrap(lua_State *L, const char *name, lua_CFunction fn, int extra)
{
	lua_getfield(L, -1, name);	/* [extra,] tbl, orig */
	if (extra)
		lua_rotate(L, -3, -1);	/* tbl, orig, extra */
	lua_pushcclosure(L, fn, 1 + extra);
	lua_setfield(L, -2, name);
}

static void
wrap_pattern(lua_State *L, const char *name, enum pat kind)
{
	lua_pushinteger(L, kind);
	lua_insert(L, -2);		/* kind, string */
	wrap(L, name, box_strpattern, 1);
}

static void
drop(lua_State *L, const char *name)
{
	lua_pushnil(L);
	lua_setfield(L, -2, name);
}

struct setup_ctx {
	wse_luabox *b;
	const char *chunk;
	size_t len;
	const char *chunkname;
	enum phase phase;
};

static int
box_setup(lua_State *L)
{
	static const luaL_Reg libs[] = {
		{ LUA_GNAME, luaopen_base },
		{ LUA_STRLIBNAME, luaopen_string },
		{ LUA_TABLIBNAME, luaopen_table },
		{ LUA_MATHLIBNAME, luaopen_math },
		{ LUA_UTF8LIBNAME, luaopen_utf8 },
	};
	static const char *const base_drop[] = { "dofile", "loadfile",
	    "load", "require", "collectgarbage", "print", "warn" };
	static const char sortcmp[] = "local a, b = ...\nreturn a < b\n";
	struct setup_ctx *c = lua_touserdata(L, 1);
	size_t i;
	int st;

	lua_settop(L, 0);
	for (i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
		luaL_requiref(L, libs[i].name, libs[i].func, 1);
		lua_pop(L, 1);
	}

	lua_pushglobaltable(L);
	for (i = 0; i < sizeof(base_drop) / sizeof(base_drop[0]); i++)
		drop(L, base_drop[i]);
	lua_pushcfunction(L, box_pcall);
	lua_setfield(L, -2, "pcall");
	lua_pushcfunction(L, box_xpcall);
	lua_setfield(L, -2, "xpcall");
	wrap(L, "setmetatable", box_setmetatable, 0);
	lua_pop(L, 1);

	/* The string table is also the strings' metatable's __index. */
	lua_getglobal(L, LUA_STRLIBNAME);
	drop(L, "dump");
	wrap(L, "rep", box_strrep, 0);
	wrap_pattern(L, "find", PAT_FIND);
	wrap_pattern(L, "match", PAT_MATCH);
	wrap_pattern(L, "gmatch", PAT_GMATCH);
	wrap_pattern(L, "gsub", PAT_GSUB);
	lua_pop(L, 1);

	if (luaL_loadbufferx(L, sortcmp, sizeof(sortcmp) - 1, "=sort", "t") !=
	    LUA_OK)
		return lua_error(L);
	lua_getglobal(L, LUA_TABLIBNAME);
	wrap(L, "insert", box_tabfn, 0);
	wrap(L, "remove", box_tabfn, 0);
	wrap(L, "concat", box_tabfn, 0);
	wrap(L, "unpack", box_tabfn, 0);
	wrap(L, "move", box_tabmove, 0);
	wrap(L, "sort", box_tabsort, 1);	/* the comparator below */
	lua_pop(L, 1);

	c->phase = PH_LOAD;
	st = luaL_loadbufferx(L, c->chunk, c->len, c->chunkname, "t");
	if (st != LUA_OK) {
		if (st == LUA_ERRMEM)
			c->b->load_mem = 1;
		return lua_error(L);
	}
	c->phase = PH_RUN;
	lua_call(L, 0, 1);
	c->phase = PH_RESULT;
	if (lua_type(L, -1) != LUA_TTABLE)
		return luaL_error(L, "the chunk returned %s, not a table of "
		    "functions", luaL_typename(L, -1));
	lua_rawsetp(L, LUA_REGISTRYINDEX, &plugin_key);
	return 0;
}

/* ---- failures ---- */

/* A message of the plugin's, printable and bounded. */
static void
clean_message(lua_State *L, char *out, size_t size)
{
	const char *m;
	size_t len, i, j = 0;

	if (lua_type(L, -1) == LUA_TSTRING) {
		m = lua_tolstring(L, -1, &len);
		for (i = 0; i < len && j + 1 < size && i < MSG_MAX; i++) {
			unsigned char ch = (unsigned char)m[i];

			out[j++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
		}
		out[j] = '\0';
	} else {
		snprintf(out, size, "(error object is a %s value)",
		    lua_typename(L, lua_type(L, -1)));
	}
}

/* Translate the failure of a run (rc from lua_pcall, the error object on
 * the stack) into a status. */
static wse_status
run_error(wse_luabox *b, int rc, const char *what)
{
	char msg[MSG_MAX + 1];

	if (b->tripped == TRIP_INSTR)
		return wse_err(WSE_ERR_TOO_LARGE, "plugin %s: %s: instruction "
		    "limit (%llu) exceeded", b->name, what,
		    (unsigned long long)b->max_instr);
	if (b->tripped == TRIP_TIME)
		return wse_err(WSE_ERR_TOO_LARGE, "plugin %s: %s: time limit "
		    "(%u ms) exceeded", b->name, what, b->max_millis);
	if (rc == LUA_ERRMEM || b->load_mem) {
		if (b->mem_refused)
			return wse_err(WSE_ERR_TOO_LARGE, "plugin %s: %s: "
			    "memory limit (%zu bytes) exceeded", b->name,
			    what, b->max_mem);
		return wse_err(WSE_ERR_NOMEM, "plugin %s: %s: out of memory",
		    b->name, what);
	}
	clean_message(b->L, msg, sizeof(msg));
	return wse_err(WSE_ERR_INVALID, "plugin %s: %s: %s", b->name, what,
	    msg);
}

/* ---- values ---- */

static wse_luabox_value *
value_new(wse_luabox_type t)
{
	wse_luabox_value *v = calloc(1, sizeof(*v));

	if (v != NULL)
		v->type = t;
	return v;
}

wse_luabox_value *
wse_luabox_nil(void)
{
	return value_new(WSE_LUABOX_NIL);
}

wse_luabox_value *
wse_luabox_boolean(int b)
{
	wse_luabox_value *v = value_new(WSE_LUABOX_BOOLEAN);

	if (v != NULL)
		v->boolean = b != 0;
	return v;
}

wse_luabox_value *
wse_luabox_integer(int64_t i)
{
	wse_luabox_value *v = value_new(WSE_LUABOX_INTEGER);

	if (v != NULL)
		v->integer = i;
	return v;
}

wse_luabox_value *
wse_luabox_number(double d)
{
	wse_luabox_value *v = value_new(WSE_LUABOX_NUMBER);

	if (v != NULL)
		v->number = d;
	return v;
}

wse_luabox_value *
wse_luabox_string(const void *s, size_t len)
{
	wse_luabox_value *v;

	if ((s == NULL && len > 0) || len == SIZE_MAX ||
	    (v = value_new(WSE_LUABOX_STRING)) == NULL)
		return NULL;
	if ((v->str = malloc(len + 1)) == NULL) {
		free(v);
		return NULL;
	}
	if (len > 0)
		memcpy(v->str, s, len);
	v->str[len] = '\0';
	v->len = len;
	return v;
}

wse_luabox_value *
wse_luabox_str(const char *s)
{
	return s == NULL ? NULL : wse_luabox_string(s, strlen(s));
}

wse_luabox_value *
wse_luabox_array(void)
{
	return value_new(WSE_LUABOX_ARRAY);
}

wse_luabox_value *
wse_luabox_map(void)
{
	return value_new(WSE_LUABOX_MAP);
}

void
wse_luabox_value_free(wse_luabox_value **vp)
{
	wse_luabox_value *v;
	size_t i;

	if (vp == NULL || (v = *vp) == NULL)
		return;
	for (i = 0; i < v->n; i++) {
		wse_luabox_value_free(&v->items[i]);
		if (v->keys != NULL)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->keylens);
	free(v->str);
	free(v);
	*vp = NULL;
}

/* Room for one more item in an ARRAY or MAP. */
static int
grow(wse_luabox_value *c)
{
	size_t ncap;
	void *p;

	if (c->n < c->cap)
		return 0;
	ncap = c->cap == 0 ? 8 : c->cap * 2;
	if (ncap > SIZE_MAX / sizeof(char *))
		return -1;
	if ((p = realloc(c->items, ncap * sizeof(*c->items))) == NULL)
		return -1;
	c->items = p;
	if (c->type == WSE_LUABOX_MAP) {
		if ((p = realloc(c->keys, ncap * sizeof(*c->keys))) == NULL)
			return -1;
		c->keys = p;
		if ((p = realloc(c->keylens, ncap * sizeof(*c->keylens))) ==
		    NULL)
			return -1;
		c->keylens = p;
	}
	c->cap = ncap;
	return 0;
}

wse_status
wse_luabox_array_push(wse_luabox_value *arr, wse_luabox_value *v)
{
	if (v == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate a value");
	if (arr == NULL || arr->type != WSE_LUABOX_ARRAY) {
		wse_luabox_value_free(&v);
		return wse_err(WSE_ERR_INVALID, "not an array value");
	}
	if (grow(arr) != 0) {
		wse_luabox_value_free(&v);
		return wse_err(WSE_ERR_NOMEM, "cannot grow an array value");
	}
	arr->items[arr->n++] = v;
	return WSE_OK;
}

wse_status
wse_luabox_map_set(wse_luabox_value *map, const char *key,
    wse_luabox_value *v)
{
	size_t i, kl;
	char *k;

	if (v == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate a value");
	if (map == NULL || map->type != WSE_LUABOX_MAP || key == NULL) {
		wse_luabox_value_free(&v);
		return wse_err(WSE_ERR_INVALID, "not a map value or no key");
	}
	kl = strlen(key);
	for (i = 0; i < map->n; i++)
		if (map->keylens[i] == kl && memcmp(map->keys[i], key, kl) == 0) {
			wse_luabox_value_free(&map->items[i]);
			map->items[i] = v;
			return WSE_OK;
		}
	if (grow(map) != 0 || (k = strdup(key)) == NULL) {
		wse_luabox_value_free(&v);
		return wse_err(WSE_ERR_NOMEM, "cannot grow a map value");
	}
	map->keys[map->n] = k;
	map->keylens[map->n] = kl;
	map->items[map->n++] = v;
	return WSE_OK;
}

const wse_luabox_value *
wse_luabox_map_get(const wse_luabox_value *map, const char *key)
{
	size_t i, kl;

	if (map == NULL || map->type != WSE_LUABOX_MAP || key == NULL)
		return NULL;
	kl = strlen(key);
	for (i = 0; i < map->n; i++)
		if (map->keylens[i] == kl && memcmp(map->keys[i], key, kl) == 0)
			return map->items[i];
	return NULL;
}

/* -- C to Lua (arguments) -- */

struct bounds {
	size_t nodes;
	size_t total;
};

/* Check an argument tree against the conversion bounds, in C. */
static wse_status
check_arg(const wse_luabox_value *v, int depth, struct bounds *bd)
{
	size_t i;
	wse_status st;

	if (v == NULL)
		return wse_err(WSE_ERR_INVALID, "argument: missing value");
	if (++bd->nodes > WSE_LUABOX_MAX_NODES)
		return wse_err(WSE_ERR_TOO_LARGE, "argument: more than %d "
		    "values", WSE_LUABOX_MAX_NODES);
	switch (v->type) {
	case WSE_LUABOX_NIL:
	case WSE_LUABOX_BOOLEAN:
	case WSE_LUABOX_INTEGER:
	case WSE_LUABOX_NUMBER:
		return WSE_OK;
	case WSE_LUABOX_STRING:
		if (v->len > WSE_LUABOX_MAX_STRING ||
		    (bd->total += v->len) > WSE_LUABOX_MAX_TOTAL)
			return wse_err(WSE_ERR_TOO_LARGE, "argument: strings "
			    "too long");
		return WSE_OK;
	case WSE_LUABOX_ARRAY:
	case WSE_LUABOX_MAP:
		if (depth >= WSE_LUABOX_MAX_DEPTH)
			return wse_err(WSE_ERR_TOO_LARGE, "argument: nested "
			    "deeper than %d tables", WSE_LUABOX_MAX_DEPTH);
		if (v->n > 0 && (v->items == NULL ||
		    (v->type == WSE_LUABOX_MAP && (v->keys == NULL ||
		    v->keylens == NULL))))
			return wse_err(WSE_ERR_INVALID, "argument: bad table");
		for (i = 0; i < v->n; i++) {
			if (v->type == WSE_LUABOX_MAP) {
				if (v->keylens[i] > WSE_LUABOX_MAX_STRING ||
				    (bd->total += v->keylens[i]) >
				    WSE_LUABOX_MAX_TOTAL)
					return wse_err(WSE_ERR_TOO_LARGE,
					    "argument: keys too long");
			}
			if ((st = check_arg(v->items[i], depth + 1, bd)) !=
			    WSE_OK)
				return st;
		}
		return WSE_OK;
	}
	return wse_err(WSE_ERR_INVALID, "argument: unknown value type %d",
	    (int)v->type);
}

/* Push v (checked by check_arg); inside lua_pcall. */
static void
push_value(lua_State *L, const wse_luabox_value *v)
{
	size_t i;

	luaL_checkstack(L, 3, "argument too deep");
	switch (v->type) {
	case WSE_LUABOX_NIL:
		lua_pushnil(L);
		break;
	case WSE_LUABOX_BOOLEAN:
		lua_pushboolean(L, v->boolean);
		break;
	case WSE_LUABOX_INTEGER:
		lua_pushinteger(L, (lua_Integer)v->integer);
		break;
	case WSE_LUABOX_NUMBER:
		lua_pushnumber(L, (lua_Number)v->number);
		break;
	case WSE_LUABOX_STRING:
		lua_pushlstring(L, v->str, v->len);
		break;
	case WSE_LUABOX_ARRAY:
		lua_createtable(L, (int)v->n, 0);
		for (i = 0; i < v->n; i++) {
			push_value(L, v->items[i]);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		break;
	case WSE_LUABOX_MAP:
		lua_createtable(L, 0, (int)v->n);
		for (i = 0; i < v->n; i++) {
			lua_pushlstring(L, v->keys[i], v->keylens[i]);
			push_value(L, v->items[i]);
			lua_rawset(L, -3);
		}
		break;
	}
}

/* -- Lua to C (results); no Lua error can be raised here -- */

struct conv {
	size_t nodes;
	size_t total;
	int depth;
	const void *path[WSE_LUABOX_MAX_DEPTH];
};

struct entry {
	char *key;
	size_t keylen;
	wse_luabox_value *v;
};

static int
entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	size_t n = x->keylen < y->keylen ? x->keylen : y->keylen;
	int r = memcmp(x->key, y->key, n);

	if (r != 0)
		return r;
	return x->keylen < y->keylen ? -1 : x->keylen > y->keylen;
}

static wse_status from_lua(lua_State *L, int idx, struct conv *c,
    wse_luabox_value **v_r);

static wse_status
string_value(lua_State *L, int idx, struct conv *c, const char *what,
    wse_luabox_value **v_r)
{
	size_t len;
	const char *s = lua_tolstring(L, idx, &len);

	if (len > WSE_LUABOX_MAX_STRING)
		return wse_err(WSE_ERR_INVALID, "result: a %s of %zu bytes "
		    "(at most %u)", what, len, WSE_LUABOX_MAX_STRING);
	if ((c->total += len) > WSE_LUABOX_MAX_TOTAL)
		return wse_err(WSE_ERR_INVALID, "result: more than %u bytes "
		    "of strings", WSE_LUABOX_MAX_TOTAL);
	if ((*v_r = wse_luabox_string(s, len)) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate a result");
	return WSE_OK;
}

/* The table at idx: an ARRAY (keys 1..n) or a MAP (string keys). */
static wse_status
table_value(lua_State *L, int idx, struct conv *c, wse_luabox_value **v_r)
{
	const void *self = lua_topointer(L, idx);
	size_t nint = 0, nstr = 0, count = 0, i;
	lua_Integer maxk = 0;
	struct entry *ents = NULL;
	wse_luabox_value *v = NULL, *item;
	wse_status st;
	int k, top = lua_gettop(L);

	for (k = 0; k < c->depth; k++)
		if (c->path[k] == self)
			return wse_err(WSE_ERR_INVALID, "result: a table "
			    "contains itself (a cycle)");
	if (c->depth >= WSE_LUABOX_MAX_DEPTH)
		return wse_err(WSE_ERR_INVALID, "result: tables nested "
		    "deeper than %d", WSE_LUABOX_MAX_DEPTH);
	if (!lua_checkstack(L, 4))
		return wse_err(WSE_ERR_NOMEM, "result: no Lua stack left");
	c->path[c->depth++] = self;

	/* First pass: what kind of keys. */
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		lua_pop(L, 1);
		if (lua_type(L, -1) == LUA_TSTRING) {
			nstr++;
		} else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0) {
			nint++;
			if (lua_tointeger(L, -1) > maxk)
				maxk = lua_tointeger(L, -1);
		} else {
			st = wse_err(WSE_ERR_INVALID, "result: a table key "
			    "that is a %s (only strings and 1..n)",
			    lua_isnumber(L, -1) ? "non-positive or "
			    "fractional number" : luaL_typename(L, -1));
			goto out;
		}
		if (++count > WSE_LUABOX_MAX_NODES) {
			st = wse_err(WSE_ERR_INVALID, "result: more than %d "
			    "values", WSE_LUABOX_MAX_NODES);
			goto out;
		}
	}
	if (nint > 0 && nstr > 0) {
		st = wse_err(WSE_ERR_INVALID, "result: a table mixes array "
		    "and map keys");
		goto out;
	}
	if (nint > 0 && (lua_Integer)nint != maxk) {
		st = wse_err(WSE_ERR_INVALID, "result: an array with holes "
		    "(%zu values, largest index %lld)", nint, (long long)maxk);
		goto out;
	}

	if (nint > 0) {
		if ((v = wse_luabox_array()) == NULL ||
		    (v->items = calloc(nint, sizeof(*v->items))) == NULL) {
			st = wse_err(WSE_ERR_NOMEM, "cannot allocate a result");
			goto out;
		}
		v->cap = nint;
		for (i = 0; i < nint; i++) {
			lua_rawgeti(L, idx, (lua_Integer)i + 1);
			st = from_lua(L, lua_gettop(L), c, &v->items[i]);
			lua_pop(L, 1);
			if (st != WSE_OK)
				goto out;
			v->n++;
		}
	} else {
		if ((v = wse_luabox_map()) == NULL ||
		    (nstr > 0 && (ents = calloc(nstr, sizeof(*ents))) ==
		    NULL)) {
			st = wse_err(WSE_ERR_NOMEM, "cannot allocate a result");
			goto out;
		}
		i = 0;
		lua_pushnil(L);
		while (i < nstr && lua_next(L, idx) != 0) {
			/* key at -2, value at -1 */
			if ((st = string_value(L, -2, c, "key", &item)) !=
			    WSE_OK)
				goto out;
			ents[i].key = item->str;
			ents[i].keylen = item->len;
			item->str = NULL;
			wse_luabox_value_free(&item);
			st = from_lua(L, lua_gettop(L), c, &ents[i].v);
			i++;
			if (st != WSE_OK)
				goto out;
			lua_pop(L, 1);
		}
		lua_settop(L, top);
		if (i != nstr) {
			st = wse_err(WSE_ERR_INTERNAL, "result: table changed");
			goto out;
		}
		if (nstr > 0) {
			qsort(ents, nstr, sizeof(*ents), entry_cmp);
			if ((v->items = calloc(nstr, sizeof(*v->items))) ==
			    NULL ||
			    (v->keys = calloc(nstr, sizeof(*v->keys))) ==
			    NULL ||
			    (v->keylens = calloc(nstr, sizeof(*v->keylens))) ==
			    NULL) {
				st = wse_err(WSE_ERR_NOMEM,
				    "cannot allocate a result");
				goto out;
			}
			for (i = 0; i < nstr; i++) {
				v->keys[i] = ents[i].key;
				v->keylens[i] = ents[i].keylen;
				v->items[i] = ents[i].v;
				ents[i].key = NULL;
				ents[i].v = NULL;
			}
			v->n = v->cap = nstr;
		}
	}
	*v_r = v;
	v = NULL;
	st = WSE_OK;
out:
	if (ents != NULL) {
		for (i = 0; i < nstr; i++) {
			free(ents[i].key);
			wse_luabox_value_free(&ents[i].v);
		}
		free(ents);
	}
	wse_luabox_value_free(&v);
	c->depth--;
	lua_settop(L, top);
	return st;
}

static wse_status
from_lua(lua_State *L, int idx, struct conv *c, wse_luabox_value **v_r)
{
	wse_luabox_value *v = NULL;

	*v_r = NULL;
	if (++c->nodes > WSE_LUABOX_MAX_NODES)
		return wse_err(WSE_ERR_INVALID, "result: more than %d values",
		    WSE_LUABOX_MAX_NODES);
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		v = wse_luabox_nil();
		break;
	case LUA_TBOOLEAN:
		v = wse_luabox_boolean(lua_toboolean(L, idx));
		break;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx)) {
			v = wse_luabox_integer((int64_t)lua_tointeger(L, idx));
		} else {
			double d = (double)lua_tonumber(L, idx);

			if (!isfinite(d))
				return wse_err(WSE_ERR_INVALID, "result: a "
				    "number that is not finite");
			v = wse_luabox_number(d);
		}
		break;
	case LUA_TSTRING:
		return string_value(L, idx, c, "string", v_r);
	case LUA_TTABLE:
		return table_value(L, idx, c, v_r);
	default:
		return wse_err(WSE_ERR_INVALID, "result: a %s cannot leave the "
		    "sandbox", luaL_typename(L, idx));
	}
	if (v == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate a result");
	*v_r = v;
	return WSE_OK;
}

/* ---- boxes ---- */

/* ASCII only, whatever the locale. */
static int
ascii_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static void
set_name(wse_luabox *b, const char *name)
{
	size_t i;

	if (name == NULL || *name == '\0')
		name = "plugin";
	for (i = 0; name[i] != '\0' && i < NAME_MAX_LEN; i++)
		b->name[i] = ascii_alnum(name[i]) ||
		    strchr("._-", name[i]) != NULL ? name[i] : '?';
	b->name[i] = '\0';
}

static void
box_close(wse_luabox *b)
{
	if (b->L == NULL)
		return;
	/* Nothing of the plugin's may run while the state is torn down. */
	b->tripped = TRIP_CLOSE;
	lua_sethook(b->L, box_hook, LUA_MASKCOUNT, 1);
	lua_close(b->L);
	b->L = NULL;
}

wse_status
wse_luabox_new(const char *chunk, size_t len, const char *name,
    const wse_luabox_limits *lim, wse_luabox **b_r)
{
	static const char *const phase_names[] = { "setting up the sandbox",
	    "loading", "running the chunk", "running the chunk", "", "" };
	wse_luabox_limits dl;
	struct setup_ctx ctx;
	char chunkname[NAME_MAX_LEN + 2];
	wse_luabox *b = NULL;
	wse_status st;
	int rc;

	*b_r = NULL;
	wse_luabox_limits_default(&dl);
	if (lim != NULL) {
		if (lim->max_memory != 0)
			dl.max_memory = lim->max_memory;
		if (lim->max_instructions != 0)
			dl.max_instructions = lim->max_instructions;
		if (lim->max_millis != 0)
			dl.max_millis = lim->max_millis;
	}
	if (dl.max_memory < MIN_MEMORY)
		return wse_err(WSE_ERR_INVALID, "sandbox memory cap below "
		    "%u bytes", MIN_MEMORY);
	if (chunk == NULL && len > 0)
		return wse_err(WSE_ERR_INVALID, "no plugin code");
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return wse_err(WSE_ERR_NOMEM, "cannot allocate a sandbox");
	set_name(b, name);
	if (len > 0 && (unsigned char)chunk[0] == 0x1b) {
		st = wse_err(WSE_ERR_INVALID, "plugin %s: binary (precompiled) "
		    "chunks are refused; plugins are Lua source text",
		    b->name);
		goto out;
	}
	b->max_mem = dl.max_memory;
	b->max_instr = dl.max_instructions;
	b->max_millis = dl.max_millis;
	if ((b->L = lua_newstate(box_alloc, b)) == NULL) {
		st = wse_err(WSE_ERR_NOMEM, "plugin %s: cannot create a Lua "
		    "state", b->name);
		goto out;
	}
	*(wse_luabox **)lua_getextraspace(b->L) = b;
	snprintf(chunkname, sizeof(chunkname), "=%s", b->name);
	memset(&ctx, 0, sizeof(ctx));
	ctx.b = b;
	ctx.chunk = chunk != NULL ? chunk : "";
	ctx.len = len;
	ctx.chunkname = chunkname;
	ctx.phase = PH_SETUP;
	lua_pushcfunction(b->L, box_setup);
	lua_pushlightuserdata(b->L, &ctx);
	arm(b);
	rc = lua_pcall(b->L, 1, 0, 0);
	disarm(b);
	if (rc != LUA_OK) {
		st = run_error(b, rc, phase_names[ctx.phase]);
		goto out;
	}
	lua_settop(b->L, 0);
	*b_r = b;
	b = NULL;
	st = WSE_OK;
out:
	wse_luabox_free(&b);
	return st;
}

struct call_ctx {
	const char *fn;
	const wse_luabox_value *arg;
	enum phase phase;
};

static int
box_call(lua_State *L)
{
	struct call_ctx *c = lua_touserdata(L, 1);

	lua_settop(L, 0);
	c->phase = PH_LOOKUP;
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &plugin_key) != LUA_TTABLE)
		return luaL_error(L, "the plugin's table is gone");
	lua_pushstring(L, c->fn);
	if (lua_rawget(L, 1) != LUA_TFUNCTION)
		return luaL_error(L, "the plugin has no function '%s'", c->fn);
	if (c->arg != NULL)
		push_value(L, c->arg);
	else
		lua_pushnil(L);
	c->phase = PH_CALL;
	lua_call(L, 1, 1);
	return 1;
}

static int
fn_name_ok(const char *fn)
{
	size_t i;

	if (fn == NULL || *fn == '\0' || (*fn >= '0' && *fn <= '9'))
		return 0;
	for (i = 0; fn[i] != '\0'; i++)
		if (i >= FN_MAX_LEN || !(ascii_alnum(fn[i]) || fn[i] == '_'))
			return 0;
	return 1;
}

wse_status
wse_luabox_call(wse_luabox *b, const char *fn, const wse_luabox_value *arg,
    wse_luabox_value **result_r)
{
	struct call_ctx ctx;
	struct bounds bd;
	struct conv cv;
	char what[FN_MAX_LEN + 16];
	wse_status st;
	int rc;

	*result_r = NULL;
	if (b == NULL || b->L == NULL)
		return wse_err(WSE_ERR_INVALID, "no sandbox");
	if (!fn_name_ok(fn))
		return wse_err(WSE_ERR_INVALID, "plugin %s: bad entry point "
		    "name (letters, digits, '_', at most %d)", b->name,
		    FN_MAX_LEN);
	memset(&bd, 0, sizeof(bd));
	if (arg != NULL && (st = check_arg(arg, 0, &bd)) != WSE_OK)
		return st;
	lua_settop(b->L, 0);
	if (!lua_checkstack(b->L, 4))
		return wse_err(WSE_ERR_NOMEM, "plugin %s: no Lua stack left",
		    b->name);
	snprintf(what, sizeof(what), "%s()", fn);
	memset(&ctx, 0, sizeof(ctx));
	ctx.fn = fn;
	ctx.arg = arg;
	lua_pushcfunction(b->L, box_call);
	lua_pushlightuserdata(b->L, &ctx);
	arm(b);
	rc = lua_pcall(b->L, 1, 1, 0);
	disarm(b);
	if (rc != LUA_OK) {
		st = run_error(b, rc, what);
		lua_settop(b->L, 0);
		if (rc == LUA_ERRMEM)
			lua_gc(b->L, LUA_GCCOLLECT);
		return st;
	}
	memset(&cv, 0, sizeof(cv));
	st = from_lua(b->L, lua_gettop(b->L), &cv, result_r);
	lua_settop(b->L, 0);
	if (st != WSE_OK)
		return wse_err(st, "plugin %s: %s returned a value that cannot "
		    "leave the sandbox", b->name, what);
	return WSE_OK;
}

int
wse_luabox_has(wse_luabox *b, const char *fn)
{
	lua_State *L;
	size_t kl, fl;
	const char *k;
	int found = 0;

	if (b == NULL || (L = b->L) == NULL || fn == NULL ||
	    !lua_checkstack(L, 3))
		return 0;
	fl = strlen(fn);
	/* lua_next and raw reads only: nothing here can raise. */
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &plugin_key) == LUA_TTABLE) {
		lua_pushnil(L);
		while (lua_next(L, -2) != 0) {
			if (lua_type(L, -2) == LUA_TSTRING &&
			    lua_type(L, -1) == LUA_TFUNCTION) {
				k = lua_tolstring(L, -2, &kl);
				if (kl == fl && memcmp(k, fn, fl) == 0) {
					found = 1;
					lua_pop(L, 2);
					break;
				}
			}
			lua_pop(L, 1);
		}
	}
	lua_settop(L, 0);
	return found;
}

size_t
wse_luabox_memory(const wse_luabox *b)
{
	return b != NULL ? b->used : 0;
}

void
wse_luabox_free(wse_luabox **bp)
{
	wse_luabox *b;

	if (bp == NULL || (b = *bp) == NULL)
		return;
	box_close(b);
	free(b);
	*bp = NULL;
}
