// Signed checkpoints of an archive's plaintext tar stream: the SHA-256 of its first k·`every` bytes for each k, taken
// while the archive is written. The record carries them (signed), so a selective restore that stops reading early
// can still prove that every byte it handed to GNU tar is the backup's own: it reads on to the next checkpoint past
// its cut and compares. Without them only the whole stored object's hash vouches for the bytes (a full read).
import { createHash, type Hash } from 'node:crypto';
import { LifeboatError } from '../shared/errors';

export interface TarCheckpoints {
  /** Bytes of the plaintext tar stream (what the decompressor gives back), and their SHA-256. */
  size: number;
  sha256: string;
  /** Distance between checkpoints: a power of two, at least MIN_EVERY. */
  every: number;
  /** `at[i]`: SHA-256 of the stream's first (i + 1)·every bytes. */
  at: string[];
}

export const MIN_EVERY = 1024 * 1024;
/** The record stays small (at most ~8 KiB of hashes): a bigger archive gets wider checkpoints, not more (8 MiB at 1 GiB). */
export const MAX_CHECKPOINTS = 128;
const HEX64 = /^[0-9a-f]{64}$/;

/** A running SHA-256 that notes its value at every multiple of `every` bytes. */
class PrefixHash {
  private readonly hash: Hash = createHash('sha256');
  size = 0;

  constructor(readonly every: number, private readonly onCheckpoint: (index: number, sha256: string) => void) {}

  update(chunk: Buffer): void {
    for (let off = 0; off < chunk.length; ) {
      const n = Math.min(this.every - (this.size % this.every), chunk.length - off);
      this.hash.update(chunk.subarray(off, off + n));
      this.size += n;
      off += n;
      if (this.size % this.every === 0) this.onCheckpoint(this.size / this.every - 1, this.hash.copy().digest('hex'));
    }
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

/** Archive side: fed the plaintext tar stream as it goes to the compressor. */
export class CheckpointWriter {
  private readonly at: string[] = [];
  private readonly prefix = new PrefixHash(MIN_EVERY, (_i, sha) => this.at.push(sha));

  update(chunk: Buffer): void {
    this.prefix.update(chunk);
  }

  finish(): TarCheckpoints {
    let at = this.at;
    let every = MIN_EVERY;
    // Checkpoints at 2·every are every second one at `every`: widening keeps exactly those.
    while (at.length > MAX_CHECKPOINTS) {
      at = at.filter((_sha, i) => i % 2 === 1);
      every *= 2;
    }
    return { size: this.prefix.size, sha256: this.prefix.digest(), every, at };
  }
}

/** Why a record's `tar` field cannot be used (then a selective restore reads the whole archive). */
export function checkpointsProblem(cp: unknown): string | undefined {
  const c = cp as Partial<TarCheckpoints> | null;
  if (!c || typeof c !== 'object') return 'is not an object';
  if (!Number.isSafeInteger(c.size) || c.size! < 0 || !HEX64.test(String(c.sha256))) return 'has no valid size and sha256';
  const every = c.every!;
  if (!Number.isSafeInteger(every) || every < MIN_EVERY || !Number.isInteger(Math.log2(every))) return 'has no valid distance';
  if (!Array.isArray(c.at) || c.at.length !== Math.floor(c.size! / every) || c.at.length > MAX_CHECKPOINTS || !c.at.every((h) => typeof h === 'string' && HEX64.test(h))) return 'has no valid checkpoint list';
  return undefined;
}

/** What the signature covers of the list: its SHA-256 (see signing.ts). */
export function checkpointsDigest(cp: TarCheckpoints): string {
  return createHash('sha256').update(cp.at.join('\n')).digest('hex');
}

/**
 * Restore side: fed the plaintext as it is read; each checkpoint is compared as it goes by, and the whole stream's
 * hash at its recorded end. A difference is ChecksumMismatch, thrown from update().
 */
export class CheckpointVerifier {
  private readonly prefix: PrefixHash;

  constructor(private readonly cp: TarCheckpoints, private readonly label: string) {
    this.prefix = new PrefixHash(cp.every, (i, sha) => {
      if (i < cp.at.length && sha !== cp.at[i]) this.mismatch(`its first ${(i + 1) * cp.every} plaintext bytes have SHA-256 ${sha}`, cp.at[i]!);
    });
  }

  /** Bytes checked so far. */
  get size(): number {
    return this.prefix.size;
  }

  /** The whole stream's recorded size. */
  get expectedSize(): number {
    return this.cp.size;
  }

  update(chunk: Buffer): void {
    if (this.prefix.size + chunk.length > this.cp.size) this.mismatch(`its plaintext runs past the recorded ${this.cp.size} bytes`, this.cp.sha256);
    this.prefix.update(chunk);
    if (this.prefix.size === this.cp.size) {
      const sha = this.prefix.digest();
      if (sha !== this.cp.sha256) this.mismatch(`its plaintext has SHA-256 ${sha}`, this.cp.sha256);
    }
  }

  /** How far the stream must be read so that its first `offset` bytes are proven: the next checkpoint, or the end. */
  until(offset: number): number {
    if (offset <= 0) return 0;
    return Math.min(Math.ceil(offset / this.cp.every) * this.cp.every, this.cp.size);
  }

  private mismatch(what: string, expected: string): never {
    throw new LifeboatError('ChecksumMismatch', `archive ${this.label}: ${what}, but the signed record says ${expected}`, { archive: this.label, expected });
  }
}
