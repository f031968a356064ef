"""Two costs of every test playbook run that Ansible pays again in each run.

Module payloads. Before a module first runs in a playbook run, Ansible
builds its payload (AnsiballZ): it parses the module and every module_utils
file it imports, recursively, to find what to ship. That costs 0.2-0.37 CPU
seconds per module on the test machine, and Ansible keeps the result only
for the rest of the run (``ansiballz_cache`` in the run's own temporary
directory, deleted at exit); a ``site.yml`` run of the worker's role uses 13
modules. This callback points that directory at a lasting one,
``SALTANT_FLEET_ANSIBALLZ_CACHE`` (default
``/var/cache/saltant-fleet/ansiballz``), in a subdirectory per key: the
path, size and modification time of every file a payload can be built from
(the ansible-core package, each collection's MANIFEST.json, the library and
module_utils folders of the roles and the playbook) and the controller's
Python. Any change to one of them gives a new key, so a payload is reused
only where Ansible would build the same one. Ansible writes each payload to
a temporary name and renames it, so runs side by side share them safely; the
folder must be the user's own and closed to others (payloads are pickled).
Key folders unused for two days are removed.

The connection plugin's settings. Each task runs in a process forked for it,
and each of those parsed the ssh connection plugin's documentation (its
settings) again: about 15 ms of CPU per task. Loaded once in the main
process before the first play forks, the forks inherit it.

Measured on one ``site.yml`` run of the worker's role on one host (its
controller CPU seconds, main process plus forks): 12.3 without either, 9.0
with the payloads kept, 8.1 with both.

Bytecode in the payloads. On the host, a module runs from its payload, a
zip archive on ``sys.path``; Python's zipimport cannot write bytecode, so
every module run compiled ``ansible.module_utils.basic`` and the rest of its
payload again, by far the largest part of a module's start. When a payload is
first kept, this callback adds beside each ``.py`` file of the archive its
bytecode for the controller's Python (an unchecked hash-based ``.pyc``, built
from the very same source), which zipimport loads before the source. A host
whose Python differs in version sees a foreign magic number and compiles the
source as before.

Only the test bed enables it (tests/run.py sets ``ANSIBLE_CALLBACK_PLUGINS``
and ``ANSIBLE_CALLBACKS_ENABLED``); it is not part of the roles, and what runs
on the hosts is the same code: the same payloads, built once, with the
bytecode Python would have compiled from them.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import importlib.util
import io
import marshal
import os
import shutil
import sys
import time
import zipfile

import ansible
from ansible import constants
from ansible.executor import module_common
from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import connection_loader
from ansible.utils.display import Display

DOCUMENTATION = """
name: testbed_controller_cache
type: aggregate
short_description: keeps module payloads across playbook runs and loads the ssh plugin once (the test bed)
description:
  - Links the run's AnsiballZ cache directory to a lasting one, keyed by every
    file a module payload can be built from.
  - Adds to each kept payload the bytecode of its Python files for the controller's Python.
  - Loads the ssh connection plugin in the main process, before the forks.
requirements:
  - enable it in callbacks_enabled
"""

display = Display()

ENV = "SALTANT_FLEET_ANSIBALLZ_CACHE"
DEFAULT_ROOT = "/var/cache/saltant-fleet/ansiballz"
UNUSED_DAYS = 2
# Part of the key: payloads of another make of this callback are not reused.
PAYLOAD_FORMAT = b"bytecode-1"


def _paths(value) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        value = value.split(os.pathsep)
    return [os.path.abspath(os.path.expanduser(str(path))) for path in value if path]


def sources(playbook_dir: str | None) -> list[str]:
    """The folders (and files) that payloads are built from."""
    folders = [os.path.dirname(ansible.__file__)]
    for root in _paths(constants.COLLECTIONS_PATHS) + [path for path in sys.path if path]:
        for collection in glob.glob(os.path.join(root, "ansible_collections", "*", "*")):
            # An installed collection's MANIFEST.json names its version and
            # the checksum of every file; a checkout without one counts file by file.
            manifest = os.path.join(collection, "MANIFEST.json")
            folders += [manifest] if os.path.isfile(manifest) else [
                os.path.join(collection, "plugins", "modules"), os.path.join(collection, "plugins", "module_utils")]
    roles = _paths(constants.DEFAULT_ROLES_PATH) + _paths(os.environ.get("ANSIBLE_ROLES_PATH"))
    if playbook_dir:
        roles.append(os.path.join(playbook_dir, "roles"))
        folders += [os.path.join(playbook_dir, "library"), os.path.join(playbook_dir, "module_utils")]
    for root in roles:
        for role in glob.glob(os.path.join(root, "*")):
            folders += [os.path.join(role, "library"), os.path.join(role, "module_utils")]
    folders += _paths(constants.DEFAULT_MODULE_PATH) + _paths(constants.DEFAULT_MODULE_UTILS_PATH)
    return sorted(set(folders))


def key(folders: list[str]) -> str:
    digest = hashlib.sha256(b"\0".join((sys.version.encode(), ansible.__version__.encode(), PAYLOAD_FORMAT)) + b"\n")
    for folder in folders:
        single = [(os.path.dirname(folder), [], [os.path.basename(folder)])]
        walked = single if os.path.isfile(folder) else os.walk(folder)
        for directory, subdirectories, files in walked:
            subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
            for name in sorted(files):
                path = os.path.join(directory, name)
                try:
                    status = os.stat(path)
                except OSError:
                    continue
                digest.update(f"{path}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def with_bytecode(archive: bytes) -> bytes:
    """The zip archive with, beside each .py file, its bytecode for this Python."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as source, zipfile.ZipFile(out, "w") as target:
        names = set(source.namelist())
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data)
            if not info.filename.endswith(".py") or info.filename + "c" in names:
                continue
            # PEP 552 header: flags 0b01 = hash-based, not checked against the source.
            header = importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little") + importlib.util.source_hash(data)
            code = compile(data, info.filename, "exec", dont_inherit=True)
            compiled = zipfile.ZipInfo(info.filename + "c", info.date_time)
            compiled.compress_type = info.compress_type
            target.writestr(compiled, header + marshal.dumps(code))
    return out.getvalue()


def add_bytecode_when_kept() -> None:
    """Wrap the method that keeps a payload so that it keeps (and uses) the one with bytecode."""
    cached = module_common._CachedModule
    if getattr(cached.dump, "_testbed_bytecode", False):
        return
    dump = cached.dump

    def dump_with_bytecode(self, path: str) -> None:
        try:
            archive = with_bytecode(base64.b64decode(self.zip_data))
        except (SyntaxError, ValueError, zipfile.BadZipFile) as error:
            display.warning(f"testbed_controller_cache: payload kept without bytecode ({error})")
        else:
            # A frozen dataclass: the payload is built once, here, before its first use.
            object.__setattr__(self, "zip_data", base64.b64encode(archive))
        dump(self, path)

    dump_with_bytecode._testbed_bytecode = True  # type: ignore[attr-defined]
    cached.dump = dump_with_bytecode


def private_directory(path: str) -> bool:
    """Payloads are pickled: only a folder no one else can write is trusted."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    status = os.stat(path)
    return status.st_uid == os.geteuid() and not status.st_mode & 0o022


def prune(root: str, keep: str) -> None:
    cutoff = time.time() - UNUSED_DAYS * 86400
    for entry in os.scandir(root):
        if entry.name != keep and entry.is_dir(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
            shutil.rmtree(entry.path, ignore_errors=True)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "testbed_controller_cache"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._loaded_ssh = False

    def v2_playbook_on_start(self, playbook) -> None:
        root = os.environ.get(ENV) or DEFAULT_ROOT
        link = os.path.join(constants.DEFAULT_LOCAL_TMP, "ansiballz_cache")
        try:
            if os.path.lexists(link) or not private_directory(root):
                return
            name = key(sources(getattr(playbook, "_basedir", None)))
            target = os.path.join(root, name)
            os.makedirs(target, mode=0o700, exist_ok=True)
            os.utime(target)
            os.symlink(target, link)
            add_bytecode_when_kept()
            prune(root, name)
        except OSError as error:
            display.warning(f"testbed_controller_cache: module payloads not kept ({error})")

    def v2_playbook_on_play_start(self, play) -> None:
        # A play on this machine only (the unit tests) has no use for it.
        if self._loaded_ssh or play.connection == "local" or play.hosts in (["localhost"], "localhost"):
            return
        self._loaded_ssh = True
        connection_loader.get("ansible.builtin.ssh", class_only=True)
