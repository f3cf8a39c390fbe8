// Snapshots back out of storage. Nothing is trusted until checked: the archive's SHA-256 against the record
// before anything is extracted, then (after a safe extraction) every manifest line, and no file beyond them.
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import pLimit from 'p-limit';
import { parse } from 'yaml';
import { LifeboatError } from '../shared/errors';
import { isHex64 } from '../shared/hex';
import type { StepProgress } from '../shared/progress';
import { TIERS, type SnapshotRecord, type SnapshotVerification } from '../shared/types';
import { extractArchive, extractStream, type ExtractResult } from '../snapshot/extract';
import { checkDigests, hashFile, parseManifest, verifyManifest, type ManifestEntry } from '../snapshot/manifest';
import type { SnapshotMetadata } from '../snapshot/metadata';
import { decryptArchive, type IdentitySource } from '../snapshot/encryption';
import { ARCHIVE_FORMATS, archiveKey, isPlanName, isSnapshotName, parseSnapshotName, recordKey } from '../snapshot/naming';
import { signatureProblem, type TrustPolicy } from '../snapshot/signing';
import { escapePattern, isRestic, type ResticBackend } from '../storage/restic';
import { fetchMedia } from './media-fetch';
import { MEDIA_INDEX } from '../snapshot/media-index';
import { selects } from '../snapshot/selection';
import { checkpointsProblem, type StoredCheckpoints } from '../snapshot/stored-checkpoints';
import type { ResticRef } from '../storage/restic-upload';
import { applyDeltas, deltaPatterns } from '../storage/restic-deltas';
import { isRegularFile } from '../shared/files';
import { MAX_RECORD_BYTES, type StorageBackend } from '../storage/types';

/** `<plan>/<snapshot>.json` as stored: the backup's record plus where it went and, after a drill, its result. */
export interface StoredRecord extends SnapshotRecord {
  storage?: string;
  key?: string;
  location?: string;
  verification?: SnapshotVerification;
  /** Restic storages: the restic snapshot holding the directory (not signed: see restoreFromRestic). */
  restic?: ResticRef;
}

export interface SnapshotListing {
  /** Name of the storage (a key of the config's `storages`) holding it. */
  storage: string;
  /** The record's key in that storage. */
  key: string;
  record: StoredRecord;
}

export interface DownloadOptions {
  storage: StorageBackend;
  plan: string;
  snapshot: string;
  /** Signature requirements (see snapshot/signing.ts); default: signing not configured. */
  trust?: TrustPolicy;
  /** For encrypted archives: decrypt with this identity after the stored bytes check out. */
  identity?: IdentitySource;
  signal?: AbortSignal;
  /** Each phase (download, check, decrypt, extract, verify; restic: restore) with its bytes where they are counted. */
  onProgress?: (progress: StepProgress) => void;
  /**
   * Only these snapshot paths (`files/app/site/srv/x`, or `database/orders.*` for every name starting so), besides
   * metadata.yml and manifest.sha256, are needed. Restic storages restore and check only them; an archive is
   * extracted and checked whole, and only the selected media files are fetched.
   */
  select?: string[];
}

export interface FetchResult {
  record: StoredRecord;
  /** The plaintext archive (decrypted when the snapshot is encrypted); none from a restic storage. */
  archivePath?: string;
  /** The extracted, verified snapshot root: `<workDir>/extract/<snapshot>`. */
  dir: string;
  /** metadata.yml, parsed (it is covered by the manifest, so as trustworthy as the archive). */
  metadata: SnapshotMetadata;
}

const MANIFEST = 'manifest.sha256';
/** What retention accepts as an instant: ISO 8601 with Z or an offset. */
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * The record, then the archive streamed from storage through its checks into `<workDir>/extract` (see
 * snapshot/extract.ts): stored SHA-256, safe headers, every manifest line from the hashes taken on the way, nothing
 * unlisted. With `keepArchive` the archive is downloaded (and decrypted) to a file first and kept: `snapshots fetch`.
 */
export async function fetchSnapshot(opts: DownloadOptions & { workDir: string; keepArchive?: boolean }): Promise<FetchResult> {
  if (isRestic(opts.storage)) return restoreFromRestic({ ...opts, storage: opts.storage });
  const target = join(opts.workDir, 'extract');
  const { record, archivePath, extracted } = opts.keepArchive ? await extractDownloaded(opts, target) : await extractStored(opts, target);
  if (basename(extracted.root) !== opts.snapshot) {
    throw new LifeboatError('IntegrityCheckFailed', `archive of ${opts.snapshot} holds ${basename(extracted.root)}/, not ${opts.snapshot}/`);
  }
  const digests = new Map(extracted.digests);
  const skipped = record.media ? await fetchMediaOf(opts, record, extracted.root, digests) : new Set<string>();
  // A partial extraction checks what it needs against the signed manifest; anything else left out is not there.
  const needed = extracted.complete ? () => true : (p: string) => ALWAYS_RESTORED.includes(p) || p === MEDIA_INDEX || (opts.select ?? []).some((s) => selects(s, p));
  const only = skipped.size || !extracted.complete ? (p: string) => !skipped.has(p) && needed(p) : undefined;
  await verifyTree(extracted.root, record, { digests, ...(only ? { only } : {}), ...(opts.onProgress ? { report: opts.onProgress } : {}) });
  return { record, ...(archivePath ? { archivePath } : {}), dir: extracted.root, metadata: await readMetadata(extracted.root) };
}

/** The media files the archive left out (all, or those a selective restore names); returns the ones not fetched. */
async function fetchMediaOf(opts: DownloadOptions, record: StoredRecord, root: string, digests: Map<string, { sha256: string }>): Promise<Set<string>> {
  const select = opts.select?.length ? checkedSelection(opts.select) : undefined;
  return fetchMedia({
    storage: opts.storage,
    plan: opts.plan,
    snapshot: opts.snapshot,
    media: record.media!,
    root,
    entries: await readManifest(root, record),
    digests,
    ...(select ? { select: (path: string) => select.some((p) => selects(p, path)) } : {}),
    ...(opts.identity ? { identity: opts.identity } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onProgress ? { report: opts.onProgress } : {}),
  });
}

/** One pass from the storage's stream: nothing is written but the extracted tree. */
async function extractStored(opts: DownloadOptions, target: string): Promise<{ record: StoredRecord; archivePath?: string; extracted: ExtractResult }> {
  const { record, key, encrypted } = await storedArchive(opts, { decrypt: true });
  const select = partialSelection(opts, record);
  const report = opts.onProgress;
  report?.({ phase: 'restore', bytesDone: 0, bytesTotal: record.size_bytes });
  const source = await opts.storage.read(key, opts.signal ? { signal: opts.signal } : {});
  const extracted = await extractStream(source, {
    format: record.format,
    targetDir: target,
    label: opts.storage.location(key),
    stored: { sha256: record.checksum_sha256, size: record.size_bytes },
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(encrypted && opts.identity ? { identity: opts.identity } : {}),
    ...(report ? { onBytes: (bytes: number) => report({ phase: 'restore', bytesDone: bytes, bytesTotal: record.size_bytes }) } : {}),
    ...(select ? { select } : {}),
  });
  return { record, extracted };
}

/**
 * A selective restore reads the archive only as far as it needs (snapshot/selection.ts) when the record carries
 * checkpoints of the stored object (snapshot/stored-checkpoints.ts): they prove the bytes read without the whole
 * object's hash. An older record has none, and its archive is read whole.
 */
function partialSelection(opts: DownloadOptions, record: StoredRecord): { patterns: string[]; always: string[]; checkpoints: StoredCheckpoints } | undefined {
  if (!opts.select?.length || !record.checkpoints) return undefined;
  checkedSelection(opts.select);
  return { patterns: opts.select, always: [...ALWAYS_RESTORED, ...(record.media ? [MEDIA_INDEX] : [])], checkpoints: record.checkpoints };
}

async function extractDownloaded(opts: DownloadOptions & { workDir: string }, target: string): Promise<{ record: StoredRecord; archivePath: string; extracted: ExtractResult }> {
  const { record, archivePath } = await downloadArchive({ ...opts, dir: opts.workDir, decrypt: true });
  opts.onProgress?.({ phase: 'extract' });
  return { record, archivePath, extracted: await extractArchive(archivePath, record.format, target, opts.signal ? { signal: opts.signal } : {}) };
}

/** The record and where its archive is; a missing identity (when it will decrypt) or archive fails before any download. */
async function storedArchive(opts: DownloadOptions, use: { decrypt: boolean }): Promise<{ record: StoredRecord; key: string; encrypted: boolean }> {
  const { storage, plan, snapshot } = opts;
  if (isRestic(storage)) throw new LifeboatError('ConfigError', `storage ${storage.name} is a restic repository: it holds no archive of ${snapshot} to download`);
  const record = await readRecord(storage, plan, snapshot, opts.trust ?? {});
  const encrypted = record.encryption === 'age';
  if (encrypted && use.decrypt && !opts.identity) {
    throw new LifeboatError('DecryptFailed', `snapshot ${snapshot} is encrypted with age and no identity is configured (archive.encryption.age.identity, or --identity FILE)`);
  }
  const key = archiveKey(plan, snapshot, record.format, encrypted);
  // A record without its archive is lost data, not a hiccup worth retrying.
  if (!(await storage.stat(key))) throw new LifeboatError('IntegrityCheckFailed', `snapshot ${snapshot} has a record but no archive: ${storage.location(key)} is missing`);
  return { record, key, encrypted };
}

/**
 * The record, and the archive in `dir` once the stored bytes match the record's size and SHA-256 (else removed).
 * With `decrypt`, an encrypted archive is then decrypted to `<snapshot>.<format>` and the ciphertext removed; a
 * missing identity fails before the download.
 */
export async function downloadArchive(opts: DownloadOptions & { dir: string; decrypt?: boolean }): Promise<{ record: StoredRecord; archivePath: string; encrypted: boolean }> {
  const { storage, snapshot, signal } = opts;
  const { record, key, encrypted } = await storedArchive(opts, { decrypt: opts.decrypt ?? false });
  await mkdir(opts.dir, { recursive: true, mode: 0o700 });
  const stored = join(opts.dir, basename(key));
  const report = opts.onProgress;
  report?.({ phase: 'download', bytesDone: 0, bytesTotal: record.size_bytes });
  await storage.get(key, stored, { ...(signal ? { signal } : {}), ...(report ? { onProgress: (bytes: number) => report({ phase: 'download', bytesDone: bytes, bytesTotal: record.size_bytes }) } : {}) });
  report?.({ phase: 'check' });
  const actual = await hashFile(stored, signal);
  if (actual.sha256 !== record.checksum_sha256 || actual.size !== record.size_bytes) {
    await rm(stored, { force: true });
    throw new LifeboatError(
      'ChecksumMismatch',
      `archive ${storage.location(key)}: downloaded ${actual.size} bytes with SHA-256 ${actual.sha256}, but the record says ${record.size_bytes} bytes with SHA-256 ${record.checksum_sha256}`,
      { archive: storage.location(key), expected: record.checksum_sha256, actual: actual.sha256 },
    );
  }
  if (!encrypted || !opts.decrypt) return { record, archivePath: stored, encrypted };
  const plain = join(opts.dir, `${snapshot}.${record.format}`);
  report?.({ phase: 'decrypt' });
  try {
    await decryptArchive(stored, plain, opts.identity, { signal });
  } finally {
    await rm(stored, { force: true });
  }
  return { record, archivePath: plain, encrypted };
}

async function readRecord(storage: StorageBackend, plan: string, snapshot: string, trust: TrustPolicy): Promise<StoredRecord> {
  if (!isPlanName(plan) || !isSnapshotName(snapshot)) {
    throw new LifeboatError('ConfigError', `not a plan and snapshot name: ${JSON.stringify(plan)} ${JSON.stringify(snapshot)}`);
  }
  const key = recordKey(plan, snapshot);
  const size = (await storage.stat(key))?.size;
  if (size === undefined) throw new LifeboatError('ConfigError', `no snapshot ${snapshot} of plan ${plan} in storage ${storage.name}`);
  if (size > MAX_RECORD_BYTES) throw new LifeboatError('IntegrityCheckFailed', `record ${storage.location(key)} is ${size} bytes, more than a record can be`);
  const record = await storage.getJson<StoredRecord>(key);
  if (!record) throw new LifeboatError('ConfigError', `no snapshot ${snapshot} of plan ${plan} in storage ${storage.name}`);
  const problem = recordProblem(record, { plan, snapshot }, storage);
  if (problem) throw new LifeboatError('IntegrityCheckFailed', `record ${storage.location(key)} ${problem}`);
  const unsigned = signatureProblem(record, trust);
  if (unsigned) throw new LifeboatError('SignatureInvalid', `record ${storage.location(key)} ${unsigned}`);
  return record;
}

/**
 * Why a record read from `<plan>/<snapshot>.json` cannot describe that snapshot: another name, an unknown format
 * or encryption, no checksum, or an archive key other than the one derived from its name. Keys are derived, never
 * read: a record that names another key is a forgery or a bug, and is not acted on.
 */
function recordProblem(record: StoredRecord, id: { plan: string; snapshot: string }, storage: StorageBackend): string | undefined {
  if (!record || typeof record !== 'object' || Array.isArray(record)) return 'is not a JSON object';
  if (record.snapshot !== id.snapshot || record.plan !== id.plan) return `names ${String(record.plan)}/${String(record.snapshot)}`;
  if (!TIERS.includes(record.tier)) return `has an unknown tier ${JSON.stringify(record.tier)}`;
  if (typeof record.created_at !== 'string' || !ISO_INSTANT.test(record.created_at) || Number.isNaN(Date.parse(record.created_at))) return 'has no valid created_at';
  if (!ARCHIVE_FORMATS.includes(record.format)) return `has an unknown format ${JSON.stringify(record.format)}`;
  if (record.encryption !== undefined && record.encryption !== 'age') return `has an unknown encryption ${JSON.stringify(record.encryption)}`;
  if (!isHex64(record.checksum_sha256) || !Number.isSafeInteger(record.size_bytes)) return 'has no valid checksum_sha256 and size_bytes';
  if (record.media !== undefined && (isRestic(storage) || mediaProblem(record.media))) return `has an invalid media summary`;
  if (record.checkpoints !== undefined) {
    const bad = isRestic(storage) ? 'in a restic storage' : checkpointsProblem(record.checkpoints, record.size_bytes);
    if (bad) return `has invalid checkpoints (${bad})`;
  }
  if (isRestic(storage)) return resticRecordProblem(record);
  if (record.key !== undefined) {
    const derived = archiveKey(id.plan, id.snapshot, record.format, record.encryption === 'age');
    if (record.key !== derived && record.key !== storage.objectKey?.(derived)) return `names the archive key ${JSON.stringify(record.key)}, not ${derived}`;
  }
  return undefined;
}

interface VerifyOptions {
  signal?: AbortSignal;
  /** A partial restore checks the lines it restored (the manifest itself is still checked whole). */
  only?: (path: string) => boolean;
  report?: (p: StepProgress) => void;
  /** Hashes taken as an archive was extracted (its tree was compared with its listing): nothing is read again. */
  digests?: ReadonlyMap<string, { sha256: string }>;
}

/** Every manifest line must match, and every regular file must be listed (a planted extra file is refused too). */
async function verifyTree(root: string, record: StoredRecord, opts: VerifyOptions = {}): Promise<void> {
  const { signal, only, report, digests } = opts;
  const all = await readManifest(root, record);
  const entries = only ? all.filter((e) => only(e.path)) : all;
  report?.({ phase: 'verify' });
  const onProgress = report && ((bytesDone: number, bytesTotal: number) => report({ phase: 'verify', bytesDone, bytesTotal }));
  const problems = await Promise.resolve().then(() => (digests ? checkDigests(entries, digests) : verifyManifest(root, entries, signal, onProgress))).catch((err: NodeJS.ErrnoException) => {
    if (signal?.aborted || err.code) throw err;
    throw new LifeboatError('IntegrityCheckFailed', `${record.snapshot}/${MANIFEST}: ${err.message}`); // a path escaping the root
  });
  const listed = new Set(all.map((e) => e.path));
  const files = digests ? [...digests.keys()] : await regularFiles(root);
  const unlisted = files.filter((p) => p !== MANIFEST && !listed.has(p));
  const bad = [...problems.map((p) => `${p.path} (${p.problem === 'missing' ? 'missing' : 'checksum differs'})`), ...unlisted.map((p) => `${p} (not in the manifest)`)];
  if (bad.length > 0) {
    const shown = bad.slice(0, 20).join(', ') + (bad.length > 20 ? `, and ${bad.length - 20} more` : '');
    throw new LifeboatError('ChecksumMismatch', `snapshot ${record.snapshot} fails its manifest: ${shown}`, { files: bad });
  }
}

async function readManifest(root: string, record: StoredRecord): Promise<ManifestEntry[]> {
  const path = join(root, MANIFEST);
  if (!(await isRegularFile(path))) throw new LifeboatError('IntegrityCheckFailed', `snapshot ${record.snapshot} has no ${MANIFEST}`);
  const text = await readFile(path, 'utf8');
  // The record holds the manifest's own hash: a manifest rewritten after the backup is refused too.
  const recorded = record.manifest?.sha256;
  if (recorded && createHash('sha256').update(text).digest('hex') !== recorded) {
    throw new LifeboatError('ChecksumMismatch', `snapshot ${record.snapshot}: ${MANIFEST} differs from the one recorded at backup time (sha256 ${recorded})`);
  }
  try {
    return parseManifest(text);
  } catch (err) {
    throw new LifeboatError('IntegrityCheckFailed', `snapshot ${record.snapshot}: ${(err as Error).message}`);
  }
}

async function readMetadata(root: string): Promise<SnapshotMetadata> {
  const path = join(root, 'metadata.yml');
  // Listed in the manifest (verified above) unless missing altogether.
  if (!(await isRegularFile(path))) throw new LifeboatError('IntegrityCheckFailed', `${path} is missing`);
  const metadata: unknown = parse(await readFile(path, 'utf8'));
  if (!metadata || typeof metadata !== 'object') throw new LifeboatError('IntegrityCheckFailed', `${path} is not a YAML mapping`);
  return metadata as SnapshotMetadata;
}

async function regularFiles(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir(join(root, rel))) {
    const path = rel ? `${rel}/${name}` : name;
    const st = await lstat(join(root, path));
    if (st.isDirectory()) out.push(...(await regularFiles(root, path)));
    else if (st.isFile()) out.push(path);
  }
  return out;
}

// ---- restic ----

/**
 * A snapshot from a restic storage: the record (signature checked as for archives), `restic restore` of its data
 * snapshot into `<workDir>/extract/<snapshot>`, then what an extracted archive goes through: no special files, no
 * link leaving the tree, manifest.sha256 equal to the signed SHA-256, every manifest line, nothing unlisted.
 * The record's restic snapshot id is not signed and need not be: it must be a data snapshot restic itself tags with
 * this plan and name (restic authenticates tags with the repository key), and any other tree fails the manifest.
 */
async function restoreFromRestic(opts: DownloadOptions & { storage: ResticBackend; workDir: string }): Promise<FetchResult> {
  const { storage, plan, snapshot, signal } = opts;
  const record = await readRecord(storage, plan, snapshot, opts.trust ?? {});
  const id = record.restic!.snapshot_id; // recordProblem made sure
  const data = await storage.dataSnapshots({ plan, snapshot });
  if (!data.some((s) => s.id === id)) {
    const held = data.map((s) => s.id.slice(0, 8)).join(', ') || 'none';
    throw new LifeboatError('IntegrityCheckFailed', `record ${storage.location(recordKey(plan, snapshot))} names restic snapshot ${id.slice(0, 8)}, which is not a data snapshot of ${plan}/${snapshot} in the repository (those are: ${held})`);
  }
  const extract = join(opts.workDir, 'extract');
  await mkdir(extract, { recursive: true, mode: 0o700 });
  await chmod(extract, 0o700); // restored as root with owners and modes: keep setuid files private
  const root = join(extract, snapshot);
  if (await lstat(root).catch(() => null)) throw new LifeboatError('ConfigError', `restore target ${root} already exists`);
  const select = opts.select?.length ? checkedSelection(opts.select) : undefined;
  const report = opts.onProgress;
  report?.({ phase: 'restore' });
  const onProgress = report && ((bytesDone: number, bytesTotal?: number) => report({ phase: 'restore', bytesDone, ...(bytesTotal !== undefined ? { bytesTotal } : {}) }));
  await storage.restore({ id, snapshot }, root, { ...(select ? { include: select.flatMap((p) => [p, ...deltaPatterns(p)]).map(resticPattern) } : {}), signal, onProgress });
  await assertSafeTree(root, snapshot);
  await applyDeltas(root, signal); // database files stored as base and patch: the manifest check below proves them
  await verifyTree(root, record, { ...(signal ? { signal } : {}), ...(select ? { only: (path: string) => select.some((p) => selects(p, path)) } : {}), ...(report ? { report } : {}) });
  return { record, dir: root, metadata: await readMetadata(root) };
}

function mediaProblem(m: StoredRecord['media']): boolean {
  if (!m || typeof m !== 'object') return true;
  if (![m.files, m.bytes, m.objects].every((n) => Number.isSafeInteger(n) && n >= 0)) return true;
  return !isHex64(m.refs_sha256) || (m.encrypted_to !== undefined && !/^[0-9a-f]{16}$/.test(String(m.encrypted_to)));
}

function resticRecordProblem(record: StoredRecord): string | undefined {
  if (!isHex64(record.restic?.snapshot_id)) return 'has no restic snapshot id';
  // A restored tree is checked against the manifest alone: without its signed hash there is nothing to check.
  if (!isHex64(record.manifest?.sha256)) return 'has no manifest SHA-256';
  if (record.key !== undefined) return `names the archive key ${JSON.stringify(record.key)}, but a restic storage holds no archives`;
  return undefined;
}

/** What a partial restore always brings: the files that describe and check the rest. */
const ALWAYS_RESTORED = ['metadata.yml', MANIFEST];

function checkedSelection(select: string[]): string[] {
  for (const p of select) {
    const bare = p.endsWith('.*') ? p.slice(0, -1) : p;
    if (!bare || bare.startsWith('/') || bare.includes('\0') || bare.split('/').some((s) => s === '' || s === '.' || s === '..')) {
      throw new LifeboatError('ConfigError', `not a path inside a snapshot: ${JSON.stringify(p)}`);
    }
  }
  return [...ALWAYS_RESTORED, ...select];
}

/** `files/app/site` → `/files/app/site`; `database/orders.*` keeps its final `*`; everything else matches literally. */
function resticPattern(p: string): string {
  const glob = p.endsWith('.*');
  return `/${escapePattern(glob ? p.slice(0, -1) : p)}${glob ? '*' : ''}`;
}


/** What extracting an archive refuses, refused in a restored tree too: special files, links that leave the root. */
async function assertSafeTree(root: string, snapshot: string, rel: string[] = []): Promise<void> {
  for (const name of await readdir(join(root, ...rel))) {
    const path = [...rel, name];
    const st = await lstat(join(root, ...path));
    if (st.isDirectory()) await assertSafeTree(root, snapshot, path);
    else if (st.isSymbolicLink()) {
      const target = await readlink(join(root, ...path));
      if (!(await resolveInside(root, rel, target, 0))) throw unsafeEntry(snapshot, path, `is a symlink to ${JSON.stringify(target)}, which resolves outside the snapshot`);
    } else if (!st.isFile()) throw unsafeEntry(snapshot, path, 'is a special file; only files, directories and links are allowed');
  }
}

/** Where `target` (relative to `dir`) lands, following the tree's own symlinks; null when it leaves the root. */
async function resolveInside(root: string, dir: string[], target: string, depth: number): Promise<string[] | null> {
  if (depth > 40 || target.startsWith('/')) return null;
  let parts = [...dir];
  for (const seg of target.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (parts.length === 0) return null;
      parts.pop();
      continue;
    }
    parts.push(seg);
    const st = await lstat(join(root, ...parts)).catch(() => null);
    if (st?.isSymbolicLink()) {
      const next = await resolveInside(root, parts.slice(0, -1), await readlink(join(root, ...parts)), depth + 1);
      if (!next) return null;
      parts = next;
    }
  }
  return parts;
}

function unsafeEntry(snapshot: string, path: string[], reason: string): LifeboatError {
  return new LifeboatError('IntegrityCheckFailed', `unsafe snapshot ${snapshot}: entry ${JSON.stringify(path.join('/'))} ${reason}`, { entry: path.join('/') });
}

// ---- listing ----

export interface ListOptions {
  plan?: string;
  trust?: TrustPolicy;
  /** Records that are not listed (forged, renamed, unsigned…), with the reason: callers report them. */
  onIgnored?: (ignored: IgnoredRecord) => void;
}

export interface IgnoredRecord {
  storage: string;
  key: string;
  reason: string;
}

/** Complete snapshots (those with a valid record) in every given storage, newest first; storages keep their order on ties. */
export async function findSnapshots(storages: Record<string, StorageBackend>, opts: ListOptions = {}): Promise<SnapshotListing[]> {
  const perStorage = await Promise.all(Object.entries(storages).map(([name, backend]) => listStorage(name, backend, opts)));
  return perStorage.flat().sort((a, b) => createdAt(b) - createdAt(a) || (a.record.snapshot < b.record.snapshot ? 1 : a.record.snapshot > b.record.snapshot ? -1 : 0));
}

async function listStorage(name: string, backend: StorageBackend, opts: ListOptions): Promise<SnapshotListing[]> {
  const objects = await backend.list(opts.plan ? `${opts.plan}/` : '');
  const keys = objects.flatMap((o) => {
    const id = parseRecordKey(o.key);
    return id && (!opts.plan || id.plan === opts.plan) ? [{ key: o.key, size: o.size, id }] : [];
  });
  const limit = pLimit(8);
  const found = await Promise.all(keys.map((k) => limit(async () => ({ ...k, read: await readListed(backend, k.key, k.size) }))));
  const listing: SnapshotListing[] = [];
  for (const { key, id, read } of found) {
    if (!read) continue; // deleted between list and read
    const reason = 'reason' in read ? read.reason : (recordProblem(read.record, id, backend) ?? signatureProblem(read.record, opts.trust ?? {}));
    if (reason) opts.onIgnored?.({ storage: name, key, reason });
    else if ('record' in read) listing.push({ storage: name, key, record: read.record });
  }
  return listing;
}

/** The record, null when gone, or why it cannot be read: a listing goes on past one broken record. */
async function readListed(backend: StorageBackend, key: string, size: number): Promise<{ record: StoredRecord } | { reason: string } | null> {
  if (size > MAX_RECORD_BYTES) return { reason: `is ${size} bytes, more than a record can be` };
  try {
    const record = await backend.getJson<StoredRecord>(key);
    return record === null ? null : { record };
  } catch (err) {
    if (err instanceof LifeboatError && err.code === 'IntegrityCheckFailed') return { reason: err.details?.tooLarge ? 'is more than a record can be' : 'is not valid JSON' };
    throw err;
  }
}

function parseRecordKey(key: string): { plan: string; snapshot: string } | null {
  const m = /^([^/]+)\/([^/]+)\.json$/.exec(key);
  return m && isPlanName(m[1]!) && isSnapshotName(m[2]!) ? { plan: m[1]!, snapshot: m[2]! } : null;
}

function createdAt(l: SnapshotListing): number {
  const t = Date.parse(l.record.created_at);
  return Number.isNaN(t) ? (parseSnapshotName(l.record.snapshot)?.at.getTime() ?? 0) : t;
}

/**
 * An exact snapshot name, or `latest` (newest; of `plan` when given). The same snapshot in several storages is one
 * snapshot (the first listed wins); the same name under two plans, or `latest` over several plans, is ambiguous.
 */
export function resolveSnapshotId(listing: readonly SnapshotListing[], id: string, opts: { plan?: string } = {}): SnapshotListing {
  const pool = opts.plan ? listing.filter((l) => l.record.plan === opts.plan) : listing;
  const of = opts.plan ? ` of plan ${opts.plan}` : '';
  const matches = id === 'latest' ? pool.filter((l) => l.record.snapshot === pool[0]?.record.snapshot) : pool.filter((l) => l.record.snapshot === id);
  const plans = [...new Set((id === 'latest' ? pool : matches).map((l) => l.record.plan))];
  if (plans.length > 1) {
    throw new LifeboatError('ConfigError', `"${id}" is ambiguous: it matches snapshots of plans ${plans.join(', ')}; name the plan`);
  }
  const found = matches[0];
  if (!found) {
    const newest = pool.slice(0, 3).map((l) => l.record.snapshot);
    throw new LifeboatError('ConfigError', `no snapshot "${id}"${of} in storage${newest.length ? ` (newest: ${[...new Set(newest)].join(', ')})` : ' (none found at all)'}`);
  }
  return found;
}
