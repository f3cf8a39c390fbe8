// Pieces shared by the restore modules: a private temp dir on the target host, a command fed from a pushed
// file, path states, and putting a single file in place by rename.
import { dirname } from 'node:path';
import { execBatch } from '../../remote/batch';
import type { ExecOptions, ExecResult, Host } from '../../remote/host';
import { rsyncPush } from '../../remote/rsync';
import { LifeboatError } from '../../shared/errors';

/** The last lines of a command's output, for error messages. */
export function lastLines(text: string, n = 5): string {
  return text.trim().split('\n').slice(-n).join('\n');
}

async function mustExec(host: Host, argv: string[], what: string, opts: ExecOptions = {}): Promise<ExecResult> {
  return succeeded(host, what, await host.exec(argv, opts));
}

/** `res`, when its command exited 0 (run alone or in a batch); else a CommandFailed naming `what`. */
function succeeded(host: Host, what: string, res: ExecResult): ExecResult {
  if (res.exitCode !== 0) throw new LifeboatError('CommandFailed', `${what} on ${host.label} failed (exit ${res.exitCode}): ${lastLines(res.stderr)}`);
  return res;
}

/**
 * Runs fn with a private (0700) temp dir on the host and removes it afterwards, whatever happened.
 * The removal runs without the signal: a cancelled restore must still clean up.
 */
export async function withRemoteTempDir<T>(host: Host, signal: AbortSignal, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = tempDirOf(host, await host.exec(MKTEMP_ARGV, { signal }));
  try {
    return await fn(dir);
  } finally {
    await removeRemoteDir(host, dir);
  }
}

/** Makes a private (0700) temp dir on the host and prints its path (alone, or as one command of a batch). */
export const MKTEMP_ARGV = ['sh', '-c', 'mktemp -d "${TMPDIR:-/tmp}/lifeboat-restore.XXXXXXXX"'];

/** The dir MKTEMP_ARGV made, from its result. */
export function tempDirOf(host: Host, res: ExecResult): string {
  const dir = succeeded(host, 'mktemp', res).stdout.trim();
  if (!dir.startsWith('/')) throw new LifeboatError('CommandFailed', `mktemp on ${host.label} returned ${JSON.stringify(dir)}`);
  return dir;
}

/** Best effort, and without a signal: a cancelled restore must still clean up. */
export async function removeRemoteDir(host: Host, dir: string): Promise<void> {
  await host.exec(['rm', '-rf', '--', dir]).catch(() => undefined);
}

// Over SSH a command's stdin is /dev/null, so input is a file already pushed to the host. The redirection is
// done by this shell (the SSH user, who owns the private temp dir), so a client run through `sudo -u` or
// `docker compose exec -T` reads it too. $1 = the file, then the argv.
const FROM_FILE_SCRIPT = 'f=$1; shift; exec "$@" < "$f"';

/** argv that runs `argv` with its stdin read from `file` on the host. */
export function withInputFile(file: string, argv: string[]): string[] {
  return ['sh', '-c', FROM_FILE_SCRIPT, 'lifeboat-restore', file, ...argv];
}

// As FROM_FILE_SCRIPT, and once the file is open the temp dir holding it is removed (the open file stays readable):
// the last command of a restore cleans up after itself, in its own session. $1 = the file, $2 = the dir, argv.
const FROM_FILE_REMOVING_SCRIPT = 'f=$1; d=$2; shift 2; exec <"$f" || exit 66; rm -rf -- "$d"; exec "$@"';

/** argv that runs `argv` with its stdin read from `file`, removing `dir` (which holds the file) before it starts. */
export function withInputFileRemovingDir(file: string, dir: string, argv: string[]): string[] {
  return ['sh', '-c', FROM_FILE_REMOVING_SCRIPT, 'lifeboat-restore', file, dir, ...argv];
}

export type PathState = 'absent' | 'empty-dir' | 'dir' | 'file' | 'empty-file';

// One state word per argument, in order (words only: a path may contain a newline).
const STATE_SCRIPT = [
  'for p; do',
  '  if [ -d "$p" ] && [ ! -L "$p" ]; then if [ -n "$(ls -A -- "$p")" ]; then echo dir; else echo empty-dir; fi',
  '  elif [ -s "$p" ]; then echo file',
  '  elif [ -e "$p" ] || [ -L "$p" ]; then echo empty-file',
  '  else echo absent; fi',
  'done',
].join('\n');

export async function pathStates(host: Host, paths: string[], signal: AbortSignal): Promise<PathState[]> {
  if (paths.length === 0) return [];
  const res = await mustExec(host, ['sh', '-c', STATE_SCRIPT, 'lifeboat-state', ...paths], 'checking the restore targets', { signal });
  return parseStates(host, res.stdout, paths.length);
}

/**
 * The paths' states and whether the SSH user is root (what a push of owners and ACLs needs to know), asked in one
 * session: a restore step pays one login shell on the host for its checks, not one per question.
 */
export async function targetStates(host: Host, paths: string[], signal: AbortSignal): Promise<{ states: PathState[]; root: boolean }> {
  if (paths.length === 0) return { states: [], root: false };
  const [states, id] = await execBatch(host, [['sh', '-c', STATE_SCRIPT, 'lifeboat-state', ...paths], ['id', '-u']], { signal });
  return {
    states: parseStates(host, succeeded(host, 'checking the restore targets', states!).stdout, paths.length),
    root: succeeded(host, 'id -u', id!).stdout.trim() === '0',
  };
}

function parseStates(host: Host, stdout: string, count: number): PathState[] {
  const states = stdout.split('\n').filter(Boolean) as PathState[];
  if (states.length !== count) throw new LifeboatError('CommandFailed', `checking the restore targets on ${host.label}: unexpected output ${JSON.stringify(stdout.slice(0, 200))}`);
  return states;
}

/** "empty" only for absent paths, empty directories and empty files. */
export function inUse(state: PathState): boolean {
  return state === 'dir' || state === 'file';
}

// $1 = staged file, $2 = target, then stale companion files to remove first (e.g. a SQLite -wal, which would
// otherwise be replayed over the restored database). An existing target lends its owner and mode to the new
// file (best effort: GNU --reference, and chown needs root). mv within one directory is a rename: readers
// see the old file or the new one, never half of one.
const PLACE_SCRIPT = [
  's=$1; t=$2; shift 2',
  'if [ -d "$t" ]; then echo "lifeboat: $t is a directory" >&2; exit 3; fi',
  'if [ -e "$t" ]; then',
  '  chown --reference="$t" -- "$s" 2>/dev/null || echo "lifeboat: warning: could not give the restored file the owner of $t" >&2',
  '  chmod --reference="$t" -- "$s" 2>/dev/null || echo "lifeboat: warning: could not give the restored file the mode of $t" >&2',
  'fi',
  'rm -f -- "$@" || exit 1',
  'exec mv -f -- "$s" "$t"',
].join('\n');

/**
 * Pushes one local file to `target` on the host as `<target>.lifeboat-restore`, then renames it over the
 * target (see PLACE_SCRIPT). Creates the target's directory. Returns warnings from the placement.
 */
export async function placeFile(host: Host, local: string, target: string, opts: { signal: AbortSignal; removeFirst?: string[] }): Promise<string[]> {
  const staged = `${target}.lifeboat-restore`;
  try {
    // The snapshot's copy belongs to the backup worker: the file is the SSH user's, or the target's (above).
    // rsync's own session makes the directory (no `mkdir` session of its own).
    await rsyncPush(host, local, staged, { signal: opts.signal, owner: false, makeDir: dirname(target) });
    const res = await mustExec(host, ['sh', '-c', PLACE_SCRIPT, 'lifeboat-place', staged, target, ...(opts.removeFirst ?? [])], `moving the restored file to ${target}`, { signal: opts.signal });
    return res.stderr.split('\n').filter((l) => l.startsWith('lifeboat: warning:'));
  } catch (err) {
    await host.exec(['rm', '-f', '--', staged]).catch(() => undefined);
    throw err;
  }
}
