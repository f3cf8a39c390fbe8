// LEGACY v1: this file as it was at e676c07 (imports and the exported name adjusted, nothing else), kept so runs
// started before patch CORRECT_UNDER_FAILURE replay and finish on it. Delete with the patch (src/workflows/patches.ts).
// restoreSnapshot: fetch and check before touching anything, plan, refuse targets in use without force, then
// restore per target source inside its quiesce controller. verifyRestore: the monthly restore drill.
import { ApplicationFailure, CancellationScope, proxyActivities, upsertSearchAttributes, workflowInfo, type ActivityOptions } from '@temporalio/workflow';
import type { BackupActivities } from '../../activities/backup';
import type { RestoreActivities } from '../../activities/restore';
import { PERMANENT_ERRORS } from '../../shared/errors';
import { SNAPSHOT, STATUS } from '../../shared/search-attributes';
import type { FetchedSnapshot, PlanContext, RestoreInput, RestoreResult, SnapshotVerification, VerifyInput } from '../../shared/types';
import { describeFailure } from '../failures';
import { withQuiesce } from './quiesce-v1';

const retry = (maximumAttempts: number) => ({ initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '5m', maximumAttempts, nonRetryableErrorTypes: [...PERMANENT_ERRORS] });
const QUICK: ActivityOptions = { startToCloseTimeout: '2m', retry: retry(5) };
/** Downloads, extraction, scratch restores: long, heartbeating, cancellable. */
const LONG: ActivityOptions = { startToCloseTimeout: '12h', heartbeatTimeout: '30s', retry: retry(3) };

const quick = proxyActivities<BackupActivities & RestoreActivities>(QUICK);
const long = proxyActivities<RestoreActivities>(LONG);

export async function restoreSnapshotV1(input: RestoreInput): Promise<RestoreResult> {
  const started = Date.now();
  const ctx = await quick.loadPlan(input.plan);
  let fetched: FetchedSnapshot | undefined;
  try {
    fetched = await long.fetchForRestore(ctx, input, workflowInfo().runId);
    upsertSearchAttributes([{ key: SNAPSHOT, value: fetched.snapshot }, { key: STATUS, value: 'Running' }]);
    const steps = await quick.planRestore(ctx, fetched, input);
    const base = { snapshot: fetched.snapshot, storage: fetched.storage, steps };
    if (input.dryRun) {
      upsertSearchAttributes([{ key: STATUS, value: 'Completed' }]);
      return { ...base, dryRun: true, restored: [], durationMs: Date.now() - started };
    }
    const inUse = steps.filter((s) => s.targetInUse);
    if (inUse.length > 0 && !input.force) {
      throw ApplicationFailure.create({
        type: 'TargetInUse',
        nonRetryable: true,
        message: `refusing to write over targets in use (pass --force to overwrite): ${inUse.map((s) => `${s.artifact} → ${s.target}`).join('; ')}`,
      });
    }
    const restored = await restoreByHost(ctx, fetched, input, steps);
    upsertSearchAttributes([{ key: STATUS, value: 'Completed' }]);
    return { ...base, dryRun: false, restored, durationMs: Date.now() - started };
  } catch (err) {
    upsertSearchAttributes([{ key: STATUS, value: 'Failed' }]);
    throw describeFailure(err);
  } finally {
    if (fetched) {
      const workDir = fetched.workDir;
      await CancellationScope.nonCancellable(() => quick.discardRestoreWork(ctx, workDir));
    }
  }
}

/** Steps grouped by target host, each group inside that source's quiesce controller when it has one. */
async function restoreByHost(ctx: PlanContext, fetched: FetchedSnapshot, input: RestoreInput, steps: RestoreResult['steps']): Promise<RestoreResult['restored']> {
  const restored: RestoreResult['restored'] = [];
  for (const host of [...new Set(steps.map((s) => s.host))]) {
    const mine = steps.filter((s) => s.host === host);
    const work = async () => {
      for (const s of mine) restored.push(await proxyActivities<RestoreActivities>({ ...LONG, activityId: `restore:${s.artifact}` }).restoreArtifact(ctx, fetched, input, s.artifact));
    };
    const quiesce = input.quiesce !== false && ctx.plan.sources.find((src) => src.name === host)?.quiesce;
    if (quiesce) await withQuiesce(ctx, host, work);
    else await work();
  }
  return restored;
}

/** The drill: the latest snapshot and `verify.older` random older ones, each restored into scratch targets. */
export async function verifyRestoreV1(input: VerifyInput): Promise<SnapshotVerification[]> {
  const ctx = await quick.loadPlan(input.plan);
  upsertSearchAttributes([{ key: STATUS, value: 'Running' }]);
  const chosen = input.snapshots ?? pickSnapshots(await quick.listSnapshotNames(ctx, input.storage), ctx.plan.verify.older);
  if (chosen.length === 0) {
    upsertSearchAttributes([{ key: STATUS, value: 'Failed' }]);
    throw ApplicationFailure.create({ type: 'VerificationFailed', nonRetryable: true, message: `plan ${input.plan} has no snapshot in storage to verify` });
  }
  const results: SnapshotVerification[] = [];
  for (const snapshot of chosen) {
    const result = await proxyActivities<RestoreActivities>({ ...LONG, activityId: `verify:${snapshot}` }).verifySnapshot(ctx, input.storage, snapshot, workflowInfo().runId);
    await quick.recordVerification(ctx, input.storage, result);
    results.push(result);
  }
  const failed = results.flatMap((r) => r.checks.filter((c) => !c.ok).map((c) => `${r.snapshot} ${c.artifact}: ${c.check}: ${c.detail}`));
  upsertSearchAttributes([{ key: STATUS, value: failed.length ? 'Failed' : 'Completed' }]);
  if (failed.length) {
    throw ApplicationFailure.create({ type: 'VerificationFailed', nonRetryable: true, message: `restore drill failed:\n- ${failed.join('\n- ')}`, details: [results] });
  }
  return results;
}

/** Newest first in; the newest plus `older` others picked at random (workflow randomness: replay-safe). */
function pickSnapshots(names: string[], older: number): string[] {
  const [latest, ...rest] = names;
  if (!latest) return [];
  const picked: string[] = [];
  while (picked.length < older && rest.length > 0) picked.push(rest.splice(Math.floor(Math.random() * rest.length), 1)[0]!);
  return [latest, ...picked];
}
