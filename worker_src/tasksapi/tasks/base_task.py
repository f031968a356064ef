"""The one Celery task the saltant server publishes: one call per job.

Flow: PATCH ``running``; run the job; PATCH ``successful``. On any error:
append the reason to the job's stderr log, log it, PATCH ``failed`` and
re-raise so Celery records the failure. A job past the worker's soft time
limit (Celery's ``--soft-time-limit``, raised in the job's wait) has its
process group or container stopped there, and fails the same way, saying
so; Celery's hard limit (``--time-limit``) is only the last resort, for a
worker stuck elsewhere. A revoked job is PATCHed
``terminated`` by the ``task_revoked`` handler below.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import logging
import os
import threading

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import celeryd_init, task_revoked
from celery.utils.log import get_task_logger

from saltant import settings
from tasksapi.compat import show, text
from tasksapi.tasks import containers, docker_jobs, executable, joblogs, orphans, status
from tasksapi.tasks.errors import JobError, JobTerminated

logger = get_task_logger(__name__)
# For the revoke handler: it runs in the worker's main process, outside tasks
# (a logger outside the task logger tree, which would print "???[???]").
main_logger = logging.getLogger("tasksapi.revocations")

TASK_NAME = "tasksapi.tasks.base_task.run_task"
TASK_CLASSES = ("container", "executable")


def report(uuid, state):
    """PATCH job ``uuid`` to ``state`` on the configured server (never raises)."""
    return status.report_status(
        uuid, state, settings.DJANGO_BASE_URL, settings.API_AUTH_TOKEN
    )


def run_job(
    uuid,
    task_class,
    command_to_run,
    env_vars_list=None,
    args_dict=None,
    logs_path=None,
    results_path=None,
    container_image=None,
    container_type=None,
    json_file_option=None,
):
    """Run one job of either class; raise when it fails."""
    if task_class == "executable":
        executable.run_executable_job(
            uuid,
            command_to_run,
            env_vars_list,
            args_dict,
            json_file_option,
            logs_directory=settings.WORKER_LOGS_DIRECTORY,
            temp_directory=settings.WORKER_TEMP_DIRECTORY,
        )
    elif task_class == "container":
        containers.run_container_job(
            uuid,
            command_to_run,
            env_vars_list,
            args_dict,
            logs_path,
            results_path,
            container_image,
            container_type,
            logs_directory=settings.WORKER_LOGS_DIRECTORY,
            results_directory=settings.WORKER_RESULTS_DIRECTORY,
            singularity_images_directory=settings.WORKER_SINGULARITY_IMAGES_DIRECTORY,
            singularity_pull_timeout=settings.SINGULARITY_PULL_TIMEOUT,
            singularity_pull_retries=settings.SINGULARITY_PULL_RETRIES,
            temp_directory=settings.WORKER_TEMP_DIRECTORY,
        )
    else:
        raise JobError(
            "unknown task_class %s (expected one of: %s)"
            % (show(task_class), ", ".join(TASK_CLASSES))
        )


#: The instance's soft time limit in seconds, as the role writes it beside
#: Celery's --soft-time-limit (for the message only).
SOFT_TIME_LIMIT_VARIABLE = "SALTANT_WORKER_SOFT_TIME_LIMIT"


def failure_message(exc, environ=None):
    """Return the line written to a failed job's stderr log."""
    environ = os.environ if environ is None else environ
    if isinstance(exc, SoftTimeLimitExceeded):
        limit = environ.get(SOFT_TIME_LIMIT_VARIABLE)
        reason = "it ran longer than this worker's soft time limit%s and was stopped" % (
            " of %s seconds" % (text(limit),) if limit else "",
        )
    elif isinstance(exc, JobError):
        reason = text(exc)
    else:
        reason = "%s: %s" % (type(exc).__name__, text(exc))
    return "saltant worker: job failed: %s" % (reason,)


def _record_failure(uuid, message):
    try:
        joblogs.append_to_stderr(settings.WORKER_LOGS_DIRECTORY, uuid, message)
    except (IOError, OSError, JobError) as exc:
        logger.error("job %s: could not write to its stderr log: %s", uuid, exc)


@shared_task(bind=True, name=TASK_NAME)
def run_task(
    self,
    uuid,
    task_class,
    command_to_run,
    env_vars_list=None,
    args_dict=None,
    logs_path=None,
    results_path=None,
    container_image=None,
    container_type=None,
    json_file_option=None,
):
    """Run job ``uuid`` and report its states to the saltant server."""
    uuid = joblogs.check_uuid(uuid)
    records = orphans.records_directory(os.environ.get(orphans.STATE_DIR_VARIABLE), self.request.hostname)
    with orphans.recorded(records, uuid):
        _run_and_report(
            uuid,
            task_class,
            command_to_run,
            env_vars_list=env_vars_list,
            args_dict=args_dict,
            logs_path=logs_path,
            results_path=results_path,
            container_image=container_image,
            container_type=container_type,
            json_file_option=json_file_option,
        )


def _run_and_report(uuid, task_class, command_to_run, **job):
    logger.info("job %s: %s job starting", uuid, task_class)
    report(uuid, status.RUNNING)
    try:
        run_job(uuid, task_class, command_to_run, **job)
    except JobTerminated:
        # The revoke that terminated it reports "terminated".
        logger.warning("job %s: terminated", uuid)
        raise
    except Exception as exc:
        message = failure_message(exc)
        _record_failure(uuid, message)
        logger.error("job %s: %s", uuid, message)
        report(uuid, status.FAILED)
        raise
    logger.info("job %s: successful", uuid)
    report(uuid, status.SUCCESSFUL)


@celeryd_init.connect
def settle_lost_jobs(sender=None, **kwargs):
    """At the start of an instance, before it takes a job: report the jobs
    its last life lost (see ``orphans``) and remove their containers."""
    directory = orphans.records_directory(os.environ.get(orphans.STATE_DIR_VARIABLE), sender)
    lost = orphans.settle(
        directory,
        lambda uuid: report(uuid, status.FAILED),
        docker_jobs.remove_job_container,
        settings.WORKER_LOGS_DIRECTORY,
    )
    if lost:
        main_logger.error("reported %d job(s) lost by this instance's last run as failed: %s",
                          len(lost), ", ".join(lost))
    return lost


def _revoked_uuid(request):
    """Return the job uuid of a revoked task's request, or None."""
    kwargs = getattr(request, "kwargs", None)
    if isinstance(kwargs, dict) and kwargs.get("uuid"):
        return kwargs["uuid"]
    return getattr(request, "id", None)


@task_revoked.connect
def report_revoked(sender=None, request=None, **kwargs):
    """PATCH ``terminated`` for a revoked job, in a thread (never blocks)."""
    if getattr(sender, "name", sender) != TASK_NAME:
        return None
    uuid = _revoked_uuid(request)
    if not uuid:
        main_logger.error(
            "revoked %s without a job uuid: state not reported", TASK_NAME
        )
        return None
    main_logger.info("job %s: revoked", uuid)
    try:
        # Terminated with its process: not a job lost to the next start.
        orphans.forget(orphans.records_directory(os.environ.get(orphans.STATE_DIR_VARIABLE),
                                                 getattr(request, "hostname", None)), uuid)
    except Exception as exc:  # noqa: BLE001 - the report below must go out
        main_logger.warning("job %s: could not drop its record: %s", uuid, exc)
    thread = threading.Thread(target=report, args=(uuid, status.TERMINATED))
    thread.daemon = True
    thread.start()
    return thread
