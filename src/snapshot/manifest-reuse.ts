// The hash cache that makes an unchanged re-backup cheap: after a successful finalize, the identity (device, inode,
// size, mtime) each manifest hash was computed from, per plan on the backup host. The next finalize keeps the hash of
// every file whose identity is unchanged and reads only the rest, so its cost follows the files, not the bytes.
//
// Trust: the cache lives on the backup host (beside the plan's rsync mirror), never in storage, and is written by
// the worker only. Anything unexpected (missing, truncated, another version, a bad checksum, the snapshot it
// describes gone) means "no cache": every file is hashed, as on a first run.
import { randomBytes, createHash } from 'node:crypto';
import { open, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { manifestLine, parseManifestLine, type BuiltManifest, type ReusableHashes } from './manifest';

const MAGIC = 'lifeboat-hash-cache v1';
const IDENTITY = /^\d+:\d+:\d+:\d+$/;
const SNAPSHOT = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export interface HashCache {
  /** The snapshot whose manifest the hashes are from. */
  snapshot: string;
  entries: ReusableHashes;
}

/** `<backupRoot>/.mirror/<plan>/.hash-cache` (source names start with a letter or digit, so it meets no mirror). */
export function hashCachePath(backupRoot: string, plan: string): string {
  return join(backupRoot, '.mirror', plan, '.hash-cache');
}

/**
 * The plan's cache, when it can be believed; else why not (for the step's progress). The snapshot it describes must
 * still be on the backup host: its hard links keep the cached inodes allocated, so no new file can reuse an inode
 * number (and, by chance, its size and mtime) while the cache names it.
 */
export async function loadHashCache(backupRoot: string, plan: string): Promise<{ cache?: HashCache; reason: string }> {
  const file = hashCachePath(backupRoot, plan);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    // Unreadable (or past V8's string limit, millions of files): hashing everything is slower, never wrong.
    const e = err as NodeJS.ErrnoException;
    return { reason: e.code === 'ENOENT' ? 'no hash cache yet' : `hash cache ignored: ${e.message}` };
  }
  const parsed = parseHashCache(text);
  if (typeof parsed === 'string') return { reason: `hash cache ignored: ${parsed}` };
  const dir = await stat(join(backupRoot, parsed.snapshot)).catch(() => undefined);
  if (!dir?.isDirectory()) return { reason: `hash cache ignored: its snapshot ${parsed.snapshot} is no longer on the backup host` };
  return { cache: parsed, reason: `${parsed.entries.size} hashes from ${parsed.snapshot}` };
}

/** The cache, or what is wrong with it. */
export function parseHashCache(text: string): HashCache | string {
  if (!text.startsWith(`${MAGIC} `)) return 'not a hash cache (of this version)';
  const trailer = /\nend ([0-9a-f]{64})\n$/.exec(text);
  if (!trailer) return 'truncated';
  const body = text.slice(0, trailer.index + 1);
  if (sha256(body) !== trailer[1]) return 'checksum mismatch';
  const lines = body.split('\n');
  lines.pop(); // after the last newline
  const [, snapshot = '', count = ''] = /^lifeboat-hash-cache v1 (\S+) (\d+)$/.exec(lines[0] ?? '') ?? [];
  if (!SNAPSHOT.test(snapshot) || Number(count) !== lines.length - 1) return 'bad header';
  const entries = new Map<string, { identity: string; sha256: string }>();
  for (const line of lines.slice(1)) {
    const space = line.indexOf(' ');
    const identity = line.slice(0, space);
    const entry = space > 0 && IDENTITY.test(identity) ? parseManifestLine(line.slice(space + 1)) : null;
    if (!entry) return 'malformed line';
    entries.set(entry.path, { identity, sha256: entry.sha256 });
  }
  return { snapshot, entries };
}

/**
 * Replace the plan's cache with the hashes of `snapshot`'s manifest (atomically: a crash leaves the old cache or the
 * new one, both true). Entries without an identity (modified during the run) are left out, so they are read again.
 */
export async function writeHashCache(backupRoot: string, plan: string, snapshot: string, manifest: Pick<BuiltManifest, 'entries' | 'identities'>): Promise<void> {
  const file = hashCachePath(backupRoot, plan);
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const lines = manifest.entries.flatMap((e, i) => {
    const identity = manifest.identities[i];
    return identity ? [`${identity} ${manifestLine(e.sha256, e.path)}\n`] : [];
  });
  const hash = createHash('sha256');
  const out = await open(tmp, 'wx', 0o600);
  try {
    // In slices: one string of a million lines could pass V8's string length limit.
    const chunks = [`${MAGIC} ${snapshot} ${lines.length}\n`];
    for (let i = 0; i < lines.length; i += 10_000) chunks.push(lines.slice(i, i + 10_000).join(''));
    for (const chunk of chunks) {
      hash.update(chunk);
      await out.write(chunk);
    }
    await out.write(`end ${hash.digest('hex')}\n`);
    await out.sync();
    await out.close();
    await rename(tmp, file);
  } catch (err) {
    await out.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
