// The per-file half of finalizeSnapshot, in a process of its own (shared/apart.ts): list the snapshot, refuse
// deny-listed files, write media.json, hash what the hash cache does not know, write manifest.sha256, rename
// `<snapshot>.partial` into place and save the next run's cache. Its strings and arrays grow with the number of
// files (16 000 files: ~50 MiB of garbage), which the worker's heap would keep as its high-water mark; here they
// leave with the process, so the worker's peak does not follow the snapshot's size.
import { createHash } from 'node:crypto';
import { chmod, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runApart, throttled, type ApartTask } from '../shared/apart';
import { LifeboatError } from '../shared/errors';
import { exists } from '../shared/files';
import type { ManifestSummary } from '../shared/types';
import { isDenied } from './deny-list';
import { hashManifest, listFiles, parseManifest } from './manifest';
import { loadHashCache, writeHashCache } from './manifest-reuse';
import { addIndexToListing, MEDIA_INDEX, mediaPaths, writeMediaIndex } from './media-index';

export interface FinalizeRequest {
  backupRoot: string;
  plan: string;
  snapshot: string;
  /** `<snapshot>.partial`, with metadata.yml written, and the finished directory it becomes. */
  workDir: string;
  dir: string;
  denyList: string[];
  /** Snapshot-relative directories of media artifacts (mediaDirs). */
  mediaDirs: string[];
}

/** Progress as the step reports it: heartbeat details, merged into the last ones (undefined clears a field). */
export type FinalizeEvent = Record<string, unknown>;

export function finalizeApart(request: FinalizeRequest, opts: { signal?: AbortSignal; onProgress?: (e: FinalizeEvent) => void } = {}): Promise<ManifestSummary> {
  return runApart<ManifestSummary>('finalize', request, { ...(opts.signal ? { signal: opts.signal } : {}), onEvent: (e) => opts.onProgress?.(e as FinalizeEvent) });
}

/** The child's side. Counts go at most four times a second (reading none is the point of an unchanged run). */
export const finalizeTask: ApartTask = async (request, { signal, emit }) => {
  const counts = throttled<FinalizeEvent>(emit, () => 'count');
  // Anything but a count (a phase, the final numbers, a warning) goes at once, after the count held back.
  const progress = (e: FinalizeEvent) => {
    counts.flush();
    emit(e);
  };
  try {
    return await finalizeSnapshotDir(request as FinalizeRequest, { signal, progress, counted: counts });
  } finally {
    counts.flush();
  }
};

/** Idempotent: a directory an earlier attempt finished is summarized, not redone. */
export async function finalizeSnapshotDir(
  r: FinalizeRequest,
  { signal, progress, counted = progress }: { signal: AbortSignal; progress: (e: FinalizeEvent) => void; counted?: (e: FinalizeEvent) => void },
): Promise<ManifestSummary> {
  if (await exists(r.dir)) return summarizeFinished(r.dir);
  const listed = await listFiles(r.workDir, { skip: (rel) => rel === 'manifest.sha256' || rel === MEDIA_INDEX, signal });
  // Checked on the listing, before any hashing: a reused hash must not let a deny-listed file through either.
  const denied = listed.files.filter((f) => isDenied(f.path, r.denyList)).map((f) => f.path);
  if (denied.length > 0) {
    await rm(r.workDir, { recursive: true, force: true });
    throw new LifeboatError('DenyListViolation', `deny-listed files reached the snapshot and it was discarded: ${denied.join(', ')}`);
  }
  // Media files leave the archive (media-index.ts); media.json says which, and the manifest covers it.
  if (r.mediaDirs.length > 0) {
    await writeMediaIndex(r.workDir, mediaPaths(listed.files, r.mediaDirs));
    await addIndexToListing(r.workDir, listed.files);
  }
  // Files unchanged since the last finalize keep their hash: an unchanged re-backup reads no file again.
  const previous = await loadHashCache(r.backupRoot, r.plan);
  // What will be read: files whose identity differs from the cached one (hashManifest's own reuse rule).
  const toHash = listed.files.filter((f) => previous.cache?.entries.get(f.path)?.identity !== f.identity).reduce((n, f) => n + f.size, 0);
  progress({ hash_cache: previous.reason, phase: 'hash', bytesDone: undefined, bytesTotal: toHash });
  const manifest = await hashManifest(r.workDir, listed, {
    ...(previous.cache ? { reuse: previous.cache.entries } : {}),
    onProgress: (files, bytes) => counted({ hashed_files: files, bytesDone: bytes }),
    signal,
  });
  progress({ hashed_files: manifest.hashed, reused_files: manifest.reused });
  await writeFile(join(r.workDir, 'manifest.sha256'), manifest.text, { mode: 0o600 });
  await chmod(r.workDir, 0o700);
  await rename(r.workDir, r.dir);
  // After the rename: a crash before it leaves the previous cache, which is still true (identities, not names).
  await writeHashCache(r.backupRoot, r.plan, r.snapshot, manifest).catch((err: Error) => progress({ hash_cache: `not saved (the next run hashes every file): ${err.message}` }));
  const bytes = manifest.entries.reduce((n, e) => n + e.size, 0);
  return { ...summarize(manifest.entries.length, bytes, manifest.text), hashed_files: manifest.hashed, reused_files: manifest.reused };
}

async function summarizeFinished(dir: string): Promise<ManifestSummary> {
  const text = await readFile(join(dir, 'manifest.sha256'), 'utf8');
  const entries = parseManifest(text);
  let bytes = 0;
  for (const e of entries) bytes += (await stat(join(dir, e.path))).size;
  return summarize(entries.length, bytes, text);
}

function summarize(files: number, bytes: number, text: string): ManifestSummary {
  return { files, bytes, sha256: createHash('sha256').update(text).digest('hex') };
}
