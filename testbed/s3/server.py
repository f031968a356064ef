"""A real S3 API (moto server) in a child process, and s3cmd configured for it.

Used by the log shipper's unit tests and by the benchmark. Every request the
server answers is one line of its log, so callers can count S3 requests.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

S3CFG = """[default]
access_key = {access_key}
secret_key = {secret_key}
host_base = 127.0.0.1:{port}
host_bucket = 127.0.0.1:{port}
use_https = False
bucket_location = us-east-1
signature_v2 = False
# The shipper retries itself; s3cmd's own retries wait 3 s, 6 s, ... each.
max_retries = 0
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Server:
    """moto_server on 127.0.0.1:port; start() again after stop() is an empty S3."""

    def __init__(self, workdir: Path, port: int | None = None,
                 access_key: str = "AKIDTESTSHIPPER", secret_key: str = "shipper-secret-key-do-not-leak") -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.access_key = access_key
        self.secret_key = secret_key
        self.log_path = workdir / "moto.log"
        self.config = workdir / "s3cfg"
        self.config.write_text(S3CFG.format(port=self.port, access_key=access_key, secret_key=secret_key))
        self.config.chmod(0o600)
        self.process: subprocess.Popen | None = None
        self.s3cmd = str(Path(sys.executable).parent / "s3cmd")

    def start(self) -> S3Server:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        moto = str(Path(sys.executable).parent / "moto_server")
        self.process = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto_server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def requests(self) -> int:
        """Requests answered so far (lines of the server's access log)."""
        if not self.log_path.exists():
            return 0
        lines = self.log_path.read_text(errors="replace").splitlines()
        return sum(1 for line in lines if '" ' in line and "HTTP/" in line)

    def client(self):
        import boto3  # moto's own dependency

        return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.port}", region_name="us-east-1",
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def make_bucket(self, bucket: str) -> None:
        self.client().create_bucket(Bucket=bucket)

    def objects(self, bucket: str) -> dict[str, bytes]:
        """Key -> content of every object (small test buckets only)."""
        client = self.client()
        result = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                result[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return result
