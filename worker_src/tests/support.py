"""Test helpers: a recording HTTP server, addresses that fail, log readers."""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import os
import socket
import threading

try:
    from http.server import BaseHTTPRequestHandler, HTTPServer
except ImportError:  # Python 2
    from BaseHTTPServer import BaseHTTPRequestHandler, HTTPServer

try:
    from urllib.parse import parse_qs
except ImportError:  # Python 2
    from urlparse import parse_qs


class RecordingServer(object):
    """A status API on 127.0.0.1 that records requests.

    ``statuses`` is a list of HTTP status codes to answer with, in order;
    once it is empty every request gets 200.
    """

    def __init__(self, statuses=None):
        self.requests = []
        self.statuses = list(statuses or [])
        self._lock = threading.Lock()
        self.server = HTTPServer(("127.0.0.1", 0), self._handler_class())
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.daemon = True

    @property
    def url(self):
        return "http://127.0.0.1:%d" % (self.server.server_address[1],)

    def start(self):
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def states(self):
        """Return the recorded ``state`` form values, in order."""
        return [request["form"].get("state") for request in self.requests]

    def _record(self, handler):
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode("utf-8") if length else ""
        form = {key: values[0] for key, values in parse_qs(body).items()}
        with self._lock:
            self.requests.append(
                {
                    "method": handler.command,
                    "path": handler.path,
                    "form": form,
                    "authorization": handler.headers.get("Authorization"),
                    "content_type": handler.headers.get("Content-Type"),
                }
            )
            return self.statuses.pop(0) if self.statuses else 200

    def _handler_class(self):
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                status = recorder._record(self)
                body = b'{"ok": true}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_PATCH = _answer  # noqa: N815 (http.server's method names)
            do_POST = _answer  # noqa: N815 (http.server's method names)
            do_PUT = _answer  # noqa: N815 (http.server's method names)
            do_GET = _answer  # noqa: N815 (http.server's method names)

            def log_message(self, *args):
                pass

        return Handler


class SilentServer(object):
    """Accepts TCP connections (through the backlog) but never answers."""

    def __init__(self):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % (self.socket.getsockname()[1],)

    def close(self):
        self.socket.close()


def refused_url():
    """Return a URL on 127.0.0.1 where nothing listens."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return "http://127.0.0.1:%d" % (port,)


def read_text(path):
    """Return a file's content as text."""
    with io.open(path, "r", encoding="utf-8") as handle:
        return handle.read()


def job_log(logs_directory, uuid, stream):
    """Return the text of job ``uuid``'s ``stdout`` or ``stderr`` log."""
    return read_text(os.path.join(logs_directory, uuid, "%s-%s.txt" % (uuid, stream)))


def is_running(pid):
    """Return True if process ``pid`` exists and is not a zombie."""
    try:
        with io.open("/proc/%d/stat" % (pid,), "r", encoding="utf-8") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    except (IOError, OSError):
        return False


#: The worker's .env variables: stripped from child processes' environments
#: so that the test process's own settings do not leak into them.
SETTING_NAMES = (
    "IM_A_CELERY_WORKER",
    "DEBUG",
    "WORKER_LOGS_DIRECTORY",
    "WORKER_RESULTS_DIRECTORY",
    "WORKER_TEMP_DIRECTORY",
    "WORKER_SINGULARITY_IMAGES_DIRECTORY",
    "CELERY_BROKER_POOL_LIMIT",
    "CELERY_BROKER_URL",
    "CELERY_TIMEZONE",
    "RABBITMQ_USES_SSL",
    "SINGULARITY_PULL_TIMEOUT",
    "SINGULARITY_PULL_RETRIES",
    "DJANGO_BASE_URL",
    "API_AUTH_TOKEN",
    "PROJECT_USES_ROLLBAR",
    "ROLLBAR_ACCESS_TOKEN",
    "SALTANT_ENV_FILE",
)


def run_python(args, env_updates, cwd, timeout=60):
    """Run this interpreter with ``args``; return (returncode, output).

    The worker tree is on PYTHONPATH; the child is killed if it runs longer
    than ``timeout`` seconds.
    """
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {
        name: value for name, value in os.environ.items() if name not in SETTING_NAMES
    }
    env[str("PYTHONPATH")] = str(root)
    for name, value in env_updates.items():
        env[str(name)] = str(value)
    process = subprocess.Popen(
        [sys.executable] + list(args),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        output = process.communicate()[0]
    finally:
        timer.cancel()
    return process.returncode, output.decode("utf-8", "replace")
