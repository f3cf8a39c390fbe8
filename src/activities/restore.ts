// Restore and restore-drill activities. Nothing is written to a target before the archive's SHA-256 and every
// manifest line have been checked (fetchSnapshot, in a process of its own). Work files live under `<backupRoot>/.restore/<run id>`.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import type { Artifact, Source } from '../config/schema';
import { findArtifact } from '../config/lookup';
import { connectHost, HostPool } from '../remote/host';
import { findSnapshots, resolveSnapshotId, type FetchResult } from '../restore/fetch';
import { fetchApart, type FetchRequest } from '../restore/fetch-apart';
import { outerTreesFirst } from '../restore/order';
import { mapInOrder } from '../shared/bounded';
import { LifeboatError } from '../shared/errors';
import type { FetchedSnapshot, PlanContext, RestoreInput, RestoreResult, SnapshotRecord, SnapshotVerification } from '../shared/types';
import { recordKey } from '../snapshot/naming';
import { annotate, loadSigningKey, trustPolicyOf, type TrustPolicy } from '../snapshot/signing';
import { filesDir } from '../sources/files';
import { restoreModule } from '../sources/restore';
import type { RecordedComponent, RestoreOptions, VerifyCheck } from '../sources/types';
import { isRestic, openStorage, type ResticBackend } from '../storage';
import type { StorageBackend } from '../storage/types';
import type { StepProgress } from '../shared/progress';
import { artifactProgress, phase } from './progress-adapters';
import { runActivity } from './run';

/** Loading a dump into a database reports no progress until it ends: restores allow an hour of silence. */
const RESTORE_STALL_MS = 3_600_000;

type Step = RestoreResult['steps'][number];
type Restored = RestoreResult['restored'][number];

/** Where a done restore step leaves its result, for a retry of it; inside the run's own work dir only. */
function doneMarker(ctx: PlanContext, fetched: FetchedSnapshot, artifact: string): string {
  const work = join(ctx.backupRoot, '.restore');
  if (!fetched.workDir.startsWith(`${work}/`) || !fetched.dir.startsWith(`${fetched.workDir}/`)) throw new LifeboatError('ConfigError', `refusing restore work outside ${work}: ${fetched.dir}`);
  return join(fetched.workDir, 'restored', `${artifact}.json`);
}

export function createRestoreActivities() {
  return {
    /** Downloads, checks (archive SHA-256, then every manifest line) and extracts; returns names and paths only. */
    async fetchForRestore(ctx: PlanContext, input: Pick<RestoreInput, 'snapshot' | 'storage' | 'allowUnsigned' | 'source' | 'artifact' | 'pathPrefix'>, runId: string): Promise<FetchedSnapshot> {
      return runActivity(async ({ signal, progress }) => {
        const { name, backend } = await storageOf(ctx, input.storage);
        const trust = await trustPolicyOf(ctx.signing, input.allowUnsigned && input.snapshot !== 'latest');
        // A name is fetched directly, so a refused record says why (SignatureInvalid…); `latest` is the newest signed one.
        const snapshot = input.snapshot === 'latest' ? resolveSnapshotId(await findSnapshots({ [name]: backend }, { plan: ctx.planName, trust }), 'latest').record.snapshot : input.snapshot;
        const workDir = join(ctx.backupRoot, '.restore', runId);
        await rm(workDir, { recursive: true, force: true }); // an earlier attempt's leftovers are not trusted
        await mkdir(workDir, { recursive: true, mode: 0o700 });
        // A restic storage restores only what the restore needs; an archive is read whole, but only the media
        // objects of the selected artifacts are fetched.
        const select = selectionOf(ctx, input);
        const fetched = await fetchInChild(ctx, { storage: name, trust, snapshot, workDir, ...(select ? { select } : {}) }, signal, progress).catch(
          async (err: unknown) => {
            await rm(workDir, { recursive: true, force: true }); // the workflow only cleans up what it was told about
            throw err;
          },
        );
        const components = componentsOf(fetched.metadata);
        return {
          snapshot,
          storage: name,
          workDir,
          dir: fetched.dir,
          archiveSha256: fetched.record.checksum_sha256,
          artifacts: Object.entries(components).map(([n, c]) => ({ source: c.source, name: n, type: c.type, status: c.status })),
        };
      });
    },

    /** What would go where, and whether it is in use; the dry run prints exactly this. */
    async planRestore(ctx: PlanContext, fetched: FetchedSnapshot, input: RestoreInput): Promise<Step[]> {
      return runActivity(async ({ signal }) => {
        const components = await readComponents(fetched.dir);
        // One SSH connection per target host for all its artifacts, and their checks, asked together, in one session.
        const hosts = new HostPool(ctx, signal, { coalesce: true });
        // Each step asks its target (a round trip, a session on the host): small work, so as many at once as
        // preflight checks sources (the small sources' bound when larger), in plan order.
        const atOnce = Math.max(ctx.plan.parallelism, ctx.plan.smallSourceParallelism ?? 0);
        return await mapInOrder(selectArtifacts(ctx, fetched, input), atOnce, async (sel): Promise<Step> => {
          const mod = restoreModule(sel.artifact);
          if (!mod && input.artifact) throw new LifeboatError('ConfigError', `${sel.artifact.type} artifacts (${sel.artifact.name}) cannot be restored by Lifeboat; ${byHand(sel.artifact)}`);
          // A whole-plan restore goes on without it, and says how to put it back.
          if (!mod) return { artifact: sel.artifact.name, type: sel.artifact.type, host: sel.source.name, target: '(by hand)', targetInUse: false, manual: true, action: `not restored by Lifeboat: ${byHand(sel.artifact)}` };
          const target = targetSource(ctx, sel.source, input);
          const host = await hosts.host(target);
          const step = await mod.planRestore({ host, artifact: sel.artifact, snapshotDir: fetched.dir, component: components[sel.artifact.name]!, options: optionsOf(input), signal });
          return { ...step, host: target.name };
        }).finally(() => hosts.close());
      });
    },

    async restoreArtifact(ctx: PlanContext, fetched: FetchedSnapshot, input: RestoreInput, artifactName: string): Promise<RestoreResult['restored'][number]> {
      return runActivity(async ({ signal, progress }) => {
        const sel = selectArtifacts(ctx, fetched, { ...input, artifact: artifactName })[0]!;
        const marker = doneMarker(ctx, fetched, artifactName);
        // A retry of a step whose work was done (the worker died before reporting it): its copy may be gone already.
        const earlier = await readFile(marker, 'utf8').then((t) => JSON.parse(t) as Restored, () => undefined);
        if (earlier) return earlier;
        const components = await readComponents(fetched.dir);
        const target = targetSource(ctx, sel.source, input);
        const host = await connectHost(target, ctx, signal);
        try {
          const mod = restoreModule(sel.artifact)!;
          const res = await mod.restore({ host, artifact: sel.artifact, snapshotDir: fetched.dir, component: components[artifactName]!, options: optionsOf(input), signal, progress: artifactProgress(progress, { rsyncPhase: 'push' }) });
          // What the target could not take (ACLs on a filesystem without them, …) is shown, not dropped.
          const warnings = (res.details as { warnings?: unknown } | undefined)?.warnings;
          const restored: Restored = { artifact: artifactName, target: res.target, bytes: res.bytes, ...(Array.isArray(warnings) && warnings.length ? { warnings: warnings.map(String) } : {}) };
          await mkdir(dirname(marker), { recursive: true, mode: 0o700 });
          await writeFile(marker, JSON.stringify(restored), { mode: 0o600 });
          // No other step reads this tree: removing it now (disk time, while other steps still use the cores) spares
          // the end of the restore, where discardRestoreWork would wait for it. Databases' dumps are single files.
          if (sel.artifact.type === 'files') await rm(join(fetched.dir, filesDir(sel.source.name, artifactName)), { recursive: true, force: true });
          return restored;
        } finally {
          host.close();
        }
      }, { stallMs: RESTORE_STALL_MS });
    },

    async discardRestoreWork(ctx: PlanContext, workDir: string): Promise<void> {
      return runActivity(async () => {
        if (!workDir.startsWith(join(ctx.backupRoot, '.restore'))) throw new LifeboatError('ConfigError', `refusing to remove ${workDir}`);
        await rm(workDir, { recursive: true, force: true });
      });
    },

    /** Snapshot names in storage, newest first (only complete ones: a record exists). */
    async listSnapshotNames(ctx: PlanContext, storage?: string): Promise<string[]> {
      return runActivity(async () => {
        const { name, backend } = await storageOf(ctx, storage);
        const trust = await trustPolicyOf(ctx.signing); // what the drill picks by itself is signed, always
        return (await findSnapshots({ [name]: backend }, { plan: ctx.planName, trust })).map((l) => l.record.snapshot);
      });
    },

    /**
     * The drill for one snapshot: fetch + checksums, then each artifact restored into scratch targets and compared
     * with what the backup recorded. Scratch objects are removed in every outcome; a bad archive is a failed check.
     */
    async verifySnapshot(ctx: PlanContext, storage: string | undefined, snapshot: string, runId: string, opts: { allowUnsigned?: boolean } = {}): Promise<SnapshotVerification> {
      return runActivity(async ({ signal, progress, quiet }) => {
        const started = Date.now();
        const { name, backend } = await storageOf(ctx, storage);
        const workDir = join(ctx.backupRoot, '.verify', `${runId}-${snapshot}`);
        await rm(workDir, { recursive: true, force: true });
        await mkdir(workDir, { recursive: true, mode: 0o700 });
        const checks: VerifyCheck[] = [];
        try {
          const trust = await trustPolicyOf(ctx.signing, opts.allowUnsigned);
          const fetched = await fetchInChild(ctx, { storage: name, trust, snapshot, workDir }, signal, progress);
          const restic = fetched.record.restic;
          checks.push(restic ? { artifact: '*', check: 'restic snapshot and manifest checksums', ok: true, detail: `restic snapshot ${restic.snapshot_id}, manifest ${fetched.record.manifest.sha256}` } : { artifact: '*', check: 'archive and manifest checksums', ok: true, detail: fetched.record.checksum_sha256 });
          checks.push(...(await verifyComponents(ctx, componentsOf(fetched.metadata), fetched.dir, workDir, signal, progress)));
        } catch (err) {
          if (!(err instanceof LifeboatError && err.permanent)) throw err; // transient: let Temporal retry
          checks.push({ artifact: '*', check: err.code, ok: false, detail: err.message });
        } finally {
          await rm(workDir, { recursive: true, force: true });
        }
        if (isRestic(backend)) checks.push(...(await quiet('restic check', RESTIC_CHECK_QUIET_MS, () => repositoryCheck(backend, runId, snapshot, signal))));
        return { snapshot, ok: checks.every((c) => c.ok), duration_ms: Date.now() - started, verified_at: new Date().toISOString(), checks };
      }, { stallMs: RESTORE_STALL_MS });
    },

    /** Adds the drill's result to the snapshot's record in storage, so `snapshots show` tells when it was last proven. */
    async recordVerification(ctx: PlanContext, storage: string | undefined, result: SnapshotVerification): Promise<void> {
      return runActivity(async () => {
        const { backend } = await storageOf(ctx, storage);
        const key = recordKey(ctx.planName, result.snapshot);
        const record = await backend.getJson<SnapshotRecord>(key);
        if (!record) throw new LifeboatError('ConfigError', `record ${key} disappeared from storage`);
        await backend.putJson(key, annotate(record, { verification: result }, await loadSigningKey(ctx.signing)));
      });
    },
  };
}

export type RestoreActivities = ReturnType<typeof createRestoreActivities>;

/** A fetch's phases as heartbeat progress, each with its own numbers only. */
function fetchProgress(progress: (d: Record<string, unknown>) => void): (p: StepProgress) => void {
  return (p) => progress({ ...phase(p.phase, p.bytesTotal), ...(p.bytesDone !== undefined ? { bytesDone: p.bytesDone } : {}) });
}

async function verifyComponents(
  ctx: PlanContext,
  components: Record<string, RecordedComponent>,
  dir: string,
  workDir: string,
  signal: AbortSignal,
  progress: (d: Record<string, unknown>) => void,
): Promise<VerifyCheck[]> {
  const checks: VerifyCheck[] = [];
  for (const [name, component] of Object.entries(components)) {
    if (component.status !== 'ok') continue; // skipped/failed at backup time: nothing to prove
    const artifact = findArtifact(ctx.plan, component.source, name)?.artifact;
    const mod = artifact && restoreModule(artifact);
    if (!artifact || !mod) {
      checks.push({ artifact: name, check: 'restorable', ok: true, detail: `${component.type}: checksums only (no scratch restore for this type)` });
      continue;
    }
    const scratchDir = join(workDir, 'scratch', name);
    await mkdir(scratchDir, { recursive: true, mode: 0o700 });
    progress({ verifying: name, ...phase('scratch restore') });
    checks.push(...(await mod.verify({ artifact, snapshotDir: dir, component, scratchDir, scratch: ctx.plan.verify, signal, progress: artifactProgress(progress, { rsyncPhase: 'push' }) })));
  }
  return checks;
}

/** `restic check` reads a random subset of the repository: silent until it ends. */
const RESTIC_CHECK_QUIET_MS = 6 * 3_600_000;
/** The repository check of each drill (workflow run), so it runs once per drill, not once per snapshot. */
const repositoryChecks = new Map<string, { snapshot: string; checks: VerifyCheck[] }>();

/**
 * `restic check --read-data-subset` once per drill and repository, reported with the first snapshot verified (and
 * again if that snapshot's step is retried). Without workflow state, "once" is per worker process: a drill taken
 * over by another worker may check twice, which costs time, never correctness.
 */
async function repositoryCheck(backend: ResticBackend, runId: string, snapshot: string, signal: AbortSignal): Promise<VerifyCheck[]> {
  const key = `${runId}\0${backend.name}`;
  const done = repositoryChecks.get(key);
  if (done) return done.snapshot === snapshot ? done.checks : [];
  const result = await backend.checkRepository(backend.cfg.checkReadDataPercent, signal);
  const checks = [{ artifact: '*', check: 'repository', ...result }];
  repositoryChecks.set(key, { snapshot, checks });
  if (repositoryChecks.size > 100) repositoryChecks.delete(repositoryChecks.keys().next().value!);
  return checks;
}

/**
 * The snapshot paths a restore of `--source` / `--artifact` (and `--path`) reads, from the plan: each artifact's
 * own names in the snapshot (as capture writes them); undefined (everything) for a whole-plan restore.
 */
function selectionOf(ctx: PlanContext, input: Pick<RestoreInput, 'source' | 'artifact' | 'pathPrefix'>): string[] | undefined {
  if (!input.source && !input.artifact) return undefined;
  const chosen = ctx.plan.sources.flatMap((source) => source.artifacts.filter((a) => (!input.source || source.name === input.source) && (!input.artifact || a.name === input.artifact)).map((artifact) => ({ source, artifact })));
  const paths = chosen.map(({ source, artifact }) => {
    if (artifact.type === 'files') {
      const prefix = input.pathPrefix?.replace(/\/+$/, '');
      return `${filesDir(source.name, artifact.name)}${prefix && prefix.startsWith('/') ? prefix : ''}`;
    }
    if (artifact.type === 'command') return `commands/${artifact.name}.txt`;
    if (artifact.type === 'opensearch') return `opensearch/${artifact.name}`;
    return `database/${artifact.name}.*`; // dumps, their globals, Redis AOF directories: every name the artifact gives
  });
  return paths.length ? paths : undefined; // nothing matched: the full snapshot, and selectArtifacts says what is there
}

/**
 * fetchSnapshot in a process of its own (restore/fetch-apart.ts): a restore's bulk bytes never pass through the
 * worker. The identity goes as its secret reference, resolved there.
 */
function fetchInChild(
  ctx: PlanContext,
  what: { storage: string; trust: TrustPolicy; snapshot: string; workDir: string; select?: string[] },
  signal: AbortSignal,
  progress: (d: Record<string, unknown>) => void,
): Promise<FetchResult> {
  const ref = ctx.plan.archive.encryption?.age.identity;
  const request: FetchRequest = {
    storage: { name: what.storage, config: ctx.storages[what.storage]! },
    plan: ctx.planName,
    snapshot: what.snapshot,
    workDir: what.workDir,
    trust: what.trust,
    ...(ref ? { identity: { ref } } : {}),
    ...(what.select ? { select: what.select } : {}),
  };
  return fetchApart(request, { signal, onProgress: fetchProgress(progress) });
}

async function storageOf(ctx: PlanContext, name?: string): Promise<{ name: string; backend: StorageBackend }> {
  const storageName = name ?? ctx.plan.storages[0]!;
  const cfg = ctx.storages[storageName];
  if (!cfg) throw new LifeboatError('ConfigError', `plan ${ctx.planName} has no storage ${storageName} (it has: ${ctx.plan.storages.join(', ')})`);
  return { name: storageName, backend: await openStorage(storageName, cfg) };
}

function componentsOf(metadata: unknown): Record<string, RecordedComponent> {
  const components = (metadata as { components?: Record<string, RecordedComponent> }).components;
  if (!components) throw new LifeboatError('IntegrityCheckFailed', 'metadata.yml has no components');
  return components;
}

async function readComponents(dir: string): Promise<Record<string, RecordedComponent>> {
  return componentsOf(parse(await readFile(join(dir, 'metadata.yml'), 'utf8')));
}

/** The artifacts a restore touches: captured ones, narrowed by --source / --artifact. */
function selectArtifacts(ctx: PlanContext, fetched: FetchedSnapshot, input: Pick<RestoreInput, 'source' | 'artifact'>): Array<{ source: Source; artifact: Artifact }> {
  const chosen = fetched.artifacts.filter((a) => a.status === 'ok' && (!input.source || a.source === input.source) && (!input.artifact || a.name === input.artifact));
  if (chosen.length === 0) {
    const what = [input.source && `source ${input.source}`, input.artifact && `artifact ${input.artifact}`].filter(Boolean).join(', ') || 'anything';
    throw new LifeboatError('ConfigError', `snapshot ${fetched.snapshot} holds no captured ${what} (it has: ${fetched.artifacts.map((a) => `${a.source}/${a.name} (${a.status})`).join(', ')})`);
  }
  return outerTreesFirst(chosen.map((a) => {
    const found = findArtifact(ctx.plan, a.source, a.name);
    if (!found) throw new LifeboatError('ConfigError', `plan ${ctx.planName} no longer defines ${a.source}/${a.name}; restore it by hand from the fetched snapshot`);
    return found;
  }));
}

function targetSource(ctx: PlanContext, own: Source, input: Pick<RestoreInput, 'toHost'>): Source {
  if (!input.toHost) return own;
  const other = ctx.plan.sources.find((s) => s.name === input.toHost);
  if (!other) throw new LifeboatError('ConfigError', `--to-host ${input.toHost}: plan ${ctx.planName} has no such source (it has: ${ctx.plan.sources.map((s) => s.name).join(', ')})`);
  return other;
}

/** How to put back an artifact type Lifeboat does not restore itself. */
function byHand(a: Artifact): string {
  if (a.type === 'opensearch') return `fetch the snapshot (lifeboat snapshots fetch), copy opensearch/${a.name}/ into the repository path ${a.repositoryPath} and restore with POST _snapshot/${a.repository}/<snapshot>/_restore`;
  if (a.type === 'command') return `its output is in commands/${a.name}.txt of the fetched snapshot (lifeboat snapshots fetch); there is nothing to write back`;
  return 'fetch the snapshot (lifeboat snapshots fetch) and restore it by hand';
}

function optionsOf(input: RestoreInput): RestoreOptions {
  return { database: input.database, dir: input.dir, pathPrefix: input.pathPrefix, force: input.force };
}
