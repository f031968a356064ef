"""Bad inventories fail before any host changes, naming the host and variable."""

from __future__ import annotations

import pytest
from helpers.preflight_cases import CASES, LIVE
from helpers.recap import recap


@pytest.mark.parametrize("case", LIVE)
def test_bad_setting_fails_before_any_change(fleet, case):
    extra, expected = CASES[case]
    unit_before = fleet.sh(fleet.workers[0], "stat -c %Y /etc/systemd/system/saltant-worker@.service")
    result = fleet.playbook(extra_vars=extra)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected in output
    worker = fleet.workers[0]
    assert f"fatal: [{worker}]" in output or f"failed: [{worker}]" in output
    # The run stopped in the preflight play: nothing was provisioned.
    assert "Provision saltant Celery worker hosts" not in output
    assert all(counts.get("changed", 0) == 0 for counts in recap(output).values())
    assert fleet.sh(worker, "stat -c %Y /etc/systemd/system/saltant-worker@.service") == unit_before
