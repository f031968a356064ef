"""Report a job's state to the saltant server's REST API.

``PATCH {base_url}/api/updatetaskinstancestatus/{uuid}/`` with the form field
``state`` and the header ``Authorization: Token {token}``. Connection errors,
timeouts and 5xx answers are retried a few times with a short backoff; other
answers are final. Nothing here raises: a lost update is logged and the job
goes on (the spec requires jobs to run even when the server is unreachable).
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import logging
import time

import requests

logger = logging.getLogger(__name__)

RUNNING = "running"
SUCCESSFUL = "successful"
FAILED = "failed"
TERMINATED = "terminated"

CONNECT_TIMEOUT = 5
READ_TIMEOUT = 10
TRIES = 3
BACKOFF = 0.5


def status_url(base_url, uuid):
    """Return the status update URL of job ``uuid``."""
    return "%s/api/updatetaskinstancestatus/%s/" % (base_url.rstrip("/"), uuid)


def report_status(
    uuid,
    state,
    base_url,
    token,
    connect_timeout=CONNECT_TIMEOUT,
    read_timeout=READ_TIMEOUT,
    tries=TRIES,
    backoff=BACKOFF,
):
    """PATCH job ``uuid`` to ``state``; return True when the server accepted it.

    Waits at most about ``tries * (connect_timeout + read_timeout)`` seconds
    plus the backoff (``backoff``, doubled after each failed try).
    """
    try:
        return _report(
            uuid, state, base_url, token, connect_timeout, read_timeout, tries, backoff
        )
    except Exception:
        logger.exception(
            "job %s: could not report state '%s' (unexpected error)", uuid, state
        )
        return False


def _report(
    uuid, state, base_url, token, connect_timeout, read_timeout, tries, backoff
):
    url = status_url(base_url, uuid)
    headers = {"Authorization": "Token %s" % (token,)}
    tries = max(1, int(tries))
    problem = None
    for attempt in range(1, tries + 1):
        try:
            response = requests.patch(
                url,
                data={"state": state},
                headers=headers,
                timeout=(connect_timeout, read_timeout),
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            problem = "%s: %s" % (type(exc).__name__, exc)
        except requests.RequestException as exc:
            logger.error(
                "job %s: could not report state '%s' to %s: %s", uuid, state, url, exc
            )
            return False
        else:
            if response.status_code < 400:
                logger.debug("job %s: reported state '%s'", uuid, state)
                return True
            problem = "HTTP %d: %s" % (response.status_code, response.text[:200])
            if response.status_code < 500:
                logger.error(
                    "job %s: server refused state '%s' at %s (%s)",
                    uuid,
                    state,
                    url,
                    problem,
                )
                return False
        if attempt < tries:
            logger.warning(
                "job %s: reporting state '%s' failed (try %d of %d: %s); retrying",
                uuid,
                state,
                attempt,
                tries,
                problem,
            )
            time.sleep(backoff * (2 ** (attempt - 1)))
    logger.error(
        "job %s: giving up reporting state '%s' to %s after %d tries (%s)",
        uuid,
        state,
        url,
        tries,
        problem,
    )
    return False
