// lifeboat.yaml schema. Secrets are never values here, only references ({ env } or { file })
// resolved inside the activity that needs them, so they never reach workflow inputs or history.
import { z } from 'zod';

const name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'use letters, digits, "_", "-" and "." (no slashes or spaces)');
const absPath = z.string().refine((p) => p.startsWith('/'), 'must be an absolute path');
const argv = z.array(z.string()).min(1, 'needs at least the program name');

export const SecretRef = z.union(
  [z.object({ env: z.string().min(1) }).strict(), z.object({ file: absPath }).strict()],
  { error: 'a secret is a reference: { env: VAR_NAME } or { file: /absolute/path }, never the value itself' },
);
export type SecretRef = z.infer<typeof SecretRef>;

const artifactBase = {
  name,
  /** A required artifact that fails fails the run; an optional one is recorded as failed. */
  required: z.boolean().default(true),
};

export const PostgresArtifact = z
  .object({
    ...artifactBase,
    type: z.literal('postgres'),
    database: z.string().min(1),
    /** Database role (pg_dump -U). */
    user: z.string().default('postgres'),
    /** Empty = local unix socket on the source host. */
    host: z.string().optional(),
    port: z.number().int().positive().optional(),
    password: SecretRef.optional(),
    /** OS user to run pg_dump as (`sudo -n -u <runAs>`), for peer authentication; not combined with password. */
    runAs: z.string().optional(),
    format: z.enum(['plain', 'custom']).default('plain'),
  })
  .strict()
  .refine((a) => !(a.runAs && a.password), { message: 'use either runAs (peer authentication) or password, not both', path: ['runAs'] });

export const FilesArtifact = z
  .object({
    ...artifactBase,
    type: z.literal('files'),
    paths: z.array(absPath).min(1),
    exclude: z.array(z.string()).default([]),
  })
  .strict();

export const Artifact = z.discriminatedUnion('type', [PostgresArtifact, FilesArtifact]);
export type Artifact = z.infer<typeof Artifact>;
export type PostgresArtifact = z.infer<typeof PostgresArtifact>;
export type FilesArtifact = z.infer<typeof FilesArtifact>;

export const Source = z
  .object({
    name,
    /** `local` runs on the backup host itself; anything else is reached over SSH. */
    host: z.string().min(1),
    port: z.number().int().positive().default(22),
    user: z.string().default('root'),
    identityFile: absPath.optional(),
    knownHosts: absPath.optional(),
    /** Command whose output is recorded as the app version in metadata.yml. */
    appVersion: argv.optional(),
    artifacts: z.array(Artifact).min(1),
  })
  .strict();
export type Source = z.infer<typeof Source>;

export const S3Storage = z
  .object({
    type: z.literal('s3'),
    endpoint: z.string().url().optional(),
    region: z.string().default('us-east-1'),
    bucket: z.string().min(1),
    prefix: z.string().default(''),
    forcePathStyle: z.boolean().default(true),
    accessKeyId: SecretRef,
    secretAccessKey: SecretRef,
    /** Multipart part size in MiB; memory use is about partSize × queueSize. */
    partSizeMiB: z.number().int().min(5).default(16),
    queueSize: z.number().int().min(1).max(16).default(4),
  })
  .strict();

export const LocalStorage = z
  .object({
    type: z.literal('local'),
    path: absPath,
  })
  .strict();

export const Storage = z.discriminatedUnion('type', [S3Storage, LocalStorage]);
export type Storage = z.infer<typeof Storage>;
export type S3Storage = z.infer<typeof S3Storage>;
export type LocalStorage = z.infer<typeof LocalStorage>;

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
      })
      .strict()
      .default({ format: 'tar.zst' }),
    /** Estimated size × overheadRatio must fit the free space under backupRoot. */
    overheadRatio: z.number().min(1).default(1.5),
    /** How many sources are captured at once. */
    parallelism: z.number().int().min(1).max(32).default(2),
    /** Extra keys copied into metadata.yml. */
    metadata: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();
export type Plan = z.infer<typeof Plan>;

export const Config = z
  .object({
    version: z.literal(1).default(1),
    temporal: z
      .object({
        address: z.string().default('127.0.0.1:7233'),
        namespace: z.string().default('default'),
        taskQueue: z.string().default('lifeboat'),
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
    plans: z.record(name, Plan),
  })
  .strict()
  .superRefine((cfg, ctx) => {
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
      // Artifact names are unique across the plan: they name files such as database/<name>.sql.
      const seen = new Set<string>();
      plan.sources.forEach((src, i) => {
        src.artifacts.forEach((a, j) => {
          if (seen.has(a.name)) {
            ctx.addIssue({ code: 'custom', path: ['plans', planName, 'sources', i, 'artifacts', j, 'name'], message: `duplicate artifact name "${a.name}" in plan ${planName}` });
          }
          seen.add(a.name);
        });
        if (src.host !== 'local' && !(src.identityFile ?? cfg.ssh.identityFile)) {
          ctx.addIssue({ code: 'custom', path: ['plans', planName, 'sources', i, 'identityFile'], message: 'an SSH source needs identityFile (here or under ssh:)' });
        }
        if (src.host !== 'local' && !(src.knownHosts ?? cfg.ssh.knownHosts)) {
          ctx.addIssue({ code: 'custom', path: ['plans', planName, 'sources', i, 'knownHosts'], message: 'an SSH source needs a pinned knownHosts file (here or under ssh:)' });
        }
      });
    }
  });
export type Config = z.infer<typeof Config>;

function uniqueNames(names: string[], path: (string | number)[], ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  names.forEach((n, i) => {
    if (seen.has(n)) ctx.addIssue({ code: 'custom', path: [...path, i, 'name'], message: `duplicate name "${n}"` });
    seen.add(n);
  });
}
