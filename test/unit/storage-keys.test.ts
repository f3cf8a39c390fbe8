// Storage keys are derived, never read from a record: a forged record cannot make retention delete (or local
// storage resolve) anything outside the storage's root. Real files in a temp dir; no services.
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalStorage } from '../../src/config/schema';
import { applyRetention } from '../../src/retention/storage-retention';
import { LifeboatError } from '../../src/shared/errors';
import { LocalBackend } from '../../src/storage/local';

function storage() {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-keys-'));
  const root = join(dir, 'store');
  mkdirSync(join(root, 'web'), { recursive: true });
  return { dir, root, backend: new LocalBackend('disk', LocalStorage.parse({ type: 'local', path: root })) };
}

const record = (snapshot: string, createdAt: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ success: true, status: 'Completed', snapshot, plan: 'web', tier: 'daily', created_at: createdAt, format: 'tar.zst', size_bytes: 1, checksum_sha256: '0'.repeat(64), ...extra });

describe('storage keys', () => {
  it('local storage refuses keys that resolve outside its root', () => {
    const { backend, root } = storage();
    expect(backend.location('web/web-20260101T000000.json')).toBe(join(root, 'web/web-20260101T000000.json'));
    for (const bad of ['../victim', '/etc/passwd', 'web/../../victim', '', '.', 'web/../..']) {
      expect(() => backend.location(bad), bad).toThrow(LifeboatError);
    }
  });

  it("retention ignores (never deletes, never counts) records naming another key or an unknown format", async () => {
    const { dir, root, backend } = storage();
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious');
    const old = 'web-20260101T000000';
    const latest = 'web-20260102T000000';
    writeFileSync(join(root, 'web', `${old}.json`), record(old, '2026-01-01T00:00:00Z', { key: '../victim' }));
    writeFileSync(join(root, 'web', `${old}.tar.zst`), 'archive');
    writeFileSync(join(root, 'web', `${latest}.json`), record(latest, '2026-01-02T00:00:00Z', { format: '/../../victim' }));
    writeFileSync(join(root, 'web', `${latest}.tar.zst`), 'archive');
    const result = await applyRetention(backend, 'web', { daily: 0, weekly: 0, monthly: 0, yearly: 0, last: 1, minimum: 1, timezone: 'UTC' }, new Date('2026-01-03T00:00:00Z'));
    expect(result.deleted).toEqual([]);
    expect(result.ignored).toEqual([
      `web/${old}.json: names the archive key "../victim", not web/${old}.tar.zst`,
      `web/${latest}.json: has an unknown format "/../../victim"`,
    ]);
    expect(existsSync(victim)).toBe(true);
    expect(existsSync(join(root, 'web', `${old}.tar.zst`))).toBe(true);
  });

  it('retention deletes the keys derived from the name, encrypted or not, and nothing the record names', async () => {
    const { root, backend } = storage();
    const old = 'web-20260101T000000';
    const latest = 'web-20260102T000000';
    writeFileSync(join(root, 'web', `${old}.json`), record(old, '2026-01-01T00:00:00Z', { encryption: 'age', key: `web/${old}.tar.zst.age` }));
    writeFileSync(join(root, 'web', `${old}.tar.zst.age`), 'ciphertext');
    writeFileSync(join(root, 'web', `${latest}.json`), record(latest, '2026-01-02T00:00:00Z'));
    writeFileSync(join(root, 'web', `${latest}.tar.zst`), 'archive');
    const result = await applyRetention(backend, 'web', { daily: 0, weekly: 0, monthly: 0, yearly: 0, last: 1, minimum: 1, timezone: 'UTC' }, new Date('2026-01-03T00:00:00Z'));
    expect(result).toEqual({ kept: 1, deleted: [old], ignored: [] });
    expect(existsSync(join(root, 'web', `${old}.tar.zst.age`))).toBe(false);
    expect(existsSync(join(root, 'web', `${old}.json`))).toBe(false);
    expect(existsSync(join(root, 'web', `${latest}.tar.zst`))).toBe(true);
  });
});
