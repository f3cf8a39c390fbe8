#!/usr/bin/env bash
# `npm run record:replay`: runs the workflow tests (fake activities, real dev server) and keeps each named run's
# history as a golden file under test/replay/. Run it after an intended, patched() workflow change, review the
# diff, commit the new files beside the old ones (old histories stay: runs in flight still have them).
# The v1 histories (test/replay/v1-*.json, runs started before patch CORRECT_UNDER_FAILURE) come from
# `npm run record:replay -- test/workflows/legacy-v1.test.ts`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-node-modules.sh
bash scripts/ensure-binaries.sh
LIFEBOAT_RECORD_REPLAY=1 npx vitest run test/workflows/backup.test.ts test/workflows/restore-verify-predeploy.test.ts test/workflows/run-events.test.ts "$@"
ls -1 test/replay
