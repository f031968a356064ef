"""The fleet_state role's record keeper: what it records, and what it calls drift."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROGRAM = Path(__file__).resolve().parents[2] / "roles" / "fleet_state" / "files" / "saltant_fleet_state.py"
spec = importlib.util.spec_from_file_location("saltant_fleet_state", PROGRAM)
state = importlib.util.module_from_spec(spec)
spec.loader.exec_module(state)


@pytest.fixture
def host(tmp_path: Path) -> dict:
    etc = tmp_path / "etc"
    (etc / "unit.d").mkdir(parents=True)
    (etc / "unit.d" / "50-instance.conf").write_text("[Service]\n")
    (etc / "app.env").write_text("A=1\n")
    os.chmod(etc / "app.env", 0o640)
    (etc / "link").symlink_to("app.env")
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (site / "celery-5.3.6.dist-info").mkdir()
    repo = tmp_path / "src"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    (repo / "README").write_text("hello\n")
    subprocess.run(git + ["add", "README"], check=True)
    subprocess.run(git + ["commit", "-qm", "one"], check=True)
    spec = {
        "paths": [str(etc / "app.env"), str(etc / "link"), str(etc / "missing")],
        "globs": [str(etc / "*.env")],
        "trees": [str(etc / "unit.d")],
        "listings": [str(tmp_path / "venv" / "lib" / "python*" / "site-packages")],
        "git": [str(repo)],
        "accounts": {"users": ["root"], "groups": ["root"]},
    }
    return {"root": tmp_path, "etc": etc, "site": site, "repo": repo, "spec": spec}


def record(state_dir: Path, spec: dict, digest: str = "d1", monkeypatch=None, role: str = "saltant_worker") -> None:
    request = {"names": [role], "digests": [digest], "specs": [spec]}
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(request)))
    state.record(str(state_dir))


def test_an_untouched_host_is_intact_and_the_record_is_private(host, monkeypatch, capsys):
    state_dir = host["root"] / "state"
    record(state_dir, host["spec"], monkeypatch=monkeypatch)
    assert oct(os.stat(state_dir).st_mode & 0o777) == "0o700"
    assert oct(os.stat(state_dir / "applied.json").st_mode & 0o777) == "0o600"
    assert state.fact(str(state_dir)) == {
        "roles": {"saltant_worker": {"digest": "d1", "intact": True, "drift": []}}, "intact": True, "drift": []}


def test_each_role_has_its_own_record_and_drift(host, monkeypatch):
    state_dir = host["root"] / "state"
    other = {"paths": [str(host["etc"] / "other.conf")], "accounts": {"users": ["root"]}}
    (host["etc"] / "other.conf").write_text("x\n")
    record(state_dir, host["spec"], "d1", monkeypatch)
    record(state_dir, other, "d2", monkeypatch, role="log_shipper")
    (host["etc"] / "other.conf").write_text("y\n")
    seen = state.fact(str(state_dir))
    assert seen["roles"]["saltant_worker"] == {"digest": "d1", "intact": True, "drift": []}
    assert seen["roles"]["log_shipper"]["intact"] is False
    assert seen["intact"] is False and seen["drift"] == [f"paths {host['etc']}/other.conf"]
    # A role about to run is forgotten; the others keep their record.
    state.forget(str(state_dir), ["log_shipper", "docker_engine"])
    assert set(state.fact(str(state_dir))["roles"]) == {"saltant_worker"}
    # A role that did not run on the host (no spec) is recorded with nothing to watch.
    record(state_dir, "", "d3", monkeypatch, role="docker_engine")
    assert state.fact(str(state_dir))["roles"]["docker_engine"] == {"digest": "d3", "intact": True, "drift": []}


def test_a_spec_is_sorted_and_flattened():
    spec = state.normalize({"paths": ["/b", ["/a", "/b"]], "units": [], "accounts": {"users": ["u", "u"]}})
    assert spec == {"paths": ["/a", "/b"], "units": [], "accounts": {"users": ["u"], "groups": []}}
    assert state.normalize("") == {"accounts": {"users": [], "groups": []}}


@pytest.mark.parametrize(
    "change, drift",
    [
        (lambda h: (h["etc"] / "app.env").write_text("A=2\n"), "paths {etc}/app.env"),
        (lambda h: os.chmod(h["etc"] / "app.env", 0o644), "paths {etc}/app.env"),
        (lambda h: (h["etc"] / "app.env").unlink(), "paths {etc}/app.env"),
        (lambda h: (h["etc"] / "missing").write_text(""), "paths {etc}/missing"),
        (lambda h: ((h["etc"] / "link").unlink(), (h["etc"] / "link").symlink_to("/etc/passwd")), "paths {etc}/link"),
        (lambda h: (h["etc"] / "other.env").write_text(""), "globs {etc}/*.env"),
        (lambda h: (h["etc"] / "unit.d" / "90-admin.conf").write_text(""), "trees {etc}/unit.d"),
        (lambda h: (h["etc"] / "unit.d" / "50-instance.conf").write_text("x"), "trees {etc}/unit.d"),
        (lambda h: (h["site"] / "celery-5.3.6.dist-info").rename(h["site"] / "celery-5.4.0.dist-info"),
         "listings {site}"),
        (lambda h: (h["repo"] / "README").write_text("changed\n"), "git {repo}"),
    ],
)
def test_each_kind_of_change_is_drift(host, monkeypatch, change, drift):
    state_dir = host["root"] / "state"
    record(state_dir, host["spec"], monkeypatch=monkeypatch)
    change(host)
    seen = state.fact(str(state_dir))
    assert seen["intact"] is False
    assert drift.format(etc=host["etc"], site=host["site"], repo=host["repo"]) in seen["drift"]


def test_no_record_or_a_broken_one_means_a_full_run(host, monkeypatch):
    state_dir = host["root"] / "state"
    assert state.fact(str(state_dir))["intact"] is False
    record(state_dir, host["spec"], monkeypatch=monkeypatch)
    (state_dir / "applied.json").write_text("{not json")
    no_record = {"roles": {}, "intact": False, "drift": ["no record of a complete run"]}
    assert state.fact(str(state_dir)) == no_record
    # A record of the previous version (one digest for the host) is no record.
    (state_dir / "applied.json").write_text(json.dumps({"digest": "d1", "spec": {}, "observed": {}}))
    assert state.fact(str(state_dir)) == no_record


def test_the_fact_command_prints_json_and_never_fails(host, monkeypatch):
    state_dir = host["root"] / "state"
    record(state_dir, host["spec"], monkeypatch=monkeypatch)
    data = json.loads((state_dir / "applied.json").read_text())
    del data["roles"]["saltant_worker"]["observed"]  # a record this version cannot read
    (state_dir / "applied.json").write_text(json.dumps(data))
    out = subprocess.run([sys.executable, str(PROGRAM), "fact", str(state_dir)],
                         check=True, capture_output=True, text=True).stdout
    seen = json.loads(out)
    assert seen["intact"] is False and seen["drift"][0].startswith("cannot check:")


COMPARE = PROGRAM.parents[1] / "action_plugins" / "fleet_state_compare.py"
compare_spec = importlib.util.spec_from_file_location("fleet_state_compare", COMPARE)
compare = importlib.util.module_from_spec(compare_spec)
compare_spec.loader.exec_module(compare)


def test_the_code_digest_covers_code_but_not_documentation(tmp_path: Path):
    (tmp_path / "role" / "tasks").mkdir(parents=True)
    (tmp_path / "role" / "tasks" / "main.yml").write_text("---\n")
    (tmp_path / "role" / "README.md").write_text("one\n")
    first = compare.read_role(tmp_path)[0]
    (tmp_path / "role" / "README.md").write_text("two\n")
    (tmp_path / "role" / "__pycache__").mkdir()
    (tmp_path / "role" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert compare.read_role(tmp_path)[0] == first
    (tmp_path / "role" / "tasks" / "main.yml").write_text("--- \n")
    assert compare.read_role(tmp_path)[0] != first
    # A file moved is a change too, even with the same contents.
    second = compare.read_role(tmp_path)[0]
    (tmp_path / "role" / "tasks" / "main.yml").rename(tmp_path / "role" / "tasks" / "other.yml")
    assert compare.read_role(tmp_path)[0] != second


def test_the_code_of_a_role_covers_the_roles_its_meta_depends_on(tmp_path: Path, monkeypatch):
    metas = {"a": "dependencies:\n  - role: b\n  - name: gone\n", "b": "dependencies: [c]\n",
             "c": "dependencies:\n  - role: a\n", "d": "dependencies: []\n", "e": "galaxy_info: {}\n"}
    for role, meta in metas.items():
        (tmp_path / role / "meta").mkdir(parents=True)
        (tmp_path / role / "meta" / "main.yml").write_text(meta)
    monkeypatch.setattr(compare, "ROLES", tmp_path)
    # Transitively, once each, without the role itself, and only roles that exist.
    assert compare.meta_dependencies("a") == ["b", "c"]
    assert compare.meta_dependencies("d") == compare.meta_dependencies("e") == []
    monkeypatch.undo()
    # The action plugins the worker's tasks call live in roles of their own.
    assert {"saltant_files", "saltant_packages"} <= set(compare.meta_dependencies("saltant_worker"))


@pytest.mark.parametrize(("enabled", "full_run", "seen", "reason"), [
    (True, False, {}, "no record of a complete run"),
    (True, False, {"digest": "old", "intact": True}, "the inputs changed"),
    (True, False, {"digest": "now", "intact": False, "drift": ["paths /x"]}, "paths /x"),
    (False, False, {"digest": "now", "intact": True}, "fleet_state_enabled is false"),
    (True, True, {"digest": "now", "intact": True}, "fleet_state_full_run is set"),
])
def test_each_reason_for_a_full_run_is_named(enabled, full_run, seen, reason):
    assert compare.why("saltant_worker", enabled, full_run, seen, "now").startswith("saltant_worker (")
    assert reason in compare.why("saltant_worker", enabled, full_run, seen, "now")


def test_a_matching_record_gives_no_reason():
    assert compare.why("saltant_worker", True, False, {"digest": "now", "intact": True}, "now") == ""


def test_a_role_depends_on_the_variables_and_roles_its_files_name():
    texts = {
        "log_shipper": "dir: '{{ saltant_worker_logs_dir }}'\nlog_shipper_saltant_worker_x: 1\n",
        "saltant_worker": "__saltant_worker_x: '{{ log_shipperish }}'\n",
        "docker_engine": "- ansible.builtin.include_role:\n    name: signed_apt_repo\n",
        "signed_apt_repo": "",
    }
    refs = compare.references(list(texts), texts)
    assert refs["log_shipper"] == ({"saltant_worker_logs_dir"}, set())
    # Its own variables, internal names and other words are not references.
    assert refs["saltant_worker"] == (set(), set())
    assert refs["docker_engine"] == (set(), {"signed_apt_repo"})


def test_a_role_runs_when_a_role_whose_results_it_reads_runs():
    roles = ["singularity", "saltant_worker", "log_shipper", "ca_trust"]
    unchanged = {"singularity": False, "saltant_worker": True, "log_shipper": True, "ca_trust": True}
    deps = {"saltant_worker": ["docker_engine", "singularity"], "log_shipper": ["saltant_worker"]}
    assert compare.depending(roles, unchanged, deps) == {"saltant_worker": ["singularity"],
                                                        "log_shipper": ["saltant_worker"]}
    assert compare.depending(roles, {**unchanged, "singularity": True}, deps) == {}


def test_the_probe_reads_the_platform_and_the_record_in_one_shell_command(tmp_path: Path):
    fact = tmp_path / "saltant fleet.fact"
    fact.write_text('#!/bin/sh\necho \'{"roles": {"ca_trust": {"digest": "d", "intact": true}}}\'\n')
    fact.chmod(0o700)
    out = subprocess.run(["/bin/sh", "-c", compare.probe_command(str(fact))], capture_output=True, text=True,
                         check=True).stdout
    platform, record = compare.parse_probe(out.replace("\n", "\r\n"))  # a terminal's line ends
    assert record == {"roles": {"ca_trust": {"digest": "d", "intact": True}}}
    assert set(platform) == {"/etc/os-release", "/etc/debian_version", "machine", "python3"}
    assert platform["machine"] == os.uname().machine
    assert "\r" not in "".join(platform.values())
    # No program yet (a new host), or output that is not a record: no record.
    fact.unlink()
    out = subprocess.run(["/bin/sh", "-c", compare.probe_command(str(fact))], capture_output=True, text=True,
                         check=True).stdout
    assert compare.parse_probe(out)[1] == {}
    assert compare.parse_probe("@@ record\nsudo: a password is required\n")[1] == {}
    assert compare.parse_probe("@@ record\n[1, 2]\n")[1] == {}


@pytest.mark.parametrize(("os_release", "debian_version", "facts"), [
    ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
     "VERSION_CODENAME=bookworm\nID=debian\n", "12.8",
     {"distribution": "Debian", "distribution_release": "bookworm", "distribution_version": "12.8",
      "distribution_major_version": "12", "os_family": "Debian", "architecture": "x86_64"}),
    ('NAME="Ubuntu"\nVERSION_ID="22.04"\nVERSION_CODENAME=jammy\nID=ubuntu\nID_LIKE=debian\n', "bookworm/sid",
     {"distribution": "Ubuntu", "distribution_release": "jammy", "distribution_version": "22.04",
      "distribution_major_version": "22", "os_family": "Debian", "architecture": "x86_64"}),
])
def test_role_variables_see_the_distribution_as_the_probe_reads_it(os_release, debian_version, facts):
    platform = {"/etc/os-release": os_release, "/etc/debian_version": debian_version, "machine": "x86_64"}
    assert compare.platform_facts(platform) == facts


def _tags(node: object) -> set[str]:
    """Every tag named under `tags:` in a loaded YAML document."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "tags":
                found |= {value} if isinstance(value, str) else {str(tag) for tag in value or []}
            else:
                found |= _tags(value)
    elif isinstance(node, list):
        for item in node:
            found |= _tags(item)
    return found


def test_no_task_carries_the_tags_a_complete_run_may_skip():
    """A run that skips Molecule's tags is recorded as complete: that holds
    only while no task of the toolkit carries one of them."""
    import yaml

    root = PROGRAM.parents[3]
    neutral = yaml.safe_load((root / "roles" / "fleet_state" / "vars" / "main.yml").read_text())[
        "__fleet_state_tags_no_task_carries"]
    assert "molecule-notest" in neutral
    files = [*root.glob("roles/*/tasks/*.yml"), *root.glob("roles/*/handlers/*.yml"),
             *root.glob("playbooks/**/*.yml"), root / "site.yml"]
    tags = {str(path.relative_to(root)): _tags(yaml.safe_load(path.read_text())) for path in files}
    assert len(files) > 40 and "always" in set().union(*tags.values())
    assert not {path: found & set(neutral) for path, found in tags.items() if found & set(neutral)}
