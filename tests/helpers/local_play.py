"""One role of a test, played on this machine with ansible-playbook: how the
unit tests run the project's action plugins and modules for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PLAY = """---
- name: Play the role of the test
  hosts: localhost
  connection: local
  gather_facts: false
  roles: [{role}]
"""


def role_bed(bed: Path, role: str, tasks: str, dependencies: tuple[str, ...] = ()) -> Path:
    """BED/roles/ROLE with its tasks and the roles it depends on, and
    BED/play.yml that plays it; the role's folder."""
    folder = bed / "roles" / role
    for part in ("tasks", "meta"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    (folder / "tasks" / "main.yml").write_text(tasks)
    (folder / "meta" / "main.yml").write_text(
        "dependencies:\n" + "".join(f"  - role: {name}\n" for name in dependencies) if dependencies
        else "dependencies: []\n")
    (bed / "play.yml").write_text(PLAY.format(role=role))
    return folder


def ansible_playbook(bed: Path, *args: str, extra: dict, env: dict | None = None) -> subprocess.CompletedProcess:
    """ansible-playbook BED/play.yml on localhost, with this Python, the bed's
    roles before the project's, and EXTRA as extra variables."""
    environment = {**os.environ, "ANSIBLE_ROLES_PATH": f"{bed / 'roles'}:{ROOT / 'roles'}", "ANSIBLE_NOCOLOR": "1",
                   "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0", **(env or {})}
    variables = json.dumps({"ansible_python_interpreter": sys.executable, **extra})
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(bed / "play.yml"),
         "-e", variables, *args], capture_output=True, text=True, env=environment, cwd=bed, timeout=300)
