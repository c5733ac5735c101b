/*
 * wsdl.c - the WSDL 1.1 description of the service, served at ?wsdl.
 * Payload elements are declared loosely (a sequence of any elements in
 * our namespace, see docs/protocol.md for their content) so that stock
 * SOAP toolkits load the service and see every operation, the plugins'
 * ones included.
 */
#include <string.h>

#include "wsed.h"

/* The i-th operation: the built-in ones, then the plugins'; NULL past
 * the end. */
static const char *
op_at(const struct wsed *s, size_t i)
{
	size_t n;

	for (n = 0; wsed_builtin_ops[n] != NULL; n++)
		if (n == i)
			return wsed_builtin_ops[n];
	return wsed_plugins_op(s, i - n);
}

wse_status
wsed_wsdl(const struct wsed *s, wse_buf *out)
{
	const char *url = s->url, *op;
	wse_status st;
	size_t i;

	st = wse_buf_puts(out,
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<wsdl:definitions name=\"WSEmail\" targetNamespace=\""
	    WSE_NS_WSE "\"\n"
	    "  xmlns:wsdl=\"http://schemas.xmlsoap.org/wsdl/\"\n"
	    "  xmlns:soap12=\"http://schemas.xmlsoap.org/wsdl/soap12/\"\n"
	    "  xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"\n"
	    "  xmlns:wsam=\"http://www.w3.org/2007/05/addressing/metadata\"\n"
	    "  xmlns:m=\"" WSE_NS_WSE "\">\n"
	    "  <wsdl:types>\n"
	    "    <xsd:schema targetNamespace=\"" WSE_NS_WSE "\" "
	    "elementFormDefault=\"qualified\">\n"
	    "      <xsd:complexType name=\"Payload\"><xsd:sequence>"
	    "<xsd:any namespace=\"##targetNamespace\" processContents=\"lax\" "
	    "minOccurs=\"0\" maxOccurs=\"unbounded\"/></xsd:sequence>"
	    "<xsd:anyAttribute processContents=\"lax\"/></xsd:complexType>\n");
	for (i = 0; st == WSE_OK && (op = op_at(s, i)) != NULL; i++)
		st = wse_buf_printf(out,
		    "      <xsd:element name=\"%s\" type=\"m:Payload\"/>\n"
		    "      <xsd:element name=\"%sResponse\" type=\"m:Payload\"/>\n",
		    op, op);
	if (st == WSE_OK)
		st = wse_buf_puts(out, "    </xsd:schema>\n  </wsdl:types>\n");
	for (i = 0; st == WSE_OK && (op = op_at(s, i)) != NULL; i++)
		st = wse_buf_printf(out,
		    "  <wsdl:message name=\"%sIn\"><wsdl:part name=\"body\" "
		    "element=\"m:%s\"/></wsdl:message>\n"
		    "  <wsdl:message name=\"%sOut\"><wsdl:part name=\"body\" "
		    "element=\"m:%sResponse\"/></wsdl:message>\n",
		    op, op, op, op);
	if (st == WSE_OK)
		st = wse_buf_puts(out, "  <wsdl:portType name=\"WSEmailPort\">\n");
	for (i = 0; st == WSE_OK && (op = op_at(s, i)) != NULL; i++)
		st = wse_buf_printf(out,
		    "    <wsdl:operation name=\"%s\">\n"
		    "      <wsdl:input message=\"m:%sIn\" wsam:Action=\""
		    WSE_ACTION_PREFIX "%s\"/>\n"
		    "      <wsdl:output message=\"m:%sOut\" wsam:Action=\""
		    WSE_ACTION_PREFIX "%sResponse\"/>\n"
		    "    </wsdl:operation>\n",
		    op, op, op, op, op);
	if (st == WSE_OK)
		st = wse_buf_puts(out, "  </wsdl:portType>\n"
		    "  <wsdl:binding name=\"WSEmailBinding\" type=\"m:WSEmailPort\">\n"
		    "    <soap12:binding style=\"document\" "
		    "transport=\"http://schemas.xmlsoap.org/soap/http\"/>\n");
	for (i = 0; st == WSE_OK && (op = op_at(s, i)) != NULL; i++)
		st = wse_buf_printf(out,
		    "    <wsdl:operation name=\"%s\">\n"
		    "      <soap12:operation soapAction=\"" WSE_ACTION_PREFIX
		    "%s\"/>\n"
		    "      <wsdl:input><soap12:body use=\"literal\"/></wsdl:input>\n"
		    "      <wsdl:output><soap12:body use=\"literal\"/></wsdl:output>\n"
		    "    </wsdl:operation>\n", op, op);
	if (st != WSE_OK)
		return st;
	st = wse_buf_puts(out, "  </wsdl:binding>\n"
	    "  <wsdl:service name=\"WSEmail\">\n"
	    "    <wsdl:port name=\"WSEmailPort\" binding=\"m:WSEmailBinding\">\n"
	    "      <soap12:address location=\"");
	if (st == WSE_OK)
		st = wse_buf_put_xml_escaped(out, url, strlen(url));
	if (st == WSE_OK)
		st = wse_buf_puts(out, "\"/>\n    </wsdl:port>\n"
		    "  </wsdl:service>\n</wsdl:definitions>\n");
	return st;
}
