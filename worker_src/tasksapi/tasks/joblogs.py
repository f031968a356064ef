"""Where a job's log files live: ``{logs_directory}/{uuid}/{uuid}-std*.txt``."""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import os
import re

from tasksapi.compat import ensure_directory, show, text
from tasksapi.tasks.errors import JobError

# UUIDs become path components: accept nothing that could leave the directory.
_SAFE_UUID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def check_uuid(uuid):
    """Return ``uuid`` as text, or raise JobError when unsafe in a path."""
    if uuid is None or not _SAFE_UUID.match(text(uuid)):
        raise JobError("invalid job uuid %s" % (show(uuid),))
    return text(uuid)


def job_log_directory(logs_directory, uuid):
    """Return (creating it) the directory that holds job ``uuid``'s logs."""
    return ensure_directory(os.path.join(logs_directory, check_uuid(uuid)))


def stdout_path(logs_directory, uuid):
    """Return the path of job ``uuid``'s stdout log (directory created)."""
    directory = job_log_directory(logs_directory, uuid)
    return os.path.join(directory, "%s-stdout.txt" % (uuid,))


def stderr_path(logs_directory, uuid):
    """Return the path of job ``uuid``'s stderr log (directory created)."""
    directory = job_log_directory(logs_directory, uuid)
    return os.path.join(directory, "%s-stderr.txt" % (uuid,))


def append_to_stderr(logs_directory, uuid, message):
    """Append a line to job ``uuid``'s stderr log so its owner sees it."""
    with io.open(stderr_path(logs_directory, uuid), "a", encoding="utf-8") as log:
        log.write("%s\n" % (text(message).rstrip("\n"),))
