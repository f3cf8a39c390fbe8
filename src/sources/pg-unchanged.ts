// An unchanged PostgreSQL database is not dumped again: the last dump stays in the artifact's mirror, and a run that
// finds the cluster exactly where that dump found it links it into the new snapshot (its hashes and restic's
// chunks are then reused as for an unchanged file). "Exactly where" is the cluster's state, read just before
// pg_dump would start, in the same session:
//   - system identifier and postmaster start time: the same server, not restarted, restored or replaced;
//   - the WAL insert position: every logged change to any database of the cluster (rows, catalog, roles) moves it;
//   - the transaction snapshot (xmin:xmax:running xids): a commit whose WAL record is written becomes visible only
//     when it leaves the running list (with synchronous replication that can be much later), and that writes no WAL;
//   - a digest of the database's sequences: nextval() within an already logged range writes no WAL;
//   - none at all (always dump) on a standby, or when the database has unlogged tables (their rows write no WAL).
// The state is read before the dump's own snapshot is taken, so a change in between only causes a new dump.
import { createHash, randomBytes } from 'node:crypto';
import { link, lstat, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Captured } from './types';

export const PG_STATE_SQL = [
  'SELECT CASE WHEN pg_catalog.pg_is_in_recovery()',
  "  OR EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relpersistence = 'u') THEN ''",
  "ELSE (SELECT system_identifier::text FROM pg_catalog.pg_control_system())",
  "  || ':' || extract(epoch FROM pg_catalog.pg_postmaster_start_time())::text",
  "  || ':' || pg_catalog.pg_current_wal_insert_lsn()::text",
  "  || ':' || pg_catalog.txid_current_snapshot()::text",
  // sha256, not md5: md5() fails on a FIPS build (which would only mean a dump every time).
  "  || ':' || coalesce((SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.string_agg(",
  "       pg_catalog.format('%I.%I=%s', schemaname, sequencename, coalesce(last_value::text, '-')), ','",
  "       ORDER BY schemaname, sequencename), 'UTF8')), 'hex') FROM pg_catalog.pg_sequences), '')",
  'END',
].join('\n');

// $1 = marker, $2 = the state the kept dump was taken at ('' for none), $3 = n, then the state query's argv (n words)
// and pg_dump's. Prints `<marker> state <state>` on stderr; when it equals $2, `<marker> unchanged` and exits without
// dumping; else execs pg_dump (a TERM on cancellation reaches it). The eval'd text holds only "${k}" references.
const DUMP_UNLESS_UNCHANGED = [
  'm=$1; want=$2; n=$3; shift 3; q=; k=1',
  'while [ "$k" -le "$n" ]; do q="$q \\"\\${$k}\\""; k=$((k + 1)); done',
  'state=$(eval "$q" </dev/null 2>/dev/null) || state=',
  'printf \'%s state %s\\n\' "$m" "$state" >&2',
  'if [ -n "$state" ] && [ "$state" = "$want" ]; then printf \'%s unchanged\\n\' "$m" >&2; exit 0; fi',
  'shift "$n"',
  'exec "$@"',
].join('\n');

export interface DumpCommand {
  argv: string[];
  /** Random per run: only the script can print a line that starts with it. */
  marker: string;
}

/** One remote command: the state query, then pg_dump unless the state is `kept` (the kept dump's state). */
export function dumpUnlessUnchanged(stateArgv: string[], dumpArgv: string[], kept: string | undefined): DumpCommand {
  const marker = `lifeboat-pg-${randomBytes(12).toString('hex')}`;
  return { marker, argv: ['sh', '-c', DUMP_UNLESS_UNCHANGED, 'lifeboat-pg-dump', marker, kept ?? '', String(stateArgv.length), ...stateArgv, ...dumpArgv] };
}

export interface DumpOutcome {
  /** The cluster's state before the dump ('' when it cannot be compared: standby, unlogged tables, no psql). */
  state: string;
  unchanged: boolean;
  /** stderr without the script's own lines (what pg_dump said). */
  stderr: string;
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
  return st?.isFile() ? `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}` : undefined;
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

/** Records the dump just committed to the mirror; an empty state is not recorded (it never compares equal). */
export async function keepDump(mirrorDir: string, kept: Omit<KeptDump, 'version' | 'files'>): Promise<void> {
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

/** Hard-links the mirror's dump files into the snapshot directory (same inode: the snapshot's copy is the mirror's). */
export async function linkIntoSnapshot(mirrorDir: string, snapshotDir: string, paths: string[]): Promise<void> {
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
