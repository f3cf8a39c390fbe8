// Files and trees (.env files, systemd units, app data): rsync pull with the deny-list and excludes applied,
// keeping numeric owners, modes, hard links, symlinks, mtimes, ACLs and the kept xattrs (remote/rsync.ts).
// Optional paths are copied when present and recorded as missing otherwise.
import { join } from 'node:path';
import type { FilesArtifact } from '../config/schema';
import type { Host } from '../remote/host';
import { LifeboatError } from '../shared/errors';
import { rsyncExcludeArgs } from '../snapshot/deny-list';
import { failingOn, pullTree, treeStats } from './pull-tree';
import type { SourceModule } from './types';

export function filesDir(source: string, artifact: string): string {
  return `files/${source}/${artifact}`;
}

export const files: SourceModule<FilesArtifact> = {
  requiredTools: () => ['rsync'],
  requiredPaths: (a) => a.paths,

  async estimateBytes(host: Host, a, signal) {
    const present = await presentPaths(host, a, signal);
    if (present.length === 0) return 0;
    const res = await host.exec(['du', '-s', '-k', '--', ...present], { signal });
    if (res.exitCode !== 0) {
      throw new LifeboatError('CommandFailed', `du on ${host.label} failed (exit ${res.exitCode}): ${res.stderr.trim()}`);
    }
    return res.stdout
      .split('\n')
      .map((l) => Number(l.split('\t')[0]))
      .filter((n) => Number.isFinite(n))
      .reduce((sum, kib) => sum + kib * 1024, 0);
  },

  async capture({ host, source, artifact: a, snapshotDir, mirrorDir, denyList, signal, progress }) {
    const optional = await failingOn(host, '[ ! -e "$1" ]', a.optionalPaths, signal); // the present ones
    const missingOptional = a.optionalPaths.filter((p) => !optional.includes(p));
    const paths = [...a.paths, ...optional];
    const rel = filesDir(source.name, a.name);
    if (paths.length === 0) {
      return { status: 'skipped', paths: [], bytes: 0, details: { missing_optional: missingOptional } };
    }
    const { warnings, ...stats } = await pullTree(host, {
      paths,
      mirrorDir,
      snapshotDir,
      rel,
      excludeArgs: [...rsyncExcludeArgs(denyList), ...rsyncExcludeArgs([...source.exclude, ...a.exclude])],
      signal,
      onProgress: (line) => progress({ artifact: a.name, rsync: line }),
    });
    return {
      paths: [rel],
      bytes: stats.totalFileSize,
      details: {
        ...(await treeStats(join(snapshotDir, rel), signal)),
        rsync: stats,
        ...(missingOptional.length ? { missing_optional: missingOptional } : {}),
        // Attributes the backup host could not store (a filesystem without xattrs or ACLs): recorded, not fatal.
        ...(warnings ? { warnings } : {}),
      },
    };
  },
};

async function presentPaths(host: Host, a: FilesArtifact, signal: AbortSignal): Promise<string[]> {
  const all = [...a.paths, ...a.optionalPaths];
  const missing = await failingOn(host, '[ -e "$1" ]', all, signal);
  return all.filter((p) => !missing.includes(p));
}
