"""The fleet_ops role's filters: rollout batches, queue outages, the status table."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[2] / "roles" / "fleet_ops" / "filter_plugins" / "fleet_ops.py"
spec = importlib.util.spec_from_file_location("fleet_ops_filters", PLUGIN)
filters = importlib.util.module_from_spec(spec)
spec.loader.exec_module(filters)

HOSTS = [f"h{n}" for n in range(1, 9)]


@pytest.mark.parametrize(
    "serial, sizes",
    [
        (1, [1] * 8),
        ("1", [1] * 8),
        (0, [8]),
        ("25%", [2, 2, 2, 2]),
        ([1, "25%"], [1, 2, 2, 2, 1]),
        ([1, 3], [1, 3, 3, 1]),
        ("10%", [1] * 8),  # a percentage below one host is one host, as in Ansible
    ],
)
def test_batches_are_formed_as_ansible_forms_them(serial, sizes):
    batches = filters.fleet_ops_batches(HOSTS, serial)
    assert [len(b) for b in batches] == sizes
    assert [h for b in batches for h in b] == HOSTS


def test_a_batch_holding_every_host_of_a_queue_is_an_outage():
    hostvars = {
        "a": {"saltant_worker_instances": [{"name": "x", "queues": ["alpha"]}, {"name": "y", "queues": ["beta"]}]},
        "b": {"saltant_worker_instances": [{"name": "default", "queues": ["alpha", "gamma"]}]},
        "c": {"saltant_worker_instances": [{"name": "default", "queues": ["beta", "gamma"]}]},
        "d": {"saltant_worker_instances": [{"name": "default", "queues": ["solo"]}]},
    }
    queues = filters.fleet_ops_queue_hosts(hostvars, ["a", "b", "c", "d"])
    assert queues == {"alpha": ["a", "b"], "beta": ["a", "c"], "gamma": ["b", "c"], "solo": ["d"]}
    one_by_one = filters.fleet_ops_queue_outages(filters.fleet_ops_batches(["a", "b", "c", "d"], 1), queues)
    assert [(o["queue"], o["batch"]) for o in one_by_one] == [("solo", 4)]
    halves = filters.fleet_ops_queue_outages(filters.fleet_ops_batches(["a", "b", "c", "d"], 2), queues)
    assert [(o["queue"], o["servers"]) for o in halves] == [("alpha", ["a", "b"]), ("solo", ["d"])]


def report(**instances) -> dict:
    return {"stdout": json.dumps({
        "host": "w1", "commit": "36edb442481f0573a469314217002147cfb4ddd2", "python": "3.11.2", "celery": "5.3.6",
        "runtimes": {"docker": "20.10.24+dfsg1"}, "free_disk": {"/a": 10 * 2**30, "/b": 5 * 2**30},
        "unshipped_logs": 2,
        "instances": [{"instance": name, **fields} for name, fields in instances.items()],
    })}


def test_rows_table_and_csv_of_the_fleet_status():
    hostvars = {
        "w1": {"status": report(default={"queues": ["q1"], "consuming": ["q1"], "unit": "active/running",
                                         "running_jobs": ["u1", "u2"]},
                                gpu={"queues": ["gpu"], "consuming": [], "unit": "active/running",
                                     "running_jobs": []})},
        "w2": {"status": {"unreachable": True, "msg": "ssh: connect refused"}},
        "w3": {},
    }
    rows = filters.fleet_ops_rows(hostvars, ["w1", "w2", "w3"], "status")
    assert [(r["host"], r["instance"], r["consuming"], r["running_jobs"]) for r in rows] == [
        ("w1", "default", "q1", 2), ("w1", "gpu", "drained", 0), ("w2", "", "", ""), ("w3", "", "", "")]
    assert rows[0]["commit"] == "36edb442481f" and rows[0]["free_disk_gib"] == 5.0
    assert rows[0]["runtimes"] == "docker 20.10.24+dfsg1" and rows[0]["unshipped_logs"] == 2
    assert rows[1]["unit"] == "active/running" and rows[2]["unit"] == "unreachable"
    lines = filters.fleet_ops_table(rows)
    assert lines[0].split()[:4] == ["host", "instance", "queues", "consuming"]
    assert len({line.index("instance") for line in lines[:1]}) == 1 and len(lines) == 5
    parsed = list(csv.DictReader(io.StringIO(filters.fleet_ops_csv(rows))))
    assert parsed[1]["consuming"] == "drained" and parsed[0]["running_jobs"] == "2"
    reports = filters.fleet_ops_reports(hostvars, ["w1", "w2"], "status")
    assert reports["w1"]["commit"].startswith("36edb") and reports["w2"] == {"error": "unreachable"}
