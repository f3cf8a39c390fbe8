// predeployBackup: one snapshot per deploy id (the workflow id is derived from it, so a retried CI job attaches
// to the same run), held against retention until CI signals that the deployment is verified, or the hold expires.
import { condition, defineQuery, defineSignal, executeChild, patched, setHandler, workflowInfo } from '@temporalio/workflow';
import type { BackupActivities } from '../activities/backup';
import type { RetentionActivities } from '../activities/retention';
import { DEPLOY_ID, PLAN, TIER } from '../shared/search-attributes';
import type { BackupResult } from '../shared/types';
import { BOOKKEEPING, step } from './activity-options';
import { backupPlan } from './backup';
import { describeFailure, failedStatus, setStatus } from './failures';
import { predeployBackupV1 } from './legacy/predeploy-v1';
import { CORRECT_UNDER_FAILURE } from './patches';

export interface PredeployInput {
  plan: string;
  deployId: string;
  /** How long the snapshot is held at most, in seconds. */
  holdSeconds: number;
}

export interface PredeployState {
  phase: 'backing-up' | 'held' | 'released' | 'failed';
  holdUntil: string;
  result?: BackupResult;
  error?: { type?: string; message: string };
}

export const deployVerified = defineSignal('deployVerified');
export const predeployState = defineQuery<PredeployState>('predeployState');


export async function predeployBackup(input: PredeployInput): Promise<PredeployState> {
  if (!patched(CORRECT_UNDER_FAILURE)) return predeployBackupV1(input);
  const holdUntil = new Date(Date.now() + input.holdSeconds * 1000).toISOString();
  const state: PredeployState = { phase: 'backing-up', holdUntil };
  let verified = false;
  setHandler(predeployState, () => state);
  setHandler(deployVerified, () => void (verified = true));
  setStatus('Running');
  try {
    state.result = await executeChild(backupPlan, {
      workflowId: `${workflowInfo().workflowId}-backup`,
      staticSummary: `pre-deploy backup of plan ${input.plan} for deploy ${input.deployId}`,
      args: [{ plan: input.plan, tier: 'pre-deploy', deployId: input.deployId, holdUntil }],
      typedSearchAttributes: [
        { key: PLAN, value: input.plan },
        { key: TIER, value: 'pre-deploy' },
        { key: DEPLOY_ID, value: input.deployId },
      ],
    });
  } catch (err) {
    const described = describeFailure(err) as { type?: string; message?: string };
    state.phase = 'failed';
    state.error = { type: described.type, message: described.message ?? String(err) };
    setStatus(failedStatus(err));
    throw described;
  }
  state.phase = 'held';
  try {
    // Until CI says the deploy is good, or the hold runs out; the record's hold.until covers a lost workflow.
    await condition(() => verified, input.holdSeconds * 1000);
    const ctx = await step<BackupActivities>(BOOKKEEPING, `load plan ${input.plan}`).loadPlan(input.plan);
    await step<RetentionActivities>(BOOKKEEPING, `release the hold on ${state.result.snapshot} (deploy ${input.deployId})`).releaseHold(ctx, state.result.snapshot);
  } catch (err) {
    setStatus(failedStatus(err));
    throw describeFailure(err);
  }
  state.phase = 'released';
  setStatus('Completed');
  return state;
}
