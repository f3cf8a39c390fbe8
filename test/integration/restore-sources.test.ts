// The restore modules (src/sources/restore) through LocalHost against real programs: PostgreSQL on
// 127.0.0.1:5432 (trust), MariaDB over its socket (root), redis-server/redis-check-rdb, sqlite3 and rsync.
// Each snapshot-like directory is made by hand with the same tools capture uses.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, readlink, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitForPort } from '../../scripts/lib/services';
import { CommandArtifact, FilesArtifact, MysqlArtifact, OpensearchArtifact, PostgresArtifact, RedisArtifact, SqliteArtifact, type Artifact } from '../../src/config/schema';
import { LocalHost } from '../../src/remote/local';
import { restoreModule } from '../../src/sources/restore';
import { renameDatabase } from '../../src/sources/restore/mysql';
import { quoteIdent } from '../../src/sources/sqlite';
import type { RecordedComponent, RestoreContext, RestoreModule, RestoreOptions, ScratchServers, VerifyCheck } from '../../src/sources/types';
import { psql, tempDir, uniqueName, lifeboatFailure, SCRATCH_POSTGRES } from '../support/fixtures';

const root = await tempDir('restore-src');
// Host-side temp dirs (mktemp) and secret files land under TMPDIR: a private one shows whether they are removed.
const hostTmp = join(root, 'host-tmp');
await mkdir(hostTmp);
process.env.TMPDIR = hostTmp;
const host = new LocalHost('app');
const signal = new AbortController().signal;
const suffix = randomBytes(4).toString('hex');

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function mod<A extends Artifact>(a: A): RestoreModule<A> {
  const m = restoreModule(a);
  if (!m) throw new Error(`no restore module for ${a.type}`);
  return m;
}

function component(type: Artifact['type'], paths: string[], details: Record<string, unknown>): RecordedComponent {
  return { type, source: 'app', status: 'ok', required: true, paths, bytes: 0, details };
}

function rctx<A extends Artifact>(artifact: A, snapshotDir: string, comp: RecordedComponent, options: Partial<RestoreOptions> = {}): RestoreContext<A> {
  return { host, artifact, snapshotDir, component: comp, options: { force: false, ...options }, signal, progress: () => {} };
}

/** Runs verify with a fresh scratch dir and checks that the module left nothing in it. */
async function verify<A extends Artifact>(artifact: A, snapshotDir: string, comp: RecordedComponent, scratch: ScratchServers = {}): Promise<VerifyCheck[]> {
  const scratchDir = join(root, uniqueName('scratch'));
  await mkdir(scratchDir, { mode: 0o700 });
  const checks = await mod(artifact).verify({ artifact, snapshotDir, component: comp, scratchDir, scratch, signal, progress: () => {} });
  expect(await readdir(scratchDir)).toEqual([]);
  return checks;
}

const failed = (checks: VerifyCheck[]) => checks.filter((c) => !c.ok).map((c) => c.check);

const failure = lifeboatFailure;

async function hostTmpIsClean(): Promise<void> {
  expect(await readdir(hostTmp)).toEqual([]);
}

async function newSnapshot(): Promise<string> {
  const dir = join(root, uniqueName('snap'));
  await mkdir(join(dir, 'database'), { recursive: true });
  return dir;
}

describe('postgres', () => {
  const db = `lb_rs_${suffix}`;
  const role = `lb_rs_role_${suffix}`;
  const made: string[] = [db];
  const counts = { 'public.items': 250, 'public."Odd Table"': 3 };
  const scratch: ScratchServers = { postgres: { ...SCRATCH_POSTGRES } };
  const artifact = (format: 'plain' | 'custom') => PostgresArtifact.parse({ type: 'postgres', name: `pg${format}`, database: db, host: '127.0.0.1', format });
  const snap: Record<'plain' | 'custom', { dir: string; comp: RecordedComponent }> = {} as never;
  const fingerprint = (d: string) => psql(`SELECT (SELECT count(*) || ':' || sum(id) || ':' || md5(string_agg(name, ',' ORDER BY id)) FROM items) || '/' || (SELECT count(*) FROM "Odd Table")`, d);
  const scratchDbs = () => psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'lifeboat_verify_%'");
  let original = '';

  beforeAll(async () => {
    await psql(`CREATE DATABASE ${db}`);
    await psql(
      `CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 250) g;
       CREATE TABLE "Odd Table" (x text); INSERT INTO "Odd Table" VALUES ('a'), ('b\nc'), (NULL); CREATE VIEW cheap AS SELECT * FROM items WHERE id < 10;`,
      db,
    );
    original = await fingerprint(db);
    for (const format of ['plain', 'custom'] as const) {
      const dir = await newSnapshot();
      const file = `database/pg${format}.${format === 'plain' ? 'sql' : 'dump'}`;
      await execa('pg_dump', [`--format=${format}`, '-h', '127.0.0.1', '-U', 'postgres', `--file=${join(dir, file)}`, db]);
      // Hand-made globals: a new role, and one that exists (its CREATE fails and the rest goes on).
      await writeFile(join(dir, `database/pg${format}.globals.sql`), `CREATE ROLE postgres;\nCREATE ROLE ${role} NOLOGIN;\n`);
      snap[format] = { dir, comp: component('postgres', [file, `database/pg${format}.globals.sql`], { database: db, format, row_counts: counts }) };
    }
  });

  afterAll(async () => {
    for (const d of made) await psql(`DROP DATABASE IF EXISTS ${d} WITH (FORCE)`).catch(() => undefined);
    await psql(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
  });

  it.each(['plain', 'custom'] as const)('%s: restores into a new database; an existing one is refused without --force and replaced with it', async (format) => {
    const a = artifact(format);
    const { dir, comp } = snap[format];
    const target = `${db}_${format}`;
    made.push(target);
    const m = mod(a);

    const plan = await m.planRestore(rctx(a, dir, comp, { database: target }));
    expect(plan).toMatchObject({ artifact: a.name, type: 'postgres', target: `database ${target} on app (local)`, targetInUse: false });
    expect(plan.action).toContain('create the database');
    const res = await m.restore(rctx(a, dir, comp, { database: target }));
    expect(res.target).toBe(`database ${target} on app (local)`);
    expect(res.bytes).toBe((await stat(join(dir, comp.paths[0]!))).size);
    expect(res.details).toMatchObject({ database: target, format, created: true, dropped: false, clean: false, globals: false });
    expect(await fingerprint(target)).toBe(original);
    expect(await psql("SELECT count(*) FROM pg_views WHERE viewname = 'cheap'", target)).toBe('1');
    await hostTmpIsClean();

    const refused = await failure(m.restore(rctx(a, dir, comp, { database: target })));
    expect(refused.code).toBe('ConfigError');
    expect(refused.message).toContain('--force');
    const busy = await m.planRestore(rctx(a, dir, comp, { database: target }));
    expect(busy.targetInUse).toBe(true);
    expect(busy.action).toMatch(/^refused: /);

    await psql('INSERT INTO items VALUES (9999, \'late\'); CREATE TABLE extra (y int);', target);
    const forced = await m.restore(rctx(a, dir, comp, { database: target, force: true }));
    expect(await fingerprint(target)).toBe(original);
    const extra = await psql("SELECT count(*) FROM pg_tables WHERE tablename = 'extra'", target);
    if (format === 'plain') {
      expect(forced.details).toMatchObject({ dropped: true, created: true, clean: false });
      expect(extra).toBe('0'); // dropped and recreated: exactly the dump
    } else {
      expect(forced.details).toMatchObject({ dropped: false, created: false, clean: true });
      expect(extra).toBe('1'); // pg_restore --clean replaces the dump's objects only
    }
    await hostTmpIsClean();
  });

  it('loads into an existing empty database without --force; globals go back only over the original with --force', async () => {
    const a = artifact('plain');
    const { dir, comp } = snap.plain;
    const target = `${db}_empty`;
    made.push(target);
    await psql(`CREATE DATABASE ${target}`);
    const res = await mod(a).restore(rctx(a, dir, comp, { database: target }));
    expect(res.details).toMatchObject({ created: false, dropped: false, globals: false });
    expect(await fingerprint(target)).toBe(original);

    // Over the original: refused, then dropped, recreated and loaded, with the globals applied first.
    expect((await failure(mod(a).restore(rctx(a, dir, comp)))).message).toContain(`database ${db} on app (local) already has`);
    await psql('DELETE FROM items WHERE id > 100', db);
    const over = await mod(a).restore(rctx(a, dir, comp, { force: true }));
    expect(over.details).toMatchObject({ database: db, dropped: true, created: true, globals: true, globals_errors: 1 });
    expect(await fingerprint(db)).toBe(original);
    expect(await psql(`SELECT count(*) FROM pg_roles WHERE rolname = '${role}'`)).toBe('1');
    await hostTmpIsClean();
  });

  it.each(['plain', 'custom'] as const)('%s: verify loads into a scratch database, compares row counts, and always drops it', async (format) => {
    const a = artifact(format);
    const { dir, comp } = snap[format];
    const good = await verify(a, dir, comp, scratch);
    expect(failed(good)).toEqual([]);
    expect(good.map((c) => c.check)).toEqual(['scratch role', 'load', 'rows']);
    expect(good[2]!.detail).toBe('2 tables, 253 rows as recorded');
    expect(await scratchDbs()).toBe('0');

    const wrong = { ...comp, details: { ...comp.details, row_counts: { ...counts, 'public.items': 251, 'public.gone': 1 } } };
    const bad = await verify(a, dir, wrong, scratch);
    expect(failed(bad)).toEqual(['rows public.items', 'rows public.gone', 'rows']);
    expect(bad.find((c) => c.check === 'rows public.items')!.detail).toBe('expected 251 rows, found 250');
    expect(bad.find((c) => c.check === 'rows public.gone')!.detail).toContain('cannot be read');
    expect(await scratchDbs()).toBe('0');
  });

  it('verify: a damaged dump fails the load (scratch database dropped); no scratch server is a failed check', async () => {
    const a = artifact('custom');
    const dir = await newSnapshot();
    const file = 'database/pgcustom.dump';
    await copyFile(join(snap.custom.dir, file), join(dir, file));
    await truncate(join(dir, file), Math.floor((await stat(join(dir, file))).size / 2));
    const checks = await verify(a, dir, { ...snap.custom.comp, paths: [file] }, scratch);
    expect(failed(checks)).toEqual(['load']);
    expect(await scratchDbs()).toBe('0');

    const none = await verify(a, snap.custom.dir, snap.custom.comp, {});
    expect(none).toEqual([{ artifact: a.name, check: 'scratch restore', ok: false, detail: 'scratch server not configured (plan.verify.postgres)' }]);
  });

  it('a plain dump from storage never runs psql meta-commands: \\! in restore and verify, also behind a failed COPY', async () => {
    const a = artifact('plain');
    const dir = await newSnapshot();
    const file = 'database/pgplain.sql';
    const markers = ['restore', 'verify', 'copy', 'copy-verify'].map((m) => join(root, `pwned-${m}-${suffix}`));
    const [mRestore, mVerify, mCopy, mCopyVerify] = markers as [string, string, string, string];
    const text = await readFile(join(snap.plain.dir, file), 'utf8');
    // A forged snapshot (checksums are the forger's): a shell escape after the real dump, and a COPY into a table
    // that does not exist, whose "data" psql would read as commands once the COPY has failed.
    const forged = (marker: string, copyMarker: string) =>
      `${text}\n\\! touch ${marker}\nCOPY public.nope (x) FROM stdin;\n\\! touch ${copyMarker}\n\\.\n\\unrestrict guessed\n\\! touch ${marker}\n`;
    await writeFile(join(dir, file), forged(mRestore, mCopy));
    const comp = { ...snap.plain.comp, paths: [file] };
    const target = `${db}_forged`;
    made.push(target);
    const err = await failure(mod(a).restore(rctx(a, dir, comp, { database: target })));
    expect(err.code).toBe('IntegrityCheckFailed'); // ON_ERROR_STOP: the refused meta-command ends the load, for good
    expect(err.message).toContain('backslash commands are restricted');
    await writeFile(join(dir, file), forged(mVerify, mCopyVerify));
    const checks = await verify(a, dir, { ...comp, paths: [file] }, scratch);
    expect(checks.find((c) => c.check === 'load')?.ok).toBe(false);
    for (const m of markers) expect(existsSync(m), m).toBe(false);
    expect(await scratchDbs()).toBe('0');
    await hostTmpIsClean();
  });

  it('verify forgives a plain dump\'s ownership for roles the scratch server lacks, nothing else', async () => {
    const a = artifact('plain');
    const dir = await newSnapshot();
    const file = 'database/pgplain.sql';
    const text = await readFile(join(snap.plain.dir, file), 'utf8');
    await writeFile(join(dir, file), `${text}\nALTER TABLE public.items OWNER TO lb_nobody_${suffix};\n`);
    const checks = await verify(a, dir, { ...snap.plain.comp, paths: [file] }, scratch);
    expect(failed(checks)).toEqual([]);
    // The dump's own OWNER TO postgres (items, "Odd Table", cheap) cannot be run by the drill role either.
    expect(checks.find((c) => c.check === 'load')!.detail).toContain('4 ownership/grant statements skipped');
    // A restore stops there instead (one transaction: the new database stays empty).
    const target = `${db}_noroles`;
    made.push(target);
    const err = await failure(mod(a).restore(rctx(a, dir, { ...snap.plain.comp, paths: [file] }, { database: target })));
    expect(err.code).toBe('ConfigError');
    expect(err.message).toContain(`role "lb_nobody_${suffix}" does not exist`);
    expect(await psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", target)).toBe('0');
    await hostTmpIsClean();
    await writeFile(join(dir, file), `${text}\nSELECT no_such_function();\n`);
    expect(failed(await verify(a, dir, { ...snap.plain.comp, paths: [file] }, scratch))).toEqual(['load']);
    expect(await scratchDbs()).toBe('0');
  });

  it('a cancellation during the load still removes the host temp dir and the scratch database', async () => {
    const a = artifact('custom');
    const { dir, comp } = snap.custom;
    const target = `${db}_cancelled`;
    made.push(target);
    const abortAtLoad = () => {
      const ac = new AbortController();
      return { signal: ac.signal, progress: (d: Record<string, unknown>) => d.phase === 'load' && ac.abort() };
    };
    const r = abortAtLoad();
    await expect(mod(a).restore({ ...rctx(a, dir, comp, { database: target }), ...r })).rejects.toThrow(/cancel/);
    await hostTmpIsClean();

    const scratchDir = join(root, uniqueName('scratch'));
    await mkdir(scratchDir);
    const v = abortAtLoad();
    await expect(mod(a).verify({ artifact: a, snapshotDir: dir, component: comp, scratchDir, scratch, ...v })).rejects.toThrow(/cancel/);
    expect(await readdir(scratchDir)).toEqual([]);
    expect(await scratchDbs()).toBe('0');
  });
});

describe('mysql', () => {
  const db = `lb_rs_${suffix}`;
  const renamed = `${db}_r`;
  const asRoot = async (sql: string, database?: string) =>
    (await execa('mariadb', ['-uroot', '--batch', '--skip-column-names', ...(database ? [`--database=${database}`] : []), '-e', sql])).stdout;
  const artifact = MysqlArtifact.parse({ type: 'mysql', name: 'shop', database: db });
  const rows = 'SELECT id, name, HEX(data) FROM items ORDER BY id';
  const scratch: ScratchServers = { mysql: { user: 'root' } };
  const scratchDbs = () => asRoot("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE 'lifeboat\\_verify\\_%'");
  let dir = '';
  let comp: RecordedComponent;
  let original = '';

  beforeAll(async () => {
    // Created latin1, then switched: the dump wraps the routine in ALTER DATABASE lines, which name the database.
    await asRoot(`CREATE DATABASE \`${db}\` CHARACTER SET latin1`);
    await asRoot(
      [
        'CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(100) CHARACTER SET utf8mb4, data VARBINARY(32))',
        "INSERT INTO items SELECT seq, CONCAT('item ', seq, ' ünï `q`'), UNHEX(SHA2(seq, 256)) FROM seq_1_to_200",
        'CREATE PROCEDURE item_count() SELECT COUNT(*) FROM items',
        'CREATE VIEW cheap AS SELECT id FROM items WHERE id < 10',
        `ALTER DATABASE \`${db}\` CHARACTER SET utf8mb4`,
      ].join(';\n'),
      db,
    );
    original = await asRoot(rows, db);
    dir = await newSnapshot();
    const dump = await execa('mariadb-dump', ['--single-transaction', '--routines', '--events', '--triggers', '--no-tablespaces', '--user=root', '--databases', '--', db], { encoding: 'buffer' });
    await writeFile(join(dir, 'database/shop.sql'), dump.stdout);
    expect(Buffer.from(dump.stdout).toString('latin1')).toContain(`ALTER DATABASE \`${db}\` CHARACTER SET latin1`);
    await asRoot(`ALTER DATABASE \`${db}\` CHARACTER SET latin2`); // a renamed restore must not touch it
    comp = component('mysql', ['database/shop.sql'], { database: db, tool: 'mariadb-dump' });
  });

  afterAll(async () => {
    await asRoot(`DROP DATABASE IF EXISTS \`${db}\`; DROP DATABASE IF EXISTS \`${renamed}\``);
  });

  it('restores under another name (the dump\'s own lines rewritten), refuses an existing one, drops and reloads it with --force', async () => {
    const m = mod(artifact);
    const plan = await m.planRestore(rctx(artifact, dir, comp, { database: renamed }));
    expect(plan).toMatchObject({ target: `database ${renamed} on app (local)`, targetInUse: false });
    expect(plan.action).toContain('database name rewritten');
    const res = await m.restore(rctx(artifact, dir, comp, { database: renamed }));
    expect(res.details).toEqual({ database: renamed, dropped: false, renamed_from: db });
    expect(await asRoot(rows, renamed)).toBe(original);
    expect(await asRoot(`SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = '${renamed}'`)).toBe('1');
    expect(await asRoot(`SELECT COUNT(*) FROM information_schema.views WHERE table_schema = '${renamed}'`)).toBe('1');
    expect(await asRoot(rows, db)).toBe(original); // the original is untouched
    const charset = (d: string) => asRoot(`SELECT default_character_set_name FROM information_schema.schemata WHERE schema_name = '${d}'`);
    expect(await charset(db)).toBe('latin2');
    expect(await charset(renamed)).toBe('utf8mb4');
    await hostTmpIsClean();
    expect((await readdir(root)).filter((f) => f.startsWith('.lifeboat-mysql-'))).toEqual([]);

    const refused = await failure(m.restore(rctx(artifact, dir, comp, { database: renamed })));
    expect(refused.code).toBe('ConfigError');
    expect(refused.message).toContain('--force');
    expect((await m.planRestore(rctx(artifact, dir, comp, { database: renamed }))).targetInUse).toBe(true);
    expect((await failure(m.restore(rctx(artifact, dir, comp)))).message).toContain(`database ${db} on app (local) already has`);

    await asRoot('CREATE TABLE extra (y INT); DELETE FROM items WHERE id > 50', renamed);
    const forced = await m.restore(rctx(artifact, dir, comp, { database: renamed, force: true }));
    expect(forced.details).toMatchObject({ dropped: true });
    expect(await asRoot(rows, renamed)).toBe(original);
    expect(await asRoot(`SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '${renamed}' AND table_name = 'extra'`)).toBe('0');
    await hostTmpIsClean();
  });

  it('verify loads into a scratch database and drops it; a broken dump fails the load; no scratch server is a failed check', async () => {
    const good = await verify(artifact, dir, comp, scratch);
    expect(failed(good)).toEqual([]);
    expect(good.map((c) => `${c.check}: ${c.ok}`)).toEqual(['load: true', 'tables: true']);
    expect(good[1]!.detail).toBe('1 tables, 1 views');
    expect(await scratchDbs()).toBe('0');

    const broken = await newSnapshot();
    const text = await readFile(join(dir, 'database/shop.sql'), 'latin1');
    await writeFile(join(broken, 'database/shop.sql'), text.replace('CREATE TABLE `items`', 'CREATE TABLE `items` oops'), 'latin1');
    const bad = await verify(artifact, broken, comp, scratch);
    expect(failed(bad)).toEqual(['load']);
    expect(bad[0]!.detail).toContain('syntax');
    expect(await scratchDbs()).toBe('0');

    expect(failed(await verify(artifact, dir, comp, {}))).toEqual(['scratch restore']);
  });
});

describe('renameDatabase', () => {
  it('rewrites only the naming lines, byte for byte elsewhere, across any chunk boundary', async () => {
    const input = Buffer.concat([
      Buffer.from('CREATE DATABASE /*!32312 IF NOT EXISTS*/ `a``b` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\nUSE `a``b`;\n', 'utf8'),
      Buffer.from([0x49, 0x4e, 0x53, 0xff, 0x00, 0xc3, 0x0a]), // raw bytes, not UTF-8
      Buffer.from('USE `other`;\nALTER DATABASE `a``b` CHARACTER SET latin1 ;\n-- USE `a``b`;\nUSE `a``b`;', 'utf8'),
    ]);
    const want = Buffer.from(input.toString('latin1').replace(/(^|\n)(CREATE DATABASE \/\*!32312 IF NOT EXISTS\*\/ |USE |ALTER DATABASE )`a``b`/g, '$1$2`n€w`'.replace('€', Buffer.from('€').toString('latin1'))), 'latin1');
    for (const size of [1, 2, 5, 17, input.length]) {
      const t = renameDatabase('a`b', 'n€w');
      const out: Buffer[] = [];
      t.on('data', (d: Buffer) => out.push(d));
      for (let i = 0; i < input.length; i += size) t.write(input.subarray(i, i + size));
      t.end();
      await new Promise((r) => t.on('end', r));
      expect(Buffer.concat(out)).toEqual(want);
    }
  });
});

describe('sqlite', () => {
  const WEIRD = `we"ird 'tab le`;
  const sq = (file: string, ...args: string[]) => execa('sqlite3', [file, ...args]).then((r) => r.stdout);
  const tables = { items: 50, [WEIRD]: 3 };
  let dir = '';
  let comp: RecordedComponent;
  let artifact: ReturnType<typeof SqliteArtifact.parse>;
  const content = (file: string) => sq(file, `SELECT count(*) || ':' || sum(length(v)) FROM items`, `SELECT count(*) FROM ${quoteIdent(WEIRD)}`);

  beforeAll(async () => {
    const live = join(root, 'live', 'notes.db');
    await mkdir(join(root, 'live'));
    await sq(live, 'PRAGMA journal_mode=wal', 'CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT)', `CREATE TABLE ${quoteIdent(WEIRD)} (x)`,
      'INSERT INTO items (v) SELECT hex(randomblob(20)) FROM generate_series(1, 50)', `INSERT INTO ${quoteIdent(WEIRD)} VALUES (1), (2), (3)`);
    dir = await newSnapshot();
    await sq(live, `VACUUM INTO '${join(dir, 'database/notes.sqlite')}'`);
    artifact = SqliteArtifact.parse({ type: 'sqlite', name: 'notes', path: live });
    comp = component('sqlite', ['database/notes.sqlite'], { path: live, method: 'vacuum', integrity: 'ok', tables });
  });

  it('restores into --to-dir, refuses an existing file without --force, replaces it (and a stale -wal) with it', async () => {
    const m = mod(artifact);
    const to = join(root, 'sqlite-to');
    const target = join(to, 'notes.db');
    const want = await content(join(dir, 'database/notes.sqlite'));
    expect(await m.planRestore(rctx(artifact, dir, comp, { dir: to }))).toMatchObject({ target: `app (local):${target}`, targetInUse: false });
    const res = await m.restore(rctx(artifact, dir, comp, { dir: to }));
    expect(res).toMatchObject({ target: `app (local):${target}`, bytes: (await stat(join(dir, 'database/notes.sqlite'))).size });
    expect(await content(target)).toBe(want);
    expect(await readdir(to)).toEqual(['notes.db']);

    expect((await failure(m.restore(rctx(artifact, dir, comp, { dir: to })))).message).toContain('--force');
    expect((await m.planRestore(rctx(artifact, dir, comp, { dir: to }))).targetInUse).toBe(true);
    await sq(target, 'DELETE FROM items WHERE id > 10');
    await writeFile(`${target}-wal`, randomBytes(4096)); // would be replayed over the restored file
    await m.restore(rctx(artifact, dir, comp, { dir: to, force: true }));
    expect(await readdir(to)).toEqual(['notes.db']);
    expect(await content(target)).toBe(want);
    expect(await sq(target, 'PRAGMA integrity_check')).toBe('ok');

    // Back to the original path: it exists, so only with --force.
    expect((await failure(m.restore(rctx(artifact, dir, comp)))).code).toBe('ConfigError');
    await sq(artifact.path, 'DELETE FROM items');
    await m.restore(rctx(artifact, dir, comp, { force: true }));
    expect(await content(artifact.path)).toBe(want);
    await hostTmpIsClean();
  });

  it('verify: integrity and row counts; a count that disagrees or a damaged file fails', async () => {
    const good = await verify(artifact, dir, comp);
    expect(failed(good)).toEqual([]);
    expect(good.map((c) => c.check)).toEqual(['integrity', 'rows']);
    const bad = await verify(artifact, dir, { ...comp, details: { ...comp.details, tables: { ...tables, items: 49 } } });
    expect(failed(bad)).toEqual(['rows items', 'rows']);
    expect(bad[1]!.detail).toBe('expected 49 rows, found 50');

    const damaged = await newSnapshot();
    await writeFile(join(damaged, 'database/notes.sqlite'), Buffer.concat([(await readFile(join(dir, 'database/notes.sqlite'))).subarray(0, 100), randomBytes(8192)]));
    expect(failed(await verify(artifact, damaged, comp))).toEqual(['integrity']);
  });
});

describe('redis', () => {
  const artifact = RedisArtifact.parse({ type: 'redis', name: 'cache', port: 6390 });
  let dir = '';
  let comp: RecordedComponent;

  /** Processes whose working directory is under root (redis-server chdirs into its --dir). */
  async function processesUnderRoot(): Promise<string[]> {
    const found: string[] = [];
    for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
      const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => '');
      if (cwd.startsWith(root)) found.push(`${pid} ${cwd}`);
    }
    return found;
  }

  beforeAll(async () => {
    const data = join(root, 'redis-data');
    await mkdir(data);
    const port = await freePort();
    const server = execa('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', data, '--save', '', '--appendonly', 'no'], { stdin: 'ignore', stdout: 'ignore', reject: false });
    try {
      await waitForPort(port, 15_000);
      const cli = (...args: string[]) => execa('redis-cli', ['-p', String(port), ...args]).then((r) => r.stdout.trim());
      await cli('MSET', ...Array.from({ length: 40 }, (_, i) => [`k:${i}`, `v${i}`]).flat());
      await cli('-n', '3', 'MSET', 'a', '1', 'b', '2');
      expect(await cli('SAVE')).toBe('OK');
    } finally {
      server.kill('SIGTERM');
      await server;
    }
    dir = await newSnapshot();
    await copyFile(join(data, 'dump.rdb'), join(dir, 'database/cache.rdb'));
    comp = component('redis', ['database/cache.rdb'], { keys: 42, redis_check_rdb: 'ok', aof: false });
  });

  it('restores only with --to-dir (as dump.rdb), refusing a non-empty one without --force', async () => {
    const m = mod(artifact);
    const refused = await failure(m.restore(rctx(artifact, dir, comp)));
    expect(refused.code).toBe('ConfigError');
    expect(refused.message).toContain('--to-dir');
    expect((await m.planRestore(rctx(artifact, dir, comp))).action).toMatch(/^refused: .*stop Redis/);

    const to = join(root, 'redis-to', 'data');
    const res = await m.restore(rctx(artifact, dir, comp, { dir: to }));
    expect(res.target).toBe(`app (local):${join(to, 'dump.rdb')}`);
    expect(await readFile(join(to, 'dump.rdb'))).toEqual(await readFile(join(dir, 'database/cache.rdb')));
    expect((await m.planRestore(rctx(artifact, dir, comp, { dir: to }))).targetInUse).toBe(true);
    expect((await failure(m.restore(rctx(artifact, dir, comp, { dir: to })))).message).toContain('--force');
    await writeFile(join(to, 'dump.rdb'), 'newer data');
    await m.restore(rctx(artifact, dir, comp, { dir: to, force: true }));
    expect(await readFile(join(to, 'dump.rdb'))).toEqual(await readFile(join(dir, 'database/cache.rdb')));
    expect(await readdir(to)).toEqual(['dump.rdb']);
    await hostTmpIsClean();
  });

  it('verify: redis-check-rdb and the key count of a throwaway server (stopped afterwards); wrong counts and damage fail', async () => {
    const good = await verify(artifact, dir, comp);
    expect(good.map((c) => `${c.check}: ${c.ok}: ${c.detail}`)).toEqual(['redis-check-rdb: true: RDB looks OK', 'keys: true: 42 keys as recorded']);
    expect(await processesUnderRoot()).toEqual([]);

    const bad = await verify(artifact, dir, { ...comp, details: { ...comp.details, keys: 43 } });
    expect(failed(bad)).toEqual(['keys']);
    expect(bad[1]!.detail).toBe('expected 43 keys, the RDB loads 42');

    const damaged = await newSnapshot();
    const rdb = await readFile(join(dir, 'database/cache.rdb'));
    await writeFile(join(damaged, 'database/cache.rdb'), rdb.subarray(0, Math.floor(rdb.length / 2)));
    expect(failed(await verify(artifact, damaged, comp))).toEqual(['redis-check-rdb', 'keys']);
    expect(await processesUnderRoot()).toEqual([]);
  });
});

describe('files', () => {
  const src = join(root, 'src'); // the "original" absolute paths live under here
  const app = join(src, 'srv', 'app');
  const envFile = join(src, 'etc', 'app.env');
  const tree: Record<string, string> = { 'conf/main.yml': 'a: 1\n', 'conf/with space.txt': 'x'.repeat(1000), 'data/sub/deep.bin': 'y'.repeat(5000), 'top.txt': 'top' };
  let artifact: ReturnType<typeof FilesArtifact.parse>;
  let dir = '';
  let comp: RecordedComponent;
  const fileCount = Object.keys(tree).length + 1;
  const totalBytes = Object.values(tree).reduce((s, v) => s + v.length, 0) + 'KEY=1\n'.length;

  /** Regular files and symlinks under dir, with their content (or link target). */
  async function listing(d: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const e of await readdir(d, { recursive: true, withFileTypes: true })) {
      const p = join(e.parentPath, e.name);
      if (e.isFile()) out[p.slice(d.length)] = await readFile(p, 'utf8');
      else if (e.isSymbolicLink()) out[p.slice(d.length)] = `-> ${await readlink(p)}`;
    }
    return out;
  }

  beforeAll(async () => {
    dir = await newSnapshot();
    const base = join(dir, 'files', 'app', 'conf');
    for (const [rel, text] of Object.entries(tree)) {
      await mkdir(join(base, app, rel, '..'), { recursive: true });
      await writeFile(join(base, app, rel), text);
    }
    await symlink('conf/main.yml', join(base, app, 'link'));
    await mkdir(join(base, envFile, '..'), { recursive: true });
    await writeFile(join(base, envFile), 'KEY=1\n');
    artifact = FilesArtifact.parse({ type: 'files', name: 'conf', paths: [app, envFile], optionalPaths: [join(src, 'gone')] });
    comp = component('files', ['files/app/conf'], { file_count: fileCount, total_bytes: totalBytes, missing_optional: [join(src, 'gone')] });
  });

  it('restores each path below --to-dir (full path kept) and back in place; non-empty targets need --force, which deletes extras', async () => {
    const m = mod(artifact);
    const snapApp = join(dir, 'files/app/conf', app);
    const to = join(root, 'files-to');
    const plan = await m.planRestore(rctx(artifact, dir, comp, { dir: to }));
    expect(plan).toMatchObject({ target: `app (local):${join(to, app)}, ${join(to, envFile)}`, targetInUse: false, action: 'rsync 2 path(s)' });
    const res = await m.restore(rctx(artifact, dir, comp, { dir: to }));
    expect(res.bytes).toBe(totalBytes + 'conf/main.yml'.length); // rsync counts a symlink's target length
    expect(await listing(join(to, app))).toEqual(await listing(snapApp));
    expect(await readFile(join(to, envFile), 'utf8')).toBe('KEY=1\n');

    // In place: nothing there yet, then an empty directory is fine too.
    await mkdir(app, { recursive: true });
    await m.restore(rctx(artifact, dir, comp));
    expect(await listing(app)).toEqual(await listing(snapApp));

    const busy = await m.planRestore(rctx(artifact, dir, comp));
    expect(busy.targetInUse).toBe(true);
    expect(busy.action).toMatch(/^refused: not empty: /);
    const refused = await failure(m.restore(rctx(artifact, dir, comp)));
    expect(refused.code).toBe('ConfigError');
    expect(refused.message).toContain(app);
    expect(refused.message).toContain(envFile);

    await writeFile(join(app, 'top.txt'), 'changed');
    await writeFile(join(app, 'extra.txt'), 'not in the snapshot');
    await mkdir(join(app, '.config/sops/age'), { recursive: true });
    await writeFile(join(app, '.config/sops/age/keys.txt'), 'AGE-SECRET-KEY'); // deny-listed: never in a snapshot, never deleted
    await m.restore(rctx(artifact, dir, comp, { force: true }));
    expect(await listing(app)).toEqual({ ...(await listing(snapApp)), '/.config/sops/age/keys.txt': 'AGE-SECRET-KEY' });
    await hostTmpIsClean();
  });

  it('--path-prefix restores only the entries under it; a prefix the snapshot lacks is a ConfigError', async () => {
    const m = mod(artifact);
    const to = join(root, 'files-prefix');
    const res = await m.restore(rctx(artifact, dir, comp, { dir: to, pathPrefix: `${app}/data/` }));
    expect(res.details.paths).toEqual([{ path: `${app}/data`, target: join(to, app, 'data'), files: 3, bytes: 5000 }]);
    expect(await listing(to)).toEqual({ [`${app}/data/sub/deep.bin`]: 'y'.repeat(5000) });
    const err = await failure(m.restore(rctx(artifact, dir, comp, { dir: to, pathPrefix: '/nowhere' })));
    expect(err.code).toBe('ConfigError');
    expect(err.message).toContain('under /nowhere');
  });

  it('verify: file count and bytes against metadata.yml, every file readable', async () => {
    const good = await verify(artifact, dir, comp);
    expect(good.map((c) => `${c.check}: ${c.ok}`)).toEqual(['files: true', 'bytes: true', 'readable: true']);
    expect(good[0]!.detail).toBe(`${fileCount} regular files as recorded`);
    const bad = await verify(artifact, dir, { ...comp, details: { ...comp.details, file_count: fileCount + 1 } });
    expect(failed(bad)).toEqual(['files']);
    const old = await verify(artifact, dir, { ...comp, details: {} });
    expect(failed(old)).toEqual([]);
    expect(old[0]!.detail).toContain('not recorded');
  });
});

describe('registry', () => {
  it('command and opensearch have no restore module', () => {
    expect(restoreModule(CommandArtifact.parse({ type: 'command', name: 'x', command: ['true'] }))).toBeUndefined();
    expect(restoreModule(OpensearchArtifact.parse({ type: 'opensearch', name: 'os', repositoryPath: '/srv/os-repo' }))).toBeUndefined();
  });
});
