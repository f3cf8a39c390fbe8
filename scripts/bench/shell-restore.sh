#!/usr/bin/env bash
# The hand-written restore: download, check, zstd -d | tar -x, rsync each tree back (to a new place), psql.
# Environment: as shell-backup.sh, plus
#   TO_DIR   each tree goes to the same host under $TO_DIR/<its original path> (what lifeboat restore --to-dir does)
#   TO_DB    the database is created under this name and loaded
#   ONLY     "<name> <port> <tree> <dir>": restore just <tree>/<dir> of that host (the archive is still read whole:
#            GNU tar has no index to seek by), checked against its manifest lines; no database
set -euo pipefail
SSH="ssh -F /dev/null -i $SSH_KEY -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$KNOWN_HOSTS -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes"
dl="$WORK/restore"
rm -rf "$dl"
mkdir -p "$dl/x"

node "$(dirname "$0")/s3-cp.mjs" get "$BUCKET" "$OBJECT_KEY" "$dl/backup.tar.zst"
if [[ -n ${ONLY:-} ]]; then
  read -r name port path sub <<<"$ONLY"
  zstd -d -q -c "$dl/backup.tar.zst" | tar -C "$dl/x" -xf - ./manifest.sha256 "./files/$name/$sub"
  (cd "$dl/x" && grep -F "  ./files/$name/$sub/" manifest.sha256 | sha256sum -c --quiet -)
  rsync -aH --mkpath -e "$SSH -p $port" "$dl/x/files/$name/$sub/" "$SSH_USER@127.0.0.1:$TO_DIR$path/$sub/"
  rm -rf "$dl"
  exit 0
fi
zstd -d -q -c "$dl/backup.tar.zst" | tar -C "$dl/x" -xf -
(cd "$dl/x" && sha256sum -c --quiet manifest.sha256)

while read -r name port path; do
  [[ -n $name ]] || continue
  rsync -aH --mkpath -e "$SSH -p $port" "$dl/x/files/$name/" "$SSH_USER@127.0.0.1:$TO_DIR$path/"
done <<<"$HOSTS"

if [[ -n ${DB_NAME:-} ]]; then
  $SSH -p "$DB_PORT" "$SSH_USER@127.0.0.1" createdb -h 127.0.0.1 -U postgres "$TO_DB"
  $SSH -p "$DB_PORT" "$SSH_USER@127.0.0.1" psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d "$TO_DB" <"$dl/x/db.sql" >/dev/null
fi
rm -rf "$dl"
