"""The bytes a MemoryMax= value means, for a Docker job's container (saltant_worker_memory_bytes)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[2]
_SPEC = importlib.util.spec_from_file_location(
    "saltant_worker_limits", ROOT / "roles" / "saltant_worker" / "filter_plugins" / "saltant_worker_limits.py")
assert _SPEC is not None and _SPEC.loader is not None
LIMITS = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(LIMITS)
memory_bytes = LIMITS.FilterModule().filters()["saltant_worker_memory_bytes"]


@pytest.mark.parametrize(("value", "expected"), [
    ("256M", 256 << 20), ("4G", 4 << 30), ("1T", 1 << 40), ("512K", 512 << 10), ("1048576", 1 << 20),
    ("50%", 8000 * (1 << 20) // 2), ("100%", 8000 * (1 << 20)), ("infinity", 0), ("", 0),
])
def test_sizes_as_systemd_reads_them(value, expected):
    assert memory_bytes(value, 8000) == expected


def test_a_percentage_without_the_hosts_memory_means_no_bound():
    assert memory_bytes("90%", 0) == 0


@pytest.mark.parametrize("value", ["4 GB", "4GB", "0.5", "-1G", "90 %"])
def test_anything_else_is_refused(value):
    with pytest.raises(AnsibleFilterError):
        memory_bytes(value, 8000)
