#!/usr/bin/env bash
# The install step (npm test, npm run demo): installs npm dependencies when node_modules is missing or older than
# package-lock.json, then compiles dist/ (scripts/build.mjs) when it is older than src/. A line or two each; npm's own
# output goes to a log that is shown only if it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp -t lifeboat-npm.XXXXXX)
trap 'rm -f "$log"' EXIT

# npm ci installs exactly the lock file (it holds every platform's optional packages, so it is accepted on any
# machine) but refuses one whose root dependencies differ from package.json's, and prints its usage text. Checked
# first, so that case (package.json edited, lock not updated yet) goes straight to npm install, with no failed try.
lock_matches_package_json() {
  node -e '
    const fs = require("fs");
    const pkg = JSON.parse(fs.readFileSync("package.json", "utf8"));
    const root = (JSON.parse(fs.readFileSync("package-lock.json", "utf8")).packages || {})[""] || {};
    const same = (a = {}, b = {}) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
    const kinds = ["dependencies", "devDependencies", "optionalDependencies", "peerDependencies"];
    process.exit(kinds.every((k) => same(pkg[k], root[k])) ? 0 : 1);
  ' 2>/dev/null
}

run_npm() { # quiet: npm's warnings and progress go to the log; on failure, its last lines are shown
  if ! npm "$@" --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
    echo "lifeboat: npm $1 failed:" >&2
    tail -n 40 "$log" >&2
    return 1
  fi
}

if [ ! -f package-lock.json ] || ! lock_matches_package_json; then
  # A dependency added to package.json and not yet to the lock: npm ci would refuse it; npm install updates the lock.
  start=$SECONDS
  echo "lifeboat: package-lock.json does not match package.json: installing with npm install, which updates the lock…" >&2
  run_npm install
  echo "lifeboat: npm dependencies installed in $((SECONDS - start)) s" >&2
elif [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  start=$SECONDS
  echo "lifeboat: installing npm dependencies (npm ci)…" >&2
  run_npm ci
  echo "lifeboat: npm dependencies installed in $((SECONDS - start)) s" >&2
fi

# The compiled CLI and workflow bundle (dist/), when older than src/. Without a current build everything still
# works from the sources (bin/lifeboat.mjs falls back to tsx, the worker to webpack): a failed build is reported,
# not fatal.
if ! node scripts/build.mjs --if-stale; then
  echo "lifeboat: compiling dist/ failed (above); the CLI and worker run from src/ (slower start) until it builds" >&2
fi
