"""The test bed's controller cache (testbed/plugins/callback/testbed_controller_cache.py):
module payloads are kept from one ansible-playbook run to the next, and a
changed module gives a new payload, never the old one."""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from helpers.local_play import ansible_playbook, role_bed

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "testbed" / "plugins" / "callback"
spec = importlib.util.spec_from_file_location("testbed_controller_cache", PLUGINS / "testbed_controller_cache.py")
cache_plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cache_plugin)

MODULE = """#!/usr/bin/python
from ansible.module_utils import basic

basic.AnsibleModule(argument_spec={}).exit_json(changed=False, version=%r, basic_file=basic.__file__)
"""
TASKS = """---
- name: Run it
  probe:
  register: probe_result

- name: Say its version
  ansible.builtin.debug:
    msg: "probe version {{ probe_result.version }} basic from {{ probe_result.basic_file | basename }}"
"""


def bed(tmp_path: Path) -> Path:
    (role_bed(tmp_path, "probe", TASKS) / "library").mkdir()
    write_module(tmp_path, "one")
    return tmp_path


def write_module(bed: Path, version: str) -> None:
    path = bed / "roles" / "probe" / "library" / "probe.py"
    path.write_text(MODULE % version)
    # A distinct modification time even within the file system's resolution.
    stamp = time.time() + (1 if version == "one" else 2)
    os.utime(path, (stamp, stamp))


def run(bed: Path, cache: Path) -> subprocess.CompletedProcess:
    result = ansible_playbook(bed, extra={}, env={
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(bed / "roles"),
        "ANSIBLE_LOCAL_TEMP": str(bed / "local"), "ANSIBLE_CALLBACK_PLUGINS": str(PLUGINS),
        "ANSIBLE_CALLBACKS_ENABLED": "testbed_controller_cache", cache_plugin.ENV: str(cache)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return result


def payloads(cache: Path) -> dict[str, set[str]]:
    return {key.name: {p.name for p in key.iterdir() if not p.name.endswith(".lock")} for key in cache.iterdir()}


def test_payloads_are_kept_and_a_changed_module_gets_a_new_one(tmp_path):
    here = bed(tmp_path)
    cache = tmp_path / "cache"
    assert "probe version one" in run(here, cache).stdout
    first = payloads(cache)
    assert len(first) == 1 and "ansible.legacy.probe-ZIP_DEFLATED-none" in next(iter(first.values()))
    (key,) = first
    built = (cache / key / "ansible.legacy.probe-ZIP_DEFLATED-none").stat().st_mtime_ns
    # The same sources: the same folder, the payload reused (not written again).
    assert "probe version one" in run(here, cache).stdout
    assert payloads(cache) == first
    assert (cache / key / "ansible.legacy.probe-ZIP_DEFLATED-none").stat().st_mtime_ns == built
    # The module changed: another key, and the run ships the new code.
    write_module(here, "two")
    assert "probe version two" in run(here, cache).stdout
    assert len(payloads(cache)) == 2
    # The run's own temporary folder is gone; the kept payloads are not.
    assert not list((here / "local").glob("ansible-local-*"))
    assert (cache / key / "ansible.legacy.probe-ZIP_DEFLATED-none").exists()


def test_a_cache_others_can_write_is_not_used(tmp_path):
    here = bed(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o777)
    result = run(here, cache)
    assert "probe version one" in result.stdout
    assert list(cache.iterdir()) == []


def test_the_key_follows_the_sources(tmp_path):
    here = bed(tmp_path)
    folders = cache_plugin.sources(str(here))
    assert str(here / "library") in folders
    before = cache_plugin.key(folders + [str(here / "roles" / "probe" / "library")])
    assert cache_plugin.key(folders + [str(here / "roles" / "probe" / "library")]) == before
    write_module(here, "two")
    assert cache_plugin.key(folders + [str(here / "roles" / "probe" / "library")]) != before


def test_unused_keys_are_pruned(tmp_path):
    old, recent, kept = (tmp_path / name for name in ("old", "recent", "kept"))
    for folder in (old, recent, kept):
        folder.mkdir()
    stale = time.time() - 3 * 86400
    os.utime(old, (stale, stale))
    os.utime(kept, (stale, stale))
    cache_plugin.prune(str(tmp_path), "kept")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "recent"]


def test_kept_payloads_carry_bytecode_and_the_module_runs_from_it(tmp_path):
    here = bed(tmp_path)
    cache = tmp_path / "cache"
    # The very run that builds the payload runs its module from the bytecode.
    assert "probe version one basic from basic.pyc" in run(here, cache).stdout
    (payload,) = cache.glob("*/ansible.legacy.probe-ZIP_DEFLATED-none")
    from ansible.executor.module_common import _CachedModule

    names = set(zipfile.ZipFile(io.BytesIO(base64.b64decode(_CachedModule.load(str(payload)).zip_data))).namelist())
    sources = {name for name in names if name.endswith(".py")}
    assert "ansible/module_utils/basic.py" in sources
    assert {name + "c" for name in sources} <= names


def import_from(archive: Path) -> str:
    program = f"import sys; sys.path.insert(0, {str(archive)!r}); import pkg.mod as m; print(m.__file__, m.VALUE)"
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout


def test_a_python_of_another_version_compiles_the_source_instead(tmp_path):
    plain = io.BytesIO()
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("pkg/__init__.py", "")
        archive.writestr("pkg/mod.py", "VALUE = 6 * 7\n")
    built = cache_plugin.with_bytecode(plain.getvalue())
    (tmp_path / "same.zip").write_bytes(built)
    assert import_from(tmp_path / "same.zip").endswith("mod.pyc 42\n")
    # Another Python's magic number: zipimport skips the bytecode and compiles the source.
    foreign = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(built)) as source, zipfile.ZipFile(foreign, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, b"\x00\x00\r\n" + data[4:] if info.filename.endswith(".pyc") else data)
    (tmp_path / "foreign.zip").write_bytes(foreign.getvalue())
    assert import_from(tmp_path / "foreign.zip").endswith("mod.py 42\n")
