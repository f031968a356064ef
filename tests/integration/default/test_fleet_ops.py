"""Maintenance drains, resume and the fleet status table (the fleet_ops role,
playbooks/drain.yml, resume.yml and status.yml, saltant-worker-ctl)."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest

QUEUE = "thistaskqueue"
UNIT = "saltant-worker@default.service"


def job(fleet, seconds: float) -> str:
    return fleet.publish(QUEUE, task_class="executable", command_to_run=f"sh -c 'sleep {seconds}; echo done'",
                         env_vars_list=[], args_dict={}, json_file_option=None)


def wait_running(fleet, uuid: str, timeout: float = 60) -> None:
    assert "running" in fleet.wait_states(uuid, until=("running",), timeout=timeout)


def status(fleet, out: Path) -> dict:
    result = fleet.playbook(extra_vars={"fleet_ops_status_dir": str(out)}, playbook="playbooks/status.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    return {"output": result.stdout, **json.loads((out / "fleet-status.json").read_text())}


def row(report: dict, host: str, instance: str = "default") -> dict:
    return next(r for r in report["rows"] if r["host"] == host and r["instance"] == instance)


@pytest.fixture
def resumed(fleet):
    """Whatever a test leaves drained consumes again afterwards."""
    yield
    assert fleet.playbook(playbook="playbooks/resume.yml").returncode == 0


def test_the_status_table_shows_versions_queues_and_running_jobs(fleet, tmp_path, resumed):
    worker = fleet.workers[0]
    commit = (fleet.cache / "saltant-worker.commit").read_text().strip()
    python = fleet.sh(worker, "/opt/saltant-worker/venv/bin/python -c "
                              "'import platform; print(platform.python_version())'")
    uuid, release = fleet.held_job(QUEUE)
    try:
        report = status(fleet, tmp_path / "busy")
    finally:
        fleet.sh(worker, f"touch {release}")
    line = row(report, worker)
    assert line["queues"] == QUEUE and line["consuming"] == QUEUE
    assert line["unit"] == "active/running"
    assert line["commit"] == commit[:12] and report["hosts"][worker]["commit"] == commit
    assert line["python"] == python.strip() and line["celery"].startswith("5.")
    assert line["running_jobs"] == 1 and report["hosts"][worker]["instances"][0]["running_jobs"] == [uuid]
    assert isinstance(line["unshipped_logs"], int) and line["free_disk_gib"] > 0
    # The same rows as CSV, and the table in the play's output.
    with open(tmp_path / "busy" / "fleet-status.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["host"] == worker and rows[0]["running_jobs"] == "1" and rows[0]["commit"] == commit[:12]
    assert "consuming" in report["output"] and f"{worker}" in report["output"]
    assert fleet.wait_states(uuid)[-1] == "successful"
    fleet.sh(worker, f"rm -f {release}")
    assert row(status(fleet, tmp_path / "idle"), worker)["running_jobs"] == 0


def test_a_drained_host_finishes_its_job_takes_no_new_one_and_resumes(fleet, tmp_path, resumed):
    worker = fleet.workers[0]
    pid = fleet.unit_property(worker, UNIT, "MainPID")
    long_job, release = fleet.held_job(QUEUE)
    try:
        drained = fleet.playbook(playbook="playbooks/drain.yml")
        assert drained.returncode == 0, drained.stdout[-3000:]
        assert "stopped consuming" in drained.stdout and "1 jobs still running" in drained.stdout
        line = row(status(fleet, tmp_path / "drained"), worker)
        assert line["consuming"] == "drained" and line["running_jobs"] == 1
        queued = job(fleet, 0)
    finally:
        fleet.sh(worker, f"touch {release}")
    # The running job finishes; the new one waits in the queue.
    assert fleet.wait_states(long_job)[-1] == "successful"
    fleet.sh(worker, f"rm -f {release}")
    time.sleep(5)
    assert fleet.states(queued) == []
    # A second drain changes nothing.
    again = fleet.playbook(playbook="playbooks/drain.yml")
    assert again.returncode == 0 and "changed=0" in again.stdout
    resumed_run = fleet.playbook(playbook="playbooks/resume.yml")
    assert resumed_run.returncode == 0 and "changed=1" in resumed_run.stdout
    assert fleet.wait_states(queued)[-1] == "successful"
    assert row(status(fleet, tmp_path / "resumed"), worker)["consuming"] == QUEUE
    # Never a restart: the same worker process all along.
    assert fleet.unit_property(worker, UNIT, "MainPID") == pid


def test_a_drain_that_waits_returns_when_the_jobs_are_done_or_fails_the_host(fleet, resumed):
    worker = fleet.workers[0]
    uuid = job(fleet, 8)
    wait_running(fleet, uuid)
    waited = fleet.playbook(extra_vars={"fleet_ops_drain_wait": 120}, playbook="playbooks/drain.yml")
    assert waited.returncode == 0, waited.stdout[-3000:]
    # It returned after the job, not before.
    assert fleet.states(uuid)[-1] == "successful"
    assert fleet.playbook(playbook="playbooks/resume.yml").returncode == 0

    uuid, release = fleet.held_job(QUEUE)
    try:
        short = fleet.playbook(extra_vars={"fleet_ops_drain_wait": 2}, playbook="playbooks/drain.yml")
    finally:
        fleet.sh(worker, f"touch {release}")
    assert short.returncode != 0
    assert f"{worker}: the running jobs did not finish within 2 s (fleet_ops_drain_wait)" in short.stdout
    assert fleet.wait_states(uuid)[-1] == "successful"
    fleet.sh(worker, f"rm -f {release}")


def test_an_unknown_instance_is_refused_by_name(fleet):
    result = fleet.playbook(extra_vars={"fleet_ops_instances": ["nosuch"]}, playbook="playbooks/drain.yml")
    assert result.returncode != 0
    assert "no instance named nosuch on this host (it has: default)" in result.stdout
