#!/usr/bin/env python3
"""Parse `wrk --latency` output on stdin into one JSON object (stdlib only)."""

import json
import re
import sys

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    return round(float(m.group(1)) * UNITS[m.group(2)], 3) if m else None


SIZES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def size_bytes(text):
    """wrk prints sizes with binary multiples ("771.53GB" = 771.53 GiB)."""
    m = re.fullmatch(r"([0-9.]+)([KMGT]?B)", text)
    return int(float(m.group(1)) * SIZES[m.group(2)]) if m else None


def main():
    out = {"rps": None, "requests": None, "non2xx": 0, "socket_errors": 0}
    for line in sys.stdin:
        f = line.split()
        if not f:
            continue
        if f[0] == "Requests/sec:":
            out["rps"] = float(f[1])
        elif f[0] in ("50%", "90%", "99%") and len(f) == 2:
            out["p" + f[0][:-1] + "_ms"] = ms(f[1])
        elif f[0] == "Latency" and len(f) >= 2 and "avg_ms" not in out:
            out["avg_ms"] = ms(f[1])
        elif len(f) > 3 and f[1] == "requests" and f[2] == "in":
            # "12345 requests in 10.00s, 771.53GB read"
            out["requests"] = int(f[0])
            out["duration_s"] = ms(f[3].rstrip(",")) / 1000.0
            if len(f) >= 6 and f[5] == "read":
                out["read_bytes"] = size_bytes(f[4])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            out["non2xx"] = int(f[-1])
        elif f[0] == "Socket" and f[1] == "errors:":
            out["socket_errors"] = sum(int(x.strip(",")) for x in f[3::2])
    if out["rps"] is None:
        sys.exit("wrkparse.py: no 'Requests/sec:' line in wrk output")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
