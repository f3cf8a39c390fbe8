// Small steps stay cheap (issue 11): on ten real OpenSSH hosts, preflight opens one SSH connection per host and runs
// one remote script per source, sources overlap up to plan.parallelism, and a files capture that only needs rsync
// opens no ssh2 connection of its own; a restore step asks its questions of the host in one command, and the
// database's drop, create and load go in one more. Connections and commands are counted where ssh2 makes them.
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { Client } from 'ssh2';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startSshHost, type SshHost } from '../../scripts/lib/services';
import { execa } from 'execa';
import { createBackupActivities } from '../../src/activities/backup';
import { createRestoreActivities } from '../../src/activities/restore';
import { FilesArtifact, Plan, PostgresArtifact, SqliteArtifact } from '../../src/config/schema';
import { execBatch } from '../../src/remote/batch';
import { SshHost as RemoteHost } from '../../src/remote/ssh';
import { restoreModule } from '../../src/sources/restore';
import type { PlanContext, PreflightResult } from '../../src/shared/types';
import type { ArtifactResult, RecordedComponent, RestoreContext, RestoreOptions } from '../../src/sources/types';
import type { Artifact } from '../../src/config/schema';
import { lifeboatFailure, psql, tempDir, uniqueName } from '../support/fixtures';

const HOSTS = 10;
const PARALLELISM = 4;
/**
 * Measured on the shared 2-core test machine for 10 hosts at parallelism 4: 0.8–1.4 s idle, 2–4 s at load 8–12
 * (each remote command starts the login shell there, whose rc files cost ~0.1 s of CPU per command here); before
 * this change the same preflight took 5–6 s idle and 9–15 s loaded.
 */
const PREFLIGHT_BOUND_MS = 8_000;

const root = await tempDir('small-steps');
const identityFile = join(root, 'id_ed25519');
const knownHosts = join(root, 'known_hosts');
let hosts: SshHost[] = [];
const activities = createBackupActivities({ configPath: join(root, 'unused.yaml') });

/** Every ssh2 connection and command the activities make, by port; and the most commands in flight at once. */
const seen = { connects: [] as number[], commands: [] as Array<{ port: number; command: string }>, inFlight: 0, maxInFlight: 0 };
const realConnect = Client.prototype.connect;
const realExec = Client.prototype.exec;

beforeAll(async () => {
  for (let i = 0; i < HOSTS; i += 5) {
    hosts.push(...(await Promise.all([0, 1, 2, 3, 4].map((j) => startSshHost({ name: `tiny${i + j}`, baseDir: root, identityFile, knownHostsFile: knownHosts })))));
  }
  for (const h of hosts) {
    await mkdir(join(h.dataDir, 'site'), { recursive: true });
    await writeFile(join(h.dataDir, 'site/.env'), 'X=1\n');
    await writeFile(join(h.dataDir, 'VERSION'), `${h.name} 1.0\n`);
  }
  Client.prototype.connect = function (this: Client, cfg) {
    seen.connects.push(Number(cfg.port));
    return realConnect.call(this, cfg);
  };
  Client.prototype.exec = function (this: Client & { config: { port: number } }, command: string, ...rest: unknown[]) {
    seen.commands.push({ port: this.config.port, command });
    const cb = rest.pop() as (err: Error | undefined, channel: { once(e: 'close', f: () => void): void }) => void;
    seen.maxInFlight = Math.max(seen.maxInFlight, ++seen.inFlight);
    return (realExec as (...a: unknown[]) => Client).call(this, command, ...rest, (err: Error | undefined, channel: { once(e: 'close', f: () => void): void }) => {
      if (err) seen.inFlight--;
      else channel.once('close', () => seen.inFlight--);
      cb(err, channel);
    });
  } as typeof realExec;
});

afterAll(async () => {
  Client.prototype.connect = realConnect;
  Client.prototype.exec = realExec;
  await Promise.allSettled(hosts.map((h) => h.stop()));
  hosts = [];
});

beforeEach(() => Object.assign(seen, { connects: [], commands: [], inFlight: 0, maxInFlight: 0 }));

function context(sources: unknown[], parallelism = PARALLELISM): PlanContext {
  // Preflight's bound is the larger of the two: keep it at `parallelism` here.
  const plan = Plan.parse({ storages: ['local'], parallelism, smallSourceParallelism: parallelism, sources });
  return { planName: 'tiny', plan, backupRoot: join(root, 'backups'), denyList: [], ssh: { identityFile, knownHosts }, storages: { local: { type: 'local', path: join(root, 'storage') } } };
}

const tinySource = (h: SshHost, name = h.name) => ({
  name,
  host: '127.0.0.1',
  port: h.port,
  appVersion: ['cat', join(h.dataDir, 'VERSION')],
  artifacts: [{ type: 'files', name: 'site', paths: [join(h.dataDir, 'site')] }],
});

/** A real activity Context without a server; an expected failure need not be logged. */
const activityEnv = () => new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });

const countBy = (ports: number[]) => Object.fromEntries(hosts.map((h) => [h.name, ports.filter((p) => p === h.port).length]));
const each = (n: number) => Object.fromEntries(hosts.map((h) => [h.name, n]));

describe('preflight of ten tiny hosts', () => {
  it('opens one connection per host, runs one remote script per source, overlaps sources, and stays under its bound', async () => {
    const started = performance.now();
    const result = (await activityEnv().run(activities.preflight, context(hosts.map((h) => tinySource(h))))) as PreflightResult;
    const ms = performance.now() - started;

    expect(result.sources).toEqual(hosts.map((h) => ({ name: h.name, host: '127.0.0.1', appVersion: `${h.name} 1.0`, estimatedBytes: expect.any(Number) })));
    // Each source's own estimate (what decides a small source's lanes) adds up to the plan's.
    expect(result.sources.reduce((n, s) => n + s.estimatedBytes!, 0)).toBe(result.estimatedBytes);
    expect(result.estimatedBytes).toBeGreaterThan(0);
    expect(countBy(seen.connects)).toEqual(each(1));
    expect(countBy(seen.commands.map((c) => c.port))).toEqual(each(1));
    expect(seen.commands.every((c) => c.command.includes('lifeboat-preflight'))).toBe(true);
    // pLimit really overlaps the sources, and never more than the plan allows.
    expect(seen.maxInFlight).toBeGreaterThan(1);
    expect(seen.maxInFlight).toBeLessThanOrEqual(PARALLELISM);
    expect(ms, `preflight took ${Math.round(ms)} ms`).toBeLessThan(PREFLIGHT_BOUND_MS);
  });

  it('shares one connection among sources on the same host, and names each source in its problem', async () => {
    const [h] = hosts;
    const odd = join(h!.dataDir, "gone $(touch pwned) 'q'\nx");
    const ctx = context([
      { ...tinySource(h!, 'alpha'), quiesce: { type: 'commands', stop: ['lifeboat-no-such-tool'], start: ['true'] } },
      { ...tinySource(h!, 'beta'), artifacts: [{ type: 'files', name: 'site', paths: [odd] }] },
      tinySource(hosts[1]!, 'gamma'),
    ]);
    const err = await activityEnv().run(activities.preflight, ctx).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    if (!(err instanceof ApplicationFailure)) return;
    expect(err.type).toBe('MissingTool');
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toContain(`\n- not installed on alpha (${h!.user}@127.0.0.1:${h!.port}): lifeboat-no-such-tool`);
    expect(err.message).toContain(`\n- missing on beta (${h!.user}@127.0.0.1:${h!.port}): ${odd}`);
    expect(countBy(seen.connects)).toMatchObject({ [h!.name]: 1, [hosts[1]!.name]: 1 });
    expect(seen.commands).toHaveLength(3);
  });
});

describe('preflight bound and sizes', () => {
  it('checks up to smallSourceParallelism sources at once when it is above parallelism; command output has no size', async () => {
    const plan = Plan.parse({ storages: ['local'], parallelism: 1, smallSourceParallelism: 6, sources: hosts.map((h, i) => (i === 0 ? { ...tinySource(h), artifacts: [{ type: 'command', name: 'version', command: ['cat', join(h.dataDir, 'VERSION')] }] } : tinySource(h))) });
    const ctx = { ...context(plan.sources), plan };
    const result = (await activityEnv().run(activities.preflight, ctx)) as PreflightResult;
    expect(seen.maxInFlight).toBeGreaterThan(1);
    expect(seen.maxInFlight).toBeLessThanOrEqual(6);
    expect(result.sources[0]!.estimatedBytes).toBeNull(); // never taken for a small source
    expect(result.sources.slice(1).every((s) => typeof s.estimatedBytes === 'number' && s.estimatedBytes > 0)).toBe(true);
  });
});

describe('preflight of a source with a database', () => {
  it('asks the dump size query in the same session as the script', async () => {
    const [h] = hosts;
    const db = { type: 'postgres', name: 'pg', database: 'postgres', host: '127.0.0.1' };
    const result = (await activityEnv().run(activities.preflight, context([{ ...tinySource(h!), artifacts: [...tinySource(h!).artifacts, db] }]))) as PreflightResult;
    const filesOnly = (await activityEnv().run(activities.preflight, context([tinySource(h!)]))) as PreflightResult;
    expect(result.estimatedBytes).toBeGreaterThan(filesOnly.estimatedBytes + 1_000_000); // the database's size came back too
    const commands = seen.commands.filter((c) => c.port === h!.port);
    expect(commands).toHaveLength(2); // one per preflight: before, the first took two (script, then psql)
    expect(commands[0]!.command).toContain('lifeboat-batch');
    expect(commands[0]!.command).toContain('pg_database_size');
  });
});

describe('preflight of a local source', () => {
  it('runs the same script on the backup host itself, without SSH', async () => {
    const dir = join(root, 'local site');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'a'), Buffer.alloc(5000, 1));
    const ctx = context([{ name: 'here', host: 'local', appVersion: ['printf', '%s', 'local 2.0'], artifacts: [{ type: 'files', name: 'site', paths: [dir] }] }]);
    const result = (await activityEnv().run(activities.preflight, ctx)) as PreflightResult;
    expect(result.sources).toEqual([{ name: 'here', host: 'local', appVersion: 'local 2.0', estimatedBytes: result.estimatedBytes }]);
    expect(result.estimatedBytes).toBeGreaterThanOrEqual(5000);
    expect(seen.connects).toEqual([]);
  });
});

describe('capture', () => {
  // rsync brings its own OpenSSH connection; a command's output goes through OpenSSH's client into its file.
  it('opens no ssh2 connection for a files artifact that only needs rsync, nor for a command artifact', async () => {
    const [h] = hosts;
    const ctx = context([{ ...tinySource(h!), artifacts: [{ type: 'files', name: 'site', paths: [join(h!.dataDir, 'site')] }, { type: 'command', name: 'version', command: ['cat', join(h!.dataDir, 'VERSION')] }] }]);
    const snapshot = `tiny-${uniqueName('s').slice(-6)}`;
    const env = activityEnv();
    await env.run(activities.prepareSnapshot, ctx, snapshot, 'run-1');
    const site = (await env.run(activities.captureArtifact, ctx, snapshot, h!.name, 'site')) as ArtifactResult;
    expect(site.status).toBe('ok');
    expect(seen.connects).toEqual([]);
    const version = (await env.run(activities.captureArtifact, ctx, snapshot, h!.name, 'version')) as ArtifactResult;
    expect(version.status).toBe('ok');
    expect(version.bytes).toBe((await readFile(join(h!.dataDir, 'VERSION'))).length);
    expect(seen.connects).toEqual([]);
  });
});

describe('a restore step over SSH', () => {
  const open = (h: SshHost) => RemoteHost.open(h.name, { host: '127.0.0.1', port: h.port, user: 'root', identityFile, knownHosts });
  const signal = new AbortController().signal;
  const comp = (type: Artifact['type'], paths: string[], details: Record<string, unknown> = {}): RecordedComponent => ({ type, source: 'app', status: 'ok', required: true, paths, bytes: 0, details });
  const rctx = <A extends Artifact>(host: RemoteHost, artifact: A, snapshotDir: string, component: RecordedComponent, options: Partial<RestoreOptions>): RestoreContext<A> => ({
    host, artifact, snapshotDir, component, options: { force: false, ...options }, signal, progress: () => {},
  });
  const commandsOn = (h: SshHost) => seen.commands.filter((c) => c.port === h.port).map((c) => c.command);
  /** One restore step on its own connection to `h`, closed after. */
  const restoreOn = async <A extends Artifact>(h: SshHost, artifact: A, snapshotDir: string, component: RecordedComponent, options: Partial<RestoreOptions>) => {
    const host = await open(h);
    try {
      return await restoreModule(artifact)!.restore(rctx(host, artifact, snapshotDir, component, options));
    } finally {
      host.close();
    }
  };

  it('files: one command for the checks, then rsync alone (it makes the target directory itself)', async () => {
    const [h] = hosts;
    const snapshotDir = join(root, uniqueName('snap'));
    const path = join(h!.dataDir, 'app tree');
    const base = join(snapshotDir, 'files/app/tree', path);
    await mkdir(join(base, 'sub'), { recursive: true });
    await writeFile(join(base, 'sub', "it's.txt"), 'restored\n');
    const artifact = FilesArtifact.parse({ type: 'files', name: 'tree', paths: [path] });
    const to = join(root, uniqueName('to'), 'deep', 'new place');
    await restoreOn(h!, artifact, snapshotDir, comp('files', ['files/app/tree']), { dir: to });
    expect(await readFile(join(to, path, 'sub', "it's.txt"), 'utf8')).toBe('restored\n');
    expect(commandsOn(h!)).toHaveLength(1); // states and `id -u`; before: states, mkdir, id -u
    expect(commandsOn(h!)[0]).toContain('lifeboat-batch');
  });

  it('sqlite: one command for the check, rsync (which makes the directory), one to put the file in place', async () => {
    const [h] = hosts;
    const snapshotDir = join(root, uniqueName('snap'));
    await mkdir(join(snapshotDir, 'database'), { recursive: true });
    await execa('sqlite3', [join(snapshotDir, 'database/app.sqlite'), "CREATE TABLE t(v); INSERT INTO t VALUES ('restored');"]);
    const artifact = SqliteArtifact.parse({ type: 'sqlite', name: 'app', path: '/srv/app/app.db' });
    const to = join(root, uniqueName('to'), 'deep', 'new place');
    await restoreOn(h!, artifact, snapshotDir, comp('sqlite', ['database/app.sqlite']), { dir: to });
    expect((await execa('sqlite3', [join(to, 'app.db'), 'SELECT v FROM t'])).stdout).toBe('restored');
    expect(commandsOn(h!)).toHaveLength(2); // the state check and the placement; before: also a mkdir
  });

  it('postgres: one command before the push, one for create and load, and the host temp dir is gone either way', async () => {
    const [h] = hosts;
    const db = `lb_steps_${uniqueName('d').slice(-6).replace(/[^a-z0-9]/g, '')}`;
    const target = `${db}_restored`;
    const snapshotDir = join(root, uniqueName('snap'));
    await mkdir(join(snapshotDir, 'database'), { recursive: true });
    await psql(`CREATE DATABASE ${db}`);
    try {
      await psql(`CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 500) g;`, db);
      await execa('pg_dump', ['--format=plain', '-h', '127.0.0.1', '-U', 'postgres', `--file=${join(snapshotDir, 'database/pg.sql')}`, db]);
      const artifact = PostgresArtifact.parse({ type: 'postgres', name: 'pg', database: db, host: '127.0.0.1', format: 'plain' });
      const component = comp('postgres', ['database/pg.sql'], { database: db, format: 'plain' });
      const host = await open(h!);
      try {
        const res = await restoreModule(artifact)!.restore(rctx(host, artifact, snapshotDir, component, { database: target }));
        expect(res.details).toMatchObject({ database: target, created: true, dropped: false });
        expect(await psql('SELECT count(*) || \':\' || sum(id) FROM t', target)).toBe('500:125250');
        const commands = commandsOn(h!);
        expect(commands).toHaveLength(2); // before: psql --version, the state query, mktemp, createdb, the load, rm
        const dir = /\/[^ ']*lifeboat-restore\.[A-Za-z0-9]+/.exec(commands[1]!)?.[0];
        expect(dir).toBeDefined();
        expect(existsSync(dir!)).toBe(false); // the load removed it as soon as psql had the dump open

        // Refused (the target now has tables): nothing loaded, and the temp dir the checks made is removed.
        seen.commands = [];
        expect((await lifeboatFailure(restoreModule(artifact)!.restore(rctx(host, artifact, snapshotDir, component, { database: target })))).message).toContain('already has');
        const refusedDir = /\/[^ ']*lifeboat-restore\.[A-Za-z0-9]+/.exec(commandsOn(h!).at(-1)!)?.[0];
        expect(commandsOn(h!)).toHaveLength(2); // the checks, then rm of their temp dir
        expect(refusedDir && existsSync(refusedDir)).toBe(false);
      } finally {
        host.close();
      }
    } finally {
      await psql(`DROP DATABASE IF EXISTS ${target} WITH (FORCE)`).catch(() => undefined);
      await psql(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    }
  });

  it('planning a restore asks each host once, for all its artifacts at once', async () => {
    const [a, b] = hosts;
    const snapshotDir = join(root, uniqueName('plan'), 'snap');
    const components: Record<string, RecordedComponent> = {};
    const sources = [a!, b!].map((h) => {
      const tree = join(h.dataDir, 'site');
      const own = { ...comp('files', [`files/${h.name}/site`]), source: h.name };
      components[`${h.name}-site`] = { ...own, paths: [`files/${h.name}/${h.name}-site`] };
      components[`${h.name}-ver`] = { ...own, paths: [`files/${h.name}/${h.name}-ver`] };
      return { ...tinySource(h), artifacts: [
        { type: 'files', name: `${h.name}-site`, paths: [tree] },
        { type: 'files', name: `${h.name}-ver`, paths: [join(h.dataDir, 'VERSION')] },
        ...(h === a ? [{ type: 'postgres', name: 'pg', database: 'lifeboat_no_such_db', host: '127.0.0.1' }] : []),
      ] };
    });
    components.pg = { ...comp('postgres', ['database/pg.sql'], { database: 'lifeboat_no_such_db', format: 'plain' }), source: a!.name };
    for (const [name, c] of Object.entries(components)) {
      const h = c.source === a!.name ? a! : b!;
      const path = c.type === 'postgres' ? join(snapshotDir, 'database/pg.sql') : join(snapshotDir, c.paths[0]!, name.endsWith('-ver') ? join(h.dataDir, 'VERSION') : join(h.dataDir, 'site', 'x'));
      await mkdir(join(path, '..'), { recursive: true });
      await writeFile(path, 'x\n');
    }
    await writeFile(join(snapshotDir, 'metadata.yml'), JSON.stringify({ components }));
    const ctx = context(sources, 8);
    const fetched = { snapshot: 'snap', storage: 'local', workDir: join(snapshotDir, '..'), dir: snapshotDir, archiveSha256: '0'.repeat(64), artifacts: Object.entries(components).map(([name, c]) => ({ source: c.source, name, type: c.type, status: 'ok' as const })) };
    const input = { plan: 'tiny', snapshot: 'snap', force: false, dryRun: true, dir: join(root, uniqueName('planned')) };
    const steps = (await activityEnv().run(createRestoreActivities().planRestore, ctx, fetched, input)) as Array<{ artifact: string; targetInUse: boolean; action: string }>;
    expect(steps.map((s) => [s.artifact, s.targetInUse])).toEqual([[`${a!.name}-site`, false], [`${a!.name}-ver`, false], [`${b!.name}-site`, false], [`${b!.name}-ver`, false], ['pg', false]]);
    expect(steps.find((s) => s.artifact === 'pg')!.action).toContain('create the database');
    // Before: one command per artifact (five); now each host's checks go together.
    expect(countBy(seen.commands.map((c) => c.port))).toMatchObject({ [a!.name]: 1, [b!.name]: 1 });
    expect(seen.commands.every((c) => c.command.includes('lifeboat-batch'))).toBe(true);
  });

  it('execBatch: every argument arrives intact through the login shell, and a cancel stops the running command', async () => {
    const [h] = hosts;
    const host = await open(h!);
    const odd = ["it's", '$(touch pwned)', '`id`', 'a\nb', ' lead', '*', '"q"', '\\', '', 'ü'];
    const many = Array.from({ length: 11 }, (_, i) => `arg${i}`);
    try {
      const [a, b, c] = await execBatch(host, [['printf', '%s|', ...odd], ['sh', '-c', 'echo out; echo err >&2; exit 7'], ['printf', '%s ', ...many]], { signal });
      expect(a).toEqual({ exitCode: 0, stdout: `${odd.join('|')}|`, stderr: '' });
      expect(b).toEqual({ exitCode: 7, stdout: 'out\n', stderr: 'err\n' });
      expect(c!.stdout).toBe(`${many.join(' ')} `);
      expect(await readdir(h!.dataDir)).not.toContain('pwned');

      const mark = uniqueName('lifeboat-batch-sleep');
      const ac = new AbortController();
      const running = execBatch(host, [['sh', '-c', 'exec sleep 30', mark]], { signal: ac.signal });
      await new Promise((r) => setTimeout(r, 1500));
      ac.abort();
      await expect(running).rejects.toThrow(/cancel/);
      // The wrapper TERMs the batch, whose trap TERMs the command.
      let left = '';
      for (let i = 0; i < 50; i++) {
        left = (await execa('pgrep', ['-f', mark], { reject: false })).stdout.trim();
        if (!left) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(left).toBe('');
    } finally {
      host.close();
    }
  });
});
