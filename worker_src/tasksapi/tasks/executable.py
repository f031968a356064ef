"""Run executable jobs: a command on the worker host, no container.

- The job's environment holds only the variables named in ``env_vars_list``
  (copied from the worker's environment; a missing one fails the job before
  anything runs), plus ``JOB_UUID`` and the worker's ``PATH``. The worker's
  own secrets (``WORKER_SECRETS``) are never handed over: a job that names
  one fails, saying so.
- The job starts in a directory of its own, made for it in the temp
  directory and removed afterwards, never in the worker's directory (its
  code and its .env).
- ``$NAME`` and ``${NAME}`` in the command are expanded from the JOB's
  environment, not the worker's, so worker secrets such as API_AUTH_TOKEN
  never reach a command line; unknown names are left as they are. The result
  is then split shell-style (no shell runs it).
- A non-empty ``args_dict`` is appended as one JSON string or, when
  ``json_file_option`` is set, as that option followed by the path of a JSON
  file written in the temp directory and removed afterwards.
- stdout and stderr are appended to ``{logs}/{uuid}/{uuid}-stdout.txt`` and
  ``-stderr.txt``. A non-zero exit fails the job.
- If this process gets SIGTERM while the job runs (Celery's revoke with
  terminate=True), the job's process group is terminated too, then the
  signal is passed on to the previous handler (see ``processes``).
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import json
import logging
import os
import re
import shlex
import tempfile

from tasksapi.compat import STRING_TYPES, ensure_directory, native_str, remove_file, show, text
from tasksapi.tasks import joblogs, processes
from tasksapi.tasks.errors import JobError, JobTerminated

logger = logging.getLogger(__name__)

_VARIABLE = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})")

#: Variables of the worker's .env that give access to the broker, the saltant
#: server's API or Rollbar: a job's env_vars_list may not name them.
WORKER_SECRETS = ("CELERY_BROKER_URL", "API_AUTH_TOKEN", "ROLLBAR_ACCESS_TOKEN")

#: Seconds a terminated job gets between SIGTERM and SIGKILL.
KILL_GRACE = processes.KILL_GRACE
#: Seconds between checks of a running job.
POLL_INTERVAL = processes.POLL_INTERVAL


def build_job_environment(uuid, env_vars_list, environ=None):
    """Return the job's environment (native strings), or raise JobError."""
    environ = os.environ if environ is None else environ
    names = [] if env_vars_list is None else env_vars_list
    if not isinstance(names, (list, tuple)) or not all(
        isinstance(name, STRING_TYPES) for name in names
    ):
        raise JobError(
            "env_vars_list must be a list of variable names, not %s"
            % (show(env_vars_list),)
        )
    secrets = [name for name in names if text(name) in WORKER_SECRETS]
    if secrets:
        raise JobError(
            "env_vars_list names %s, the worker's own secret%s: jobs never get %s"
            % (
                ", ".join(text(name) for name in secrets),
                "s" if len(secrets) > 1 else "",
                "them" if len(secrets) > 1 else "it",
            )
        )
    missing = [name for name in names if native_str(name) not in environ]
    if missing:
        raise JobError(
            "environment variable%s %s named in env_vars_list %s not set on this "
            "worker"
            % (
                "s" if len(missing) > 1 else "",
                ", ".join(text(name) for name in missing),
                "are" if len(missing) > 1 else "is",
            )
        )
    job_environment = {}
    for name in names:
        job_environment[native_str(name)] = environ[native_str(name)]
    job_environment[native_str("PATH")] = environ.get(native_str("PATH"), os.defpath)
    job_environment[native_str("JOB_UUID")] = native_str(uuid)
    return job_environment


def expand_variables(command, job_environment):
    """Expand ``$NAME``/``${NAME}`` in ``command`` from ``job_environment`` only."""

    def replace(match):
        name = native_str(match.group(1) or match.group(2))
        if name in job_environment:
            return text(job_environment[name])
        return match.group(0)

    return _VARIABLE.sub(replace, text(command))


def split_command(command, job_environment):
    """Return the argument list of ``command`` after variable expansion."""
    expanded = expand_variables(command, job_environment)
    try:
        return [text(part) for part in shlex.split(native_str(expanded))]
    except ValueError as exc:
        raise JobError("cannot split command_to_run %s: %s" % (show(command), exc))


def write_json_file(temp_directory, uuid, arguments_json):
    """Write the JSON arguments to a new file in ``temp_directory``; return its path."""
    ensure_directory(temp_directory)
    handle, path = tempfile.mkstemp(
        prefix="%s-" % (uuid,), suffix="-args.json", dir=temp_directory
    )
    with io.open(handle, "w", encoding="utf-8") as json_file:
        json_file.write(text(arguments_json))
    return path


def _run(argv, job_environment, stdout_path, stderr_path, kill_grace, poll_interval, cwd=None):
    """Run the job with its output appended to the log files; return its code."""
    with processes.TerminateJobOnSigterm() as guard:
        returncode = processes.run_logged(
            argv,
            job_environment,
            stdout_path,
            stderr_path,
            guard,
            kill_grace=kill_grace,
            poll_interval=poll_interval,
            cwd=cwd,
        )
    if guard.received is not None:
        # Only reached if the previous handler let this process live on.
        raise JobTerminated("job terminated (the worker received SIGTERM)")
    return returncode


def run_executable_job(
    uuid,
    command_to_run,
    env_vars_list,
    args_dict,
    json_file_option,
    logs_directory,
    temp_directory,
    environ=None,
    kill_grace=KILL_GRACE,
    poll_interval=POLL_INTERVAL,
):
    """Run an executable job to completion; raise JobError when it fails."""
    uuid = joblogs.check_uuid(uuid)
    if args_dict is not None and not isinstance(args_dict, dict):
        raise JobError("args_dict must be a JSON object, not %s" % (show(args_dict),))
    job_environment = build_job_environment(uuid, env_vars_list, environ)
    argv = split_command(command_to_run or "", job_environment)
    if not argv:
        raise JobError("command_to_run is empty")

    json_path = None
    try:
        if args_dict:
            arguments_json = json.dumps(args_dict)
            if json_file_option:
                json_path = write_json_file(temp_directory, uuid, arguments_json)
                argv.extend([text(json_file_option), json_path])
            else:
                argv.append(text(arguments_json))
        stdout_path = joblogs.stdout_path(logs_directory, uuid)
        stderr_path = joblogs.stderr_path(logs_directory, uuid)
        logger.info("job %s: running %s", uuid, show(argv))
        oom_kills_before = processes.oom_kills()
        with processes.job_directory(temp_directory, uuid) as cwd:
            returncode = _run(
                argv, job_environment, stdout_path, stderr_path, kill_grace, poll_interval, cwd
            )
    finally:
        if json_path is not None:
            remove_file(json_path, logger)

    if returncode != 0:
        raise JobError(processes.describe_exit(
            returncode, out_of_memory=processes.oom_killed_since(oom_kills_before)))
    logger.info("job %s: command exited with code 0", uuid)
