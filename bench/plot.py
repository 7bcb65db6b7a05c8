"""The scale curve of scripts/bench.sh as a PNG: per N, the median of the runs with
min-max bars, for cold start and time to Juju, Juju calls per secret, peak RSS and
operator CPU.

    python bench/plot.py results.jsonl [more.jsonl ...] -o curve.png

Rows are the JSON lines scripts/bench.sh writes (restart figures at the top level,
GitOps ones under "gitops"); failed runs are left out and counted in the title.
"""

import argparse
import statistics

import matplotlib

from curve_table import load

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def series(rows, get):
    """(n, median, min, max, runs) for every N with at least one value."""
    out = []
    for n in sorted({r["n"] for r in rows}):
        vals = [v for v in (get(r) for r in rows if r["n"] == n and not r.get("failed"))
                if isinstance(v, (int, float))]
        if vals:
            out.append((n, statistics.median(vals), min(vals), max(vals), len(vals)))
    return out


def draw(ax, rows, get, label, fmt):
    pts = series(rows, get)
    if not pts:
        return
    xs = [p[0] for p in pts]
    med = [p[1] for p in pts]
    lo = [p[1] - p[2] for p in pts]
    hi = [p[3] - p[1] for p in pts]
    ax.errorbar(xs, med, yerr=[lo, hi], fmt=fmt, capsize=3, label=label)
    for x, y, *_rest, k in pts:
        ax.annotate(f"{y:.3g} ({k})", (x, y), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results", nargs="+")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    rows = load(a.results)
    failed = sum(1 for r in rows if r.get("failed"))
    models = sorted({(r["n"], r["m"]) for r in rows})

    def gitops(key):
        return lambda r: (r.get("gitops") or {}).get(key)

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    ax = axes[0][0]
    draw(ax, rows, lambda r: r.get("cold_start_secs"), "cold start (objects exist, operator starts)", "o-")
    draw(ax, rows, lambda r: r.get("time_to_juju_secs"), "time to Juju, cold start", "s--")
    draw(ax, rows, gitops("time_to_juju_secs"), "time to Juju, GitOps apply", "^-")
    draw(ax, rows, gitops("time_to_ready_secs"), "time to Ready, GitOps apply", "v--")
    ax.set_ylabel("seconds")
    ax.set_title("time")
    ax = axes[0][1]
    draw(ax, rows, lambda r: r.get("converge_calls_per_secret"), "cold start", "o-")
    draw(ax, rows, gitops("converge_calls_per_secret"), "GitOps apply", "^-")
    ax.set_ylabel("Juju calls per secret")
    ax.set_title("Juju calls per secret")
    ax = axes[1][0]
    draw(ax, rows, lambda r: r.get("op_peak_rss_mib"), "peak RSS, cold start", "o-")
    draw(ax, rows, gitops("op_peak_rss_mib"), "peak RSS, GitOps apply", "^-")
    ax.set_ylabel("MiB")
    ax.set_title("operator memory")
    ax = axes[1][1]
    draw(ax, rows, lambda r: r.get("cpu_converge_secs"), "operator CPU, cold start", "o-")
    draw(ax, rows, gitops("op_cpu_secs"), "operator CPU, GitOps apply", "^-")
    ax.set_ylabel("CPU seconds")
    ax.set_title("operator CPU")
    # An N whose every run failed (did not converge) is marked where it would stand.
    stopped = sorted({r["n"] for r in rows} - {r["n"] for r in rows if not r.get("failed")})
    for ax in (a for row in axes for a in row):
        for n in stopped:
            ax.axvline(n, linestyle=":", color="grey")
            ax.annotate(f"N={n:,}: did not converge", (n, 0.5), xycoords=("data", "axes fraction"),
                        rotation=90, fontsize=7, color="grey", ha="right", va="center")
        ax.set_xscale("log")
        ax.set_xlabel("JujuSecrets (N)")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(
        "juju-secrets-operator scale curve: median of runs (count in brackets), bars min-max; "
        f"N:models {', '.join(f'{n}:{m}' for n, m in models)}"
        + (f"; {failed} failed run(s) left out" if failed else ""),
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(a.out)


if __name__ == "__main__":
    main()
