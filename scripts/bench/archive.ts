// The archive micro-bench (one stage, not the job): Lifeboat's streamed `tar | zstd -T0` with hashing in the same
// pass, against `tar czf` (single-threaded gzip) plus a separate sha256sum pass, and the same pass with age
// encryption. Same data, same machine, best of N. Also the bench process's peak RSS (memory stays flat).
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { createArchive } from '../../src/snapshot/archive';
import { onCleanup } from './stack';

async function makeData(root: string, mib: number): Promise<void> {
  // Half text-like (compressible, like dumps and configs), half random (like media and already-compressed data).
  const dir = join(root, 'snap');
  await mkdir(dir, { recursive: true });
  const words = 'INSERT INTO items VALUES (42, \'lifeboat\', now()); -- backup restore verify\n';
  const text = Buffer.from(words.repeat(Math.ceil((1024 * 1024) / words.length))).subarray(0, 1024 * 1024);
  for (let i = 0; i < mib; i++) await writeFile(join(dir, `f${i}.bin`), i % 2 ? randomBytes(1024 * 1024) : text);
}

async function best(runs: number, fn: () => Promise<void>): Promise<number> {
  let min = Infinity;
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    await fn();
    min = Math.min(min, Number(process.hrtime.bigint() - t) / 1e9);
  }
  return min;
}

export async function archiveBench(o: { mib: number; runs: number }): Promise<string[]> {
  const { mib, runs } = o;
  const root = await mkdtemp(join(tmpdir(), 'lifeboat-bench-archive-'));
  onCleanup(() => rm(root, { recursive: true, force: true }));
  try {
    await makeData(root, mib);
    const snap = join(root, 'snap');
    const rssBefore = process.memoryUsage().rss;
    let zstSize = 0;
    const lifeboat = await best(runs, async () => {
      zstSize = (await createArchive(snap, join(root, 'a.tar.zst'), 'tar.zst')).size;
    });
    const peakRss = process.resourceUsage().maxRSS * 1024;
    // The same pass with age encryption (issue goal: at most 15 % over unencrypted).
    const keygen = await execa('age-keygen', ['-o', join(root, 'age.key')]);
    const recipient = /age1[0-9a-z]+/.exec(keygen.stderr)![0];
    let ageSize = 0;
    const encrypted = await best(runs, async () => {
      ageSize = (await createArchive(snap, join(root, 'a.tar.zst.age'), 'tar.zst', { recipients: [recipient] })).size;
    });
    let gzSize = 0;
    const baseline = await best(runs, async () => {
      const out = join(root, 'b.tar.gz');
      await execa('tar', ['-C', root, '-czf', out, 'snap']);
      await execa('sha256sum', [out]);
      gzSize = (await stat(out)).size;
    });
    const rows = [
      ['method', `seconds (best of ${runs})`, 'MiB/s', 'archive MiB'],
      ['baseline: tar czf + sha256sum', baseline.toFixed(2), (mib / baseline).toFixed(0), (gzSize / 2 ** 20).toFixed(1)],
      ['lifeboat: tar | zstd -T0 | sha256 (one pass)', lifeboat.toFixed(2), (mib / lifeboat).toFixed(0), (zstSize / 2 ** 20).toFixed(1)],
      ['lifeboat: tar | zstd -T0 | age | sha256', encrypted.toFixed(2), (mib / encrypted).toFixed(0), (ageSize / 2 ** 20).toFixed(1)],
    ];
    return [
      `data: ${mib} MiB (half text, half random), ${cpus().length} cores`,
      ...rows.map((r) => r.map((c, i) => c.padEnd(i === 0 ? 46 : 22)).join('').trimEnd()),
      `speed-up: ${(baseline / lifeboat).toFixed(2)}×`,
      `encryption cost: ${(((encrypted - lifeboat) / lifeboat) * 100).toFixed(1)} % over unencrypted`,
      `node peak RSS during lifeboat archive: ${(peakRss / 2 ** 20).toFixed(0)} MiB (before: ${(rssBefore / 2 ** 20).toFixed(0)} MiB) for ${mib} MiB of data`,
    ];
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
