"""Jobs past their instance's memory bound: the OOM killer's count, the words of the failure."""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import os
import signal

from tasksapi.tasks import processes


def write(path, content):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory)
    with io.open(path, "w", encoding="utf-8") as handle:
        handle.write(content)


def test_the_oom_kill_count_of_a_cgroup_v1_memory_controller(tmpdir):
    proc, root = str(tmpdir.join("proc")), str(tmpdir.join("cgroup"))
    unit = "/docker/abc/system.slice/system-saltant\\x2dworker.slice/saltant-worker@limited.service"
    write(os.path.join(proc, "self", "cgroup"), "8:pids:%s\n4:memory:%s\n1:name=systemd:%s\n" % (unit, unit, unit))
    write(os.path.join(root, "memory") + unit + "/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    assert processes.oom_kills(proc, root) == 3


def test_the_oom_kill_count_of_a_cgroup_v2_unit(tmpdir):
    proc, root = str(tmpdir.join("proc")), str(tmpdir.join("cgroup"))
    unit = "/system.slice/saltant-worker@default.service"
    write(os.path.join(proc, "self", "cgroup"), "0::%s\n" % (unit,))
    write(root + unit + "/memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    assert processes.oom_kills(proc, root) == 1


def test_no_count_where_the_kernel_does_not_say(tmpdir):
    proc, root = str(tmpdir.join("proc")), str(tmpdir.join("cgroup"))
    assert processes.oom_kills(proc, root) is None
    write(os.path.join(proc, "self", "cgroup"), "0::/somewhere\n")
    assert processes.oom_kills(proc, root) is None


def test_a_job_the_oom_killer_ended_fails_saying_so():
    killed = -int(signal.SIGKILL)
    assert processes.describe_exit(killed, out_of_memory=True) == (
        "command killed: out of memory (the kernel's OOM killer, past the instance's memory_max)")
    assert processes.describe_exit(killed) == "command killed by signal 9"
    assert processes.describe_exit(3, out_of_memory=True) == "command exited with code 3"
    # A container runtime reports its killed child as 128 + 9.
    assert processes.describe_exit(137, "container", out_of_memory=True).startswith("container killed: out of memory")
