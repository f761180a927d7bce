#!/usr/bin/env bash
# Build (once) and cache a real HashiCorp Nomad agent binary for the e2e tests.
#
# Usage: e2e/build-nomad.sh            -> prints the absolute path of the binary
#
# Environment:
#   NOMAD_VERSION            Nomad release to build (default 1.11.3; "v" prefix optional)
#   NOMAD_DRIVER_NIX_CACHE   cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/nomad-driver-nix)
#   NOMAD_API_VERSION        optional: force the github.com/hashicorp/nomad/api module
#                            version used for the nested ./api module (see below)
#
# stdout: ONLY the absolute path of the binary (last line). Progress goes to stderr.
# The binary lives at "$CACHE/nomad-$NOMAD_VERSION/nomad"; if it is there and
# `nomad version` runs, we exit immediately (warm path, ~tens of ms).
#
# Requires a Go toolchain (>= 1.26, see the api note below) on PATH and access to
# the Go module proxy configured by GOPROXY (the default is fine).
set -euo pipefail

log() { printf 'build-nomad: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

NOMAD_VERSION="${NOMAD_VERSION:-1.11.3}"
NOMAD_VERSION="${NOMAD_VERSION#v}"
CACHE="${NOMAD_DRIVER_NIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nomad-driver-nix}"
# The printed path must be absolute even if the caller passed a relative cache.
[[ "$CACHE" == /* ]] || CACHE="$PWD/$CACHE"
CACHE="$(realpath -m -- "$CACHE" 2>/dev/null || printf '%s' "$CACHE")"
OUT_DIR="$CACHE/nomad-$NOMAD_VERSION"
BIN="$OUT_DIR/nomad"

cached_ok() {
  [[ -x "$BIN" ]] && "$BIN" version >/dev/null 2>&1
}

# Fast path: no locking, no Go invocation.
if cached_ok; then
  printf '%s\n' "$BIN"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "go toolchain not found on PATH"
command -v flock >/dev/null 2>&1 || die "flock not found (util-linux)"

mkdir -p "$OUT_DIR"

# Serialise concurrent callers: the second one blocks here, then finds the
# finished binary on the re-check below and exits without building.
exec 9>"$OUT_DIR/.lock"
if ! flock -n 9; then
  log "another build of nomad $NOMAD_VERSION is running; waiting for its lock"
  flock 9
fi
if cached_ok; then
  printf '%s\n' "$BIN"
  exit 0
fi
rm -f "$BIN"  # present but broken (e.g. foreign/corrupt file): rebuild
# We hold the lock, so any leftover scratch dirs are from killed builds.
for stale in "$OUT_DIR"/.build.*; do
  [[ -e "$stale" ]] || continue
  chmod -R u+w "$stale" 2>/dev/null || true
  rm -rf "$stale"
done

# Scratch space lives inside the cache dir so the final `mv` is a same-filesystem
# rename (atomic): an interrupted build never leaves a half-written $BIN.
WORK="$(mktemp -d "$OUT_DIR/.build.XXXXXX")"
cleanup() {
  # Module-cache copies are read-only; make them removable first.
  chmod -R u+w "$WORK" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Hermetic-ish Go settings:
#  - GOWORK=off: never pick up a go.work from the caller's directory tree.
#  - GOFLAGS is replaced (not appended to) so a caller's -mod=vendor etc. can't
#    interfere. -mod=mod is REQUIRED: the ./api module we inject (see below) is
#    newer than the one Nomad's go.mod/go.sum were written against, so the build
#    must be allowed to update go.mod/go.sum (MVS bumps the `go` directive and
#    github.com/shoenig/test, a test-only helper; new sums come from GOSUMDB).
#    -buildvcs=false: the scratch dir is not a git checkout (and may sit inside
#    some unrelated repo if the cache was pointed there).
export GOWORK=off
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0

NOMAD_MOD="github.com/hashicorp/nomad"
API_MOD="github.com/hashicorp/nomad/api"

# `go mod download` / `go list -m` must run outside any module.
cd "$WORK"

# 1. Fetch the Nomad source via the module proxy. `go install nomad@vX` refuses
#    to work because Nomad's go.mod has replace directives, so we download the
#    module, copy it to a writable dir and build it as the main module.
log "downloading $NOMAD_MOD@v$NOMAD_VERSION from the Go module proxy"
go mod download "$NOMAD_MOD@v$NOMAD_VERSION" >&2 ||
  die "cannot download $NOMAD_MOD@v$NOMAD_VERSION (not served by GOPROXY?)"
IFS='|' read -r NOMAD_DIR NOMAD_COMMIT NOMAD_TIME < <(
  go list -m -f '{{.Dir}}|{{with .Origin}}{{.Hash}}{{end}}|{{with .Time}}{{.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' \
    "$NOMAD_MOD@v$NOMAD_VERSION")
[[ -n "$NOMAD_DIR" && -f "$NOMAD_DIR/go.mod" ]] || die "module dir for nomad not found"

SRC="$WORK/src"
cp -R "$NOMAD_DIR" "$SRC"
chmod -R u+w "$SRC"  # GOMODCACHE content is read-only

# 2. Provide ./api. Nomad's go.mod says `replace github.com/hashicorp/nomad/api
#    => ./api`, but api/ is a nested module, so it is NOT part of the nomad
#    module zip. We fetch the api module separately and drop a writable copy at
#    ./api, keeping Nomad's go.mod (including its other replace directives for
#    go-winio and hcl v1.0.1-nomad-1) untouched.
#    Candidates, first one the proxy serves wins:
#      a) $NOMAD_API_VERSION if set;
#      b) the api pseudo-version at the release tag's own commit -> byte-for-byte
#         the api/ tree of the release (works on proxy.golang.org);
#      c) a pinned, known-good later api (restricted proxies may answer 403
#         "not available" for (b)); diffed against v1.11.3's api/: only
#         additive API (new methods/fields) plus Go 1.26 modernisation
#         (`any`, maps.Copy, new(expr)) -- wire-compatible for the agent, but
#         it needs Go >= 1.26 to compile;
#      d) api@latest as a last resort.
API_CANDIDATES=()
[[ -n "${NOMAD_API_VERSION:-}" ]] && API_CANDIDATES+=("$NOMAD_API_VERSION")
[[ -n "$NOMAD_COMMIT" ]] && API_CANDIDATES+=("${NOMAD_COMMIT:0:12}")
API_CANDIDATES+=("v0.0.0-20260907080526-08ef8f3d26da" "latest")

API_DIR="" API_VER=""
for cand in "${API_CANDIDATES[@]}"; do
  if API_VER="$(go list -m -f '{{.Version}}' "$API_MOD@$cand" 2>/dev/null)" &&
     go mod download "$API_MOD@$API_VER" >/dev/null 2>&1; then
    API_DIR="$(go list -m -f '{{.Dir}}' "$API_MOD@$API_VER")"
    [[ -n "$API_DIR" && -f "$API_DIR/go.mod" ]] && break
  fi
  log "api candidate '$cand' not available from GOPROXY, trying next"
  API_DIR="" API_VER=""
done
[[ -n "$API_DIR" ]] || die "no usable $API_MOD version is served by GOPROXY"
log "using $API_MOD@$API_VER for ./api"
cp -R "$API_DIR" "$SRC/api"
chmod -R u+w "$SRC/api"

# 3. Build the real root `main` package (not a wrapper): the agent re-executes
#    its own binary for helpers such as `nomad logmon`/`nomad executor`.
#    CGO_ENABLED=0 -> static binary; no `-tags ui` (the web UI is stubbed).
#    -trimpath and the -X stamps mirror upstream's GNUmakefile so that
#    `nomad version` reports the release commit and date.
LDFLAGS=""
[[ -n "$NOMAD_COMMIT" ]] && LDFLAGS+=" -X $NOMAD_MOD/version.GitCommit=$NOMAD_COMMIT"
[[ -n "$NOMAD_TIME" ]] && LDFLAGS+=" -X $NOMAD_MOD/version.BuildDate=$NOMAD_TIME"

TMP_BIN="$WORK/nomad"
log "building nomad v$NOMAD_VERSION (go $(go env GOVERSION); first build takes several minutes)"
(cd "$SRC" && go build -trimpath -ldflags "${LDFLAGS# }" -o "$TMP_BIN" .) >&2 ||
  die "go build failed"

"$TMP_BIN" version >/dev/null 2>&1 || die "built binary does not run"
# Atomic publish: rename within the same filesystem.
mv -f "$TMP_BIN" "$BIN"
log "built $("$BIN" version | head -n1) -> $BIN"
printf '%s\n' "$BIN"
