#!/usr/bin/env bash
# Plain restic, as its users run it: rsync each host's tree into a mirror, pg_dump into it, `restic backup` the
# mirror to a repository on S3 (MinIO). Environment: as shell-backup.sh (WORK, HOSTS, SSH_*, DB_*), plus
#   RESTIC RESTIC_REPOSITORY RESTIC_PASSWORD RESTIC_CACHE_DIR AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
#   SUMMARY   file that gets restic's JSON summary line (data_added etc.)
set -euo pipefail
SSH="ssh -F /dev/null -i $SSH_KEY -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$KNOWN_HOSTS -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes"
mirror="$WORK/mirror"
mkdir -p "$mirror/files"

while read -r name port path; do
  [[ -n $name ]] || continue
  rsync -aH --delete --exclude=cache/ -e "$SSH -p $port" "$SSH_USER@127.0.0.1:$path/" "$mirror/files/$name/"
done <<<"$HOSTS"

if [[ -n ${DB_NAME:-} ]]; then
  $SSH -p "$DB_PORT" "$SSH_USER@127.0.0.1" pg_dump -h 127.0.0.1 -U postgres -d "$DB_NAME" >"$mirror/db.sql"
fi

"$RESTIC" backup --json --quiet "$mirror" | grep '"message_type":"summary"' >"$SUMMARY"
