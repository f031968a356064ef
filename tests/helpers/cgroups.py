"""CPU seconds of the test bed's containers, read from their cgroups (v1 or v2)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def containers_cpu_seconds(docker_filter: str) -> float:
    """CPU seconds the running containers that match a `docker ps --filter` have used so far."""
    try:
        ids = subprocess.run(["docker", "ps", "-q", "--no-trunc", "--filter", docker_filter],
                             capture_output=True, text=True, check=False).stdout.split()
    except OSError:
        return 0.0
    total = 0.0
    for cid in ids:
        for path, scale in ((f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage", 1e-9),
                            (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat", 1e-6),
                            (f"/sys/fs/cgroup/docker/{cid}/cpu.stat", 1e-6)):
            try:
                text = Path(path).read_text()
            except OSError:
                continue
            value = text.split()[1] if text.startswith("usage_usec") else text.split()[0]
            total += int(value) * scale
            break
    return total
