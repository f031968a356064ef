#!/usr/bin/env python3
"""Publish one saltant job the way the saltant server does, for the test bed.

    publish_job.py --broker URL --queue Q --kwargs JSON [--uuid UUID]
    publish_job.py --broker URL --stdin

Sends task ``tasksapi.tasks.base_task.run_task`` with ``task_id`` = the job's
uuid to queue Q, with the keyword arguments given as a JSON object (``uuid``
is filled in). Prints the uuid. A ``--revoke UUID`` call revokes (terminates)
a running job instead. With ``--stdin`` it publishes one job per line read,
each a JSON object {"queue": Q, "kwargs": {...}}, over one connection, and
answers each line with a line {"uuid": UUID} or {"error": MESSAGE}: a test
that publishes hundreds of jobs starts Python and Celery once.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid as uuidlib

from celery import Celery

TASK_NAME = "tasksapi.tasks.base_task.run_task"


def publish(app: Celery, queue: str | None, kwargs: dict, job_uuid: str | None = None) -> str:
    job_uuid = job_uuid or str(uuidlib.uuid4())
    kwargs["uuid"] = job_uuid
    app.send_task(TASK_NAME, task_id=job_uuid, queue=queue, kwargs=kwargs)
    return job_uuid


def serve(app: Celery) -> None:
    for line in sys.stdin:
        try:
            request = json.loads(line)
            answer = {"uuid": publish(app, request["queue"], request.get("kwargs", {}))}
        except Exception as error:  # noqa: BLE001 -- every failure is the caller's answer
            answer = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(answer), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--queue")
    parser.add_argument("--kwargs", default="{}")
    parser.add_argument("--uuid", default=None)
    parser.add_argument("--revoke", metavar="UUID")
    parser.add_argument("--stdin", action="store_true", help="publish one job per JSON line read")
    args = parser.parse_args()
    app = Celery("publisher", broker=args.broker)
    if args.revoke:
        app.control.revoke(args.revoke, terminate=True)
        print(args.revoke)
        return
    if args.stdin:
        serve(app)
        return
    print(publish(app, args.queue, json.loads(args.kwargs), args.uuid))


if __name__ == "__main__":
    main()
