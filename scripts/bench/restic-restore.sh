#!/usr/bin/env bash
# Plain restic's restore: `restic restore` of the mirror (restic checks every blob's hash), rsync each tree back
# (to a new place), psql. Environment: as restic-backup.sh, plus TO_DIR, TO_DB and ONLY (see shell-restore.sh;
# with ONLY, `restic restore --include` reads only that subtree's blobs).
set -euo pipefail
SSH="ssh -F /dev/null -i $SSH_KEY -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$KNOWN_HOSTS -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes"
dl="$WORK/restore"
rm -rf "$dl"
mkdir -p "$dl"

if [[ -n ${ONLY:-} ]]; then
  read -r name port path sub <<<"$ONLY"
  "$RESTIC" restore --quiet "latest:$WORK/mirror" --target "$dl" --include "/files/$name/$sub"
  rsync -aH --mkpath -e "$SSH -p $port" "$dl/files/$name/$sub/" "$SSH_USER@127.0.0.1:$TO_DIR$path/$sub/"
  rm -rf "$dl"
  exit 0
fi
"$RESTIC" restore --quiet "latest:$WORK/mirror" --target "$dl"

while read -r name port path; do
  [[ -n $name ]] || continue
  rsync -aH --mkpath -e "$SSH -p $port" "$dl/files/$name/" "$SSH_USER@127.0.0.1:$TO_DIR$path/"
done <<<"$HOSTS"

if [[ -n ${DB_NAME:-} ]]; then
  $SSH -p "$DB_PORT" "$SSH_USER@127.0.0.1" createdb -h 127.0.0.1 -U postgres "$TO_DB"
  $SSH -p "$DB_PORT" "$SSH_USER@127.0.0.1" psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d "$TO_DB" <"$dl/db.sql" >/dev/null
fi
rm -rf "$dl"
