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
import { annotate, generateSigningKey, parsePrivateKey, signRecord } from '../../src/snapshot/signing';

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

describe('retention with signing: what a bucket writer writes into records does not count', () => {
  const keys = generateSigningKey();
  const priv = parsePrivateKey(keys.privatePem);
  const trust = { publicKey: keys.publicKey };
  const policy = { daily: 0, weekly: 0, monthly: 0, yearly: 0, last: 1, minimum: 1, timezone: 'UTC' };
  const now = new Date('2026-01-10T00:00:00Z');
  const signed = (snapshot: string, createdAt: string, extra: Record<string, unknown> = {}) => {
    const r = { ...JSON.parse(record(snapshot, createdAt)), manifest: { sha256: '1'.repeat(64), files: 1, bytes: 1 }, ...extra };
    return { ...r, signature: signRecord(r, priv) };
  };

  it('a hold released or a snapshot marked verified by hand is ignored; the worker-signed release counts', async () => {
    const { root, backend } = storage();
    const held = 'web-20260101T000000';
    const verified = 'web-20260102T000000';
    const latest = 'web-20260103T000000';
    const heldRecord = signed(held, '2026-01-01T00:00:00Z', { hold: { until: '2027-01-01T00:00:00.000Z', deploy_id: 'ci-1' } });
    writeFileSync(join(root, 'web', `${held}.json`), JSON.stringify({ ...heldRecord, hold: { ...heldRecord.hold, released_at: '2026-01-02T00:00:00Z' } }));
    writeFileSync(join(root, 'web', `${verified}.json`), JSON.stringify({ ...signed(verified, '2026-01-02T00:00:00Z'), verification: { ok: true, verified_at: '2026-01-02T01:00:00Z' } }));
    writeFileSync(join(root, 'web', `${latest}.json`), JSON.stringify(signed(latest, '2026-01-03T00:00:00Z')));
    const first = await applyRetention(backend, 'web', policy, now, trust);
    // The forged release does not free the held one; the forged "verified" earns no "newest verified" slot.
    expect(first.deleted).toEqual([verified]);
    writeFileSync(join(root, 'web', `${held}.json`), JSON.stringify(annotate(heldRecord, { hold: { ...heldRecord.hold, released_at: '2026-01-04T00:00:00Z' } }, priv)));
    expect((await applyRetention(backend, 'web', policy, now, trust)).deleted).toEqual([held]);
  });

  it('an empty, non-JSON, oversized or unsigned record is reported, and the rest of retention goes on', async () => {
    const { root, backend } = storage();
    writeFileSync(join(root, 'web', 'web-20260101T000000.json'), '""');
    writeFileSync(join(root, 'web', 'web-20260102T000000.json'), '{not json');
    writeFileSync(join(root, 'web', 'web-20260103T000000.json'), Buffer.alloc(1024 * 1024 + 1, 32));
    writeFileSync(join(root, 'web', 'web-20260104T000000.json'), record('web-20260104T000000', '2026-01-04T00:00:00Z'));
    writeFileSync(join(root, 'web', 'web-20260105T000000.json'), JSON.stringify(signed('web-20260105T000000', 'not a date')));
    writeFileSync(join(root, 'web', 'web-20260106T000000.json'), JSON.stringify(signed('web-20260106T000000', '2026-01-06T00:00:00Z')));
    const r = await applyRetention(backend, 'web', policy, now, trust);
    expect(r.deleted).toEqual([]);
    expect(r.kept).toBe(1);
    expect(r.ignored.map((i) => i.replace(/^web\/web-2026010(\d)T000000\.json: /, '$1 '))).toEqual([
      '1 is not a JSON object',
      '2 is not valid JSON',
      '3 is 1048577 bytes, more than a record can be',
      '4 is not signed (pass --allow-unsigned for snapshots made before signing was configured)',
      '5 has no valid created_at',
    ]);
  });
});
