// Archive benchmark: Lifeboat's streamed `tar | zstd -T0` with hashing in the same pass, against the seed's
// baseline (`tar czf`, single-threaded gzip, then a separate sha256sum pass). Same data, same machine, best
// of N runs, and the same pass with age encryption. Also reports the Node process's peak RSS, to show memory stays flat whatever the data size.
//   npm run bench -- --mib 256 --runs 3
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { createArchive } from '../src/snapshot/archive';

const arg = (name: string, dflt: number) => Number(process.argv[process.argv.indexOf(`--${name}`) + 1] || dflt) || dflt;
const MIB = arg('mib', 256);
const RUNS = arg('runs', 3);

async function makeData(root: string): Promise<void> {
  // Half text-like (compressible, like dumps and configs), half random (like media and already-compressed data).
  const dir = join(root, 'snap');
  await mkdir(dir, { recursive: true });
  const words = 'INSERT INTO items VALUES (42, \'lifeboat\', now()); -- backup restore verify\n';
  const text = Buffer.from(words.repeat(Math.ceil((1024 * 1024) / words.length))).subarray(0, 1024 * 1024);
  for (let i = 0; i < MIB; i++) await writeFile(join(dir, `f${i}.bin`), i % 2 ? randomBytes(1024 * 1024) : text);
}

async function best(fn: () => Promise<void>): Promise<number> {
  let min = Infinity;
  for (let i = 0; i < RUNS; i++) {
    const t = process.hrtime.bigint();
    await fn();
    min = Math.min(min, Number(process.hrtime.bigint() - t) / 1e9);
  }
  return min;
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'lifeboat-bench-'));
  try {
    await makeData(root);
    const snap = join(root, 'snap');
    const rssBefore = process.memoryUsage().rss;
    let zstSize = 0;
    const lifeboat = await best(async () => {
      zstSize = (await createArchive(snap, join(root, 'a.tar.zst'), 'tar.zst')).size;
    });
    const peakRss = process.resourceUsage().maxRSS * 1024;
    // The same pass with age encryption (issue goal: at most 15 % over unencrypted).
    const keygen = await execa('age-keygen', ['-o', join(root, 'age.key')]);
    const recipient = /age1[0-9a-z]+/.exec(keygen.stderr)![0];
    let ageSize = 0;
    const encrypted = await best(async () => {
      ageSize = (await createArchive(snap, join(root, 'a.tar.zst.age'), 'tar.zst', { recipients: [recipient] })).size;
    });
    let gzSize = 0;
    const baseline = await best(async () => {
      const out = join(root, 'b.tar.gz');
      await execa('tar', ['-C', root, '-czf', out, 'snap']);
      await execa('sha256sum', [out]);
      gzSize = (await stat(out)).size;
    });
    const rows = [
      ['method', 'seconds (best of ' + RUNS + ')', 'MiB/s', 'archive MiB'],
      ['baseline: tar czf + sha256sum', baseline.toFixed(2), (MIB / baseline).toFixed(0), (gzSize / 2 ** 20).toFixed(1)],
      ['lifeboat: tar | zstd -T0 | sha256 (one pass)', lifeboat.toFixed(2), (MIB / lifeboat).toFixed(0), (zstSize / 2 ** 20).toFixed(1)],
      ['lifeboat: tar | zstd -T0 | age | sha256', encrypted.toFixed(2), (MIB / encrypted).toFixed(0), (ageSize / 2 ** 20).toFixed(1)],
    ];
    console.log(`data: ${MIB} MiB (half text, half random), ${cpus().length} cores`);
    for (const r of rows) console.log(r.map((c, i) => c.padEnd(i === 0 ? 46 : 22)).join(''));
    console.log(`speed-up: ${(baseline / lifeboat).toFixed(2)}×`);
    console.log(`encryption cost: ${(((encrypted - lifeboat) / lifeboat) * 100).toFixed(1)} % over unencrypted`);
    console.log(`node peak RSS during lifeboat archive: ${(peakRss / 2 ** 20).toFixed(0)} MiB (before: ${(rssBefore / 2 ** 20).toFixed(0)} MiB) for ${MIB} MiB of data`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
