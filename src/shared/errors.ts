// Lifeboat's error vocabulary. Domain modules throw LifeboatError; the activity layer turns permanent ones
// into non-retryable Temporal failures whose `type` is the code, so the Web UI names the cause.

export const PERMANENT_ERRORS = [
  'ConfigError', // lifeboat.yaml is invalid or names something that does not exist
  'HostKeyRejected', // the source host's SSH key is not pinned in known_hosts (or is revoked)
  'AuthFailed', // SSH or database authentication was refused
  'MissingPath', // a configured path does not exist on the source host
  'MissingTool', // a program Lifeboat needs is not installed where it runs
  'InsufficientSpace', // the estimated snapshot does not fit the backup root
  'DenyListViolation', // a deny-listed secret file reached the snapshot
  'SecretUnavailable', // a referenced secret (env var or file) cannot be read
  'ChecksumMismatch', // data read back does not match its recorded SHA-256
  'SnapshotExists', // another run already owns this snapshot name
  'IntegrityCheckFailed', // a captured copy fails its own check (PRAGMA integrity_check, redis-check-rdb, …)
  'RestartFailed', // services stopped for a copy could not be started again
] as const;

export type PermanentErrorCode = (typeof PERMANENT_ERRORS)[number];
export type ErrorCode = PermanentErrorCode | 'CommandFailed' | 'StorageError' | 'PlanBusy';

export class LifeboatError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = code;
  }

  get permanent(): boolean {
    return (PERMANENT_ERRORS as readonly string[]).includes(this.code);
  }
}
