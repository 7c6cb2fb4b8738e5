"""Seed a fresh imgapi server with images for the schemathesis run and write
the schemathesis configuration that points the fuzzer at them.

usage: seed.py BASE_URL CONFIG_OUT
"""
import json
import sys
import urllib.request

BASE, OUT = sys.argv[1], sys.argv[2]
OWNER = "86055c40-2547-11e2-8a6b-4bb37edc84ba"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010800000000"
    "3a7e9b550000000a49444154789c63600000000200015e4e2ab0000000"
    "0049454e44ae426082"
)


def call(method, path, body=None, content_type="application/json"):
    data = None
    headers = {}
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = content_type
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req) as resp:
        text = resp.read()
        return json.loads(text) if text.strip() else None


def create(name, version, **extra):
    manifest = {
        "name": name, "version": version, "type": "zone-dataset", "os": "smartos",
        "owner": OWNER, "public": True, "description": "seeded for schemathesis",
    }
    manifest.update(extra)
    return call("POST", "/images", manifest)["uuid"]


def publish(name, version, **extra):
    uuid = create(name, version, **extra)
    call("PUT", f"/images/{uuid}/file?compression=none", b"seeded image bytes\n" * 64,
         "application/octet-stream")
    call("PUT", f"/images/{uuid}/icon", PNG, "image/png")
    call("POST", f"/images/{uuid}?action=activate", {})
    return uuid


active = [publish("base", f"1.0.{i}", tags={"role": "seed"}) for i in range(3)]
unactivated = [create("draft", f"0.{i}.0") for i in range(3)]
uploads = [
    call("POST", f"/images/{uuid}/file/uploads?compression=none")["upload_id"]
    for uuid in unactivated
]
images = active + unactivated

config = f"""
# Written by tests/schemathesis/seed.py for one run. Nothing is kept between
# runs: each starts from the same seed and the same fresh server.
[cache]
enabled = false

[dictionaries.images]
values = {json.dumps(images)}

[dictionaries.uploads]
values = {json.dumps(uploads)}

[parameters]
"path.uuid" = {{ dictionary = "images", probability = 0.9 }}
"path.upload" = {{ dictionary = "uploads", probability = 0.9 }}
"query.owner" = {{ dictionary = "owners", probability = 0.5 }}
"query.account" = {{ dictionary = "owners", probability = 0.5 }}
"query.marker" = {{ dictionary = "images", probability = 0.5 }}
"path.arg" = {{ dictionary = "images", probability = 0.7 }}

[dictionaries.owners]
values = ["{OWNER}"]
"""
with open(OUT, "w") as f:
    f.write(config)
print(f"seeded {len(active)} active and {len(unactivated)} unactivated images, {len(uploads)} upload sessions")
