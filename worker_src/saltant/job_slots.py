"""Take a job from the broker only when a process is free to run it.

Celery reserves jobs ahead: with a prefetch count of N it holds up to N
deliveries that no process runs yet, unacknowledged. RabbitMQ closes the
channel of a consumer whose delivery stays unacknowledged longer than its
``consumer_timeout`` (30 minutes by default since 3.8.17): a job queued
behind a long one on a busy worker makes the broker close the channel, the
reserved jobs go back to the queue (redelivered, or run twice), and the
worker reconnects in a loop.

This consumer bootstep keeps every delivery's wait short:

- the prefetch count is 1, whatever Celery computes from the concurrency;
- the task consumer is cancelled (``basic.cancel``) as soon as a job fills
  the last free process, *before* that job is acknowledged: the
  acknowledgement frees the prefetch credit, but no consumer is left to
  deliver to, so the next job stays in the queue, where no timeout applies;
- it consumes again when a process frees up: a check (a few set lengths),
  every 20 ms while every process is busy and every quarter of a second
  otherwise, sees the end of a job however it ended
  (success, failure, revoke, time limit, a lost process). Celery's fast
  request class does not call a base class's on_success, so a timer is the
  one hook that sees every end.

A delivery is thus acknowledged within milliseconds of its arrival, however
long the jobs run. The queues an instance serves do not change (``inspect
active_queues`` lists them while it is full); Celery's cancel_consumer and
add_consumer keep working (a queue added while the instance is full is
consumed once a process frees up). Set SALTANT_WORKER_RESERVE_JOBS=True to
get Celery's own prefetching back (lower latency for many short jobs, at
the risk above).
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import logging

from celery import bootsteps
from celery.worker import state
from celery.worker.request import Request

LOG = logging.getLogger(__name__)

#: The gate of this worker process (one consumer per worker), once started.
GATE = None  # type: SlotGate | None

#: Seconds between the checks for a freed process: slow while the worker
#: consumes (a safety net), fast while it waits for a free process.
CHECK_INTERVAL = 0.25
FULL_CHECK_INTERVAL = 0.02


def busy():
    # type: () -> int
    """Jobs this worker holds: received (not yet running) or running."""
    return len(set(state.reserved_requests) | set(state.active_requests))


class SlotGate(object):
    """Consume from the task queues only while a process is free."""

    def __init__(self, consumer, slots, count=busy, timer=None):
        self.consumer = consumer
        self.slots = max(1, int(slots or 1))
        self.count = count
        self.timer = timer
        self.paused = False
        self._consume = None
        self._full_checks = None

    def _set_paused(self, paused):
        """Remember whether consuming is off; check often only while it is."""
        self.paused = paused
        if paused and self._full_checks is None and self.timer is not None:
            self._full_checks = self.timer.call_repeatedly(FULL_CHECK_INTERVAL, self.check)
        elif not paused and self._full_checks is not None:
            self._full_checks.cancel()
            self._full_checks = None

    def install(self):
        """Wrap the task consumer: prefetch 1, and consume only with a free slot."""
        task_consumer = self.consumer.task_consumer
        self._consume = task_consumer.consume
        task_consumer.consume = self.consume
        qos = self.consumer.qos
        if qos is not None:
            set_prefetch = qos.callback

            def one_at_a_time(prefetch_count=0, **kwargs):
                return set_prefetch(prefetch_count=1, **kwargs)

            qos.callback = one_at_a_time
            set_prefetch(prefetch_count=1)
        self._set_paused(False)

    def close(self):
        """The consumer stops: no more checks."""
        self._set_paused(False)

    def consume(self, *args, **kwargs):
        """The task consumer's consume(): a no-op while every process is busy."""
        if self.count() >= self.slots:
            self._set_paused(True)
            return None
        self._set_paused(False)
        return self._consume(*args, **kwargs)

    def before_ack(self):
        """A job is about to be acknowledged: stop consuming if it fills the last slot."""
        if not self.paused and self.count() >= self.slots:
            self.pause()

    def pause(self):
        try:
            self.consumer.task_consumer.cancel()
        except Exception as exc:  # noqa: BLE001 - the safety net retries
            LOG.warning("could not stop consuming while every process is busy: %s", exc)
            return
        self._set_paused(True)
        LOG.debug("all %d processes busy: stopped consuming", self.slots)

    def check(self):
        """Consume again when a slot is free; stop when none is (a safety net
        for a job that filled the last slot without passing before_ack)."""
        try:
            if self.paused and self.count() < self.slots:
                self.consume()
                if not self.paused:
                    LOG.debug("a process is free: consuming again")
            elif not self.paused and self.count() >= self.slots:
                self.pause()
        except Exception as exc:  # noqa: BLE001 - the next check retries
            LOG.warning("could not resume consuming: %s", exc)


class SlotRequest(Request):
    """Celery's request, telling the gate when a job is about to be acknowledged."""

    def on_accepted(self, pid, time_accepted):
        if GATE is not None and not self.task.acks_late:
            GATE.before_ack()
        return super(SlotRequest, self).on_accepted(pid, time_accepted)


class FreeSlotConsumer(bootsteps.StartStopStep):
    """Consumer bootstep that installs the gate after the task consumer starts."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent, **kwargs):
        super(FreeSlotConsumer, self).__init__(parent, **kwargs)
        self.timer_entry = None

    def start(self, parent):
        global GATE
        slots = getattr(parent.controller, "concurrency", None) or 1
        GATE = SlotGate(parent, slots, timer=parent.timer)
        GATE.install()
        self.timer_entry = parent.timer.call_repeatedly(CHECK_INTERVAL, GATE.check)
        LOG.info("taking a job only when one of the %d processes is free (prefetch 1)", GATE.slots)

    def stop(self, parent):
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None
        if GATE is not None:
            GATE.close()

    shutdown = stop


def install(app):
    # type: (object) -> None
    """Use the gate in ``app``'s workers (every task gets SlotRequest)."""
    app.steps["consumer"].add(FreeSlotConsumer)
    app.Task.Request = "saltant.job_slots:SlotRequest"
