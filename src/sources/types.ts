// The contract every artifact module answers, borgmatic-style: adding a kind is one module + one registry line.
import type { Artifact, Source } from '../config/schema';
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
