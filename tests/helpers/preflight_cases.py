"""Bad worker settings and the words their error must contain."""

from __future__ import annotations

# Facts of a Debian 12 host (extra vars win over gathered facts).
BOOKWORM = {
    "ansible_distribution": "Debian",
    "ansible_distribution_release": "bookworm",
    "ansible_distribution_major_version": "12",
    "ansible_distribution_version": "12.8",
}

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
    "unknown requirement set": ({"saltant_worker_requirements": "celery5"}, "saltant_worker_requirements"),
    "start timeout 0": ({"saltant_worker_start_timeout": 0}, "saltant_worker_start_timeout"),
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
    "apptainer on Debian 12": (
        {"saltant_worker_container_runtimes": ["singularity"], "singularity_source": "distribution",
         **BOOKWORM},
        "singularity_source 'distribution' (Debian's apptainer) is supported on Debian 13",
    ),
    "NeuroDebian suite it does not publish": (
        {"saltant_worker_container_runtimes": ["singularity"], "singularity_source": "neurodebian",
         "singularity_neurodebian_suite": "sid"},
        "singularity_source 'neurodebian' is supported on bullseye, bookworm, trixie",
    ),
    "unknown singularity source": (
        {"saltant_worker_container_runtimes": ["singularity"], "singularity_source": "snap"},
        "singularity_source",
    ),
    "short NeuroDebian key fingerprint": (
        {"saltant_worker_container_runtimes": ["singularity"], "singularity_source": "neurodebian",
         "singularity_neurodebian_key_fingerprint": "2649A5A9"},
        "singularity_neurodebian_key_fingerprint must be 40",
    ),
    "multi-valued singularity setting": (
        {"saltant_worker_container_runtimes": ["singularity"], "singularity_source": "neurodebian",
         "singularity_config": {"bind path": ["/scratch", "/data"], "Mount Home": "no"}},
        "check Mount Home, bind path",
    ),
    "Python 2 on Debian 12": (
        {"saltant_worker_python_version": 2, **BOOKWORM},
        "saltant_worker_python_version is 2, but this host runs Debian 12.8 (bookworm)",
    ),
    "Python 4": ({"saltant_worker_python_version": 4}, "saltant_worker_python_version"),
    "bad bucket name": ({"log_shipper_bucket": "Saltant_Logs"}, "log_shipper_bucket must be an S3 bucket name"),
    "empty S3 secret key": ({"log_shipper_s3_secret_key": ""}, "log_shipper_s3_secret_key must be set"),
    "shipping interval 0": ({"log_shipper_interval": 0}, "log_shipper_interval must be at least 1"),
    "endpoint with a scheme": (
        {"log_shipper_s3_host_base": "https://minio.example.org"}, "log_shipper_s3_host_base must be HOST[:PORT]"),
}

# A few of them are also run against a live, provisioned host.
LIVE = ["duplicate instance", "empty queue list", "pool limit None"]
