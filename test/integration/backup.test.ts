// The foundation end to end, on real services: Temporal dev server, PostgreSQL, MinIO, two OpenSSH hosts, rsync.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { ApplicationFailure } from '@temporalio/common';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startSshHost, type SshHost } from '../../scripts/lib/services';
import type { BackupResult } from '../../src/shared/types';
import { createBucket, historyText, psql, s3Client, tempDir, temporalFixture, uniqueName, writeConfig, type TemporalFixture } from '../support/fixtures';
import { inject } from 'vitest';

const PG_PASSWORD = 'pg-secret-Zq81x!';
const root = await tempDir('backup');
const bucket = uniqueName('lb').toLowerCase();
const db = uniqueName('lb_src').replace(/-/g, '_');
const taskQueue = uniqueName('backup-it');
let app: SshHost;
let files: SshHost;
let stranger: SshHost;
let t: TemporalFixture;
let configPath: string;

function baseConfig(plans: Record<string, unknown>, knownHosts = join(root, 'known_hosts')) {
  const m = inject('minio');
  return {
    backupRoot: join(root, 'backups'),
    temporal: { address: inject('temporalAddress'), taskQueue },
    ssh: { identityFile: join(root, 'id_ed25519'), knownHosts },
    storages: {
      minio: {
        type: 's3',
        endpoint: m.endpoint,
        bucket,
        accessKeyId: { env: 'LIFEBOAT_IT_S3_ACCESS' },
        secretAccessKey: { file: join(root, 's3-secret') },
        partSizeMiB: 5,
      },
    },
    plans,
  };
}

const appSource = () => ({
  name: 'app',
  host: '127.0.0.1',
  port: app.port,
  appVersion: ['cat', join(app.dataDir, 'VERSION')],
  artifacts: [
    { type: 'postgres', name: 'appdb', database: db, password: { file: join(root, 'pg-password') } },
    { type: 'files', name: 'site', paths: [join(app.dataDir, 'site'), join(app.dataDir, 'home/deploy')] },
  ],
});
const filesSource = () => ({
  name: 'media',
  host: '127.0.0.1',
  port: files.port,
  artifacts: [{ type: 'files', name: 'media', paths: [join(files.dataDir, 'media')], exclude: ['cache/'] }],
});

beforeAll(async () => {
  const identityFile = join(root, 'id_ed25519');
  const knownHostsFile = join(root, 'known_hosts');
  [app, files, stranger] = await Promise.all([
    startSshHost({ name: 'app', baseDir: root, identityFile, knownHostsFile }),
    startSshHost({ name: 'files', baseDir: root, identityFile, knownHostsFile }),
    // Its key goes to a separate known_hosts that the config never names: an unknown host.
    startSshHost({ name: 'stranger', baseDir: root, identityFile, knownHostsFile: join(root, 'other_known_hosts') }),
  ]);
  await seedTrees();
  await psql(`CREATE DATABASE ${db}`);
  await psql(`CREATE TABLE items (id int PRIMARY KEY, label text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 250) g;`, db);
  await writeFile(join(root, 'pg-password'), `${PG_PASSWORD}\n`, { mode: 0o600 });
  await writeFile(join(root, 's3-secret'), inject('minio').secretKey, { mode: 0o600 });
  process.env.LIFEBOAT_IT_S3_ACCESS = inject('minio').accessKey;
  await createBucket(bucket);
  configPath = await writeConfig(root, baseConfig({
    stack: { sources: [appSource(), filesSource()], storages: ['minio'], metadata: { environment: 'integration-test' } },
    broken: { sources: [{ ...filesSource(), artifacts: [{ type: 'files', name: 'gone', paths: [join(files.dataDir, 'does-not-exist')] }] }], storages: ['minio'] },
    locked: { sources: [{ ...appSource(), artifacts: [appSource().artifacts[0]] }], storages: ['minio'] },
    stranger: { sources: [{ name: 'stranger', host: '127.0.0.1', port: stranger.port, artifacts: [{ type: 'files', name: 'x', paths: [stranger.dataDir] }] }], storages: ['minio'] },
  }));
  t = await temporalFixture(configPath, taskQueue);
});

afterAll(async () => {
  await t?.close();
  await Promise.allSettled([app?.stop(), files?.stop(), stranger?.stop()]);
  await psql(`DROP DATABASE IF EXISTS ${db}`).catch(() => undefined);
  await psql(`DROP DATABASE IF EXISTS ${db}_restored`).catch(() => undefined);
});

async function seedTrees() {
  const put = async (path: string, content: string | Buffer) => {
    await mkdir(join(path, '..'), { recursive: true });
    await writeFile(path, content);
  };
  await put(join(app.dataDir, 'VERSION'), 'fastdeploy 2.4.1\n');
  await put(join(app.dataDir, 'site/.env'), 'SECRET_KEY=in-the-archive-on-purpose\n');
  await put(join(app.dataDir, 'site/services/web/compose.yml'), 'services: { web: { image: nginx } }\n');
  await put(join(app.dataDir, 'home/deploy/runners/deploy.sh'), '#!/bin/sh\necho deploy\n');
  await put(join(app.dataDir, 'home/deploy/.config/sops/age/keys.txt'), 'AGE-SECRET-KEY-1NEVERCOPYME\n');
  await put(join(files.dataDir, 'media/photos/a.jpg'), Buffer.alloc(512 * 1024, 7));
  await put(join(files.dataDir, 'media/cache/transcode.tmp'), Buffer.alloc(64 * 1024, 1));
  await put(join(files.dataDir, 'media/library.db'), 'library\n');
}

async function runBackup(plan: string) {
  const handle = await t.client.workflow.start('backupPlan', { taskQueue, workflowId: uniqueName(`it-${plan}`), args: [{ plan, tier: 'manual' }] });
  return { handle, result: handle.result() as Promise<BackupResult> };
}

async function download(key: string, dest: string): Promise<string> {
  const res = await s3Client().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const hash = createHash('sha256');
  const body = res.Body as NodeJS.ReadableStream;
  body.on('data', (c: Buffer) => hash.update(c));
  await pipeline(body, createWriteStream(dest));
  return hash.digest('hex');
}

async function keysUnder(prefix: string): Promise<string[]> {
  const res = await s3Client().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (res.Contents ?? []).map((o) => o.Key!);
}

describe('backupPlan end to end', () => {
  let first: BackupResult;
  let firstHandle: Awaited<ReturnType<typeof runBackup>>['handle'];

  it('captures the database and two hosts, archives, uploads to MinIO, and the archive restores', async () => {
    const run = await runBackup('stack');
    firstHandle = run.handle;
    first = await run.result;
    expect(first.success).toBe(true);
    expect(first.status).toBe('Completed');
    expect(first.key).toBe(`stack/${first.snapshot}.tar.zst`);
    expect(first.snapshot).toMatch(/^stack-\d{8}T\d{6}$/);
    expect(await keysUnder(`stack/${first.snapshot}`)).toEqual([`stack/${first.snapshot}.json`, `stack/${first.snapshot}.tar.zst`]);

    // Snapshot directory on the backup host: 0700.
    expect((await stat(first.snapshot_dir)).mode & 0o777).toBe(0o700);

    // Download, check the archive checksum, extract, and let sha256sum check every file.
    const work = await tempDir('restore');
    const archive = join(work, 'snap.tar.zst');
    expect(await download(first.key, archive)).toBe(first.checksum_sha256);
    await execa('tar', ['--zstd', '-xf', archive, '-C', work]);
    const snap = join(work, first.snapshot);
    const check = await execa('sha256sum', ['--strict', '-c', 'manifest.sha256'], { cwd: snap });
    expect(check.stdout.split('\n').length).toBe(first.manifest.files);

    // The dump restores into a scratch database with the same rows.
    await psql(`CREATE DATABASE ${db}_restored`);
    await execa('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-U', 'postgres', '-d', `${db}_restored`, '-f', join(snap, 'database/appdb.sql')]);
    expect(await psql('SELECT count(*), sum(id) FROM items', `${db}_restored`)).toBe('250|31375');

    // Files from both hosts are there; the SOPS key and the excluded cache are not.
    const tree = (await execa('find', ['.', '-type', 'f'], { cwd: snap })).stdout.split('\n');
    expect(tree).toContain(`./files/app/site${app.dataDir}/site/.env`);
    expect(tree).toContain(`./files/app/site${app.dataDir}/home/deploy/runners/deploy.sh`);
    expect(tree).toContain(`./files/media/media${files.dataDir}/media/photos/a.jpg`);
    expect(tree.filter((f) => f.includes('keys.txt'))).toEqual([]);
    expect(tree.filter((f) => f.includes('/cache/'))).toEqual([]);

    const meta = parse(await readFile(join(snap, 'metadata.yml'), 'utf8'));
    expect(meta).toMatchObject({ plan: 'stack', tier: 'manual', snapshot: first.snapshot, extra: { environment: 'integration-test' }, archive: { format: 'tar.zst' } });
    expect(meta.sources).toContainEqual({ name: 'app', host: '127.0.0.1', app_version: 'fastdeploy 2.4.1' });
    expect(Object.keys(meta.components).sort()).toEqual(['appdb', 'media', 'site']);

    const record = JSON.parse(await (await s3Client().send(new GetObjectCommand({ Bucket: bucket, Key: `stack/${first.snapshot}.json` }))).Body!.transformToString());
    expect(record).toMatchObject({ success: true, snapshot: first.snapshot, checksum_sha256: first.checksum_sha256, size_bytes: first.size_bytes });
  });

  it('keeps every configured secret out of the workflow history', async () => {
    const text = await historyText(firstHandle);
    expect(text).toContain('stack'); // payloads are decoded: the plan name is visible, so absence below means something
    expect(text).toContain('pg-password'); // the reference (a path) is fine
    for (const secret of [PG_PASSWORD, inject('minio').secretKey, inject('minio').accessKey]) expect(text).not.toContain(secret);
  });

  it('a second run of unchanged data moves almost nothing over SSH, via the CLI with LIFEBOAT_RESULT', async () => {
    await new Promise((r) => setTimeout(r, 1100)); // snapshot names have one-second resolution
    const cli = execa('node', ['bin/lifeboat.mjs', '--config', configPath, 'backup', 'stack', '--wait'], { reject: false, env: { LIFEBOAT_IT_S3_ACCESS: inject('minio').accessKey } });
    const { stdout, exitCode, stderr } = await cli;
    expect(exitCode, stderr).toBe(0);
    const line = stdout.split('\n').find((l) => l.startsWith('LIFEBOAT_RESULT:'))!;
    const second = JSON.parse(line.slice('LIFEBOAT_RESULT:'.length)) as BackupResult;
    expect(second.success).toBe(true);
    expect(second.snapshot).not.toBe(first.snapshot);

    const rsyncOf = async (r: BackupResult, name: string) => parse(await readFile(join(r.snapshot_dir, 'metadata.yml'), 'utf8')).components[name].details.rsync;
    for (const name of ['site', 'media']) {
      const before = await rsyncOf(first, name);
      const after = await rsyncOf(second, name);
      expect(before.regularFilesTransferred).toBeGreaterThan(0);
      expect(before.literalData).toBeGreaterThan(0);
      expect(after.regularFilesTransferred).toBe(0);
      expect(after.literalData).toBe(0);
      // Only the file list crosses the wire: a few KiB at most, whatever the data size.
      expect(after.bytesReceived).toBeLessThan(Math.max(4096, before.bytesReceived / 10));
    }
  });
});

describe('permanent failures end fast, typed, with nothing uploaded', () => {
  async function expectFailure(plan: string, type: string, mention: RegExp) {
    const started = Date.now();
    const { handle, result } = await runBackup(plan);
    const err = await result.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).toBe(type);
    expect((cause as ApplicationFailure).message).toMatch(mention);
    expect(Date.now() - started).toBeLessThan(30_000); // not retried for minutes
    expect(await keysUnder(`${plan}/`)).toEqual([]);
    return handle;
  }

  it('a missing path', async () => {
    await expectFailure('broken', 'MissingPath', /does-not-exist/);
  });

  it('a host whose key is not in known_hosts', async () => {
    await expectFailure('stranger', 'HostKeyRejected', /not pinned.*SHA256:/s);
  });

  it('an unknown plan is a ConfigError', async () => {
    await expectFailure('no-such-plan', 'ConfigError', /unknown plan "no-such-plan"/);
  });

  it('an invalid config file: the CLI names the field and exits non-zero', async () => {
    const bad = join(root, 'bad.yaml');
    await writeFile(bad, 'backupRoot: relative\nstorages: {}\nplans: { p: { storages: [x], sources: [] } }\n');
    const r = await execa('node', ['bin/lifeboat.mjs', 'config', 'validate', bad], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/backupRoot: must be an absolute path/);
    expect(r.stderr).toMatch(/plans\.p\.sources/);
  });
});


describe('cancellation', () => {
  const dumpBackends = () => psql(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND datname = '${db}'`);
  const dumpProcesses = async () => (await execa('pgrep', ['-af', `pg_dump .*--dbname=${db}`], { reject: false })).stdout.trim();

  it('cancelling a run stops the remote pg_dump and leaves no partial snapshot', async () => {
    // Hold a lock so pg_dump blocks: the capture is provably in flight when we cancel.
    const locker = execa('psql', ['-X', '-q', '-h', '127.0.0.1', '-U', 'postgres', '-d', db], { input: undefined, stdin: 'pipe' });
    locker.stdin!.write('BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE; SELECT 1;\n');
    try {
      const { handle, result } = await runBackup('locked');
      await waitFor(async () => (await dumpBackends()) === '1', 20_000);
      await handle.cancel();
      const err = await result.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      // The remote pg_dump process itself is gone (its server backend may wait for the lock a little longer).
      await waitFor(async () => (await dumpProcesses()) === '', 15_000).catch(async (e) => { throw new Error(`${e.message}: ${await dumpProcesses()}`); });
      const leftovers = (await execa('find', [join(root, 'backups'), '-maxdepth', '1', '-name', 'locked-*'])).stdout;
      expect(leftovers).toBe('');
      expect(await keysUnder('locked/')).toEqual([]);
    } finally {
      locker.kill();
      await locker.catch(() => undefined);
    }
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
