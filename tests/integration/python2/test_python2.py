"""Python 2.7 workers: switching to Python 3 rebuilds, worker_src passes on 2.7.

(Asking for Python 2 on Debian 12 is tests/integration/default/test_python_choice.py.)
"""

from __future__ import annotations

import re

PY27 = "python-worker27"
VENV = "/opt/saltant-worker/venv"


def job_python(fleet, queue: str) -> str:
    """Run a job that prints its python's version; return that line."""
    uuid = fleet.publish(queue, task_class="executable", command_to_run="sh -c 'python --version 2>&1'",
                         env_vars_list=[], args_dict={}, json_file_option=None)
    assert fleet.wait_states(uuid) == ["running", "successful"]
    return fleet.sh(PY27, f"cat /var/lib/saltant-worker/logs/{uuid}/{uuid}-stdout.txt").strip()


def test_worker_src_unit_tests_pass_on_python_27(fleet):
    """worker_src's own unit tests, run with the Debian 11 host's Python 2.7
    in a throwaway virtualenv made by the role's virtualenv tool."""
    venv = "/var/tmp/worker-src-py27-tests"
    req = "/opt/saltant-worker/src/requirements"
    fleet.sh(PY27, f"rm -rf {venv} && /opt/saltant-worker/virtualenv/bin/virtualenv -q -p python2.7 {venv}"
                   f" && {venv}/bin/pip install -q -r {req}/requirements-worker-python2.txt"
                   f" -r {req}/requirements-docker-python2.txt -r {req}/requirements-test.txt")
    result = fleet.sh(PY27, f"cd /opt/saltant-worker/src && {venv}/bin/python --version 2>&1"
                            f" && {venv}/bin/python -m pytest -q -p no:cacheprovider tests 2>&1; echo rc=$?")
    print(result[-3000:])
    assert result.startswith("Python 2.7.")
    summary = re.search(r"(\d+) passed", result)
    assert summary and int(summary.group(1)) >= 150
    assert "failed" not in result.splitlines()[-2] and result.strip().endswith("rc=0")
    fleet.sh(PY27, f"rm -rf {venv}")


def test_switching_python_rebuilds_the_environment_and_restarts(fleet):
    unit = "saltant-worker@py27.service"
    assert job_python(fleet, "py2queue").startswith("Python 2.7.")
    pid = fleet.unit_property(PY27, unit, "MainPID")
    try:
        result = fleet.playbook("--limit", PY27, extra_vars={"saltant_worker_python_version": 3})
        assert result.returncode == 0
        assert fleet.unit_property(PY27, unit, "MainPID") not in ("0", pid)
        # A fresh Python 3 environment: no Python 2 leftovers, no virtualenv tool.
        assert fleet.sh(PY27, f"ls {VENV}/lib").split() == ["python3.9"]
        assert "virtualenv" not in fleet.sh(PY27, "ls /opt/saltant-worker").split()
        assert job_python(fleet, "py2queue").startswith("Python 3.9")
    finally:
        # Back to the inventory's Python (only the worker's role changed).
        assert fleet.playbook("--limit", PY27, "--tags", "saltant_worker").returncode == 0
    assert fleet.sh(PY27, f"ls {VENV}/lib").split() == ["python2.7"]
    assert job_python(fleet, "py2queue").startswith("Python 2.7.")
    again = fleet.playbook("--limit", PY27, "--tags", "saltant_worker", extra_vars={"fleet_state_full_run": True})
    assert again.returncode == 0 and re.search(rf"{PY27}\s+: ok=\d+\s+changed=0\s", again.stdout)
