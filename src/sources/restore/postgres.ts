// PostgreSQL restore and restore drill. Restore runs the clients on the target host with the artifact's own
// connection settings (sudo -u / compose / passfile, as capture does), reading the dump pushed to a private
// temp dir there. The drill loads the dump into a throwaway database on the scratch server with the backup
// host's clients and compares row counts with those recorded at capture.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { PostgresArtifact, VerifySettings } from '../../config/schema';
import { resolveSecret } from '../../config/secrets';
import type { Host } from '../../remote/host';
import type { SecretFile } from '../../remote/remote-command';
import { rsyncPush } from '../../remote/rsync';
import { LifeboatError } from '../../shared/errors';
import { passfile, passfileLine, pgCommand, pgConnectionArgs } from '../postgres';
import type { RecordedComponent, RestoreContext, RestoreModule, RestoreStep, VerifyCheck, VerifyContext } from '../types';
import { lastLines, withInputFile, withRemoteTempDir } from './remote';
import { requireRestrictablePsql, restrictedCopy } from './psql-restricted';
import { LocalHost } from '../../remote/local';
import { dieWithWorker } from '../../shared/die-with-worker';

type Format = PostgresArtifact['format'];
type DbState = { exists: false } | { exists: true; relations: number };

// User relations (tables, views, sequences, …) outside the system schemas: a database with none is "empty".
const RELATIONS_SQL =
  "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'";

function files(c: RecordedComponent): { dump: string; globals?: string; format: Format } {
  const globals = c.paths.find((p) => p.endsWith('.globals.sql'));
  const dump = c.paths.find((p) => p !== globals);
  if (!dump) throw new LifeboatError('IntegrityCheckFailed', `metadata.yml records no dump file for this postgres artifact`);
  return { dump, globals, format: dump.endsWith('.dump') ? 'custom' : 'plain' };
}

function originalDb(a: PostgresArtifact, c: RecordedComponent): string {
  return typeof c.details.database === 'string' ? c.details.database : a.database;
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

/** Runs argv (already wrapped by pgCommand) on the target host; returns stderr. */
async function run(t: Target, argv: string[], what: string): Promise<string> {
  const res = await t.host.exec(argv, { secretFile: t.secretFile, signal: t.signal });
  if (res.exitCode !== 0) throw pgFailure(t.host, what, res.exitCode, res.stderr);
  return res.stderr;
}

async function dbState(t: Target, db: string): Promise<DbState> {
  const argv = ['psql', '-X', '-A', '-t', ...pgConnectionArgs(t.a), `--dbname=${db}`, '-c', RELATIONS_SQL];
  const res = await t.host.exec(pgCommand(t.a, argv), { secretFile: t.secretFile, signal: t.signal });
  if (res.exitCode !== 0 && /database ".*" does not exist/.test(res.stderr)) return { exists: false };
  if (res.exitCode !== 0) throw pgFailure(t.host, `checking database ${db}`, res.exitCode, res.stderr);
  return { exists: true, relations: Number(res.stdout.trim()) || 0 };
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
  const { format, globals } = files(c);
  const db = database ?? originalDb(t.a, c);
  const state = await dbState(t, db);
  const used = state.exists && state.relations > 0;
  return {
    db,
    state,
    format,
    drop: used && format === 'plain',
    create: !state.exists || (used && format === 'plain'),
    clean: used && format === 'custom',
    globals: !!globals && force && db === originalDb(t.a, c),
  };
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

/** Returns how many statements of the globals failed (roles that exist already do). */
async function load(t: Target, d: Decision, dir: string): Promise<number> {
  const conn = pgConnectionArgs(t.a);
  const pg = (argv: string[]) => pgCommand(t.a, argv);
  let globalsErrors = 0;
  if (d.globals) {
    // "role … already exists" is expected for every role still there, so no ON_ERROR_STOP here.
    const stderr = await run(t, withInputFile(`${dir}/globals.sql`, pg(['psql', '-X', '--quiet', ...conn, '--dbname=postgres', '--file=-'])), 'applying the globals');
    globalsErrors = stderr.split('\n').filter((l) => /\bERROR:/.test(l)).length;
  }
  if (d.drop) await run(t, pg(['dropdb', ...conn, '--', d.db]), `dropping database ${d.db}`);
  if (d.create) await run(t, pg(['createdb', ...conn, '--template=template0', '--', d.db]), `creating database ${d.db}`);
  // One transaction: a failed load leaves the database as it was (or empty, when just created).
  const client =
    d.format === 'plain'
      ? ['psql', '-X', '--single-transaction', '-v', 'ON_ERROR_STOP=1', '--quiet', ...conn, `--dbname=${d.db}`, '--file=-']
      : ['pg_restore', '--no-owner', '--exit-on-error', '--single-transaction', ...(d.clean ? ['--clean', '--if-exists'] : []), ...conn, `--dbname=${d.db}`];
  await run(t, withInputFile(`${dir}/dump`, pg(client)), `loading the dump into ${d.db}`);
  return globalsErrors;
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
    const d = await decide(t, ctx.component, ctx.options.force, ctx.options.database);
    if (d.state.exists && d.state.relations > 0 && !ctx.options.force) throw refusal(d, ctx.host.label);
    const { dump, globals } = files(ctx.component);
    const local = join(ctx.snapshotDir, dump);
    const bytes = (await stat(local)).size;
    // Plain SQL (the dump, the globals) is loaded by psql in restricted mode: see psql-restricted.ts.
    const plain = [...(d.format === 'plain' ? [local] : []), ...(d.globals && globals ? [join(ctx.snapshotDir, globals)] : [])];
    if (plain.length) await requireRestrictablePsql(ctx.host, pgCommand(t.a, ['psql']), ctx.signal);
    const guarded = new Map(plain.map((f) => [f, `${f}.restricted`]));
    try {
      for (const [src, dest] of guarded) await restrictedCopy(src, dest, ctx.signal);
      const pushed = (f: string) => guarded.get(f) ?? f;
      const globalsErrors = await withRemoteTempDir(ctx.host, ctx.signal, async (dir) => {
        ctx.progress({ artifact: ctx.artifact.name, phase: 'push' });
        await rsyncPush(ctx.host, pushed(local), `${dir}/dump`, { signal: ctx.signal, owner: false, onProgress: (rsync) => ctx.progress({ artifact: ctx.artifact.name, rsync }) });
        if (d.globals && globals) await rsyncPush(ctx.host, pushed(join(ctx.snapshotDir, globals)), `${dir}/globals.sql`, { signal: ctx.signal, owner: false });
        ctx.progress({ artifact: ctx.artifact.name, phase: 'load' });
        return load(t, d, dir);
      });
      const details = { database: d.db, format: d.format, dropped: d.drop, created: d.create, clean: d.clean, globals: d.globals, ...(d.globals ? { globals_errors: globalsErrors } : {}) };
      return { target: where(d, ctx.host), bytes, details };
    } finally {
      for (const dest of guarded.values()) await rm(dest, { force: true });
    }
  },

  async verify(ctx) {
    const scratch = ctx.scratch.postgres;
    if (!scratch) return [{ artifact: ctx.artifact.name, check: 'scratch restore', ok: false, detail: 'scratch server not configured (plan.verify.postgres)' }];
    const work = await mkdtemp(join(ctx.scratchDir, 'postgres-'));
    try {
      return await drill(ctx, await scratchServer(scratch, work), work);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  },
};

// ------------------------------------------------------------------ restore drill (backup host, scratch server)

type ScratchPg = NonNullable<VerifySettings['postgres']>;

/** The drill loads on the backup host itself. */
const backupHost = new LocalHost('backup host');

interface Scratch {
  conn: string[];
  env: Record<string, string>;
  label: string;
}

async function scratchServer(s: ScratchPg, work: string): Promise<Scratch> {
  const env: Record<string, string> = {};
  if (s.password) {
    const password = await resolveSecret(s.password, 'password of the postgres scratch server (plan.verify.postgres)');
    env.PGPASSFILE = join(work, 'pgpass');
    await writeFile(env.PGPASSFILE, passfileLine(password), { mode: 0o600 });
  }
  return { conn: ['--no-password', '--host', s.host, '--port', String(s.port), '--username', s.user], env, label: `${s.host}:${s.port}` };
}

async function scratchExec(s: Scratch, file: string, args: string[], signal?: AbortSignal) {
  const res = await execa(...dieWithWorker(file, args), { env: s.env, reject: false, stdin: 'ignore', cancelSignal: signal, forceKillAfterDelay: 5000, maxBuffer: 16 * 1024 * 1024 });
  if ((res as { code?: string }).code === 'ENOENT') throw new LifeboatError('MissingTool', `${file} is not installed on the backup host`);
  if (res.isCanceled) throw new Error(`${file} was cancelled`);
  return { exitCode: res.exitCode ?? 1, stdout: String(res.stdout), stderr: String(res.stderr) };
}

async function drill(ctx: VerifyContext<PostgresArtifact>, s: Scratch, work: string): Promise<VerifyCheck[]> {
  const name = ctx.artifact.name;
  const db = `lifeboat_verify_${randomBytes(6).toString('hex')}`;
  const created = await scratchExec(s, 'createdb', [...s.conn, '--template=template0', '--', db], ctx.signal);
  if (created.exitCode !== 0) return [{ artifact: name, check: 'scratch restore', ok: false, detail: `createdb ${db} on ${s.label} failed: ${lastLines(created.stderr)}` }];
  const checks: VerifyCheck[] = [];
  try {
    const loaded = await loadScratch(ctx, s, db, work);
    checks.push(loaded);
    if (loaded.ok) checks.push(...(await compareRows(ctx, s, db, work)));
  } finally {
    checks.push(...(await dropScratch(name, s, db)));
  }
  return checks;
}

// Roles of the source rarely exist on the scratch server: pg_restore skips ownership and grants
// (--no-owner --no-acl); for a plain dump, psql goes on after errors and only "role … does not exist" is forgiven.
async function loadScratch(ctx: VerifyContext<PostgresArtifact>, s: Scratch, db: string, work: string): Promise<VerifyCheck> {
  const { dump, format } = files(ctx.component);
  const file = join(ctx.snapshotDir, dump);
  ctx.progress({ artifact: ctx.artifact.name, phase: 'load', database: db });
  let res: Awaited<ReturnType<typeof scratchExec>>;
  if (format === 'plain') {
    // The drill goes on after errors (missing roles), so a failed COPY turns data lines into commands: restricted.
    await requireRestrictablePsql(backupHost, ['psql'], ctx.signal);
    const restricted = join(work, 'dump.restricted.sql');
    await restrictedCopy(file, restricted, ctx.signal);
    res = await scratchExec(s, 'psql', ['-X', '--quiet', ...s.conn, `--dbname=${db}`, `--file=${restricted}`], ctx.signal);
  } else {
    res = await scratchExec(s, 'pg_restore', ['--no-owner', '--no-acl', '--exit-on-error', ...s.conn, `--dbname=${db}`, file], ctx.signal);
  }
  const errors = res.stderr.split('\n').filter((l) => /\bERROR:/.test(l));
  const roleErrors = errors.filter((l) => /ERROR:\s+role ".*" does not exist/.test(l));
  const fatal = errors.filter((l) => !roleErrors.includes(l));
  const ok = res.exitCode === 0 && fatal.length === 0;
  const skipped = roleErrors.length ? ` (${roleErrors.length} ownership/grant statements skipped: roles missing on the scratch server)` : '';
  const detail = ok ? `${format} dump loaded into ${db} on ${s.label}${skipped}` : `loading the ${format} dump failed (exit ${res.exitCode}):\n${(fatal.length ? fatal.slice(0, 5).join('\n') : lastLines(res.stderr))}`;
  return { artifact: ctx.artifact.name, check: 'load', ok, detail };
}

/** One `SELECT <i> || ':' || count(*)` per recorded table, in one psql run that goes on after an error. */
async function compareRows(ctx: VerifyContext<PostgresArtifact>, s: Scratch, db: string, work: string): Promise<VerifyCheck[]> {
  const name = ctx.artifact.name;
  const recorded = ctx.component.details.row_counts;
  if (!recorded || typeof recorded !== 'object') return [{ artifact: name, check: 'rows', ok: true, detail: 'row counts not recorded in metadata.yml; only the load was checked' }];
  const expected = Object.entries(recorded as Record<string, number>);
  const script = join(work, 'counts.sql');
  // Names are exactly as pg_dump wrote them in its COPY lines: quoted where needed.
  await writeFile(script, expected.map(([table], i) => `SELECT '${i}:' || count(*) FROM ${table};\n`).join(''), { mode: 0o600 });
  const res = await scratchExec(s, 'psql', ['-X', '-A', '-t', ...s.conn, `--dbname=${db}`, `--file=${script}`], ctx.signal);
  const found = new Map(res.stdout.split('\n').map((l) => /^(\d+):(\d+)$/.exec(l.trim())).filter((m) => m !== null).map((m) => [Number(m[1]), Number(m[2])]));
  const checks: VerifyCheck[] = [];
  let rows = 0;
  expected.forEach(([table, want], i) => {
    const got = found.get(i);
    rows += want;
    if (got !== want) checks.push({ artifact: name, check: `rows ${table}`, ok: false, detail: got === undefined ? `expected ${want} rows, the table cannot be read` : `expected ${want} rows, found ${got}` });
  });
  const ok = checks.length === 0;
  checks.push({ artifact: name, check: 'rows', ok, detail: ok ? `${expected.length} tables, ${rows} rows as recorded` : `${checks.length} of ${expected.length} tables differ from the recorded row counts` });
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
