// MySQL / MariaDB: mariadb-dump (or mysqldump) runs on the source host, or inside its compose service, and
// streams a plain SQL dump to the backup host. A password only ever travels in a private option file.
import { join } from 'node:path';
import type { MysqlArtifact } from '../config/schema';
import { resolveSecret } from '../config/secrets';
import type { Host } from '../remote/host';
import type { SecretFile } from '../remote/remote-command';
import { LifeboatError } from '../shared/errors';
import { streamToFile, tailIncludes } from './capture-stream';
import { inService } from './compose-exec';
import type { SourceModule } from './types';

const DUMP_COMPLETE = '-- Dump completed';
export const MYCNF_ENV = 'LIFEBOAT_MYCNF';
export const DUMP_TOOLS = ['mariadb-dump', 'mysqldump'] as const;
export const CLIENT_TOOLS = ['mariadb', 'mysql'] as const;

// $1/$2 = preferred and fallback program (constants above), then its arguments. MariaDB ≥ 11 warns that
// `mysqldump` is deprecated and some distributions drop the old names, hence the choice on the host.
// The option file must be the program's first option. `exec` so a TERM reaches the program itself.
export const MYSQL_SCRIPT = [
  'if command -v "$1" >/dev/null 2>&1; then t=$1; elif command -v "$2" >/dev/null 2>&1; then t=$2;',
  'else echo "lifeboat: neither $1 nor $2 is installed" >&2; exit 127; fi',
  'shift 2',
  'echo "lifeboat: running $t" >&2',
  `if [ -n "\${${MYCNF_ENV}:-}" ]; then exec "$t" --defaults-extra-file="$${MYCNF_ENV}" "$@"; fi`,
  'exec "$t" "$@"',
].join('\n');

export function mysqlConnectionArgs(a: MysqlArtifact): string[] {
  const args = [`--user=${a.user}`];
  if (a.host) args.push(`--host=${a.host}`);
  if (a.port) args.push(`--port=${a.port}`);
  return args;
}

/** argv of a MySQL program picked on the host, run inside the compose service when one is configured. */
export function mysqlProgram(a: MysqlArtifact, tools: readonly [string, string], args: string[]): string[] {
  return inService(a.compose, ['sh', '-c', MYSQL_SCRIPT, 'lifeboat-mysql', ...tools, ...args]);
}

// --no-tablespaces: MySQL ≥ 8.0.21 otherwise needs the global PROCESS privilege, and a per-database dump
// has no use for tablespace definitions. `--` keeps a database name starting with '-' an operand.
export function mysqlDumpArgv(a: MysqlArtifact): string[] {
  const opts = ['--single-transaction', '--routines', '--events', '--triggers', '--no-tablespaces'];
  return mysqlProgram(a, DUMP_TOOLS, [...opts, ...mysqlConnectionArgs(a), '--databases', '--', a.database]);
}

export const SIZE_SQL = 'SELECT COALESCE(SUM(data_length+index_length),0) FROM information_schema.tables WHERE table_schema = DATABASE()';

export function mysqlSizeArgv(a: MysqlArtifact): string[] {
  return mysqlProgram(a, CLIENT_TOOLS, ['--batch', '--skip-column-names', ...mysqlConnectionArgs(a), `--database=${a.database}`, '-e', SIZE_SQL]);
}

export function mysqlFileName(a: MysqlArtifact): string {
  return `database/${a.name}.sql`;
}

/** A value for a MySQL option file: double-quoted, with the escapes my_default.c undoes. */
export function optionFileValue(value: string): string {
  const escapes: Record<string, string> = { '\\': '\\\\', '"': '\\"', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b' };
  return `"${value.replace(/[\\"\n\r\t\b]/g, (c) => escapes[c]!)}"`;
}

export function optionFile(user: string, password: string): string {
  return `[client]\nuser=${optionFileValue(user)}\npassword=${optionFileValue(password)}\n`;
}

export async function mycnf(a: MysqlArtifact): Promise<SecretFile | undefined> {
  if (!a.password) return undefined;
  const password = await resolveSecret(a.password, `password of mysql artifact ${a.name}`);
  if (password.includes('\0')) throw new LifeboatError('ConfigError', `password of mysql artifact ${a.name} contains a NUL byte, which an option file cannot hold`);
  return { env: MYCNF_ENV, content: optionFile(a.user, password) };
}

export function classifyMysqlFailure(label: string, a: MysqlArtifact, exitCode: number, stderr: string): Error {
  const text = stderr.trim().split('\n').filter((l) => !l.startsWith('lifeboat: running')).slice(-5).join('\n');
  // Missing privileges (e.g. to SHOW CREATE PROCEDURE of another definer's routine) do not heal on retry either.
  if (/Access denied|insufficient privileges/i.test(stderr)) {
    return new LifeboatError('AuthFailed', `mysql dump of ${a.database} on ${label}: access denied:\n${text}`);
  }
  if (/Unknown database/i.test(stderr)) return new LifeboatError('ConfigError', `mysql on ${label}: database "${a.database}" does not exist`);
  if (exitCode === 127) return new LifeboatError('MissingTool', `mysql dump on ${label}: a MySQL/MariaDB client is not installed:\n${text}`);
  return new LifeboatError('CommandFailed', `mysql dump of ${a.database} on ${label} failed (exit ${exitCode}):\n${text}`);
}

/** The program the script picked, from its own stderr line. */
export function toolUsed(stderr: string): string | undefined {
  return /^lifeboat: running (\S+)$/m.exec(stderr)?.[1];
}

export const mysql: SourceModule<MysqlArtifact> = {
  // The program is picked on the host (see MYSQL_SCRIPT); a missing one fails as MissingTool (exit 127).
  requiredTools: (a) => (a.compose ? [a.compose.command[0]!] : []),
  requiredPaths: () => [],

  async estimateBytes(host: Host, a, signal) {
    const res = await host.exec(mysqlSizeArgv(a), { secretFile: await mycnf(a), signal });
    if (res.exitCode !== 0) throw classifyMysqlFailure(host.label, a, res.exitCode, res.stderr);
    return Number(res.stdout.trim()) || 0;
  },

  async capture({ host, artifact: a, snapshotDir, signal, progress }) {
    const rel = mysqlFileName(a);
    const onBytes = (bytes: number) => progress({ artifact: a.name, bytes });
    const target = join(snapshotDir, rel);
    const secretFile = await mycnf(a);
    const out = await streamToFile(host, mysqlDumpArgv(a), target, { secretFile, signal, onBytes });
    try {
      if (out.exitCode !== 0) throw classifyMysqlFailure(host.label, a, out.exitCode, out.stderr);
      if (!(await tailIncludes(out.partial, DUMP_COMPLETE, 1024))) {
        throw new LifeboatError('CommandFailed', `mysql dump of ${a.database} on ${host.label} ended without "${DUMP_COMPLETE}" (truncated dump)`);
      }
      await out.commit();
      return { paths: [rel], bytes: out.bytes, details: { database: a.database, tool: toolUsed(out.stderr) ?? 'unknown' } };
    } catch (err) {
      await out.discard();
      throw err;
    }
  },
};
