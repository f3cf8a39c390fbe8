// Temporary A/B: fetchSnapshot of one ~1 GiB archive from local storage, old tree vs new tree, alternating.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { execSync } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeTree } from './bench/workload';

const base = '/work/ab';
const plan = 'ab';
const snapshot = 'ab-20261202T000000';
const repos = { old: '/tmp/old', new: '/work/main' };
const mib = Number(process.env.MIB ?? 500);

async function prepare() {
  const { buildManifest } = await import('/work/main/src/snapshot/manifest');
  const { createArchive } = await import('/work/main/src/snapshot/archive');
  const { LocalBackend } = await import('/work/main/src/storage/local');
  const snap = join(base, 'src', snapshot);
  if (!existsSync(join(base, 'storage', plan, `${snapshot}.json`))) {
    await rm(join(base, 'src'), { recursive: true, force: true });
    await writeTree(join(snap, 'files', 'a'), 'a', mib);
    await writeTree(join(snap, 'files', 'b'), 'b', mib);
    await writeFile(join(snap, 'metadata.yml'), `plan: ${plan}\nsnapshot: ${snapshot}\ncomponents: {}\n`);
    const m = await buildManifest(snap);
    await writeFile(join(snap, 'manifest.sha256'), m.text);
    const manifest = { sha256: createHash('sha256').update(m.text).digest('hex'), files: m.entries.length, bytes: m.entries.reduce((n, e) => n + e.size, 0) };
    const a = await createArchive(snap, join(base, `${snapshot}.tar.zst`), 'tar.zst');
    const storage = new LocalBackend('ab', { type: 'local', path: join(base, 'storage') } as never);
    const key = `${plan}/${snapshot}.tar.zst`;
    await storage.put(key, a.path, { sha256: a.sha256, size: a.size });
    await storage.putJson(`${plan}/${snapshot}.json`, { success: true, status: 'Completed', snapshot, plan, tier: 'daily', created_at: '2026-12-02T00:00:00Z', format: 'tar.zst', size_bytes: a.size, checksum_sha256: a.sha256, manifest, artifacts: [] });
    await rm(a.path);
    console.log(`archive ${(a.size / 2 ** 20).toFixed(0)} MiB, ${m.entries.length} files`);
  }
}

async function run(which: keyof typeof repos): Promise<number> {
  const { fetchSnapshot } = await import(`${repos[which]}/src/restore/fetch`);
  const { LocalBackend } = await import(`${repos[which]}/src/storage/local`);
  const storage = new LocalBackend('ab', { type: 'local', path: join(base, 'storage') } as never);
  const workDir = join(base, `work-${which}`);
  await rm(workDir, { recursive: true, force: true });
  await mkdir(workDir, { recursive: true });
  execSync('sync');
  const t = performance.now();
  const phases: string[] = [];
  await fetchSnapshot({ storage, plan, snapshot, workDir, onProgress: (p: { phase: string }) => { if (phases.at(-1)?.split(' ')[0] !== p.phase) phases.push(`${p.phase} ${((performance.now() - t) / 1000).toFixed(1)}`); } });
  console.log(`  ${which}: ${phases.join(', ')}`);
  const s = (performance.now() - t) / 1000;
  await rm(workDir, { recursive: true, force: true });
  return s;
}

await prepare();
const rounds = Number(process.env.ROUNDS ?? 3);
const times: Record<string, number[]> = { old: [], new: [] };
for (let i = 0; i < rounds; i++) for (const w of (i % 2 ? ['new', 'old'] : ['old', 'new']) as Array<keyof typeof repos>) {
  const s = await run(w);
  times[w]!.push(s);
  console.log(`${w} ${s.toFixed(2)} s`);
}
for (const [w, t] of Object.entries(times)) console.log(`${w} median ${t.sort((a, b) => a - b)[Math.floor(t.length / 2)]!.toFixed(2)} s`);
void readFile;
