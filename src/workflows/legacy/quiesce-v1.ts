// LEGACY v1: this file as it was at e676c07 (imports and the exported name adjusted, nothing else), kept so runs
// started before patch CORRECT_UNDER_FAILURE replay and finish on it. Delete with the patch (src/workflows/patches.ts).
// Stop → work → restart, shared by backup and restore. Workflow code: deterministic, activities by type only.
import { ApplicationFailure, CancellationScope, proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { QuiesceActivities } from '../../activities/quiesce';
import { PERMANENT_ERRORS } from '../../shared/errors';
import type { PlanContext, QuiesceRecord } from '../../shared/types';
import { causeMessage, failureMessage } from '../failures';

const INSPECT: ActivityOptions = { startToCloseTimeout: '2m', retry: { initialInterval: '5s', backoffCoefficient: 2, maximumAttempts: 5, nonRetryableErrorTypes: [...PERMANENT_ERRORS] } };
/** Stopping services: quick, retried a little. */
const STOP: ActivityOptions = { startToCloseTimeout: '10m', heartbeatTimeout: '30s', retry: { initialInterval: '5s', backoffCoefficient: 2, maximumAttempts: 3, nonRetryableErrorTypes: [...PERMANENT_ERRORS] } };
/** Starting them again: retried for minutes before the run reports RestartFailed, never given up lightly. */
const RESTART: ActivityOptions = {
  startToCloseTimeout: '10m',
  heartbeatTimeout: '30s',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 10, nonRetryableErrorTypes: ['ConfigError', 'HostKeyRejected', 'AuthFailed', 'MissingTool'] },
};

/**
 * Runs `work` with the source's services stopped. The start runs whatever happened to the work (failure,
 * cancellation, a worker that died and a new one that resumed this code), and starts exactly what inspect
 * recorded in history as running before. A failed start fails the run as RestartFailed.
 */
export async function withQuiesce<T>(ctx: PlanContext, sourceName: string, work: () => Promise<T>): Promise<{ value: T; record: QuiesceRecord }> {
  const act = (opts: ActivityOptions, step: string) => proxyActivities<QuiesceActivities>({ ...opts, activityId: `quiesce-${step}:${sourceName}` });
  const record = await act(INSPECT, 'inspect').quiesceInspect(ctx, sourceName);
  let failure: { err: unknown } | undefined;
  let value: T | undefined;
  try {
    record.stopped_at = await act(STOP, 'stop').quiesceStop(ctx, sourceName, record.services);
    value = await work();
  } catch (err) {
    failure = { err };
  }
  try {
    record.started_at = await CancellationScope.nonCancellable(() => act(RESTART, 'start').quiesceStart(ctx, sourceName, record.services));
  } catch (err) {
    const cause = causeMessage(err);
    const before = failure ? ` (the work had already failed: ${failureMessage(failure.err)})` : '';
    throw ApplicationFailure.create({
      message: `${sourceName}: services stopped for the copy could not be started again: ${record.services.join(', ')}: ${cause}${before}`,
      type: 'RestartFailed',
      nonRetryable: true,
    });
  }
  if (failure) throw failure.err;
  return { value: value as T, record };
}
