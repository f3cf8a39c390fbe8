// LEGACY v1: this file as it was at e676c07 (imports and the exported name adjusted, nothing else), kept so runs
// started before patch CORRECT_UNDER_FAILURE replay and finish on it. Delete with the patch (src/workflows/patches.ts).
// predeployBackup: one snapshot per deploy id (the workflow id is derived from it, so a retried CI job attaches
// to the same run), held against retention until CI signals that the deployment is verified, or the hold expires.
import { condition, defineQuery, defineSignal, executeChild, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { BackupActivities } from '../../activities/backup';
import type { RetentionActivities } from '../../activities/retention';
import { PERMANENT_ERRORS } from '../../shared/errors';
import { DEPLOY_ID, PLAN, TIER } from '../../shared/search-attributes';
import type { BackupResult } from '../../shared/types';
import { backupPlan } from '../backup';

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

const acts = proxyActivities<BackupActivities & RetentionActivities>({
  startToCloseTimeout: '5m',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumAttempts: 10, nonRetryableErrorTypes: [...PERMANENT_ERRORS] },
});

export async function predeployBackupV1(input: PredeployInput): Promise<PredeployState> {
  const holdUntil = new Date(Date.now() + input.holdSeconds * 1000).toISOString();
  const state: PredeployState = { phase: 'backing-up', holdUntil };
  let verified = false;
  setHandler(predeployState, () => state);
  setHandler(deployVerified, () => void (verified = true));
  try {
    state.result = await executeChild(backupPlan, {
      workflowId: `${workflowInfo().workflowId}-backup`,
      args: [{ plan: input.plan, tier: 'pre-deploy', deployId: input.deployId, holdUntil }],
      typedSearchAttributes: [
        { key: PLAN, value: input.plan },
        { key: TIER, value: 'pre-deploy' },
        { key: DEPLOY_ID, value: input.deployId },
      ],
    });
  } catch (err) {
    const cause = (err as { cause?: { type?: string; message?: string } }).cause;
    state.phase = 'failed';
    state.error = { type: cause?.type, message: cause?.message ?? (err as Error).message };
    throw err;
  }
  state.phase = 'held';
  // Until CI says the deploy is good, or the hold runs out; the record's hold.until covers a lost workflow.
  await condition(() => verified, input.holdSeconds * 1000);
  await acts.releaseHold(await acts.loadPlan(input.plan), state.result.snapshot);
  state.phase = 'released';
  return state;
}
