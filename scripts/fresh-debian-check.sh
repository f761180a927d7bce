#!/usr/bin/env bash
# Runs this repository's setup, demo or some tests on a *fresh* Debian 12 (bookworm): a chroot
# made with mmdebstrap that has nothing installed but Debian's "important" packages, its own
# empty /nix, and a clone of this checkout's HEAD (commit first: uncommitted changes are not in
# it). It is how we check that a newcomer's machine works (README "Development").
#
#   scripts/fresh-debian-check.sh create          make the chroot (mmdebstrap, ~1-3 min)
#   scripts/fresh-debian-check.sh update          bring the clone to this checkout's HEAD
#   scripts/fresh-debian-check.sh demo            ./scripts/demo.sh inside, again (warm), then
#                                                 ./scripts/demo.sh stop; each timed
#   scripts/fresh-debian-check.sh run CMD...      any command inside, in the clone (e.g.
#                                                 node --test dist/e2e/plugin-loading.test.js)
#   scripts/fresh-debian-check.sh stop            stop what runs inside, drop its mount namespace
#   scripts/fresh-debian-check.sh destroy         stop, then delete the chroot
#   scripts/fresh-debian-check.sh all             create, demo, destroy
#
# Needs root on a Debian/Ubuntu host with network access to a Debian mirror, the npm registry
# and the Go module proxy. Each phase prints how long it took; the times also go to
# "$FRESH_DEBIAN_ROOT.times".
#
# What comes from the host, and why:
#   - Node.js >= 20: Debian 12 ships 18 (the plugin needs 20). An operator installs it from
#     NodeSource; this script copies the files of the host's installed `nodejs` package in
#     (FRESH_DEBIAN_NODE=host, the default), or leaves it out (FRESH_DEBIAN_NODE=none: then
#     setup.sh stops with its "Node.js >= 20 is required" message).
#   - Go: Debian 12's golang-go (1.19) cannot build Nomad 1.11. With FRESH_DEBIAN_GO=host (the
#     default) the host's /usr/local/go is bound read-only at the same path; none = leave it out.
#   - Only with FRESH_DEBIAN_NOMAD_CACHE=host: the host's prebuilt Nomad/Consul cache
#     (~/.cache/nomad-driver-nix), bound read-only at the same path, to skip the Nomad build
#     (6 to 25 minutes on a shared 2-core machine); the default builds it inside.
#   - Locally added CA certificates (/usr/local/share/ca-certificates) and the CA variables
#     NODE_EXTRA_CA_CERTS / SSL_CERT_FILE / CURL_CA_BUNDLE / GIT_SSL_CAINFO, for networks whose
#     TLS goes through a proxy with its own CA.
#   - The kernel, /proc, /sys (with the cgroup hierarchies), /dev and the network: a chroot
#     shares them. (It is entered as a mount namespace whose root is the chroot, see mount_all.)
# Nothing else: no Nix store, no npm cache, no Go module cache, no prebuilt Nomad (unless
# FRESH_DEBIAN_NOMAD_CACHE=host).
#
# Environment:
#   FRESH_DEBIAN_ROOT     where the chroot lives (default /var/tmp/fresh-deb12; not in the repo)
#   FRESH_DEBIAN_MIRROR   Debian mirror (default http://deb.debian.org/debian)
#   FRESH_DEBIAN_PORT     the demo agent's HTTP port inside (default 24646; not 14646, where
#                         scripts/v2-guest.sh forwards its guest's Nomad)
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="${FRESH_DEBIAN_ROOT:-/var/tmp/fresh-deb12}"
ROOT="${ROOT%/}"
MIRROR="${FRESH_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
NODE_FROM="${FRESH_DEBIAN_NODE:-host}"
GO_FROM="${FRESH_DEBIAN_GO:-host}"
NOMAD_CACHE_FROM="${FRESH_DEBIAN_NOMAD_CACHE:-none}"
HOST_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/nomad-driver-nix"
DEMO_PORT="${FRESH_DEBIAN_PORT:-24646}"
TIMES="$ROOT.times"
CLONE=/opt/nomad-driver-nix

log() { printf 'fresh-debian: %s\n' "$*" >&2; }
# the home of root inside the fresh root, from its own passwd (where Nomad's build cache lives)
root_home() { awk -F: '$1 == "root" { print $6 }' "$ROOT/etc/passwd"; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap, namespaces and mounts need it)"
case "$ROOT" in /|/var|/var/tmp|/tmp|"") die "FRESH_DEBIAN_ROOT=$ROOT is not a dedicated directory" ;; esac

# timed NAME CMD...: runs CMD, prints and records how long it took
timed() {
  local name=$1 start=$SECONDS rc=0
  shift
  "$@" || rc=$?
  local took=$((SECONDS - start))
  printf '%s\t%dm%02ds\t%s\n' "$(date -u +%FT%TZ)" $((took / 60)) $((took % 60)) "$name$([ "$rc" -eq 0 ] || echo " (failed: exit $rc)")" | tee -a "$TIMES" >&2
  return "$rc"
}

mounted() { grep -q " $1 " /proc/self/mountinfo; }

create() {
  [ ! -e "$ROOT" ] || die "$ROOT exists; run: $0 destroy"
  command -v mmdebstrap >/dev/null || { log "installing mmdebstrap"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >&2; }
  : >"$TIMES"
  log "mmdebstrap bookworm into $ROOT"
  timed "mmdebstrap --variant=important bookworm" \
    mmdebstrap --quiet --variant=important --include=ca-certificates bookworm "$ROOT" "$MIRROR"
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
    chroot "$ROOT" update-ca-certificates >/dev/null 2>&1
  fi
  if [ "$NODE_FROM" = host ]; then
    command -v node >/dev/null || die "FRESH_DEBIAN_NODE=host but the host has no node"
    log "copying the host's Node.js $(node --version) (package nodejs) in"
    # regular files and symlinks of the package, not its directories (those exist or are made)
    dpkg -L nodejs | while read -r f; do if [ -f "$f" ] || [ -L "$f" ]; then printf '%s\n' "$f"; fi; done |
      tar -C / -cf - --no-recursion -T - | tar -C "$ROOT" -xf -
    # npm as it is now (it may have been updated after the package was installed)
    rm -rf "$ROOT/usr/lib/node_modules/npm"
    cp -a /usr/lib/node_modules/npm "$ROOT/usr/lib/node_modules/npm"
  fi
  log "cloning $REPO (HEAD: $(git -C "$REPO" log -1 --format='%h %s')) to $CLONE"
  git clone --quiet "$REPO" "$ROOT$CLONE"
  [ ! -e "$ROOT/nix" ] || die "the chroot has a /nix already"
  log "created $ROOT"
}

# The chroot runs in a mount namespace of its own whose root is the chroot (pivot_root), not
# under chroot(2): the kernel refuses to create user namespaces from a chrooted process, and
# bubblewrap (the default runtime) starts every task in one. The namespace is kept in
# "$NS/mnt" (a bind mount of it) between commands; its mounts (the chroot on itself so "/" is
# a mount point, /proc, /sys with the cgroup hierarchies, /dev, a tmpfs /run, and Go) are not
# seen by the host, and go away with it.
NS="$ROOT.ns"

ns_ready() { [ -e "$NS/mnt" ] && mounted "$NS/mnt"; }

mount_all() {
  [ -d "$ROOT/etc" ] || die "no chroot at $ROOT; run: $0 create"
  ns_ready && return 0
  if [ "$GO_FROM" = host ]; then
    [ -x /usr/local/go/bin/go ] || die "FRESH_DEBIAN_GO=host but the host has no /usr/local/go"
    mkdir -p "$ROOT/usr/local/go"
  fi
  if [ "$NOMAD_CACHE_FROM" = host ]; then
    [ -d "$HOST_CACHE" ] || die "FRESH_DEBIAN_NOMAD_CACHE=host but there is no $HOST_CACHE"
    mkdir -p "$ROOT$(root_home)/.cache/nomad-driver-nix"
  fi
  mkdir -p "$NS" "$ROOT/.oldroot"
  mounted "$NS" || { mount --bind "$NS" "$NS"; mount --make-private "$NS"; }
  touch "$NS/mnt"
  unshare --mount="$NS/mnt" --propagation=private true
  nsenter --mount="$NS/mnt" /bin/sh -euc '
    root=$1 go=$2 cache=$3 home=$4
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs -o mode=0755 tmpfs "$root/run"
    if [ "$go" = host ]; then
      mount --bind /usr/local/go "$root/usr/local/go"
      mount -o remount,bind,ro "$root/usr/local/go"
    fi
    if [ -n "$cache" ]; then
      mount --bind "$cache" "$root$home/.cache/nomad-driver-nix"
      mount -o remount,bind,ro "$root$home/.cache/nomad-driver-nix"
    fi
    cd "$root"
    pivot_root . .oldroot
    exec /bin/umount -l /.oldroot
  ' sh "$ROOT" "$GO_FROM" "$([ "$NOMAD_CACHE_FROM" = host ] && printf '%s' "$HOST_CACHE")" "$(root_home)"
}

# inside CMD: runs a bash command line in the clone, with a clean environment
inside() {
  mount_all
  local env=(HOME="$(root_home)" USER=root LOGNAME=root LANG=C.UTF-8 TERM="${TERM:-dumb}"
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    NOMAD_DRIVER_NIX_DEMO_PORT="$DEMO_PORT")
  local v
  for v in NODE_EXTRA_CA_CERTS SSL_CERT_FILE CURL_CA_BUNDLE GIT_SSL_CAINFO; do
    [ -z "${!v:-}" ] || env+=("$v=${!v}")
  done
  # setns(2) into the namespace puts us at its root: the chroot
  nsenter --mount="$NS/mnt" /usr/bin/env -i "${env[@]}" /bin/bash -c "cd $CLONE && $1"
}

# processes in the namespace (the demo agent, the plugin, nix builds, tasks that kept it)
ns_pids() {
  local want p
  want="$(stat -L -c %i "$NS/mnt")"
  for p in /proc/[0-9]*; do
    [ "$(stat -L -c %i "$p/ns/mnt" 2>/dev/null)" = "$want" ] && printf '%s\n' "${p#/proc/}"
  done
  return 0
}

stop_all() {
  [ -d "$ROOT/etc" ] || return 0
  if ns_ready; then
    if [ -f "$ROOT/var/lib/nomad-driver-nix-demo/agent.pid" ]; then inside './scripts/demo.sh stop' || true; fi
    local pids
    pids="$(ns_pids)"
    if [ -n "$pids" ]; then
      log "stopping processes left in the chroot's namespace: $(echo $pids)"
      kill -TERM $pids 2>/dev/null || true
      sleep 3
      pids="$(ns_pids)"
      [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    fi
    umount "$NS/mnt"
  fi
  if mounted "$NS"; then umount "$NS"; fi
  rm -rf "$NS"
  if awk -v r="$ROOT" '$5 == r || index($5, r "/") == 1' /proc/self/mountinfo | grep -q .; then
    die "mounts below $ROOT remain on the host"
  fi
}

demo() {
  log "./scripts/demo.sh in the chroot"
  timed "demo.sh (fresh: setup, builds, agent, web job answers)" inside './scripts/demo.sh'
  timed "demo.sh again (everything installed)" inside './scripts/demo.sh' >/dev/null
  log "./scripts/demo.sh stop in the chroot"
  timed "demo.sh stop" inside './scripts/demo.sh stop'
}

case "${1:-}" in
  create) create ;;
  update) git -C "$ROOT$CLONE" pull --quiet --ff-only; log "clone at $(git -C "$ROOT$CLONE" log -1 --format='%h %s')" ;;
  demo) demo ;;
  run) shift; [ "$#" -gt 0 ] || die "usage: $0 run CMD..."; timed "run $*" inside "$*" ;;
  stop) stop_all ;;
  destroy) stop_all; rm -rf --one-file-system "$ROOT" "$TIMES"; log "removed $ROOT" ;;
  all) create; demo; stop_all; rm -rf --one-file-system "$ROOT" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
