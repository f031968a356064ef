"""Celery's soft time limit, as its prefork pool delivers it (an exception
raised in the task's main thread, from a signal handler): the job's whole
process group is stopped, and the job fails saying why."""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import os
import signal
import time

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from support import is_running, job_log

from saltant import app, settings
from tasksapi.tasks import base_task, executable

UUID = "7a6b5c4d-1111-4222-8333-444455556666"


@pytest.fixture
def soft_limit_in():
    """Raise SoftTimeLimitExceeded in this thread after SECONDS, like the pool."""

    def raise_soft_limit(signum, frame):
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, raise_soft_limit)

    def arm(seconds):
        signal.setitimer(signal.ITIMER_REAL, seconds)

    yield arm
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def pids_of(path):
    deadline = time.time() + 10
    while time.time() < deadline:
        if os.path.exists(path):
            with io.open(path, encoding="utf-8") as handle:
                pids = handle.read().split()
            if len(pids) == 2:
                return [int(pid) for pid in pids]
        time.sleep(0.05)
    raise AssertionError("the job never wrote its pids")


@pytest.mark.parametrize(
    ("child", "within"),
    [
        # A child that ends on SIGTERM: stopped at once, no grace period.
        ("sleep 60", 5.5),
        # One that ignores SIGTERM: killed with the group after the 5 s grace.
        ("(trap \"\" TERM; exec sleep 60)", 10),
    ],
)
def test_the_soft_limit_stops_the_jobs_process_group(tmpdir, soft_limit_in, child, within):
    pid_file = os.path.join(str(tmpdir), "pids")
    # The job and a child of its own: both must end.
    command = "sh -c '%s & echo $$ $! > %s; wait'" % (child, pid_file)
    soft_limit_in(1.0)
    started = time.time()
    with pytest.raises(SoftTimeLimitExceeded):
        executable.run_executable_job(
            UUID, command, [], {}, None,
            logs_directory=os.path.join(str(tmpdir), "logs"),
            temp_directory=os.path.join(str(tmpdir), "temp"),
            environ=dict(os.environ),
        )
    assert time.time() - started < within
    assert not any(is_running(pid) for pid in pids_of(pid_file))


def test_a_job_past_the_soft_limit_fails_saying_so(status_server, worker_dirs, soft_limit_in, monkeypatch):
    monkeypatch.setattr(settings, "DJANGO_BASE_URL", status_server.url)
    monkeypatch.setenv(base_task.SOFT_TIME_LIMIT_VARIABLE, "1")
    soft_limit_in(1.0)
    task = app.tasks[base_task.TASK_NAME]
    result = task.apply(kwargs={"uuid": UUID, "task_class": "executable", "command_to_run": "sleep 60",
                                "env_vars_list": [], "args_dict": {}}, task_id=UUID)
    assert isinstance(result.result, SoftTimeLimitExceeded)
    assert status_server.states() == ["running", "failed"]
    assert job_log(worker_dirs["logs"], UUID, "stderr").endswith(
        "saltant worker: job failed: it ran longer than this worker's soft time limit of 1 seconds"
        " and was stopped\n")


def test_the_message_without_a_known_limit():
    assert base_task.failure_message(SoftTimeLimitExceeded(), environ={}) == (
        "saltant worker: job failed: it ran longer than this worker's soft time limit and was stopped")
