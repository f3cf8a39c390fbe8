// S3Backend.put against the suite's real MinIO: explicit multipart uploads verified by the server's own composite
// SHA-256, a check that fails when the object is replaced, resume after the worker process is SIGKILLed, and no
// open multipart upload left after success, cancellation or a permanent failure; retention removing orphan archives
// by the server's own clock. No mocks of S3: the bytes sent
// are counted by a middleware on the S3 client that wraps each UploadPart/PutObject body as it is sent.
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, openSync, readdirSync, readlinkSync, readSync, truncateSync, writeSync } from 'node:fs';
import { open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform, pipeline } from 'node:stream';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load';
import type { S3Storage } from '../../src/config/schema';
import { ORPHAN_MIN_AGE_MS } from '../../src/retention/orphans';
import { applyRetention } from '../../src/retention/storage-retention';
import { openStorage } from '../../src/storage';
import { S3Backend } from '../../src/storage/s3';
import { createBucket, lifeboatFailure, s3Client, tempDir, uniqueName, writeConfig } from '../support/fixtures';

const MiB = 1024 * 1024;
const PART = 5 * MiB;
const PREFIX = 'lb/sub';
const STANDIN = new URL('../support/put-standin.ts', import.meta.url).pathname;
const REPO = new URL('../..', import.meta.url).pathname;

const bucket = uniqueName('upload');
let root: string;
let configPath: string;
let cfg: S3Storage;
let backend: S3Backend;
const raw = (): S3Client => s3Client();

interface Archive {
  file: string;
  size: number;
  sha256: string;
  /** S3's composite checksum for 5 MiB parts, computed here from the bytes as they were written. */
  composite: string;
}

/** A random file written 1 MiB at a time (never whole in memory), with its SHA-256 and 5 MiB-part composite. */
async function randomArchive(name: string, size: number): Promise<Archive> {
  const file = join(root, name);
  const whole = createHash('sha256');
  const partDigests: Buffer[] = [];
  let part = createHash('sha256');
  const out = createWriteStream(file);
  for (let at = 0; at < size; at += MiB) {
    const chunk = randomBytes(Math.min(MiB, size - at));
    whole.update(chunk);
    part.update(chunk);
    if ((at + chunk.length) % PART === 0 || at + chunk.length === size) {
      partDigests.push(part.digest());
      part = createHash('sha256');
    }
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r, j) => out.end((err?: Error | null) => (err ? j(err) : r())));
  const composite = `${createHash('sha256').update(Buffer.concat(partDigests)).digest('base64')}-${partDigests.length}`;
  return { file, size, sha256: whole.digest('hex'), composite };
}

const full = (key: string) => `${PREFIX}/${key}`;

async function openUploads(key: string): Promise<string[]> {
  const res = await raw().send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: full(key) }));
  return (res.Uploads ?? []).filter((u) => u.Key === full(key)).map((u) => u.UploadId!);
}

async function serverChecksum(key: string): Promise<string | undefined> {
  return (await raw().send(new HeadObjectCommand({ Bucket: bucket, Key: full(key), ChecksumMode: 'ENABLED' }))).ChecksumSHA256;
}

async function exists(key: string): Promise<boolean> {
  return raw()
    .send(new HeadObjectCommand({ Bucket: bucket, Key: full(key) }))
    .then(
      () => true,
      () => false,
    );
}

/** A backend like the worker's, on a client that counts the body bytes of every UploadPart and PutObject it sends. */
function countingBackend(overrides: Partial<S3Storage> = {}): { backend: S3Backend; sent: () => number } {
  const m = inject('minio');
  const client = new S3Client({ endpoint: m.endpoint, region: m.region, forcePathStyle: true, credentials: { accessKeyId: m.accessKey, secretAccessKey: m.secretKey }, maxAttempts: 3 });
  let sent = 0;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { body?: unknown };
      const counted = context.commandName === 'UploadPartCommand' || context.commandName === 'PutObjectCommand';
      if (counted && request.body instanceof Readable) {
        const tap = new Transform({
          transform(chunk: Buffer, _enc, done) {
            sent += chunk.length;
            done(null, chunk);
          },
        });
        pipeline(request.body, tap, () => undefined);
        request.body = tap;
      } else if (counted && Buffer.isBuffer(request.body)) {
        sent += request.body.length;
      }
      return next(args);
    },
    { step: 'finalizeRequest', priority: 'low', name: 'countBodyBytes' },
  );
  return { backend: new S3Backend('minio', { ...cfg, ...overrides }, client), sent: () => sent };
}

/** What an earlier attempt (or another tool) left: an open multipart upload holding `parts` as parts 1…N. */
async function leaveUpload(key: string, parts: Buffer[]): Promise<string> {
  const { UploadId } = await raw().send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: full(key), ChecksumAlgorithm: 'SHA256' }));
  for (const [i, body] of parts.entries()) {
    await raw().send(new UploadPartCommand({ Bucket: bucket, Key: full(key), UploadId, PartNumber: i + 1, Body: body, ChecksumSHA256: createHash('sha256').update(body).digest('base64') }));
  }
  return UploadId!;
}

/** Another tool's multipart object under `key`, made of `parts`. */
async function replaceWithMultipart(key: string, parts: Buffer[]): Promise<void> {
  const UploadId = await leaveUpload(key, parts);
  const listed = await raw().send(new ListPartsCommand({ Bucket: bucket, Key: full(key), UploadId }));
  const done = (listed.Parts ?? []).map((p) => ({ PartNumber: p.PartNumber, ETag: p.ETag, ChecksumSHA256: p.ChecksumSHA256 }));
  await raw().send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: full(key), UploadId, MultipartUpload: { Parts: done } }));
}

/** Flips one byte of `file` in place, synchronously (called from onState, before the next part is read). */
function flipByte(file: string, at: number): void {
  const fd = openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    b[0]! ^= 0xff;
    writeSync(fd, b, 0, 1, at);
  } finally {
    closeSync(fd);
  }
}

async function slice(file: string, start: number, end: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(end - start);
    await fh.read(buf, 0, buf.length, start);
    return buf;
  } finally {
    await fh.close();
  }
}

beforeAll(async () => {
  const m = inject('minio');
  root = await tempDir('storage-upload');
  await createBucket(bucket);
  await writeFile(join(root, 's3-access'), m.accessKey, { mode: 0o600 });
  await writeFile(join(root, 's3-secret'), m.secretKey, { mode: 0o600 });
  const minio = { type: 's3', endpoint: m.endpoint, region: m.region, bucket, prefix: PREFIX, forcePathStyle: true, accessKeyId: { file: join(root, 's3-access') }, secretAccessKey: { file: join(root, 's3-secret') }, partSizeMiB: 5, queueSize: 2 };
  configPath = await writeConfig(root, { backupRoot: join(root, 'backups'), storages: { minio }, plans: {} });
  cfg = (await loadConfig(configPath)).storages.minio as S3Storage;
  backend = (await openStorage('minio', cfg)) as S3Backend;
});

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe('S3 upload, verified by the server', () => {
  it('uploads ≥ 3 parts explicitly and checks them against the server’s composite SHA-256; the result names the real object', async () => {
    const a = await randomArchive('four-parts.tar.zst', 16 * MiB);
    const key = 'shop/shop-20260101T000000.tar.zst';
    const states: { uploadId: string; partsDone: number; partSize: number }[] = [];
    const { backend: counted, sent } = countingBackend();
    const put = await counted.put(key, a.file, { sha256: a.sha256, size: a.size, onState: (s) => states.push(s) });

    expect(put).toMatchObject({ key: full(key), bucket, location: `s3://${bucket}/${full(key)}`, alreadyPresent: false, verifiedBy: 'server-composite-sha256', bytesSent: a.size });
    expect(sent()).toBe(a.size);
    expect(await serverChecksum(key)).toBe(a.composite); // 16 MiB in 5 MiB parts: "…-4"
    expect(a.composite).toMatch(/-4$/);
    expect(states.at(-1)).toMatchObject({ partsDone: 4, partSize: PART, uploadId: states[0]!.uploadId });
    expect(await openUploads(key)).toEqual([]);
    // Everything else keeps speaking storage-relative keys.
    expect((await backend.list('shop/')).map((o) => o.key)).toEqual([key]);
    expect(backend.objectKey(key)).toBe(full(key));

    const again = countingBackend();
    expect(await again.backend.put(key, a.file, { sha256: a.sha256, size: a.size })).toMatchObject({ alreadyPresent: true, bytesSent: 0 });
    expect(again.sent()).toBe(0);
  });

  it('an object replaced on the server between upload and check fails verifyStored with ChecksumMismatch', async () => {
    const a = await randomArchive('replaced.tar.zst', 12 * MiB);
    const local = { file: a.file, sha256: a.sha256, size: a.size };
    const key = 'shop/replaced.tar.zst';
    await backend.put(key, a.file, { sha256: a.sha256, size: a.size });
    expect(await backend.verifyStored(key, local)).toBe('server-composite-sha256');

    // Replaced by another multipart object of the same size and part layout: the composites differ.
    const other = randomBytes(a.size);
    await replaceWithMultipart(key, [other.subarray(0, PART), other.subarray(PART, 2 * PART), other.subarray(2 * PART)]);
    const composite = await lifeboatFailure(backend.verifyStored(key, local));
    expect(composite.code).toBe('ChecksumMismatch');
    expect(composite.message).toContain(`composite SHA-256 is ${await serverChecksum(key)}`);
    expect(composite.message).toContain(a.composite);

    // Replaced by a plain PutObject that keeps no SHA-256: the check reads the object back and hashes it.
    await raw().send(new PutObjectCommand({ Bucket: bucket, Key: full(key), Body: other }));
    expect(await serverChecksum(key)).toBeUndefined();
    const readBack = await lifeboatFailure(backend.verifyStored(key, local));
    expect(readBack.code).toBe('ChecksumMismatch');
    expect(readBack.message).toContain('read back');

    // The right bytes without a server checksum pass by read-back.
    await raw().send(new PutObjectCommand({ Bucket: bucket, Key: full(key), Body: await readFile(a.file) }));
    expect(await backend.verifyStored(key, local)).toBe('read-back-sha256');
  });

  it('an archive of one part goes up as one PutObject, checked against the server’s full-object SHA-256', async () => {
    const a = await randomArchive('small.tar.zst', 3 * MiB + 5);
    const key = 'shop/small.tar.zst';
    const put = await backend.put(key, a.file, { sha256: a.sha256, size: a.size });
    expect(put.verifiedBy).toBe('server-sha256');
    expect(await serverChecksum(key)).toBe(Buffer.from(a.sha256, 'hex').toString('base64'));
    const other = randomBytes(a.size);
    await raw().send(new PutObjectCommand({ Bucket: bucket, Key: full(key), Body: other, ChecksumSHA256: createHash('sha256').update(other).digest('base64') }));
    expect((await lifeboatFailure(backend.verifyStored(key, { file: a.file, sha256: a.sha256, size: a.size }))).code).toBe('ChecksumMismatch');
  });
});

describe('S3 upload, resumed and cleaned up', () => {
  it('after the worker process is SIGKILLed past half of a 200 MiB upload, the next put sends only the rest', async () => {
    const a = await randomArchive('big.tar.zst', 200 * MiB);
    const key = 'shop/big.tar.zst';
    // The stand-in for the worker process: lifeboat.yaml → loadConfig → openStorage → put, in a process of its own.
    const worker = execa(process.execPath, ['--import', 'tsx', STANDIN, configPath, 'minio', key, a.file, a.sha256, String(a.size)], { cwd: REPO, reject: false });
    let killedAt = 0;
    for await (const line of worker) {
      const msg = JSON.parse(line) as { progress?: number };
      if (!killedAt && (msg.progress ?? 0) >= a.size / 2) {
        killedAt = msg.progress!;
        worker.kill('SIGKILL');
      }
    }
    const exited = await worker;
    expect(exited.signal, `the stand-in finished before it was killed: ${exited.stdout.slice(-300)} ${exited.stderr.slice(-300)}`).toBe('SIGKILL');
    expect(killedAt).toBeGreaterThanOrEqual(a.size / 2);
    expect(await exists(key)).toBe(false);
    expect(await openUploads(key)).toHaveLength(1); // what the killed process left: the server holds its parts

    const { backend: next, sent } = countingBackend();
    const put = await next.put(key, a.file, { sha256: a.sha256, size: a.size });
    expect(sent()).toBeGreaterThan(0);
    expect(sent()).toBeLessThanOrEqual(0.55 * a.size);
    expect(put.bytesSent).toBe(sent());
    expect(put.verifiedBy).toBe('server-composite-sha256');
    expect(await serverChecksum(key)).toBe(a.composite);
    expect(await openUploads(key)).toEqual([]);
  });

  it('reuses exactly the parts an open upload holds with this file’s bytes', async () => {
    const a = await randomArchive('resume.tar.zst', 16 * MiB);
    const key = 'shop/resume.tar.zst';
    await leaveUpload(key, [await slice(a.file, 0, PART), await slice(a.file, PART, 2 * PART)]);
    const states: number[] = [];
    const { backend: next, sent } = countingBackend();
    const put = await next.put(key, a.file, { sha256: a.sha256, size: a.size, onState: (s) => states.push(s.partsDone) });
    expect(sent()).toBe(a.size - 2 * PART);
    expect(states[0]).toBe(2);
    expect(await serverChecksum(key)).toBe(a.composite);
    expect(put.verifiedBy).toBe('server-composite-sha256');
    expect(await openUploads(key)).toEqual([]);
  });

  it('aborts open uploads it cannot finish (another part size, other bytes) and uploads everything', async () => {
    const a = await randomArchive('unusable.tar.zst', 16 * MiB);
    const key = 'shop/unusable.tar.zst';
    const otherSize = await leaveUpload(key, [await slice(a.file, 0, 6 * MiB)]);
    const changed = await slice(a.file, 0, PART);
    changed[100]! ^= 1;
    const otherBytes = await leaveUpload(key, [changed]);
    expect((await openUploads(key)).sort()).toEqual([otherSize, otherBytes].sort());
    const { backend: next, sent } = countingBackend();
    await next.put(key, a.file, { sha256: a.sha256, size: a.size });
    expect(sent()).toBe(a.size);
    expect(await serverChecksum(key)).toBe(a.composite);
    expect(await openUploads(key)).toEqual([]);
  });

  it('a put cancelled through its AbortSignal leaves no multipart upload', async () => {
    const a = await randomArchive('cancelled.tar.zst', 16 * MiB);
    const key = 'shop/cancelled.tar.zst';
    const ac = new AbortController();
    const put = backend.put(key, a.file, { sha256: a.sha256, size: a.size, signal: ac.signal, onState: (s) => s.partsDone >= 1 && ac.abort() });
    await expect(put).rejects.toThrow();
    expect(ac.signal.aborted).toBe(true);
    expect(await openUploads(key)).toEqual([]);
    expect(await exists(key)).toBe(false);
  });

  it('a put failing permanently leaves no multipart upload, its own or an earlier attempt’s', async () => {
    const a = await randomArchive('failing.tar.zst', 16 * MiB);
    const key = 'shop/failing.tar.zst';
    const expectNone = async () => {
      expect(await openUploads(key)).toEqual([]);
      expect(await exists(key)).toBe(false);
    };

    // The local file is shorter than the archive size it is put with.
    await leaveUpload(key, [await slice(a.file, 0, PART)]);
    const short = await lifeboatFailure(backend.put(key, a.file, { sha256: a.sha256, size: a.size + 1 }));
    expect(short.code).toBe('ChecksumMismatch');
    await expectNone();

    // A checksum that is not the file's.
    await leaveUpload(key, [await slice(a.file, 0, PART)]);
    const bad = await lifeboatFailure(backend.put(key, a.file, { sha256: '0'.repeat(64), size: a.size }));
    expect(bad.code).toBe('ChecksumMismatch');
    expect(bad.message).toContain(a.sha256);
    await expectNone();

    // Bytes changed under the upload after part 1: the server refuses the part whose SHA-256 no longer matches.
    const one = { queueSize: 1 };
    const changed = await lifeboatFailure(
      countingBackend(one).backend.put(key, a.file, {
        sha256: a.sha256,
        size: a.size,
        onState: (s) => {
          if (s.partsDone === 1) flipByte(a.file, 3 * PART + 10); // in part 4, not read yet (one part at a time)
        },
      }),
    );
    expect(changed.code).toBe('ChecksumMismatch');
    await expectNone();

    // The file shrank under the upload: the short part fails instead of waiting for bytes that never come.
    const b = await randomArchive('shrinking.tar.zst', 16 * MiB);
    const shrunk = await lifeboatFailure(
      countingBackend(one).backend.put(key, b.file, {
        sha256: b.sha256,
        size: b.size,
        onState: (s) => {
          if (s.partsDone === 1) truncateSync(b.file, PART + MiB); // part 2 now ends 4 MiB early
        },
      }),
    );
    expect(shrunk.code).toBe('ChecksumMismatch');
    await expectNone();
  });
});

describe('S3 retention and orphans', () => {
  it('removes an archive without a record and an abandoned multipart upload once the server says they are a day old, and nothing else', async () => {
    const names = ['orph-20260101T000000', 'orph-20260104T000000', 'orph-20260105T000000', 'orph-20260106T000000'];
    const [orphan, kept, newest, inFlight] = names.map((n) => `orph/${n}.tar.zst`) as [string, string, string, string];
    for (const key of [orphan, kept, newest, inFlight]) await raw().send(new PutObjectCommand({ Bucket: bucket, Key: full(key), Body: 'archive' }));
    for (const n of [names[1]!, names[2]!]) {
      await backend.putJson(`orph/${n}.json`, { success: true, status: 'Completed', snapshot: n, plan: 'orph', tier: 'daily', created_at: new Date().toISOString(), format: 'tar.zst', size_bytes: 7, checksum_sha256: '0'.repeat(64) });
    }
    // A worker killed mid-upload, whose run then ended: its open multipart upload; and one of the newest name.
    const open = async (key: string) => {
      const { UploadId } = await raw().send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: full(key) }));
      await raw().send(new UploadPartCommand({ Bucket: bucket, Key: full(key), UploadId, PartNumber: 1, Body: Buffer.alloc(PART, 1) }));
    };
    const abandoned = 'orph/orph-20260102T000000.tar.zst';
    await open(abandoned);
    await open(inFlight);
    const policy = { daily: 0, weekly: 0, monthly: 0, yearly: 0, last: 5, minimum: 1, timezone: 'UTC' };
    // Written a moment ago by MinIO's clock: too young to be an orphan yet.
    expect((await applyRetention(backend, 'orph', policy, new Date())).orphans).toBeUndefined();
    expect(await exists(orphan)).toBe(true);
    const dayLater = new Date(Date.now() + ORPHAN_MIN_AGE_MS + 60_000);
    expect(await openUploads(abandoned)).toHaveLength(1);
    expect(await applyRetention(backend, 'orph', policy, dayLater)).toEqual({ kept: 2, deleted: [], ignored: [], orphans: [orphan, `${abandoned} (unfinished upload)`] });
    expect(await exists(orphan)).toBe(false);
    expect(await openUploads(abandoned)).toEqual([]);
    expect(await openUploads(inFlight)).toHaveLength(1);
    for (const key of [kept, newest, inFlight]) expect(await exists(key), key).toBe(true);
  });
});

describe('S3 clients', () => {
  /** Sockets this process holds open. */
  const sockets = () => readdirSync('/proc/self/fd').filter((fd) => readlinkSafe(`/proc/self/fd/${fd}`).startsWith('socket:')).length;

  it('every activity opening the same storage shares one client: connections do not pile up', async () => {
    await (await openStorage('minio', cfg)).list('none/');
    const before = sockets();
    // One openStorage per activity, as preflight, upload, retention and restore do; MinIO keeps idle connections open.
    for (let i = 0; i < 20; i++) await (await openStorage('minio', cfg)).list('none/');
    expect(sockets() - before).toBeLessThanOrEqual(2);
  });
});

function readlinkSafe(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}
