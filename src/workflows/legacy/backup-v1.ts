// LEGACY v1: this file as it was at e676c07 (imports and the exported name adjusted, nothing else), kept so runs
// started before patch CORRECT_UNDER_FAILURE replay and finish on it. Delete with the patch (src/workflows/patches.ts).
// backupPlan: one durable run per backup. Deterministic code only: every side effect is an activity.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  proxyActivities,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { BackupActivities } from '../../activities/backup';
import type { PlanLockActivities } from '../../activities/legacy-plan-lock';
import type { RetentionActivities } from '../../activities/retention';
import { splitForQuiesce } from '../../quiesce/plan';
import { causeMessage, describeFailure } from '../failures';
import { withQuiesce } from './quiesce-v1';
import { PERMANENT_ERRORS } from '../../shared/errors';
import { SNAPSHOT, STATUS } from '../../shared/search-attributes';
import type { ArtifactResult } from '../../sources/types';
import type { BackupInput, BackupResult, PlanContext, QuiesceRecord, RetentionReport, SnapshotRecord, StorageResult } from '../../shared/types';
import { snapshotName } from '../../snapshot/naming';

const retry = (maximumAttempts: number) => ({
  initialInterval: '5s',
  backoffCoefficient: 2,
  maximumInterval: '5m',
  maximumAttempts,
  nonRetryableErrorTypes: [...PERMANENT_ERRORS],
});

/** Quick steps on the worker. */
const QUICK: ActivityOptions = { startToCloseTimeout: '1m', retry: retry(5) };
/** Remote checks: SSH, du over large trees. */
const PREFLIGHT: ActivityOptions = { startToCloseTimeout: '30m', heartbeatTimeout: '1m', retry: retry(3) };
/**
 * Dumps, rsync, hashing, archiving, uploading: long, heartbeating (every 5 s), cancellable. A 30 s heartbeat
 * timeout lets a new worker take over within about half a minute when the old one died mid-copy.
 */
const LONG: ActivityOptions = { startToCloseTimeout: '12h', heartbeatTimeout: '30s', retry: retry(5) };
const quick = proxyActivities<BackupActivities>(QUICK);
const { preflight } = proxyActivities<BackupActivities>(PREFLIGHT);
const long = proxyActivities<BackupActivities>(LONG);
const retentionActs = proxyActivities<RetentionActivities>({ startToCloseTimeout: '30m', retry: retry(5) });
/** Waiting for another run of the plan: PlanBusy is retried every few seconds, then every 2 min, for up to a day. */
const lock = proxyActivities<PlanLockActivities>({
  startToCloseTimeout: '1m',
  scheduleToCloseTimeout: '24h',
  retry: { initialInterval: '3s', backoffCoefficient: 1.5, maximumInterval: '2m', nonRetryableErrorTypes: [...PERMANENT_ERRORS] },
});

/** One run of a plan at a time (see activities/plan-lock.ts), released whatever happens. */
export async function backupPlanV1(input: BackupInput): Promise<BackupResult> {
  const me = { workflowId: workflowInfo().workflowId, runId: workflowInfo().runId };
  let ctx: PlanContext;
  try {
    ctx = await quick.loadPlan(input.plan);
    upsertSearchAttributes([{ key: STATUS, value: 'Waiting' }]);
    await lock.acquirePlanLock(ctx, me);
  } catch (err) {
    upsertSearchAttributes([{ key: STATUS, value: isCancellation(err) ? 'Cancelled' : 'Failed' }]);
    throw describeFailure(err);
  }
  try {
    return await backupLocked(input, ctx);
  } finally {
    await CancellationScope.nonCancellable(() => lock.releasePlanLock(ctx, me));
  }
}

async function backupLocked(input: BackupInput, ctx: PlanContext): Promise<BackupResult> {
  // Workflow time once the lock is ours: the same on replay, so the snapshot name is stable.
  const startedAt = new Date();
  let snapshot: string | undefined;
  try {
    snapshot = snapshotName(ctx.plan.prefix ?? input.plan, startedAt);
    upsertSearchAttributes([
      { key: STATUS, value: 'Running' },
      { key: SNAPSHOT, value: snapshot },
    ]);
    const checked = await preflight(ctx);
    await quick.prepareSnapshot(ctx, snapshot, workflowInfo().runId);
    const captured = await captureAll(ctx.plan.sources, ctx.plan.parallelism, (source) => captureSource(ctx, snapshot!, source));
    const artifacts = captured.flatMap((c) => c.artifacts);
    // Skipped (nothing to capture, e.g. an ephemeral Redis) is recorded, not a failure.
    const status = artifacts.every((a) => a.status !== 'failed') ? 'Completed' : 'PartiallyFailed';
    const finalized = await long.finalizeSnapshot(ctx, {
      snapshot,
      tier: input.tier,
      deployId: input.deployId,
      startedAt: startedAt.toISOString(),
      artifacts,
      sources: checked.sources,
      quiesce: captured.flatMap((c) => (c.quiesce ? [c.quiesce] : [])),
    });
    const archive = await long.archiveSnapshot(ctx, snapshot);
    const record: SnapshotRecord = {
      success: true,
      status,
      snapshot,
      plan: input.plan,
      tier: input.tier,
      ...(input.deployId ? { deploy_id: input.deployId } : {}),
      ...(input.holdUntil ? { hold: { until: input.holdUntil, ...(input.deployId ? { deploy_id: input.deployId } : {}) } } : {}),
      created_at: startedAt.toISOString(),
      format: archive.format,
      size_bytes: archive.size,
      checksum_sha256: archive.sha256,
      manifest: finalized.manifest,
      artifacts: artifacts.map(({ source, name, type, status, bytes, error }) => ({ source, name, type, status, bytes, ...(error ? { error } : {}) })),
    };
    const storages: StorageResult[] = [];
    for (const storage of ctx.plan.storages) storages.push(await long.uploadSnapshot(ctx, storage, archive, record));
    // Only now, with every storage holding a checked copy, may retention delete anything.
    const retention: RetentionReport[] = [];
    for (const storage of ctx.plan.storages) retention.push(await pruneStorage(ctx, storage));
    await quick.pruneLocal(ctx).catch((err: unknown) => {
      if (isCancellation(err)) throw err; // a full backup host shows up in the next preflight; not this run's failure
    });
    upsertSearchAttributes([{ key: STATUS, value: status }]);
    const first = storages[0]!;
    return { ...record, snapshot_dir: finalized.dir, storage: first.storage, key: first.key, location: first.location, storages, retention };
  } catch (err) {
    upsertSearchAttributes([{ key: STATUS, value: isCancellation(err) ? 'Cancelled' : 'Failed' }]);
    // Cleanup must run even when the run itself was cancelled.
    if (snapshot) await CancellationScope.nonCancellable(() => quick.discardIncomplete(ctx, snapshot!));
    throw describeFailure(err);
  }
}

/** A retention failure is reported with the (good) snapshot, never turned into a failed backup. */
async function pruneStorage(ctx: PlanContext, storage: string): Promise<RetentionReport> {
  try {
    return await retentionActs.applyRetention(ctx, storage);
  } catch (err) {
    if (isCancellation(err)) throw err;
    return { storage, configured: true, kept: 0, deleted: [], error: causeMessage(err) };
  }
}

type Source = PlanContext['plan']['sources'][number];
interface SourceCapture {
  artifacts: ArtifactResult[];
  quiesce?: QuiesceRecord;
}

/** Sources in parallel, at most `limit` at once. */
async function captureAll(sources: Source[], limit: number, capture: (s: Source) => Promise<SourceCapture>): Promise<SourceCapture[]> {
  const results: SourceCapture[] = [];
  let next = 0;
  const lane = async () => {
    while (next < sources.length) {
      const i = next++;
      results[i] = await capture(sources[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, sources.length) }, lane));
  return results;
}

/** One source, in order: live dumps, then the quiesced copies inside stop → start (see withQuiesce). */
async function captureSource(ctx: PlanContext, snapshot: string, source: Source): Promise<SourceCapture> {
  const { live, quiesced } = splitForQuiesce(source);
  const artifacts: ArtifactResult[] = [];
  for (const a of live) artifacts.push(await captureOne(ctx, snapshot, source.name, a.name, a.required));
  if (quiesced.length === 0) return { artifacts };
  const { record } = await withQuiesce(ctx, source.name, async () => {
    for (const a of quiesced) artifacts.push(await captureOne(ctx, snapshot, source.name, a.name, a.required));
  });
  return { artifacts, quiesce: record };
}

async function captureOne(ctx: PlanContext, snapshot: string, source: string, artifact: string, required: boolean): Promise<ArtifactResult> {
  const activity = proxyActivities<BackupActivities>({ ...LONG, activityId: `capture:${source}:${artifact}` });
  try {
    return await activity.captureArtifact(ctx, snapshot, source, artifact);
  } catch (err) {
    // A required artifact fails the run with its own cause; an optional one is recorded and the run goes on.
    if (required || isCancellation(err)) throw err;
    const cause = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause : undefined;
    const type = ctx.plan.sources.find((s) => s.name === source)?.artifacts.find((a) => a.name === artifact)?.type ?? 'files';
    return {
      source,
      name: artifact,
      type,
      required,
      status: 'failed',
      paths: [],
      bytes: 0,
      error: cause?.message ?? (err as Error).message,
      ...(cause?.type ? { errorType: cause.type } : {}),
      details: {},
    };
  }
}
