// restoreSnapshot, verifyRestore and predeployBackup, every branch, with fake activities on the real dev server.
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPredeploy } from '../../src/cli/predeploy';
import { Config } from '../../src/config/schema';
import type { PredeployState } from '../../src/workflows/predeploy';
import type { BackupResult, RestoreResult, SnapshotVerification } from '../../src/shared/types';
import { hang, makeWorld, permanent, waitFor, type World } from '../support/fake-activities';
import type { TemporalFixture } from '../support/fixtures';
import { eventually, fakeWorker, keepHistory, runFailure, startWorkflow, statusOf } from '../support/workflow-harness';

let t: TemporalFixture;
beforeAll(async () => {
  t = await fakeWorker('wf-restore');
});
afterAll(async () => {
  await t?.close();
});

const quiesce = { type: 'commands', stop: ['stop-it'], start: ['start-it'] };
const sources = [
  { name: 'web', host: 'local', quiesce, artifacts: [{ name: 'db', type: 'postgres', database: 'app' }, { name: 'site', type: 'files', paths: ['/srv/site'] }, { name: 'versions', type: 'command', command: ['uname'] }] },
  { name: 'cache', host: 'local', artifacts: [{ name: 'kv', type: 'redis' }] },
];
const restoreInput = (w: World, extra: Record<string, unknown> = {}) => ({ plan: w.ctx.planName, snapshot: 'latest', force: false, dryRun: false, ...extra });
const restore = (w: World, extra: Record<string, unknown> = {}) => startWorkflow(t, 'restoreSnapshot', w, [restoreInput(w, extra)]);
const verify = (w: World, extra: Record<string, unknown> = {}) => startWorkflow(t, 'verifyRestore', w, [{ plan: w.ctx.planName, ...extra }]);

const webSteps = (w: World) => w.calls.filter((c) => c.endsWith(' web') || ['restore db', 'restore site'].includes(c));
/** web's two restores (at once since patch PARALLEL_RESTORE_ARTIFACTS, so in either order) inside its stop → start. */
function expectWebInsideItsQuiesce(w: World): void {
  const steps = webSteps(w);
  expect(steps.slice(0, 2)).toEqual(['quiesceInspect web', 'quiesceStop web']);
  expect(steps.slice(2, 4).sort()).toEqual(['restore db', 'restore site']);
  expect(steps.slice(4)).toEqual(['quiesceStart web']);
}

describe('restoreSnapshot with fake activities', () => {
  // Runs that reached restoreByHost before patch PARALLEL_RESTORE_HOSTS restored one host after another; their golden
  // history (restore-success.json, recorded then) keeps guarding that path. This test records restore-parallel-hosts.
  it('restores hosts in parallel, each inside its quiesce controller, skips what Lifeboat cannot restore, and removes its work dir', async () => {
    const w = makeWorld('restore', { sources });
    // db (on web) waits, within a bound, for kv (on cache) to start: only parallel hosts get there.
    const started = Date.now();
    let overlapped = false;
    w.on['restore:db'] = async () => {
      await waitFor(() => (overlapped = w.calls.includes('restore kv')) || Date.now() - started > 10_000);
      return { artifact: 'db', target: 'db', bytes: 1 };
    };
    const h = await restore(w);
    const r = (await h.result()) as RestoreResult;
    expect(overlapped).toBe(true);
    expect(r.restored.map((x) => x.artifact)).toEqual(['db', 'site', 'kv']);
    expect(r.steps.find((s) => s.artifact === 'versions')?.manual).toBe(true);
    expect(w.calls.slice(0, 3)).toEqual(['loadPlan', 'fetchForRestore', 'planRestore']);
    expectWebInsideItsQuiesce(w);
    expect(w.calls.filter((c) => c === 'restore kv')).toHaveLength(1);
    expect(w.calls.at(-1)).toBe('discardRestoreWork');
    expect(await statusOf(h)).toBe('Completed');
    await keepHistory(h, 'restore-parallel-hosts');
  });

  it('one host failing: no further host starts, the running one finishes and is started again, then the run fails', async () => {
    const extra = { name: 'extra', host: 'local', quiesce, artifacts: [{ name: 'more', type: 'files', paths: ['/srv/more'] }] };
    const w = makeWorld('rlanes', { sources: [...sources, extra], parallelism: 2 });
    w.on['restore:kv'] = permanent('PermissionDenied', 'EACCES: /var/lib/redis');
    // web is mid-restore when cache fails, and finishes (a cancelled wait would throw instead of setting the flag).
    let dbFinished = false;
    w.on['restore:db'] = async () => {
      await waitFor(() => w.attempts['restore:kv'] === 1);
      dbFinished = true;
      return { artifact: 'db', target: 'db', bytes: 1 };
    };
    const h = await restore(w);
    const f = await runFailure(h);
    expect(f.type).toBe('PermissionDenied');
    expect(dbFinished).toBe(true);
    expectWebInsideItsQuiesce(w);
    expect(w.calls.filter((c) => c.endsWith(' extra') || c === 'restore more')).toEqual([]);
    expect(w.stopped.size).toBe(0);
    expect(w.calls.at(-1)).toBe('discardRestoreWork');
    expect(await statusOf(h)).toBe('Failed');
  });

  // Records restore-parallel-artifacts (patch PARALLEL_RESTORE_ARTIFACTS).
  it("one host's database and tree are restored at once inside its one stop; a tree inside another waits for it", async () => {
    const nested = [
      { name: 'web', host: 'local', quiesce, artifacts: [{ name: 'site', type: 'files', paths: ['/srv/site'] }, { name: 'db', type: 'postgres', database: 'app' }, { name: 'media', type: 'files', paths: ['/srv/site/media'] }] },
    ];
    const w = makeWorld('rwaves', { sources: nested, parallelism: 2 });
    // site waits, within a bound, for db to start: one after another it would give up and fail the run.
    const started = Date.now();
    let siteDone = false;
    let mediaAfterSite: boolean | undefined;
    w.on['restore:site'] = async () => {
      await waitFor(() => w.calls.includes('restore db') || Date.now() - started > 10_000);
      if (!w.calls.includes('restore db')) throw ApplicationFailure.nonRetryable('db did not start while site ran', 'NotConcurrent');
      siteDone = true;
      return { artifact: 'site', target: 'site', bytes: 1 };
    };
    w.on['restore:media'] = () => {
      mediaAfterSite = siteDone;
      return Promise.resolve({ artifact: 'media', target: 'media', bytes: 1 });
    };
    const h = await restore(w);
    const r = (await h.result()) as RestoreResult;
    expect(mediaAfterSite).toBe(true);
    expect(r.restored.map((x) => x.artifact)).toEqual(['site', 'db', 'media']); // step order, whatever finished first
    const web = w.calls.filter((c) => c.endsWith(' web') || c.startsWith('restore '));
    expect(web.slice(0, 2)).toEqual(['quiesceInspect web', 'quiesceStop web']);
    expect(web.slice(2, 4).sort()).toEqual(['restore db', 'restore site']);
    expect(web.slice(4)).toEqual(['restore media', 'quiesceStart web']);
    expect(await statusOf(h)).toBe('Completed');
    await keepHistory(h, 'restore-parallel-artifacts');
  });

  it("a failing artifact lets the one running beside it finish and starts none after it; the host's services restart", async () => {
    const nested = [
      { name: 'web', host: 'local', quiesce, artifacts: [{ name: 'site', type: 'files', paths: ['/srv/site'] }, { name: 'db', type: 'postgres', database: 'app' }, { name: 'media', type: 'files', paths: ['/srv/site/media'] }] },
    ];
    const w = makeWorld('rwavefail', { sources: nested, parallelism: 2 });
    let siteFinished = false;
    const started = Date.now();
    w.on['restore:db'] = permanent('PermissionDenied', 'role app cannot create');
    w.on['restore:site'] = async () => {
      await waitFor(() => w.attempts['restore:db'] === 1 || Date.now() - started > 10_000); // bounded: in turn, db never starts
      siteFinished = w.attempts['restore:db'] === 1;
      return { artifact: 'site', target: 'site', bytes: 1 };
    };
    const h = await restore(w);
    expect((await runFailure(h)).type).toBe('PermissionDenied');
    expect(siteFinished).toBe(true); // not cancelled: a target half-written is worse than one fully restored
    expect(w.calls).not.toContain('restore media');
    expect(w.calls.slice(-2)).toEqual(['quiesceStart web', 'discardRestoreWork']);
    expect(w.stopped.size).toBe(0);
    expect(await statusOf(h)).toBe('Failed');
  });

  it('a dry run plans and writes nothing, and does not wait for the plan lock', async () => {
    const w = makeWorld('dry', { sources });
    w.on['capture:web/db'] = hang;
    const running = await startWorkflow(t, 'backupPlan', w, [{ plan: w.ctx.planName, tier: 'manual' }]);
    await eventually(() => w.calls.includes('capture web/db'), 'backup holding the lock');
    const r = (await (await restore(w, { dryRun: true })).result()) as RestoreResult;
    expect(r.dryRun).toBe(true);
    expect(w.calls.filter((c) => c.startsWith('restore ') || c.startsWith('quiesceStop'))).toEqual([]);
    await running.cancel();
  });

  it('targets in use without --force: TargetInUse before anything stops, work dir removed, status Failed', async () => {
    const w = makeWorld('inuse', { sources });
    w.on.planRestore = async () => [{ artifact: 'db', type: 'postgres', host: 'web', target: 'app on web', targetInUse: true, action: 'load' }];
    const h = await restore(w);
    const f = await runFailure(h);
    expect(f.type).toBe('TargetInUse');
    expect(w.calls).not.toContain('quiesceStop web');
    expect(w.calls.at(-1)).toBe('discardRestoreWork');
    expect(await statusOf(h)).toBe('Failed');
    await keepHistory(h, 'restore-target-in-use');
  });

  it('a failed artifact restore still restarts the services and removes the work dir', async () => {
    const w = makeWorld('rfail', { sources });
    w.on['restore:site'] = permanent('PermissionDenied', 'EACCES: /srv/site');
    const h = await restore(w);
    const f = await runFailure(h);
    expect(f.type).toBe('PermissionDenied');
    expect(f.message).toContain('restore:site');
    expect(w.calls.slice(-2)).toEqual(['quiesceStart web', 'discardRestoreWork']);
    expect(w.stopped.size).toBe(0);
    expect(await statusOf(h)).toBe('Failed');
  });

  it('cancelled during a restore: restarted, work dir removed, status Cancelled', async () => {
    const w = makeWorld('rcancel', { sources });
    w.on['restore:db'] = hang;
    const h = await restore(w);
    await eventually(() => w.calls.includes('restore db'), 'restore running');
    await h.cancel();
    expect((await runFailure(h)).name).toBe('CancelledFailure');
    expect(w.calls.slice(-2)).toEqual(['quiesceStart web', 'discardRestoreWork']);
    expect(await statusOf(h)).toBe('Cancelled');
    await keepHistory(h, 'restore-cancelled');
  });

  it('a restore waits while a backup of the plan runs (Waiting), and starts after it', async () => {
    const w = makeWorld('rlock', { sources });
    let release = false;
    w.on['capture:web/db'] = async () => {
      await waitFor(() => release);
      return { source: 'web', name: 'db', type: 'postgres', required: true, status: 'ok', paths: [], bytes: 1, details: {} };
    };
    const b = await startWorkflow(t, 'backupPlan', w, [{ plan: w.ctx.planName, tier: 'manual' }]);
    await eventually(() => w.calls.includes('capture web/db'), 'backup capturing');
    const r = await restore(w);
    await eventually(async () => (await statusOf(r)) === 'Waiting', 'restore waiting');
    expect(w.calls).not.toContain('fetchForRestore');
    release = true;
    await b.result();
    await r.result();
    // The restore began only after the backup had finished every step.
    expect(w.calls.indexOf('fetchForRestore')).toBeGreaterThan(w.calls.indexOf('pruneLocal'));
  });
});

describe('verifyRestore with fake activities', () => {
  it('the latest and `older` others, each recorded; status Completed', async () => {
    const w = makeWorld('verify', { sources, verify: { older: 1 } });
    const h = await verify(w);
    const r = (await h.result()) as SnapshotVerification[];
    expect(r[0]!.snapshot).toBe('snap-3');
    expect(r).toHaveLength(2);
    expect(w.calls.filter((c) => c.startsWith('recordVerification'))).toHaveLength(2);
    expect(await statusOf(h)).toBe('Completed');
    await keepHistory(h, 'verify-success');
  });

  it('--allow-unsigned reaches the drill of a named snapshot only, never the drill\'s own picks', async () => {
    const seen: unknown[] = [];
    const w = makeWorld('vtrust', { sources, verify: { older: 0 } });
    const verified = (...args: unknown[]) => {
      seen.push(args[4]);
      return Promise.resolve({ snapshot: String(args[2]), ok: true, duration_ms: 1, verified_at: new Date().toISOString(), checks: [] });
    };
    w.on['verify:snap-3'] = verified;
    w.on['verify:named-1'] = verified;
    await (await verify(w, { allowUnsigned: true, snapshots: ['named-1'] })).result();
    await (await verify(w, { allowUnsigned: true })).result();
    await (await verify(w)).result();
    expect(seen).toEqual([{ allowUnsigned: true }, { allowUnsigned: false }, { allowUnsigned: false }]);
  });

  it('a failing drill step ends with status Failed, never Running', async () => {
    const w = makeWorld('vfail', { sources });
    w.on['verify:snap-3'] = permanent('ChecksumMismatch', 'archive differs from its record');
    const h = await verify(w);
    const f = await runFailure(h);
    expect(f.type).toBe('ChecksumMismatch');
    expect(f.message).toContain('verify:snap-3');
    expect(await statusOf(h)).toBe('Failed');
    await keepHistory(h, 'verify-failure');
  });

  it('failed checks are VerificationFailed with every failing check named; nothing to verify is too', async () => {
    const w = makeWorld('vchecks', { sources, verify: { older: 0 } });
    w.on['verify:snap-3'] = async () => ({ snapshot: 'snap-3', ok: false, duration_ms: 1, verified_at: '2026-01-01T00:00:00Z', checks: [{ artifact: 'db', check: 'row counts', ok: false, detail: 'public.orders 300 ≠ 301' }] });
    const f = await runFailure(await verify(w));
    expect(f.type).toBe('VerificationFailed');
    expect(f.message).toContain('public.orders 300 ≠ 301');
    const empty = makeWorld('vnone', { sources });
    empty.on.listSnapshotNames = async () => [];
    const h = await verify(empty);
    expect((await runFailure(h)).type).toBe('VerificationFailed');
    expect(await statusOf(h)).toBe('Failed');
  });
});

describe('predeployBackup with fake activities', () => {
  const config = (w: World, taskQueue: string) => Config.parse({ backupRoot: '/x', temporal: { taskQueue }, storages: { store: { type: 'local', path: '/y' } }, plans: { [w.ctx.planName]: { storages: ['store'], sources: [sources[1]] } } });

  it('holds the snapshot until deployVerified, then releases it; status Completed', async () => {
    const w = makeWorld('pd', { sources: [sources[1]] });
    const h = await startPredeploy(t.client, config(w, t.taskQueue), w.ctx.planName, 'ci-1', 3600);
    await eventually(async () => (await h.query<PredeployState>('predeployState')).phase === 'held', 'snapshot held');
    await h.signal('deployVerified');
    const state = (await h.result()) as PredeployState;
    expect(state.phase).toBe('released');
    expect(w.calls.at(-1)).toMatch(/^releaseHold /);
    expect(await statusOf(h)).toBe('Completed');
    await keepHistory(h, 'predeploy-success');
  });

  it('a failed pre-deploy backup can be retried with the same deploy id (a new run); a completed one is reused', async () => {
    const w = makeWorld('pdretry', { sources: [sources[1]] });
    w.on['capture:cache/kv'] = permanent('AuthFailed', 'NOAUTH');
    const cfg = config(w, t.taskQueue);
    const first = await startPredeploy(t.client, cfg, w.ctx.planName, 'ci-2', 60);
    expect((await runFailure(first)).type).toBe('AuthFailed');
    expect(await statusOf(first)).toBe('Failed');
    await keepHistory(first, 'predeploy-failure');
    const firstRun = (await first.describe()).runId;
    delete w.on['capture:cache/kv'];
    const second = await startPredeploy(t.client, cfg, w.ctx.planName, 'ci-2', 1);
    const secondRun = (await second.describe()).runId;
    expect(secondRun).not.toBe(firstRun);
    const done = (await second.result()) as PredeployState;
    expect(done.phase).toBe('released');
    const backups = w.calls.filter((c) => c === 'finalizeSnapshot').length;
    const third = await startPredeploy(t.client, cfg, w.ctx.planName, 'ci-2', 1);
    expect((await third.describe()).runId).toBe(secondRun);
    expect(w.calls.filter((c) => c === 'finalizeSnapshot').length).toBe(backups);
    expect((done.result as BackupResult).status).toBe('Completed');
  });
});
