"""The saltant_pip action (roles/saltant_packages), through ansible-playbook
on this machine with a real virtualenv: a pip call seen satisfied is not run
again while the virtualenv is unchanged; a changed virtualenv, requirements
file or argument runs the pip module. Every pip call here is satisfied
already (the virtualenv's own pip version): no network is needed. Each
playbook run makes several calls in order, as a role's tasks do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.local_play import ansible_playbook, role_bed

TASKS = """
- name: Install
  saltant_pip: "{{ item }}"
  loop: "{{ calls }}"
  register: installed

- name: Keep the results for the test
  ansible.builtin.copy:
    content: "{{ installed.results | to_json }}"
    dest: "{{ out }}"
    mode: "0644"
  check_mode: false
  changed_when: false
"""
SKIPPED = "satisfied already"


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pip") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path


@pytest.fixture()
def bed(tmp_path: Path, venv: Path) -> Path:
    role_bed(tmp_path, "installer", TASKS, ("saltant_packages",))
    (venv / ".saltant-fleet-pip").unlink(missing_ok=True)
    return tmp_path


def pip_version(venv: Path) -> str:
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--version"], capture_output=True, text=True)
    return out.stdout.split()[1]


def install(bed: Path, calls: list[dict], *options: str) -> list[bool]:
    """Play CALLS in order; for each, whether the pip module ran."""
    out = bed / "result.json"
    result = ansible_playbook(bed, *options, extra={"calls": calls, "out": str(out)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    results = json.loads(out.read_text())
    for skipped in (r for r in results if SKIPPED in str(r.get("msg", ""))):
        assert skipped["changed"] is False and "cmd" not in skipped
    return ["cmd" in r and SKIPPED not in str(r.get("msg", "")) for r in results]


def test_a_satisfied_call_is_not_run_again_until_the_virtualenv_changes(bed, venv):
    call = {"name": [f"pip=={pip_version(venv)}"], "virtualenv": str(venv)}
    assert install(bed, [call, call]) == [True, False]
    assert (venv / ".saltant-fleet-pip").stat().st_mode & 0o077 == 0
    # Anyone adds (or upgrades, or removes) a distribution: pip decides again.
    extra = next(venv.glob("lib/*/site-packages")) / "saltant_fleet_probe-1.0.dist-info"
    extra.mkdir()
    try:
        assert install(bed, [call, call]) == [True, False]
    finally:
        extra.rmdir()
    assert install(bed, [call]) == [True]


def test_a_changed_requirements_file_or_argument_runs_pip(bed, venv):
    requirements = bed / "requirements.txt"
    requirements.write_text(f"pip=={pip_version(venv)}\n")
    call = {"requirements": str(requirements), "virtualenv": str(venv)}
    assert install(bed, [call, call]) == [True, False]
    requirements.write_text(f"# another set\npip=={pip_version(venv)}\n")
    # Another call on the same virtualenv: run once, then both are satisfied.
    other = {"name": [f"pip=={pip_version(venv)}"], "virtualenv": str(venv), "extra_args": "--no-cache-dir"}
    assert install(bed, [call, other, other, call]) == [True, True, False, False]


def test_check_mode_records_nothing(bed, venv):
    call = {"name": [f"pip=={pip_version(venv)}"], "virtualenv": str(venv)}
    assert install(bed, [call, call], "--check") == [True, True]
    assert not (venv / ".saltant-fleet-pip").exists()
