"""Check every role variable a host sets against the roles' argument specs, strictly.

Ansible's own argument-spec validation converts what it checks (the string
"default" passes as the list ["default"], "false" as a bool) but the role then
reads the original value, so such values pass and break later. This action
holds each value to its type as the roles use it, before anything changes:

- str: a string (a YAML number must be quoted: 0750 or 1.10 would change);
  no line break or other control character unless the option is ``multiline``;
  with a ``pattern``, matching it whole (``pattern_means`` says how, in words);
- path: such a string that starts with "/", without white space, quotes,
  backslashes, '%', '$', ';' or '..' (systemd and .env parsers read those);
- int: an integer, or a string of digits (what ``-e name=value`` gives),
  within the option's ``minimum`` and ``maximum``;
- bool: true/false, yes/no, on/off (any case), 1/0;
- list: a list, never a string or a mapping; each element checked;
- dict: a mapping; with ``options``, each key checked and unknown keys named;
- choices: one of them.

A variable with a role's prefix that no role defines is reported with the
closest real name. Values of options marked ``no_log`` never appear in a
message; other values are shown shortened. ``minimum``, ``maximum``,
``multiline``, ``pattern`` and ``pattern_means`` come from the role's meta/value_limits.yml (the schema of
argument_specs.yml allows no such keys).
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping
from pathlib import Path

import yaml
from ansible import constants
from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

BOOLEANS = {"true", "false", "yes", "no", "on", "off", "1", "0", "y", "n", "t", "f"}
# Every control character, tab included: the .env quoting filter refuses them
# all, so a value that reaches it must already have been refused here.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
PATH_UNSAFE = re.compile(r"[\s\"'\\%$;]")
SHOWN = 60


def show(value, secret: bool) -> str:
    if secret:
        return "(a secret: its value is not shown)"
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def type_name(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if value is None:
        return "empty (null)"
    return type(value).__name__


class Checker:
    """The problems of one value against one option spec."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{where} {message}")

    def check(self, where: str, value, spec: Mapping, secret: bool = False) -> None:
        secret = secret or bool(spec.get("no_log"))
        kind = spec.get("type", "str")
        checker = getattr(self, f"check_{kind}", None)
        if checker is None:
            return
        if checker(where, value, spec, secret) and "choices" in spec and kind not in ("list", "dict"):
            self.check_choice(where, value, spec["choices"], secret)

    def check_choice(self, where: str, value, choices, secret: bool) -> None:
        if str(value) not in [str(c) for c in choices]:
            self.fail(where, f"is {show(value, secret)}; it must be one of {', '.join(map(str, choices))}")

    def check_str(self, where: str, value, spec: Mapping, secret: bool) -> bool:
        if not isinstance(value, str):
            hint = " (quote it in YAML, so that it is read as written)" if isinstance(value, (int, float)) else ""
            self.fail(where, f"must be a string, not {type_name(value)} {show(value, secret)}{hint}")
            return False
        if not spec.get("multiline") and CONTROL.search(value):
            self.fail(where, "holds a line break or another control character"
                      + ("" if secret else f": {show(value, secret)}"))
            return False
        if "pattern" in spec and not re.fullmatch(spec["pattern"], value):
            means = spec.get("pattern_means", f"like {spec['pattern']}")
            self.fail(where, f"is {show(value, secret)}; it must be {means}")
            return False
        return True

    def check_path(self, where: str, value, spec: Mapping, secret: bool) -> bool:
        if not self.check_str(where, value, spec, secret):
            return False
        if not value.startswith("/"):
            self.fail(where, f"must be an absolute path, not {show(value, secret)}")
            return False
        if PATH_UNSAFE.search(value) or "/../" in value + "/":
            self.fail(where, "must be a path without white space, quotes, backslashes, '%', '$', ';' or '..'"
                      f" (unit files and .env read those specially), not {show(value, secret)}")
            return False
        return True

    def check_raw(self, where: str, value, spec: Mapping, secret: bool) -> bool:
        return True

    def check_int(self, where: str, value, spec: Mapping, secret: bool) -> bool:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()))
        ):
            self.fail(where, f"must be an integer, not {type_name(value)} {show(value, secret)}")
            return False
        number = int(value)
        low, high = spec.get("minimum"), spec.get("maximum")
        if (low is not None and number < low) or (high is not None and number > high):
            if high is None:
                bounds = f"at least {low}"
            else:
                bounds = f"from {low} to {high}" if low is not None else f"at most {high}"
            self.fail(where, f"is {number}; it must be {bounds}")
            return False
        return True

    def check_bool(self, where: str, value, spec: Mapping, secret: bool) -> bool:
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return True
        if isinstance(value, str) and value.strip().lower() in BOOLEANS:
            return True
        self.fail(where, f"must be true or false (or yes/no), not {show(value, secret)}")
        return False

    def check_list(self, where: str, value, spec: Mapping, secret: bool) -> bool:
        if not isinstance(value, (list, tuple)):
            self.fail(where, f"must be a list, not {type_name(value)} {show(value, secret)}"
                      + (" (write [item] or a YAML list)" if isinstance(value, str) else ""))
            return False
        element = {k: v for k, v in spec.items() if k not in ("type", "elements", "default", "required")}
        element["type"] = spec.get("elements", "raw")
        for index, item in enumerate(value):
            self.check(f"{where}[{index}]", item, element, secret)
        return True

    def check_dict(self, where: str, value, spec: Mapping, secret: bool) -> bool:
        if not isinstance(value, Mapping):
            self.fail(where, f"must be a mapping, not {type_name(value)} {show(value, secret)}")
            return False
        options = spec.get("options")
        if not options:
            return True
        for key in value:
            if key not in options:
                self.fail(where, f"has the key {key!r}, which is not one of its keys{closest(str(key), options)}")
        for key, option in options.items():
            if key in value:
                self.check(f"{where}.{key}", value[key], option, secret)
            elif option.get("required"):
                self.fail(where, f"needs the key {key!r}")
        return True


def closest(name: str, names) -> str:
    match = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def role_dirs(role: str, task_vars: Mapping) -> list[Path]:
    here = Path(__file__).resolve().parents[2]  # the roles folder this role is in
    places = [here, Path(task_vars.get("playbook_dir", ".")) / "roles", *map(Path, constants.DEFAULT_ROLES_PATH)]
    return [place / role for place in places]


def load_options(role: str, task_vars: Mapping) -> dict:
    """The role's `main` options, with the limits of its meta/value_limits.yml."""
    for folder in role_dirs(role, task_vars):
        spec_file = folder / "meta" / "argument_specs.yml"
        if spec_file.is_file():
            specs = yaml.safe_load(spec_file.read_text())["argument_specs"]
            options = copy.deepcopy(dict(specs.get("main", {}).get("options", {})))
            limits_file = folder / "meta" / "value_limits.yml"
            limits = yaml.safe_load(limits_file.read_text()) if limits_file.is_file() else {}
            for path, limit in (limits or {}).items():
                name, _, key = path.partition(".")
                option = options[name] if not key else options[name]["options"][key]
                option.update(limit)
            return options
    raise AnsibleError(f"fleet_check_vars: no meta/argument_specs.yml for the role {role}")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        roles = list(self._task.args.get("roles") or [])
        options: dict[str, dict] = {}
        for role in roles:
            options.update(load_options(role, task_vars))
        prefixes = tuple(f"{role}_" for role in roles)
        checker = Checker()
        for name in sorted(n for n in task_vars if isinstance(n, str) and n.startswith(prefixes)):
            if name not in options:
                checker.fail(name, f"is not a variable of the roles {', '.join(roles)}{closest(name, options)}")
                continue
            try:
                # Lazy containers template their items on access: inside the try.
                checker.check(name, self._templar.resolve_variable_expression(name), options[name])
            except Exception as error:  # noqa: BLE001 - any templating failure is the operator's to fix
                # The message of a templating error may quote the template: shown only for non-secrets.
                detail = "" if options[name].get("no_log") else f": {str(error).splitlines()[0][:200]}"
                checker.fail(name, f"cannot be templated ({type(error).__name__}){detail}")
        host = task_vars.get("inventory_hostname", "this host")
        result["changed"] = False
        result["checked"] = len(options)
        if checker.problems:
            result["failed"] = True
            result["msg"] = f"{host}: " + "; ".join(checker.problems) + "."
        else:
            result["msg"] = f"{host}: every variable of {', '.join(roles)} it sets has the right type"
        return result
