#!/usr/bin/env python3
"""Ship saltant job logs to S3 with s3cmd, at a cost that does not grow with history.

A file ``LOGS/{uuid}/name`` becomes the object ``[PREFIX/]{uuid}/name``, as
with upstream's ``while true; do s3cmd sync logs/ s3://bucket/; sleep 5;
done``, and a file that grows is uploaded again. Unlike that loop, a cycle
does not list the bucket or walk every job directory ever written:

- At start, and every ``full_interval`` seconds, a *reconcile* lists the
  bucket once (``s3cmd ls --recursive``), compares every local file's size
  with its object's, and uploads what differs: the safety net for anything
  the cheap cycles could miss.
- Every ``interval`` seconds, a *cycle* looks at the logs directory's own
  modification time (a new job directory changes it) and at the job
  directories that are *open*: new ones, and those whose files changed in
  the last ``settle`` seconds. It uploads the files that changed since they
  were last shipped (``s3cmd put``, no listing). An idle cycle makes no S3
  request at all.
- Growing files: a file of at most ``small_file`` bytes is uploaded every
  cycle it changed. A larger one is uploaded again when it has grown to
  ``growth`` times the size last shipped, or when it stopped changing for
  one interval (its job ended or paused). A log that grows steadily to S
  bytes thus costs less than (growth / (growth - 1) + 1) * S bytes of
  uploads in all (3 S with the default 2), and its final version is in S3
  within two intervals of its last write. Files of at least
  ``background_file`` bytes upload in the background (``parallel`` at a
  time), so that a slow upload never holds back other jobs' small ones.
- Faults are per file: a job directory or file that cannot be read, that
  vanishes, or whose upload fails is logged once (with its path and the
  reason, again only when the reason changes), retried with its own backoff
  (up to ``max_backoff`` seconds), and never delays other jobs. A missing
  logs directory is waited for. Only when every upload of a cycle fails (S3
  itself is down) does the whole loop back off.
- Nothing is marked shipped before s3cmd says it succeeded.
- SIGTERM/SIGINT: the running cycle is finished, then one final cycle ships
  everything that changed (growing files included) and waits for the
  background uploads, then the program exits.
- Optional retention: during a reconcile, job directories whose every file
  is in S3 with its size, unchanged and older than ``retention_days``, are
  deleted. Off by default.

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

#: (size, modification time in ns) of a file.
Signature = tuple[int, int]

MIB = 1024 * 1024


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
    small_file: int = MIB
    growth: float = 2.0
    background_file: int = 16 * MIB
    parallel: int = 2
    multipart_chunk_mb: int = 15
    # Where the loop tells what it has not shipped yet (the fleet status); '' for nowhere.
    status_file: str = ""

    @property
    def destination(self) -> str:
        prefix = self.prefix.strip("/")
        return f"s3://{self.bucket}/{prefix + '/' if prefix else ''}"


class S3Error(Exception):
    """s3cmd failed; the message says how."""


@dataclass
class FileState:
    shipped: Signature | None = None  # what the last successful upload sent
    seen: Signature | None = None  # what the previous look saw
    failures: int = 0
    retry_at: float = 0.0
    uploading: bool = False


@dataclass
class JobDir:
    files: dict[str, FileState] = field(default_factory=dict)
    changed_at: float = 0.0


@dataclass
class Upload:
    """One file's upload running in the background."""

    job: str
    name: str
    signature: Signature
    process: subprocess.Popen
    started: float


def scan(path: str) -> dict[str, Signature]:
    """The signature of each regular file directly in ``path``.

    Raises OSError (FileNotFoundError, PermissionError...) for the directory
    itself; files that vanish while it is read are left out.
    """
    signature: dict[str, Signature] = {}
    with os.scandir(path) as entries:
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    signature[entry.name] = (info.st_size, info.st_mtime_ns)
            except OSError:
                continue
    return signature


def readable(path: str) -> str:
    """'' if the file can be opened for reading, else why not."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(descriptor)
    return ""


class Faults:
    """Log each fault once, and again only when its reason changes."""

    def __init__(self) -> None:
        self.current: dict[str, str] = {}

    def report(self, key: str, reason: str) -> None:
        if self.current.get(key) != reason:
            self.current[key] = reason
            LOG.warning("%s: %s", key, reason)

    def clear(self, key: str) -> None:
        if self.current.pop(key, None) is not None:
            LOG.info("%s: fine again", key)

    def forget(self, prefix: str) -> None:
        for key in [k for k in self.current if k == prefix or k.startswith(prefix + "/")]:
            del self.current[key]


class S3cmd:
    """Runs s3cmd with the configuration file; raises S3Error on failure."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.calls = 0

    def base(self) -> list[str]:
        argv = [self.settings.s3cmd]
        if self.settings.s3cmd_config:
            argv += ["--config", self.settings.s3cmd_config]
        return argv + ["--no-progress", f"--multipart-chunk-size-mb={self.settings.multipart_chunk_mb}"]

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
            raise S3Error(f"s3cmd {args[0]} exited {result.returncode}: {tail(result.stderr or result.stdout)}")
        return result.stdout

    def put(self, directory: str, names: list[str], destination: str) -> None:
        self.run(["put"] + [os.path.join(directory, name) for name in sorted(names)] + [destination])

    def start_put(self, path: str, destination: str) -> subprocess.Popen:
        self.calls += 1
        return subprocess.Popen(self.base() + ["put", path, destination], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)

    def probe(self, destination: str) -> None:
        """One cheap request (a listing that matches nothing): raises S3Error if S3 does not answer."""
        self.run(["ls", destination + ".saltant-log-shipper-probe"])

    def sizes(self, destination: str) -> dict[str, int]:
        """Every object under ``destination``: its key relative to it, and its size."""
        found: dict[str, int] = {}
        for line in self.run(["ls", "--recursive", destination]).splitlines():
            # "2026-11-30 01:23       12  s3://bucket/prefix/uuid/name"
            parts = line.split(None, 3)
            if len(parts) == 4 and parts[2].isdigit() and parts[3].startswith(destination):
                found[parts[3][len(destination):]] = int(parts[2])
        return found


def tail(output: str) -> str:
    lines = output.strip().splitlines()
    return " | ".join(lines[-3:]) if lines else "no output"


class Shipper:
    def __init__(self, settings: Settings, s3: S3cmd | None = None, clock=time.time) -> None:
        self.settings = settings
        self.s3 = s3 or S3cmd(settings)
        self.clock = clock
        self.open: dict[str, JobDir] = {}
        self.known: set[str] = set()
        self.root_mtime: int | None = None
        self.last_reconcile: float | None = None
        self.background: list[Upload] = []
        self.faults = Faults()
        self.stats = {"cycles": 0, "uploads": 0, "files": 0, "bytes": 0, "reconciles": 0, "errors": 0}

    # --- the two kinds of cycles ---------------------------------------------

    def due_for_reconcile(self) -> bool:
        return self.last_reconcile is None or self.clock() - self.last_reconcile >= self.settings.full_interval

    def logs_dir_mtime(self) -> int | None:
        """The logs directory's modification time, or None (said once) while it cannot be read."""
        try:
            return os.stat(self.settings.logs_dir).st_mtime_ns
        except OSError as exc:
            self.logs_dir_fault(exc)
            return None

    def logs_dir_fault(self, exc: OSError) -> None:
        self.faults.report(self.settings.logs_dir, f"cannot read the logs directory ({exc.strerror}); waiting")

    def list_job_dirs(self) -> list[str] | None:
        """The job directories, or None (said once) while the logs directory cannot be read."""
        try:
            with os.scandir(self.settings.logs_dir) as entries:
                names = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
        except OSError as exc:
            self.logs_dir_fault(exc)
            return None
        self.faults.clear(self.settings.logs_dir)
        return names

    def reconcile(self) -> int:
        """List the bucket once and ship every file whose object is missing or differs in size."""
        started = self.clock()
        root_mtime = self.logs_dir_mtime()
        names = self.list_job_dirs() if root_mtime is not None else None
        if names is None:
            return 0
        remote = self.s3.sizes(self.settings.destination)
        recent = started - self.settings.settle
        self.open = {}
        jobs: dict[str, JobDir] = {}
        for name in names:
            current = self.look(name)
            if current is None:
                continue
            job = jobs[name] = JobDir(changed_at=newest(current))
            for file, signature in current.items():
                matched = remote.get(f"{name}/{file}") == signature[0]
                job.files[file] = FileState(shipped=signature if matched else None, seen=signature)
            if job.changed_at >= recent or not all(state.shipped for state in job.files.values()):
                self.open[name] = job
        self.known = set(names)
        self.root_mtime = root_mtime
        self.last_reconcile = started
        self.stats["reconciles"] += 1
        try:
            uploaded = self.ship_open(final=False)
        finally:
            # Whatever the uploads did: it only deletes what is in S3 whole.
            self.apply_retention(jobs)
        LOG.info(
            "reconciled %d job directories with %s in %.1f s: %d files uploaded, %d directories open",
            len(names), self.settings.destination, self.clock() - started, uploaded, len(self.open),
        )
        return uploaded

    def cycle(self, final: bool = False) -> int:
        """Ship what changed in the open job directories; return files uploaded."""
        self.stats["cycles"] += 1
        if not self.discover():
            return 0
        return self.ship_open(final)

    def ship_open(self, final: bool) -> int:
        self.poll_background()
        now = self.clock()
        uploaded = 0
        failures: list[tuple[str, str, S3Error]] = []
        for name in sorted(self.open):
            job = self.open[name]
            current = self.look(name)
            if current is None:
                if not os.path.lexists(os.path.join(self.settings.logs_dir, name)):
                    self.drop(name)
                elif now - job.changed_at >= self.settings.settle:
                    del self.open[name]
                continue
            for gone in set(job.files) - set(current):
                del job.files[gone]
            due = self.due(name, job, current, now, final)
            if due:
                job.changed_at = now
            elif now - job.changed_at >= self.settings.settle and not any(
                    s.uploading or s.shipped != current.get(f) for f, s in job.files.items()):
                del self.open[name]
                continue
            small = [f for f in due if current[f][0] < self.settings.background_file]
            for file in (f for f in due if f not in small):
                self.start_background(name, file, current[file], now)
            if not small:
                continue
            # Files that failed before go one by one: one bad file never
            # holds back the others.
            fresh = [f for f in small if not job.files[f].failures]
            batches = [[f] for f in small if job.files[f].failures] + ([fresh] if fresh else [])
            for batch in batches:
                try:
                    self.s3.put(os.path.join(self.settings.logs_dir, name), batch,
                                self.settings.destination + name + "/")
                except S3Error as exc:
                    failures.extend((name, file, exc) for file in batch)
                    continue
                for file in batch:
                    self.shipped(name, file, current[file])
                uploaded += len(batch)
                self.stats["uploads"] += 1
                LOG.info("shipped %s: %s", name, ", ".join(sorted(batch)))
        if failures and uploaded == 0:
            # Every upload failed: S3 itself, or only bad files? One listing
            # that matches nothing tells. If S3 does not answer, the whole
            # loop backs off and every file is tried again once it does.
            self.s3.probe(self.settings.destination)
        for name, file, exc in failures:
            self.failed(name, file, str(exc), now)
        return uploaded

    def due(self, name: str, job: JobDir, current: dict[str, Signature], now: float, final: bool) -> list[str]:
        """The files of a job directory to upload now (see the module's doc)."""
        due = []
        for file, signature in sorted(current.items()):
            state = job.files.setdefault(file, FileState())
            quiet = state.seen == signature
            state.seen = signature
            if state.shipped == signature or state.uploading or (state.retry_at > now and not final):
                continue
            size, shipped = signature[0], state.shipped[0] if state.shipped else None
            if not (final or quiet or shipped is None or size <= self.settings.small_file
                    or size < shipped or size >= self.settings.growth * shipped):
                continue
            path = os.path.join(self.settings.logs_dir, name, file)
            reason = readable(path)
            if reason:
                self.failed(name, file, f"cannot read {path}: {reason}", now)
                continue
            due.append(file)
        return due

    def shipped(self, name: str, file: str, signature: Signature) -> None:
        job = self.open.get(name)
        state = job.files.get(file) if job else None
        if state is not None:
            state.shipped, state.failures, state.retry_at, state.uploading = signature, 0, 0.0, False
        self.faults.clear(f"{name}/{file}")
        self.stats["files"] += 1
        self.stats["bytes"] += signature[0]

    def failed(self, name: str, file: str, reason: str, now: float) -> None:
        self.stats["errors"] += 1
        state = self.open[name].files[file] if name in self.open and file in self.open[name].files else None
        if state is not None:
            state.failures += 1
            state.uploading = False
            state.retry_at = now + self.backoff(state.failures)
        self.faults.report(f"{name}/{file}", f"{reason}; retrying")

    def backoff(self, failures: int) -> float:
        return min(self.settings.max_backoff, self.settings.interval * 2 ** min(failures - 1, 16))

    # --- background uploads of large files -------------------------------------

    def start_background(self, name: str, file: str, signature: Signature, now: float) -> None:
        if len(self.background) >= self.settings.parallel:
            return
        path = os.path.join(self.settings.logs_dir, name, file)
        try:
            process = self.s3.start_put(path, self.settings.destination + name + "/")
        except OSError as exc:
            self.failed(name, file, f"cannot run {self.settings.s3cmd}: {exc}", now)
            return
        self.open[name].files[file].uploading = True
        self.background.append(Upload(name, file, signature, process, now))
        LOG.info("uploading %s/%s (%d bytes) in the background", name, file, signature[0])

    def poll_background(self, wait: float = 0.0) -> None:
        deadline = time.monotonic() + wait
        while self.background:
            for upload in list(self.background):
                code = upload.process.poll()
                if code is None and self.clock() - upload.started > self.settings.command_timeout:
                    upload.process.kill()
                    code = upload.process.wait()
                    reason = f"s3cmd put timed out after {self.settings.command_timeout} s"
                elif code is not None:
                    output = upload.process.stderr.read() if upload.process.stderr else ""
                    reason = f"s3cmd put exited {code}: {tail(output)}"
                else:
                    continue
                self.background.remove(upload)
                if upload.process.stderr:
                    upload.process.stderr.close()
                if code == 0:
                    self.shipped(upload.job, upload.name, upload.signature)
                    self.stats["uploads"] += 1
                    LOG.info("shipped %s: %s", upload.job, upload.name)
                else:
                    self.failed(upload.job, upload.name, reason, self.clock())
            if not self.background or time.monotonic() >= deadline:
                return
            time.sleep(0.2)

    # --- job directories ----------------------------------------------------------

    def look(self, name: str) -> dict[str, Signature] | None:
        """The files of a job directory, or None (said once) if it cannot be read."""
        path = os.path.join(self.settings.logs_dir, name)
        try:
            current = scan(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.faults.report(name, f"cannot read the job directory {path} ({exc.strerror}); retrying")
            return None
        self.faults.clear(name)
        return current

    def drop(self, name: str) -> None:
        self.open.pop(name, None)
        self.known.discard(name)
        self.faults.forget(name)

    def discover(self) -> bool:
        """Open job directories created since the last look: one stat when there are none.

        False while the logs directory cannot be read (it is waited for;
        what is known of it is kept)."""
        root_mtime = self.logs_dir_mtime()
        if root_mtime is None:
            return False
        if root_mtime == self.root_mtime:
            return True
        names = self.list_job_dirs()
        if names is None:
            return False
        for name in names:
            if name not in self.known:
                self.open.setdefault(name, JobDir(changed_at=self.clock()))
        self.known = set(names)
        self.root_mtime = root_mtime
        return True

    # --- retention -----------------------------------------------------------

    def apply_retention(self, jobs: dict[str, JobDir]) -> None:
        """Delete job directories that are in S3 whole, unchanged and older than retention_days."""
        days = self.settings.retention_days
        if days <= 0:
            return
        limit = self.clock() - days * 86400
        for name, job in jobs.items():
            path = os.path.join(self.settings.logs_dir, name)
            shipped = {file: state.shipped for file, state in job.files.items()}
            if (any(s is None for s in shipped.values()) or newest(shipped) >= limit  # type: ignore[arg-type]
                    or self.look(name) != shipped):
                continue
            try:
                shutil.rmtree(path)
            except OSError as exc:
                self.faults.report(name, f"cannot delete the shipped job directory: {exc}")
                continue
            self.drop(name)
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


def pending(shipper: Shipper) -> list[str]:
    """Files seen in the open job directories and not shipped as seen."""
    return [f"{n}/{f}" for n, job in shipper.open.items() for f, s in job.files.items()
            if s.shipped != s.seen and s.seen is not None]


class StatusFile:
    """What is left to ship, written (atomically) when it changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.last: dict | None = None

    def update(self, shipper: Shipper, failing: bool) -> None:
        if not self.path:
            return
        status = {
            "pending_files": len(pending(shipper)),
            "open_job_dirs": len(shipper.open),
            "faults": len(shipper.faults.current),
            "s3_failing": failing,
            "reconciled": shipper.last_reconcile is not None,
        }
        if status == self.last:
            return
        temporary = self.path + ".tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as handle:
                json.dump(status, handle, sort_keys=True)
            os.replace(temporary, self.path)
        except OSError as exc:
            shipper.faults.report("status file", f"cannot write {self.path}: {exc}")
            return
        self.last = status


def newest(signature: dict[str, Signature]) -> float:
    return max((mtime for _size, mtime in signature.values()), default=0) / 1e9


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
    status = StatusFile(shipper.settings.status_file)
    while not stop.stopping:
        try:
            shipper.step()
            failures = 0
            delay = shipper.settings.interval
        except S3Error as exc:
            failures += 1
            shipper.stats["errors"] += 1
            delay = shipper.backoff(failures)
            LOG.error("S3 error (%d in a row): %s; nothing is lost, retrying in %.0f s", failures, exc, delay)
        except Exception:  # noqa: BLE001 - job data must never stop the loop
            failures += 1
            delay = shipper.backoff(failures)
            LOG.exception("unexpected error (%d in a row); retrying in %.0f s", failures, delay)
        status.update(shipper, failing=failures > 0)
        stop.sleep(delay)
    return final_cycle(shipper)


def final_cycle(shipper: Shipper) -> int:
    """Ship everything that changed before exiting; exit status 0 only if it all went."""
    try:
        if shipper.last_reconcile is None:
            shipper.reconcile()
        shipper.cycle(final=True)
        shipper.poll_background(wait=shipper.settings.command_timeout)
    except S3Error as exc:
        LOG.error("final cycle failed: %s; the next start ships it (a reconcile runs first)", exc)
        return 1
    left = pending(shipper)
    if left:
        LOG.error("final cycle left %d files unshipped (%s); the next start ships them",
                  len(left), ", ".join(left[:5]))
        return 1
    LOG.info("final cycle done: %s", json.dumps(shipper.stats, sort_keys=True))
    return 0


def parse_args(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="JSON file with the settings")
    args = parser.parse_args(argv)
    with open(args.config, encoding="utf-8") as handle:
        return Settings(**json.load(handle))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    settings = parse_args(sys.argv[1:] if argv is None else argv)
    shipper = Shipper(settings)
    LOG.info(
        "shipping %s to %s every %s s (reconcile every %s s)",
        settings.logs_dir, settings.destination, settings.interval, settings.full_interval,
    )
    stop = StopFlag()
    stop.install()
    return run_forever(shipper, stop)


if __name__ == "__main__":
    sys.exit(main())
