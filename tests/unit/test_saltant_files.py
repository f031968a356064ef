"""The saltant_files action and module (roles/saltant_files), through
ansible-playbook on this machine: templates rendered as the template module
renders them, one module run per task, owner/group/mode, check and diff
modes, secrets never shown, changed_paths for handlers."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from helpers.local_play import ansible_playbook, role_bed

ROOT = Path(__file__).resolve().parents[2]

TASKS = """
- name: Write the files
  saltant_files:
    entries:
      - {path: "{{ base }}/dir", state: directory, mode: "2750", group: "{{ group }}"}
      - {path: "{{ base }}/dir/unit.conf", template: unit.conf.j2, vars: {item: {name: alpha}}, mode: "0644"}
      - {path: "{{ base }}/dir/program.py", src: program.py, mode: "0755"}
      - path: "{{ base }}/dir/secret.env"
        content: "TOKEN={{ token }}\\n"
        group: "{{ group }}"
        mode: "0640"
        diff: false
  register: written

- name: Keep what changed for the test
  ansible.builtin.copy:
    content: "{{ written.changed_paths | to_json }}"
    dest: "{{ base }}/../changed.json"
    mode: "0644"
  check_mode: false
  changed_when: false
"""


@pytest.fixture()
def bed(tmp_path: Path) -> Path:
    role = role_bed(tmp_path, "writer", TASKS, ("saltant_files",))
    for part in ("templates", "files"):
        (role / part).mkdir()
    (role / "templates" / "unit.conf.j2").write_text(
        "{{ ansible_managed | comment }}\n{% if true %}\n[Service]\n{% endif %}\nName={{ item.name }}\n")
    (role / "files" / "program.py").write_text("print('hello')\n")
    (tmp_path / "out").mkdir()
    return tmp_path


def play(bed: Path, *args: str, group: str = "daemon", token: str = "s3cr3t-value") -> tuple[int, str, list[str]]:
    result = ansible_playbook(bed, *args, extra={"base": str(bed / "out"), "group": group, "token": token})
    output = result.stdout + result.stderr
    kept = bed / "changed.json"
    changed = json.loads(kept.read_text()) if result.returncode == 0 else []
    kept.unlink(missing_ok=True)
    return result.returncode, output, changed


def test_writes_every_entry_in_one_run_and_then_changes_nothing(bed):
    out = bed / "out" / "dir"
    code, output, changed = play(bed, "--diff")
    assert code == 0, output
    assert changed == [str(out), str(out / "unit.conf"), str(out / "program.py"), str(out / "secret.env")]
    # Rendered as the template module does: ansible_managed, trim_blocks, the entry's vars.
    unit = (out / "unit.conf").read_text()
    assert unit.startswith("#\n# Ansible managed") and "[Service]\nName=alpha\n" in unit
    assert (out / "program.py").read_text() == "print('hello')\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o2750
    secret = (out / "secret.env").stat()
    assert stat.S_IMODE(secret.st_mode) == 0o640 and secret.st_gid == 1  # daemon
    assert stat.S_IMODE((out / "program.py").stat().st_mode) == 0o755
    # The diff shows the unit's text, never the secret's.
    assert "Name=alpha" in output and "s3cr3t-value" not in output
    assert not [p for p in out.iterdir() if p.name.startswith(".saltant-fleet.")]

    code, output, changed = play(bed, "--diff")
    assert code == 0 and changed == [], output
    assert "changed=0" in output


def test_check_mode_reports_and_changes_nothing(bed):
    out = bed / "out" / "dir"
    assert play(bed)[0] == 0
    (out / "unit.conf").write_text("edited by hand\n")
    os.chmod(out / "program.py", 0o777)
    code, output, changed = play(bed, "--check", "--diff", token="new-secret")
    assert code == 0, output
    assert changed == [str(out / "unit.conf"), str(out / "program.py"), str(out / "secret.env")]
    assert (out / "unit.conf").read_text() == "edited by hand\n"
    assert stat.S_IMODE((out / "program.py").stat().st_mode) == 0o777
    assert "new-secret" not in output and "s3cr3t-value" not in output
    # The real run repairs them.
    code, output, changed = play(bed)
    assert code == 0 and len(changed) == 2 and "Name=alpha" in (out / "unit.conf").read_text()
    assert stat.S_IMODE((out / "program.py").stat().st_mode) == 0o755


def test_a_link_in_place_of_a_file_is_replaced_not_followed(bed):
    out = bed / "out" / "dir"
    out.mkdir()
    target = bed / "elsewhere"
    target.write_text("not ours\n")
    (out / "unit.conf").symlink_to(target)
    assert play(bed)[0] == 0
    assert not (out / "unit.conf").is_symlink() and "Name=alpha" in (out / "unit.conf").read_text()
    assert target.read_text() == "not ours\n"


def test_a_missing_group_fails_naming_the_path_and_is_a_change_in_check_mode(bed):
    code, output, _ = play(bed, group="no-such-group")
    assert code != 0 and "no such user or group" in output and "/out/dir" in output
    code, output, changed = play(bed, "--check", group="no-such-group")
    assert code == 0, output
    assert str(bed / "out" / "dir") in changed


def test_a_file_entry_without_exactly_one_source_is_refused_naming_it(bed):
    tasks = bed / "roles" / "writer" / "tasks" / "main.yml"
    tasks.write_text(TASKS.replace('content: "TOKEN={{ token }}\\n"', 'src: program.py\n        content: "TOKEN"'))
    code, output, _ = play(bed)
    assert code != 0 and "secret.env: a file needs one of template, src or content" in output
    assert not (bed / "out" / "dir").exists()
