"""A new code version restarts every instance and is recorded in local facts."""

from __future__ import annotations

import json
import uuid as uuidlib

# Tags are pins: git refuses to move one, so every run makes a new one.
NEXT = f"testbed-next-{uuidlib.uuid4().hex[:8]}"


def facts(fleet) -> dict:
    return json.loads(fleet.sh(fleet.workers[0], "cat /etc/ansible/facts.d/saltant_worker.fact"))


def test_new_version_restarts_the_workers_and_runs_jobs(fleet):
    worker = fleet.workers[0]
    unit = "saltant-worker@default.service"
    old_commit = facts(fleet)["commit"]
    commit = fleet.publish_worker_version(NEXT)
    before = fleet.unit_property(worker, unit, "MainPID")

    # The worker's role alone: only its code changes (the preflight runs too).
    assert fleet.playbook("--tags", "saltant_worker", extra_vars={"saltant_worker_version": NEXT}).returncode == 0
    assert facts(fleet)["commit"] == commit
    assert fleet.sh(worker, "git -C /opt/saltant-worker/src rev-parse HEAD").strip() == commit
    after = fleet.unit_property(worker, unit, "MainPID")
    assert after not in ("0", before)
    uuid = fleet.publish(
        "thistaskqueue", task_class="executable", command_to_run="true",
        env_vars_list=[], args_dict={}, json_file_option=None,
    )
    assert fleet.wait_states(uuid) == ["running", "successful"]

    # Back to the pinned version of the inventory (the worker's role alone).
    assert fleet.playbook("--tags", "saltant_worker").returncode == 0
    assert facts(fleet)["commit"] == old_commit


def test_a_facts_only_run_keeps_what_it_did_not_install_and_hides_credentials(fleet):
    """--tags saltant_worker_facts checks nothing out and builds nothing: the
    fact keeps the commit, Python and pip of the host; a repository URL with
    credentials is recorded without them (the fact file is world-readable)."""
    worker = fleet.workers[0]
    before = facts(fleet)
    head = fleet.sh(worker, "git -C /opt/saltant-worker/src rev-parse HEAD").strip()
    password = "SECRET-git-5b1e"
    try:
        result = fleet.playbook("--tags", "saltant_worker_facts", extra_vars={
            "saltant_worker_repo": f"https://deploy:{password}@git.example.org/saltant.git"})
        assert result.returncode == 0
        assert password not in result.stdout + result.stderr
        after = facts(fleet)
        assert after["repo"] == "https://git.example.org/saltant.git"
        assert password not in fleet.sh(worker, "cat /etc/ansible/facts.d/saltant_worker.fact")
        assert after["commit"] == head != ""
        for key in ("python", "pip_version", "requirements", "requirements_path"):
            assert after[key] == before[key] != ""
    finally:
        assert fleet.playbook("--tags", "saltant_worker_facts").returncode == 0
    assert facts(fleet) == before
