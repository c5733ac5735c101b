#!/usr/bin/env python3
# fakeserver.py - an HTTPS server on loopback that answers the wsemail
# client as a dishonest or broken server would.  It holds a.test's
# service certificate, so the TLS check passes and only the answer is
# judged.  The first word of MODE_FILE picks the answer of each request:
#   garbage         200 with a body that is not XML
#   status503       503 with a plain-text body
#   unsigned        200 with a SOAP envelope that carries no signature
#   forward PORT    the request passed to the server on 127.0.0.1:PORT,
#                   its answer returned and kept in CAPTURE
#   replay          the answer kept in CAPTURE, whatever was asked
# usage: fakeserver.py PORT CHAIN KEY MODE_FILE CAPTURE
import http.client
import http.server
import ssl
import sys

port, chain, key, mode_file, capture = sys.argv[1:6]

UNSIGNED = (b'<?xml version="1.0"?>\n'
            b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
            b'<s:Header/><s:Body/></s:Envelope>')


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def do_POST(self):
        req = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(mode_file) as f:
            mode = f.read().split()
        soap = "application/soap+xml"
        if mode[0] == "garbage":
            self.answer(200, soap, b"this is not XML\n")
        elif mode[0] == "status503":
            self.answer(503, "text/plain", b"busy\n")
        elif mode[0] == "unsigned":
            self.answer(200, soap, UNSIGNED)
        elif mode[0] == "forward":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            c = http.client.HTTPSConnection("127.0.0.1", int(mode[1]),
                                            context=ctx, timeout=30)
            c.request("POST", self.path, req, {"Content-Type": soap})
            r = c.getresponse()
            body = r.read()
            with open(capture, "wb") as f:
                f.write(body)
            self.answer(r.status, soap, body)
        elif mode[0] == "replay":
            with open(capture, "rb") as f:
                self.answer(200, soap, f.read())
        else:
            self.answer(500, "text/plain", b"unknown mode\n")


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(chain, key)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
