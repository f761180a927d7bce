# Sourced by e2e/build-nomad.sh and e2e/build-consul.sh: the cache, lock and scratch-dir
# handling both share. The caller sets TOOL (binary name) and TOOL_VERSION before sourcing.
#
# After sourcing: log/die are defined; CACHE, OUT_DIR ("$CACHE/$TOOL-$TOOL_VERSION") and
# BIN ("$OUT_DIR/$TOOL") are set. When a working binary is cached, its path is printed and
# the caller exits 0 right here (warm path, no Go, no lock); with the caller's argument
# `--cached` it exits 1 when there is none, building nothing. Otherwise the caller holds the
# build lock, stale scratch dirs are gone, WORK is a fresh scratch dir inside OUT_DIR (so the
# final `mv` to $BIN is an atomic rename; removed on exit), the shell is in WORK, and Go is
# set up hermetically:
#  - GOWORK=off: never pick up a go.work from the caller's directory tree;
#  - GOFLAGS replaced (not appended to) so a caller's -mod=vendor etc. cannot interfere;
#    -mod=mod lets the build update go.mod/go.sum for the nested modules the callers inject
#    (new sums come from GOSUMDB); -buildvcs=false: the scratch dir is not a git checkout;
#  - CGO_ENABLED=0: static binaries; NOMAD_DRIVER_NIX_CGO=1 builds with cgo instead (the bench's
#    Nomad, whose exec driver needs cgo: give it its own NOMAD_DRIVER_NIX_CACHE).

log() { printf 'build-%s: %s\n' "$TOOL" "$*" >&2; }
die() { log "error: $*"; exit 1; }

CACHE="${NOMAD_DRIVER_NIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nomad-driver-nix}"
# The printed path must be absolute even if the caller passed a relative cache.
[[ "$CACHE" == /* ]] || CACHE="$PWD/$CACHE"
CACHE="$(realpath -m -- "$CACHE" 2>/dev/null || printf '%s' "$CACHE")"
OUT_DIR="$CACHE/$TOOL-$TOOL_VERSION"
BIN="$OUT_DIR/$TOOL"

cached_ok() {
  [[ -x "$BIN" ]] && "$BIN" version >/dev/null 2>&1
}

# Fast path: no locking, no Go invocation.
if cached_ok; then
  printf '%s\n' "$BIN"
  exit 0
fi
# `build-<tool>.sh --cached`: only look (e.g. `demo.sh stop`): no binary, no build, exit 1
if [[ "${1:-}" == --cached ]]; then
  exit 1
fi

command -v go >/dev/null 2>&1 || die "go toolchain not found on PATH"
command -v flock >/dev/null 2>&1 || die "flock not found (util-linux)"

mkdir -p "$OUT_DIR"

# Serialise concurrent callers: the second one blocks here, then finds the finished binary
# on the re-check below and exits without building.
exec 9>"$OUT_DIR/.lock"
if ! flock -n 9; then
  log "another build of $TOOL $TOOL_VERSION is running; waiting for its lock"
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

WORK="$(mktemp -d "$OUT_DIR/.build.XXXXXX")"
cleanup() {
  # Module-cache copies are read-only; make them removable first.
  chmod -R u+w "$WORK" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export GOWORK=off
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED="${NOMAD_DRIVER_NIX_CGO:-0}"

# `go mod download` / `go list -m` must run outside any module.
cd "$WORK"

# fetch_main_module MODULE VERSION: downloads MODULE@vVERSION through the module proxy and
# copies it to a writable "$WORK/src" (SRC) to be built as the main module (`go install
# mod@v` refuses modules whose go.mod has replace directives). Sets SRC, MOD_COMMIT and
# MOD_TIME (empty when the proxy does not say).
fetch_main_module() {
  local module=$1 version=$2 dir
  log "downloading $module@v$version from the Go module proxy"
  go mod download "$module@v$version" >&2 || die "cannot download $module@v$version (not served by GOPROXY?)"
  IFS='|' read -r dir MOD_COMMIT MOD_TIME < <(
    go list -m -f '{{.Dir}}|{{with .Origin}}{{.Hash}}{{end}}|{{with .Time}}{{.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' "$module@v$version")
  [[ -n "$dir" && -f "$dir/go.mod" ]] || die "module dir for $module not found"
  SRC="$WORK/src"
  cp -R "$dir" "$SRC"
  chmod -R u+w "$SRC"  # GOMODCACHE content is read-only
}
