#!/usr/bin/env python3
"""A stand-in for a container registry's `/v2/` endpoint, for pathdns's namespace tests.

Python 3 standard library only. Serves HTTPS (or plain HTTP with --plain) on ADDR:PORT:

    GET|HEAD /v2/   -> 401, WWW-Authenticate: Bearer realm="https://REALM/auth",service="SERVICE"
    GET /blob       -> 200, --blob-size bytes sent slowly (--blob-rate bytes a second);
                       with `Range: bytes=N-`, 206 and the rest from N (curl -C -). Byte i
                       of the body is i % 251 on every server, so a download resumed on
                       another server can be checked byte for byte.
    anything else   -> 404

HTTP/1.1 with keep-alive, one thread per connection. The TLS handshake runs on the
connection's own thread, so a client that connects and never speaks (a TCP-connect probe)
does not stall anyone else.

Once listening it prints `serving https on ADDR:PORT` (or `serving http on ...`) to stderr;
callers wait for that line. Every request is logged to stderr as well.
"""

import argparse
import json
import re
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def log(message):
    print(message, file=sys.stderr, flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "registry-v2-test"
    sys_version = ""

    def _blob(self):
        size = self.server.blob_size
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "").strip())
        if match:
            start = min(int(match.group(1)), size)
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, size - 1, size))
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        pattern = bytes(range(251)) * (65536 // 251 + 2)
        chunk = 16384
        rate = self.server.blob_rate
        began = time.monotonic()
        sent = 0
        offset = start
        while offset < size:
            n = min(chunk, size - offset)
            i = offset % 251
            self.wfile.write(pattern[i:i + n])
            offset += n
            sent += n
            # Paced: `sent` bytes are due `sent / rate` seconds after the start.
            ahead = sent / rate - (time.monotonic() - began)
            if ahead > 0:
                time.sleep(ahead)
        log("%s blob sent bytes %d-%d" % (self.client_address[0], start, size - 1))

    def _reply(self, send_body):
        if send_body and (self.path == "/blob" or self.path.startswith("/blob?")):
            self._blob()
            return
        if self.path == "/v2/" or self.path.startswith("/v2/?"):
            status = self.server.v2_status
            body = json.dumps(
                {
                    "errors": [
                        {
                            "code": "UNAUTHORIZED",
                            "message": "authentication required",
                            "detail": None,
                        }
                    ]
                }
            ).encode()
            headers = [
                (
                    "WWW-Authenticate",
                    'Bearer realm="https://%s/auth",service="%s"'
                    % (self.server.realm, self.server.service),
                ),
                ("Docker-Distribution-Api-Version", "registry/2.0"),
            ]
        else:
            status = 404
            body = b'{"errors":[{"code":"NOT_FOUND","message":"not found"}]}'
            headers = []
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def do_GET(self):
        self._reply(True)

    def do_HEAD(self):
        self._reply(False)

    def log_message(self, format, *args):
        log("%s %s" % (self.client_address[0], format % args))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Many probes may connect at once.
    request_queue_size = 128

    def finish_request(self, request, client_address):
        # Runs on the connection's thread.
        request.settimeout(30)
        if self.tls is None:
            self.RequestHandlerClass(request, client_address, self)
            return
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as err:
            log("%s tls handshake failed: %s" % (client_address[0], err))
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.close()
            except OSError:
                pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", required=True, help="IPv4 address to listen on")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--cert", help="PEM certificate chain (required unless --plain)")
    parser.add_argument("--key", help="PEM private key (required unless --plain)")
    parser.add_argument("--realm", default="dockerauth-vpc.cn-hangzhou.aliyuncs.com",
                        help="host name of the token realm")
    parser.add_argument("--service", default="registry.aliyuncs.com:cn-hangzhou:26842")
    parser.add_argument("--v2-status", type=int, default=401,
                        help="status for /v2/ (401 like a real registry)")
    parser.add_argument("--plain", action="store_true", help="plain HTTP, no TLS")
    parser.add_argument("--blob-size", type=int, default=4 * 1024 * 1024,
                        help="size of GET /blob in bytes")
    parser.add_argument("--blob-rate", type=int, default=256 * 1024,
                        help="rate of GET /blob in bytes a second")
    args = parser.parse_args()

    server = Server((args.addr, args.port), Handler)
    server.realm = args.realm
    server.service = args.service
    server.v2_status = args.v2_status
    server.blob_size = args.blob_size
    server.blob_rate = args.blob_rate
    if args.plain:
        server.tls = None
        scheme = "http"
    else:
        if not args.cert or not args.key:
            parser.error("--cert and --key are required without --plain")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        server.tls = context
        scheme = "https"
    log("serving %s on %s:%d" % (scheme, args.addr, args.port))
    server.serve_forever()


if __name__ == "__main__":
    main()
