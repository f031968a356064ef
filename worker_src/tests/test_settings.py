"""Settings: typed values, the .env file location, refusing to start."""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import os

import pytest
from support import run_python

from saltant import settings
from saltant.envfile import SettingsError

ROOT = settings.ROOT_DIRECTORY

FULL = {
    "IM_A_CELERY_WORKER": "True",
    "DEBUG": "False",
    "WORKER_LOGS_DIRECTORY": "logs/",
    "WORKER_RESULTS_DIRECTORY": "/srv/results",
    "WORKER_TEMP_DIRECTORY": "temp",
    "WORKER_SINGULARITY_IMAGES_DIRECTORY": "images/",
    "CELERY_BROKER_POOL_LIMIT": "None",
    "CELERY_BROKER_URL": "pyamqp://u:p@rabbit:5672//",
    "CELERY_TIMEZONE": "Europe/Paris",
    "RABBITMQ_USES_SSL": "True",
    "SINGULARITY_PULL_TIMEOUT": "300",
    "SINGULARITY_PULL_RETRIES": "5",
    "DJANGO_BASE_URL": "https://saltant.example.org/",
    "API_AUTH_TOKEN": "token",
    "PROJECT_USES_ROLLBAR": "False",
    "ROLLBAR_ACCESS_TOKEN": "",
}


def with_values(**changes):
    values = dict(FULL)
    for name, value in changes.items():
        if value is None:
            values.pop(name, None)
        else:
            values[name] = value
    return values


def test_typed_settings():
    values = settings.read_settings(FULL)
    assert values["CELERY_BROKER_POOL_LIMIT"] is None
    assert values["RABBITMQ_USES_SSL"] is True
    assert values["DEBUG"] is False
    assert values["SINGULARITY_PULL_TIMEOUT"] == 300
    assert values["DJANGO_BASE_URL"] == "https://saltant.example.org"
    assert values["CELERY_TIMEZONE"] == "Europe/Paris"


def test_relative_directories_are_under_the_tree_root():
    values = settings.read_settings(FULL)
    assert values["WORKER_LOGS_DIRECTORY"] == os.path.join(ROOT, "logs")
    assert values["WORKER_TEMP_DIRECTORY"] == os.path.join(ROOT, "temp")
    assert values["WORKER_RESULTS_DIRECTORY"] == "/srv/results"


def test_defaults_for_optional_settings():
    values = settings.read_settings(
        with_values(
            CELERY_BROKER_POOL_LIMIT=None,
            CELERY_TIMEZONE=None,
            RABBITMQ_USES_SSL=None,
            PROJECT_USES_ROLLBAR=None,
        )
    )
    assert values["CELERY_BROKER_POOL_LIMIT"] == 10
    assert values["CELERY_TIMEZONE"] == "UTC"
    assert values["RABBITMQ_USES_SSL"] is False
    assert values["PROJECT_USES_ROLLBAR"] is False


@pytest.mark.parametrize(
    "name",
    [
        "CELERY_BROKER_URL",
        "DJANGO_BASE_URL",
        "API_AUTH_TOKEN",
        "WORKER_LOGS_DIRECTORY",
        "WORKER_TEMP_DIRECTORY",
    ],
)
def test_required_settings(name):
    with pytest.raises(SettingsError) as error:
        settings.read_settings(with_values(**{name: None}))
    assert name in str(error.value)


def test_invalid_boolean_names_the_variable():
    with pytest.raises(SettingsError) as error:
        settings.read_settings(with_values(DEBUG="false"))
    assert "DEBUG must be exactly True or False" in str(error.value)


def test_rollbar_needs_a_token():
    with pytest.raises(SettingsError) as error:
        settings.read_settings(with_values(PROJECT_USES_ROLLBAR="True"))
    assert "ROLLBAR_ACCESS_TOKEN" in str(error.value)


def test_not_a_worker_refuses():
    with pytest.raises(SettingsError) as error:
        settings.read_settings(with_values(IM_A_CELERY_WORKER="False"))
    assert "IM_A_CELERY_WORKER" in str(error.value)


def test_env_file_path():
    assert settings.env_file_path({}) == os.path.join(ROOT, ".env")
    assert settings.env_file_path({"SALTANT_ENV_FILE": "/etc/saltant.env"}) == (
        "/etc/saltant.env"
    )


def test_load_env_file_does_not_override_the_environment(tmpdir):
    path = os.path.join(str(tmpdir), ".env")
    with io.open(path, "w", encoding="utf-8") as env_file:
        env_file.write("FROM_FILE=file\nALREADY_SET=file\n")
    environ = {"ALREADY_SET": "process"}
    settings.load_env_file(path, environ)
    assert environ == {"FROM_FILE": "file", "ALREADY_SET": "process"}


def test_loaded_variables_reach_os_environ():
    assert os.environ.get("API_AUTH_TOKEN") == "test-token"
    assert settings.API_AUTH_TOKEN == "test-token"


def test_import_without_env_file_refuses(tmpdir):
    missing = os.path.join(str(tmpdir), "missing.env")
    code, output = run_python(
        ["-c", "import saltant"], {"SALTANT_ENV_FILE": missing}, cwd=ROOT
    )
    assert code != 0
    assert ".env not found at %s" % (missing,) in output
    assert "copy .env.example to .env" in output


def test_celery_worker_without_env_file_refuses(tmpdir):
    missing = os.path.join(str(tmpdir), "missing.env")
    code, output = run_python(
        ["-m", "celery", "-A", "saltant", "worker", "-Q", "q"],
        {"SALTANT_ENV_FILE": missing},
        cwd=ROOT,
        timeout=60,
    )
    assert code != 0
    assert ".env not found at %s" % (missing,) in output


def test_import_registers_the_task_and_skips_rollbar(tmpdir):
    path = os.path.join(str(tmpdir), ".env")
    with io.open(path, "w", encoding="utf-8") as env_file:
        env_file.writelines(
            "%s=%s\n" % (name, value) for name, value in with_values().items()
        )
    code, output = run_python(
        [
            "-c",
            (
                "import sys, saltant;"
                " print('run_task' if 'tasksapi.tasks.base_task.run_task'"
                " in saltant.app.tasks else 'missing');"
                " print('pool_limit=%r' % (saltant.app.conf.broker_pool_limit,));"
                " print('rollbar' in sys.modules)"
            ),
        ],
        {"SALTANT_ENV_FILE": path},
        cwd=str(tmpdir),
    )
    assert code == 0, output
    assert output.split() == ["run_task", "pool_limit=None", "False"]
