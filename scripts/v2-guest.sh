#!/usr/bin/env bash
# A Debian 12 qemu guest with systemd on a unified cgroup hierarchy (cgroups v2), for testing
# the driver where it is used most (issue 15), from a host that runs cgroups v1 and cannot
# switch. The guest runs under qemu's software emulation (TCG): 15-40x slower than the host,
# so everything is built on the host and shared in over 9p.
#
#   scripts/v2-guest.sh build        build the guest image (cached by content, see below)
#   scripts/v2-guest.sh boot         boot it (fresh: writes go to a throw-away overlay), wait
#                                    for ssh and systemd, mount the shares
#   scripts/v2-guest.sh run CMD...   run a shell command line in the guest as root (exit status
#                                    and output are the command's); stdin is passed through
#   scripts/v2-guest.sh test [FLAGS]  build, boot, run the task cgroup's real-kernel test in
#                                    the guest, then the suite dist/e2e-v2 (node --test FLAGS,
#                                    e.g. --test-name-pattern=...) against it, stop; timed
#   scripts/v2-guest.sh sync         copy the plugin's files to /opt/nomad-driver-nix in the guest
#   scripts/v2-guest.sh ssh-args     the ssh command (one word a line) reaching the guest
#   scripts/v2-guest.sh http         the host address of the guest's Nomad HTTP API
#   scripts/v2-guest.sh stop         power the guest off (SIGKILL after a timeout)
#   scripts/v2-guest.sh status       running or not, and the ports
#
# The image: mmdebstrap (minbase + systemd, udev, openssh-server, nix-bin, bubblewrap, runc, tini,
# busybox-static), the Debian kernel package of the image's release unpacked into it with
# dpkg-deb -x (never installed, on the host or the guest), the host's Node.js (Debian 12 ships
# 18, the plugin needs 20) copied in as fresh-debian-check.sh does, an ssh key made for it, and
# a busybox initramfs that loads virtio_blk and ext4 and switches to the root on /dev/vda (an
# ext4 image written with mkfs.ext4 -d, no mount needed). Kernel command line:
# systemd.unified_cgroup_hierarchy=1, serial console (written to $STATE/console.log).
#
# Cached under ${XDG_CACHE_HOME:-~/.cache}/nomad-driver-nix/v2-guest/<hash>, where <hash> is
# the SHA-256 of the build code below, the package list, the mirror and the host's Node.js
# version; a change to any of them builds a new image (old ones are left: delete the
# directory). The guest's shares, read-only: this checkout at its host path (its built dist/
# and build/), the node_modules it links to, and the Nomad binary e2e/build-nomad.sh built
# (at /opt/v2-guest/cache, for NOMAD_DRIVER_NIX_CACHE).
#
# Every step has a hard timeout: a TCG guest can hang rather than fail. The guest itself is
# killed after V2_GUEST_LIFETIME seconds (default 5400) whatever happens.
#
# Environment: V2_GUEST_SSH_PORT (default 10022), V2_GUEST_HTTP_PORT (default 14646: the
# guest's 4646), V2_GUEST_MEMORY_MB (3072), V2_GUEST_CPUS (2), V2_GUEST_MIRROR
# (http://deb.debian.org/debian), V2_GUEST_STATE (runtime directory, default
# /run/nomad-driver-nix-v2-guest), V2_GUEST_TIMEOUT (seconds for one `run`, default 900).
# `test` uses a new state directory and ports the kernel picks as free unless these are set,
# and exports them. `boot` refuses ports in use, and checks that ssh reaches the guest it
# booted (a token on its kernel command line) and that qemu holds both forwarded ports.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/nomad-driver-nix"
MIRROR="${V2_GUEST_MIRROR:-http://deb.debian.org/debian}"
SSH_PORT="${V2_GUEST_SSH_PORT:-10022}"
HTTP_PORT="${V2_GUEST_HTTP_PORT:-14646}"
MEMORY_MB="${V2_GUEST_MEMORY_MB:-3072}"
CPUS="${V2_GUEST_CPUS:-2}"
STATE="${V2_GUEST_STATE:-/run/nomad-driver-nix-v2-guest}"
LIFETIME="${V2_GUEST_LIFETIME:-5400}"
RUN_TIMEOUT="${V2_GUEST_TIMEOUT:-900}"
PACKAGES=systemd-sysv,udev,dbus,openssh-server,nix-bin,bubblewrap,runc,tini,busybox-static,iproute2,procps,kmod,psmisc,util-linux,ca-certificates,less

log() { printf 'v2-guest: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap and mkfs need it)"

# timed NAME CMD...: runs CMD, prints how long it took (a failure exits, set -e)
timed() {
  local name=$1 start ms
  start=$(date +%s%N)
  shift
  # not `"$@" || ...`: that would switch errexit off inside the functions it runs
  "$@"
  ms=$((($(date +%s%N) - start) / 1000000))
  printf 'v2-guest: %s took %d.%d s\n' "$name" $((ms / 1000)) $((ms % 1000 / 100)) >&2
}

# need TOOL:PACKAGE...: installs the packages of the tools that are missing (nothing else)
need() {
  local missing=() pair
  for pair in "$@"; do command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# ---- build (everything from here to the end marker is part of the image's hash) ----

# make_root DIR: the guest's root filesystem
make_root() {
  local root=$1 key=$2
  # the kernel package linux-image-amd64 points at, downloaded with the image's apt
  # (not into /tmp: mmdebstrap empties it after the hooks)
  V2_GUEST_KERNEL_HOOK='mkdir -p /var/cache/v2-guest && cd /var/cache/v2-guest && apt-get download -q=2 "$(apt-cache depends linux-image-amd64 | awk "/Depends: linux-image-[0-9]/ {print \$2; exit}")"' \
    timeout 1800 mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
    --customize-hook='chroot "$1" sh -c "$V2_GUEST_KERNEL_HOOK"' \
    bookworm "$root" "$MIRROR"
  local deb
  deb="$(ls "$root"/var/cache/v2-guest/linux-image-*.deb)"
  # dpkg-deb -x, keeping the merged-/usr symlinks (/lib -> usr/lib) that plain tar replaces
  dpkg-deb --fsys-tarfile "$deb" | tar -C "$root" --keep-directory-symlink -xf -
  rm -rf "$root/var/cache/v2-guest"
  local kver
  kver="$(ls "$root/lib/modules")"
  depmod -b "$root" "$kver"
  # the host's Node.js: the files of its nodejs package and npm as it is now
  dpkg -L nodejs | while read -r f; do if [ -f "$f" ] || [ -L "$f" ]; then printf '%s\n' "$f"; fi; done |
    tar -C / -cf - --no-recursion -T - | tar -C "$root" -xf -
  # ssh: root with the generated key only
  install -d -m 0700 "$root/root"/.ssh
  install -m 0600 "$key.pub" "$root/root"/.ssh/authorized_keys
  printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n' >"$root/etc/ssh/sshd_config.d/v2-guest.conf"
  echo v2-guest >"$root/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 v2-guest\n' >"$root/etc/hosts"
  printf '/dev/vda / ext4 rw,noatime 0 1\n' >"$root/etc/fstab"
  # slirp's DHCP, through systemd-networkd
  printf '[Match]\nName=en*\n\n[Network]\nDHCP=ipv4\n' >"$root/etc/systemd/network/10-slirp.network"
  chroot "$root" systemctl enable systemd-networkd >/dev/null 2>&1
  chroot "$root" systemctl mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 || true
  passwd -R "$root" -d root >/dev/null
  # Nix as root without a daemon needs the nixbld group and members (measured-facts.md)
  chroot "$root" sh -c 'groupadd -r nixbld; for i in 1 2 3 4; do useradd -r -g nixbld -G nixbld -d /var/empty -s /usr/sbin/nologin "nixbld$i"; done'
  mkdir -p "$root/etc/nix"
  printf 'substituters =\nbuild-users-group = nixbld\n' >"$root/etc/nix/nix.conf"
  # the 9p shares are mounted by `boot`, at paths chosen then
  printf '9p\n9pnet_virtio\n' >"$root/etc/modules-load.d/9p.conf"
}

# make_initramfs ROOT OUT: busybox, virtio_blk and ext4 (with their dependencies), an init
# that loads them and switches to /dev/vda
make_initramfs() {
  local root=$1 out=$2 kver dir
  kver="$(ls "$root/lib/modules")"
  dir="$(mktemp -d)"
  mkdir -p "$dir"/{bin,dev,proc,sys,newroot}
  cp /bin/busybox "$dir/bin/busybox"
  local mod
  for mod in virtio_pci virtio_blk ext4; do
    modprobe -d "$root" -S "$kver" --show-depends "$mod" 2>/dev/null | awk '$1 == "insmod" {print $2}'
  done | awk '!seen[$0]++' | while read -r ko; do
    mkdir -p "$dir$(dirname "${ko#"$root"}")"
    cp "$ko" "$dir${ko#"$root"}"
    printf '%s\n' "${ko#"$root"}" >>"$dir/modules"
  done
  cat >"$dir/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
while read -r ko; do insmod "$ko" 2>/dev/null; done </modules
for _ in $(seq 1 100); do [ -b /dev/vda ] && break; sleep 0.1; done
mount -t ext4 -o rw /dev/vda /newroot || { echo "v2-guest initramfs: cannot mount /dev/vda"; exec sh; }
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
INIT
  chmod 0755 "$dir/init"
  (cd "$dir" && find . | cpio --quiet -o -H newc | gzip -1) >"$out"
  rm -rf "$dir"
}

build_image() {
  local out=$1 tmp=$1.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  ssh-keygen -q -t ed25519 -N '' -C v2-guest -f "$tmp/id_ed25519"
  timed "mmdebstrap + kernel + node" make_root "$tmp/root" "$tmp/id_ed25519"
  cp "$(ls "$tmp/root"/boot/vmlinuz-*)" "$tmp/vmlinuz"
  timed "initramfs" make_initramfs "$tmp/root" "$tmp/initrd.gz"
  timed "mkfs.ext4 -d" mkfs.ext4 -q -F -L v2-guest -d "$tmp/root" "$tmp/root.ext4" 6G
  rm -rf "$tmp/root"
  mv "$tmp" "$out"
}

# ---- end of the hashed build code ----

image_hash() {
  {
    declare -f make_root make_initramfs build_image
    printf '%s\n' "$PACKAGES" "$MIRROR" "$(node --version 2>/dev/null)"
  } | sha256sum | cut -c1-16
}
IMAGE="$CACHE_ROOT/v2-guest/$(image_hash)"

build() {
  # what booting needs, also for a cached image (a CI cache restores only the image)
  need qemu-system-x86_64:qemu-system-x86 ssh:openssh-client ss:iproute2 curl:curl
  if [ -f "$IMAGE/root.ext4" ]; then
    log "image cached at $IMAGE"
    return 0
  fi
  need mmdebstrap:mmdebstrap mkfs.ext4:e2fsprogs modprobe:kmod cpio:cpio busybox:busybox-static
  command -v node >/dev/null || die "the host has no node (the guest gets the host's Node.js)"
  mkdir -p "$(dirname "$IMAGE")"
  log "building the guest image into $IMAGE"
  timed "image build" build_image "$IMAGE"
}

# free_port: a TCP port of 127.0.0.1 nothing listens on now (the kernel's choice)
free_port() {
  node -e 'const s = require("node:net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}

pid() { cat "$STATE/qemu.pid" 2>/dev/null || true; }
running() { local p; p="$(pid)"; [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

ssh_cmd() {
  printf '%s\n' ssh -q -i "$IMAGE/id_ed25519" -p "$SSH_PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR -o ConnectTimeout=20 -o ServerAliveInterval=15 -o ServerAliveCountMax=8 -o BatchMode=yes \
    -o ControlMaster=auto -o "ControlPath=$STATE/ssh-%p.sock" -o ControlPersist=300 root@127.0.0.1
}

# in_guest TIMEOUT CMD: a command line in the guest, with a hard timeout
in_guest() {
  local t=$1
  shift
  local args
  mapfile -t args < <(ssh_cmd)
  timeout --kill-after=10 "$t" "${args[@]}" "$*"
}

# the host directories shared into the guest: tag, host path, guest path
shares() {
  local nomad modules
  nomad="$(NOMAD_DRIVER_NIX_CACHE="$CACHE_ROOT" bash "$REPO/e2e/build-nomad.sh")"
  modules="$(realpath "$REPO/node_modules")"
  printf '%s\t%s\t%s\n' repo "$REPO" "$REPO"
  [ "$modules" = "$REPO/node_modules" ] || printf '%s\t%s\t%s\n' modules "$modules" "$modules"
  printf '%s\t%s\t%s\n' nomad "$(dirname "$nomad")" "/opt/v2-guest/cache/$(basename "$(dirname "$nomad")")"
}

boot() {
  build
  if running; then
    log "already running (pid $(pid))"
    return 0
  fi
  mkdir -p "$STATE"
  # the ports must be free: qemu's forward would fail, and ssh or the suite could reach another
  # guest (or agent) listening there
  local port
  for port in "$SSH_PORT" "$HTTP_PORT"; do
    [ -z "$(ss -Hltn "sport = :$port")" ] || die "port 127.0.0.1:$port is in use ($(ss -Hltnp "sport = :$port" | grep -o 'users:.*' || true)); set V2_GUEST_SSH_PORT / V2_GUEST_HTTP_PORT to free ports"
  done
  # a token on the kernel command line: ssh must reach this guest, not one booted by another run
  local token
  token="$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  local virtfs=() tag host guest
  while IFS=$'\t' read -r tag host guest; do
    virtfs+=(-virtfs "local,path=$host,mount_tag=$tag,security_model=none,readonly=on")
  done < <(shares)
  : >"$STATE/console.log"
  # the guest dies with its lifetime, whatever happens
  setsid timeout --kill-after=10 "$LIFETIME" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -smp "$CPUS" -m "$MEMORY_MB" \
    -display none -serial "file:$STATE/console.log" -monitor none -no-reboot \
    -kernel "$IMAGE/vmlinuz" -initrd "$IMAGE/initrd.gz" \
    -append "console=ttyS0 root=/dev/vda rw panic=-1 systemd.unified_cgroup_hierarchy=1 systemd.show_status=0 net.ifnames=1 v2guest.token=$token" \
    -drive "file=$IMAGE/root.ext4,if=virtio,format=raw,snapshot=on" \
    -nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$SSH_PORT-:22,hostfwd=tcp:127.0.0.1:$HTTP_PORT-:4646" \
    "${virtfs[@]}" </dev/null >"$STATE/qemu.log" 2>&1 &
  echo $! >"$STATE/qemu.pid"
  local start=$SECONDS answer
  until answer="$(in_guest 30 'cat /proc/cmdline' 2>/dev/null)"; do
    running || die "qemu exited; see $STATE/qemu.log and $STATE/console.log"
    [ $((SECONDS - start)) -lt 300 ] || { stop; die "no ssh within 300 s; see $STATE/console.log"; }
    sleep 2
  done
  case " $answer " in
    *" v2guest.token=$token "*) ;;
    *) stop; die "ssh on port $SSH_PORT reached another machine (its kernel command line lacks this boot's token)" ;;
  esac
  # both forwards are this qemu's (a process that took the HTTP port since the check above
  # would otherwise answer the suite)
  local qemu
  qemu="$(pgrep -P "$(pid)" | head -n 1)"
  for port in "$SSH_PORT" "$HTTP_PORT"; do
    ss -Hltnp "sport = :$port" | grep -q "pid=$qemu," || { stop; die "port 127.0.0.1:$port is not qemu's (pid $qemu): $(ss -Hltnp "sport = :$port")"; }
  done
  log "ssh answered after $((SECONDS - start)) s"
  in_guest 300 'systemctl is-system-running --wait >/dev/null || systemctl --failed --no-legend; stat -fc %T /sys/fs/cgroup'
  local mounts=""
  while IFS=$'\t' read -r tag host guest; do
    mounts+="mkdir -p '$guest' && mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose '$tag' '$guest' && "
  done < <(shares)
  in_guest 120 "${mounts}true"
  log "booted in $((SECONDS - start)) s (ssh port $SSH_PORT, Nomad HTTP on 127.0.0.1:$HTTP_PORT)"
}

# sync: copies the plugin's files (package.json, dist/, proto/, scripts/, plugin-config/, the
# Nomad build scripts and the production node_modules) to /opt/nomad-driver-nix on the guest's
# own disk: node loading ~500 modules over 9p under TCG took longer than the 60 s go-plugin
# gives a plugin to start
sync_checkout() {
  local modules deps=()
  modules="$(realpath "$REPO/node_modules")"
  mapfile -t deps < <(cd "$REPO" && npm ls --omit=dev --all --parseable 2>/dev/null | tail -n +2 | sed "s|^$REPO/node_modules/||; s|^$modules/||" | sort -u)
  in_guest 120 'rm -rf /opt/nomad-driver-nix && mkdir -p /opt/nomad-driver-nix/node_modules'
  tar -C "$REPO" -cf - package.json dist proto scripts plugin-config e2e/build-nomad.sh e2e/go-build-cache.sh |
    in_guest 600 'tar -C /opt/nomad-driver-nix -xf -'
  tar -C "$modules" -cf - "${deps[@]}" | in_guest 600 'tar -C /opt/nomad-driver-nix/node_modules -xf -'
  log "copied the plugin's files and ${#deps[@]} packages to /opt/nomad-driver-nix"
}

stop() {
  running || { rm -f "$STATE/qemu.pid"; return 0; }
  local p
  p="$(pid)"
  in_guest 20 'systemctl poweroff' >/dev/null 2>&1 || true
  for _ in $(seq 1 30); do kill -0 "$p" 2>/dev/null || break; sleep 1; done
  if kill -0 "$p" 2>/dev/null; then
    log "the guest did not power off in 30 s; killing qemu"
    kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
  fi
  rm -f "$STATE/qemu.pid" "$STATE"/ssh-*.sock
  log "stopped"
}

case "${1:-}" in
  build) build ;;
  boot) timed boot boot ;;
  run)
    shift
    [ "$#" -gt 0 ] || die "usage: $0 run CMD..."
    running || die "the guest is not running; run: $0 boot"
    in_guest "$RUN_TIMEOUT" "$*"
    ;;
  test)
    # the whole v2 suite: image, boot, e2e-v2 through the guest's agent, power off
    shift
    [ -f "$REPO/dist/e2e-v2/cgroups-v2.test.js" ] || die "run npm run build first"
    # the suite installs the single-file plugin from the release tarball (over 9p: one file)
    compgen -G "$REPO/build/release/nomad-driver-nix-*.tar.gz" >/dev/null || die "run npm run package first"
    # a guest of its own: its own state directory and free ports unless they are given, so a
    # guest another run left (or boots meanwhile) is never the one tested; the suite's
    # `run` calls find them in the environment
    own_state=false
    if [ -z "${V2_GUEST_STATE:-}" ]; then
      STATE="$(mktemp -d /run/nomad-driver-nix-v2-guest.XXXXXX)"
      export V2_GUEST_STATE="$STATE"
      own_state=true
    fi
    [ -n "${V2_GUEST_SSH_PORT:-}" ] || SSH_PORT="$(free_port)"
    [ -n "${V2_GUEST_HTTP_PORT:-}" ] || HTTP_PORT="$(free_port)"
    export V2_GUEST_SSH_PORT="$SSH_PORT" V2_GUEST_HTTP_PORT="$HTTP_PORT"
    # the guest is powered off whatever happens; its console log is kept when something failed
    finish() {
      local status=$?
      stop
      if [ "$status" -ne 0 ]; then log "failed (exit $status); the guest's console: $STATE/console.log"
      elif [ "$own_state" = true ]; then rm -rf "$STATE"; fi
    }
    trap finish EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    timed build build
    timed boot boot
    # the task cgroup against the guest's real v2 kernel (dist/ over 9p), then the suite
    timed "task cgroup (v2 kernel)" in_guest 900 "cd '$REPO' && node --test --test-reporter=spec dist/src/cgroup/task-cgroup-host-v2.test.js"
    timed "v2 suite" timeout --kill-after=30 "${V2_GUEST_SUITE_TIMEOUT:-4800}" \
      node --test --test-reporter=spec --test-concurrency=1 "$@" "$REPO"/dist/e2e-v2/*.test.js
    ;;
  sync) running || die "the guest is not running; run: $0 boot"; timed sync sync_checkout ;;
  ssh-args) ssh_cmd ;;
  http) printf 'http://127.0.0.1:%s\n' "$HTTP_PORT" ;;
  stop) stop ;;
  status) if running; then echo "running (pid $(pid)), ssh 127.0.0.1:$SSH_PORT, http 127.0.0.1:$HTTP_PORT, image $IMAGE"; else echo "not running"; exit 1; fi ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
