// Retention and holds. Retention runs only after a backup succeeded (the workflow guarantees it), per storage.
import { LifeboatError } from '../shared/errors';
import type { PlanContext, RetentionReport, SnapshotRecord } from '../shared/types';
import { applyRetention } from '../retention/storage-retention';
import { recordKey } from '../snapshot/naming';
import { annotate, loadSigningKey, trustPolicyOf } from '../snapshot/signing';
import { openStorage } from '../storage';
import { runActivity } from './run';

/** The retention step's own bound (workflows/backup.ts: 30 min start-to-close). */
const RESTIC_RETENTION_QUIET_MS = 30 * 60_000;

export function createRetentionActivities() {
  return {
    async applyRetention(ctx: PlanContext, storageName: string): Promise<RetentionReport> {
      return runActivity(async ({ signal, quiet }) => {
        const cfg = ctx.storages[storageName];
        if (!cfg) throw new LifeboatError('ConfigError', `plan ${ctx.planName} has no storage ${storageName}`);
        if (!cfg.retention) return { storage: storageName, configured: false, kept: 0, deleted: [] };
        const retention = cfg.retention;
        const backend = await openStorage(storageName, cfg);
        const trust = await trustPolicyOf(ctx.signing);
        const apply = () => applyRetention(backend, ctx.planName, retention, new Date(), trust, { signal });
        // restic's forget and prune print nothing while they work (and may wait for the repository's lock).
        const { kept, deleted, ignored, orphans, media } = cfg.type === 'restic' ? await quiet('restic forget and prune', RESTIC_RETENTION_QUIET_MS, apply) : await apply();
        return { storage: storageName, configured: true, kept, deleted, ...(ignored.length ? { ignored } : {}), ...(orphans ? { orphans } : {}), ...(media ? { media } : {}) };
      });
    },

    /** Marks the hold on a snapshot released in every storage of the plan; retention may then take it. */
    async releaseHold(ctx: PlanContext, snapshot: string): Promise<string[]> {
      return runActivity(async () => {
        const released: string[] = [];
        for (const name of ctx.plan.storages) {
          const backend = await openStorage(name, ctx.storages[name]!);
          const key = recordKey(ctx.planName, snapshot);
          const record = await backend.getJson<SnapshotRecord>(key);
          if (!record?.hold || record.hold.released_at) continue;
          await backend.putJson(key, annotate(record, { hold: { ...record.hold, released_at: new Date().toISOString() } }, await loadSigningKey(ctx.signing)));
          released.push(name);
        }
        return released;
      });
    },
  };
}

export type RetentionActivities = ReturnType<typeof createRetentionActivities>;
