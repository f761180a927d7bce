#!/usr/bin/env bash
# Runs every test of nomad-driver-nix on this machine, installing what is missing first:
# the Biome format and lint check,
# unit tests (src/**/*.test.ts), driver-level tests against the real plugin process (test/),
# and end-to-end tests through a real Nomad agent (e2e/). Needs root (the driver and the
# Nomad client run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
bash scripts/setup.sh --with-consul  # Consul: the script-check tests
# formatting and lint first (Biome, from the npm packages setup installed): a fast, clear failure
npx --no-install biome ci --diagnostic-level=error .
exec node scripts/run-tests.mjs dist/src dist/test dist/e2e "$@"
