// lifeboat.yaml schema. Secrets are never values here, only references ({ env } or { file })
// resolved inside the activity that needs them, so they never reach workflow inputs or history.
import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';
import { DURATION_PATTERN } from '../shared/units';

const name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'use letters, digits, "_", "-" and "." (no slashes or spaces)');
const absPath = z.string().refine((p) => p.startsWith('/'), 'must be an absolute path');
const argv = z.array(z.string()).min(1, 'needs at least the program name');
const cron = z.string().superRefine((expr, ctx) => {
  const problem = /^\S+( \S+){4}$/.test(expr) ? cronProblem(expr) : 'a 5-field cron expression, e.g. "30 2 * * *"';
  if (problem) ctx.addIssue({ code: 'custom', message: `"${expr}": ${problem}` });
});
const timezone = z.string().superRefine((tz, ctx) => {
  if (!isTimeZone(tz)) ctx.addIssue({ code: 'custom', message: `unknown time zone "${tz}" (an IANA name such as UTC or Europe/Berlin)` });
});
const port = z.number().int().min(1, 'a port is 1–65535').max(65535, 'a port is 1–65535');
const duration = z.string().regex(DURATION_PATTERN, 'a duration like 30s, 10m, 6h or 2d');

/** Field ranges (minute 0–59, hour 0–23, month 1–12, day names) as the cron library reads them, or undefined. */
function cronProblem(expr: string): string | undefined {
  try {
    CronExpressionParser.parse(expr, { strict: false });
    return undefined;
  } catch (err) {
    return (err as Error).message.replace(/^Validation error, /, '');
  }
}

function isHostPort(address: string): boolean {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(address);
  return !!m && Number(m[2]) >= 1 && Number(m[2]) <= 65535;
}

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export const SecretRef = z.union(
  [z.object({ env: z.string().min(1) }).strict(), z.object({ file: absPath }).strict()],
  { error: 'a secret is a reference: { env: VAR_NAME } or { file: /absolute/path }, never the value itself' },
);
export type SecretRef = z.infer<typeof SecretRef>;

const artifactBase = {
  name,
  /** A required artifact that fails fails the run; an optional one is recorded as failed. */
  required: z.boolean().default(true),
  /**
   * Capture this artifact while the source is quiesced (its services stopped). Unset: files are copied
   * quiesced, dumps run live before the stop (they need the database up). Ignored without source.quiesce.
   */
  quiesce: z.boolean().optional(),
  /**
   * Fail the capture (retryably, as Stalled) when its progress has not moved for this long; its remote process
   * is stopped. Silent phases (SQLite VACUUM INTO, OpenSearch snapshots, Redis BGSAVE) have their own bounds.
   */
  stallTimeout: duration.default('10m'),
};

/** A command run inside a docker compose service: `<command> [-f file]… exec -T <service> <argv…>`. */
export const ComposeTarget = z
  .object({
    projectDir: absPath,
    files: z.array(z.string().min(1)).default([]),
    service: z.string().min(1),
    command: argv.default(['docker', 'compose']),
  })
  .strict();
export type ComposeTarget = z.infer<typeof ComposeTarget>;

const dbConnection = {
  /** Empty = local unix socket on the source host. */
  host: z.string().optional(),
  port: port.optional(),
  password: SecretRef.optional(),
  /** Run the client inside this compose service (connects over the container's own socket). */
  compose: ComposeTarget.optional(),
};
const noPasswordInCompose = {
  check: (a: { compose?: unknown; password?: unknown }) => !(a.compose && a.password),
  message: 'inside a compose service the client uses the container\'s local socket; drop password or compose',
};

export const PostgresArtifact = z
  .object({
    ...artifactBase,
    type: z.literal('postgres'),
    database: z.string().min(1),
    /** Database role (pg_dump -U). */
    user: z.string().default('postgres'),
    ...dbConnection,
    /** OS user to run pg_dump as (`sudo -n -u <runAs>`), for peer authentication; not combined with password. */
    runAs: z.string().optional(),
    format: z.enum(['plain', 'custom']).default('plain'),
    /** Also dump roles and tablespaces with `pg_dumpall --globals-only`. */
    globals: z.boolean().default(false),
    /** Link the last dump into the snapshot instead of dumping again when the cluster has not changed since (pg-unchanged.ts). */
    reuseUnchanged: z.boolean().default(true),
  })
  .strict()
  .refine((a) => !(a.runAs && a.password), { message: 'use either runAs (peer authentication) or password, not both', path: ['runAs'] })
  .refine((a) => !(a.runAs && a.compose), { message: 'runAs and compose cannot be combined', path: ['runAs'] })
  .refine(noPasswordInCompose.check, { message: noPasswordInCompose.message, path: ['password'] });

export const MysqlArtifact = z
  .object({
    ...artifactBase,
    type: z.literal('mysql'),
    database: z.string().min(1),
    user: z.string().default('root'),
    ...dbConnection,
  })
  .strict()
  .refine(noPasswordInCompose.check, { message: noPasswordInCompose.message, path: ['password'] });

export const SqliteArtifact = z
  .object({
    ...artifactBase,
    type: z.literal('sqlite'),
    path: absPath,
    /**
     * vacuum: `VACUUM INTO` (one read transaction: consistent and never restarted by writers).
     * backup: the `.backup` command (online backup API; restarts while other processes keep writing).
     */
    method: z.enum(['vacuum', 'backup']).default('vacuum'),
    /** How long to wait for a writer's lock (sqlite3 `.timeout`). */
    busyTimeoutSeconds: z.number().int().min(0).default(30),
    /** Link the last copy into the snapshot instead of copying again when the database's files have not changed (sqlite.ts). */
    reuseUnchanged: z.boolean().default(true),
  })
  .strict();

export const RedisArtifact = z
  .object({
    ...artifactBase,
    type: z.literal('redis'),
    host: z.string().default('127.0.0.1'),
    port: port.default(6379),
    password: SecretRef.optional(),
    /** How long BGSAVE may take before the capture fails. */
    saveTimeoutSeconds: z.number().int().positive().default(600),
  })
  .strict();

export const OpensearchArtifact = z
  .object({
    ...artifactBase,
    type: z.literal('opensearch'),
    /** The HTTP API as seen from the source host. */
    url: z.string().url().default('http://127.0.0.1:9200'),
    /** Snapshot repository name, registered (type fs) on first use. */
    repository: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'lowercase letters, digits, "_" and "-"').default('lifeboat'),
    /** The repository's directory on the source host; must be listed in OpenSearch's path.repo. */
    repositoryPath: absPath,
    indices: z.array(z.string().min(1)).default(['*']),
    username: z.string().optional(),
    password: SecretRef.optional(),
    /** Lifeboat's OpenSearch snapshots kept in the repository (older ones are deleted after a capture). */
    keepSnapshots: z.number().int().min(1).default(3),
  })
  .strict();

export const CommandArtifact = z
  .object({
    ...artifactBase,
    type: z.literal('command'),
    /** Its stdout is saved as `commands/<name>.txt`; a non-zero exit fails the artifact. */
    command: argv,
  })
  .strict();

export const FilesArtifact = z
  .object({
    ...artifactBase,
    type: z.literal('files'),
    /** Files and trees that must exist. */
    paths: z.array(absPath).default([]),
    /** Files and trees copied when present, skipped (and recorded) when not. */
    optionalPaths: z.array(absPath).default([]),
    exclude: z.array(z.string()).default([]),
    /**
     * Big files that rarely change (photos, podcasts, uploads): archive storages keep each file once, under its
     * SHA-256 in `.media/<plan>/`, instead of in every archive (snapshot/media-index.ts); restic storages dedupe anyway.
     */
    media: z.boolean().default(false),
  })
  .strict()
  .refine((a) => a.paths.length + a.optionalPaths.length > 0, { message: 'needs at least one entry in paths or optionalPaths', path: ['paths'] });

export const Artifact = z.discriminatedUnion('type', [
  PostgresArtifact,
  MysqlArtifact,
  SqliteArtifact,
  RedisArtifact,
  OpensearchArtifact,
  CommandArtifact,
  FilesArtifact,
]);
export type Artifact = z.infer<typeof Artifact>;
export type PostgresArtifact = z.infer<typeof PostgresArtifact>;
export type MysqlArtifact = z.infer<typeof MysqlArtifact>;
export type SqliteArtifact = z.infer<typeof SqliteArtifact>;
export type RedisArtifact = z.infer<typeof RedisArtifact>;
export type OpensearchArtifact = z.infer<typeof OpensearchArtifact>;
export type CommandArtifact = z.infer<typeof CommandArtifact>;
export type FilesArtifact = z.infer<typeof FilesArtifact>;

/** Stop → copy → restart around a source's quiesced artifacts. Only what was running is stopped and started. */
export const Quiesce = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('compose'),
      projectDir: absPath,
      files: z.array(z.string().min(1)).default([]),
      /** Stop only these services (default: every running one). */
      services: z.array(z.string().min(1)).optional(),
      /** Start order, dependencies first; services not listed start after, in `ps` order. */
      order: z.array(z.string().min(1)).default([]),
      command: argv.default(['docker', 'compose']),
    })
    .strict(),
  z
    .object({
      type: z.literal('systemd'),
      /** Units in start order (dependencies first); only the active ones are stopped and started. */
      units: z.array(z.string().min(1)).min(1),
      /** e.g. [sudo, -n, systemctl] for a non-root SSH user. */
      command: argv.default(['systemctl']),
    })
    .strict(),
  z
    .object({
      type: z.literal('commands'),
      stop: argv,
      start: argv,
      /** Exit 0 = running. Without it the service is always stopped and started. */
      check: argv.optional(),
    })
    .strict(),
]);
export type Quiesce = z.infer<typeof Quiesce>;

export const Source = z
  .object({
    name,
    /** `local` runs on the backup host itself; anything else is reached over SSH. */
    host: z.string().min(1),
    /** SSH port (default 22) and user (default root); not for `host: local`. */
    port: port.optional(),
    user: z.string().min(1).optional(),
    identityFile: absPath.optional(),
    knownHosts: absPath.optional(),
    /** Command whose output is recorded as the app version in metadata.yml. */
    appVersion: argv.optional(),
    /** rsync exclude patterns for every files artifact of this source (e.g. a media cache). */
    exclude: z.array(z.string()).default([]),
    quiesce: Quiesce.optional(),
    artifacts: z.array(Artifact).min(1),
  })
  .strict()
  .superRefine((src, ctx) => {
    if (src.host !== 'local') return;
    for (const key of ['port', 'user', 'identityFile', 'knownHosts'] as const) {
      if (src[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `host: local runs on the backup host without SSH; drop ${key}` });
    }
  });
export type Source = z.infer<typeof Source>;

/** GFS retention for a plan's snapshots in one storage; absent = keep everything. */
export const Retention = z
  .object({
    daily: z.number().int().min(0).default(0),
    weekly: z.number().int().min(0).default(0),
    monthly: z.number().int().min(0).default(0),
    yearly: z.number().int().min(0).default(0),
    /** The N newest, whatever their dates (a local copy for fast restores: `last: 2`). */
    last: z.number().int().min(0).default(0),
    /** Never fewer than this many snapshots. */
    minimum: z.number().int().min(1).default(1),
    /** Calendar periods are counted in this IANA time zone. */
    timezone: timezone.default('UTC'),
  })
  .strict();
export type Retention = z.infer<typeof Retention>;

export const S3Storage = z
  .object({
    type: z.literal('s3'),
    retention: Retention.optional(),
    endpoint: z.url({ protocol: /^https?$/, error: 'an http:// or https:// URL, e.g. http://127.0.0.1:9000' }).optional(),
    region: z.string().min(1).default('us-east-1'),
    bucket: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/, 'a bucket name (letters, digits, ".", "_", "-"; no "/" or spaces; put a path in prefix)'),
    /** Key prefix inside the bucket: plain path segments, no "..", no leading "/". */
    prefix: z
      .string()
      .refine((p) => !p.startsWith('/') && !p.split('/').some((seg) => seg === '..' || seg === '.'), 'plain path segments without "..", "." or a leading "/"')
      .default(''),
    forcePathStyle: z.boolean().default(true),
    accessKeyId: SecretRef,
    secretAccessKey: SecretRef,
    /** Multipart part size in MiB (≥ 5, S3's minimum; at most 10 000 parts). Parts stream from the file. */
    partSizeMiB: z.number().int().min(5).default(16),
    queueSize: z.number().int().min(1).max(16).default(4),
  })
  .strict();

export const LocalStorage = z
  .object({
    type: z.literal('local'),
    path: absPath,
    retention: Retention.optional(),
  })
  .strict();

/** Variables Lifeboat sets itself for restic: an `env` entry must not override them. */
const RESTIC_OWN_ENV = ['RESTIC_REPOSITORY', 'RESTIC_REPOSITORY_FILE', 'RESTIC_PASSWORD', 'RESTIC_PASSWORD_FILE', 'RESTIC_PASSWORD_COMMAND'];

/**
 * A restic repository (deduplicated, encrypted by restic): each snapshot directory becomes one restic snapshot,
 * its record a second, tiny one. The repository string is restic's own and travels in workflow history, so it
 * must not carry credentials: those go in `env` as secret references.
 */
export const ResticStorage = z
  .object({
    type: z.literal('restic'),
    /** A local absolute path, `s3:http://host:9000/bucket/prefix`, `sftp:user@host:/path`, `rest:…`, `b2:…` … */
    repository: z
      .string()
      .min(1)
      .refine((r) => r.startsWith('/') || /^[a-z0-9]+:\S/.test(r), 'an absolute path or a restic backend string such as s3:http://host:9000/bucket/prefix or sftp:user@host:/srv/restic')
      .refine((r) => !/:\/\/[^/@\s]*:[^/@\s]*@/.test(r), 'no user:password in the repository string (it is visible in workflow history); use env, e.g. RESTIC_REST_USERNAME / RESTIC_REST_PASSWORD')
      .refine((r) => !/[\0\n]/.test(r), 'one line, no NUL'),
    /** The repository password; given to restic in its environment only (RESTIC_PASSWORD), never on a command line. */
    password: SecretRef,
    /** Backend credentials as secret references, e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for s3:. */
    env: z
      .record(z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'an environment variable name (A-Z, 0-9, _)'), SecretRef)
      .refine((e) => !Object.keys(e).some((k) => RESTIC_OWN_ENV.includes(k)), `set by Lifeboat itself: ${RESTIC_OWN_ENV.join(', ')}`)
      .default({}),
    /** Create the repository (`restic init`) when preflight finds none; otherwise a missing repository is a ConfigError. */
    init: z.boolean().default(false),
    retention: Retention.optional(),
    /** The restore drill also runs `restic check --read-data-subset=<n>%` once per drill (0: structure only). */
    checkReadDataPercent: z.number().min(0).max(100).default(5),
    /**
     * Database files (`database/*` of a snapshot) up to this size go to the repository as a base kept on the backup
     * host and a `zstd --patch-from` patch against it, so a day's changed rows cost kilobytes, not a whole new dump
     * (storage/restic-deltas.ts). zstd needs about 3× the dump in memory while patching (2× to restore), so larger
     * dumps are stored whole. 0: store every dump whole.
     */
    deltaMaxMiB: z.number().int().min(0).max(2047).default(256), // zstd's --long window ends at 2 GiB
    /**
     * `sftp:` repositories: the key and the pinned known_hosts restic's ssh uses; unset fields come from the top-level
     * `ssh:`. A host whose key is not in knownHosts is refused (HostKeyRejected).
     */
    ssh: z.object({ identityFile: absPath.optional(), knownHosts: absPath.optional() }).strict().optional(),
  })
  .strict();

export const Storage = z.discriminatedUnion('type', [S3Storage, LocalStorage, ResticStorage]);
export type Storage = z.infer<typeof Storage>;
export type S3Storage = z.infer<typeof S3Storage>;
export type LocalStorage = z.infer<typeof LocalStorage>;
export type ResticStorage = z.infer<typeof ResticStorage>;

/** Scratch servers for the restore drill, reached from the backup host; scratch databases are created and dropped. */
export const VerifySettings = z
  .object({
    /**
     * The drill loads untrusted dumps as `user`: a role that owns only its scratch databases
     * (`CREATE ROLE lifeboat_drill LOGIN CREATEDB`); a superuser or a role with server program/file rights is refused.
     */
    postgres: z
      .object({ host: z.string().default('127.0.0.1'), port: port.default(5432), user: z.string().min(1).default('lifeboat_drill'), password: SecretRef.optional() })
      .strict()
      .optional(),
    mysql: z
      .object({ host: z.string().optional(), port: port.optional(), socket: absPath.optional(), user: z.string().default('root'), password: SecretRef.optional() })
      .strict()
      .optional(),
    /** Older snapshots restored besides the latest (chosen at random). */
    older: z.number().int().min(0).default(1),
  })
  .strict();
export type VerifySettings = z.infer<typeof VerifySettings>;


/** Temporal Schedules for a plan (`lifeboat schedules sync`). Each tier is its own schedule; overlaps are skipped. */
export const ScheduleSettings = z
  .object({
    timezone: timezone.default('UTC'),
    /** Random delay added to each run, so many plans do not start at once. */
    jitter: duration.default('0s'),
    /** Missed runs (server down) are still started if at most this late. */
    catchupWindow: duration.default('6h'),
    daily: cron.optional(),
    weekly: cron.optional(),
    monthly: cron.optional(),
    /** The restore drill (verifyRestore). */
    verify: cron.optional(),
  })
  .strict();
export type ScheduleSettings = z.infer<typeof ScheduleSettings>;

/** age recipients: X25519 (`age1…`) or an SSH Ed25519 public key line. */
const ageRecipient = z
  .string()
  .regex(/^(age1[02-9ac-hj-np-z]{58}|ssh-ed25519 AAAAC3NzaC1lZDI1NTE5[A-Za-z0-9+/]+={0,2}( [^\n]*)?)$/, 'an age recipient: age1… (age-keygen) or "ssh-ed25519 AAAA…"');

/** age encryption: the backup host needs only recipients (public keys); `identity` is for restore and verify. */
const Encryption = z
  .object({
    age: z
      .object({
        recipients: z.array(ageRecipient).min(1),
        /** The private key (age-keygen output, or an SSH Ed25519 private key without passphrase). */
        identity: SecretRef.optional(),
      })
      .strict(),
  })
  .strict();
export type Encryption = z.infer<typeof Encryption>;

export const Plan = z
  .object({
    /** Snapshot directory prefix: `<prefix>-<YYYYmmddTHHMMSS>`. Defaults to the plan name. */
    prefix: name.optional(),
    sources: z.array(Source).min(1),
    storages: z.array(name).min(1),
    archive: z
      .object({
        format: z.enum(['tar.zst', 'tar.gz']).default('tar.zst'),
        level: z.number().int().min(1).max(19).optional(),
        /** Encrypt every archive to these recipients, in the same pass as tar and compression. */
        encryption: Encryption.optional(),
      })
      .strict()
      .default({ format: 'tar.zst' }),
    /** Estimated size × overheadRatio must fit the free space under backupRoot. */
    overheadRatio: z.number().min(1).default(1.5),
    /** Finished snapshot directories (and their archives) kept on the backup host for fast restores. */
    keepLocal: z.number().int().min(1).default(2),
    /** The whole run's bound; past it, the run is cancelled (services restarted, `.partial` removed) as TimedOut. */
    timeout: duration.default('24h'),
    /** How much runs at once: sources and a source's live artifacts (backup), hosts and a host's independent artifacts (restore), preflight checks, restore planning. */
    parallelism: z.number().int().min(1).max(32).default(2),
    /**
     * Sources preflight sizes at most 64 MiB (SMALL_SOURCE_BYTES) are captured this many at once, beside the
     * `parallelism` lanes, which bound the bulk transfers; preflight checks this many sources at once.
     */
    smallSourceParallelism: z.number().int().min(1).max(32).default(8),
    /** Extra keys copied into metadata.yml. */
    metadata: z
      .record(z.string(), z.unknown())
      .refine((m) => JSON.stringify(m).length <= 16 * 1024, 'at most 16 KiB: it travels with every step of the run (use a file artifact for more)')
      .default({}),
    /** The restore drill's scratch targets (verifyRestore). */
    verify: VerifySettings.default({ older: 1 }),
    schedule: ScheduleSettings.optional(),
    /** Notification targets (names under top-level `notify`) for this plan; unset: every target; []: none. */
    notify: z.array(name).optional(),
    /** Freshness (RPO): the newest good snapshot in every storage must be younger than this, else `stale`. */
    maxAge: duration.optional(),
    /** The newest snapshot that passed a restore drill must be younger than this, else `stale`. */
    maxVerifiedAge: duration.optional(),
  })
  .strict();
export type Plan = z.infer<typeof Plan>;

/** What a notification target can be told about. */
export const NOTIFY_EVENTS = ['started', 'succeeded', 'partially_failed', 'failed', 'restart_failed', 'verify_failed', 'stale', 'recovered'] as const;
const NotifyEventName = z.enum(NOTIFY_EVENTS);
/** Unset: every event but `started` and `succeeded` (healthchecks: every backup event, the dead-man's switch). */
const events = z.array(NotifyEventName).min(1).optional();

/** Notification targets. URLs carry tokens, so they are secret references like passwords. */
export const NotifyTarget = z.discriminatedUnion('type', [
  /** POST of a JSON body (plan, tier, snapshot, status, size, duration, failing step, error type, link). */
  z.object({ type: z.literal('webhook'), url: SecretRef, headers: z.record(z.string(), SecretRef).default({}), events }).strict(),
  /** ntfy: `url` is the topic URL (https://ntfy.sh/<topic>); `token` an access token, if the topic needs one. */
  z.object({ type: z.literal('ntfy'), url: SecretRef, token: SecretRef.optional(), events }).strict(),
  /** Healthchecks-style pings: `<url>/start`, `<url>` on success, `<url>/fail` with the error's last 10 KB. */
  z.object({ type: z.literal('healthchecks'), url: SecretRef, events }).strict(),
  /** E-mail over SMTP; `tls: starttls` upgrades a plain connection (587), `tls` is implicit TLS (465). */
  z
    .object({
      type: z.literal('email'),
      host: z.string().min(1),
      port: port.default(587),
      tls: z.enum(['starttls', 'tls', 'none']).default('starttls'),
      user: z.string().min(1).optional(),
      password: SecretRef.optional(),
      from: z.string().min(3),
      to: z.array(z.string().min(3)).min(1),
      events,
    })
    .strict(),
]);
export type NotifyTarget = z.infer<typeof NotifyTarget>;

/** Temporal over TLS (a CA for a private server, a client certificate for mTLS); `tls: {}` uses the system's CAs. */
const TemporalTls = z
  .object({
    /** PEM CA bundle that signed the server's certificate (unset: the system's roots). */
    ca: absPath.optional(),
    /** PEM client certificate and its key (mTLS); the key is a secret reference. */
    cert: absPath.optional(),
    key: SecretRef.optional(),
    /** The name the server's certificate is checked against, when it differs from the address's host. */
    serverName: z.string().min(1).optional(),
  })
  .strict()
  .refine((t) => !t.cert === !t.key, 'cert and key come together (a client certificate and its private key)');

/** `ed25519:<base64url>`, as `lifeboat keys init` prints it. */
export const PUBLIC_KEY_PATTERN = /^ed25519:[A-Za-z0-9_-]{43}$/;

/** Ed25519 signing of snapshot records: the backup host holds `key`; a restore-only host needs only `publicKey`. */
const Signing = z
  .object({
    /** PKCS#8 PEM private key (`lifeboat keys init`); never leaves the worker. */
    key: SecretRef.optional(),
    publicKey: z.string().regex(PUBLIC_KEY_PATTERN, 'ed25519:<base64url>, as `lifeboat keys init` prints it').optional(),
  })
  .strict()
  .refine((s) => s.key || s.publicKey, 'needs key (on the backup host) or publicKey (enough to restore and verify), or both');
export type Signing = z.infer<typeof Signing>;

export const Config = z
  .object({
    version: z.literal(1).default(1),
    temporal: z
      .object({
        address: z
          .string()
          .refine(isHostPort, 'host:port, e.g. 127.0.0.1:7233 or temporal.example.com:7233')
          .default('127.0.0.1:7233'),
        namespace: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/, 'a Temporal namespace name: letters, digits, ".", "_", "-"').default('default'),
        taskQueue: z.string().min(1).max(1000).default('lifeboat'),
        tls: TemporalTls.optional(),
        /** Temporal Cloud (or any server that wants one): sent as a bearer token; implies TLS. */
        apiKey: SecretRef.optional(),
        /** The Web UI's base URL (e.g. http://127.0.0.1:8233): notifications link to the run there. */
        uiUrl: z.url({ protocol: /^https?$/, error: 'an http:// or https:// URL, e.g. http://127.0.0.1:8233' }).optional(),
      })
      .strict()
      .default({ address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'lifeboat' }),
    /** Where snapshot directories and per-source mirrors live on the backup host. */
    backupRoot: absPath,
    ssh: z
      .object({ identityFile: absPath.optional(), knownHosts: absPath.optional() })
      .strict()
      .default({}),
    /** Extra deny-list patterns, added to the built-in one (SOPS age key). */
    denyList: z.array(z.string()).default([]),
    storages: z.record(name, Storage),
    signing: Signing.optional(),
    /** Named notification targets; every plan uses all of them unless its own `notify` names a subset. */
    notify: z.record(name, NotifyTarget).default({}),
    /** The freshness watchdog (a Temporal Schedule made by `schedules sync` when a plan sets maxAge/maxVerifiedAge). */
    watchdog: z.object({ every: duration.default('10m') }).strict().default({ every: '10m' }),
    /** Prometheus metrics on the worker: `GET http://<listen>/metrics` (Temporal SDK metrics and Lifeboat's own). */
    metrics: z.object({ listen: z.string().refine(isHostPort, 'host:port, e.g. 127.0.0.1:9464') }).strict().optional(),
    plans: z.record(name, Plan),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    for (const [targetName, t] of Object.entries(cfg.notify)) {
      // A password over a plain connection is readable by anyone on the path; only loopback may do without TLS.
      if (t.type === 'email' && t.tls === 'none' && t.password && !/^(localhost|127\.\d+\.\d+\.\d+|::1)$/.test(t.host)) {
        ctx.addIssue({ code: 'custom', path: ['notify', targetName, 'tls'], message: 'tls: none would send the SMTP password in clear text; use starttls or tls (none is for a relay on loopback)' });
      }
    }
    for (const [planName, plan] of Object.entries(cfg.plans)) {
      plan.storages.forEach((s, i) => {
        if (!Object.hasOwn(cfg.storages, s)) {
          ctx.addIssue({
            code: 'custom',
            path: ['plans', planName, 'storages', i],
            message: `unknown storage "${s}" (defined: ${Object.keys(cfg.storages).join(', ') || 'none'})`,
          });
        }
      });
      uniqueNames(plan.sources.map((s) => s.name), ['plans', planName, 'sources'], ctx);
      plan.notify?.forEach((t, i) => {
        if (!Object.hasOwn(cfg.notify, t)) {
          ctx.addIssue({ code: 'custom', path: ['plans', planName, 'notify', i], message: `unknown notify target "${t}" (defined: ${Object.keys(cfg.notify).join(', ') || 'none'})` });
        }
      });
      // Artifact names are unique across the plan: they name files such as database/<name>.sql.
      const seen = new Set<string>();
      // OpenSearch snapshots are named after the Lifeboat snapshot: two artifacts of a run on one cluster and
      // repository (captured at once) would take, and delete, the same snapshot.
      const clusters = new Map<string, string>();
      plan.sources.forEach((src, i) => {
        src.artifacts.forEach((a, j) => {
          if (seen.has(a.name)) {
            ctx.addIssue({ code: 'custom', path: ['plans', planName, 'sources', i, 'artifacts', j, 'name'], message: `duplicate artifact name "${a.name}" in plan ${planName}` });
          }
          seen.add(a.name);
          if (a.type !== 'opensearch') return;
          const cluster = JSON.stringify([src.host, src.port ?? 22, a.url, a.repository]);
          const other = clusters.get(cluster);
          if (other) {
            ctx.addIssue({
              code: 'custom',
              path: ['plans', planName, 'sources', i, 'artifacts', j, 'repository'],
              message: `opensearch artifact "${a.name}" uses the same cluster (${a.url} on ${src.host}) and snapshot repository "${a.repository}" as "${other}": their snapshots would share one name; give one its own repository`,
            });
          }
          clusters.set(cluster, a.name);
        });
        if (src.host !== 'local' && !(src.identityFile ?? cfg.ssh.identityFile)) {
          ctx.addIssue({ code: 'custom', path: ['plans', planName, 'sources', i, 'identityFile'], message: 'an SSH source needs identityFile (here or under ssh:)' });
        }
        if (src.host !== 'local' && !(src.knownHosts ?? cfg.ssh.knownHosts)) {
          ctx.addIssue({ code: 'custom', path: ['plans', planName, 'sources', i, 'knownHosts'], message: 'an SSH source needs a pinned knownHosts file (here or under ssh:)' });
        }
      });
    }
    for (const [storageName, st] of Object.entries(cfg.storages)) {
      if (st.type === 'restic' && isSftp(st.repository) && !(st.ssh?.knownHosts ?? cfg.ssh.knownHosts)) {
        ctx.addIssue({ code: 'custom', path: ['storages', storageName, 'ssh', 'knownHosts'], message: 'an sftp: repository needs a pinned knownHosts file (here or under ssh:)' });
      }
    }
  })
  // sftp: repositories carry their whole ssh settings, so opening one needs nothing but its own entry.
  .transform((cfg) => ({
    ...cfg,
    storages: Object.fromEntries(
      Object.entries(cfg.storages).map(([n, st]) => [n, st.type === 'restic' && isSftp(st.repository) ? { ...st, ssh: { ...cfg.ssh, ...st.ssh } } : st]),
    ),
  }));
export type Config = z.infer<typeof Config>;

/** `sftp:user@host:/path` or `sftp://user@host:port//path`: restic starts ssh itself. */
export function isSftp(repository: string): boolean {
  return repository.startsWith('sftp:');
}

function uniqueNames(names: string[], path: (string | number)[], ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  names.forEach((n, i) => {
    if (seen.has(n)) ctx.addIssue({ code: 'custom', path: [...path, i, 'name'], message: `duplicate name "${n}"` });
    seen.add(n);
  });
}
