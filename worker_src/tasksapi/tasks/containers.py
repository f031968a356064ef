"""Container jobs (Docker and Singularity): not supported on this worker yet.

A later change fills this in (and adds the docker and spython requirements);
until then every container job fails with a clear message.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

from tasksapi.compat import show
from tasksapi.tasks.errors import JobError

CONTAINER_TYPES = ("docker", "singularity")


def run_container_job(
    uuid,
    command_to_run,
    env_vars_list,
    args_dict,
    logs_path,
    results_path,
    container_image,
    container_type,
    logs_directory,
    results_directory,
    singularity_images_directory=None,
    singularity_pull_timeout=None,
    singularity_pull_retries=None,
):
    """Run a container job; for now always raises JobError."""
    if container_type not in CONTAINER_TYPES:
        raise JobError(
            "unknown container_type %s (expected one of: %s)"
            % (show(container_type), ", ".join(CONTAINER_TYPES))
        )
    raise JobError(
        "container jobs (docker/singularity) are not supported on this worker yet"
    )
