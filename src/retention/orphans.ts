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
  const newestAt = timeOf(newest);
  if (newestAt === undefined) return [];
  const keys = new Set(objects.map((o) => o.key));
  return objects.flatMap((o) => {
    const name = derivedName(o.key, plan);
    return name && !keys.has(recordKey(plan, name)) && timeOf(name)! < newestAt && longAgo(o.lastModified, now) ? [o.key] : [];
  });
}

/**
 * Unfinished uploads of keys Lifeboat derives, of snapshots older than `newest`, begun more than ORPHAN_MIN_AGE_MS
 * before `now`: only a retry of their own run would resume one, and a plan's runs take turns (the run applying
 * retention is the only one), so that run has ended. Whether a record exists does not matter here.
 */
export function findOrphanUploads(uploads: readonly UnfinishedUpload[], plan: string, newest: string | undefined, now: Date): UnfinishedUpload[] {
  const newestAt = timeOf(newest);
  if (newestAt === undefined) return [];
  return uploads.filter((u) => {
    const name = derivedName(u.key, plan);
    return name && timeOf(name)! < newestAt && longAgo(u.since, now);
  });
}

/** What retention would remove of `plan` now: orphan keys (findOrphans) and unfinished uploads (findOrphanUploads). */
export async function orphansOf(backend: StorageBackend, plan: string, newest: string | undefined, now: Date): Promise<{ keys: string[]; uploads: UnfinishedUpload[] }> {
  if (!newest) return { keys: [], uploads: [] };
  const keys = findOrphans(await backend.list(`${plan}/`), plan, newest, now);
  const uploads = backend.unfinishedUploads && backend.dropUnfinished ? findOrphanUploads(await backend.unfinishedUploads(`${plan}/`), plan, newest, now) : [];
  return { keys, uploads };
}

/** Deletes the orphans of `plan` (orphansOf) and returns what went: keys, and unfinished uploads as `<key> (unfinished upload)`. */
export async function removeOrphans(backend: StorageBackend, plan: string, newest: string | undefined, now: Date): Promise<string[]> {
  const { keys, uploads } = await orphansOf(backend, plan, newest, now);
  for (const key of keys) await backend.delete(key);
  for (const u of uploads) await backend.dropUnfinished!(u);
  return [...keys, ...uploads.map((u) => `${u.key} (unfinished upload)`)];
}

/** The snapshot name `key` was derived from, when it is an archive or media reference key of `plan` (nothing else). */
function derivedName(key: string, plan: string): string | undefined {
  const name = key.startsWith(`${plan}/`) ? SUFFIX.exec(key.slice(plan.length + 1))?.[1] : undefined;
  if (!name || !isSnapshotName(name)) return undefined;
  return [...allArchiveKeys(plan, name), mediaRefsKey(plan, name)].includes(key) ? name : undefined;
}

/** The instant in a snapshot name (undefined for none or an invalid one). */
function timeOf(name: string | undefined): number | undefined {
  return name ? parseSnapshotName(name)?.at.getTime() : undefined;
}

/** An object of unknown age is kept. */
function longAgo(at: Date | undefined, now: Date): boolean {
  return at !== undefined && now.getTime() - at.getTime() > ORPHAN_MIN_AGE_MS;
}
