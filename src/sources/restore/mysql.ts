// MySQL / MariaDB restore and restore drill. The dump was made with `--databases <db>`, so it creates and
// selects its database itself; restoring under another name rewrites those lines (renameDatabase).
// Restore pushes the dump to a private temp dir on the target host and feeds it to the client there;
// the drill streams it into a throwaway database on the scratch server from the backup host. The snapshot is
// untrusted: the target database comes from the plan (or --database), the recorded path must be the artifact's
// own, and the client refuses the dump's client commands (`\! cmd`, see SANDBOX_PROBE).
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import type { MysqlArtifact, VerifySettings } from '../../config/schema';
import { resolveSecret } from '../../config/secrets';
import type { Host } from '../../remote/host';
import type { SecretFile } from '../../remote/remote-command';
import { rsyncPush } from '../../remote/rsync';
import { LifeboatError } from '../../shared/errors';
import { CLIENT_TOOLS, MYCNF_ENV, MYSQL_SCRIPT, mycnf, mysqlConnectionArgs, mysqlFileName, mysqlProgram, optionFile } from '../mysql';
import type { RecordedComponent, RestoreContext, RestoreModule, RestoreStep, VerifyCheck, VerifyContext } from '../types';
import { lastLines, withInputFile, withRemoteTempDir } from './remote';
import { dieWithWorker } from '../../shared/die-with-worker';
import { LocalHost } from '../../remote/local';
import { inService } from '../compose-exec';
import { nothingRecorded, recordedPaths, withRecordedPaths } from './snapshot-paths';

/** The drill loads on the backup host itself. */
const backupHost = new LocalHost('backup host');

/** A MySQL identifier in backticks. */
export function quoteName(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

/** A string literal that needs no escaping rules at all: the value's UTF-8 bytes as hex. */
function literal(value: string): string {
  return `CONVERT(X'${Buffer.from(value, 'utf8').toString('hex')}' USING utf8mb4)`;
}

// The only statements of a `--databases` dump that name its database (ALTER DATABASE appears around routines
// whose character set differs). Data never starts a line with them: INSERTs are one line each.
const NAMING_LINE = /^(CREATE DATABASE (?:\/\*!32312 IF NOT EXISTS\*\/ )?|USE |ALTER DATABASE )`((?:[^`]|``)+)`/;
const PREFIXES = ['CREATE DATABASE ', 'USE `', 'ALTER DATABASE '].map((p) => Buffer.from(p));

/**
 * Rewrites the database name in those lines from `from` to `to`; every other byte passes unchanged (lines are
 * handled as latin1, which maps bytes 1:1, so binary column data survives).
 */
export function renameDatabase(from: string, to: string): Transform {
  const fromQuoted = Buffer.from(quoteName(from), 'utf8').toString('latin1');
  const toQuoted = Buffer.from(quoteName(to), 'utf8').toString('latin1');
  const rewrite = (line: Buffer): Buffer => {
    if (!PREFIXES.some((p) => line.subarray(0, p.length).equals(p))) return line;
    const text = line.toString('latin1');
    const m = NAMING_LINE.exec(text);
    if (!m || `\`${m[2]}\`` !== fromQuoted) return line;
    return Buffer.from(`${m[1]}${toQuoted}${text.slice(m[0].length)}`, 'latin1');
  };
  let rest = Buffer.alloc(0);
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      const buf = rest.length ? Buffer.concat([rest, chunk]) : chunk;
      const out: Buffer[] = [];
      let start = 0;
      for (let nl = buf.indexOf(10); nl !== -1; nl = buf.indexOf(10, start)) {
        out.push(rewrite(buf.subarray(start, nl + 1)));
        start = nl + 1;
      }
      rest = Buffer.from(buf.subarray(start));
      done(null, Buffer.concat(out));
    },
    flush(done: TransformCallback) {
      done(null, rewrite(rest));
    },
  });
}

function dumpPath(a: MysqlArtifact, c: RecordedComponent): string {
  const [dump] = recordedPaths(c, a.name, [mysqlFileName(a)]);
  if (!dump) throw nothingRecorded('mysql', a.name, 'dump file');
  return dump;
}

/**
 * The database the dump names in its own CREATE DATABASE / USE lines (recorded at capture): only used to find
 * those lines and point them at the target, which comes from the plan or --database, never from metadata.yml.
 */
function dumpedDb(a: MysqlArtifact, c: RecordedComponent): string {
  const recorded = (c.details ?? {}).database;
  return typeof recorded === 'string' && recorded !== '' ? recorded : a.database;
}

// A dump is fed to the mysql client, which runs the client commands in it: `\! cmd` runs a shell wherever the
// client runs. MariaDB's --sandbox (10.5.25, 10.6.18, 10.11.8, 11.0.6, 11.1.5, 11.2.4, 11.4.2 and later) and
// MySQL's --commands=OFF (8.0.40, 8.4.3, 9.1 and later) refuse them; a client with neither is refused. $1/$2 as
// in MYSQL_SCRIPT; prints the option to use.
const SANDBOX_PROBE = [
  'if command -v "$1" >/dev/null 2>&1; then t=$1; elif command -v "$2" >/dev/null 2>&1; then t=$2;',
  'else echo "lifeboat: neither $1 nor $2 is installed" >&2; exit 127; fi',
  'h=$("$t" --no-defaults --help 2>/dev/null)',
  'case $h in *"--sandbox "*) echo --sandbox ;; *"--commands "*) echo --commands=OFF ;; *) "$t" --version >&2; exit 69 ;; esac',
].join('\n');

/** The client option that stops a dump from running client commands, or MissingTool. */
async function sandboxOption(host: Host, argv: string[], signal: AbortSignal): Promise<string> {
  const res = await host.exec(argv, { signal });
  const option = res.stdout.trim();
  if (res.exitCode === 0 && (option === '--sandbox' || option === '--commands=OFF')) return option;
  throw new LifeboatError(
    'MissingTool',
    `the mysql client on ${host.label} (${lastLines(res.stderr) || `exit ${res.exitCode}`}) cannot load a dump safely: it lacks --sandbox ` +
      '(MariaDB 10.5.25, 10.6.18, 10.11.8, 11.0.6, 11.1.5, 11.2.4, 11.4.2 or later) and --commands (MySQL 8.0.40, 8.4.3, 9.1 or later); upgrade the client there',
  );
}

interface Target {
  host: Host;
  a: MysqlArtifact;
  secretFile?: SecretFile;
  signal: AbortSignal;
}

/** stderr without the line the program-picking script adds. */
function clientErrors(stderr: string): string {
  return lastLines(stderr.split('\n').filter((l) => !l.startsWith('lifeboat: running')).join('\n'));
}

function mysqlFailure(host: Host, what: string, exitCode: number, stderr: string): LifeboatError {
  const text = clientErrors(stderr);
  if (/Access denied/i.test(stderr)) return new LifeboatError('AuthFailed', `${what} on ${host.label}: access denied:\n${text}`);
  if (/Not allowed in the sandbox mode/i.test(stderr)) {
    // A dump as mariadb-dump/mysqldump writes it holds no client command: this one was altered; a retry cannot help.
    return new LifeboatError('IntegrityCheckFailed', `${what} on ${host.label}: the dump holds client commands (e.g. \\! …), refused by the client's sandbox; it is not the dump as taken:\n${text}`);
  }
  if (exitCode === 127) return new LifeboatError('MissingTool', `${what} on ${host.label}: a MySQL/MariaDB client is not installed:\n${text}`);
  return new LifeboatError('CommandFailed', `${what} on ${host.label} failed (exit ${exitCode}):\n${text}`);
}

/** The client on the target host (picked there, run in the compose service when configured), stdin from a host file. */
async function client(t: Target, args: string[], what: string, input?: string): Promise<string> {
  const argv = mysqlProgram(t.a, CLIENT_TOOLS, [...mysqlConnectionArgs(t.a), ...args]);
  const res = await t.host.exec(input ? withInputFile(input, argv) : argv, { secretFile: t.secretFile, signal: t.signal });
  if (res.exitCode !== 0) throw mysqlFailure(t.host, what, res.exitCode, res.stderr);
  return res.stdout;
}

/** Tables and views in the database; undefined when it does not exist. */
async function tableCount(t: Target, db: string): Promise<number | undefined> {
  const sql = `SELECT (SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ${literal(db)}), (SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ${literal(db)})`;
  const out = await client(t, ['--batch', '--skip-column-names', '-e', sql], `checking database ${db}`);
  const [exists, tables] = out.trim().split('\t').map(Number);
  return exists ? (tables ?? 0) : undefined;
}

async function target(ctx: Omit<RestoreContext<MysqlArtifact>, 'progress'>): Promise<Target> {
  return { host: ctx.host, a: ctx.artifact, secretFile: await mycnf(ctx.artifact), signal: ctx.signal };
}

function refusal(db: string, tables: number, label: string): LifeboatError {
  return new LifeboatError('ConfigError', `database ${db} on ${label} already has ${tables} tables; restore into another one with --database <name>, or pass --force to drop and recreate it`);
}

/** The dump with its database renamed, next to the snapshot (same filesystem, already sized for it). */
async function renamedCopy(snapshotDir: string, file: string, from: string, to: string, signal: AbortSignal): Promise<{ path: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(dirname(snapshotDir), '.lifeboat-mysql-'));
  const path = join(dir, 'dump.sql');
  try {
    await pipeline(createReadStream(file), renameDatabase(from, to), createWriteStream(path, { mode: 0o600 }), { signal });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return { path, remove: () => rm(dir, { recursive: true, force: true }) };
}

// With force an existing database is dropped first, so the result is exactly the dump (a dump's own
// DROP TABLE IF EXISTS would leave tables created after the snapshot behind).
export const mysqlRestore: RestoreModule<MysqlArtifact> = {
  async planRestore(ctx): Promise<RestoreStep> {
    const db = ctx.options.database ?? ctx.artifact.database;
    const dumped = dumpedDb(ctx.artifact, ctx.component);
    dumpPath(ctx.artifact, ctx.component); // a dry run refuses a forged path too
    const tables = await tableCount(await target(ctx), db);
    const used = (tables ?? 0) > 0;
    const load = 'load the dump with the mariadb/mysql client (client commands refused)' + (db === dumped ? '' : ' (database name rewritten)');
    const action = used ? (ctx.options.force ? `drop the database, then ${load}` : `refused: ${refusal(db, tables!, ctx.host.label).message}`) : load;
    return { artifact: ctx.artifact.name, type: 'mysql', target: `database ${db} on ${ctx.host.label}`, targetInUse: used, action };
  },

  async restore(ctx) {
    const t = await target(ctx);
    const original = dumpedDb(ctx.artifact, ctx.component);
    // The target is the plan's database or --database, never one named by metadata.yml.
    const db = ctx.options.database ?? ctx.artifact.database;
    const file = join(ctx.snapshotDir, dumpPath(ctx.artifact, ctx.component));
    const tables = await tableCount(t, db);
    if ((tables ?? 0) > 0 && !ctx.options.force) throw refusal(db, tables!, ctx.host.label);
    const sandbox = await sandboxOption(ctx.host, inService(ctx.artifact.compose, ['sh', '-c', SANDBOX_PROBE, 'lifeboat-mysql', ...CLIENT_TOOLS]), ctx.signal);
    const bytes = (await stat(file)).size;
    const copy = db === original ? undefined : await renamedCopy(ctx.snapshotDir, file, original, db, ctx.signal);
    try {
      await withRemoteTempDir(ctx.host, ctx.signal, async (dir) => {
        ctx.progress({ artifact: ctx.artifact.name, phase: 'push' });
        await rsyncPush(ctx.host, copy?.path ?? file, `${dir}/dump.sql`, { signal: ctx.signal, owner: false, onProgress: (rsync) => ctx.progress({ artifact: ctx.artifact.name, rsync }) });
        if (tables !== undefined && tables > 0) await client(t, ['-e', `DROP DATABASE ${quoteName(db)}`], `dropping database ${db}`);
        ctx.progress({ artifact: ctx.artifact.name, phase: 'load' });
        await client(t, [sandbox], `loading the dump into ${db}`, `${dir}/dump.sql`);
      });
    } finally {
      await copy?.remove();
    }
    const details = { database: db, dropped: (tables ?? 0) > 0, ...(db === original ? {} : { renamed_from: original }) };
    return { target: `database ${db} on ${ctx.host.label}`, bytes, details };
  },

  async verify(ctx) {
    const scratch = ctx.scratch.mysql;
    if (!scratch) return [{ artifact: ctx.artifact.name, check: 'scratch restore', ok: false, detail: 'scratch server not configured (plan.verify.mysql)' }];
    return withRecordedPaths(ctx.artifact.name, async () => {
      const file = join(ctx.snapshotDir, dumpPath(ctx.artifact, ctx.component)); // checked before anything is created
      const work = await mkdtemp(join(ctx.scratchDir, 'mysql-'));
      try {
        return await drill(ctx, await scratchServer(scratch, work), file);
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    });
  },
};

// ------------------------------------------------------------------ restore drill (backup host, scratch server)

type ScratchMysql = NonNullable<VerifySettings['mysql']>;

interface Scratch {
  args: string[];
  env: Record<string, string>;
  label: string;
}

async function scratchServer(s: ScratchMysql, work: string): Promise<Scratch> {
  const env: Record<string, string> = {};
  if (s.password) {
    const password = await resolveSecret(s.password, 'password of the mysql scratch server (plan.verify.mysql)');
    env[MYCNF_ENV] = join(work, 'my.cnf');
    await writeFile(env[MYCNF_ENV], optionFile(s.user, password), { mode: 0o600 });
  }
  const args = [`--user=${s.user}`, ...(s.host ? [`--host=${s.host}`] : []), ...(s.port ? [`--port=${s.port}`] : []), ...(s.socket ? [`--socket=${s.socket}`] : [])];
  return { args, env, label: s.socket ?? `${s.host ?? 'localhost'}:${s.port ?? 3306}` };
}

/** The backup host's mariadb (or mysql) client, picked and given the option file by capture's own script. */
function scratchClient(s: Scratch, args: string[], signal?: AbortSignal) {
  return execa(...dieWithWorker('sh', ['-c', MYSQL_SCRIPT, 'lifeboat-mysql', ...CLIENT_TOOLS, ...s.args, ...args]), {
    env: s.env,
    reject: false,
    cancelSignal: signal,
    forceKillAfterDelay: 5000,
    stdin: 'pipe',
    maxBuffer: 16 * 1024 * 1024,
  });
}

async function scratchSql(s: Scratch, sql: string, signal?: AbortSignal) {
  const child = scratchClient(s, ['--batch', '--skip-column-names', '-e', sql], signal);
  child.stdin?.end();
  const res = await child;
  return { exitCode: res.exitCode ?? 1, stdout: String(res.stdout), stderr: String(res.stderr) };
}

async function drill(ctx: VerifyContext<MysqlArtifact>, s: Scratch, file: string): Promise<VerifyCheck[]> {
  const name = ctx.artifact.name;
  const db = `lifeboat_verify_${randomBytes(6).toString('hex')}`;
  const checks: VerifyCheck[] = [];
  try {
    const loaded = await loadScratch(ctx, s, db, file);
    checks.push(loaded);
    if (loaded.ok) checks.push(await tablesCheck(ctx, s, db));
  } finally {
    const dropped = await scratchSql(s, `DROP DATABASE IF EXISTS ${quoteName(db)}`); // no signal: runs after a cancellation too
    if (dropped.exitCode !== 0) checks.push({ artifact: name, check: 'cleanup', ok: false, detail: `scratch database ${db} on ${s.label} could not be dropped: ${clientErrors(dropped.stderr)}` });
  }
  return checks;
}

async function loadScratch(ctx: VerifyContext<MysqlArtifact>, s: Scratch, db: string, file: string): Promise<VerifyCheck> {
  ctx.progress({ artifact: ctx.artifact.name, phase: 'load', database: db });
  const sandbox = await sandboxOption(backupHost, ['sh', '-c', SANDBOX_PROBE, 'lifeboat-mysql', ...CLIENT_TOOLS], ctx.signal);
  const child = scratchClient(s, [sandbox], ctx.signal);
  // The client may stop reading early (a failed statement): its exit status tells, not the pipe's EPIPE.
  const fed = pipeline(createReadStream(file), renameDatabase(dumpedDb(ctx.artifact, ctx.component), db), child.stdin!).catch((err: unknown) => err);
  const res = await child;
  await fed;
  if (res.isCanceled) throw new Error('loading the mysql dump into the scratch server was cancelled');
  const ok = res.exitCode === 0;
  const detail = ok ? `dump loaded into ${db} on ${s.label}` : `loading the dump failed (exit ${res.exitCode}): ${clientErrors(String(res.stderr))}`;
  return { artifact: ctx.artifact.name, check: 'load', ok, detail };
}

async function tablesCheck(ctx: VerifyContext<MysqlArtifact>, s: Scratch, db: string): Promise<VerifyCheck> {
  const sql = `SELECT table_type, COUNT(*) FROM information_schema.tables WHERE table_schema = ${literal(db)} GROUP BY table_type`;
  const res = await scratchSql(s, sql, ctx.signal);
  const counts = Object.fromEntries(res.stdout.split('\n').filter(Boolean).map((l) => l.split('\t')).map(([type, n]) => [type, Number(n)]));
  const tables = counts['BASE TABLE'] ?? 0;
  const ok = res.exitCode === 0 && tables > 0;
  const detail = res.exitCode !== 0 ? `counting the tables failed: ${lastLines(res.stderr)}` : `${tables} tables, ${counts.VIEW ?? 0} views`;
  return { artifact: ctx.artifact.name, check: 'tables', ok, detail };
}
