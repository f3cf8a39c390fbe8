// Database files in a restic repository as a base and a zstd patch (src/storage/restic-deltas.ts): real restic, a
// local-path repository, real zstd. The snapshot directories are made here as the finalize step leaves them.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, link, lstat, mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SnapshotRecord } from '../../src/shared/types';
import { LifeboatError } from '../../src/shared/errors';
import { resticDeltaDir } from '../../src/snapshot/layout';
import { buildManifest } from '../../src/snapshot/manifest';
import { openStorage } from '../../src/storage';
import { isRestic, type ResticBackend } from '../../src/storage/restic';
import { applyDeltas, deltaPatterns, dropUnusedDeltaDirs } from '../../src/storage/restic-deltas';
import { findRestic } from '../../src/storage/restic-run';
import { uploadToRestic, type ResticUploadResult } from '../../src/storage/restic-upload';
import { tempDir } from '../support/fixtures';

const root = await tempDir('restic-deltas');
const backups = join(root, 'backups');
const password = randomBytes(8).toString('hex');
const cfg = (repo: string, deltaMaxMiB = 1024) => ({ type: 'restic' as const, repository: join(root, repo), password: { file: join(root, 'password') }, env: {}, init: true, checkReadDataPercent: 5, deltaMaxMiB });
const bases = join(resticDeltaDir(backups, 'repo', 'p'), 'bases');
const MiB = 1024 * 1024;

beforeAll(async () => {
  await writeFile(join(root, 'password'), `${password}\n`, { mode: 0o600 });
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A plain dump's COPY rows: `rows` lines of about 55 bytes, row `i` seeded by `i` and its version. */
function dumpText(rows: number, version: (i: number) => number = () => 0): string {
  const lines = ['COPY public.orders (id, customer, total, note) FROM stdin;'];
  for (let i = 1; i <= rows; i++) {
    const h = createHash('sha256').update(`${i}:${version(i)}`).digest('hex');
    lines.push(`${i}\tcustomer ${h.slice(0, 8)}\t${parseInt(h.slice(8, 14), 16) / 100}\t${h.slice(14, 40)}`);
  }
  return `${lines.join('\n')}\n\\.\n`;
}

/** A finalized snapshot directory of plan p holding `database/orders.sql` (given, a hard link of `linkFrom`, or none). */
async function snapshotDir(snapshot: string, dump?: string | { linkFrom: string }): Promise<{ dir: string; record: SnapshotRecord }> {
  const dir = join(backups, snapshot);
  await mkdir(join(dir, 'database'), { recursive: true, mode: 0o700 });
  await writeFile(join(dir, 'metadata.yml'), 'plan: p\n');
  const file = join(dir, 'database', 'orders.sql');
  if (typeof dump === 'string') {
    await writeFile(file, dump, { mode: 0o640 });
    await utimes(file, new Date('2026-12-01T02:30:00Z'), new Date('2026-12-01T02:30:00.123Z'));
  } else if (dump) await link(dump.linkFrom, file);
  const m = await buildManifest(dir);
  await writeFile(join(dir, 'manifest.sha256'), m.text);
  const sha = createHash('sha256').update(m.text).digest('hex');
  const record: SnapshotRecord = {
    success: true, status: 'Completed', snapshot, plan: 'p', tier: 'daily', created_at: `${snapshot.slice(2, 6)}-${snapshot.slice(6, 8)}-${snapshot.slice(8, 10)}T00:00:00Z`, format: 'tar.zst',
    size_bytes: 0, checksum_sha256: sha, manifest: { sha256: sha, files: m.entries.length, bytes: m.entries.reduce((n, e) => n + e.size, 0) }, artifacts: [],
  };
  return { dir, record };
}

async function backend(repo = 'repo', deltaMaxMiB = 1024): Promise<ResticBackend> {
  const b = await openStorage(repo, cfg(repo, deltaMaxMiB));
  if (!isRestic(b)) throw new Error('not restic');
  await b.check();
  return b;
}

const upload = async (b: ResticBackend, s: { dir: string; record: SnapshotRecord }, opts: { maxBytes?: number; fresh?: boolean; storage?: string } = {}): Promise<ResticUploadResult> =>
  uploadToRestic(b, { storage: opts.storage ?? 'repo', dir: s.dir, record: s.record, fresh: opts.fresh ?? true, deltas: { dir: resticDeltaDir(backups, opts.storage ?? 'repo', 'p'), maxBytes: opts.maxBytes ?? 1024 * MiB } });

async function lsPaths(repo: string, id: string): Promise<string[]> {
  const ls = await execa(findRestic(), ['ls', '--json', '--no-lock', id], { env: { RESTIC_REPOSITORY: join(root, repo), RESTIC_PASSWORD: password } });
  return ls.stdout.split('\n').flatMap((l) => (l.includes('"struct_type":"node"') ? [(JSON.parse(l) as { path: string }).path] : [])).sort();
}

/** `restic restore` of one data snapshot, then the pairs applied, as a restore from the storage does. */
async function restoreTree(b: ResticBackend, id: string, snapshot: string, include?: string[]): Promise<string> {
  const target = join(root, `restored-${snapshot}-${randomBytes(3).toString('hex')}`);
  await b.restore({ id, snapshot }, target, include ? { include } : {});
  await applyDeltas(target);
  return target;
}

const ROWS = 60_000; // a 3.5 MiB dump
const day1 = dumpText(ROWS);
const changed = new Set(Array.from({ length: 100 }, (_, k) => 1 + k * 599)); // 100 rows spread over the whole table
const day2 = dumpText(ROWS, (i) => (changed.has(i) ? 1 : 0));
const third = (i: number) => (i % 3 === 0 ? 2 : 0); // every third row changed: a patch over a tenth of the dump

describe('database files in a restic repository as base and patch', () => {
  let b: ResticBackend;
  let second: ResticUploadResult;

  it('a day with 100 changed rows spread over the dump adds a patch of kilobytes; the repository holds base and patch', async () => {
    b = await backend();
    const s1 = await snapshotDir('p-20261201T000000', day1);
    const first = await upload(b, s1);
    const s2 = await snapshotDir('p-20261202T000000', day2);
    second = await upload(b, s2);
    const added = { first: first.restic.data_added_packed!, second: second.restic.data_added_packed! };
    console.log(`restic data_added_packed: first ${added.first} B, 100 rows changed ${added.second} B (dump ${day2.length} B)`);
    expect(added.first).toBeGreaterThan(day1.length / 4); // the first holds the whole dump (compressed by restic)
    expect(added.second).toBeLessThan(64 * 1024);
    // Without the patch, restic stores the changed dump again (its chunks all differ): the same two days, whole.
    const whole = await backend('whole', 0);
    await upload(whole, s1, { maxBytes: 0, storage: 'whole' });
    const wholeSecond = await upload(whole, s2, { maxBytes: 0, storage: 'whole' });
    expect(wholeSecond.restic.data_added_packed!).toBeGreaterThan(added.first / 2);
    expect(await lsPaths('whole', wholeSecond.restic.snapshot_id)).toContain('/database/orders.sql');

    const paths = await lsPaths('repo', second.restic.snapshot_id);
    expect(paths).toEqual(expect.arrayContaining(['/database/orders.sql.lbbase', '/database/orders.sql.lbpatch', '/manifest.sha256', '/metadata.yml', '/p-20261202T000000.json']));
    expect((await readdir(s2.dir)).sort()).toEqual(['database', 'manifest.sha256', 'metadata.yml']); // the record went into the view only
    expect(paths).not.toContain('/database/orders.sql');
    // The base is the first day's dump, kept on the backup host as a hard link; the view restic read is gone.
    expect((await stat(join(bases, 'orders.sql'))).ino).toBe((await stat(join(backups, 'p-20261201T000000', 'database', 'orders.sql'))).ino);
    expect(await readdir(join(resticDeltaDir(backups, 'repo', 'p'), 'views'))).toEqual([]);
  });

  it('a restore gives the dump back byte for byte, with its mode and mtime', async () => {
    const target = await restoreTree(b, second.restic.snapshot_id, 'p-20261202T000000');
    expect(await readFile(join(target, 'database', 'orders.sql'), 'utf8')).toBe(day2);
    expect((await readdir(join(target, 'database'))).sort()).toEqual(['orders.sql']);
    const st = await stat(join(target, 'database', 'orders.sql'));
    expect(st.mode & 0o777).toBe(0o640);
    expect(st.mtime.toISOString()).toBe('2026-12-01T02:30:00.123Z');
    // A selection of the dump alone brings its pair along (the patterns a restore adds, as fetch.ts adds them).
    const include = ['database/orders.sql'].flatMap((p) => [p, ...deltaPatterns(p)]).map((p) => `/${p}`);
    expect(include).toHaveLength(3);
    const only = await restoreTree(b, second.restic.snapshot_id, 'p-20261202T000000', include);
    expect(await readFile(join(only, 'database', 'orders.sql'), 'utf8')).toBe(day2);
  });

  it('an unchanged dump (the same inode) reuses its patch: restic reads nothing new', async () => {
    const patch = join(bases, 'orders.sql.patch');
    const before = await stat(patch);
    const s3 = await snapshotDir('p-20261203T000000', { linkFrom: join(backups, 'p-20261202T000000', 'database', 'orders.sql') });
    const third = await upload(b, s3);
    expect((await stat(patch)).ino).toBe(before.ino);
    expect(third.restic.files_new! + third.restic.files_changed!).toBeLessThanOrEqual(3); // metadata, manifest, record
    expect(third.restic.data_added_packed!).toBeLessThan(8 * 1024);
  });

  it('a patch over a tenth of its dump makes the dump the next base', async () => {
    const s4 = await snapshotDir('p-20261204T000000', dumpText(ROWS, third));
    const fourth = await upload(b, s4);
    expect((await stat(join(bases, 'orders.sql'))).ino).toBe((await stat(join(s4.dir, 'database', 'orders.sql'))).ino);
    expect((await stat(join(bases, 'orders.sql.patch'))).size).toBeLessThan(4096);
    const target = await restoreTree(b, fourth.restic.snapshot_id, 'p-20261204T000000');
    expect((await readFile(join(target, 'database', 'orders.sql'))).equals(await readFile(join(s4.dir, 'database', 'orders.sql')))).toBe(true);
    // The second day's snapshot carries its own base: a new base changes nothing for it.
    expect(await readFile(join(await restoreTree(b, second.restic.snapshot_id, 'p-20261202T000000'), 'database', 'orders.sql'), 'utf8')).toBe(day2);
  });

  it('a base over twice its dump (the database shrank) gives way to the dump', async () => {
    const small = dumpText(24_000, third); // the base's first 1.4 MiB: a tiny patch, but a base over twice the dump
    const s = await snapshotDir('p-20261204T120000', small);
    const r = await upload(b, s);
    expect((await stat(join(bases, 'orders.sql'))).ino).toBe((await stat(join(s.dir, 'database', 'orders.sql'))).ino);
    expect(await readFile(join(await restoreTree(b, r.restic.snapshot_id, 'p-20261204T120000'), 'database', 'orders.sql'), 'utf8')).toBe(small);
  });

  it('a patch that fails against an older base (out of memory, say) is made against the dump instead', async () => {
    const bin = join(root, 'failing-zstd');
    const mark = join(root, 'fail-next-patch');
    await mkdir(bin, { recursive: true });
    const real = (await execa('sh', ['-c', 'command -v zstd'])).stdout.trim();
    // Fails the next compression (the one with --stream-size) once, as zstd does when it cannot allocate.
    await writeFile(join(bin, 'zstd'), `#!/bin/sh\ncase "$*" in *--stream-size*) if [ -e '${mark}' ]; then rm -f '${mark}'; echo 'zstd: error 11 : Allocation error : not enough memory' >&2; exit 11; fi ;; esac\nexec '${real}' "$@"\n`, { mode: 0o755 });
    await writeFile(mark, '');
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    try {
      const s = await snapshotDir('p-20261204T140000', dumpText(24_000, (i) => (i % 500 === 0 ? 3 : 2 * Number(i % 3 === 0))));
      const r = await upload(b, s);
      await expect(lstat(mark)).rejects.toMatchObject({ code: 'ENOENT' }); // the failure happened
      expect((await stat(join(bases, 'orders.sql'))).ino).toBe((await stat(join(s.dir, 'database', 'orders.sql'))).ino);
      expect((await readFile(join(await restoreTree(b, r.restic.snapshot_id, 'p-20261204T140000'), 'database', 'orders.sql'))).equals(await readFile(join(s.dir, 'database', 'orders.sql')))).toBe(true);
    } finally {
      process.env.PATH = path;
    }
  });

  it('zstd older than 1.4.5 (no --patch-from) is MissingTool, on upload and on restore', async () => {
    const bin = join(root, 'old-zstd');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'zstd'), '#!/bin/sh\necho "*** zstd command line interface 64-bits v1.4.4, by Yann Collet ***"\n', { mode: 0o755 });
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    try {
      const s = await snapshotDir('p-20261204T130000', day2);
      await expect(upload(b, s)).rejects.toMatchObject({ code: 'MissingTool', message: expect.stringContaining('zstd 1.4.5 or later') });
      const tree = join(root, 'old-zstd-tree');
      await mkdir(join(tree, 'database'), { recursive: true });
      await writeFile(join(tree, 'database', 'orders.sql.lbbase'), day1);
      await writeFile(join(tree, 'database', 'orders.sql.lbpatch'), 'not read');
      await expect(applyDeltas(tree)).rejects.toMatchObject({ code: 'MissingTool' });
      await expect(applyDeltas(join(root, 'no-such-tree'))).resolves.toBe(0); // no pair: no zstd needed
    } finally {
      process.env.PATH = path;
    }
  });

  it('a retried upload keeps the data snapshot an earlier attempt finished (its pairs counted)', async () => {
    const s5 = await snapshotDir('p-20261205T000000', day1);
    const first = await upload(b, s5);
    const again = await upload(b, s5, { fresh: false });
    expect(again).toMatchObject({ already_present: true, key: first.restic.snapshot_id });
    expect((await b.dataSnapshots({ plan: 'p', snapshot: 'p-20261205T000000' })).map((s) => s.id)).toEqual([first.restic.snapshot_id]);
  });

  it('a second storage on the same repository without patches keeps the snapshot the first made (counted by its tag)', async () => {
    const s5 = { dir: join(backups, 'p-20261205T000000'), record: (await b.getJson<SnapshotRecord>('p/p-20261205T000000.json'))! };
    const [made] = await b.dataSnapshots({ plan: 'p', snapshot: 'p-20261205T000000' });
    expect(made!.tags).toContainEqual(expect.stringMatching(/^deltas=1:-?\d+$/));
    const other = await upload(await backend(), { dir: s5.dir, record: { ...s5.record } }, { maxBytes: 0, storage: 'other', fresh: false });
    expect(other).toMatchObject({ already_present: true, key: made!.id });
    expect((await b.dataSnapshots({ plan: 'p', snapshot: 'p-20261205T000000' })).map((x) => x.id)).toEqual([made!.id]);
  });

  it('a cached patch that is not the file its state names, or a dump whose mode changed, gets a new patch', async () => {
    const patch = join(bases, 'orders.sql.patch');
    const good = await readFile(patch);
    // The same bytes under another inode (a torn write replaced, say): the state's identity no longer holds.
    await writeFile(`${patch}.x`, Buffer.alloc(good.length));
    await rename(`${patch}.x`, patch);
    const s7 = await snapshotDir('p-20261207T000000', { linkFrom: join(backups, 'p-20261205T000000', 'database', 'orders.sql') });
    const seventh = await upload(b, s7);
    expect((await readFile(patch)).equals(good)).toBe(true); // made again
    expect(await readFile(join(await restoreTree(b, seventh.restic.snapshot_id, 'p-20261207T000000'), 'database', 'orders.sql'), 'utf8')).toBe(day1);
    const before = (await stat(patch)).ino;
    await chmod(join(s7.dir, 'database', 'orders.sql'), 0o600);
    const s8 = await snapshotDir('p-20261208T000000', { linkFrom: join(s7.dir, 'database', 'orders.sql') });
    const eighth = await upload(b, s8);
    expect((await stat(patch)).ino).not.toBe(before);
    expect((await stat(join(await restoreTree(b, eighth.restic.snapshot_id, 'p-20261208T000000'), 'database', 'orders.sql'))).mode & 0o777).toBe(0o600);
  });

  it('a dump the snapshot no longer holds drops its base', async () => {
    expect((await readdir(bases)).length).toBeGreaterThan(0);
    await upload(b, await snapshotDir('p-20261209T000000'));
    expect(await readdir(bases)).toEqual([]);
  });

  it('after a run, a plan drops the delta directories of storages it no longer patches for, never another plan\'s', async () => {
    const root2 = join(root, 'deltas-root');
    for (const dir of ['gone/p/bases', 'gone/q/bases', 'kept/p/bases']) await mkdir(join(root2, dir), { recursive: true });
    await dropUnusedDeltaDirs(root2, 'p', new Set(['kept']));
    expect(await readdir(join(root2, 'gone'))).toEqual(['q']);
    expect(await readdir(join(root2, 'kept'))).toEqual(['p']);
  });

  it('a damaged patch or a patch without its base fails the restore as IntegrityCheckFailed', async () => {
    const tree = join(root, 'damaged');
    await mkdir(join(tree, 'database'), { recursive: true });
    await writeFile(join(tree, 'database', 'orders.sql.lbbase'), day1);
    await writeFile(join(root, 'day2.sql'), day2);
    await execa('zstd', ['-q', `--patch-from=${join(tree, 'database', 'orders.sql.lbbase')}`, '-o', join(tree, 'database', 'orders.sql.lbpatch'), join(root, 'day2.sql')]);
    const patch = await readFile(join(tree, 'database', 'orders.sql.lbpatch'));
    patch[Math.floor(patch.length / 2)]! ^= 0xff;
    await writeFile(join(tree, 'database', 'orders.sql.lbpatch'), patch);
    const err = await applyDeltas(tree).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LifeboatError);
    expect(err).toMatchObject({ code: 'IntegrityCheckFailed' });
    expect(await lstat(join(tree, 'database', 'orders.sql')).catch(() => null)).toBeNull();
    // Without zstd on the restoring host the snapshot is not called damaged: the tool is missing.
    const path = process.env.PATH;
    process.env.PATH = join(root, 'no-such-bin');
    try {
      await expect(applyDeltas(tree)).rejects.toMatchObject({ code: 'MissingTool' });
    } finally {
      process.env.PATH = path;
    }
    await rm(join(tree, 'database', 'orders.sql.lbbase'));
    await expect(applyDeltas(tree)).rejects.toMatchObject({ code: 'IntegrityCheckFailed' });
  });
});
