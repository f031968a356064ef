"""Worker instances follow the inventory; only affected instances restart; --check changes nothing."""

from __future__ import annotations

from helpers.recap import recap

DEFAULT = {"name": "default", "queues": ["thistaskqueue"], "concurrency": 2}
EXTRA = {"name": "extra", "queues": ["otherqueue"], "concurrency": 1}


def pid(fleet, name: str) -> str:
    return fleet.unit_property(fleet.workers[0], f"saltant-worker@{name}.service", "MainPID")


def converge(fleet, instances):
    # The worker's role alone: instances are its concern (the preflight runs too).
    result = fleet.playbook("--tags", "saltant_worker", extra_vars={"saltant_worker_instances": instances})
    assert result.returncode == 0, result.stdout[-3000:]
    return result


def extra_is_active(fleet) -> bool:
    return fleet.unit_property(fleet.workers[0], "saltant-worker@extra.service", "ActiveState") == "active"


def ensure_extra(fleet, wanted: bool) -> None:
    """Each test starts from the state it needs, whatever ran before it (in
    file order the state is already there and nothing runs)."""
    if extra_is_active(fleet) != wanted:
        converge(fleet, [DEFAULT, EXTRA] if wanted else [DEFAULT])


def test_added_instance_serves_its_queue_and_leaves_others_running(fleet):
    ensure_extra(fleet, wanted=False)
    before = pid(fleet, "default")
    converge(fleet, [DEFAULT, EXTRA])
    assert pid(fleet, "default") == before
    worker = fleet.workers[0]
    assert fleet.unit_property(worker, "saltant-worker@extra.service", "ActiveState") == "active"
    uuid = fleet.publish(
        "otherqueue", task_class="executable", command_to_run="echo extra",
        env_vars_list=[], args_dict={}, json_file_option=None,
    )
    assert fleet.wait_states(uuid) == ["running", "successful"]
    log = fleet.sh(worker, f"cat /var/lib/saltant-worker/logs/{uuid}/{uuid}-stdout.txt")
    assert log.strip() == "extra"


def test_changing_queues_restarts_only_that_instance(fleet):
    ensure_extra(fleet, wanted=True)
    default_before, extra_before = pid(fleet, "default"), pid(fleet, "extra")
    converge(fleet, [DEFAULT, {"name": "extra", "queues": ["otherqueue", "thirdqueue"], "concurrency": 1}])
    assert pid(fleet, "default") == default_before
    assert pid(fleet, "extra") not in ("0", extra_before)
    uuid = fleet.publish(
        "thirdqueue", task_class="executable", command_to_run="true",
        env_vars_list=[], args_dict={}, json_file_option=None,
    )
    assert fleet.wait_states(uuid) == ["running", "successful"]


ADMIN = "[Service]\nEnvironment=TESTBED_ADMIN_OVERRIDE=kept\n"


def test_removed_instance_is_stopped_and_disabled_and_admin_overrides_are_kept(fleet):
    """The removed instance's unit is stopped, disabled and its settings gone;
    an administrator's overrides (`systemctl edit` of the template or of an
    instance) are not the role's and stay."""
    ensure_extra(fleet, wanted=True)
    worker = fleet.workers[0]
    template_dir = "/etc/systemd/system/saltant-worker@.service.d"
    extra_dir = "/etc/systemd/system/saltant-worker@extra.service.d"
    for folder in (template_dir, extra_dir):
        fleet.sh(worker, f"mkdir -p {folder} && printf '{ADMIN}' > {folder}/90-admin.conf")
    try:
        default_before = pid(fleet, "default")
        converge(fleet, [DEFAULT])
        assert fleet.unit_property(worker, "saltant-worker@extra.service", "ActiveState") == "inactive"
        assert fleet.sh(worker, "systemctl is-enabled saltant-worker@extra.service", check=False).strip() != "enabled"
        assert fleet.sh(worker, f"ls {extra_dir}").split() == ["90-admin.conf"]
        assert fleet.sh(worker, f"ls {template_dir}").split() == ["90-admin.conf"]
        environment = fleet.unit_property(worker, "saltant-worker@default.service", "Environment")
        assert "TESTBED_ADMIN_OVERRIDE=kept" in environment
        assert pid(fleet, "default") == default_before
    finally:
        fleet.sh(worker, f"rm -rf {template_dir} {extra_dir} && systemctl daemon-reload")


def test_check_mode_on_a_provisioned_host_changes_nothing_and_hides_secrets(fleet):
    # Every task, not only the comparison with the host's record.
    result = fleet.playbook("--check", "--diff", extra_vars={"fleet_state_full_run": True})
    output = result.stdout + result.stderr
    assert result.returncode == 0
    assert all(counts.get("changed", 0) == 0 for counts in recap(output).values())
    for secret in fleet.secrets.values():
        assert secret not in output
