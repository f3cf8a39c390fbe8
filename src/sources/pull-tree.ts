// Trees from the source host into the snapshot: rsync pull into the persistent mirror (only changes cross
// the wire), then hard-link the pulled paths into the snapshot. rsync replaces changed files by rename, so a
// snapshot's hard links keep the old content: cheap and safe. The snapshot's names share the mirror's inodes,
// so owners, modes, ACLs, xattrs and hard-linked pairs are exactly what rsync -aHAX kept (tar archives them).
// rsync changes the attributes of an unchanged file in place: an older snapshot directory left on the backup
// host then shows the newer attributes, while its archive, made before, keeps the old ones. Used by files,
// redis (AOF) and opensearch.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Host } from '../remote/host';
import { rsyncPull, type RsyncResult } from '../remote/rsync';

export interface PullTreeOptions {
  /** Absolute paths on the source host. */
  paths: string[];
  mirrorDir: string;
  snapshotDir: string;
  /** Directory inside the snapshot that receives the paths (with their full path below it). */
  rel: string;
  excludeArgs: string[];
  signal: AbortSignal;
  onProgress?: (line: string) => void;
}

export async function pullTree(host: Host, o: PullTreeOptions): Promise<RsyncResult> {
  const stats = await rsyncPull(host, o.paths, o.mirrorDir, { excludeArgs: o.excludeArgs, signal: o.signal, onProgress: o.onProgress });
  const dest = join(o.snapshotDir, o.rel);
  await rm(dest, { recursive: true, force: true }); // a retried attempt starts clean
  await mkdir(dest, { recursive: true, mode: 0o700 });
  const relPaths = o.paths.map((p) => p.replace(/^\/+/, '').replace(/\/+$/, ''));
  await execa('cp', ['-a', '-l', '--parents', '--', ...relPaths, dest], { cwd: o.mirrorDir, cancelSignal: o.signal });
  return stats;
}

/** Runs a constant test per value on the host (passed as "$1", never spliced into the script); returns the failing ones. */
export async function failingOn(host: Host, test: string, values: string[], signal: AbortSignal): Promise<string[]> {
  if (values.length === 0) return [];
  const script = `for v; do set -- "$v"; ${test} || printf '%s\\n' "$v"; done`;
  const res = await host.exec(['sh', '-c', script, 'lifeboat-check', ...values], { signal });
  if (res.exitCode !== 0) throw new Error(`check on ${host.label} failed: ${res.stderr.trim()}`);
  return res.stdout.split('\n').filter(Boolean);
}

/** What preflight asks of one source host, all in one remote script (one session: each costs a login shell there). */
export interface PreflightChecks {
  /** Programs that must be on PATH. */
  tools: string[];
  /** Paths that must exist. */
  paths: string[];
  /** Trees whose disk usage (du -s -k) counts towards the estimate, where present. */
  trees: string[];
  /** Regular files whose size counts towards the estimate, where present. */
  files: string[];
  /** Run last; its stdout is the application's version. */
  appVersion?: string[];
}

export interface PreflightFindings {
  missingTools: string[];
  missingPaths: string[];
  /** Sum over `trees` and `files`. */
  estimatedBytes: number;
  /** A du or stat that failed: the path and what it said. */
  failures: Array<{ path: string; output: string }>;
  appVersion?: { exitCode: number; stdout: string; stderr: string };
}

// Every value arrives as an argument: "<n> values…" per section, then the app-version argv. Records go to stdout
// as NUL-terminated fields (a path may hold a newline); only the app-version command may write to stderr.
export const PREFLIGHT_SCRIPT = [
  `lifeboat_rec() { printf '%s\\0' "$@"; }`,
  'n=$1; shift',
  'while [ "$n" -gt 0 ]; do command -v "$1" >/dev/null 2>&1 || lifeboat_rec tool "$1"; shift; n=$((n - 1)); done',
  'n=$1; shift',
  'while [ "$n" -gt 0 ]; do [ -e "$1" ] || lifeboat_rec path "$1"; shift; n=$((n - 1)); done',
  'n=$1; shift',
  'while [ "$n" -gt 0 ]; do',
  '  if [ -e "$1" ]; then',
  '    if o=$(du -s -k -- "$1" 2>&1); then lifeboat_rec kib "${o%%[!0-9]*}"; else lifeboat_rec failed "$1" "$o"; fi',
  '  fi',
  '  shift; n=$((n - 1))',
  'done',
  'n=$1; shift',
  'while [ "$n" -gt 0 ]; do',
  '  if [ -f "$1" ]; then',
  '    if o=$(stat -c %s -- "$1" 2>&1); then lifeboat_rec bytes "$o"; else lifeboat_rec failed "$1" "$o"; fi',
  '  fi',
  '  shift; n=$((n - 1))',
  'done',
  // At most 4 KiB of version text: the 500 characters kept fit, and a chatty command cannot flood the record.
  `if [ $# -gt 0 ]; then v=$("$@"); s=$?; lifeboat_rec app "$s" "$(printf '%.4096s' "$v")"; fi`,
].join('\n');

/** `sh -c <PREFLIGHT_SCRIPT> lifeboat-preflight <sections…>`: constant script text, config values as arguments only. */
export function preflightArgv(c: PreflightChecks): string[] {
  const section = (values: string[]) => [String(values.length), ...values];
  return ['sh', '-c', PREFLIGHT_SCRIPT, 'lifeboat-preflight', ...section(c.tools), ...section(c.paths), ...section(c.trees), ...section(c.files), ...(c.appVersion ?? [])];
}

/** Reads the script's records; stderr is the app-version command's own. */
export function parsePreflight(stdout: string, stderr: string): PreflightFindings {
  const fields = stdout.split('\0');
  // A complete output ends with a NUL: what follows it must be nothing.
  if (fields.pop() !== '') throw new Error('preflight script output ends mid-record');
  const found: PreflightFindings = { missingTools: [], missingPaths: [], estimatedBytes: 0, failures: [] };
  let i = 0;
  const next = () => {
    if (i >= fields.length) throw new Error('preflight script output ends mid-record');
    return fields[i++]!;
  };
  while (i < fields.length) {
    const tag = next();
    if (tag === 'tool') found.missingTools.push(next());
    else if (tag === 'path') found.missingPaths.push(next());
    else if (tag === 'kib') found.estimatedBytes += (Number(next()) || 0) * 1024;
    else if (tag === 'bytes') found.estimatedBytes += Number(next()) || 0;
    else if (tag === 'failed') found.failures.push({ path: next(), output: next() });
    else if (tag === 'app') found.appVersion = { exitCode: Number(next()), stdout: next(), stderr };
    else throw new Error(`preflight script wrote an unknown record ${JSON.stringify(tag.slice(0, 40))}`);
  }
  return found;
}

/** Runs every check of `checks` on the host in one command. */
export async function runPreflightChecks(host: Host, checks: PreflightChecks, signal: AbortSignal): Promise<PreflightFindings> {
  const res = await host.exec(preflightArgv(checks), { signal });
  if (res.exitCode !== 0) throw new Error(`preflight checks on ${host.label} failed (exit ${res.exitCode}): ${res.stderr.trim()}`);
  try {
    return parsePreflight(res.stdout, res.stderr);
  } catch (err) {
    throw new Error(`preflight checks on ${host.label}: ${(err as Error).message}`);
  }
}

/**
 * Regular files and their bytes under a directory: what a restore drill compares the restored tree against. `find`
 * walks it (a child process: a stat per file in JavaScript took 0.6 s for 16 000 files, find 0.05 s); symlinks are
 * not followed, and every name of a hard-linked file counts (as tar stores each).
 */
export async function treeStats(dir: string, signal?: AbortSignal): Promise<{ file_count: number; total_bytes: number }> {
  if (!dir.startsWith('/')) throw new Error(`treeStats needs an absolute path, not ${JSON.stringify(dir)}`); // never an option to find
  const res = await execa('find', ['-P', dir, '-type', 'f', '-printf', '%s\n'], { ...(signal ? { cancelSignal: signal } : {}), stripFinalNewline: false });
  let fileCount = 0;
  let totalBytes = 0;
  for (const line of res.stdout.split('\n')) {
    if (!line) continue;
    fileCount += 1;
    totalBytes += Number(line);
  }
  return { file_count: fileCount, total_bytes: totalBytes };
}
