"""Rollbar: imported only when turned on, failures reported."""

from __future__ import absolute_import, division, print_function, unicode_literals

import sys
import types

import pytest
from celery.signals import task_failure

from saltant import rollbar_reporting
from saltant.envfile import SettingsError


def test_rollbar_is_not_imported_when_off():
    import saltant  # noqa: F401

    assert "rollbar" not in sys.modules


def test_missing_rollbar_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "rollbar", None)
    with pytest.raises(SettingsError) as error:
        rollbar_reporting.install("token", "production")
    assert "pip install rollbar" in str(error.value)


def test_task_failures_are_reported(monkeypatch):
    calls = []
    fake = types.ModuleType(str("rollbar"))
    fake.init = lambda *args, **kwargs: calls.append(("init", args, kwargs))
    fake.report_exc_info = lambda *args, **kwargs: calls.append(
        ("report", args, kwargs)
    )
    monkeypatch.setitem(sys.modules, "rollbar", fake)
    monkeypatch.setattr(rollbar_reporting, "_rollbar", [])
    try:
        rollbar_reporting.install("token", "production")
        error = ValueError("boom")
        task_failure.send(sender=None, task_id="abc", exception=error, traceback=None)
    finally:
        task_failure.disconnect(rollbar_reporting.report_failure)
    assert calls[0] == ("init", ("token", "production"), {"handler": "blocking"})
    assert calls[1][0] == "report"
    assert calls[1][1][0][1] is error
    assert calls[1][2]["extra_data"]["task_id"] == "abc"
