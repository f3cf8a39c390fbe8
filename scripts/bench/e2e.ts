// The whole job, four (or five) ways, on the same generated workload, interleaved:
//   per round: reset every method (fresh mirror and storage, untimed), then
//     first backup → unchanged re-backup → [1 % of files + 1000 rows changed] → backup → full restore → one small artifact
//     (db + files to a new place, checked against the source afterwards, untimed) → 20 tiny hosts (fresh) backup;
//   each step runs every method back to back, in an order rotated per round (A B C, B C A, C A B …);
//   then (--days) a week of daily runs into a fresh repository for the deduplicating methods: what it occupies.
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { parseConfig } from '../../src/config/load';
import { resticVariant, s3Variant, startLifeboat } from './lifeboat';
import { allRuns, MiB, Results, summary, type Scenario } from './report';
import { resticMethod, resticVersion } from './restic';
import { shellMethod } from './shell';
import { bucketBytes, startStack, TreeSampler, type Method, type Stack, type Workset } from './stack';
import { changeDatabase, changeTree, databaseFingerprint, psql, treeFingerprint } from './workload';

export interface E2eOptions {
  mibPerHost: number;
  dbMib: number;
  runs: number;
  tinyHosts: number;
  keep?: boolean;
  /** Method ids to run (default: all). */
  methods?: string[];
  /** Log each Lifeboat backup's activity times (from its history). */
  steps?: boolean;
  /** Daily runs (1 % change a day) into a fresh repository, for what a week occupies (0: left out). */
  days?: number;
  log: (line: string) => void;
}

/** "Lifeboat (restic storage)" runs when src/config/schema.ts knows a `type: restic` storage (checked by validating one). */
function resticStorageSupported(stack: Stack, log: (l: string) => void): boolean {
  const v = resticVariant(stack, 'probe');
  try {
    parseConfig(JSON.stringify({ backupRoot: '/tmp/x', storages: { r: v.storages.main.config }, plans: { p: { storages: ['r'], sources: [{ name: 's', host: 'local', artifacts: [{ type: 'files', name: 'f', paths: ['/tmp'] }] }] } } }));
    return true;
  } catch (err) {
    log(`no usable \`type: restic\` storage in src/config/schema.ts: column "lifeboat (restic storage)" left out (${(err as Error).message.split('\n').slice(1, 3).join('; ').trim()})`);
    return false;
  }
}

export async function e2eBench(o: E2eOptions): Promise<{ lines: string[]; problems: string[] }> {
  const log = o.log;
  const stack = await startStack({ mibPerHost: o.mibPerHost, dbMib: o.dbMib, tinyHosts: o.tinyHosts, keep: o.keep, log });
  const problems: string[] = [];

  const variants = [s3Variant(stack, await stack.bucket('bench-lifeboat'))];
  if (resticStorageSupported(stack, log)) variants.push(resticVariant(stack, await stack.bucket('bench-lifeboat-restic')));
  variants.push(s3Variant(stack, await stack.bucket('bench-lifeboat-media'), true));
  const lifeboat = await startLifeboat(stack, variants, log, { steps: o.steps });
  const all: Method[] = [await shellMethod(stack), await resticMethod(stack), ...lifeboat.methods];
  const unknown = o.methods?.filter((id) => !all.some((m) => m.id === id)) ?? [];
  if (unknown.length) throw new Error(`--methods: unknown ${unknown.join(', ')} (known: ${all.map((m) => m.id).join(', ')})`);
  const methods = o.methods ? all.filter((m) => o.methods!.includes(m.id)) : all;

  const scenarios: Scenario[] = [
    { id: 'first', label: 'first backup', uploads: true },
    { id: 'unchanged', label: 'unchanged re-backup', uploads: true },
    { id: 'changed', label: '1 % files + 1000 rows changed', uploads: true },
    { id: 'restore', label: 'full restore (db + files, new place)', uploads: false },
    { id: 'small', label: 'restore one small artifact (6 files)', uploads: false },
    { id: 'tiny', label: `${o.tinyHosts} tiny hosts, first backup`, uploads: true },
  ];
  const results = new Results();

  const backup = async (sc: string, m: Method, set: Workset, round: number) => {
    const before = await bucketBytes(stack.s3, m.bucket);
    const sampler = sc === 'first' ? new TreeSampler() : undefined;
    let r;
    let treeRss: number | undefined;
    try {
      r = await m.backup(set, round, sampler);
    } finally {
      treeRss = sampler?.stop();
    }
    const uploaded = (await bucketBytes(stack.s3, m.bucket)) - before;
    results.add(sc, m.id, { seconds: r.seconds, uploaded, treeRss, vmHwm: r.vmHwm, dataAddedPacked: r.dataAddedPacked });
    const mem = treeRss === undefined ? '' : `  peak RSS ${(treeRss / MiB).toFixed(0)} MiB${r.vmHwm ? ` (worker VmHWM ${(r.vmHwm / MiB).toFixed(0)} MiB)` : ''}`;
    log(`  ${sc.padEnd(9)} ${m.label.padEnd(9)} ${r.seconds.toFixed(2).padStart(7)} s  ${(uploaded / MiB).toFixed(1).padStart(7)} MiB up${mem}${r.note ? `  (${r.note})` : ''}`);
  };

  const restoreRoot = join(stack.root, 'restore');
  const restore = async (m: Method, round: number, expected: { trees: string[]; db: string }, content: boolean) => {
    const toDir = join(restoreRoot, `${m.id}-${round}`);
    const toDb = `${stack.main.db}_r_${m.id.replace(/\W/g, '_')}_${round}`;
    try {
      const r = await m.restore(round, toDir, toDb);
      results.add('restore', m.id, { seconds: r.seconds });
      log(`  restore   ${m.label.padEnd(9)} ${r.seconds.toFixed(2).padStart(7)} s`);
      // Untimed: what came back must be what the source holds (and no cache/).
      for (const [i, h] of stack.main.hosts.entries()) {
        const got = join(toDir, h.tree);
        if (existsSync(join(got, 'cache'))) problems.push(`${m.label} round ${round}: ${h.name}'s cache/ was restored (not excluded)`);
        const fp = await treeFingerprint(got, content);
        if (fp !== expected.trees[i]) problems.push(`${m.label} round ${round}: ${h.name} restored as ${fp}, source is ${expected.trees[i]}`);
      }
      const dbfp = await databaseFingerprint(toDb);
      if (dbfp !== expected.db) problems.push(`${m.label} round ${round}: database restored as ${dbfp}, source is ${expected.db}`);
    } finally {
      await rm(toDir, { recursive: true, force: true });
      await psql(`DROP DATABASE IF EXISTS ${toDb} WITH (FORCE)`);
    }
  };

  // The first host's etc/ alone, from the same latest backup; checked byte for byte (it is tiny).
  const restoreSmall = async (m: Method, round: number, expected: string) => {
    const toDir = join(restoreRoot, `${m.id}-small-${round}`);
    try {
      const r = await m.restoreSmall(round, toDir);
      results.add('small', m.id, { seconds: r.seconds });
      log(`  small     ${m.label.padEnd(9)} ${r.seconds.toFixed(2).padStart(7)} s`);
      const got = await treeFingerprint(join(toDir, stack.main.hosts[0]!.tree, 'etc'), true);
      if (got !== expected) problems.push(`${m.label} round ${round}: etc/ restored as ${got}, source is ${expected}`);
    } finally {
      await rm(toDir, { recursive: true, force: true });
    }
  };

  for (let round = 0; round < o.runs; round++) {
    const order = methods.map((_, i) => methods[(i + round) % methods.length]!);
    log(`round ${round + 1}/${o.runs} (order: ${order.map((m) => m.label).join(', ')})`);
    for (const m of methods) await m.reset('main', round);
    for (const m of order) await backup('first', m, 'main', round);
    for (const m of order) await backup('unchanged', m, 'main', round);
    const changed = await changeMainSet(stack, round + 1);
    log(`  (changed ${changed} files and 1000 rows)`);
    for (const m of order) await backup('changed', m, 'main', round);
    // Whole-content comparison in the first round; names and sizes after that (cheaper, still catches a bad restore).
    const content = round === 0;
    const expected = { trees: await Promise.all(stack.main.hosts.map((h) => treeFingerprint(h.tree, content))), db: await databaseFingerprint(stack.main.db) };
    for (const m of order) await restore(m, round, expected, content);
    const etc = await treeFingerprint(join(stack.main.hosts[0]!.tree, 'etc'), true);
    for (const m of order) await restoreSmall(m, round, etc);
    for (const m of methods) await m.reset('tiny', round);
    for (const m of order) await backup('tiny', m, 'tiny', round);
  }

  const occupancy = o.days && o.days > 1 ? await week(stack, methods.filter((m) => DEDUP_METHODS.includes(m.id)), o.days, o.runs, log) : [];

  await lifeboat.close();
  const dump = join(stack.root, 'shell/main/stage/db.sql');
  // The shell method's staged dump tells its size; without that method, nothing here does.
  const dumpSize = existsSync(dump) ? `${(Number((await execa('stat', ['-c', '%s', dump])).stdout) / MiB).toFixed(0)} MiB` : 'size not measured without the shell method';
  const lines = [
    `workload: ${stack.main.trees.length} OpenSSH hosts × ${(stack.main.trees[0]!.bytes / MiB).toFixed(0)} MiB (${stack.main.trees[0]!.files.length} files each; +${(stack.main.trees[0]!.cacheBytes / MiB).toFixed(0)} MiB cache/ excluded), ` +
      `PostgreSQL ${stack.main.rows} rows (plain dump ${dumpSize}), ${o.tinyHosts} tiny hosts × ${(stack.tiny.trees[0]!.bytes / 1024).toFixed(1)} KiB; MinIO on 127.0.0.1`,
    `restic: ${await resticVersion()}`,
    ...summary(results, scenarios, methods, o.runs),
    '',
    'every run (seconds, in round order):',
    ...allRuns(results, scenarios, methods),
    ...occupancy,
  ];
  return { lines, problems };
}

/** Change `n` of the main set: 1 % of each tree's files (seeded as the trees were written) and 1000 rows; files changed. */
async function changeMainSet(stack: Stack, n: number): Promise<number> {
  let changed = 0;
  for (const [i, t] of stack.main.trees.entries()) changed += await changeTree(t, `lifeboat-bench:${stack.main.hosts[i]!.name}`, n);
  await changeDatabase(stack.main.db, stack.main.rows, n);
  return changed;
}

/** The methods whose storage deduplicates: only for them is a week of daily runs worth measuring. */
const DEDUP_METHODS = ['restic', 'lifeboat-restic'];

/**
 * `days` daily backups of the main set into a fresh repository, each day after 1 % of the files and 1000 rows
 * changed (other files and rows than the rounds'): what the repository holds after the last day against after the
 * first (one full copy, as stored: compressed and deduplicated). Nothing is forgotten (the plans keep everything).
 */
async function week(stack: Stack, methods: Method[], days: number, round: number, log: (l: string) => void): Promise<string[]> {
  if (!methods.length) return [];
  log(`${days} daily runs with 1 % change a day (${methods.map((m) => m.label).join(', ')})`);
  const start = new Map<string, number>();
  const first = new Map<string, number>();
  for (const m of methods) {
    await m.reset('main', round);
    start.set(m.id, await bucketBytes(stack.s3, m.bucket));
  }
  for (let day = 1; day <= days; day++) {
    if (day > 1) await changeMainSet(stack, 1000 + day);
    for (const m of methods) {
      const r = await m.backup('main', round);
      const held = (await bucketBytes(stack.s3, m.bucket)) - start.get(m.id)!;
      if (day === 1) first.set(m.id, held);
      log(`  day ${day}  ${m.label.padEnd(9)} ${r.seconds.toFixed(2).padStart(7)} s  repository ${(held / MiB).toFixed(1)} MiB`);
    }
  }
  const source = stack.main.trees.reduce((n, t) => n + t.bytes, 0);
  const lines = ['', `${days} daily runs, 1 % of files + 1000 rows changed a day, fresh repository (source: ${(source / MiB).toFixed(0)} MiB of files + the database):`];
  for (const m of methods) {
    const held = (await bucketBytes(stack.s3, m.bucket)) - start.get(m.id)!;
    const one = first.get(m.id)!;
    lines.push(`  ${m.label.padEnd(9)} after day 1 ${(one / MiB).toFixed(1)} MiB, after day ${days} ${(held / MiB).toFixed(1)} MiB: ${(held / one).toFixed(2)}× one full copy`);
  }
  // Why a day adds more than 1 %: the 1000 updated rows are spread over the table, more than one per restic chunk
  // (about 1 MiB) of the plain dump, so each day's dump is new data to any chunking deduplicator.
  lines.push(`  (the plain dump alone, zstd -3: ${await dumpCompressed(stack.main.db)}; its changed rows are spread over the table, so every chunk of it is new each day)`);
  return lines;
}

/** The database's plain dump through `zstd -3`, counted by `wc -c` (streamed: nothing buffered here). */
async function dumpCompressed(db: string): Promise<string> {
  try {
    const dump = await execa('pg_dump', ['-h', '127.0.0.1', '-U', 'postgres', '-d', db], { buffer: false })
      .pipe('zstd', ['-3', '-T0', '-c'], { buffer: false })
      .pipe('wc', ['-c']);
    return `${(Number(dump.stdout.trim()) / MiB).toFixed(1)} MiB`;
  } catch (err) {
    return `not measured (${(err as Error).message.split('\n')[0]})`; // a side figure: never worth the run's table
  }
}
