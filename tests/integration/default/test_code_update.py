"""A new code version restarts every instance and is recorded in local facts."""

from __future__ import annotations

import json
import uuid as uuidlib

# Tags are pins: git refuses to move one, so every run makes a new one.
NEXT = f"testbed-next-{uuidlib.uuid4().hex[:8]}"


def publish_next_version(fleet) -> str:
    """Commit a change on top of the served version and tag it NEXT."""
    script = f"""
set -e
rm -rf /tmp/next && git clone -q /srv/git/saltant-worker.git /tmp/next && cd /tmp/next
git checkout -q testbed
echo 'next version' > NEXT_VERSION && git add NEXT_VERSION
git -c user.name=test -c user.email=test@localhost commit -qm 'next version'
git tag {NEXT}
git push -q origin {NEXT}
git rev-parse HEAD
"""
    return fleet.sh(fleet.broker, script).strip()


def facts(fleet) -> dict:
    return json.loads(fleet.sh(fleet.workers[0], "cat /etc/ansible/facts.d/saltant_worker.fact"))


def test_new_version_restarts_the_workers_and_runs_jobs(fleet):
    worker = fleet.workers[0]
    unit = "saltant-worker@default.service"
    old_commit = facts(fleet)["commit"]
    commit = publish_next_version(fleet)
    before = fleet.unit_property(worker, unit, "MainPID")

    assert fleet.playbook(extra_vars={"saltant_worker_version": NEXT}).returncode == 0
    assert facts(fleet)["commit"] == commit
    assert fleet.sh(worker, "git -C /opt/saltant-worker/src rev-parse HEAD").strip() == commit
    after = fleet.unit_property(worker, unit, "MainPID")
    assert after not in ("0", before)
    uuid = fleet.publish(
        "thistaskqueue", task_class="executable", command_to_run="true",
        env_vars_list=[], args_dict={}, json_file_option=None,
    )
    assert fleet.wait_states(uuid) == ["running", "successful"]

    # Back to the pinned version of the inventory.
    assert fleet.playbook().returncode == 0
    assert facts(fleet)["commit"] == old_commit
