// rsync pull from a source host into a persistent mirror on the backup host, so each run moves only changes;
// rsync push from the backup host to a source host for restores.
import { lstat, mkdir } from 'node:fs/promises';
import { execa } from 'execa';
import { LifeboatError } from '../shared/errors';
import { Tail, type Host } from './host';
import { dieWithWorker } from '../shared/die-with-worker';

export interface RsyncStats {
  files: number;
  regularFilesTransferred: number;
  totalFileSize: number;
  literalData: number;
  matchedData: number;
  bytesSent: number;
  bytesReceived: number;
}

export interface PullOptions {
  /** rsync exclude patterns (config excludes plus the deny-list as --exclude args). */
  excludeArgs: string[];
  signal?: AbortSignal;
  /** Called with rsync's progress line (e.g. "1,234,567  45%  10.00MB/s"). */
  onProgress?: (line: string) => void;
}

/**
 * Pulls absolute `paths` from `host` into `dest`, keeping their full path (`-R`), so files and directories
 * are handled alike and two paths never collide. `--delete` keeps the mirror an exact copy.
 */
export async function rsyncPull(host: Host, paths: string[], dest: string, opts: PullOptions): Promise<RsyncStats> {
  await mkdir(dest, { recursive: true, mode: 0o700 });
  const { rsh, prefix } = host.rsyncTarget();
  const args = [
    '-aHR', '--numeric-ids', '--delete', '--delete-excluded', '--stats', '--info=progress2', '--no-inc-recursive',
    ...(rsh ? ['-e', rsh] : []),
    ...opts.excludeArgs,
    '--',
    ...paths.map((p) => `${prefix}${p}`),
    dest.endsWith('/') ? dest : `${dest}/`,
  ];
  // 24 = some files vanished while being copied: normal for live trees, the mirror is still consistent.
  return parseRsyncStats(await runRsync(args, host.label, opts, 'from', [0, 24]));
}

export function classifyRsyncFailure(label: string, exitCode: number, stderr: string, direction: 'from' | 'to' = 'from'): Error {
  const text = stderr.trim().split('\n').slice(-5).join('\n');
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/.test(stderr)) {
    return new LifeboatError('HostKeyRejected', `rsync ${direction} ${label}: host key not pinned or changed:\n${text}`);
  }
  if (/Permission denied \(publickey/.test(stderr)) return new LifeboatError('AuthFailed', `rsync ${direction} ${label}: SSH key refused:\n${text}`);
  const missing = [...stderr.matchAll(/link_stat "([^"]+)" failed: No such file or directory/g)].map((m) => m[1]);
  if (missing.length) return new LifeboatError('MissingPath', `missing on ${label}: ${missing.join(', ')}`, { paths: missing });
  if (/rsync: (command )?not found|rsync: not found/.test(stderr) || exitCode === 127) {
    return new LifeboatError('MissingTool', `rsync is not installed on ${label}`);
  }
  return new LifeboatError('CommandFailed', `rsync ${direction} ${label} failed (exit ${exitCode}):\n${text}`);
}

export interface PushOptions {
  signal?: AbortSignal;
  /** Remove what localPath lacks from remotePath (never files matched by excludeArgs). Default false. */
  delete?: boolean;
  /** Keep owner and group (takes effect when the SSH user is root). false: the SSH user owns the result. Default true. */
  owner?: boolean;
  excludeArgs?: string[];
  onProgress?: (line: string) => void;
}

/**
 * Pushes `localPath` on the backup host to absolute `remotePath` on `host` (a restore). rsync's trailing-slash
 * rule applies to localPath: `dir/` copies dir's contents into remotePath (which receives dir's own mode and
 * owner), `dir` creates remotePath/dir; a file is written as remotePath, or into it if that is a directory.
 * Only remotePath's last component is created; its parent must exist. Each file lands by rename, complete.
 */
export async function rsyncPush(host: Host, localPath: string, remotePath: string, opts: PushOptions = {}): Promise<RsyncStats> {
  if (!remotePath.startsWith('/')) throw new Error(`rsyncPush: remote path must be absolute: ${remotePath}`);
  // Checked here: rsync would name the backup host's missing path as missing "on" the target.
  await lstat(localPath).catch(() => {
    throw new LifeboatError('MissingPath', `${localPath} is missing on the backup host`);
  });
  const { rsh, prefix } = host.rsyncTarget();
  const args = [
    '-aH', '--numeric-ids', '--stats', '--info=progress2', '--no-inc-recursive',
    ...(opts.owner === false ? ['--no-owner', '--no-group'] : []),
    ...(opts.delete ? ['--delete'] : []),
    ...(rsh ? ['-e', rsh] : []),
    ...(opts.excludeArgs ?? []),
    '--',
    localPath,
    `${prefix}${remotePath}`,
  ];
  return parseRsyncStats(await runRsync(args, host.label, opts, 'to'));
}

/** Runs rsync; returns stdout's tail (the --stats block). */
async function runRsync(args: string[], label: string, opts: Pick<PushOptions, 'signal' | 'onProgress'>, direction: 'from' | 'to', okCodes = [0]): Promise<string> {
  const stderr = new Tail();
  const stdout = new Tail(256 * 1024);
  // LC_ALL=C: --stats numbers are grouped with ',' only in the C locale; other locales use '.'.
  const child = execa(...dieWithWorker('rsync', args), { env: { LC_ALL: 'C' }, reject: false, cancelSignal: opts.signal, forceKillAfterDelay: 5000, buffer: false, stdin: 'ignore' });
  child.stderr?.on('data', (d: Buffer) => stderr.push(d));
  child.stdout?.on('data', (d: Buffer) => {
    stdout.push(d);
    const line = d.toString().split('\r').filter((l) => l.trim()).pop();
    if (line && opts.onProgress) opts.onProgress(line.trim());
  });
  const result = await child;
  if (result.isCanceled) throw new Error(`rsync ${direction} ${label} was cancelled`);
  if ((result as { code?: string }).code === 'ENOENT') throw new LifeboatError('MissingTool', 'rsync is not installed on the backup host');
  if (!okCodes.includes(result.exitCode ?? -1)) throw classifyRsyncFailure(label, result.exitCode ?? -1, stderr.toString(), direction);
  return stdout.toString();
}

/** Parses rsync's `--stats` block. */
export function parseRsyncStats(text: string): RsyncStats {
  const num = (label: string): number => {
    const m = new RegExp(`^${label}: ([\\d,.]+)`, 'm').exec(text);
    return m?.[1] ? Number(m[1].replace(/,/g, '')) : 0;
  };
  return {
    files: num('Number of files'),
    regularFilesTransferred: num('Number of regular files transferred'),
    totalFileSize: num('Total file size'),
    literalData: num('Literal data'),
    matchedData: num('Matched data'),
    bytesSent: num('Total bytes sent'),
    bytesReceived: num('Total bytes received'),
  };
}
