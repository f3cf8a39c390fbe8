#!/usr/bin/env bash
# `npm run demo`: a real backup on an embedded default. Installs what it needs first.
#   npm run demo            back up a small demo source, print where the snapshot went and the Web UI address
#   npm run demo -- --stop  stop the demo's Temporal dev server
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-node-modules.sh
SKIP_MINIO=1 SKIP_RESTIC=1 bash scripts/ensure-binaries.sh
exec npx tsx scripts/demo.ts "$@"
