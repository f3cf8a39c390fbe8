// Shared pieces of the integration tests: a Temporal worker + client, MinIO buckets, PostgreSQL, history text.
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, bundleWorkflowCode, type Worker } from '@temporalio/worker';
import { execa } from 'execa';
import { expect, inject } from 'vitest';
import { stringify } from 'yaml';
import { LifeboatError } from '../../src/shared/errors';
import type { BackupResult } from '../../src/shared/types';
import { createLifeboatWorker, WORKFLOWS_PATH } from '../../src/workers/worker';

let bundle: Awaited<ReturnType<typeof bundleWorkflowCode>> | undefined;

export interface TemporalFixture {
  client: Client;
  worker: Worker;
  taskQueue: string;
  close(): Promise<void>;
}

let runtimeInstalled = false;

/** A worker on `taskQueue` with Lifeboat's activities (or `activities`, e.g. fakes for workflow tests). */
export async function temporalFixture(configPath: string, taskQueue: string, activities?: object, workflowsPath?: string): Promise<TemporalFixture> {
  const address = inject('temporalAddress');
  if (!runtimeInstalled) {
    // One Runtime per process, before any connection; expected workflow failures need not flood the output.
    Runtime.install({ logger: new DefaultLogger('ERROR') });
    runtimeInstalled = true;
  }
  bundle ??= await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietLogger });
  const workflowBundle = workflowsPath ? await bundleWorkflowCode({ workflowsPath, logger: quietLogger }) : bundle;
  const nativeConnection = await NativeConnection.connect({ address });
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace: 'default' });
  const worker = await createLifeboatWorker({ connection: nativeConnection, namespace: 'default', taskQueue, configPath, workflowBundle, activities });
  // A Worker runs once: keep it running for the whole file and shut it down at the end.
  const running = worker.run();
  return {
    client,
    worker,
    taskQueue,
    async close() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      await connection.close();
      await nativeConnection.close();
    },
  };
}

const quietLogger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: console.error };

export function s3Client(): S3Client {
  const m = inject('minio');
  return new S3Client({ endpoint: m.endpoint, region: m.region, forcePathStyle: true, credentials: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey } });
}

export async function createBucket(name: string): Promise<void> {
  await s3Client().send(new CreateBucketCommand({ Bucket: name }));
}

/** The restore drill's scratch server: the machine's PostgreSQL as lifeboat_drill (LOGIN CREATEDB, made by global-setup.ts). */
export const SCRATCH_POSTGRES = { host: '127.0.0.1', port: 5432, user: 'lifeboat_drill' } as const;

export async function psql(sql: string, db = 'postgres'): Promise<string> {
  const r = await execa('psql', ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-U', 'postgres', '-d', db, '-c', sql]);
  return r.stdout.trim();
}

export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `lifeboat-${prefix}-`));
  await chmod(dir, 0o755); // sshd sessions and rsync run as this user anyway; keep paths traversable
  return dir;
}

export async function writeConfig(dir: string, config: unknown): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'lifeboat.yaml');
  await writeFile(path, stringify(config));
  return path;
}

/** The whole event history as text, with payloads decoded, to search for values that must not be there. */
export async function historyText(handle: WorkflowHandle): Promise<string> {
  const history = await handle.fetchHistory();
  // Payload bytes come back as Uint8Array or base64 strings depending on the path: decode both.
  return JSON.stringify(history, (k, v: unknown) => {
    if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
    if (k === 'data' && typeof v === 'string') return Buffer.from(v, 'base64').toString('utf8');
    return v;
  });
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}

/** Runs `backupPlan` of one plan, each run at least a second after the last: snapshot names have one-second resolution. */
export function spacedBackups(fixture: () => TemporalFixture, taskQueue: string, plan: string): () => Promise<BackupResult> {
  let lastStarted = 0;
  return async () => {
    await new Promise((r) => setTimeout(r, Math.max(0, lastStarted + 1100 - Date.now())));
    lastStarted = Date.now();
    return fixture().client.workflow.execute('backupPlan', { taskQueue, workflowId: uniqueName(`${plan}-backup`), args: [{ plan, tier: 'manual' }] });
  };
}

/** The LifeboatError a promise rejects with (the test fails if it resolves or rejects with anything else). */
export async function lifeboatFailure(p: Promise<unknown>): Promise<LifeboatError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected a LifeboatError').toBeInstanceOf(LifeboatError);
  return err as LifeboatError;
}
