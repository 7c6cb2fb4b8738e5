#!/usr/bin/env python3
"""Write a one-layer OCI image layout whose layer is a gzip'd tar of real files.

Usage: docker_fixture.py OUT_DIR TARGET_BYTES [SOURCE_DIR ...]   (standard library only)

The layer is a tar of the files under the source directories (default
/usr/lib /usr/share /usr/bin), walked in sorted order, gzip level 6 (the
default of gzip and of Go's compress/gzip, so what `docker push` makes).
Files are added until the compressed layer reaches TARGET_BYTES (the last one
cut short, so the layer lands a little past it): a real filesystem tarball
compresses like a real image layer, unlike random bytes.
The tar, gzip and both digests (blob sha256, uncompressed sha256 = diff_id)
are computed in one pass, so nothing but the layer is written to disk.

Writes OUT_DIR/{oci-layout,index.json,blobs/sha256/*} with the tag "v1" and
prints one key=value line per figure: layer_bytes, layer_uncompressed_bytes,
layer_files, layer_sources, layer_digest, diff_id.
"""

import hashlib
import json
import os
import stat
import sys
import tarfile
import zlib

GZIP_LEVEL = 6
# Readers of the tar must never wait on the gzip stream: flush in big steps.
READ_CHUNK = 1 << 20


class GzipHashWriter:
    """File-like sink: hashes the tar bytes, gzips them, hashes and writes the gzip bytes."""

    def __init__(self, out):
        self.out = out
        self.raw_sha = hashlib.sha256()
        self.raw_bytes = 0
        self.gz_sha = hashlib.sha256()
        self.gz_bytes = 0
        self.deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)

    def _emit(self, data):
        if data:
            self.gz_sha.update(data)
            self.gz_bytes += len(data)
            self.out.write(data)

    def write(self, data):
        self.raw_sha.update(data)
        self.raw_bytes += len(data)
        self._emit(self.deflate.compress(data))
        return len(data)

    def finish(self):
        self._emit(self.deflate.flush())


def raw_budget(sink, target):
    """Uncompressed bytes still wanted, at the ratio so far (a little over, to land just past the target)."""
    ratio = sink.gz_bytes / sink.raw_bytes if sink.gz_bytes else 0.5
    return max(READ_CHUNK, int((target - sink.gz_bytes) / max(ratio, 0.05) * 1.05))


def walk(sources):
    """Every path under the sources, sorted, directories before their contents."""
    for src in sources:
        for root, dirs, files in os.walk(src):
            dirs.sort()
            yield root
            for name in sorted(files):
                yield os.path.join(root, name)


def write_blob(blobs, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return f"sha256:{digest}", len(data)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out_dir, target = sys.argv[1], int(sys.argv[2])
    sources = sys.argv[3:] or ["/usr/lib", "/usr/share", "/usr/bin"]
    blobs = os.path.join(out_dir, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    tmp_layer = os.path.join(blobs, "layer.tmp")
    files = 0
    with open(tmp_layer, "wb") as out:
        sink = GzipHashWriter(out)
        tar = tarfile.open(fileobj=sink, mode="w|", format=tarfile.GNU_FORMAT, bufsize=READ_CHUNK)
        for path in walk(sources):
            if sink.gz_bytes >= target:
                break
            try:
                st = os.lstat(path)
                if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                    continue
                info = tar.gettarinfo(path, arcname=path.lstrip("/"))
                if info.isreg():
                    info.size = min(info.size, raw_budget(sink, target))
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
                files += 1
            except OSError:
                continue  # unreadable or vanished: skip it, the layer stays a valid tar
        tar.close()
        sink.finish()
    if sink.gz_bytes < target:
        sys.exit(f"docker_fixture: the sources hold only {sink.gz_bytes} compressed bytes, "
                 f"below the {target} asked; name more source directories")

    layer_digest = f"sha256:{sink.gz_sha.hexdigest()}"
    diff_id = f"sha256:{sink.raw_sha.hexdigest()}"
    os.rename(tmp_layer, os.path.join(blobs, layer_digest.split(":", 1)[1]))

    created = "2026-01-01T00:00:00Z"
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created,
                     "created_by": f"/bin/sh -c #(nop) ADD a tar of {' '.join(sources)}"}],
    }
    config_digest, config_size = write_blob(blobs, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": sink.gz_bytes}],
    }
    manifest_digest, manifest_size = write_blob(blobs, json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": manifest_size,
                       "annotations": {"org.opencontainers.image.ref.name": "v1"}}],
    }
    with open(os.path.join(out_dir, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(out_dir, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)

    print(f"layer_bytes={sink.gz_bytes}")
    print(f"layer_uncompressed_bytes={sink.raw_bytes}")
    print(f"layer_files={files}")
    print(f"layer_sources={' '.join(sources)}")
    print(f"layer_digest={layer_digest}")
    print(f"diff_id={diff_id}")


if __name__ == "__main__":
    main()
