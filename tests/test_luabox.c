/*
 * test_luabox.c - the Lua sandbox for downloaded plugins: entry points
 * and value conversion, the libraries a plugin sees, and every bound
 * (instructions, time, memory, result shape) with the box usable after.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "luabox.h"

/* Assert that the error stack's newest messages mention text. */
#define assert_err_has(text) do {					\
	char eb__[2048];						\
	wse_err_format(eb__, sizeof(eb__));				\
	if (strstr(eb__, (text)) == NULL)				\
		fail_msg("no \"%s\" in: %s", (text), eb__);		\
	wse_err_clear();						\
} while (0)

static wse_luabox *
box(const char *src)
{
	wse_luabox *b = NULL;

	assert_wse_ok(wse_luabox_new(src, strlen(src), "test", NULL, &b));
	assert_non_null(b);
	return b;
}

static wse_luabox *
box_lim(const char *src, size_t mem, uint64_t instr, uint32_t ms)
{
	wse_luabox_limits lim = { mem, instr, ms };
	wse_luabox *b = NULL;

	assert_wse_ok(wse_luabox_new(src, strlen(src), "test", &lim, &b));
	return b;
}

/* Call fn with no argument; expect status want; return the result. */
static wse_luabox_value *
call0(wse_luabox *b, const char *fn, wse_status want)
{
	wse_luabox_value *r = NULL;

	assert_wse_status(wse_luabox_call(b, fn, NULL, &r), want);
	if (want != WSE_OK)
		assert_null(r);
	return r;
}

static const char *
sval(const wse_luabox_value *m, const char *key)
{
	const wse_luabox_value *v = wse_luabox_map_get(m, key);

	assert_non_null(v);
	assert_int_equal(v->type, WSE_LUABOX_STRING);
	return v->str;
}

/* ---- entry points and values ---- */

static const char router_src[] =
    "local M = {}\n"
    "local threshold = 1000\n"
    "function M.route(form)\n"
    "  local r = { approvers = {} }\n"
    "  if form.amount > threshold then\n"
    "    table.insert(r.approvers, 'manager@b.test')\n"
    "  end\n"
    "  for _, line in ipairs(form.lines) do\n"
    "    if line.kind == 'travel' then\n"
    "      table.insert(r.approvers, 'travel@a.test')\n"
    "    end\n"
    "  end\n"
    "  table.insert(r.approvers, form.dept .. '-lead@a.test')\n"
    "  r.next = r.approvers[1]\n"
    "  r.count = #r.approvers\n"
    "  r.share = form.amount / 4\n"
    "  r.urgent = form.urgent == true\n"
    "  return r\n"
    "end\n"
    "function M.echo(x) return x end\n"
    "function M.nothing() end\n"
    "M.not_a_function = 42\n"
    "return M\n";

static wse_luabox_value *
expense_form(int64_t amount)
{
	wse_luabox_value *f = wse_luabox_map(), *lines = wse_luabox_array();
	wse_luabox_value *l1 = wse_luabox_map(), *l2 = wse_luabox_map();

	assert_non_null(f);
	assert_wse_ok(wse_luabox_map_set(l1, "kind", wse_luabox_str("hotel")));
	assert_wse_ok(wse_luabox_map_set(l2, "kind", wse_luabox_str("travel")));
	assert_wse_ok(wse_luabox_array_push(lines, l1));
	assert_wse_ok(wse_luabox_array_push(lines, l2));
	assert_wse_ok(wse_luabox_map_set(f, "amount",
	    wse_luabox_integer(amount)));
	assert_wse_ok(wse_luabox_map_set(f, "dept", wse_luabox_str("sales")));
	assert_wse_ok(wse_luabox_map_set(f, "lines", lines));
	assert_wse_ok(wse_luabox_map_set(f, "urgent", wse_luabox_boolean(1)));
	return f;
}

static void
test_routing(void **state)
{
	wse_luabox *b = box(router_src);
	wse_luabox_value *form = expense_form(2500), *r = NULL;
	const wse_luabox_value *a, *v;

	(void)state;
	assert_true(wse_luabox_has(b, "route"));
	assert_true(wse_luabox_has(b, "echo"));
	assert_false(wse_luabox_has(b, "not_a_function"));
	assert_false(wse_luabox_has(b, "missing"));

	assert_wse_ok(wse_luabox_call(b, "route", form, &r));
	assert_int_equal(r->type, WSE_LUABOX_MAP);
	/* keys sorted bytewise */
	assert_int_equal(r->n, 5);
	assert_string_equal(r->keys[0], "approvers");
	assert_string_equal(r->keys[1], "count");
	assert_string_equal(r->keys[2], "next");
	assert_string_equal(r->keys[3], "share");
	assert_string_equal(r->keys[4], "urgent");
	a = wse_luabox_map_get(r, "approvers");
	assert_non_null(a);
	assert_int_equal(a->type, WSE_LUABOX_ARRAY);
	assert_int_equal(a->n, 3);
	assert_string_equal(a->items[0]->str, "manager@b.test");
	assert_string_equal(a->items[1]->str, "travel@a.test");
	assert_string_equal(a->items[2]->str, "sales-lead@a.test");
	assert_string_equal(sval(r, "next"), "manager@b.test");
	v = wse_luabox_map_get(r, "count");
	assert_int_equal(v->type, WSE_LUABOX_INTEGER);
	assert_int_equal(v->integer, 3);
	v = wse_luabox_map_get(r, "share");
	assert_int_equal(v->type, WSE_LUABOX_NUMBER);
	assert_true(v->number == 625.0);
	v = wse_luabox_map_get(r, "urgent");
	assert_int_equal(v->type, WSE_LUABOX_BOOLEAN);
	assert_int_equal(v->boolean, 1);
	wse_luabox_value_free(&r);
	wse_luabox_value_free(&form);

	/* a small amount: no manager */
	form = expense_form(10);
	assert_wse_ok(wse_luabox_call(b, "route", form, &r));
	assert_string_equal(sval(r, "next"), "travel@a.test");
	wse_luabox_value_free(&r);
	wse_luabox_value_free(&form);

	/* nothing returned: nil */
	r = call0(b, "nothing", WSE_OK);
	assert_int_equal(r->type, WSE_LUABOX_NIL);
	wse_luabox_value_free(&r);

	/* no such entry point, or not a function */
	call0(b, "missing", WSE_ERR_INVALID);
	assert_err_has("no function 'missing'");
	call0(b, "not_a_function", WSE_ERR_INVALID);
	assert_err_has("no function");
	call0(b, "bad name", WSE_ERR_INVALID);
	assert_err_has("bad entry point name");
	wse_luabox_free(&b);
	assert_null(b);
	wse_luabox_free(&b);
}

static void
test_echo_values(void **state)
{
	wse_luabox *b = box(router_src);
	wse_luabox_value *m = wse_luabox_map(), *arr = wse_luabox_array();
	wse_luabox_value *r = NULL;
	const wse_luabox_value *v;

	(void)state;
	assert_wse_ok(wse_luabox_map_set(m, "bin",
	    wse_luabox_string("a\0b", 3)));
	assert_wse_ok(wse_luabox_map_set(m, "pi", wse_luabox_number(3.25)));
	assert_wse_ok(wse_luabox_map_set(m, "big",
	    wse_luabox_integer(INT64_MAX)));
	assert_wse_ok(wse_luabox_map_set(m, "no", wse_luabox_boolean(0)));
	assert_wse_ok(wse_luabox_map_set(m, "gone", wse_luabox_nil()));
	assert_wse_ok(wse_luabox_map_set(m, "empty", wse_luabox_array()));
	assert_wse_ok(wse_luabox_array_push(arr, wse_luabox_integer(1)));
	assert_wse_ok(wse_luabox_array_push(arr, wse_luabox_str("two")));
	assert_wse_ok(wse_luabox_map_set(m, "list", arr));
	/* replacing a key frees the old value */
	assert_wse_ok(wse_luabox_map_set(m, "no", wse_luabox_boolean(0)));
	/* constructor failure propagates as NOMEM; type errors */
	assert_wse_status(wse_luabox_map_set(m, "x", NULL), WSE_ERR_NOMEM);
	assert_wse_status(wse_luabox_array_push(m, wse_luabox_nil()),
	    WSE_ERR_INVALID);
	wse_err_clear();

	assert_wse_ok(wse_luabox_call(b, "echo", m, &r));
	assert_int_equal(r->type, WSE_LUABOX_MAP);
	/* a nil value is an absent key in Lua */
	assert_null(wse_luabox_map_get(r, "gone"));
	v = wse_luabox_map_get(r, "bin");
	assert_int_equal(v->len, 3);
	assert_memory_equal(v->str, "a\0b", 3);
	assert_true(wse_luabox_map_get(r, "pi")->number == 3.25);
	assert_true(wse_luabox_map_get(r, "big")->integer == INT64_MAX);
	assert_int_equal(wse_luabox_map_get(r, "no")->boolean, 0);
	/* an empty table comes back as an empty map */
	v = wse_luabox_map_get(r, "empty");
	assert_int_equal(v->type, WSE_LUABOX_MAP);
	assert_int_equal(v->n, 0);
	v = wse_luabox_map_get(r, "list");
	assert_int_equal(v->type, WSE_LUABOX_ARRAY);
	assert_int_equal(v->n, 2);
	assert_int_equal(v->items[0]->integer, 1);
	assert_string_equal(v->items[1]->str, "two");
	wse_luabox_value_free(&r);
	wse_luabox_value_free(&m);

	/* a scalar argument and result */
	m = wse_luabox_str("hello");
	assert_wse_ok(wse_luabox_call(b, "echo", m, &r));
	assert_string_equal(r->str, "hello");
	wse_luabox_value_free(&r);
	wse_luabox_value_free(&m);
	wse_luabox_free(&b);
}

/* ---- what a plugin sees ---- */

static void
test_environment(void **state)
{
	static const char src[] =
	    "local M = {}\n"
	    "function M.env()\n"
	    "  return { io = type(io), os = type(os),\n"
	    "    package = type(package), debug = type(debug),\n"
	    "    coroutine = type(coroutine), require = type(require),\n"
	    "    load = type(load), dofile = type(dofile),\n"
	    "    loadfile = type(loadfile), loadstring = type(loadstring),\n"
	    "    collectgarbage = type(collectgarbage), print = type(print),\n"
	    "    warn = type(warn), dump = type(string.dump),\n"
	    "    method_dump = type(('').dump),\n"
	    "    mt_dump = type(getmetatable('').__index.dump) }\n"
	    "end\n"
	    "function M.present()\n"
	    "  return { type(string.format), type(table.concat),\n"
	    "    type(math.floor), type(utf8.char), type(pcall),\n"
	    "    type(setmetatable), type(rawget), type(math.random),\n"
	    "    type(tostring), type(select) }\n"
	    "end\n"
	    "function M.work(s)\n"
	    "  local words = {}\n"
	    "  for w in s:gmatch('%a+') do words[#words + 1] = w:upper() end\n"
	    "  table.sort(words)\n"
	    "  local a, b = s:match('^(%d+)-(%d+)')\n"
	    "  local ok, err = pcall(error, 'caught')\n"
	    "  local t = setmetatable({}, { __index = function(_, k)\n"
	    "    return k .. '!' end })\n"
	    "  return { joined = table.concat(words, ','),\n"
	    "    squeezed = (s:gsub('%s+', ' ')),\n"
	    "    plain = s:find('.', 1, true) or 0,\n"
	    "    a = tonumber(a), b = tonumber(b), err = err, ok = ok,\n"
	    "    meta = t.x, fmt = string.format('%05.1f', 3.14159),\n"
	    "    len = utf8.len('h\\u{e9}llo'), empty = ('' ):rep(3),\n"
	    "    sum = math.max(1, 7, 3) }\n"
	    "end\n"
	    "return M\n";
	wse_luabox *b = box(src);
	wse_luabox_value *r, *arg;
	size_t i;

	(void)state;
	r = call0(b, "env", WSE_OK);
	assert_int_equal(r->type, WSE_LUABOX_MAP);
	assert_int_equal(r->n, 16);
	for (i = 0; i < r->n; i++)
		if (strcmp(r->items[i]->str, "nil") != 0)
			fail_msg("%s is available: %s", r->keys[i],
			    r->items[i]->str);
	wse_luabox_value_free(&r);

	r = call0(b, "present", WSE_OK);
	assert_int_equal(r->type, WSE_LUABOX_ARRAY);
	assert_int_equal(r->n, 10);
	for (i = 0; i < r->n; i++)
		assert_string_equal(r->items[i]->str, "function");
	wse_luabox_value_free(&r);

	arg = wse_luabox_str("12-34  zeta   alpha.  beta");
	assert_wse_ok(wse_luabox_call(b, "work", arg, &r));
	assert_string_equal(sval(r, "joined"), "ALPHA,BETA,ZETA");
	assert_string_equal(sval(r, "squeezed"), "12-34 zeta alpha. beta");
	assert_int_equal(wse_luabox_map_get(r, "plain")->integer, 20);
	assert_int_equal(wse_luabox_map_get(r, "a")->integer, 12);
	assert_int_equal(wse_luabox_map_get(r, "b")->integer, 34);
	assert_int_equal(wse_luabox_map_get(r, "ok")->boolean, 0);
	assert_string_equal(sval(r, "err"), "caught");
	assert_string_equal(sval(r, "meta"), "x!");
	assert_string_equal(sval(r, "fmt"), "003.1");
	assert_int_equal(wse_luabox_map_get(r, "len")->integer, 5);
	assert_string_equal(sval(r, "empty"), "");
	assert_int_equal(wse_luabox_map_get(r, "sum")->integer, 7);
	wse_luabox_value_free(&r);
	wse_luabox_value_free(&arg);
	wse_luabox_free(&b);
}

/* Refused library uses: each entry point must fail with its message. */
static void
test_refused_library_uses(void **state)
{
	static const char src[] =
	    "local M = {}\n"
	    "function M.gc() return setmetatable({}, { __gc = function()\n"
	    "  while true do end end }) end\n"
	    "function M.len() local t = setmetatable({}, { __len =\n"
	    "  function() return math.maxinteger - 1 end })\n"
	    "  table.insert(t, 1, 'x') end\n"
	    "function M.csort() local t = {3, 1, 2}\n"
	    "  table.sort(t, rawequal) return t end\n"
	    "function M.sort() local t = {3, 1, 2}\n"
	    "  table.sort(t) return t end\n"
	    "function M.getloaded() return _G._LOADED end\n"
	    "return M\n";
	wse_luabox *b = box(src);
	wse_luabox_value *r;

	(void)state;
	call0(b, "gc", WSE_ERR_INVALID);
	assert_err_has("__gc");
	call0(b, "len", WSE_ERR_INVALID);
	assert_err_has("refuse tables with a metatable");
	call0(b, "csort", WSE_ERR_INVALID);
	assert_err_has("Lua function expected");
	r = call0(b, "sort", WSE_OK);
	assert_int_equal(r->n, 3);
	assert_int_equal(r->items[0]->integer, 1);
	assert_int_equal(r->items[2]->integer, 3);
	wse_luabox_value_free(&r);
	r = call0(b, "getloaded", WSE_OK);
	assert_int_equal(r->type, WSE_LUABOX_NIL);
	wse_luabox_value_free(&r);
	wse_luabox_free(&b);
}

/* ---- the work and time bounds ---- */

static void
test_infinite_loops(void **state)
{
	static const char src[] =
	    "local M = {}\n"
	    "function M.spin() while true do end end\n"
	    "function M.catch()\n"
	    "  for i = 1, 100 do pcall(function() while true do end end) end\n"
	    "  return 'escaped'\n"
	    "end\n"
	    "function M.xcatch()\n"
	    "  while true do\n"
	    "    xpcall(function() while true do end end,\n"
	    "      function(e) while true do end end)\n"
	    "  end\n"
	    "end\n"
	    "function M.recurse() local function f(n) return f(n + 1) end\n"
	    "  return f(1) end\n"
	    "function M.echo(x) return x end\n"
	    "return M\n";
	wse_luabox *b = NULL;
	wse_luabox_value *r;
	double t0;
	const char *loop = "while true do end";
	const char *ploop = "while true do pcall(function() "
	    "while true do end end) end";

	(void)state;
	/* top level: no box */
	t0 = testutil_now_ms();
	assert_wse_status(wse_luabox_new(loop, strlen(loop), "loop", NULL, &b),
	    WSE_ERR_TOO_LARGE);
	assert_null(b);
	assert_err_has("instruction limit (10000000) exceeded");
	assert_wse_status(wse_luabox_new(ploop, strlen(ploop), "loop", NULL,
	    &b), WSE_ERR_TOO_LARGE);
	assert_err_has("instruction limit");
	assert_true(testutil_now_ms() - t0 < 5000);

	/* inside entry points: stopped, and the box goes on */
	b = box(src);
	call0(b, "spin", WSE_ERR_TOO_LARGE);
	assert_err_has("spin(): instruction limit");
	call0(b, "catch", WSE_ERR_TOO_LARGE);
	assert_err_has("instruction limit");
	call0(b, "xcatch", WSE_ERR_TOO_LARGE);
	assert_err_has("instruction limit");
	/* unbounded recursion: a Lua error (stack) or the memory cap */
	assert_int_not_equal(wse_luabox_call(b, "recurse", NULL, &r), WSE_OK);
	wse_err_clear();
	r = call0(b, "echo", WSE_OK);
	assert_int_equal(r->type, WSE_LUABOX_NIL);
	wse_luabox_value_free(&r);
	wse_luabox_free(&b);
}

static void
test_time_limit(void **state)
{
	/* Each concatenation copies 1 MiB in one instruction: few
	 * instructions, much time. */
	static const char src[] =
	    "local M = {}\n"
	    "local s = string.rep('x', 1 << 20)\n"
	    "function M.copy() while true do local t = s .. 'y' end end\n"
	    "function M.ok() return 1 end\n"
	    "return M\n";
	wse_luabox *b = box_lim(src, 16u << 20, UINT64_MAX / 2, 100);
	wse_luabox_value *r;
	double t0 = testutil_now_ms();

	(void)state;
	call0(b, "copy", WSE_ERR_TOO_LARGE);
	assert_err_has("time limit (100 ms) exceeded");
	assert_true(testutil_now_ms() - t0 < 2000);
	r = call0(b, "ok", WSE_OK);
	wse_luabox_value_free(&r);
	wse_luabox_free(&b);
}

static void
test_costly_patterns(void **state)
{
	static const char src[] =
	    "local M = {}\n"
	    "local a = string.rep('a', 100000)\n"
	    "function M.nested() return a:find('.-.-.-.-b') end\n"
	    "function M.greedy() return a:match('(a*)(a*)(a*)b') end\n"
	    "function M.gsub() return (a:gsub('', ('%0'):rep(400000))) end\n"
	    "function M.plain() return a:find(a:sub(50001) .. 'b', 1, true)\n"
	    "end\n"
	    "function M.words() local n = 0\n"
	    "  for w in a:gmatch('a+') do n = n + 1 end return n end\n"
	    "function M.rep() return #string.rep('', math.maxinteger) end\n"
	    "function M.move() return table.move({}, 1, math.maxinteger, 1)\n"
	    "end\n"
	    "local text = string.rep('lorem ipsum  dolor, ', 5000)\n"
	    "function M.fine()\n"
	    "  local n = 0\n"
	    "  for w in text:gmatch('%a+') do n = n + 1 end\n"
	    "  return { n, (a:gsub('a', 'b')):sub(1, 3),\n"
	    "    a:find('b') == nil, select(2, text:gsub('%s+', ' ')),\n"
	    "    text:find('dolor,', 1, true), text:match('^(%a+) (%a+)'),\n"
	    "    select(2, text:gsub('[^,]+', '')) }\n"
	    "end\n"
	    "return M\n";
	wse_luabox *b = box(src);
	wse_luabox_value *r;
	double t0 = testutil_now_ms();

	(void)state;
	call0(b, "nested", WSE_ERR_TOO_LARGE);
	assert_err_has("instruction limit");
	call0(b, "greedy", WSE_ERR_TOO_LARGE);
	assert_err_has("instruction limit");
	call0(b, "gsub", WSE_ERR_TOO_LARGE);
	assert_err_has("instruction limit");
	call0(b, "plain", WSE_ERR_TOO_LARGE);
	assert_err_has("instruction limit");
	/* the bound is a worst case: a quantifier over one 100000-byte run
	 * is refused even where the real scan would have been short */
	call0(b, "words", WSE_ERR_TOO_LARGE);
	assert_err_has("instruction limit");
	call0(b, "move", WSE_ERR_TOO_LARGE);
	assert_err_has("instruction limit");
	r = call0(b, "rep", WSE_OK);
	assert_int_equal(r->integer, 0);
	wse_luabox_value_free(&r);
	assert_true(testutil_now_ms() - t0 < 3000);
	/* ordinary patterns on the same subject are fine */
	r = call0(b, "fine", WSE_OK);
	assert_int_equal(r->type, WSE_LUABOX_ARRAY);
	assert_int_equal(r->n, 7);
	assert_int_equal(r->items[0]->integer, 15000);
	assert_string_equal(r->items[1]->str, "bbb");
	assert_int_equal(r->items[2]->boolean, 1);
	assert_int_equal(r->items[3]->integer, 15000);
	assert_int_equal(r->items[4]->integer, 14);
	assert_string_equal(r->items[5]->str, "lorem");
	assert_int_equal(r->items[6]->integer, 5001);
	wse_luabox_value_free(&r);
	wse_luabox_free(&b);
}

/* ---- the memory cap ---- */

static void
test_memory_bombs(void **state)
{
	static const char src[] =
	    "local M = {}\n"
	    "local keep = {}\n"
	    "function M.rep() return #string.rep('x', 1 << 30) end\n"
	    "function M.concat() local s = 'x'\n"
	    "  while true do s = s .. s end end\n"
	    "function M.table() local t = {}\n"
	    "  for i = 1, 1e9 do t[i] = i end end\n"
	    "function M.strings() local t = {}\n"
	    "  while true do t[#t + 1] = ('x'):rep(1000) .. #t end end\n"
	    "function M.hoard() for i = 1, 1e9 do keep[i] = {} end end\n"
	    "function M.release() keep = nil end\n"
	    "function M.caught()\n"
	    "  local ok, err = pcall(string.rep, 'x', 1 << 30)\n"
	    "  return { ok = ok, err = err }\n"
	    "end\n"
	    "function M.ok() return 'fine' end\n"
	    "return M\n";
	wse_luabox *b = box(src);
	wse_luabox_value *r;
	size_t base = wse_luabox_memory(b);
	const char *fns[] = { "rep", "concat", "table", "strings" };
	size_t i;

	(void)state;
	assert_true(base > 0);
	assert_true(base < WSE_LUABOX_DEFAULT_MEMORY / 8);
	for (i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		call0(b, fns[i], WSE_ERR_TOO_LARGE);
		assert_err_has("memory limit (8388608 bytes) exceeded");
		assert_true(wse_luabox_memory(b) <= WSE_LUABOX_DEFAULT_MEMORY);
		r = call0(b, "ok", WSE_OK);
		assert_string_equal(r->str, "fine");
		wse_luabox_value_free(&r);
		/* the garbage is collected after the failure */
		assert_true(wse_luabox_memory(b) < base * 4);
	}
	/* the plugin may catch an allocation it cannot have */
	r = call0(b, "caught", WSE_OK);
	assert_int_equal(wse_luabox_map_get(r, "ok")->boolean, 0);
	assert_string_equal(sval(r, "err"), "not enough memory");
	wse_luabox_value_free(&r);
	/* memory the plugin keeps stays used until it lets go */
	call0(b, "hoard", WSE_ERR_TOO_LARGE);
	assert_err_has("memory limit");
	assert_true(wse_luabox_memory(b) > WSE_LUABOX_DEFAULT_MEMORY / 2);
	r = call0(b, "release", WSE_OK);
	wse_luabox_value_free(&r);
	r = call0(b, "strings", WSE_ERR_TOO_LARGE);	/* collects first */
	wse_err_clear();
	r = call0(b, "ok", WSE_OK);
	wse_luabox_value_free(&r);
	assert_true(wse_luabox_memory(b) < base * 4);
	wse_luabox_free(&b);
}

static void
test_memory_at_load(void **state)
{
	wse_luabox_limits lim = { 64u << 10, 0, 0 };
	wse_luabox *b = NULL;
	size_t n = 200000, i;
	char *src = malloc(n + 32);

	(void)state;
	assert_non_null(src);
	/* a long string literal: the lexer needs more than the cap */
	strcpy(src, "return { s = '");
	for (i = strlen(src); i < n; i++)
		src[i] = 'x';
	strcpy(src + n, "' }");
	assert_wse_status(wse_luabox_new(src, strlen(src), "big", &lim, &b),
	    WSE_ERR_TOO_LARGE);
	assert_null(b);
	assert_err_has("memory limit (65536 bytes)");
	/* top-level memory bomb */
	strcpy(src, "local t = {} for i = 1, 1e9 do t[i] = i end return t");
	assert_wse_status(wse_luabox_new(src, strlen(src), "bomb", NULL, &b),
	    WSE_ERR_TOO_LARGE);
	assert_err_has("memory limit");
	/* a cap too small to make sense */
	lim.max_memory = 1000;
	strcpy(src, "return {}");
	assert_wse_status(wse_luabox_new(src, strlen(src), "tiny", &lim, &b),
	    WSE_ERR_INVALID);
	wse_err_clear();
	free(src);
}

/* ---- bad code ---- */

struct dumpbuf {
	char *p;
	size_t len;
};

static int
writer(lua_State *L, const void *p, size_t sz, void *ud)
{
	struct dumpbuf *d = ud;
	char *n;

	(void)L;
	if ((n = realloc(d->p, d->len + sz + 2)) == NULL)
		return 1;
	memcpy(n + d->len, p, sz);
	d->p = n;
	d->len += sz;
	return 0;
}

static void
test_binary_chunk(void **state)
{
	lua_State *L = luaL_newstate();
	struct dumpbuf d = { NULL, 0 };
	wse_luabox *b = NULL;

	(void)state;
	assert_non_null(L);
	luaL_openlibs(L);
	assert_int_equal(luaL_loadstring(L,
	    "return { f = function() return 1 end }"), LUA_OK);
	assert_int_equal(lua_dump(L, writer, &d, 0), 0);
	lua_close(L);
	assert_true(d.len > 4);
	assert_int_equal((unsigned char)d.p[0], 0x1b);

	assert_wse_status(wse_luabox_new(d.p, d.len, "bin", NULL, &b),
	    WSE_ERR_INVALID);
	assert_null(b);
	assert_err_has("binary (precompiled) chunks are refused");
	/* not at the very start: then it is no valid text either */
	memmove(d.p + 1, d.p, d.len);
	d.p[0] = ' ';
	assert_wse_status(wse_luabox_new(d.p, d.len + 1, "bin", NULL, &b),
	    WSE_ERR_INVALID);
	assert_null(b);
	wse_err_clear();
	free(d.p);
}

static void
test_bad_code(void **state)
{
	static const struct {
		const char *src;
		const char *msg;
	} cases[] = {
		{ "return {", "bad:1:" },
		{ "local x = = 1", "bad:1:" },
		{ "error('refused at load')", "refused at load" },
		{ "return 42", "returned number, not a table" },
		{ "", "returned nil, not a table" },
		{ "local t = nil\nreturn t.x", "bad:2: attempt to index" },
		{ "return require('os')", "attempt to call a nil value" },
		{ "return load('return 1')", "attempt to call a nil value" },
		{ "error({})", "error object is a table value" },
		{ "error('a\\0b\\nc')", "a?b?c" },
	};
	wse_luabox *b = NULL;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_wse_status(wse_luabox_new(cases[i].src,
		    strlen(cases[i].src), "bad", NULL, &b), WSE_ERR_INVALID);
		assert_null(b);
		assert_err_has(cases[i].msg);
	}
	/* the name is cleaned for messages */
	assert_wse_status(wse_luabox_new("return 1", 8, "a b\n/c", NULL, &b),
	    WSE_ERR_INVALID);
	assert_err_has("plugin a?b??c:");
}

static void
test_runtime_errors(void **state)
{
	static const char src[] =
	    "local M = {}\n"
	    "function M.fail(form)\n"
	    "  if form.amount == nil then error('amount missing') end\n"
	    "end\n"
	    "function M.index() local x\n"
	    "  return x.y end\n"
	    "function M.ok() return true end\n"
	    "return M\n";
	wse_luabox *b = box(src);
	wse_luabox_value *arg = wse_luabox_map(), *r;

	(void)state;
	assert_wse_status(wse_luabox_call(b, "fail", arg, &r),
	    WSE_ERR_INVALID);
	assert_null(r);
	assert_err_has("plugin test: fail(): test:3: amount missing");
	call0(b, "index", WSE_ERR_INVALID);
	assert_err_has("test:6: attempt to index a nil value");
	r = call0(b, "ok", WSE_OK);
	assert_int_equal(r->boolean, 1);
	wse_luabox_value_free(&r);
	wse_luabox_value_free(&arg);
	wse_luabox_free(&b);
}

/* ---- result shapes ---- */

static void
test_bad_results(void **state)
{
	static const char src[] =
	    "local M = {}\n"
	    "function M.cycle() local t = {} t.self = t return t end\n"
	    "function M.cycle2() local a, b = {}, {} a[1] = b b[1] = a\n"
	    "  return a end\n"
	    "local function nest(n) local t = {} local c = t\n"
	    "  for i = 2, n do c.x = {} c = c.x end return t end\n"
	    "function M.deep16() return nest(16) end\n"
	    "function M.deep17() return nest(17) end\n"
	    "function M.shared() local s = {1} return {s, s, s} end\n"
	    "function M.fn() return { f = print or function() end } end\n"
	    "function M.many() local t = {} for i = 1, 10001 do t[i] = i end\n"
	    "  return t end\n"
	    "function M.nodes() local t = {} for i = 1, 5000 do\n"
	    "  t[i] = {i} end return t end\n"
	    "function M.mixed() return { 1, 2, x = 3 } end\n"
	    "function M.holes() return { 1, nil, 3 } end\n"
	    "function M.zero() return { [0] = 1 } end\n"
	    "function M.floatkey() return { [1.5] = 1 } end\n"
	    "function M.boolkey() return { [true] = 1 } end\n"
	    "function M.nan() return 0/0 end\n"
	    "function M.inf() return { x = math.huge } end\n"
	    "local big = string.rep('x', (1 << 20) + 1)\n"
	    "local meg = string.rep('y', 1 << 20)\n"
	    "function M.bigstr() return big end\n"
	    "function M.bigkey() return { [big] = 1 } end\n"
	    "function M.total() return { meg, meg, meg, meg, meg } end\n"
	    "function M.four() return { meg, meg, meg, 'z' } end\n"
	    "return M\n";
	static const struct {
		const char *fn;
		const char *msg;
	} bad[] = {
		{ "cycle", "a cycle" },
		{ "cycle2", "a cycle" },
		{ "deep17", "nested deeper than 16" },
		{ "fn", "a function cannot leave" },
		{ "many", "more than 10000 values" },
		{ "nodes", "more than 10000 values" },
		{ "mixed", "mixes array and map keys" },
		{ "holes", "holes" },
		{ "zero", "non-positive or fractional number" },
		{ "floatkey", "non-positive or fractional number" },
		{ "boolkey", "key that is a boolean" },
		{ "nan", "not finite" },
		{ "inf", "not finite" },
		{ "bigstr", "string of 1048577 bytes" },
		{ "bigkey", "key of 1048577 bytes" },
		{ "total", "more than 4194304 bytes of strings" },
	};
	wse_luabox *b = box_lim(src, 32u << 20, 0, 0);
	wse_luabox_value *r;
	size_t i;
	int d;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		call0(b, bad[i].fn, WSE_ERR_INVALID);
		assert_err_has(bad[i].msg);
	}
	r = call0(b, "deep16", WSE_OK);
	{
		const wse_luabox_value *c = r;

		for (d = 1; d < 16; d++) {
			assert_int_equal(c->type, WSE_LUABOX_MAP);
			c = wse_luabox_map_get(c, "x");
			assert_non_null(c);
		}
		assert_int_equal(c->type, WSE_LUABOX_MAP);
		assert_int_equal(c->n, 0);
	}
	wse_luabox_value_free(&r);
	/* a table reached twice (not a cycle) is copied twice */
	r = call0(b, "shared", WSE_OK);
	assert_int_equal(r->n, 3);
	assert_int_equal(r->items[2]->items[0]->integer, 1);
	wse_luabox_value_free(&r);
	r = call0(b, "four", WSE_OK);
	assert_int_equal(r->n, 4);
	wse_luabox_value_free(&r);
	wse_luabox_free(&b);
}

static void
test_bad_arguments(void **state)
{
	wse_luabox *b = box(router_src);
	wse_luabox_value *a = wse_luabox_array(), *c = a, *r = NULL;
	int i;

	(void)state;
	/* 17 nested arrays */
	for (i = 1; i < 17; i++) {
		wse_luabox_value *n = wse_luabox_array();

		assert_wse_ok(wse_luabox_array_push(c, n));
		c = n;
	}
	assert_wse_status(wse_luabox_call(b, "echo", a, &r), WSE_ERR_TOO_LARGE);
	assert_err_has("deeper than 16");
	wse_luabox_value_free(&a);
	a = wse_luabox_array();
	for (i = 0; i < 10001; i++)
		assert_wse_ok(wse_luabox_array_push(a, wse_luabox_boolean(1)));
	assert_wse_status(wse_luabox_call(b, "echo", a, &r), WSE_ERR_TOO_LARGE);
	assert_err_has("more than 10000 values");
	wse_luabox_value_free(&a);
	wse_luabox_free(&b);
}

/* ---- many boxes, many calls (ASan: no leak) ---- */

static void
test_many(void **state)
{
	wse_luabox *b;
	wse_luabox_value *form, *r;
	int i;

	(void)state;
	for (i = 0; i < 100; i++) {
		b = box(router_src);
		form = expense_form(i * 50);
		assert_wse_ok(wse_luabox_call(b, "route", form, &r));
		wse_luabox_value_free(&r);
		call0(b, "missing", WSE_ERR_INVALID);
		wse_err_clear();
		wse_luabox_value_free(&form);
		wse_luabox_free(&b);
	}
	b = box(router_src);
	form = expense_form(5000);
	for (i = 0; i < 2000; i++) {
		assert_wse_ok(wse_luabox_call(b, "route", form, &r));
		assert_int_equal(wse_luabox_map_get(r, "count")->integer, 3);
		wse_luabox_value_free(&r);
	}
	wse_luabox_value_free(&form);
	wse_luabox_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routing),
		cmocka_unit_test(test_echo_values),
		cmocka_unit_test(test_environment),
		cmocka_unit_test(test_refused_library_uses),
		cmocka_unit_test(test_infinite_loops),
		cmocka_unit_test(test_time_limit),
		cmocka_unit_test(test_costly_patterns),
		cmocka_unit_test(test_memory_bombs),
		cmocka_unit_test(test_memory_at_load),
		cmocka_unit_test(test_binary_chunk),
		cmocka_unit_test(test_bad_code),
		cmocka_unit_test(test_runtime_errors),
		cmocka_unit_test(test_bad_results),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
