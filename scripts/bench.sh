#!/usr/bin/env bash
# `npm run bench`: the whole backup/restore job, Lifeboat vs the hand-written shell sequence vs plain restic, on a
# generated workload (real sshd hosts, PostgreSQL, MinIO, Temporal), plus the archive and hashing micro-benches.
# Installs what it needs first (npm packages; Debian packages; temporal, minio and restic 0.18.1 built once).
#   npm run bench -- --quick     small sizes, one run, about 2 minutes
#   npm run bench -- --mib-per-host 500 --db-mib 150 --runs 3 --tiny-hosts 20 --archive-mib 256 --only e2e,archive,hash
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-node-modules.sh
bash scripts/ensure-binaries.sh
# The machine's PostgreSQL (127.0.0.1:5432, trust auth for postgres), as the test suite uses it.
if ! psql -X -q -h 127.0.0.1 -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
  echo "bench: needs PostgreSQL on 127.0.0.1:5432 where user postgres logs in without a password (trust), as npm test does" >&2
  exit 1
fi
# The harness makes S3 clients itself: the same switch bin/lifeboat.mjs sets for the AWS SDK's Node 20 warning.
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED="${AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED:-true}"
exec npx tsx scripts/bench.ts "$@"
