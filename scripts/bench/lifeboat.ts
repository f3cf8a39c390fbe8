// Method "lifeboat": the real thing. A worker as its own process (`node bin/lifeboat.mjs -c … worker`, so its
// memory is its own), a plan per work set with both sources (postgres + files, `exclude: [cache/]`) to MinIO,
// backupPlan started and awaited like `lifeboat backup --wait`, restoreSnapshot like `lifeboat restore … --to-dir
// --database`. Times are from the workflow's start to its result.
import { openSync, closeSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { startBackup } from '../../src/cli/backup';
import { parseConfig } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { PLAN } from '../../src/shared/search-attributes';
import type { BackupResult, RestoreInput, RestoreResult } from '../../src/shared/types';
import { findBinary } from '../lib/services';
import { stepTimes, traceRss, type RssTrace } from './steps';
import { emptyPrefix, killGroup, onCleanup, resetVmHwm, timed, trackGroup, vmHwm, type HostRef, type Method, type Stack, type TreeSampler, type Workset } from './stack';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const TASK_QUEUE = 'lifeboat-bench';
const RESTIC_PASSWORD = 'lifeboat-bench';

/** One Lifeboat variant: its storages (one per work set, in the shared config) and how to empty them. */
export interface Variant {
  id: string;
  label: string;
  /** The bucket its objects land in, for the uploaded-bytes count. */
  bucket: string;
  /** The trees' `large/` directories (the big files) as a `media: true` artifact of their own (main set only). */
  media?: boolean;
  storages: Record<Workset, { name: string; config: Record<string, unknown> }>;
  /** Untimed, after the plan's mirror and local snapshots are gone: storage forgets the set (a "first backup" again). */
  resetStorage(set: Workset, plan: string): Promise<void>;
}

export interface LifeboatWorker {
  pid: number;
  client: Client;
  config: Config;
  backupRoot: string;
  methods: Method[];
  close(): Promise<void>;
}

/**
 * The allocator settings the packaged systemd unit gives the worker (`Environment=MALLOC_…`), so the bench measures
 * the worker as it is deployed; a variable set in the bench's own environment wins (experiments).
 */
function unitAllocatorEnv(): Record<string, string> {
  const unit = readFileSync(join(REPO, 'packaging/lifeboat-worker.service'), 'utf8');
  return Object.fromEntries([...unit.matchAll(/^Environment=(MALLOC_[A-Z_]+)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

/** The unit's node options (`ExecStart=/usr/bin/node <options> …/lifeboat.mjs worker`). */
function unitNodeOptions(): string[] {
  const unit = readFileSync(join(REPO, 'packaging/lifeboat-worker.service'), 'utf8');
  return /^ExecStart=\S*node((?: --\S+)*) \S+lifeboat\.mjs worker$/m.exec(unit)?.[1]?.trim().split(' ').filter(Boolean) ?? [];
}

/** A main host's `etc/` is its own small artifact (the small-restore scenario); tiny hosts are one tree each. */
function source(stack: Stack, h: HostRef, withDb: boolean, media = false, main = true) {
  return {
    name: h.name,
    host: '127.0.0.1',
    port: h.port,
    user: stack.user,
    artifacts: [
      ...(withDb ? [{ type: 'postgres', name: 'db', database: stack.main.db, host: '127.0.0.1' }] : []),
      // etc/ lies inside the tree (which excludes it): a whole-plan restore writes the tree first (restore/order.ts).
      ...(main ? [{ type: 'files', name: `${h.name}-etc`, paths: [join(h.tree, 'etc')] }] : []),
      { type: 'files', name: `${h.name}-tree`, paths: [h.tree], exclude: ['cache/', ...(main ? ['etc/'] : []), ...(media ? ['large/'] : [])] },
      ...(media ? [{ type: 'files', name: `${h.name}-large`, paths: [join(h.tree, 'large')], media: true }] : []),
    ],
  };
}

const planName = (v: Variant, set: Workset) => `${set}-${v.id}`;

/** `restoreSnapshot` of the latest snapshot, started and awaited as `lifeboat restore` does. */
async function runRestore(client: Client, id: string, over: Pick<RestoreInput, 'plan'> & Partial<RestoreInput>, whileAlive: WhileAlive): Promise<{ result: RestoreResult; handle: WorkflowHandle }> {
  const input: RestoreInput = { snapshot: 'latest', force: false, dryRun: false, ...over };
  const handle = await client.workflow.start('restoreSnapshot', {
    taskQueue: TASK_QUEUE,
    workflowId: `${id}-${Date.now()}`,
    args: [input],
    typedSearchAttributes: new TypedSearchAttributes([{ key: PLAN, value: input.plan }]),
  });
  return { result: (await whileAlive(handle.result())) as RestoreResult, handle };
}

/** A run's result, or the worker's death: without it, a run whose worker stopped (a crash, a signal) waits forever. */
type WhileAlive = <T>(result: Promise<T>) => Promise<T>;

/** Writes the config for every variant, starts one worker process for all of them and waits until it polls. */
export async function startLifeboat(stack: Stack, variants: Variant[], log: (l: string) => void, opts: { steps?: boolean } = {}): Promise<LifeboatWorker> {
  const dir = join(stack.root, 'lifeboat');
  const backupRoot = join(dir, 'backups');
  await mkdir(backupRoot, { recursive: true, mode: 0o700 });
  const plans: Record<string, unknown> = {};
  for (const v of variants) {
    plans[planName(v, 'main')] = { storages: [v.storages.main.name], sources: stack.main.hosts.map((h) => source(stack, h, h === stack.main.dbHost, v.media)) };
    plans[planName(v, 'tiny')] = { storages: [v.storages.tiny.name], sources: stack.tiny.hosts.map((h) => source(stack, h, false, false, false)) };
  }
  const configPath = join(dir, 'lifeboat.yaml');
  const text = stringify({
    temporal: { address: stack.temporal.address, taskQueue: TASK_QUEUE },
    backupRoot,
    ssh: { identityFile: stack.identityFile, knownHosts: stack.knownHostsFile },
    storages: Object.fromEntries(variants.flatMap((v) => Object.values(v.storages).map((st) => [st.name, st.config]))),
    plans,
  });
  await writeFile(configPath, text);
  const config = parseConfig(text, configPath);

  const allocator = unitAllocatorEnv();
  const logFile = join(dir, 'worker.log');
  const fd = openSync(logFile, 'a') as 9;
  const nodeOptions = unitNodeOptions();
  const worker = execa(process.execPath, [...nodeOptions, join(REPO, 'bin/lifeboat.mjs'), '-c', configPath, 'worker'], {
    cwd: REPO,
    // Caches (Lifeboat's restic records, restic's own) under the bench's temp dir, and restic found on PATH.
    env: {
      ...allocator,
      ...process.env,
      PATH: `${dirname(findBinary('restic'))}${delimiter}${process.env.PATH ?? ''}`,
      LIFEBOAT_CACHE: join(dir, 'cache'),
      XDG_CACHE_HOME: join(dir, 'xdg-cache'),
      LIFEBOAT_BENCH_S3_ACCESS: stack.minio.accessKey,
      LIFEBOAT_BENCH_S3_SECRET: stack.minio.secretKey,
      LIFEBOAT_BENCH_RESTIC_PASSWORD: RESTIC_PASSWORD,
      ...(process.env.BENCH_WORKER_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_WORKER_NODE_OPTIONS } : {}),
    },
    stdin: 'ignore',
    stdout: fd,
    stderr: fd,
    detached: true,
    reject: false,
    cleanup: false,
  });
  closeSync(fd);
  const pid = worker.pid!;
  const untrack = trackGroup(pid);
  let exited = false;
  let stopping = false;
  void worker.finally(() => (exited = true));
  const died = worker.then(() => {
    if (stopping) return new Promise<never>(() => {});
    throw new Error(`lifeboat worker exited during the bench:\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
  });
  died.catch(() => undefined); // reported by the run that waits on it
  const whileAlive: WhileAlive = (result) => Promise.race([result, died]);
  const stop = async () => {
    stopping = true;
    if (exited) return;
    killGroup(pid, 'SIGTERM');
    for (let i = 0; i < 100 && !exited; i++) await sleep(100);
    if (!exited) killGroup(pid, 'SIGKILL');
    untrack();
  };
  onCleanup(stop);

  // Ready once the worker has bundled its workflows and connected (it says so on stderr).
  const t0 = Date.now();
  for (;;) {
    if (readFileSync(logFile, 'utf8').includes('lifeboat worker: task queue')) break;
    if (exited) throw new Error(`lifeboat worker exited:\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
    if (Date.now() - t0 > 300_000) throw new Error('lifeboat worker not ready after 300 s');
    await sleep(200);
  }
  const alloc = [...nodeOptions, ...Object.entries(allocator).map(([k, v]) => `${k}=${process.env[k] ?? v}`)];
  log(`lifeboat worker ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (pid ${pid}${alloc.length ? `, ${alloc.join(' ')}` : ''})`);

  // Closed by close() at the end of a run, not by cleanup: an interrupted run may still be waiting on it.
  const connection = await Connection.connect({ address: stack.temporal.address });
  const client = new Client({ connection, namespace: 'default' });

  const lastStart = new Map<string, number>();
  /** With --steps: where the run's seconds went (read after the timing). */
  const logSteps = async (v: Variant, what: string, handle: WorkflowHandle, rss?: RssTrace) => {
    if (opts.steps) log(`    ${v.label} ${what}steps: ${await stepTimes(handle, rss)}`);
  };
  const rssTrace = () => (opts.steps ? traceRss(pid) : undefined);
  const methods = variants.map((v): Method => ({
    id: v.id,
    label: v.label,
    bucket: v.bucket,
    async reset(set) {
      const plan = planName(v, set);
      await rm(join(backupRoot, '.mirror', plan), { recursive: true, force: true });
      for (const e of await readdir(backupRoot)) if (e.startsWith(`${plan}-`)) await rm(join(backupRoot, e), { recursive: true, force: true });
      await v.resetStorage(set, plan);
    },
    async backup(set, _round, sampler?: TreeSampler) {
      const plan = planName(v, set);
      // Snapshot names have one-second resolution: never start two runs of a plan within the same second.
      const since = Date.now() - (lastStart.get(plan) ?? 0);
      if (since < 1100) await sleep(1100 - since);
      lastStart.set(plan, Date.now());
      const measureHwm = sampler ? await resetVmHwm(pid) : false;
      sampler?.add(pid);
      const trace = rssTrace();
      const { seconds, value: [handle, result] } = await timed(async () => {
        const h = await startBackup(client, config, { plan, tier: 'manual' });
        return [h, (await whileAlive(h.result())) as BackupResult] as const;
      });
      await logSteps(v, '', handle, trace?.stop());
      if (result.status !== 'Completed') throw new Error(`lifeboat backup ${plan}: ${result.status}`);
      return { seconds, note: `${result.snapshot}, ${result.size_bytes} bytes stored`, ...(measureHwm ? { vmHwm: vmHwm(pid) } : {}) };
    },
    async restore(round, toDir, toDb) {
      const trace = rssTrace();
      const { seconds, value: { result: value, handle } } = await timed(() => runRestore(client, `bench-restore-${v.id}-${round}`, { plan: planName(v, 'main'), dir: toDir, database: toDb }, whileAlive));
      await logSteps(v, 'restore ', handle, trace?.stop());
      if (value.restored.length < 2 * stack.main.hosts.length + 1) throw new Error(`lifeboat restore: only ${value.restored.map((r) => r.artifact).join(', ')} restored`);
      return { seconds };
    },
    async restoreSmall(round, toDir) {
      const h = stack.main.hosts[0]!;
      const artifact = `${h.name}-etc`;
      const { seconds, value: { result: value, handle } } = await timed(() => runRestore(client, `bench-restore-small-${v.id}-${round}`, { plan: planName(v, 'main'), source: h.name, artifact, dir: toDir }, whileAlive));
      await logSteps(v, 'small ', handle);
      if (value.restored.map((r) => r.artifact).join() !== artifact) throw new Error(`lifeboat small restore: restored ${value.restored.map((r) => r.artifact).join(', ')}`);
      return { seconds };
    },
    async close() {},
  }));

  return {
    pid,
    client,
    config,
    backupRoot,
    methods,
    async close() {
      await connection.close();
      await stop();
    },
  };
}

/**
 * The S3 variant (the brief's "archive" storage): MinIO, Lifeboat's defaults (16 MiB parts, 4 at a time). With
 * `media`, the trees' big files are a media artifact (stored once per content, not in every archive).
 */
export function s3Variant(stack: Stack, bucket: string, media = false): Variant {
  const config = { type: 's3', endpoint: stack.minio.endpoint, region: stack.minio.region, bucket, accessKeyId: { env: 'LIFEBOAT_BENCH_S3_ACCESS' }, secretAccessKey: { env: 'LIFEBOAT_BENCH_S3_SECRET' } };
  const name = media ? 'minio-media' : 'minio';
  return {
    id: media ? 'lifeboat-media' : 'lifeboat',
    label: media ? 'lb-media' : 'lifeboat',
    bucket,
    media,
    storages: { main: { name, config }, tiny: { name, config } },
    async resetStorage(_set, plan) {
      await emptyPrefix(stack.s3, bucket, `${plan}/`);
      if (media) await emptyPrefix(stack.s3, bucket, `.media/${plan}/`);
    },
  };
}

/**
 * The restic variant (`type: restic` storage): a repository per work set on MinIO; a reset empties it, clears
 * restic's cache and runs `restic init` (untimed), as the plain restic method does.
 */
export function resticVariant(stack: Stack, bucket: string): Variant {
  const repository = (set: Workset) => `s3:${stack.minio.endpoint}/${bucket}/${set}`;
  const config = (set: Workset) => ({
    type: 'restic',
    repository: repository(set),
    password: { env: 'LIFEBOAT_BENCH_RESTIC_PASSWORD' },
    env: { AWS_ACCESS_KEY_ID: { env: 'LIFEBOAT_BENCH_S3_ACCESS' }, AWS_SECRET_ACCESS_KEY: { env: 'LIFEBOAT_BENCH_S3_SECRET' } },
  });
  return {
    id: 'lifeboat-restic',
    label: 'lb-restic',
    bucket,
    storages: { main: { name: 'restic-main', config: config('main') }, tiny: { name: 'restic-tiny', config: config('tiny') } },
    async resetStorage(set) {
      await emptyPrefix(stack.s3, bucket, `${set}/`);
      await rm(join(stack.root, 'lifeboat', 'xdg-cache'), { recursive: true, force: true });
      await execa(findBinary('restic'), ['init', '--quiet'], {
        env: { ...process.env, RESTIC_REPOSITORY: repository(set), RESTIC_PASSWORD, AWS_ACCESS_KEY_ID: stack.minio.accessKey, AWS_SECRET_ACCESS_KEY: stack.minio.secretKey, RESTIC_CACHE_DIR: join(stack.root, 'lifeboat', 'init-cache') },
      });
    },
  };
}
