// What storage holds of a plan, as freshness and `lifeboat status` need it: the newest good snapshot per storage,
// the newest one overall (and where it is), the newest verified one. Only trusted records count: with signing
// configured, a forged or unsigned record is ignored (reported through `ignored`), and a drill result counts only
// when its annotations' signature verifies, so a bucket writer can make a plan neither look fresh nor verified.
import type { Config } from '../config/schema';
import { findSnapshots, type IgnoredRecord, type SnapshotListing, type StoredRecord } from '../restore/fetch';
import type { RunStatus } from '../shared/types';
import { annotationsTrusted, type TrustPolicy } from '../snapshot/signing';
import { openStorage } from '../storage';
import type { StorageBackend } from '../storage/types';
import type { StorageNewest } from './freshness';
import { errorLine } from '../shared/errors';

/** A record exists only for a run that stored every required artifact; PartiallyFailed lost an optional one. */
const GOOD: readonly RunStatus[] = ['Completed', 'PartiallyFailed'];

/** Whether a record counts as a good snapshot (freshness, status and metrics agree on this). */
export const isGoodRecord = (r: Pick<StoredRecord, 'status'>): boolean => GOOD.includes(r.status);

/** The size a snapshot takes in its storage; a restic storage holds no archive: its content's size. */
export const storedSize = (r: Pick<StoredRecord, 'restic' | 'manifest' | 'size_bytes'>): number => (r.restic ? (r.manifest?.bytes ?? 0) : r.size_bytes);

export interface SnapshotSummary {
  snapshot: string;
  createdAt: string;
  status: RunStatus;
  /** The stored object (a restic storage: the snapshot's content). */
  sizeBytes: number;
  /** Storages holding it, in the plan's order. */
  storages: string[];
}

export interface VerifiedSummary {
  snapshot: string;
  createdAt: string;
  verifiedAt: string;
  /** Fetch + check + scratch restore as the drill measured it (not covered by the annotations' signature). */
  restoreMs?: number;
  storage: string;
}

export interface PlanState {
  plan: string;
  storages: StorageNewest[];
  latest?: SnapshotSummary;
  verified?: VerifiedSummary;
  ignored: IgnoredRecord[];
}

export type BackendOpener = (name: string) => Promise<StorageBackend>;

/** Opens each storage once per call, whatever the number of plans using it; a storage that fails to open fails its listings. */
export function backendOpener(config: Config): BackendOpener {
  const opened = new Map<string, Promise<StorageBackend>>();
  return (name) => {
    if (!opened.has(name)) opened.set(name, openStorage(name, config.storages[name]!));
    return opened.get(name)!;
  };
}

/** Every storage of the plan is read, one failure does not hide the others (it becomes that storage's `error`). */
export async function readPlanState(config: Config, plan: string, trust: TrustPolicy, open: BackendOpener = backendOpener(config)): Promise<PlanState> {
  const ignored: IgnoredRecord[] = [];
  const names = config.plans[plan]!.storages;
  const listings = await Promise.all(names.map((name) => listPlan(name, plan, trust, open, ignored)));
  const good = listings.flatMap((l) => ('listing' in l ? l.listing : []));
  const storages = names.map((storage, i): StorageNewest => {
    const l = listings[i]!;
    if ('error' in l) return { storage, error: l.error };
    const newest = l.listing[0];
    return { storage, ...(newest ? { newest: { snapshot: newest.record.snapshot, createdAt: newest.record.created_at } } : {}) };
  });
  const latest = latestOf(good, names);
  const verified = verifiedOf(good, trust);
  return { plan, storages, ...(latest ? { latest } : {}), ...(verified ? { verified } : {}), ignored };
}

async function listPlan(name: string, plan: string, trust: TrustPolicy, open: BackendOpener, ignored: IgnoredRecord[]): Promise<{ listing: SnapshotListing[] } | { error: string }> {
  try {
    const listing = await findSnapshots({ [name]: await open(name) }, { plan, trust, onIgnored: (i) => ignored.push(i) });
    return { listing: listing.filter((l) => isGoodRecord(l.record)) };
  } catch (err) {
    return { error: errorLine(err) };
  }
}

/** Listings come newest first per storage; across storages, the newest created_at wins (name breaks ties). */
function newestFirst(a: SnapshotListing, b: SnapshotListing): number {
  return Date.parse(b.record.created_at) - Date.parse(a.record.created_at) || b.record.snapshot.localeCompare(a.record.snapshot);
}

function latestOf(good: SnapshotListing[], order: string[]): SnapshotSummary | undefined {
  const top = [...good].sort(newestFirst)[0];
  if (!top) return undefined;
  const r = top.record;
  const holding = new Set(good.filter((l) => l.record.snapshot === r.snapshot).map((l) => l.storage));
  return {
    snapshot: r.snapshot,
    createdAt: r.created_at,
    status: r.status,
    sizeBytes: storedSize(r),
    storages: order.filter((s) => holding.has(s)),
  };
}

function verifiedOf(good: SnapshotListing[], trust: TrustPolicy): VerifiedSummary | undefined {
  const passed = good.filter((l) => l.record.verification?.ok === true && typeof l.record.verification.verified_at === 'string' && annotationsTrusted(l.record, trust));
  const top = passed.sort(newestFirst)[0];
  if (!top) return undefined;
  const v = top.record.verification!;
  const restoreMs = Number.isFinite(v.duration_ms) && v.duration_ms >= 0 ? v.duration_ms : undefined;
  return { snapshot: top.record.snapshot, createdAt: top.record.created_at, verifiedAt: v.verified_at, storage: top.storage, ...(restoreMs !== undefined ? { restoreMs } : {}) };
}
