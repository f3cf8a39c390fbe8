// backupPlan: one durable run per backup. Deterministic code only: every side effect is an activity.
import { ActivityFailure, ApplicationFailure, CancellationScope, isCancellation, patched, proxyActivities, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { BackupActivities } from '../activities/backup';
import type { RetentionActivities } from '../activities/retention';
import { findArtifact } from '../config/lookup';
import { splitForQuiesce } from '../quiesce/plan';
import { LONG, QUICK, REMOTE } from './activity-options';
import { causeMessage, describeFailure, failedStatus, setStatus, withRunTimeout } from './failures';
import { backupPlanV1 } from './legacy/backup-v1';
import { CORRECT_UNDER_FAILURE } from './patches';
import { LOCK_WAIT_MS, withPlanLock } from './plan-lock';
import { inLanes } from './lanes';
import { withQuiesce } from './quiesce';
import { SNAPSHOT } from '../shared/search-attributes';
import type { ArtifactResult } from '../sources/types';
import type { BackupInput, BackupResult, PlanContext, QuiesceRecord, RetentionReport, SnapshotRecord, StorageResult } from '../shared/types';
import { snapshotName } from '../snapshot/naming';

const quick = proxyActivities<BackupActivities>(QUICK);
const { preflight } = proxyActivities<BackupActivities>(REMOTE);
const long = proxyActivities<BackupActivities>(LONG);
const retentionActs = proxyActivities<RetentionActivities>({ ...QUICK, startToCloseTimeout: '30m', scheduleToCloseTimeout: '2h' });

/**
 * One run of a plan at a time (see plan-lock.ts), bounded by the plan's `timeout`. Every path sets the final
 * LifeboatStatus; every failure leaves with a type from Lifeboat's vocabulary.
 */
export async function backupPlan(input: BackupInput): Promise<BackupResult> {
  if (!patched(CORRECT_UNDER_FAILURE)) return backupPlanV1(input);
  try {
    return await withPlanLock(input.plan, 'backup', { maxWaitMs: LOCK_WAIT_MS, onWait: () => setStatus('Waiting') }, async () => {
      const ctx = await quick.loadPlan(input.plan);
      return withRunTimeout(ctx.plan.timeout, `backup of plan ${input.plan}`, () => backupLocked(input, ctx));
    });
  } catch (err) {
    setStatus(failedStatus(err));
    throw describeFailure(err);
  }
}

async function backupLocked(input: BackupInput, ctx: PlanContext): Promise<BackupResult> {
  // Workflow time once the lock is ours: the same on replay, so the snapshot name is stable.
  const startedAt = new Date();
  const snapshot = snapshotName(ctx.plan.prefix ?? input.plan, startedAt);
  setStatus('Running');
  const checked = await preflight(ctx);
  upsertSearchAttributes([{ key: SNAPSHOT, value: snapshot }]);
  try {
    await quick.prepareSnapshot(ctx, snapshot, workflowInfo().runId);
    const captured = await captureAll(ctx.plan.sources, ctx.plan.parallelism, (source) => captureSource(ctx, snapshot, source));
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
    setStatus(status);
    const first = storages[0]!;
    // `key` is the object's own key (prefix included) and `bucket` its bucket, so a script can GET exactly that.
    return { ...record, snapshot_dir: finalized.dir, storage: first.storage, ...(first.bucket ? { bucket: first.bucket } : {}), key: first.key, location: first.location, storages, retention };
  } catch (err) {
    // Every lane has settled (captureAll waits for all of them), so nothing writes here any more. Cleanup runs
    // even when the run itself was cancelled.
    await CancellationScope.nonCancellable(() => quick.discardIncomplete(ctx, snapshot));
    throw err;
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

/**
 * Sources in parallel, at most `limit` at once. When one source fails, the other lanes take no new source and
 * their captures are cancelled, but each lane runs to its end: a stopped source is started again (withQuiesce)
 * before this returns. Only then does the first failure propagate. The same holds when the whole run is cancelled.
 */
function captureAll(sources: Source[], limit: number, capture: (s: Source) => Promise<SourceCapture>): Promise<SourceCapture[]> {
  return inLanes(sources, limit, capture, { cancelOthers: true });
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
    const type = findArtifact(ctx.plan, source, artifact)?.artifact.type ?? 'files';
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
