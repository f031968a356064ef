"""The live hosts of one Molecule scenario: tests/integration/SCENARIO/ runs
against molecule/SCENARIO's hosts (tests/run.py creates them, or
`molecule create -s SCENARIO` and `molecule converge -s SCENARIO`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.fleet import Fleet


@pytest.fixture(scope="session")
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    folders = {item.path.parent.name for item in request.session.items}
    scenario = os.environ.get("SALTANT_FLEET_SCENARIO") or (folders.pop() if len(folders) == 1 else "")
    if not scenario:
        pytest.skip("run one scenario's folder (tests/integration/SCENARIO) with its hosts up")
    return Fleet(scenario, Path(tmp_path_factory.mktemp("fleet")))
