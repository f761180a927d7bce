#!/usr/bin/env bash
# Installs Nomad and the nix task driver plugin as a systemd service, laid out as HashiCorp's
# own packages do, and (when systemd runs this host and no --prefix is given) starts it.
#
#   install-service.sh [--plugin <file>] [--nomad <binary>] [--prefix <dir>]
#
#   --plugin <file>   the single-file plugin `nix`, or the release tarball
#                     nomad-driver-nix-<version>-linux-<arch>.tar.gz (checked against the
#                     SHA256SUMS beside it when there is one). Default: `nix` beside this script
#                     (an unpacked release tarball), else build/release/nix of the checkout
#                     this script is in (`npm run package`).
#   --nomad <binary>  the Nomad binary to install as /usr/local/bin/nomad. Default: keep the
#                     installed one, /usr/bin/nomad (HashiCorp's package) or /usr/local/bin/nomad.
#   --prefix <dir>    install below <dir> instead of / (a scratch root: tests, image builds);
#                     systemctl is not run then. Default: /.
#
# What it writes (below the prefix):
#   /usr/local/bin/nomad                  0755, with --nomad
#   /etc/nomad.d/nomad.hcl                0644, a single-node server+client agent, only if absent
#   /etc/nomad.d/nix.hcl                  0644, plugin_dir and the plugin "nix" block, only if absent
#   /opt/nomad/data                       0711 (Nomad's data_dir; tasks' users traverse it)
#   /opt/nomad/plugins/nix                0755, the plugin (replaced when it differs)
#   /etc/systemd/system/nomad.service     0644, HashiCorp's unit plus Delegate=yes
# The two .hcl files are the operator's once written (as a package's conffiles): a new run
# keeps them. Idempotent: a second run with the same inputs changes nothing and, with systemd,
# does not restart Nomad. Needs nothing of the checkout: the release tarball carries this
# script, `nix` and `nix.hcl`. Exits non-zero with the reason and its fix on any problem.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2; }
die() {
  echo "install-service.sh: $*" >&2
  exit 1
}

HERE="$(cd "$(dirname "$0")" && pwd)"
PLUGIN=""
NOMAD=""
PREFIX=""
while [ $# -gt 0 ]; do
  case "$1" in
    --plugin) [ $# -ge 2 ] || die "failed to read --plugin: it needs a file; fix: --plugin <nix or tarball>"; PLUGIN="$2"; shift 2 ;;
    --nomad) [ $# -ge 2 ] || die "failed to read --nomad: it needs a file; fix: --nomad <nomad binary>"; NOMAD="$2"; shift 2 ;;
    --prefix) [ $# -ge 2 ] || die "failed to read --prefix: it needs a directory; fix: --prefix <dir>"; PREFIX="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage; die "failed to read the arguments: unknown argument \"$1\"; fix: see the usage above" ;;
  esac
done
if [ -n "$PREFIX" ]; then
  mkdir -p "$PREFIX"
  PREFIX="$(cd "$PREFIX" && pwd)"
  [ "$PREFIX" != / ] || PREFIX=""
fi
[ -n "$PREFIX" ] || [ "$(id -u)" = 0 ] || die "failed to install Nomad: not running as root; fix: run it with sudo (or give --prefix <dir>)"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
CHANGED=0

# --- the plugin and its config block --------------------------------------------------------
if [ -z "$PLUGIN" ]; then
  if [ -f "$HERE/nix" ]; then PLUGIN="$HERE/nix"; else PLUGIN="$HERE/../build/release/nix"; fi
  [ -f "$PLUGIN" ] || die "failed to find the plugin: neither $HERE/nix nor build/release/nix exists; fix: pass --plugin <release tarball or nix>, or run npm run package in the checkout"
fi
[ -f "$PLUGIN" ] || die "failed to read --plugin \"$PLUGIN\": no such file; fix: pass the release tarball or the nix file npm run package wrote"
PLUGIN_HCL=""
case "$PLUGIN" in
  *.tar.gz | *.tgz)
    sums="$(dirname "$PLUGIN")/SHA256SUMS"
    if [ -f "$sums" ]; then
      (cd "$(dirname "$PLUGIN")" && grep -F "  $(basename "$PLUGIN")" SHA256SUMS | sha256sum -c --status -) ||
        die "failed to verify \"$PLUGIN\": it does not match $sums; fix: download the tarball and SHA256SUMS again"
    fi
    tar -xzf "$PLUGIN" -C "$WORK" || die "failed to unpack \"$PLUGIN\": tar failed; fix: pass the release tarball nomad-driver-nix-<version>-linux-<arch>.tar.gz"
    found="$(find "$WORK" -mindepth 2 -maxdepth 2 -name nix -type f | head -n 1)"
    [ -n "$found" ] || die "failed to find nix in \"$PLUGIN\": not a release tarball; fix: pass nomad-driver-nix-<version>-linux-<arch>.tar.gz"
    PLUGIN="$found"
    [ ! -f "$(dirname "$found")/nix.hcl" ] || PLUGIN_HCL="$(dirname "$found")/nix.hcl"
    ;;
esac
if [ -z "$PLUGIN_HCL" ]; then
  for candidate in "$(dirname "$PLUGIN")/nix.hcl" "$HERE/nix.hcl" "$HERE/../plugin-config/nix.hcl"; do
    if [ -f "$candidate" ]; then PLUGIN_HCL="$candidate"; break; fi
  done
fi
head -c 4 "$PLUGIN" | grep -q "ELF" || die "failed to install the plugin \"$PLUGIN\": not an executable (ELF) file; fix: pass the single-file plugin (npm run package), not the build/plugins/nix launcher"

# install_file <mode> <source> <destination>: copies when the content or mode differs.
install_file() {
  local mode="$1" src="$2" dst="$PREFIX$3"
  if [ -f "$dst" ] && cmp -s "$src" "$dst" && [ "$(stat -c %a "$dst")" = "${mode#0}" ]; then
    echo "unchanged  $3"
    return
  fi
  mkdir -p "$(dirname "$dst")"
  install -m "$mode" "$src" "$dst.tmp.$$"
  mv -f "$dst.tmp.$$" "$dst"
  echo "installed  $3"
  CHANGED=1
}

# install_conffile <source> <destination>: writes it once; an existing one is the operator's.
install_conffile() {
  local src="$1" dst="$PREFIX$2"
  if [ -e "$dst" ]; then
    if cmp -s "$src" "$dst"; then echo "unchanged  $2"; else echo "kept       $2 (edited: yours)"; fi
    return
  fi
  install_file 0644 "$src" "$2"
}

# install_dir <mode> <dir>
install_dir() {
  local mode="$1" dir="$PREFIX$2"
  if [ -d "$dir" ] && [ "$(stat -c %a "$dir")" = "${mode#0}" ]; then return; fi
  mkdir -p "$dir"
  chmod "$mode" "$dir"
  echo "directory  $2 ($mode)"
  CHANGED=1
}

# --- Nomad ----------------------------------------------------------------------------------
if [ -n "$NOMAD" ]; then
  [ -f "$NOMAD" ] && [ -x "$NOMAD" ] || die "failed to read --nomad \"$NOMAD\": not an executable file; fix: pass the nomad binary (releases.hashicorp.com or e2e/build-nomad.sh)"
  install_file 0755 "$NOMAD" /usr/local/bin/nomad
  NOMAD_BIN=/usr/local/bin/nomad
elif [ -x "$PREFIX/usr/bin/nomad" ]; then
  NOMAD_BIN=/usr/bin/nomad
elif [ -x "$PREFIX/usr/local/bin/nomad" ]; then
  NOMAD_BIN=/usr/local/bin/nomad
else
  die "failed to find Nomad: neither /usr/bin/nomad nor /usr/local/bin/nomad exists; fix: install HashiCorp's nomad package or pass --nomad <binary>"
fi

# --- directories, config, plugin ------------------------------------------------------------
install_dir 0755 /etc/nomad.d
install_dir 0755 /opt/nomad
install_dir 0711 /opt/nomad/data
install_dir 0755 /opt/nomad/plugins

cat >"$WORK/nomad.hcl" <<'HCL'
# Nomad agent configuration (written once by install-service.sh; yours to edit).
# A single node, server and client in one. The nix plugin's settings are in nix.hcl.
data_dir  = "/opt/nomad/data"
bind_addr = "0.0.0.0"

server {
  enabled          = true
  bootstrap_expect = 1
}

client {
  enabled = true
  servers = ["127.0.0.1"]
}
HCL
install_conffile "$WORK/nomad.hcl" /etc/nomad.d/nomad.hcl

{
  echo '# The nix task driver plugin: written once by install-service.sh; yours to edit.'
  echo '# The plugin executable is /opt/nomad/plugins/nix.'
  echo 'plugin_dir = "/opt/nomad/plugins"'
  echo
  if [ -n "$PLUGIN_HCL" ]; then cat "$PLUGIN_HCL"; else printf 'plugin "nix" {\n  config {\n    runtime = "bwrap"\n  }\n}\n\ntelemetry {\n  publish_allocation_metrics = true\n}\n\nclient {\n  cni_path = "/usr/lib/cni"\n}\n'; fi
} >"$WORK/nix.hcl"
install_conffile "$WORK/nix.hcl" /etc/nomad.d/nix.hcl

before_plugin="$CHANGED"
CHANGED=0
install_file 0755 "$PLUGIN" /opt/nomad/plugins/nix
PLUGIN_CHANGED="$CHANGED"
[ "$before_plugin" = 0 ] || CHANGED=1

# HashiCorp's nomad.service (the nomad package's), with the binary found above and
# Delegate=yes: Nomad makes the tasks' cgroups below its own slice (cgroups v2).
cat >"$WORK/nomad.service" <<UNIT
[Unit]
Description=Nomad
Documentation=https://developer.hashicorp.com/nomad/docs
Wants=network-online.target
After=network-online.target

[Service]
# Nomad clients run as root (the nix driver needs it).
EnvironmentFile=-/etc/nomad.d/nomad.env
ExecReload=/bin/kill -HUP \$MAINPID
ExecStart=$NOMAD_BIN agent -config /etc/nomad.d
KillMode=process
KillSignal=SIGINT
LimitNOFILE=65536
LimitNPROC=infinity
Restart=on-failure
RestartSec=2
TasksMax=infinity
OOMScoreAdjust=-1000
Delegate=yes

[Install]
WantedBy=multi-user.target
UNIT
install_file 0644 "$WORK/nomad.service" /etc/systemd/system/nomad.service

# --- the service ----------------------------------------------------------------------------
if [ -n "$PREFIX" ]; then
  echo "installed below $PREFIX (systemctl not run)"
  exit 0
fi
if [ ! -d /run/systemd/system ]; then
  echo "systemd is not running on this host: files installed; start Nomad with: $NOMAD_BIN agent -config /etc/nomad.d"
  exit 0
fi
systemctl daemon-reload
systemctl enable --quiet nomad
if [ "$PLUGIN_CHANGED" = 1 ]; then
  # A clean stop of Nomad ends its plugins; a plugin left running by an agent that died
  # (crash, SIGKILL, OOM kill) would be reattached to by the next agent, and it is still the
  # old file. So: stop Nomad, end any such plugin (SIGTERM: it exits, its tasks keep running
  # and the new plugin recovers them), start Nomad, which launches the new file.
  systemctl stop nomad
  old_plugins=""
  for exe in /proc/[0-9]*/exe; do
    if [ "$(readlink "$exe" 2>/dev/null)" = "/opt/nomad/plugins/nix (deleted)" ]; then
      pid="${exe#/proc/}"
      old_plugins="$old_plugins ${pid%/exe}"
    fi
  done
  if [ -n "$old_plugins" ]; then
    echo "ending the old plugin:$old_plugins"
    # shellcheck disable=SC2086
    kill -TERM $old_plugins 2>/dev/null || true
    for _ in $(seq 1 20); do
      # shellcheck disable=SC2086
      kill -0 $old_plugins 2>/dev/null || break
      sleep 0.5
    done
  fi
  systemctl start nomad
elif [ "$CHANGED" = 1 ]; then
  systemctl restart nomad
else
  systemctl start nomad
fi
export NOMAD_ADDR="${NOMAD_ADDR:-http://127.0.0.1:4646}"
for _ in $(seq 1 90); do
  if "$NOMAD_BIN" node status -self -verbose 2>/dev/null | grep -q 'driver.nix.runtime'; then
    "$NOMAD_BIN" node status -self -verbose | grep 'driver.nix'
    exit 0
  fi
  sleep 2
done
die "failed to start Nomad with the nix driver: no driver.nix attributes within 3 minutes; fix: see journalctl -u nomad"
