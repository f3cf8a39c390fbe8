// Snapshots from untrusted storage, end to end: age-encrypted archives, Ed25519-signed records, forged snapshots
// refused by restore, verify and fetch, and records that name keys of their own. Real Temporal, PostgreSQL, MinIO,
// an OpenSSH host, rsync, age.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { startSshHost, type SshHost } from '../../scripts/lib/services';
import { LocalStorage, Retention, S3Storage } from '../../src/config/schema';
import { fetchSnapshot, findSnapshots, type IgnoredRecord, type StoredRecord } from '../../src/restore/fetch';
import { applyRetention } from '../../src/retention/storage-retention';
import type { BackupResult, RestoreInput, RestoreResult, SnapshotVerification } from '../../src/shared/types';
import { createArchive } from '../../src/snapshot/archive';
import { AGE_HEADER } from '../../src/snapshot/encryption';
import { buildManifest, hashFile } from '../../src/snapshot/manifest';
import { archiveKey, recordKey } from '../../src/snapshot/naming';
import { generateSigningKey, parsePrivateKey, signRecord } from '../../src/snapshot/signing';
import { openStorage, type StorageBackend } from '../../src/storage';
import { createBucket, psql, s3Client, SCRATCH_POSTGRES, tempDir, temporalFixture, uniqueName, writeConfig, type TemporalFixture } from '../support/fixtures';

const LIFEBOAT_BIN = new URL('../../bin/lifeboat.mjs', import.meta.url).pathname;
const root = await tempDir('trust');
const bucket = uniqueName('lbt').toLowerCase();
const db = uniqueName('lb_t').replace(/-/g, '_');
const taskQueue = uniqueName('trust-it');
const ROW_SECRET = 'zebra-7731-row-value';
const ENV_SECRET = 'API_TOKEN=kestrel-5519-env-value';
const UNSIGNED = 'shop-20200101T000000';
const MISSIGNED = 'shop-20200102T000000';
let app: SshHost;
let t: TemporalFixture;
let configPath: string;
let recipient: string;
let minio: StorageBackend;
let local: StorageBackend;
let first: BackupResult;
let signingPublicKey: string;

const identityFile = () => join(root, 'keys', 'age.key');
const site = () => join(app.dataDir, 'site');

async function ageKey(file: string): Promise<string> {
  const r = await execa('age-keygen', ['-o', file]);
  return /age1[0-9a-z]+/.exec(r.stderr)![0];
}

beforeAll(async () => {
  const sshKey = join(root, 'id_ed25519');
  const knownHosts = join(root, 'known_hosts');
  app = await startSshHost({ name: 'app', baseDir: root, identityFile: sshKey, knownHostsFile: knownHosts });
  await mkdir(site(), { recursive: true });
  await writeFile(join(site(), '.env'), `${ENV_SECRET}\n`);
  await writeFile(join(site(), 'index.html'), '<h1>shop</h1>\n');
  await psql(`CREATE DATABASE ${db}`);
  await psql(`CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, '${ROW_SECRET}'), (2, 'plain');`, db);

  await mkdir(join(root, 'keys'), { recursive: true, mode: 0o700 });
  recipient = await ageKey(identityFile());
  const signing = generateSigningKey();
  signingPublicKey = signing.publicKey;
  await writeFile(join(root, 'keys', 'signing.key'), signing.privatePem, { mode: 0o600 });
  await createBucket(bucket);
  const m = inject('minio');
  await writeFile(join(root, 's3-access'), m.accessKey, { mode: 0o600 });
  await writeFile(join(root, 's3-secret'), m.secretKey, { mode: 0o600 });
  const storages = {
    minio: { type: 's3', endpoint: m.endpoint, bucket, prefix: 'lb', accessKeyId: { file: join(root, 's3-access') }, secretAccessKey: { file: join(root, 's3-secret') }, partSizeMiB: 5 },
    local: { type: 'local', path: join(root, 'store') },
  };
  configPath = await writeConfig(root, {
    backupRoot: join(root, 'backups'),
    temporal: { address: inject('temporalAddress'), taskQueue },
    ssh: { identityFile: sshKey, knownHosts },
    signing: { key: { file: join(root, 'keys', 'signing.key') }, publicKey: signing.publicKey },
    storages,
    plans: {
      shop: {
        storages: ['minio', 'local'],
        archive: { encryption: { age: { recipients: [recipient], identity: { file: identityFile() } } } },
        verify: { postgres: { ...SCRATCH_POSTGRES }, older: 0 },
        sources: [
          {
            name: 'app',
            host: '127.0.0.1',
            port: app.port,
            artifacts: [
              { type: 'postgres', name: 'notes', database: db, host: '127.0.0.1' },
              { type: 'files', name: 'site', paths: [site()] },
            ],
          },
        ],
      },
    },
  });
  minio = await openStorage('minio', S3Storage.parse(storages.minio));
  local = await openStorage('local', LocalStorage.parse(storages.local));
  t = await temporalFixture(configPath, taskQueue);
  first = await t.client.workflow.execute('backupPlan', { taskQueue, workflowId: uniqueName('t-backup'), args: [{ plan: 'shop', tier: 'manual' }] });
  await forge(UNSIGNED, () => undefined);
  await forge(MISSIGNED, (r) => signRecord(r, parsePrivateKey(generateSigningKey().privatePem)));
}, 170_000);

afterAll(async () => {
  await t?.close();
  await app?.stop();
  await psql(`DROP DATABASE IF EXISTS ${db}`).catch(() => undefined);
  await psql(`DROP DATABASE IF EXISTS ${db}_copy`).catch(() => undefined);
  await psql(`DROP DATABASE IF EXISTS ${db}_notes`).catch(() => undefined);
  await rm(root, { recursive: true, force: true });
});

/**
 * What a bucket writer without the signing key can do: a complete, self-consistent snapshot (manifest, archive
 * encrypted to the public recipient, record with matching checksums), unsigned or signed with another key.
 */
async function forge(name: string, sign: (r: StoredRecord) => StoredRecord['signature']) {
  const dir = join(root, 'forged', name);
  await mkdir(join(dir, 'files'), { recursive: true });
  await writeFile(join(dir, 'files', 'note.txt'), 'forged\n');
  await writeFile(join(dir, 'metadata.yml'), stringify({ snapshot: name, plan: 'shop', components: {} }));
  const manifest = await buildManifest(dir, { skip: (rel) => rel === 'manifest.sha256' });
  await writeFile(join(dir, 'manifest.sha256'), manifest.text);
  const archive = await createArchive(dir, join(root, 'forged', `${name}.tar.zst.age`), 'tar.zst', { recipients: [recipient] });
  const record: StoredRecord = {
    success: true,
    status: 'Completed',
    snapshot: name,
    plan: 'shop',
    tier: 'daily',
    created_at: '2030-01-01T00:00:00.000Z', // newer than anything real: `latest` must still not pick it
    format: 'tar.zst',
    encryption: 'age',
    size_bytes: archive.size,
    checksum_sha256: archive.sha256,
    manifest: { files: manifest.entries.length, bytes: 0, sha256: (await hashFile(join(dir, 'manifest.sha256'))).sha256 },
    artifacts: [],
  };
  const signature = sign(record);
  await minio.put(archiveKey('shop', name, 'tar.zst', true), archive.path, { sha256: archive.sha256, size: archive.size });
  await minio.putJson(recordKey('shop', name), { ...record, ...(signature ? { signature } : {}) });
}

const restore = (over: Partial<RestoreInput>): Promise<RestoreResult> =>
  t.client.workflow.execute('restoreSnapshot', { taskQueue, workflowId: uniqueName('t-restore'), args: [{ plan: 'shop', snapshot: 'latest', force: false, dryRun: false, ...over }] });
const verify = (snapshots?: string[]): Promise<SnapshotVerification[]> =>
  t.client.workflow.execute('verifyRestore', { taskQueue, workflowId: uniqueName('t-verify'), args: [{ plan: 'shop', ...(snapshots ? { snapshots } : {}) }] });
async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as ApplicationFailure;
}
const lifeboat = (...args: string[]) => execa('node', [LIFEBOAT_BIN, '-c', configPath, ...args], { reject: false, cwd: root });

async function objectBytes(key: string): Promise<Buffer> {
  const res = await s3Client().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

describe('encryption at rest', () => {
  it('stores age ciphertext: no row value and no .env content readable in the object', async () => {
    // The result names the object itself: GET bucket/key works as printed.
    expect(first).toMatchObject({ storage: 'minio', bucket, key: `lb/${archiveKey('shop', first.snapshot, 'tar.zst', true)}` });
    const stored = await objectBytes(first.key);
    expect(stored.subarray(0, AGE_HEADER.length).toString()).toBe(AGE_HEADER);
    expect(stored.includes(ROW_SECRET)).toBe(false);
    expect(stored.includes('kestrel-5519')).toBe(false);
    // Control: the same bytes, decrypted and decompressed, do hold both, so the search above could have found them.
    await writeFile(join(root, 'object.age'), stored);
    const plain = await execa('sh', ['-c', 'age -d -i "$1" "$2" | zstd -dc', 'sh', identityFile(), join(root, 'object.age')], { encoding: 'buffer' });
    expect(Buffer.from(plain.stdout).includes(ROW_SECRET)).toBe(true);
    expect(Buffer.from(plain.stdout).includes('kestrel-5519')).toBe(true);
    const record = (await minio.getJson<StoredRecord>(recordKey('shop', first.snapshot)))!;
    expect(record).toMatchObject({ encryption: 'age', size_bytes: stored.length, signature: { alg: 'ed25519' } });
    expect(record.manifest.sha256).toMatch(/^[0-9a-f]{64}$/);
    // The stored object's prefix hashes, every MiB, for selective restores (signed with the rest).
    const every = 2 ** 20;
    const at = Array.from({ length: Math.floor(stored.length / every) }, (_, i) => createHash('sha256').update(stored.subarray(0, (i + 1) * every)).digest('hex'));
    expect(record.checkpoints).toEqual({ every, at });
    const localFile = (await readdir(join(root, 'store', 'shop'))).filter((f) => f.startsWith(first.snapshot));
    expect(localFile.sort()).toEqual([`${first.snapshot}.json`, `${first.snapshot}.tar.zst.age`, `${first.snapshot}.tar.zst.age.sha256`]);
  });

  it('restores with the identity: the database and the files come back', async () => {
    const toDir = join(root, 'restored');
    const r = await restore({ database: `${db}_copy`, dir: toDir, quiesce: false });
    expect(r.snapshot).toBe(first.snapshot); // the newer forged records were not taken for `latest`
    expect(await psql('SELECT body FROM notes WHERE id = 1', `${db}_copy`)).toBe(ROW_SECRET);
    expect(await readFile(join(toDir, site(), '.env'), 'utf8')).toBe(`${ENV_SECRET}\n`);
  });

  it('restores one artifact from the signed, encrypted archive (the selective path, proven by the checkpoints)', async () => {
    const r = await restore({ source: 'app', artifact: 'notes', database: `${db}_notes`, quiesce: false });
    expect(r.restored.map((x) => x.artifact)).toEqual(['notes']);
    expect(await psql('SELECT body FROM notes WHERE id = 1', `${db}_notes`)).toBe(ROW_SECRET);
  });

  it('the restore drill decrypts, loads as the non-superuser drill role and passes', async () => {
    const [v] = await verify([first.snapshot]);
    expect(v!.ok, JSON.stringify(v!.checks)).toBe(true);
  });

  it('a wrong identity fails DecryptFailed and writes nothing', async () => {
    const saved = join(root, 'keys', 'age.key.saved');
    await copyFile(identityFile(), saved);
    await ageKey(`${identityFile()}.other`);
    await copyFile(`${identityFile()}.other`, identityFile());
    try {
      const toDir = join(root, 'restored-wrong');
      const f = await failureOf(restore({ source: 'app', artifact: 'site', dir: toDir, quiesce: false }));
      expect(f.type).toBe('DecryptFailed');
      expect(f.nonRetryable).toBe(true);
      expect(existsSync(toDir)).toBe(false);
      expect(await readdir(join(root, 'backups', '.restore')).catch(() => [])).toEqual([]);
    } finally {
      await copyFile(saved, identityFile());
    }
  });
});

describe('signed records', () => {
  it('restore refuses a forged snapshot, unsigned or signed with another key, before writing anything', async () => {
    for (const name of [UNSIGNED, MISSIGNED]) {
      const toDir = join(root, `restored-${name}`);
      const f = await failureOf(restore({ snapshot: name, dir: toDir, quiesce: false }));
      expect(f.type).toBe('SignatureInvalid');
      expect(f.nonRetryable).toBe(true);
      expect(existsSync(toDir)).toBe(false);
    }
  });

  it('--allow-unsigned accepts an unsigned record, never one with a wrong signature', async () => {
    const trust = { publicKey: signingPublicKey, allowUnsigned: true };
    const missigned = await fetchSnapshot({ storage: minio, plan: 'shop', snapshot: MISSIGNED, workDir: join(root, 'fs-2'), trust }).catch((e: unknown) => e);
    expect(missigned).toMatchObject({ code: 'SignatureInvalid', message: expect.stringContaining('invalid signature') });
    const accepted = await fetchSnapshot({ storage: minio, plan: 'shop', snapshot: UNSIGNED, workDir: join(root, 'fs-3'), trust, identity: { file: identityFile() } });
    expect(accepted.record.snapshot).toBe(UNSIGNED);
  });

  it('verify fails a forged snapshot with SignatureInvalid', async () => {
    const f = await failureOf(verify([MISSIGNED]));
    expect(f.type).toBe('VerificationFailed');
    expect(f.message).toContain('SignatureInvalid');
    expect(await psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'lifeboat_verify_%' AND datdba = (SELECT oid FROM pg_roles WHERE rolname = 'postgres')")).toBe('0');
  });

  it('snapshots list names the ignored records; fetch refuses them and checks contents of a good one', async () => {
    const list = await lifeboat('snapshots', 'list', '--storage', 'minio', '--json');
    expect(list.exitCode, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as StoredRecord[]).map((r) => r.snapshot)).toEqual([first.snapshot]);
    expect(list.stderr).toContain(`ignored minio:shop/${UNSIGNED}.json: is not signed`);
    expect(list.stderr).toContain(`ignored minio:shop/${MISSIGNED}.json: has an invalid signature`);

    const bad = await lifeboat('snapshots', 'fetch', MISSIGNED, '--storage', 'minio', '--to', join(root, 'cli-bad'), '--allow-unsigned');
    expect(bad.exitCode).not.toBe(0);
    expect(await readdir(join(root, 'cli-bad')).catch(() => [])).toEqual([]);

    const sealed = await lifeboat('snapshots', 'fetch', 'latest', '--storage', 'minio', '--to', join(root, 'cli-sealed'));
    expect(sealed.exitCode, sealed.stderr).toBe(0);
    expect(sealed.stdout).toContain('contents not checked (encrypted: pass --decrypt)');
    expect((await readdir(join(root, 'cli-sealed'))).sort()).toEqual([`${first.snapshot}.json`, `${first.snapshot}.tar.zst.age`]);

    const good = await lifeboat('snapshots', 'fetch', 'latest', '--storage', 'minio', '--to', join(root, 'cli-good'), '--decrypt', '--extract');
    expect(good.exitCode, good.stderr).toBe(0);
    expect(good.stdout).toMatch(/signature valid; SHA-256 matches the record; entries safe; every manifest line matches/);
    expect((await readdir(join(root, 'cli-good'))).sort()).toEqual([first.snapshot, `${first.snapshot}.json`, `${first.snapshot}.tar.zst`]);
  });
});

describe('records are untrusted input', () => {
  it('a record naming a key outside the storage root is ignored by listing, retention and fetch; the outside file stays', async () => {
    const outside = join(root, 'outside.txt');
    await writeFile(outside, 'keep me\n');
    const name = 'shop-20190101T000000';
    const real = (await local.getJson<StoredRecord>(recordKey('shop', first.snapshot)))!;
    await local.putJson(recordKey('shop', name), { ...real, snapshot: name, created_at: '2019-01-01T00:00:00.000Z', key: '../../../outside.txt' });
    const renamed = 'shop-20190102T000000';
    await local.putJson(recordKey('shop', renamed), { ...real, created_at: '2019-01-02T00:00:00.000Z' }); // names another snapshot

    const ignored: IgnoredRecord[] = [];
    const listing = await findSnapshots({ local }, { plan: 'shop', onIgnored: (i) => ignored.push(i) });
    expect(listing.map((l) => l.record.snapshot)).toEqual([first.snapshot]);
    expect(ignored.map((i) => i.key).sort()).toEqual([`shop/${name}.json`, `shop/${renamed}.json`]);

    const result = await applyRetention(local, 'shop', Retention.parse({ last: 1 }), new Date());
    expect(result.deleted).toEqual([]);
    expect(result.ignored.join('\n')).toContain('names the archive key "../../../outside.txt"');
    expect(await readFile(outside, 'utf8')).toBe('keep me\n');

    const fetched = await fetchSnapshot({ storage: local, plan: 'shop', snapshot: name, workDir: join(root, 'fs-outside') }).catch((e: unknown) => e);
    expect(fetched).toMatchObject({ code: 'IntegrityCheckFailed', message: expect.stringContaining('outside.txt') });
    expect(await readFile(outside, 'utf8')).toBe('keep me\n');
  });
});

