// The pieces a resumable S3 upload is decided with: part ranges, per-part and composite SHA-256 computed from a
// file in one pass, and which open uploads may be finished. Real files in a temp dir; no services.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LifeboatError } from '../../src/shared/errors';
import { compositeSha256, hashFile, isFinalFailure, planParts, reusableParts, type ListedPart } from '../../src/storage/multipart';

const sha = (b: Buffer) => createHash('sha256').update(b).digest();

function file(bytes: Buffer): string {
  const path = join(mkdtempSync(join(tmpdir(), 'lifeboat-mp-')), 'archive');
  writeFileSync(path, bytes);
  return path;
}

describe('planParts', () => {
  it('cuts a file into full parts and a shorter last one, covering every byte once', () => {
    expect(planParts(25, 10)).toEqual([
      { partNumber: 1, start: 0, end: 10 },
      { partNumber: 2, start: 10, end: 20 },
      { partNumber: 3, start: 20, end: 25 },
    ]);
    expect(planParts(20, 10).map((p) => p.end - p.start)).toEqual([10, 10]);
    expect(planParts(0, 10)).toEqual([{ partNumber: 1, start: 0, end: 0 }]);
  });
});

describe('hashFile', () => {
  it('gives the whole SHA-256 and each part’s, split at part boundaries that fall inside read chunks', async () => {
    // 2.5 MiB with 700 001-byte parts: boundaries land mid-chunk, and the last part is short.
    const bytes = randomBytes(2.5 * 1024 * 1024);
    const partSize = 700_001;
    const d = await hashFile(file(bytes), partSize);
    expect(d.size).toBe(bytes.length);
    expect(d.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    const expected = planParts(bytes.length, partSize).map((p) => sha(bytes.subarray(p.start, p.end)));
    expect(d.parts).toEqual(expected);
  });

  it('an empty file is one empty part', async () => {
    const d = await hashFile(file(Buffer.alloc(0)), 5);
    expect(d.parts).toEqual([sha(Buffer.alloc(0))]);
  });
});

describe('compositeSha256', () => {
  it('is the base64 SHA-256 of the concatenated binary part digests, suffixed with the part count', () => {
    const parts = [Buffer.from('a'), Buffer.from('bc'), Buffer.from('def')].map(sha);
    const inner = createHash('sha256');
    for (const p of parts) inner.update(p);
    expect(compositeSha256(parts)).toBe(`${inner.digest('base64')}-3`);
  });
});

describe('reusableParts', () => {
  const bytes = randomBytes(25);
  const plan = planParts(25, 10);
  const digests = { size: 25, sha256: '', partSize: 10, parts: plan.map((p) => sha(bytes.subarray(p.start, p.end))) };
  const listed = (n: number, size: number, content: Buffer): ListedPart => ({ PartNumber: n, Size: size, ETag: `"e${n}"`, ChecksumSHA256: sha(content).toString('base64') });

  it('keeps parts of the planned size whose SHA-256 is that of the same byte range', () => {
    const r = reusableParts([listed(3, 5, bytes.subarray(20)), listed(1, 10, bytes.subarray(0, 10))], plan, digests);
    expect(r).toEqual({
      ok: true,
      parts: [
        { PartNumber: 1, ETag: '"e1"', ChecksumSHA256: digests.parts[0]!.toString('base64') },
        { PartNumber: 3, ETag: '"e3"', ChecksumSHA256: digests.parts[2]!.toString('base64') },
      ],
    });
  });

  it('refuses an upload made with another part size, other bytes, or more parts', () => {
    const other = reusableParts([listed(1, 12, bytes.subarray(0, 12))], plan, digests);
    expect(other).toMatchObject({ ok: false, reason: expect.stringContaining('another part size') });
    const changed = Buffer.from(bytes.subarray(10, 20));
    changed[0]! ^= 1;
    expect(reusableParts([listed(2, 10, changed)], plan, digests)).toMatchObject({ ok: false, reason: expect.stringContaining('part 2 has SHA-256') });
    expect(reusableParts([listed(4, 5, bytes.subarray(20))], plan, digests)).toMatchObject({ ok: false, reason: expect.stringContaining('beyond the 3 parts') });
    expect(reusableParts([{ PartNumber: 1, Size: 10, ETag: '"x"' }], plan, digests)).toMatchObject({ ok: false });
  });
});

describe('isFinalFailure', () => {
  it('drops partial state after permanent errors and cancellation, keeps it for a retry or a stall', () => {
    const cancelled = new AbortController();
    cancelled.abort();
    const stalled = new AbortController();
    stalled.abort(new LifeboatError('Stalled', 'no progress'));
    expect(isFinalFailure(new LifeboatError('ChecksumMismatch', 'x'))).toBe(true);
    expect(isFinalFailure(Object.assign(new Error('full'), { code: 'ENOSPC' }))).toBe(true);
    expect(isFinalFailure(new Error('aborted'), cancelled.signal)).toBe(true);
    expect(isFinalFailure(new LifeboatError('StorageError', 'timeout'))).toBe(false);
    expect(isFinalFailure(new Error('aborted'), stalled.signal)).toBe(false);
  });
});
