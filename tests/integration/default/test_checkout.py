"""Local modifications of the worker code are reported, not destroyed."""

from __future__ import annotations

FILE = "/opt/saltant-worker/src/saltant/__init__.py"


def test_local_modification_stops_the_run_and_is_kept(fleet):
    worker = fleet.workers[0]
    fleet.sh(worker, f"echo '# local hotfix' >> {FILE}")
    try:
        result = fleet.playbook()
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert worker in output
        assert "saltant_worker_force_checkout" in output
        assert "# local hotfix" in fleet.sh(worker, f"cat {FILE}")
    finally:
        fleet.sh(worker, "git -C /opt/saltant-worker/src checkout -- .")
    assert fleet.playbook().returncode == 0


def test_force_checkout_discards_local_modifications(fleet):
    worker = fleet.workers[0]
    fleet.sh(worker, f"echo '# local hotfix' >> {FILE}")
    result = fleet.playbook(extra_vars={"saltant_worker_force_checkout": True})
    assert result.returncode == 0
    assert "# local hotfix" not in fleet.sh(worker, f"cat {FILE}")
