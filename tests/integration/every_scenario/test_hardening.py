"""The sandboxing of the units on every scenario's worker hosts, as
`systemd-analyze security` rates it (0 is the best, 10 the worst): the log
shipper at most 2.0, a worker at most 5.0 on hosts without setuid
Singularity, with the level saltant_worker_hardening's auto picks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[2] / "results"

LOG_SHIPPER_LIMIT = 2.0
WORKER_LIMIT = 5.0
SCORE = re.compile(r"Overall exposure level for (\S+): ([0-9.]+)")


def scores(fleet, host: str) -> dict[str, float]:
    # Loaded units only: the worker's After= names the shipper's unit on
    # hosts that do not have it too.
    units = fleet.sh(
        host, "systemctl list-units --all --plain --no-legend --type=service "
        "'saltant-worker@*' saltant-log-shipper.service | awk '$2 == \"loaded\" {print $1}'"
    ).split()
    found = {}
    for unit in units:
        out = fleet.sh(host, f"systemd-analyze security --no-pager {unit}")
        name, score = SCORE.search(out).groups()
        found[name] = float(score)
    return found


def expected_level(fleet, host: str) -> str:
    runtimes = fleet.host_vars(host).get("saltant_worker_container_runtimes", [])
    return "devices" if "singularity" in runtimes else "strict"


@pytest.fixture(scope="module")
def rated(fleet) -> dict[str, dict[str, float]]:
    found = {host: scores(fleet, host) for host in fleet.workers}
    # For the README's table: tests/results/hardening-SCENARIO.txt.
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"hardening-{fleet.scenario}.txt").write_text("".join(
        f"{fleet.scenario} {host} {expected_level(fleet, host)} {unit} {score}\n"
        for host, units in found.items() for unit, score in sorted(units.items())
    ))
    return found


def test_every_worker_unit_is_rated_within_its_limit(fleet, rated):
    for host, units in rated.items():
        workers = {u: s for u, s in units.items() if u.startswith("saltant-worker@")}
        assert workers, f"{host}: no worker unit"
        level = expected_level(fleet, host)
        unit_file = fleet.sh(host, "cat /etc/systemd/system/saltant-worker@.service")
        assert f"Sandboxing, level {level} " in unit_file, host
        for unit, score in workers.items():
            assert score <= WORKER_LIMIT, f"{host} {unit}: {score} > {WORKER_LIMIT} (level {level})"


def test_the_log_shipper_is_rated_within_its_limit(fleet, rated):
    shippers = {h: u["saltant-log-shipper.service"] for h, u in rated.items() if "saltant-log-shipper.service" in u}
    enabled = [h for h in fleet.workers if fleet.host_vars(h).get("log_shipper_enabled", True)]
    assert sorted(shippers) == sorted(enabled)
    for host, score in shippers.items():
        assert score <= LOG_SHIPPER_LIMIT, f"{host}: saltant-log-shipper.service {score} > {LOG_SHIPPER_LIMIT}"
