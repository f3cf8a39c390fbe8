// desiredSchedules and planSync: which schedules a config asks for, and what a sync would do. No Temporal.
import { describe, expect, it } from 'vitest';
import { Config } from '../../src/config/schema';
import { canonicalJson, desiredSchedules, durationMs, FRESHNESS_SCHEDULE_ID, intervalText, overlapWarnings, planSync, type DesiredSchedule, type ExistingSchedule } from '../../src/schedules/sync';

const source = { name: 'app', host: 'local', artifacts: [{ type: 'files', name: 'site', paths: ['/srv/site'] }] };

function config(schedule: Record<string, unknown> | undefined, extra: Record<string, unknown> = {}) {
  return Config.parse({
    backupRoot: '/srv/lifeboat',
    temporal: { taskQueue: 'lifeboat-q' },
    storages: { disk: { type: 'local', path: '/mnt/disk' } },
    plans: {
      web: { sources: [source], storages: ['disk'], ...(schedule ? { schedule } : {}) },
      quiet: { sources: [source], storages: ['disk'] },
      ...extra,
    },
  });
}

const FULL = { timezone: 'Europe/Berlin', jitter: '5m', catchupWindow: '2h', daily: '30 2 * * *', weekly: '0 4 * * 0', monthly: '0 5 1 * *', verify: '0 6 15 * *' };
const byId = (ds: DesiredSchedule[]) => Object.fromEntries(ds.map((d) => [d.id, d]));

describe('desiredSchedules', () => {
  it('one schedule per configured cron, named lifeboat-<plan>-<tier>, plans without a schedule have none', () => {
    const ds = desiredSchedules(config(FULL));
    expect(ds.map((d) => d.id)).toEqual(['lifeboat-web-daily', 'lifeboat-web-monthly', 'lifeboat-web-verify', 'lifeboat-web-weekly']);
    expect(desiredSchedules(config({ daily: '0 1 * * *' })).map((d) => d.id)).toEqual(['lifeboat-web-daily']);
    expect(desiredSchedules(config(undefined))).toEqual([]);
  });

  it('backup tiers start backupPlan with {plan, tier} and both search attributes', () => {
    const d = byId(desiredSchedules(config(FULL)))['lifeboat-web-weekly']!;
    expect(d).toMatchObject({
      plan: 'web',
      tier: 'weekly',
      cron: '0 4 * * 0',
      timezone: 'Europe/Berlin',
      jitterMs: 300_000,
      catchupWindowMs: 7_200_000,
      workflowType: 'backupPlan',
      workflowId: 'scheduled-web-weekly',
      args: [{ plan: 'web', tier: 'weekly' }],
      taskQueue: 'lifeboat-q',
      searchAttributes: { LifeboatPlan: 'web', LifeboatTier: 'weekly' },
    });
    expect(d.fingerprint).toMatch(/^[0-9a-f]{64}$/);
  });

  it('verify starts verifyRestore with {plan} and only LifeboatPlan (verify is not a Tier)', () => {
    const d = byId(desiredSchedules(config(FULL)))['lifeboat-web-verify']!;
    expect(d).toMatchObject({ workflowType: 'verifyRestore', args: [{ plan: 'web' }], workflowId: 'scheduled-web-verify', searchAttributes: { LifeboatPlan: 'web' } });
    expect(d.searchAttributes).not.toHaveProperty('LifeboatTier');
  });

  it('schema defaults: UTC, no jitter, a 6 h catch-up window', () => {
    const [d] = desiredSchedules(config({ daily: '0 1 * * *' }));
    expect(d).toMatchObject({ timezone: 'UTC', jitterMs: 0, catchupWindowMs: 6 * 3_600_000 });
  });

  it('fingerprints do not depend on key order in the config', () => {
    const reversed = Object.fromEntries(Object.entries(FULL).reverse());
    const a = desiredSchedules(config(FULL, { other: { storages: ['disk'], sources: [source], schedule: { daily: '0 3 * * *' } } }));
    const b = desiredSchedules(config(reversed, { other: { schedule: { daily: '0 3 * * *' }, sources: [source], storages: ['disk'] } }));
    expect(b.map((d) => [d.id, d.fingerprint])).toEqual(a.map((d) => [d.id, d.fingerprint]));
    expect(canonicalJson({ b: 1, a: { d: [2, { y: 1, x: 0 }], c: undefined } })).toBe('{"a":{"d":[2,{"x":0,"y":1}]},"b":1}');
  });

  it('every field that defines a schedule changes its fingerprint; unrelated fields do not', () => {
    const base = byId(desiredSchedules(config(FULL)));
    const fp = (schedule: Record<string, unknown>, taskQueue = 'lifeboat-q') =>
      byId(desiredSchedules(Config.parse({ ...config(schedule), temporal: { taskQueue } })))['lifeboat-web-daily']!.fingerprint;
    const daily = base['lifeboat-web-daily']!.fingerprint;
    expect(fp(FULL)).toBe(daily);
    for (const change of [{ daily: '31 2 * * *' }, { timezone: 'UTC' }, { jitter: '6m' }, { catchupWindow: '3h' }]) {
      expect(fp({ ...FULL, ...change }), JSON.stringify(change)).not.toBe(daily);
    }
    expect(fp(FULL, 'other-queue')).not.toBe(daily);
    // Another tier's cron is another schedule.
    expect(fp({ ...FULL, weekly: '0 3 * * 0' })).toBe(daily);
    // Same meaning, same fingerprint: durations are compared in milliseconds.
    expect(fp({ ...FULL, jitter: '300s', catchupWindow: '120m' })).toBe(daily);
    // Tiers of one plan differ in action (args, workflow id, search attributes) even with the same cron.
    const same = byId(desiredSchedules(config({ daily: '0 1 * * *', weekly: '0 1 * * *' })));
    expect(same['lifeboat-web-daily']!.fingerprint).not.toBe(same['lifeboat-web-weekly']!.fingerprint);
  });

  it('durations', () => {
    expect([durationMs('0s'), durationMs('30s'), durationMs('10m'), durationMs('6h'), durationMs('2d')]).toEqual([0, 30_000, 600_000, 21_600_000, 172_800_000]);
    expect(() => durationMs('6 hours')).toThrow(/duration/);
  });

  it('warns when two backup tiers of a plan start at the same minute and hour', () => {
    expect(overlapWarnings(desiredSchedules(config(FULL)))).toEqual([]);
    const w = overlapWarnings(desiredSchedules(config({ daily: '30 2 * * *', weekly: '30 2 * * 0', verify: '30 2 * * *' })));
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/plan web: daily and weekly both start at "30 2"/);
  });
});

describe('the freshness watchdog schedule', () => {
  const watched = (plan: Record<string, unknown>, top: Record<string, unknown> = {}) =>
    Config.parse({ ...config(FULL), ...top, plans: { ...config(FULL).plans, quiet: { sources: [source], storages: ['disk'], ...plan } } });

  it('exists only while some plan sets maxAge or maxVerifiedAge', () => {
    expect(desiredSchedules(config(FULL)).map((d) => d.id)).not.toContain(FRESHNESS_SCHEDULE_ID);
    expect(desiredSchedules(watched({ maxAge: '26h' })).map((d) => d.id)).toContain(FRESHNESS_SCHEDULE_ID);
    expect(desiredSchedules(watched({ maxVerifiedAge: '35d' })).map((d) => d.id)).toContain(FRESHNESS_SCHEDULE_ID);
    // A plan without a backup schedule can still be watched (backups started by CI, say).
    const onlyWatched = Config.parse({ ...config(undefined), plans: { web: { sources: [source], storages: ['disk'], maxAge: '2d' } } });
    expect(desiredSchedules(onlyWatched).map((d) => d.id)).toEqual([FRESHNESS_SCHEDULE_ID]);
  });

  it('runs freshnessWatchdog every watchdog.every (default 10m), no arguments, no plan search attributes', () => {
    const d = byId(desiredSchedules(watched({ maxAge: '26h' })))[FRESHNESS_SCHEDULE_ID]!;
    expect(d).toMatchObject({ id: 'lifeboat-freshness', plan: '*', tier: 'freshness', intervalMs: 600_000, jitterMs: 0, workflowType: 'freshnessWatchdog', workflowId: 'scheduled-freshness', args: [], taskQueue: 'lifeboat-q', searchAttributes: {} });
    expect(d).not.toHaveProperty('cron');
    const every = byId(desiredSchedules(watched({ maxAge: '26h' }, { watchdog: { every: '1m' } })))[FRESHNESS_SCHEDULE_ID]!;
    expect(every.intervalMs).toBe(60_000);
    expect(every.fingerprint).not.toBe(d.fingerprint);
    expect(byId(desiredSchedules(watched({ maxAge: '26h' }, { watchdog: { every: '600s' } })))[FRESHNESS_SCHEDULE_ID]!.fingerprint).toBe(d.fingerprint);
    expect(overlapWarnings(desiredSchedules(watched({ maxAge: '26h' })))).toEqual([]);
    expect([intervalText(600_000), intervalText(90_000), intervalText(7_200_000), intervalText(172_800_000), intervalText(10_000)]).toEqual(['10m', '90s', '2h', '2d', '10s']);
  });

  it('adding it changes no existing schedule: watching a plan leaves the backup and verify fingerprints as they were', () => {
    const fps = (c: Config) => Object.fromEntries(desiredSchedules(c).filter((d) => d.id !== FRESHNESS_SCHEDULE_ID).map((d) => [d.id, d.fingerprint]));
    const before = fps(watched({}));
    expect(Object.keys(before)).toEqual(expect.arrayContaining(['lifeboat-web-daily', 'lifeboat-web-weekly', 'lifeboat-web-monthly', 'lifeboat-web-verify']));
    expect(fps(watched({ maxAge: '26h' }))).toEqual(before);
  });

  it('sync creates it, and deletes it once no plan is watched any more', () => {
    const desired = desiredSchedules(watched({ maxAge: '26h' }));
    const ours = (d: DesiredSchedule): ExistingSchedule => ({ id: d.id, fingerprint: d.fingerprint, taskQueue: 'lifeboat-q' });
    const before = desired.filter((d) => d.id !== FRESHNESS_SCHEDULE_ID).map(ours);
    expect(planSync(desired, before, 'lifeboat-q').create.map((d) => d.id)).toEqual([FRESHNESS_SCHEDULE_ID]);
    expect(planSync(desiredSchedules(config(FULL)), desired.map(ours), 'lifeboat-q').delete).toEqual([FRESHNESS_SCHEDULE_ID]);
  });
});

describe('planSync', () => {
  const desired = desiredSchedules(config(FULL));
  const d = byId(desired);
  const ours = (id: string, fingerprint = d[id]?.fingerprint): ExistingSchedule => ({ id, fingerprint, taskQueue: 'lifeboat-q' });

  it('nothing on the server: create everything', () => {
    const p = planSync(desired, [], 'lifeboat-q');
    expect(p.create.map((x) => x.id)).toEqual(desired.map((x) => x.id));
    expect([p.update, p.delete, p.unchanged, p.conflicts]).toEqual([[], [], [], []]);
  });

  it('everything matches: all unchanged', () => {
    const p = planSync(desired, desired.map((x) => ours(x.id)), 'lifeboat-q');
    expect(p.unchanged).toEqual(desired.map((x) => x.id));
    expect([p.create, p.update, p.delete, p.conflicts]).toEqual([[], [], [], []]);
  });

  it('a different or missing fingerprint updates; ours not in the config is deleted', () => {
    const existing = [ours('lifeboat-web-daily', 'old'), { id: 'lifeboat-web-weekly', taskQueue: 'lifeboat-q' }, ours('lifeboat-web-monthly'), ours('lifeboat-gone-daily', 'x')];
    const p = planSync(desired, existing, 'lifeboat-q');
    expect(p.create.map((x) => x.id)).toEqual(['lifeboat-web-verify']);
    expect(p.update.map((x) => x.id)).toEqual(['lifeboat-web-daily', 'lifeboat-web-weekly']);
    expect(p.unchanged).toEqual(['lifeboat-web-monthly']);
    expect(p.delete).toEqual(['lifeboat-gone-daily']);
  });

  it('never touches schedules of another task queue, without our memo, or without our prefix', () => {
    const foreign: ExistingSchedule[] = [
      { id: 'lifeboat-gone-daily', fingerprint: 'x', taskQueue: 'other-q' },
      { id: 'lifeboat-legacy-weekly' },
      { id: 'nightly-report', taskQueue: 'lifeboat-q', fingerprint: 'y' },
    ];
    const p = planSync(desired, [...desired.map((x) => ours(x.id)), ...foreign], 'lifeboat-q');
    expect(p.delete).toEqual([]);
    expect(p.unchanged).toHaveLength(desired.length);
  });

  it('a desired id held by a foreign schedule is a conflict, not an update', () => {
    const p = planSync(desired, [{ id: 'lifeboat-web-daily', fingerprint: d['lifeboat-web-daily']!.fingerprint, taskQueue: 'other-q' }], 'lifeboat-q');
    expect(p.conflicts).toEqual(['lifeboat-web-daily']);
    expect(p.create.map((x) => x.id)).not.toContain('lifeboat-web-daily');
    expect(p.update).toEqual([]);
  });

  it('an empty config deletes all of ours and nothing else', () => {
    const p = planSync([], [ours('lifeboat-web-daily'), { id: 'lifeboat-x-daily', taskQueue: 'other-q' }], 'lifeboat-q');
    expect(p.delete).toEqual(['lifeboat-web-daily']);
  });
});
