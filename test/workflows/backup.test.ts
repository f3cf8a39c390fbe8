// backupPlan, every branch, driven by fake activities on the real Temporal dev server (test/support/fake-activities.ts).
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SNAPSHOT } from '../../src/shared/search-attributes';
import type { BackupResult, PlanContext } from '../../src/shared/types';
import { lifeboatActivities } from '../../src/workers/worker';
import { CancelledFailure, Context } from '@temporalio/activity';
import { flaky, fakeActivities, hang, makeWorld, okArtifact, permanent, waitFor, type World } from '../support/fake-activities';
import type { TemporalFixture } from '../support/fixtures';
import { eventually, fakeWorker, keepHistory, runFailure, startWorkflow, statusOf } from '../support/workflow-harness';

let t: TemporalFixture;
beforeAll(async () => {
  t = await fakeWorker('wf-backup');
});
afterAll(async () => {
  await t?.close();
});

const quiesce = { type: 'commands', stop: ['stop-it'], start: ['start-it'] };
/** web: a live dump, then files copied with its services stopped. */
const web = (extra: Record<string, unknown> = {}) => ({
  name: 'web',
  host: 'local',
  quiesce,
  artifacts: [
    { name: 'db', type: 'postgres', database: 'app' },
    { name: 'site', type: 'files', paths: ['/srv/site'] },
  ],
  ...extra,
});
const other = { name: 'other', host: 'local', artifacts: [{ name: 'conf', type: 'files', paths: ['/etc/other'] }] };

const backup = (w: World) => startWorkflow(t, 'backupPlan', w, [{ plan: w.ctx.planName, tier: 'manual' }]);

describe('backupPlan with fake activities', () => {
  it('the fakes answer to exactly the production activity names', () => {
    expect(Object.keys(fakeActivities()).sort()).toEqual(Object.keys(lifeboatActivities('/nonexistent')).sort());
  });

  it('success: every step in order, services stopped only around the quiesced copy, status Completed', async () => {
    const w = makeWorld('ok', { sources: [web()] });
    const h = await backup(w);
    const result = (await h.result()) as BackupResult;
    expect(result.status).toBe('Completed');
    expect(w.calls).toEqual([
      'loadPlan',
      'preflight',
      'prepareSnapshot',
      'capture web/db',
      'quiesceInspect web',
      'quiesceStop web',
      'capture web/site',
      'quiesceStart web',
      'finalizeSnapshot',
      'archiveSnapshot',
      'upload store',
      'applyRetention store',
      'pruneLocal',
    ]);
    expect(await statusOf(h)).toBe('Completed');
    await keepHistory(h, 'backup-success');
  });

  it('an optional artifact that fails is recorded and the run is PartiallyFailed', async () => {
    const w = makeWorld('partial', { sources: [{ ...other, artifacts: [...other.artifacts, { name: 'extra', type: 'files', paths: ['/x'], required: false }] }] });
    w.on['capture:other/extra'] = permanent('MissingPath', 'missing on local: /x');
    const h = await backup(w);
    const result = (await h.result()) as BackupResult;
    expect(result.status).toBe('PartiallyFailed');
    expect(result.artifacts.find((a) => a.name === 'extra')).toMatchObject({ status: 'failed', error: 'missing on local: /x' });
    expect(w.attempts['capture:other/extra']).toBe(1);
    expect(await statusOf(h)).toBe('PartiallyFailed');
    await keepHistory(h, 'backup-partial');
  });

  it('a required artifact that fails permanently fails the run in one attempt, restarts services and discards .partial', async () => {
    const w = makeWorld('perm', { sources: [web()] });
    w.on['capture:web/site'] = permanent('MissingPath', 'missing on local: /srv/site');
    const h = await backup(w);
    const f = await runFailure(h);
    expect(f.type).toBe('MissingPath');
    expect(f.message).toContain('web:site: missing on local: /srv/site');
    expect(w.attempts['capture:web/site']).toBe(1);
    expect(w.calls.slice(-3)).toEqual(['capture web/site', 'quiesceStart web', 'discardIncomplete']);
    expect(w.stopped.size).toBe(0);
    expect(await statusOf(h)).toBe('Failed');
    await keepHistory(h, 'backup-failure');
  });

  // Three live artifacts of one source, two lanes (parallelism 2).
  const app = { name: 'app', host: 'local', artifacts: [{ name: 'db', type: 'postgres', database: 'app' }, { name: 'conf', type: 'files', paths: ['/etc/app'] }, { name: 'data', type: 'files', paths: ['/srv/app'] }] };
  /** Waits (heartbeating) for `until`, at most `seconds`, then fails the capture as NotConcurrent. */
  const within = (seconds: number, until: () => boolean) => async () => {
    const ctx = Context.current();
    for (let i = 0; i < seconds * 5 && !until(); i++) {
      ctx.heartbeat(); // how a cancellation reaches an activity
      await ctx.sleep(200);
    }
    if (!until()) throw ApplicationFailure.nonRetryable('the sibling capture never started', 'NotConcurrent');
  };

  it("a source's live artifacts are captured at once (parallelism lanes); results keep the plan's order", async () => {
    const w = makeWorld('par-art', { parallelism: 2, sources: [app] });
    // db finishes only once conf has started beside it: one after another, it would fail.
    w.on['capture:app/db'] = async (ctx, _snapshot, source, artifact) => {
      await within(15, () => w.calls.includes('capture app/conf'))();
      return okArtifact(ctx, source, artifact);
    };
    const h = await backup(w);
    const result = (await h.result()) as BackupResult;
    expect(result.status).toBe('Completed');
    expect(result.artifacts.map((a) => a.name)).toEqual(['db', 'conf', 'data']);
    // Two lanes: data waits for a free one (conf's), so it starts after both others.
    expect(w.calls.indexOf('capture app/data')).toBeGreaterThan(w.calls.indexOf('capture app/conf'));
    expect(w.calls.indexOf('finalizeSnapshot')).toBeGreaterThan(w.calls.indexOf('capture app/data'));
    await keepHistory(h, 'backup-parallel-artifacts');
  });

  it('a required live capture that fails cancels its running sibling and starts no other; then .partial is discarded', async () => {
    const w = makeWorld('par-fail', { parallelism: 2, sources: [app] });
    // Runs until cancelled (at most 30 s: one after another, conf would never start and the test would hang).
    w.on['capture:app/db'] = async () => {
      try {
        await within(30, () => false)();
      } catch (err) {
        if (err instanceof CancelledFailure) w.calls.push('cancelled app/db');
        throw err;
      }
    };
    w.on['capture:app/conf'] = async () => {
      await waitFor(() => w.calls.includes('capture app/db'));
      throw ApplicationFailure.nonRetryable('missing on local: /etc/app', 'MissingPath');
    };
    const f = await runFailure(await backup(w));
    expect(f.type).toBe('MissingPath');
    expect(w.calls).toContain('cancelled app/db');
    expect(w.calls).not.toContain('capture app/data');
    expect(w.calls).not.toContain('finalizeSnapshot');
    expect(w.calls.at(-1)).toBe('discardIncomplete');
    expect(w.calls.indexOf('discardIncomplete')).toBeGreaterThan(w.calls.indexOf('cancelled app/db'));
  });

  it('with a quiesced copy, the services stop only after every live capture of the source has ended', async () => {
    const w = makeWorld('par-quiesce', { parallelism: 2, sources: [web({ artifacts: [...web().artifacts, { name: 'db2', type: 'postgres', database: 'other' }] })] });
    const ends = (name: string, sibling: string) => async (ctx: PlanContext, _snapshot: string, source: string, artifact: string) => {
      await within(15, () => w.calls.includes(`capture web/${sibling}`))(); // both live dumps run at once
      w.calls.push(`done web/${name}`);
      return okArtifact(ctx, source, artifact);
    };
    w.on['capture:web/db'] = ends('db', 'db2');
    w.on['capture:web/db2'] = ends('db2', 'db');
    const h = await backup(w);
    expect(((await h.result()) as BackupResult).status).toBe('Completed');
    const stop = w.calls.indexOf('quiesceStop web');
    expect(stop).toBeGreaterThan(w.calls.indexOf('done web/db'));
    expect(stop).toBeGreaterThan(w.calls.indexOf('done web/db2'));
    expect(w.calls.indexOf('capture web/site')).toBeGreaterThan(stop);
  });

  it('a transient failure is retried and the run completes; the retry is in history', async () => {
    const w = makeWorld('flaky', { sources: [other] });
    w.on['capture:other/conf'] = flaky(1, 'CommandFailed', async () => ({ source: 'other', name: 'conf', type: 'files', required: true, status: 'ok', paths: [], bytes: 1, details: {} }));
    const h = await backup(w);
    expect(((await h.result()) as BackupResult).status).toBe('Completed');
    expect(w.attempts['capture:other/conf']).toBe(2);
  });

  it('a step error keeps its own type (Stalled) in the run failure, not ActivityFailure', async () => {
    const w = makeWorld('stall', { sources: [other] });
    // The last attempt's failure is what the workflow sees once retries run out; one attempt keeps the test fast.
    w.on['capture:other/conf'] = permanent('Stalled', 'capture other/conf: no progress for 600 s');
    const f = await runFailure(await backup(w));
    expect(f.type).toBe('Stalled');
    expect(f.message).toBe('other:conf: capture other/conf: no progress for 600 s');
    expect(w.calls.at(-1)).toBe('discardIncomplete');
  });

  it('a sibling failing while a source is stopped: the stopped copy is cancelled, the source restarted, then .partial discarded', async () => {
    const w = makeWorld('sibling', { parallelism: 2, sources: [web(), other] });
    w.on['capture:web/site'] = hang;
    w.on['capture:other/conf'] = async () => {
      await waitFor(() => w.stopped.has('web')); // fail exactly while web is down
      throw ApplicationFailure.nonRetryable('a deny-listed file', 'DenyListViolation');
    };
    const h = await backup(w);
    const f = await runFailure(h);
    expect(f.type).toBe('DenyListViolation');
    expect(w.stopped.size).toBe(0);
    const start = w.calls.indexOf('quiesceStart web');
    expect(start).toBeGreaterThan(-1);
    expect(w.calls.indexOf('discardIncomplete')).toBeGreaterThan(start);
    expect(w.calls).not.toContain('finalizeSnapshot');
    await keepHistory(h, 'backup-sibling-failure');
  });

  it('small sources (preflight ≤ 64 MiB) are captured in lanes beside the parallelism ones; big ones never overlap', async () => {
    const src = (name: string, type = 'files') => ({ name, host: 'local', artifacts: [type === 'command' ? { name: `${name}-a`, type, command: ['true'] } : { name: `${name}-a`, type, paths: [`/${name}`] }] });
    // In plan order; `cmd` has no size (command output), so it is not small either.
    const sizes: Record<string, number | null> = { big1: 2 ** 30, s1: 1024, big2: 2 ** 30, s2: 1024, cmd: null, s3: 64 * 2 ** 20 };
    const w = makeWorld('small', { parallelism: 1, smallSourceParallelism: 3, sources: Object.keys(sizes).map((n) => src(n, n === 'cmd' ? 'command' : 'files')) });
    w.on.preflight = async (ctx: PlanContext) => ({ estimatedBytes: 0, requiredBytes: 0, freeBytes: 1e12, sources: ctx.plan.sources.map((s) => ({ name: s.name, host: s.host, appVersion: null, estimatedBytes: sizes[s.name] })) });
    const running = new Set<string>();
    let most = 0;
    const big = new Set(['big1', 'big2', 'cmd']);
    let bigOverlap = false;
    for (const name of Object.keys(sizes)) {
      w.on[`capture:${name}/${name}-a`] = async (ctx, _snapshot, source, artifact) => {
        if (big.has(name) && [...running].some((r) => big.has(r))) bigOverlap = true;
        running.add(name);
        most = Math.max(most, running.size);
        // s1 and s2 run beside big1 (with one pool of one lane, each would wait for the other and fail here).
        if (name === 'big1') await within(15, () => w.calls.includes('capture s1/s1-a') && w.calls.includes('capture s2/s2-a'))();
        if (name === 's1' || name === 's2') await within(15, () => running.has('big1'))();
        await Context.current().sleep(200);
        running.delete(name);
        return okArtifact(ctx, source, artifact);
      };
    }
    const h = await backup(w);
    const result = (await h.result()) as BackupResult;
    expect(result.status).toBe('Completed');
    expect(result.artifacts.map((a) => a.source)).toEqual(Object.keys(sizes));
    expect(bigOverlap).toBe(false);
    expect(most).toBe(3);
    // The one general lane takes the big ones in plan order.
    const order = w.calls.filter((c) => /^capture (big|cmd)/.test(c));
    expect(order).toEqual(['capture big1/big1-a', 'capture big2/big2-a', 'capture cmd/cmd-a']);
    await keepHistory(h, 'backup-small-source-lanes');
  });

  it('after a sibling failed, the other lane takes no new source', async () => {
    const third = { name: 'third', host: 'local', artifacts: [{ name: 't', type: 'files', paths: ['/t'] }] };
    const w = makeWorld('nonew', { parallelism: 1, sources: [other, third] });
    w.on['capture:other/conf'] = permanent('MissingPath');
    const f = await runFailure(await backup(w));
    expect(f.type).toBe('MissingPath');
    expect(w.calls).not.toContain('capture third/t');
  });

  for (const [phase, key] of [
    ['before the stop (live dump)', 'capture:web/db'],
    ['during the stop', 'quiesceStop'],
    ['while stopped (copy)', 'capture:web/site'],
    ['after the restart (finalize)', 'finalizeSnapshot'],
    ['during upload', 'uploadSnapshot'],
  ] as const) {
    it(`cancelled ${phase}: every stopped service is started again, .partial discarded, status Cancelled`, async () => {
      const w = makeWorld('cancel', { sources: [web()] });
      let reached = false;
      w.on[key] = async () => {
        if (key === 'quiesceStop') w.stopped.add('web'); // a stop that got half-way
        reached = true;
        return hang();
      };
      const h = await backup(w);
      await eventually(() => reached, `${key} running`);
      await h.cancel();
      const f = await runFailure(h);
      expect(f.name, `${f.type}: ${f.message}`).toBe('CancelledFailure');
      expect(w.stopped.size).toBe(0);
      const stopped = w.calls.includes('quiesceStop web');
      expect(w.calls.includes('quiesceStart web')).toBe(stopped);
      expect(w.calls.at(-1)).toBe('discardIncomplete');
      expect(await statusOf(h)).toBe('Cancelled');
      if (key === 'capture:web/site') await keepHistory(h, 'backup-cancelled');
    });
  }

  it('a restart that cannot succeed fails the run as RestartFailed naming the services and the copy error', async () => {
    const w = makeWorld('restart', { sources: [web()] });
    w.on['capture:web/site'] = permanent('IntegrityCheckFailed', 'copy is broken');
    w.on.quiesceStart = permanent('AuthFailed', 'permission denied (publickey)');
    const h = await backup(w);
    const f = await runFailure(h);
    expect(f.type).toBe('RestartFailed');
    expect(f.message).toContain('web-svc');
    expect(f.message).toContain('permission denied (publickey)');
    expect(f.message).toContain('copy is broken');
    expect(w.calls.at(-1)).toBe('discardIncomplete');
    expect(await statusOf(h)).toBe('Failed');
    await keepHistory(h, 'backup-restart-failed');
  });

  it('a retention failure is reported with the good snapshot, never a failed backup', async () => {
    const w = makeWorld('retention', { sources: [other] });
    w.on.applyRetention = permanent('StorageError', 'bucket says no');
    const h = await backup(w);
    const result = (await h.result()) as BackupResult;
    expect(result.status).toBe('Completed');
    expect(result.retention?.[0]?.error).toContain('bucket says no');
    expect(w.calls).not.toContain('discardIncomplete');
  });

  it('a permanent upload failure (AuthFailed) fails the run in one attempt and discards .partial', async () => {
    const w = makeWorld('upload', { sources: [other] });
    w.on.uploadSnapshot = permanent('AuthFailed', 'SignatureDoesNotMatch');
    const f = await runFailure(await backup(w));
    expect(f.type).toBe('AuthFailed');
    expect(w.attempts.uploadSnapshot).toBe(1);
    expect(w.calls.at(-1)).toBe('discardIncomplete');
  });

  it('a preflight failure fails before anything is written, and no snapshot name is shown', async () => {
    const w = makeWorld('preflight', { sources: [other] });
    w.on.preflight = permanent('HostKeyRejected', 'unknown host key');
    const h = await backup(w);
    expect((await runFailure(h)).type).toBe('HostKeyRejected');
    expect(w.calls).toEqual(['loadPlan', 'preflight']);
    expect((await h.describe()).typedSearchAttributes.get(SNAPSHOT)).toBeUndefined();
    expect(await statusOf(h)).toBe('Failed');
  });

  it("the plan's timeout stops a hung run as PlanTimeout (TimedOut), restarting what it stopped", async () => {
    const w = makeWorld('timeout', { timeout: '3s', sources: [web()] });
    w.on['capture:web/site'] = hang;
    const h = await backup(w);
    const f = await runFailure(h);
    expect(f.type).toBe('PlanTimeout');
    expect(w.stopped.size).toBe(0);
    expect(w.calls.slice(-2)).toEqual(['quiesceStart web', 'discardIncomplete']);
    expect(await statusOf(h)).toBe('TimedOut');
  });

  it('two runs of one plan never overlap: the second shows Waiting, then runs after the first', async () => {
    const w = makeWorld('lock', { sources: [other] });
    let release = false;
    let active = 0;
    let maxActive = 0;
    w.on['capture:other/conf'] = async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      await waitFor(() => release);
      active--;
      return { source: 'other', name: 'conf', type: 'files', required: true, status: 'ok', paths: [], bytes: 1, details: {} };
    };
    const first = await backup(w);
    await eventually(() => active === 1, 'first run capturing');
    const second = await backup(w);
    await eventually(async () => (await statusOf(second)) === 'Waiting', 'second run waiting');
    expect(w.calls.filter((c) => c === 'loadPlan')).toHaveLength(1);
    release = true;
    const [a, b] = (await Promise.all([first.result(), second.result()])) as BackupResult[];
    expect(a!.snapshot).not.toBe(b!.snapshot);
    expect(maxActive).toBe(1);
    await keepHistory(second, 'backup-lock-wait');
  });

  it('a run that is terminated does not keep the plan locked', async () => {
    const w = makeWorld('terminated', { sources: [other] });
    let reached = false;
    w.on['capture:other/conf'] = async () => {
      reached = true;
      return hang();
    };
    const first = await backup(w);
    await eventually(() => reached, 'first run capturing');
    await first.terminate('test: a run killed from the Web UI');
    delete w.on['capture:other/conf'];
    const second = await backup(w);
    expect(((await second.result()) as BackupResult).status).toBe('Completed');
  });
});
