// Byte ranges, SHA-256s and the resume decision for multipart uploads, free of any S3 client so they are
// tested directly. Files are always streamed: a part or an archive is never held in memory whole.
import { createHash, type Hash } from 'node:crypto';
import { Transform } from 'node:stream';
import { LifeboatError } from '../shared/errors';
import { readChunks } from '../shared/files';

export interface PartRange {
  partNumber: number;
  /** First byte. */
  start: number;
  /** One past the last byte. */
  end: number;
}

/** Parts 1…N of `partSize` bytes, the last one shorter; at least one part (an empty file is one empty part). */
export function planParts(size: number, partSize: number): PartRange[] {
  const count = Math.max(1, Math.ceil(size / partSize));
  return Array.from({ length: count }, (_, i) => ({ partNumber: i + 1, start: i * partSize, end: Math.min(size, (i + 1) * partSize) }));
}

export interface FileDigests {
  size: number;
  /** Hex SHA-256 of the whole file. */
  sha256: string;
  partSize: number;
  /** Raw SHA-256 of each part, in part order. */
  parts: Buffer[];
}

/** The whole file's SHA-256 and each part's, in one sequential pass through one reused buffer. */
export async function hashFile(file: string, partSize: number, signal?: AbortSignal): Promise<FileDigests> {
  const whole = createHash('sha256');
  const parts: Buffer[] = [];
  let part = createHash('sha256');
  let inPart = 0;
  const size = await readChunks(file, (chunk) => {
    whole.update(chunk);
    // A chunk may straddle part boundaries: split it there.
    for (let at = 0; at < chunk.length; ) {
      const take = Math.min(chunk.length - at, partSize - inPart);
      part.update(chunk.subarray(at, at + take));
      at += take;
      inPart += take;
      if (inPart === partSize) {
        parts.push(part.digest());
        part = createHash('sha256');
        inPart = 0;
      }
    }
  }, signal ? { signal } : {});
  if (inPart > 0 || parts.length === 0) parts.push(part.digest());
  return { size, sha256: whole.digest('hex'), partSize, parts };
}

/** Feeds bytes [0, length) of `file` into `hash`. */
export async function hashPrefix(file: string, length: number, hash: Hash, signal?: AbortSignal): Promise<void> {
  await readChunks(file, (chunk) => hash.update(chunk), { end: length, ...(signal ? { signal } : {}) });
}

/** S3's checksum of a multipart upload: SHA-256 over the concatenated binary part digests, base64, `-N`. */
export function compositeSha256(parts: Buffer[]): string {
  return `${createHash('sha256').update(Buffer.concat(parts)).digest('base64')}-${parts.length}`;
}

export function hexToBase64(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64');
}

/**
 * A pass-through that counts (and optionally hashes) bytes and fails unless exactly `expected` came through: an
 * archive that shrank under an upload must fail it, not leave the request waiting for bytes its Content-Length
 * promised.
 */
export function exactLength(expected: number, what: string, onBytes?: (bytes: number) => void, hash?: Hash): Transform & { bytes: number } {
  const t = new Transform({
    transform(chunk: Buffer, _enc, done) {
      t.bytes += chunk.length;
      hash?.update(chunk);
      onBytes?.(chunk.length);
      done(null, chunk);
    },
    flush(done) {
      done(t.bytes === expected ? null : new LifeboatError('ChecksumMismatch', `${what}: read ${t.bytes} bytes of the local file where ${expected} were expected: it changed after it was archived`));
    },
  }) as Transform & { bytes: number };
  t.bytes = 0;
  return t;
}

/** What ListParts says the server holds for one part. */
export interface ListedPart {
  PartNumber?: number;
  Size?: number;
  ETag?: string;
  ChecksumSHA256?: string;
}

export interface CompletedPart {
  PartNumber: number;
  ETag: string;
  ChecksumSHA256: string;
}

export type Reuse = { ok: true; parts: CompletedPart[] } | { ok: false; reason: string };

/**
 * Whether an open upload can be finished from this local file: every part it holds must be one of ours, of the
 * size our plan gives that part number, with the SHA-256 of the same byte range. One that is not (another part
 * size, other content) is not patched part by part: the upload was made for other bytes, so it is dropped.
 */
export function reusableParts(listed: ListedPart[], plan: PartRange[], digests: FileDigests): Reuse {
  const parts: CompletedPart[] = [];
  for (const p of listed) {
    const n = p.PartNumber ?? 0;
    const range = plan[n - 1];
    if (!range) return { ok: false, reason: `it holds part ${n}, beyond the ${plan.length} parts of this file` };
    const want = range.end - range.start;
    if (p.Size !== want) return { ok: false, reason: `part ${n} has ${p.Size} bytes, this file's part ${n} has ${want} (another part size)` };
    const sha = digests.parts[n - 1]!.toString('base64');
    if (p.ChecksumSHA256 !== sha) return { ok: false, reason: `part ${n} has SHA-256 ${p.ChecksumSHA256 ?? '(none)'}, the same bytes of this file have ${sha}` };
    if (!p.ETag) return { ok: false, reason: `part ${n} has no ETag` };
    parts.push({ PartNumber: n, ETag: p.ETag, ChecksumSHA256: sha });
  }
  return { ok: true, parts: parts.sort((a, b) => a.PartNumber - b.PartNumber) };
}

/** Errors after which Lifeboat will not try this object again: nothing half-done should be kept for a retry. */
const FINAL_ERRNO = ['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS'];

/**
 * True when a failed put will not be retried, so its partial state (open multipart upload, `.partial`) must go:
 * a permanent error, a full disk or a permission error, or a cancellation. A stall also aborts the signal, but
 * with a retryable reason: then the next attempt resumes, so the state stays.
 */
export function isFinalFailure(err: unknown, signal?: AbortSignal): boolean {
  if (signal?.aborted) {
    const reason: unknown = signal.reason;
    return !(reason instanceof LifeboatError && !reason.permanent);
  }
  if (err instanceof LifeboatError) return err.permanent;
  return FINAL_ERRNO.includes((err as NodeJS.ErrnoException | undefined)?.code ?? '');
}
