#!/usr/bin/python
"""Write several files and directories of the role in one module run.

The host side of the saltant_files action (action_plugins/), which
renders the templates on the controller and passes their text here. One
module run per task, however many files: a template task costs two module
runs on the host (stat, then copy or file), each a Python start that
compiles Ansible's module utilities again (about 0.15 CPU-s).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: saltant_files
short_description: Write files and directories with their owner, group and mode, in one module run
description:
  - Used through the action of the same name, which renders templates on the controller.
  - A file whose content differs is written to a temporary file in its directory, given its owner,
    group and mode, and renamed over the old one (never readable by others meanwhile).
  - An existing directory keeps its content; its owner, group and mode are set.
options:
  entries:
    description: What to write, in order.
    type: list
    elements: dict
    required: true
    suboptions:
      path: {description: Absolute path., type: str, required: true}
      state: {description: file or directory., type: str, default: file, choices: [file, directory]}
      content: {description: The file's text (state file)., type: str}
      owner: {description: Owner name., type: str, default: root}
      group: {description: Group name., type: str, default: root}
      mode: {description: Octal mode as a string, such as "0644"., type: str, required: true}
      diff: {description: Show the file's content in diff mode (false for secrets)., type: bool, default: true}
author: saltant-fleet
"""

RETURN = r"""
changed_paths:
  description: The paths that were (in check mode, would be) created or changed.
  type: list
  elements: str
  returned: always
"""


def _ids(entry: dict) -> tuple[int, int]:
    return pwd.getpwnam(entry["owner"]).pw_uid, grp.getgrnam(entry["group"]).gr_gid


def _attributes_differ(st: os.stat_result, uid: int, gid: int, mode: int) -> bool:
    return st.st_uid != uid or st.st_gid != gid or stat.S_IMODE(st.st_mode) != mode


def _directory(module: AnsibleModule, entry: dict, uid: int, gid: int, mode: int) -> dict | None:
    path = entry["path"]
    # A symbolic link to a directory (job directories on another disk) is followed.
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        module.fail_json(msg=f"{path} exists and is not a directory")
    if st is not None and not _attributes_differ(st, uid, gid, mode):
        return None
    if not module.check_mode:
        if st is None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.mkdir(path, 0o700)
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    return {
        "before": {"path": path, "state": "directory" if st else "absent"},
        "after": {
            "path": path,
            "state": "directory",
            "owner": entry["owner"],
            "group": entry["group"],
            "mode": entry["mode"],
        },
    }


def _file(module: AnsibleModule, entry: dict, uid: int, gid: int, mode: int) -> dict | None:
    path = entry["path"]
    content = (entry.get("content") or "").encode("utf-8")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        module.fail_json(msg=f"{path} exists and is a directory")
    if st is not None and not stat.S_ISREG(st.st_mode):
        # A symbolic link or another special file is replaced by the file.
        st = None
    before = None
    if st is not None:
        with open(path, "rb") as current:
            before = current.read()
    if before == content and not _attributes_differ(st, uid, gid, mode):
        return None
    if not module.check_mode:
        if before != content:
            # Owner, group and mode are the final ones before the file gets its name.
            fd, temp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".saltant-fleet.")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(content)
                    out.flush()
                    os.fchown(out.fileno(), uid, gid)
                    os.fchmod(out.fileno(), mode)
                    os.fsync(out.fileno())
                os.rename(temp, path)
            except BaseException:
                if os.path.exists(temp):
                    os.unlink(temp)
                raise
        else:
            os.chown(path, uid, gid)
            os.chmod(path, mode)
    if not entry.get("diff", True):
        return {
            "before_header": path,
            "after_header": path,
            "before": "" if before is None else "(content not shown)\n",
            "after": "(content not shown)\n",
        }
    return {
        "before_header": path,
        "after_header": path,
        "before": "" if before is None else before.decode("utf-8", "replace"),
        "after": content.decode("utf-8", "replace"),
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={"entries": {"type": "list", "elements": "dict", "required": True}},
        supports_check_mode=True,
    )
    changed_paths = []
    diffs = []
    for entry in module.params["entries"]:
        entry = {"state": "file", "owner": "root", "group": "root", **entry}
        if not os.path.isabs(entry.get("path") or ""):
            module.fail_json(msg=f"not an absolute path: {entry.get('path')!r}")
        try:
            uid, gid = _ids(entry)
        except KeyError as missing:
            if module.check_mode:
                # A user or group that an earlier task would create (check mode
                # on a new host): what it would own would change.
                changed_paths.append(entry["path"])
                continue
            module.fail_json(msg=f"{entry['path']}: no such user or group: {missing}")
        mode = int(str(entry["mode"]), 8)
        change = (_directory if entry["state"] == "directory" else _file)(module, entry, uid, gid, mode)
        if change is not None:
            changed_paths.append(entry["path"])
            diffs.append(change)
    result = {"changed": bool(changed_paths), "changed_paths": changed_paths}
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
