// Messages between workflows, activities and clients. Small values only: names, paths, keys, checksums.
import type { Config, Plan, Storage } from '../config/schema';
import type { ArtifactResult } from '../sources/types';
import type { ArchiveFormat } from '../snapshot/naming';

export type Tier = 'daily' | 'weekly' | 'monthly' | 'pre-deploy' | 'manual';
export const TIERS: readonly Tier[] = ['daily', 'weekly', 'monthly', 'pre-deploy', 'manual'];

export interface BackupInput {
  plan: string;
  tier: Tier;
  deployId?: string;
  /** Pre-deploy: retention keeps the snapshot until this instant, or until the hold is released. */
  holdUntil?: string;
}

/** A hold on a snapshot (kept in its record): retention never deletes it while it holds. */
export interface SnapshotHold {
  deploy_id?: string;
  until: string;
  released_at?: string;
}

/** What retention did in one storage after a successful backup. */
export interface RetentionReport {
  storage: string;
  /** No `retention` configured for this storage: everything is kept. */
  configured: boolean;
  kept: number;
  deleted: string[];
  /** Retention could not run; the snapshot itself is fine. */
  error?: string;
}

/** The plan as loaded on the worker: references to secrets, never their values. */
export interface PlanContext {
  planName: string;
  plan: Plan;
  backupRoot: string;
  denyList: string[];
  ssh: Config['ssh'];
  storages: Record<string, Storage>;
}

export interface PreflightResult {
  estimatedBytes: number;
  requiredBytes: number;
  freeBytes: number;
  sources: Array<{ name: string; host: string; appVersion: string | null }>;
}

export interface ManifestSummary {
  files: number;
  bytes: number;
  /** SHA-256 of manifest.sha256 itself. */
  sha256: string;
}

export interface FinalizeResult {
  dir: string;
  manifest: ManifestSummary;
}

export interface ArchiveResult {
  path: string;
  format: ArchiveFormat;
  sha256: string;
  size: number;
}

export interface StorageResult {
  storage: string;
  type: Storage['type'];
  location: string;
  key: string;
  record_key: string;
  size_bytes: number;
  checksum_sha256: string;
  already_present: boolean;
}

export type RunStatus = 'Completed' | 'PartiallyFailed' | 'Failed';

/** Stored beside the archive as `<plan>/<snapshot>.json` and printed as `LIFEBOAT_RESULT:{json}`. */
export interface SnapshotRecord {
  success: boolean;
  status: RunStatus;
  snapshot: string;
  plan: string;
  tier: Tier;
  deploy_id?: string;
  created_at: string;
  completed_at?: string;
  format: ArchiveFormat;
  size_bytes: number;
  checksum_sha256: string;
  manifest: ManifestSummary;
  artifacts: Array<Pick<ArtifactResult, 'source' | 'name' | 'type' | 'status' | 'bytes'> & { error?: string }>;
  hold?: SnapshotHold;
}

export interface BackupResult extends SnapshotRecord {
  retention?: RetentionReport[];
  snapshot_dir: string;
  /** First storage, for scripts that expect one (like the echoport runner's result line). */
  storage: string;
  key: string;
  location: string;
  storages: StorageResult[];
}

/** What a quiesce controller stopped and started again around a source's copy (kept in metadata.yml). */
export interface QuiesceRecord {
  source: string;
  controller: 'compose' | 'systemd' | 'commands';
  /** Running before the copy, in start order: exactly these were stopped and started. */
  services: string[];
  stopped_at?: string;
  started_at?: string;
}

/** `lifeboat restore`: what to restore, from where, to where. Names only; the archive stays on the worker. */
export interface RestoreInput {
  plan: string;
  /** Snapshot name or `latest`. */
  snapshot: string;
  /** Storage to fetch from (default: the plan's first). */
  storage?: string;
  /** Only this source / artifact. */
  source?: string;
  artifact?: string;
  /** files: only entries under this absolute path. */
  pathPrefix?: string;
  /** Write to this source's host instead of each artifact's own. */
  toHost?: string;
  /** files/sqlite/redis: under this directory instead of the original paths. */
  dir?: string;
  /** postgres/mysql: into this database instead of the original. */
  database?: string;
  force: boolean;
  dryRun: boolean;
  /** Stop the target source's services around the restore (its backup quiesce controller). Default true. */
  quiesce?: boolean;
}

/** One artifact in a fetched snapshot (from metadata.yml). */
export interface FetchedArtifact {
  source: string;
  name: string;
  type: string;
  status: string;
}

export interface FetchedSnapshot {
  snapshot: string;
  storage: string;
  /** Private work directory on the backup host (removed at the end of the run). */
  workDir: string;
  /** The extracted, verified snapshot directory. */
  dir: string;
  archiveSha256: string;
  artifacts: FetchedArtifact[];
}

export interface RestoreResult {
  snapshot: string;
  storage: string;
  dryRun: boolean;
  /** `manual`: Lifeboat cannot restore this type (command output, OpenSearch); `action` says how to by hand. */
  steps: Array<{ artifact: string; type: string; target: string; targetInUse: boolean; action: string; host: string; manual?: boolean }>;
  restored: Array<{ artifact: string; target: string; bytes: number }>;
  durationMs: number;
}

export interface VerifyInput {
  plan: string;
  storage?: string;
  /** Verify exactly these snapshots instead of latest + random older ones. */
  snapshots?: string[];
}

export interface SnapshotVerification {
  snapshot: string;
  ok: boolean;
  /** Fetch + check + scratch restore, in milliseconds: the restore time objective actually achieved. */
  duration_ms: number;
  verified_at: string;
  checks: Array<{ artifact: string; check: string; ok: boolean; detail: string }>;
}
