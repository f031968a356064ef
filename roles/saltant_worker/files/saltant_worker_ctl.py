# -*- coding: utf-8 -*-
"""Drain, resume, check and describe the saltant worker instances of this host.

    saltant-worker-ctl status  [--instance NAME]...
    saltant-worker-ctl drain   [--instance NAME]... [--wait SECONDS]
    saltant-worker-ctl resume  [--instance NAME]...
    saltant-worker-ctl health  [--instance NAME]... [--wait SECONDS]

Every command prints one JSON document and exits 0 when it did what it says:
drain, when every instance stopped consuming (and, with --wait, its running
jobs finished in time: exit 3 otherwise); resume, when every instance
consumes exactly its configured queues again; health, when every instance
answers a ping to its node name and consumes exactly its configured queues
(retrying up to --wait seconds). Each instance is addressed as the Celery
node NAME@HOST, through the worker's own Celery app (its .env, its broker
TLS settings).

The instances and their queues come from the role's local facts
(/etc/ansible/facts.d/saltant_worker.fact); the installed wrapper runs this
with the worker's virtualenv, in its code directory. Python 2.7 and 3.
"""

from __future__ import print_function

import argparse
import json
import os
import socket
import subprocess
import sys
import time

FACTS = "/etc/ansible/facts.d/saltant_worker.fact"
SHIPPER_STATUS = "/run/saltant-log-shipper/status.json"
UNIT_PREFIX = "saltant-worker@"
# Exit status of a drain whose running jobs did not finish in time.
EXIT_STILL_RUNNING = 3
# Seconds a drain or resume asks again until the instance consumes what it should.
SETTLE = 15.0


def load_facts(path):
    with open(path) as handle:
        return json.load(handle)


def load_app():
    """The worker's Celery app, as `celery -A saltant` finds it."""
    from celery.app.utils import find_app

    sys.path.insert(0, os.getcwd())
    return find_app("saltant")


def run(argv):
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError:
        return None
    out = process.communicate()[0]
    return out.decode("utf-8", "replace").strip() if process.returncode == 0 else None


class Host(object):
    def __init__(self, facts, app, names, timeout):
        self.facts = facts
        self.app = app
        self.timeout = timeout
        self.hostname = socket.gethostname()
        configured = [dict(instance) for instance in facts.get("instances", [])]
        known = [instance["name"] for instance in configured]
        unknown = [name for name in names if name not in known]
        if unknown:
            raise SystemExit("no instance named %s on this host (it has: %s)" % (", ".join(unknown), ", ".join(known)))
        self.instances = [i for i in configured if not names or i["name"] in names]

    def node(self, instance):
        return "%s@%s" % (instance["name"], self.hostname)

    # --- asking the workers ----------------------------------------------------

    def ping(self, instance):
        replies = self.app.control.ping(destination=[self.node(instance)], timeout=self.timeout) or []
        return any(self.node(instance) in reply for reply in replies)

    def inspect(self, instance, method):
        """One inspect call to the instance's node: its answer, or None."""
        inspector = self.app.control.inspect(destination=[self.node(instance)], timeout=self.timeout)
        answer = getattr(inspector, method)() or {}
        return answer.get(self.node(instance))

    def consumed(self, instance):
        queues = self.inspect(instance, "active_queues")
        return None if queues is None else sorted(queue["name"] for queue in queues)

    def running(self, instance):
        jobs = self.inspect(instance, "active")
        return None if jobs is None else [job.get("id") for job in jobs]

    def reserved(self, instance):
        jobs = self.inspect(instance, "reserved")
        return None if jobs is None else [job.get("id") for job in jobs]

    def control(self, instance, command, queue):
        """cancel_consumer or add_consumer for one queue; the node's reply."""
        replies = getattr(self.app.control, command)(
            queue, destination=[self.node(instance)], reply=True, timeout=self.timeout) or []
        for reply in replies:
            if self.node(instance) in reply:
                return reply[self.node(instance)]
        return None

    # --- what the host has -----------------------------------------------------

    def unit(self, instance):
        out = run(["systemctl", "show", "--property=ActiveState,SubState", "--value",
                   UNIT_PREFIX + instance["name"] + ".service"])
        return "/".join((out or "unknown").split())

    def runtimes(self):
        found = {}
        docker = run(["docker", "version", "--format", "{{.Server.Version}}"])
        if docker:
            found["docker"] = docker
        for command in ("apptainer", "singularity"):
            version = run([command, "--version"])
            if version:
                found["singularity"] = version
                break
        return found

    def free_disk(self):
        free = {}
        for key in ("logs_dir", "results_dir", "temp_dir"):
            path = self.facts.get(key)
            if not path:
                continue
            try:
                stats = os.statvfs(path)
            except OSError:
                continue
            free[path] = stats.f_bavail * stats.f_frsize
        return free

    def unshipped(self):
        try:
            with open(SHIPPER_STATUS) as handle:
                return json.load(handle).get("pending_files")
        except (IOError, OSError, ValueError):
            return None


def versions():
    import celery

    return {"python": "%d.%d.%d" % sys.version_info[:3], "celery": celery.__version__}


def describe(host, instance):
    configured = sorted(instance["queues"])
    consumed = host.consumed(instance)
    running = host.running(instance)
    reserved = host.reserved(instance) if running is not None else None
    return {
        "instance": instance["name"],
        "node": host.node(instance),
        "unit": host.unit(instance),
        "answers": consumed is not None,
        "queues": configured,
        "consuming": consumed,
        "drained": consumed == [],
        "running_jobs": running,
        "reserved_jobs": reserved,
        # Known to have no job at all (a worker that does not answer is not).
        "idle": running == [] and reserved == [],
    }


def status(host, _args):
    report = {
        "host": host.hostname,
        "commit": host.facts.get("commit", ""),
        "version": host.facts.get("version", ""),
        "runtimes": host.runtimes(),
        "free_disk": host.free_disk(),
        "unshipped_logs": host.unshipped(),
        "instances": [describe(host, instance) for instance in host.instances],
    }
    report.update(versions())
    return report, 0


def settle(host, instance, done, command, replies):
    """The queues the instance consumes once done(queues) holds, sending
    command again for the queues still in the way, for up to SETTLE seconds."""
    deadline = time.time() + SETTLE
    while True:
        consuming = host.consumed(instance)
        if (consuming is not None and done(consuming)) or time.time() >= deadline:
            return consuming
        if consuming is not None:
            cancelling = command == "cancel_consumer"
            again = consuming if cancelling else [q for q in instance["queues"] if q not in consuming]
            for queue in again:
                replies[queue] = host.control(instance, command, queue)
        time.sleep(0.5)


def drain(host, args):
    """Stop consuming on every instance; with --wait, wait for its jobs."""
    results, ok = [], True
    for instance in host.instances:
        before = host.consumed(instance)
        replies = {}
        for queue in sorted(set(instance["queues"]) | set(before or [])):
            replies[queue] = host.control(instance, "cancel_consumer", queue)
        # A busy worker has been seen to list a queue it had just confirmed
        # cancelling: ask again, and cancel again what it still lists.
        consuming = settle(host, instance, lambda queues: queues == [], "cancel_consumer", replies)
        stopped = consuming == []
        ok = ok and stopped
        results.append({"instance": instance["name"], "replies": replies, "consuming": consuming,
                        "stopped": stopped, "changed": bool(before)})
    if not ok:
        return {"drained": False, "instances": results}, 1
    # Jobs the worker has taken: running, or received and waiting for a
    # process (prefetched); both finish before the instance is idle.
    deadline = time.time() + max(0.0, args.wait)
    while True:
        busy = {}
        for instance in host.instances:
            busy[instance["name"]] = (host.running(instance) or []) + (host.reserved(instance) or [])
        if args.wait <= 0 or not any(busy.values()) or time.time() >= deadline:
            break
        time.sleep(min(2.0, max(0.1, deadline - time.time())))
    for result in results:
        result["running_jobs"] = busy[result["instance"]]
    finished = not any(busy.values())
    code = EXIT_STILL_RUNNING if args.wait > 0 and not finished else 0
    return {"drained": True, "idle": finished, "instances": results}, code


def resume(host, _args):
    results, ok = [], True
    for instance in host.instances:
        before = host.consumed(instance)
        replies = dict((queue, host.control(instance, "add_consumer", queue)) for queue in sorted(instance["queues"]))
        wanted = sorted(instance["queues"])
        consuming = settle(host, instance, lambda queues, wanted=wanted: queues == wanted, "add_consumer", replies)
        serving = consuming == wanted
        ok = ok and serving
        results.append({"instance": instance["name"], "replies": replies, "consuming": consuming,
                        "serving": serving, "changed": before != consuming})
    return {"resumed": ok, "instances": results}, 0 if ok else 1


def health(host, args):
    deadline = time.time() + args.wait
    while True:
        results = []
        for instance in host.instances:
            answers = host.ping(instance)
            consuming = host.consumed(instance) if answers else None
            results.append({"instance": instance["name"], "node": host.node(instance), "answers": answers,
                            "queues": sorted(instance["queues"]), "consuming": consuming,
                            "healthy": answers and consuming == sorted(instance["queues"])})
        healthy = all(result["healthy"] for result in results)
        if healthy or time.time() >= deadline:
            return {"healthy": healthy, "instances": results}, 0 if healthy else 1
        time.sleep(1.0)


COMMANDS = {"status": status, "drain": drain, "resume": resume, "health": health}


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="saltant-worker-ctl", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--instance", action="append", default=[], help="an instance (default: all of the host's)")
    parser.add_argument("--wait", type=float, default=0.0,
                        help="drain: seconds to wait for running jobs; health: seconds to retry")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds each node has to reply")
    parser.add_argument("--facts", default=FACTS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    host = Host(load_facts(args.facts), load_app(), args.instance, args.timeout)
    report, code = COMMANDS[args.command](host, args)
    print(json.dumps(report, sort_keys=True))
    return code


if __name__ == "__main__":
    sys.exit(main())
