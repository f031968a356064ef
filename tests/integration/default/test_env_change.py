"""A new .env setting restarts the workers, and the run that writes it never
prints a secret (one verbose --diff run, shared by both tests)."""

from __future__ import annotations

import pytest


def pid(fleet) -> str:
    return fleet.unit_property(fleet.workers[0], "saltant-worker@default.service", "MainPID")


@pytest.fixture(scope="module")
def env_change(fleet):
    """One verbose --diff run that changes a .env setting, shared by the tests
    that check what it restarts and what it prints; then back to the
    inventory's value (a run whose output is checked too; untagged, so that
    it leaves the record of a complete run and later runs skip the host)."""
    before = pid(fleet)
    result = fleet.playbook("--diff", "-v", extra_vars={"saltant_worker_env_extra": {"TESTBED_GREETING": "changed"}})
    yield before, result
    restored = fleet.playbook("--diff", "-v")
    assert restored.returncode == 0
    assert ".env" in restored.stdout
    for secret in fleet.secrets.values():
        assert secret not in restored.stdout + restored.stderr


def test_new_env_setting_restarts_the_workers(fleet, env_change):
    before, result = env_change
    assert result.returncode == 0
    assert pid(fleet) != before
    uuid = fleet.publish(
        "thistaskqueue", task_class="executable", command_to_run='sh -c "echo $TESTBED_GREETING"',
        env_vars_list=["TESTBED_GREETING"], args_dict={}, json_file_option=None,
    )
    assert fleet.wait_states(uuid) == ["running", "successful"]
    assert fleet.sh(fleet.workers[0], f"cat /var/lib/saltant-worker/logs/{uuid}/{uuid}-stdout.txt").strip() == "changed"


def test_converge_output_never_shows_secrets(fleet, env_change):
    """A verbose --diff run that rewrites .env (the file with every secret)."""
    _, result = env_change
    output = result.stdout + result.stderr
    assert result.returncode == 0
    assert ".env" in output
    for secret in fleet.secrets.values():
        assert secret not in output
