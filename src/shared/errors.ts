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
  'PermissionDenied', // the backup host may not read or write a path (EACCES, EPERM, read-only file system)
  'TargetInUse', // a restore would write over a database or files in use (pass --force)
  'VerificationFailed', // the restore drill found a snapshot that does not restore to what was recorded
  'SignatureInvalid', // a snapshot record is unsigned or its Ed25519 signature does not verify
  'DecryptFailed', // an encrypted archive cannot be decrypted (no identity, or not one of its recipients)
] as const;

/**
 * Failures that end a run without being permanent errors of a step: retryable step errors that ran out of
 * attempts keep their own type (Stalled, CommandFailed, StorageError), the rest are the workflow's own.
 */
export const RUN_FAILURES = [
  'Stalled', // a step's progress did not move for its stall timeout; its processes were stopped (retried)
  'CommandFailed', // a remote or local command failed in a way that may pass (retried)
  'StorageError', // the storage answered with an error that may pass (retried)
  'StepTimedOut', // a step exceeded its start-to-close, schedule-to-close or heartbeat timeout
  'PlanTimeout', // the whole run exceeded the plan's `timeout`; it was stopped and cleaned up (status TimedOut)
  'PlanBusy', // another backup, restore or verify of the plan held it for longer than a run waits
  'ActivityFailed', // a step failed without a Lifeboat type (a bug: please report it)
] as const;

export type PermanentErrorCode = (typeof PERMANENT_ERRORS)[number];
export type RunFailureCode = (typeof RUN_FAILURES)[number];
/** What a LifeboatError may carry: the vocabulary above, and the CLI's own TemporalUnavailable. */
export type ErrorCode = PermanentErrorCode | RunFailureCode | 'TemporalUnavailable';

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

/** The first line of an error's message (or of what was thrown): for one-line reports of a failure. */
export function errorLine(err: unknown): string {
  return String((err as Error | undefined)?.message ?? err).split('\n')[0]!;
}
