// Messages between workflows, activities and clients. Small values only: names, paths, keys, checksums.
import type { Config, Plan, Storage } from '../config/schema';
import type { ArtifactResult } from '../sources/types';
import type { ArchiveFormat } from '../snapshot/naming';
import type { RecordSignature } from '../snapshot/signing';
import type { StoredCheckpoints } from '../snapshot/stored-checkpoints';

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
  /** Records neither counted nor deleted (forged, renamed or unsigned), as `<key>: <reason>`. */
  ignored?: string[];
  /** Retention could not run; the snapshot itself is fine. */
  error?: string;
  /** Orphans removed (retention/orphans.ts): archives and media reference lists without a record, by key, and
   * abandoned uploads as `<key> (unfinished upload)`. */
  orphans?: string[];
  /** Media objects no kept snapshot references any more, deleted; or why none were (any doubt keeps them all). */
  media?: { deleted: number } | { skipped: string };
}

/** The plan as loaded on the worker: references to secrets, never their values. */
export interface PlanContext {
  planName: string;
  plan: Plan;
  backupRoot: string;
  denyList: string[];
  ssh: Config['ssh'];
  storages: Record<string, Storage>;
  /** Secret references and public keys only. */
  signing?: Config['signing'];
}

export interface PreflightResult {
  estimatedBytes: number;
  requiredBytes: number;
  freeBytes: number;
  /** `estimatedBytes`: what preflight estimated for the source; null when an artifact's size cannot be told (command output). */
  sources: Array<{ name: string; host: string; appVersion: string | null; estimatedBytes?: number | null }>;
}

export interface ManifestSummary {
  files: number;
  bytes: number;
  /** SHA-256 of manifest.sha256 itself. */
  sha256: string;
  /** Files read and hashed by the finalize that wrote it (informational; not signed). */
  hashed_files?: number;
  /** Files whose hash came from the previous snapshot's, their identity unchanged (see snapshot/manifest-reuse.ts). */
  reused_files?: number;
}

export interface FinalizeResult {
  dir: string;
  manifest: ManifestSummary;
}

export interface ArchiveResult {
  path: string;
  format: ArchiveFormat;
  /** Of the stored bytes (ciphertext when encrypted). */
  sha256: string;
  size: number;
  encryption?: 'age';
}

export interface StorageResult {
  storage: string;
  type: Storage['type'];
  location: string;
  /** The object's own key: for S3 with the storage's prefix (the record keeps the storage-relative key). */
  key: string;
  /** S3 only. */
  bucket?: string;
  record_key: string;
  size_bytes: number;
  checksum_sha256: string;
  already_present: boolean;
  /** How the stored object was shown to equal the archive: the server's (composite) SHA-256, a read-back, a file hash. */
  verified_by?: 'server-composite-sha256' | 'server-sha256' | 'read-back-sha256' | 'file-sha256';
  /** Bytes this attempt sent; below size_bytes when an earlier attempt's parts were reused. */
  bytes_sent?: number;
  /** Media objects (archive storages): how many the snapshot references, how many this run sent, and their bytes. */
  media?: { objects: number; uploaded: number; bytes_sent: number };
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
  /** `age`: the stored object is `<plan>/<snapshot>.<format>.age`, readable only with the identity. */
  encryption?: 'age';
  /** Size and SHA-256 of the stored object; `manifest.sha256` is the plaintext manifest's. */
  size_bytes: number;
  checksum_sha256: string;
  manifest: ManifestSummary;
  artifacts: Array<Pick<ArtifactResult, 'source' | 'name' | 'type' | 'status' | 'bytes'> & { error?: string }>;
  hold?: SnapshotHold;
  /** Archive storages: the snapshot's media files, kept as shared objects beside the archive (storage/media-objects.ts). */
  media?: MediaSummary;
  /** Archive storages: prefix hashes of the stored object (snapshot/stored-checkpoints.ts), for selective restores. */
  checkpoints?: StoredCheckpoints;
  /** Ed25519 over the identifying fields (see snapshot/signing.ts); absent when signing is not configured. */
  signature?: RecordSignature;
}

export interface MediaSummary {
  files: number;
  bytes: number;
  /** Distinct objects the snapshot references (files with equal content share one). */
  objects: number;
  /** SHA-256 of the sorted object names joined by newlines: what `<plan>/<snapshot>.media-refs.json` must hold. */
  refs_sha256: string;
  /** Objects are age ciphertext for these recipients, named `<sha256>.<encrypted_to>.age` (see recipientsId). */
  encrypted_to?: string;
}

export interface BackupResult extends SnapshotRecord {
  retention?: RetentionReport[];
  snapshot_dir: string;
  /** First storage, for scripts that expect one (like the echoport runner's result line). */
  storage: string;
  /** S3 only: the bucket holding `key`. */
  bucket?: string;
  /** The archive object's own key in that storage (the S3 prefix included). */
  key: string;
  location: string;
  storages: StorageResult[];
  /** Deliveries of this run's `started` and final events; a failed one never changes the run's status. */
  notifications?: NotificationResult[];
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
  /** Accept an unsigned record (made before signing was configured); a wrong signature is refused regardless. */
  allowUnsigned?: boolean;
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
  /** `warnings`: what the target could not take (e.g. ACLs or xattrs on a filesystem without them). */
  restored: Array<{ artifact: string; target: string; bytes: number; warnings?: string[] }>;
  durationMs: number;
}

export interface VerifyInput {
  plan: string;
  storage?: string;
  /** Verify exactly these snapshots instead of latest + random older ones. */
  snapshots?: string[];
  /** As in RestoreInput. */
  allowUnsigned?: boolean;
}

export interface SnapshotVerification {
  snapshot: string;
  ok: boolean;
  /** Fetch + check + scratch restore, in milliseconds: the restore time objective actually achieved. */
  duration_ms: number;
  verified_at: string;
  checks: Array<{ artifact: string; check: string; ok: boolean; detail: string }>;
}

/** Events a notification target can subscribe to (config: NOTIFY_EVENTS). */
export type NotifyEventName = 'started' | 'succeeded' | 'partially_failed' | 'failed' | 'restart_failed' | 'verify_failed' | 'stale' | 'recovered';

/**
 * What happened to a run (or to a plan's freshness), as the workflow knows it: names and numbers only, never a
 * URL, token or file content. The reportEvent activity turns it into notifications and metrics.
 */
export interface RunEvent {
  event: NotifyEventName;
  plan: string;
  /** backup, restore drill, or the freshness watchdog. */
  kind: 'backup' | 'verify' | 'freshness';
  tier?: Tier;
  snapshot?: string;
  /** Completed, PartiallyFailed, Failed, Cancelled, TimedOut; `stale`/`fresh` for the watchdog. */
  status: string;
  /** Stored archive size (backups). */
  sizeBytes?: number;
  /** Bytes captured from the sources (backups). */
  bytesCaptured?: number;
  /** Optional artifacts that failed (a partially failed run). */
  artifactsFailed?: number;
  durationMs?: number;
  /** The step that failed (`app:appdb`, `preflight`, `verify:<snapshot>` …) and the failure's type. */
  failingStep?: string;
  errorType?: string;
  /** The failure's message; its last 10 KB at most. */
  error?: string;
  /** The run, for a link into the Web UI (temporal.uiUrl). */
  workflowId?: string;
  runId?: string;
  /** Watchdog: what is stale, e.g. "newest snapshot 27h old (maxAge 26h)". */
  reason?: string;
}

/** One target's delivery of one event. A failed delivery never changes the run's outcome. */
export interface NotificationResult {
  target: string;
  /** `report`: the report itself failed (config unreadable, activity failed), no target was tried. */
  type: 'webhook' | 'ntfy' | 'healthchecks' | 'email' | 'report';
  event: NotifyEventName;
  ok: boolean;
  /** Why it failed, without the URL or any token. */
  error?: string;
}
