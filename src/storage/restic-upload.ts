// uploadSnapshot for a restic storage: the finalized snapshot directory becomes a restic snapshot holding the record
// (signed by the caller) as `/<snapshot>.json`. restic writes a snapshot last, so a record means a complete snapshot,
// as for archives; and the upload is one restic call (each derives the repository key: about 0.5 s of CPU).
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LifeboatError } from '../shared/errors';
import type { SnapshotRecord, StorageResult } from '../shared/types';
import { recordKey } from '../snapshot/naming';
import type { BackupOptions, BackupOutcome, ResticBackend, ResticSummary } from './restic';
import { MAX_RECORD_BYTES } from './types';

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
  input: { storage: string; dir: string; record: SnapshotRecord; fresh?: boolean; deltas?: BackupOptions['deltas']; signal?: AbortSignal; onProgress?: (bytes: number, total?: number) => void },
): Promise<ResticUploadResult> {
  const { record, dir } = input;
  const id = { plan: record.plan, snapshot: record.snapshot, tier: record.tier, createdAt: record.created_at };
  const repositoryId = await backend.repositoryId();
  // What only the finished snapshot tells (its id, location, completion) is added when the record is read.
  const embedded = JSON.stringify({ ...record, storage: input.storage, ...(repositoryId ? { restic: { repository_id: repositoryId } } : {}) }, null, 2);
  const outcome = await backend.backupDir(dir, id, { signal: input.signal, onProgress: input.onProgress, fresh: input.fresh, record: embedded, ...(input.deltas ? { deltas: input.deltas } : {}) });
  try {
    await assertComplete(outcome, dir, record, outcome.alreadyPresent ? undefined : Buffer.byteLength(embedded));
  } catch (err) {
    await backend.forget([outcome.snapshotId]).catch(() => undefined); // a retry must not reuse it
    throw err;
  }
  const ref: ResticRef = { snapshot_id: outcome.snapshotId, ...optional('repository_id', repositoryId) };
  const location = backend.snapshotLocation(outcome.snapshotId);
  const rKey = recordKey(record.plan, record.snapshot);
  // An earlier attempt's data snapshot (or another storage's on the same repository) is kept: this storage's
  // record is written beside it, superseding any record-only snapshot before it.
  if (outcome.alreadyPresent) await backend.putJson(rKey, { ...record, storage: input.storage, location, restic: ref, completed_at: new Date().toISOString() });
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
 * restic read every file the manifest lists, plus the manifest itself and the record: its counts of regular files
 * and their bytes must be the manifest's. Anything else (a file restic skipped, or one that changed) refuses the
 * snapshot. `recordBytes`: the record this call stored; a kept snapshot's record (an earlier attempt's, of the same
 * fields but perhaps another storage name or hold) is only known to be one small file.
 */
async function assertComplete(outcome: BackupOutcome, dir: string, record: SnapshotRecord, recordBytes: number | undefined): Promise<void> {
  const { summary } = outcome;
  const manifestBytes = (await stat(join(dir, 'manifest.sha256'))).size;
  // Database patches (restic-deltas.ts): each dump went as its base and its patch.
  const extra = outcome.extra ?? { files: 0, bytes: 0 };
  const want = { files: record.manifest.files + 1 + (outcome.holdsRecord ? 1 : 0) + extra.files, bytes: record.manifest.bytes + manifestBytes + extra.bytes };
  const got = { files: summary.total_files_processed, bytes: summary.total_bytes_processed };
  const surplus = (got.bytes ?? 0) - want.bytes;
  const recordFits = !outcome.holdsRecord ? surplus === 0 : recordBytes !== undefined ? surplus === recordBytes : surplus > 0 && surplus <= MAX_RECORD_BYTES;
  if (got.files !== want.files || !recordFits) {
    const counted = (outcome.holdsRecord ? 'manifest.sha256 and the record included, the record\'s bytes not' : 'manifest.sha256 included') + (extra.files ? `, ${extra.files} database file(s) as base and patch` : '');
    throw new LifeboatError('ChecksumMismatch', `restic snapshot of ${dir} holds ${got.files} files and ${got.bytes} bytes, but the snapshot has ${want.files} files and ${want.bytes} bytes (${counted})`);
  }
}

function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}

function pick<T extends object, K extends keyof T>(o: T, keys: K[]): Pick<T, K> {
  return Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]])) as Pick<T, K>;
}
