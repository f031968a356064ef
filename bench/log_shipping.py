#!/usr/bin/env python3
"""Benchmark: one cycle of upstream's log loop against one cycle of ours.

For each size N (default 1,000 and 10,000), a logs directory with N job
directories of two files each, all already in the bucket of a real S3 API
(moto server, in memory, on this machine), then side by side in one run:

- upstream's cycle: ``s3cmd sync logs/ s3://bucket/`` (the loop in saltant's
  manual, without its sleep);
- our cycle: one ``Shipper.cycle()`` of roles/log_shipper's program, after
  its start-up reconcile (which costs what one upstream cycle costs, once);

each for an idle cycle (nothing new) and for a cycle after one new job. It
measures wall time and the S3 requests the server answered (its access log).
Results are printed and written to bench/results/log-shipping.{md,json}.

    make bench            # or: .venv/bin/python bench/log_shipping.py [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "roles" / "log_shipper" / "files"))

from saltant_log_shipper import Settings, Shipper  # noqa: E402

from bench.results_file import write_results  # noqa: E402
from testbed.s3.server import S3Server  # noqa: E402

BUCKET = "saltant-logs"
RESULTS = ROOT / "bench" / "results"


def job_uuid(index: int) -> str:
    return f"00000000-0000-4000-8000-{index:012d}"


def write_job(logs: Path, uuid: str) -> list[tuple[str, bytes]]:
    job = logs / uuid
    job.mkdir()
    files = [(f"{uuid}/{uuid}-stdout.txt", f"job {uuid} says hello\n".encode()),
             (f"{uuid}/{uuid}-stderr.txt", b"")]
    for key, body in files:
        (logs / key).write_bytes(body)
    return files


def populate(server: S3Server, logs: Path, count: int) -> None:
    """N shipped job directories of past days: local files, and the same objects in S3."""
    client = server.client()
    objects = []
    past = time.time() - 2 * 86400
    for index in range(count):
        objects += write_job(logs, job_uuid(index))
        for path in (logs / job_uuid(index)).iterdir():
            os.utime(path, (past, past))
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda item: client.put_object(Bucket=BUCKET, Key=item[0], Body=item[1]), objects))


def measure(server: S3Server, action) -> dict:
    before = server.requests()
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    time.sleep(0.3)  # let the server write its last log lines
    return {"seconds": round(seconds, 6), "requests": server.requests() - before}


def upstream_cycle(server: S3Server, logs: Path) -> None:
    subprocess.run([server.s3cmd, "--config", str(server.config), "--no-progress", "sync",
                    f"{logs}/", f"s3://{BUCKET}/"], check=True, capture_output=True)


def run_size(count: int, workdir: Path) -> dict:
    server = S3Server(workdir).start()
    try:
        server.make_bucket(BUCKET)
        logs = workdir / "logs"
        logs.mkdir()
        started = time.perf_counter()
        populate(server, logs, count)
        setup = time.perf_counter() - started
        shipper = Shipper(Settings(logs_dir=str(logs), bucket=BUCKET, s3cmd=server.s3cmd,
                                   s3cmd_config=str(server.config)))
        reconcile = measure(server, shipper.reconcile)
        ours_idle = measure(server, shipper.cycle)
        write_job(logs, job_uuid(count))
        ours_new = measure(server, shipper.cycle)
        upstream_idle = measure(server, lambda: upstream_cycle(server, logs))
        write_job(logs, job_uuid(count + 1))
        upstream_new = measure(server, lambda: upstream_cycle(server, logs))
        objects = len(server.objects(BUCKET)) if count <= 2000 else None
        return {
            "job_dirs": count, "setup_seconds": round(setup, 1), "our_reconcile": reconcile,
            "upstream_idle": upstream_idle, "ours_idle": ours_idle,
            "upstream_new_job": upstream_new, "ours_new_job": ours_new,
            "objects_checked": objects,
        }
    finally:
        server.stop()


def ratio(upstream: float, ours: float) -> str:
    if ours == 0:
        return "inf" if upstream else "1"
    return f"{upstream / ours:.0f}x"


def report(results: list[dict]) -> str:
    lines = [
        "| job dirs | cycle | upstream ms | ours ms | time ratio | upstream requests | our requests | request ratio |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        for kind, label in (("idle", "idle"), ("new_job", "one new job")):
            up, ours = result[f"upstream_{kind}"], result[f"ours_{kind}"]
            lines.append(
                f"| {result['job_dirs']:,} | {label} | {1000 * up['seconds']:.1f} | {1000 * ours['seconds']:.2f} | "
                f"{ratio(up['seconds'], ours['seconds'])} | {up['requests']} | {ours['requests']} | "
                f"{ratio(up['requests'], ours['requests'])} |"
            )
    lines.append("")
    for result in results:
        rec = result["our_reconcile"]
        lines.append(f"- {result['job_dirs']:,} dirs: our start-up reconcile (once, and every "
                     f"full_interval) {rec['seconds']:.3f} s, {rec['requests']} requests.")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated job directory counts")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    results = []
    for count in sizes:
        workdir = Path(tempfile.mkdtemp(prefix=f"log-shipping-{count}-"))
        try:
            print(f"{count:,} job directories ...", flush=True)
            results.append(run_size(count, workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    write_results(args.output, "log-shipping", "Log shipping benchmark", report(results), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
