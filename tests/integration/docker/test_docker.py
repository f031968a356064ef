"""Docker worker hosts: group membership and engine restarts never leave stale state or kill jobs."""

from __future__ import annotations

import json
import os
import subprocess
import time

# worker_src's Docker host; upstream-containers is verified by verify-upstream.yml.
WORKER = "docker-worker1"
UNIT = "saltant-worker@containers.service"
IMAGE = "docker-broker:5000/testbed/busybox:1"


def container_job(fleet, command: str, queue: str = "dockerqueue") -> str:
    return fleet.publish(
        queue, task_class="container", container_type="docker", container_image=IMAGE,
        command_to_run=command, env_vars_list=[], args_dict={}, logs_path="/logs", results_path=None,
    )


def test_losing_and_regaining_docker_restarts_the_worker_with_fresh_groups(fleet):
    worker = WORKER
    before = fleet.unit_property(worker, UNIT, "MainPID")
    assert fleet.playbook("--limit", WORKER, extra_vars={"saltant_worker_container_runtimes": []}).returncode == 0
    assert "docker" not in fleet.sh(worker, "id -nG saltant").split()
    without = fleet.unit_property(worker, UNIT, "MainPID")
    assert without != before
    # The running worker has no access to the engine any more: the job fails.
    assert fleet.wait_states(container_job(fleet, "true")) == ["running", "failed"]

    assert fleet.playbook("--limit", WORKER).returncode == 0
    assert "docker" in fleet.sh(worker, "id -nG saltant").split()
    assert fleet.unit_property(worker, UNIT, "MainPID") not in ("0", without)
    assert fleet.wait_states(container_job(fleet, "true")) == ["running", "successful"]


def test_engine_restart_for_new_settings_keeps_a_running_job(fleet):
    worker = WORKER
    engine_before = fleet.unit_property(worker, "docker.service", "MainPID")
    uuid = container_job(fleet, "sh -c 'echo before; sleep 12; echo survived > /logs/out.txt; echo after'")
    assert fleet.wait_states(uuid, until=("running",)) == ["running"]
    try:
        result = fleet.playbook(
            "--limit", WORKER,
            extra_vars={"docker_engine_daemon_config": {
                "insecure-registries": ["docker-broker:5000"], "log-driver": "journald",
                "labels": ["saltant-fleet.test=changed"],
            }}
        )
        assert result.returncode == 0
        assert fleet.unit_property(worker, "docker.service", "MainPID") != engine_before
        assert fleet.wait_states(uuid) == ["running", "successful"]
        assert fleet.sh(worker, f"cat /var/lib/saltant-worker/logs/{uuid}/out.txt").strip() == "survived"
        # The engine's restart cut the worker's stream of the job's output:
        # once the job ended, its stdout was copied again, whole, once.
        assert fleet.sh(worker, f"cat /var/lib/saltant-worker/logs/{uuid}/{uuid}-stdout.txt") == "before\nafter\n"
    finally:
        # Back to the inventory's settings (only the engine's changed).
        assert fleet.playbook("--limit", WORKER, "--tags", "docker_engine").returncode == 0


def test_docker_ce_key_with_another_fingerprint_is_refused_and_nothing_is_left(fleet):
    """Docker's repository pointed at a key that is not Docker's: the run stops
    before any package changes, and no repository or keyring is left behind."""
    worker = WORKER
    test_key = fleet.sh(fleet.broker, "cat /srv/apt/key.fingerprint").strip()
    result = fleet.playbook("--limit", WORKER, extra_vars={
        "docker_engine_source": "docker-ce",
        "docker_engine_repo_url": f"http://{fleet.broker}:8080/docker",
        "docker_engine_repo_key_url": f"https://{fleet.broker}:8443/key.asc",
    })
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "refusing to trust it" in output
    assert test_key in output and "9DC858229FC7DD38854AE2D88D81803C0EBFCD88" in output
    assert fleet.sh(worker, "ls /etc/apt/sources.list.d/ /etc/apt/keyrings/").split().count("docker.sources") == 0
    assert "docker.asc" not in fleet.sh(worker, "ls /etc/apt/keyrings/")
    # The engine from the distribution is untouched and still runs jobs.
    assert fleet.sh(worker, "dpkg-query -W -f '${Status}' docker.io") == "install ok installed"
    assert fleet.unit_property(worker, "docker.service", "ActiveState") == "active"
    # With the inventory's settings the engine's role passes again.
    assert fleet.playbook("--limit", WORKER, "--tags", "docker_engine").returncode == 0


def test_docker_ce_repository_with_the_pinned_key_is_trusted_by_apt(fleet):
    """The docker-ce source's repository wiring, for real against a signed
    archive with the layout of Docker's: the key with the pinned fingerprint
    goes to /etc/apt/keyrings, the deb822 file names it in Signed-By, apt
    verifies the archive's signature with it, and a legacy docker.list is
    removed. (Installing Docker's packages is not tested: they cannot be
    fetched here.)"""
    worker = WORKER
    test_key = fleet.sh(fleet.broker, "cat /srv/apt/key.fingerprint").strip()
    fleet.sh(worker, "echo 'deb https://download.docker.com/linux/debian bookworm stable'"
                     " > /etc/apt/sources.list.d/docker.list")
    docker_ce = {
        "docker_engine_source": "docker-ce",
        "docker_engine_repo_url": f"http://{fleet.broker}:8080/docker",
        "docker_engine_repo_key_url": f"https://{fleet.broker}:8443/key.asc",
        "docker_engine_repo_key_fingerprint": test_key,
    }
    playbook = "testbed/docker-ce-repository.yml"
    try:
        assert fleet.playbook("--limit", WORKER, extra_vars=docker_ce, playbook=playbook).returncode == 0
        sources = fleet.sh(worker, "cat /etc/apt/sources.list.d/docker.sources")
        assert "Signed-By: /etc/apt/keyrings/docker.asc" in sources
        assert f"URIs: http://{fleet.broker}:8080/docker" in sources
        assert "docker.list" not in fleet.sh(worker, "ls /etc/apt/sources.list.d/")
        keyring = fleet.sh(worker, "gpg --show-keys --with-colons /etc/apt/keyrings/docker.asc")
        assert f":{test_key}:" in keyring
        # apt keeps the archive's InRelease only if its signature verifies
        # with that key (and --error-on=any fails on any warning).
        fleet.sh(worker, "apt-get update --error-on=any -qq")
        lists = fleet.sh(worker, "ls /var/lib/apt/lists/")
        assert f"{fleet.broker}:8080_docker_dists_bookworm_InRelease" in lists
        # A second run of every task changes nothing.
        again = fleet.playbook("--limit", WORKER, extra_vars={**docker_ce, "fleet_state_full_run": True},
                               playbook=playbook)
        assert again.returncode == 0 and "changed=0" in again.stdout
    finally:
        # The distribution source removes Docker's repository again.
        assert fleet.playbook("--limit", WORKER, playbook=playbook).returncode == 0
    listing = fleet.sh(worker, "ls /etc/apt/sources.list.d/ /etc/apt/keyrings/").split()
    assert "docker.sources" not in listing and "docker.asc" not in listing


def test_a_job_that_locks_its_log_directory_never_stops_the_shipping(fleet):
    """A Docker job runs as root in its container and makes its own log
    directory unreadable: the log shipper says so once, keeps running, and
    the next job's logs still ship."""
    shipper_pid = fleet.unit_property(WORKER, "saltant-log-shipper.service", "MainPID")
    locked = container_job(fleet, "sh -c 'echo hidden > /logs/out.txt; chown 0:0 /logs; chmod 700 /logs'")
    # The locking job may fail: its worker can no longer write there either.
    assert fleet.wait_states(locked)[-1:] in (["successful"], ["failed"])
    after = container_job(fleet, "sh -c 'echo after the locked one > /logs/out.txt'")
    assert fleet.wait_states(after) == ["running", "successful"]
    deadline = time.monotonic() + 30
    while json.loads(fleet.sh(fleet.broker, "/opt/testbed/s3_tool.py objects saltant-logs")).get(
            f"{after}/out.txt") != "after the locked one\n":
        assert time.monotonic() < deadline, "the next job's log did not ship"
        time.sleep(1)
    journal = fleet.sh(WORKER, "journalctl -u saltant-log-shipper -o cat --no-pager --since '-5min'")
    assert journal.count(f"cannot read the job directory /var/lib/saltant-worker/logs/{locked}") == 1
    assert fleet.unit_property(WORKER, "saltant-log-shipper.service", "MainPID") == shipper_pid
    fleet.sh(WORKER, f"rm -rf /var/lib/saltant-worker/logs/{locked}")


def test_jobs_past_the_soft_time_limit_are_stopped_and_fail_saying_so(fleet):
    """The limited instance (soft_time_limit 6, time_limit 30): an executable
    job with a child of its own and a Docker job, each meant to run five
    minutes, are stopped (no process or container is left) and fail with the
    reason in their stderr logs; the instance then runs the next job."""
    executable = fleet.publish("limitedqueue", task_class="executable", command_to_run="sh -c 'sleep 301 & sleep 302'",
                               env_vars_list=[], args_dict={}, json_file_option=None)
    container = container_job(fleet, "sleep 303", queue="limitedqueue")
    for uuid in (executable, container):
        assert fleet.wait_states(uuid, timeout=120) == ["running", "failed"]
        stderr = fleet.sh(WORKER, f"cat /var/lib/saltant-worker/logs/{uuid}/{uuid}-stderr.txt")
        assert "job failed: it ran longer than this worker's soft time limit of 6 seconds and was stopped" in stderr
    assert fleet.sh(WORKER, "pgrep -f 'sleep 30[123]' || true").strip() == ""
    assert fleet.sh(WORKER, f"docker ps -aq --filter name=saltant-job-{container}").strip() == ""
    quick = fleet.publish("limitedqueue", task_class="executable", command_to_run="true",
                          env_vars_list=[], args_dict={}, json_file_option=None)
    assert fleet.wait_states(quick) == ["running", "successful"]
    main_pid = fleet.unit_property(WORKER, "saltant-worker@limited.service", "MainPID")
    assert "--soft-time-limit=6 --time-limit=30" in fleet.sh(WORKER, f"tr '\\0' ' ' < /proc/{main_pid}/cmdline")


def test_a_job_whose_worker_is_killed_is_reported_failed_and_its_container_removed(fleet):
    """SIGKILL to the worker's main process while a Docker job runs: the
    unit restarts, reports the job failed (worker lost), and removes the
    container, which ran on outside the worker's cgroup."""
    uuid = container_job(fleet, "sleep 304")
    assert fleet.wait_states(uuid, until=("running",)) == ["running"]
    name = f"saltant-job-{uuid}"
    deadline = time.monotonic() + 60
    while fleet.sh(WORKER, f"docker ps -q --filter name={name}").strip() == "":
        assert time.monotonic() < deadline, "the job's container never ran"
        time.sleep(0.5)
    before = fleet.unit_property(WORKER, UNIT, "MainPID")
    fleet.sh(WORKER, f"systemctl kill --kill-whom=main --signal=SIGKILL {UNIT}")
    assert fleet.wait_states(uuid, timeout=120) == ["running", "failed"]
    assert fleet.unit_property(WORKER, UNIT, "MainPID") not in ("0", before)
    assert fleet.sh(WORKER, f"docker ps -aq --filter name={name}").strip() == ""
    stderr = fleet.sh(WORKER, f"cat /var/lib/saltant-worker/logs/{uuid}/{uuid}-stderr.txt")
    assert "saltant worker: job failed: worker lost" in stderr
    assert fleet.wait_states(container_job(fleet, "true")) == ["running", "successful"]


def test_a_revoked_queued_job_never_runs_even_after_a_restart(fleet):
    """Four held jobs fill the containers instance (two run, two wait in the
    broker's queue: the worker takes a job only when a process is free), so
    a fifth stays in the queue; it is revoked, then the instance restarts
    before it gets there: the revoke outlived the restart (Celery's
    --statedb), the job never runs and is reported terminated."""
    release = f"/var/lib/saltant-worker/release-{os.urandom(4).hex()}"
    held = [fleet.publish("dockerqueue", task_class="executable", env_vars_list=[], args_dict={},
                          json_file_option=None,
                          command_to_run=f"sh -c 'for i in $(seq 300); do [ -e {release} ] && exit 0; sleep 1; done'")
            for _ in range(4)]
    deadline = time.monotonic() + 60
    while sum("running" in fleet.states(uuid) for uuid in held) < 2:
        assert time.monotonic() < deadline, "the held jobs never ran"
        time.sleep(0.5)
    revoked = fleet.publish("dockerqueue", task_class="executable", command_to_run="true",
                            env_vars_list=[], args_dict={}, json_file_option=None)
    fleet.sh(fleet.broker, f"python3 /opt/testbed/publish_job.py --broker {fleet.local_broker_url} --revoke {revoked}")
    # The restart waits for the running jobs: released once it has begun.
    restart = subprocess.Popen(["docker", "exec", WORKER, "systemctl", "restart", UNIT])
    try:
        time.sleep(2)
        fleet.sh(WORKER, f"touch {release}")
        assert restart.wait(timeout=180) == 0
    finally:
        fleet.sh(WORKER, f"touch {release}")
        restart.kill()
    for uuid in held:
        assert fleet.wait_states(uuid) == ["running", "successful"]
    assert fleet.wait_states(revoked, until=("terminated", "running"), timeout=60) == ["terminated"]
    time.sleep(2)
    assert fleet.states(revoked) == ["terminated"]
    fleet.sh(WORKER, f"rm -f {release}")


def test_jobs_queued_behind_a_job_longer_than_the_consumer_timeout_run_once(fleet):
    """The broker closes a channel whose delivery stays unacknowledged past
    its consumer_timeout (15 s here, checked every second). The patient
    instance (one process) runs a 22 s job while three more wait: the worker
    takes each only when its process is free and acknowledges it at once, so
    all succeed exactly once, in order, with no channel error on either side
    and no redelivery."""
    timeout = fleet.sh(fleet.broker, "rabbitmqctl eval 'application:get_env(rabbit, consumer_timeout).'")
    assert timeout.strip() == "{ok,15000}"
    since = fleet.sh(WORKER, "date '+%Y-%m-%d %H:%M:%S'").strip()
    broker_log = "/var/log/rabbitmq/rabbit@docker-broker.log"
    broker_lines = int(fleet.sh(fleet.broker, f"wc -l < {broker_log}").strip())

    def job(seconds: int) -> str:
        return fleet.publish("patientqueue", task_class="executable", command_to_run=f"sleep {seconds}",
                             env_vars_list=[], args_dict={}, json_file_option=None)

    long = job(22)
    assert fleet.wait_states(long, until=("running",)) == ["running"]
    queued = [job(1) for _ in range(3)]
    for uuid in [long, *queued]:
        assert fleet.wait_states(uuid, timeout=120) == ["running", "successful"], uuid
    journal = fleet.sh(WORKER, f"journalctl -u saltant-worker@patient -o cat --no-pager --since '{since}'")
    for uuid in [long, *queued]:
        # Celery logs each delivery once ("Task NAME[UUID] received"): none was redelivered.
        assert journal.count(f"[{uuid}] received") == 1, (uuid, journal[-3000:])
    for error in ("PRECONDITION_FAILED", "PreconditionFailed", "Connection to broker lost", "consumer_timeout"):
        assert error not in journal, journal[-3000:]
    new_broker_lines = fleet.sh(fleet.broker, f"tail -n +{broker_lines + 1} {broker_log}")
    assert "timed out waiting for delivery acknowledgement" not in new_broker_lines, new_broker_lines[-3000:]
    # One process: each queued job started after the one before it ended.
    assert journal.index(f"[{long}] succeeded") < journal.index(f"[{queued[0]}] received")


def test_a_job_past_its_instances_memory_bound_fails_and_the_instance_serves_on(fleet):
    """The limited instance has memory_max 256M: an executable job (in the
    unit's cgroup) and a Docker job (outside it, in a container given the
    same bound) each allocating 400 MiB are killed by the kernel and fail
    saying so; the worker itself lives on and runs the next job."""
    unit = "saltant-worker@limited.service"
    assert fleet.unit_property(WORKER, unit, "MemoryMax") == str(256 << 20)
    assert fleet.unit_property(WORKER, unit, "TasksMax") == "200"
    assert fleet.unit_property(WORKER, unit, "OOMPolicy") == "continue"
    main_pid = fleet.unit_property(WORKER, unit, "MainPID")
    hog = "dd if=/dev/zero of=/dev/null bs=400M count=1"
    executable = fleet.publish("limitedqueue", task_class="executable", command_to_run=hog,
                               env_vars_list=[], args_dict={}, json_file_option=None)
    assert fleet.wait_states(executable, timeout=120) == ["running", "failed"]
    stderr = fleet.sh(WORKER, f"cat /var/lib/saltant-worker/logs/{executable}/{executable}-stderr.txt")
    assert "command killed: out of memory" in stderr, stderr
    container = container_job(fleet, hog, queue="limitedqueue")
    assert fleet.wait_states(container, timeout=120) == ["running", "failed"]
    stderr = fleet.sh(WORKER, f"cat /var/lib/saltant-worker/logs/{container}/{container}-stderr.txt")
    assert f"container killed: out of memory (its limit is {256 << 20} bytes" in stderr, stderr
    assert fleet.unit_property(WORKER, unit, "MainPID") == main_pid
    quick = fleet.publish("limitedqueue", task_class="executable", command_to_run="true",
                          env_vars_list=[], args_dict={}, json_file_option=None)
    assert fleet.wait_states(quick) == ["running", "successful"]


def test_disk_hygiene_prunes_images_no_container_uses(fleet):
    """saltant-worker-cleanup (a timer, hourly) removes images no container
    uses that were created more than saltant_worker_docker_prune_hours (168)
    ago (the test image claims year 1), and exited job containers as old;
    an image a container uses stays, and so do containers that are no
    job's or younger than that."""
    assert fleet.sh(WORKER, "systemctl is-enabled saltant-worker-cleanup.timer").strip() == "enabled"
    fleet.sh(WORKER, f"docker pull -q {IMAGE} && docker create --name hygiene-not-a-job {IMAGE} true"
                     f" && docker create --label saltant.job=hygiene --name hygiene-young-job {IMAGE} true")
    try:
        # The two containers use the image: it stays; so do they (one is no
        # job's, the other is younger than a week).
        fleet.sh(WORKER, "systemctl start saltant-worker-cleanup.service")
        names = fleet.sh(WORKER, "docker ps -a --format '{{.Names}}'").split()
        assert {"hygiene-not-a-job", "hygiene-young-job"} <= set(names)
        assert fleet.sh(WORKER, f"docker image inspect -f ok {IMAGE}").strip() == "ok"
        fleet.sh(WORKER, "docker rm hygiene-not-a-job hygiene-young-job")
        # Unused now: pruned.
        fleet.sh(WORKER, "systemctl start saltant-worker-cleanup.service")
        assert fleet.sh(WORKER, f"docker image inspect -f ok {IMAGE} 2>&1 || true").strip() != "ok"
        journal = fleet.sh(WORKER, "journalctl -u saltant-worker-cleanup -o cat --no-pager --since '-2min'")
        assert "unused images created more than 168 hours ago" in journal
        # The next job pulls it again.
        assert fleet.wait_states(container_job(fleet, "true")) == ["running", "successful"]
    finally:
        fleet.sh(WORKER, "docker rm -f hygiene-not-a-job hygiene-young-job >/dev/null 2>&1 || true")


def test_a_job_printing_more_than_dockers_bounded_log_keeps_all_of_it(fleet):
    """docker-worker1's engine keeps at most two files of 1 MiB of a
    container's output (docker_engine_log_max_size, docker_engine_log_max_file):
    a job printing 4 MB has every line in its stdout log, which the worker
    writes as the output comes, and which grows while the job runs."""
    config = json.loads(fleet.sh(WORKER, "cat /etc/docker/daemon.json"))
    assert config["log-opts"] == {"max-size": "1m", "max-file": "2"}
    assert fleet.sh(WORKER, "docker info --format '{{.LoggingDriver}}'").strip() == "json-file"
    printer = ("sh -c 'i=0; while [ $i -lt 4000 ]; do printf \"%04d %01000d\\n\" $i 0; i=$((i+1));"
               " [ $((i % 200)) -eq 0 ] && sleep 0.25; done; sleep 2'")
    uuid = container_job(fleet, printer)
    log = f"/var/lib/saltant-worker/logs/{uuid}/{uuid}-stdout.txt"
    assert fleet.wait_states(uuid, until=("running",)) == ["running"]
    sizes = []
    while fleet.states(uuid)[-1] == "running" and len(sizes) < 120:
        sizes.append(int(fleet.sh(WORKER, f"stat -c %s {log} 2>/dev/null || echo 0").strip()))
        time.sleep(0.5)
    assert fleet.wait_states(uuid) == ["running", "successful"]
    lines = fleet.sh(WORKER, f"cat {log}").splitlines()
    assert len(lines) == 4000 and lines[0].startswith("0000 ") and lines[-1].startswith("3999 ")
    assert all(len(line) == 1005 for line in lines)
    # It grew while the job ran (not copied at the end).
    assert any(0 < size < 4000 * 1006 for size in sizes), sizes
