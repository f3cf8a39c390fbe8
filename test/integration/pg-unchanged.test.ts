// A PostgreSQL database that has not changed since the last dump is not dumped again (src/sources/pg-unchanged.ts):
// captures of a real PostgreSQL cluster over a real sshd. The cluster is a private one (test/support/pg-cluster.ts):
// on the shared server other tests' writes move the WAL between two captures. Every way a database can change
// that the state must see is driven here: a row, a sequence step that writes no WAL, unlogged tables.
import { readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSshHost, type SshHost } from '../../scripts/lib/services';
import { PostgresArtifact } from '../../src/config/schema';
import { SshHost as RemoteHost } from '../../src/remote/ssh';
import { postgres } from '../../src/sources/postgres';
import { startPgCluster, type PgCluster } from '../support/pg-cluster';
import { captureOnce } from '../support/capture-once';
import { tempDir } from '../support/fixtures';

const root = await tempDir('pg-unchanged');
const identityFile = join(root, 'id_ed25519');
const knownHosts = join(root, 'known_hosts');
const mirrorDir = join(root, 'mirror');
let sshd: SshHost;
let host: RemoteHost;
let pg: PgCluster;
let n = 0;

beforeAll(async () => {
  [sshd, pg] = await Promise.all([
    startSshHost({ name: 'db', baseDir: root, identityFile, knownHostsFile: knownHosts }),
    startPgCluster(join(root, 'pg')),
  ]);
  await pg.psql('CREATE DATABASE app');
  await pg.psql("CREATE TABLE meals (id int PRIMARY KEY, name text); INSERT INTO meals SELECT g, 'meal ' || g FROM generate_series(1, 50) g; CREATE SEQUENCE tickets", 'app');
  await pg.psql('SELECT nextval(\'tickets\')', 'app'); // the first step logs 32 values ahead; the next ones write no WAL
  host = await RemoteHost.open('db', { host: '127.0.0.1', port: sshd.port, user: 'root', identityFile, knownHosts });
}, 60_000);

afterAll(async () => {
  host?.close();
  await pg?.stop();
  await sshd?.stop();
});

/** One capture into a new snapshot directory; its name, result and the dump's inode and text. */
async function capture(over: Record<string, unknown> = {}, into = mirrorDir) {
  const snapshot = `app-20261205T0000${String(n++).padStart(2, '0')}`;
  const snapshotDir = join(root, 'snapshots', snapshot);
  const artifact = PostgresArtifact.parse({ type: 'postgres', name: 'app', database: 'app', host: '127.0.0.1', port: pg.port, user: 'postgres', globals: true, ...over });
  const captured = await captureOnce(postgres, { host, artifact, snapshot, snapshotDir, mirrorDir: into, source: 'db' });
  const dump = join(snapshotDir, artifact.format === 'custom' ? 'database/app.dump' : 'database/app.sql');
  return { snapshot, captured, ino: (await stat(dump)).ino, text: artifact.format === 'plain' ? await readFile(dump, 'utf8') : '' };
}

const lsn = () => pg.psql('SELECT pg_current_wal_insert_lsn()');

describe('an unchanged PostgreSQL database', () => {
  it('is linked from the last dump, with its size and row counts, instead of dumped again', async () => {
    const first = await capture();
    expect(first.captured.details.unchanged_since).toBeUndefined();
    const second = await capture();
    expect(second.captured.details.unchanged_since).toBe(first.snapshot);
    expect(second.ino).toBe(first.ino); // the same file: pg_dump did not run
    expect(second.captured.paths).toEqual(['database/app.sql', 'database/app.globals.sql']);
    expect(second.captured.bytes).toBe(first.captured.bytes);
    expect(second.captured.details.row_counts).toEqual(first.captured.details.row_counts);
    expect((await stat(join(root, 'snapshots', second.snapshot, 'database/app.globals.sql'))).size).toBeGreaterThan(0);
  });

  it('is dumped again after a row changed, and the new dump is kept for the next run', async () => {
    await pg.psql("UPDATE meals SET name = 'changed meal' WHERE id = 7", 'app');
    const changed = await capture();
    expect(changed.captured.details.unchanged_since).toBeUndefined();
    expect(changed.text).toContain('changed meal');
    const again = await capture();
    expect(again.captured.details.unchanged_since).toBe(changed.snapshot);
    expect(again.ino).toBe(changed.ino);
  });

  it('is dumped again after a sequence step that wrote no WAL', async () => {
    const before = await capture();
    const at = await lsn();
    expect(await pg.psql("SELECT nextval('tickets')", 'app')).toBe('2');
    expect(await lsn()).toBe(at); // the case the WAL position alone would miss
    const after = await capture();
    expect(after.captured.details.unchanged_since).toBeUndefined();
    expect(after.ino).not.toBe(before.ino);
    expect(after.text).toMatch(/setval\('public\.tickets', 2, true\)/);
  });

  it('is always dumped while it has unlogged tables (their rows write no WAL)', async () => {
    await pg.psql('CREATE UNLOGGED TABLE scratch (x int)', 'app');
    const one = await capture();
    await pg.psql('INSERT INTO scratch VALUES (42)', 'app');
    const two = await capture();
    expect(two.captured.details.unchanged_since).toBeUndefined();
    expect(two.ino).not.toBe(one.ino);
    expect(two.text).toMatch(/COPY public\.scratch \(x\) FROM stdin;\n42\n/);
    await pg.psql('DROP TABLE scratch', 'app');
  });

  it('is dumped again with reuseUnchanged: false, or when the kept dump was rewritten', async () => {
    const kept = await capture();
    const off = await capture({ reuseUnchanged: false });
    expect(off.captured.details.unchanged_since).toBeUndefined();
    expect(off.ino).not.toBe(kept.ino);
    await capture(); // keeps the dump again
    const inMirror = join(mirrorDir, 'database/app.sql');
    await writeFile(`${inMirror}.x`, 'not a dump');
    await rename(`${inMirror}.x`, inMirror);
    const rewritten = await capture();
    expect(rewritten.captured.details.unchanged_since).toBeUndefined();
    expect(rewritten.text).toContain('PostgreSQL database dump complete');
  });

  it('is linked for a role that is not a superuser too (the state needs no special privilege)', async () => {
    await pg.psql("CREATE ROLE reader LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader; GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO reader", 'app');
    const other = join(root, 'mirror-reader');
    const first = await capture({ user: 'reader', globals: false }, other);
    const second = await capture({ user: 'reader', globals: false }, other);
    expect(second.captured.details.unchanged_since).toBe(first.snapshot);
    expect(second.ino).toBe(first.ino);
  });

  it('is dumped again when the format changes, and the other format\'s file leaves the mirror', async () => {
    await capture();
    const custom = await capture({ format: 'custom' });
    expect(custom.captured.details.unchanged_since).toBeUndefined();
    expect(custom.captured.paths).toEqual(['database/app.dump', 'database/app.globals.sql']);
    expect((await readdir(join(mirrorDir, 'database'))).sort()).toEqual(['app.dump', 'app.globals.sql']);
    expect((await capture({ format: 'custom' })).captured.details.unchanged_since).toBe(custom.snapshot);
  });
});

// A commit's WAL record is written before the transaction becomes visible; with synchronous replication waiting for
// a standby that never answers, it stays invisible until the wait is called off, which writes no WAL. A second
// cluster (replication needs wal_level=replica and a WAL sender slot).
describe('a commit that becomes visible without writing WAL', () => {
  let sync: PgCluster;
  beforeAll(async () => {
    sync = await startPgCluster(join(root, 'pg-sync'), { wal_level: 'replica', max_wal_senders: 2 });
    await sync.psql('CREATE DATABASE app');
    await sync.psql("CREATE TABLE meals (id int PRIMARY KEY, name text); INSERT INTO meals VALUES (1, 'first')", 'app');
  }, 60_000);
  afterAll(async () => sync?.stop());

  it('is in the next dump: the transaction snapshot is part of the state', async () => {
    const prev = pg;
    pg = sync; // capture() dumps the cluster named by pg
    const into = join(root, 'mirror-sync');
    try {
      await sync.psql("ALTER SYSTEM SET synchronous_standby_names = 'lifeboat_nobody'"); // not in a transaction block
      await sync.psql('SELECT pg_reload_conf()');
      await new Promise((r) => setTimeout(r, 500));
      const late = execa('psql', ['-X', '-h', '127.0.0.1', '-p', String(sync.port), '-U', 'postgres', '-d', 'app', '-c', "INSERT INTO meals VALUES (2, 'late')"], { reject: false });
      await until(async () => (await sync.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")) === '1');
      const before = await capture({}, into);
      expect(before.text).not.toContain('late');
      await sync.psql('ALTER SYSTEM RESET synchronous_standby_names');
      await sync.psql('SELECT pg_reload_conf()');
      await late;
      expect(await sync.psql('SELECT name FROM meals WHERE id = 2', 'app')).toBe('late');
      const after = await capture({}, into);
      expect(after.captured.details.unchanged_since).toBeUndefined();
      expect(after.text).toContain('late');
    } finally {
      pg = prev;
    }
  });
});

async function until(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 100));
  }
}
