// `lifeboat schedules` against the real Temporal dev server: sync creates, a second sync is a no-op, removing a
// tier deletes only its schedule, foreign schedules are never touched, pause notes show in list, and a triggered
// daily schedule runs a real backup recorded as tier "daily".
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ScheduleNotFoundError, ScheduleOverlapPolicy, type ScheduleDescription } from '@temporalio/client';
import type { TypedSearchAttributes } from '@temporalio/common';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load';
import { desiredSchedules, triggerSchedule, type ScheduleListing, type SyncReport } from '../../src/schedules/sync';
import { PLAN, TIER } from '../../src/shared/search-attributes';
import type { BackupResult } from '../../src/shared/types';
import { tempDir, temporalFixture, uniqueName, writeConfig, type TemporalFixture } from '../support/fixtures';

const LIFEBOAT_BIN = new URL('../../bin/lifeboat.mjs', import.meta.url).pathname;
const root = await tempDir('schedules');
const taskQueue = uniqueName('sched-it');
const planA = uniqueName('sa').replace(/-/g, '');
const planB = uniqueName('sb').replace(/-/g, '');
const data = join(root, 'site');
const store = join(root, 'storage');
// Schedules Lifeboat must leave alone: one of another Lifeboat (task queue), one that is not Lifeboat's at all.
const otherQueue = uniqueName('sched-other');
const foreignLifeboat = `lifeboat-${uniqueName('x').replace(/-/g, '')}-daily`;
const foreignPlain = uniqueName('nightly-report');
const id = (plan: string, tier: string) => `lifeboat-${plan}-${tier}`;
const A_SCHEDULE = { timezone: 'Europe/Berlin', jitter: '1m', catchupWindow: '2h', daily: '30 2 * * *', weekly: '0 4 * * 0', monthly: '0 5 1 * *', verify: '0 6 15 * *' };
let t: TemporalFixture;
let configPath: string;

const cli = (...args: string[]) => execa('node', [LIFEBOAT_BIN, '-c', configPath, 'schedules', ...args], { reject: false });
const describeSchedule = (scheduleId: string) => t.client.schedule.getHandle(scheduleId).describe();
const token = (d: ScheduleDescription) => Buffer.from(d.raw.conflictToken ?? []).toString('hex');
// describe() decodes the action's search attributes as TypedSearchAttributes.
const actionAttrs = (d: ScheduleDescription) => d.action.typedSearchAttributes as TypedSearchAttributes;

async function writePlans(a: Record<string, unknown>, b: Record<string, unknown>): Promise<void> {
  const plan = (schedule: Record<string, unknown>) => ({
    storages: ['local'],
    sources: [{ name: 'web', host: 'local', artifacts: [{ type: 'files', name: 'site', paths: [data] }] }],
    schedule,
  });
  configPath = await writeConfig(root, {
    backupRoot: join(root, 'backups'),
    temporal: { address: inject('temporalAddress'), taskQueue },
    storages: { local: { type: 'local', path: store } },
    plans: { [planA]: plan(a), [planB]: plan(b) },
  });
}

async function syncJson(...extra: string[]): Promise<SyncReport> {
  const r = await cli('sync', '--json', ...extra);
  expect(r.exitCode, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as SyncReport;
}

async function foreignSchedule(scheduleId: string, queue: string, memo?: Record<string, unknown>): Promise<void> {
  await t.client.schedule.create({
    scheduleId,
    spec: { cronExpressions: ['0 3 1 1 *'] },
    action: { type: 'startWorkflow', workflowType: 'backupPlan', args: [{ plan: 'x', tier: 'daily' }], taskQueue: queue },
    ...(memo ? { memo } : {}),
    state: { paused: true, note: 'not Lifeboat\'s' },
  });
}

beforeAll(async () => {
  await mkdir(data, { recursive: true });
  await writeFile(join(data, 'index.html'), '<h1>scheduled</h1>\n');
  await writePlans(A_SCHEDULE, { daily: '15 3 * * *' });
  t = await temporalFixture(configPath, taskQueue);
  await foreignSchedule(foreignLifeboat, otherQueue, { lifeboatTaskQueue: otherQueue });
  await foreignSchedule(foreignPlain, taskQueue);
});

afterAll(async () => {
  const mine = [planA, planB].flatMap((p) => ['daily', 'weekly', 'monthly', 'verify'].map((tier) => id(p, tier)));
  await Promise.allSettled([...mine, foreignLifeboat, foreignPlain].map((s) => t?.client.schedule.getHandle(s).delete()));
  await t?.close();
});

describe('lifeboat schedules', () => {
  const allIds = [id(planA, 'daily'), id(planA, 'monthly'), id(planA, 'verify'), id(planA, 'weekly'), id(planB, 'daily')].sort();
  let foreignTokens: string[];

  it('sync creates one schedule per configured cron, with SKIP, catch-up window, jitter, time zone and memo', async () => {
    foreignTokens = [token(await describeSchedule(foreignLifeboat)), token(await describeSchedule(foreignPlain))];
    const r = await cli('sync');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`created     5  ${allIds.join(', ')}`);
    expect(r.stdout).toMatch(/^unchanged\s+0$/m);

    const desired = Object.fromEntries(desiredSchedules(await loadConfig(configPath)).map((d) => [d.id, d]));
    const daily = await describeSchedule(id(planA, 'daily'));
    expect(daily.spec.timezone).toBe('Europe/Berlin');
    expect(daily.spec.jitter).toBe(60_000);
    expect(daily.spec.calendars?.[0]).toMatchObject({ minute: [{ start: 30, end: 30 }], hour: [{ start: 2, end: 2 }], dayOfWeek: [{ start: 'SUNDAY', end: 'SATURDAY' }] });
    expect(daily.policies).toMatchObject({ overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: 2 * 3_600_000 });
    expect(daily.memo).toEqual({ lifeboatTaskQueue: taskQueue, lifeboatPlan: planA, lifeboatTier: 'daily' });
    expect(daily.action).toMatchObject({ workflowType: 'backupPlan', taskQueue, workflowId: `scheduled-${planA}-daily`, args: [{ plan: planA, tier: 'daily' }] });
    expect(daily.action.memo).toEqual({ lifeboatFingerprint: desired[id(planA, 'daily')]!.fingerprint });
    expect(actionAttrs(daily).get(TIER)).toBe('daily');
    expect(actionAttrs(daily).get(PLAN)).toBe(planA);

    const weekly = await describeSchedule(id(planA, 'weekly'));
    expect(weekly.spec.calendars?.[0]).toMatchObject({ minute: [{ start: 0 }], hour: [{ start: 4 }], dayOfWeek: [{ start: 'SUNDAY', end: 'SUNDAY' }] });

    const verify = await describeSchedule(id(planA, 'verify'));
    expect(verify.action).toMatchObject({ workflowType: 'verifyRestore', args: [{ plan: planA }], workflowId: `scheduled-${planA}-verify` });
    expect(actionAttrs(verify).get(TIER)).toBeUndefined();
    expect(actionAttrs(verify).get(PLAN)).toBe(planA);

    const b = await describeSchedule(id(planB, 'daily'));
    expect(b.spec.timezone).toBe('UTC');
    expect(b.policies).toMatchObject({ overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: 6 * 3_600_000 });
  });

  it('a second sync changes nothing: all unchanged, same update time and conflict token', async () => {
    const before = await Promise.all(allIds.map(describeSchedule));
    const report = await syncJson();
    expect(report).toMatchObject({ created: [], updated: [], deleted: [], conflicts: [], unchanged: allIds });
    const after = await Promise.all(allIds.map(describeSchedule));
    expect(after.map(token)).toEqual(before.map(token));
    expect(after.map((d) => d.info.lastUpdatedAt?.toISOString())).toEqual(before.map((d) => d.info.lastUpdatedAt?.toISOString()));
  });

  it('removing a tier deletes only its schedule (dry run first changes nothing); foreign schedules are untouched', async () => {
    const { weekly: _dropped, ...withoutWeekly } = A_SCHEDULE;
    await writePlans(withoutWeekly, { daily: '15 3 * * *' });
    const dry = await syncJson('--dry-run');
    expect(dry).toMatchObject({ dryRun: true, deleted: [id(planA, 'weekly')], created: [], updated: [] });
    await describeSchedule(id(planA, 'weekly')); // still there

    const real = await syncJson();
    expect(real).toMatchObject({ deleted: [id(planA, 'weekly')], created: [], updated: [], unchanged: allIds.filter((s) => s !== id(planA, 'weekly')) });
    await expect(describeSchedule(id(planA, 'weekly'))).rejects.toBeInstanceOf(ScheduleNotFoundError);
    expect([token(await describeSchedule(foreignLifeboat)), token(await describeSchedule(foreignPlain))]).toEqual(foreignTokens);
    expect((await describeSchedule(foreignLifeboat)).state).toMatchObject({ paused: true, note: 'not Lifeboat\'s' });
  });

  it('pause with a note shows in list; a config change updates the schedule and keeps it paused', async () => {
    const bDaily = id(planB, 'daily');
    const p = await cli('pause', bDaily, '--note', 'disk swap until Friday');
    expect(p.exitCode, p.stderr).toBe(0);

    const text = await cli('list');
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toContain(`${bDaily}  daily  "15 3 * * *" UTC  PAUSED (disk swap until Friday)  [in-sync]`);
    const listed = JSON.parse((await cli('list', '--json')).stdout) as ScheduleListing[];
    expect(listed.map((s) => s.id)).toEqual(allIds.filter((s) => s !== id(planA, 'weekly')));
    expect(listed.find((s) => s.id === bDaily)).toMatchObject({ plan: planB, tier: 'daily', paused: true, note: 'disk swap until Friday', status: 'in-sync' });
    expect(listed.find((s) => s.id === id(planA, 'daily'))).toMatchObject({ paused: false, cron: '30 2 * * *', timezone: 'Europe/Berlin' });
    expect(listed.find((s) => s.id === id(planA, 'daily'))!.nextRuns.length).toBeGreaterThan(0);

    const { weekly: _dropped, ...withoutWeekly } = A_SCHEDULE;
    await writePlans(withoutWeekly, { daily: '45 3 * * *' });
    expect(JSON.parse((await cli('list', '--json')).stdout).find((s: ScheduleListing) => s.id === bDaily).status).toBe('out-of-date');
    const report = await syncJson();
    expect(report).toMatchObject({ updated: [bDaily], created: [], deleted: [] });
    const d = await describeSchedule(bDaily);
    expect(d.spec.calendars?.[0]).toMatchObject({ minute: [{ start: 45 }], hour: [{ start: 3 }] });
    expect(d.state).toMatchObject({ paused: true, note: 'disk swap until Friday' });
    expect((await syncJson()).unchanged).toContain(bDaily);

    const u = await cli('unpause', bDaily, '--note', 'disk is back');
    expect(u.exitCode, u.stderr).toBe(0);
    expect((await describeSchedule(bDaily)).state).toMatchObject({ paused: false, note: 'disk is back' });
  });

  it('trigger runs a real backup recorded as tier daily; a second trigger while it runs is skipped (SKIP)', async () => {
    const scheduleId = id(planA, 'daily');
    const before = await describeSchedule(scheduleId);
    const r = await cli('trigger', scheduleId);
    expect(r.exitCode, r.stderr).toBe(0);
    // Straight after, while that backup is still running: the schedule's SKIP applies to triggers too.
    await triggerSchedule(t.client, await loadConfig(configPath), scheduleId);

    let d = await describeSchedule(scheduleId);
    for (let i = 0; i < 50 && d.info.recentActions.length === before.info.recentActions.length; i++) {
      await new Promise((res) => setTimeout(res, 200));
      d = await describeSchedule(scheduleId);
    }
    const started = d.info.recentActions.slice(before.info.recentActions.length);
    expect(started).toHaveLength(1);
    const workflowId = started[0]!.action.workflow.workflowId;
    expect(workflowId.startsWith(`scheduled-${planA}-daily`)).toBe(true);

    const handle = t.client.workflow.getHandle(workflowId);
    const result = (await handle.result()) as BackupResult;
    expect(result).toMatchObject({ success: true, plan: planA, tier: 'daily' });
    const record = JSON.parse(await readFile(join(store, planA, `${result.snapshot}.json`), 'utf8'));
    expect(record).toMatchObject({ plan: planA, tier: 'daily', snapshot: result.snapshot });
    const wf = await handle.describe();
    expect(wf.typedSearchAttributes.get(TIER)).toBe('daily');
    expect(wf.typedSearchAttributes.get(PLAN)).toBe(planA);

    d = await describeSchedule(scheduleId);
    expect(d.info.numActionsSkippedOverlap - before.info.numActionsSkippedOverlap).toBe(1);
    expect(d.info.recentActions.slice(before.info.recentActions.length)).toHaveLength(1);
  });

  it('a desired id held by a schedule that is not ours is reported as a conflict and left alone', async () => {
    const taken = id(planB, 'monthly');
    await foreignSchedule(taken, otherQueue, { lifeboatTaskQueue: otherQueue });
    const tokenBefore = token(await describeSchedule(taken));
    const { weekly: _dropped, ...withoutWeekly } = A_SCHEDULE;
    await writePlans(withoutWeekly, { daily: '45 3 * * *', monthly: '0 1 1 * *' });
    const r = await cli('sync');
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`conflict: ${taken}`);
    expect(r.stdout).toMatch(/^created\s+0$/m);
    const d = await describeSchedule(taken);
    expect(token(d)).toBe(tokenBefore);
    expect(d.action.taskQueue).toBe(otherQueue);
  });

  it('pause, unpause and trigger refuse ids that are not Lifeboat\'s, naming the known ones', async () => {
    for (const bad of ['lifeboat-nope-daily', foreignLifeboat, foreignPlain]) {
      const r = await cli('trigger', bad);
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toContain(`ConfigError: no Lifeboat schedule "${bad}"`);
      const known = /\(known: (.*)\)/.exec(r.stderr)?.[1]?.split(', ');
      expect(known).toEqual([id(planA, 'daily'), id(planA, 'monthly'), id(planA, 'verify'), id(planB, 'daily')]);
    }
    expect((await describeSchedule(foreignPlain)).info.recentActions).toEqual([]);
  });
});
