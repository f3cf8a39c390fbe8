// SQLite: a consistent copy is made on the source host with sqlite3 itself (VACUUM INTO or .backup) into a
// private temp dir, streamed to the artifact's mirror, checked on the backup host with PRAGMA integrity_check, and
// linked into the snapshot. Copying the file with cp/rsync instead would tear pages while the application writes.
// A database whose files have not changed since the mirror's copy is not copied again (kept-dump.ts): the state is
// each file's device, inode, size, mtime and ctime (ns; only a clock stepped back can repeat a ctime) for the
// database, its -wal and -journal, plus the -shm's wal-index header. Like git's racy-index rule, a state whose newest
// change is under RACY_SECONDS old is not kept: a write in the same clock tick as that change would leave every time
// as it was. A non-empty -journal (a write in progress, or a persistent journal) means a copy every time.
import { join } from 'node:path';
import type { SqliteArtifact } from '../config/schema';
import type { Host } from '../remote/host';
import { LocalHost } from '../remote/local';
import { LifeboatError } from '../shared/errors';
import { streamToFile } from './capture-stream';
import { dumpFingerprint, forgetKeptDump, keepDump, keptDump, newMarker, readOutcome, reportStateLines, useKeptDump } from './kept-dump';
import type { SourceModule } from './types';

/** Exit status of the capture script when the database file is missing (EX_NOINPUT). */
export const SQLITE_MISSING_EXIT = 66;

/** A state younger than this (its newest ctime) is not kept: see the header. */
export const RACY_SECONDS = 3;

// $1 = database path, $2 = busy timeout in ms, $3 = the copy statement (a constant from copyStatement()),
// $4 = marker, $5 = the kept copy's state ('' for none). Prints `<marker> state <state>` on stderr (empty for a
// symlinked path, a non-empty -journal, a clock that is not a number, or a newest change under RACY_SECONDS old; odd
// `stat`/`od` output is rejected by keepableState); when it equals $5, `<marker> unchanged` and exits.
// `-readonly` never writes the source (works for WAL and rollback-journal databases) and, unlike a plain
// open, cannot create an empty database. sqlite3 and cat run in the background so that a TERM from a
// cancelled activity interrupts `wait` at once instead of waiting for them; the EXIT trap removes the copy.
export const SQLITE_CAPTURE_SCRIPT = [
  't=; p=',
  'cleanup() { [ -z "$p" ] || kill "$p" 2>/dev/null; [ -z "$t" ] || rm -rf "$t"; }',
  'trap cleanup EXIT',
  "trap 'exit 143' HUP INT TERM",
  `[ -f "$1" ] || { echo "lifeboat: $1: no such database file" >&2; exit ${SQLITE_MISSING_EXIT}; }`,
  'st=; now=$(date +%s)',
  'case $now in ""|*[!0-9]*) now= ;; esac',
  // A symlink's own times never change (SQLite writes the file it points to); a non-empty -journal is a write in
  // progress or a persistent journal: no state. An empty one (journal_mode=TRUNCATE) is part of the state.
  'if [ -n "$now" ] && [ ! -L "$1" ] && [ ! -s "$1-journal" ]; then',
  // The unquoted $( ) joins the lines with single spaces (stat prints no spaces or glob characters here).
  '  st=$(echo $(for f in "$1" "$1-wal" "$1-journal"; do if [ -e "$f" ]; then stat -c %d:%i:%s:%.9Y:%.9Z -- "$f"; else echo -; fi; done 2>/dev/null))',
  // The wal-index header (the -shm's first 48 bytes, written by writers only): a WAL commit becomes visible when it
  // is updated, which can be after the -wal's last write (its fsync) and changes no file time.
  // The newest ctime, in whole seconds, from the lines just read (the last field of each; `-` is a missing file).
  '  newest=',
  '  for w in $st; do [ "$w" = - ] && continue; c=${w##*:}; c=${c%%.*}; case $c in ""|*[!0-9]*) newest=x; break ;; esac; [ -n "$newest" ] && [ "$newest" -ge "$c" ] || newest=$c; done',
  `  case $newest in ""|*[!0-9]*) st= ;; *) [ $((now - newest)) -ge ${RACY_SECONDS} ] || st= ;; esac`,
  '  shm=-; [ ! -e "$1-shm" ] || shm=$(od -An -v -tx1 -w48 -N48 -- "$1-shm" 2>/dev/null | tr -d " ")',
  '  [ -z "$st" ] || st="$st ${shm:-?}"',
  'fi',
  ...reportStateLines('$4', '$st', '$5'),
  't=$(mktemp -d) && cd "$t" || exit 70',
  'sqlite3 -readonly "$1" ".timeout $2" "$3" >&2 & p=$!',
  'wait "$p"; s=$?; p=',
  '[ "$s" -eq 0 ] || exit "$s"',
  'cat copy.sqlite & p=$!',
  'wait "$p"; s=$?; p=',
  'exit "$s"',
].join('\n');

// Sums the sizes of the database and its WAL (when present); a missing database counts 0 (requiredPaths reports it).
export const SQLITE_SIZE_SCRIPT = 'for f in "$1" "$1-wal"; do [ ! -f "$f" ] || stat -c %s -- "$f" || exit 1; done';

/** The copy is written relative to the script's private temp dir: no path needs quoting inside SQL. */
export function copyStatement(method: SqliteArtifact['method']): string {
  return method === 'vacuum' ? "VACUUM INTO 'copy.sqlite'" : ".backup 'copy.sqlite'";
}

export function sqliteCaptureArgv(a: SqliteArtifact, marker = '', kept = ''): string[] {
  return ['sh', '-c', SQLITE_CAPTURE_SCRIPT, 'lifeboat-sqlite', a.path, String(a.busyTimeoutSeconds * 1000), copyStatement(a.method), marker, kept];
}

/** What the script reports per file (database, -wal, -journal): identity and times, or `-` when it is missing. */
const FILE_STATE = /^\d+:\d+:\d+:\d+\.\d{9}:\d+\.\d{9}$/;
/** The -shm's wal-index header in hex, or `-`. */
const SHM_STATE = /^([0-9a-f]{96}|-)$/;

/** Only a state of the expected form is kept: a `stat` or `od` that printed something else must never compare equal later. */
export function keepableState(state: string): string {
  const parts = state.trim().split(' ');
  if (parts.length !== 4 || !FILE_STATE.test(parts[0]!) || !SHM_STATE.test(parts[3]!)) return '';
  return parts.slice(1, 3).every((p) => p === '-' || FILE_STATE.test(p)) ? state.trim() : '';
}

export function sqliteFileName(a: SqliteArtifact): string {
  return `database/${a.name}.sqlite`;
}

/** A SQL identifier in double quotes, embedded quotes doubled. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * A read-only, immutable URI for a file on the backup host: no -wal/-shm files appear next to the copy even
 * when it is in WAL mode (a `.backup` of a WAL database is), and nothing can change it.
 */
export function immutableUri(path: string): string {
  return `file:${path.replace(/[%?#]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}?immutable=1`;
}

export function classifySqliteFailure(label: string, a: SqliteArtifact, exitCode: number, stderr: string): Error {
  const text = stderr.trim().split('\n').slice(-5).join('\n');
  const what = `sqlite copy of ${a.path} on ${label}`;
  if (exitCode === SQLITE_MISSING_EXIT) return new LifeboatError('MissingPath', `${a.path} does not exist on ${label}`);
  if (exitCode === 127) return new LifeboatError('MissingTool', `${what}: sqlite3 is not installed:\n${text}`);
  if (/file is not a database|database disk image is malformed/.test(stderr)) {
    return new LifeboatError('IntegrityCheckFailed', `${what}: not a valid SQLite database:\n${text}`);
  }
  if (/attempt to write a readonly database/.test(stderr)) {
    // A hot journal left by a crashed writer: a read-only reader may not roll it back.
    return new LifeboatError('CommandFailed', `${what}: the database has a hot journal from an interrupted write; open it once with the application (which rolls it back) and retry:\n${text}`);
  }
  const hint = /near "INTO": syntax error/.test(stderr) ? ' (VACUUM INTO needs sqlite3 >= 3.27; use method: backup)' : '';
  return new LifeboatError('CommandFailed', `${what} failed (exit ${exitCode})${hint}:\n${text}`);
}

/** How long the copy on the source host may run before its first byte arrives. */
export const SQLITE_COPY_BOUND_MS = 2 * 3_600_000;

export const sqlite: SourceModule<SqliteArtifact> = {
  requiredTools: () => ['sqlite3'],
  requiredPaths: (a) => [a.path],

  async estimateBytes(host: Host, a, signal) {
    const res = await host.exec(['sh', '-c', SQLITE_SIZE_SCRIPT, 'lifeboat-sqlite-size', a.path], { signal });
    if (res.exitCode !== 0) throw new LifeboatError('CommandFailed', `stat of ${a.path} on ${host.label} failed (exit ${res.exitCode}): ${res.stderr.trim()}`);
    return sumLines(res.stdout);
  },

  async capture({ host, artifact: a, snapshot, snapshotDir, mirrorDir, signal, progress, quiet }) {
    const rel = sqliteFileName(a);
    const onBytes = (bytes: number) => progress({ artifact: a.name, bytes });
    const fingerprint = dumpFingerprint(sqliteCaptureArgv(a));
    const kept = a.reuseUnchanged ? await keptDump(mirrorDir, fingerprint) : undefined;
    const marker = newMarker('lifeboat-sqlite');
    // VACUUM INTO (or .backup) writes its copy before the first byte streams: silent until then, within its own bound.
    const out = await quiet(`sqlite ${a.method}`, SQLITE_COPY_BOUND_MS, () =>
      streamToFile(host, sqliteCaptureArgv(a, marker, kept?.state), join(mirrorDir, rel), { signal, onBytes }),
    );
    const outcome = readOutcome(out.stderr, marker);
    let tables: Record<string, number>;
    try {
      if (out.exitCode !== 0) throw classifySqliteFailure(host.label, a, out.exitCode, outcome.stderr);
      if (outcome.unchanged && kept) {
        await out.discard();
        return await useKeptDump(mirrorDir, snapshotDir, kept, snapshot);
      }
      tables = await checkCopy(out.partial, a, signal);
      await forgetKeptDump(mirrorDir);
      await out.commit();
    } catch (err) {
      await out.discard();
      throw err;
    }
    const captured = { paths: [rel], bytes: out.bytes, details: { path: a.path, method: a.method, integrity: 'ok', tables } };
    await keepDump(mirrorDir, snapshotDir, { fingerprint, state: keepableState(outcome.state), dumpedIn: snapshot, captured });
    return captured;
  },
};

const backupHost = new LocalHost('backup host');

async function localSqlite(file: string, args: string[], signal: AbortSignal) {
  return backupHost.exec(['sqlite3', '-readonly', immutableUri(file), ...args], { signal });
}

/** PRAGMA integrity_check on the copy, then the row count of every user table. */
export async function checkCopy(file: string, a: SqliteArtifact, signal: AbortSignal): Promise<Record<string, number>> {
  const check = await localSqlite(file, ['PRAGMA integrity_check'], signal);
  if (check.exitCode !== 0 || check.stdout.trim() !== 'ok') {
    const text = `${check.stdout}\n${check.stderr}`.trim().split('\n').slice(0, 10).join('\n');
    throw new LifeboatError('IntegrityCheckFailed', `copy of ${a.path} fails PRAGMA integrity_check:\n${text}`);
  }
  return countRows(file, signal);
}

// Virtual tables are left out: counting one may need an extension the backup host lacks; their data lives
// in shadow tables, which are counted. Names come back hex-encoded so any character survives the output.
const TABLES_SQL = "SELECT hex(name) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' ESCAPE '!' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name";

async function countRows(file: string, signal: AbortSignal): Promise<Record<string, number>> {
  const list = await localSqlite(file, [TABLES_SQL], signal);
  if (list.exitCode !== 0) throw new LifeboatError('CommandFailed', `listing the tables of ${file} failed: ${list.stderr.trim()}`);
  const names = list.stdout.split('\n').filter(Boolean).map((h) => Buffer.from(h.trim(), 'hex').toString('utf8'));
  if (names.length === 0) return {};
  // One statement per table (a compound SELECT is capped at 500 terms); results come back in order.
  const res = await localSqlite(file, names.map((n) => `SELECT count(*) FROM ${quoteIdent(n)}`), signal);
  const counts = res.stdout.split('\n').filter(Boolean).map(Number);
  if (res.exitCode !== 0 || counts.length !== names.length) {
    throw new LifeboatError('CommandFailed', `counting the rows of ${file} failed: ${res.stderr.trim()}`);
  }
  return Object.fromEntries(names.map((n, i) => [n, counts[i]!]));
}

function sumLines(text: string): number {
  return text.split('\n').reduce((sum, l) => sum + (Number(l.trim()) || 0), 0);
}
