"""The scale curve of scripts/bench.sh as a Markdown table: per N, the median of the
runs with min-max, from one or more results.jsonl files.

    python3 bench/curve_table.py a.jsonl [b.jsonl ...]
"""

import json
import statistics
import sys


def load(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows


def gitops(key):
    return lambda r: (r.get("gitops") or {}).get(key)


def per_1000(r):
    v = r.get("op_peak_rss_mib")
    return None if v is None else v / (r["n"] / 1000)


COLUMNS = [
    ("cold start s", lambda r: r.get("cold_start_secs"), "{:.1f}"),
    ("time to Juju s, cold start", lambda r: r.get("time_to_juju_secs"), "{:.1f}"),
    ("GitOps: time to Juju s", gitops("time_to_juju_secs"), "{:.1f}"),
    ("GitOps: time to Ready s", gitops("time_to_ready_secs"), "{:.1f}"),
    ("GitOps: the apply alone s", gitops("apply_alone_secs"), "{:.1f}"),
    ("Juju calls per secret", lambda r: r.get("converge_calls_per_secret"), "{:.3f}"),
    ("GitOps: Juju calls per secret", gitops("converge_calls_per_secret"), "{:.3f}"),
    ("peak RSS MiB", lambda r: r.get("op_peak_rss_mib"), "{:.1f}"),
    ("peak RSS MiB per 1,000 objects", per_1000, "{:.1f}"),
    ("operator CPU s, cold start", lambda r: r.get("cpu_converge_secs"), "{:.1f}"),
    ("apiserver CPU s, cold start", lambda r: r.get("converge_apiserver_cpu_secs"), "{:.1f}"),
]


def cell(vals, fmt):
    if not vals:
        return "-"
    med = fmt.format(statistics.median(vals))
    if len(vals) == 1:
        return med
    return f"{med} ({fmt.format(min(vals))}–{fmt.format(max(vals))})"


def main():
    rows = load(sys.argv[1:])
    keys = sorted({(r["n"], r["m"]) for r in rows})
    print("| N | models | runs (failed) | " + " | ".join(c[0] for c in COLUMNS) + " |")
    print("|---|---|---|" + "---|" * len(COLUMNS))
    for n, m in keys:
        runs = [r for r in rows if (r["n"], r["m"]) == (n, m)]
        good = [r for r in runs if not r.get("failed")]
        cells = []
        for _, get, fmt in COLUMNS:
            vals = [v for v in (get(r) for r in good) if isinstance(v, (int, float))]
            cells.append(cell(vals, fmt))
        print(f"| {n:,} | {m} | {len(good)} ({len(runs) - len(good)}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
