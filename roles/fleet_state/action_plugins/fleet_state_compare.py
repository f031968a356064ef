"""Compare a host with the record of its last complete run, in one task.

The digest of the run's inputs, computed on the controller:

- every variable whose name starts with one of ``roles`` and an underscore,
  as templated for this host; the roles' defaults count too, wherever this
  runs (a play that lists the roles sees them, a play that only includes
  them does not), so site.yml and workers.yml on its own give one digest;
- the roles' code: every file of the roles folder but documentation;
- the contents of the controller files the variables name (``files``);
- the platform facts (``platform``), Ansible's version and its managed string.

It is compared with the record that fact gathering read on the host
(``seen``: its digest, whether what the roles manage is intact, the drift).
Returned as facts: ``fleet_state_unchanged`` (skip the host),
``fleet_state_inputs_unchanged`` (the inputs passed the checks of the last
complete run), ``__fleet_state_digest`` (kept by the record at the end of the
run) and ``__fleet_state_why`` (why the host runs every task).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from ansible import __version__ as ansible_version
from ansible import constants
from ansible.errors import AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

ROLES = Path(__file__).resolve().parents[2]  # the roles folder this role is in


def code_digest(folder: Path) -> str:
    """SHA-256 over the path and contents of every file but documentation."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix in (".md", ".pyc") or "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def why(enabled: bool, full_run: bool, seen: Mapping, digest: str) -> str:
    reasons = []
    if not enabled:
        reasons.append("fleet_state_enabled is false")
    if full_run:
        reasons.append("fleet_state_full_run is set")
    if seen.get("digest") not in (None, "", digest):
        reasons.append("the inputs changed (variables, roles, controller files or platform)")
    if seen.get("intact") is not True:
        reasons.extend(seen.get("drift") or ["no record of a complete run"])
    return "; ".join(reasons)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def role_defaults(self, roles: list[str]) -> dict:
        defaults: dict = {}
        for role in roles:
            path = ROLES / role / "defaults" / "main.yml"
            if path.is_file():
                # The loader marks the values as the project's own templates.
                defaults.update(self._loader.load_from_file(str(path)) or {})
        return defaults

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = dict(task_vars or {})
        args = self._task.args
        roles = [str(role) for role in args.get("roles") or []]
        prefixes = tuple(f"{role}_" for role in roles)
        # The defaults of the roles come first: every other source overrides them.
        variables = {**self.role_defaults(roles), **task_vars}
        templar = self._templar.copy_with_new_env(available_variables=variables)
        values = {}
        for name in sorted(n for n in variables if isinstance(n, str) and n.startswith(prefixes)):
            try:
                values[name] = templar.resolve_variable_expression(name)
            except Exception as error:  # noqa: BLE001 - the checks name the variable; here it is an input
                values[name] = f"(cannot be templated: {type(error).__name__})"
        files = []
        for name in args.get("files") or []:
            found = self._find_needle("files", str(name)) if name else None
            files.append(hashlib.sha256(Path(found).read_bytes()).hexdigest() if found else f"(missing {name})")
        facts = task_vars.get("ansible_facts") or {}
        inputs = {
            "variables": values,
            "platform": {key: facts.get(key) for key in args.get("platform") or []},
            "code": code_digest(ROLES),
            "files": files,
            "ansible": ansible_version,
            "managed": constants.config.get_config_value("DEFAULT_MANAGED_STR"),
        }
        try:
            text = json.dumps(inputs, sort_keys=True, default=str)
        except (TypeError, ValueError) as error:
            raise AnsibleError(f"fleet_state_compare: the inputs cannot be read as JSON: {error}") from error
        digest = hashlib.sha256(text.encode()).hexdigest()
        seen = args.get("seen") or {}
        enabled = boolean(args.get("enabled", True))
        full_run = boolean(args.get("full_run", False))
        inputs_unchanged = enabled and not full_run and seen.get("digest") == digest
        result.update(
            changed=False,
            ansible_facts={
                "__fleet_state_digest": digest,
                "__fleet_state_why": why(enabled, full_run, seen, digest),
                "fleet_state_inputs_unchanged": inputs_unchanged,
                "fleet_state_unchanged": inputs_unchanged and seen.get("intact") is True,
            },
        )
        return result
