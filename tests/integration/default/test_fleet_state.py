"""A host where nothing changed is skipped; any drift from the record of its
last complete run, or an incomplete run, gives it a full run that repairs it
(the fleet_state role)."""

from __future__ import annotations

import json

from helpers.recap import recap

UNIT = "saltant-worker@default.service"
ENV = "/opt/saltant-worker/src/.env"
LOGS = "/var/lib/saltant-worker/logs"
RECORD = "/var/lib/saltant-fleet/state/applied.json"


def fact(fleet, host: str) -> dict:
    return json.loads(fleet.sh(host, "/etc/ansible/facts.d/saltant_fleet.fact"))


def provisioned(output: str) -> bool:
    """Did any role's task run (not only the comparison with the record)?"""
    return "TASK [ca_trust : Install the ca-certificates package]" in output


def settle(fleet) -> None:
    """A complete run, so that the host has a record that matches."""
    result = fleet.playbook()
    assert result.returncode == 0, result.stdout[-3000:]
    assert fact(fleet, fleet.workers[0])["intact"] is True


def test_a_run_with_nothing_changed_skips_the_host(fleet):
    settle(fleet)
    worker = fleet.workers[0]
    pid = fleet.unit_property(worker, UNIT, "MainPID")
    result = fleet.playbook()
    output = result.stdout
    assert result.returncode == 0
    assert not provisioned(output)
    assert "running every task" not in output
    assert all(counts.get("changed", 0) == 0 for counts in recap(output).values())
    assert fleet.unit_property(worker, UNIT, "MainPID") == pid
    # The record is root's alone.
    assert fleet.sh(worker, f"stat -c '%U %a' {RECORD} $(dirname {RECORD})").split() == ["root", "600", "root", "700"]


def test_drift_gets_a_full_run_that_repairs_it(fleet):
    settle(fleet)
    worker = fleet.workers[0]
    env_before = fleet.sh(worker, f"sha256sum {ENV}")
    fleet.sh(worker, f"echo 'CELERY_BROKER_URL=amqp://elsewhere//' >> {ENV}")
    fleet.sh(worker, f"chmod 0777 {LOGS}")
    fleet.sh(worker, f"systemctl stop {UNIT}")
    seen = fact(fleet, worker)
    assert seen["intact"] is False
    assert f"paths {ENV}" in seen["drift"] and f"paths {LOGS}" in seen["drift"] and f"units {UNIT}" in seen["drift"]

    result = fleet.playbook()
    output = result.stdout
    assert result.returncode == 0, output[-3000:]
    assert f"{worker}: running every task:" in output and provisioned(output)
    assert fleet.sh(worker, f"sha256sum {ENV}") == env_before
    assert fleet.sh(worker, f"stat -c %a {LOGS}").strip() == "2770"
    assert fleet.unit_property(worker, UNIT, "ActiveState") == "active"
    assert fact(fleet, worker)["intact"] is True
    assert not provisioned(fleet.playbook().stdout)


def test_a_local_change_to_the_checkout_is_drift(fleet):
    settle(fleet)
    worker = fleet.workers[0]
    fleet.sh(worker, "echo '# local' >> /opt/saltant-worker/src/README.md")
    try:
        assert "git /opt/saltant-worker/src" in fact(fleet, worker)["drift"]
    finally:
        fleet.sh(worker, "git -C /opt/saltant-worker/src checkout -- README.md")
    assert fact(fleet, worker)["intact"] is True


def test_an_incomplete_run_leaves_no_record_and_the_next_run_is_full(fleet):
    settle(fleet)
    worker = fleet.workers[0]
    # A run of one role's tasks (--tags) applies part of what the inputs
    # say: it may not stand for a complete run.
    partial = fleet.playbook("--tags", "saltant_worker_facts", extra_vars={"fleet_state_full_run": True})
    assert partial.returncode == 0
    assert fleet.sh(worker, f"test -e {RECORD} && echo kept || echo none").strip() == "none"
    assert fact(fleet, worker)["intact"] is False
    full = fleet.playbook()
    assert full.returncode == 0 and provisioned(full.stdout)
    assert "no record of a complete run" in full.stdout
    assert fact(fleet, worker)["intact"] is True


def test_a_changed_input_gives_a_full_run(fleet):
    settle(fleet)
    result = fleet.playbook(extra_vars={"saltant_worker_loglevel": "WARNING"})
    try:
        assert result.returncode == 0
        assert "the inputs changed" in result.stdout and provisioned(result.stdout)
        assert "LOGLEVEL=WARNING" in fleet.unit_property(fleet.workers[0], UNIT, "Environment")
    finally:
        settle(fleet)
    assert "LOGLEVEL=INFO" in fleet.unit_property(fleet.workers[0], UNIT, "Environment")
