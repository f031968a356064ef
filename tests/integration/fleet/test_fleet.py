"""A fleet of three workers with different queue sets: jobs go only where
their queue is served, a rolling upgrade under load keeps every queue served
and loses or repeats no job, a failing host stops the rollout, and a
configuration change does not wait for a long job."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import uuid as uuidlib

import pytest

UNSERVED = "nobody-serves-this"
# "Task NAME[UUID] received" (Celery 5), "Received task: NAME[UUID]" (Celery 4).
JOURNAL_LINE = re.compile(r" (saltant-worker@[\w-]+)\[\d+\]: .*(?:Received task: \S+?|Task \S+?)\[([0-9a-f-]{36})\]")


def executable(fleet, queue: str, seconds: float) -> str:
    return fleet.publish(queue, task_class="executable", command_to_run=f"sh -c 'sleep {seconds}; hostname'",
                         env_vars_list=[], args_dict={}, json_file_option=None)


def servers(fleet) -> dict[str, set[tuple[str, str]]]:
    """Each queue, and the (host, instance) pairs that serve it (host_vars)."""
    served: dict[str, set[tuple[str, str]]] = {}
    for host in fleet.workers:
        for instance in fleet.host_vars(host)["saltant_worker_instances"]:
            for queue in instance["queues"]:
                served.setdefault(queue, set()).add((host, instance["name"]))
    return served


def ran_on(fleet) -> dict[str, tuple[str, str]]:
    """Each job uuid the workers received, and the (host, instance) that received it."""
    where: dict[str, tuple[str, str]] = {}
    for host in fleet.workers:
        journal = fleet.sh(host, "journalctl --no-pager -o short -u 'saltant-worker@*'")
        for unit, uuid in JOURNAL_LINE.findall(journal):
            where[uuid] = (host, unit.split("@", 1)[1])
    return where


def commits(fleet) -> dict[str, str]:
    return {host: fleet.worker_facts(host)["commit"] for host in fleet.workers}


def queue_watch_argv(fleet, queues: list[str], duration: float, nodes: bool = False) -> list[str]:
    argv = ["docker", "exec", fleet.broker, "python3", "/opt/testbed/queue_watch.py",
            "--broker", fleet.local_broker_url, "--interval", "0.25", "--duration", str(duration)]
    if nodes:
        argv.append("--nodes")
    for queue in queues:
        argv += ["--queue", queue]
    return argv


def queue_sample(fleet, queues: list[str]) -> dict[str, list[int]]:
    """One sample of (messages, consumers) of each queue, taken now."""
    out = subprocess.run(queue_watch_argv(fleet, queues, 0), capture_output=True, text=True,
                         check=True, timeout=120).stdout
    return json.loads(out.splitlines()[-1])["queues"]


class QueueWatch:
    """Samples of (messages, consumers) of each queue and the Celery nodes
    that serve it, from the broker host."""

    def __init__(self, fleet, queues: list[str]) -> None:
        self.process = subprocess.Popen(queue_watch_argv(fleet, queues, 1800, nodes=True),
                                        stdout=subprocess.PIPE, text=True)

    def stop(self) -> list[dict]:
        subprocess.run(["docker", "exec", self.process.args[2], "pkill", "-f", "queue_watch.py"], check=False)
        out, _ = self.process.communicate(timeout=30)
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


class Load:
    """Jobs of 5 to 8 s published to every queue in turn, about one a second."""

    def __init__(self, fleet, queues: list[str]) -> None:
        self.fleet, self.queues = fleet, queues
        self.published: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            queue = self.queues[n % len(self.queues)]
            self.published.append(executable(self.fleet, queue, 5 + n % 4))
            n += 1
            self.stopping.wait(1.0)

    def stop(self) -> list[str]:
        self.stopping.set()
        self.thread.join(timeout=60)
        return self.published


def final_states(fleet, uuids: list[str], timeout: float = 240) -> dict[str, list[str]]:
    deadline = time.monotonic() + timeout
    states = {}
    for uuid in uuids:
        states[uuid] = fleet.wait_states(uuid, timeout=max(1.0, deadline - time.monotonic()))
    return states


@pytest.fixture(scope="module", autouse=True)
def pinned(fleet):
    """The tests below build on each other (an upgrade, a failed one, a
    change during a long job); afterwards the fleet is back on the
    inventory's version and settings, serving its queues."""
    yield
    result = fleet.playbook()
    assert result.returncode == 0, result.stdout[-3000:]


def test_jobs_run_only_on_the_hosts_that_serve_their_queue(fleet):
    served = servers(fleet)
    assert len(served) == 3 and all(len(pairs) == 2 for pairs in served.values())
    jobs = {queue: [executable(fleet, queue, 1) for _ in range(4)] for queue in served}
    for queue, uuids in jobs.items():
        for uuid in uuids:
            assert fleet.wait_states(uuid)[-1] == "successful", (queue, uuid)
    where = ran_on(fleet)
    for queue, uuids in jobs.items():
        for uuid in uuids:
            assert where[uuid] in served[queue], (queue, uuid, where.get(uuid))


def test_a_job_on_a_queue_no_host_serves_stays_queued(fleet):
    uuid = executable(fleet, UNSERVED, 0)
    time.sleep(5)
    assert fleet.states(uuid) == []
    # One message waits and nothing consumes it. A single sample, taken
    # synchronously: a watcher given a fixed second may print none on a
    # loaded machine.
    assert queue_sample(fleet, [UNSERVED])[UNSERVED] == [1, 0]


def test_a_bad_setting_on_one_host_stops_the_hosts_whose_inputs_did_not_change(fleet, tmp_path):
    """Hosts whose inputs passed the checks in their last run leave the
    preflight play at once; one host failing a check still stops the run on
    them, also on a host whose record names drift (which would run its role)."""
    drifted, bad = fleet.workers[0], fleet.workers[-1]
    unit = "saltant-log-shipper.service"
    extra = tmp_path / "bad-host.yml"
    extra.write_text(json.dumps({"saltant_workers": {"hosts": {bad: {"saltant_worker_loglevel": "LOUD"}}}}))
    fleet.sh(drifted, f"systemctl stop {unit}")
    try:
        result = fleet.playbook("-i", str(extra))
        assert result.returncode != 0
        assert f"The settings of {bad} failed the checks above" in result.stdout, result.stdout[-3000:]
        assert "saltant_worker_loglevel" in result.stdout
        # The drifted host ran none of its roles.
        assert fleet.unit_property(drifted, unit, "ActiveState") == "inactive"
        assert re.search(rf"{drifted}\s+: ok=\d+\s+changed=0 ", result.stdout)
    finally:
        repaired = fleet.playbook("--limit", drifted)
    assert repaired.returncode == 0, repaired.stdout[-3000:]
    assert fleet.unit_property(drifted, unit, "ActiveState") == "active"


def test_a_rolling_upgrade_under_load_keeps_every_queue_served(fleet):
    served = servers(fleet)
    tag = f"fleet-next-{uuidlib.uuid4().hex[:8]}"
    commit = fleet.publish_worker_version(tag)
    watch = QueueWatch(fleet, sorted(served))
    load = Load(fleet, sorted(served))
    try:
        time.sleep(3)
        result = fleet.playbook(extra_vars={"saltant_worker_version": tag}, playbook="playbooks/upgrade.yml")
        time.sleep(3)
    finally:
        published = load.stop()
        samples = watch.stop()
    assert result.returncode == 0, result.stdout[-5000:]
    # One host per batch, in inventory order, each drained and healthy before the next.
    assert "3 batches: [fleet-worker1] then [fleet-worker2] then [fleet-worker3]" in result.stdout
    assert commits(fleet) == dict.fromkeys(fleet.workers, commit)
    # Every job ran once and succeeded: none failed, lost or run twice.
    states = final_states(fleet, published)
    assert len(published) >= 20
    for uuid, seen in states.items():
        assert seen == ["running", "successful"], (uuid, seen)
    # At every moment a node served each queue: it listed the queue in
    # `inspect active_queues` (a node whose processes are all busy has no
    # AMQP consumer, by design, yet serves its queues; a drained or
    # restarting one does not).
    assert len(samples) > 20
    for sample in samples:
        for queue in served:
            assert sample["serving"][queue], (queue, sample)
            assert set(sample["serving"][queue]) <= {f"{i}@{h}" for h, i in served[queue]}, (queue, sample)
    # The jobs published to a queue ran on hosts that serve it.
    where = ran_on(fleet)
    by_queue = {queue: published[i::len(served)] for i, queue in enumerate(sorted(served))}
    for queue, uuids in by_queue.items():
        assert all(where[u] in served[queue] for u in uuids)


def test_a_host_whose_upgrade_fails_stops_the_rollout(fleet):
    before = commits(fleet)
    untouched = fleet.unit_property("fleet-worker3", "saltant-worker@default.service", "MainPID")
    tag = f"fleet-bad-{uuidlib.uuid4().hex[:8]}"
    commit = fleet.publish_worker_version(tag, {"requirements/bad.txt": "saltant-no-such-package==99.0.0\n"})
    requirements = ("{{ 'requirements/bad.txt' if inventory_hostname == 'fleet-worker2' "
                    "else 'requirements/requirements-worker-python3.txt' }}")
    result = fleet.playbook(extra_vars={"saltant_worker_version": tag,
                                        "saltant_worker_requirements_file": requirements},
                            playbook="playbooks/upgrade.yml")
    output = result.stdout
    assert result.returncode != 0
    assert "fleet-worker2: pip" in output and "saltant-no-such-package==99.0.0" in output
    # Never reached: its worker was neither drained nor restarted.
    assert fleet.unit_property("fleet-worker3", "saltant-worker@default.service", "MainPID") == untouched
    now = commits(fleet)
    assert now["fleet-worker1"] == commit
    assert now["fleet-worker2"] == before["fleet-worker2"] and now["fleet-worker3"] == before["fleet-worker3"]
    # The host not reached keeps working on its version: gamma's jobs run on
    # fleet-worker3 (fleet-worker2 stays drained until the next run).
    uuids = [executable(fleet, "gamma", 0) for _ in range(3)]
    assert all(fleet.wait_states(u)[-1] == "successful" for u in uuids)
    where = ran_on(fleet)
    assert {where[u] for u in uuids} == {("fleet-worker3", "default")}


def test_a_configuration_change_does_not_wait_for_a_long_job(fleet):
    uuid, release = fleet.held_job("gamma")
    host, instance = ran_on(fleet)[uuid]
    unit = f"saltant-worker@{instance}.service"
    pid = fleet.unit_property(host, unit, "MainPID")
    result = fleet.playbook("--limit", host, extra_vars={"saltant_worker_loglevel": "DEBUG"})
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"{host}: restart pending for {instance}" in result.stdout
    # The play ended while the job ran; the old worker still runs it.
    assert fleet.states(uuid)[-1] == "running"
    assert fleet.unit_property(host, unit, "MainPID") == pid
    # The job ends and succeeds; systemd then starts the new worker with the
    # new setting.
    fleet.sh(host, f"touch {release}")
    try:
        assert fleet.wait_states(uuid, timeout=90)[-1] == "successful"
    finally:
        fleet.sh(host, f"rm -f {release}")
    deadline = time.monotonic() + 60
    while fleet.unit_property(host, unit, "MainPID") in ("0", pid) and time.monotonic() < deadline:
        time.sleep(1)
    new_pid = fleet.unit_property(host, unit, "MainPID")
    assert new_pid not in ("0", pid)
    assert "--loglevel DEBUG" in fleet.sh(host, f"tr '\\0' ' ' < /proc/{new_pid}/cmdline")


def test_an_upgrade_whose_drain_times_out_can_leave_the_job_to_finish(fleet):
    """fleet_ops_upgrade_on_drain_timeout: wait. The drain stops waiting after
    its timeout and the upgrade goes on; the restart then waits for the job
    (systemd's warm restart), which succeeds, and the instance comes back
    with the new setting, healthy, before the play ends."""
    uuid, release = fleet.held_job("gamma")
    host, instance = ran_on(fleet)[uuid]
    unit = f"saltant-worker@{instance}.service"
    pid = fleet.unit_property(host, unit, "MainPID")
    runs: list[subprocess.CompletedProcess] = []
    upgrade = threading.Thread(target=lambda: runs.append(fleet.playbook(
        "--limit", host, playbook="playbooks/upgrade.yml",
        extra_vars={"saltant_worker_loglevel": "WARNING", "fleet_ops_upgrade_drain_timeout": 2,
                    "fleet_ops_upgrade_on_drain_timeout": "wait"})))
    upgrade.start()
    try:
        # The play reaches the restart, which waits for the job: the old
        # worker is in its warm shutdown, the job still running.
        deadline = time.monotonic() + 240
        while fleet.unit_property(host, unit, "ActiveState") != "deactivating":
            assert upgrade.is_alive() and time.monotonic() < deadline, runs and runs[0].stdout[-3000:]
            time.sleep(1)
        assert fleet.states(uuid)[-1] == "running"
    finally:
        fleet.sh(host, f"touch {release}")
        upgrade.join(timeout=300)
        fleet.sh(host, f"rm -f {release}")
    result = runs[0]
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(rf"{host}:\s+{instance}\s+stopped\s+consuming\s+\(1\s+jobs\s+still\s+running\)", result.stdout)
    assert fleet.wait_states(uuid) == ["running", "successful"]
    new_pid = fleet.unit_property(host, unit, "MainPID")
    assert new_pid not in ("0", pid)
    assert "--loglevel WARNING" in fleet.sh(host, f"tr '\\0' ' ' < /proc/{new_pid}/cmdline")
