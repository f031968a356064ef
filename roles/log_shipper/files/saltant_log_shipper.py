#!/usr/bin/env python3
"""Ship saltant job logs to S3 with s3cmd, at a cost that does not grow with history.

A file ``LOGS/{uuid}/name`` becomes the object ``[PREFIX/]{uuid}/name``, as
with upstream's ``while true; do s3cmd sync logs/ s3://bucket/; sleep 5;
done``, and a file that grows is uploaded again. Unlike that loop, a cycle
does not list the bucket or walk every job directory ever written:

- At start, and every ``full_interval`` seconds, a *reconcile* runs
  upstream's command once (``s3cmd sync LOGS/ s3://bucket/prefix/``): the
  safety net for anything the cheap cycles could miss.
- Every ``interval`` seconds, a *cycle* looks at the logs directory's own
  modification time (a new job directory changes it) and at the job
  directories that are *open*: new ones, and those whose files changed in
  the last ``settle`` seconds. For each, it compares the files' sizes and
  modification times with what it last shipped and uploads only the files
  that changed (``s3cmd put``, no listing). An idle cycle makes no S3
  request at all.
- Nothing is marked shipped before s3cmd says it succeeded. When S3 fails,
  the error is logged and the cycle is retried with exponential backoff
  (up to ``max_backoff`` seconds); everything written meanwhile is shipped
  once S3 answers again.
- SIGTERM/SIGINT: the running cycle is finished, then one final cycle ships
  what is left, then the program exits.
- Optional retention: during a reconcile, job directories that are shipped,
  unchanged and older than ``retention_days`` are deleted. Off by default.

The s3cmd configuration (with the access keys) stays in its file; no key is
ever on a command line or written to the log.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

LOG = logging.getLogger("saltant-log-shipper")

#: (size, modification time in ns) of each file of a job directory.
Signature = dict[str, tuple[int, int]]


@dataclass
class Settings:
    logs_dir: str
    bucket: str
    prefix: str = ""
    s3cmd: str = "s3cmd"
    s3cmd_config: str = ""
    interval: float = 5.0
    full_interval: float = 3600.0
    settle: float = 3600.0
    max_backoff: float = 300.0
    retention_days: int = 0
    command_timeout: float = 600.0
    create_bucket: bool = False

    @property
    def destination(self) -> str:
        prefix = self.prefix.strip("/")
        return f"s3://{self.bucket}/{prefix + '/' if prefix else ''}"


class S3Error(Exception):
    """s3cmd failed; the message says how."""


@dataclass
class JobDir:
    shipped: Signature = field(default_factory=dict)
    changed_at: float = 0.0


def scan(path: str) -> Signature:
    """Return the signature of the regular files directly in ``path``."""
    signature: Signature = {}
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return signature
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                signature[entry.name] = (info.st_size, info.st_mtime_ns)
        except FileNotFoundError:
            continue
    return signature


class S3cmd:
    """Runs s3cmd with the configuration file; raises S3Error on failure."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.calls = 0

    def base(self) -> list[str]:
        argv = [self.settings.s3cmd]
        if self.settings.s3cmd_config:
            argv += ["--config", self.settings.s3cmd_config]
        return argv + ["--no-progress", "--stats"]

    def run(self, args: list[str]) -> str:
        argv = self.base() + args
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.settings.command_timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise S3Error(f"s3cmd {args[0]} timed out after {self.settings.command_timeout} s") from exc
        except OSError as exc:
            raise S3Error(f"cannot run {self.settings.s3cmd}: {exc}") from exc
        self.calls += 1
        if result.returncode != 0:
            output = (result.stderr.strip() or result.stdout.strip()).splitlines()
            tail = " | ".join(output[-3:]) if output else "no output"
            raise S3Error(f"s3cmd {args[0]} exited {result.returncode}: {tail}")
        return result.stdout

    def put(self, directory: str, names: list[str], destination: str) -> None:
        self.run(["put"] + [os.path.join(directory, name) for name in sorted(names)] + [destination])

    def sync(self, source: str, destination: str) -> None:
        self.run(["sync", source, destination])


class Shipper:
    def __init__(self, settings: Settings, s3: S3cmd | None = None, clock=time.time) -> None:
        self.settings = settings
        self.s3 = s3 or S3cmd(settings)
        self.clock = clock
        self.open: dict[str, JobDir] = {}
        self.known: set[str] = set()
        self.root_mtime: int | None = None
        self.last_reconcile: float | None = None
        self.stats = {"cycles": 0, "uploads": 0, "files": 0, "reconciles": 0, "errors": 0}

    # --- the two kinds of cycles ---------------------------------------------

    def due_for_reconcile(self) -> bool:
        return self.last_reconcile is None or self.clock() - self.last_reconcile >= self.settings.full_interval

    def reconcile(self) -> None:
        """Upstream's command once, then start tracking from a clean slate."""
        started = self.clock()
        root = self.settings.logs_dir.rstrip("/") + "/"
        root_mtime = os.stat(self.settings.logs_dir).st_mtime_ns
        names = self.list_job_dirs()
        signatures = {name: scan(os.path.join(self.settings.logs_dir, name)) for name in names}
        self.s3.sync(root, self.settings.destination)
        # What the sync saw (or newer) is shipped; a file that changed during
        # the sync has a newer signature than recorded and is shipped again.
        self.known = set(names)
        self.root_mtime = root_mtime
        recent = started - self.settings.settle
        self.open = {}
        for name, signature in signatures.items():
            newest = max((mtime for _size, mtime in signature.values()), default=0) / 1e9
            if newest >= recent:
                self.open[name] = JobDir(shipped=signature, changed_at=newest)
        self.last_reconcile = started
        self.stats["reconciles"] += 1
        LOG.info(
            "reconciled %d job directories with %s in %.1f s; %d open",
            len(names), self.settings.destination, self.clock() - started, len(self.open),
        )
        self.apply_retention(signatures)

    def cycle(self) -> int:
        """Ship what changed in the open job directories; return files uploaded."""
        self.stats["cycles"] += 1
        self.discover()
        now = self.clock()
        uploaded = 0
        for name in sorted(self.open):
            job = self.open[name]
            current = scan(os.path.join(self.settings.logs_dir, name))
            changed = [f for f, sig in current.items() if job.shipped.get(f) != sig]
            if changed:
                self.s3.put(os.path.join(self.settings.logs_dir, name), changed, self.settings.destination + name + "/")
                job.shipped = {**job.shipped, **{f: current[f] for f in changed}}
                job.changed_at = now
                uploaded += len(changed)
                self.stats["uploads"] += 1
                self.stats["files"] += len(changed)
                LOG.info("shipped %s: %s", name, ", ".join(sorted(changed)))
            elif now - job.changed_at >= self.settings.settle:
                del self.open[name]
        return uploaded

    def discover(self) -> None:
        """Open job directories created since the last look (cheap when none)."""
        try:
            root_mtime = os.stat(self.settings.logs_dir).st_mtime_ns
        except FileNotFoundError:
            return
        if root_mtime == self.root_mtime:
            return
        names = self.list_job_dirs()
        for name in names:
            if name not in self.known:
                self.open.setdefault(name, JobDir(changed_at=self.clock()))
        self.known = set(names)
        self.root_mtime = root_mtime

    def list_job_dirs(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.settings.logs_dir) if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []

    # --- retention -----------------------------------------------------------

    def apply_retention(self, signatures: dict[str, Signature]) -> None:
        """Delete shipped job directories older than retention_days (reconcile only)."""
        days = self.settings.retention_days
        if days <= 0:
            return
        limit = self.clock() - days * 86400
        for name, signature in signatures.items():
            path = os.path.join(self.settings.logs_dir, name)
            newest = max((mtime for _size, mtime in signature.values()), default=0) / 1e9
            # Only what the successful sync just shipped, unchanged since.
            if name in self.open or newest >= limit or scan(path) != signature:
                continue
            shutil.rmtree(path, ignore_errors=True)
            self.known.discard(name)
            LOG.info("deleted %s: shipped and older than %d days", name, days)

    # --- the loop ------------------------------------------------------------

    def step(self) -> None:
        try:
            if self.due_for_reconcile():
                self.reconcile()
            else:
                self.cycle()
        except S3Error as exc:
            if self.settings.create_bucket and "NoSuchBucket" in str(exc):
                LOG.warning("bucket %s does not exist: creating it", self.settings.bucket)
                self.s3.run(["mb", f"s3://{self.settings.bucket}"])
            raise


class StopFlag:
    def __init__(self) -> None:
        self.stopping = False

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.handle)

    def handle(self, signum, _frame) -> None:
        LOG.info("received %s: finishing the current cycle, then a final one", signal.Signals(signum).name)
        self.stopping = True

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def run_forever(shipper: Shipper, stop: StopFlag) -> int:
    failures = 0
    while not stop.stopping:
        try:
            shipper.step()
            failures = 0
            delay = shipper.settings.interval
        except S3Error as exc:
            failures += 1
            shipper.stats["errors"] += 1
            delay = min(shipper.settings.max_backoff, shipper.settings.interval * 2 ** min(failures - 1, 16))
            LOG.error("S3 error (%d in a row): %s; nothing is lost, retrying in %.0f s", failures, exc, delay)
        stop.sleep(delay)
    return final_cycle(shipper)


def final_cycle(shipper: Shipper) -> int:
    """Ship what is left before exiting; exit status 0 only if it all went."""
    try:
        if shipper.last_reconcile is None:
            shipper.reconcile()
        else:
            shipper.cycle()
    except S3Error as exc:
        LOG.error("final cycle failed: %s; the next start ships it (a reconcile runs first)", exc)
        return 1
    LOG.info("final cycle done: %s", json.dumps(shipper.stats, sort_keys=True))
    return 0


def parse_args(argv: list[str]) -> tuple[Settings, bool]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="JSON file with the settings")
    parser.add_argument("--once", action="store_true", help="run one step (reconcile if due, else a cycle) and exit")
    args = parser.parse_args(argv)
    with open(args.config, encoding="utf-8") as handle:
        values = json.load(handle)
    return Settings(**values), args.once


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    settings, once = parse_args(sys.argv[1:] if argv is None else argv)
    shipper = Shipper(settings)
    LOG.info(
        "shipping %s to %s every %s s (reconcile every %s s)",
        settings.logs_dir, settings.destination, settings.interval, settings.full_interval,
    )
    if once:
        try:
            shipper.step()
        except S3Error as exc:
            LOG.error("%s", exc)
            return 1
        return 0
    stop = StopFlag()
    stop.install()
    return run_forever(shipper, stop)


if __name__ == "__main__":
    sys.exit(main())
