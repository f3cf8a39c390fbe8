#!/usr/bin/env bash
# `npm test`: installs what the suite needs, type-checks, then runs unit and integration tests against real
# services (Temporal dev server, MinIO, PostgreSQL, OpenSSH sshd, rsync) started by the suite itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-node-modules.sh
bash scripts/ensure-binaries.sh
npx tsc --noEmit
report=$(mktemp)
status=0
npx vitest run --project unit --project integration --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
# One plain closing line that any CI can read.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$report" || true
rm -f "$report"
exit "$status"
