// The Temporal side of every activity: periodic heartbeats (which also deliver cancellation), the
// cancellation signal for child processes, and permanent LifeboatErrors turned into non-retryable failures.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { LifeboatError } from '../shared/errors';

export interface ActivityTools {
  signal: AbortSignal;
  /** Latest progress; sent with the next heartbeat, visible in the Web UI's pending activity. */
  progress(details: Record<string, unknown>): void;
}

const HEARTBEAT_EVERY_MS = 5_000;

export async function runActivity<T>(fn: (tools: ActivityTools) => Promise<T>): Promise<T> {
  const ctx = Context.current();
  let latest: Record<string, unknown> = {};
  ctx.heartbeat(latest);
  const timer = setInterval(() => ctx.heartbeat(latest), HEARTBEAT_EVERY_MS);
  try {
    return await fn({ signal: ctx.cancellationSignal, progress: (d) => (latest = { ...latest, ...d }) });
  } catch (err) {
    // Report a cancellation as such (the reason is Temporal's CancelledFailure), not as the child's error.
    if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
    throw toFailure(err);
  } finally {
    clearInterval(timer);
  }
}

export function toFailure(err: unknown): unknown {
  if (err instanceof LifeboatError) {
    const details = err.details ? [err.details] : undefined;
    return err.permanent
      ? ApplicationFailure.nonRetryable(err.message, err.code, ...(details ?? []))
      : ApplicationFailure.retryable(err.message, err.code, ...(details ?? []));
  }
  return err;
}
