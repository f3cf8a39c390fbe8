// A SQLite database whose files have not changed since the last copy is not copied again (src/sources/sqlite.ts,
// kept-dump.ts): captures over a real sshd with the host's sqlite3. Each way a database changes is driven here: a
// write (rollback journal), a write that only reaches the -wal, a write in the same second as the copy (the racy
// rule), a symlinked path, a -journal present.
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSshHost, type SshHost } from '../../scripts/lib/services';
import { SqliteArtifact } from '../../src/config/schema';
import { SshHost as RemoteHost } from '../../src/remote/ssh';
import { RACY_SECONDS, sqlite } from '../../src/sources/sqlite';
import { captureOnce } from '../support/capture-once';
import { tempDir } from '../support/fixtures';

const root = await tempDir('sqlite-unchanged');
const identityFile = join(root, 'id_ed25519');
const knownHosts = join(root, 'known_hosts');
let sshd: SshHost;
let host: RemoteHost;
let n = 0;

const sql = (db: string, text: string) => execa('sqlite3', [db, text]).then((r) => r.stdout.trim());
/** Until the database's newest change is old enough to be kept (see RACY_SECONDS). */
const settle = () => new Promise((r) => setTimeout(r, RACY_SECONDS * 1000 + 200));

beforeAll(async () => {
  sshd = await startSshHost({ name: 'app', baseDir: root, identityFile, knownHostsFile: knownHosts });
  host = await RemoteHost.open('app', { host: '127.0.0.1', port: sshd.port, user: 'root', identityFile, knownHosts });
}, 60_000);

afterAll(async () => {
  host?.close();
  await sshd?.stop();
});

async function newDatabase(name: string, wal = false): Promise<string> {
  const db = join(sshd.dataDir, `${name}.db`);
  await sql(db, `${wal ? 'PRAGMA journal_mode=WAL; ' : ''}CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('one'), ('two');`);
  return db;
}

/** One capture of `db` into a new snapshot directory; its name, result, the copy's inode and row count. */
async function capture(db: string, over: Record<string, unknown> = {}) {
  const snapshot = `app-20261205T0100${String(n++).padStart(2, '0')}`;
  const snapshotDir = join(root, 'snapshots', snapshot);
  const artifact = SqliteArtifact.parse({ type: 'sqlite', name: 'notes', path: db, ...over });
  const captured = await captureOnce(sqlite, { host, artifact, snapshot, snapshotDir, mirrorDir: join(root, 'mirror', db.replace(/\W/g, '_')) });
  const copy = join(snapshotDir, 'database/notes.sqlite');
  return { snapshot, captured, ino: (await stat(copy)).ino, rows: await sql(copy, 'SELECT count(*) FROM notes') };
}

describe('an unchanged SQLite database', () => {
  it('is linked from the last copy, with its row counts, instead of copied again', async () => {
    const db = await newDatabase('idle');
    await settle();
    const first = await capture(db);
    expect(first.captured.details.unchanged_since).toBeUndefined();
    const second = await capture(db);
    expect(second.captured.details.unchanged_since).toBe(first.snapshot);
    expect(second.ino).toBe(first.ino);
    expect(second.captured.details.tables).toEqual({ notes: 2 });
  });

  it('is copied again after a write; a copy taken within seconds of a write is not kept (the racy rule)', async () => {
    const db = await newDatabase('written');
    await settle();
    const kept = await capture(db);
    await sql(db, "INSERT INTO notes (body) VALUES ('three')");
    const afterWrite = await capture(db);
    expect(afterWrite.captured.details.unchanged_since).toBeUndefined();
    expect(afterWrite.rows).toBe('3');
    expect(afterWrite.ino).not.toBe(kept.ino);
    // Nothing changed since, but the write was too recent for its times to prove that: copied again.
    const racy = await capture(db);
    expect(racy.captured.details.unchanged_since).toBeUndefined();
    await settle();
    const settled = await capture(db);
    expect((await capture(db)).captured.details.unchanged_since).toBe(settled.snapshot);
  });

  it('in WAL mode, is copied again when only the -wal changed', async () => {
    const db = await newDatabase('wal', true);
    // A connection that stays open keeps the -wal from being checkpointed away between the captures.
    const holder = execa('sqlite3', [db], { stdin: 'pipe', reject: false });
    holder.stdin!.write('BEGIN; SELECT count(*) FROM notes;\n');
    try {
      await settle();
      const kept = await capture(db);
      const dbFile = await stat(db);
      await sql(db, "INSERT INTO notes (body) VALUES ('in the wal')");
      expect((await stat(`${db}-wal`)).size).toBeGreaterThan(0);
      expect((await stat(db)).ctimeMs).toBe(dbFile.ctimeMs); // the database file itself is untouched
      await settle(); // past the racy rule: only the -wal's identity tells
      const after = await capture(db);
      expect(after.captured.details.unchanged_since).toBeUndefined();
      expect(after.ino).not.toBe(kept.ino);
      expect(after.rows).toBe('3');
    } finally {
      holder.stdin!.end('COMMIT;\n');
      await holder;
    }
  });

  it('named by a symlink, is copied every time (the link\'s own times never change)', async () => {
    const db = await newDatabase('target');
    const link = join(sshd.dataDir, 'link.db');
    await execa('ln', ['-s', db, link]);
    await settle();
    await capture(link);
    await sql(db, "INSERT INTO notes (body) VALUES ('three')");
    await settle();
    const after = await capture(link);
    expect(after.captured.details.unchanged_since).toBeUndefined();
    expect(after.rows).toBe('3');
  });

  it('is always copied while a non-empty -journal is present, or with reuseUnchanged: false', async () => {
    const db = await newDatabase('journal');
    await settle();
    await capture(db);
    await writeFile(`${db}-journal`, Buffer.alloc(512)); // as journal_mode=PERSIST leaves it: zeroed header, not hot
    const withJournal = await capture(db);
    expect(withJournal.captured.details.unchanged_since).toBeUndefined();
    expect((await capture(db)).captured.details.unchanged_since).toBeUndefined();
    await execa('rm', ['-f', `${db}-journal`]);
    await capture(db);
    const off = await capture(db, { reuseUnchanged: false });
    expect(off.captured.details.unchanged_since).toBeUndefined();
  });
});
