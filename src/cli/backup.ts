// `lifeboat backup <plan>`: starts backupPlan; with --wait, follows it and prints LIFEBOAT_RESULT:{json}.
import { WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure, TerminatedFailure, TimeoutFailure, TypedSearchAttributes } from '@temporalio/common';
import type { Config } from '../config/schema';
import { backupWorkflowId } from '../shared/ids';
import { DEPLOY_ID, PLAN, TIER } from '../shared/search-attributes';
import type { BackupInput, BackupResult, NotificationResult } from '../shared/types';
import type { backupPlan } from '../workflows';
import { followRun, terminalOutput } from './follow';

export const RESULT_PREFIX = 'LIFEBOAT_RESULT:';

export async function startBackup(client: Client, config: Config, input: BackupInput, workflowId?: string) {
  return client.workflow.start<typeof backupPlan>('backupPlan', {
    taskQueue: config.temporal.taskQueue,
    workflowId: workflowId ?? backupWorkflowId(input.plan, input.tier, new Date()),
    args: [input],
    // The Web UI's one-line description of the run: what, and that a person or a CI job asked for it.
    staticSummary: `${input.tier} backup of plan ${input.plan} (started by lifeboat backup${input.deployId ? `, deploy ${input.deployId}` : ''})`,
    typedSearchAttributes: new TypedSearchAttributes([
      { key: PLAN, value: input.plan },
      { key: TIER, value: input.tier },
      ...(input.deployId ? [{ key: DEPLOY_ID, value: input.deployId }] : []),
    ]),
  });
}

/**
 * Waits for the run, printing its running steps' progress (a live line on a terminal, plain lines otherwise) and
 * then its result; returns the process exit code. A Temporal restart meanwhile is waited out.
 */
export async function followBackup(handle: WorkflowHandle<typeof backupPlan>, log: (line: string) => void = console.error): Promise<number> {
  try {
    const result = await followRun<BackupResult>(handle, terminalOutput(log));
    log(`snapshot ${result.snapshot}: ${result.status}, ${result.manifest.files} files, archive ${result.size_bytes} bytes sha256 ${result.checksum_sha256}`);
    for (const s of result.storages) log(`  ${s.storage}: ${s.location}`);
    // The backup is good either way; a target that did not hear about it is worth a line.
    for (const n of result.notifications ?? []) if (!n.ok) log(`  warning: notification ${n.target} (${n.type}, ${n.event}) failed: ${n.error}`);
    console.log(`${RESULT_PREFIX}${JSON.stringify(result)}`);
    return 0;
  } catch (err) {
    return reportFailure('backup', handle.workflowId, err, log);
  }
}

/** Prints a failed run's type and message, and its LIFEBOAT_RESULT line; returns the exit code (1). */
export function reportFailure(what: string, workflowId: string, err: unknown, log: (line: string) => void): number {
  const cause = err instanceof WorkflowFailedError ? err.cause : err;
  const type = failureType(cause);
  const message = (cause as Error)?.message ?? String(cause);
  log(`${what} failed (${type}): ${message}`);
  const notifications = failedDeliveries(cause);
  for (const n of notifications) log(`  warning: notification ${n.target} (${n.type}, ${n.event}) failed: ${n.error}`);
  console.log(`${RESULT_PREFIX}${JSON.stringify({ success: false, workflow_id: workflowId, error_type: type, error: message, ...(notifications.length ? { notifications } : {}) })}`);
  return 1;
}

/** The deliveries a failed run could not make (in its failure's details, see workflows/run-events.ts). */
function failedDeliveries(cause: unknown): NotificationResult[] {
  const details = cause instanceof ApplicationFailure ? ((cause.details ?? []) as unknown[]) : [];
  return details.flatMap((d) => ((d as { notifications?: NotificationResult[] } | null)?.notifications ?? []));
}

/** Lifeboat's failure type; a run ended from outside (cancel, terminate, server timeout) says so in one word. */
function failureType(cause: unknown): string {
  if (cause instanceof ApplicationFailure && cause.type) return cause.type;
  if (cause instanceof CancelledFailure) return 'Cancelled';
  if (cause instanceof TerminatedFailure) return 'Terminated';
  if (cause instanceof TimeoutFailure) return 'TimedOut';
  return (cause as Error)?.name ?? 'Unknown';
}
