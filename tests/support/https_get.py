#!/usr/bin/env python3
"""One HTTPS request for pathdns's namespace tests: connect to ADDR:PORT, do TLS with
SNI = NAME verifying against CA_FILE (and the name), send `GET PATH` with Host: NAME.

    https_get.py CA_FILE ADDR PORT NAME PATH [TIMEOUT_SECONDS]

Python 3 standard library only. On success prints the status code on the first line of
stdout, then one `Header: value` line per response header, and exits 0. On any failure
(connect, TLS, verification) prints the error to stderr and exits 1.
"""

import http.client
import socket
import ssl
import sys


def main():
    ca_file, addr, port, name, path = sys.argv[1:6]
    timeout = float(sys.argv[6]) if len(sys.argv) > 6 else 10.0
    try:
        context = ssl.create_default_context(cafile=ca_file)
        raw = socket.create_connection((addr, int(port)), timeout=timeout)
        conn = context.wrap_socket(raw, server_hostname=name)
        request = "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: pathdns-test\r\nConnection: close\r\n\r\n" % (path, name)
        conn.sendall(request.encode())
        response = http.client.HTTPResponse(conn)
        response.begin()
        response.read()
    except (OSError, ssl.SSLError, http.client.HTTPException) as err:
        print("%s: %s" % (type(err).__name__, err), file=sys.stderr)
        sys.exit(1)
    print(response.status)
    for header, value in response.getheaders():
        print("%s: %s" % (header, value))


if __name__ == "__main__":
    main()
