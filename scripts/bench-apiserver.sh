#!/usr/bin/env bash
# What the apiserver alone allows the operator, with no operator and no Juju (issue 18's
# limits), each run on a fresh real kube-apiserver + etcd (scripts/kube-apiserver.sh):
#
#   scripts/bench-apiserver.sh writes N   # apiserver CPU and rate per kind of write
#                                         # (status by server-side apply, merge patch or
#                                         # JSON patch, the finalizer's JSON patch, an
#                                         # annotation merge patch), WRITES of each kind,
#                                         # 6 rounds alternating
#   scripts/bench-apiserver.sh floor N    # N JujuSecrets applied (parallel) and, as each
#                                         # lands, the requests a finalizer-first operator
#                                         # makes for it: finalizer, source Secret read,
#                                         # status; the last of each, timed; each run
#                                         # twice: statuses object by object, and every
#                                         # status after every finalizer and read
#                                         # (SCHEDULES="juju-first": only the reads as
#                                         # objects land, every finalizer and status
#                                         # after the apply: what an operator that wrote
#                                         # Juju before the finalizer would need)
#
# Env: RUNS (default 3), SCHEDULES (floor mode; default "per-object statuses-last"),
#      WRITES (writes mode, default 2000), APPLY_IN_FLIGHT (default 32), WATCHES (watches
#      of every JujuSecret kept open during the run, as an operator's and the GitOps
#      measurement's are; default 0), OUT (default target/bench/apiserver-<timestamp>). Prints one JSON line per run;
#      raw results in $OUT/results.jsonl, a median with min and max per figure at the end.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
mode=${1:?usage: scripts/bench-apiserver.sh writes|floor N}
n=${2:?usage: scripts/bench-apiserver.sh writes|floor N}
out=${OUT:-$repo/target/bench/apiserver-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
results=$out/results.jsonl
: > "$results"

cargo build --release --workspace --bins >&2
bash scripts/kube-apiserver.sh build >&2
KUBECTL=$(command -v kubectl || echo "${XDG_CACHE_HOME:-$HOME/.cache}/juju-secrets-operator/kubectl/usr/bin/kubectl")
[ -x "$KUBECTL" ] || { echo "no kubectl: run scripts/dev-env.sh once" >&2; exit 1; }

kube_dir=
watchers=()
stop_watches() {
  [ ${#watchers[@]} -eq 0 ] || pkill -f "jujusecrets?watch=1" 2>/dev/null || true
  watchers=()
}
cleanup() { stop_watches; [ -z "$kube_dir" ] || bash scripts/kube-apiserver.sh stop "$kube_dir" >/dev/null 2>&1 || true; }
trap cleanup EXIT

schedules=(per-object)
[ "$mode" = floor ] && read -r -a schedules <<< "${SCHEDULES:-per-object statuses-last}"
for r in $(seq 1 "${RUNS:-3}"); do
 for schedule in "${schedules[@]}"; do
  dir=$out/run$r-$schedule
  rm -rf "$dir"; mkdir -p "$dir"
  kube_dir=$dir/kube
  echo "== $mode N=$n run $r/${RUNS:-3} $schedule (kube-apiserver in $kube_dir)" >&2
  bash scripts/kube-apiserver.sh start "$kube_dir" > "$dir/kube-start.log" 2>&1
  "$KUBECTL" --kubeconfig "$kube_dir/kubeconfig" apply --validate=false -f crds/ >/dev/null
  "$KUBECTL" --kubeconfig "$kube_dir/kubeconfig" wait --for condition=established --timeout=60s -f crds/ >/dev/null
  # Each watch is drained as fast as the apiserver sends (a watcher that falls behind
  # would hold the apiserver back, as no operator does); its bytes are counted.
  api=$(grep -o 'https://127.0.0.1:[0-9]*' "$kube_dir/kubeconfig" | head -1)
  for w in $(seq 1 "${WATCHES:-0}"); do
    curl -sN --cacert "$kube_dir/certs/apiserver.crt" -H "Authorization: Bearer devtoken" \
      "$api/apis/secrets.juju.is/v1alpha1/jujusecrets?watch=1" | wc -c > "$dir/watch-$w.bytes" &
    watchers+=($!)
  done
  target/release/jso-bench --mode "$mode" \
      --kubeconfig "$kube_dir/kubeconfig" \
      --operator-bin target/release/juju-secrets-operator \
      --emulator-bin target/release/juju-emulator \
      --work-dir "$dir" --n "$n" --m 50 \
      --apply-in-flight "${APPLY_IN_FLIGHT:-32}" --floor-schedule "$schedule" \
      --write-probe "${WRITES:-2000}" | tee -a "$results"
  stop_watches
  bash scripts/kube-apiserver.sh stop "$kube_dir" >/dev/null 2>&1 || true
  kube_dir=
 done
done

python3 - "$results" "$mode" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def show(name, values):
    values = sorted(v for v in values if isinstance(v, (int, float)))
    if values:
        print(f"{name}: {statistics.median(values):.2f} ({values[0]:.2f}-{values[-1]:.2f}, {len(values)} values)")
if sys.argv[2] == "floor":
    for schedule in sorted({r.get("floor_schedule") for r in rows}):
        for k in ["apply_alone_secs", "apply_secs", "floor_juju_secs", "floor_ready_secs",
                  "apiserver_cpu_secs", "etcd_cpu_secs"]:
            show(f"{schedule} {k}", [r.get(k) for r in rows if r.get("floor_schedule") == schedule])
else:
    kinds = sorted({w["kind"] for r in rows for w in r["writes"]})
    for kind in kinds:
        for k in ["writes_per_sec", "apiserver_cpu_ms_per_write", "etcd_cpu_ms_per_write"]:
            show(f"{kind} {k}", [w[k] for r in rows for w in r["writes"] if w["kind"] == kind])
EOF
echo "raw results: $results" >&2
