// Restore and the restore drill end to end: real Temporal, PostgreSQL, MinIO, two OpenSSH hosts, rsync.
import { createHash } from 'node:crypto';
import { readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { startSshHost, type SshHost } from '../../scripts/lib/services';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createBackupActivities } from '../../src/activities/backup';
import { createRestoreActivities } from '../../src/activities/restore';
import type { BackupResult, FetchedSnapshot, PlanContext, RestoreInput, RestoreResult, SnapshotVerification } from '../../src/shared/types';
import { createArchive } from '../../src/snapshot/archive';
import { buildManifest } from '../../src/snapshot/manifest';
import { S3Storage } from '../../src/config/schema';
import { openStorage } from '../../src/storage';
import { createBucket, psql, s3Client, SCRATCH_POSTGRES, tempDir, temporalFixture, uniqueName, writeConfig, type TemporalFixture } from '../support/fixtures';

const root = await tempDir('restore');
const bucket = uniqueName('lbr').toLowerCase();
const db = uniqueName('lb_r').replace(/-/g, '_');
const taskQueue = uniqueName('restore-it');
let app: SshHost;
let spare: SshHost;
let t: TemporalFixture;
let configPath: string;
let minioStorage: Record<string, unknown>;
let first: BackupResult;

const site = () => join(app.dataDir, 'site');

beforeAll(async () => {
  const identityFile = join(root, 'id_ed25519');
  const knownHostsFile = join(root, 'known_hosts');
  [app, spare] = await Promise.all([
    startSshHost({ name: 'app', baseDir: root, identityFile, knownHostsFile }),
    startSshHost({ name: 'spare', baseDir: root, identityFile, knownHostsFile }),
  ]);
  await mkdir(join(site(), 'uploads/2026'), { recursive: true });
  await writeFile(join(site(), '.env'), 'DATABASE_URL=postgres://app\n');
  await writeFile(join(site(), 'uploads/2026/photo.bin'), Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) % 251)));
  await writeFile(join(site(), 'uploads/readme.txt'), 'hello\n');
  await mkdir(join(spare.dataDir, 'www'), { recursive: true });
  await writeFile(join(spare.dataDir, 'www/index.html'), '<h1>spare</h1>\n');
  await mkdir(join(spare.dataDir, 'www/media'), { recursive: true });
  await writeFile(join(spare.dataDir, 'www/media/cat.jpg'), 'not really a cat\n');
  await psql(`CREATE DATABASE ${db}`);
  await psql(`CREATE TABLE orders (id int PRIMARY KEY, total numeric); INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 300) g;`, db);
  await createBucket(bucket);
  const m = inject('minio');
  process.env.LIFEBOAT_IT_R_S3_ACCESS = m.accessKey;
  process.env.LIFEBOAT_IT_R_S3_SECRET = m.secretKey;
  minioStorage = { type: 's3', endpoint: m.endpoint, bucket, accessKeyId: { env: 'LIFEBOAT_IT_R_S3_ACCESS' }, secretAccessKey: { env: 'LIFEBOAT_IT_R_S3_SECRET' }, partSizeMiB: 5 };
  configPath = await writeConfig(root, {
    backupRoot: join(root, 'backups'),
    temporal: { address: inject('temporalAddress'), taskQueue },
    ssh: { identityFile, knownHosts: knownHostsFile },
    storages: { minio: minioStorage },
    plans: {
      shop: {
        storages: ['minio'],
        verify: { postgres: { ...SCRATCH_POSTGRES }, older: 1 },
        sources: [
          {
            name: 'app',
            host: '127.0.0.1',
            port: app.port,
            artifacts: [
              { type: 'postgres', name: 'orders', database: db, host: '127.0.0.1' },
              { type: 'files', name: 'site', paths: [site()] },
              { type: 'command', name: 'versions', command: ['uname', '-s'] },
            ],
          },
          { name: 'spare', host: '127.0.0.1', port: spare.port, artifacts: [
            // Listed before the tree that holds it (and excludes it): a whole restore must still write the tree first.
            { type: 'files', name: 'media', paths: [join(spare.dataDir, 'www/media')] },
            { type: 'files', name: 'www', paths: [join(spare.dataDir, 'www')], exclude: ['media/'] },
          ] },
        ],
      },
    },
  });
  t = await temporalFixture(configPath, taskQueue);
  first = await t.client.workflow.execute('backupPlan', { taskQueue, workflowId: uniqueName('r-backup'), args: [{ plan: 'shop', tier: 'manual' }] });
}, 170_000);

afterAll(async () => {
  await t?.close();
  await Promise.allSettled([app?.stop(), spare?.stop()]);
  await psql(`DROP DATABASE IF EXISTS ${db}`).catch(() => undefined);
  await psql(`DROP DATABASE IF EXISTS ${db}_copy`).catch(() => undefined);
});

const restoreInput = (over: Partial<RestoreInput>): RestoreInput => ({ plan: 'shop', snapshot: 'latest', force: false, dryRun: false, ...over });
const restore = (over: Partial<RestoreInput>): Promise<RestoreResult> =>
  t.client.workflow.execute('restoreSnapshot', { taskQueue, workflowId: uniqueName('r-restore'), args: [restoreInput(over)] });
const verify = (snapshots?: string[]): Promise<SnapshotVerification[]> =>
  t.client.workflow.execute('verifyRestore', { taskQueue, workflowId: uniqueName('r-verify'), args: [{ plan: 'shop', ...(snapshots ? { snapshots } : {}) }] });
const failureOf = async (p: Promise<unknown>) => {
  const err = await p.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as ApplicationFailure;
};
const scratchDatabases = () => psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'lifeboat_verify_%'");
const leftovers = async (dir: string) => (await readdir(join(root, 'backups', dir)).catch(() => [] as string[]));

describe('restoreSnapshot', () => {
  it('a dry run prints what goes where, flags what is in use, and changes nothing', async () => {
    const plan = await restore({ source: 'app', dryRun: true });
    expect(plan.dryRun).toBe(true);
    expect(plan.snapshot).toBe(first.snapshot);
    expect(plan.steps.map((s) => [s.artifact, s.targetInUse])).toEqual([['orders', true], ['site', true], ['versions', false]]);
    // Lifeboat does not write command output back: the plan says how to, and the restore goes on without it.
    expect(plan.steps.find((s) => s.artifact === 'versions')).toMatchObject({ manual: true, action: expect.stringContaining('commands/versions.txt') });
    expect(plan.restored).toEqual([]);
    expect(await psql('SELECT count(*) FROM orders', db)).toBe('300');
  });

  it('refuses to write over targets in use without --force', async () => {
    const cause = await failureOf(restore({ source: 'app' }));
    expect(cause.type).toBe('TargetInUse');
    expect(cause.message).toContain('orders');
  });

  it('after the data is gone, restore brings the database and the files back', async () => {
    await psql(`DROP DATABASE ${db}`);
    await rm(site(), { recursive: true, force: true });
    const result = await restore({ source: 'app' });
    expect(result.restored.map((r) => r.artifact).sort()).toEqual(['orders', 'site']);
    expect(await psql('SELECT count(*) || \':\' || sum(total) FROM orders', db)).toBe('300:67725.0');
    expect(await readFile(join(site(), 'uploads/readme.txt'), 'utf8')).toBe('hello\n');
    expect(await leftovers('.restore')).toEqual([]); // work files removed
  });

  it('restores a tree and the artifact inside it to an empty directory: the outer tree goes first', async () => {
    const dir = join(spare.dataDir, 'nested');
    const result = await restore({ source: 'spare', dir });
    expect(result.restored.map((r) => r.artifact)).toEqual(['www', 'media']);
    const www = join(dir, spare.dataDir, 'www');
    expect(await readFile(join(www, 'index.html'), 'utf8')).toBe('<h1>spare</h1>\n');
    expect(await readFile(join(www, 'media/cat.jpg'), 'utf8')).toBe('not really a cat\n');
  });

  it('restores one artifact to another host and directory, byte for byte', async () => {
    const dir = join(spare.dataDir, 'restored');
    await restore({ source: 'app', artifact: 'site', toHost: 'spare', dir });
    const copy = join(dir, site().replace(/^\//, ''));
    await execa('diff', ['-r', site(), copy]); // exits non-zero on any difference
    expect((await readFile(join(copy, 'uploads/2026/photo.bin'))).equals(await readFile(join(site(), 'uploads/2026/photo.bin')))).toBe(true);
  });

  it('a restore step removes its tree from the work dir once written, and a retry of it after that returns its result', async () => {
    const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    const acts = { ...createBackupActivities({ configPath }), ...createRestoreActivities() };
    const ctx = (await env.run(acts.loadPlan, 'shop')) as PlanContext;
    const input = restoreInput({ source: 'app', artifact: 'site', toHost: 'spare', dir: join(spare.dataDir, 'twice') });
    const fetched = (await env.run(acts.fetchForRestore, ctx, input, uniqueName('run'))) as FetchedSnapshot;
    const tree = join(fetched.dir, 'files/app/site');
    expect((await readdir(tree)).length).toBeGreaterThan(0);
    try {
      const once = await env.run(acts.restoreArtifact, ctx, fetched, input, 'site');
      expect(await readdir(tree).catch(() => 'gone')).toBe('gone'); // not left for discardRestoreWork
      // The worker died before reporting the step: the retry finds the step done, not a snapshot without the tree.
      expect(await env.run(acts.restoreArtifact, ctx, fetched, input, 'site')).toEqual(once);
      await execa('diff', ['-r', site(), join(spare.dataDir, 'twice', site())]);
    } finally {
      await env.run(acts.discardRestoreWork, ctx, fetched.workDir);
    }
    expect(await leftovers('.restore')).toEqual([]);
  });

  it('restores a database under a new name, leaving the original alone', async () => {
    await restore({ source: 'app', artifact: 'orders', database: `${db}_copy` });
    expect(await psql('SELECT count(*) FROM orders', `${db}_copy`)).toBe('300');
  });
});

describe('verifyRestore (the restore drill)', () => {
  it('passes on a good snapshot, records it in the snapshot record, and leaves no scratch behind', async () => {
    const [result] = await verify([first.snapshot]);
    expect(result!.ok).toBe(true);
    expect(result!.checks.filter((c) => !c.ok)).toEqual([]);
    expect(result!.checks.map((c) => c.artifact)).toEqual(expect.arrayContaining(['orders', 'site']));
    const record = JSON.parse(await (await s3Client().send(new GetObjectCommand({ Bucket: bucket, Key: `shop/${first.snapshot}.json` }))).Body!.transformToString());
    expect(record.verification).toMatchObject({ ok: true, snapshot: first.snapshot });
    expect(await scratchDatabases()).toBe('0');
    expect(await leftovers('.verify')).toEqual([]);
  });

  it('fails loudly when the recorded row counts disagree with the dump, and still cleans up', async () => {
    // A second snapshot whose metadata claims 301 rows: consistent checksums, wrong facts.
    const second: BackupResult = await t.client.workflow.execute('backupPlan', { taskQueue, workflowId: uniqueName('r-backup2'), args: [{ plan: 'shop', tier: 'manual' }] });
    const metaPath = join(second.snapshot_dir, 'metadata.yml');
    const meta = parse(await readFile(metaPath, 'utf8'));
    meta.components.orders.details.row_counts = { 'public.orders': 301 };
    await writeFile(metaPath, stringify(meta));
    const manifest = await buildManifest(second.snapshot_dir, { skip: (rel) => rel === 'manifest.sha256' });
    await writeFile(join(second.snapshot_dir, 'manifest.sha256'), manifest.text);
    const forged = join(root, `${second.snapshot}.tar.zst`);
    const archive = await createArchive(second.snapshot_dir, forged, 'tar.zst', {});
    const storage = await openStorage('minio', S3Storage.parse(minioStorage));
    await storage.put(`shop/${second.snapshot}.tar.zst`, forged, { sha256: archive.sha256, size: archive.size });
    const record = await storage.getJson<Record<string, unknown>>(`shop/${second.snapshot}.json`);
    const manifestSha = createHash('sha256').update(manifest.text).digest('hex');
    await storage.putJson(`shop/${second.snapshot}.json`, { ...record, checksum_sha256: archive.sha256, size_bytes: archive.size, checkpoints: archive.checkpoints, manifest: { ...(record!.manifest as object), sha256: manifestSha } });

    const cause = await failureOf(verify([second.snapshot]));
    expect(cause.type).toBe('VerificationFailed');
    expect(cause.message).toMatch(/orders.*public\.orders.*30[01]/s);
    expect(await scratchDatabases()).toBe('0');
    expect(await leftovers('.verify')).toEqual([]);
  });

  it('a flipped byte in the stored archive: restore and verification both refuse it, naming the checksum', async () => {
    const key = `shop/${first.snapshot}.tar.zst`;
    const body = Buffer.from(await (await s3Client().send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray());
    const at = Math.floor(body.length / 2);
    body[at] = body[at]! ^ 0x01;
    await s3Client().send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));

    const restoreFailure = await failureOf(restore({ snapshot: first.snapshot, dryRun: true }));
    expect(restoreFailure.type).toBe('ChecksumMismatch');
    expect(restoreFailure.message).toContain(first.checksum_sha256);

    const verifyFailure = await failureOf(verify([first.snapshot]));
    expect(verifyFailure.type).toBe('VerificationFailed');
    expect(verifyFailure.message).toMatch(/ChecksumMismatch/);
    expect(await leftovers('.restore')).toEqual([]);
    expect(await leftovers('.verify')).toEqual([]);
  });
});
