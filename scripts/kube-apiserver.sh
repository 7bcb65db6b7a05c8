#!/usr/bin/env bash
# A real kube-apiserver (Kubernetes 1.20.2, built from Debian's source package) with
# Debian's etcd, on loopback, for the end-to-end tests and the local environment.
#
#   scripts/kube-apiserver.sh build          install packages, build once (cached)
#   scripts/kube-apiserver.sh start RUN_DIR  start etcd + apiserver, write RUN_DIR/kubeconfig
#   scripts/kube-apiserver.sh stop RUN_DIR   stop both by PID (waits until they are gone)
#   scripts/kube-apiserver.sh path           print where the built binary is (or will be)
#
# The build lives outside the repository, under $KUBE_CACHE (default
# ~/.cache/juju-secrets-operator/kube-<version>), keyed by the pinned version, so a
# machine builds it once (about 6 minutes on 2 cores).
#
# ETCD_QUOTA_BYTES (start): etcd's --quota-backend-bytes (default: etcd's own, 2 GiB); the
# benchmark's largest sizes fill 2 GiB with history before the apiserver compacts it.
set -euo pipefail

K8S_DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
K8S_SRC_DIR=kubernetes-1.20.2
cache=${KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/juju-secrets-operator/kube-$K8S_DEB_VERSION}
apiserver=$cache/kube-apiserver

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_packages() {
  local missing=()
  command -v go >/dev/null || missing+=(golang-go)
  command -v etcd >/dev/null || missing+=(etcd-server)
  command -v rsync >/dev/null || missing+=(rsync)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  dpkg -s golang-github-modern-go-reflect2-dev >/dev/null 2>&1 || missing+=(golang-github-modern-go-reflect2-dev)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

build() {
  install_packages
  if [ -x "$apiserver" ]; then
    echo "kube-apiserver already built: $apiserver"
    return
  fi
  local w=$cache/build
  rm -rf "$w"; mkdir -p "$w/apt/lists/partial" "$w/apt/parts"
  cd "$w"
  # A private apt configuration adds deb-src for the machine's own archive without
  # touching the machine's sources.
  eval "$(apt-config shell SP Dir::Etc::sourceparts/d)"
  if [ -f "${SP}debian.sources" ]; then
    sed 's/^Types: deb$/Types: deb-src/' "${SP}debian.sources" > "$w/apt/parts/debsrc.sources"
  else
    grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | sed 's/^deb /deb-src /' > "$w/apt/parts/debsrc.list"
  fi
  local apto=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$w/apt/parts" -o "Dir::State::Lists=$w/apt/lists")
  apt-get "${apto[@]}" update -qq
  apt-get "${apto[@]}" source --download-only "kubernetes=$K8S_DEB_VERSION"
  tar xzf kubernetes_*.orig.tar.gz
  cd "$K8S_SRC_DIR"
  # The vendored reflect2 1.0.1 crashes under Go >= 1.18; Debian ships 1.0.2.
  rm -rf vendor/github.com/modern-go/reflect2
  cp -r "$(dpkg -L golang-github-modern-go-reflect2-dev | grep '/reflect2$' | head -1)" vendor/github.com/modern-go/reflect2
  GOPROXY=off GOFLAGS= GOCACHE=$w/gocache HOME=$w/home CGO_ENABLED=0 make WHAT=cmd/kube-apiserver
  cp _output/bin/kube-apiserver "$apiserver.tmp"
  mv "$apiserver.tmp" "$apiserver"
  cd "$cache"
  rm -rf "$w"
  echo "built $apiserver"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
  local d=${1:?run directory}
  [ -x "$apiserver" ] || build
  mkdir -p "$d"; d=$(cd "$d" && pwd)
  local etcd_port peer_port api_port
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  # admin, and jso-plan: a user with no rights but what RBAC gives it, whose every
  # request is audited (the tests prove with it that `plan` only reads).
  printf '%s\n' "devtoken,admin,admin,system:masters" "plantoken,jso-plan,jso-plan" > "$d/tokens.csv"
  cat > "$d/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: [jso-plan]
- level: None
POLICY
  etcd --data-dir "$d/etcd-data" --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" --initial-cluster "default=http://127.0.0.1:$peer_port" \
    ${ETCD_QUOTA_BYTES:+--quota-backend-bytes="$ETCD_QUOTA_BYTES"} \
    > "$d/etcd.log" 2>&1 &
  echo $! > "$d/etcd.pid"
  "$apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 --secure-port="$api_port" --cert-dir="$d/certs" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$d/sa.pub" --service-account-signing-key-file="$d/sa.key" \
    --token-auth-file="$d/tokens.csv" --authorization-mode=RBAC \
    --audit-policy-file="$d/audit-policy.yaml" --audit-log-path="$d/audit.log" \
    --service-cluster-ip-range=10.0.0.0/24 --disable-admission-plugins=ServiceAccount \
    > "$d/apiserver.log" 2>&1 &
  echo $! > "$d/apiserver.pid"
  local deadline=$((SECONDS + 60))
  until curl -skf -H "Authorization: Bearer devtoken" "https://127.0.0.1:$api_port/readyz" >/dev/null 2>&1; do
    local p
    for p in etcd apiserver; do
      if ! kill -0 "$(cat "$d/$p.pid")" 2>/dev/null; then
        echo "$p exited while starting; last lines of $d/$p.log:" >&2
        tail -n 15 "$d/$p.log" >&2
        stop "$d"; exit 1
      fi
    done
    if [ $SECONDS -ge $deadline ]; then
      echo "kube-apiserver not ready within 60 s; see $d/apiserver.log" >&2
      stop "$d"; exit 1
    fi
    sleep 0.25
  done
  cat > "$d/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://127.0.0.1:$api_port", certificate-authority: $d/certs/apiserver.crt}
users:
- name: admin
  user: {token: devtoken}
contexts:
- name: local
  context: {cluster: local, user: admin, namespace: default}
current-context: local
KC
  echo "kube-apiserver ready: KUBECONFIG=$d/kubeconfig"
}

stop() {
  local d=${1:?run directory}
  local p pid n
  for p in apiserver etcd; do
    if [ -f "$d/$p.pid" ]; then
      pid=$(cat "$d/$p.pid")
      kill "$pid" 2>/dev/null || true
      # Wait (bounded) so a caller may delete the run directory right after.
      for n in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
      rm -f "$d/$p.pid"
    fi
  done
}

case "${1:-}" in
  build) build ;;
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  path) echo "$apiserver" ;;
  *) echo "usage: $0 build | start RUN_DIR | stop RUN_DIR | path" >&2; exit 2 ;;
esac
