// Fake activities for workflow tests: the real workflow code on the real Temporal dev server, with every
// activity replaced by a scripted stand-in that records what it was asked to do. Each test owns a plan name,
// and its World (keyed by plan) says what each step does; a step may fail, hang until cancelled, or wait.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { Config } from '../../src/config/schema';
import type { FreshnessCheck } from '../../src/activities/freshness';
import type { LifeboatActivities } from '../../src/workers/worker';
import type { ArtifactResult } from '../../src/sources/types';
import type { NotificationResult, PlanContext, QuiesceRecord, RetentionReport, RunEvent, SnapshotVerification, StorageResult } from '../../src/shared/types';

type Step = (...args: any[]) => Promise<unknown>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface World {
  ctx: PlanContext;
  /** Every call, in order: `captureArtifact web/site`, `quiesceStop web`, … */
  calls: string[];
  /** Sources whose services are stopped right now. */
  stopped: Set<string>;
  /** Overrides by step key: the activity name, or `capture:<source>/<artifact>`, `restore:<artifact>`. */
  on: Record<string, Step>;
  /** How many times each step key was attempted. */
  attempts: Record<string, number>;
  /** Every event the runs reported (reportEvent), in order, with the number of `calls` made before it. */
  events: Array<RunEvent & { afterCalls: number }>;
}

const worlds = new Map<string, World>();

let seq = 0;
/** A plan for one test: `sources` in lifeboat.yaml shape; every source is `local`. */
export function makeWorld(prefix: string, plan: Record<string, unknown>): World {
  const name = `${prefix}-${Date.now().toString(36)}-${seq++}`;
  const config = Config.parse({
    backupRoot: '/nonexistent/lifeboat-fake',
    storages: { store: { type: 'local', path: '/nonexistent/lifeboat-fake-store' } },
    plans: { [name]: { storages: ['store'], ...plan } },
  });
  const world: World = {
    ctx: { planName: name, plan: config.plans[name]!, backupRoot: config.backupRoot, denyList: [], ssh: config.ssh, storages: config.storages },
    calls: [],
    stopped: new Set(),
    on: {},
    attempts: {},
    events: [],
  };
  worlds.set(name, world);
  return world;
}

function worldOf(plan: string | PlanContext): World {
  const w = worlds.get(typeof plan === 'string' ? plan : plan.planName);
  if (!w) throw ApplicationFailure.nonRetryable(`no fake world for plan ${JSON.stringify(plan)}`, 'ConfigError');
  return w;
}

/** Records the call and runs the override for `key` if there is one, else `fallback`. */
async function step<T>(plan: string | PlanContext, key: string, label: string, args: unknown[], fallback: () => T | Promise<T>): Promise<T> {
  const w = worldOf(plan);
  w.calls.push(label);
  w.attempts[key] = (w.attempts[key] ?? 0) + 1;
  const override = w.on[key];
  return override ? ((await override(...args)) as T) : fallback();
}

/** A step that never ends by itself: heartbeats until cancelled (then reports the cancellation, like the real ones). */
export async function hang(): Promise<never> {
  const ctx = Context.current();
  for (;;) {
    ctx.heartbeat({ hanging: true });
    await ctx.sleep(300);
  }
}

/** A step that waits until `until()` is true (heartbeating, cancellable). */
export async function waitFor(until: () => boolean): Promise<void> {
  const ctx = Context.current();
  while (!until()) {
    ctx.heartbeat();
    await ctx.sleep(200);
  }
}

export const permanent = (type: string, message = `${type} (fake)`) => () => Promise.reject(ApplicationFailure.nonRetryable(message, type));
export const transient = (type: string, message = `${type} (fake)`) => () => Promise.reject(ApplicationFailure.retryable(message, type));
/** Fails the first `n` attempts with a retryable error, then behaves normally (`then`). */
export function flaky(n: number, type: string, then: Step): Step {
  let left = n;
  return (...args) => (left-- > 0 ? Promise.reject(ApplicationFailure.retryable(`${type} (fake, ${left + 1} left)`, type)) : then(...args));
}

export const okArtifact = (ctx: PlanContext, source: string, name: string): ArtifactResult => {
  const a = ctx.plan.sources.find((s) => s.name === source)!.artifacts.find((x) => x.name === name)!;
  return { source, name, type: a.type, required: a.required, status: 'ok', paths: [`files/${name}`], bytes: 100, details: {} };
};

/** What each next fake checkFreshness returns, in turn (the events name plans whose worlds record the reports). */
export const freshnessChecks: FreshnessCheck[][] = [];

export function fakeActivities(): LifeboatActivities {
  const fakes = {
    loadPlan: (plan: string) => step(plan, 'loadPlan', 'loadPlan', [plan], () => worldOf(plan).ctx),
    preflight: (ctx: PlanContext) =>
      step(ctx, 'preflight', 'preflight', [ctx], () => ({ estimatedBytes: 1, requiredBytes: 2, freeBytes: 1e12, sources: ctx.plan.sources.map((s) => ({ name: s.name, host: s.host, appVersion: null })) })),
    prepareSnapshot: (ctx: PlanContext, snapshot: string) => step(ctx, 'prepareSnapshot', 'prepareSnapshot', [ctx, snapshot], () => `/fake/${snapshot}.partial`),
    captureArtifact: (ctx: PlanContext, snapshot: string, source: string, artifact: string) =>
      step(ctx, `capture:${source}/${artifact}`, `capture ${source}/${artifact}`, [ctx, snapshot, source, artifact], () => okArtifact(ctx, source, artifact)),
    finalizeSnapshot: (ctx: PlanContext, input: { snapshot: string }) =>
      step(ctx, 'finalizeSnapshot', 'finalizeSnapshot', [ctx, input], () => ({ dir: `/fake/${input.snapshot}`, manifest: { files: 1, bytes: 100, sha256: 'a'.repeat(64) } })),
    archiveSnapshot: (ctx: PlanContext, snapshot: string) =>
      step(ctx, 'archiveSnapshot', 'archiveSnapshot', [ctx, snapshot], () => ({ path: `/fake/${snapshot}.tar.zst`, format: 'tar.zst' as const, sha256: 'b'.repeat(64), size: 42 })),
    uploadSnapshot: (ctx: PlanContext, storage: string, archive: { sha256: string; size: number }, record: { snapshot: string }) =>
      step(ctx, 'uploadSnapshot', `upload ${storage}`, [ctx, storage, archive, record], (): StorageResult => ({
        storage,
        type: 'local',
        location: `/fake-store/${record.snapshot}`,
        key: `${ctx.planName}/${record.snapshot}.tar.zst`,
        record_key: `${ctx.planName}/${record.snapshot}.json`,
        size_bytes: archive.size,
        checksum_sha256: archive.sha256,
        already_present: false,
      })),
    pruneLocal: (ctx: PlanContext) => step(ctx, 'pruneLocal', 'pruneLocal', [ctx], () => [] as string[]),
    discardIncomplete: (ctx: PlanContext, snapshot: string) => step(ctx, 'discardIncomplete', 'discardIncomplete', [ctx, snapshot], () => undefined),
    applyRetention: (ctx: PlanContext, storage: string) =>
      step(ctx, 'applyRetention', `applyRetention ${storage}`, [ctx, storage], (): RetentionReport => ({ storage, configured: false, kept: 1, deleted: [] })),
    releaseHold: (ctx: PlanContext, snapshot: string) => step(ctx, 'releaseHold', `releaseHold ${snapshot}`, [ctx, snapshot], () => undefined),
    quiesceInspect: (ctx: PlanContext, source: string) =>
      step(ctx, 'quiesceInspect', `quiesceInspect ${source}`, [ctx, source], (): QuiesceRecord => ({ source, controller: 'commands', services: [`${source}-svc`] })),
    quiesceStop: (ctx: PlanContext, source: string, services: string[]) =>
      step(ctx, 'quiesceStop', `quiesceStop ${source}`, [ctx, source, services], () => {
        worldOf(ctx).stopped.add(source);
        return new Date().toISOString();
      }),
    quiesceStart: (ctx: PlanContext, source: string, services: string[]) =>
      step(ctx, 'quiesceStart', `quiesceStart ${source}`, [ctx, source, services], () => {
        worldOf(ctx).stopped.delete(source);
        return new Date().toISOString();
      }),
    fetchForRestore: (ctx: PlanContext, input: { snapshot: string }, runId: string) =>
      step(ctx, 'fetchForRestore', 'fetchForRestore', [ctx, input, runId], () => ({
        snapshot: input.snapshot === 'latest' ? 'snap-1' : input.snapshot,
        storage: 'store',
        workDir: `/fake/.restore/${runId}`,
        dir: `/fake/.restore/${runId}/snap`,
        archiveSha256: 'b'.repeat(64),
        artifacts: ctx.plan.sources.flatMap((s) => s.artifacts.map((a) => ({ source: s.name, name: a.name, type: a.type, status: 'ok' as const }))),
      })),
    planRestore: (ctx: PlanContext, fetched: unknown, input: unknown) =>
      step(ctx, 'planRestore', 'planRestore', [ctx, fetched, input], () =>
        ctx.plan.sources.flatMap((s) =>
          s.artifacts.map((a) => ({ artifact: a.name, type: a.type, host: s.name, target: `${s.name}:${a.name}`, targetInUse: false, action: 'write', ...(a.type === 'command' ? { manual: true } : {}) })),
        ),
      ),
    restoreArtifact: (ctx: PlanContext, fetched: unknown, input: unknown, artifact: string) =>
      step(ctx, `restore:${artifact}`, `restore ${artifact}`, [ctx, fetched, input, artifact], () => ({ artifact, target: artifact, bytes: 1 })),
    discardRestoreWork: (ctx: PlanContext, workDir: string) => step(ctx, 'discardRestoreWork', 'discardRestoreWork', [ctx, workDir], () => undefined),
    listSnapshotNames: (ctx: PlanContext, storage: string | undefined) => step(ctx, 'listSnapshotNames', 'listSnapshotNames', [ctx, storage], () => ['snap-3', 'snap-2', 'snap-1']),
    verifySnapshot: (ctx: PlanContext, storage: string | undefined, snapshot: string, runId: string, opts: unknown) =>
      step(ctx, `verify:${snapshot}`, `verify ${snapshot}`, [ctx, storage, snapshot, runId, opts], (): SnapshotVerification => ({
        snapshot,
        ok: true,
        duration_ms: 5,
        verified_at: new Date().toISOString(),
        checks: [{ artifact: 'db', check: 'row counts', ok: true, detail: 'equal' }],
      })),
    // The v1 (pre-patch) workflows' file lock.
    acquirePlanLock: (ctx: PlanContext) => step(ctx, 'acquirePlanLock', 'acquirePlanLock', [ctx], () => undefined),
    releasePlanLock: (ctx: PlanContext) => step(ctx, 'releasePlanLock', 'releasePlanLock', [ctx], () => undefined),
    // Kept out of `calls` (whose exact order the tests pin); `events` records each with how many calls came before.
    reportEvent: async (event: RunEvent): Promise<NotificationResult[]> => {
      const w = worldOf(event.plan);
      w.attempts.reportEvent = (w.attempts.reportEvent ?? 0) + 1;
      w.events.push({ ...event, afterCalls: w.calls.length });
      const override = w.on.reportEvent;
      return override ? ((await override(event)) as NotificationResult[]) : [{ target: 'fake', type: 'webhook', event: event.event, ok: true }];
    },
    // Not keyed by plan (the watchdog checks every plan): the test sets what the next check finds.
    checkFreshness: async () => {
      const checks = freshnessChecks.shift();
      if (!checks) throw ApplicationFailure.nonRetryable('no fake freshness check queued', 'ConfigError');
      return checks;
    },
    recordVerification: (ctx: PlanContext, storage: string | undefined, result: SnapshotVerification) =>
      step(ctx, 'recordVerification', `recordVerification ${result.snapshot}`, [ctx, storage, result], () => undefined),
  };
  return fakes as unknown as LifeboatActivities;
}
