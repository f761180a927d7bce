#!/usr/bin/env bash
# The demo: installs what is missing, starts a local Nomad agent (-dev) with the nix plugin in
# the background and shows the node's nix driver fingerprint.
#   ./scripts/demo.sh         start (or restart) the demo agent
#   ./scripts/demo.sh stop    stop it
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

DEMO_DIR="${NOMAD_DRIVER_NIX_DEMO_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/nomad-driver-nix-demo}"
PORT="${NOMAD_DRIVER_NIX_DEMO_PORT:-4646}"
export NOMAD_ADDR="http://127.0.0.1:$PORT"

stop_demo() {
  if [ -f "$DEMO_DIR/agent.pid" ] && kill -0 "$(cat "$DEMO_DIR/agent.pid")" 2>/dev/null; then
    echo "stopping the demo agent (pid $(cat "$DEMO_DIR/agent.pid"))"
    kill -INT "$(cat "$DEMO_DIR/agent.pid")"
    for _ in $(seq 1 60); do kill -0 "$(cat "$DEMO_DIR/agent.pid")" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$DEMO_DIR/agent.pid"
}

if [ "${1:-}" = "stop" ]; then stop_demo; exit 0; fi

bash scripts/setup.sh
NOMAD="$(bash e2e/build-nomad.sh)"
stop_demo
mkdir -p "$DEMO_DIR"
sed "s/^client {/ports {\n  http = $PORT\n}\n\nclient {/" plugin-config/nix.hcl > "$DEMO_DIR/agent.hcl"

echo "starting nomad agent -dev with the nix plugin (log: $DEMO_DIR/agent.log)"
NOMAD_DRIVER_NIX_LOG_LEVEL=debug TMPDIR="$DEMO_DIR" setsid env -u AWS_CA_BUNDLE "$NOMAD" agent -dev -bind=127.0.0.1 \
  -plugin-dir="$(pwd)/build/plugins" -config="$DEMO_DIR/agent.hcl" \
  >"$DEMO_DIR/agent.log" 2>&1 < /dev/null &
echo $! > "$DEMO_DIR/agent.pid"

printf 'waiting for the nix driver to fingerprint'
for _ in $(seq 1 120); do
  if "$NOMAD" node status -self -verbose 2>/dev/null | grep -q 'driver.nix.runtime'; then break; fi
  if ! kill -0 "$(cat "$DEMO_DIR/agent.pid")" 2>/dev/null; then echo; tail -n 30 "$DEMO_DIR/agent.log"; exit 1; fi
  printf '.'; sleep 1
done
echo
echo "== driver status (nomad node status -self -verbose) =="
"$NOMAD" node status -self -verbose 2>/dev/null | grep -E '^nix |driver\.nix' || true
echo
cat <<EOT
The agent keeps running in the background. Try:
  export NOMAD_ADDR=$NOMAD_ADDR
  $NOMAD node status -self -verbose
Stop it with: ./scripts/demo.sh stop
EOT
