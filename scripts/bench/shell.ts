// Method "shell": the hand-written sequence (scripts/bench/shell-backup.sh, shell-restore.sh).
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { emptyPrefix, runScript, scriptEnv, timed, type Method, type Stack, type TreeSampler, type Workset } from './stack';

const here = fileURLToPath(new URL('.', import.meta.url));

export async function shellMethod(stack: Stack): Promise<Method> {
  const bucket = await stack.bucket('bench-shell');
  const work = (set: Workset) => join(stack.root, 'shell', set);
  const key = (set: Workset, round: number, n: number) => `${set}/round${round}-${n}.tar.zst`;
  let count = 0;
  let latest = '';
  return {
    id: 'shell',
    label: 'shell',
    bucket,
    async reset(set) {
      await rm(work(set), { recursive: true, force: true });
      await mkdir(work(set), { recursive: true });
      await emptyPrefix(stack.s3, bucket, `${set}/`);
    },
    async backup(set, round, sampler?: TreeSampler) {
      const objectKey = key(set, round, ++count);
      const env = { ...scriptEnv(stack, set), WORK: work(set), BUCKET: bucket, OBJECT_KEY: objectKey };
      const { seconds } = await timed(() => runScript(join(here, 'shell-backup.sh'), env, (pid) => sampler?.add(pid)));
      if (set === 'main') latest = objectKey;
      return { seconds };
    },
    async restore(_round, toDir, toDb) {
      const env = { ...scriptEnv(stack, 'main'), WORK: work('main'), BUCKET: bucket, OBJECT_KEY: latest, TO_DIR: toDir, TO_DB: toDb };
      return timed(() => runScript(join(here, 'shell-restore.sh'), env));
    },
    async restoreSmall(_round, toDir) {
      const h = stack.main.hosts[0]!;
      const env = { ...scriptEnv(stack, 'main'), WORK: work('main'), BUCKET: bucket, OBJECT_KEY: latest, TO_DIR: toDir, ONLY: `${h.name} ${h.port} ${h.tree} etc` };
      return timed(() => runScript(join(here, 'shell-restore.sh'), env));
    },
    async close() {},
  };
}
