"""Write several files and directories of the role in one module run.

Each entry of ``entries`` is a directory (``state: directory``) or a file
whose text comes from a template of the role (``template``, rendered here on
the controller as the template module renders it, with ``vars`` added for
that entry), a file of the role (``src``) or ``content``; with ``path``,
``owner``, ``group`` and ``mode``. The module of the same name (library/)
writes what differs, in one run on the host, and returns ``changed_paths``
(so that later tasks can notify a handler for one of them) and, in diff
mode, a diff per changed path.

Measured on the test bed: an unchanged template task costs two module runs
on the host (stat, then file), about 0.4 CPU-s there and 0.2 here; this
action costs one module run for all of its entries.
"""

from __future__ import annotations

import os

from ansible._internal._templating import _template_vars
from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

_ENTRY_KEYS = {"path", "state", "template", "src", "content", "vars", "owner", "group", "mode", "diff"}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("entries",))

    def _source(self, kind: str, name: str) -> str:
        """A file of the calling role's templates/ or files/ (or the playbook's), found as template and copy find it."""
        try:
            return self._find_needle(kind, name)
        except AnsibleError as error:
            raise AnsibleActionFail(str(error)) from error

    def _render(self, name: str, path: str, extra: dict, task_vars: dict) -> str:
        source = self._source("templates", name)
        data = trust_as_template(self._loader.get_text_file_contents(source))
        search = []
        for base in [*task_vars.get("ansible_search_path", []), self._loader._basedir, os.path.dirname(source)]:
            search += [os.path.join(base, "templates"), base]
        variables = task_vars.copy()
        variables.update(
            _template_vars.generate_ansible_template_vars(
                path=name,
                fullpath=source,
                dest_path=path,
                include_ansible_managed="ansible_managed" not in variables,
            )
        )
        variables.update(extra)
        templar = self._templar.copy_with_new_env(searchpath=search, available_variables=variables)
        # The template module's defaults: trim_blocks, "\n" line ends.
        text = templar.template(
            data,
            escape_backslashes=False,
            overrides={"trim_blocks": True, "lstrip_blocks": False, "newline_sequence": "\n"},
        )
        return "" if text is None else str(text)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        entries = self._task.args.get("entries")
        if not isinstance(entries, list):
            raise AnsibleActionFail("entries must be a list")
        module_entries = []
        for entry in entries:
            unknown = set(entry) - _ENTRY_KEYS
            if unknown or "path" not in entry or "mode" not in entry:
                raise AnsibleActionFail(f"an entry needs path and mode and knows only {sorted(_ENTRY_KEYS)}: {entry!r}")
            sources = [k for k in ("template", "src", "content") if k in entry]
            if len(sources) != (0 if entry.get("state") == "directory" else 1):
                raise AnsibleActionFail(
                    f"{entry['path']}: a file needs one of template, src or content, a directory none; given: {sources}"
                )
            out = {k: entry[k] for k in ("path", "state", "owner", "group", "mode", "diff") if k in entry}
            out["mode"] = str(entry["mode"])
            if "template" in entry:
                out["content"] = self._render(entry["template"], entry["path"], entry.get("vars") or {}, task_vars)
            elif "src" in entry:
                with open(self._source("files", entry["src"]), encoding="utf-8") as f:
                    out["content"] = f.read()
            elif "content" in entry:
                out["content"] = str(entry["content"])
            module_entries.append(out)
        result.update(
            self._execute_module(
                module_name="saltant_files", module_args={"entries": module_entries}, task_vars=task_vars
            )
        )
        return result
