#!/usr/bin/env bash
# Starts the local development environment on loopback and keeps it in the foreground
# until Ctrl-C. Today that is the Juju controller emulator; its connection details are
# in $STATE_DIR/connection.json.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
state=${STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/juju-secrets-operator/emulator}
listen=${LISTEN:-127.0.0.1:17070}
mkdir -p "$state"
cargo build --locked --bin juju-emulator
echo "Juju emulator state: $state (connection details: $state/connection.json)"
echo "Stop with Ctrl-C."
exec target/debug/juju-emulator --listen "$listen" --state-dir "$state"
