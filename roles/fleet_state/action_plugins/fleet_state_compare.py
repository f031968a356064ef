"""Compare a host with the record of its last complete run, role by role, in one task.

For each role of ``roles``, the digest of its inputs, computed on the controller:

- every variable whose name starts with the role's name and an underscore,
  as templated for this host, and the variables of the other roles that
  the role's files name (log_shipper reads saltant_worker_logs_dir), and the
  ``shared`` variables (those that decide whether a role runs at all); the
  roles' defaults count too, wherever this runs (a play that lists the
  roles sees them, a play that only includes them does not), so site.yml
  and workers.yml on its own give the same digests;
- the role's code, and the code of the other roles its files name
  (docker_engine includes signed_apt_repo): every file but documentation;
- the contents of the controller files the variables name (``files``);
- the platform facts (``platform``), Ansible's version and its managed string.

Each is compared with the role's entry in the record that fact gathering read
on the host (``seen``: its digest, whether what the role manages is intact,
the drift). Returned as facts: ``fleet_state_roles_unchanged`` (role: skip
it), ``fleet_state_unchanged`` (every role: skip the host),
``fleet_state_inputs_unchanged`` (the inputs of every role passed the checks
of the last complete run), ``__fleet_state_run`` (the roles that run, which
prepare forgets and record keeps), ``__fleet_state_digests`` (kept by the
record at the end of the run) and ``__fleet_state_why`` (which roles run, and
why).
A role of ``dependencies`` runs whenever one of the roles it names runs: it
reads what they leave on the host.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path

from ansible import __version__ as ansible_version
from ansible import constants
from ansible.errors import AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

ROLES = Path(__file__).resolve().parents[2]  # the roles folder this role is in


TEXT_SUFFIXES = (".yml", ".yaml", ".j2", ".py", ".sh", ".cfg", ".conf", ".json")


def read_role(folder: Path) -> tuple[str, str]:
    """One walk of a role's files: the SHA-256 over the path and contents of
    every file but documentation, and the text of those that can name
    variables and roles (tasks, templates, defaults, plugins...)."""
    digest = hashlib.sha256()
    texts = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix in (".md", ".pyc") or "__pycache__" in path.parts:
            continue
        data = path.read_bytes()
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        digest.update(hashlib.sha256(data).digest())
        if path.suffix in TEXT_SUFFIXES:
            texts.append(data.decode(errors="replace"))
    return digest.hexdigest(), "\n".join(texts)


def code_digest(folder: Path) -> str:
    return read_role(folder)[0]


def references(roles: list[str], texts: dict[str, str]) -> dict[str, tuple[set, set]]:
    """For each role, the other roles' variables and the other roles its files name."""
    result = {}
    for role in roles:
        others = [other for other in roles if other != role]
        if not others:
            result[role] = (set(), set())
            continue
        pattern = r"\b(?:" + "|".join(map(re.escape, others)) + r")_\w+"
        names = set(re.findall(pattern, texts[role]))
        # A variable of this role whose name starts with another role's name is its own.
        names = {name for name in names if not name.startswith(role + "_")}
        code = {other for other in others if re.search(r"\b" + re.escape(other) + r"\b", texts[role])}
        result[role] = (names, code)
    return result


def why(role: str, enabled: bool, full_run: bool, seen: Mapping, digest: str) -> str:
    reasons = []
    if not enabled:
        reasons.append("fleet_state_enabled is false")
    if full_run:
        reasons.append("fleet_state_full_run is set")
    if seen.get("digest") not in (None, "", digest):
        reasons.append("the inputs changed (variables, roles, controller files or platform)")
    if seen.get("intact") is not True:
        reasons.extend(seen.get("drift") or ["no record of a complete run"])
    return f"{role} ({'; '.join(reasons)})" if reasons else ""


def depending(roles: list[str], unchanged: dict, dependencies: Mapping) -> dict[str, list[str]]:
    """The roles that match their record but read what a role that runs
    leaves on the host (transitively), and those roles."""
    runs = {role for role in roles if not unchanged[role]}
    result: dict[str, list[str]] = {}
    grew = True
    while grew:
        grew = False
        for role in roles:
            reads = [str(other) for other in dependencies.get(role) or [] if str(other) in runs]
            if reads and role not in runs:
                result[role], grew = reads, True
                runs.add(role)
    return result


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
        # The defaults of the roles come first: every other source overrides them.
        variables = {**self.role_defaults(roles), **task_vars}
        templar = self._templar.copy_with_new_env(available_variables=variables)
        cache: dict[str, object] = {}

        def value(name: str):
            if name not in cache:
                try:
                    cache[name] = templar.resolve_variable_expression(name)
                except Exception as error:  # noqa: BLE001 - the checks name the variable; here it is an input
                    cache[name] = f"(cannot be templated: {type(error).__name__})"
            return cache[name]

        files = []
        for name in args.get("files") or []:
            found = self._find_needle("files", str(name)) if name else None
            files.append(hashlib.sha256(Path(found).read_bytes()).hexdigest() if found else f"(missing {name})")
        facts = task_vars.get("ansible_facts") or {}
        common = {
            "platform": {key: facts.get(key) for key in args.get("platform") or []},
            "files": files,
            "ansible": ansible_version,
            "managed": constants.config.get_config_value("DEFAULT_MANAGED_STR"),
            "shared": {name: value(name) for name in sorted(map(str, args.get("shared") or [])) if name in variables},
        }
        read = {role: read_role(ROLES / role) for role in roles}
        codes = {role: code for role, (code, _) in read.items()}
        refs = references(roles, {role: text for role, (_, text) in read.items()})
        seen_roles = (args.get("seen") or {}).get("roles") or {}
        enabled = boolean(args.get("enabled", True))
        full_run = boolean(args.get("full_run", False))
        digests, unchanged, inputs_unchanged, why_role = {}, {}, True, {}
        for role in roles:
            names, code_roles = refs[role]
            own = sorted(n for n in variables if isinstance(n, str) and n.startswith(role + "_"))
            inputs = {
                **common,
                "variables": {name: value(name) for name in sorted(set(own) | (names & set(variables)))},
                "code": [codes[r] for r in sorted({role} | code_roles)],
            }
            try:
                text = json.dumps(inputs, sort_keys=True, default=str)
            except (TypeError, ValueError) as error:
                raise AnsibleError(f"fleet_state_compare: the inputs of {role} are not JSON: {error}") from error
            digests[role] = hashlib.sha256(text.encode()).hexdigest()
            seen = seen_roles.get(role) or {}
            same_inputs = enabled and not full_run and seen.get("digest") == digests[role]
            inputs_unchanged = inputs_unchanged and same_inputs
            unchanged[role] = same_inputs and seen.get("intact") is True
            why_role[role] = why(role, enabled, full_run, seen, digests[role])
        for role, runs in depending(roles, unchanged, args.get("dependencies") or {}).items():
            unchanged[role] = False
            why_role[role] = why_role[role] or f"{role} (it reads what {', '.join(runs)} left on the host)"
        reasons = [why_role[role] for role in roles if not unchanged[role]]
        result.update(
            changed=False,
            ansible_facts={
                "__fleet_state_digests": digests,
                "__fleet_state_why": ", ".join(reasons),
                "__fleet_state_run": [role for role in roles if not unchanged[role]],
                "fleet_state_roles_unchanged": unchanged,
                "fleet_state_inputs_unchanged": inputs_unchanged,
                "fleet_state_unchanged": all(unchanged.values()),
            },
        )
        return result
