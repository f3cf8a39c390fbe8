// readChunks (shared/files.ts): a file's bytes, or a range of them, through one reused buffer.
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readChunks } from '../../src/shared/files';

const dir = await mkdtemp(join(tmpdir(), 'lifeboat-readchunks-'));
const bytes = randomBytes(2.5 * 1024 * 1024 + 7);
const file = join(dir, 'data.bin');
await writeFile(file, bytes);

async function collect(opts: Parameters<typeof readChunks>[2] = {}): Promise<{ got: Buffer; count: number; buffers: Set<ArrayBufferLike> }> {
  const parts: Buffer[] = [];
  const buffers = new Set<ArrayBufferLike>();
  const count = await readChunks(file, (c) => {
    buffers.add(c.buffer);
    parts.push(Buffer.from(c)); // a copy: the chunk itself is reused
  }, opts);
  return { got: Buffer.concat(parts), count, buffers };
}

describe('readChunks', () => {
  it('reads the whole file into one buffer, reused for every chunk', async () => {
    const { got, count, buffers } = await collect();
    expect(got.equals(bytes)).toBe(true);
    expect(count).toBe(bytes.length);
    expect(buffers.size).toBe(1);
  });

  it('reads [start, end), and stops short at the end of a shorter file', async () => {
    expect((await collect({ start: 1_000_000, end: 2_100_000 })).got.equals(bytes.subarray(1_000_000, 2_100_000))).toBe(true);
    const tail = await collect({ start: bytes.length - 10, end: bytes.length + 100 });
    expect(tail.count).toBe(10);
    expect(tail.got.equals(bytes.subarray(-10))).toBe(true);
    expect((await collect({ end: 0 })).count).toBe(0);
  });

  it('stops when its signal is aborted', async () => {
    const stop = new AbortController();
    stop.abort(new Error('stop'));
    await expect(readChunks(file, () => undefined, { signal: stop.signal })).rejects.toThrow('stop');
  });
});
