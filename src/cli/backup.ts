// `lifeboat backup <plan>`: starts backupPlan; with --wait, follows it and prints LIFEBOAT_RESULT:{json}.
import { WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure, TerminatedFailure, TimeoutFailure, TypedSearchAttributes } from '@temporalio/common';
import type { Config } from '../config/schema';
import { backupWorkflowId } from '../shared/ids';
import { DEPLOY_ID, PLAN, STATUS, TIER } from '../shared/search-attributes';
import type { BackupInput, BackupResult } from '../shared/types';
import type { backupPlan } from '../workflows';

export const RESULT_PREFIX = 'LIFEBOAT_RESULT:';

export async function startBackup(client: Client, config: Config, input: BackupInput, workflowId?: string) {
  return client.workflow.start<typeof backupPlan>('backupPlan', {
    taskQueue: config.temporal.taskQueue,
    workflowId: workflowId ?? backupWorkflowId(input.plan, input.tier, new Date()),
    args: [input],
    typedSearchAttributes: new TypedSearchAttributes([
      { key: PLAN, value: input.plan },
      { key: TIER, value: input.tier },
      ...(input.deployId ? [{ key: DEPLOY_ID, value: input.deployId }] : []),
    ]),
  });
}

type Pending = NonNullable<Awaited<ReturnType<WorkflowHandle['describe']>>['raw']['pendingActivities']>[number];

function describePending(p: Pending): string {
  const capture = p.activityId?.startsWith('capture:') ? `(${p.activityId.slice(8)})` : '';
  const retry = (p.attempt ?? 1) > 1 ? ` attempt ${p.attempt}: ${p.lastFailure?.message ?? ''}` : '';
  return `${p.activityType?.name}${capture}${retry}`;
}

/** Waits for the run, printing pending activities as they change; returns the process exit code. */
export async function followBackup(handle: WorkflowHandle<typeof backupPlan>, log: (line: string) => void = console.error): Promise<number> {
  let last = '';
  const timer = setInterval(async () => {
    const d = await handle.describe().catch(() => undefined);
    const pending = d?.raw.pendingActivities ?? [];
    const waiting = pending.length === 0 && d?.typedSearchAttributes.get(STATUS) === 'Waiting';
    const line = waiting ? 'waiting: another backup, restore or verify of this plan is running' : pending.map(describePending).join(', ');
    if (line && line !== last) log(`… ${line}`);
    last = line;
  }, 2000);
  try {
    const result: BackupResult = await handle.result();
    log(`snapshot ${result.snapshot}: ${result.status}, ${result.manifest.files} files, archive ${result.size_bytes} bytes sha256 ${result.checksum_sha256}`);
    for (const s of result.storages) log(`  ${s.storage}: ${s.location}`);
    console.log(`${RESULT_PREFIX}${JSON.stringify(result)}`);
    return 0;
  } catch (err) {
    return reportFailure('backup', handle.workflowId, err, log);
  } finally {
    clearInterval(timer);
  }
}

/** Prints a failed run's type and message, and its LIFEBOAT_RESULT line; returns the exit code (1). */
export function reportFailure(what: string, workflowId: string, err: unknown, log: (line: string) => void): number {
  const cause = err instanceof WorkflowFailedError ? err.cause : err;
  const type = failureType(cause);
  const message = (cause as Error)?.message ?? String(cause);
  log(`${what} failed (${type}): ${message}`);
  console.log(`${RESULT_PREFIX}${JSON.stringify({ success: false, workflow_id: workflowId, error_type: type, error: message })}`);
  return 1;
}

/** Lifeboat's failure type; a run ended from outside (cancel, terminate, server timeout) says so in one word. */
function failureType(cause: unknown): string {
  if (cause instanceof ApplicationFailure && cause.type) return cause.type;
  if (cause instanceof CancelledFailure) return 'Cancelled';
  if (cause instanceof TerminatedFailure) return 'Terminated';
  if (cause instanceof TimeoutFailure) return 'TimedOut';
  return (cause as Error)?.name ?? 'Unknown';
}
