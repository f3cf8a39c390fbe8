#!/usr/bin/env bash
# The hand-written backup that Lifeboat is measured against: what a careful operator writes without a tool.
# Pull each host's tree into a persistent mirror, dump the database, write a sha256sum manifest, tar | zstd -T0,
# upload (no aws/mc here: scripts/bench/s3-cp.mjs, the plain @aws-sdk/client-s3 in its own process).
# Environment (set by scripts/bench/shell.ts):
#   WORK          persistent work dir (the mirror lives in $WORK/stage)
#   HOSTS         lines of "name ssh-port /abs/tree"
#   SSH_USER SSH_KEY KNOWN_HOSTS   login and pinned host keys
#   DB_PORT DB_NAME                ssh port of the database host and the database (empty: no dump)
#   BUCKET OBJECT_KEY              where the archive goes; S3_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
set -euo pipefail
SSH="ssh -F /dev/null -i $SSH_KEY -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$KNOWN_HOSTS -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes"
stage="$WORK/stage"
mkdir -p "$stage/files"

while read -r name port path; do
  [[ -n $name ]] || continue
  rsync -aH --delete --exclude=cache/ -e "$SSH -p $port" "$SSH_USER@127.0.0.1:$path/" "$stage/files/$name/"
done <<<"$HOSTS"

if [[ -n ${DB_NAME:-} ]]; then
  $SSH -p "$DB_PORT" "$SSH_USER@127.0.0.1" pg_dump -h 127.0.0.1 -U postgres -d "$DB_NAME" >"$stage/db.sql"
fi

(cd "$stage" && find . -type f ! -name manifest.sha256 -print0 | sort -z | xargs -0 -r sha256sum >manifest.sha256)
tar -C "$stage" -cf - . | zstd -T0 -3 -q -c >"$WORK/backup.tar.zst"
node "$(dirname "$0")/s3-cp.mjs" put "$WORK/backup.tar.zst" "$BUCKET" "$OBJECT_KEY"
rm -f "$WORK/backup.tar.zst"
