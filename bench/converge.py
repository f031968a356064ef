#!/usr/bin/env python3
"""Benchmark: site.yml on 1, 2 and 4 worker hosts, against a no-op playbook.

Side by side in one run, on the test bed's own hosts (systemd containers of
saltant-fleet/debian:12 and a broker host from saltant-fleet/broker:12,
reached over SSH as Molecule reaches them, the demo inventory's settings):

- no-op: a playbook that gathers facts and pings, on 1 and on 4 hosts;
- one shell command: a playbook of one raw task and no facts, Ansible's own
  cost of a play over 1 and 4 hosts;
- fresh converge: site.yml on 1, 2 and 4 new hosts (containers recreated);
- idempotent re-run: site.yml again on 1 and on 4 provisioned hosts, as it
  runs by default (hosts whose record matches are skipped: fleet_state) and
  with every task (fleet_state_full_run), which is what it cost before;
- a new worker setting (saltant_worker_loglevel): the worker's role runs, the
  other roles match their record and are skipped.

Each figure is the median of --repeat runs (fresh converges: one each), with
the CPU seconds it took here (Ansible) and on the hosts (their cgroups): on
a machine with few cores, N hosts' work cannot take less than their CPU
seconds over the cores, which bounds the ratios of 4 hosts to 1.
Results are printed and written to bench/results/converge.{md,json}.

    make bench-converge   # or: .venv/bin/python bench/converge.py [--repeat 3]

It uses the test bed's images (`make images`) and Docker.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_file import write_results  # noqa: E402
from tests.helpers.cgroups import containers_cpu_seconds  # noqa: E402

NETWORK = "saltant-fleet-bench"
BROKER = "bench-broker"
WORKERS = [f"bench-worker{n}" for n in range(1, 5)]
NOOP = """---
- name: No-op
  hosts: saltant_workers
  gather_facts: true
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""
# Ansible's own cost of a play over N hosts: one shell command each.
RAW = """---
- name: One shell command
  hosts: saltant_workers
  gather_facts: false
  tasks:
    - name: True
      ansible.builtin.raw: "true"
      changed_when: false
"""


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


def start(host: str, image: str) -> None:
    subprocess.run(["docker", "rm", "-f", host], capture_output=True)
    run(["docker", "run", "-d", "--name", host, "--hostname", host, "--network", NETWORK,
         "--cap-add", "SYS_ADMIN", "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
         "--tmpfs", "/run", "--tmpfs", "/run/lock", "--label", "saltant-fleet=bench", image])


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.cache = work / "cache"
        inventory = work / "inventory"
        (inventory / "host_vars").mkdir(parents=True)
        molecule = yaml.safe_load((ROOT / ".config" / "molecule" / "config.yml").read_text())
        hosts = {"all": {"vars": molecule["provisioner"]["connection_options"], "children": {
            "testbed_brokers": {"hosts": {BROKER: {"testbed_broker_s3": True}}},
            "saltant_workers": {"hosts": dict.fromkeys(WORKERS)},
        }}}
        (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
        (inventory / "group_vars").symlink_to(ROOT / "inventory" / "demo" / "group_vars")
        for host in WORKERS:
            (inventory / "host_vars" / f"{host}.yml").write_text(yaml.safe_dump({"saltant_worker_instances": [
                {"name": "default", "queues": ["thistaskqueue"], "concurrency": 2}]}))
        self.inventory = inventory
        self.cpu: tuple[float, float] = (0.0, 0.0)
        (work / "noop.yml").write_text(NOOP)
        (work / "raw.yml").write_text(RAW)

    def playbook(self, playbook: Path, hosts: list[str], *args: str) -> float:
        """Seconds the run took; its CPU seconds (this machine's, the hosts') go to self.cpu."""
        env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
               "ANSIBLE_VAULT_PASSWORD_FILE": str(ROOT / "testbed" / "vault-password"),
               "ANSIBLE_ROLES_PATH": f"{ROOT / 'roles'}:{ROOT / 'testbed' / 'roles'}",
               "SALTANT_FLEET_CACHE": str(self.cache)}
        limit = ",".join(hosts + ([BROKER, "localhost"] if playbook.name == "prepare.yml" else []))
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        hosts_cpu = containers_cpu_seconds("label=saltant-fleet=bench")
        started = time.monotonic()
        result = subprocess.run(["ansible-playbook", "-i", str(self.inventory), str(playbook), "--limit", limit,
                                 *args], capture_output=True, text=True, env=env, cwd=ROOT)
        elapsed = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu = (after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime,
                    containers_cpu_seconds("label=saltant-fleet=bench") - hosts_cpu)
        if result.returncode != 0:
            raise SystemExit(f"{playbook.name} on {limit} failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
        return elapsed

    def median(self, repeat: int, playbook: Path, hosts: list[str], *args: str) -> tuple[float, tuple]:
        runs = []
        for _ in range(repeat):
            runs.append((self.playbook(playbook, hosts, *args), self.cpu))
        return statistics.median(r[0] for r in runs), (statistics.median(r[1][0] for r in runs),
                                                      statistics.median(r[1][1] for r in runs))

    def fresh(self, hosts: list[str]) -> tuple[float, tuple]:
        for host in hosts:
            start(host, "saltant-fleet/debian:12")
        # The broker's TLS CA and git daemon need the workers' trust (prepare).
        self.playbook(ROOT / "testbed" / "prepare.yml", hosts)
        return self.playbook(ROOT / "site.yml", hosts), self.cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    subprocess.run(["docker", "network", "create", NETWORK], capture_output=True)
    start(BROKER, "saltant-fleet/broker:12")
    figures: dict[str, float] = {}
    cpu: dict[str, tuple] = {}
    with tempfile.TemporaryDirectory(prefix="saltant-bench-") as work:
        bench = Bench(Path(work))
        try:
            noop = Path(work) / "noop.yml"
            site = ROOT / "site.yml"
            one, two, four = WORKERS[:1], WORKERS[:2], WORKERS
            for label, hosts in (("1", one), ("2", two), ("4", four)):
                figures[f"fresh {label}"], cpu[f"fresh {label}"] = bench.fresh(hosts)
            for label, hosts in (("1", one), ("4", four)):
                figures[f"no-op {label}"], cpu[f"no-op {label}"] = bench.median(args.repeat, noop, hosts)
                figures[f"raw {label}"], cpu[f"raw {label}"] = bench.median(args.repeat, Path(work) / "raw.yml", hosts)
                figures[f"idempotent {label}"], cpu[f"idempotent {label}"] = bench.median(args.repeat, site, hosts)
                figures[f"every task {label}"], cpu[f"every task {label}"] = bench.median(
                    args.repeat, site, hosts, "-e", "fleet_state_full_run=true")
                # A new worker setting each time: the worker's role runs, the others are skipped.
                runs = [(bench.playbook(site, hosts, "-e", f"saltant_worker_loglevel={level}"), bench.cpu)
                        for level in ([{"1": "WARNING", "4": "ERROR"}[label], "INFO"] * args.repeat)[:args.repeat]]
                figures[f"one role {label}"] = statistics.median(r[0] for r in runs)
                cpu[f"one role {label}"] = tuple(statistics.median(r[1][i] for r in runs) for i in (0, 1))
        finally:
            for host in [BROKER, *WORKERS]:
                subprocess.run(["docker", "rm", "-f", host], capture_output=True)
            subprocess.run(["docker", "network", "rm", NETWORK], capture_output=True)
    f = figures
    rows = [
        ("no-op playbook (facts + ping)", f["no-op 1"], f["no-op 4"], "1.0x", f"{f['no-op 4'] / f['no-op 1']:.2f}x"),
        ("one shell command (raw), no facts", f["raw 1"], f["raw 4"], f"{f['raw 1'] / f['no-op 1']:.1f}x",
         f"{f['raw 4'] / f['raw 1']:.2f}x"),
        ("site.yml, idempotent re-run", f["idempotent 1"], f["idempotent 4"],
         f"{f['idempotent 1'] / f['no-op 1']:.1f}x (target <= 5x)",
         f"{f['idempotent 4'] / f['idempotent 1']:.2f}x (target <= 1.3x)"),
        ("site.yml, every task (fleet_state_full_run)", f["every task 1"], f["every task 4"],
         f"{f['every task 1'] / f['no-op 1']:.1f}x", f"{f['every task 4'] / f['every task 1']:.2f}x"),
        ("site.yml, a new worker setting (the worker's role runs)", f["one role 1"], f["one role 4"],
         f"{f['one role 1'] / f['no-op 1']:.1f}x", f"{f['one role 4'] / f['one role 1']:.2f}x"),
        ("site.yml, fresh converge", f["fresh 1"], f["fresh 4"], "",
         f"{f['fresh 4'] / f['fresh 1']:.2f}x (target <= 1.6x); 2 hosts {f['fresh 2']:.1f} s, "
         f"{f['fresh 2'] / f['fresh 1']:.2f}x"),
    ]
    table = ("| run | 1 host (s) | 4 hosts (s) | 1 host vs no-op | 4 hosts vs 1 host |\n"
             "| --- | ---: | ---: | --- | --- |\n"
             + "\n".join(f"| {r[0]} | {r[1]:.1f} | {r[2]:.1f} | {r[3]} | {r[4]} |" for r in rows))
    cores = os.cpu_count() or 1
    table += ("\n\nCPU seconds of each run: this machine's (Ansible) and the hosts' (their cgroups), and the\n"
              f"least time {cores} cores need for that work (CPU seconds / {cores}).\n\n"
              "| run | hosts | seconds | CPU-s here | CPU-s hosts | CPU-s / cores |\n"
              "| --- | ---: | ---: | ---: | ---: | ---: |\n"
              + "\n".join(f"| {key.rsplit(' ', 1)[0]} | {key.rsplit(' ', 1)[1]} | {f[key]:.1f} | {here:.1f} | "
                          f"{hosts:.1f} | {(here + hosts) / cores:.1f} |"
                          for key, (here, hosts) in cpu.items()))
    figures.update({f"cpu {key}": sum(value) for key, value in cpu.items()})
    write_results(ROOT / "bench" / "results", "converge",
                  "site.yml on 1, 2 and 4 hosts against a no-op playbook", table, figures,
                  setup=f"{os.cpu_count()} cores, the test bed's systemd containers reached over SSH")
    return 0


if __name__ == "__main__":
    sys.exit(main())
