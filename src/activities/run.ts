// The Temporal side of every activity: heartbeats that carry progress (and deliver cancellation), a progress
// watchdog that fails a hung step as Stalled, the abort signal that kills child processes, and the mapping of
// errors to Lifeboat's vocabulary (permanent ones non-retryable).
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { LifeboatError } from '../shared/errors';

export interface ActivityTools {
  /** Aborted on cancellation and when the step stalls: child processes (ssh, rsync, pg_dump) are killed with it. */
  signal: AbortSignal;
  /** Temporal's attempt number: 1 on the first try, so no earlier attempt left anything behind. */
  attempt: number;
  /** Latest progress; sent with the next heartbeat, visible in the Web UI's pending activity. A change is "movement". */
  progress(details: Record<string, unknown>): void;
  /**
   * A phase that is silent by nature (SQLite VACUUM INTO, an OpenSearch snapshot, Redis BGSAVE): the watchdog allows
   * up to `boundMs` of silence instead of the step's stall timeout, until the first progress after it starts.
   */
  quiet<T>(phase: string, boundMs: number, fn: () => Promise<T>): Promise<T>;
}

export interface RunOptions {
  /** Fail as Stalled when progress has not moved for this long (default: DEFAULT_STALL_MS). */
  stallMs?: number;
  /** Names the step in a Stalled message. */
  what?: string;
}

export const DEFAULT_STALL_MS = 10 * 60_000;
const HEARTBEAT_EVERY_MS = 3_000;

export async function runActivity<T>(fn: (tools: ActivityTools) => Promise<T>, opts: RunOptions = {}): Promise<T> {
  const ctx = Context.current();
  const stallMs = opts.stallMs ?? DEFAULT_STALL_MS;
  const abort = new AbortController();
  // A step interrupted but to be retried (worker shutdown, heartbeat timeout) aborts with a retryable reason, so that
  // what a retry resumes from (an open multipart upload, a `.partial`) is kept; a real cancellation drops it.
  const onCancel = () => {
    const d = ctx.cancellationDetails;
    const retried = d && (d.workerShutdown || d.timedOut) && !d.cancelRequested;
    abort.abort(retried ? new LifeboatError('CommandFailed', `${ctx.info.activityType} was interrupted (${d.workerShutdown ? 'worker shutdown' : 'timed out'}); the next attempt resumes`) : ctx.cancellationSignal.reason);
  };
  ctx.cancellationSignal.addEventListener('abort', onCancel, { once: true });
  let latest: Record<string, unknown> = {};
  let latestKey = '{}';
  let movedAt = Date.now();
  let quietUntil = 0;
  let stalled: string | undefined;
  ctx.heartbeat(latest);
  const timer = setInterval(() => {
    ctx.heartbeat(latest);
    const now = Date.now();
    if (!stalled && now - movedAt > stallMs && now > quietUntil) {
      stalled = `${opts.what ?? ctx.info.activityType}: no progress for ${Math.round((now - movedAt) / 1000)} s (stall timeout ${Math.round(stallMs / 1000)} s); last progress: ${latestKey}`;
      abort.abort(new LifeboatError('Stalled', stalled));
    }
  }, Math.min(HEARTBEAT_EVERY_MS, Math.max(250, stallMs / 4)));
  const tools: ActivityTools = {
    signal: abort.signal,
    attempt: ctx.info.attempt,
    progress(details) {
      latest = { ...latest, ...details };
      const key = JSON.stringify(latest);
      if (key !== latestKey) {
        latestKey = key;
        movedAt = Date.now();
        quietUntil = 0;
      }
    },
    async quiet(phase, boundMs, work) {
      tools.progress({ phase });
      quietUntil = Date.now() + boundMs;
      try {
        return await work();
      } finally {
        quietUntil = 0;
        movedAt = Date.now();
      }
    },
  };
  try {
    return await fn(tools);
  } catch (err) {
    // Report a cancellation as such (the reason is Temporal's CancelledFailure), not as the child's error.
    if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
    if (stalled) throw ApplicationFailure.retryable(stalled, 'Stalled', latest);
    throw toFailure(err);
  } finally {
    clearInterval(timer);
    ctx.cancellationSignal.removeEventListener('abort', onCancel);
  }
}

/** Node's errno codes that no retry fixes, in Lifeboat's words. */
const ERRNO_CODES: Record<string, 'InsufficientSpace' | 'PermissionDenied'> = {
  ENOSPC: 'InsufficientSpace',
  EDQUOT: 'InsufficientSpace',
  EACCES: 'PermissionDenied',
  EPERM: 'PermissionDenied',
  EROFS: 'PermissionDenied',
};

/** A full disk or a permission error (errno, or a child's "No space left on device") as a LifeboatError; else `err`. */
const NO_SPACE = /no space left on device|ENOSPC/i; // Go programs (age) print it in lower case

export function asLifeboatError(err: unknown): unknown {
  if (err instanceof LifeboatError) {
    // A full disk reported through a program's stderr (rsync, tar, a dump) is still a full disk: not retried.
    const full = err.code !== 'InsufficientSpace' && NO_SPACE.test(err.message);
    return full ? new LifeboatError('InsufficientSpace', err.message, err.details) : err;
  }
  const errno = (err as NodeJS.ErrnoException | undefined)?.code ?? (NO_SPACE.test(String((err as Error | undefined)?.message)) ? 'ENOSPC' : undefined);
  if (!errno || !ERRNO_CODES[errno]) return err;
  const e = err as NodeJS.ErrnoException;
  return new LifeboatError(ERRNO_CODES[errno], `${e.message}${e.path && !e.message.includes(e.path) ? ` (${e.path})` : ''}`);
}

export function toFailure(err: unknown): unknown {
  err = asLifeboatError(err);
  if (err instanceof LifeboatError) {
    const details = err.details ? [err.details] : undefined;
    const failure = err.permanent
      ? ApplicationFailure.nonRetryable(err.message, err.code, ...(details ?? []))
      : ApplicationFailure.retryable(err.message, err.code, ...(details ?? []));
    // An expected failure is its type and message; a stack of node_modules frames in the Web UI only hides that.
    failure.stack = '';
    return failure;
  }
  return err;
}
