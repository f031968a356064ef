"""worker_src's TLS options for the broker, through the amqp library the
worker uses, against a real TLS server: a certificate for the host name the
broker URL spells is accepted, the same certificate reached by another name
is refused (the integration test does the same with RabbitMQ)."""

from __future__ import annotations

import importlib.util
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from amqp.transport import SSLTransport

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("saltant_broker_tls", ROOT / "worker_src" / "saltant" / "broker_tls.py")
assert spec is not None and spec.loader is not None
BROKER_TLS = importlib.util.module_from_spec(spec)
spec.loader.exec_module(BROKER_TLS)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """A TLS server on 127.0.0.1 whose certificate names localhost only."""
    certs = tmp_path_factory.mktemp("tls")
    subprocess.run([sys.executable, str(ROOT / "testbed" / "bin" / "testbed-tls"), str(certs), "localhost"], check=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "localhost.crt", certs / "localhost.key")
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(8)
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], certs / "testbed-ca.crt"
    stop.set()
    listener.close()


def connect(url: str, port: int, ca: Path, monkeypatch) -> None:
    # The system's trusted CAs, as on a worker host; here the test CA alone.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    options = BROKER_TLS.broker_ssl_options(url)
    transport = SSLTransport(f"127.0.0.1:{port}", connect_timeout=5, ssl=options)
    try:
        transport.connect()
    finally:
        transport.close()


def test_a_certificate_for_the_brokers_name_is_accepted(tls_server, monkeypatch):
    port, ca = tls_server
    connect(f"pyamqp://u:p@localhost:{port}/vhost", port, ca, monkeypatch)


def test_the_same_certificate_under_another_name_is_refused(tls_server, monkeypatch):
    port, ca = tls_server
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        connect(f"pyamqp://u:p@127.0.0.1:{port}/vhost", port, ca, monkeypatch)


def test_a_url_without_a_host_is_refused():
    with pytest.raises(ValueError, match="names no host"):
        BROKER_TLS.broker_ssl_options("pyamqp:///vhost")
