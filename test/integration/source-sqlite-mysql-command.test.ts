// The sqlite, mysql and command modules against real programs through LocalHost (no Temporal needed):
// the machine's MariaDB (socket, root via unix_socket; also 127.0.0.1:3306) and the sqlite3 CLI.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandArtifact, MysqlArtifact, Source, SqliteArtifact, type Artifact } from '../../src/config/schema';
import { LocalHost } from '../../src/remote/local';
import { LifeboatError } from '../../src/shared/errors';
import { command } from '../../src/sources/command';
import { mysql } from '../../src/sources/mysql';
import { quoteIdent, sqlite } from '../../src/sources/sqlite';
import type { CaptureContext } from '../../src/sources/types';
import { tempDir, uniqueName, lifeboatFailure } from '../support/fixtures';

const root = await tempDir('sqlmc');
// Source-side scripts make their temp dirs under TMPDIR: a private one shows whether they clean up.
const sourceTmp = join(root, 'tmp');
await mkdir(sourceTmp);
process.env.TMPDIR = sourceTmp;
const host = new LocalHost('it');

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function context<A extends Artifact>(artifact: A, signal = new AbortController().signal) {
  const snapshotDir = join(root, uniqueName('snap'));
  const progress: Record<string, unknown>[] = [];
  const ctx: CaptureContext<A> = {
    host,
    source: Source.parse({ name: 'it', host: 'local', artifacts: [artifact] }),
    artifact,
    snapshot: 'it-20250101T000000',
    quiet: (_phase, _bound, fn) => fn(),
    snapshotDir,
    mirrorDir: join(root, 'mirror'),
    denyList: [],
    signal,
    progress: (d) => progress.push(d),
  };
  return { ctx, snapshotDir, progress };
}

const failure = lifeboatFailure;

/** Every file under dir, relative, sorted ([] when dir does not exist). */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

describe('mysql', () => {
  const db = uniqueName('lb_it').replace(/-/g, '_');
  const restored = `${db}_restored`;
  const user = uniqueName('lbu').replace(/-/g, '_');
  const PASSWORD = `p"a\\s:s#w 'rd\\`;
  const passwordFile = join(root, 'mysql-password');
  const wrongPasswordFile = join(root, 'mysql-wrong-password');
  const sqlString = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
  const asRoot = async (sql: string, database?: string) =>
    (await execa('mariadb', ['-uroot', '--batch', '--skip-column-names', ...(database ? [`--database=${database}`] : []), '-e', sql])).stdout;
  const artifact = (over: Record<string, unknown> = {}) =>
    MysqlArtifact.parse({ type: 'mysql', name: 'shop', database: db, user, password: { file: passwordFile }, ...over });

  beforeAll(async () => {
    await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    await writeFile(wrongPasswordFile, 'not-the-password', { mode: 0o600 });
    const accounts = [`${sqlString(user)}@'localhost'`, `${sqlString(user)}@'%'`];
    await asRoot(
      [
        `CREATE DATABASE \`${db}\``,
        `CREATE DATABASE \`${restored}\``,
        ...accounts.map((acc) => `CREATE USER ${acc} IDENTIFIED BY ${sqlString(PASSWORD)}`),
        `GRANT ALL ON \`${db}\`.* TO ${accounts.join(', ')}`,
      ].join(';\n'),
    );
    await asRoot(
      [
        'CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) CHARACTER SET utf8mb4, data VARBINARY(64), price DECIMAL(10,2), note TEXT NULL)',
        'CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, item_id INT)',
        'CREATE TRIGGER items_ai AFTER INSERT ON items FOR EACH ROW INSERT INTO audit (item_id) VALUES (NEW.id)',
        "INSERT INTO items (name, data, price, note) SELECT CONCAT('item ', seq, ' ünï \"q\" \\\\ ''x'), UNHEX(SHA2(seq, 256)), seq / 7, IF(seq % 5 = 0, NULL, REPEAT('x', seq % 50)) FROM seq_1_to_3000",
        `CREATE DEFINER = ${sqlString(user)}@'localhost' PROCEDURE item_count() SELECT COUNT(*) FROM items`,
        'CREATE VIEW cheap AS SELECT id, name FROM items WHERE price < 10',
        'CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM audit WHERE id < 0',
      ].join(';\n'),
      db,
    );
  });

  afterAll(async () => {
    await asRoot(
      [`DROP DATABASE IF EXISTS \`${db}\``, `DROP DATABASE IF EXISTS \`${restored}\``, `DROP USER IF EXISTS ${sqlString(user)}@'localhost', ${sqlString(user)}@'%'`].join(';\n'),
    );
  });

  it('dumps with the password from an option file; the dump restores to the same rows, routines, triggers, views and events', async () => {
    const a = artifact();
    const { ctx, snapshotDir, progress } = context(a);
    const res = await mysql.capture(ctx);
    expect(res.paths).toEqual(['database/shop.sql']);
    expect(res.details).toEqual({ database: db, tool: 'mariadb-dump' });
    expect(await filesUnder(snapshotDir)).toEqual(['database/shop.sql']);
    const file = join(snapshotDir, 'database/shop.sql');
    expect(res.bytes).toBe((await stat(file)).size);
    expect(res.bytes).toBeGreaterThan(100_000);
    expect(progress.at(-1)).toEqual({ artifact: 'shop', bytes: res.bytes });
    const dump = await readFile(file, 'latin1'); // byte for byte: the dump holds raw VARBINARY bytes
    expect(dump.trimEnd().split('\n').at(-1)).toMatch(/^-- Dump completed/);
    expect(dump).not.toContain(PASSWORD);

    await writeFile(join(root, 'restore.sql'), dump.replaceAll(`\`${db}\``, `\`${restored}\``), 'latin1');
    await execa('mariadb', ['-uroot'], { inputFile: join(root, 'restore.sql') });
    const rows = 'SELECT id, name, HEX(data), price, note FROM items ORDER BY id';
    const original = await asRoot(rows, db);
    expect(original.split('\n')).toHaveLength(3000);
    expect(await asRoot(rows, restored)).toBe(original);
    expect(await asRoot('SELECT COUNT(*), SUM(item_id) FROM audit', restored)).toBe(await asRoot('SELECT COUNT(*), SUM(item_id) FROM audit', db));
    const objects = (schema: string) =>
      asRoot(
        `SELECT CONCAT_WS(' ', (SELECT GROUP_CONCAT(routine_name) FROM information_schema.routines WHERE routine_schema = '${schema}'),` +
          ` (SELECT GROUP_CONCAT(trigger_name) FROM information_schema.triggers WHERE trigger_schema = '${schema}'),` +
          ` (SELECT GROUP_CONCAT(table_name) FROM information_schema.views WHERE table_schema = '${schema}'),` +
          ` (SELECT GROUP_CONCAT(event_name) FROM information_schema.events WHERE event_schema = '${schema}'))`,
      );
    expect(await objects(db)).toBe('item_count items_ai cheap nightly');
    expect(await objects(restored)).toBe('item_count items_ai cheap nightly');
  });

  it('over TCP (127.0.0.1:3306) too; missing privileges are AuthFailed; estimateBytes asks the server', async () => {
    const a = artifact({ host: '127.0.0.1', port: 3306 });
    const size = await asRoot(`SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_schema = '${db}'`);
    expect(await mysql.estimateBytes(host, a, new AbortController().signal)).toBe(Number(size));
    expect(Number(size)).toBeGreaterThan(0);
    // Over TCP the account is user@'%', not the procedure's definer user@'localhost'.
    const denied = await failure(mysql.capture(context(a).ctx));
    expect(denied.code).toBe('AuthFailed');
    expect(denied.message).toContain('insufficient privileges to SHOW CREATE PROCEDURE');
    await asRoot(`GRANT SELECT ON mysql.proc TO ${sqlString(user)}@'%'`);
    const { ctx, snapshotDir } = context(a);
    expect((await mysql.capture(ctx)).details).toEqual({ database: db, tool: 'mariadb-dump' });
    expect(await filesUnder(snapshotDir)).toEqual(['database/shop.sql']);
  });

  it('a wrong password is AuthFailed and leaves no file behind', async () => {
    const { ctx, snapshotDir } = context(artifact({ password: { file: wrongPasswordFile } }));
    const err = await failure(mysql.capture(ctx));
    expect(err.code).toBe('AuthFailed');
    expect(err.message).toContain('Access denied');
    expect(await filesUnder(snapshotDir)).toEqual([]);
    const est = await mysql.estimateBytes(host, artifact({ password: { file: wrongPasswordFile } }), new AbortController().signal).catch((e: unknown) => e);
    expect((est as LifeboatError).code).toBe('AuthFailed');
  });

  it('an unknown database is a ConfigError', async () => {
    const a = MysqlArtifact.parse({ type: 'mysql', name: 'gone', database: `${db}_nope` });
    const { ctx, snapshotDir } = context(a);
    expect((await failure(mysql.capture(ctx))).code).toBe('ConfigError');
    expect(await filesUnder(snapshotDir)).toEqual([]);
  });
});

describe('sqlite', () => {
  const sq = (db: string, ...args: string[]) => execa('sqlite3', [db, ...args]).then((r) => r.stdout);
  const WEIRD = `we"ird 'tab le`;

  async function makeDb(path: string, journal: 'delete' | 'wal', rows: number) {
    await sq(
      path,
      `PRAGMA journal_mode=${journal}`,
      'CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT)',
      'CREATE TABLE ticks (id INTEGER PRIMARY KEY)',
      `CREATE TABLE ${quoteIdent(WEIRD)} (x)`,
      `INSERT INTO ${quoteIdent(WEIRD)} VALUES (1), (2), (3)`,
      'CREATE VIRTUAL TABLE docs USING fts5(body)',
      "INSERT INTO docs VALUES ('hello world'), ('lifeboat')",
      'CREATE VIEW recent AS SELECT * FROM items ORDER BY id DESC LIMIT 10',
      `INSERT INTO items (v) SELECT hex(randomblob(100)) FROM generate_series(1, ${rows})`,
    );
  }

  /** A separate process writing in a loop (one transaction per sqlite3 run) until stopped. */
  function startWriter(path: string) {
    const stop = `${path}.stop`;
    const script = [
      'while [ ! -e "$2" ]; do',
      '  sqlite3 "$1" ".timeout 10000" "BEGIN IMMEDIATE; INSERT INTO items (v) SELECT hex(randomblob(100)) FROM generate_series(1, 200);' +
        ' DELETE FROM items WHERE id IN (SELECT id FROM items WHERE id % 13 = 0 LIMIT 50);' +
        ' UPDATE items SET v = hex(randomblob(100)) WHERE id = abs(random()) % 50000; INSERT INTO ticks DEFAULT VALUES; COMMIT;" >/dev/null || exit 1',
      'done',
    ].join('\n');
    const child: ResultPromise = execa('sh', ['-c', script, 'writer', path, stop], { reject: false });
    return {
      async stop() {
        await writeFile(stop, '');
        const r = await child;
        expect(r.stderr).toBe('');
        expect(r.exitCode).toBe(0);
      },
    };
  }

  const ticks = async (db: string) => Number(await sq(db, '.timeout 10000', 'SELECT count(*) FROM ticks'));

  async function untilTicks(db: string, n: number) {
    for (let i = 0; i < 200 && (await ticks(db)) < n; i++) await new Promise((r) => setTimeout(r, 25));
  }

  async function checkCopy(copy: string, recorded: unknown) {
    const uri = `file:${copy}?immutable=1`;
    expect(await sq(uri, 'PRAGMA integrity_check')).toBe('ok');
    const names = (await sq(uri, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' AND name <> 'docs'")).split('\n');
    const actual: Record<string, number> = {};
    for (const n of names) actual[n] = Number(await sq(uri, `SELECT count(*) FROM ${quoteIdent(n)}`));
    expect(recorded).toEqual(actual);
    expect(Object.keys(actual).sort()).toEqual(['docs_config', 'docs_content', 'docs_data', 'docs_docsize', 'docs_idx', 'items', 'ticks', WEIRD]);
  }

  for (const [method, journal, rows] of [
    ['vacuum', 'delete', 200_000],
    ['backup', 'wal', 40_000],
  ] as const) {
    it(`${method} of a ${journal === 'wal' ? 'WAL' : 'rollback-journal'} database under continuous writes: consistent copy, integrity ok, row counts recorded`, async () => {
      const path = join(root, `${method}-src.db`);
      await makeDb(path, journal, rows);
      const { ctx, snapshotDir } = context(SqliteArtifact.parse({ type: 'sqlite', name: 'app', path, method }));
      const writer = startWriter(path);
      const run = async () => {
        await untilTicks(path, 5);
        const before = await ticks(path);
        const captured = await sqlite.capture(ctx);
        const after = await ticks(path);
        await untilTicks(path, after + 5); // the writer kept going after the copy
        return { before, after, captured };
      };
      const { before, after, captured } = await run().finally(() => writer.stop());
      const tables = captured.details.tables as Record<string, number>;
      expect(captured.paths).toEqual(['database/app.sqlite']);
      expect(captured.details).toMatchObject({ path, method, integrity: 'ok' });
      expect(await filesUnder(snapshotDir)).toEqual(['database/app.sqlite']); // no .partial, -wal or -shm
      expect(captured.bytes).toBe((await stat(join(snapshotDir, 'database/app.sqlite'))).size);
      await checkCopy(join(snapshotDir, 'database/app.sqlite'), tables);
      expect(tables.ticks).toBeGreaterThanOrEqual(before);
      expect(tables.ticks).toBeLessThanOrEqual(after);
      expect(tables.ticks).toBeLessThan(await ticks(path));
      expect(await sq(path, '.timeout 10000', 'PRAGMA journal_mode')).toBe(journal);
      expect(await readdir(sourceTmp)).toEqual([]);
    });
  }

  it('a file that is not a database is IntegrityCheckFailed, for both methods', async () => {
    const path = join(root, 'not-a-db.sqlite');
    await writeFile(path, randomBytes(10_000));
    for (const method of ['vacuum', 'backup'] as const) {
      const { ctx, snapshotDir } = context(SqliteArtifact.parse({ type: 'sqlite', name: 'junk', path, method }));
      const err = await failure(sqlite.capture(ctx));
      expect(err.code).toBe('IntegrityCheckFailed');
      expect(err.message).toContain('not a database');
      expect(await filesUnder(snapshotDir)).toEqual([]);
    }
    expect(await readdir(sourceTmp)).toEqual([]);
  });

  it('a corrupted database copied page by page (.backup) fails the integrity check on the backup host', async () => {
    const path = join(root, 'corrupt.db');
    await sq(path, 'CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)', 'CREATE INDEX tv ON t (v)', 'INSERT INTO t (v) SELECT hex(randomblob(50)) FROM generate_series(1, 20000)');
    const bytes = await readFile(path);
    bytes.fill(0xff, 4096 * 40 + 100, 4096 * 40 + 3100);
    await writeFile(path, bytes);
    const { ctx, snapshotDir } = context(SqliteArtifact.parse({ type: 'sqlite', name: 'bad', path, method: 'backup' }));
    const err = await failure(sqlite.capture(ctx));
    expect(err.code).toBe('IntegrityCheckFailed');
    expect(err.message).toContain('integrity_check');
    expect(await filesUnder(snapshotDir)).toEqual([]);
  });

  it('a missing database is MissingPath, and none is created', async () => {
    const path = join(root, 'missing', 'app.db');
    const { ctx, snapshotDir } = context(SqliteArtifact.parse({ type: 'sqlite', name: 'gone', path }));
    expect((await failure(sqlite.capture(ctx))).code).toBe('MissingPath');
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
    expect(await filesUnder(snapshotDir)).toEqual([]);
  });

  it('estimateBytes is the size of the database plus its WAL', async () => {
    const path = join(root, 'estimate.db');
    await makeDb(path, 'delete', 1000);
    const a = SqliteArtifact.parse({ type: 'sqlite', name: 'e', path });
    expect(await sqlite.estimateBytes(host, a, new AbortController().signal)).toBe((await stat(path)).size);
  });

  it('cancelling a capture stops sqlite3 and removes its temp dir on the source', async () => {
    const path = join(root, 'big.db');
    await makeDb(path, 'delete', 600_000);
    const ac = new AbortController();
    const { ctx, snapshotDir } = context(SqliteArtifact.parse({ type: 'sqlite', name: 'big', path }), ac.signal);
    const started = Date.now();
    setTimeout(() => ac.abort(), 300);
    await expect(sqlite.capture(ctx)).rejects.toThrow(/cancel/);
    expect(Date.now() - started).toBeLessThan(3000);
    for (let i = 0; i < 40 && (await readdir(sourceTmp)).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await readdir(sourceTmp)).toEqual([]);
    expect((await execa('pgrep', ['-f', path], { reject: false })).stdout).toBe('');
    expect(await filesUnder(snapshotDir)).toEqual([]);
  });
});

describe('command', () => {
  const artifact = (argv: string[]) => CommandArtifact.parse({ type: 'command', name: 'out', command: argv });

  it('saves stdout byte for byte', async () => {
    const data = Buffer.concat([randomBytes(300_000), Buffer.from('\0\r\n no trailing newline')]);
    const src = join(root, 'command-input.bin');
    await writeFile(src, data);
    const { ctx, snapshotDir, progress } = context(artifact(['cat', src]));
    const res = await command.capture(ctx);
    expect(res).toEqual({ paths: ['commands/out.txt'], bytes: data.length, details: { command: ['cat', src], exit_code: 0 } });
    expect((await readFile(join(snapshotDir, 'commands/out.txt'))).equals(data)).toBe(true);
    expect(await filesUnder(snapshotDir)).toEqual(['commands/out.txt']);
    expect(progress.at(-1)).toEqual({ artifact: 'out', bytes: data.length });
  });

  it('a failing command is CommandFailed with its stderr, and leaves no file', async () => {
    const { ctx, snapshotDir } = context(artifact(['sh', '-c', 'echo partial output; echo "boom: disk on fire" >&2; exit 3']));
    const err = await failure(command.capture(ctx));
    expect(err.code).toBe('CommandFailed');
    expect(err.permanent).toBe(false);
    expect(err.message).toContain('exit 3');
    expect(err.message).toContain('boom: disk on fire');
    expect(await filesUnder(snapshotDir)).toEqual([]);
  });

  it('a missing program is MissingTool, whether exec fails (ENOENT) or a shell exits 127', async () => {
    for (const argv of [['lifeboat-no-such-program', 'x'], ['sh', '-c', 'lifeboat-no-such-program']]) {
      const { ctx, snapshotDir } = context(artifact(argv));
      expect((await failure(command.capture(ctx))).code).toBe('MissingTool');
      expect(await filesUnder(snapshotDir)).toEqual([]);
    }
  });
});
