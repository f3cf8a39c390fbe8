// Signed checkpoints of a stored archive: the SHA-256 of its first k·`every` bytes for each k, noted by the same
// pass (in a worker thread) that hashes the archive once it is written. The record carries them (signed), so a
// selective restore that stops reading early can still prove that every byte it used is the backup's own: what GNU
// tar was given came from stored bytes already read, and reading goes on to the next checkpoint past those. The
// decompressor and age are deterministic, so the same stored bytes always give the same plaintext. Without
// checkpoints only the whole object's hash vouches for the bytes, and the archive is read to its end.
import { createHash, type Hash } from 'node:crypto';
import { LifeboatError } from '../shared/errors';
import { isHex64 } from '../shared/hex';

export interface StoredCheckpoints {
  /** Distance between checkpoints: a power of two, at least MIN_EVERY. */
  every: number;
  /** `at[i]`: SHA-256 of the stored object's first (i + 1)·every bytes. */
  at: string[];
}

export const MIN_EVERY = 1024 * 1024;
/** The record stays small (at most ~8 KiB of hashes): a bigger archive gets wider checkpoints, not more (8 MiB at 1 GiB). */
export const MAX_CHECKPOINTS = 128;

/** The distance for an object of `size` bytes: the smallest that keeps the list within MAX_CHECKPOINTS. */
export function checkpointDistance(size: number): number {
  let every = MIN_EVERY;
  while (Math.floor(size / every) > MAX_CHECKPOINTS) every *= 2;
  return every;
}

/** Why a record's checkpoints cannot describe an object of `size` bytes (then the record is refused). */
export function checkpointsProblem(cp: unknown, size: number): string | undefined {
  const c = cp as Partial<StoredCheckpoints> | null;
  if (!c || typeof c !== 'object') return 'is not an object';
  const every = c.every!;
  if (!Number.isSafeInteger(every) || every < MIN_EVERY || !Number.isInteger(Math.log2(every))) return 'has no valid distance';
  if (!Array.isArray(c.at) || c.at.length !== Math.floor(size / every) || c.at.length > MAX_CHECKPOINTS || !c.at.every(isHex64)) return 'has no valid list';
  return undefined;
}

/** What the signature covers of the list: its SHA-256 (see signing.ts). */
export function checkpointsDigest(cp: StoredCheckpoints): string {
  return createHash('sha256').update(cp.at.join('\n')).digest('hex');
}

/**
 * Restore side: fed the stored bytes as they are read; each checkpoint is compared as it goes by, and at the
 * object's end its whole SHA-256. A difference is ChecksumMismatch, thrown from update().
 */
export class CheckpointVerifier {
  private readonly hash: Hash = createHash('sha256');
  private done = 0;
  private whole: string | undefined;

  constructor(private readonly cp: StoredCheckpoints, private readonly stored: { size: number; sha256: string }, private readonly label: string) {}

  /** Stored bytes checked so far. */
  get size(): number {
    return this.done;
  }

  /** SHA-256 of the bytes checked so far (the whole object's once it was read to its end). */
  get sha256(): string {
    return this.whole ?? this.hash.copy().digest('hex');
  }

  update(chunk: Buffer): void {
    const { every, at } = this.cp;
    if (this.done + chunk.length > this.stored.size) this.mismatch(`it runs past the recorded ${this.stored.size} bytes`, this.stored.sha256);
    for (let off = 0; off < chunk.length; ) {
      const n = Math.min(every - (this.done % every), chunk.length - off);
      this.hash.update(chunk.subarray(off, off + n));
      this.done += n;
      off += n;
      const i = this.done / every - 1;
      if (this.done % every === 0 && i < at.length) {
        const sha = this.hash.copy().digest('hex');
        if (sha !== at[i]) this.mismatch(`its first ${this.done} bytes have SHA-256 ${sha}`, at[i]!);
      }
    }
    if (chunk.length > 0 && this.done === this.stored.size) {
      this.whole = this.hash.digest('hex');
      if (this.whole !== this.stored.sha256) this.mismatch(`it has SHA-256 ${this.whole}`, this.stored.sha256);
    }
  }

  /** How far the object must be read so that its first `offset` bytes are proven: the next checkpoint, or its end. */
  until(offset: number): number {
    if (offset <= 0) return 0;
    return Math.min(Math.ceil(offset / this.cp.every) * this.cp.every, this.stored.size);
  }

  private mismatch(what: string, expected: string): never {
    throw new LifeboatError('ChecksumMismatch', `archive ${this.label}: ${what}, but the signed record says ${expected}`, { archive: this.label, expected });
  }
}
