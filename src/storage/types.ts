// Where archives go. Every backend answers the same small set of verbs. Keys passed in are relative to the
// storage (`<plan>/<snapshot>.tar.zst`): listing, records and retention all speak them; `objectKey` names the
// object they become (an S3 prefix included).
import type { Readable } from 'node:stream';
import type { Storage } from '../config/schema';
import { LifeboatError } from '../shared/errors';

/** How the stored bytes were shown to equal the local archive. */
export type Verification =
  /** The server's composite SHA-256 (over the parts' SHA-256s) equals the one computed from the local file's parts. */
  | 'server-composite-sha256'
  /** The server's full-object SHA-256 equals the archive's. */
  | 'server-sha256'
  /** The server keeps no SHA-256: the object was read back, streamed, and hashed. */
  | 'read-back-sha256'
  /** A local file, hashed as it was written (or read back in full for an existing one). */
  | 'file-sha256';

export interface PutResult {
  /** Human/URL form: `s3://bucket/key` or an absolute path. */
  location: string;
  /** The object's own key: for S3 with the storage's prefix; for a directory, relative to it. */
  key: string;
  /** S3 only. */
  bucket?: string;
  /** True when an identical object (same size and SHA-256) was already there: a resumed run. */
  alreadyPresent: boolean;
  verifiedBy: Verification;
  /** Bytes sent (S3: UploadPart/PutObject bodies) or written (directory) by this call; less than the size on a resume. */
  bytesSent: number;
}

/** Where a resumable upload stands; a Temporal activity puts it into its heartbeat details. */
export interface UploadState {
  uploadId: string;
  /** Parts the server holds for this upload, reused ones included. */
  partsDone: number;
  partSize: number;
}

export interface PutOptions {
  /** SHA-256 (hex) computed while archiving: what must end up stored. */
  sha256: string;
  size: number;
  signal?: AbortSignal;
  /** Bytes the storage holds so far (S3: acknowledged parts, reused ones included). */
  onProgress?: (bytes: number) => void;
  onState?: (state: UploadState) => void;
}

/** The local archive a stored object must equal. */
export interface LocalArchive {
  file: string;
  sha256: string;
  size: number;
}

export interface ObjectInfo {
  key: string;
  size: number;
  sha256?: string;
  lastModified?: Date;
}

/** An upload a crashed writer left unfinished (S3: an open multipart upload; local: a `.partial` file). */
export interface UnfinishedUpload {
  key: string;
  /** When it started (S3) or was last written (local). */
  since?: Date;
  /** S3's upload id. */
  uploadId?: string;
}

export interface StorageBackend {
  readonly name: string;
  /**
   * Streams a local file to `key`, resuming what an earlier attempt left (an open multipart upload, a `.partial`
   * file) when its bytes match, and returns only once the stored object is verified against the archive.
   */
  put(key: string, file: string, opts: PutOptions): Promise<PutResult>;
  /** Asks the storage what it holds for `key` and compares it with the local archive; ChecksumMismatch if it differs. */
  verifyStored(key: string, local: LocalArchive, opts?: { signal?: AbortSignal }): Promise<Verification>;
  putJson(key: string, value: unknown): Promise<string>;
  /** Streams `key` into a local file. */
  get(key: string, file: string, opts?: { signal?: AbortSignal; onProgress?: (bytes: number) => void }): Promise<void>;
  /** The object's bytes as a stream, for a consumer that checks them as they go by (restore: see snapshot/extract.ts). */
  read(key: string, opts?: { signal?: AbortSignal }): Promise<Readable>;
  getJson<T>(key: string): Promise<T | null>;
  list(prefix: string): Promise<ObjectInfo[]>;
  stat(key: string): Promise<ObjectInfo | null>;
  delete(key: string): Promise<void>;
  /** Unfinished uploads under `prefix` (storages that can have them): what a later `put` of the same key resumes. */
  unfinishedUploads?(prefix: string): Promise<UnfinishedUpload[]>;
  /** Drops one: its bytes are stored (and billed) but never listed. */
  dropUnfinished?(upload: UnfinishedUpload): Promise<void>;
  /** Preflight: credentials, reachability and write access, before any capture work is done. */
  check(): Promise<void>;
  location(key: string): string;
  /** The object's own key for a relative `key` (S3: the prefix included). */
  objectKey(key: string): string;
}

/** Records are a few KiB (a plan with many artifacts: tens); a bigger object under a record's name is not read. */
export const MAX_RECORD_BYTES = 1024 * 1024;

/** A stored JSON object is untrusted data: one that does not parse is IntegrityCheckFailed, not a storage outage. */
export function parseJson<T>(text: string, where: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new LifeboatError('IntegrityCheckFailed', `${where} is not valid JSON`);
  }
}

/** A storage as a task process (shared/apart.ts) opens it: its name and config, secrets as references only. */
export interface StorageRef {
  name: string;
  config: Storage;
}
