// Pre-deploy snapshots and GFS retention on real Temporal: one run and one snapshot per deploy id, held against
// retention until `predeploy verified`, and a failed backup that deletes nothing.
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RESULT_PREFIX } from '../../src/cli/backup';
import type { BackupResult } from '../../src/shared/types';
import { tempDir, temporalFixture, uniqueName, writeConfig, type TemporalFixture } from '../support/fixtures';

const LIFEBOAT_BIN = new URL('../../bin/lifeboat.mjs', import.meta.url).pathname;
const root = await tempDir('predeploy');
const taskQueue = uniqueName('predeploy-it');
const plan = uniqueName('web').replace(/-/g, '');
const data = join(root, 'site');
const store = join(root, 'storage');
let t: TemporalFixture;
let configPath: string;

const cli = (...args: string[]) => execa('node', [LIFEBOAT_BIN, '-c', configPath, ...args], { reject: false });
const resultLine = (stdout: string) => JSON.parse(stdout.split('\n').find((l) => l.startsWith(RESULT_PREFIX))!.slice(RESULT_PREFIX.length));
const snapshotsInStorage = async () => (await readdir(join(store, plan)).catch(() => [] as string[])).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
const backup = (): Promise<BackupResult> => t.client.workflow.execute('backupPlan', { taskQueue, workflowId: uniqueName('pd-backup'), args: [{ plan, tier: 'manual' }] });
const tick = () => new Promise((r) => setTimeout(r, 1100)); // snapshot names have one-second resolution

beforeAll(async () => {
  await mkdir(data, { recursive: true });
  await writeFile(join(data, 'index.html'), '<h1>v1</h1>\n');
  configPath = await writeConfig(root, {
    backupRoot: join(root, 'backups'),
    temporal: { address: inject('temporalAddress'), taskQueue },
    // The seed's hybrid: a local copy that keeps only the newest snapshot.
    storages: { local: { type: 'local', path: store, retention: { last: 1, minimum: 1 } } },
    plans: {
      [plan]: { storages: ['local'], sources: [{ name: 'web', host: 'local', artifacts: [{ type: 'files', name: 'site', paths: [data] }] }] },
      // Its capture records when it ran, to show two runs of one plan never overlap.
      [`${plan}slow`]: {
        storages: ['local'],
        sources: [{ name: 'clock', host: 'local', artifacts: [{ type: 'command', name: 'clock', command: ['sh', '-c', 'date +%s%N; sleep 2; date +%s%N'] }] }],
      },
    },
  });
  t = await temporalFixture(configPath, taskQueue);
});

afterAll(async () => {
  await t?.close();
});

describe('pre-deploy snapshots and retention', () => {
  let held: string;
  let second: string;

  it('two predeploy calls with one deploy id make one workflow run and one snapshot', async () => {
    const [a, b] = await Promise.all([cli('predeploy', '--plan', plan, '--deploy-id', 'ci-1234', '--wait'), cli('predeploy', '--plan', plan, '--deploy-id', 'ci-1234', '--wait')]);
    expect(a.exitCode, a.stderr).toBe(0);
    expect(b.exitCode, b.stderr).toBe(0);
    const ra = resultLine(a.stdout);
    const rb = resultLine(b.stdout);
    expect(rb.snapshot).toBe(ra.snapshot);
    expect(ra.tier).toBe('pre-deploy');
    expect(ra.deploy_id).toBe('ci-1234');
    expect(a.stdout.split('\n')[0]).toBe(ra.snapshot); // the id alone on the first line, for scripts
    held = ra.snapshot;
    // A retried CI job after the run moved on attaches again, too.
    const c = await cli('predeploy', '--plan', plan, '--deploy-id', 'ci-1234', '--wait');
    expect(resultLine(c.stdout).snapshot).toBe(held);
    const handle = t.client.workflow.getHandle(`predeploy-${plan}-ci-1234`);
    const runs = [];
    for await (const w of t.client.workflow.list({ query: `WorkflowId = "predeploy-${plan}-ci-1234"` })) runs.push(w.runId);
    expect(runs).toEqual([(await handle.describe()).runId]);
    expect(await snapshotsInStorage()).toEqual([held]);
    const record = JSON.parse(await readFile(join(store, plan, `${held}.json`), 'utf8'));
    expect(record.hold).toMatchObject({ deploy_id: 'ci-1234' });
  });

  it('retention keeps the held snapshot while it is held, even outside the policy', async () => {
    await tick();
    const run = await backup();
    second = run.snapshot;
    expect(run.retention).toEqual([{ storage: 'local', configured: true, kept: 2, deleted: [] }]);
    expect(await snapshotsInStorage()).toEqual([held, second].sort());
  });

  it('after `predeploy verified`, the next backup lets retention take it', async () => {
    const v = await cli('predeploy', 'verified', '--plan', plan, '--deploy-id', 'ci-1234');
    expect(v.exitCode, v.stderr).toBe(0);
    const state = await t.client.workflow.getHandle(`predeploy-${plan}-ci-1234`).result();
    expect(state.phase).toBe('released');
    expect(JSON.parse(await readFile(join(store, plan, `${held}.json`), 'utf8')).hold.released_at).toBeTruthy();
    await tick();
    const third = await backup();
    expect(third.retention?.[0]?.deleted).toContain(held);
    expect(await snapshotsInStorage()).toEqual([third.snapshot]);
    expect(await readdir(join(store, plan))).toEqual([`${third.snapshot}.json`, `${third.snapshot}.tar.zst`, `${third.snapshot}.tar.zst.sha256`].sort());
    // The backup host keeps only the newest `keepLocal` (2) snapshot directories and archives of the plan.
    const local = (await readdir(join(root, 'backups'))).filter((e) => e.startsWith(`${plan}-`));
    expect(local.filter((e) => !e.includes('.')).sort()).toEqual([second, third.snapshot].sort());
    expect(local.filter((e) => e.endsWith('.tar.zst'))).toHaveLength(2);
    // `retention plan` agrees: nothing more to delete.
    const p = await cli('retention', 'plan', plan);
    expect(p.stdout).toMatch(/1 kept, 0 removed/);
  });

  it('a failed backup deletes nothing', async () => {
    await tick();
    const before = await readdir(join(store, plan));
    await rename(data, `${data}.away`);
    try {
      const err = await backup().catch((e: unknown) => e);
      expect((err as Error).name).toBe('WorkflowFailedError');
    } finally {
      await rename(`${data}.away`, data);
    }
    expect(await readdir(join(store, plan))).toEqual(before);
  });

  it('two runs of one plan started together never overlap: the second waits for the first', async () => {
    const start = () => t.client.workflow.execute('backupPlan', { taskQueue, workflowId: uniqueName('pd-slow'), args: [{ plan: `${plan}slow`, tier: 'daily' }] }) as Promise<BackupResult>;
    const runs = await Promise.all([start(), start()]);
    expect(new Set(runs.map((r) => r.snapshot)).size).toBe(2);
    const spans = await Promise.all(
      runs.map(async (r) => (await readFile(join(r.snapshot_dir, 'commands/clock.txt'), 'utf8')).trim().split('\n').map((n) => BigInt(n))),
    );
    spans.sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
    expect(spans[1]![0]! > spans[0]![1]!).toBe(true); // the second started after the first ended
  });
});
