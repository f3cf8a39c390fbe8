// Record snapshots are read often (every listing, retention, `latest`) and each `restic dump` costs a key
// derivation (~0.5 s of CPU). A restic snapshot id is the hash of its content, so the text read for an id never
// changes: it is cached on the backup host by id, and only records never seen before cost a restic call.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

function cacheDir(): string {
  return join(process.env.LIFEBOAT_CACHE || join(homedir(), '.cache', 'lifeboat'), 'restic-records');
}

function validId(id: string): boolean {
  return /^[0-9a-f]{64}$/.test(id);
}

export async function readCachedRecord(id: string): Promise<string | undefined> {
  if (!validId(id)) return undefined;
  return readFile(join(cacheDir(), `${id}.json`), 'utf8').catch(() => undefined);
}

/** Best effort: a cache that cannot be written (read-only home) only costs a restic call next time. */
export async function writeCachedRecord(id: string, text: string): Promise<void> {
  if (!validId(id)) return;
  const dir = cacheDir();
  const tmp = join(dir, `${id}.${process.pid}.tmp`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(tmp, text, { mode: 0o600 });
    await rename(tmp, join(dir, `${id}.json`));
  } catch {
    // not worth failing a backup or a listing over
  }
}
