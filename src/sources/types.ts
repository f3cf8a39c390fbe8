// The contract every artifact module answers, borgmatic-style: adding a kind is one module + one registry line.
import type { Artifact, Source, VerifySettings } from '../config/schema';
import type { Host } from '../remote/host';

export type ArtifactStatus = 'ok' | 'failed' | 'skipped';

export interface ArtifactResult {
  source: string;
  name: string;
  type: Artifact['type'];
  required: boolean;
  status: ArtifactStatus;
  /** Paths inside the snapshot directory that hold this artifact. */
  paths: string[];
  bytes: number;
  error?: string;
  errorType?: string;
  /** Small facts worth keeping in metadata.yml (rsync statistics, dump format, …). */
  details: Record<string, unknown>;
}

export interface CaptureContext<A extends Artifact = Artifact> {
  host: Host;
  source: Source;
  artifact: A;
  /** The snapshot's name (`<prefix>-<YYYYmmddTHHMMSS>`). */
  snapshot: string;
  /** The snapshot directory being written (still `<name>.partial`). */
  snapshotDir: string;
  /** Persistent per-artifact mirror on the backup host, kept between runs. */
  mirrorDir: string;
  denyList: readonly string[];
  signal: AbortSignal;
  progress(details: Record<string, unknown>): void;
  /** Allows up to `boundMs` of silence for a phase that reports no progress by nature (see activities/run.ts). */
  quiet<T>(phase: string, boundMs: number, fn: () => Promise<T>): Promise<T>;
}

export interface SourceModule<A extends Artifact = Artifact> {
  /** Programs that must exist on the source host. */
  requiredTools(artifact: A): string[];
  /** Paths that must exist on the source host. */
  requiredPaths(artifact: A): string[];
  /** Rough size in bytes of what capture will write, for the free-space check. */
  estimateBytes(host: Host, artifact: A, signal: AbortSignal): Promise<number>;
  capture(ctx: CaptureContext<A>): Promise<Captured>;
}

/** What a module reports; `status: 'skipped'` marks an artifact with nothing to capture (e.g. ephemeral Redis). */
export type Captured = Omit<ArtifactResult, 'source' | 'name' | 'type' | 'required' | 'status'> & { status?: 'skipped' };

/** An artifact as metadata.yml recorded it (what restore and verification compare against). */
export interface RecordedComponent {
  type: Artifact['type'];
  source: string;
  status: ArtifactStatus;
  required: boolean;
  /** Paths inside the snapshot directory. */
  paths: string[];
  bytes: number;
  details: Record<string, unknown>;
}

/** Where and how a restore writes. Everything not given means "back where it came from". */
export interface RestoreOptions {
  /** postgres/mysql: restore into this database (created; refused if it exists, unless `force`). */
  database?: string;
  /** files/sqlite/redis: write under this directory on the target host instead of the original paths. */
  dir?: string;
  /** files: only entries under this absolute source path. */
  pathPrefix?: string;
  /** Write over a non-empty target / an existing database. */
  force: boolean;
}

export interface RestoreContext<A extends Artifact = Artifact> {
  /** The host written to: the artifact's own source host, or another source's (`--to-host`). */
  host: Host;
  artifact: A;
  /** Extracted snapshot on the backup host, already checked against its archive checksum and manifest. */
  snapshotDir: string;
  component: RecordedComponent;
  options: RestoreOptions;
  signal: AbortSignal;
  progress(details: Record<string, unknown>): void;
}

/** One line of a restore plan: what goes where, and whether something there would be overwritten. */
export interface RestoreStep {
  artifact: string;
  type: Artifact['type'];
  /** e.g. `database mealie_restored on app (root@10.0.0.5:22)` or `app:/var/lib/lldap/users.db`. */
  target: string;
  /** The target exists and is not empty (a database with tables, a non-empty directory, a file). */
  targetInUse: boolean;
  action: string;
}

/** Scratch targets for the restore drill, on or reachable from the backup host. */
export interface VerifyContext<A extends Artifact = Artifact> {
  artifact: A;
  snapshotDir: string;
  component: RecordedComponent;
  /** A private scratch directory on the backup host, removed by the caller. */
  scratchDir: string;
  scratch: ScratchServers;
  signal: AbortSignal;
  progress(details: Record<string, unknown>): void;
}

export type ScratchServers = Pick<VerifySettings, 'postgres' | 'mysql'>;

export interface VerifyCheck {
  artifact: string;
  check: string;
  ok: boolean;
  detail: string;
}

/** Restore and verification verbs; an artifact type without them cannot be restored by Lifeboat (yet). */
export interface RestoreModule<A extends Artifact = Artifact> {
  planRestore(ctx: Omit<RestoreContext<A>, 'progress'>): Promise<RestoreStep>;
  restore(ctx: RestoreContext<A>): Promise<{ target: string; bytes: number; details: Record<string, unknown> }>;
  /** Restores into scratch targets and checks the result against `component`; cleans up its scratch objects. */
  verify(ctx: VerifyContext<A>): Promise<VerifyCheck[]>;
}
