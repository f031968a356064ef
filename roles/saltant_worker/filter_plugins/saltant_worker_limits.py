"""Sizes of the worker's resource limits, as systemd reads them.

``saltant_worker_memory_bytes(value, memtotal_mb)``: the bytes a MemoryMax=
value means on a host with ``memtotal_mb`` of memory (Ansible's
``ansible_memtotal_mb``): a size with K, M, G or T (base 1024, as systemd
reads it), a percentage of the host's memory, or ``infinity`` (0: no limit).
A Docker job's container gets this bound in bytes, the only form Docker takes.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

_SIZE = re.compile(r"([0-9]+)([KMGT]?)")
_PERCENT = re.compile(r"([0-9]+)%")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def memory_bytes(value, memtotal_mb) -> int:
    text = str(value).strip()
    if text in ("", "infinity"):
        return 0
    size = _SIZE.fullmatch(text)
    if size:
        return int(size.group(1)) * _UNITS[size.group(2)]
    percent = _PERCENT.fullmatch(text)
    if percent:
        return int(memtotal_mb) * (1 << 20) * int(percent.group(1)) // 100
    raise AnsibleFilterError(f"saltant_worker_memory_bytes: {text!r} is not a size, a percentage or infinity")


class FilterModule:
    def filters(self):
        return {"saltant_worker_memory_bytes": memory_bytes}
