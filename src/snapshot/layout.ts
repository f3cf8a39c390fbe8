// Where snapshots live on the backup host.
import { join } from 'node:path';
import type { ArchiveFormat } from './naming';

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
