"""The saltant_packages action (roles/saltant_packages), through
ansible-playbook on this machine (Debian, dpkg): packages that are all
installed give ok without the apt module; a missing package, a version or
another argument hand the task to the apt module. The apt module runs here
in check mode only, where it needs python3-apt and never installs it: its
own failure message shows that it ran."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.local_play import ansible_playbook, role_bed

ROOT = Path(__file__).resolve().parents[2]

TASKS = """
- name: Install the packages
  saltant_packages: "{{ apt_args }}"
  register: installed
  ignore_errors: true

- name: Keep the result for the test
  ansible.builtin.copy:
    content: "{{ installed | to_json }}"
    dest: "{{ out }}"
    mode: "0644"
  check_mode: false
  changed_when: false
"""

pytestmark = pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs dpkg (Debian or Ubuntu)")


@pytest.fixture()
def bed(tmp_path: Path) -> Path:
    role_bed(tmp_path, "installer", TASKS, ("saltant_packages",))
    return tmp_path


def install(bed: Path, apt_args: dict) -> dict:
    out = bed / "result.json"
    result = ansible_playbook(bed, "--check", extra={"apt_args": apt_args, "out": str(out)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return json.loads(out.read_text())


def test_installed_packages_need_no_apt_module(bed):
    result = install(bed, {"name": ["dpkg", "coreutils"], "state": "present", "update_cache": True,
                           "cache_valid_time": 3600})
    assert result["changed"] is False and not result.get("failed")
    assert result["msg"] == "installed already: dpkg coreutils"
    # One name as a string, as apt takes it.
    assert install(bed, {"name": "dpkg"})["msg"] == "installed already: dpkg"


@pytest.mark.parametrize("apt_args", [
    {"name": ["dpkg", "saltant-fleet-no-such-package"], "state": "present"},
    {"name": ["dpkg=0.0.1"], "state": "present"},
    {"name": ["dpkg"], "state": "latest"},
    {"name": ["dpkg"], "state": "present", "autoremove": True},
], ids=["missing package", "version", "state latest", "autoremove"])
def test_anything_else_runs_the_apt_module(bed, apt_args):
    result = install(bed, apt_args)
    # The apt module ran: it reports on its cache or names the package it
    # cannot find (python3-apt, which it finds with the system's Python), or
    # says that it needs python3-apt.
    msg = str(result.get("msg", ""))
    assert "installed already" not in msg
    assert "cache_updated" in result or "No package matching" in msg or "python3-apt" in msg, result
