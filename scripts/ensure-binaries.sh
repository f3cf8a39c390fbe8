#!/usr/bin/env bash
# Makes sure every external program the tests, the demo and the bench run is installed.
# Idempotent and silent when everything is already there, so test.sh/demo.sh can call it every time.
#   LIFEBOAT_CACHE  where Go-built binaries and build logs live (default ~/.cache/lifeboat)
#   SKIP_MINIO=1    don't build MinIO (the demo does not need it)
#   SKIP_RESTIC=1   don't build restic (the demo does not need it)
set -euo pipefail

CACHE="${LIFEBOAT_CACHE:-$HOME/.cache/lifeboat}"
BIN="$CACHE/bin"
LOG="$CACHE/log"

# Pinned so every machine builds the same server; bump deliberately.
TEMPORAL_MODULE="github.com/temporalio/cli/cmd/temporal@v1.5.1"
MINIO_MODULE="github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"
# restic from its Go module rather than Debian's 0.14: 0.17+ has --skip-if-unchanged, faster restores and
# `restore --include` by snapshot path; bookworm's 0.14 predates all three.
RESTIC_MODULE="github.com/restic/restic/cmd/restic@v0.18.1"

say() { echo "ensure-binaries: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# Runs "$@" with output to log file $1; on failure shows the log's tail and stops.
logged() {
  local log="$1"; shift
  if ! "$@" >"$log" 2>&1; then
    say "failed: $* (log: $log)"
    tail -n 40 "$log" >&2
    exit 1
  fi
}

ensure_debian_packages() {
  # command to look for -> Debian package providing it
  local -A want=(
    [/usr/sbin/sshd]=openssh-server [ssh]=openssh-client [rsync]=rsync
    [zstd]=zstd [sqlite3]=sqlite3 [pg_dump]=postgresql-client
    [age]=age [setfacl]=acl [getfattr]=attr
  )
  local missing=() cmd
  for cmd in "${!want[@]}"; do
    if [[ $cmd == /* ]]; then [[ -x $cmd ]] && continue
    else command -v "$cmd" >/dev/null 2>&1 && continue
    fi
    missing+=("${want[$cmd]}")
  done
  ((${#missing[@]})) || return 0

  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || die "need root or sudo to install: ${missing[*]}"
    sudo=(sudo -n)
  fi
  command -v apt-get >/dev/null 2>&1 || die "no apt-get; install these packages yourself: ${missing[*]}"
  mkdir -p "$LOG"
  say "installing Debian packages: ${missing[*]}"
  logged "$LOG/apt-update.log" "${sudo[@]}" apt-get update
  logged "$LOG/apt-install.log" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
}

find_go() {
  if command -v go >/dev/null 2>&1; then command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go
  fi
}

# ensure_go_binary NAME MODULE@VERSION HINT: PATH first, then the cache, else build into the cache.
ensure_go_binary() {
  local name="$1" module="$2" hint="$3"
  command -v "$name" >/dev/null 2>&1 && return 0
  [[ -x "$BIN/$name" ]] && return 0

  local go; go="$(find_go)"
  [[ -n $go ]] || die "'$name' not found and Go is not installed to build it. $hint"
  mkdir -p "$BIN" "$LOG"
  say "building $name from $module into $BIN (several minutes; log: $LOG/$name-build.log)"
  logged "$LOG/$name-build.log" env GOBIN="$BIN" "$go" install "$module"
  say "built $BIN/$name"
}

ensure_debian_packages
ensure_go_binary temporal "$TEMPORAL_MODULE" \
  "Install the Temporal CLI (https://docs.temporal.io/cli) so that 'temporal' is on PATH, or install Go (1.21+ fetches the toolchain the module needs)."
if [[ "${SKIP_RESTIC:-}" != 1 ]]; then
  ensure_go_binary restic "$RESTIC_MODULE" \
    "Install restic 0.17 or later so that 'restic' is on PATH, or install Go, or set SKIP_RESTIC=1."
fi
if [[ "${SKIP_MINIO:-}" != 1 ]]; then
  ensure_go_binary minio "$MINIO_MODULE" \
    "Install MinIO so that 'minio' is on PATH, or install Go (1.21+ fetches the toolchain the module needs), or set SKIP_MINIO=1."
fi
