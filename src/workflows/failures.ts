// How workflows report failures and outcomes: the root cause's type and message, labelled with the step that
// failed, so the Web UI and the CLI name it directly (e.g. `stack:appdb: … (IntegrityCheckFailed)`), and the
// final LifeboatStatus that every path of every workflow sets. Workflow code: pure.
import { ActivityFailure, ApplicationFailure, CancellationScope, ChildWorkflowFailure, TimeoutFailure, isCancellation, upsertSearchAttributes } from '@temporalio/workflow';
import { STATUS } from '../shared/search-attributes';
import { parseDurationMs } from '../shared/units';

export type RunStatus = 'Waiting' | 'Running' | 'Completed' | 'PartiallyFailed' | 'Failed' | 'Cancelled' | 'TimedOut';

export function setStatus(status: RunStatus): void {
  upsertSearchAttributes([{ key: STATUS, value: status }]);
}

/** The status a run ends with when `err` ends it. */
export function failedStatus(err: unknown): RunStatus {
  if (err instanceof ApplicationFailure && err.type === 'PlanTimeout') return 'TimedOut';
  return isCancellation(err) ? 'Cancelled' : 'Failed';
}

/**
 * Re-raises an activity's (or child's) failure as the workflow's own, non-retryable, with the step named and a
 * type from Lifeboat's vocabulary: never a bare ActivityFailure. Cancellation passes through as cancellation.
 */
export function describeFailure(err: unknown): unknown {
  if (err instanceof ChildWorkflowFailure && err.cause instanceof ApplicationFailure) return err.cause;
  if (!(err instanceof ActivityFailure) || isCancellation(err)) return err;
  const step = stepLabel(err);
  if (err.cause instanceof ApplicationFailure) {
    const { message, type, details } = err.cause;
    return plain(ApplicationFailure.create({ message: `${step}: ${message}`, type: type ?? 'ActivityFailed', nonRetryable: true, details: details as unknown[] | undefined }));
  }
  if (err.cause instanceof TimeoutFailure) {
    return plain(ApplicationFailure.create({ message: `${step}: timed out (${timeoutName(err.cause)}); the worker may have died or the step hung`, type: 'StepTimedOut', nonRetryable: true }));
  }
  return plain(ApplicationFailure.create({ message: `${step}: ${causeMessage(err)}`, type: 'ActivityFailed', nonRetryable: true }));
}

/**
 * The Web UI shows a failure's stack under its message: for a failure Lifeboat raised on purpose, the workflow
 * bundle's frames say nothing to a user, so the message stands alone (replay does not compare stacks).
 */
export function plain(failure: ApplicationFailure): ApplicationFailure {
  failure.stack = '';
  return failure;
}

/** describeFailure's message, for failures reported inside another one (a restart after a failed copy). */
export function failureMessage(err: unknown): string {
  const described = describeFailure(err);
  return described instanceof Error ? described.message : String(described);
}

/** The activity's own error message, without the SDK's "Activity task failed" wrapper. */
export function causeMessage(err: unknown): string {
  return err instanceof ActivityFailure && err.cause ? err.cause.message : (err as Error).message;
}

function timeoutName(t: TimeoutFailure): string {
  return t.timeoutType ? t.timeoutType.toLowerCase().replace(/_/g, '-') : 'timeout';
}

/** `capture:<source>:<artifact>` → `<source>:<artifact>`; `restore:…`/`verify:…` as they are; else the activity type. */
export function stepLabel(err: ActivityFailure): string {
  const id = err.activityId ?? '';
  if (id.startsWith('capture:')) return id.slice('capture:'.length);
  if (id.startsWith('restore:') || id.startsWith('verify:')) return id;
  return err.activityType ?? 'activity';
}

/**
 * Runs `fn` within the plan's overall bound. Past it, everything inside is cancelled: cleanups (restarts, removal
 * of `.partial`) still run in their non-cancellable scopes, and the run ends as PlanTimeout (status TimedOut).
 */
export async function withRunTimeout<T>(timeout: string, what: string, fn: () => Promise<T>): Promise<T> {
  const ms = parseDurationMs(timeout) ?? 24 * 3_600_000;
  try {
    return await CancellationScope.withTimeout(ms, fn);
  } catch (err) {
    // The run itself was not cancelled, so the cancellation came from the timeout.
    if (isCancellation(err) && !CancellationScope.current().consideredCancelled) {
      throw ApplicationFailure.create({ type: 'PlanTimeout', nonRetryable: true, message: `${what} ran longer than its timeout (${timeout}) and was stopped; stopped services were started again and partial work removed` });
    }
    throw err;
  }
}
