// restoreSnapshot: fetch and check before touching anything, plan, refuse targets in use without force, then
// restore per target source inside its quiesce controller. verifyRestore: the monthly restore drill.
// Both hold the plan's lock (a backup of the plan never runs at the same time) and set a final status on every path.
import { ApplicationFailure, CancellationScope, patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { BackupActivities } from '../activities/backup';
import type { RestoreActivities } from '../activities/restore';
import { restoreWaves } from '../restore/order';
import { SNAPSHOT } from '../shared/search-attributes';
import type { FetchedSnapshot, PlanContext, RestoreInput, RestoreResult, SnapshotVerification, VerifyInput } from '../shared/types';
import { BOOKKEEPING, LONG, QUICK, retry, step } from './activity-options';
import { describeFailure, failedStatus, setStatus } from './failures';
import { restoreSnapshotV1, verifyRestoreV1 } from './legacy/restore-v1';
import { CORRECT_UNDER_FAILURE, PARALLEL_RESTORE_ARTIFACTS, PARALLEL_RESTORE_HOSTS } from './patches';
import { LOCK_WAIT_MS, withPlanLock } from './plan-lock';
import { inLanes } from './lanes';
import { withQuiesce } from './quiesce';
import { failureEvent, report, withFailedDeliveries } from './run-events';

const quick = (summary: string) => step<BackupActivities & RestoreActivities>(QUICK, summary);
/** Downloads, extraction, scratch restores: fewer attempts than a backup's copy (a person is usually waiting). */
const RESTORE_LONG = { ...LONG, retry: retry(3) };

const lockOptions = { maxWaitMs: LOCK_WAIT_MS, onWait: () => setStatus('Waiting') };

export async function restoreSnapshot(input: RestoreInput): Promise<RestoreResult> {
  if (!patched(CORRECT_UNDER_FAILURE)) return restoreSnapshotV1(input);
  try {
    // A dry run writes nothing outside its own work dir, so it does not wait for a running backup.
    if (input.dryRun) return await restoreUnlocked(input);
    return await withPlanLock(input.plan, 'restore', lockOptions, () => restoreUnlocked(input));
  } catch (err) {
    setStatus(failedStatus(err));
    throw describeFailure(err);
  }
}

async function restoreUnlocked(input: RestoreInput): Promise<RestoreResult> {
  const started = Date.now();
  setStatus('Running');
  const ctx = await quick(`load plan ${input.plan}`).loadPlan(input.plan);
  let fetched: FetchedSnapshot | undefined;
  try {
    fetched = await step<RestoreActivities>(RESTORE_LONG, `fetch and check snapshot ${input.snapshot}${input.storage ? ` from ${input.storage}` : ''}`).fetchForRestore(ctx, input, workflowInfo().runId);
    upsertSearchAttributes([{ key: SNAPSHOT, value: fetched.snapshot }]);
    const steps = await quick(`plan the restore of ${fetched.snapshot}`).planRestore(ctx, fetched, input);
    const base = { snapshot: fetched.snapshot, storage: fetched.storage, steps };
    if (input.dryRun) {
      setStatus('Completed');
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
    const restored = await restoreByHost(ctx, fetched, input, steps.filter((s) => !s.manual));
    setStatus('Completed');
    return { ...base, dryRun: false, restored, durationMs: Date.now() - started };
  } finally {
    if (fetched) {
      const workDir = fetched.workDir;
      await CancellationScope.nonCancellable(() => quick('discard restore work').discardRestoreWork(ctx, workDir));
    }
  }
}

/**
 * Steps grouped by target host, each group inside that source's quiesce controller when it has one; hosts in
 * parallel, at most plan.parallelism at once. Results come in host order, as before.
 */
async function restoreByHost(ctx: PlanContext, fetched: FetchedSnapshot, input: RestoreInput, steps: RestoreResult['steps']): Promise<RestoreResult['restored']> {
  if (!patched(PARALLEL_RESTORE_HOSTS)) return restoreHostsInTurn(ctx, fetched, input, steps);
  const hosts = [...new Set(steps.map((s) => s.host))];
  const perHost = await inLanes(hosts, ctx.plan.parallelism, (host) => restoreHost(ctx, fetched, input, host, steps.filter((s) => s.host === host)));
  return perHost.flat();
}

type Restored = RestoreResult['restored'][number];
type Step = RestoreResult['steps'][number];

/** One host's steps, inside its source's quiesce controller when it has one; results in step order. */
async function restoreHost(ctx: PlanContext, fetched: FetchedSnapshot, input: RestoreInput, host: string, mine: Step[]): Promise<Restored[]> {
  const one = (s: Step) => step<RestoreActivities>(RESTORE_LONG, `restore ${s.artifact} of ${fetched.snapshot} to ${s.target} on ${host}`, `restore:${s.artifact}`).restoreArtifact(ctx, fetched, input, s.artifact);
  // Only hosts with two or more steps reach patched(): runs that got here before it restore them one after another.
  const atOnce = mine.length > 1 && patched(PARALLEL_RESTORE_ARTIFACTS);
  const work = () => (atOnce ? restoreInWaves(ctx, mine, one) : restoreInTurn(mine, one));
  const quiesce = input.quiesce !== false && ctx.plan.sources.find((src) => src.name === host)?.quiesce;
  return quiesce ? (await withQuiesce(ctx, host, work)).value : work();
}

async function restoreInTurn(mine: Step[], one: (s: Step) => Promise<Restored>): Promise<Restored[]> {
  const restored: Restored[] = [];
  for (const s of mine) restored.push(await one(s));
  return restored;
}

/**
 * Steps that touch nothing of each other's (a database and a file tree) at once, plan.parallelism at a time; what lies
 * inside another step's tree after it (restore/order.ts). A failure lets the running steps finish and starts no other.
 */
async function restoreInWaves(ctx: PlanContext, mine: Step[], one: (s: Step) => Promise<Restored>): Promise<Restored[]> {
  const artifacts = new Map(ctx.plan.sources.flatMap((src) => src.artifacts).map((a) => [a.name, a]));
  const done = new Map<string, Restored>();
  for (const wave of restoreWaves(mine, (s) => artifacts.get(s.artifact))) {
    const results = await inLanes(wave, ctx.plan.parallelism, one);
    wave.forEach((s, i) => done.set(s.artifact, results[i]!));
  }
  return mine.map((s) => done.get(s.artifact)!);
}

/** Runs that reached restoreByHost before PARALLEL_RESTORE_HOSTS: one host after another (same commands as then). */
async function restoreHostsInTurn(ctx: PlanContext, fetched: FetchedSnapshot, input: RestoreInput, steps: RestoreResult['steps']): Promise<RestoreResult['restored']> {
  const restored: RestoreResult['restored'] = [];
  for (const host of [...new Set(steps.map((s) => s.host))]) restored.push(...(await restoreHost(ctx, fetched, input, host, steps.filter((s) => s.host === host))));
  return restored;
}

/** The drill: the latest snapshot and `verify.older` random older ones, each restored into scratch targets. */
export async function verifyRestore(input: VerifyInput): Promise<SnapshotVerification[]> {
  if (!patched(CORRECT_UNDER_FAILURE)) return verifyRestoreV1(input);
  const began = Date.now();
  try {
    return await withPlanLock(input.plan, 'verify', lockOptions, () => verifyLocked(input));
  } catch (err) {
    setStatus(failedStatus(err));
    const described = describeFailure(err);
    throw withFailedDeliveries(described, await report(failureEvent(err, described, { plan: input.plan, kind: 'verify', durationMs: Date.now() - began })));
  }
}

async function verifyLocked(input: VerifyInput): Promise<SnapshotVerification[]> {
  setStatus('Running');
  const ctx = await quick(`load plan ${input.plan}`).loadPlan(input.plan);
  // Activity arguments are not part of replay's command matching: passing the trust option needs no patch. It only
  // reaches snapshots the user named; the drill's own picks are signed ones.
  const trust = { allowUnsigned: input.allowUnsigned === true && input.snapshots !== undefined };
  const chosen = input.snapshots ?? pickSnapshots(await quick(`list snapshots of plan ${input.plan}`).listSnapshotNames(ctx, input.storage), ctx.plan.verify.older);
  if (chosen.length === 0) {
    throw ApplicationFailure.create({ type: 'VerificationFailed', nonRetryable: true, message: `plan ${input.plan} has no snapshot in storage to verify` });
  }
  const results: SnapshotVerification[] = [];
  for (const snapshot of chosen) {
    const drill = step<RestoreActivities>(RESTORE_LONG, `restore drill: ${snapshot} into scratch targets`, `verify:${snapshot}`);
    const result = await drill.verifySnapshot(ctx, input.storage, snapshot, workflowInfo().runId, trust);
    await step<RestoreActivities>(BOOKKEEPING, `record the drill result of ${snapshot}`).recordVerification(ctx, input.storage, result);
    results.push(result);
  }
  const failed = results.flatMap((r) => r.checks.filter((c) => !c.ok).map((c) => `${r.snapshot} ${c.artifact}: ${c.check}: ${c.detail}`));
  if (failed.length) {
    throw ApplicationFailure.create({ type: 'VerificationFailed', nonRetryable: true, message: `restore drill failed:\n- ${failed.join('\n- ')}`, details: [results] });
  }
  setStatus('Completed');
  // Kind `verify`: a healthchecks ping or a `succeeded` subscription for backups is not fired by a drill.
  await report({ event: 'succeeded', plan: input.plan, kind: 'verify', snapshot: chosen[0], status: 'Completed', durationMs: results.reduce((n, r) => n + r.duration_ms, 0) });
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
