// PostgreSQL: pg_dump runs on the source host and streams to the backup host; the dump is never held in memory.
// A password goes through a private temporary PGPASSFILE (see remote/remote-command.ts), never a command line.
import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { finished } from 'node:stream/promises';
import type { PostgresArtifact } from '../config/schema';
import { resolveSecret } from '../config/secrets';
import type { Host } from '../remote/host';
import type { SecretFile } from '../remote/remote-command';
import { LifeboatError } from '../shared/errors';
import { meter } from '../shared/meter';
import type { SourceModule } from './types';

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

/** Runs a PostgreSQL client as the configured OS user (peer authentication), when one is set. */
export function pgCommand(a: PostgresArtifact, argv: string[]): string[] {
  return a.runAs ? ['sudo', '-n', '-u', a.runAs, '--', ...argv] : argv;
}

/** One passfile line matching any host/db/user; `:` and `\` are escaped as libpq requires. */
export function passfileLine(password: string): string {
  return `*:*:*:*:${password.replace(/\\/g, '\\\\').replace(/:/g, '\\:')}\n`;
}

export function dumpFileName(a: PostgresArtifact): string {
  return `database/${a.name}.${a.format === 'custom' ? 'dump' : 'sql'}`;
}

/** The password as a libpq passfile, resolved here on the worker and handed over as a private temp file. */
async function passfile(a: PostgresArtifact): Promise<SecretFile | undefined> {
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
  if (exitCode === 127) return new LifeboatError('MissingTool', `pg_dump (or sudo) is not installed on ${label}`);
  return new LifeboatError('CommandFailed', `pg_dump of ${a.database} on ${label} failed (exit ${exitCode}):\n${text}`);
}

export const postgres: SourceModule<PostgresArtifact> = {
  requiredTools: (a) => (a.runAs ? ['pg_dump', 'sudo'] : ['pg_dump']),
  requiredPaths: () => [],

  async estimateBytes(host: Host, a, signal) {
    const argv = ['psql', '-X', '-A', '-t', ...pgConnectionArgs(a), `--dbname=${a.database}`, '-c', 'SELECT pg_database_size(current_database())'];
    const res = await host.exec(pgCommand(a, argv), { secretFile: await passfile(a), signal });
    if (res.exitCode !== 0) throw classifyPgFailure(host.label, a, res.exitCode, res.stderr);
    return Number(res.stdout.trim()) || 0;
  },

  async capture({ host, artifact: a, snapshotDir, signal, progress }) {
    const rel = dumpFileName(a);
    const target = join(snapshotDir, rel);
    const partial = `${target}.partial`;
    await mkdir(dirname(target), { recursive: true, mode: 0o700 });

    const counter = meter({ onBytes: (bytes) => progress({ artifact: a.name, bytes }) });
    const out = createWriteStream(partial, { mode: 0o600 });
    counter.pipe(out);
    const res = await host.exec(pgCommand(a, pgDumpArgv(a)), { secretFile: await passfile(a), stdout: counter, signal });
    counter.end();
    await finished(out);
    if (res.exitCode !== 0) throw classifyPgFailure(host.label, a, res.exitCode, res.stderr);
    if (a.format === 'plain' && !(await endsWith(partial, DUMP_COMPLETE))) {
      throw new LifeboatError('CommandFailed', `pg_dump of ${a.database} on ${host.label} ended without its completion marker (truncated dump)`);
    }
    await rename(partial, target);
    return { paths: [rel], bytes: (await stat(target)).size, details: { database: a.database, format: a.format } };
  },
};

/** True when `marker` occurs in the last few KiB of the file (a plain dump ends with it). */
async function endsWith(path: string, marker: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const len = Math.min(size, 4096);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    return buf.toString().includes(marker);
  } finally {
    await fh.close();
  }
}
