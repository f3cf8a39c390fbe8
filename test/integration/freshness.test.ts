// The freshness watchdog and `lifeboat status` on real services: the Temporal dev server, a real worker running
// real backups into a local storage (signed records), and a webhook receiver (node:http on loopback) as the
// notification target. With maxAge 10s: a backup, then >10 s without one → exactly one `stale` however often the
// watchdog runs, and status exits 1; a new backup → exactly one `recovered`, and status is fresh again.
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { FreshnessCheck } from '../../src/activities/freshness';
import { collectStatus, type StatusReport } from '../../src/cli/status';
import { loadConfig } from '../../src/config/load';
import { freshnessStatePath } from '../../src/freshness/state-file';
import { FRESHNESS_SCHEDULE_ID, type ScheduleListing } from '../../src/schedules/sync';
import { PLAN, TIER } from '../../src/shared/search-attributes';
import type { BackupResult, NotificationResult } from '../../src/shared/types';
import { generateSigningKey, parsePrivateKey, signRecord } from '../../src/snapshot/signing';
import { lifeboatActivities } from '../../src/workers/worker';
import type { FreshnessWatchdogResult } from '../../src/workflows/freshness';
import { tempDir, temporalFixture, uniqueName, writeConfig, type TemporalFixture } from '../support/fixtures';

/** An age as status and reasons print it: `12s`, `1m 3s`. */
const AGE = '\\d+[dhms]( \\d+[dhms])?';
const LIFEBOAT_BIN = new URL('../../bin/lifeboat.mjs', import.meta.url).pathname;
const root = await tempDir('freshness');
const taskQueue = uniqueName('fresh-it');
const plan = uniqueName('fr').replace(/-/g, '');
const data = join(root, 'site');
const store = join(root, 'storage');
const backupRoot = join(root, 'backups');
let t: TemporalFixture;
let configPath: string;
let hook: { url: string; bodies: Array<Record<string, unknown>>; close(): Promise<void> };
let runs = 0;

function planConfig(maxAge: string) {
  return { sources: [{ name: 'web', host: 'local', artifacts: [{ type: 'files', name: 'site', paths: [data] }] }], storages: ['local'], maxAge };
}

function config(extra: { maxAge?: string; address?: string } = {}) {
  return {
    backupRoot,
    temporal: { address: extra.address ?? inject('temporalAddress'), taskQueue },
    storages: { local: { type: 'local', path: store } },
    signing: { key: { file: join(root, 'signing.key') } },
    notify: { hook: { type: 'webhook', url: { file: join(root, 'hook-url') }, events: ['stale', 'recovered'] } },
    watchdog: { every: '15m' },
    plans: { [plan]: planConfig(extra.maxAge ?? '10s') },
  };
}

/** A loopback webhook receiver: every POST body, parsed. */
async function startHook(): Promise<typeof hook> {
  const bodies: Array<Record<string, unknown>> = [];
  const server: Server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      bodies.push(JSON.parse(text) as Record<string, unknown>);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hooks/lifeboat`, bodies, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const cli = (args: string[], cfg = configPath) => execa('node', [LIFEBOAT_BIN, '-c', cfg, ...args], { reject: false });

async function backup(): Promise<BackupResult> {
  return t.client.workflow.execute('backupPlan', {
    taskQueue,
    workflowId: uniqueName(`backup-${plan}`),
    args: [{ plan, tier: 'manual' }],
    typedSearchAttributes: new TypedSearchAttributes([{ key: PLAN, value: plan }, { key: TIER, value: 'manual' }]),
  }) as Promise<BackupResult>;
}

/** The watchdog as the schedule starts it: the workflow, on the worker, against storage. */
async function watchdog(): Promise<FreshnessWatchdogResult> {
  return t.client.workflow.execute('freshnessWatchdog', { taskQueue, workflowId: `freshness-${plan}-${++runs}`, args: [] }) as Promise<FreshnessWatchdogResult>;
}

const events = () => hook.bodies.map((b) => b.event);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ours = (r: FreshnessWatchdogResult): FreshnessCheck => r.checks.find((c) => c.plan === plan)!;

beforeAll(async () => {
  await mkdir(data, { recursive: true });
  await writeFile(join(data, 'index.html'), '<h1>fresh</h1>\n');
  await writeFile(join(root, 'signing.key'), generateSigningKey().privatePem, { mode: 0o600 });
  hook = await startHook();
  await writeFile(join(root, 'hook-url'), `${hook.url}\n`, { mode: 0o600 });
  configPath = await writeConfig(root, config());
  t = await temporalFixture(configPath, taskQueue, lifeboatActivities(configPath));
});

afterAll(async () => {
  await t?.client.schedule.getHandle(FRESHNESS_SCHEDULE_ID).delete().catch(() => undefined);
  // A test that failed half-way must not leave the plan's lock (or the run waiting for it) behind.
  for (const id of this_.open) await t?.client.workflow.getHandle(id).terminate('test cleanup').catch(() => undefined);
  await t?.close();
  await hook?.close();
});

describe('freshness watchdog and lifeboat status', () => {
  let first: BackupResult;

  it('right after a backup the plan is fresh: the watchdog sends nothing', async () => {
    first = await backup();
    expect(first).toMatchObject({ success: true, plan });
    const r = await watchdog();
    expect(ours(r)).toEqual({ plan, stale: false, reasons: [] });
    expect(r.notifications).toEqual([]);
    expect(events()).toEqual([]);
  });

  it('more than maxAge (10 s) later: exactly one `stale`, however often the watchdog runs; a forged fresh record does not count', async () => {
    await sleep(Math.max(0, Date.parse(first.created_at) + 11_000 - Date.now()));
    // A bucket writer plants a brand-new record, signed with another key: it must not make the plan look fresh.
    const now = new Date();
    const forged = { plan, snapshot: `${plan}-${compact(now)}`, tier: 'manual', created_at: now.toISOString(), format: 'tar.zst', size_bytes: 1, checksum_sha256: 'f'.repeat(64) };
    const signature = signRecord(forged, parsePrivateKey(generateSigningKey().privatePem));
    await writeFile(join(store, plan, `${forged.snapshot}.json`), JSON.stringify({ ...forged, success: true, status: 'Completed', signature }));

    const a = await watchdog();
    const b = await watchdog();
    expect(ours(a)).toMatchObject({ plan, stale: true, event: { event: 'stale', kind: 'freshness', plan, status: 'stale', snapshot: first.snapshot } });
    expect(ours(a).reasons).toEqual([expect.stringMatching(new RegExp(`^local: newest snapshot ${first.snapshot} is ${AGE} old \\(maxAge 10s\\)$`))]);
    expect(a.notifications).toEqual([{ target: 'hook', type: 'webhook', event: 'stale', ok: true }] satisfies NotificationResult[]);
    expect(ours(b)).toMatchObject({ stale: true });
    expect(ours(b).event).toBeUndefined();
    expect(b.notifications).toEqual([]);
    expect(events()).toEqual(['stale']);
    expect(hook.bodies[0]).toMatchObject({ source: 'lifeboat', event: 'stale', kind: 'freshness', plan, status: 'stale', snapshot: first.snapshot, reason: ours(a).reasons[0] });

    // The episode lives in <backupRoot>/.state/freshness.json: 0600 in a 0700 directory.
    const file = freshnessStatePath(backupRoot);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(backupRoot, '.state'))).mode & 0o777).toBe(0o700);
    expect(JSON.parse(await readFile(file, 'utf8')).plans[plan]).toMatchObject({ stale: true });
  });

  it('status exits 1 while stale, shows the last snapshot from storage and a run waiting for the plan', async () => {
    // Hold the plan's lock, so a backup started now waits (LifeboatStatus Waiting) while status looks at it.
    const lock = await t.client.workflow.start('planLock', {
      taskQueue,
      workflowId: `lifeboat-lock-${plan}`,
      args: [{ workflowId: 'test', runId: 'test', purpose: 'test holds the lock' }],
      typedSearchAttributes: new TypedSearchAttributes([{ key: PLAN, value: plan }]),
    });
    const waiting = await t.client.workflow.start('backupPlan', {
      taskQueue,
      workflowId: uniqueName(`backup-${plan}-waiting`),
      args: [{ plan, tier: 'manual' }],
      typedSearchAttributes: new TypedSearchAttributes([{ key: PLAN, value: plan }, { key: TIER, value: 'manual' }]),
    });
    this_.open.push(lock.workflowId, waiting.workflowId);
    await until(async () => (await collectStatus(await loadConfig(configPath))).plans[0]!.running?.some((r) => r.workflow_id === waiting.workflowId && r.status === 'Waiting'));

    const text = await cli(['status']);
    expect(text.exitCode, text.stderr).toBe(1);
    expect(text.stdout).toContain(`${plan}  STALE`);
    expect(text.stdout).toMatch(new RegExp(`last snapshot +${first.snapshot}  ${AGE} ago  [\\d.]+ (B|KiB)  Completed  in local`));
    expect(text.stdout).toMatch(/last verified +never/);
    expect(text.stdout).toMatch(new RegExp(`^  running +${waiting.workflowId} Waiting$`, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^  stale +local: newest snapshot ${first.snapshot} is ${AGE} old \\(maxAge 10s\\)$`, 'm'));
    expect(text.stderr).toMatch(new RegExp(`ignored local:${plan}/${plan}-\\d{8}T\\d{6}\\.json: has an invalid signature`));

    const json = await cli(['status', '--json']);
    expect(json.exitCode, json.stderr).toBe(1);
    const report = JSON.parse(json.stdout) as StatusReport;
    expect(report).toMatchObject({ stale: true, temporal: { reachable: true } });
    const p = report.plans[0]!;
    expect(p).toMatchObject({ plan, watched: true, stale: true, max_age: '10s', last_verified: null, schedules: [] });
    expect(p.last_snapshot).toMatchObject({ snapshot: first.snapshot, created_at: first.created_at, size_bytes: first.size_bytes, status: 'Completed', storages: ['local'] });
    expect(p.last_snapshot!.age_seconds).toBeGreaterThanOrEqual(10);
    // The lock itself is not a run.
    expect(p.running!.map((r) => [r.workflow_type, r.status])).toEqual([['backupPlan', 'Waiting']]);

    await lock.signal('releasePlanLock');
    const second = (await waiting.result()) as BackupResult;
    expect(second).toMatchObject({ success: true, plan });
    this_.second = second;
  });

  it('after the new backup: exactly one `recovered`, and status is fresh (exit code 0)', async () => {
    const a = await watchdog();
    const b = await watchdog();
    expect(ours(a)).toMatchObject({ plan, stale: false, reasons: [], event: { event: 'recovered', kind: 'freshness', status: 'fresh', snapshot: this_.second!.snapshot } });
    expect(ours(a).event!.reason).toMatch(new RegExp(`^fresh again after ${AGE} stale \\(was: local: newest snapshot ${first.snapshot}`));
    expect(ours(b).event).toBeUndefined();
    expect(events()).toEqual(['stale', 'recovered']);
    // In-process (what the command prints and its exit code come from this report): the CLI's start-up could take
    // longer than maxAge on a loaded machine. The command's exit 0 is shown below with a longer maxAge.
    const report = await collectStatus(await loadConfig(configPath));
    expect(report.stale).toBe(false);
    expect(report.plans[0]).toMatchObject({ stale: false, last_snapshot: { snapshot: this_.second!.snapshot }, running: [] });
  });

  it('Temporal unreachable: status still reports storage (fresh: exit 0) and says Temporal could not be asked', async () => {
    const dead = await writeConfig(join(root, 'dead'), config({ maxAge: '1h', address: '127.0.0.1:1' }));
    const r = await cli(['status'], dead);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${plan}  fresh`);
    expect(r.stdout).toMatch(new RegExp(`last snapshot +${this_.second!.snapshot}`));
    expect(r.stdout).toMatch(/^temporal  could not be asked \(.*\); runs and schedules not shown, freshness is from storage$/m);
    expect(r.stdout).not.toMatch(/^ {2}running/m);
    expect(r.stdout).toContain('cannot reach Temporal at 127.0.0.1:1');
    // The same in JSON (in-process: a second 10 s connect timeout proves nothing new).
    const json = await collectStatus(await loadConfig(dead), { connect: () => Promise.reject(new Error('cannot reach Temporal at 127.0.0.1:1')) });
    expect(json).toMatchObject({ stale: false, temporal: { reachable: false, error: 'cannot reach Temporal at 127.0.0.1:1' } });
    expect(json.plans[0]).toMatchObject({ last_snapshot: { snapshot: this_.second!.snapshot } });
    expect(json.plans[0]).not.toHaveProperty('running');
  });

  it('schedules sync creates the watchdog schedule (every watchdog.every, SKIP); triggered, it runs the check', async () => {
    const r = await cli(['schedules', 'sync', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ created: [FRESHNESS_SCHEDULE_ID] });
    const d = await t.client.schedule.getHandle(FRESHNESS_SCHEDULE_ID).describe();
    expect(d.spec.intervals).toMatchObject([{ every: 15 * 60_000 }]);
    expect(d.action).toMatchObject({ workflowType: 'freshnessWatchdog', taskQueue, args: [], workflowId: 'scheduled-freshness' });
    expect(d.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
    expect(d.memo).toMatchObject({ lifeboatTaskQueue: taskQueue, lifeboatTier: 'freshness' });
    expect(JSON.parse((await cli(['schedules', 'sync', '--json'])).stdout)).toMatchObject({ created: [], unchanged: [FRESHNESS_SCHEDULE_ID] });
    const listed = JSON.parse((await cli(['schedules', 'list', '--json'])).stdout) as ScheduleListing[];
    expect(listed.find((s) => s.id === FRESHNESS_SCHEDULE_ID)).toMatchObject({ tier: 'freshness', every: '15m', status: 'in-sync' });

    const before = d.info.recentActions.length;
    expect((await cli(['schedules', 'trigger', FRESHNESS_SCHEDULE_ID])).exitCode).toBe(0);
    const started = await until(async () => (await t.client.schedule.getHandle(FRESHNESS_SCHEDULE_ID).describe()).info.recentActions[before]);
    const result = (await t.client.workflow.getHandle(started.action.workflow.workflowId).result()) as FreshnessWatchdogResult;
    expect(result.checks.map((c) => c.plan)).toEqual([plan]);

    // The watchdog is no plan's run; once no plan sets maxAge, sync deletes it.
    const status = await collectStatus(await loadConfig(configPath));
    expect(status.watchdog).toMatchObject({ id: FRESHNESS_SCHEDULE_ID, every: '15m', state: 'active' });
    const { maxAge: _gone, ...unwatched } = planConfig('10s');
    await writeConfig(root, { ...config(), plans: { [plan]: unwatched } });
    expect(JSON.parse((await cli(['schedules', 'sync', '--json'])).stdout)).toMatchObject({ deleted: [FRESHNESS_SCHEDULE_ID] });
  });
});

/** Shared between the ordered tests of this file. */
const this_: { second?: BackupResult; open: string[] } = { open: [] };

function compact(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, '');
}

async function until<T>(probe: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(250);
  }
}
