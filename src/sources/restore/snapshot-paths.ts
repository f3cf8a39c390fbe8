// metadata.yml is untrusted input: the paths it records for an artifact are only accepted when they are exactly
// the names capture gives that artifact (derived from the plan, see dumpFileName & co.), so no recorded path can
// reach outside the snapshot (`../../etc/shadow`) or into another artifact's files.
import { LifeboatError } from '../../shared/errors';
import type { RecordedComponent, VerifyCheck } from '../types';

/** Relative, without empty, "." or ".." segments and without NUL: it names something inside the snapshot. */
export function isInsideSnapshot(p: unknown): p is string {
  return typeof p === 'string' && p !== '' && !p.includes('\0') && !p.startsWith('/') && p.split('/').every((s) => s !== '' && s !== '.' && s !== '..');
}

/**
 * The component's recorded paths, each one of `allowed` (the artifact's own names in the snapshot); anything
 * else is IntegrityCheckFailed, naming the bad entry.
 */
export function recordedPaths(c: RecordedComponent, artifact: string, allowed: readonly string[]): string[] {
  const paths: unknown = c.paths;
  if (!Array.isArray(paths)) throw new LifeboatError('IntegrityCheckFailed', `metadata.yml records no list of paths for artifact ${artifact}`, { refusedPath: paths });
  for (const p of paths) {
    if (!isInsideSnapshot(p) || !allowed.includes(p)) {
      const why = `metadata.yml records the path ${JSON.stringify(p)} for artifact ${artifact}, which is not its own place in the snapshot (${allowed.join(', ')})`;
      throw new LifeboatError('IntegrityCheckFailed', why, { refusedPath: p });
    }
  }
  return paths as string[];
}

/** The recorded paths lack the file this artifact needs (`what`: "dump file", "RDB file" …). */
export function nothingRecorded(type: string, artifact: string, what: string): LifeboatError {
  return new LifeboatError('IntegrityCheckFailed', `metadata.yml records no ${what} for ${type} artifact ${artifact}`, { refusedPath: null });
}

/**
 * Runs a drill whose first step reads the recorded paths: a refused path becomes a failed check, so the drill
 * of the snapshot's other artifacts still runs and reports.
 */
export async function withRecordedPaths(artifact: string, drill: () => Promise<VerifyCheck[]>): Promise<VerifyCheck[]> {
  try {
    return await drill();
  } catch (err) {
    if (!(err instanceof LifeboatError && err.details && 'refusedPath' in err.details)) throw err;
    return [{ artifact, check: 'snapshot paths', ok: false, detail: err.message }];
  }
}
