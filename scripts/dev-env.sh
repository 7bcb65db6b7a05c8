#!/usr/bin/env bash
# The local development environment, all on loopback:
#   a real kube-apiserver (Kubernetes 1.20 built from Debian's source, see
#   scripts/kube-apiserver.sh) + etcd, the Juju controller emulator, and the operator,
#   with crds/ and examples/ applied.
#
#   scripts/dev-env.sh          start (or refresh) it, wait for the examples to be Ready,
#                               print them
#   scripts/dev-env.sh status   show what runs
#   scripts/dev-env.sh stop     stop everything (by PID); state is kept
#   scripts/dev-env.sh clean    stop and delete the state directory
#
# Running it again is safe: what still runs is kept (the operator and the emulator are
# restarted when their binaries were rebuilt), the manifests are re-applied.
# State, logs and the kubeconfig: $STATE_DIR (default
# ~/.local/state/juju-secrets-operator/dev).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
state=${STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/juju-secrets-operator/dev}
kube_dir=$state/kube
juju_dir=$state/juju
kubeconfig=$kube_dir/kubeconfig
operator_bin=$repo/target/debug/juju-secrets-operator
emulator_bin=$repo/target/debug/juju-emulator
connection_ns=juju-system
connection_name=juju-connection
wait_seconds=${WAIT_SECONDS:-90}

log() { printf '== %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# True if the PID in $1 is alive and runs a command line containing $2.
alive() {
  local pidfile=$1 what=$2 pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$what"
}

# Stops the process of a PID file (TERM, then KILL after 10 s).
stop_pid() {
  local pidfile=$1 what=$2 pid n
  if alive "$pidfile" "$what"; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for n in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$pidfile"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

kubectl_bin() {
  if command -v kubectl >/dev/null; then
    command -v kubectl
    return
  fi
  # No kubectl on this machine: Debian's own (1.20, matching the apiserver), unpacked
  # into the cache without installing anything.
  local cache=${XDG_CACHE_HOME:-$HOME/.cache}/juju-secrets-operator/kubectl
  if [ ! -x "$cache/usr/bin/kubectl" ]; then
    log "kubectl not found; unpacking Debian's kubernetes-client into $cache" >&2
    mkdir -p "$cache"
    (cd "$cache" && apt-get download kubernetes-client >/dev/null && dpkg -x kubernetes-client_*.deb .) >&2 \
      || die "cannot get kubectl; install it (https://kubernetes.io/docs/tasks/tools/)"
  fi
  echo "$cache/usr/bin/kubectl"
}

apiserver_up() {
  [ -f "$kubeconfig" ] && alive "$kube_dir/apiserver.pid" kube-apiserver \
    && alive "$kube_dir/etcd.pid" etcd \
    && "$KUBECTL" --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1
}

stop_all() {
  stop_pid "$state/operator.pid" juju-secrets-operator
  stop_pid "$state/emulator.pid" juju-emulator
  if [ -d "$kube_dir" ]; then bash scripts/kube-apiserver.sh stop "$kube_dir"; fi
}

status() {
  local what
  for what in operator:juju-secrets-operator emulator:juju-emulator; do
    if alive "$state/${what%%:*}.pid" "${what#*:}"; then
      echo "${what%%:*}: running (PID $(cat "$state/${what%%:*}.pid"))"
    else
      echo "${what%%:*}: not running"
    fi
  done
  if apiserver_up; then
    echo "kube-apiserver: running (PID $(cat "$kube_dir/apiserver.pid")); KUBECONFIG=$kubeconfig"
  else
    echo "kube-apiserver: not running"
  fi
}

start_emulator() {
  rm -f "$juju_dir/connection.json"
  mkdir -p "$juju_dir"
  # Like Juju, the emulator moves a model's revisions to a new secret backend a moment
  # later, not at once (JUJU_DRAIN_DELAY_MS, default 3 s).
  "$emulator_bin" --listen 127.0.0.1:0 --state-dir "$juju_dir" \
    --drain-delay-ms "${JUJU_DRAIN_DELAY_MS:-3000}" >> "$state/emulator.log" 2>&1 &
  echo $! > "$state/emulator.pid"
  local deadline=$((SECONDS + 30))
  until [ -s "$juju_dir/connection.json" ]; do
    alive "$state/emulator.pid" juju-emulator || die "the Juju emulator exited; see $state/emulator.log"
    [ $SECONDS -lt $deadline ] || die "the Juju emulator did not write connection.json within 30 s"
    sleep 0.2
  done
}

start_operator() {
  local port
  port=$(free_port)
  "$operator_bin" run --kubeconfig "$kubeconfig" \
    --juju-connection-secret "$connection_ns/$connection_name" \
    --refresh-interval 30s --metrics-addr "127.0.0.1:$port" \
    >> "$state/operator.log" 2>&1 &
  echo $! > "$state/operator.pid"
  echo "$port" > "$state/operator.metrics-port"
  local deadline=$((SECONDS + 30))
  until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
    alive "$state/operator.pid" juju-secrets-operator || die "the operator exited; see $state/operator.log"
    [ $SECONDS -lt $deadline ] || die "the operator did not serve /healthz within 30 s; see $state/operator.log"
    sleep 0.2
  done
}

start() {
  log "building the binaries"
  cargo build --locked --workspace --bins
  log "kube-apiserver (built once, cached)"
  bash scripts/kube-apiserver.sh build
  KUBECTL=$(kubectl_bin)
  k() { "$KUBECTL" --kubeconfig "$kubeconfig" "$@"; }
  mkdir -p "$state"

  if apiserver_up; then
    log "kube-apiserver already running"
  else
    # Anything left from an earlier run talks to an apiserver that is gone.
    stop_all
    log "starting etcd + kube-apiserver"
    bash scripts/kube-apiserver.sh start "$kube_dir"
  fi

  local restart_operator=
  if alive "$state/emulator.pid" juju-emulator && [ ! "$emulator_bin" -nt "$state/emulator.pid" ] \
    && [ -s "$juju_dir/connection.json" ]; then
    log "Juju emulator already running"
  else
    stop_pid "$state/emulator.pid" juju-emulator
    log "starting the Juju emulator (state: $juju_dir)"
    start_emulator
    restart_operator=yes
  fi

  log "applying crds/"
  # --validate=false: kubectl checks fields against the server's OpenAPI, and a 1.20
  # apiserver does not know x-kubernetes-validations (it ignores the CEL rules).
  k apply --validate=false -f crds/ >/dev/null
  k wait --for condition=established --timeout=60s -f crds/ >/dev/null

  log "connection Secret $connection_ns/$connection_name"
  k create namespace "$connection_ns" --dry-run=client -o yaml | k apply -f - >/dev/null
  local before after
  before=$(k get secret -n "$connection_ns" "$connection_name" -o jsonpath='{.metadata.resourceVersion}' 2>/dev/null || true)
  "$operator_bin" connection-secret --from-emulator "$juju_dir/connection.json" --user admin \
    --namespace "$connection_ns" --name "$connection_name" | k apply -f - >/dev/null
  after=$(k get secret -n "$connection_ns" "$connection_name" -o jsonpath='{.metadata.resourceVersion}')
  [ "$before" = "$after" ] || restart_operator=yes

  if [ -z "$restart_operator" ] && alive "$state/operator.pid" juju-secrets-operator \
    && [ ! "$operator_bin" -nt "$state/operator.pid" ]; then
    log "operator already running"
  else
    stop_pid "$state/operator.pid" juju-secrets-operator
    log "starting the operator (log: $state/operator.log)"
    start_operator
  fi

  log "applying examples/"
  k apply -f examples/

  log "waiting (up to ${wait_seconds}s) for the examples to be Ready"
  local kinds=jujusecrets,jujusecretgrants,jujusecretbackends namespaces ns kind ok=yes
  namespaces=$(k get jujusecrets,jujusecretgrants -A -o jsonpath='{range .items[*]}{.metadata.namespace}{"\n"}{end}' | sort -u)
  for ns in $namespaces; do
    for kind in jujusecrets jujusecretgrants; do
      if [ -n "$(k get "$kind" -n "$ns" -o name)" ]; then
        k wait --for=condition=Ready "$kind" --all -n "$ns" --timeout="${wait_seconds}s" >/dev/null || ok=
      fi
    done
  done
  if [ -n "$(k get jujusecretbackends -o name)" ]; then
    k wait --for=condition=Ready jujusecretbackends --all --timeout="${wait_seconds}s" >/dev/null || ok=
  fi
  echo
  k get "$kinds" -A
  echo
  if [ -z "$ok" ]; then
    echo "Some objects are not Ready: kubectl describe $kinds -A; operator log: $state/operator.log" >&2
    exit 1
  fi
  cat <<EOF
The environment is up (state and logs: $state).

  export KUBECONFIG=$kubeconfig
  kubectl get jujusecrets,jujusecretgrants,jujusecretbackends -A   # or: kubectl get juju -A
  kubectl describe jujusecret -n demo db-creds

Juju emulator connection details: $juju_dir/connection.json
Operator log: $state/operator.log

Stop it with: scripts/dev-env.sh stop
EOF
}

case "${1:-start}" in
  start)
    start
    ;;
  status)
    KUBECTL=$(kubectl_bin)
    status
    ;;
  stop)
    stop_all
    log "stopped (state kept in $state)"
    ;;
  clean)
    stop_all
    rm -rf "$state"
    log "stopped and removed $state"
    ;;
  *)
    echo "usage: $0 [start|status|stop|clean]" >&2
    exit 2
    ;;
esac
