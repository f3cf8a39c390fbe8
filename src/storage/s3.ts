// S3-compatible storage (MinIO, AWS, B2, Hetzner…). Archives go up as explicit multipart uploads with a SHA-256
// per part, which the server checks on receipt; the server is the source of truth for a resume (its open upload
// and the parts it lists), and the upload counts as done only once the server's own checksum of the stored
// object equals the one computed from the local archive (see verifyStored).
import { createReadStream, createWriteStream } from 'node:fs';
import { rename } from 'node:fs/promises';
import { Writable, pipeline as pipe, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  type ListPartsCommandOutput,
  type MultipartUpload,
} from '@aws-sdk/client-s3';
import { allOrNothing } from '../shared/bounded';
import type { S3Storage } from '../config/schema';
import { resolveSecret } from '../config/secrets';
import { LifeboatError } from '../shared/errors';
import { parseJson } from './types';
import { meter } from '../shared/meter';
import { FILE_WRITE_BUFFER } from '../shared/write-buffer';
import {
  compositeSha256,
  exactLength,
  hashFile,
  hexToBase64,
  isFinalFailure,
  planParts,
  reusableParts,
  type CompletedPart,
  type FileDigests,
  type ListedPart,
  type PartRange,
} from './multipart';
import type { LocalArchive, ObjectInfo, PutOptions, PutResult, StorageBackend, UnfinishedUpload, Verification } from './types';

/** Tries per part body: the SDK never retries a streamed body, so a part is re-read and re-sent here. */
const BODY_ATTEMPTS = 3;
const READ_CHUNK = 1024 * 1024;
/** S3's limit on the parts of one multipart upload. */
const MAX_PARTS = 10_000;

export async function openS3(name: string, cfg: S3Storage): Promise<S3Backend> {
  const [accessKeyId, secretAccessKey] = await Promise.all([
    resolveSecret(cfg.accessKeyId, `storage ${name} accessKeyId`),
    resolveSecret(cfg.secretAccessKey, `storage ${name} secretAccessKey`),
  ]);
  const settings = { endpoint: cfg.endpoint, region: cfg.region, forcePathStyle: cfg.forcePathStyle, credentials: { accessKeyId, secretAccessKey } };
  const id = JSON.stringify(settings);
  let client = clients.get(id);
  if (!client) {
    client = new S3Client({ ...settings, maxAttempts: 3 });
    clients.set(id, client);
  }
  return new S3Backend(name, cfg, client);
}

/**
 * One client per endpoint and credentials for the process's life, shared by every activity. A client per activity
 * was never destroyed and its keep-alive connections stayed open (MinIO does not close idle ones): a worker gained
 * about six sockets per backup run, each holding its client's objects. Rotated secrets resolve to a new client.
 */
const clients = new Map<string, S3Client>();

interface Head {
  size: number;
  /** x-amz-checksum-sha256 as the server reports it: base64, with `-N` for a multipart object. */
  sha256?: string;
  metadataSha256?: string;
  lastModified?: Date;
}

interface OpenUpload {
  uploadId: string;
  initiated?: Date;
}

export class S3Backend implements StorageBackend {
  constructor(
    readonly name: string,
    private readonly cfg: S3Storage,
    private readonly client: S3Client,
  ) {}

  objectKey(key: string): string {
    return `${this.cfg.prefix.replace(/\/+$/, '')}${this.cfg.prefix ? '/' : ''}${key}`;
  }

  location(key: string): string {
    return `s3://${this.cfg.bucket}/${this.objectKey(key)}`;
  }

  private get partSize(): number {
    return this.cfg.partSizeMiB * 1024 * 1024;
  }

  async put(key: string, file: string, opts: PutOptions): Promise<PutResult> {
    const local: LocalArchive = { file, sha256: opts.sha256, size: opts.size };
    const result = (alreadyPresent: boolean, verifiedBy: Verification, bytesSent: number): PutResult => ({
      location: this.location(key),
      key: this.objectKey(key),
      bucket: this.cfg.bucket,
      alreadyPresent,
      verifiedBy,
      bytesSent,
    });
    try {
      // Hash first: every part's SHA-256 travels with the part, and a damaged local archive is never sent.
      const digests = await hashFile(file, this.partSize, opts.signal);
      assertLocal(digests, local);
      const present = await this.verifiedExisting(key, local, digests, opts.signal);
      if (present) {
        await this.abortOpenUploads(key);
        return result(true, present, 0);
      }
      const sent = digests.parts.length > 1 ? await this.putMultipart(key, file, digests, opts) : await this.putSingle(key, file, digests, opts);
      return result(false, await this.verifyAgainst(key, local, digests, opts.signal), sent);
    } catch (err) {
      if (isFinalFailure(err, opts.signal)) await this.abortOpenUploads(key).catch(() => undefined); // best effort: the original error matters more
      throw opts.signal?.aborted ? (opts.signal.reason ?? err) : err;
    }
  }

  /**
   * What the server holds for `key` against the local archive: its full-object SHA-256, or its composite
   * SHA-256 recomputed from the local file's parts; a server that keeps no SHA-256 gets the object read back.
   */
  async verifyStored(key: string, local: LocalArchive, opts: { signal?: AbortSignal } = {}): Promise<Verification> {
    return this.verifyAgainst(key, local, undefined, opts.signal);
  }

  // ------------------------------------------------------------------ verification

  private async verifyAgainst(key: string, local: LocalArchive, known: FileDigests | undefined, signal?: AbortSignal): Promise<Verification> {
    const head = await this.head(key, signal);
    if (!head) throw new LifeboatError('ChecksumMismatch', `storage ${this.name}: ${this.location(key)} is not there after its upload`);
    return this.compareHead(key, head, local, known, signal);
  }

  /** An object already stored under `key` that equals the local archive (a resumed run), else undefined. */
  private async verifiedExisting(key: string, local: LocalArchive, known: FileDigests, signal?: AbortSignal): Promise<Verification | undefined> {
    const head = await this.head(key, signal);
    if (!head || head.size !== local.size) return undefined;
    try {
      return await this.compareHead(key, head, local, known, signal);
    } catch (err) {
      if (err instanceof LifeboatError && err.code === 'ChecksumMismatch') return undefined; // other bytes: upload over it
      throw err;
    }
  }

  private async compareHead(key: string, head: Head, local: LocalArchive, known: FileDigests | undefined, signal?: AbortSignal): Promise<Verification> {
    const where = `storage ${this.name}: ${this.location(key)}`;
    if (head.size !== local.size) throw new LifeboatError('ChecksumMismatch', `${where} holds ${head.size} bytes, the local archive ${local.file} has ${local.size}`);
    if (!head.sha256) {
      await this.readBack(key, local, signal);
      return 'read-back-sha256';
    }
    const composite = /^(.+)-(\d+)$/.exec(head.sha256);
    const expected = composite ? compositeSha256(await this.localParts(key, local, Number(composite[2]), known, signal)) : hexToBase64(local.sha256);
    if (head.sha256 !== expected) {
      throw new LifeboatError(
        'ChecksumMismatch',
        `${where}: the server's ${composite ? 'composite ' : ''}SHA-256 is ${head.sha256}, the local archive ${local.file} gives ${expected}`,
        { location: this.location(key), stored: head.sha256, expected },
      );
    }
    return composite ? 'server-composite-sha256' : 'server-sha256';
  }

  /** The local file's part digests, cut at the part size the server used for this object. */
  private async localParts(key: string, local: LocalArchive, count: number, known: FileDigests | undefined, signal?: AbortSignal): Promise<Buffer[]> {
    if (count === 1) return [Buffer.from(local.sha256, 'hex')]; // one part: its digest is the whole file's
    const partSize = await this.partOneSize(key, signal);
    const digests = known?.partSize === partSize ? known : await hashFile(local.file, partSize, signal);
    assertLocal(digests, local);
    return digests.parts;
  }

  /** No checksum on the server: stream the object back and hash it, never holding it whole. */
  private async readBack(key: string, local: LocalArchive, signal?: AbortSignal): Promise<void> {
    const res = await this.guard(() => this.client.send(new GetObjectCommand({ Bucket: this.cfg.bucket, Key: this.objectKey(key) }), { abortSignal: signal }), `read back ${key}`);
    const tap = meter({ sha256: true });
    await pipeline(res.Body as Readable, tap, discard(), { signal });
    const sha256 = tap.digest();
    if (tap.bytes !== local.size || sha256 !== local.sha256) {
      throw new LifeboatError(
        'ChecksumMismatch',
        `storage ${this.name}: ${this.location(key)} read back as ${tap.bytes} bytes with SHA-256 ${sha256}, the local archive ${local.file} has ${local.size} bytes with SHA-256 ${local.sha256}`,
        { location: this.location(key), stored: sha256, expected: local.sha256 },
      );
    }
  }

  private async head(key: string, signal?: AbortSignal): Promise<Head | null> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.cfg.bucket, Key: this.objectKey(key), ChecksumMode: 'ENABLED' }), { abortSignal: signal });
      return { size: res.ContentLength ?? 0, sha256: res.ChecksumSHA256, metadataSha256: res.Metadata?.sha256, lastModified: res.LastModified };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw this.wrap(err, `stat ${key}`);
    }
  }

  private async partOneSize(key: string, signal?: AbortSignal): Promise<number> {
    const res = await this.guard(
      () => this.client.send(new HeadObjectCommand({ Bucket: this.cfg.bucket, Key: this.objectKey(key), PartNumber: 1 }), { abortSignal: signal }),
      `stat part 1 of ${key}`,
    );
    return res.ContentLength ?? 0;
  }

  // ------------------------------------------------------------------ upload

  /** Up to one part: a plain PutObject with the full SHA-256, which the server checks and keeps. */
  private async putSingle(key: string, file: string, digests: FileDigests, opts: PutOptions): Promise<number> {
    await this.abortOpenUploads(key); // an upload left with another part size: this object no longer needs it
    let sent = 0;
    await this.sendBody(`upload ${this.location(key)}`, file, { partNumber: 1, start: 0, end: digests.size }, opts.signal, (n) => (sent += n), (Body, abortSignal) =>
      this.client.send(
        new PutObjectCommand({ Bucket: this.cfg.bucket, Key: this.objectKey(key), Body, ContentLength: digests.size, ChecksumSHA256: hexToBase64(digests.sha256), Metadata: { sha256: digests.sha256 } }),
        { abortSignal },
      ),
    );
    opts.onProgress?.(digests.size);
    return sent;
  }

  /** Resumes the open upload for `key` if its parts are this file's, else starts one; sends what is missing. */
  private async putMultipart(key: string, file: string, digests: FileDigests, opts: PutOptions): Promise<number> {
    const plan = planParts(digests.size, digests.partSize);
    if (plan.length > MAX_PARTS) {
      throw new LifeboatError('ConfigError', `storage ${this.name}: ${this.location(key)} would need ${plan.length} parts of ${this.cfg.partSizeMiB} MiB; S3 allows ${MAX_PARTS}: raise partSizeMiB`);
    }
    const { uploadId, parts } = await this.resumeOrCreate(key, plan, digests);
    const done = new Set(parts.map((p) => p.PartNumber));
    let stored = plan.filter((r) => done.has(r.partNumber)).reduce((n, r) => n + r.end - r.start, 0);
    let sent = 0;
    const report = () => {
      opts.onProgress?.(stored);
      opts.onState?.({ uploadId, partsDone: parts.length, partSize: digests.partSize });
    };
    report();
    await allOrNothing(plan.filter((r) => !done.has(r.partNumber)), this.cfg.queueSize, opts.signal, async (range, signal) => {
      parts.push(await this.uploadPart(key, uploadId, file, range, digests.parts[range.partNumber - 1]!, signal, (n) => (sent += n)));
      stored += range.end - range.start;
      report();
    });
    const sorted = [...parts].sort((a, b) => a.PartNumber - b.PartNumber);
    await this.guard(
      () =>
        this.client.send(
          new CompleteMultipartUploadCommand({ Bucket: this.cfg.bucket, Key: this.objectKey(key), UploadId: uploadId, MultipartUpload: { Parts: sorted } }),
          { abortSignal: opts.signal },
        ),
      `complete the upload of ${key}`,
    );
    return sent;
  }

  /** The server is the source of truth: the newest open upload whose parts all match is kept, every other aborted. */
  private async resumeOrCreate(key: string, plan: PartRange[], digests: FileDigests): Promise<{ uploadId: string; parts: CompletedPart[] }> {
    let resumed: { uploadId: string; parts: CompletedPart[] } | undefined;
    for (const u of await this.openUploads(key)) {
      if (!resumed) {
        const listed = await this.listParts(key, u.uploadId);
        const reuse = listed.algorithm === 'SHA256' ? reusableParts(listed.parts, plan, digests) : undefined;
        if (reuse?.ok) {
          resumed = { uploadId: u.uploadId, parts: reuse.parts };
          continue;
        }
      }
      await this.abortUpload(key, u.uploadId);
    }
    return resumed ?? { uploadId: await this.createUpload(key, digests.sha256), parts: [] };
  }

  private async createUpload(key: string, sha256: string): Promise<string> {
    const res = await this.guard(
      () => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.cfg.bucket, Key: this.objectKey(key), ChecksumAlgorithm: 'SHA256', Metadata: { sha256 } })),
      `start the upload of ${key}`,
    );
    if (!res.UploadId) throw new LifeboatError('StorageError', `storage ${this.name}: starting the upload of ${this.location(key)} returned no upload id`);
    return res.UploadId;
  }

  private async uploadPart(key: string, uploadId: string, file: string, range: PartRange, digest: Buffer, signal: AbortSignal, onBytes: (n: number) => void): Promise<CompletedPart> {
    const sha = digest.toString('base64');
    const what = `upload part ${range.partNumber} (bytes ${range.start}–${range.end - 1}) of ${this.location(key)}`;
    const res = await this.sendBody(what, file, range, signal, onBytes, (Body, abortSignal) =>
      this.client.send(
        new UploadPartCommand({ Bucket: this.cfg.bucket, Key: this.objectKey(key), UploadId: uploadId, PartNumber: range.partNumber, Body, ContentLength: range.end - range.start, ChecksumSHA256: sha }),
        { abortSignal },
      ),
    );
    if (!res.ETag) throw new LifeboatError('StorageError', `storage ${this.name}: ${what}: the server returned no ETag`);
    if (res.ChecksumSHA256 && res.ChecksumSHA256 !== sha) {
      throw new LifeboatError('ChecksumMismatch', `storage ${this.name}: ${what}: the server stored SHA-256 ${res.ChecksumSHA256}, the local bytes have ${sha}`);
    }
    return { PartNumber: range.partNumber, ETag: res.ETag, ChecksumSHA256: sha };
  }

  /**
   * Streams one byte range of `file` as a request body, re-reading it for another try on a transient error. A
   * range that comes up short aborts the request (else it would wait for bytes its Content-Length promised).
   */
  private async sendBody<T>(what: string, file: string, range: PartRange, signal: AbortSignal | undefined, onBytes: (n: number) => void, send: (body: Readable | Buffer, signal: AbortSignal) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await sendRange(`storage ${this.name}: ${what}`, file, range, signal, onBytes, send);
      } catch (err) {
        const e = this.classifyBodyError(err, what);
        if (signal?.aborted || e.permanent || attempt >= BODY_ATTEMPTS) throw signal?.aborted ? err : e;
        await sleep(500 * 2 ** attempt, undefined, { signal });
      }
    }
  }

  /** The server refusing a part's SHA-256 means the local bytes changed since they were hashed: permanent. */
  private classifyBodyError(err: unknown, what: string): LifeboatError {
    if (err instanceof LifeboatError) return err;
    const name = (err as S3ServiceException | undefined)?.name ?? '';
    if (name === 'XAmzContentChecksumMismatch' || name === 'BadDigest' || name === 'InvalidDigest') {
      return new LifeboatError('ChecksumMismatch', `storage ${this.name}: ${what}: the server computed another SHA-256 than the one hashed from the local archive before the upload (${name}): the file changed, or the bytes were damaged on the way`);
    }
    return this.wrap(err, what);
  }

  // ------------------------------------------------------------------ open multipart uploads

  /** Open uploads for exactly `key` (a listing by prefix also returns longer keys), newest first. */
  private async openUploads(key: string): Promise<OpenUpload[]> {
    const full = this.objectKey(key);
    const mine = (await this.listUploads(full, `list open uploads of ${key}`)).flatMap((u) => (u.Key === full && u.UploadId ? [{ uploadId: u.UploadId, initiated: u.Initiated }] : []));
    return mine.sort((a, b) => (b.initiated?.getTime() ?? 0) - (a.initiated?.getTime() ?? 0));
  }

  private async listParts(key: string, uploadId: string): Promise<{ algorithm?: string; parts: ListedPart[] }> {
    const parts: ListedPart[] = [];
    let algorithm: string | undefined;
    let marker: string | undefined;
    do {
      const res: ListPartsCommandOutput = await this.guard(
        () => this.client.send(new ListPartsCommand({ Bucket: this.cfg.bucket, Key: this.objectKey(key), UploadId: uploadId, PartNumberMarker: marker })),
        `list the stored parts of ${key}`,
      );
      algorithm ??= res.ChecksumAlgorithm;
      parts.push(...(res.Parts ?? []));
      marker = res.IsTruncated ? res.NextPartNumberMarker : undefined;
    } while (marker);
    return { algorithm, parts };
  }

  private async abortUpload(key: string, uploadId: string): Promise<void> {
    await this.guard(
      () => this.client.send(new AbortMultipartUploadCommand({ Bucket: this.cfg.bucket, Key: this.objectKey(key), UploadId: uploadId })),
      `abort an unfinished upload of ${key}`,
    );
  }

  /**
   * Every open upload under `prefix` (retention drops those of orphans: retention/orphans.ts). MinIO answers a prefix
   * listing only for an exact object key (minio/minio#20989): when the prefix listing finds none, the bucket's whole
   * listing is filtered here instead; a policy that allows only the prefix (AWS IAM `s3:prefix`) refuses that one,
   * and then the prefix listing's answer stands.
   */
  async unfinishedUploads(prefix: string): Promise<UnfinishedUpload[]> {
    const root = this.objectKey('');
    const under = this.objectKey(prefix);
    const what = `list open uploads under ${prefix}`;
    let uploads = await this.listUploads(under, what);
    if (uploads.length === 0) uploads = await this.listUploads(undefined, what).catch((err: unknown) => (err instanceof LifeboatError && err.code === 'AuthFailed' ? [] : Promise.reject(err)));
    return uploads.flatMap((u) => (u.Key?.startsWith(under) && u.UploadId ? [{ key: u.Key.slice(root.length), uploadId: u.UploadId, ...(u.Initiated ? { since: u.Initiated } : {}) }] : []));
  }

  /** ListMultipartUploads, every page. */
  private async listUploads(prefix: string | undefined, what: string): Promise<MultipartUpload[]> {
    const out: MultipartUpload[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const res = await this.guard(() => this.client.send(new ListMultipartUploadsCommand({ Bucket: this.cfg.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker })), what);
      out.push(...(res.Uploads ?? []));
      [keyMarker, uploadIdMarker] = res.IsTruncated ? [res.NextKeyMarker, res.NextUploadIdMarker] : [undefined, undefined];
    } while (keyMarker || uploadIdMarker);
    return out;
  }

  async dropUnfinished(upload: UnfinishedUpload): Promise<void> {
    if (upload.uploadId) await this.abortUpload(upload.key, upload.uploadId);
  }

  /** Parts of an upload that will never be completed are stored, billed and invisible: drop them. */
  private async abortOpenUploads(key: string): Promise<void> {
    for (const u of await this.openUploads(key)) await this.abortUpload(key, u.uploadId);
  }

  // ------------------------------------------------------------------ the other verbs

  async putJson(key: string, value: unknown): Promise<string> {
    await this.guard(
      () => this.client.send(new PutObjectCommand({ Bucket: this.cfg.bucket, Key: this.objectKey(key), Body: JSON.stringify(value, null, 2), ContentType: 'application/json' })),
      `write ${key}`,
    );
    return this.location(key);
  }

  async get(key: string, file: string, opts: { signal?: AbortSignal; onProgress?: (bytes: number) => void } = {}): Promise<void> {
    const res = await this.guard(() => this.client.send(new GetObjectCommand({ Bucket: this.cfg.bucket, Key: this.objectKey(key) }), { abortSignal: opts.signal }), `read ${key}`);
    await pipeline(res.Body as NodeJS.ReadableStream, meter({ onBytes: opts.onProgress }), createWriteStream(`${file}.partial`, { mode: 0o600, highWaterMark: FILE_WRITE_BUFFER }), { signal: opts.signal });
    await rename(`${file}.partial`, file);
  }

  async read(key: string, opts: { signal?: AbortSignal } = {}): Promise<Readable> {
    const res = await this.guard(() => this.client.send(new GetObjectCommand({ Bucket: this.cfg.bucket, Key: this.objectKey(key) }), { abortSignal: opts.signal }), `read ${key}`);
    return res.Body as Readable;
  }

  async getJson<T>(key: string): Promise<T | null> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.cfg.bucket, Key: this.objectKey(key) }));
      return parseJson<T>(await res.Body!.transformToString(), this.location(key));
    } catch (err) {
      if (isNotFound(err)) return null;
      if (err instanceof LifeboatError) throw err;
      throw this.wrap(err, `read ${key}`);
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      const res = await this.guard(
        () => this.client.send(new ListObjectsV2Command({ Bucket: this.cfg.bucket, Prefix: this.objectKey(prefix), ContinuationToken: token })),
        `list ${prefix}`,
      );
      for (const o of res.Contents ?? []) {
        out.push({ key: o.Key!.slice(this.objectKey('').length), size: o.Size ?? 0, lastModified: o.LastModified });
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    const head = await this.head(key);
    return head && { key, size: head.size, sha256: head.metadataSha256, lastModified: head.lastModified };
  }

  /** Credentials, bucket and reachability, with one cheap listing (preflight). */
  async check(): Promise<void> {
    await this.guard(() => this.client.send(new ListObjectsV2Command({ Bucket: this.cfg.bucket, Prefix: this.objectKey(''), MaxKeys: 1 })), 'list (preflight check)');
  }

  async delete(key: string): Promise<void> {
    await this.guard(() => this.client.send(new DeleteObjectCommand({ Bucket: this.cfg.bucket, Key: this.objectKey(key) })), `delete ${key}`);
  }

  private async guard<T>(fn: () => Promise<T>, what: string): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.wrap(err, what);
    }
  }

  /** Credentials and a missing bucket will not fix themselves: those are permanent. */
  private wrap(err: unknown, what: string): LifeboatError {
    if (err instanceof LifeboatError) return err;
    const e = err as S3ServiceException;
    const name = e?.name ?? '';
    const msg = `storage ${this.name} (${this.cfg.endpoint ?? 'aws'} bucket ${this.cfg.bucket}): ${what} failed: ${name} ${e?.message ?? err}`;
    // A HEAD's 403 has no body, so its error name is lost ("UnknownError"): the status code says it instead.
    const status = e?.$metadata?.httpStatusCode;
    if (AUTH_ERRORS.includes(name) || status === 401 || status === 403) return new LifeboatError('AuthFailed', msg);
    if (name === 'NoSuchBucket') return new LifeboatError('ConfigError', msg);
    return new LifeboatError('StorageError', msg);
  }
}

const AUTH_ERRORS = ['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'InvalidClientTokenId', 'ExpiredToken', 'InvalidToken'];

function isNotFound(err: unknown): boolean {
  const e = err as S3ServiceException;
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404;
}

/** The local file is the archive that was hashed while archiving: else nothing of it may be stored. */
function assertLocal(digests: FileDigests, local: LocalArchive): void {
  if (digests.size !== local.size || digests.sha256 !== local.sha256) {
    throw new LifeboatError(
      'ChecksumMismatch',
      `local archive ${local.file}: ${digests.size} bytes with SHA-256 ${digests.sha256}, but it was archived as ${local.size} bytes with SHA-256 ${local.sha256}`,
      { file: local.file, actual: digests.sha256, expected: local.sha256 },
    );
  }
}

function discard(): Writable {
  return new Writable({ write: (_chunk, _enc, done) => done() });
}

/** One try at sending bytes [start, end) of `file`; a short read aborts the request and is the error reported. */
async function sendRange<T>(what: string, file: string, range: PartRange, signal: AbortSignal | undefined, onBytes: (n: number) => void, send: (body: Readable | Buffer, signal: AbortSignal) => Promise<T>): Promise<T> {
  const own = new AbortController();
  const both = signal ? AbortSignal.any([signal, own.signal]) : own.signal;
  if (range.end === range.start) return send(Buffer.alloc(0), both); // createReadStream cannot express an empty range
  const source = createReadStream(file, { start: range.start, end: range.end - 1, highWaterMark: READ_CHUNK });
  const body = exactLength(range.end - range.start, what, onBytes);
  pipe(source, body, (err) => {
    // Only the local side's own failures (a short read, a read error); a request that died closes the body too.
    if (err && (err instanceof LifeboatError || (err as NodeJS.ErrnoException).syscall)) own.abort(err);
  });
  try {
    return await send(body, both);
  } catch (err) {
    throw own.signal.aborted ? own.signal.reason : err;
  } finally {
    source.destroy();
  }
}


