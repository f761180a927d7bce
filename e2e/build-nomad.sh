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
# Usage: … --cached                    -> prints the path if it is built, else exits 1 (builds nothing)
#
# stdout: ONLY the absolute path of the binary (last line). Progress goes to stderr.
# The binary lives at "$CACHE/nomad-$NOMAD_VERSION/nomad"; if it is there and
# `nomad version` runs, we exit immediately (warm path, ~tens of ms).
#
# Requires a Go toolchain (>= 1.26, see the api note below) on PATH and access to
# the Go module proxy configured by GOPROXY (the default is fine).
set -euo pipefail

NOMAD_VERSION="${NOMAD_VERSION:-1.11.3}"
NOMAD_VERSION="${NOMAD_VERSION#v}"
TOOL=nomad
TOOL_VERSION="$NOMAD_VERSION"
# cache, lock, scratch dir, Go settings; exits here printing the cached binary when there is one
# shellcheck source=e2e/go-build-cache.sh
source "$(dirname "$0")/go-build-cache.sh"

NOMAD_MOD="github.com/hashicorp/nomad"
API_MOD="github.com/hashicorp/nomad/api"

# 1. Fetch the Nomad source via the module proxy. `go install nomad@vX` refuses
#    to work because Nomad's go.mod has replace directives, so we download the
#    module, copy it to a writable dir and build it as the main module.
fetch_main_module "$NOMAD_MOD" "$NOMAD_VERSION"
NOMAD_COMMIT=$MOD_COMMIT
NOMAD_TIME=$MOD_TIME

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
