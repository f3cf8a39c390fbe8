// Snapshots back out of storage. Nothing is trusted until checked: the archive's SHA-256 against the record
// before anything is extracted, then (after a safe extraction) every manifest line, and no file beyond them.
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import pLimit from 'p-limit';
import { parse } from 'yaml';
import { LifeboatError } from '../shared/errors';
import type { SnapshotRecord, SnapshotVerification } from '../shared/types';
import { extractArchive } from '../snapshot/extract';
import { hashFile, parseManifest, verifyManifest, type ManifestEntry } from '../snapshot/manifest';
import type { SnapshotMetadata } from '../snapshot/metadata';
import { ARCHIVE_FORMATS, archiveKey, parseSnapshotName, recordKey } from '../snapshot/naming';
import type { StorageBackend } from '../storage/types';

/** `<plan>/<snapshot>.json` as stored: the backup's record plus where it went and, after a drill, its result. */
export interface StoredRecord extends SnapshotRecord {
  storage?: string;
  key?: string;
  location?: string;
  verification?: SnapshotVerification;
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
  signal?: AbortSignal;
  onProgress?: (bytes: number) => void;
}

export interface FetchResult {
  record: StoredRecord;
  archivePath: string;
  /** The extracted, verified snapshot root: `<workDir>/extract/<snapshot>`. */
  dir: string;
  /** metadata.yml, parsed (it is covered by the manifest, so as trustworthy as the archive). */
  metadata: SnapshotMetadata;
}

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const MANIFEST = 'manifest.sha256';

/** Download, check the archive, extract it safely under `<workDir>/extract`, check every file; returns metadata.yml. */
export async function fetchSnapshot(opts: DownloadOptions & { workDir: string }): Promise<FetchResult> {
  const { record, archivePath } = await downloadArchive({ ...opts, dir: opts.workDir });
  const { root } = await extractArchive(archivePath, record.format, join(opts.workDir, 'extract'), { signal: opts.signal });
  if (basename(root) !== opts.snapshot) {
    throw new LifeboatError('IntegrityCheckFailed', `archive ${archivePath} holds ${basename(root)}/, not ${opts.snapshot}/`);
  }
  await verifyTree(root, record, opts.signal);
  return { record, archivePath, dir: root, metadata: await readMetadata(root) };
}

/** The record, and the archive as `<dir>/<snapshot>.<format>` once its SHA-256 matches the record (else removed). */
export async function downloadArchive(opts: DownloadOptions & { dir: string }): Promise<{ record: StoredRecord; archivePath: string }> {
  const { storage, plan, snapshot, signal } = opts;
  const record = await readRecord(storage, plan, snapshot);
  const key = archiveKey(plan, snapshot, record.format);
  // A record without its archive is lost data, not a hiccup worth retrying.
  if (!(await storage.stat(key))) throw new LifeboatError('IntegrityCheckFailed', `snapshot ${snapshot} has a record but no archive: ${storage.location(key)} is missing`);
  await mkdir(opts.dir, { recursive: true, mode: 0o700 });
  const archivePath = join(opts.dir, `${snapshot}.${record.format}`);
  await storage.get(key, archivePath, { ...(signal ? { signal } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
  const actual = await hashFile(archivePath, signal);
  if (actual.sha256 !== record.checksum_sha256) {
    await rm(archivePath, { force: true });
    throw new LifeboatError(
      'ChecksumMismatch',
      `archive ${storage.location(key)}: downloaded ${actual.size} bytes with SHA-256 ${actual.sha256}, but the record says ${record.size_bytes} bytes with SHA-256 ${record.checksum_sha256}`,
      { archive: storage.location(key), expected: record.checksum_sha256, actual: actual.sha256 },
    );
  }
  return { record, archivePath };
}

async function readRecord(storage: StorageBackend, plan: string, snapshot: string): Promise<StoredRecord> {
  if (!SAFE_NAME.test(plan) || !SAFE_NAME.test(snapshot) || !parseSnapshotName(snapshot)) {
    throw new LifeboatError('ConfigError', `not a plan and snapshot name: ${JSON.stringify(plan)} ${JSON.stringify(snapshot)}`);
  }
  const key = recordKey(plan, snapshot);
  const record = await storage.getJson<StoredRecord>(key);
  if (!record) throw new LifeboatError('ConfigError', `no snapshot ${snapshot} of plan ${plan} in storage ${storage.name}`);
  const problem =
    record.snapshot !== snapshot || record.plan !== plan ? `names ${record.plan}/${record.snapshot}`
    : !ARCHIVE_FORMATS.includes(record.format) ? `has an unknown format ${JSON.stringify(record.format)}`
    : !/^[0-9a-f]{64}$/.test(String(record.checksum_sha256)) ? 'has no valid checksum_sha256'
    : undefined;
  if (problem) throw new LifeboatError('IntegrityCheckFailed', `record ${storage.location(key)} ${problem}`);
  return record;
}

/** Every manifest line must match, and every regular file must be listed (a planted extra file is refused too). */
async function verifyTree(root: string, record: StoredRecord, signal?: AbortSignal): Promise<void> {
  const entries = await readManifest(root, record);
  const problems = await verifyManifest(root, entries, signal).catch((err: NodeJS.ErrnoException) => {
    if (signal?.aborted || err.code) throw err;
    throw new LifeboatError('IntegrityCheckFailed', `${record.snapshot}/${MANIFEST}: ${err.message}`); // a path escaping the root
  });
  const listed = new Set(entries.map((e) => e.path));
  const unlisted = (await regularFiles(root)).filter((p) => p !== MANIFEST && !listed.has(p));
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

async function isRegularFile(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => null))?.isFile() ?? false;
}

// ---- listing ----

/** Complete snapshots (those with a record) in every given storage, newest first; storages keep their order on ties. */
export async function findSnapshots(storages: Record<string, StorageBackend>, opts: { plan?: string } = {}): Promise<SnapshotListing[]> {
  const perStorage = await Promise.all(Object.entries(storages).map(([name, backend]) => listStorage(name, backend, opts.plan)));
  return perStorage.flat().sort((a, b) => createdAt(b) - createdAt(a) || (a.record.snapshot < b.record.snapshot ? 1 : a.record.snapshot > b.record.snapshot ? -1 : 0));
}

async function listStorage(name: string, backend: StorageBackend, plan?: string): Promise<SnapshotListing[]> {
  const objects = await backend.list(plan ? `${plan}/` : '');
  const keys = objects.map((o) => ({ key: o.key, id: parseRecordKey(o.key) })).filter((k) => k.id && (!plan || k.id.plan === plan));
  const limit = pLimit(8);
  const found = await Promise.all(keys.map(({ key, id }) => limit(async () => ({ key, id: id!, record: await backend.getJson<StoredRecord>(key) }))));
  // The key decides plan and snapshot: that is where fetchSnapshot looks (and where it re-checks the record).
  return found.flatMap(({ key, id, record }) => (record ? [{ storage: name, key, record: { ...record, ...id } }] : []));
}

function parseRecordKey(key: string): { plan: string; snapshot: string } | null {
  const m = /^([^/]+)\/([^/]+)\.json$/.exec(key);
  return m && SAFE_NAME.test(m[1]!) && parseSnapshotName(m[2]!) ? { plan: m[1]!, snapshot: m[2]! } : null;
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
