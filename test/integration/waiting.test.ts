// Waiting commands on real Temporal: progress lines (bytes, percent, rate, ETA) during a 210 MiB capture over SSH,
// a `backup --wait` that rides out a Temporal restart and exits 0, a warning when no worker polls the task queue,
// and `predeploy verified` that may be run twice.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort, startSshHost, startTemporalDev, type SshHost, type TemporalDev } from '../../scripts/lib/services';
import { followBackup, RESULT_PREFIX, startBackup } from '../../src/cli/backup';
import { loadConfig } from '../../src/config/load';
import { searchAttributeArgs } from '../../src/shared/search-attributes';
import type { BackupResult } from '../../src/shared/types';
import { tempDir, temporalFixture, uniqueName, writeConfig, type TemporalFixture } from '../support/fixtures';

const LIFEBOAT_BIN = new URL('../../bin/lifeboat.mjs', import.meta.url).pathname;
const MiB = 2 ** 20;
const root = await tempDir('waiting');
const taskQueue = uniqueName('waiting-it');
const plan = uniqueName('wait').replace(/-/g, '');
const store = join(root, 'storage');
const site = join(root, 'site');
let host: SshHost;
let proxy: Throttle;
let t: TemporalFixture;
let configPath: string;

const resultLine = (stdout: string) => {
  const line = stdout.split('\n').find((l) => l.startsWith(RESULT_PREFIX));
  return line ? JSON.parse(line.slice(RESULT_PREFIX.length)) : undefined;
};

interface Throttle {
  port: number;
  close(): Promise<void>;
}

/** A TCP proxy passing at most `bytesPerSecond` each way: a slow link in front of the sshd fixture. */
async function throttledProxy(targetPort: number, bytesPerSecond: number): Promise<Throttle> {
  const sockets = new Set<Socket>();
  const pace = (from: Socket, to: Socket) => {
    let freeAt = Date.now();
    from.on('data', (chunk: Buffer) => {
      to.write(chunk);
      freeAt = Math.max(freeAt, Date.now()) + (chunk.length / bytesPerSecond) * 1000;
      const wait = freeAt - Date.now();
      if (wait > 5) {
        from.pause();
        setTimeout(() => from.resume(), wait);
      }
    });
  };
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    pace(client, upstream);
    pace(upstream, client);
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

beforeAll(async () => {
  const identityFile = join(root, 'id_ed25519');
  host = await startSshHost({ name: 'bulk', baseDir: root, identityFile, knownHostsFile: join(root, 'known_hosts_direct') });
  // 210 MiB that does not compress, through a 16 MiB/s link: a capture of about 13 s.
  await mkdir(join(host.dataDir, 'bulk'), { recursive: true });
  for (let i = 0; i < 7; i++) await execa('head', ['-c', String(30 * MiB), '/dev/urandom'], { stdout: { file: join(host.dataDir, 'bulk', `blob${i}`) } });
  proxy = await throttledProxy(host.port, 16 * MiB);
  // The proxy's address, pinned to the host's own key.
  const [, keyType, keyBase64] = host.hostKeyLine.split(' ');
  await writeFile(join(root, 'known_hosts'), `[127.0.0.1]:${proxy.port} ${keyType} ${keyBase64}\n`, { mode: 0o600 });
  await mkdir(site, { recursive: true });
  await writeFile(join(site, 'index.html'), '<h1>v1</h1>\n');
  configPath = await writeConfig(root, {
    backupRoot: join(root, 'backups'),
    temporal: { address: inject('temporalAddress'), taskQueue },
    ssh: { identityFile, knownHosts: join(root, 'known_hosts') },
    storages: { local: { type: 'local', path: store, retention: { last: 1, minimum: 1 } } },
    plans: {
      [`${plan}bulk`]: { storages: ['local'], sources: [{ name: 'app', host: '127.0.0.1', port: proxy.port, artifacts: [{ type: 'files', name: 'bulk', paths: [join(host.dataDir, 'bulk')] }] }] },
      [plan]: { storages: ['local'], sources: [{ name: 'web', host: 'local', artifacts: [{ type: 'files', name: 'site', paths: [site] }] }] },
    },
  });
  t = await temporalFixture(configPath, taskQueue);
}, 300_000);

afterAll(async () => {
  await t?.close();
  await proxy?.close();
  await host?.stop();
});

describe('progress while waiting', () => {
  it('a 210 MiB capture prints bytes, percent, rate and ETA at least every 5 s', async () => {
    const config = await loadConfig(configPath);
    const handle = await startBackup(t.client, config, { plan: `${plan}bulk`, tier: 'manual' });
    const lines: Array<{ at: number; line: string }> = [];
    const code = await followBackup(handle, (line) => lines.push({ at: Date.now(), line }));
    expect(code, lines.map((l) => l.line).join('\n')).toBe(0);
    const shown = lines.map((l) => l.line).join('\n');
    const capture = lines.filter((l) => /^… capture app:bulk \(pull\) {2}[\d.]+ [KMG]iB \/ [\d.]+ MiB {2}\d+% {2}[\d.]+ [KMG]?i?B\/s {2}ETA \d+:\d\d$/.test(l.line));
    expect(capture.length, shown).toBeGreaterThanOrEqual(2);
    // rsync's total is the tree's size: 210 MiB (within its whole-percent precision).
    const total = Number(/\/ ([\d.]+) MiB/.exec(capture.at(-1)!.line)![1]);
    expect(total).toBeGreaterThan(200);
    expect(total).toBeLessThan(220);
    // While the capture ran (its span in the history), such a line at least every 5 s. The first comes with the
    // step's first heartbeat that counts bytes (heartbeats every 3 s, after the SSH session and rsync have started).
    const { startedAt, endedAt } = await activitySpan(handle, 'capture:app:bulk');
    expect(endedAt - startedAt, 'the capture outlasts several intervals').toBeGreaterThan(10_000);
    expect(capture[0]!.at - startedAt, shown).toBeLessThanOrEqual(6_500);
    const gaps = [...capture.slice(1).map((l, i) => l.at - capture[i]!.at), endedAt - capture.at(-1)!.at];
    expect(Math.max(...gaps), shown).toBeLessThanOrEqual(5_000);
    expect(lines.some((l) => /^snapshot .*: Completed/.test(l.line)), shown).toBe(true);
  });
});

describe('no worker', () => {
  it('a waiting command on a task queue nobody polls says so within seconds, and keeps waiting', async () => {
    const config = await loadConfig(configPath);
    const lonely = { ...config, temporal: { ...config.temporal, taskQueue: uniqueName('nobody-polls') } };
    const handle = await startBackup(t.client, lonely, { plan, tier: 'manual' });
    const lines: string[] = [];
    const started = Date.now();
    const waiting = followBackup(handle, (line) => lines.push(line));
    let warnedAfter: number | undefined;
    while (Date.now() - started < 15_000 && warnedAfter === undefined) {
      if (lines.some((l) => /^warning: no worker is polling task queue "nobody-polls-/.test(l))) warnedAfter = Date.now() - started;
      await sleep(100);
    }
    expect(warnedAfter, lines.join('\n')).toBeLessThan(10_000);
    // Still waiting (a worker may come): it ends only when the run does.
    await sleep(2_500);
    let ended = false;
    void waiting.then(() => (ended = true));
    await sleep(50);
    expect(ended).toBe(false);
    await handle.terminate('test: nobody will run it');
    expect(await waiting).toBe(1);
    expect(lines.filter((l) => l.startsWith('warning: no worker'))).toHaveLength(1); // once, not at every poll
  });
});

describe('predeploy verified', () => {
  const cli = (...args: string[]) => execa('node', [LIFEBOAT_BIN, '-c', configPath, ...args], { reject: false });

  it('twice exits 0 both times; an unknown deploy id is one line; a released snapshot retention deleted is said so', async () => {
    const made = await cli('predeploy', '--plan', plan, '--deploy-id', 'ci-77', '--wait');
    expect(made.exitCode, made.stderr).toBe(0);
    const snapshot = resultLine(made.stdout).snapshot as string;

    const first = await cli('predeploy', 'verified', '--plan', plan, '--deploy-id', 'ci-77');
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/deploy ci-77 verified/);
    const state = await t.client.workflow.getHandle(`predeploy-${plan}-ci-77`).result();
    expect(state.phase).toBe('released');

    const again = await cli('predeploy', 'verified', '--plan', plan, '--deploy-id', 'ci-77');
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stderr.trim()).toBe(`deploy ci-77 was already released (snapshot ${snapshot}): nothing to do`);

    const unknown = await cli('predeploy', 'verified', '--plan', plan, '--deploy-id', 'ci-never');
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr.trim().split('\n')).toEqual([`lifeboat: ConfigError: no pre-deploy run of plan ${plan} for deploy id ci-never (\`lifeboat predeploy --plan ${plan} --deploy-id ci-never\` starts one)`]);

    // Released, then a newer backup: retention (last: 1) deletes it. A re-run pre-deploy job says so.
    await sleep(1100);
    const newer: BackupResult = await t.client.workflow.execute('backupPlan', { taskQueue, workflowId: uniqueName('wait-newer'), args: [{ plan, tier: 'manual' }] });
    expect(newer.retention?.[0]?.deleted).toContain(snapshot);
    expect((await readdir(join(store, plan))).some((f) => f.startsWith(snapshot))).toBe(false);
    const rerun = await cli('predeploy', '--plan', plan, '--deploy-id', 'ci-77', '--wait');
    expect(rerun.exitCode).toBe(1);
    expect(rerun.stderr).toMatch(new RegExp(`pre-deploy snapshot gone: snapshot ${snapshot} of this deploy id was released and retention has deleted it since`));
    expect(resultLine(rerun.stdout)).toMatchObject({ success: false, error_type: 'SnapshotDeleted', snapshot });
  });
});

describe('Temporal restart', () => {
  let temporal: TemporalDev | undefined;
  let worker: ChildProcess | undefined;

  afterAll(async () => {
    worker?.kill('SIGKILL');
    await temporal?.stop();
  });

  it('backup --wait rides out a stop and start of the server and exits 0 with the success line', async () => {
    const dir = join(root, 'own-temporal');
    const port = await freePort();
    const start = () => startTemporalDev({ dbFile: join(dir, 'temporal.db'), port, headless: true, logFile: join(dir, 'temporal.log'), searchAttributeArgs: searchAttributeArgs() });
    await mkdir(dir, { recursive: true });
    temporal = await start();
    const ownQueue = uniqueName('restart');
    // A capture of 8 s on the backup host itself, so the server can be stopped under it.
    const ownConfig = await writeConfig(join(root, 'restart-config'), {
      backupRoot: join(root, 'backups-restart'),
      temporal: { address: temporal.address, taskQueue: ownQueue },
      storages: { local: { type: 'local', path: join(root, 'storage-restart') } },
      plans: { slow: { storages: ['local'], sources: [{ name: 'clock', host: 'local', artifacts: [{ type: 'command', name: 'clock', command: ['sh', '-c', 'sleep 8; date'] }] }] } },
    });
    worker = spawn('node', [LIFEBOAT_BIN, '-c', ownConfig, 'worker'], { stdio: ['ignore', 'ignore', 'pipe'] });
    worker.stderr!.on('data', () => undefined);
    const waiting = execa('node', [LIFEBOAT_BIN, '-c', ownConfig, 'backup', 'slow', '--wait'], { reject: false });
    const connection = await Connection.connect({ address: temporal.address });
    try {
      const client = new Client({ connection });
      const handle = await runOf(client, 'slow');
      await until(async () => (await handle.describe()).raw.pendingActivities?.some((p) => p.activityId === 'capture:clock:clock' && Number(p.state) === 2) ?? false, 120_000);
    } finally {
      await connection.close();
    }
    // Down for longer than the SDK's own retries of a call (about 20 s): the command's waiting must outlast them.
    await temporal.stop();
    await sleep(35_000);
    temporal = await start();
    const done = await waiting;
    expect(done.exitCode, done.stderr).toBe(0);
    expect(resultLine(done.stdout)).toMatchObject({ success: true, status: 'Completed' });
    expect(done.stderr).toMatch(/Temporal is not answering/);
    expect(done.stderr).not.toMatch(/Channel has been shut down|at .*node_modules/);
  }, 300_000);
});

/** When an activity was scheduled and when it completed, from the run's history (ms). */
async function activitySpan(handle: WorkflowHandle, activityId: string): Promise<{ startedAt: number; endedAt: number }> {
  const events = (await handle.fetchHistory()).events ?? [];
  const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityId === activityId)!;
  const completed = events.find((e) => Number(e.activityTaskCompletedEventAttributes?.scheduledEventId ?? -1) === Number(scheduled.eventId))!;
  return { startedAt: tsToMs(scheduled.eventTime), endedAt: tsToMs(completed.eventTime) };
}

/** The newest backupPlan run of a plan, once the CLI has started it. */
async function runOf(client: Client, planName: string): Promise<WorkflowHandle> {
  let id: string | undefined;
  await until(async () => {
    for await (const w of client.workflow.list({ query: `WorkflowType = "backupPlan"` })) if (w.workflowId.startsWith(`backup-${planName}-`)) id = w.workflowId;
    return id !== undefined;
  }, 120_000);
  return client.workflow.getHandle(id!);
}

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(250);
  }
}
