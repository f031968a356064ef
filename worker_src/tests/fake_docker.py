"""A small stand-in for the Docker SDK: records calls, no engine needed.

Only what ``tasksapi.tasks.docker_jobs`` uses: ``from_env()``, the
``errors`` classes, ``images.pull/get``, ``containers.get/create`` and a
container's ``start/reload/status/wait/logs/stop/remove``.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import time


class DockerException(Exception):
    pass


class APIError(DockerException):
    pass


class NotFound(APIError):
    pass


class ImageNotFound(NotFound):
    pass


class Errors(object):
    DockerException = DockerException
    APIError = APIError
    NotFound = NotFound
    ImageNotFound = ImageNotFound


class FakeContainer(object):
    """A container that runs for ``runs_for`` reloads, then exits."""

    def __init__(self, sdk, kwargs):
        self.sdk = sdk
        self.kwargs = kwargs
        self.name = kwargs.get("name")
        self.status = "created"
        self.reloads = 0

    def _event(self, *event):
        self.sdk.events.append(event)

    def start(self):
        self._event("start", self.name)
        if self.sdk.start_error:
            raise APIError(self.sdk.start_error)
        self.status = "running"

    def reload(self):
        self.reloads += 1
        self._event("reload", self.name)
        if self.sdk.on_reload is not None:
            self.sdk.on_reload(self)
        if self.sdk.removed_externally:
            raise NotFound("No such container: %s" % (self.name,))
        if self.status == "running" and self.reloads >= self.sdk.runs_for:
            self.status = "exited"

    def wait(self, **kwargs):
        self._event("wait", self.name)
        return {"StatusCode": self.sdk.exit_code, "Error": None}

    def logs(self, stdout=True, stderr=True, stream=False, follow=None, timestamps=False, **kwargs):
        self._event(
            "logs", "stdout" if stdout and not stderr else "stderr", stream, follow
        )
        if self.sdk.logs_error:
            raise APIError(self.sdk.logs_error)
        chunks = self.sdk.stdout if stdout else self.sdk.stderr
        if timestamps:
            # As the engine writes them: nanoseconds, trailing zeros dropped.
            chunks = [
                ("2026-12-01T05:00:%02d.%sZ " % (n // 10, ("%09d" % (n % 10 * 10,)).rstrip("0") or "0")).encode("ascii")
                + chunk
                for n, chunk in enumerate(chunks)
            ]
        if stream and follow:
            return self._follow(chunks, self.sdk.late_output if stdout else [])
        return iter(chunks) if stream else b"".join(chunks)

    def _follow(self, chunks, late):
        """As the engine does: the output so far, then more until the container ends."""
        for chunk in chunks:
            yield chunk
            if self.sdk.cut_follow:
                return  # the engine restarted: the stream ends, the container runs on
        # Following across a log rotation, the engine sends messages again.
        for chunk in chunks[: self.sdk.repeated_on_rotation]:
            yield chunk
        while self.status not in ("exited", "dead") and self.name not in self.sdk.removed:
            time.sleep(0.005)
        for chunk in late:
            yield chunk

    def stop(self, timeout=None):
        self._event("stop", self.name, timeout)
        self.status = "exited"

    def remove(self, force=False, **kwargs):
        self._event("remove", self.name, force)
        self.sdk.removed.append(self.name)


class FakeImages(object):
    def __init__(self, sdk):
        self.sdk = sdk

    def pull(self, repository, tag=None, **kwargs):
        self.sdk.events.append(("pull", repository, tag))
        if self.sdk.pull_error:
            raise APIError(self.sdk.pull_error)
        return object()

    def get(self, reference):
        self.sdk.events.append(("get image", reference))
        if reference not in self.sdk.local_images:
            raise ImageNotFound("No such image: %s" % (reference,))
        return object()


class FakeContainers(object):
    def __init__(self, sdk):
        self.sdk = sdk

    def get(self, name):
        self.sdk.events.append(("get container", name))
        if name in self.sdk.leftovers:
            self.sdk.leftovers.remove(name)
            return FakeContainer(self.sdk, {"name": name})
        raise NotFound("No such container: %s" % (name,))

    def create(self, **kwargs):
        self.sdk.events.append(("create", kwargs))
        if self.sdk.create_error:
            raise APIError(self.sdk.create_error)
        self.sdk.container = FakeContainer(self.sdk, kwargs)
        return self.sdk.container


class FakeClient(object):
    def __init__(self, sdk):
        self.sdk = sdk
        self.images = FakeImages(sdk)
        self.containers = FakeContainers(sdk)

    def close(self):
        self.sdk.events.append(("close",))


class FakeDockerSDK(object):
    """Stands in for the ``docker`` module; attributes set the behaviour."""

    errors = Errors

    def __init__(self):
        self.events = []
        self.removed = []
        self.leftovers = []
        self.local_images = []
        self.container = None
        self.runs_for = 2
        self.exit_code = 0
        self.stdout = [b"out 1\n", b"out 2\n"]
        self.stderr = [b"err\n"]
        # Written to stdout after the first reload (a follower gets it, a copy
        # taken at start would not).
        self.late_output = []
        self.cut_follow = False
        self.repeated_on_rotation = 0
        self.pull_error = None
        self.create_error = None
        self.start_error = None
        self.logs_error = None
        self.removed_externally = False
        self.on_reload = None
        self.connect_error = None

    def from_env(self):
        self.events.append(("from_env",))
        if self.connect_error:
            raise DockerException(self.connect_error)
        return FakeClient(self)

    def names(self):
        """The event names, in order."""
        return [event[0] for event in self.events]
