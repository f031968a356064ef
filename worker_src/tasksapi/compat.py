"""Small helpers that behave the same on Python 2.7 and Python 3."""

from __future__ import absolute_import, division, print_function, unicode_literals

import errno
import json
import os

#: True on Python 2, where ``str`` is a byte string.
PY2 = str is bytes

#: Types accepted as strings (``unicode`` and ``str`` on Python 2).
STRING_TYPES = (bytes, str, "".__class__)


def native_str(value):
    """Return ``value`` as the native ``str`` type (UTF-8 bytes on Python 2).

    os.environ, subprocess arguments and environments want native strings
    on Python 2; on Python 3 this is the identity for text.
    """
    if PY2 and not isinstance(value, bytes):
        return value.encode("utf-8")
    if not PY2 and isinstance(value, bytes):
        return value.decode("utf-8")
    return value


def text(value):
    """Return ``value`` as text (``unicode`` on Python 2)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "%s" % (value,)


def ensure_directory(path):
    """Create ``path`` and its parents unless it is already a directory."""
    try:
        os.makedirs(path)
    except OSError as exc:
        if exc.errno != errno.EEXIST or not os.path.isdir(path):
            raise
    return path


def remove_file(path, logger):
    """Remove ``path``; a missing file is fine, any other failure is logged
    as a warning on ``logger``, never raised."""
    try:
        os.remove(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            logger.warning("could not remove %s: %s", path, exc)


def show(value):
    """Render ``value`` for a message the same way on Python 2 and 3.

    Strings are single-quoted (no ``u''`` prefix on Python 2), lists and
    dicts are shown as JSON.
    """
    if value is None:
        return "None"
    if isinstance(value, STRING_TYPES):
        return "'%s'" % (text(value),)
    try:
        return text(json.dumps(value, sort_keys=True))
    except (TypeError, ValueError):
        return text(repr(value))
