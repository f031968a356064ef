"""Executable jobs, run for real in subprocesses."""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import json
import os
import signal
import stat
import sys
import time

import pytest
from support import is_running, job_log, read_text

from tasksapi.tasks import executable
from tasksapi.tasks.errors import JobError

try:
    from shlex import quote
except ImportError:  # Python 2
    from pipes import quote  # noqa: UP035

UUID = "6f1c2d3e-aaaa-4bbb-8ccc-000011112222"

SHOW_ARGS = (
    "import json, sys\n"
    "arguments = sys.argv[1:]\n"
    "content = None\n"
    "if '--args-file' in arguments:\n"
    "    path = arguments[arguments.index('--args-file') + 1]\n"
    "    with open(path) as handle:\n"
    "        content = json.load(handle)\n"
    "print(json.dumps({'argv': arguments, 'file_content': content}))\n"
    "sys.exit(int(__import__('os').environ.get('EXIT_CODE', '0')))\n"
)


@pytest.fixture
def dirs(tmpdir):
    return {
        "logs": os.path.join(str(tmpdir), "logs"),
        "temp": os.path.join(str(tmpdir), "temp"),
        "root": str(tmpdir),
    }


@pytest.fixture
def show_args(tmpdir):
    path = os.path.join(str(tmpdir), "show_args.py")
    with io.open(path, "w", encoding="utf-8") as script:
        script.write(SHOW_ARGS)
    return "%s %s" % (quote(sys.executable), quote(path))


def run(
    dirs,
    command,
    env_vars_list=None,
    args_dict=None,
    json_file_option=None,
    environ=None,
):
    environ = dict(os.environ) if environ is None else environ
    executable.run_executable_job(
        UUID,
        command,
        env_vars_list,
        args_dict,
        json_file_option,
        logs_directory=dirs["logs"],
        temp_directory=dirs["temp"],
        environ=environ,
    )


def shown(dirs):
    return json.loads(job_log(dirs["logs"], UUID, "stdout"))


def test_inline_json_arguments_reach_the_command(dirs, show_args):
    run(dirs, show_args + " first", args_dict={"a": 1, "b": ["x", "y z"]})
    output = shown(dirs)
    assert output["argv"][0] == "first"
    assert json.loads(output["argv"][1]) == {"a": 1, "b": ["x", "y z"]}
    assert len(output["argv"]) == 2


def test_empty_args_dict_adds_nothing(dirs, show_args):
    run(dirs, show_args, args_dict={})
    assert shown(dirs)["argv"] == []


def test_json_file_option_writes_passes_and_removes_the_file(dirs, show_args):
    run(dirs, show_args, args_dict={"k": "v"}, json_file_option="--args-file")
    output = shown(dirs)
    assert output["argv"][0] == "--args-file"
    path = output["argv"][1]
    assert output["file_content"] == {"k": "v"}
    assert os.path.dirname(path) == dirs["temp"]
    assert UUID in os.path.basename(path)
    assert not os.path.exists(path)
    assert os.listdir(dirs["temp"]) == []


def test_json_file_is_removed_when_the_job_fails(dirs, show_args):
    environ = dict(os.environ, EXIT_CODE="4")
    with pytest.raises(JobError):
        run(
            dirs,
            show_args,
            env_vars_list=["EXIT_CODE"],
            args_dict={"k": "v"},
            json_file_option="--args-file",
            environ=environ,
        )
    assert shown(dirs)["file_content"] == {"k": "v"}
    assert os.listdir(dirs["temp"]) == []


def test_environment_is_only_the_named_variables_job_uuid_and_path(dirs):
    environ = {
        "PATH": os.environ["PATH"],
        "WANTED": "yes",
        "API_AUTH_TOKEN": "worker-secret",
        "OTHER": "no",
    }
    run(dirs, "env", env_vars_list=["WANTED"], environ=environ)
    lines = sorted(job_log(dirs["logs"], UUID, "stdout").splitlines())
    assert lines == sorted(
        ["JOB_UUID=%s" % (UUID,), "PATH=%s" % (os.environ["PATH"],), "WANTED=yes"]
    )


def test_command_variables_expand_from_the_job_environment_only(dirs):
    environ = {
        "PATH": os.environ["PATH"],
        "GREETING": "hello world",
        "API_AUTH_TOKEN": "worker-secret",
    }
    run(
        dirs,
        "echo $GREETING ${GREETING} $API_AUTH_TOKEN $JOB_UUID '$GREETING'",
        env_vars_list=["GREETING"],
        environ=environ,
    )
    output = job_log(dirs["logs"], UUID, "stdout")
    assert output == "hello world hello world $API_AUTH_TOKEN %s hello world\n" % (
        UUID,
    )
    assert "worker-secret" not in output


def test_missing_variable_fails_naming_it_and_runs_nothing(dirs, tmpdir):
    marker = os.path.join(str(tmpdir), "marker")
    environ = {"PATH": os.environ["PATH"], "PRESENT": "1"}
    with pytest.raises(JobError) as error:
        run(
            dirs,
            "touch %s" % (marker,),
            env_vars_list=["PRESENT", "ABSENT_VARIABLE"],
            environ=environ,
        )
    assert "ABSENT_VARIABLE" in str(error.value)
    assert "PRESENT" not in str(error.value)
    assert not os.path.exists(marker)
    assert not os.path.exists(os.path.join(dirs["logs"], UUID, UUID + "-stdout.txt"))


def test_non_zero_exit_fails_with_the_code(dirs):
    with pytest.raises(JobError) as error:
        run(dirs, "sh -c 'exit 3'")
    assert "exited with code 3" in str(error.value)


@pytest.mark.skipif(not os.path.exists("/proc/self/oom_score_adj"), reason="no /proc")
def test_the_job_is_first_in_line_for_the_oom_killer(dirs):
    run(dirs, "cat /proc/self/oom_score_adj")
    if int(read_text("/proc/self/oom_score_adj")) <= 500:
        assert int(job_log(dirs["logs"], UUID, "stdout")) == 500


def test_stdout_and_stderr_are_captured(dirs):
    run(dirs, "sh -c 'echo out; echo err >&2'")
    assert job_log(dirs["logs"], UUID, "stdout") == "out\n"
    assert job_log(dirs["logs"], UUID, "stderr") == "err\n"


def test_missing_executable_fails_clearly(dirs):
    with pytest.raises(JobError) as error:
        run(dirs, "no-such-executable-for-saltant --flag")
    message = str(error.value)
    assert "cannot run executable" in message
    assert "no-such-executable-for-saltant" in message
    assert "no such file or directory" in message


def test_not_executable_fails_clearly(dirs, tmpdir):
    path = os.path.join(str(tmpdir), "script.sh")
    with io.open(path, "w", encoding="utf-8") as script:
        script.write("#!/bin/sh\necho hi\n")
    with pytest.raises(JobError) as error:
        run(dirs, path)
    assert "permission denied" in str(error.value)


def test_empty_command_fails(dirs):
    with pytest.raises(JobError) as error:
        run(dirs, "   ")
    assert "command_to_run is empty" in str(error.value)


@pytest.mark.parametrize("uuid", ["../escape", "a/b", "", None, ".hidden"])
def test_unsafe_uuid_is_refused(dirs, uuid):
    with pytest.raises(JobError) as error:
        executable.run_executable_job(
            uuid, "true", [], {}, None, dirs["logs"], dirs["temp"]
        )
    assert "invalid job uuid" in str(error.value)


def test_env_vars_list_must_be_a_list(dirs):
    with pytest.raises(JobError) as error:
        run(dirs, "true", env_vars_list="PATH")
    assert "env_vars_list must be a list" in str(error.value)


def test_sigterm_handler_is_restored(dirs):
    before = signal.getsignal(signal.SIGTERM)
    run(dirs, "true")
    assert signal.getsignal(signal.SIGTERM) is before


JOB_SCRIPT = """#!/bin/sh
sleep 60 &
echo $! > "$1.child"
echo $$ > "$1"
wait
"""

# Its child ignores SIGTERM: it is killed with the job's group after the grace.
STUBBORN_JOB_SCRIPT = JOB_SCRIPT.replace("sleep 60 &", "(trap '' TERM; exec sleep 60) &")

HARNESS = """
import signal, sys
from tasksapi.tasks import executable

def previous_handler(signum, frame):
    with open(sys.argv[2], "w") as marker:
        marker.write("previous handler called")
    sys.exit(3)

signal.signal(signal.SIGTERM, previous_handler)
executable.run_executable_job(
    "1234-abcd", sys.argv[1], [], {}, None, sys.argv[3], sys.argv[3],
    kill_grace=2,
)
"""


def wait_for(predicate, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("job_script", [JOB_SCRIPT, STUBBORN_JOB_SCRIPT], ids=["child", "stubborn-child"])
def test_sigterm_terminates_the_job_and_reaches_the_previous_handler(tmpdir, job_script):
    """A revoke with terminate=True must not leave the job, or a child of it, running."""
    base = str(tmpdir)
    script = os.path.join(base, "job.sh")
    with io.open(script, "w", encoding="utf-8") as job:
        job.write(job_script)
    os.chmod(script, stat.S_IRWXU)
    pid_file = os.path.join(base, "job.pid")
    marker = os.path.join(base, "marker")
    harness = os.path.join(base, "harness.py")
    with io.open(harness, "w", encoding="utf-8") as handle:
        handle.write(HARNESS)

    import subprocess
    import threading

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env[str("PYTHONPATH")] = str(root)
    process = subprocess.Popen(
        [sys.executable, harness, "%s %s" % (script, pid_file), marker, base],
        env=env,
    )
    timer = threading.Timer(60, process.kill)
    timer.start()
    try:
        assert wait_for(
            lambda: (
                os.path.exists(pid_file)
                and os.path.exists(pid_file + ".child")
                and read_text(pid_file).strip()
                and read_text(pid_file + ".child").strip()
            )
        )
        job_pid = int(read_text(pid_file))
        child_pid = int(read_text(pid_file + ".child"))
        assert is_running(job_pid) and is_running(child_pid)
        process.send_signal(signal.SIGTERM)
        process.wait()
    finally:
        timer.cancel()
    assert process.returncode == 3
    assert read_text(marker) == "previous handler called"
    assert wait_for(lambda: not is_running(job_pid), timeout=10)
    assert wait_for(lambda: not is_running(child_pid), timeout=10)


@pytest.mark.parametrize("name", ["API_AUTH_TOKEN", "CELERY_BROKER_URL", "ROLLBAR_ACCESS_TOKEN"])
def test_the_workers_own_secrets_are_refused(dirs, name):
    environ = {"PATH": os.environ["PATH"], name: "worker-secret", "WANTED": "yes"}
    with pytest.raises(JobError) as error:
        run(dirs, "env", env_vars_list=["WANTED", name], environ=environ)
    assert "env_vars_list names %s, the worker's own secret" % (name,) in str(error.value)
    assert "worker-secret" not in str(error.value)
    # Nothing ran.
    assert not os.path.exists(os.path.join(dirs["logs"], UUID))


def test_the_job_starts_in_a_directory_of_its_own_removed_afterwards(dirs):
    run(dirs, "pwd")
    cwd = job_log(dirs["logs"], UUID, "stdout").strip()
    assert os.path.dirname(cwd) == dirs["temp"]
    assert os.path.basename(cwd).startswith(UUID) and cwd != os.getcwd()
    assert not os.path.exists(cwd)
