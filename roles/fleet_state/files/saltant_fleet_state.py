# -*- coding: utf-8 -*-
"""What site.yml last applied to this host, and whether it is still there.

    saltant_fleet_state.py [fact [DIR]]         print {"roles": {ROLE: {"digest",
                                                "intact", "drift"}}, "intact", "drift"}
    saltant_fleet_state.py record DIR           read roles (JSON) on stdin, observe
                                                what each names and keep it in DIR
    saltant_fleet_state.py forget DIR ROLE...   drop those roles from the record

Installed by the fleet_state role as an Ansible local fact
(/etc/ansible/facts.d/saltant_fleet.fact), which the comparison runs in its
one shell command on the host: one round trip tells the controller whether
a host still holds exactly what the last complete run left (the files,
trees, git checkouts, units, packages and accounts the roles name) and with
which inputs (a digest), role by role. A
role whose inputs and results are unchanged is skipped; any difference, or
anything this script cannot read, means that role runs every task.

Runs on the host's Python, 2.7 or 3.
"""

from __future__ import print_function

import glob
import grp
import hashlib
import json
import os
import pwd
import stat
import subprocess
import sys

STATE_DIR = "/var/lib/saltant-fleet/state"
STATE_FILE = "applied.json"
# 2: one entry per role. A record of another version is no record.
VERSION = 2
# Trees are configuration directories; a huge one is not worth hashing.
MAX_TREE_ENTRIES = 2000


def file_digest(path):
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(65536), b""):
            sha.update(block)
    return sha.hexdigest()


def observe_path(path):
    """Type, owner, mode and content digest (files) or target (links)."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    mode = stat.S_IMODE(info.st_mode)
    seen = [info.st_uid, info.st_gid, mode]
    if stat.S_ISLNK(info.st_mode):
        return ["link", os.readlink(path)] + seen
    if stat.S_ISDIR(info.st_mode):
        return ["dir"] + seen
    if stat.S_ISREG(info.st_mode):
        try:
            return ["file", file_digest(path)] + seen
        except (IOError, OSError):
            return ["file", "unreadable"] + seen
    return ["other"] + seen


def expand(patterns):
    """Each pattern, or the paths a glob pattern matches (sorted)."""
    paths = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            paths.extend(sorted(glob.glob(pattern)))
        else:
            paths.append(pattern)
    return paths


def observe_tree(root):
    """Every entry under root, as observe_path sees it."""
    seen = {".": observe_path(root)}
    if seen["."] is None or seen["."][0] != "dir":
        return seen
    for current, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            path = os.path.join(current, name)
            seen[os.path.relpath(path, root)] = observe_path(path)
            if len(seen) > MAX_TREE_ENTRIES:
                return {"too many entries": len(seen)}
    return seen


def observe_listing(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return None


def run(argv, cwd=None):
    try:
        process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError:
        return None
    out = process.communicate()[0]
    if process.returncode != 0:
        return None
    return out.decode("utf-8", "replace")


def observe_git(path):
    """The commit checked out and whether tracked files differ from it."""
    head = run(["git", "-C", path, "rev-parse", "HEAD"])
    if head is None:
        return None
    changes = run(["git", "-C", path, "status", "--porcelain", "--untracked-files=no"])
    return [head.strip(), changes is not None and changes.strip() == ""]


def observe_units(names):
    if not names:
        return {}
    out = run(["systemctl", "show", "--property=Id,ActiveState,UnitFileState", "--"] + list(names))
    if out is None:
        return {"error": True}
    seen = {}
    for block in out.strip().split("\n\n"):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        # Running, starting or in a warm restart (deactivating until its
        # jobs finish) are all "up": only a stopped or failed unit is drift.
        active = fields.get("ActiveState")
        up = "up" if active in ("active", "activating", "deactivating", "reloading") else active
        seen[fields.get("Id", "?")] = [up, fields.get("UnitFileState")]
    # systemctl answers in the order asked; unknown units still get a block.
    return seen


def observe_packages(names):
    if not names:
        return {}
    out = run(["dpkg-query", "--show", "--showformat=${Package} ${Status} ${Version}\\n", "--"] + list(names))
    seen = dict((name, None) for name in names)
    for line in (out or "").splitlines():
        parts = line.split(" ", 4)
        if len(parts) == 5:
            seen[parts[0]] = [parts[3], parts[4]]
    return seen


def observe_accounts(spec):
    seen = {}
    for name in spec.get("users", []):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            seen["user " + name] = None
            continue
        seen["user " + name] = [entry.pw_uid, entry.pw_gid, entry.pw_dir, entry.pw_shell]
    for name in spec.get("groups", []):
        try:
            entry = grp.getgrnam(name)
        except KeyError:
            seen["group " + name] = None
            continue
        seen["group " + name] = [entry.gr_gid, sorted(entry.gr_mem)]
    return seen


def observe(spec):
    """Everything the spec names, as the host has it now."""
    return {
        "paths": dict((path, observe_path(path)) for path in expand(spec.get("paths", []))),
        "globs": dict((pattern, sorted(glob.glob(pattern))) for pattern in spec.get("globs", [])),
        "trees": dict((path, observe_tree(path)) for path in spec.get("trees", [])),
        "listings": dict((path, observe_listing(path)) for path in expand(spec.get("listings", []))),
        "git": dict((path, observe_git(path)) for path in spec.get("git", [])),
        "units": observe_units(spec.get("units", [])),
        "packages": observe_packages(spec.get("packages", [])),
        "accounts": observe_accounts(spec.get("accounts", {})),
    }


def differences(recorded, now):
    drift = []
    for kind in sorted(recorded):
        before, after = recorded[kind], now.get(kind, {})
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                drift.append("%s %s" % (kind, key))
    return drift


def load(state_dir):
    """The roles of the record: {} without one, or with a broken one or one
    of an older version (every role then runs)."""
    try:
        with open(os.path.join(state_dir, STATE_FILE)) as handle:
            state = json.load(handle)
    except (IOError, OSError, ValueError):
        return {}
    roles = state.get("roles") if isinstance(state, dict) and state.get("version") == VERSION else None
    return roles if isinstance(roles, dict) else {}


def save(state_dir, roles):
    if not os.path.isdir(state_dir):
        os.makedirs(state_dir, 0o700)
    temporary = os.path.join(state_dir, "." + STATE_FILE + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"version": VERSION, "roles": roles}, handle, sort_keys=True)
    os.rename(temporary, os.path.join(state_dir, STATE_FILE))


def fact(state_dir):
    roles = {}
    for name, entry in sorted(load(state_dir).items()):
        try:
            drift = differences(entry["observed"], observe(entry["spec"]))
        except Exception as error:  # noqa: BLE001 - anything unreadable means "run that role"
            drift = ["cannot check: %s" % error]
        roles[name] = {"digest": entry.get("digest", ""), "intact": not drift, "drift": drift[:20]}
    drift = [item for name in sorted(roles) for item in roles[name]["drift"]]
    if not roles:
        drift = ["no record of a complete run"]
    return {"roles": roles, "intact": not drift, "drift": drift[:20]}


def normalize(spec):
    """A role's spec as the roles give it (lists, maybe nested or repeated;
    '' for a role that did not run): sorted lists of unique names."""
    def names(value):
        if isinstance(value, (list, tuple)):
            return sorted(set(item for element in value for item in names(element)))
        return [value] if value else []
    spec = spec if isinstance(spec, dict) else {}
    result = dict((kind, names(value)) for kind, value in spec.items() if kind != "accounts")
    accounts = spec.get("accounts") or {}
    result["accounts"] = {"users": names(accounts.get("users", [])), "groups": names(accounts.get("groups", []))}
    return result


def record(state_dir):
    """Keep the roles of the request (names, digests, specs) as the host has
    them now; the other roles of the record stay as they are."""
    request = json.load(sys.stdin)
    roles = load(state_dir)
    for name, digest, spec in zip(request["names"], request["digests"], request["specs"]):
        spec = normalize(spec)
        roles[name] = {"digest": digest, "spec": spec, "observed": observe(spec)}
    save(state_dir, roles)
    print(json.dumps({"recorded": sorted(request["names"]),
                      "entries": sum(len(v) for r in roles.values() for v in r["observed"].values())}))


def forget(state_dir, names):
    """Drop roles from the record before they run: a run that stops half-way
    leaves them without one, and the next run runs them."""
    roles = load(state_dir)
    forgotten = sorted(name for name in names if roles.pop(name, None) is not None)
    if forgotten:
        save(state_dir, roles)
    print(json.dumps({"forgotten": forgotten}))


def main(argv):
    command = argv[1] if len(argv) > 1 else "fact"
    state_dir = argv[2] if len(argv) > 2 else STATE_DIR
    if command == "record":
        record(state_dir)
        return 0
    if command == "forget":
        forget(state_dir, argv[3:])
        return 0
    try:
        result = fact(state_dir)
    except Exception as error:  # noqa: BLE001 - any failure means "run everything"
        result = {"roles": {}, "intact": False, "drift": ["cannot check: %s" % error]}
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
