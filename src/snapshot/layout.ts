// Where snapshots live on the backup host.
import { join } from 'node:path';
import { parseSnapshotName, type ArchiveFormat } from './naming';

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

/** A restic storage's database bases and views for one plan (storage/restic-deltas.ts): beside the snapshots, for hard links. */
export function resticDeltaDir(backupRoot: string, storage: string, plan: string): string {
  return join(resticDeltaRoot(backupRoot), storage, plan);
}

export function resticDeltaRoot(backupRoot: string): string {
  return join(backupRoot, '.restic-deltas');
}

/**
 * Finished snapshots of one prefix on the backup host beyond the newest `keep`: what local pruning removes.
 * Pure over directory entry names; `.partial` directories (a run in progress) are never candidates.
 */
export function localSnapshotsToPrune(entries: string[], prefix: string, keep: number): string[] {
  const mine = entries
    .map((e) => ({ e, parsed: parseSnapshotName(e) }))
    .filter((x) => x.parsed?.prefix === prefix)
    .sort((a, b) => b.parsed!.at.getTime() - a.parsed!.at.getTime())
    .map((x) => x.e);
  return mine.slice(Math.max(keep, 1));
}
