// PostgreSQL: pg_dump runs on the source host and streams into a file on the backup host, never through the worker.
// A password goes through a private temporary PGPASSFILE (see remote/remote-command.ts), never a command line.
// Row counts per table come from the dump itself (pg-rowcounts.ts), for the restore drill to compare against.
// The dump is written to the artifact's mirror and linked into the snapshot (kept-dump.ts); a database unchanged since
// the mirror's dump is not dumped again (pg-unchanged.ts).
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { PostgresArtifact } from '../config/schema';
import { resolveSecret } from '../config/secrets';
import type { Host } from '../remote/host';
import type { SecretFile } from '../remote/remote-command';
import { LifeboatError } from '../shared/errors';
import { streamToFile, tailIncludes } from './capture-stream';
import { inService } from './compose-exec';
import { countCopyRows, countCopyRowsInFile } from './pg-rowcounts';
import { dumpFingerprint, forgetKeptDump, keepDump, keptDump, readOutcome, useKeptDump } from './kept-dump';
import { dumpUnlessUnchanged, PG_STATE_SQL } from './pg-unchanged';
import type { SourceModule } from './types';
import { dieWithWorker } from '../shared/die-with-worker';

const DUMP_COMPLETE = '-- PostgreSQL database dump complete';

export function pgConnectionArgs(a: PostgresArtifact): string[] {
  const args = ['--no-password', '--username', a.user];
  if (a.host) args.push('--host', a.host);
  if (a.port) args.push('--port', String(a.port));
  return args;
}

export function pgDumpArgv(a: PostgresArtifact): string[] {
  return ['pg_dump', `--format=${a.format}`, ...pgConnectionArgs(a), `--dbname=${a.database}`];
}

/** Roles and tablespaces, which a database dump leaves out. */
export function pgDumpallGlobalsArgv(a: PostgresArtifact): string[] {
  return ['pg_dumpall', '--globals-only', ...pgConnectionArgs(a), `--database=${a.database}`];
}

/** Runs a PostgreSQL client inside the compose service, or as the OS user `runAs` (peer authentication). */
export function pgCommand(a: PostgresArtifact, argv: string[]): string[] {
  if (a.compose) return inService(a.compose, argv);
  return a.runAs ? ['sudo', '-n', '-u', a.runAs, '--', ...argv] : argv;
}

/** One passfile line matching any host/db/user; `:` and `\` are escaped as libpq requires. */
export function passfileLine(password: string): string {
  return `*:*:*:*:${password.replace(/\\/g, '\\\\').replace(/:/g, '\\:')}\n`;
}

export function dumpFileName(a: PostgresArtifact): string {
  return `database/${a.name}.${a.format === 'custom' ? 'dump' : 'sql'}`;
}

export function globalsFileName(a: PostgresArtifact): string {
  return `database/${a.name}.globals.sql`;
}

/** The password as a libpq passfile, resolved here on the worker and handed over as a private temp file. */
export async function passfile(a: PostgresArtifact): Promise<SecretFile | undefined> {
  if (!a.password) return undefined;
  const password = await resolveSecret(a.password, `password of postgres artifact ${a.name}`);
  if (/[\r\n]/.test(password)) throw new LifeboatError('ConfigError', `password of postgres artifact ${a.name} contains a line break, which a passfile cannot hold`);
  return { env: 'PGPASSFILE', content: passfileLine(password) };
}

export function classifyPgFailure(label: string, a: PostgresArtifact, exitCode: number, stderr: string): Error {
  const text = stderr.trim().split('\n').slice(-5).join('\n');
  if (/password authentication failed|no password supplied|Peer authentication failed|role ".*" does not exist/.test(stderr)) {
    return new LifeboatError('AuthFailed', `pg_dump of ${a.database} on ${label}: authentication failed:\n${text}`);
  }
  if (/database ".*" does not exist/.test(stderr)) {
    return new LifeboatError('ConfigError', `pg_dump on ${label}: database "${a.database}" does not exist`);
  }
  if (exitCode === 127) return new LifeboatError('MissingTool', `pg_dump (or sudo, or docker) is not installed on ${label}`);
  return new LifeboatError('CommandFailed', `pg_dump of ${a.database} on ${label} failed (exit ${exitCode}):\n${text}`);
}

export const postgres: SourceModule<PostgresArtifact> = {
  requiredTools: (a) => (a.compose ? [a.compose.command[0]!] : a.runAs ? ['pg_dump', 'sudo'] : ['pg_dump']),
  requiredPaths: () => [],

  async estimateBytes(host: Host, a, signal) {
    const res = await host.exec(pgCommand(a, psqlArgv(a, 'SELECT pg_database_size(current_database())')), { secretFile: await passfile(a), signal });
    if (res.exitCode !== 0) throw classifyPgFailure(host.label, a, res.exitCode, res.stderr);
    return Number(res.stdout.trim()) || 0;
  },

  async capture({ host, artifact: a, snapshot, snapshotDir, mirrorDir, signal, progress }) {
    const secretFile = await passfile(a);
    const rel = dumpFileName(a);
    const dumpArgv = pgCommand(a, pgDumpArgv(a));
    const fingerprint = dumpFingerprint({ dump: dumpArgv, globals: a.globals ? pgCommand(a, pgDumpallGlobalsArgv(a)) : null });
    const kept = a.reuseUnchanged ? await keptDump(mirrorDir, fingerprint) : undefined;
    const command = dumpUnlessUnchanged(pgCommand(a, psqlArgv(a, PG_STATE_SQL)), dumpArgv, kept?.state);
    // The dump goes to the mirror (kept for the next run) and is linked into the snapshot once complete.
    const target = join(mirrorDir, rel);
    const dump = await streamToFile(host, command.argv, target, { secretFile, signal, onBytes: (bytes) => progress({ artifact: a.name, bytes }) });
    const outcome = readOutcome(dump.stderr, command.marker);
    if (dump.exitCode !== 0) {
      await dump.discard();
      throw classifyPgFailure(host.label, a, dump.exitCode, outcome.stderr);
    }
    if (outcome.unchanged && kept) {
      await dump.discard();
      return useKeptDump(mirrorDir, snapshotDir, kept, snapshot);
    }
    if (a.format === 'plain' && !(await tailIncludes(dump.partial, DUMP_COMPLETE, 4096))) {
      await dump.discard();
      throw new LifeboatError('CommandFailed', `pg_dump of ${a.database} on ${host.label} ended without its completion marker (truncated dump)`);
    }
    // Rows are read from the dump on disk: a plain one directly, a custom one through pg_restore.
    const rowCounts = a.format === 'plain' ? { row_counts: await countCopyRowsInFile(dump.partial, signal).catch(async (err: unknown) => Promise.reject((await dump.discard(), err))) } : undefined;
    await forgetKeptDump(mirrorDir);
    await dump.commit();
    const paths = [rel];
    let bytes = dump.bytes;
    if (a.globals) {
      const g = await streamToFile(host, pgCommand(a, pgDumpallGlobalsArgv(a)), join(mirrorDir, globalsFileName(a)), { secretFile, signal });
      if (g.exitCode !== 0) {
        await g.discard();
        throw classifyPgFailure(host.label, a, g.exitCode, g.stderr);
      }
      await g.commit();
      paths.push(globalsFileName(a));
      bytes += g.bytes;
    }
    await removeOtherDumps(mirrorDir, paths);
    const captured = { paths, bytes, details: { database: a.database, format: a.format, ...(rowCounts ?? (await customRowCounts(target, signal))) } };
    await keepDump(mirrorDir, snapshotDir, { fingerprint, state: outcome.state, dumpedIn: snapshot, captured });
    return captured;
  },
};

/** One query with the dump's own connection settings, its value alone on stdout (size estimate, state). */
export function psqlArgv(a: PostgresArtifact, sql: string): string[] {
  return ['psql', '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', ...pgConnectionArgs(a), `--dbname=${a.database}`, '-c', sql];
}

/** Dumps an earlier config wrote under other names (format: plain → custom) would sit in the mirror forever. */
async function removeOtherDumps(mirrorDir: string, keep: string[]): Promise<void> {
  const dir = join(mirrorDir, 'database');
  for (const name of await readdir(dir)) {
    if (!keep.includes(`database/${name}`)) await rm(join(dir, name), { force: true });
  }
}

/** Row counts of a custom-format dump, read through the backup host's pg_restore. Never fails the capture. */
async function customRowCounts(dumpPath: string, signal: AbortSignal): Promise<Record<string, unknown>> {
  const child = execa(...dieWithWorker('pg_restore', ['--data-only', '--file=-', dumpPath]), { buffer: false, reject: false, cancelSignal: signal, stdin: 'ignore', stderr: 'ignore' });
  const counts = countCopyRows(child.stdout!);
  const res = await child;
  if (res.exitCode !== 0) return { row_counts: null, row_counts_error: `pg_restore on the backup host exited ${res.exitCode ?? (res as { code?: string }).code}` };
  return { row_counts: await counts };
}
