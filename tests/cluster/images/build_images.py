"""Build the real node's test images from local files and push them to a registry on 127.0.0.1.

No public registry can be reached here, so every image the real node runs is made by this
script: OCI image manifests with one gzip layer each, written byte for byte the same on every
run (fixed mtimes and owners), pushed with the registry's HTTP API. Python's standard library
only, so it runs before any virtual environment exists.

    build_images.py push --registry 127.0.0.1:5000 --sleep BIN --pause BIN --busybox BIN
                         [--private 127.0.0.1:5001 --user U --password-file F]
    build_images.py tag --registry R NAME FROM_TAG TO_TAG     point TO_TAG at FROM_TAG's manifest
    build_images.py digest --registry R NAME TAG              print the manifest digest
    build_images.py bench --registry R --count N --size-mib M push kip-bench/img-I:1 (I < N), each
                                                              one layer of M MiB that does not compress

The images (NAME:TAG under the registry):
    kip-test/pause:3.10          the pod sandbox: the static pause of the pinned Kubernetes tag
    kip-test/puller:1            stand-in for the upstream puller image: /bin/cp (busybox) and a
                                 static /bin/sleep that takes Go durations; USER 65532
    kip-test/no-shell:1          one data file: neither a shell nor a sleep
    kip-test/root-user:1         busybox, USER root
    kip-test/moving:a, :b        two different contents; kip-test/moving:current starts at :a
    kip-test/unused:1            pulled by no puller: the image GC test's control
    kip-test/private:1           on the private registry only (basic authentication)
"""
from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import random
import sys
import tarfile
import urllib.error
import urllib.request

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def layer(files: dict[str, tuple[bytes, int]], links: dict[str, str]) -> tuple[bytes, str]:
    """A reproducible gzip layer; returns (blob, diff_id) where diff_id digests the plain tar."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({p.rsplit("/", i)[0] for p in list(files) + list(links) for i in range(1, p.count("/") + 1)} - {""})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for path, (data, mode) in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
        for path, target in sorted(links.items()):
            info = tarfile.TarInfo(path)
            info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, 0
            tar.addfile(info)
    plain = raw.getvalue()
    return gzip.compress(plain, mtime=0), "sha256:" + hashlib.sha256(plain).hexdigest()


def digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


class Registry:
    def __init__(self, address: str, user: str = "", password: str = ""):
        self.base = f"http://{address}"
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() if user else ""

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        url = path if path.startswith("http") else self.base + path
        req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
        if self.auth:
            req.add_header("Authorization", self.auth)
        try:
            return urllib.request.urlopen(req, timeout=30)
        except urllib.error.HTTPError as err:
            raise SystemExit(f"error: {method} {url}: HTTP {err.code} {err.read()[:300]!r}") from None

    def has_blob(self, name: str, dgst: str) -> bool:
        try:
            self.request("HEAD", f"/v2/{name}/blobs/{dgst}")
            return True
        except SystemExit:
            return False

    def push_blob(self, name: str, blob: bytes) -> str:
        dgst = digest(blob)
        if not self.has_blob(name, dgst):
            location = self.request("POST", f"/v2/{name}/blobs/uploads/").headers["Location"]
            if location.startswith("/"):
                location = self.base + location
            sep = "&" if "?" in location else "?"
            self.request("PUT", f"{location}{sep}digest={dgst}", blob, {"Content-Type": "application/octet-stream"})
        return dgst

    def push_image(self, name: str, tag: str, blob: bytes, diff_id: str, config: dict) -> str:
        cfg = json.dumps({
            "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
            "config": config, "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }, sort_keys=True).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": self.push_blob(name, cfg), "size": len(cfg)},
            "layers": [{"mediaType": OCI_LAYER, "digest": self.push_blob(name, blob), "size": len(blob)}],
        }, sort_keys=True).encode()
        self.request("PUT", f"/v2/{name}/manifests/{tag}", manifest, {"Content-Type": OCI_MANIFEST})
        return digest(manifest)

    def manifest(self, name: str, tag: str) -> bytes:
        return self.request("GET", f"/v2/{name}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}).read()

    def tag(self, name: str, source: str, target: str) -> str:
        body = self.manifest(name, source)
        self.request("PUT", f"/v2/{name}/manifests/{target}", body, {"Content-Type": OCI_MANIFEST})
        return digest(body)


def read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def push_all(args: argparse.Namespace) -> None:
    sleep, pause, busybox = read(args.sleep), read(args.pause), read(args.busybox)
    shell = {"bin/busybox": (busybox, 0o755)}
    shell_links = {"bin/sh": "busybox", "bin/cp": "busybox", "bin/ls": "busybox", "bin/cat": "busybox"}
    images = {
        ("kip-test/pause", "3.10"): ({"pause": (pause, 0o755)}, {}, {"Entrypoint": ["/pause"], "User": "65535"}),
        ("kip-test/puller", "1"): ({**shell, "bin/sleep": (sleep, 0o755)}, shell_links, {"User": "65532"}),
        ("kip-test/no-shell", "1"): ({"data/content.txt": (b"no shell and no sleep here\n", 0o644)}, {}, {}),
        ("kip-test/root-user", "1"): (shell, shell_links, {"User": "root", "Cmd": ["/bin/sh"]}),
        ("kip-test/moving", "a"): ({"data/content.txt": (b"moving tag, content a\n", 0o644)}, {}, {}),
        ("kip-test/moving", "b"): ({"data/content.txt": (b"moving tag, content b\n", 0o644)}, {}, {}),
        ("kip-test/unused", "1"): ({"data/content.txt": (b"cached by nobody\n", 0o644)}, {}, {}),
        # Only the image GC test caches these, so tests running beside it cannot keep them in use.
        ("kip-test/gc-kept", "a"): ({"data/content.txt": (b"kept from image GC by the puller, a\n", 0o644)}, {}, {}),
        ("kip-test/gc-kept", "b"): ({"data/content.txt": (b"kept from image GC by the puller, b\n", 0o644)}, {}, {}),
        # ... and this one only its second puller, in image_puller_mode init (an init container that has exited).
        ("kip-test/gc-kept", "init"): ({"data/content.txt": (b"kept from image GC by the puller, init mode\n", 0o644)}, {}, {}),
    }
    public = Registry(args.registry)
    for (name, tag), (files, links, config) in images.items():
        blob, diff_id = layer(files, links)
        print(f"{args.registry}/{name}:{tag} {public.push_image(name, tag, blob, diff_id, config)}")
    print(f"{args.registry}/kip-test/moving:current {public.tag('kip-test/moving', 'a', 'current')}")
    if args.private:
        with open(args.password_file, encoding="utf-8") as handle:
            private = Registry(args.private, args.user, handle.read().strip())
        blob, diff_id = layer({"data/content.txt": (b"only with credentials\n", 0o644)}, {})
        print(f"{args.private}/kip-test/private:1 {private.push_image('kip-test/private', '1', blob, diff_id, {})}")


def push_bench(args: argparse.Namespace) -> None:
    """Images of a known size for the pull benchmark: seeded random bytes, the same on every run."""
    public = Registry(args.registry)
    for index in range(args.count):
        data = random.Random(f"kip-bench-{index}").randbytes(args.size_mib << 20)
        blob, diff_id = layer({"data/blob": (data, 0o644)}, {})
        print(f"{args.registry}/kip-bench/img-{index}:1 {public.push_image(f'kip-bench/img-{index}', '1', blob, diff_id, {})}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    push = sub.add_parser("push")
    push.add_argument("--registry", required=True)
    push.add_argument("--sleep", required=True)
    push.add_argument("--pause", required=True)
    push.add_argument("--busybox", required=True)
    push.add_argument("--private", default="")
    push.add_argument("--user", default="")
    push.add_argument("--password-file", default="")
    tag = sub.add_parser("tag")
    tag.add_argument("--registry", required=True)
    tag.add_argument("name")
    tag.add_argument("source")
    tag.add_argument("target")
    dig = sub.add_parser("digest")
    dig.add_argument("--registry", required=True)
    dig.add_argument("name")
    dig.add_argument("tag")
    bench = sub.add_parser("bench")
    bench.add_argument("--registry", required=True)
    bench.add_argument("--count", type=int, default=10)
    bench.add_argument("--size-mib", type=int, default=50)
    args = parser.parse_args(argv)
    if args.command == "push":
        push_all(args)
    elif args.command == "bench":
        push_bench(args)
    elif args.command == "tag":
        print(Registry(args.registry).tag(args.name, args.source, args.target))
    else:
        print(digest(Registry(args.registry).manifest(args.name, args.tag)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
