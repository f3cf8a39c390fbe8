// PostgreSQL restore and restore drill. Restore runs the clients on the target host with the artifact's own
// connection settings (sudo -u / compose / passfile, as capture does), reading the dump pushed to a private
// temp dir there. The drill loads the dump into a throwaway database on the scratch server with the backup
// host's clients, as a role that owns only its scratch databases, and compares row counts with those recorded at
// capture. Everything from the snapshot is untrusted: the target database comes from the plan (or --database),
// recorded paths must be the artifact's own, plain SQL is loaded in psql's restricted mode, and recorded table
// names are parsed and re-quoted before they reach SQL.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { PostgresArtifact, VerifySettings } from '../../config/schema';
import { resolveSecret } from '../../config/secrets';
import { execBatch } from '../../remote/batch';
import type { ExecResult, Host } from '../../remote/host';
import type { SecretFile } from '../../remote/remote-command';
import { rsyncPush } from '../../remote/rsync';
import { LifeboatError } from '../../shared/errors';
import { dumpFileName, globalsFileName, passfile, passfileLine, pgCommand, pgConnectionArgs } from '../postgres';
import type { RecordedComponent, RestoreContext, RestoreModule, RestoreStep, VerifyCheck, VerifyContext } from '../types';
import { lastLines, MKTEMP_ARGV, removeRemoteDir, tempDirOf, withInputFile, withInputFileRemovingDir } from './remote';
import { assertRestrictable, requireRestrictablePsql, restrictedCopy } from './psql-restricted';
import { nothingRecorded, recordedPaths, withRecordedPaths } from './snapshot-paths';
import { parseQualifiedName, quoteQualified } from '../pg-identifiers';
import { LocalHost } from '../../remote/local';
import { dieWithWorker } from '../../shared/die-with-worker';

type Format = PostgresArtifact['format'];
type DbState = { exists: false } | { exists: true; relations: number };

// User relations (tables, views, sequences, …) outside the system schemas: a database with none is "empty".
const RELATIONS_SQL =
  "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'";

/**
 * The dump (and globals) recorded for this artifact: only its own names in the snapshot (the format is the one
 * the snapshot was taken with, which the plan may since have changed).
 */
function files(a: PostgresArtifact, c: RecordedComponent): { dump: string; globals?: string; format: Format } {
  const globalsName = globalsFileName(a);
  const names = { plain: dumpFileName({ ...a, format: 'plain' }), custom: dumpFileName({ ...a, format: 'custom' }) };
  const paths = recordedPaths(c, a.name, [names.plain, names.custom, globalsName]);
  const dump = paths.find((p) => p !== globalsName);
  if (!dump) throw nothingRecorded('postgres', a.name, 'dump file');
  return { dump, globals: paths.find((p) => p === globalsName), format: dump === names.custom ? 'custom' : 'plain' };
}

function pgFailure(host: Host, what: string, exitCode: number, stderr: string): LifeboatError {
  const text = lastLines(stderr);
  if (/password authentication failed|no password supplied|Peer authentication failed|FATAL:\s+role ".*" does not exist/.test(stderr)) {
    return new LifeboatError('AuthFailed', `${what} on ${host.label}: authentication failed:\n${text}`);
  }
  if (/ERROR:\s+role ".*" does not exist/.test(stderr)) {
    // A plain dump sets owners and grants; a retry cannot help.
    return new LifeboatError('ConfigError', `${what} on ${host.label}: the dump names roles this server lacks; create them first (the snapshot's globals file lists them):\n${text}`);
  }
  if (exitCode === 127) return new LifeboatError('MissingTool', `${what} on ${host.label}: a PostgreSQL client (or sudo, or docker) is not installed:\n${text}`);
  if (/backslash commands are restricted/.test(stderr)) {
    // pg_dump writes no meta-command but its own \restrict pair: this dump was altered; a retry cannot help.
    return new LifeboatError('IntegrityCheckFailed', `${what} on ${host.label}: the dump holds psql meta-commands (e.g. \\! …), refused by restricted mode; it is not pg_dump's output as taken:\n${text}`);
  }
  if (/is being accessed by other users/.test(stderr)) {
    return new LifeboatError('CommandFailed', `${what} on ${host.label}: the database is in use; stop the application first (restore quiesces the source by default):\n${text}`);
  }
  return new LifeboatError('CommandFailed', `${what} on ${host.label} failed (exit ${exitCode}):\n${text}`);
}

interface Target {
  host: Host;
  a: PostgresArtifact;
  secretFile?: SecretFile;
  signal: AbortSignal;
}

const dbStateArgv = (a: PostgresArtifact, db: string) => pgCommand(a, ['psql', '-X', '-A', '-t', ...pgConnectionArgs(a), `--dbname=${db}`, '-c', RELATIONS_SQL]);

function dbStateOf(host: Host, db: string, res: ExecResult): DbState {
  if (res.exitCode !== 0 && /database ".*" does not exist/.test(res.stderr)) return { exists: false };
  if (res.exitCode !== 0) throw pgFailure(host, `checking database ${db}`, res.exitCode, res.stderr);
  return { exists: true, relations: Number(res.stdout.trim()) || 0 };
}

async function dbState(t: Target, db: string): Promise<DbState> {
  return dbStateOf(t.host, db, await t.host.exec(dbStateArgv(t.a, db), { secretFile: t.secretFile, signal: t.signal }));
}

interface Decision {
  db: string;
  state: DbState;
  format: Format;
  drop: boolean;
  create: boolean;
  clean: boolean;
  globals: boolean;
}

/**
 * What restore does: a missing database is created (from template0); an empty one is loaded as is. A database
 * with relations needs force: a plain dump then drops and recreates it, a custom dump is restored over it with
 * `pg_restore --clean --if-exists` in one transaction. Globals (roles) only go back over the original with force.
 */
async function decide(t: Target, c: RecordedComponent, force: boolean, database: string | undefined): Promise<Decision> {
  return decision(t.a, c, force, database, await dbState(t, targetDb(t.a, database)));
}

/** The target is the plan's database or --database, never one named by metadata.yml. */
const targetDb = (a: PostgresArtifact, database: string | undefined) => database ?? a.database;

function decision(a: PostgresArtifact, c: RecordedComponent, force: boolean, database: string | undefined, state: DbState): Decision {
  const { format } = files(a, c);
  const db = targetDb(a, database);
  const used = state.exists && state.relations > 0;
  return {
    db,
    state,
    format,
    drop: used && format === 'plain',
    create: !state.exists || (used && format === 'plain'),
    clean: used && format === 'custom',
    globals: restoresGlobals(a, c, force, database),
  };
}

/** Globals (roles) go back only with force, over the plan's own database, and only when the snapshot has them. */
function restoresGlobals(a: PostgresArtifact, c: RecordedComponent, force: boolean, database: string | undefined): boolean {
  return !!files(a, c).globals && force && targetDb(a, database) === a.database;
}

function refusal(d: Decision, label: string): LifeboatError {
  const n = d.state.exists ? d.state.relations : 0;
  return new LifeboatError(
    'ConfigError',
    `database ${d.db} on ${label} already has ${n} tables/relations; restore into another one with --database <name>, or pass --force to replace it` +
      (d.format === 'plain' ? ' (it is dropped and recreated)' : ' (pg_restore --clean --if-exists)'),
  );
}

function actionOf(d: Decision): string {
  const load = d.format === 'plain' ? 'load the plain dump with psql' : 'restore the custom dump with pg_restore --no-owner';
  const steps = [d.globals && 'apply the globals (roles)', d.drop && 'drop the database', d.create && 'create the database', d.clean ? `${load} --clean --if-exists` : load];
  return steps.filter(Boolean).join(', then ');
}

/** A temp dir on the target host, and whether a command there has removed it already. */
interface RemoteDir {
  path: string;
  removed: boolean;
}

/**
 * Globals, drop, create and the load, in one session, each after the one before it succeeded; the load opens the
 * dump and removes the temp dir before psql starts (`withInputFileRemovingDir`), and `dir.removed` says whether it
 * got that far. Returns how many statements of the globals failed (roles that exist already do).
 */
async function load(t: Target, d: Decision, dir: RemoteDir): Promise<number> {
  const conn = pgConnectionArgs(t.a);
  const pg = (argv: string[]) => pgCommand(t.a, argv);
  // One transaction: a failed load leaves the database as it was (or empty, when just created).
  const client =
    d.format === 'plain'
      ? ['psql', '-X', '--single-transaction', '-v', 'ON_ERROR_STOP=1', '--quiet', ...conn, `--dbname=${d.db}`, '--file=-']
      : ['pg_restore', '--no-owner', '--exit-on-error', '--single-transaction', ...(d.clean ? ['--clean', '--if-exists'] : []), ...conn, `--dbname=${d.db}`];
  const steps: Array<{ what: string; argv: string[] }> = [
    // "role … already exists" is expected for every role still there, so no ON_ERROR_STOP here.
    ...(d.globals ? [{ what: 'applying the globals', argv: withInputFile(`${dir.path}/globals.sql`, pg(['psql', '-X', '--quiet', ...conn, '--dbname=postgres', '--file=-'])) }] : []),
    ...(d.drop ? [{ what: `dropping database ${d.db}`, argv: pg(['dropdb', ...conn, '--', d.db]) }] : []),
    ...(d.create ? [{ what: `creating database ${d.db}`, argv: pg(['createdb', ...conn, '--template=template0', '--', d.db]) }] : []),
    { what: `loading the dump into ${d.db}`, argv: withInputFileRemovingDir(`${dir.path}/dump`, dir.path, pg(client)) },
  ];
  const results = await execBatch(t.host, steps.map((x) => x.argv), { secretFile: t.secretFile, signal: t.signal, stopAfterFailure: true });
  dir.removed = results.length === steps.length;
  const failed = results.findIndex((r) => r.exitCode !== 0);
  if (failed >= 0) throw pgFailure(t.host, steps[failed]!.what, results[failed]!.exitCode, results[failed]!.stderr);
  return d.globals ? results[0]!.stderr.split('\n').filter((l) => /\bERROR:/.test(l)).length : 0;
}

/**
 * Before a restore writes anything, one session asks: can this psql be restricted (when plain SQL is loaded), what
 * is in the target database, and a private temp dir to push the dump into (its removal is the caller's).
 */
async function probe(t: Target, db: string, plainSql: boolean): Promise<{ state: DbState; dir: RemoteDir }> {
  const version = pgCommand(t.a, ['psql', '--version']);
  const results = await execBatch(t.host, [...(plainSql ? [version] : []), dbStateArgv(t.a, db), MKTEMP_ARGV], { secretFile: t.secretFile, signal: t.signal });
  const [versionRes, stateRes, tempRes] = plainSql ? results : [undefined, ...results];
  const dir = { path: tempDirOf(t.host, tempRes!), removed: false };
  try {
    if (versionRes) assertRestrictable(t.host, versionRes);
    return { state: dbStateOf(t.host, db, stateRes!), dir };
  } catch (err) {
    await removeRemoteDir(t.host, dir.path);
    throw err;
  }
}

async function target(ctx: Omit<RestoreContext<PostgresArtifact>, 'progress'>): Promise<Target> {
  return { host: ctx.host, a: ctx.artifact, secretFile: await passfile(ctx.artifact), signal: ctx.signal };
}

const where = (d: Decision, host: Host) => `database ${d.db} on ${host.label}`;

export const postgresRestore: RestoreModule<PostgresArtifact> = {
  async planRestore(ctx): Promise<RestoreStep> {
    const d = await decide(await target(ctx), ctx.component, ctx.options.force, ctx.options.database);
    const used = d.state.exists && d.state.relations > 0;
    const action = used && !ctx.options.force ? `refused: ${refusal(d, ctx.host.label).message}` : actionOf(d);
    return { artifact: ctx.artifact.name, type: 'postgres', target: where(d, ctx.host), targetInUse: used, action };
  },

  async restore(ctx) {
    const t = await target(ctx);
    const { dump, globals, format } = files(ctx.artifact, ctx.component);
    const db = targetDb(t.a, ctx.options.database);
    // Plain SQL (the dump, the globals) is loaded by psql in restricted mode: see psql-restricted.ts.
    const plainSql = format === 'plain' || restoresGlobals(t.a, ctx.component, ctx.options.force, ctx.options.database);
    const { state, dir } = await probe(t, db, plainSql);
    try {
      const d = decision(t.a, ctx.component, ctx.options.force, ctx.options.database, state);
      if (d.state.exists && d.state.relations > 0 && !ctx.options.force) throw refusal(d, ctx.host.label);
      const local = join(ctx.snapshotDir, dump);
      const bytes = (await stat(local)).size;
      const plain = [...(d.format === 'plain' ? [local] : []), ...(d.globals && globals ? [join(ctx.snapshotDir, globals)] : [])];
      const guarded = new Map(plain.map((f) => [f, `${f}.restricted`]));
      try {
        for (const [src, dest] of guarded) await restrictedCopy(src, dest, ctx.signal);
        const pushed = (f: string) => guarded.get(f) ?? f;
        ctx.progress({ artifact: ctx.artifact.name, phase: 'push' });
        await rsyncPush(ctx.host, pushed(local), `${dir.path}/dump`, { signal: ctx.signal, owner: false, onProgress: (rsync) => ctx.progress({ artifact: ctx.artifact.name, rsync }) });
        if (d.globals && globals) await rsyncPush(ctx.host, pushed(join(ctx.snapshotDir, globals)), `${dir.path}/globals.sql`, { signal: ctx.signal, owner: false });
        ctx.progress({ artifact: ctx.artifact.name, phase: 'load' });
        const globalsErrors = await load(t, d, dir);
        const details = { database: d.db, format: d.format, dropped: d.drop, created: d.create, clean: d.clean, globals: d.globals, ...(d.globals ? { globals_errors: globalsErrors } : {}) };
        return { target: where(d, ctx.host), bytes, details };
      } finally {
        for (const dest of guarded.values()) await rm(dest, { force: true });
      }
    } finally {
      // Without the signal: a cancelled restore must still clean up.
      if (!dir.removed) await removeRemoteDir(ctx.host, dir.path);
    }
  },

  async verify(ctx) {
    const scratch = ctx.scratch.postgres;
    if (!scratch) return [{ artifact: ctx.artifact.name, check: 'scratch restore', ok: false, detail: 'scratch server not configured (plan.verify.postgres)' }];
    return withRecordedPaths(ctx.artifact.name, async () => {
      const dump = files(ctx.artifact, ctx.component); // checked before anything is created
      const work = await mkdtemp(join(ctx.scratchDir, 'postgres-'));
      try {
        return await drill(ctx, await scratchServer(scratch, work), work, dump);
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    });
  },
};

// ------------------------------------------------------------------ restore drill (backup host, scratch server)

type ScratchPg = NonNullable<VerifySettings['postgres']>;

/** The drill loads on the backup host itself. */
const backupHost = new LocalHost('backup host');

interface Scratch {
  conn: string[];
  env: Record<string, string>;
  user: string;
  label: string;
}

async function scratchServer(s: ScratchPg, work: string): Promise<Scratch> {
  const env: Record<string, string> = {};
  if (s.password) {
    const password = await resolveSecret(s.password, 'password of the postgres scratch server (plan.verify.postgres)');
    env.PGPASSFILE = join(work, 'pgpass');
    await writeFile(env.PGPASSFILE, passfileLine(password), { mode: 0o600 });
  }
  return { conn: ['--no-password', '--host', s.host, '--port', String(s.port), '--username', s.user], env, user: s.user, label: `${s.host}:${s.port}` };
}

async function scratchExec(s: Scratch, file: string, args: string[], signal?: AbortSignal) {
  const res = await execa(...dieWithWorker(file, args), { env: s.env, reject: false, stdin: 'ignore', cancelSignal: signal, forceKillAfterDelay: 5000, maxBuffer: 16 * 1024 * 1024 });
  if ((res as { code?: string }).code === 'ENOENT') throw new LifeboatError('MissingTool', `${file} is not installed on the backup host`);
  if (res.isCanceled) throw new Error(`${file} was cancelled`);
  return { exitCode: res.exitCode ?? 1, stdout: String(res.stdout), stderr: String(res.stderr) };
}

type DumpFiles = ReturnType<typeof files>;

// The dump's SQL runs as the drill's role, so that role bounds what a forged snapshot can do: it must own only
// its scratch databases. A superuser (or a member of one, which can SET ROLE to it) runs programs on the server
// with COPY … TO PROGRAM; the pg_*_server_* roles run programs or read/write the server's files; CREATEROLE can
// grant itself those roles (before PostgreSQL 16). One row: the problems, comma-separated, or nothing (a
// superuser counts as a member of every role, so its memberships are not listed).
const ROLE_SQL = `SELECT concat_ws(', ',
  CASE WHEN r.rolsuper THEN 'is a superuser' END,
  CASE WHEN r.rolcreaterole THEN 'has CREATEROLE' END,
  CASE WHEN NOT r.rolsuper THEN (SELECT 'is a member of ' || string_agg(m.rolname, ', ' ORDER BY m.rolname) FROM pg_roles m
    WHERE m.oid <> r.oid AND pg_has_role(r.oid, m.oid, 'MEMBER')
      AND (m.rolsuper OR m.rolcreaterole OR m.rolname IN ('pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files'))) END)
FROM pg_roles r WHERE r.rolname = current_user`;

/** Refuses a drill role that could reach beyond its scratch databases (a config problem, reported as a check). */
async function roleCheck(artifact: string, s: Scratch, signal: AbortSignal): Promise<VerifyCheck> {
  const check = 'scratch role';
  const res = await scratchExec(s, 'psql', ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', ...s.conn, '--dbname=postgres', '-c', ROLE_SQL], signal);
  if (res.exitCode !== 0) return { artifact, check, ok: false, detail: `checking the role ${s.user} on ${s.label} failed: ${lastLines(res.stderr)}` };
  const problems = res.stdout.trim();
  if (!problems) return { artifact, check, ok: true, detail: `${s.user} on ${s.label}: no superuser, CREATEROLE or server program/file rights` };
  return {
    artifact,
    check,
    ok: false,
    detail:
      `refused to load a snapshot as ${s.user} on ${s.label}, which ${problems}: a forged dump could run programs or reach files on that server. ` +
      'Set plan.verify.postgres.user to a role that owns only its scratch databases (CREATE ROLE lifeboat_drill LOGIN CREATEDB)',
  };
}

async function drill(ctx: VerifyContext<PostgresArtifact>, s: Scratch, work: string, dump: DumpFiles): Promise<VerifyCheck[]> {
  const name = ctx.artifact.name;
  const role = await roleCheck(name, s, ctx.signal);
  if (!role.ok) return [role];
  const db = `lifeboat_verify_${randomBytes(6).toString('hex')}`;
  const created = await scratchExec(s, 'createdb', [...s.conn, '--template=template0', '--', db], ctx.signal);
  if (created.exitCode !== 0) return [role, { artifact: name, check: 'scratch restore', ok: false, detail: `createdb ${db} on ${s.label} failed: ${lastLines(created.stderr)}` }];
  const checks: VerifyCheck[] = [role];
  try {
    const loaded = await loadScratch(ctx, s, db, work, dump);
    checks.push(loaded);
    if (loaded.ok) checks.push(...(await compareRows(ctx, s, db, work)));
  } finally {
    checks.push(...(await dropScratch(name, s, db)));
  }
  return checks;
}

// Statements a dump may hold that the drill role cannot run, and that do not change the data: ownership and
// grants for roles missing on the scratch server, or that the drill role may not act as (PostgreSQL ≤ 15 says
// "must be member of role", 16 and later "must be able to SET ROLE" / "permission denied to change default
// privileges"). pg_restore skips them itself (--no-owner --no-acl).
const FORGIVEN = /ERROR:\s+(role ".*" does not exist|must be member of role ".*"|must be able to SET ROLE ".*"|permission denied to change default privileges)$/;

async function loadScratch(ctx: VerifyContext<PostgresArtifact>, s: Scratch, db: string, work: string, { dump, format }: DumpFiles): Promise<VerifyCheck> {
  const file = join(ctx.snapshotDir, dump);
  ctx.progress({ artifact: ctx.artifact.name, phase: 'load', database: db });
  let res: Awaited<ReturnType<typeof scratchExec>>;
  if (format === 'plain') {
    // The drill goes on after errors (see FORGIVEN), so a failed COPY turns data lines into commands: restricted.
    await requireRestrictablePsql(backupHost, ['psql'], ctx.signal);
    const restricted = join(work, 'dump.restricted.sql');
    await restrictedCopy(file, restricted, ctx.signal);
    res = await scratchExec(s, 'psql', ['-X', '--quiet', ...s.conn, `--dbname=${db}`, `--file=${restricted}`], ctx.signal);
  } else {
    res = await scratchExec(s, 'pg_restore', ['--no-owner', '--no-acl', '--exit-on-error', ...s.conn, `--dbname=${db}`, file], ctx.signal);
  }
  // Server errors, and psql's own (a refused meta-command: pg_dump never writes one, so the dump was altered).
  const errors = res.stderr.split('\n').filter((l) => /\bERROR:|^psql:.*: error: /.test(l));
  const forgiven = errors.filter((l) => FORGIVEN.test(l));
  const fatal = errors.filter((l) => !forgiven.includes(l));
  const ok = res.exitCode === 0 && fatal.length === 0;
  const skipped = forgiven.length ? ` (${forgiven.length} ownership/grant statements skipped: roles missing on the scratch server, or not the drill role's)` : '';
  const detail = ok ? `${format} dump loaded into ${db} on ${s.label}${skipped}` : `loading the ${format} dump failed (exit ${res.exitCode}):\n${(fatal.length ? fatal.slice(0, 5).join('\n') : lastLines(res.stderr))}`;
  return { artifact: ctx.artifact.name, check: 'load', ok, detail };
}

/** A recorded row count whose table name parses as pg_dump writes it, and the statement that counts it. */
interface Counted {
  table: string;
  want: number;
  sql: string;
}

/** Splits the recorded counts into countable ones and failed checks naming each entry that is not. */
function countable(artifact: string, recorded: Record<string, unknown>): { counted: Counted[]; refused: VerifyCheck[] } {
  const counted: Counted[] = [];
  const refused: VerifyCheck[] = [];
  for (const [table, want] of Object.entries(recorded)) {
    const name = parseQualifiedName(table);
    if (!name) refused.push({ artifact, check: `rows ${JSON.stringify(table)}`, ok: false, detail: 'not a table name as pg_dump writes it (schema.table, each part bare lower-case or double-quoted); not queried' });
    else if (typeof want !== 'number' || !Number.isSafeInteger(want) || want < 0) refused.push({ artifact, check: `rows ${table}`, ok: false, detail: `recorded count ${JSON.stringify(want)} is not a row count` });
    else counted.push({ table, want, sql: `SELECT '${counted.length}:' || count(*) FROM ${quoteQualified(name)};\n` });
  }
  return { counted, refused };
}

/**
 * One `SELECT '<i>:' || count(*)` per recorded table, in one psql run that goes on after an error. Table names
 * come from metadata.yml: each is parsed and re-quoted (pg-identifiers.ts), never used as written.
 */
async function compareRows(ctx: VerifyContext<PostgresArtifact>, s: Scratch, db: string, work: string): Promise<VerifyCheck[]> {
  const name = ctx.artifact.name;
  const recorded = (ctx.component.details ?? {}).row_counts;
  if (!recorded || typeof recorded !== 'object' || Array.isArray(recorded)) return [{ artifact: name, check: 'rows', ok: true, detail: 'row counts not recorded in metadata.yml; only the load was checked' }];
  const { counted, refused } = countable(name, recorded as Record<string, unknown>);
  const script = join(work, 'counts.sql');
  await writeFile(script, counted.map((c) => c.sql).join(''), { mode: 0o600 });
  const res = await scratchExec(s, 'psql', ['-X', '-A', '-t', ...s.conn, `--dbname=${db}`, `--file=${script}`], ctx.signal);
  const found = new Map(res.stdout.split('\n').map((l) => /^(\d+):(\d+)$/.exec(l.trim())).filter((m) => m !== null).map((m) => [Number(m[1]), Number(m[2])]));
  const checks: VerifyCheck[] = [...refused];
  let rows = 0;
  counted.forEach(({ table, want }, i) => {
    const got = found.get(i);
    rows += want;
    if (got !== want) checks.push({ artifact: name, check: `rows ${table}`, ok: false, detail: got === undefined ? `expected ${want} rows, the table cannot be read` : `expected ${want} rows, found ${got}` });
  });
  const total = counted.length + refused.length;
  const ok = checks.length === 0;
  checks.push({ artifact: name, check: 'rows', ok, detail: ok ? `${total} tables, ${rows} rows as recorded` : `${checks.length} of ${total} tables differ from the recorded row counts or cannot be counted` });
  return checks;
}

/** Drops the scratch database even after a cancellation (no signal); WITH (FORCE) needs PostgreSQL ≥ 13. */
async function dropScratch(artifact: string, s: Scratch, db: string): Promise<VerifyCheck[]> {
  const forced = await scratchExec(s, 'dropdb', [...s.conn, '--if-exists', '--force', '--', db]);
  if (forced.exitCode === 0) return [];
  const plain = await scratchExec(s, 'dropdb', [...s.conn, '--if-exists', '--', db]);
  if (plain.exitCode === 0) return [];
  return [{ artifact, check: 'cleanup', ok: false, detail: `scratch database ${db} on ${s.label} could not be dropped: ${lastLines(plain.stderr)}` }];
}
