// `lifeboat predeploy`: a snapshot before a deployment that CI can wait on, and its release after the deploy is
// verified. The workflow id comes from plan + deploy id, so a retried CI job attaches to the same run and
// never makes a second snapshot while the first run is going or has succeeded; a failed one can be retried.
import { WorkflowExecutionAlreadyStartedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import type { Config } from '../config/schema';
import { LifeboatError } from '../shared/errors';
import { parseDurationMs } from '../shared/units';
import { DEPLOY_ID, PLAN, TIER } from '../shared/search-attributes';
import type { predeployBackup, PredeployState } from '../workflows/predeploy';
import { RESULT_PREFIX } from './backup';

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

/** Polls the run's state until the snapshot is uploaded and checksummed (or the backup failed). */
export async function waitForSnapshot(handle: WorkflowHandle<typeof predeployBackup>, log = console.error): Promise<number> {
  for (;;) {
    const state = await handle.query<PredeployState>('predeployState');
    if (state.phase === 'failed') {
      log(`pre-deploy backup failed (${state.error?.type}): ${state.error?.message}`);
      console.log(`${RESULT_PREFIX}${JSON.stringify({ success: false, workflow_id: handle.workflowId, error_type: state.error?.type, error: state.error?.message })}`);
      return 1;
    }
    if (state.result) {
      log(`snapshot ${state.result.snapshot} (${state.phase}; held until ${state.holdUntil} or \`lifeboat predeploy verified\`)`);
      console.log(state.result.snapshot);
      console.log(`${RESULT_PREFIX}${JSON.stringify({ ...state.result, workflow_id: handle.workflowId, hold_until: state.holdUntil, phase: state.phase })}`);
      return 0;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
