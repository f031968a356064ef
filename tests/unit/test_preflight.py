"""site.yml's preflight play validates a whole inventory without touching hosts.

It runs against inventory/example, whose hosts do not exist: a local
connection stands in for them (the preflight play only gathers the minimal
facts and checks variables). The inventory must pass as it is, and each bad
setting must fail with the host and the variable named.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.preflight_cases import CASES

ROOT = Path(__file__).resolve().parents[2]


def preflight(extra_vars: dict | None = None, limit: str | None = None) -> subprocess.CompletedProcess:
    argv = [
        "ansible-playbook", "-i", str(ROOT / "inventory" / "example"), "--connection", "local",
        "--extra-vars", f"ansible_python_interpreter={sys.executable}",
        str(ROOT / "playbooks" / "preflight.yml"),
    ]
    if extra_vars is not None:
        argv += ["--extra-vars", json.dumps(extra_vars)]
    if limit is not None:
        argv += ["--limit", limit]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def test_example_inventory_is_valid():
    result = preflight()
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_setting_is_rejected_naming_host_and_variable(case):
    extra, expected = CASES[case]
    # One host is enough to see the message (the settings are the same on all).
    result = preflight(extra, limit="worker01.example.org")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected in output
    assert "[worker01.example.org]" in output
    assert "fatal: [worker01.example.org]" in output or "failed: [worker01.example.org]" in output
    # Secrets never show, even in a failure.
    assert "CHANGE-ME" not in output
