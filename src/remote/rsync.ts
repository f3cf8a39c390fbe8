// rsync pull from a source host into a persistent mirror on the backup host, so each run moves only changes;
// rsync push from the backup host to a source host for restores.
import { lstat, mkdir } from 'node:fs/promises';
import { execa } from 'execa';
import { LifeboatError } from '../shared/errors';
import { Tail, type Host } from './host';
import { shellJoin } from './quote';
import { HOST_KEY_REFUSED } from './ssh-options';
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
 * are handled alike and two paths never collide. `--delete` keeps the mirror an exact copy. Owners and groups
 * (numeric), modes, hard links, ACLs and the kept xattrs come along; owners only when the worker is root.
 */
export async function rsyncPull(host: Host, paths: string[], dest: string, opts: PullOptions): Promise<RsyncResult> {
  await mkdir(dest, { recursive: true, mode: 0o700 });
  const args = rsyncPullArgs({ ...host.rsyncTarget(), paths, dest, excludeArgs: opts.excludeArgs, receiverIsRoot: isRoot() });
  // 24 = some files vanished while being copied: normal for live trees, the mirror is still consistent.
  return runRsync(args, host.label, opts, 'from', [0, 24]);
}

export function rsyncPullArgs(o: { rsh?: string; prefix: string; paths: string[]; dest: string; excludeArgs: string[]; receiverIsRoot: boolean }): string[] {
  return [
    '-aHAXR', '--numeric-ids', '--delete', '--delete-excluded', '--stats', '--info=progress2', '--no-inc-recursive',
    ...xattrFilterArgs(o.receiverIsRoot),
    ...(o.rsh ? ['-e', o.rsh] : []),
    ...o.excludeArgs,
    '--',
    ...o.paths.map((p) => `${o.prefix}${p}`),
    o.dest.endsWith('/') ? o.dest : `${o.dest}/`,
  ];
}

/**
 * Extended attributes a backup keeps, besides POSIX ACLs (rsync -A; in the archive as their system.posix_acl_*
 * xattrs): user.* (the applications' own) and security.capability (file capabilities: a restored binary with
 * cap_net_bind_service must still bind). Left out: security.selinux/ima/evm (labels and signatures belong to
 * the host's policy; restorecon relabels) and trusted.* (filesystem-internal state: overlayfs, glusterfs).
 * src/snapshot/archive.ts and extract.ts give GNU tar the same set.
 */
export const KEPT_XATTRS = ['user.*', 'security.capability'] as const;

/**
 * rsync -X filter rules for a root receiver: only the kept xattrs are sent, and the receiver's other xattrs
 * (a target's SELinux labels) are neither replaced nor deleted. Each rule names its side: --delete-excluded
 * would make side-less rules sender-only. A non-root receiver gets none: rsync then keeps user.* only, where
 * with rules it would store the others under user.rsync.* names.
 */
export function xattrFilterArgs(receiverIsRoot: boolean): string[] {
  if (!receiverIsRoot) return [];
  return (['s', 'r'] as const).flatMap((side) => [...KEPT_XATTRS.map((p) => `--filter=+x${side} ${p}`), `--filter=-x${side} *`]);
}

const isRoot = (): boolean => process.getuid?.() === 0;

export function classifyRsyncFailure(label: string, exitCode: number, stderr: string, direction: 'from' | 'to' = 'from'): Error {
  const text = stderr.trim().split('\n').slice(-5).join('\n');
  if (HOST_KEY_REFUSED.test(stderr)) {
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
  /**
   * Keep owner and group (numeric; takes effect when the SSH user is root), ACLs and the kept xattrs. false: a
   * staging copy that the SSH user owns, without ACLs or xattrs. Default true.
   */
  owner?: boolean;
  excludeArgs?: string[];
  onProgress?: (line: string) => void;
  /** Whether the SSH user is root, when the caller asked already (saves a session). */
  receiverIsRoot?: boolean;
  /** A directory to create (`mkdir -p`) on the host right before the copy, in rsync's own session (`--rsync-path`). */
  makeDir?: string;
}

/**
 * Pushes `localPath` on the backup host to absolute `remotePath` on `host` (a restore). rsync's trailing-slash
 * rule applies to localPath: `dir/` copies dir's contents into remotePath (which receives dir's own mode and
 * owner), `dir` creates remotePath/dir; a file is written as remotePath, or into it if that is a directory.
 * Only remotePath's last component is created; its parent must exist (or be `makeDir`). Each file lands by
 * rename, complete.
 */
export async function rsyncPush(host: Host, localPath: string, remotePath: string, opts: PushOptions = {}): Promise<RsyncResult> {
  if (!remotePath.startsWith('/')) throw new Error(`rsyncPush: remote path must be absolute: ${remotePath}`);
  // Checked here: rsync would name the backup host's missing path as missing "on" the target.
  await lstat(localPath).catch(() => {
    throw new LifeboatError('MissingPath', `${localPath} is missing on the backup host`);
  });
  const attributes = opts.owner !== false;
  const receiverIsRoot = attributes && (opts.receiverIsRoot ?? (await remoteIsRoot(host, opts.signal)));
  const target = host.rsyncTarget();
  if (opts.makeDir !== undefined && !opts.makeDir.startsWith('/')) throw new Error(`rsyncPush: directory to make must be absolute: ${opts.makeDir}`);
  // The backup host itself has no remote shell to run it in.
  if (opts.makeDir && !target.rsh) await mkdir(opts.makeDir, { recursive: true });
  const rsyncPath = opts.makeDir && target.rsh ? `${shellJoin(['mkdir', '-p', '--', opts.makeDir])} && rsync` : undefined;
  const args = rsyncPushArgs({ ...target, localPath, remotePath, attributes, receiverIsRoot, delete: opts.delete ?? false, excludeArgs: opts.excludeArgs ?? [], ...(rsyncPath ? { rsyncPath } : {}) });
  return runRsync(args, host.label, opts, 'to');
}

export function rsyncPushArgs(o: {
  rsh?: string;
  prefix: string;
  localPath: string;
  remotePath: string;
  /** Owner, group, ACLs and xattrs (PushOptions.owner). */
  attributes: boolean;
  receiverIsRoot: boolean;
  delete: boolean;
  excludeArgs: string[];
  /** The receiver's command (the remote login shell parses it): default `rsync`. */
  rsyncPath?: string;
}): string[] {
  return [
    '-aH', '--numeric-ids', '--stats', '--info=progress2', '--no-inc-recursive',
    ...(o.attributes ? ['-AX', ...xattrFilterArgs(o.receiverIsRoot)] : ['--no-owner', '--no-group']),
    ...(o.delete ? ['--delete'] : []),
    ...(o.rsh ? ['-e', o.rsh] : []),
    ...(o.rsyncPath ? [`--rsync-path=${o.rsyncPath}`] : []),
    ...o.excludeArgs,
    '--',
    o.localPath,
    `${o.prefix}${o.remotePath}`,
  ];
}

async function remoteIsRoot(host: Host, signal?: AbortSignal): Promise<boolean> {
  const res = await host.exec(['id', '-u'], { signal });
  if (res.exitCode !== 0) throw new LifeboatError('CommandFailed', `id -u on ${host.label} failed (exit ${res.exitCode}): ${res.stderr.trim()}`);
  return res.stdout.trim() === '0';
}

export interface RsyncResult extends RsyncStats {
  /** Attributes rsync could not keep (exit 23 with nothing else wrong): what was lost, for the run's record. */
  warnings?: string[];
}

/** Runs rsync; returns the --stats figures, and warnings when only attributes were lost. */
async function runRsync(args: string[], label: string, opts: Pick<PushOptions, 'signal' | 'onProgress'>, direction: 'from' | 'to', okCodes = [0]): Promise<RsyncResult> {
  const stderr = new Tail();
  const complaints = new RsyncComplaints(okCodes.includes(24));
  const stdout = new Tail(256 * 1024);
  // LC_ALL=C: --stats numbers are grouped with ',' only in the C locale; other locales use '.'.
  const child = execa(...dieWithWorker('rsync', args), { env: { LC_ALL: 'C' }, reject: false, cancelSignal: opts.signal, forceKillAfterDelay: 5000, buffer: false, stdin: 'ignore' });
  child.stderr?.on('data', (d: Buffer) => {
    stderr.push(d);
    complaints.push(d);
  });
  child.stdout?.on('data', (d: Buffer) => {
    stdout.push(d);
    const line = d.toString().split('\r').filter((l) => l.trim()).pop();
    if (line && opts.onProgress) opts.onProgress(line.trim());
  });
  const result = await child;
  if (result.isCanceled) throw new Error(`rsync ${direction} ${label} was cancelled`);
  if ((result as { code?: string }).code === 'ENOENT') throw new LifeboatError('MissingTool', 'rsync is not installed on the backup host');
  const stats = parseRsyncStats(stdout.toString());
  if (okCodes.includes(result.exitCode ?? -1)) return stats;
  const warnings = result.exitCode === 23 ? complaints.warnings(`rsync ${direction} ${label}`) : undefined;
  if (warnings) return { ...stats, warnings };
  throw classifyRsyncFailure(label, result.exitCode ?? -1, stderr.toString(), direction);
}

// What rsync prints when it could not set or read an attribute; the file's data itself arrived. E.g.
// `rsync: [receiver] rsync_xal_set: lsetxattr("…","user.a") failed: Operation not supported (95)`,
// `rsync: [generator] set_acl: sys_acl_set_file(…)` (xacl_set in 3.4+), `rsync: chown "…" failed: …`.
const ATTRIBUTE_LINE = /^rsync: (?:\[\w+\] )?(rsync_xal_\w+|get_xattr_\w+|set_acl|get_acl|default_perms_for_dir|chown|chgrp|failed to set permissions)\b/;
const KIND: Array<[RegExp, string]> = [[/xal|xattr/, 'xattrs'], [/acl|perms_for_dir/, 'ACLs'], [/chown|chgrp/, 'owner or group'], [/permissions/, 'mode']];
const PARTIAL_SUMMARY = /^rsync error: some files\/attrs were not transferred/;
const VANISHED = /^(file has vanished: |rsync warning: some files vanished)/;

/**
 * Reads rsync's whole stderr, line by line (a tail could hide an earlier real error behind many attribute
 * complaints), to tell an exit 23 caused only by lost attributes from one that lost data.
 */
export class RsyncComplaints {
  private partial = '';
  private readonly lost: string[] = [];
  private lostCount = 0;
  private readonly kinds = new Set<string>();
  private other = false;

  constructor(private readonly vanishedOk: boolean) {}

  push(chunk: Buffer | string): void {
    const lines = (this.partial + chunk.toString()).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) this.line(line.trim());
  }

  /** The warnings to record, or undefined when something besides attributes went wrong (or nothing did). */
  warnings(what: string): string[] | undefined {
    this.line(this.partial.trim());
    this.partial = '';
    if (this.other || this.lostCount === 0) return undefined;
    const more = this.lostCount - this.lost.length;
    return [
      `${what}: ${this.lostCount} attribute(s) not kept (${[...this.kinds].join(', ')}): the filesystem does not support them, or the user may not set them`,
      ...this.lost,
      ...(more > 0 ? [`… and ${more} more`] : []),
    ];
  }

  private line(line: string): void {
    if (!line || PARTIAL_SUMMARY.test(line) || (this.vanishedOk && VANISHED.test(line))) return;
    const m = ATTRIBUTE_LINE.exec(line);
    if (!m) {
      this.other = true;
      return;
    }
    this.lostCount += 1;
    if (this.lost.length < 10) this.lost.push(line);
    this.kinds.add(KIND.find(([re]) => re.test(m[1]!))?.[1] ?? m[1]!);
  }
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
