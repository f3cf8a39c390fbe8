#!/usr/bin/env bash
# Installs npm dependencies when node_modules is missing or older than package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "lifeboat: installing npm dependencies (npm ci)…" >&2
  # npm ci refuses a lock file without every platform's optional packages (e.g. @swc/core-darwin-*), and a
  # registry mirror that serves only this platform's leaves them out: then install from the same lock.
  if ! npm ci --no-audit --no-fund --loglevel=error >&2; then
    echo "lifeboat: npm ci failed; falling back to npm install with the same lock file" >&2
    npm install --no-audit --no-fund --loglevel=error >&2
  fi
fi
