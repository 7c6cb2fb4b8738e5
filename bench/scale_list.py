#!/usr/bin/env python3
"""Time ListImages requests over one keep-alive connection (bench/scale.sh).

usage: scale_list.py HOST PORT PATH COUNT MODE
MODE uncached: append `&_n=<run>-<i>` to PATH on every request. The server
ignores the unknown parameter, but the ListImages cache key is the full
request URL, so every request misses the cache. MODE cached: one warm-up
request, then COUNT identical requests (served from the cache).
Prints key=value lines: n, median_ms, p90_ms, p99_ms, min_ms, max_ms, bytes, items.
"""
import http.client
import json
import os
import statistics
import sys
import time

host, port, path, count, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
sep = "&" if "?" in path else "?"
run = os.urandom(4).hex()
conn = http.client.HTTPConnection(host, port, timeout=60)


def get(p):
    conn.request("GET", p, headers={"Accept": "application/json"})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        sys.exit(f"GET {p}: HTTP {r.status}: {body[:300]!r}")
    return body


first = get(path if mode == "cached" else f"{path}{sep}_n={run}-warm")
items = len(json.loads(first))
times = []
for i in range(count):
    p = path if mode == "cached" else f"{path}{sep}_n={run}-{i}"
    t0 = time.perf_counter()
    body = get(p)
    times.append((time.perf_counter() - t0) * 1000)
times.sort()
print(f"n={count}")
print(f"median_ms={statistics.median(times):.2f}")
print(f"p90_ms={times[min(len(times) - 1, int(len(times) * 0.9))]:.2f}")
print(f"p99_ms={times[min(len(times) - 1, int(len(times) * 0.99))]:.2f}")
print(f"min_ms={times[0]:.2f}")
print(f"max_ms={times[-1]:.2f}")
print(f"bytes={len(body)}")
print(f"items={items}")
