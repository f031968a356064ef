#!/usr/bin/env python3
"""Run every check of saltant-fleet and print one closing line.

    python tests/run.py [--only lint|unit|molecule] [--scenario NAME] [--keep] [--lanes N]

Checks: yamllint, ansible-lint (production profile), ruff and the role
READMEs' variable tables; the pytest unit tests; then, for each Molecule
scenario (every molecule/*/molecule.yml), its steps one by one (create with
prepare, converge, idempotence, verify), the integration tests that run
against the scenario's live hosts (tests/integration/SCENARIO/ and tests/integration/every_scenario/), and
destroy. Every pytest test counts as one check, every other step as one.

Jobs (each scenario, longest first, then unit and lint) run side by side in
--lanes lanes (default 5, SALTANT_FLEET_LANES): they share nothing but the
Docker engine, and the machine's cores are busy most when every scenario
runs at once. With more
than one lane each job's output goes to tests/results/logs/JOB.log, and the
tail of a failing step's log is printed. The timing of every step goes to
tests/results/timings.md and is printed at the end, before the last line,
"N passed, N failed"; the exit code is non-zero when anything failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers.cgroups import containers_cpu_seconds  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "tests" / "results"
LOGS = RESULTS / "logs"
SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))
# Longest first, so that lanes end together (from the timing table of a full run).
EXPECTED_ORDER = ["default", "python2", "singularity", "docker", "fleet"]
STEPS = ["create", "converge", "idempotence", "verify", "integration", "destroy"]
TAIL_LINES = 150


@dataclass
class Tally:
    rows: list[tuple[str, str, str, float]] = field(default_factory=list)
    # CPU seconds per job: its own processes (the controller side), its test hosts.
    cpu: dict[str, list[float]] = field(default_factory=dict)
    # CPU seconds per job and step, here and on the job's hosts.
    step_cpu: dict[tuple[str, str], float] = field(default_factory=dict)
    passed: int = 0
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_cpu(self, job: str, controller: float = 0.0, hosts: float = 0.0) -> None:
        with self.lock:
            spent = self.cpu.setdefault(job, [0.0, 0.0])
            spent[0] += controller
            spent[1] += hosts

    def add(self, job: str, step: str, result: str, seconds: float, passed: int, failed: int) -> None:
        with self.lock:
            self.rows.append((job, step, result, seconds))
            self.passed += passed
            self.failed += failed


class Job:
    """One job's steps, their output (the console, or the job's log file) and their tally."""

    def __init__(self, name: str, tally: Tally, to_log: bool) -> None:
        self.name = name
        self.tally = tally
        self.log_path = LOGS / f"{name}.log"
        self.out: IO[str] | None = None
        if to_log:
            LOGS.mkdir(parents=True, exist_ok=True)
            self.out = self.log_path.open("w")

    def say(self, line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {self.name}: {line}", flush=True)

    def call(self, argv: list[str], env: dict | None) -> tuple[int, float]:
        """Run a command: its exit code and CPU seconds (also counted for the job)."""
        if self.out is not None:
            self.out.write(f"==> {' '.join(argv)}\n")
            self.out.flush()
        process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **(env or {})},
                                   stdout=self.out, stderr=subprocess.STDOUT if self.out else None)
        # wait4: the CPU time of the command and of every process it waited for.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
        self.tally.add_cpu(self.name, controller=cpu)
        return process.returncode, cpu

    def step(self, step: str, argv: list[str], env: dict | None) -> tuple[int, float]:
        """Run a step's command: its exit code and seconds; its CPU seconds
        (the command's and the job's hosts') go to the tally."""
        self.say(f"{step} ...")
        start, hosts = time.monotonic(), hosts_cpu_seconds(self.name)
        code, cpu = self.call(argv, env)
        seconds = time.monotonic() - start
        spent = cpu + max(0.0, hosts_cpu_seconds(self.name) - hosts)
        with self.tally.lock:
            self.tally.step_cpu[(self.name, step)] = self.tally.step_cpu.get((self.name, step), 0.0) + spent
        return code, seconds

    def tail(self) -> None:
        if self.out is None:
            return
        self.out.flush()
        lines = self.log_path.read_text(errors="replace").splitlines()[-TAIL_LINES:]
        print(f"----- last {len(lines)} lines of {self.log_path.relative_to(ROOT)} -----")
        print("\n".join(lines))
        print("-----", flush=True)

    def run(self, step: str, argv: list[str], env: dict | None = None) -> bool:
        code, seconds = self.step(step, argv, env)
        ok = code == 0
        self.tally.add(self.name, step, "ok" if ok else f"FAILED (exit {code})", seconds, int(ok), int(not ok))
        self.say(f"{step} {'ok' if ok else f'FAILED (exit {code})'} in {seconds:.0f} s")
        if not ok:
            self.tail()
        return ok

    def pytest(self, step: str, args: list[str], env: dict | None = None) -> bool:
        """Run pytest; each test case counts. A run that errors before any test counts once."""
        junit = RESULTS / f"{self.name}-{step}.xml".replace(" ", "-").replace("/", "-")
        junit.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *args]
        code, seconds = self.step(step, argv, env)
        passed = failed = 0
        if junit.exists():
            for case in ET.parse(junit).getroot().iter("testcase"):
                if case.find("skipped") is not None:
                    continue
                if case.find("failure") is not None or case.find("error") is not None:
                    failed += 1
                else:
                    passed += 1
        if code not in (0, 5) and failed == 0:
            failed = 1  # collection error, crash: count it
        self.tally.add(self.name, step, f"{passed} passed, {failed} failed", seconds, passed, failed)
        self.say(f"{step}: {passed} passed, {failed} failed in {seconds:.0f} s")
        if failed:
            self.tail()
        return failed == 0


def lint(job: Job) -> None:
    vault = {"ANSIBLE_VAULT_PASSWORD_FILE": str(ROOT / "testbed" / "vault-password")}
    job.run("yamllint", ["yamllint", "--strict", "."])
    job.run("ansible-lint", ["ansible-lint", "--profile", "production"], env=vault)
    job.run("ruff", ["ruff", "check", "."])
    job.run("role docs", [sys.executable, "tools/role_docs.py", "--check"])


def unit(job: Job) -> None:
    job.pytest("worker_src", ["worker_src/tests"])
    job.pytest("test bed and tools", ["tests/unit"])


def test_sequence(name: str) -> list[str]:
    """The scenario's Molecule test sequence (its own, or the shared one)."""
    for path in (ROOT / "molecule" / name / "molecule.yml", ROOT / ".config" / "molecule" / "config.yml"):
        spec = yaml.safe_load(path.read_text()) or {}
        sequence = (spec.get("scenario") or {}).get("test_sequence")
        if sequence:
            return list(sequence)
    return ["create", "converge", "idempotence", "verify"]


def scenario(job: Job, keep: bool) -> None:
    name = job.name
    # What the controller serves to the scenario's test bed (testbed).
    env = {"SALTANT_FLEET_CACHE": str(ROOT / ".cache" / "testbed" / name)}
    # Always: it also resets Molecule's own state of the scenario, which a
    # stopped run can leave saying "created" with no container behind it.
    job.call(["molecule", "destroy", "-s", name], env)
    try:
        # `molecule create` runs prepare too; idempotence when the scenario's
        # test sequence has it.
        for step in ("create", "converge", "idempotence", "verify"):
            if step not in test_sequence(name):
                continue
            if not job.run(step, ["molecule", step, "-s", name], env):
                break
        else:
            # The scenario's own tests, and those every scenario runs.
            tests = [ROOT / "tests" / "integration" / folder for folder in (name, "every_scenario")]
            job.pytest("integration", [str(t) for t in tests if any(t.glob("test_*.py"))],
                       env={**env, "SALTANT_FLEET_SCENARIO": name})
    finally:
        job.tally.add_cpu(name, hosts=hosts_cpu_seconds(name))
        if not keep:
            job.run("destroy", ["molecule", "destroy", "-s", name], env)


def hosts_cpu_seconds(name: str) -> float:
    """CPU seconds that the scenario's test hosts (containers) have used so far, from their cgroups."""
    return containers_cpu_seconds(f"network=saltant-fleet-{name}")


def cpu_seconds() -> tuple[float, float]:
    """The machine's busy and idle CPU seconds so far (Linux /proc/stat; zeros elsewhere)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # without guest time, which user time counts already
    return busy / tick, idle / tick


def timing_table(tally: Tally, wall: float, cpu: tuple[float, float] = (0.0, 0.0)) -> str:
    """Markdown: one row per job, one column per step, with the job's total."""
    jobs: dict[str, dict[str, float]] = {}
    failed: set[str] = set()
    for job, step, result, seconds in tally.rows:
        jobs.setdefault(job, {})[step] = jobs.get(job, {}).get(step, 0.0) + seconds
        if "FAILED" in result or (" failed" in result and not result.endswith(" 0 failed")):
            failed.add(job)
    lines = [
        "| job | " + " | ".join(STEPS) + " | other | total | CPU-s here | CPU-s hosts |",
        "| --- | " + " | ".join("---:" for _ in STEPS) + " | ---: | ---: | ---: | ---: |",
    ]
    busy = 0.0
    for job, steps in jobs.items():
        other = sum(s for step, s in steps.items() if step not in STEPS)
        total = sum(steps.values())
        busy += total
        cells = [f"{steps[s]:.0f}" if s in steps else "" for s in STEPS]
        mark = " (failed)" if job in failed else ""
        here, hosts = tally.cpu.get(job, [0.0, 0.0])
        hosts_cell = f"{hosts:.0f}" if hosts else ""
        lines.append(f"| {job}{mark} | " + " | ".join(cells) + f" | {other:.0f} | {total:.0f}"
                     f" | {here:.0f} | {hosts_cell} |")
    lines.append("")
    lines.append(f"Wall time {wall:.0f} s ({wall / 60:.1f} min); the jobs' steps add up to {busy:.0f} s"
                 f" ({busy / 60:.1f} min). Seconds; 'other' is lint and unit steps. CPU-s here: the CPU"
                 " seconds of the job's own processes (Molecule, Ansible, pytest); CPU-s hosts: of its"
                 " test hosts' containers, until destroy.")
    if tally.step_cpu:
        lines += ["", "CPU seconds of each step, here and on the job's hosts:", "",
                  "| job | " + " | ".join(STEPS) + " | other | total |",
                  "| --- | " + " | ".join("---:" for _ in STEPS) + " | ---: | ---: |"]
        for job in jobs:
            spent = {step: c for (j, step), c in tally.step_cpu.items() if j == job}
            other = sum(c for step, c in spent.items() if step not in STEPS)
            cells = [f"{spent[s]:.0f}" if s in spent else "" for s in STEPS]
            lines.append(f"| {job} | " + " | ".join(cells) + f" | {other:.0f} | {sum(spent.values()):.0f} |")
        lines.append("")
    if sum(cpu) > 0:
        lines.append(f"The {os.cpu_count()} cores were busy {100 * cpu[0] / sum(cpu):.0f} % of the wall time"
                     f" ({cpu[0]:.0f} CPU seconds).")
    return "\n".join(lines) + "\n"


def costliest_tests(since: float, count: int = 12) -> str:
    """Markdown: the integration tests of this run (JUnit files written since
    `since`, a time.time()) that cost the most CPU seconds, here and on their
    hosts (recorded by tests/integration/conftest.py)."""
    rows = []
    for junit in sorted(RESULTS.glob("*-integration.xml")):
        if junit.stat().st_mtime < since:
            continue
        for case in ET.parse(junit).getroot().iter("testcase"):
            props = {p.get("name"): float(p.get("value") or 0) for p in case.iter("property")}
            if "cpu_here" in props:
                rows.append((props["cpu_here"] + props.get("cpu_hosts", 0.0), props["cpu_here"],
                             props.get("cpu_hosts", 0.0), float(case.get("time") or 0),
                             junit.name.split("-")[0], case.get("name")))
    if not rows:
        return ""
    rows.sort(reverse=True)
    lines = ["", f"The {min(count, len(rows))} integration tests that cost the most CPU seconds"
             f" ({sum(r[0] for r in rows):.0f} CPU-s for all {len(rows)}):", "",
             "| scenario | test | CPU-s here | CPU-s hosts | seconds |", "| --- | --- | ---: | ---: | ---: |"]
    lines += [f"| {r[4]} | {r[5]} | {r[1]:.0f} | {r[2]:.0f} | {r[3]:.0f} |" for r in rows[:count]]
    return "\n".join(lines) + "\n"


def costliest_playbooks(since: float, count: int = 12) -> str:
    """Markdown: the playbook runs of this run's integration tests (the ledger
    tests/helpers/fleet.py keeps) that cost the most CPU seconds."""
    ledger = RESULTS / "playbooks.jsonl"
    runs = [json.loads(line) for line in ledger.read_text().splitlines()] if ledger.exists() else []
    runs = [r for r in runs if r["time"] >= since]
    if not runs:
        return ""
    runs.sort(key=lambda r: -(r["cpu_here"] + r["cpu_hosts"]))
    total = sum(r["cpu_here"] + r["cpu_hosts"] for r in runs)
    lines = ["", f"The integration tests ran {len(runs)} playbooks ({total:.0f} CPU-s, here and on the hosts);"
             f" the {min(count, len(runs))} that cost the most (tasks: the most any host ran):", "",
             "| scenario | test | arguments | tasks | CPU-s here | CPU-s hosts | seconds |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in runs[:count]:
        args = " ".join(r["args"]).replace("|", "\\|")
        args = args if len(args) <= 70 else args[:67] + "..."
        tasks = max(r["tasks"].values(), default=0)
        lines.append(f"| {r['scenario']} | {r['test'].rsplit('::', 1)[-1]} | `{args}` | {tasks}"
                     f" | {r['cpu_here']:.0f} | {r['cpu_hosts']:.0f} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def enable_controller_cache(env: dict | os._Environ) -> None:
    """Every playbook run of the checks keeps module payloads for the next
    and loads the ssh plugin once (testbed/plugins/callback/testbed_controller_cache.py)."""
    plugins = str(ROOT / "testbed" / "plugins" / "callback")
    env["ANSIBLE_CALLBACK_PLUGINS"] = os.pathsep.join(filter(None, [plugins, env.get("ANSIBLE_CALLBACK_PLUGINS")]))
    env["ANSIBLE_CALLBACKS_ENABLED"] = ",".join(
        filter(None, ["testbed_controller_cache", env.get("ANSIBLE_CALLBACKS_ENABLED")]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["lint", "unit", "molecule"])
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="Molecule scenario(s) to run")
    parser.add_argument("--keep", action="store_true", help="leave the scenario's hosts up")
    parser.add_argument("--lanes", type=int, default=int(os.environ.get("SALTANT_FLEET_LANES", "5")),
                        help="jobs that run side by side (default 5: one per scenario)")
    args = parser.parse_args()
    os.environ.setdefault("ANSIBLE_FORCE_COLOR", "0")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    enable_controller_cache(os.environ)
    RESULTS.mkdir(parents=True, exist_ok=True)
    tally = Tally()

    work: list[tuple[str, Callable[[Job], None]]] = []
    if args.only in (None, "molecule"):
        chosen = args.scenario or SCENARIOS
        ordered = [s for s in EXPECTED_ORDER if s in chosen] + [s for s in chosen if s not in EXPECTED_ORDER]
        work += [(name, lambda job: scenario(job, args.keep)) for name in ordered]
    if args.only in (None, "unit"):
        work.append(("unit", unit))
    if args.only in (None, "lint"):
        work.append(("lint", lint))

    lanes = max(1, args.lanes)
    started, since = time.monotonic(), time.time()
    cpu_start = cpu_seconds()

    def do(item: tuple[str, Callable[[Job], None]]) -> None:
        name, body = item
        job = Job(name, tally, to_log=lanes > 1)
        try:
            body(job)
        except Exception as exc:  # a crash of the runner itself still counts
            tally.add(name, "runner", f"FAILED ({exc})", 0.0, 0, 1)
            job.say(f"runner error: {exc!r}")

    with ThreadPoolExecutor(max_workers=lanes) as pool:
        list(pool.map(do, work))
    wall = time.monotonic() - started
    cpu_end = cpu_seconds()

    table = timing_table(tally, wall, (cpu_end[0] - cpu_start[0], cpu_end[1] - cpu_start[1]))
    if args.only in (None, "molecule"):
        table += costliest_tests(since)
        table += costliest_playbooks(since)
    (RESULTS / "timings.md").write_text("# Timings of the last run (tests/run.py)\n\n" + table)
    lines = [f"{seconds:8.1f} s  {result:<22} {job}: {step}" for job, step, result, seconds in tally.rows]
    lines.append(f"{wall:8.1f} s  total")
    (RESULTS / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(["", "Summary:", *lines, "", table]))
    closing = f"{tally.passed} passed, {tally.failed} failed"
    (RESULTS / "closing-line.txt").write_text(closing + "\n")
    print(closing)
    return 0 if tally.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
