// Names and places: snapshot directories on the backup host and object keys in storage.
import { join } from 'node:path';

export type ArchiveFormat = 'tar.zst' | 'tar.gz';

/** `<prefix>-<YYYYmmddTHHMMSS>` in UTC: sortable, and the same on every retry of one workflow run. */
export function snapshotName(prefix: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, '');
  return `${prefix}-${stamp}`;
}

export function parseSnapshotName(name: string): { prefix: string; at: Date } | null {
  const m = /^(.+)-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})$/.exec(name);
  if (!m) return null;
  const [, prefix, y, mo, d, h, mi, s] = m;
  return { prefix: prefix!, at: new Date(Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!)) };
}

export const PARTIAL_SUFFIX = '.partial';

export function snapshotPaths(backupRoot: string, snapshot: string, format: ArchiveFormat) {
  return {
    /** Written while the run captures; renamed to `dir` only once manifest and metadata are complete. */
    workDir: join(backupRoot, `${snapshot}${PARTIAL_SUFFIX}`),
    dir: join(backupRoot, snapshot),
    archive: join(backupRoot, `${snapshot}.${format}`),
  };
}

export function mirrorDir(backupRoot: string, plan: string, source: string, artifact: string): string {
  return join(backupRoot, '.mirror', plan, source, artifact);
}

export function archiveKey(plan: string, snapshot: string, format: ArchiveFormat): string {
  return `${plan}/${snapshot}.${format}`;
}

/** The record is written after the archive, so its presence means "complete snapshot". */
export function recordKey(plan: string, snapshot: string): string {
  return `${plan}/${snapshot}.json`;
}
