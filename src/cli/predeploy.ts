// `lifeboat predeploy`: a snapshot before a deployment that CI can wait on, and its release after the deploy is
// verified. The workflow id comes from plan + deploy id, so a retried CI job attaches to the same run and
// never makes a second snapshot while the first run is going or has succeeded; a failed one can be retried. The
// release is idempotent too: a re-run release step is told what already happened, with exit 0.
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { TypedSearchAttributes, WorkflowNotFoundError } from '@temporalio/common';
import type { Config } from '../config/schema';
import { LifeboatError } from '../shared/errors';
import { parseDurationMs } from '../shared/units';
import { DEPLOY_ID, PLAN, TIER } from '../shared/search-attributes';
import { recordKey } from '../snapshot/naming';
import { openStorage } from '../storage';
import type { predeployBackup, PredeployState } from '../workflows/predeploy';
import { RESULT_PREFIX } from './backup';
import { isTransient, terminalOutput, watchRun } from './follow';

export function predeployWorkflowId(plan: string, deployId: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$/.test(deployId)) throw new LifeboatError('ConfigError', `deploy id "${deployId}": use letters, digits, "_", "-", ".", ":" (at most 200)`);
  return `predeploy-${plan}-${deployId}`;
}

/** `7d`, `12h`, `30m`, `90s` → seconds. */
export function parseHold(text: string): number {
  const ms = parseDurationMs(text);
  if (ms === undefined) throw new LifeboatError('ConfigError', `--hold ${text}: use a number and s, m, h or d (e.g. 7d)`);
  return ms / 1000;
}

export async function startPredeploy(client: Client, config: Config, plan: string, deployId: string, holdSeconds: number): Promise<WorkflowHandle<typeof predeployBackup>> {
  const workflowId = predeployWorkflowId(plan, deployId);
  try {
    return await client.workflow.start<typeof predeployBackup>('predeployBackup', {
      taskQueue: config.temporal.taskQueue,
      workflowId,
      args: [{ plan, deployId, holdSeconds }],
      staticSummary: `pre-deploy snapshot of plan ${plan} for deploy ${deployId} (started by lifeboat predeploy)`,
      workflowIdConflictPolicy: 'USE_EXISTING', // still running: attach
      // Completed: attach to it (never a second snapshot). Failed, cancelled or timed out: a CI retry starts anew.
      workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
      typedSearchAttributes: new TypedSearchAttributes([
        { key: PLAN, value: plan },
        { key: TIER, value: 'pre-deploy' },
        { key: DEPLOY_ID, value: deployId },
      ]),
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return client.workflow.getHandle<typeof predeployBackup>(workflowId);
    throw err;
  }
}

/** The backup the pre-deploy run starts as its child (see workflows/predeploy.ts): whose progress is shown. */
const backupOf = (handle: WorkflowHandle) => handle.client.getHandle(`${handle.workflowId}-backup`);

/**
 * Waits until the snapshot is uploaded and checksummed (or the backup failed), showing the backup's progress. A run
 * attached to again after its hold was released may have lost its snapshot to retention: that is said, not hidden.
 */
export async function waitForSnapshot(handle: WorkflowHandle<typeof predeployBackup>, config: Config, plan: string, log = console.error): Promise<number> {
  const watch = watchRun(backupOf(handle), { ...terminalOutput(log), taskQueue: config.temporal.taskQueue });
  let state: PredeployState;
  try {
    state = await snapshotState(handle);
  } finally {
    await watch.stop();
  }
  if (state.phase === 'failed' || !state.result) {
    log(`pre-deploy backup failed (${state.error?.type}): ${state.error?.message}`);
    console.log(`${RESULT_PREFIX}${JSON.stringify({ success: false, workflow_id: handle.workflowId, error_type: state.error?.type, error: state.error?.message })}`);
    return 1;
  }
  const { snapshot } = state.result;
  if (state.phase === 'released' && (await goneFromStorage(config, plan, snapshot))) {
    const message = `snapshot ${snapshot} of this deploy id was released and retention has deleted it since; a new --deploy-id makes a new snapshot`;
    log(`pre-deploy snapshot gone: ${message}`);
    console.log(`${RESULT_PREFIX}${JSON.stringify({ success: false, workflow_id: handle.workflowId, error_type: 'SnapshotDeleted', error: message, snapshot })}`);
    return 1;
  }
  const held = state.phase === 'released' ? 'its hold is already released' : `held until ${state.holdUntil} or \`lifeboat predeploy verified\``;
  log(`snapshot ${snapshot} (${state.phase}; ${held})`);
  console.log(snapshot);
  console.log(`${RESULT_PREFIX}${JSON.stringify({ ...state.result, workflow_id: handle.workflowId, hold_until: state.holdUntil, phase: state.phase })}`);
  return 0;
}

/** The run's close status (TERMINATED, TIMED_OUT …), or undefined while it runs or Temporal does not answer. */
async function closedStatus(handle: WorkflowHandle): Promise<string | undefined> {
  const d = await handle.describe().catch(() => undefined);
  return d && d.status.name !== 'RUNNING' ? d.status.name : undefined;
}

/** The run's state once the snapshot exists or the backup failed; queries that find no answer (Temporal or a worker away) are asked again. */
async function snapshotState(handle: WorkflowHandle<typeof predeployBackup>): Promise<PredeployState> {
  for (;;) {
    const state = await handle.client
      .withDeadline(Date.now() + QUERY_DEADLINE_MS, () => handle.query<PredeployState>('predeployState'))
      .catch((err: unknown) => {
        if (isTransient(err)) return undefined; // the watch says why (Temporal unreachable, no worker)
        throw err;
      });
    if (state && (state.phase === 'failed' || state.result)) return state;
    // A run terminated, timed out or reset while backing up answers `backing-up` for ever: its close is the answer.
    if (state && (await closedStatus(handle))) {
      return { ...state, phase: 'failed', error: { type: 'Terminated', message: `the pre-deploy run ended (${await closedStatus(handle)}) before its snapshot existed` } };
    }
    await sleep(1000);
  }
}

const QUERY_DEADLINE_MS = 15_000;

/** True only when every storage of the plan answers that the snapshot's record is gone; one that cannot tell counts as holding it. */
async function goneFromStorage(config: Config, plan: string, snapshot: string): Promise<boolean> {
  const names = config.plans[plan]?.storages ?? [];
  const held = await Promise.all(
    names.map(async (name) => {
      try {
        return (await (await openStorage(name, config.storages[name]!)).stat(recordKey(plan, snapshot))) !== null;
      } catch {
        return true;
      }
    }),
  );
  return names.length > 0 && held.every((h) => !h);
}

/**
 * `predeploy verified`: releases the hold on the deploy's snapshot. Idempotent: a re-run release step finds the run
 * ended and says what became of it, with exit 0; an unknown deploy id is one line (ConfigError).
 */
export async function releaseDeploy(client: Client, plan: string, deployId: string, log = console.error): Promise<number> {
  const handle = client.workflow.getHandle<typeof predeployBackup>(predeployWorkflowId(plan, deployId));
  for (let tries = 0; ; tries++) {
    const d = await handle.describe().catch((err: unknown) => {
      if (err instanceof WorkflowNotFoundError) {
        throw new LifeboatError('ConfigError', `no pre-deploy run of plan ${plan} for deploy id ${deployId} (\`lifeboat predeploy --plan ${plan} --deploy-id ${deployId}\` starts one)`);
      }
      throw err;
    });
    if (d.status.name !== 'RUNNING') return reportEnded(handle, d.status.name, deployId, log);
    try {
      await handle.signal('deployVerified');
      log(`deploy ${deployId} verified: the hold on its snapshot is released`);
      return 0;
    } catch (err) {
      // Ended between the describe and the signal (its hold expired): describe again, once.
      if (!(err instanceof WorkflowNotFoundError) || tries > 0) throw err;
    }
  }
}

async function reportEnded(handle: WorkflowHandle<typeof predeployBackup>, status: string, deployId: string, log: (line: string) => void): Promise<number> {
  if (status === 'COMPLETED') {
    const state = await handle.result();
    log(`deploy ${deployId} was already released${state.result ? ` (snapshot ${state.result.snapshot})` : ''}: nothing to do`);
    return 0;
  }
  const cause = await handle.result().then(
    () => undefined,
    (err: unknown) => (err instanceof WorkflowFailedError ? err.cause : err) as Error | undefined,
  );
  const why = `the pre-deploy run of deploy ${deployId} ended ${status.toLowerCase()}${cause?.message ? ` (${cause.message.split('\n')[0]})` : ''}`;
  // Ended while holding (terminated, or its release step failed): the record's hold stands until it expires.
  const state = await handle.client.withDeadline(Date.now() + QUERY_DEADLINE_MS, () => handle.query<PredeployState>('predeployState')).catch(() => undefined);
  if (state?.phase === 'held' && state.result) {
    log(`${why} while holding snapshot ${state.result.snapshot}: the hold was not released and stands until ${state.holdUntil}`);
    return 1;
  }
  log(`${why}: no hold is left to release`);
  return 0;
}
