"""The Celery application of the saltant worker."""

from __future__ import absolute_import, division, print_function, unicode_literals

from celery import Celery

# The task module uses shared_task: importing it registers the task with this
# app, so that `app.tasks` lists it as soon as the package is imported.
import tasksapi.tasks.base_task  # noqa: F401
from saltant import job_slots, settings
from saltant.broker_tls import broker_ssl_options

app = Celery("saltant", include=["tasksapi.tasks.base_task"])

app.conf.update(
    broker_url=settings.CELERY_BROKER_URL,
    # Must be None or an int: the string "None" breaks kombu.
    broker_pool_limit=settings.CELERY_BROKER_POOL_LIMIT,
    timezone=settings.CELERY_TIMEZONE,
    # Jobs are long: take one at a time, acknowledge on receipt (a job is
    # not re-run if the worker dies while running it). Unless the instance
    # reserves jobs, job_slots (below) lowers the prefetch to 1 and takes a
    # job only when a process is free.
    worker_prefetch_multiplier=1,
    task_acks_late=False,
    # States go to the saltant API, not to a Celery result backend.
    task_ignore_result=True,
    # Keep retrying to reach the broker at start-up (Celery 5 warns unless
    # this is explicit; Celery 4 ignores it and always retries).
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=True,
)

if not settings.SALTANT_WORKER_RESERVE_JOBS:
    # No delivery waits unacknowledged behind a running job, so RabbitMQ's
    # consumer_timeout never closes the channel (saltant.job_slots).
    job_slots.install(app)

if settings.RABBITMQ_USES_SSL:
    # The chain against the system's CAs, and the broker's host name (upstream
    # checks neither: it sets CERT_NONE).
    app.conf.broker_use_ssl = broker_ssl_options(settings.CELERY_BROKER_URL)

if settings.PROJECT_USES_ROLLBAR:
    from saltant import rollbar_reporting

    rollbar_reporting.install(
        settings.ROLLBAR_ACCESS_TOKEN,
        "development" if settings.DEBUG else "production",
    )
