// What one backup costs in restic calls, each of which derives the repository key (scrypt, about 0.5 s of CPU):
// preflight's `cat config` (once an hour per worker and repository), then in the upload `snapshots` (not on a first
// attempt with a parent cached by this host) and one `backup` of the data with the record inside. Real restic behind
// a PATH wrapper that logs each subcommand; a local-path repository.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findSnapshots, type IgnoredRecord } from '../../src/restore/fetch';
import type { SnapshotRecord } from '../../src/shared/types';
import { buildManifest } from '../../src/snapshot/manifest';
import { openStorage } from '../../src/storage';
import { isRestic } from '../../src/storage/restic';
import { findRestic } from '../../src/storage/restic-run';
import { uploadToRestic } from '../../src/storage/restic-upload';
import { tempDir } from '../support/fixtures';

const root = await tempDir('restic-calls');
const log = join(root, 'calls.log');
const savedPath = process.env.PATH;
const savedCache = process.env.LIFEBOAT_CACHE;

beforeAll(async () => {
  const real = findRestic();
  await mkdir(join(root, 'bin'));
  // Logs the subcommand (the first argument not starting with "-"), then runs the real restic.
  await writeFile(join(root, 'bin', 'restic'), `#!/bin/sh\nfor a in "$@"; do case "$a" in -*) ;; *) echo "$a" >> '${log}'; break ;; esac; done\nexec '${real}' "$@"\n`);
  await chmod(join(root, 'bin', 'restic'), 0o755);
  process.env.PATH = `${join(root, 'bin')}:${savedPath}`;
  process.env.LIFEBOAT_CACHE = join(root, 'cache'); // the cached parents and records of this test only
  await writeFile(join(root, 'password'), `${randomBytes(8).toString('hex')}\n`, { mode: 0o600 });
});

afterAll(async () => {
  process.env.PATH = savedPath;
  if (savedCache === undefined) delete process.env.LIFEBOAT_CACHE;
  else process.env.LIFEBOAT_CACHE = savedCache;
  await rm(root, { recursive: true, force: true });
});

const calls = async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((l) => l && l !== 'version');

const cfg = () => ({ type: 'restic' as const, repository: join(root, 'repo'), password: { file: join(root, 'password') }, env: {}, init: true, checkReadDataPercent: 5, deltaMaxMiB: 1024 });

/** A record for `snapshot` of plan p over `dir` (its manifest as the upload checks it). */
function recordOf(dir: string, snapshot: string, m: Awaited<ReturnType<typeof buildManifest>>): SnapshotRecord {
  const sha = createHash('sha256').update(m.text).digest('hex');
  return {
    success: true, status: 'Completed', snapshot, plan: 'p', tier: 'daily', created_at: `${snapshot.slice(2, 6)}-${snapshot.slice(6, 8)}-${snapshot.slice(8, 10)}T00:00:00Z`, format: 'tar.zst',
    size_bytes: 0, checksum_sha256: sha, manifest: { sha256: sha, files: m.entries.length, bytes: m.entries.reduce((n, e) => n + e.size, 0) }, artifacts: [],
  };
}

/** The first test's snapshot directory's manifest; later tests back up the same directory again. */
let manifest: Awaited<ReturnType<typeof buildManifest>> | undefined;

async function restic() {
  const backend = await openStorage('repo', cfg()); // the upload activity opens its own
  if (!isRestic(backend)) throw new Error('not restic');
  return backend;
}

describe('restic calls per backup', () => {
  it('preflight opens the repository once an hour per worker; the upload then lists and backs up the data with its record inside', async () => {
    await (await openStorage('repo', cfg())).check(); // creates it
    expect(await calls()).toEqual(['cat', 'init', 'cat']);
    await rm(log, { force: true });
    await (await openStorage('repo', cfg())).check(); // the next run's preflight: the repository answered just now
    expect(await calls()).toEqual([]);
    // Another password for the same repository is another question: asked, and refused.
    await writeFile(join(root, 'wrong-password'), 'not-the-password\n', { mode: 0o600 });
    const refused = await (await openStorage('repo', { ...cfg(), password: { file: join(root, 'wrong-password') } })).check().catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'AuthFailed' });
    expect(await calls()).toEqual(['cat']);

    const dir = join(root, 'snap');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'data.bin'), randomBytes(50_000));
    await writeFile(join(dir, 'metadata.yml'), 'plan: p\n');
    const m = (manifest = await buildManifest(dir));
    await writeFile(join(dir, 'manifest.sha256'), m.text);
    const record = recordOf(dir, 'p-20261202T000000', m);
    await rm(log, { force: true });
    const backend = await restic();
    const out = await uploadToRestic(backend, { storage: 'repo', dir, record });
    expect(await calls()).toEqual(['snapshots', 'backup']);
    expect(out.restic.repository_id).toMatch(/^[0-9a-f]{64}$/); // from preflight's answer, not a second `cat config`
    // One restic snapshot, tagged as data and record; what only the finished snapshot tells is read from it.
    const [made] = await backend.dataSnapshots({ plan: 'p', snapshot: 'p-20261202T000000' });
    expect(made?.tags?.sort()).toEqual(['lifeboat', 'lifeboat-record', 'plan=p', 'snapshot=p-20261202T000000', 'tier=daily']);
    await rm(join(root, 'cache', 'restic-records'), { recursive: true, force: true }); // read from the repository
    const fresh = await restic(); // a reader that never saw the upload
    const stored = await fresh.getJson<SnapshotRecord & { storage: string; location: string; completed_at: string; restic: { snapshot_id: string; repository_id: string } }>('p/p-20261202T000000.json');
    expect(stored).toMatchObject({ snapshot: 'p-20261202T000000', storage: 'repo', location: out.location, restic: { snapshot_id: out.restic.snapshot_id, repository_id: out.restic.repository_id } });
    expect(Date.parse(stored!.completed_at)).toBeGreaterThan(Date.now() - 60_000); // restic's backup_end, not the snapshot's time
    // The local snapshot directory is as it was: the record was there for the backup only.
    expect((await readdir(dir)).sort()).toEqual(['data.bin', 'manifest.sha256', 'metadata.yml']);
  });

  it('a first attempt backs up onto the parent this host cached: no listing, and restic reads no unchanged file', async () => {
    const dir = join(root, 'snap');
    const m = manifest!; // the same files, so the same manifest
    await rm(log, { force: true });
    const out = await uploadToRestic(await restic(), { storage: 'repo', dir, record: recordOf(dir, 'p-20261203T000000', m), fresh: true });
    expect(await calls()).toEqual(['backup']);
    // The parent was used: every file (data.bin, metadata.yml, manifest.sha256) unmodified, nothing read again.
    expect(out.restic.files_unmodified).toBe(3);
    expect(out.restic.files_new).toBe(1); // the record, named after its snapshot
    const backend = await restic();
    expect((await backend.getJson<{ restic: { snapshot_id: string } }>('p/p-20261203T000000.json'))?.restic.snapshot_id).toBe(out.restic.snapshot_id);
    expect((await backend.list('p/')).map((o) => o.key)).toEqual(['p/p-20261202T000000.json', 'p/p-20261203T000000.json']);
  });

  it('a cached parent that is gone costs one listing, and the backup still gets the newest parent', async () => {
    const dir = join(root, 'snap');
    const m = manifest!; // the same files, so the same manifest
    const backend = await restic();
    const gone = (await backend.dataSnapshots({ plan: 'p', snapshot: 'p-20261203T000000' }))[0]!;
    await backend.forget([gone.id]); // what retention does; the cache on this host still names it
    await rm(log, { force: true });
    const out = await uploadToRestic(await restic(), { storage: 'repo', dir, record: recordOf(dir, 'p-20261204T000000', m), fresh: true });
    expect(await calls()).toEqual(['backup', 'snapshots', 'backup']); // refused parent, listing, data with record
    expect(out.restic.files_unmodified).toBe(3); // onto p-20261202T000000's snapshot, the newest left
    expect(out.already_present).toBe(false);
    // The next first attempt uses the snapshot just written.
    await rm(log, { force: true });
    await uploadToRestic(await restic(), { storage: 'repo', dir, record: recordOf(dir, 'p-20261205T000000', m), fresh: true });
    expect(await calls()).toEqual(['backup']);
  });

  it('a later attempt lists first and keeps the data snapshot an earlier attempt finished', async () => {
    const dir = join(root, 'snap');
    const m = manifest!; // the same files, so the same manifest
    const backend = await restic();
    const done = (await backend.dataSnapshots({ plan: 'p', snapshot: 'p-20261205T000000' }))[0]!;
    await rm(log, { force: true });
    const out = await uploadToRestic(await restic(), { storage: 'repo', dir, record: recordOf(dir, 'p-20261205T000000', m) });
    expect(await calls()).toEqual(['snapshots', 'backup']); // a record-only snapshot beside the kept data
    expect(out.already_present).toBe(true);
    expect(out.restic.snapshot_id).toBe(done.id);
  });

  it('a failed call forgets the answer: the next preflight asks the repository again', async () => {
    const repo = join(root, 'repo');
    await rename(repo, `${repo}.away`);
    await expect((await restic()).snapshots()).rejects.toBeDefined();
    await rename(`${repo}.away`, repo);
    await rm(log, { force: true });
    await (await openStorage('repo', cfg())).check();
    expect(await calls()).toEqual(['cat']);
  });

  it('two storages on one repository: the second first attempt keeps the data snapshot and writes a newer record', async () => {
    const dir = join(root, 'snap');
    const m = manifest!;
    const first = await uploadToRestic(await restic(), { storage: 'repo', dir, record: recordOf(dir, 'p-20261206T000000', m), fresh: true });
    await rm(log, { force: true });
    const second = await uploadToRestic(await restic(), { storage: 'repo-again', dir, record: recordOf(dir, 'p-20261206T000000', m), fresh: true });
    expect(await calls()).toEqual(['snapshots', 'backup']); // this host's parent is this very snapshot: listed
    expect(second.already_present).toBe(true);
    expect(second.restic.snapshot_id).toBe(first.restic.snapshot_id);
    const backend = await restic();
    expect(await backend.dataSnapshots({ plan: 'p', snapshot: 'p-20261206T000000' })).toHaveLength(1);
    // The data (with the first storage's record) and the second storage's record-only snapshot, which is newer.
    expect(await backend.recordSnapshots({ plan: 'p', snapshot: 'p-20261206T000000' })).toHaveLength(2);
    expect(await backend.getJson('p/p-20261206T000000.json')).toMatchObject({ storage: 'repo-again', restic: { snapshot_id: first.restic.snapshot_id } });
    // A third write (a drill's result) forgets the record-only snapshot it supersedes, never the data.
    await rm(log, { force: true });
    await backend.putJson('p/p-20261206T000000.json', { ...(await backend.getJson<object>('p/p-20261206T000000.json')), verification: { ok: true } });
    expect(await calls()).toEqual(['backup', 'forget']);
    const after = await restic();
    expect(await after.dataSnapshots({ plan: 'p', snapshot: 'p-20261206T000000' })).toHaveLength(1);
    expect(await after.recordSnapshots({ plan: 'p', snapshot: 'p-20261206T000000' })).toHaveLength(2);
    expect(await after.getJson('p/p-20261206T000000.json')).toMatchObject({ storage: 'repo-again', verification: { ok: true } });
  });
});

describe('a record inside a data snapshot is untrusted input', () => {
  it('one bigger than a record can be is not read into memory: refused by name, ignored by listing', async () => {
    // Whoever holds the repository password can write any data snapshot carrying the record tag.
    const dir = join(root, 'forged');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'p-20261207T000000.json'), Buffer.alloc(3 * 1024 * 1024, 0x20));
    const env = { RESTIC_REPOSITORY: cfg().repository, RESTIC_PASSWORD: (await readFile(join(root, 'password'), 'utf8')).trim() };
    const { execa } = await import('execa');
    await execa(findRestic(), ['backup', '--host', 'lifeboat', '--tag', 'lifeboat,lifeboat-record,plan=p,tier=daily,snapshot=p-20261207T000000', '.'], { cwd: dir, env });
    const backend = await restic();
    expect(await backend.stat('p/p-20261207T000000.json')).toMatchObject({ size: 0 }); // unknown before it is read
    await expect(backend.getJson('p/p-20261207T000000.json')).rejects.toMatchObject({ code: 'IntegrityCheckFailed', message: expect.stringContaining('more than 1048576 bytes') });
    const ignored: IgnoredRecord[] = [];
    const listed = await findSnapshots({ repo: backend }, { plan: 'p', onIgnored: (i) => ignored.push(i) });
    expect(listed.map((l) => l.record.snapshot)).not.toContain('p-20261207T000000');
    expect(ignored).toEqual([{ storage: 'repo', key: 'p/p-20261207T000000.json', reason: 'is more than a record can be' }]);
  });
});
