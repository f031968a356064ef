"""Singularity jobs, run against a fake ``apptainer`` in real subprocesses.

The fake runtime is a script written into the test's directory: ``pull``
writes an image file (or fails, or hangs, as the environment says) and
``exec``/``run`` print what they were given as JSON.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import json
import os
import signal
import stat
import sys
import threading
import time

import pytest
from support import is_running, job_log, read_text

from tasksapi.tasks import singularity_jobs
from tasksapi.tasks.errors import JobError, JobTerminated

UUID = "7c8d9e0f-3333-4444-8555-666677778888"

FAKE_RUNTIME = """#!%(python)s
import json, os, sys, time

args = sys.argv[1:]
log = os.environ.get("FAKE_CALLS")
if log:
    with open(log, "a") as handle:
        handle.write(json.dumps({"argv": sys.argv, "cwd": os.getcwd()}) + "\\n")
verb = args[0]
if verb == "pull":
    name = args[args.index("--name") + 1]
    uri = args[-1]
    counter = os.environ["FAKE_PULL_COUNTER"]
    count = 1
    if os.path.exists(counter):
        with open(counter) as handle:
            count = int(handle.read()) + 1
    with open(counter, "w") as handle:
        handle.write("%%d" %% count)
    with open(name, "w") as image:
        image.write("partial")
    if "slow" in uri:
        with open(os.environ["FAKE_PID_FILE"], "a") as handle:
            handle.write("%%d\\n" %% os.getpid())
        time.sleep(60)
    if count <= int(os.environ.get("FAKE_PULL_FAILURES", "0")):
        print("FATAL: pull failed on try %%d" %% count)
        sys.exit(255)
    if "noimage" in uri:
        os.remove(name)
        sys.exit(0)
    with open(name, "w") as image:
        image.write("image of " + uri)
    sys.exit(0)
rest = args[1:]
binds = []
cleanenv = False
while rest and rest[0].startswith("--"):
    option = rest.pop(0)
    if option == "--bind":
        binds.append(rest.pop(0))
    elif option == "--cleanenv":
        cleanenv = True
image = rest.pop(0)
with open(image) as handle:
    content = handle.read()
environment = dict(
    (name, value) for name, value in os.environ.items()
    if name.startswith(("APPTAINERENV_", "SINGULARITYENV_"))
)
print(json.dumps({"verb": verb, "binds": binds, "cleanenv": cleanenv,
                  "image": image, "content": content, "command": rest,
                  "environment": environment, "cwd": os.getcwd()}))
sys.stdout.flush()
sys.stderr.write("from the container\\n")
if rest[:1] == ["exit"]:
    sys.exit(int(rest[1]))
if rest[:1] == ["sleep"]:
    with open(os.environ["FAKE_PID_FILE"], "a") as handle:
        handle.write("%%d\\n" %% os.getpid())
    time.sleep(float(rest[1]))
"""


def write_runtime(directory, name="apptainer"):
    path = os.path.join(directory, name)
    with io.open(path, "w", encoding="utf-8") as script:
        script.write(FAKE_RUNTIME % {"python": sys.executable})
    os.chmod(path, stat.S_IRWXU)
    return path


@pytest.fixture
def bed(tmpdir):
    base = str(tmpdir)
    bin_directory = os.path.join(base, "bin")
    os.mkdir(bin_directory)
    bed = {
        "base": base,
        "bin": bin_directory,
        "runtime": write_runtime(bin_directory),
        "logs": os.path.join(base, "logs"),
        "results": os.path.join(base, "results"),
        "images": os.path.join(base, "images"),
        "counter": os.path.join(base, "pull-count"),
        "calls": os.path.join(base, "calls.jsonl"),
        "pids": os.path.join(base, "pids"),
    }
    bed["environ"] = {
        "PATH": os.pathsep.join([bin_directory, os.environ.get("PATH", "")]),
        "FAKE_PULL_COUNTER": bed["counter"],
        "FAKE_CALLS": bed["calls"],
        "FAKE_PID_FILE": bed["pids"],
        "TOKEN": "t0k",
        "API_AUTH_TOKEN": "worker-secret",
        "SINGULARITYENV_LEAK": "from the worker",
    }
    return bed


def run(
    bed,
    command="python /app/job.py",
    args_dict=None,
    env_vars_list=None,
    image="docker://registry:5000/team/job:2",
    logs_path="/logs",
    results_path="/results",
    timeout=30,
    retries=1,
    runtime=None,
    environ_updates=None,
):
    environ = dict(bed["environ"])
    environ.update(environ_updates or {})
    singularity_jobs.run_singularity_job(
        UUID,
        command,
        env_vars_list or [],
        args_dict,
        logs_path,
        results_path,
        image,
        logs_directory=bed["logs"],
        results_directory=bed["results"],
        images_directory=bed["images"],
        pull_timeout=timeout,
        pull_retries=retries,
        environ=environ,
        runtime=runtime,
        retry_delay=0,
        kill_grace=1,
        poll_interval=0.02,
    )


def shown(bed):
    return json.loads(job_log(bed["logs"], UUID, "stdout"))


def pulls(bed):
    if not os.path.exists(bed["counter"]):
        return 0
    return int(read_text(bed["counter"]))


def calls(bed):
    with io.open(bed["calls"], encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_runtime_prefers_apptainer(tmpdir):
    first = os.path.join(str(tmpdir), "first")
    second = os.path.join(str(tmpdir), "second")
    os.mkdir(first)
    os.mkdir(second)
    path = os.pathsep.join([first, second])
    assert singularity_jobs.find_runtime(path) is None
    singularity = write_runtime(first, "singularity")
    assert singularity_jobs.find_runtime(path) == singularity
    apptainer = write_runtime(second, "apptainer")
    assert singularity_jobs.find_runtime(path) == apptainer


def test_runtime_must_be_executable(tmpdir):
    path = write_runtime(str(tmpdir), "apptainer")
    os.chmod(path, stat.S_IRUSR)
    assert singularity_jobs.find_runtime(str(tmpdir)) is None


def test_env_prefix_follows_the_runtime():
    assert singularity_jobs.env_prefix("/usr/bin/apptainer") == "APPTAINERENV_"
    assert singularity_jobs.env_prefix("/usr/bin/singularity") == "SINGULARITYENV_"


def test_image_file_names_are_safe_stable_and_distinct():
    name = singularity_jobs.image_file_name("docker://registry:5000/team/job:2")
    assert name.startswith("docker_registry_5000_team_job_2-")
    assert name.endswith(".sif")
    assert name == singularity_jobs.image_file_name("docker://registry:5000/team/job:2")
    assert "/" not in singularity_jobs.image_file_name("shub://../../etc")
    assert singularity_jobs.image_file_name(
        "docker://a/b"
    ) != singularity_jobs.image_file_name("docker://a_b")


def test_pull_argv():
    assert singularity_jobs.build_pull_argv("/bin/apptainer", "docker://x", "f") == [
        "/bin/apptainer",
        "pull",
        "--name",
        "f",
        "docker://x",
    ]


def test_run_argv_with_binds_and_arguments():
    argv = singularity_jobs.build_run_argv(
        "/bin/apptainer",
        "/images/x.sif",
        ["python", "job.py"],
        [("/srv/logs/u", "/logs"), ("/srv/results/u", "/results")],
        ['{"a": 1}'],
    )
    assert argv == [
        "/bin/apptainer",
        "exec",
        "--cleanenv",
        "--bind",
        "/srv/logs/u:/logs",
        "--bind",
        "/srv/results/u:/results",
        "/images/x.sif",
        "python",
        "job.py",
        '{"a": 1}',
    ]


def test_run_argv_without_a_command_runs_the_runscript():
    argv = singularity_jobs.build_run_argv(
        "singularity", "/i.sif", [], [], ['{"a": 1}']
    )
    assert argv == ["singularity", "run", "--cleanenv", "/i.sif", '{"a": 1}']


def test_runtime_environment():
    environ = {
        "PATH": "/bin",
        "HTTPS_PROXY": "http://proxy:3128",
        "APPTAINERENV_OLD": "x",
        "SINGULARITYENV_OLD": "y",
    }
    environment = singularity_jobs.build_runtime_environment(
        "/usr/bin/apptainer", {"JOB_UUID": UUID, "TOKEN": "t"}, environ
    )
    assert environment == {
        "PATH": "/bin",
        "HTTPS_PROXY": "http://proxy:3128",
        "APPTAINERENV_JOB_UUID": UUID,
        "APPTAINERENV_TOKEN": "t",
    }
    environment = singularity_jobs.build_runtime_environment(
        "singularity", {"JOB_UUID": UUID}, environ, pull_folder="/images"
    )
    assert environment["SINGULARITYENV_JOB_UUID"] == UUID
    assert environment["SINGULARITY_PULLFOLDER"] == "/images"
    assert "SINGULARITYENV_OLD" not in environment


def test_successful_job(bed):
    run(bed, args_dict={"n": [1, 2]}, env_vars_list=["TOKEN"])
    output = shown(bed)
    image_path = os.path.join(
        bed["images"],
        singularity_jobs.image_file_name("docker://registry:5000/team/job:2"),
    )
    assert output["verb"] == "exec"
    assert output["cleanenv"] is True
    assert output["image"] == image_path
    assert output["content"] == "image of docker://registry:5000/team/job:2"
    assert output["command"][:2] == ["python", "/app/job.py"]
    assert json.loads(output["command"][2]) == {"n": [1, 2]}
    assert len(output["command"]) == 3
    assert output["binds"] == [
        "%s:/logs" % (os.path.join(bed["logs"], UUID),),
        "%s:/results" % (os.path.join(bed["results"], UUID),),
    ]
    assert output["environment"] == {
        "APPTAINERENV_TOKEN": "t0k",
        "APPTAINERENV_JOB_UUID": UUID,
    }
    assert os.path.isdir(os.path.join(bed["results"], UUID))
    assert job_log(bed["logs"], UUID, "stderr") == "from the container\n"
    # The pull ran in the images directory, with a name there.
    pull = calls(bed)[0]
    assert pull["cwd"] == bed["images"]
    assert pull["argv"][1:3] == ["pull", "--name"]
    assert os.listdir(bed["images"]) == [os.path.basename(image_path)]


def test_empty_command_runs_the_runscript_with_the_arguments(bed):
    run(bed, command="", args_dict={"k": "v"})
    output = shown(bed)
    assert output["verb"] == "run"
    assert output["command"] == ['{"k": "v"}']


def test_singularity_gets_its_own_prefix(bed):
    runtime = write_runtime(bed["bin"], "singularity")
    run(bed, command="true", runtime=runtime)
    assert shown(bed)["environment"] == {"SINGULARITYENV_JOB_UUID": UUID}


def test_pulled_image_is_reused(bed):
    run(bed)
    run(bed)
    assert pulls(bed) == 1
    assert len(calls(bed)) == 3


def test_pull_is_retried(bed):
    run(bed, retries=3, environ_updates={"FAKE_PULL_FAILURES": "2"})
    assert pulls(bed) == 3
    assert shown(bed)["content"].startswith("image of ")
    assert len(os.listdir(bed["images"])) == 1


def test_pull_fails_after_the_last_try(bed):
    with pytest.raises(JobError) as error:
        run(bed, retries=2, environ_updates={"FAKE_PULL_FAILURES": "9"})
    message = str(error.value)
    assert "cannot pull singularity image 'docker://registry:5000/team/job:2'" in (
        message
    )
    assert "(2 tries)" in message
    assert "the pull exited with code 255" in message
    assert "FATAL: pull failed on try 2" in message
    assert pulls(bed) == 2
    assert os.listdir(bed["images"]) == []
    assert len(calls(bed)) == 2  # the job never ran


def test_pull_that_writes_nothing_fails(bed):
    with pytest.raises(JobError) as error:
        run(bed, image="docker://noimage")
    assert "the pull wrote no image file" in str(error.value)


def test_pull_times_out_on_each_try(bed):
    started = time.time()
    with pytest.raises(JobError) as error:
        run(bed, image="docker://slow", timeout=1, retries=2)
    elapsed = time.time() - started
    assert "timed out after 1 s" in str(error.value)
    assert "(2 tries)" in str(error.value)
    assert pulls(bed) == 2
    assert elapsed < 15
    pids = [int(line) for line in read_text(bed["pids"]).split()]
    assert len(pids) == 2
    assert not any(is_running(pid) for pid in pids)
    assert os.listdir(bed["images"]) == []


def test_non_zero_exit_fails_the_job(bed):
    with pytest.raises(JobError) as error:
        run(bed, command="exit 3")
    assert "container exited with code 3" in str(error.value)
    assert job_log(bed["logs"], UUID, "stderr") == "from the container\n"


def test_missing_variable_fails_before_pulling(bed):
    with pytest.raises(JobError) as error:
        run(bed, env_vars_list=["TOKEN", "ABSENT_ONE"])
    assert "ABSENT_ONE" in str(error.value)
    assert pulls(bed) == 0
    assert not os.path.exists(bed["images"])
    assert not os.path.exists(bed["logs"])


def test_no_runtime_on_path_fails_clearly(bed, tmpdir):
    empty = os.path.join(str(tmpdir), "empty")
    os.mkdir(empty)
    with pytest.raises(JobError) as error:
        run(bed, environ_updates={"PATH": empty})
    assert str(error.value) == singularity_jobs.NO_RUNTIME_MESSAGE
    assert pulls(bed) == 0


def test_runtime_found_on_the_path(bed):
    run(bed, command="true")
    assert calls(bed)[0]["argv"][0] == bed["runtime"]


def read_pids(bed, count):
    def ready():
        if not os.path.exists(bed["pids"]):
            return False
        return len(read_text(bed["pids"]).split()) >= count

    deadline = time.time() + 20
    while time.time() < deadline and not ready():
        time.sleep(0.05)
    if not os.path.exists(bed["pids"]):
        return []
    return [int(pid) for pid in read_text(bed["pids"]).split()]


@pytest.mark.parametrize("stage", ["pull", "job"])
def test_sigterm_terminates_and_reaches_the_previous_handler(bed, stage):
    received = []

    def previous_handler(signum, frame):
        received.append(signum)

    def send_sigterm():
        read_pids(bed, 1)
        os.kill(os.getpid(), signal.SIGTERM)

    image = "docker://slow" if stage == "pull" else "docker://fast"
    thread = threading.Thread(target=send_sigterm)
    thread.daemon = True
    original = signal.signal(signal.SIGTERM, previous_handler)
    try:
        thread.start()
        with pytest.raises(JobTerminated):
            run(bed, command="sleep 60", image=image, retries=3)
    finally:
        signal.signal(signal.SIGTERM, original)
        thread.join(30)
    assert received == [signal.SIGTERM]
    pids = read_pids(bed, 1)
    assert len(pids) == 1
    assert not is_running(pids[0])
    if stage == "pull":
        assert pulls(bed) == 1  # no further tries
        assert os.listdir(bed["images"]) == []
