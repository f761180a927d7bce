#!/usr/bin/env bash
# The demo: installs what is missing, starts a local Nomad agent (-dev) with the nix plugin in
# the background and shows the node's nix driver fingerprint.
#   ./scripts/demo.sh         start (or restart) the demo agent
#   ./scripts/demo.sh stop    stop it
# Environment: NOMAD_DRIVER_NIX_DEMO_PORT (the agent's HTTP port, default 4646),
# NOMAD_DRIVER_NIX_DEMO_DIR (its data and logs, default /var/lib/nomad-driver-nix-demo).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

# not below $HOME: tasks run as nobody, and their sandbox binds the alloc dirs from here
DEMO_DIR="${NOMAD_DRIVER_NIX_DEMO_DIR:-/var/lib/nomad-driver-nix-demo}"
PORT="${NOMAD_DRIVER_NIX_DEMO_PORT:-4646}"
export NOMAD_ADDR="http://127.0.0.1:$PORT"

stop_demo() {
  if [ -f "$DEMO_DIR/agent.pid" ] && kill -0 "$(cat "$DEMO_DIR/agent.pid")" 2>/dev/null; then
    # tasks outlive the agent by design: stop the jobs first
    if [ -n "$NOMAD" ]; then
      for job in $("$NOMAD" job status 2>/dev/null | awk 'NR>1 {print $1}'); do "$NOMAD" job stop -purge "$job" >/dev/null 2>&1 || true; done
      sleep 2
    fi
    echo "stopping the demo agent (pid $(cat "$DEMO_DIR/agent.pid"))"
    kill -INT "$(cat "$DEMO_DIR/agent.pid")"
    for _ in $(seq 1 60); do kill -0 "$(cat "$DEMO_DIR/agent.pid")" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$DEMO_DIR/agent.pid"
}

# the Nomad binary if it is built; `stop` builds nothing (the demo agent ran it, so it is)
NOMAD="$(bash e2e/build-nomad.sh --cached 2>/dev/null || true)"
if [ "${1:-}" = "stop" ]; then stop_demo; exit 0; fi

# installs what is missing and says what it does: Debian packages, Nix's build users, npm
# packages, the plugin, Nomad (built from source the first time: several minutes); not Consul,
# which only the tests use
echo "== installing what is missing (scripts/setup.sh; the first run takes about 10 minutes) =="
bash scripts/setup.sh
NOMAD="$(bash e2e/build-nomad.sh --cached)"
stop_demo
mkdir -p "$DEMO_DIR"
chmod 0711 "$DEMO_DIR"
# the documented client config, plus: our own port, and no binary cache (the demo builds
# everything it runs from busybox, offline)
sed -e "s/^client {/ports {\n  http = $PORT\n}\n\nclient {/" \
    -e 's/^    # substituters = \[.*\]$/    substituters = []/' \
    -e "s|^    allow_local_flakes = \[\]|    allow_local_flakes = [\"$DEMO_DIR/web\"]|" \
    plugin-config/nix.hcl > "$DEMO_DIR/agent.hcl"

# the agent exited while starting: its own error first (Nomad prints it as "==> Error …" at
# the top of the log, then 30 lines of shutdown), then the log's tail
agent_exited() {
  echo
  echo "the Nomad agent exited while starting; its error (log: $DEMO_DIR/agent.log):"
  local errors
  errors="$(sed -n '/^==> Error/,/^$/p' "$DEMO_DIR/agent.log")"
  if [ -n "$errors" ]; then printf '%s\n' "$errors"; else tail -n 30 "$DEMO_DIR/agent.log"; fi
  if grep -q 'address already in use' "$DEMO_DIR/agent.log"; then
    echo "a port the demo agent needs is taken (HTTP $PORT, and -dev's RPC 4647 and Serf 4648): stop what listens there, or choose another HTTP port with NOMAD_DRIVER_NIX_DEMO_PORT=<port> ./scripts/demo.sh"
  fi
  exit 1
}

# The demo talks to its agent through 127.0.0.1:$PORT only. Our own agent is stopped by now,
# so whatever still listens there is someone else's (another Nomad, a VM's forwarded port):
# stop here rather than fingerprint and run the web job on it.
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "something else listens on 127.0.0.1:$PORT, the demo agent's HTTP port; stop it, or choose another port with NOMAD_DRIVER_NIX_DEMO_PORT=<port> ./scripts/demo.sh" >&2
  exit 1
fi

echo "starting nomad agent -dev with the nix plugin (log: $DEMO_DIR/agent.log)"
NOMAD_DRIVER_NIX_LOG_LEVEL=debug TMPDIR="$DEMO_DIR" setsid env -u AWS_CA_BUNDLE "$NOMAD" agent -dev -bind=127.0.0.1 \
  -plugin-dir="$(pwd)/build/plugins" -config="$DEMO_DIR/agent.hcl" \
  >"$DEMO_DIR/agent.log" 2>&1 < /dev/null &
echo $! > "$DEMO_DIR/agent.pid"

printf 'waiting for the nix driver to fingerprint'
for _ in $(seq 1 120); do
  # ours first: an answer on the port counts only while our agent runs
  if ! kill -0 "$(cat "$DEMO_DIR/agent.pid")" 2>/dev/null; then agent_exited; fi
  if "$NOMAD" node status -self -verbose 2>/dev/null | grep -q 'driver.nix.runtime'; then break; fi
  printf '.'; sleep 1
done
echo
echo "== driver status (nomad node status -self -verbose) =="
"$NOMAD" node status -self -verbose 2>/dev/null | grep -E '^nix |driver\.nix' || true
# an unhealthy driver gets no jobs: say why instead of waiting for the web job
NIX_HEALTH="$("$NOMAD" node status -self -json 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const d=(JSON.parse(s).Drivers||{}).nix||{};console.log(d.Healthy?"healthy":(d.HealthDescription||"not fingerprinted"))})' || true)"
if [ "$NIX_HEALTH" != "healthy" ]; then
  echo
  echo "the nix driver is unhealthy, so Nomad places no nix jobs on this node:"
  echo "  $NIX_HEALTH"
  echo "fix that, then run ./scripts/demo.sh again (agent log: $DEMO_DIR/agent.log)"
  exit 1
fi
echo
echo
echo "== running examples/web.nomad.hcl: a web server built by Nix on this client =="
rm -rf "$DEMO_DIR/web"
mkdir -p "$DEMO_DIR/web/busybox/bin"
cp examples/web/flake.nix "$DEMO_DIR/web/flake.nix"
cp /bin/busybox "$DEMO_DIR/web/busybox/bin/busybox"
sed "s|FLAKE_DIR|$DEMO_DIR/web|" examples/web.nomad.hcl > "$DEMO_DIR/web.nomad.hcl"
"$NOMAD" job run -detach "$DEMO_DIR/web.nomad.hcl" >/dev/null
ALLOC=""
for _ in $(seq 1 120); do
  ALLOC="$("$NOMAD" job allocs -t '{{range .}}{{if eq .ClientStatus "running"}}{{.ID}}{{end}}{{end}}' web 2>/dev/null || true)"
  [ -n "$ALLOC" ] && break
  sleep 1
done
if [ -z "$ALLOC" ]; then
  echo "the web job did not start; its status:"
  "$NOMAD" job status web
  exit 1
fi
PORT_HTTP="$("$NOMAD" alloc status -json "$ALLOC" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const a=JSON.parse(s);console.log(a.AllocatedResources.Shared.Ports.find(p=>p.Label==="http").Value)})')"
for _ in $(seq 1 20); do curl -fsS "http://127.0.0.1:$PORT_HTTP/" 2>/dev/null && break; sleep 0.5; done
echo
echo "== nomad alloc status $ALLOC (events) =="
"$NOMAD" alloc status "$ALLOC" | sed -n '/Recent Events/,$p'
echo
cat <<EOT
The agent and the job keep running in the background. Look around:
  export NOMAD_ADDR=$NOMAD_ADDR
  $NOMAD job status web
  $NOMAD alloc status $ALLOC
  $NOMAD alloc logs $ALLOC          # httpd's own log
  $NOMAD alloc logs -stderr $ALLOC
  curl http://127.0.0.1:$PORT_HTTP/
  $NOMAD node status -self -verbose | grep driver.nix
Stop everything with: ./scripts/demo.sh stop
EOT
