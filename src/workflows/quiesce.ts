// Stop → work → restart, shared by backup and restore. Workflow code: deterministic, activities by type only.
import { ApplicationFailure, CancellationScope, proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { QuiesceActivities } from '../activities/quiesce';
import type { PlanContext, QuiesceRecord } from '../shared/types';
import { QUICK, RESTART, STOP } from './activity-options';
import { causeMessage, failureMessage } from './failures';

/**
 * Runs `work` with the source's services stopped. The start runs whatever happened to the work (failure,
 * cancellation, a worker that died and a new one that resumed this code), and starts exactly what inspect
 * recorded in history as running before. A failed start fails the run as RestartFailed.
 */
export async function withQuiesce<T>(ctx: PlanContext, sourceName: string, work: () => Promise<T>): Promise<{ value: T; record: QuiesceRecord }> {
  const verb = { inspect: 'find running services of', stop: 'stop services of', start: 'start services of' };
  const act = (opts: ActivityOptions, step: keyof typeof verb) =>
    proxyActivities<QuiesceActivities>({ ...opts, activityId: `quiesce-${step}:${sourceName}`, summary: `quiesce: ${verb[step]} ${sourceName}` });
  const record = await act(QUICK, 'inspect').quiesceInspect(ctx, sourceName);
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
