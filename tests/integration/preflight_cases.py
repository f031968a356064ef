"""Bad worker settings and the words their error must contain."""

from __future__ import annotations

GOOD = [{"name": "default", "queues": ["thistaskqueue"], "concurrency": 2}]

CASES = {
    "no instances": ({"saltant_worker_instances": []}, "saltant_worker_instances is empty"),
    "empty queue list": (
        {"saltant_worker_instances": [{"name": "default", "queues": []}]},
        "has queues []; queues must be a non-empty list",
    ),
    "duplicate instance": (
        {"saltant_worker_instances": GOOD + [{"name": "default", "queues": ["other"]}]},
        "duplicate instance names: default",
    ),
    "malformed queue": (
        {"saltant_worker_instances": [{"name": "default", "queues": ["bad queue!"]}]},
        "bad queue!",
    ),
    "instance without queues key": (
        {"saltant_worker_instances": [{"name": "default"}]},
        "queues",
    ),
    "pool limit None": ({"saltant_worker_broker_pool_limit": "None"}, "saltant_worker_broker_pool_limit"),
    "boolean that is not": ({"saltant_worker_debug": "maybe"}, "saltant_worker_debug"),
    "server URL": ({"saltant_worker_django_base_url": "saltant.example.org"}, "saltant_worker_django_base_url"),
    "broker URL": ({"saltant_worker_broker_url": "redis://x"}, "saltant_worker_broker_url"),
    "empty token": ({"saltant_worker_api_auth_token": ""}, "saltant_worker_api_auth_token"),
    "unknown runtime": ({"saltant_worker_container_runtimes": ["podman"]}, "saltant_worker_container_runtimes"),
    "unknown docker source": (
        {"saltant_worker_container_runtimes": ["docker"], "docker_engine_source": "snap"},
        "docker_engine_source",
    ),
    "short docker key fingerprint": (
        {"saltant_worker_container_runtimes": ["docker"], "docker_engine_source": "docker-ce",
         "docker_engine_repo_key_fingerprint": "0EBFCD88"},
        "docker_engine_repo_key_fingerprint must be 40",
    ),
}

# A few of them are also run against a live, provisioned host.
LIVE = ["duplicate instance", "empty queue list", "pool limit None"]
