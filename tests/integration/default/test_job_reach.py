"""What job code can touch on a worker host: the fleet's secrets and the
installed code are out of its reach; its own directories are not."""

from __future__ import annotations

# Each probe: a name and a shell command that succeeds only if the job could
# do it. The worker expands $NAME in a job's command: none is used here.
PROBES = {
    "append to .env": "echo x >> /opt/saltant-worker/src/.env",
    "replace .env": "cp /opt/saltant-worker/src/.env /opt/saltant-worker/src/.env.new",
    "rename .env": "mv /opt/saltant-worker/src/.env /opt/saltant-worker/src/.env.old",
    "read the s3cmd keys": "cat /etc/saltant-log-shipper/s3cfg",
    "rewrite the shipper settings": "echo x >> /etc/saltant-log-shipper/shipper.json",
    "change the worker code": "touch /opt/saltant-worker/venv/bin/celery",
    "write under /etc": "touch /etc/saltant-job-was-here",
    "write under /usr/local": "touch /usr/local/bin/saltant-job-was-here",
    "write under /home": "touch /home/saltant-job-was-here",
    "write in its job directory": "touch ./job-was-here",
    "write under the results directory": "touch /var/lib/saltant-worker/results/job-was-here",
    "write in /tmp": "touch /tmp/job-was-here",
}
MAY = {"write in its job directory", "write under the results directory", "write in /tmp"}


def test_job_code_cannot_reach_secrets_or_code(fleet):
    assert not any("'" in name or '"' in name for name in PROBES)
    script = "; ".join(
        f"if ({command}) >/dev/null 2>&1; then echo 'done: {name}'; else echo 'refused: {name}'; fi"
        for name, command in PROBES.items()
    )
    uuid = fleet.publish(
        "thistaskqueue", task_class="executable", command_to_run=f'sh -c "{script}"',
        env_vars_list=[], args_dict={}, json_file_option=None,
    )
    assert fleet.wait_states(uuid) == ["running", "successful"]
    worker = fleet.workers[0]
    out = fleet.sh(worker, f"cat /var/lib/saltant-worker/logs/{uuid}/{uuid}-stdout.txt").splitlines()
    assert out == [("done: " if name in MAY else "refused: ") + name for name in PROBES]
    # The worker itself still reads .env (it runs jobs), and the secrets are intact.
    assert fleet.sh(worker, "stat -c '%U:%G %a' /opt/saltant-worker/src/.env").strip() == "root:saltant 640"
    fleet.sh(worker, "rm -f /var/lib/saltant-worker/results/job-was-here")
