// Media objects in an archive storage: each media file once, as `.media/<plan>/<sha256>[.age]` (see
// snapshot/media-index.ts). A run uploads only the objects the storage lacks, then `<plan>/<snapshot>.media-refs.json`
// (the names it references, whose digest the signed record holds); retention deletes only objects no kept snapshot
// references. Object names are derived from manifest hashes and checked against one pattern, never taken as paths.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { allOrNothing, watchGrowth } from '../shared/bounded';
import { LifeboatError } from '../shared/errors';
import type { MediaSummary } from '../shared/types';
import { encryptFile } from '../snapshot/encryption';
import { sha256File } from '../snapshot/hash-files';
import { parseManifest } from '../snapshot/manifest';
import { mediaEntries, mediaObjectName, mediaPrefix, parseMediaObjectName, readMediaIndex, recipientsId } from '../snapshot/media-index';
import type { StorageBackend } from './types';

/** Objects sent at once: S3 round trips overlap; each is already streamed (and multipart when big). */
const PARALLEL_UPLOADS = 4;

export function mediaRefsKey(plan: string, snapshot: string): string {
  return `${plan}/${snapshot}.media-refs.json`;
}

/** What the record signs about the references: independent of how the JSON object is formatted. */
export function refsDigest(names: readonly string[]): string {
  return createHash('sha256').update([...names].sort().join('\n')).digest('hex');
}

export interface MediaUploadResult {
  /** What the record holds. */
  summary: MediaSummary;
  /** Objects this run sent (the rest were in storage already). */
  uploaded: number;
  bytes_sent: number;
}

/**
 * Sends the snapshot directory's media files the storage does not hold yet, then the snapshot's reference list.
 * Undefined when the snapshot has no media.json (no media artifact). Ciphertext waits in `<scratch>/.media-<snapshot>`
 * while it is sent (emptied at the start, so an interrupted attempt leaves nothing for long).
 */
export async function uploadMedia(
  backend: StorageBackend,
  opts: { plan: string; snapshot: string; dir: string; scratch: string; recipients?: string[]; signal?: AbortSignal; onProgress?: (p: MediaProgress) => void },
): Promise<MediaUploadResult | undefined> {
  const index = await readMediaIndex(opts.dir);
  if (!index) return undefined;
  const manifest = parseManifest(await readFile(join(opts.dir, 'manifest.sha256'), 'utf8'));
  const entries = await Promise.all(mediaEntries(index, manifest).map(async (e) => ({ ...e, size: (await stat(join(opts.dir, e.path))).size })));
  const encryptedTo = opts.recipients?.length ? recipientsId(opts.recipients) : undefined;
  const wanted = new Map<string, (typeof entries)[number]>();
  for (const e of entries) {
    const name = mediaObjectName(e.sha256, encryptedTo);
    if (!wanted.has(name)) wanted.set(name, e);
  }
  const prefix = mediaPrefix(opts.plan);
  const present = new Set((await backend.list(prefix)).map((o) => o.key.slice(prefix.length)));
  const missing = [...wanted].filter(([name]) => !present.has(name)).map(([name, e]) => ({ name, ...e }));
  const progress = new TransferProgress(missing.reduce((n, m) => n + m.size, 0), opts.onProgress);
  const scratch = join(opts.scratch, `.media-${opts.snapshot}`);
  await rm(scratch, { recursive: true, force: true });
  if (encryptedTo) await mkdir(scratch, { recursive: true, mode: 0o700 });
  let sent = 0;
  try {
    await allOrNothing(missing, PARALLEL_UPLOADS, opts.signal, async (m, signal) => {
      const file = join(opts.dir, m.path);
      const put = encryptedTo ? await putEncrypted(backend, prefix + m.name, { file, sha256: m.sha256 }, join(scratch, m.name), opts.recipients!, signal, progress) : await backend.put(prefix + m.name, file, { sha256: m.sha256, size: m.size, signal, onProgress: progress.moving() });
      sent += put.bytesSent;
      progress.done(m.size);
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  const names = [...wanted.keys()].sort();
  await backend.putJson(mediaRefsKey(opts.plan, opts.snapshot), { objects: names });
  const summary: MediaSummary = {
    files: entries.length,
    bytes: entries.reduce((n, e) => n + e.size, 0),
    objects: names.length,
    refs_sha256: refsDigest(names),
    ...(encryptedTo ? { encrypted_to: encryptedTo } : {}),
  };
  return { summary, uploaded: missing.length, bytes_sent: sent };
}

/**
 * age ciphertext is different on every run, so the stored object can only be checked against the ciphertext sent:
 * the plaintext is checked against the manifest first, or a file changed since finalize would be stored for good
 * under a hash it does not have.
 */
async function putEncrypted(backend: StorageBackend, key: string, plain: { file: string; sha256: string }, tmp: string, recipients: string[], signal: AbortSignal, progress: TransferProgress) {
  const actual = await sha256File(plain.file, { signal, onBytes: progress.moving() });
  if (actual.sha256 !== plain.sha256) {
    throw new LifeboatError('IntegrityCheckFailed', `${plain.file} changed after the snapshot was finalized (SHA-256 ${actual.sha256}, manifest ${plain.sha256})`);
  }
  const stopWatch = watchGrowth(`${tmp}.partial`, progress.moving());
  try {
    await encryptFile(plain.file, tmp, recipients, { signal });
  } finally {
    stopWatch();
  }
  try {
    const { sha256, size } = await sha256File(tmp, { signal, onBytes: progress.moving() });
    return await backend.put(key, tmp, { sha256, size, signal, onProgress: progress.moving() });
  } finally {
    await rm(tmp, { force: true });
  }
}

export interface MediaProgress {
  /** Bytes of media files done (sent, or fetched and checked), of the total to do. */
  bytesDone: number;
  bytesTotal: number;
  /** Grows with every byte hashed, encrypted, sent or received: what tells a slow transfer from a stalled one. */
  working: number;
}

/** Progress over many transfers, each with several passes (hash, age, send) that all count as work. */
export class TransferProgress {
  private doneBytes = 0;
  private workingBytes = 0;
  constructor(
    private readonly total: number,
    private readonly report?: (p: MediaProgress) => void,
  ) {
    this.emit();
  }

  /** A callback for one pass over one object: it reports growing byte counts, each counting once. */
  moving(): (bytes: number) => void {
    let last = 0;
    return (bytes) => {
      this.workingBytes += Math.max(0, bytes - last);
      last = Math.max(last, bytes);
      this.emit();
    };
  }

  done(bytes: number): void {
    this.doneBytes += bytes;
    this.emit();
  }

  private emit(): void {
    this.report?.({ bytesDone: this.doneBytes, bytesTotal: this.total, working: this.workingBytes });
  }
}

/** `"<64 hex>.<16 hex>.age",` with room to spare: a refs list's size per object, at most. */
const MAX_NAME_BYTES = 96;

/** The names a kept snapshot references, checked against its record's digest. */
async function referencedBy(backend: StorageBackend, plan: string, snapshot: string, media: MediaSummary): Promise<string[]> {
  const key = mediaRefsKey(plan, snapshot);
  // Read into memory, so bounded first: the signed object count allows so many names of at most MAX_NAME_BYTES.
  const size = (await backend.stat(key))?.size;
  if (size === undefined) throw new LifeboatError('IntegrityCheckFailed', `${backend.location(key)} is missing`);
  const limit = 1024 + media.objects * MAX_NAME_BYTES;
  if (size > limit) throw new LifeboatError('IntegrityCheckFailed', `${backend.location(key)} is ${size} bytes, more than ${media.objects} object names can take (${limit})`);
  const refs = await backend.getJson<{ objects?: unknown }>(key);
  if (!refs) throw new LifeboatError('IntegrityCheckFailed', `${backend.location(key)} is missing`);
  const names = refs.objects;
  if (!Array.isArray(names) || !names.every((n): n is string => typeof n === 'string' && parseMediaObjectName(n) !== undefined)) {
    throw new LifeboatError('IntegrityCheckFailed', `${backend.location(key)} is not a list of media object names`);
  }
  if (refsDigest(names) !== media.refs_sha256) throw new LifeboatError('IntegrityCheckFailed', `${backend.location(key)} differs from what the record of ${snapshot} says (refs_sha256)`);
  return names;
}

/**
 * After retention: deletes the media objects no kept snapshot references. Any doubt keeps everything: a record
 * retention ignored (forged, unsigned) or a reference list that is missing or differs stops the collection.
 */
export async function collectMedia(
  backend: StorageBackend,
  plan: string,
  kept: ReadonlyArray<{ record: { snapshot: string; media?: MediaSummary } }>,
  ignored: number,
): Promise<{ deleted: number } | { skipped: string }> {
  const prefix = mediaPrefix(plan);
  const stored = (await backend.list(prefix)).map((o) => o.key.slice(prefix.length)).filter((n) => parseMediaObjectName(n));
  if (stored.length === 0) return { deleted: 0 };
  if (ignored > 0) return { skipped: `${ignored} record(s) could not be trusted and may reference media objects` };
  const referenced = new Set<string>();
  try {
    for (const { record } of kept) if (record.media) for (const n of await referencedBy(backend, plan, record.snapshot, record.media)) referenced.add(n);
  } catch (err) {
    if (err instanceof LifeboatError && err.code === 'IntegrityCheckFailed') return { skipped: err.message };
    throw err;
  }
  const garbage = stored.filter((n) => !referenced.has(n));
  const limit = pLimit(8);
  await Promise.all(garbage.map((n) => limit(() => backend.delete(prefix + n))));
  return { deleted: garbage.length };
}
