#!/usr/bin/env bash
# Installs Nomad (the binary e2e/build-nomad.sh built) as a systemd service running a single
# server+client agent with the nix plugin loaded from this checkout, and starts it. Used by
# the Vagrantfile; run scripts/setup.sh first. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

NOMAD_SRC="$(bash e2e/build-nomad.sh)"
install -m 0755 "$NOMAD_SRC" /usr/local/bin/nomad

PLUGIN_DIR=/opt/nomad/plugins
mkdir -p "$PLUGIN_DIR" /etc/nomad.d /var/lib/nomad
NOMAD_DRIVER_NIX_PLUGIN_DIR="$PLUGIN_DIR" node scripts/make-plugin-dir.mjs

cat > /etc/nomad.d/nomad.hcl <<HCL
data_dir   = "/var/lib/nomad"
plugin_dir = "$PLUGIN_DIR"
bind_addr  = "0.0.0.0"

server {
  enabled          = true
  bootstrap_expect = 1
}

client {
  enabled  = true
  cni_path = "/usr/lib/cni"
}
HCL
# the plugin block, documented, from the repository
sed '/^client {/,$d' plugin-config/nix.hcl > /etc/nomad.d/nix.hcl

cat > /etc/systemd/system/nomad.service <<'UNIT'
[Unit]
Description=Nomad agent (with the nix task driver)
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/local/bin/nomad agent -config=/etc/nomad.d
ExecReload=/bin/kill -HUP $MAINPID
KillMode=process
KillSignal=SIGINT
Restart=on-failure
RestartSec=2
LimitNOFILE=65536
TasksMax=infinity
Delegate=yes

[Install]
WantedBy=multi-user.target
UNIT

systemctl daemon-reload
systemctl enable nomad
systemctl restart nomad
for _ in $(seq 1 60); do
  if nomad node status -self -verbose 2>/dev/null | grep -q 'driver.nix.runtime'; then
    nomad node status -self -verbose | grep 'driver.nix'
    exit 0
  fi
  sleep 2
done
echo "nomad did not report the nix driver within 2 minutes; see: journalctl -u nomad" >&2
exit 1
