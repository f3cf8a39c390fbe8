// GFS retention applied to one storage: records → candidates → selectRetention (pure) → deletions.
// The record goes first, then the archive: a snapshot without its record is never listed, so an interrupted
// deletion can leave an orphan archive but never a listed half-snapshot; the next retention run removes it
// (orphans.ts), as it does the archive of a run that failed between its archive and its record. restic storages
// forget theirs (forgetInRestic).
import type { Retention } from '../config/schema';
import { findSnapshots, type SnapshotListing } from '../restore/fetch';
import { LifeboatError } from '../shared/errors';
import { allArchiveKeys, parseSnapshotName, recordKey } from '../snapshot/naming';
import { annotationsTrusted, type TrustPolicy } from '../snapshot/signing';
import { selectRetention, type RetentionCandidate, type RetentionDecision } from '../snapshot/retention';
import { byNewestRecord, identify, isRestic, DATA_TAG, RECORD_TAG, type ResticBackend } from '../storage/restic';
import { collectMedia, mediaRefsKey } from '../storage/media-objects';
import { removeOrphans } from './orphans';
import type { StorageBackend } from '../storage/types';

/**
 * The record as retention sees it. The hold is signed with the record; its release and a drill's result count only
 * when their own signature verifies (with signing configured), so a bucket writer can neither release a hold nor
 * make a snapshot look verified. A hold whose instant cannot be read holds indefinitely: keeping is the safe side.
 */
export function candidateOf(l: SnapshotListing, trust: TrustPolicy = {}): RetentionCandidate {
  const { hold, verification } = l.record;
  const annotations = annotationsTrusted(l.record, trust);
  const held = !!hold && !(annotations && hold.released_at);
  const until = typeof hold?.until === 'string' && !Number.isNaN(Date.parse(hold.until)) ? hold.until : undefined;
  return {
    snapshot: l.record.snapshot,
    createdAt: l.record.created_at,
    tier: l.record.tier,
    verified: annotations && verification?.ok === true,
    ...(held && !until ? { held: true } : {}),
    heldUntil: held && until ? until : null,
  };
}

export interface RetentionPlan {
  decisions: RetentionDecision[];
  listing: SnapshotListing[];
  /** Records retention neither counts nor deletes (forged, renamed, unsigned): `<key>: <reason>`. */
  ignored: string[];
}

/**
 * Only valid (and, with signing, validly signed) records take part: a forged record can neither push a real
 * snapshot out of its GFS slot nor name what gets deleted. Ignored records are reported, never deleted.
 */
export async function planRetention(backend: StorageBackend, plan: string, retention: Retention, now: Date, trust: TrustPolicy = {}): Promise<RetentionPlan> {
  const ignored: string[] = [];
  const listing = await findSnapshots({ [backend.name]: backend }, { plan, trust, onIgnored: (i) => ignored.push(`${i.key}: ${i.reason}`) });
  try {
    const decisions = selectRetention(listing.map((l) => candidateOf(l, trust)), { ...retention }, { now: now.toISOString(), timeZone: retention.timezone });
    return { decisions, listing, ignored };
  } catch (err) {
    throw new LifeboatError('ConfigError', `retention of storage ${backend.name}: ${(err as Error).message}`);
  }
}

/** Deletes what the policy lets go; returns the deleted snapshot names. */
export async function applyRetention(
  backend: StorageBackend,
  plan: string,
  retention: Retention,
  now: Date,
  trust: TrustPolicy = {},
  opts: { signal?: AbortSignal } = {},
): Promise<{ kept: number; deleted: string[]; ignored: string[]; orphans?: string[]; media?: { deleted: number } | { skipped: string } }> {
  const { decisions, listing, ignored } = await planRetention(backend, plan, retention, now, trust);
  if (isRestic(backend)) {
    const deleted = decisions.filter((x) => !x.keep).map((x) => x.snapshot);
    await forgetInRestic(backend, plan, deleted, opts.signal);
    return { kept: decisions.length - deleted.length, deleted, ignored };
  }
  const deleted: string[] = [];
  for (const d of decisions.filter((x) => !x.keep)) {
    await backend.delete(recordKey(plan, d.snapshot));
    // Keys are derived from plan and snapshot name (both validated by listing), never read from the record: a
    // record is untrusted input and must not choose what gets deleted.
    for (const key of allArchiveKeys(plan, d.snapshot)) await backend.delete(key);
    await backend.delete(mediaRefsKey(plan, d.snapshot));
    deleted.push(d.snapshot);
  }
  const orphans = await removeOrphans(backend, plan, newestListed(listing), now);
  // Media objects outlive the snapshots that made them while any kept snapshot references them.
  const gone = new Set(deleted);
  const media = await collectMedia(backend, plan, listing.filter((l) => !gone.has(l.record.snapshot)), ignored.length);
  return {
    kept: decisions.length - deleted.length,
    deleted,
    ignored,
    ...(orphans.length ? { orphans } : {}),
    ...('skipped' in media || media.deleted > 0 ? { media } : {}),
  };
}

/** The newest snapshot name among valid records (by the time in the name, which keys are derived from). */
export function newestListed(listing: readonly SnapshotListing[]): string | undefined {
  let newest: { name: string; at: number } | undefined;
  for (const l of listing) {
    const at = parseSnapshotName(l.record.snapshot)?.at.getTime();
    if (at !== undefined && (!newest || at > newest.at)) newest = { name: l.record.snapshot, at };
  }
  return newest?.name;
}

/**
 * restic: the removed snapshots' record-only snapshots are forgotten first, then their data snapshots (with the
 * record they hold), so an interrupted run leaves data without a record (never listed) or data with its first
 * record (listed, removed next time), never a record without data. Both are found by restic's own tags
 * (plan and validated name), never through a record. Also forgotten: records an update superseded, and data
 * snapshots older than the newest snapshot that have no record at all (a run that failed after its backup step);
 * data whose record is merely ignored (unsigned, forged) is kept, as for archives. `prune` runs only when data went.
 */
async function forgetInRestic(backend: ResticBackend, plan: string, removed: string[], signal?: AbortSignal): Promise<void> {
  const all = await backend.snapshots();
  const gone = new Set(removed);
  const records = all.flatMap((s) => {
    const id = identify(s, RECORD_TAG);
    return id?.plan === plan ? [{ s, name: id.snapshot }] : [];
  });
  const newestRecord = new Map<string, string>();
  for (const r of [...records].sort((a, b) => byNewestRecord(a.s, b.s))) if (!newestRecord.has(r.name)) newestRecord.set(r.name, r.s.id);
  const newest = Math.max(0, ...[...newestRecord.keys()].map((n) => parseSnapshotName(n)?.at.getTime() ?? 0));
  // A record inside a data snapshot goes with its data (below), never alone.
  const recordIds = records.filter((r) => !identify(r.s, DATA_TAG) && (gone.has(r.name) || newestRecord.get(r.name) !== r.s.id)).map((r) => r.s.id);
  const dataIds = all.flatMap((s) => {
    const id = identify(s, DATA_TAG);
    if (id?.plan !== plan) return [];
    const orphan = !newestRecord.has(id.snapshot) && (parseSnapshotName(id.snapshot)?.at.getTime() ?? Infinity) < newest;
    return gone.has(id.snapshot) || orphan ? [s.id] : [];
  });
  await backend.forget(recordIds);
  await backend.forget(dataIds);
  if (dataIds.length > 0) await backend.prune(signal);
}
