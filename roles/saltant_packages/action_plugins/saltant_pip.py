"""Install Python packages into a virtualenv with the pip module, only when
the virtualenv changed since pip last had nothing to do there.

Takes the arguments of ``ansible.builtin.pip``. With ``state: present`` (the
default), a ``virtualenv`` and an absolute ``requirements`` path if any, it
first reads, with one shell command (no Python on the host), a digest of the
virtualenv: its interpreter and the names of everything in its
site-packages (each installed distribution's ``NAME-VERSION.dist-info``),
and the digest of the requirements file. After each successful pip run the
action records that digest, and which pip calls (their arguments and
requirements file) it has seen satisfied there, in the virtualenv's
``.saltant-fleet-pip`` (root's alone, outside site-packages; gone with the
virtualenv):

- pip changed nothing and the virtualenv is as recorded: this call is added
  to those satisfied;
- the virtualenv changed (pip installed something, or it differs from the
  record): this call is the only one satisfied.

A call recorded as satisfied, on a virtualenv whose digest is unchanged,
reports ok and the pip module does not run. Anything else (another state, a
relative requirements path, an editable install, no virtualenv, a package
removed, added or upgraded in the virtualenv by anyone) runs the pip module
as the task would have.

Why: pip starts slowly. Measured on a Debian 12 test host: 1.1 CPU-s for an
already satisfied requirement set of 31 pins, 0.5 for a pinned pip, against
about 0.01 for the digest. A role that runs again for a new setting paid
that for each of its pip tasks.

This is the question pip answers too: pip decides from the installed
distributions' metadata whether a requirement is satisfied, so a virtualenv
with the same distributions gets the same answer.
"""

from __future__ import annotations

import hashlib
import json
import shlex

from ansible.plugins.action import ActionBase

RECORD = ".saltant-fleet-pip"
# The pip arguments with which "satisfied before, unchanged since" means pip would change nothing.
_RECORDABLE = {"name", "version", "requirements", "virtualenv", "virtualenv_command", "virtualenv_python",
               "virtualenv_site_packages", "extra_args", "state"}

# The digest of a virtualenv: its interpreter (a venv whose Python is gone
# has none) and the entries of its site-packages.
_STATE = """state() {
  if [ -x "$venv/bin/python" ]; then
    { readlink -f "$venv/bin/python"; ls -1a "$venv/lib"; ls -1a "$venv"/lib/*/site-packages; } 2>&1 \\
      | sha256sum | cut -c1-64
  else
    echo absent
  fi
}
"""
_READ = _STATE + """echo "now $(state)"
if [ -n "$requirements" ]; then
  echo "requirements $( { sha256sum < "$requirements" || echo missing; } 2>/dev/null | cut -c1-64)"
fi
cat -- "$record" 2>/dev/null
"""
_WRITE = _STATE + """umask 077
now=$(state)
{
  echo "state $now"
  if [ "$now" = "$before" ]; then printf '%s' "$satisfied"; fi
  echo "satisfied $call"
} > "$record.new" && mv -f -- "$record.new" "$record"
"""


def _script(body: str, **values: str) -> str:
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items()) + body


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def _recordable(self) -> bool:
        args = self._task.args
        requirements = args.get("requirements")
        return (args.get("state", "present") == "present" and set(args).issubset(_RECORDABLE)
                and isinstance(args.get("virtualenv"), str) and args["virtualenv"].startswith("/")
                and (requirements is None or (isinstance(requirements, str) and requirements.startswith("/"))))

    def _shell(self, script: str) -> dict:
        return self._low_level_execute_command("/bin/sh -c " + shlex.quote(script), sudoable=True)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if not self._recordable():
            result.update(self._execute_module(module_name="ansible.builtin.pip", module_args=self._task.args,
                                               task_vars=task_vars))
            return result

        args = self._task.args
        venv = args["virtualenv"]
        record = f"{venv.rstrip('/')}/{RECORD}"
        read = self._shell(_script(_READ, venv=venv, requirements=args.get("requirements") or "", record=record))
        found: dict[str, str] = {}
        satisfied: list[str] = []
        for line in str(read.get("stdout") or "").splitlines():
            word, _, value = line.partition(" ")
            if word == "satisfied":
                satisfied.append(value)
            elif word in ("now", "requirements", "state"):
                found[word] = value
        now = found.get("now", "")
        # The call: its arguments (extra_args may hold an index password: only
        # its digest is kept) and the requirements file's content.
        call = hashlib.sha256(json.dumps(
            {**args, "extra_args": hashlib.sha256(str(args.get("extra_args") or "").encode()).hexdigest(),
             "requirements_file": found.get("requirements", "")}, sort_keys=True, default=str).encode()).hexdigest()
        # What was recorded holds only for the virtualenv as it is now.
        if read.get("rc") != 0 or now in ("", "absent") or found.get("state") != now:
            satisfied = []
        if call in satisfied:
            result.update(changed=False, msg=f"satisfied already in {venv} (unchanged since pip last ran there)")
            return result

        result.update(self._execute_module(module_name="ansible.builtin.pip", module_args=args, task_vars=task_vars))
        if result.get("failed") or self._play_context.check_mode:
            return result
        # Kept satisfied only if pip left the virtualenv as it found it.
        self._shell(_script(_WRITE, venv=venv, record=record, before=now, call=call,
                            satisfied="".join(f"satisfied {key}\n" for key in satisfied)))
        return result
