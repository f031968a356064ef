from __future__ import annotations

from helpers.recap import recap

OUTPUT = """
PLAY RECAP *********************************************************************
saltant-broker             : ok=3    changed=0    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0
saltant-worker1            : ok=41   changed=2    unreachable=0    failed=1    skipped=4    rescued=1    ignored=0
"""


def test_reads_every_host_of_the_recap():
    hosts = recap(OUTPUT)
    assert hosts["saltant-broker"]["changed"] == 0
    assert hosts["saltant-worker1"] == {
        "ok": 41, "changed": 2, "unreachable": 0, "failed": 1, "skipped": 4, "rescued": 1, "ignored": 0,
    }


def test_ignores_text_before_the_recap():
    assert recap("saltant-worker1 : ok=1 changed=1\n") == {}
