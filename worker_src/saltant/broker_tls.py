"""TLS to the broker (RABBITMQ_USES_SSL=True): the certificate chain is
checked against the system's trusted CAs and the certificate must name the
broker's host as CELERY_BROKER_URL spells it.

The options go to Celery's ``broker_use_ssl``; kombu hands them to the amqp
library, whose ``context`` key builds ``ssl.create_default_context()`` (chain
and host name checked) on amqp 2.6 (Python 2.7) and 5.x alike. Plain
``broker_use_ssl=True`` checks the chain only.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

try:  # Python 3
    from urllib.parse import urlsplit
except ImportError:  # Python 2.7
    from urlparse import urlsplit  # type: ignore[no-redef]


def broker_ssl_options(broker_url):
    # type: (str) -> dict
    """Celery's broker_use_ssl for a broker URL: check the chain and the host."""
    host = urlsplit(broker_url).hostname
    if not host:
        raise ValueError("CELERY_BROKER_URL names no host to check the broker's certificate against")
    return {"context": {"check_hostname": True}, "server_hostname": host}
