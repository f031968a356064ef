"""Drive the live hosts of a Molecule scenario from pytest.

The hosts are the scenario's containers; the inventory is the scenario's
(molecule.yml groups, the demo group_vars, the scenario's host_vars) with
Molecule's connection options, so site.yml runs exactly as in converge.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import shlex
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import yaml

from helpers.cgroups import containers_cpu_seconds
from helpers.recap import recap

ROOT = Path(__file__).resolve().parents[2]
# One JSON line per playbook run of the integration tests: what it cost
# (tests/run.py lists the costliest).
LEDGER = ROOT / "tests" / "results" / "playbooks.jsonl"
VAULT_PASSWORD = ROOT / "testbed" / "vault-password"


class Fleet:
    def __init__(self, scenario: str, workdir: Path) -> None:
        self.scenario = scenario
        # What the controller serves to the test bed (bundles, commit ids).
        self.cache = Path(os.environ.get("SALTANT_FLEET_CACHE", ROOT / ".cache" / "testbed" / scenario))
        spec = yaml.safe_load((ROOT / "molecule" / scenario / "molecule.yml").read_text())
        self.groups: dict[str, list[str]] = {}
        for platform in spec["platforms"]:
            for group in platform.get("groups", []):
                self.groups.setdefault(group, []).append(platform["name"])
        self.inventory = workdir / "inventory"
        self.inventory.mkdir(parents=True, exist_ok=True)
        # Reached as Molecule reaches them (its shared provisioner settings).
        molecule_config = yaml.safe_load((ROOT / ".config" / "molecule" / "config.yml").read_text())
        hosts = {
            "all": {
                "vars": molecule_config["provisioner"]["connection_options"],
                "children": {g: {"hosts": {h: None for h in hs}} for g, hs in self.groups.items()},
            }
        }
        (self.inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
        for name, target in (
            ("group_vars", ROOT / "inventory" / "demo" / "group_vars"),
            ("host_vars", ROOT / "molecule" / scenario / "host_vars"),
        ):
            link = self.inventory / name
            if not link.exists():
                link.symlink_to(target)
        secrets = subprocess.run(
            ["ansible-vault", "view", "--vault-password-file", str(VAULT_PASSWORD),
             str(ROOT / "inventory" / "demo" / "group_vars" / "all" / "vault.yml")],
            check=True, capture_output=True, text=True,
        ).stdout
        self.secrets: dict[str, str] = yaml.safe_load(secrets)
        self._publisher: subprocess.Popen | None = None
        self._publishing = threading.Lock()

    @property
    def broker(self) -> str:
        return self.groups["testbed_brokers"][0]

    @property
    def workers(self) -> list[str]:
        return self.groups["saltant_workers"]

    def host_vars(self, host: str) -> dict:
        """The host's own variables (molecule/SCENARIO/host_vars/HOST.yml)."""
        path = ROOT / "molecule" / self.scenario / "host_vars" / f"{host}.yml"
        return yaml.safe_load(path.read_text()) if path.exists() else {}

    def queue_of(self, host: str) -> str:
        """The first queue of the host's first worker instance."""
        return self.host_vars(host)["saltant_worker_instances"][0]["queues"][0]

    # --- Ansible -------------------------------------------------------------

    def playbook(self, *args: str, extra_vars: dict | None = None,
                 playbook: str = "site.yml") -> subprocess.CompletedProcess:
        arguments = [*args, *(["--extra-vars", json.dumps(extra_vars)] if extra_vars is not None else [])]
        argv = ["ansible-playbook", "-i", str(self.inventory), str(ROOT / playbook), *arguments]
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_VAULT_PASSWORD_FILE": str(VAULT_PASSWORD),
            "ANSIBLE_ROLES_PATH": f"{ROOT / 'roles'}:{ROOT / 'testbed' / 'roles'}",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "SALTANT_FLEET_CACHE": str(self.cache),
        }
        before = self._cpu()
        started = time.monotonic()
        result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
        self._account([playbook, *arguments], time.monotonic() - started, before, result)
        print(result.stdout[-20000:])
        print(result.stderr[-5000:])
        return result

    def _cpu(self) -> tuple[float, float]:
        """CPU seconds so far: this process's children (Ansible), the scenario's hosts."""
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (children.ru_utime + children.ru_stime,
                containers_cpu_seconds(f"network=saltant-fleet-{self.scenario}"))

    def _account(self, args: list[str], seconds: float, before: tuple[float, float],
                 result: subprocess.CompletedProcess) -> None:
        """Add the run (the playbook and its arguments) to the ledger."""
        here, hosts = (after - was for after, was in zip(self._cpu(), before))
        tasks = {host: counts.get("ok", 0) + counts.get("failed", 0) for host, counts in recap(result.stdout).items()}
        entry = {"time": time.time(), "scenario": self.scenario,
                 "test": os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0],
                 "args": args, "rc": result.returncode,
                 "seconds": round(seconds, 1), "cpu_here": round(here, 1), "cpu_hosts": round(hosts, 1),
                 "tasks": tasks}
        LEDGER.parent.mkdir(parents=True, exist_ok=True)
        with LEDGER.open("a") as ledger:
            ledger.write(json.dumps(entry) + "\n")

    # --- Hosts -----------------------------------------------------------------

    def sh(self, host: str, command: str, check: bool = True) -> str:
        result = subprocess.run(
            ["docker", "exec", host, "sh", "-c", command], capture_output=True, text=True
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{host}: {command!r} exited {result.returncode}: {result.stderr}")
        return result.stdout

    def unit_property(self, host: str, unit: str, prop: str) -> str:
        return self.sh(host, f"systemctl show --value -p {prop} {unit}").strip()

    def publish_worker_version(self, tag: str, files: dict[str, str] | None = None) -> str:
        """Commit files (path: content; a NEXT_VERSION file by default) on top
        of the worker_src version the broker serves, tag it, push it; the commit id."""
        writes = "\n".join(
            f"mkdir -p \"$(dirname {shlex.quote(path)})\" && printf '%s' {shlex.quote(content)} > {shlex.quote(path)}"
            f" && git add {shlex.quote(path)}"
            for path, content in (files or {"NEXT_VERSION": "next version\n"}).items()
        )
        script = f"""
set -e
rm -rf /tmp/next && git clone -q /srv/git/saltant-worker.git /tmp/next && cd /tmp/next
git checkout -q testbed
{writes}
git -c user.name=test -c user.email=test@localhost commit -qm {shlex.quote(tag)}
git tag {shlex.quote(tag)}
git push -q origin {shlex.quote(tag)}
git rev-parse HEAD
"""
        return self.sh(self.broker, script).strip()

    def worker_facts(self, host: str) -> dict:
        return json.loads(self.sh(host, "cat /etc/ansible/facts.d/saltant_worker.fact"))

    # --- Jobs --------------------------------------------------------------------

    @property
    def local_broker_url(self) -> str:
        """The broker's URL as seen on the broker host (where the test bed's tools run)."""
        return "pyamqp://saltant:{}@127.0.0.1:5672/saltant".format(self.secrets["vault_testbed_broker_password"])

    def publish(self, queue: str, **kwargs: object) -> str:
        """Publish a job as the saltant server does (publish_job.py on the
        broker host: one process, kept for every job, over one connection); its uuid."""
        request = json.dumps({"queue": queue, "kwargs": kwargs}) + "\n"
        with self._publishing:
            for _ in range(2):
                if self._publisher is None or self._publisher.poll() is not None:
                    self._publisher = subprocess.Popen(
                        ["docker", "exec", "-i", self.broker, "python3", "/opt/testbed/publish_job.py",
                         "--broker", self.local_broker_url, "--stdin"],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                try:
                    self._publisher.stdin.write(request)
                    self._publisher.stdin.flush()
                    line = self._publisher.stdout.readline()
                except OSError:
                    line = ""
                if line:
                    answer = json.loads(line)
                    if "uuid" not in answer:
                        raise AssertionError(f"publishing to {queue} failed: {answer['error']}")
                    return answer["uuid"]
                # The publisher is gone (the broker host restarted): start another.
                self._publisher.kill()
                self._publisher = None
        raise AssertionError(f"publishing to {queue} failed: the publisher on {self.broker} exits at start")

    def held_job(self, queue: str) -> tuple[str, str]:
        """A job that runs until the test creates its release file (in the
        worker's home, which jobs can read; `touch` it on the host that runs
        the job), so it outlasts a play however slow the machine; its uuid
        and that file, once the job runs."""
        release = f"/var/lib/saltant-worker/release-{os.urandom(4).hex()}"
        uuid = self.publish(
            queue,
            task_class="executable",
            command_to_run=f"sh -c 'for i in $(seq 900); do [ -e {release} ] && exit 0; sleep 1; done; exit 1'",
            env_vars_list=[],
            args_dict={},
            json_file_option=None,
        )
        assert "running" in self.wait_states(uuid, until=("running",), timeout=60)
        return uuid, release

    @functools.cached_property
    def broker_address(self) -> str:
        """The broker host's address on the scenario's Docker network, which
        the controller reaches directly (no `docker exec` per request)."""
        out = subprocess.run(
            ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", self.broker],
            check=True, capture_output=True, text=True,
        ).stdout
        return out.split()[0]

    def states(self, uuid: str) -> list[str]:
        """The states the worker reported for job UUID to the status API stand-in, in order."""
        url = f"http://{self.broker_address}:8000/records?uuid={uuid}"
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=30) as response:
            return [r["state"] for r in json.loads(response.read())]

    def wait_states(self, uuid: str, until: tuple[str, ...] = ("successful", "failed", "terminated"),
                    timeout: float = 90) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            states = self.states(uuid)
            if any(s in until for s in states) or time.monotonic() > deadline:
                return states
            time.sleep(0.5)
