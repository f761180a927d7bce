#!/usr/bin/env bash
# Installs what nomad-driver-nix needs to build, run its demo and run its tests on a Debian
# machine (also used by CI and by the Vagrant VM):
#   - Debian packages: nix-bin, bubblewrap, runc, busybox-static, util-linux, iproute2,
#     containernetworking-plugins, tini, golang-github-opencontainers-specs-dev (the OCI
#     runtime-spec JSON schema the unit tests validate config.json against), ca-certificates,
#     curl, g++, make and python3 (node-gyp compiles node-pty, which has no Linux prebuilds;
#     g++ brings gcc and the static libc that `npm run build` compiles native/nix-exec.c with),
#     and Node.js when it is missing (Debian 12's is too old: install Node.js >= 20 first);
#   - the Debian programs the workload tests turn into Nix closures
#     (test/support/debian-closure.ts): patchelf, nginx-light, redis-server, postgresql-15,
#     supervisor, python3 and tzdata; the services Debian starts on install are stopped and
#     disabled again (the tests start their own, from the closures);
#   - Nix's build users: the group build-users-group names (nixbld) with members nixbld1..32,
#     as Nix's own installer creates them (Debian's nix-bin creates none, and Nix running as
#     root without a daemon runs every build as one of them);
#   - the npm packages (npm install, at the locked versions) and the plugin (npm run build →
#     build/plugins/nix);
#   - a Nomad agent built from the Go module proxy (e2e/build-nomad.sh, cached outside the
#     repo; needs Go >= 1.25 on PATH or in /usr/local/go);
#   - with --with-consul, a Consul agent built the same way (e2e/build-consul.sh), for the
#     e2e tests of script checks (Nomad runs those only for Consul services).
# Each step says what it does and roughly how long it takes the first time (2-core VM).
# Re-running it is cheap: it only installs what is missing.
#
# Usage: scripts/setup.sh [--with-consul]
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_CONSUL=false
for arg in "$@"; do
  case "$arg" in
    --with-consul) WITH_CONSUL=true ;;
    *) printf 'usage: %s [--with-consul]\n' "$0" >&2; exit 2 ;;
  esac
done

log() { printf 'setup: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# step "what (about how long)" CMD...: says what it does, runs it, prints a line every 30 s
# while it runs (Go builds print nothing for minutes) and how long it took.
step() {
  local what=$1 start=$SECONDS pid rc=0
  shift
  log "$what"
  "$@" >&2 &
  pid=$!
  while ! wait_for "$pid" 30; do log "  … ${what%% (*}: still running ($(elapsed $start) so far)"; done
  wait "$pid" || rc=$?
  if [ "$rc" -ne 0 ]; then log "  failed after $(elapsed $start) (exit $rc)"; return "$rc"; fi
  log "  done in $(elapsed $start)"
}
elapsed() { local s=$((SECONDS - $1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }
# wait_for PID SECONDS: true when PID ended within SECONDS
wait_for() {
  local i
  for ((i = 0; i < $2 * 2; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.5; done
  ! kill -0 "$1" 2>/dev/null
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

# --- Debian packages -------------------------------------------------------------------
packages=(nix-bin bubblewrap runc busybox-static util-linux iproute2 containernetworking-plugins tini golang-github-opencontainers-specs-dev ca-certificates curl g++ make python3)
# the workload tests' programs (closures made by test/support/debian-closure.ts), and the
# services their packages start on install, stopped again below
workload_packages=(patchelf nginx-light redis-server postgresql-15 supervisor tzdata)
workload_packages+=(openssl) # the TLS client of e2e/workloads/tz-tls (python3, supervisor and tzdata are above)
workload_services=(nginx-light:nginx redis-server:redis-server postgresql-15:postgresql supervisor:supervisor) # package:service
packages+=("${workload_packages[@]}")
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node_major)" -lt 20 ]; then
  # only when the distribution's Node.js is new enough (Debian 12 has 18, Debian 13 has 20)
  nodejs_candidate() { apt-cache policy nodejs 2>/dev/null | sed -n 's/^ *Candidate: \([0-9]*\).*/\1/p'; }
  candidate="$(nodejs_candidate)"
  if [ -z "$candidate" ]; then as_root apt-get update -qq >&2; candidate="$(nodejs_candidate)"; fi
  if [ "${candidate:-0}" -lt 20 ] 2>/dev/null; then
    die "Node.js >= 20 is required, found $(node --version 2>/dev/null || echo none), and apt offers ${candidate:-no} nodejs; install Node.js 20 or newer first (e.g. NodeSource's nodejs package, or nodejs.org), then run this again"
  fi
  packages+=(nodejs npm)
fi
# Go builds Nomad (and Consul) when they are not built yet; Debian 12's golang-go (1.19) is
# too old for Nomad 1.11
go_minor() { go env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p'; }
needs_build=false
bash e2e/build-nomad.sh --cached >/dev/null 2>&1 || needs_build=true
if [ "$WITH_CONSUL" = true ]; then bash e2e/build-consul.sh --cached >/dev/null 2>&1 || needs_build=true; fi
if [ "$needs_build" = true ] && { [ "$(go_minor || true)" = "" ] || [ "$(go_minor)" -lt 25 ]; }; then
  die "Go >= 1.25 is required to build Nomad, found $(go env GOVERSION 2>/dev/null || echo none); install it from https://go.dev/dl into /usr/local/go (tested: go1.26), then run this again"
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# dpkg's own lines (hundreds) go to a log; the heartbeat shows it is working
install_packages() {
  local apt_log="${TMPDIR:-/tmp}/nomad-driver-nix-setup-apt.log"
  if ! { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } >"$apt_log" 2>&1; then
    tail -n 20 "$apt_log" >&2
    log "apt-get failed; its output: $apt_log"
    return 1
  fi
}
if [ "${#missing[@]}" -gt 0 ]; then
  step "installing Debian packages (about 1-2 min): ${missing[*]}" install_packages "${missing[@]}"
  # only the services of packages this run installed: a machine's own nginx or PostgreSQL stays
  if [ -d /run/systemd/system ]; then
    for pair in "${workload_services[@]}"; do
      case " ${missing[*]} " in
        *" ${pair%%:*} "*) as_root systemctl disable --now "${pair#*:}" >/dev/null 2>&1 || true ;;
      esac
    done
  fi
fi
if [ "$(node_major)" -lt 20 ]; then
  die "Node.js >= 20 is required, found $(node --version 2>/dev/null || echo none); install it from your distribution or nodejs.org"
fi

# Debian's nix-bin: the store must exist and root must be able to build without a daemon,
# which needs build users: the group build-users-group names (nixbld unless nix.conf says
# otherwise) with members, as Nix's installer makes them (scripts/install-multi-user.sh and
# install-systemd-multi-user.sh in NixOS/nix: a system group, system users nixbld1..32 with
# home /var/empty, no login shell, primary and supplementary group nixbld). Nix uses the
# group's listed members, one per concurrent build.
if [ ! -d /nix/store ]; then as_root mkdir -p /nix/store; fi
as_root mkdir -p /nix/var/nix/gcroots
build_group="$(nix --extra-experimental-features nix-command show-config 2>/dev/null | sed -n 's/^build-users-group = //p')"
if [ -n "$build_group" ]; then
  build_users="${NIX_BUILD_USERS:-32}"
  created=0
  if ! getent group "$build_group" >/dev/null; then as_root groupadd --system "$build_group"; created=1; fi
  for i in $(seq 1 "$build_users"); do
    user="nixbld$i"
    if ! getent passwd "$user" >/dev/null; then
      as_root useradd --system --no-create-home --home-dir /var/empty --shell /usr/sbin/nologin \
        --gid "$build_group" --groups "$build_group" --comment "Nix build user $i" "$user"
      created=$((created + 1))
    elif ! id -nG "$user" | tr ' ' '\n' | grep -qx "$build_group"; then
      as_root usermod --append --groups "$build_group" "$user"
      created=$((created + 1))
    fi
  done
  [ "$created" -eq 0 ] || log "created Nix's build users: group $build_group with nixbld1..nixbld$build_users"
fi

# --- npm packages and the plugin -------------------------------------------------------
# `npm install`, not `npm ci`: npm 11 writes lock files without msgpackr's platform-specific
# optional packages and then refuses them in `npm ci` ("Missing: … from lock file"); install
# keeps the locked versions and leaves the lock file as it is.
# node-pty is compiled by node-gyp, which needs Node's headers: the installed ones when the
# Node.js package ships them (NodeSource; Debian: libnode-dev), else node-gyp downloads them
# from nodejs.org.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "installing npm packages (about 1-2 min: node-gyp compiles node-pty)" npm install --no-audit --no-fund
fi
step "building the plugin (about 20 s)" npm run --silent build

# --- Nomad (and Consul) ---------------------------------------------------------------------
# build-*.sh print the binary's path on stdout, their progress on stderr
if NOMAD="$(bash e2e/build-nomad.sh --cached)"; then
  log "Nomad: $NOMAD"
else
  step "building Nomad from source (once, cached; about 6 min on 2 cores, plus ~1 min downloading modules)" \
    bash -c 'bash e2e/build-nomad.sh >/dev/null'
  NOMAD="$(bash e2e/build-nomad.sh --cached)"
fi
ready="$NOMAD"
if [ "$WITH_CONSUL" = true ]; then
  if CONSUL="$(bash e2e/build-consul.sh --cached)"; then
    log "Consul: $CONSUL"
  else
    step "building Consul from source for the script-check tests (once, cached; about 8 min on 2 cores, plus ~1 min downloading modules)" \
      bash -c 'bash e2e/build-consul.sh >/dev/null'
    CONSUL="$(bash e2e/build-consul.sh --cached)"
  fi
  ready="$ready ; $CONSUL"
fi
log "ready: $ready ; plugin dir: $(pwd)/build/plugins"
