"""Jobs a dead worker left behind: recorded while they run, reported failed
and their containers removed when the instance starts again."""

from __future__ import absolute_import, division, print_function, unicode_literals

import os

import pytest
from celery.utils.nodenames import gethostname
from support import job_log

from saltant import app, settings
from tasksapi.tasks import base_task, orphans

UUID = "3c2b1a09-7777-4888-8999-000011112222"


def test_records_are_kept_per_instance_only_with_a_state_directory(tmpdir):
    state = str(tmpdir)
    assert orphans.records_directory(state, "limited@host-1") == os.path.join(state, "running-limited")
    assert orphans.records_directory(None, "limited@host-1") is None
    assert orphans.records_directory(state, "../x@host") is None


def test_a_record_lives_exactly_as_long_as_its_job(tmpdir):
    directory = os.path.join(str(tmpdir), "running-default")
    with orphans.recorded(directory, UUID):
        assert os.listdir(directory) == [UUID]
    assert os.listdir(directory) == []
    with pytest.raises(RuntimeError), orphans.recorded(directory, UUID):
        raise RuntimeError("the job failed")
    assert os.listdir(directory) == []


def test_an_unwritable_record_directory_does_not_stop_the_job(tmpdir):
    blocker = os.path.join(str(tmpdir), "file")
    open(blocker, "w").close()
    with orphans.recorded(os.path.join(blocker, "running-default"), UUID):
        ran = True
    assert ran


def test_settling_reports_removes_the_container_and_notes_the_reason(tmpdir):
    directory = os.path.join(str(tmpdir), "running-default")
    logs = os.path.join(str(tmpdir), "logs")
    os.makedirs(directory)
    for name in (UUID, "not a record"):
        open(os.path.join(directory, name), "w").close()
    reported, removed = [], []
    assert orphans.settle(directory, reported.append, removed.append, logs) == [UUID]
    assert reported == [UUID] and removed == [UUID]
    assert job_log(logs, UUID, "stderr") == orphans.LOST_MESSAGE + "\n"
    assert os.listdir(directory) == ["not a record"]
    # Nothing recorded, or no records kept: nothing to do.
    assert orphans.settle(directory, reported.append, removed.append, logs) == []
    assert orphans.settle(None, reported.append, removed.append, logs) == []


def test_a_running_job_is_recorded_and_its_loss_reported_at_the_next_start(
    tmpdir, status_server, worker_dirs, monkeypatch
):
    monkeypatch.setattr(settings, "DJANGO_BASE_URL", status_server.url)
    monkeypatch.setenv(orphans.STATE_DIR_VARIABLE, str(tmpdir))
    directory = orphans.records_directory(str(tmpdir), gethostname())
    task = app.tasks[base_task.TASK_NAME]
    result = task.apply(kwargs={"uuid": UUID, "task_class": "executable", "command_to_run": "ls %s" % (directory,),
                                "env_vars_list": [], "args_dict": {}}, task_id=UUID)
    assert result.successful(), result.traceback
    assert job_log(worker_dirs["logs"], UUID, "stdout") == UUID + "\n"
    assert os.listdir(directory) == []
    # A record the last life left (its worker was killed): settled at start.
    open(os.path.join(directory, UUID), "w").close()
    monkeypatch.setattr(base_task.docker_jobs, "remove_job_container", lambda uuid: None)
    assert base_task.settle_lost_jobs(sender=gethostname()) == [UUID]
    assert status_server.states() == ["running", "successful", "failed"]
