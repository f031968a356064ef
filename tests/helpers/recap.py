"""Read the PLAY RECAP of ansible-playbook output."""

from __future__ import annotations

import re

LINE = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$")


def recap(output: str) -> dict[str, dict[str, int]]:
    hosts: dict[str, dict[str, int]] = {}
    seen = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            seen = True
            continue
        match = LINE.match(line.strip()) if seen else None
        if match:
            hosts[match.group(1)] = {
                key: int(value) for key, value in (pair.split("=") for pair in match.group(2).split())
            }
    return hosts
