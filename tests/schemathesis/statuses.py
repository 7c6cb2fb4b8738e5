"""What the fuzzer's requests got, per operation: from the server's audit
log (one JSON line per request), the count of answers by status class.

usage: statuses.py SERVER_LOG
"""
import collections
import json
import re
import sys

UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
by_route = collections.defaultdict(collections.Counter)
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    try:
        fields = json.loads(line)["fields"]
    except (ValueError, KeyError):
        continue
    if fields.get("message") != "request":
        continue
    path = fields["url"].split("?", 1)[0]
    route = UUID.sub("{uuid}", path)
    if len(route) > 48:
        route = route[:45] + "..."
    by_route[f'{fields["method"]} {route}'][f'{fields["status"] // 100}xx'] += 1

total = collections.Counter()
for counts in by_route.values():
    total.update(counts)
print(f"{'operation':<58} {'2xx':>6} {'3xx':>5} {'4xx':>6} {'5xx':>5}")
for route, counts in sorted(by_route.items(), key=lambda kv: -sum(kv[1].values()))[:40]:
    print(f"{route:<58} {counts['2xx']:>6} {counts['3xx']:>5} {counts['4xx']:>6} {counts['5xx']:>5}")
print(f"{'all requests':<58} {total['2xx']:>6} {total['3xx']:>5} {total['4xx']:>6} {total['5xx']:>5}")
