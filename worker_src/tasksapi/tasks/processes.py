"""Child processes of jobs: start, wait (with a timeout), SIGTERM forwarding.

Shared by executable jobs, Singularity pulls and Singularity jobs.

- A child runs in its own process group, so that terminating it also
  terminates its children.
- While a :class:`TerminateJobOnSigterm` guard is active, SIGTERM to this
  process (Celery's revoke with terminate=True) terminates the attached
  child's group first; the child is killed if it outlives a grace period.
  When the guard ends, the previous handler is restored and the signal is
  sent again to this process, for the handler it was meant for.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import contextlib
import errno
import io
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time

from tasksapi.compat import ensure_directory, native_str, show, text
from tasksapi.tasks.errors import JobError

logger = logging.getLogger(__name__)

#: Seconds a terminated child gets between SIGTERM and SIGKILL.
KILL_GRACE = 5
#: Seconds between checks of a running child.
POLL_INTERVAL = 0.1

_START_FAILURES = {
    errno.ENOENT: "no such file or directory (is it installed and on the "
    "worker's PATH?)",
    errno.EACCES: "permission denied (is it executable?)",
    errno.ENOEXEC: "not an executable file",
}


#: A job's processes are the first the kernel's OOM killer picks in the
#: worker's cgroup (its memory limit): the job fails, the worker lives on.
JOB_OOM_SCORE_ADJ = 500


def _in_own_group():
    """Before the job's exec: its own process group, first in line for the OOM killer."""
    os.setpgrp()
    try:
        with open("/proc/self/oom_score_adj", "w") as adj:
            adj.write(str(JOB_OOM_SCORE_ADJ))
    except (IOError, OSError):
        pass  # no /proc, or not allowed: the job runs all the same


def start(argv, environment, stdout, stderr, what="executable", cwd=None):
    """Start ``argv`` in its own process group; explain failures to start.

    ``stdout`` and ``stderr`` are open files (or ``subprocess.STDOUT`` for
    stderr); stdin is /dev/null.
    """
    with io.open(os.devnull, "rb") as devnull:
        try:
            return subprocess.Popen(
                [native_str(part) for part in argv],
                env=environment,
                cwd=None if cwd is None else native_str(cwd),
                stdin=devnull,
                stdout=stdout,
                stderr=stderr,
                close_fds=True,
                # Own process group: a terminated job takes its children
                # along; and the OOM killer takes the job before the worker.
                preexec_fn=_in_own_group,  # noqa: PLW1509
            )
        except OSError as exc:
            raise JobError(
                "cannot run %s %s: %s"
                % (
                    what,
                    show(argv[0]),
                    _START_FAILURES.get(exc.errno, text(exc.strerror or exc)),
                )
            )


def signal_group(process, signum):
    """Send ``signum`` to the child's process group (or the child alone)."""
    if process.returncode is not None:
        return
    try:
        os.killpg(process.pid, signum)
    except OSError:
        try:
            process.send_signal(signum)
        except OSError:
            pass


class TerminateJobOnSigterm(object):
    """While active, SIGTERM to this process terminates the attached child.

    Without an attached child a SIGTERM is only recorded (``received``): the
    code that runs the job checks it (Docker jobs stop their container).
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
        """Set the child process (signalled at once if SIGTERM came first)."""
        self.process = process
        if self.received is not None:
            signal_group(process, signal.SIGTERM)

    def detach(self):
        """Forget the child (it has ended)."""
        self.process = None

    def _handle(self, signum, frame):
        self.received = signum
        if self.process is not None:
            signal_group(self.process, signal.SIGTERM)

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


def _group_left(pgid, proc="/proc"):
    """Whether a live process of the group ``pgid`` is left (zombies, dead
    and waiting for their parent to reap them, do not count)."""
    try:
        names = os.listdir(proc)
    except OSError:
        names = None
    if names is None:
        try:
            os.killpg(pgid, 0)
        except OSError as exc:
            return exc.errno == errno.EPERM
        return True
    for name in names:
        if not name.isdigit():
            continue
        try:
            with io.open(os.path.join(proc, name, "stat"), "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (IOError, OSError, IndexError):
            continue
        # After the command: state, parent, process group.
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def stop(process, kill_grace=KILL_GRACE, poll_interval=POLL_INTERVAL):
    """Stop the child now: SIGTERM to its group, SIGKILL to what is left of
    the group after ``kill_grace`` seconds; return once the child has ended
    and its group is gone (or was killed). A child of the job that ignores
    SIGTERM does not outlive the job."""
    signal_group(process, signal.SIGTERM)
    deadline = time.time() + kill_grace
    while process.poll() is None or _group_left(process.pid):
        if time.time() >= deadline:
            # The group keeps its id while a member lives: no other
            # process can have taken it.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:
                signal_group(process, signal.SIGKILL)  # no group: the child alone
            process.wait()
            # Killed: gone within moments (bounded, whatever happens).
            settled = time.time() + 2.0
            while _group_left(process.pid) and time.time() < settled:
                time.sleep(poll_interval)
            break
        time.sleep(poll_interval)


def wait(
    process,
    guard=None,
    kill_grace=KILL_GRACE,
    poll_interval=POLL_INTERVAL,
    timeout=None,
):
    """Wait for the child; return ``(returncode, timed_out)``.

    After a SIGTERM seen by ``guard`` (which already signalled the child), or
    once ``timeout`` seconds have passed (the child's group then gets
    SIGTERM), the child is killed if it outlives ``kill_grace`` seconds.
    Whatever else ends the wait (Celery's soft time limit raises in it) stops
    the child first: a job never runs on unwatched.
    """
    started = time.time()
    kill_at = None
    timed_out = False
    try:
        while True:
            returncode = process.poll()
            if returncode is not None:
                if kill_at is None and guard is not None and guard.received is not None:
                    kill_at = time.time() + kill_grace
                if kill_at is not None:
                    # Stopping (revoke, timeout): what is left of the job's
                    # group goes too, within what is left of the grace.
                    stop(process, max(0.0, kill_at - time.time()), poll_interval)
                return returncode, timed_out
            now = time.time()
            if kill_at is None:
                if guard is not None and guard.received is not None:
                    kill_at = now + kill_grace
                elif timeout is not None and now - started >= timeout:
                    timed_out = True
                    signal_group(process, signal.SIGTERM)
                    kill_at = now + kill_grace
            elif now >= kill_at:
                signal_group(process, signal.SIGKILL)
            time.sleep(poll_interval)
    except BaseException:
        stop(process, kill_grace, poll_interval)
        raise


@contextlib.contextmanager
def job_directory(temp_directory, uuid):
    """A fresh directory, readable by the worker user only, for one job to
    start in (removed afterwards): jobs never start in the worker's own
    directory, which holds its code and its .env, and Singularity binds a
    job's working directory into its container."""
    if not temp_directory:
        temp_directory = tempfile.gettempdir()
    ensure_directory(temp_directory)
    path = tempfile.mkdtemp(prefix="%s-" % (uuid,), suffix="-work", dir=temp_directory)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_logged(
    argv,
    environment,
    stdout_path,
    stderr_path,
    guard,
    kill_grace=KILL_GRACE,
    poll_interval=POLL_INTERVAL,
    what="executable",
    cwd=None,
):
    """Run ``argv`` with its output appended to the log files; return its code.

    ``guard`` is an active :class:`TerminateJobOnSigterm`.
    """
    with io.open(stdout_path, "ab") as stdout, io.open(stderr_path, "ab") as stderr:
        process = start(argv, environment, stdout, stderr, what=what, cwd=cwd)
        guard.attach(process)
        try:
            returncode, _ = wait(process, guard, kill_grace, poll_interval)
        finally:
            guard.detach()
    return returncode


def describe_exit(returncode, what="command", out_of_memory=False):
    """Return why a non-zero ``returncode`` fails the job."""
    if out_of_memory and returncode in (-signal.SIGKILL, 128 + signal.SIGKILL):
        return "%s killed: out of memory (the kernel's OOM killer, past the instance's memory_max)" % (what,)
    if returncode < 0:
        return "%s killed by signal %d" % (what, -returncode)
    return "%s exited with code %d" % (what, returncode)


def oom_killed_since(before):
    """Whether the OOM killer ended a process of this cgroup since ``before``
    (a count from :func:`oom_kills`), as far as the kernel says."""
    after = oom_kills() if before is not None else None
    return after is not None and after > before


def oom_kills(proc="/proc", cgroup_root="/sys/fs/cgroup"):
    """How many processes the OOM killer has ended in this process's memory
    cgroup (the worker's unit), or None where the kernel does not say."""
    try:
        with io.open(os.path.join(proc, "self", "cgroup"), encoding="utf-8") as lines:
            entries = [line.rstrip("\n").split(":", 2) for line in lines]
    except (IOError, OSError):
        return None
    places = []
    for entry in entries:
        if len(entry) != 3:
            continue
        _number, controllers, path = entry
        if "memory" in controllers.split(","):  # cgroup v1
            places.append(os.path.join(cgroup_root, "memory", path.lstrip("/"), "memory.oom_control"))
        elif controllers == "":  # cgroup v2
            places.append(os.path.join(cgroup_root, path.lstrip("/"), "memory.events"))
    for place in places:
        try:
            with io.open(place, encoding="utf-8") as counters:
                for line in counters:
                    name, _, value = line.partition(" ")
                    if name == "oom_kill" and value.strip().isdigit():
                        return int(value)
        except (IOError, OSError):
            continue
    return None
