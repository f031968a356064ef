"""Jobs a dead worker left behind: recorded while they run, settled at start.

A job is acknowledged when it starts (see ``saltant.worker_app``), so a job
whose worker dies (OOM, SIGKILL after the stop timeout, a host crash) would
stay ``running`` on the saltant server forever, and a Docker job's container
(outside the worker's cgroup) would run on. While a job runs, a record of it
is kept in ``{state}/running-{instance}/{uuid}``, ``state`` being the
directory named by ``SALTANT_WORKER_STATE_DIR`` (no records without it) and
``instance`` the part of the Celery node name before ``@``. The record is
removed when the job ends, however it ends. When the instance starts again,
before it takes any job, every record left is a job its last life lost: the
job is reported ``failed`` (with the reason in its stderr log), its
container is removed, and the record with it.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import contextlib
import io
import logging
import os
import re

from tasksapi.compat import ensure_directory, remove_file, text
from tasksapi.tasks import joblogs

logger = logging.getLogger(__name__)

STATE_DIR_VARIABLE = "SALTANT_WORKER_STATE_DIR"
LOST_MESSAGE = (
    "saltant worker: job failed: worker lost (the worker running it ended "
    "before the job did: killed, out of memory or the host went down)"
)
_SAFE_INSTANCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def records_directory(state_directory, node_name):
    """The directory of the records of instance ``node_name`` (``NAME@HOST``),
    or None when records are not kept."""
    instance = text(node_name or "").split("@", 1)[0]
    if not state_directory or not _SAFE_INSTANCE.match(instance):
        return None
    return os.path.join(text(state_directory), "running-%s" % (instance,))


@contextlib.contextmanager
def recorded(directory, uuid):
    """Keep the record of job ``uuid`` in ``directory`` while the block runs."""
    if directory is None:
        yield
        return
    uuid = joblogs.check_uuid(uuid)
    path = os.path.join(directory, uuid)
    try:
        ensure_directory(directory)
        with io.open(path, "w", encoding="utf-8") as record:
            record.write("%s\n" % (uuid,))
    except (IOError, OSError) as exc:
        # The job runs all the same; only its loss would go unreported.
        logger.warning("job %s: cannot keep its record in %s: %s", uuid, directory, exc)
    try:
        yield
    finally:
        remove_file(path, logger)


def forget(directory, uuid):
    """Drop job ``uuid``'s record (a revoked job: reported ``terminated``)."""
    if directory is not None:
        remove_file(os.path.join(directory, joblogs.check_uuid(uuid)), logger)


def settle(directory, report_failed, remove_container, logs_directory):
    """Report every job recorded in ``directory`` as failed, remove its
    container, then its record; return the uuids settled."""
    if directory is None or not os.path.isdir(directory):
        return []
    settled = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        try:
            uuid = joblogs.check_uuid(name)
        except Exception:  # noqa: BLE001 - not a record of ours: leave it alone
            logger.warning("not a job record, left alone: %s", path)
            continue
        logger.error("job %s: %s", uuid, LOST_MESSAGE)
        try:
            joblogs.append_to_stderr(logs_directory, uuid, LOST_MESSAGE)
        except (IOError, OSError) as exc:
            logger.error("job %s: could not write to its stderr log: %s", uuid, exc)
        remove_container(uuid)
        report_failed(uuid)
        remove_file(path, logger)
        settled.append(uuid)
    return settled
