#!/usr/bin/env python3
"""Deep ListImages pages (bench/scale.sh): pages reached with `marker=` and
a walk through the whole registry, over one keep-alive connection.

usage: scale_pages.py HOST PORT PATH COUNT
PATH is a ListImages request with `limit=` (e.g. `/images?limit=1000`).

1. Walk: follow markers from the first page to the last, as `imgapi
   mirror` and `imgadm avail` do. A marker is inclusive (the original's
   quirk: the page starts with the marker image itself), so each next page
   repeats one image, which the walk skips. Prints the pages, images and
   seconds, and the slowest page.
2. Markers at the first, middle and last page of the walk: COUNT uncached
   requests each (a fresh ignored `_n=` parameter defeats the ListImages
   cache), next to COUNT uncached requests of the first page without a
   marker. Prints median and p90 per position, and each median's ratio to
   the first page's.
Prints key=value lines.
"""
import http.client
import json
import os
import statistics
import sys
import time

host, port, path, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
run = os.urandom(4).hex()
conn = http.client.HTTPConnection(host, port, timeout=120)


def get(p):
    conn.request("GET", p, headers={"Accept": "application/json"})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        sys.exit(f"GET {p}: HTTP {r.status}: {body[:300]!r}")
    return json.loads(body)


def timed(p):
    t0 = time.perf_counter()
    items = get(p)
    return (time.perf_counter() - t0) * 1000, items


# 1. The walk.
markers = []  # the marker of each page after the first
seen = 0
slowest = 0.0
t0 = time.perf_counter()
ms, page = timed(f"{path}&_n={run}-walk")
slowest = max(slowest, ms)
seen += len(page)
while page:
    marker = page[-1]["uuid"]
    ms, page = timed(f"{path}&marker={marker}&_n={run}-walk")
    slowest = max(slowest, ms)
    if not page or page[0]["uuid"] != marker:
        sys.exit(f"the page after marker {marker} does not start with it")
    page = page[1:]
    if not page:
        break
    markers.append(marker)
    seen += len(page)
walk_s = time.perf_counter() - t0
print(f"walk_pages={len(markers) + 1}")
print(f"walk_images={seen}")
print(f"walk_s={walk_s:.2f}")
print(f"walk_slowest_page_ms={slowest:.2f}")
if not markers:
    sys.exit("the walk found one page only: nothing deep to measure")

# 2. Pages by position.
positions = [
    ("first_page", None),
    ("marker_first", markers[0]),
    ("marker_middle", markers[len(markers) // 2]),
    ("marker_last", markers[-1]),
]
medians = {}
for name, marker in positions:
    base = path if marker is None else f"{path}&marker={marker}"
    get(f"{base}&_n={run}-{name}-warm")
    times = sorted(timed(f"{base}&_n={run}-{name}-{i}")[0] for i in range(count))
    medians[name] = statistics.median(times)
    print(f"{name}_median_ms={medians[name]:.2f}")
    print(f"{name}_p90_ms={times[min(len(times) - 1, int(len(times) * 0.9))]:.2f}")
for name, _ in positions[1:]:
    print(f"{name}_vs_first_page={medians[name] / medians['first_page']:.2f}")
