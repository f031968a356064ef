#!/usr/bin/env python3
"""Watch RabbitMQ queues for the test bed: messages waiting and consumers.

    queue_watch.py --broker URL --queue Q [--queue Q2 ...] [--interval S] [--duration S]

Prints one JSON line per sample, {"t": seconds since the start,
"queues": {Q: [messages, consumers]}}, asking the broker with a passive
queue.declare (no management plugin needed); a queue that does not exist
reads [0, 0]. With --duration 0, one sample.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--queue", action="append", required=True)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--duration", type=float, default=0.0)
    args = parser.parse_args()
    start = time.monotonic()
    with Connection(args.broker) as connection:
        while True:
            now = time.monotonic() - start
            print(json.dumps({"t": round(now, 2), "queues": sample(connection, args.queue)}), flush=True)
            if now >= args.duration:
                return 0
            time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
