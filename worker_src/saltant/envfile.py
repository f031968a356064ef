"""A small, strict reader for ``.env`` files and typed settings.

Accepted lines:

- blank lines and lines whose first non-blank character is ``#``;
- ``KEY=VALUE`` and ``export KEY=VALUE``; whitespace around ``KEY`` and
  ``VALUE`` is ignored;
- ``VALUE`` may be wrapped in single quotes (taken literally) or double
  quotes (``\\"``, ``\\\\`` and ``\\$`` are unescaped, as django-dotenv
  does, so that one file means the same to both); an unquoted value ends at
  `` #`` (whitespace then ``#``), which starts a comment.

Anything else is an error that names the file and the line number.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import collections
import errno
import io
import re

from tasksapi.compat import show

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXPORT = re.compile(r"^export\s+")
_INLINE_COMMENT = re.compile(r"\s+#.*$")


class SettingsError(Exception):
    """A missing or invalid .env file or setting; the worker must not start."""


def _unquote(value, path, number):
    """Return the value of a ``KEY=VALUE`` line with quotes handled."""
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = _closing_quote(value, quote)
        if end is None:
            raise SettingsError(
                "%s, line %d: unterminated %s quote" % (path, number, quote)
            )
        rest = value[end + 1 :].strip()
        if rest and not rest.startswith("#"):
            raise SettingsError(
                "%s, line %d: unexpected text after the closing quote: %s"
                % (path, number, show(rest))
            )
        inner = value[1:end]
        if quote == '"':
            inner = re.sub(r'\\(["\\$])', r"\1", inner)
        return inner
    return _INLINE_COMMENT.sub("", value).strip()


def _closing_quote(value, quote):
    """Return the index of the quote that closes ``value[0]``, or None."""
    index = 1
    while index < len(value):
        char = value[index]
        if quote == '"' and char == "\\":
            index += 2
            continue
        if char == quote:
            return index
        index += 1
    return None


def parse_lines(lines, path="<.env>"):
    """Parse ``.env`` lines into an ordered mapping of name to text value."""
    values = collections.OrderedDict()
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = _EXPORT.sub("", line)
        if "=" not in line:
            raise SettingsError(
                "%s, line %d: expected KEY=VALUE, got %s"
                % (path, number, show(raw.rstrip()))
            )
        key, value = line.split("=", 1)
        key = key.strip()
        if not _KEY.match(key):
            raise SettingsError(
                "%s, line %d: invalid variable name %s" % (path, number, show(key))
            )
        values[key] = _unquote(value.strip(), path, number)
    return values


def read_env_file(path):
    """Read and parse the ``.env`` file at ``path``.

    A missing file raises :class:`SettingsError` explaining how to create it.
    """
    problem = None
    try:
        with io.open(path, "r", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (IOError, OSError) as exc:
        problem = exc
    # Raised outside the except clause: no chained traceback on Python 3.
    if problem is not None and problem.errno == errno.ENOENT:
        raise SettingsError(
            "saltant worker: .env not found at %s; copy .env.example to .env "
            "(next to the saltant package) and fill in the Celery worker "
            "environment, or point SALTANT_ENV_FILE at another file" % (path,)
        )
    if problem is not None:
        raise SettingsError("saltant worker: cannot read %s: %s" % (path, problem))
    return parse_lines(lines, path)


def get_str(environ, name, default=None, required=False):
    """Return variable ``name``; ``required`` ones must be set and non-empty."""
    value = environ.get(name)
    if value is None or value == "":
        if required:
            raise SettingsError(
                "saltant worker: %s is required but not set (see .env.example)"
                % (name,)
            )
        return default
    return value


def get_bool(environ, name, default=None):
    """Return variable ``name`` as a bool; only ``True``/``False`` are valid."""
    value = environ.get(name)
    if value is None:
        if default is None:
            raise SettingsError(
                "saltant worker: %s is required: set it to True or False" % (name,)
            )
        return default
    if value == "True":
        return True
    if value == "False":
        return False
    raise SettingsError(
        "saltant worker: %s must be exactly True or False, not %s" % (name, show(value))
    )


def get_int(environ, name, default=None):
    """Return variable ``name`` as an int (``default`` when unset or empty)."""
    value = environ.get(name)
    if value is None or value == "":
        if default is None:
            raise SettingsError(
                "saltant worker: %s is required: set it to an integer" % (name,)
            )
        return default
    try:
        return int(value.strip())
    except ValueError:
        raise SettingsError(
            "saltant worker: %s must be an integer, not %s" % (name, show(value))
        )


def get_none_or_int(environ, name, default=None):
    """Return variable ``name`` as an int, or Python None for ``None``.

    Celery must get the None object, never the string "None" (kombu compares
    the pool limit with integers and fails or spins on a string).
    """
    value = environ.get(name)
    if value is None or value == "":
        return default
    if value.strip() == "None":
        return None
    try:
        return int(value.strip())
    except ValueError:
        raise SettingsError(
            "saltant worker: %s must be None or an integer, not %s"
            % (name, show(value))
        )
