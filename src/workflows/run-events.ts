// What a run tells the outside world when it starts and ends: one reportEvent activity per event (notifications and
// metrics on the worker). Reporting can never change a run's outcome: it runs outside cancellation, with its own
// retry policy, and a failure to report is recorded, not raised. Workflow code: pure.
import { ActivityFailure, ApplicationFailure, CancellationScope, isCancellation, patched, proxyActivities, workflowInfo, type ActivityOptions } from '@temporalio/workflow';
import type { NotificationResult, RunEvent } from '../shared/types';
import { retry } from './activity-options';
import { causeMessage, failedStatus, plain, stepLabel } from './failures';
import { RUN_EVENTS } from './patches';

/** The activity the worker registers (src/activities/notify.ts). */
export interface ReportActivities {
  reportEvent(event: RunEvent): Promise<NotificationResult[]>;
}

/** Each delivery has its own short timeouts and attempts inside the activity; these bound the whole report. */
export const REPORT: ActivityOptions = { startToCloseTimeout: '2m', scheduleToCloseTimeout: '10m', heartbeatTimeout: '30s', retry: retry(3, { initialInterval: '2s' }) };

/** The error text a notification carries: its last 10 KB (the end names the cause). */
export const MAX_ERROR_CHARS = 10 * 1024;

/** Reports `event` (runs started before RUN_EVENTS report nothing); returns the deliveries, never throws. */
export async function report(event: Omit<RunEvent, 'workflowId' | 'runId'>): Promise<NotificationResult[]> {
  if (!patched(RUN_EVENTS)) return [];
  const { workflowId, runId } = workflowInfo();
  const full: RunEvent = { ...event, workflowId, runId };
  try {
    const { reportEvent } = proxyActivities<ReportActivities>({ ...REPORT, summary: `notify: ${event.kind} of plan ${event.plan} ${event.event.replace(/_/g, ' ')}` });
    return await CancellationScope.nonCancellable(() => reportEvent(full));
  } catch (err) {
    return [{ target: '*', type: 'report', event: event.event, ok: false, error: `reporting failed: ${causeMessage(err)}` }];
  }
}

/**
 * A failed run has no result to carry its failed deliveries: they go into the failure's details (after the step's
 * own), as `{ notifications }`, so the CLI's failure line can name them. Cancellation passes through unchanged.
 */
export function withFailedDeliveries(described: unknown, deliveries: NotificationResult[]): unknown {
  const failed = deliveries.filter((n) => !n.ok);
  if (failed.length === 0 || !(described instanceof ApplicationFailure)) return described;
  const { message, type, details } = described;
  return plain(ApplicationFailure.create({ message, type: type ?? undefined, nonRetryable: true, details: [...((details as unknown[] | undefined) ?? []), { notifications: failed }] }));
}

/**
 * A failure as the event it is: restart_failed when services stayed down, verify_failed for a drill. The type is
 * the run's own (describeFailure's: StepTimedOut for a timed-out step); the message is the step's, without its label.
 */
export function failureEvent(err: unknown, described: unknown, base: Pick<RunEvent, 'plan' | 'kind' | 'tier' | 'snapshot' | 'durationMs'>): Omit<RunEvent, 'workflowId' | 'runId'> {
  const cause = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause : err instanceof ApplicationFailure ? err : undefined;
  const errorType = isCancellation(err) ? 'Cancelled' : described instanceof ApplicationFailure && described.type ? described.type : (cause?.type ?? 'ActivityFailed');
  const message = cause?.message ?? (described instanceof Error ? described.message : causeMessage(err));
  const event = errorType === 'RestartFailed' ? 'restart_failed' : base.kind === 'verify' ? 'verify_failed' : 'failed';
  return {
    ...base,
    event,
    status: failedStatus(err),
    errorType,
    error: message.length > MAX_ERROR_CHARS ? `…${message.slice(-MAX_ERROR_CHARS)}` : message,
    ...(failingStep(err, errorType) ? { failingStep: failingStep(err, errorType) } : {}),
  };
}

function failingStep(err: unknown, errorType: string): string | undefined {
  if (err instanceof ActivityFailure) return stepLabel(err);
  return { PlanTimeout: 'run timeout', PlanBusy: 'plan lock', RestartFailed: 'restart', TargetInUse: 'restore plan', VerificationFailed: 'restore drill' }[errorType];
}
