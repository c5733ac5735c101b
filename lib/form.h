/*
 * form.h - routed forms (paper section 3, Figure 3): an XML document that
 * carries its own route, and the signed records its parties add to it.
 *
 * A form (namespace urn:wsemail:2026:form, docs/forms.md) is an ordered
 * list of f:Record elements.  Record 1 is the claimant's submit: the
 * content (form id, type and its plugin, fields, initial route, final
 * party).  Every later record is an insert (a router adds approvers), a
 * decide (approve or reject), a delegate (an approver hands the decision
 * to someone else) or an accept (the final party closes the form).  Each
 * record's signed element carries the form id, its position, the SHA-256
 * of the content and of the previous record's signed element, its signing
 * time and its author, and is signed (XMLDSIG, wss.h) by the author's
 * token certificate (users) or service certificate (servers).
 *
 * Life of a form:
 *   claimant:  wse_form_new, _add_field, _add_hop, wse_form_sign_submit,
 *              wse_form_serialize;
 *   each next party:  wse_form_parse, wse_form_verify, wse_form_state
 *              ("is it my turn?"), wse_form_add_insert / _add_decision /
 *              _add_delegation / _add_accept, wse_form_serialize;
 *   final party:  wse_form_verify with policy.require_complete and
 *              policy.final_party set; the report lists the approvals.
 *
 * Nothing read from a parsed form is exposed before wse_form_verify has
 * succeeded: wse_form_content_get and wse_form_state refuse until then.
 */
#ifndef WSE_FORM_H
#define WSE_FORM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "pki.h"
#include "wselimits.h"

#define WSE_NS_FORM "urn:wsemail:2026:form"

#define WSE_FORM_MAX_RECORDS 64
#define WSE_FORM_MAX_FIELDS 100
#define WSE_FORM_MAX_HOPS 64		/* initial route plus insertions */
#define WSE_FORM_MAX_DELEGATION 8	/* hard ceiling of the policy value */
#define WSE_FORM_MAX_BYTES (2u * 1024 * 1024)	/* a serialised form */
#define WSE_FORM_NAME_MAX 64		/* field and type names */
#define WSE_FORM_VERSION_MAX 32
#define WSE_FORM_VALUE_MAX 4096		/* one field's value, bytes */
#define WSE_FORM_NOTE_MAX 1024		/* a decision's note, bytes */
#define WSE_FORM_URL_MAX 512
#define WSE_FORM_PARTY_MAX 255		/* a mailbox or domain, + NUL */

typedef struct wse_form wse_form;

typedef enum wse_form_ftype {
	WSE_FIELD_TEXT,		/* UTF-8; of the controls only TAB, LF */
	WSE_FIELD_DECIMAL,	/* -?(0|[1-9][0-9]{0,29})(.[0-9]{1,10})? */
	WSE_FIELD_INTEGER,	/* -?(0|[1-9][0-9]{0,17}) */
	WSE_FIELD_DATE,		/* YYYY-MM-DD, a real calendar date */
	WSE_FIELD_MAILBOX,	/* local@domain, lower case */
} wse_form_ftype;

typedef enum wse_form_hop_kind {
	WSE_HOP_ROUTER,		/* a domain: its server inserts */
	WSE_HOP_APPROVER,	/* a mailbox: decides or delegates */
} wse_form_hop_kind;

typedef enum wse_form_rec_kind {
	WSE_REC_SUBMIT = 1,	/* the claimant, token certificate */
	WSE_REC_INSERT,		/* a router, service certificate */
	WSE_REC_DECIDE,		/* an approver or delegate, token */
	WSE_REC_DELEGATE,	/* an approver or delegate, token */
	WSE_REC_ACCEPT,		/* the final party, service cert. */
} wse_form_rec_kind;

typedef enum wse_form_verdict {
	WSE_VERDICT_APPROVE = 1,
	WSE_VERDICT_REJECT,
} wse_form_verdict;

typedef enum wse_form_phase {
	WSE_FORM_DRAFT,		/* built here, not yet submitted */
	WSE_FORM_ROUTER,	/* a router must insert */
	WSE_FORM_APPROVER,	/* an approver (or delegate) must act */
	WSE_FORM_FINAL,		/* every hop done, or one rejected:
				 * the final party may accept */
	WSE_FORM_CLOSED,	/* the final party accepted: nothing follows */
} wse_form_phase;

typedef enum wse_form_outcome {
	WSE_OUTCOME_PENDING,
	WSE_OUTCOME_APPROVED,	/* every hop approved */
	WSE_OUTCOME_REJECTED,	/* a hop rejected: the route stopped */
} wse_form_outcome;

/* What the claimant's new form is (all copied). */
typedef struct wse_form_type {
	const char *name;	/* [a-z0-9][a-z0-9._-]{0,63} */
	const char *version;	/* [A-Za-z0-9][A-Za-z0-9._-]{0,31} */
	const char *plugin_url;	/* https://... of the type's plugin */
	const char *plugin_sha256;	/* its SHA-256, 64 lower-case hex */
} wse_form_type;

typedef struct wse_form_field {
	char name[WSE_FORM_NAME_MAX + 1];
	wse_form_ftype type;
	char *value;
} wse_form_field;

typedef struct wse_form_hop {
	wse_form_hop_kind kind;
	char name[WSE_FORM_PARTY_MAX];	/* domain or mailbox */
} wse_form_hop;

/* The content: the claimant's submit record. */
typedef struct wse_form_content {
	char id[WSE_UUID_URN_LEN + 1];
	char type_name[WSE_FORM_NAME_MAX + 1];
	char type_version[WSE_FORM_VERSION_MAX + 1];
	char plugin_url[WSE_FORM_URL_MAX + 1];
	char plugin_sha256[2 * WSE_SHA256_LEN + 1];
	char claimant[WSE_FORM_PARTY_MAX];
	char final_party[WSE_FORM_PARTY_MAX];
	wse_form_field *fields;
	size_t nfields;
	wse_form_hop *route;		/* the initial route */
	size_t nroute;
	int64_t submitted;		/* submit time; 0 in a draft */
} wse_form_content;

/* Who signs a record: a user's token certificate or a server's service
 * certificate, the domain CA that issued it, and the matching private
 * key.  Borrowed for the duration of the call. */
typedef struct wse_form_signer {
	const wse_key *key;
	const wse_cert *cert;
	const wse_cert *ca;
} wse_form_signer;

/* ---- building (the claimant) ---- */

/*
 * New draft form of claimant (a mailbox) for the given type, ending at
 * final_party (a domain), with a fresh urn:uuid v4 id.  WSE_ERR_INVALID
 * names the malformed argument.
 */
wse_status wse_form_new(const char *claimant, const wse_form_type *type,
    const char *final_party, wse_form **form_r);

/* Add a field to a draft (value checked against the type; names unique;
 * at most WSE_FORM_MAX_FIELDS).  Mailboxes are stored in lower case. */
wse_status wse_form_add_field(wse_form *form, const char *name,
    wse_form_ftype type, const char *value);

/* Append a hop to a draft's initial route: a router domain or an
 * approver mailbox (never the claimant, never twice). */
wse_status wse_form_add_hop(wse_form *form, wse_form_hop_kind kind,
    const char *name);

/*
 * Sign the draft as its claimant (record 1): signer holds the claimant's
 * token certificate (its mailbox must be the claimant), valid at now.
 * The form is then in its first hop's hands.  WSE_ERR_EXISTS when it is
 * not a draft, WSE_ERR_NOT_AUTHORIZED for another mailbox.
 */
wse_status wse_form_sign_submit(wse_form *form, const wse_form_signer *signer,
    int64_t now);

/* ---- wire form ---- */

/*
 * Parse a serialised form with the hardened parser (lim NULL: defaults;
 * at most WSE_FORM_MAX_BYTES whatever lim says) and check its whole
 * structure before any cryptography: no comments or PIs, unique Ids,
 * 1..WSE_FORM_MAX_RECORDS records each of exactly [signed element,
 * two f:Certificate, ds:Signature], record 1 a submit and no other,
 * every value well formed and bounded.  Errors name the record.
 * Nothing is trusted until wse_form_verify.
 */
wse_status wse_form_parse(const uint8_t *data, size_t len,
    const wse_limits *lim, wse_form **form_r);

/* Append the serialised form (UTF-8, no added white space). */
wse_status wse_form_serialize(const wse_form *form, wse_buf *out);

void wse_form_free(wse_form **form);

/* ---- verification ---- */

typedef struct wse_form_policy {
	unsigned max_delegation;	/* per hop; default 2, at most
					 * WSE_FORM_MAX_DELEGATION */
	int require_complete;		/* every hop done, or a rejection
					 * (the final party's check) */
	const char *final_party;	/* when set: the form must end here */
	int64_t future_skew;		/* record time ahead of now; 60 s */
	int64_t max_age;		/* submit time at most this old;
					 * 30 days; 0: no limit */
} wse_form_policy;

void wse_form_policy_default(wse_form_policy *p);

typedef struct wse_form_approval {
	char approver[WSE_FORM_PARTY_MAX];	/* the route's approver */
	char signer[WSE_FORM_PARTY_MAX];	/* who signed: the approver
						 * or their delegate */
	size_t position;			/* the decide record */
	int64_t time;
} wse_form_approval;

typedef struct wse_form_report {
	wse_status status;		/* WSE_OK: the form is valid */
	size_t position;		/* failing record (1-based), 0: the
					 * form as a whole */
	char reason[640];		/* names the record and the rule */
	size_t nrecords;
	wse_form_outcome outcome;
	wse_form_approval *approvals;	/* in route order; owned */
	size_t napprovals;
	char rejected_by[WSE_FORM_PARTY_MAX];	/* "" when none */
	char rejected_for[WSE_FORM_PARTY_MAX];	/* the hop's approver */
	size_t rejected_at;		/* the rejecting record, 0: none */
} wse_form_report;

/*
 * Verify every record in order (docs/forms.md "Verification"):
 * positions and the hash chain, signing times (non-decreasing, not past
 * now + future_skew, the submit not older than max_age), the signer's
 * certificate valid at the record's time, the signature
 * (wse_wss_verify_node), the chain (tokens: to a domain CA whose name
 * constraints cover the mailbox, at the signing time, with that CA
 * trusted and unrevoked now; service certificates: now, with CRLs), the
 * author equal to the certificate's mailbox or domain, and the workflow:
 * each record from the party the route expects at that point, the
 * claimant never deciding, nobody deciding twice, delegation only by the
 * current approver and at most policy->max_delegation deep per hop,
 * nothing but the final party's accept after a rejection or once every
 * hop is done, nothing at all after the accept.  Then the policy
 * (final party, completeness).
 * Returns the report's status: WSE_OK, WSE_ERR_BAD_SIGNATURE (a
 * signature, position or hash chain), WSE_ERR_NOT_AUTHORIZED (a
 * workflow rule), WSE_ERR_DOMAIN_MISMATCH (author vs certificate),
 * WSE_ERR_UNTRUSTED / _REVOKED / _CERT_EXPIRED / _CERT_NOT_YET_VALID,
 * WSE_ERR_TEMPFAIL (a CRL missing or stale now), WSE_ERR_EXPIRED /
 * WSE_ERR_FUTURE / WSE_ERR_INVALID (times).  report (may be NULL) gets
 * the verdict, the failing position and reason, the approvals and the
 * rejection; it is overwritten (clear a used one first) and freed with
 * wse_form_report_clear.  policy NULL: defaults.
 */
wse_status wse_form_verify(wse_form *form, wse_trust *trust, int64_t now,
    const wse_form_policy *policy, wse_form_report *report);

/* Free what *r owns and zero it. */
void wse_form_report_clear(wse_form_report *r);

/* The content of a draft, of a form this program signed, or of a form
 * that passed wse_form_verify; NULL otherwise.  Borrowed. */
const wse_form_content *wse_form_content_get(const wse_form *form);

typedef struct wse_form_state {
	wse_form_phase phase;
	wse_form_outcome outcome;
	const char *party;	/* who must act: a router's or the final
				 * party's domain, or the mailbox of the
				 * approver or their delegate; NULL for a
				 * draft or a closed form */
	const char *approver;	/* APPROVER: the route's approver of this
				 * hop (== party unless delegated) */
	size_t hop;		/* 1-based hop in the effective route, 0 at
				 * FINAL, CLOSED and DRAFT */
	size_t nhops;		/* length of the effective route */
	unsigned delegations;	/* at this hop so far */
	size_t nrecords;
	int64_t last_time;	/* of the newest record */
} wse_form_state_info;

/*
 * Who must act next, from the verified records (or a draft, or the
 * records this program added).  Strings are borrowed until the form
 * changes.  WSE_ERR_INVALID when the form has not passed
 * wse_form_verify.
 */
wse_status wse_form_state(const wse_form *form,
    wse_form_state_info *state_r);

/* The effective route (initial route with every insertion), under the
 * same condition.  Borrowed. */
wse_status wse_form_route(const wse_form *form, const wse_form_hop **hops_r,
    size_t *n_r);

/* ---- the parties' records ----
 *
 * Each requires a form that passed wse_form_verify (or one this program
 * has been adding to since), checks that the signer is the party the
 * route expects now and that the record keeps every workflow rule
 * (WSE_ERR_NOT_AUTHORIZED otherwise), signs it at max(now, the newest
 * record's time) and appends it.
 */

/* A router (service certificate of the current router hop's domain)
 * inserts approvers (may be none) at hop number at (1-based, after its
 * own hop; 0: right after it, i.e. before the next hop). */
wse_status wse_form_add_insert(wse_form *form, const wse_form_signer *signer,
    size_t at, const char *const *approvers, size_t n, int64_t now);

/* The current approver (or their delegate) decides; note may be NULL. */
wse_status wse_form_add_decision(wse_form *form,
    const wse_form_signer *signer, wse_form_verdict verdict,
    const char *note, int64_t now);

/* The current approver (or their delegate) delegates to delegate. */
wse_status wse_form_add_delegation(wse_form *form,
    const wse_form_signer *signer, const char *delegate, int64_t now);

/* The final party (service certificate of the final party's domain)
 * closes a form whose route is done or stopped by a rejection. */
wse_status wse_form_add_accept(wse_form *form, const wse_form_signer *signer,
    int64_t now);

/*
 * For tests and tools only: append a record as given, checking its
 * syntax but no workflow rule, so that verifiers can be shown records a
 * dishonest party could sign.  Fields left 0/NULL: author from the
 * certificate, time = max(now, newest), at = 0.  The form then needs
 * wse_form_verify again.
 */
typedef struct wse_form_record_spec {
	wse_form_rec_kind kind;
	const char *author;
	int64_t time;
	size_t at;				/* insert */
	const char *const *approvers;		/* insert */
	size_t napprovers;
	const char *on_behalf;			/* decide, delegate: the
						 * hop's approver */
	wse_form_verdict verdict;		/* decide */
	const char *note;
	const char *delegate;			/* delegate */
	wse_form_outcome result;		/* accept */
} wse_form_record_spec;

wse_status wse_form_append_unchecked(wse_form *form,
    const wse_form_signer *signer, const wse_form_record_spec *spec,
    int64_t now);

/* Number of records (0 for a draft). */
size_t wse_form_nrecords(const wse_form *form);

/* "submit", "insert", ... / "draft", "router", ... / "pending", ...;
 * static strings. */
const char *wse_form_kind_name(wse_form_rec_kind kind);
const char *wse_form_phase_name(wse_form_phase phase);
const char *wse_form_outcome_name(wse_form_outcome outcome);
const char *wse_form_ftype_name(wse_form_ftype type);

#endif
