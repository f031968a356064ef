"""The worker's settings, read from ``.env`` when this module is imported.

The file is ``.env`` at the root of the tree (the directory that contains
the ``saltant`` package) unless the ``SALTANT_ENV_FILE`` environment
variable names another file. Without it the import fails, so
``celery -A saltant worker`` refuses to start.

Variables from the file are copied into ``os.environ`` (a variable already
set in the process environment wins), so jobs can receive them through their
``env_vars_list``. Relative directories are taken relative to the tree root.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import os

from saltant.envfile import (
    SettingsError,
    get_bool,
    get_int,
    get_none_or_int,
    get_str,
    read_env_file,
)
from tasksapi.compat import native_str, text

#: The root of the worker's code tree.
ROOT_DIRECTORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Names another .env file (used by the tests and by tooling).
ENV_FILE_VARIABLE = "SALTANT_ENV_FILE"

#: Used when CELERY_BROKER_POOL_LIMIT is unset (Celery's own default).
DEFAULT_BROKER_POOL_LIMIT = 10


def env_file_path(environ=None):
    """Return the path of the .env file to read."""
    environ = os.environ if environ is None else environ
    override = environ.get(ENV_FILE_VARIABLE)
    if override:
        return os.path.abspath(override)
    return os.path.join(ROOT_DIRECTORY, ".env")


def load_env_file(path, environ=None):
    """Read ``path`` and add its variables to ``environ`` without overriding."""
    environ = os.environ if environ is None else environ
    values = read_env_file(path)
    for name, value in values.items():
        if native_str(name) not in environ:
            environ[native_str(name)] = native_str(value)
    return values


def _directory(environ, name, default=None, required=False):
    value = get_str(environ, name, default=default, required=required)
    if value is None:
        return None
    return os.path.normpath(os.path.join(ROOT_DIRECTORY, os.path.expanduser(value)))


def read_settings(environ):
    """Return the typed settings (a dict) from a loaded environment."""
    environ = {text(name): text(value) for name, value in environ.items()}
    uses_rollbar = get_bool(environ, "PROJECT_USES_ROLLBAR", default=False)
    base_url = get_str(environ, "DJANGO_BASE_URL", required=True)
    values = {
        "IM_A_CELERY_WORKER": get_bool(environ, "IM_A_CELERY_WORKER", default=True),
        "DEBUG": get_bool(environ, "DEBUG", default=False),
        "WORKER_LOGS_DIRECTORY": _directory(
            environ, "WORKER_LOGS_DIRECTORY", required=True
        ),
        "WORKER_RESULTS_DIRECTORY": _directory(
            environ, "WORKER_RESULTS_DIRECTORY", default="results"
        ),
        "WORKER_TEMP_DIRECTORY": _directory(
            environ, "WORKER_TEMP_DIRECTORY", required=True
        ),
        "WORKER_SINGULARITY_IMAGES_DIRECTORY": _directory(
            environ, "WORKER_SINGULARITY_IMAGES_DIRECTORY", default="images"
        ),
        "CELERY_BROKER_POOL_LIMIT": get_none_or_int(
            environ, "CELERY_BROKER_POOL_LIMIT", default=DEFAULT_BROKER_POOL_LIMIT
        ),
        "CELERY_BROKER_URL": get_str(environ, "CELERY_BROKER_URL", required=True),
        "CELERY_TIMEZONE": get_str(environ, "CELERY_TIMEZONE", default="UTC"),
        "RABBITMQ_USES_SSL": get_bool(environ, "RABBITMQ_USES_SSL", default=False),
        "SINGULARITY_PULL_TIMEOUT": get_int(
            environ, "SINGULARITY_PULL_TIMEOUT", default=300
        ),
        "SINGULARITY_PULL_RETRIES": get_int(
            environ, "SINGULARITY_PULL_RETRIES", default=5
        ),
        "DJANGO_BASE_URL": base_url.rstrip("/"),
        "API_AUTH_TOKEN": get_str(environ, "API_AUTH_TOKEN", required=True),
        "PROJECT_USES_ROLLBAR": uses_rollbar,
        # Per instance (the role sets it in the instance's unit): let Celery
        # reserve jobs ahead of free processes (saltant.job_slots).
        "SALTANT_WORKER_RESERVE_JOBS": get_bool(
            environ, "SALTANT_WORKER_RESERVE_JOBS", default=False
        ),
        "ROLLBAR_ACCESS_TOKEN": get_str(
            environ, "ROLLBAR_ACCESS_TOKEN", required=uses_rollbar
        ),
    }
    if not values["IM_A_CELERY_WORKER"]:
        raise SettingsError(
            "saltant worker: IM_A_CELERY_WORKER is False; this tree only runs "
            "Celery workers, set it to True"
        )
    return values


ENV_FILE = env_file_path()
load_env_file(ENV_FILE)
_SETTINGS = read_settings(os.environ)

IM_A_CELERY_WORKER = _SETTINGS["IM_A_CELERY_WORKER"]
DEBUG = _SETTINGS["DEBUG"]
WORKER_LOGS_DIRECTORY = _SETTINGS["WORKER_LOGS_DIRECTORY"]
WORKER_RESULTS_DIRECTORY = _SETTINGS["WORKER_RESULTS_DIRECTORY"]
WORKER_TEMP_DIRECTORY = _SETTINGS["WORKER_TEMP_DIRECTORY"]
WORKER_SINGULARITY_IMAGES_DIRECTORY = _SETTINGS["WORKER_SINGULARITY_IMAGES_DIRECTORY"]
CELERY_BROKER_POOL_LIMIT = _SETTINGS["CELERY_BROKER_POOL_LIMIT"]
CELERY_BROKER_URL = _SETTINGS["CELERY_BROKER_URL"]
CELERY_TIMEZONE = _SETTINGS["CELERY_TIMEZONE"]
RABBITMQ_USES_SSL = _SETTINGS["RABBITMQ_USES_SSL"]
SINGULARITY_PULL_TIMEOUT = _SETTINGS["SINGULARITY_PULL_TIMEOUT"]
SINGULARITY_PULL_RETRIES = _SETTINGS["SINGULARITY_PULL_RETRIES"]
SALTANT_WORKER_RESERVE_JOBS = _SETTINGS["SALTANT_WORKER_RESERVE_JOBS"]
DJANGO_BASE_URL = _SETTINGS["DJANGO_BASE_URL"]
API_AUTH_TOKEN = _SETTINGS["API_AUTH_TOKEN"]
PROJECT_USES_ROLLBAR = _SETTINGS["PROJECT_USES_ROLLBAR"]
ROLLBAR_ACCESS_TOKEN = _SETTINGS["ROLLBAR_ACCESS_TOKEN"]
