"""A host where nothing changed is skipped; any drift from the record of its
last complete run, changed inputs, or an incomplete run give it a full run
that repairs it (the fleet_state role)."""

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
    """Did the play reach the roles (not only the comparison with the record)?"""
    return "TASK [ca_trust : Install the ca-certificates package]" in output


def said(output: str) -> str:
    """The output with its line breaks and indentation as single spaces (the
    YAML callback folds long messages)."""
    return " ".join(output.split())


def ran(output: str, task: str) -> bool:
    """Did this task (ROLE : NAME) run on a host, rather than being skipped?"""
    _, found, rest = output.partition(f"TASK [{task}]")
    block = rest.split("\nTASK [", 1)[0]
    return bool(found) and ("ok: [" in block or "changed: [" in block)


def test_an_unchanged_host_is_skipped_and_drift_or_new_inputs_give_a_full_run(fleet):
    try:
        check_skipping_and_repair(fleet)
    except BaseException:
        # The test stops units and edits files by hand: put the host back for
        # the tests that follow.
        fleet.playbook()
        raise


def check_skipping_and_repair(fleet) -> None:
    worker = fleet.workers[0]
    settled = fleet.playbook()
    assert settled.returncode == 0, settled.stdout[-3000:]
    assert fact(fleet, worker)["intact"] is True
    pid = fleet.unit_property(worker, UNIT, "MainPID")

    # Nothing changed: the host leaves the play after the comparison.
    result = fleet.playbook()
    assert result.returncode == 0 and not provisioned(result.stdout)
    assert "running every task" not in result.stdout
    assert all(counts.get("changed", 0) == 0 for counts in recap(result.stdout).values())
    assert fleet.unit_property(worker, UNIT, "MainPID") == pid
    assert fleet.sh(worker, f"stat -c '%U %a' {RECORD} $(dirname {RECORD})").split() == ["root", "600", "root", "700"]
    # Its inputs passed the checks of the run that wrote the record: the
    # preflight does not check them again.
    assert "TASK [fleet_check : " not in result.stdout
    assert "TASK [saltant_worker : Check " not in result.stdout

    # workers.yml on its own sees the roles' defaults the preflight play does
    # not: one digest all the same, so it skips the host too.
    alone = fleet.playbook(playbook="playbooks/workers.yml")
    assert alone.returncode == 0 and not provisioned(alone.stdout), alone.stdout[-3000:]
    # The preflight play on its own loads no role but fleet_state: the
    # comparison reads the other roles' defaults itself, as templates, and
    # gives the same digests (the inputs match: no checks).
    checked = fleet.playbook(playbook="playbooks/preflight.yml")
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert "TASK [fleet_check : " not in checked.stdout

    # The comparison reads the host with one shell command, not with facts.
    # A value computed from a fact it does not read (the number of CPUs)
    # makes it gather them: the same value, the same digest, no run.
    assert "TASK [Gather the facts the checks and the roles read]" not in result.stdout
    computed = fleet.playbook(extra_vars={
        "saltant_worker_loglevel": "{{ 'INFO' if ansible_processor_vcpus | int > 0 else 'DEBUG' }}"})
    assert computed.returncode == 0 and not provisioned(computed.stdout), computed.stdout[-3000:]

    # A bad value is a new input: the checks run again and refuse it by name
    # before anything changes, and the record still holds.
    record = fleet.sh(worker, f"sha256sum {RECORD}")
    refused = fleet.playbook(extra_vars={"saltant_worker_concurrency": "eight", "saltant_worker_instance": []})
    assert refused.returncode != 0
    assert f"{worker}: " in refused.stdout and "saltant_worker_concurrency" in refused.stdout
    assert "saltant_worker_instance is not a variable of the roles" in refused.stdout
    assert "did you mean saltant_worker_instances" in refused.stdout
    assert not provisioned(refused.stdout)
    assert fleet.sh(worker, f"sha256sum {RECORD}") == record
    assert fleet.unit_property(worker, UNIT, "MainPID") == pid

    # Drift by hand: the fact names each difference.
    env_before = fleet.sh(worker, f"sha256sum {ENV}")
    fleet.sh(worker, f"echo 'CELERY_BROKER_URL=amqp://elsewhere//' >> {ENV}")
    fleet.sh(worker, f"chmod 0777 {LOGS}")
    fleet.sh(worker, f"systemctl stop {UNIT}")
    seen = fact(fleet, worker)
    assert seen["intact"] is False
    assert {f"paths {ENV}", f"paths {LOGS}", f"units {UNIT}"} <= set(seen["drift"])

    # A run with new inputs and --tags: it says why it runs, and it is not
    # complete (one role's tasks of one tag), so it leaves no record.
    tagged = fleet.playbook("--tags", "saltant_worker_facts", extra_vars={"saltant_worker_loglevel": "WARNING"})
    assert tagged.returncode == 0, tagged.stdout[-3000:]
    # Only the worker's role changed (its variable, its files): the others
    # match their record.
    assert f"{worker}: running every task of saltant_worker (the inputs changed" in said(tagged.stdout)
    assert f"paths {ENV}" in tagged.stdout
    assert "log_shipper (" not in tagged.stdout and "ca_trust (" not in tagged.stdout
    # The worker's role is forgotten until a complete run; the others keep their record.
    roles = fact(fleet, worker)["roles"]
    assert "saltant_worker" not in roles and {"ca_trust", "log_shipper"} <= set(roles)

    # The next run is full and repairs everything; the one after is skipped.
    full = fleet.playbook()
    assert full.returncode == 0, full.stdout[-3000:]
    assert f"{worker}: running every task of saltant_worker (no record of a complete run)'" in said(full.stdout)
    # The roles whose inputs and results match their record are skipped.
    assert ran(full.stdout, "saltant_worker : Write the worker's .env (secrets; readable by the worker's group only)")
    assert not ran(full.stdout, "log_shipper : Create the configuration directory and write the loop's settings")
    assert not ran(full.stdout, "ca_trust : Install the ca-certificates package")
    assert fleet.sh(worker, f"sha256sum {ENV}") == env_before
    assert fleet.sh(worker, f"stat -c %a {LOGS}").strip() == "2770"
    assert fleet.unit_property(worker, UNIT, "ActiveState") == "active"
    assert fact(fleet, worker)["intact"] is True
    assert not provisioned(fleet.playbook().stdout)


def test_a_local_change_to_the_checkout_is_drift(fleet):
    worker = fleet.workers[0]
    assert fact(fleet, worker)["intact"] is True
    fleet.sh(worker, "echo '# local' >> /opt/saltant-worker/src/README.md")
    try:
        assert "git /opt/saltant-worker/src" in fact(fleet, worker)["drift"]
    finally:
        fleet.sh(worker, "git -C /opt/saltant-worker/src checkout -- README.md")
    assert fact(fleet, worker)["intact"] is True
