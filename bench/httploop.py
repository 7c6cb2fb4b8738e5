#!/usr/bin/env python3
"""GET one URL repeatedly over keep-alive connections; print JSON stats.

Used for ListImages when wrk is missing, and for the single-client latency
figure (-c 1).  Standard library only; loopback URLs only.
"""

import argparse
import json
import sys
import threading
import time
from urllib.parse import urlsplit

from minihttp import Conn, HttpError


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url")
    ap.add_argument("-c", "--clients", type=int, default=1)
    ap.add_argument("-d", "--duration", type=float, default=5.0, help="seconds")
    ap.add_argument("--warmup", type=int, default=3, help="requests per client before timing")
    args = ap.parse_args()

    u = urlsplit(args.url)
    if u.scheme != "http" or u.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("httploop.py: only http:// loopback URLs")
    path = u.path + ("?" + u.query if u.query else "")

    lats, errors, nbytes = [], [], [0]
    lock = threading.Lock()
    barrier = threading.Barrier(args.clients + 1)
    stop_at = [0.0]

    def worker():
        c = Conn(u.hostname, u.port or 80)
        mine, err, got = [], [], 0
        try:
            for _ in range(args.warmup):
                c.request("GET", path)
        except (OSError, HttpError) as e:
            err.append(f"warm-up: {e}")
        barrier.wait()
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            try:
                st, data = c.request("GET", path)
            except (OSError, HttpError) as e:
                c.close()
                err.append(str(e))
                continue
            mine.append(time.perf_counter() - t0)
            got += len(data)
            if st != 200:
                err.append(f"status {st}")
        c.close()
        with lock:
            lats.extend(mine)
            errors.extend(err)
            nbytes[0] += got

    threads = [threading.Thread(target=worker) for _ in range(args.clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + args.duration + 3600  # provisional
    barrier.wait()
    start = time.perf_counter()
    stop_at[0] = start + args.duration
    for t in threads:
        t.join()
    wall = time.perf_counter() - start

    lats.sort()

    def pct(p):
        return round(lats[min(len(lats) - 1, int(p / 100 * len(lats)))] * 1000, 3) if lats else None

    print(json.dumps({
        "requests": len(lats),
        "errors": len(errors),
        "first_errors": errors[:3],
        "rps": round(len(lats) / wall, 1),
        "mb_per_s": round(nbytes[0] / wall / 1e6, 1),
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
    }))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
