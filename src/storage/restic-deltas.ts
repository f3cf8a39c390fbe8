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
import { join } from 'node:path';
import { execa } from 'execa';
import { LifeboatError } from '../shared/errors';

export const BASE_SUFFIX = '.lbbase';
export const PATCH_SUFFIX = '.lbpatch';
/** Smaller files are a chunk or two to restic anyway. */
export const DELTA_MIN_BYTES = 1024 * 1024;
/** A patch above this share of its dump makes the dump the next base (a patch holds every change since its base). */
const REBASE_FRACTION = 0.1;

export interface DeltaView {
  /** What restic backs up instead of the snapshot directory. */
  dir: string;
  /** Files and bytes the view holds beyond the snapshot directory (each pair replaces one dump). */
  extraFiles: number;
  extraBytes: number;
  /** Drops the view (the bases stay for the next run). */
  remove(): Promise<void>;
}

/** What a cached patch was made from: the dump's and the base's identity (device, inode, size, mtime). */
interface PatchState {
  file: string;
  base: string;
}

/**
 * The view of `snapshotDir` for restic, or undefined when it has no database file worth a patch.
 * `basesDir`: this storage's and plan's own directory on the backup host's snapshot filesystem.
 */
export async function prepareDeltaView(snapshotDir: string, basesDir: string, opts: { maxBytes: number; signal?: AbortSignal }): Promise<DeltaView | undefined> {
  const dumps = await deltaCandidates(snapshotDir, opts.maxBytes);
  const view = `${basesDir}.view`;
  await rm(view, { recursive: true, force: true }); // an interrupted upload's
  // No snapshot depends on a base kept here (each carries its own): a dump no longer captured can drop its base.
  await dropStaleBases(join(basesDir, 'database'), new Set(dumps.map((rel) => rel.slice('database/'.length))));
  if (!dumps.length) return undefined;
  await mkdir(join(basesDir, 'database'), { recursive: true, mode: 0o700 });
  await execa('cp', ['-a', '-l', '--', snapshotDir, view], { cancelSignal: opts.signal, forceKillAfterDelay: 2000 });
  let extraBytes = 0;
  try {
    for (const rel of dumps) {
      const pair = await patchFor(join(snapshotDir, rel), join(basesDir, rel), opts.signal);
      await rm(join(view, rel));
      await link(pair.base, join(view, rel + BASE_SUFFIX));
      await link(pair.patch, join(view, rel + PATCH_SUFFIX));
      extraBytes += pair.baseBytes + pair.patchBytes - pair.fileBytes;
    }
  } catch (err) {
    await rm(view, { recursive: true, force: true });
    throw err;
  }
  return {
    dir: view,
    extraFiles: dumps.length,
    extraBytes,
    remove: () => rm(view, { recursive: true, force: true }),
  };
}

/**
 * What an earlier attempt's view held beyond the snapshot directory, for a data snapshot found already made: the
 * pairs are counted from the snapshot directory; their bytes are known while each cached patch still matches its
 * dump and base (undefined otherwise: only the count can be checked).
 */
export async function earlierDeltaExtra(snapshotDir: string, basesDir: string, maxBytes: number): Promise<{ files: number; bytes?: number }> {
  const dumps = await deltaCandidates(snapshotDir, maxBytes);
  let bytes: number | undefined = 0;
  for (const rel of dumps) {
    const base = join(basesDir, rel);
    const [fileSt, baseSt, patchSt, state] = await Promise.all([stat(join(snapshotDir, rel), { bigint: true }), lstat(base, { bigint: true }).catch(() => undefined), lstat(`${base}.patch`).catch(() => undefined), readState(`${base}.state.json`)]);
    if (bytes === undefined || !baseSt || !patchSt || state?.file !== identity(fileSt) || state.base !== identity(baseSt)) bytes = undefined;
    else bytes += Number(baseSt.size) + patchSt.size - Number(fileSt.size);
  }
  return { files: dumps.length, ...(bytes !== undefined ? { bytes } : {}) };
}

/** `database/<name>` regular files between DELTA_MIN_BYTES and maxBytes, in name order. */
async function deltaCandidates(snapshotDir: string, maxBytes: number): Promise<string[]> {
  if (maxBytes < DELTA_MIN_BYTES) return [];
  const names = await readdir(join(snapshotDir, 'database')).catch(() => [] as string[]);
  const out: string[] = [];
  for (const name of names.sort()) {
    const st = await lstat(join(snapshotDir, 'database', name));
    if (st.isFile() && st.size >= DELTA_MIN_BYTES && st.size <= maxBytes) out.push(`database/${name}`);
  }
  return out;
}

/**
 * The base and patch for `file`: the cached patch while neither the file nor its base changed, else a new patch
 * (checked by `zstd --test`: base and patch give back bytes with the file's checksum). A missing base, or a patch
 * over REBASE_FRACTION of the file, makes the file itself the base (a hard link: dumps are replaced, never
 * rewritten in place).
 */
async function patchFor(file: string, base: string, signal?: AbortSignal): Promise<{ base: string; patch: string; baseBytes: number; patchBytes: number; fileBytes: number }> {
  const patch = `${base}.patch`;
  const stateFile = `${base}.state.json`;
  const fileSt = await stat(file, { bigint: true });
  const fileId = identity(fileSt);
  const cached = await readState(stateFile);
  let baseSt = await lstat(base, { bigint: true }).catch(() => undefined);
  if (!(cached && baseSt?.isFile() && cached.file === fileId && cached.base === identity(baseSt) && (await isFile(patch)))) {
    await rm(stateFile, { force: true });
    if (!baseSt?.isFile()) baseSt = await rebase(file, base);
    let patchBytes = await makePatch(file, base, patch, signal);
    if (patchBytes > Number(fileSt.size) * REBASE_FRACTION && identity(baseSt) !== fileId) {
      baseSt = await rebase(file, base);
      patchBytes = await makePatch(file, base, patch, signal);
    }
    await writeFile(stateFile, JSON.stringify({ file: fileId, base: identity(baseSt) } satisfies PatchState), { mode: 0o600 });
  }
  return { base, patch, baseBytes: Number(baseSt.size), patchBytes: (await stat(patch)).size, fileBytes: Number(fileSt.size) };
}

async function rebase(file: string, base: string) {
  const tmp = `${base}.new`;
  await rm(tmp, { force: true });
  await link(file, tmp);
  await rename(tmp, base);
  return lstat(base, { bigint: true });
}

/** `zstd --patch-from`, then `zstd --test` of the pair (its frame checksum is the file's); the patch is renamed in last. */
async function makePatch(file: string, base: string, patch: string, signal?: AbortSignal): Promise<number> {
  const tmp = `${patch}.partial`;
  const zstd = ['-q', '--no-progress', '--long=31', `--patch-from=${base}`];
  const opts = { cancelSignal: signal, forceKillAfterDelay: 2000 } as const;
  // The dump goes in on stdin (an open descriptor, not through this process): zstd refuses a file that is also
  // its own reference, which a dump just made the base is (the same inode).
  const input = await open(file, 'r');
  try {
    await execa('zstd', [...zstd, '-f', '-3', '-T0', '--check', `--stream-size=${(await input.stat()).size}`, '-o', tmp], { ...opts, stdin: input.fd as 3 }); // execa's types name fds 3–9 only; any fd goes to spawn as is
    await execa('zstd', [...zstd, '-d', '--test', '--', tmp], { ...opts, stdin: 'ignore' });
  } catch (err) {
    await rm(tmp, { force: true });
    if (signal?.aborted) throw err;
    const e = err as { stderr?: string; code?: string; message: string };
    if (e.code === 'ENOENT') throw new LifeboatError('MissingTool', 'zstd is not installed on the backup host (needed for database patches in a restic storage)');
    throw new LifeboatError('CommandFailed', `zstd patch of ${file} against ${base} failed: ${(e.stderr || e.message).trim().split('\n').slice(-3).join('\n')}`);
  } finally {
    await input.close();
  }
  // The patch carries the dump's mode and mtime, which a restore gives back to the dump.
  const st = await stat(file);
  await chmod(tmp, st.mode & 0o7777);
  await utimes(tmp, st.atime, st.mtime);
  await rename(tmp, patch);
  return (await stat(patch)).size;
}

async function readState(path: string): Promise<PatchState | undefined> {
  try {
    const s = JSON.parse(await readFile(path, 'utf8')) as Partial<PatchState>;
    return typeof s.file === 'string' && typeof s.base === 'string' ? { file: s.file, base: s.base } : undefined;
  } catch {
    return undefined;
  }
}

/** Bases (with their patch and state) of dumps the last snapshot no longer holds: a removed artifact's. */
async function dropStaleBases(dir: string, keep: Set<string>): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const dump = name.replace(/(\.patch(\.partial)?|\.state\.json|\.new)$/, '');
    if (!keep.has(dump)) await rm(join(dir, name), { force: true });
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
    const dump = name.slice(0, -PATCH_SUFFIX.length);
    const patch = join(dir, name);
    const base = join(dir, dump + BASE_SUFFIX);
    const target = join(dir, dump);
    if (!dump || !(await isFile(patch)) || !(await isFile(base))) throw new LifeboatError('IntegrityCheckFailed', `restored ${patch} has no base beside it`);
    if (await lstat(target).catch(() => undefined)) throw new LifeboatError('IntegrityCheckFailed', `restored tree holds both ${target} and its patch`);
    const st = await stat(patch);
    const tmp = `${target}.partial`;
    try {
      await execa('zstd', ['-q', '-d', '--no-progress', '--long=31', `--patch-from=${base}`, '-o', tmp, '--', patch], { cancelSignal: signal, forceKillAfterDelay: 2000, stdin: 'ignore' });
    } catch (err) {
      await rm(tmp, { force: true });
      if (signal?.aborted) throw err;
      throw new LifeboatError('IntegrityCheckFailed', `restored ${patch} does not apply to its base: ${((err as { stderr?: string }).stderr ?? (err as Error).message).trim().split('\n').slice(-2).join('\n')}`);
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

function identity(st: { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint }): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
}

async function isFile(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined))?.isFile() ?? false;
}
