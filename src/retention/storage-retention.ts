// GFS retention applied to one storage: records → candidates → selectRetention (pure) → deletions.
// The record goes first, then the archive: a snapshot without its record is never listed, so an interrupted
// deletion can leave an orphan archive (found and removed by the next run) but never a listed half-snapshot.
import type { Retention } from '../config/schema';
import { findSnapshots, type SnapshotListing } from '../restore/fetch';
import { LifeboatError } from '../shared/errors';
import { ARCHIVE_FORMATS, archiveKey, recordKey } from '../snapshot/naming';
import { selectRetention, type RetentionCandidate, type RetentionDecision } from '../snapshot/retention';
import type { StorageBackend } from '../storage/types';

export function candidateOf(l: SnapshotListing): RetentionCandidate {
  const hold = l.record.hold;
  return {
    snapshot: l.record.snapshot,
    createdAt: l.record.created_at,
    tier: l.record.tier,
    verified: l.record.verification?.ok === true,
    heldUntil: hold && !hold.released_at ? hold.until : null,
  };
}

export async function planRetention(backend: StorageBackend, plan: string, retention: Retention, now: Date): Promise<{ decisions: RetentionDecision[]; listing: SnapshotListing[] }> {
  const listing = await findSnapshots({ [backend.name]: backend }, { plan });
  try {
    const decisions = selectRetention(listing.map(candidateOf), { ...retention }, { now: now.toISOString(), timeZone: retention.timezone });
    return { decisions, listing };
  } catch (err) {
    throw new LifeboatError('ConfigError', `retention of storage ${backend.name}: ${(err as Error).message}`);
  }
}

/** Deletes what the policy lets go; returns the deleted snapshot names. */
export async function applyRetention(backend: StorageBackend, plan: string, retention: Retention, now: Date): Promise<{ kept: number; deleted: string[] }> {
  const { decisions, listing } = await planRetention(backend, plan, retention, now);
  const deleted: string[] = [];
  for (const d of decisions.filter((x) => !x.keep)) {
    const l = listing.find((x) => x.record.snapshot === d.snapshot)!;
    await backend.delete(recordKey(plan, d.snapshot));
    // Keys are derived from plan, snapshot name (both validated by listing) and a known format, never read from
    // the record: a record is untrusted input and must not choose what gets deleted.
    for (const format of ARCHIVE_FORMATS) await backend.delete(archiveKey(plan, d.snapshot, format));
    deleted.push(d.snapshot);
  }
  return { kept: decisions.length - deleted.length, deleted };
}
