#!/usr/bin/env python3
"""Benchmark: a job log that grows for minutes, shipped by upstream's loop and by ours.

Side by side in one run, on one real S3 API (moto server on this machine),
each shipper to a bucket of its own:

- upstream's loop: ``while true; do s3cmd sync logs/ s3://upstream/; sleep 5; done``;
- ours: roles/log_shipper's program, as its unit runs it (interval 5 s).

One job's stdout grows to --size-mib MiB over --minutes minutes, a line
every 10 ms; halfway, a small job writes its two-line log. Measured for
each shipper: the bytes it uploaded and the S3 requests it made (from the
server's access log, by bucket), how long after the big log's last line its
final version was in S3, and how long the small job's log took.
Results are printed and written to bench/results/growing-log.{md,json}.

    make bench   # or: .venv/bin/python bench/growing_log.py [--size-mib 100 --minutes 10]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_file import write_results  # noqa: E402
from testbed.s3.server import S3Server  # noqa: E402

PROGRAM = ROOT / "roles" / "log_shipper" / "files" / "saltant_log_shipper.py"
RESULTS = ROOT / "bench" / "results"
BIG = "00000000-0000-4000-8000-00000000b16b"
SMALL = "00000000-0000-4000-8000-0000000005a1"
INTERVAL = 5
LINE_EVERY = 0.01


def write_big_log(logs: Path, size: int, seconds: float, done: threading.Event) -> None:
    """Append lines every 10 ms until the file has ``size`` bytes after ``seconds``."""
    job = logs / BIG
    job.mkdir()
    lines = int(seconds / LINE_EVERY)
    line = (b"x" * max(1, size // lines - 1)) + b"\n"
    started = time.monotonic()
    with open(job / f"{BIG}-stdout.txt", "ab", buffering=0) as handle:
        for number in range(lines):
            handle.write(line)
            delay = started + (number + 1) * LINE_EVERY - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    (job / f"{BIG}-stderr.txt").write_bytes(b"")
    done.set()


def upstream_loop(server: S3Server, logs: Path, stop: threading.Event, uploaded: list[int]) -> None:
    """Upstream's loop; adds up the bytes s3cmd says each sync uploaded."""
    while not stop.is_set():
        result = subprocess.run(
            [server.s3cmd, "--config", str(server.config), "--no-progress", "--stats", "sync",
             f"{logs}/", "s3://upstream/"], capture_output=True, text=True, check=False)
        found = re.search(r"Done\. Uploaded (\d+) bytes", result.stdout)
        if found:
            uploaded.append(int(found.group(1)))
        stop.wait(INTERVAL)


def size_in(server: S3Server, bucket: str, key: str) -> int:
    client = server.client()
    try:
        return client.head_object(Bucket=bucket, Key=key)["ContentLength"]
    except Exception:  # noqa: BLE001 - not there yet
        return -1


def requests_by_bucket(server: S3Server) -> dict[str, int]:
    counts = {"ours": 0, "upstream": 0}
    for line in server.log_path.read_text(errors="replace").splitlines():
        for bucket in counts:
            if f" /{bucket}/" in line or f" /{bucket}?" in line or f" /{bucket} " in line:
                counts[bucket] += 1
    return counts


def wait_for_size(server: S3Server, bucket: str, key: str, size: int, since: float, limit: float) -> float | None:
    while time.monotonic() - since < limit:
        if size_in(server, bucket, key) == size:
            return time.monotonic() - since
        time.sleep(0.2)
    return None


def run(size_mib: int, minutes: float, workdir: Path) -> dict:
    server = S3Server(workdir).start()
    for bucket in ("ours", "upstream"):
        server.make_bucket(bucket)
    logs = workdir / "logs"
    logs.mkdir()
    config = workdir / "shipper.json"
    config.write_text(json.dumps({"logs_dir": str(logs), "bucket": "ours", "s3cmd": server.s3cmd,
                                  "s3cmd_config": str(server.config), "interval": INTERVAL}))
    stderr = open(workdir / "ours.log", "w")  # noqa: SIM115 - the child writes it
    ours = subprocess.Popen([sys.executable, str(PROGRAM), "--config", str(config)], stderr=stderr)
    stop, done, upstream_bytes = threading.Event(), threading.Event(), []
    upstream = threading.Thread(target=upstream_loop, args=(server, logs, stop, upstream_bytes))
    upstream.start()
    size, seconds = size_mib * 1024 * 1024, minutes * 60
    writer = threading.Thread(target=write_big_log, args=(logs, size, seconds, done))
    started = time.monotonic()
    writer.start()
    try:
        # Halfway, a small job: how long until each bucket has it?
        time.sleep(seconds / 2)
        small = logs / SMALL
        small.mkdir()
        (small / f"{SMALL}-stdout.txt").write_bytes(b"small job\n")
        (small / f"{SMALL}-stderr.txt").write_bytes(b"done\n")
        small_at = time.monotonic()
        small_latency = {}
        for bucket in ("ours", "upstream"):
            small_latency[bucket] = wait_for_size(server, bucket, f"{SMALL}/{SMALL}-stdout.txt", 10, small_at, 300)
        writer.join()
        ended = time.monotonic()
        final = (logs / BIG / f"{BIG}-stdout.txt").stat().st_size
        key = f"{BIG}/{BIG}-stdout.txt"
        final_latency = {bucket: wait_for_size(server, bucket, key, final, ended, 600)
                         for bucket in ("ours", "upstream")}
    finally:
        stop.set()
        upstream.join()
        ours.send_signal(signal.SIGTERM)
        ours.wait(timeout=600)
        stderr.close()
    stats = json.loads(re.findall(r"final cycle done: (\{.*\})", (workdir / "ours.log").read_text())[-1])
    requests = requests_by_bucket(server)
    server.stop()
    return {
        "size_mib": size_mib, "minutes": minutes, "final_bytes": final, "seconds": round(ended - started, 1),
        "ours": {"bytes": stats["bytes"], "requests": requests["ours"], "final_latency": final_latency["ours"],
                 "small_latency": small_latency["ours"]},
        "upstream": {"bytes": sum(upstream_bytes), "requests": requests["upstream"],
                     "final_latency": final_latency["upstream"], "small_latency": small_latency["upstream"]},
    }


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def report(result: dict) -> str:
    final = result["final_bytes"]
    lines = [
        f"A log growing to {result['size_mib']} MiB over {result['minutes']} min (a line every 10 ms), "
        f"and a small job halfway; both shippers at a 5 s interval, side by side.",
        "",
        "| shipper | uploaded | x final size | S3 requests | final version in S3 after | small job in S3 after |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in ("upstream", "ours"):
        row = result[name]
        lines.append(f"| {name} | {row['bytes'] / 2**20:,.0f} MiB | {row['bytes'] / final:.2f} | "
                     f"{row['requests']:,} | {seconds(row['final_latency'])} | {seconds(row['small_latency'])} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="growing-log-"))
    try:
        result = run(args.size_mib, args.minutes, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    write_results(args.output, "growing-log", "Growing log benchmark", report(result), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
