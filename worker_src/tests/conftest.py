"""Test set-up: import path, a temporary .env, and shared fixtures.

The worker reads its settings when ``saltant`` is first imported, so the
temporary .env is written and ``SALTANT_ENV_FILE`` pointed at it here,
before any test module imports the worker.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import os
import shutil
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from support import RecordingServer  # noqa: E402 (Python 2.7's pytest has no pythonpath setting)

_ENV_DIRECTORY = tempfile.mkdtemp(prefix="saltant-worker-tests-")
_ENV_FILE = os.path.join(_ENV_DIRECTORY, ".env")

with io.open(_ENV_FILE, "w", encoding="utf-8") as env_file:
    env_file.write(
        "\n".join(
            [
                "# written by tests/conftest.py",
                "IM_A_CELERY_WORKER=True",
                "DEBUG=False",
                "WORKER_LOGS_DIRECTORY=%s" % os.path.join(_ENV_DIRECTORY, "logs"),
                "WORKER_RESULTS_DIRECTORY=%s" % os.path.join(_ENV_DIRECTORY, "results"),
                "WORKER_TEMP_DIRECTORY=%s" % os.path.join(_ENV_DIRECTORY, "temp"),
                "WORKER_SINGULARITY_IMAGES_DIRECTORY=%s"
                % os.path.join(_ENV_DIRECTORY, "images"),
                "CELERY_BROKER_POOL_LIMIT=10",
                "CELERY_BROKER_URL=memory://",
                "CELERY_TIMEZONE=UTC",
                "RABBITMQ_USES_SSL=False",
                "SINGULARITY_PULL_TIMEOUT=300",
                "SINGULARITY_PULL_RETRIES=5",
                "DJANGO_BASE_URL=http://127.0.0.1:9/",
                "API_AUTH_TOKEN=test-token",
                "PROJECT_USES_ROLLBAR=False",
                "ROLLBAR_ACCESS_TOKEN=",
                "",
            ]
        )
    )
os.environ[str("SALTANT_ENV_FILE")] = str(_ENV_FILE)


def pytest_unconfigure(config):
    shutil.rmtree(_ENV_DIRECTORY, ignore_errors=True)


@pytest.fixture
def status_server():
    """A running local status API that records every request."""
    server = RecordingServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def worker_dirs(tmpdir, monkeypatch):
    """Point the worker's logs and temp directories at a fresh directory."""
    from saltant import settings

    dirs = {
        "logs": os.path.join(str(tmpdir), "logs"),
        "temp": os.path.join(str(tmpdir), "temp"),
        "results": os.path.join(str(tmpdir), "results"),
    }
    monkeypatch.setattr(settings, "WORKER_LOGS_DIRECTORY", dirs["logs"])
    monkeypatch.setattr(settings, "WORKER_TEMP_DIRECTORY", dirs["temp"])
    monkeypatch.setattr(settings, "WORKER_RESULTS_DIRECTORY", dirs["results"])
    return dirs
