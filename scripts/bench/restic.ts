// Method "restic": rsync + pg_dump into a mirror, then plain `restic backup` of it to a repository on MinIO
// (scripts/bench/restic-backup.sh, restic-restore.sh). One fresh repository per round (so "first backup" is one).
import { readFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { findBinary } from '../lib/services';
import { emptyPrefix, runScript, scriptEnv, timed, type Method, type Stack, type TreeSampler, type Workset } from './stack';

const here = fileURLToPath(new URL('.', import.meta.url));

export async function resticVersion(): Promise<string> {
  return (await execa(findBinary('restic'), ['version'])).stdout.trim();
}

export async function resticMethod(stack: Stack): Promise<Method> {
  const restic = findBinary('restic');
  const bucket = await stack.bucket('bench-restic');
  const work = (set: Workset) => join(stack.root, 'restic', set);
  const repoPrefix = (set: Workset, round: number) => `${set}-round${round}`;
  const repos: Partial<Record<Workset, string>> = {};
  const env = (set: Workset) => ({
    ...scriptEnv(stack, set),
    WORK: work(set),
    RESTIC: restic,
    RESTIC_REPOSITORY: repos[set]!,
    RESTIC_PASSWORD: 'lifeboat-bench',
    RESTIC_CACHE_DIR: join(work(set), 'cache'),
    SUMMARY: join(work(set), 'summary.json'),
  });
  return {
    id: 'restic',
    label: 'restic',
    bucket,
    async reset(set, round) {
      await rm(work(set), { recursive: true, force: true });
      await mkdir(work(set), { recursive: true });
      await emptyPrefix(stack.s3, bucket, `${set}-`);
      repos[set] = `s3:${stack.minio.endpoint}/${bucket}/${repoPrefix(set, round)}`;
      await execa(restic, ['init', '--quiet'], { env: { ...process.env, ...env(set) } });
    },
    async backup(set, _round, sampler?: TreeSampler) {
      const e = env(set);
      const { seconds } = await timed(() => runScript(join(here, 'restic-backup.sh'), e, (pid) => sampler?.add(pid)));
      const summary = JSON.parse(await readFile(e.SUMMARY, 'utf8')) as { data_added_packed?: number };
      return { seconds, dataAddedPacked: summary.data_added_packed };
    },
    async restore(_round, toDir, toDb) {
      return timed(() => runScript(join(here, 'restic-restore.sh'), { ...env('main'), TO_DIR: toDir, TO_DB: toDb }));
    },
    async restoreSmall(_round, toDir) {
      const h = stack.main.hosts[0]!;
      return timed(() => runScript(join(here, 'restic-restore.sh'), { ...env('main'), TO_DIR: toDir, ONLY: `${h.name} ${h.port} ${h.tree} etc` }));
    },
    async close() {},
  };
}
