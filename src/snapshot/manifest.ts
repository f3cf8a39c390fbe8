// manifest.sha256: per-file SHA-256 sums in GNU coreutils format, so a
// snapshot can be verified with nothing but `sha256sum -c manifest.sha256`.
import type { BigIntStats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { digestOrThrow, hashFiles, sha256File } from './hash-files';
import { DIRECTORY, FILE, SYMLINK, identityOf, walkTree } from './walk-tree';

export interface ManifestEntry {
  path: string;
  sha256: string;
}

export interface BuildManifestOptions {
  /** Consulted for every entry; returning true for a directory prunes it. */
  skip?: (relPath: string) => boolean;
  /** Files and bytes hashed so far (reused files are not read, so not counted). */
  onProgress?: (files: number, bytes: number) => void;
  signal?: AbortSignal;
  /** Earlier hashes to keep for files whose identity is unchanged (see fileIdentity). */
  reuse?: ReusableHashes;
}

export interface BuiltManifest {
  entries: Array<ManifestEntry & { size: number }>;
  symlinks: number;
  text: string;
  /**
   * Per entry, the identity its hash belongs to (see fileIdentity); undefined where the file was modified so recently
   * that a later write could keep its mtime (such an entry must not be reused).
   */
  identities: Array<string | undefined>;
  /** Files read and hashed, and files whose hash came from `reuse`. */
  hashed: number;
  reused: number;
}

/** A regular file found by listFiles. */
export interface ListedFile {
  path: string;
  size: number;
  identity: string;
  /** Modified within RACY_NS of the listing: its identity may not change with its next write. */
  racy: boolean;
}

/** Hashes known from an earlier manifest, by path, with the identity of the file they were computed from. */
export type ReusableHashes = ReadonlyMap<string, { identity: string; sha256: string }>;

export type VerifyProblem = { path: string; problem: 'missing' | 'checksum' };

// GNU escapes these in names (coreutils >= 9 also escapes CR, because -c
// strips a trailing CR to tolerate CRLF manifests) and flags the line with
// a leading backslash.
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r' };
const UNESCAPES: Record<string, string> = { '\\': '\\', n: '\n', r: '\r' };

/** One `<hex>  <path>` line (no newline), escaped like GNU sha256sum. */
export function manifestLine(sha256hex: string, relPath: string): string {
  if (!/[\\\n\r]/.test(relPath)) return `${sha256hex}  ${relPath}`;
  return `\\${sha256hex}  ${relPath.replace(/[\\\n\r]/g, (c) => ESCAPES[c] ?? c)}`;
}

/** Parse manifest text; throws naming the 1-based line of the first bad line. */
export function parseManifest(text: string): ManifestEntry[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop(); // final newline
  return lines.map((line, i) => {
    const entry = parseManifestLine(line);
    if (!entry) throw new Error(`manifest line ${i + 1}: malformed checksum line`);
    return entry;
  });
}

/** One line of manifest text (without its newline), or null when it is not a checksum line. */
export function parseManifestLine(raw: string): ManifestEntry | null {
  const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw; // CRLF, as GNU -c
  // `*` is the binary-mode flag GNU may write; it does not change the hash.
  const m = /^(\\?)([0-9a-fA-F]{64}) [ *]([\s\S]+)$/.exec(line);
  if (!m) return null;
  const [, escaped, hex = '', name = ''] = m;
  const path = escaped ? unescapeName(name) : name;
  return path === null ? null : { path, sha256: hex.toLowerCase() };
}

function unescapeName(name: string): string | null {
  let ok = true;
  const out = name.replace(/\\(.?)/g, (_, c: string) => {
    const u = UNESCAPES[c];
    if (u === undefined) ok = false;
    return u ?? '';
  });
  return ok ? out : null;
}

/** SHA-256 and size of one file, read off the main thread (see hash-files.ts). */
export async function hashFile(path: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
  return sha256File(path, signal ? { signal } : {});
}

/**
 * What must stay the same for an earlier hash of a file to still hold: device, inode, size and mtime (ns). A snapshot's
 * trees are hard links into the rsync mirror, and rsync writes a changed file as a new inode, so an unchanged file
 * keeps all four; a write in place changes the mtime. The ctime cannot take part: every hard link made (each
 * snapshot's `cp -l`) or removed (local pruning) changes it, so it differs on every run.
 */
export function fileIdentity(st: BigIntStats): string {
  return identityOf(st.dev, st.ino, st.size, st.mtimeNs);
}

/** A file whose mtime is this close to its listing may be written again with the same mtime (timestamp granularity). */
const RACY_NS = 2_000_000_000n;

/**
 * Every regular file under `root`, sorted by UTF-8 byte order (reproducible regardless of readdir order or locale).
 * Symlinks are counted but never followed (they could point outside the snapshot); sockets, fifos and devices are
 * ignored.
 */
export async function listFiles(root: string, opts: Pick<BuildManifestOptions, 'skip' | 'signal'> = {}): Promise<{ files: ListedFile[]; symlinks: number }> {
  const racyFromNs = BigInt(Date.now()) * 1_000_000n - RACY_NS;
  const tree = await walkTree(root, { racyFromNs, ...(opts.signal ? { signal: opts.signal } : {}) });
  const files: ListedFile[] = [];
  let symlinks = 0;
  const pruned = new Set<string>(); // directories skipped, with everything below them
  tree.paths.forEach((path, i) => {
    const kind = tree.kinds[i];
    const slash = path.lastIndexOf('/');
    if ((slash > 0 && pruned.has(path.slice(0, slash))) || opts.skip?.(path)) {
      if (kind === DIRECTORY) pruned.add(path);
    } else if (kind === FILE) files.push({ path, size: tree.sizes[i]!, identity: tree.identities[i]!, racy: tree.racy[i]! });
    else if (kind === SYMLINK) symlinks++;
  });
  return { files, symlinks };
}

/**
 * The manifest of listed files: a file whose identity matches its entry in `reuse` keeps that hash, the rest are read
 * and hashed (all cores). `onProgress` counts the files and bytes hashed.
 */
export async function hashManifest(
  root: string,
  listed: { files: readonly ListedFile[]; symlinks: number },
  opts: Pick<BuildManifestOptions, 'reuse' | 'onProgress' | 'signal'> = {},
): Promise<BuiltManifest> {
  const { files } = listed;
  const sums: string[] = new Array(files.length);
  const sizes: number[] = files.map((f) => f.size);
  const toHash: number[] = [];
  files.forEach((f, i) => {
    const known = opts.reuse?.get(f.path);
    if (known && known.identity === f.identity) sums[i] = known.sha256;
    else toHash.push(i);
  });
  const work = toHash.map((i) => ({ path: join(root, files[i]!.path), size: files[i]!.size }));
  const digests = await hashFiles(work, { ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
  toHash.forEach((i, k) => {
    const { sha256, size } = digestOrThrow(digests[k]!, work[k]!.path);
    sums[i] = sha256;
    sizes[i] = size;
  });
  const entries = files.map((f, i) => ({ path: f.path, sha256: sums[i]!, size: sizes[i]! }));
  return {
    entries,
    symlinks: listed.symlinks,
    text: entries.map((e) => manifestLine(e.sha256, e.path) + '\n').join(''),
    identities: files.map((f) => (f.racy ? undefined : f.identity)),
    hashed: toHash.length,
    reused: files.length - toHash.length,
  };
}

/** listFiles, then hashManifest. */
export async function buildManifest(root: string, opts: BuildManifestOptions = {}): Promise<BuiltManifest> {
  return hashManifest(root, await listFiles(root, opts), opts);
}

/**
 * Re-hash the listed files under `root`. Anything that is not a regular
 * file any more (gone, replaced by a symlink or directory) is 'missing'.
 * Paths that could escape `root` are rejected outright.
 */
export async function verifyManifest(
  root: string,
  entries: readonly ManifestEntry[],
  signal?: AbortSignal,
  /** Bytes hashed so far, of all present files' bytes. */
  onProgress?: (bytesDone: number, bytesTotal: number) => void,
): Promise<VerifyProblem[]> {
  for (const { path } of entries) assertContained(path);
  const problems = new Map<number, VerifyProblem['problem']>();
  const present: Array<{ index: number; path: string; size: number }> = [];
  // lstat in slices of concurrent calls: one awaited call per file costs more than the thread pool's work.
  for (let from = 0; from < entries.length; from += 256) {
    signal?.throwIfAborted();
    const slice = entries.slice(from, from + 256);
    const sizes = await Promise.all(slice.map(({ path }) => regularFileSize(join(root, path))));
    sizes.forEach((size, k) => {
      if (size === undefined) problems.set(from + k, 'missing');
      else present.push({ index: from + k, path: join(root, slice[k]!.path), size });
    });
  }
  const total = present.reduce((n, f) => n + f.size, 0);
  const digests = await hashFiles(present, { ...(signal ? { signal } : {}), ...(onProgress ? { onProgress: (_files: number, bytes: number) => onProgress(bytes, total) } : {}) });
  present.forEach(({ index, path }, k) => {
    const d = digests[k]!;
    if (!('sha256' in d) && GONE.has(d.error.code ?? '')) problems.set(index, 'missing'); // replaced since the lstat
    else if (digestOrThrow(d, path).sha256 !== entries[index]!.sha256.toLowerCase()) problems.set(index, 'checksum');
  });
  return [...problems.entries()].sort(([a], [b]) => a - b).map(([index, problem]) => ({ path: entries[index]!.path, problem }));
}

/** verifyManifest's answer from hashes already taken (an archive's files as they were extracted), by path. */
export function checkDigests(entries: readonly ManifestEntry[], digests: ReadonlyMap<string, { sha256: string }>): VerifyProblem[] {
  const problems: VerifyProblem[] = [];
  for (const { path, sha256 } of entries) {
    assertContained(path);
    const d = digests.get(path);
    if (!d) problems.push({ path, problem: 'missing' });
    else if (d.sha256 !== sha256.toLowerCase()) problems.push({ path, problem: 'checksum' });
  }
  return problems;
}

/** Read errors that mean "not a regular file at this path". */
const GONE = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'ENOTREG']);

function assertContained(path: string): void {
  const segments = path.split('/');
  if (path.startsWith('/') || segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw new Error(`manifest path escapes the snapshot root: ${JSON.stringify(path)}`);
  }
}

/** The size of a regular file; undefined when the path is missing or not a regular file. */
async function regularFileSize(path: string): Promise<number | undefined> {
  try {
    const st = await lstat(path);
    return st.isFile() ? st.size : undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}
