#!/usr/bin/env bash
# Runs the whole test suite: formatting and lints of the workspace, the Rust unit,
# integration and doc tests of every crate (the Juju client against the in-process emulator; the operator binary end to end against a real
# kube-apiserver and the emulator), then the Python conformance suite (python-libjuju
# against the emulator binary), which also validates every frame the Rust tests logged
# against Juju's facade schemas, and the Helm chart tests (Helm's engine; server-side dry
# run on a real kube-apiserver). README.md documents this command; .ci/run calls it.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

shared=${JUJU_SHARED_DIR:-$repo/../shared}
if [ ! -d "$shared/juju-facade-schemas" ]; then
  echo "error: Juju facade schemas not found at $shared/juju-facade-schemas (set JUJU_SHARED_DIR)" >&2
  exit 1
fi

# Lua 5.1 runs the Argo CD health script the project ships (deploy/argocd/health.lua) in
# the tests: Argo CD's gopher-lua speaks Lua 5.1.
if ! command -v lua5.1 >/dev/null; then
  echo "== installing lua5.1"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lua5.1 >/dev/null
fi

# Python environment for the conformance suite, cached outside the repository and
# keyed by the pinned requirements.
cache=${XDG_CACHE_HOME:-$HOME/.cache}/juju-secrets-operator
req=tests/python/requirements.txt
key=$( (python3 --version; cat "$req") | sha256sum | cut -c1-16)
venv=$cache/venv-$key
if [ ! -x "$venv/bin/pytest" ]; then
  echo "== creating Python environment $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
fi

# The chart's objects (ServiceAccount, RBAC, Deployment), rendered by Helm's engine, for the
# end-to-end tests that run the operator with only the chart's permissions.
"$venv/bin/python" tests/chart/render.py --release jso --namespace e2e-system --values-json '{"watchNamespaces": []}' --out target/chart/e2e.yaml
export JSO_CHART_MANIFEST=$repo/target/chart/e2e.yaml

echo "== real kube-apiserver for the end-to-end tests (built once, cached)"
bash scripts/kube-apiserver.sh build
# The end-to-end tests fail, rather than skip, when their environment cannot start.
export JSO_REQUIRE_E2E=1

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (workspace, all targets)"
cargo clippy --locked --workspace --all-targets -- -D warnings

echo "== building"
cargo build --locked --workspace --bins

echo "== Rust tests (workspace: operator, Juju client, emulator, benchmark)"
frame_dir=$repo/target/tmp/frame-logs
rm -rf "$frame_dir"
cargo test --locked --workspace --all-targets
echo "== doc tests (the Juju client's example runs against the emulator)"
cargo test --locked --workspace --doc

echo "== Python tests: python-libjuju against the emulator, frame validation, the Helm chart"
JUJU_EMULATOR_BIN=$repo/target/debug/juju-emulator \
JUJU_FACADE_SCHEMAS=$shared/juju-facade-schemas \
RUST_FRAME_LOG_DIR=$frame_dir \
  "$venv/bin/pytest" -q tests/python tests/chart
