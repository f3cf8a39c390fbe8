// Media files with point-in-time restore (real Temporal, OpenSSH + rsync, MinIO, age, signed records): a `media: true`
// files artifact leaves the archive and is stored once per content as encrypted objects; an unchanged run sends none,
// a changed file sends one; every snapshot restores its media as they were; retention deletes only objects no kept
// snapshot references; a swapped object is refused.
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError, type ApplicationFailure } from '@temporalio/client';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startSshHost, type SshHost } from '../../scripts/lib/services';
import type { BackupResult, RestoreInput, RestoreResult } from '../../src/shared/types';
import { createBucket, s3Client, spacedBackups, tempDir, temporalFixture, uniqueName, writeConfig, type TemporalFixture } from '../support/fixtures';
import { generateSigningKey } from '../../src/snapshot/signing';

const root = await tempDir('media');
const taskQueue = uniqueName('media-it');
const bucket = uniqueName('media').toLowerCase();
const OLD = new Date('2025-06-01T10:00:00Z');
let app: SshHost;
let t: TemporalFixture;
let recipient: string;
let config: (retention?: object) => object;
const photos = () => join(app.dataDir, 'photos');
const site = () => join(app.dataDir, 'site');
const identity = () => join(root, 'keys', 'age.key');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * seed + 11) % 251));
const BEACH = bytes(3 * 2 ** 20, 7);
const EPISODE_1 = bytes(600_000, 13);
const EPISODE_2 = bytes(650_000, 17);
/** Compared by hash: a deep equality of megabytes takes vitest seconds. */
const shaOf = async (file: string) => sha(await readFile(file));

beforeAll(async () => {
  const sshKey = join(root, 'id_ed25519');
  const knownHosts = join(root, 'known_hosts');
  app = await startSshHost({ name: 'app', baseDir: root, identityFile: sshKey, knownHostsFile: knownHosts });
  await mkdir(join(photos(), '2026/summer'), { recursive: true });
  await writeFile(join(photos(), '2026/summer/beach.jpg'), BEACH);
  await writeFile(join(photos(), '2026/summer/copy of beach.jpg'), BEACH); // same content: one object
  await writeFile(join(photos(), 'episode.mp3'), EPISODE_1);
  await chmod(join(photos(), 'episode.mp3'), 0o640);
  await utimes(join(photos(), 'episode.mp3'), OLD, OLD);
  await utimes(join(photos(), '2026/summer'), OLD, OLD);
  await mkdir(site(), { recursive: true });
  await writeFile(join(site(), 'index.html'), '<h1>shop</h1>\n');
  await mkdir(join(root, 'keys'), { recursive: true, mode: 0o700 });
  recipient = /age1[0-9a-z]+/.exec((await execa('age-keygen', ['-o', identity()])).stderr)![0];
  const signing = generateSigningKey();
  await writeFile(join(root, 'keys', 'signing.key'), signing.privatePem, { mode: 0o600 });
  await createBucket(bucket);
  const m = inject('minio');
  process.env.LIFEBOAT_IT_MEDIA_ACCESS = m.accessKey;
  process.env.LIFEBOAT_IT_MEDIA_SECRET = m.secretKey;
  config = (retention?: object) => ({
    backupRoot: join(root, 'backups'),
    temporal: { address: inject('temporalAddress'), taskQueue },
    ssh: { identityFile: sshKey, knownHosts },
    signing: { key: { file: join(root, 'keys', 'signing.key') }, publicKey: signing.publicKey },
    storages: { minio: { type: 's3', endpoint: m.endpoint, bucket, accessKeyId: { env: 'LIFEBOAT_IT_MEDIA_ACCESS' }, secretAccessKey: { env: 'LIFEBOAT_IT_MEDIA_SECRET' }, partSizeMiB: 5, ...(retention ? { retention } : {}) } },
    plans: {
      podcast: {
        storages: ['minio'],
        keepLocal: 1,
        archive: { encryption: { age: { recipients: [recipient], identity: { file: identity() } } } },
        sources: [
          {
            name: 'app',
            host: '127.0.0.1',
            port: app.port,
            artifacts: [
              { type: 'files', name: 'photos', paths: [photos()], media: true },
              { type: 'files', name: 'site', paths: [site()] },
            ],
          },
        ],
      },
    },
  });
  t = await temporalFixture(await writeConfig(root, config()), taskQueue);
}, 120_000);

afterAll(async () => {
  await t?.close();
  await app?.stop();
});

const backup = spacedBackups(() => t, taskQueue, 'podcast');
const restore = (over: Partial<RestoreInput>): Promise<RestoreResult> =>
  t.client.workflow.execute('restoreSnapshot', { taskQueue, workflowId: uniqueName('media-restore'), args: [{ plan: 'podcast', snapshot: 'latest', force: false, dryRun: false, ...over }] });
const mediaKeys = async () => ((await s3Client().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: '.media/podcast/' }))).Contents ?? []).map((o) => o.Key!).sort();
const object = async (key: string) => Buffer.from(await (await s3Client().send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray());

let first: BackupResult;
let changed: BackupResult;

describe('media files (archive storage)', () => {
  it('leave the archive and are stored once per content, encrypted', async () => {
    first = await backup();
    expect(first.storages[0]!.media).toEqual({ objects: 2, uploaded: 2, bytes_sent: expect.any(Number) });
    expect(first.media).toBeUndefined(); // the run's result; the stored record carries it (below)
    const keys = await mediaKeys();
    expect(keys).toHaveLength(2);
    for (const key of keys) {
      expect(key).toMatch(/^\.media\/podcast\/[0-9a-f]{64}\.[0-9a-f]{16}\.age$/);
      expect((await object(key)).subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    }
    const record = JSON.parse((await object(`podcast/${first.snapshot}.json`)).toString());
    expect(record.media).toMatchObject({ files: 3, objects: 2, bytes: 2 * 3 * 2 ** 20 + 600_000, encrypted_to: expect.stringMatching(/^[0-9a-f]{16}$/) });
    // The archive holds the site, the media directories and media.json, but no media file.
    const dir = await tempDir('media-archive');
    await writeFile(join(dir, 'a.age'), await object(`podcast/${first.snapshot}.tar.zst.age`));
    await execa('age', ['-d', '-i', identity(), '-o', join(dir, 'a.tar.zst'), join(dir, 'a.age')]);
    const listed = (await execa('tar', ['--zstd', '-tf', join(dir, 'a.tar.zst')])).stdout.split('\n');
    expect(listed.filter((l) => l.endsWith('/site/index.html'))).toHaveLength(1);
    expect(listed.filter((l) => l.endsWith('/photos/2026/summer/'))).toHaveLength(1);
    expect(listed).toContain(`${first.snapshot}/media.json`);
    expect(listed.filter((l) => /\.(jpg|mp3)$/.test(l))).toEqual([]);
  });

  it('an unchanged run sends no media object; a changed file sends one', async () => {
    const again = await backup();
    expect(again.storages[0]!.media).toEqual({ objects: 2, uploaded: 0, bytes_sent: 0 });
    await writeFile(join(photos(), 'episode.mp3'), EPISODE_2);
    await utimes(join(photos(), 'episode.mp3'), OLD, OLD);
    changed = await backup();
    expect(changed.storages[0]!.media).toMatchObject({ objects: 2, uploaded: 1 });
    expect(changed.storages[0]!.media!.bytes_sent).toBeGreaterThan(650_000);
    expect(await mediaKeys()).toHaveLength(3);
  });

  it('each snapshot restores its media as they were, with modes and mtimes', async () => {
    const older = join(app.dataDir, 'restored-old');
    await restore({ snapshot: first.snapshot, source: 'app', artifact: 'photos', dir: older });
    const base = join(older, photos());
    expect(await shaOf(join(base, 'episode.mp3'))).toBe(sha(EPISODE_1));
    expect(await shaOf(join(base, '2026/summer/copy of beach.jpg'))).toBe(sha(BEACH));
    const st = await stat(join(base, 'episode.mp3'));
    expect(st.mode & 0o777).toBe(0o640);
    expect(st.mtime.toISOString()).toBe(OLD.toISOString());
    // The directory the media files were moved into keeps the archive's mtime.
    expect((await stat(join(base, '2026/summer'))).mtime.toISOString()).toBe(OLD.toISOString());
    const newer = join(app.dataDir, 'restored-new');
    await restore({ snapshot: changed.snapshot, source: 'app', artifact: 'photos', dir: newer });
    expect(await shaOf(join(newer, photos(), 'episode.mp3'))).toBe(sha(EPISODE_2));
  });

  it('a restore of the other artifact fetches no media object', async () => {
    const dir = join(app.dataDir, 'restored-site');
    const swapped = (await mediaKeys())[0]!;
    const original = await object(swapped);
    await s3Client().send(new PutObjectCommand({ Bucket: bucket, Key: swapped, Body: Buffer.from('not even age') }));
    try {
      await restore({ snapshot: changed.snapshot, source: 'app', artifact: 'site', dir }); // would fail if it read the object
      expect(await readFile(join(dir, site(), 'index.html'), 'utf8')).toBe('<h1>shop</h1>\n');
    } finally {
      await s3Client().send(new PutObjectCommand({ Bucket: bucket, Key: swapped, Body: original }));
    }
  });

  it('an object swapped for another file of the same recipient is refused', async () => {
    // The beach photo's object (the first snapshot needs it) now holds the new episode, encrypted to the same key.
    const keys = await mediaKeys();
    const a = keys.find((k) => k.includes(sha(BEACH)))!;
    const b = keys.find((k) => k.includes(sha(EPISODE_2)))!;
    const original = await object(a);
    await s3Client().send(new PutObjectCommand({ Bucket: bucket, Key: a, Body: await object(b) }));
    try {
      const err = await restore({ snapshot: first.snapshot, source: 'app', artifact: 'photos', dir: join(app.dataDir, 'restored-swapped') }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect(((err as WorkflowFailedError).cause as ApplicationFailure).type).toBe('ChecksumMismatch');
    } finally {
      await s3Client().send(new PutObjectCommand({ Bucket: bucket, Key: a, Body: original }));
    }
  });

  it('retention deletes the objects only dropped snapshots referenced, and the kept one restores whole', async () => {
    await writeConfig(root, config({ last: 1 })); // the worker reads the config on every run
    const latest = await backup();
    expect(latest.retention?.[0]).toMatchObject({ deleted: expect.arrayContaining([first.snapshot, changed.snapshot]), media: { deleted: 1 } });
    expect(await mediaKeys()).toHaveLength(2); // the first episode.mp3 is gone; the beach photo and the new episode stay
    await rm(photos(), { recursive: true, force: true });
    await restore({ snapshot: latest.snapshot, source: 'app', artifact: 'photos', force: true });
    expect(await shaOf(join(photos(), 'episode.mp3'))).toBe(sha(EPISODE_2));
    expect(await shaOf(join(photos(), '2026/summer/beach.jpg'))).toBe(sha(BEACH));
  });
});
