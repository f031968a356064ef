#!/usr/bin/env python3
"""Build a tiny container image offline and push it to a registry.

    push_image.py --registry http://127.0.0.1:5000 --name testbed/busybox --tag 1

The image has one layer: busybox from Debian's busybox-static package, with
its applets linked under /bin, and /tmp. No registry is pulled from and no
container engine is needed: the layer, the image config and a Docker v2
schema 2 manifest are made here and uploaded with the registry HTTP API.
The result is reproducible: the same busybox gives the same digests.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import urllib.error
import urllib.request

BUSYBOX = "/bin/busybox"
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def applets() -> list[str]:
    out = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout
    return sorted(name for name in out.split() if name != "busybox")


def layer_tar() -> bytes:
    """The uncompressed layer: /bin/busybox, a link per applet, /tmp."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, mode in (("bin", 0o755), ("tmp", 0o1777)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        with open(BUSYBOX, "rb") as handle:
            data = handle.read()
        info = tarfile.TarInfo("bin/busybox")
        info.mode, info.size = 0o755, len(data)
        tar.addfile(info, io.BytesIO(data))
        for applet in applets():
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(info)
    return buffer.getvalue()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def request(method: str, url: str, data: bytes | None = None, content_type: str | None = None):
    req = urllib.request.Request(url, data=data, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    return urllib.request.urlopen(req, timeout=30)


def push_blob(registry: str, name: str, data: bytes) -> str:
    blob = digest(data)
    try:
        request("HEAD", f"{registry}/v2/{name}/blobs/{blob}")
        return blob  # already there
    except urllib.error.HTTPError as error:
        if error.code != 404:
            raise
    with request("POST", f"{registry}/v2/{name}/blobs/uploads/", data=b"") as response:
        location = response.headers["Location"]
    if location.startswith("/"):
        location = registry + location
    separator = "&" if "?" in location else "?"
    request("PUT", f"{location}{separator}digest={blob}", data=data, content_type="application/octet-stream")
    return blob


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default="http://127.0.0.1:5000")
    parser.add_argument("--name", default="testbed/busybox")
    parser.add_argument("--tag", default="1")
    args = parser.parse_args()
    raw = layer_tar()
    compressed = gzip.compress(raw, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [digest(raw)]},
            "history": [{"created_by": "saltant-fleet test bed: busybox-static"}],
        },
        sort_keys=True,
    ).encode()
    layer_digest = push_blob(args.registry, args.name, compressed)
    config_digest = push_blob(args.registry, args.name, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": config_digest},
            "layers": [{"mediaType": LAYER_TYPE, "size": len(compressed), "digest": layer_digest}],
        },
        sort_keys=True,
    ).encode()
    request("PUT", f"{args.registry}/v2/{args.name}/manifests/{args.tag}", data=manifest, content_type=MANIFEST_TYPE)
    print(digest(manifest))


if __name__ == "__main__":
    main()
