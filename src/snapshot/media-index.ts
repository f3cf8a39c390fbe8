// Media files (files artifacts with `media: true`) leave the archive. Archive storages keep each file once, as an
// object named after its SHA-256 in `.media/<plan>/`, and each snapshot holds `media.json`: which of its files are
// such objects, with what an object does not carry (mode, owners, mtime). The file's hash comes from the manifest,
// which the signed record covers; media.json never names an object, so nothing read from storage chooses a key.
import { createHash } from 'node:crypto';
import { lstat, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { LifeboatError } from '../shared/errors';
import { isHex64 } from '../shared/hex';
import { fileIdentity, type ListedFile, type ManifestEntry } from './manifest';
import { ENCRYPTED_SUFFIX } from './naming';

export const MEDIA_INDEX = 'media.json';

export interface MediaFile {
  /** Relative to the snapshot root, under `files/<source>/<artifact>/` of a media artifact. */
  path: string;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch with up to 9 decimals (ns), as a string: a double would round it. */
  mtime: string;
}

export interface MediaIndex {
  version: 1;
  files: MediaFile[];
}

/** `.media/<plan>/`: a leading dot is never a plan name, so media objects never mix with a plan's records. */
export function mediaPrefix(plan: string): string {
  return `.media/${plan}/`;
}

/**
 * The object of one media file: its plaintext SHA-256, and for ciphertext the recipients' id and `.age`. A new set
 * of recipients makes new objects: a rotated key must not leave new snapshots readable only with the old identity.
 */
export function mediaObjectName(sha256: string, encryptedTo?: string): string {
  if (!isHex64(sha256)) throw corrupt(`not a SHA-256: ${JSON.stringify(sha256)}`);
  return encryptedTo ? `${sha256}.${encryptedTo}${ENCRYPTED_SUFFIX}` : sha256;
}

/** A name found in storage under the media prefix, if it is one Lifeboat writes; anything else is left alone. */
export function parseMediaObjectName(name: string): { sha256: string; encryptedTo?: string } | undefined {
  const m = /^([0-9a-f]{64})(?:\.([0-9a-f]{16})\.age)?$/.exec(name);
  return m ? { sha256: m[1]!, ...(m[2] ? { encryptedTo: m[2] } : {}) } : undefined;
}

/** 16 hex digits naming a set of age recipients (order and duplicates do not matter). */
export function recipientsId(recipients: readonly string[]): string {
  return createHash('sha256').update([...new Set(recipients)].sort().join('\n')).digest('hex').slice(0, 16);
}

/**
 * Whether a path can leave the archive: GNU tar's exclude list is read line by line with trailing blanks dropped,
 * so a name with a control character or a trailing blank stays in the archive (correct, only not shared).
 */
export function isMediaEligible(path: string): boolean {
  return !/[\x00-\x1f\x7f]/.test(path) && !/\s$/.test(path);
}

/** The files of `mediaDirs` (snapshot-relative) among the listed ones that can be media objects. */
export function mediaPaths(listed: readonly { path: string }[], mediaDirs: readonly string[]): string[] {
  const prefixes = mediaDirs.map((d) => `${d}/`);
  return listed.filter((f) => prefixes.some((p) => f.path.startsWith(p)) && isMediaEligible(f.path)).map((f) => f.path);
}

/** Writes `<root>/media.json` for these files (modes, owners and mtimes read now) and returns it. */
export async function writeMediaIndex(root: string, paths: readonly string[]): Promise<MediaIndex> {
  const limit = pLimit(32);
  const files = await Promise.all(
    paths.map((path) =>
      limit(async () => {
        const st = await lstat(join(root, path), { bigint: true });
        return { path, mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), mtime: nsToSeconds(st.mtimeNs) };
      }),
    ),
  );
  const index: MediaIndex = { version: 1, files };
  await writeFile(join(root, MEDIA_INDEX), `${JSON.stringify(index)}\n`, { mode: 0o600 });
  return index;
}

/** `-1.5` for -1.5 s: before 1970 too (a camera with a dead clock). */
export function nsToSeconds(ns: bigint): string {
  const abs = ns < 0n ? -ns : ns;
  const frac = (abs % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return `${ns < 0n ? '-' : ''}${abs / 1_000_000_000n}${frac ? `.${frac}` : ''}`;
}

/**
 * media.json of an extracted snapshot. It is covered by the manifest, but still checked like anything read back:
 * every path relative and clean, under `files/`, eligible, listed once; numbers in range.
 */
export function parseMediaIndex(text: string): MediaIndex {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw corrupt(`${MEDIA_INDEX} is not JSON`);
  }
  const v = value as Partial<MediaIndex> | null;
  if (!v || typeof v !== 'object' || v.version !== 1 || !Array.isArray(v.files)) throw corrupt(`${MEDIA_INDEX} is not a version 1 media index`);
  const seen = new Set<string>();
  for (const f of v.files) {
    const problem = mediaFileProblem(f);
    if (problem) throw corrupt(`${MEDIA_INDEX}: ${problem}`);
    if (seen.has(f.path)) throw corrupt(`${MEDIA_INDEX}: ${JSON.stringify(f.path)} is listed twice`);
    seen.add(f.path);
  }
  return v as MediaIndex;
}

/** `<dir>/media.json` of a local snapshot, parsed; undefined when the snapshot has none (no media artifact). */
export async function readMediaIndex(dir: string): Promise<MediaIndex | undefined> {
  const text = await readFile(join(dir, MEDIA_INDEX), 'utf8').catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
  return text === undefined ? undefined : parseMediaIndex(text);
}

/** A media index or hash that cannot be right: no retry makes it so. */
function corrupt(message: string): LifeboatError {
  return new LifeboatError('IntegrityCheckFailed', message);
}

function mediaFileProblem(f: MediaFile): string | undefined {
  if (!f || typeof f !== 'object' || typeof f.path !== 'string') return 'an entry without a path';
  const parts = f.path.split('/');
  if (parts[0] !== 'files' || parts.length < 4 || parts.some((p) => p === '' || p === '.' || p === '..') || !isMediaEligible(f.path)) return `${JSON.stringify(f.path)} is not a media file's path`;
  if (!Number.isInteger(f.mode) || f.mode < 0 || f.mode > 0o7777) return `${f.path}: bad mode`;
  if (![f.uid, f.gid].every((n) => Number.isSafeInteger(n) && n >= 0)) return `${f.path}: bad owner`;
  if (typeof f.mtime !== 'string' || !/^-?\d{1,12}(\.\d{1,9})?$/.test(f.mtime)) return `${f.path}: bad mtime`;
  return undefined;
}

/** Each media file with its manifest hash; a media file the manifest does not list is an error. */
export function mediaEntries(index: MediaIndex, manifest: readonly ManifestEntry[]): Array<MediaFile & { sha256: string }> {
  const byPath = new Map(manifest.map((e) => [e.path, e.sha256]));
  return index.files.map((f) => {
    const sha256 = byPath.get(f.path);
    if (!sha256) throw corrupt(`${MEDIA_INDEX} lists ${f.path}, which the manifest does not`);
    return { ...f, sha256 };
  });
}

/** The snapshot directories of a plan's media artifacts: `files/<source>/<artifact>`. */
export function mediaDirs(sources: ReadonlyArray<{ name: string; artifacts: ReadonlyArray<{ type: string; name: string; media?: boolean }> }>): string[] {
  return sources.flatMap((s) => s.artifacts.filter((a) => a.type === 'files' && a.media).map((a) => `files/${s.name}/${a.name}`));
}

/** media.json as listFiles would have listed it, placed in the listing's order (it is hashed into the manifest). */
export async function addIndexToListing(root: string, files: ListedFile[]): Promise<void> {
  const st = await lstat(join(root, MEDIA_INDEX), { bigint: true });
  const at = files.findIndex((f) => f.path > MEDIA_INDEX);
  files.splice(at < 0 ? files.length : at, 0, { path: MEDIA_INDEX, size: Number(st.size), identity: fileIdentity(st), racy: true });
}

/** The lines of GNU tar's exclude list (`--anchored --no-wildcards --no-unquote -X`) that keep media files out. */
export function tarExcludeLines(snapshot: string, index: MediaIndex): string {
  return index.files.map((f) => `${snapshot}/${f.path}\n`).join('');
}
