"""Hostile but legal .env values (the test bed's testbed_hostile_env) come
back exactly through worker_src's own parser on Python 3, and reach jobs."""

from __future__ import annotations

from helpers.env_reader import read_env
from helpers.hostile import ENV_VALUES


def test_env_values_survive_the_workers_parser(fleet):
    worker = fleet.workers[0]
    read = read_env(fleet, worker)
    assert read["parser"] == "worker_src" and read["python"].startswith("3.")
    assert {k: v for k, v in read["values"].items() if k in ENV_VALUES} == ENV_VALUES


def test_env_values_reach_jobs_exactly(fleet):
    names = ["TESTBED_ALL_AT_ONCE", "TESTBED_JINJA", "TESTBED_NON_ASCII", "TESTBED_SPACES"]
    uuid = fleet.publish(
        "thistaskqueue", task_class="executable",
        # The worker expands $NAME in the command itself: none here.
        command_to_run='python3 -c "import os, sys; '
        'sys.stdout.write(chr(30).join(os.environ[n] for n in sys.argv[1:]))" ' + " ".join(names),
        env_vars_list=names, args_dict={}, json_file_option=None,
    )
    assert fleet.wait_states(uuid) == ["running", "successful"]
    out = fleet.sh(fleet.workers[0], f"cat /var/lib/saltant-worker/logs/{uuid}/{uuid}-stdout.txt")
    assert out.split("\x1e") == [ENV_VALUES[n] for n in names]


def test_a_job_cannot_ask_for_the_workers_secrets(fleet):
    uuid = fleet.publish(
        "thistaskqueue", task_class="executable", command_to_run="env",
        env_vars_list=["TESTBED_GREETING", "API_AUTH_TOKEN"], args_dict={}, json_file_option=None,
    )
    assert fleet.wait_states(uuid) == ["running", "failed"]
    worker = fleet.workers[0]
    journal = fleet.sh(worker, f"journalctl -u saltant-worker@default.service -o cat --no-pager --grep {uuid}")
    assert "env_vars_list names API_AUTH_TOKEN, the worker's own secret" in journal
    logs = fleet.sh(worker, f"cat /var/lib/saltant-worker/logs/{uuid}/* 2>/dev/null || true")
    for secret in fleet.secrets.values():
        assert secret not in logs + journal


def test_a_job_starts_in_a_directory_of_its_own(fleet):
    uuid = fleet.publish(
        "thistaskqueue", task_class="executable", command_to_run="sh -c 'pwd; ls -A'",
        env_vars_list=[], args_dict={}, json_file_option=None,
    )
    assert fleet.wait_states(uuid) == ["running", "successful"]
    out = fleet.sh(fleet.workers[0], f"cat /var/lib/saltant-worker/logs/{uuid}/{uuid}-stdout.txt").split("\n")
    assert out[0].startswith(f"/var/lib/saltant-worker/tmp/{uuid}-") and out[1:] == [""]
    assert fleet.sh(fleet.workers[0], f"ls -d {out[0]} 2>/dev/null || true").strip() == ""
