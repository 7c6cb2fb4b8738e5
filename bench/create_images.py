#!/usr/bin/env python3
"""Part 1: create N active images with C concurrent clients (UC1 publish flow).

Each image: POST /images (JSON) -> PUT /images/<uuid>/file?compression=none
(tiny body) -> POST /images/<uuid>?action=activate.  Every client keeps one
keep-alive connection.  The client is a minimal HTTP/1.1 implementation on raw
sockets (http.client's header parsing costs more CPU than the server under
test on a 2-core machine), so the same script run against an nginx
`return 200` endpoint gives the floor this client and machine can reach.

Prints one JSON object with the results on stdout.  Standard library only.
"""

import argparse
import json
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from minihttp import Conn, HttpError


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("-n", "--images", type=int, default=1000)
    ap.add_argument("-c", "--clients", type=int, default=16)
    ap.add_argument("--owner", default="00000000-0000-0000-0000-0000000000aa")
    ap.add_argument("--file-bytes", type=int, default=64, help="size of each tiny image file")
    ap.add_argument("--name", default="bench")
    args = ap.parse_args()

    u = urlsplit(args.url)
    if u.scheme != "http" or not u.hostname:
        sys.exit("create_images.py: --url must be http://HOST:PORT")
    host, port = u.hostname, u.port or 80
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("create_images.py: refusing a non-loopback host")

    file_body = (b"imgapi-bench-" * (args.file_bytes // 13 + 1))[: args.file_bytes]
    local = threading.local()
    conns = []
    conns_lock = threading.Lock()
    errors = []
    errors_lock = threading.Lock()

    def conn():
        c = getattr(local, "conn", None)
        if c is None:
            c = local.conn = Conn(host, port)
            with conns_lock:
                conns.append(c)
        return c

    def one(i):
        c = conn()
        t0 = time.perf_counter()
        try:
            body = json.dumps({
                "name": args.name, "version": f"1.0.{i}", "type": "other", "os": "other",
                "owner": args.owner, "public": True,
            }).encode()
            st, data = c.request("POST", "/images", body, "application/json")
            if st != 200:
                raise HttpError(f"CreateImage -> {st}: {data[:200]!r}")
            uuid = json.loads(data)["uuid"]
            st, data = c.request("PUT", f"/images/{uuid}/file?compression=none",
                                 file_body, "application/octet-stream")
            if st != 200:
                raise HttpError(f"AddImageFile -> {st}: {data[:200]!r}")
            st, data = c.request("POST", f"/images/{uuid}?action=activate")
            if st != 200:
                raise HttpError(f"ActivateImage -> {st}: {data[:200]!r}")
        except (OSError, HttpError, ValueError, KeyError) as e:
            c.close()
            with errors_lock:
                errors.append(f"image {i}: {e}")
            return None
        return time.perf_counter() - t0

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        lat = list(pool.map(one, range(args.images)))
    wall = time.perf_counter() - start
    for c in conns:
        c.close()

    ok = sorted(x for x in lat if x is not None)

    def pct(p):
        if not ok:
            return None
        return round(ok[min(len(ok) - 1, int(p / 100 * len(ok)))] * 1000, 2)

    out = {
        "images": args.images,
        "clients": args.clients,
        "ok": len(ok),
        "errors": len(errors),
        "first_errors": errors[:5],
        "wall_s": round(wall, 3),
        "images_per_s": round(len(ok) / wall, 1) if wall > 0 else None,
        "requests_per_s": round(3 * len(ok) / wall, 1) if wall > 0 else None,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": round(ok[-1] * 1000, 2) if ok else None,
        "mean_ms": round(statistics.mean(ok) * 1000, 2) if ok else None,
    }
    print(json.dumps(out))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
