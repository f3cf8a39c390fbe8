#!/usr/bin/env bash
# `npm run bench`: Lifeboat's archive path measured side by side with the seed's baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-node-modules.sh
exec npx tsx scripts/bench.ts "$@"
