// manifest.sha256: per-file SHA-256 sums in GNU coreutils format, so a
// snapshot can be verified with nothing but `sha256sum -c manifest.sha256`.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface ManifestEntry {
  path: string;
  sha256: string;
}

export interface BuildManifestOptions {
  /** Consulted for every entry; returning true for a directory prunes it. */
  skip?: (relPath: string) => boolean;
  onProgress?: (files: number, bytes: number) => void;
  signal?: AbortSignal;
}

export interface BuiltManifest {
  entries: Array<ManifestEntry & { size: number }>;
  symlinks: number;
  text: string;
}

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
    const entry = parseLine(line);
    if (!entry) throw new Error(`manifest line ${i + 1}: malformed checksum line`);
    return entry;
  });
}

function parseLine(raw: string): ManifestEntry | null {
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

/** Stream a file through SHA-256 in constant memory. */
export async function hashFile(path: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
  signal?.throwIfAborted();
  const hash = createHash('sha256');
  let size = 0;
  const stream = createReadStream(path, { signal, highWaterMark: 1 << 20 });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}

/**
 * Hash every regular file under `root`. Symlinks are counted but never
 * followed (they could point outside the snapshot); sockets, fifos and
 * devices are ignored. Entries are sorted by UTF-8 byte order so the text
 * is reproducible regardless of readdir order or locale.
 */
export async function buildManifest(root: string, opts: BuildManifestOptions = {}): Promise<BuiltManifest> {
  const { signal, onProgress } = opts;
  const found = { files: [] as string[], symlinks: 0 };
  await walk(root, '', opts, found);
  found.files.sort(byteOrder);

  const entries: BuiltManifest['entries'] = [];
  let bytes = 0;
  for (const path of found.files) {
    signal?.throwIfAborted();
    const { sha256, size } = await hashFile(join(root, path), signal);
    entries.push({ path, sha256, size });
    bytes += size;
    onProgress?.(entries.length, bytes);
  }
  const text = entries.map((e) => manifestLine(e.sha256, e.path) + '\n').join('');
  return { entries, symlinks: found.symlinks, text };
}

async function walk(
  root: string,
  rel: string,
  opts: BuildManifestOptions,
  found: { files: string[]; symlinks: number },
): Promise<void> {
  opts.signal?.throwIfAborted();
  for (const name of await readdir(join(root, rel))) {
    const relPath = rel ? `${rel}/${name}` : name;
    if (opts.skip?.(relPath)) continue;
    const st = await lstat(join(root, relPath));
    if (st.isDirectory()) await walk(root, relPath, opts, found);
    else if (st.isFile()) found.files.push(relPath);
    else if (st.isSymbolicLink()) found.symlinks++;
  }
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
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
): Promise<VerifyProblem[]> {
  const problems: VerifyProblem[] = [];
  for (const { path, sha256 } of entries) {
    signal?.throwIfAborted();
    assertContained(path);
    const full = join(root, path);
    if (!(await isRegularFile(full))) {
      problems.push({ path, problem: 'missing' });
      continue;
    }
    const actual = await hashFile(full, signal);
    if (actual.sha256 !== sha256.toLowerCase()) problems.push({ path, problem: 'checksum' });
  }
  return problems;
}

function assertContained(path: string): void {
  const segments = path.split('/');
  if (path.startsWith('/') || segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw new Error(`manifest path escapes the snapshot root: ${JSON.stringify(path)}`);
  }
}

async function isRegularFile(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isFile();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw err;
  }
}
