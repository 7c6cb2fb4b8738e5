#!/usr/bin/env python3
"""Write a small Docker/OCI image as an OCI layout (tar + gzip + sha256), for
the tests and benchmarks that push it to a local registry with skopeo.

    oci_fixture.py DIR [--layers N] [--big-layer-bytes B] [--tag TAG]

Layers are deterministic (same bytes every run, so the same digests); with
--big-layer-bytes the top layer holds B bytes of compressible, file-system-like
content instead. The config has rootfs.diff_ids (sha256 of each uncompressed
tar), a history with one empty_layer entry, and Cmd/Env/WorkingDir. Prints a
JSON object: manifest, config and layer digests, diff_ids.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import random
import tarfile


def put(out, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def compressible(n, seed):
    """n bytes that compress like a typical root file system (about 3:1)."""
    rng = random.Random(seed)
    words = [bytes(rng.getrandbits(8) for _ in range(rng.randint(3, 12))) for _ in range(4096)]
    chunks, size = [], 0
    while size < n:
        line = b" ".join(rng.choice(words) for _ in range(12)) + b"\n"
        chunks.append(line)
        size += len(line)
    return b"".join(chunks)[:n]


def layer_tar(index, payload):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(f"layer{index}/data")
        info.size = len(payload)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--big-layer-bytes", type=int, default=0)
    ap.add_argument("--tag", default="latest")
    args = ap.parse_args()
    out = args.dir
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    layers, diff_ids, history = [], [], []
    for i in range(args.layers):
        top = i == args.layers - 1
        if top and args.big_layer_bytes:
            payload = compressible(args.big_layer_bytes, seed=i)
        else:
            payload = (f"layer {i}\n" * 2000).encode()
        raw = layer_tar(i, payload)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        digest, size = put(out, gzip.compress(raw, compresslevel=6, mtime=0))
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": digest, "size": size})
        history.append({"created": f"2024-01-{i + 1:02d}T00:00:00.123456789Z",
                        "created_by": f"/bin/sh -c make layer {i}"})
        if i == 0:
            history.append({"created": "2024-01-01T12:00:00Z",
                            "created_by": "/bin/sh -c #(nop)  ENV A=1", "empty_layer": True})
    config = {
        "created": history[-1]["created"],
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin", "A=1"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    config_digest, config_size = put(out, json.dumps(config, separators=(",", ":")).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": layers,
    }
    manifest_digest, manifest_size = put(out, json.dumps(manifest, separators=(",", ":")).encode())
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": args.tag},
            "platform": {"os": "linux", "architecture": "amd64"}}]}, f)
    print(json.dumps({"manifest": manifest_digest, "config": config_digest,
                      "layers": [l["digest"] for l in layers], "diff_ids": diff_ids}))


if __name__ == "__main__":
    main()
