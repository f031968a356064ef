from __future__ import annotations

import os
from pathlib import Path

import pytest
from fleet import Fleet

SCENARIOS = ("default", "docker", "singularity", "python2")


def pytest_configure(config: pytest.Config) -> None:
    for name in SCENARIOS:
        config.addinivalue_line("markers", f"{name}: needs the live hosts of Molecule scenario {name}")


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    scenario = os.environ.get("SALTANT_FLEET_SCENARIO")
    if not scenario:
        pytest.skip("set SALTANT_FLEET_SCENARIO (tests/run.py does) with the scenario's hosts up")
    return Fleet(scenario, Path(tmp_path_factory.mktemp("fleet")))
