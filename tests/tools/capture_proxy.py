#!/usr/bin/env python3
"""A recording HTTP proxy between a SCEP client and scepd.

Listens on 127.0.0.1 on a free port (written to --port-file once it is
listening) and forwards every request to --upstream unchanged (method,
path and query, headers, body), returning the answer unchanged (status,
headers, body). Each PKIOperation request is also saved in --out as
LABEL-N.query (the query string as sent, without the '?') and LABEL-N.body
(the body, empty for a GET), then listed in --out/index as one line
"LABEL-N METHOD STATUS" once both files are complete. N counts from 1.
"""
import argparse
import http.client
import http.server
import itertools
import os
import sys
import threading
import urllib.parse


class Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.1: keep-alive as the clients expect it, and "Expect:
    # 100-continue" (libcurl's large POSTs) answered as a server would.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def relay(self):
        raw, body = self.read_body()
        query = self.path.partition("?")[2]
        saved = None
        if is_pki_operation(query):
            saved = self.server.save(query, body)
        try:
            status, reason, headers, answer = self.forward(raw)
        except (OSError, http.client.HTTPException) as e:
            sys.stderr.write("capture_proxy: %s %s: upstream: %s\n" %
                             (self.command, self.path[:80], e))
            self.send_error(502, "upstream: %s" % e)
            return
        if saved is not None:
            self.server.index(saved, self.command, status)
        self.log_request(status, len(answer))
        self.send_response_only(status, reason)
        chunked = False
        for name, value in headers:
            # http.client has undone the chunks: they are made again below.
            if name.lower() == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            self.send_header(name, value)
        if not chunked and not any(n.lower() == "content-length" for n, _ in headers):
            self.close_connection = True  # the answer ends where the connection does
        self.end_headers()
        if self.command == "HEAD":
            return
        if chunked:
            if answer:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(answer), answer))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = relay

    def read_body(self):
        """The body as received (raw, chunks and all) and as its content."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raw, body = bytearray(), bytearray()
            while True:
                line = self.rfile.readline(65537)
                raw += line
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers up to the empty line
                        line = self.rfile.readline(65537)
                        raw += line
                        if line in (b"\r\n", b"\n", b""):
                            return bytes(raw), bytes(body)
                chunk = self.rfile.read(size + 2)
                raw += chunk
                body += chunk[:size]
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else b""
        return body, body

    def forward(self, raw):
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port or 80, timeout=60)
        try:
            # The client's own headers, Host included, in their order.
            conn.putrequest(self.command, self.path, skip_host=True,
                            skip_accept_encoding=True)
            for name, value in self.headers.items():
                conn.putheader(name, value)
            conn.endheaders(raw if raw else None)
            r = conn.getresponse()
            answer = r.read()
            return r.status, r.reason, r.getheaders(), answer
        finally:
            conn.close()

    def log_message(self, fmt, *args):
        sys.stderr.write("capture_proxy: " + (fmt % args) + "\n")


def is_pki_operation(query):
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if name == "operation":
            return value == "PKIOperation"
    return False


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, args):
        self.upstream = urllib.parse.urlsplit(args.upstream)
        self.out = args.out
        self.label = args.label
        self.count = itertools.count(1)
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)

    def save(self, query, body):
        with self.lock:
            name = "%s-%d" % (self.label, next(self.count))
        with open(os.path.join(self.out, name + ".query"), "wb") as f:
            f.write(query.encode("latin-1"))
        with open(os.path.join(self.out, name + ".body"), "wb") as f:
            f.write(body)
        return name

    def index(self, name, method, status):
        with self.lock, open(os.path.join(self.out, "index"), "a") as f:
            f.write("%s %s %d\n" % (name, method, status))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT")
    p.add_argument("--out", required=True, help="directory for the captures")
    p.add_argument("--label", required=True, help="the client's name in the files")
    p.add_argument("--port-file", required=True)
    args = p.parse_args()

    os.makedirs(args.out, exist_ok=True)
    server = Server(args)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(tmp, args.port_file)  # the reader never sees half a number
    server.serve_forever()


if __name__ == "__main__":
    main()
