/*
 * formtype.h - a routed form's type: its signed Lua plugin, fetched on
 * demand, checked against the installer's trusted publishers and the
 * digest the form names, and run in the sandbox (luabox.h).  Shared by
 * the server's forms plugin (routers, final party) and the client
 * (`wsemail form ...`).  docs/forms.md "Form types" is the guide.
 *
 * A form names its type's plugin in its signed content: an https URL and
 * the SHA-256 of the plugin file (f:Plugin sha256="...").  The publisher's
 * signature file is at the same URL plus ".sig" (pubsig.h).  A party that
 * needs the type:
 *   1. looks in its cache directory for "<sha256>.lua" (and its ".sig");
 *   2. otherwise GETs both over HTTPS (bounded: 1 MiB plugin, 64 KiB
 *      signature, short timeouts);
 *   3. accepts the plugin only when the file's SHA-256 is the form's, the
 *      signature verifies under one of ITS OWN trusted publisher
 *      certificates (wse_pubsig_verify), and the signed name equals the
 *      form's type name; the cache holds only accepted plugins (written
 *      atomically, mode 0644), and a cached file is checked again on
 *      every load: a copy refused then (altered on disk, its publisher
 *      no longer trusted) is never used, and is replaced by a download
 *      that passes every check when fetching is on;
 *   4. runs it in a fresh sandbox per form (limits from the caller).
 * Any failure leaves the form untouched; the message on the error stack
 * says which step refused it ("plugin expense: untrusted publisher
 * CN=...", "digest mismatch", "instruction limit ... exceeded").
 *
 * The plugin (Lua 5.4 source, see docs/plugins-lua.md for the sandbox)
 * returns a table with these entry points:
 *   definition()  -> { name=, version=, title=, fields = { {name=, type=
 *                    "text"|"decimal"|"integer"|"date"|"mailbox", label=,
 *                    required=bool}, ... }, route = { "b.test",
 *                    "c5@c.test", ... } (optional: hops, '@' = approver),
 *                    final = "c.test" (optional) }
 *   route(form)   -> array of approver mailboxes a router inserts (may be
 *                    empty: {} or nil)
 *   check(form)   -> true when the form satisfies the type's constraints,
 *                    else a string, the reason (error() also refuses)
 *   present(form) -> array of strings, the lines a client shows (optional)
 * where `form` is the value wse_formtype_form_value builds.
 */
#ifndef WSE_FORMTYPE_H
#define WSE_FORMTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "form.h"
#include "http.h"
#include "luabox.h"
#include "msg.h"
#include "pki.h"
#include "pubsig.h"

/* How a form travels between parties: as an inline attachment of a
 * signed mail message, to the next party's address (below). */
#define WSE_FORM_MEDIA_TYPE	"application/vnd.wsemail.form+xml"
#define WSE_FORM_ATTACHMENT	"form.xml"
#define WSE_FORM_MAILBOX	"forms"	/* a domain's forms service mailbox
					 * (the forms plugin's default) */

#define WSE_FORMTYPE_MAX_PLUGIN	(1u << 20)	/* plugin file, bytes */
#define WSE_FORMTYPE_MAX_PARAMS	64
#define WSE_FORMTYPE_MAX_LINES	200		/* present() */

/* Where and how a party gets and trusts form-type plugins.  Borrowed. */
typedef struct wse_formtype_env {
	const char *cache_dir;		/* existing directory, required */
	wse_http_client *http;		/* NULL: never fetch (cache only) */
	const char *connect_addr;	/* numeric address to connect to
					 * instead of resolving the URL's
					 * host (tests), or NULL */
	wse_cert *const *publishers;	/* trusted publisher certificates */
	size_t npublishers;
	wse_luabox_limits limits;	/* per box; zeros: luabox defaults */
	int64_t now;			/* for the publisher certificate */
} wse_formtype_env;

/* One loaded, verified form type. */
typedef struct wse_formtype wse_formtype;

/*
 * Get the plugin of the type named in content (from the cache or by
 * fetching it), verify it as described above and load it into a new
 * sandbox.  WSE_ERR_UNTRUSTED (publisher not trusted, not code signing),
 * WSE_ERR_BAD_SIGNATURE (signature or digest: tampered), WSE_ERR_INVALID
 * (unsigned, malformed, the signed name is another type's, the chunk
 * fails), WSE_ERR_TEMPFAIL (fetch failed: network, HTTP status),
 * WSE_ERR_TOO_LARGE (a limit while running the chunk, a file too large),
 * WSE_ERR_CERT_EXPIRED ...; WSE_ERR_NOT_FOUND when env->http is NULL and
 * the cache has no copy; WSE_ERR_IO when the cache cannot be read.  The
 * newest message on the error stack alone names the plugin, its URL and
 * the reason ("plugin expense from https://...: untrusted publisher
 * CN=Other Forms"); older ones give details.  A cache that cannot be
 * written does not fail the load (the next load downloads again).
 */
wse_status wse_formtype_load(const wse_formtype_env *env,
    const wse_form_content *content, wse_formtype **ft_r);

/* The same from bytes at hand (a client's --plugin FILE, tests):
 * file and sig verified as above against expect_name (NULL: any name)
 * and expect_sha256 (NULL: not pinned); sig NULL or siglen 0: unsigned
 * (refused).  No cache, no network. */
wse_status wse_formtype_load_bytes(const wse_formtype_env *env,
    const void *file, size_t len, const char *sig, size_t siglen,
    const char *expect_name, const char *expect_sha256,
    wse_formtype **ft_r);

void wse_formtype_free(wse_formtype **ft);

/* What the signature said (name, version, sha256, publisher).  Borrowed. */
const wse_pubsig_info *wse_formtype_info(const wse_formtype *ft);

/*
 * The value handed to route/check/present: a MAP
 *   id, type, version, claimant, final (strings), submitted (integer),
 *   fields   = { <name> = value }: decimal -> number, integer -> integer,
 *              text/date/mailbox -> string
 *   text     = { <name> = the field's exact text }
 *   route    = { {kind="router"|"approver", name=}, ... } effective route
 *   approvals = { {approver=, signer=, position=, time=}, ... } (report)
 *   outcome  = "pending"|"approved"|"rejected"
 *   party    = who runs the plugin (a domain or mailbox), or absent
 *   params   = { <key> = <value> } from the caller's configuration
 * report may be NULL (no approvals); params may be NULL.  The form must
 * have passed wse_form_verify (or be a draft/own form).
 */
wse_status wse_formtype_form_value(const wse_form *form,
    const wse_form_report *report, const char *party,
    const char *const *param_keys, const char *const *param_values,
    size_t nparams, wse_luabox_value **v_r);

/* route(form): the approvers to insert, as a malloc'd array of malloc'd
 * lower-case mailboxes (*n_r may be 0).  Every entry must be a mailbox;
 * at most WSE_FORM_MAX_HOPS. */
wse_status wse_formtype_route(wse_formtype *ft, const wse_luabox_value *form,
    char ***approvers_r, size_t *n_r);
void wse_formtype_strings_free(char ***v, size_t n);

/* check(form): WSE_OK when it returned true; WSE_ERR_NOT_AUTHORIZED with
 * the reason in reason (printable ASCII, truncated) when it returned a
 * string or false; the sandbox's status when it failed. */
wse_status wse_formtype_check(wse_formtype *ft, const wse_luabox_value *form,
    char *reason, size_t size);

/* present(form), or a generic listing of the fields when the plugin has
 * no present(): lines appended to out, each ending in '\n', control
 * characters replaced. */
wse_status wse_formtype_present(wse_formtype *ft,
    const wse_luabox_value *form, wse_buf *out);

/* definition(): the type's field list and default route, for a claimant
 * filling in a new form. */
typedef struct wse_formtype_fielddef {
	char name[WSE_FORM_NAME_MAX + 1];
	wse_form_ftype type;
	char label[128];
	int required;
} wse_formtype_fielddef;

typedef struct wse_formtype_def {
	char name[WSE_FORM_NAME_MAX + 1];
	char version[WSE_FORM_VERSION_MAX + 1];
	char title[128];
	wse_formtype_fielddef *fields;
	size_t nfields;
	wse_form_hop *route;		/* default route, may be empty */
	size_t nroute;
	char final_party[WSE_FORM_PARTY_MAX];	/* "" when not given */
} wse_formtype_def;

wse_status wse_formtype_definition(wse_formtype *ft, wse_formtype_def *def);
void wse_formtype_def_clear(wse_formtype_def *def);

/*
 * Where a verified form goes next, from wse_form_state: a router's or the
 * final party's turn -> "<forms_local>@<domain>" (forms_local NULL:
 * WSE_FORM_MAILBOX); an approver's (or delegate's) turn -> that mailbox;
 * closed -> the claimant (the outcome notice).  WSE_ERR_INVALID for a
 * draft or an unverified form, WSE_ERR_TOO_LARGE when out is too small.
 */
wse_status wse_formtype_next_address(const wse_form *form,
    const char *forms_local, char *out, size_t size);

/* The first attachment of m of type WSE_FORM_MEDIA_TYPE (borrowed), or
 * NULL. */
const struct wse_attachment *wse_formtype_find_attachment(const wse_msg *m);

#endif
