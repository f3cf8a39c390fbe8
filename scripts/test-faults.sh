#!/usr/bin/env bash
# `npm run test:faults`: the fault-injection suite against real services; prints one row per trial.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-node-modules.sh
bash scripts/ensure-binaries.sh
npx vitest run --project faults --reporter=verbose "$@"
