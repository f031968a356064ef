"""Python 2 asked for on a Debian 12 host stops the run before any change."""

from __future__ import annotations

import re

VENV = "/opt/saltant-worker/venv"
UNIT = "saltant-worker@default.service"


def test_python2_on_debian_12_stops_before_any_change(fleet):
    worker = fleet.workers[0]
    pid = fleet.unit_property(worker, UNIT, "MainPID")
    result = fleet.playbook("--limit", worker, extra_vars={"saltant_worker_python_version": 2})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (f"{worker}: saltant_worker_python_version is 2, but this host runs Debian 12" in output
            and "(bookworm), which has no Python 2.7 package" in output)
    assert "Python 2 workers run on Debian bullseye, Ubuntu focal/jammy" in output
    assert re.search(rf"{worker}\s+: ok=\d+\s+changed=0\s", output)
    # Nothing was built: still the Python 3 environment with Celery 5, no
    # Python 2 virtualenv tool, the same worker process.
    major, celery = fleet.sh(
        worker, f"{VENV}/bin/python -c 'import sys, celery; print(sys.version_info[0], celery.__version__)'"
    ).split()
    assert major == "3" and int(celery.split(".")[0]) >= 5
    assert "virtualenv" not in fleet.sh(worker, "ls /opt/saltant-worker").split()
    assert fleet.unit_property(worker, UNIT, "MainPID") == pid
