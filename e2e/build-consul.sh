#!/usr/bin/env bash
# Build (once) and cache a real HashiCorp Consul agent binary for the e2e tests (Nomad only
# runs `check { type = "script" }` for services with `provider = "consul"`).
#
# Usage: e2e/build-consul.sh           -> prints the absolute path of the binary
#
# Environment:
#   CONSUL_VERSION           Consul release to build (default 1.22.7; "v" prefix optional)
#   NOMAD_DRIVER_NIX_CACHE   cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/nomad-driver-nix)
#   CONSUL_NESTED_VERSIONS   optional: space-separated MODULE=VERSION pins for Consul's nested
#                            modules (api, sdk, …), see step 2 below; default: the pins known
#                            to build the default version, else the versions go.mod requires
#
# Usage: … --cached                    -> prints the path if it is built, else exits 1 (builds nothing)
#
# stdout: ONLY the absolute path of the binary (last line). Progress goes to stderr.
# The binary lives at "$CACHE/consul-$CONSUL_VERSION/consul"; if it is there and
# `consul version` runs, we exit immediately (warm path, ~tens of ms).
#
# Requires a Go toolchain (>= the `go` line of Consul's go.mod: 1.25 for 1.22.x) on PATH and
# access to the Go module proxy configured by GOPROXY (the default is fine).
set -euo pipefail

CONSUL_VERSION="${CONSUL_VERSION:-1.22.7}"
CONSUL_VERSION="${CONSUL_VERSION#v}"
TOOL=consul
TOOL_VERSION="$CONSUL_VERSION"
# cache, lock, scratch dir, Go settings; exits here printing the cached binary when there is one
# shellcheck source=e2e/go-build-cache.sh
source "$(dirname "$0")/go-build-cache.sh"

CONSUL_MOD="github.com/hashicorp/consul"

# 1. Fetch the Consul source via the module proxy. `go install consul@vX` refuses to work
#    because Consul's go.mod has replace directives, so we download the module, copy it to
#    a writable dir and build it as the main module.
fetch_main_module "$CONSUL_MOD" "$CONSUL_VERSION"
CONSUL_COMMIT=$MOD_COMMIT
CONSUL_TIME=$MOD_TIME

# 2. Provide the nested modules. Consul's go.mod says
#      replace github.com/hashicorp/consul/api => ./api   (and envoyextensions, proto-public,
#      sdk, troubleshoot)
#    but each of those is a module of its own, so NOT part of the consul module zip. Each is
#    also published on its own (github.com/hashicorp/consul/api v1.3x, …): we fetch one and
#    drop a writable copy at the replace target, keeping go.mod untouched. Which version:
#      a) a pin from CONSUL_NESTED_VERSIONS, or for the default Consul version the pins below;
#      b) else the version go.mod `require`s. Because of the replace, that line is not kept
#         up to date: 1.22.7 requires api v1.33.7, which lacks ACLToken.Name and
#         ACLAuthMethod.TokenNameFormat that the release's own api/ has (compile error in
#         command/acl/…). api v1.34.1 is the first published api with both; diffed against
#         v1.33.7 it only adds fields and methods (the HTTP client side of the CLI), so the
#         agent itself is unaffected. The other four build and run at their required versions.
#    (A pseudo-version at the release commit would be exact, but the proxy's .info for
#    consul tags carries no commit hash to derive it from.)
DEFAULT_PINS=""
[[ "$CONSUL_VERSION" == "1.22.7" ]] && DEFAULT_PINS="github.com/hashicorp/consul/api=v1.34.1"
PINS="${CONSUL_NESTED_VERSIONS-$DEFAULT_PINS}"
pinned_version() {
  local pin
  for pin in $PINS; do
    if [[ "${pin%%=*}" == "$1" ]]; then printf '%s\n' "${pin#*=}"; return 0; fi
  done
  return 0
}
REPLACES="$(cd "$SRC" && go mod edit -json | awk '
  /"Replace": \[/ { inrep = 1 } /^\t\]/ { inrep = 0 }
  inrep && /"Old": \{/ { side = "old" }
  inrep && /"New": \{/ { side = "new" }
  inrep && /"Path":/ {
    gsub(/[",]/, "", $2)
    if (side == "old") old = $2; else { print old " " $2 }
  }
')" || die "cannot read the replace directives of consul's go.mod"
while read -r mod target; do
  [[ -n "$mod" ]] || continue
  case "$target" in ./*) ;; *) continue ;; esac  # only local (nested-module) replaces
  [[ -f "$SRC/$target/go.mod" ]] && continue       # the zip had it after all
  ver="$(pinned_version "$mod")"
  [[ -n "$ver" ]] || ver="$(cd "$SRC" && go mod edit -json | awk -v m="$mod" '
    /"Require": \[/ { inreq = 1 } /^\t\]/ { inreq = 0 }
    inreq && /"Path":/ { gsub(/[",]/, "", $2); p = $2 }
    inreq && /"Version":/ { gsub(/[",]/, "", $2); if (p == m) { print $2; exit } }
  ')"
  [[ -n "$ver" ]] || die "consul's go.mod replaces $mod but requires no version of it"
  go mod download "$mod@$ver" >&2 || die "cannot download $mod@$ver (not served by GOPROXY?)"
  dir="$(go list -m -f '{{.Dir}}' "$mod@$ver")"
  [[ -n "$dir" && -f "$dir/go.mod" ]] || die "module dir for $mod@$ver not found"
  log "using $mod@$ver for $target"
  rm -rf "${SRC:?}/$target"
  mkdir -p "$(dirname "$SRC/$target")"
  cp -R "$dir" "$SRC/$target"
  chmod -R u+w "$SRC/$target"
done <<<"$REPLACES"

# 3. Build the root `main` package. CGO_ENABLED=0 -> static binary; the web UI's prebuilt
#    assets are in the zip (agent/uiserver/dist). -trimpath and the -X stamps mirror
#    upstream's Makefile so that `consul version` reports the release date (and commit, when
#    the proxy's .info names one). Cold build: ~8 min on 2 cores (modules ~1 min more).
LDFLAGS=""
[[ -n "$CONSUL_COMMIT" ]] && LDFLAGS+=" -X $CONSUL_MOD/version.GitCommit=${CONSUL_COMMIT:0:8}"
[[ -n "$CONSUL_TIME" ]] && LDFLAGS+=" -X $CONSUL_MOD/version.BuildDate=$CONSUL_TIME"

TMP_BIN="$WORK/consul"
log "building consul v$CONSUL_VERSION (go $(go env GOVERSION); first build takes several minutes)"
(cd "$SRC" && go build -trimpath -ldflags "${LDFLAGS# }" -o "$TMP_BIN" .) >&2 ||
  die "go build failed"

"$TMP_BIN" version >/dev/null 2>&1 || die "built binary does not run"
# Atomic publish: rename within the same filesystem.
mv -f "$TMP_BIN" "$BIN"
log "built $("$BIN" version | head -n1) -> $BIN"
printf '%s\n' "$BIN"
