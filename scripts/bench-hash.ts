// Manifest hashing benchmark (issue 11): a tree of ~1 GiB (many small files, some large), hashed
//   (a) by coreutils' sha256sum, one process, and spread over the cores with xargs -P: the yardstick;
//   (b) by Lifeboat's buildManifest in a process whose heap holds ~350 MB of live objects, like an idle worker
//       (and, for contrast, by the streams-on-the-main-thread hashing it replaced, in the same heap);
//   (c) an unchanged re-finalize: every hash reused from the hash cache, no file read.
// Each Lifeboat measurement runs in a fresh child process, so one cannot warm or burden the next.
//   npx tsx scripts/bench-hash.ts --gib 1 --runs 3
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { buildManifest, hashManifest, listFiles } from '../src/snapshot/manifest';
import { loadHashCache, writeHashCache } from '../src/snapshot/manifest-reuse';

export interface BenchHashOptions {
  /** Size of the tree. */
  gib?: number;
  /** Best of this many runs per measurement. */
  runs?: number;
  /** Live heap held while Lifeboat hashes, in MB. */
  heapMb?: number;
  /** Print the table (default true). */
  print?: boolean;
}

export interface BenchHashResult {
  files: number;
  bytes: number;
  cores: number;
  heapMb: number;
  /** Heap in use in the measuring processes when they finished (the live objects plus Lifeboat's own), in MB. */
  heapUsedMb: number;
  seconds: { sha256sum: number; sha256sumParallel: number; lifeboat: number; streamsOnMainThread: number; reuse: number };
  /** lifeboat ÷ sha256sum (one process); the goal is at most 1.2. */
  ratio: number;
  reuse: { hashed: number; reused: number };
}

const MIB = 2 ** 20;
const SNAPSHOT = 'bench-20260101T000000';
const PLAN = 'bench';
type ChildMode = 'lifeboat' | 'streams' | 'reuse';

export async function benchHash(opts: BenchHashOptions = {}): Promise<BenchHashResult> {
  const gib = opts.gib ?? 1;
  const runs = opts.runs ?? 3;
  const heapMb = opts.heapMb ?? 350;
  const root = await mkdtemp(join(tmpdir(), 'lifeboat-bench-hash-'));
  try {
    const tree = join(root, SNAPSHOT);
    const { files, bytes } = await makeTree(tree, gib);
    const sha256sum = await best(runs, () => shell(tree, 'find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum -- >/dev/null'));
    const cores = availableParallelism();
    const sha256sumParallel = await best(runs, () => shell(tree, `find . -type f -print0 | xargs -0 -P${cores} -n 256 sha256sum -- >/dev/null`));
    let heapUsedMb = 0;
    const lifeboat = await best(runs, async () => {
      const r = await child(root, 'lifeboat', heapMb);
      heapUsedMb = Math.max(heapUsedMb, r.liveHeapMb);
      return r.seconds;
    });
    const streamsOnMainThread = await best(runs, async () => (await child(root, 'streams', heapMb)).seconds);
    // The cache an earlier finalize would have left: written once, then read by every re-finalize.
    await writeHashCache(root, PLAN, SNAPSHOT, await buildManifest(tree));
    let reuse = { hashed: 0, reused: 0 };
    const reuseSeconds = await best(runs, async () => {
      const r = await child(root, 'reuse', heapMb);
      reuse = { hashed: r.hashed, reused: r.reused };
      return r.seconds;
    });
    const result: BenchHashResult = {
      files,
      bytes,
      cores,
      heapMb,
      heapUsedMb,
      seconds: { sha256sum, sha256sumParallel, lifeboat, streamsOnMainThread, reuse: reuseSeconds },
      ratio: lifeboat / sha256sum,
      reuse,
    };
    if (opts.print !== false) printTable(result, runs);
    return result;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/**
 * ~`gib` GiB: a quarter in a few 64 MiB files, a quarter in 1 MiB files, half in files of 1–63 KiB (a source tree,
 * a mail spool), some with a space, a newline or a backslash in the name. Random bytes: hashing cost does not
 * depend on content.
 */
async function makeTree(tree: string, gib: number): Promise<{ files: number; bytes: number }> {
  const total = gib * 1024 * MIB;
  const pool = randomBytes(64 * MIB);
  let files = 0;
  let bytes = 0;
  const put = async (rel: string, size: number) => {
    await mkdir(join(tree, rel, '..'), { recursive: true });
    const at = (files * 4099) % (pool.length - size + 1);
    await writeFile(join(tree, rel), pool.subarray(at, at + size));
    files += 1;
    bytes += size;
  };
  for (let i = 0; bytes < total / 4; i++) await put(`large/blob-${i}.bin`, 64 * MIB);
  for (let i = 0; bytes < total / 2; i++) await put(`medium/${i % 16}/file ${i}.dat`, MIB);
  const odd = ['with space', 'new\nline', 'back\\slash'];
  for (let i = 0; bytes < total; i++) await put(`small/${i % 64}/${odd[i % 50] ?? 'f'}-${i}.txt`, 1024 * (1 + ((i * 37) % 63)));
  return { files, bytes };
}

async function shell(cwd: string, script: string): Promise<number> {
  const t = performance.now();
  await execa('sh', ['-c', script], { cwd });
  return (performance.now() - t) / 1000;
}

async function best(runs: number, measure: () => Promise<number>): Promise<number> {
  let min = Infinity;
  for (let i = 0; i < runs; i++) min = Math.min(min, await measure());
  return min;
}

/** One measurement in a fresh process whose heap first takes `heapMb` of live objects. */
async function child(root: string, mode: ChildMode, heapMb: number): Promise<{ seconds: number; hashed: number; reused: number; liveHeapMb: number }> {
  const self = fileURLToPath(import.meta.url);
  const res = await execa(process.execPath, ['--import', 'tsx', self, '--child', mode, root, String(heapMb)], { cwd: resolve(self, '../..') });
  return JSON.parse(res.stdout.trim().split('\n').at(-1)!) as { seconds: number; hashed: number; reused: number; liveHeapMb: number };
}

/** Kept alive for the whole measurement, like the state of a long-running worker. */
const ballast: unknown[] = [];

function holdLiveHeap(mb: number): void {
  const start = process.memoryUsage().heapUsed;
  while (process.memoryUsage().heapUsed - start < mb * MIB) {
    const batch: unknown[] = [];
    for (let i = 0; i < 50_000; i++) batch.push({ id: i, name: `object-${i}`, tags: [i, `t${i}`] });
    ballast.push(batch);
  }
}

async function runChild(mode: ChildMode, root: string, heapMb: number): Promise<void> {
  holdLiveHeap(heapMb);
  // Threads, as finalize hashes (in its task process, snapshot/finalize-apart.ts); the worker's own hashing (the
  // archive's one file) goes to processes instead (hashInProcesses).
  const tree = join(root, SNAPSHOT);
  const t = performance.now();
  let hashed = 0;
  let reused = 0;
  if (mode === 'lifeboat') ({ hashed, reused } = await buildManifest(tree));
  if (mode === 'streams') hashed = await hashWithStreams(tree);
  if (mode === 'reuse') {
    // As finalizeSnapshot does it: read the cache, list, reuse, write the manifest and the cache again.
    const { cache } = await loadHashCache(root, PLAN);
    const built = await hashManifest(tree, await listFiles(tree), cache ? { reuse: cache.entries } : {});
    await writeFile(join(root, 'manifest.sha256'), built.text);
    await writeHashCache(root, PLAN, SNAPSHOT, built);
    ({ hashed, reused } = built);
  }
  const seconds = (performance.now() - t) / 1000;
  console.log(JSON.stringify({ seconds, hashed, reused, liveHeapMb: Math.round(process.memoryUsage().heapUsed / MIB) }));
}

/** What finalize did before: each file streamed through createHash on the main thread, one after the other. */
async function hashWithStreams(tree: string): Promise<number> {
  const { files } = await listFiles(tree);
  for (const f of files) {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(join(tree, f.path), { highWaterMark: MIB }) as AsyncIterable<Buffer>) hash.update(chunk);
    hash.digest('hex');
  }
  return files.length;
}

function printTable(r: BenchHashResult, runs: number): void {
  const mib = r.bytes / MIB;
  const row = (name: string, s: number, note = '') => console.log(`${name.padEnd(62)}${s.toFixed(2).padStart(8)}${(s > 0 ? (mib / s).toFixed(0) : '-').padStart(9)}${(s / r.seconds.sha256sum).toFixed(2).padStart(8)}×  ${note}`);
  console.log(`tree: ${(mib / 1024).toFixed(2)} GiB in ${r.files} files; ${r.cores} cores; page cache warm; best of ${runs}; heap in use by (b): ${r.heapUsedMb} MB`);
  console.log(`${'measurement'.padEnd(62)}${'seconds'.padStart(8)}${'MiB/s'.padStart(9)}${'vs (a)'.padStart(9)}`);
  row('(a) sha256sum over the tree, one process', r.seconds.sha256sum);
  row(`(a) sha256sum, xargs -P${r.cores}`, r.seconds.sha256sumParallel);
  row(`(b) lifeboat buildManifest, ${r.heapMb} MB live heap`, r.seconds.lifeboat, `goal ≤ 1.2×: ${r.ratio <= 1.2 ? 'met' : 'NOT met'}`);
  row(`    before: streams on the main thread, ${r.heapMb} MB live heap`, r.seconds.streamsOnMainThread);
  row(`(c) unchanged re-finalize (reuse), ${r.heapMb} MB live heap`, r.seconds.reuse, `${r.reuse.reused} reused, ${r.reuse.hashed} hashed: ${((r.seconds.reuse / r.files) * 1e6).toFixed(0)} µs per file`);
}

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && Number(process.argv[i + 1]) > 0 ? Number(process.argv[i + 1]) : dflt;
};

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const childAt = process.argv.indexOf('--child');
  const run = childAt > 0
    ? runChild(process.argv[childAt + 1] as ChildMode, process.argv[childAt + 2]!, Number(process.argv[childAt + 3]))
    : benchHash({ gib: arg('gib', 1), runs: arg('runs', 3), heapMb: arg('heap-mb', 350) }).then(() => undefined);
  run.catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
