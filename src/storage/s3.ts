// S3-compatible storage (MinIO, AWS, B2, Hetzner…). Uploads stream as multipart with a SHA-256 per part that
// the server checks on receipt; the whole-file SHA-256 travels as metadata and is compared after upload.
import { createReadStream, createWriteStream } from 'node:fs';
import { rename } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { S3Storage } from '../config/schema';
import { resolveSecret } from '../config/secrets';
import { LifeboatError } from '../shared/errors';
import { meter } from '../shared/meter';
import type { ObjectInfo, PutResult, StorageBackend } from './types';

export async function openS3(name: string, cfg: S3Storage): Promise<S3Backend> {
  const [accessKeyId, secretAccessKey] = await Promise.all([
    resolveSecret(cfg.accessKeyId, `storage ${name} accessKeyId`),
    resolveSecret(cfg.secretAccessKey, `storage ${name} secretAccessKey`),
  ]);
  const client = new S3Client({
    endpoint: cfg.endpoint,
    region: cfg.region,
    forcePathStyle: cfg.forcePathStyle,
    credentials: { accessKeyId, secretAccessKey },
    maxAttempts: 3,
  });
  return new S3Backend(name, cfg, client);
}

export class S3Backend implements StorageBackend {
  constructor(
    readonly name: string,
    private readonly cfg: S3Storage,
    private readonly client: S3Client,
  ) {}

  private full(key: string): string {
    return `${this.cfg.prefix.replace(/\/+$/, '')}${this.cfg.prefix ? '/' : ''}${key}`;
  }

  location(key: string): string {
    return `s3://${this.cfg.bucket}/${this.full(key)}`;
  }

  async put(key: string, file: string, opts: { sha256: string; size: number; signal?: AbortSignal; onProgress?: (bytes: number) => void }): Promise<PutResult> {
    const existing = await this.stat(key);
    if (existing && existing.size === opts.size && existing.sha256 === opts.sha256) {
      return { location: this.location(key), alreadyPresent: true };
    }
    // A worker killed mid-upload leaves its multipart upload open (parts stored, billed, invisible): drop it.
    await this.abortStaleUploads(key);
    const upload = new Upload({
      client: this.client,
      partSize: this.cfg.partSizeMiB * 1024 * 1024,
      queueSize: this.cfg.queueSize,
      leavePartsOnError: false,
      params: {
        Bucket: this.cfg.bucket,
        Key: this.full(key),
        Body: createReadStream(file),
        ChecksumAlgorithm: 'SHA256',
        Metadata: { sha256: opts.sha256 },
      },
    });
    upload.on('httpUploadProgress', (p) => opts.onProgress?.(p.loaded ?? 0));
    const abort = () => void upload.abort();
    opts.signal?.addEventListener('abort', abort, { once: true });
    try {
      await this.guard(() => upload.done(), `upload ${key}`);
    } finally {
      opts.signal?.removeEventListener('abort', abort);
    }
    const stored = await this.stat(key);
    if (!stored || stored.size !== opts.size || stored.sha256 !== opts.sha256) {
      throw new LifeboatError('ChecksumMismatch', `${this.location(key)}: stored object does not match the local archive (size ${stored?.size} vs ${opts.size})`);
    }
    return { location: this.location(key), alreadyPresent: false };
  }

  async putJson(key: string, value: unknown): Promise<string> {
    await this.guard(
      () => this.client.send(new PutObjectCommand({ Bucket: this.cfg.bucket, Key: this.full(key), Body: JSON.stringify(value, null, 2), ContentType: 'application/json' })),
      `write ${key}`,
    );
    return this.location(key);
  }

  async get(key: string, file: string, opts: { signal?: AbortSignal; onProgress?: (bytes: number) => void } = {}): Promise<void> {
    const res = await this.guard(() => this.client.send(new GetObjectCommand({ Bucket: this.cfg.bucket, Key: this.full(key) }), { abortSignal: opts.signal }), `read ${key}`);
    await pipeline(res.Body as NodeJS.ReadableStream, meter({ onBytes: opts.onProgress }), createWriteStream(`${file}.partial`, { mode: 0o600 }), { signal: opts.signal });
    await rename(`${file}.partial`, file);
  }

  async getJson<T>(key: string): Promise<T | null> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.cfg.bucket, Key: this.full(key) }));
      return JSON.parse(await res.Body!.transformToString()) as T;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw this.wrap(err, `read ${key}`);
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      const res = await this.guard(
        () => this.client.send(new ListObjectsV2Command({ Bucket: this.cfg.bucket, Prefix: this.full(prefix), ContinuationToken: token })),
        `list ${prefix}`,
      );
      for (const o of res.Contents ?? []) {
        out.push({ key: o.Key!.slice(this.full('').length), size: o.Size ?? 0, lastModified: o.LastModified });
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.cfg.bucket, Key: this.full(key) }));
      return { key, size: res.ContentLength ?? 0, sha256: res.Metadata?.sha256, lastModified: res.LastModified };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw this.wrap(err, `stat ${key}`);
    }
  }

  private async abortStaleUploads(key: string): Promise<void> {
    const full = this.full(key);
    const open = await this.guard(() => this.client.send(new ListMultipartUploadsCommand({ Bucket: this.cfg.bucket, Prefix: full })), `list open uploads of ${key}`);
    for (const u of open.Uploads ?? []) {
      if (u.Key !== full || !u.UploadId) continue;
      await this.guard(() => this.client.send(new AbortMultipartUploadCommand({ Bucket: this.cfg.bucket, Key: full, UploadId: u.UploadId })), `abort an unfinished upload of ${key}`);
    }
  }

  /** Credentials, bucket and reachability, with one cheap listing (preflight). */
  async check(): Promise<void> {
    await this.guard(() => this.client.send(new ListObjectsV2Command({ Bucket: this.cfg.bucket, Prefix: this.full(''), MaxKeys: 1 })), 'list (preflight check)');
  }

  async delete(key: string): Promise<void> {
    await this.guard(() => this.client.send(new DeleteObjectCommand({ Bucket: this.cfg.bucket, Key: this.full(key) })), `delete ${key}`);
  }

  private async guard<T>(fn: () => Promise<T>, what: string): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.wrap(err, what);
    }
  }

  /** Credentials and a missing bucket will not fix themselves: those are permanent. */
  private wrap(err: unknown, what: string): Error {
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
