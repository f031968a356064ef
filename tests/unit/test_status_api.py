"""The status API stand-in checks tokens and states and records every update."""

from __future__ import annotations

import importlib.util
import json
import threading
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location(
    "status_api", ROOT / "testbed" / "roles" / "testbed_broker" / "files" / "status_api.py"
)
status_api = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(status_api)

UUID = "0b7e1c9c-2b9e-4d0e-9a43-1d0f6f3d2a11"


@pytest.fixture
def server(tmp_path):
    store = status_api.Store(str(tmp_path / "records.jsonl"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), status_api.make_handler(store, "s3cret"))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def patch(base: str, state: str, token: str = "s3cret", uuid: str = UUID) -> int:
    request = urllib.request.Request(
        f"{base}/api/updatetaskinstancestatus/{uuid}/",
        data=f"state={state}".encode(),
        method="PATCH",
        headers={"Authorization": f"Token {token}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def records(base: str, uuid: str | None = None) -> list[dict]:
    url = f"{base}/records" + (f"?uuid={uuid}" if uuid else "")
    with urllib.request.urlopen(url) as response:
        return json.loads(response.read())


def test_records_accepted_updates_in_order(server):
    assert patch(server, "running") == 200
    assert patch(server, "successful") == 200
    assert [r["state"] for r in records(server, UUID)] == ["running", "successful"]


def test_rejects_a_wrong_token(server):
    assert patch(server, "running", token="wrong") == 401
    assert records(server) == []


def test_rejects_an_unknown_state(server):
    assert patch(server, "exploded") == 400
    assert records(server) == []


def test_filters_by_uuid(server):
    other = "11111111-2222-3333-4444-555555555555"
    patch(server, "running")
    patch(server, "failed", uuid=other)
    assert [r["uuid"] for r in records(server, other)] == [other]
    assert len(records(server)) == 2
