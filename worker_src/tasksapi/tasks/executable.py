"""Run executable jobs: a command on the worker host, no container.

- The job's environment holds only the variables named in ``env_vars_list``
  (copied from the worker's environment; a missing one fails the job before
  anything runs), plus ``JOB_UUID`` and the worker's ``PATH``.
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
  signal is passed on to the previous handler.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import errno
import io
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time

from tasksapi.compat import STRING_TYPES, ensure_directory, native_str, show, text
from tasksapi.tasks import joblogs
from tasksapi.tasks.errors import JobError

logger = logging.getLogger(__name__)

_VARIABLE = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})")

#: Seconds a terminated job gets between SIGTERM and SIGKILL.
KILL_GRACE = 5
#: Seconds between checks of a running job.
POLL_INTERVAL = 0.1


class JobTerminated(JobError):
    """The worker process was told to terminate the running job."""


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


def _remove(path):
    try:
        os.remove(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            logger.warning("could not remove %s: %s", path, exc)


def _start(argv, job_environment, stdout, stderr, devnull):
    """Start the job in its own process group; explain failures to start."""
    try:
        return subprocess.Popen(
            [native_str(part) for part in argv],
            env=job_environment,
            stdin=devnull,
            stdout=stdout,
            stderr=stderr,
            close_fds=True,
            # Own process group: a terminated job takes its children along.
            preexec_fn=os.setpgrp,  # noqa: PLW1509
        )
    except OSError as exc:
        reasons = {
            errno.ENOENT: "no such file or directory (is it installed and on "
            "the worker's PATH?)",
            errno.EACCES: "permission denied (is it executable?)",
            errno.ENOEXEC: "not an executable file",
        }
        raise JobError(
            "cannot run executable %s: %s"
            % (show(argv[0]), reasons.get(exc.errno, text(exc.strerror or exc)))
        )


def _signal_job(process, signum):
    """Send ``signum`` to the job's process group (or the job alone)."""
    if process.returncode is not None:
        return
    try:
        os.killpg(process.pid, signum)
    except OSError:
        try:
            process.send_signal(signum)
        except OSError:
            pass


class _TerminateJobOnSigterm(object):
    """While active, SIGTERM to this process terminates the job first.

    On exit the previous handler is restored and a received SIGTERM is sent
    again to this process, for the handler it was meant for.
    """

    def __init__(self):
        self.process = None
        self.received = None
        self.previous = None
        self.installed = False

    def __enter__(self):
        try:
            self.previous = signal.signal(signal.SIGTERM, self._handle)
            self.installed = True
        except ValueError:
            # Signal handlers can only be set in the main thread.
            logger.debug("not in the main thread: SIGTERM is not forwarded")
        return self

    def attach(self, process):
        """Set the job process (signalled at once if SIGTERM came first)."""
        self.process = process
        if self.received is not None:
            _signal_job(process, signal.SIGTERM)

    def _handle(self, signum, frame):
        self.received = signum
        if self.process is not None:
            _signal_job(self.process, signal.SIGTERM)

    def restore(self):
        if self.installed:
            previous = signal.SIG_DFL if self.previous is None else self.previous
            signal.signal(signal.SIGTERM, previous)
            self.installed = False

    def __exit__(self, exc_type, exc_value, traceback):
        was_installed = self.installed
        self.restore()
        if was_installed and self.received is not None:
            os.kill(os.getpid(), self.received)
        return False


def _wait(process, guard, kill_grace, poll_interval):
    """Wait for the job; after a SIGTERM, kill it if it outlives the grace."""
    deadline = None
    while True:
        returncode = process.poll()
        if returncode is not None:
            return returncode
        if guard.received is not None:
            if deadline is None:
                deadline = time.time() + kill_grace
            elif time.time() >= deadline:
                _signal_job(process, signal.SIGKILL)
        time.sleep(poll_interval)


def _run(argv, job_environment, stdout_path, stderr_path, kill_grace, poll_interval):
    """Run the job with its output appended to the log files; return its code."""
    guard = _TerminateJobOnSigterm()
    with io.open(os.devnull, "rb") as devnull, io.open(
        stdout_path, "ab"
    ) as stdout, io.open(stderr_path, "ab") as stderr, guard:
        process = _start(argv, job_environment, stdout, stderr, devnull)
        guard.attach(process)
        returncode = _wait(process, guard, kill_grace, poll_interval)
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
        returncode = _run(
            argv, job_environment, stdout_path, stderr_path, kill_grace, poll_interval
        )
    finally:
        if json_path is not None:
            _remove(json_path)

    if returncode != 0:
        if returncode < 0:
            raise JobError("command killed by signal %d" % (-returncode,))
        raise JobError("command exited with code %d" % (returncode,))
    logger.info("job %s: command exited with code 0", uuid)
