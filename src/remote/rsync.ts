// rsync pull from a source host into a persistent mirror on the backup host, so each run moves only changes.
import { mkdir } from 'node:fs/promises';
import { execa } from 'execa';
import { LifeboatError } from '../shared/errors';
import { Tail, type Host } from './host';

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
  const stderr = new Tail();
  const stdout = new Tail(256 * 1024);
  // LC_ALL=C: --stats numbers are grouped with ',' only in the C locale; other locales use '.'.
  const child = execa('rsync', args, { env: { LC_ALL: 'C' }, reject: false, cancelSignal: opts.signal, forceKillAfterDelay: 5000, buffer: false, stdin: 'ignore' });
  child.stderr?.on('data', (d: Buffer) => stderr.push(d));
  child.stdout?.on('data', (d: Buffer) => {
    stdout.push(d);
    const line = d.toString().split('\r').filter((l) => l.trim()).pop();
    if (line && opts.onProgress) opts.onProgress(line.trim());
  });
  const result = await child;
  if (result.isCanceled) throw new Error(`rsync from ${host.label} was cancelled`);
  if ((result as { code?: string }).code === 'ENOENT') throw new LifeboatError('MissingTool', 'rsync is not installed on the backup host');
  // 24 = some files vanished while being copied: normal for live trees, the mirror is still consistent.
  if (result.exitCode !== 0 && result.exitCode !== 24) throw classifyRsyncFailure(host.label, result.exitCode ?? -1, stderr.toString());
  return parseRsyncStats(stdout.toString());
}

export function classifyRsyncFailure(label: string, exitCode: number, stderr: string): Error {
  const text = stderr.trim().split('\n').slice(-5).join('\n');
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/.test(stderr)) {
    return new LifeboatError('HostKeyRejected', `rsync from ${label}: host key not pinned or changed:\n${text}`);
  }
  if (/Permission denied \(publickey/.test(stderr)) return new LifeboatError('AuthFailed', `rsync from ${label}: SSH key refused:\n${text}`);
  const missing = [...stderr.matchAll(/link_stat "([^"]+)" failed: No such file or directory/g)].map((m) => m[1]);
  if (missing.length) return new LifeboatError('MissingPath', `missing on ${label}: ${missing.join(', ')}`, { paths: missing });
  if (/rsync: (command )?not found|rsync: not found/.test(stderr) || exitCode === 127) {
    return new LifeboatError('MissingTool', `rsync is not installed on ${label}`);
  }
  return new LifeboatError('CommandFailed', `rsync from ${label} failed (exit ${exitCode}):\n${text}`);
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
