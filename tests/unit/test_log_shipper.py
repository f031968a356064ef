"""The log shipper against a real S3 API (moto server) with the real s3cmd."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import saltant_log_shipper as shipper_module
from saltant_log_shipper import S3cmd, S3Error, Settings, Shipper

from testbed.s3.server import S3Server

ROOT = Path(__file__).resolve().parents[2]

BUCKET = "saltant-logs"
UUID_A = "0f6d3e4a-0000-4000-8000-00000000000a"
UUID_B = "0f6d3e4a-0000-4000-8000-00000000000b"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def s3(tmp_path: Path):
    server = S3Server(tmp_path).start()
    server.make_bucket(BUCKET)
    yield server
    server.stop()


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


def write_job(logs: Path, uuid: str, stdout: str = "out\n", stderr: str = "err\n") -> Path:
    job = logs / uuid
    job.mkdir(exist_ok=True)
    (job / f"{uuid}-stdout.txt").write_text(stdout)
    (job / f"{uuid}-stderr.txt").write_text(stderr)
    return job


def make_shipper(s3: S3Server, logs: Path, clock=None, **overrides) -> Shipper:
    values = {"logs_dir": str(logs), "bucket": BUCKET, "s3cmd": s3.s3cmd, "s3cmd_config": str(s3.config)}
    settings = Settings(**{**values, **overrides})
    return Shipper(settings, clock=clock or time.time)


def test_reconcile_ships_every_file_as_uuid_slash_name(s3, logs):
    write_job(logs, UUID_A, stdout="hello\n")
    make_shipper(s3, logs).reconcile()
    assert s3.objects(BUCKET) == {
        f"{UUID_A}/{UUID_A}-stdout.txt": b"hello\n",
        f"{UUID_A}/{UUID_A}-stderr.txt": b"err\n",
    }


def test_prefix_puts_objects_under_it(s3, logs):
    shipper = make_shipper(s3, logs, prefix="/fleet-a/")
    shipper.reconcile()
    write_job(logs, UUID_A)
    assert shipper.cycle() == 2
    assert sorted(s3.objects(BUCKET)) == [
        f"fleet-a/{UUID_A}/{UUID_A}-stderr.txt", f"fleet-a/{UUID_A}/{UUID_A}-stdout.txt"]


def shipped_history(s3: S3Server, logs: Path, count: int = 20) -> Shipper:
    """A shipper that has reconciled ``count`` job directories."""
    for index in range(count):
        write_job(logs, f"{UUID_A[:-2]}{index:02d}")
    shipper = make_shipper(s3, logs)
    shipper.reconcile()
    return shipper


def test_an_idle_cycle_makes_no_s3_request(s3, logs):
    shipper = shipped_history(s3, logs)
    before = s3.requests()
    assert shipper.cycle() == 0
    assert shipper.cycle() == 0
    assert s3.requests() == before


def test_a_new_job_costs_its_uploads_only(s3, logs):
    shipper = shipped_history(s3, logs)
    before = s3.requests()
    write_job(logs, UUID_B, stdout="new job\n")
    assert shipper.cycle() == 2
    assert s3.requests() - before == 2  # two PUTs, no listing
    assert s3.objects(BUCKET)[f"{UUID_B}/{UUID_B}-stdout.txt"] == b"new job\n"


def test_a_growing_file_is_uploaded_again(s3, logs):
    shipper = make_shipper(s3, logs)
    shipper.reconcile()
    job = write_job(logs, UUID_A, stdout="line 1\n")
    assert shipper.cycle() == 2
    with open(job / f"{UUID_A}-stdout.txt", "a") as handle:
        handle.write("line 2\n")
    assert shipper.cycle() == 1
    assert s3.objects(BUCKET)[f"{UUID_A}/{UUID_A}-stdout.txt"] == b"line 1\nline 2\n"


def test_s3_outage_loses_nothing(s3, logs):
    shipper = make_shipper(s3, logs)
    shipper.reconcile()
    s3.stop()
    write_job(logs, UUID_A, stdout="during outage A\n")
    write_job(logs, UUID_B, stdout="during outage B\n")
    with pytest.raises(S3Error):
        shipper.cycle()
    with pytest.raises(S3Error):
        shipper.cycle()
    # S3 is back, empty: the bucket is made again, then the next cycle ships all.
    s3.start()
    s3.make_bucket(BUCKET)
    assert shipper.cycle() == 4
    objects = s3.objects(BUCKET)
    assert objects[f"{UUID_A}/{UUID_A}-stdout.txt"] == b"during outage A\n"
    assert objects[f"{UUID_B}/{UUID_B}-stdout.txt"] == b"during outage B\n"
    assert sorted(os.listdir(logs)) == [UUID_A, UUID_B]


def test_create_bucket_makes_a_missing_bucket(s3, logs, tmp_path):
    shipper = make_shipper(s3, logs, create_bucket=True, bucket="another-bucket")
    write_job(logs, UUID_A)
    with pytest.raises(S3Error, match="NoSuchBucket"):
        shipper.step()
    shipper.step()
    assert sorted(s3.objects("another-bucket")) == [f"{UUID_A}/{UUID_A}-stderr.txt", f"{UUID_A}/{UUID_A}-stdout.txt"]


def test_a_settled_directory_is_no_longer_looked_at_until_the_next_reconcile(s3, logs):
    clock = Clock()
    shipper = make_shipper(s3, logs, clock=clock, settle=60, full_interval=3600)
    shipper.reconcile()
    job = write_job(logs, UUID_A)
    assert shipper.cycle() == 2
    clock.now += 61
    shipper.cycle()
    assert UUID_A not in shipper.open
    (job / f"{UUID_A}-stdout.txt").write_text("late change\n")
    assert shipper.cycle() == 0  # not looked at ...
    clock.now += 3600
    assert shipper.due_for_reconcile()
    shipper.step()  # ... until the reconcile, which ships it
    assert s3.objects(BUCKET)[f"{UUID_A}/{UUID_A}-stdout.txt"] == b"late change\n"


def test_retention_deletes_only_shipped_old_directories(s3, logs):
    old = write_job(logs, UUID_A)
    past = time.time() - 10 * 86400
    for path in [*old.iterdir(), old]:
        os.utime(path, (past, past))
    write_job(logs, UUID_B)
    shipper = make_shipper(s3, logs, retention_days=7)
    shipper.reconcile()
    assert sorted(os.listdir(logs)) == [UUID_B]
    assert f"{UUID_A}/{UUID_A}-stdout.txt" in s3.objects(BUCKET)


def test_retention_keeps_everything_when_the_sync_fails(s3, logs):
    old = write_job(logs, UUID_A)
    past = time.time() - 10 * 86400
    for path in [*old.iterdir(), old]:
        os.utime(path, (past, past))
    s3.stop()
    with pytest.raises(S3Error):
        make_shipper(s3, logs, retention_days=7).reconcile()
    assert sorted(os.listdir(logs)) == [UUID_A]


def test_s3cmd_command_lines_carry_no_key(s3, logs):
    argv = S3cmd(make_shipper(s3, logs).settings).base()
    assert s3.secret_key not in " ".join(argv) and s3.access_key not in " ".join(argv)


def test_stop_runs_a_final_cycle_and_exits_zero(s3, logs, tmp_path):
    config = tmp_path / "shipper.json"
    config.write_text(json.dumps({"logs_dir": str(logs), "bucket": BUCKET, "s3cmd": s3.s3cmd,
                                  "s3cmd_config": str(s3.config), "interval": 30}))
    process = subprocess.Popen([sys.executable, shipper_module.__file__, "--config", str(config)],
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not s3.objects(BUCKET) and time.monotonic() < deadline:
            write_job(logs, UUID_A)  # shipped by the first reconcile
            time.sleep(0.5)
        # Written after the first reconcile; the next cycle is 30 s away.
        write_job(logs, UUID_B, stdout="written just before the stop\n")
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert s3.secret_key not in ps
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "final cycle done" in stderr
    assert s3.secret_key not in stderr
    assert s3.objects(BUCKET)[f"{UUID_B}/{UUID_B}-stdout.txt"] == b"written just before the stop\n"
