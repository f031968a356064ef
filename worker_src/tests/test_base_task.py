"""The task flow: states reported to a local status API, failures logged."""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import os
import stat
import sys

import pytest
from celery.signals import task_revoked
from support import job_log

from saltant import app, settings
from tasksapi.tasks import base_task

UUID = "9d8e7f60-5555-4666-8777-888899990000"


@pytest.fixture
def api(status_server, monkeypatch):
    """Point the worker at the local status API."""
    monkeypatch.setattr(settings, "DJANGO_BASE_URL", status_server.url)
    monkeypatch.setattr(settings, "API_AUTH_TOKEN", "flow-token")
    return status_server


def apply(**kwargs):
    task = app.tasks[base_task.TASK_NAME]
    kwargs.setdefault("uuid", UUID)
    kwargs.setdefault("env_vars_list", [])
    kwargs.setdefault("args_dict", {})
    return task.apply(kwargs=kwargs, task_id=kwargs["uuid"])


def test_the_task_is_registered_under_the_servers_name():
    assert "tasksapi.tasks.base_task.run_task" in app.tasks
    assert app.conf.broker_pool_limit == 10
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_acks_late is False
    assert app.conf.task_ignore_result is True


def test_successful_job_reports_running_then_successful(api, worker_dirs):
    result = apply(
        task_class="executable",
        command_to_run="echo hello",
        json_file_option=None,
    )
    assert result.successful(), result.traceback
    assert api.states() == ["running", "successful"]
    assert all(
        request["path"] == "/api/updatetaskinstancestatus/%s/" % (UUID,)
        and request["authorization"] == "Token flow-token"
        and request["method"] == "PATCH"
        for request in api.requests
    )
    assert job_log(worker_dirs["logs"], UUID, "stdout") == "hello\n"


def test_failing_job_reports_failed_and_explains_in_stderr_log(api, worker_dirs):
    result = apply(
        task_class="executable", command_to_run="sh -c 'echo no >&2; exit 2'"
    )
    assert result.failed()
    assert api.states() == ["running", "failed"]
    stderr = job_log(worker_dirs["logs"], UUID, "stderr")
    assert stderr == "no\nsaltant worker: job failed: command exited with code 2\n"


def test_missing_env_var_fails_the_job(api, worker_dirs):
    result = apply(
        task_class="executable",
        command_to_run="true",
        env_vars_list=["SALTANT_TEST_SURELY_UNSET"],
    )
    assert result.failed()
    assert api.states() == ["running", "failed"]
    assert "SALTANT_TEST_SURELY_UNSET" in job_log(worker_dirs["logs"], UUID, "stderr")


def test_unknown_task_class_fails(api, worker_dirs):
    result = apply(task_class="pyramid", command_to_run="true")
    assert result.failed()
    assert "unknown task_class 'pyramid'" in str(result.result)
    assert api.states() == ["running", "failed"]
    assert "unknown task_class" in job_log(worker_dirs["logs"], UUID, "stderr")


def test_docker_job_without_the_sdk_fails_clearly(api, worker_dirs, monkeypatch):
    monkeypatch.setitem(sys.modules, "docker", None)
    result = apply(
        task_class="container",
        command_to_run="",
        container_image="docker.io/library/alpine",
        container_type="docker",
        logs_path="/logs",
        results_path=None,
    )
    assert result.failed()
    assert "this worker has no Docker SDK installed" in str(result.result)
    assert api.states() == ["running", "failed"]
    assert "the host does not offer docker jobs" in job_log(
        worker_dirs["logs"], UUID, "stderr"
    )


def test_singularity_job_without_a_runtime_fails_clearly(
    api, worker_dirs, monkeypatch, tmpdir
):
    monkeypatch.setenv(str("PATH"), str(tmpdir))
    result = apply(
        task_class="container",
        command_to_run="",
        container_image="docker://alpine",
        container_type="singularity",
        logs_path=None,
        results_path="/results",
    )
    assert result.failed()
    assert "no apptainer or singularity command" in str(result.result)
    assert api.states() == ["running", "failed"]


SINGULARITY = """#!/bin/sh
if [ "$1" = pull ]; then echo image > "$3"; exit 0; fi
echo "$@ JOB_UUID=$APPTAINERENV_JOB_UUID"
"""


def test_singularity_job_reports_successful(api, worker_dirs, monkeypatch, tmpdir):
    runtime = os.path.join(str(tmpdir), "apptainer")
    with io.open(runtime, "w", encoding="utf-8") as script:
        script.write(SINGULARITY)
    os.chmod(runtime, stat.S_IRWXU)
    monkeypatch.setenv(str("PATH"), str(tmpdir))
    images = os.path.join(str(tmpdir), "images")
    monkeypatch.setattr(settings, "WORKER_SINGULARITY_IMAGES_DIRECTORY", images)
    result = apply(
        task_class="container",
        command_to_run="hello",
        container_image="docker://alpine",
        container_type="singularity",
        logs_path=None,
        results_path=None,
    )
    assert result.successful(), result.traceback
    assert api.states() == ["running", "successful"]
    output = job_log(worker_dirs["logs"], UUID, "stdout")
    assert output.startswith("exec --cleanenv %s/" % (images,))
    assert output.endswith(" hello JOB_UUID=%s\n" % (UUID,))


def test_unknown_container_type_fails(api, worker_dirs):
    result = apply(
        task_class="container",
        command_to_run="",
        container_image="x",
        container_type="podman",
    )
    assert result.failed()
    assert "unknown container_type 'podman'" in str(result.result)


def test_status_api_down_does_not_stop_the_job(worker_dirs, monkeypatch):
    from support import refused_url

    monkeypatch.setattr(settings, "DJANGO_BASE_URL", refused_url())
    monkeypatch.setattr(base_task.status, "BACKOFF", 0.01)
    result = apply(task_class="executable", command_to_run="echo still runs")
    assert result.successful(), result.traceback
    assert job_log(worker_dirs["logs"], UUID, "stdout") == "still runs\n"


class FakeRequest(object):
    def __init__(self, task_id, kwargs):
        self.id = task_id
        self.kwargs = kwargs


def test_revoked_job_is_reported_terminated(api):
    task = app.tasks[base_task.TASK_NAME]
    responses = task_revoked.send(
        sender=task,
        request=FakeRequest(UUID, {"uuid": UUID}),
        terminated=True,
        signum=15,
        expired=False,
    )
    threads = [
        response
        for receiver, response in responses
        if receiver == base_task.report_revoked
    ]
    assert len(threads) == 1
    threads[0].join(10)
    assert api.states() == ["terminated"]
    assert api.requests[0]["path"] == "/api/updatetaskinstancestatus/%s/" % (UUID,)


def test_revoked_other_task_is_ignored(api):
    assert base_task.report_revoked(sender=None, request=FakeRequest("x", {})) is None
    assert api.requests == []


def test_failure_message():
    assert base_task.failure_message(ValueError("bad")) == (
        "saltant worker: job failed: ValueError: bad"
    )


def test_job_logs_default_to_the_configured_directory():
    assert os.path.isabs(settings.WORKER_LOGS_DIRECTORY)
