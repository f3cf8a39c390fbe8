// Fetching snapshots back from real MinIO: checksums before extraction, every manifest line after, and the
// `lifeboat snapshots` commands, which need storage only (no Temporal).
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import type { Storage } from '../../src/config/schema';
import { fetchSnapshot, findSnapshots, resolveSnapshotId, type StoredRecord } from '../../src/restore/fetch';
import { LifeboatError } from '../../src/shared/errors';
import type { SnapshotVerification } from '../../src/shared/types';
import { createArchive } from '../../src/snapshot/archive';
import { buildManifest, hashFile } from '../../src/snapshot/manifest';
import { archiveKey, recordKey } from '../../src/snapshot/naming';
import { openStorage, type StorageBackend } from '../../src/storage';
import { createBucket, s3Client, tempDir, uniqueName, writeConfig } from '../support/fixtures';

const LIFEBOAT_BIN = new URL('../../bin/lifeboat.mjs', import.meta.url).pathname;
const root = await tempDir('snapfetch');
const bucket = uniqueName('lbsnap').toLowerCase();
const GOOD = 'stack-20250101T000000';
const FLIPPED = 'stack-20250102T000000';
const TAMPERED = 'stack-20250103T000000';
const PLANTED = 'stack-20250104T000000';
const OTHER = 'other-20250105T000000';
let minio: StorageBackend;
let local: StorageBackend;
let configPath: string;

/** A snapshot directory the way finalizeSnapshot leaves it; `after` runs once the manifest is written. */
async function buildSnapshot(name: string, after?: (dir: string) => Promise<void>) {
  const dir = join(root, 'snapshots', name);
  await mkdir(join(dir, 'database'), { recursive: true, mode: 0o700 });
  await mkdir(join(dir, 'files/app/site/srv/www'), { recursive: true });
  await writeFile(join(dir, 'database/app.sql'), 'INSERT INTO t VALUES (1);\n'.repeat(2000));
  await writeFile(join(dir, 'files/app/site/srv/www/index.html'), `<h1>${name}</h1>\n`);
  await writeFile(join(dir, 'metadata.yml'), stringify({ snapshot: name, plan: name.split('-')[0], components: { appdb: { type: 'postgres', source: 'app', status: 'ok' } } }));
  await symlink('index.html', join(dir, 'files/app/site/srv/www/current.html'));
  const manifest = await buildManifest(dir, { skip: (rel) => rel === 'manifest.sha256' });
  await writeFile(join(dir, 'manifest.sha256'), manifest.text);
  await after?.(dir);
  const archive = await createArchive(dir, join(root, 'snapshots', `${name}.tar.zst`), 'tar.zst');
  const manifestSha = (await hashFile(join(dir, 'manifest.sha256'))).sha256;
  const [plan] = name.split('-') as [string];
  const record: StoredRecord = {
    success: true,
    status: 'Completed',
    snapshot: name,
    plan,
    tier: 'daily',
    created_at: `${name.slice(-15, -11)}-${name.slice(-11, -9)}-${name.slice(-9, -7)}T00:00:00.000Z`,
    completed_at: `${name.slice(-15, -11)}-${name.slice(-11, -9)}-${name.slice(-9, -7)}T00:01:00.000Z`,
    format: 'tar.zst',
    size_bytes: archive.size,
    checksum_sha256: archive.sha256,
    manifest: { files: manifest.entries.length, bytes: manifest.entries.reduce((n, e) => n + e.size, 0), sha256: manifestSha },
    artifacts: [{ source: 'app', name: 'appdb', type: 'postgres', status: 'ok', bytes: 50_000 }],
  };
  return { archive, record };
}

async function upload(backend: StorageBackend, built: Awaited<ReturnType<typeof buildSnapshot>>, extra: Partial<StoredRecord> = {}) {
  const { archive, record } = built;
  const key = archiveKey(record.plan, record.snapshot, 'tar.zst');
  const put = await backend.put(key, archive.path, { sha256: archive.sha256, size: archive.size });
  await backend.putJson(recordKey(record.plan, record.snapshot), { ...record, storage: backend.name, key, location: put.location, ...extra });
}

function lifeboat(...args: string[]) {
  return execa('node', [LIFEBOAT_BIN, '-c', configPath, 'snapshots', ...args], { reject: false, cwd: root });
}

beforeAll(async () => {
  const m = inject('minio');
  await createBucket(bucket);
  await writeFile(join(root, 's3-access'), m.accessKey, { mode: 0o600 });
  await writeFile(join(root, 's3-secret'), m.secretKey, { mode: 0o600 });
  const storages: Record<string, Storage> = {
    minio: { type: 's3', endpoint: m.endpoint, region: m.region, bucket, prefix: 'lb', forcePathStyle: true, accessKeyId: { file: join(root, 's3-access') }, secretAccessKey: { file: join(root, 's3-secret') }, partSizeMiB: 5, queueSize: 2 },
    local: { type: 'local', path: join(root, 'local-store') },
  };
  configPath = await writeConfig(root, { backupRoot: join(root, 'backups'), storages, plans: {} });
  minio = await openStorage('minio', storages.minio!);
  local = await openStorage('local', storages.local!);

  const verification: SnapshotVerification = { snapshot: GOOD, ok: true, duration_ms: 4200, verified_at: '2025-01-01T06:00:00.000Z', checks: [{ artifact: 'appdb', check: 'row counts', ok: true, detail: '3 tables match' }] };
  const good = await buildSnapshot(GOOD);
  await upload(minio, good, { verification });
  await upload(local, good);

  await upload(minio, await buildSnapshot(FLIPPED));
  const key = `lb/${archiveKey('stack', FLIPPED, 'tar.zst')}`;
  const body = Buffer.from(await (await s3Client().send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray());
  body[Math.floor(body.length / 2)]! ^= 0x01;
  await s3Client().send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));

  // The archive is intact (its checksum matches the record); a file inside changed after the manifest was made.
  await upload(minio, await buildSnapshot(TAMPERED, (dir) => writeFile(join(dir, 'database/app.sql'), 'DROP TABLE t;\n')));
  await upload(minio, await buildSnapshot(PLANTED, (dir) => writeFile(join(dir, 'files/app/site/srv/www/planted.php'), '<?php system($_GET["c"]);')));
  await upload(local, await buildSnapshot(OTHER));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('fetchSnapshot', () => {
  it('streams, checks and extracts a good snapshot and returns its metadata, writing no archive file', async () => {
    const workDir = join(root, 'work-good');
    const f = await fetchSnapshot({ storage: minio, plan: 'stack', snapshot: GOOD, workDir });
    expect(f.dir).toBe(join(workDir, 'extract', GOOD));
    expect(f.archivePath).toBeUndefined();
    expect(await readdir(workDir)).toEqual(['extract']);
    const kept = await fetchSnapshot({ storage: minio, plan: 'stack', snapshot: GOOD, workDir: join(root, 'work-kept'), keepArchive: true });
    expect(kept.archivePath).toBe(join(root, 'work-kept', `${GOOD}.tar.zst`));
    expect(await readFile(join(kept.dir, 'files/app/site/srv/www/current.html'), 'utf8')).toBe(`<h1>${GOOD}</h1>\n`);
    expect(f.record).toMatchObject({ snapshot: GOOD, plan: 'stack', storage: 'minio' });
    expect(f.metadata).toMatchObject({ snapshot: GOOD, plan: 'stack', components: { appdb: { type: 'postgres' } } });
    expect(await readFile(join(f.dir, 'files/app/site/srv/www/current.html'), 'utf8')).toBe(`<h1>${GOOD}</h1>\n`);
  });

  it('refuses an archive with one byte flipped in storage, naming both checksums, and leaves nothing extracted', async () => {
    const workDir = join(root, 'work-flipped');
    const record = (await minio.getJson<StoredRecord>(recordKey('stack', FLIPPED)))!;
    const err = await fetchSnapshot({ storage: minio, plan: 'stack', snapshot: FLIPPED, workDir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LifeboatError);
    expect(err).toMatchObject({ code: 'ChecksumMismatch' });
    expect((err as Error).message).toContain(`s3://${bucket}/lb/stack/${FLIPPED}.tar.zst`);
    expect((err as Error).message).toContain(record.checksum_sha256);
    expect(existsSync(join(workDir, 'extract'))).toBe(false);
    expect(await readdir(workDir)).toEqual([]); // the bad download is not left under the archive's name
  });

  it('refuses a file changed inside an intact archive, naming the file', async () => {
    const err = await fetchSnapshot({ storage: minio, plan: 'stack', snapshot: TAMPERED, workDir: join(root, 'work-tampered') }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ChecksumMismatch' });
    expect((err as Error).message).toContain('database/app.sql (checksum differs)');
  });

  it('refuses a file that the manifest does not list', async () => {
    const err = await fetchSnapshot({ storage: minio, plan: 'stack', snapshot: PLANTED, workDir: join(root, 'work-planted') }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ChecksumMismatch' });
    expect((err as Error).message).toContain('files/app/site/srv/www/planted.php (not in the manifest)');
  });

  it('names a snapshot that is not in storage', async () => {
    await expect(fetchSnapshot({ storage: minio, plan: 'stack', snapshot: 'stack-20240101T000000', workDir: join(root, 'work-none') })).rejects.toMatchObject({
      code: 'ConfigError',
      message: 'no snapshot stack-20240101T000000 of plan stack in storage minio',
    });
  });
});

describe('findSnapshots and resolveSnapshotId', () => {
  it('lists records newest first across storages and resolves names and latest', async () => {
    const all = await findSnapshots({ minio, local });
    expect(all.map((l) => `${l.storage}:${l.record.snapshot}`)).toEqual([`local:${OTHER}`, `minio:${PLANTED}`, `minio:${TAMPERED}`, `minio:${FLIPPED}`, `minio:${GOOD}`, `local:${GOOD}`]);
    expect(() => resolveSnapshotId(all, 'latest')).toThrow(/ambiguous.*other, stack/);
    expect(resolveSnapshotId(all, 'latest', { plan: 'stack' }).record.snapshot).toBe(PLANTED);
    expect(resolveSnapshotId(all, GOOD)).toMatchObject({ storage: 'minio', key: `stack/${GOOD}.json` });
    expect(() => resolveSnapshotId(all, 'stack-20200101T000000')).toThrow(/no snapshot "stack-20200101T000000"/);
    const stackOnly = await findSnapshots({ minio, local }, { plan: 'stack' });
    expect(stackOnly.every((l) => l.record.plan === 'stack')).toBe(true);
    expect(stackOnly).toHaveLength(5);
  });
});

describe('lifeboat snapshots (CLI, storage only)', () => {
  it('list --json prints an array; list prints a table', async () => {
    const json = await lifeboat('list', '--json', '--storage', 'minio');
    expect(json.exitCode, json.stderr).toBe(0);
    const rows = JSON.parse(json.stdout) as Array<StoredRecord & { storage: string }>;
    expect(rows.map((r) => r.snapshot)).toEqual([PLANTED, TAMPERED, FLIPPED, GOOD]);
    expect(rows[0]).toMatchObject({ storage: 'minio', plan: 'stack', tier: 'daily', status: 'Completed' });

    const table = await lifeboat('list', '--plan', 'other');
    expect(table.exitCode, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^SNAPSHOT\s+PLAN\s+TIER\s+STATUS\s+SIZE\s+CREATED\s+STORAGE$/m);
    expect(table.stdout).toMatch(new RegExp(`^${OTHER}\\s+other\\s+daily\\s+Completed\\s+[\\d.]+ (B|KiB)\\s+2025-01-05 00:00:00Z\\s+local$`, 'm'));
  });

  it('show prints the record and its verification', async () => {
    const r = await lifeboat('show', GOOD);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`snapshot   ${GOOD}`);
    expect(r.stdout).toContain('stored in  minio, local');
    expect(r.stdout).toMatch(/verified\s+OK at 2025-01-01 06:00:00Z in 4\.2 s/);
    expect(r.stdout).toContain('appdb  row counts  3 tables match');
  });

  it('fetch downloads the archive and record and checks the SHA-256', async () => {
    const to = join(root, 'fetched');
    const r = await lifeboat('fetch', GOOD, '--to', to);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(join(to, `${GOOD}.tar.zst`));
    expect((await readdir(to)).sort()).toEqual([`${GOOD}.json`, `${GOOD}.tar.zst`]);
    const record = JSON.parse(await readFile(join(to, `${GOOD}.json`), 'utf8')) as StoredRecord;
    expect((await hashFile(join(to, `${GOOD}.tar.zst`))).sha256).toBe(record.checksum_sha256);
  });

  it('fetch checks what restore checks: a planted file or a changed file in an intact archive is refused, nothing left', async () => {
    for (const [snapshot, file] of [[PLANTED, 'planted.php (not in the manifest)'], [TAMPERED, 'database/app.sql (checksum differs)']] as const) {
      const to = join(root, `fetched-${snapshot}`);
      const r = await lifeboat('fetch', snapshot, '--to', to);
      expect(r.exitCode, r.stdout).toBe(1);
      expect(r.stderr).toContain(file);
      expect(await readdir(to)).toEqual([]);
    }
  });

  it('fetch refuses an archive whose manifest is not the one recorded at backup time', async () => {
    const good = (await minio.getJson<StoredRecord>(recordKey('stack', GOOD)))!;
    const swapped = 'stack-20250106T000000';
    const built = await buildSnapshot(swapped);
    await upload(minio, built, { manifest: { ...built.record.manifest, sha256: good.manifest.sha256 } });
    const r = await lifeboat('fetch', swapped, '--to', join(root, 'fetched-swapped'));
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('manifest.sha256 differs from the one recorded at backup time');
    await minio.delete(recordKey('stack', swapped)); // keep the listing tests' view unchanged
  });

  it('fetch exits non-zero on a checksum mismatch, and 2 for an unknown snapshot', async () => {
    const bad = await lifeboat('fetch', FLIPPED, '--to', join(root, 'fetched-bad'));
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain('ChecksumMismatch');
    expect(await readdir(join(root, 'fetched-bad'))).toEqual([]);
    const missing = await lifeboat('fetch', 'stack-20200101T000000');
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain('no snapshot "stack-20200101T000000"');
  });
});
