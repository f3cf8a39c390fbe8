// The watchdog's memory of open stale episodes: `<backupRoot>/.state/freshness.json` (dir 0700, file 0600),
// replaced atomically (write a temporary file, fsync, rename), so a crash leaves the old state or the new one.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseEpisodeState, type EpisodeState } from './episodes';

export function freshnessStatePath(backupRoot: string): string {
  return join(backupRoot, '.state', 'freshness.json');
}

/** The saved state; none yet (or unreadable as ours) is the empty state. Permission errors are raised. */
export async function readEpisodeState(file: string): Promise<EpisodeState> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  return parseEpisodeState(text);
}

export async function writeEpisodeState(file: string, state: EpisodeState): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700); // mkdir's mode does not apply to a directory that already existed
  const tmp = join(dir, `.freshness.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(JSON.stringify(state, null, 2) + '\n');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
