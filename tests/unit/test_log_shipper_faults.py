"""The log shipper's faults are per file (issue 12): against a real S3 API
(moto server) and the real s3cmd, a job directory or file it cannot read, a
file that vanishes, one job's failing upload and a missing logs directory
never stop it or hold back other jobs; and a growing log costs a bounded
multiple of its size.

Permission faults need a shipper that cannot read everything, as the real
one (its own user) cannot: those tests run the real program as root without
the capabilities that bypass file permissions, on job data another user
owns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import saltant_log_shipper as shipper_module
from saltant_log_shipper import S3cmd, S3Error, Settings, Shipper

from testbed.s3.server import S3Server

BUCKET = "saltant-logs"
GOOD = "0f6d3e4a-0000-4000-8000-000000000001"
BAD = "0f6d3e4a-0000-4000-8000-000000000002"
LATER = "0f6d3e4a-0000-4000-8000-000000000003"
# The owner of the job data the shipper must not read (a container's root,
# mapped to another user, or a job of another user).
STRANGER = 12345
WITHOUT_DAC = "-dac_override,-dac_read_search"


def write_job(logs: Path, uuid: str, text: str = "out\n") -> Path:
    job = logs / uuid
    job.mkdir(exist_ok=True)
    (job / f"{uuid}-stdout.txt").write_text(text)
    (job / f"{uuid}-stderr.txt").write_text("err\n")
    return job


def wait_for(condition, seconds: float = 30, shipper: Program | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out" + (f"; the shipper's log:\n{shipper.log()}" if shipper else ""))
        time.sleep(0.2)


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    server = S3Server(tmp_path).start()
    server.make_bucket(BUCKET)
    yield server
    server.stop()


def stranger_owns(path: Path, mode: int) -> None:
    os.chown(path, STRANGER, STRANGER)
    path.chmod(mode)


class Program:
    """The real shipper program, without the file-permission bypass, with a short interval."""

    def __init__(self, s3: S3Server, logs: Path, workdir: Path) -> None:
        config = workdir / "shipper.json"
        config.write_text(json.dumps({
            "logs_dir": str(logs), "bucket": BUCKET, "s3cmd": s3.s3cmd, "s3cmd_config": str(s3.config),
            "interval": 0.3, "max_backoff": 1,
        }))
        self.stderr_path = workdir / "shipper.log"
        self.stderr = open(self.stderr_path, "w")  # noqa: SIM115 - the child writes it
        self.process = subprocess.Popen(
            ["setpriv", f"--bounding-set={WITHOUT_DAC}", f"--inh-caps={WITHOUT_DAC}", "--",
             sys.executable, shipper_module.__file__, "--config", str(config)],
            stderr=self.stderr, env={**os.environ, "HOME": str(workdir)},
        )

    def log(self) -> str:
        return self.stderr_path.read_text()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        finally:
            self.stderr.close()


@pytest.fixture
def program(s3: S3Server, tmp_path: Path) -> Iterator:
    started: list[Program] = []

    def start(logs: Path) -> Program:
        started.append(Program(s3, logs, tmp_path))
        return started[-1]

    yield start
    for running in started:
        if running.alive():
            running.process.kill()


def logs_of(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    return logs


def key(uuid: str) -> str:
    return f"{uuid}/{uuid}-stdout.txt"


def test_an_unreadable_job_directory_is_skipped_and_said_once(s3, tmp_path, program):
    logs = logs_of(tmp_path)
    bad = write_job(logs, BAD)
    stranger_owns(bad, 0o700)  # as a container running as root may leave it
    write_job(logs, GOOD, "good\n")
    shipper = program(logs)
    wait_for(lambda: key(GOOD) in s3.objects(BUCKET), shipper=shipper)
    write_job(logs, LATER, "later\n")
    wait_for(lambda: key(LATER) in s3.objects(BUCKET), shipper=shipper)
    assert shipper.alive()
    assert key(BAD) not in s3.objects(BUCKET)
    assert shipper.log().count(f"cannot read the job directory {bad}") == 1
    assert shipper.stop() == 0


def test_an_unreadable_file_is_skipped_and_its_neighbour_ships(s3, tmp_path, program):
    logs = logs_of(tmp_path)
    job = write_job(logs, BAD, "readable\n")
    secret = job / f"{BAD}-stderr.txt"
    stranger_owns(secret, 0o600)
    shipper = program(logs)
    wait_for(lambda: key(BAD) in s3.objects(BUCKET), shipper=shipper)
    write_job(logs, LATER, "later\n")
    wait_for(lambda: key(LATER) in s3.objects(BUCKET), shipper=shipper)
    time.sleep(1)
    assert shipper.alive()
    assert f"{BAD}/{BAD}-stderr.txt" not in s3.objects(BUCKET)
    assert shipper.log().count(f"cannot read {secret}") == 1
    # Readable again: it ships, without a restart.
    secret.chmod(0o644)
    wait_for(lambda: f"{BAD}/{BAD}-stderr.txt" in s3.objects(BUCKET), shipper=shipper)
    assert shipper.stop() == 0


def test_a_missing_logs_directory_is_waited_for(s3, tmp_path, program):
    logs = tmp_path / "logs"
    shipper = program(logs)
    wait_for(lambda: "cannot read the logs directory" in shipper.log(), shipper=shipper)
    time.sleep(1)
    assert shipper.alive()
    logs_of(tmp_path)
    write_job(logs, GOOD, "after the wait\n")
    wait_for(lambda: key(GOOD) in s3.objects(BUCKET), shipper=shipper)
    assert s3.objects(BUCKET)[key(GOOD)] == b"after the wait\n"
    assert shipper.stop() == 0


# --- in-process: the real S3 API and s3cmd, one fault injected ----------------


class Vanishing(S3cmd):
    """Deletes one file just before s3cmd uploads it (as a job cleaning up would)."""

    def __init__(self, settings: Settings, victim: Path) -> None:
        super().__init__(settings)
        self.victim = victim

    def put(self, directory: str, names: list[str], destination: str) -> None:
        if self.victim.exists() and self.victim.name in names:
            self.victim.unlink()
        super().put(directory, names, destination)


class FailingFor(S3cmd):
    """S3 refuses every upload of one job directory; the others go through."""

    def __init__(self, settings: Settings, job: str) -> None:
        super().__init__(settings)
        self.job = job
        self.refused = 0

    def put(self, directory: str, names: list[str], destination: str) -> None:
        if directory.endswith(self.job):
            self.refused += 1
            raise S3Error("s3cmd put exited 77: ERROR: S3 error: 403 (AccessDenied)")
        super().put(directory, names, destination)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def settings_for(s3: S3Server, logs: Path, **overrides) -> Settings:
    return Settings(**{"logs_dir": str(logs), "bucket": BUCKET, "s3cmd": s3.s3cmd,
                       "s3cmd_config": str(s3.config), "interval": 1, "max_backoff": 8, **overrides})


def test_a_file_that_vanishes_does_not_stop_the_others(s3, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    settings = settings_for(s3, logs)
    shipper = Shipper(settings, s3=S3cmd(settings))
    shipper.reconcile()
    victim = write_job(logs, BAD) / f"{BAD}-stdout.txt"
    write_job(logs, GOOD, "good\n")
    shipper.s3 = Vanishing(settings, victim)
    shipper.cycle()  # no exception: GOOD shipped, BAD's batch failed
    assert key(GOOD) in s3.objects(BUCKET)
    shipper.cycle()  # BAD's remaining file goes alone; the vanished one is forgotten
    assert sorted(k for k in s3.objects(BUCKET) if k.startswith(BAD)) == [f"{BAD}/{BAD}-stderr.txt"]
    assert victim.name not in shipper.open[BAD].files


def test_one_jobs_failing_upload_never_holds_back_another(s3, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    settings = settings_for(s3, logs)
    failing = FailingFor(settings, BAD)
    clock = Clock()
    shipper = Shipper(settings, s3=failing, clock=clock)
    write_job(logs, BAD)
    write_job(logs, GOOD, "good\n")
    shipper.reconcile()  # ships GOOD; BAD fails on its own
    assert key(GOOD) in s3.objects(BUCKET) and key(BAD) not in s3.objects(BUCKET)
    assert failing.refused == 1
    for text in ("later 1\n", "later 2\n", "later 3\n"):
        write_job(logs, LATER, text)
        assert shipper.cycle() >= 1
        assert s3.objects(BUCKET)[key(LATER)] == text.encode()
    # BAD waits for its own backoff, not the others' cycles ...
    assert failing.refused == 1
    # ... then its files are tried again, one by one.
    clock.now += settings.interval * 2
    shipper.cycle()
    assert failing.refused == 3
    # The reconcile goes on for the rest.
    shipper.last_reconcile = None
    shipper.step()
    assert shipper.stats["reconciles"] == 2


def test_a_growing_log_costs_at_most_three_times_its_size(s3, tmp_path):
    """A log written line by line across many cycles, grown past the small
    size: its uploads add up to less than 3x its final size, and the final
    version is in S3 once it stops changing for one cycle."""
    logs = tmp_path / "logs"
    logs.mkdir()
    settings = settings_for(s3, logs, small_file=64 * 1024, background_file=1 << 40)
    shipper = Shipper(settings)
    shipper.reconcile()
    job = logs / GOOD
    job.mkdir()
    log = job / f"{GOOD}-stdout.txt"
    line = b"x" * 1023 + b"\n"
    with open(log, "ab") as handle:
        for _cycle in range(200):
            handle.write(line * 10)  # 10 KiB per cycle, 2 MiB in all
            handle.flush()
            shipper.cycle()
    final = log.stat().st_size
    assert s3.objects(BUCKET)[key(GOOD)] != log.read_bytes()  # the last lines wait ...
    shipper.cycle()  # ... one quiet cycle
    assert s3.objects(BUCKET)[key(GOOD)] == log.read_bytes()
    assert shipper.stats["bytes"] < 3 * final
    # Upstream's loop would have sent it whole every cycle: about 100x here.
    print(f"uploaded {shipper.stats['bytes']} bytes for a {final}-byte log")


def test_a_small_log_is_not_held_back_by_a_large_upload(s3, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    settings = settings_for(s3, logs, background_file=1024 * 1024)
    shipper = Shipper(settings)
    shipper.reconcile()
    big = logs / BAD
    big.mkdir()
    (big / "big.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    shipper.cycle()
    assert len(shipper.background) == 1  # running, the cycle did not wait
    write_job(logs, GOOD, "small\n")
    shipper.cycle()
    assert s3.objects(BUCKET)[key(GOOD)] == b"small\n"
    shipper.poll_background(wait=60)
    assert len(s3.objects(BUCKET)[f"{BAD}/big.bin"]) == 8 * 1024 * 1024
