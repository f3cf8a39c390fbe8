// Stop → copy → restart over SSH with the three controllers, on real Temporal, PostgreSQL, sshd and rsync.
// docker compose and systemctl are STAND-INS (test/support/standins/): no Docker engine or systemd runs on this
// machine. They keep service state in files and log every call. The `commands` controller drives a real
// redis-server process.
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { freePort, startSshHost, type SshHost } from '../../scripts/lib/services';
import type { BackupResult } from '../../src/shared/types';
import { psql, tempDir, temporalFixture, uniqueName, writeConfig, type TemporalFixture } from '../support/fixtures';

const STANDIN_DOCKER = new URL('../support/standins/docker', import.meta.url).pathname;
const STANDIN_SYSTEMCTL = new URL('../support/standins/systemctl', import.meta.url).pathname;
const LIFEBOAT_BIN = new URL('../../bin/lifeboat.mjs', import.meta.url).pathname;

const root = await tempDir('quiesce');
const db = uniqueName('lb_q').replace(/-/g, '_');
const taskQueue = uniqueName('quiesce-it');
const crashQueue = uniqueName('crash-it');
const redisPort = await freePort();
const redisDir = join(root, 'redis');
let host: SshHost;
let t: TemporalFixture;
let configPath: string;
let crashConfigPath: string;

/** A compose project for the stand-in: services in definition order, some of them running. */
async function composeProject(name: string, running: string[], defined = ['db', 'app', 'worker']): Promise<string> {
  const dir = join(root, 'compose', name);
  await mkdir(join(dir, 'state'), { recursive: true });
  await writeFile(join(dir, 'services'), `${defined.join('\n')}\n`);
  for (const s of running) await writeFile(join(dir, 'state', s), '');
  return dir;
}
const composeQuiesce = (projectDir: string) => ({ type: 'compose', projectDir, command: [STANDIN_DOCKER, 'compose'], order: ['db', 'app', 'worker'] });
const running = async (dir: string) => (await readdir(join(dir, 'state'))).sort();
const calls = async (dir: string) => (await readFile(join(dir, 'calls.log'), 'utf8')).trim().split('\n');
const redisUp = async () => (await execa('redis-cli', ['-p', String(redisPort), 'ping'], { reject: false })).stdout.trim() === 'PONG';

function config(plans: Record<string, unknown>, queue = taskQueue) {
  return {
    backupRoot: join(root, 'backups', queue),
    temporal: { address: inject('temporalAddress'), taskQueue: queue },
    ssh: { identityFile: join(root, 'id_ed25519'), knownHosts: join(root, 'known_hosts') },
    storages: { local: { type: 'local', path: join(root, 'storage', queue) } },
    plans,
  };
}
const source = (name: string, quiesce: unknown, artifacts: unknown[]) => ({ name, host: '127.0.0.1', port: host.port, quiesce, artifacts });
const appFiles = () => ({ type: 'files', name: 'appdata', paths: [join(host.dataDir, 'appdata')] });

let projects: Record<string, string>;

beforeAll(async () => {
  host = await startSshHost({ name: 'stack', baseDir: root, identityFile: join(root, 'id_ed25519'), knownHostsFile: join(root, 'known_hosts') });
  await mkdir(join(host.dataDir, 'appdata'), { recursive: true });
  await writeFile(join(host.dataDir, 'appdata', 'state.json'), '{"ok":true}\n');
  await writeFile(join(host.dataDir, 'not-a-database.sqlite'), 'this is not an SQLite file, and the copy must say so\n');
  await psql(`CREATE DATABASE ${db}`);
  await psql(`CREATE TABLE recipes (id int PRIMARY KEY, title text); INSERT INTO recipes SELECT g, 'recipe ' || g FROM generate_series(1, 40) g;`, db);
  await mkdir(redisDir, { recursive: true });
  projects = {
    compose: await composeProject('compose', ['db', 'app']),
    fail: await composeProject('fail', ['db', 'app']),
    flaky: await composeProject('flaky', ['db', 'app']),
    idle: await composeProject('idle', []),
    cancel: await composeProject('cancel', ['db', 'app']),
    crash: await composeProject('crash', ['db', 'app']),
  };
  await writeFile(join(projects.flaky!, 'fail-start-app'), '1');
  const systemd = join(root, 'systemd');
  await mkdir(join(systemd, 'active'), { recursive: true });
  await writeFile(join(systemd, 'active', 'redis.service'), '');
  await writeFile(join(systemd, 'active', 'app.service'), '');
  const redisServer = ['redis-server', '--port', String(redisPort), '--bind', '127.0.0.1', '--daemonize', 'yes', '--save', '', '--appendonly', 'no', '--dir', redisDir, '--pidfile', join(redisDir, 'redis.pid')];
  const redisCli = ['redis-cli', '-p', String(redisPort)];
  await execa(redisServer[0]!, redisServer.slice(1));
  configPath = await writeConfig(join(root, 'main'), config({
    compose: {
      sources: [source('stack', composeQuiesce(projects.compose!), [
        { type: 'postgres', name: 'mealie', database: db, user: 'postgres', host: '127.0.0.1', compose: { projectDir: projects.compose, service: 'db', command: [STANDIN_DOCKER, 'compose'] } },
        appFiles(),
      ])],
      storages: ['local'],
    },
    fail: {
      sources: [source('stack', composeQuiesce(projects.fail!), [{ type: 'sqlite', name: 'appdb', path: join(host.dataDir, 'not-a-database.sqlite'), quiesce: true }])],
      storages: ['local'],
    },
    flaky: { sources: [source('stack', composeQuiesce(projects.flaky!), [appFiles()])], storages: ['local'] },
    idle: { sources: [source('stack', composeQuiesce(projects.idle!), [appFiles()])], storages: ['local'] },
    cancel: {
      sources: [source('stack', composeQuiesce(projects.cancel!), [{ type: 'command', name: 'slow', command: ['sleep', '60'], quiesce: true }])],
      storages: ['local'],
    },
    broken: {
      // exit 127 = the start program is missing: not retryable, so the run reports RestartFailed at once.
      sources: [source('stack', { type: 'commands', stop: ['true'], start: ['sh', '-c', 'echo "app: start program missing" >&2; exit 127'] }, [appFiles()])],
      storages: ['local'],
    },
    systemd: {
      sources: [source('stack', { type: 'systemd', units: ['redis.service', 'app.service', 'idle.service'], command: [STANDIN_SYSTEMCTL, systemd] }, [appFiles()])],
      storages: ['local'],
    },
    commands: {
      sources: [source('stack', { type: 'commands', stop: [...redisCli, 'shutdown', 'nosave'], start: redisServer, check: [...redisCli, 'ping'] }, [
        // Runs inside the quiesce window: its output shows whether the service was really down.
        { type: 'command', name: 'probe', command: ['sh', '-c', `redis-cli -p ${redisPort} ping 2>&1; exit 0`], quiesce: true },
        appFiles(),
      ])],
      storages: ['local'],
    },
  }));
  crashConfigPath = await writeConfig(join(root, 'crash'), config({
    crash: {
      sources: [source('stack', composeQuiesce(projects.crash!), [
        // Slow enough to kill the worker while the services are stopped.
        { type: 'command', name: 'slow-copy', command: ['sh', '-c', 'sleep 4; echo copied'], quiesce: true },
        appFiles(),
      ])],
      storages: ['local'],
    },
  }, crashQueue));
  t = await temporalFixture(configPath, taskQueue);
});

afterAll(async () => {
  await t?.close();
  await host?.stop();
  await execa('redis-cli', ['-p', String(redisPort), 'shutdown', 'nosave'], { reject: false });
  await psql(`DROP DATABASE IF EXISTS ${db}`).catch(() => undefined);
  await psql(`DROP DATABASE IF EXISTS ${db}_restored`).catch(() => undefined);
});

async function backup(plan: string): Promise<BackupResult> {
  return t.client.workflow.execute('backupPlan', { taskQueue, workflowId: uniqueName(`q-${plan}`), args: [{ plan, tier: 'manual' }] });
}

async function metadataOf(result: BackupResult) {
  return parse(await readFile(join(result.snapshot_dir, 'metadata.yml'), 'utf8'));
}

describe('quiesce: compose (stand-in docker)', () => {
  it('dumps live first, then stops only what ran, copies, and starts exactly that again, dependencies first', async () => {
    const result = await backup('compose');
    expect(result.status).toBe('Completed');
    expect(await running(projects.compose!)).toEqual(['app', 'db']);
    const log = await calls(projects.compose!);
    const dump = log.findIndex((l) => /^exec -T db pg_dump /.test(l));
    expect(dump).toBeGreaterThanOrEqual(0);
    // The dump ran live, before the stop; then stop in reverse start order, start dependencies first.
    expect(log.slice(dump + 1).map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['ps --status', 'stop app', 'stop db', 'start db', 'start app']);
    expect(log.join('\n')).not.toContain('worker'); // defined but not running: never touched

    // The dump taken through `compose exec` loads and holds the rows.
    const meta = await metadataOf(result);
    expect(meta.quiesce).toEqual([expect.objectContaining({ source: 'stack', controller: 'compose', services: ['db', 'app'] })]);
    expect(meta.components.mealie.details.row_counts).toEqual({ 'public.recipes': 40 });
    await psql(`CREATE DATABASE ${db}_restored`);
    await execa('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-U', 'postgres', '-d', `${db}_restored`, '-f', join(result.snapshot_dir, 'database/mealie.sql')]);
    expect(await psql('SELECT count(*) FROM recipes', `${db}_restored`)).toBe('40');
  });

  it('a restore reuses the controller: stop, write, start the same services', async () => {
    const dir = projects.compose!;
    const before = (await calls(dir)).length;
    await writeFile(join(host.dataDir, 'appdata', 'state.json'), '{"ok":false}\n'); // damaged since the backup
    await t.client.workflow.execute('restoreSnapshot', {
      taskQueue,
      workflowId: uniqueName('q-restore'),
      args: [{ plan: 'compose', snapshot: 'latest', artifact: 'appdata', force: true, dryRun: false }],
    });
    expect(await readFile(join(host.dataDir, 'appdata', 'state.json'), 'utf8')).toBe('{"ok":true}\n');
    expect((await calls(dir)).slice(before).filter((l) => /^(start|stop)/.test(l))).toEqual(['stop app', 'stop db', 'start db', 'start app']);
    expect(await running(dir)).toEqual(['app', 'db']);
  });

  it('when nothing was running, starts nothing', async () => {
    const result = await backup('idle');
    expect(result.status).toBe('Completed');
    expect(await running(projects.idle!)).toEqual([]);
    expect((await calls(projects.idle!)).filter((l) => /^(start|stop)/.test(l))).toEqual([]);
  });

  it('a failed copy still restarts the services, and the run fails naming the artifact', async () => {
    const err = await backup('fail').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('IntegrityCheckFailed');
    expect(cause.message).toContain('stack:appdb');
    expect(await running(projects.fail!)).toEqual(['app', 'db']);
    const log = await calls(projects.fail!);
    expect(log.filter((l) => /^(start|stop)/.test(l))).toEqual(['stop app', 'stop db', 'start db', 'start app']);
    const backups = await readdir(join(root, 'backups', taskQueue)).catch(() => []);
    expect(backups.filter((d) => d.startsWith('fail-'))).toEqual([]); // no snapshot, not even a .partial one
  });

  it('a cancelled run restarts the services before it ends Cancelled', async () => {
    const dir = projects.cancel!;
    const handle = await t.client.workflow.start('backupPlan', { taskQueue, workflowId: uniqueName('q-cancel'), args: [{ plan: 'cancel', tier: 'manual' }] });
    const deadline = Date.now() + 60_000;
    while (!(existsSync(join(dir, 'calls.log')) && (await calls(dir)).includes('stop db'))) {
      if (Date.now() > deadline) throw new Error('the services were never stopped');
      await new Promise((r) => setTimeout(r, 100));
    }
    await handle.cancel();
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    expect(await running(dir)).toEqual(['app', 'db']);
  });

  it('a restart that cannot succeed fails the run with RestartFailed, naming the services', async () => {
    const err = await backup('broken').catch((e: unknown) => e);
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause.type).toBe('RestartFailed');
    expect(cause.message).toMatch(/stack: services stopped for the copy could not be started again: commands: .*start program missing/s);
  });

  it('a start that fails once is retried until the service runs', async () => {
    const result = await backup('flaky');
    expect(result.status).toBe('Completed');
    expect(await running(projects.flaky!)).toEqual(['app', 'db']);
    expect((await calls(projects.flaky!)).filter((l) => l === 'start app')).toHaveLength(2);
  });
});

describe('quiesce: systemd (stand-in systemctl) and commands (a real redis-server)', () => {
  it('systemd: stops and starts only the active units, in reverse and forward order', async () => {
    const result = await backup('systemd');
    expect(result.status).toBe('Completed');
    const state = join(root, 'systemd');
    expect((await readdir(join(state, 'active'))).sort()).toEqual(['app.service', 'redis.service']);
    const log = (await readFile(join(state, 'calls.log'), 'utf8')).trim().split('\n');
    expect(log.filter((l) => !l.startsWith('is-active'))).toEqual(['stop -- app.service', 'stop -- redis.service', 'start -- redis.service', 'start -- app.service']);
  });

  it('commands: the service is really down during the copy and runs again afterwards', async () => {
    const pidBefore = (await readFile(join(redisDir, 'redis.pid'), 'utf8')).trim();
    const result = await backup('commands');
    expect(result.status).toBe('Completed');
    const probe = await readFile(join(result.snapshot_dir, 'commands/probe.txt'), 'utf8');
    expect(probe).toMatch(/Could not connect|Connection refused/);
    expect(await redisUp()).toBe(true);
    expect((await readFile(join(redisDir, 'redis.pid'), 'utf8')).trim()).not.toBe(pidBefore);
  });

  it('commands: a service that was not running is neither stopped nor started', async () => {
    await execa('redis-cli', ['-p', String(redisPort), 'shutdown', 'nosave']);
    const result = await backup('commands');
    expect(result.status).toBe('Completed');
    expect(await readFile(join(result.snapshot_dir, 'commands/probe.txt'), 'utf8')).toMatch(/Could not connect|Connection refused/);
    expect(await redisUp()).toBe(false);
  });
});

describe('quiesce: a worker killed while the services are stopped', () => {
  const workers: ResultPromise[] = [];
  const startWorker = () => {
    const w = execa('node', [LIFEBOAT_BIN, 'worker', '-c', crashConfigPath], { reject: false, stdio: 'ignore' });
    workers.push(w);
    return w;
  };
  afterAll(() => workers.forEach((w) => w.kill('SIGKILL')));

  it('a new worker resumes the run and restarts what was stopped, and nothing else', async () => {
    const first = startWorker();
    const handle = await t.client.workflow.start('backupPlan', { taskQueue: crashQueue, workflowId: uniqueName('q-crash'), args: [{ plan: 'crash', tier: 'manual' }] });
    const dir = projects.crash!;
    // Wait for the stop, then kill the worker mid-copy (SIGKILL: no cleanup of any kind).
    const deadline = Date.now() + 90_000;
    while (!(existsSync(join(dir, 'calls.log')) && (await calls(dir)).includes('stop db'))) {
      if (Date.now() > deadline) throw new Error('the worker never stopped the services');
      await new Promise((r) => setTimeout(r, 100));
    }
    first.kill('SIGKILL');
    await first;
    expect(await running(dir)).toEqual([]); // stopped, and the worker is gone

    startWorker();
    const result = (await handle.result()) as BackupResult;
    expect(result.status).toBe('Completed');
    expect(await running(dir)).toEqual(['app', 'db']);
    const log = await calls(dir);
    expect(log.filter((l) => l.startsWith('start'))).toEqual(['start db', 'start app']);
    expect(log.join('\n')).not.toContain('worker');
    expect(await readFile(join(result.snapshot_dir, 'commands/slow-copy.txt'), 'utf8')).toBe('copied\n');
  }, 170_000);
});
