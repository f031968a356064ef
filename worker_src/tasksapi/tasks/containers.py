"""Container jobs: Docker (``docker_jobs``) or Singularity (``singularity_jobs``).

Neither runtime's Python library is imported here: a worker without the
Docker SDK or without Singularity/Apptainer imports fine, and its jobs of
that kind fail with a message saying that the host does not offer them.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

from tasksapi.compat import show
from tasksapi.tasks import docker_jobs, joblogs, singularity_jobs
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
    environ=None,
    temp_directory=None,
):
    """Run a container job to completion; raise JobError when it fails."""
    uuid = joblogs.check_uuid(uuid)
    if container_type == "docker":
        docker_jobs.run_docker_job(
            uuid,
            command_to_run,
            env_vars_list,
            args_dict,
            logs_path,
            results_path,
            container_image,
            logs_directory=logs_directory,
            results_directory=results_directory,
            environ=environ,
        )
    elif container_type == "singularity":
        singularity_jobs.run_singularity_job(
            uuid,
            command_to_run,
            env_vars_list,
            args_dict,
            logs_path,
            results_path,
            container_image,
            logs_directory=logs_directory,
            results_directory=results_directory,
            images_directory=singularity_images_directory,
            pull_timeout=singularity_pull_timeout,
            pull_retries=singularity_pull_retries,
            environ=environ,
            temp_directory=temp_directory,
        )
    else:
        raise JobError(
            "unknown container_type %s (expected one of: %s)"
            % (show(container_type), ", ".join(CONTAINER_TYPES))
        )
