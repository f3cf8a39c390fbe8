// What runs report (reportEvent: notifications and metrics) and what the Web UI shows of them (activity summaries,
// the snapshot attribute), driven by fake activities on the real Temporal dev server.
import { ApplicationFailure } from '@temporalio/common';
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SNAPSHOT } from '../../src/shared/search-attributes';
import type { BackupResult } from '../../src/shared/types';
import { freshnessChecks, hang, makeWorld, permanent, waitFor, type World } from '../support/fake-activities';
import type { TemporalFixture } from '../support/fixtures';
import { eventually, fakeWorker, keepHistory, runFailure, startWorkflow } from '../support/workflow-harness';

let t: TemporalFixture;
beforeAll(async () => {
  t = await fakeWorker('wf-events');
});
afterAll(async () => {
  await t?.close();
});

const quiesce = { type: 'commands', stop: ['stop-it'], start: ['start-it'] };
const web = {
  name: 'web',
  host: 'local',
  quiesce,
  artifacts: [
    { name: 'db', type: 'postgres', database: 'app' },
    { name: 'site', type: 'files', paths: ['/srv/site'] },
  ],
};
const remote = { name: 'far', host: '10.0.0.5', user: 'backup', identityFile: '/k', knownHosts: '/kh', artifacts: [{ name: 'conf', type: 'files', paths: ['/etc/far'] }] };

const backup = (w: World) => startWorkflow(t, 'backupPlan', w, [{ plan: w.ctx.planName, tier: 'daily' }]);
const snapshotAttr = async (h: WorkflowHandle) => (await h.describe()).typedSearchAttributes.get(SNAPSHOT);

/** The summary the Web UI shows for each scheduled activity, in order. */
async function activitySummaries(h: WorkflowHandle): Promise<Array<{ type: string; summary: string }>> {
  const history = await h.fetchHistory();
  return (history.events ?? [])
    .filter((e) => e.activityTaskScheduledEventAttributes)
    .map((e) => ({
      type: e.activityTaskScheduledEventAttributes!.activityType?.name ?? '',
      summary: e.userMetadata?.summary?.data ? JSON.parse(Buffer.from(e.userMetadata.summary.data).toString('utf8')) : '',
    }));
}

describe('run events and summaries', () => {
  it('a good run reports started right after loading the plan (beside preflight) and succeeded at the end, with size, bytes and duration', async () => {
    const w = makeWorld('ok', { sources: [web] });
    const h = await backup(w);
    const result = (await h.result()) as BackupResult;
    expect(w.events.map((e) => e.event)).toEqual(['started', 'succeeded']);
    // Not waited for: the started report and preflight run side by side, after loadPlan.
    expect(w.events[0]!.afterCalls).toBeGreaterThanOrEqual(1);
    expect(w.events[0]!.afterCalls).toBeLessThanOrEqual(2);
    expect(w.events[1]!.afterCalls).toBe(w.calls.length);
    const done = w.events[1]!;
    expect(done).toMatchObject({ plan: w.ctx.planName, kind: 'backup', tier: 'daily', snapshot: result.snapshot, status: 'Completed', sizeBytes: 42, bytesCaptured: 200, artifactsFailed: 0 });
    expect(done.durationMs).toBeGreaterThanOrEqual(0);
    expect(done.workflowId).toBe(h.workflowId);
    expect(result.notifications).toEqual([
      { target: 'fake', type: 'webhook', event: 'started', ok: true },
      { target: 'fake', type: 'webhook', event: 'succeeded', ok: true },
    ]);
    await keepHistory(h, 'backup-events-success');
  });

  it('every scheduled activity has a summary; the two captures are told apart and name the host', async () => {
    const w = makeWorld('summaries', { sources: [web, remote] });
    const h = await backup(w);
    await h.result();
    const summaries = await activitySummaries(h);
    expect(summaries.length).toBeGreaterThan(10);
    for (const s of summaries) expect(s.summary, s.type).not.toBe('');
    const captures = summaries.filter((s) => s.type === 'captureArtifact').map((s) => s.summary);
    expect(captures.sort()).toEqual(['capture far/conf (files) from backup@10.0.0.5', 'capture web/db (postgres) from the backup host', 'capture web/site (files) from the backup host']);
  });

  it('an optional artifact that fails: partially_failed naming it', async () => {
    const w = makeWorld('partial', { sources: [{ ...remote, artifacts: [...remote.artifacts, { name: 'extra', type: 'files', paths: ['/x'], required: false }] }] });
    w.on['capture:far/extra'] = permanent('MissingPath', 'missing: /x');
    await (await backup(w)).result();
    expect(w.events.at(-1)).toMatchObject({ event: 'partially_failed', status: 'PartiallyFailed', artifactsFailed: 1, failingStep: 'far:extra' });
  });

  it('a failed capture: failed with the step, type and message; the snapshot attribute is cleared', async () => {
    const w = makeWorld('fail', { sources: [web] });
    w.on['capture:web/site'] = permanent('MissingPath', 'missing on local: /srv/site');
    const h = await backup(w);
    expect((await runFailure(h)).type).toBe('MissingPath');
    const failed = w.events.at(-1)!;
    expect(failed).toMatchObject({ event: 'failed', status: 'Failed', errorType: 'MissingPath', failingStep: 'web:site', error: 'missing on local: /srv/site' });
    expect(failed.snapshot).toMatch(/-\d{8}T\d{6}$/);
    expect(failed.afterCalls).toBe(w.calls.length); // after discardIncomplete and the restart
    expect(await snapshotAttr(h)).toBeUndefined();
    await keepHistory(h, 'backup-events-failure');
  });

  it('a failed preflight: failed at preflight, no snapshot named anywhere', async () => {
    const w = makeWorld('preflight', { sources: [remote] });
    w.on.preflight = permanent('HostKeyRejected', 'unknown host key');
    const h = await backup(w);
    await runFailure(h);
    expect(w.events.map((e) => e.event)).toEqual(['started', 'failed']);
    expect(w.events[1]).toMatchObject({ errorType: 'HostKeyRejected', failingStep: 'preflight' });
    expect(w.events[1]!.snapshot).toBeUndefined();
    expect(await snapshotAttr(h)).toBeUndefined();
  });

  it('services that stay down: restart_failed', async () => {
    const w = makeWorld('restart', { sources: [web] });
    w.on['capture:web/site'] = permanent('IntegrityCheckFailed', 'copy is broken');
    w.on.quiesceStart = permanent('AuthFailed', 'permission denied (publickey)');
    await runFailure(await backup(w));
    expect(w.events.at(-1)).toMatchObject({ event: 'restart_failed', errorType: 'RestartFailed', failingStep: 'restart' });
  });

  it('a cancelled run reports failed with status Cancelled', async () => {
    const w = makeWorld('cancel', { sources: [web] });
    let reached = false;
    w.on['capture:web/site'] = async () => {
      reached = true;
      return hang();
    };
    const h = await backup(w);
    await eventually(() => reached, 'copy running');
    await h.cancel();
    await runFailure(h);
    expect(w.events.at(-1)).toMatchObject({ event: 'failed', status: 'Cancelled', errorType: 'Cancelled' });
  });

  it('a report that fails never changes the outcome: the run completes and lists the failed delivery', async () => {
    const w = makeWorld('noreport', { sources: [remote] });
    w.on.reportEvent = permanent('ConfigError', 'notify broke');
    const result = (await (await backup(w)).result()) as BackupResult;
    expect(result.status).toBe('Completed');
    expect(result.notifications).toHaveLength(2);
    for (const n of result.notifications!) expect(n).toMatchObject({ ok: false, error: expect.stringContaining('notify broke') });
  });

  it('a failed restore drill reports verify_failed; a good one reports succeeded (kind verify)', async () => {
    const w = makeWorld('drill', { sources: [web] });
    w.on['verify:snap-3'] = async () => ({ snapshot: 'snap-3', ok: false, duration_ms: 5, verified_at: new Date().toISOString(), checks: [{ artifact: 'db', check: 'row counts', ok: false, detail: 'orders: 10 != 12' }] });
    const bad = await startWorkflow(t, 'verifyRestore', w, [{ plan: w.ctx.planName }]);
    expect((await runFailure(bad)).type).toBe('VerificationFailed');
    expect(w.events).toHaveLength(1);
    expect(w.events[0]).toMatchObject({ event: 'verify_failed', kind: 'verify', errorType: 'VerificationFailed', error: expect.stringContaining('orders: 10 != 12') });
    delete w.on['verify:snap-3'];
    const good = await startWorkflow(t, 'verifyRestore', w, [{ plan: w.ctx.planName }]);
    await good.result();
    await keepHistory(good, 'verify-events-success');
    expect(w.events).toHaveLength(2);
    expect(w.events[1]).toMatchObject({ event: 'succeeded', kind: 'verify', snapshot: 'snap-3', status: 'Completed' });
  });

  it('a failed run whose report fails too: the failed deliveries ride in the failure details, after the step details', async () => {
    const w = makeWorld('failnoreport', { sources: [remote] });
    w.on['capture:far/conf'] = () => Promise.reject(ApplicationFailure.nonRetryable('missing: /etc/far', 'MissingPath', { path: '/etc/far' }));
    w.on.reportEvent = async (e: { event: string }) => [{ target: 'hook', type: 'webhook', event: e.event, ok: e.event === 'started', ...(e.event === 'started' ? {} : { error: 'HTTP 500' }) }];
    const h = await backup(w);
    const err = (await h.result().catch((e: unknown) => e)) as { cause: ApplicationFailure };
    expect(err.cause.type).toBe('MissingPath');
    expect(err.cause.details).toEqual([{ path: '/etc/far' }, { notifications: [{ target: 'hook', type: 'webhook', event: 'failed', ok: false, error: 'HTTP 500' }] }]);
  });

  it('an error longer than 10 KB is sent as its last 10 KB', async () => {
    const w = makeWorld('long', { sources: [remote] });
    w.on['capture:far/conf'] = () => Promise.reject(ApplicationFailure.nonRetryable(`${'x'.repeat(20_000)}THE END`, 'CommandFailed'));
    await runFailure(await backup(w));
    const error = w.events.at(-1)!.error!;
    expect(error.length).toBeLessThanOrEqual(10 * 1024 + 1);
    expect(error.endsWith('THE END')).toBe(true);
  });
});

describe('freshnessWatchdog', () => {
  const watchdog = (w: World) => startWorkflow(t, 'freshnessWatchdog', w, [], 'watchdog');

  it('reports each transition the check returns (stale, recovered) and nothing for a quiet check', async () => {
    const a = makeWorld('stale', { sources: [remote] });
    const b = makeWorld('fresh', { sources: [remote] });
    const stale = { event: 'stale' as const, plan: a.ctx.planName, kind: 'freshness' as const, status: 'stale', reason: 'newest snapshot 27h old (maxAge 26h)' };
    freshnessChecks.push(
      [
        { plan: a.ctx.planName, stale: true, reasons: [stale.reason], event: stale },
        { plan: b.ctx.planName, stale: false, reasons: [] },
      ],
      [{ plan: a.ctx.planName, stale: true, reasons: [stale.reason] }],
    );
    const first = await watchdog(a);
    const r1 = (await first.result()) as { notifications: unknown[] };
    expect(a.events.map((e) => e.event)).toEqual(['stale']);
    expect(a.events[0]).toMatchObject({ reason: stale.reason, workflowId: first.workflowId });
    expect(b.events).toEqual([]);
    expect(r1.notifications).toHaveLength(1);
    await keepHistory(first, 'freshness-stale');
    await (await watchdog(a)).result();
    expect(a.events).toHaveLength(1); // the same episode is not reported again
  });

  it('a report that fails is recorded in the result, the watchdog still completes', async () => {
    const a = makeWorld('stale-noreport', { sources: [remote] });
    a.on.reportEvent = permanent('ConfigError', 'notify broke');
    freshnessChecks.push([{ plan: a.ctx.planName, stale: true, reasons: ['x'], event: { event: 'stale', plan: a.ctx.planName, kind: 'freshness', status: 'stale', reason: 'x' } }]);
    const r = (await (await watchdog(a)).result()) as { notifications: Array<{ ok: boolean; error?: string }> };
    expect(r.notifications).toEqual([expect.objectContaining({ ok: false, error: expect.stringContaining('notify broke') })]);
  });
});

describe('a started report that hangs', () => {
  it('does not hold up the backup; the run waits for it only before its own outcome', async () => {
    const w = makeWorld('slowreport', { sources: [remote] });
    let release = false;
    w.on.reportEvent = async (e: { event: string }) => {
      if (e.event === 'started') await waitFor(() => release);
      return [];
    };
    const h = await backup(w);
    await eventually(() => w.calls.includes('pruneLocal'), 'the backup reached its end while the started report hangs');
    expect(w.events.map((e) => e.event)).toEqual(['started']);
    release = true;
    expect(((await h.result()) as BackupResult).status).toBe('Completed');
    expect(w.events.map((e) => e.event)).toEqual(['started', 'succeeded']);
  });
});
