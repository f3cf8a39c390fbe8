// A dump kept in the artifact's mirror for the next run: the dump is written to the mirror and hard-linked into the
// snapshot, and `dump-state.json` beside it records the source's state it was taken at, the commands that made it
// and the files' identity. A run that finds the source in the same state links the kept files instead of dumping
// (the remote script prints `<marker> unchanged` and exits); their hashes and restic's chunks are then reused as for
// any unchanged file. What "the same state" means is the source type's own: pg-unchanged.ts, sqlite.ts.
import { createHash, randomBytes } from 'node:crypto';
import { link, lstat, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileIdentity } from '../snapshot/manifest';
import type { Captured } from './types';

/** A random prefix per run: only the script can print a line that starts with it. */
export function newMarker(prefix: string): string {
  return `${prefix}-${randomBytes(12).toString('hex')}`;
}

export interface DumpOutcome {
  /** The source's state before the dump ('' when it cannot be compared). */
  state: string;
  unchanged: boolean;
  /** stderr without the script's own lines (what pg_dump said). */
  stderr: string;
}

/**
 * The script's side of readOutcome, as shell lines (the arguments are shell variable references, e.g. `$m`): prints
 * the state, and when it is set and equals the kept one prints `unchanged` and exits 0 without dumping.
 */
export function reportStateLines(marker: string, state: string, kept: string): string[] {
  return [
    `printf '%s state %s\\n' "${marker}" "${state}" >&2`,
    `if [ -n "${state}" ] && [ "${state}" = "${kept}" ]; then printf '%s unchanged\\n' "${marker}" >&2; exit 0; fi`,
  ];
}

export function readOutcome(stderr: string, marker: string): DumpOutcome {
  let state = '';
  let unchanged = false;
  const rest: string[] = [];
  const statePrefix = `${marker} state `;
  for (const line of stderr.split('\n')) {
    if (line.startsWith(statePrefix)) state = line.slice(statePrefix.length).trim();
    else if (line === `${marker} unchanged`) unchanged = true;
    else rest.push(line);
  }
  return { state, unchanged, stderr: rest.join('\n') };
}

/** What the mirror keeps beside the last dump: enough to reuse it and to report it as its run did. */
export interface KeptDump {
  version: 1;
  /** Digest of the dump commands: other options (format, user, globals, compose) mean another dump. */
  fingerprint: string;
  state: string;
  /** The snapshot whose run wrote this dump. */
  dumpedIn: string;
  /** Paths relative to the mirror (= in the snapshot), each with the identity it had when written. */
  files: Array<{ path: string; identity: string }>;
  captured: Pick<Captured, 'paths' | 'bytes' | 'details'>;
}

const KEPT = 'dump-state.json';

export function dumpFingerprint(commands: unknown): string {
  return createHash('sha256').update(JSON.stringify(commands)).digest('hex');
}

async function identity(path: string): Promise<string | undefined> {
  const st = await lstat(path, { bigint: true }).catch(() => undefined); // a symlink is never a kept dump
  return st?.isFile() ? fileIdentity(st) : undefined;
}

/** The mirror's last dump when it was made by the same commands and its files are the ones it wrote. */
export async function keptDump(mirrorDir: string, fingerprint: string): Promise<KeptDump | undefined> {
  const text = await readFile(join(mirrorDir, KEPT), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let kept: KeptDump | undefined;
  try {
    kept = JSON.parse(text) as KeptDump | undefined;
  } catch {
    return undefined;
  }
  if (kept?.version !== 1 || kept.fingerprint !== fingerprint || typeof kept.state !== 'string' || !kept.state) return undefined;
  if (typeof kept.dumpedIn !== 'string' || !Array.isArray(kept.files) || !kept.captured || typeof kept.captured !== 'object') return undefined;
  const { paths, bytes, details } = kept.captured;
  // What gets linked (captured.paths) must be exactly the files whose identity is checked here.
  if (!Array.isArray(paths) || paths.join('\0') !== kept.files.map((f) => f?.path).join('\0')) return undefined;
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0 || !details || typeof details !== 'object' || Array.isArray(details)) return undefined;
  for (const f of kept.files) {
    if (!isMirrorPath(f.path) || (await identity(join(mirrorDir, f.path))) !== f.identity) return undefined;
  }
  // Only the fields a capture reports, whatever else the file holds.
  return { version: 1, fingerprint, state: kept.state, dumpedIn: kept.dumpedIn, files: kept.files, captured: { paths, bytes, details } };
}

/** Forgets the kept dump before a new one replaces its files, so a crash in between never pairs old state and new files. */
export async function forgetKeptDump(mirrorDir: string): Promise<void> {
  await rm(join(mirrorDir, KEPT), { force: true });
}

/**
 * Links the dump just committed to the mirror into the snapshot and records it for the next run; an empty state is
 * not recorded (it never compares equal).
 */
export async function keepDump(mirrorDir: string, snapshotDir: string, kept: Omit<KeptDump, 'version' | 'files'>): Promise<void> {
  await linkIntoSnapshot(mirrorDir, snapshotDir, kept.captured.paths);
  if (!kept.state) return;
  const files = [];
  for (const path of kept.captured.paths) {
    const id = await identity(join(mirrorDir, path));
    if (!id) throw new Error(`the dump ${path} is missing from the mirror ${mirrorDir}`);
    files.push({ path, identity: id });
  }
  const tmp = join(mirrorDir, `${KEPT}.tmp`);
  await writeFile(tmp, JSON.stringify({ version: 1, ...kept, files } satisfies KeptDump), { mode: 0o600 });
  await rename(tmp, join(mirrorDir, KEPT));
}

/**
 * Links the kept dump into the snapshot and returns it as this run's result; a retry of the run that made it (the
 * worker died after recording it) is not "unchanged since" itself.
 */
export async function useKeptDump(mirrorDir: string, snapshotDir: string, kept: KeptDump, snapshot: string): Promise<KeptDump['captured']> {
  await linkIntoSnapshot(mirrorDir, snapshotDir, kept.captured.paths);
  return kept.dumpedIn === snapshot ? kept.captured : { ...kept.captured, details: { ...kept.captured.details, unchanged_since: kept.dumpedIn } };
}

/** Hard-links the mirror's dump files into the snapshot directory (same inode: the snapshot's copy is the mirror's). */
async function linkIntoSnapshot(mirrorDir: string, snapshotDir: string, paths: string[]): Promise<void> {
  for (const path of paths) {
    if (!isMirrorPath(path)) throw new Error(`not a dump path: ${path}`);
    const to = join(snapshotDir, path);
    await mkdir(dirname(to), { recursive: true, mode: 0o700 });
    await rm(to, { force: true }); // a retried capture may have linked it already
    await link(join(mirrorDir, path), to);
  }
}

/** Dump files sit in `database/` (postgres.ts names them); nothing read back from the state file leaves it. */
function isMirrorPath(path: unknown): path is string {
  return typeof path === 'string' && /^database\/[^/]+$/.test(path) && !path.includes('\0') && !/^database\/\.\.?$/.test(path);
}
