"""What Docker and Singularity jobs share: command, environment, binds."""

from __future__ import absolute_import, division, print_function, unicode_literals

import json
import os

import pytest

from tasksapi.tasks import container_common
from tasksapi.tasks.errors import JobError

UUID = "0a1b2c3d-1111-4222-8333-444455556666"


def test_command_is_split_and_json_arguments_are_one_argument():
    command = container_common.container_command(
        "python -c 'print(1)' $HOME", {"a": 1, "b": "x y"}
    )
    assert command[:4] == ["python", "-c", "print(1)", "$HOME"]
    assert len(command) == 5
    assert json.loads(command[4]) == {"a": 1, "b": "x y"}


@pytest.mark.parametrize("args_dict", [None, {}])
def test_no_arguments_add_nothing(args_dict):
    assert container_common.container_command("run it", args_dict) == ["run", "it"]


def test_empty_command_keeps_only_the_arguments():
    assert container_common.container_command("", None) == []
    assert container_common.container_command(None, {"k": 1}) == ['{"k": 1}']


def test_unbalanced_quotes_fail():
    with pytest.raises(JobError) as error:
        container_common.container_command("echo 'oops", None)
    assert "cannot split command_to_run" in str(error.value)


def test_environment_is_the_named_variables_and_job_uuid_without_path():
    environ = {"PATH": "/usr/bin", "WANTED": "yes", "API_AUTH_TOKEN": "secret"}
    environment = container_common.container_environment(UUID, ["WANTED"], environ)
    assert environment == {"WANTED": "yes", "JOB_UUID": UUID}


def test_path_is_passed_when_named():
    environ = {"PATH": "/opt/bin"}
    environment = container_common.container_environment(UUID, ["PATH"], environ)
    assert environment == {"PATH": "/opt/bin", "JOB_UUID": UUID}


def test_missing_variable_is_named():
    with pytest.raises(JobError) as error:
        container_common.container_environment(UUID, ["NOT_THERE"], {"PATH": "/"})
    assert "NOT_THERE" in str(error.value)


def test_binds_only_for_set_paths(tmpdir):
    logs = os.path.join(str(tmpdir), "logs")
    results = os.path.join(str(tmpdir), "results")
    assert container_common.job_binds(UUID, logs, results, None, None) == []
    assert container_common.job_binds(UUID, logs, results, "", "/results") == [
        (os.path.join(results, UUID), "/results")
    ]
    binds = container_common.job_binds(UUID, logs, results, "/logs", "/out")
    assert binds == [
        (os.path.join(logs, UUID), "/logs"),
        (os.path.join(results, UUID), "/out"),
    ]
    assert not os.path.exists(logs)
    container_common.create_bind_directories(binds)
    assert os.path.isdir(os.path.join(logs, UUID))
    assert os.path.isdir(os.path.join(results, UUID))
    container_common.create_bind_directories(binds)  # twice is fine


@pytest.mark.parametrize(
    "logs_path, message",
    [
        ("logs", "must be an absolute path inside the container"),
        ("/a:b", "must not contain ':' or ','"),
        ("/a,b", "must not contain ':' or ','"),
        (42, "logs_path must be a path"),
    ],
)
def test_bad_container_paths_fail(tmpdir, logs_path, message):
    with pytest.raises(JobError) as error:
        container_common.job_binds(UUID, str(tmpdir), str(tmpdir), logs_path, None)
    assert message in str(error.value)


def test_same_container_path_twice_fails(tmpdir):
    with pytest.raises(JobError) as error:
        container_common.job_binds(UUID, str(tmpdir), str(tmpdir), "/data/", "/data")
    assert "the same container path" in str(error.value)


def test_host_directory_with_a_separator_fails(tmpdir):
    with pytest.raises(JobError) as error:
        container_common.job_binds(
            UUID, os.path.join(str(tmpdir), "a:b"), str(tmpdir), "/logs", None
        )
    assert "WORKER_LOGS_DIRECTORY" in str(error.value)


@pytest.mark.parametrize("image", [None, "", "   ", "a b", 3])
def test_unusable_image_names_fail(image):
    with pytest.raises(JobError):
        container_common.check_image(image)
