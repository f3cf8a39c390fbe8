// Where archives go. Every backend answers the same small set of verbs.
export interface PutResult {
  /** Human/URL form: `s3://bucket/key` or an absolute path. */
  location: string;
  /** True when an identical object (same size and SHA-256) was already there: a resumed run. */
  alreadyPresent: boolean;
}

export interface ObjectInfo {
  key: string;
  size: number;
  sha256?: string;
  lastModified?: Date;
}

export interface StorageBackend {
  readonly name: string;
  /** Streams a local file to `key`, verifying size and SHA-256 once stored. */
  put(key: string, file: string, opts: { sha256: string; size: number; signal?: AbortSignal; onProgress?: (bytes: number) => void }): Promise<PutResult>;
  putJson(key: string, value: unknown): Promise<string>;
  /** Streams `key` into a local file. */
  get(key: string, file: string, opts?: { signal?: AbortSignal; onProgress?: (bytes: number) => void }): Promise<void>;
  getJson<T>(key: string): Promise<T | null>;
  list(prefix: string): Promise<ObjectInfo[]>;
  stat(key: string): Promise<ObjectInfo | null>;
  delete(key: string): Promise<void>;
  /** Preflight: credentials, reachability and write access, before any capture work is done. */
  check(): Promise<void>;
  location(key: string): string;
}
