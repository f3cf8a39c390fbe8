// What every method of the end-to-end bench shares: the services (Temporal dev server, MinIO, OpenSSH hosts,
// the machine's PostgreSQL), the generated workload on them, cleanup that also runs on Ctrl-C, child processes
// run in their own process group, and a sampler of a process tree's resident memory.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { execa } from 'execa';
import { startMinio, startSshHost, startTemporalDev, type Minio, type SshHost, type TemporalDev } from '../lib/services';
import { searchAttributeArgs } from '../../src/shared/search-attributes';
import { createDatabase, dbRows, psql, writeTinyTree, writeTree, type Tree } from './workload';

// ---------------------------------------------------------------- cleanup

const cleanups: Array<() => Promise<unknown>> = [];
let cleaning: Promise<void> | undefined;

/** Registers `fn` to run at the end (last registered runs first), also on Ctrl-C and on failure. */
export function onCleanup(fn: () => Promise<unknown>): void {
  cleanups.push(fn);
}

export function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length) await cleanups.pop()!().catch((err) => console.error(`cleanup: ${(err as Error).message}`));
  })();
  return cleaning;
}

/**
 * Ctrl-C / SIGTERM: clean up, then exit 130/143. One Ctrl-C reaches the bench more than once (the terminal signals
 * the whole process group, and npm and tsx relay it too), so only a signal more than 3 s after the first exits at once.
 */
export function installSignalHandlers(): void {
  let caughtAt = 0;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (caughtAt) {
        if (Date.now() - caughtAt > 3000) process.exit(1);
        return;
      }
      caughtAt = Date.now();
      console.error(`\nbench: ${sig}, cleaning up… (again in 3 s or later: exit at once)`);
      void cleanupAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
  // While cleaning up, what was running fails as its services go away (a Temporal call on a closed channel throws
  // from a timer): that must not end the process before the cleanup has.
  const stray = (err: unknown) => {
    if (cleaning) return;
    console.error(`bench: ${(err as Error)?.stack ?? err}`);
    void cleanupAll().finally(() => process.exit(1));
  };
  process.on('uncaughtException', stray);
  process.on('unhandledRejection', stray);
}

// ---------------------------------------------------------------- child processes

const groups = new Set<number>();

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    /* gone */
  }
}

onCleanup(async () => {
  for (const pid of groups) killGroup(pid, 'SIGTERM');
  await new Promise((r) => setTimeout(r, groups.size ? 500 : 0));
  for (const pid of groups) killGroup(pid, 'SIGKILL');
});

/**
 * Runs `bash script` in its own process group (so cleanup can stop it with everything it started), with `env`
 * added; fails with the tail of its stderr. `onStart` gets the pid (memory sampling).
 */
export async function runScript(script: string, env: Record<string, string>, onStart?: (pid: number) => void): Promise<void> {
  if (cleaning) throw new Error('bench is stopping');
  const child = execa('bash', [script], { env: { ...process.env, ...env }, detached: true, stdin: 'ignore', reject: false, all: true, cleanup: false });
  const pid = child.pid!;
  groups.add(pid);
  onStart?.(pid);
  try {
    const r = await child;
    if (r.exitCode !== 0) throw new Error(`${script} failed (exit ${r.exitCode ?? r.signal}):\n${String(r.all ?? '').split('\n').slice(-20).join('\n')}`);
  } finally {
    groups.delete(pid);
  }
}

/** A long-lived child in its own process group, stopped (TERM, then KILL) at cleanup. */
export function trackGroup(pid: number): () => void {
  groups.add(pid);
  return () => groups.delete(pid);
}

export { killGroup };

// ---------------------------------------------------------------- memory

const PAGE = 4096;

/** pid → [ppid, rss bytes] for every process, from /proc/<pid>/stat. */
function processTable(): Map<number, [number, number]> {
  const table = new Map<number, [number, number]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
      table.set(Number(d), [Number(rest[1]), Number(rest[21]) * PAGE]); // ppid (4), rss (24)
    } catch {
      /* exited meanwhile */
    }
  }
  return table;
}

/** Samples (every 100 ms) the summed RSS of the process trees under the added roots; `stop()` gives the peak. */
export class TreeSampler {
  private roots = new Set<number>();
  private peakBytes = 0;
  private timer: NodeJS.Timeout;

  constructor(private readonly intervalMs = 100) {
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  add(pid: number): void {
    this.roots.add(pid);
    this.sample();
  }

  private sample(): void {
    if (!this.roots.size) return;
    const table = processTable();
    const children = new Map<number, number[]>();
    for (const [pid, [ppid]] of table) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
    let sum = 0;
    const stack = [...this.roots];
    const seen = new Set<number>();
    while (stack.length) {
      const pid = stack.pop()!;
      if (seen.has(pid)) continue;
      seen.add(pid);
      sum += table.get(pid)?.[1] ?? 0;
      stack.push(...(children.get(pid) ?? []));
    }
    this.peakBytes = Math.max(this.peakBytes, sum);
  }

  stop(): number {
    this.sample();
    clearInterval(this.timer);
    return this.peakBytes;
  }
}

/** VmHWM (peak RSS) of one process, in bytes. */
export function vmHwm(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Resets a process's VmHWM to its current RSS (Linux ≥ 4.0: `echo 5 > /proc/<pid>/clear_refs`). */
export async function resetVmHwm(pid: number): Promise<boolean> {
  return writeFile(`/proc/${pid}/clear_refs`, '5').then(() => true, () => false);
}

// ---------------------------------------------------------------- S3

export function s3Client(m: Minio): S3Client {
  return new S3Client({ endpoint: m.endpoint, region: m.region, forcePathStyle: true, credentials: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey } });
}

/** Total size of the objects under `prefix`. */
export async function bucketBytes(s3: S3Client, bucket: string, prefix = ''): Promise<number> {
  let total = 0;
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) total += o.Size ?? 0;
    token = page.NextContinuationToken;
  } while (token);
  return total;
}

export async function emptyPrefix(s3: S3Client, bucket: string, prefix: string): Promise<void> {
  for (;;) {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (!keys.length) return;
    await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
  }
}

// ---------------------------------------------------------------- the stack

export interface HostRef {
  name: string;
  /** sshd port on 127.0.0.1. */
  port: number;
  /** The tree's absolute path on the host. */
  tree: string;
}

export interface Stack {
  root: string;
  user: string;
  identityFile: string;
  knownHostsFile: string;
  temporal: TemporalDev;
  minio: Minio;
  s3: S3Client;
  main: { hosts: HostRef[]; trees: Tree[]; db: string; dbHost: HostRef; rows: number };
  tiny: { hosts: HostRef[]; trees: Tree[] };
  /** Makes a bucket on the bench's MinIO. */
  bucket(name: string): Promise<string>;
}

export type Workset = 'main' | 'tiny';

export interface StackOptions {
  mibPerHost: number;
  dbMib: number;
  tinyHosts: number;
  /** Leave the work dir (logs, mirrors, configs) for a look afterwards. */
  keep?: boolean;
  log: (line: string) => void;
}

/** Bounded parallelism for many small async jobs. */
async function inBatches<T, R>(items: T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

export async function startStack(o: StackOptions): Promise<Stack> {
  const root = await mkdtemp(join(tmpdir(), 'lifeboat-bench-'));
  await chmod(root, 0o755);
  if (o.keep) o.log(`--keep: ${root} stays after the run (services are stopped)`);
  else onCleanup(() => rm(root, { recursive: true, force: true }));
  const identityFile = join(root, 'id_ed25519');
  const knownHostsFile = join(root, 'known_hosts');
  const hostsDir = join(root, 'hosts');
  await mkdir(hostsDir, { recursive: true });

  const servicesStarted = Promise.all([
    startTemporalDev({ dbFile: join(root, 'temporal.db'), headless: true, logFile: join(root, 'temporal.log'), searchAttributeArgs: searchAttributeArgs() }),
    startMinio({ dataDir: join(root, 'minio'), logFile: join(root, 'minio.log') }),
  ]);
  servicesStarted.then(([t, m]) => onCleanup(() => Promise.allSettled([t.stop(), m.stop()])), () => {});

  const names = ['host1', 'host2', ...Array.from({ length: o.tinyHosts }, (_, i) => `tiny${String(i + 1).padStart(2, '0')}`)];
  const sshHosts = await inBatches(names, 6, async (name) => {
    const h = await startSshHost({ name, baseDir: hostsDir, identityFile, knownHostsFile });
    onCleanup(() => h.stop());
    return h;
  });
  const ref = (h: SshHost): HostRef => ({ name: h.name, port: h.port, tree: join(h.dataDir, 'tree') });
  const mainHosts = sshHosts.slice(0, 2).map(ref);
  const tinyHosts = sshHosts.slice(2).map(ref);
  o.log(`started ${sshHosts.length} sshd hosts`);

  const t0 = Date.now();
  const trees: Tree[] = [];
  for (const h of mainHosts) trees.push(await writeTree(h.tree, `lifeboat-bench:${h.name}`, o.mibPerHost));
  const tinyTrees: Tree[] = [];
  for (const h of tinyHosts) tinyTrees.push(await writeTinyTree(h.tree, `lifeboat-bench:${h.name}`));

  const db = `lifeboat_bench_${randomBytes(4).toString('hex')}`;
  const rows = dbRows(o.dbMib);
  // The source and every restore target (`<db>_r_…`), also one a restore was creating when the bench was stopped:
  // registered before the worker starts, this runs after it is gone.
  onCleanup(async () => {
    const targets = (await psql(`SELECT datname FROM pg_database WHERE datname LIKE '${db}_r_%'`)).split('\n').filter(Boolean);
    for (const name of [db, ...targets]) await psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });
  await createDatabase(db, rows);
  o.log(`workload written in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const [temporal, minio] = await servicesStarted;
  const s3 = s3Client(minio);
  return {
    root,
    user: sshHosts[0]!.user,
    identityFile,
    knownHostsFile,
    temporal,
    minio,
    s3,
    main: { hosts: mainHosts, trees, db, dbHost: mainHosts[0]!, rows },
    tiny: { hosts: tinyHosts, trees: tinyTrees },
    async bucket(name: string) {
      await s3.send(new CreateBucketCommand({ Bucket: name }));
      return name;
    },
  };
}

/** Environment for the shell and restic scripts: hosts, login, database. */
export function scriptEnv(stack: Stack, set: Workset): Record<string, string> {
  const hosts = set === 'main' ? stack.main.hosts : stack.tiny.hosts;
  return {
    HOSTS: hosts.map((h) => `${h.name} ${h.port} ${h.tree}`).join('\n'),
    SSH_USER: stack.user,
    SSH_KEY: stack.identityFile,
    KNOWN_HOSTS: stack.knownHostsFile,
    DB_PORT: set === 'main' ? String(stack.main.dbHost.port) : '',
    DB_NAME: set === 'main' ? stack.main.db : '',
    S3_ENDPOINT: stack.minio.endpoint,
    AWS_ACCESS_KEY_ID: stack.minio.accessKey,
    AWS_SECRET_ACCESS_KEY: stack.minio.secretKey,
    AWS_REGION: stack.minio.region,
  };
}

// ---------------------------------------------------------------- methods

export interface Timed {
  seconds: number;
  /** Lifeboat: the worker's VmHWM over this run (bytes). */
  vmHwm?: number;
  /** restic: its own count of bytes added to the repository (after compression). */
  dataAddedPacked?: number;
  /** Free text for the progress line (e.g. the snapshot a Lifeboat run made). */
  note?: string;
}

/** One way of doing the job. Every call is one timed run; reset() (untimed) forgets mirrors and storage. */
export interface Method {
  id: string;
  /** Short: it heads a table column. */
  label: string;
  /** Where its backups go (uploaded bytes are measured here). */
  bucket: string;
  reset(set: Workset, round: number): Promise<void>;
  backup(set: Workset, round: number, sampler?: TreeSampler): Promise<Timed>;
  /** Restores the main set's latest backup: trees to `<toDir>/<original path>` on their hosts, the database as `toDb`. */
  restore(round: number, toDir: string, toDb: string): Promise<Timed>;
  /** Restores only the first main host's `etc/` (six small files) from the latest backup, to `<toDir>/<tree>/etc`. */
  restoreSmall(round: number, toDir: string): Promise<Timed>;
  close(): Promise<void>;
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const t = process.hrtime.bigint();
  const value = await fn();
  return { seconds: Number(process.hrtime.bigint() - t) / 1e9, value };
}
