"""Errors that fail a job with a message meant for the job's owner."""

from __future__ import absolute_import, division, print_function, unicode_literals


class JobError(Exception):
    """The job cannot run or did not succeed; the message says why."""


class JobTerminated(JobError):  # noqa: N818 (a state, not an error of the job)
    """The worker process was told to terminate the running job."""
