"""Upstream saltant's own worker: a queue shared by two hosts, and the two
ways a deployment fails that the role must name (a requirement set that
cannot install, a worker that exits at start)."""

from __future__ import annotations

import re

import pytest

PY39 = "python-upstream39"
PY27 = "python-upstream27"
SHARED_QUEUE = "upstream-shared"


def cache_file(fleet, name: str) -> str:
    """A value the test bed wrote beside the bundle it serves (testbed/bin/upstream-repo)."""
    return (fleet.cache / name).read_text().strip()


def changed_zero_for(output: str, host: str) -> bool:
    return re.search(rf"{host}\s+: ok=\d+\s+changed=0\s", output) is not None


def test_a_queue_shared_by_two_hosts_reaches_both(fleet):
    uuids = [
        fleet.publish(SHARED_QUEUE, task_class="executable", command_to_run="sh -c 'sleep 1; hostname'",
                      env_vars_list=[], args_dict={}, json_file_option=None)
        for _ in range(6)
    ]
    ran_on = set()
    for uuid in uuids:
        assert fleet.wait_states(uuid) == ["running", "successful"]
        for host in (PY39, PY27):
            out = fleet.sh(host, f"cat /var/lib/saltant-worker/logs/{uuid}/{uuid}-stdout.txt 2>/dev/null", check=False)
            if out.strip():
                assert out.strip() == host
                ran_on.add(host)
    assert ran_on == {PY39, PY27}


@pytest.fixture(scope="module")
def py39_back_on_its_pin(fleet):
    """The failed deployments below leave PY39's checkout on a broken
    version; the last of them puts the host back and checks it. If that one
    did not run (or failed before), the end of this module does."""
    yield
    head = fleet.sh(PY39, "git -C /opt/saltant-worker/src rev-parse HEAD").strip()
    if head != cache_file(fleet, "saltant.commit"):
        assert fleet.playbook("--limit", PY39, "--tags", "saltant_worker").returncode == 0


def test_a_requirement_set_that_cannot_install_fails_with_a_message(fleet, py39_back_on_its_pin):
    """A code version whose requirements pin a release that does not exist:
    the run fails on that host naming pip, the set and pip's own reason, and
    the running worker keeps serving jobs with the installed code."""
    unit = "saltant-worker@upstream.service"
    pid = fleet.unit_property(PY39, unit, "MainPID")
    result = fleet.playbook("--limit", PY39,
                            extra_vars={"saltant_worker_version": cache_file(fleet, "saltant-bad-pin.commit")})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{PY39}: pip 24.0 could not install the requirement set tree" in output
    assert "requirements-worker-python3.txt" in output
    assert "timeout-decorator==99.0.0" in output
    assert "saltant_worker_requirements" in output
    assert "Traceback" not in output
    # Nothing restarted; the worker still runs jobs.
    assert fleet.unit_property(PY39, unit, "MainPID") == pid
    uuid = fleet.publish("upstream39", task_class="executable", command_to_run="true",
                         env_vars_list=[], args_dict={}, json_file_option=None)
    assert fleet.wait_states(uuid) == ["running", "successful"]


def test_a_worker_that_exits_at_start_fails_the_run_on_its_host(fleet, py39_back_on_its_pin):
    """A code version whose settings module raises: the restarted instances
    never answer a Celery ping, and the run fails on that host with the
    instances, the timeout variable and the worker's own last words."""
    try:
        result = fleet.playbook("--limit", PY39, extra_vars={
            "saltant_worker_version": cache_file(fleet, "saltant-broken-settings.commit"),
            "saltant_worker_start_timeout": 20,
        })
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert re.search(rf"{PY39}: the worker instance\(s\) (upstream, shared|shared, upstream)\s+did not answer"
                         r"\s+a Celery ping within 20 s \(saltant_worker_start_timeout\)", output)
        assert "testbed: this settings module is broken on purpose" in output
        assert fleet.secrets["vault_testbed_api_token"] not in output
        assert fleet.secrets["vault_testbed_broker_password"] not in output
    finally:
        # Only the worker's role changed: it alone puts the host back.
        restored = fleet.playbook("--limit", PY39, "--tags", "saltant_worker")
        assert restored.returncode == 0
    # Back on the pinned commit, both instances answer and run jobs again.
    assert fleet.unit_property(PY39, "saltant-worker@upstream.service", "ActiveState") == "active"
    uuid = fleet.publish("upstream39", task_class="executable", command_to_run="true",
                         env_vars_list=[], args_dict={}, json_file_option=None)
    assert fleet.wait_states(uuid) == ["running", "successful"]
    assert changed_zero_for(fleet.playbook("--limit", PY39, "--tags", "saltant_worker").stdout, PY39)
