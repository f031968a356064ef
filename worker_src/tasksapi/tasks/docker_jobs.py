"""Docker jobs: pull the image, run the command in a container, clean up.

- The Docker SDK (``docker``: 7.x on Python 3, 4.4.4 on Python 2.7) is
  imported when a Docker job runs, so a worker without it imports fine;
  its Docker jobs fail with a clear message.
- ``image[:tag]`` and ``image@digest`` references are pulled (default tag
  ``latest``; registry hosts with ports such as ``registry:5000/ns/img:1``
  work). If the pull fails but the image is present on the host (e.g. one
  loaded with ``docker load``), that image is used and a note is written to
  the job's stderr log.
- The container ``saltant-job-{uuid}`` is created and started detached with
  the command (plus the JSON arguments as one argument), the job's
  environment (see ``container_common``) and the binds, as
  ``{"host": {"bind": path, "mode": "rw"}}`` volumes. No ``user`` is set:
  the container runs as its image's user (often root), as upstream's worker
  does, so files it writes into the bound directories may belong to root.
- This process polls the container until it ends, then appends its stdout
  and stderr to the job's log files. A non-zero exit fails the job.
- The container is always removed afterwards: also when the job fails, and
  when this process gets SIGTERM (Celery's revoke with terminate=True), in
  which case the container is first stopped (SIGTERM, then SIGKILL after the
  grace period) and the signal is then passed on to the previous handler.
  A leftover container of the same name (a worker killed with SIGKILL) is
  removed before the job's container is created. Anything else that ends
  the wait (Celery's soft time limit) stops the container the same way.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import logging
import os
import re
import threading
import time

from tasksapi.compat import show, text
from tasksapi.tasks import joblogs, processes
from tasksapi.tasks.container_common import (
    check_args_dict,
    check_image,
    container_command,
    container_environment,
    create_bind_directories,
    job_binds,
)
from tasksapi.tasks.errors import JobError, JobTerminated

logger = logging.getLogger(__name__)

CONTAINER_NAME_PREFIX = "saltant-job-"
NO_SDK_MESSAGE = (
    "this worker has no Docker SDK installed: the host does not offer docker jobs"
)
#: Seconds between checks of a running container (each is an API call).
POLL_INTERVAL = 0.5
#: Seconds a stopped container gets between SIGTERM and SIGKILL.
KILL_GRACE = processes.KILL_GRACE
#: Container states after which it will not run again.
ENDED_STATES = ("exited", "dead")
#: Seconds to finish copying a container's output once it ended.
FOLLOW_TIMEOUT = 60
#: A log stream that ended more than this many seconds before its container
#: was cut short (the engine restarted): its file is copied again.
FOLLOW_SLACK = 2.0


def container_name(uuid):
    """Return the name of job ``uuid``'s container."""
    return "%s%s" % (CONTAINER_NAME_PREFIX, joblogs.check_uuid(uuid))


def remove_job_container(uuid, sdk=None):
    """Remove job ``uuid``'s container if there is one (a job its worker
    lost); never raises."""
    try:
        sdk = load_docker_sdk() if sdk is None else sdk
    except JobError:
        return
    errors, not_found = _api_errors(sdk), sdk.errors.NotFound
    try:
        client = sdk.from_env()
    except errors as exc:
        logger.warning("job %s: cannot reach the Docker engine to remove its container: %s", uuid, exc)
        return
    try:
        _remove_leftover(client, container_name(uuid), errors, not_found)
    except JobError as exc:
        logger.warning("job %s: %s", uuid, exc)
    finally:
        try:
            client.close()
        except Exception:  # noqa: BLE001, S110 - closing must not hide the result
            pass


def _split_tag(name):
    """Split ``name`` into (repository, tag or None); ports are not tags."""
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        return name[:colon], name[colon + 1 :]
    return name, None


def parse_image_reference(container_image):
    """Return ``(repository, tag, reference)`` for an image reference.

    ``tag`` is the tag (``latest`` by default) or, for ``name@digest``, the
    digest, which is how the Docker SDK's ``images.pull`` takes it;
    ``reference`` is what the container is created from.
    """
    image = check_image(container_image)
    if "@" in image:
        name, digest = image.split("@", 1)
        repository = _split_tag(name)[0]
        if not repository or not digest or "@" in digest:
            raise JobError("invalid image reference %s" % (show(image),))
        return repository, digest, "%s@%s" % (repository, digest)
    repository, tag = _split_tag(image)
    if not repository or tag == "":
        raise JobError("invalid image reference %s" % (show(image),))
    tag = tag or "latest"
    return repository, tag, "%s:%s" % (repository, tag)


#: Bytes of memory a job may use (the role sets it from the instance's
#: memory_max): a Docker job runs outside the worker's cgroup, so the
#: container gets the same bound. Empty or 0: none.
MEMORY_LIMIT_VARIABLE = "SALTANT_WORKER_JOB_MEMORY_LIMIT"


def job_memory_limit(environ=None):
    """The bytes a job's container may use, from the worker's environment (0: no limit)."""
    environ = os.environ if environ is None else environ
    value = text(environ.get(MEMORY_LIMIT_VARIABLE, "") or "").strip()
    if not value:
        return 0
    if not value.isdigit():
        raise JobError("%s is %s, not a number of bytes" % (MEMORY_LIMIT_VARIABLE, show(value)))
    return int(value)


def build_create_kwargs(uuid, reference, command, environment, binds, memory_limit=0):
    """Return the keyword arguments of ``client.containers.create``/``run``."""
    kwargs = {
        "image": reference,
        "command": list(command) if command else None,
        "name": container_name(uuid),
        "environment": dict(environment),
        "volumes": {
            host: {"bind": container_path, "mode": "rw"}
            for host, container_path in binds
        },
        "detach": True,
        # What the host's disk hygiene timer prunes once exited and old.
        "labels": {"saltant.job": uuid},
    }
    if memory_limit:
        # The same bound with swap as without: a job cannot swap its way past it.
        kwargs["mem_limit"] = memory_limit
        kwargs["memswap_limit"] = memory_limit
    return kwargs


def load_docker_sdk():
    """Import and return the ``docker`` module, or raise JobError."""
    try:
        import docker
    except ImportError as exc:
        raise JobError("%s (%s)" % (NO_SDK_MESSAGE, text(exc)))
    return docker


def _api_errors(sdk):
    """Return the exception classes that mean "the Docker engine said no"."""
    errors = [sdk.errors.DockerException]
    try:
        import requests
    except ImportError:  # pragma: no cover - the SDK depends on requests
        pass
    else:
        errors.append(requests.exceptions.RequestException)
    return tuple(errors)


def exit_status(result):
    """Return the exit code from ``container.wait()``'s result.

    The SDK returns ``{"StatusCode": n, "Error": ...}`` (4.x and 7.x); very old
    releases returned the number itself.
    """
    code = result.get("StatusCode") if isinstance(result, dict) else result
    try:
        return int(code)
    except (TypeError, ValueError):
        raise JobError("the Docker engine reported no exit code (%s)" % (show(result),))


def _note(stderr_path, message):
    """Append a worker's note to the job's stderr log."""
    with io.open(stderr_path, "a", encoding="utf-8") as log:
        log.write("saltant worker: %s\n" % (text(message).rstrip("\n"),))


def _pull(client, repository, tag, reference, stderr_path, errors):
    logger.info("pulling docker image %s", reference)
    try:
        client.images.pull(repository, tag=tag)
        return
    except errors as exc:
        pull_error = text(exc)
    try:
        client.images.get(reference)
    except errors:
        raise JobError("cannot pull image %s: %s" % (show(reference), pull_error))
    logger.warning("cannot pull %s (%s): using the local image", reference, pull_error)
    _note(
        stderr_path,
        "cannot pull image %s (%s); using the image present on this host"
        % (show(reference), pull_error),
    )


def _remove(container, errors, not_found):
    """Remove ``container`` (force: also when running); log failures."""
    try:
        container.remove(force=True)
    except not_found:
        pass
    except errors as exc:
        logger.error("could not remove container %s: %s", container.name, exc)


def _remove_leftover(client, name, errors, not_found):
    try:
        leftover = client.containers.get(name)
    except not_found:
        return
    except errors as exc:
        raise JobError("cannot look for a container named %s: %s" % (show(name), exc))
    logger.warning("removing leftover container %s", name)
    _remove(leftover, errors, not_found)


def _stop(container, kill_grace, errors):
    try:
        container.stop(timeout=kill_grace)
    except errors as exc:
        logger.warning("could not stop container %s: %s", container.name, exc)


def _wait(container, guard, kill_grace, poll_interval, errors, not_found):
    """Wait for the container to end; return its exit code (None: terminated)."""
    while True:
        if guard.received is not None:
            _stop(container, kill_grace, errors)
            return None
        try:
            container.reload()
        except not_found:
            raise JobError("the container was removed while it ran")
        except errors as exc:
            if guard.received is not None:
                continue  # The signal interrupted the call (Python 2).
            raise JobError("cannot check the container: %s" % (text(exc),))
        if container.status in ENDED_STATES:
            break
        time.sleep(poll_interval)
    try:
        return exit_status(container.wait())
    except errors as exc:
        raise JobError("cannot read the container's exit code: %s" % (text(exc),))


# Docker's timestamp of a log message (RFC 3339, nanoseconds, trailing
# zeros of the fraction dropped), then a space.
_TIMESTAMP = re.compile(br"^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,9}))?Z ")


class OnceEach(object):
    """Each log message of a followed stream once, without its timestamp.

    Following a json-file log across its rotation (max-size), the engine
    sends some messages again (seen: 160 lines of 4000 with 1 MiB files). Each
    message carries the time the engine read it: one older than the last
    written, or as old and already written, is a repeat."""

    def __init__(self):
        self.last = None
        self.at_last = set()

    def new_part(self, message):
        match = _TIMESTAMP.match(message)
        if match is None:
            return message
        key = match.group(1) + b"." + (match.group(2) or b"").ljust(9, b"0")
        data = message[match.end():]
        if self.last is not None and key < self.last:
            return b""
        if key == self.last:
            if data in self.at_last:
                return b""
        else:
            self.last, self.at_last = key, set()
        self.at_last.add(data)
        return data


class LogFollower(object):
    """Copy one stream of a running container into the job's log file as it
    comes (a thread): the log grows while the job runs, for the log shipper,
    and Docker's own copy may be bounded (log-opts max-size) without cutting
    the job's log short.

    A stream that ends before the container did was cut (the engine
    restarted, live-restore keeping the container): the file is then
    rewritten from Docker's whole log once the container ended, as before
    streaming."""

    def __init__(self, container, stream, path, errors):
        self.container = container
        self.stream = stream
        self.path = path
        self.errors = errors
        self.error = None
        self.ended_at = None
        try:
            self.offset = os.path.getsize(path)
        except OSError:
            self.offset = 0
        self.thread = threading.Thread(target=self._copy, name="logs-%s" % (stream,))
        self.thread.daemon = True

    def start(self):
        self.thread.start()
        return self

    def _copy(self):
        try:
            chunks = self.container.logs(
                stdout=self.stream == "stdout",
                stderr=self.stream == "stderr",
                stream=True,
                follow=True,
                timestamps=True,
            )
            once = OnceEach()
            with io.open(self.path, "ab") as log:
                for chunk in chunks:
                    data = once.new_part(_bytes(chunk))
                    if data:
                        log.write(data)
                        log.flush()
        except Exception as exc:  # noqa: BLE001 - handled by finish()
            self.error = exc
        finally:
            self.ended_at = time.time()

    def finish(self, timeout, container_ended_at, stderr_path):
        """Once the container ended: wait for the stream's end; rewrite the
        file from Docker's log if the stream failed or was cut."""
        self.thread.join(timeout)
        if self.thread.is_alive():
            problem = "it was still streaming %s s after the container ended" % (timeout,)
            logger.warning("could not read the %s of %s: %s", self.stream, self.container.name, problem)
            _note(stderr_path, "could not read the container's %s: %s" % (self.stream, problem))
            return
        if self.error is None and self.ended_at >= container_ended_at - FOLLOW_SLACK:
            return
        logger.warning(
            "the %s stream of %s ended early (%s): copying its whole log again",
            self.stream, self.container.name, self.error or "cut",
        )
        with io.open(self.path, "ab") as log:
            log.truncate(self.offset)
        _save_stream(self.container, self.stream, self.path, self.errors, stderr_path)


def _bytes(chunk):
    return chunk if isinstance(chunk, bytes) else text(chunk).encode("utf-8")


def follow_logs(container, stdout_path, stderr_path, errors):
    """Start copying the container's stdout and stderr into the job's logs.

    stderr's comes first: finishing it may rewrite the stderr file, where
    finishing stdout's may then add a note."""
    return [
        LogFollower(container, "stderr", stderr_path, errors).start(),
        LogFollower(container, "stdout", stdout_path, errors).start(),
    ]


def _save_stream(container, stream, path, errors, stderr_path):
    """Append the container's whole ``stream`` to ``path``; note a failure."""
    try:
        chunks = container.logs(
            stdout=stream == "stdout",
            stderr=stream == "stderr",
            stream=True,
            follow=False,
        )
        with io.open(path, "ab") as log:
            for chunk in chunks:
                log.write(_bytes(chunk))
    except errors as exc:
        logger.warning("could not read the %s of %s: %s", stream, container.name, exc)
        _note(stderr_path, "could not read the container's %s: %s" % (stream, exc))


def save_logs(container, stdout_path, stderr_path, errors):
    """Append the container's stdout and stderr to the job's log files."""
    for path, stream in ((stdout_path, "stdout"), (stderr_path, "stderr")):
        _save_stream(container, stream, path, errors, stderr_path)


def _oom_killed(container, errors):
    """Whether the engine says the kernel's OOM killer ended the container."""
    try:
        container.reload()
        return bool(container.attrs.get("State", {}).get("OOMKilled"))
    except errors + (AttributeError, KeyError, TypeError):
        return False


def _run_container(
    client,
    create_kwargs,
    stdout_path,
    stderr_path,
    errors,
    not_found,
    kill_grace,
    poll_interval,
):
    """Create, start and wait for the container; always remove it."""
    with processes.TerminateJobOnSigterm() as guard:
        _remove_leftover(client, create_kwargs["name"], errors, not_found)
        container = None
        followers = []
        try:
            try:
                container = client.containers.create(**create_kwargs)
            except errors as exc:
                raise JobError(
                    "cannot create a container from %s: %s"
                    % (show(create_kwargs["image"]), text(exc))
                )
            if guard.received is None:
                try:
                    container.start()
                except errors as exc:
                    raise JobError("cannot start the container: %s" % (text(exc),))
                followers = follow_logs(container, stdout_path, stderr_path, errors)
            try:
                returncode = _wait(
                    container, guard, kill_grace, poll_interval, errors, not_found
                )
            except BaseException:
                # Whatever ends the wait (Celery's soft time limit raises in
                # it) stops the container, with the grace period, before it
                # is removed.
                _stop(container, kill_grace, errors)
                raise
            if returncode != 0 and _oom_killed(container, errors):
                raise JobError(
                    "container killed: out of memory (its limit is %s bytes, the "
                    "instance's memory_max)" % (create_kwargs.get("mem_limit") or "the host's",)
                )
        finally:
            if container is not None:
                try:
                    if followers:
                        # Stopped or ended: each stream ends with it.
                        ended_at = time.time()
                        for follower in followers:
                            follower.finish(FOLLOW_TIMEOUT, ended_at, stderr_path)
                    else:
                        save_logs(container, stdout_path, stderr_path, errors)
                finally:
                    _remove(container, errors, not_found)
    if guard.received is not None:
        # Only reached if the previous handler let this process live on.
        raise JobTerminated("job terminated (the worker received SIGTERM)")
    return returncode


def run_docker_job(
    uuid,
    command_to_run,
    env_vars_list,
    args_dict,
    logs_path,
    results_path,
    container_image,
    logs_directory,
    results_directory,
    environ=None,
    sdk=None,
    kill_grace=KILL_GRACE,
    poll_interval=POLL_INTERVAL,
):
    """Run a Docker job to completion; raise JobError when it fails.

    ``sdk`` replaces the ``docker`` module (tests pass a fake).
    """
    uuid = joblogs.check_uuid(uuid)
    check_args_dict(args_dict)
    repository, tag, reference = parse_image_reference(container_image)
    environment = container_environment(uuid, env_vars_list, environ)
    command = container_command(command_to_run, args_dict)
    binds = job_binds(uuid, logs_directory, results_directory, logs_path, results_path)
    memory_limit = job_memory_limit(environ)
    sdk = load_docker_sdk() if sdk is None else sdk
    errors = _api_errors(sdk)
    not_found = sdk.errors.NotFound

    stdout_path = joblogs.stdout_path(logs_directory, uuid)
    stderr_path = joblogs.stderr_path(logs_directory, uuid)
    create_bind_directories(binds)
    try:
        client = sdk.from_env()
    except errors as exc:
        raise JobError("cannot connect to the Docker engine: %s" % (text(exc),))
    try:
        _pull(client, repository, tag, reference, stderr_path, errors)
        create_kwargs = build_create_kwargs(
            uuid, reference, command, environment, binds,
            memory_limit=memory_limit,
        )
        logger.info(
            "job %s: running container %s from %s: %s",
            uuid,
            create_kwargs["name"],
            reference,
            show(command),
        )
        returncode = _run_container(
            client,
            create_kwargs,
            stdout_path,
            stderr_path,
            errors,
            not_found,
            kill_grace,
            poll_interval,
        )
    finally:
        try:
            client.close()
        except Exception as exc:  # noqa: BLE001 - closing must not hide the result
            logger.debug("closing the Docker client: %s", exc)
    if returncode != 0:
        raise JobError(processes.describe_exit(returncode, "container"))
    logger.info("job %s: container exited with code 0", uuid)
