// Every restic call costs a key derivation (~0.5 s of CPU), so the backup host remembers what it can:
// - record texts: read often (every listing, retention, `latest`) by `restic dump`; a restic snapshot id is the hash
//   of its content, so the text read for an id never changes: cached by id, only new records cost a restic call;
// - each plan's newest data snapshot per repository: the next backup's parent, without a `restic snapshots` first.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { isHex64 } from '../shared/hex';

function cacheDir(kind = 'restic-records'): string {
  return join(process.env.LIFEBOAT_CACHE || join(homedir(), '.cache', 'lifeboat'), kind);
}

export async function readCachedRecord(id: string): Promise<string | undefined> {
  if (!isHex64(id)) return undefined;
  return readFile(join(cacheDir(), `${id}.json`), 'utf8').catch(() => undefined);
}

/** Best effort: a cache that cannot be written (read-only home) only costs a restic call next time. */
export async function writeCachedRecord(id: string, text: string): Promise<void> {
  if (isHex64(id)) await writeAtomically(cacheDir(), `${id}.json`, text);
}

/** The data snapshot a plan's last backup from this host wrote to a repository (`repo`: a key naming it). */
export interface CachedParent {
  id: string;
  /** The Lifeboat snapshot it holds. */
  snapshot: string;
}

const parentFile = (repo: string, plan: string) => `${createHash('sha256').update(JSON.stringify([repo, plan])).digest('hex')}.json`;

/**
 * A hint only: the snapshot may have been forgotten since, or another host may have written a newer one. restic
 * refuses an unknown parent (the caller then lists), and an older parent only makes restic read more files.
 */
export async function readCachedParent(repo: string, plan: string): Promise<CachedParent | undefined> {
  const text = await readFile(join(cacheDir('restic-parents'), parentFile(repo, plan)), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as Partial<CachedParent>;
    return typeof v.id === 'string' && isHex64(v.id) && typeof v.snapshot === 'string' ? { id: v.id, snapshot: v.snapshot } : undefined;
  } catch {
    return undefined;
  }
}

export async function writeCachedParent(repo: string, plan: string, parent: CachedParent): Promise<void> {
  if (isHex64(parent.id)) await writeAtomically(cacheDir('restic-parents'), parentFile(repo, plan), JSON.stringify(parent));
}

async function writeAtomically(dir: string, name: string, text: string): Promise<void> {
  const tmp = join(dir, `${name}.${process.pid}.tmp`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(tmp, text, { mode: 0o600 });
    await rename(tmp, join(dir, name));
  } catch {
    // not worth failing a backup or a listing over
  }
}
