// LEGACY v1: this file as it was at e676c07 (imports, the exported name and the connection (TLS) adjusted), kept so runs
// started before patch CORRECT_UNDER_FAILURE replay and finish on it. Delete with the patch (src/workflows/patches.ts).
// One backup of a plan at a time, whatever started it (a daily and a monthly schedule at the same minute, the
// CLI, a pre-deploy run). Schedules' SKIP policy only covers one schedule. The lock is a file on the backup
// host naming the holding run; a holder that Temporal no longer reports as running is stale and taken over.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from '@temporalio/client';
import { loadConfig } from '../config/load';
import { openClientConnection } from '../temporal/connection';
import { LifeboatError } from '../shared/errors';
import type { PlanContext } from '../shared/types';
import { runActivity } from './run';

interface Holder {
  workflowId: string;
  runId: string;
}

const lockPath = (ctx: PlanContext) => join(ctx.backupRoot, '.locks', `${ctx.planName}.json`);

export function createPlanLockActivities({ configPath }: { configPath: string }) {
  /** Whether Temporal still runs the holder; a lost lock file owner (crash, termination) is not. */
  async function stillRunning(holder: Holder): Promise<boolean> {
    const { temporal } = await loadConfig(configPath);
    const connection = await openClientConnection(temporal);
    try {
      const d = await new Client({ connection, namespace: temporal.namespace }).workflow.getHandle(holder.workflowId, holder.runId).describe();
      return d.status.name === 'RUNNING';
    } catch {
      return false; // not found: long gone
    } finally {
      await connection.close();
    }
  }

  return {
    /** Takes the plan's lock or fails with the retryable PlanBusy (the workflow retries until the holder ends). */
    async acquirePlanLock(ctx: PlanContext, me: Holder): Promise<void> {
      return runActivity(async () => {
        const path = lockPath(ctx);
        await mkdir(join(ctx.backupRoot, '.locks'), { recursive: true, mode: 0o700 });
        for (;;) {
          try {
            await writeFile(path, JSON.stringify(me), { flag: 'wx', mode: 0o600 });
            return;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
          }
          const holder = JSON.parse(await readFile(path, 'utf8').catch(() => '{}')) as Holder;
          if (holder.runId === me.runId) return; // a retry of our own acquire
          if (holder.runId && (await stillRunning(holder))) {
            throw new LifeboatError('PlanBusy', `plan ${ctx.planName} is being backed up by ${holder.workflowId}; waiting for it to finish`);
          }
          await rm(path, { force: true }); // stale: its run is over
        }
      });
    },

    async releasePlanLock(ctx: PlanContext, me: Holder): Promise<void> {
      return runActivity(async () => {
        const path = lockPath(ctx);
        const holder = JSON.parse(await readFile(path, 'utf8').catch(() => '{}')) as Partial<Holder>;
        if (holder.runId === me.runId) await rm(path, { force: true });
      });
    },
  };
}

export type PlanLockActivities = ReturnType<typeof createPlanLockActivities>;
