"""Status reports against real local HTTP servers."""

from __future__ import absolute_import, division, print_function, unicode_literals

import logging
import time

from support import RecordingServer, SilentServer, refused_url

from tasksapi.tasks import status

UUID = "0b9c8f1e-1111-4222-8333-444455556666"


def test_patch_with_form_state_and_token(status_server):
    assert status.report_status(UUID, "running", status_server.url + "/", "tok")
    assert status_server.requests == [
        {
            "method": "PATCH",
            "path": "/api/updatetaskinstancestatus/%s/" % (UUID,),
            "form": {"state": "running"},
            "authorization": "Token tok",
            "content_type": "application/x-www-form-urlencoded",
        }
    ]


def test_base_url_trailing_slash_is_stripped():
    assert status.status_url("https://x.org/", "u") == (
        "https://x.org/api/updatetaskinstancestatus/u/"
    )
    assert status.status_url("https://x.org", "u") == (
        "https://x.org/api/updatetaskinstancestatus/u/"
    )


def test_5xx_is_retried_then_succeeds():
    server = RecordingServer(statuses=[503])
    server.start()
    try:
        assert status.report_status(UUID, "successful", server.url, "t", backoff=0.01)
    finally:
        server.stop()
    assert server.states() == ["successful", "successful"]


def test_5xx_gives_up_after_the_tries_without_raising(caplog):
    server = RecordingServer(statuses=[500, 502, 503, 500])
    server.start()
    try:
        with caplog.at_level(logging.ERROR):
            result = status.report_status(
                UUID, "failed", server.url, "t", tries=3, backoff=0.01
            )
    finally:
        server.stop()
    assert result is False
    assert server.states() == ["failed", "failed", "failed"]
    assert "giving up" in caplog.text
    assert UUID in caplog.text and "'failed'" in caplog.text


def test_4xx_is_not_retried(caplog):
    server = RecordingServer(statuses=[401])
    server.start()
    try:
        with caplog.at_level(logging.ERROR):
            result = status.report_status(UUID, "running", server.url, "bad", backoff=0)
    finally:
        server.stop()
    assert result is False
    assert len(server.requests) == 1
    assert "HTTP 401" in caplog.text


def test_connection_refused_is_logged_not_raised(caplog):
    with caplog.at_level(logging.ERROR):
        result = status.report_status(
            UUID, "running", refused_url(), "t", tries=2, backoff=0.01
        )
    assert result is False
    assert UUID in caplog.text and "'running'" in caplog.text
    assert "ConnectionError" in caplog.text


def test_server_that_never_answers_times_out(caplog):
    server = SilentServer()
    started = time.time()
    try:
        with caplog.at_level(logging.ERROR):
            result = status.report_status(
                UUID,
                "running",
                server.url,
                "t",
                connect_timeout=1,
                read_timeout=0.5,
                tries=2,
                backoff=0.01,
            )
    finally:
        server.close()
    elapsed = time.time() - started
    assert result is False
    assert elapsed < 5
    assert "Timeout" in caplog.text


def test_invalid_base_url_is_logged_not_raised(caplog):
    with caplog.at_level(logging.ERROR):
        assert status.report_status(UUID, "running", "not a url", "t") is False
    assert UUID in caplog.text
