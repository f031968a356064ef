#!/usr/bin/env python3
"""Watch RabbitMQ queues for the test bed: messages waiting and consumers.

    queue_watch.py --broker URL --queue Q [--queue Q2 ...] [--interval S] [--duration S] [--nodes]

Prints one JSON line per sample, {"t": seconds since the start,
"queues": {Q: [messages, consumers]}}, asking the broker with a passive
queue.declare (no management plugin needed); a queue that does not exist
reads [0, 0]. With --duration 0, one sample.

With --nodes, each sample also has "serving": {Q: [node, ...]}, the Celery
nodes that answered `inspect active_queues` (within --reply-timeout) listing
Q. A worker that takes jobs only when a process is free (saltant.job_slots)
has no AMQP consumer while it is full, yet it serves its queues; a drained
or restarting one does not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time

from kombu import Connection


def sample(connection: Connection, queues: list[str]) -> dict[str, list[int]]:
    seen = {}
    for queue in queues:
        channel = connection.channel()
        try:
            _name, messages, consumers = channel.queue_declare(queue=queue, passive=True)
            seen[queue] = [messages, consumers]
        except Exception:  # noqa: BLE001 - a missing queue closes the channel
            seen[queue] = [0, 0]
        finally:
            with contextlib.suppress(Exception):
                channel.close()
    return seen


def serving(broker: str, queues: list[str], timeout: float) -> dict[str, list[str]]:
    from celery import Celery

    replies = Celery(broker=broker).control.inspect(timeout=timeout).active_queues() or {}
    return {queue: sorted(node for node, active in replies.items()
                          if any(q.get("name") == queue for q in active or []))
            for queue in queues}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--queue", action="append", required=True)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--duration", type=float, default=0.0)
    parser.add_argument("--nodes", action="store_true", help="also ask the Celery nodes which queues they serve")
    parser.add_argument("--reply-timeout", type=float, default=1.5)
    args = parser.parse_args()
    start = time.monotonic()
    with Connection(args.broker) as connection:
        while True:
            now = time.monotonic() - start
            line = {"t": round(now, 2), "queues": sample(connection, args.queue)}
            if args.nodes:
                line["serving"] = serving(args.broker, args.queue, args.reply_timeout)
            print(json.dumps(line), flush=True)
            if now >= args.duration:
                return 0
            time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
