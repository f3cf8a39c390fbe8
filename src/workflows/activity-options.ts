// The one set of activity option tiers every workflow uses. Workflow code: pure constants.
import { ActivityCancellationType, proxyActivities, type ActivityOptions, type RetryPolicy } from '@temporalio/workflow';
import { PERMANENT_ERRORS } from '../shared/errors';

/** Exponential backoff from 5 s; permanent errors (bad config, auth, missing path, no disk …) are never retried. */
export function retry(maximumAttempts: number, overrides: Partial<RetryPolicy> = {}): RetryPolicy {
  return { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '5m', maximumAttempts, nonRetryableErrorTypes: [...PERMANENT_ERRORS], ...overrides };
}

/**
 * Steps on the worker's own disk and config: reading the plan, claiming a name, cleaning up. Every activity
 * heartbeats (activities/run.ts), so a 30 s heartbeat timeout hands a dead worker's step to a live one quickly.
 */
export const QUICK: ActivityOptions = { startToCloseTimeout: '2m', scheduleToCloseTimeout: '30m', heartbeatTimeout: '30s', retry: retry(5) };

/**
 * Remote checks (SSH, du over large trees, storage credentials). Its retry budget matches capture's, so a
 * 20 s database or SSH outage that a dump would survive does not fail the run when it falls on preflight.
 */
export const REMOTE: ActivityOptions = { startToCloseTimeout: '30m', scheduleToCloseTimeout: '3h', heartbeatTimeout: '30s', retry: retry(5) };

/**
 * Dumps, rsync, hashing, archiving, uploading, downloads, scratch restores: long, heartbeating (every 3–5 s),
 * cancellable. A 30 s heartbeat timeout lets a new worker take over within about half a minute when the old one
 * died mid-copy; a stalled step is caught by its own progress watchdog (see activities/run.ts), well before the
 * start-to-close bound.
 */
export const LONG: ActivityOptions = {
  startToCloseTimeout: '12h',
  scheduleToCloseTimeout: '20h',
  heartbeatTimeout: '30s',
  retry: retry(5),
  // A cancelled copy is waited for until its processes are gone, so nothing writes into `.partial` (or a mirror)
  // after the workflow has moved on to restart services and discard it.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
};

/** Stopping services: quick, retried a little. */
export const STOP: ActivityOptions = {
  startToCloseTimeout: '10m',
  scheduleToCloseTimeout: '30m',
  heartbeatTimeout: '30s',
  retry: retry(3),
  // The restart must not race a stop that is still running.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
};

/**
 * Starting services again: retried for minutes before the run reports RestartFailed. Only errors that no retry
 * can fix stop it early.
 */
export const RESTART: ActivityOptions = {
  startToCloseTimeout: '10m',
  scheduleToCloseTimeout: '30m',
  heartbeatTimeout: '30s',
  retry: retry(10, { initialInterval: '2s', maximumInterval: '1m', nonRetryableErrorTypes: ['ConfigError', 'HostKeyRejected', 'AuthFailed', 'MissingTool'] }),
};

/** Notifications-like bookkeeping after the fact (release a hold, record a verification). */
export const BOOKKEEPING: ActivityOptions = { startToCloseTimeout: '5m', scheduleToCloseTimeout: '1h', retry: retry(10) };

/**
 * Activities whose calls carry a one-line summary (the Web UI's timeline shows it instead of a bare activity type,
 * so two captures are told apart) and, when given, a fixed activity id. Summaries are metadata: not replayed.
 */
export function step<A extends object>(options: ActivityOptions, summary: string, activityId?: string) {
  return proxyActivities<A>({ ...options, summary, ...(activityId ? { activityId } : {}) });
}
