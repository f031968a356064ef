"""AMQP over TLS (saltant_worker_rabbitmq_uses_ssl): the worker checks the
broker's certificate chain and host name. The broker host serves TLS on
5671 with a certificate from the test bed CA for its own DNS name only;
reached by that name the worker runs jobs, reached by its IP address (the
same certificate, but not for that name) it refuses to connect and the
run fails on the host, saying why."""

from __future__ import annotations

WORKER = "singularity-worker1"
TAGS = ("--limit", WORKER, "--tags", "saltant_worker_config,saltant_worker_service")


def over_tls(host: str) -> dict:
    return {
        "saltant_worker_rabbitmq_uses_ssl": True,
        "saltant_worker_broker_url": (
            "pyamqp://{{ testbed_broker_user }}:{{ testbed_broker_password }}@" + host
            + ":5671/{{ testbed_broker_vhost }}"
        ),
        "saltant_worker_start_timeout": 20,
    }


def test_the_worker_checks_the_brokers_host_name(fleet):
    try:
        wrong = fleet.playbook(*TAGS, extra_vars=over_tls(fleet.broker_address))
        output = wrong.stdout + wrong.stderr
        assert wrong.returncode != 0
        assert "certificate verify failed" in output and "mismatch" in output
        for secret in fleet.secrets.values():
            assert secret not in output

        right = fleet.playbook(*TAGS, extra_vars=over_tls(fleet.broker))
        assert right.returncode == 0
        # RabbitMQ sees the worker's connections over TLS, and only those.
        address = fleet.sh(WORKER, "hostname -I").split()[0]
        connections = fleet.sh(fleet.broker, "rabbitmqctl -q list_connections peer_host ssl").splitlines()
        mine = {line.split()[1] for line in connections if line.split()[:1] == [address]}
        assert mine == {"true"}, connections
        uuid = fleet.publish("singularityqueue", task_class="executable", command_to_run="true",
                             env_vars_list=[], args_dict={}, json_file_option=None)
        assert fleet.wait_states(uuid) == ["running", "successful"]
    finally:
        assert fleet.playbook(*TAGS).returncode == 0
