/*
 * plugin_call.c - test helper (not a test): call one operation of a
 * wsemaild as a client would, for operations the wsemail CLI does not
 * know (those plugins add).
 *
 *   plugin_call --server URL --roots ROOT.pem --user USER --op OP
 *               [--connect ADDR] [--payload XML]
 *
 * The password comes from $WSEMAIL_PASSWORD.  It runs GetAuthParams,
 * derives the key (PBKDF2), signs the request with the password profile,
 * POSTs it, verifies the signed answer (certificate profile, a service
 * certificate of the user's domain, RelatesTo our MessageID; CRLs are not
 * checked) and prints
 *   OK\n<the response payload element>\n          exit 0
 *   FAULT <Subcode>\n                             exit 3
 * Anything else (cannot connect, answer does not verify): a message on
 * stderr, exit 1; bad usage: exit 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "msg.h"
#include "testcall.h"

int
main(int argc, char **argv)
{
	struct tcall c;
	const char *op = NULL, *payload = NULL, *password;
	char defpayload[512];
	wse_envelope *env = NULL;
	wse_verified v;
	xmlNodePtr p;
	wse_status fault;
	xmlBufferPtr xb = NULL;
	int i, rc = 1;

	memset(&c, 0, sizeof(c));
	memset(&v, 0, sizeof(v));
	c.prog = "plugin_call";
	for (i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--server") == 0)
			c.server = argv[i + 1];
		else if (strcmp(argv[i], "--connect") == 0)
			c.connect = argv[i + 1];
		else if (strcmp(argv[i], "--roots") == 0)
			c.roots = argv[i + 1];
		else if (strcmp(argv[i], "--user") == 0)
			c.user = argv[i + 1];
		else if (strcmp(argv[i], "--op") == 0)
			op = argv[i + 1];
		else if (strcmp(argv[i], "--payload") == 0)
			payload = argv[i + 1];
		else
			break;
	}
	password = getenv("WSEMAIL_PASSWORD");
	if (i != argc || c.server == NULL || c.roots == NULL ||
	    c.user == NULL || op == NULL || password == NULL ||
	    !wse_addr_valid(c.user) || strlen(op) > 200) {
		fprintf(stderr, "usage: WSEMAIL_PASSWORD=... plugin_call "
		    "--server URL --roots PEM --user USER --op OP "
		    "[--connect ADDR] [--payload XML]\n");
		return 2;
	}
	if (payload == NULL) {
		(void)snprintf(defpayload, sizeof(defpayload),
		    "<m:%s xmlns:m=\"" WSE_NS_WSE "\"/>", op);
		payload = defpayload;
	}
	if (tcall_setup(&c) != 0 || tcall_login(&c, password) != 0 ||
	    tcall_exchange(&c, op, payload, 1, &env, &v, &p, &fault) != 0)
		goto out;
	if (fault != WSE_OK) {
		printf("FAULT %s\n", wse_fault_subcode(fault));
		rc = 3;
		goto out;
	}
	if ((xb = xmlBufferCreate()) == NULL ||
	    xmlNodeDump(xb, wse_env_doc(env), p, 0, 0) < 0) {
		fprintf(stderr, "plugin_call: cannot print the answer\n");
		goto out;
	}
	printf("OK\n%s\n", (const char *)xmlBufferContent(xb));
	rc = 0;
out:
	if (xb != NULL)
		xmlBufferFree(xb);
	wse_verified_clear(&v);
	wse_env_free(&env);
	tcall_free(&c);
	xmlCleanupParser();
	return rc;
}
