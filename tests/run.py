#!/usr/bin/env python3
"""Run every check of saltant-fleet and print one closing line.

    python tests/run.py [--only lint|unit|molecule] [--scenario NAME] [--keep]

Checks: yamllint, ansible-lint (production profile) and ruff; the pytest
unit tests; then, for each Molecule scenario, its steps one by one (create,
prepare, converge, idempotence, verify), the integration tests that run
against the scenario's live hosts (tests/integration, marked with the
scenario's name), and destroy. Every pytest test counts as one check, every
other step as one. The last line is "N passed, N failed"; the exit code is
non-zero when anything failed. Durations go to tests/results/summary.txt.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "tests" / "results"
SCENARIOS = ["default", "docker", "singularity", "python2"]


@dataclass
class Tally:
    rows: list[tuple[str, str, float]] = field(default_factory=list)
    passed: int = 0
    failed: int = 0

    def add(self, name: str, ok: bool, seconds: float, count: int = 1) -> None:
        self.rows.append((name, "ok" if ok else "FAILED", seconds))
        if ok:
            self.passed += count
        else:
            self.failed += count


def run(name: str, argv: list[str], tally: Tally, env: dict | None = None) -> bool:
    print(f"==> {name}: {' '.join(argv)}", flush=True)
    start = time.monotonic()
    code = subprocess.call(argv, cwd=ROOT, env={**os.environ, **(env or {})})
    seconds = time.monotonic() - start
    tally.add(name, code == 0, seconds)
    print(f"<== {name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {seconds:.0f} s", flush=True)
    return code == 0


def run_pytest(name: str, args: list[str], tally: Tally, env: dict | None = None) -> bool:
    """Run pytest; each test case counts. A run that errors before any test counts once."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    junit = RESULTS / f"{name.replace(' ', '-').replace('/', '-')}.xml"
    junit.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *args]
    print(f"==> {name}: {' '.join(argv)}", flush=True)
    start = time.monotonic()
    code = subprocess.call(argv, cwd=ROOT, env={**os.environ, **(env or {})})
    seconds = time.monotonic() - start
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
    tally.rows.append((name, f"{passed} passed, {failed} failed", seconds))
    tally.passed += passed
    tally.failed += failed
    print(f"<== {name}: {passed} passed, {failed} failed in {seconds:.0f} s", flush=True)
    return failed == 0


def lint(tally: Tally) -> None:
    run("yamllint", ["yamllint", "--strict", "."], tally)
    vault = {"ANSIBLE_VAULT_PASSWORD_FILE": str(ROOT / "tests" / "testbed" / "vault-password")}
    run("ansible-lint", ["ansible-lint", "--profile", "production"], tally, env=vault)
    run("ruff", ["ruff", "check", "."], tally)
    run("role docs", [sys.executable, "tools/role_docs.py", "--check"], tally)


def unit(tally: Tally) -> None:
    run_pytest("unit: worker_src", ["worker_src/tests"], tally)
    run_pytest("unit: test bed", ["tests/unit"], tally)


def scenario(name: str, tally: Tally, keep: bool) -> None:
    # What the controller serves to the scenario's test bed (tests/testbed).
    env = {"SALTANT_FLEET_CACHE": str(ROOT / ".cache" / "testbed" / name)}

    def molecule(step: str) -> bool:
        return run(f"molecule {name}: {step}", ["molecule", step, "-s", name], tally, env=env)

    subprocess.call(["molecule", "destroy", "-s", name], cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        # `molecule create` runs prepare too.
        for step in ("create", "converge", "idempotence", "verify"):
            if not molecule(step):
                break
        else:
            integration = ROOT / "tests" / "integration"
            if any(integration.glob("test_*.py")):
                run_pytest(
                    f"integration {name}",
                    [str(integration), "-m", name],
                    tally,
                    env={**env, "SALTANT_FLEET_SCENARIO": name},
                )
    finally:
        if not keep:
            molecule("destroy")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["lint", "unit", "molecule"])
    parser.add_argument("--scenario", action="append", help="Molecule scenario(s) to run")
    parser.add_argument("--keep", action="store_true", help="leave the scenario's hosts up")
    args = parser.parse_args()
    os.environ.setdefault("ANSIBLE_FORCE_COLOR", "0")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    tally = Tally()
    started = time.monotonic()
    if args.only in (None, "lint"):
        lint(tally)
    if args.only in (None, "unit"):
        unit(tally)
    if args.only in (None, "molecule"):
        for name in args.scenario or SCENARIOS:
            scenario(name, tally, args.keep)
    total = time.monotonic() - started
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [f"{seconds:8.1f} s  {result:<22} {name}" for name, result, seconds in tally.rows]
    lines.append(f"{total:8.1f} s  total")
    (RESULTS / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(["", "Summary:", *lines]))
    closing = f"{tally.passed} passed, {tally.failed} failed"
    (RESULTS / "closing-line.txt").write_text(closing + "\n")
    print(closing)
    return 0 if tally.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
