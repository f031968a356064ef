"""Local modifications of the worker code are reported, not destroyed, until
the operator forces a checkout."""

from __future__ import annotations

FILE = "/opt/saltant-worker/src/saltant/__init__.py"


def test_local_modification_stops_the_run_and_is_kept_until_a_forced_checkout(fleet):
    worker = fleet.workers[0]
    fleet.sh(worker, f"echo '# local hotfix' >> {FILE}")
    try:
        # The worker's role alone: only its code is concerned (site.yml's
        # preflight runs with any tags).
        result = fleet.playbook("--tags", "saltant_worker")
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert worker in output
        assert "saltant_worker_force_checkout" in output
        assert "# local hotfix" in fleet.sh(worker, f"cat {FILE}")

        # What the message tells the operator to do discards the change.
        forced = fleet.playbook("--tags", "saltant_worker", extra_vars={"saltant_worker_force_checkout": True})
        assert forced.returncode == 0
        assert "# local hotfix" not in fleet.sh(worker, f"cat {FILE}")
    finally:
        fleet.sh(worker, "git -C /opt/saltant-worker/src checkout -- .")


def test_a_checkout_that_fails_never_shows_the_repository_credentials(fleet):
    """Credentials in saltant_worker_repo reach git through the checkout's
    environment only: not in the output (verbose, failing), nor in the
    checkout's .git/config."""
    worker = fleet.workers[0]
    src = "/opt/saltant-worker/src"
    origin = fleet.sh(worker, f"git -C {src} remote get-url origin").strip()
    password = "SECRET-git-c0ffee"
    try:
        result = fleet.playbook("-v", "--tags", "saltant_worker", extra_vars={
            "saltant_worker_repo": f"https://deploy:{password}@git.invalid/saltant.git"})
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert "could not check out https://git.invalid/saltant.git" in output
        assert password not in output
        assert password not in fleet.sh(worker, f"cat {src}/.git/config")
    finally:
        fleet.sh(worker, f"git -C {src} remote set-url origin {origin}")
