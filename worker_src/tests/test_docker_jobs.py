"""Docker jobs: image references, create arguments, and the job's flow.

No Docker engine is used: the flow runs against ``fake_docker``.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import json
import os
import signal
import sys
import time

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from fake_docker import FakeDockerSDK
from support import job_log

from tasksapi.tasks import docker_jobs
from tasksapi.tasks.errors import JobError, JobTerminated

UUID = "5e6f7a8b-2222-4333-8444-555566667777"
NAME = "saltant-job-%s" % (UUID,)


@pytest.mark.parametrize(
    "image, expected",
    [
        ("alpine", ("alpine", "latest", "alpine:latest")),
        ("alpine:3.19", ("alpine", "3.19", "alpine:3.19")),
        ("mwiens91/hello-world", ("mwiens91/hello-world", "latest", None)),
        (
            "registry:5000/ns/img:1",
            ("registry:5000/ns/img", "1", "registry:5000/ns/img:1"),
        ),
        (
            "registry:5000/ns/img",
            ("registry:5000/ns/img", "latest", "registry:5000/ns/img:latest"),
        ),
        (
            "localhost:5000/img@sha256:abc123",
            ("localhost:5000/img", "sha256:abc123", "localhost:5000/img@sha256:abc123"),
        ),
        (
            "docker.io/library/img:1.0@sha256:abc123",
            ("docker.io/library/img", "sha256:abc123", None),
        ),
    ],
)
def test_image_references(image, expected):
    repository, tag, reference = docker_jobs.parse_image_reference(image)
    assert (repository, tag) == expected[:2]
    if expected[2] is not None:
        assert reference == expected[2]
    separator = "@" if tag.startswith("sha256:") else ":"
    assert reference == repository + separator + tag


@pytest.mark.parametrize(
    "image", ["", "img:", "@sha256:abc", "img@", "a b", None, "img@x@y"]
)
def test_invalid_image_references_fail(image):
    with pytest.raises(JobError):
        docker_jobs.parse_image_reference(image)


def test_create_kwargs():
    kwargs = docker_jobs.build_create_kwargs(
        UUID,
        "alpine:latest",
        ["echo", '{"a": 1}'],
        {"JOB_UUID": UUID, "X": "1"},
        [("/srv/logs/%s" % UUID, "/logs"), ("/srv/results/%s" % UUID, "/results")],
    )
    assert kwargs == {
        "image": "alpine:latest",
        "command": ["echo", '{"a": 1}'],
        "name": NAME,
        "environment": {"JOB_UUID": UUID, "X": "1"},
        "volumes": {
            "/srv/logs/%s" % UUID: {"bind": "/logs", "mode": "rw"},
            "/srv/results/%s" % UUID: {"bind": "/results", "mode": "rw"},
        },
        "detach": True,
        "labels": {"saltant.job": UUID},
    }
    assert "user" not in kwargs


def test_the_instances_memory_limit_bounds_the_container_swap_included():
    limit = docker_jobs.job_memory_limit({"SALTANT_WORKER_JOB_MEMORY_LIMIT": "268435456"})
    kwargs = docker_jobs.build_create_kwargs(UUID, "alpine:latest", [], {}, [], memory_limit=limit)
    assert kwargs["mem_limit"] == kwargs["memswap_limit"] == 268435456
    for unset in ({}, {"SALTANT_WORKER_JOB_MEMORY_LIMIT": ""}, {"SALTANT_WORKER_JOB_MEMORY_LIMIT": "0"}):
        limit = docker_jobs.job_memory_limit(unset)
        assert "mem_limit" not in docker_jobs.build_create_kwargs(UUID, "alpine:latest", [], {}, [], memory_limit=limit)
    with pytest.raises(JobError) as raised:
        docker_jobs.job_memory_limit({"SALTANT_WORKER_JOB_MEMORY_LIMIT": "2G"})
    assert "SALTANT_WORKER_JOB_MEMORY_LIMIT is '2G', not a number of bytes" in str(raised.value)


def test_empty_command_uses_the_images_default():
    kwargs = docker_jobs.build_create_kwargs(UUID, "alpine:latest", [], {}, [])
    assert kwargs["command"] is None
    assert kwargs["volumes"] == {}


@pytest.mark.parametrize(
    "result, code",
    [({"StatusCode": 0, "Error": None}, 0), ({"StatusCode": 3}, 3), (137, 137)],
)
def test_exit_status(result, code):
    assert docker_jobs.exit_status(result) == code


def test_exit_status_without_a_code_fails():
    with pytest.raises(JobError):
        docker_jobs.exit_status({"Error": {"Message": "boom"}})


@pytest.fixture
def dirs(tmpdir):
    return {
        "logs": os.path.join(str(tmpdir), "logs"),
        "results": os.path.join(str(tmpdir), "results"),
    }


@pytest.fixture
def sdk():
    return FakeDockerSDK()


def run(
    dirs,
    sdk,
    command="python /app/job.py",
    args_dict=None,
    env_vars_list=None,
    environ=None,
    image="registry:5000/team/job:2",
    logs_path="/logs",
    results_path="/results",
):
    environ = {"PATH": "/usr/bin", "TOKEN": "t0k"} if environ is None else environ
    docker_jobs.run_docker_job(
        UUID,
        command,
        env_vars_list or [],
        args_dict,
        logs_path,
        results_path,
        image,
        logs_directory=dirs["logs"],
        results_directory=dirs["results"],
        environ=environ,
        sdk=sdk,
        kill_grace=3,
        poll_interval=0.01,
    )


def test_successful_job_flow(dirs, sdk):
    sdk.late_output = [b"out 3, written while it ran\n"]
    run(dirs, sdk, args_dict={"n": 1}, env_vars_list=["TOKEN"])
    # The logs are followed from the start, in threads of their own.
    assert [name for name in sdk.names() if name != "logs"] == [
        "from_env",
        "pull",
        "get container",
        "create",
        "start",
        "reload",
        "reload",
        "wait",
        "remove",
        "close",
    ]
    names = sdk.names()
    assert names.index("start") < names.index("logs") and names.count("logs") == 2
    assert sdk.events[1] == ("pull", "registry:5000/team/job", "2")
    assert sdk.events[2] == ("get container", NAME)
    kwargs = sdk.events[3][1]
    assert kwargs["image"] == "registry:5000/team/job:2"
    assert kwargs["name"] == NAME
    assert kwargs["detach"] is True
    assert kwargs["command"][:2] == ["python", "/app/job.py"]
    assert json.loads(kwargs["command"][2]) == {"n": 1}
    assert kwargs["environment"] == {"TOKEN": "t0k", "JOB_UUID": UUID}
    logs_host = os.path.join(dirs["logs"], UUID)
    results_host = os.path.join(dirs["results"], UUID)
    assert kwargs["volumes"] == {
        logs_host: {"bind": "/logs", "mode": "rw"},
        results_host: {"bind": "/results", "mode": "rw"},
    }
    assert os.path.isdir(logs_host) and os.path.isdir(results_host)
    assert ("logs", "stdout", True, True) in sdk.events
    assert ("logs", "stderr", True, True) in sdk.events
    assert sdk.events[-2] == ("remove", NAME, True)
    assert job_log(dirs["logs"], UUID, "stdout") == "out 1\nout 2\nout 3, written while it ran\n"
    assert job_log(dirs["logs"], UUID, "stderr") == "err\n"


def test_the_logs_grow_while_the_container_runs(dirs, sdk):
    """Its output reaches the job's log files as it comes (for the log
    shipper, and so that Docker's own copy may be bounded), not at the end."""
    seen = []

    def look(container):
        if container.reloads == 3:
            deadline = time.time() + 5
            while job_log(dirs["logs"], UUID, "stdout") != "out 1\nout 2\n" and time.time() < deadline:
                time.sleep(0.01)
            seen.append(job_log(dirs["logs"], UUID, "stdout"))

    sdk.runs_for = 5
    sdk.on_reload = look
    run(dirs, sdk)
    assert seen == ["out 1\nout 2\n"]


def test_a_log_stream_cut_while_the_container_runs_is_copied_again_whole(dirs, sdk, monkeypatch):
    """An engine restart (live-restore keeps the container) ends the
    followed streams early: once the container ended, each file is rewritten
    from Docker's whole log, without the part copied twice."""
    monkeypatch.setattr(docker_jobs, "FOLLOW_SLACK", 0.2)
    sdk.cut_follow = True
    sdk.runs_for = 8
    sdk.on_reload = lambda container: time.sleep(0.5) if container.reloads == 4 else None
    run(dirs, sdk)
    assert job_log(dirs["logs"], UUID, "stdout") == "out 1\nout 2\n"
    assert job_log(dirs["logs"], UUID, "stderr") == "err\n"
    assert ("logs", "stdout", True, False) in sdk.events


def test_messages_the_engine_sends_again_after_a_log_rotation_are_written_once(dirs, sdk):
    sdk.stdout = [b"line %d\n" % n for n in range(25)]
    sdk.repeated_on_rotation = 12
    run(dirs, sdk)
    assert job_log(dirs["logs"], UUID, "stdout") == "".join("line %d\n" % n for n in range(25))


def test_timestamps_tell_repeats_from_equal_messages():
    once = docker_jobs.OnceEach()
    written = [
        once.new_part(message)
        for message in [
            b"2026-12-01T05:00:00.1Z same\n",
            b"2026-12-01T05:00:00.12Z same\n",  # later (.12 > .1): a message of its own
            b"2026-12-01T05:00:00.12Z other\n",  # the same time, other text
            b"2026-12-01T05:00:00.1Z same\n",  # older: a repeat
            b"2026-12-01T05:00:00.12Z other\n",  # as old, written: a repeat
            b"2026-12-01T05:00:01Z last\n",
            b"no timestamp\n",
        ]
    ]
    assert written == [b"same\n", b"same\n", b"other\n", b"", b"", b"last\n", b"no timestamp\n"]


def test_results_bind_only_when_results_path_is_set(dirs, sdk):
    run(dirs, sdk, results_path=None)
    kwargs = sdk.events[3][1]
    assert list(kwargs["volumes"].values()) == [{"bind": "/logs", "mode": "rw"}]
    assert not os.path.exists(dirs["results"])


def test_non_zero_exit_fails_and_the_container_is_removed(dirs, sdk):
    sdk.exit_code = 3
    with pytest.raises(JobError) as error:
        run(dirs, sdk)
    assert "container exited with code 3" in str(error.value)
    assert sdk.removed == [NAME]
    assert job_log(dirs["logs"], UUID, "stdout") == "out 1\nout 2\n"
    assert sdk.names()[-1] == "close"


def test_start_failure_fails_and_the_container_is_removed(dirs, sdk):
    sdk.start_error = 'exec: "python": executable file not found in $PATH'
    with pytest.raises(JobError) as error:
        run(dirs, sdk)
    assert "cannot start the container" in str(error.value)
    assert "executable file not found" in str(error.value)
    assert sdk.removed == [NAME]
    assert "wait" not in sdk.names()


def test_create_failure_fails(dirs, sdk):
    sdk.create_error = "conflict"
    with pytest.raises(JobError) as error:
        run(dirs, sdk)
    assert "cannot create a container from 'registry:5000/team/job:2'" in str(
        error.value
    )
    assert sdk.removed == []
    assert sdk.names()[-1] == "close"


def test_pull_failure_without_a_local_image_fails_before_creating(dirs, sdk):
    sdk.pull_error = "manifest unknown"
    with pytest.raises(JobError) as error:
        run(dirs, sdk)
    assert "cannot pull image 'registry:5000/team/job:2': manifest unknown" in str(
        error.value
    )
    assert "create" not in sdk.names()
    assert sdk.names()[-1] == "close"


def test_pull_failure_with_a_local_image_uses_it_and_says_so(dirs, sdk):
    sdk.pull_error = "registry unreachable"
    sdk.local_images = ["registry:5000/team/job:2"]
    run(dirs, sdk)
    assert "create" in sdk.names()
    stderr = job_log(dirs["logs"], UUID, "stderr")
    assert stderr.startswith(
        "saltant worker: cannot pull image 'registry:5000/team/job:2' "
        "(registry unreachable); using the image present on this host\n"
    )
    assert stderr.endswith("err\n")


def test_missing_variable_fails_before_pulling(dirs, sdk):
    with pytest.raises(JobError) as error:
        run(dirs, sdk, env_vars_list=["TOKEN", "ABSENT_ONE"])
    assert "ABSENT_ONE" in str(error.value)
    assert sdk.events == []
    assert not os.path.exists(dirs["logs"])
    assert not os.path.exists(dirs["results"])


def test_engine_unreachable_fails_clearly(dirs, sdk):
    sdk.connect_error = "Error while fetching server API version"
    with pytest.raises(JobError) as error:
        run(dirs, sdk)
    assert "cannot connect to the Docker engine" in str(error.value)


def test_leftover_container_is_removed_first(dirs, sdk):
    sdk.leftovers = [NAME]
    run(dirs, sdk)
    names = sdk.names()
    assert names.index("remove") < names.index("create")
    assert sdk.removed == [NAME, NAME]


def test_unreadable_logs_are_noted_and_the_exit_code_still_counts(dirs, sdk):
    sdk.logs_error = "configured logging driver does not support reading"
    sdk.exit_code = 2
    with pytest.raises(JobError) as error:
        run(dirs, sdk)
    assert "exited with code 2" in str(error.value)
    stderr = job_log(dirs["logs"], UUID, "stderr")
    assert "could not read the container's stdout" in stderr
    assert "could not read the container's stderr" in stderr
    assert sdk.removed == [NAME]


def test_container_removed_by_someone_else_fails(dirs, sdk):
    sdk.removed_externally = True
    with pytest.raises(JobError) as error:
        run(dirs, sdk)
    assert "the container was removed while it ran" in str(error.value)


def test_sigterm_stops_and_removes_the_container(dirs, sdk):
    """A revoke with terminate=True stops the container, then re-signals."""
    received = []

    def previous_handler(signum, frame):
        received.append(signum)

    def sigterm_on_second_reload(container):
        if container.reloads == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    sdk.runs_for = 1000
    sdk.on_reload = sigterm_on_second_reload
    original = signal.signal(signal.SIGTERM, previous_handler)
    try:
        with pytest.raises(JobTerminated):
            run(dirs, sdk)
        assert signal.getsignal(signal.SIGTERM) is previous_handler
    finally:
        signal.signal(signal.SIGTERM, original)
    assert received == [signal.SIGTERM]
    assert ("stop", NAME, 3) in sdk.events
    assert sdk.removed == [NAME]
    names = sdk.names()
    assert names.index("stop") < names.index("remove")
    assert "wait" not in names


def test_the_soft_time_limit_stops_then_removes_the_container(dirs, sdk):
    """Celery's soft limit raises in the wait: the container gets its grace
    period (stop), its logs are kept, and it is removed."""

    def soft_limit_on_third_reload(container):
        if container.reloads == 3:
            raise SoftTimeLimitExceeded()

    sdk.runs_for = 1000
    sdk.on_reload = soft_limit_on_third_reload
    with pytest.raises(SoftTimeLimitExceeded):
        run(dirs, sdk)
    names = sdk.names()
    assert ("stop", NAME, 3) in sdk.events and sdk.removed == [NAME]
    assert names.index("logs") < names.index("stop") < names.index("remove")
    assert job_log(dirs["logs"], UUID, "stdout") == "out 1\nout 2\n"


def test_missing_sdk_fails_with_a_clear_message(dirs, monkeypatch):
    monkeypatch.setitem(sys.modules, "docker", None)
    with pytest.raises(JobError) as error:
        docker_jobs.run_docker_job(
            UUID,
            "true",
            [],
            {},
            None,
            None,
            "alpine",
            logs_directory=dirs["logs"],
            results_directory=dirs["results"],
            environ={},
        )
    assert str(error.value).startswith(
        "this worker has no Docker SDK installed: the host does not offer docker jobs"
    )


def test_the_container_of_a_lost_job_is_removed(sdk, monkeypatch):
    sdk.leftovers = [NAME]
    docker_jobs.remove_job_container(UUID, sdk=sdk)
    assert sdk.removed == [NAME]
    # None left, or no engine or SDK on this host: nothing to do, no error.
    docker_jobs.remove_job_container(UUID, sdk=FakeDockerSDK())
    monkeypatch.setitem(sys.modules, "docker", None)
    docker_jobs.remove_job_container(UUID)
