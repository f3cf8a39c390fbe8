// `lifeboat restore` and `lifeboat verify`: start restoreSnapshot / verifyRestore and (always) wait, because
// a person restoring under stress wants to see the outcome (and how far it is), not a workflow id.
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure, TypedSearchAttributes } from '@temporalio/common';
import type { Config } from '../config/schema';
import { PLAN } from '../shared/search-attributes';
import type { RestoreInput, RestoreResult, SnapshotVerification, VerifyInput } from '../shared/types';
import type { restoreSnapshot, verifyRestore } from '../workflows';
import { RESULT_PREFIX, reportFailure } from './backup';
import { followRun, terminalOutput } from './follow';

const stamp = () => new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');

export async function runRestore(client: Client, config: Config, input: RestoreInput, log = console.error): Promise<number> {
  const handle = await client.workflow.start<typeof restoreSnapshot>('restoreSnapshot', {
    taskQueue: config.temporal.taskQueue,
    workflowId: `restore-${input.plan}-${input.snapshot}-${stamp()}`,
    args: [input],
    staticSummary: `restore of ${input.snapshot} (plan ${input.plan})${input.dryRun ? ', dry run' : ''} (started by lifeboat restore)`,
    typedSearchAttributes: new TypedSearchAttributes([{ key: PLAN, value: input.plan }]),
  });
  log(`started ${handle.workflowId}`);
  try {
    const result = await followRun<RestoreResult>(handle, terminalOutput(log));
    printPlan(result, log);
    console.log(`${RESULT_PREFIX}${JSON.stringify({ success: true, ...result })}`);
    return 0;
  } catch (err) {
    return reportFailure('restore', handle.workflowId, err, log);
  }
}

function printPlan(result: RestoreResult, log: (line: string) => void): void {
  log(`snapshot ${result.snapshot} from ${result.storage} (archive and every manifest line checked)${result.dryRun ? ' — dry run, nothing written' : ''}`);
  for (const s of result.steps) log(`  ${s.artifact} (${s.type}) → ${s.target}${s.targetInUse ? '  [in use: would be overwritten]' : ''}\n      ${s.action}`);
  for (const r of result.restored) for (const w of r.warnings ?? []) log(`  warning: ${r.artifact}: ${w}`);
  if (!result.dryRun) log(`restored ${result.restored.length} artifact(s) in ${(result.durationMs / 1000).toFixed(1)} s`);
}

export async function runVerify(client: Client, config: Config, input: VerifyInput, log = console.error): Promise<number> {
  const handle = await client.workflow.start<typeof verifyRestore>('verifyRestore', {
    taskQueue: config.temporal.taskQueue,
    workflowId: `verify-${input.plan}-${stamp()}`,
    args: [input],
    staticSummary: `restore drill of plan ${input.plan} (started by lifeboat verify)`,
    typedSearchAttributes: new TypedSearchAttributes([{ key: PLAN, value: input.plan }]),
  });
  log(`started ${handle.workflowId}`);
  try {
    const results = await followRun<SnapshotVerification[]>(handle, terminalOutput(log));
    for (const r of results) printVerification(r, log);
    console.log(`${RESULT_PREFIX}${JSON.stringify({ success: true, verifications: results })}`);
    return 0;
  } catch (err) {
    const details = err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure ? (err.cause.details?.[0] as SnapshotVerification[] | undefined) : undefined;
    for (const r of details ?? []) printVerification(r, log);
    return reportFailure('restore drill', handle.workflowId, err, log);
  }
}

function printVerification(r: SnapshotVerification, log: (line: string) => void): void {
  log(`${r.ok ? 'OK  ' : 'FAIL'} ${r.snapshot} in ${(r.duration_ms / 1000).toFixed(1)} s`);
  for (const c of r.checks) log(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.artifact}: ${c.check}: ${c.detail}`);
}

