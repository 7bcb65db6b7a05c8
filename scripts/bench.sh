#!/usr/bin/env bash
# The scale benchmark (issue 5): for each N:M pair, a fresh real kube-apiserver + etcd
# (scripts/kube-apiserver.sh), a fresh Juju emulator (release) seeded with M models
# admin/bench-0..M-1, N JujuSecrets created before the operator (release) starts
# (half `data`, half `secretRef`), then: cold start, Juju calls, steady state over one
# refresh interval, change latency, RSS/CPU, the emulator's bulk ceiling and the
# python-libjuju peer. Prints one table; raw results in $OUT/results.jsonl.
#
#   scripts/bench.sh                 # 100:10 1000:10
#   scripts/bench.sh 100:10 10000:50 # N:M pairs
#
# Env: REFRESH (s, default 60), EDITS (default 50), PEER=0 to skip the python peer,
#      RUN_TIMEOUT (s per run, default 900), OUT (default target/bench/<timestamp>),
#      OPERATOR_ARGS (extra `run` flags, e.g. "--max-concurrent-reconciles=256").
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

for pair in "${pairs[@]}"; do
  n=${pair%%:*}; m=${pair##*:}
  run=$out/n$n-m$m
  rm -rf "$run"; mkdir -p "$run"
  kube_dir=$run/kube
  echo "== N=$n M=$m: kube-apiserver in $kube_dir" >&2
  bash scripts/kube-apiserver.sh start "$kube_dir" > "$run/kube-start.log" 2>&1
  "$KUBECTL" --kubeconfig "$kube_dir/kubeconfig" apply --validate=false -f crds/ >/dev/null
  "$KUBECTL" --kubeconfig "$kube_dir/kubeconfig" wait --for condition=established --timeout=60s -f crds/ >/dev/null
  if timeout -k 10 "${RUN_TIMEOUT:-900}" target/release/jso-bench \
      --kubeconfig "$kube_dir/kubeconfig" \
      --operator-bin target/release/juju-secrets-operator \
      --emulator-bin target/release/juju-emulator \
      --work-dir "$run" --n "$n" --m "$m" \
      --refresh-secs "${REFRESH:-60}" --edits "${EDITS:-50}" \
      --converge-timeout "${CONVERGE_TIMEOUT:-600}" \
      --python "$python" --peer-script bench/libjuju_peer.py \
      $(for a in ${OPERATOR_ARGS:-}; do printf -- '--operator-arg=%s ' "$a"; done) \
      > "$run/result.json"; then
    cat "$run/result.json" >> "$results"
  else
    echo "== N=$n M=$m failed (see $run)" >&2
    echo "{\"n\": $n, \"m\": $m, \"failed\": true}" >> "$results"
  fi
  bash scripts/kube-apiserver.sh stop "$kube_dir" >/dev/null 2>&1 || true
  kube_dir=
done

python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def f(v, fmt="{:.2f}"):
    return "-" if v is None else (fmt.format(v) if isinstance(v, (int, float)) else str(v))
cols = ["N", "M", "cold start s", "Ready", "content ok", "Juju calls", "calls/secret",
        "Juju-side s", "steady ListSecrets/model", "steady other Juju calls",
        "steady apiserver writes", "p50 s", "p99 s", "peak RSS MiB", "CPU s"]
print("| " + " | ".join(cols) + " |")
print("|" + "---|" * len(cols))
for r in rows:
    if r.get("failed"):
        print(f"| {r['n']} | {r['m']} | failed |" + " |" * (len(cols) - 3)); continue
    sc = r.get("steady_calls", {})
    other = sum(v for k, v in sc.items() if k != "Secrets.ListSecrets")
    writes = r.get("steady_jujusecret_writes", 0) + r.get("steady_secret_writes", 0) + max(0, r.get("steady_new_events", 0))
    print("| " + " | ".join([str(r["n"]), str(r["m"]), f(r.get("cold_start_secs"), "{:.1f}"),
        f"{r.get('ready')}/{r['n']}", f"{r.get('content_ok')}/{r['n']}",
        str(r.get("converge_calls_total")), f(r.get("converge_calls_per_secret"), "{:.3f}"),
        f(r.get("converge_juju_side_secs"), "{:.3f}"),
        f(r.get("steady_list_per_model")), str(other), str(writes),
        f(r.get("latency_p50_secs"), "{:.3f}"), f(r.get("latency_p99_secs"), "{:.3f}"),
        f(r.get("op_peak_rss_mib"), "{:.1f}"), f(r.get("op_cpu_secs"))]) + " |")
print()
# The same job done by the python-libjuju peer and by the emulator's ceiling (bulk
# CreateSecrets per model from the Rust client): round trips and Juju-side time (the
# emulator's own time serving the calls), and the operator's figures as ratios.
cols = ["N", "M", "operator round trips", "peer round trips", "ceiling round trips",
        "peer / operator", "operator / ceiling", "operator Juju-side s", "peer Juju-side s",
        "ceiling Juju-side s", "peer / operator (time)", "operator / ceiling (time)",
        "operator Juju CPU s", "peer Juju CPU s", "ceiling Juju CPU s",
        "peer / operator (CPU)", "operator / ceiling (CPU)", "peer wall s", "ceiling create s"]
print("| " + " | ".join(cols) + " |")
print("|" + "---|" * len(cols))
def ratio(a, b):
    return (a / b) if a and b else None
for r in rows:
    if r.get("failed"):
        continue
    peer = r.get("peer") or {}
    op_rt, op_t = r.get("converge_calls_total"), r.get("converge_juju_side_secs")
    p_rt, p_t = peer.get("round_trips"), r.get("peer_juju_side_secs")
    c_rt, c_t = r.get("ceiling_round_trips"), r.get("ceiling_juju_side_secs")
    op_c, p_c, c_c = (r.get("converge_juju_cpu_secs"), r.get("peer_juju_cpu_secs"),
                      r.get("ceiling_juju_cpu_secs"))
    print("| " + " | ".join([str(r["n"]), str(r["m"]), f(op_rt, "{}"), f(p_rt, "{}"), f(c_rt, "{}"),
        f(ratio(p_rt, op_rt), "{:.1f}x"), f(ratio(op_rt, c_rt), "{:.1f}x"),
        f(op_t, "{:.3f}"), f(p_t, "{:.3f}"), f(c_t, "{:.3f}"),
        f(ratio(p_t, op_t), "{:.1f}x"), f(ratio(op_t, c_t), "{:.1f}x"),
        f(op_c), f(p_c), f(c_c), f(ratio(p_c, op_c), "{:.1f}x"), f(ratio(op_c, c_c), "{:.1f}x"),
        f(peer.get("wall_secs"), "{:.1f}"), f(r.get("ceiling_create_secs"))]) + " |")
print()
for r in rows:
    if not r.get("failed"):
        print(f"N={r['n']} M={r['m']}: convergence calls {r.get('converge_calls')}; steady calls {r.get('steady_calls')}; "
              f"edit calls {r.get('edit_calls')}; setup {r.get('setup_secs', 0):.1f}s (excluded)")
EOF
echo "raw results: $results" >&2
