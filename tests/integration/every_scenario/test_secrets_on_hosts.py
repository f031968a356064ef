"""After everything the scenario's tests did on its hosts (converges, jobs,
restarts, failures), no secret of the vault is on a command line (`ps`), in
the journal, or in a file anyone but root and its service can read."""

from __future__ import annotations

# Files that hold secrets, and who may read them: (owner, group, mode).
SECRET_FILES = {
    "/opt/saltant-worker/src/.env": ("root", "saltant", "640"),
    "/etc/saltant-log-shipper/s3cfg": ("root", "saltant-log-shipper", "640"),
}


def secrets(fleet) -> list[str]:
    return [v for v in fleet.secrets.values() if isinstance(v, str) and len(v) >= 6]


def test_no_secret_in_ps_or_the_journal(fleet):
    for host in fleet.workers:
        seen = fleet.sh(host, "ps -eww -o args") + fleet.sh(host, "journalctl --no-pager -o cat")
        for secret in secrets(fleet):
            assert secret not in seen, f"{host}: a vault secret is in ps or the journal"


def test_secret_files_are_readable_by_their_service_only(fleet):
    for host in fleet.workers:
        for path, expected in SECRET_FILES.items():
            found = fleet.sh(host, f"stat -c '%U %G %a' {path} 2>/dev/null || true").split()
            if not found:
                continue
            assert tuple(found) == expected, f"{host}:{path} is {found}"
