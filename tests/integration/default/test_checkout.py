"""Local modifications of the worker code are reported, not destroyed, until
the operator forces a checkout."""

from __future__ import annotations

FILE = "/opt/saltant-worker/src/saltant/__init__.py"


def test_local_modification_stops_the_run_and_is_kept_until_a_forced_checkout(fleet):
    worker = fleet.workers[0]
    fleet.sh(worker, f"echo '# local hotfix' >> {FILE}")
    try:
        result = fleet.playbook()
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert worker in output
        assert "saltant_worker_force_checkout" in output
        assert "# local hotfix" in fleet.sh(worker, f"cat {FILE}")

        # What the message tells the operator to do discards the change.
        forced = fleet.playbook(extra_vars={"saltant_worker_force_checkout": True})
        assert forced.returncode == 0
        assert "# local hotfix" not in fleet.sh(worker, f"cat {FILE}")
    finally:
        fleet.sh(worker, "git -C /opt/saltant-worker/src checkout -- .")
