// What storage says about each plan, straight from its records (trusted ones only, as `snapshots list` shows
// them): per storage the newest snapshot's time and the newest passed restore drill. Storage, not the worker's
// memory, so the numbers are right after a restart with no run in between.
import type { Config } from '../config/schema';
import { isGoodRecord, storedSize } from '../freshness/read-plan-state';
import { findSnapshots, type StoredRecord } from '../restore/fetch';
import { annotationsTrusted, trustPolicyOf, type TrustPolicy } from '../snapshot/signing';
import { openStorage } from '../storage';
import { errorLine } from '../shared/errors';

export interface StoredTimes {
  plan: string;
  storage: string;
  /** created_at of the newest good snapshot, in seconds since the epoch. */
  lastSuccess?: number;
  /**
   * When the newest passed drill ran (verified_at; its annotation trusted). The watchdog's maxVerifiedAge is
   * stricter: it counts from the verified snapshot's own creation, so a drill of an old snapshot does not refresh it.
   */
  lastVerified?: number;
}

export interface StorageScan {
  times: StoredTimes[];
  /** Stored size of each plan's newest snapshot. */
  newestSize: Map<string, number>;
  readable: string[];
  unreadable: Array<{ storage: string; error: string }>;
}

/** Every plan (or one), every storage it writes to; a storage that cannot be read is reported, not fatal. */
export async function scanStoredTimes(config: Config, onlyPlan?: string): Promise<StorageScan> {
  const plans = Object.entries(config.plans).filter(([name]) => !onlyPlan || name === onlyPlan);
  const storages = [...new Set(plans.flatMap(([, plan]) => plan.storages))];
  const trust = await trustPolicyOf(config.signing);
  const scan: StorageScan = { times: [], newestSize: new Map(), readable: [], unreadable: [] };
  const newest = new Map<string, StoredRecord>();
  await Promise.all(
    storages.map(async (storage) => {
      let records: StoredRecord[];
      try {
        const backend = await openStorage(storage, config.storages[storage]!);
        records = (await findSnapshots({ [storage]: backend }, { ...(onlyPlan ? { plan: onlyPlan } : {}), trust })).map((l) => l.record);
      } catch (err) {
        scan.unreadable.push({ storage, error: errorLine(err) });
        return;
      }
      scan.readable.push(storage);
      for (const [plan, cfg] of plans) {
        if (!cfg.storages.includes(storage)) continue;
        const mine = records.filter((r) => r.plan === plan && isGoodRecord(r)); // newest first
        scan.times.push({ plan, storage, ...timesOf(mine, trust) });
        const first = mine[0];
        if (first && (!newest.has(plan) || seconds(first.created_at)! > seconds(newest.get(plan)!.created_at)!)) newest.set(plan, first);
      }
    }),
  );
  for (const [plan, r] of newest) scan.newestSize.set(plan, storedSize(r));
  return scan;
}

function timesOf(newestFirst: StoredRecord[], trust: TrustPolicy): Pick<StoredTimes, 'lastSuccess' | 'lastVerified'> {
  const lastSuccess = seconds(newestFirst[0]?.created_at);
  const verified = newestFirst
    .filter((r) => r.verification?.ok && annotationsTrusted(r, trust))
    .map((r) => seconds(r.verification!.verified_at))
    .filter((t): t is number => t !== undefined);
  return { ...(lastSuccess !== undefined ? { lastSuccess } : {}), ...(verified.length ? { lastVerified: Math.max(...verified) } : {}) };
}

function seconds(iso: string | undefined): number | undefined {
  const ms = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(ms) ? undefined : ms / 1000;
}
