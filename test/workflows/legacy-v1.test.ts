// The workflows as they were before patch CORRECT_UNDER_FAILURE (src/workflows/legacy), run with fake activities:
// they still work, and their histories (kept as test/replay/v1-*.json) are what runs started before the deploy
// carry. replay.test.ts replays those against today's code, whose patched() sends them down the v1 path.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PredeployState } from '../../src/workflows/predeploy';
import type { BackupResult, RestoreResult, SnapshotVerification } from '../../src/shared/types';
import { makeWorld, permanent } from '../support/fake-activities';
import type { TemporalFixture } from '../support/fixtures';
import { eventually, fakeWorker, keepHistory, runFailure, startWorkflow } from '../support/workflow-harness';

let t: TemporalFixture;
beforeAll(async () => {
  t = await fakeWorker('wf-v1', join(import.meta.dirname, '..', 'support', 'v1-workflows.ts'));
});
afterAll(async () => {
  await t?.close();
});

const source = { name: 'web', host: 'local', quiesce: { type: 'commands', stop: ['stop'], start: ['start'] }, artifacts: [{ name: 'db', type: 'postgres', database: 'app' }, { name: 'site', type: 'files', paths: ['/srv'] }] };

describe('v1 workflows (runs started before patch CORRECT_UNDER_FAILURE)', () => {
  it('backup: the file lock, then every step', async () => {
    const w = makeWorld('v1ok', { sources: [source] });
    const h = await startWorkflow(t, 'backupPlan', w, [{ plan: w.ctx.planName, tier: 'manual' }]);
    expect(((await h.result()) as BackupResult).status).toBe('Completed');
    expect(w.calls.slice(0, 3)).toEqual(['loadPlan', 'acquirePlanLock', 'preflight']);
    expect(w.calls.at(-1)).toBe('releasePlanLock');
    await keepHistory(h, 'v1-backup-success');
  });

  it('backup: a failed copy restarts the source and discards .partial', async () => {
    const w = makeWorld('v1fail', { sources: [source] });
    w.on['capture:web/site'] = permanent('IntegrityCheckFailed');
    const h = await startWorkflow(t, 'backupPlan', w, [{ plan: w.ctx.planName, tier: 'manual' }]);
    expect((await runFailure(h)).type).toBe('IntegrityCheckFailed');
    expect(w.stopped.size).toBe(0);
    await keepHistory(h, 'v1-backup-failure');
  });

  it('restore and verify', async () => {
    const w = makeWorld('v1restore', { sources: [source] });
    const r = await startWorkflow(t, 'restoreSnapshot', w, [{ plan: w.ctx.planName, snapshot: 'latest', force: false, dryRun: false }]);
    expect(((await r.result()) as RestoreResult).restored).toHaveLength(2);
    await keepHistory(r, 'v1-restore-success');
    const v = await startWorkflow(t, 'verifyRestore', w, [{ plan: w.ctx.planName }]);
    expect(((await v.result()) as SnapshotVerification[])[0]!.ok).toBe(true);
    await keepHistory(v, 'v1-verify-success');
  });

  it('pre-deploy: held, then released on deployVerified', async () => {
    const w = makeWorld('v1pd', { sources: [source] });
    const h = await startWorkflow(t, 'predeployBackup', w, [{ plan: w.ctx.planName, deployId: 'ci-v1', holdSeconds: 3600 }], 'predeploy');
    await eventually(async () => (await h.query<PredeployState>('predeployState')).phase === 'held', 'held');
    await h.signal('deployVerified');
    expect(((await h.result()) as PredeployState).phase).toBe('released');
    await keepHistory(h, 'v1-predeploy-success');
  });
});
