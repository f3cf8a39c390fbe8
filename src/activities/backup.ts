// Backup activities: thin adapters from Temporal to the modules under sources/, snapshot/, storage/, remote/.
import { chmod, mkdir, readdir, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { execa } from 'execa';
import pLimit from 'p-limit';
import { getPlan, loadConfig } from '../config/load';
import { findArtifact } from '../config/lookup';
import type { Artifact, Source } from '../config/schema';
import { HostPool, connectHost, type Host } from '../remote/host';
import { coalescing } from '../remote/batch';
import { LifeboatError } from '../shared/errors';
import { exists } from '../shared/files';
import { formatBytes, parseDurationMs } from '../shared/units';
import type {
  ArchiveResult,
  FinalizeResult,
  PlanContext,
  PreflightResult,
  QuiesceRecord,
  SnapshotRecord,
  StorageResult,
  Tier,
} from '../shared/types';
import { createArchive } from '../snapshot/archive';
import { checkpointsProblem, type StoredCheckpoints } from '../snapshot/stored-checkpoints';
import { encryptArgv } from '../snapshot/encryption';
import { BUILTIN_DENY } from '../snapshot/deny-list';
import { localSnapshotsToPrune, mirrorDir, resticDeltaDir, resticDeltaRoot, snapshotPaths } from '../snapshot/layout';
import { ENCRYPTED_SUFFIX, archiveKey, recordKey } from '../snapshot/naming';
import { loadSigningKey, signRecord } from '../snapshot/signing';
import { hashFile } from '../snapshot/manifest';
import { buildMetadata, writeMetadata } from '../snapshot/metadata';
import { runPreflightChecks, type PreflightChecks, type PreflightFindings } from '../sources/pull-tree';
import { sourceModule } from '../sources/registry';
import type { ArtifactResult } from '../sources/types';
import { isRestic, openStorage } from '../storage';
import { deltaMaxBytes, dropUnusedDeltaDirs } from '../storage/restic-deltas';
import { uploadToRestic } from '../storage/restic-upload';
import { putApart } from '../storage/upload-apart';
import { previousArtifactBytes } from '../snapshot/previous';
import { finalizeApart } from '../snapshot/finalize-apart';
import { mediaDirs, readMediaIndex, tarExcludeLines } from '../snapshot/media-index';
import { artifactProgress, phase } from './progress-adapters';
import { DEFAULT_STALL_MS, asLifeboatError, runActivity } from './run';

/** du over a large tree reports nothing until it ends. */
const PREFLIGHT_STALL_MS = 30 * 60_000;

export interface BackupActivityDeps {
  configPath: string;
}

export function createBackupActivities({ configPath }: BackupActivityDeps) {
  return {
    /** Reads lifeboat.yaml on the worker. The result holds secret references only, never values. */
    async loadPlan(planName: string): Promise<PlanContext> {
      return runActivity(async () => {
        const config = await loadConfig(configPath);
        const plan = getPlan(config, planName);
        const storages = Object.fromEntries(plan.storages.map((s) => [s, config.storages[s]!]));
        return { planName, plan, backupRoot: config.backupRoot, denyList: [...BUILTIN_DENY, ...config.denyList], ssh: config.ssh, storages, ...(config.signing ? { signing: config.signing } : {}) };
      });
    },

    /**
     * Paths, tools, host keys and free space, before anything is written. Problems here are permanent. Each source
     * costs one SSH connection and one remote script; sources are checked in parallel (plan.parallelism), and the
     * backup host's own checks (storages, recipients, signing key) run meanwhile.
     */
    async preflight(ctx: PlanContext): Promise<PreflightResult> {
      return runActivity(async ({ signal, progress }) => {
        const hosts = new HostPool(ctx, signal);
        // Checks are small work per source (a handshake and a script): they take the small sources' bound.
        const limit = pLimit(Math.max(ctx.plan.parallelism, ctx.plan.smallSourceParallelism ?? 0));
        const localChecks: Array<() => Promise<unknown>> = [...ctx.plan.storages.map((name) => () => checkStorage(ctx, name)), () => checkRecipients(ctx), () => loadSigningKey(ctx.signing)];
        const [sources, local] = await Promise.all([
          Promise.all(
            ctx.plan.sources.map((source) =>
              limit(() => {
                progress({ checking: source.name });
                return gatherPermanent(() => checkSource(source, hosts, signal));
              }),
            ),
          ),
          Promise.all(localChecks.map((check) => gatherPermanent(check))),
        ]).finally(() => hosts.close());
        // In plan order, whatever finished first: one preflight names every problem.
        const problems = [...sources, ...local].flatMap((r) => (r.problem ? [r.problem] : []));
        await mkdir(ctx.backupRoot, { recursive: true, mode: 0o700 });
        const estimatedBytes = sources.reduce((sum, s) => sum + (s.value?.estimatedBytes ?? 0), 0);
        const requiredBytes = Math.ceil(estimatedBytes * ctx.plan.overheadRatio);
        const fs = await statfs(ctx.backupRoot);
        const freeBytes = fs.bavail * fs.bsize;
        if (requiredBytes > freeBytes) {
          problems.push(
            new LifeboatError('InsufficientSpace', `${ctx.backupRoot} has ${formatBytes(freeBytes)} free; the snapshot needs about ${formatBytes(requiredBytes)} (${formatBytes(estimatedBytes)} × ${ctx.plan.overheadRatio})`),
          );
        }
        if (problems.length > 0) {
          throw new LifeboatError(problems[0]!.code, `preflight failed for plan ${ctx.planName}:\n- ${problems.map((p) => p.message).join('\n- ')}`);
        }
        const checked = sources.map((s) => s.value!); // no problem: every source was checked
        return { estimatedBytes, requiredBytes, freeBytes, sources: checked.map(({ name, host, appVersion, estimatedBytes, sized }) => ({ name, host, appVersion, estimatedBytes: sized ? estimatedBytes : null })) };
      }, { stallMs: PREFLIGHT_STALL_MS });
    },

    /**
     * Claims the snapshot name for this run (so two runs in one second cannot share a directory), then
     * creates `<root>/<snapshot>.partial` (0700). Idempotent for the same run, so a retry reuses it.
     */
    async prepareSnapshot(ctx: PlanContext, snapshot: string, runId: string): Promise<string> {
      return runActivity(async () => {
        await claimSnapshotName(ctx.backupRoot, snapshot, runId);
        const { workDir } = snapshotPaths(ctx.backupRoot, snapshot, ctx.plan.archive.format);
        await mkdir(workDir, { recursive: true, mode: 0o700 });
        await chmod(workDir, 0o700);
        return workDir;
      });
    },

    async captureArtifact(ctx: PlanContext, snapshot: string, sourceName: string, artifactName: string): Promise<ArtifactResult> {
      const found = findArtifact(ctx.plan, sourceName, artifactName);
      const stallMs = parseDurationMs(found?.artifact.stallTimeout ?? '') ?? DEFAULT_STALL_MS;
      return runActivity(async ({ signal, progress, quiet }) => {
        if (!found) throw new LifeboatError('ConfigError', `plan ${ctx.planName} has no artifact ${sourceName}/${artifactName}`);
        const { source, artifact } = found;
        const host = await connectHost(source, ctx, signal);
        try {
          const estimate = await captureEstimate(ctx, host, artifact, signal);
          const captured = await sourceModule(artifact).capture({
            host,
            source,
            artifact,
            snapshot,
            snapshotDir: snapshotPaths(ctx.backupRoot, snapshot, ctx.plan.archive.format).workDir,
            mirrorDir: mirrorDir(ctx.backupRoot, ctx.planName, source.name, artifact.name),
            denyList: ctx.denyList,
            signal,
            progress: artifactProgress(progress, { estimate, rsyncPhase: 'pull' }),
            quiet,
          });
          return { source: source.name, name: artifact.name, type: artifact.type, required: artifact.required, ...captured, status: captured.status ?? 'ok' };
        } finally {
          host.close();
        }
      }, { stallMs, what: `capture ${sourceName}/${artifactName}` });
    },

    /** metadata.yml + manifest.sha256, deny-list check, then the atomic rename that makes the snapshot real. */
    async finalizeSnapshot(
      ctx: PlanContext,
      input: {
        snapshot: string;
        tier: Tier;
        deployId?: string;
        startedAt: string;
        artifacts: ArtifactResult[];
        sources: PreflightResult['sources'];
        quiesce?: QuiesceRecord[];
      },
    ): Promise<FinalizeResult> {
      return runActivity(async ({ signal, progress }) => {
        const paths = snapshotPaths(ctx.backupRoot, input.snapshot, ctx.plan.archive.format);
        // A directory an earlier attempt finished is only summarized (by the task): its metadata stays as it was.
        if (!(await exists(paths.dir))) {
          const meta = buildMetadata({
            snapshot: input.snapshot,
            plan: ctx.planName,
            tier: input.tier,
            ...(input.deployId ? { deploy_id: input.deployId } : {}),
            started_at: input.startedAt,
            captured_at: new Date().toISOString(),
            sources: input.sources.map((src) => ({ name: src.name, host: src.host, app_version: src.appVersion })),
            ...(input.quiesce?.length ? { quiesce: input.quiesce } : {}),
            artifacts: input.artifacts,
            archive: { format: ctx.plan.archive.format, file: `${input.snapshot}.${ctx.plan.archive.format}` },
            extra: ctx.plan.metadata,
          });
          await writeMetadata(paths.workDir, meta);
        }
        // Listing, hashing and the rename run apart (snapshot/finalize-apart.ts): their garbage grows with the files.
        const manifest = await finalizeApart(
          { backupRoot: ctx.backupRoot, plan: ctx.planName, snapshot: input.snapshot, workDir: paths.workDir, dir: paths.dir, denyList: ctx.denyList, mediaDirs: mediaDirs(ctx.plan.sources) },
          { signal, onProgress: progress },
        );
        return { dir: paths.dir, manifest };
      });
    },

    async archiveSnapshot(ctx: PlanContext, snapshot: string): Promise<ArchiveResult> {
      return runActivity(async ({ signal, progress }) => {
        const { format, level, encryption } = ctx.plan.archive;
        if (ctx.plan.storages.every((s) => ctx.storages[s]?.type === 'restic')) {
          // Repositories store the directory itself: no archive is built. The record's checksum is then the
          // manifest's SHA-256 (what a restore from a repository is checked against) and its size 0: no archive.
          const dir = snapshotPaths(ctx.backupRoot, snapshot, format).dir;
          return { path: dir, format, sha256: (await hashFile(join(dir, 'manifest.sha256'), signal)).sha256, size: 0 };
        }
        const recipients = encryption?.age.recipients;
        const path = localArchivePath(ctx, snapshot);
        const sidecar = `${path}.sha256`;
        const known = await readFile(sidecar, 'utf8').catch(() => null);
        if (known && (await exists(path))) {
          return { path, format, sha256: known.trim(), size: (await stat(path)).size, ...(recipients ? { encryption: 'age' as const } : {}) };
        }
        const dir = snapshotPaths(ctx.backupRoot, snapshot, format).dir;
        // Bytes tar has read (its stream) of the tree's size, which du finds meanwhile; the archive's own size beside.
        progress(phase('archive'));
        const sizing = new AbortController(); // du is only for the estimate: it ends with the archive
        void treeBytes(dir, AbortSignal.any([signal, sizing.signal])).then((total) => total !== undefined && progress({ bytesTotal: total }));
        const exclude = await mediaExcludeFile(dir, `${path}.media-exclude`);
        const info = await createArchive(dir, path, format, {
          level,
          recipients,
          signal,
          ...(exclude ? { excludeFile: exclude } : {}),
          onInput: (bytes) => progress({ bytesDone: bytes }),
          onProgress: (bytes) => progress({ archive_bytes: bytes }),
        }).finally(async () => {
          sizing.abort();
          if (exclude) await rm(exclude, { force: true });
        });
        // The checkpoints go to the record through a file: in workflow history they would only be weight.
        const { checkpoints, ...result } = info;
        await writeFile(`${path}${CHECKPOINTS_SUFFIX}`, JSON.stringify(checkpoints), { mode: 0o600 });
        await writeFile(sidecar, `${info.sha256}\n`, { mode: 0o600 });
        return result;
      });
    },

    /** Archive first, record last: a record in storage means a complete, verified snapshot. */
    async uploadSnapshot(ctx: PlanContext, storageName: string, archive: ArchiveResult, record: SnapshotRecord): Promise<StorageResult> {
      return runActivity(async ({ signal, progress, attempt }) => {
        const cfg = ctx.storages[storageName];
        if (!cfg) throw new LifeboatError('ConfigError', `plan ${ctx.planName} has no storage ${storageName}`);
        const backend = await openStorage(storageName, cfg);
        if (isRestic(backend)) {
          // restic stores the snapshot directory itself (deduplicated, encrypted by restic), not the archive.
          const dir = snapshotPaths(ctx.backupRoot, record.snapshot, archive.format).dir;
          progress({ storage: storageName, ...phase('upload') });
          const onProgress = (bytes: number, total?: number) => progress({ bytesDone: bytes, bytesTotal: total });
          const deltas = { dir: resticDeltaDir(ctx.backupRoot, storageName, ctx.planName), maxBytes: deltaMaxBytes(cfg) };
          return uploadToRestic(backend, { storage: storageName, dir, record: await sealRecord(ctx, record, archive), fresh: attempt === 1, deltas, signal, onProgress });
        }
        // Media objects first, the archive next, the record last: a listed snapshot has everything it references.
        const recipients = ctx.plan.archive.encryption?.age.recipients;
        const key = archiveKey(ctx.planName, record.snapshot, archive.format, archive.encryption === 'age');
        // In a process of its own (storage/upload-apart.ts): the bytes do not pass through the worker.
        const mediaRequest = { plan: ctx.planName, snapshot: record.snapshot, dir: snapshotPaths(ctx.backupRoot, record.snapshot, archive.format).dir, scratch: ctx.backupRoot, ...(recipients?.length ? { recipients } : {}) };
        const { media, ...put } = await putApart({ storage: { name: storageName, config: cfg }, key, file: archive.path, sha256: archive.sha256, size: archive.size, media: mediaRequest }, {
          signal,
          onMedia: (media) => progress({ storage: storageName, media }),
          onArchive: () => progress({ storage: storageName, ...phase('upload', archive.size) }),
          onProgress: (bytes) => progress({ bytesDone: bytes }),
          // Shown in the Web UI; a new attempt finds its upload on the server, not in these details.
          onState: (s) => progress({ upload: { uploadId: s.uploadId, parts: s.partsDone, part_size: s.partSize } }),
        });
        const rKey = recordKey(ctx.planName, record.snapshot);
        // The record keeps the storage-relative key (listing and retention derive the same); the result names the object.
        const checkpoints = await readCheckpoints(archive.path, archive.size);
        const withMedia: SnapshotRecord = { ...record, ...(media ? { media: media.summary } : {}), ...(checkpoints ? { checkpoints } : {}) };
        await backend.putJson(rKey, { ...(await sealRecord(ctx, withMedia, archive)), storage: storageName, key, location: put.location, completed_at: new Date().toISOString() });
        return {
          storage: storageName,
          type: cfg.type,
          location: put.location,
          key: put.key,
          ...(put.bucket ? { bucket: put.bucket } : {}),
          record_key: rKey,
          size_bytes: archive.size,
          checksum_sha256: archive.sha256,
          already_present: put.alreadyPresent,
          verified_by: put.verifiedBy,
          bytes_sent: put.bytesSent,
          ...(media ? { media: { objects: media.summary.objects, uploaded: media.uploaded, bytes_sent: media.bytes_sent } } : {}),
        };
      });
    },

    /**
     * Keeps the newest `keepLocal` snapshot directories and archives of this plan on the backup host; storages
     * hold the rest. Runs after a successful upload, so the snapshot just made is always among those kept.
     */
    async pruneLocal(ctx: PlanContext): Promise<string[]> {
      return runActivity(async () => {
        const prefix = ctx.plan.prefix ?? ctx.planName;
        const old = localSnapshotsToPrune(await readdir(ctx.backupRoot), prefix, ctx.plan.keepLocal);
        for (const snapshot of old) {
          const { dir, archive } = snapshotPaths(ctx.backupRoot, snapshot, ctx.plan.archive.format);
          await rm(dir, { recursive: true, force: true });
          for (const a of [archive, `${archive}${ENCRYPTED_SUFFIX}`]) for (const f of [a, `${a}.sha256`, `${a}.media-exclude`, `${a}${CHECKPOINTS_SUFFIX}`]) await rm(f, { force: true });
          await rm(join(ctx.backupRoot, `.media-${snapshot}`), { recursive: true, force: true });
          await rm(join(ctx.backupRoot, '.claims', snapshot), { force: true });
        }
        // Bases of restic storages this plan no longer patches for (removed, or deltaMaxMiB: 0) are old dumps.
        const patching = ctx.plan.storages.filter((name) => deltaMaxBytes(ctx.storages[name]) > 0);
        await dropUnusedDeltaDirs(resticDeltaRoot(ctx.backupRoot), ctx.planName, new Set(patching));
        return old;
      });
    },

    /** After a failed run: drop the half-written `.partial` directory so it can never pass for a snapshot. */
    async discardIncomplete(ctx: PlanContext, snapshot: string): Promise<void> {
      return runActivity(async () => {
        const { workDir } = snapshotPaths(ctx.backupRoot, snapshot, ctx.plan.archive.format);
        await rm(workDir, { recursive: true, force: true });
        await rm(join(ctx.backupRoot, `.media-${snapshot}`), { recursive: true, force: true }); // media ciphertext being sent
      });
    },
  };
}

export type BackupActivities = ReturnType<typeof createBackupActivities>;

/** GNU tar's exclude list of the snapshot's media files (they go to storage as objects), if it has any. */
async function mediaExcludeFile(dir: string, file: string): Promise<string | undefined> {
  const index = await readMediaIndex(dir);
  const lines = index ? tarExcludeLines(basename(dir), index) : '';
  if (!lines) return undefined;
  await writeFile(file, lines, { mode: 0o600 });
  return file;
}

/** The archive on the backup host: `<snapshot>.<format>`, with `.age` when it is encrypted. */
function localArchivePath(ctx: PlanContext, snapshot: string): string {
  const { archive } = snapshotPaths(ctx.backupRoot, snapshot, ctx.plan.archive.format);
  return ctx.plan.archive.encryption ? `${archive}${ENCRYPTED_SUFFIX}` : archive;
}

/** Beside the local archive: its checkpoints (archiveSnapshot writes them, the record carries them). */
const CHECKPOINTS_SUFFIX = '.checkpoints.json';

/** An archive made before checkpoints, or a file that does not parse, gives none: selective restores then read it whole. */
async function readCheckpoints(archive: string, size: number): Promise<StoredCheckpoints | undefined> {
  const parsed: unknown = await readFile(`${archive}${CHECKPOINTS_SUFFIX}`, 'utf8').then((text) => JSON.parse(text) as unknown).catch(() => undefined);
  return parsed !== undefined && !checkpointsProblem(parsed, size) ? (parsed as StoredCheckpoints) : undefined;
}

/** The record as stored: what the archive step knows (encryption) and, when signing is configured, a signature. */
async function sealRecord(ctx: PlanContext, record: SnapshotRecord, archive: ArchiveResult): Promise<SnapshotRecord> {
  const sealed: SnapshotRecord = { ...record, ...(archive.encryption ? { encryption: archive.encryption } : {}) };
  const key = await loadSigningKey(ctx.signing);
  return key ? { ...sealed, signature: signRecord(sealed, key) } : sealed;
}

async function claimSnapshotName(backupRoot: string, snapshot: string, runId: string): Promise<void> {
  const claims = join(backupRoot, '.claims');
  await mkdir(claims, { recursive: true, mode: 0o700 });
  const file = join(claims, snapshot);
  try {
    await writeFile(file, runId, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const owner = (await readFile(file, 'utf8')).trim();
    if (owner !== runId) throw new LifeboatError('SnapshotExists', `snapshot ${snapshot} already belongs to workflow run ${owner}`);
  }
}

/** A permanent problem is gathered, so one preflight names them all; any other error fails the step. */
async function gatherPermanent<T>(check: () => Promise<T>): Promise<{ value?: T; problem?: LifeboatError }> {
  try {
    return { value: await check() };
  } catch (err) {
    const e = asLifeboatError(err);
    if (e instanceof LifeboatError && e.permanent) return { problem: e };
    throw err;
  }
}

/**
 * Tools, paths, size and app version of one source: one remote script, and the estimates it cannot make (a dump's
 * size query), asked at the same time so that they go in the same session when they need the same secret.
 */
async function checkSource(source: Source, hosts: HostPool, signal: AbortSignal) {
  const host = coalescing(await hosts.host(source));
  const programs = [...source.artifacts.flatMap((a) => sourceModule(a).requiredTools(a)), ...quiesceProgramsOf(source)];
  const scripted = source.artifacts.map(scriptedEstimate);
  const asked = Promise.allSettled(source.artifacts.map((a, i) => (scripted[i] ? 0 : sourceModule(a).estimateBytes(host, a, signal))));
  const found = await runPreflightChecks(
    host,
    {
      tools: [...new Set(programs.filter((p) => !p.includes('/')))],
      paths: [
        ...source.artifacts.filter((a) => a.required).flatMap((a) => sourceModule(a).requiredPaths(a)),
        ...programs.filter((p) => p.includes('/')),
      ],
      trees: scripted.flatMap((e) => e?.trees ?? []),
      files: scripted.flatMap((e) => e?.files ?? []),
      ...(source.appVersion ? { appVersion: source.appVersion } : {}),
    },
    signal,
  );
  if (found.missingTools.length) throw new LifeboatError('MissingTool', `not installed on ${host.label}: ${found.missingTools.join(', ')}`);
  if (found.missingPaths.length) throw new LifeboatError('MissingPath', `missing on ${host.label}: ${found.missingPaths.join(', ')}`, { paths: found.missingPaths });
  if (found.failures.length) {
    throw new LifeboatError('CommandFailed', `size estimate on ${host.label} failed: ${found.failures.map((f) => `${f.path}: ${f.output.trim()}`).join('; ')}`);
  }
  // After the script's findings: a missing tool is reported as such, not as the failed query it also causes.
  let estimatedBytes = found.estimatedBytes;
  for (const r of await asked) {
    if (r.status === 'rejected') throw r.reason;
    estimatedBytes += r.value;
  }
  // command output has no size to ask for (its estimate is 0): such a source is never taken for small.
  const sized = source.artifacts.every((a) => a.type !== 'command');
  return { name: source.name, host: source.host, appVersion: appVersion(found), estimatedBytes, sized };
}

/**
 * The estimates the preflight script makes itself, as files.ts and sqlite.ts would (saving a command each): the
 * disk usage of a files artifact's present paths, the size of an SQLite database and its WAL. Keep them in step.
 */
function scriptedEstimate(a: Artifact): Pick<PreflightChecks, 'trees' | 'files'> | undefined {
  if (a.type === 'files') return { trees: [...a.paths, ...a.optionalPaths], files: [] };
  if (a.type === 'sqlite') return { trees: [], files: [a.path, `${a.path}-wal`] };
  return undefined;
}

/** Dumps whose size one quick query tells (pg_database_size, information_schema, stat): plain text, uncompressed. */
const ASKED_ESTIMATE: ReadonlySet<Artifact['type']> = new Set(['postgres', 'mysql', 'sqlite']);
const ESTIMATE_QUERY_MS = 15_000;

/**
 * The total a capture's progress counts towards: what the previous snapshot on the backup host recorded for the
 * artifact, else (for a dump) the size query preflight also runs. Only an estimate: it never fails the capture.
 */
async function captureEstimate(ctx: PlanContext, host: Host, artifact: Artifact, signal: AbortSignal): Promise<number | undefined> {
  const previous = (await previousArtifactBytes(ctx.backupRoot, ctx.plan.prefix ?? ctx.planName))[artifact.name];
  if (previous !== undefined || !ASKED_ESTIMATE.has(artifact.type)) return previous;
  if (artifact.type === 'postgres' && artifact.format !== 'plain') return undefined; // compressed: the size says little
  const bounded = AbortSignal.any([signal, AbortSignal.timeout(ESTIMATE_QUERY_MS)]);
  const bytes = await sourceModule(artifact).estimateBytes(host, artifact, bounded).catch(() => 0);
  return bytes > 0 ? bytes : undefined;
}

/** Apparent bytes under a directory (hard links once, as tar stores them); undefined when du cannot tell. */
async function treeBytes(dir: string, signal: AbortSignal): Promise<number | undefined> {
  const res = await execa('du', ['-s', '-b', '--', dir], { reject: false, cancelSignal: signal });
  const bytes = Number(String(res.stdout).split('\t')[0]);
  return res.exitCode === 0 && bytes > 0 ? bytes : undefined;
}

/** Secrets resolved, credentials accepted, bucket or directory reachable: found before any capture work. */
async function checkStorage(ctx: PlanContext, name: string): Promise<void> {
  const cfg = ctx.storages[name];
  if (!cfg) throw new LifeboatError('ConfigError', `plan ${ctx.planName} has no storage ${name}`);
  await (await openStorage(name, cfg)).check();
}

/** age is installed and takes every recipient: found in preflight, not after the whole capture. */
async function checkRecipients(ctx: PlanContext): Promise<void> {
  const recipients = ctx.plan.archive.encryption?.age.recipients;
  if (!recipients) return;
  const res = await execa(...encryptArgv(recipients), { input: '', reject: false, encoding: 'buffer' });
  if ((res as { code?: string }).code === 'ENOENT') throw new LifeboatError('MissingTool', 'age is not installed on the backup host (Debian: apt install age)');
  if (res.exitCode !== 0) throw new LifeboatError('ConfigError', `archive.encryption.age.recipients of plan ${ctx.planName}: age refuses them: ${Buffer.from(res.stderr).toString().trim()}`);
}

/** Programs the quiesce controller will run: checked before anything is stopped. */
function quiesceProgramsOf(source: Source): string[] {
  const q = source.quiesce;
  if (!q) return [];
  if (q.type === 'commands') return [q.stop[0]!, q.start[0]!, ...(q.check ? [q.check[0]!] : [])];
  return [q.command[0]!];
}

/** A version we cannot read is worth recording, not worth failing the backup over. */
function appVersion(found: PreflightFindings): string | null {
  const v = found.appVersion;
  if (!v) return null;
  return v.exitCode === 0 ? v.stdout.trim().slice(0, 500) : `unknown (exit ${v.exitCode}: ${v.stderr.trim().slice(0, 200)})`;
}

