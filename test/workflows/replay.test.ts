// Golden histories (test/replay/*.json, recorded by `npm run record:replay` from the workflow tests) replayed
// against today's workflow code: a change that would break runs in flight on the next deploy fails here.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { beforeAll, describe, expect, it } from 'vitest';
import { WORKFLOWS_PATH } from '../../src/workers/worker';
import { REPLAY_DIR } from '../support/workflow-harness';

const quietLogger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** Each workflow type with its success, partial, failure, cancellation and failed-restart paths. */
const REQUIRED = [
  'backup-success',
  'backup-partial',
  'backup-failure',
  'backup-cancelled',
  'backup-restart-failed',
  'backup-sibling-failure',
  'backup-lock-wait',
  'restore-success',
  'restore-target-in-use',
  'restore-cancelled',
  'verify-success',
  'verify-failure',
  'predeploy-success',
  'predeploy-failure',
  // Runs started after patch RUN_EVENTS report started/outcome; the watchdog has one path per transition.
  'backup-events-success',
  'backup-events-failure',
  'verify-events-success',
  'freshness-stale',
  // Runs started after patch PARALLEL_ARTIFACTS capture a source's live artifacts at once.
  'backup-parallel-artifacts',
  // Runs started after patch PARALLEL_RESTORE_ARTIFACTS restore one host's independent artifacts at once.
  'restore-parallel-artifacts',
  // Runs started after patch SMALL_SOURCE_LANES capture small sources in lanes beside the parallelism ones.
  'backup-small-source-lanes',
  // Runs started before patch CORRECT_UNDER_FAILURE (src/workflows/patches.ts) take the v1 path.
  'v1-backup-success',
  'v1-backup-failure',
  'v1-restore-success',
  'v1-verify-success',
  'v1-predeploy-success',
];

async function goldenHistories() {
  const files = (await readdir(REPLAY_DIR)).filter((f) => f.endsWith('.json')).sort();
  return Promise.all(
    files.map(async (f) => {
      const golden = JSON.parse(await readFile(join(REPLAY_DIR, f), 'utf8')) as { workflowId: string; history: unknown };
      return { name: f.slice(0, -5), workflowId: golden.workflowId, history: historyFromJSON(golden.history) };
    }),
  );
}

async function replay(workflowsPath: string, histories: Awaited<ReturnType<typeof goldenHistories>>) {
  const workflowBundle = await bundleWorkflowCode({ workflowsPath, logger: quietLogger });
  const outcomes: Record<string, string> = {};
  const names = new Map(histories.map((h) => [h.workflowId, h.name]));
  for await (const r of Worker.runReplayHistories({ workflowBundle }, histories)) outcomes[names.get(r.workflowId)!] = r.error ? `${r.error.name}: ${r.error.message}` : 'ok';
  return outcomes;
}

beforeAll(() => {
  // The deliberate violation below makes the SDK's core log warnings: keep the test output to results.
  Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } } });
});

describe('replay of golden histories', () => {
  it('every workflow type and outcome has a golden history', async () => {
    const names = (await goldenHistories()).map((h) => h.name);
    expect(names).toEqual(expect.arrayContaining(REQUIRED));
  });

  it("today's workflow code replays every golden history without a determinism error", async () => {
    const outcomes = await replay(WORKFLOWS_PATH, await goldenHistories());
    expect(Object.keys(outcomes).length).toBeGreaterThanOrEqual(REQUIRED.length);
    for (const [name, outcome] of Object.entries(outcomes)) expect(outcome, name).toBe('ok');
  });

  it('a deliberately non-deterministic change to backupPlan fails the backup histories', async () => {
    const backups = (await goldenHistories()).filter((h) => h.name.startsWith('backup-'));
    const outcomes = await replay(join(import.meta.dirname, '..', 'support', 'nondeterministic-workflows.ts'), backups);
    expect(Object.values(outcomes).length).toBe(backups.length);
    for (const [name, outcome] of Object.entries(outcomes)) expect(outcome, name).toMatch(/DeterminismViolation|Nondeterminism|non-?determinis/i);
  });
});
