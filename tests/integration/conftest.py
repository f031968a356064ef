"""The live hosts of one Molecule scenario: tests/integration/SCENARIO/ runs
against molecule/SCENARIO's hosts (tests/run.py creates them, or
`molecule create -s SCENARIO` and `molecule converge -s SCENARIO`)."""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cgroups import containers_cpu_seconds
from helpers.fleet import Fleet


@pytest.fixture(scope="session")
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    folders = {item.path.parent.name for item in request.session.items}
    scenario = os.environ.get("SALTANT_FLEET_SCENARIO") or (folders.pop() if len(folders) == 1 else "")
    if not scenario:
        pytest.skip("run one scenario's folder (tests/integration/SCENARIO) with its hosts up")
    return Fleet(scenario, Path(tmp_path_factory.mktemp("fleet")))


def _cpu_here() -> float:
    return sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for field in ("ru_utime", "ru_stime"))


@pytest.fixture(autouse=True)
def cpu_seconds(record_property, request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test's CPU seconds, here (pytest, Ansible) and on its scenario's
    hosts, as properties of its case in the JUnit file (tests/run.py lists
    the costliest): on a machine with few cores, CPU seconds are what a test
    costs the whole suite."""
    network = f"network=saltant-fleet-{os.environ.get('SALTANT_FLEET_SCENARIO') or request.path.parent.name}"
    here, hosts = _cpu_here(), containers_cpu_seconds(network)
    yield
    record_property("cpu_here", round(_cpu_here() - here, 1))
    record_property("cpu_hosts", round(containers_cpu_seconds(network) - hosts, 1))
