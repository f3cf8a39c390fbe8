// LocalBackend.put resumes the `.partial` a killed copy leaves (a prefix of the archive), redoes one whose bytes
// differ, still proves the whole file against the archive's SHA-256, and still refuses keys outside its root.
// Real files in a temp dir; no services.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalStorage } from '../../src/config/schema';
import { LifeboatError } from '../../src/shared/errors';
import { LocalBackend } from '../../src/storage/local';

const KEY = 'web/web-20260101T000000.tar.zst';

function setup(size = 8 * 1024 * 1024 + 123) {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-local-resume-'));
  const root = join(dir, 'store');
  const bytes = randomBytes(size);
  const file = join(dir, 'archive.tar.zst');
  writeFileSync(file, bytes);
  const backend = new LocalBackend('disk', LocalStorage.parse({ type: 'local', path: root }));
  const dest = backend.location(KEY);
  mkdirSync(join(root, 'web'), { recursive: true });
  return { dir, root, bytes, file, backend, dest, partial: `${dest}.partial`, sha256: createHash('sha256').update(bytes).digest('hex') };
}

async function failure(p: Promise<unknown>): Promise<LifeboatError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LifeboatError);
  return err as LifeboatError;
}

describe('LocalBackend.put resumes a .partial', () => {
  it('appends to a .partial that holds a prefix of the archive (what a killed copy leaves)', async () => {
    const s = setup();
    const kept = 3 * 1024 * 1024 + 17;
    writeFileSync(s.partial, s.bytes.subarray(0, kept));
    const inode = statSync(s.partial).ino;
    const seen: number[] = [];
    const put = await s.backend.put(KEY, s.file, { sha256: s.sha256, size: s.bytes.length, onProgress: (b) => seen.push(b) });
    expect(put).toMatchObject({ alreadyPresent: false, verifiedBy: 'file-sha256', key: KEY, location: s.dest, bytesSent: s.bytes.length - kept });
    expect(put.bytesSent).toBeLessThan(s.bytes.length);
    expect(readFileSync(s.dest).equals(s.bytes)).toBe(true);
    expect(statSync(s.dest).ino).toBe(inode); // the same file, appended to, then renamed
    expect(existsSync(s.partial)).toBe(false);
    expect(seen[0]).toBeGreaterThan(kept);
    expect(seen.at(-1)).toBe(s.bytes.length);
    expect(readFileSync(`${s.dest}.sha256`, 'utf8').trim()).toBe(s.sha256);
  });

  it('redoes a .partial whose bytes differ from the same prefix of the archive', async () => {
    const s = setup();
    const stale = Buffer.from(s.bytes.subarray(0, 4 * 1024 * 1024));
    stale[stale.length - 1]! ^= 0xff;
    writeFileSync(s.partial, stale);
    const put = await s.backend.put(KEY, s.file, { sha256: s.sha256, size: s.bytes.length });
    expect(put.bytesSent).toBe(s.bytes.length);
    expect(readFileSync(s.dest).equals(s.bytes)).toBe(true);
  });

  it('redoes a .partial longer than the archive', async () => {
    const s = setup(1000);
    writeFileSync(s.partial, Buffer.concat([s.bytes, Buffer.from('tail')]));
    const put = await s.backend.put(KEY, s.file, { sha256: s.sha256, size: s.bytes.length });
    expect(put.bytesSent).toBe(1000);
    expect(readFileSync(s.dest).equals(s.bytes)).toBe(true);
  });

  it('still refuses a resumed copy whose whole SHA-256 is not the archive’s, and drops the .partial', async () => {
    const s = setup();
    writeFileSync(s.partial, s.bytes.subarray(0, 1024 * 1024));
    const err = await failure(s.backend.put(KEY, s.file, { sha256: '0'.repeat(64), size: s.bytes.length }));
    expect(err.code).toBe('ChecksumMismatch');
    expect(err.message).toContain(s.sha256);
    expect(existsSync(s.partial)).toBe(false);
    expect(existsSync(s.dest)).toBe(false);
  });

  it('refuses a source shorter than the archive size it was given, and drops the .partial', async () => {
    const s = setup();
    const err = await failure(s.backend.put(KEY, s.file, { sha256: s.sha256, size: s.bytes.length + 1 }));
    expect(err.code).toBe('ChecksumMismatch');
    expect(existsSync(s.partial)).toBe(false);
  });

  it('a cancelled copy leaves no .partial behind', async () => {
    const s = setup();
    const ac = new AbortController();
    const p = s.backend.put(KEY, s.file, { sha256: s.sha256, size: s.bytes.length, signal: ac.signal, onProgress: () => ac.abort() });
    await expect(p).rejects.toThrow();
    expect(existsSync(s.partial)).toBe(false);
    expect(existsSync(s.dest)).toBe(false);
  });

  it('an identical stored archive is reported present after reading it back; a different one is replaced', async () => {
    const s = setup();
    await s.backend.put(KEY, s.file, { sha256: s.sha256, size: s.bytes.length });
    expect(await s.backend.put(KEY, s.file, { sha256: s.sha256, size: s.bytes.length })).toMatchObject({ alreadyPresent: true, bytesSent: 0 });
    const damaged = Buffer.from(s.bytes);
    damaged[5]! ^= 1;
    writeFileSync(s.dest, damaged);
    await expect(s.backend.verifyStored(KEY, { file: s.file, sha256: s.sha256, size: s.bytes.length })).rejects.toMatchObject({ code: 'ChecksumMismatch' });
    expect(await s.backend.put(KEY, s.file, { sha256: s.sha256, size: s.bytes.length })).toMatchObject({ alreadyPresent: false, bytesSent: s.bytes.length });
    expect(readFileSync(s.dest).equals(s.bytes)).toBe(true);
  });

  it('still refuses a key outside its root, writing nothing there', async () => {
    const s = setup(100);
    for (const bad of ['../escape.tar.zst', '/tmp/escape.tar.zst', 'web/../../escape.tar.zst']) {
      const err = await failure(s.backend.put(bad, s.file, { sha256: s.sha256, size: 100 }));
      expect(err.code, bad).toBe('IntegrityCheckFailed');
    }
    expect(existsSync(join(s.dir, 'escape.tar.zst'))).toBe(false);
    expect(existsSync(join(s.dir, 'escape.tar.zst.partial'))).toBe(false);
    expect(s.backend.objectKey('web/./x.tar.zst')).toBe('web/x.tar.zst');
  });
});
