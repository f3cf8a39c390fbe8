// How workflows report failures: the root cause's type and message, labelled with the step that failed, so the
// Web UI and the CLI name it directly (e.g. `stack:appdb: … (IntegrityCheckFailed)`). Workflow code: pure.
import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';

/** Re-raises an activity's ApplicationFailure as the workflow's own, non-retryable, with the step named. */
export function describeFailure(err: unknown): unknown {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) {
    const { message, type, details } = err.cause;
    return ApplicationFailure.create({ message: `${stepLabel(err)}: ${message}`, type: type ?? 'ActivityFailed', nonRetryable: true, details: details as unknown[] | undefined });
  }
  return err;
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

/** `capture:<source>:<artifact>` → `<source>:<artifact>`; `restore:<artifact>` as it is; else the activity type. */
function stepLabel(err: ActivityFailure): string {
  const id = err.activityId ?? '';
  if (id.startsWith('capture:')) return id.slice('capture:'.length);
  if (id.startsWith('restore:')) return id;
  return err.activityType ?? 'activity';
}
