"""Bad worker settings and the words their error must contain.

CASES: one host each in one preflight run (tests/unit/test_preflight.py);
FACT_CASES need facts of another distribution, which only extra vars can
override, so each runs on its own. GOOD: values Ansible users type that
must pass (booleans and numbers as `-e name=value` gives them). SECRETS:
values that must never appear in the output.
"""

from __future__ import annotations

# Facts of a Debian 12 host (extra vars win over gathered facts).
BOOKWORM = {
    "ansible_distribution": "Debian",
    "ansible_distribution_release": "bookworm",
    "ansible_distribution_major_version": "12",
    "ansible_distribution_version": "12.8",
}

TOKEN = "SECRET-token-4f1d"
PASSWORD = "SECRET-pass-9c2e"
S3_SECRET = "SECRET-s3-77a0"
SECRETS = [TOKEN, PASSWORD, S3_SECRET, "CHANGE-ME"]

GOOD = [{"name": "default", "queues": ["thistaskqueue"], "concurrency": 2}]
SINGULARITY = {"saltant_worker_container_runtimes": ["singularity"], "singularity_source": "neurodebian"}
DOCKER_CE = {"saltant_worker_container_runtimes": ["docker"], "docker_engine_source": "docker-ce"}


def instance(**changes) -> dict:
    return {"saltant_worker_instances": [{**GOOD[0], **changes}]}


def broker(url: str) -> dict:
    return {"saltant_worker_broker_url": url}


CASES: dict[str, tuple[dict, str]] = {
    # --- Types: held to meta/argument_specs.yml (the fleet_check role) ---
    "queues as a string": (instance(queues="default"), "saltant_worker_instances[0].queues must be a list"),
    "instances as a mapping": (
        {"saltant_worker_instances": {"default": {"queues": ["q"]}}}, "saltant_worker_instances must be a list"),
    "instance as a string": (
        {"saltant_worker_instances": ["default"]},
        "saltant_worker_instances[0] must be a mapping"),
    "misspelt instance key": (instance(queue=["q"]), "has the key 'queue'"),
    "misspelt concurrency key": (instance(concurency=2), "(did you mean concurrency?)"),
    "instance without queues key": ({"saltant_worker_instances": [{"name": "default"}]}, "needs the key 'queues'"),
    "runtimes as a string": (
        {"saltant_worker_container_runtimes": "docker"}, "saltant_worker_container_runtimes must be a list"),
    "extra groups as a string": (
        {"saltant_worker_extra_groups": "docker"},
        "saltant_worker_extra_groups must be a list"),
    "extra args as a string": ({"saltant_worker_extra_args": "-O fair"}, "saltant_worker_extra_args must be a list"),
    "extra arg of two words": ({"saltant_worker_extra_args": ["--max-tasks-per-child 10"]},
                               "saltant_worker_extra_args has [\"--max-tasks-per-child 10\"]"),
    "instance extra arg with a quote": (instance(extra_args=['--logfile="x.log"']),
                                        "saltant_worker_instances entry default extra_args has"),
    "extra arg a number": ({"saltant_worker_extra_args": [5]}, "saltant_worker_extra_args[0] must be a string"),
    "pip args as a list": ({"saltant_worker_pip_extra_args": ["--no-cache-dir"]},
                           "saltant_worker_pip_extra_args must be a string"),
    "misspelt worker variable": ({"saltant_worker_instance": GOOD}, "did you mean saltant_worker_instances?"),
    "misspelt shipper variable": ({"log_shipper_bucket_name": "logs"}, "did you mean log_shipper_bucket?"),
    "misspelt docker variable": ({"docker_engine_sources": "docker-ce"}, "did you mean docker_engine_source?"),
    "misspelt singularity variable": ({"singularity_sorce": "neurodebian"}, "did you mean singularity_source?"),
    "misspelt ca_trust variable": ({"ca_trust_certificate": []}, "did you mean ca_trust_certificates?"),
    "mode as a YAML number": (
        {"saltant_worker_dirs_mode": 488},
        "saltant_worker_dirs_mode must be a string, not a number"),
    "version as a YAML float": ({"saltant_worker_version": 1.2}, "quote it in YAML"),
    "s3cmd version as a float": ({"log_shipper_s3cmd_version": 2.4}, "log_shipper_s3cmd_version must be a string"),
    "boolean that is not": ({"saltant_worker_debug": "maybe"}, "saltant_worker_debug must be true or false"),
    "boolean 2": ({"log_shipper_create_bucket": 2}, "log_shipper_create_bucket must be true or false"),
    "boolean a list": ({"log_shipper_s3_use_https": ["yes"]}, "log_shipper_s3_use_https must be true or false"),
    "concurrency 0": ({"saltant_worker_concurrency": 0}, "saltant_worker_concurrency is 0; it must be from 1 to 1024"),
    "concurrency huge": ({"saltant_worker_concurrency": 100000}, "it must be from 1 to 1024"),
    "concurrency a word": ({"saltant_worker_concurrency": "two"}, "saltant_worker_concurrency must be an integer"),
    "concurrency a boolean": ({"saltant_worker_concurrency": True}, "saltant_worker_concurrency must be an integer"),
    "instance concurrency 0": (instance(concurrency=0), "saltant_worker_instances[0].concurrency is 0"),
    "instance stop timeout negative": (instance(stop_timeout=-1), "saltant_worker_instances[0].stop_timeout is -1"),
    "start timeout 0": ({"saltant_worker_start_timeout": 0}, "saltant_worker_start_timeout is 0"),
    "instance soft time limit negative": (
        instance(soft_time_limit=-1), "saltant_worker_instances[0].soft_time_limit is -1"),
    "time limit a word": ({"saltant_worker_time_limit": "1h"}, "saltant_worker_time_limit must be an integer"),
    "hard time limit too close to the soft one": (
        instance(soft_time_limit=100, time_limit=105),
        "has soft_time_limit 100, time_limit 105 and stop_timeout"),
    "time limit past the stop timeout": (
        {"saltant_worker_time_limit": 2592000}, "time_limit 2592000 and stop_timeout"),
    "soft time limit past the instance's stop timeout": (
        instance(soft_time_limit=600, stop_timeout=600), "has soft_time_limit 600, time_limit 0 and stop_timeout 600"),
    "reserve jobs a word": (
        instance(reserve_jobs="sometimes"), "saltant_worker_instances[0].reserve_jobs must be true or false"),
    "reserve jobs a list": (
        {"saltant_worker_reserve_jobs": ["no"]}, "saltant_worker_reserve_jobs must be true or false"),
    "memory bound in gigabytes with a space": (
        instance(memory_max="4 GB"), "saltant_worker_instances[0].memory_max is '4 GB'; it must be a size such as 4G"),
    "memory bound a fraction": ({"saltant_worker_memory_max": "0.5"}, "saltant_worker_memory_max is '0.5'; it must be"),
    "memory bound over 100 percent": ({"saltant_worker_memory_high": "150%"}, "saltant_worker_memory_high is '150%'"),
    "memory bound a number": ({"saltant_worker_memory_max": 4096}, "saltant_worker_memory_max must be a string"),
    "memory bound too small for the worker": (
        instance(memory_max="64M"), "has memory_max 64M (from the entry), 64.0 MiB on this host"),
    "cpu quota without percent": (instance(cpu_quota="2"), "saltant_worker_instances[0].cpu_quota is '2'"),
    "tasks max negative": ({"saltant_worker_tasks_max": -1}, "saltant_worker_tasks_max is -1"),
    "memory per child a size": (
        instance(max_memory_per_child="1G"), "saltant_worker_instances[0].max_memory_per_child must be an integer"),
    "cleanup schedule systemd cannot read": (
        {"saltant_worker_cleanup_schedule": "every hour"},
        "saltant_worker_cleanup_schedule is 'every hour', which systemd cannot read as a calendar event"),
    "cleanup schedule with a quote": (
        {"saltant_worker_cleanup_schedule": "daily'"}, "saltant_worker_cleanup_schedule is \"daily'\"; it must be"),
    "prune hours negative": ({"saltant_worker_docker_prune_hours": -1}, "saltant_worker_docker_prune_hours is -1"),
    "docker log bound in megabytes": (
        {"docker_engine_log_max_size": "100MB"},
        "docker_engine_log_max_size is '100MB'; it must be a size such as 100m"),
    "pool limit None": (
        {"saltant_worker_broker_pool_limit": "None"},
        "saltant_worker_broker_pool_limit must be an integer"),
    "pool limit huge": ({"saltant_worker_broker_pool_limit": 5000}, "saltant_worker_broker_pool_limit is 5000"),
    "shipping interval 0": ({"log_shipper_interval": 0}, "log_shipper_interval is 0; it must be from 1"),
    "retention negative": ({"log_shipper_retention_days": -5}, "log_shipper_retention_days is -5"),
    "pin priority 1000": ({"singularity_unstable_pin_priority": 1000}, "singularity_unstable_pin_priority is 1000"),
    "unknown log level": (
        {"saltant_worker_loglevel": "VERBOSE"},
        "saltant_worker_loglevel is 'VERBOSE'; it must be one of"),
    "Python 4": ({"saltant_worker_python_version": 4}, "saltant_worker_python_version is 4; it must be one of 2, 3"),
    "unknown requirement set": ({"saltant_worker_requirements": "celery5"}, "saltant_worker_requirements is 'celery5'"),
    "unknown runtime": (
        {"saltant_worker_container_runtimes": ["podman"]},
        "saltant_worker_container_runtimes[0] is 'podman'"),
    "unknown docker source": ({**DOCKER_CE, "docker_engine_source": "snap"}, "docker_engine_source is 'snap'"),
    "unknown singularity source": ({**SINGULARITY, "singularity_source": "snap"}, "singularity_source is 'snap'"),
    "relative home": ({"saltant_worker_home": "var/lib/saltant"}, "saltant_worker_home must be an absolute path"),
    "relative logs dir": ({"saltant_worker_logs_dir": "logs"}, "saltant_worker_logs_dir must be an absolute path"),
    "relative shipper logs dir": ({"log_shipper_logs_dir": "./logs"}, "log_shipper_logs_dir must be an absolute path"),
    "home with a space": ({"saltant_worker_home": "/srv/saltant worker"},
                          "saltant_worker_home must be a path without white space"),
    "logs dir with a systemd specifier": ({"saltant_worker_logs_dir": "/srv/logs-%i"},
                                          "saltant_worker_logs_dir must be a path without"),
    "temp dir climbing out": ({"saltant_worker_temp_dir": "/var/lib/saltant/../../etc"},
                              "saltant_worker_temp_dir must be a path without"),
    "writable path with a quote": ({"saltant_worker_read_write_paths": ["/data", "/scratch'x"]},
                                   "saltant_worker_read_write_paths[1] must be a path without"),
    "writable paths as a string": ({"saltant_worker_read_write_paths": "/data"},
                                   "saltant_worker_read_write_paths must be a list"),
    "worker user with a space": ({"saltant_worker_user": "saltant worker"},
                                 "saltant_worker_user, saltant_worker_group and"),
    "logs group with a capital": ({"log_shipper_logs_group": "Logs"}, "not [\"Logs\"]"),
    "unknown hardening level": ({"saltant_worker_hardening": "paranoid"},
                                "saltant_worker_hardening is 'paranoid'; it must be one of"),
    "hardening off as a YAML boolean": ({"saltant_worker_hardening": False},
                                        "saltant_worker_hardening must be a string"),
    "timezone with a line break": (
        {"saltant_worker_timezone": "UTC\nDEBUG=True"},
        "saltant_worker_timezone holds a line break"),
    "token with a line break": (
        {"saltant_worker_api_auth_token": TOKEN + "\nx"},
        "saltant_worker_api_auth_token holds a line break"),
    "repository with a line break": ({"saltant_worker_repo": f"https://u:{PASSWORD}@git.example.org/s.git\n"},
                                     "saltant_worker_repo holds a line break"),
    "token with a tab": (
        {"saltant_worker_api_auth_token": TOKEN + "\tx"},
        "saltant_worker_api_auth_token holds a line break"),
    "env extra value with a tab": (
        {"saltant_worker_env_extra": {"MY_VAR": TOKEN + "\tx"}},
        "'MY_VAR' must be a single-line string"),
    "S3 secret a number": ({"log_shipper_s3_secret_key": 12345}, "log_shipper_s3_secret_key must be a string"),
    "S3 secret with a line break": (
        {"log_shipper_s3_secret_key": S3_SECRET + "\n"},
        "log_shipper_s3_secret_key holds a line break"),
    "certificates as a string": ({"ca_trust_certificates": "corp.crt"}, "ca_trust_certificates must be a list"),
    "certificate with an unknown key": ({"ca_trust_certificates": [{"name": "corp", "path": "/x.crt"}]},
                                        "ca_trust_certificates[0] has the key 'path'"),
    "docker users as a string": ({"docker_engine_users": "saltant"}, "docker_engine_users must be a list"),
    "daemon config as a list": (
        {"docker_engine_daemon_config": ["debug"]},
        "docker_engine_daemon_config must be a mapping"),
    "singularity config as a string": (
        {"singularity_config": "mount home = no"},
        "singularity_config must be a mapping"),
    "env extra as a string": ({"saltant_worker_env_extra": "FOO=bar"}, "saltant_worker_env_extra must be a mapping"),
    # --- Values: the roles' own checks (tasks/validate.yml) ---
    "no instances": ({"saltant_worker_instances": []}, "saltant_worker_instances is empty"),
    "empty queue list": (instance(queues=[]), "has queues []; queues must be a non-empty list"),
    "duplicate instance": (
        {"saltant_worker_instances": GOOD + [{"name": "default", "queues": ["other"]}]},
        "duplicate instance names: default"),
    "instance name with capitals": (instance(name="Default"), "an instance named 'Default'"),
    "malformed queue": (instance(queues=["bad queue!"]), "bad queue!"),
    "queue with a dot": (instance(queues=["jobs.fast"]), "the saltant server's rule"),
    "queue with a colon": (instance(queues=["jobs:fast"]), "the saltant server's rule"),
    "queue of 51 characters": (instance(queues=["q" * 51]), "at most 50"),
    "duplicate queues": (instance(queues=["a", "a"]), "distinct names"),
    "server URL": ({"saltant_worker_django_base_url": "saltant.example.org"}, "saltant_worker_django_base_url"),
    "broker URL redis": (broker("redis://x"), "saltant_worker_broker_url must be an AMQP URL"),
    "broker password with #": (broker(f"pyamqp://saltant:{PASSWORD}#1@broker:5672/v"), "percent-encoded"),
    "broker password with ?": (broker(f"pyamqp://saltant:{PASSWORD}?@broker:5672/v"), "percent-encoded"),
    "broker password with /": (broker(f"pyamqp://saltant:{PASSWORD}/x@broker:5672/v"), "percent-encoded"),
    "broker without host": (broker(f"pyamqp://saltant:{PASSWORD}@/v"), "saltant_worker_broker_url must be an AMQP URL"),
    "broker port not a number": (broker(f"pyamqp://saltant:{PASSWORD}@broker:amqp/v"), "saltant_worker_broker_url"),
    "empty token": ({"saltant_worker_api_auth_token": ""}, "saltant_worker_api_auth_token must not be empty"),
    "Rollbar on without a token": ({"saltant_worker_use_rollbar": "yes", "saltant_worker_rollbar_access_token": ""},
                                   "saltant_worker_use_rollbar is true but"),
    "env extra redefines DEBUG": (
        {"saltant_worker_env_extra": {"DEBUG": "True"}},
        "'DEBUG', which the role writes itself"),
    "env extra redefines the broker": ({"saltant_worker_env_extra": {"CELERY_BROKER_URL": PASSWORD}},
                                       "'CELERY_BROKER_URL', which the role writes itself"),
    "env extra name with a dash": (
        {"saltant_worker_env_extra": {"MY-VAR": "x"}},
        "not a valid environment variable name"),
    "env extra value a list": (
        {"saltant_worker_env_extra": {"MY_VAR": ["x"]}},
        "'MY_VAR' must be a single-line string"),
    "env extra value with a line break": ({"saltant_worker_env_extra": {"MY_VAR": TOKEN + "\nDEBUG=True"}},
                                          "'MY_VAR' must be a single-line string"),
    "bad bucket name": ({"log_shipper_bucket": "Saltant_Logs"}, "log_shipper_bucket must be an S3 bucket name"),
    "bucket name too short": ({"log_shipper_bucket": "ab"}, "log_shipper_bucket must be an S3 bucket name"),
    "bucket name an IP address": (
        {"log_shipper_bucket": "192.168.1.10"},
        "log_shipper_bucket must be an S3 bucket name"),
    "bucket name with ..": ({"log_shipper_bucket": "logs..saltant"}, "log_shipper_bucket must be an S3 bucket name"),
    "bucket name reserved prefix": ({"log_shipper_bucket": "xn--logs"}, "log_shipper_bucket must be an S3 bucket name"),
    "empty S3 secret key": ({"log_shipper_s3_secret_key": ""}, "log_shipper_s3_secret_key must be set"),
    "endpoint with a scheme": (
        {"log_shipper_s3_host_base": "https://minio.example.org"},
        "log_shipper_s3_host_base must be HOST[:PORT]"),
    "short docker key fingerprint": (
        {**DOCKER_CE, "docker_engine_repo_key_fingerprint": "0EBFCD88"},
        "docker_engine_repo_key_fingerprint must be 40"),
    "NeuroDebian suite it does not publish": (
        {**SINGULARITY, "singularity_neurodebian_suite": "sid"},
        "singularity_source 'neurodebian' is supported on bullseye, bookworm, trixie"),
    "short NeuroDebian key fingerprint": (
        {**SINGULARITY, "singularity_neurodebian_key_fingerprint": "2649A5A9"},
        "singularity_neurodebian_key_fingerprint must be 40"),
    "s3cmd setting the role writes": (
        {"log_shipper_s3cmd_extra_config": {"socket_timeout": 5}},
        "log_shipper_s3cmd_extra_config has [\"socket_timeout\"]"),
    "multipart chunk below S3's minimum": (
        {"log_shipper_s3cmd_multipart_chunk_mb": 1}, "log_shipper_s3cmd_multipart_chunk_mb is 1"),
    "NeuroDebian key over plain HTTP": (
        {**SINGULARITY, "singularity_neurodebian_key_url": "http://neuro.debian.net/_static/neuro.debian.net.asc"},
        "singularity_neurodebian_key_url an https:// URL (got 'http://neuro.debian.net"),
    "docker key over plain HTTP": (
        {**DOCKER_CE, "docker_engine_repo_key_url": "http://download.docker.com/linux/debian/gpg"},
        "docker_engine_repo_key_url an https:// URL (got 'http://download.docker.com"),
    "multi-valued singularity setting": (
        {**SINGULARITY, "singularity_config": {"bind path": ["/scratch", "/data"], "Mount Home": "no"}},
        "check Mount Home, bind path"),
}

FACT_CASES: dict[str, tuple[dict, str]] = {
    "apptainer on Debian 12": (
        {"saltant_worker_container_runtimes": ["singularity"], "singularity_source": "distribution", **BOOKWORM},
        "singularity_source 'distribution' (Debian's apptainer) is supported on Debian 13"),
    "Python 2 on Debian 12": (
        {"saltant_worker_python_version": 2, **BOOKWORM},
        "saltant_worker_python_version is 2, but this host runs Debian 12.8 (bookworm)"),
}

# Values as Ansible users type them (`-e` gives strings): accepted.
GOOD_VALUES = {
    "saltant_worker_use_rollbar": "false",
    "saltant_worker_debug": "no",
    "saltant_worker_force_checkout": "False",
    "log_shipper_s3_use_https": 1,
    "log_shipper_create_bucket": "yes",
    "saltant_worker_concurrency": "4",
    "log_shipper_interval": "30",
    "saltant_worker_instances": [{"name": "default", "queues": ["jobs", "a@b+c-d_e", "q" * 50], "concurrency": "3",
                                  "soft_time_limit": "600", "time_limit": 610, "reserve_jobs": "yes",
                                  "memory_max": "2G", "memory_high": "1536M", "cpu_quota": "150%", "tasks_max": "512",
                                  "max_tasks_per_child": 100, "max_memory_per_child": "2000000"}],
    "saltant_worker_memory_max": "80%",
    "saltant_worker_cpu_quota": "",
    "saltant_worker_tasks_max": 0,
    "saltant_worker_cleanup_schedule": "*-*-* 03:00:00",
    "saltant_worker_singularity_image_days": "30",
    "saltant_worker_reserve_jobs": "no",
    "saltant_worker_soft_time_limit": "60",
    "saltant_worker_time_limit": "3599",
    "saltant_worker_env_extra": {"TESTBED_HOSTILE": " '\"#$=\\ ", "A_NUMBER": 5, "A_BOOL": True},
    "saltant_worker_broker_url": f"pyamqp://saltant:{PASSWORD}%23%3F%2F%40@broker.example.org:5672/saltant",
}

# A few of them are also run against a live, provisioned host.
LIVE = ["duplicate instance", "empty queue list", "pool limit None"]
