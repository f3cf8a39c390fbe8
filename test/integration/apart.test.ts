// Work that moves bulk bytes in a process of its own (src/shared/apart.ts): a restore's fetch (restore/fetch-apart.ts)
// and an archive's upload (storage/upload-apart.ts). The worker (this test process) reads none of the archive's bytes,
// a failure keeps its Lifeboat type, and a cancelled task leaves no process and no extracted tree behind. The child
// is the real `lifeboat internal-apart`, on a real local storage and real MinIO.
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { HeadObjectCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import type { Storage } from '../../src/config/schema';
import type { StoredRecord } from '../../src/restore/fetch';
import { fetchApart, type FetchRequest } from '../../src/restore/fetch-apart';
import { LifeboatError } from '../../src/shared/errors';
import type { StepProgress } from '../../src/shared/progress';
import { createArchive } from '../../src/snapshot/archive';
import { buildManifest, hashFile } from '../../src/snapshot/manifest';
import { archiveKey, recordKey } from '../../src/snapshot/naming';
import { openStorage } from '../../src/storage';
import { putApart } from '../../src/storage/upload-apart';
import { createBucket, s3Client, tempDir, uniqueName } from '../support/fixtures';

const root = await tempDir('fetchproc');
const SNAPSHOT = 'big-20250101T000000';
const BIG_MIB = 192;
const config: Storage = { type: 'local', path: join(root, 'storage') };
let bigSha: string;
let archive: { path: string; sha256: string; size: number };
const bucket = uniqueName('lbapart').toLowerCase();

/** Bytes this process's threads have read through read(), sockets and pipes included (not its children's). */
const bytesRead = () => readdirSync('/proc/self/task').reduce((n, t) => n + Number(/^rchar: (\d+)$/m.exec(readFileSync(`/proc/self/task/${t}/io`, 'utf8'))?.[1] ?? 0), 0);
/** This process's task processes (other test files run their own). */
const fetchers = async () => (await execa('pgrep', ['-P', String(process.pid), '-f', 'lifeboat.mjs internal-apart'], { reject: false })).stdout.split('\n').filter(Boolean).length;
const request = (workDir: string, snapshot = SNAPSHOT): FetchRequest => ({ storage: { name: 'disk', config }, plan: 'big', snapshot, workDir, trust: {} });

beforeAll(async () => {
  const dir = join(root, 'snapshots', SNAPSHOT);
  await mkdir(join(dir, 'files/app/data'), { recursive: true, mode: 0o700 });
  await execa('sh', ['-c', 'head -c "$1" /dev/urandom > "$0"', join(dir, 'files/app/data/big.bin'), String(BIG_MIB * 1024 * 1024)]);
  await writeFile(join(dir, 'metadata.yml'), stringify({ snapshot: SNAPSHOT, plan: 'big', components: { data: { type: 'files', source: 'app', status: 'ok' } } }));
  const manifest = await buildManifest(dir, { skip: (rel) => rel === 'manifest.sha256' });
  await writeFile(join(dir, 'manifest.sha256'), manifest.text);
  bigSha = manifest.entries.find((e) => e.path.endsWith('big.bin'))!.sha256;
  archive = await createArchive(dir, join(root, `${SNAPSHOT}.tar.zst`), 'tar.zst');
  await createBucket(bucket);
  const record: StoredRecord = {
    success: true,
    status: 'Completed',
    snapshot: SNAPSHOT,
    plan: 'big',
    tier: 'daily',
    created_at: '2025-01-01T00:00:00.000Z',
    completed_at: '2025-01-01T00:01:00.000Z',
    format: 'tar.zst',
    size_bytes: archive.size,
    checksum_sha256: archive.sha256,
    manifest: { files: manifest.entries.length, bytes: manifest.entries.reduce((n, e) => n + e.size, 0), sha256: (await hashFile(join(dir, 'manifest.sha256'))).sha256 },
    artifacts: [{ source: 'app', name: 'data', type: 'files', status: 'ok', bytes: BIG_MIB * 1024 * 1024 }],
  };
  const storage = await openStorage('disk', config);
  await storage.put(archiveKey('big', SNAPSHOT, 'tar.zst'), archive.path, { sha256: archive.sha256, size: archive.size });
  await storage.putJson(recordKey('big', SNAPSHOT), { ...record, storage: 'disk' });
}, 120_000);

describe('a restore fetch in a process of its own', () => {
  it('extracts and checks the snapshot while the worker reads none of its bytes', async () => {
    const workDir = join(root, 'work-ok');
    const phases = new Set<string>();
    const before = bytesRead();
    const fetched = await fetchApart(request(workDir), { onProgress: (p: StepProgress) => phases.add(p.phase) });
    const read = bytesRead() - before;
    expect(fetched.dir).toBe(join(workDir, 'extract', SNAPSHOT));
    expect(fetched.record.checksum_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect((await hashFile(join(fetched.dir, 'files/app/data/big.bin'))).sha256).toBe(bigSha);
    expect(phases.has('restore')).toBe(true); // progress crossed the channel
    // The archive is 192 MiB; the request, progress and answer are a few KB (hashing the result above is after).
    expect(read).toBeLessThan(4 * 1024 * 1024);
    expect(await fetchers()).toBe(0);
  }, 120_000);

  it('a system error there keeps its errno code here (the worker maps ENOSPC, EACCES… as its own)', async () => {
    const blocker = join(root, 'a-file');
    await writeFile(blocker, 'not a directory');
    const err = await putApart({ storage: { name: 'disk', config: { type: 'local', path: join(blocker, 'storage') } }, key: 'x.tar.zst', file: archive.path, sha256: archive.sha256, size: archive.size }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ENOTDIR' });
  }, 60_000);

  it("a failure there is the same LifeboatError here (its code decides Temporal's retries)", async () => {
    const err = await fetchApart(request(join(root, 'work-missing'), 'big-20990101T000000')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LifeboatError);
    expect((err as LifeboatError).code).toBe('ConfigError');
    expect((err as LifeboatError).message).toContain('no snapshot big-20990101T000000');
  }, 60_000);

  it('a cancelled fetch stops its process, which leaves no extracted tree behind', async () => {
    const workDir = join(root, 'work-cancel');
    const cancel = new AbortController();
    const reason = new Error('cancelled by the test');
    const fetching = fetchApart(request(workDir), {
      signal: cancel.signal,
      onProgress: (p) => {
        if (p.phase === 'restore' && (p.bytesDone ?? 0) > 16 * 1024 * 1024) cancel.abort(reason);
      },
    });
    await expect(fetching).rejects.toBe(reason);
    expect(await fetchers()).toBe(0); // awaited: the promise settles once the process has exited
    expect(await readdir(join(workDir, 'extract')).catch(() => [])).toEqual([]);
  }, 120_000);
});

describe('an archive upload in a process of its own', () => {
  const s3 = (): Storage => {
    const m = inject('minio');
    return { type: 's3', endpoint: m.endpoint, region: m.region, bucket, prefix: 'apart', forcePathStyle: true, accessKeyId: { env: 'APART_TEST_ACCESS' }, secretAccessKey: { env: 'APART_TEST_SECRET' }, partSizeMiB: 16, queueSize: 4 };
  };
  beforeAll(() => {
    const m = inject('minio');
    process.env.APART_TEST_ACCESS = m.accessKey; // inherited by the child, which resolves the references itself
    process.env.APART_TEST_SECRET = m.secretKey;
  });

  it('stores and verifies the archive while the worker reads none of its bytes; parts and bytes are reported here', async () => {
    const states: number[] = [];
    let bytes = 0;
    const before = bytesRead();
    const put = await putApart({ storage: { name: 'minio', config: s3() }, key: 'one.tar.zst', file: archive.path, sha256: archive.sha256, size: archive.size }, {
      onProgress: (b) => (bytes = b),
      onState: (s) => states.push(s.partsDone),
    });
    expect(bytesRead() - before).toBeLessThan(4 * 1024 * 1024);
    expect(put).toMatchObject({ alreadyPresent: false, verifiedBy: 'server-composite-sha256', bytesSent: archive.size });
    expect(bytes).toBe(archive.size);
    expect(Math.max(...states)).toBe(Math.ceil(archive.size / (16 * 1024 * 1024)));
    const head = await s3Client().send(new HeadObjectCommand({ Bucket: bucket, Key: 'apart/one.tar.zst' }));
    expect(head.ContentLength).toBe(archive.size);
    expect(await fetchers()).toBe(0);
  }, 120_000);

  const openUploads = async (key: string) => (await s3Client().send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: `apart/${key}` }))).Uploads?.length ?? 0;
  const stoppedAfterOnePart = (key: string, reason: Error) => {
    const cancel = new AbortController();
    return putApart({ storage: { name: 'minio', config: s3() }, key, file: archive.path, sha256: archive.sha256, size: archive.size }, {
      signal: cancel.signal,
      onState: (s) => s.partsDone >= 1 && cancel.abort(reason),
    });
  };

  it('a cancelled upload stops its process and drops its open upload; no object is listed under the key', async () => {
    const reason = new Error('cancelled by the test');
    await expect(stoppedAfterOnePart('two.tar.zst', reason)).rejects.toBe(reason);
    expect(await fetchers()).toBe(0);
    expect(await openUploads('two.tar.zst')).toBe(0);
    await expect(s3Client().send(new HeadObjectCommand({ Bucket: bucket, Key: 'apart/two.tar.zst' }))).rejects.toMatchObject({ name: 'NotFound' });
  }, 120_000);

  it('an upload stopped for a retry (a stall) keeps its parts, and the next attempt sends only the rest', async () => {
    const reason = new LifeboatError('Stalled', 'no progress (the test)');
    await expect(stoppedAfterOnePart('four.tar.zst', reason)).rejects.toBe(reason);
    expect(await openUploads('four.tar.zst')).toBe(1);
    const put = await putApart({ storage: { name: 'minio', config: s3() }, key: 'four.tar.zst', file: archive.path, sha256: archive.sha256, size: archive.size });
    expect(put.alreadyPresent).toBe(false);
    expect(put.bytesSent).toBeGreaterThan(0);
    expect(put.bytesSent).toBeLessThanOrEqual(archive.size - 16 * 1024 * 1024); // at least the first part was kept
    expect(await openUploads('four.tar.zst')).toBe(0);
  }, 120_000);

  it('credentials the server refuses are AuthFailed here, as in the worker', async () => {
    process.env.APART_TEST_SECRET_BAD = 'not-the-secret';
    const bad: Storage = { ...(s3() as Extract<Storage, { type: 's3' }>), secretAccessKey: { env: 'APART_TEST_SECRET_BAD' } };
    const err = await putApart({ storage: { name: 'minio', config: bad }, key: 'three.tar.zst', file: archive.path, sha256: archive.sha256, size: archive.size }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LifeboatError);
    expect((err as LifeboatError).code).toBe('AuthFailed');
  }, 60_000);
});
