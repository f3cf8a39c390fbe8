// Shared pieces of the workflow tests: one worker with fake activities per file, runs started by plan, the
// LifeboatStatus a run shows, and (with LIFEBOAT_RECORD_REPLAY=1) golden histories kept under test/replay/.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, TypedSearchAttributes } from '@temporalio/common';
import { execa } from 'execa';
import { expect, inject } from 'vitest';
import { findBinary } from '../../scripts/lib/services';
import { PLAN, STATUS, TIER } from '../../src/shared/search-attributes';
import { fakeActivities, type World } from './fake-activities';
import { temporalFixture, uniqueName, type TemporalFixture } from './fixtures';

export const REPLAY_DIR = join(import.meta.dirname, '..', 'replay');

/** A worker with fake activities; `workflowsPath` runs other workflow code (the v1 workflows) under the same names. */
export async function fakeWorker(prefix: string, workflowsPath?: string): Promise<TemporalFixture> {
  // The config path is never read: every activity is a fake.
  return temporalFixture('/nonexistent/lifeboat.yaml', uniqueName(prefix), fakeActivities(), workflowsPath);
}

export async function startWorkflow(t: TemporalFixture, type: string, world: World, args: unknown[], idPrefix = type): Promise<WorkflowHandle> {
  return t.client.workflow.start(type, {
    taskQueue: t.taskQueue,
    workflowId: uniqueName(`${idPrefix}-${world.ctx.planName}`),
    args,
    typedSearchAttributes: new TypedSearchAttributes([
      { key: PLAN, value: world.ctx.planName },
      { key: TIER, value: 'manual' },
    ]),
  });
}

export async function statusOf(handle: WorkflowHandle): Promise<string | undefined> {
  return (await handle.describe()).typedSearchAttributes.get(STATUS);
}

/** The failure a run ended with (type and message of its ApplicationFailure); fails the test if it succeeded. */
export async function runFailure(handle: WorkflowHandle): Promise<{ type?: string; message: string; name: string }> {
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'the run should have failed').toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  return { type: cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined, message: cause?.message ?? '', name: cause?.name ?? '' };
}

/** Polls until `check` holds (for states reached while a run is in flight). */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** With LIFEBOAT_RECORD_REPLAY=1 (scripts/record-replay.sh), keeps the finished run's history as a golden file. */
export async function keepHistory(handle: WorkflowHandle, name: string): Promise<void> {
  if (process.env.LIFEBOAT_RECORD_REPLAY !== '1') return;
  await handle.result().catch(() => undefined);
  // The temporal CLI writes the JSON form every Temporal tool reads (the SDK's historyToJSON trips over two
  // protobufjs copies in this install).
  const { runId } = await handle.describe();
  const { stdout } = await execa(findBinary('temporal'), ['workflow', 'show', '--address', inject('temporalAddress'), '--workflow-id', handle.workflowId, '--run-id', runId, '--output', 'json']);
  await mkdir(REPLAY_DIR, { recursive: true });
  // The workflow id goes with the history: a replay under another id takes other child ids (predeploy).
  await writeFile(join(REPLAY_DIR, `${name}.json`), `${JSON.stringify({ workflowId: handle.workflowId, history: JSON.parse(stdout) }, null, 1)}\n`);
}
