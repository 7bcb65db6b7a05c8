#!/usr/bin/env bash
# The scale benchmark (issue 5): for each N:M pair, RUNS times, two measurements, each on
# a fresh real kube-apiserver + etcd (scripts/kube-apiserver.sh) and a fresh Juju emulator
# (release) seeded with M models admin/bench-0..M-1:
#   restart: N JujuSecrets (half `data`, half `secretRef`) exist, then the operator
#            (release) starts: cold start, Juju calls, steady state over one refresh
#            interval, change latency, RSS/CPU, the apiserver's write rate alone, the
#            emulator's bulk ceiling and the python-libjuju peer;
#   gitops:  the operator runs and is ready, then the N JujuSecrets are applied at once
#            with `kubectl apply --server-side` from one file (APPLIER=kubectl, one
#            object at a time) or with server-side apply requests APPLY_IN_FLIGHT at a
#            time (APPLIER=parallel): time to Juju (the last content stored in the
#            emulator) and time to Ready, both from the apply's start.
# Prints a table per run and, per pair, the median with min and max of every headline
# figure (a target is met only by the median); raw results, one JSON line per run (the
# gitops measurement under "gitops"), in $OUT/results.jsonl.
#
#   scripts/bench.sh                 # 100:10 1000:10
#   scripts/bench.sh 100:10 10000:50 # N:M pairs
#
# Env: RUNS (runs per pair, default 3), REFRESH (s, default 60), EDITS (default 50),
#      PEER=0 to skip the python peer, GITOPS=0 to skip the gitops measurement,
#      RESTART=0 to skip the restart one, APPLIER (kubectl or parallel, default
#      kubectl), APPLY_IN_FLIGHT (default 32), APPLY_ALONE=0 to skip timing the same
#      apply with no operator running (in a namespace it does not watch), PLOT=0 to skip the curve's PNG (made
#      when more than one N was measured; matplotlib in a venv of its own),
#      KEEP_ETCD=1 to keep each run's etcd data (removed after the run by default),
#      WRITE_PROBE (apiserver writes of the write-rate probe, default 2000; 0: skip),
#      ETCD_QUOTA_BYTES (etcd's space quota, see scripts/kube-apiserver.sh),
#      RUN_TIMEOUT (s per measurement, default 900), OUT (default
#      target/bench/<timestamp>), OPERATOR_ARGS (extra `run` flags, e.g.
#      "--max-concurrent-reconciles=256"), OPERATOR_BIN (another operator binary or a
#      wrapper, e.g. one that runs it under heaptrack; default the release build).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
pairs=("$@")
[ ${#pairs[@]} -gt 0 ] || pairs=(100:10 1000:10)
out=${OUT:-$repo/target/bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
results=$out/results.jsonl
: > "$results"

echo "== cargo build --release --workspace --bins" >&2
cargo build --release --workspace --bins >&2
bash scripts/kube-apiserver.sh build >&2

kubectl_bin() {
  if command -v kubectl >/dev/null; then command -v kubectl; return; fi
  local c=${XDG_CACHE_HOME:-$HOME/.cache}/juju-secrets-operator/kubectl/usr/bin/kubectl
  [ -x "$c" ] || { echo "no kubectl: run scripts/dev-env.sh once" >&2; exit 1; }
  echo "$c"
}
KUBECTL=$(kubectl_bin)

python=
if [ "${PEER:-1}" != 0 ]; then
  python=$(ls -d "$HOME"/.cache/juju-secrets-operator/venv-*/bin/python 2>/dev/null | head -1 || true)
  [ -n "$python" ] || echo "no python-libjuju venv (run scripts/test.sh once); peer skipped" >&2
fi

kube_dir=
cleanup() { [ -z "$kube_dir" ] || bash scripts/kube-apiserver.sh stop "$kube_dir" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# One measurement (restart or gitops) on a fresh apiserver; its JSON in $dir.json.
measure() {
  local mode=$1 dir=$2 n=$3 m=$4
  rm -rf "$dir"; mkdir -p "$dir"
  kube_dir=$dir/kube
  bash scripts/kube-apiserver.sh start "$kube_dir" > "$dir/kube-start.log" 2>&1
  "$KUBECTL" --kubeconfig "$kube_dir/kubeconfig" apply --validate=false -f crds/ >/dev/null
  "$KUBECTL" --kubeconfig "$kube_dir/kubeconfig" wait --for condition=established --timeout=60s -f crds/ >/dev/null
  local rc=0
  timeout -k 10 "${RUN_TIMEOUT:-900}" target/release/jso-bench \
      --mode "$mode" \
      --kubeconfig "$kube_dir/kubeconfig" \
      --operator-bin "${OPERATOR_BIN:-target/release/juju-secrets-operator}" \
      --emulator-bin target/release/juju-emulator \
      --kubectl "$KUBECTL" \
      --applier "${APPLIER:-kubectl}" --apply-in-flight "${APPLY_IN_FLIGHT:-32}" \
      --apply-alone "$([ "${APPLY_ALONE:-1}" = 0 ] && echo false || echo true)" \
      --work-dir "$dir" --n "$n" --m "$m" \
      --refresh-secs "${REFRESH:-60}" --edits "${EDITS:-50}" \
      --converge-timeout "${CONVERGE_TIMEOUT:-600}" \
      --write-probe "${WRITE_PROBE:-2000}" \
      --python "$python" --peer-script bench/libjuju_peer.py \
      $(for a in ${OPERATOR_ARGS:-}; do printf -- '--operator-arg=%s ' "$a"; done) \
      > "$dir.json" || rc=$?
  bash scripts/kube-apiserver.sh stop "$kube_dir" >/dev/null 2>&1 || true
  # etcd's data is up to 8 GB for a run over 100,000 objects: gone once the run is over
  # unless KEEP_ETCD=1 (logs and results stay).
  [ "${KEEP_ETCD:-0}" = 1 ] || rm -rf "$kube_dir/etcd-data"
  kube_dir=
  return $rc
}

runs=${RUNS:-3}
for pair in "${pairs[@]}"; do
  n=${pair%%:*}; m=${pair##*:}
  for r in $(seq 1 "$runs"); do
    run=$out/n$n-m$m/run$r
    rm -rf "$run"; mkdir -p "$run"
    echo "== N=$n M=$m run $r/$runs: restart (kube-apiserver in $run/restart/kube)" >&2
    ok=1
    if [ "${RESTART:-1}" != 0 ]; then
      measure restart "$run/restart" "$n" "$m" || { ok=0; echo "== N=$n M=$m run $r restart failed (see $run/restart)" >&2; }
    else
      echo '{"skipped": true}' > "$run/restart.json"
    fi
    gitops=
    if [ "${GITOPS:-1}" != 0 ]; then
      echo "== N=$n M=$m run $r/$runs: gitops (kube-apiserver in $run/gitops/kube)" >&2
      if measure gitops "$run/gitops" "$n" "$m"; then gitops=$run/gitops.json
      else echo "== N=$n M=$m run $r gitops failed (see $run/gitops)" >&2; fi
    fi
    # One line per run: the restart figures at the top level, the gitops ones under
    # "gitops" ({"failed": true} when it failed, absent when skipped).
    python3 - "$n" "$m" "$r" "$ok" "$run/restart.json" "${GITOPS:-1}" "$gitops" >> "$results" <<'PY'
import json, sys
n, m, r, ok, restart, want_gitops, gitops = sys.argv[1:8]
def last_line(path):
    try:
        return json.loads(open(path).read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None
row = (last_line(restart) if ok == "1" else None) or {"failed": True}
row.setdefault("n", int(n))
row.setdefault("m", int(m))
row["run"] = int(r)
if want_gitops != "0":
    row["gitops"] = (last_line(gitops) if gitops else None) or {"failed": True}
print(json.dumps(row))
PY
  done
done

python3 - "$results" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]

def f(v, fmt="{:.2f}"):
    return "-" if v is None else (fmt.format(v) if isinstance(v, (int, float)) else str(v))

def g(r):
    """The run's gitops measurement (empty when skipped or failed)."""
    x = r.get("gitops") or {}
    return {} if x.get("failed") else x

def steady_reads(r):
    sc = r.get("steady_calls")
    if sc is None:
        return None
    return sum(v for k, v in sc.items() if k != "Secrets.ListSecrets") - (r.get("steady_juju_writes") or 0)

def headline(n, m):
    return n == 10000 and m == 50

# Every ratio is operator ÷ other: lower is better.
# (label, value of a run, format, target: None or (text, applies(n, m), met(median)))
FIGURES = [
    ("cold start s (objects exist, then the operator starts)", lambda r: r.get("cold_start_secs"), "{:.1f}",
     ("≤ 60 s at 10,000/50", headline, lambda v: v <= 60)),
    ("time to Juju s (from the operator's start: the last content stored)", lambda r: r.get("time_to_juju_secs"), "{:.1f}", None),
    ("GitOps cold start s (operator ready, one server-side apply of N)", lambda r: g(r).get("cold_start_secs"), "{:.1f}",
     ("≤ 60 s at 10,000/50 (the cold-start bound, for comparison)", headline, lambda v: v <= 60)),
    ("  of which the apply s", lambda r: g(r).get("apply_secs"), "{:.1f}", None),
    ("GitOps: time to Juju s (apply's start to the last content stored)", lambda r: g(r).get("time_to_juju_secs"), "{:.1f}",
     ("≤ 10 s at 10,000/50", headline, lambda v: v <= 10)),
    ("GitOps: time to Ready s (apply's start to the last object Ready)", lambda r: g(r).get("time_to_ready_secs"), "{:.1f}",
     ("≤ 45 s at 10,000/50", headline, lambda v: v <= 45)),
    ("GitOps: the last object in the apiserver s (apply's start to its arrival)", lambda r: g(r).get("in_apiserver_secs"), "{:.1f}", None),
    ("GitOps: the same apply alone, no operator running s", lambda r: g(r).get("apply_alone_secs"), "{:.1f}", None),
    ("GitOps: an object's arrival to its content in Juju, p50 s", lambda r: g(r).get("juju_lag_p50_secs"), "{:.2f}", None),
    ("GitOps: an object's arrival to its content in Juju, p99 s", lambda r: g(r).get("juju_lag_p99_secs"), "{:.2f}", None),
    ("GitOps: an object's arrival to Ready, p99 s", lambda r: g(r).get("ready_lag_p99_secs"), "{:.2f}", None),
    ("GitOps: an object's arrival to its finalizer, p50 s", lambda r: g(r).get("finalizer_lag_p50_secs"), "{:.2f}", None),
    ("GitOps: its finalizer to its content in Juju, p50 s", lambda r: g(r).get("finalizer_to_juju_p50_secs"), "{:.2f}", None),
    ("GitOps: its content in Juju to Ready, p50 s", lambda r: g(r).get("juju_to_ready_p50_secs"), "{:.2f}", None),
    ("GitOps: apiserver CPU s (apply's start to the last object Ready)", lambda r: g(r).get("converge_apiserver_cpu_secs"), "{:.1f}", None),
    ("GitOps: etcd CPU s (the same span)", lambda r: g(r).get("converge_etcd_cpu_secs"), "{:.1f}", None),
    ("GitOps: apiserver cores busy (its CPU s ÷ the span's s)", lambda r: None if not g(r).get("converge_wall_secs") else g(r).get("converge_apiserver_cpu_secs", 0) / g(r)["converge_wall_secs"], "{:.2f}", None),
    ("Juju calls, convergence (counted by the emulator)", lambda r: r.get("converge_calls_total"), "{:.0f}", None),
    ("  the same counted by the operator's /metrics (cross-check)", lambda r: r.get("converge_calls_metrics_total"), "{:.0f}", None),
    ("Juju calls per secret", lambda r: r.get("converge_calls_per_secret"), "{:.3f}",
     ("≤ 0.05 at 10,000/50", headline, lambda v: v <= 0.05)),
    ("GitOps: Juju calls per secret", lambda r: g(r).get("converge_calls_per_secret"), "{:.3f}",
     ("≤ 0.05 at 10,000/50", headline, lambda v: v <= 0.05)),
    ("round trips operator ÷ peer (lower is better)", lambda r: r.get("ratio_round_trips_operator_per_peer"), "{:.3f}",
     ("≤ 0.10 (10× fewer)", lambda n, m: True, lambda v: v <= 0.10)),
    ("Juju-side time operator ÷ peer (lower is better)", lambda r: r.get("ratio_juju_side_secs_operator_per_peer"), "{:.2f}", None),
    ("emulator CPU operator ÷ peer (lower is better)", lambda r: r.get("ratio_juju_cpu_operator_per_peer"), "{:.2f}",
     ("≤ 1", lambda n, m: True, lambda v: v <= 1)),
    ("round trips operator ÷ ceiling (lower is better, ≥ 1)", lambda r: r.get("ratio_round_trips_operator_per_ceiling"), "{:.2f}", None),
    ("Juju-side time operator ÷ ceiling (lower is better)", lambda r: r.get("ratio_juju_side_secs_operator_per_ceiling"), "{:.2f}", None),
    ("steady ListSecrets per model per interval", lambda r: r.get("steady_list_per_model"), "{:.2f}",
     ("≤ 1", lambda n, m: True, lambda v: v <= 1)),
    ("steady Juju writes", lambda r: r.get("steady_juju_writes"), "{:.0f}",
     ("0", lambda n, m: True, lambda v: v == 0)),
    ("steady other Juju calls (reads: Ping, ListModels)", steady_reads, "{:.0f}", None),
    ("steady apiserver writes (all the operator's, Lease renewals included)", lambda r: r.get("steady_apiserver_writes"), "{:.0f}", None),
    ("  of which leader-election Lease renewals", lambda r: r.get("steady_lease_writes_total"), "{:.0f}", None),
    ("  besides Lease renewals (JujuSecret, Secret, Event)", lambda r: r.get("steady_apiserver_writes_besides_leases"), "{:.0f}",
     ("0", lambda n, m: True, lambda v: v == 0)),
    ("steady etcd revisions, all sources (apiserver's own included)", lambda r: r.get("steady_etcd_writes_all_sources"), "{:.0f}", None),
    ("change p50 s", lambda r: r.get("latency_p50_secs"), "{:.3f}", None),
    ("change p99 s", lambda r: r.get("latency_p99_secs"), "{:.3f}",
     ("≤ 2 s", lambda n, m: True, lambda v: v <= 2)),
    ("peak RSS MiB", lambda r: r.get("op_peak_rss_mib"), "{:.1f}",
     ("≤ 128 at 10,000", lambda n, m: n == 10000, lambda v: v <= 128)),
    ("peak RSS MiB per 1,000 objects", lambda r: None if r.get("op_peak_rss_mib") is None else r["op_peak_rss_mib"] / (r["n"] / 1000), "{:.1f}", None),
    ("operator CPU s (whole run)", lambda r: r.get("op_cpu_secs"), "{:.2f}", None),
    ("operator CPU s (convergence)", lambda r: r.get("cpu_converge_secs"), "{:.2f}", None),
    ("apiserver CPU s (convergence)", lambda r: r.get("converge_apiserver_cpu_secs"), "{:.1f}", None),
    ("etcd CPU s (convergence)", lambda r: r.get("converge_etcd_cpu_secs"), "{:.1f}", None),
    ("GitOps: peak RSS MiB", lambda r: g(r).get("op_peak_rss_mib"), "{:.1f}", None),
    ("GitOps: operator CPU s", lambda r: g(r).get("op_cpu_secs"), "{:.2f}", None),
    ("apiserver writes per secret (convergence, etcd revisions)", lambda r: r.get("converge_etcd_writes_per_secret"), "{:.2f}", None),
    ("ownership record writes per secret (convergence)", lambda r: r.get("converge_record_writes_per_secret"), "{:.3f}", None),
    ("ownership record size KiB (largest shard)", lambda r: None if r.get("record_largest_shard_bytes") is None else r["record_largest_shard_bytes"] / 1024, "{:.1f}", None),
    ("apiserver writes/s alone (probe)", lambda r: r.get("probe_writes_per_sec"), "{:.0f}", None),
    ("convergence's writes at that rate s", lambda r: r.get("converge_writes_at_probe_rate_secs"), "{:.1f}", None),
]

# ---- one row per run
cols = ["N", "M", "run", "cold start s", "GitOps cold start s", "Ready", "content ok",
        "Juju calls (emulator)", "Juju calls (/metrics)", "calls/secret", "counts agree", "round trips op ÷ peer",
        "steady ListSecrets/model", "steady Juju writes", "steady apiserver writes (Lease)",
        "p50 s", "p99 s", "peak RSS MiB", "CPU s"]
print("Per run (every ratio is operator ÷ other: lower is better):")
print()
print("| " + " | ".join(cols) + " |")
print("|" + "---|" * len(cols))
for r in rows:
    if r.get("failed"):
        print(f"| {r['n']} | {r['m']} | {r.get('run')} | failed |" + " |" * (len(cols) - 4)); continue
    gi = r.get("gitops") or {}
    gcold = "failed" if gi.get("failed") else f(gi.get("cold_start_secs"), "{:.1f}")
    print("| " + " | ".join([str(r["n"]), str(r["m"]), str(r.get("run")),
        f(r.get("cold_start_secs"), "{:.1f}"), gcold,
        f"{r.get('ready')}/{r['n']}", f"{r.get('content_ok')}/{r['n']}",
        f(r.get("converge_calls_total"), "{}"), f(r.get("converge_calls_metrics_total"), "{}"),
        f(r.get("converge_calls_per_secret"), "{:.3f}"),
        "yes" if (r.get("skipped") or r.get("call_counts_agree")) and g(r).get("call_counts_agree", True) else "MISMATCH",
        f(r.get("ratio_round_trips_operator_per_peer"), "{:.3f}"),
        f(r.get("steady_list_per_model")), f(r.get("steady_juju_writes"), "{}"),
        f"{f(r.get('steady_apiserver_writes'), '{}')} ({f(r.get('steady_lease_writes_total'), '{}')})",
        f(r.get("latency_p50_secs"), "{:.3f}"), f(r.get("latency_p99_secs"), "{:.3f}"),
        f(r.get("op_peak_rss_mib"), "{:.1f}"), f(r.get("op_cpu_secs"))]) + " |")
print()

# ---- per pair: median, min, max of every headline figure; a target is met by the median
pairs = []
for r in rows:
    if (r["n"], r["m"]) not in pairs:
        pairs.append((r["n"], r["m"]))
for n, m in pairs:
    runs = [r for r in rows if (r["n"], r["m"]) == (n, m)]
    good = [r for r in runs if not r.get("failed")]
    print(f"N={n} M={m}: median of {len(good)} run(s) ({len(runs) - len(good)} failed); "
          "min and max beside it; a target is met only by the median")
    print()
    print("| figure | median | min | max | runs | target | median meets it |")
    print("|---|---|---|---|---|---|---|")
    complete = len(good) == len(runs) and all((r.get("skipped") or (r.get("ready") == n and r.get("content_ok") == n and not r.get("content_bad")))
                   and not (r.get("gitops") or {}).get("failed")
                   and g(r).get("ready", n) == n and g(r).get("content_ok", n) == n for r in good)
    print(f"| every object Ready and right in the emulator, every run | {'yes' if good and complete else 'NO'} | | | {len(good)} | yes | {'met' if good and complete else 'NOT met'} |")
    agree = [r for r in good if (r.get("skipped") or r.get("call_counts_agree")) and g(r).get("call_counts_agree", True)]
    print(f"| emulator count = /metrics count, every run | {'yes' if len(agree) == len(good) else 'MISMATCH'} | | | {len(agree)}/{len(good)} | yes | {'met' if good and len(agree) == len(good) else 'NOT met'} |")
    for label, get, fmt, target in FIGURES:
        vals = [v for v in (get(r) for r in good) if isinstance(v, (int, float))]
        if not vals:
            continue
        med = statistics.median(vals)
        text, status = "-", "-"
        if target and target[1](n, m):
            text, status = target[0], ("met" if target[2](med) else "NOT met")
        print(f"| {label} | {f(med, fmt)} | {f(min(vals), fmt)} | {f(max(vals), fmt)} | {len(vals)} | {text} | {status} |")
    print()

# ---- what the writes and calls were
for r in rows:
    if r.get("failed"):
        continue
    for where, x in (("restart", r), ("gitops", g(r))):
        for mm in x.get("call_count_mismatches") or []:
            print(f"MISMATCH N={r['n']} M={r['m']} run {r.get('run')} {where} {mm['window']}: emulator counted "
                  f"{mm['emulator_total']} operator calls, /metrics {mm['metrics_total']}; "
                  f"emulator - metrics: {mm['emulator_minus_metrics']}")
for r in rows:
    if r.get("failed"):
        continue
    gi = g(r)
    print(f"N={r['n']} M={r['m']} run {r.get('run')}: convergence calls {r.get('converge_calls')}; "
          f"steady calls {r.get('steady_calls')}; edit calls {r.get('edit_calls')}; "
          f"steady Lease writes {r.get('steady_lease_writes')}; "
          f"GitOps calls {gi.get('converge_calls')}, apply {f(gi.get('apply_secs'), '{:.1f}')}s; "
          f"setup {r.get('setup_secs', 0):.1f}s (excluded)")
print()
print("Steady apiserver writes: every write, seen by watch during one refresh interval, of a")
print("JujuSecret, Secret or Event in the namespace and of any Lease. The Lease writes are the")
print("operator's leader election renewing its Lease (juju-system/juju-secrets-operator by")
print("default) a third of the Lease's duration (15 s by default) before it would expire.")
print("etcd revisions of all sources also count the apiserver's own bookkeeping writes.")
EOF
echo "raw results: $results" >&2

# The curve as a PNG when more than one N was measured.
if [ "${PLOT:-1}" != 0 ] && [ "$(python3 -c 'import json,sys; print(len({json.loads(l)["n"] for l in open(sys.argv[1]) if l.strip()}))' "$results")" -gt 1 ]; then
  plot_venv=${XDG_CACHE_HOME:-$HOME/.cache}/juju-secrets-operator/venv-plot
  if [ ! -x "$plot_venv/bin/python" ] || ! "$plot_venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    python3 -m venv "$plot_venv" >&2 && "$plot_venv/bin/pip" install -q matplotlib >&2
  fi
  "$plot_venv/bin/python" bench/plot.py "$results" -o "$out/curve.png" >&2 && echo "plot: $out/curve.png" >&2
fi
