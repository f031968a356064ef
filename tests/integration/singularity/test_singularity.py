"""Singularity worker hosts: NeuroDebian's key is pinned, and the worker runs jobs from either source."""

from __future__ import annotations

import re

APPTAINER = "singularity-worker1"
NEURO = "singularity-neuro"
UNIT = "saltant-worker@containers.service"
IMAGE = "docker://singularity-broker:5000/testbed/busybox:1"
# Docker's key fingerprint: a real key, but not the one the stand-in signs with.
OTHER_FINGERPRINT = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"


def singularity_job(fleet, queue: str, command: str) -> str:
    return fleet.publish(
        queue, task_class="container", container_type="singularity", container_image=IMAGE,
        command_to_run=command, env_vars_list=[], args_dict={}, logs_path="/logs", results_path=None,
    )


def assert_refused_and_nothing_left(fleet, extra_vars: dict, *words: str) -> None:
    """A run with these settings stops on the NeuroDebian host: the key and
    the repository are gone, the installed runtime and the worker untouched;
    back to the inventory's settings, the repository is there again."""
    worker_pid = fleet.unit_property(NEURO, UNIT, "MainPID")
    result = fleet.playbook("--limit", NEURO, extra_vars=extra_vars)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "refusing to trust it" in output
    for word in words:
        assert word in output
    assert f"No apt repository 'neurodebian' is configured on {NEURO}" in output
    listing = fleet.sh(NEURO, "ls /etc/apt/sources.list.d/ /etc/apt/keyrings/ /var/lib/saltant-fleet/signed-apt-repo/")
    assert "neurodebian" not in listing
    assert "singularity-broker:8080" not in fleet.sh(NEURO, "apt-cache policy")
    assert fleet.sh(NEURO, "dpkg-query -W -f '${Status}' singularity-container") == "install ok installed"
    assert fleet.unit_property(NEURO, UNIT, "MainPID") == worker_pid

    assert fleet.playbook("--limit", NEURO, "--tags", "singularity").returncode == 0
    assert "http://singularity-broker:8080/neurodebian trixie/main" in fleet.sh(
        NEURO, "apt-cache policy singularity-container"
    )
    assert fleet.wait_states(singularity_job(fleet, "neuroqueue", "true")) == ["running", "successful"]


def test_neurodebian_key_with_another_fingerprint_is_refused_and_nothing_is_left(fleet):
    test_key = fleet.sh(fleet.broker, "cat /srv/apt/key.fingerprint").strip()
    assert_refused_and_nothing_left(
        fleet, {"singularity_neurodebian_key_fingerprint": OTHER_FINGERPRINT}, test_key, OTHER_FINGERPRINT)


def test_a_key_file_with_the_pinned_key_and_another_is_refused(fleet):
    """The pinned key with another beside it: apt would trust both, so the
    file is refused although it holds the pinned key."""
    test_key = fleet.sh(fleet.broker, "cat /srv/apt/key.fingerprint").strip()
    assert_refused_and_nothing_left(
        fleet, {"singularity_neurodebian_key_url": f"https://{fleet.broker}:8443/key-and-another.asc"},
        "not exactly " + test_key, test_key + ", ")


def test_neurodebian_is_pinned_to_the_runtime_package(fleet):
    """Only singularity-container comes from NeuroDebian: every other package
    of its archive has pin priority 1, below Debian's own."""
    policy = fleet.sh(NEURO, "apt-cache policy")
    lines = policy.splitlines()
    at = next(i for i, line in enumerate(lines) if "singularity-broker:8080/neurodebian trixie/main" in line)
    assert lines[at].split()[0] == "1" and "o=NeuroDebian" in lines[at + 1]
    # The installed version's own priority is the package pin's 500.
    runtime = fleet.sh(NEURO, "apt-cache policy singularity-container")
    assert re.search(r"\*\*\* \S+ 500\n\s+1 http://singularity-broker:8080/neurodebian trixie/main", runtime), runtime


def test_the_pulled_image_is_reused(fleet):
    """A second job with the same image starts from the file in the images
    directory: no new pull."""
    worker = APPTAINER
    before = fleet.sh(worker, "ls /var/lib/saltant-worker/singularity-images")
    uuid = singularity_job(fleet, "singularityqueue", "sh -c 'echo again > /logs/out.txt'")
    assert fleet.wait_states(uuid) == ["running", "successful"]
    assert fleet.sh(worker, f"cat /var/lib/saltant-worker/logs/{uuid}/out.txt").strip() == "again"
    assert fleet.sh(worker, "ls /var/lib/saltant-worker/singularity-images") == before
    journal = fleet.sh(worker, f"journalctl -u {UNIT} -o cat --no-pager --grep {uuid}")
    assert "using the pulled image" in journal and "pulling" not in journal


def test_switching_the_source_replaces_the_runtime_and_its_apt_sources(fleet):
    """distribution -> neurodebian -> distribution on the apptainer host: each
    switch removes the other package and the other source's apt files, and
    jobs run after each."""
    fingerprint = fleet.sh(fleet.broker, "cat /srv/apt/key.fingerprint").strip()
    neurodebian = {
        "singularity_source": "neurodebian",
        "singularity_neurodebian_mirror": f"http://{fleet.broker}:8080/neurodebian",
        "singularity_neurodebian_key_url": f"https://{fleet.broker}:8443/key.asc",
        "singularity_neurodebian_key_fingerprint": fingerprint,
    }

    def installed(package: str) -> bool:
        status = fleet.sh(APPTAINER, f"dpkg-query -W -f '${{Status}}' {package}", check=False)
        return status == "install ok installed"

    # From a host where every role matches its record (earlier tests may
    # have left some roles to run again).
    assert fleet.playbook("--limit", APPTAINER).returncode == 0
    try:
        switched = fleet.playbook("--limit", APPTAINER, extra_vars=neurodebian)
        assert switched.returncode == 0
        # Only the runtime's variables changed; the worker's role runs too, as
        # it reads what the runtime's role installs (a setuid starter needs
        # other sandboxing), and the log shipper's does not.
        said = " ".join(switched.stdout.split())
        assert re.search(rf"{APPTAINER}: running every task of singularity \(the inputs changed [^)]*\)\), "
                         r"saltant_worker \(it reads what singularity left on the host\)'", said)
        assert installed("singularity-container") and not installed("apptainer")
        assert fleet.sh(APPTAINER, "ls /etc/apt/sources.list.d/").split() == ["neurodebian.sources"]
        assert fleet.sh(APPTAINER, "ls /etc/apt/preferences.d/").split() == ["saltant-fleet-singularity"]
        pin = fleet.sh(APPTAINER, "cat /etc/apt/preferences.d/saltant-fleet-singularity")
        assert "Pin: release o=NeuroDebian" in pin
        assert fleet.wait_states(singularity_job(fleet, "singularityqueue", "true")) == ["running", "successful"]
    finally:
        # Back to the inventory's source (the runtime's role and the worker's).
        assert fleet.playbook("--limit", APPTAINER, "--tags", "singularity,saltant_worker").returncode == 0
    assert installed("apptainer") and not installed("singularity-container")
    assert "neurodebian" not in fleet.sh(APPTAINER, "ls /etc/apt/sources.list.d/ /etc/apt/keyrings/")
    assert "unstable/main" in fleet.sh(APPTAINER, "apt-cache policy apptainer")
    assert fleet.wait_states(singularity_job(fleet, "singularityqueue", "true")) == ["running", "successful"]


def test_a_container_sees_a_working_directory_of_its_own_not_the_workers(fleet):
    """Singularity binds the job's working directory into the container: it
    is a fresh directory of the job's, never the code checkout with .env."""
    uuid = singularity_job(fleet, "singularityqueue", "sh -c 'pwd; ls -A; ls /opt/saltant-worker/src/.env || true'")
    assert fleet.wait_states(uuid) == ["running", "successful"]
    out = fleet.sh(APPTAINER, f"cat /var/lib/saltant-worker/logs/{uuid}/{uuid}-stdout.txt").split("\n")
    assert out[0].startswith(f"/var/lib/saltant-worker/tmp/{uuid}-"), out
    assert ".env" not in "\n".join(out)


def test_disk_hygiene_removes_images_no_job_used_for_days(fleet):
    """saltant-worker-cleanup (a timer, hourly): a pulled image untouched for
    more than saltant_worker_singularity_image_days (14) is removed, a
    recent one and other files stay."""
    host = "singularity-worker1"
    images = "/var/lib/saltant-worker/singularity-images"
    assert fleet.sh(host, "systemctl is-enabled saltant-worker-cleanup.timer").strip() == "enabled"
    assert fleet.sh(host, "systemctl is-active saltant-worker-cleanup.timer").strip() == "active"
    fleet.sh(host, f"cd {images} && echo old > hygiene-old.sif && echo new > hygiene-new.sif"
                   " && echo other > hygiene-notes.txt && touch -d '15 days ago' hygiene-old.sif hygiene-notes.txt")
    try:
        fleet.sh(host, "systemctl start saltant-worker-cleanup.service")
        left = set(fleet.sh(host, f"ls {images}").split())
        assert "hygiene-old.sif" not in left
        assert {"hygiene-new.sif", "hygiene-notes.txt"} <= left
        journal = fleet.sh(host, "journalctl -u saltant-worker-cleanup -o cat --no-pager --since '-2min'")
        assert f"{images}/hygiene-old.sif" in journal
    finally:
        fleet.sh(host, f"rm -f {images}/hygiene-*")
