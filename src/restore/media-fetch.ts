// A snapshot's media files back from the storage's shared objects, into the extracted tree (see
// snapshot/media-index.ts). Which files, and their hashes, come from media.json and the manifest, both already checked
// against the signed record; object keys are derived from those hashes. Every object is hashed (after decryption)
// before it is moved into place; nothing is written outside the tree and nothing already there is replaced.
import { chmod, chown, lstat, mkdtemp, readFile, rename, rm, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { allOrNothing, watchGrowth } from '../shared/bounded';
import { LifeboatError } from '../shared/errors';
import type { StepProgress } from '../shared/progress';
import type { MediaSummary } from '../shared/types';
import { decryptArchive, type IdentitySource } from '../snapshot/encryption';
import { sha256File } from '../snapshot/hash-files';
import type { ManifestEntry } from '../snapshot/manifest';
import { MEDIA_INDEX, mediaEntries, mediaObjectName, mediaPrefix, parseMediaIndex, type MediaFile } from '../snapshot/media-index';
import { TransferProgress } from '../storage/media-objects';
import type { StorageBackend } from '../storage/types';

const PARALLEL_DOWNLOADS = 4;

export interface MediaFetch {
  storage: StorageBackend;
  plan: string;
  snapshot: string;
  media: MediaSummary;
  /** The extracted snapshot root. */
  root: string;
  /** The manifest, already checked against the record. */
  entries: readonly ManifestEntry[];
  /** Hashes of the files extracted so far; the media files' are added. */
  digests: Map<string, { sha256: string }>;
  identity?: IdentitySource;
  /** Only the media files this accepts are fetched (a selective restore). */
  select?: (path: string) => boolean;
  signal?: AbortSignal;
  report?: (p: StepProgress) => void;
}

/** Fetches the selected media files; returns the paths of those left out by the selection. */
export async function fetchMedia(opts: MediaFetch): Promise<Set<string>> {
  const { media, root, signal } = opts;
  if (media.encrypted_to && !opts.identity) {
    throw new LifeboatError('DecryptFailed', `the media files of ${opts.snapshot} are encrypted with age and no identity is configured (archive.encryption.age.identity, or --identity FILE)`);
  }
  const files = await indexedFiles(opts);
  const chosen: typeof files = [];
  const skipped = new Set<string>();
  for (const f of files) {
    if (!opts.select || opts.select(f.path)) chosen.push(f);
    else skipped.add(f.path);
  }
  // Moving files in changes their directories' mtimes, which tar had set from the archive: put them back after.
  const dirs = await directoryTimes(root, chosen);
  const scratch = await mkdtemp(join(dirname(root), '.media-'));
  // bytesDone counts every byte received, decrypted and hashed: it moves while one big object is on its way.
  const progress = new TransferProgress(-1, (p) => opts.report?.({ phase: 'media', bytesDone: p.working }));
  try {
    await allOrNothing([...chosen.entries()], PARALLEL_DOWNLOADS, signal, async ([i, f], each) => {
      const key = mediaPrefix(opts.plan) + mediaObjectName(f.sha256, media.encrypted_to);
      progress.done(await fetchOne({ ...opts, signal: each }, f, key, join(scratch, String(i)), progress));
      opts.digests.set(f.path, { sha256: f.sha256 });
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  for (const [dir, t] of dirs) await utimes(dir, t.atime, t.mtime);
  return skipped;
}

/** The directories the chosen files go into, with the times the archive gave them. */
async function directoryTimes(root: string, files: readonly MediaFile[]): Promise<Map<string, { atime: Date; mtime: Date }>> {
  const out = new Map<string, { atime: Date; mtime: Date }>();
  for (const f of files) {
    const dir = dirname(join(root, f.path));
    if (out.has(dir)) continue;
    const st = await lstat(dir).catch(() => null);
    if (st?.isDirectory()) out.set(dir, { atime: st.atime, mtime: st.mtime });
  }
  return out;
}

/** media.json as extracted, once its hash equals the manifest's line for it. */
async function indexedFiles(opts: MediaFetch): Promise<Array<MediaFile & { sha256: string }>> {
  const line = opts.entries.find((e) => e.path === MEDIA_INDEX);
  if (!line || opts.digests.get(MEDIA_INDEX)?.sha256 !== line.sha256) {
    throw new LifeboatError('IntegrityCheckFailed', `snapshot ${opts.snapshot} has media objects but its ${MEDIA_INDEX} is missing or differs from the manifest`);
  }
  try {
    return mediaEntries(parseMediaIndex(await readFile(join(opts.root, MEDIA_INDEX), 'utf8')), opts.entries);
  } catch (err) {
    throw new LifeboatError('IntegrityCheckFailed', `snapshot ${opts.snapshot}: ${(err as Error).message}`);
  }
}

/** One object → scratch → (decrypted) → hashed → its place in the tree with its mode, owner and mtime. */
async function fetchOne(opts: MediaFetch, f: MediaFile & { sha256: string }, key: string, tmp: string, progress: TransferProgress): Promise<number> {
  const { storage, signal } = opts;
  const dest = join(opts.root, f.path);
  await assertFreePath(opts.root, f.path, opts.snapshot);
  try {
    await storage.get(key, tmp, { ...(signal ? { signal } : {}), onProgress: progress.moving() });
  } catch (err) {
    if (!signal?.aborted && !(await storage.stat(key).catch(() => undefined))) {
      throw new LifeboatError('IntegrityCheckFailed', `media object ${storage.location(key)} of ${f.path} is missing`);
    }
    throw err;
  }
  let plain = tmp;
  if (opts.media.encrypted_to) {
    plain = `${tmp}.plain`;
    const stopWatch = watchGrowth(`${plain}.partial`, progress.moving());
    try {
      await decryptArchive(tmp, plain, opts.identity, signal ? { signal } : {});
    } finally {
      stopWatch();
      await rm(tmp, { force: true }); // ciphertext and plaintext of every object at once would need twice the space
    }
  }
  const got = await sha256File(plain, { ...(signal ? { signal } : {}), onBytes: progress.moving() });
  if (got.sha256 !== f.sha256) {
    throw new LifeboatError('ChecksumMismatch', `media object ${storage.location(key)} holds SHA-256 ${got.sha256}, not ${f.sha256} (${f.path})`, { files: [`${f.path} (checksum differs)`] });
  }
  // Owners only as root (as tar does); the mode after chown, which clears set-id bits. utimes takes a double:
  // the mtime comes back to the microsecond.
  if (process.getuid?.() === 0) await chown(plain, f.uid, f.gid);
  await chmod(plain, f.mode);
  await utimes(plain, Number(f.mtime), Number(f.mtime));
  await rename(plain, dest);
  return got.size;
}

/** The parent directories must be real directories inside the root (the archive made them), the name still free. */
async function assertFreePath(root: string, path: string, snapshot: string): Promise<void> {
  const parts = path.split('/');
  for (let i = 1; i < parts.length; i++) {
    const st = await lstat(join(root, ...parts.slice(0, i))).catch(() => null);
    if (!st?.isDirectory()) throw new LifeboatError('IntegrityCheckFailed', `snapshot ${snapshot}: media file ${path} has no directory ${parts.slice(0, i).join('/')} in the archive`);
  }
  if (await lstat(join(root, path)).catch(() => null)) throw new LifeboatError('IntegrityCheckFailed', `snapshot ${snapshot}: media file ${path} is also in the archive`);
}
