"""The saltant worker: ``celery -A saltant worker -Q <queues>`` finds ``app``.

Importing this package reads the .env file (see saltant.settings) and fails
with a clear error when it is missing or invalid.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

from saltant.worker_app import app

__all__ = ["app"]
