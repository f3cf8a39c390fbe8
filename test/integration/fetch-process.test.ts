// A restore's fetch in a process of its own (src/restore/fetch-process.ts): the worker (this test process) reads
// none of the archive's bytes, a failure keeps its Lifeboat type, and a cancelled fetch leaves no process and no
// extracted tree behind. The child is the real `lifeboat internal-fetch`, on a real local storage.
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { Storage } from '../../src/config/schema';
import type { StoredRecord } from '../../src/restore/fetch';
import { fetchInChildProcess, type FetchRequest } from '../../src/restore/fetch-process';
import { LifeboatError } from '../../src/shared/errors';
import type { StepProgress } from '../../src/shared/progress';
import { createArchive } from '../../src/snapshot/archive';
import { buildManifest, hashFile } from '../../src/snapshot/manifest';
import { archiveKey, recordKey } from '../../src/snapshot/naming';
import { openStorage } from '../../src/storage';
import { tempDir } from '../support/fixtures';

const root = await tempDir('fetchproc');
const SNAPSHOT = 'big-20250101T000000';
const BIG_MIB = 192;
const config: Storage = { type: 'local', path: join(root, 'storage') };
let bigSha: string;

/** Bytes this process's threads have read through read(), sockets and pipes included (not its children's). */
const bytesRead = () => readdirSync('/proc/self/task').reduce((n, t) => n + Number(/^rchar: (\d+)$/m.exec(readFileSync(`/proc/self/task/${t}/io`, 'utf8'))?.[1] ?? 0), 0);
const fetchers = async () => (await execa('pgrep', ['-f', 'lifeboat.mjs internal-fetch'], { reject: false })).stdout.split('\n').filter(Boolean).length;
const request = (workDir: string, snapshot = SNAPSHOT): FetchRequest => ({ storage: { name: 'disk', config }, plan: 'big', snapshot, workDir, trust: {} });

beforeAll(async () => {
  const dir = join(root, 'snapshots', SNAPSHOT);
  await mkdir(join(dir, 'files/app/data'), { recursive: true, mode: 0o700 });
  await execa('sh', ['-c', 'head -c "$1" /dev/urandom > "$0"', join(dir, 'files/app/data/big.bin'), String(BIG_MIB * 1024 * 1024)]);
  await writeFile(join(dir, 'metadata.yml'), stringify({ snapshot: SNAPSHOT, plan: 'big', components: { data: { type: 'files', source: 'app', status: 'ok' } } }));
  const manifest = await buildManifest(dir, { skip: (rel) => rel === 'manifest.sha256' });
  await writeFile(join(dir, 'manifest.sha256'), manifest.text);
  bigSha = manifest.entries.find((e) => e.path.endsWith('big.bin'))!.sha256;
  const archive = await createArchive(dir, join(root, `${SNAPSHOT}.tar.zst`), 'tar.zst');
  const record: StoredRecord = {
    success: true,
    status: 'Completed',
    snapshot: SNAPSHOT,
    plan: 'big',
    tier: 'daily',
    created_at: '2025-01-01T00:00:00.000Z',
    completed_at: '2025-01-01T00:01:00.000Z',
    format: 'tar.zst',
    size_bytes: archive.size,
    checksum_sha256: archive.sha256,
    manifest: { files: manifest.entries.length, bytes: manifest.entries.reduce((n, e) => n + e.size, 0), sha256: (await hashFile(join(dir, 'manifest.sha256'))).sha256 },
    artifacts: [{ source: 'app', name: 'data', type: 'files', status: 'ok', bytes: BIG_MIB * 1024 * 1024 }],
  };
  const storage = await openStorage('disk', config);
  await storage.put(archiveKey('big', SNAPSHOT, 'tar.zst'), archive.path, { sha256: archive.sha256, size: archive.size });
  await storage.putJson(recordKey('big', SNAPSHOT), { ...record, storage: 'disk' });
}, 120_000);

describe('a restore fetch in its own process', () => {
  it('extracts and checks the snapshot while the worker reads none of its bytes', async () => {
    const workDir = join(root, 'work-ok');
    const phases = new Set<string>();
    const before = bytesRead();
    const fetched = await fetchInChildProcess(request(workDir), { onProgress: (p: StepProgress) => phases.add(p.phase) });
    const read = bytesRead() - before;
    expect(fetched.dir).toBe(join(workDir, 'extract', SNAPSHOT));
    expect(fetched.record.checksum_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect((await hashFile(join(fetched.dir, 'files/app/data/big.bin'))).sha256).toBe(bigSha);
    expect(phases.has('restore')).toBe(true); // progress crossed the channel
    // The archive is 192 MiB; the request, progress and answer are a few KB (hashing the result above is after).
    expect(read).toBeLessThan(4 * 1024 * 1024);
    expect(await fetchers()).toBe(0);
  }, 120_000);

  it("a failure there is the same LifeboatError here (its code decides Temporal's retries)", async () => {
    const err = await fetchInChildProcess(request(join(root, 'work-missing'), 'big-20990101T000000')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LifeboatError);
    expect((err as LifeboatError).code).toBe('ConfigError');
    expect((err as LifeboatError).message).toContain('no snapshot big-20990101T000000');
  }, 60_000);

  it('a cancelled fetch stops its process, which leaves no extracted tree behind', async () => {
    const workDir = join(root, 'work-cancel');
    const cancel = new AbortController();
    const reason = new Error('cancelled by the test');
    const fetching = fetchInChildProcess(request(workDir), {
      signal: cancel.signal,
      onProgress: (p) => {
        if (p.phase === 'restore' && (p.bytesDone ?? 0) > 16 * 1024 * 1024) cancel.abort(reason);
      },
    });
    await expect(fetching).rejects.toBe(reason);
    expect(await fetchers()).toBe(0); // awaited: the promise settles once the process has exited
    expect(await readdir(join(workDir, 'extract')).catch(() => [])).toEqual([]);
  }, 120_000);
});
