// A selective restore from an archive storage reads the archive only as far as it needs (the files that describe
// the snapshot come first, then the tree in name order), proves what it read with the record's checkpoints, and still checks what it restores against the manifest whose SHA-256 the record holds. Real
// archives in a local storage; no services.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline, Transform, type Readable } from 'node:stream';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { LocalStorage } from '../../src/config/schema';
import { fetchSnapshot } from '../../src/restore/fetch';
import { createArchive } from '../../src/snapshot/archive';
import { archiveKey, recordKey } from '../../src/snapshot/naming';
import { LocalBackend } from '../../src/storage/local';

const plan = 'shop';
const snapshot = 'shop-20260101T020000';

/** A snapshot with a small database dump first and a big file tree after it, archived and stored with its record. */
async function stored(tamper?: (snap: string) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-partial-'));
  const snap = join(dir, 'src', snapshot);
  await mkdir(join(snap, 'database'), { recursive: true });
  await mkdir(join(snap, 'files/app/media'), { recursive: true });
  await writeFile(join(snap, 'metadata.yml'), 'plan: shop\n');
  await writeFile(join(snap, 'database/orders.sql'), 'INSERT INTO orders VALUES (1);\n'.repeat(1000));
  await writeFile(join(snap, 'files/app/media/big.bin'), randomBytes(6_000_000));
  const manifest = (await execa('sha256sum', ['database/orders.sql', 'files/app/media/big.bin', 'metadata.yml'], { cwd: snap })).stdout + '\n';
  await writeFile(join(snap, 'manifest.sha256'), manifest);
  await tamper?.(snap);
  const archive = await createArchive(snap, join(dir, 'a.tar.zst'), 'tar.zst');
  const backend = new LocalBackend('disk', LocalStorage.parse({ type: 'local', path: join(dir, 'store') }));
  await backend.put(archiveKey(plan, snapshot, 'tar.zst'), archive.path, { sha256: archive.sha256, size: archive.size });
  const record = {
    success: true, status: 'Completed', snapshot, plan, tier: 'daily', created_at: '2026-01-01T02:00:00Z', format: 'tar.zst',
    size_bytes: archive.size, checksum_sha256: archive.sha256,
    manifest: { sha256: createHash('sha256').update(manifest).digest('hex'), files: 3, bytes: 0 }, artifacts: [], checkpoints: archive.checkpoints,
  };
  await backend.putJson(recordKey(plan, snapshot), record);
  // Counts the bytes the restore reads from storage.
  let read = 0;
  const counting = Object.assign(Object.create(backend) as LocalBackend, {
    async read(key: string): Promise<Readable> {
      const counted = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          read += chunk.length;
          done(null, chunk);
        },
      });
      pipeline(await backend.read(key), counted, () => undefined); // destroying the result closes the file too
      return counted;
    },
  });
  return { dir, archive, backend: counting, read: () => read };
}

describe('fetchSnapshot with a selection, from an archive', () => {
  it('stops reading after the selected dump and checks it; the big tree after it is never read', async () => {
    const s = await stored();
    const got = await fetchSnapshot({ storage: s.backend, plan, snapshot, workDir: join(s.dir, 'work'), select: ['database/orders.*'] });
    expect(await readFile(join(got.dir, 'database/orders.sql'), 'utf8')).toContain('INSERT INTO orders');
    expect(existsSync(join(got.dir, 'files/app/media/big.bin'))).toBe(false);
    expect(s.read()).toBeLessThan(s.archive.size / 4);
    // Without a selection the whole archive is read and its stored hash checked, as before.
    const whole = await fetchSnapshot({ storage: s.backend, plan, snapshot, workDir: join(s.dir, 'work-whole') });
    expect(existsSync(join(whole.dir, 'files/app/media/big.bin'))).toBe(true);
  });

  it('reads a record without checkpoints (made before them) whole, and restores the same', async () => {
    const s = await stored();
    const { checkpoints: _dropped, ...old } = (await s.backend.getJson<Record<string, unknown>>(recordKey(plan, snapshot)))!;
    await s.backend.putJson(recordKey(plan, snapshot), old);
    const got = await fetchSnapshot({ storage: s.backend, plan, snapshot, workDir: join(s.dir, 'work'), select: ['database/orders.*'] });
    expect(await readFile(join(got.dir, 'database/orders.sql'), 'utf8')).toContain('INSERT INTO orders');
    expect(s.read()).toBe(s.archive.size);
  });

  it('refuses a record whose checkpoints are malformed', async () => {
    const s = await stored();
    const record = (await s.backend.getJson<Record<string, unknown>>(recordKey(plan, snapshot)))!;
    await s.backend.putJson(recordKey(plan, snapshot), { ...record, checkpoints: { ...(record.checkpoints as object), at: ['x'] } });
    const err = await fetchSnapshot({ storage: s.backend, plan, snapshot, workDir: join(s.dir, 'work'), select: ['database/orders.*'] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'IntegrityCheckFailed', message: expect.stringContaining('invalid checkpoints') });
  });

  it('refuses a selected file that differs from the signed manifest, though the archive matches its record', async () => {
    const s = await stored(async (snap) => writeFile(join(snap, 'database/orders.sql'), 'DROP TABLE orders;\n'));
    const err = await fetchSnapshot({ storage: s.backend, plan, snapshot, workDir: join(s.dir, 'work'), select: ['database/orders.*'] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ChecksumMismatch', message: expect.stringContaining('database/orders.sql') });
  });
});
