#!/usr/bin/env python3
"""Render the key=value results written by the bench/ parts as markdown.

Usage: report.py RESULTS_FILE   (standard library only)
"""

import sys

# The original IMGAPI's figures as given in the issue, for context only.
ORIGINAL = {
    "create": "3.1 s",
    "list": "29x slower than nginx",
    "upload": "0.58x dd",
    "download": "0.27x nginx",
    "rss": "168 MiB",
}


def load(path):
    r = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                r[k] = v
    return r


def num(r, k):
    try:
        return float(r[k])
    except (KeyError, ValueError):
        return None


def fmt(x, nd=1):
    if x is None:
        return "n/a"
    return f"{x:.{nd}f}"


def verdict(ok):
    if ok is None:
        return "n/a"
    return "yes" if ok else "**no**"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    r = load(sys.argv[1])
    rows = []

    # machine
    print("### Machine (this run)\n")
    for k, label in (("machine_cpu", "CPU"), ("machine_nproc", "nproc"), ("machine_mem", "memory"),
                     ("machine_kernel", "kernel"), ("machine_fs", "data dir filesystem"),
                     ("machine_idle_before_pct", "CPU idle % in the second before the run"),
                     ("machine_loadavg_before", "load average before"),
                     ("machine_loadavg_after", "load average after"),
                     ("machine_when", "date"), ("server_build", "server build")):
        if k in r:
            print(f"- {label}: {r[k]}")
    print()

    # 1. create
    if "create_wall_s" in r:  # the part ran
        wall, floor = num(r, "create_wall_s"), num(r, "create_floor_wall_s")
        n, c = r.get("create_images", "?"), r.get("create_clients", "?")
        errs = int(num(r, "create_errors") or 0)
        limit = []
        if floor is not None:
            limit.append(f"{fmt(floor, 2)} s (same client vs nginx `return 200`)")
        if "fsync_per_s" in r:
            limit.append(f"disk: {r['fsync_per_s']} fdatasync/s")
        rows.append((
            f"Create {n} active images, {c} clients (create + upload + activate)",
            f"{fmt(wall, 2)} s ({r.get('create_images_per_s', '?')} images/s, p50 {r.get('create_p50_ms', '?')} ms, "
            f"p99 {r.get('create_p99_ms', '?')} ms" + (f", **{errs} errors**" if errs else "") + ")",
            "; ".join(limit) or "n/a",
            f"{fmt(wall / floor, 1)}x the floor" if wall and floor else "n/a",
            "≤ 1 s",
            verdict(None if wall is None else (wall <= 1.0 and errs == 0)),
            ORIGINAL["create"],
        ))

    # 2. list
    if "list_server_rps" in r:  # the part ran
        srps, nrps = num(r, "list_server_rps"), num(r, "list_nginx_rps")
        slow = nrps / srps if srps and nrps else None
        lerr = int((num(r, "list_server_errors") or 0))
        rows.append((
            f"ListImages({r.get('list_images', '?')}), {r.get('list_bytes', '?')} B, {r.get('list_tool', '?')}",
            f"{fmt(srps, 0)} req/s (p50 {r.get('list_server_p50_ms', '?')} ms, p99 {r.get('list_server_p99_ms', '?')} ms)"
            + (f", **{lerr} errors**" if lerr else ""),
            f"nginx, same bytes: {fmt(nrps, 0)} req/s (p50 {r.get('list_nginx_p50_ms', '?')} ms)",
            f"{fmt(slow, 1)}x slower" if slow else "n/a",
            "≤ 6x",
            verdict(None if slow is None else (slow <= 6 and lerr == 0)),
            ORIGINAL["list"],
        ))
        ss, ns = num(r, "list_server_seq_p50_ms"), num(r, "list_nginx_seq_p50_ms")
        if ss and ns:
            rows.append((
                "ListImages, one client, one request at a time (median latency)",
                f"{fmt(ss, 2)} ms", f"nginx: {fmt(ns, 2)} ms", f"{fmt(ss / ns, 1)}x slower",
                "(context)", "", "",
            ))

    # 3. upload
    if "upload_server_mbs" in r:  # the part ran
        up, dd = num(r, "upload_server_mbs"), num(r, "upload_dd_mbs")
        mib = int(num(r, "upload_bytes") or 0) // 1048576
        rows.append((
            f"Durable upload of {mib} MiB (PUT …/file, median of [{r.get('upload_server_runs_mbs', '')}] MB/s)",
            f"{fmt(up)} MB/s",
            f"`dd bs=1M conv=fdatasync`: {fmt(dd)} MB/s (runs [{r.get('upload_dd_runs_mbs', '')}])",
            f"{fmt(up / dd, 2)}x dd" if up and dd else "n/a",
            "≥ 0.6x",
            verdict(None if not (up and dd) else up / dd >= 0.6),
            ORIGINAL["upload"],
        ))

    # 4. download
    if "download_server_mbs" in r:  # the part ran
        dn, ng = num(r, "download_server_mbs"), num(r, "download_nginx_mbs")
        rows.append((
            f"Download of {mib} MiB (GET …/file, median of [{r.get('download_server_runs_mbs', '')}] MB/s)",
            f"{fmt(dn)} MB/s",
            f"nginx, same bytes: {fmt(ng)} MB/s (runs [{r.get('download_nginx_runs_mbs', '')}])",
            f"{fmt(dn / ng, 2)}x nginx" if dn and ng else "n/a",
            "≥ 0.5x",
            verdict(None if not (dn and ng) else dn / ng >= 0.5),
            ORIGINAL["download"],
        ))

    # 5. rss
    hwm = num(r, "rss_hwm_kib")
    steps = ", ".join(f"{k[len('rss_after_'):-len('_kib')]} {int(float(v)) // 1024}"
                      for k, v in r.items() if k.startswith("rss_after_") and k.endswith("_kib"))
    ngx = num(r, "nginx_hwm_kib")
    rows.append((
        "Peak server RSS over all parts (VmHWM)" + (f"; after each part, MiB: {steps}" if steps else ""),
        f"{fmt(hwm / 1024 if hwm else None)} MiB",
        f"nginx master + workers VmHWM: {fmt(ngx / 1024 if ngx else None)} MiB" if ngx else "n/a",
        f"{fmt(hwm / ngx, 1)}x nginx" if hwm and ngx else "n/a",
        "≤ 64 MiB",
        verdict(None if hwm is None else hwm / 1024 <= 64),
        ORIGINAL["rss"],
    ))

    # 6. docker import
    di, sk = num(r, "docker_import_mbs"), num(r, "docker_skopeo_mbs")
    if di is not None or sk is not None:
        dmib = int(num(r, "docker_layer_bytes") or 0) / 1048576
        dhwm = num(r, "docker_rss_hwm_kib")
        rows.append((
            f"Docker import of one {dmib:.0f} MiB gzip layer (tar of real files, {r.get('docker_layer_ratio', '?')}:1) "
            f"from a local docker-registry (median of [{r.get('docker_import_runs_mbs', '')}] MB/s)"
            + (f"; peak RSS after it {fmt(dhwm / 1024)} MiB" if dhwm else ""),
            f"{fmt(di)} MB/s",
            f"`skopeo copy docker://… dir:`: {fmt(sk)} MB/s (runs [{r.get('docker_skopeo_runs_mbs', '')}])"
            + (f"; CPU per run: imgapi {r['docker_import_cpu_s']} s, skopeo {r.get('docker_skopeo_cpu_s', '?')} s, "
               f"registry {r.get('docker_registry_cpu_import_s', '?')} / {r.get('docker_registry_cpu_skopeo_s', '?')} s"
               if "docker_import_cpu_s" in r else ""),
            f"{fmt(di / sk, 2)}x skopeo" if di and sk else "n/a",
            "≥ 0.8x",
            verdict(None if not (di and sk) else di / sk >= 0.8),
            "n/a",
        ))

    print("| Measure | imgapi (this run) | Machine limit (same run) | Ratio | Target | Met | Original IMGAPI (issue) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(x).replace("|", "\\|") for x in row) + " |")
    print("\nMB/s = 10^6 bytes per second. Ratios are imgapi / limit for throughput, "
          "limit / imgapi (\"x slower\") for ListImages.")


if __name__ == "__main__":
    main()
