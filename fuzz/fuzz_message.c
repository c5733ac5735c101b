/*
 * fuzz_message.c - libFuzzer target: the mail message (lib/msg.c).
 *
 * Every input goes through the hardened XML parser and wse_msg_parse.
 * What is accepted must also survive the way back: written with
 * wse_msg_to_xml, parsed again and compared field by field, so a message
 * that one side accepts is never one the other side writes differently
 * (addresses, subject, text, inline and on-demand attachments, names).
 * Built with clang -fsanitize=fuzzer (make fuzz, FUZZ_TARGET=message),
 * and with replay_message.c as an ordinary test over its seed corpus.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "fuzz_message.h"
#include "msg.h"
#include "xml.h"

static int
same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* 1 when a and b carry the same message. */
static int
same_msg(const wse_msg *a, const wse_msg *b)
{
	size_t i;

	if (!same_str(a->from, b->from) || a->nto != b->nto ||
	    a->ncc != b->ncc || !same_str(a->subject, b->subject) ||
	    !same_str(a->date, b->date) || !same_str(a->text, b->text) ||
	    a->natt != b->natt || a->nod != b->nod || a->instant != b->instant)
		return 0;
	for (i = 0; i < a->nto; i++)
		if (!same_str(a->to[i], b->to[i]))
			return 0;
	for (i = 0; i < a->ncc; i++)
		if (!same_str(a->cc[i], b->cc[i]))
			return 0;
	for (i = 0; i < a->natt; i++)
		if (!same_str(a->att[i].name, b->att[i].name) ||
		    !same_str(a->att[i].type, b->att[i].type) ||
		    a->att[i].size != b->att[i].size ||
		    strcmp(a->att[i].sha256, b->att[i].sha256) != 0)
			return 0;
	for (i = 0; i < a->nod; i++)
		if (!same_str(a->od[i].upload, b->od[i].upload) ||
		    !same_str(a->od[i].server, b->od[i].server) ||
		    !same_str(a->od[i].ref, b->od[i].ref) ||
		    !same_str(a->od[i].name, b->od[i].name) ||
		    !same_str(a->od[i].type, b->od[i].type) ||
		    a->od[i].size != b->od[i].size ||
		    strcmp(a->od[i].sha256, b->od[i].sha256) != 0)
			return 0;
	return 1;
}

int
fuzz_message_one(const uint8_t *data, size_t size)
{
	static wse_limits lim;
	static int ready;
	xmlDocPtr doc = NULL, doc2 = NULL;
	wse_msg *m = NULL, *back = NULL;
	wse_buf *b = NULL;
	int accepted = 0;

	if (!ready) {
		wse_limits_default(&lim);
		ready = 1;
	}
	if (wse_xml_parse(data, size, &lim, &doc) != WSE_OK)
		goto out;
	if (wse_msg_parse(xmlDocGetRootElement(doc), &m) != WSE_OK)
		goto out;
	accepted = 1;
	/* The way back: base64 makes inline bytes up to 4/3 larger. */
	if ((b = wse_buf_new(4 * size + 4096)) == NULL)
		abort();
	if (wse_msg_to_xml(m, b) != WSE_OK ||
	    wse_xml_parse((const uint8_t *)wse_buf_data(b), wse_buf_len(b),
	    &lim, &doc2) != WSE_OK ||
	    wse_msg_parse(xmlDocGetRootElement(doc2), &back) != WSE_OK ||
	    !same_msg(m, back))
		abort();	/* accepted, but not written back the same */
out:
	wse_msg_free(&back);
	wse_msg_free(&m);
	wse_buf_free(&b);
	xmlFreeDoc(doc2);
	xmlFreeDoc(doc);
	wse_err_clear();
	return accepted;
}

#ifdef WSE_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	(void)fuzz_message_one(data, size);
	return 0;
}
#endif
