"""Report task failures to Rollbar (only when PROJECT_USES_ROLLBAR=True).

``rollbar`` is not in the worker's requirements: operators who turn Rollbar
on install it themselves (``pip install rollbar``; 0.14.7 or later on
Python 3.11+). It is imported only here, only when Rollbar is on.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import logging

from celery.signals import task_failure

from saltant.envfile import SettingsError

logger = logging.getLogger(__name__)

_rollbar = []


def install(access_token, environment):
    """Initialise Rollbar and report every task failure to it."""
    try:
        import rollbar
    except ImportError:
        raise SettingsError(
            "saltant worker: PROJECT_USES_ROLLBAR is True but the rollbar "
            "package is not installed; run `pip install rollbar` in the "
            "worker's virtualenv or set PROJECT_USES_ROLLBAR=False"
        )
    # The blocking handler sends from the process that saw the failure (no
    # background thread, which would not survive the pool's fork).
    rollbar.init(access_token, environment, handler="blocking")
    _rollbar[:] = [rollbar]
    task_failure.connect(report_failure, weak=False)


def report_failure(sender=None, task_id=None, exception=None, traceback=None, **kwargs):
    """Send one task failure to Rollbar; never raises."""
    if not _rollbar or exception is None:
        return
    try:
        _rollbar[0].report_exc_info(
            (type(exception), exception, traceback),
            extra_data={"task_id": task_id, "task": getattr(sender, "name", None)},
        )
    except Exception:
        logger.exception("could not report task %s's failure to Rollbar", task_id)
