"""Compare a host with the record of its last complete run, role by role, in one task.

For each role of ``roles``, the digest of its inputs, computed on the controller:

- every variable whose name starts with the role's name and an underscore,
  as templated for this host, and the variables of the other roles that
  the role's files name (log_shipper reads saltant_worker_logs_dir), and the
  ``shared`` variables (those that decide whether a role runs at all); the
  roles' defaults count too, wherever this runs (a play that lists the
  roles sees them, a play that only includes them does not), so site.yml
  and workers.yml on its own give the same digests;
- the role's code, the code of the other roles its files name
  (docker_engine includes signed_apt_repo) and of the roles its
  meta/main.yml depends on, transitively (saltant_files, saltant_packages):
  every file but documentation;
- the contents of the controller files the variables name (``files``);
- the host's platform, Ansible's version and its managed string.

The host's side comes from one shell command that this action runs on the
host (as a ``raw`` task would, with become): the platform (os-release,
Debian version, machine, Python 3) and the record (the program at ``fact``:
each role's digest, whether what it manages is intact, the drift). A shell
command is not a module: a host where nothing changed costs no Python module
and no fact gathering. Facts are gathered (the setup module, here) only when a
variable cannot be templated without them, such as a concurrency computed
from ``ansible_processor_vcpus``; they are returned, so the host has them.

Each digest is compared with the role's entry in the record. Returned as
facts: ``fleet_state_roles_unchanged`` (role: skip it),
``fleet_state_unchanged`` (every role: skip the host),
``fleet_state_inputs_unchanged`` (the inputs of every role passed the checks
of the last complete run, also when ``full_run`` runs every task),
``__fleet_state_run`` (the roles that run, which prepare forgets and record
keeps), ``__fleet_state_digests`` (kept by the record at the end of the run)
and ``__fleet_state_why`` (which roles run, and why).
A role of ``dependencies`` runs whenever one of the roles it names runs: it
reads what they leave on the host.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path

import yaml
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


def meta_dependencies(role: str) -> list[str]:
    """The roles ROLE depends on in its meta/main.yml, transitively (those in
    the roles folder this role is in)."""
    found: list[str] = []
    todo = [role]
    while todo:
        try:
            meta = yaml.safe_load((ROLES / todo.pop() / "meta" / "main.yml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        entries = meta.get("dependencies") if isinstance(meta, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            name = entry.get("role", entry.get("name")) if isinstance(entry, dict) else entry
            if isinstance(name, str) and name not in found and name != role and (ROLES / name).is_dir():
                found.append(name)
                todo.append(name)
    return sorted(found)


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


def parse_probe(text: str) -> tuple[dict, dict]:
    """The platform ({section: text}) and the record ({} if absent or not
    JSON) in the probe's output: sections that start with a line "@@ NAME"."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.replace("\r", "").splitlines():
        if line.startswith("@@ "):
            current = line[3:].strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    record_text = "\n".join(sections.pop("record", [])).strip()
    try:
        record = json.loads(record_text) if record_text else {}
    except ValueError:
        record = {}
    platform = {name: "\n".join(lines).strip() for name, lines in sections.items()}
    return platform, record if isinstance(record, dict) else {}


def platform_facts(platform: Mapping) -> dict:
    """The distribution facts that role variables are computed from, as the
    probe reads them (os-release, /etc/debian_version, uname -m)."""
    release = {}
    for line in str(platform.get("/etc/os-release", "")).splitlines():
        key, sep, text = line.partition("=")
        if sep:
            release[key.strip()] = text.strip().strip("\"'")
    ident = release.get("ID", "").lower()
    distribution = {"debian": "Debian", "ubuntu": "Ubuntu"}.get(ident, release.get("NAME", ident).split(" ")[0])
    version = (str(platform.get("/etc/debian_version", "")) if distribution == "Debian" else "") \
        or release.get("VERSION_ID", "")
    return {
        "distribution": distribution,
        "distribution_release": release.get("VERSION_CODENAME", ""),
        "distribution_version": version,
        "distribution_major_version": version.split(".")[0],
        "os_family": "Debian" if "debian" in (ident, *release.get("ID_LIKE", "").split()) else distribution,
        "architecture": str(platform.get("machine", "")),
    }


FAILED = "(cannot be templated: "


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


def probe_command(fact: str) -> str:
    """The shell command that prints the platform and the record, each after a line "@@ NAME"."""
    return (
        'for f in /etc/os-release /etc/debian_version; do echo "@@ $f"; cat "$f" 2>/dev/null; done; '
        'echo "@@ machine"; uname -m; echo "@@ python3"; python3 --version 2>&1; '
        f'echo "@@ record"; if [ -x {shlex.quote(fact)} ]; then {shlex.quote(fact)}; fi; true'
    )


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def role_defaults(self, roles: list[str]) -> dict:
        defaults: dict = {}
        for role in roles:
            path = ROLES / role / "defaults" / "main.yml"
            if path.is_file():
                # The project's own templates, as when Ansible loads a role's
                # defaults (a play that lists the role has them trusted already).
                defaults.update(self._loader.load_from_file(str(path), trusted_as_template=True) or {})
        return defaults

    def gather_facts(self, task_vars: dict) -> dict:
        """The host's facts, as the setup module gives them (ansible_NAME)."""
        result = self._execute_module(module_name="ansible.builtin.setup", module_args={}, task_vars=task_vars)
        if result.get("failed"):
            raise AnsibleError(f"fleet_state_compare: gathering facts failed: {result.get('msg')}")
        return dict(result.get("ansible_facts") or {})

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = dict(task_vars or {})
        args = self._task.args
        roles = [str(role) for role in args.get("roles") or []]
        probe = self._low_level_execute_command(probe_command(str(args["fact"])), sudoable=True)
        if probe.get("rc") != 0:
            output = probe.get("stderr") or probe.get("stdout")
            raise AnsibleError(f"fleet_state_compare: reading the host failed: {output}")
        platform, seen_record = parse_probe(str(probe.get("stdout") or ""))
        # The defaults of the roles come first: every other source overrides
        # them. The distribution facts are the probe's, whether or not facts
        # were gathered: the same platform gives the same digest.
        stub = platform_facts(platform)

        def with_stub(facts: Mapping) -> dict:
            """Facts (without their prefix) as variables, the probe's distribution over them."""
            facts = {**facts, **stub}
            return {**{f"ansible_{key}": item for key, item in stub.items()}, "ansible_facts": facts}

        variables = {**self.role_defaults(roles), **task_vars, **with_stub(task_vars.get("ansible_facts") or {})}
        templar = self._templar.copy_with_new_env(available_variables=variables)
        cache: dict[str, object] = {}
        gathered: dict = {}

        def value(name: str):
            if name not in cache:
                try:
                    cache[name] = templar.resolve_variable_expression(name)
                except Exception as error:  # noqa: BLE001 - the checks name the variable; here it is an input
                    cache[name] = f"{FAILED}{type(error).__name__})"
            return cache[name]

        def resolve(names: set[str]) -> None:
            """Template many variables in one call: each templating call copies
            all variables, and an expression naming them all costs more to
            compile than their values cost to template."""
            wanted = sorted(n for n in names if n not in cache)
            if not wanted:
                return
            try:
                values = templar.template([variables[n] for n in wanted])
            except Exception:  # noqa: BLE001 - one of them cannot be templated: value() says which
                return
            cache.update(zip(wanted, values))

        files = []
        for name in args.get("files") or []:
            found = self._find_needle("files", str(name)) if name else None
            files.append(hashlib.sha256(Path(found).read_bytes()).hexdigest() if found else f"(missing {name})")
        read = {role: read_role(ROLES / role) for role in roles}
        codes = {role: code for role, (code, _) in read.items()}
        needs = {role: meta_dependencies(role) for role in roles}
        for needed in set().union(*needs.values()) - set(codes):
            codes[needed] = read_role(ROLES / needed)[0]
        refs = references(roles, {role: text for role, (_, text) in read.items()})
        shared = sorted(n for n in map(str, args.get("shared") or []) if n in variables)
        inputs_names = ({n for n in variables if isinstance(n, str) and n.startswith(tuple(f"{r}_" for r in roles))}
                        | (set(shared).union(*(refs[role][0] for role in roles)) & set(variables)))
        resolve(inputs_names)
        failed = [n for n in inputs_names if str(value(n)).startswith(FAILED)]
        if failed and not (task_vars.get("ansible_facts") or {}).get("distribution"):
            # Some variable may be computed from facts: gather them, and template again.
            gathered = self.gather_facts(task_vars)
            variables.update(gathered)
            variables.update(with_stub({key.removeprefix("ansible_"): item for key, item in gathered.items()}))
            templar = self._templar.copy_with_new_env(available_variables=variables)
            for name in failed:
                del cache[name]
            resolve(set(failed))
        common = {
            "platform": platform,
            "files": files,
            "ansible": ansible_version,
            "managed": constants.config.get_config_value("DEFAULT_MANAGED_STR"),
            "shared": {name: value(name) for name in shared},
        }
        seen_roles = seen_record.get("roles") or {}
        if not isinstance(seen_roles, Mapping):
            seen_roles = {}
        enabled = boolean(args.get("enabled", True))
        full_run = boolean(args.get("full_run", False))
        digests, unchanged, inputs_unchanged, why_role = {}, {}, True, {}
        for role in roles:
            names, code_roles = refs[role]
            own = sorted(n for n in variables if isinstance(n, str) and n.startswith(role + "_"))
            inputs = {
                **common,
                "variables": {name: value(name) for name in sorted(set(own) | (names & set(variables)))},
                "code": [codes[r] for r in sorted({role} | code_roles | set(needs[role]))],
            }
            try:
                text = json.dumps(inputs, sort_keys=True, default=str)
            except (TypeError, ValueError) as error:
                raise AnsibleError(f"fleet_state_compare: the inputs of {role} are not JSON: {error}") from error
            digests[role] = hashlib.sha256(text.encode()).hexdigest()
            seen = seen_roles.get(role) or {}
            same_inputs = enabled and seen.get("digest") == digests[role]
            # A full run runs every task; its inputs passed the checks all the same.
            inputs_unchanged = inputs_unchanged and same_inputs
            unchanged[role] = same_inputs and not full_run and seen.get("intact") is True
            why_role[role] = why(role, enabled, full_run, seen, digests[role])
        for role, runs in depending(roles, unchanged, args.get("dependencies") or {}).items():
            unchanged[role] = False
            why_role[role] = why_role[role] or f"{role} (it reads what {', '.join(runs)} left on the host)"
        reasons = [why_role[role] for role in roles if not unchanged[role]]
        result.update(
            changed=False,
            ansible_facts={
                **gathered,
                "__fleet_state_record": seen_record,
                "__fleet_state_digests": digests,
                "__fleet_state_why": ", ".join(reasons),
                "__fleet_state_run": [role for role in roles if not unchanged[role]],
                "fleet_state_roles_unchanged": unchanged,
                "fleet_state_inputs_unchanged": inputs_unchanged,
                "fleet_state_unchanged": all(unchanged.values()),
            },
        )
        return result
