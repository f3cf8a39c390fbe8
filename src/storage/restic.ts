// A restic repository as storage: deduplication and encryption belong to restic, not to code of ours. Each
// Lifeboat snapshot is one restic snapshot of its finalized directory (backed up from inside it, so the tree has
// metadata.yml and manifest.sha256 at its root whatever backupRoot was), tagged `lifeboat`, `plan=…`, `tier=…`,
// `snapshot=…`. Its record (the same JSON the archive storages keep as `<plan>/<snapshot>.json`) travels in the
// same restic snapshot as `/<snapshot>.json`, which then also carries the tag `lifeboat-record`: one restic call
// (one key derivation) per upload, and a record can only exist with its data. A record rewritten later (a drill's
// result, a released hold) is a tiny record-only snapshot read from stdin, tagged `lifeboat-record`, `plan=…`,
// `snapshot=…`; the newest record of a snapshot is its record. restic authenticates all of them with the
// repository key.
//
// Record verbs (list, stat, getJson, putJson, delete) speak the same keys as the other backends, so listing,
// signatures, holds and drill results work unchanged; archive verbs (put, get, verifyStored) do not apply.
import { createHash } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import pLimit from 'p-limit';
import type { ResticStorage } from '../config/schema';
import { resolveSecret } from '../config/secrets';
import { LifeboatError } from '../shared/errors';
import { isHex64 } from '../shared/hex';
import { isPlanName, isSnapshotName, recordKey } from '../snapshot/naming';
import { prepareDeltaView, type DeltaView } from './restic-deltas';
import { readCachedParent, readCachedRecord, writeCachedParent, writeCachedRecord } from './restic-cache';
import { sftpOptions, withSshLog, type SftpOptions } from './restic-sftp';
import { RETRY_LOCK, runRestic, type ResticCall, type ResticOutput } from './restic-run';
import { MAX_RECORD_BYTES, parseJson, type LocalArchive, type ObjectInfo, type PutResult, type StorageBackend, type Verification } from './types';

/** Every Lifeboat snapshot carries this host, so restic's own grouping and `--host` filters see one machine. */
export const RESTIC_HOST = 'lifeboat';
export const DATA_TAG = 'lifeboat';
export const RECORD_TAG = 'lifeboat-record';
/**
 * Repository ids the worker has read (preflight's `cat config`), by repository string and environment (idKey), so
 * the upload's record needs no second key derivation for it. The id is informational (`snapshots show`); a repository re-created under the same string
 * while the worker runs would show its predecessor's id until the worker restarts.
 */
const KNOWN_IDS = new Map<string, string>();
/**
 * When each repository (answerKey: password and pinned ssh settings included) last answered a restic call of this
 * worker. Preflight opens it again only when that is longer ago than PROVEN_FOR_MS: each call derives the key
 * (scrypt, about 0.5 s of CPU), and the upload's `backup` proves the same things anyway. Any failed call forgets
 * it. A repository that went away since fails the upload once, after the capture, then preflight again.
 */
const ANSWERED = new Map<string, number>();
const PROVEN_FOR_MS = 3_600_000;
/** Preflight's question must be answered quickly: restic itself retries an unreachable backend for 15 minutes. */
const CHECK_DEADLINE_MS = 120_000;

/** A snapshot as `restic snapshots --json` prints it (the fields Lifeboat reads). */
export interface ResticSnapshot {
  id: string;
  time: string;
  tags?: string[];
  paths?: string[];
  hostname?: string;
  summary?: ResticSummary;
}

/** `restic backup --json`'s summary line (and the snapshot's stored summary). */
export interface ResticSummary {
  snapshot_id?: string;
  files_new?: number;
  files_changed?: number;
  files_unmodified?: number;
  data_added?: number;
  data_added_packed?: number;
  total_files_processed?: number;
  total_bytes_processed?: number;
  /** When restic finished the snapshot (restic ≥ 0.17 stores it in the snapshot's summary). */
  backup_end?: string;
}

/** What one Lifeboat snapshot is in the repository: its data snapshot and its (newest) record snapshot. */
export interface Identified {
  plan: string;
  snapshot: string;
}

export interface BackupOptions {
  signal?: AbortSignal;
  onProgress?: (bytes: number, total?: number) => void;
  fresh?: boolean;
  /** The record's JSON, stored in the data snapshot as `/<snapshot>.json` (see embeddedRecordPath). */
  record?: string;
  /** Database files go as a base and a patch (restic-deltas.ts); `dir` is the plan's delta directory on the backup host. */
  deltas?: { dir: string; maxBytes: number };
}

export interface BackupOutcome {
  snapshotId: string;
  /** An earlier attempt's data snapshot of the same Lifeboat snapshot was found and kept. */
  alreadyPresent: boolean;
  /** The data snapshot holds a record (`/<snapshot>.json`, tag `lifeboat-record`): this one's, or an earlier attempt's. */
  holdsRecord: boolean;
  summary: ResticSummary;
  /**
   * Files and bytes the backed-up tree holds beyond the snapshot directory (database patches: restic-deltas.ts).
   */
  extra?: { files: number; bytes: number };
}

export async function openRestic(name: string, cfg: ResticStorage): Promise<ResticBackend> {
  const env: Record<string, string> = {};
  for (const [key, ref] of Object.entries(cfg.env)) env[key] = await resolveSecret(ref, `storage ${name} env.${key}`);
  env.RESTIC_REPOSITORY = cfg.repository;
  env.RESTIC_PASSWORD = await resolveSecret(cfg.password, `storage ${name} password`);
  return new ResticBackend(name, cfg, env, sftpOptions(cfg.repository, cfg.ssh));
}

export function isRestic(backend: StorageBackend): backend is ResticBackend {
  return backend instanceof ResticBackend;
}

export class ResticBackend implements StorageBackend {
  /** `restic snapshots` of Lifeboat's snapshots, read once per instance and dropped on every write. */
  private listing: Promise<ResticSnapshot[]> | undefined;
  private repoId: string | undefined;
  /** Each restic call derives the key (scrypt: about 0.5 s and 60 MiB): a listing reads few records at once. */
  private readonly dumps = pLimit(2);
  /** Secrets included: handed to the child only (a #private field: never enumerated, logged or serialized). */
  readonly #env: Record<string, string>;

  constructor(
    readonly name: string,
    readonly cfg: ResticStorage,
    env: Record<string, string>,
    /** An sftp: repository's pinned ssh settings, before every command (restic-sftp.ts). */
    private readonly sftp?: SftpOptions,
  ) {
    this.#env = env;
  }

  get repository(): string {
    return this.cfg.repository;
  }

  // ---- StorageBackend: records ----

  location(key: string): string {
    return `restic:${this.cfg.repository} ${key}`;
  }

  objectKey(key: string): string {
    return key;
  }

  /**
   * Preflight: the repository answers to this password (`restic cat config`), unless it did so to this worker in the
   * last hour (ANSWERED). A missing one is created with `init: true`, else it is a ConfigError; a wrong password is
   * AuthFailed; both permanent.
   */
  async check(): Promise<void> {
    if (KNOWN_IDS.has(this.idKey) && Date.now() - (ANSWERED.get(this.answerKey) ?? -Infinity) < PROVEN_FOR_MS) return;
    try {
      await this.configJson(CHECK_DEADLINE_MS);
    } catch (err) {
      if (!(this.cfg.init && err instanceof LifeboatError && err.details?.noRepository)) throw err;
      await this.run(['init', '--json'], 'init', { deadlineMs: CHECK_DEADLINE_MS });
      await this.configJson(CHECK_DEADLINE_MS);
    }
  }

  /** Record keys (`<plan>/<snapshot>.json`) of the newest record snapshot per Lifeboat snapshot. */
  async list(prefix: string): Promise<ObjectInfo[]> {
    const newest = new Map<string, ResticSnapshot>();
    for (const s of await this.snapshots()) {
      const id = identify(s, RECORD_TAG);
      if (!id) continue;
      const key = recordKey(id.plan, id.snapshot);
      if (!newest.has(key) || byNewestRecord(s, newest.get(key)!) < 0) newest.set(key, s);
    }
    return [...newest.entries()]
      .filter(([key]) => key.startsWith(prefix))
      .map(([key, s]) => ({ key, size: recordSize(s), lastModified: new Date(s.time) }))
      .sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    const s = await this.recordSnapshot(key);
    return s ? { key, size: recordSize(s), lastModified: new Date(s.time) } : null;
  }

  async getJson<T>(key: string): Promise<T | null> {
    const s = await this.recordSnapshot(key);
    if (!s) return null;
    const value = parseJson<T>(await this.recordText(s, key), this.location(key));
    return isData(s) ? (this.completeEmbedded(value, s) as T) : value;
  }

  /**
   * A new record-only snapshot; the record-only ones it supersedes are forgotten when the repository is free (else
   * by retention). A record inside a data snapshot is superseded by the newer one, never forgotten with its data.
   */
  async putJson(key: string, value: unknown): Promise<string> {
    const id = parseKey(key);
    if (!id?.record) throw new LifeboatError('ConfigError', `storage ${this.name}: ${JSON.stringify(key)} is not a record key (<plan>/<snapshot>.json)`);
    const before = (await this.recordSnapshots(id)).filter((s) => !isData(s));
    const text = JSON.stringify(value, null, 2);
    const out = await this.run(['backup', '--json', '--stdin', '--stdin-filename', `${id.snapshot}.json`, '--host', RESTIC_HOST, '--tag', recordTags(id).join(','), '--retry-lock', RETRY_LOCK], 'write record', { input: text });
    const written = summaryOf(out).snapshot_id;
    if (written) await writeCachedRecord(written, text);
    this.listing = undefined;
    // Readers take the newest record, so a superseded one left behind (repository locked) is only clutter.
    if (before.length) await this.forget(before.map((s) => s.id), { wait: false }).catch(() => undefined);
    return this.location(key);
  }

  /**
   * `<plan>/<snapshot>.json` forgets every snapshot holding a record of it (a data snapshot with its record included:
   * a snapshot without a record is not one), any other key of that snapshot its data snapshots. No prune.
   */
  async delete(key: string): Promise<void> {
    const id = parseKey(key);
    if (!id) return;
    const ids = (id.record ? await this.recordSnapshots(id) : await this.dataSnapshots(id)).map((s) => s.id);
    if (ids.length) await this.forget(ids);
  }

  // ---- StorageBackend: archive verbs do not apply ----

  async put(): Promise<PutResult> {
    throw this.noArchives();
  }

  async get(): Promise<void> {
    throw this.noArchives();
  }

  async read(): Promise<Readable> {
    throw this.noArchives();
  }

  async verifyStored(_key: string, _local: LocalArchive): Promise<Verification> {
    throw this.noArchives();
  }

  private noArchives(): LifeboatError {
    return new LifeboatError('ConfigError', `storage ${this.name} is a restic repository: it holds snapshot directories, not archives`);
  }

  // ---- restic's own verbs ----

  /** Where a record says its snapshot is: the repository and the restic snapshot's short id. */
  snapshotLocation(id: string): string {
    return `restic:${this.cfg.repository} snapshot ${id.slice(0, 8)}`;
  }

  /** Lifeboat's snapshots in the repository (data and records), as restic lists them. */
  snapshots(): Promise<ResticSnapshot[]> {
    this.listing ??= this.run(['snapshots', '--json', '--no-lock', '--tag', DATA_TAG, '--tag', RECORD_TAG], 'list snapshots').then((out) => parseSnapshots(out.stdout, this.name));
    this.listing.catch(() => (this.listing = undefined));
    return this.listing;
  }

  /** Data snapshots of one Lifeboat snapshot (normally one), newest first. */
  async dataSnapshots(id: Identified): Promise<ResticSnapshot[]> {
    return (await this.snapshots()).filter((s) => sameSnapshot(identify(s, DATA_TAG), id)).sort(byNewest);
  }

  /** Snapshots holding a record of one Lifeboat snapshot, the one that counts first (byNewestRecord). */
  async recordSnapshots(id: Identified): Promise<ResticSnapshot[]> {
    return (await this.snapshots()).filter((s) => sameSnapshot(identify(s, RECORD_TAG), id)).sort(byNewestRecord);
  }

  /**
   * Backs up `dir` as the data snapshot of `id`, from inside it (`.`), so its tree holds the snapshot's files at
   * the root. The plan's newest data snapshot is the parent and ctime is ignored: files hard-linked from the rsync
   * mirror keep inode, size and mtime but get a new ctime with every link, and restic would read them all again.
   * A data snapshot an earlier attempt finished is kept (restic writes the snapshot last: it is complete).
   * `fresh`: no earlier attempt of this upload exists (the activity's first attempt; snapshot names are claimed per
   * run), so the parent this host cached last time is enough and `restic snapshots` (a key derivation) is skipped.
   */
  async backupDir(dir: string, id: Identified & { tier: string; createdAt: string }, opts: BackupOptions = {}): Promise<BackupOutcome> {
    if (opts.fresh) {
      const hint = await readCachedParent(this.idKey, id.plan);
      if (hint && hint.snapshot !== id.snapshot) {
        try {
          return await this.backupOnto(dir, id, hint.id, opts);
        } catch (err) {
          if (!isUnknownParent(err, hint.id)) throw err; // forgotten since, or another repository at this address: list
        }
      }
    }
    const existing = (await this.dataSnapshots(id))[0];
    if (existing) {
      // Its pairs as its own tag says (another storage on this repository may patch other dumps, or none).
      const extra = deltaTag(existing.tags ?? []);
      return { snapshotId: existing.id, alreadyPresent: true, holdsRecord: !!identify(existing, RECORD_TAG), summary: existing.summary ?? {}, ...(extra ? { extra } : {}) };
    }
    const parent = (await this.snapshots()).filter((s) => identify(s, DATA_TAG)?.plan === id.plan).sort(byNewest)[0];
    return this.backupOnto(dir, id, parent?.id, opts);
  }

  private async backupOnto(dir: string, id: Identified & { tier: string; createdAt: string }, parent: string | undefined, opts: BackupOptions): Promise<BackupOutcome> {
    let summary: ResticSummary | undefined;
    let tags = [...dataTags(id), ...(opts.record !== undefined ? [RECORD_TAG] : [])];
    // The record is a file only for the backup's length: the local snapshot directory keeps its own files (archives, later uploads).
    let view: DeltaView | undefined;
    let recordFile: string | undefined;
    try {
      view = opts.deltas ? await prepareDeltaView(dir, opts.deltas.dir, { maxBytes: opts.deltas.maxBytes, ...(opts.signal ? { signal: opts.signal } : {}) }) : undefined;
      // A retry that finds this snapshot counts its files by this tag (restic-upload.ts assertComplete).
      if (view) tags = [...tags, `deltas=${view.pairs}:${view.extraBytes}`];
      const args = [
        'backup', '--json', '--host', RESTIC_HOST, '--tag', tags.join(','), '--time', resticTime(id.createdAt), '--retry-lock', RETRY_LOCK,
        ...(parent ? ['--parent', parent, '--ignore-ctime'] : []),
        '.',
      ];
      // In the view when there is one: the snapshot directory itself then never holds the record, even after a crash.
      recordFile = opts.record !== undefined ? join(view?.dir ?? dir, embeddedRecordPath(id.snapshot)) : undefined;
      if (recordFile) await writeFile(recordFile, opts.record!, { mode: 0o600 });
      await this.run(args, 'backup', {
        cwd: view?.dir ?? dir,
        signal: opts.signal,
        onJson: (m) => {
          if (m.message_type === 'status' && typeof m.bytes_done === 'number') opts.onProgress?.(m.bytes_done, typeof m.total_bytes === 'number' ? m.total_bytes : undefined);
          if (m.message_type === 'summary') summary = m as ResticSummary;
        },
      });
    } catch (err) {
      this.listing = undefined;
      // Exit 3 still writes a snapshot, of an incomplete tree: it must not pass for this snapshot on a retry.
      if (summary?.snapshot_id) await this.forget([summary.snapshot_id]).catch(() => undefined);
      throw err;
    } finally {
      await view?.remove();
      if (recordFile) await rm(recordFile, { force: true });
    }
    if (!summary?.snapshot_id) {
      this.listing = undefined;
      throw new LifeboatError('StorageError', `storage ${this.name}: restic backup printed no summary with a snapshot id`);
    }
    await writeCachedParent(this.idKey, id.plan, { id: summary.snapshot_id, snapshot: id.snapshot });
    if (opts.record !== undefined) await writeCachedRecord(summary.snapshot_id, opts.record);
    // The listing stays good with the one snapshot just written added: a record written next (under the plan's
    // lock, so nobody else writes this snapshot's records) needs no second `restic snapshots` (a key derivation).
    const made: ResticSnapshot = { id: summary.snapshot_id, time: new Date(id.createdAt).toISOString(), tags, paths: [dir], hostname: RESTIC_HOST, summary };
    this.listing = this.listing?.then((list) => [...list, made]);
    return { snapshotId: summary.snapshot_id, alreadyPresent: false, holdsRecord: opts.record !== undefined, summary, ...(view ? { extra: { files: view.pairs, bytes: view.extraBytes } } : {}) };
  }

  /**
   * A record stored inside its data snapshot was written before restic named the snapshot: what only the snapshot
   * tells (its id, where it is, when restic finished it) comes from the listing, as restic authenticated it.
   */
  private completeEmbedded(value: unknown, s: ResticSnapshot): unknown {
    if (!value || typeof value !== 'object' || Array.isArray(value)) return value;
    const record = value as { restic?: unknown; location?: unknown; completed_at?: unknown };
    const ref = record.restic && typeof record.restic === 'object' ? record.restic : {};
    return {
      ...record,
      restic: { ...ref, snapshot_id: s.id },
      location: this.snapshotLocation(s.id),
      completed_at: typeof s.summary?.backup_end === 'string' ? s.summary.backup_end : s.time,
    };
  }

  /**
   * Restores data snapshot `s.id` of Lifeboat snapshot `s.snapshot` into `target` (created by restic), without the
   * record it may hold. `include`: restic patterns, rooted at the snapshot root (`/database/orders.*`); none means
   * everything. Only the xattrs an archive extraction keeps are set.
   */
  async restore(s: { id: string; snapshot: string }, target: string, opts: { include?: string[]; signal?: AbortSignal; onProgress?: (bytes: number, total?: number) => void } = {}): Promise<ResticSummary & { bytes_restored?: number; files_restored?: number }> {
    const snapshotId = s.id;
    const xattrs = ['user.*', 'system.posix_acl_access', 'system.posix_acl_default', ...(process.getuid?.() === 0 ? ['security.capability'] : [])];
    // restic takes either includes or excludes; an include list never names the record.
    const select = opts.include?.length ? opts.include.flatMap((p) => ['--include', p]) : ['--exclude', `/${escapePattern(embeddedRecordPath(s.snapshot))}`];
    const args = ['restore', '--json', snapshotId, '--target', target, '--retry-lock', RETRY_LOCK, ...xattrs.flatMap((x) => ['--include-xattr', x]), ...select];
    const out = await this.run(args, `restore ${snapshotId.slice(0, 8)}`, {
      signal: opts.signal,
      onJson: (m) => {
        if (m.message_type === 'status' && typeof m.bytes_restored === 'number') opts.onProgress?.(m.bytes_restored, typeof m.total_bytes === 'number' ? m.total_bytes : undefined);
      },
    });
    return summaryOf(out);
  }

  /** Forgets snapshots by id (no prune). `wait: false` gives up at once when another process holds the lock. */
  async forget(ids: string[], opts: { wait?: boolean } = {}): Promise<void> {
    if (ids.length === 0) return;
    for (const id of ids) if (!isHex64(id)) throw new LifeboatError('IntegrityCheckFailed', `storage ${this.name}: not a restic snapshot id: ${JSON.stringify(id)}`);
    try {
      await this.run(['forget', ...(opts.wait === false ? [] : ['--retry-lock', RETRY_LOCK]), '--', ...ids], `forget ${ids.length} snapshot(s)`);
    } finally {
      this.listing = undefined;
    }
  }

  /** Removes data no snapshot references any more (after forget). */
  async prune(signal?: AbortSignal): Promise<void> {
    await this.run(['prune', '--retry-lock', RETRY_LOCK], 'prune', { signal });
  }

  /** `restic check`, reading `percent` % of the pack files (a random subset each time): ok, and what it found. */
  async checkRepository(percent: number, signal?: AbortSignal): Promise<{ ok: boolean; detail: string }> {
    const args = ['check', '--json', '--retry-lock', RETRY_LOCK, ...(percent > 0 ? [`--read-data-subset=${percent}%`] : [])];
    const what = `restic check${percent > 0 ? ` --read-data-subset=${percent}%` : ''}`;
    let summary: { num_errors?: number; broken_packs?: string[] | null } | undefined;
    try {
      await this.run(args, 'check', {
        signal,
        onJson: (m) => {
          if (m.message_type === 'summary') summary = m as typeof summary;
        },
      });
    } catch (err) {
      // Errors found are the finding (exit 1 with a summary), not an outage to retry.
      if (!summary?.num_errors) throw err;
      const packs = summary.broken_packs?.length ? `; damaged packs: ${summary.broken_packs.join(', ')} (see \`restic repair packs\`)` : '';
      return { ok: false, detail: `${what}: ${summary.num_errors} error(s)${packs}` };
    }
    return { ok: true, detail: `${what}: ${summary?.num_errors ?? 0} error(s)` };
  }

  /** The repository's id (`restic cat config`), recorded beside the snapshot id. */
  async repositoryId(): Promise<string | undefined> {
    this.repoId ??= KNOWN_IDS.get(this.idKey) ?? (await this.configJson()).id;
    return this.repoId;
  }

  // ---- internals ----

  /** Which repository this is: its string and the environment that can pick it (accounts, endpoints), hashed. */
  private get idKey(): string {
    return createHash('sha256').update(JSON.stringify([this.cfg.repository, Object.entries(this.#env).sort()])).digest('hex');
  }

  /** What an answer proves: this repository and environment, reached this way (an sftp: repository's pinned ssh). */
  private get answerKey(): string {
    return `${this.idKey} ${JSON.stringify(this.cfg.ssh ?? null)}`;
  }

  private async configJson(deadlineMs?: number): Promise<{ id?: string }> {
    const out = await this.run(['cat', 'config', '--no-lock'], 'open repository', deadlineMs ? { deadlineMs } : {});
    const config = parseJson<{ id?: string }>(out.stdout, `storage ${this.name}: restic config`);
    this.repoId = typeof config.id === 'string' ? config.id : undefined;
    if (this.repoId) KNOWN_IDS.set(this.idKey, this.repoId);
    return config;
  }

  private async recordSnapshot(key: string): Promise<ResticSnapshot | undefined> {
    const id = parseKey(key);
    return id?.record ? (await this.recordSnapshots(id))[0] : undefined;
  }

  /** A record snapshot's JSON: from the local cache (keyed by its content-addressed id), else `restic dump`. */
  private async recordText(s: ResticSnapshot, key: string): Promise<string> {
    const cached = await readCachedRecord(s.id);
    if (cached !== undefined) return cached;
    const id = parseKey(key)!;
    const out = await this.dumps(() => this.run(['dump', '--no-lock', s.id, `/${embeddedRecordPath(id.snapshot)}`], `read record ${key}`, { maxStdoutBytes: MAX_RECORD_BYTES }));
    await writeCachedRecord(s.id, out.stdout);
    return out.stdout;
  }

  private run(args: string[], what: string, opts: Pick<ResticCall, 'input' | 'cwd' | 'signal' | 'onJson' | 'deadlineMs' | 'maxStdoutBytes'> = {}): Promise<ResticOutput> {
    const call = { env: this.#env, what: `storage ${this.name} (restic ${this.cfg.repository}): ${what}`, ...opts };
    const sftp = this.sftp;
    // Any failure forgets the answer: the next preflight asks again (a wrong password, a repository gone).
    const answered = (out: ResticOutput) => {
      ANSWERED.set(this.answerKey, Date.now());
      return out;
    };
    const unanswered = (err: unknown): never => {
      ANSWERED.delete(this.answerKey);
      throw err;
    };
    if (!sftp) return runRestic({ ...call, args }).then(answered, unanswered);
    return withSshLog((sshLog) => runRestic({ ...call, args: [...sftp(sshLog), ...args], sshLog })).then(answered, unanswered);
  }
}

/** Where a data snapshot holds its record: `<snapshot>.json` at the root, beside metadata.yml (no artifact lives there). */
export function embeddedRecordPath(snapshot: string): string {
  return `${snapshot}.json`;
}

/** restic's pattern syntax (filepath.Match): `\\`, `*`, `?` and `[` taken literally. */
export function escapePattern(path: string): string {
  return path.replace(/[\\*?[]/g, '\\$&');
}

const isData = (s: Pick<ResticSnapshot, 'tags'>): boolean => !!s.tags?.includes(DATA_TAG);

/**
 * A record-only snapshot's size is its record's; a data snapshot's summary counts the whole tree, so the record
 * inside it has no size before it is read (0 here, and the read is bounded).
 */
function recordSize(s: ResticSnapshot): number {
  return isData(s) ? 0 : (s.summary?.total_bytes_processed ?? 0);
}

export function dataTags(id: Identified & { tier: string }): string[] {
  return [DATA_TAG, `plan=${id.plan}`, `tier=${id.tier}`, `snapshot=${id.snapshot}`];
}

export function recordTags(id: Identified): string[] {
  return [RECORD_TAG, `plan=${id.plan}`, `snapshot=${id.snapshot}`];
}

/**
 * Plan and snapshot name of a restic snapshot carrying `kind` (data or record tag), from its tags; only names that
 * pass the same checks as storage keys (a tag is written by whoever holds the repository password).
 */
export function identify(s: Pick<ResticSnapshot, 'tags'>, kind: typeof DATA_TAG | typeof RECORD_TAG): Identified | undefined {
  const tags = s.tags ?? [];
  if (!tags.includes(kind)) return undefined;
  const plan = tagValue(tags, 'plan');
  const snapshot = tagValue(tags, 'snapshot');
  return plan && snapshot && isPlanName(plan) && isSnapshotName(snapshot) ? { plan, snapshot } : undefined;
}

function tagValue(tags: string[], key: string): string | undefined {
  const values = tags.filter((t) => t.startsWith(`${key}=`)).map((t) => t.slice(key.length + 1));
  return values.length === 1 ? values[0] : undefined; // two plan= tags name nothing
}

/**
 * `deltas=<pairs>:<bytes>`: the database files a data snapshot holds as base and patch, and the bytes they add (for
 * the completeness check of a snapshot an earlier attempt made). None: 0. A malformed one counts nothing right.
 */
function deltaTag(tags: string[]): { files: number; bytes: number } | undefined {
  const value = tagValue(tags, 'deltas');
  if (value === undefined) return tags.some((t) => t.startsWith('deltas=')) ? { files: NaN, bytes: NaN } : undefined;
  const m = /^(\d+):(-?\d+)$/.exec(value);
  return m ? { files: Number(m[1]), bytes: Number(m[2]) } : { files: NaN, bytes: NaN };
}

/** `<plan>/<snapshot>.json` (a record) or `<plan>/<snapshot>.<anything>` (its data). */
export function parseKey(key: string): (Identified & { record: boolean }) | undefined {
  const m = /^([^/]+)\/([^/]+?)\.(json|tar\.zst(?:\.age)?|tar\.gz(?:\.age)?)$/.exec(key);
  if (!m || !isPlanName(m[1]!) || !isSnapshotName(m[2]!)) return undefined;
  return { plan: m[1]!, snapshot: m[2]!, record: m[3] === 'json' };
}

function sameSnapshot(a: Identified | undefined, b: Identified): boolean {
  return !!a && a.plan === b.plan && a.snapshot === b.snapshot;
}

function newer(a: ResticSnapshot, b: ResticSnapshot): boolean {
  return Date.parse(a.time) > Date.parse(b.time) || (a.time === b.time && a.id > b.id);
}

function byNewest(a: ResticSnapshot, b: ResticSnapshot): number {
  return newer(a, b) ? -1 : newer(b, a) ? 1 : 0;
}

/**
 * The record that counts first: a record-only snapshot is always written after the data snapshot it describes (a
 * rewrite), so it outranks the record inside the data whatever the times say (the data's time is the snapshot's
 * start); among record-only snapshots the newest.
 */
export function byNewestRecord(a: ResticSnapshot, b: ResticSnapshot): number {
  return Number(isData(a)) - Number(isData(b)) || byNewest(a, b);
}

/** `--time` as restic reads it ("2006-01-02 15:04:05", in TZ, which runRestic sets to UTC). */
export function resticTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) throw new LifeboatError('ConfigError', `not an instant: ${JSON.stringify(iso)}`);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, '');
}

function parseSnapshots(stdout: string, storage: string): ResticSnapshot[] {
  const list = parseJson<unknown>(stdout.trim() || '[]', `storage ${storage}: restic snapshots output`);
  if (!Array.isArray(list)) throw new LifeboatError('StorageError', `storage ${storage}: restic snapshots printed no list`);
  return list.filter((s): s is ResticSnapshot => !!s && typeof s === 'object' && isHex64((s as ResticSnapshot).id) && typeof (s as ResticSnapshot).time === 'string');
}

/** restic refused `--parent` because it could not load that snapshot (before writing anything). */
function isUnknownParent(err: unknown, parent: string): boolean {
  if (!(err instanceof LifeboatError)) return false;
  const short = parent.slice(0, 8);
  return err.message.includes(`failed to load snapshot ${short}`) || err.message.includes(`no matching ID found for prefix "${short}`);
}

function summaryOf(out: ResticOutput): ResticSummary {
  return (out.messages.find((m) => m.message_type === 'summary') ?? {}) as ResticSummary;
}
