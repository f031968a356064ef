#!/usr/bin/env python3
"""A stand-in for the saltant server's status API, for the test bed.

It accepts what a worker sends, checks it as the server would, and records
every accepted PATCH so that tests can read the history of a job:

- ``PATCH /api/updatetaskinstancestatus/<uuid>/`` with form field ``state``
  and header ``Authorization: Token <token>``: 401 for a wrong token, 400 for
  an unknown state, else 200 and a record ``{uuid, state, time, remote}``.
- ``GET /records`` (optionally ``?uuid=<uuid>``): the records, oldest first.
- ``GET /healthz``: 200.

Records are appended to a JSON-lines file, so they survive a restart.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

STATES = {"created", "published", "running", "successful", "failed", "terminated"}
PATCH_PATH = re.compile(r"^/api/updatetaskinstancestatus/([0-9a-fA-F-]{1,64})/$")


class Store:
    """Thread-safe, append-only record of accepted status updates."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()

    def add(self, record: dict) -> None:
        line = json.dumps(record, sort_keys=True)
        with self.lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def read(self, uuid: str | None = None) -> list[dict]:
        with self.lock:
            if not os.path.exists(self.path):
                return []
            with open(self.path, encoding="utf-8") as handle:
                records = [json.loads(line) for line in handle if line.strip()]
        return [r for r in records if uuid is None or r["uuid"] == uuid]


def make_handler(store: Store, token: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "saltant-status-standin/1"

        def _reply(self, code: int, body: object) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            url = urlparse(self.path)
            if url.path == "/healthz":
                self._reply(200, {"ok": True})
            elif url.path == "/records":
                uuid = parse_qs(url.query).get("uuid", [None])[0]
                self._reply(200, store.read(uuid))
            else:
                self._reply(404, {"detail": "Not found."})

        def do_PATCH(self) -> None:  # noqa: N802
            match = PATCH_PATH.match(urlparse(self.path).path)
            if not match:
                self._reply(404, {"detail": "Not found."})
                return
            if self.headers.get("Authorization", "") != "Token " + token:
                self._reply(401, {"detail": "Invalid token."})
                return
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode("utf-8"))
            state = form.get("state", [""])[0]
            if state not in STATES:
                self._reply(400, {"state": [f"'{state}' is not a valid choice."]})
                return
            record = {
                "uuid": match.group(1),
                "state": state,
                "time": time.time(),
                "remote": self.client_address[0],
            }
            store.add(record)
            self._reply(200, {"uuid": record["uuid"], "state": state})

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--records", default="/var/lib/testbed-status-api/records.jsonl")
    parser.add_argument("--token-file", required=True)
    args = parser.parse_args()
    with open(args.token_file, encoding="utf-8") as handle:
        token = handle.read().strip()
    server = ThreadingHTTPServer((args.listen, args.port), make_handler(Store(args.records), token))
    server.serve_forever()


if __name__ == "__main__":
    main()
