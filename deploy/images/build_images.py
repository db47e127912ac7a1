"""Writes the Shoal test images as docker-archive tarballs (see build.sh).

Deterministic: fixed timestamps and owners, so the same busybox gives the same image IDs.
"""
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import time

EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "1700000000"))
CREATED = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(EPOCH))
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
MARKER = "shoal-test-httpd-ok"


def info(name, kind, mode, size=0, link=""):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.size = size
    ti.linkname = link
    ti.mtime = EPOCH
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


def make_tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            kind, name = e[0], e[1]
            if kind == "dir":
                tf.addfile(info(name, tarfile.DIRTYPE, e[2]))
            elif kind == "file":
                data = e[2]
                tf.addfile(info(name, tarfile.REGTYPE, e[3], len(data)), io.BytesIO(data))
            elif kind == "symlink":
                tf.addfile(info(name, tarfile.SYMTYPE, 0o777, link=e[2]))
    return buf.getvalue()


def base_layer(busybox):
    with open(busybox, "rb") as f:
        bb = f.read()
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout.split()
    entries = [("dir", d, 0o755) for d in ["bin", "dev", "etc", "proc", "sys", "var", "usr", "usr/bin", "www"]]
    entries += [("dir", "tmp", 0o1777), ("dir", "root", 0o700)]
    entries.append(("file", "bin/busybox", bb, 0o755))
    entries += [("symlink", "bin/" + a, "busybox") for a in sorted(set(applets)) if a != "busybox" and "/" not in a]
    entries.append(("file", "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644))
    entries.append(("file", "etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644))
    return make_tar(entries)


def httpd_layer():
    page = ("<html><body><h1>shoal test httpd</h1><p>%s</p></body></html>\n" % MARKER).encode()
    return make_tar([("dir", "www", 0o755), ("file", "www/index.html", page, 0o644)])


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image(name, layers, cfg):
    config = {
        "architecture": ARCH,
        "os": "linux",
        "created": CREATED,
        "config": dict(cfg, Env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]),
        "rootfs": {"type": "layers", "diff_ids": [sha(l) for l in layers]},
        "history": [{"created": CREATED, "created_by": "deploy/images/build.sh"} for _ in layers],
    }
    return {"name": name, "layers": layers, "config": json.dumps(config, sort_keys=True).encode()}


def write_archive(path, images):
    blobs = {}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
    docker_manifest, repositories = [], {}
    for img in images:
        for l in img["layers"]:
            blobs[sha(l)] = l
        blobs[sha(img["config"])] = img["config"]
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(img["config"]), "size": len(img["config"])},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(l), "size": len(l)} for l in img["layers"]],
        }, sort_keys=True).encode()
        blobs[sha(manifest)] = manifest
        repo, tag = img["name"].rsplit(":", 1)
        index["manifests"].append({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest), "size": len(manifest),
            "annotations": {"io.containerd.image.name": "docker.io/" + img["name"], "org.opencontainers.image.ref.name": tag},
        })
        docker_manifest.append({
            "Config": "blobs/sha256/" + sha(img["config"])[7:],
            "RepoTags": [img["name"]],
            "Layers": ["blobs/sha256/" + sha(l)[7:] for l in img["layers"]],
        })
        repositories.setdefault(repo, {})[tag] = sha(img["layers"][-1])[7:]
    files = [("blobs/sha256/" + d[7:], data) for d, data in sorted(blobs.items())]
    files += [
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
        ("index.json", json.dumps(index).encode()),
        ("manifest.json", json.dumps(docker_manifest).encode()),
        ("repositories", json.dumps(repositories).encode()),
    ]
    entries = [("dir", "blobs", 0o755), ("dir", "blobs/sha256", 0o755)]
    entries += [("file", n, data, 0o644) for n, data in files]
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(make_tar(entries))
    os.replace(tmp, path)


def main():
    busybox, out = sys.argv[1], sys.argv[2]
    base = base_layer(busybox)
    www = httpd_layer()
    bb = image("shoal-test/busybox:latest", [base], {"Cmd": ["sh"]})
    httpd = image("shoal-test/httpd:latest", [base, www], {
        "Cmd": ["httpd", "-f", "-v", "-p", "80", "-h", "/www"],
        "ExposedPorts": {"80/tcp": {}},
    })
    write_archive(os.path.join(out, "busybox.tar"), [bb])
    write_archive(os.path.join(out, "httpd.tar"), [httpd])
    write_archive(os.path.join(out, "both.tar"), [bb, httpd])
    with open(os.path.join(out, "busybox-rootfs.tar"), "wb") as f:
        f.write(base)
    for n in ["busybox.tar", "httpd.tar", "both.tar", "busybox-rootfs.tar"]:
        print(os.path.join(out, n))
    print("base layer " + sha(base))


if __name__ == "__main__":
    main()
