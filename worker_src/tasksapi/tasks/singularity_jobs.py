"""Singularity jobs: pull the image file once, then run the command in it.

The runtime's command line is used directly (``apptainer`` when it is on the
worker's PATH, else ``singularity``); no Python client library is needed.
Running it in child processes keeps every step bounded and stoppable:

- Pull: ``{runtime} pull --name FILE URI`` in
  ``WORKER_SINGULARITY_IMAGES_DIRECTORY`` (the working directory of the
  pull; ``--name`` and ``SINGULARITY_PULLFOLDER`` mean the same there for
  Singularity 2.x, 3.x and Apptainer). Each try gets
  ``SINGULARITY_PULL_TIMEOUT`` seconds (its process group then gets SIGTERM,
  and SIGKILL after a grace period); ``SINGULARITY_PULL_RETRIES`` tries in
  all. A try writes to a temporary file that is renamed into place when it
  succeeds, so concurrent jobs never see a partial image. The image file's
  name is derived from the URI (``docker://alpine:3.19`` ->
  ``docker_alpine_3.19-<hash>.sif``) and an existing file is used without
  pulling again: delete it to refresh a moving tag.
- Run: ``{runtime} exec --cleanenv --bind HOST:PATH ... IMAGE COMMAND... [JSON]``
  (``run`` instead of ``exec`` when the command is empty: the image's
  runscript gets the JSON arguments). ``--cleanenv`` keeps the worker's
  environment (secrets included) out of the container; the job's variables
  and ``JOB_UUID`` go in as ``APPTAINERENV_NAME`` (Apptainer) or
  ``SINGULARITYENV_NAME`` (Singularity) variables, which every version
  understands. stdout and stderr go to the job's log files; a non-zero exit
  fails the job.
- Otherwise Singularity's defaults apply: the job runs as the worker's user
  and sees what Singularity binds by default (the user's home directory,
  the current directory, /tmp). The current directory is a fresh one of the
  job's own in the temp directory (removed afterwards), never the worker's
  code checkout with its .env.
- SIGTERM to this process (Celery's revoke with terminate=True) terminates
  the running pull or job (process group) and stops further tries; the
  signal is then passed on to the previous handler.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import hashlib
import logging
import os
import re
import subprocess
import tempfile
import time

from tasksapi.compat import ensure_directory, native_str, remove_file, show, text
from tasksapi.tasks import joblogs, processes
from tasksapi.tasks.container_common import (
    check_args_dict,
    check_image,
    container_environment,
    create_bind_directories,
    job_binds,
    json_arguments,
    split_command,
)
from tasksapi.tasks.errors import JobError, JobTerminated

logger = logging.getLogger(__name__)

#: Runtime commands, in order of preference.
RUNTIME_NAMES = ("apptainer", "singularity")
NO_RUNTIME_MESSAGE = (
    "this worker has no apptainer or singularity command on its PATH: the "
    "host does not offer singularity jobs"
)
#: Prefixes of the variables that set the container's environment.
ENV_PREFIXES = ("APPTAINERENV_", "SINGULARITYENV_")
#: Seconds between two pull tries.
PULL_RETRY_DELAY = 5
#: How much of a failed pull's output the job's failure message quotes.
OUTPUT_TAIL_CHARACTERS = 1500

_UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


def find_runtime(path=None):
    """Return the path of ``apptainer`` or else ``singularity`` on ``path``.

    ``path`` defaults to the worker's PATH; None when neither is found.
    """
    if path is None:
        path = os.environ.get(native_str("PATH"), os.defpath)
    directories = [directory for directory in text(path).split(os.pathsep) if directory]
    for name in RUNTIME_NAMES:
        for directory in directories:
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return os.path.abspath(candidate)
    return None


def env_prefix(runtime):
    """Return the environment prefix the ``runtime`` command reads."""
    if os.path.basename(text(runtime)).startswith("apptainer"):
        return "APPTAINERENV_"
    return "SINGULARITYENV_"


def image_file_name(uri):
    """Return the file name of the image pulled from ``uri`` (stable, safe)."""
    uri = text(uri)
    readable = _UNSAFE_FILE_CHARACTERS.sub("_", uri).strip("._-")[:100]
    digest = hashlib.sha256(uri.encode("utf-8")).hexdigest()[:12]
    return "%s-%s.sif" % (readable or "image", digest)


def build_pull_argv(runtime, uri, file_name):
    """Return the pull command line (run in the images directory)."""
    return [text(runtime), "pull", "--name", text(file_name), text(uri)]


def build_run_argv(runtime, image_path, command, binds, arguments=()):
    """Return the command line that runs ``command`` in the image.

    ``binds`` is a list of ``(host directory, container path)``;
    ``arguments`` (the JSON arguments) follow the command. Without a command
    the image's runscript is run (``run``) with the arguments.
    """
    argv = [text(runtime), "exec" if command else "run", "--cleanenv"]
    for host, container_path in binds:
        argv.extend(["--bind", "%s:%s" % (text(host), text(container_path))])
    argv.append(text(image_path))
    argv.extend(text(part) for part in command)
    argv.extend(text(part) for part in arguments)
    return argv


def build_runtime_environment(runtime, environment, environ=None, pull_folder=None):
    """Return the environment of the runtime process (native strings).

    The worker's environment (proxies, HOME, APPTAINER_*/SINGULARITY_*
    settings), without any ``*ENV_`` variables of its own, plus the
    container's ``environment`` under the runtime's prefix.
    """
    environ = os.environ if environ is None else environ
    result = {}
    for name, value in environ.items():
        if not text(name).startswith(ENV_PREFIXES):
            result[native_str(name)] = native_str(value)
    prefix = env_prefix(runtime)
    for name, value in environment.items():
        result[native_str(prefix + text(name))] = native_str(value)
    if pull_folder is not None:
        result[native_str("SINGULARITY_PULLFOLDER")] = native_str(pull_folder)
    return result


def _tail(output):
    output = text(output).strip()
    if len(output) > OUTPUT_TAIL_CHARACTERS:
        output = "..." + output[-OUTPUT_TAIL_CHARACTERS:]
    return output


def _pause(seconds, guard, poll_interval):
    """Sleep ``seconds`` unless a SIGTERM arrives."""
    deadline = time.time() + seconds
    while time.time() < deadline and guard.received is None:
        time.sleep(min(poll_interval, max(0, deadline - time.time())))


def _pull_once(argv, environment, directory, guard, timeout, kill_grace, poll_interval):
    """Run one pull try; return ``(returncode, timed_out, output)``."""
    with tempfile.TemporaryFile() as output:
        process = processes.start(
            argv,
            environment,
            output,
            subprocess.STDOUT,
            what="Singularity command",
            cwd=directory,
        )
        guard.attach(process)
        try:
            returncode, timed_out = processes.wait(
                process, guard, kill_grace, poll_interval, timeout=timeout
            )
        finally:
            guard.detach()
        output.seek(0)
        return returncode, timed_out, output.read().decode("utf-8", "replace")


def pull_image(
    runtime,
    uri,
    images_directory,
    uuid,
    guard,
    timeout,
    retries,
    environ=None,
    retry_delay=PULL_RETRY_DELAY,
    kill_grace=processes.KILL_GRACE,
    poll_interval=processes.POLL_INTERVAL,
):
    """Return the path of the image file for ``uri``, pulling it if needed.

    Returns None when a SIGTERM (seen by ``guard``) stopped the pull; raises
    JobError when every try failed.
    """
    images_directory = text(images_directory)
    file_name = image_file_name(uri)
    final_path = os.path.join(images_directory, file_name)
    if os.path.isfile(final_path):
        logger.info("job %s: using the pulled image %s", uuid, final_path)
        try:
            # Used now: the host's disk hygiene removes images no job used for days.
            os.utime(final_path, None)
        except OSError as exc:
            logger.warning("job %s: could not mark %s as used: %s", uuid, final_path, exc)
        return final_path
    ensure_directory(images_directory)
    environment = build_runtime_environment(
        runtime, {}, environ, pull_folder=images_directory
    )
    timeout = timeout if timeout and timeout > 0 else None
    tries = max(1, int(retries or 1))
    reason = None
    for attempt in range(1, tries + 1):
        if guard.received is not None:
            return None
        temporary_name = ".%s.%s-%d.pull" % (file_name, uuid, attempt)
        temporary_path = os.path.join(images_directory, temporary_name)
        remove_file(temporary_path, logger)
        argv = build_pull_argv(runtime, uri, temporary_name)
        logger.info(
            "job %s: pulling %s (try %d of %d): %s",
            uuid,
            uri,
            attempt,
            tries,
            show(argv),
        )
        try:
            returncode, timed_out, output = _pull_once(
                argv,
                environment,
                images_directory,
                guard,
                timeout,
                kill_grace,
                poll_interval,
            )
            if guard.received is not None:
                return None
            if returncode == 0 and not timed_out and os.path.isfile(temporary_path):
                os.rename(temporary_path, final_path)
                logger.info("job %s: pulled %s to %s", uuid, uri, final_path)
                return final_path
        finally:
            remove_file(temporary_path, logger)
        if timed_out:
            reason = "timed out after %s s" % (timeout,)
        elif returncode == 0:
            reason = "the pull wrote no image file"
        else:
            reason = processes.describe_exit(returncode, "the pull")
        if output.strip():
            reason = "%s; its output: %s" % (reason, _tail(output))
        logger.warning(
            "job %s: pulling %s: try %d of %d failed: %s",
            uuid,
            uri,
            attempt,
            tries,
            reason,
        )
        if attempt < tries and retry_delay:
            _pause(retry_delay, guard, poll_interval)
    raise JobError(
        "cannot pull singularity image %s (%d %s): %s"
        % (show(uri), tries, "try" if tries == 1 else "tries", reason)
    )


def run_singularity_job(
    uuid,
    command_to_run,
    env_vars_list,
    args_dict,
    logs_path,
    results_path,
    container_image,
    logs_directory,
    results_directory,
    images_directory,
    pull_timeout,
    pull_retries,
    environ=None,
    runtime=None,
    retry_delay=PULL_RETRY_DELAY,
    kill_grace=processes.KILL_GRACE,
    poll_interval=processes.POLL_INTERVAL,
    temp_directory=None,
):
    """Run a Singularity job to completion; raise JobError when it fails.

    ``runtime`` is the runtime command's path (default: :func:`find_runtime`
    on the worker's PATH).
    """
    uuid = joblogs.check_uuid(uuid)
    check_args_dict(args_dict)
    uri = check_image(container_image)
    environment = container_environment(uuid, env_vars_list, environ)
    command = split_command(command_to_run)
    arguments = json_arguments(args_dict)
    binds = job_binds(uuid, logs_directory, results_directory, logs_path, results_path)
    if not images_directory:
        raise JobError("WORKER_SINGULARITY_IMAGES_DIRECTORY is not set on this worker")
    if runtime is None:
        runtime = find_runtime(
            None if environ is None else environ.get(native_str("PATH"), os.defpath)
        )
        if runtime is None:
            raise JobError(NO_RUNTIME_MESSAGE)

    stdout_path = joblogs.stdout_path(logs_directory, uuid)
    stderr_path = joblogs.stderr_path(logs_directory, uuid)
    create_bind_directories(binds)
    returncode = None
    oom_kills_before = None
    with processes.TerminateJobOnSigterm() as guard:
        image_path = pull_image(
            runtime,
            uri,
            images_directory,
            uuid,
            guard,
            pull_timeout,
            pull_retries,
            environ=environ,
            retry_delay=retry_delay,
            kill_grace=kill_grace,
            poll_interval=poll_interval,
        )
        if image_path is not None and guard.received is None:
            argv = build_run_argv(runtime, image_path, command, binds, arguments)
            logger.info("job %s: running %s", uuid, show(argv))
            # The runtime binds the working directory into the container:
            # a fresh one of the job's own, never the worker's.
            oom_kills_before = processes.oom_kills()
            with processes.job_directory(temp_directory, uuid) as cwd:
                returncode = processes.run_logged(
                    argv,
                    build_runtime_environment(runtime, environment, environ),
                    stdout_path,
                    stderr_path,
                    guard,
                    kill_grace=kill_grace,
                    poll_interval=poll_interval,
                    what="Singularity command",
                    cwd=cwd,
                )
    if guard.received is not None:
        # Only reached if the previous handler let this process live on.
        raise JobTerminated("job terminated (the worker received SIGTERM)")
    if returncode != 0:
        raise JobError(processes.describe_exit(
            returncode, "container", out_of_memory=processes.oom_killed_since(oom_kills_before)))
    logger.info("job %s: container exited with code 0", uuid)
