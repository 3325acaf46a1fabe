#!/usr/bin/env python3
"""A stand-in MDM challenge webhook for the tests of plugins/webhook.

Listens on 127.0.0.1 on a free port (written to --port-file once it is
listening), answers every POST as --mode says (see ANSWERS; "match" allows
only --allow-challenge) and appends each request it got to --record as one
JSON line: {"content_type", "user_agent", "path", "client_cn", "request"}.
HTTPS with --cert/--key, plain HTTP without; --client-ca requires a client
certificate issued by that CA. With --hold-until FILE a request, once
recorded, is answered only when FILE exists (at most 30 s later): an MDM
that takes its time, while the test counts the requests it holds.
"""
import argparse
import http.server
import json
import os
import ssl
import sys
import threading
import time

# Answers by mode: (status, body). "slow" answers allow after --delay.
ANSWERS = {
    "allow": (200, b'{"allow": true}'),
    # A reason with a control character: the plugin must keep it out of logs.
    "deny": (200, b'{"allow": false, "reason": "device not enrolled\\u0007 in MDM"}'),
    "allow-string": (200, b'{"allow": "true"}'),
    "http500": (500, b'{"allow": true, "reason": "database down"}'),
    "garbage": (200, b"<html>allow</html>"),
    "duplicate": (200, b'{"allow": false, "allow": true}'),
    "huge": (200, b'{"allow": true, "pad": "' + b"x" * (128 * 1024) + b'"}'),
    # A proxy's error page for an MDM that is down.
    "huge502": (502, b"<html>" + b"x" * (128 * 1024) + b"</html>"),
    "redirect": (302, b""),
    # An API key the MDM no longer takes: our configuration, not the device.
    "forbidden": (403, b'{"allow": false, "reason": "bad API key"}'),
    "slow": (200, b'{"allow": true}'),
    # "match": allow only --allow-challenge, refuse others with a reason.
    "match": None,
}

record_lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            request = json.loads(raw)
        except ValueError:
            request = {"unparsable": raw.decode("latin-1")}
        client_cn = None
        peer = getattr(self.connection, "getpeercert", lambda: None)()
        if peer:
            for rdn in peer.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        client_cn = value
        line = json.dumps({
            "content_type": self.headers.get("Content-Type"),
            "user_agent": self.headers.get("User-Agent"),
            "path": self.path,
            "client_cn": client_cn,
            "request": request,
        })
        with record_lock, open(self.server.args.record, "a") as f:
            f.write(line + "\n")
        hold = self.server.args.hold_until
        deadline = time.monotonic() + 30
        while hold and not os.path.exists(hold) and time.monotonic() < deadline:
            time.sleep(0.05)

        mode = self.server.args.mode
        if mode == "slow":
            time.sleep(self.server.args.delay)
        if mode == "match":
            ok = isinstance(request, dict) and \
                request.get("challenge") == self.server.args.allow_challenge
            status, body = 200, json.dumps(
                {"allow": True} if ok else
                {"allow": False, "reason": "unknown device"}).encode()
        else:
            status, body = ANSWERS[mode]
        self.send_response(status)
        if mode == "redirect":
            self.send_header("Location", "/allow")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("webhook_server: " + (fmt % args) + "\n")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, args, tls):
        self.args = args
        self.tls = tls
        super().__init__(("127.0.0.1", args.port), Handler)

    # The TLS handshake runs in the request's thread, so a client that
    # fails it (no client certificate, untrusted CA) blocks nobody.
    def finish_request(self, request, client_address):
        if self.tls is None:
            return super().finish_request(request, client_address)
        conn = self.tls.wrap_socket(request, server_side=True)
        try:
            super().finish_request(conn, client_address)
        finally:
            conn.close()

    def handle_error(self, request, client_address):
        sys.stderr.write("webhook_server: %s: %s\n" %
                         (client_address, sys.exc_info()[1]))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--mode", choices=sorted(ANSWERS), default="allow")
    p.add_argument("--port-file", required=True)
    p.add_argument("--port", type=int, default=0,
                   help="listen here (an MDM back after an outage); 0: any")
    p.add_argument("--record", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--client-ca")
    p.add_argument("--delay", type=float, default=3.0)
    p.add_argument("--allow-challenge", help="the one challenge of --mode match")
    p.add_argument("--hold-until", help="answer once this file exists")
    args = p.parse_args()

    tls = None
    if args.cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.cert, args.key)
        if args.client_ca:
            tls.verify_mode = ssl.CERT_REQUIRED
            tls.load_verify_locations(args.client_ca)
    server = Server(args, tls)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(tmp, args.port_file)  # the reader never sees half a number
    server.serve_forever()


if __name__ == "__main__":
    main()
