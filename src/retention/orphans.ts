// Orphans on archive storages: an archive (or media reference list) whose snapshot has no record object, and an
// upload nobody will finish. A run that failed between its upload and its record leaves the first, as does a
// retention run cut short between a record and its archive; a worker killed mid-upload whose run then ended leaves
// an open multipart upload (S3) or a `.partial` file (local). Nothing lists them (the record is what makes a
// snapshot), so without this they stay, and are paid for, forever. restic storages find theirs by tags
// (storage-retention.ts, forgetInRestic).
import { mediaRefsKey } from '../storage/media-objects';
import type { ObjectInfo, StorageBackend, UnfinishedUpload } from '../storage/types';
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
  const keys = new Set(objects.map((o) => o.key));
  return objects.flatMap((o) => {
    const name = derivedName(o.key, plan);
    return name && !keys.has(recordKey(plan, name)) && olderThan(name, newest) && longAgo(o.lastModified, now) ? [o.key] : [];
  });
}

/**
 * Unfinished uploads of keys Lifeboat derives, of snapshots older than `newest`, begun more than ORPHAN_MIN_AGE_MS
 * before `now`: only a retry of their own run would resume one, and a plan's runs take turns (the run applying
 * retention is the only one), so that run has ended. Whether a record exists does not matter here.
 */
export function findOrphanUploads(uploads: readonly UnfinishedUpload[], plan: string, newest: string | undefined, now: Date): UnfinishedUpload[] {
  return uploads.filter((u) => {
    const name = derivedName(u.key, plan);
    return name && olderThan(name, newest) && longAgo(u.since, now);
  });
}

/** Deletes the orphans of `plan` (findOrphans, findOrphanUploads) and returns what went: keys, and unfinished uploads as `<key> (unfinished upload)`. */
export async function removeOrphans(backend: StorageBackend, plan: string, newest: string | undefined, now: Date): Promise<string[]> {
  if (!newest) return [];
  const orphans = findOrphans(await backend.list(`${plan}/`), plan, newest, now);
  for (const key of orphans) await backend.delete(key);
  const uploads = backend.unfinishedUploads && backend.dropUnfinished ? findOrphanUploads(await backend.unfinishedUploads(`${plan}/`), plan, newest, now) : [];
  for (const u of uploads) await backend.dropUnfinished!(u);
  return [...orphans, ...uploads.map((u) => `${u.key} (unfinished upload)`)];
}

/** The snapshot name `key` was derived from, when it is an archive or media reference key of `plan` (nothing else). */
function derivedName(key: string, plan: string): string | undefined {
  const name = key.startsWith(`${plan}/`) ? SUFFIX.exec(key.slice(plan.length + 1))?.[1] : undefined;
  if (!name || !isSnapshotName(name)) return undefined;
  return [...allArchiveKeys(plan, name), mediaRefsKey(plan, name)].includes(key) ? name : undefined;
}

function olderThan(name: string, newest: string | undefined): boolean {
  const newestAt = newest ? parseSnapshotName(newest)?.at.getTime() : undefined;
  return newestAt !== undefined && parseSnapshotName(name)!.at.getTime() < newestAt;
}

/** An object of unknown age is kept. */
function longAgo(at: Date | undefined, now: Date): boolean {
  return at !== undefined && now.getTime() - at.getTime() > ORPHAN_MIN_AGE_MS;
}
