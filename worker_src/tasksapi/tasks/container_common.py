"""What Docker and Singularity jobs share: command, environment, binds.

- The command is split shell-style WITHOUT variable expansion (no shell runs
  it, as with ``docker run image cmd...``); a non-empty ``args_dict`` is
  appended as ONE JSON argument.
- The container's environment holds only the variables named in
  ``env_vars_list`` (taken from the worker's environment; a missing one
  fails the job before anything is pulled) plus ``JOB_UUID``. Unlike
  executable jobs, the worker's PATH is not added: the image has its own.
- Binds: ``{logs_directory}/{uuid}`` -> ``logs_path`` and
  ``{results_directory}/{uuid}`` -> ``results_path``, each only when the
  container path is set; the host directories are created before the job
  runs.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import json
import os
import posixpath
import shlex

from tasksapi.compat import STRING_TYPES, ensure_directory, native_str, show, text
from tasksapi.tasks import joblogs
from tasksapi.tasks.errors import JobError
from tasksapi.tasks.executable import build_job_environment

#: Characters that would break a bind specification (``host:container``,
#: comma-separated lists for Singularity).
_BIND_SEPARATORS = (":", ",")


def check_args_dict(args_dict):
    """Raise JobError unless ``args_dict`` is None or a dict."""
    if args_dict is not None and not isinstance(args_dict, dict):
        raise JobError("args_dict must be a JSON object, not %s" % (show(args_dict),))


def check_image(container_image):
    """Return ``container_image`` as text, or raise JobError when unusable."""
    if (
        not isinstance(container_image, STRING_TYPES)
        or not text(container_image).strip()
    ):
        raise JobError(
            "container_image must name an image, not %s" % (show(container_image),)
        )
    image = text(container_image).strip()
    if any(character.isspace() for character in image):
        raise JobError("container_image %s contains white space" % (show(image),))
    return image


def container_environment(uuid, env_vars_list, environ=None):
    """Return the container's environment: named variables plus JOB_UUID.

    Keys and values are text. A named variable missing from ``environ`` (the
    worker's environment by default) raises JobError naming it.
    """
    job_environment = build_job_environment(uuid, env_vars_list, environ)
    names = {text(name) for name in (env_vars_list or [])}
    environment = {}
    for name, value in job_environment.items():
        name = text(name)
        if name == "PATH" and "PATH" not in names:
            continue
        environment[name] = text(value)
    return environment


def split_command(command_to_run):
    """Return ``command_to_run`` split shell-style (no variable expansion)."""
    command = text(command_to_run or "")
    try:
        return [text(part) for part in shlex.split(native_str(command))]
    except ValueError as exc:
        raise JobError("cannot split command_to_run %s: %s" % (show(command), exc))


def json_arguments(args_dict):
    """Return the JSON arguments as a list of one argument (none when empty)."""
    return [text(json.dumps(args_dict))] if args_dict else []


def container_command(command_to_run, args_dict):
    """Return the command as a list, plus the JSON arguments as one argument.

    An empty command gives an empty list (the image's default command, with
    the JSON arguments if any).
    """
    return split_command(command_to_run) + json_arguments(args_dict)


def check_container_path(name, value):
    """Return the container path ``value`` as text (None when unset).

    It must be absolute and free of ``:`` and ``,`` (bind separators).
    """
    if value is None or (isinstance(value, STRING_TYPES) and not text(value)):
        return None
    if not isinstance(value, STRING_TYPES):
        raise JobError("%s must be a path, not %s" % (name, show(value)))
    path = text(value)
    if not path.startswith("/"):
        raise JobError(
            "%s must be an absolute path inside the container, not %s"
            % (name, show(path))
        )
    if any(separator in path for separator in _BIND_SEPARATORS):
        raise JobError("%s %s must not contain ':' or ','" % (name, show(path)))
    return path


def job_binds(uuid, logs_directory, results_directory, logs_path, results_path):
    """Return the job's binds as a list of ``(host directory, container path)``.

    Nothing is created here (see :func:`create_bind_directories`).
    """
    uuid = joblogs.check_uuid(uuid)
    logs_path = check_container_path("logs_path", logs_path)
    results_path = check_container_path("results_path", results_path)
    if (
        logs_path is not None
        and results_path is not None
        and posixpath.normpath(logs_path) == posixpath.normpath(results_path)
    ):
        raise JobError(
            "logs_path and results_path are the same container path %s"
            % (show(logs_path),)
        )
    binds = []
    for container_path, directory, setting in (
        (logs_path, logs_directory, "WORKER_LOGS_DIRECTORY"),
        (results_path, results_directory, "WORKER_RESULTS_DIRECTORY"),
    ):
        if container_path is None:
            continue
        if not directory:
            raise JobError(
                "%s is not set on this worker: cannot bind %s"
                % (setting, show(container_path))
            )
        host = os.path.join(text(directory), uuid)
        if any(separator in host for separator in _BIND_SEPARATORS):
            raise JobError(
                "%s %s must not contain ':' or ',' (it is bound into containers)"
                % (setting, show(text(directory)))
            )
        binds.append((host, container_path))
    return binds


def create_bind_directories(binds):
    """Create the host directories of ``binds`` (see :func:`job_binds`)."""
    for host, _ in binds:
        ensure_directory(host)
