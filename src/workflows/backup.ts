// backupPlan: one durable run per backup. Deterministic code only: every side effect is an activity.
import { ActivityFailure, ApplicationFailure, CancellationScope, isCancellation, patched, setCurrentDetails, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { BackupActivities } from '../activities/backup';
import type { RetentionActivities } from '../activities/retention';
import { findArtifact } from '../config/lookup';
import { splitForQuiesce } from '../quiesce/plan';
import { LONG, QUICK, REMOTE, step } from './activity-options';
import { causeMessage, describeFailure, failedStatus, setStatus, withRunTimeout } from './failures';
import { backupPlanV1 } from './legacy/backup-v1';
import { CORRECT_UNDER_FAILURE, PARALLEL_ARTIFACTS, RUN_EVENTS, SMALL_SOURCE_LANES } from './patches';
import { LOCK_WAIT_MS, withPlanLock } from './plan-lock';
import { inLanes } from './lanes';
import { withQuiesce } from './quiesce';
import { failureEvent, report, withFailedDeliveries } from './run-events';
import { SNAPSHOT } from '../shared/search-attributes';
import type { ArtifactResult } from '../sources/types';
import type { BackupInput, BackupResult, NotificationResult, PlanContext, PreflightResult, QuiesceRecord, RetentionReport, SnapshotRecord, StorageResult } from '../shared/types';
import { snapshotName } from '../snapshot/naming';

const quick = (summary: string) => step<BackupActivities>(QUICK, summary);
const long = (summary: string) => step<BackupActivities>(LONG, summary);
const RETENTION = { ...QUICK, startToCloseTimeout: '30m', scheduleToCloseTimeout: '2h' };

/**
 * One run of a plan at a time (see plan-lock.ts), bounded by the plan's `timeout`. Every path sets the final
 * LifeboatStatus; every failure leaves with a type from Lifeboat's vocabulary.
 */
export async function backupPlan(input: BackupInput): Promise<BackupResult> {
  if (!patched(CORRECT_UNDER_FAILURE)) return backupPlanV1(input);
  const began = Date.now();
  const run: RunReporting = {};
  try {
    return await withPlanLock(input.plan, 'backup', { maxWaitMs: LOCK_WAIT_MS, onWait: () => setStatus('Waiting') }, async () => {
      const ctx = await quick(`load plan ${input.plan}`).loadPlan(input.plan);
      return withRunTimeout(ctx.plan.timeout, `backup of plan ${input.plan}`, () => backupLocked(input, ctx, run));
    });
  } catch (err) {
    setStatus(failedStatus(err));
    const described = describeFailure(err);
    const started = (await run.started) ?? []; // `/start` before `/fail`, as a dead-man's switch expects
    const outcome = await report(failureEvent(err, described, { plan: input.plan, kind: 'backup', tier: input.tier, ...(run.snapshot ? { snapshot: run.snapshot } : {}), durationMs: Date.now() - began }));
    throw withFailedDeliveries(described, [...started, ...outcome]);
  }
}

/** What the failure path needs to know of a run: its snapshot once named, and its `started` report in flight. */
interface RunReporting {
  snapshot?: string;
  started?: Promise<NotificationResult[]>;
}

async function backupLocked(input: BackupInput, ctx: PlanContext, run: RunReporting): Promise<BackupResult> {
  // Workflow time once the lock is ours: the same on replay, so the snapshot name is stable.
  const startedAt = new Date();
  const snapshot = snapshotName(ctx.plan.prefix ?? input.plan, startedAt);
  setStatus('Running');
  // Not waited for: a target that does not answer must not hold up the backup (report() is non-cancellable).
  run.started = report({ event: 'started', plan: input.plan, kind: 'backup', tier: input.tier, snapshot, status: 'Running' });
  setCurrentDetails(`**${input.tier}** backup of plan **${input.plan}**: preflight of ${ctx.plan.sources.length} source(s)`);
  const checked = await step<BackupActivities>(REMOTE, `preflight: ${ctx.plan.sources.map((s) => s.name).join(', ')} and ${ctx.plan.storages.join(', ')}`).preflight(ctx);
  upsertSearchAttributes([{ key: SNAPSHOT, value: snapshot }]);
  run.snapshot = snapshot;
  try {
    await quick(`claim snapshot ${snapshot}`).prepareSnapshot(ctx, snapshot, workflowInfo().runId);
    const progress = captureProgress(input, snapshot, ctx);
    const captured = await captureAll(ctx, checked.sources, (source) => captureSource(ctx, snapshot, source, progress));
    const artifacts = captured.flatMap((c) => c.artifacts);
    // Skipped (nothing to capture, e.g. an ephemeral Redis) is recorded, not a failure.
    const status = artifacts.every((a) => a.status !== 'failed') ? 'Completed' : 'PartiallyFailed';
    setCurrentDetails(`${progress.title}: finalizing (metadata, manifest)`);
    const finalized = await long(`finalize ${snapshot}: metadata.yml and manifest`).finalizeSnapshot(ctx, {
      snapshot,
      tier: input.tier,
      deployId: input.deployId,
      startedAt: startedAt.toISOString(),
      artifacts,
      sources: checked.sources,
      quiesce: captured.flatMap((c) => (c.quiesce ? [c.quiesce] : [])),
    });
    setCurrentDetails(`${progress.title}: archiving`);
    const archive = await long(`archive ${snapshot}`).archiveSnapshot(ctx, snapshot);
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
    for (const storage of ctx.plan.storages) {
      setCurrentDetails(`${progress.title}: uploading to ${storage} (${storages.length + 1} of ${ctx.plan.storages.length})`);
      storages.push(await long(`upload ${snapshot} to ${storage}`).uploadSnapshot(ctx, storage, archive, record));
    }
    // Only now, with every storage holding a checked copy, may retention delete anything.
    setCurrentDetails(`${progress.title}: retention`);
    const retention: RetentionReport[] = [];
    for (const storage of ctx.plan.storages) retention.push(await pruneStorage(ctx, storage));
    await quick('prune local snapshots').pruneLocal(ctx).catch((err: unknown) => {
      if (isCancellation(err)) throw err; // a full backup host shows up in the next preflight; not this run's failure
    });
    setStatus(status);
    setCurrentDetails(`${progress.title}: ${status}`);
    const failedCount = artifacts.filter((a) => a.status === 'failed').length;
    const notifications = [...(await run.started)];
    notifications.push(
      ...(await report({
        event: status === 'Completed' ? 'succeeded' : 'partially_failed',
        plan: input.plan,
        kind: 'backup',
        tier: input.tier,
        snapshot,
        status,
        sizeBytes: archive.size,
        bytesCaptured: artifacts.reduce((n, a) => n + a.bytes, 0),
        artifactsFailed: failedCount,
        durationMs: Date.now() - startedAt.getTime(),
        ...(failedCount ? { failingStep: artifacts.filter((a) => a.status === 'failed').map((a) => `${a.source}:${a.name}`).join(', ') } : {}),
      })),
    );
    const first = storages[0]!;
    // `key` is the object's own key (prefix included) and `bucket` its bucket, so a script can GET exactly that.
    return {
      ...record,
      snapshot_dir: finalized.dir,
      storage: first.storage,
      ...(first.bucket ? { bucket: first.bucket } : {}),
      key: first.key,
      location: first.location,
      storages,
      retention,
      ...(patched(RUN_EVENTS) ? { notifications } : {}),
    };
  } catch (err) {
    // Every lane has settled (captureAll waits for all of them), so nothing writes here any more. Cleanup runs
    // even when the run itself was cancelled.
    await CancellationScope.nonCancellable(() => quick(`discard incomplete ${snapshot}`).discardIncomplete(ctx, snapshot));
    // The Web UI must not show a snapshot that was never stored.
    if (patched(RUN_EVENTS)) upsertSearchAttributes([{ key: SNAPSHOT, value: null }]);
    throw err;
  }
}

/** The workflow's "current details" in the Web UI: which captures are done. Not part of history. */
function captureProgress(input: BackupInput, snapshot: string, ctx: PlanContext) {
  const total = ctx.plan.sources.reduce((n, s) => n + s.artifacts.length, 0);
  const title = `**${input.tier}** backup of plan **${input.plan}** → ${snapshot}`;
  let done = 0;
  const show = () => setCurrentDetails(`${title}: capturing, ${done} of ${total} artifacts done`);
  show();
  return { title, captured: () => (done++, show()) };
}

/** A retention failure is reported with the (good) snapshot, never turned into a failed backup. */
async function pruneStorage(ctx: PlanContext, storage: string): Promise<RetentionReport> {
  try {
    return await step<RetentionActivities>(RETENTION, `retention in ${storage}`).applyRetention(ctx, storage);
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

/** A source preflight sized at most this is small: its capture is mostly handshakes, not bytes. */
const SMALL_SOURCE_BYTES = 64 * 1024 * 1024;

/**
 * Sources in `parallelism` lanes; small ones also in lanes of their own beside them (up to smallSourceParallelism at
 * once in all), so twenty config trees do not queue behind two bulk lanes (before SMALL_SOURCE_LANES: one pool).
 * When one source fails, the other lanes take no new source and their captures are cancelled, but each lane runs
 * to its end: a stopped source is started again (withQuiesce) before this returns. Only then does the first failure
 * propagate. The same holds when the whole run is cancelled.
 */
function captureAll(ctx: PlanContext, checked: PreflightResult['sources'], capture: (s: Source) => Promise<SourceCapture>): Promise<SourceCapture[]> {
  const { sources, parallelism, smallSourceParallelism } = ctx.plan;
  if (!patched(SMALL_SOURCE_LANES)) return inLanes(sources, parallelism, capture, { cancelOthers: true });
  const small = new Set(checked.filter((s) => typeof s.estimatedBytes === 'number' && s.estimatedBytes <= SMALL_SOURCE_BYTES).map((s) => s.name));
  return inLanes(sources, parallelism, capture, { cancelOthers: true, extra: { lanes: smallSourceParallelism ?? parallelism /* a plan loaded before the option */, takes: (s) => small.has(s.name) } });
}

/**
 * One source: its live dumps and copies (at once, up to plan.parallelism; in turn before PARALLEL_ARTIFACTS), then
 * the quiesced copies in turn inside stop → start (see withQuiesce). Results keep the plan's artifact order.
 */
async function captureSource(ctx: PlanContext, snapshot: string, source: Source, progress: { captured(): void }): Promise<SourceCapture> {
  const { live, quiesced } = splitForQuiesce(source);
  const artifacts: ArtifactResult[] = [];
  const capture = async (a: { name: string; required: boolean }) => {
    const result = await captureOne(ctx, snapshot, source.name, a.name, a.required);
    progress.captured();
    return result;
  };
  const one = async (a: { name: string; required: boolean }) => void artifacts.push(await capture(a));
  // A required capture that fails cancels its siblings; every one has settled before this goes on or throws.
  if (live.length > 1 && patched(PARALLEL_ARTIFACTS)) artifacts.push(...(await inLanes(live, ctx.plan.parallelism, capture, { cancelOthers: true })));
  else for (const a of live) await one(a);
  if (quiesced.length === 0) return { artifacts };
  const { record } = await withQuiesce(ctx, source.name, async () => {
    for (const a of quiesced) await one(a);
  });
  return { artifacts, quiesce: record };
}

/** `capture app/site (files) from root@10.0.0.5`: what the Web UI's timeline shows for one capture. */
function captureSummary(ctx: PlanContext, source: string, artifact: string): string {
  const src = ctx.plan.sources.find((s) => s.name === source);
  const type = findArtifact(ctx.plan, source, artifact)?.artifact.type ?? 'artifact';
  const where = !src || src.host === 'local' ? 'the backup host' : `${src.user ?? 'root'}@${src.host}`;
  return `capture ${source}/${artifact} (${type}) from ${where}`;
}

async function captureOne(ctx: PlanContext, snapshot: string, source: string, artifact: string, required: boolean): Promise<ArtifactResult> {
  const activity = step<BackupActivities>(LONG, captureSummary(ctx, source, artifact), `capture:${source}:${artifact}`);
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
