// Files and trees: rsync pull into the persistent mirror, then hard-link the configured paths into the snapshot.
// rsync replaces changed files by rename, so a snapshot's hard links keep the old content: cheap and safe.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { FilesArtifact } from '../config/schema';
import type { Host } from '../remote/host';
import { rsyncPull } from '../remote/rsync';
import { LifeboatError } from '../shared/errors';
import { rsyncExcludeArgs } from '../snapshot/deny-list';
import type { SourceModule } from './types';

export function filesDir(source: string, artifact: string): string {
  return `files/${source}/${artifact}`;
}

export const files: SourceModule<FilesArtifact> = {
  requiredTools: () => ['rsync'],
  requiredPaths: (a) => a.paths,

  async estimateBytes(host: Host, a, signal) {
    const res = await host.exec(['du', '-s', '-k', '--', ...a.paths], { signal });
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
    const excludeArgs = [...rsyncExcludeArgs(denyList), ...rsyncExcludeArgs(a.exclude)];
    const stats = await rsyncPull(host, a.paths, mirrorDir, {
      excludeArgs,
      signal,
      onProgress: (line) => progress({ artifact: a.name, rsync: line }),
    });
    const rel = filesDir(source.name, a.name);
    const dest = join(snapshotDir, rel);
    await rm(dest, { recursive: true, force: true }); // a retried attempt starts clean
    await mkdir(dest, { recursive: true, mode: 0o700 });
    const relPaths = a.paths.map((p) => p.replace(/^\/+/, '').replace(/\/+$/, ''));
    await execa('cp', ['-a', '-l', '--parents', '--', ...relPaths, dest], { cwd: mirrorDir, cancelSignal: signal });
    return { paths: [rel], bytes: stats.totalFileSize, details: { rsync: stats } };
  },
};
