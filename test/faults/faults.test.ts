// The fault-injection suite (`npm run test:faults`): real Temporal (own dev server with a database file), real
// MinIO, a real sshd host, the machine's PostgreSQL, and a worker in its own process that is SIGKILLed at chosen
// moments. Each trial prints one row: trial → outcome. The "service" stopped around a copy is a marker file that a
// real `commands` quiesce controller removes and creates over SSH (a stand-in for a container; no Docker here).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AbortMultipartUploadCommand, ListMultipartUploadsCommand, ListPartsCommand, ListObjectsV2Command, PutObjectCommand, S3Client, CreateBucketCommand } from '@aws-sdk/client-s3';
import { Client, Connection, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { freePort, restartSshHost, startMinio, startSshHost, startTemporalDev, type Minio, type SshHost, type TemporalDev } from '../../scripts/lib/services';
import { searchAttributeArgs } from '../../src/shared/search-attributes';
import type { BackupResult } from '../../src/shared/types';
import { mirrorDir } from '../../src/snapshot/layout';
import { psql, tempDir } from '../support/fixtures';

const LIFEBOAT_BIN = new URL('../../bin/lifeboat.mjs', import.meta.url).pathname;
const root = await tempDir('faults');
const backupRoot = join(root, 'backups');
const marker = join(root, 'service-running'); // the quiesced "service": present = running
const bucket = 'faults';
const db = `lifeboat_faults_${process.pid}`;
const taskQueue = 'lifeboat-faults';
const rows: Array<[string, string]> = [];

let temporal: TemporalDev;
let temporalPort: number;
let minio: Minio;
let minioPort: number;
let host: SshHost;
let client: Client;
let connection: Connection;
let worker: ChildProcess | undefined;
let configPath: string;
let s3: S3Client;

const TRIALS = ['preflight', 'rsync', 'stopped', 'archive', 'upload', 'retention', 'temporal', 'minio', 'sshd', 'postgres', 'badsecret', 'hostkey', 'missing'] as const;
type Trial = (typeof TRIALS)[number];

function planFor(trial: Trial): Record<string, unknown> {
  const knownHosts = trial === 'hostkey' ? join(root, 'empty_known_hosts') : host.knownHostsFile;
  const ssh = { host: host.host, port: host.port, user: host.user, identityFile: host.identityFile, knownHosts };
  return {
    storages: [trial === 'badsecret' ? 'minio-bad' : 'minio'],
    parallelism: 1,
    sources: [
      {
        name: 'bulk',
        ...ssh,
        // A slow version command makes preflight long enough to be killed in.
        ...(trial === 'preflight' ? { appVersion: ['sh', '-c', 'sleep 4; echo 1.0'] } : {}),
        artifacts: [
          { name: 'orders', type: 'postgres', database: db, host: '127.0.0.1', user: 'postgres' },
          { name: 'data', type: 'files', paths: [join(host.dataDir, 'bulk'), ...(trial === 'missing' ? [join(host.dataDir, 'nope')] : [])] },
        ],
      },
      {
        name: 'app',
        ...ssh,
        quiesce: { type: 'commands', stop: ['rm', '-f', marker], start: ['touch', marker], check: ['test', '-f', marker] },
        artifacts: [
          { name: 'site', type: 'files', paths: [join(host.dataDir, 'site')] },
          // Copied while the service is stopped, slowly enough to kill the worker then.
          { name: 'slowcopy', type: 'command', quiesce: true, command: ['sh', '-c', 'sleep 5; echo copied'] },
        ],
      },
    ],
  };
}

async function writeFaultConfig(): Promise<void> {
  const secret = join(root, 's3-secret');
  await writeFile(secret, minio.secretKey, { mode: 0o600 });
  await writeFile(join(root, 's3-bad-secret'), 'not-the-secret', { mode: 0o600 });
  await writeFile(join(root, 'empty_known_hosts'), '', { mode: 0o600 });
  process.env.LIFEBOAT_FAULTS_KEY = minio.accessKey;
  const s3cfg = { type: 's3', endpoint: minio.endpoint, region: minio.region, bucket, accessKeyId: { env: 'LIFEBOAT_FAULTS_KEY' } };
  configPath = join(root, 'lifeboat.yaml');
  await writeFile(
    configPath,
    stringify({
      temporal: { address: temporal.address, taskQueue },
      backupRoot,
      storages: {
        minio: { ...s3cfg, secretAccessKey: { file: secret }, retention: { last: 1, minimum: 1 } },
        'minio-bad': { ...s3cfg, secretAccessKey: { file: join(root, 's3-bad-secret') } },
      },
      plans: Object.fromEntries(TRIALS.map((t) => [`f${t}`, planFor(t)])),
    }),
  );
}

function startWorker(): ChildProcess {
  const child = spawn('node', [LIFEBOAT_BIN, '-c', configPath, 'worker'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env } });
  child.stderr!.on('data', () => {}); // drained; the worker's own log is not part of the result
  return child;
}

async function killWorker(): Promise<void> {
  const w = worker!;
  const gone = new Promise((r) => w.once('exit', r));
  w.kill('SIGKILL');
  await gone;
  worker = undefined;
}

type Phase = (d: Awaited<ReturnType<WorkflowHandle['describe']>>) => boolean | Promise<boolean>;
const pending = (type: string, idPrefix = '') => (d: Awaited<ReturnType<WorkflowHandle['describe']>>) =>
  (d.raw.pendingActivities ?? []).some((p) => p.activityType?.name === type && (p.activityId ?? '').startsWith(idPrefix) && Number(p.state) === 2);

/** rsync has really started moving bytes into the plan's bulk mirror (not just the activity's SSH handshake). */
const midRsync = (trial: Trial) => async (d: Awaited<ReturnType<WorkflowHandle['describe']>>) =>
  pending('captureArtifact', 'capture:bulk:data')(d) && (await bytesUnder(mirrorDir(backupRoot, `f${trial}`, 'bulk', 'data'))) > 20 * 1024 * 1024;

async function bytesUnder(dir: string): Promise<number> {
  const r = await execa('du', ['-sb', '--apparent-size', dir], { reject: false });
  return r.exitCode === 0 ? Number(r.stdout.split('\t')[0]) : 0;
}

async function until(handle: WorkflowHandle, phase: Phase, what: string, timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const d = await handle.describe().catch(() => undefined);
    if (d && (await phase(d))) return;
    if (Date.now() > end) throw new Error(`never reached: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const start = (trial: Trial) => client.workflow.start('backupPlan', { taskQueue, workflowId: `fault-${trial}-${Date.now()}`, args: [{ plan: `f${trial}`, tier: 'manual' }] });

async function objects(prefix: string): Promise<string[]> {
  const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (r.Contents ?? []).map((o) => o.Key!).sort();
}
async function openUploads(prefix: string): Promise<number> {
  return (await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }))).Uploads?.length ?? 0;
}
/**
 * Share of the archive's parts the server holds for the plan's open upload (0 before it exists). MinIO lists
 * multipart uploads of one exact key only, so the key comes from the archive on the backup host.
 */
async function uploadProgress(plan: string, total: { parts: number; key?: string }): Promise<number> {
  if (!total.key) {
    const archive = (await readdir(backupRoot).catch(() => [] as string[])).find((f) => f.startsWith(`${plan}-`) && f.endsWith('.tar.zst'));
    if (!archive) return 0;
    total.parts = Math.ceil((await stat(join(backupRoot, archive))).size / (16 * 1024 * 1024)); // default partSizeMiB
    total.key = `${plan}/${archive}`;
  }
  const open = (await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: total.key }))).Uploads ?? [];
  if (open.length === 0) return 0;
  const parts = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: total.key, UploadId: open[0]!.UploadId }));
  return (parts.Parts?.length ?? 0) / total.parts;
}

async function partials(): Promise<string[]> {
  return (await readdir(backupRoot).catch(() => [] as string[])).filter((f) => f.endsWith('.partial'));
}
async function attemptsOf(handle: WorkflowHandle, activityType: string): Promise<number> {
  const history = await handle.fetchHistory();
  const scheduled = new Map<string, string>();
  let max = 0;
  for (const e of history.events ?? []) {
    const s = e.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(String(e.eventId), s.activityType?.name ?? '');
    const st = e.activityTaskStartedEventAttributes;
    if (st && scheduled.get(String(st.scheduledEventId)) === activityType) max = Math.max(max, st.attempt ?? 1);
  }
  return max;
}

/** The checks every trial that should complete makes: one record, one archive, nothing half-done, service up. */
async function expectCleanCompletion(trial: Trial, handle: WorkflowHandle): Promise<BackupResult> {
  const result = (await handle.result()) as BackupResult;
  expect(result.status).toBe('Completed');
  const stored = await objects(`f${trial}/`);
  expect(stored.filter((k) => k.endsWith('.json'))).toEqual([`f${trial}/${result.snapshot}.json`]);
  expect(stored).toEqual([`f${trial}/${result.snapshot}.json`, `f${trial}/${result.snapshot}.tar.zst`].sort());
  expect(await openUploads(`f${trial}/${result.snapshot}.tar.zst`)).toBe(0); // MinIO lists uploads of one exact key
  expect(await partials()).toEqual([]);
  expect(existsSync(marker)).toBe(true);
  return result;
}

async function failureType(handle: WorkflowHandle): Promise<string | undefined> {
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : cause?.name;
}

async function noChildrenLeft(pattern: string): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    if ((await execa('pgrep', ['-f', pattern], { reject: false })).exitCode !== 0) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

beforeAll(async () => {
  temporalPort = await freePort();
  minioPort = await freePort();
  [temporal, minio, host] = await Promise.all([
    startTemporalDev({ dbFile: join(root, 'temporal.db'), port: temporalPort, headless: true, logFile: join(root, 'temporal.log'), searchAttributeArgs: searchAttributeArgs() }),
    startMinio({ dataDir: join(root, 'minio'), port: minioPort, logFile: join(root, 'minio.log') }),
    startSshHost({ name: 'src', baseDir: join(root, 'hosts') }),
  ]);
  s3 = new S3Client({ endpoint: minio.endpoint, region: minio.region, forcePathStyle: true, credentials: { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey } });
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  // 320 MiB that does not compress: rsync, archive and upload each take long enough to be interrupted.
  await mkdir(join(host.dataDir, 'bulk'), { recursive: true });
  for (let i = 0; i < 4; i++) await execa('head', ['-c', String(80 * 1024 * 1024), '/dev/urandom'], { stdout: { file: join(host.dataDir, 'bulk', `blob${i}`) } });
  await mkdir(join(host.dataDir, 'site'), { recursive: true });
  await writeFile(join(host.dataDir, 'site', 'index.html'), '<h1>shop</h1>\n');
  await chmod(host.dataDir, 0o755);
  await writeFile(marker, '');
  await psql(`DROP DATABASE IF EXISTS ${db}`);
  await psql(`CREATE DATABASE ${db}`);
  await psql('CREATE TABLE orders (id int primary key, total numeric); INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 20000) g;', db);
  await writeFaultConfig();
  connection = await Connection.connect({ address: temporal.address });
  client = new Client({ connection, namespace: 'default' });
  worker = startWorker();
}, 300_000);

afterAll(async () => {
  if (worker) await killWorker();
  console.log(`\nfault trial → outcome\n${rows.map(([t, o]) => `| ${t.padEnd(44)} | ${o}`).join('\n')}\n`);
  await connection?.close();
  await Promise.allSettled([temporal?.stop(), minio?.stop(), host?.stop()]);
  await psql(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => undefined);
});

async function killTrial(trial: Trial, label: string, phase: Phase, extra?: (h: WorkflowHandle) => Promise<void>) {
  const h = await start(trial);
  await until(h, phase, label);
  await killWorker();
  await extra?.(h);
  worker = startWorker();
  const r = await expectCleanCompletion(trial, h);
  rows.push([`SIGKILL worker ${label}`, `Completed, 1 record (${r.snapshot}), no orphans, no .partial, service running`]);
}

describe('fault injection', () => {
  it('SIGKILL the worker during preflight', async () => {
    await killTrial('preflight', 'during preflight', pending('preflight'));
  });

  it('SIGKILL the worker mid-rsync: its rsync and ssh children die with it', async () => {
    const mirror = mirrorDir(backupRoot, 'frsync', 'bulk', 'data');
    await killTrial('rsync', 'mid-rsync', midRsync('rsync'), async () => {
      expect(await noChildrenLeft(mirror), 'rsync left running after the worker died').toBe(true);
    });
  });

  it('SIGKILL the worker while a source is stopped: the new worker starts it again', async () => {
    await killTrial('stopped', 'while a source is stopped', (d) => pending('captureArtifact', 'capture:app:slowcopy')(d) && !existsSync(marker), async () => {
      expect(existsSync(marker)).toBe(false); // still down: nobody but the workflow may start it
    });
  });

  it('SIGKILL the worker during archive', async () => {
    await killTrial('archive', 'during archive', pending('archiveSnapshot'));
  });

  it('SIGKILL the worker at half the upload: the next attempt resumes the multipart upload and sends only the rest', async () => {
    const h = await start('upload');
    const total: { parts: number; key?: string } = { parts: 0 };
    await until(h, async (d) => pending('uploadSnapshot')(d) && (await uploadProgress('fupload', total)) >= 0.5, 'half the parts uploaded');
    const doneAtKill = await uploadProgress('fupload', total);
    await killWorker();
    worker = startWorker();
    const r = await expectCleanCompletion('upload', h);
    const sent = r.storages[0]!.bytes_sent!;
    expect(sent / r.size_bytes).toBeLessThanOrEqual(0.55);
    expect(r.storages[0]!.verified_by).toBe('server-composite-sha256');
    rows.push([
      'SIGKILL worker at half the upload',
      `Completed; ${(doneAtKill * 100).toFixed(0)} % of parts were stored at the kill, the next attempt sent ${((sent / r.size_bytes) * 100).toFixed(0)} % of the bytes; server checksum matches; no open upload`,
    ]);
  });

  it('SIGKILL the worker during retention', async () => {
    // Old snapshots for retention (last: 1) to delete, so that it takes long enough to be interrupted.
    for (let i = 1; i <= 150; i++) {
      const snapshot = `fretention-2020${String(1 + (i % 12)).padStart(2, '0')}${String(1 + (i % 28)).padStart(2, '0')}T${String(i % 24).padStart(2, '0')}0000`;
      const record = { success: true, status: 'Completed', snapshot, plan: 'fretention', tier: 'daily', created_at: new Date(Date.UTC(2020, 0, 1) + i * 3_600_000).toISOString(), format: 'tar.zst', size_bytes: 1, checksum_sha256: '0'.repeat(64), manifest: { files: 0, bytes: 0, sha256: '0'.repeat(64) }, artifacts: [] };
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `fretention/${snapshot}.json`, Body: JSON.stringify(record) }));
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `fretention/${snapshot}.tar.zst`, Body: 'x' }));
    }
    await killTrial('retention', 'during retention', pending('applyRetention'));
  });

  it('SIGKILL the Temporal dev server mid-run and start it again: the run completes', async () => {
    const h = await start('temporal');
    await until(h, midRsync('temporal'), 'rsync');
    process.kill(temporal.pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 2000));
    temporal = await startTemporalDev({ dbFile: join(root, 'temporal.db'), port: temporalPort, headless: true, logFile: join(root, 'temporal.log'), searchAttributeArgs: searchAttributeArgs() });
    const r = await expectCleanCompletion('temporal', h);
    rows.push(['SIGKILL Temporal dev server mid-rsync, restart', `Completed (${r.snapshot}), 1 record, no orphans`]);
  });

  it('MinIO down for 20 s during upload: retried, then Completed', async () => {
    const h = await start('minio');
    await until(h, pending('uploadSnapshot'), 'upload');
    await minio.stop();
    await new Promise((r) => setTimeout(r, 20_000));
    minio = await startMinio({ dataDir: join(root, 'minio'), port: minioPort, logFile: join(root, 'minio.log'), accessKey: minio.accessKey, secretKey: minio.secretKey });
    await expectCleanCompletion('minio', h);
    const attempts = await attemptsOf(h, 'uploadSnapshot');
    expect(attempts).toBeGreaterThan(1);
    rows.push(['MinIO down 20 s during upload', `Completed after ${attempts} upload attempts (in history)`]);
  });

  it('sshd killed with its sessions mid-rsync and restarted: retried, then Completed', async () => {
    const h = await start('sshd');
    await until(h, midRsync('sshd'), 'rsync');
    await execa('pkill', ['-KILL', '-P', String(host.pid)], { reject: false });
    await host.stop();
    await new Promise((r) => setTimeout(r, 3000));
    host = await restartSshHost(host);
    await expectCleanCompletion('sshd', h);
    const attempts = await attemptsOf(h, 'captureArtifact');
    expect(attempts).toBeGreaterThan(1);
    rows.push(['sshd killed (with sessions) mid-rsync, restarted', `Completed after ${attempts} capture attempts (in history)`]);
  });

  it('PostgreSQL refusing connections for 20 s at the start of the run: retried, then Completed', async () => {
    await psql(`ALTER DATABASE ${db} ALLOW_CONNECTIONS false`);
    const h = await start('postgres');
    await new Promise((r) => setTimeout(r, 20_000));
    await psql(`ALTER DATABASE ${db} ALLOW_CONNECTIONS true`);
    await expectCleanCompletion('postgres', h);
    const attempts = Math.max(await attemptsOf(h, 'preflight'), await attemptsOf(h, 'captureArtifact'));
    expect(attempts).toBeGreaterThan(1);
    rows.push(['PostgreSQL refusing connections for 20 s', `Completed after ${attempts} attempts (in history)`]);
  });

  for (const [trial, type, label] of [
    ['badsecret', 'AuthFailed', 'wrong S3 secret'],
    ['hostkey', 'HostKeyRejected', 'unpinned host key'],
    ['missing', 'MissingPath', 'missing path'],
  ] as const) {
    it(`${label}: fails in one attempt with ${type}, nothing stored`, async () => {
      const h = await start(trial);
      expect(await failureType(h)).toBe(type);
      expect(await attemptsOf(h, 'preflight')).toBe(1);
      expect(await objects(`f${trial}/`)).toEqual([]);
      expect(await partials()).toEqual([]);
      expect((await readdir(backupRoot).catch(() => [] as string[])).filter((f) => f.startsWith(`f${trial}-`))).toEqual([]);
      rows.push([label, `${type} in 1 attempt, nothing stored`]);
    });
  }
});
