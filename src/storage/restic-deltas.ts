// Database files in a restic repository as a base and a zstd patch against it. A day's dump differs from the day
// before in rows spread over the whole file, more than one per restic chunk (about 1 MiB), so restic would store
// every dump whole again. Instead each snapshot holds `database/<name>.lbbase` (a dump kept on the backup host,
// the same bytes from run to run: restic stores it once) and `database/<name>.lbpatch` (`zstd --patch-from` of
// today's dump against it: a few KB per thousand changed rows). Every snapshot carries its own base, so no snapshot
// depends on another and retention forgets any of them freely. A restore turns the pair back into the dump before
// the manifest check, which then proves it byte for byte.
//
// Only the restic upload sees this: the local snapshot directory, archives and the manifest keep the dump itself.
// restic backs up a view: `cp -al` of the snapshot directory (hard links: nothing copied, the same inodes, so
// restic's parent comparison still skips unchanged files) with the dumps replaced by their pairs.
import { chmod, link, lstat, mkdir, open, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import type { Storage } from '../config/schema';
import { LifeboatError } from '../shared/errors';
import { fileIdentity } from '../snapshot/manifest';
import { fsyncFile, isRegularFile } from '../shared/files';

export const BASE_SUFFIX = '.lbbase';
export const PATCH_SUFFIX = '.lbpatch';
/** Smaller files are a chunk or two to restic anyway. */
export const DELTA_MIN_BYTES = 1024 * 1024;
/** A patch above this share of its dump makes the dump the next base (a patch holds every change since its base). */
const REBASE_FRACTION = 0.1;

export interface DeltaView {
  /** What restic backs up instead of the snapshot directory. */
  dir: string;
  /** Pairs in the view: each replaces one dump, so the view holds this many files more than the snapshot. */
  pairs: number;
  /** Bytes the view holds beyond the snapshot directory. */
  extraBytes: number;
  /** Drops the view (the bases stay for the next run). */
  remove(): Promise<void>;
}

/** What a cached patch was made from and is: dump, base and patch identity (device, inode, size, mtime, mode). */
interface PatchState {
  file: string;
  base: string;
  patch: string;
}

/**
 * A view an attempt left behind (crashed worker) is removed by a later upload after this long; an attempt still
 * running (a first upload over a slow link) must not lose its view, so well beyond any upload's length.
 */
const VIEW_STALE_MS = 3 * 24 * 3600_000;

/** The largest database file a storage sends as base and patch: 0 for anything but a restic storage with patches on. */
export function deltaMaxBytes(storage: Storage | undefined): number {
  return storage?.type === 'restic' ? storage.deltaMaxMiB * 1024 * 1024 : 0;
}

/**
 * The view of `snapshotDir` for restic, or undefined when it has no database file worth a patch. `deltaDir`: this
 * storage's and plan's own directory on the snapshots' filesystem: `bases/` (base, cached patch, state per dump)
 * and `views/` (one per attempt, so an attempt still running after its heartbeat timed out keeps its own).
 */
export async function prepareDeltaView(snapshotDir: string, deltaDir: string, opts: { maxBytes: number; signal?: AbortSignal }): Promise<DeltaView | undefined> {
  const names = await deltaCandidates(snapshotDir, opts.maxBytes);
  const bases = join(deltaDir, 'bases');
  // No snapshot depends on a base kept here (each carries its own): a dump no longer captured can drop its base.
  await dropStaleBases(bases, new Set(names));
  await dropStaleViews(join(deltaDir, 'views'));
  if (!names.length) return undefined;
  await assertZstdPatches();
  await mkdir(bases, { recursive: true, mode: 0o700 });
  await mkdir(join(deltaDir, 'views'), { recursive: true, mode: 0o700 });
  const view = join(deltaDir, 'views', `${Date.now()}-${randomBytes(4).toString('hex')}`);
  let extraBytes = 0;
  try {
    await execa('cp', ['-a', '-l', '--', snapshotDir, view], { cancelSignal: opts.signal, forceKillAfterDelay: 2000 });
    for (const name of names) extraBytes += await pairInto(join(snapshotDir, 'database', name), join(bases, name), join(view, 'database', name), opts.signal);
  } catch (err) {
    await rm(view, { recursive: true, force: true });
    throw err;
  }
  return { dir: view, pairs: names.length, extraBytes, remove: () => rm(view, { recursive: true, force: true }) };
}

/** Names of `database/` regular files between DELTA_MIN_BYTES and maxBytes, in name order. */
async function deltaCandidates(snapshotDir: string, maxBytes: number): Promise<string[]> {
  if (maxBytes < DELTA_MIN_BYTES) return [];
  const names = await readdir(join(snapshotDir, 'database')).catch(() => [] as string[]);
  const out: string[] = [];
  for (const name of names.sort()) {
    const st = await lstat(join(snapshotDir, 'database', name));
    if (st.isFile() && st.size >= DELTA_MIN_BYTES && st.size <= maxBytes) out.push(name);
  }
  return out;
}

/**
 * Replaces the view's link of `file` (at `target`) by `<target>.lbbase` and `<target>.lbpatch`; returns the bytes
 * they add. The cached pair while the state names this dump, base and patch as they are (checked on the links made,
 * as another attempt may rename in between); else a new patch, made against the view's own link of the base, so
 * that pair belongs together whatever else renames. A missing base, one over twice the dump, or a patch over
 * REBASE_FRACTION of the dump makes the dump itself the base (a hard link: dumps are replaced, never rewritten).
 */
async function pairInto(file: string, base: string, target: string, signal?: AbortSignal): Promise<number> {
  const fileSt = await stat(file, { bigint: true });
  const baseLink = target + BASE_SUFFIX;
  const patchLink = target + PATCH_SUFFIX;
  await rm(target);
  const cached = await readState(`${base}.state.json`);
  if (cached?.file === identity(fileSt) && (await linkIfSame(base, baseLink, cached.base)) && (await linkIfSame(`${base}.patch`, patchLink, cached.patch))) {
    return pairBytes(baseLink, patchLink, fileSt.size);
  }
  await rm(baseLink, { force: true });
  await rm(patchLink, { force: true });
  const current = await lstat(base, { bigint: true }).catch(() => undefined);
  if (!current?.isFile() || current.size > 2n * fileSt.size) await rebase(file, base);
  await link(base, baseLink);
  const baseIsDump = async () => identity(await lstat(baseLink, { bigint: true })) === identity(fileSt);
  let patch = await makePatch(file, baseLink, signal).catch(async (err: unknown) => {
    // A base that fails (too big for memory, say) would fail every run: the dump itself as base needs least.
    if (signal?.aborted || (err instanceof LifeboatError && err.code === 'MissingTool') || (await baseIsDump())) throw err;
    return undefined;
  });
  if (!patch || (patch.size > Number(fileSt.size) * REBASE_FRACTION && !(await baseIsDump()))) {
    if (patch) await rm(patch.path);
    await rm(baseLink);
    await rebase(file, base);
    await link(base, baseLink);
    patch = await makePatch(file, baseLink, signal);
  }
  await link(patch.path, patchLink);
  await rename(patch.path, `${base}.patch`);
  const state: PatchState = { file: identity(fileSt), base: identity(await lstat(baseLink, { bigint: true })), patch: identity(await lstat(patchLink, { bigint: true })) };
  await writeDurably(`${base}.state.json`, JSON.stringify(state));
  return pairBytes(baseLink, patchLink, fileSt.size);
}

async function pairBytes(baseLink: string, patchLink: string, fileBytes: bigint): Promise<number> {
  const [b, p] = await Promise.all([lstat(baseLink), lstat(patchLink)]);
  return b.size + p.size - Number(fileBytes);
}

/** Links `src` to `dst` when `src` is the file `expected` names; false (nothing left at `dst`) otherwise. */
async function linkIfSame(src: string, dst: string, expected: string): Promise<boolean> {
  try {
    await link(src, dst);
  } catch {
    return false;
  }
  if (identity(await lstat(dst, { bigint: true })) === expected) return true;
  await rm(dst, { force: true });
  return false;
}

async function rebase(file: string, base: string): Promise<void> {
  const tmp = `${base}.new-${randomBytes(4).toString('hex')}`;
  await link(file, tmp);
  await rename(tmp, base);
}

/**
 * `zstd --patch-from`, then `zstd --test` of the pair (its frame checksum is the file's), into a file of its own
 * (fsynced: a cached patch is trusted later by its identity alone). It carries the dump's mode and mtime, which a
 * restore gives back to the dump.
 */
async function makePatch(file: string, base: string, signal?: AbortSignal): Promise<{ path: string; size: number }> {
  const path = `${base}.patch-${randomBytes(4).toString('hex')}`;
  const zstd = ['-q', '--no-progress', '--long=31', `--patch-from=${base}`];
  const opts = { cancelSignal: signal, forceKillAfterDelay: 2000 } as const;
  // The dump goes in on stdin (an open descriptor, not through this process): zstd refuses a file that is also
  // its own reference, which a dump just made the base is (the same inode).
  const input = await open(file, 'r');
  try {
    const st = await input.stat();
    await execa('zstd', [...zstd, '-f', '-3', '-T0', '--check', `--stream-size=${st.size}`, '-o', path], { ...opts, stdin: input.fd as 3 }); // execa's types name fds 3–9 only; any fd goes to spawn as is
    await execa('zstd', [...zstd, '-d', '--test', '--', path], { ...opts, stdin: 'ignore' });
    await chmod(path, st.mode & 0o7777);
    await utimes(path, st.atime, st.mtime);
    await fsyncFile(path);
    return { path, size: (await stat(path)).size };
  } catch (err) {
    await rm(path, { force: true });
    if (signal?.aborted) throw err;
    throw zstdFailure(err, `zstd patch of ${file} against ${base} failed`);
  } finally {
    await input.close();
  }
}

/** zstd's `--patch-from` came with 1.4.5; older ones answer only "Incorrect parameters". */
const ZSTD_MIN: [number, number, number] = [1, 4, 5];
const zstdChecked = new Map<string, Promise<void>>();

/** zstd on this host can make and apply patches (asked once per PATH); else MissingTool, a permanent error. */
export function assertZstdPatches(): Promise<void> {
  const key = process.env.PATH ?? '';
  let checked = zstdChecked.get(key);
  if (!checked) {
    checked = execa('zstd', ['--version'], { stdin: 'ignore' }).then(
      ({ stdout }) => {
        const v = /v(\d+)\.(\d+)\.(\d+)/.exec(stdout)?.slice(1).map(Number);
        if (!v || v[0]! * 1e6 + v[1]! * 1e3 + v[2]! < ZSTD_MIN[0] * 1e6 + ZSTD_MIN[1] * 1e3 + ZSTD_MIN[2]) throw missingZstd(`found: ${stdout.trim().split('\n')[0]}`);
      },
      (err: { code?: string; message: string }) => {
        throw missingZstd(err.code === 'ENOENT' ? 'not installed' : err.message.split('\n')[0]!);
      },
    );
    checked.catch(() => zstdChecked.delete(key)); // installed later: asked again
    zstdChecked.set(key, checked);
  }
  return checked;
}

function missingZstd(why: string): LifeboatError {
  return new LifeboatError('MissingTool', `zstd ${ZSTD_MIN.join('.')} or later is needed on this host for database patches in a restic storage (${why}; deltaMaxMiB: 0 stores dumps whole)`);
}

/**
 * What a failed zstd call means. Applying a patch: only zstd's own data errors say the stored pair is damaged
 * (IntegrityCheckFailed, permanent); anything else (no memory, a full disk) is a failure of this host, retried.
 */
function zstdFailure(err: unknown, what: string, applying = false): LifeboatError {
  const e = err as { stderr?: string; code?: string; message: string };
  const text = (e.stderr || e.message).trim();
  if (e.code === 'ENOENT') return missingZstd('not installed');
  const damaged = applying && /corrupt|checksum|Decoding error|Dictionary mismatch|Unknown frame descriptor|Frame requires too much memory|not in zstd format|Read error \(39\)|Restored data doesn't match/i.test(text);
  return new LifeboatError(damaged ? 'IntegrityCheckFailed' : 'CommandFailed', `${what}: ${text.split('\n').slice(-3).join('\n')}`);
}

/** Written, fsynced, then renamed in: a state file is whole or absent. */
async function writeDurably(path: string, text: string): Promise<void> {
  const tmp = `${path}.new-${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, text, { mode: 0o600 });
  await fsyncFile(tmp);
  await rename(tmp, path);
}

async function readState(path: string): Promise<PatchState | undefined> {
  try {
    const s = JSON.parse(await readFile(path, 'utf8')) as Partial<PatchState>;
    return typeof s.file === 'string' && typeof s.base === 'string' && typeof s.patch === 'string' ? { file: s.file, base: s.base, patch: s.patch } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Everything in `bases/` but the base, cached patch and state of the dumps this snapshot holds: a removed
 * artifact's, and temporaries an interrupted attempt left.
 */
async function dropStaleBases(dir: string, keep: Set<string>): Promise<void> {
  const wanted = new Set([...keep].flatMap((n) => [n, `${n}.patch`, `${n}.state.json`]));
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (wanted.has(name)) continue;
    // Another attempt's temporary, about to be renamed in (a link or rename sets its ctime): left to that attempt.
    if (/\.new-[0-9a-f]{8}$/.test(name) && ((await lstat(join(dir, name)).catch(() => undefined))?.ctimeMs ?? 0) > Date.now() - 3600_000) continue;
    await rm(join(dir, name), { force: true });
  }
}

/** Views older than VIEW_STALE_MS (named by their creation time): a crashed attempt's, holding links to old dumps. */
async function dropStaleViews(dir: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const made = Number(name.split('-')[0]);
    if (!(made > Date.now() - VIEW_STALE_MS)) await rm(join(dir, name), { recursive: true, force: true });
  }
}

/**
 * After a plan's run: the delta directories of storages the plan no longer backs up to with patches (removed from
 * the plan, or `deltaMaxMiB: 0`). Their bases are old dumps nothing will read again.
 */
export async function dropUnusedDeltaDirs(root: string, plan: string, inUse: ReadonlySet<string>): Promise<void> {
  for (const storage of await readdir(root).catch(() => [] as string[])) {
    if (!inUse.has(storage)) await rm(join(root, storage, plan), { recursive: true, force: true });
  }
}

/**
 * Restore side: every `database/<name>.lbpatch` with its `.lbbase` beside it in a restored tree becomes
 * `database/<name>` again (mode and mtime of the patch, which carries the dump's), and the pair is removed. Names come
 * from the directory, never a path with a slash; the manifest check that follows proves every byte.
 */
export async function applyDeltas(root: string, signal?: AbortSignal): Promise<number> {
  const dir = join(root, 'database');
  const names = await readdir(dir).catch(() => [] as string[]);
  let applied = 0;
  for (const name of names) {
    if (!name.endsWith(PATCH_SUFFIX)) continue;
    await assertZstdPatches();
    const dump = name.slice(0, -PATCH_SUFFIX.length);
    const patch = join(dir, name);
    const base = join(dir, dump + BASE_SUFFIX);
    const target = join(dir, dump);
    if (!dump || !(await isRegularFile(patch)) || !(await isRegularFile(base))) throw new LifeboatError('IntegrityCheckFailed', `restored ${patch} has no base beside it`);
    if (await lstat(target).catch(() => undefined)) throw new LifeboatError('IntegrityCheckFailed', `restored tree holds both ${target} and its patch`);
    const st = await stat(patch);
    const tmp = `${target}.partial-${randomBytes(4).toString('hex')}`;
    try {
      await execa('zstd', ['-q', '-d', '--no-progress', '--long=31', `--patch-from=${base}`, '-o', tmp, '--', patch], { cancelSignal: signal, forceKillAfterDelay: 2000, stdin: 'ignore' });
    } catch (err) {
      await rm(tmp, { force: true });
      if (signal?.aborted) throw err;
      throw zstdFailure(err, `restored ${patch} does not apply to its base`, true);
    }
    await utimes(tmp, st.atime, st.mtime);
    await chmod(tmp, st.mode & 0o7777);
    await rename(tmp, target);
    await rm(patch);
    await rm(base);
    applied++;
  }
  return applied;
}

/** The base/patch names a selection of `database/<name>` must also bring from restic. */
export function deltaPatterns(path: string): string[] {
  return path.startsWith('database/') && !path.endsWith('*') ? [path + BASE_SUFFIX, path + PATCH_SUFFIX] : [];
}

/** A file's identity (manifest.ts) and its mode: a chmod changes no mtime, and the patch carries the mode. */
function identity(st: BigIntStats): string {
  return `${fileIdentity(st)}:${st.mode}`;
}
