// createArchive's checksum and size: the last process writes the file, a worker thread hashes it; what it reports
// must be exactly the stored bytes (plain and age-encrypted), with progress in bytes and nothing left on failure.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApplicationFailure } from '@temporalio/common';
import { toFailure } from '../../src/activities/run';
import { createArchive } from '../../src/snapshot/archive';

let root: string;
let snap: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'lifeboat-archive-hash-'));
  snap = join(root, 'shop-20260101T000000');
  mkdirSync(join(snap, 'files'), { recursive: true });
  writeFileSync(join(snap, 'files/random.bin'), randomBytes(8 * 2 ** 20));
  writeFileSync(join(snap, 'files/new\nline \\ name.txt'), 'escaped in the manifest, plain in tar\n');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const fileSha = (path: string) => sha(readFileSync(path));

describe('createArchive hashing', () => {
  it('reports the SHA-256 and size of the file it wrote, and progress up to that size', async () => {
    const out = join(root, 'a.tar.zst');
    const seen: number[] = [];
    const info = await createArchive(snap, out, 'tar.zst', { onProgress: (b) => seen.push(b) });
    const { checkpoints, ...stored } = info;
    expect(stored).toEqual({ path: out, format: 'tar.zst', sha256: fileSha(out), size: statSync(out).size });
    // The checkpoints are the stored file's prefix hashes, every MiB (the file is about 8 MiB).
    const bytes = readFileSync(out);
    expect(checkpoints.every).toBe(2 ** 20);
    expect(checkpoints.at).toHaveLength(Math.floor(bytes.length / checkpoints.every));
    expect(checkpoints.at.map((h, i) => h === sha(bytes.subarray(0, (i + 1) * checkpoints.every)))).not.toContain(false);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(seen.at(-1)).toBe(info.size);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
    expect(execFileSync('tar', ['--zstd', '-tf', out], { encoding: 'utf8' })).toContain('random.bin');
  });

  it('hashes the ciphertext when age encrypts', async () => {
    const key = join(root, 'age.key');
    const recipient = /age1[0-9a-z]+/.exec(execFileSync('age-keygen', ['-o', key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) + readFileSync(key, 'utf8'))![0];
    const out = join(root, 'b.tar.zst.age');
    const info = await createArchive(snap, out, 'tar.zst', { recipients: [recipient] });
    const { checkpoints, ...stored } = info;
    expect(stored).toEqual({ path: out, format: 'tar.zst', sha256: fileSha(out), size: statSync(out).size, encryption: 'age' });
    expect(checkpoints.at[2]).toBe(sha(readFileSync(out).subarray(0, 3 * checkpoints.every))); // of the ciphertext
    execFileSync('age', ['-d', '-i', key, '-o', join(root, 'b.tar.zst'), out]);
    expect(execFileSync('tar', ['--zstd', '-tf', join(root, 'b.tar.zst')], { encoding: 'utf8' })).toContain('random.bin');
  });

  it('leaves neither the archive nor its partial file when tar fails', async () => {
    const out = join(root, 'c.tar.zst');
    await expect(createArchive(join(root, 'no-such-snapshot'), out, 'tar.zst')).rejects.toThrow();
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(root).filter((f) => f.startsWith('c.tar.zst'))).toEqual([]);
  });

  it("passes none of tar's stream through the worker, and reports tar's input as progress", async () => {
    const big = join(root, 'big-20260101T000000');
    mkdirSync(big);
    writeFileSync(join(big, 'random.bin'), randomBytes(24 * 2 ** 20));
    const out = join(root, 'd.tar.zst');
    const input: number[] = [];
    const before = threadBytesRead();
    const info = await createArchive(big, out, 'tar.zst', { onInput: (b) => input.push(b) });
    // What this process read: the archive once, to hash it (hashing threads); tar's 24 MiB stream went to zstd.
    expect(threadBytesRead() - before).toBeLessThan(info.size + 2 ** 20);
    expect(input).toEqual([1, 2].map((k) => k * 1024 * 10240)); // a checkpoint every 10 MiB of tar's stream
  });

  it('on a full disk fails with the compressor\'s own words (InsufficientSpace) and leaves nothing', async () => {
    const out = join(root, 'e.tar.zst');
    symlinkSync('/dev/full', `${out}.partial`); // every write fails with ENOSPC
    const err = await createArchive(snap, out, 'tar.zst').then(() => undefined, (e: unknown) => e as Error);
    expect(err?.message).toMatch(/zstd failed while writing the archive.*No space left on device/s);
    expect((toFailure(err) as ApplicationFailure).type).toBe('InsufficientSpace');
    expect(readdirSync(root).filter((f) => f.startsWith('e.tar.zst'))).toEqual([]);
  });

  it("names tar's complaint, without its progress lines, when tar fails", async () => {
    const err = await createArchive(join(root, 'no-such-snapshot'), join(root, 'f.tar.zst'), 'tar.zst').then(() => undefined, (e: unknown) => e as Error);
    expect(err?.message).toMatch(/tar failed while archiving .*no-such-snapshot.*Cannot (stat|open): No such file or directory/s);
    expect(err?.message).not.toMatch(/tar: \d+$/m);
  });
});

/** Bytes this process's own threads have read (its /proc/self/io also counts its reaped children: tar, zstd). */
function threadBytesRead(): number {
  return readdirSync('/proc/self/task').reduce((n, t) => n + Number(/^rchar: (\d+)$/m.exec(readFileSync(`/proc/self/task/${t}/io`, 'utf8'))?.[1] ?? 0), 0);
}
