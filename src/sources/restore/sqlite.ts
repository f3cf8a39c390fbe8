// SQLite restore and restore drill. The snapshot holds a consistent single-file copy (VACUUM INTO / .backup),
// so restoring is placing that file: pushed beside the target and renamed over it.
import { copyFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { SqliteArtifact } from '../../config/schema';
import type { Host } from '../../remote/host';
import { LifeboatError } from '../../shared/errors';
import { checkCopy, sqliteFileName } from '../sqlite';
import type { RecordedComponent, RestoreContext, RestoreModule, RestoreStep, VerifyCheck, VerifyContext } from '../types';
import { pathStates, placeFile } from './remote';
import { nothingRecorded, recordedPaths, withRecordedPaths } from './snapshot-paths';

function copyPath(a: SqliteArtifact, c: RecordedComponent): string {
  const [file] = recordedPaths(c, a.name, [sqliteFileName(a)]);
  if (!file) throw nothingRecorded('sqlite', a.name, 'database file');
  return file;
}

/** options.dir/<basename of the plan's path>, or that path itself: never a path named by metadata.yml. */
function targetPath(ctx: Omit<RestoreContext<SqliteArtifact>, 'progress'>): string {
  return ctx.options.dir ? join(ctx.options.dir, basename(ctx.artifact.path)) : ctx.artifact.path;
}

async function exists(host: Host, path: string, signal: AbortSignal): Promise<boolean> {
  const [state] = await pathStates(host, [path], signal);
  return state !== 'absent';
}

export const sqliteRestore: RestoreModule<SqliteArtifact> = {
  async planRestore(ctx): Promise<RestoreStep> {
    copyPath(ctx.artifact, ctx.component); // a dry run refuses a forged path too
    const path = targetPath(ctx);
    const used = await exists(ctx.host, path, ctx.signal);
    const action = used && !ctx.options.force ? `refused: ${path} exists (pass --force to replace it)` : used ? 'replace the database file (by rename)' : 'write the database file';
    return { artifact: ctx.artifact.name, type: 'sqlite', target: `${ctx.host.label}:${path}`, targetInUse: used, action };
  },

  async restore(ctx) {
    const local = join(ctx.snapshotDir, copyPath(ctx.artifact, ctx.component));
    const path = targetPath(ctx);
    if ((await exists(ctx.host, path, ctx.signal)) && !ctx.options.force) {
      throw new LifeboatError('ConfigError', `${path} exists on ${ctx.host.label}; restore elsewhere with --to-dir <dir>, or pass --force to replace it`);
    }
    ctx.progress({ artifact: ctx.artifact.name, phase: 'push' });
    // A -wal/-shm/-journal left by the replaced database would be applied to the restored one: removed first.
    const warnings = await placeFile(ctx.host, local, path, { signal: ctx.signal, removeFirst: ['-wal', '-shm', '-journal'].map((s) => path + s) });
    return { target: `${ctx.host.label}:${path}`, bytes: (await stat(local)).size, details: { path, ...(warnings.length ? { warnings } : {}) } };
  },

  async verify(ctx) {
    return withRecordedPaths(ctx.artifact.name, () => drill(ctx));
  },
};

/** Integrity check and row counts of a private copy; the table names are only compared, never queried. */
async function drill(ctx: VerifyContext<SqliteArtifact>): Promise<VerifyCheck[]> {
  const name = ctx.artifact.name;
  const file = join(ctx.snapshotDir, copyPath(ctx.artifact, ctx.component));
  const work = await mkdtemp(join(ctx.scratchDir, 'sqlite-'));
  try {
    const copy = join(work, 'restored.sqlite');
    await copyFile(file, copy);
    let tables: Record<string, number>;
    try {
      tables = await checkCopy(copy, ctx.artifact, ctx.signal);
    } catch (err) {
      if (!(err instanceof LifeboatError)) throw err;
      return [{ artifact: name, check: 'integrity', ok: false, detail: err.message }];
    }
    return [{ artifact: name, check: 'integrity', ok: true, detail: 'PRAGMA integrity_check: ok' }, ...compareCounts(name, (ctx.component.details ?? {}).tables, tables)];
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** A check per table whose count differs (or that is missing on either side), then one overall. */
export function compareCounts(artifact: string, recorded: unknown, found: Record<string, number>): VerifyCheck[] {
  if (!recorded || typeof recorded !== 'object') return [{ artifact, check: 'rows', ok: true, detail: 'row counts not recorded in metadata.yml; only the integrity check ran' }];
  const expected = recorded as Record<string, number>;
  const names = [...new Set([...Object.keys(expected), ...Object.keys(found)])].sort();
  const checks: VerifyCheck[] = [];
  for (const table of names) {
    const want = expected[table];
    const got = found[table];
    if (want === got) continue;
    const detail = want === undefined ? `not recorded at capture, found ${got} rows` : got === undefined ? `expected ${want} rows, the table is missing` : `expected ${want} rows, found ${got}`;
    checks.push({ artifact, check: `rows ${table}`, ok: false, detail });
  }
  const ok = checks.length === 0;
  const rows = Object.values(found).reduce((a, b) => a + b, 0);
  checks.push({ artifact, check: 'rows', ok, detail: ok ? `${names.length} tables, ${rows} rows as recorded` : `${checks.length} of ${names.length} tables differ from the recorded row counts` });
  return checks;
}
