"""The free-slot gate: prefetch 1, and no consuming while every process is busy.

The worker's integration test (tests/integration/docker) proves it against a
real RabbitMQ with a short consumer_timeout; these pin the gate's decisions.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import os

from support import run_python

from saltant import app, job_slots
from tasksapi.tasks import base_task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeTaskConsumer(object):
    def __init__(self):
        self.calls = []

    def consume(self, *args, **kwargs):
        self.calls.append("consume")

    def cancel(self):
        self.calls.append("cancel")


class FakeQoS(object):
    def __init__(self):
        self.sent = []
        self.callback = self.send

    def send(self, prefetch_count=0, **kwargs):
        self.sent.append(prefetch_count)


class FakeConsumer(object):
    def __init__(self):
        self.task_consumer = FakeTaskConsumer()
        self.qos = FakeQoS()


class FakeTimer(object):
    def __init__(self):
        self.entries = []

    def call_repeatedly(self, seconds, callback):
        entry = FakeEntry(seconds, callback)
        self.entries.append(entry)
        return entry


class FakeEntry(object):
    def __init__(self, seconds, callback):
        self.seconds, self.callback, self.cancelled = seconds, callback, False

    def cancel(self):
        self.cancelled = True


def gate_with(slots, running, timer=None):
    consumer = FakeConsumer()
    gate = job_slots.SlotGate(consumer, slots, count=lambda: running[0], timer=timer)
    gate.install()
    return consumer, gate


def test_the_prefetch_count_is_one_whatever_celery_asks_for():
    consumer, _gate = gate_with(4, [0])
    assert consumer.qos.sent == [1]
    consumer.qos.callback(prefetch_count=8)
    assert consumer.qos.sent == [1, 1]


def test_it_consumes_only_while_a_process_is_free():
    running = [1]
    consumer, gate = gate_with(2, running)
    consumer.task_consumer.consume()
    assert consumer.task_consumer.calls == ["consume"] and not gate.paused
    running[0] = 2
    consumer.task_consumer.consume()
    assert consumer.task_consumer.calls == ["consume"] and gate.paused


def test_the_job_that_fills_the_last_slot_stops_consuming_before_its_ack():
    running = [1]
    consumer, gate = gate_with(2, running)
    gate.before_ack()
    assert consumer.task_consumer.calls == []
    running[0] = 2
    gate.before_ack()
    assert consumer.task_consumer.calls == ["cancel"] and gate.paused
    # Paused already: nothing more to cancel.
    gate.before_ack()
    assert consumer.task_consumer.calls == ["cancel"]


def test_a_freed_slot_resumes_consuming_and_a_full_pool_stops_it():
    running = [2]
    consumer, gate = gate_with(2, running)
    gate.before_ack()
    gate.check()
    assert consumer.task_consumer.calls == ["cancel"]
    running[0] = 1
    gate.check()
    assert consumer.task_consumer.calls == ["cancel", "consume"] and not gate.paused
    # Filled by a path that did not pass before_ack (the safety net).
    running[0] = 2
    gate.check()
    assert consumer.task_consumer.calls == ["cancel", "consume", "cancel"] and gate.paused


def test_it_checks_often_only_while_every_process_is_busy():
    running, timer = [1], FakeTimer()
    consumer, gate = gate_with(1, running, timer)
    assert timer.entries == []
    gate.before_ack()
    [fast] = timer.entries
    assert fast.seconds == job_slots.FULL_CHECK_INTERVAL and fast.callback == gate.check
    gate.before_ack()
    assert timer.entries == [fast]
    running[0] = 0
    fast.callback()
    assert fast.cancelled and not gate.paused and consumer.task_consumer.calls == ["cancel", "consume"]
    # Full again through consume() (add_consumer, a reconnect): fast again.
    running[0] = 1
    consumer.task_consumer.consume()
    assert len(timer.entries) == 2 and not timer.entries[1].cancelled
    gate.close()
    assert timer.entries[1].cancelled


def test_a_failing_cancel_is_retried_by_the_next_check():
    running = [1]
    consumer, gate = gate_with(1, running)

    def broken():
        raise IOError("connection lost")

    consumer.task_consumer.cancel = broken
    gate.before_ack()
    assert not gate.paused
    consumer.task_consumer.cancel = lambda: consumer.task_consumer.calls.append("cancel")
    gate.check()
    assert gate.paused and consumer.task_consumer.calls == ["cancel"]


def test_the_worker_app_uses_the_gate_unless_the_instance_reserves_jobs():
    assert job_slots.FreeSlotConsumer in app.steps["consumer"]
    assert app.tasks[base_task.TASK_NAME].Request == "saltant.job_slots:SlotRequest"
    code, output = run_python(
        ["-c", "import saltant; print(saltant.app.tasks['%s'].Request)" % base_task.TASK_NAME],
        {"SALTANT_ENV_FILE": os.environ["SALTANT_ENV_FILE"], "SALTANT_WORKER_RESERVE_JOBS": "True"},
        cwd=ROOT,
    )
    assert code == 0, output
    assert output.strip().splitlines()[-1] == "celery.worker.request:Request"


def test_a_bad_reserve_jobs_value_stops_the_worker():
    code, output = run_python(
        ["-c", "import saltant"],
        {"SALTANT_ENV_FILE": os.environ["SALTANT_ENV_FILE"], "SALTANT_WORKER_RESERVE_JOBS": "sometimes"},
        cwd=ROOT,
    )
    assert code != 0
    assert "SALTANT_WORKER_RESERVE_JOBS" in output
