// What the newest finished snapshot of a plan on the backup host recorded per artifact: the next capture's size
// estimate (dumps and trees change slowly between runs). Only ever an estimate: anything unreadable means none.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { parseSnapshotName } from './naming';

/** Bytes per artifact name from the newest snapshot directory of `prefix` under `backupRoot` (empty when none). */
export async function previousArtifactBytes(backupRoot: string, prefix: string): Promise<Record<string, number>> {
  const newest = (await readdir(backupRoot).catch(() => [] as string[]))
    .map((name) => ({ name, parsed: parseSnapshotName(name) })) // `.partial` directories and archives do not parse
    .filter((x) => x.parsed?.prefix === prefix)
    .sort((a, b) => b.parsed!.at.getTime() - a.parsed!.at.getTime())[0];
  if (!newest) return {};
  try {
    const meta = parse(await readFile(join(backupRoot, newest.name, 'metadata.yml'), 'utf8')) as { components?: Record<string, { status?: string; bytes?: unknown }> };
    const sizes: Record<string, number> = {};
    for (const [name, c] of Object.entries(meta?.components ?? {})) {
      if (c?.status === 'ok' && typeof c.bytes === 'number' && c.bytes > 0) sizes[name] = c.bytes;
    }
    return sizes;
  } catch {
    return {};
  }
}
