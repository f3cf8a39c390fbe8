// finalizeSnapshot with the hash cache, in Temporal's MockActivityEnvironment (a real activity Context, no server):
// snapshots made as pull-tree.ts makes them (hard links into a mirror), then what can go wrong between runs.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createBackupActivities } from '../../src/activities/backup';
import { Plan } from '../../src/config/schema';
import type { FinalizeResult, PlanContext } from '../../src/shared/types';
import { BUILTIN_DENY } from '../../src/snapshot/deny-list';
import { finalizeApart } from '../../src/snapshot/finalize-apart';
import { hashCachePath } from '../../src/snapshot/manifest-reuse';

// The worker (this process) never lists or hashes a snapshot: the finalize task does (snapshot/finalize-apart.ts).
// Here both fail if called; the task process loads the real module.
const inWorker = vi.hoisted(() => ({ calls: [] as string[] }));
vi.mock('../../src/snapshot/manifest', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/snapshot/manifest')>();
  const refuse = (name: string) => () => {
    inWorker.calls.push(name);
    throw new Error(`${name} ran in the worker`);
  };
  return { ...real, listFiles: refuse('listFiles'), hashManifest: refuse('hashManifest') };
});

const HOUR_AGO = new Date(Date.now() - 3600_000);
const TREE = 'files/app/tree';
const FILES = 40;
let root: string;
let mirror: string;
let ctx: PlanContext;
let second = 0;
const activities = createBackupActivities({ configPath: '/nonexistent/lifeboat.yaml' });
/** The expected DenyListViolation need not be logged. */
const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'lifeboat-finalize-'));
  mirror = join(root, '.mirror', 'shop', 'app', 'tree');
  for (let i = 0; i < FILES; i++) put(`dir ${i % 4}/file\n${i}.txt`, `content of file ${i}\n`.repeat(i + 1));
  const plan = Plan.parse({ storages: ['local'], sources: [{ name: 'app', host: '127.0.0.1', artifacts: [{ type: 'files', name: 'tree', paths: ['/srv/tree'] }] }] });
  ctx = { planName: 'shop', plan, backupRoot: root, denyList: [...BUILTIN_DENY], ssh: {}, storages: { local: { type: 'local', path: join(root, 'storage') } } } as PlanContext;
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A mirror file as rsync leaves it: written by rename (a new inode), with the source's old mtime. */
function put(rel: string, text: string): void {
  const full = join(mirror, rel);
  mkdirSync(join(full, '..'), { recursive: true });
  writeFileSync(`${full}.tmp`, text);
  utimesSync(`${full}.tmp`, HOUR_AGO, HOUR_AGO);
  renameSync(`${full}.tmp`, full);
}

/** A captured snapshot (`<name>.partial` with the mirror hard-linked in), finalized. */
async function finalize(extra?: (workDir: string) => void, env = new MockActivityEnvironment(undefined, { logger: quiet })): Promise<FinalizeResult & { name: string }> {
  const name = `shop-20260101T0000${String(++second).padStart(2, '0')}`;
  const workDir = join(root, `${name}.partial`);
  if (!existsSync(workDir)) {
    mkdirSync(join(workDir, TREE, '..'), { recursive: true });
    execFileSync('cp', ['-a', '-l', mirror, join(workDir, TREE)]);
  }
  extra?.(workDir);
  const input = { snapshot: name, tier: 'manual' as const, startedAt: new Date().toISOString(), artifacts: [], sources: [] };
  const result = (await env.run(activities.finalizeSnapshot, ctx, input)) as FinalizeResult;
  return { ...result, name };
}

/** This process's finalize tasks (children of its main thread; other test files run their own). */
const finalizeTasks = (): string[] =>
  readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8')
    .split(' ')
    .filter((pid) => pid && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('internal-apart\0finalize'));

/** `sha256sum -c` of the finished snapshot: every manifest line matches its file. */
function checkManifest(dir: string): void {
  const out = execFileSync('sha256sum', ['--strict', '--quiet', '-c', 'manifest.sha256'], { cwd: dir, encoding: 'utf8' });
  expect(out).toBe('');
}

describe('finalizeSnapshot reuses the hashes of unchanged files', () => {
  let first: FinalizeResult & { name: string };

  it('the first run hashes every file and leaves the cache', async () => {
    first = await finalize();
    expect(first.manifest).toMatchObject({ files: FILES + 1, hashed_files: FILES + 1, reused_files: 0 });
    expect(existsSync(hashCachePath(root, 'shop'))).toBe(true);
    checkManifest(first.dir);
  });

  it('an unchanged run reads only metadata.yml (new every run)', async () => {
    const r = await finalize();
    expect(r.manifest).toMatchObject({ files: FILES + 1, hashed_files: 1, reused_files: FILES });
    checkManifest(r.dir);
    const lines = (dir: string) => readFileSync(join(dir, 'manifest.sha256'), 'utf8').split('\n').filter((l) => !l.endsWith('metadata.yml'));
    expect(lines(r.dir)).toEqual(lines(first.dir));
  });

  it('a file rsync replaced with the same size and mtime is read again, and its new hash is in the manifest', async () => {
    put('dir 1/file\n1.txt', 'CONTENT OF FILE 1\nCONTENT OF FILE 1\n');
    const r = await finalize();
    expect(r.manifest).toMatchObject({ hashed_files: 2, reused_files: FILES - 1 });
    checkManifest(r.dir);
  });

  it('after a crash between the rename and the cache write, the older cache still gives right hashes', async () => {
    const cache = hashCachePath(root, 'shop');
    copyFileSync(cache, `${root}/saved-cache`);
    put('dir 2/file\n2.txt', 'changed after the saved cache\n');
    await finalize();
    copyFileSync(`${root}/saved-cache`, cache); // as if this run's cache write never happened
    const r = await finalize();
    expect(r.manifest).toMatchObject({ hashed_files: 2, reused_files: FILES - 1 }); // metadata.yml and the changed file
    checkManifest(r.dir);
  });

  it('a deny-listed file is refused though the cache knows nothing against it, and the cache stays as it was', async () => {
    const cache = readFileSync(hashCachePath(root, 'shop'));
    const err = await finalize((workDir) => {
      mkdirSync(join(workDir, TREE, 'home/.config/sops/age'), { recursive: true });
      writeFileSync(join(workDir, TREE, 'home/.config/sops/age/keys.txt'), 'AGE-SECRET-KEY-1\n');
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('DenyListViolation');
    expect(existsSync(join(root, `shop-20260101T0000${String(second).padStart(2, '0')}.partial`))).toBe(false);
    expect(readFileSync(hashCachePath(root, 'shop'))).toEqual(cache);
  });

  it('a corrupt cache, or one whose snapshot was pruned, means every file is hashed', async () => {
    const cache = hashCachePath(root, 'shop');
    writeFileSync(cache, readFileSync(cache, 'utf8').replace(/[0-9a-f]{64}/, '0'.repeat(64)));
    expect((await finalize()).manifest).toMatchObject({ hashed_files: FILES + 1, reused_files: 0 });
    const named = /^lifeboat-hash-cache v1 (\S+)/.exec(readFileSync(cache, 'utf8'))![1]!;
    rmSync(join(root, named), { recursive: true });
    const r = await finalize();
    expect(r.manifest).toMatchObject({ hashed_files: FILES + 1, reused_files: 0 });
    checkManifest(r.dir);
  });
});

// The listing and hashing run in `lifeboat internal-apart finalize` (snapshot/finalize-apart.ts): their garbage grows
// with the number of files, and the worker would keep its high-water mark.
describe('finalizeSnapshot runs apart from the worker', () => {
  const BIG = 'dir 0/big.bin';

  it('the worker lists and hashes nothing: a 96 MiB file is hashed by the task', async () => {
    put(BIG, 'x'.repeat(96 * 1024 * 1024));
    const r = await finalize();
    expect(r.manifest).toMatchObject({ hashed_files: 2 }); // the new file and metadata.yml
    checkManifest(r.dir);
    expect(inWorker.calls).toEqual([]);
    expect(finalizeTasks()).toEqual([]);
  }, 60_000);

  it("the task's progress arrives: the hash phase with its bytes, the cache's state, the final counts", async () => {
    put(BIG, 'z'.repeat(32 * 1024 * 1024)); // changed: read again
    const name = `shop-20260101T0000${String(++second).padStart(2, '0')}`;
    const workDir = join(root, `${name}.partial`);
    mkdirSync(join(workDir, TREE, '..'), { recursive: true });
    execFileSync('cp', ['-a', '-l', mirror, join(workDir, TREE)]);
    const events: Array<Record<string, unknown>> = [];
    const summary = await finalizeApart({ backupRoot: root, plan: 'shop', snapshot: name, workDir, dir: join(root, name), denyList: [...BUILTIN_DENY], mediaDirs: [] }, { onProgress: (e) => events.push(e) });
    expect(summary).toMatchObject({ files: FILES + 1, hashed_files: 1, reused_files: FILES });
    const start = events.find((e) => e.phase === 'hash')!;
    expect(start).toMatchObject({ bytesTotal: 32 * 1024 * 1024 });
    expect('bytesDone' in start && start.bytesDone === undefined).toBe(true); // clears the last phase's count
    expect(start.hash_cache).toMatch(/hashes from shop-/);
    expect(events.at(-1)).toEqual({ hashed_files: 1, reused_files: FILES });
    expect(events.filter((e) => typeof e.bytesDone === 'number').every((e) => (e.bytesDone as number) <= 32 * 1024 * 1024)).toBe(true);
  }, 60_000);

  it('a cancelled finalize leaves no task, the snapshot unrenamed, and its retry finishes it', async () => {
    put(BIG, 'y'.repeat(192 * 1024 * 1024)); // changed: read again
    const env = new MockActivityEnvironment(undefined, { logger: quiet });
    // Cancelled once the task has read 64 MiB (its modules are a few MiB; heartbeats come only every few seconds).
    const poll = setInterval(() => {
      const [pid] = finalizeTasks();
      const io = pid ? readFileSync(`/proc/${pid}/io`, 'utf8') : '';
      if (Number(/^rchar: (\d+)$/m.exec(io)?.[1] ?? 0) > 64 * 1024 * 1024) {
        clearInterval(poll);
        env.cancel();
      }
    }, 5);
    const err = await finalize(undefined, env)
      .catch((e: unknown) => e)
      .finally(() => clearInterval(poll));
    expect(err).toBeInstanceOf(CancelledFailure);
    const name = `shop-20260101T0000${String(second).padStart(2, '0')}`;
    expect(existsSync(join(root, `${name}.partial`))).toBe(true);
    expect(existsSync(join(root, name))).toBe(false);
    expect(finalizeTasks()).toEqual([]);
    second--; // the retry: the same snapshot
    const r = await finalize();
    expect(r.name).toBe(name);
    checkManifest(r.dir);
  }, 60_000);
});
