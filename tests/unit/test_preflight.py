"""site.yml's preflight play validates a whole inventory without touching hosts.

It runs against inventory/example, whose hosts do not exist: a local
connection stands in for them (the preflight play only gathers facts and
checks variables). The inventory must pass as it is; each bad setting must
fail with the host and the variable named and no secret shown.

The table of bad settings runs as one fleet: one host per case, all in one
run, as an operator's inventory with many bad hosts would. That also proves
that one run reports the problems of every host, and that a host with good
values (as `-e` types them) passes every check while the run stops.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.preflight_cases import CASES, FACT_CASES, GOOD_VALUES, SECRETS

ROOT = Path(__file__).resolve().parents[2]
STOP_TASK = "Stop the whole run if the settings of any host failed a check"


def preflight(*args: str, extra_vars: dict | None = None, inventories: tuple[Path, ...] = (),
              env: dict | None = None) -> subprocess.CompletedProcess:
    argv = [
        "ansible-playbook", "-i", str(ROOT / "inventory" / "example"),
        *[a for inventory in inventories for a in ("-i", str(inventory))],
        "--connection", "local", "--extra-vars", f"ansible_python_interpreter={sys.executable}",
        str(ROOT / "playbooks" / "preflight.yml"), *args,
    ]
    if extra_vars is not None:
        argv += ["--extra-vars", json.dumps(extra_vars)]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_CALLBACK_RESULT_FORMAT": "json", **(env or {})}
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def host_name(case: str) -> str:
    """A host name per case: its number in CASES, then its words."""
    number = list(CASES).index(case) + 1
    return f"case-{number:02d}-" + re.sub(r"[^a-z0-9]+", "-", case.lower()).strip("-")


def failures(output: str) -> dict[str, list[tuple[str, str]]]:
    """Per host, the (task, message) of each failure the default callback printed."""
    found: dict[str, list[tuple[str, str]]] = {}
    task = ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line[len("TASK ["):].split("]", 1)[0]
        match = re.match(r"^(?:fatal|failed): \[([^\]]+)\](?: \(item=.*?\))?: FAILED! => (\{.*\})$", line) or \
            re.match(r"^(?:fatal|failed): \[([^\]]+)\](?: \(item=.*?\))? => (\{.*\})$", line)
        if match:
            result = json.loads(match.group(2))
            found.setdefault(match.group(1), []).append((task, str(result.get("msg", ""))))
    return found


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> tuple[str, dict[str, list[tuple[str, str]]]]:
    hosts = {host_name(case): values for case, (values, _) in CASES.items()}
    hosts["case-good-values"] = GOOD_VALUES
    assert len(hosts) == len(CASES) + 1
    work = tmp_path_factory.mktemp("preflight")
    inventory = work / "cases.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"saltant_workers": {"hosts": hosts}}}}))
    # The case hosts are all this machine: its facts are gathered once, on
    # a valid host, and given to every case host through Ansible's fact
    # cache (one fact gathering costs a CPU second; the table has dozens).
    cache = {"ANSIBLE_CACHE_PLUGIN": "jsonfile", "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(work / "facts"),
             "ANSIBLE_GATHERING": "smart"}
    primer = "worker01.example.org"
    assert preflight("--limit", primer, env=cache).returncode == 0
    [cached] = (work / "facts").iterdir()
    prefix = cached.name.removesuffix(primer)
    for host in hosts:
        (work / "facts" / f"{prefix}{host}").write_bytes(cached.read_bytes())
    result = preflight("--limit", "case-*", inventories=(inventory,), env=cache)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    return output, failures(output)


def test_example_inventory_is_valid():
    # Every host is checked against this machine's facts: a Python 2 host
    # there is refused for that reason alone (Debian 12 has no Python 2.7).
    result = preflight("--limit", "saltant_workers:!python2_hosts")
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_table_has_at_least_60_bad_values():
    assert len(CASES) + len(FACT_CASES) >= 60


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_value_is_refused_naming_host_and_variable(table, case):
    output, failed = table
    host = host_name(case)
    expected = CASES[case][1]
    messages = [message for task, message in failed.get(host, []) if task != STOP_TASK]
    assert messages, f"{host} passed every check"
    assert any(expected in message for message in messages), messages
    assert any(message.startswith(f"{host}:") or f"{host}:" in message for message in messages), messages


def test_good_values_pass_every_check(table):
    _, failed = table
    assert [task for task, _ in failed.get("case-good-values", [])] == [STOP_TASK]


def test_one_run_reports_every_bad_host_and_stops_all(table):
    output, failed = table
    stop = [message for task, message in failed.get("case-good-values", []) if task == STOP_TASK]
    assert stop and all(host_name(case) in stop[0] for case in CASES)
    assert "no host has been changed" in stop[0]


def test_no_secret_is_shown(table):
    output, _ = table
    for secret in SECRETS:
        assert secret not in output


@pytest.mark.parametrize("case", sorted(FACT_CASES))
def test_bad_value_for_the_distribution_is_refused(case):
    extra, expected = FACT_CASES[case]
    # One host is enough to see the message (the settings are the same on all).
    result = preflight("--limit", "worker01.example.org", extra_vars=extra)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected in output
    assert "fatal: [worker01.example.org]" in output
    for secret in SECRETS:
        assert secret not in output
