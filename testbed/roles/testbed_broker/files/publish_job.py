#!/usr/bin/env python3
"""Publish one saltant job the way the saltant server does, for the test bed.

    publish_job.py --broker URL --queue Q --kwargs JSON [--uuid UUID]

Sends task ``tasksapi.tasks.base_task.run_task`` with ``task_id`` = the job's
uuid to queue Q, with the keyword arguments given as a JSON object (``uuid``
is filled in). Prints the uuid. A ``--revoke UUID`` call revokes (terminates)
a running job instead.
"""

from __future__ import annotations

import argparse
import json
import uuid as uuidlib

from celery import Celery

TASK_NAME = "tasksapi.tasks.base_task.run_task"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--queue")
    parser.add_argument("--kwargs", default="{}")
    parser.add_argument("--uuid", default=None)
    parser.add_argument("--revoke", metavar="UUID")
    args = parser.parse_args()
    app = Celery("publisher", broker=args.broker)
    if args.revoke:
        app.control.revoke(args.revoke, terminate=True)
        print(args.revoke)
        return
    job_uuid = args.uuid or str(uuidlib.uuid4())
    kwargs = json.loads(args.kwargs)
    kwargs["uuid"] = job_uuid
    app.send_task(TASK_NAME, task_id=job_uuid, queue=args.queue, kwargs=kwargs)
    print(job_uuid)


if __name__ == "__main__":
    main()
