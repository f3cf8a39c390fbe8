// Trees from the source host into the snapshot: rsync pull into the persistent mirror (only changes cross
// the wire), then hard-link the pulled paths into the snapshot. rsync replaces changed files by rename, so a
// snapshot's hard links keep the old content: cheap and safe. The snapshot's names share the mirror's inodes,
// so owners, modes, ACLs, xattrs and hard-linked pairs are exactly what rsync -aHAX kept (tar archives them).
// rsync changes the attributes of an unchanged file in place: an older snapshot directory left on the backup
// host then shows the newer attributes, while its archive, made before, keeps the old ones. Used by files,
// redis (AOF) and opensearch.
import { lstat, mkdir, readdir, rm } from 'node:fs/promises';
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

/** Regular files and their bytes under a directory: what a restore drill compares the restored tree against. */
export async function treeStats(dir: string): Promise<{ file_count: number; total_bytes: number }> {
  let fileCount = 0;
  let totalBytes = 0;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    fileCount += 1;
    totalBytes += (await lstat(join(entry.parentPath, entry.name))).size;
  }
  return { file_count: fileCount, total_bytes: totalBytes };
}
