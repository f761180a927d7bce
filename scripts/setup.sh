#!/usr/bin/env bash
# Installs everything nomad-driver-nix needs to build, run its demo and run its tests on a
# Debian machine (also used by CI and by the Vagrant VM):
#   - Debian packages: nix-bin, bubblewrap, runc, busybox-static, util-linux, iproute2,
#     containernetworking-plugins, tini, golang-github-opencontainers-specs-dev (the OCI
#     runtime-spec JSON schema the unit tests validate config.json against), ca-certificates,
#     curl, g++, make and python3 (node-gyp compiles node-pty, which has no Linux prebuilds;
#     g++ brings gcc and the static libc that `npm run build` compiles native/nix-exec.c with),
#     and Node.js >= 20 / Go when missing;
#   - the npm packages (npm install, at the locked versions);
#   - a Nomad agent built from the Go module proxy (e2e/build-nomad.sh, cached outside the repo);
#   - a Consul agent built the same way (e2e/build-consul.sh), for the e2e tests of script
#     checks (Nomad runs those only for Consul services);
#   - the plugin itself (npm run build → build/plugins/nix).
# Re-running it is cheap: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

# --- Debian packages -------------------------------------------------------------------
packages=(nix-bin bubblewrap runc busybox-static util-linux iproute2 containernetworking-plugins tini golang-github-opencontainers-specs-dev ca-certificates curl g++ make python3)
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node_major)" -lt 20 ]; then packages+=(nodejs npm); fi
if ! command -v go >/dev/null 2>&1; then packages+=(golang-go); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
if [ "$(node_major)" -lt 20 ]; then
  log "error: Node.js >= 20 is required, found $(node --version 2>/dev/null || echo none); install it from your distribution or nodejs.org"
  exit 1
fi

# Debian's nix-bin: the store must exist and root must be able to build without a daemon.
if [ ! -d /nix/store ]; then as_root mkdir -p /nix/store; fi
as_root mkdir -p /nix/var/nix/gcroots

# --- npm packages and the plugin -------------------------------------------------------
# `npm install`, not `npm ci`: npm 11 writes lock files without msgpackr's platform-specific
# optional packages and then refuses them in `npm ci` ("Missing: … from lock file"); install
# keeps the locked versions and leaves the lock file as it is.
# node-pty is compiled by node-gyp, which needs Node's headers: the installed ones when the
# Node.js package ships them (NodeSource; Debian: libnode-dev), else node-gyp downloads them
# from nodejs.org.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm packages"
  npm install --no-audit --no-fund >&2
fi
log "building the plugin"
npm run --silent build >&2

# --- Nomad ------------------------------------------------------------------------------
log "building (or finding) Nomad"
bash e2e/build-nomad.sh >/dev/null

# --- Consul -----------------------------------------------------------------------------
log "building (or finding) Consul"
bash e2e/build-consul.sh >/dev/null
log "ready: $(bash e2e/build-nomad.sh) ; $(bash e2e/build-consul.sh) ; plugin dir: $(pwd)/build/plugins"
