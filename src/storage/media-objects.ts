// Media objects in an archive storage: each media file once, as `.media/<plan>/<sha256>[.age]` (see
// snapshot/media-index.ts). A run uploads only the objects the storage lacks, then `<plan>/<snapshot>.media-refs.json`
// (the names it references, whose digest the signed record holds); retention deletes only objects no kept snapshot
// references. Object names are derived from manifest hashes and checked against one pattern, never taken as paths.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { LifeboatError } from '../shared/errors';
import type { MediaSummary } from '../shared/types';
import { encryptFile } from '../snapshot/encryption';
import { sha256File } from '../snapshot/hash-files';
import { parseManifest } from '../snapshot/manifest';
import { MEDIA_INDEX, mediaEntries, mediaObjectName, mediaPrefix, parseMediaIndex, parseMediaObjectName, recipientsId } from '../snapshot/media-index';
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

export interface MediaUploadResult extends MediaSummary {
  /** Objects this run sent (the rest were in storage already). */
  uploaded: number;
  bytes_sent: number;
}

/**
 * Sends the snapshot directory's media files the storage does not hold yet, then the snapshot's reference list.
 * Undefined when the snapshot has no media.json (no media artifact). `scratch` holds ciphertext while it is sent.
 */
export async function uploadMedia(
  backend: StorageBackend,
  opts: { plan: string; snapshot: string; dir: string; scratch: string; recipients?: string[]; signal?: AbortSignal; onProgress?: (bytesDone: number, bytesTotal: number) => void },
): Promise<MediaUploadResult | undefined> {
  const indexText = await readFile(join(opts.dir, MEDIA_INDEX), 'utf8').catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
  if (indexText === undefined) return undefined;
  const entries = mediaEntries(parseMediaIndex(indexText), parseManifest(await readFile(join(opts.dir, 'manifest.sha256'), 'utf8')));
  const encryptedTo = opts.recipients?.length ? recipientsId(opts.recipients) : undefined;
  const wanted = new Map<string, { path: string; sha256: string }>();
  for (const e of entries) if (!wanted.has(mediaObjectName(e.sha256, encryptedTo))) wanted.set(mediaObjectName(e.sha256, encryptedTo), e);
  const prefix = mediaPrefix(opts.plan);
  const present = new Set((await backend.list(prefix)).map((o) => o.key.slice(prefix.length)));
  const missing = await Promise.all([...wanted].filter(([name]) => !present.has(name)).map(async ([name, e]) => ({ name, ...e, size: (await stat(join(opts.dir, e.path))).size })));
  const total = missing.reduce((n, m) => n + m.size, 0);
  let done = 0;
  let sent = 0;
  const limit = pLimit(PARALLEL_UPLOADS);
  const scratch = encryptedTo ? await mkdtemp(join(opts.scratch, '.media-')) : undefined;
  try {
    await Promise.all(
      missing.map((m) =>
        limit(async () => {
          const file = join(opts.dir, m.path);
          const put = scratch ? await putEncrypted(backend, prefix + m.name, file, join(scratch, m.name), opts.recipients!, opts.signal) : await backend.put(prefix + m.name, file, { sha256: m.sha256, size: m.size, ...(opts.signal ? { signal: opts.signal } : {}) });
          sent += put.bytesSent;
          opts.onProgress?.((done += m.size), total);
        }),
      ),
    );
  } finally {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
  const names = [...wanted.keys()].sort();
  await backend.putJson(mediaRefsKey(opts.plan, opts.snapshot), { objects: names });
  const bytes = await entries.reduce(async (n, e) => (await n) + (await stat(join(opts.dir, e.path))).size, Promise.resolve(0));
  return { files: entries.length, bytes, objects: names.length, refs_sha256: refsDigest(names), ...(encryptedTo ? { encrypted_to: encryptedTo } : {}), uploaded: missing.length, bytes_sent: sent };
}

/** age ciphertext is different on every run: the stored object is checked against the ciphertext sent. */
async function putEncrypted(backend: StorageBackend, key: string, file: string, tmp: string, recipients: string[], signal?: AbortSignal) {
  await encryptFile(file, tmp, recipients, signal ? { signal } : {});
  try {
    const { sha256, size } = await sha256File(tmp, signal ? { signal } : {});
    return await backend.put(key, tmp, { sha256, size, ...(signal ? { signal } : {}) });
  } finally {
    await rm(tmp, { force: true });
  }
}

/** The names a kept snapshot references, checked against its record's digest. */
async function referencedBy(backend: StorageBackend, plan: string, snapshot: string, media: MediaSummary): Promise<string[]> {
  const key = mediaRefsKey(plan, snapshot);
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
