// Orphans on archive storages: an archive (or media reference list) whose snapshot has no record object. A run
// that failed between its upload and its record leaves one, as does a retention run cut short between a record
// and its archive. Nothing lists them (the record is what makes a snapshot), so without this they stay forever.
// restic storages find theirs by tags (storage-retention.ts, forgetInRestic).
import { mediaRefsKey } from '../storage/media-objects';
import type { ObjectInfo, StorageBackend } from '../storage/types';
import { allArchiveKeys, isSnapshotName, parseSnapshotName, recordKey } from '../snapshot/naming';

/**
 * An orphan must be older than this (by the storage's own clock) before it goes: a run that is still uploading,
 * or a snapshot someone copies in by hand (archive first, record after), is never taken for one.
 */
export const ORPHAN_MIN_AGE_MS = 24 * 3600_000;

const SUFFIX = /^(.+?)(\.tar\.(?:zst|gz)(?:\.age)?|\.media-refs\.json)$/;

/**
 * The keys among `objects` that are orphans of `plan`: the key is one Lifeboat derives from a valid snapshot name
 * (never anything else a bucket writer put there), no record object of that name exists at all (a record that
 * listing ignores, forged or unsigned, still keeps its archive), the name is older than `newest` (the newest
 * snapshot retention listed: a run in flight names its snapshot later than every finished one), and the object is
 * older than ORPHAN_MIN_AGE_MS at `now` (an object of unknown age is kept).
 */
export function findOrphans(objects: readonly ObjectInfo[], plan: string, newest: string | undefined, now: Date): string[] {
  const newestAt = newest ? parseSnapshotName(newest)?.at.getTime() : undefined;
  if (newestAt === undefined) return [];
  const keys = new Set(objects.map((o) => o.key));
  return objects.flatMap((o) => {
    const name = o.key.startsWith(`${plan}/`) ? SUFFIX.exec(o.key.slice(plan.length + 1))?.[1] : undefined;
    if (!name || !isSnapshotName(name)) return [];
    if (![...allArchiveKeys(plan, name), mediaRefsKey(plan, name)].includes(o.key)) return [];
    if (keys.has(recordKey(plan, name))) return [];
    if (parseSnapshotName(name)!.at.getTime() >= newestAt) return [];
    const age = o.lastModified ? now.getTime() - o.lastModified.getTime() : -1;
    return age > ORPHAN_MIN_AGE_MS ? [o.key] : [];
  });
}

/** Deletes the orphans of `plan` (see findOrphans) and returns their keys. */
export async function removeOrphans(backend: StorageBackend, plan: string, newest: string | undefined, now: Date): Promise<string[]> {
  if (!newest) return [];
  const orphans = findOrphans(await backend.list(`${plan}/`), plan, newest, now);
  for (const key of orphans) await backend.delete(key);
  return orphans;
}
