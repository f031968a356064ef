"""Write a value into the worker's .env so that it is read back exactly.

Two parsers read that file: worker_src's saltant/envfile.py and
django-dotenv 1.4.2, which upstream saltant's worker uses. Both read a
double-quoted value the same way when it is written like this:

- every backslash doubled and every double quote escaped (``\\\\``, ``\\"``);
- a ``$`` that django-dotenv would expand (``$NAME``, ``${NAME}``) escaped as
  ``\\$``; worker_src's parser unescapes ``\\$`` too, and expands nothing;
- nothing else: ``#``, ``'``, ``=``, spaces and non-ASCII text stay as they are.

A line-based file cannot hold a line break, so a value with a control
character is refused (the preflight refuses it first, naming the variable).
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

# What django-dotenv's variable pattern takes after a "$": an optional "{",
# then a letter, digit or underscore.
_EXPANDED_DOLLAR = re.compile(r"\$(?=\{?[A-Za-z0-9_])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def env_quote(value, name="a .env value"):
    """Return ``value`` as a double-quoted .env value; never shows the value in an error."""
    text = ("True" if value else "False") if isinstance(value, bool) else to_text(value)
    if _CONTROL.search(text):
        raise AnsibleFilterError(
            f"{name} holds a line break or another control character, which a .env file cannot hold"
        )
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _EXPANDED_DOLLAR.sub(r"\\$", text) + '"'


def env_unsafe_chars(value):
    """True when ``value`` cannot be written to a .env file (for the preflight's checks)."""
    return bool(_CONTROL.search(to_text(value)))


class FilterModule:
    def filters(self):
        return {
            "saltant_worker_env_quote": env_quote,
            "saltant_worker_env_unsafe": env_unsafe_chars,
        }
