#!/usr/bin/env python3
"""Serve a directory over HTTPS (the test bed's apt repository, for the
roles that fetch signing keys over HTTPS only).

    https_server.py PORT DIRECTORY CERT KEY
"""

from __future__ import annotations

import functools
import http.server
import ssl
import sys


def main(port: str, directory: str, cert: str, key: str) -> None:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("", int(port)), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])
