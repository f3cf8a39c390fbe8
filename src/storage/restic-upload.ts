// uploadSnapshot for a restic storage: the finalized snapshot directory becomes a restic snapshot, then the record
// (signed by the caller) is written beside it with the restic snapshot's id. Data first, record last, as for
// archives: a record means a complete snapshot.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LifeboatError } from '../shared/errors';
import type { SnapshotRecord, StorageResult } from '../shared/types';
import { recordKey } from '../snapshot/naming';
import type { ResticBackend, ResticSummary } from './restic';

/** What a restic record adds to the SnapshotRecord. Not covered by the signature: see README (restic). */
export interface ResticRef {
  snapshot_id: string;
  repository_id?: string;
}

export interface ResticUploadResult extends StorageResult {
  restic: ResticRef & Pick<ResticSummary, 'data_added' | 'data_added_packed' | 'files_new' | 'files_changed' | 'files_unmodified' | 'total_files_processed' | 'total_bytes_processed'>;
}

export async function uploadToRestic(
  backend: ResticBackend,
  /**
   * `fresh`: the upload's first attempt (no data or record snapshot of it can exist yet). A data snapshot found
   * anyway (two storages on one repository) means a record may exist too: then the record write looks it up.
   */
  input: { storage: string; dir: string; record: SnapshotRecord; fresh?: boolean; signal?: AbortSignal; onProgress?: (bytes: number, total?: number) => void },
): Promise<ResticUploadResult> {
  const { record, dir } = input;
  const id = { plan: record.plan, snapshot: record.snapshot, tier: record.tier, createdAt: record.created_at };
  const outcome = await backend.backupDir(dir, id, { signal: input.signal, onProgress: input.onProgress, fresh: input.fresh });
  try {
    await assertComplete(outcome.summary, dir, record);
  } catch (err) {
    await backend.forget([outcome.snapshotId]).catch(() => undefined); // a retry must not reuse it
    throw err;
  }
  const ref: ResticRef = { snapshot_id: outcome.snapshotId, ...optional('repository_id', await backend.repositoryId()) };
  const location = `restic:${backend.repository} snapshot ${outcome.snapshotId.slice(0, 8)}`;
  const rKey = recordKey(record.plan, record.snapshot);
  await backend.putJson(rKey, { ...record, storage: input.storage, location, restic: ref, completed_at: new Date().toISOString() }, { fresh: input.fresh && !outcome.alreadyPresent });
  const s = outcome.summary;
  return {
    storage: input.storage,
    type: 'restic',
    location,
    key: outcome.snapshotId,
    record_key: rKey,
    size_bytes: s.total_bytes_processed ?? 0,
    // No archive is stored here: the manifest's SHA-256 is what a restore from this storage is checked against.
    checksum_sha256: record.manifest.sha256,
    already_present: outcome.alreadyPresent,
    bytes_sent: outcome.alreadyPresent ? 0 : (s.data_added_packed ?? 0),
    restic: {
      ...ref,
      ...pick(s, ['data_added', 'data_added_packed', 'files_new', 'files_changed', 'files_unmodified', 'total_files_processed', 'total_bytes_processed']),
    },
  };
}

/**
 * restic read every file the manifest lists, plus the manifest itself: its counts of regular files and their
 * bytes must be the manifest's. Anything else (a file restic skipped, or one that changed) refuses the snapshot.
 */
async function assertComplete(summary: ResticSummary, dir: string, record: SnapshotRecord): Promise<void> {
  const manifestBytes = (await stat(join(dir, 'manifest.sha256'))).size;
  const want = { files: record.manifest.files + 1, bytes: record.manifest.bytes + manifestBytes };
  const got = { files: summary.total_files_processed, bytes: summary.total_bytes_processed };
  if (got.files !== want.files || got.bytes !== want.bytes) {
    throw new LifeboatError('ChecksumMismatch', `restic snapshot of ${dir} holds ${got.files} files and ${got.bytes} bytes, but the snapshot has ${want.files} files and ${want.bytes} bytes (manifest.sha256 included)`);
  }
}

function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}

function pick<T extends object, K extends keyof T>(o: T, keys: K[]): Pick<T, K> {
  return Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]])) as Pick<T, K>;
}
