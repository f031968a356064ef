"""The role writes every .env value so that worker_src's parser reads it back
exactly (the integration tests do the same on the hosts, under Python 2.7
and 3, with django-dotenv too)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from ansible.errors import AnsibleFilterError
from helpers.hostile import ENV_VALUES

ROOT = Path(__file__).resolve().parents[2]


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


QUOTE = load("saltant_worker_env", ROOT / "roles" / "saltant_worker" / "filter_plugins" / "saltant_worker_env.py")
# envfile alone: importing the saltant package would read a .env.
ENVFILE = load("saltant_envfile", ROOT / "worker_src" / "saltant" / "envfile.py")


@pytest.mark.parametrize("name", sorted(ENV_VALUES))
def test_value_survives_the_round_trip(name):
    value = ENV_VALUES[name]
    line = f"{name}={QUOTE.env_quote(value)}"
    assert ENVFILE.parse_lines([line]) == {name: value}


def test_whole_file_round_trip():
    lines = [f"{name}={QUOTE.env_quote(value)}" for name, value in ENV_VALUES.items()]
    assert dict(ENVFILE.parse_lines(lines)) == ENV_VALUES


@pytest.mark.parametrize("value", ["two\nlines", "carriage\rreturn", "nul\x00", "tab\tstop", "del\x7f"])
def test_control_characters_are_refused_without_showing_the_value(value):
    with pytest.raises(AnsibleFilterError) as error:
        QUOTE.env_quote(value, name="saltant_worker_api_auth_token")
    assert "saltant_worker_api_auth_token" in str(error.value)
    assert value not in str(error.value)


def test_booleans_are_written_as_the_worker_reads_them():
    assert QUOTE.env_quote(True) == '"True"' and QUOTE.env_quote(False) == '"False"'
